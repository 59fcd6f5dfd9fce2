//! Signs CertificateRequests, as cert-manager's issuer controllers do: once
//! approved, a request is checked, handed to the issuer it names, and ends
//! `Ready` with one of the reasons `Issued`, `Failed`, `Denied` or
//! `InvalidRequest`; until then it is `Pending` with the reason why. An
//! ended request is never looked at again (its spec is immutable).
//!
//! Requests for certweave's issuers are approved automatically unless
//! `--disable-auto-approval` is given (then an approver such as
//! approver-policy, or `cmctl approve`, decides). Requests for other issuer
//! groups belong to external issuers and are left alone entirely.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::events::EventPublisher;
use super::issuers::IssuerResolver;
use super::scope::{namespaced_or_all, WatchScope};
use crate::api::certificate::CertificateCondition;
use crate::api::certificate_request::{
    condition, is_for_certweave, reason, CertificateRequest, CertificateRequestStatus,
    PRIVATE_KEY_SECRET_ANNOTATION,
};
use crate::issuers::any::AnyIssuer;
use crate::model::{Bundle, IssueError, Issuer, PrivateKey, RequestOrigin};

/// How long a request waits before another look when its issuer is
/// missing, not usable yet, or the signing failed for a passing reason.
const RETRY: Duration = Duration::from_secs(30);

/// Longest message written into a condition.
const MAX_MESSAGE: usize = 1024;

/// What the reconciler needs.
pub struct RequestSigner {
    pub client: Client,
    pub resolver: Arc<IssuerResolver>,
    pub events: EventPublisher,
    /// Approve requests for certweave's issuers (the default).
    pub auto_approve: bool,
    /// The namespaces whose requests are signed.
    pub scope: WatchScope,
}

/// Failures of one reconcile: the status could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the status of CertificateRequest {name}: {source}")]
pub struct StatusError {
    name: String,
    #[source]
    source: kube::Error,
}

impl RequestSigner {
    /// Reconciles every CertificateRequest until `stop` completes.
    pub async fn run(
        self: Arc<Self>,
        concurrency: usize,
        stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    ) {
        let concurrency = u16::try_from(concurrency.max(1)).unwrap_or(u16::MAX);
        let stop = stop.shared();
        // One controller per watched namespace (one in all for the whole
        // cluster): a controller's cache holds a single listing.
        let controllers = self
            .scope
            .apis(|ns| namespaced_or_all::<CertificateRequest>(&self.client, ns))
            .into_iter()
            .map(|(_, api)| {
                Controller::new(api, watcher::Config::default())
                    .with_config(ControllerConfig::default().concurrency(concurrency))
                    .graceful_shutdown_on(stop.clone())
                    .run(reconcile, error_policy, self.clone())
                    .for_each(|_| std::future::ready(()))
            });
        futures_util::future::join_all(controllers).await;
    }
}

fn error_policy(
    _request: Arc<CertificateRequest>,
    error: &StatusError,
    _signer: Arc<RequestSigner>,
) -> Action {
    tracing::warn!(%error, "retrying");
    Action::requeue(Duration::from_secs(5))
}

/// What to write after one look at a request.
enum Outcome {
    /// Approved by certweave; signing follows on the next look.
    Approved,
    /// Not signed yet, for this reason; look again after `retry` if set.
    Pending(String, Option<Duration>),
    /// Signed.
    Issued(Bundle),
    /// Ended without a certificate: (reason, message).
    Ended(&'static str, String),
}

async fn reconcile(
    request: Arc<CertificateRequest>,
    signer: Arc<RequestSigner>,
) -> Result<Action, StatusError> {
    if !is_for_certweave(&request.spec) || request.is_finished() {
        return Ok(Action::await_change());
    }
    let outcome = decide(&request, &signer).await;
    let retry = match &outcome {
        Outcome::Pending(_, retry) => *retry,
        _ => None,
    };
    write(&request, &signer, outcome).await?;
    Ok(retry.map_or_else(Action::await_change, Action::requeue))
}

async fn decide(request: &CertificateRequest, signer: &RequestSigner) -> Outcome {
    if request.is_denied() {
        return Outcome::Ended(
            reason::DENIED,
            "The CertificateRequest was denied by an approval controller".into(),
        );
    }
    if !request.is_approved() {
        if signer.auto_approve {
            return Outcome::Approved;
        }
        return Outcome::Pending(
            "Waiting for approval: the request is signed once its Approved condition is True"
                .into(),
            None,
        );
    }
    let plan = match request.spec.plan() {
        Ok(plan) => plan,
        Err(message) => return Outcome::Ended(reason::INVALID_REQUEST, message),
    };
    let namespace = request.namespace().unwrap_or_default();
    let issuer = match signer.resolver.find(&namespace, &plan.issuer) {
        Ok(resolved) => match signer.resolver.issuer(&resolved).await {
            Ok(issuer) => issuer,
            Err(e) => {
                return Outcome::Pending(
                    format!("{} is not usable yet: {e}", resolved.id),
                    Some(RETRY),
                )
            }
        },
        Err(e) => return Outcome::Pending(e.to_string(), Some(RETRY)),
    };
    let signed = match &issuer {
        AnyIssuer::SelfSigned(self_signed) => {
            let key = match private_key(request, &signer.client, &namespace).await {
                Ok(key) => key,
                Err(outcome) => return outcome,
            };
            if key.public_key_der() != plan.csr.spki_der {
                return Outcome::Ended(
                    reason::FAILED,
                    format!("the private key in the Secret named by {PRIVATE_KEY_SECRET_ANNOTATION} is not the key of spec.request; name the Secret that holds the request's key"),
                );
            }
            self_signed.sign(&plan.request, &key)
        }
        other => {
            let origin = RequestOrigin {
                namespace: namespace.clone(),
                labels: request.labels().clone(),
                ..Default::default()
            };
            other.sign_csr(&plan.request, &plan.csr, &origin).await
        }
    };
    match signed {
        Ok(bundle) => Outcome::Issued(bundle),
        Err(e @ (IssueError::Transient(_) | IssueError::TransientCause { .. })) => {
            Outcome::Pending(format!("Signing will be retried: {e}"), Some(RETRY))
        }
        Err(IssueError::RateLimited { .. }) => Outcome::Pending(
            "The issuer is rate-limited; signing will be retried".into(),
            Some(RETRY),
        ),
        Err(e) => Outcome::Ended(reason::FAILED, e.to_string()),
    }
}

/// The private key a SelfSigned issuer signs with: `tls.key` of the Secret
/// named by the request's annotation, in the request's namespace.
async fn private_key(
    request: &CertificateRequest,
    client: &Client,
    namespace: &str,
) -> Result<PrivateKey, Outcome> {
    let Some(name) = request
        .annotations()
        .get(PRIVATE_KEY_SECRET_ANNOTATION)
        .filter(|n| !n.is_empty())
    else {
        return Err(Outcome::Ended(
            reason::FAILED,
            format!("a SelfSigned issuer signs with the request's own private key: annotate the request with {PRIVATE_KEY_SECRET_ANNOTATION} naming the Secret (key tls.key) that holds it"),
        ));
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = match secrets.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(Outcome::Pending(
                format!("Secret {namespace}/{name} with the private key does not exist yet"),
                Some(RETRY),
            ))
        }
        Err(e) => {
            return Err(Outcome::Pending(
                format!("cannot read Secret {namespace}/{name}: {e}"),
                Some(RETRY),
            ))
        }
    };
    let pem = secret
        .data
        .as_ref()
        .and_then(|d| d.get("tls.key"))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default();
    PrivateKey::from_pem(&pem).map_err(|e| {
        Outcome::Ended(
            reason::FAILED,
            format!("tls.key of Secret {namespace}/{name} is not a usable private key: {e}"),
        )
    })
}

fn now() -> Option<Time> {
    k8s_openapi::jiff::Timestamp::try_from(std::time::SystemTime::now())
        .ok()
        .map(Time)
}

/// Sets a condition, keeping its transition time while its status holds.
fn set_condition(
    status: &mut CertificateRequestStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) {
    let mut message = message.to_owned();
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    let previous = status.conditions.iter().position(|c| c.type_ == type_);
    let transition = match previous.map(|i| &status.conditions[i]) {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => now(),
    };
    let condition = CertificateCondition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_transition_time: transition,
        observed_generation: None,
    };
    match previous {
        Some(i) => status.conditions[i] = condition,
        None => status.conditions.push(condition),
    }
}

/// The status after `outcome`, or `None` when it is unchanged.
fn next_status(
    current: Option<&CertificateRequestStatus>,
    outcome: &Outcome,
) -> Option<CertificateRequestStatus> {
    let before = current.cloned().unwrap_or_default();
    let mut status = before.clone();
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    match outcome {
        Outcome::Approved => set_condition(
            &mut status,
            condition::APPROVED,
            "True",
            reason::APPROVED_BY,
            "Certificate request has been approved by cert-manager.io",
        ),
        Outcome::Pending(message, _) => set_condition(
            &mut status,
            condition::READY,
            "False",
            reason::PENDING,
            message,
        ),
        Outcome::Issued(bundle) => {
            status.certificate = Some(b64(&bundle.chain_pem));
            status.ca = bundle.ca_pem.as_deref().map(b64);
            set_condition(
                &mut status,
                condition::READY,
                "True",
                reason::ISSUED,
                "Certificate fetched from issuer successfully",
            );
        }
        Outcome::Ended(why, message) => {
            if *why == reason::INVALID_REQUEST {
                set_condition(
                    &mut status,
                    condition::INVALID_REQUEST,
                    "True",
                    why,
                    message,
                );
            }
            set_condition(&mut status, condition::READY, "False", why, message);
            status.failure_time = now();
        }
    }
    (status != before).then_some(status)
}

async fn write(
    request: &CertificateRequest,
    signer: &RequestSigner,
    outcome: Outcome,
) -> Result<(), StatusError> {
    let Some(status) = next_status(request.status.as_ref(), &outcome) else {
        return Ok(());
    };
    let name = request.name_any();
    let namespace = request.namespace().unwrap_or_default();
    let api: Api<CertificateRequest> = Api::namespaced(signer.client.clone(), &namespace);
    // The resource version makes a concurrent approval or denial win: the
    // patch is refused (409) and the request is looked at again.
    let patch = json!({
        "metadata": {"resourceVersion": request.resource_version()},
        "status": status,
    });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| StatusError {
            name: format!("{namespace}/{name}"),
            source,
        })?;
    let reference = request.object_ref(&());
    match &outcome {
        Outcome::Issued(_) => {
            signer
                .events
                .publish(
                    &reference,
                    super::events::EventType::Normal,
                    "CertificateIssued",
                    "Certificate fetched from issuer successfully",
                )
                .await
        }
        Outcome::Ended(why, message) => {
            signer
                .events
                .publish(&reference, super::events::EventType::Warning, why, message)
                .await
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_cert_managers_vocabulary() {
        let approved = next_status(None, &Outcome::Approved).unwrap();
        assert_eq!(approved.conditions[0].type_, "Approved");
        assert_eq!(
            approved.conditions[0].reason.as_deref(),
            Some("cert-manager.io")
        );
        assert!(
            next_status(Some(&approved), &Outcome::Approved).is_none(),
            "idempotent"
        );

        let pending =
            next_status(Some(&approved), &Outcome::Pending("waiting".into(), None)).unwrap();
        assert_eq!(pending.conditions.len(), 2);
        assert!(next_status(Some(&pending), &Outcome::Pending("waiting".into(), None)).is_none());

        let invalid = next_status(
            Some(&pending),
            &Outcome::Ended(reason::INVALID_REQUEST, "spec.request: bad".into()),
        )
        .unwrap();
        let ready = invalid
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("InvalidRequest"));
        assert!(invalid
            .conditions
            .iter()
            .any(|c| c.type_ == "InvalidRequest" && c.status == "True"));
        assert!(invalid.failure_time.is_some());

        let issued = next_status(
            Some(&approved),
            &Outcome::Issued(Bundle {
                chain_pem: "CHAIN".into(),
                key_pem: String::new(),
                ca_pem: Some("CA".into()),
            }),
        )
        .unwrap();
        assert_eq!(issued.certificate.as_deref(), Some("Q0hBSU4="));
        assert_eq!(issued.ca.as_deref(), Some("Q0E="));
        assert!(issued.failure_time.is_none());

        let long = "x".repeat(5000);
        let failed = next_status(None, &Outcome::Ended(reason::FAILED, long)).unwrap();
        assert!(failed.conditions[0].message.as_ref().unwrap().len() <= MAX_MESSAGE + 3);
    }
}
