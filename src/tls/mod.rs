//! TLS serving, once for every listener in the binary: the admission
//! webhook and the sidecar proxy terminate TLS the same way, so they share
//! one configuration, one certificate reloader and one accept loop.
//!
//! - [`reload`]: the serving certificate read from PEM files and reloaded
//!   when they change, without dropping open connections.
//! - [`serve`]: the accept loop: handshake deadline, connection limit,
//!   HTTP/1.1 and HTTP/2 per connection, graceful drain.
//! - [`workers`]: thread-per-core connection serving, for the webhook.
//!
//! The rustls setup lives here: the ring provider, TLS 1.2 and 1.3 only,
//! ALPN `h2` and `http/1.1` (the API server talks HTTP/2 to webhooks).

pub mod reload;
pub mod serve;
pub mod workers;

pub use reload::{ReloadOutcome, ReloadingCert};

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::ResolvesServerCert;
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

/// A server configuration with TLS 1.2 and 1.3 only and ALPN for HTTP/2 and
/// HTTP/1.1 (the API server talks HTTP/2 to webhooks).
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> ServerConfig {
    server_config_verifying(resolver, None)
}

/// [`server_config`], and with `clients` set, every client must present a
/// certificate that verifier accepts (mutual TLS).
pub fn server_config_verifying(
    resolver: Arc<dyn ResolvesServerCert>,
    clients: Option<Arc<dyn ClientCertVerifier>>,
) -> ServerConfig {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3");
    let mut config = match clients {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier),
    }
    .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}
