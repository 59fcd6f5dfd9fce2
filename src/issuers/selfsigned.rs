//! The SelfSigned issuer: each certificate is signed by its own key. Used
//! to bootstrap a CA (`isCA: true`) that a CA issuer then signs with.

use std::time::SystemTime;

use super::{IssueError, Issuer};
use crate::model::{Bundle, CertificateRequest, IssuerUrls, RequestOrigin};
use crate::pki::{self, PrivateKey};

/// Signs every request with the request's own key; `ca.crt` is the
/// certificate itself, as cert-manager does.
#[derive(Debug, Clone, Default)]
pub struct SelfSignedIssuer {
    /// Written into every certificate (`selfSigned.crlDistributionPoints`).
    pub urls: IssuerUrls,
}

impl SelfSignedIssuer {
    /// The synchronous core, shared with callers that are not async.
    pub fn sign(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
    ) -> Result<Bundle, IssueError> {
        let now = SystemTime::now();
        let mut params = pki::certificate_params(request, now)?;
        pki::add_issuer_urls(&mut params, &self.urls);
        let cert = params
            .self_signed(key.key_pair())
            .map_err(|e| IssueError::from(pki::PkiError::Build(e.to_string())))?;
        let chain_pem = cert.pem();
        super::checked_bundle(request, key, chain_pem.clone(), chain_pem, now)
    }
}

impl Issuer for SelfSignedIssuer {
    fn kind(&self) -> &'static str {
        "selfsigned"
    }

    async fn issue(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        _origin: &RequestOrigin,
    ) -> Result<Bundle, IssueError> {
        self.sign(request, key)
    }
}
