//! One certificate, one step: compare what is stored with what is wanted,
//! issue if needed, record the outcome, and say when to look again.
//!
//! This is store- and issuer-agnostic: `certweave local` runs it against a
//! directory, the controller against Secrets. The rules that protect users
//! live here once:
//! - a valid bundle is replaced only by a checked new one (the issuer
//!   checks it, and nothing is written on failure);
//! - a failure never touches the Secret; it is counted and backed off;
//! - re-issue at once when the Secret is missing, unparsable, its key does
//!   not match, or its names, key algorithm, CA flag or issuer differ from
//!   the spec.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::engine::renewal_info;
use crate::engine::scheduler::Slot;
use crate::engine::timing::{backoff, FailureClass, RenewBefore};
use crate::model::{
    Bundle, CertificateRequest, Checkpoint, IssueError, Issuer, KeyRotation, OrderProgress,
    PrivateKey, RequestOrigin,
};
use crate::pki::{self, CertInfo};
use crate::store::{
    CertificateState, ObjectKey, OutputFormats, SecretWrite, Store, StoreError, StoredSecret,
};

/// Secret annotations cert-manager writes, which certweave writes too.
pub mod secret_annotations {
    pub const CERTIFICATE_NAME: &str = "cert-manager.io/certificate-name";
    pub const ISSUER_NAME: &str = "cert-manager.io/issuer-name";
    pub const ISSUER_KIND: &str = "cert-manager.io/issuer-kind";
    pub const ISSUER_GROUP: &str = "cert-manager.io/issuer-group";
    pub const COMMON_NAME: &str = "cert-manager.io/common-name";
    pub const ALT_NAMES: &str = "cert-manager.io/alt-names";
    pub const IP_SANS: &str = "cert-manager.io/ip-sans";
    pub const URI_SANS: &str = "cert-manager.io/uri-sans";
    /// What the certificate was requested with that the stored
    /// certificate cannot be compared with directly: subject attributes
    /// (ACME servers drop them), otherNames and name constraints. A change
    /// re-issues, and an ACME certificate is not re-issued forever for
    /// lacking what the server dropped.
    pub const REQUESTED: &str = "certweave.io/requested";
}

/// Everything needed to keep one certificate fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Managed {
    pub certificate: ObjectKey,
    pub secret: ObjectKey,
    pub request: CertificateRequest,
    pub renew_before: RenewBefore,
    pub rotation: KeyRotation,
    /// The issuer's kind and name, recorded on the Secret: a change of
    /// issuer re-issues.
    pub issuer_kind: String,
    pub issuer_name: String,
    /// The issuer's API group, recorded on the Secret as cert-manager does.
    pub issuer_group: String,
    /// Who the certificate is for, passed to the issuer.
    pub origin: RequestOrigin,
    pub secret_labels: BTreeMap<String, String>,
    pub secret_annotations: BTreeMap<String, String>,
    /// Extra encodings written beside `tls.crt` and `tls.key`.
    pub output_formats: OutputFormats,
    /// A user asked for a new certificate now, whatever the stored one is
    /// worth (`certweave renew`, `cmctl renew`).
    pub renew_now: bool,
}

impl Managed {
    /// The scheduler group of this certificate: its issuer.
    pub fn issuer_group(&self) -> String {
        issuer_group(
            &self.issuer_kind,
            &self.certificate.namespace,
            &self.issuer_name,
        )
    }
}

/// One issuer's name for the scheduler's per-group share of slots
/// ([`crate::engine::scheduler::Job::group`]): `Issuer/<namespace>/<name>`
/// or `ClusterIssuer/<name>`.
pub fn issuer_group(kind: &str, certificate_namespace: &str, name: &str) -> String {
    match kind {
        "ClusterIssuer" => format!("ClusterIssuer/{name}"),
        _ => format!("Issuer/{certificate_namespace}/{name}"),
    }
}

/// What the stored Secret is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    /// Valid and matching; renew at `renewal_time`.
    Valid {
        leaf: Box<CertInfo>,
        renewal_time: SystemTime,
    },
    /// Issue now, for this reason (shown to users).
    Issue { reason: String },
}

/// Compares the stored Secret with the wanted certificate.
pub fn evaluate(managed: &Managed, secret: Option<&StoredSecret>, now: SystemTime) -> Evaluation {
    let issue = |reason: String| Evaluation::Issue { reason };
    let Some(secret) = secret else {
        return issue(format!("Secret {} does not exist", managed.secret));
    };
    let (Some(chain), Some(key)) = (&secret.tls_crt, &secret.tls_key) else {
        return issue(format!(
            "Secret {} lacks tls.crt or tls.key",
            managed.secret
        ));
    };
    let leaf = match pki::check_bundle(chain, key, Some(&managed.request), now) {
        Ok(leaf) => leaf,
        Err(problem) => return issue(format!("stored certificate is not usable: {problem}")),
    };
    let request = &managed.request;
    let wanted: BTreeSet<String> = request
        .dns_names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let have: BTreeSet<String> = leaf
        .dns_names
        .iter()
        .map(|n| n.to_ascii_lowercase())
        .collect();
    if wanted != have
        || request.ip_addresses.iter().collect::<BTreeSet<_>>()
            != leaf.ip_addresses.iter().collect()
        || request.uris.iter().collect::<BTreeSet<_>>() != leaf.uris.iter().collect()
        || request.email_addresses.iter().collect::<BTreeSet<_>>()
            != leaf.email_addresses.iter().collect()
    {
        return issue("the names in the spec differ from the stored certificate".into());
    }
    if request.common_name.is_some() && request.common_name != leaf.subject_cn {
        return issue("the common name in the spec differs from the stored certificate".into());
    }
    let requested = secret
        .annotations
        .get(secret_annotations::REQUESTED)
        .map(String::as_str)
        .unwrap_or_default();
    if requested != requested_text(request) {
        return issue(
            "the subject, otherNames or nameConstraints in the spec differ from the stored certificate's"
                .into(),
        );
    }
    if request.is_ca != leaf.is_ca {
        return issue("isCA in the spec differs from the stored certificate".into());
    }
    match PrivateKey::from_pem(key) {
        Ok(k) if k.algorithm() == request.key_algorithm => {}
        Ok(k) => {
            return issue(format!(
                "the stored key is {}, the spec asks for {}",
                k.algorithm(),
                request.key_algorithm
            ))
        }
        Err(e) => return issue(format!("the stored key is unusable: {e}")),
    }
    let annotation = |k: &str| secret.annotations.get(k).map(String::as_str);
    if annotation(secret_annotations::ISSUER_NAME).is_some_and(|n| n != managed.issuer_name)
        || annotation(secret_annotations::ISSUER_KIND).is_some_and(|k| k != managed.issuer_kind)
    {
        return issue(
            "the issuer in the spec differs from the one that signed the stored certificate".into(),
        );
    }
    let renewal_time = managed
        .renew_before
        .renewal_time(leaf.not_before, leaf.not_after);
    if now >= renewal_time {
        return issue("the renewal time has been reached".into());
    }
    Evaluation::Valid {
        leaf: Box::new(leaf),
        renewal_time,
    }
}

/// The result of one reconcile step.
#[derive(Debug)]
pub struct Step {
    /// When to look at this certificate again.
    pub next: SystemTime,
    /// Whether a new bundle was written.
    pub issued: bool,
    pub state: CertificateState,
    /// The failure, when the step failed.
    pub error: Option<String>,
    /// Why an issuance was attempted, when one was.
    pub issuing_because: Option<String>,
}

/// Failures of the store itself (the issuer's failures are recorded in the
/// state and retried).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Drops a recorded failure backoff, so the next [`reconcile`] tries at
/// once: what a forced evaluation (a changed spec, a user's request) does
/// first.
pub async fn clear_backoff<S: Store>(store: &S, certificate: &ObjectKey) -> Result<(), StoreError> {
    if let Some(mut state) = store.read_state(certificate).await? {
        if state.next_attempt.take().is_some() {
            store.write_state(certificate, &state).await?;
        }
    }
    Ok(())
}

/// How a failure is retried.
pub fn failure_class(error: &IssueError) -> FailureClass {
    match error {
        e if e.is_transient() => FailureClass::Transient,
        IssueError::RateLimited { retry_after, .. } => FailureClass::RateLimited(*retry_after),
        _ => FailureClass::Permanent,
    }
}

/// Evaluates one certificate and issues it when needed. `issuer` is
/// `Err` when the issuer cannot be built right now (e.g. a CA Secret that
/// another certificate has not produced yet); that counts as a failure.
pub async fn reconcile<S: Store, I: Issuer>(
    store: &S,
    managed: &Managed,
    issuer: Result<&I, IssueError>,
    now: SystemTime,
) -> Result<Step, ReconcileError> {
    reconcile_holding(store, managed, issuer, now, &Slot::detached()).await
}

/// [`reconcile`] for the scheduler: `slot` is released once the issuance
/// only waits for another party (an ACME order whose challenges are
/// presented), so that waits do not hold up issuances that need only this
/// process.
pub async fn reconcile_holding<S: Store, I: Issuer>(
    store: &S,
    managed: &Managed,
    issuer: Result<&I, IssueError>,
    now: SystemTime,
    slot: &Slot,
) -> Result<Step, ReconcileError> {
    let secret = store.read_secret(&managed.secret).await?;
    let mut state = store
        .read_state(&managed.certificate)
        .await?
        .unwrap_or_default();
    let evaluation = if managed.renew_now {
        Evaluation::Issue {
            reason: "re-issuance was requested (ManuallyTriggered)".into(),
        }
    } else {
        evaluate(managed, secret.as_ref(), now)
    };
    let reason = match evaluation {
        Evaluation::Valid { leaf, renewal_time } => {
            if let Some(stored) = secret
                .as_ref()
                .filter(|s| !s.outputs_match(&managed.output_formats))
            {
                rewrite_outputs(store, managed, stored).await?;
            }
            let chain = secret.as_ref().and_then(|s| s.tls_crt.as_deref());
            let ari = match (issuer.as_ref(), chain) {
                (Ok(issuer), Some(chain)) => {
                    renewal_info::renewal_information(
                        *issuer,
                        managed,
                        chain,
                        &leaf.serial_hex,
                        state.ari.as_ref(),
                        now,
                    )
                    .await
                }
                _ => None,
            };
            let suggested = ari.as_ref().and_then(|a| a.renewal_time);
            let renewal_time = match (suggested, managed.renew_before) {
                // The server's window replaces the default rule; a
                // renewBefore the user chose still holds if it comes first.
                (Some(suggested), RenewBefore::Default) => suggested,
                (Some(suggested), _) => suggested.min(renewal_time),
                (None, _) => renewal_time,
            };
            if now < renewal_time {
                let next = ari
                    .as_ref()
                    .and_then(|a| a.check_again)
                    .map_or(renewal_time, |check| check.min(renewal_time));
                let fresh = CertificateState {
                    not_before: Some(leaf.not_before),
                    not_after: Some(leaf.not_after),
                    renewal_time: Some(renewal_time),
                    ready: true,
                    message: Some("Certificate is up to date and has not expired".into()),
                    failed_issuance_attempts: 0,
                    last_failure_time: None,
                    next_attempt: None,
                    order: None,
                    order_progress: None,
                    ari,
                    ..state.clone()
                };
                if fresh != state {
                    store.write_state(&managed.certificate, &fresh).await?;
                }
                return Ok(Step {
                    next,
                    issued: false,
                    state: fresh,
                    error: None,
                    issuing_because: None,
                });
            }
            state.ari = ari;
            "the issuer's suggested renewal window (ACME renewal information) has been reached"
                .to_owned()
        }
        Evaluation::Issue { reason } => reason,
    };
    // A backoff recorded before a restart still holds.
    if let Some(next) = state.next_attempt.filter(|next| *next > now) {
        return Ok(Step {
            next,
            issued: false,
            state,
            error: None,
            issuing_because: None,
        });
    }
    tracing::info!(certificate = %managed.certificate, %reason, "issuing");

    let (result, progress) = match issuer {
        Ok(issuer) => issue_with(store, issuer, managed, secret.as_ref(), &state, slot).await,
        Err(e) => (Err(e), None),
    };
    match result {
        Ok(bundle) => {
            let leaf = pki::check_bundle(
                &bundle.chain_pem,
                &bundle.key_pem,
                Some(&managed.request),
                SystemTime::now(),
            )
            .expect("issuers return checked bundles");
            let write = SecretWrite {
                bundle: &bundle,
                annotations: annotations_for(managed),
                labels: managed.secret_labels.clone(),
                formats: &managed.output_formats,
            };
            store.write_secret(&managed.secret, &write).await?;
            let renewal_time = managed
                .renew_before
                .renewal_time(leaf.not_before, leaf.not_after);
            let new_state = CertificateState {
                revision: state.revision + 1,
                not_before: Some(leaf.not_before),
                not_after: Some(leaf.not_after),
                renewal_time: Some(renewal_time),
                failed_issuance_attempts: 0,
                last_failure_time: None,
                next_attempt: None,
                ready: true,
                message: Some(format!("Certificate issued ({reason})")),
                order: None,
                order_progress: None,
                ari: None,
            };
            store.write_state(&managed.certificate, &new_state).await?;
            tracing::info!(certificate = %managed.certificate, serial = %leaf.serial_hex, revision = new_state.revision, "issued");
            Ok(Step {
                next: renewal_time,
                issued: true,
                state: new_state,
                error: None,
                issuing_because: Some(reason.clone()),
            })
        }
        Err(error) => {
            let attempts = state.failed_issuance_attempts.saturating_add(1);
            let wait = backoff(failure_class(&error), attempts);
            let next = now + wait;
            state.failed_issuance_attempts = attempts;
            // What this attempt saw of its order; none when it failed
            // before reaching one.
            state.order_progress = progress;
            // A transient failure keeps the recorded order so the retry
            // resumes it; any other failure means the order is spent.
            state.order = match failure_class(&error) {
                FailureClass::Transient => store
                    .read_state(&managed.certificate)
                    .await?
                    .and_then(|s| s.order),
                _ => None,
            };
            state.last_failure_time = Some(now);
            state.next_attempt = Some(next);
            // Ready stays true while the stored certificate is still valid.
            state.ready = secret
                .as_ref()
                .and_then(|s| {
                    Some(
                        pki::check_bundle(s.tls_crt.as_ref()?, s.tls_key.as_ref()?, None, now)
                            .is_ok(),
                    )
                })
                .unwrap_or(false);
            let message = format!(
                "issuance failed (attempt {attempts}, next in {}s): {error}",
                wait.as_secs()
            );
            state.message = Some(message.clone());
            store.write_state(&managed.certificate, &state).await?;
            tracing::warn!(certificate = %managed.certificate, error = %error, attempts, retry_in_secs = wait.as_secs(), "issuance failed");
            Ok(Step {
                next,
                issued: false,
                state,
                error: Some(message),
                issuing_because: Some(reason.clone()),
            })
        }
    }
}

/// Picks the key (reuse under `rotationPolicy: Never` when it still fits)
/// and asks the issuer; returns, beside the outcome, the last progress the
/// issuer reported of its order.
async fn issue_with<S: Store, I: Issuer>(
    store: &S,
    issuer: &I,
    managed: &Managed,
    secret: Option<&StoredSecret>,
    state: &CertificateState,
    slot: &Slot,
) -> (
    Result<crate::model::Bundle, IssueError>,
    Option<OrderProgress>,
) {
    let recorded = std::sync::Mutex::new(CertificateState {
        order_progress: None,
        ..state.clone()
    });
    let result = issue_recording(store, issuer, managed, secret, &recorded, slot).await;
    let progress = recorded
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .order_progress;
    (result, progress)
}

/// [`issue_with`]'s work: what the issuer hands back while it runs is
/// folded into `recorded` and written, so a restart resumes the order and
/// `certweave status` shows how it goes.
async fn issue_recording<S: Store, I: Issuer>(
    store: &S,
    issuer: &I,
    managed: &Managed,
    secret: Option<&StoredSecret>,
    recorded: &std::sync::Mutex<CertificateState>,
    slot: &Slot,
) -> Result<crate::model::Bundle, IssueError> {
    let reusable = match managed.rotation {
        KeyRotation::Never => secret
            .and_then(|s| s.tls_key.as_deref())
            .and_then(|pem| PrivateKey::from_pem(pem).ok())
            .filter(|k| k.algorithm() == managed.request.key_algorithm),
        KeyRotation::Always => None,
    };
    let key = match reusable {
        Some(key) => key,
        None => super::keygen::generate(managed.request.key_algorithm).await?,
    };
    // An order in flight is recorded before the slow part, so a restart
    // resumes it instead of opening another.
    let save = |checkpoint: Checkpoint| -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        let resumable = matches!(checkpoint, Checkpoint::Resume(_));
        let snapshot = {
            let mut recorded = recorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match checkpoint {
                Checkpoint::Resume(order) => recorded.order = Some(order),
                Checkpoint::Progress(progress) => {
                    // Challenges presented: from here on the ACME server
                    // works, not this process.
                    if progress.state == "pending" {
                        slot.release();
                    }
                    recorded.order_progress = Some(progress);
                }
            }
            recorded.clone()
        };
        Box::pin(async move {
            match store.write_state(&managed.certificate, &snapshot).await {
                Ok(()) => {}
                Err(e) if resumable => {
                    tracing::warn!(certificate = %managed.certificate, error = %e, "cannot record the order in flight; a restart will open a new one");
                }
                Err(e) => {
                    tracing::warn!(certificate = %managed.certificate, error = %e, "cannot record how the order goes; the status shows an older report");
                }
            }
        })
    };
    let resume_from = recorded
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .order
        .clone();
    // A renewal names the certificate it replaces (ACME renewal
    // information); other issuers ignore it.
    let origin = RequestOrigin {
        replaces: secret
            .and_then(|s| s.tls_crt.as_deref())
            .and_then(pki::ari_certificate_id),
        ..managed.origin.clone()
    };
    issuer
        .issue_resumable(&managed.request, &key, &origin, resume_from, &save)
        .await
}

/// Writes the Secret again from its own, still valid bundle, with the
/// additional output formats the spec asks for now: a changed
/// `additionalOutputFormats` needs no new certificate.
async fn rewrite_outputs<S: Store>(
    store: &S,
    managed: &Managed,
    stored: &StoredSecret,
) -> Result<(), StoreError> {
    let (Some(chain_pem), Some(key_pem)) = (stored.tls_crt.clone(), stored.tls_key.clone()) else {
        return Ok(());
    };
    let bundle = Bundle {
        chain_pem,
        key_pem,
        ca_pem: stored.ca_crt.clone(),
    };
    tracing::info!(certificate = %managed.certificate, secret = %managed.secret, "writing the additional output formats the spec asks for");
    let write = SecretWrite {
        bundle: &bundle,
        annotations: annotations_for(managed),
        labels: managed.secret_labels.clone(),
        formats: &managed.output_formats,
    };
    store.write_secret(&managed.secret, &write).await
}

fn annotations_for(managed: &Managed) -> BTreeMap<String, String> {
    use secret_annotations as a;
    let mut out = managed.secret_annotations.clone();
    let request = &managed.request;
    out.insert(a::CERTIFICATE_NAME.into(), managed.certificate.name.clone());
    out.insert(a::ISSUER_NAME.into(), managed.issuer_name.clone());
    out.insert(a::ISSUER_KIND.into(), managed.issuer_kind.clone());
    out.insert(a::ISSUER_GROUP.into(), managed.issuer_group.clone());
    out.insert(
        a::COMMON_NAME.into(),
        request.common_name.clone().unwrap_or_default(),
    );
    out.insert(a::ALT_NAMES.into(), request.dns_names.join(","));
    out.insert(
        a::IP_SANS.into(),
        request
            .ip_addresses
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    out.insert(a::URI_SANS.into(), request.uris.join(","));
    let requested = requested_text(request);
    if !requested.is_empty() {
        out.insert(a::REQUESTED.into(), requested);
    }
    if let Some(pkcs12) = &managed.output_formats.keystores.pkcs12 {
        out.insert(
            crate::store::keystore::PROFILE_ANNOTATION.into(),
            pkcs12.profile.name().into(),
        );
    }
    out
}

/// The parts of the request recorded in [`secret_annotations::REQUESTED`],
/// as text: empty when the request has none of them.
fn requested_text(request: &CertificateRequest) -> String {
    let mut parts = Vec::new();
    if !request.subject.is_empty() {
        parts.push(format!("subject: {}", request.subject));
    }
    if let Some(literal) = &request.literal_subject {
        parts.push(format!("literalSubject: {}", literal.text));
    }
    if !request.other_names.is_empty() {
        let names: Vec<String> = request
            .other_names
            .iter()
            .map(ToString::to_string)
            .collect();
        parts.push(format!("otherNames: {}", names.join(",")));
    }
    if let Some(constraints) = &request.name_constraints {
        parts.push(format!("nameConstraints: {constraints}"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuers::selfsigned::SelfSignedIssuer;
    use crate::model::{Bundle, RenewalWindow};
    use crate::store::fs::FsStore;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Signs like SelfSigned and answers renewal information as told.
    struct Windowed {
        answer: Mutex<Result<Option<RenewalWindow>, String>>,
        asked: Mutex<u32>,
    }

    impl Issuer for Windowed {
        fn kind(&self) -> &'static str {
            "windowed"
        }
        async fn issue(
            &self,
            request: &CertificateRequest,
            key: &PrivateKey,
            _origin: &RequestOrigin,
        ) -> Result<Bundle, IssueError> {
            SelfSignedIssuer::default().sign(request, key)
        }
        async fn renewal_window<'a>(
            &'a self,
            _chain_pem: &'a str,
        ) -> Result<Option<RenewalWindow>, IssueError> {
            *self.asked.lock().unwrap() += 1;
            self.answer
                .lock()
                .unwrap()
                .clone()
                .map_err(IssueError::Transient)
        }
    }

    fn managed(renew_before: RenewBefore) -> Managed {
        let mut request = CertificateRequest::for_dns_names(["ari.example.test"]);
        request.key_algorithm = crate::model::KeyAlgorithm::EcdsaP256;
        Managed {
            certificate: ObjectKey::new("default", "web"),
            secret: ObjectKey::new("default", "web-tls"),
            request,
            renew_before,
            rotation: KeyRotation::Always,
            issuer_kind: "ClusterIssuer".into(),
            issuer_name: "acme".into(),
            issuer_group: "cert-manager.io".into(),
            origin: RequestOrigin::default(),
            secret_labels: BTreeMap::new(),
            secret_annotations: BTreeMap::new(),
            output_formats: OutputFormats::default(),
            renew_now: false,
        }
    }

    #[tokio::test]
    async fn an_unanswered_question_is_asked_again_in_an_hour_and_a_chosen_renew_before_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let issuer = Windowed {
            answer: Mutex::new(Err("the server is down".into())),
            asked: Mutex::new(0),
        };
        let now = SystemTime::now();
        let m = managed(RenewBefore::Default);
        assert!(
            reconcile(&store, &m, Ok(&issuer), now)
                .await
                .unwrap()
                .issued
        );
        let step = reconcile(&store, &m, Ok(&issuer), now).await.unwrap();
        let ari = step.state.ari.clone().unwrap();
        assert_eq!(ari.check_again, Some(now + Duration::from_secs(3600)));
        assert_eq!(
            ari.renewal_time, None,
            "the certificate's own rule meanwhile"
        );
        assert_eq!(step.next, now + Duration::from_secs(3600));
        // Not asked again before then.
        reconcile(&store, &m, Ok(&issuer), now + Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(*issuer.asked.lock().unwrap(), 1);

        // A window far in the future; the user's renewBefore comes first.
        let leaf_end = step.state.not_after.unwrap();
        let window = RenewalWindow {
            start: leaf_end - Duration::from_secs(60),
            end: leaf_end,
            check_again: now + Duration::from_secs(7200),
            explanation_url: None,
        };
        *issuer.answer.lock().unwrap() = Ok(Some(window));
        let later = now + Duration::from_secs(3601);
        let fixed = managed(RenewBefore::Fixed(Duration::from_secs(30 * 86_400)));
        let step = reconcile(&store, &fixed, Ok(&issuer), later).await.unwrap();
        assert_eq!(
            step.state.renewal_time,
            Some(leaf_end - Duration::from_secs(30 * 86_400))
        );
        // With the default rule, the server's window decides.
        let mut state = step.state.clone();
        state.ari.as_mut().unwrap().check_again = Some(later);
        store.write_state(&m.certificate, &state).await.unwrap();
        let step = reconcile(&store, &m, Ok(&issuer), later).await.unwrap();
        let renewal = step.state.renewal_time.unwrap();
        assert!(leaf_end - Duration::from_secs(60) <= renewal && renewal <= leaf_end);
    }
}
