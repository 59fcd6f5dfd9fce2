//! Feeds an HTTP/1.1 exchange through a running `certweave proxy`: the
//! proxy (`proxy::Proxy`, bound on 127.0.0.1 with a self-signed
//! certificate, HTTP/1.1 to the upstream) sits between a TLS client and a
//! plain upstream, both of this process.
//!
//! The input is lines (`\n`, an optional `\r` dropped). Those before the
//! first empty line are the request head the client sends, with `\r\n`
//! line ends and one `x-fuzz-exec` header of the harness's last; those after
//! it are header lines the upstream answers with, between its status line
//! `HTTP/1.1 299 Fuzz` and `content-length: 0`, `connection: close`.
//!
//! Crashes on a panic, and when the request reaching the upstream carries a
//! hop-by-hop header (`Keep-Alive`, `Proxy-Connection`,
//! `Proxy-Authenticate`, `Proxy-Authorization`, `Trailer`, a header the
//! client's `Connection` named, `TE` other than `trailers`, `Upgrade` or
//! `Connection` other than a forwarded upgrade), not exactly one `Host`,
//! not exactly `X-Forwarded-Proto: https`, or an `X-Forwarded-For` other
//! than the client's own entries followed by `127.0.0.1`; or when the
//! upstream's response reaches the client with `Keep-Alive`,
//! `Proxy-Connection`, `Proxy-Authenticate`, `Trailer`, `Upgrade` or a
//! header the upstream's `Connection` named. An exchange that gets no
//! answer within two seconds is reported on stderr and skipped.
//!
//! With `CERTWEAVE_FUZZ_SHOW` set, each exchange is printed to stderr (run
//! the target on one input to see what the upstream and the client got).

#![no_main]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use certweave::issuers::selfsigned::SelfSignedIssuer;
use certweave::model::{CertificateRequest, KeyAlgorithm, PrivateKey};
use certweave::proxy::{Proxy, ProxyOptions, UpstreamProtocol};
use certweave::store::files::{CERT_FILE, KEY_FILE};
use libfuzzer_sys::fuzz_target;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

/// How long one exchange may take before it is skipped.
const DEADLINE: Duration = Duration::from_secs(2);
/// Largest head read from either side.
const MAX_HEAD: usize = 64 * 1024;
/// The status only the upstream answers with.
const UPSTREAM_STATUS: u16 = 299;
/// Request headers that never reach the upstream.
const NEVER_FORWARDED: [&str; 5] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
];
/// Response headers that never reach the client (no upgrade is answered).
const NEVER_RETURNED: [&str; 6] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "trailer",
    "upgrade",
];
/// Headers the proxy or hyper set again after stripping what `Connection`
/// named, so their presence says nothing about the stripping.
const SET_AGAIN: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "date",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-fuzz-exec",
];

struct Harness {
    runtime: tokio::runtime::Runtime,
    proxy: SocketAddr,
    connector: TlsConnector,
    /// Request heads the upstream received.
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Header lines the upstream answers with.
    answer: Arc<Mutex<Vec<u8>>>,
    exec: AtomicU64,
    timeouts: AtomicUsize,
}

/// Accepts every server certificate: the exchange is under test, not TLS.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(start)
}

fn start() -> Harness {
    // A Rust `main` ignores SIGPIPE, so a write to a closed socket is an
    // error; libFuzzer's `main` leaves the default, which kills the process.
    // SAFETY: setting a signal's disposition to ignore, before any thread of
    // the harness exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let cert_dir = cert_dir();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answer = Arc::new(Mutex::new(Vec::new()));
    let proxy = runtime.block_on(async {
        let upstream = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("upstream port");
        let upstream_addr = upstream.local_addr().expect("upstream address");
        tokio::spawn(serve_upstream(upstream, seen.clone(), answer.clone()));
        let mut options =
            ProxyOptions::new("127.0.0.1:0".parse().unwrap(), upstream_addr, cert_dir);
        options.health_addr = "127.0.0.1:0".parse().unwrap();
        options.upstream_protocol = UpstreamProtocol::Http1;
        options.reload_interval = Duration::from_millis(50);
        let proxy = Proxy::bind(options).await.expect("the proxy binds");
        let addr = proxy.local_addr().expect("the proxy's address");
        tokio::spawn(proxy.run(std::future::pending()));
        addr
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let harness = Harness {
        runtime,
        proxy,
        connector: TlsConnector::from(Arc::new(config)),
        seen,
        answer,
        exec: AtomicU64::new(0),
        timeouts: AtomicUsize::new(0),
    };
    // Wait until the certificate is loaded and TLS is served.
    let ready = harness.runtime.block_on(async {
        for _ in 0..200 {
            let attempt = tokio::time::timeout(Duration::from_secs(1), harness.connect()).await;
            if let Ok(Ok(_)) = attempt {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    });
    assert!(ready, "the proxy never served TLS");
    harness
}

static CERT_DIR: OnceLock<PathBuf> = OnceLock::new();

/// A certificate directory with a fresh self-signed `localhost` bundle,
/// removed when the process exits normally.
fn cert_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    remove_stale(&base, "certweave-fuzz-proxy-");
    let dir = base.join(format!("certweave-fuzz-proxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).expect("a key");
    let bundle = SelfSignedIssuer::default()
        .sign(&CertificateRequest::for_dns_names(["localhost"]), &key)
        .expect("a self-signed certificate");
    std::fs::write(dir.join(CERT_FILE), &bundle.chain_pem).expect("tls.crt");
    std::fs::write(dir.join(KEY_FILE), &bundle.key_pem).expect("tls.key");
    CERT_DIR
        .set(dir.clone())
        .expect("one certificate directory");
    // SAFETY: registers a function that takes no arguments and does not
    // unwind.
    unsafe { libc::atexit(remove_cert_dir) };
    dir
}

extern "C" fn remove_cert_dir() {
    if let Some(dir) = CERT_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes what processes that are gone left in `base` under `prefix<pid>`:
/// a crash skips `atexit`.
fn remove_stale(base: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The upstream: records each request head and answers with the current
/// header lines, then closes.
async fn serve_upstream(
    listener: TcpListener,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    answer: Arc<Mutex<Vec<u8>>>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let seen = seen.clone();
        let answer = answer.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let head = loop {
                if let Some(end) = find(&buf, b"\r\n\r\n") {
                    break buf[..end + 4].to_vec();
                }
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) if buf.len() + n <= MAX_HEAD => buf.extend_from_slice(&chunk[..n]),
                    Ok(_) => return,
                }
            };
            seen.lock().unwrap().push(head);
            let mut response = format!("HTTP/1.1 {UPSTREAM_STATUS} Fuzz\r\n").into_bytes();
            response.extend_from_slice(&answer.lock().unwrap());
            response.extend_from_slice(b"content-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(&response).await;
            let _ = stream.shutdown().await;
        });
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Harness {
    async fn connect(&self) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.proxy).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").expect("a server name");
        self.connector.connect(name, tcp).await
    }

    /// Sends `request` and returns the first final response head, if the
    /// proxy answers before closing.
    async fn exchange(&self, request: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        let mut tls = self.connect().await?;
        tls.write_all(request).await?;
        tls.flush().await?;
        let mut buf = Vec::new();
        loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head: Vec<u8> = buf.drain(..end + 4).collect();
                match status(&head) {
                    Some(s) if (100..200).contains(&s) && s != 101 => continue,
                    _ => return Ok(Some(head)),
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tls.read(&mut chunk).await?;
            if n == 0 || buf.len() + n > MAX_HEAD {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let code = line.split(|b| *b == b' ').nth(1)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

/// Header lines of a head or of lines: `(lowercase name, value)`, the value
/// trimmed as a parser does.
fn headers<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Vec<(String, &'a [u8])> {
    lines
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|b| *b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
            Some((name, line[colon + 1..].trim_ascii()))
        })
        .collect()
}

fn head_headers(head: &[u8]) -> Vec<(String, &[u8])> {
    headers(head.split(|b| *b == b'\n').skip(1))
}

fn values<'a>(headers: &[(String, &'a [u8])], name: &str) -> Vec<&'a [u8]> {
    headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .collect()
}

/// A header value as `HeaderValue::to_str` reads it: visible ASCII and tabs.
fn text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|b| *b == b'\t' || (0x20..0x7f).contains(b))
        .then(|| std::str::from_utf8(value).expect("ASCII"))
}

/// The header names the `Connection` headers list, lowercase.
fn connection_tokens(headers: &[(String, &[u8])]) -> Vec<String> {
    values(headers, "connection")
        .into_iter()
        .filter_map(text)
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the upstream received for the client's `sent` headers.
fn check_request(sent: &[(String, &[u8])], upstream_head: &[u8]) {
    let got = head_headers(upstream_head);
    let head = shown(upstream_head);
    for name in NEVER_FORWARDED {
        assert!(
            values(&got, name).is_empty(),
            "{name} was forwarded:\n{head}"
        );
    }
    let te = values(&got, "te");
    assert!(
        te.is_empty() || te == [b"trailers"],
        "TE other than trailers was forwarded:\n{head}"
    );
    let named = connection_tokens(sent);
    let upgrade = values(&got, "upgrade");
    if upgrade.is_empty() {
        assert!(
            values(&got, "connection").is_empty(),
            "Connection was forwarded:\n{head}"
        );
    } else {
        assert_eq!(upgrade.len(), 1, "{head}");
        assert_eq!(values(&got, "connection"), [b"upgrade"], "{head}");
        assert!(
            named.iter().any(|t| t == "upgrade"),
            "an unannounced upgrade:\n{head}"
        );
        assert!(values(sent, "upgrade").contains(&upgrade[0]), "{head}");
    }
    for token in &named {
        if !SET_AGAIN.contains(&token.as_str()) {
            assert!(
                values(&got, token).is_empty(),
                "{token}, named by Connection, was forwarded:\n{head}"
            );
        }
    }
    assert_eq!(values(&got, "host").len(), 1, "not one Host:\n{head}");
    assert_eq!(values(&got, "x-forwarded-proto"), [b"https"], "{head}");
    let mut expected: Vec<&str> = Vec::new();
    if !named.iter().any(|t| t == "x-forwarded-for") {
        expected = values(sent, "x-forwarded-for")
            .into_iter()
            .filter_map(text)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
    }
    expected.push("127.0.0.1");
    let xff = values(&got, "x-forwarded-for");
    assert_eq!(xff.len(), 1, "not one X-Forwarded-For:\n{head}");
    assert_eq!(
        shown(xff[0]),
        expected.join(", "),
        "X-Forwarded-For:\n{head}"
    );
}

/// What the client received for the upstream's `answered` header lines.
fn check_response(answered: &[(String, &[u8])], client_head: &[u8]) {
    let got = head_headers(client_head);
    let head = shown(client_head);
    for name in NEVER_RETURNED {
        assert!(
            values(&got, name).is_empty(),
            "{name} was returned:\n{head}"
        );
    }
    for token in connection_tokens(answered) {
        if !SET_AGAIN.contains(&token.as_str()) {
            assert!(
                values(&got, &token).is_empty(),
                "{token}, named by Connection, was returned:\n{head}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    let blank = lines
        .iter()
        .position(|l| l.is_empty())
        .unwrap_or(lines.len());
    let (request_lines, answer_lines) = lines.split_at(blank);
    let answer_lines = answer_lines.get(1..).unwrap_or_default();
    if request_lines.is_empty() {
        // Only blank lines: a server waits for the request line.
        return;
    }

    let h = harness();
    let exec = h.exec.fetch_add(1, Ordering::Relaxed);
    let marker = format!("x-fuzz-exec: {exec}");
    let mut request = request_lines.join(&b"\r\n"[..]);
    request.extend_from_slice(format!("\r\n{marker}\r\n\r\n").as_bytes());
    let mut answer = Vec::new();
    for line in answer_lines {
        answer.extend_from_slice(line);
        answer.extend_from_slice(b"\r\n");
    }
    *h.answer.lock().unwrap() = answer;
    h.seen.lock().unwrap().clear();

    let response = h
        .runtime
        .block_on(async { tokio::time::timeout(DEADLINE, h.exchange(&request)).await });
    let client_head = match response {
        Ok(Ok(head)) => head,
        Ok(Err(_)) => None,
        Err(_) => {
            if h.timeouts.fetch_add(1, Ordering::Relaxed) < 10 {
                eprintln!(
                    "proxy_headers: no answer within {DEADLINE:?} to {:?}",
                    shown(&request[..request.len().min(200)])
                );
            }
            return;
        }
    };

    let upstream_head = h
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|head| {
            head.split(|b| *b == b'\n')
                .any(|l| l.trim_ascii() == marker.as_bytes())
        })
        .cloned();
    if std::env::var_os("CERTWEAVE_FUZZ_SHOW").is_some() {
        let show = |head: &Option<Vec<u8>>| head.as_deref().map(shown).unwrap_or_default();
        eprintln!(
            "--- sent\n{}--- upstream received\n{}--- client received\n{}",
            shown(&request),
            show(&upstream_head),
            show(&client_head)
        );
    }
    if let Some(upstream_head) = &upstream_head {
        check_request(&headers(request_lines[1..].iter().copied()), upstream_head);
    }
    if let Some(client_head) = &client_head {
        if status(client_head) == Some(UPSTREAM_STATUS) {
            assert!(
                !h.seen.lock().unwrap().is_empty(),
                "an upstream answer without a request reaching it"
            );
            check_response(&headers(answer_lines.iter().copied()), client_head);
        }
    }
});
