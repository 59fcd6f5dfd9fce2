//! The acme-dns DNS-01 solver against a real acme-dns server: values are
//! served at the account's `fulldomain`, the two most recent are kept (why
//! cleanup does nothing), refusals say what to fix, and a wildcard and apex
//! certificate is issued by Pebble through the whole delegation chain a
//! real deployment has: BIND9 holds `_acme-challenge.example.test CNAME
//! <fulldomain>` and forwards acme-dns's zone to it, and Pebble resolves
//! through BIND9.

#[path = "support/acme_dns.rs"]
mod acme_dns;
#[path = "support/bind9.rs"]
mod bind9;
#[path = "support/pebble.rs"]
mod pebble;

use std::sync::Arc;

use acme_dns::AcmeDns;
use certweave::issuers::acme::dns::acme_dns::{parse_accounts, AcmeDnsConfig, AcmeDnsSolver};
use certweave::issuers::acme::{DnsSolver, TxtRecord};
use pebble::{Pebble, PebbleOptions};
use serde_json::{json, Value};

/// A challenge value as ACME makes them: 43 characters of base64url
/// (acme-dns refuses any other length).
fn value(n: u8) -> String {
    format!("{}{n:03}", "v".repeat(40))
}

/// The account Secret's JSON with `registration` under `domain`.
fn secret(domain: &str, registration: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({ domain: registration })).unwrap()
}

fn solver(server: &AcmeDns, accounts_json: &[u8]) -> AcmeDnsSolver {
    AcmeDnsSolver::new(AcmeDnsConfig {
        host: server.api_url.clone(),
        accounts: parse_accounts(accounts_json).unwrap(),
    })
    .unwrap()
}

#[tokio::test]
async fn present_is_served_at_the_fulldomain_and_the_two_newest_values_stay() {
    let server = AcmeDns::start();
    let registration = server.register().await;
    let fulldomain = registration["fulldomain"].as_str().unwrap().to_owned();
    assert!(fulldomain.ends_with(acme_dns::ZONE), "{fulldomain}");
    let solver = solver(&server, &secret("example.test", &registration));

    let apex = TxtRecord::new("example.test", value(1));
    let wildcard = TxtRecord::new("*.example.test", value(2));
    solver.present(&apex).await.unwrap();
    assert_eq!(server.txt(&fulldomain), [value(1)], "{}", server.log());
    solver.present(&wildcard).await.unwrap();
    assert_eq!(server.txt(&fulldomain), [value(1), value(2)]);

    // Cleanup cannot remove a value from acme-dns and does not try to...
    solver.cleanup(&apex).await.unwrap();
    solver.cleanup(&wildcard).await.unwrap();
    assert_eq!(server.txt(&fulldomain), [value(1), value(2)]);
    // ...because the next update replaces the older of the two.
    solver
        .present(&TxtRecord::new("example.test", value(3)))
        .await
        .unwrap();
    assert_eq!(server.txt(&fulldomain), [value(2), value(3)]);
}

#[tokio::test]
async fn a_refused_account_is_a_configuration_error_without_the_password() {
    let server = AcmeDns::start();
    let mut registration = server.register().await;
    let wrong = "Zq7wrongPasswordForTheAccount0000000000000";
    registration["password"] = json!(wrong);
    let solver = solver(&server, &secret("example.test", &registration));
    let err = solver
        .present(&TxtRecord::new("example.test", value(1)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(err.is_config(), "{err:?}");
    assert!(text.contains("refused the account"), "{text}");
    assert!(text.contains("HTTP 401"), "{text}");
    assert!(!text.contains(wrong), "{text}");
    assert!(!format!("{err:?}").contains(wrong));
}

#[tokio::test]
async fn a_domain_without_an_account_names_the_key_to_add() {
    let server = AcmeDns::start();
    let registration = server.register().await;
    let solver = solver(&server, &secret("example.test", &registration));
    let err = solver
        .present(&TxtRecord::new("*.other.test", value(1)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(err.is_config(), "{err:?}");
    assert!(text.contains("no account for other.test"), "{text}");
    assert!(text.contains("key \"other.test\""), "{text}");
}

/// The realistic chain: BIND9 is authoritative for `example.test`, where
/// `_acme-challenge` is a CNAME to the account's `fulldomain`, and forwards
/// acme-dns's zone to acme-dns; Pebble validates by asking BIND9.
#[tokio::test]
async fn issues_a_wildcard_and_apex_certificate_through_a_cname_to_acme_dns() {
    let server = AcmeDns::start();
    let registration = server.register().await;
    let fulldomain = registration["fulldomain"].as_str().unwrap().to_owned();
    let bind = bind9::Bind9::start_with(bind9::Bind9Extras {
        example_records: vec![format!("_acme-challenge IN CNAME {fulldomain}.")],
        forward_zones: vec![(format!("{}.", acme_dns::ZONE), server.dns_addr)],
    });
    let pebble = Pebble::start(PebbleOptions {
        dns_server: Some(bind.addr()),
        ..PebbleOptions::http01(pebble::free_port())
    });
    let solver: Arc<dyn DnsSolver> =
        Arc::new(solver(&server, &secret("example.test", &registration)));

    // The chain answers before any order: BIND9 follows the CNAME.
    solver
        .present(&TxtRecord::new("example.test", value(9)))
        .await
        .unwrap();
    assert_eq!(
        bind9::dig_txt(bind.addr(), "_acme-challenge.example.test", true),
        [value(9)],
        "{}",
        bind.log()
    );

    pebble::issue_wildcard(&pebble, solver, || {
        format!(
            "--- acme-dns ---\n{}\n--- named ---\n{}",
            server.log(),
            bind.log()
        )
    })
    .await;
    // The two values acme-dns serves now are the order's two challenges.
    let served = server.txt(&fulldomain);
    assert_eq!(served.len(), 2, "{served:?}");
    assert!(!served.contains(&value(9)), "{served:?}");
}
