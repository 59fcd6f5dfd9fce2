//! The built-in CA of `certweave local`: created on first start under
//! `state/ca/`, used for certificates whose issuer the directory does not
//! define, so the shipped examples work with no external service.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::issuers::ca::CaIssuer;
use crate::issuers::selfsigned::SelfSignedIssuer;
use crate::model::CertificateRequest;
use crate::model::IssueError;
use crate::pki::{self, KeyAlgorithm, KeyEncoding, PrivateKey};
use crate::store::files;

/// Ten years: the local CA outlives every certificate it signs.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86400);
/// Re-create the CA when less than this remains.
const CA_MIN_REMAINING: Duration = Duration::from_secs(90 * 86400);

/// Where the built-in CA lives.
pub fn ca_dir(root: &Path) -> PathBuf {
    root.join("state").join("ca")
}

/// Loads the built-in CA, creating it if missing, unusable or near expiry.
pub fn load_or_create(root: &Path) -> Result<(CaIssuer, PathBuf), IssueError> {
    let dir = ca_dir(root);
    let cert_path = dir.join(files::CERT_FILE);
    let key_path = dir.join(files::KEY_FILE);
    if let (Ok(cert), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        let fresh =
            pki::check_bundle(&cert, &key, None, SystemTime::now() + CA_MIN_REMAINING).is_ok();
        if fresh {
            if let Ok(ca) = CaIssuer::from_pem(&cert, &key) {
                return Ok((ca, cert_path));
            }
        }
        tracing::warn!(dir = %dir.display(), "built-in CA is unusable or about to expire; creating a new one");
    }
    let mut request = CertificateRequest::for_dns_names(Vec::<String>::new());
    request.common_name = Some("certweave local CA".into());
    request.is_ca = true;
    request.duration = CA_LIFETIME;
    request.key_algorithm = KeyAlgorithm::EcdsaP256;
    request.key_encoding = KeyEncoding::Pkcs8;
    let key = PrivateKey::generate(request.key_algorithm)?;
    let bundle = SelfSignedIssuer.sign(&request, &key)?;
    files::write_bundle(&dir, &bundle).map_err(|e| {
        IssueError::Config(format!(
            "cannot write the built-in CA to {}: {e}",
            dir.display()
        ))
    })?;
    tracing::info!(cert = %cert_path.display(), "created the built-in CA; trust this file to trust certificates it signs");
    Ok((
        CaIssuer::from_pem(&bundle.chain_pem, &bundle.key_pem)?,
        cert_path,
    ))
}
