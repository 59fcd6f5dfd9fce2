//! The real `certweave controller` binary against an in-memory API server
//! (benches/support/fake_apiserver.py): a selfSigned ClusterIssuer and a
//! Certificate become a kubernetes.io/tls Secret and Ready statuses, the
//! Lease names a holder, the metrics port answers, a deleted Secret is
//! issued again, an annotated Ingress gets an owned Certificate and Secret,
//! and SIGTERM ends the process cleanly.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(15);

/// Kills the child on drop, so a failing assertion leaves nothing running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_fake_apiserver() -> Option<(Guard, String)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/support/fake_apiserver.py");
    let child = match Command::new("python3")
        .arg(script)
        .args(["--port", "0"])
        // Slow initial lists, as in a large cluster: the leader then starts
        // before the caches have synced, and readiness must still follow.
        .args(["--list-delay", "1.5"])
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            eprintln!("skipping controller_fake_api: cannot run python3 ({e})");
            return None;
        }
    };
    let mut guard = Guard(child);
    let mut line = String::new();
    BufReader::new(guard.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("fake API server printed {line:?}, not a port"));
    Some((guard, format!("http://127.0.0.1:{port}")))
}

struct Api {
    http: reqwest::Client,
    base: String,
    log: std::path::PathBuf,
}

impl Api {
    async fn get(&self, path: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        if response.status() == 404 {
            return None;
        }
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        Some(response.json().await.unwrap())
    }

    async fn create(&self, collection: &str, object: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{collection}", self.base))
            .json(&object)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "POST {collection}");
        response.json().await.unwrap()
    }

    async fn delete(&self, path: &str) {
        let response = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "DELETE {path}: {}",
            response.status()
        );
    }

    /// Polls `path` until `check` accepts the object; on timeout fails with
    /// the last object seen and the controller's log.
    async fn wait_for(&self, what: &str, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let object = self.get(path).await;
            if let Some(object) = object.as_ref().filter(|o| check(o)) {
                return object.clone();
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("timed out waiting for {what}; last {path}: {object:#?}\ncontroller log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn ready(object: &Value) -> bool {
    object["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn unb64(value: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_str().expect("base64 string"))
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// The DNS names of a kubernetes.io/tls Secret's certificate, after
/// checking that it parses, is current and matches its key.
fn tls_secret_names(secret: &Value) -> Vec<String> {
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let crt = unb64(&secret["data"]["tls.crt"]);
    let key = unb64(&secret["data"]["tls.key"]);
    certweave::pki::check_bundle(&crt, &key, None, SystemTime::now())
        .expect("a usable certificate and key")
        .dns_names
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_issues_against_an_api_server() {
    let Some((_apiserver, base)) = start_fake_apiserver() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n\
             clusters:\n- name: fake\n  cluster:\n    server: {base}\n\
             users:\n- name: fake\n  user:\n    token: fake-token\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n"
        ),
    )
    .unwrap();
    let api = Api {
        http: reqwest::Client::new(),
        base,
        log: dir.path().join("controller.log"),
    };

    api.create(
        "/apis/cert-manager.io/v1/clusterissuers",
        json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
               "metadata": {"name": "selfsigned"}, "spec": {"selfSigned": {}}}),
    )
    .await;
    api.create(
        "/apis/cert-manager.io/v1/namespaces/shop/certificates",
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"secretName": "web-tls", "dnsNames": ["web.example.com"],
                        "issuerRef": {"name": "selfsigned", "kind": "ClusterIssuer"}}}),
    )
    .await;

    let metrics_port = free_port();
    let log = std::fs::File::create(&api.log).unwrap();
    let mut controller = Guard(
        Command::new(env!("CARGO_BIN_EXE_certweave"))
            .arg("controller")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--namespace", "certweave", "--identity", "replica-0"])
            .args([
                "--webhook-addr",
                "127.0.0.1:0",
                "--solver-addr",
                "127.0.0.1:0",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics_port}")])
            .arg("--leader-elect")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Issuance: the Secret, then the statuses.
    let secret = api
        .wait_for(
            "the Secret shop/web-tls",
            "/api/v1/namespaces/shop/secrets/web-tls",
            |s| s["data"]["tls.crt"].is_string(),
        )
        .await;
    assert_eq!(tls_secret_names(&secret), ["web.example.com"]);
    let certificate = api
        .wait_for(
            "Certificate shop/web Ready with revision 1",
            "/apis/cert-manager.io/v1/namespaces/shop/certificates/web",
            |c| ready(c) && c["status"]["revision"] == 1,
        )
        .await;
    assert!(
        certificate["status"]["notAfter"].is_string(),
        "{certificate:#}"
    );
    api.wait_for(
        "ClusterIssuer selfsigned Ready",
        "/apis/cert-manager.io/v1/clusterissuers/selfsigned",
        ready,
    )
    .await;
    api.wait_for(
        "the Lease certweave/certweave-controller held",
        "/apis/coordination.k8s.io/v1/namespaces/certweave/leases/certweave-controller",
        |l| l["spec"]["holderIdentity"] == "replica-0",
    )
    .await;

    // The metrics port.
    let metrics = format!("http://127.0.0.1:{metrics_port}");
    let readyz = api
        .http
        .get(format!("{metrics}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);
    let exposition = api
        .http
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        exposition.contains("certmanager_certificate_ready_status"),
        "{exposition}"
    );

    // A deleted Secret is issued again.
    let first_uid = secret["metadata"]["uid"].clone();
    api.delete("/api/v1/namespaces/shop/secrets/web-tls").await;
    let reissued = api
        .wait_for(
            "the Secret shop/web-tls again",
            "/api/v1/namespaces/shop/secrets/web-tls",
            |s| s["metadata"]["uid"] != first_uid && s["data"]["tls.crt"].is_string(),
        )
        .await;
    assert_eq!(tls_secret_names(&reissued), ["web.example.com"]);

    // The Ingress shim.
    let ingress = api
        .create(
            "/apis/networking.k8s.io/v1/namespaces/shop/ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": "shop", "namespace": "shop",
                                "annotations": {"cert-manager.io/cluster-issuer": "selfsigned"}},
                   "spec": {"tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
                            "rules": [{"host": "shop.example.com"}]}}),
        )
        .await;
    let owned = api
        .wait_for(
            "Certificate shop/shop-tls from the Ingress",
            "/apis/cert-manager.io/v1/namespaces/shop/certificates/shop-tls",
            |_| true,
        )
        .await;
    let owners = owned["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|o| o["kind"] == "Ingress" && o["uid"] == ingress["metadata"]["uid"]),
        "{owned:#}"
    );
    let secret = api
        .wait_for(
            "the Secret shop/shop-tls",
            "/api/v1/namespaces/shop/secrets/shop-tls",
            |s| s["data"]["tls.crt"].is_string(),
        )
        .await;
    assert_eq!(tls_secret_names(&secret), ["shop.example.com"]);

    let status = terminate(&mut controller.0);
    assert!(
        status.success(),
        "exit {status} after SIGTERM; log:\n{}",
        std::fs::read_to_string(&api.log).unwrap_or_default()
    );
}
