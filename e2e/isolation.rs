//! Step 1, last: ACME validations that hang do not delay other issuers.
//! Sixty Certificates whose names resolve where a connection is accepted
//! and never answered (Pebble waits 15 s on each) present their challenges
//! and give their scheduler slot back, so a SelfSigned Certificate created
//! next is issued at once although the controller evaluates only 16 at a
//! time (`--concurrency`).

use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams};
use serde_json::json;

use certweave::api::certificate::Certificate;
use certweave::api::issuer::Issuer;

use super::{is_ready, say, E2e, ACME_ISSUER, NS, STEPS};

const STUCK: usize = 60;
/// The goal is 1 s; the bound leaves room for a loaded machine and is
/// still far below the 15 s Pebble holds each stuck validation.
const BOUND: Duration = Duration::from_secs(5);

pub async fn hanging_validations_do_not_delay_other_issuers(e2e: &E2e) {
    // Where the stuck names resolve: connections are accepted and held.
    let hang = std::net::TcpListener::bind(("127.0.0.3", e2e.pebble.http01_port))
        .unwrap_or_else(|e| e2e.fail(&format!("listen on 127.0.0.3: {e}")));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in hang.incoming().flatten() {
            held.push(connection);
        }
    });
    let certificates: Api<Certificate> = e2e.api(NS);
    for i in 0..STUCK {
        e2e.pebble
            .add_a(&format!("stuck{i}.example.test"), "127.0.0.3")
            .await;
        e2e.create(
            &certificates,
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                   "metadata": {"name": format!("stuck-{i}"), "namespace": NS},
                   "spec": {"secretName": format!("stuck-{i}"),
                            "dnsNames": [format!("stuck{i}.example.test")],
                            "privateKey": {"algorithm": "ECDSA"},
                            "issuerRef": {"name": ACME_ISSUER, "kind": "ClusterIssuer"}}}),
        )
        .await;
    }
    e2e.eventually(
        &format!("all {STUCK} stuck orders presented their challenges"),
        Duration::from_secs(90),
        || {
            let certificates = certificates.clone();
            async move {
                let list = certificates
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?;
                let waiting = list
                    .items
                    .iter()
                    .filter(|c| {
                        c.metadata
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with("stuck-"))
                    })
                    .filter(|c| {
                        c.status
                            .as_ref()
                            .and_then(|s| s.acme.as_ref())
                            .and_then(|a| a.order.as_ref())
                            .is_some_and(|o| o.state == "pending")
                    })
                    .count();
                if waiting == STUCK {
                    Ok(())
                } else {
                    Err(format!("{waiting} of {STUCK} waiting for validation"))
                }
            }
        },
    )
    .await;

    e2e.create(
        &e2e.api::<Issuer>(NS),
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
               "metadata": {"name": "isolation-selfsigned"}, "spec": {"selfSigned": {}}}),
    )
    .await;
    // The issuer's readiness is not what is measured.
    super::issuer_readiness(
        e2e,
        &e2e.api::<Issuer>(NS),
        "isolation-selfsigned",
        super::Readiness::Ready,
        super::ISSUER_READY,
    )
    .await;
    let created = Instant::now();
    e2e.create(
        &certificates,
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": "isolation-quick", "namespace": NS},
               "spec": {"secretName": "isolation-quick", "dnsNames": ["quick.example.test"],
                        "privateKey": {"algorithm": "ECDSA"},
                        "issuerRef": {"name": "isolation-selfsigned", "kind": "Issuer"}}}),
    )
    .await;
    let took = loop {
        let ready = certificates
            .get("isolation-quick")
            .await
            .ok()
            .and_then(|c| c.status)
            .is_some_and(|s| is_ready(&s.conditions));
        if ready {
            break created.elapsed();
        }
        if created.elapsed() > BOUND {
            e2e.fail(&format!(
                "a SelfSigned Certificate beside {STUCK} hanging ACME validations was not \
                 Ready within {BOUND:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The stuck ones would fail and retry during later steps.
    for i in 0..STUCK {
        let _ = certificates
            .delete(&format!("stuck-{i}"), &DeleteParams::default())
            .await;
    }
    say(&format!(
        "[1/{STEPS}] a SelfSigned Certificate Ready {took:?} after its creation beside {STUCK} \
         hanging ACME validations (goal ≤ 1 s; --concurrency 16)"
    ));
}
