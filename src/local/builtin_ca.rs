//! The built-in CA of `certweave local`: created on first start under
//! `state/ca/`, used for certificates whose issuer the directory does not
//! define, so the shipped examples work with no external service. How it is
//! made and judged is [`crate::issuers::own_ca`]'s; this module keeps it in
//! files.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::issuers::own_ca::{CaSpec, OwnCa};
use crate::model::{IssueError, RenewBefore};
use crate::store::files;

/// Ten years: the local CA outlives every certificate it signs. Re-created
/// when less than 90 days remain.
const BUILTIN_CA: CaSpec = CaSpec {
    common_name: "certweave local CA",
    lifetime: Duration::from_secs(10 * 365 * 86400),
    renew_before: RenewBefore::Fixed(Duration::from_secs(90 * 86400)),
};

/// Where the built-in CA lives.
pub fn ca_dir(root: &Path) -> PathBuf {
    root.join("state").join("ca")
}

/// Loads the built-in CA, creating it if missing, unusable or near expiry.
/// Returns it with the path of its certificate (what users trust).
pub fn load_or_create(root: &Path) -> Result<(OwnCa, PathBuf), IssueError> {
    let dir = ca_dir(root);
    let cert_path = dir.join(files::CERT_FILE);
    let key_path = dir.join(files::KEY_FILE);
    if let (Ok(cert), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        if let Some(ca) = OwnCa::reuse(&BUILTIN_CA, &cert, &key, SystemTime::now()) {
            return Ok((ca, cert_path));
        }
        tracing::warn!(dir = %dir.display(), "built-in CA is unusable or about to expire; creating a new one");
    }
    let ca = OwnCa::create(&BUILTIN_CA)?;
    files::write_bundle(&dir, &ca.bundle()).map_err(|e| {
        IssueError::config_because(
            format!("cannot write the built-in CA to {}", dir.display()),
            e,
        )
    })?;
    tracing::info!(cert = %cert_path.display(), "created the built-in CA; trust this file to trust certificates it signs");
    Ok((ca, cert_path))
}
