//! Certificate parameters, CSRs, and the checks that decide whether a stored
//! bundle is good. The keys themselves are [`crate::model::key`]'s.
//!
//! The checks parse with x509-parser and are
//! deliberately precise: they decide "re-issue now", so a false "broken"
//! costs a needless issuance and a false "fine" leaves a bad Secret in place.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SerialNumber,
};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

mod csr;

pub use crate::model::key::{KeyAlgorithm, KeyEncoding, KeyError, PrivateKey};
use crate::model::{CertificateRequest, IssuerUrls, KeyUsage, SubjectAttribute};
pub use csr::{csr_public_key, parse_csr, CsrContent, CsrError, MAX_CSR_BYTES, MAX_CSR_NAMES};

/// Failures of certificate construction and parsing.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cannot build the certificate: {0}")]
    Build(String),
    #[error("cannot parse certificate {index} of the chain: {reason}")]
    Parse { index: usize, reason: String },
}

/// Certificate construction failures are the issuer's to report: a key
/// problem stays a key problem, anything else keeps its cause.
impl From<PkiError> for crate::model::IssueError {
    fn from(error: PkiError) -> Self {
        match error {
            PkiError::Key(key) => crate::model::IssueError::Key(key),
            other => crate::model::IssueError::Pki(Box::new(other)),
        }
    }
}

/// rcgen parameters for `request`, valid from a minute ago (clock skew) for
/// the requested duration, with a random 128-bit serial.
pub fn certificate_params(
    request: &CertificateRequest,
    now: SystemTime,
) -> Result<CertificateParams, PkiError> {
    let build = |e: rcgen::Error| PkiError::Build(e.to_string());
    let mut params = CertificateParams::default();
    let mut sans = Vec::new();
    for name in &request.dns_names {
        sans.push(SanType::DnsName(name.clone().try_into().map_err(build)?));
    }
    for ip in &request.ip_addresses {
        sans.push(SanType::IpAddress(*ip));
    }
    for uri in &request.uris {
        sans.push(SanType::URI(uri.clone().try_into().map_err(build)?));
    }
    for other in &request.other_names {
        sans.push(SanType::OtherName((
            other.oid.clone(),
            other.value.clone().into(),
        )));
    }
    for email in &request.email_addresses {
        sans.push(SanType::Rfc822Name(
            email.clone().try_into().map_err(build)?,
        ));
    }
    params.subject_alt_names = sans;
    let mut dn = DistinguishedName::new();
    for (attribute, value) in request.subject.iter() {
        dn.push(subject_dn_type(attribute), value);
    }
    if let Some(cn) = &request.common_name {
        dn.push(DnType::CommonName, cn.clone());
    }
    if let Some(literal) = &request.literal_subject {
        dn = DistinguishedName::new();
        for (oid, value) in &literal.attributes {
            let (dn_type, value) = literal_attribute(oid, value).map_err(PkiError::Build)?;
            dn.push(dn_type, value);
        }
    }
    params.distinguished_name = dn;
    if let Some(constraints) = &request.name_constraints {
        let subtrees =
            |trees: &crate::model::NameSubtrees| -> Result<Vec<rcgen::GeneralSubtree>, PkiError> {
                let mut out = Vec::new();
                for domain in &trees.dns_domains {
                    out.push(rcgen::GeneralSubtree::DnsName(domain.clone()));
                }
                for range in &trees.ip_ranges {
                    let subnet = range
                        .parse::<rcgen::CidrSubnet>()
                        .map_err(|_| PkiError::Build(format!("{range:?} is not a CIDR range")))?;
                    out.push(rcgen::GeneralSubtree::IpAddress(subnet));
                }
                for email in &trees.email_addresses {
                    out.push(rcgen::GeneralSubtree::Rfc822Name(email.clone()));
                }
                Ok(out)
            };
        params.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: subtrees(&constraints.permitted)?,
            excluded_subtrees: subtrees(&constraints.excluded)?,
        });
    }
    params.is_ca = if request.is_ca {
        IsCa::Ca(rcgen::BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    for usage in request.effective_usages() {
        match usage {
            KeyUsage::DigitalSignature => params.key_usages.push(KeyUsagePurpose::DigitalSignature),
            KeyUsage::KeyEncipherment => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
            KeyUsage::CertSign => params.key_usages.push(KeyUsagePurpose::KeyCertSign),
            KeyUsage::CrlSign => params.key_usages.push(KeyUsagePurpose::CrlSign),
            KeyUsage::ServerAuth => params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth),
            KeyUsage::ClientAuth => params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth),
        }
    }
    let to_offset = |t: SystemTime| {
        let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| PkiError::Build(e.to_string()))
    };
    params.not_before = to_offset(now - Duration::from_secs(60).min(request.duration / 4))?;
    params.not_after = to_offset(now + request.duration)?;
    let mut serial = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut serial);
    serial[0] &= 0x7f; // positive
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// An attribute of a literal subject as rcgen writes it: the common types
/// by name, `domainComponent` and `emailAddress` as IA5String (RFC 4519,
/// RFC 2985), anything else as a UTF8String under its OID.
fn literal_attribute(oid: &[u64], value: &str) -> Result<(DnType, rcgen::DnValue), String> {
    let utf8 = || rcgen::DnValue::Utf8String(value.to_owned());
    let ia5 = || {
        rcgen::string::Ia5String::try_from(value.to_owned())
            .map(rcgen::DnValue::Ia5String)
            .map_err(|_| format!("{value:?} is not ASCII, as an IA5String must be"))
    };
    Ok(match oid {
        [2, 5, 4, 3] => (DnType::CommonName, utf8()),
        [2, 5, 4, 6] => (
            DnType::CountryName,
            rcgen::string::PrintableString::try_from(value.to_owned())
                .map(rcgen::DnValue::PrintableString)
                .map_err(|_| format!("country {value:?} is not a PrintableString"))?,
        ),
        [2, 5, 4, 10] => (DnType::OrganizationName, utf8()),
        [2, 5, 4, 11] => (DnType::OrganizationalUnitName, utf8()),
        [2, 5, 4, 7] => (DnType::LocalityName, utf8()),
        [2, 5, 4, 8] => (DnType::StateOrProvinceName, utf8()),
        [0, 9, 2342, 19200300, 100, 1, 25] | [1, 2, 840, 113549, 1, 9, 1] => {
            (DnType::CustomDnType(oid.to_vec()), ia5()?)
        }
        _ => (DnType::CustomDnType(oid.to_vec()), utf8()),
    })
}

fn subject_dn_type(attribute: SubjectAttribute) -> DnType {
    match attribute {
        SubjectAttribute::Country => DnType::CountryName,
        SubjectAttribute::Organization => DnType::OrganizationName,
        SubjectAttribute::OrganizationalUnit => DnType::OrganizationalUnitName,
        SubjectAttribute::Locality => DnType::LocalityName,
        SubjectAttribute::Province => DnType::StateOrProvinceName,
        other => DnType::CustomDnType(other.oid().to_vec()),
    }
}

/// Adds the issuer's revocation and CA-certificate URLs to `params`: the
/// CRL distribution points extension, and an authority information access
/// extension (RFC 5280 §4.2.2.1) for OCSP servers and CA issuers, which
/// rcgen has no field for and is encoded here.
pub fn add_issuer_urls(params: &mut CertificateParams, urls: &IssuerUrls) {
    if !urls.crl_distribution_points.is_empty() {
        params
            .crl_distribution_points
            .push(rcgen::CrlDistributionPoint {
                uris: urls.crl_distribution_points.clone(),
            });
    }
    if urls.ocsp_servers.is_empty() && urls.issuing_certificate_urls.is_empty() {
        return;
    }
    const OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
    const CA_ISSUERS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 2];
    const AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
    let mut descriptions = Vec::new();
    let methods = urls.ocsp_servers.iter().map(|u| (OCSP, u)).chain(
        urls.issuing_certificate_urls
            .iter()
            .map(|u| (CA_ISSUERS, u)),
    );
    for (method, url) in methods {
        // AccessDescription ::= SEQUENCE { accessMethod OID,
        //   accessLocation GeneralName (uniformResourceIdentifier [6] IA5String) }
        let mut description = der_oid(method);
        description.extend(der_tlv(0x86, url.as_bytes()));
        descriptions.extend(der_tlv(0x30, &description));
    }
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            AUTHORITY_INFO_ACCESS,
            der_tlv(0x30, &descriptions),
        ));
}

/// A DER tag-length-value.
fn der_tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// A DER object identifier (at least two arcs, the first below 3).
fn der_oid(arcs: &[u64]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut base128 = |mut n: u64| {
        let mut digits = vec![(n & 0x7f) as u8];
        n >>= 7;
        while n > 0 {
            digits.push(0x80 | (n & 0x7f) as u8);
            n >>= 7;
        }
        body.extend(digits.into_iter().rev());
    };
    base128(arcs[0] * 40 + arcs[1]);
    for arc in &arcs[2..] {
        base128(*arc);
    }
    der_tlv(0x06, &body)
}

/// The ACME renewal information identifier of the certificate at the head
/// of `chain_pem` (RFC 9773 §4.1): the base64url of its authority key
/// identifier and of its DER serial number, joined by a dot. `None` when the
/// certificate does not parse or has no authority key identifier.
pub fn ari_certificate_id(chain_pem: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use x509_parser::extensions::ParsedExtension;
    let der = pem_block_der(chain_pem)?;
    let (_, cert) = X509Certificate::from_der(&der).ok()?;
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })?;
    Some(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(aki),
        URL_SAFE_NO_PAD.encode(cert.raw_serial())
    ))
}

/// The DER inside the first PEM block of `pem` (a key or a certificate),
/// whatever its label; `None` when there is no block.
pub fn pem_block_der(pem: &str) -> Option<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .next()?
        .ok()
        .map(|block| block.contents)
}

/// A DER CSR for `request`, signed by `key` (for ACME finalisation).
pub fn csr_der(request: &CertificateRequest, key: &PrivateKey) -> Result<Vec<u8>, PkiError> {
    let mut params = certificate_params(request, SystemTime::now())?;
    // The issuer picks the serial and adds the authority key identifier;
    // rcgen refuses to put either into a CSR.
    params.serial_number = None;
    params.use_authority_key_identifier_extension = false;
    let csr = params
        .serialize_request(key.key_pair())
        .map_err(|e| PkiError::Build(e.to_string()))?;
    Ok(csr.der().to_vec())
}

/// One DER certificate as a PEM block (64-character lines, trailing newline).
pub fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The PEM certificates of a chain, as DER, in file order.
pub fn parse_pem_chain(pem: &str) -> Result<Vec<Vec<u8>>, PkiError> {
    let mut out = Vec::new();
    for (index, block) in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()).enumerate() {
        let block = block.map_err(|e| PkiError::Parse {
            index,
            reason: e.to_string(),
        })?;
        if block.label == "CERTIFICATE" {
            out.push(block.contents);
        }
    }
    Ok(out)
}

/// What kind of public key a SubjectPublicKeyInfo holds, read once for the
/// signer of requests made elsewhere and for `certweave inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyKind {
    Rsa {
        bits: usize,
    },
    /// The curve's name (`P-256`, `P-384`, `P-521`) or, for another curve,
    /// its OID.
    Ecdsa {
        curve: String,
    },
    Ed25519,
    /// Anything else, by algorithm OID.
    Other(String),
}

impl PublicKeyKind {
    pub fn of(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Self {
        use x509_parser::public_key::PublicKey;
        let algorithm = spki.algorithm.algorithm.to_id_string();
        match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => PublicKeyKind::Rsa {
                bits: rsa.key_size(),
            },
            Ok(PublicKey::EC(_)) => {
                let oid = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|oid| oid.to_id_string())
                    .unwrap_or_default();
                let curve = match oid.as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_owned(),
                    "1.3.132.0.34" => "P-384".to_owned(),
                    "1.3.132.0.35" => "P-521".to_owned(),
                    _ => oid,
                };
                PublicKeyKind::Ecdsa { curve }
            }
            _ if algorithm == "1.3.101.112" => PublicKeyKind::Ed25519,
            _ => PublicKeyKind::Other(algorithm),
        }
    }
}

/// `RSA 2048`, `ECDSA P-256`, `Ed25519`, or the OID.
impl std::fmt::Display for PublicKeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublicKeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            PublicKeyKind::Ecdsa { curve } => write!(f, "ECDSA {curve}"),
            PublicKeyKind::Ed25519 => f.write_str("Ed25519"),
            PublicKeyKind::Other(oid) => f.write_str(oid),
        }
    }
}

/// What certweave needs to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub serial_hex: String,
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
    pub is_ca: bool,
    pub self_signed: bool,
    pub spki_der: Vec<u8>,
}

impl CertInfo {
    pub fn parse(der: &[u8], index: usize) -> Result<Self, PkiError> {
        let err = |reason: String| PkiError::Parse { index, reason };
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| err(e.to_string()))?;
        let mut info = CertInfo {
            serial_hex: cert.raw_serial_as_string().replace(':', ""),
            subject_cn: first_cn(cert.subject()),
            issuer_cn: first_cn(cert.issuer()),
            not_before: to_system_time(cert.validity().not_before.timestamp()),
            not_after: to_system_time(cert.validity().not_after.timestamp()),
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            email_addresses: Vec::new(),
            is_ca: cert.is_ca(),
            self_signed: cert.subject() == cert.issuer(),
            spki_der: cert.public_key().raw.to_vec(),
        };
        for ext in cert.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => info.dns_names.push(d.to_string()),
                        GeneralName::URI(u) => info.uris.push(u.to_string()),
                        GeneralName::RFC822Name(e) => info.email_addresses.push(e.to_string()),
                        GeneralName::IPAddress(bytes) => {
                            if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                                info.ip_addresses.push(IpAddr::from(v4));
                            } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                                info.ip_addresses.push(IpAddr::from(v6));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(info)
    }
}

fn first_cn(name: &x509_parser::x509::X509Name<'_>) -> Option<String> {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

fn to_system_time(unix: i64) -> SystemTime {
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

/// Why a bundle is not fit to serve. Each variant is a reason to re-issue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleProblem {
    #[error("tls.crt holds no certificate")]
    Empty,
    #[error("certificate {index} cannot be parsed: {reason}")]
    Unparsable { index: usize, reason: String },
    #[error("tls.key cannot be read: {0}")]
    BadKey(String),
    #[error("tls.key does not match the certificate in tls.crt")]
    KeyMismatch,
    #[error("certificate {index} is not signed by certificate {next}: the chain is out of order or broken")]
    BrokenChain { index: usize, next: usize },
    #[error("the certificate is not valid before {0:?}")]
    NotYetValid(SystemTime),
    #[error("the certificate expired at {0:?}")]
    Expired(SystemTime),
    #[error("the certificate does not cover {0}")]
    MissingName(String),
    #[error("the chain does not verify to the given root: {0}")]
    Untrusted(String),
}

/// Checks a bundle: every certificate parses, the key matches the leaf,
/// each certificate is signed by the next, the leaf is valid at `now`, and
/// it covers every name `request` asks for. Returns the leaf's details.
pub fn check_bundle(
    chain_pem: &str,
    key_pem: &str,
    request: Option<&CertificateRequest>,
    now: SystemTime,
) -> Result<CertInfo, BundleProblem> {
    let key = PrivateKey::from_pem(key_pem).map_err(|e| BundleProblem::BadKey(e.to_string()))?;
    check_chain(chain_pem, &key.public_key_der(), request, now)
}

/// [`check_bundle`] for a chain whose private key is elsewhere: the leaf
/// must carry the public key `spki_der` (a SubjectPublicKeyInfo).
pub fn check_chain(
    chain_pem: &str,
    spki_der: &[u8],
    request: Option<&CertificateRequest>,
    now: SystemTime,
) -> Result<CertInfo, BundleProblem> {
    let chain = parse_pem_chain(chain_pem).map_err(|e| match e {
        PkiError::Parse { index, reason } => BundleProblem::Unparsable { index, reason },
        other => BundleProblem::Unparsable {
            index: 0,
            reason: other.to_string(),
        },
    })?;
    if chain.is_empty() {
        return Err(BundleProblem::Empty);
    }
    let leaf = CertInfo::parse(&chain[0], 0).map_err(|e| BundleProblem::Unparsable {
        index: 0,
        reason: e.to_string(),
    })?;
    if spki_der != leaf.spki_der {
        return Err(BundleProblem::KeyMismatch);
    }
    verify_links(&chain)?;
    if now < leaf.not_before {
        return Err(BundleProblem::NotYetValid(leaf.not_before));
    }
    if now >= leaf.not_after {
        return Err(BundleProblem::Expired(leaf.not_after));
    }
    if let Some(request) = request {
        for name in &request.dns_names {
            if !leaf.dns_names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                return Err(BundleProblem::MissingName(name.clone()));
            }
        }
        for ip in &request.ip_addresses {
            if !leaf.ip_addresses.contains(ip) {
                return Err(BundleProblem::MissingName(ip.to_string()));
            }
        }
        for uri in &request.uris {
            if !leaf.uris.contains(uri) {
                return Err(BundleProblem::MissingName(uri.clone()));
            }
        }
        for email in &request.email_addresses {
            if !leaf.email_addresses.contains(email) {
                return Err(BundleProblem::MissingName(email.clone()));
            }
        }
    }
    Ok(leaf)
}

/// Each certificate of `chain` must be signed by the one after it.
fn verify_links(chain: &[Vec<u8>]) -> Result<(), BundleProblem> {
    let parsed: Vec<X509Certificate<'_>> = chain
        .iter()
        .enumerate()
        .map(|(index, der)| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| BundleProblem::Unparsable {
                    index,
                    reason: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    for index in 0..parsed.len().saturating_sub(1) {
        let issuer = &parsed[index + 1];
        if parsed[index]
            .verify_signature(Some(issuer.public_key()))
            .is_err()
        {
            return Err(BundleProblem::BrokenChain {
                index,
                next: index + 1,
            });
        }
    }
    Ok(())
}

/// Checks that `chain_pem` leads to `root_pem`: the last certificate of the
/// chain is signed by (or is) one of the roots.
pub fn verify_chain_to_root(chain_pem: &str, root_pem: &str) -> Result<(), BundleProblem> {
    let chain = parse_pem_chain(chain_pem).map_err(|e| BundleProblem::Untrusted(e.to_string()))?;
    let roots = parse_pem_chain(root_pem).map_err(|e| BundleProblem::Untrusted(e.to_string()))?;
    let Some(last) = chain.last() else {
        return Err(BundleProblem::Empty);
    };
    verify_links(&chain)?;
    let (_, last) =
        X509Certificate::from_der(last).map_err(|e| BundleProblem::Untrusted(e.to_string()))?;
    for root in &roots {
        let (_, root_cert) =
            X509Certificate::from_der(root).map_err(|e| BundleProblem::Untrusted(e.to_string()))?;
        if last.as_ref() == root_cert.as_ref()
            || last.verify_signature(Some(root_cert.public_key())).is_ok()
        {
            return Ok(());
        }
    }
    Err(BundleProblem::Untrusted(format!(
        "no given root signed {:?}",
        first_cn(last.issuer()).unwrap_or_default()
    )))
}
