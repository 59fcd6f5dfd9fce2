//! ACME failures sorted by what the caller should do about them.
//!
//! instant-acme reports the server's problem documents, transport errors
//! and its own timeouts in one enum; the renewal queue needs to know
//! whether to retry in seconds, after the server's `Retry-After`, or only
//! after a human changed something. The mapping follows the problem types
//! of RFC 8555 §6.7 (and Boulder's additions). Failed challenges are not
//! request errors: the order driver reads them from the authorizations and
//! reports them as [`IssueError::ChallengeFailed`].

use std::time::Duration;

use crate::model::{IssueError, Problem};

const PREFIX: &str = "urn:ietf:params:acme:error:";

/// Converts instant-acme's problem document into certweave's, keeping every
/// subproblem with its identifier.
pub(crate) fn problem(p: &instant_acme::Problem) -> Problem {
    Problem {
        kind: p.r#type.clone().unwrap_or_else(|| "about:blank".into()),
        detail: p.detail.clone().unwrap_or_default(),
        subproblems: p
            .subproblems
            .iter()
            .map(|s| {
                (
                    s.identifier
                        .as_ref()
                        .map(|i| i.authorized(false).to_string())
                        .unwrap_or_default(),
                    s.r#type.clone().unwrap_or_default(),
                    s.detail.clone().unwrap_or_default(),
                )
            })
            .collect(),
    }
}

/// Maps a failed ACME call. `doing` names the step for messages ("opening
/// the order"); `retry_after` is the server's hint from the response, if
/// the transport saw one.
pub(crate) fn classify(
    err: instant_acme::Error,
    doing: &str,
    retry_after: Option<Duration>,
) -> IssueError {
    match err {
        instant_acme::Error::Api(p) => classify_problem(&p, doing, retry_after),
        instant_acme::Error::Other(source) => {
            if let Some(reason) = untrusted_certificate(source.as_ref()) {
                return IssueError::Config(format!(
                    "{doing}: the ACME server's TLS certificate is not trusted ({reason}); \
                     give its CA with caBundle (--acme-ca-bundle)"
                ));
            }
            IssueError::TransientCause {
                context: doing.to_owned(),
                source,
            }
        }
        instant_acme::Error::Timeout(_) => {
            IssueError::Transient(format!("{doing}: the ACME server did not finish in time"))
        }
        instant_acme::Error::Json(e) => IssueError::transient_because(
            format!("{doing}: the ACME server sent an unexpected answer"),
            e,
        ),
        instant_acme::Error::InvalidUri(e) => {
            IssueError::config_because(format!("{doing}: invalid ACME URL"), e)
        }
        instant_acme::Error::Unsupported(what) => {
            IssueError::Config(format!("{doing}: the ACME server does not support {what}"))
        }
        other => IssueError::transient_because(doing, other),
    }
}

fn classify_problem(
    p: &instant_acme::Problem,
    doing: &str,
    retry_after: Option<Duration>,
) -> IssueError {
    let mut problem = problem(p);
    if !problem.detail.is_empty() {
        problem.detail = format!("{doing}: {}", problem.detail);
    } else {
        problem.detail = doing.to_owned();
    }
    let kind = p
        .r#type
        .as_deref()
        .and_then(|t| t.strip_prefix(PREFIX))
        .unwrap_or_default();
    match kind {
        "rateLimited" => IssueError::RateLimited {
            retry_after,
            problem,
        },
        // instant-acme already retried bad nonces; more of them, and the
        // server's own trouble, are worth another try soon.
        "badNonce" | "serverInternal" => IssueError::Transient(problem.to_string()),
        "externalAccountRequired" => IssueError::Config(format!(
            "{problem}; this ACME server needs an external account binding: set \
             externalAccountBinding (--eab-kid and --eab-hmac-key) from your CA account"
        )),
        "accountDoesNotExist" | "badSignatureAlgorithm" | "badPublicKey" => {
            IssueError::Config(problem.to_string())
        }
        _ => match p.status {
            Some(status) if status >= 500 => IssueError::Transient(problem.to_string()),
            _ => IssueError::Rejected(problem),
        },
    }
}

/// The rustls reason when a connection failed because the server's
/// certificate was not trusted. The rustls error sits inside nested
/// `io::Error`s, whose `source()` skips a level, so those are unwrapped
/// with `get_ref()`.
fn untrusted_certificate(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(rustls::Error::InvalidCertificate(reason)) = e.downcast_ref::<rustls::Error>() {
            return Some(format!("{reason:?}"));
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(kind: &str, status: Option<u16>) -> instant_acme::Error {
        let json = serde_json::json!({
            "type": format!("{PREFIX}{kind}"),
            "detail": "details",
            "status": status,
        });
        instant_acme::Error::Api(serde_json::from_value(json).unwrap())
    }

    #[test]
    fn problems_map_to_what_the_queue_does_next() {
        let wait = Some(Duration::from_secs(60));
        assert!(matches!(
            classify(api("rateLimited", Some(429)), "opening the order", wait),
            IssueError::RateLimited { retry_after: Some(d), .. } if d == Duration::from_secs(60)
        ));
        assert!(classify(api("badNonce", Some(400)), "x", None).is_transient());
        assert!(classify(api("serverInternal", Some(500)), "x", None).is_transient());
        assert!(matches!(
            classify(api("rejectedIdentifier", Some(400)), "x", None),
            IssueError::Rejected(_)
        ));
        assert!(matches!(
            classify(api("unauthorized", Some(403)), "x", None),
            IssueError::Rejected(_)
        ));
        let eab = classify(api("externalAccountRequired", Some(400)), "x", None).to_string();
        assert!(eab.contains("--eab-kid"), "{eab}");
    }

    #[test]
    fn subproblems_keep_their_identifiers() {
        let json = serde_json::json!({
            "type": format!("{PREFIX}rejectedIdentifier"),
            "detail": "Some identifiers were rejected",
            "status": 400,
            "subproblems": [{
                "type": format!("{PREFIX}rejectedIdentifier"),
                "detail": "bad name",
                "identifier": {"type": "dns", "value": "x.invalid"}
            }]
        });
        let err = classify(
            instant_acme::Error::Api(serde_json::from_value(json).unwrap()),
            "opening the order",
            None,
        );
        let text = err.to_string();
        assert!(text.contains("opening the order: Some identifiers were rejected"));
        assert!(text.contains("x.invalid: urn:ietf:params:acme:error:rejectedIdentifier: bad name"));
    }
}
