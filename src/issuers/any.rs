//! A closed set of issuers behind one type, for callers that pick the
//! issuer at run time (the `Issuer` trait returns `impl Future`, so it is
//! not object-safe; an enum is also cheaper than boxing every future).

use super::acme::AcmeIssuer;
use super::ca::CaIssuer;
use super::selfsigned::SelfSignedIssuer;
use crate::model::{
    Bundle, CertificateRequest, IssueError, Issuer, PrivateKey, RenewalWindow, RequestOrigin,
    SaveCheckpoint, SignedCsr,
};

/// Any issuer certweave runs.
#[derive(Debug)]
pub enum AnyIssuer {
    SelfSigned(SelfSignedIssuer),
    /// Shared: a CA is loaded once and signs for many certificates.
    Ca(std::sync::Arc<CaIssuer>),
    /// Shared: one logged-in account serves every order of the issuer.
    Acme(std::sync::Arc<AcmeIssuer>),
}

impl Issuer for AnyIssuer {
    fn kind(&self) -> &'static str {
        match self {
            AnyIssuer::SelfSigned(i) => i.kind(),
            AnyIssuer::Ca(i) => i.kind(),
            AnyIssuer::Acme(i) => i.kind(),
        }
    }

    async fn issue(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        origin: &RequestOrigin,
    ) -> Result<Bundle, IssueError> {
        match self {
            AnyIssuer::SelfSigned(i) => i.issue(request, key, origin).await,
            AnyIssuer::Ca(i) => i.issue(request, key, origin).await,
            AnyIssuer::Acme(i) => i.issue(request, key, origin).await,
        }
    }

    async fn issue_resumable<'a>(
        &'a self,
        request: &'a CertificateRequest,
        key: &'a PrivateKey,
        origin: &'a RequestOrigin,
        checkpoint: Option<serde_json::Value>,
        save: &'a SaveCheckpoint<'a>,
    ) -> Result<Bundle, IssueError> {
        match self {
            AnyIssuer::Acme(i) => {
                i.issue_resumable(request, key, origin, checkpoint, save)
                    .await
            }
            other => other.issue(request, key, origin).await,
        }
    }

    async fn sign_csr<'a>(
        &'a self,
        request: &'a CertificateRequest,
        csr: &'a SignedCsr,
        origin: &'a RequestOrigin,
    ) -> Result<Bundle, IssueError> {
        match self {
            AnyIssuer::SelfSigned(i) => i.sign_csr(request, csr, origin).await,
            AnyIssuer::Ca(i) => i.sign_csr(request, csr, origin).await,
            AnyIssuer::Acme(i) => i.sign_csr(request, csr, origin).await,
        }
    }

    async fn renewal_window<'a>(
        &'a self,
        chain_pem: &'a str,
    ) -> Result<Option<RenewalWindow>, IssueError> {
        match self {
            AnyIssuer::Acme(i) => i.renewal_window(chain_pem).await,
            _ => Ok(None),
        }
    }
}
