//! The AdmissionReview protocol around the mutations: a review is decoded
//! ([`super::envelope`]), routed by kind to the Ingress or Pod mutation, and
//! answered with its JSON Patch or refusal ([`super::response`]).

use kube::core::admission::Operation;
use kube::core::Status;
use serde_json::Value;

use super::envelope::{self, AdmittedObject};
pub use super::envelope::{MalformedReview, REVIEW_API_VERSION};
pub use super::response::error_body;
use super::response::ResponseBody;
use super::MutationConfig;
use super::{gateway, ingress, pod, MutationPatch};
use crate::api::{certificate_request, InvalidField};

/// Which mutation a review was routed to; a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewedKind {
    Pod,
    Ingress,
    Gateway,
    ListenerSet,
    CertificateRequest,
    Other,
}

impl ReviewedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewedKind::Pod => "Pod",
            ReviewedKind::Ingress => "Ingress",
            ReviewedKind::Gateway => "Gateway",
            ReviewedKind::ListenerSet => "ListenerSet",
            ReviewedKind::CertificateRequest => "CertificateRequest",
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

fn operation_label(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// The namespace of the object under review: the review's, else the
/// object's own, else `default`.
fn review_namespace<'a>(from_review: Option<&'a str>, object: &'a Value) -> &'a str {
    from_review
        .filter(|ns| !ns.is_empty())
        .or_else(|| {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
        })
        .unwrap_or("default")
}

/// Decodes an AdmissionReview, runs the matching mutation, and encodes the
/// response. Never panics on any input.
pub fn review(body: &[u8], config: &MutationConfig) -> Result<Reviewed, MalformedReview> {
    let request = envelope::decode(body)?;

    let operation = operation_label(&request.operation);
    let gvk = &request.kind;
    let kind = match (&*gvk.group, &*gvk.version, &*gvk.kind) {
        ("", "v1", "Pod") => ReviewedKind::Pod,
        ("networking.k8s.io", "v1", "Ingress") => ReviewedKind::Ingress,
        ("gateway.networking.k8s.io", "v1", "Gateway") => ReviewedKind::Gateway,
        ("gateway.networking.k8s.io", "v1", "ListenerSet") => ReviewedKind::ListenerSet,
        ("cert-manager.io", "v1", "CertificateRequest") => ReviewedKind::CertificateRequest,
        _ => ReviewedKind::Other,
    };
    let applies = request.sub_resource.as_deref().unwrap_or("").is_empty()
        && match kind {
            ReviewedKind::Pod | ReviewedKind::CertificateRequest => {
                request.operation == Operation::Create
            }
            ReviewedKind::Ingress | ReviewedKind::Gateway | ReviewedKind::ListenerSet => {
                matches!(request.operation, Operation::Create | Operation::Update)
            }
            ReviewedKind::Other => false,
        };

    let object = request.object.map(|AdmittedObject(object)| object);
    let decision = if !applies {
        Ok(MutationPatch::default())
    } else if kind == ReviewedKind::CertificateRequest {
        // Only who asked is written; the object itself is not read.
        let user = request
            .user_info
            .map(|raw| serde_json::from_str::<certificate_request::RequestUser>(raw.get()));
        match user {
            Some(Ok(user)) => Ok(MutationPatch {
                patch: Some(
                    certificate_request::requester_patch(&user)
                        .to_string()
                        .into_bytes(),
                ),
                warnings: Vec::new(),
            }),
            Some(Err(e)) => Err(InvalidField::new(
                "request.userInfo",
                format!("cannot be read: {e}"),
                "send userInfo as the API server does: {username, uid, groups, extra}",
            )),
            None => Err(InvalidField::new(
                "request.userInfo",
                "is missing",
                "the API server sends who created the CertificateRequest; send userInfo",
            )),
        }
    } else {
        match &object {
            Some(object @ Value::Object(_)) => match kind {
                ReviewedKind::Pod => {
                    let namespace = review_namespace(request.namespace.as_deref(), object);
                    pod::pod_patch(object, namespace, config).map(|patch| MutationPatch {
                        patch,
                        warnings: Vec::new(),
                    })
                }
                ReviewedKind::Gateway | ReviewedKind::ListenerSet => {
                    let namespace = review_namespace(request.namespace.as_deref(), object);
                    gateway::gateway_patch(object, namespace)
                }
                _ => ingress::ingress_patch(object, config),
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
    let (verdict, denial) = match decision {
        Ok(MutationPatch { patch, warnings }) => {
            response.warnings = warnings;
            match patch {
                None => (Verdict::Allowed, None),
                Some(json) => {
                    response.patch = Some(json);
                    response.patch_type = Some("JSONPatch");
                    (Verdict::Patched, None)
                }
            }
        }
        Err(invalid) => {
            let message = invalid.to_string();
            response.allowed = false;
            response.status = Some(Status::failure(&message, "BadRequest").with_code(400));
            (Verdict::Denied, Some(message))
        }
    };
    let body = response
        .encode_review()
        .map_err(|e| MalformedReview(format!("cannot encode response: {e}")))?;
    Ok(Reviewed {
        body,
        kind,
        operation,
        verdict,
        denial,
    })
}

#[cfg(test)]
mod tests;
