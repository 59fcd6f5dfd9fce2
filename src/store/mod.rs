//! Where certificates live. Today: files in a directory ([`files`]), as
//! `certweave issue --out DIR` writes them.

pub mod files;
pub mod fs;
pub mod keystore;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::model::{Bundle, OrderProgress};

/// A namespaced name: a Certificate or a Secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Secret as read back: each key may be missing, since users and other
/// tools can edit Secrets. The caller checks the contents.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoredSecret {
    pub tls_crt: Option<String>,
    pub tls_key: Option<String>,
    pub ca_crt: Option<String>,
    /// The additional outputs present ([`data_keys::EXTRA`]: `key.der`,
    /// `tls-combined.pem`, the keystores), by data key.
    pub extra: BTreeMap<&'static str, Vec<u8>>,
    pub annotations: BTreeMap<String, String>,
}

impl StoredSecret {
    /// Whether the Secret holds exactly the additional outputs `formats`
    /// asks for, with contents that match its `tls.key` and `tls.crt`: when
    /// not, the Secret is rewritten from its own bundle, without a new
    /// issuance (cert-manager does the same).
    pub fn outputs_match(&self, formats: &OutputFormats) -> bool {
        let (Some(chain), Some(key)) = (&self.tls_crt, &self.tls_key) else {
            return false;
        };
        let leaf = crate::pki::pem_block_der(chain).unwrap_or_default();
        let has_ca = self.ca_crt.is_some();
        let pkcs12 = formats.keystores.pkcs12.as_ref();
        let jks = formats.keystores.jks.as_ref();
        // Each extra output: whether it is wanted, and whether the stored
        // bytes are what it should be.
        type Holds<'a> = &'a dyn Fn(&[u8]) -> bool;
        let checks: [(&str, bool, Holds); 6] = [
            (data_keys::KEY_DER, formats.der, &|der| {
                crate::pki::pem_block_der(key).as_deref() == Some(der)
            }),
            (data_keys::COMBINED_PEM, formats.combined_pem, &|combined| {
                combined == combined_pem(key, chain)
            }),
            (data_keys::KEYSTORE_P12, pkcs12.is_some(), &|bytes| {
                pkcs12.is_some_and(|p| {
                    self.annotations
                        .get(keystore::PROFILE_ANNOTATION)
                        .map(String::as_str)
                        == Some(p.profile.name())
                        && keystore::pkcs12_holds(bytes, &p.password, &leaf)
                })
            }),
            (
                data_keys::TRUSTSTORE_P12,
                pkcs12.is_some() && has_ca,
                &|bytes| {
                    pkcs12.is_some_and(|p| keystore::truststore_opens(bytes, &p.password, false))
                },
            ),
            (data_keys::KEYSTORE_JKS, jks.is_some(), &|bytes| {
                jks.is_some_and(|j| keystore::jks_holds(bytes, &j.password, &j.alias, &leaf))
            }),
            (
                data_keys::TRUSTSTORE_JKS,
                jks.is_some() && has_ca,
                &|bytes| jks.is_some_and(|j| keystore::truststore_opens(bytes, &j.password, true)),
            ),
        ];
        checks
            .iter()
            .all(|(key, wanted, holds)| match (wanted, self.extra.get(key)) {
                (true, Some(bytes)) => holds(bytes),
                (false, None) => true,
                _ => false,
            })
    }
}

/// The extra encodings of the key and chain a Certificate asks for in
/// `spec.additionalOutputFormats` and `spec.keystores`, for software that
/// cannot read `tls.key` and `tls.crt` as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputFormats {
    /// `key.der`: the private key's DER, in the encoding of `tls.key`.
    pub der: bool,
    /// `tls-combined.pem`: the private key, then the chain, in one file.
    pub combined_pem: bool,
    /// PKCS#12 and JKS keystores and trust stores.
    pub keystores: keystore::Keystores,
}

/// Secret data keys, as cert-manager names them.
pub mod data_keys {
    pub const CERT: &str = "tls.crt";
    pub const KEY: &str = "tls.key";
    pub const CA: &str = "ca.crt";
    pub const KEY_DER: &str = "key.der";
    pub const COMBINED_PEM: &str = "tls-combined.pem";
    pub const KEYSTORE_P12: &str = "keystore.p12";
    pub const TRUSTSTORE_P12: &str = "truststore.p12";
    pub const KEYSTORE_JKS: &str = "keystore.jks";
    pub const TRUSTSTORE_JKS: &str = "truststore.jks";
    /// The additional outputs, written only when the spec asks.
    pub const EXTRA: [&str; 6] = [
        KEY_DER,
        COMBINED_PEM,
        KEYSTORE_P12,
        TRUSTSTORE_P12,
        KEYSTORE_JKS,
        TRUSTSTORE_JKS,
    ];
    /// Every key certweave writes; any other key in a Secret is left alone.
    pub const ALL: [&str; 9] = [
        CERT,
        KEY,
        CA,
        KEY_DER,
        COMBINED_PEM,
        KEYSTORE_P12,
        TRUSTSTORE_P12,
        KEYSTORE_JKS,
        TRUSTSTORE_JKS,
    ];
}

/// `tls-combined.pem`: the key, a newline, then the chain (cert-manager's
/// layout).
fn combined_pem(key: &str, chain: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + chain.len() + 1);
    out.extend_from_slice(key.as_bytes());
    if !key.ends_with('\n') {
        out.push(b'\n');
    }
    out.extend_from_slice(chain.as_bytes());
    out
}

/// One data entry of a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEntry {
    pub key: &'static str,
    pub value: Vec<u8>,
    /// Holds the private key: files get mode 0600.
    pub private: bool,
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecret")
            .field("tls_crt", &self.tls_crt.as_ref().map(String::len))
            .field("tls_key", &self.tls_key.as_ref().map(|_| "<redacted>"))
            .field("ca_crt", &self.ca_crt.as_ref().map(String::len))
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .field("annotations", &self.annotations)
            .finish()
    }
}

/// What to write into a Secret: the bundle, in one update, with metadata.
#[derive(Debug, Clone)]
pub struct SecretWrite<'a> {
    pub bundle: &'a Bundle,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub formats: &'a OutputFormats,
}

impl SecretWrite<'_> {
    /// Every data entry of the Secret, built in this one place for every
    /// store, so a directory and a cluster hold the same bytes.
    pub fn entries(&self) -> Result<Vec<SecretEntry>, keystore::KeystoreError> {
        let bundle = self.bundle;
        let entry = |key, value: &[u8], private| SecretEntry {
            key,
            value: value.to_vec(),
            private,
        };
        let mut out = vec![
            entry(data_keys::KEY, bundle.key_pem.as_bytes(), true),
            entry(data_keys::CERT, bundle.chain_pem.as_bytes(), false),
        ];
        if let Some(ca) = &bundle.ca_pem {
            out.push(entry(data_keys::CA, ca.as_bytes(), false));
        }
        if self.formats.der {
            // Issuers return checked bundles, so the key always decodes.
            if let Some(der) = crate::pki::pem_block_der(&bundle.key_pem) {
                out.push(entry(data_keys::KEY_DER, &der, true));
            }
        }
        if self.formats.combined_pem {
            out.push(SecretEntry {
                key: data_keys::COMBINED_PEM,
                value: combined_pem(&bundle.key_pem, &bundle.chain_pem),
                private: true,
            });
        }
        // Keystores are encrypted with their password; they are still
        // files with the private key, and kept private.
        if let Some(pkcs12) = &self.formats.keystores.pkcs12 {
            let keystore = keystore::pkcs12_keystore(bundle, pkcs12)?;
            out.push(entry(data_keys::KEYSTORE_P12, &keystore, true));
            if let Some(ca) = &bundle.ca_pem {
                let truststore = keystore::pkcs12_truststore(ca, pkcs12)?;
                out.push(entry(data_keys::TRUSTSTORE_P12, &truststore, false));
            }
        }
        if let Some(jks) = &self.formats.keystores.jks {
            let keystore = keystore::jks_keystore(bundle, jks)?;
            out.push(entry(data_keys::KEYSTORE_JKS, &keystore, true));
            if let Some(ca) = &bundle.ca_pem {
                let truststore = keystore::jks_truststore(ca, jks)?;
                out.push(entry(data_keys::TRUSTSTORE_JKS, &truststore, false));
            }
        }
        Ok(out)
    }
}

/// RFC 3339 timestamps in state files, so people can read them.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(
        value: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            None => serializer.serialize_none(),
            Some(t) => {
                let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
                let odt = OffsetDateTime::from_unix_timestamp(since.as_secs() as i64)
                    .map_err(serde::ser::Error::custom)?
                    + Duration::from_nanos(u64::from(since.subsec_nanos()));
                serializer.serialize_some(&odt.format(&Rfc3339).map_err(serde::ser::Error::custom)?)
            }
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        let odt = OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)?;
        let nanos = odt.unix_timestamp_nanos();
        Ok(Some(if nanos >= 0 {
            UNIX_EPOCH + Duration::from_nanos(nanos as u64)
        } else {
            UNIX_EPOCH
        }))
    }
}

/// The persistent status of one managed certificate: what `kubectl describe`
/// shows in a cluster, and what lets a restart keep the schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateState {
    /// Increments with every successful issuance.
    pub revision: u64,
    #[serde(default, with = "rfc3339")]
    pub not_before: Option<SystemTime>,
    #[serde(default, with = "rfc3339")]
    pub not_after: Option<SystemTime>,
    #[serde(default, with = "rfc3339")]
    pub renewal_time: Option<SystemTime>,
    pub failed_issuance_attempts: u32,
    #[serde(default, with = "rfc3339")]
    pub last_failure_time: Option<SystemTime>,
    /// When the next attempt is due after failures (the backoff schedule).
    #[serde(default, with = "rfc3339")]
    pub next_attempt: Option<SystemTime>,
    pub ready: bool,
    /// Why the certificate is (not) ready, for people.
    pub message: Option<String>,
    /// An ACME order in flight, as the ACME issuer serialised it, so a
    /// restart resumes it instead of opening a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<serde_json::Value>,
    /// The issuer's renewal information about the stored certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari: Option<AriState>,
    /// How the last order at the issuer went (ACME: each name, its
    /// challenge and the server's error), kept after a failure so
    /// `certweave status` can say which name failed and why; cleared when
    /// a certificate is issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_progress: Option<OrderProgress>,
}

/// What the issuer's renewal information (ACME ARI, RFC 9773) said about the
/// stored certificate, and the renewal time picked in its window: kept so a
/// restart neither asks again early nor picks another time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AriState {
    /// Serial (hex) of the certificate the window is for.
    pub serial: String,
    #[serde(default, with = "rfc3339")]
    pub window_start: Option<SystemTime>,
    #[serde(default, with = "rfc3339")]
    pub window_end: Option<SystemTime>,
    /// The uniformly random point in the window the renewal is set for.
    #[serde(default, with = "rfc3339")]
    pub renewal_time: Option<SystemTime>,
    /// When to ask the issuer again (its `Retry-After`).
    #[serde(default, with = "rfc3339")]
    pub check_again: Option<SystemTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation_url: Option<String>,
}

/// Store failures, with the path or object involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt state: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("Secret {secret}: {source}")]
    Keystore {
        secret: String,
        #[source]
        source: keystore::KeystoreError,
    },
    /// A Kubernetes API request failed (the store in a cluster). `advice`
    /// says what a user can do about it, when there is something to say.
    #[error("{object}: {source}{}", advice.as_deref().map(|a| format!("; {a}")).unwrap_or_default())]
    Api {
        object: String,
        advice: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Where certificates and their status live: a local directory
/// ([`fs::FsStore`]) or, in a cluster, Secrets and Certificate status.
pub trait Store: Send + Sync {
    /// The Secret's contents, or `None` if it does not exist.
    fn read_secret(
        &self,
        secret: &ObjectKey,
    ) -> impl Future<Output = Result<Option<StoredSecret>, StoreError>> + Send;

    /// Replaces the Secret's contents in one step: readers see the old
    /// bundle or the new one, never a key from one and a certificate from
    /// the other.
    fn write_secret(
        &self,
        secret: &ObjectKey,
        write: &SecretWrite<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The stored status of a certificate.
    fn read_state(
        &self,
        certificate: &ObjectKey,
    ) -> impl Future<Output = Result<Option<CertificateState>, StoreError>> + Send;

    /// Records a certificate's status.
    fn write_state(
        &self,
        certificate: &ObjectKey,
        state: &CertificateState,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every certificate with a recorded status: the renewal queue is
    /// rebuilt from this at start.
    fn list_states(
        &self,
    ) -> impl Future<Output = Result<Vec<(ObjectKey, CertificateState)>, StoreError>> + Send;
}
