//! PKCS#12 and JKS keystores in a certificate's Secret (cert-manager's
//! `spec.keystores`), for Java and other software that reads neither
//! `tls.key` nor PEM. The layout is cert-manager's: `keystore.p12` /
//! `keystore.jks` hold the key with its chain (and the CA), `truststore.p12`
//! / `truststore.jks` the CA alone, when the issuer knows it.
//!
//! PKCS#12 files are written with pure-Rust `p12-keystore`, JKS files with
//! `jks`; both are read back here to decide whether a stored keystore still
//! matches the certificate and its password.

use std::time::SystemTime;

use crate::model::{Bundle, KeyEncoding, PrivateKey};
use crate::pki;

/// The keystores a Certificate asks for, with their passwords resolved.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Keystores {
    pub pkcs12: Option<Pkcs12Output>,
    pub jks: Option<JksOutput>,
}

impl std::fmt::Debug for Keystores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystores")
            .field("pkcs12", &self.pkcs12.as_ref().map(|p| p.profile))
            .field("jks", &self.jks.as_ref().map(|j| &j.alias))
            .finish()
    }
}

/// `keystores.pkcs12`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkcs12Output {
    pub password: String,
    pub profile: Pkcs12Profile,
}

/// How a PKCS#12 file is encrypted (cert-manager's `profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pkcs12Profile {
    /// 3DES (PBE-SHA1-3DES) for key and certificates, HMAC-SHA1: what every
    /// reader takes, Java 8 and OpenSSL 3 without its legacy provider
    /// included. Written for `LegacyDES`, and for `LegacyRC2` (and no
    /// profile): RC2-40 protects nothing today and OpenSSL 3 and Java 20
    /// refuse it by default, while every reader of RC2 files reads 3DES.
    #[default]
    LegacyDes,
    /// AES-256-CBC with PBKDF2-HMAC-SHA256, HMAC-SHA256 (`Modern2023`).
    Modern2023,
}

impl Pkcs12Profile {
    /// As cert-manager spells it; recorded on the Secret in
    /// [`PROFILE_ANNOTATION`].
    pub fn name(self) -> &'static str {
        match self {
            Pkcs12Profile::LegacyDes => "LegacyDES",
            Pkcs12Profile::Modern2023 => "Modern2023",
        }
    }
}

/// The Secret annotation recording how `keystore.p12` is encrypted: a
/// changed profile rewrites it (the file itself does not say, short of
/// decrypting it).
pub const PROFILE_ANNOTATION: &str = "certweave.io/pkcs12-profile";

/// `keystores.jks`.
#[derive(Clone, PartialEq, Eq)]
pub struct JksOutput {
    pub password: String,
    /// The key entry's alias (cert-manager's default: `certificate`).
    pub alias: String,
}

/// The alias of the CA entry in a keystore or trust store, as
/// cert-manager writes it.
pub const CA_ALIAS: &str = "ca";

/// Why a keystore could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the {format} keystore: {reason}")]
pub struct KeystoreError {
    format: &'static str,
    reason: String,
}

fn failed(format: &'static str) -> impl Fn(&dyn std::fmt::Display) -> KeystoreError {
    move |e| KeystoreError {
        format,
        reason: e.to_string(),
    }
}

/// The key as PKCS#8 DER and the chain and CA as DER.
struct Parts {
    key_pkcs8: Vec<u8>,
    chain: Vec<Vec<u8>>,
    ca: Vec<Vec<u8>>,
}

fn parts(bundle: &Bundle, format: &'static str) -> Result<Parts, KeystoreError> {
    let fail = failed(format);
    let key = PrivateKey::from_pem(&bundle.key_pem).map_err(|e| fail(&e))?;
    let key_pkcs8 = pki::pem_block_der(&key.to_pem(KeyEncoding::Pkcs8).map_err(|e| fail(&e))?)
        .ok_or_else(|| fail(&"the key has no PEM block"))?;
    let chain = pki::parse_pem_chain(&bundle.chain_pem).map_err(|e| fail(&e))?;
    let ca = match &bundle.ca_pem {
        Some(ca) => pki::parse_pem_chain(ca).map_err(|e| fail(&e))?,
        None => Vec::new(),
    };
    if chain.is_empty() {
        return Err(fail(&"the chain is empty"));
    }
    Ok(Parts {
        key_pkcs8,
        chain,
        ca,
    })
}

fn p12_writer_settings(
    profile: Pkcs12Profile,
) -> (
    p12_keystore::EncryptionAlgorithm,
    p12_keystore::MacAlgorithm,
) {
    use p12_keystore::{EncryptionAlgorithm as E, MacAlgorithm as M};
    match profile {
        Pkcs12Profile::LegacyDes => (E::PbeWithShaAnd3KeyTripleDesCbc, M::HmacSha1),
        Pkcs12Profile::Modern2023 => (E::PbeWithHmacSha256AndAes256, M::HmacSha256),
    }
}

fn p12_write(store: &p12_keystore::KeyStore, out: &Pkcs12Output) -> Result<Vec<u8>, KeystoreError> {
    let (encryption, mac) = p12_writer_settings(out.profile);
    store
        .writer(&out.password)
        .encryption_algorithm(encryption)
        .mac_algorithm(mac)
        .write()
        .map_err(|e| failed("PKCS#12")(&e))
}

fn p12_certificate(der: &[u8]) -> Result<p12_keystore::Certificate, KeystoreError> {
    p12_keystore::Certificate::from_der(der).map_err(|e| failed("PKCS#12")(&e))
}

/// `keystore.p12`: the key with the chain and the CA.
pub fn pkcs12_keystore(bundle: &Bundle, out: &Pkcs12Output) -> Result<Vec<u8>, KeystoreError> {
    let parts = parts(bundle, "PKCS#12")?;
    let key =
        p12_keystore::PrivateKey::from_der(&parts.key_pkcs8).map_err(|e| failed("PKCS#12")(&e))?;
    let certs = parts
        .chain
        .iter()
        .chain(&parts.ca)
        .map(|der| p12_certificate(der))
        .collect::<Result<Vec<_>, _>>()?;
    let local_key_id = ring::digest::digest(&ring::digest::SHA256, &parts.chain[0]);
    let chain = p12_keystore::PrivateKeyChain::new(&local_key_id.as_ref()[..20], key, certs);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "certificate",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    p12_write(&store, out)
}

/// `truststore.p12`: the CA as a trusted certificate.
pub fn pkcs12_truststore(ca_pem: &str, out: &Pkcs12Output) -> Result<Vec<u8>, KeystoreError> {
    let mut store = p12_keystore::KeyStore::new();
    let cas = pki::parse_pem_chain(ca_pem).map_err(|e| failed("PKCS#12")(&e))?;
    for (i, der) in cas.iter().enumerate() {
        let alias = if i == 0 {
            CA_ALIAS.to_owned()
        } else {
            format!("{CA_ALIAS}-{i}")
        };
        store.add_entry(
            &alias,
            p12_keystore::KeyStoreEntry::Certificate(p12_certificate(der)?),
        );
    }
    p12_write(&store, out)
}

fn jks_certificate(der: &[u8]) -> jks::Certificate {
    jks::Certificate {
        cert_type: "X.509".to_owned(),
        content: der.to_vec(),
    }
}

fn jks_store(store: &jks::KeyStore, password: &str) -> Result<Vec<u8>, KeystoreError> {
    let mut out = Vec::new();
    store
        .store(&mut out, password.as_bytes())
        .map_err(|e| failed("JKS")(&e))?;
    Ok(out)
}

fn jks_trusted(store: &mut jks::KeyStore, cas: &[Vec<u8>]) -> Result<(), KeystoreError> {
    for (i, der) in cas.iter().enumerate() {
        let alias = if i == 0 {
            CA_ALIAS.to_owned()
        } else {
            format!("{CA_ALIAS}-{i}")
        };
        store
            .set_trusted_certificate_entry(
                &alias,
                jks::TrustedCertificateEntry {
                    creation_time: SystemTime::now(),
                    certificate: jks_certificate(der),
                },
            )
            .map_err(|e| failed("JKS")(&e))?;
    }
    Ok(())
}

/// `keystore.jks`: the key with its chain under `alias`, and the CA.
pub fn jks_keystore(bundle: &Bundle, out: &JksOutput) -> Result<Vec<u8>, KeystoreError> {
    let parts = parts(bundle, "JKS")?;
    let mut store = jks_keystore_empty();
    store
        .set_private_key_entry(
            &out.alias,
            jks::PrivateKeyEntry {
                creation_time: SystemTime::now(),
                private_key: parts.key_pkcs8,
                certificate_chain: parts.chain.iter().map(|d| jks_certificate(d)).collect(),
            },
            out.password.as_bytes(),
        )
        .map_err(|e| failed("JKS")(&e))?;
    jks_trusted(&mut store, &parts.ca)?;
    jks_store(&store, &out.password)
}

/// `truststore.jks`: the CA as a trusted certificate.
pub fn jks_truststore(ca_pem: &str, out: &JksOutput) -> Result<Vec<u8>, KeystoreError> {
    let cas = pki::parse_pem_chain(ca_pem).map_err(|e| failed("JKS")(&e))?;
    let mut store = jks_keystore_empty();
    jks_trusted(&mut store, &cas)?;
    jks_store(&store, &out.password)
}

/// A JKS store that keeps aliases as given (Java lower-cases them on
/// read either way) and takes passwords of any length, as keytool does
/// for existing stores.
fn jks_keystore_empty() -> jks::KeyStore {
    jks::KeyStore::with_options(jks::KeyStoreOptions {
        min_password_len: 0,
        ..Default::default()
    })
}

/// Whether `bytes` is a PKCS#12 keystore that opens with `password` and
/// holds `leaf_der` as its key's certificate.
pub fn pkcs12_holds(bytes: &[u8], password: &str, leaf_der: &[u8]) -> bool {
    let Ok(store) = p12_keystore::KeyStore::from_pkcs12(
        bytes,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    ) else {
        return false;
    };
    store
        .private_key_chain()
        .and_then(|(_, chain)| chain.certs().first())
        .is_some_and(|cert| cert.as_der() == leaf_der)
}

/// Whether `bytes` is a JKS keystore that opens with `password` and holds
/// `leaf_der` under `alias`.
pub fn jks_holds(bytes: &[u8], password: &str, alias: &str, leaf_der: &[u8]) -> bool {
    let mut store = jks_keystore_empty();
    if store.load(bytes, password.as_bytes()).is_err() {
        return false;
    }
    store
        .get_private_key_entry_certificate_chain(alias)
        .ok()
        .and_then(|chain| chain.into_iter().next())
        .is_some_and(|cert| cert.content == leaf_der)
}

/// Whether `bytes` is a trust store (either format) that opens with
/// `password`.
pub fn truststore_opens(bytes: &[u8], password: &str, jks: bool) -> bool {
    if jks {
        jks_keystore_empty()
            .load(bytes, password.as_bytes())
            .is_ok()
    } else {
        p12_keystore::KeyStore::from_pkcs12(bytes, password, p12_keystore::Pkcs12ImportPolicy::Raw)
            .is_ok()
    }
}
