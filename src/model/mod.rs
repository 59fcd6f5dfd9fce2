//! The leaf layer: what a certificate request is, what comes back, the keys
//! it is signed with, and the [`Issuer`] contract between them.
//!
//! Everything else in the crate builds on these types and this module
//! imports nothing else of the crate, so the layers above (`pki`, `issuers`,
//! `store`, `engine`, `api`, the entry points) can only depend downward.

pub mod bundle;
pub mod issuer;
pub mod key;
pub mod progress;
pub mod renew_before;
pub mod request;
pub mod subject;
pub mod text;

pub use bundle::Bundle;
pub use issuer::{
    chain, BoxError, Checkpoint, IssueError, Issuer, Problem, RenewalWindow, RequestOrigin,
    SaveCheckpoint,
};
pub use key::{KeyAlgorithm, KeyEncoding, KeyError, PrivateKey};
pub use progress::{AuthorizationProgress, OrderProgress};
pub use renew_before::RenewBefore;
pub use request::{
    CertificateRequest, IssuerUrls, KeyRotation, KeyUsage, NameConstraints, NameSubtrees,
    OtherName, SignedCsr, DEFAULT_DURATION,
};
pub use subject::{LiteralSubject, Subject, SubjectAttribute};
