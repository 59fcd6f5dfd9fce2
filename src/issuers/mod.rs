//! Issuers: turn a [`CertificateRequest`] and a private key into a signed
//! [`Bundle`] — cert-manager's `Sign(request) → bundle`. The contract they
//! implement ([`Issuer`], [`IssueError`]) is the leaf layer's
//! ([`crate::model`]); this module holds the implementations.

pub mod acme;
pub mod any;
pub mod ca;
pub mod own_ca;
pub mod selfsigned;

use crate::model::{Bundle, CertificateRequest, PrivateKey};
pub use crate::model::{Checkpoint, IssueError, Issuer, Problem, RequestOrigin, SaveCheckpoint};

/// The bundle an in-process issuer returns: the key in the requested
/// encoding, checked against the request and verified to `ca_pem` before
/// anyone can store it.
/// [`checked_bundle`] for a chain signed for a certificate signing request:
/// the leaf must carry the request's public key; there is no private key.
pub(crate) fn checked_csr_bundle(
    request: &CertificateRequest,
    csr: &crate::model::SignedCsr,
    chain_pem: String,
    ca_pem: Option<String>,
    now: std::time::SystemTime,
) -> Result<Bundle, IssueError> {
    crate::pki::check_chain(&chain_pem, &csr.spki_der, Some(request), now)
        .map_err(|e| IssueError::BadBundle(e.to_string()))?;
    if let Some(ca) = &ca_pem {
        crate::pki::verify_chain_to_root(&chain_pem, ca)
            .map_err(|e| IssueError::BadBundle(e.to_string()))?;
    }
    Ok(Bundle {
        chain_pem,
        key_pem: String::new(),
        ca_pem,
    })
}

pub(crate) fn checked_bundle(
    request: &CertificateRequest,
    key: &PrivateKey,
    chain_pem: String,
    ca_pem: String,
    now: std::time::SystemTime,
) -> Result<Bundle, IssueError> {
    let bundle = Bundle {
        chain_pem,
        key_pem: key.to_pem(request.key_encoding)?,
        ca_pem: Some(ca_pem),
    };
    crate::pki::check_bundle(&bundle.chain_pem, &bundle.key_pem, Some(request), now)
        .map_err(|e| IssueError::BadBundle(e.to_string()))?;
    crate::pki::verify_chain_to_root(
        &bundle.chain_pem,
        bundle.ca_pem.as_deref().unwrap_or_default(),
    )
    .map_err(|e| IssueError::BadBundle(e.to_string()))?;
    Ok(bundle)
}
