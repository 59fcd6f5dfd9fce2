//! `certweave proxy`: the TLS-terminating sidecar the webhook injects into
//! Pods annotated `certweave.io/tls-proxy: "LISTEN:UPSTREAM"`, so an
//! application with no TLS code of its own is served over HTTPS.
//!
//! ```text
//! client ──TLS 1.2/1.3, h2 or http/1.1──► proxy (--listen) ──plain──► app (--upstream, loopback)
//!                                          │  tls.crt/tls.key from --cert-dir (the mounted Secret)
//!                                          └─ plain HTTP --health-addr: /healthz /readyz /metrics
//! ```
//!
//! One job per module:
//!
//! - `tls_config`: `--client-ca`, on top of [`crate::tls`]'s configuration.
//! - `server`: the listeners and the life cycle: waiting for a certificate,
//!   serving, draining. The certificate directory is watched with
//!   [`crate::tls::ReloadingCert`] (polled and reloaded when kubelet swaps
//!   the Secret's `..data` symlink; broken rotations are rejected and the
//!   previous bundle keeps serving) and connections are accepted by
//!   [`crate::tls::serve`], as the webhook's are.
//! - `forward`: one request to the upstream and back; upgrades as tunnels.
//! - `tcp`: TCP mode (`--mode tcp`): each connection piped to the upstream.
//! - `headers`: hop-by-hop headers and `X-Forwarded-*`.
//! - [`upstream`]: which HTTP version the upstream gets, and the pools.
//! - `health`: `/healthz`, `/readyz`, `/metrics` on a plain port.
//! - [`metrics`]: the Prometheus counters.
//!
//! The protocol spoken to the upstream is described in [`upstream`]: by
//! default HTTP/1.1, and HTTP/2 (h2c) for HTTP/2 clients only when the
//! upstream is found to speak it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod forward;
mod headers;
mod health;
pub mod metrics;
mod server;
mod tcp;
mod tls_config;
pub mod upstream;

pub use crate::api::wanted::pod::{ProxyMode, UnknownProxyMode};
pub use forward::ProxyBody;
pub use metrics::ProxyMetrics;
pub use server::{
    Proxy, HANDSHAKE_TIMEOUT, HEADER_TIMEOUT, MAX_CONCURRENT_STREAMS, MAX_CONNECTIONS,
};
pub use tcp::UPSTREAM_CONNECT_TIMEOUT;
pub use tls_config::ClientCaError;
pub use upstream::UpstreamProtocol;

/// Where the health port listens unless `--health-addr` says otherwise.
pub const DEFAULT_HEALTH_ADDR: &str = "0.0.0.0:9901";
/// How often the certificate directory is checked. Kubelet refreshes
/// Secret volumes about once a minute, so a second adds nothing noticeable.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// How long shutdown waits for open requests and tunnels. Below
/// Kubernetes' default 30 s termination grace period, so the proxy exits on
/// its own terms rather than being killed.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Everything the proxy needs to start.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// TLS listener.
    pub listen: SocketAddr,
    /// The plain HTTP application, normally on loopback.
    pub upstream: SocketAddr,
    /// Directory holding `tls.crt` and `tls.key` (a mounted Secret).
    pub cert_dir: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate
    /// signed by one of them (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// Plain HTTP listener for probes and metrics.
    pub health_addr: SocketAddr,
    /// HTTP (requests forwarded, headers added) or TCP (bytes piped).
    pub mode: ProxyMode,
    /// HTTP version spoken to the upstream (HTTP mode).
    pub upstream_protocol: UpstreamProtocol,
    /// How often the certificate directory is checked.
    pub reload_interval: Duration,
    /// How long shutdown waits for open connections.
    pub drain_timeout: Duration,
}

impl ProxyOptions {
    /// Options with every default: health on [`DEFAULT_HEALTH_ADDR`], no
    /// client certificates, automatic upstream protocol.
    pub fn new(listen: SocketAddr, upstream: SocketAddr, cert_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            upstream,
            cert_dir: cert_dir.into(),
            client_ca: None,
            health_addr: DEFAULT_HEALTH_ADDR
                .parse()
                .expect("the default health address parses"),
            mode: ProxyMode::Http,
            upstream_protocol: UpstreamProtocol::Auto,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr} ({flag}): {source}")]
    Bind {
        flag: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    ClientCa(#[from] ClientCaError),
}
