//! The Gateway shim: Certificates for annotated Gateway API Gateways and
//! ListenerSets, as cert-manager's, owned by the object, updated and
//! removed with it (the rules are [`crate::api::wanted::gateway`]'s; a
//! ListenerSet's listeners read like a Gateway's). Listeners left out get
//! a Warning Event saying why, once per generation.
//!
//! Gateway API is an add-on: when a kind's CRD is not installed the shim
//! says so once and looks again every 10 seconds, so installing it later
//! needs no restart.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};

use super::events::{EventPublisher, EventType};
use super::owned::{delete_certificate, owned_by, sync_owned, Owner};
use crate::api::annotations::{HTTP01_PARENT_REF_KIND, HTTP01_PARENT_REF_NAME};
use crate::api::certificate::Certificate;
use crate::api::wanted::gateway::{certificates_for_gateway_json, GATEWAY_GROUP, GATEWAY_VERSION};
use crate::controller::scope::{ScopedCache, WatchScope};

/// Field manager of Certificates made for Gateways.
pub const GATEWAY_SHIM_MANAGER: &str = "certweave-gateway-shim";

/// How often the shim looks for the Gateway API CRDs while they are
/// missing.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// The Gateway API kinds whose listeners get certificates.
pub const LISTENER_KINDS: [&str; 2] = ["Gateway", "ListenerSet"];

/// The resource of `kind`, if the API server serves it.
async fn discover(client: &Client, kind: &str) -> Option<ApiResource> {
    let gvk = GroupVersionKind::gvk(GATEWAY_GROUP, GATEWAY_VERSION, kind);
    kube::discovery::pinned_kind(client, &gvk)
        .await
        .ok()
        .map(|(resource, _)| resource)
}

/// Runs the shim for `kind` (one of [`LISTENER_KINDS`]) until `stop`.
pub async fn run(
    client: Client,
    scope: WatchScope,
    certificates: ScopedCache<Certificate>,
    events: EventPublisher,
    kind: &'static str,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut told = false;
    let resource = loop {
        if let Some(resource) = discover(&client, kind).await {
            break resource;
        }
        if !told {
            tracing::info!("the Gateway API CRD of {kind} (gateway.networking.k8s.io/v1) is not installed: {kind} support is off until it is");
            told = true;
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(DISCOVERY_INTERVAL) => {}
        }
    };
    tracing::info!("Gateway API {kind} found: Certificates for annotated {kind}s are on");
    let gateways = scope.watch(
        |ns| match ns {
            Some(ns) => Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource),
            None => Api::<DynamicObject>::all_with(client.clone(), &resource),
        },
        watcher::Config::default(),
    );
    let mut gateways = std::pin::pin!(gateways);
    // (uid, generation) whose skipped listeners were reported.
    let mut reported: HashSet<(String, i64)> = HashSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => return,
            event = gateways.next() => match event {
                Some(Ok(Event::Apply(gateway) | Event::InitApply(gateway))) => {
                    apply_gateway(&client, &certificates, &events, &resource, &gateway, &mut reported).await;
                }
                Some(Ok(Event::Delete(gateway))) => {
                    let uid = gateway.uid().unwrap_or_default();
                    let namespace = gateway.namespace().unwrap_or_default();
                    reported.retain(|(u, _)| *u != uid);
                    for stale in owned_by(&certificates, &namespace, &uid) {
                        delete_certificate(&client, &stale, "its Gateway or ListenerSet was deleted").await;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::warn!(error = %e, kind, "watch failed; retrying with backoff"),
                None => return,
            },
        }
    }
}

async fn apply_gateway(
    client: &Client,
    certificates: &ScopedCache<Certificate>,
    events: &EventPublisher,
    resource: &ApiResource,
    gateway: &DynamicObject,
    reported: &mut HashSet<(String, i64)>,
) {
    let namespace = gateway.namespace().unwrap_or_default();
    let name = gateway.name_any();
    let kind = resource.kind.as_str();
    let Some(uid) = gateway.uid() else { return };
    let reference = gateway.object_ref(resource);
    let json = match serde_json::to_value(gateway) {
        Ok(json) => json,
        Err(e) => {
            tracing::warn!(object = %format!("{kind} {namespace}/{name}"), error = %e, "cannot read it");
            return;
        }
    };
    let (wanted, skipped) = match certificates_for_gateway_json(&json, &namespace) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(object = %format!("{kind} {namespace}/{name}"), error = %e, "cannot derive Certificates from it");
            if reported.insert((uid.clone(), gateway.metadata.generation.unwrap_or_default())) {
                events
                    .publish(&reference, EventType::Warning, "BadConfig", &e.to_string())
                    .await;
            }
            return;
        }
    };
    let generation = gateway.metadata.generation.unwrap_or_default();
    if !skipped.is_empty() && reported.insert((uid.clone(), generation)) {
        for listener in &skipped {
            events
                .publish(
                    &reference,
                    EventType::Warning,
                    "SkippedListener",
                    &format!(
                        "listener {:?} gets no certificate: {}",
                        listener.listener, listener.reason
                    ),
                )
                .await;
        }
    }
    let owner = Owner {
        namespace: &namespace,
        description: format!("{kind} {namespace}/{name}"),
        uid: &uid,
        reference: gateway.controller_owner_ref(resource),
    };
    // As cert-manager's shim: HTTP-01 for these Certificates goes through
    // an HTTPRoute attached to this Gateway (or ListenerSet).
    let annotations = std::collections::BTreeMap::from([
        (HTTP01_PARENT_REF_KIND.to_owned(), kind.to_owned()),
        (HTTP01_PARENT_REF_NAME.to_owned(), name.clone()),
    ]);
    sync_owned(
        client,
        certificates,
        &owner,
        &wanted,
        annotations,
        GATEWAY_SHIM_MANAGER,
    )
    .await;
}
