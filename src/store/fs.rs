//! The local-directory store of `certweave local`.
//!
//! Layout under the root directory:
//!
//! ```text
//! secrets/<namespace>/<secret>/..data -> ..<version>/       (atomically swapped symlink)
//! secrets/<namespace>/<secret>/..<version>/{tls.crt,tls.key,ca.crt,secret.yaml}
//! secrets/<namespace>/<secret>/{tls.crt,tls.key,ca.crt,secret.yaml} -> ..data/<file>
//! state/certificates/<namespace>/<certificate>.json
//! ```
//!
//! This is how the kubelet lays out a mounted Secret, for the same reason:
//! a version directory is complete before the `..data` symlink is renamed
//! onto it, so at every instant — including after a crash at any point —
//! the files visible through the fixed names belong to one issuance, and a
//! valid bundle is never replaced by a partial one.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::json;

use super::files::{self, CA_FILE, CERT_FILE, KEY_FILE};
use super::{
    data_keys, CertificateState, ObjectKey, SecretEntry, SecretWrite, Store, StoreError,
    StoredSecret,
};

/// Every readable state, and the errors of the unreadable ones.
pub type StateListing = (Vec<(ObjectKey, CertificateState)>, Vec<StoreError>);

/// The Secret manifest written beside the PEM files.
pub const SECRET_MANIFEST: &str = "secret.yaml";
const DATA_LINK: &str = "..data";

/// A store rooted at a directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `secrets/<namespace>/<name>`, where a Secret's files appear.
    pub fn secret_dir(&self, secret: &ObjectKey) -> PathBuf {
        self.root
            .join("secrets")
            .join(&secret.namespace)
            .join(&secret.name)
    }

    /// `state/renew/<namespace>/<name>`: a request, by `certweave renew
    /// --dir`, to issue this certificate now; removed once honoured.
    fn renewal_request_path(&self, certificate: &ObjectKey) -> PathBuf {
        self.root
            .join("state")
            .join("renew")
            .join(&certificate.namespace)
            .join(&certificate.name)
    }

    /// Asks a running (or the next) `certweave local` to issue
    /// `certificate` now.
    pub fn request_renewal(&self, certificate: &ObjectKey) -> Result<(), StoreError> {
        let path = self.renewal_request_path(certificate);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        fs::write(&path, b"").map_err(io_err(&path))
    }

    pub fn renewal_requested(&self, certificate: &ObjectKey) -> bool {
        self.renewal_request_path(certificate).exists()
    }

    pub fn clear_renewal_request(&self, certificate: &ObjectKey) {
        let _ = fs::remove_file(self.renewal_request_path(certificate));
    }

    /// Every pending renewal request.
    pub fn renewal_requests(&self) -> Vec<ObjectKey> {
        self.objects_under(&self.root.join("state").join("renew"), "")
    }

    /// Every certificate with recorded state.
    pub fn certificates_with_state(&self) -> Vec<ObjectKey> {
        self.objects_under(&self.root.join("state").join("certificates"), ".json")
    }

    /// `<dir>/<namespace>/<name><suffix>` entries as keys, sorted.
    fn objects_under(&self, dir: &Path, suffix: &str) -> Vec<ObjectKey> {
        let mut out = Vec::new();
        for namespace in fs::read_dir(dir).into_iter().flatten().flatten() {
            let Some(ns) = namespace.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            for entry in fs::read_dir(namespace.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if let Some(name) = file.strip_suffix(suffix).filter(|n| !n.starts_with('.')) {
                    if !name.is_empty() && entry.path().is_file() {
                        out.push(ObjectKey::new(ns.clone(), name));
                    }
                }
            }
        }
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }

    /// The recorded state of `certificate` (for `certweave status --dir`).
    pub fn state_of(
        &self,
        certificate: &ObjectKey,
    ) -> Result<Option<CertificateState>, StoreError> {
        self.read_state_sync(certificate)
    }

    fn state_path(&self, certificate: &ObjectKey) -> PathBuf {
        self.root
            .join("state")
            .join("certificates")
            .join(&certificate.namespace)
            .join(format!("{}.json", certificate.name))
    }

    fn read_secret_sync(&self, secret: &ObjectKey) -> Result<Option<StoredSecret>, StoreError> {
        let dir = self.secret_dir(secret);
        if !dir.exists() {
            return Ok(None);
        }
        let read_bytes = |name: &str| -> Result<Option<Vec<u8>>, StoreError> {
            let path = dir.join(name);
            match fs::read(&path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_err(&path)(e)),
            }
        };
        let read = |name: &str| -> Result<Option<String>, StoreError> {
            Ok(read_bytes(name)?.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
        };
        let annotations = read(SECRET_MANIFEST)?
            .and_then(|yaml| serde_yaml_ng::from_str::<serde_json::Value>(&yaml).ok())
            .and_then(|v| {
                serde_json::from_value::<BTreeMap<String, String>>(
                    v["metadata"]["annotations"].clone(),
                )
                .ok()
            })
            .unwrap_or_default();
        Ok(Some(StoredSecret {
            tls_crt: read(CERT_FILE)?,
            tls_key: read(KEY_FILE)?,
            ca_crt: read(CA_FILE)?,
            extra: data_keys::EXTRA
                .into_iter()
                .filter_map(|key| read_bytes(key).map(|b| b.map(|b| (key, b))).transpose())
                .collect::<Result<_, _>>()?,
            annotations,
        }))
    }

    fn write_secret_sync(
        &self,
        secret: &ObjectKey,
        write: &SecretWrite<'_>,
    ) -> Result<(), StoreError> {
        let dir = self.secret_dir(secret);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let version = format!("..{nanos}.{}", std::process::id());
        let version_dir = dir.join(&version);
        let entries = write.entries().map_err(|source| StoreError::Keystore {
            secret: secret.to_string(),
            source,
        })?;
        fs::create_dir(&version_dir).map_err(io_err(&version_dir))?;

        let manifest = secret_manifest(secret, write, &entries);
        let files = entries
            .iter()
            .map(|e| {
                (
                    e.key,
                    e.value.as_slice(),
                    if e.private { 0o600 } else { 0o644 },
                )
            })
            .chain([(SECRET_MANIFEST, manifest.as_bytes(), 0o600)]);
        for (name, contents, mode) in files {
            let path = version_dir.join(name);
            files::write_atomic(&path, contents, mode).map_err(io_err(&path))?;
        }

        // Swap the ..data link onto the complete version in one rename.
        let temp_link = dir.join(format!("..data_tmp.{}", std::process::id()));
        let _ = fs::remove_file(&temp_link);
        symlink(Path::new(&version), &temp_link).map_err(io_err(&temp_link))?;
        let data_link = dir.join(DATA_LINK);
        fs::rename(&temp_link, &data_link).map_err(io_err(&data_link))?;

        // Stable names point through ..data; create the ones missing, and
        // drop the links of outputs no longer asked for (a dangling link
        // would read as a broken file).
        for name in data_keys::ALL.into_iter().chain([SECRET_MANIFEST]) {
            let link = dir.join(name);
            let wanted =
                name == SECRET_MANIFEST || name == CA_FILE || entries.iter().any(|e| e.key == name);
            let present = fs::symlink_metadata(&link).is_ok();
            if wanted && !present {
                symlink(&Path::new(DATA_LINK).join(name), &link).map_err(io_err(&link))?;
            } else if !wanted && present {
                let _ = fs::remove_file(&link);
            }
        }
        if let Ok(dir_handle) = fs::File::open(&dir) {
            let _ = dir_handle.sync_all();
        }
        remove_old_versions(&dir, &version);
        Ok(())
    }

    fn read_state_sync(
        &self,
        certificate: &ObjectKey,
    ) -> Result<Option<CertificateState>, StoreError> {
        let path = self.state_path(certificate);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt {
                        path,
                        reason: e.to_string(),
                    })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn write_state_sync(
        &self,
        certificate: &ObjectKey,
        state: &CertificateState,
    ) -> Result<(), StoreError> {
        let path = self.state_path(certificate);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let json = serde_json::to_vec_pretty(state).expect("state serialises");
        files::write_atomic(&path, &json, 0o600).map_err(io_err(&path))
    }

    /// Reads every state file; a corrupt one is reported, not fatal, so one
    /// bad file cannot stop the others from being served.
    pub fn list_states_sync(&self) -> Result<StateListing, StoreError> {
        let base = self.root.join("state").join("certificates");
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let namespaces = match fs::read_dir(&base) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((out, errors)),
            Err(e) => return Err(io_err(&base)(e)),
        };
        for ns in namespaces.flatten() {
            let Ok(namespace) = ns.file_name().into_string() else {
                continue;
            };
            let Ok(files) = fs::read_dir(ns.path()) else {
                continue;
            };
            for file in files.flatten() {
                let Ok(file_name) = file.file_name().into_string() else {
                    continue;
                };
                let Some(name) = file_name.strip_suffix(".json") else {
                    continue;
                };
                let key = ObjectKey::new(namespace.clone(), name);
                match self.read_state_sync(&key) {
                    Ok(Some(state)) => out.push((key, state)),
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((out, errors))
    }
}

fn remove_old_versions(dir: &Path, current: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_version = name.starts_with("..") && name != DATA_LINK && !name.starts_with("..data");
        if is_version && name != current && entry.path().is_dir() {
            let _ = fs::remove_dir_all(entry.path());
        } else if name.starts_with("..data_tmp.") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "the local store needs symlinks",
    ))
}

/// The Kubernetes Secret this directory stands for.
fn secret_manifest(secret: &ObjectKey, write: &SecretWrite<'_>, entries: &[SecretEntry]) -> String {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let data: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|e| (e.key.to_owned(), b64(&e.value).into()))
        .collect();
    let mut metadata = json!({ "name": secret.name, "namespace": secret.namespace });
    if !write.annotations.is_empty() {
        metadata["annotations"] = json!(write.annotations);
    }
    if !write.labels.is_empty() {
        metadata["labels"] = json!(write.labels);
    }
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": metadata,
        "data": data,
    });
    serde_yaml_ng::to_string(&manifest).expect("a JSON value serialises to YAML")
}

impl Store for FsStore {
    async fn read_secret(&self, secret: &ObjectKey) -> Result<Option<StoredSecret>, StoreError> {
        self.read_secret_sync(secret)
    }

    async fn write_secret(
        &self,
        secret: &ObjectKey,
        write: &SecretWrite<'_>,
    ) -> Result<(), StoreError> {
        self.write_secret_sync(secret, write)
    }

    async fn read_state(
        &self,
        certificate: &ObjectKey,
    ) -> Result<Option<CertificateState>, StoreError> {
        self.read_state_sync(certificate)
    }

    async fn write_state(
        &self,
        certificate: &ObjectKey,
        state: &CertificateState,
    ) -> Result<(), StoreError> {
        self.write_state_sync(certificate, state)
    }

    async fn list_states(&self) -> Result<Vec<(ObjectKey, CertificateState)>, StoreError> {
        let (states, errors) = self.list_states_sync()?;
        for e in errors {
            tracing::warn!(error = %e, "ignoring unreadable certificate state; it will be re-evaluated");
        }
        Ok(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Bundle;

    fn bundle(tag: &str) -> Bundle {
        Bundle {
            chain_pem: format!("cert-{tag}"),
            key_pem: format!("key-{tag}"),
            ca_pem: Some(format!("ca-{tag}")),
        }
    }

    #[test]
    fn secrets_swap_whole_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let key = ObjectKey::new("default", "web-tls");
        assert!(store.read_secret_sync(&key).unwrap().is_none());
        for tag in ["one", "two", "three"] {
            let mut annotations = BTreeMap::new();
            annotations.insert(
                "cert-manager.io/certificate-name".to_string(),
                "web".to_string(),
            );
            let b = bundle(tag);
            store
                .write_secret_sync(
                    &key,
                    &SecretWrite {
                        bundle: &b,
                        annotations,
                        labels: BTreeMap::new(),
                        formats: &Default::default(),
                    },
                )
                .unwrap();
            let read = store.read_secret_sync(&key).unwrap().unwrap();
            assert_eq!(read.tls_crt.as_deref(), Some(&*format!("cert-{tag}")));
            assert_eq!(read.tls_key.as_deref(), Some(&*format!("key-{tag}")));
            assert_eq!(read.annotations["cert-manager.io/certificate-name"], "web");
        }
        let versions = fs::read_dir(store.secret_dir(&key))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with("..data"))
            .count();
        assert_eq!(versions, 1, "old versions are removed");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(store.secret_dir(&key).join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn state_round_trips_and_corruption_is_isolated() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path());
        let state = CertificateState {
            revision: 3,
            failed_issuance_attempts: 2,
            next_attempt: Some(UNIX_EPOCH + std::time::Duration::from_secs(42)),
            ..Default::default()
        };
        store
            .write_state_sync(&ObjectKey::new("a", "one"), &state)
            .unwrap();
        store
            .write_state_sync(&ObjectKey::new("b", "two"), &state)
            .unwrap();
        fs::write(
            dir.path().join("state/certificates/b/broken.json"),
            b"{not json",
        )
        .unwrap();
        let (states, errors) = store.list_states_sync().unwrap();
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].1, state);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("broken.json"));
    }
}
