//! Issuers: turn a [`CertificateRequest`] and a private key into a signed
//! [`Bundle`] — cert-manager's `Sign(request) → bundle`.
//!
//! Errors are typed so the renewal queue can choose a retry schedule without
//! parsing messages: transient failures retry soon, rate limits honour the
//! server's `Retry-After`, and rejections wait long, since retrying them
//! soon cannot help.

pub mod acme;
pub mod any;
pub mod ca;
pub mod from_spec;
pub mod selfsigned;

use std::future::Future;
use std::time::Duration;

use crate::engine::{Bundle, CertificateRequest};
use crate::pki::{PkiError, PrivateKey};

/// One ACME problem document (RFC 8555 §6.7), kept whole so users see the
/// server's own words, including per-identifier subproblems.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problem {
    pub kind: String,
    pub detail: String,
    /// `(identifier, type, detail)` for each subproblem.
    pub subproblems: Vec<(String, String, String)>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)?;
        for (identifier, kind, detail) in &self.subproblems {
            write!(f, "; {identifier}: {kind}: {detail}")?;
        }
        Ok(())
    }
}

/// Why an issuance failed, by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Network trouble, server errors, bad nonces after retries: retry soon.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The server's rate limit: retry after `retry_after` if given.
    #[error("rate limited by the ACME server{}: {problem}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        retry_after: Option<Duration>,
        problem: Problem,
    },
    /// The request itself was refused (bad identifier, unauthorized,
    /// malformed): retrying soon will not help.
    #[error("request rejected: {0}")]
    Rejected(Problem),
    /// A challenge failed validation; the problem says which name and why.
    #[error("challenge failed: {0}")]
    ChallengeFailed(Problem),
    /// The issuer is misconfigured (missing CA key, wildcard over HTTP-01,
    /// unusable account key): a human must change something.
    #[error("issuer misconfigured: {0}")]
    Config(String),
    /// The issued bundle failed its checks and was not returned.
    #[error("issued certificate failed checks: {0}")]
    BadBundle(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

impl IssueError {
    /// A copy for a second use: the message and retry class survive, the
    /// wrapped source does not (`IssueError` is not `Clone`). Used where one
    /// issuer-lookup failure is reported for several certificates.
    pub fn duplicate(&self) -> IssueError {
        match self {
            IssueError::Transient(m) => IssueError::Transient(m.clone()),
            other => IssueError::Config(other.to_string()),
        }
    }
}

impl IssueError {
    /// Whether a quick retry might succeed (the queue's short backoff).
    pub fn is_transient(&self) -> bool {
        matches!(self, IssueError::Transient(_))
    }
}

/// Something that signs certificates.
pub trait Issuer: Send + Sync {
    /// A short kind for metrics and messages: `selfsigned`, `ca`, `acme`.
    fn kind(&self) -> &'static str;

    /// Issues a certificate for `request` with `key` (generated or reused by
    /// the caller according to the rotation policy) and returns the checked
    /// bundle.
    fn issue(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
    ) -> impl Future<Output = Result<Bundle, IssueError>> + Send;

    /// Issues like [`Issuer::issue`], but resumable across restarts: when
    /// an interrupted attempt left a `checkpoint`, continue from it (the
    /// same ACME order, not a new one); before a slow step that can be
    /// resumed, hand a new checkpoint to `save` so the caller persists it.
    /// Issuers with nothing to resume simply issue.
    fn issue_resumable<'a>(
        &'a self,
        request: &'a CertificateRequest,
        key: &'a PrivateKey,
        checkpoint: Option<serde_json::Value>,
        save: &'a SaveCheckpoint<'a>,
    ) -> impl Future<Output = Result<Bundle, IssueError>> + Send + 'a {
        let _ = (checkpoint, save);
        self.issue(request, key)
    }
}

/// The bundle an in-process issuer returns: the key in the requested
/// encoding, checked against the request and verified to `ca_pem` before
/// anyone can store it.
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

/// Persists an issuer's checkpoint (see [`Issuer::issue_resumable`]).
pub type SaveCheckpoint<'a> = dyn Fn(serde_json::Value) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>
    + Send
    + Sync
    + 'a;
