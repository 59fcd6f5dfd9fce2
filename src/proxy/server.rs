//! The proxy's two listeners and its life cycle: start, serve, drain.
//!
//! Both listeners are bound by [`Proxy::bind`], so a port conflict fails at
//! start-up. The TLS listener accepts nothing until the first valid bundle
//! is loaded (connections made before then wait in the kernel's backlog and
//! are served once it arrives); the health port answers from the start.
//! Accepting, handshakes and HTTP per connection are [`crate::tls::serve`]'s.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::forward::Forwarder;
use super::health::{self, Readiness};
use super::tls_config;
use super::upstream::Upstream;
use super::{tcp, ProxyError, ProxyMetrics, ProxyMode, ProxyOptions};
use crate::store::files::{CERT_FILE, KEY_FILE};
use crate::tls::serve::{ConnectionCounters, Settings, Threads, TlsServer};
use crate::tls::{ReloadOutcome, ReloadingCert};

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
    server: TlsServer,
    health_listener: TcpListener,
    cert_dir: PathBuf,
    certs: Arc<ReloadingCert>,
    forwarder: Arc<Forwarder>,
    readiness: Arc<Readiness>,
    metrics: ProxyMetrics,
    reload_interval: Duration,
    drain_timeout: Duration,
    mode: ProxyMode,
    upstream: SocketAddr,
}

impl Proxy {
    /// Checks `--client-ca` and binds both listeners. Nothing is served and
    /// the certificate directory is not read until [`Proxy::run`].
    pub async fn bind(options: ProxyOptions) -> Result<Self, ProxyError> {
        let metrics = ProxyMetrics::new();
        let certs = ReloadingCert::empty(
            &options.cert_dir.join(CERT_FILE),
            &options.cert_dir.join(KEY_FILE),
        );
        let mut config = tls_config::server_config(certs.clone(), options.client_ca.as_deref())?;
        if options.mode == ProxyMode::Tcp {
            // The upstream's protocol is unknown: offering h2 or http/1.1
            // would have clients speak one the upstream may not.
            config.alpn_protocols.clear();
        }
        let listener = bind(options.listen, "--listen").await?;
        let health_listener = bind(options.health_addr, "--health-addr").await?;
        let upstream = Upstream::new(options.upstream, options.upstream_protocol);
        let readiness = Arc::new(Readiness {
            certs: certs.clone(),
            cert_dir: options.cert_dir.clone(),
            accepting: false.into(),
            metrics: metrics.clone(),
        });
        let settings = Settings {
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_timeout: HEADER_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS,
            upgrades: true,
            threads: Threads::Runtime,
            counters: Some(ConnectionCounters {
                accepted: metrics.connections.clone(),
                open: metrics.open_connections.clone(),
                handshake_errors: metrics.handshake_errors.clone(),
            }),
        };
        Ok(Self {
            server: TlsServer::new(listener, Arc::new(config), settings),
            health_listener,
            cert_dir: options.cert_dir,
            certs,
            forwarder: Arc::new(Forwarder::new(upstream, metrics.clone())),
            readiness,
            metrics,
            reload_interval: options.reload_interval,
            drain_timeout: options.drain_timeout,
            mode: options.mode,
            upstream: options.upstream,
        })
    }

    /// The TLS listener's address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// The health port's address.
    pub fn health_addr(&self) -> io::Result<SocketAddr> {
        self.health_listener.local_addr()
    }

    /// The proxy's metrics.
    pub fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }

    /// The certificate directory watched (`--cert-dir`).
    pub fn cert_dir(&self) -> &Path {
        &self.cert_dir
    }

    /// The bundle currently served from the certificate directory.
    pub fn certs(&self) -> &Arc<ReloadingCert> {
        &self.certs
    }

    /// Serves until `shutdown` completes; then stops accepting, reports not
    /// ready, and waits up to the drain timeout for open requests and
    /// upgraded connections to finish before closing what is left.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let watcher = tokio::spawn(self.certs.clone().watch(
            self.reload_interval,
            report_reload(self.cert_dir.clone(), self.metrics.clone()),
        ));
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
            self.readiness.accepting.store(true, Ordering::Release);
            tracing::info!(listen = %self.server.local_addr()?, mode = self.mode.as_str(), "proxy accepting TLS connections");
            let forwarder = self.forwarder.clone();
            let draining = match self.mode {
                ProxyMode::Http => {
                    let make_service = move |peer| {
                        let forwarder = forwarder.clone();
                        service_fn(move |req| {
                            let forwarder = forwarder.clone();
                            async move { forwarder.forward(peer, req).await }
                        })
                    };
                    self.server.serve_until(make_service, &mut shutdown).await?
                }
                ProxyMode::Tcp => {
                    let (upstream, metrics) = (self.upstream, self.metrics.clone());
                    let pipe = move |client, peer| {
                        tcp::pipe(client, peer, upstream, forwarder.clone(), metrics.clone())
                    };
                    self.server.serve_streams_until(pipe, &mut shutdown).await?
                }
            };
            self.readiness.accepting.store(false, Ordering::Release);
            tracing::info!(
                connections = self.metrics.open_connections.get(),
                tunnels = self.forwarder.tunnels().open(),
                "shutting down: draining connections"
            );
            let tunnels = self.forwarder.tunnels();
            let drained = draining.finish(self.drain_timeout, tunnels.idle()).await;
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

/// Logs each look at the certificate directory worth knowing and counts it.
fn report_reload(
    dir: PathBuf,
    metrics: ProxyMetrics,
) -> impl FnMut(&ReloadingCert, ReloadOutcome) + Send + 'static {
    move |certs, outcome| match outcome {
        ReloadOutcome::Unchanged => {}
        ReloadOutcome::Waiting => tracing::info!(
            dir = %dir.display(),
            "waiting for {CERT_FILE} and {KEY_FILE}; not ready until they exist"
        ),
        ReloadOutcome::InFlux => tracing::debug!(
            dir = %dir.display(),
            "certificate files changed while being read; retrying"
        ),
        ReloadOutcome::Loaded => {
            metrics.cert_reloads.inc();
            metrics.cert_loaded.set(1);
            tracing::info!(dir = %dir.display(), "serving certificate loaded");
        }
        ReloadOutcome::Rejected(e) => {
            metrics.cert_reload_errors.inc();
            if certs.is_loaded() {
                tracing::warn!(error = %e, "new certificate bundle rejected; still serving the previous one");
            } else {
                tracing::warn!(error = %e, "certificate bundle rejected; not ready until a valid one appears");
            }
        }
    }
}

async fn bind(addr: SocketAddr, flag: &'static str) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Bind { flag, addr, source })
}
