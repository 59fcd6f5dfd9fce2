//! The proxy's rustls configuration: [`crate::tls::server_config`] (TLS 1.2
//! and 1.3 only, ALPN `h2` and `http/1.1`), and optionally client
//! certificates required and checked against `--client-ca`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use crate::tls;

/// Why `--client-ca` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClientCaError {
    #[error("cannot read --client-ca {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--client-ca {path} holds no PEM certificate; give the CA that signs client certificates (-----BEGIN CERTIFICATE-----)")]
    Empty { path: PathBuf },
    #[error("--client-ca {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Builds the server configuration. With `client_ca`, every client must
/// present a certificate chaining to one of the CAs in that PEM file.
pub(crate) fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, ClientCaError> {
    let verifier = match client_ca {
        None => None,
        Some(path) => {
            let roots = load_roots(path)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), tls::provider())
                    .build()
                    .map_err(|e| ClientCaError::Invalid {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?;
            Some(verifier)
        }
    };
    Ok(tls::server_config_verifying(resolver, verifier))
}

fn load_roots(path: &Path) -> Result<RootCertStore, ClientCaError> {
    let pem = fs::read(path).map_err(|source| ClientCaError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| ClientCaError::Invalid {
            path: path.to_owned(),
            reason: format!("unreadable PEM: {e}"),
        })?;
        roots.add(cert).map_err(|e| ClientCaError::Invalid {
            path: path.to_owned(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    if roots.is_empty() {
        return Err(ClientCaError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}
