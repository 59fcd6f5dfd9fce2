//! Workloads: where a kind keeps the pod template its Pods are made from.
//! `certweave inject` mutates that template as a Pod, and `certweave local`
//! reads the Certificate it asks for, so both look in the same place.

use serde_json::Value;

/// Where pod templates live in each workload kind (a JSON pointer), or
/// `None` for kinds without one.
pub fn template_pointer(api_version: &str, kind: &str) -> Option<&'static str> {
    match (api_version, kind) {
        ("apps/v1", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch/v1", "Job")
        | ("v1", "ReplicationController" | "PodTemplate") => Some("/spec/template"),
        ("batch/v1", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// The pod template of a workload document and its pointer, if the kind
/// has one and the document carries it.
pub fn pod_template<'a>(
    document: &'a Value,
    api_version: &str,
    kind: &str,
) -> Option<(&'static str, &'a Value)> {
    let pointer = template_pointer(api_version, kind)?;
    Some((pointer, document.pointer(pointer)?))
}
