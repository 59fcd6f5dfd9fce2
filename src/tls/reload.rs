//! A serving certificate read from a pair of PEM files and reloaded when
//! they change: the one reloader of the webhook and of the proxy.
//!
//! Kubernetes projects a Secret volume as a timestamped directory plus a
//! `..data` symlink pointing at it; `tls.crt` and `tls.key` are symlinks into
//! `..data/`. A rotation writes a new timestamped directory and swaps
//! `..data` with a rename, which is atomic, then deletes the old directory;
//! cert tools rewrite files in place. Either way the listener must pick up
//! the new certificate for new connections without restarting or dropping
//! the old ones. [`ReloadingCert`] polls both files through their symlinks
//! (the stamp is taken from the final target, so a swap changes it even when
//! the new files have the same size and time) and:
//!
//! - loads a bundle only when both files parse and the key belongs to the
//!   certificate; anything else is rejected and the previous bundle keeps
//!   serving, so a broken rotation never takes a listener down;
//! - re-stamps the files after reading them and retries on the next tick if
//!   they changed meanwhile, so a swap landing between reading the
//!   certificate and reading the key is not mistaken for a mismatched pair;
//! - does not retry files that were rejected until they change again, so a
//!   broken rotation is reported once, not on every tick.
//!
//! It starts either loaded ([`ReloadingCert::load`]: a server given files
//! on its command line refuses to start without them) or empty
//! ([`ReloadingCert::empty`]: a sidecar starts before kubelet has mounted the
//! Secret, and accepts nothing until it has). New TLS handshakes ask the
//! resolver for the current bundle; connections already open keep the
//! certificate they were set up with.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use super::{load_certified_key, TlsError};

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

/// The result of one look at the files.
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

/// A certificate and key file pair and the bundle currently served from
/// it; the rustls certificate resolver of a listener.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Option<Arc<CertifiedKey>>>,
    seen: Mutex<Option<(Stamp, Stamp)>>,
    loaded: watch::Sender<bool>,
}

impl ReloadingCert {
    /// Serves `cert_path` and `key_path` once they appear. Nothing is read
    /// yet: call [`ReloadingCert::poll`] (or run [`ReloadingCert::watch`]).
    pub fn empty(cert_path: &Path, key_path: &Path) -> Arc<Self> {
        Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(None),
            seen: Mutex::new(None),
            loaded: watch::Sender::new(false),
        })
    }

    /// Loads the files once; fails if they are not a valid pair, so a
    /// misconfigured server refuses to start rather than serve nothing.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, TlsError> {
        let cert = Self::empty(cert_path, key_path);
        match cert.poll() {
            ReloadOutcome::Loaded => Ok(cert),
            ReloadOutcome::Rejected(e) => Err(e),
            // Files that change while being read, or vanish: read once more
            // and report whatever that finds.
            _ => {
                let key = load_certified_key(cert_path, key_path)?;
                cert.install(key);
                Ok(cert)
            }
        }
    }

    /// The certificate file watched.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
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
                self.install(key);
                ReloadOutcome::Loaded
            }
            Err(e) => ReloadOutcome::Rejected(e),
        }
    }

    /// Polls the files every `interval` until the task is dropped, handing
    /// each outcome to `report` (which logs and counts it as its server's
    /// metrics say).
    pub async fn watch(
        self: Arc<Self>,
        interval: Duration,
        mut report: impl FnMut(&Self, ReloadOutcome),
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.poll() {
                ReloadOutcome::Unchanged => {}
                outcome => report(&self, outcome),
            }
        }
    }

    fn install(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(key));
        self.loaded.send_replace(true);
    }

    fn stamps(&self) -> (Stamp, Stamp) {
        (Stamp::of(&self.cert_path), Stamp::of(&self.key_path))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "tls.crt";
    const KEY: &str = "tls.key";

    fn bundle(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(dir: &Path, (cert, key): &(String, String)) {
        fs::write(dir.join(CERT), cert).unwrap();
        fs::write(dir.join(KEY), key).unwrap();
    }

    fn empty(dir: &Path) -> Arc<ReloadingCert> {
        ReloadingCert::empty(&dir.join(CERT), &dir.join(KEY))
    }

    #[test]
    fn waits_then_loads_then_ignores_unchanged_files() {
        let tmp = tempfile::tempdir().unwrap();
        let certs = empty(tmp.path());
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
        let certs = empty(tmp.path());
        write(tmp.path(), &bundle("a.example"));
        assert!(matches!(certs.poll(), ReloadOutcome::Loaded));
        let served = certs.current().unwrap();

        let (other_cert, _) = bundle("b.example");
        fs::write(tmp.path().join(CERT), other_cert).unwrap();
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
        let certs = empty(tmp.path());
        fs::write(tmp.path().join(CERT), "not a certificate").unwrap();
        fs::write(tmp.path().join(KEY), "not a key").unwrap();
        match certs.poll() {
            ReloadOutcome::Rejected(TlsError::NoCertificate { .. }) => {}
            other => panic!("expected no certificate, got {other:?}"),
        }
        assert!(!certs.is_loaded());
    }

    #[test]
    fn load_refuses_missing_or_mismatched_files_and_serves_valid_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = ReloadingCert::load(&tmp.path().join(CERT), &tmp.path().join(KEY));
        assert!(matches!(missing, Err(TlsError::Read { .. })), "{missing:?}");

        write(tmp.path(), &bundle("a.example"));
        let loaded = ReloadingCert::load(&tmp.path().join(CERT), &tmp.path().join(KEY)).unwrap();
        assert!(loaded.is_loaded());
        assert!(matches!(loaded.poll(), ReloadOutcome::Unchanged));
    }
}
