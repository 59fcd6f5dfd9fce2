//! The proxy's Prometheus metrics, served on the health port's `/metrics`.
//!
//! The proxy runs as its own process (a sidecar), so it keeps its own
//! registry rather than sharing the webhook's.

use hyper::Version;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Counters and gauges of one proxy. Cheap to clone: every field is a
/// handle onto the same shared value.
#[derive(Clone)]
pub struct ProxyMetrics {
    registry: Registry,
    /// `certweave_proxy_cert_reloads_total`: bundles loaded from the
    /// certificate directory, the first one included.
    pub cert_reloads: IntCounter,
    /// `certweave_proxy_cert_reload_errors_total`: bundles that changed on
    /// disk but could not be used (unreadable, not PEM, key not matching the
    /// certificate). The previous bundle, if any, keeps serving.
    pub cert_reload_errors: IntCounter,
    /// `certweave_proxy_cert_loaded`: 1 once a valid bundle is served.
    pub cert_loaded: IntGauge,
    /// `certweave_proxy_connections_total`: TCP connections accepted.
    pub connections: IntCounter,
    /// `certweave_proxy_open_connections`: connections currently open.
    pub open_connections: IntGauge,
    /// `certweave_proxy_tls_handshake_errors_total`: handshakes that failed
    /// or timed out (including clients refused by `--client-ca`).
    pub handshake_errors: IntCounter,
    /// `certweave_proxy_requests_total{protocol="HTTP/1.1"}`.
    pub requests_http1: IntCounter,
    /// `certweave_proxy_requests_total{protocol="HTTP/2"}`.
    pub requests_http2: IntCounter,
    /// `certweave_proxy_upstream_errors_total`: requests answered 502
    /// because the upstream could not be reached or failed mid-request.
    pub upstream_errors: IntCounter,
    /// `certweave_proxy_open_tunnels`: upgraded connections (WebSocket)
    /// currently relayed.
    pub open_tunnels: IntGauge,
}

impl ProxyMetrics {
    /// A fresh registry holding every proxy metric at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric definition");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric definition");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let cert_reloads = counter(
            "certweave_proxy_cert_reloads_total",
            "Certificate bundles loaded from the certificate directory.",
        );
        let cert_reload_errors = counter(
            "certweave_proxy_cert_reload_errors_total",
            "Changed certificate bundles that were rejected; the previous bundle keeps serving.",
        );
        let cert_loaded = gauge(
            "certweave_proxy_cert_loaded",
            "1 once a valid certificate bundle is being served.",
        );
        let connections = counter(
            "certweave_proxy_connections_total",
            "TCP connections accepted on the TLS listener.",
        );
        let open_connections = gauge(
            "certweave_proxy_open_connections",
            "Connections currently open on the TLS listener.",
        );
        let handshake_errors = counter(
            "certweave_proxy_tls_handshake_errors_total",
            "TLS handshakes that failed or timed out.",
        );
        let upstream_errors = counter(
            "certweave_proxy_upstream_errors_total",
            "Requests answered 502 because the upstream failed.",
        );
        let open_tunnels = gauge(
            "certweave_proxy_open_tunnels",
            "Upgraded connections (e.g. WebSocket) currently relayed.",
        );
        let requests = IntCounterVec::new(
            Opts::new(
                "certweave_proxy_requests_total",
                "Requests received from clients, by protocol.",
            ),
            &["protocol"],
        )
        .expect("valid metric definition");
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        Self {
            requests_http1: requests.with_label_values(&["HTTP/1.1"]),
            requests_http2: requests.with_label_values(&["HTTP/2"]),
            registry,
            cert_reloads,
            cert_reload_errors,
            cert_loaded,
            connections,
            open_connections,
            handshake_errors,
            upstream_errors,
            open_tunnels,
        }
    }

    /// The request counter for a client's protocol version (HTTP/1.0 counts
    /// as HTTP/1.1).
    pub fn requests(&self, version: Version) -> &IntCounter {
        if version == Version::HTTP_2 {
            &self.requests_http2
        } else {
            &self.requests_http1
        }
    }

    /// The Prometheus text exposition of every proxy metric.
    pub fn render(&self) -> String {
        crate::metrics::render(&self.registry)
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}
