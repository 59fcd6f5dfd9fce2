//! `cert-manager.io/v1` Certificate, as Rust types, and its translation into
//! what the engine needs.
//!
//! Field names and defaults are cert-manager's, so existing manifests apply
//! unchanged. [`CertificateSpec::plan`] is the one place that checks a spec:
//! `certweave local`, the controller and the CRD's validation all agree on
//! what is refused, and every refusal names the field and the fix.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::certificate_fields::{
    self, AdditionalOutputFormat, CertificateKeystores, CertificateRenewal, NameConstraints,
    OtherName, X509Subject,
};
use super::duration::parse_go_duration;
use super::names;
use super::{InvalidField, IssuerKind, IssuerRef};
pub use crate::model::KeyRotation;
pub use crate::model::RenewBefore;
use crate::model::{CertificateRequest, KeyUsage, DEFAULT_DURATION};
use crate::pki::{KeyAlgorithm, KeyEncoding};
use crate::store::OutputFormats;

// The CRD's CEL rules (`x-kubernetes-validations`) repeat the cheap,
// structural checks of `CertificateSpec::plan`, so `kubectl apply` refuses the
// common mistakes at once; `plan` stays the authority and reports the rest
// (durations, DNS syntax) on the Certificate's `Ready` condition. The schema
// declares no `default`s, as cert-manager's does not: defaults are applied by
// `plan`, so a Certificate written by the ingress shim without `duration`
// stays equal to what the API server stores, and an absent field means the
// same before and after a CRD upgrade.

/// A desired certificate: which names, from which issuer, into which Secret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    namespaced,
    status = "CertificateStatus",
    shortname = "cert",
    shortname = "certs",
    category = "cert-manager",
    doc = "A Certificate asks for an X.509 certificate, kept valid and renewed in the Secret named by spec.secretName.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secretName"}"#,
    printcolumn = r#"{"name":"Issuer","type":"string","jsonPath":".spec.issuerRef.name"}"#,
    printcolumn = r#"{"name":"Status","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.dnsNames) && size(self.dnsNames) > 0) || (has(self.ipAddresses) && size(self.ipAddresses) > 0) || (has(self.uris) && size(self.uris) > 0) || (has(self.emailAddresses) && size(self.emailAddresses) > 0) || has(self.commonName) || has(self.literalSubject)",
        "message": "spec: the certificate names no subject; set at least one of dnsNames, ipAddresses, uris, emailAddresses, commonName or literalSubject"
    },
    {
        "rule": "!has(self.renewBefore) || !has(self.renewBeforePercentage)",
        "message": "spec.renewBefore and spec.renewBeforePercentage are both set; keep only one of them"
    }
]))]
#[schemars(transform = add_refusal_rules)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// Secret that receives `tls.crt`, `tls.key` and `ca.crt`, in the
    /// Certificate's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: String,
    /// Subject common name; at most 64 characters (TLS clients ignore it
    /// when any subject alternative name is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub common_name: Option<String>,
    /// DNS subject alternative names (`*.example.com` for a wildcard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// IP address subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// URI subject alternative names (e.g. SPIFFE IDs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    /// Email subject alternative names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    /// Requested lifetime as a Go duration (`2160h`, `90m`); at least `1m`.
    /// Defaults to `2160h` (90 days). An issuer may ignore it (ACME servers
    /// usually do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// How long before expiry to renew, as a Go duration shorter than
    /// `duration`; default a third of the lifetime. Not with
    /// `renewBeforePercentage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    /// Renew when this percentage of the lifetime remains, 1 to 99
    /// (alternative to `renewBefore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 99))]
    pub renew_before_percentage: Option<i32>,
    /// The Issuer or ClusterIssuer that signs the certificate.
    pub issuer_ref: IssuerReference,
    /// Key algorithm, size, encoding and rotation policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<CertificatePrivateKey>,
    /// Key usages requested in the certificate; the issuer's defaults when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "usages_schema")]
    pub usages: Vec<String>,
    /// Ask for a CA certificate (adds `cert sign`).
    #[serde(default, rename = "isCA", skip_serializing_if = "std::ops::Not::not")]
    pub is_ca: bool,
    /// Labels and annotations copied onto the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,
    /// Subject attributes besides the common name, one value each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<X509Subject>,
    /// Extra encodings in the Secret: `DER` (`key.der`) and `CombinedPEM`
    /// (`tls-combined.pem`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_output_formats: Vec<AdditionalOutputFormat>,
    /// Accepted for cert-manager manifests; at least 1. certweave keeps no
    /// CertificateRequest history, so nothing is left to prune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub revision_history_limit: Option<i32>,
    /// The whole subject as an RFC 4514 string (`CN=app,O=Example,C=DE`),
    /// written as given; not with `commonName` or `subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal_subject: Option<String>,
    /// `otherName` subject alternative names with UTF-8 values (at most
    /// 10); not with ACME issuers, which validate DNS names and IPs only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub other_names: Vec<OtherName>,
    /// Name constraints of a CA certificate (`isCA: true`), written
    /// critical; `uriDomains` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_constraints: Option<NameConstraints>,
    /// Refused when a keystore is to be created (not written yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystores: Option<CertificateKeystores>,
    /// Refused (the issuer's key picks the signature algorithm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_algorithm: Option<String>,
    /// Only `true` (the default) is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encode_usages_in_request: Option<bool>,
    /// Only `policy: RenewBefore` (the default) is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal: Option<CertificateRenewal>,
}

/// Appends the rules refusing the cert-manager fields certweave does not
/// implement (kept beside their [`certificate_fields::check`] twins).
fn add_refusal_rules(schema: &mut schemars::Schema) {
    let rules = certificate_fields::refusal_rules();
    if let Some(serde_json::Value::Array(existing)) = schema.get_mut("x-kubernetes-validations") {
        existing.extend(rules.as_array().cloned().unwrap_or_default());
    }
}

/// The `usages` certweave can put in a certificate, in cert-manager's
/// spelling; the CRD accepts only these (see [`KeyUsage::parse`]).
pub const SUPPORTED_USAGES: [&str; 6] = [
    "digital signature",
    "key encipherment",
    "cert sign",
    "crl sign",
    "server auth",
    "client auth",
];

fn usages_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "string", "enum": SUPPORTED_USAGES},
    })
}

/// `issuerRef`: kind defaults to `Issuer`, group to `cert-manager.io`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.kind) || self.kind in ['', 'Issuer', 'ClusterIssuer'] || (has(self.group) && !(self.group in ['', 'cert-manager.io']))",
        "message": "spec.issuerRef.kind must be Issuer or ClusterIssuer for group cert-manager.io; use ClusterIssuer for a cluster-wide issuer, or omit kind for an Issuer in this namespace"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct IssuerReference {
    /// Name of the Issuer (in the Certificate's namespace) or ClusterIssuer.
    #[schemars(length(min = 1))]
    pub name: String,
    /// `Issuer` (default) or `ClusterIssuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `cert-manager.io` (default); certweave serves no other issuer group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `privateKey`: how the key is generated, encoded and rotated.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.size) || (has(self.algorithm) && self.algorithm == 'Ed25519') || ((has(self.algorithm) && self.algorithm == 'ECDSA') ? self.size in [256, 384] : (self.size >= 2048 && self.size <= 8192))",
        "message": "spec.privateKey.size does not fit the algorithm; use 2048 to 8192 for RSA, 256 or 384 for ECDSA (P-521 is not supported), or omit it"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct CertificatePrivateKey {
    /// `RSA` (default), `ECDSA` or `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["RSA", "ECDSA", "Ed25519"]))]
    pub algorithm: Option<String>,
    /// Bits for RSA (default 2048), curve size for ECDSA (default 256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i32>,
    /// `PKCS1` (default) or `PKCS8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["PKCS1", "PKCS8"]))]
    pub encoding: Option<String>,
    /// `Always` (default: a new key on every issuance) or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Never", "Always"]))]
    pub rotation_policy: Option<String>,
}

/// Labels and annotations copied onto the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Labels set on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations set on the Secret, next to the cert-manager.io ones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What `kubectl describe certificate` shows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CertificateCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_private_key_secret_name: Option<String>,
    /// When the next issuance attempt is due after failures: the backoff
    /// schedule, kept here so a restarted controller keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<Time>,
    /// ACME details of the current certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<CertificateAcmeStatus>,
}

/// `status.acme`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct CertificateAcmeStatus {
    /// The ACME server's renewal information (RFC 9773) about the current
    /// certificate, and the renewal time picked in its window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari: Option<AriStatus>,
    /// The last ACME order for this Certificate as certweave last saw it:
    /// each name, the challenge tried and the server's error. Present
    /// while an order is in flight and after one failed; cleared when a
    /// certificate is issued. (certweave's own field: cert-manager keeps
    /// this in Order and Challenge resources.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<AcmeOrderStatus>,
}

/// `status.acme.order`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct AcmeOrderStatus {
    /// The order's URL at the ACME server.
    pub url: String,
    /// `pending`, `ready`, `processing`, `valid` or `invalid`.
    pub state: String,
    /// One entry per name of the order (at most 100).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorizations: Vec<AcmeAuthorizationStatus>,
}

/// `status.acme.order.authorizations[]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
pub struct AcmeAuthorizationStatus {
    /// The name to prove (`www.example.com`, `*.example.com`, an IP).
    pub identifier: String,
    /// The challenge tried (`http-01`, `dns-01`); absent when the name was
    /// already valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<String>,
    /// `pending`, `valid`, `invalid`, `expired`, …
    pub state: String,
    /// The ACME server's error for this name (cut to 512 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `status.acme.ari`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AriStatus {
    /// Serial number (hex) of the certificate the window is for.
    pub serial_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_window_start: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggested_window_end: Option<Time>,
    /// The random point in the window the renewal is set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_renewal_time: Option<Time>,
    /// When the server is asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_time: Option<Time>,
    /// The server's explanation of the window, when it gives one.
    #[serde(
        default,
        rename = "explanationURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub explanation_url: Option<String>,
}

/// A status condition (`Ready`, `Issuing`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The reason of the `Issuing` condition with which a user asks for a new
/// certificate now (`cmctl renew`, `certweave renew`).
pub const MANUALLY_TRIGGERED: &str = "ManuallyTriggered";

impl Certificate {
    /// Whether a user asked for re-issuance and it has not happened yet:
    /// `Issuing=True` with reason `ManuallyTriggered` (the controller's
    /// next status replaces the condition).
    pub fn renewal_requested(&self) -> bool {
        self.renewal_request().is_some()
    }

    /// The `ManuallyTriggered` condition's transition time (empty when it
    /// has none): what tells one request from the next.
    pub fn renewal_request(&self) -> Option<String> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| {
                c.type_ == "Issuing"
                    && c.status == "True"
                    && c.reason.as_deref() == Some(MANUALLY_TRIGGERED)
            })
            .map(|c| {
                c.last_transition_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default()
            })
    }
}

/// A checked Certificate: everything the engine and the renewal queue need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePlan {
    pub secret_name: String,
    pub issuer: IssuerRef,
    pub request: CertificateRequest,
    pub renew_before: RenewBefore,
    pub rotation: KeyRotation,
    pub secret_template: SecretTemplate,
    pub output_formats: OutputFormats,
    /// Keystores, their passwords still to fetch.
    pub keystores: super::keystores::KeystoreRequest,
}

impl CertificateSpec {
    /// Checks the spec and translates it, reporting every problem at once
    /// (a user fixing a manifest wants the whole list).
    pub fn plan(&self) -> Result<CertificatePlan, Vec<InvalidField>> {
        let mut errors = Vec::new();
        let mut ok = |r: Result<(), InvalidField>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        ok(names::check_object_name(
            "spec.secretName",
            &self.secret_name,
        ));
        for (i, name) in self.dns_names.iter().enumerate() {
            ok(names::check_dns_name(&format!("spec.dnsNames[{i}]"), name));
        }
        let mut ip_addresses = Vec::new();
        for (i, ip) in self.ip_addresses.iter().enumerate() {
            match ip.parse::<IpAddr>() {
                Ok(ip) => ip_addresses.push(ip),
                Err(_) => ok(Err(InvalidField::new(
                    format!("spec.ipAddresses[{i}]"),
                    format!("{ip:?} is not an IP address"),
                    "write an IPv4 or IPv6 address such as 10.0.0.1",
                ))),
            }
        }
        for (i, email) in self.email_addresses.iter().enumerate() {
            if !email.contains('@') {
                ok(Err(InvalidField::new(
                    format!("spec.emailAddresses[{i}]"),
                    format!("{email:?} is not an email address"),
                    "write an address such as ops@example.com",
                )));
            }
        }
        for (i, uri) in self.uris.iter().enumerate() {
            if !uri.contains(':') {
                ok(Err(InvalidField::new(
                    format!("spec.uris[{i}]"),
                    format!("{uri:?} is not a URI"),
                    "write an absolute URI such as spiffe://cluster.local/ns/default/sa/web",
                )));
            }
        }
        if self.common_name.is_none()
            && self.literal_subject.is_none()
            && self.dns_names.is_empty()
            && self.ip_addresses.is_empty()
            && self.uris.is_empty()
            && self.email_addresses.is_empty()
        {
            ok(Err(InvalidField::new(
                "spec.dnsNames",
                "the certificate names no subject",
                "set at least one of dnsNames, ipAddresses, uris, emailAddresses, commonName or literalSubject",
            )));
        }
        if let Some(cn) = &self.common_name {
            if cn.is_empty() || cn.len() > 64 {
                ok(Err(InvalidField::new(
                    "spec.commonName",
                    "must be 1 to 64 characters",
                    "use a short name, usually one of dnsNames",
                )));
            }
        }

        let duration = match &self.duration {
            Some(d) => match parse_go_duration("spec.duration", d) {
                Ok(d) if d < Duration::from_secs(60) => {
                    ok(Err(InvalidField::new(
                        "spec.duration",
                        format!("{d:?} is shorter than a minute"),
                        "use at least \"1m\" (cert-manager's default is \"2160h\")",
                    )));
                    DEFAULT_DURATION
                }
                Ok(d) => d,
                Err(e) => {
                    ok(Err(e));
                    DEFAULT_DURATION
                }
            },
            None => DEFAULT_DURATION,
        };
        let renew_before = match (&self.renew_before, self.renew_before_percentage) {
            (Some(_), Some(_)) => {
                ok(Err(InvalidField::new(
                    "spec.renewBefore",
                    "renewBefore and renewBeforePercentage are both set",
                    "keep only one of them",
                )));
                RenewBefore::Default
            }
            (Some(rb), None) => {
                match parse_go_duration("spec.renewBefore", rb) {
                    Ok(rb) if rb >= duration => {
                        ok(Err(InvalidField::new(
                        "spec.renewBefore",
                        format!("renewBefore ({rb:?}) is not shorter than the duration ({duration:?})"),
                        "set renewBefore below spec.duration, e.g. a third of it",
                    )));
                        RenewBefore::Default
                    }
                    Ok(rb) if rb.is_zero() => {
                        ok(Err(InvalidField::new(
                        "spec.renewBefore",
                        "renewBefore is zero",
                        "give a positive duration, or drop it for the default (a third of the lifetime)",
                    )));
                        RenewBefore::Default
                    }
                    Ok(rb) => RenewBefore::Fixed(rb),
                    Err(e) => {
                        ok(Err(e));
                        RenewBefore::Default
                    }
                }
            }
            (None, Some(p)) if (1..100).contains(&p) => RenewBefore::Percentage(p as u8),
            (None, Some(p)) => {
                ok(Err(InvalidField::new(
                    "spec.renewBeforePercentage",
                    format!("{p} is not between 1 and 99"),
                    "use a percentage such as 33",
                )));
                RenewBefore::Default
            }
            (None, None) => RenewBefore::Default,
        };

        let issuer = self.issuer_ref.resolve("spec.issuerRef");
        let issuer = match issuer {
            Ok(i) => Some(i),
            Err(e) => {
                ok(Err(e));
                None
            }
        };

        let pk = self.private_key.clone().unwrap_or_default();
        let key_algorithm = match KeyAlgorithm::from_cert_manager(
            pk.algorithm.as_deref().unwrap_or("RSA"),
            pk.size.map(|s| s.max(0) as u32),
        ) {
            Ok(a) => a,
            Err(reason) => {
                ok(Err(InvalidField::new(
                    "spec.privateKey",
                    reason,
                    "set privateKey.algorithm to RSA, ECDSA or Ed25519 with a matching size",
                )));
                KeyAlgorithm::default()
            }
        };
        let key_encoding = match pk.encoding.as_deref() {
            None | Some("PKCS1") => KeyEncoding::Pkcs1,
            Some("PKCS8") => KeyEncoding::Pkcs8,
            Some(other) => {
                ok(Err(InvalidField::new(
                    "spec.privateKey.encoding",
                    format!("unknown encoding {other:?}"),
                    "use \"PKCS1\" or \"PKCS8\"",
                )));
                KeyEncoding::Pkcs8
            }
        };
        // Ed25519 has no PKCS#1 form; cert-manager writes PKCS#8 for it.
        let key_encoding = if key_algorithm == KeyAlgorithm::Ed25519 {
            KeyEncoding::Pkcs8
        } else {
            key_encoding
        };
        let rotation = match pk.rotation_policy.as_deref() {
            None | Some("Always") => KeyRotation::Always,
            Some("Never") => KeyRotation::Never,
            Some(other) => {
                ok(Err(InvalidField::new(
                    "spec.privateKey.rotationPolicy",
                    format!("unknown policy {other:?}"),
                    "use \"Always\" or \"Never\"",
                )));
                KeyRotation::Always
            }
        };
        let mut usages = Vec::new();
        for (i, usage) in self.usages.iter().enumerate() {
            match KeyUsage::parse(usage) {
                Some(u) => usages.push(u),
                None => ok(Err(InvalidField::new(
                    format!("spec.usages[{i}]"),
                    format!("unknown usage {usage:?}"),
                    "use \"digital signature\", \"key encipherment\", \"server auth\", \"client auth\", \"cert sign\" or \"crl sign\"",
                ))),
            }
        }

        let checked = certificate_fields::check(self, &mut errors);

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CertificatePlan {
            secret_name: self.secret_name.clone(),
            issuer: issuer.expect("no errors means the issuer resolved"),
            request: CertificateRequest {
                common_name: self.common_name.clone(),
                subject: checked.subject,
                literal_subject: checked.literal_subject,
                other_names: checked.other_names,
                name_constraints: checked.name_constraints,
                dns_names: self.dns_names.clone(),
                ip_addresses,
                uris: self.uris.clone(),
                email_addresses: self.email_addresses.clone(),
                duration,
                is_ca: self.is_ca,
                usages,
                key_algorithm,
                key_encoding,
            },
            renew_before,
            rotation,
            secret_template: self.secret_template.clone().unwrap_or_default(),
            output_formats: checked.output_formats,
            keystores: checked.keystores,
        })
    }
}

impl IssuerReference {
    /// The referenced issuer, checked: kind `Issuer` or `ClusterIssuer`,
    /// group `cert-manager.io`.
    pub fn resolve(&self, field: &str) -> Result<IssuerRef, InvalidField> {
        if let Some(group) = self.group.as_deref().filter(|g| !g.is_empty()) {
            if group != super::issuer_ref::ISSUER_GROUP {
                return Err(InvalidField::new(
                    format!("{field}.group"),
                    format!("external issuer group {group:?} is not served by certweave"),
                    "use group cert-manager.io (or omit it)",
                ));
            }
        }
        let kind = match self.kind.as_deref().filter(|k| !k.is_empty()) {
            Some(kind) => IssuerKind::parse(&format!("{field}.kind"), kind)?,
            None => IssuerKind::Issuer,
        };
        IssuerRef::new(&format!("{field}.name"), kind, &self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> CertificateSpec {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn cert_manager_docs_certificate_plans() {
        let plan = spec(
            "secretName: example-com-tls\nduration: 2160h\nrenewBefore: 360h\ndnsNames: [example.com, www.example.com]\nissuerRef: {name: ca-issuer, kind: Issuer, group: cert-manager.io}\nprivateKey: {algorithm: RSA, encoding: PKCS1, size: 2048}\n",
        )
        .plan()
        .unwrap();
        assert_eq!(plan.request.key_algorithm, KeyAlgorithm::Rsa(2048));
        assert_eq!(plan.request.key_encoding, KeyEncoding::Pkcs1);
        assert_eq!(
            plan.renew_before,
            RenewBefore::Fixed(Duration::from_secs(360 * 3600))
        );
        assert_eq!(plan.issuer.to_string(), "Issuer/ca-issuer");
    }

    #[test]
    fn defaults_and_short_durations() {
        let plan =
            spec("secretName: s\ndnsNames: [a.example]\nduration: 2m\nissuerRef: {name: x}\n")
                .plan()
                .unwrap();
        assert_eq!(plan.request.duration, Duration::from_secs(120));
        assert_eq!(
            plan.renew_before.before_expiry(Duration::from_secs(120)),
            Duration::from_secs(40)
        );
        assert_eq!(plan.rotation, KeyRotation::Always);
    }

    #[test]
    fn reports_every_problem_with_its_field() {
        let errors = spec(
            "secretName: Bad_Name\ndnsNames: ['*.com']\nipAddresses: [nope]\nduration: 1h\nrenewBefore: 2h\nrenewBeforePercentage: 10\nissuerRef: {name: x, kind: Vault}\nprivateKey: {algorithm: DSA}\nusages: [flying]\n",
        )
        .plan()
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for expected in [
            "spec.secretName",
            "spec.dnsNames[0]",
            "spec.ipAddresses[0]",
            "spec.renewBefore",
            "spec.issuerRef.kind",
            "spec.privateKey",
            "spec.usages[0]",
        ] {
            assert!(
                fields.contains(&expected),
                "{expected} missing from {fields:?}"
            );
        }
        let errors = spec("secretName: s\ndnsNames: [a.example]\nduration: 1h\nrenewBefore: 2h\nissuerRef: {name: x}\n")
            .plan()
            .unwrap_err();
        assert_eq!(errors[0].field, "spec.renewBefore");
    }
}
