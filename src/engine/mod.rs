//! The issuance engine: what a certificate request is, and what comes back.
//!
//! The engine knows nothing about Kubernetes. A caller (the `certweave issue`
//! command, the local-directory runner, the controller) turns its own input
//! into a [`request::CertificateRequest`], picks an issuer from
//! [`crate::issuers`], and stores the returned [`request::Bundle`] wherever
//! it keeps certificates.

pub mod reconcile;
pub mod renewal;
pub mod request;
pub mod timing;

pub use request::{Bundle, CertificateRequest, KeyRotation, KeyUsage, DEFAULT_DURATION};
