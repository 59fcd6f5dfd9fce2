//! The triggers a directory gives: edited manifests, and Secret files
//! changed by someone else.

use std::sync::Arc;
use std::time::SystemTime;

use super::job::LocalJob;
use super::wanted::load_wanted;
use super::{manifests, LocalOptions};
use crate::engine::scheduler::Trigger;
use crate::store::ObjectKey;

/// Polls the directory: edited manifests force the certificates they
/// change, and Secret files changed by someone else force theirs.
pub(super) async fn watch_directory(options: LocalOptions, job: Arc<LocalJob>) {
    let mut fingerprint = manifests::fingerprint(&options.dir);
    loop {
        tokio::time::sleep(options.poll_interval).await;
        let current = manifests::fingerprint(&options.dir);
        if current != fingerprint {
            fingerprint = current;
            let fresh = Arc::new(load_wanted(&options));
            // Replaced before the triggers go out: an evaluation they start
            // must see the new manifests.
            let wanted = std::mem::replace(
                &mut *job.wanted.write().expect("wanted lock"),
                fresh.clone(),
            );
            for (key, item) in fresh.iter() {
                if wanted.get(key) != Some(item) {
                    tracing::info!(certificate = %key, source = %item.source, "manifest changed; evaluating");
                    job.triggers.send(Trigger::Force(key.clone()));
                }
            }
            for key in wanted.keys() {
                if !fresh.contains_key(key) {
                    tracing::info!(certificate = %key, "certificate removed from the manifests; its files are kept");
                    job.triggers.send(Trigger::Forget(key.clone()));
                }
            }
        }
        // Read outside the lock: file metadata can be slow, evaluations wait.
        let wanted = job.wanted();
        for key in job.shared.store.renewal_requests() {
            if wanted.contains_key(&key) {
                tracing::info!(certificate = %key, "renewal requested; issuing");
                job.triggers.send(Trigger::Force(key));
            }
        }
        let current: Vec<(ObjectKey, SecretStamp)> = wanted
            .iter()
            .map(|(key, item)| {
                let dir = job.shared.store.secret_dir(&item.managed.secret);
                (key.clone(), SecretStamp::of(&dir))
            })
            .collect();
        let mut stamps = job.stamps.lock().expect("stamps lock");
        for (key, now_stamp) in current {
            // No stamp: never evaluated, or being evaluated right now.
            let Some(seen) = stamps.get_mut(&key) else {
                continue;
            };
            if *seen != now_stamp {
                tracing::info!(certificate = %key, "Secret files changed on disk; evaluating");
                *seen = now_stamp;
                job.triggers.send(Trigger::Force(key));
            }
        }
    }
}

/// Identity of a Secret directory's visible files (size, mtime, inode of
/// each, following symlinks): cheap to take every poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SecretStamp(Vec<Option<(u64, Option<SystemTime>, u64)>>);

impl SecretStamp {
    pub(super) fn of(dir: &std::path::Path) -> Self {
        use crate::store::files::{CA_FILE, CERT_FILE, KEY_FILE};
        SecretStamp(
            [CERT_FILE, KEY_FILE, CA_FILE]
                .iter()
                .map(|name| {
                    std::fs::metadata(dir.join(name)).ok().map(|m| {
                        #[cfg(unix)]
                        let inode = std::os::unix::fs::MetadataExt::ino(&m);
                        #[cfg(not(unix))]
                        let inode = 0;
                        (m.len(), m.modified().ok(), inode)
                    })
                })
                .collect(),
        )
    }
}
