//! The webhook end to end: a real HTTPS server on an ephemeral port, real
//! AdmissionReview JSON over HTTP/1.1 and HTTP/2, and every returned patch
//! applied to the object and checked.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use certweave::api::IssuerRef;
use certweave::webhook::MutationConfig;
use common::{review_for, Answer, RunningWebhook};

#[path = "support/hostile.rs"]
mod hostile;
use serde_json::{json, Value};

fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "shop-7d4b9c-",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/name": "shop", "pod-template-hash": "7d4b9c"},
            "annotations": annotations,
        },
        "spec": {
            "containers": [
                {"name": "app", "image": "shop:1.2", "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                 "volumeMounts": [{"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]},
                {"name": "metrics", "image": "exporter:3"}
            ],
            "volumes": [{"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}],
            "restartPolicy": "Always"
        }
    })
}

fn ingress(name: &str, annotations: Value, tls: Option<Value>) -> Value {
    let mut ing = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "web", "annotations": annotations},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {"host": "example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                {"host": "www.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}},
                {"host": "example.com", "http": {"paths": [{"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"number": 80}}}}]}}
            ]
        }
    });
    if let Some(tls) = tls {
        ing["spec"]["tls"] = tls;
    }
    ing
}

async fn post(
    client: &reqwest::Client,
    hook: &RunningWebhook,
    body: Vec<u8>,
) -> (u16, Vec<u8>, reqwest::Version) {
    let response = client
        .post(hook.url("/mutate"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request completes");
    let status = response.status().as_u16();
    let version = response.version();
    (status, response.bytes().await.unwrap().to_vec(), version)
}

/// Sends a review and decodes the AdmissionReview answer.
async fn admit(client: &reqwest::Client, hook: &RunningWebhook, review: &Value) -> Answer {
    let (status, body, _) = post(client, hook, serde_json::to_vec(review).unwrap()).await;
    assert_eq!(status, 200, "body: {}", String::from_utf8_lossy(&body));
    let answer = Answer::parse(&body);
    assert_eq!(answer.uid, review["request"]["uid"], "the uid is echoed");
    answer
}

/// Admits `object`, applies the patch, and checks that reviewing the result
/// again yields no patch (idempotency under webhook re-invocation).
async fn admit_and_apply(
    client: &reqwest::Client,
    hook: &RunningWebhook,
    object: &Value,
    op: &str,
) -> (Answer, Value) {
    let answer = admit(client, hook, &review_for(object, op, "shop")).await;
    assert!(answer.allowed, "denied: {}", answer.message);
    let mutated = answer.apply(object);
    let again = admit(client, hook, &review_for(&mutated, op, "shop")).await;
    assert!(again.allowed);
    assert!(
        again.patch.is_none(),
        "second review patched again: {:?}",
        again.patch
    );
    (answer, mutated)
}

fn mounts_of(container: &Value) -> Vec<(String, String, bool)> {
    container["volumeMounts"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|m| {
                    (
                        m["name"].as_str().unwrap().to_owned(),
                        m["mountPath"].as_str().unwrap().to_owned(),
                        m["readOnly"].as_bool().unwrap_or(false),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn our_volume(pod: &Value) -> Option<&Value> {
    pod["spec"]["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == "certweave-tls")
}

#[tokio::test]
async fn pod_defaults_over_http1_and_http2() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    for (client, version) in [
        (hook.http1(), reqwest::Version::HTTP_11),
        (hook.http2(), reqwest::Version::HTTP_2),
    ] {
        let object = pod(json!({"certweave.io/issuer": "ca-issuer"}));
        let (_, version_seen) = {
            let (status, _, v) = post(
                &client,
                &hook,
                serde_json::to_vec(&review_for(&object, "CREATE", "shop")).unwrap(),
            )
            .await;
            (status, v)
        };
        assert_eq!(
            version_seen, version,
            "the client spoke the intended protocol"
        );

        let (_, mutated) = admit_and_apply(&client, &hook, &object, "CREATE").await;
        let volume = our_volume(&mutated).expect("the Secret volume was added");
        assert_eq!(
            volume["secret"]["secretName"], "shop-tls",
            "default secret name is <svc>-tls"
        );
        for container in mutated["spec"]["containers"].as_array().unwrap() {
            assert!(
                mounts_of(container).contains(&(
                    "certweave-tls".into(),
                    "/etc/certweave/tls".into(),
                    true
                )),
                "every app container mounts the certificate read-only: {container}"
            );
        }
        assert_eq!(
            mutated["spec"]["containers"].as_array().unwrap().len(),
            2,
            "no sidecar unless asked"
        );
        assert_eq!(
            mutated["metadata"]["annotations"]["certweave.io/injected"],
            "true"
        );
        assert_eq!(
            mutated["metadata"]["labels"]["certweave.io/injected"],
            "true"
        );
        // Everything else is untouched.
        assert_eq!(mutated["spec"]["volumes"][0], object["spec"]["volumes"][0]);
        assert_eq!(mutated["metadata"]["labels"]["pod-template-hash"], "7d4b9c");
    }
}

#[tokio::test]
async fn pod_every_annotation() {
    let hook = RunningWebhook::start(MutationConfig {
        proxy_image: "registry.example/certweave:test".into(),
        ..MutationConfig::default()
    })
    .await;
    let client = hook.http2();
    let object = pod(json!({
        "certweave.io/cluster-issuer": "corp-ca",
        "certweave.io/dns-names": "shop.example.com, shop.shop.svc ,shop.example.com",
        "certweave.io/secret-name": "shop-serving",
        "certweave.io/mount-path": "/var/run/tls/",
        "certweave.io/containers": "app",
        "certweave.io/tls-proxy": "8443:8080",
    }));
    let (_, mutated) = admit_and_apply(&client, &hook, &object, "CREATE").await;
    assert_eq!(
        our_volume(&mutated).unwrap()["secret"]["secretName"],
        "shop-serving"
    );
    let containers = mutated["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 3);
    assert!(mounts_of(&containers[0]).contains(&(
        "certweave-tls".into(),
        "/var/run/tls".into(),
        true
    )));
    assert!(
        !mounts_of(&containers[1])
            .iter()
            .any(|m| m.0 == "certweave-tls"),
        "containers not listed in certweave.io/containers get no mount"
    );
    let proxy = &containers[2];
    assert_eq!(proxy["name"], "certweave-proxy");
    assert_eq!(proxy["image"], "registry.example/certweave:test");
    assert_eq!(
        proxy["args"],
        json!([
            "proxy",
            "--listen",
            "0.0.0.0:8443",
            "--upstream",
            "127.0.0.1:8080",
            "--cert-dir",
            "/var/run/tls"
        ])
    );
    assert_eq!(proxy["ports"][0]["containerPort"], 8443);
    assert_eq!(proxy["securityContext"]["runAsNonRoot"], true);
    assert_eq!(proxy["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(proxy["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(
        proxy["securityContext"]["capabilities"]["drop"],
        json!(["ALL"])
    );
    assert!(proxy["resources"]["requests"]["memory"].is_string());
    assert_eq!(proxy["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(proxy["livenessProbe"]["httpGet"]["port"], 9901);
    assert!(mounts_of(proxy).contains(&("certweave-tls".into(), "/var/run/tls".into(), true)));
}

#[tokio::test]
async fn pod_service_name_sources_and_namespace() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    let client = hook.http1();
    // certweave.io/service wins over labels.
    let mut object = pod(json!({"certweave.io/issuer": "ca", "certweave.io/service": "checkout"}));
    let (_, mutated) = admit_and_apply(&client, &hook, &object, "CREATE").await;
    assert_eq!(
        our_volume(&mutated).unwrap()["secret"]["secretName"],
        "checkout-tls"
    );
    // Label `app` is the last fallback.
    object["metadata"]["labels"] = json!({"app": "legacy"});
    object["metadata"]["annotations"] = json!({"certweave.io/issuer": "ca"});
    let (_, mutated) = admit_and_apply(&client, &hook, &object, "CREATE").await;
    assert_eq!(
        our_volume(&mutated).unwrap()["secret"]["secretName"],
        "legacy-tls"
    );
    // The default DNS names use the request's namespace; the controller reads
    // them back through the same function.
    let request = certweave::webhook::pod::PodCertificateRequest::from_pod(&mutated, "shop")
        .unwrap()
        .unwrap();
    assert_eq!(
        request.dns_names,
        ["legacy.shop.svc", "legacy.shop.svc.cluster.local"]
    );
    assert_eq!(request.issuer.to_string(), "Issuer/ca");
}

#[tokio::test]
async fn ingress_gets_tls_from_its_hosts() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    for client in [hook.http1(), hook.http2()] {
        let object = ingress(
            "web",
            json!({"cert-manager.io/cluster-issuer": "letsencrypt-prod"}),
            None,
        );
        let (_, mutated) = admit_and_apply(&client, &hook, &object, "CREATE").await;
        assert_eq!(
            mutated["spec"]["tls"],
            json!([{"hosts": ["example.com", "www.example.com"], "secretName": "web-tls"}]),
            "one entry with every rule host, deduplicated, in order"
        );
        assert_eq!(mutated["spec"]["rules"], object["spec"]["rules"]);
        assert_eq!(
            mutated["metadata"], object["metadata"],
            "an Ingress gets no marker"
        );
    }
}

#[tokio::test]
async fn ingress_existing_tls_entries() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    let client = hook.http2();
    let object = ingress(
        "web",
        json!({"cert-manager.io/issuer": "ca", "cert-manager.io/issuer-kind": "ClusterIssuer"}),
        Some(json!([
            {"hosts": ["example.com"]},
            {"hosts": ["www.example.com"], "secretName": "web-tls"},
            {"hosts": ["api.example.com"]}
        ])),
    );
    let (_, mutated) = admit_and_apply(&client, &hook, &object, "UPDATE").await;
    assert_eq!(
        mutated["spec"]["tls"],
        json!([
            {"hosts": ["example.com"], "secretName": "web-tls-1"},
            {"hosts": ["www.example.com"], "secretName": "web-tls"},
            {"hosts": ["api.example.com"], "secretName": "web-tls-2"}
        ]),
        "entries without secretName get a unique one; others are left alone"
    );
    // Complete entries: no patch at all.
    let complete = ingress(
        "web",
        json!({"cert-manager.io/cluster-issuer": "x"}),
        Some(json!([{"hosts": ["example.com"], "secretName": "mine"}])),
    );
    let answer = admit(&client, &hook, &review_for(&complete, "CREATE", "web")).await;
    assert!(answer.allowed && answer.patch.is_none());
}

#[tokio::test]
async fn ingress_tls_acme_uses_default_issuer_or_warns() {
    let with_default = RunningWebhook::start(MutationConfig {
        default_issuer: Some("ClusterIssuer/letsencrypt".parse::<IssuerRef>().unwrap()),
        ..MutationConfig::default()
    })
    .await;
    let object = ingress("shop", json!({"kubernetes.io/tls-acme": "true"}), None);
    let (_, mutated) =
        admit_and_apply(&with_default.http2(), &with_default, &object, "CREATE").await;
    assert_eq!(mutated["spec"]["tls"][0]["secretName"], "shop-tls");

    let without = RunningWebhook::start(MutationConfig::default()).await;
    let answer = admit(
        &without.http2(),
        &without,
        &review_for(&object, "CREATE", "web"),
    )
    .await;
    assert!(answer.allowed);
    assert!(answer.patch.is_none());
    assert!(
        answer
            .warnings
            .iter()
            .any(|w| w.contains("--default-issuer")),
        "the user is told why nothing happened: {:?}",
        answer.warnings
    );
}

#[tokio::test]
async fn ingress_override_annotations_are_validated() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    let client = hook.http1();
    let good = ingress(
        "web",
        json!({
            "cert-manager.io/cluster-issuer": "le",
            "cert-manager.io/common-name": "example.com",
            "cert-manager.io/duration": "2160h",
            "cert-manager.io/renew-before": "360h",
            "cert-manager.io/private-key-algorithm": "ECDSA",
            "cert-manager.io/private-key-size": "384",
            "cert-manager.io/private-key-rotation-policy": "Always",
        }),
        None,
    );
    admit_and_apply(&client, &hook, &good, "CREATE").await;
}

#[tokio::test]
async fn dry_run_gets_the_same_patch() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    let client = hook.http2();
    for object in [
        pod(json!({"certweave.io/issuer": "ca", "certweave.io/tls-proxy": "9443:8080"})),
        ingress("web", json!({"cert-manager.io/cluster-issuer": "le"}), None),
    ] {
        let mut review = review_for(&object, "CREATE", "shop");
        let normal = admit(&client, &hook, &review).await;
        review["request"]["dryRun"] = json!(true);
        let dry = admit(&client, &hook, &review).await;
        assert!(normal.patch.is_some());
        assert_eq!(normal.patch, dry.patch);
    }
}

#[tokio::test]
async fn things_we_do_not_touch() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    let client = hook.http1();
    let annotated = pod(json!({"certweave.io/issuer": "ca"}));
    let cases = [
        (
            "unannotated Pod",
            review_for(&pod(json!({"team": "a"})), "CREATE", "shop"),
        ),
        ("Pod UPDATE", review_for(&annotated, "UPDATE", "shop")),
        ("Pod DELETE", review_for(&annotated, "DELETE", "shop")),
        (
            "Ingress DELETE",
            review_for(
                &ingress("w", json!({"cert-manager.io/issuer": "ca"}), None),
                "DELETE",
                "web",
            ),
        ),
        (
            "unknown kind",
            review_for(
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {"certweave.io/issuer": "ca"}}}),
                "CREATE",
                "web",
            ),
        ),
        (
            "unannotated Ingress",
            review_for(&ingress("w", json!({}), None), "CREATE", "web"),
        ),
        (
            "Ingress without hosts",
            review_for(
                &json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "w", "annotations": {"cert-manager.io/issuer": "ca"}}, "spec": {"defaultBackend": {"service": {"name": "x", "port": {"number": 80}}}}}),
                "CREATE",
                "web",
            ),
        ),
    ];
    for (what, review) in cases {
        let answer = admit(&client, &hook, &review).await;
        assert!(answer.allowed, "{what}: {}", answer.message);
        assert!(answer.patch.is_none(), "{what} was patched");
    }
    // A Pod status subresource update is not ours either.
    let mut review = review_for(&annotated, "CREATE", "shop");
    review["request"]["subResource"] = json!("binding");
    let answer = admit(&client, &hook, &review).await;
    assert!(answer.allowed && answer.patch.is_none());
    // A Pod already injected is left alone.
    let (_, injected) = admit_and_apply(&client, &hook, &annotated, "CREATE").await;
    let answer = admit(&client, &hook, &review_for(&injected, "CREATE", "shop")).await;
    assert!(answer.allowed && answer.patch.is_none());
}

/// A bad input and what must come back: an HTTP status with a JSON error, or
/// a denial whose message names `field`.
/// `n` distinct valid host names.
fn hosts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("h{i}.example.com")).collect()
}

enum Expect {
    Http(u16, &'static str),
    Denied(&'static str),
}

#[tokio::test]
async fn bad_inputs_get_clear_answers_and_the_server_stays_up() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    let clients = [hook.http1(), hook.http2()];
    let review =
        |object: Value| serde_json::to_vec(&review_for(&object, "CREATE", "shop")).unwrap();
    let pod_with = |pairs: Value| {
        let mut annotations = json!({"certweave.io/issuer": "ca"});
        for (k, v) in pairs.as_object().unwrap() {
            annotations[k] = v.clone();
        }
        review(pod(annotations))
    };
    let injected_without_volume = pod_with(json!({"certweave.io/injected": "true"}));
    let mut duplicate_volume = pod(json!({"certweave.io/issuer": "ca"}));
    duplicate_volume["spec"]["volumes"] = json!([{"name": "certweave-tls", "emptyDir": {}}]);
    let mut containers_not_list = pod(json!({"certweave.io/issuer": "ca"}));
    containers_not_list["spec"]["containers"] = json!({"name": "app"});
    let mut generate_name_ingress =
        ingress("", json!({"cert-manager.io/cluster-issuer": "le"}), None);
    generate_name_ingress["metadata"]["generateName"] = json!("web-");
    let mut object_string = review_for(&pod(json!({})), "CREATE", "shop");
    object_string["request"]["object"] = json!("a Pod, honestly");
    let mut object_missing = review_for(&pod(json!({})), "CREATE", "shop");
    object_missing["request"]["object"] = Value::Null;
    let mut no_uid = review_for(&pod(json!({})), "CREATE", "shop");
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut empty_uid = review_for(&pod(json!({})), "CREATE", "shop");
    empty_uid["request"]["uid"] = json!("");
    let mut v1beta1 = review_for(&pod(json!({})), "CREATE", "shop");
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut bad_operation = review_for(&pod(json!({})), "CREATE", "shop");
    bad_operation["request"]["operation"] = json!("EXPLODE");
    let mut huge = review_for(
        &pod(json!({"filler": "x".repeat(4 * 1024 * 1024)})),
        "CREATE",
        "shop",
    );
    huge["request"]["uid"] = json!("huge");

    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "garbage",
            b"\x00\xffnot json at all".to_vec(),
            Expect::Http(400, "not a JSON object"),
        ),
        (
            "empty body",
            Vec::new(),
            Expect::Http(400, "the body is empty"),
        ),
        (
            "truncated JSON",
            br#"{"kind":"AdmissionReview","apiVersion":"admiss"#.to_vec(),
            Expect::Http(400, "not a valid"),
        ),
        (
            "a JSON array",
            b"[1,2,3]".to_vec(),
            Expect::Http(400, "not a JSON object"),
        ),
        (
            "no request",
            br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#.to_vec(),
            Expect::Http(400, "request: missing"),
        ),
        (
            "no uid",
            serde_json::to_vec(&no_uid).unwrap(),
            Expect::Http(400, "uid"),
        ),
        (
            "empty uid",
            serde_json::to_vec(&empty_uid).unwrap(),
            Expect::Http(400, "request.uid"),
        ),
        (
            "v1beta1 review",
            serde_json::to_vec(&v1beta1).unwrap(),
            Expect::Http(400, "admissionReviewVersions"),
        ),
        (
            "a 1 MiB apiVersion",
            {
                let mut v = review_for(&pod(json!({})), "CREATE", "shop");
                v["apiVersion"] = json!("v".repeat(1 << 20));
                serde_json::to_vec(&v).unwrap()
            },
            Expect::Http(400, "admissionReviewVersions"),
        ),
        (
            "a 1 MiB annotation value",
            pod_with(json!({"certweave.io/tls-proxy": "8".repeat(1 << 20)})),
            Expect::Denied("certweave.io/tls-proxy"),
        ),
        (
            "unknown operation",
            serde_json::to_vec(&bad_operation).unwrap(),
            Expect::Http(400, "EXPLODE"),
        ),
        (
            "huge body",
            serde_json::to_vec(&huge).unwrap(),
            Expect::Http(413, "3 MiB"),
        ),
        (
            "object of the wrong type",
            serde_json::to_vec(&object_string).unwrap(),
            Expect::Denied("request.object"),
        ),
        (
            "object missing on CREATE",
            serde_json::to_vec(&object_missing).unwrap(),
            Expect::Denied("request.object"),
        ),
        (
            "relative mount path",
            pod_with(json!({"certweave.io/mount-path": "etc/tls"})),
            Expect::Denied("certweave.io/mount-path"),
        ),
        (
            "mount path over an existing mount",
            pod_with(
                json!({"certweave.io/mount-path": "/var/run/secrets/kubernetes.io/serviceaccount"}),
            ),
            Expect::Denied("certweave.io/mount-path"),
        ),
        (
            "bad DNS name",
            pod_with(json!({"certweave.io/dns-names": "shop..example.com"})),
            Expect::Denied("certweave.io/dns-names"),
        ),
        (
            "uppercase DNS name",
            pod_with(json!({"certweave.io/dns-names": "Shop.example.com"})),
            Expect::Denied("certweave.io/dns-names"),
        ),
        (
            "wildcard in the middle",
            pod_with(json!({"certweave.io/dns-names": "api.*.example.com"})),
            Expect::Denied("certweave.io/dns-names"),
        ),
        (
            "wildcard over a TLD",
            pod_with(json!({"certweave.io/dns-names": "*.com"})),
            Expect::Denied("certweave.io/dns-names"),
        ),
        (
            "tls-proxy without colon",
            pod_with(json!({"certweave.io/tls-proxy": "8443"})),
            Expect::Denied("certweave.io/tls-proxy"),
        ),
        (
            "tls-proxy port out of range",
            pod_with(json!({"certweave.io/tls-proxy": "70000:8080"})),
            Expect::Denied("certweave.io/tls-proxy"),
        ),
        (
            "tls-proxy same port twice",
            pod_with(json!({"certweave.io/tls-proxy": "8080:8080"})),
            Expect::Denied("certweave.io/tls-proxy"),
        ),
        (
            "tls-proxy on a used port",
            pod_with(json!({"certweave.io/tls-proxy": "8080:9090"})),
            Expect::Denied("certweave.io/tls-proxy"),
        ),
        (
            "app on the sidecar's health port",
            {
                let mut p = pod(
                    json!({"certweave.io/issuer": "ca", "certweave.io/tls-proxy": "8443:8080"}),
                );
                p["spec"]["containers"][1]["ports"] = json!([{"containerPort": 9901}]);
                review(p)
            },
            Expect::Denied("certweave.io/tls-proxy"),
        ),
        (
            "unknown container",
            pod_with(json!({"certweave.io/containers": "app,sidecar"})),
            Expect::Denied("certweave.io/containers"),
        ),
        (
            "issuer and cluster-issuer",
            pod_with(json!({"certweave.io/cluster-issuer": "ca"})),
            Expect::Denied("certweave.io/issuer"),
        ),
        (
            "invalid issuer name",
            pod_with(json!({"certweave.io/issuer": "My_CA"})),
            Expect::Denied("certweave.io/issuer"),
        ),
        (
            "invalid secret name",
            pod_with(json!({"certweave.io/secret-name": "Bad Name"})),
            Expect::Denied("certweave.io/secret-name"),
        ),
        (
            "no service name",
            review(
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {"certweave.io/issuer": "ca"}}, "spec": {"containers": [{"name": "a", "image": "a"}]}}),
            ),
            Expect::Denied("certweave.io/service"),
        ),
        (
            "annotation that is not a string",
            review(pod(
                json!({"certweave.io/issuer": "ca", "certweave.io/tls-proxy": 8443}),
            )),
            Expect::Denied("metadata.annotations[certweave.io/tls-proxy]"),
        ),
        (
            "duplicate volume name",
            review(duplicate_volume),
            Expect::Denied("spec.volumes"),
        ),
        (
            "injected but lost its volume",
            injected_without_volume,
            Expect::Denied("certweave.io/injected"),
        ),
        (
            "containers not a list",
            review(containers_not_list),
            Expect::Denied("spec.containers"),
        ),
        (
            "unknown issuer kind",
            review(ingress(
                "w",
                json!({"cert-manager.io/issuer": "ca", "cert-manager.io/issuer-kind": "Vault"}),
                None,
            )),
            Expect::Denied("cert-manager.io/issuer-kind"),
        ),
        (
            "external issuer group",
            review(ingress(
                "w",
                json!({"cert-manager.io/issuer": "ca", "cert-manager.io/issuer-group": "awspca.cert-manager.io"}),
                None,
            )),
            Expect::Denied("cert-manager.io/issuer-group"),
        ),
        (
            "bad duration",
            review(ingress(
                "w",
                json!({"cert-manager.io/cluster-issuer": "le", "cert-manager.io/duration": "90d"}),
                None,
            )),
            Expect::Denied("cert-manager.io/duration"),
        ),
        (
            "renew-before past duration",
            review(ingress(
                "w",
                json!({"cert-manager.io/cluster-issuer": "le", "cert-manager.io/duration": "24h", "cert-manager.io/renew-before": "48h"}),
                None,
            )),
            Expect::Denied("cert-manager.io/renew-before"),
        ),
        (
            "unknown key algorithm",
            review(ingress(
                "w",
                json!({"cert-manager.io/cluster-issuer": "le", "cert-manager.io/private-key-algorithm": "DSA"}),
                None,
            )),
            Expect::Denied("cert-manager.io/private-key-algorithm"),
        ),
        (
            "invalid host",
            review(
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "w", "annotations": {"cert-manager.io/cluster-issuer": "le"}}, "spec": {"rules": [{"host": "exa mple.com"}]}}),
            ),
            Expect::Denied("spec.rules[0].host"),
        ),
        (
            "tls entry without hosts",
            review(ingress(
                "w",
                json!({"cert-manager.io/cluster-issuer": "le"}),
                Some(json!([{"hosts": ["example.com"], "secretName": "x"}, {}])),
            )),
            Expect::Denied("spec.tls[1].hosts"),
        ),
        (
            "generateName without secretName",
            review(generate_name_ingress),
            Expect::Denied("spec.tls[0].secretName"),
        ),
        (
            "1,001 rule hosts",
            review(
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "w", "annotations": {"cert-manager.io/cluster-issuer": "le"}}, "spec": {"rules": hosts(1001).iter().map(|h| json!({"host": h})).collect::<Vec<_>>()}}),
            ),
            Expect::Denied("spec.rules"),
        ),
        (
            "101 distinct rule hosts for one certificate",
            review(
                json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "w", "annotations": {"cert-manager.io/cluster-issuer": "le"}}, "spec": {"rules": hosts(101).iter().map(|h| json!({"host": h})).collect::<Vec<_>>()}}),
            ),
            Expect::Denied("spec.rules"),
        ),
        (
            "101 spec.tls entries",
            review(ingress(
                "w",
                json!({"cert-manager.io/cluster-issuer": "le"}),
                Some(json!(hosts(101)
                    .iter()
                    .map(|h| json!({"hosts": [h]}))
                    .collect::<Vec<_>>())),
            )),
            Expect::Denied("spec.tls"),
        ),
        (
            "101 hosts in one spec.tls entry",
            review(ingress(
                "w",
                json!({"cert-manager.io/cluster-issuer": "le"}),
                Some(json!([{"hosts": hosts(101)}])),
            )),
            Expect::Denied("spec.tls[0].hosts"),
        ),
        (
            "101 Pod DNS names",
            pod_with(json!({"certweave.io/dns-names": hosts(101).join(",")})),
            Expect::Denied("certweave.io/dns-names"),
        ),
    ];
    assert!(cases.len() >= 20);
    for (i, (what, body, expect)) in cases.into_iter().enumerate() {
        let client = &clients[i % 2];
        let (status, answer, _) = post(client, &hook, body).await;
        match expect {
            Expect::Http(code, needle) => {
                assert_eq!(status, code, "{what}: {}", String::from_utf8_lossy(&answer));
                let error: Value = serde_json::from_slice(&answer)
                    .unwrap_or_else(|_| panic!("{what}: error body is JSON"));
                let message = error["error"].as_str().unwrap();
                assert!(
                    message.contains(needle),
                    "{what}: {message:?} should mention {needle:?}"
                );
                // Every 400 says how to fix it, and never quotes a body
                // or a value whole.
                assert!(
                    message.contains("; "),
                    "{what}: {message:?} should say how to fix it"
                );
                assert!(message.len() < 4096, "{what}: {} bytes", message.len());
            }
            Expect::Denied(field) => {
                assert_eq!(status, 200, "{what}: {}", String::from_utf8_lossy(&answer));
                let answer = Answer::parse(&answer);
                assert!(!answer.allowed, "{what} was allowed");
                assert!(answer.patch.is_none());
                assert_eq!(answer.code, Some(400), "{what}");
                assert!(
                    answer.message.starts_with(field),
                    "{what}: {:?} should name {field:?} first",
                    answer.message
                );
                assert!(
                    answer.message.contains("; "),
                    "{what}: {:?} should say how to fix it",
                    answer.message
                );
                assert!(
                    answer.message.len() < 4096,
                    "{what}: a {} byte denial",
                    answer.message.len()
                );
            }
        }
    }
    // Still serving, and it counted what it saw.
    let health = clients[0].get(hook.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let metrics = clients[1]
        .get(hook.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"certweave_admission_requests_total{kind="Pod",operation="CREATE",result="denied"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"result="malformed""#));
    assert!(metrics.contains(r#"result="too_large""#));
    assert!(metrics.contains("certweave_admission_duration_seconds_bucket"));
    let wrong_method = clients[0].get(hook.url("/mutate")).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);
    let unknown = clients[1].get(hook.url("/nope")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn stalled_clients_are_timed_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hook = RunningWebhook::start(MutationConfig::default()).await;

    // A client that completes TLS, promises a body, and never sends it.
    let mut tls = tls_connect(&hook).await;
    tls.write_all(b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "got {text:?}");
    assert!(started.elapsed() < Duration::from_secs(8));

    // A client that connects and never starts TLS is dropped.
    let mut raw = tokio::net::TcpStream::connect(hook.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the silent connection was closed"
    );

    // And the server still answers.
    let health = hook.http2().get(hook.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

async fn tls_connect(
    hook: &RunningWebhook,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    tls_connect_to(hook.addr, &hook.pki.ca_pem).await
}

/// An HTTP/1.1 TLS connection to `addr`, trusting `ca_pem`.
async fn tls_connect_to(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(certweave::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

use rustls::pki_types::pem::PemObject;

async fn served_certificate(hook: &RunningWebhook) -> Vec<u8> {
    let tls = tls_connect(hook).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn rotated_certificate_files_are_served_without_restart() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    let (cert_path, key_path) = hook.cert_paths();
    let first = served_certificate(&hook).await;
    let client = hook.http2();
    assert_eq!(
        client
            .get(hook.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Rotate atomically (write aside, rename over), as cert tools do.
    let (cert, key, second) = hook.pki.leaf();
    assert_ne!(first, second);
    std::fs::write(hook.dir.path().join("new.key"), key).unwrap();
    std::fs::write(hook.dir.path().join("new.crt"), cert).unwrap();
    std::fs::rename(hook.dir.path().join("new.key"), &key_path).unwrap();
    std::fs::rename(hook.dir.path().join("new.crt"), &cert_path).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if served_certificate(&hook).await == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The HTTP/2 connection opened before the rotation still works.
    assert_eq!(
        client
            .get(hook.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // A broken rotation (key of another certificate) is refused and counted;
    // the last good certificate keeps being served.
    let (other_cert, _, _) = hook.pki.leaf();
    std::fs::write(&cert_path, other_cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = client
            .get(hook.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("certweave_tls_reload_errors_total 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broken rotation was never noticed: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served_certificate(&hook).await, second);
}

#[tokio::test]
async fn refuses_to_start_without_a_valid_certificate() {
    let pki = common::TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write_leaf(dir.path());
    let (other_cert, _, _) = pki.leaf();
    std::fs::write(dir.path().join("other.crt"), other_cert).unwrap();
    let options = |cert: &str, key: &str| certweave::webhook::server::ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        cert_file: dir.path().join(cert),
        key_file: dir.path().join(key),
        mutation: MutationConfig::default(),
        reload_interval: Duration::from_secs(1),
        client_timeout: Duration::from_secs(1),
        review_deadline: certweave::webhook::server::REVIEW_DEADLINE,
    };
    let err = certweave::webhook::server::WebhookServer::bind(options("missing.crt", "tls.key"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("missing.crt"), "{err}");
    let err = certweave::webhook::server::WebhookServer::bind(options("other.crt", "tls.key"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("does not belong"), "{err}");
    let err = certweave::webhook::server::WebhookServer::bind(options("tls.key", "tls.key"))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}

/// The largest Ingress the limits allow: 1,000 rule hosts, 100 `spec.tls`
/// entries of 10 hosts each, no secretName (so the webhook names them).
fn largest_legal_ingress() -> Value {
    let hosts = hosts(1000);
    json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "big", "annotations": {"cert-manager.io/cluster-issuer": "le"}},
           "spec": {"rules": hosts.iter().map(|h| json!({"host": h})).collect::<Vec<_>>(),
                    "tls": hosts.chunks(10).map(|c| json!({"hosts": c})).collect::<Vec<_>>()}})
}

#[tokio::test]
async fn large_reviews_are_evaluated_off_the_connection_threads_and_health_stays_up() {
    let hook = RunningWebhook::start(MutationConfig::default()).await;
    let client = hook.http2();
    let legal =
        serde_json::to_vec(&review_for(&largest_legal_ingress(), "CREATE", "shop")).unwrap();
    assert!(
        legal.len() > certweave::webhook::server::INLINE_REVIEW_BYTES,
        "the case must take the large-review path ({} bytes)",
        legal.len()
    );
    // 20,000 hosts (about 1 MB): refused after one pass over the list.
    let hostile = serde_json::to_vec(&review_for(
        &json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "w", "annotations": {"cert-manager.io/cluster-issuer": "le"}},
                "spec": {"rules": hosts(20_000).iter().map(|h| json!({"host": h})).collect::<Vec<_>>()}}),
        "CREATE",
        "shop",
    ))
    .unwrap();
    let mut flood = Vec::new();
    for _ in 0..8 {
        let (client, hook_url, body) = (client.clone(), hook.url("/mutate"), hostile.clone());
        flood.push(tokio::spawn(async move {
            let response = client.post(hook_url).body(body).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.bytes().await.unwrap())
        }));
    }
    let health = client.get(hook.url("/healthz")).send().await.unwrap();
    assert_eq!(
        health.status(),
        200,
        "/healthz answers while large reviews run"
    );
    let (status, body, _) = post(&client, &hook, legal).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer = Answer::parse(&body);
    assert!(answer.allowed, "{}", answer.message);
    let mutated = answer.apply(&largest_legal_ingress());
    let entries = mutated["spec"]["tls"].as_array().unwrap();
    assert_eq!(entries.len(), 100);
    assert!(entries.iter().all(|e| e["secretName"].is_string()));
    for task in flood {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, 200);
        let answer = Answer::parse(&body);
        assert!(
            !answer.allowed && answer.message.contains("spec.rules"),
            "{}",
            answer.message
        );
        assert!(body.len() < 4096, "the denial does not echo the hosts");
    }
}

#[tokio::test]
async fn a_review_not_evaluated_within_its_deadline_is_answered_503() {
    let hook = RunningWebhook::start_with(
        MutationConfig::default(),
        Duration::from_millis(100),
        Duration::ZERO,
    )
    .await;
    let client = hook.http1();
    let large =
        serde_json::to_vec(&review_for(&largest_legal_ingress(), "CREATE", "shop")).unwrap();
    let (status, body, _) = post(&client, &hook, large).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("not evaluated within") && text.contains("retry"),
        "{text}"
    );
    // Small reviews are evaluated where they arrive, without a deadline.
    let small = ingress("w", json!({"cert-manager.io/cluster-issuer": "le"}), None);
    let answer = admit(&client, &hook, &review_for(&small, "CREATE", "shop")).await;
    assert!(answer.allowed);
}

#[tokio::test]
async fn sigterm_stops_the_binary_within_its_drain_timeout_whatever_is_in_flight() {
    use tokio::io::AsyncWriteExt;
    let pki = common::TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    pki.write_leaf(dir.path());
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
        .arg("webhook")
        .args(["--addr", &addr.to_string()])
        .arg("--tls-cert-file")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key-file")
        .arg(dir.path().join("tls.key"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let url = |path: &str| format!("https://localhost:{}{path}", addr.port());
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(url("/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the webhook never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // In flight: a review whose body never finishes, and a stream of large
    // hostile reviews.
    let mut stalled = tls_connect_to(addr, &pki.ca_pem).await;
    stalled
        .write_all(
            b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
              content-length: 1000000\r\n\r\n{\"kind\":",
        )
        .await
        .unwrap();
    stalled.flush().await.unwrap();
    let hostile = hostile::review(hostile::Shape::RuleHosts, 50_000);
    let flood: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, body) = (client.clone(), url("/mutate"), hostile.clone());
            tokio::spawn(async move {
                loop {
                    if client.post(&url).body(body.clone()).send().await.is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let sent = Instant::now();
    let drain = certweave::webhook::server::CLIENT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < drain + Duration::from_secs(5),
            "still running {:?} after SIGTERM (drain timeout {drain:?})",
            sent.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    for task in flood {
        task.abort();
    }
    drop(stalled);
}
