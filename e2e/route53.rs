//! Step 9: DNS-01 through Route53, from a cert-manager ClusterIssuer as its
//! documentation writes one, against moto (a real AWS emulator serving the
//! Route53 API, `tests/support/moto.rs`).
//!
//! moto serves no DNS, so a mirror copies the TXT records moto holds at the
//! challenge name into the challtestsrv a dedicated Pebble resolves
//! through: what Pebble validates is exactly what the controller left in
//! Route53. The controller runs with `AWS_ENDPOINT_URL` pointing at moto
//! and checks records through that same DNS server
//! (`--dns01-recursive-nameservers … --dns01-recursive-nameservers-only`),
//! as a user behind split-horizon DNS would run it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;

use certweave::api::certificate::Certificate;
use certweave::api::issuer::ClusterIssuer;

use super::harness::{Controller, Serving, CONTROLLER_NAMESPACE};
use super::moto::Moto;
use super::pebble::{self, Pebble, PebbleOptions};
use super::{chart, cluster_issuer_ready, say, E2e, ISSUED, NS, STEPS};

const ZONE: &str = "route53.example";
const CHALLENGE: &str = "_acme-challenge.route53.example";
const CREDENTIALS: &str = "route53-credentials";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

pub async fn route53(e2e: &mut E2e) {
    let moto = Arc::new(Moto::start(pebble::free_port()));
    let zone_id = moto.create_zone(ZONE, false).await;
    let dns_pebble = Pebble::start(PebbleOptions::http01(pebble::free_port()));
    let mirror = pebble::mirror_txt(
        dns_pebble.challtestsrv_management().unwrap(),
        CHALLENGE.into(),
        moto.txt_reader(&zone_id, CHALLENGE),
    );

    // The controller as the chart runs it, plus the Route53 endpoint and
    // the DNS server to check records through.
    let nameserver = dns_pebble.dns_server.to_string();
    restart_controller(
        e2e,
        &[
            "--dns01-recursive-nameservers",
            &nameserver,
            "--dns01-recursive-nameservers-only",
            "--dns01-propagation-timeout",
            "30",
        ],
        &[("AWS_ENDPOINT_URL", moto.endpoint.as_str())],
    )
    .await;

    // cert-manager's documented Route53 solver: keys from a Secret, the
    // hosted zone looked up (no hostedZoneID).
    e2e.create(
        &e2e.api::<Secret>(CONTROLLER_NAMESPACE),
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": CREDENTIALS, "namespace": CONTROLLER_NAMESPACE},
            "stringData": {"access-key-id": "AKIAIOSFODNN7EXAMPLE",
                           "secret-access-key": SECRET_ACCESS_KEY},
        }),
    )
    .await;
    let issuers: Api<ClusterIssuer> = Api::all(e2e.client.clone());
    let route53_issuer = |name: &str, access_key_key: &str| {
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": name},
            "spec": {"acme": {
                "server": dns_pebble.directory_url,
                "email": "user@example.com",
                "privateKeySecretRef": {"name": format!("{name}-account")},
                "caBundle": base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    &dns_pebble.tls_ca_pem,
                ),
                "solvers": [{"dns01": {"route53": {
                    "region": "eu-central-1",
                    "accessKeyIDSecretRef": {"name": CREDENTIALS, "key": access_key_key},
                    "secretAccessKeySecretRef": {"name": CREDENTIALS, "key": "secret-access-key"},
                }}}],
            }},
        })
    };
    e2e.create(&issuers, route53_issuer("route53", "access-key-id"))
        .await;
    e2e.create(
        &issuers,
        route53_issuer("route53-misconfigured", "no-such-key"),
    )
    .await;
    cluster_issuer_ready(e2e, "route53").await;

    let certificates: Api<Certificate> = e2e.api(NS);
    let certificate = |name: &str, issuer: &str| {
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": name},
            "spec": {"secretName": name,
                     "dnsNames": [ZONE, format!("*.{ZONE}")],
                     "issuerRef": {"name": issuer, "kind": "ClusterIssuer"}},
        })
    };
    e2e.create(&certificates, certificate("route53-wildcard", "route53"))
        .await;
    e2e.create(
        &certificates,
        certificate("route53-misconfigured", "route53-misconfigured"),
    )
    .await;

    e2e.certificate_ready("route53-wildcard", ISSUED).await;
    let root = dns_pebble.root(0).await;
    let (_, leaf) = e2e
        .valid_secret(
            "route53-wildcard",
            &[ZONE, &format!("*.{ZONE}")],
            &root,
            Duration::from_secs(10),
            |_, _| Ok(()),
        )
        .await;
    let left = e2e
        .eventually(
            &format!("no TXT record left at {CHALLENGE} in Route53"),
            Duration::from_secs(30),
            || {
                let moto = moto.clone();
                let zone_id = zone_id.clone();
                async move {
                    let values = moto.txt(&zone_id, CHALLENGE).await;
                    if values.is_empty() {
                        Ok(0)
                    } else {
                        Err(format!("still there: {values:?}"))
                    }
                }
            },
        )
        .await;

    // A credential the Secret lacks: a condition naming the Secret and the
    // key, no secret value in it, and no retry storm.
    let misconfigured = e2e
        .eventually(
            "Certificate route53-misconfigured names the missing Secret key",
            Duration::from_secs(60),
            || {
                let certificates = certificates.clone();
                async move {
                    let certificate = certificates
                        .get("route53-misconfigured")
                        .await
                        .map_err(|e| e.to_string())?;
                    let conditions = certificate
                        .status
                        .as_ref()
                        .map(|s| s.conditions.clone())
                        .unwrap_or_default();
                    conditions
                        .iter()
                        .find(|c| {
                            c.status == "False"
                                && c.message.as_deref().is_some_and(|m| {
                                    m.contains(CREDENTIALS) && m.contains("no-such-key")
                                })
                        })
                        .and_then(|c| c.message.clone())
                        .ok_or_else(|| super::describe(&conditions))
                }
            },
        )
        .await;
    assert!(
        !misconfigured.contains(SECRET_ACCESS_KEY),
        "the condition must not echo the secret: {misconfigured}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let attempts = certificates
        .get("route53-misconfigured")
        .await
        .ok()
        .and_then(|c| c.status.and_then(|s| s.failed_issuance_attempts))
        .unwrap_or(0);
    assert!(
        attempts <= 2,
        "a configuration error is not retried in a storm: {attempts} failed attempts within seconds"
    );
    let events = e2e.events_about("route53-misconfigured").await;
    mirror.abort();

    // Back to the controller as every later step expects it.
    restart_controller(e2e, &[], &[]).await;
    say(&format!(
        "[9/{STEPS}] Route53: wildcard and apex {:?} issued, {left} TXT records left; \
         misconfigured solver: {misconfigured:?} after {attempts} attempt(s), {} Event(s)",
        leaf.dns_names,
        events.len()
    ));
}

/// Restarts the controller as the chart's ServiceAccount with `args` and
/// `env` added, and routes the chart's webhooks to it.
async fn restart_controller(e2e: &mut E2e, args: &[&str], env: &[(&str, &str)]) {
    e2e.controller.stop();
    let token =
        chart::service_account_token(&e2e.client, CONTROLLER_NAMESPACE, chart::RELEASE).await;
    let kubeconfig = e2e
        .cluster
        .kubeconfig_for("certweave-serviceaccount", &token);
    e2e.controller = Controller::start_in(
        &e2e.cluster,
        &kubeconfig,
        e2e.pebble.http01_port,
        Serving::Files,
        CONTROLLER_NAMESPACE,
        args,
        env,
    )
    .await;
    chart::route_webhooks(
        &e2e.client,
        chart::RELEASE,
        &e2e.controller.webhook_url,
        &e2e.controller.webhook_ca_bundle,
    )
    .await;
    e2e.wait_for_webhook().await;
}
