//! Processes for the end-to-end test: etcd and kube-apiserver from
//! `KUBEBUILDER_ASSETS` (as controller-runtime's envtest runs them), and
//! `certweave controller` itself, each on free loopback ports in one
//! temporary folder, killed on drop.
//!
//! Everything they need is made here: the API server's serving certificate
//! and service-account signing key (rcgen), a static admin token, a
//! kubeconfig, the webhook's serving certificate for 127.0.0.1. Logs go to
//! files in the folder; a failing test keeps the folder and names it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::pebble::free_port;

/// The admin's bearer token (the API server's `--token-auth-file`, group
/// `system:masters`). The server listens on loopback only, for one test.
const ADMIN_TOKEN: &str = "certweave-e2e-admin";

/// The envtest binaries, found through `KUBEBUILDER_ASSETS`.
pub struct Assets {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
}

impl Assets {
    /// The binaries, or why the end-to-end test cannot run.
    pub fn from_env() -> Result<Self, String> {
        let dir = std::env::var_os("KUBEBUILDER_ASSETS")
            .filter(|d| !d.is_empty())
            .ok_or("KUBEBUILDER_ASSETS is not set")?;
        let dir = PathBuf::from(dir);
        let find = |name: &str| {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!(
                    "KUBEBUILDER_ASSETS={} has no {name}",
                    dir.display()
                ))
            }
        };
        Ok(Self {
            etcd: find("etcd")?,
            kube_apiserver: find("kube-apiserver")?,
        })
    }
}

impl Assets {
    /// `kube-apiserver --version`, e.g. "Kubernetes v1.30.14".
    pub fn kube_apiserver_version(&self) -> String {
        version_line(&self.kube_apiserver, "--version")
    }

    /// The first line of `etcd --version`.
    pub fn etcd_version(&self) -> String {
        version_line(&self.etcd, "--version")
    }
}

fn version_line(binary: &Path, flag: &str) -> String {
    match Command::new(binary).arg(flag).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        Err(e) => format!("{} (cannot run: {e})", binary.display()),
    }
}

/// A certificate authority made for the test, and leaf certificates from it.
pub struct TestCa {
    pub cert_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(common_name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A serving certificate for `names` (IP addresses become IP SANs):
    /// `(certificate PEM, key PEM)`.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = rcgen::CertificateParams::new(names).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The CA certificate as Kubernetes wants it in `caBundle` fields.
    pub fn bundle_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.cert_pem)
    }
}

/// A child process with its log file, killed on drop.
pub struct Process {
    name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, command: &mut Command, dir: &Path) -> Self {
        // A second process of the same name keeps the first one's log.
        let log = (1..)
            .map(|n| match n {
                1 => dir.join(format!("{name}.log")),
                n => dir.join(format!("{name}-{n}.log")),
            })
            .find(|path| !path.exists())
            .unwrap();
        let file = fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Self { name, child, log }
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "--- last {} lines of {} ({}) ---\n{}",
            all.len() - start,
            self.name,
            self.log.display(),
            all[start..].join("\n")
        )
    }

    /// Fails with the log when the process has exited.
    fn check_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited with {status}\n{}", self.name, self.log_tail(40));
        }
    }

    /// Polls `ready` every 200 ms until it holds, failing after `timeout`
    /// or as soon as the process exits.
    async fn wait_until<F, Fut>(&mut self, what: &str, timeout: Duration, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running();
            if ready().await {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{}: {what} not within {timeout:?}\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Process {
    /// Kills the process and waits for it to exit.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The test's temporary folder, kept (and named on stderr) when the test
/// fails, so its logs can be read.
struct Workdir(Option<tempfile::TempDir>);

impl Workdir {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("certweave-e2e-")
            .tempdir()
            .unwrap();
        Self(Some(dir))
    }

    fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                let kept = dir.keep();
                let _ = writeln!(
                    std::io::stderr(),
                    "e2e: kept {} (logs, kubeconfig) for inspection",
                    kept.display()
                );
            }
        }
    }
}

/// etcd and kube-apiserver on loopback, and an admin kubeconfig for them.
pub struct Cluster {
    // Field order is drop order: the API server stops before etcd, and
    // both before the folder goes.
    apiserver: Process,
    etcd: Process,
    pub server_url: String,
    /// The API server's CA, base64.
    ca_bundle: String,
    pub kubeconfig: PathBuf,
    dir: Workdir,
}

fn kubeconfig(server_url: &str, ca_bundle: &str, user: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: e2e\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {ca_bundle}\n\
         users:\n- name: {user}\n  user:\n    token: {token}\n\
         contexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: {user}\n\
         current-context: e2e\n"
    )
}

impl Cluster {
    pub async fn start(assets: &Assets) -> Self {
        let dir = Workdir::new();
        let path = dir.path().to_owned();

        let etcd_port = free_port();
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let mut etcd = Process::spawn(
            "etcd",
            Command::new(&assets.etcd)
                .arg("--name=e2e")
                .arg(format!("--data-dir={}", path.join("etcd").display()))
                .arg(format!("--listen-client-urls={etcd_url}"))
                .arg(format!("--advertise-client-urls={etcd_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=e2e={peer_url}"))
                .arg("--unsafe-no-fsync=true"),
            &path,
        );
        let health = format!("{etcd_url}/health");
        etcd.wait_until("healthy", Duration::from_secs(30), || async {
            match reqwest::get(&health).await {
                Ok(response) => response.status().is_success(),
                Err(_) => false,
            }
        })
        .await;

        // The API server's serving certificate, service-account key and
        // admin token.
        let ca = TestCa::new("certweave e2e API server CA");
        let (cert, key) = ca.leaf(&["127.0.0.1", "localhost"]);
        let write = |name: &str, contents: &str| {
            let file = path.join(name);
            fs::write(&file, contents).unwrap();
            file
        };
        let cert_file = write("apiserver.crt", &cert);
        let key_file = write("apiserver.key", &key);
        let sa_key_file = write("service-account.key", &service_account_key());
        let tokens_file = write(
            "tokens.csv",
            &format!("{ADMIN_TOKEN},admin,admin,system:masters\n"),
        );

        // Older API servers do not create their --cert-dir.
        let cert_dir = path.join("apiserver-certs");
        fs::create_dir_all(&cert_dir).unwrap();
        let port = free_port();
        let server_url = format!("https://127.0.0.1:{port}");
        let mut apiserver = Process::spawn(
            "kube-apiserver",
            Command::new(&assets.kube_apiserver)
                .arg(format!("--etcd-servers={etcd_url}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                // The `kubernetes` Service's endpoints would be this
                // loopback address, which current API servers refuse.
                .arg("--endpoint-reconciler-type=none")
                .arg(format!("--secure-port={port}"))
                .arg(format!("--tls-cert-file={}", cert_file.display()))
                .arg(format!("--tls-private-key-file={}", key_file.display()))
                .arg(format!("--token-auth-file={}", tokens_file.display()))
                .arg("--authorization-mode=RBAC")
                .arg(format!("--service-account-issuer={server_url}"))
                .arg(format!(
                    "--service-account-key-file={}",
                    sa_key_file.display()
                ))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    sa_key_file.display()
                ))
                .arg("--service-cluster-ip-range=10.0.0.0/24")
                .arg("--allow-privileged=true")
                // No controller-manager creates the `default` ServiceAccount.
                .arg("--disable-admission-plugins=ServiceAccount")
                .arg(format!("--cert-dir={}", cert_dir.display())),
            &path,
        );
        let client = https_client(&ca.cert_pem);
        let readyz = format!("{server_url}/readyz");
        apiserver
            .wait_until("ready (/readyz)", Duration::from_secs(90), || async {
                match client.get(&readyz).bearer_auth(ADMIN_TOKEN).send().await {
                    Ok(response) => response.status().is_success(),
                    Err(_) => false,
                }
            })
            .await;

        let ca_bundle = ca.bundle_base64();
        let kubeconfig = write(
            "kubeconfig",
            &kubeconfig(&server_url, &ca_bundle, "admin", ADMIN_TOKEN),
        );
        Self {
            apiserver,
            etcd,
            server_url,
            ca_bundle,
            kubeconfig,
            dir,
        }
    }

    /// A kubeconfig in the test's folder that authenticates with `token`
    /// (e.g. a ServiceAccount's), named `kubeconfig-<user>`.
    pub fn kubeconfig_for(&self, user: &str, token: &str) -> PathBuf {
        let file = self.dir().join(format!("kubeconfig-{user}"));
        fs::write(
            &file,
            kubeconfig(&self.server_url, &self.ca_bundle, user, token),
        )
        .unwrap();
        file
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A kube client for the admin.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// The API server's and etcd's log tails.
    pub fn log_tails(&self) -> String {
        format!(
            "{}\n{}",
            self.apiserver.log_tail(20),
            self.etcd.log_tail(10)
        )
    }
}

/// `certweave controller`, the binary under test, against the cluster.
pub struct Controller {
    process: Process,
    pub webhook_url: String,
    /// The CA of the webhook's serving certificate, base64, for `caBundle`.
    pub webhook_ca_bundle: String,
    pub metrics_url: String,
}

/// Where the controller's webhook serving certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// `--tls-cert-file`/`--tls-key-file` for 127.0.0.1 from a test CA,
    /// so the API server can call the webhook by URL.
    Files,
    /// None given: the controller keeps its own CA and serving
    /// certificate in a Secret and patches the CA into the chart's
    /// MutatingWebhookConfiguration (names for the in-cluster Service,
    /// so the API server cannot call it by URL here).
    SelfManaged,
}

/// The controller's own namespace (the Lease, ClusterIssuer Secrets).
pub const CONTROLLER_NAMESPACE: &str = "certweave";

impl Controller {
    /// Starts the controller with the credentials of `kubeconfig` and
    /// waits for `/readyz` (caches synced). The namespace
    /// [`CONTROLLER_NAMESPACE`] and the CRDs must exist.
    pub async fn start(cluster: &Cluster, kubeconfig: &Path, solver_port: u16) -> Self {
        Self::start_serving(cluster, kubeconfig, solver_port, Serving::Files).await
    }

    /// Starts the controller with the given webhook serving certificate.
    pub async fn start_serving(
        cluster: &Cluster,
        kubeconfig: &Path,
        solver_port: u16,
        serving: Serving,
    ) -> Self {
        Self::start_in(
            cluster,
            kubeconfig,
            solver_port,
            serving,
            CONTROLLER_NAMESPACE,
            &[],
            &[],
        )
        .await
    }

    /// Starts the controller in `namespace` (`--namespace`) with `extra`
    /// arguments and `env` added to its environment (e.g.
    /// `AWS_ENDPOINT_URL`).
    pub async fn start_in(
        cluster: &Cluster,
        kubeconfig: &Path,
        solver_port: u16,
        serving: Serving,
        namespace: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = cluster.dir();
        let ca = TestCa::new("certweave e2e webhook CA");
        let mut serving_args = Vec::new();
        if serving == Serving::Files {
            let (cert, key) = ca.leaf(&["127.0.0.1"]);
            let cert_file = dir.join("webhook.crt");
            let key_file = dir.join("webhook.key");
            fs::write(&cert_file, cert).unwrap();
            fs::write(&key_file, key).unwrap();
            serving_args.extend([
                "--tls-cert-file".into(),
                cert_file.into_os_string(),
                "--tls-key-file".into(),
                key_file.into_os_string(),
            ]);
        }
        let webhook_addr = format!("127.0.0.1:{}", free_port());
        let metrics_addr = format!("127.0.0.1:{}", free_port());
        let mut process = Process::spawn(
            "certweave-controller",
            Command::new(env!("CARGO_BIN_EXE_certweave"))
                .arg("controller")
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["--namespace", namespace])
                .args(extra)
                .args(["--webhook-addr", &webhook_addr])
                .args(["--metrics-addr", &metrics_addr])
                .args(["--solver-addr", &format!("127.0.0.1:{solver_port}")])
                .args(&serving_args)
                // Loopback: no EndpointSlice may hold it, so challenges go
                // without endpoints; Pebble reaches --solver-addr directly.
                .args(["--identity", "certweave-e2e", "--pod-ip", "127.0.0.1"])
                .arg("--leader-elect")
                .envs(env.iter().copied())
                .env("RUST_LOG", "certweave=debug,info")
                .env_remove("KUBECONFIG")
                .env_remove("POD_NAMESPACE"),
            dir,
        );
        let metrics_url = format!("http://{metrics_addr}");
        let readyz = format!("{metrics_url}/readyz");
        process
            .wait_until(
                "ready (/readyz: caches synced)",
                Duration::from_secs(60),
                || async {
                    match reqwest::get(&readyz).await {
                        Ok(response) => response.status().is_success(),
                        Err(_) => false,
                    }
                },
            )
            .await;
        Self {
            process,
            webhook_url: format!("https://{webhook_addr}/mutate"),
            webhook_ca_bundle: ca.bundle_base64(),
            metrics_url,
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// Stops the controller (its ports and, once it expires, its Lease
    /// are free again).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.process.log).unwrap_or_default()
    }
}

/// The service-account signing key, PKCS#1 RSA: `--service-account-key-file`
/// reads public keys from RSA or SEC1 EC private keys, not from the PKCS#8
/// ECDSA keys rcgen writes ("data does not contain any valid RSA or ECDSA
/// public keys").
fn service_account_key() -> String {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    key.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .unwrap()
        .to_string()
}

/// An HTTPS client trusting only `ca_pem`.
fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}
