//! `cert-manager.io/v1` CertificateRequest: a certificate signing request
//! made elsewhere (csi-driver, istio-csr, `cmctl create
//! certificaterequest`, approver-policy setups), signed once by the issuer
//! it names, after approval. The private key never reaches certweave.
//!
//! Who asked is recorded by admission from the request's user (see
//! [`requester_patch`]); approval is the `Approved`/`Denied` conditions, as
//! in cert-manager. This module holds the resource, the checks that turn it
//! into what an issuer signs, and the condition vocabulary; the controller
//! drives it.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::certificate::{CertificateCondition, IssuerReference, SUPPORTED_USAGES};
use super::duration::parse_go_duration;
use super::issuer_ref::{IssuerRef, ISSUER_GROUP};
use crate::model::{CertificateRequest as Request, KeyUsage, SignedCsr, DEFAULT_DURATION};
use crate::pki::{self, CsrError};

/// The condition types of a CertificateRequest.
pub mod condition {
    pub const READY: &str = "Ready";
    pub const APPROVED: &str = "Approved";
    pub const DENIED: &str = "Denied";
    pub const INVALID_REQUEST: &str = "InvalidRequest";
}

/// The reasons of its `Ready` condition, cert-manager's words.
pub mod reason {
    pub const PENDING: &str = "Pending";
    pub const ISSUED: &str = "Issued";
    pub const FAILED: &str = "Failed";
    pub const DENIED: &str = "Denied";
    pub const INVALID_REQUEST: &str = "InvalidRequest";
    /// The reason of the `Approved` condition certweave writes.
    pub const APPROVED_BY: &str = "cert-manager.io";
}

/// The annotation naming the Secret with the private key a SelfSigned
/// issuer signs with (cert-manager's).
pub const PRIVATE_KEY_SECRET_ANNOTATION: &str = "cert-manager.io/private-key-secret-name";

/// Shortest lifetime accepted, as for Certificates.
const MIN_DURATION: Duration = Duration::from_secs(60);

/// A request to sign `spec.request` with the issuer `spec.issuerRef`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "CertificateRequest",
    namespaced,
    status = "CertificateRequestStatus",
    category = "cert-manager",
    shortname = "cr",
    shortname = "crs",
    doc = "A certificate signing request for an Issuer or ClusterIssuer: signed once, after approval; the private key stays with its owner.",
    printcolumn = r#"{"name":"Approved","type":"string","jsonPath":".status.conditions[?(@.type==\"Approved\")].status"}"#,
    printcolumn = r#"{"name":"Denied","type":"string","jsonPath":".status.conditions[?(@.type==\"Denied\")].status"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Issuer","type":"string","jsonPath":".spec.issuerRef.name"}"#,
    printcolumn = r#"{"name":"Requestor","type":"string","jsonPath":".spec.username"}"#,
    printcolumn = r#"{"name":"Status","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self == oldSelf",
        "message": "spec is immutable: a CertificateRequest is signed once; create a new one instead"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestSpec {
    /// The PEM certificate signing request (PKCS#10), base64-encoded as
    /// Kubernetes encodes bytes; at most 64 KiB.
    #[schemars(schema_with = "request_schema")]
    pub request: String,
    /// The Issuer (in this namespace) or ClusterIssuer that signs it.
    pub issuer_ref: IssuerReference,
    /// Requested lifetime as a Go duration; at least `1m`, default `2160h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Ask for a CA certificate.
    #[serde(default, rename = "isCA", skip_serializing_if = "std::ops::Not::not")]
    pub is_ca: bool,
    /// Key usages; the issuer's defaults when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "usages_schema")]
    pub usages: Vec<String>,
    /// Who created the request: set by certweave's admission webhook from
    /// the API request's user, whatever the creator wrote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

fn request_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "format": "byte",
        // base64 of 64 KiB
        "maxLength": 87384,
    })
}

fn usages_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 16,
        "items": {"type": "string", "enum": SUPPORTED_USAGES},
    })
}

/// `status`: the conditions, and once issued the certificate and its CA.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequestStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CertificateCondition>,
    /// The signed certificate chain, PEM, base64-encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub certificate: Option<String>,
    /// The CA that signed it, PEM, base64-encoded, when the issuer knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub ca: Option<String>,
    /// When the request failed for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// What a CertificateRequest asks an issuer to sign, checked.
#[derive(Debug, Clone)]
pub struct SigningPlan {
    pub issuer: IssuerRef,
    pub request: Request,
    pub csr: SignedCsr,
}

/// Whether a request is for an issuer certweave serves: group
/// `cert-manager.io` (or none). Requests for other groups belong to
/// external issuers; certweave leaves them alone, approval included.
pub fn is_for_certweave(spec: &CertificateRequestSpec) -> bool {
    spec.issuer_ref
        .group
        .as_deref()
        .is_none_or(|g| g.is_empty() || g == ISSUER_GROUP)
}

impl CertificateRequestSpec {
    /// Checks the request and reads it. An error is final (the spec is
    /// immutable): the request ends `InvalidRequest` with it.
    pub fn plan(&self) -> Result<SigningPlan, String> {
        let issuer = self
            .issuer_ref
            .resolve("spec.issuerRef")
            .map_err(|e| e.to_string())?;
        // Bytes travel base64-encoded; a PEM given as it is (a manifest
        // read without an API server) is taken too.
        let trimmed = self.request.trim();
        let pem = if trimmed.starts_with("-----BEGIN") {
            trimmed.as_bytes().to_vec()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(trimmed)
                .map_err(|_| {
                    "spec.request is not base64: put the PEM request in base64 (kubectl and the API server expect bytes so)".to_owned()
                })?
        };
        let (csr, content) =
            pki::parse_csr(&pem).map_err(|e: CsrError| format!("spec.request: {e}"))?;
        if content.common_name.is_none()
            && content.dns_names.is_empty()
            && content.ip_addresses.is_empty()
            && content.uris.is_empty()
            && content.email_addresses.is_empty()
        {
            return Err(
                "spec.request names no subject: add a common name or subject alternative names to the request".into(),
            );
        }
        let duration = match &self.duration {
            None => DEFAULT_DURATION,
            Some(d) => {
                let d = parse_go_duration("spec.duration", d).map_err(|e| e.to_string())?;
                if d < MIN_DURATION {
                    return Err(format!(
                        "spec.duration: {d:?} is shorter than a minute; use at least \"1m\""
                    ));
                }
                d
            }
        };
        let mut usages = Vec::new();
        for (i, usage) in self.usages.iter().enumerate() {
            usages.push(KeyUsage::parse(usage).ok_or_else(|| {
                format!(
                    "spec.usages[{i}]: unknown usage {:?}; use one of {}",
                    usage.chars().take(64).collect::<String>(),
                    SUPPORTED_USAGES.join(", ")
                )
            })?);
        }
        let mut request = Request::for_dns_names(content.dns_names);
        request.common_name = content.common_name;
        request.subject = content.subject;
        request.ip_addresses = content.ip_addresses;
        request.uris = content.uris;
        request.email_addresses = content.email_addresses;
        request.duration = duration;
        request.is_ca = self.is_ca;
        request.usages = usages;
        Ok(SigningPlan {
            issuer,
            request,
            csr,
        })
    }
}

/// Who sent an API request, as the API server tells admission
/// (`request.userInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RequestUser {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The JSON Patch that records `user` as the requester of a new
/// CertificateRequest, replacing whatever its creator wrote there: a user
/// cannot claim to be someone else (approvers decide by these fields).
pub fn requester_patch(user: &RequestUser) -> Value {
    json!([
        {"op": "add", "path": "/spec/username", "value": user.username},
        {"op": "add", "path": "/spec/uid", "value": user.uid},
        {"op": "add", "path": "/spec/groups", "value": user.groups},
        {"op": "add", "path": "/spec/extra", "value": user.extra},
    ])
}

impl CertificateRequest {
    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&CertificateCondition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }

    fn condition_is(&self, type_: &str, status: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == status)
    }

    pub fn is_approved(&self) -> bool {
        self.condition_is(condition::APPROVED, "True")
    }

    pub fn is_denied(&self) -> bool {
        self.condition_is(condition::DENIED, "True")
    }

    /// Whether the request reached an end: issued, failed, denied or
    /// invalid. Nothing more is done with it.
    pub fn is_finished(&self) -> bool {
        self.condition(condition::READY).is_some_and(|c| {
            matches!(
                c.reason.as_deref(),
                Some(reason::ISSUED | reason::FAILED | reason::DENIED | reason::INVALID_REQUEST)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{KeyAlgorithm, PrivateKey};

    fn spec_with(csr_pem: &str) -> CertificateRequestSpec {
        CertificateRequestSpec {
            request: base64::engine::general_purpose::STANDARD.encode(csr_pem),
            issuer_ref: IssuerReference {
                name: "ca".into(),
                kind: Some("ClusterIssuer".into()),
                group: None,
            },
            duration: Some("24h".into()),
            is_ca: false,
            usages: vec!["client auth".into(), "digital signature".into()],
            username: None,
            uid: None,
            groups: Vec::new(),
            extra: BTreeMap::new(),
        }
    }

    fn csr_pem(names: &[&str]) -> String {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .serialize_request(key.key_pair())
            .unwrap()
            .pem()
            .unwrap()
    }

    #[test]
    fn a_request_plans_with_its_names_duration_and_usages() {
        let plan = spec_with(&csr_pem(&["app.example.com"])).plan().unwrap();
        let mut raw = spec_with("");
        raw.request = csr_pem(&["raw.example.com"]);
        assert_eq!(raw.plan().unwrap().request.dns_names, ["raw.example.com"]);
        assert_eq!(plan.issuer.name, "ca");
        assert_eq!(plan.request.dns_names, ["app.example.com"]);
        assert_eq!(plan.request.duration, Duration::from_secs(24 * 3600));
        assert_eq!(
            plan.request.usages,
            [KeyUsage::ClientAuth, KeyUsage::DigitalSignature]
        );
    }

    #[test]
    fn invalid_requests_say_which_field_and_why() {
        let mut spec = spec_with(&csr_pem(&["app.example.com"]));
        spec.request = "not base64!".into();
        assert!(spec
            .plan()
            .unwrap_err()
            .starts_with("spec.request is not base64"));

        spec.request = base64::engine::general_purpose::STANDARD.encode("hello");
        let err = spec.plan().unwrap_err();
        assert!(err.starts_with("spec.request: "), "{err}");

        let err = spec_with(&csr_pem(&[])).plan().unwrap_err();
        assert!(err.contains("names no subject"), "{err}");

        let mut spec = spec_with(&csr_pem(&["app.example.com"]));
        spec.duration = Some("30s".into());
        assert!(spec.plan().unwrap_err().starts_with("spec.duration"));

        let mut spec = spec_with(&csr_pem(&["app.example.com"]));
        spec.usages = vec!["code signing".into()];
        assert!(spec.plan().unwrap_err().starts_with("spec.usages[0]"));
    }

    #[test]
    fn the_requester_patch_overwrites_every_identity_field() {
        let user = RequestUser {
            username: "system:serviceaccount:apps:csi".into(),
            uid: "1234".into(),
            groups: vec!["system:serviceaccounts".into()],
            extra: BTreeMap::from([("scopes".into(), vec!["a".into()])]),
        };
        let mut object =
            json!({"spec": {"username": "admin", "groups": ["system:masters"], "request": "x"}});
        json_patch::patch(
            &mut object,
            &serde_json::from_value::<json_patch::Patch>(requester_patch(&user)).unwrap(),
        )
        .unwrap();
        assert_eq!(object["spec"]["username"], "system:serviceaccount:apps:csi");
        assert_eq!(object["spec"]["groups"], json!(["system:serviceaccounts"]));
        assert_eq!(object["spec"]["uid"], "1234");
        assert_eq!(object["spec"]["extra"]["scopes"], json!(["a"]));
        assert_eq!(object["spec"]["request"], "x");
    }

    #[test]
    fn external_issuer_groups_are_not_certweaves() {
        let mut spec = spec_with(&csr_pem(&["a.example.com"]));
        assert!(is_for_certweave(&spec));
        spec.issuer_ref.group = Some("awspca.cert-manager.io".into());
        assert!(!is_for_certweave(&spec));
    }
}
