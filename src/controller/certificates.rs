//! The Certificate controller: the cluster's adapter to the engine's
//! [`Scheduler`]. The scheduler decides when a Certificate is evaluated;
//! this module says what one evaluation is: read the Certificate from the
//! cache, resolve its issuer, reconcile its Secret, publish Events and
//! metrics. The schedule itself lives in each Certificate's status (renewal
//! time, failure backoff), so a new leader rebuilds it by evaluating
//! everything once.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::controller::scope::ScopedCache;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use crate::api::acme_settings::SecretValues;
use crate::api::annotations::{
    HTTP01_OVERRIDE_INGRESS_NAME, HTTP01_PARENT_REF_KIND, HTTP01_PARENT_REF_NAME,
};
use crate::api::certificate::Certificate;
use crate::api::issuer_ref::ISSUER_GROUP;
use crate::api::keystores::KeystoreRequest;
use crate::controller::kube_store::KubeStore;
use crate::engine::reconcile::{self, Managed, ReconcileError, Step};
use crate::engine::scheduler::{self, Job, Scheduler, Slot, TriggerInbox};
use crate::metrics::ControllerMetrics;
use crate::model::{IssueError, RequestOrigin};
use crate::store::keystore::Keystores;
use crate::store::{CertificateState, ObjectKey, Store};

use super::events::{EventPublisher, EventType};
use super::issuers::IssuerResolver;

/// Why a Certificate should be looked at now: a spec change forces
/// (ignores a backoff), a change of its Secret or issuer touches, a
/// deletion forgets.
pub type Trigger = scheduler::Trigger<ObjectKey>;

/// What evaluations share.
pub struct CertificateController {
    pub store: KubeStore,
    pub resolver: Arc<IssuerResolver>,
    pub certificates: ScopedCache<Certificate>,
    pub metrics: ControllerMetrics,
    pub events: EventPublisher,
    pub concurrency: usize,
    /// Renewal requests already honoured, by Certificate: the cache may
    /// still show the request after the new certificate is written, and it
    /// must not issue twice.
    pub renewals_done: std::sync::Mutex<std::collections::HashMap<ObjectKey, String>>,
}

impl CertificateController {
    /// Runs the scheduler over every cached Certificate until `shutdown`,
    /// then waits (up to 20 s) for evaluations in flight.
    pub async fn run(
        self: Arc<Self>,
        triggers: TriggerInbox<ObjectKey>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let keys: Vec<ObjectKey> = self
            .certificates
            .state()
            .iter()
            .map(|c| key_of(c))
            .collect();
        let concurrency = self.concurrency;
        Scheduler::new(self, concurrency)
            .run(keys, triggers, shutdown)
            .await;
    }

    fn exists(&self, key: &ObjectKey) -> bool {
        self.certificates
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
            .is_some()
    }
}

impl Job for CertificateController {
    type Key = ObjectKey;
    type Error = ReconcileError;

    async fn run(
        &self,
        key: ObjectKey,
        forced: bool,
        slot: Slot,
    ) -> Result<Option<SystemTime>, ReconcileError> {
        let step = self.evaluate(&key, forced, &slot).await?;
        // Deleted while it was evaluated: the watch forgets it.
        Ok(self.exists(&key).then_some(step.next))
    }

    fn queue_depth(&self, depth: usize) {
        self.metrics.queue_depth.set(depth as i64);
    }

    fn group(&self, key: &ObjectKey) -> Option<String> {
        let certificate = self
            .certificates
            .get(&ObjectRef::new(&key.name).within(&key.namespace))?;
        let reference = &certificate.spec.issuer_ref;
        Some(crate::engine::reconcile::issuer_group(
            reference.kind.as_deref().unwrap_or("Issuer"),
            &key.namespace,
            &reference.name,
        ))
    }

    fn forgotten(&self, key: &ObjectKey) {
        self.renewals_done
            .lock()
            .expect("renewals lock")
            .remove(key);
        self.metrics.forget_certificate(&key.namespace, &key.name);
    }
}

impl CertificateController {
    /// One evaluation of one Certificate.
    async fn evaluate(
        &self,
        key: &ObjectKey,
        ignore_backoff: bool,
        slot: &Slot,
    ) -> Result<Step, ReconcileError> {
        let Some(certificate) = self
            .certificates
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
        else {
            return Ok(Step {
                next: SystemTime::now() + Duration::from_secs(3600),
                issued: false,
                state: CertificateState::default(),
                error: None,
                issuing_because: None,
            });
        };
        let reference = certificate.object_ref(&());
        let plan = match certificate.spec.plan() {
            Ok(plan) => plan,
            Err(errors) => {
                let message = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                let text = format!("The Certificate spec is invalid: {message}");
                return self
                    .not_ready(key, &reference, text, message, Duration::from_secs(3600))
                    .await;
            }
        };
        let mut output_formats = plan.output_formats.clone();
        match self.keystores(&key.namespace, &plan.keystores).await? {
            Ok(keystores) => output_formats.keystores = keystores,
            Err(message) => {
                // The password Secret may be created any moment; it is not
                // watched, so look again soon.
                let text = format!("The keystore password is not available: {message}");
                return self
                    .not_ready(key, &reference, text, message, Duration::from_secs(60))
                    .await;
            }
        }
        // `cmctl renew` / `certweave renew`, not honoured yet.
        let request = certificate.renewal_request();
        let renew_now = request.as_ref().is_some_and(|request| {
            self.renewals_done.lock().expect("renewals lock").get(key) != Some(request)
        });
        let labels = [
            key.name.as_str(),
            key.namespace.as_str(),
            plan.issuer.name.as_str(),
            plan.issuer.kind.as_str(),
            ISSUER_GROUP,
        ];
        let managed = Managed {
            certificate: key.clone(),
            secret: ObjectKey::new(key.namespace.clone(), plan.secret_name.clone()),
            request: plan.request.clone(),
            renew_before: plan.renew_before,
            rotation: plan.rotation,
            issuer_kind: plan.issuer.kind.as_str().to_owned(),
            issuer_name: plan.issuer.name.clone(),
            issuer_group: ISSUER_GROUP.to_owned(),
            origin: RequestOrigin {
                namespace: key.namespace.clone(),
                labels: certificate.labels().clone(),
                edit_in_place: certificate
                    .annotations()
                    .get(HTTP01_OVERRIDE_INGRESS_NAME)
                    .cloned(),
                // Set by the Gateway shim on the Certificates it makes.
                http01_parent: certificate
                    .annotations()
                    .get(HTTP01_PARENT_REF_NAME)
                    .map(|name| {
                        let kind = certificate.annotations().get(HTTP01_PARENT_REF_KIND);
                        (
                            kind.cloned().unwrap_or_else(|| "Gateway".into()),
                            name.clone(),
                        )
                    }),
                // Set by the engine from the stored certificate.
                replaces: None,
            },
            secret_labels: plan.secret_template.labels.clone(),
            secret_annotations: plan.secret_template.annotations.clone(),
            output_formats,
            renew_now,
        };
        if ignore_backoff {
            reconcile::clear_backoff(&self.store, key).await?;
        }
        let resolved = self.resolver.find(&key.namespace, &plan.issuer);
        let issuer = match &resolved {
            Ok(resolved) => self.resolver.issuer(resolved).await,
            Err(e) => Err(e.duplicate()),
        };
        let started = Instant::now();
        let step = reconcile::reconcile_holding(
            &self.store,
            &managed,
            issuer.as_ref().map_err(IssueError::duplicate),
            SystemTime::now(),
            slot,
        )
        .await?;
        if let (true, Some(request)) = (managed.renew_now, request) {
            self.renewals_done
                .lock()
                .expect("renewals lock")
                .insert(key.clone(), request);
        }
        let kind = plan.issuer.kind.as_str();
        if let Some(reason) = &step.issuing_because {
            let message = format!("Issuing certificate as {reason}");
            self.event(&reference, EventType::Normal, "Issuing", &message)
                .await;
        }
        if step.issued {
            self.metrics
                .issuance
                .with_label_values(&[kind, "success"])
                .inc();
            self.metrics
                .issuance_duration
                .with_label_values(&[kind])
                .observe(started.elapsed().as_secs_f64());
            let message = format!(
                "The certificate has been successfully issued (revision {})",
                step.state.revision
            );
            self.event(&reference, EventType::Normal, "Issued", &message)
                .await;
        } else if let Some(error) = &step.error {
            self.metrics
                .issuance
                .with_label_values(&[kind, "failure"])
                .inc();
            let message = format!(
                "The certificate request has failed to complete and will be retried: {error}"
            );
            self.event(&reference, EventType::Warning, "Failed", &message)
                .await;
        }
        self.metrics.observe_certificate(
            labels,
            Some(step.state.ready),
            step.state.not_after,
            step.state.renewal_time,
        );
        Ok(step)
    }

    /// Records the Certificate as not Ready for `text` (an Event when the
    /// text is new) and looks again after `retry`.
    async fn not_ready(
        &self,
        key: &ObjectKey,
        reference: &ObjectReference,
        text: String,
        message: String,
        retry: Duration,
    ) -> Result<Step, ReconcileError> {
        let mut state = self.store.read_state(key).await?.unwrap_or_default();
        if state.message.as_deref() != Some(&text) {
            self.event(reference, EventType::Warning, "BadConfig", &text)
                .await;
        }
        state.ready = false;
        state.message = Some(text);
        self.store.write_state(key, &state).await?;
        Ok(Step {
            next: SystemTime::now() + retry,
            issued: false,
            state,
            error: Some(message),
            issuing_because: None,
        })
    }

    /// The keystores `request` asks for, with passwords read from their
    /// Secrets; `Ok(Err(why))` when a password is not there.
    async fn keystores(
        &self,
        namespace: &str,
        request: &KeystoreRequest,
    ) -> Result<Result<Keystores, String>, ReconcileError> {
        let mut secrets = SecretValues::new();
        for name in request.secret_refs() {
            let key = ObjectKey::new(namespace, name);
            if let Some(values) = self.store.read_secret_values(&key).await? {
                secrets.insert(key, values);
            }
        }
        Ok(request.resolve(namespace, &secrets))
    }

    async fn event(&self, reference: &ObjectReference, type_: EventType, reason: &str, note: &str) {
        self.events.publish(reference, type_, reason, note).await;
    }
}

/// The queue key of a Certificate.
pub fn key_of(certificate: &Certificate) -> ObjectKey {
    ObjectKey::new(
        certificate.namespace().unwrap_or_default(),
        certificate.name_any(),
    )
}
