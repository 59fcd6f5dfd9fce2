//! One evaluation of one certificate in `certweave local`, as the engine's
//! [`Scheduler`](crate::engine::scheduler::Scheduler) runs it, and what
//! follows a new issuance (the `--on-renew` command, the certificates a new
//! CA unblocks).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use super::environment::Shared;
use super::progress::Progress;
use super::wanted::{depends_on, Wanted};
use super::watch::SecretStamp;
use crate::engine::reconcile::{self, ReconcileError};
use crate::engine::scheduler::{Job, Slot, Trigger, Triggers};
use crate::model::IssueError;
use crate::store::fs::FsStore;
use crate::store::ObjectKey;

/// `certweave local`'s evaluation of one certificate, for the engine's
/// [`Scheduler`].
pub(super) struct LocalJob {
    pub(super) shared: Arc<Shared>,
    pub(super) on_renew: Option<String>,
    /// What the manifests ask for; replaced whole when they change.
    pub(super) wanted: std::sync::RwLock<Arc<BTreeMap<ObjectKey, Wanted>>>,
    /// What each Secret's files looked like after its last evaluation:
    /// edits, deletions and corruption by others trigger a re-evaluation.
    /// A key is absent while it is evaluated, so its own writes do not.
    pub(super) stamps: std::sync::Mutex<HashMap<ObjectKey, SecretStamp>>,
    pub(super) triggers: Triggers<ObjectKey>,
    /// The certificates of the first pass not settled yet (a certificate
    /// waiting for a CA issued in the pass is evaluated again); `None` once
    /// the summary line was printed.
    pub(super) initial: std::sync::Mutex<Option<std::collections::HashSet<ObjectKey>>>,
    /// The progress line of the first pass (in a terminal).
    pub(super) progress: std::sync::Mutex<Progress>,
}

impl LocalJob {
    pub(super) fn wanted(&self) -> Arc<BTreeMap<ObjectKey, Wanted>> {
        self.wanted.read().expect("wanted lock").clone()
    }

    /// Notes `key` as evaluated; once the first pass is complete, says in
    /// one line how it ended.
    fn initial_pass_done(&self, key: &ObjectKey) {
        let mut initial = self.initial.lock().expect("initial lock");
        let Some(left) = initial.as_mut() else { return };
        left.remove(key);
        let mut progress = self.progress.lock().expect("progress lock");
        if !left.is_empty() {
            progress.update(left.len());
            return;
        }
        progress.finish();
        drop(progress);
        *initial = None;
        drop(initial);
        let store = &self.shared.store;
        let (mut ready, mut failing, mut next) = (0usize, 0usize, None::<SystemTime>);
        for key in self.wanted().keys() {
            match store.state_of(key) {
                Ok(Some(state)) if state.ready => {
                    ready += 1;
                    if let Some(at) = state.renewal_time {
                        next = Some(next.map_or(at, |n| n.min(at)));
                    }
                }
                _ => failing += 1,
            }
        }
        let next = match next.and_then(|at| at.duration_since(SystemTime::now()).ok()) {
            Some(left) => format!(
                "next renewal in {}",
                crate::engine::timing::short_span(left)
            ),
            None => "no renewal scheduled".to_owned(),
        };
        let line = format!("{ready} certificates ready, {failing} failing, {next}");
        tracing::info!("{line}");
    }
}

impl Job for LocalJob {
    type Key = ObjectKey;
    type Error = ReconcileError;

    fn group(&self, key: &ObjectKey) -> Option<String> {
        Some(self.wanted().get(key)?.managed.issuer_group())
    }

    async fn run(
        &self,
        key: ObjectKey,
        forced: bool,
        slot: Slot,
    ) -> Result<Option<SystemTime>, ReconcileError> {
        let Some(item) = self.wanted().get(&key).cloned() else {
            return Ok(None);
        };
        let store = &self.shared.store;
        // Taken before reading: any change after this point differs from
        // the recorded stamp and is evaluated at the next poll.
        let stamp = SecretStamp::of(&store.secret_dir(&item.managed.secret));
        self.stamps.lock().expect("stamps lock").remove(&key);
        let issuer = self.shared.issuer_for(&item.issuer).await;
        // `certweave renew --dir`: issue now, once.
        let renew_now = store.renewal_requested(&key);
        let mut managed = item.managed.clone();
        managed.renew_now = renew_now;
        let result = async {
            if forced || renew_now {
                reconcile::clear_backoff(store, &item.managed.certificate).await?;
            }
            reconcile::reconcile_holding(
                store,
                &managed,
                issuer.as_ref().map_err(IssueError::duplicate),
                SystemTime::now(),
                &slot,
            )
            .await
        }
        .await;
        self.stamps
            .lock()
            .expect("stamps lock")
            .insert(key.clone(), stamp);
        let step = result?;
        if renew_now {
            store.clear_renewal_request(&key);
        }
        let wanted = self.wanted();
        if step.issued {
            on_issued(self.on_renew.as_deref(), store, &item);
            // Certificates signed by the CA in this Secret may be waiting for
            // it: evaluated again, and part of the first pass again if it
            // is still running.
            for (other, w) in wanted.iter() {
                if depends_on(w, &item.managed.secret) {
                    if let Some(initial) = self.initial.lock().expect("initial lock").as_mut() {
                        initial.insert(other.clone());
                    }
                    self.triggers.send(Trigger::Force(other.clone()));
                }
            }
        }
        self.initial_pass_done(&key);
        Ok(wanted.contains_key(&key).then_some(step.next))
    }
}

pub(super) fn on_issued(on_renew: Option<&str>, store: &FsStore, item: &Wanted) {
    let Some(command) = on_renew.map(str::to_owned) else {
        return;
    };
    let dir = store.secret_dir(&item.managed.secret);
    let certificate = item.managed.certificate.clone();
    tokio::spawn(async move {
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("CERTWEAVE_SECRET_DIR", &dir)
            .env("CERTWEAVE_NAMESPACE", &certificate.namespace)
            .env("CERTWEAVE_CERTIFICATE", &certificate.name)
            .status()
            .await;
        match status {
            Ok(s) if s.success() => tracing::info!(%certificate, "--on-renew command succeeded"),
            Ok(s) => tracing::warn!(%certificate, status = %s, "--on-renew command failed"),
            Err(e) => {
                tracing::warn!(%certificate, error = %e, "--on-renew command could not start")
            }
        }
    });
}
