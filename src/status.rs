//! `certweave status certificate`: one screen that answers "why is it (not)
//! Ready?": the Certificate's conditions, its issuer and the issuer's
//! Ready condition, what its Secret holds (through [`crate::inspect`]),
//! renewal, failed attempts and the next retry, the ACME server's renewal
//! window, and the Certificate's last Events.

use std::fmt::Write as _;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::api::certificate::{AcmeOrderStatus, Certificate, CertificateCondition};
use crate::api::issuer::{ClusterIssuer, Issuer, IssuerObject};
use crate::inspect;
use crate::model::OrderProgress;

/// Most Events shown.
const MAX_EVENTS: usize = 5;

/// The report, as `-o json` prints it (field names are stable).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub name: String,
    pub namespace: String,
    pub ready: bool,
    pub conditions: Vec<ConditionLine>,
    pub issuer: IssuerLine,
    pub secret: SecretLine,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_issuance_attempts: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_renewal_window: Option<String>,
    /// The ACME order in flight, or the last one that failed
    /// (`status.acme.order`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_order: Option<AcmeOrderStatus>,
    pub events: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionLine {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuerLine {
    pub kind: String,
    pub name: String,
    /// `Ready=True (reason: message)`, or why it cannot be told.
    pub state: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretLine {
    pub name: String,
    pub exists: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contents: Option<inspect::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

fn condition_line(c: &CertificateCondition) -> ConditionLine {
    ConditionLine {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone().unwrap_or_default(),
        message: c.message.clone().unwrap_or_default(),
        since: c.last_transition_time.as_ref().map(|t| t.0.to_string()),
    }
}

fn issuer_state<K: IssuerObject>(issuer: Option<K>) -> String {
    match issuer {
        None => "does not exist".into(),
        Some(issuer) => match issuer.ready_condition() {
            None => "not checked yet".into(),
            Some(c) => format!(
                "Ready={} ({}: {})",
                c.status,
                c.reason.as_deref().unwrap_or("-"),
                c.message.as_deref().unwrap_or("-")
            ),
        },
    }
}

/// Builds the report for Certificate `namespace/name`. `Err` when it does
/// not exist (with close matches) or cannot be read.
pub async fn status(client: &Client, namespace: &str, name: &str) -> Result<StatusReport, String> {
    let certificates: Api<Certificate> = Api::namespaced(client.clone(), namespace);
    let Some(certificate) = certificates
        .get_opt(name)
        .await
        .map_err(|e| format!("cannot read Certificate {namespace}/{name}: {e}"))?
    else {
        let listed = certificates
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let close = crate::api::names::close_matches(
            name,
            listed
                .iter()
                .map(|c| c.metadata.name.as_deref().unwrap_or_default()),
        );
        let hint = if close.is_empty() {
            format!("`kubectl get certificates -n {namespace}` lists them")
        } else {
            format!("did you mean {}?", close.join(", "))
        };
        return Err(format!(
            "Certificate {namespace}/{name} does not exist; {hint}"
        ));
    };
    let status = certificate.status.clone().unwrap_or_default();
    let conditions: Vec<ConditionLine> = status.conditions.iter().map(condition_line).collect();
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");

    let reference = &certificate.spec.issuer_ref;
    let kind = reference
        .kind
        .clone()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "Issuer".into());
    let issuer_state = match kind.as_str() {
        "ClusterIssuer" => Api::<ClusterIssuer>::all(client.clone())
            .get_opt(&reference.name)
            .await
            .map(issuer_state)
            .unwrap_or_else(|e| format!("cannot be read: {e}")),
        "Issuer" => Api::<Issuer>::namespaced(client.clone(), namespace)
            .get_opt(&reference.name)
            .await
            .map(issuer_state)
            .unwrap_or_else(|e| format!("cannot be read: {e}")),
        other => format!("{other} is not a kind certweave serves"),
    };

    let secret_name = certificate.spec.secret_name.clone();
    let secret = match Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(&secret_name)
        .await
    {
        Err(e) => SecretLine {
            name: secret_name,
            exists: false,
            contents: None,
            problem: Some(format!("cannot be read: {e}")),
        },
        Ok(None) => SecretLine {
            name: secret_name,
            exists: false,
            contents: None,
            problem: None,
        },
        Ok(Some(secret)) => {
            let data = secret.data.unwrap_or_default();
            let text = |key: &str| {
                data.get(key)
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            };
            let material = inspect::Material {
                chain: text("tls.crt")
                    .and_then(|pem| crate::pki::parse_pem_chain(&pem).ok())
                    .unwrap_or_default(),
                key_pem: text("tls.key"),
                ca_pem: text("ca.crt"),
                annotations: Default::default(),
            };
            match inspect::report(&material, SystemTime::now()) {
                Ok(report) => SecretLine {
                    name: secret_name,
                    exists: true,
                    contents: Some(report),
                    problem: None,
                },
                Err(e) => SecretLine {
                    name: secret_name,
                    exists: true,
                    contents: None,
                    problem: Some(e.to_string()),
                },
            }
        }
    };

    let mut events: Vec<(String, String)> = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Certificate") && r.name.as_deref() == Some(name)
            })
        })
        .map(|e| {
            let when = e
                .event_time
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| {
                    e.metadata
                        .creation_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                })
                .unwrap_or_default();
            let line = format!(
                "{when} {} {}: {}",
                e.type_.as_deref().unwrap_or("-"),
                e.reason.as_deref().unwrap_or("-"),
                e.note
                    .as_deref()
                    .unwrap_or("-")
                    .chars()
                    .take(300)
                    .collect::<String>()
            );
            (when, line)
        })
        .collect();
    events.sort();
    let events: Vec<String> = events
        .into_iter()
        .rev()
        .take(MAX_EVENTS)
        .rev()
        .map(|(_, l)| l)
        .collect();

    let acme_renewal_window = status
        .acme
        .as_ref()
        .and_then(|a| a.ari.as_ref())
        .map(|ari| {
            format!(
                "{} … {}, renewal picked at {}",
                ari.suggested_window_start
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                ari.suggested_window_end
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
                ari.selected_renewal_time
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default(),
            )
        });
    Ok(StatusReport {
        name: certificate.name_any(),
        namespace: namespace.to_owned(),
        ready,
        conditions,
        issuer: IssuerLine {
            kind,
            name: reference.name.clone(),
            state: issuer_state,
        },
        secret,
        renewal_time: status.renewal_time.as_ref().map(|t| t.0.to_string()),
        revision: status.revision,
        failed_issuance_attempts: status.failed_issuance_attempts,
        next_attempt_time: status.next_attempt_time.as_ref().map(|t| t.0.to_string()),
        acme_renewal_window,
        acme_order: status.acme.as_ref().and_then(|a| a.order.clone()),
        events,
    })
}

/// The report as text for a terminal.
pub fn render_text(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Certificate {}/{}: {}",
        report.namespace,
        report.name,
        if report.ready { "Ready" } else { "NOT Ready" }
    );
    let _ = writeln!(out, "Conditions:");
    if report.conditions.is_empty() {
        let _ = writeln!(
            out,
            "  none yet: the controller has not looked at it (is it running, and leading?)"
        );
    }
    for c in &report.conditions {
        let since = c
            .since
            .as_deref()
            .map(|s| format!(" since {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}={} ({}){since}: {}",
            c.type_, c.status, c.reason, c.message
        );
    }
    let _ = writeln!(
        out,
        "Issuer: {} {}: {}",
        report.issuer.kind, report.issuer.name, report.issuer.state
    );
    let secret = &report.secret;
    match (&secret.contents, &secret.problem, secret.exists) {
        (_, _, false) if secret.problem.is_none() => {
            let _ = writeln!(out, "Secret {}: does not exist yet", secret.name);
        }
        (_, Some(problem), _) => {
            let _ = writeln!(out, "Secret {}: {problem}", secret.name);
        }
        (Some(contents), None, true) => {
            let _ = writeln!(out, "Secret {}:", secret.name);
            for line in inspect::render_text(contents).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        _ => {}
    }
    if let Some(renewal) = &report.renewal_time {
        let _ = writeln!(out, "Renewal at: {renewal}");
    }
    if let Some(window) = &report.acme_renewal_window {
        let _ = writeln!(out, "ACME renewal window: {window}");
    }
    if let Some(order) = &report.acme_order {
        let _ = writeln!(out, "ACME order ({}): {}", order.state, order.url);
        for a in &order.authorizations {
            let challenge = a.challenge.as_deref().unwrap_or("no challenge needed");
            let error = a
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {} ({challenge}): {}{error}", a.identifier, a.state);
        }
    }
    if let Some(attempts) = report.failed_issuance_attempts {
        let next = report
            .next_attempt_time
            .as_deref()
            .unwrap_or("when something changes");
        let _ = writeln!(
            out,
            "Failed issuance attempts: {attempts}; next attempt: {next}"
        );
    }
    if !report.events.is_empty() {
        let _ = writeln!(out, "Events (latest last):");
        for e in &report.events {
            let _ = writeln!(out, "  {e}");
        }
    }
    out
}

/// One certificate of `certweave local`, from its recorded state.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalRow {
    pub certificate: String,
    pub ready: bool,
    pub not_after: String,
    pub renewal_time: String,
    pub message: String,
    /// Each name whose ACME validation failed in the last order, with the
    /// challenge type and the server's error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_challenges: Vec<String>,
}

/// A recorded time, or `-`.
fn time_or_dash(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "-".into(), crate::engine::timing::rfc3339)
}

/// Every certificate `certweave local` recorded under `dir/state`.
pub fn local_status(dir: &std::path::Path) -> Result<Vec<LocalRow>, String> {
    if !dir.join("state").is_dir() {
        return Err(format!(
            "{} has no state/ folder: certweave local has not run there (or give its --dir)",
            dir.display()
        ));
    }
    let store = crate::store::fs::FsStore::new(dir);
    let mut rows = Vec::new();
    for key in store.certificates_with_state() {
        let row = match store.state_of(&key) {
            Ok(Some(state)) => LocalRow {
                certificate: key.to_string(),
                ready: state.ready,
                not_after: time_or_dash(state.not_after),
                renewal_time: time_or_dash(state.renewal_time),
                failed_challenges: state
                    .order_progress
                    .iter()
                    .flat_map(OrderProgress::failed)
                    .map(|a| {
                        format!(
                            "{} ({}): {}",
                            a.identifier,
                            a.challenge,
                            a.error.as_deref().unwrap_or_default()
                        )
                    })
                    .collect(),
                message: state.message.unwrap_or_default(),
            },
            Ok(None) => continue,
            Err(e) => LocalRow {
                certificate: key.to_string(),
                ready: false,
                not_after: "-".into(),
                renewal_time: "-".into(),
                message: format!("unreadable state: {e}"),
                failed_challenges: Vec::new(),
            },
        };
        rows.push(row);
    }
    Ok(rows)
}

/// The rows as an aligned table.
pub fn render_local(rows: &[LocalRow]) -> String {
    let width = rows
        .iter()
        .map(|r| r.certificate.len())
        .max()
        .unwrap_or(0)
        .max("CERTIFICATE".len());
    let mut out = format!(
        "{:<width$}  {:<5}  {:<20}  {:<20}  MESSAGE\n",
        "CERTIFICATE", "READY", "NOT AFTER", "RENEWAL"
    );
    for r in rows {
        let message: String = r.message.chars().take(120).collect();
        let _ = writeln!(
            out,
            "{:<width$}  {:<5}  {:<20}  {:<20}  {message}",
            r.certificate,
            if r.ready { "True" } else { "False" },
            r.not_after,
            r.renewal_time
        );
        for failed in &r.failed_challenges {
            let _ = writeln!(out, "    {failed}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of `status certificate` is pinned in
    /// `tests/golden/status-certificate.txt` (UPDATE_GOLDEN=1 rewrites it).
    #[test]
    fn the_text_of_a_failing_certificate_is_pinned() {
        let report = StatusReport {
            name: "web".into(),
            namespace: "shop".into(),
            ready: false,
            conditions: vec![
                ConditionLine {
                    type_: "Ready".into(),
                    status: "False".into(),
                    reason: "Failed".into(),
                    message: "issuance failed (attempt 2, next in 10s): challenge for web.example.com failed: connection refused".into(),
                    since: Some("2026-12-01T10:00:00Z".into()),
                },
                ConditionLine {
                    type_: "Issuing".into(),
                    status: "False".into(),
                    reason: "Failed".into(),
                    message: "issuance failed".into(),
                    since: None,
                },
            ],
            issuer: IssuerLine {
                kind: "ClusterIssuer".into(),
                name: "letsencrypt".into(),
                state: "Ready=True (ACMEAccountRegistered: The ACME account was registered with the ACME server)".into(),
            },
            secret: SecretLine {
                name: "web-tls".into(),
                exists: false,
                contents: None,
                problem: None,
            },
            renewal_time: None,
            revision: None,
            failed_issuance_attempts: Some(2),
            next_attempt_time: Some("2026-12-01T10:00:10Z".into()),
            acme_renewal_window: None,
            acme_order: Some(AcmeOrderStatus {
                url: "https://acme.example/order/7".into(),
                state: "invalid".into(),
                authorizations: vec![
                    crate::api::certificate::AcmeAuthorizationStatus {
                        identifier: "example.com".into(),
                        challenge: None,
                        state: "valid".into(),
                        error: None,
                    },
                    crate::api::certificate::AcmeAuthorizationStatus {
                        identifier: "web.example.com".into(),
                        challenge: Some("http-01".into()),
                        state: "invalid".into(),
                        error: Some("urn:ietf:params:acme:error:connection: 192.0.2.1: Fetching http://web.example.com/.well-known/acme-challenge/abc: Connection refused".into()),
                    },
                ],
            }),
            events: vec!["2026-12-01T10:00:00Z Warning Failed: challenge for web.example.com failed".into()],
        };
        let text = render_text(&report);
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/status-certificate.txt");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(text, std::fs::read_to_string(&path).unwrap());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["failedIssuanceAttempts"], 2);
        assert_eq!(json["conditions"][0]["type"], "Ready");
        assert_eq!(
            json["acmeOrder"]["authorizations"][1]["challenge"],
            "http-01"
        );
    }

    #[test]
    fn local_rows_render_as_an_aligned_table() {
        let rows = [LocalRow {
            certificate: "default/web".into(),
            ready: true,
            not_after: "2027-01-01T00:00:00Z".into(),
            renewal_time: "2026-11-01T00:00:00Z".into(),
            message: "Certificate is up to date".into(),
            failed_challenges: Vec::new(),
        }];
        let text = render_local(&rows);
        assert!(text.starts_with("CERTIFICATE  READY"), "{text}");
        assert!(
            text.contains("default/web  True   2027-01-01T00:00:00Z"),
            "{text}"
        );
    }
}
