//! The AdmissionReview certweave answers with.
//!
//! Responses are encoded by hand rather than through kube's
//! `AdmissionResponse`, which serialises the patch as a JSON array of byte
//! values. The API server happens to accept that, but the documented wire
//! form (Go's `[]byte`) is a base64 string, which tools and people decoding
//! responses expect, and which is about a third of the size.

use base64::Engine;
use kube::core::Status;
use serde::Serialize;

use super::envelope::{REVIEW_API_VERSION, REVIEW_KIND};
use super::patch;

/// The `response` of the AdmissionReview sent back to the API server.
///
/// [`ResponseBody::encode_review`] writes the review by hand; the derived
/// `Serialize` (inside an `apiVersion`/`kind`/`response` envelope) is the
/// reference it must match byte for byte, which the tests check.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResponseBody<'a> {
    pub uid: &'a str,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The JSON Patch, sent as base64.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_base64"
    )]
    pub patch: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
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
    pub(super) fn encode_review(&self) -> serde_json::Result<Vec<u8>> {
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
}
