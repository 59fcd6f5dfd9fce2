//! Private key generation for issuances, off the async workers and bounded.
//!
//! An RSA key takes tens of milliseconds of one core, an RSA-4096 key
//! hundreds. Generated on an async worker it would stall the webhook and
//! the watches that share the runtime; generated on tokio's blocking pool
//! without a bound, a burst of a thousand new Certificates would start as
//! many threads fighting over the same cores, each key then taking longer
//! and memory growing with every thread. So keys are generated on the
//! blocking pool, at most one per core at a time, and the permits are
//! handed out in the order they were asked for (tokio's semaphore is fair),
//! which the scheduler makes the order of due times.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use crate::model::{IssueError, KeyAlgorithm, PrivateKey};

/// The permits: one per core the process may use.
fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(bound()))
}

/// How many keys are generated at once: the cores the process may use.
pub fn bound() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Generates a key of `algorithm` on the blocking pool, waiting for a
/// permit first.
pub async fn generate(algorithm: KeyAlgorithm) -> Result<PrivateKey, IssueError> {
    bounded(permits(), move || PrivateKey::generate(algorithm))
        .await?
        .map_err(IssueError::from)
}

/// Runs `work` on the blocking pool once `permits` grants it a turn.
async fn bounded<T: Send + 'static>(
    permits: &Semaphore,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, IssueError> {
    let _permit = permits
        .acquire()
        .await
        .map_err(|e| IssueError::transient_because("key generation is shutting down", e))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| IssueError::transient_because("key generation task failed", e))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// A burst of eight on two permits: never more than two at once, all
    /// eight done, in the order they asked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_runs_within_the_bound_in_order() {
        let permits = Arc::new(Semaphore::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..8 {
            let (permits, running, most, order) = (
                permits.clone(),
                running.clone(),
                most.clone(),
                order.clone(),
            );
            handles.push(tokio::spawn(async move {
                bounded(&permits, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    order.lock().unwrap().push(i);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .unwrap();
            }));
            // Asked one after the other.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for handle in handles {
            handle.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), 8);
        // Fair: the first two asked are the first two to run.
        let mut first_two = order[..2].to_vec();
        first_two.sort();
        assert_eq!(first_two, [0, 1], "{order:?}");
    }

    #[tokio::test]
    async fn keys_come_back_of_the_algorithm_asked_for() {
        let key = generate(KeyAlgorithm::EcdsaP256).await.unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
    }
}
