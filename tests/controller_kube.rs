//! The controller's Kubernetes requests, asserted one by one against a
//! scripted API server: issuance into a Secret, status, renewal, drift, ACME
//! account bootstrap, the Ingress shim, Pod certificates, the webhook's own
//! certificate, conflicts and API errors.

#[path = "support/kube_mock.rs"]
mod kube_mock;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use certweave::api::certificate::{Certificate, CertificateSpec, IssuerReference};
use certweave::controller::kube_store::KubeStore;
use certweave::controller::scope::ScopedCache;
use certweave::engine::reconcile::{reconcile, Managed, ReconcileError};
use certweave::engine::timing::RenewBefore;
use certweave::issuers::acme::account::load_or_create_key;
use certweave::issuers::selfsigned::SelfSignedIssuer;
use certweave::model::IssueError;
use certweave::model::{CertificateRequest, KeyRotation};
use certweave::pki;
use certweave::store::{ObjectKey, StoreError};
use kube_mock::{client, status, ApiServer};
use serde_json::{json, Value};

const SECRET_PATH: &str = "/api/v1/namespaces/shop/secrets/web-tls";
const CERT_PATH: &str = "/apis/cert-manager.io/v1/namespaces/shop/certificates/web";
const STATUS_PATH: &str = "/apis/cert-manager.io/v1/namespaces/shop/certificates/web/status";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn unb64(value: &Value) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("base64 string"))
            .unwrap(),
    )
    .unwrap()
}

fn managed(names: &[&str]) -> Managed {
    Managed {
        certificate: ObjectKey::new("shop", "web"),
        secret: ObjectKey::new("shop", "web-tls"),
        request: CertificateRequest::for_dns_names(names.iter().copied()),
        renew_before: RenewBefore::Default,
        rotation: KeyRotation::Always,
        issuer_kind: "ClusterIssuer".into(),
        issuer_name: "selfsigned".into(),
        issuer_group: "cert-manager.io".into(),
        origin: Default::default(),
        secret_labels: BTreeMap::from([("team".into(), "shop".into())]),
        secret_annotations: BTreeMap::new(),
        output_formats: Default::default(),
        renew_now: false,
    }
}

fn certificate(status: Option<Value>) -> Value {
    let mut c = Certificate::new(
        "web",
        CertificateSpec {
            secret_name: "web-tls".into(),
            dns_names: vec!["web.example.com".into()],
            issuer_ref: IssuerReference {
                name: "selfsigned".into(),
                kind: Some("ClusterIssuer".into()),
                group: None,
            },
            ..Default::default()
        },
    );
    c.metadata.namespace = Some("shop".into());
    c.metadata.uid = Some("cert-uid".into());
    c.metadata.generation = Some(1);
    let mut value = serde_json::to_value(c).unwrap();
    if let Some(status) = status {
        value["status"] = status;
    }
    value
}

/// The Secret as the API server would return it after certweave wrote it.
fn stored_secret(applied: &Value) -> Value {
    let mut secret = applied.clone();
    secret["metadata"]["resourceVersion"] = json!("7");
    secret
}

/// Runs one reconcile against the scripted server in the background, so
/// the test can answer its requests.
fn spawn_reconcile<I: certweave::issuers::Issuer + 'static>(
    store: &KubeStore,
    wanted: Managed,
    issuer: I,
    now: SystemTime,
) -> tokio::task::JoinHandle<Result<certweave::engine::reconcile::Step, ReconcileError>> {
    let store = store.clone();
    tokio::spawn(async move { reconcile(&store, &wanted, Ok(&issuer), now).await })
}

/// [`spawn_reconcile`] of the self-signed `web.example.com` certificate
/// most tests use.
fn spawn_web_reconcile(
    store: &KubeStore,
) -> tokio::task::JoinHandle<Result<certweave::engine::reconcile::Step, ReconcileError>> {
    spawn_reconcile(
        store,
        managed(&["web.example.com"]),
        SelfSignedIssuer::default(),
        SystemTime::now(),
    )
}

/// Answers the rest of a first issuance whose Secret write the API server
/// refuses with `refusal` (a Status), and returns the store error's reason.
async fn secret_write_refused(
    server: &mut ApiServer,
    task: tokio::task::JoinHandle<Result<certweave::engine::reconcile::Step, ReconcileError>>,
    refusal: Value,
) -> String {
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    let code = refusal["code"].as_u64().expect("a Status has a code") as u16;
    server.expect("PATCH", SECRET_PATH, code, refusal).await;
    match task.await.unwrap() {
        Err(ReconcileError::Store(err @ StoreError::Api { .. })) => {
            let StoreError::Api { object, source, .. } = &err else {
                unreachable!()
            };
            assert_eq!(object, "Secret shop/web-tls");
            assert!(
                source.downcast_ref::<kube::Error>().is_some(),
                "the API server's error is kept as the source: {source:?}"
            );
            err.to_string()
        }
        other => panic!("expected a store error, got {other:?}"),
    }
}

/// Answers the requests of a first issuance and returns the applied Secret
/// and the status patch.
async fn first_issuance(server: &mut ApiServer) -> (Value, Value) {
    server.expect_not_found("GET", SECRET_PATH).await;
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    let applied = server.expect("PATCH", SECRET_PATH, 200, Value::Null).await;
    assert_eq!(applied.param("fieldManager").as_deref(), Some("certweave"));
    assert_eq!(applied.param("force").as_deref(), Some("true"));
    assert_eq!(
        applied.content_type.as_deref(),
        Some("application/apply-patch+yaml"),
        "server-side apply"
    );
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    let status = server
        .expect("PATCH", STATUS_PATH, 200, certificate(None))
        .await;
    assert_eq!(
        status.content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    (applied.body, status.body)
}

#[tokio::test]
async fn first_issuance_writes_one_tls_secret_then_the_status() {
    let (client, mut server) = client();
    let store = KubeStore::new(client);
    let task = spawn_web_reconcile(&store);
    let (secret, status) = first_issuance(&mut server).await;
    let step = task.await.unwrap().unwrap();
    assert!(step.issued);

    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["apiVersion"], "v1");
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(
        secret["metadata"]["labels"]["team"], "shop",
        "secretTemplate labels"
    );
    assert_eq!(
        secret["metadata"]["labels"]["controller.cert-manager.io/fao"],
        "true"
    );
    let annotations = &secret["metadata"]["annotations"];
    assert_eq!(annotations["cert-manager.io/certificate-name"], "web");
    assert_eq!(annotations["cert-manager.io/issuer-name"], "selfsigned");
    assert_eq!(annotations["cert-manager.io/issuer-kind"], "ClusterIssuer");
    assert_eq!(annotations["cert-manager.io/alt-names"], "web.example.com");
    // Key and certificate in the same request, and they match.
    let chain = unb64(&secret["data"]["tls.crt"]);
    let key = unb64(&secret["data"]["tls.key"]);
    let leaf = pki::check_bundle(&chain, &key, None, SystemTime::now()).unwrap();
    assert_eq!(leaf.dns_names, ["web.example.com"]);

    let status = &status["status"];
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "True");
    assert_eq!(status["revision"], 1);
    assert!(status["notAfter"].is_string());
    assert!(status["renewalTime"].is_string());
    assert_eq!(status["failedIssuanceAttempts"], Value::Null, "cleared");
    assert_eq!(status["nextPrivateKeySecretName"], Value::Null);
}

#[tokio::test]
async fn a_valid_secret_is_left_alone_and_renewed_once_due() {
    let (client, mut server) = client();
    let store = KubeStore::new(client);
    let wanted = managed(&["web.example.com"]);
    // Issue once to get a real Secret body.
    let first = spawn_reconcile(
        &store,
        wanted.clone(),
        SelfSignedIssuer::default(),
        SystemTime::now(),
    );
    let (secret, status) = first_issuance(&mut server).await;
    first.await.unwrap().unwrap();
    let mut status = status["status"].clone();
    status["conditions"][0]["message"] = json!("Certificate is up to date and has not expired");

    // Not due: two reads, no write.
    let check = spawn_reconcile(
        &store,
        wanted.clone(),
        SelfSignedIssuer::default(),
        SystemTime::now(),
    );
    server
        .expect("GET", SECRET_PATH, 200, stored_secret(&secret))
        .await;
    server
        .expect("GET", CERT_PATH, 200, certificate(Some(status.clone())))
        .await;
    let step = check.await.unwrap().unwrap();
    assert!(!step.issued);
    assert!(
        step.next > SystemTime::now() + Duration::from_secs(59 * 86400),
        "renewal at two thirds of 90 days"
    );

    // Past the renewal time: a new Secret, revision 2.
    let later = SystemTime::now() + Duration::from_secs(70 * 86400);
    let renew = spawn_reconcile(&store, wanted.clone(), SelfSignedIssuer::default(), later);
    server
        .expect("GET", SECRET_PATH, 200, stored_secret(&secret))
        .await;
    server
        .expect("GET", CERT_PATH, 200, certificate(Some(status.clone())))
        .await;
    let applied = server.expect("PATCH", SECRET_PATH, 200, Value::Null).await;
    assert_ne!(applied.body["data"]["tls.crt"], secret["data"]["tls.crt"]);
    server
        .expect("GET", CERT_PATH, 200, certificate(Some(status.clone())))
        .await;
    let patched = server
        .expect("PATCH", STATUS_PATH, 200, certificate(None))
        .await;
    assert_eq!(patched.body["status"]["revision"], 2);
    assert!(renew.await.unwrap().unwrap().issued);
}

#[tokio::test]
async fn drift_reissues_a_secret_whose_names_or_key_no_longer_match() {
    let (client, mut server) = client();
    let store = KubeStore::new(client);
    let first = spawn_reconcile(
        &store,
        managed(&["web.example.com"]),
        SelfSignedIssuer::default(),
        SystemTime::now(),
    );
    let (secret, _) = first_issuance(&mut server).await;
    first.await.unwrap().unwrap();

    // Names changed in the spec.
    let renamed = spawn_reconcile(
        &store,
        managed(&["web.example.com", "www.example.com"]),
        SelfSignedIssuer::default(),
        SystemTime::now(),
    );
    server
        .expect("GET", SECRET_PATH, 200, stored_secret(&secret))
        .await;
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    let applied = server.expect("PATCH", SECRET_PATH, 200, Value::Null).await;
    let chain = unb64(&applied.body["data"]["tls.crt"]);
    let leaf = pki::check_bundle(
        &chain,
        &unb64(&applied.body["data"]["tls.key"]),
        None,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(leaf.dns_names, ["web.example.com", "www.example.com"]);
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    server
        .expect("PATCH", STATUS_PATH, 200, certificate(None))
        .await;
    assert!(renamed.await.unwrap().unwrap().issued);

    // Someone replaced tls.key with another key.
    let mut tampered = stored_secret(&secret);
    let other = pki::PrivateKey::generate(pki::KeyAlgorithm::EcdsaP256).unwrap();
    tampered["data"]["tls.key"] = json!(b64(&other.to_pem(pki::KeyEncoding::Pkcs8).unwrap()));
    let mismatch = spawn_reconcile(
        &store,
        managed(&["web.example.com"]),
        SelfSignedIssuer::default(),
        SystemTime::now(),
    );
    server.expect("GET", SECRET_PATH, 200, tampered).await;
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    server.expect("PATCH", SECRET_PATH, 200, Value::Null).await;
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    server
        .expect("PATCH", STATUS_PATH, 200, certificate(None))
        .await;
    assert!(mismatch.await.unwrap().unwrap().issued);
}

#[tokio::test]
async fn an_api_error_writing_the_secret_records_nothing_and_is_reported() {
    let (client, mut server) = client();
    let store = KubeStore::new(client);
    let task = spawn_web_reconcile(&store);
    server.expect_not_found("GET", SECRET_PATH).await;
    let reason = secret_write_refused(
        &mut server,
        task,
        status(500, "InternalError", "etcd timed out"),
    )
    .await;
    assert!(reason.contains("etcd timed out"), "{reason}");
}

#[tokio::test]
async fn a_secret_of_another_type_is_reported_with_the_fix() {
    let (client, mut server) = client();
    let store = KubeStore::new(client);
    let task = spawn_web_reconcile(&store);
    // An Opaque Secret already holds the name, without a certificate.
    server
        .expect(
            "GET",
            SECRET_PATH,
            200,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": { "name": "web-tls", "namespace": "shop" },
                "type": "Opaque",
                "data": { "password": b64("hunter2") },
            }),
        )
        .await;
    let reason = secret_write_refused(
        &mut server,
        task,
        status(
            422,
            "Invalid",
            "Secret \"web-tls\" is invalid: type: Invalid value: \"kubernetes.io/tls\": field is immutable",
        ),
    )
    .await;
    assert!(
        reason.contains("type other than kubernetes.io/tls"),
        "{reason}"
    );
    assert!(reason.contains("spec.secretName"), "{reason}");
    assert!(reason.contains("field is immutable"), "{reason}");
}

#[tokio::test]
async fn a_failed_issuance_records_the_backoff_in_status() {
    struct Refusing;
    impl certweave::issuers::Issuer for Refusing {
        fn kind(&self) -> &'static str {
            "refusing"
        }
        async fn issue(
            &self,
            _: &CertificateRequest,
            _: &pki::PrivateKey,
            _: &certweave::model::RequestOrigin,
        ) -> Result<certweave::model::Bundle, IssueError> {
            Err(IssueError::Transient("ACME server unreachable".into()))
        }
    }
    let (client, mut server) = client();
    let store = KubeStore::new(client);
    let task = spawn_reconcile(
        &store,
        managed(&["web.example.com"]),
        Refusing,
        SystemTime::now(),
    );
    server.expect_not_found("GET", SECRET_PATH).await;
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    // A transient failure re-reads the state to keep an order in flight.
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    server
        .expect("GET", CERT_PATH, 200, certificate(None))
        .await;
    let patched = server
        .expect("PATCH", STATUS_PATH, 200, certificate(None))
        .await;
    let status = &patched.body["status"];
    assert_eq!(status["failedIssuanceAttempts"], 1);
    assert!(status["lastFailureTime"].is_string());
    assert!(status["nextAttemptTime"].is_string());
    assert_eq!(status["conditions"][0]["status"], "False");
    assert_eq!(status["conditions"][0]["reason"], "Failed");
    assert!(status["conditions"][0]["message"]
        .as_str()
        .unwrap()
        .contains("ACME server unreachable"));
    let step = task.await.unwrap().unwrap();
    assert!(!step.issued);
    assert!(step.error.is_some());
}

#[tokio::test]
async fn the_acme_account_key_is_created_in_its_secret_once_and_never_replaced() {
    use certweave::controller::issuers::SecretKeyStore;
    let (client, mut server) = client();
    let store = SecretKeyStore::new(client.clone(), "certweave", "le-account", None);
    let task =
        tokio::spawn(async move { load_or_create_key(&store).await.map(|(_, created)| created) });
    server
        .expect_not_found("GET", "/api/v1/namespaces/certweave/secrets/le-account")
        .await;
    let created = server
        .expect(
            "POST",
            "/api/v1/namespaces/certweave/secrets",
            201,
            Value::Null,
        )
        .await;
    assert_eq!(created.body["metadata"]["name"], "le-account");
    let pem = unb64(&created.body["data"]["tls.key"]);
    assert!(pem.contains("PRIVATE KEY"));
    assert!(task.await.unwrap().unwrap(), "a new key");

    // Another replica won the race: its key is used, not ours.
    let store = SecretKeyStore::new(client.clone(), "certweave", "le-account", None);
    let task = tokio::spawn(async move {
        load_or_create_key(&store)
            .await
            .map(|(k, created)| (k.to_pem().to_owned(), created))
    });
    server
        .expect_not_found("GET", "/api/v1/namespaces/certweave/secrets/le-account")
        .await;
    server
        .expect(
            "POST",
            "/api/v1/namespaces/certweave/secrets",
            409,
            status(
                409,
                "AlreadyExists",
                "secrets \"le-account\" already exists",
            ),
        )
        .await;
    server
        .expect(
            "GET",
            "/api/v1/namespaces/certweave/secrets/le-account",
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "le-account"}, "data": {"tls.key": b64(&pem)}}),
        )
        .await;
    let (used, created) = task.await.unwrap().unwrap();
    assert!(!created);
    assert_eq!(used.trim(), pem.trim());

    // A Secret without the key is never overwritten.
    let store = SecretKeyStore::new(client, "certweave", "le-account", None);
    let task = tokio::spawn(async move { load_or_create_key(&store).await.map(|_| ()) });
    server
        .expect(
            "GET",
            "/api/v1/namespaces/certweave/secrets/le-account",
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "le-account"}, "data": {"other": b64("x")}}),
        )
        .await;
    let error = task.await.unwrap().unwrap_err().to_string();
    assert!(error.contains("has no key \"tls.key\""), "{error}");
}

fn ingress(uid: &str, annotations: Value) -> k8s_openapi::api::networking::v1::Ingress {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "shop", "uid": uid, "annotations": annotations},
        "spec": {"rules": [{"host": "shop.example.com"}],
                 "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]}
    }))
    .unwrap()
}

fn cache_of(certificates: Vec<Certificate>) -> ScopedCache<Certificate> {
    let (reader, mut writer) = kube::runtime::reflector::store::<Certificate>();
    for c in certificates {
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(c));
    }
    reader.into()
}

fn owned_certificate(name: &str, owner_uid: Option<&str>) -> Certificate {
    let mut c = Certificate::new(
        name,
        CertificateSpec {
            secret_name: name.into(),
            ..Default::default()
        },
    );
    c.metadata.namespace = Some("shop".into());
    c.metadata.owner_references = owner_uid.map(|uid| {
        vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "networking.k8s.io/v1".into(),
                kind: "Ingress".into(),
                name: "shop".into(),
                uid: uid.into(),
                controller: Some(true),
                ..Default::default()
            },
        ]
    });
    c
}

#[tokio::test]
async fn the_ingress_shim_applies_owned_certificates_and_removes_stale_ones() {
    use certweave::controller::owned::apply_ingress;
    use certweave::webhook::MutationConfig;
    let (client, mut server) = client();
    // An earlier spec.tls entry left a Certificate behind.
    let cache = cache_of(vec![owned_certificate("old-tls", Some("ing-1"))]);
    let annotations = json!({
        "cert-manager.io/cluster-issuer": "le",
        "acme.cert-manager.io/http01-edit-in-place": "true"
    });
    let task = tokio::spawn(async move {
        apply_ingress(
            &client,
            &cache,
            &ingress("ing-1", annotations),
            &MutationConfig::default(),
        )
        .await
    });
    let applied = server
        .expect(
            "PATCH",
            "/apis/cert-manager.io/v1/namespaces/shop/certificates/shop-tls",
            200,
            Value::Null,
        )
        .await;
    assert_eq!(
        applied.param("fieldManager").as_deref(),
        Some("certweave-ingress-shim")
    );
    let body = &applied.body;
    assert_eq!(body["kind"], "Certificate");
    assert!(
        body.get("status").is_none(),
        "an apply never carries status: {body}"
    );
    assert_eq!(body["spec"]["secretName"], "shop-tls");
    assert_eq!(body["spec"]["dnsNames"], json!(["shop.example.com"]));
    assert_eq!(body["spec"]["issuerRef"]["name"], "le");
    assert_eq!(body["spec"]["issuerRef"]["kind"], "ClusterIssuer");
    let owner = &body["metadata"]["ownerReferences"][0];
    assert_eq!(owner["uid"], "ing-1");
    assert_eq!(owner["kind"], "Ingress");
    assert_eq!(owner["controller"], true);
    assert_eq!(owner["blockOwnerDeletion"], true);
    assert_eq!(
        body["metadata"]["annotations"]["acme.cert-manager.io/http01-override-ingress-name"],
        "shop",
        "edit-in-place is passed on to the Certificate"
    );
    server
        .expect(
            "DELETE",
            "/apis/cert-manager.io/v1/namespaces/shop/certificates/old-tls",
            200,
            owned_certificate("old-tls", Some("ing-1")).pipe_json(),
        )
        .await;
    task.await.unwrap();
}

#[tokio::test]
async fn the_ingress_shim_never_takes_over_a_certificate_it_does_not_own() {
    use certweave::controller::owned::apply_ingress;
    use certweave::webhook::MutationConfig;
    let (client, mut server) = client();
    let cache = cache_of(vec![owned_certificate("shop-tls", None)]);
    let annotations = json!({"cert-manager.io/cluster-issuer": "le"});
    apply_ingress(
        &client,
        &cache,
        &ingress("ing-2", annotations),
        &MutationConfig::default(),
    )
    .await;
    drop(client);
    assert_no_more_requests(&mut server).await;
}

async fn assert_no_more_requests(server: &mut ApiServer) {
    let extra = server.try_next().await;
    assert!(extra.is_none(), "unexpected request: {extra:?}");
}

trait PipeJson {
    fn pipe_json(&self) -> Value;
}

impl<T: serde::Serialize> PipeJson for T {
    fn pipe_json(&self) -> Value {
        serde_json::to_value(self).unwrap()
    }
}

#[tokio::test]
async fn a_pod_gets_its_shared_certificate_created_once() {
    use certweave::controller::owned::apply_pod;
    use k8s_openapi::api::core::v1::Pod;
    use kube::core::PartialObjectMeta;
    let pod: PartialObjectMeta<Pod> = serde_json::from_value(json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": "api-1", "namespace": "shop",
            "labels": {"certweave.io/injected": "true", "app": "api"},
            "annotations": {"certweave.io/cluster-issuer": "le"}}
    }))
    .unwrap();
    let (client, mut server) = client();
    let empty = cache_of(vec![]);
    let task = {
        let pod = pod.clone();
        tokio::spawn(async move { apply_pod(&client, &empty, &pod).await })
    };
    let applied = server
        .expect(
            "PATCH",
            "/apis/cert-manager.io/v1/namespaces/shop/certificates/api-tls",
            200,
            Value::Null,
        )
        .await;
    assert_eq!(
        applied.param("fieldManager").as_deref(),
        Some("certweave-pod-certificates")
    );
    assert_eq!(
        applied.body["metadata"]["labels"]["certweave.io/pod-certificate"],
        "true"
    );
    assert_eq!(
        applied.body["spec"]["dnsNames"],
        json!(["api.shop.svc", "api.shop.svc.cluster.local"])
    );
    assert!(
        applied.body["metadata"].get("ownerReferences").is_none(),
        "shared, not owned by one Pod"
    );
    task.await.unwrap();

    // A second Pod of the same app finds it in place: no request.
    let existing: Certificate = serde_json::from_value(applied.body).unwrap();
    let (client, mut server) = kube_mock::client();
    let cache = cache_of(vec![existing]);
    apply_pod(&client, &cache, &pod).await;
    drop(client);
    assert_no_more_requests(&mut server).await;
}

#[tokio::test]
async fn challenge_routes_are_created_then_removed() {
    use certweave::controller::challenges::{object_name, KubeRoutes};
    use certweave::issuers::acme::{Http01Route, Http01Routes};
    use certweave::model::RequestOrigin;
    let (client, mut server) = client();
    let routes = std::sync::Arc::new(KubeRoutes::new(client, 8089, Some("10.0.0.7".into())));
    let route = Http01Route {
        ingress_class_name: Some("nginx".into()),
        ..Default::default()
    };
    let context = RequestOrigin {
        namespace: "shop".into(),
        ..Default::default()
    };
    let name = object_name("web.example.com", "tok");
    let task = {
        let (routes, route, context) = (routes.clone(), route.clone(), context.clone());
        tokio::spawn(async move {
            routes
                .open("web.example.com", "tok", &route, &context)
                .await
        })
    };
    let service = server
        .expect(
            "PATCH",
            &format!("/api/v1/namespaces/shop/services/{name}"),
            200,
            Value::Null,
        )
        .await;
    assert!(service.body["spec"].get("selector").is_none());
    let slice = server
        .expect(
            "PATCH",
            &format!("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices/{name}"),
            200,
            Value::Null,
        )
        .await;
    assert_eq!(slice.body["endpoints"][0]["addresses"], json!(["10.0.0.7"]));
    let ingress = server
        .expect(
            "PATCH",
            &format!("/apis/networking.k8s.io/v1/namespaces/shop/ingresses/{name}"),
            200,
            Value::Null,
        )
        .await;
    assert_eq!(
        ingress.param("fieldManager").as_deref(),
        Some("certweave-acme-http01")
    );
    assert_eq!(ingress.body["spec"]["ingressClassName"], "nginx");
    assert_eq!(
        ingress.body["spec"]["rules"][0]["http"]["paths"][0]["path"],
        "/.well-known/acme-challenge/tok"
    );
    task.await.unwrap().unwrap();

    let task = tokio::spawn(async move {
        routes
            .close("web.example.com", "tok", &route, &context)
            .await
    });
    let gone = status(200, "", "");
    server
        .expect(
            "DELETE",
            &format!("/apis/networking.k8s.io/v1/namespaces/shop/ingresses/{name}"),
            200,
            gone.clone(),
        )
        .await;
    // Already gone: not an error.
    server
        .expect_not_found(
            "DELETE",
            &format!("/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices/{name}"),
        )
        .await;
    server
        .expect(
            "DELETE",
            &format!("/api/v1/namespaces/shop/services/{name}"),
            200,
            gone,
        )
        .await;
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_webhook_ca_bundle_is_patched_only_where_it_differs() {
    use certweave::controller::webhook_cert::sync_ca_bundle;
    let (client, mut server) = client();
    let task = tokio::spawn(async move { sync_ca_bundle(&client, "certweave", "CA PEM").await });
    server
        .expect(
            "GET",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/certweave",
            200,
            json!({
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": "certweave"},
                "webhooks": [
                    {"name": "ingress.certweave.io", "clientConfig": {"caBundle": b64("CA PEM")},
                     "sideEffects": "None", "admissionReviewVersions": ["v1"]},
                    {"name": "pods.certweave.io", "clientConfig": {"service": {"name": "certweave-webhook", "namespace": "certweave"}},
                     "sideEffects": "None", "admissionReviewVersions": ["v1"]}
                ]
            }),
        )
        .await;
    let patch = server
        .expect(
            "PATCH",
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/certweave",
            200,
            json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "certweave"}}),
        )
        .await;
    assert_eq!(
        patch.content_type.as_deref(),
        Some("application/strategic-merge-patch+json")
    );
    assert_eq!(
        patch.body,
        json!({"webhooks": [{"name": "pods.certweave.io", "clientConfig": {"caBundle": b64("CA PEM")}}]})
    );
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn replicas_racing_to_create_the_serving_secret_use_the_winner() {
    use certweave::controller::webhook_cert::{ensure, plan, service_dns_names};
    use certweave::controller::ControllerOptions;
    let options = ControllerOptions {
        kubeconfig: None,
        webhook_addr: "127.0.0.1:0".parse().unwrap(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        solver_addr: "127.0.0.1:0".parse().unwrap(),
        tls_files: None,
        mutation: Default::default(),
        leader_elect: true,
        namespace: "certweave".into(),
        identity: "replica-b".into(),
        pod_ip: None,
        webhook_config_name: "certweave".into(),
        webhook_service_name: "certweave-webhook".into(),
        webhook_secret_name: "certweave-webhook-tls".into(),
        concurrency: 4,
        auto_approve: true,
        scope: Default::default(),
        dns_checks: Default::default(),
        ambient_credentials: Default::default(),
    };
    let winner = plan(
        None,
        &service_dns_names("certweave-webhook", "certweave"),
        SystemTime::now(),
    )
    .unwrap()
    .unwrap();
    let (client, mut server) = client();
    let task = tokio::spawn(async move { ensure(&client, &options).await });
    let path = "/api/v1/namespaces/certweave/secrets/certweave-webhook-tls";
    server.expect_not_found("GET", path).await;
    let ours = server
        .expect(
            "POST",
            "/api/v1/namespaces/certweave/secrets",
            409,
            status(409, "AlreadyExists", "exists"),
        )
        .await;
    assert_eq!(ours.body["type"], "kubernetes.io/tls");
    let data = json!({
        "ca.crt": b64(&winner.ca_crt), "ca.key": b64(&winner.ca_key),
        "tls.crt": b64(&winner.tls_crt), "tls.key": b64(&winner.tls_key)
    });
    server
        .expect("GET", path, 200, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "certweave-webhook-tls", "resourceVersion": "3"}, "data": data}))
        .await;
    let used = task.await.unwrap().unwrap();
    assert_eq!(
        used, winner,
        "the other replica's certificate is served, not replaced"
    );
}

#[tokio::test]
async fn a_namespace_scoped_store_lists_each_namespace_and_nothing_else() {
    use certweave::controller::scope::WatchScope;
    use certweave::store::Store;
    let (client, mut server) = client();
    let scope = WatchScope::namespaces(&["team-b", "team-a"], "certweave").unwrap();
    let store = KubeStore::new(client).within(scope);
    let task = tokio::spawn(async move { store.list_states().await });
    let listed = |namespace: &str| {
        json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateList", "metadata": {},
               "items": [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                          "metadata": {"name": "web", "namespace": namespace},
                          "spec": {"secretName": "web-tls", "issuerRef": {"name": "ca"}},
                          "status": {"revision": 2}}]})
    };
    // Sorted, the controller's own namespace included; never the
    // cluster-wide path /apis/cert-manager.io/v1/certificates.
    for namespace in ["certweave", "team-a", "team-b"] {
        server
            .expect(
                "GET",
                &format!("/apis/cert-manager.io/v1/namespaces/{namespace}/certificates"),
                200,
                listed(namespace),
            )
            .await;
    }
    let states = task.await.unwrap().unwrap();
    let keys: Vec<String> = states.iter().map(|(key, _)| key.to_string()).collect();
    assert_eq!(keys, ["certweave/web", "team-a/web", "team-b/web"]);
}
