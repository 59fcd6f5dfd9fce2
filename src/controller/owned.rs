//! Certificates certweave creates on users' behalf: one per `spec.tls` entry
//! of an annotated Ingress (owned by it, updated and removed with it), and
//! one per Secret named by annotated Pods (shared by those Pods, removed
//! some time after the last of them is gone).
//!
//! Both are written with server-side apply under their own field managers,
//! so a user's edits to other fields survive, and a Certificate certweave
//! did not create is never taken over.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};

use crate::api::annotations::{HTTP01_EDIT_IN_PLACE, HTTP01_OVERRIDE_INGRESS_NAME, POD_INJECTED};
use crate::api::certificate::Certificate;
use crate::controller::scope::{namespaced_or_all, ScopedCache, WatchScope};
use crate::store::ObjectKey;
use crate::webhook::MutationConfig;

use crate::api::wanted::ingress::certificates_for_ingress;
use crate::api::wanted::pod::PodCertificateRequest;
use crate::api::wanted::WantedCertificate;

/// The label on Certificates created for Pods: they are garbage-collected
/// some time after no Pod uses them.
pub const POD_CERTIFICATE_LABEL: &str = "certweave.io/pod-certificate";

/// Field manager of Certificates made for Ingresses.
pub const INGRESS_SHIM_MANAGER: &str = "certweave-ingress-shim";
/// Field manager of Certificates made for Pods.
pub const POD_CERTIFICATES_MANAGER: &str = "certweave-pod-certificates";
/// How long a Pod certificate outlives the last Pod using it: a rolling
/// update replaces every Pod, and the new ones should find it still there.
pub const POD_CERTIFICATE_GRACE: Duration = Duration::from_secs(300);

/// Runs the Ingress shim and Pod certificates until `stop`.
pub async fn run(
    client: Client,
    scope: WatchScope,
    certificates: ScopedCache<Certificate>,
    mutation: MutationConfig,
    stop: impl std::future::Future<Output = ()>,
) {
    let ingresses = scope.watch(
        |ns| namespaced_or_all::<Ingress>(&client, ns),
        watcher::Config::default(),
    );
    let (pods, pod_events) = scope.reflect(
        |ns| namespaced_or_all::<PartialObjectMeta<Pod>>(&client, ns),
        watcher::Config::default().labels(&format!("{POD_INJECTED}=true")),
        |pod| pod.metadata.managed_fields = None,
    );
    let mut ingresses = std::pin::pin!(ingresses);
    let mut pod_events = std::pin::pin!(pod_events);
    let mut unused_since: HashMap<ObjectKey, Instant> = HashMap::new();
    let mut gc = tokio::time::interval(Duration::from_secs(30));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            event = ingresses.next() => match event {
                Some(Ok(Event::Apply(ingress) | Event::InitApply(ingress))) => {
                    apply_ingress(&client, &certificates, &ingress, &mutation).await;
                }
                Some(Ok(Event::Delete(ingress))) => {
                    let uid = ingress.uid().unwrap_or_default();
                    let namespace = ingress.namespace().unwrap_or_default();
                    for stale in owned_by(&certificates, &namespace, &uid) {
                        delete_certificate(&client, &stale, "its Ingress was deleted").await;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "Ingress watch failed; retrying with backoff"),
                None => return,
            },
            event = pod_events.next() => match event {
                Some(Ok(Event::Apply(pod) | Event::InitApply(pod))) => {
                    apply_pod(&client, &certificates, &pod).await;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, "Pod watch failed; retrying with backoff"),
                None => return,
            },
            _ = gc.tick() => {
                let in_use = secrets_in_use(&pods.state());
                let now = Instant::now();
                for (key, reason) in collectable(&certificates.state(), &in_use, &mut unused_since, now) {
                    delete_certificate(&client, &key, &reason).await;
                    unused_since.remove(&key);
                }
            }
        }
    }
}

/// Certificates owned by the object with `uid`.
pub fn owned_by(
    certificates: &ScopedCache<Certificate>,
    namespace: &str,
    uid: &str,
) -> Vec<ObjectKey> {
    certificates
        .state()
        .iter()
        .filter(|c| c.namespace().as_deref() == Some(namespace))
        .filter(|c| c.owner_references().iter().any(|o| o.uid == uid))
        .map(|c| ObjectKey::new(namespace, c.name_any()))
        .collect()
}

/// Creates or updates the Certificates an Ingress asks for, and removes
/// those it no longer asks for.
pub async fn apply_ingress(
    client: &Client,
    certificates: &ScopedCache<Certificate>,
    ingress: &Ingress,
    mutation: &MutationConfig,
) {
    let namespace = ingress.namespace().unwrap_or_default();
    let name = ingress.name_any();
    let Some(uid) = ingress.uid() else { return };
    let wanted = match certificates_for_ingress(ingress, mutation.default_issuer.as_ref()) {
        Ok(wanted) => wanted,
        Err(e) => {
            tracing::warn!(ingress = %format!("{namespace}/{name}"), error = %e, "cannot derive Certificates from the Ingress");
            return;
        }
    };
    // cert-manager's shim passes edit-in-place on as this annotation.
    let edit_in_place = ingress
        .annotations()
        .get(HTTP01_EDIT_IN_PLACE)
        .filter(|v| v.as_str() == "true")
        .map(|_| BTreeMap::from([(HTTP01_OVERRIDE_INGRESS_NAME.to_owned(), name.clone())]))
        .unwrap_or_default();
    let owner = ingress.controller_owner_ref(&());
    let owned = Owner {
        namespace: &namespace,
        description: format!("Ingress {namespace}/{name}"),
        uid: &uid,
        reference: owner,
    };
    sync_owned(
        client,
        certificates,
        &owned,
        &wanted,
        edit_in_place,
        INGRESS_SHIM_MANAGER,
    )
    .await;
}

/// The object Certificates are made for and owned by.
pub struct Owner<'a> {
    pub namespace: &'a str,
    /// `Ingress ns/name`, for logs.
    pub description: String,
    pub uid: &'a str,
    /// The controller ownerReference to set.
    pub reference: Option<OwnerReference>,
}

/// Applies the Certificates `wanted` for `owner` (leaving alone one of the
/// same name that another object owns) and deletes the ones it owns and
/// no longer wants: the Ingress and Gateway shims alike.
pub async fn sync_owned(
    client: &Client,
    certificates: &ScopedCache<Certificate>,
    owner: &Owner<'_>,
    wanted: &[WantedCertificate],
    annotations: BTreeMap<String, String>,
    manager: &str,
) {
    let namespace = owner.namespace;
    let reference = owner.reference.clone().map(|mut o| {
        o.block_owner_deletion = Some(true);
        o
    });
    for certificate in wanted {
        let key = ObjectKey::new(namespace, certificate.name.clone());
        if let Some(existing) =
            certificates.get(&reflector::ObjectRef::new(&key.name).within(namespace))
        {
            if !existing
                .owner_references()
                .iter()
                .any(|o| o.uid == owner.uid)
            {
                tracing::warn!(certificate = %key, owner = %owner.description, "a Certificate of that name exists and is not owned by this object; leaving it alone");
                continue;
            }
        }
        apply_certificate(
            client,
            &key,
            certificate,
            reference.clone(),
            BTreeMap::new(),
            annotations.clone(),
            manager,
        )
        .await;
    }
    let keep: BTreeSet<&str> = wanted.iter().map(|c| c.name.as_str()).collect();
    for stale in owned_by(certificates, namespace, owner.uid) {
        if !keep.contains(stale.name.as_str()) {
            delete_certificate(client, &stale, "its owner no longer asks for it").await;
        }
    }
}

/// Creates the Certificate an annotated Pod asks for, if missing.
pub async fn apply_pod(
    client: &Client,
    certificates: &ScopedCache<Certificate>,
    pod: &PartialObjectMeta<Pod>,
) {
    let namespace = pod.namespace().unwrap_or_default();
    let wanted = match PodCertificateRequest::from_metadata(&pod.metadata, &namespace) {
        Ok(Some(request)) => request.certificate(),
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(pod = %format!("{namespace}/{}", pod.name_any()), error = %e, "cannot derive a Certificate from the Pod");
            return;
        }
    };
    let key = ObjectKey::new(namespace.clone(), wanted.name.clone());
    if let Some(existing) =
        certificates.get(&reflector::ObjectRef::new(&key.name).within(&namespace))
    {
        let ours = existing.labels().contains_key(POD_CERTIFICATE_LABEL);
        if !ours || existing.spec == wanted.spec {
            return;
        }
    }
    let labels = BTreeMap::from([(POD_CERTIFICATE_LABEL.to_owned(), "true".to_owned())]);
    apply_certificate(
        client,
        &key,
        &wanted,
        None,
        labels,
        BTreeMap::new(),
        POD_CERTIFICATES_MANAGER,
    )
    .await;
}

async fn apply_certificate(
    client: &Client,
    key: &ObjectKey,
    wanted: &WantedCertificate,
    owner: Option<OwnerReference>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    manager: &str,
) {
    let mut certificate = Certificate::new(&key.name, wanted.spec.clone());
    certificate.metadata = ObjectMeta {
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        owner_references: owner.map(|o| vec![o]),
        labels: (!labels.is_empty()).then_some(labels),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..Default::default()
    };
    let api: Api<Certificate> = Api::namespaced(client.clone(), &key.namespace);
    match api
        .patch(
            &key.name,
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&certificate),
        )
        .await
    {
        Ok(_) => tracing::info!(certificate = %key, manager, "Certificate applied"),
        Err(e) => tracing::warn!(certificate = %key, error = %e, "cannot apply the Certificate"),
    }
}

pub async fn delete_certificate(client: &Client, key: &ObjectKey, reason: &str) {
    let api: Api<Certificate> = Api::namespaced(client.clone(), &key.namespace);
    match api.delete(&key.name, &DeleteParams::default()).await {
        Ok(_) => tracing::info!(certificate = %key, reason, "Certificate deleted"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(certificate = %key, error = %e, "cannot delete the Certificate"),
    }
}

/// The Secrets Pods ask for: namespace → Secret names.
pub fn secrets_in_use(pods: &[std::sync::Arc<PartialObjectMeta<Pod>>]) -> BTreeSet<ObjectKey> {
    pods.iter()
        .filter_map(|pod| {
            let namespace = pod.namespace().unwrap_or_default();
            PodCertificateRequest::from_metadata(&pod.metadata, &namespace)
                .ok()
                .flatten()
                .map(|request| ObjectKey::new(namespace, request.secret_name))
        })
        .collect()
}

/// Pod certificates no Pod has used for [`POD_CERTIFICATE_GRACE`], with
/// the reason. Tracks when each became unused in `unused_since`.
pub fn collectable(
    certificates: &[std::sync::Arc<Certificate>],
    in_use: &BTreeSet<ObjectKey>,
    unused_since: &mut HashMap<ObjectKey, Instant>,
    now: Instant,
) -> Vec<(ObjectKey, String)> {
    let mut out = Vec::new();
    let mut still_unused = HashMap::new();
    for certificate in certificates {
        if !certificate.labels().contains_key(POD_CERTIFICATE_LABEL) {
            continue;
        }
        let namespace = certificate.namespace().unwrap_or_default();
        let secret = ObjectKey::new(namespace.clone(), certificate.spec.secret_name.clone());
        if in_use.contains(&secret) {
            continue;
        }
        let key = ObjectKey::new(namespace, certificate.name_any());
        let since = *unused_since.get(&key).unwrap_or(&now);
        if now.duration_since(since) >= POD_CERTIFICATE_GRACE {
            out.push((
                key,
                format!(
                    "no Pod has used Secret {secret} for {}s",
                    POD_CERTIFICATE_GRACE.as_secs()
                ),
            ));
        } else {
            still_unused.insert(key, since);
        }
    }
    *unused_since = still_unused;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::certificate::CertificateSpec;
    use std::sync::Arc;

    fn pod_certificate(name: &str, secret: &str) -> Arc<Certificate> {
        let mut c = Certificate::new(
            name,
            CertificateSpec {
                secret_name: secret.into(),
                ..Default::default()
            },
        );
        c.metadata.namespace = Some("shop".into());
        c.metadata.labels = Some(BTreeMap::from([(
            POD_CERTIFICATE_LABEL.into(),
            "true".into(),
        )]));
        Arc::new(c)
    }

    #[test]
    fn pod_certificates_are_collected_only_after_the_grace_period() {
        let certs = vec![pod_certificate("a", "a-tls"), pod_certificate("b", "b-tls")];
        let in_use = BTreeSet::from([ObjectKey::new("shop", "a-tls")]);
        let mut since = HashMap::new();
        let t0 = Instant::now();
        assert!(collectable(&certs, &in_use, &mut since, t0).is_empty());
        assert!(since.contains_key(&ObjectKey::new("shop", "b")));
        let later = t0 + POD_CERTIFICATE_GRACE - Duration::from_secs(1);
        assert!(collectable(&certs, &in_use, &mut since, later).is_empty());
        let gone = collectable(&certs, &in_use, &mut since, t0 + POD_CERTIFICATE_GRACE);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0, ObjectKey::new("shop", "b"));
        // A Pod coming back resets the clock.
        let mut since = HashMap::from([(ObjectKey::new("shop", "b"), t0)]);
        let both = BTreeSet::from([
            ObjectKey::new("shop", "a-tls"),
            ObjectKey::new("shop", "b-tls"),
        ]);
        assert!(collectable(&certs, &both, &mut since, t0 + POD_CERTIFICATE_GRACE * 2).is_empty());
        assert!(since.is_empty());
        // Certificates users made themselves are never collected.
        let mut user = (*pod_certificate("c", "c-tls")).clone();
        user.metadata.labels = None;
        let mut since = HashMap::new();
        assert!(collectable(&[Arc::new(user)], &BTreeSet::new(), &mut since, t0).is_empty());
        assert!(since.is_empty());
    }
}
