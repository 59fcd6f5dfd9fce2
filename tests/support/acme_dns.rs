//! A real acme-dns server (github.com/joohoi/acme-dns) for the `acmeDNS`
//! DNS-01 tests: one private instance per test, its SQLite database in a
//! temporary directory, its HTTP API and its DNS server (UDP and TCP) on
//! free loopback ports, killed on drop.
//!
//! It serves the zone [`ZONE`]; every account registered (`POST
//! /register`, open here as on a default install) gets a random subdomain
//! of it whose TXT values the account can set.
//!
//! `acme-dns` 0.7.2 is built from the Go module by `e2e/assets.sh`, which
//! `.ci/test.sh` runs. When it is missing the harness fails with a message
//! saying how to build it: a green run always means a real acme-dns
//! answered.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The zone the server is authoritative for.
pub const ZONE: &str = "auth.acme-dns.test";

/// A running acme-dns.
pub struct AcmeDns {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`: the API, as `dns01.acmeDNS.host`.
    pub api_url: String,
    /// Its DNS server.
    pub dns_addr: SocketAddr,
}

/// `acme-dns` from PATH, or a panic that says how to get it.
fn require() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join("acme-dns");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`acme-dns` is not on PATH: the acmeDNS tests need a real acme-dns 0.7.2. Run the suite \
         with `bash .ci/test.sh`, or build it with `bash e2e/assets.sh` (it needs Go and a C \
         compiler) and `eval \"$(bash e2e/assets.sh --print)\"`."
    );
}

/// A loopback port free for both UDP and TCP at the time of the call.
fn free_dual_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP port");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port is free for both UDP and TCP");
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback TCP port")
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, api_port: u16, dns_port: u16) -> String {
    let db = dir.join("acme-dns.db");
    format!(
        r#"[general]
listen = "127.0.0.1:{dns_port}"
protocol = "both4"
domain = "{ZONE}"
nsname = "{ZONE}"
nsadmin = "admin.{ZONE}"
records = [
    "{ZONE}. A 127.0.0.1",
    "{ZONE}. NS {ZONE}.",
]
debug = false

[database]
engine = "sqlite3"
connection = "{db}"

[api]
ip = "127.0.0.1"
port = "{api_port}"
disable_registration = false
tls = "none"
corsorigins = ["*"]
use_header = false
header_name = "X-Forwarded-For"

[logconfig]
loglevel = "debug"
logtype = "stdout"
logformat = "text"
"#,
        db = db.display()
    )
}

impl AcmeDns {
    /// Starts acme-dns and returns once its API and DNS ports accept
    /// connections; panics with its log when it does not start.
    pub fn start() -> Self {
        let binary = require();
        let mut last_error = String::new();
        // Free ports are found by binding and releasing them, so another
        // process may take one in between: try a few times.
        for _ in 0..3 {
            match Self::try_start(&binary) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("acme-dns did not start:\n{last_error}");
    }

    fn try_start(binary: &Path) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let api_port = free_tcp_port();
        let dns_port = free_dual_port();
        let conf = dir.path().join("config.cfg");
        std::fs::write(&conf, config(dir.path(), api_port, dns_port)).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(dir.path().join("acme-dns.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let dns_addr = SocketAddr::from(([127, 0, 0, 1], dns_port));
        let log_of =
            |dir: &Path| std::fs::read_to_string(dir.join("acme-dns.log")).unwrap_or_default();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "acme-dns exited with {status}:\n{}",
                    log_of(dir.path())
                ));
            }
            if TcpStream::connect(("127.0.0.1", api_port)).is_ok()
                && TcpStream::connect(dns_addr).is_ok()
            {
                return Ok(Self {
                    child,
                    dir,
                    api_url: format!("http://127.0.0.1:{api_port}"),
                    dns_addr,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "acme-dns did not listen within 20s:\n{}",
                    log_of(dir.path())
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// acme-dns's log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("acme-dns.log")).unwrap_or_default()
    }

    /// Registers a new account (`POST /register`) and returns the answer
    /// as acme-dns gives it: what goes into the account Secret under a
    /// domain's name.
    pub async fn register(&self) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(format!("{}/register", self.api_url))
            .send()
            .await
            .expect("acme-dns answers /register");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status.as_u16(), 201, "/register: {text}\n{}", self.log());
        serde_json::from_str(&text).expect("/register answers JSON")
    }

    /// The TXT values served at `name`, as `dig` reads them from this
    /// server (each record's strings joined), sorted. Needs
    /// `support/bind9.rs` beside it, whose reader this is.
    pub fn txt(&self, name: &str) -> Vec<String> {
        crate::bind9::dig_txt(self.dns_addr, name, false)
    }
}

impl Drop for AcmeDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- acme-dns log ---\n{}", self.log());
        }
    }
}
