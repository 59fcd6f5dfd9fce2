//! The connection to the application: which HTTP version to speak to it and
//! the pooled clients that carry requests.
//!
//! The upstream is a plain-text server on loopback, usually written without
//! any thought for HTTP/2. Speaking HTTP/2 to it whenever the client did
//! would break every HTTP/1.1-only application the moment a browser
//! negotiates `h2`, so the default, [`UpstreamProtocol::Auto`], decides per
//! request:
//!
//! - requests from HTTP/1.1 clients (and every `Upgrade`, e.g. WebSocket)
//!   go over pooled HTTP/1.1 connections;
//! - requests from HTTP/2 clients go over HTTP/2 cleartext with prior
//!   knowledge (h2c) **if the upstream speaks it**, else over HTTP/1.1.
//!   Whether it does is probed once, on the first HTTP/2 request that finds
//!   the upstream listening: the proxy sends the HTTP/2 connection preface
//!   and looks for a SETTINGS frame in reply. gRPC servers answer it, so
//!   gRPC (trailers, bidirectional streams) works end to end; HTTP/1.1
//!   servers answer with an HTTP/1.1 error or close, and get HTTP/1.1.
//!
//! [`UpstreamProtocol::Http1`] and [`UpstreamProtocol::Http2`] pin the
//! choice for applications that want it fixed.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;

/// How long connecting to the upstream may take before the request fails
/// with 502.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the h2c probe waits for the upstream's first bytes.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle pooled upstream connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Which HTTP version the proxy speaks to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, except HTTP/2 clients get h2c when the upstream speaks it.
    #[default]
    Auto,
    /// Always HTTP/1.1 (HTTP/2 clients are translated).
    Http1,
    /// Always HTTP/2 cleartext with prior knowledge, except `Upgrade`
    /// requests, which only exist in HTTP/1.1.
    Http2,
}

/// An unknown `--upstream-protocol` value.
#[derive(Debug, thiserror::Error)]
#[error("unknown upstream protocol {0:?}; expected auto, http1 or http2")]
pub struct UnknownProtocol(String);

impl FromStr for UpstreamProtocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "http1" | "http/1.1" | "h1" => Ok(Self::Http1),
            "http2" | "h2c" | "h2" => Ok(Self::Http2),
            _ => Err(UnknownProtocol(s.to_owned())),
        }
    }
}

impl fmt::Display for UpstreamProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Http1 => "http1",
            Self::Http2 => "http2",
        })
    }
}

/// Dials the one upstream address whatever the request's authority, so the
/// client's `Host` / `:authority` can be forwarded unchanged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedConnector {
    addr: SocketAddr,
}

impl tower::Service<Uri> for FixedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let addr = self.addr;
        Box::pin(async move {
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
            stream.set_nodelay(true)?;
            Ok(TokioIo::new(stream))
        })
    }
}

/// The upstream and the clients that reach it.
pub(crate) struct Upstream {
    addr: SocketAddr,
    mode: UpstreamProtocol,
    http1: Client<FixedConnector, Incoming>,
    http2: Client<FixedConnector, Incoming>,
    speaks_h2c: OnceCell<bool>,
}

impl Upstream {
    pub(crate) fn new(addr: SocketAddr, mode: UpstreamProtocol) -> Self {
        let connector = FixedConnector { addr };
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
        let http1 = builder.build(connector);
        let http2 = builder.http2_only(true).build(connector);
        Self {
            addr,
            mode,
            http1,
            http2,
            speaks_h2c: OnceCell::new(),
        }
    }

    /// The upstream address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether a request from a client speaking `client` (and not asking
    /// for an upgrade) goes to the upstream over HTTP/2.
    pub(crate) async fn use_http2(&self, client: Version) -> bool {
        match self.mode {
            UpstreamProtocol::Http1 => false,
            UpstreamProtocol::Http2 => true,
            UpstreamProtocol::Auto => client == Version::HTTP_2 && self.speaks_h2c().await,
        }
    }

    /// The pooled client for the chosen version.
    pub(crate) fn client(&self, http2: bool) -> &Client<FixedConnector, Incoming> {
        if http2 {
            &self.http2
        } else {
            &self.http1
        }
    }

    /// Probes once; a failed connection leaves the question open for the
    /// next request (the application may still be starting).
    async fn speaks_h2c(&self) -> bool {
        let addr = self.addr;
        match self
            .speaks_h2c
            .get_or_try_init(|| async move {
                let h2c = probe_h2c(addr).await?;
                tracing::info!(
                    upstream = %addr,
                    protocol = if h2c { "HTTP/2 (h2c)" } else { "HTTP/1.1" },
                    "upstream protocol for HTTP/2 clients"
                );
                Ok::<_, io::Error>(h2c)
            })
            .await
        {
            Ok(h2c) => *h2c,
            Err(e) => {
                tracing::debug!(upstream = %addr, error = %e, "h2c probe could not connect");
                false
            }
        }
    }
}

/// The HTTP/2 connection preface followed by an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// The frame type of SETTINGS in an HTTP/2 frame header.
const FRAME_SETTINGS: u8 = 0x4;

/// Whether the server at `addr` answers the HTTP/2 preface with HTTP/2.
/// `Err` only when it cannot be reached at all.
pub(crate) async fn probe_h2c(addr: SocketAddr) -> io::Result<bool> {
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    if stream.write_all(H2_PREFACE).await.is_err() {
        return Ok(false);
    }
    // A server's first frame must be SETTINGS (RFC 9113 section 3.4).
    let mut header = [0u8; 9];
    match tokio::time::timeout(PROBE_TIMEOUT, stream.read_exact(&mut header)).await {
        Ok(Ok(_)) => Ok(header[3] == FRAME_SETTINGS && header[4] & 0x1 == 0),
        Ok(Err(_)) | Err(_) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_protocol_names() {
        assert_eq!(
            "auto".parse::<UpstreamProtocol>().unwrap(),
            UpstreamProtocol::Auto
        );
        assert_eq!(
            "HTTP1".parse::<UpstreamProtocol>().unwrap(),
            UpstreamProtocol::Http1
        );
        assert_eq!(
            "h2c".parse::<UpstreamProtocol>().unwrap(),
            UpstreamProtocol::Http2
        );
        let err = "spdy".parse::<UpstreamProtocol>().unwrap_err().to_string();
        assert!(err.contains("auto, http1 or http2"), "{err}");
        assert_eq!(UpstreamProtocol::Http2.to_string(), "http2");
    }

    #[tokio::test]
    async fn probe_tells_http1_from_h2c_and_reports_unreachable() {
        let http1 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http1_addr = http1.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = http1.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        assert!(!probe_h2c(http1_addr).await.unwrap());

        let h2 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let h2_addr = h2.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = h2.accept().await.unwrap();
            let _ = s.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await;
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
        });
        assert!(probe_h2c(h2_addr).await.unwrap());

        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(probe_h2c(closed_addr).await.is_err());
    }
}
