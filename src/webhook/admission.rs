//! The AdmissionReview protocol around the pure mutations.
//!
//! Decoding uses a lean envelope instead of kube's
//! `AdmissionReview<DynamicObject>`: that type nests two `#[serde(flatten)]`
//! layers, so serde buffers the whole review twice before building the
//! object, and the fields the mutation never reads (`userInfo`, `oldObject`,
//! `options`) are materialised for nothing. The envelope reuses kube's
//! `GroupVersionKind`, `Operation` and `Status`.
//!
//! Responses are encoded by [`ResponseReview`] rather than kube's
//! `AdmissionResponse`, which serialises the patch as a JSON array of byte
//! values. The API server happens to accept that, but the documented wire
//! form (Go's `[]byte`) is a base64 string, which tools and people decoding
//! responses expect, and which is about a third of the size.

use base64::Engine;
use kube::core::admission::Operation;
use kube::core::{GroupVersionKind, Status};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ingress, patch, pod, MutationConfig, MutationOutcome};
use crate::api::InvalidField;

/// The only review version certweave speaks; the API server sends it when the
/// webhook is registered with `admissionReviewVersions: [v1]`.
pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";
const REVIEW_KIND: &str = "AdmissionReview";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<Request>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    uid: String,
    kind: GroupVersionKind,
    operation: Operation,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    object: Option<Value>,
}

/// Which mutation a review was routed to; a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewedKind {
    Pod,
    Ingress,
    Other,
}

impl ReviewedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewedKind::Pod => "Pod",
            ReviewedKind::Ingress => "Ingress",
            ReviewedKind::Other => "other",
        }
    }
}

/// How a review ended; a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed with a patch.
    Patched,
    /// Allowed unchanged.
    Allowed,
    /// Refused with a 400 and a message.
    Denied,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Patched => "patched",
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
        }
    }
}

/// A review that was answered: the AdmissionReview JSON to send back, and
/// labels for metrics and logs.
#[derive(Debug)]
pub struct Reviewed {
    pub body: Vec<u8>,
    pub kind: ReviewedKind,
    pub operation: &'static str,
    pub verdict: Verdict,
    /// Why it was denied, for the log.
    pub denial: Option<String>,
}

/// A body that is not an `admission.k8s.io/v1` AdmissionReview with a
/// request: answered with HTTP 400, since there is no uid to reply to.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MalformedReview(pub String);

fn operation_label(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// Decodes an AdmissionReview, runs the matching mutation, and encodes the
/// response. Never panics on any input.
pub fn review(body: &[u8], config: &MutationConfig) -> Result<Reviewed, MalformedReview> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| MalformedReview(format!("body is not a valid AdmissionReview: {e}")))?;
    if envelope.api_version.as_deref() != Some(REVIEW_API_VERSION)
        || envelope.kind.as_deref() != Some(REVIEW_KIND)
    {
        return Err(MalformedReview(format!(
            "expected apiVersion {REVIEW_API_VERSION:?} and kind {REVIEW_KIND:?}, got {:?} and {:?}; register the webhook with admissionReviewVersions: [v1]",
            envelope.api_version.unwrap_or_default(),
            envelope.kind.unwrap_or_default()
        )));
    }
    let request = envelope.request.ok_or_else(|| {
        MalformedReview("request is missing: the AdmissionReview carries no request".into())
    })?;
    if request.uid.is_empty() {
        return Err(MalformedReview("request.uid is missing or empty".into()));
    }

    let operation = operation_label(&request.operation);
    let gvk = &request.kind;
    let kind = match (gvk.group.as_str(), gvk.version.as_str(), gvk.kind.as_str()) {
        ("", "v1", "Pod") => ReviewedKind::Pod,
        ("networking.k8s.io", "v1", "Ingress") => ReviewedKind::Ingress,
        _ => ReviewedKind::Other,
    };
    let applies = request.sub_resource.as_deref().unwrap_or("").is_empty()
        && match kind {
            ReviewedKind::Pod => request.operation == Operation::Create,
            ReviewedKind::Ingress => {
                matches!(request.operation, Operation::Create | Operation::Update)
            }
            ReviewedKind::Other => false,
        };

    let outcome = if !applies {
        Ok(MutationOutcome::unchanged())
    } else {
        match &request.object {
            Some(object @ Value::Object(_)) => match kind {
                ReviewedKind::Pod => {
                    let namespace = request
                        .namespace
                        .as_deref()
                        .filter(|ns| !ns.is_empty())
                        .or_else(|| {
                            object
                                .pointer("/metadata/namespace")
                                .and_then(Value::as_str)
                        })
                        .unwrap_or("default");
                    pod::mutate_pod(object, namespace, config)
                }
                _ => ingress::mutate_ingress(object, config),
            },
            Some(_) => Err(InvalidField::new(
                "request.object",
                format!("must be a {} object", gvk.kind),
                "send the object being admitted as a JSON object",
            )),
            None => Err(InvalidField::new(
                "request.object",
                "is missing",
                format!("a {operation} review must carry the object being admitted"),
            )),
        }
    };

    let mut response = ResponseBody {
        uid: &request.uid,
        allowed: true,
        status: None,
        patch: None,
        patch_type: None,
        warnings: Vec::new(),
    };
    let (verdict, denial) = match outcome {
        Ok(MutationOutcome { object, warnings }) => {
            response.warnings = warnings;
            match (object, request.object.as_ref()) {
                (Some(mutated), Some(original)) => {
                    let ops = patch::diff(original, &mutated);
                    if ops.0.is_empty() {
                        (Verdict::Allowed, None)
                    } else {
                        let json = serde_json::to_vec(&ops)
                            .map_err(|e| MalformedReview(format!("cannot encode patch: {e}")))?;
                        response.patch =
                            Some(base64::engine::general_purpose::STANDARD.encode(json));
                        response.patch_type = Some("JSONPatch");
                        (Verdict::Patched, None)
                    }
                }
                _ => (Verdict::Allowed, None),
            }
        }
        Err(invalid) => {
            let message = invalid.to_string();
            response.allowed = false;
            response.status = Some(Status::failure(&message, "BadRequest").with_code(400));
            (Verdict::Denied, Some(message))
        }
    };
    let body = serde_json::to_vec(&ResponseReview {
        api_version: REVIEW_API_VERSION,
        kind: REVIEW_KIND,
        response,
    })
    .map_err(|e| MalformedReview(format!("cannot encode response: {e}")))?;
    Ok(Reviewed {
        body,
        kind,
        operation,
        verdict,
        denial,
    })
}

/// The AdmissionReview sent back to the API server.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseReview<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: ResponseBody<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseBody<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    /// Base64 of the JSON Patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

/// The JSON body of an HTTP-level error (malformed review, oversized body).
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message }))
        .unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec())
}
