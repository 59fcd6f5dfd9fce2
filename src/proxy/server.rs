//! The TLS listener: accepting, handshaking, serving HTTP on each
//! connection, and draining on shutdown.
//!
//! Both listeners are bound by [`Proxy::bind`], so a port conflict fails at
//! start-up. The TLS listener accepts nothing until the first valid bundle
//! is loaded (connections made before then wait in the kernel's backlog and
//! are served once it arrives); the health port answers from the start.
//! ALPN offers `h2` and `http/1.1`; each connection is then served as
//! whichever of the two the client speaks.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::forward::Forwarder;
use super::health::{self, Readiness};
use super::tls_config;
use super::upstream::Upstream;
use super::{CertDir, ProxyError, ProxyMetrics, ProxyOptions};

/// Deadline for a client's TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for an HTTP/1.1 client to send request headers (also how long
/// an idle keep-alive connection is kept).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Open client connections allowed at once; further clients wait in the
/// backlog. Bounds the sidecar's memory.
pub const MAX_CONNECTIONS: usize = 4096;
/// Concurrent HTTP/2 streams per client connection.
pub const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// A bound, not yet running proxy.
pub struct Proxy {
    listener: TcpListener,
    health_listener: TcpListener,
    acceptor: TlsAcceptor,
    certs: Arc<CertDir>,
    forwarder: Arc<Forwarder>,
    readiness: Arc<Readiness>,
    metrics: ProxyMetrics,
    reload_interval: Duration,
    drain_timeout: Duration,
}

impl Proxy {
    /// Checks `--client-ca` and binds both listeners. Nothing is served and
    /// the certificate directory is not read until [`Proxy::run`].
    pub async fn bind(options: ProxyOptions) -> Result<Self, ProxyError> {
        let metrics = ProxyMetrics::new();
        let certs = CertDir::new(&options.cert_dir);
        let config = tls_config::server_config(certs.clone(), options.client_ca.as_deref())?;
        let listener = bind(options.listen, "--listen").await?;
        let health_listener = bind(options.health_addr, "--health-addr").await?;
        let upstream = Upstream::new(options.upstream, options.upstream_protocol);
        let readiness = Arc::new(Readiness {
            certs: certs.clone(),
            accepting: false.into(),
            metrics: metrics.clone(),
        });
        Ok(Self {
            listener,
            health_listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
            forwarder: Arc::new(Forwarder::new(upstream, metrics.clone())),
            readiness,
            metrics,
            reload_interval: options.reload_interval,
            drain_timeout: options.drain_timeout,
        })
    }

    /// The TLS listener's address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The health port's address.
    pub fn health_addr(&self) -> io::Result<SocketAddr> {
        self.health_listener.local_addr()
    }

    /// The proxy's metrics.
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    /// The certificate directory and the bundle it currently serves.
    pub fn certs(&self) -> &Arc<CertDir> {
        &self.certs
    }

    /// Serves until `shutdown` completes; then stops accepting, reports not
    /// ready, and waits up to the drain timeout for open requests and
    /// upgraded connections to finish before closing what is left.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let watcher = tokio::spawn(
            self.certs
                .clone()
                .watch(self.reload_interval, self.metrics.clone()),
        );
        let (stop_health, health_stopped) = oneshot::channel::<()>();
        let health = tokio::spawn(health::serve(
            self.health_listener,
            self.readiness.clone(),
            async move {
                let _ = health_stopped.await;
            },
        ));
        tokio::pin!(shutdown);

        let loaded = tokio::select! {
            _ = self.certs.wait_loaded() => true,
            _ = &mut shutdown => false,
        };
        if loaded {
            let graceful = GracefulShutdown::new();
            self.readiness.accepting.store(true, Ordering::Release);
            tracing::info!(listen = %self.listener.local_addr()?, "proxy accepting TLS connections");
            accept_loop(
                &self.listener,
                &self.acceptor,
                &self.forwarder,
                &self.metrics,
                &graceful,
                &mut shutdown,
            )
            .await;
            self.readiness.accepting.store(false, Ordering::Release);
            drop(self.listener);
            tracing::info!(
                connections = self.metrics.open_connections.get(),
                tunnels = self.forwarder.tunnels().open(),
                "shutting down: draining connections"
            );
            let tunnels = self.forwarder.tunnels();
            let drained = tokio::time::timeout(self.drain_timeout, async {
                graceful.shutdown().await;
                tunnels.idle().await;
            })
            .await
            .is_ok();
            if !drained {
                tracing::warn!(
                    timeout = ?self.drain_timeout,
                    "connections still open after the drain timeout; closing them"
                );
                tunnels.close_all();
            }
        }
        watcher.abort();
        let _ = stop_health.send(());
        match health.await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind { flag, addr, source })
}

/// The HTTP connection builder. The protocol is detected from the first
/// bytes rather than taken from ALPN: hyper-util's detection is the only
/// way to serve HTTP/1.1 upgrades and HTTP/2 from one builder with graceful
/// shutdown, and it agrees with ALPN for every well-behaved client.
fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Counts a connection as open for as long as it lives.
struct OpenConnection(ProxyMetrics);

impl OpenConnection {
    fn new(metrics: &ProxyMetrics) -> Self {
        metrics.connections.inc();
        metrics.open_connections.inc();
        Self(metrics.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.dec();
    }
}

async fn accept_loop<F: Future<Output = ()>>(
    listener: &TcpListener,
    acceptor: &TlsAcceptor,
    forwarder: &Arc<Forwarder>,
    metrics: &ProxyMetrics,
    graceful: &GracefulShutdown,
    shutdown: &mut std::pin::Pin<&mut F>,
) {
    let builder = Arc::new(connection_builder());
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = shutdown.as_mut() => return,
            permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.as_mut() => return,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and similar: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let open = OpenConnection::new(metrics);
        let acceptor = acceptor.clone();
        let forwarder = forwarder.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let open = open;
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    open.0.handshake_errors.inc();
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    open.0.handshake_errors.inc();
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let forwarder = forwarder.clone();
                async move { forwarder.forward(peer, req).await }
            });
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
}
