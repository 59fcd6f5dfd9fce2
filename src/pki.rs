//! Keys, certificate parameters, and the checks that decide whether a stored
//! bundle is good.
//!
//! Keys are generated in-process (rcgen over ring for ECDSA and Ed25519, the
//! `rsa` crate for RSA, which ring cannot generate) and held as PKCS#8; they
//! are encoded as PKCS#8 or, as cert-manager's `PKCS1` encoding does, PKCS#1
//! for RSA and SEC1 for ECDSA. The checks parse with x509-parser and are
//! deliberately precise: they decide "re-issue now", so a false "broken"
//! costs a needless issuance and a false "fine" leaves a bad Secret in place.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::engine::{CertificateRequest, KeyUsage};

/// Failures of key handling and certificate construction.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate a {algorithm} key: {reason}")]
    Generate {
        algorithm: KeyAlgorithm,
        reason: String,
    },
    #[error("unusable private key: {0}")]
    BadKey(String),
    #[error("{algorithm} keys cannot be encoded as {encoding}; use PKCS8")]
    Encoding {
        algorithm: KeyAlgorithm,
        encoding: KeyEncoding,
    },
    #[error("cannot build the certificate: {0}")]
    Build(String),
    #[error("cannot parse certificate {index} of the chain: {reason}")]
    Parse { index: usize, reason: String },
}

/// Private key algorithms certweave can generate and sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyAlgorithm {
    #[default]
    EcdsaP256,
    EcdsaP384,
    /// RSA with the given modulus size in bits (2048-8192).
    Rsa(u32),
    Ed25519,
}

impl KeyAlgorithm {
    /// cert-manager's `privateKey.algorithm` + `size`, with its defaults
    /// (RSA 2048, ECDSA 256).
    pub fn from_cert_manager(algorithm: &str, size: Option<u32>) -> Result<Self, String> {
        match (algorithm, size) {
            ("RSA" | "", None) => Ok(KeyAlgorithm::Rsa(2048)),
            ("RSA" | "", Some(bits)) if (2048..=8192).contains(&bits) => Ok(KeyAlgorithm::Rsa(bits)),
            ("ECDSA", None | Some(256)) => Ok(KeyAlgorithm::EcdsaP256),
            ("ECDSA", Some(384)) => Ok(KeyAlgorithm::EcdsaP384),
            ("ECDSA", Some(521)) => Err("ECDSA P-521 is not supported; use size 256 or 384".into()),
            ("Ed25519", _) => Ok(KeyAlgorithm::Ed25519),
            (alg, size) => Err(format!(
                "unsupported private key {alg:?} with size {size:?}; use RSA 2048-8192, ECDSA 256/384 or Ed25519"
            )),
        }
    }

    fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyAlgorithm::Rsa(_) => &rcgen::PKCS_RSA_SHA256,
            KeyAlgorithm::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

/// The command-line spelling: `ecdsa-p256`, `ecdsa-p384`, `rsa2048`, `rsa4096`, `ed25519`.
impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyAlgorithm::EcdsaP256 => f.write_str("ecdsa-p256"),
            KeyAlgorithm::EcdsaP384 => f.write_str("ecdsa-p384"),
            KeyAlgorithm::Rsa(bits) => write!(f, "rsa{bits}"),
            KeyAlgorithm::Ed25519 => f.write_str("ed25519"),
        }
    }
}

impl FromStr for KeyAlgorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ecdsa-p256" => Ok(KeyAlgorithm::EcdsaP256),
            "ecdsa-p384" => Ok(KeyAlgorithm::EcdsaP384),
            "ed25519" => Ok(KeyAlgorithm::Ed25519),
            _ => match s.strip_prefix("rsa").and_then(|b| b.parse::<u32>().ok()) {
                Some(bits) if (2048..=8192).contains(&bits) => Ok(KeyAlgorithm::Rsa(bits)),
                _ => Err(format!(
                    "unknown key algorithm {s:?}; use ecdsa-p256, ecdsa-p384, rsa2048, rsa3072, rsa4096 or ed25519"
                )),
            },
        }
    }
}

/// How a private key is written: cert-manager's `privateKey.encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyEncoding {
    /// `-----BEGIN PRIVATE KEY-----` for every algorithm.
    #[default]
    Pkcs8,
    /// `RSA PRIVATE KEY` (PKCS#1) for RSA, `EC PRIVATE KEY` (SEC1) for ECDSA.
    Pkcs1,
}

impl fmt::Display for KeyEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyEncoding::Pkcs8 => "PKCS8",
            KeyEncoding::Pkcs1 => "PKCS1",
        })
    }
}

/// A private key. Its `Debug` output never contains key material.
pub struct PrivateKey {
    algorithm: KeyAlgorithm,
    key_pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, <redacted>)", self.algorithm)
    }
}

impl PrivateKey {
    /// Generates a fresh key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, PkiError> {
        let fail = |reason: String| PkiError::Generate { algorithm, reason };
        let key_pair = match algorithm {
            KeyAlgorithm::Rsa(bits) => {
                let rsa = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits as usize)
                    .map_err(|e| fail(e.to_string()))?;
                let der = rsa.to_pkcs8_der().map_err(|e| fail(e.to_string()))?;
                KeyPair::from_pkcs8_der_and_sign_algo(
                    &der.as_bytes().into(),
                    algorithm.signature_algorithm(),
                )
                .map_err(|e| fail(e.to_string()))?
            }
            other => KeyPair::generate_for(other.signature_algorithm())
                .map_err(|e| fail(e.to_string()))?,
        };
        Ok(Self {
            algorithm,
            key_pair,
        })
    }

    /// Reads a PEM key in any encoding cert-manager or OpenSSL writes:
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (ECDSA).
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        let bad = |reason: String| PkiError::BadKey(reason);
        // Parse only the key's block: `openssl ecparam -genkey` writes an
        // EC PARAMETERS block before it, and a file may hold a certificate too.
        let blocks: Vec<(&str, &str)> = pem
            .match_indices("-----BEGIN ")
            .filter_map(|(start, _)| {
                let label = pem[start + 11..].split("-----").next()?;
                let end_marker = format!("-----END {label}-----");
                let end = pem[start..].find(&end_marker)? + start + end_marker.len();
                Some((label, &pem[start..end]))
            })
            .collect();
        let (label, pem) = blocks
            .iter()
            .find(|(label, _)| label.ends_with("PRIVATE KEY"))
            .or(blocks.first())
            .copied()
            .ok_or_else(|| bad("no PEM block found".into()))?;
        let pkcs8_der: Vec<u8> = match label {
            "PRIVATE KEY" => {
                let (_, doc) = pkcs8::Document::from_pem(pem).map_err(|e| bad(e.to_string()))?;
                doc.as_bytes().to_vec()
            }
            "RSA PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs1_pem(pem)
                .map_err(|e| bad(e.to_string()))?
                .to_pkcs8_der()
                .map_err(|e| bad(e.to_string()))?
                .as_bytes()
                .to_vec(),
            "EC PRIVATE KEY" => {
                if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
                    k.to_pkcs8_der()
                        .map_err(|e| bad(e.to_string()))?
                        .as_bytes()
                        .to_vec()
                } else if let Ok(k) = p384::SecretKey::from_sec1_pem(pem) {
                    k.to_pkcs8_der()
                        .map_err(|e| bad(e.to_string()))?
                        .as_bytes()
                        .to_vec()
                } else {
                    return Err(bad(
                        "EC key on an unsupported curve; use P-256 or P-384".into()
                    ));
                }
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(bad(
                    "the key is encrypted; decrypt it first (openssl pkey -in KEY -out PLAIN)"
                        .into(),
                ))
            }
            other => {
                return Err(bad(format!(
                    "unexpected PEM block {other:?}; expected a private key"
                )))
            }
        };
        Self::from_pkcs8_der(&pkcs8_der)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, PkiError> {
        let bad = |reason: String| PkiError::BadKey(reason);
        let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| bad(e.to_string()))?;
        let oid = info.algorithm.oid.to_string();
        let algorithm = match oid.as_str() {
            "1.2.840.113549.1.1.1" => {
                let rsa =
                    rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|e| bad(e.to_string()))?;
                KeyAlgorithm::Rsa((rsa::traits::PublicKeyParts::size(&rsa) * 8) as u32)
            }
            "1.2.840.10045.2.1" => {
                let curve = info
                    .algorithm
                    .parameters_oid()
                    .map_err(|e| bad(format!("EC key without a named curve: {e}")))?
                    .to_string();
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" => KeyAlgorithm::EcdsaP256,
                    "1.3.132.0.34" => KeyAlgorithm::EcdsaP384,
                    other => {
                        return Err(bad(format!(
                            "unsupported EC curve {other}; use P-256 or P-384"
                        )))
                    }
                }
            }
            "1.3.101.112" => KeyAlgorithm::Ed25519,
            other => return Err(bad(format!("unsupported key algorithm OID {other}"))),
        };
        let key_pair =
            KeyPair::from_pkcs8_der_and_sign_algo(&der.into(), algorithm.signature_algorithm())
                .or_else(|_| {
                    // ring wants the public key inside ECDSA PKCS#8 documents; keys
                    // written by other tools may lack it, so rebuild them.
                    let rebuilt = match algorithm {
                        KeyAlgorithm::EcdsaP256 => p256::SecretKey::from_pkcs8_der(der)
                            .ok()
                            .and_then(|k| k.to_pkcs8_der().ok()),
                        KeyAlgorithm::EcdsaP384 => p384::SecretKey::from_pkcs8_der(der)
                            .ok()
                            .and_then(|k| k.to_pkcs8_der().ok()),
                        _ => None,
                    }
                    .ok_or_else(|| bad("the key cannot be loaded for signing".into()))?;
                    KeyPair::from_pkcs8_der_and_sign_algo(
                        &rebuilt.as_bytes().into(),
                        algorithm.signature_algorithm(),
                    )
                    .map_err(|e| bad(e.to_string()))
                })?;
        Ok(Self {
            algorithm,
            key_pair,
        })
    }

    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The rcgen key pair, for signing certificates and CSRs.
    pub fn key_pair(&self) -> &KeyPair {
        &self.key_pair
    }

    /// The DER SubjectPublicKeyInfo, to compare against a certificate's.
    pub fn public_key_der(&self) -> Vec<u8> {
        rcgen::PublicKeyData::subject_public_key_info(&self.key_pair)
    }

    /// PEM in the requested encoding.
    pub fn to_pem(&self, encoding: KeyEncoding) -> Result<String, PkiError> {
        let der = self.key_pair.serialize_der();
        let unsupported = || PkiError::Encoding {
            algorithm: self.algorithm,
            encoding,
        };
        let bad = |e: String| PkiError::BadKey(e);
        Ok(match (encoding, self.algorithm) {
            // ring writes Ed25519 keys as PKCS#8 v2 (with the public key),
            // which OpenSSL 3.0 cannot read; write RFC 8410's v1 form, as
            // `openssl genpkey` does, so any TLS server can load tls.key.
            (KeyEncoding::Pkcs8, KeyAlgorithm::Ed25519) => {
                let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| bad(e.to_string()))?;
                let v1 = pkcs8::PrivateKeyInfo {
                    public_key: None,
                    ..info
                };
                pkcs8::SecretDocument::try_from(v1)
                    .map_err(|e| bad(e.to_string()))?
                    .to_pem("PRIVATE KEY", LineEnding::LF)
                    .map_err(|e| bad(e.to_string()))?
                    .to_string()
            }
            (KeyEncoding::Pkcs8, _) => self.key_pair.serialize_pem(),
            (KeyEncoding::Pkcs1, KeyAlgorithm::Rsa(_)) => rsa::RsaPrivateKey::from_pkcs8_der(&der)
                .map_err(|e| bad(e.to_string()))?
                .to_pkcs1_pem(LineEnding::LF)
                .map_err(|e| bad(e.to_string()))?
                .to_string(),
            (KeyEncoding::Pkcs1, KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384) => {
                sec1_pem(&der).map_err(bad)?
            }
            (KeyEncoding::Pkcs1, KeyAlgorithm::Ed25519) => return Err(unsupported()),
        })
    }
}

/// SEC1 `EC PRIVATE KEY` PEM for a PKCS#8 ECDSA key, with the named curve
/// in its parameters. The p256/p384 crates leave the curve out (RFC 5915
/// allows it), but OpenSSL and Go then cannot load the key, so a tls.key
/// written that way would be useless to the servers that read it.
fn sec1_pem(pkcs8_der: &[u8]) -> Result<String, String> {
    let info = pkcs8::PrivateKeyInfo::try_from(pkcs8_der).map_err(|e| e.to_string())?;
    let curve = info
        .algorithm
        .parameters_oid()
        .map_err(|e| format!("EC key without a named curve: {e}"))?;
    let inner = sec1::EcPrivateKey::try_from(info.private_key).map_err(|e| e.to_string())?;
    let with_curve = sec1::EcPrivateKey {
        parameters: Some(sec1::EcParameters::NamedCurve(curve)),
        ..inner
    };
    let der = p256::elliptic_curve::zeroize::Zeroizing::new(
        sec1::der::Encode::to_der(&with_curve).map_err(|e| e.to_string())?,
    );
    sec1::der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, &der).map_err(|e| e.to_string())
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
    for email in &request.email_addresses {
        sans.push(SanType::Rfc822Name(
            email.clone().try_into().map_err(build)?,
        ));
    }
    params.subject_alt_names = sans;
    let mut dn = DistinguishedName::new();
    if let Some(cn) = &request.common_name {
        dn.push(DnType::CommonName, cn.clone());
    }
    params.distinguished_name = dn;
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
    let key = PrivateKey::from_pem(key_pem).map_err(|e| BundleProblem::BadKey(e.to_string()))?;
    if key.public_key_der() != leaf.spki_der {
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
