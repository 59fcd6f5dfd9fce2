//! The AdmissionReview protocol around the pure mutations.
//!
//! Decoding uses a lean envelope instead of kube's
//! `AdmissionReview<DynamicObject>`: that type nests two `#[serde(flatten)]`
//! layers, so serde buffers the whole review twice before building the
//! object, and the fields the mutation never reads (`userInfo`, `oldObject`,
//! `options`) are materialised for nothing. The envelope reuses kube's
//! `Operation` and `Status`, and borrows its strings from the body.
//!
//! `metadata.managedFields` of the object is skipped while decoding (see
//! [`AdmittedObject`]): neither mutation reads or writes it, so the patch is
//! the same without it, and it is often the largest part of the object.
//!
//! Responses are encoded by [`ResponseReview`] rather than kube's
//! `AdmissionResponse`, which serialises the patch as a JSON array of byte
//! values. The API server happens to accept that, but the documented wire
//! form (Go's `[]byte`) is a base64 string, which tools and people decoding
//! responses expect, and which is about a third of the size.

use std::borrow::Cow;

use base64::Engine;
use kube::core::admission::Operation;
use kube::core::Status;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::{ingress, patch, pod, MutationConfig, MutationOutcome};
use crate::api::annotations as ann;
use crate::api::InvalidField;

/// The only review version certweave speaks; the API server sends it when the
/// webhook is registered with `admissionReviewVersions: [v1]`.
pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";
const REVIEW_KIND: &str = "AdmissionReview";

/// The review as decoded: strings are borrowed from the body where they have
/// no escapes, so the envelope allocates nothing but the object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<Request<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    #[serde(borrow)]
    uid: Cow<'a, str>,
    #[serde(borrow)]
    kind: RequestKind<'a>,
    operation: Operation,
    #[serde(default, borrow)]
    sub_resource: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(default)]
    object: Option<AdmittedObject>,
}

/// `request.kind`: the group, version and kind of the object.
#[derive(Deserialize)]
struct RequestKind<'a> {
    #[serde(borrow)]
    group: Cow<'a, str>,
    #[serde(borrow)]
    version: Cow<'a, str>,
    #[serde(borrow)]
    kind: Cow<'a, str>,
}

/// `request.object` decoded as a [`Value`] projected onto [`READ_BY_MUTATIONS`]:
/// only the fields the mutations read are built, everything else is parsed
/// (so malformed JSON anywhere is still an error) but not kept.
///
/// The Pod patch is written from the fields the Pod mutation reads, so it
/// cannot depend on the others. The Ingress patch is the diff of the
/// mutation's input and output: fields it neither reads nor writes are equal
/// on both sides and add no operation, and the object-by-object,
/// index-by-index diff of what is left yields the same operations, in the
/// same order, as the diff of the whole objects. So
/// the patch and any denial are the same as for the whole object, while
/// the review builds, clones, compares and drops a few dozen values instead
/// of a whole Pod: its images, env, probes, resources, owner references and
/// `managedFields` (often a third of the body or more) are skipped. The tests
/// below check this against reviews of the whole object, on the benchmark
/// fixtures and on generated objects.
struct AdmittedObject(Value);

/// Which parts of a JSON value to build.
#[derive(Debug)]
enum Shape {
    /// The whole value.
    Whole,
    /// For an object, only these keys (each with its own shape); any other
    /// JSON type is built whole, so type errors are reported as usual.
    Fields(&'static [(&'static str, Shape)]),
    /// For an array, every element with this shape; any other JSON type is
    /// built whole.
    Each(&'static Shape),
}

/// Every field [`pod::mutate_pod`] and [`ingress::mutate_ingress`] (and
/// [`review`] itself) read or write, for either kind: the two share no path
/// that one reads and the other does not, so one projection serves both and
/// the kind need not be known before the object is decoded (the API server
/// sends `kind` first, but JSON does not promise that).
///
/// A change to what the mutations read must be reflected here; the tests
/// comparing projected and whole-object reviews fail otherwise.
const READ_BY_MUTATIONS: Shape = Shape::Fields(&[
    (
        "metadata",
        Shape::Fields(&[
            ("name", Shape::Whole),
            ("namespace", Shape::Whole),
            ("annotations", Shape::Fields(ANNOTATIONS_READ)),
            ("labels", Shape::Fields(LABELS_READ)),
        ]),
    ),
    (
        "spec",
        Shape::Fields(&[
            // Pod
            (
                "volumes",
                Shape::Each(&Shape::Fields(&[("name", Shape::Whole)])),
            ),
            (
                "containers",
                Shape::Each(&Shape::Fields(&[
                    ("name", Shape::Whole),
                    (
                        "volumeMounts",
                        Shape::Each(&Shape::Fields(&[
                            ("name", Shape::Whole),
                            ("mountPath", Shape::Whole),
                        ])),
                    ),
                    (
                        "ports",
                        Shape::Each(&Shape::Fields(&[("containerPort", Shape::Whole)])),
                    ),
                ])),
            ),
            // Ingress
            (
                "rules",
                Shape::Each(&Shape::Fields(&[("host", Shape::Whole)])),
            ),
            ("tls", Shape::Whole),
        ]),
    ),
]);

/// The annotations the mutations read or write. Others, such as kubectl's
/// `last-applied-configuration` (a copy of the whole object), are skipped.
const ANNOTATIONS_READ: &[(&str, Shape)] = &[
    (ann::ISSUER, Shape::Whole),
    (ann::CLUSTER_ISSUER, Shape::Whole),
    (ann::ISSUER_KIND, Shape::Whole),
    (ann::ISSUER_GROUP, Shape::Whole),
    (ann::TLS_ACME, Shape::Whole),
    (ann::COMMON_NAME, Shape::Whole),
    (ann::DURATION, Shape::Whole),
    (ann::RENEW_BEFORE, Shape::Whole),
    (ann::PRIVATE_KEY_ALGORITHM, Shape::Whole),
    (ann::PRIVATE_KEY_SIZE, Shape::Whole),
    (ann::PRIVATE_KEY_ROTATION_POLICY, Shape::Whole),
    (ann::POD_ISSUER, Shape::Whole),
    (ann::POD_CLUSTER_ISSUER, Shape::Whole),
    (ann::POD_SERVICE, Shape::Whole),
    (ann::POD_DNS_NAMES, Shape::Whole),
    (ann::POD_SECRET_NAME, Shape::Whole),
    (ann::POD_MOUNT_PATH, Shape::Whole),
    (ann::POD_CONTAINERS, Shape::Whole),
    (ann::POD_TLS_PROXY, Shape::Whole),
    (ann::POD_INJECTED, Shape::Whole),
];

/// The labels the mutations read or write.
const LABELS_READ: &[(&str, Shape)] = &[
    (ann::SERVICE_NAME_LABELS[0], Shape::Whole),
    (ann::SERVICE_NAME_LABELS[1], Shape::Whole),
    (ann::POD_INJECTED, Shape::Whole),
];

impl<'de> Deserialize<'de> for AdmittedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ShapedVisitor(&READ_BY_MUTATIONS))
            .map(AdmittedObject)
    }
}

/// Builds a [`Value`] like `Value`'s own visitor, keeping what its
/// [`Shape`] says.
#[derive(Clone, Copy)]
struct ShapedVisitor(&'static Shape);

impl<'de> Visitor<'de> for ShapedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Value::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        match self.0 {
            Shape::Each(item) => {
                while let Some(value) = seq.next_element_seed(ShapedVisitor(item))? {
                    items.push(value);
                }
            }
            Shape::Whole | Shape::Fields(_) => {
                while let Some(value) = seq.next_element()? {
                    items.push(value);
                }
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut values;
        match self.0 {
            Shape::Fields(fields) => {
                // Sized for the fields an object of this shape usually has,
                // so that building it allocates once instead of regrowing.
                values = Map::with_capacity(fields.len().min(4));
                while let Some(KeptKey(key)) = map.next_key()? {
                    match fields.iter().find(|(name, _)| *name == key) {
                        Some((name, shape)) => {
                            let value = map.next_value_seed(ShapedVisitor(shape))?;
                            values.insert((*name).to_owned(), value);
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
            }
            Shape::Whole | Shape::Each(_) => {
                values = Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    values.insert(key, map.next_value()?);
                }
            }
        }
        Ok(Value::Object(values))
    }
}

impl<'de> de::DeserializeSeed<'de> for ShapedVisitor {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// An object key, kept only as long as it takes to compare it with the
/// [`Shape::Fields`] names: borrowed from the body when it has no escapes,
/// so skipped keys cost no allocation.
struct KeptKey<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for KeptKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = KeptKey<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<KeptKey<'de>, E> {
                Ok(KeptKey(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<KeptKey<'de>, E> {
                Ok(KeptKey(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
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

/// What a mutation decided for an allowed object: the JSON Patch to send,
/// if anything changes, and warnings for the user.
#[derive(Default)]
struct Decision {
    patch: Option<Vec<u8>>,
    warnings: Vec<String>,
}

/// Decodes an AdmissionReview, runs the matching mutation, and encodes the
/// response. Never panics on any input.
pub fn review(body: &[u8], config: &MutationConfig) -> Result<Reviewed, MalformedReview> {
    // Checking UTF-8 once for the whole body is much cheaper than the check
    // `from_slice` makes string by string; the result is the same. A body
    // that is not UTF-8 goes through `from_slice` for its usual error.
    let decoded: Result<Envelope, _> = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    let envelope = decoded
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
    let kind = match (&*gvk.group, &*gvk.version, &*gvk.kind) {
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

    let object = request.object.map(|AdmittedObject(object)| object);
    let decision = if !applies {
        Ok(Decision::default())
    } else {
        match &object {
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
                    pod::pod_patch(object, namespace, config).map(|patch| Decision {
                        patch,
                        warnings: Vec::new(),
                    })
                }
                _ => match ingress::mutate_ingress(object, config) {
                    Ok(MutationOutcome {
                        object: mutated,
                        warnings,
                    }) => {
                        let patch = match mutated {
                            Some(mutated) => patch::diff_json(object, &mutated).map_err(|e| {
                                MalformedReview(format!("cannot encode patch: {e}"))
                            })?,
                            None => None,
                        };
                        Ok(Decision { patch, warnings })
                    }
                    Err(invalid) => Err(invalid),
                },
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
        Ok(Decision { patch, warnings }) => {
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

/// The `response` of the AdmissionReview sent back to the API server.
///
/// [`ResponseBody::encode_review`] writes the review by hand; the derived
/// `Serialize` (inside an `apiVersion`/`kind`/`response` envelope) is the
/// reference it must match byte for byte, which the tests check.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseBody<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    /// The JSON Patch, sent as base64.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_base64"
    )]
    patch: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

fn serialize_base64<S: serde::Serializer>(
    patch: &Option<Vec<u8>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match patch {
        Some(json) => {
            serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(json))
        }
        None => serializer.serialize_none(),
    }
}

impl ResponseBody<'_> {
    /// The whole AdmissionReview, as `serde_json` would encode it, but with
    /// the patch base64-encoded straight into the output: no intermediate
    /// string, and no escaping pass over it (base64 needs none). The patch
    /// is most of a response.
    ///
    /// The patch is encoded with `base64-simd`, which picks AVX2 or SSSE3 at
    /// run time: the scalar `base64` engine took 9k of a Pod review's ~120k
    /// instructions, most of a response's encoding.
    fn encode_review(&self) -> serde_json::Result<Vec<u8>> {
        use base64_simd::{Out, STANDARD};
        use serde::ser::Error as _;

        let patch_len = match &self.patch {
            Some(json) if json.len() <= isize::MAX as usize / 2 => {
                STANDARD.encoded_length(json.len())
            }
            Some(_) => return Err(serde_json::Error::custom("patch too large to encode")),
            None => 0,
        };
        let mut out = Vec::with_capacity(160 + self.uid.len() + patch_len);
        out.extend_from_slice(b"{\"apiVersion\":");
        patch::write_json_str(&mut out, REVIEW_API_VERSION);
        out.extend_from_slice(b",\"kind\":");
        patch::write_json_str(&mut out, REVIEW_KIND);
        out.extend_from_slice(b",\"response\":{\"uid\":");
        patch::write_json_str(&mut out, self.uid);
        let allowed: &[u8] = if self.allowed {
            b",\"allowed\":true"
        } else {
            b",\"allowed\":false"
        };
        out.extend_from_slice(allowed);
        if let Some(status) = &self.status {
            out.extend_from_slice(b",\"status\":");
            serde_json::to_writer(&mut out, status)?;
        }
        if let Some(json) = &self.patch {
            out.extend_from_slice(b",\"patch\":\"");
            let start = out.len();
            out.resize(start + patch_len, 0);
            let written = STANDARD
                .encode(json, Out::from_slice(&mut out[start..]))
                .len();
            out.truncate(start + written);
            out.push(b'"');
        }
        if let Some(patch_type) = self.patch_type {
            out.extend_from_slice(b",\"patchType\":");
            patch::write_json_str(&mut out, patch_type);
        }
        if !self.warnings.is_empty() {
            out.extend_from_slice(b",\"warnings\":");
            serde_json::to_writer(&mut out, &self.warnings)?;
        }
        out.extend_from_slice(b"}}");
        Ok(out)
    }
}

/// The JSON body of an HTTP-level error (malformed review, oversized body).
pub fn error_body(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message }))
        .unwrap_or_else(|_| b"{\"error\":\"internal error\"}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The reference encoding of a response: serde's, in the review envelope.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ResponseReview<'a> {
        api_version: &'static str,
        kind: &'static str,
        response: &'a ResponseBody<'a>,
    }

    fn assert_encodes_like_serde(response: &ResponseBody<'_>) {
        let reference = serde_json::to_vec(&ResponseReview {
            api_version: REVIEW_API_VERSION,
            kind: REVIEW_KIND,
            response,
        })
        .unwrap();
        let ours = response.encode_review().unwrap();
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            String::from_utf8(reference).unwrap()
        );
    }

    #[test]
    fn response_encoding_matches_serde() {
        let status = Some(
            Status::failure("certweave.io/tls-proxy: \"x\" is not <ok>\n", "BadRequest")
                .with_code(400),
        );
        for uid in ["", "705ab4f5-6393-11e8-b7cc-42010a800002", "a\"b\\c\u{1}é"] {
            for (allowed, status) in [(true, None), (false, status.clone())] {
                for patch in [None, Some(Vec::new()), Some(b"[{\"op\":\"add\"}]".to_vec())] {
                    for warnings in [vec![], vec!["one \"quoted\"".to_owned(), "two".to_owned()]] {
                        let patch_type = patch.as_ref().map(|_| "JSONPatch");
                        assert_encodes_like_serde(&ResponseBody {
                            uid,
                            allowed,
                            status: status.clone(),
                            patch: patch.clone(),
                            patch_type,
                            warnings,
                        });
                    }
                }
            }
        }
    }

    proptest! {
        #[test]
        fn response_encoding_matches_serde_for_any_patch_and_uid(
            uid in ".{0,40}",
            patch in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            assert_encodes_like_serde(&ResponseBody {
                uid: &uid,
                allowed: true,
                status: None,
                patch: Some(patch),
                patch_type: Some("JSONPatch"),
                warnings: Vec::new(),
            });
        }
    }

    /// `value` projected onto `shape`, from the whole decoded value.
    fn project(value: &Value, shape: &Shape) -> Value {
        match (shape, value) {
            (Shape::Fields(fields), Value::Object(map)) => Value::Object(
                map.iter()
                    .filter_map(|(key, value)| {
                        let (_, shape) = fields.iter().find(|(name, _)| name == key)?;
                        Some((key.clone(), project(value, shape)))
                    })
                    .collect(),
            ),
            (Shape::Each(item), Value::Array(items)) => {
                Value::Array(items.iter().map(|value| project(value, item)).collect())
            }
            _ => value.clone(),
        }
    }

    fn assert_projects_like_reference(text: &str) {
        let ours = serde_json::from_str::<AdmittedObject>(text).map(|o| o.0);
        let reference = serde_json::from_str::<Value>(text)
            .map(|value| project(&value, &READ_BY_MUTATIONS))
            .map_err(|_| ());
        match (ours, reference) {
            (Ok(ours), Ok(reference)) => {
                // Compare the encodings too: `Map` equality ignores key order.
                assert_eq!(ours, reference, "{text}");
                assert_eq!(ours.to_string(), reference.to_string(), "{text}");
            }
            (Err(_), Err(())) => {}
            (ours, reference) => {
                panic!("{text}: decoded {ours:?}, reference {reference:?}")
            }
        }
    }

    #[test]
    fn admitted_object_keeps_exactly_what_the_mutations_read() {
        for text in [
            r#"{"metadata":{"name":"a","managedFields":[{"manager":"m","fieldsV1":{"f:x":{}}}],"labels":{"k":"v"}}}"#,
            r#"{"metadata":{"managedFields":5},"spec":{"template":{"metadata":{"managedFields":[1]}}}}"#,
            r#"{"spec":{"metadata":{"managedFields":[]}},"metadata":{"managedFields":null}}"#,
            r#"{"metadata":{"a":1,"annotations":{"x":"1"},"a":2,"annotations":{"y":"2"}}}"#,
            r#"{"metadata":{"na\u006de":"escaped key","labels":{"k\n":"v"}}}"#,
            r#"{"metadata":"x"}"#,
            r#"{"metadata":null}"#,
            r#"{"metadata":[{"managedFields":1}]}"#,
            r#"{"metadata":{"metadata":{"managedFields":1}}}"#,
            r#"{"spec":{"containers":[{"name":"a","image":"i","volumeMounts":[{"name":"v","mountPath":"/p","readOnly":true}],"ports":[{"containerPort":80,"name":"http"}]},"x",null,[1]]}}"#,
            r#"{"spec":{"volumes":[{"name":"v","secret":{"secretName":"s"}}],"containers":{"name":"a"}}}"#,
            r#"{"spec":{"rules":[{"host":"a.example","http":{"paths":[]}}],"tls":[{"hosts":["a"],"x":1}]}}"#,
            r#"{"spec":[{"containers":[]}],"status":{"phase":"Pending"}}"#,
            r#"{"metadata":{"name":[1,-2,3.5,1e400,18446744073709551615,-9223372036854775808,0.1]}}"#,
            r#"{"metadata":{"name":[1,-2,3.5,18446744073709551615,-9223372036854775808,0.1,"\u00e9\n"]}}"#,
            r#"{"metadata":{"managedFields":[1,}}"#,
            r#"{"metadata":{"managedFields":[1]"#,
            r#"[{"metadata":{"managedFields":1}}]"#,
            r#""string""#,
            r#"null"#,
            r#"12"#,
            r#"{}"#,
        ] {
            assert_projects_like_reference(text);
        }
    }

    /// A skipped field is checked for JSON syntax but never converted, so a
    /// number beyond f64 or a lone UTF-16 surrogate escape there (neither of
    /// which an API server sends) is not an error; in a kept field it is.
    #[test]
    fn skipped_fields_are_checked_for_syntax_only() {
        let text =
            r#"{"n":[1e400],"spec":{"containers":[{"name":"a","env":[{"value":"\ud800"}]}]}}"#;
        let ours = serde_json::from_str::<AdmittedObject>(text).unwrap().0;
        assert_eq!(ours, json!({"spec": {"containers": [{"name": "a"}]}}));
        for text in [
            r#"{"metadata":{"name":1e400}}"#,
            r#"{"spec":{"containers":[{"name":"\ud800"}]}}"#,
            r#"{"status":{"phase":"Pending",}}"#,
            r#"{"status":{"phase":Pending}}"#,
            r#"{"spec":{"containers":[{"env":[{"value":"a}]}]}}"#,
        ] {
            assert!(
                serde_json::from_str::<AdmittedObject>(text).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_bodies_get_the_errors_of_from_slice() {
        for body in [
            &b"{\"apiVersion\":\"admission.k8s.io/v1\xff\"}"[..],
            b"\xfe{}",
            b"{\"request\":{\"uid\":\"\xc3\x28\"}}",
            b"{\"request\":{\"uid\":\"a\"",
            b"{\"kind\":\"\\ud800\"}",
            b"",
        ] {
            let reference = serde_json::from_slice::<Envelope>(body).err().unwrap();
            let ours = review(body, &MutationConfig::default()).unwrap_err();
            assert_eq!(
                ours.0,
                format!("body is not a valid AdmissionReview: {reference}")
            );
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            "[a-z\"\\\\é]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 48, 4, |inner| {
            let key = prop_oneof![
                prop::sample::select(vec![
                    "metadata",
                    "managedFields",
                    "annotations",
                    "labels",
                    "app",
                    "spec",
                    "containers",
                    "volumes",
                    "volumeMounts",
                    "ports",
                    "rules",
                    "tls",
                    "name",
                ])
                .prop_map(str::to_owned),
                "[a-c]{0,2}"
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn admitted_object_matches_reference_on_arbitrary_json(value in arb_json()) {
            assert_projects_like_reference(&value.to_string());
        }
    }

    /// The review as computed before managedFields was skipped: the whole
    /// object decoded as a `Value`, mutated, and diffed by json_patch itself.
    /// Returns the mutated object (`None` if unchanged), or the denial
    /// message. Patches are compared by what they do: the Pod patch is
    /// written in its own order, not in the order of a diff.
    fn reference_outcome(body: &[u8]) -> Result<Option<Value>, String> {
        let review: Value = serde_json::from_slice(body).unwrap();
        let request = &review["request"];
        let object = &request["object"];
        let config = MutationConfig::default();
        let outcome = match request["kind"]["kind"].as_str() {
            Some("Pod") => pod::mutate_pod(
                object,
                request["namespace"].as_str().unwrap_or("default"),
                &config,
            ),
            _ => ingress::mutate_ingress(object, &config),
        }
        .map_err(|e| e.to_string())?;
        Ok(outcome.object.filter(|mutated| mutated != object))
    }

    fn outcome_of(body: &[u8]) -> Result<Option<Value>, String> {
        let reviewed = review(body, &MutationConfig::default()).expect("well-formed review");
        if let Some(denial) = reviewed.denial {
            return Err(denial);
        }
        let response: Value = serde_json::from_slice(&reviewed.body).unwrap();
        let original: Value = serde_json::from_slice(body).unwrap();
        Ok(response["response"]["patch"].as_str().map(|b64| {
            let json = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap();
            let ops: json_patch::Patch = serde_json::from_slice(&json).unwrap();
            patch::apply(&original["request"]["object"], &ops).expect("the patch applies")
        }))
    }

    #[test]
    fn reviews_match_a_review_of_the_whole_object() {
        let pod: Value =
            serde_json::from_str(include_str!("../../benches/fixtures/pod-review.json")).unwrap();
        let ingress: Value =
            serde_json::from_str(include_str!("../../benches/fixtures/ingress-review.json"))
                .unwrap();
        let mut bodies = vec![pod.clone(), ingress.clone()];
        for managed_fields in [json!(null), json!(7), json!({"a": [1]}), json!([])] {
            for base in [&pod, &ingress] {
                let mut body = base.clone();
                body["request"]["object"]["metadata"]["managedFields"] = managed_fields.clone();
                bodies.push(body);
            }
        }
        // Odd metadata: the mutations must fail (or pass) the same way.
        for metadata in [json!("x"), json!(null), json!([{"managedFields": 1}])] {
            for base in [&pod, &ingress] {
                let mut body = base.clone();
                body["request"]["object"]["metadata"] = metadata.clone();
                bodies.push(body);
            }
        }
        for body in bodies {
            let bytes = serde_json::to_vec(&body).unwrap();
            assert_eq!(outcome_of(&bytes), reference_outcome(&bytes), "{body}");
        }
        assert!(matches!(
            outcome_of(include_bytes!("../../benches/fixtures/pod-review.json")),
            Ok(Some(_))
        ));
    }

    /// Paths (below the object) where a change alters what a mutation sees
    /// or does: every annotation and label read, every field the projection
    /// keeps, and some it skips.
    fn perturbed_paths() -> Vec<Vec<String>> {
        // Every annotation certweave knows rather than those the projection
        // keeps, so that a key missing there is still perturbed here.
        let annotations = ann::ALL;
        let labels = ann::SERVICE_NAME_LABELS
            .into_iter()
            .chain([ann::POD_INJECTED, "pod-template-hash"]);
        let mut paths: Vec<Vec<String>> = annotations
            .into_iter()
            .map(|key| vec!["metadata".into(), "annotations".into(), key.into()])
            .chain(labels.map(|key| vec!["metadata".into(), "labels".into(), key.into()]))
            .collect();
        for path in [
            "metadata",
            "metadata/name",
            "metadata/namespace",
            "metadata/generateName",
            "metadata/annotations",
            "metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
            "metadata/labels",
            "metadata/ownerReferences",
            "spec",
            "spec/volumes",
            "spec/volumes/0",
            "spec/volumes/0/name",
            "spec/volumes/1/name",
            "spec/volumes/0/secret",
            "spec/containers",
            "spec/containers/0",
            "spec/containers/0/name",
            "spec/containers/1/name",
            "spec/containers/0/image",
            "spec/containers/0/volumeMounts",
            "spec/containers/0/volumeMounts/0",
            "spec/containers/0/volumeMounts/0/name",
            "spec/containers/0/volumeMounts/0/mountPath",
            "spec/containers/1/volumeMounts",
            "spec/containers/0/ports",
            "spec/containers/0/ports/0",
            "spec/containers/0/ports/0/containerPort",
            "spec/containers/1/ports/0/containerPort",
            "spec/containers/0/ports/0/name",
            "spec/initContainers",
            "spec/rules",
            "spec/rules/0",
            "spec/rules/0/host",
            "spec/rules/1/host",
            "spec/rules/0/http",
            "spec/tls",
            "spec/tls/0",
            "spec/tls/0/hosts",
            "spec/tls/0/hosts/0",
            "spec/tls/0/secretName",
            "spec/tls/1/secretName",
            "spec/defaultBackend",
            "status",
        ] {
            paths.push(path.split('/').map(|t| t.replace("~1", "/")).collect());
        }
        paths
    }

    /// Sets (or, with `None`, removes) the value at `path`, if its parent
    /// exists; an index one past the end appends.
    fn set_path(object: &mut Value, path: &[String], new: Option<Value>) {
        let (last, parents) = path.split_last().expect("paths are not empty");
        let mut parent = object;
        for token in parents {
            parent = match parent {
                Value::Object(map) => match map.get_mut(token) {
                    Some(child) => child,
                    None => return,
                },
                Value::Array(items) => {
                    match token.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                        Some(child) => child,
                        None => return,
                    }
                }
                _ => return,
            };
        }
        match (parent, new) {
            (Value::Object(map), Some(value)) => {
                map.insert(last.clone(), value);
            }
            (Value::Object(map), None) => {
                map.shift_remove(last);
            }
            (Value::Array(items), new) => {
                let Ok(index) = last.parse::<usize>() else {
                    return;
                };
                match new {
                    Some(value) if index < items.len() => items[index] = value,
                    Some(value) if index == items.len() => items.push(value),
                    None if index < items.len() => {
                        items.remove(index);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Values that matter to the mutations, and arbitrary JSON.
    fn perturbation_value() -> impl Strategy<Value = Option<Value>> {
        let interesting = prop::sample::select(vec![
            json!(null),
            json!("true"),
            json!("false"),
            json!(true),
            json!(8443),
            json!(9901),
            json!("8443:8080"),
            json!("9443:8443"),
            json!("ca-issuer"),
            json!("Issuer"),
            json!("ClusterIssuer"),
            json!("cert-manager.io"),
            json!("web"),
            json!("shop, web"),
            json!("shop"),
            json!("certweave-tls"),
            json!("certweave-proxy"),
            json!("/etc/certweave/tls"),
            json!("/etc/certweave/tls/"),
            json!("relative/path"),
            json!("shop.example.com"),
            json!("*.example.com"),
            json!("-bad-"),
            json!("720h"),
            json!(""),
            json!([]),
            json!({}),
            json!([{ "name": "certweave-tls" }]),
            json!({ "name": "certweave-tls", "mountPath": "/etc/certweave/tls" }),
            json!({ "name": "app", "image": "app:1", "ports": [{ "containerPort": 8443 }] }),
            json!([{ "hosts": ["a.example.com"] }, { "hosts": ["b.example.com"], "secretName": "shop-tls" }]),
            json!({ "host": "c.example.com", "http": { "paths": [] } }),
        ]);
        prop_oneof![
            3 => interesting.prop_map(Some),
            1 => arb_json().prop_map(Some),
            1 => Just(None),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The projected review patches (or denies) exactly as a review of
        /// the whole object, on the fixtures changed at up to four places.
        #[test]
        fn projected_reviews_match_whole_object_reviews(
            ingress in any::<bool>(),
            changes in prop::collection::vec(
                (any::<prop::sample::Index>(), perturbation_value()),
                0..5,
            ),
        ) {
            let fixture: &[u8] = if ingress {
                include_bytes!("../../benches/fixtures/ingress-review.json")
            } else {
                include_bytes!("../../benches/fixtures/pod-review.json")
            };
            let mut body: Value = serde_json::from_slice(fixture).unwrap();
            let paths = perturbed_paths();
            for (index, value) in changes {
                let path: &Vec<String> = index.get(&paths);
                set_path(&mut body["request"]["object"], path, value);
            }
            let bytes = serde_json::to_vec(&body).unwrap();
            prop_assert_eq!(outcome_of(&bytes), reference_outcome(&bytes), "{}", body["request"]["object"]);
        }
    }
}
