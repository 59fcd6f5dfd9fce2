//! The one scheduler: every certificate of a controller or of `certweave
//! local` in one due-time queue, evaluated when it is due or when something
//! it depends on changes.
//!
//! The scheduler owns the queue and decides *when*; the caller's [`Job`]
//! decides *what* one evaluation does (read the spec, pick the issuer, run
//! [`super::reconcile::reconcile`], publish Events) and answers when to
//! look again. The rules live here once:
//! - one task owns the queue and wakes at the earliest due time;
//! - each evaluation runs in its own task, at most `concurrency` at once, so
//!   a certificate stuck on a slow issuer never holds up the others; an
//!   evaluation that goes on to wait for another party (an ACME server
//!   validating its challenges) gives its [`Slot`] back, so any number of
//!   such waits never starve issuers that only need this process's CPU;
//! - one issuer never takes every slot while another issuer's key is due:
//!   keys of the same [`Job::group`] hold at most three quarters of the
//!   slots (at least one) when other groups have work; with nobody else
//!   waiting, a group may use them all (a burst of one issuer is not
//!   slowed down);
//! - a key is never evaluated twice at once: a trigger for a key in flight
//!   runs it again right after, once, forced if any of the triggers was;
//! - a failed store read or write retries after [`STORE_RETRY`];
//! - on shutdown, evaluations in flight get up to `drain` to finish.
//!
//! The schedule itself lives in the store (renewal time, failure backoff),
//! so a new process rebuilds it by evaluating every key once.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::renewal::RenewalQueue;

/// How long after a failed store read or write a key is tried again.
pub const STORE_RETRY: Duration = Duration::from_secs(30);

/// How long evaluations in flight may take to finish on shutdown.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(20);

/// How many due keys of groups at their share one dispatch looks past to
/// find another group's key.
const HOLD_BACK_LOOKAHEAD: usize = 256;

/// With nothing queued, how long the scheduler sleeps before looking again.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

/// Why a key should be looked at now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger<K> {
    /// What is wanted changed (or appeared, or a user asked): evaluate now,
    /// ignoring a recorded backoff.
    Force(K),
    /// Something it depends on changed (its Secret, its issuer): evaluate
    /// now, respecting a backoff.
    Touch(K),
    /// It is gone: stop scheduling it.
    Forget(K),
}

/// Where triggers are sent; cheap to clone, one per producer.
#[derive(Debug)]
pub struct Triggers<K>(mpsc::UnboundedSender<Trigger<K>>);

impl<K> Clone for Triggers<K> {
    fn clone(&self) -> Self {
        Triggers(self.0.clone())
    }
}

impl<K> Triggers<K> {
    /// Sends `trigger`; once the scheduler has stopped this does nothing.
    pub fn send(&self, trigger: Trigger<K>) {
        let _ = self.0.send(trigger);
    }
}

/// The scheduler's end of [`triggers`].
#[derive(Debug)]
pub struct TriggerInbox<K>(mpsc::UnboundedReceiver<Trigger<K>>);

/// A trigger channel: the sending half for watches, pollers and the job
/// itself (a CA that was just issued touches the certificates it signs),
/// the receiving half for [`Scheduler::run`].
pub fn triggers<K>() -> (Triggers<K>, TriggerInbox<K>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Triggers(tx), TriggerInbox(rx))
}

/// One evaluation of one key, as its caller defines it.
pub trait Job: Send + Sync + 'static {
    /// What the queue holds: a certificate's identity.
    type Key: Clone + Eq + Hash + Ord + Display + Send + Sync + 'static;
    /// A store failure; logged, and the key retried after [`STORE_RETRY`]
    /// (or what [`Scheduler::store_retry`] set).
    type Error: Display + Send + 'static;

    /// Evaluates `key` once. `forced` asks to ignore a recorded backoff.
    /// Returns when to look at it again, or `None` when the key is gone and
    /// should not be scheduled again.
    /// `slot` is the evaluation's hold on a concurrency slot: release it
    /// once the evaluation only waits for another party.
    fn run(
        &self,
        key: Self::Key,
        forced: bool,
        slot: Slot,
    ) -> impl Future<Output = Result<Option<SystemTime>, Self::Error>> + Send;

    /// The number of queued keys changed (a gauge for metrics).
    fn queue_depth(&self, _depth: usize) {}

    /// `key` was forgotten (a [`Trigger::Forget`]): drop what is kept for it.
    fn forgotten(&self, _key: &Self::Key) {}

    /// Which group `key` belongs to for the per-group share of slots: its
    /// issuer (`None`: no group, never held back).
    fn group(&self, _key: &Self::Key) -> Option<String> {
        None
    }
}

/// An evaluation's hold on one of the scheduler's concurrency slots.
///
/// The slot is held from the start of the evaluation until it finishes or
/// [`Slot::release`] is called, whichever comes first: an evaluation that
/// goes on to wait for another party (ACME validation) releases it, and
/// the scheduler starts another evaluation in its place. The key stays in
/// flight (never evaluated twice at once) until the evaluation finishes.
#[derive(Clone, Debug, Default)]
pub struct Slot(Option<Arc<SlotHold>>);

#[derive(Debug)]
struct SlotHold {
    id: u64,
    released: std::sync::atomic::AtomicBool,
    tx: mpsc::UnboundedSender<u64>,
}

impl Slot {
    /// A slot of no scheduler (a caller evaluating outside one): releasing
    /// it does nothing.
    pub fn detached() -> Self {
        Self(None)
    }

    /// Gives the slot back; only the first call counts.
    pub fn release(&self) {
        if let Some(hold) = &self.0 {
            if !hold
                .released
                .swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                let _ = hold.tx.send(hold.id);
            }
        }
    }
}

/// What to do when an evaluation in flight finishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterRun {
    /// Schedule at the time the evaluation asks for.
    Reschedule,
    /// A trigger came in meanwhile: run again now.
    RunAgain,
    /// The key was forgotten meanwhile: drop it.
    Drop,
}

/// The slots one group may hold while keys of other groups are due:
/// three quarters of `concurrency`, at least one.
pub fn group_share(concurrency: usize) -> usize {
    (concurrency * 3 / 4).max(1)
}

/// Runs a [`Job`] over a queue of keys.
pub struct Scheduler<J: Job> {
    job: Arc<J>,
    concurrency: usize,
    drain: Duration,
    store_retry: Duration,
}

impl<J: Job> Scheduler<J> {
    /// At most `concurrency` evaluations run at once (at least one); one
    /// group holds at most [`group_share`] of them while others wait.
    pub fn new(job: Arc<J>, concurrency: usize) -> Self {
        Self {
            job,
            concurrency: concurrency.max(1),
            drain: DEFAULT_DRAIN,
            store_retry: STORE_RETRY,
        }
    }

    /// How long after a failed store read or write a key is tried again
    /// (default [`STORE_RETRY`]).
    pub fn store_retry(mut self, after: Duration) -> Self {
        self.store_retry = after;
        self
    }

    /// How long evaluations in flight may take to finish on shutdown.
    pub fn drain(mut self, drain: Duration) -> Self {
        self.drain = drain;
        self
    }

    /// Evaluates every key of `initial` now (respecting backoffs), then
    /// serves `inbox` and the due times until `shutdown`, then waits up to
    /// the drain time for evaluations in flight. Returns how many were
    /// still running when it gave up waiting.
    pub async fn run(
        self,
        initial: impl IntoIterator<Item = J::Key>,
        mut inbox: TriggerInbox<J::Key>,
        shutdown: impl Future<Output = ()>,
    ) -> usize {
        let initial = initial.into_iter();
        let mut queue: RenewalQueue<J::Key> = RenewalQueue::with_capacity(initial.size_hint().0);
        let start = SystemTime::now();
        for key in initial {
            queue.schedule(key, start);
        }
        let mut forced: HashSet<J::Key> = HashSet::new();
        let mut in_flight: HashMap<J::Key, AfterRun> = HashMap::new();
        // The evaluations holding a slot, by slot id (with their group): at
        // most `concurrency`.
        let mut holding: HashMap<u64, Option<String>> = HashMap::new();
        // Slots held per group.
        let mut group_load: HashMap<String, usize> = HashMap::new();
        let share = group_share(self.concurrency);
        let mut next_slot = 0u64;
        let (released_tx, mut released_rx) = mpsc::unbounded_channel::<u64>();
        type Done<J> = (
            <J as Job>::Key,
            u64,
            Result<Option<SystemTime>, <J as Job>::Error>,
        );
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done<J>>();
        let free_slot = |holding: &mut HashMap<u64, Option<String>>,
                         group_load: &mut HashMap<String, usize>,
                         id: u64| {
            if let Some(Some(group)) = holding.remove(&id) {
                if let Some(load) = group_load.get_mut(&group) {
                    *load -= 1;
                    if *load == 0 {
                        group_load.remove(&group);
                    }
                }
            }
        };
        tokio::pin!(shutdown);
        loop {
            let now = SystemTime::now();
            // Due keys of a group at its share wait here while other
            // groups' keys are started; they get the slots left over.
            let mut held_back: Vec<(J::Key, Option<String>)> = Vec::new();
            let mut start =
                |key: J::Key,
                 group: Option<String>,
                 holding: &mut HashMap<u64, Option<String>>,
                 group_load: &mut HashMap<String, usize>,
                 in_flight: &mut HashMap<J::Key, AfterRun>| {
                    let force = forced.remove(&key);
                    in_flight.insert(key.clone(), AfterRun::Reschedule);
                    let id = next_slot;
                    next_slot += 1;
                    if let Some(group) = &group {
                        *group_load.entry(group.clone()).or_default() += 1;
                    }
                    holding.insert(id, group);
                    let slot = Slot(Some(Arc::new(SlotHold {
                        id,
                        released: Default::default(),
                        tx: released_tx.clone(),
                    })));
                    let job = self.job.clone();
                    let done = done_tx.clone();
                    tokio::spawn(async move {
                        let result = job.run(key.clone(), force, slot).await;
                        let _ = done.send((key, id, result));
                    });
                };
            while holding.len() < self.concurrency {
                let Some(key) = queue.pop_due(now) else { break };
                if let Some(after) = in_flight.get_mut(&key) {
                    *after = AfterRun::RunAgain;
                    continue;
                }
                let group = self.job.group(&key);
                let at_share = group
                    .as_ref()
                    .is_some_and(|g| group_load.get(g).copied().unwrap_or(0) >= share);
                if at_share {
                    held_back.push((key, group));
                    // Look this far past one group's burst, no further:
                    // each wake-up costs at most this many queue moves.
                    if held_back.len() >= HOLD_BACK_LOOKAHEAD {
                        break;
                    }
                    continue;
                }
                start(key, group, &mut holding, &mut group_load, &mut in_flight);
            }
            // Nobody else wanted the slots left: work is conserved.
            for (key, group) in held_back {
                if holding.len() < self.concurrency {
                    start(key, group, &mut holding, &mut group_load, &mut in_flight);
                } else {
                    queue.schedule(key, now);
                }
            }
            self.job.queue_depth(queue.len());
            let until_due = queue
                .next_due()
                .map(|due| due.duration_since(SystemTime::now()).unwrap_or_default())
                .unwrap_or(IDLE_WAKE);
            tokio::select! {
                _ = &mut shutdown => break,
                Some(trigger) = inbox.0.recv() => match trigger {
                    Trigger::Force(key) => {
                        forced.insert(key.clone());
                        queue.schedule(key, SystemTime::now());
                    }
                    Trigger::Touch(key) => queue.schedule(key, SystemTime::now()),
                    Trigger::Forget(key) => {
                        queue.remove(&key);
                        forced.remove(&key);
                        if let Some(after) = in_flight.get_mut(&key) {
                            *after = AfterRun::Drop;
                        }
                        self.job.forgotten(&key);
                    }
                },
                Some(id) = released_rx.recv() => {
                    free_slot(&mut holding, &mut group_load, id);
                }
                Some((key, id, result)) = done_rx.recv() => {
                    free_slot(&mut holding, &mut group_load, id);
                    let after = in_flight.remove(&key).unwrap_or(AfterRun::Reschedule);
                    let next = match result {
                        Ok(next) => next,
                        Err(e) => {
                            tracing::error!(certificate = %key, error = %e, retry_in_seconds = self.store_retry.as_secs(), "cannot read or write the store; retrying");
                            Some(SystemTime::now() + self.store_retry)
                        }
                    };
                    match (after, next) {
                        (AfterRun::Drop, _) | (_, None) => {}
                        (AfterRun::RunAgain, Some(_)) => queue.schedule(key, SystemTime::now()),
                        (AfterRun::Reschedule, Some(next)) => {
                            // A trigger may have queued it meanwhile; keep that.
                            if queue.due(&key).is_none() {
                                queue.schedule(key, next);
                            }
                        }
                    }
                }
                _ = tokio::time::sleep(until_due) => {}
            }
        }
        tracing::info!(in_flight = in_flight.len(), "scheduler stopping");
        let deadline = tokio::time::Instant::now() + self.drain;
        while !in_flight.is_empty() {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some((key, _, _))) => {
                    in_flight.remove(&key);
                }
                _ => break,
            }
        }
        in_flight.len()
    }
}

#[cfg(test)]
mod tests;
