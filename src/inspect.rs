//! `certweave inspect`: what a certificate file or a TLS Secret holds, the
//! way someone asks when a certificate is not what they expected: every
//! certificate of the chain (subject, names, validity and time left, key,
//! usages, issuer, serial, fingerprint), whether the private key matches
//! the leaf, whether the chain verifies to `ca.crt`, and cert-manager's
//! annotations on a Secret. Read-only, and it needs no cluster for files.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use serde::Serialize;
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

use crate::engine::timing::{rfc3339, short_span};
use crate::pki::{self, PrivateKey};

/// What there is to inspect: a chain, and perhaps a key and a CA.
#[derive(Default)]
pub struct Material {
    /// The certificates, leaf first, as DER.
    pub chain: Vec<Vec<u8>>,
    pub key_pem: Option<String>,
    pub ca_pem: Option<String>,
    /// A Secret's `cert-manager.io/*` annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Why a file cannot be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("the input holds no certificate; give a PEM file with CERTIFICATE blocks, or one DER certificate")]
    NoCertificate,
    #[error("the input is not PEM and not a DER certificate: {0}")]
    Unreadable(String),
}

/// Largest input read (a chain with keys is a few kilobytes).
pub const MAX_INPUT: usize = 1024 * 1024;

impl Material {
    /// Reads a PEM file (certificates, and a private key if there is one)
    /// or a single DER certificate.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InspectError> {
        if bytes.len() > MAX_INPUT {
            return Err(InspectError::Unreadable(format!(
                "{} bytes, more than the {MAX_INPUT} read",
                bytes.len()
            )));
        }
        let text = std::str::from_utf8(bytes).ok();
        match text.filter(|t| t.contains("-----BEGIN")) {
            Some(text) => {
                let chain = pki::parse_pem_chain(text)
                    .map_err(|e| InspectError::Unreadable(e.to_string()))?;
                if chain.is_empty() {
                    return Err(InspectError::NoCertificate);
                }
                let key_pem = text.contains("PRIVATE KEY-----").then(|| text.to_owned());
                Ok(Self {
                    chain,
                    key_pem,
                    ..Self::default()
                })
            }
            None => {
                X509Certificate::from_der(bytes)
                    .map_err(|e| InspectError::Unreadable(e.to_string()))?;
                Ok(Self {
                    chain: vec![bytes.to_vec()],
                    ..Self::default()
                })
            }
        }
    }
}

/// The report, as `-o json` prints it (field names are stable).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub certificates: Vec<CertificateReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<KeyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_to_ca: Option<ChainReport>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateReport {
    pub subject: String,
    pub issuer: String,
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
    /// `89d 23h left`, `expired 2d 4h ago`, `not valid for another 1h`.
    pub time_left: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub uris: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    pub key_algorithm: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_usages: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extended_key_usages: Vec<String>,
    pub is_ca: bool,
    pub sha256_fingerprint: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyReport {
    pub algorithm: String,
    pub matches_certificate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    pub verifies: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

fn time_left(not_before: SystemTime, not_after: SystemTime, now: SystemTime) -> String {
    if now < not_before {
        return format!(
            "not valid for another {}",
            short_span(not_before.duration_since(now).unwrap_or_default())
        );
    }
    match not_after.duration_since(now) {
        Ok(left) => format!("{} left", short_span(left)),
        Err(e) => format!("expired {} ago", short_span(e.duration())),
    }
}

fn certificate_report(der: &[u8], now: SystemTime) -> Result<CertificateReport, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let info = pki::CertInfo::parse(der, 0).map_err(|e| e.to_string())?;
    let mut key_usages = Vec::new();
    let mut extended_key_usages = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                for (set, name) in [
                    (ku.digital_signature(), "digital signature"),
                    (ku.non_repudiation(), "content commitment"),
                    (ku.key_encipherment(), "key encipherment"),
                    (ku.data_encipherment(), "data encipherment"),
                    (ku.key_agreement(), "key agreement"),
                    (ku.key_cert_sign(), "cert sign"),
                    (ku.crl_sign(), "crl sign"),
                ] {
                    if set {
                        key_usages.push(name.to_owned());
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                for (set, name) in [
                    (eku.server_auth, "server auth"),
                    (eku.client_auth, "client auth"),
                    (eku.code_signing, "code signing"),
                    (eku.email_protection, "email protection"),
                    (eku.ocsp_signing, "ocsp signing"),
                ] {
                    if set {
                        extended_key_usages.push(name.to_owned());
                    }
                }
            }
            _ => {}
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    Ok(CertificateReport {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: info.serial_hex.clone(),
        not_before: rfc3339(info.not_before),
        not_after: rfc3339(info.not_after),
        time_left: time_left(info.not_before, info.not_after, now),
        dns_names: info.dns_names,
        ip_addresses: info.ip_addresses.iter().map(ToString::to_string).collect(),
        uris: info.uris,
        email_addresses: info.email_addresses,
        key_algorithm: pki::PublicKeyKind::of(cert.public_key()).to_string(),
        key_usages,
        extended_key_usages,
        is_ca: info.is_ca,
        sha256_fingerprint: digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    })
}

/// Inspects `material` as of `now`.
pub fn report(material: &Material, now: SystemTime) -> Result<Report, InspectError> {
    if material.chain.is_empty() {
        return Err(InspectError::NoCertificate);
    }
    let certificates = material
        .chain
        .iter()
        .map(|der| certificate_report(der, now))
        .collect::<Result<Vec<_>, _>>()
        .map_err(InspectError::Unreadable)?;
    let leaf = pki::CertInfo::parse(&material.chain[0], 0)
        .map_err(|e| InspectError::Unreadable(e.to_string()))?;
    let private_key = material
        .key_pem
        .as_deref()
        .map(|pem| match PrivateKey::from_pem(pem) {
            Ok(key) => KeyReport {
                algorithm: match key.algorithm() {
                    pki::KeyAlgorithm::EcdsaP256 => "ECDSA P-256".to_owned(),
                    pki::KeyAlgorithm::EcdsaP384 => "ECDSA P-384".to_owned(),
                    pki::KeyAlgorithm::Rsa(bits) => format!("RSA {bits}"),
                    pki::KeyAlgorithm::Ed25519 => "Ed25519".to_owned(),
                },
                matches_certificate: key.public_key_der() == leaf.spki_der,
                problem: None,
            },
            Err(e) => KeyReport {
                algorithm: String::new(),
                matches_certificate: false,
                problem: Some(e.to_string()),
            },
        });
    let chain_pem: String = material
        .chain
        .iter()
        .map(|der| pki::certificate_pem(der))
        .collect();
    let chain_to_ca =
        material
            .ca_pem
            .as_deref()
            .map(|ca| match pki::verify_chain_to_root(&chain_pem, ca) {
                Ok(()) => ChainReport {
                    verifies: true,
                    problem: None,
                },
                Err(e) => ChainReport {
                    verifies: false,
                    problem: Some(e.to_string()),
                },
            });
    Ok(Report {
        certificates,
        private_key,
        chain_to_ca,
        annotations: material.annotations.clone(),
    })
}

/// The report as text for a terminal.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let count = report.certificates.len();
    for (i, c) in report.certificates.iter().enumerate() {
        let role = match (i, c.is_ca) {
            (0, false) => "leaf",
            (0, true) => "leaf (CA)",
            (_, _) if c.subject == c.issuer => "root",
            _ => "intermediate",
        };
        let _ = writeln!(out, "Certificate {}/{count} ({role})", i + 1);
        let mut line = |label: &str, value: &str| {
            if !value.is_empty() {
                let _ = writeln!(out, "  {label:<20}{value}");
            }
        };
        line("Subject:", &c.subject);
        line("Issuer:", &c.issuer);
        line("DNS names:", &c.dns_names.join(", "));
        line("IP addresses:", &c.ip_addresses.join(", "));
        line("URIs:", &c.uris.join(", "));
        line("Email addresses:", &c.email_addresses.join(", "));
        line("Not before:", &c.not_before);
        line("Not after:", &format!("{} ({})", c.not_after, c.time_left));
        line("Key:", &c.key_algorithm);
        line("Key usages:", &c.key_usages.join(", "));
        line("Extended usages:", &c.extended_key_usages.join(", "));
        line("CA:", if c.is_ca { "yes" } else { "no" });
        line("Serial:", &c.serial);
        line("SHA-256:", &c.sha256_fingerprint);
    }
    if let Some(key) = &report.private_key {
        let verdict = match (&key.problem, key.matches_certificate) {
            (Some(problem), _) => format!("unusable: {problem}"),
            (None, true) => format!("{}, matches the leaf certificate", key.algorithm),
            (None, false) => format!("{}, does NOT match the leaf certificate", key.algorithm),
        };
        let _ = writeln!(out, "Private key:            {verdict}");
    }
    if let Some(chain) = &report.chain_to_ca {
        let verdict = match &chain.problem {
            None => "verifies to ca.crt".to_owned(),
            Some(problem) => format!("does NOT verify to ca.crt: {problem}"),
        };
        let _ = writeln!(out, "Chain:                  {verdict}");
    }
    if !report.annotations.is_empty() {
        let _ = writeln!(out, "Annotations:");
        for (k, v) in &report.annotations {
            let shown: String = v.chars().take(200).collect();
            let _ = writeln!(out, "  {k}: {shown}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_left_reads_like_a_person_would_say_it() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let day = Duration::from_secs(86_400);
        assert_eq!(
            time_left(t - day, t + 89 * day + Duration::from_secs(3 * 3600), t),
            "89d 3h left"
        );
        assert_eq!(time_left(t - 10 * day, t - 2 * day, t), "expired 2d 0h ago");
        assert_eq!(
            time_left(t + Duration::from_secs(3600), t + day, t),
            "not valid for another 1h"
        );
        assert_eq!(time_left(t, t + Duration::from_secs(600), t), "10m left");
    }

    #[test]
    fn garbage_and_empty_input_say_what_to_give() {
        assert!(matches!(
            Material::from_bytes(b"hello"),
            Err(InspectError::Unreadable(_))
        ));
        let key_only = PrivateKey::generate(crate::pki::KeyAlgorithm::EcdsaP256)
            .unwrap()
            .to_pem(crate::pki::KeyEncoding::Pkcs8)
            .unwrap();
        assert!(matches!(
            Material::from_bytes(key_only.as_bytes()),
            Err(InspectError::NoCertificate)
        ));
    }
}
