//! TCP mode (`--mode tcp`): TLS in front of an upstream that does not speak
//! HTTP (a database, a message broker). Each client connection, once its
//! handshake (and client certificate, with `--client-ca`) is done, gets one
//! TCP connection to the upstream, and bytes are copied both ways; either
//! side's end of stream is passed on as a half-close, so protocols that
//! finish a request by closing their sending side work.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::forward::Forwarder;
use super::ProxyMetrics;

/// Deadline for connecting to the upstream.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pipes one client connection to a new upstream connection until both
/// sides are done (or shutdown closes every tunnel). A client whose
/// upstream cannot be reached is closed, and the failure counted in
/// `certweave_proxy_upstream_errors_total`.
pub(super) async fn pipe(
    client: TlsStream<TcpStream>,
    peer: SocketAddr,
    upstream: SocketAddr,
    forwarder: Arc<Forwarder>,
    metrics: ProxyMetrics,
) {
    let connected = tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, TcpStream::connect(upstream));
    let upstream_stream = match connected.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            metrics.upstream_errors.inc();
            tracing::warn!(%peer, %upstream, error = %e, "cannot connect to the upstream; closing the client's connection");
            return;
        }
        Err(_) => {
            metrics.upstream_errors.inc();
            tracing::warn!(%peer, %upstream, timeout = ?UPSTREAM_CONNECT_TIMEOUT, "the upstream did not accept in time; closing the client's connection");
            return;
        }
    };
    let _ = upstream_stream.set_nodelay(true);
    forwarder
        .tunnels()
        .pipe(client, upstream_stream, metrics)
        .await;
}
