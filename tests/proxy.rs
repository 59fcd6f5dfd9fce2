//! `certweave proxy` end to end: real TLS clients, the proxy, and a real
//! hyper upstream, all on 127.0.0.1 with ephemeral ports.
//!
//! The certificate directory is written the way kubelet projects a Secret
//! volume (a timestamped directory, a `..data` symlink swapped by rename,
//! `tls.crt`/`tls.key` symlinks into `..data/`), so rotation is tested
//! against the real layout rather than plain file rewrites.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use certweave::proxy::{Proxy, ProxyMetrics, ProxyMode, ProxyOptions, UpstreamProtocol};
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ClientConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Certificates

/// A test CA issuing server and client certificates.
struct Pki {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
}

/// A certificate (PEM and DER) with its private key (PEM).
#[derive(Clone)]
struct Bundle {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn issue(&self, cn: &str, sans: &[&str], usage: rcgen::ExtendedKeyUsagePurpose) -> Bundle {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Bundle {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A serving certificate for `localhost`.
    fn server(&self, cn: &str) -> Bundle {
        self.issue(
            cn,
            &["localhost"],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self, cn: &str) -> Bundle {
        self.issue(cn, &[], rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }
}

// ---------------------------------------------------------------------------
// A Secret volume, projected the way kubelet's atomic writer does it

struct SecretVolume {
    dir: tempfile::TempDir,
    generation: u32,
}

impl SecretVolume {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            generation: 0,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `files` into a new timestamped directory, swaps `..data` to it
    /// with a rename, makes sure the user-visible symlinks exist, and removes
    /// the previous directory.
    fn project(&mut self, files: &[(&str, &[u8])]) {
        use std::os::unix::fs::symlink;
        let root = self.dir.path();
        self.generation += 1;
        let ts = format!(
            "..2026_01_01_00_00_{:02}.{:09}",
            self.generation, self.generation
        );
        let ts_dir = root.join(&ts);
        std::fs::create_dir(&ts_dir).unwrap();
        for (name, content) in files {
            std::fs::write(ts_dir.join(name), content).unwrap();
        }
        let old = std::fs::read_link(root.join("..data")).ok();
        symlink(&ts, root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        for (name, _) in files {
            let link = root.join(name);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(Path::new("..data").join(name), link).unwrap();
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(root.join(old)).unwrap();
        }
    }

    fn project_bundle(&mut self, bundle: &Bundle) {
        self.project(&[
            ("tls.crt", bundle.cert_pem.as_bytes()),
            ("tls.key", bundle.key_pem.as_bytes()),
        ]);
    }
}

// ---------------------------------------------------------------------------
// The upstream: a small hyper server, HTTP/1.1 and h2c (or HTTP/1.1 only)

/// A streamed body fed from a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

type UpBody = BoxBody<Bytes, Infallible>;

#[derive(Default)]
struct UpstreamState {
    /// Released by the test to let `/stream` send its last chunks.
    stream_gate: Notify,
    /// Signalled when `/slow` has received its request.
    slow_started: Notify,
    requests: AtomicUsize,
}

struct Upstream {
    addr: SocketAddr,
    state: Arc<UpstreamState>,
}

impl Upstream {
    async fn start(http1_only: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(UpstreamState::default());
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(upstream_handle(state, req).await) }
                    });
                    let io = TokioIo::new(tcp);
                    if http1_only {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .with_upgrades()
                            .await;
                    } else {
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection_with_upgrades(io, service)
                            .await;
                    }
                });
            }
        });
        Self { addr, state }
    }
}

fn full(body: impl Into<Bytes>) -> UpBody {
    Full::new(body.into()).boxed()
}

async fn upstream_handle(state: Arc<UpstreamState>, req: Request<Incoming>) -> Response<UpBody> {
    state.requests.fetch_add(1, Ordering::SeqCst);
    match req.uri().path() {
        "/echo" => {
            // Reports what arrived: version, authority, headers, body.
            let mut report = format!(
                "version: {:?}\nmethod: {}\nuri: {}\n",
                req.version(),
                req.method(),
                req.uri()
            );
            for (name, value) in req.headers() {
                report.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
            }
            let body = req.into_body().collect().await.unwrap().to_bytes();
            report.push_str(&format!("body: {}\n", String::from_utf8_lossy(&body)));
            let mut response = Response::new(full(report));
            response
                .headers_mut()
                .insert("x-upstream", "yes".parse().unwrap());
            response
                .headers_mut()
                .insert("keep-alive", "timeout=99".parse().unwrap());
            response
        }
        "/stream" => {
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                let _ = tx.send(Bytes::from_static(b"first\n")).await;
                // The rest only once the test saw the first chunk: a proxy
                // that buffered the response would never deliver it.
                state.stream_gate.notified().await;
                for i in 0..3 {
                    let _ = tx.send(Bytes::from(format!("more {i}\n"))).await;
                }
            });
            Response::new(ChannelBody(rx).boxed())
        }
        "/slow" => {
            state.slow_started.notify_one();
            tokio::time::sleep(Duration::from_millis(400)).await;
            Response::new(full("slow done"))
        }
        "/ws" => upstream_websocket(req),
        _ => {
            let mut response = Response::new(full("not found"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    }
}

/// Accepts a WebSocket upgrade and echoes every message back.
fn upstream_websocket(mut req: Request<Incoming>) -> Response<UpBody> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        let mut response = Response::new(full("not a websocket request"));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = upgrade.await.unwrap();
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(msg)) = ws.next().await {
            let echo = matches!(msg, Message::Text(_) | Message::Binary(_));
            if matches!(msg, Message::Close(_)) || (echo && ws.send(msg).await.is_err()) {
                return;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(full(Bytes::new()))
        .unwrap()
}

// ---------------------------------------------------------------------------
// The proxy

struct RunningProxy {
    addr: SocketAddr,
    health: SocketAddr,
    metrics: ProxyMetrics,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start_proxy(
    cert_dir: &Path,
    upstream: SocketAddr,
    client_ca: Option<PathBuf>,
) -> RunningProxy {
    let mut options = ProxyOptions::new("127.0.0.1:0".parse().unwrap(), upstream, cert_dir);
    options.health_addr = "127.0.0.1:0".parse().unwrap();
    options.client_ca = client_ca;
    options.reload_interval = Duration::from_millis(20);
    options.drain_timeout = Duration::from_secs(3);
    start_proxy_with(options).await
}

async fn start_proxy_with(options: ProxyOptions) -> RunningProxy {
    let proxy = Proxy::bind(options).await.unwrap();
    let addr = proxy.local_addr().unwrap();
    let health = proxy.health_addr().unwrap();
    let metrics = proxy.metrics().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(proxy.run(async move {
        let _ = rx.await;
    }));
    RunningProxy {
        addr,
        health,
        metrics,
        shutdown: Some(tx),
        task,
    }
}

impl RunningProxy {
    async fn wait_ready(&self) {
        eventually("readyz 200", || async {
            health_get(self.health, "/readyz").await.0 == 200
        })
        .await;
    }

    async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("proxy stops in time")
            .unwrap()
            .unwrap();
    }
}

/// Polls `check` until it holds, failing the test after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A plain HTTP/1.1 GET on the health port: (status, body).
async fn health_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "health")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of a metric line `name value` in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

// ---------------------------------------------------------------------------
// TLS clients

fn client_config(ca_pem: &str, alpn: &[&[u8]], identity: Option<&Bundle>) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = ClientConfig::builder_with_provider(certweave::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(id) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(id.der.clone())],
                PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

fn served_cert(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// An HTTP/1.1 connection over an established TLS stream.
async fn h1(stream: TlsStream<TcpStream>) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// An HTTP/2 connection over an established TLS stream.
async fn h2(stream: TlsStream<TcpStream>) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

fn h1_get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Full::default())
        .unwrap()
}

async fn text(response: Response<Incoming>) -> String {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// Connects, sends one HTTP/1.1 GET, returns the body; any failure (TLS or
/// HTTP) is an `Err`.
async fn try_get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
) -> Result<String, String> {
    let stream = tls_connect(addr, config).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let response = sender
        .send_request(h1_get(path))
        .await
        .map_err(|e| e.to_string())?;
    Ok(text(response).await)
}

/// A served bundle, an upstream and a running proxy: the common set-up.
struct Fixture {
    pki: Pki,
    volume: SecretVolume,
    first: Bundle,
    upstream: Upstream,
    proxy: RunningProxy,
}

impl Fixture {
    async fn new(http1_only_upstream: bool) -> Self {
        let pki = Pki::new("test CA");
        let mut volume = SecretVolume::new();
        let first = pki.server("first");
        volume.project_bundle(&first);
        let upstream = Upstream::start(http1_only_upstream).await;
        let proxy = start_proxy(volume.path(), upstream.addr, None).await;
        proxy.wait_ready().await;
        Self {
            pki,
            volume,
            first,
            upstream,
            proxy,
        }
    }

    fn config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        client_config(&self.pki.ca_pem, alpn, None)
    }
}

// ---------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn http1_client_reaches_the_upstream_with_forwarding_headers() {
    let fx = Fixture::new(false).await;
    let stream = tls_connect(fx.proxy.addr, fx.config(&[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut sender = h1(stream).await;
    let req = Request::post("/echo?q=1")
        .header("host", "app.example")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "http")
        .header("x-app", "kept")
        .body(Full::new(Bytes::from_static(b"hello upstream")))
        .unwrap();
    let response = sender.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), Version::HTTP_11);
    assert_eq!(response.headers()["x-upstream"], "yes");
    assert!(
        response.headers().get("keep-alive").is_none(),
        "hop-by-hop response header leaked"
    );
    let report = text(response).await;
    assert!(report.contains("version: HTTP/1.1\n"), "{report}");
    assert!(report.contains("method: POST\n"), "{report}");
    assert!(report.contains("uri: /echo?q=1\n"), "{report}");
    assert!(report.contains("host: app.example\n"), "{report}");
    assert!(
        report.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{report}"
    );
    assert!(report.contains("x-forwarded-proto: https\n"), "{report}");
    assert!(report.contains("x-app: kept\n"), "{report}");
    assert!(!report.contains("x-hop"), "{report}");
    assert!(!report.contains("keep-alive: timeout=5"), "{report}");
    assert!(report.contains("body: hello upstream\n"), "{report}");

    // The connection is kept alive for a second request.
    let response = sender.send_request(h1_get("/echo")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(fx.proxy.metrics.requests_http1.get() >= 2);
    fx.proxy.stop().await;
}

#[tokio::test]
async fn http2_client_gets_http2_end_to_end_when_the_upstream_speaks_h2c() {
    let fx = Fixture::new(false).await;
    let stream = tls_connect(fx.proxy.addr, fx.config(&[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut sender = h2(stream).await;
    // Several concurrent streams on one connection.
    let mut pending = Vec::new();
    for i in 0..5 {
        let req = Request::post("https://app.example/echo")
            .body(Full::new(Bytes::from(format!("stream {i}"))))
            .unwrap();
        pending.push(sender.send_request(req));
    }
    for (i, response) in futures_util::future::join_all(pending)
        .await
        .into_iter()
        .enumerate()
    {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), Version::HTTP_2);
        let report = text(response).await;
        assert!(report.contains("version: HTTP/2.0\n"), "{report}");
        assert!(
            report.contains("uri: http://app.example/echo\n"),
            "{report}"
        );
        assert!(report.contains("x-forwarded-for: 127.0.0.1\n"), "{report}");
        assert!(report.contains("x-forwarded-proto: https\n"), "{report}");
        assert!(report.contains(&format!("body: stream {i}\n")), "{report}");
    }
    assert_eq!(fx.proxy.metrics.requests_http2.get(), 5);
    fx.proxy.stop().await;
}

#[tokio::test]
async fn http2_client_falls_back_to_http1_for_an_http1_only_upstream() {
    let fx = Fixture::new(true).await;
    let stream = tls_connect(fx.proxy.addr, fx.config(&[b"h2"]))
        .await
        .unwrap();
    let mut sender = h2(stream).await;
    for _ in 0..2 {
        let req = Request::get("https://app.example/echo")
            .body(Full::default())
            .unwrap();
        let response = sender.send_request(req).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), Version::HTTP_2);
        let report = text(response).await;
        assert!(report.contains("version: HTTP/1.1\n"), "{report}");
        assert!(report.contains("host: app.example\n"), "{report}");
    }
    fx.proxy.stop().await;
}

#[tokio::test]
async fn pinned_http2_upstream_protocol_is_used_for_http1_clients_too() {
    let pki = Pki::new("test CA");
    let mut volume = SecretVolume::new();
    volume.project_bundle(&pki.server("first"));
    let upstream = Upstream::start(false).await;
    let mut options =
        ProxyOptions::new("127.0.0.1:0".parse().unwrap(), upstream.addr, volume.path());
    options.health_addr = "127.0.0.1:0".parse().unwrap();
    options.reload_interval = Duration::from_millis(20);
    options.upstream_protocol = UpstreamProtocol::Http2;
    let proxy = start_proxy_with(options).await;
    proxy.wait_ready().await;
    let config = client_config(&pki.ca_pem, &[b"http/1.1"], None);
    let report = try_get(proxy.addr, config, "/echo").await.unwrap();
    assert!(report.contains("version: HTTP/2.0\n"), "{report}");
    assert!(report.contains("uri: http://localhost/echo\n"), "{report}");
    proxy.stop().await;
}

#[tokio::test]
async fn responses_stream_through_without_buffering() {
    let fx = Fixture::new(false).await;
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let stream = tls_connect(fx.proxy.addr, fx.config(&[alpn]))
            .await
            .unwrap();
        let response = if alpn == b"h2" {
            let mut sender = h2(stream).await;
            let req = Request::get("https://localhost/stream")
                .body(Full::default())
                .unwrap();
            sender.send_request(req).await.unwrap()
        } else {
            h1(stream)
                .await
                .send_request(h1_get("/stream"))
                .await
                .unwrap()
        };
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = tokio::time::timeout(DEADLINE, body.frame())
            .await
            .expect("the first chunk arrives before the response is complete")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(&first[..], b"first\n");
        fx.upstream.state.stream_gate.notify_one();
        let rest = tokio::time::timeout(DEADLINE, body.collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(&rest[..], b"more 0\nmore 1\nmore 2\n");
    }
    fx.proxy.stop().await;
}

#[tokio::test]
async fn websocket_upgrade_passes_through() {
    let fx = Fixture::new(false).await;
    let stream = tls_connect(fx.proxy.addr, fx.config(&[b"http/1.1"]))
        .await
        .unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("wss://localhost/ws", stream)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    eventually("the tunnel is counted", || async {
        fx.proxy.metrics.open_tunnels.get() == 1
    })
    .await;
    for i in 0..3 {
        ws.send(Message::text(format!("ping {i}"))).await.unwrap();
        let echoed = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed, Message::text(format!("ping {i}")));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(echoed, Message::binary(vec![0u8, 1, 2, 255]));
    ws.close(None).await.unwrap();
    drop(ws);
    eventually("the tunnel closes", || async {
        fx.proxy.metrics.open_tunnels.get() == 0
    })
    .await;
    fx.proxy.stop().await;
}

#[tokio::test]
async fn kubelet_rotation_serves_the_new_certificate_and_keeps_open_connections() {
    let mut fx = Fixture::new(false).await;
    let config = fx.config(&[b"http/1.1"]);
    let old_stream = tls_connect(fx.proxy.addr, config.clone()).await.unwrap();
    assert_eq!(served_cert(&old_stream), fx.first.der);
    let mut old_conn = h1(old_stream).await;
    assert_eq!(
        old_conn
            .send_request(h1_get("/echo"))
            .await
            .unwrap()
            .status(),
        200
    );
    let h2_stream = tls_connect(fx.proxy.addr, fx.config(&[b"h2"]))
        .await
        .unwrap();
    let mut old_h2 = h2(h2_stream).await;

    let second = fx.pki.server("second");
    fx.volume.project_bundle(&second);
    assert!(
        std::fs::symlink_metadata(fx.volume.path().join("tls.crt"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the volume uses kubelet's symlink layout"
    );
    eventually("new connections get the new certificate", || async {
        served_cert(&tls_connect(fx.proxy.addr, config.clone()).await.unwrap()) == second.der
    })
    .await;

    // Connections opened before the rotation still work.
    let response = old_conn.send_request(h1_get("/echo")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(text(response).await.contains("version: HTTP/1.1"));
    let req = Request::get("https://localhost/echo")
        .body(Full::default())
        .unwrap();
    assert_eq!(old_h2.send_request(req).await.unwrap().status(), 200);

    let metrics = health_get(fx.proxy.health, "/metrics").await.1;
    assert_eq!(
        metric(&metrics, "certweave_proxy_cert_reloads_total"),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "certweave_proxy_cert_reload_errors_total"),
        Some(0.0)
    );
    fx.proxy.stop().await;
}

#[tokio::test]
async fn a_broken_rotation_keeps_the_old_certificate_serving() {
    let mut fx = Fixture::new(false).await;
    let config = fx.config(&[b"http/1.1"]);
    let errors = || async {
        let text = health_get(fx.proxy.health, "/metrics").await.1;
        metric(&text, "certweave_proxy_cert_reload_errors_total").unwrap()
    };

    // A key that does not belong to the certificate.
    let other = fx.pki.server("other");
    fx.volume.project(&[
        ("tls.crt", other.cert_pem.as_bytes()),
        ("tls.key", fx.first.key_pem.as_bytes()),
    ]);
    eventually("the mismatched bundle is rejected", || async {
        errors().await == 1.0
    })
    .await;
    let stream = tls_connect(fx.proxy.addr, config.clone()).await.unwrap();
    assert_eq!(served_cert(&stream), fx.first.der);
    assert_eq!(
        h1(stream)
            .await
            .send_request(h1_get("/echo"))
            .await
            .unwrap()
            .status(),
        200
    );

    // Unreadable content.
    fx.volume
        .project(&[("tls.crt", b"garbage"), ("tls.key", b"more garbage")]);
    eventually("the garbage bundle is rejected", || async {
        errors().await == 2.0
    })
    .await;
    assert_eq!(
        served_cert(&tls_connect(fx.proxy.addr, config.clone()).await.unwrap()),
        fx.first.der
    );
    assert_eq!(
        health_get(fx.proxy.health, "/readyz").await.0,
        200,
        "still ready"
    );

    // A good bundle afterwards is picked up.
    let third = fx.pki.server("third");
    fx.volume.project_bundle(&third);
    eventually("the good bundle is loaded", || async {
        served_cert(&tls_connect(fx.proxy.addr, config.clone()).await.unwrap()) == third.der
    })
    .await;
    assert_eq!(errors().await, 2.0);
    fx.proxy.stop().await;
}

#[tokio::test]
async fn mutual_tls_accepts_clients_of_the_ca_and_rejects_others() {
    let pki = Pki::new("test CA");
    let clients = Pki::new("client CA");
    let strangers = Pki::new("stranger CA");
    let mut volume = SecretVolume::new();
    volume.project_bundle(&pki.server("server"));
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &clients.ca_pem).unwrap();
    let upstream = Upstream::start(false).await;
    let proxy = start_proxy(volume.path(), upstream.addr, Some(ca_file)).await;
    proxy.wait_ready().await;

    let good = clients.client("alice");
    let report = try_get(
        proxy.addr,
        client_config(&pki.ca_pem, &[b"http/1.1"], Some(&good)),
        "/echo",
    )
    .await
    .unwrap();
    assert!(report.contains("x-forwarded-proto: https"), "{report}");

    let before = upstream.state.requests.load(Ordering::SeqCst);
    let anonymous = try_get(
        proxy.addr,
        client_config(&pki.ca_pem, &[b"http/1.1"], None),
        "/echo",
    )
    .await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate was served: {anonymous:?}"
    );
    let stranger = strangers.client("mallory");
    let foreign = try_get(
        proxy.addr,
        client_config(&pki.ca_pem, &[b"http/1.1"], Some(&stranger)),
        "/echo",
    )
    .await;
    assert!(
        foreign.is_err(),
        "a client of another CA was served: {foreign:?}"
    );
    assert_eq!(
        upstream.state.requests.load(Ordering::SeqCst),
        before,
        "rejected clients never reach the upstream"
    );
    assert!(proxy.metrics.handshake_errors.get() >= 2);
    proxy.stop().await;
}

#[tokio::test]
async fn an_unusable_client_ca_fails_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, "no certificate here").unwrap();
    let mut options = ProxyOptions::new(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:1".parse().unwrap(),
        tmp.path(),
    );
    options.health_addr = "127.0.0.1:0".parse().unwrap();
    options.client_ca = Some(ca_file);
    let err = Proxy::bind(options)
        .await
        .err()
        .expect("bind fails")
        .to_string();
    assert!(
        err.contains("--client-ca") && err.contains("no PEM certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn not_ready_until_a_valid_bundle_exists() {
    let pki = Pki::new("test CA");
    let mut volume = SecretVolume::new();
    let upstream = Upstream::start(false).await;
    let proxy = start_proxy(volume.path(), upstream.addr, None).await;

    let (status, body) = health_get(proxy.health, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("no valid certificate"), "{body}");
    assert_eq!(health_get(proxy.health, "/healthz").await.0, 200);

    // A client connecting now waits rather than being refused or failing.
    let config = client_config(&pki.ca_pem, &[b"http/1.1"], None);
    let early = tokio::spawn(try_get(proxy.addr, config.clone(), "/echo"));

    // A broken bundle is not enough.
    volume.project(&[("tls.crt", b"junk"), ("tls.key", b"junk")]);
    eventually("the junk is rejected", || async {
        proxy.metrics.cert_reload_errors.get() == 1
    })
    .await;
    assert_eq!(health_get(proxy.health, "/readyz").await.0, 503);
    assert!(!early.is_finished());

    let bundle = pki.server("late");
    volume.project_bundle(&bundle);
    proxy.wait_ready().await;
    let report = tokio::time::timeout(DEADLINE, early)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(report.contains("x-forwarded-proto: https"), "{report}");
    let stream = tls_connect(proxy.addr, config).await.unwrap();
    assert_eq!(served_cert(&stream), bundle.der);
    proxy.stop().await;
}

#[tokio::test]
async fn an_unreachable_upstream_gives_502() {
    let pki = Pki::new("test CA");
    let mut volume = SecretVolume::new();
    volume.project_bundle(&pki.server("server"));
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let proxy = start_proxy(volume.path(), closed_addr, None).await;
    proxy.wait_ready().await;
    for alpn in [&b"http/1.1"[..], &b"h2"[..]] {
        let stream = tls_connect(proxy.addr, client_config(&pki.ca_pem, &[alpn], None))
            .await
            .unwrap();
        let response = if alpn == b"h2" {
            let req = Request::get("https://localhost/")
                .body(Full::default())
                .unwrap();
            h2(stream).await.send_request(req).await.unwrap()
        } else {
            h1(stream).await.send_request(h1_get("/")).await.unwrap()
        };
        assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    }
    assert_eq!(proxy.metrics.upstream_errors.get(), 2);
    proxy.stop().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_refuses_new_connections() {
    let fx = Fixture::new(false).await;
    let stream = tls_connect(fx.proxy.addr, fx.config(&[b"http/1.1"]))
        .await
        .unwrap();
    let mut sender = h1(stream).await;
    let in_flight = tokio::spawn(async move { sender.send_request(h1_get("/slow")).await });
    tokio::time::timeout(DEADLINE, fx.upstream.state.slow_started.notified())
        .await
        .unwrap();

    let RunningProxy {
        addr,
        health,
        mut shutdown,
        task,
        ..
    } = fx.proxy;
    shutdown.take().unwrap().send(()).unwrap();
    eventually("new connections are refused", || async {
        TcpStream::connect(addr).await.is_err()
    })
    .await;
    let (status, body) = health_get(health, "/readyz").await;
    assert_eq!(status, 503, "{body}");

    let response = tokio::time::timeout(DEADLINE, in_flight)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(text(response).await, "slow done");
    tokio::time::timeout(DEADLINE, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// A port that was free a moment ago (for the binary, which needs ports on
/// its command line).
fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The status of a health GET, or `None` while nothing listens.
async fn health_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "health")
        .body(Empty::<Bytes>::new())
        .unwrap();
    Some(sender.send_request(req).await.ok()?.status().as_u16())
}

/// Kills the child if the test fails half-way.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_and_drains_on_sigterm() {
    let pki = Pki::new("test CA");
    let mut volume = SecretVolume::new();
    volume.project_bundle(&pki.server("server"));
    let upstream = Upstream::start(false).await;
    let (listen, health) = (free_port(), free_port());
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
        .arg("proxy")
        .args(["--listen", &listen.to_string()])
        .args(["--upstream", &upstream.addr.to_string()])
        .arg("--cert-dir")
        .arg(volume.path())
        .args(["--health-addr", &health.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    eventually("the binary is ready", || async {
        health_status(health, "/readyz").await == Some(200)
    })
    .await;
    let config = client_config(&pki.ca_pem, &[b"http/1.1"], None);
    let report = try_get(listen, config.clone(), "/echo").await.unwrap();
    assert!(report.contains("x-forwarded-proto: https"), "{report}");

    let mut sender = h1(tls_connect(listen, config).await.unwrap()).await;
    let in_flight = tokio::spawn(async move { sender.send_request(h1_get("/slow")).await });
    tokio::time::timeout(DEADLINE, upstream.state.slow_started.notified())
        .await
        .unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let response = tokio::time::timeout(DEADLINE, in_flight)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200, "the in-flight request completes");
    assert_eq!(text(response).await, "slow done");
    let mut status = None;
    eventually("the binary exits", || {
        status = child.0.try_wait().unwrap();
        std::future::ready(status.is_some())
    })
    .await;
    assert!(status.unwrap().success(), "exit status {status:?}");
}

#[test]
fn the_binary_exits_2_on_an_unusable_client_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
        .arg("proxy")
        .args(["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"])
        .arg("--cert-dir")
        .arg(tmp.path())
        .arg("--client-ca")
        .arg(&ca)
        .args(["--health-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--client-ca"), "{stderr}");
}

// ---------------------------------------------------------------------------
// TCP mode

/// A TCP upstream that speaks first (as databases do): it greets, reads
/// until the client half-closes, answers with the byte count and closes.
struct TcpUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl TcpUpstream {
    async fn start() -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    conn.write_all(b"hello\n").await.unwrap();
                    let mut received = Vec::new();
                    if conn.read_to_end(&mut received).await.is_err() {
                        return;
                    }
                    let answer =
                        format!("got {} bytes, {:08x}", received.len(), checksum(&received));
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Self { addr, accepted }
    }
}

fn checksum(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0u32, |sum, b| sum.rotate_left(5) ^ u32::from(*b))
}

async fn start_tcp_proxy(
    cert_dir: &Path,
    upstream: SocketAddr,
    client_ca: Option<PathBuf>,
) -> RunningProxy {
    let mut options = ProxyOptions::new("127.0.0.1:0".parse().unwrap(), upstream, cert_dir);
    options.mode = ProxyMode::Tcp;
    options.health_addr = "127.0.0.1:0".parse().unwrap();
    options.client_ca = client_ca;
    options.reload_interval = Duration::from_millis(20);
    options.drain_timeout = Duration::from_secs(2);
    let proxy = start_proxy_with(options).await;
    proxy.wait_ready().await;
    proxy
}

/// A TCP-mode proxy with its certificate volume and upstream.
struct TcpFixture {
    pki: Pki,
    first: Bundle,
    volume: SecretVolume,
    upstream: TcpUpstream,
    proxy: RunningProxy,
}

impl TcpFixture {
    async fn new(client_ca: Option<PathBuf>) -> Self {
        let pki = Pki::new("test CA");
        let mut volume = SecretVolume::new();
        let first = pki.server("first");
        volume.project_bundle(&first);
        let upstream = TcpUpstream::start().await;
        let proxy = start_tcp_proxy(volume.path(), upstream.addr, client_ca).await;
        Self {
            pki,
            first,
            volume,
            upstream,
            proxy,
        }
    }

    /// A client trusting the proxy's CA, offering `alpn`, without a
    /// certificate of its own.
    fn config(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        client_config(&self.pki.ca_pem, alpn, None)
    }
}

/// Reads the upstream's greeting (it speaks first).
async fn read_greeting(stream: &mut TlsStream<TcpStream>) {
    use tokio::io::AsyncReadExt;
    let mut greeting = [0u8; 6];
    stream.read_exact(&mut greeting).await.unwrap();
    assert_eq!(&greeting, b"hello\n", "the upstream speaks first");
}

/// One exchange over TLS: read the greeting, send `payload`, half-close,
/// read the answer to the end.
async fn tcp_exchange(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    payload: &[u8],
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tls_connect(addr, config).await?;
    let mut greeting = [0u8; 6];
    stream.read_exact(&mut greeting).await?;
    assert_eq!(&greeting, b"hello\n", "the upstream speaks first");
    stream.write_all(payload).await?;
    stream.shutdown().await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn tcp_mode_pipes_bytes_both_ways_and_passes_half_close_on() {
    let fx = TcpFixture::new(None).await;
    let config = fx.config(&[]);
    let payload: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let answer = tcp_exchange(fx.proxy.addr, config.clone(), &payload)
        .await
        .unwrap();
    assert_eq!(
        answer,
        format!("got 1048576 bytes, {:08x}", checksum(&payload))
    );
    // Many at once, each on its own upstream connection.
    let mut tasks = Vec::new();
    for i in 0..20usize {
        let (addr, config) = (fx.proxy.addr, config.clone());
        tasks.push(tokio::spawn(async move {
            let payload = vec![i as u8; 1000 + i];
            let answer = tcp_exchange(addr, config, &payload).await.unwrap();
            assert_eq!(
                answer,
                format!("got {} bytes, {:08x}", payload.len(), checksum(&payload))
            );
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(fx.upstream.accepted.load(Ordering::SeqCst), 21);
    eventually("every tunnel closed", || async {
        fx.proxy.metrics.open_tunnels.get() == 0
    })
    .await;
    fx.proxy.stop().await;
}

#[tokio::test]
async fn tcp_mode_refuses_clients_without_a_certificate_of_the_client_ca() {
    let clients = Pki::new("client CA");
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("client-ca.pem");
    std::fs::write(&ca_file, &clients.ca_pem).unwrap();
    let fx = TcpFixture::new(Some(ca_file)).await;
    let pki = &fx.pki;

    let anonymous = tcp_exchange(fx.proxy.addr, client_config(&pki.ca_pem, &[], None), b"x").await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate was served: {anonymous:?}"
    );
    let stranger = Pki::new("stranger CA").client("mallory");
    let foreign = tcp_exchange(
        fx.proxy.addr,
        client_config(&pki.ca_pem, &[], Some(&stranger)),
        b"x",
    )
    .await;
    assert!(
        foreign.is_err(),
        "a client of another CA was served: {foreign:?}"
    );
    assert_eq!(
        fx.upstream.accepted.load(Ordering::SeqCst),
        0,
        "refused clients never reach the upstream"
    );
    let alice = clients.client("alice");
    let answer = tcp_exchange(
        fx.proxy.addr,
        client_config(&pki.ca_pem, &[], Some(&alice)),
        b"ping",
    )
    .await
    .unwrap();
    assert!(answer.starts_with("got 4 bytes"), "{answer}");
    assert!(fx.proxy.metrics.handshake_errors.get() >= 2);
    fx.proxy.stop().await;
}

#[tokio::test]
async fn tcp_mode_serves_a_rotated_certificate_and_keeps_open_tunnels() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut fx = TcpFixture::new(None).await;
    let config = fx.config(&[]);
    let mut open = tls_connect(fx.proxy.addr, config.clone()).await.unwrap();
    assert_eq!(served_cert(&open), fx.first.der);
    read_greeting(&mut open).await;

    let second = fx.pki.server("second");
    fx.volume.project_bundle(&second);
    eventually("new connections get the new certificate", || async {
        served_cert(&tls_connect(fx.proxy.addr, config.clone()).await.unwrap()) == second.der
    })
    .await;
    // The tunnel opened before the rotation still carries bytes.
    open.write_all(b"after rotation").await.unwrap();
    open.shutdown().await.unwrap();
    let mut answer = String::new();
    open.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("got 14 bytes"), "{answer}");
    fx.proxy.stop().await;
}

#[tokio::test]
async fn tcp_mode_drains_open_tunnels_then_closes_them_and_counts_unreachable_upstreams() {
    use tokio::io::AsyncReadExt;
    let fx = TcpFixture::new(None).await;
    let config = fx.config(&[]);
    // A tunnel that never ends on its own (the client never half-closes).
    let mut idle = tls_connect(fx.proxy.addr, config.clone()).await.unwrap();
    read_greeting(&mut idle).await;
    eventually("the tunnel is counted", || async {
        fx.proxy.metrics.open_tunnels.get() == 1
    })
    .await;
    let started = tokio::time::Instant::now();
    fx.proxy.stop().await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2) - Duration::from_millis(100),
        "shutdown waited {waited:?} for the open tunnel (drain timeout 2 s)"
    );
    let mut rest = Vec::new();
    let end = tokio::time::timeout(DEADLINE, idle.read_to_end(&mut rest)).await;
    assert!(end.is_ok(), "the tunnel was closed at the end of the drain");

    // Nothing listens upstream: the client is closed and it is counted.
    let nowhere = free_port();
    let proxy = start_tcp_proxy(fx.volume.path(), nowhere, None).await;
    let mut stream = tls_connect(proxy.addr, config).await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok() && buf.is_empty(),
        "closed without data: {read:?}"
    );
    eventually("the failure is counted", || async {
        proxy.metrics.upstream_errors.get() == 1
    })
    .await;
    proxy.stop().await;
}

#[tokio::test]
async fn tcp_mode_offers_no_application_protocol() {
    let fx = TcpFixture::new(None).await;
    let stream = tls_connect(fx.proxy.addr, fx.config(&[b"h2", b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(
        stream.get_ref().1.alpn_protocol(),
        None,
        "a TCP-mode proxy cannot know the upstream speaks HTTP"
    );
    fx.proxy.stop().await;
}

/// Two Host lines are refused (RFC 9112 §3.2), so the application never
/// reads another host than the proxy did; an absolute-form target's
/// authority wins over Host (found by fuzz/fuzz_targets/proxy_headers.rs).
#[tokio::test]
async fn host_headers_are_one_and_the_one_the_proxy_used() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = Fixture::new(false).await;
    let exchange = |request: &'static [u8]| {
        let config = fx.config(&[b"http/1.1"]);
        let addr = fx.proxy.addr;
        async move {
            let mut stream = tls_connect(addr, config).await.unwrap();
            stream.write_all(request).await.unwrap();
            let mut answer = Vec::new();
            let _ = tokio::time::timeout(DEADLINE, stream.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        }
    };
    let before = fx.upstream.state.requests.load(Ordering::SeqCst);
    let twice = exchange(
        b"GET /echo HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(twice.starts_with("HTTP/1.1 400"), "{twice}");
    assert!(twice.contains("more than one Host header"), "{twice}");
    assert_eq!(
        fx.upstream.state.requests.load(Ordering::SeqCst),
        before,
        "never forwarded"
    );
    let absolute = exchange(
        b"GET http://a.example.com/echo HTTP/1.1\r\nHost: b.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(absolute.starts_with("HTTP/1.1 200"), "{absolute}");
    assert!(absolute.contains("host: a.example.com"), "{absolute}");
    assert!(!absolute.contains("b.example.com"), "{absolute}");
}
