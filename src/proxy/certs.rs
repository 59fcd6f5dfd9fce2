//! The serving certificate, read from a mounted Secret directory and
//! reloaded when it changes.
//!
//! Kubernetes projects a Secret volume as a timestamped directory plus a
//! `..data` symlink pointing at it; `tls.crt` and `tls.key` are symlinks into
//! `..data/`. A rotation writes a new timestamped directory and swaps
//! `..data` with a rename, which is atomic, then deletes the old directory.
//! [`CertDir`] polls `tls.crt` and `tls.key` through those symlinks (the
//! stamp is taken from the final target, so a swap changes it even when the
//! new files have the same size and time) and:
//!
//! - loads a bundle only when both files parse and the key belongs to the
//!   certificate; anything else is rejected and the previous bundle keeps
//!   serving, so a broken rotation never takes the sidecar down;
//! - re-stamps the files after reading them and retries on the next tick if
//!   they changed meanwhile, so a swap landing between reading the
//!   certificate and reading the key is not mistaken for a mismatched pair;
//! - starts empty: until the Secret exists the proxy is not ready and does
//!   not accept connections.
//!
//! New TLS handshakes ask the resolver for the current bundle; connections
//! already open keep the certificate they were set up with.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use super::ProxyMetrics;
use crate::tls::{load_certified_key, TlsError};

/// File name of the certificate chain in a `kubernetes.io/tls` Secret.
pub const CERT_FILE: &str = "tls.crt";
/// File name of the private key in a `kubernetes.io/tls` Secret.
pub const KEY_FILE: &str = "tls.key";

/// What identifies one version of a file without reading it: device, inode,
/// size, modification and change times of the symlink's final target.
/// `None` when the file does not exist (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp(Option<(u64, u64, u64, i64, i64, i64, i64)>);

impl Stamp {
    fn of(path: &Path) -> Self {
        Stamp(fs::metadata(path).ok().map(|m| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                (
                    m.dev(),
                    m.ino(),
                    m.len(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                )
            }
            #[cfg(not(unix))]
            {
                let mtime = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .unwrap_or_default();
                (
                    0,
                    0,
                    m.len(),
                    mtime.as_secs() as i64,
                    i64::from(mtime.subsec_nanos()),
                    0,
                    0,
                )
            }
        }))
    }

    fn exists(&self) -> bool {
        self.0.is_some()
    }
}

/// The result of one look at the certificate directory.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// Neither file changed since the last look.
    Unchanged,
    /// No bundle has been loaded yet and the files are not there yet.
    Waiting,
    /// The files changed while being read; the next look tries again.
    InFlux,
    /// A new bundle is now served to new connections.
    Loaded,
    /// The files changed but do not form a usable bundle; the previous
    /// bundle (if any) keeps serving until the files change again.
    Rejected(TlsError),
}

/// A certificate directory and the bundle currently served from it. Used as
/// the rustls certificate resolver of the proxy's listener.
#[derive(Debug)]
pub struct CertDir {
    dir: PathBuf,
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Option<Arc<CertifiedKey>>>,
    seen: Mutex<Option<(Stamp, Stamp)>>,
    loaded: watch::Sender<bool>,
}

impl CertDir {
    /// Serves `dir/tls.crt` and `dir/tls.key`. Nothing is read yet: call
    /// [`CertDir::poll`] (or run [`CertDir::watch`]) to load the bundle.
    pub fn new(dir: &Path) -> Arc<Self> {
        Arc::new(Self {
            dir: dir.to_owned(),
            cert_path: dir.join(CERT_FILE),
            key_path: dir.join(KEY_FILE),
            current: RwLock::new(None),
            seen: Mutex::new(None),
            loaded: watch::Sender::new(false),
        })
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bundle served to new connections, if one was loaded.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether a valid bundle has been loaded (it stays loaded: later
    /// rejected rotations do not unload it).
    pub fn is_loaded(&self) -> bool {
        *self.loaded.borrow()
    }

    /// Completes once a valid bundle has been loaded.
    pub async fn wait_loaded(&self) {
        let mut rx = self.loaded.subscribe();
        // The sender lives in `self`, so the channel cannot close here.
        let _ = rx.wait_for(|loaded| *loaded).await;
    }

    /// Looks at the files once and loads them if they changed.
    pub fn poll(&self) -> ReloadOutcome {
        let before = self.stamps();
        {
            let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == Some(before) {
                return ReloadOutcome::Unchanged;
            }
        }
        let files_present = before.0.exists() && before.1.exists();
        if !self.is_loaded() && !files_present {
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(before);
            return ReloadOutcome::Waiting;
        }
        let result = load_certified_key(&self.cert_path, &self.key_path);
        if self.stamps() != before {
            return ReloadOutcome::InFlux;
        }
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(before);
        match result {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(key));
                self.loaded.send_replace(true);
                ReloadOutcome::Loaded
            }
            Err(e) => ReloadOutcome::Rejected(e),
        }
    }

    /// Polls the directory every `interval` until the task is dropped,
    /// logging each outcome worth knowing and counting it in `metrics`.
    pub async fn watch(self: Arc<Self>, interval: Duration, metrics: ProxyMetrics) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.poll() {
                ReloadOutcome::Unchanged => {}
                ReloadOutcome::Waiting => tracing::info!(
                    dir = %self.dir.display(),
                    "waiting for {CERT_FILE} and {KEY_FILE}; not ready until they exist"
                ),
                ReloadOutcome::InFlux => tracing::debug!(
                    dir = %self.dir.display(),
                    "certificate files changed while being read; retrying"
                ),
                ReloadOutcome::Loaded => {
                    metrics.cert_reloads.inc();
                    metrics.cert_loaded.set(1);
                    tracing::info!(dir = %self.dir.display(), "serving certificate loaded");
                }
                ReloadOutcome::Rejected(e) => {
                    metrics.cert_reload_errors.inc();
                    if self.is_loaded() {
                        tracing::warn!(error = %e, "new certificate bundle rejected; still serving the previous one");
                    } else {
                        tracing::warn!(error = %e, "certificate bundle rejected; not ready until a valid one appears");
                    }
                }
            }
        }
    }

    fn stamps(&self) -> (Stamp, Stamp) {
        (Stamp::of(&self.cert_path), Stamp::of(&self.key_path))
    }
}

impl ResolvesServerCert for CertDir {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, (cert, key): &(String, String)) {
        fs::write(dir.join(CERT_FILE), cert).unwrap();
        fs::write(dir.join(KEY_FILE), key).unwrap();
    }

    #[test]
    fn waits_then_loads_then_ignores_unchanged_files() {
        let tmp = tempfile::tempdir().unwrap();
        let certs = CertDir::new(tmp.path());
        assert!(matches!(certs.poll(), ReloadOutcome::Waiting));
        assert!(matches!(certs.poll(), ReloadOutcome::Unchanged));
        assert!(!certs.is_loaded());
        assert!(certs.current().is_none());

        write(tmp.path(), &bundle("a.example"));
        assert!(matches!(certs.poll(), ReloadOutcome::Loaded));
        assert!(certs.is_loaded());
        assert!(matches!(certs.poll(), ReloadOutcome::Unchanged));
    }

    #[test]
    fn a_mismatched_pair_is_rejected_and_the_old_bundle_stays() {
        let tmp = tempfile::tempdir().unwrap();
        let certs = CertDir::new(tmp.path());
        write(tmp.path(), &bundle("a.example"));
        assert!(matches!(certs.poll(), ReloadOutcome::Loaded));
        let served = certs.current().unwrap();

        let (other_cert, _) = bundle("b.example");
        fs::write(tmp.path().join(CERT_FILE), other_cert).unwrap();
        match certs.poll() {
            ReloadOutcome::Rejected(TlsError::Mismatch { .. }) => {}
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(Arc::ptr_eq(&served, &certs.current().unwrap()));
        // Not retried until the files change again.
        assert!(matches!(certs.poll(), ReloadOutcome::Unchanged));
    }

    #[test]
    fn garbage_before_the_first_bundle_is_rejected_and_not_ready() {
        let tmp = tempfile::tempdir().unwrap();
        let certs = CertDir::new(tmp.path());
        fs::write(tmp.path().join(CERT_FILE), "not a certificate").unwrap();
        fs::write(tmp.path().join(KEY_FILE), "not a key").unwrap();
        match certs.poll() {
            ReloadOutcome::Rejected(TlsError::NoCertificate { .. }) => {}
            other => panic!("expected no certificate, got {other:?}"),
        }
        assert!(!certs.is_loaded());
    }
}
