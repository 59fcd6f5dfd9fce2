//! `certweave check api`: whether certweave is ready to be used, for
//! install scripts and CI (as `cmctl check api`): the cert-manager.io/v1
//! kinds are served, and the admission webhook answers — a dry-run
//! CertificateRequest comes back with its requester filled in, which only
//! certweave's webhook does.

use std::time::{Duration, Instant};

use base64::Engine;
use kube::api::{Api, PostParams};
use kube::core::GroupVersionKind;
use kube::Client;
use serde_json::json;

use crate::api::certificate_request::CertificateRequest;

/// The kinds that must be served.
const KINDS: [&str; 4] = [
    "Certificate",
    "CertificateRequest",
    "Issuer",
    "ClusterIssuer",
];

/// One look: `Ok` when ready, else what is not.
pub async fn check_once(client: &Client, namespace: &str) -> Result<(), String> {
    for kind in KINDS {
        let gvk = GroupVersionKind::gvk("cert-manager.io", "v1", kind);
        kube::discovery::pinned_kind(client, &gvk).await.map_err(|e| {
            format!("cert-manager.io/v1 {kind} is not served ({e}); install the CRDs (the chart's crds/, or webhook-config/crds.yaml)")
        })?;
    }
    let probe: CertificateRequest = serde_json::from_value(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
        "metadata": {"generateName": "certweave-check-api-", "namespace": namespace},
        "spec": {
            "request": base64::engine::general_purpose::STANDARD.encode("probe"),
            "issuerRef": {"name": "certweave-check-api"},
        },
    }))
    .expect("the probe is a CertificateRequest");
    let api: Api<CertificateRequest> = Api::namespaced(client.clone(), namespace);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let admitted = api.create(&dry_run, &probe).await.map_err(|e| {
        format!("the admission webhook did not admit a dry-run CertificateRequest: {e}")
    })?;
    if admitted
        .spec
        .username
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        return Err("a dry-run CertificateRequest was admitted without its requester: certweave's webhook is not called (is the MutatingWebhookConfiguration installed and its caBundle set?)".into());
    }
    Ok(())
}

/// Checks until ready or `wait` has passed; the last reason otherwise.
pub async fn check(client: &Client, namespace: &str, wait: Duration) -> Result<(), String> {
    let deadline = Instant::now() + wait;
    loop {
        match check_once(client, namespace).await {
            Ok(()) => return Ok(()),
            Err(why) if Instant::now() >= deadline => return Err(why),
            Err(why) => {
                tracing::debug!(%why, "not ready yet");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}
