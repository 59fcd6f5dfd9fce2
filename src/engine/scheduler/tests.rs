//! The scheduler's rules, in process: a test job records each evaluation
//! and can hold one open until the test releases it, so "in flight" is a
//! state the test controls rather than a race it hopes to win.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{oneshot, Semaphore};

use super::*;

/// One evaluation: which key, whether forced, and when it started.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Run {
    key: &'static str,
    forced: bool,
}

#[derive(Default)]
struct TestJob {
    runs: Mutex<Vec<Run>>,
    /// Keys whose evaluation waits for a permit.
    gated: Mutex<HashMap<&'static str, Arc<Semaphore>>>,
    /// When each key asks to be looked at again after its next evaluation
    /// (used once; afterwards and by default: in an hour).
    next: Mutex<HashMap<&'static str, Duration>>,
    /// Keys whose evaluation fails with a store error, once each.
    store_errors: Mutex<Vec<&'static str>>,
    /// Keys the job says are gone.
    gone: Mutex<Vec<&'static str>>,
    forgotten: Mutex<Vec<&'static str>>,
    running: std::sync::atomic::AtomicUsize,
    most_running: std::sync::atomic::AtomicUsize,
    /// Keys whose evaluation releases its slot first (it then waits for
    /// another party: its gate).
    waiting: Mutex<Vec<&'static str>>,
    /// The group of each key (its issuer); none by default.
    groups: Mutex<HashMap<&'static str, &'static str>>,
}

impl TestJob {
    fn gate(&self, key: &'static str) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        self.gated.lock().unwrap().insert(key, gate.clone());
        gate
    }

    fn runs(&self) -> Vec<Run> {
        self.runs.lock().unwrap().clone()
    }

    fn keys_run(&self) -> Vec<&'static str> {
        self.runs().iter().map(|r| r.key).collect()
    }
}

impl Job for TestJob {
    type Key = &'static str;
    type Error = String;

    async fn run(
        &self,
        key: &'static str,
        forced: bool,
        slot: Slot,
    ) -> Result<Option<SystemTime>, String> {
        use std::sync::atomic::Ordering::SeqCst;
        let running = self.running.fetch_add(1, SeqCst) + 1;
        self.most_running.fetch_max(running, SeqCst);
        self.runs.lock().unwrap().push(Run { key, forced });
        if self.waiting.lock().unwrap().contains(&key) {
            // Waits for another party from here on.
            slot.release();
        }
        let gate = self.gated.lock().unwrap().get(key).cloned();
        if let Some(gate) = gate {
            gate.acquire().await.unwrap().forget();
        }
        self.running.fetch_sub(1, SeqCst);
        let mut errors = self.store_errors.lock().unwrap();
        if let Some(at) = errors.iter().position(|k| *k == key) {
            errors.remove(at);
            return Err(format!("store down for {key}"));
        }
        if self.gone.lock().unwrap().contains(&key) {
            return Ok(None);
        }
        let after = self
            .next
            .lock()
            .unwrap()
            .remove(key)
            .unwrap_or(Duration::from_secs(3600));
        Ok(Some(SystemTime::now() + after))
    }

    fn forgotten(&self, key: &&'static str) {
        self.forgotten.lock().unwrap().push(key);
    }

    fn group(&self, key: &&'static str) -> Option<String> {
        self.groups.lock().unwrap().get(key).map(|g| g.to_string())
    }
}

/// A running scheduler with its trigger sender and a way to stop it.
struct Running {
    job: Arc<TestJob>,
    triggers: Triggers<&'static str>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<usize>,
}

fn start(job: TestJob, concurrency: usize, keys: &[&'static str]) -> Running {
    start_with(job, keys, |s| Scheduler::new(s, concurrency))
}

fn start_with(
    job: TestJob,
    keys: &[&'static str],
    build: impl FnOnce(Arc<TestJob>) -> Scheduler<TestJob>,
) -> Running {
    let job = Arc::new(job);
    let (tx, inbox) = triggers();
    let (stop, stopped) = oneshot::channel::<()>();
    let scheduler = build(job.clone());
    let keys = keys.to_vec();
    let task = tokio::spawn(scheduler.run(keys, inbox, async {
        let _ = stopped.await;
    }));
    Running {
        job,
        triggers: tx,
        stop,
        task,
    }
}

/// Waits until `done` holds, failing after 10 s (a hang, not a slow run).
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn keys_run_in_due_order() {
    let job = TestJob::default();
    job.next.lock().unwrap().extend([
        ("late", Duration::from_millis(300)),
        ("early", Duration::from_millis(60)),
        ("middle", Duration::from_millis(180)),
    ]);
    let running = start(job, 1, &["late", "early", "middle"]);
    until("each key ran twice", || running.job.runs().len() == 6).await;
    let second_round = running.job.keys_run()[3..].to_vec();
    assert_eq!(second_round, ["early", "middle", "late"]);
    let _ = running.stop.send(());
    assert_eq!(running.task.await.unwrap(), 0);
}

#[tokio::test]
async fn no_more_than_concurrency_evaluations_run_at_once() {
    let job = TestJob::default();
    let gates: Vec<_> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .map(|k| job.gate(k))
        .collect();
    let running = start(job, 2, &["a", "b", "c", "d", "e"]);
    until("two evaluations started", || running.job.runs().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(running.job.runs().len(), 2, "a third started early");
    for gate in &gates {
        gate.add_permits(1);
    }
    until("all five ran", || running.job.runs().len() == 5).await;
    let most = running
        .job
        .most_running
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, 2);
    let _ = running.stop.send(());
    running.task.await.unwrap();
}

/// Evaluations that wait for another party give their slot back: with one
/// slot and five such waits in flight, a sixth key still runs at once; the
/// waiting keys stay in flight (a trigger for one runs it again after, not
/// beside, the first evaluation).
#[tokio::test]
async fn waits_for_another_party_do_not_hold_a_slot() {
    let job = TestJob::default();
    let waiting = ["w1", "w2", "w3", "w4", "w5"];
    job.waiting.lock().unwrap().extend(waiting);
    let gates: Vec<_> = waiting.iter().map(|k| job.gate(k)).collect();
    let local = job.gate("local");
    let mut keys = waiting.to_vec();
    keys.push("local");
    let running = start(job, 1, &keys);
    until("the local issuance started beside five waits", || {
        running.job.keys_run().contains(&"local")
    })
    .await;
    local.add_permits(1);
    running.triggers.send(Trigger::Touch("w1"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let w1_runs = running
        .job
        .keys_run()
        .iter()
        .filter(|k| **k == "w1")
        .count();
    assert_eq!(w1_runs, 1, "w1 ran twice at once");
    for gate in &gates {
        gate.add_permits(2);
    }
    until("w1 ran again after its wait", || {
        running
            .job
            .keys_run()
            .iter()
            .filter(|k| **k == "w1")
            .count()
            == 2
    })
    .await;
    let _ = running.stop.send(());
    assert_eq!(running.task.await.unwrap(), 0);
}

#[tokio::test]
async fn a_trigger_during_an_evaluation_runs_it_again_once_and_forced() {
    let job = TestJob::default();
    let gate = job.gate("web");
    let running = start(job, 4, &["web"]);
    until("the first evaluation started", || {
        running.job.runs().len() == 1
    })
    .await;
    running.triggers.send(Trigger::Touch("web"));
    running.triggers.send(Trigger::Force("web"));
    running.triggers.send(Trigger::Touch("web"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(running.job.runs().len(), 1, "ran twice at once");
    gate.add_permits(2);
    until("it ran again", || running.job.runs().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        running.job.runs(),
        [
            Run {
                key: "web",
                forced: false
            },
            Run {
                key: "web",
                forced: true
            }
        ],
        "three triggers in flight make one forced rerun"
    );
    let _ = running.stop.send(());
    running.task.await.unwrap();
}

#[tokio::test]
async fn a_backoff_holds_until_due_unless_forced() {
    let job = TestJob::default();
    // The job reports a long backoff after every evaluation.
    job.next
        .lock()
        .unwrap()
        .insert("web", Duration::from_secs(3600));
    let running = start(job, 1, &["web"]);
    until("the first evaluation", || running.job.runs().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running.job.runs().len(), 1, "ran before it was due");
    running.triggers.send(Trigger::Touch("web"));
    until("the touched evaluation", || running.job.runs().len() == 2).await;
    running.triggers.send(Trigger::Force("web"));
    until("the forced evaluation", || running.job.runs().len() == 3).await;
    let forced: Vec<bool> = running.job.runs().iter().map(|r| r.forced).collect();
    assert_eq!(forced, [false, false, true]);
    let _ = running.stop.send(());
    running.task.await.unwrap();
}

#[tokio::test]
async fn a_store_error_retries_after_the_store_retry() {
    let job = TestJob::default();
    job.store_errors.lock().unwrap().push("web");
    let running = start_with(job, &["web"], |job| {
        Scheduler::new(job, 1).store_retry(Duration::from_millis(50))
    });
    until("the retry after the store error", || {
        running.job.runs().len() == 2
    })
    .await;
    let _ = running.stop.send(());
    running.task.await.unwrap();
}

#[tokio::test]
async fn a_key_forgotten_in_flight_is_not_scheduled_again() {
    let job = TestJob::default();
    let gate = job.gate("web");
    job.next
        .lock()
        .unwrap()
        .insert("web", Duration::from_millis(20));
    let running = start(job, 1, &["web"]);
    until("the evaluation started", || running.job.runs().len() == 1).await;
    running.triggers.send(Trigger::Forget("web"));
    until("the job heard of it", || {
        running.job.forgotten.lock().unwrap().len() == 1
    })
    .await;
    gate.add_permits(10);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(running.job.runs().len(), 1, "a forgotten key ran again");
    let _ = running.stop.send(());
    running.task.await.unwrap();
}

#[tokio::test]
async fn a_key_the_job_says_is_gone_is_dropped() {
    let job = TestJob::default();
    job.gone.lock().unwrap().push("web");
    job.next
        .lock()
        .unwrap()
        .insert("web", Duration::from_millis(10));
    let running = start(job, 1, &["web"]);
    until("the evaluation", || running.job.runs().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running.job.runs().len(), 1);
    let _ = running.stop.send(());
    running.task.await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_what_finishes_in_time_and_reports_the_rest() {
    let job = TestJob::default();
    let quick = job.gate("quick");
    let _stuck = job.gate("stuck");
    let running = start_with(job, &["quick", "stuck"], |job| {
        Scheduler::new(job, 2).drain(Duration::from_millis(300))
    });
    until("both started", || running.job.runs().len() == 2).await;
    let _ = running.stop.send(());
    tokio::time::sleep(Duration::from_millis(50)).await;
    quick.add_permits(1);
    let started = tokio::time::Instant::now();
    let left = running.task.await.unwrap();
    assert_eq!(
        left, 1,
        "the stuck evaluation is reported, the quick one drained"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// One issuer's burst leaves a slot for another issuer's key: with four
/// slots, the six keys of group "ca" due first take three (their share),
/// and the "acme" key due after them gets the fourth.
#[tokio::test]
async fn one_group_leaves_a_slot_for_another_while_it_waits() {
    assert_eq!(group_share(4), 3);
    let job = TestJob::default();
    let burst = ["ca1", "ca2", "ca3", "ca4", "ca5", "ca6"];
    let gates: Vec<_> = burst.iter().map(|k| job.gate(k)).collect();
    let other = job.gate("other");
    job.groups
        .lock()
        .unwrap()
        .extend(burst.iter().map(|k| (*k, "ca")).chain([("other", "acme")]));
    let mut keys = burst.to_vec();
    keys.push("other");
    let running = start(job, 4, &keys);
    until("four evaluations started", || running.job.runs().len() == 4).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = running.job.keys_run();
    assert_eq!(
        started,
        ["ca1", "ca2", "ca3", "other"],
        "ca4 waits for its share"
    );
    for gate in gates.iter().chain([&other]) {
        gate.add_permits(1);
    }
    until("all seven ran", || running.job.runs().len() == 7).await;
    let _ = running.stop.send(());
    running.task.await.unwrap();
}

/// With no other group waiting, one group uses every slot.
#[tokio::test]
async fn one_group_alone_uses_every_slot() {
    let job = TestJob::default();
    let burst = ["ca1", "ca2", "ca3", "ca4", "ca5", "ca6"];
    let gates: Vec<_> = burst.iter().map(|k| job.gate(k)).collect();
    job.groups
        .lock()
        .unwrap()
        .extend(burst.iter().map(|k| (*k, "ca")));
    let running = start(job, 4, &burst);
    until("four evaluations started", || running.job.runs().len() == 4).await;
    for gate in &gates {
        gate.add_permits(1);
    }
    until("all six ran", || running.job.runs().len() == 6).await;
    let most = running
        .job
        .most_running
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(most, 4);
    let _ = running.stop.send(());
    running.task.await.unwrap();
}
