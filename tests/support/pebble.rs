//! A real Pebble (Let's Encrypt's ACME test server) for issuance tests: one
//! private instance per test, with its own pebble-challtestsrv as DNS, on
//! free loopback ports, killed on drop.
//!
//! - Pebble's TLS certificate is made here (rcgen) and handed to the client
//!   as its `caBundle`, as a private ACME server would be trusted.
//! - `PEBBLE_VA_NOSLEEP=1` removes Pebble's random 0-15 s validation delay;
//!   its default 5% bad-nonce rejection stays on, so every test exercises
//!   the client's nonce retries.
//! - pebble-challtestsrv answers every A query with 127.0.0.1 (and no
//!   AAAA), so any name's HTTP-01 validation reaches the solver on
//!   `http01_port`, Pebble's `httpPort`. A name can be pointed elsewhere
//!   with [`Pebble::add_a`] to make its validation fail.
//! - Or Pebble resolves through another server (BIND9 for DNS-01 tests).
//!
//! `pebble` and `pebble-challtestsrv` (2.10, with ARI and profiles) are
//! built from the Go module by `e2e/assets.sh`, which `.ci/test.sh` runs.
//! When they are missing the harness fails with a message saying so: a
//! green run always means a real ACME server issued the certificates.

#![allow(dead_code)]

use std::future::Future;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

/// What the Pebble of a test looks like.
#[derive(Debug, Clone)]
pub struct PebbleOptions {
    /// The port Pebble sends HTTP-01 validations to.
    pub http01_port: u16,
    /// Resolve names through this server instead of a private
    /// pebble-challtestsrv (e.g. BIND9 for DNS-01).
    pub dns_server: Option<SocketAddr>,
    /// Require external account binding with this key ID and base64url key.
    pub eab: Option<(String, String)>,
    /// `PEBBLE_ALTERNATE_ROOTS`: how many alternate chains to offer.
    pub alternate_roots: u32,
    /// `PEBBLE_WFE_NONCEREJECT`: the percentage of good nonces Pebble
    /// rejects with `badNonce` (Pebble's own default, 5, when unset).
    pub nonce_reject_percent: Option<u8>,
}

impl PebbleOptions {
    pub fn http01(port: u16) -> Self {
        Self {
            http01_port: port,
            dns_server: None,
            eab: None,
            alternate_roots: 0,
            nonce_reject_percent: None,
        }
    }
}

/// A running Pebble (and its challtestsrv, unless DNS is elsewhere).
pub struct Pebble {
    dir: tempfile::TempDir,
    children: Vec<(String, Child)>,
    pub directory_url: String,
    /// `https://127.0.0.1:PORT`: `/roots/0`, `/intermediates/0`, …
    pub management_url: String,
    /// The CA of Pebble's TLS certificate (PEM) and where it is on disk.
    pub tls_ca_pem: String,
    pub tls_ca_file: PathBuf,
    pub http01_port: u16,
    /// The DNS server Pebble resolves through (its challtestsrv's, unless
    /// [`PebbleOptions::dns_server`] named another).
    pub dns_server: SocketAddr,
    challtestsrv_management: Option<String>,
}

/// A free loopback TCP port (closed again, so another process may still
/// take it before its user binds it; rare in practice). Never the same
/// port twice in one test process: the kernel may hand a just-closed port
/// out again, and one Pebble then got the same port for its ACME and
/// management listeners.
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if claim(port) {
            return port;
        }
    }
}

/// Records `port` as handed out; false if it was already.
fn claim(port: u16) -> bool {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    HANDED_OUT.lock().unwrap().insert(port)
}

/// A loopback port free for both UDP and TCP (for a DNS server).
fn free_dual_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && claim(port) {
            return port;
        }
    }
    panic!("no loopback port is free for both UDP and TCP");
}

fn require(binary: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{binary}` is not on PATH: the ACME tests need a real Pebble 2.10. Run the suite with \
         `bash .ci/test.sh`, or build it with `bash e2e/assets.sh` and \
         `eval \"$(bash e2e/assets.sh --print)\"`."
    );
}

impl Pebble {
    pub fn start(options: PebbleOptions) -> Self {
        let pebble = require("pebble");
        let dir = tempfile::tempdir().unwrap();

        // Pebble's own TLS certificate, from a CA only the test trusts.
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "certweave test ACME TLS CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let tls_ca_file = dir.path().join("tls-ca.pem");
        std::fs::write(&tls_ca_file, ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();

        let mut children = Vec::new();
        let (dns_server, challtestsrv_management) = match options.dns_server {
            Some(server) => (server, None),
            None => {
                let challtestsrv = require("pebble-challtestsrv");
                let dns_port = free_dual_port();
                let management_port = free_port();
                let child = Command::new(challtestsrv)
                    .args([
                        "-dnsserver",
                        &format!("127.0.0.1:{dns_port}"),
                        "-management",
                        &format!("127.0.0.1:{management_port}"),
                        "-http01",
                        "",
                        "-https01",
                        "",
                        "-tlsalpn01",
                        "",
                        "-doh",
                        "",
                        "-defaultIPv4",
                        "127.0.0.1",
                        "-defaultIPv6",
                        "",
                    ])
                    .stdout(log_file(dir.path(), "challtestsrv.log"))
                    .stderr(log_file(dir.path(), "challtestsrv.log"))
                    .spawn()
                    .expect("pebble-challtestsrv starts");
                children.push(("pebble-challtestsrv".to_string(), child));
                wait_for_port(management_port, "pebble-challtestsrv", dir.path());
                (
                    SocketAddr::from(([127, 0, 0, 1], dns_port)),
                    Some(format!("http://127.0.0.1:{management_port}")),
                )
            }
        };

        let listen_port = free_port();
        let management_port = free_port();
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen_port}"),
                "managementListenAddress": format!("127.0.0.1:{management_port}"),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": options.http01_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": options.eab.is_some(),
                // As Pebble's own test configuration: the default (90 days)
                // and a short-lived profile (6 days).
                "profiles": {
                    "default": {"description": "The default profile", "validityPeriod": 7776000},
                    "shortlived": {"description": "A short-lived profile", "validityPeriod": 518400},
                },
            }
        });
        if let Some((kid, key)) = &options.eab {
            config["pebble"]["externalAccountMACKeys"] = serde_json::json!({ kid: key });
        }
        let config_file = dir.path().join("pebble-config.json");
        std::fs::write(&config_file, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        let mut command = Command::new(pebble);
        command
            .arg("-config")
            .arg(&config_file)
            .arg("-dnsserver")
            .arg(dns_server.to_string())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env_remove("PEBBLE_WFE_NONCEREJECT")
            .stdout(log_file(dir.path(), "pebble.log"))
            .stderr(log_file(dir.path(), "pebble.log"));
        if let Some(percent) = options.nonce_reject_percent {
            command.env("PEBBLE_WFE_NONCEREJECT", percent.to_string());
        }
        if options.alternate_roots > 0 {
            command.env(
                "PEBBLE_ALTERNATE_ROOTS",
                options.alternate_roots.to_string(),
            );
        }
        let child = command.spawn().expect("pebble starts");
        children.push(("pebble".to_string(), child));
        let pebble = Self {
            directory_url: format!("https://127.0.0.1:{listen_port}/dir"),
            management_url: format!("https://127.0.0.1:{management_port}"),
            tls_ca_pem: ca_cert.pem(),
            tls_ca_file,
            http01_port: options.http01_port,
            dns_server,
            challtestsrv_management,
            children,
            dir,
        };
        wait_for_port(listen_port, "pebble", pebble.dir.path());
        wait_for_port(management_port, "pebble", pebble.dir.path());
        pebble
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Pebble's log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// An HTTPS client that trusts Pebble's TLS certificate.
    pub fn https(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.tls_ca_pem.as_bytes()).unwrap(),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// The root that signs Pebble's chain number `index` (management
    /// `/roots/N`): what issued certificates must verify to.
    pub async fn root(&self, index: u32) -> String {
        let response = self
            .https()
            .get(format!("{}/roots/{index}", self.management_url))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.unwrap()
    }

    /// Overrides the renewal information (ARI) Pebble answers for the
    /// certificate at the head of `chain_pem` with a window from `start` to
    /// `end` (RFC 3339), as a CA about to revoke would (management
    /// `/set-renewal-info/`).
    pub async fn set_renewal_window(&self, chain_pem: &str, start: &str, end: &str) {
        let leaf_end = chain_pem.find("-----END CERTIFICATE-----").unwrap() + 25;
        let response = self
            .https()
            .post(format!("{}/set-renewal-info/", self.management_url))
            .header("user-agent", "certweave-tests")
            .json(&serde_json::json!({
                "Certificate": &chain_pem[..leaf_end],
                "ARIResponse": serde_json::json!({"suggestedWindow": {"start": start, "end": end}}).to_string(),
            }))
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert!(
            status.is_success(),
            "{status}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// Points `host`'s A record at `address` (challtestsrv only).
    pub async fn add_a(&self, host: &str, address: &str) {
        let management = self
            .challtestsrv_management
            .as_ref()
            .expect("add_a needs Pebble's own challtestsrv");
        let response = reqwest::Client::new()
            .post(format!("{management}/add-a"))
            .json(&serde_json::json!({"host": host, "addresses": [address]}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// The management URL of Pebble's own pebble-challtestsrv, when it has
    /// one (not when it resolves through another server): a stand-in for a
    /// DNS provider's API can publish what it is given through it, so
    /// Pebble's validation sees the records.
    pub fn challtestsrv_management(&self) -> Option<String> {
        self.challtestsrv_management.clone()
    }

    /// Adds TXT `value` at `fqdn` (no trailing dot needed) in Pebble's
    /// challtestsrv, beside any value already there.
    pub async fn set_txt(&self, fqdn: &str, value: &str) {
        let management = self
            .challtestsrv_management
            .as_ref()
            .expect("set_txt needs Pebble's own challtestsrv");
        set_txt(management, fqdn, value).await;
    }

    /// Removes every TXT value at `fqdn` from Pebble's challtestsrv.
    pub async fn clear_txt(&self, fqdn: &str) {
        let management = self
            .challtestsrv_management
            .as_ref()
            .expect("clear_txt needs Pebble's own challtestsrv");
        clear_txt(management, fqdn).await;
    }

    /// An instant-acme view of an existing account, signing with the
    /// account's P-256 key through instant-acme's own code: an independent
    /// look at what the server holds.
    pub async fn account_view(&self, account_url: &str, key_pem: &str) -> instant_acme::Account {
        let der = pkcs8_der(key_pem);
        instant_acme::Account::builder_with_http(Box::new(ReqwestTransport(self.https())))
            .from_parts(
                account_url.to_string(),
                rustls::pki_types::PrivatePkcs8KeyDer::from(der),
                self.directory_url.clone(),
            )
            .await
            .unwrap()
    }
}

fn pkcs8_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap()
        .into()
}

fn wait_for_port(port: u16, what: &str, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut log = String::new();
    for name in ["pebble.log", "challtestsrv.log"] {
        if let Ok(mut f) = std::fs::File::open(dir.join(name)) {
            let _ = f.read_to_string(&mut log);
        }
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 20s; logs:\n{log}");
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- pebble log ---\n{}", self.log());
        }
    }
}

/// instant-acme's transport over reqwest, for [`Pebble::account_view`].
struct ReqwestTransport(reqwest::Client);

impl HttpClient for ReqwestTransport {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let client = self.0.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(never) => match never {},
            };
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response
                .bytes()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            Ok(BytesResponse::from(
                builder.body(http_body_util::Full::new(bytes)).unwrap(),
            ))
        })
    }
}

/// challtestsrv's `/set-txt` at `management`: adds TXT `value` at `fqdn`.
pub async fn set_txt(management: &str, fqdn: &str, value: &str) {
    let host = format!("{}.", fqdn.trim_end_matches('.'));
    let response = reqwest::Client::new()
        .post(format!("{management}/set-txt"))
        .json(&serde_json::json!({"host": host, "value": value}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// challtestsrv's `/clear-txt` at `management`: removes every TXT value at
/// `fqdn`.
pub async fn clear_txt(management: &str, fqdn: &str) {
    let host = format!("{}.", fqdn.trim_end_matches('.'));
    let response = reqwest::Client::new()
        .post(format!("{management}/clear-txt"))
        .json(&serde_json::json!({"host": host}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// Copies the TXT values `read` returns for `fqdn` into challtestsrv at
/// `management` whenever they change, every 200 ms until the task is
/// aborted: for DNS providers that serve no DNS themselves (moto's
/// Route53), so that what Pebble validates is exactly what the provider
/// holds. `read` gives values as the provider spells them; surrounding
/// quotes are dropped.
pub fn mirror_txt<F, Fut>(management: String, fqdn: String, read: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Vec<String>> + Send,
{
    tokio::spawn(async move {
        let mut mirrored: Vec<String> = Vec::new();
        loop {
            let mut values = read().await;
            values.sort();
            if values != mirrored {
                clear_txt(&management, &fqdn).await;
                for value in &values {
                    set_txt(&management, &fqdn, value.trim_matches('"')).await;
                }
                mirrored = values;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
}

/// Issues one certificate for `example.test` and `*.example.test` from
/// `pebble`, both challenges answered over DNS-01 by `solver`, and checks
/// it: both names, the key, the chain to Pebble's root. On failure the
/// test fails with the error and `logs()` (the peers' logs). What every
/// DNS-01 provider test ends with.
pub async fn issue_wildcard(
    pebble: &Pebble,
    solver: std::sync::Arc<dyn certweave::issuers::acme::DnsSolver>,
    logs: impl Fn() -> String,
) -> certweave::model::Bundle {
    use certweave::issuers::acme::{AcmeConfig, AcmeIssuer, MemoryKeyStore, Solvers, Trust};
    use certweave::model::{CertificateRequest, Issuer, RequestOrigin};
    use certweave::pki::{self, KeyAlgorithm, PrivateKey};

    let mut config = AcmeConfig::new(&pebble.directory_url);
    config.trust = Trust::CaBundle(pebble.tls_ca_pem.clone());
    config.email = Some("certs@example.test".into());
    let issuer = AcmeIssuer::new(
        config,
        std::sync::Arc::new(MemoryKeyStore::default()),
        Solvers {
            dns01: Some(solver),
            ..Default::default()
        },
    )
    .unwrap();
    let request = CertificateRequest::for_dns_names(["example.test", "*.example.test"]);
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let started = Instant::now();
    let bundle = match issuer
        .issue(&request, &key, &RequestOrigin::default())
        .await
    {
        Ok(bundle) => bundle,
        Err(e) => panic!(
            "issuance failed: {e}\n--- pebble ---\n{}\n{}",
            pebble.log(),
            logs()
        ),
    };
    eprintln!("issued over DNS-01 in {:?}", started.elapsed());
    let info = pki::check_bundle(
        &bundle.chain_pem,
        &bundle.key_pem,
        Some(&request),
        std::time::SystemTime::now(),
    )
    .unwrap();
    let mut names = info.dns_names.clone();
    names.sort();
    assert_eq!(names, ["*.example.test", "example.test"]);
    pki::verify_chain_to_root(&bundle.chain_pem, &pebble.root(0).await).unwrap();
    bundle
}
