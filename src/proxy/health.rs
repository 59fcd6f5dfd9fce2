//! The plain-HTTP health port: what kubelet probes and Prometheus scrapes.
//!
//! It is separate from the TLS listener so probes work before a certificate
//! exists and never need client certificates when `--client-ca` is set.
//!
//! - `GET /healthz`: 200 while the process runs (liveness).
//! - `GET /readyz`: 200 once a valid bundle is loaded and the TLS listener
//!   accepts connections; 503 before that and while draining on shutdown, so
//!   the Pod leaves the Service endpoints first.
//! - `GET /metrics`: the [`ProxyMetrics`] in Prometheus text format.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use super::ProxyMetrics;
use crate::tls::ReloadingCert;

/// What readiness depends on.
pub(crate) struct Readiness {
    pub(crate) certs: Arc<ReloadingCert>,
    /// `--cert-dir`, named when not ready.
    pub(crate) cert_dir: PathBuf,
    /// True while the TLS listener accepts connections.
    pub(crate) accepting: AtomicBool,
    pub(crate) metrics: ProxyMetrics,
}

impl Readiness {
    /// `None` when ready, else why not.
    fn not_ready_reason(&self) -> Option<String> {
        if !self.certs.is_loaded() {
            return Some(format!(
                "no valid certificate bundle in {} yet",
                self.cert_dir.display()
            ));
        }
        if !self.accepting.load(Ordering::Acquire) {
            return Some("not accepting connections (starting or draining)".to_owned());
        }
        None
    }
}

/// The health routes.
pub(crate) fn router(state: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<Arc<Readiness>>) -> Response {
    match state.not_ready_reason() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<Readiness>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Serves the health routes until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<Readiness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
