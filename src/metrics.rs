//! Prometheus metrics. One registry per process, passed around explicitly so
//! tests can run several servers side by side.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
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

/// The controller's metrics, named as cert-manager names them where the
/// meaning is the same, so existing dashboards and alerts keep working.
///
/// The per-certificate series (five per certificate) are kept as one small
/// record per certificate and written out at scrape time, in chunks: with
/// ten thousand certificates, a registry of fifty thousand labelled gauges
/// and one large exposition string per scrape cost more memory than
/// everything else the controller holds.
#[derive(Clone)]
pub struct ControllerMetrics {
    registry: Registry,
    certificates: Arc<RwLock<BTreeMap<(String, String), CertificateSample>>>,
    /// `certweave_issuance_total{issuer_kind,result}`.
    pub issuance: IntCounterVec,
    /// `certweave_issuance_duration_seconds{issuer_kind}`.
    pub issuance_duration: HistogramVec,
    /// `certweave_renewal_queue_depth`: certificates scheduled.
    pub queue_depth: IntGauge,
    /// `certweave_leader`: 1 while this replica holds the Lease and issues.
    pub leader: IntGauge,
}

/// `certmanager_http_acme_client_request_count` and
/// `certmanager_http_acme_client_request_duration_seconds`: every request
/// to an ACME server, under cert-manager's names and labels, so dashboards
/// and alerts on ACME errors and latency keep working.
///
/// One set per process ([`acme_client`]): ACME clients are created deep in
/// the issuers, per account, and every registry that exports these
/// ([`ControllerMetrics`]) registers the same collectors.
pub struct AcmeClientMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
}

/// The labels of the ACME client metrics.
pub const ACME_CLIENT_LABELS: [&str; 5] = ["scheme", "host", "path", "method", "status"];

impl AcmeClientMetrics {
    fn new() -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "certmanager_http_acme_client_request_count",
                "The number of requests made by the ACME client.",
            ),
            &ACME_CLIENT_LABELS,
        )
        .expect("valid metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "certmanager_http_acme_client_request_duration_seconds",
                "The HTTP request latencies in seconds for the ACME client.",
            )
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            &ACME_CLIENT_LABELS,
        )
        .expect("valid metric definition");
        Self { requests, duration }
    }

    /// Records one request to `uri` that ended with `status` (an HTTP
    /// code, or "error" when no answer came).
    pub fn observe(&self, uri: &http::Uri, method: &str, status: &str, elapsed: Duration) {
        let path = acme_path_label(uri.path());
        let labels = [
            uri.scheme_str().unwrap_or(""),
            uri.host().unwrap_or(""),
            &path,
            method,
            status,
        ];
        self.requests.with_label_values(&labels).inc();
        self.duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }
}

/// The ACME client metrics of this process.
pub fn acme_client() -> &'static AcmeClientMetrics {
    static METRICS: std::sync::LazyLock<AcmeClientMetrics> =
        std::sync::LazyLock::new(AcmeClientMetrics::new);
    &METRICS
}

/// A request path with its identifiers cut off, so that each kind of ACME
/// resource is one series rather than one per order, authorization and
/// certificate: `/acme/order/123/456` becomes `/acme/order`, Pebble's
/// `/authZ/Xy…` becomes `/authZ`. A segment is an identifier when it is
/// all digits, or long, or mixes in digits (`authz-v3` is not one).
fn acme_path_label(path: &str) -> String {
    let mut label = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let digits = segment.bytes().filter(u8::is_ascii_digit).count();
        let identifier =
            digits == segment.len() || segment.len() >= 16 || (segment.len() >= 10 && digits > 0);
        if identifier {
            break;
        }
        label.push('/');
        label.push_str(segment);
    }
    if label.is_empty() {
        label.push('/');
    }
    label
}

/// What is exported about one certificate.
#[derive(Debug, Clone, PartialEq)]
struct CertificateSample {
    issuer_name: String,
    issuer_kind: String,
    issuer_group: String,
    ready: Option<bool>,
    not_after: Option<f64>,
    renewal: Option<f64>,
}

/// The labels cert-manager puts on its per-certificate series.
pub const CERTIFICATE_LABELS: [&str; 5] = [
    "name",
    "namespace",
    "issuer_name",
    "issuer_kind",
    "issuer_group",
];

const EXPIRATION: (&str, &str) = (
    "certmanager_certificate_expiration_timestamp_seconds",
    "The date after which the certificate expires, in seconds since the Unix epoch.",
);
const READY: (&str, &str) = (
    "certmanager_certificate_ready_status",
    "The ready status of the certificate: 1 for the current condition.",
);
const RENEWAL: (&str, &str) = (
    "certmanager_certificate_renewal_timestamp_seconds",
    "The time at which the certificate is due for renewal, in seconds since the Unix epoch.",
);

/// Certificates per chunk of the exposition.
const CHUNK: usize = 1000;

impl ControllerMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let issuance = IntCounterVec::new(
            Opts::new(
                "certweave_issuance_total",
                "Issuance attempts, by issuer kind and result (success, failure).",
            ),
            &["issuer_kind", "result"],
        )
        .expect("valid metric definition");
        let issuance_duration = HistogramVec::new(
            HistogramOpts::new(
                "certweave_issuance_duration_seconds",
                "Time from the start of an issuance to the Secret written, by issuer kind.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            &["issuer_kind"],
        )
        .expect("valid metric definition");
        let queue_depth = IntGauge::new(
            "certweave_renewal_queue_depth",
            "Certificates in the renewal queue.",
        )
        .expect("valid metric definition");
        let leader = IntGauge::new(
            "certweave_leader",
            "1 while this replica holds the leader Lease and issues; 0 otherwise.",
        )
        .expect("valid metric definition");
        let acme = acme_client();
        for collector in [
            Box::new(issuance.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(issuance_duration.clone()),
            Box::new(queue_depth.clone()),
            Box::new(leader.clone()),
            Box::new(acme.requests.clone()),
            Box::new(acme.duration.clone()),
        ] {
            registry.register(collector).expect("registered once");
        }
        Self {
            registry,
            certificates: Default::default(),
            issuance,
            issuance_duration,
            queue_depth,
            leader,
        }
    }

    /// Records a certificate's current state. `labels` are
    /// [`CERTIFICATE_LABELS`] in order.
    pub fn observe_certificate(
        &self,
        labels: [&str; 5],
        ready: Option<bool>,
        not_after: Option<std::time::SystemTime>,
        renewal: Option<std::time::SystemTime>,
    ) {
        let seconds = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0)
        };
        let [name, namespace, issuer_name, issuer_kind, issuer_group] = labels;
        let sample = CertificateSample {
            issuer_name: issuer_name.to_owned(),
            issuer_kind: issuer_kind.to_owned(),
            issuer_group: issuer_group.to_owned(),
            ready,
            not_after: not_after.map(seconds),
            renewal: renewal.map(seconds),
        };
        self.certificates
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert((namespace.to_owned(), name.to_owned()), sample);
    }

    /// Drops a deleted certificate's series.
    pub fn forget_certificate(&self, namespace: &str, name: &str) {
        self.certificates
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The whole exposition as one string (tests, small installs).
    pub fn render(&self) -> String {
        let mut out = render(&self.registry);
        for chunk in self.certificate_chunks() {
            out.push_str(&chunk);
        }
        out
    }

    /// The per-certificate families, a thousand certificates per chunk, so
    /// a scrape never holds the whole text at once.
    pub fn certificate_chunks(&self) -> impl Iterator<Item = String> + Send + 'static {
        let snapshot: Arc<Vec<((String, String), CertificateSample)>> = Arc::new(
            self.certificates
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        let families = [EXPIRATION, READY, RENEWAL];
        families.into_iter().flat_map(move |family| {
            let snapshot = snapshot.clone();
            let chunks = snapshot.len().div_ceil(CHUNK).max(1);
            (0..chunks).map(move |i| {
                let part = &snapshot
                    [(i * CHUNK).min(snapshot.len())..((i + 1) * CHUNK).min(snapshot.len())];
                let mut out = String::with_capacity(part.len() * 3 * 200 + 256);
                if i == 0 {
                    out.push_str(&format!(
                        "# HELP {} {}\n# TYPE {} gauge\n",
                        family.0, family.1, family.0
                    ));
                }
                for ((namespace, name), sample) in part {
                    write_certificate(&mut out, family.0, namespace, name, sample);
                }
                out
            })
        })
    }
}

fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

fn write_certificate(
    out: &mut String,
    family: &str,
    namespace: &str,
    name: &str,
    s: &CertificateSample,
) {
    use std::fmt::Write;
    let labels = format!(
        "issuer_group=\"{}\",issuer_kind=\"{}\",issuer_name=\"{}\",name=\"{}\",namespace=\"{}\"",
        escape(&s.issuer_group),
        escape(&s.issuer_kind),
        escape(&s.issuer_name),
        escape(name),
        escape(namespace)
    );
    let value = if family == EXPIRATION.0 {
        s.not_after
    } else if family == RENEWAL.0 {
        s.renewal
    } else {
        let current = match s.ready {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        };
        for condition in ["False", "True", "Unknown"] {
            let _ = writeln!(
                out,
                "{family}{{condition=\"{condition}\",{labels}}} {}",
                u8::from(condition == current)
            );
        }
        return;
    };
    if let Some(value) = value {
        let _ = writeln!(out, "{family}{{{labels}}} {value}");
    }
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acme_paths_lose_their_identifiers() {
        for (path, label) in [
            ("/directory", "/directory"),
            ("/acme/new-order", "/acme/new-order"),
            ("/acme/order/123456789/987654321", "/acme/order"),
            ("/acme/authz-v3/1234567890", "/acme/authz-v3"),
            ("/acme/chall-v3/1234567890/AbC1dE", "/acme/chall-v3"),
            (
                "/acme/cert/fa2a2b1e7e3c4d5e6f708192a3b4c5d6e7f8",
                "/acme/cert",
            ),
            ("/my-order/Zk3sW9xQ_pLm2NvB8rT4yU", "/my-order"),
            ("/authZ/abcdefghijklmnopqrstuv", "/authZ"),
            ("/nonce-plz", "/nonce-plz"),
            ("/", "/"),
            ("", "/"),
        ] {
            assert_eq!(acme_path_label(path), label, "{path}");
        }
    }

    #[test]
    fn certificate_series_use_cert_manager_names_and_flip_ready() {
        let m = ControllerMetrics::new();
        let labels = ["web", "shop", "le", "ClusterIssuer", "cert-manager.io"];
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        m.observe_certificate(labels, Some(false), None, None);
        m.observe_certificate(labels, Some(true), Some(t), Some(t));
        let text = m.render();
        assert!(text.contains("certmanager_certificate_expiration_timestamp_seconds{issuer_group=\"cert-manager.io\",issuer_kind=\"ClusterIssuer\",issuer_name=\"le\",name=\"web\",namespace=\"shop\"} 1800000000"), "{text}");
        assert!(text.contains("condition=\"True\",issuer_group=\"cert-manager.io\",issuer_kind=\"ClusterIssuer\",issuer_name=\"le\",name=\"web\",namespace=\"shop\"} 1"), "{text}");
        assert!(text.contains("condition=\"False\",issuer_group=\"cert-manager.io\",issuer_kind=\"ClusterIssuer\",issuer_name=\"le\",name=\"web\",namespace=\"shop\"} 0"), "{text}");
        m.forget_certificate("shop", "web");
        assert!(!m.render().contains("name=\"web\""));
        assert!(m.render().contains("certweave_renewal_queue_depth 0"));
    }
}
