//! Gateway API on the real API server: the controller, started before the
//! Gateway API CRDs existed, said once that Gateway support is off; the
//! standard CRDs (from the `sigs.k8s.io/gateway-api` Go module) are then
//! installed and the controller finds them without a restart. An annotated
//! Gateway with a hostname-only HTTPS listener is admitted with its
//! `certificateRefs` filled in (the CRD's own rule requires `tls` on an
//! HTTPS listener, so without the webhook it would be refused); its
//! listeners get Certificates (one per Secret, the hostnames of the
//! listeners sharing it) owned by the Gateway, Ready with valid Secrets; a
//! Passthrough listener gets a Warning Event; deleting the Gateway
//! removes the Certificates.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;

use certweave::api::certificate::Certificate;

use certweave::api::issuer::ClusterIssuer;

use super::{cluster_issuer_ready, data, say, E2e, ACME_ISSUER, ISSUED, NS, STEPS};

/// The Gateway API release whose standard CRDs are installed.
const GATEWAY_API: &str = "sigs.k8s.io/gateway-api@v1.6.3";

/// The folder of the standard CRDs, from the Go module cache.
fn standard_crds() -> PathBuf {
    let out = std::process::Command::new("go")
        .args(["mod", "download", "-json", GATEWAY_API])
        .current_dir("/")
        .output()
        .unwrap_or_else(|e| {
            panic!("go mod download {GATEWAY_API}: {e} (Go is needed, as for the other peers)")
        });
    assert!(
        out.status.success(),
        "go mod download {GATEWAY_API}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    PathBuf::from(info["Dir"].as_str().unwrap()).join("config/crd/standard")
}

pub async fn gateway(e2e: &E2e) {
    let off = "Gateway support is off";
    let said = e2e.controller.log().matches(off).count();
    if said != 1 {
        e2e.fail(&format!(
            "without the Gateway API CRDs the controller should say {off:?} once, not {said} times"
        ));
    }
    let crds: Api<CustomResourceDefinition> = Api::all(e2e.client.clone());
    for file in [
        "gateway.networking.k8s.io_gatewayclasses.yaml",
        "gateway.networking.k8s.io_gateways.yaml",
        "gateway.networking.k8s.io_httproutes.yaml",
        "gateway.networking.k8s.io_listenersets.yaml",
    ] {
        let text = std::fs::read_to_string(standard_crds().join(file)).unwrap();
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&text).unwrap();
        crds.create(&PostParams::default(), &crd)
            .await
            .unwrap_or_else(|e| e2e.fail(&format!("install {file}: {e}")));
    }
    e2e.eventually(
        "the controller finds the Gateway API",
        Duration::from_secs(40),
        || async {
            if e2e.controller.log().contains("Gateway API Gateway found")
                && e2e
                    .controller
                    .log()
                    .contains("Gateway API ListenerSet found")
            {
                Ok(())
            } else {
                Err("not yet".to_owned())
            }
        },
    )
    .await;

    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "gateways");
    let gateways: Api<DynamicObject> = Api::namespaced_with(e2e.client.clone(), NS, &resource);
    let gateway: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": NS, "annotations": {"cert-manager.io/issuer": "e2e-ca"}},
        "spec": {"gatewayClassName": "example", "listeners": [
            {"name": "a", "hostname": "a.gw.example.test", "port": 443, "protocol": "HTTPS"},
            {"name": "b", "hostname": "b.gw.example.test", "port": 8443, "protocol": "HTTPS",
             "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "gw-shared"}]}},
            {"name": "c", "hostname": "c.gw.example.test", "port": 9443, "protocol": "HTTPS",
             "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": "gw-shared"}]}},
            {"name": "pass", "hostname": "p.gw.example.test", "port": 10443, "protocol": "TLS",
             "tls": {"mode": "Passthrough"}},
        ]},
    }))
    .unwrap();
    let created = gateways
        .create(&PostParams::default(), &gateway)
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("create the Gateway: {e}")));
    let filled = &created.data["spec"]["listeners"][0]["tls"];
    if filled["certificateRefs"][0]["name"] != "gw-a-tls" || filled["mode"] != "Terminate" {
        e2e.fail(&format!("listener a should be admitted with certificateRefs [gw-a-tls] and mode Terminate: {filled}"));
    }

    let certificates: Api<Certificate> = e2e.api(NS);
    let root = {
        let secrets: Api<Secret> = e2e.api(NS);
        data(&secrets.get("e2e-root").await.unwrap(), "tls.crt").unwrap_or_default()
    };
    for (name, hosts) in [
        ("gw-a-tls", vec!["a.gw.example.test"]),
        ("gw-shared", vec!["b.gw.example.test", "c.gw.example.test"]),
    ] {
        let certificate = e2e.certificate_ready(name, ISSUED).await;
        let owner = certificate
            .metadata
            .owner_references
            .clone()
            .unwrap_or_default();
        if !owner
            .iter()
            .any(|o| o.kind == "Gateway" && o.name == "gw" && o.controller == Some(true))
        {
            e2e.fail(&format!(
                "Certificate {name} should be controlled by Gateway gw: {owner:?}"
            ));
        }
        e2e.valid_secret(name, &hosts, &root, Duration::from_secs(10), |_, _| Ok(()))
            .await;
    }
    let skipped = e2e
        .eventually(
            "a Warning Event for the Passthrough listener",
            Duration::from_secs(20),
            || async {
                let events = e2e.events_about("gw").await;
                events
                    .into_iter()
                    .find(|e| e.starts_with("Warning SkippedListener") && e.contains("\"pass\""))
                    .ok_or_else(|| "no SkippedListener Event yet".to_owned())
            },
        )
        .await;

    // A listener taken out of the Gateway takes its Certificate with it;
    // a listener named in ignore-tls-listeners is left to someone else.
    let mut changed = gateways.get("gw").await.unwrap();
    changed
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("cert-manager.io/ignore-tls-listeners".into(), "c".into());
    let listeners = changed.data["spec"]["listeners"].as_array_mut().unwrap();
    listeners.retain(|l| l["name"] != "a");
    gateways
        .replace("gw", &PostParams::default(), &changed)
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("update the Gateway: {e}")));
    e2e.eventually(
        "gw-a-tls removed, gw-shared down to b",
        Duration::from_secs(20),
        || {
            let certificates = certificates.clone();
            async move {
                let gone = certificates
                    .get_opt("gw-a-tls")
                    .await
                    .map_err(|e| e.to_string())?
                    .is_none();
                let shared = certificates
                    .get("gw-shared")
                    .await
                    .map_err(|e| e.to_string())?;
                if gone && shared.spec.dns_names == ["b.gw.example.test"] {
                    Ok(())
                } else {
                    Err(format!(
                        "gw-a-tls gone: {gone}; gw-shared names {:?}",
                        shared.spec.dns_names
                    ))
                }
            }
        },
    )
    .await;
    let listener_set = listener_set(e2e).await;
    let acme = acme_through_http_route(e2e, &gateways).await;

    gateways
        .delete("gw", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("delete the Gateway: {e}")));
    e2e.eventually(
        "the Gateway's Certificates removed",
        Duration::from_secs(20),
        || {
            let certificates = certificates.clone();
            async move {
                let left: Vec<String> = certificates
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?
                    .items
                    .into_iter()
                    .filter_map(|c| c.metadata.name)
                    .filter(|n| n.starts_with("gw-"))
                    .collect();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("still there: {left:?}"))
                }
            }
        },
    )
    .await;
    say(&format!("[8/{STEPS}] Gateway: listener filled at admission, 2 Certificates Ready and owned, {skipped}; deleted with the Gateway; {listener_set}; {acme}"));
}

/// ACME HTTP-01 through `gatewayHTTPRoute`: a Gateway annotated with an
/// ACME ClusterIssuer whose solver is `gatewayHTTPRoute` gets its
/// certificate from Pebble, the challenge answered behind an HTTPRoute
/// attached to that Gateway (Pebble reaches the solver port directly, as
/// for Ingress challenges here), and no HTTPRoute is left afterwards.
async fn acme_through_http_route(e2e: &E2e, gateways: &Api<DynamicObject>) -> String {
    let issuers: Api<ClusterIssuer> = Api::all(e2e.client.clone());
    let base: ClusterIssuer = issuers.get(ACME_ISSUER).await.unwrap();
    let mut spec = serde_json::to_value(&base.spec).unwrap();
    spec["acme"]["privateKeySecretRef"]["name"] = json!("acme-gateway-account");
    spec["acme"]["solvers"] =
        json!([{"http01": {"gatewayHTTPRoute": {"labels": {"via": "gateway"}}}}]);
    e2e.create(
        &issuers,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "acme-gateway"}, "spec": spec}),
    )
    .await;
    cluster_issuer_ready(e2e, "acme-gateway").await;
    let gateway: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw-acme", "namespace": NS,
                     "annotations": {"cert-manager.io/cluster-issuer": "acme-gateway"}},
        "spec": {"gatewayClassName": "example", "listeners": [
            {"name": "https", "hostname": "gw-acme.example.test", "port": 443, "protocol": "HTTPS"},
        ]},
    }))
    .unwrap();
    gateways
        .create(&PostParams::default(), &gateway)
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("create Gateway gw-acme: {e}")));
    let certificate = e2e.certificate_ready("gw-acme-https-tls", ISSUED).await;
    let annotations = certificate.metadata.annotations.unwrap_or_default();
    if annotations
        .get("acme.cert-manager.io/http01-parentrefname")
        .map(String::as_str)
        != Some("gw-acme")
    {
        e2e.fail(&format!(
            "the shim's Certificate should name its Gateway for HTTP-01: {annotations:?}"
        ));
    }
    e2e.valid_secret(
        "gw-acme-https-tls",
        &["gw-acme.example.test"],
        &e2e.pebble.root(0).await,
        Duration::from_secs(10),
        |_, _| Ok(()),
    )
    .await;
    if !e2e.controller.log().contains("through an HTTPRoute") {
        e2e.fail("the challenge should have been routed through an HTTPRoute");
    }
    let routes: Api<DynamicObject> = Api::namespaced_with(
        e2e.client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
            "httproutes",
        ),
    );
    e2e.eventually(
        "no challenge HTTPRoute left",
        Duration::from_secs(20),
        || {
            let routes = routes.clone();
            async move {
                let left = routes
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?
                    .items
                    .len();
                if left == 0 {
                    Ok(())
                } else {
                    Err(format!("{left} HTTPRoutes left"))
                }
            }
        },
    )
    .await;
    gateways
        .delete("gw-acme", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("delete Gateway gw-acme: {e}")));
    "ACME HTTP-01 through an HTTPRoute attached to gw-acme, none left".to_owned()
}

/// A ListenerSet attached to Gateway `gw`, annotated like a Gateway: its
/// hostname-only listener is filled at admission and gets a Certificate
/// owned by the ListenerSet.
async fn listener_set(e2e: &E2e) -> String {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "ListenerSet");
    let sets: Api<DynamicObject> = Api::namespaced_with(
        e2e.client.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(&gvk, "listenersets"),
    );
    let set: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "ListenerSet",
        "metadata": {"name": "team", "namespace": NS, "annotations": {"cert-manager.io/issuer": "e2e-ca"}},
        "spec": {"parentRef": {"name": "gw"}, "listeners": [
            {"name": "app", "hostname": "app.team.example.test", "port": 443, "protocol": "HTTPS"},
        ]},
    }))
    .unwrap();
    let created = sets
        .create(&PostParams::default(), &set)
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("create the ListenerSet: {e}")));
    let filled = &created.data["spec"]["listeners"][0]["tls"]["certificateRefs"][0]["name"];
    if filled != "team-app-tls" {
        e2e.fail(&format!("the ListenerSet's listener should be admitted with certificateRefs [team-app-tls]: {filled}"));
    }
    let certificate = e2e.certificate_ready("team-app-tls", ISSUED).await;
    let owners = certificate.metadata.owner_references.unwrap_or_default();
    if !owners
        .iter()
        .any(|o| o.kind == "ListenerSet" && o.name == "team")
    {
        e2e.fail(&format!(
            "Certificate team-app-tls should be owned by ListenerSet team: {owners:?}"
        ));
    }
    sets.delete("team", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("delete the ListenerSet: {e}")));
    let certificates: Api<Certificate> = e2e.api(NS);
    e2e.eventually(
        "Certificate team-app-tls removed with its ListenerSet",
        Duration::from_secs(20),
        || {
            let certificates = certificates.clone();
            async move {
                match certificates
                    .get_opt("team-app-tls")
                    .await
                    .map_err(|e| e.to_string())?
                {
                    None => Ok(()),
                    Some(_) => Err("still there".to_owned()),
                }
            }
        },
    )
    .await;
    "ListenerSet filled at admission, its Certificate Ready, owned and removed with it".to_owned()
}
