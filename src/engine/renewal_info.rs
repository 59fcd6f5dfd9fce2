//! ACME renewal information (RFC 9773) in the engine: when the issuer
//! suggests renewing the stored certificate, the point picked in that
//! window, and when to ask again. [`super::reconcile`] calls it for every
//! valid certificate and records the answer in the state.

use std::time::{Duration, SystemTime};

use super::reconcile::Managed;
use crate::model::Issuer;
use crate::store::AriState;

/// The issuer's renewal information about the stored certificate: the
/// recorded answer while it holds (same certificate, before its
/// `check_again`), else asked anew. A renewal time is picked uniformly at
/// random in the window, as RFC 9773 §4.2 asks, and kept while the window
/// stays the same, so restarts and re-checks do not move it. A failed
/// question keeps what was known and asks again in an hour.
pub(crate) async fn renewal_information<I: Issuer>(
    issuer: &I,
    managed: &Managed,
    chain_pem: &str,
    serial: &str,
    recorded: Option<&AriState>,
    now: SystemTime,
) -> Option<AriState> {
    let recorded = recorded.filter(|a| a.serial == serial);
    if let Some(known) = recorded.filter(|a| a.check_again.is_some_and(|t| now < t)) {
        return Some(known.clone());
    }
    match issuer.renewal_window(chain_pem).await {
        Ok(Some(window)) => {
            let same_window = recorded.filter(|a| {
                a.window_start == Some(window.start) && a.window_end == Some(window.end)
            });
            let renewal_time = same_window
                .and_then(|a| a.renewal_time)
                .unwrap_or_else(|| random_point(window.start, window.end));
            if same_window.is_none() {
                tracing::info!(certificate = %managed.certificate, renewal_time = %super::timing::rfc3339(renewal_time), "renewal scheduled inside the ACME server's suggested window");
            }
            Some(AriState {
                serial: serial.to_owned(),
                window_start: Some(window.start),
                window_end: Some(window.end),
                renewal_time: Some(renewal_time),
                check_again: Some(window.check_again),
                explanation_url: window.explanation_url,
            })
        }
        Ok(None) => None,
        Err(error) => {
            tracing::warn!(certificate = %managed.certificate, %error, "cannot read the ACME server's renewal information; asking again in an hour");
            // With nothing known, the record holds only when to ask again:
            // the certificate's own rule decides meanwhile.
            let known = recorded.cloned().unwrap_or_else(|| AriState {
                serial: serial.to_owned(),
                ..Default::default()
            });
            Some(AriState {
                check_again: Some(now + Duration::from_secs(3600)),
                ..known
            })
        }
    }
}

/// A uniformly random time in `[start, end]` (`start` when the window is
/// empty or reversed).
fn random_point(start: SystemTime, end: SystemTime) -> SystemTime {
    let Ok(width) = end.duration_since(start) else {
        return start;
    };
    let millis = u64::try_from(width.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return start;
    }
    let offset = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (millis + 1);
    start + Duration::from_millis(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_random_point_stays_inside_its_window() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(2 * 86_400);
        let points: Vec<SystemTime> = (0..1000).map(|_| random_point(start, end)).collect();
        assert!(points.iter().all(|p| start <= *p && *p <= end));
        // Spread over the window, not stuck at one end.
        let middle = start + Duration::from_secs(86_400);
        let early = points.iter().filter(|p| **p < middle).count();
        assert!(
            (300..700).contains(&early),
            "{early} of 1000 in the first half"
        );
        // An empty or reversed window is its start.
        assert_eq!(random_point(start, start), start);
        assert_eq!(random_point(end, start), end);
    }
}
