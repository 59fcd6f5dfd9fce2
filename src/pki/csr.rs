//! Certificate signing requests made elsewhere: the `spec.request` of a
//! CertificateRequest, whose private key stays with whoever made it
//! (csi-driver, istio-csr, `cmctl create certificaterequest`). The request
//! is parsed and its signature checked here; what it asks for is returned
//! for the caller to judge, and the public key is what the issuers sign.

use std::net::IpAddr;

use rcgen::{PublicKeyData, SignatureAlgorithm};
use x509_parser::prelude::{
    FromDer, GeneralName, ParsedExtension, X509CertificationRequest, X509Name,
};

use crate::model::{SignedCsr, Subject, SubjectAttribute};

/// Largest request accepted, PEM or DER: a CSR with a hundred names is a
/// few kilobytes.
pub const MAX_CSR_BYTES: usize = 64 * 1024;

/// Most subject alternative names (of all kinds) one request may carry;
/// Let's Encrypt's limit.
pub const MAX_CSR_NAMES: usize = 100;

/// Why a request cannot be signed. Each says what to do about it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("the request is {0} bytes, more than the {MAX_CSR_BYTES} accepted; send one PEM CERTIFICATE REQUEST block")]
    TooLarge(usize),
    #[error("the request is not a PEM CERTIFICATE REQUEST block: {0}")]
    NotPem(String),
    #[error("the request does not parse as a PKCS#10 certificate signing request: {0}")]
    Unparsable(String),
    #[error("the request's signature does not verify with its own public key; sign it with the key it carries")]
    BadSignature,
    #[error("the request's key is not supported: {0}; use an RSA (2048 to 8192 bits), ECDSA P-256/P-384 or Ed25519 key")]
    UnsupportedKey(String),
    #[error("the request carries {0} subject alternative names, more than the {MAX_CSR_NAMES} accepted; split it")]
    TooManyNames(usize),
    #[error("the request asks for {0}, which certweave does not sign; remove it from the request")]
    Unsupported(String),
}

/// What a request asks for, in the request's own words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrContent {
    pub common_name: Option<String>,
    pub subject: Subject,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
}

/// The request's public key as rcgen signs it.
struct CsrPublicKey {
    raw: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// Parses a PEM request (DER is accepted too), checks its signature and
/// reads what it asks for.
pub fn parse_csr(bytes: &[u8]) -> Result<(SignedCsr, CsrContent), CsrError> {
    if bytes.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge(bytes.len()));
    }
    let der = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        let block = x509_parser::pem::Pem::iter_from_buffer(bytes)
            .next()
            .ok_or_else(|| CsrError::NotPem("no PEM block".into()))?
            .map_err(|e| CsrError::NotPem(e.to_string()))?;
        if !matches!(
            block.label.as_str(),
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST"
        ) {
            return Err(CsrError::NotPem(format!(
                "the block is a {:?}",
                truncate(&block.label)
            )));
        }
        block.contents
    } else {
        bytes.to_vec()
    };
    let (rest, parsed) = X509CertificationRequest::from_der(&der)
        .map_err(|e| CsrError::Unparsable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CsrError::Unparsable(format!(
            "{} bytes follow the request",
            rest.len()
        )));
    }
    parsed
        .verify_signature()
        .map_err(|_| CsrError::BadSignature)?;
    let spki = &parsed.certification_request_info.subject_pki;
    signing_algorithm(spki)?;
    let content = content(&parsed)?;
    let spki_der = spki.raw.to_vec();
    Ok((SignedCsr { der, spki_der }, content))
}

/// The request's public key, for rcgen to write into the certificate it
/// signs.
pub fn csr_public_key(csr: &SignedCsr) -> Result<impl PublicKeyData, CsrError> {
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&csr.spki_der)
        .map_err(|e| CsrError::Unparsable(e.to_string()))?;
    Ok(CsrPublicKey {
        alg: signing_algorithm(&spki)?,
        raw: spki.subject_public_key.data.to_vec(),
    })
}

/// The rcgen algorithm whose SubjectPublicKeyInfo encoding matches the
/// request's key (the curve decides for ECDSA, not the CSR's hash).
fn signing_algorithm(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<&'static SignatureAlgorithm, CsrError> {
    match super::PublicKeyKind::of(spki) {
        super::PublicKeyKind::Rsa { bits } if (2048..=8192).contains(&bits) => {
            Ok(&rcgen::PKCS_RSA_SHA256)
        }
        super::PublicKeyKind::Ecdsa { curve } if curve == "P-256" => {
            Ok(&rcgen::PKCS_ECDSA_P256_SHA256)
        }
        super::PublicKeyKind::Ecdsa { curve } if curve == "P-384" => {
            Ok(&rcgen::PKCS_ECDSA_P384_SHA384)
        }
        super::PublicKeyKind::Ed25519 => Ok(&rcgen::PKCS_ED25519),
        super::PublicKeyKind::Rsa { bits } => {
            Err(CsrError::UnsupportedKey(format!("RSA with {bits} bits")))
        }
        super::PublicKeyKind::Ecdsa { curve } => Err(CsrError::UnsupportedKey(format!(
            "ECDSA on curve {}",
            truncate(&curve)
        ))),
        super::PublicKeyKind::Other(oid) => Err(CsrError::UnsupportedKey(format!(
            "algorithm {}",
            truncate(&oid)
        ))),
    }
}

fn content(parsed: &X509CertificationRequest<'_>) -> Result<CsrContent, CsrError> {
    let info = &parsed.certification_request_info;
    let mut content = CsrContent {
        common_name: None,
        subject: subject(&info.subject)?,
        ..Default::default()
    };
    content.common_name = info
        .subject
        .iter_common_name()
        .next()
        .map(|cn| {
            cn.as_str()
                .map(str::to_owned)
                .map_err(|_| CsrError::Unparsable("the common name is not a string".into()))
        })
        .transpose()?;
    let mut names = 0usize;
    for extension in parsed.requested_extensions().into_iter().flatten() {
        let ParsedExtension::SubjectAlternativeName(san) = extension else {
            continue;
        };
        for name in &san.general_names {
            names += 1;
            if names > MAX_CSR_NAMES {
                return Err(CsrError::TooManyNames(san.general_names.len()));
            }
            match name {
                GeneralName::DNSName(dns) => content.dns_names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes")),
                        16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes")),
                        n => {
                            return Err(CsrError::Unparsable(format!(
                                "an IP address SAN of {n} bytes"
                            )))
                        }
                    };
                    content.ip_addresses.push(ip);
                }
                GeneralName::URI(uri) => content.uris.push(uri.to_string()),
                GeneralName::RFC822Name(email) => content.email_addresses.push(email.to_string()),
                other => {
                    return Err(CsrError::Unsupported(format!(
                        "a subject alternative name of another type ({})",
                        general_name_kind(other)
                    )))
                }
            }
        }
    }
    Ok(content)
}

fn general_name_kind(name: &GeneralName<'_>) -> &'static str {
    match name {
        GeneralName::OtherName(..) => "otherName",
        GeneralName::X400Address(_) => "x400Address",
        GeneralName::DirectoryName(_) => "directoryName",
        GeneralName::EDIPartyName(_) => "ediPartyName",
        GeneralName::RegisteredID(_) => "registeredID",
        _ => "unknown",
    }
}

/// The subject attributes certweave writes, one value each; any other
/// attribute is refused rather than dropped.
fn subject(name: &X509Name<'_>) -> Result<Subject, CsrError> {
    let mut subject = Subject::default();
    for attribute in name.iter_attributes() {
        let oid = attribute.attr_type().to_id_string();
        if oid == "2.5.4.3" {
            continue; // the common name, read separately
        }
        let known = SubjectAttribute::ALL.iter().find(|a| {
            let arcs: Vec<String> = a.oid().iter().map(u64::to_string).collect();
            arcs.join(".") == oid
        });
        let Some(known) = known else {
            return Err(CsrError::Unsupported(format!(
                "subject attribute {}",
                truncate(&oid)
            )));
        };
        if subject.get(*known).is_some() {
            return Err(CsrError::Unsupported(format!(
                "more than one {} in the subject",
                known.field()
            )));
        }
        let value = attribute.as_str().map_err(|_| {
            CsrError::Unparsable(format!("subject {} is not a string", known.field()))
        })?;
        subject.set(*known, value);
    }
    Ok(subject)
}

/// At most 64 characters of something a request said, for messages.
fn truncate(text: &str) -> String {
    crate::model::text::cut(text, crate::model::text::QUOTED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{KeyAlgorithm, PrivateKey};

    fn csr_pem(key: &PrivateKey, edit: impl FnOnce(&mut rcgen::CertificateParams)) -> String {
        let mut params = rcgen::CertificateParams::new(vec!["app.example.com".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "app.example.com");
        edit(&mut params);
        params
            .serialize_request(key.key_pair())
            .unwrap()
            .pem()
            .unwrap()
    }

    #[test]
    fn a_request_is_read_with_its_names_and_key() {
        for algorithm in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Rsa(2048),
            KeyAlgorithm::Ed25519,
        ] {
            let key = PrivateKey::generate(algorithm).unwrap();
            let pem = csr_pem(&key, |p| {
                p.subject_alt_names
                    .push(rcgen::SanType::IpAddress("10.0.0.1".parse().unwrap()));
                p.distinguished_name
                    .push(rcgen::DnType::OrganizationName, "Example Ltd");
            });
            let (csr, content) = parse_csr(pem.as_bytes()).unwrap();
            assert_eq!(csr.spki_der, key.public_key_der(), "{algorithm:?}");
            let public_key = csr_public_key(&csr).unwrap();
            assert_eq!(public_key.subject_public_key_info(), csr.spki_der);
            assert_eq!(content.common_name.as_deref(), Some("app.example.com"));
            assert_eq!(content.dns_names, ["app.example.com"]);
            assert_eq!(
                content.ip_addresses,
                ["10.0.0.1".parse::<IpAddr>().unwrap()]
            );
            assert_eq!(
                content.subject.get(SubjectAttribute::Organization),
                Some("Example Ltd")
            );
            let der = crate::pki::pem_block_der(&pem).unwrap();
            assert_eq!(csr.der, der);
            assert!(parse_csr(&der).is_ok(), "DER is accepted too");
        }
    }

    #[test]
    fn broken_and_hostile_requests_are_refused_with_the_reason() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pem = csr_pem(&key, |_| {});
        assert!(matches!(parse_csr(b"hello"), Err(CsrError::Unparsable(_))));
        let cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse_csr(cert.as_bytes()),
            Err(CsrError::NotPem(_))
        ));

        // A signature made by another key.
        let mut der = crate::pki::pem_block_der(&pem).unwrap();
        let last = der.len() - 2;
        der[last] ^= 0x55;
        assert!(matches!(
            parse_csr(&der),
            Err(CsrError::BadSignature | CsrError::Unparsable(_))
        ));

        let huge = vec![b'A'; MAX_CSR_BYTES + 1];
        assert_eq!(
            parse_csr(&huge).unwrap_err(),
            CsrError::TooLarge(MAX_CSR_BYTES + 1)
        );

        let many = csr_pem(&key, |p| {
            p.subject_alt_names = (0..=MAX_CSR_NAMES)
                .map(|i| rcgen::SanType::DnsName(format!("n{i}.example.com").try_into().unwrap()))
                .collect();
        });
        assert_eq!(
            parse_csr(many.as_bytes()).unwrap_err(),
            CsrError::TooManyNames(MAX_CSR_NAMES + 1)
        );

        let other_attribute = csr_pem(&key, |p| {
            p.distinguished_name
                .push(rcgen::DnType::CustomDnType(vec![2, 5, 4, 12]), "Dr");
        });
        let err = parse_csr(other_attribute.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("2.5.4.12"), "{err}");
    }
}
