//! CNAME following and the self-check around a DNS-01 provider, against a
//! real BIND9: the record goes where a delegated `_acme-challenge` CNAME
//! leads, `present` returns only once the zone's authoritative nameservers
//! (found through the NS records) answer it, and a record that never shows
//! up fails with the servers that lack it instead of hanging.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use certweave::issuers::acme::dns::check::{CheckedSolver, DnsChecks};
use certweave::issuers::acme::dns01::{Rfc2136Config, Rfc2136Solver};
use certweave::issuers::acme::{DnsSolver, SolverFuture, TxtRecord};
use certweave::model::IssueError;
use support::bind9::Bind9;

fn rfc2136(server: &Bind9) -> Arc<dyn DnsSolver> {
    let key = server.key("hmac-sha256");
    Arc::new(
        Rfc2136Solver::new(Rfc2136Config {
            nameserver: server.addr(),
            tsig_key_name: key.name.clone(),
            tsig_secret: key.secret.clone(),
            tsig_algorithm: key.algorithm.parse().unwrap(),
            tcp: false,
        })
        .unwrap(),
    )
}

/// Checks through `server` as the recursive nameserver, and on its port as
/// the authoritative one (the zone's NS is ns1.example.test, 127.0.0.1).
fn checks(server: &Bind9, recursive_only: bool) -> Arc<DnsChecks> {
    Arc::new(DnsChecks {
        recursive_nameservers: vec![server.addr()],
        recursive_only,
        propagation_timeout: Duration::from_secs(2),
        query_timeout: Duration::from_millis(500),
        authoritative_port: server.port(),
    })
}

/// Adds records to the zone with BIND's own `nsupdate`, independently of
/// the code under test.
fn nsupdate(server: &Bind9, commands: &str) {
    use std::io::Write;
    let key = server.key("hmac-sha256");
    let mut child = std::process::Command::new("nsupdate")
        .arg("-y")
        .arg(format!("{}:{}:{}", key.algorithm, key.name, key.secret))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nsupdate (bind9-dnsutils) is installed");
    let script = format!(
        "server 127.0.0.1 {}\nzone {}\n{commands}\nsend\n",
        server.port(),
        server.zone
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nsupdate failed");
}

#[tokio::test]
async fn the_record_goes_where_the_cname_leads_and_is_checked_there() {
    let server = Bind9::start();
    nsupdate(
        &server,
        "update add _acme-challenge.alias.example.test. 60 CNAME hop.example.test.\n\
         update add hop.example.test. 60 CNAME challenges.example.test.",
    );
    let solver = CheckedSolver::new(rfc2136(&server), checks(&server, false), true, true);
    let record = TxtRecord::new("*.alias.example.test", "delegated-value");
    solver.present(&record).await.unwrap();
    assert_eq!(server.txt("challenges.example.test"), ["delegated-value"]);
    solver.cleanup(&record).await.unwrap();
    assert!(server.txt("challenges.example.test").is_empty());

    // Without Follow, the record goes at the name itself, where BIND
    // accepts the update but keeps answering the CNAME: a configuration
    // error that names the fix, at once rather than after the timeout.
    let direct = CheckedSolver::new(rfc2136(&server), checks(&server, false), false, true);
    let started = Instant::now();
    let err = direct.present(&record).await.unwrap_err();
    assert!(err.is_config(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("_acme-challenge.alias.example.test"),
        "{text}"
    );
    assert!(text.contains("cnameStrategy: Follow"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_cname_loop_is_a_configuration_error() {
    let server = Bind9::start();
    nsupdate(
        &server,
        "update add _acme-challenge.loop.example.test. 60 CNAME a.example.test.\n\
         update add a.example.test. 60 CNAME _acme-challenge.loop.example.test.",
    );
    let solver = CheckedSolver::new(rfc2136(&server), checks(&server, true), true, true);
    let err = solver
        .present(&TxtRecord::new("loop.example.test", "v"))
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err:?}");
    assert!(err.to_string().contains("loops"), "{err}");
}

/// A provider that accepts every record and publishes none: what a
/// provider writing to the wrong zone looks like from outside.
struct Accepting;

impl DnsSolver for Accepting {
    fn present<'a>(&'a self, _: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    fn cleanup<'a>(&'a self, _: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

#[tokio::test]
async fn a_record_that_never_appears_fails_within_the_timeout_naming_the_servers() {
    let server = Bind9::start();
    for recursive_only in [false, true] {
        let solver = CheckedSolver::new(
            Arc::new(Accepting),
            checks(&server, recursive_only),
            false,
            true,
        );
        let started = Instant::now();
        let err = solver
            .present(&TxtRecord::new("www.example.test", "never"))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, IssueError::Transient(_)),
            "retried like any failed issuance: {err:?}"
        );
        assert!(
            text.contains("_acme-challenge.www.example.test") && text.contains("still not visible"),
            "{text}"
        );
        let expected_server = if recursive_only {
            "the recursive nameservers".to_owned()
        } else {
            format!("127.0.0.1:{}", server.port())
        };
        assert!(text.contains(&expected_server), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "bounded by the 2 s timeout: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn the_check_passes_on_the_authoritative_servers_and_through_the_recursive_ones() {
    let server = Bind9::start();
    for recursive_only in [false, true] {
        let solver = CheckedSolver::new(
            rfc2136(&server),
            checks(&server, recursive_only),
            false,
            true,
        );
        let record = TxtRecord::new("example.test", format!("seen-{recursive_only}"));
        solver.present(&record).await.unwrap();
        solver.cleanup(&record).await.unwrap();
    }
    assert!(server.txt("_acme-challenge.example.test").is_empty());
    // The zone and its servers are found through the recursive server.
    let checks = checks(&server, false);
    assert_eq!(
        checks
            .find_zone("_acme-challenge.deep.www.example.test")
            .await
            .unwrap(),
        "example.test"
    );
    assert_eq!(
        checks
            .follow_cname("_acme-challenge.example.test")
            .await
            .unwrap(),
        "_acme-challenge.example.test"
    );
}
