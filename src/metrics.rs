//! Prometheus metrics. One registry per process, passed around explicitly so
//! tests can run several servers side by side.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The webhook's metrics.
#[derive(Clone)]
pub struct WebhookMetrics {
    registry: Registry,
    /// `certweave_admission_requests_total{kind,operation,result}`.
    pub requests: IntCounterVec,
    /// `certweave_admission_duration_seconds{kind}`: decode to encode, excluding TLS.
    pub duration: HistogramVec,
    /// `certweave_tls_reload_errors_total`: a rotated serving certificate that
    /// could not be loaded (the previous one keeps serving).
    pub tls_reload_errors: IntCounter,
}

impl WebhookMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "certweave_admission_requests_total",
                "Admission reviews answered, by object kind, operation and result (patched, allowed, denied, malformed, too_large, timeout).",
            ),
            &["kind", "operation", "result"],
        )
        .expect("valid metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "certweave_admission_duration_seconds",
                "Time to decode, mutate and encode one admission review.",
            )
            .buckets(vec![
                0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
                0.01, 0.025, 0.1,
            ]),
            &["kind"],
        )
        .expect("valid metric definition");
        let tls_reload_errors = IntCounter::new(
            "certweave_tls_reload_errors_total",
            "Serving certificate reloads that failed; the previous certificate stays in use.",
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(duration.clone()))
            .expect("registered once");
        registry
            .register(Box::new(tls_reload_errors.clone()))
            .expect("registered once");
        Self {
            registry,
            requests,
            duration,
            tls_reload_errors,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// The Prometheus text exposition of every metric in `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .expect("text encoding into a Vec cannot fail");
    String::from_utf8(out).expect("Prometheus text is UTF-8")
}

impl Default for WebhookMetrics {
    fn default() -> Self {
        Self::new()
    }
}
