//! A closed set of issuers behind one type, for callers that pick the
//! issuer at run time (the `Issuer` trait returns `impl Future`, so it is
//! not object-safe; an enum is also cheaper than boxing every future).

use super::ca::CaIssuer;
use super::selfsigned::SelfSignedIssuer;
use super::{IssueError, Issuer};
use crate::engine::{Bundle, CertificateRequest};
use crate::pki::PrivateKey;

/// Any issuer certweave runs.
#[derive(Debug)]
pub enum AnyIssuer {
    SelfSigned(SelfSignedIssuer),
    /// Shared: a CA is loaded once and signs for many certificates.
    Ca(std::sync::Arc<CaIssuer>),
}

impl Issuer for AnyIssuer {
    fn kind(&self) -> &'static str {
        match self {
            AnyIssuer::SelfSigned(i) => i.kind(),
            AnyIssuer::Ca(i) => i.kind(),
        }
    }

    async fn issue(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
    ) -> Result<Bundle, IssueError> {
        match self {
            AnyIssuer::SelfSigned(i) => i.issue(request, key).await,
            AnyIssuer::Ca(i) => i.issue(request, key).await,
        }
    }
}
