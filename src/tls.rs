//! Serving certificates from PEM files, reloaded when the files change.
//!
//! Kubernetes rotates a mounted Secret by swapping a symlink, and cert tools
//! rewrite files in place; either way the listener must pick up the new
//! certificate for new connections without restarting or dropping the old
//! ones. [`ReloadingCertResolver`] is a rustls certificate resolver whose
//! current key can be swapped atomically; [`ReloadingCertResolver::watch`]
//! polls the files (following symlinks) and swaps in a new key only when it
//! parses and matches its certificate, so a half-written rotation never
//! replaces a working certificate.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// Why a certificate/key pair could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} holds no PEM certificate; expected -----BEGIN CERTIFICATE-----")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    BadKey { path: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}: {reason}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The ring provider, used for every TLS endpoint in the binary.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads a PEM certificate chain (leaf first) and its private key, checking
/// that they belong together.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_owned(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) | rustls::Error::InvalidCertificate(_) => {
            TlsError::Mismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
                reason: e.to_string(),
            }
        }
        other => TlsError::BadKey {
            path: key_path.to_owned(),
            reason: other.to_string(),
        },
    })?;
    Ok(certified)
}

/// What identifies a version of a file without reading it: size, mtime and
/// inode of the symlink target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp(Option<(u64, SystemTime, u64)>);

impl FileStamp {
    fn of(path: &Path) -> Self {
        FileStamp(fs::metadata(path).ok().map(|m| {
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let inode = 0;
            (
                m.len(),
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                inode,
            )
        }))
    }
}

/// A rustls resolver serving one certificate that can be replaced at runtime.
#[derive(Debug)]
pub struct ReloadingCertResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    seen: RwLock<(FileStamp, FileStamp)>,
}

impl ReloadingCertResolver {
    /// Loads the files once; fails if they are not a valid pair, so a
    /// misconfigured server refuses to start rather than serve nothing.
    pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let stamps = (FileStamp::of(cert_path), FileStamp::of(key_path));
        let key = load_certified_key(cert_path, key_path)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(Arc::new(key)),
            seen: RwLock::new(stamps),
        }))
    }

    /// The certificate served to new connections.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reloads if either file changed since the last attempt. Returns
    /// `Ok(true)` when a new certificate is now served, `Ok(false)` when
    /// nothing changed, and the load error otherwise (the old certificate
    /// stays; the same files are not retried until they change again).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamps = (
            FileStamp::of(&self.cert_path),
            FileStamp::of(&self.key_path),
        );
        {
            let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
            if *seen == stamps {
                return Ok(false);
            }
            *seen = stamps;
        }
        let key = load_certified_key(&self.cert_path, &self.key_path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
        Ok(true)
    }

    /// Polls the files every `interval` until the task is dropped, calling
    /// `on_error` for each rotation that could not be loaded.
    pub async fn watch(self: Arc<Self>, interval: Duration, on_error: impl Fn(&TlsError)) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.reload_if_changed() {
                Ok(true) => {
                    tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded")
                }
                Ok(false) => {}
                Err(e) => on_error(&e),
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A server configuration with TLS 1.2 and 1.3 only and ALPN for HTTP/2 and
/// HTTP/1.1 (the API server talks HTTP/2 to webhooks).
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> ServerConfig {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
