//! The RFC 2136 DNS-01 solver against a real BIND9: records appear, coexist
//! and disappear as ACME needs, and every way the server can say no comes
//! back as a message that names the fix.

mod support;

use std::time::{Duration, Instant};

use certweave::issuers::acme::dns01::{Rfc2136Config, Rfc2136Solver, TsigAlgorithm};
use certweave::model::IssueError;
use support::bind9::Bind9;

const CHALLENGE: &str = "_acme-challenge.example.test";

fn solver_for(server: &Bind9, algorithm: &str) -> Rfc2136Solver {
    let key = server.key(algorithm);
    Rfc2136Solver::new(Rfc2136Config {
        nameserver: server.addr(),
        tsig_key_name: key.name.clone(),
        tsig_secret: key.secret.clone(),
        tsig_algorithm: key.algorithm.parse().unwrap(),
        tcp: false,
    })
    .unwrap()
}

fn config_message(result: Result<(), IssueError>) -> String {
    match result {
        Err(err) if err.is_config() => err.to_string(),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[tokio::test]
async fn present_is_answered_by_bind_and_cleanup_removes_it() {
    let server = Bind9::start();
    let solver = solver_for(&server, "hmac-sha256");
    let serial = server.serial(&server.zone);

    solver.present(CHALLENGE, "token-one").await.unwrap();
    assert_eq!(server.txt(CHALLENGE), ["token-one"], "{}", server.log());
    assert!(
        server.serial(&server.zone) > serial,
        "the update bumps the serial"
    );
    // The record is short-lived: `dig` shows TTL 60.
    let full = std::process::Command::new("dig")
        .args(["+noall", "+answer", "+norecurse", "-p"])
        .arg(server.port().to_string())
        .args(["@127.0.0.1", CHALLENGE, "TXT"])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&full.stdout);
    assert_eq!(answer.split_whitespace().nth(1), Some("60"), "{answer}");

    solver.cleanup(CHALLENGE, "token-one").await.unwrap();
    assert!(server.txt(CHALLENGE).is_empty());
    // Cleaning up what is already gone is not an error (a retried cleanup).
    solver.cleanup(CHALLENGE, "token-one").await.unwrap();
    // The rest of the zone is untouched.
    assert_eq!(server.dig("www.example.test", "A").trim(), "127.0.0.1");
}

#[tokio::test]
async fn wildcard_and_apex_values_share_a_name_and_are_removed_one_by_one() {
    let server = Bind9::start();
    let solver = solver_for(&server, "hmac-sha256");

    // A certificate for example.test and *.example.test has two challenges
    // at the same name, presented concurrently.
    let (apex, wildcard) = tokio::join!(
        solver.present(CHALLENGE, "apex-value"),
        solver.present("_acme-challenge.example.test.", "wildcard-value"),
    );
    apex.unwrap();
    wildcard.unwrap();
    assert_eq!(server.txt(CHALLENGE), ["apex-value", "wildcard-value"]);

    solver.cleanup(CHALLENGE, "apex-value").await.unwrap();
    assert_eq!(server.txt(CHALLENGE), ["wildcard-value"]);
    solver.cleanup(CHALLENGE, "wildcard-value").await.unwrap();
    assert!(server.txt(CHALLENGE).is_empty());
}

#[tokio::test]
async fn deeper_names_and_long_values_work() {
    let server = Bind9::start();
    let solver = solver_for(&server, "hmac-sha256");
    let name = "_acme-challenge.a.b.www.example.test";
    // Longer than one TXT character-string (255 bytes).
    let long = "k".repeat(300);
    solver.present(name, &long).await.unwrap();
    assert_eq!(server.txt(name), std::slice::from_ref(&long));
    solver.cleanup(name, &long).await.unwrap();
    assert!(server.txt(name).is_empty());
}

#[tokio::test]
async fn sha384_and_sha512_keys_work() {
    let server = Bind9::start();
    for algorithm in ["hmac-sha384", "hmac-sha512"] {
        let solver = solver_for(&server, algorithm);
        let value = format!("{algorithm}-value");
        solver.present(CHALLENGE, &value).await.unwrap();
        assert_eq!(
            server.txt(CHALLENGE),
            std::slice::from_ref(&value),
            "{algorithm}"
        );
        solver.cleanup(CHALLENGE, &value).await.unwrap();
        assert!(server.txt(CHALLENGE).is_empty(), "{algorithm}");
    }
}

/// `protocol: TCP`: every query and update goes over TCP; BIND's query log
/// marks a TCP query with `T` among its flags.
#[tokio::test]
async fn protocol_tcp_sends_every_message_over_tcp() {
    let server = Bind9::start();
    let key = server.key("hmac-sha256");
    let tcp_flags = |log: &str| -> Vec<bool> {
        log.lines()
            // The solver's queries are signed; the test's own `dig` is not.
            .filter(|l| {
                l.contains("/key ") && l.contains("query: _acme-challenge.example.test IN ")
            })
            .map(|l| {
                let after_type = l.split(" IN ").nth(1).unwrap_or_default();
                let flags = after_type.split_whitespace().nth(1).unwrap_or_default();
                flags.contains('T')
            })
            .collect()
    };
    for tcp in [false, true] {
        let solver = Rfc2136Solver::new(Rfc2136Config {
            nameserver: server.addr(),
            tsig_key_name: key.name.clone(),
            tsig_secret: key.secret.clone(),
            tsig_algorithm: key.algorithm.parse().unwrap(),
            tcp,
        })
        .unwrap();
        let before = server.log().len();
        solver
            .present(CHALLENGE, "over-some-transport")
            .await
            .unwrap();
        assert_eq!(server.txt(CHALLENGE), ["over-some-transport"]);
        solver
            .cleanup(CHALLENGE, "over-some-transport")
            .await
            .unwrap();
        let log = server.log()[before..].to_owned();
        let flags = tcp_flags(&log);
        assert!(!flags.is_empty(), "no query logged:\n{log}");
        assert!(
            flags.iter().all(|&t| t == tcp),
            "tcp: {tcp}, flags {flags:?}:\n{log}"
        );
    }
}

#[tokio::test]
async fn a_wrong_secret_fails_clearly_and_changes_nothing() {
    let server = Bind9::start();
    let serial = server.serial(&server.zone);
    let solver = Rfc2136Solver::new(Rfc2136Config {
        nameserver: server.addr(),
        tsig_key_name: server.key_name.clone(),
        // A valid base64 secret, but not the server's.
        tsig_secret: "c29tZSBvdGhlciBzZWNyZXQgb2YgMzIgYnl0ZXMhISE=".into(),
        tsig_algorithm: TsigAlgorithm::HmacSha256,
        tcp: false,
    })
    .unwrap();

    let message = config_message(solver.present(CHALLENGE, "never").await);
    eprintln!("wrong secret: {message}");
    assert!(
        message.contains(&format!("TSIG rejected by {}", server.addr())),
        "{message}"
    );
    assert!(
        message.contains("check --tsig-key-name/--tsig-secret/--tsig-algorithm"),
        "{message}"
    );
    assert!(message.contains("BADSIG"), "{message}");
    assert!(
        !message.contains("c29tZSBvdGhlciBzZWNyZXQ"),
        "secret leaked: {message}"
    );
    let message = config_message(solver.cleanup(CHALLENGE, "never").await);
    assert!(message.contains("TSIG rejected"), "{message}");

    assert!(server.txt(CHALLENGE).is_empty());
    assert_eq!(server.serial(&server.zone), serial, "nothing was changed");
}

#[tokio::test]
async fn an_unknown_key_or_algorithm_is_named_in_the_error() {
    let server = Bind9::start();
    let serial = server.serial(&server.zone);
    let unknown_key = Rfc2136Solver::new(Rfc2136Config {
        nameserver: server.addr(),
        tsig_key_name: "no-such-key".into(),
        tsig_secret: server.secret.clone(),
        tsig_algorithm: TsigAlgorithm::HmacSha256,
        tcp: false,
    })
    .unwrap();
    let message = config_message(unknown_key.present(CHALLENGE, "never").await);
    eprintln!("unknown key: {message}");
    assert!(message.contains("TSIG rejected"), "{message}");
    assert!(message.contains("BADKEY"), "{message}");

    // The right key and secret with the wrong algorithm is a different key
    // to the server.
    let wrong_algorithm = Rfc2136Solver::new(Rfc2136Config {
        nameserver: server.addr(),
        tsig_key_name: server.key_name.clone(),
        tsig_secret: server.secret.clone(),
        tsig_algorithm: TsigAlgorithm::HmacSha512,
        tcp: false,
    })
    .unwrap();
    let message = config_message(wrong_algorithm.present(CHALLENGE, "never").await);
    eprintln!("wrong algorithm: {message}");
    assert!(message.contains("TSIG rejected"), "{message}");
    assert!(message.contains("hmac-sha512"), "{message}");

    assert_eq!(server.serial(&server.zone), serial);
}

#[tokio::test]
async fn a_name_outside_every_zone_fails_clearly() {
    let server = Bind9::start();
    let solver = solver_for(&server, "hmac-sha256");
    let message = config_message(
        solver
            .present("_acme-challenge.shop.elsewhere.example", "v")
            .await,
    );
    eprintln!("outside: {message}");
    assert!(
        message.contains(&format!(
            "{} serves no zone containing _acme-challenge.shop.elsewhere.example.",
            server.addr()
        )),
        "{message}"
    );
}

#[tokio::test]
async fn a_zone_without_allow_update_names_the_policy() {
    let server = Bind9::start();
    let solver = solver_for(&server, "hmac-sha256");
    let serial = server.serial(&server.locked_zone);
    let message = config_message(solver.present("_acme-challenge.locked.test", "v").await);
    eprintln!("locked zone: {message}");
    assert!(message.contains("refused the update"), "{message}");
    assert!(message.contains("zone locked.test."), "{message}");
    assert!(message.contains("allow-update"), "{message}");
    assert_eq!(server.serial(&server.locked_zone), serial);
}

#[tokio::test]
async fn a_silent_server_is_a_bounded_transient_failure() {
    // A UDP socket that reads nothing and answers nothing.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let solver = Rfc2136Solver::new(Rfc2136Config {
        nameserver: silent.local_addr().unwrap(),
        tsig_key_name: "k".into(),
        tsig_secret: "c2VjcmV0".into(),
        tsig_algorithm: TsigAlgorithm::HmacSha256,
        tcp: false,
    })
    .unwrap();
    let started = Instant::now();
    let error = solver.present(CHALLENGE, "v").await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(
        error.to_string().contains("no answer from DNS server"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
}

#[tokio::test]
async fn a_closed_port_is_a_transient_failure() {
    let port = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let solver = Rfc2136Solver::new(Rfc2136Config {
        nameserver: port,
        tsig_key_name: "k".into(),
        tsig_secret: "c2VjcmV0".into(),
        tsig_algorithm: TsigAlgorithm::HmacSha256,
        tcp: false,
    })
    .unwrap();
    let error = solver.cleanup(CHALLENGE, "v").await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}
