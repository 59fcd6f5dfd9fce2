//! The Certificate controller: every Certificate in the cluster in one
//! renewal queue, evaluated when it is due or when something it depends on
//! changes, issued through the engine into its Secret.
//!
//! One task owns the queue; each evaluation runs in its own task, at most
//! `concurrency` at once, so a Certificate stuck on a slow ACME server never
//! holds up the others. The schedule itself lives in each Certificate's
//! status (renewal time, failure backoff), so a new leader rebuilds it by
//! evaluating everything once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::reflector::{ObjectRef, Store as Cache};
use kube::{Resource, ResourceExt};
use tokio::sync::mpsc;

use crate::api::annotations::HTTP01_OVERRIDE_INGRESS_NAME;
use crate::api::certificate::Certificate;
use crate::api::issuer_ref::ISSUER_GROUP;
use crate::engine::reconcile::{self, Managed, ReconcileError, Step};
use crate::engine::renewal::RenewalQueue;
use crate::issuers::acme::{OrderContext, ORDER_CONTEXT};
use crate::issuers::IssueError;
use crate::metrics::ControllerMetrics;
use crate::store::kube::KubeStore;
use crate::store::{CertificateState, ObjectKey, Store};

use super::events::{EventPublisher, EventType};
use super::issuers::IssuerResolver;

/// Why a Certificate should be looked at now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Its spec changed (or it appeared): evaluate now, ignoring a backoff.
    SpecChanged(ObjectKey),
    /// Something it depends on changed (its Secret, its issuer): evaluate
    /// now, respecting a backoff.
    Touched(ObjectKey),
    /// It was deleted.
    Deleted(ObjectKey),
}

/// What evaluations share.
pub struct CertificateController {
    pub store: KubeStore,
    pub resolver: Arc<IssuerResolver>,
    pub certificates: Cache<Certificate>,
    pub metrics: ControllerMetrics,
    pub events: EventPublisher,
    pub concurrency: usize,
}

type Done = (ObjectKey, Result<Step, ReconcileError>);

impl CertificateController {
    /// Runs the queue until `shutdown`, then waits (up to 20 s) for
    /// evaluations in flight.
    pub async fn run(
        self: Arc<Self>,
        mut triggers: mpsc::UnboundedReceiver<Trigger>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut queue: RenewalQueue<ObjectKey> = RenewalQueue::new();
        for certificate in self.certificates.state() {
            queue.schedule(key_of(&certificate), SystemTime::now());
        }
        let mut forced: HashSet<ObjectKey> = HashSet::new();
        // In flight, and whether it must run again when done.
        let mut in_flight: HashMap<ObjectKey, bool> = HashMap::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        tokio::pin!(shutdown);
        loop {
            let now = SystemTime::now();
            while in_flight.len() < self.concurrency.max(1) {
                let Some(key) = queue.pop_due(now) else { break };
                if let Some(again) = in_flight.get_mut(&key) {
                    *again = true;
                    continue;
                }
                let ignore_backoff = forced.remove(&key);
                in_flight.insert(key.clone(), false);
                let this = self.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    let result = this.evaluate(&key, ignore_backoff).await;
                    let _ = done.send((key, result));
                });
            }
            self.metrics.queue_depth.set(queue.len() as i64);
            let until_due = queue
                .next_due()
                .map(|due| due.duration_since(SystemTime::now()).unwrap_or_default())
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = &mut shutdown => break,
                Some(trigger) = triggers.recv() => match trigger {
                    Trigger::SpecChanged(key) => {
                        forced.insert(key.clone());
                        queue.schedule(key, SystemTime::now());
                    }
                    Trigger::Touched(key) => queue.schedule(key, SystemTime::now()),
                    Trigger::Deleted(key) => {
                        queue.remove(&key);
                        forced.remove(&key);
                        self.metrics.forget_certificate(&key.namespace, &key.name);
                    }
                },
                Some((key, result)) = done_rx.recv() => {
                    let again = in_flight.remove(&key).unwrap_or(false);
                    let exists = self.certificates.get(&ObjectRef::new(&key.name).within(&key.namespace)).is_some();
                    if !exists {
                        continue;
                    }
                    let next = match result {
                        Ok(step) => step.next,
                        Err(e) => {
                            tracing::error!(certificate = %key, error = %e, "cannot read or write the Certificate or its Secret; retrying in 30s");
                            SystemTime::now() + Duration::from_secs(30)
                        }
                    };
                    if again {
                        queue.schedule(key, SystemTime::now());
                    } else if queue.due(&key).is_none() {
                        queue.schedule(key, next);
                    }
                }
                _ = tokio::time::sleep(until_due) => {}
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some((key, _))) => {
                    in_flight.remove(&key);
                }
                _ => break,
            }
        }
    }

    /// One evaluation of one Certificate.
    async fn evaluate(
        &self,
        key: &ObjectKey,
        ignore_backoff: bool,
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
                let mut state = self.store.read_state(key).await?.unwrap_or_default();
                let next = SystemTime::now() + Duration::from_secs(3600);
                let text = format!("The Certificate spec is invalid: {message}");
                if state.message.as_deref() != Some(&text) {
                    self.event(&reference, EventType::Warning, "BadConfig", &text)
                        .await;
                }
                state.ready = false;
                state.message = Some(text);
                self.store.write_state(key, &state).await?;
                return Ok(Step {
                    next,
                    issued: false,
                    state,
                    error: Some(message),
                    issuing_because: None,
                });
            }
        };
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
            secret_labels: plan.secret_template.labels.clone(),
            secret_annotations: plan.secret_template.annotations.clone(),
        };
        if ignore_backoff {
            if let Some(mut state) = self.store.read_state(key).await? {
                if state.next_attempt.take().is_some() {
                    self.store.write_state(key, &state).await?;
                }
            }
        }
        let resolved = self.resolver.find(&key.namespace, &plan.issuer);
        let issuer = match &resolved {
            Ok(resolved) => self.resolver.issuer(resolved).await,
            Err(e) => Err(e.duplicate()),
        };
        let started = Instant::now();
        let context = OrderContext {
            namespace: key.namespace.clone(),
            labels: certificate.labels().clone(),
            edit_in_place: certificate
                .annotations()
                .get(HTTP01_OVERRIDE_INGRESS_NAME)
                .cloned(),
        };
        let step = ORDER_CONTEXT
            .scope(
                context,
                reconcile::reconcile(
                    &self.store,
                    &managed,
                    issuer.as_ref().map_err(IssueError::duplicate),
                    SystemTime::now(),
                ),
            )
            .await?;
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
