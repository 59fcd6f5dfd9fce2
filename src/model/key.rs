//! Private keys: which algorithms certweave generates, how keys are encoded,
//! and the key itself.
//!
//! Keys are generated in-process (rcgen over ring for ECDSA and Ed25519,
//! AWS-LC for RSA, which ring cannot generate) and held as PKCS#8; they
//! are encoded as PKCS#8 or, as cert-manager's `PKCS1` encoding does, PKCS#1
//! for RSA and SEC1 for ECDSA. They live in the leaf layer because the
//! [`crate::model::Issuer`] trait signs with them.

use std::fmt;
use std::str::FromStr;

use rcgen::KeyPair;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};

/// Failures of key generation, parsing and encoding.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
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

    /// The signature algorithm rcgen signs with for this key.
    pub fn signature_algorithm(self) -> &'static rcgen::SignatureAlgorithm {
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

/// A new RSA key of `bits` as PKCS#8 DER.
///
/// RSA key generation decides how fast a cluster full of certificates with
/// cert-manager's default key (RSA-2048) is issued, so the sizes AWS-LC
/// generates (2048, 3072, 4096, 8192) come from AWS-LC: optimised C and
/// assembly, two to three times as fast as the pure-Rust `rsa` 0.9 crate,
/// with a prime search and an inversion that run in constant time. Go's
/// generator, graviola and `rsa` 0.10 are faster at 2048 bits because
/// parts of theirs run in variable time, and a key made on a node that
/// other tenants share should not leak through timing
/// (`benches/pki_vs_openssl.sh` compares them all). The other sizes cert-manager allows (2048-8192) come from the
/// `rsa` crate.
fn generate_rsa_pkcs8(bits: u32) -> Result<Vec<u8>, String> {
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use aws_lc_rs::rsa::KeySize;
    let size = match bits {
        2048 => Some(KeySize::Rsa2048),
        3072 => Some(KeySize::Rsa3072),
        4096 => Some(KeySize::Rsa4096),
        8192 => Some(KeySize::Rsa8192),
        _ => None,
    };
    match size {
        Some(size) => {
            let key = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|e| e.to_string())?;
            let der: Pkcs8V1Der<'static> = key.as_der().map_err(|e| e.to_string())?;
            Ok(der.as_ref().to_vec())
        }
        None => generate_rsa_pkcs8_portable(bits),
    }
}

/// A new RSA key of any size from the pure-Rust `rsa` crate: the sizes
/// AWS-LC does not generate, and the baseline `benches/pki.rs` measures
/// AWS-LC against.
#[doc(hidden)]
pub fn generate_rsa_pkcs8_portable(bits: u32) -> Result<Vec<u8>, String> {
    let rsa =
        rsa::RsaPrivateKey::new(&mut rand_core::OsRng, bits as usize).map_err(|e| e.to_string())?;
    let der = rsa.to_pkcs8_der().map_err(|e| e.to_string())?;
    Ok(der.as_bytes().to_vec())
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
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError::Generate { algorithm, reason };
        let key_pair = match algorithm {
            KeyAlgorithm::Rsa(bits) => {
                let der = generate_rsa_pkcs8(bits).map_err(fail)?;
                KeyPair::from_pkcs8_der_and_sign_algo(
                    &der.as_slice().into(),
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
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let bad = |reason: String| KeyError::BadKey(reason);
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

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let bad = |reason: String| KeyError::BadKey(reason);
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
    pub fn to_pem(&self, encoding: KeyEncoding) -> Result<String, KeyError> {
        let der = self.key_pair.serialize_der();
        let unsupported = || KeyError::Encoding {
            algorithm: self.algorithm,
            encoding,
        };
        let bad = |e: String| KeyError::BadKey(e);
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
