//! JSON Patch (RFC 6902) between the object the API server sent and the one
//! a mutation produced.
//!
//! Computing the patch as a diff, rather than emitting hand-written
//! operations, keeps two properties for free: the patch is exactly what the
//! mutation changed, and re-running the webhook on its own output yields an
//! empty patch (the API server may re-invoke webhooks).

use serde_json::Value;

/// The operations that turn `original` into `mutated`.
pub fn diff(original: &Value, mutated: &Value) -> json_patch::Patch {
    json_patch::diff(original, mutated)
}

/// Applies `patch` to a copy of `object`, the way the API server does.
/// Used by `certweave inject`'s tests and the integration tests to check that
/// the patch a review returns really produces the mutated object.
pub fn apply(object: &Value, patch: &json_patch::Patch) -> Result<Value, json_patch::PatchError> {
    let mut out = object.clone();
    json_patch::patch(&mut out, patch)?;
    Ok(out)
}
