//! Conformance: what a Certificate asks for is what its Secret holds, for
//! each issuer type that can serve the request. Each case is a
//! Certificate spec and what its leaf must show; every case is created at
//! once per issuer and checked when Ready: the names (DNS, IP, URI, e-mail,
//! common name), the key type, `tls.key` matching `tls.crt`, the chain to
//! the issuer's root, CA-ness and extended key usages.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use serde_json::{json, Value};
use x509_parser::prelude::{FromDer, X509Certificate};

use certweave::model::CertificateRequest;
use certweave::pki::{
    check_bundle, parse_pem_chain, verify_chain_to_root, KeyAlgorithm, PrivateKey,
};

/// Which issuers a case applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuers {
    /// SelfSigned and CA: anything X.509 can say.
    Signing,
    /// Also ACME over HTTP-01 (names a CA can validate, key types it takes).
    AcmeToo,
    /// ACME over DNS-01 only (wildcards), and the signing issuers.
    Dns01,
}

/// One Certificate and what its leaf must hold.
pub struct Case {
    /// The Certificate's name suffix (`<issuer>-<name>`).
    pub name: &'static str,
    /// The spec without `secretName` and `issuerRef`.
    pub spec: Value,
    pub issuers: Issuers,
    /// What the leaf must say (names, common name, key type, CA flag),
    /// read from `spec` here, independently of the controller's parsing.
    pub expected: CertificateRequest,
    /// Extended key usages the leaf must list, and must not.
    pub eku_present: Vec<&'static str>,
    pub eku_absent: Vec<&'static str>,
    /// Parts the leaf's subject must show (`O=Example Corp`), read with
    /// x509-parser.
    pub subject_parts: Vec<&'static str>,
    /// `spec.additionalOutputFormats` asks for `key.der` and
    /// `tls-combined.pem`, checked against `tls.key` and `tls.crt`.
    pub output_formats: bool,
    /// OIDs of the `otherName` subject alternative names the leaf must
    /// hold.
    pub other_name_oids: Vec<&'static str>,
}

impl Case {
    fn new(name: &'static str, issuers: Issuers, spec: Value) -> Self {
        let strings = |field: &str| -> Vec<String> {
            spec[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let mut expected = CertificateRequest::for_dns_names(strings("dnsNames"));
        expected.ip_addresses = strings("ipAddresses")
            .iter()
            .map(|ip| ip.parse().unwrap())
            .collect();
        expected.uris = strings("uris");
        expected.email_addresses = strings("emailAddresses");
        expected.common_name = spec["commonName"].as_str().map(str::to_owned);
        expected.is_ca = spec["isCA"].as_bool().unwrap_or(false);
        // cert-manager's default when the spec names no algorithm: RSA 2048.
        expected.key_algorithm = KeyAlgorithm::from_cert_manager(
            spec["privateKey"]["algorithm"].as_str().unwrap_or("RSA"),
            spec["privateKey"]["size"].as_u64().map(|s| s as u32),
        )
        .unwrap();
        Self {
            name,
            expected,
            eku_present: vec!["serverAuth"],
            eku_absent: Vec::new(),
            subject_parts: Vec::new(),
            output_formats: spec["additionalOutputFormats"].is_array(),
            other_name_oids: Vec::new(),
            issuers,
            spec,
        }
    }

    /// The Certificate object for `issuer_ref`, named `<prefix>-<name>`.
    pub fn certificate(&self, prefix: &str, namespace: &str, issuer_ref: &Value) -> Value {
        let name = format!("{prefix}-{}", self.name);
        let mut spec = self.spec.clone();
        spec["secretName"] = json!(name);
        spec["issuerRef"] = issuer_ref.clone();
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        })
    }

    /// Checks the Secret written for this case; `root_pem` empty means
    /// the leaf must be self-signed.
    pub fn check(&self, secret: &Secret, root_pem: &str) -> Result<(), String> {
        if secret.type_.as_deref() != Some("kubernetes.io/tls") {
            return Err(format!("type {:?}, not kubernetes.io/tls", secret.type_));
        }
        let data = |key: &str| -> Result<String, String> {
            secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
                .ok_or_else(|| format!("no {key}"))
        };
        let chain = data("tls.crt")?;
        let key_pem = data("tls.key")?;
        // Names present, key matching, links verified, valid now.
        let leaf = check_bundle(&chain, &key_pem, Some(&self.expected), SystemTime::now())
            .map_err(|e| format!("tls.crt/tls.key: {e}"))?;
        let root = if root_pem.is_empty() {
            &chain
        } else {
            root_pem
        };
        verify_chain_to_root(&chain, root).map_err(|e| format!("chain: {e}"))?;
        let key = PrivateKey::from_pem(&key_pem).map_err(|e| format!("tls.key: {e}"))?;
        if key.algorithm() != self.expected.key_algorithm {
            return Err(format!(
                "tls.key is {:?}, the spec asks for {:?}",
                key.algorithm(),
                self.expected.key_algorithm
            ));
        }
        if let Some(cn) = &self.expected.common_name {
            if leaf.subject_cn.as_deref() != Some(cn.as_str()) {
                return Err(format!(
                    "subject CN {:?}, the spec asks for {cn:?}",
                    leaf.subject_cn
                ));
            }
        }
        if leaf.is_ca != self.expected.is_ca {
            return Err(format!(
                "isCA {} in the certificate, {} in the spec",
                leaf.is_ca, self.expected.is_ca
            ));
        }
        let ders = parse_pem_chain(&chain).map_err(|e| e.to_string())?;
        let (_, cert) = X509Certificate::from_der(&ders[0]).map_err(|e| e.to_string())?;
        let eku = cert
            .extended_key_usage()
            .ok()
            .flatten()
            .map(|e| e.value.clone());
        let has = |usage: &str| match &eku {
            Some(eku) => match usage {
                "serverAuth" => eku.server_auth,
                "clientAuth" => eku.client_auth,
                _ => false,
            },
            None => false,
        };
        if !self.expected.is_ca {
            for usage in &self.eku_present {
                if !has(usage) {
                    return Err(format!(
                        "the leaf lacks extended key usage {usage}: {eku:?}"
                    ));
                }
            }
        }
        let subject = cert.subject().to_string();
        for part in &self.subject_parts {
            if !subject.contains(part) {
                return Err(format!("the leaf's subject {subject:?} lacks {part:?}"));
            }
        }
        let other_names: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::OtherName(oid, _) => {
                            Some(oid.to_id_string())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for oid in &self.other_name_oids {
            if !other_names.iter().any(|o| o == oid) {
                return Err(format!("the leaf lacks otherName {oid}: {other_names:?}"));
            }
        }
        if self.output_formats {
            let key_der = secret
                .data
                .as_ref()
                .and_then(|d| d.get("key.der"))
                .ok_or("no key.der")?;
            let (_, block) = x509_parser::pem::parse_x509_pem(key_pem.as_bytes())
                .map_err(|e| format!("tls.key: {e}"))?;
            if key_der.0 != block.contents {
                return Err("key.der is not the DER of tls.key".into());
            }
            let combined = data("tls-combined.pem")?;
            if !(combined.starts_with(&key_pem) && combined.ends_with(&chain)) {
                return Err("tls-combined.pem is not tls.key followed by tls.crt".into());
            }
        }
        for usage in &self.eku_absent {
            if has(usage) {
                return Err(format!(
                    "the leaf has extended key usage {usage}, not asked for"
                ));
            }
        }
        Ok(())
    }
}

/// A DNS name of exactly 253 characters (the limit) under `zone`.
pub fn longest_name(zone: &str) -> String {
    let label = |c: char, n: usize| c.to_string().repeat(n);
    let fill = 253 - zone.len();
    // Labels of at most 63 characters, each followed by a dot.
    let mut name = String::new();
    let mut left = fill;
    let mut c = 'a';
    while left > 0 {
        let take = (left - 1).min(63);
        name.push_str(&label(c, take));
        name.push('.');
        left -= take + 1;
        c = (c as u8 + 1) as char;
    }
    name.push_str(zone);
    assert_eq!(name.len(), 253, "{name}");
    name
}

/// Every case, with names under `zone`.
pub fn cases(zone: &str) -> Vec<Case> {
    use Issuers::*;
    let n = |host: &str| format!("{host}.{zone}");
    let mut usages = Case::new(
        "client-usages",
        Signing,
        json!({"dnsNames": [n("client")], "usages": ["digital signature", "client auth"]}),
    );
    usages.eku_present = vec!["clientAuth"];
    usages.eku_absent = vec!["serverAuth"];
    let mut subject = Case::new(
        "subject",
        Signing,
        json!({"dnsNames": [n("subject")], "subject": {
            "organizations": ["Example Corp"], "countries": ["DE"],
            "organizationalUnits": ["Web"], "localities": ["Berlin"]
        }, "otherNames": [{"oid": "1.3.6.1.4.1.311.20.2.3", "utf8Value": "subject@example.test"}]}),
    );
    subject.subject_parts = vec!["O=Example Corp", "C=DE", "OU=Web", "L=Berlin"];
    subject.other_name_oids = vec!["1.3.6.1.4.1.311.20.2.3"];
    // literalSubject: written as given, in its order (the text names the
    // most specific attribute first; the certificate holds it last).
    let mut literal = Case::new(
        "literal-subject",
        Signing,
        json!({"dnsNames": [n("literal")], "literalSubject": "CN=literal,OU=Web,O=Example\\, Inc.,C=DE"}),
    );
    literal.subject_parts = vec!["C=DE, O=Example, Inc., OU=Web, CN=literal"];
    vec![
        literal,
        Case::new("single-dns", AcmeToo, json!({"dnsNames": [n("single")]})),
        Case::new(
            "ecdsa-p256",
            AcmeToo,
            json!({"dnsNames": [n("p256")], "privateKey": {"algorithm": "ECDSA", "size": 256}}),
        ),
        Case::new(
            "ecdsa-p384",
            AcmeToo,
            json!({"dnsNames": [n("p384")], "privateKey": {"algorithm": "ECDSA", "size": 384}}),
        ),
        Case::new(
            "ed25519",
            Signing,
            json!({"dnsNames": [n("ed")], "privateKey": {"algorithm": "Ed25519"}}),
        ),
        Case::new(
            "rsa-4096",
            AcmeToo,
            json!({"dnsNames": [n("rsa")], "privateKey": {"algorithm": "RSA", "size": 4096}}),
        ),
        Case::new(
            "cn-only",
            Signing,
            json!({"commonName": "certweave e2e common name"}),
        ),
        Case::new(
            "ip-sans",
            Signing,
            json!({"ipAddresses": ["192.0.2.10", "2001:db8::10"]}),
        ),
        Case::new(
            "dns-and-ip",
            AcmeToo,
            json!({"dnsNames": [n("both")], "ipAddresses": ["127.0.0.1"]}),
        ),
        Case::new(
            "email",
            Signing,
            json!({"dnsNames": [n("mail")], "emailAddresses": ["ops@example.test"]}),
        ),
        Case::new(
            "uri",
            Signing,
            json!({"uris": ["spiffe://cluster.local/ns/e2e/sa/api"], "commonName": "api"}),
        ),
        Case::new(
            "wildcard",
            Dns01,
            json!({"dnsNames": [format!("*.{zone}"), zone.to_owned()]}),
        ),
        Case::new(
            "longest-name",
            AcmeToo,
            json!({"dnsNames": [longest_name(zone)]}),
        ),
        usages,
        subject,
        Case::new(
            "output-formats",
            AcmeToo,
            json!({"dnsNames": [n("formats")], "privateKey": {"algorithm": "ECDSA", "encoding": "PKCS8"},
                   "additionalOutputFormats": [{"type": "DER"}, {"type": "CombinedPEM"}]}),
        ),
        Case::new(
            "is-ca",
            Signing,
            json!({"isCA": true, "commonName": "certweave e2e intermediate"}),
        ),
    ]
}
