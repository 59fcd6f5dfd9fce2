//! The accept loop of every TLS listener: accepting, handshaking, serving
//! HTTP on each connection, and draining on shutdown.
//!
//! Every stage a client controls is bounded: the TLS handshake and the
//! HTTP/1.1 request headers each have a deadline, and the number of open
//! connections is capped (further clients wait in the kernel's backlog, so
//! a flood costs queue space, not memory). Each connection is served as
//! whichever of HTTP/1.1 and HTTP/2 the client speaks; the protocol is
//! detected from the first bytes rather than taken from ALPN: hyper-util's
//! detection is the only way to serve HTTP/1.1 upgrades and HTTP/2 from one
//! builder with graceful shutdown, and it agrees with ALPN for every
//! well-behaved client.
//!
//! Shutdown is two steps, so a server can do its own part in between (the
//! proxy reports not ready and counts what is still open):
//! [`TlsServer::serve_until`] stops accepting and returns a [`Draining`],
//! and [`Draining::finish`] waits for open connections up to a deadline.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Body, Incoming};

use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use prometheus::{IntCounter, IntGauge};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::workers::Workers;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where accepted connections are served.
#[derive(Debug, Clone, Copy)]
pub enum Threads {
    /// As tasks of the runtime that accepts them.
    Runtime,
    /// Each on one of a worker thread per core, named `{name}-{i}`: see
    /// [`super::workers`] for why the webhook serves this way.
    PerCore { name: &'static str },
}

/// Counters a server keeps of its TLS connections.
#[derive(Debug, Clone)]
pub struct ConnectionCounters {
    /// TCP connections accepted.
    pub accepted: IntCounter,
    /// Connections currently open.
    pub open: IntGauge,
    /// Handshakes that failed or timed out.
    pub handshake_errors: IntCounter,
}

/// How a listener serves its connections.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Deadline for a client's TLS handshake.
    pub handshake_timeout: Duration,
    /// Deadline for an HTTP/1.1 client to send request headers (also how
    /// long an idle keep-alive connection is kept).
    pub header_timeout: Duration,
    /// Open connections allowed at once.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Whether HTTP/1.1 connections may be upgraded (WebSocket tunnels).
    pub upgrades: bool,
    pub threads: Threads,
    pub counters: Option<ConnectionCounters>,
}

/// A bound TLS listener, not yet accepting.
pub struct TlsServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    settings: Settings,
}

impl TlsServer {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>, settings: Settings) -> Self {
        Self {
            listener,
            acceptor: TlsAcceptor::from(config),
            settings,
        }
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves every connection with the service `make_service` builds for
    /// its peer, until `shutdown` completes; then closes the listener and
    /// returns what is still open. Fails only if the worker threads cannot
    /// start, before anything is accepted.
    pub async fn serve_until<M, S, B>(
        self,
        make_service: M,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<Draining>
    where
        M: Fn(SocketAddr) -> S + Send + Sync + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let executor = match self.settings.threads {
            Threads::Runtime => ConnExecutor::Runtime,
            Threads::PerCore { .. } => ConnExecutor::CurrentThread,
        };
        let http = Arc::new(Http {
            handshake: self.handshake(),
            builder: connection_builder(&self.settings, executor),
            upgrades: self.settings.upgrades,
            make_service,
        });
        self.accept_until(http, shutdown).await
    }

    /// Hands every connection, once its TLS handshake is done, to `handle`
    /// with its peer (TCP mode: no HTTP), until `shutdown` completes; then
    /// closes the listener. `handle` owns the stream: graceful shutdown
    /// does not track it, so the caller waits for what it handles itself.
    pub async fn serve_streams_until<H, F>(
        self,
        handle: H,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<Draining>
    where
        H: Fn(TlsStream<TcpStream>, SocketAddr) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let streams = Arc::new(Streams {
            handshake: self.handshake(),
            handle,
        });
        self.accept_until(streams, shutdown).await
    }

    fn handshake(&self) -> Handshake {
        Handshake {
            acceptor: self.acceptor.clone(),
            timeout: self.settings.handshake_timeout,
            errors: self
                .settings
                .counters
                .as_ref()
                .map(|c| c.handshake_errors.clone()),
        }
    }

    /// The accept loop, for either kind of connection.
    async fn accept_until<C: ServeConnection>(
        self,
        serving: Arc<C>,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<Draining> {
        let mut workers = match self.settings.threads {
            Threads::Runtime => None,
            Threads::PerCore { name } => {
                let serving = serving.clone();
                Some(Workers::spawn(name, worker_count(), move |accepted| {
                    serve_handed_over(serving.clone(), accepted)
                })?)
            }
        };
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(self.settings.max_connections));
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            };
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
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
            let held = Held {
                _permit: permit,
                _open: self.settings.counters.as_ref().map(OpenConnection::new),
            };
            let watcher = graceful.watcher();
            let Some(workers) = workers.as_mut() else {
                let serving = serving.clone();
                tokio::spawn(async move {
                    let _held = held;
                    serving.serve(tcp, peer, watcher).await;
                });
                continue;
            };
            let tcp = match tcp.into_std() {
                Ok(tcp) => tcp,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot hand the connection to a worker");
                    continue;
                }
            };
            let handed = HandedOver {
                tcp,
                peer,
                held,
                watcher,
            };
            if workers.dispatch(handed).is_err() {
                tracing::error!(%peer, "no connection worker is running; refusing the connection");
            }
        }
        drop(self.listener);
        if let Some(workers) = workers.as_mut() {
            workers.close();
        }
        Ok(Draining { graceful, workers })
    }
}

/// A server that no longer accepts, with the connections still open.
pub struct Draining {
    graceful: GracefulShutdown,
    workers: Option<Workers<HandedOver>>,
}

impl Draining {
    /// Asks every open connection to finish its requests and close, and
    /// waits up to `timeout` for that and for `also` (e.g. upgraded
    /// connections, which graceful shutdown does not track). Whatever is
    /// left on worker threads is then dropped; returns whether everything
    /// ended in time.
    pub async fn finish(self, timeout: Duration, also: impl Future<Output = ()>) -> bool {
        let graceful = self.graceful;
        let drained = tokio::time::timeout(timeout, async {
            graceful.shutdown().await;
            also.await;
        })
        .await
        .is_ok();
        if let Some(workers) = self.workers {
            workers.stop().await;
        }
        drained
    }
}

/// Held for as long as a connection lives.
struct Held {
    /// Bounds the open connections.
    _permit: OwnedSemaphorePermit,
    _open: Option<OpenConnection>,
}

/// Counts a connection as open for as long as it lives.
struct OpenConnection(IntGauge);

impl OpenConnection {
    fn new(counters: &ConnectionCounters) -> Self {
        counters.accepted.inc();
        counters.open.inc();
        Self(counters.open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// An accepted TCP connection on its way to a worker thread.
struct HandedOver {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    held: Held,
    watcher: Watcher,
}

/// The TLS handshake of every connection of one server.
#[derive(Clone)]
struct Handshake {
    acceptor: TlsAcceptor,
    timeout: Duration,
    errors: Option<IntCounter>,
}

impl Handshake {
    /// The handshake within its deadline; `None` (counted, logged at debug)
    /// when it fails or times out.
    async fn complete(&self, tcp: TcpStream, peer: SocketAddr) -> Option<TlsStream<TcpStream>> {
        let failed = match tokio::time::timeout(self.timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => return Some(stream),
            Ok(Err(e)) => format!("TLS handshake failed: {e}"),
            Err(_) => "TLS handshake timed out".to_owned(),
        };
        if let Some(errors) = &self.errors {
            errors.inc();
        }
        tracing::debug!(%peer, "{failed}");
        None
    }
}

/// How one kind of server serves an accepted connection.
trait ServeConnection: Send + Sync + 'static {
    fn serve(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// Runs on a worker thread: registers the connection with its runtime,
/// then serves it.
async fn serve_handed_over<C: ServeConnection>(serving: Arc<C>, handed: HandedOver) {
    let HandedOver {
        tcp,
        peer,
        held: _held,
        watcher,
    } = handed;
    match TcpStream::from_std(tcp) {
        Ok(tcp) => serving.serve(tcp, peer, watcher).await,
        Err(e) => tracing::warn!(%peer, error = %e, "cannot register the connection"),
    }
}

/// HTTP on every connection of one server.
struct Http<M> {
    handshake: Handshake,
    builder: auto::Builder<ConnExecutor>,
    upgrades: bool,
    make_service: M,
}

impl<M, S, B> ServeConnection for Http<M>
where
    M: Fn(SocketAddr) -> S + Send + Sync + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// The TLS handshake, then HTTP until the client or a graceful
    /// shutdown ends the connection.
    async fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let Some(stream) = self.handshake.complete(tcp, peer).await else {
            return;
        };
        let service = (self.make_service)(peer);
        let io = TokioIo::new(stream);
        let ended = if self.upgrades {
            let conn = self.builder.serve_connection_with_upgrades(io, service);
            watcher.watch(conn.into_owned()).await
        } else {
            let conn = self.builder.serve_connection(io, service);
            watcher.watch(conn.into_owned()).await
        };
        if let Err(e) = ended {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

/// The bare TLS stream of every connection, for a handler of its own.
struct Streams<H> {
    handshake: Handshake,
    handle: H,
}

impl<H, F> ServeConnection for Streams<H>
where
    H: Fn(TlsStream<TcpStream>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    async fn serve(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, _watcher: Watcher) {
        if let Some(stream) = self.handshake.complete(tcp, peer).await {
            (self.handle)(stream, peer).await;
        }
    }
}

fn connection_builder(settings: &Settings, executor: ConnExecutor) -> auto::Builder<ConnExecutor> {
    let mut builder = auto::Builder::new(executor);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Connection worker threads: one per core the process may use (the
/// container's CPU limit included).
fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Where hyper spawns a connection's HTTP/2 streams: beside the connection,
/// so that on a worker thread they stay on that thread.
#[derive(Clone, Copy, Debug)]
enum ConnExecutor {
    /// The current thread's `LocalSet` (worker threads).
    CurrentThread,
    /// The runtime's task pool.
    Runtime,
}

impl<F> hyper::rt::Executor<F> for ConnExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        match self {
            ConnExecutor::CurrentThread => {
                tokio::task::spawn_local(future);
            }
            ConnExecutor::Runtime => {
                tokio::spawn(future);
            }
        }
    }
}
