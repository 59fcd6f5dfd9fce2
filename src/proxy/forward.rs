//! One request from the client to the upstream and its response back.
//!
//! Bodies stream in both directions (nothing is buffered), the client's
//! `Host` / `:authority` is preserved, hop-by-hop headers are replaced (see
//! [`super::headers`]), and HTTP/1.1 upgrades (WebSocket) become a byte
//! tunnel between the two upgraded connections once the upstream answers
//! `101 Switching Protocols`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, EXPECT, HOST, UPGRADE};
use hyper::http::uri::{Authority, PathAndQuery, Scheme};
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};

use super::headers::{set_forwarded, strip_hop_by_hop, upgrade_protocol};
use super::upstream::Upstream;
use super::ProxyMetrics;

/// A response body: the upstream's, streamed, or one the proxy wrote.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Forwards requests to the upstream; shared by every connection.
pub(crate) struct Forwarder {
    upstream: Upstream,
    metrics: ProxyMetrics,
    tunnels: Tunnels,
}

impl Forwarder {
    pub(crate) fn new(upstream: Upstream, metrics: ProxyMetrics) -> Self {
        Self {
            upstream,
            metrics,
            tunnels: Tunnels::default(),
        }
    }

    /// The upgraded connections being relayed.
    pub(crate) fn tunnels(&self) -> &Tunnels {
        &self.tunnels
    }

    /// Forwards one request; never fails (upstream errors become 502).
    pub(crate) async fn forward(
        &self,
        client: SocketAddr,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let client_version = req.version();
        self.metrics.requests(client_version).inc();
        if req.method() == Method::CONNECT {
            return Ok(plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "certweave proxy: CONNECT is not forwarded\n",
            ));
        }
        // RFC 9112 §3.2: two Host lines are refused, so the application can
        // never read another host than the proxy did.
        if req.headers().get_all(HOST).iter().nth(1).is_some() {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                "certweave proxy: more than one Host header; send exactly one\n",
            ));
        }
        let upgrade = if client_version == Version::HTTP_11 {
            upgrade_protocol(req.headers())
        } else {
            None
        };
        let client_upgrade: Option<OnUpgrade> =
            upgrade.as_ref().map(|_| hyper::upgrade::on(&mut req));
        let http2 = upgrade.is_none() && self.upstream.use_http2(client_version).await;

        let (mut parts, body) = req.into_parts();
        let authority = request_authority(&parts.uri, &parts.headers)
            .unwrap_or_else(|| authority_of(self.upstream.addr()));
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        parts.uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query(path)
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"));
        strip_hop_by_hop(&mut parts.headers);
        // The client was already told to continue when the body was polled.
        parts.headers.remove(EXPECT);
        if let Some(protocol) = &upgrade {
            parts
                .headers
                .insert(CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(UPGRADE, protocol.clone());
        }
        if http2 {
            parts.headers.remove(HOST);
            parts.version = Version::HTTP_2;
        } else {
            // The authority the proxy went by: for an absolute-form target
            // that is the target's, whatever Host said (RFC 9112 §3.2.2).
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(HOST, host);
            }
            parts.version = Version::HTTP_11;
        }
        set_forwarded(&mut parts.headers, client.ip());

        let result = self
            .upstream
            .client(http2)
            .request(Request::from_parts(parts, body))
            .await;
        let mut response = match result {
            Ok(response) => response,
            Err(e) => {
                self.metrics.upstream_errors.inc();
                tracing::warn!(upstream = %self.upstream.addr(), error = %e, "upstream request failed");
                return Ok(plain(
                    StatusCode::BAD_GATEWAY,
                    "certweave proxy: the upstream did not answer\n",
                ));
            }
        };

        let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let upstream_protocol = upgrade_protocol(response.headers());
        strip_hop_by_hop(response.headers_mut());
        match (switched, client_upgrade, upstream_protocol) {
            (true, Some(client_upgrade), Some(protocol)) => {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("upgrade"));
                response.headers_mut().insert(UPGRADE, protocol);
                self.tunnels
                    .spawn(client_upgrade, upstream_upgrade, self.metrics.clone());
            }
            (true, _, _) => {
                // A 101 nobody asked for, or without saying to what: the
                // client could not make sense of it.
                self.metrics.upstream_errors.inc();
                tracing::warn!("upstream answered 101 without a matching upgrade request");
                return Ok(plain(
                    StatusCode::BAD_GATEWAY,
                    "certweave proxy: unexpected protocol switch from the upstream\n",
                ));
            }
            _ => {}
        }
        *response.version_mut() = client_version;
        Ok(response.map(Either::Left))
    }
}

/// The authority the client addressed: the request target's (HTTP/2
/// `:authority`, HTTP/1.1 absolute form), else the `Host` header.
fn request_authority(uri: &Uri, headers: &hyper::HeaderMap) -> Option<Authority> {
    if let Some(authority) = uri.authority() {
        return Some(authority.clone());
    }
    headers
        .get(HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
}

fn authority_of(addr: SocketAddr) -> Authority {
    Authority::try_from(addr.to_string().as_str()).expect("a socket address is an authority")
}

fn plain(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(
        body.as_bytes(),
    ))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Both-way copy until done, or until `close` is set.
async fn pipe_until_closed<C, U>(mut client: C, mut upstream: U, mut close: watch::Receiver<bool>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "tunnel ended with an error");
            }
        }
        _ = close.wait_for(|close| *close) => {}
    }
}

/// Upgraded connections and TCP-mode connections in flight, so shutdown
/// can wait for them and, past its deadline, close them.
#[derive(Debug)]
pub(crate) struct Tunnels {
    open: Arc<AtomicUsize>,
    changed: Arc<Notify>,
    close: watch::Sender<bool>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Self {
            open: Arc::default(),
            changed: Arc::default(),
            close: watch::Sender::new(false),
        }
    }
}

/// Decrements the open count when a tunnel task ends, however it ends.
struct TunnelGuard {
    open: Arc<AtomicUsize>,
    changed: Arc<Notify>,
    metrics: ProxyMetrics,
}

impl Drop for TunnelGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.metrics.open_tunnels.dec();
        self.changed.notify_waiters();
    }
}

impl Tunnels {
    /// Counts a tunnel as open until the guard drops; the receiver says
    /// when every tunnel must close.
    fn track(&self, metrics: ProxyMetrics) -> (TunnelGuard, watch::Receiver<bool>) {
        self.open.fetch_add(1, Ordering::AcqRel);
        metrics.open_tunnels.inc();
        let guard = TunnelGuard {
            open: self.open.clone(),
            changed: self.changed.clone(),
            metrics,
        };
        (guard, self.close.subscribe())
    }

    fn spawn(&self, client: OnUpgrade, upstream: OnUpgrade, metrics: ProxyMetrics) {
        let (guard, close) = self.track(metrics);
        tokio::spawn(async move {
            let _guard = guard;
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "upgrade did not complete");
                    return;
                }
            };
            pipe_until_closed(TokioIo::new(client), TokioIo::new(upstream), close).await;
        });
    }

    /// Copies both ways between `client` and `upstream` (each side's end of
    /// stream is passed on as a half-close) until both are done or every
    /// tunnel is closed; counted as an open tunnel meanwhile.
    pub(crate) async fn pipe<C, U>(&self, client: C, upstream: U, metrics: ProxyMetrics)
    where
        C: AsyncRead + AsyncWrite + Unpin,
        U: AsyncRead + AsyncWrite + Unpin,
    {
        let (_guard, close) = self.track(metrics);
        pipe_until_closed(client, upstream, close).await;
    }

    /// How many tunnels are open.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Completes when no tunnel is open.
    pub(crate) async fn idle(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Closes every open tunnel (the end of the shutdown grace period).
    pub(crate) fn close_all(&self) {
        self.close.send_replace(true);
    }
}
