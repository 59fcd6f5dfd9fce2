//! Decoding the AdmissionReview the API server sends.
//!
//! Decoding uses a lean envelope instead of kube's
//! `AdmissionReview<DynamicObject>`: that type nests two `#[serde(flatten)]`
//! layers, so serde buffers the whole review twice before building the
//! object, and the fields the mutation never reads (`userInfo`, `oldObject`,
//! `options`) are materialised for nothing. The envelope reuses kube's
//! `Operation`, and borrows its strings from the body.
//!
//! `metadata.managedFields` of the object is skipped while decoding (see
//! `AdmittedObject`): neither mutation reads or writes it, so the patch is
//! the same without it, and it is often the largest part of the object.

use std::borrow::Cow;

use kube::core::admission::Operation;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::api::annotations as ann;
use crate::model::text::{cut, MESSAGE, QUOTED};

/// The only review version certweave speaks; the API server sends it when the
/// webhook is registered with `admissionReviewVersions: [v1]`.
pub const REVIEW_API_VERSION: &str = "admission.k8s.io/v1";
pub const REVIEW_KIND: &str = "AdmissionReview";

/// A body that is not an `admission.k8s.io/v1` AdmissionReview with a
/// request: answered with HTTP 400, since there is no uid to reply to.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MalformedReview(pub String);

/// Decodes a review and checks its version. Never panics on any input.
pub(super) fn decode(body: &[u8]) -> Result<Request<'_>, MalformedReview> {
    // Checking UTF-8 once for the whole body is much cheaper than the check
    // `from_slice` makes string by string; the result is the same. A body
    // that is not UTF-8 goes through `from_slice` for its usual error.
    let decoded: Result<Envelope, _> = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    };
    let envelope = decoded.map_err(|e| {
        let problem = match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None => "the body is empty".to_owned(),
            Some(b'{') => format!("the body is not a valid AdmissionReview: {e}"),
            Some(_) => "the body is not a JSON object".to_owned(),
        };
        malformed(&problem, SEND_A_REVIEW)
    })?;
    if envelope.api_version.as_deref() != Some(REVIEW_API_VERSION)
        || envelope.kind.as_deref() != Some(REVIEW_KIND)
    {
        return Err(malformed(
            &format!(
                "apiVersion and kind: expected {REVIEW_API_VERSION:?} and {REVIEW_KIND:?}, got {:?} and {:?}",
                cut(&envelope.api_version.unwrap_or_default(), QUOTED),
                cut(&envelope.kind.unwrap_or_default(), QUOTED)
            ),
            "register the webhook with admissionReviewVersions: [v1]",
        ));
    }
    let request = envelope.request.ok_or_else(|| {
        malformed(
            "request: missing, the AdmissionReview carries no request",
            SEND_A_REVIEW,
        )
    })?;
    if request.uid.is_empty() {
        return Err(malformed(
            "request.uid: missing or empty",
            "send the uid the answer must echo, as the API server does",
        ));
    }
    Ok(request)
}

/// The fix for a body that is not a review at all.
const SEND_A_REVIEW: &str = "POST an admission.k8s.io/v1 AdmissionReview with a request, as the API server does for a MutatingWebhookConfiguration with admissionReviewVersions: [v1]";

/// A 400 answer: what is wrong (cut: it may quote the body) and the fix.
fn malformed(problem: &str, fix: &str) -> MalformedReview {
    MalformedReview(format!("{}; {fix}", cut(problem, MESSAGE)))
}

/// The review as decoded: strings are borrowed from the body where they have
/// no escapes, so the envelope allocates nothing but the object.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Envelope<'a> {
    #[serde(borrow)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    request: Option<Request<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Request<'a> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: RequestKind<'a>,
    pub operation: Operation,
    #[serde(default, borrow)]
    pub sub_resource: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(default)]
    pub object: Option<AdmittedObject>,
    /// Who sent the API request: recorded on CertificateRequests, and
    /// only read for them (kept as the body's own bytes until then, so a
    /// Pod or Ingress review builds nothing from it).
    #[serde(default, borrow)]
    pub user_info: Option<&'a serde_json::value::RawValue>,
}

/// `request.kind`: the group, version and kind of the object.
#[derive(Deserialize)]
pub(super) struct RequestKind<'a> {
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
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
pub(super) struct AdmittedObject(pub Value);

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

/// Every field [`super::pod::mutate_pod`] and [`super::ingress::mutate_ingress`]
/// (and [`super::admission::review`] itself) read or write, for either kind: the two share no path
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
            // Gateway
            ("listeners", Shape::Whole),
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
    (ann::ALT_NAMES, Shape::Whole),
    (ann::IP_SANS, Shape::Whole),
    (ann::IGNORE_TLS_LISTENERS, Shape::Whole),
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

#[cfg(test)]
pub(super) mod tests;
