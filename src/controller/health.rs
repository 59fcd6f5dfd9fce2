//! The plain-HTTP port for probes and Prometheus: `/healthz`, `/readyz`,
//! `/metrics`. Readiness means the caches are synced; it does not depend on
//! leadership, since every replica serves the webhook.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::{ControllerMetrics, WebhookMetrics};

/// Set once the caches have synced.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct Endpoints {
    controller: ControllerMetrics,
    webhook: WebhookMetrics,
    ready: Readiness,
}

/// The routes, for tests and for embedding.
pub fn router(controller: ControllerMetrics, webhook: WebhookMetrics, ready: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Endpoints {
            controller,
            webhook,
            ready,
        })
}

async fn readyz(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    if endpoints.ready.is_ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet\n")
    }
}

async fn metrics(State(endpoints): State<Endpoints>) -> impl IntoResponse {
    // The registries first, then the per-certificate families in chunks.
    let mut head = crate::metrics::render(endpoints.controller.registry());
    head.push_str(&endpoints.webhook.render());
    let chunks = std::iter::once(head).chain(endpoints.controller.certificate_chunks());
    let body = axum::body::Body::from_stream(futures_util::stream::iter(
        chunks.map(Ok::<_, std::convert::Infallible>),
    ));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// Binds `addr` and serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    controller: ControllerMetrics,
    webhook: WebhookMetrics,
    ready: Readiness,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz and /readyz");
    let app = router(controller, webhook, ready);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
    }))
}
