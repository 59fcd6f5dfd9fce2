//! AdmissionReviews that grow with one list (rule hosts, `spec.tls`
//! entries, hosts in one entry, a Pod's dns-names), for checking that a
//! review's cost grows linearly with its size: shared by the property test
//! in tests/properties.rs and the scaling table of benches/admission.rs.

#![allow(dead_code)]

use serde_json::{json, Value};

/// Which list grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `spec.rules[].host`, no `spec.tls` (refused past 1,000).
    RuleHosts,
    /// `spec.tls[]` entries of one host each, without `secretName`, so the
    /// webhook names each (refused past 100).
    TlsEntries,
    /// Hosts in one `spec.tls` entry (refused past 100).
    EntryHosts,
    /// A Pod's `certweave.io/dns-names` (refused past 100).
    PodDnsNames,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::RuleHosts,
        Shape::TlsEntries,
        Shape::EntryHosts,
        Shape::PodDnsNames,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Shape::RuleHosts => "Ingress rule hosts",
            Shape::TlsEntries => "Ingress spec.tls entries",
            Shape::EntryHosts => "hosts in one spec.tls entry",
            Shape::PodDnsNames => "Pod dns-names",
        }
    }
}

/// A CREATE review of an object whose `shape` list has `n` distinct names.
pub fn review(shape: Shape, n: usize) -> Vec<u8> {
    let hosts: Vec<String> = (0..n).map(|i| format!("h{i}.example.com")).collect();
    let annotations = json!({"cert-manager.io/cluster-issuer": "le"});
    let (kind, group, resource, object) = match shape {
        Shape::RuleHosts => (
            "Ingress",
            "networking.k8s.io",
            "ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": "w", "namespace": "shop", "annotations": annotations},
                   "spec": {"rules": hosts.iter().map(|h| json!({"host": h})).collect::<Value>()}}),
        ),
        Shape::TlsEntries => (
            "Ingress",
            "networking.k8s.io",
            "ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": "w", "namespace": "shop", "annotations": annotations},
                   "spec": {"tls": hosts.iter().map(|h| json!({"hosts": [h]})).collect::<Value>()}}),
        ),
        Shape::EntryHosts => (
            "Ingress",
            "networking.k8s.io",
            "ingresses",
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                   "metadata": {"name": "w", "namespace": "shop", "annotations": annotations},
                   "spec": {"tls": [{"hosts": hosts, "secretName": "w-tls"}]}}),
        ),
        Shape::PodDnsNames => (
            "Pod",
            "",
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "p", "namespace": "shop",
                                "annotations": {"certweave.io/cluster-issuer": "corp",
                                                "certweave.io/dns-names": hosts.join(",")}},
                   "spec": {"containers": [{"name": "app", "image": "app"}]}}),
        ),
    };
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000001",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "namespace": "shop", "operation": "CREATE",
            "userInfo": {"username": "hostile"},
            "object": object
        }
    }))
    .unwrap()
}

/// CPU time of the calling thread, in nanoseconds: other processes on a
/// shared machine do not inflate it.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The least thread CPU time, in nanoseconds, of `runs` calls of `f`.
pub fn least_cpu_ns(runs: usize, mut f: impl FnMut()) -> u64 {
    (0..runs)
        .map(|_| {
            let start = thread_cpu_ns();
            f();
            thread_cpu_ns() - start
        })
        .min()
        .unwrap_or(0)
}
