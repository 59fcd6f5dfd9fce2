//! Shared fixtures for the integration tests: a throwaway PKI, a running
//! webhook server on an ephemeral port, HTTP/1.1 and HTTP/2 clients, and
//! AdmissionReview bodies shaped like the API server's.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use certweave::webhook::server::{ServeOptions, WebhookServer};
use certweave::webhook::MutationConfig;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// A CA that signs serving certificates for `localhost`.
pub struct TestPki {
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
}

impl TestPki {
    pub fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Self {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A fresh leaf for `localhost` and 127.0.0.1: (cert PEM, key PEM, cert DER).
    pub fn leaf(&self) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.is_ca = IsCa::NoCa;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    /// Writes a fresh leaf to `dir/tls.crt` and `dir/tls.key`; returns its DER.
    pub fn write_leaf(&self, dir: &Path) -> Vec<u8> {
        let (cert, key, der) = self.leaf();
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        der
    }
}

/// A webhook server running in the background until dropped.
pub struct RunningWebhook {
    pub addr: SocketAddr,
    pub pki: TestPki,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningWebhook {
    pub async fn start(mutation: MutationConfig) -> Self {
        Self::start_with_reload(mutation, Duration::from_millis(100)).await
    }

    pub async fn start_with_reload(mutation: MutationConfig, reload_interval: Duration) -> Self {
        Self::start_with(
            mutation,
            reload_interval,
            certweave::webhook::server::REVIEW_DEADLINE,
        )
        .await
    }

    /// Starts a webhook that gives each review `review_deadline`.
    pub async fn start_with(
        mutation: MutationConfig,
        reload_interval: Duration,
        review_deadline: Duration,
    ) -> Self {
        let pki = TestPki::new();
        let dir = tempfile::tempdir().unwrap();
        pki.write_leaf(dir.path());
        let server = WebhookServer::bind(ServeOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            cert_file: dir.path().join("tls.crt"),
            key_file: dir.path().join("tls.key"),
            mutation,
            reload_interval,
            client_timeout: Duration::from_secs(2),
            review_deadline,
        })
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            pki,
            dir,
            stop: Some(stop),
            task,
        }
    }

    pub fn cert_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.dir.path().join("tls.crt"),
            self.dir.path().join("tls.key"),
        )
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A client that speaks only HTTP/1.1 (ALPN http/1.1).
    pub fn http1(&self) -> reqwest::Client {
        self.client_builder().http1_only().build().unwrap()
    }

    /// A client that speaks only HTTP/2 (ALPN h2).
    pub fn http2(&self) -> reqwest::Client {
        self.client_builder()
            .http2_prior_knowledge()
            .build()
            .unwrap()
    }

    fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.pki.ca_pem.as_bytes()).unwrap(),
            )
            .resolve("localhost", self.addr)
            .timeout(Duration::from_secs(20))
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningWebhook {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// An AdmissionReview as the API server sends it for `object`.
pub fn review_for(object: &Value, operation: &str, namespace: &str) -> Value {
    let kind = object["kind"].as_str().unwrap_or("Pod");
    let (group, version, resource) = match kind {
        "Ingress" => ("networking.k8s.io", "v1", "ingresses"),
        "Pod" => ("", "v1", "pods"),
        other => (
            "example.com",
            "v1",
            &*Box::leak(format!("{}s", other.to_lowercase()).into_boxed_str()),
        ),
    };
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let (object_field, old_object) = match operation {
        "DELETE" => (Value::Null, object.clone()),
        "UPDATE" => (object.clone(), object.clone()),
        _ => (object.clone(), Value::Null),
    };
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "requestKind": {"group": group, "version": version, "kind": kind},
            "requestResource": {"group": group, "version": version, "resource": resource},
            "name": name,
            "namespace": namespace,
            "operation": operation,
            "userInfo": {
                "username": "admin",
                "uid": "014fbff9a07c",
                "groups": ["system:authenticated", "my-admin-group"],
                "extra": {"some-key": ["some-value1", "some-value2"]}
            },
            "object": object_field,
            "oldObject": old_object,
            "dryRun": false,
            "options": {
                "apiVersion": "meta.k8s.io/v1",
                "kind": match operation { "UPDATE" => "UpdateOptions", "DELETE" => "DeleteOptions", _ => "CreateOptions" }
            }
        }
    })
}

/// The decoded `response` of an AdmissionReview answer.
#[derive(Debug)]
pub struct Answer {
    pub uid: String,
    pub allowed: bool,
    pub code: Option<u64>,
    pub message: String,
    pub patch: Option<json_patch::Patch>,
    pub warnings: Vec<String>,
    pub raw: Value,
}

impl Answer {
    pub fn parse(body: &[u8]) -> Self {
        let raw: Value = serde_json::from_slice(body).expect("the answer is JSON");
        assert_eq!(raw["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(raw["kind"], "AdmissionReview");
        let r = &raw["response"];
        let patch = r["patch"].as_str().map(|b64| {
            assert_eq!(r["patchType"], "JSONPatch");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        });
        Self {
            uid: r["uid"].as_str().unwrap().to_owned(),
            allowed: r["allowed"].as_bool().unwrap(),
            code: r["status"]["code"].as_u64(),
            message: r["status"]["message"].as_str().unwrap_or("").to_owned(),
            patch,
            warnings: r["warnings"]
                .as_array()
                .map(|w| w.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default(),
            raw: raw.clone(),
        }
    }

    /// Applies the patch (if any) to `object`, as the API server would.
    pub fn apply(&self, object: &Value) -> Value {
        match &self.patch {
            Some(p) => certweave::webhook::patch::apply(object, p).expect("the patch applies"),
            None => object.clone(),
        }
    }
}
