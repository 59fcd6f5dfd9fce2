//! A real BIND9 (`named`) for DNS-01 tests: one private instance per test,
//! on a free loopback port, in its own temporary directory, killed on drop.
//!
//! It serves two primary zones and knows three TSIG keys (one per HMAC
//! algorithm):
//! - [`Bind9::zone`] (`example.test.`) accepts updates signed by any of the
//!   keys (`allow-update { key ...; }`), as a DNS-01 zone must;
//! - [`Bind9::locked_zone`] (`locked.test.`) accepts none, to show what an
//!   update-policy refusal looks like.
//!
//! Recursion is off, so names outside both zones are refused, as on a real
//! authoritative server. Tests read the zone back with `dig`, independently
//! of the DNS library under test.
//!
//! [`Bind9::start_with`] adds to that: records in `example.test.` (a
//! delegating `_acme-challenge` CNAME) and zones forwarded to another
//! server (acme-dns), for which recursion is turned on with caching off, so
//! a resolver asking through this server always sees the other server's
//! latest answer.
//!
//! `named` comes from Debian's `bind9` package and `dig` from
//! `bind9-dnsutils`; `.ci/test.sh` installs both. When they are missing the
//! harness fails loudly rather than skipping, so a green run always means
//! the solver met a real server.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;

/// One TSIG key as `named.conf` declares it.
#[derive(Debug, Clone)]
pub struct TsigKey {
    pub name: String,
    /// `hmac-sha256`, `hmac-sha384` or `hmac-sha512`.
    pub algorithm: String,
    /// Base64, as in `named.conf`.
    pub secret: String,
}

/// A running `named`.
pub struct Bind9 {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    /// The hmac-sha256 key's name (the default key).
    pub key_name: String,
    /// The hmac-sha256 key's base64 secret.
    pub secret: String,
    /// Every key the server knows, one per algorithm.
    pub keys: Vec<TsigKey>,
    /// The updatable zone, absolute: `example.test.`.
    pub zone: String,
    /// A zone that refuses all updates: `locked.test.`.
    pub locked_zone: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

const ALGORITHMS: [&str; 3] = ["hmac-sha256", "hmac-sha384", "hmac-sha512"];

/// Additions to the default server, for [`Bind9::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Bind9Extras {
    /// Lines appended to the `example.test.` zone file, in zone-file syntax
    /// (`_acme-challenge IN CNAME x.auth.acme-dns.test.`).
    pub example_records: Vec<String>,
    /// Zones (`auth.acme-dns.test.`) answered by forwarding to a server.
    pub forward_zones: Vec<(String, SocketAddr)>,
}

impl Bind9 {
    /// Starts `named` and returns once it answers queries. Panics with the
    /// install command when BIND9 is missing, and with named's own log when
    /// it does not start.
    pub fn start() -> Self {
        Self::start_with(Bind9Extras::default())
    }

    /// [`Bind9::start`] with `extras` in its configuration.
    pub fn start_with(extras: Bind9Extras) -> Self {
        let named = find_named();
        let mut last_error = String::new();
        // The free port is found by binding and releasing it, so another
        // process may take it in between: try a few ports before giving up.
        for _ in 0..3 {
            match Self::try_start(&named, &extras) {
                Ok(server) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("named did not start:\n{last_error}");
    }

    fn try_start(named: &Path, extras: &Bind9Extras) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port();
        let keys: Vec<TsigKey> = ALGORITHMS
            .iter()
            .map(|alg| TsigKey {
                name: format!("certweave-{alg}."),
                algorithm: (*alg).to_owned(),
                secret: random_secret(alg),
            })
            .collect();
        let zone = "example.test.".to_owned();
        let locked_zone = "locked.test.".to_owned();
        write_zone_with(dir.path(), &zone, &extras.example_records);
        write_zone(dir.path(), &locked_zone);
        let conf = dir.path().join("named.conf");
        std::fs::write(
            &conf,
            named_conf(
                dir.path(),
                port,
                &keys,
                &zone,
                &locked_zone,
                &extras.forward_zones,
            ),
        )
        .map_err(|e| e.to_string())?;

        let mut child = Command::new(named)
            // -g: foreground, log to stderr; -n 1: one worker thread (the
            // machines running the suite are small); -4: IPv4 only.
            .args(["-g", "-n", "1", "-4", "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", named.display()))?;

        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr is piped");
        let log_writer = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // The last start-up line is "<timestamp> running" (the first
                // one, "running on Linux...", is not it).
                if line.trim_end().ends_with(" running") {
                    let _ = ready_tx.send(());
                }
                log_writer.lock().unwrap().push(line);
            }
        });

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "named exited with {status}:\n{}",
                    log.lock().unwrap().join("\n")
                ));
            }
            if ready_rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "named did not report running within 20s:\n{}",
                    log.lock().unwrap().join("\n")
                ));
            }
        }
        let default = keys[0].clone();
        Ok(Self {
            child,
            dir,
            port,
            key_name: default.name,
            secret: default.secret,
            keys,
            zone,
            locked_zone,
            log,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where to send queries and updates.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The key for `algorithm` (`hmac-sha384`...).
    pub fn key(&self, algorithm: &str) -> &TsigKey {
        self.keys
            .iter()
            .find(|k| k.algorithm == algorithm)
            .unwrap_or_else(|| panic!("no {algorithm} key configured"))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// named's log so far, for assertion messages.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The TXT values at `name`, as `dig` reads them from the server (each
    /// record's strings joined), sorted.
    pub fn txt(&self, name: &str) -> Vec<String> {
        dig_txt(self.addr(), name, false)
    }

    /// The zone's SOA serial, which every accepted update increments.
    pub fn serial(&self, zone: &str) -> u32 {
        let out = self.dig(zone, "SOA");
        out.split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no SOA for {zone} in dig output {out:?}"))
    }

    /// `dig +short` against this server, without recursion.
    pub fn dig(&self, name: &str, record_type: &str) -> String {
        dig(self.addr(), name, record_type, false)
    }
}

impl Drop for Bind9 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `named` on PATH or in /usr/sbin (which a non-root PATH may lack).
fn find_named() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("named"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "BIND9's `named` is not installed, and the DNS-01 tests need a real server: \
                 run `apt-get install bind9 bind9-dnsutils` (bash .ci/test.sh does this)"
            )
        })
}

/// A loopback port free for both TCP and UDP at the time of the call.
fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a loopback TCP port");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port is free for both TCP and UDP");
}

fn random_secret(algorithm: &str) -> String {
    let len = match algorithm {
        "hmac-sha256" => 32,
        "hmac-sha384" => 48,
        _ => 64,
    };
    let mut bytes = vec![0u8; len];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn write_zone(dir: &Path, zone: &str) {
    write_zone_with(dir, zone, &[]);
}

fn write_zone_with(dir: &Path, zone: &str, extra: &[String]) {
    let mut text = format!(
        "$TTL 300\n\
         @ IN SOA ns1.{zone} hostmaster.{zone} 1 3600 600 86400 60\n\
         @ IN NS ns1.{zone}\n\
         ns1 IN A 127.0.0.1\n\
         www IN A 127.0.0.1\n"
    );
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(dir.join(format!("{zone}zone")), text).expect("write zone file");
}

fn named_conf(
    dir: &Path,
    port: u16,
    keys: &[TsigKey],
    zone: &str,
    locked: &str,
    forward_zones: &[(String, SocketAddr)],
) -> String {
    let d = dir.display();
    // Forwarding needs recursion; loopback clients only, nothing cached.
    let recursion = if forward_zones.is_empty() {
        "recursion no;".to_owned()
    } else {
        "recursion yes;\n    allow-recursion { 127.0.0.1; };\n    max-cache-ttl 0;\n    max-ncache-ttl 0;".to_owned()
    };
    let mut conf = format!(
        r#"options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    {recursion}
    dnssec-validation no;
    notify no;
    allow-transfer {{ none; }};
    querylog yes;
}};
controls {{ }};
logging {{
    category default {{ default_stderr; }};
    category update {{ default_stderr; }};
    category queries {{ default_stderr; }};
}};
"#
    );
    for key in keys {
        conf.push_str(&format!(
            "key \"{}\" {{ algorithm {}; secret \"{}\"; }};\n",
            key.name, key.algorithm, key.secret
        ));
    }
    let grants: String = keys
        .iter()
        .map(|k| format!("key \"{}\"; ", k.name))
        .collect();
    conf.push_str(&format!(
        "zone \"{zone}\" {{ type primary; file \"{d}/{zone}zone\"; allow-update {{ {grants}}}; }};\n"
    ));
    conf.push_str(&format!(
        "zone \"{locked}\" {{ type primary; file \"{d}/{locked}zone\"; allow-update {{ none; }}; }};\n"
    ));
    for (name, server) in forward_zones {
        conf.push_str(&format!(
            "zone \"{name}\" {{ type forward; forward only; forwarders {{ {} port {}; }}; }};\n",
            server.ip(),
            server.port()
        ));
    }
    conf
}

/// `dig +short` of `record_type` at `name` from `server` (independent of
/// the DNS code under test); `recurse` asks for recursion.
pub fn dig(server: SocketAddr, name: &str, record_type: &str, recurse: bool) -> String {
    let output = Command::new("dig")
        .args([
            "+short",
            if recurse { "+recurse" } else { "+norecurse" },
            "+time=2",
            "+tries=2",
            "-p",
            &server.port().to_string(),
            &format!("@{}", server.ip()),
            name,
            record_type,
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run dig ({e}): install it with `apt-get install bind9-dnsutils`")
        });
    assert!(
        output.status.success(),
        "dig {name} {record_type} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("dig prints UTF-8")
}

/// TXT values at `name` from `server` with `dig` (each record's quoted
/// strings joined), sorted; `recurse` asks for recursion.
pub fn dig_txt(server: SocketAddr, name: &str, recurse: bool) -> Vec<String> {
    let mut values: Vec<String> = dig(server, name, "TXT", recurse)
        .lines()
        // +short also prints the CNAME a name leads through, unquoted.
        .filter(|l| l.trim_start().starts_with('"'))
        .map(|line| {
            line.split('"')
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s)
                .collect::<String>()
        })
        .collect();
    values.sort();
    values
}
