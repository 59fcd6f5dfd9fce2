//! The progress line `certweave local` shows in a terminal while it works
//! through a large initial set, so a person watching knows it is moving
//! and how far it is ("issuing 120/1000 certificates").
//!
//! Only for people: nothing is printed when stderr is not a terminal (log
//! pipelines get the summary line alone), for small sets, or more often
//! than a few times a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Sets smaller than this finish before a progress line would help.
const MIN_SET: usize = 20;

/// Shortest time between two progress lines.
const EVERY: Duration = Duration::from_millis(250);

/// A throttled "N/M" line on stderr.
pub(super) struct Progress {
    total: usize,
    shown: bool,
    last: Option<Instant>,
    terminal: bool,
}

impl Progress {
    /// Progress through `total` certificates; silent unless stderr is a
    /// terminal.
    pub(super) fn new(total: usize) -> Self {
        Self::with_terminal(total, std::io::stderr().is_terminal())
    }

    fn with_terminal(total: usize, terminal: bool) -> Self {
        Self {
            total,
            shown: false,
            last: None,
            terminal: terminal && total >= MIN_SET,
        }
    }

    /// The line for `left` certificates still to settle, when it is time to
    /// show one.
    fn line(&mut self, left: usize, now: Instant) -> Option<String> {
        if !self.terminal || self.last.is_some_and(|at| now - at < EVERY) {
            return None;
        }
        self.last = Some(now);
        self.shown = true;
        let done = self.total.saturating_sub(left);
        Some(format!(
            "\r\x1b[Kcertweave local: {done}/{} certificates settled",
            self.total
        ))
    }

    /// Shows how far the first pass is, at most every [`EVERY`].
    pub(super) fn update(&mut self, left: usize) {
        if let Some(line) = self.line(left, Instant::now()) {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(line.as_bytes());
            let _ = err.flush();
        }
    }

    /// Clears the line once the pass is done (the summary follows).
    pub(super) fn finish(&mut self) {
        if self.shown {
            let _ = std::io::stderr().write_all(b"\r\x1b[K");
            self.shown = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_sees_a_throttled_count_and_a_pipe_sees_nothing() {
        let start = Instant::now();
        let mut progress = Progress::with_terminal(100, true);
        let first = progress.line(99, start).unwrap();
        assert!(first.ends_with("1/100 certificates settled"), "{first}");
        assert_eq!(progress.line(98, start + Duration::from_millis(10)), None);
        let later = progress.line(40, start + EVERY).unwrap();
        assert!(later.ends_with("60/100 certificates settled"), "{later}");

        let mut piped = Progress::with_terminal(100, false);
        assert_eq!(piped.line(50, start), None);
        let mut small = Progress::with_terminal(MIN_SET - 1, true);
        assert_eq!(small.line(1, start), None);
    }
}
