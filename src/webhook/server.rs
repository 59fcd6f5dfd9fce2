//! The HTTPS server around [`super::admission::review`].
//!
//! One listener serves `POST /mutate`, `GET /healthz`, `GET /readyz` and
//! `GET /metrics`, over TLS 1.2/1.3 with HTTP/2 and HTTP/1.1. Every stage a
//! client controls is bounded: the TLS handshake, the request headers and
//! body each have a deadline, bodies over [`MAX_BODY_BYTES`] are refused,
//! and the number of open connections is capped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::admission::{self, review};
use super::MutationConfig;
use crate::metrics::WebhookMetrics;
use crate::tls::serve::{Settings, Threads, TlsServer};
use crate::tls::{self, ReloadOutcome, ReloadingCert, TlsError};

/// The largest AdmissionReview accepted. The API server caps objects at
/// about 1.5 MiB, and a review may carry two of them (object, oldObject).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Deadline for a TLS handshake, for request headers, and for a request body.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections allowed at once; further clients wait in the backlog.
pub const MAX_CONNECTIONS: usize = 4096;
/// How often the serving certificate files are checked for changes.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// Reviews up to this size are evaluated where they are received (a few
/// hundred microseconds at most); larger ones go to the blocking pool, so
/// a big object never holds up the connection threads that answer
/// `/healthz` and every other review.
pub const INLINE_REVIEW_BYTES: usize = 32 * 1024;
/// A review not evaluated within this is answered 503, and the API server
/// applies the webhook's failurePolicy: well inside the API server's own
/// timeout (the chart's `webhook.timeoutSeconds`, 10 s by default).
pub const REVIEW_DEADLINE: Duration = Duration::from_secs(2);
/// Concurrent HTTP/2 streams per connection: the API server sends its
/// reviews over a few long-lived connections.
const MAX_CONCURRENT_STREAMS: u32 = 256;

/// What the webhook server needs to start.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub mutation: MutationConfig,
    pub reload_interval: Duration,
    /// Deadline for each stage a client controls; [`CLIENT_TIMEOUT`] in production.
    pub client_timeout: Duration,
    /// Deadline for evaluating one review; [`REVIEW_DEADLINE`] in production.
    pub review_deadline: Duration,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("serving certificate: {0}")]
    Tls(#[from] TlsError),
}

/// Shared, read-only state of the HTTP handlers.
struct AppState {
    mutation: MutationConfig,
    metrics: WebhookMetrics,
    client_timeout: Duration,
    review_deadline: Duration,
    /// Large reviews evaluated at once: one per core, so a flood of them
    /// queues instead of taking every blocking thread.
    large_reviews: Arc<Semaphore>,
}

/// A bound, not yet running webhook server.
pub struct WebhookServer {
    server: TlsServer,
    cert: Arc<ReloadingCert>,
    app: Router,
    metrics: WebhookMetrics,
    reload_interval: Duration,
}

impl WebhookServer {
    /// Loads the certificate and binds the listener; nothing is served until
    /// [`WebhookServer::run`].
    pub async fn bind(options: ServeOptions) -> Result<Self, ServeError> {
        let cert = ReloadingCert::load(&options.cert_file, &options.key_file)?;
        let config = Arc::new(tls::server_config(cert.clone()));
        let listener =
            TcpListener::bind(options.addr)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: options.addr,
                    source,
                })?;
        let settings = Settings {
            handshake_timeout: options.client_timeout,
            header_timeout: options.client_timeout,
            max_connections: MAX_CONNECTIONS,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS,
            upgrades: false,
            threads: Threads::PerCore {
                name: "webhook-conn",
            },
            counters: None,
        };
        let metrics = WebhookMetrics::new();
        let app = router(
            options.mutation,
            metrics.clone(),
            options.client_timeout,
            options.review_deadline,
        );
        Ok(Self {
            server: TlsServer::new(listener, config, settings),
            cert,
            app,
            metrics,
            reload_interval: options.reload_interval,
        })
    }

    /// The webhook's metrics, for a process that serves them elsewhere
    /// (the controller's metrics port).
    pub fn metrics(&self) -> WebhookMetrics {
        self.metrics.clone()
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting and waits for
    /// open connections to finish their requests.
    ///
    /// Connections are served on one thread per core (see
    /// [`crate::tls::workers`]); this task only accepts them.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let reload_errors = self.metrics.tls_reload_errors.clone();
        let watcher = tokio::spawn(self.cert.clone().watch(
            self.reload_interval,
            move |cert, outcome| match outcome {
                ReloadOutcome::Loaded => {
                    tracing::info!(cert = %cert.cert_path().display(), "serving certificate reloaded")
                }
                ReloadOutcome::Rejected(e) => {
                    reload_errors.inc();
                    tracing::warn!(error = %e, "rotated serving certificate rejected; still serving the previous one");
                }
                _ => {}
            },
        ));
        let app = self.app;
        let serving = self
            .server
            .serve_until(move |_peer| TowerToHyperService::new(app.clone()), shutdown)
            .await;
        watcher.abort();
        // If the worker threads could not start, nothing was accepted.
        let draining = serving?;
        if !draining.finish(CLIENT_TIMEOUT, async {}).await {
            tracing::warn!("connections still open after the shutdown grace period; closing them");
        }
        Ok(())
    }
}

/// The HTTP routes, without TLS: handy for tests and for embedding.
pub fn router(
    mutation: MutationConfig,
    metrics: WebhookMetrics,
    client_timeout: Duration,
    review_deadline: Duration,
) -> Router {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let state = Arc::new(AppState {
        mutation,
        metrics,
        client_timeout,
        review_deadline,
        large_reviews: Arc::new(Semaphore::new(cores)),
    });
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(ok))
        .route("/readyz", get(ok))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .with_state(state)
}

async fn ok() -> &'static str {
    "ok"
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        admission::error_body("not found; the webhook serves POST /mutate"),
    )
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn mutate(State(state): State<Arc<AppState>>, request: Request) -> Response {
    // The whole request, not a `HeaderMap` extractor: that one clones every header.
    let (parts, body) = request.into_parts();
    let metrics = &state.metrics;
    let http_error = |status: StatusCode, result: &str, message: &str| {
        metrics
            .requests
            .with_label_values(&["unknown", "unknown", result])
            .inc();
        tracing::debug!(%status, message, "admission request refused");
        json_response(status, admission::error_body(message))
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return http_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", TOO_LARGE);
    }
    let bytes = match tokio::time::timeout(
        state.client_timeout,
        Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return http_error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", TOO_LARGE)
        }
        Ok(Err(e)) => {
            return http_error(
                StatusCode::BAD_REQUEST,
                "malformed",
                &format!("cannot read request body: {e}"),
            )
        }
        Err(_) => {
            return http_error(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "request body not received in time",
            )
        }
    };

    let started = Instant::now();
    let outcome = if bytes.len() <= INLINE_REVIEW_BYTES {
        review(&bytes, &state.mutation)
    } else {
        match review_off_thread(&state, bytes).await {
            Some(outcome) => outcome,
            None => {
                return http_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "deadline",
                    &format!(
                        "the review was not evaluated within {:?}; the webhook is busy with \
                         other large objects: retry, or split the object",
                        state.review_deadline
                    ),
                )
            }
        }
    };
    match outcome {
        Ok(reviewed) => {
            let kind = reviewed.kind.as_str();
            metrics
                .requests
                .with_label_values(&[kind, reviewed.operation, reviewed.verdict.as_str()])
                .inc();
            metrics
                .duration
                .with_label_values(&[kind])
                .observe(started.elapsed().as_secs_f64());
            if let Some(reason) = &reviewed.denial {
                tracing::info!(
                    kind,
                    operation = reviewed.operation,
                    reason,
                    "admission denied"
                );
            }
            json_response(StatusCode::OK, reviewed.body)
        }
        Err(malformed) => http_error(StatusCode::BAD_REQUEST, "malformed", &malformed.0),
    }
}

/// Evaluates a large review on the blocking pool; `None` if it was not
/// done within the deadline (waiting for a turn included). A review past
/// its deadline still runs to its end — every mutation is linear in its
/// input and bounded by [`MAX_BODY_BYTES`] — but nobody waits for it.
async fn review_off_thread(
    state: &Arc<AppState>,
    bytes: axum::body::Bytes,
) -> Option<Result<admission::Reviewed, admission::MalformedReview>> {
    let deadline = tokio::time::Instant::now() + state.review_deadline;
    let turn = tokio::time::timeout_at(deadline, state.large_reviews.clone().acquire_owned())
        .await
        .ok()?
        .ok()?;
    let mutation = state.mutation.clone();
    let evaluation = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        review(&bytes, &mutation)
    });
    tokio::time::timeout_at(deadline, evaluation)
        .await
        .ok()?
        .ok()
}

const TOO_LARGE: &str = "request body exceeds 3 MiB; AdmissionReviews are never this large";
