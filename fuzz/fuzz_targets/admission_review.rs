//! Feeds arbitrary bytes to the AdmissionReview handler, and any JSON value
//! (or the `request.object` of a review) as the object of a Pod and of an
//! Ingress review.
//!
//! Crashes on: a panic anywhere; a response that is not JSON or carries
//! another uid; a patch that does not reproduce the mutated object; a patched
//! object that the webhook would patch again.

#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use certweave::api::{IssuerKind, IssuerRef};
use certweave::webhook::admission::review;
use certweave::webhook::{ingress, patch, pod, MutationConfig, MutationResult};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const NAMESPACE: &str = "default";

fn config() -> &'static MutationConfig {
    static CONFIG: OnceLock<MutationConfig> = OnceLock::new();
    CONFIG.get_or_init(|| MutationConfig {
        default_issuer: Some(IssuerRef {
            kind: IssuerKind::ClusterIssuer,
            name: "letsencrypt".into(),
        }),
        ..MutationConfig::default()
    })
}

#[derive(Clone, Copy)]
enum Kind {
    Pod,
    Ingress,
}

impl Kind {
    fn gvk(self) -> Value {
        match self {
            Kind::Pod => json!({ "group": "", "version": "v1", "kind": "Pod" }),
            Kind::Ingress => {
                json!({ "group": "networking.k8s.io", "version": "v1", "kind": "Ingress" })
            }
        }
    }

    fn mutate(self, object: &Value) -> MutationResult {
        match self {
            Kind::Pod => pod::mutate_pod(object, NAMESPACE, config()),
            Kind::Ingress => ingress::mutate_ingress(object, config()),
        }
    }
}

fn wrap(kind: Kind, object: &Value) -> Option<Vec<u8>> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "fuzz-uid",
            "kind": kind.gvk(),
            "operation": "CREATE",
            "namespace": NAMESPACE,
            "object": object,
        },
    }))
    .ok()
}

/// Reviews `body`; when answered, checks the response and returns it.
fn review_checked(body: &[u8]) -> Option<Value> {
    let reviewed = review(body, config()).ok()?;
    let response: Value =
        serde_json::from_slice(&reviewed.body).expect("the response is valid JSON");
    let uid = response["response"]["uid"]
        .as_str()
        .expect("the response has a uid");
    assert!(!uid.is_empty());
    if let Ok(request) = serde_json::from_slice::<Value>(body) {
        assert_eq!(request["request"]["uid"].as_str(), Some(uid), "uid changed");
    }
    if response["response"]["allowed"] == false {
        assert_eq!(response["response"]["status"]["code"], 400);
    }
    Some(response["response"].clone())
}

fn decode_patch(response: &Value) -> Option<json_patch::Patch> {
    let b64 = response.get("patch")?.as_str().expect("patch is a string");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("patch is base64");
    Some(serde_json::from_slice(&raw).expect("patch is a JSON Patch"))
}

fn check_object(kind: Kind, object: &Value) {
    let Some(body) = wrap(kind, object) else {
        return;
    };
    // Deeply nested input can exceed serde_json's recursion limit once wrapped.
    let Some(response) = review_checked(&body) else {
        return;
    };
    let direct = kind.mutate(object);
    match (&direct, decode_patch(&response)) {
        (Ok(outcome), Some(ops)) => {
            let mutated = outcome.object.as_ref().expect("a patch without a mutation");
            let patched = patch::apply(object, &ops).expect("the patch applies");
            assert_eq!(
                &patched, mutated,
                "the patch does not reproduce the mutation"
            );
            let again = kind.mutate(&patched);
            assert!(
                matches!(&again, Ok(o) if o.object.is_none()),
                "the mutation is not idempotent: {again:?}"
            );
            if let Some(body) = wrap(kind, &patched) {
                if let Some(again) = review_checked(&body) {
                    assert!(again.get("patch").is_none(), "second review patched again");
                }
            }
        }
        (Ok(outcome), None) => {
            // An object that is not a JSON object is refused by review()
            // before any mutation runs.
            if object.is_object() {
                assert!(outcome.object.is_none() || outcome.object.as_ref() == Some(object));
                assert_eq!(response["allowed"], true);
            }
        }
        (Err(e), patch) => {
            assert!(patch.is_none());
            if object.is_object() {
                assert_eq!(response["allowed"], false);
                let message = response["status"]["message"].as_str().unwrap_or("");
                assert!(
                    message.contains(&e.field),
                    "{message:?} does not name {}",
                    e.field
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    review_checked(data);
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let inner = value.pointer("/request/object").cloned();
        for object in std::iter::once(value).chain(inner) {
            check_object(Kind::Pod, &object);
            check_object(Kind::Ingress, &object);
        }
    }
});
