//! What the controller watches, and what each change triggers.
//!
//! Certificates, Issuers and ClusterIssuers are cached in full (they are
//! small and few). Secrets are never cached: only those carrying the
//! managed-Secret label are watched, metadata only — caching every Secret
//! is what costs cert-manager users gigabytes.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::broadcast;

use crate::api::certificate::Certificate;
use crate::api::certificate::CertificateCondition;
use crate::api::issuer::{ClusterIssuer, Issuer, IssuerObject};
use crate::api::IssuerRef;
use crate::controller::kube_store::MANAGED_SECRET_LABEL;
use crate::controller::own_writes::OwnWrites;
use crate::engine::reconcile::secret_annotations;
use crate::store::ObjectKey;

use super::certificates::{key_of, Trigger};
use super::health::Readiness;
use super::issuers::{self, IssuerResolver};
use super::scope::{namespaced_or_all, ScopedCache, WatchScope};
use crate::engine::scheduler::Triggers;

/// A change seen in a cache.
#[derive(Debug, Clone)]
pub enum Change {
    Certificate {
        key: ObjectKey,
        generation: Option<i64>,
        /// `Issuing=True/ManuallyTriggered`: a user asked for re-issuance.
        renewal_requested: bool,
        deleted: bool,
    },
    /// An Issuer (`namespace: Some`) or ClusterIssuer changed.
    Issuer {
        namespace: Option<String>,
        name: String,
        generation: Option<i64>,
    },
    /// The cache was rebuilt after a watch error: treat everything as
    /// changed.
    Resync,
}

/// The caches every replica keeps, and the stream of their changes.
#[derive(Clone)]
pub struct Caches {
    pub certificates: ScopedCache<Certificate>,
    pub issuers: ScopedCache<Issuer>,
    pub cluster_issuers: ScopedCache<ClusterIssuer>,
    /// The namespaces the caches cover.
    pub scope: WatchScope,
    changes: broadcast::Sender<Change>,
    /// True once all three caches have listed. Waiters share this rather
    /// than each awaiting `Store::wait_until_ready`: a store's readiness
    /// future keeps a single waker, so of two concurrent waiters (readiness
    /// and the leader's start) only the last one polled was ever woken.
    synced: tokio::sync::watch::Receiver<bool>,
}

impl Caches {
    /// Starts the watches over `scope` (ClusterIssuers: always cluster
    /// wide); `ready` is set once all have listed.
    pub fn start(client: Client, scope: &WatchScope, ready: Readiness) -> Self {
        let (changes, _) = broadcast::channel(4096);
        let certificates = spawn_reflector(
            scope,
            |ns| namespaced_or_all(&client, ns),
            changes.clone(),
            |c: &Certificate, deleted| Change::Certificate {
                key: key_of(c),
                generation: c.meta().generation,
                renewal_requested: c.renewal_requested(),
                deleted,
            },
        );
        let issuers = spawn_reflector(
            scope,
            |ns| namespaced_or_all(&client, ns),
            changes.clone(),
            |i: &Issuer, _| Change::Issuer {
                namespace: i.namespace(),
                name: i.name_any(),
                generation: i.meta().generation,
            },
        );
        let cluster_issuers = spawn_reflector(
            &WatchScope::Cluster,
            |_| Api::<ClusterIssuer>::all(client.clone()),
            changes.clone(),
            |i: &ClusterIssuer, _| Change::Issuer {
                namespace: None,
                name: i.name_any(),
                generation: i.meta().generation,
            },
        );
        let (synced_tx, synced) = tokio::sync::watch::channel(false);
        let stores = (
            certificates.clone(),
            issuers.clone(),
            cluster_issuers.clone(),
        );
        // The only waiter on the stores themselves.
        tokio::spawn(async move {
            stores.0.wait_until_ready().await;
            stores.1.wait_until_ready().await;
            stores.2.wait_until_ready().await;
            tracing::info!("caches synced");
            ready.set_ready();
            let _ = synced_tx.send(true);
        });
        Self {
            certificates,
            issuers,
            cluster_issuers,
            scope: scope.clone(),
            changes,
            synced,
        }
    }

    pub async fn wait_synced(&self) {
        let _ = self.synced.clone().wait_for(|synced| *synced).await;
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

fn spawn_reflector<K>(
    scope: &WatchScope,
    api: impl Fn(Option<&str>) -> Api<K>,
    changes: broadcast::Sender<Change>,
    change: impl Fn(&K, bool) -> Change + Send + 'static,
) -> ScopedCache<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    // managedFields are never read and, with server-side apply, are often
    // the largest part of an object: not caching them saves memory.
    let (reader, stream) = scope.reflect(api, watcher::Config::default(), |object: &mut K| {
        object.meta_mut().managed_fields = None
    });
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(object)) | Ok(Event::InitApply(object)) => {
                    let _ = changes.send(change(&object, false));
                }
                Ok(Event::Delete(object)) => {
                    let _ = changes.send(change(&object, true));
                }
                Ok(Event::InitDone) => {
                    let _ = changes.send(Change::Resync);
                }
                Ok(Event::Init) => {}
                Err(e) => tracing::warn!(
                    kind = %K::kind(&()),
                    error = %e,
                    "watch failed; retrying with backoff"
                ),
            }
        }
    });
    reader
}

/// Turns changes into Certificate triggers and issuer status updates, for
/// the leader, until `stop`.
pub async fn forward_triggers(
    client: Client,
    caches: Caches,
    resolver: Arc<IssuerResolver>,
    own_writes: Arc<OwnWrites>,
    triggers: Triggers<ObjectKey>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut changes = caches.subscribe();
    let mut seen_generation: HashMap<ObjectKey, Option<i64>> = caches
        .certificates
        .state()
        .iter()
        .map(|c| (key_of(c), c.meta().generation))
        .collect();
    let mut seen_issuers: HashMap<(Option<String>, String), Option<i64>> = caches
        .issuers
        .state()
        .iter()
        .map(|i| ((i.namespace(), i.name_any()), i.meta().generation))
        .chain(
            caches
                .cluster_issuers
                .state()
                .iter()
                .map(|i| ((None, i.name_any()), i.meta().generation)),
        )
        .collect();
    // Every issuer's status is checked once on gaining leadership.
    let mut pending_issuers: Vec<(Option<String>, String)> = all_issuers(&caches);
    let secret_events = caches.scope.watch(
        |ns| namespaced_or_all::<PartialObjectMeta<Secret>>(&client, ns),
        watcher::Config::default().labels(&format!("{MANAGED_SECRET_LABEL}=true")),
    );
    let mut secret_events = std::pin::pin!(secret_events);
    // Issuers that are not ready (an ACME server down, a CA Secret not yet
    // created) are checked again, as their spec may not change.
    let mut recheck = tokio::time::interval(ISSUER_RECHECK);
    recheck.tick().await;
    tokio::pin!(stop);
    loop {
        for (namespace, name) in pending_issuers.drain(..) {
            let client = client.clone();
            let caches = caches.clone();
            let resolver = resolver.clone();
            let triggers = triggers.clone();
            tokio::spawn(async move {
                check_issuer(&client, &caches, &resolver, namespace.as_deref(), &name).await;
                // Certificates waiting for this issuer may go ahead now.
                for certificate in caches.certificates.state() {
                    if references(&certificate, namespace.as_deref(), &name) {
                        triggers.send(Trigger::Touch(key_of(&certificate)));
                    }
                }
            });
        }
        tokio::select! {
            _ = &mut stop => return,
            change = changes.recv() => match change {
                Ok(Change::Certificate { key, generation, renewal_requested, deleted }) => {
                    if deleted {
                        seen_generation.remove(&key);
                        triggers.send(Trigger::Forget(key));
                    } else if renewal_requested {
                        // A user asked for a new certificate (status only:
                        // the generation does not move).
                        seen_generation.insert(key.clone(), generation);
                        triggers.send(Trigger::Force(key));
                    } else if seen_generation.get(&key) != Some(&generation) {
                        seen_generation.insert(key.clone(), generation);
                        triggers.send(Trigger::Force(key));
                    }
                }
                Ok(Change::Issuer { namespace, name, generation }) => {
                    let id = (namespace, name);
                    if seen_issuers.get(&id) != Some(&generation) {
                        seen_issuers.insert(id.clone(), generation);
                        pending_issuers.push(id);
                    }
                }
                Ok(Change::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    for certificate in caches.certificates.state() {
                        let key = key_of(&certificate);
                        if seen_generation.get(&key) != Some(&certificate.meta().generation) {
                            seen_generation.insert(key.clone(), certificate.meta().generation);
                            triggers.send(Trigger::Force(key));
                        }
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = recheck.tick() => pending_issuers.extend(unready_issuers(&caches)),
            event = secret_events.next() => match event {
                Some(Ok(event @ (Event::Apply(_) | Event::InitApply(_) | Event::Delete(_)))) => {
                    let (secret, changed) = match event {
                        Event::Delete(secret) => (secret, true),
                        Event::Apply(secret) | Event::InitApply(secret) => {
                            // A Secret the controller just wrote, unchanged
                            // since, needs no second look at its Certificate.
                            let echo = own_writes.is_echo(
                                &ObjectKey::new(secret.namespace().unwrap_or_default(), secret.name_any()),
                                secret.metadata.resource_version.as_deref(),
                            );
                            (secret, !echo)
                        }
                        Event::Init | Event::InitDone => continue,
                    };
                    let namespace = secret.namespace().unwrap_or_default();
                    // An issuer waiting for this Secret (a CA key pair
                    // issued by a Certificate) is checked now, not at the
                    // next recheck.
                    pending_issuers.extend(issuers_reading_secret(
                        &caches,
                        resolver.namespace(),
                        &namespace,
                        &secret.name_any(),
                    ));
                    if let Some(certificate) = secret
                        .annotations()
                        .get(secret_annotations::CERTIFICATE_NAME)
                        .filter(|_| changed)
                    {
                        triggers.send(Trigger::Touch(ObjectKey::new(namespace, certificate.clone())));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "Secret watch failed; retrying with backoff"),
                None => return,
            },
        }
    }
}

/// How often issuers that are not ready are checked again.
pub const ISSUER_RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

fn unready_issuers(caches: &Caches) -> Vec<(Option<String>, String)> {
    issuers(caches, true)
}

fn all_issuers(caches: &Caches) -> Vec<(Option<String>, String)> {
    issuers(caches, false)
}

/// Issuers and ClusterIssuers (namespace `None`); with `unready_only`,
/// those whose `Ready` condition is not True.
fn issuers(caches: &Caches, unready_only: bool) -> Vec<(Option<String>, String)> {
    fn select<K: IssuerObject>(
        cache: &ScopedCache<K>,
        unready_only: bool,
        out: &mut Vec<(Option<String>, String)>,
    ) {
        out.extend(
            cache
                .state()
                .iter()
                .filter(|i| !(unready_only && i.is_ready()))
                .map(|i| (i.namespace(), i.name_any())),
        );
    }
    let mut out = Vec::new();
    select(&caches.issuers, unready_only, &mut out);
    select(&caches.cluster_issuers, unready_only, &mut out);
    out
}

/// The Issuers of `namespace`, and the ClusterIssuers when `namespace` is
/// where their Secrets live (`cluster_namespace`), that read the Secret
/// `name`.
fn issuers_reading_secret(
    caches: &Caches,
    cluster_namespace: &str,
    namespace: &str,
    name: &str,
) -> Vec<(Option<String>, String)> {
    let reads = |spec: &crate::api::issuer::IssuerSpec| spec.secret_names().any(|n| n == name);
    let mut out: Vec<(Option<String>, String)> = caches
        .issuers
        .state()
        .iter()
        .filter(|i| i.namespace().as_deref() == Some(namespace) && reads(&i.spec))
        .map(|i| (i.namespace(), i.name_any()))
        .collect();
    if namespace == cluster_namespace {
        out.extend(
            caches
                .cluster_issuers
                .state()
                .iter()
                .filter(|i| reads(&i.spec))
                .map(|i| (None, i.name_any())),
        );
    }
    out
}

fn references(certificate: &Certificate, namespace: Option<&str>, name: &str) -> bool {
    let reference = &certificate.spec.issuer_ref;
    if reference.name != name {
        return false;
    }
    match (reference.kind.as_deref().unwrap_or("Issuer"), namespace) {
        ("ClusterIssuer", None) => true,
        ("Issuer", Some(ns)) => certificate.namespace().as_deref() == Some(ns),
        _ => false,
    }
}

async fn check_issuer(
    client: &Client,
    caches: &Caches,
    resolver: &IssuerResolver,
    namespace: Option<&str>,
    name: &str,
) {
    /// The reference, `Ready` condition and generation of a cached issuer.
    fn cached<K: IssuerObject>(
        cache: &ScopedCache<K>,
        at: reflector::ObjectRef<K>,
    ) -> Option<(IssuerRef, Option<CertificateCondition>, Option<i64>)> {
        let issuer = cache.get(&at)?;
        Some((
            IssuerRef {
                kind: K::KIND,
                name: issuer.name_any(),
            },
            issuer.ready_condition().cloned(),
            issuer.meta().generation,
        ))
    }
    let found = match namespace {
        Some(ns) => cached(&caches.issuers, reflector::ObjectRef::new(name).within(ns)),
        None => cached(&caches.cluster_issuers, reflector::ObjectRef::new(name)),
    };
    let Some((reference, previous, generation)) = found else {
        return;
    };
    let ns = namespace.unwrap_or_default();
    let resolved = match resolver.find(ns, &reference) {
        Ok(resolved) => resolved,
        Err(_) => return,
    };
    let (ready, acme) = resolver.check(&resolved).await;
    tracing::info!(issuer = %resolved.id, ready = %ready.status, reason = ?ready.reason, message = ?ready.message, "issuer checked");
    if let Err(e) = issuers::write_issuer_status(
        client,
        &reference,
        ns,
        previous.as_ref(),
        ready,
        acme,
        generation,
    )
    .await
    {
        tracing::warn!(issuer = %resolved.id, error = %e, "cannot write the issuer status");
    }
}
