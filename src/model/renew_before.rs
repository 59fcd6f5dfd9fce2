//! When to renew, as a Certificate says it: part of what a caller asks the
//! engine for, so it lives with the request.

use std::time::{Duration, SystemTime};

/// When to renew, as a Certificate says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RenewBefore {
    /// cert-manager's default: a third of the lifetime actually issued.
    #[default]
    Default,
    Fixed(Duration),
    /// Renew when this percentage of the lifetime remains.
    Percentage(u8),
}

impl RenewBefore {
    /// How long before expiry to renew a certificate that lives `lifetime`.
    /// Never more than the lifetime itself.
    pub fn before_expiry(self, lifetime: Duration) -> Duration {
        match self {
            RenewBefore::Default => lifetime / 3,
            RenewBefore::Fixed(d) => d.min(lifetime),
            RenewBefore::Percentage(p) => lifetime * u32::from(p.min(100)) / 100,
        }
    }

    /// The renewal time of a certificate valid from `not_before` to `not_after`.
    /// Whole seconds, rounded down: statuses store seconds (Kubernetes
    /// `metav1.Time`), and a time that survives a round trip unchanged keeps
    /// a reconcile from rewriting an unchanged status.
    pub fn renewal_time(self, not_before: SystemTime, not_after: SystemTime) -> SystemTime {
        let lifetime = not_after.duration_since(not_before).unwrap_or_default();
        let exact = not_after - self.before_expiry(lifetime);
        let since_epoch = exact
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        std::time::UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs())
    }
}
