//! The issuance engine: what a certificate request is, and what comes back.
//!
//! The engine knows nothing about Kubernetes. A caller (the `certweave issue`
//! command, the local-directory runner, the controller) turns its own input
//! into a [`crate::model::CertificateRequest`], picks an issuer from
//! [`crate::issuers`], and stores the returned [`crate::model::Bundle`]
//! wherever it keeps certificates.

pub mod keygen;
pub mod reconcile;
pub mod renewal;
pub mod renewal_info;
pub mod scheduler;
pub mod timing;
