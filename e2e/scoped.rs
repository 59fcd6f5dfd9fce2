//! Step 13: certweave confined to some namespaces. The chart installed
//! with `watchNamespaces` grants Roles in those namespaces (and its own)
//! and no cluster-wide access to Secrets, Ingresses or Services; the
//! controller, run with that ServiceAccount and `--watch-namespaces`,
//! issues there — a ClusterIssuer's CA from its own namespace included —
//! and leaves every other namespace alone, without one request the API
//! server refuses.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use certweave::api::certificate::Certificate;
use certweave::api::issuer::{ClusterIssuer, Issuer};

use super::chart;
use super::harness::{Controller, Serving};
use super::{data, object, say, E2e, ISSUED, STEPS};

/// The release's namespace (the controller's `--namespace`).
const RELEASE_NS: &str = "certweave-scoped";
/// Listed in `watchNamespaces`.
const WATCHED: &str = "scoped-a";
/// Not listed.
const UNWATCHED: &str = "scoped-b";

pub async fn namespace_scoped(e2e: &mut E2e) {
    let client = e2e.client.clone();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in [WATCHED, UNWATCHED] {
        let namespace: Namespace = object(json!({"metadata": {"name": name}}));
        if let Err(e) = namespaces.create(&PostParams::default(), &namespace).await {
            e2e.fail(&format!("create namespace {name}: {e}"));
        }
    }
    let values = format!("watchNamespaces={{{WATCHED}}}");
    if let Err(e) = e2e.helm.install(RELEASE_NS, &["--set", &values]) {
        e2e.fail(&e);
    }

    // RBAC as the API server judges it, for the chart's ServiceAccount.
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let roles = cluster_roles
        .list(&ListParams::default().labels("app.kubernetes.io/instance=certweave"))
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("list ClusterRoles: {e}")));
    for role in &roles.items {
        for rule in role.rules.iter().flatten() {
            let resources = rule.resources.clone().unwrap_or_default();
            if resources.iter().any(|r| {
                ["secrets", "ingresses", "services", "endpointslices", "pods"].contains(&r.as_str())
            }) {
                e2e.fail(&format!(
                    "ClusterRole {:?} grants {resources:?} in the namespace-scoped install",
                    role.metadata.name
                ));
            }
        }
    }
    let mut judged = 0;
    for (verb, group, resource, namespace, allowed) in [
        ("list", "", "secrets", WATCHED, true),
        ("create", "networking.k8s.io", "ingresses", WATCHED, true),
        ("get", "", "secrets", RELEASE_NS, true),
        ("watch", "cert-manager.io", "certificates", WATCHED, true),
        ("list", "", "secrets", UNWATCHED, false),
        ("get", "", "secrets", "kube-system", false),
        ("list", "", "secrets", "", false),
        ("watch", "cert-manager.io", "certificates", "", false),
        ("list", "networking.k8s.io", "ingresses", UNWATCHED, false),
        ("list", "cert-manager.io", "clusterissuers", "", true),
    ] {
        let answer = can(e2e, verb, group, resource, namespace).await;
        if answer != allowed {
            e2e.fail(&format!(
                "the ServiceAccount {verb} {resource} in {namespace:?}: allowed={answer}, \
                 expected {allowed}"
            ));
        }
        judged += 1;
    }

    // The controller as that ServiceAccount, confined to WATCHED.
    e2e.controller.stop();
    let token = chart::service_account_token(&client, RELEASE_NS, chart::RELEASE).await;
    let kubeconfig = e2e
        .cluster
        .kubeconfig_for("certweave-scoped-serviceaccount", &token);
    e2e.controller = Controller::start_in(
        &e2e.cluster,
        &kubeconfig,
        e2e.pebble.http01_port,
        Serving::Files,
        RELEASE_NS,
        &["--watch-namespaces", WATCHED],
        &[],
    )
    .await;
    let _routed = chart::route_webhooks(
        &client,
        chart::RELEASE,
        &e2e.controller.webhook_url,
        &e2e.controller.webhook_ca_bundle,
    )
    .await;

    // A ClusterIssuer whose CA is issued into certweave's own namespace.
    e2e.create(
        &e2e.api::<Issuer>(RELEASE_NS),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": "scoped-root"}, "spec": {"selfSigned": {}}}),
    )
    .await;
    e2e.create(
        &e2e.api::<Certificate>(RELEASE_NS),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "scoped-ca"},
               "spec": {"isCA": true, "commonName": "certweave scoped CA",
                        "secretName": "scoped-ca",
                        "privateKey": {"algorithm": "ECDSA", "size": 256},
                        "issuerRef": {"name": "scoped-root", "kind": "Issuer"}}}),
    )
    .await;
    e2e.create(
        &Api::<ClusterIssuer>::all(client.clone()),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
               "metadata": {"name": "scoped-ca"}, "spec": {"ca": {"secretName": "scoped-ca"}}}),
    )
    .await;
    super::cluster_issuer_ready(e2e, "scoped-ca").await;

    // The same annotated Ingress in both namespaces: the webhook fills in
    // spec.tls and the shim issues only in the watched one.
    for namespace in [WATCHED, UNWATCHED] {
        e2e.create(
            &e2e.api::<Ingress>(namespace),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": "web",
                                "annotations": {"cert-manager.io/cluster-issuer": "scoped-ca"}},
                   "spec": {"rules": [{"host": format!("web.{namespace}.example.com")}]}}),
        )
        .await;
    }
    let ingress = e2e
        .api::<Ingress>(WATCHED)
        .get("web")
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("get Ingress {WATCHED}/web: {e}")));
    let secret_name = ingress
        .spec
        .and_then(|s| s.tls)
        .and_then(|tls| tls.first().and_then(|t| t.secret_name.clone()))
        .unwrap_or_else(|| {
            e2e.fail("the webhook did not fill in spec.tls in the watched namespace")
        });
    e2e.certificate_ready_in(WATCHED, &secret_name, ISSUED)
        .await;
    let secret = e2e
        .api::<Secret>(WATCHED)
        .get(&secret_name)
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("get Secret {WATCHED}/{secret_name}: {e}")));
    let ca_secret = e2e
        .api::<Secret>(RELEASE_NS)
        .get("scoped-ca")
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("get Secret {RELEASE_NS}/scoped-ca: {e}")));
    let root = data(&ca_secret, "tls.crt").unwrap_or_default();
    if let Err(e) = super::check_tls_secret(&secret, &["web.scoped-a.example.com"], &root) {
        e2e.fail(&format!("Secret {WATCHED}/{secret_name}: {e}"));
    }

    // The unwatched namespace: not mutated, no Certificate, a Certificate
    // created by hand left alone.
    e2e.create(
        &e2e.api::<Certificate>(UNWATCHED),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "ignored"},
               "spec": {"secretName": "ignored-tls", "dnsNames": ["ignored.example.com"],
                        "issuerRef": {"name": "scoped-ca", "kind": "ClusterIssuer"}}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ingress = e2e
        .api::<Ingress>(UNWATCHED)
        .get("web")
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("get Ingress {UNWATCHED}/web: {e}")));
    if ingress.spec.and_then(|s| s.tls).is_some() {
        e2e.fail("the webhook mutated an Ingress in a namespace it does not watch");
    }
    let certificates = e2e
        .api::<Certificate>(UNWATCHED)
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("list Certificates in {UNWATCHED}: {e}")));
    for certificate in &certificates.items {
        if certificate.metadata.name.as_deref() != Some("ignored") || certificate.status.is_some() {
            e2e.fail(&format!(
                "the controller touched Certificate {UNWATCHED}/{:?} outside its namespaces",
                certificate.metadata.name
            ));
        }
    }
    let log = e2e.controller.log();
    let refused = log
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("forbidden"))
        .count();
    if refused > 0 {
        e2e.fail(&format!(
            "the namespace-scoped controller made {refused} requests its Roles do not allow"
        ));
    }
    if let Err(e) = e2e.helm.uninstall(RELEASE_NS) {
        e2e.fail(&e);
    }
    say(&format!(
        "[13/{STEPS}] {judged} access reviews as expected, no ClusterRole grants Secrets; \
         issued in {WATCHED} from a ClusterIssuer with its CA in {RELEASE_NS}; \
         {UNWATCHED} untouched; 0 forbidden requests"
    ));
}

/// Whether the chart's ServiceAccount may `verb` `resource` in `namespace`
/// (`""`: in every namespace / cluster-wide), as the API server decides.
async fn can(e2e: &E2e, verb: &str, group: &str, resource: &str, namespace: &str) -> bool {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!(
                "system:serviceaccount:{RELEASE_NS}:{}",
                chart::RELEASE
            )),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{RELEASE_NS}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                namespace: (!namespace.is_empty()).then(|| namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(e2e.client.clone());
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("SubjectAccessReview: {e}")));
    answer.status.is_some_and(|s| s.allowed)
}
