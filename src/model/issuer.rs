//! The contract between the engine and whatever signs: the [`Issuer`]
//! trait, what it is told about the requester, and how it fails.
//!
//! Errors are typed so the renewal queue can choose a retry schedule without
//! parsing messages: transient failures retry soon, rate limits honour the
//! server's `Retry-After`, and rejections wait long, since retrying them
//! soon cannot help.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use super::bundle::Bundle;
use super::key::{KeyError, PrivateKey};
use super::progress::OrderProgress;
use super::request::{CertificateRequest, SignedCsr};

/// Who a certificate is for, as the caller knows it. ACME solvers need it:
/// HTTP-01 routes are made in `namespace`, and solver `matchLabels`
/// selectors compare with `labels`. Passed with every issuance; issuers
/// that sign in-process ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    /// Route challenges through this existing Ingress-like object instead
    /// of a temporary one (cert-manager's edit-in-place).
    pub edit_in_place: Option<String>,
    /// The object (kind, name) an HTTP-01 route attaches to, for a
    /// certificate made for a Gateway (cert-manager's
    /// `http01-parentrefkind`/`-parentrefname`): it replaces the issuer's
    /// parent references.
    pub http01_parent: Option<(String, String)>,
    /// The certificate this issuance replaces, as its ACME renewal
    /// information identifier (RFC 9773 §4.1, `base64url(AKI).base64url(serial)`):
    /// an ACME server that knows it exempts the replacement from rate limits.
    pub replaces: Option<String>,
}

/// When an issuer suggests renewing a certificate it issued: ACME renewal
/// information (RFC 9773). The window moves (a CA about to revoke moves it
/// into the past), so it is asked again at `check_again`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalWindow {
    pub start: SystemTime,
    pub end: SystemTime,
    /// The server's `Retry-After`: when to ask again.
    pub check_again: SystemTime,
    /// The server's page explaining the window, when it has one.
    pub explanation_url: Option<String>,
}

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

/// An underlying failure kept as an [`IssueError`]'s source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an issuance failed, by what the caller should do about it.
///
/// Variants that wrap another failure keep it as their `source()` (so a
/// caller can still look at the transport's or the API server's own error)
/// and also spell its whole chain in their message: the message is what a
/// user reads in a status condition or a log line, which show no chain.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// Network trouble, server errors, bad nonces after retries: retry soon.
    #[error("transient failure: {0}")]
    Transient(String),
    /// [`IssueError::Transient`] caused by `source` while `context`.
    #[error("transient failure: {context}: {}", chain(source.as_ref()))]
    TransientCause {
        context: String,
        #[source]
        source: BoxError,
    },
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
    /// [`IssueError::Config`] caused by `source` while `context`.
    #[error("issuer misconfigured: {context}: {}", chain(source.as_ref()))]
    ConfigCause {
        context: String,
        #[source]
        source: BoxError,
    },
    /// The issued bundle failed its checks and was not returned.
    #[error("issued certificate failed checks: {0}")]
    BadBundle(String),
    /// A key could not be generated, read or encoded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The certificate could not be built or parsed (see `pki::PkiError`).
    #[error(transparent)]
    Pki(Box<dyn std::error::Error + Send + Sync>),
}

impl IssueError {
    /// A transient failure caused by `source` while doing `context`.
    pub fn transient_because(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        IssueError::TransientCause {
            context: context.into(),
            source: source.into(),
        }
    }

    /// A configuration failure caused by `source` while reading `context`.
    pub fn config_because(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        IssueError::ConfigCause {
            context: context.into(),
            source: source.into(),
        }
    }

    /// A copy for a second use: the message and retry class survive, the
    /// wrapped source does not (`IssueError` is not `Clone`). Used where one
    /// issuer-lookup failure is reported for several certificates.
    pub fn duplicate(&self) -> IssueError {
        match self {
            IssueError::Transient(m) => IssueError::Transient(m.clone()),
            IssueError::TransientCause { context, source } => {
                IssueError::Transient(format!("{context}: {}", chain(source.as_ref())))
            }
            IssueError::Config(m) => IssueError::Config(m.clone()),
            IssueError::ConfigCause { context, source } => {
                IssueError::Config(format!("{context}: {}", chain(source.as_ref())))
            }
            other => IssueError::Config(other.to_string()),
        }
    }

    /// Whether a quick retry might succeed (the queue's short backoff).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            IssueError::Transient(_) | IssueError::TransientCause { .. }
        )
    }

    /// Whether a human must change the issuer's configuration.
    pub fn is_config(&self) -> bool {
        matches!(self, IssueError::Config(_) | IssueError::ConfigCause { .. })
    }
}

/// "outer: cause: root cause", skipping causes whose text the outer
/// message already holds: top-level transport messages ("client error
/// (Connect)") say little on their own.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut current = err.source();
    while let Some(e) = current {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        current = e.source();
    }
    out
}

/// Something that signs certificates.
pub trait Issuer: Send + Sync {
    /// A short kind for metrics and messages: `selfsigned`, `ca`, `acme`.
    fn kind(&self) -> &'static str;

    /// Issues a certificate for `request` with `key` (generated or reused by
    /// the caller according to the rotation policy) and returns the checked
    /// bundle. `origin` says who asked (see [`RequestOrigin`]).
    fn issue(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        origin: &RequestOrigin,
    ) -> impl Future<Output = Result<Bundle, IssueError>> + Send;

    /// Issues like [`Issuer::issue`], but resumable across restarts: when
    /// an interrupted attempt left a `checkpoint`, continue from it (the
    /// same ACME order, not a new one); before a slow step that can be
    /// resumed, hand a new [`Checkpoint::Resume`] to `save` so the caller
    /// persists it, and report how an order at another party goes with
    /// [`Checkpoint::Progress`]. Issuers with nothing to resume simply
    /// issue.
    fn issue_resumable<'a>(
        &'a self,
        request: &'a CertificateRequest,
        key: &'a PrivateKey,
        origin: &'a RequestOrigin,
        checkpoint: Option<serde_json::Value>,
        save: &'a SaveCheckpoint<'a>,
    ) -> impl Future<Output = Result<Bundle, IssueError>> + Send + 'a {
        let _ = (checkpoint, save);
        self.issue(request, key, origin)
    }

    /// Signs a request made elsewhere (a CertificateRequest resource): the
    /// certificate says what `request` says and carries `csr`'s public key;
    /// the bundle's `key_pem` is empty, the key stays with its owner.
    /// Issuers that sign with the certificate's own private key
    /// (SelfSigned) refuse: their caller must find that key.
    fn sign_csr<'a>(
        &'a self,
        request: &'a CertificateRequest,
        csr: &'a SignedCsr,
        origin: &'a RequestOrigin,
    ) -> impl Future<Output = Result<Bundle, IssueError>> + Send + 'a {
        let _ = (request, csr, origin);
        std::future::ready(Err(IssueError::Config(format!(
            "the {} issuer signs with the certificate's own private key, which a certificate signing request does not carry",
            self.kind()
        ))))
    }

    /// When the issuer suggests renewing the certificate at the head of
    /// `chain_pem`, if it says (ACME servers with renewal information do;
    /// `None` means: use the certificate's own renewal rule).
    fn renewal_window<'a>(
        &'a self,
        chain_pem: &'a str,
    ) -> impl Future<Output = Result<Option<RenewalWindow>, IssueError>> + Send + 'a {
        let _ = chain_pem;
        std::future::ready(Ok(None))
    }
}

/// What an issuer hands its caller while an issuance runs (see
/// [`Issuer::issue_resumable`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Checkpoint {
    /// Where to pick the issuance up after a restart (an ACME order
    /// record); opaque to the caller, who stores it where private keys
    /// may be stored.
    Resume(serde_json::Value),
    /// How the order in flight is going, for people (`certweave status`).
    Progress(OrderProgress),
}

/// Persists an issuer's checkpoint (see [`Issuer::issue_resumable`]).
pub type SaveCheckpoint<'a> = dyn Fn(Checkpoint) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>
    + Send
    + Sync
    + 'a;
