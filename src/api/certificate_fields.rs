//! The Certificate fields beyond names, lifetime and key: subject
//! attributes and additional output formats, which certweave writes, and
//! the cert-manager fields it does not implement yet, which it refuses by
//! name instead of letting the API server prune them: a manifest that asks
//! for a keystore must not silently get a Secret without one.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::certificate::CertificateSpec;
use super::InvalidField;
use crate::model::{Subject, SubjectAttribute};
use crate::store::OutputFormats;

/// Longest subject attribute value accepted (X.520's upper bound for
/// localities and provinces; most CAs cut at 64).
const MAX_SUBJECT_VALUE: usize = 128;

/// `spec.subject`: X.509 subject attributes besides the common name.
/// certweave writes one value per attribute.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!has(self.organizations) || size(self.organizations) <= 1", "message": "spec.subject.organizations: certweave writes one value per subject attribute; keep one organization"},
    {"rule": "!has(self.countries) || size(self.countries) <= 1", "message": "spec.subject.countries: certweave writes one value per subject attribute; keep one country"},
    {"rule": "!has(self.organizationalUnits) || size(self.organizationalUnits) <= 1", "message": "spec.subject.organizationalUnits: certweave writes one value per subject attribute; keep one organizational unit"},
    {"rule": "!has(self.localities) || size(self.localities) <= 1", "message": "spec.subject.localities: certweave writes one value per subject attribute; keep one locality"},
    {"rule": "!has(self.provinces) || size(self.provinces) <= 1", "message": "spec.subject.provinces: certweave writes one value per subject attribute; keep one province"},
    {"rule": "!has(self.streetAddresses) || size(self.streetAddresses) <= 1", "message": "spec.subject.streetAddresses: certweave writes one value per subject attribute; keep one street address"},
    {"rule": "!has(self.postalCodes) || size(self.postalCodes) <= 1", "message": "spec.subject.postalCodes: certweave writes one value per subject attribute; keep one postal code"}
]))]
pub struct X509Subject {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    /// Two-letter country codes (ISO 3166).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizational_units: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub localities: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provinces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub street_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub postal_codes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
}

/// One of `spec.additionalOutputFormats`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct AdditionalOutputFormat {
    /// `DER` (Secret key `key.der`) or `CombinedPEM` (`tls-combined.pem`).
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["DER", "CombinedPEM"]))]
    pub type_: String,
}

/// `spec.otherNames[]`: an `otherName` subject alternative name with a
/// UTF-8 string value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct OtherName {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    #[serde(default, rename = "utf8Value", skip_serializing_if = "Option::is_none")]
    pub utf8_value: Option<String>,
}

/// `spec.nameConstraints`, for CA certificates (`uriDomains` and
/// `critical: false` are refused: see [`check`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NameConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub critical: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permitted: Option<NameConstraintItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excluded: Option<NameConstraintItem>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct NameConstraintItem {
    #[serde(default, rename = "dnsDomains", skip_serializing_if = "Vec::is_empty")]
    pub dns_domains: Vec<String>,
    #[serde(default, rename = "ipRanges", skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uri_domains: Vec<String>,
}

/// `spec.renewal` (cert-manager v1.21; only `policy: RenewBefore`, the
/// default, is accepted: see [`check`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct CertificateRenewal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["RenewBefore", "Disabled"]))]
    pub policy: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<CertificateRenewalWindow>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRenewalWindow {
    pub cron: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    pub window_duration: String,
}

/// `spec.keystores`: PKCS#12 and JKS keystores in the Secret (see
/// [`super::keystores`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct CertificateKeystores {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jks: Option<Keystore>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs12: Option<Keystore>,
}

/// A JKS or PKCS#12 keystore request, with cert-manager's fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!self.create || (has(self.password) ? 1 : 0) + (has(self.passwordSecretRef) ? 1 : 0) == 1",
        "message": "spec.keystores: a keystore needs exactly one of password and passwordSecretRef; give the password in a Secret (passwordSecretRef: {name, key}) or literally"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct Keystore {
    pub create: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<KeystorePasswordRef>,
    /// JKS only: the key's alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// PKCS#12 only: `LegacyRC2`, `LegacyDES` or `Modern2023`. certweave
    /// writes 3DES (`LegacyDES`) for `LegacyRC2` and when unset: every
    /// reader of RC2-40 files reads it, and OpenSSL 3 and Java 20 refuse
    /// RC2 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["LegacyRC2", "LegacyDES", "Modern2023"]))]
    pub profile: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct KeystorePasswordRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// The CEL rules of the Certificate CRD that refuse, at `kubectl apply`,
/// the cert-manager fields certweave does not implement; [`check`] says the
/// same for `certweave local`, which has no API server in front of it.
pub fn refusal_rules() -> serde_json::Value {
    serde_json::Value::Array(
        REFUSED
            .iter()
            .map(|r| serde_json::json!({"rule": r.cel, "message": format!("{}: {}", r.field, r.message)}))
            .collect(),
    )
}

/// A cert-manager field certweave refuses rather than drops.
struct Refused {
    field: &'static str,
    cel: &'static str,
    set: fn(&CertificateSpec) -> bool,
    message: &'static str,
}

const REFUSED: &[Refused] = &[
    Refused {
        field: "spec.literalSubject",
        cel: "!has(self.literalSubject) || (!has(self.commonName) && !has(self.subject))",
        set: |s| s.literal_subject.is_some() && (s.common_name.is_some() || s.subject.is_some()),
        message: "replaces commonName and subject, which are set too; keep either literalSubject or commonName and subject",
    },
    Refused {
        field: "spec.nameConstraints",
        cel: "!has(self.nameConstraints) || (has(self.isCA) && self.isCA)",
        set: |s| s.name_constraints.is_some() && !s.is_ca,
        message: "name constraints belong on CA certificates only (RFC 5280 §4.2.1.10); set isCA: true or remove them",
    },
    Refused {
        field: "spec.nameConstraints.critical",
        cel: "!has(self.nameConstraints) || !has(self.nameConstraints.critical) || self.nameConstraints.critical",
        set: |s| s.name_constraints.as_ref().is_some_and(|n| n.critical == Some(false)),
        message: "false is not supported by certweave: name constraints are always written critical, as RFC 5280 asks; remove it",
    },
    Refused {
        field: "spec.nameConstraints.permitted.uriDomains",
        cel: "!has(self.nameConstraints) || !has(self.nameConstraints.permitted) || !has(self.nameConstraints.permitted.uriDomains) || size(self.nameConstraints.permitted.uriDomains) == 0",
        set: |s| s.name_constraints.as_ref().and_then(|n| n.permitted.as_ref()).is_some_and(|p| !p.uri_domains.is_empty()),
        message: "URI domain constraints are not supported by certweave; use dnsDomains, ipRanges or emailAddresses",
    },
    Refused {
        field: "spec.nameConstraints.excluded.uriDomains",
        cel: "!has(self.nameConstraints) || !has(self.nameConstraints.excluded) || !has(self.nameConstraints.excluded.uriDomains) || size(self.nameConstraints.excluded.uriDomains) == 0",
        set: |s| s.name_constraints.as_ref().and_then(|n| n.excluded.as_ref()).is_some_and(|p| !p.uri_domains.is_empty()),
        message: "URI domain constraints are not supported by certweave; use dnsDomains, ipRanges or emailAddresses",
    },
    Refused {
        field: "spec.renewal",
        cel: "!has(self.renewal) || ((!has(self.renewal.policy) || self.renewal.policy == 'RenewBefore') && (!has(self.renewal.windows) || size(self.renewal.windows) == 0))",
        set: |s| {
            s.renewal.as_ref().is_some_and(|r| {
                r.policy.as_deref().is_some_and(|p| p != "RenewBefore") || !r.windows.is_empty()
            })
        },
        message: "renewal windows and policy Disabled are not supported by certweave; remove them (renewBefore and renewBeforePercentage decide when to renew)",
    },
    Refused {
        field: "spec.signatureAlgorithm",
        cel: "!has(self.signatureAlgorithm)",
        set: |s| s.signature_algorithm.is_some(),
        message: "not supported by certweave; remove it (the issuer's key picks the signature: SHA-256 for RSA and P-256, SHA-384 for P-384)",
    },
    Refused {
        field: "spec.encodeUsagesInRequest",
        cel: "!has(self.encodeUsagesInRequest) || self.encodeUsagesInRequest",
        set: |s| s.encode_usages_in_request == Some(false),
        message: "false is not supported by certweave; remove it (usages are always encoded)",
    },
];

/// What [`check`] translates.
pub struct CheckedFields {
    pub subject: Subject,
    pub other_names: Vec<crate::model::OtherName>,
    pub name_constraints: Option<crate::model::NameConstraints>,
    pub output_formats: OutputFormats,
    pub keystores: super::keystores::KeystoreRequest,
    pub literal_subject: Option<crate::model::LiteralSubject>,
}

/// Most `otherNames` accepted, and the longest value.
const MAX_OTHER_NAMES: usize = 10;
const MAX_OTHER_NAME_VALUE: usize = 256;

/// Checks the fields of this module and translates the ones certweave
/// implements, adding every problem to `errors`.
pub fn check(spec: &CertificateSpec, errors: &mut Vec<InvalidField>) -> CheckedFields {
    for refused in REFUSED {
        if (refused.set)(spec) {
            errors.push(InvalidField::new(
                refused.field,
                refused.message,
                format!("remove {} from the Certificate", refused.field),
            ));
        }
    }
    if spec.revision_history_limit.is_some_and(|l| l < 1) {
        errors.push(InvalidField::new(
            "spec.revisionHistoryLimit",
            "must be 1 or more",
            "set it to 1 or more, or remove it",
        ));
    }
    let subject = spec
        .subject
        .as_ref()
        .map(|s| subject(s, errors))
        .unwrap_or_default();
    let mut formats = OutputFormats::default();
    for (i, format) in spec.additional_output_formats.iter().enumerate() {
        match format.type_.as_str() {
            "DER" => formats.der = true,
            "CombinedPEM" => formats.combined_pem = true,
            other => errors.push(InvalidField::new(
                format!("spec.additionalOutputFormats[{i}].type"),
                format!("unknown format {:?}", truncate(other)),
                "use \"DER\" or \"CombinedPEM\"",
            )),
        }
    }
    CheckedFields {
        subject,
        other_names: other_names(&spec.other_names, errors),
        name_constraints: spec
            .name_constraints
            .as_ref()
            .map(|n| name_constraints(n, errors)),
        output_formats: formats,
        keystores: super::keystores::KeystoreRequest::check(spec.keystores.as_ref(), errors),
        literal_subject: spec.literal_subject.as_deref().and_then(|text| {
            super::literal_subject::parse(text)
                .map_err(|e| errors.push(e))
                .ok()
        }),
    }
}

/// Most entries in one list of a name constraint.
const MAX_CONSTRAINTS: usize = 20;

fn name_constraints(
    spec: &NameConstraints,
    errors: &mut Vec<InvalidField>,
) -> crate::model::NameConstraints {
    let side = |name: &str, item: Option<&NameConstraintItem>, errors: &mut Vec<InvalidField>| {
        let mut out = crate::model::NameSubtrees::default();
        let Some(item) = item else {
            return out;
        };
        let field = |list: &str| format!("spec.nameConstraints.{name}.{list}");
        for (list, values) in [
            ("dnsDomains", &item.dns_domains),
            ("ipRanges", &item.ip_ranges),
            ("emailAddresses", &item.email_addresses),
        ] {
            if values.len() > MAX_CONSTRAINTS {
                errors.push(InvalidField::new(
                    field(list),
                    format!("{} entries, more than {MAX_CONSTRAINTS}", values.len()),
                    "keep at most 20 entries per list",
                ));
                continue;
            }
            for (i, value) in values.iter().enumerate() {
                let at = format!("{}[{i}]", field(list));
                let ok = match list {
                    "dnsDomains" => {
                        let domain = value.strip_prefix('.').unwrap_or(value);
                        super::names::check_dns_name(&at, domain).is_ok()
                            && !domain.starts_with('*')
                    }
                    "ipRanges" => value.parse::<cidr::CidrRange>().is_ok(),
                    _ => {
                        !value.is_empty()
                            && value.len() <= 253
                            && value.is_ascii()
                            && !value.contains(' ')
                    }
                };
                if !ok {
                    errors.push(InvalidField::new(
                        at,
                        format!("{:?} is not a valid {list} entry", truncate(value)),
                        match list {
                            "dnsDomains" => "write a domain such as example.com (no wildcard)",
                            "ipRanges" => "write a CIDR range such as 10.0.0.0/8 or 2001:db8::/32",
                            _ => {
                                "write a mailbox, a host, or .example.com for a domain's mailboxes"
                            }
                        },
                    ));
                    continue;
                }
                match list {
                    "dnsDomains" => out.dns_domains.push(value.clone()),
                    "ipRanges" => out.ip_ranges.push(value.clone()),
                    _ => out.email_addresses.push(value.clone()),
                }
            }
        }
        out
    };
    crate::model::NameConstraints {
        permitted: side("permitted", spec.permitted.as_ref(), errors),
        excluded: side("excluded", spec.excluded.as_ref(), errors),
    }
}

/// CIDR ranges as name constraints take them.
mod cidr {
    use std::net::IpAddr;
    use std::str::FromStr;

    /// `address/prefix` with the prefix within the address's length.
    pub struct CidrRange;

    impl FromStr for CidrRange {
        type Err = ();
        fn from_str(text: &str) -> Result<Self, ()> {
            let (address, prefix) = text.split_once('/').ok_or(())?;
            let address: IpAddr = address.parse().map_err(|_| ())?;
            let prefix: u8 = prefix.parse().map_err(|_| ())?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            (prefix <= max).then_some(CidrRange).ok_or(())
        }
    }
}

fn other_names(spec: &[OtherName], errors: &mut Vec<InvalidField>) -> Vec<crate::model::OtherName> {
    if spec.len() > MAX_OTHER_NAMES {
        errors.push(InvalidField::new(
            "spec.otherNames",
            format!("{} entries, more than {MAX_OTHER_NAMES}", spec.len()),
            "keep at most 10 otherNames",
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, name) in spec.iter().enumerate() {
        let oid = name.oid.as_deref().and_then(parse_oid);
        let value = name.utf8_value.as_deref().unwrap_or_default();
        match oid {
            None => errors.push(InvalidField::new(
                format!("spec.otherNames[{i}].oid"),
                format!(
                    "{:?} is not an object identifier",
                    truncate(name.oid.as_deref().unwrap_or_default())
                ),
                "write a dotted OID such as 1.3.6.1.4.1.311.20.2.3 (a Microsoft UPN)",
            )),
            Some(_) if value.is_empty() || value.chars().count() > MAX_OTHER_NAME_VALUE => errors
                .push(InvalidField::new(
                    format!("spec.otherNames[{i}].utf8Value"),
                    format!(
                        "{:?} is empty or longer than {MAX_OTHER_NAME_VALUE} characters",
                        truncate(value)
                    ),
                    "give the name's value, e.g. user@example.com for a UPN",
                )),
            Some(oid) => out.push(crate::model::OtherName {
                oid,
                value: value.to_owned(),
            }),
        }
    }
    out
}

/// A dotted object identifier: at least two arcs, the first 0, 1 or 2, the
/// second below 40 unless the first is 2.
fn parse_oid(text: &str) -> Option<Vec<u64>> {
    if text.len() > 128 {
        return None;
    }
    let arcs: Vec<u64> = text
        .split('.')
        .map(|a| {
            (!a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
                .then(|| a.parse().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let valid = arcs.len() >= 2 && arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] < 40);
    valid.then_some(arcs)
}

fn subject(spec: &X509Subject, errors: &mut Vec<InvalidField>) -> Subject {
    let mut out = Subject::default();
    let lists: [(SubjectAttribute, &Vec<String>); 7] = [
        (SubjectAttribute::Country, &spec.countries),
        (SubjectAttribute::Organization, &spec.organizations),
        (
            SubjectAttribute::OrganizationalUnit,
            &spec.organizational_units,
        ),
        (SubjectAttribute::Locality, &spec.localities),
        (SubjectAttribute::Province, &spec.provinces),
        (SubjectAttribute::StreetAddress, &spec.street_addresses),
        (SubjectAttribute::PostalCode, &spec.postal_codes),
    ];
    let serial: Vec<String> = spec.serial_number.iter().cloned().collect();
    for (attribute, values) in lists
        .into_iter()
        .chain([(SubjectAttribute::SerialNumber, &serial)])
    {
        let field = format!("spec.subject.{}", attribute.field());
        if values.len() > 1 {
            errors.push(InvalidField::new(
                &field,
                format!(
                    "{} values; certweave writes one value per subject attribute",
                    values.len()
                ),
                "keep one value",
            ));
            continue;
        }
        let Some(value) = values.first() else {
            continue;
        };
        if value.is_empty() || value.chars().count() > MAX_SUBJECT_VALUE {
            errors.push(InvalidField::new(
                &field,
                format!(
                    "{:?} is empty or longer than {MAX_SUBJECT_VALUE} characters",
                    truncate(value)
                ),
                "give a value of 1 to 128 characters",
            ));
            continue;
        }
        if attribute == SubjectAttribute::Country
            && !(value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()))
        {
            errors.push(InvalidField::new(
                &field,
                format!("{:?} is not a two-letter country code", truncate(value)),
                "use an ISO 3166 code such as \"DE\" or \"US\"",
            ));
            continue;
        }
        out.set(attribute, value.clone());
    }
    out
}

/// A value quoted in a message, cut so a hostile manifest cannot make the
/// message large.
fn truncate(value: &str) -> String {
    crate::model::text::cut(value, crate::model::text::QUOTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> CertificateSpec {
        let mut value = serde_json::json!({
            "secretName": "web-tls",
            "dnsNames": ["web.example.com"],
            "issuerRef": {"name": "ca"},
        });
        value
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn subject_and_output_formats_are_translated() {
        let spec = spec(serde_json::json!({
            "subject": {"organizations": ["Example Corp"], "countries": ["DE"], "serialNumber": "42"},
            "additionalOutputFormats": [{"type": "DER"}, {"type": "CombinedPEM"}],
            "revisionHistoryLimit": 3,
        }));
        let mut errors = Vec::new();
        let checked = check(&spec, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            checked.subject.to_string(),
            "C=DE, O=Example Corp, serialNumber=42"
        );
        assert_eq!(
            checked.output_formats,
            OutputFormats {
                der: true,
                combined_pem: true,
                ..Default::default()
            }
        );
    }

    #[test]
    fn every_unimplemented_field_is_refused_by_name() {
        let spec = spec(serde_json::json!({
            "literalSubject": "CN=web,O=Example",
            "commonName": "web",
            "nameConstraints": {"permitted": {"dnsDomains": ["example.com"]}},
            "signatureAlgorithm": "SHA384WithRSA",
            "encodeUsagesInRequest": false,
            "renewal": {"windows": [{"cron": "0 2 * * *", "windowDuration": "2h"}]},
            "revisionHistoryLimit": 0,
        }));
        let mut errors = Vec::new();
        check(&spec, &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.literalSubject",
                "spec.nameConstraints",
                "spec.renewal",
                "spec.signatureAlgorithm",
                "spec.encodeUsagesInRequest",
                "spec.revisionHistoryLimit",
            ]
        );
        // A keystore that is not created asks for nothing.
        let spec = super::tests::spec(serde_json::json!({"keystores": {"jks": {"create": false}}}));
        let mut errors = Vec::new();
        check(&spec, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn name_constraints_are_for_cas_and_checked() {
        let constraints = serde_json::json!({
            "permitted": {"dnsDomains": ["example.com", ".corp.example"], "ipRanges": ["10.0.0.0/8"], "emailAddresses": ["example.com"]},
            "excluded": {"dnsDomains": ["bad.example.com"], "ipRanges": ["2001:db8::/129"], "uriDomains": ["x.example"]},
            "critical": false,
        });
        let spec = spec(serde_json::json!({"isCA": true, "nameConstraints": constraints}));
        let mut errors = Vec::new();
        let checked = check(&spec, &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.nameConstraints.critical",
                "spec.nameConstraints.excluded.uriDomains",
                "spec.nameConstraints.excluded.ipRanges[0]",
            ]
        );
        let translated = checked.name_constraints.unwrap();
        assert_eq!(
            translated.permitted.dns_domains,
            ["example.com", ".corp.example"]
        );
        assert_eq!(translated.permitted.ip_ranges, ["10.0.0.0/8"]);
        assert_eq!(translated.excluded.dns_domains, ["bad.example.com"]);
        // Not on a leaf.
        let spec = super::tests::spec(
            serde_json::json!({"nameConstraints": {"permitted": {"dnsDomains": ["example.com"]}}}),
        );
        let mut errors = Vec::new();
        check(&spec, &mut errors);
        assert_eq!(errors[0].field, "spec.nameConstraints");
    }

    #[test]
    fn other_names_are_checked_and_translated() {
        let spec = spec(serde_json::json!({"otherNames": [
            {"oid": "1.3.6.1.4.1.311.20.2.3", "utf8Value": "web@example.com"},
            {"oid": "1.3.x", "utf8Value": "v"},
            {"oid": "1.2.3", "utf8Value": ""},
        ]}));
        let mut errors = Vec::new();
        let checked = check(&spec, &mut errors);
        assert_eq!(checked.other_names.len(), 1);
        assert_eq!(
            checked.other_names[0].to_string(),
            "1.3.6.1.4.1.311.20.2.3=web@example.com"
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.otherNames[1].oid", "spec.otherNames[2].utf8Value"]
        );
        assert_eq!(parse_oid("3.1"), None);
        assert_eq!(parse_oid("1.40"), None);
        assert_eq!(parse_oid("2.999.1"), Some(vec![2, 999, 1]));
    }

    #[test]
    fn bad_subject_values_name_the_field_and_stay_short() {
        let long = "x".repeat(100_000);
        let spec = spec(serde_json::json!({
            "subject": {"organizations": ["a", "b"], "countries": ["Germany"], "localities": [long]},
        }));
        let mut errors = Vec::new();
        let checked = check(&spec, &mut errors);
        assert!(checked.subject.is_empty());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.subject.countries",
                "spec.subject.organizations",
                "spec.subject.localities"
            ]
        );
        assert!(errors.iter().all(|e| e.problem.len() < 200), "{errors:?}");
    }
}
