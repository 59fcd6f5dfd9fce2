//! When to renew, and how long to wait after a failure.
//!
//! The numbers follow cert-manager where users rely on them (renew a third
//! of the lifetime before expiry; failed issuance backs off from one hour,
//! doubling to 32 hours), and are shorter where cert-manager's are a
//! workaround for its architecture (transient network errors retry within
//! seconds, since nothing is gained by waiting an hour for a TCP reset).

use std::time::{Duration, SystemTime};

pub use crate::model::RenewBefore;

/// How a failure should be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Network trouble, server errors: retry within seconds to minutes.
    Transient,
    /// The server's rate limit, with its `Retry-After` when given.
    RateLimited(Option<Duration>),
    /// Rejections and misconfiguration: retrying soon cannot help.
    Permanent,
}

/// `2026-12-05T10:00:00Z`: a time as logs, status tables and reports
/// show it (whole seconds, UTC).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `89d 3h`, `5h`, `12m`: a span as a person says it, to the hour (to the
/// minute below an hour).
pub fn short_span(d: Duration) -> String {
    let hours = d.as_secs() / 3600;
    match (hours / 24, hours % 24) {
        (0, 0) => format!("{}m", d.as_secs() / 60),
        (0, h) => format!("{h}h"),
        (days, h) => format!("{days}d {h}h"),
    }
}

/// First retry after a transient failure.
pub const TRANSIENT_BASE: Duration = Duration::from_secs(5);
/// Longest wait after transient failures.
pub const TRANSIENT_MAX: Duration = Duration::from_secs(5 * 60);
/// First retry after a permanent failure (cert-manager's 1h).
pub const PERMANENT_BASE: Duration = Duration::from_secs(3600);
/// Longest wait after permanent failures (cert-manager's 32h).
pub const PERMANENT_MAX: Duration = Duration::from_secs(32 * 3600);
/// Wait after a rate limit without `Retry-After`.
pub const RATE_LIMIT_DEFAULT: Duration = Duration::from_secs(3600);

/// The delay before the next attempt, after `failed_attempts` consecutive
/// failures (1 for the first failure).
pub fn backoff(class: FailureClass, failed_attempts: u32) -> Duration {
    let doubling = |base: Duration, max: Duration| {
        let exponent = failed_attempts.saturating_sub(1).min(20);
        base.saturating_mul(1u32 << exponent).min(max)
    };
    match class {
        FailureClass::Transient => doubling(TRANSIENT_BASE, TRANSIENT_MAX),
        FailureClass::RateLimited(Some(after)) => after.max(Duration::from_secs(1)),
        FailureClass::RateLimited(None) => RATE_LIMIT_DEFAULT,
        FailureClass::Permanent => doubling(PERMANENT_BASE, PERMANENT_MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn renewal_is_a_third_before_expiry_by_default() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(90 * 86400);
        assert_eq!(
            RenewBefore::Default.renewal_time(start, end),
            start + Duration::from_secs(60 * 86400)
        );
        assert_eq!(
            RenewBefore::Fixed(Duration::from_secs(90))
                .renewal_time(start, start + Duration::from_secs(120)),
            start + Duration::from_secs(30)
        );
        assert_eq!(
            RenewBefore::Percentage(25).before_expiry(Duration::from_secs(400)),
            Duration::from_secs(100)
        );
        assert_eq!(
            RenewBefore::Fixed(Duration::from_secs(999)).before_expiry(Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn backoff_schedules() {
        assert_eq!(backoff(FailureClass::Transient, 1), Duration::from_secs(5));
        assert_eq!(backoff(FailureClass::Transient, 3), Duration::from_secs(20));
        assert_eq!(backoff(FailureClass::Transient, 50), TRANSIENT_MAX);
        assert_eq!(
            backoff(FailureClass::Permanent, 1),
            Duration::from_secs(3600)
        );
        assert_eq!(
            backoff(FailureClass::Permanent, 6),
            Duration::from_secs(32 * 3600)
        );
        assert_eq!(backoff(FailureClass::Permanent, 60), PERMANENT_MAX);
        assert_eq!(
            backoff(FailureClass::RateLimited(Some(Duration::from_secs(90))), 4),
            Duration::from_secs(90)
        );
        assert_eq!(
            backoff(FailureClass::RateLimited(None), 1),
            RATE_LIMIT_DEFAULT
        );
    }
}
