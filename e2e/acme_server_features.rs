//! The ACME server's own say, through the controller: renewal information
//! (RFC 9773) lands in `status.acme.ari` and decides `renewalTime`, and an
//! issuer's `profile` reaches the order (Pebble's `shortlived` profile
//! issues 6-day certificates; a profile Pebble does not offer fails with
//! its message on the Certificate).

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use serde_json::json;

use certweave::api::certificate::Certificate;
use certweave::api::issuer::ClusterIssuer;

use super::{cluster_issuer_ready, describe, say, E2e, ACME_ISSUER, ISSUED, NS, STEPS};

fn seconds(t: &Time) -> i64 {
    t.0.as_second()
}

/// `certweave inspect secret` reads step 1's Secret from the API server:
/// the key matches, cert-manager's annotations are shown.
fn inspect_secret(e2e: &E2e) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
        .args([
            "inspect",
            "secret",
            "example-com-tls",
            "-n",
            NS,
            "-o",
            "json",
            "--kubeconfig",
        ])
        .arg(&e2e.cluster.kubeconfig)
        .output()
        .unwrap();
    if !out.status.success() {
        e2e.fail(&format!(
            "certweave inspect secret failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    if report["privateKey"]["matchesCertificate"] != true
        || report["annotations"]["cert-manager.io/certificate-name"] != "example-com"
        || report["certificates"][0]["dnsNames"] != json!(["example.test", "www.example.test"])
    {
        e2e.fail(&format!("inspect secret example-com-tls: {report:#}"));
    }
    format!(
        "inspect secret: {} certificate(s), key matches",
        report["certificates"].as_array().map(Vec::len).unwrap_or(0)
    )
}

/// Re-issuance on request, both ways a user asks for it: `certweave
/// renew`, and cmctl's own condition (`Issuing=True`, reason
/// `ManuallyTriggered`) written into the status with kubectl, as `cmctl
/// renew` does. Each issues the Certificate again, once, and the condition
/// is replaced.
async fn renew(e2e: &E2e) -> String {
    let by_certweave = renewed_once(e2e, "certweave renew", || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
            .args(["renew", "example-com", "-n", NS, "--kubeconfig"])
            .arg(&e2e.cluster.kubeconfig)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success()
            || !said.contains("Manually triggered issuance of Certificate e2e/example-com")
        {
            e2e.fail(&format!(
                "certweave renew: {said}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    })
    .await;
    let certificates: Api<Certificate> = e2e.api(NS);
    let current = certificates.get("example-com").await.unwrap();
    let by_cmctl = renewed_once(e2e, "cmctl's condition set with kubectl", || {
        // What `cmctl renew` writes: the Issuing condition replaced by
        // Issuing=True/ManuallyTriggered, the others kept.
        let mut conditions: Vec<serde_json::Value> = current
            .status
            .as_ref()
            .map(|s| s.conditions.iter().filter(|c| c.type_ != "Issuing"))
            .into_iter()
            .flatten()
            .map(|c| serde_json::to_value(c).unwrap())
            .collect();
        conditions.push(json!({
            "type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
            "message": "Certificate re-issuance manually triggered",
            "lastTransitionTime": Time(k8s_openapi::jiff::Timestamp::now()),
        }));
        let patch = json!({"status": {"conditions": conditions}}).to_string();
        e2e.kubectl(&[
            "patch",
            "certificate",
            "example-com",
            "-n",
            NS,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ]);
    })
    .await;
    format!("renew: {by_certweave}; {by_cmctl}")
}

/// Asks for re-issuance of step 1's Certificate with `ask`, then waits
/// until it is issued again and checks that it is issued only once.
async fn renewed_once(e2e: &E2e, how: &str, ask: impl FnOnce()) -> String {
    let certificates: Api<Certificate> = e2e.api(NS);
    let before = certificates.get("example-com").await.unwrap();
    let revision = before.status.as_ref().and_then(|s| s.revision).unwrap_or(0);
    ask();
    let renewed = e2e
        .eventually(
            &format!("example-com issued again after {how}"),
            Duration::from_secs(30),
            || {
                let certificates = certificates.clone();
                async move {
                    let c = certificates
                        .get("example-com")
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = c.status.clone().unwrap_or_default();
                    if status.revision.unwrap_or(0) > revision
                        && !c.renewal_requested()
                        && describe(&status.conditions).contains("Ready=True")
                    {
                        Ok(status.revision.unwrap_or(0))
                    } else {
                        Err(format!(
                            "revision {:?}: {}",
                            status.revision,
                            describe(&status.conditions)
                        ))
                    }
                }
            },
        )
        .await;
    // Once: a few seconds later it has not been issued again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = certificates.get("example-com").await.unwrap();
    let now = later.status.and_then(|s| s.revision).unwrap_or(0);
    if now != renewed {
        e2e.fail(&format!(
            "one renewal request ({how}) should issue once: revision {revision} → {renewed} → {now}"
        ));
    }
    format!("{how}: revision {revision} → {renewed}, once")
}

/// `certweave status certificate` on a Ready one, a failing one and a typo;
/// for a failed HTTP-01 challenge (the name resolves where nothing
/// answers), the order with the failed name, its challenge and Pebble's
/// error.
async fn status_command(e2e: &E2e) -> String {
    const UNREACHABLE: &str = "acme-unreachable";
    let host = format!("{UNREACHABLE}.example.test");
    e2e.pebble.add_a(&host, "127.0.0.2").await;
    let certificates: Api<Certificate> = e2e.api(NS);
    e2e.create(
        &certificates,
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": UNREACHABLE, "namespace": NS},
            "spec": {"secretName": UNREACHABLE, "dnsNames": [host],
                     "issuerRef": {"name": ACME_ISSUER, "kind": "ClusterIssuer"}},
        }),
    )
    .await;
    let order = e2e
        .eventually(
            "status.acme.order of Certificate acme-unreachable invalid",
            ISSUED,
            || {
                let certificates = certificates.clone();
                async move {
                    let status = certificates
                        .get(UNREACHABLE)
                        .await
                        .map_err(|e| e.to_string())?
                        .status
                        .unwrap_or_default();
                    match status.acme.and_then(|a| a.order) {
                        Some(order) if order.state == "invalid" => Ok(order),
                        other => Err(format!("{other:?}")),
                    }
                }
            },
        )
        .await;
    let failed = &order.authorizations;
    if failed.len() != 1
        || failed[0].identifier != host
        || failed[0].challenge.as_deref() != Some("http-01")
        || failed[0].state != "invalid"
        || !failed[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("connection"))
    {
        e2e.fail(&format!("status.acme.order of {UNREACHABLE}: {order:?}"));
    }
    let run = |name: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
            .args(["status", "certificate", name, "-n", NS, "--kubeconfig"])
            .arg(&e2e.cluster.kubeconfig)
            .output()
            .unwrap()
    };
    let ready = run("example-com");
    let text = String::from_utf8_lossy(&ready.stdout).into_owned();
    if !ready.status.success()
        || !text.starts_with("Certificate e2e/example-com: Ready")
        || !text.contains("Issuer: ClusterIssuer letsencrypt-staging: Ready=True")
        || !text.contains("matches the leaf certificate")
    {
        e2e.fail(&format!("status certificate example-com:\n{text}"));
    }
    let failing = run("acme-no-such-profile");
    let text = String::from_utf8_lossy(&failing.stdout).into_owned();
    if failing.status.code() != Some(1)
        || !text.contains("invalidProfile")
        || !text.contains("next attempt")
    {
        e2e.fail(&format!("status certificate acme-no-such-profile should exit 1 and show the server's error:\n{text}"));
    }
    let unreachable = run(UNREACHABLE);
    let text = String::from_utf8_lossy(&unreachable.stdout).into_owned();
    if unreachable.status.code() != Some(1)
        || !text.contains("ACME order (invalid): https://")
        || !text.contains(&format!(
            "  {host} (http-01): invalid: urn:ietf:params:acme:error:connection"
        ))
    {
        e2e.fail(&format!(
            "status certificate {UNREACHABLE} should show the failed challenge:\n{text}"
        ));
    }
    let typo = run("example-comm");
    let said = String::from_utf8_lossy(&typo.stderr).into_owned();
    if typo.status.code() != Some(1) || !said.contains("did you mean example-com") {
        e2e.fail(&format!(
            "status certificate example-comm should suggest example-com: {said}"
        ));
    }
    "status: Ready exits 0, failing exits 1 with the server's error, a failed challenge is shown by name, a typo gets close matches"
        .to_owned()
}

pub async fn renewal_information_and_profiles(e2e: &E2e) {
    let inspected = inspect_secret(e2e);
    let renewed = renew(e2e).await;
    let certificates: Api<Certificate> = e2e.api(NS);
    // Step 1's Certificate: the window Pebble suggests, and the renewal
    // time picked inside it.
    let ari = e2e
        .eventually(
            "status.acme.ari of Certificate example-com",
            Duration::from_secs(30),
            || {
                let certificates = certificates.clone();
                async move {
                    let status = certificates
                        .get("example-com")
                        .await
                        .map_err(|e| e.to_string())?
                        .status
                        .unwrap_or_default();
                    let ari = status
                        .acme
                        .and_then(|a| a.ari)
                        .ok_or("no status.acme.ari yet")?;
                    match (
                        &ari.suggested_window_start,
                        &ari.suggested_window_end,
                        &ari.selected_renewal_time,
                        &status.renewal_time,
                    ) {
                        (Some(start), Some(end), Some(selected), Some(renewal))
                            if seconds(start) <= seconds(selected)
                                && seconds(selected) <= seconds(end)
                                && seconds(renewal) == seconds(selected) =>
                        {
                            Ok(ari.clone())
                        }
                        _ => Err(format!(
                            "ari {ari:?}, renewalTime {:?}",
                            status.renewal_time
                        )),
                    }
                }
            },
        )
        .await;

    let issuers: Api<ClusterIssuer> = Api::all(e2e.client.clone());
    let base: ClusterIssuer = issuers.get(ACME_ISSUER).await.unwrap();
    for (name, profile) in [
        ("acme-shortlived", "shortlived"),
        ("acme-no-such-profile", "no-such-profile"),
    ] {
        let mut spec = serde_json::to_value(&base.spec).unwrap();
        spec["acme"]["profile"] = json!(profile);
        spec["acme"]["privateKeySecretRef"]["name"] = json!(format!("{name}-account"));
        e2e.create(
            &issuers,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": name}, "spec": spec}),
        )
        .await;
        cluster_issuer_ready(e2e, name).await;
        e2e.create(
            &certificates,
            json!({
                "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"secretName": name, "dnsNames": [format!("{name}.example.test")],
                         "issuerRef": {"name": name, "kind": "ClusterIssuer"}},
            }),
        )
        .await;
    }
    let short = e2e.certificate_ready("acme-shortlived", ISSUED).await;
    let status = short.status.unwrap_or_default();
    let lifetime = match (&status.not_before, &status.not_after) {
        (Some(before), Some(after)) => seconds(after) - seconds(before),
        _ => e2e.fail(&format!("acme-shortlived reports no validity: {status:?}")),
    };
    // Pebble's shortlived profile: 518,400 s; its default: 90 days.
    if !(500_000..=530_000).contains(&lifetime) {
        e2e.fail(&format!(
            "a certificate from the shortlived profile should live about 6 days, not {lifetime} s"
        ));
    }
    let refused = e2e
        .eventually(
            "Certificate acme-no-such-profile failing with Pebble's message",
            ISSUED,
            || {
                let certificates = certificates.clone();
                async move {
                    let conditions = certificates
                        .get("acme-no-such-profile")
                        .await
                        .map_err(|e| e.to_string())?
                        .status
                        .unwrap_or_default()
                        .conditions;
                    let text = describe(&conditions);
                    if text.contains("no-such-profile") && text.contains("Ready=False") {
                        Ok(text)
                    } else {
                        Err(text)
                    }
                }
            },
        )
        .await;
    let statuses = status_command(e2e).await;
    say(&format!(
        "[1/{STEPS}] renewal information: window {:?} … {:?}, renewal at {:?}; shortlived profile: {lifetime} s; unknown profile: {refused}; {inspected}; {renewed}; {statuses}",
        ari.suggested_window_start, ari.suggested_window_end, ari.selected_renewal_time
    ));
}
