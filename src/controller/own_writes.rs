//! The Secrets this controller is writing or wrote, by the resourceVersion
//! each write produced.
//!
//! A change to a Secret certweave manages sends its Certificate back to
//! the queue, so that a Secret edited or emptied by someone else is
//! repaired. The change certweave just made itself comes back through the
//! same watch; evaluating the Certificate again for it reads the Secret,
//! the Certificate and the issuer's Secret from the API server for
//! nothing, and rewrites the status. On a burst of issuances that echo
//! was a third of the API server's reads. A watch event whose
//! resourceVersion is the one a write of ours returned (or that arrives
//! while the write is in flight) is that echo; any other version is
//! someone else's change and still counts, and so does every deletion.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::ObjectKey;

/// Where a write of one Secret stands.
#[derive(Debug)]
enum Write {
    /// Sent, not yet answered. The watch may show the result before the
    /// answer arrives: what it shows meanwhile is this write's echo, or a
    /// change the write (a forced server-side apply of certweave's fields)
    /// supersedes; either way it needs no second look. The last version
    /// seen is kept to recognise the echo once the answer comes.
    InFlight { seen: Option<String> },
    /// Answered with this resourceVersion; its echo is still to come.
    Done(String),
}

/// The writes of each Secret, from the request to their watch event.
///
/// An entry lives from a write to the watch event that shows it, so there
/// is at most one per Secret certweave manages. A write that fails takes
/// its entry with it ([`WriteGuard`]).
#[derive(Debug, Default)]
pub struct OwnWrites {
    writes: Mutex<HashMap<ObjectKey, Write>>,
}

impl OwnWrites {
    fn writes(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Write>> {
        self.writes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes that a write of `secret` is about to be sent; the guard
    /// records its answer, or forgets the write when dropped unanswered
    /// (the request failed).
    pub fn begin(&self, secret: ObjectKey) -> WriteGuard<'_> {
        self.writes()
            .insert(secret.clone(), Write::InFlight { seen: None });
        WriteGuard {
            writes: self,
            secret: Some(secret),
        }
    }

    /// Whether a watch event showing `secret` at `resource_version` is the
    /// echo of certweave's own write (or arrives while one is in flight).
    /// A finished write is forgotten either way: a later event is news.
    pub fn is_echo(&self, secret: &ObjectKey, resource_version: Option<&str>) -> bool {
        let mut writes = self.writes();
        match writes.get_mut(secret) {
            Some(Write::InFlight { seen }) => {
                *seen = resource_version.map(str::to_owned);
                true
            }
            Some(Write::Done(ours)) => {
                let echo = resource_version == Some(ours.as_str());
                writes.remove(secret);
                echo
            }
            None => false,
        }
    }

    /// Whether no write waits for its answer or echo.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.writes().is_empty()
    }
}

/// A write in flight; see [`OwnWrites::begin`].
#[must_use = "a write not answered is forgotten when its guard drops"]
pub struct WriteGuard<'a> {
    writes: &'a OwnWrites,
    secret: Option<ObjectKey>,
}

impl WriteGuard<'_> {
    /// The write was answered with `resource_version`.
    pub fn done(mut self, resource_version: Option<String>) {
        let Some(secret) = self.secret.take() else {
            return;
        };
        let mut writes = self.writes.writes();
        let echoed = matches!(
            writes.get(&secret),
            Some(Write::InFlight { seen: Some(seen) }) if Some(seen) == resource_version.as_ref()
        );
        match resource_version {
            Some(version) if !echoed => {
                writes.insert(secret, Write::Done(version));
            }
            _ => {
                writes.remove(&secret);
            }
        }
    }
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if let Some(secret) = self.secret.take() {
            self.writes.writes().remove(&secret);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("default", name)
    }

    #[test]
    fn only_the_version_written_is_an_echo_and_only_once() {
        let writes = OwnWrites::default();
        writes.begin(key("web-tls")).done(Some("41".into()));
        assert!(writes.is_echo(&key("web-tls"), Some("41")));
        // Seen: the next event of that Secret is someone else's.
        assert!(!writes.is_echo(&key("web-tls"), Some("41")));
        assert!(writes.is_empty());
    }

    #[test]
    fn another_version_or_secret_is_a_change() {
        let writes = OwnWrites::default();
        writes.begin(key("web-tls")).done(Some("41".into()));
        assert!(!writes.is_echo(&key("api-tls"), Some("41")));
        assert!(!writes.is_echo(&key("web-tls"), Some("42")));
        // The write was forgotten with the event that superseded it.
        assert!(writes.is_empty());
    }

    #[test]
    fn an_echo_that_beats_the_answer_is_recognised() {
        let writes = OwnWrites::default();
        let write = writes.begin(key("web-tls"));
        assert!(writes.is_echo(&key("web-tls"), Some("41")));
        write.done(Some("41".into()));
        assert!(writes.is_empty(), "the echo was already seen");
        assert!(!writes.is_echo(&key("web-tls"), Some("42")));
    }

    #[test]
    fn an_event_before_the_answer_of_another_version_leaves_the_echo_to_come() {
        let writes = OwnWrites::default();
        let write = writes.begin(key("web-tls"));
        assert!(writes.is_echo(&key("web-tls"), Some("40")));
        write.done(Some("41".into()));
        assert!(writes.is_echo(&key("web-tls"), Some("41")));
    }

    #[test]
    fn a_failed_write_is_forgotten() {
        let writes = OwnWrites::default();
        drop(writes.begin(key("web-tls")));
        assert!(writes.is_empty());
        assert!(!writes.is_echo(&key("web-tls"), Some("41")));
        writes.begin(key("web-tls")).done(None);
        assert!(writes.is_empty());
    }
}
