//! `certweave local` against a real Pebble: ACME issuance from a
//! ClusterIssuer, isolation from certificates that can never validate, and
//! resuming an order in flight after SIGKILL.

#[path = "support/pebble.rs"]
mod pebble;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use certweave::pki;

#[path = "support/local_process.rs"]
mod local_process;

use local_process::{leaf, wait_for, Local};
use pebble::{free_port, Pebble, PebbleOptions};

fn issuer_yaml(pebble: &Pebble) -> String {
    format!(
        "apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {{name: pebble}}\nspec:\n  acme:\n    server: {}\n    email: ops@example.test\n    caBundle: {}\n    privateKeySecretRef: {{name: pebble-account}}\n    solvers:\n    - http01: {{ingress: {{ingressClassName: nginx}}}}\n",
        pebble.directory_url,
        base64::engine::general_purpose::STANDARD.encode(&pebble.tls_ca_pem)
    )
}

fn certificate_yaml(name: &str) -> String {
    format!(
        "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec:\n  secretName: {name}-tls\n  dnsNames: [{name}.example.test]\n  privateKey: {{algorithm: ECDSA}}\n  issuerRef: {{name: pebble, kind: ClusterIssuer}}\n"
    )
}

fn secret(root: &Path, name: &str) -> PathBuf {
    root.join("secrets/default").join(format!("{name}-tls"))
}

#[tokio::test(flavor = "multi_thread")]
async fn acme_issuance_is_isolated_from_certificates_that_never_validate() {
    let port = free_port();
    let pebble = Pebble::start(PebbleOptions::http01(port));
    let root_pem = pebble.root(0).await;
    for i in 0..4 {
        // Validation of these names goes to an address where nothing listens.
        pebble
            .add_a(&format!("bad{i}.example.test"), "127.0.0.2")
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut manifests = issuer_yaml(&pebble);
    manifests.push_str(&certificate_yaml("good1"));
    for i in 0..4 {
        manifests.push_str(&certificate_yaml(&format!("bad{i}")));
    }
    std::fs::write(dir.path().join("certs.yaml"), &manifests).unwrap();
    let local = Local::start_with(dir.path(), &["--http01-addr", &format!("127.0.0.1:{port}")]);

    let first = wait_for("good1", Duration::from_secs(60), &local, || {
        leaf(&secret(dir.path(), "good1"))
    });
    let chain = std::fs::read_to_string(secret(dir.path(), "good1").join("tls.crt")).unwrap();
    pki::verify_chain_to_root(&chain, &root_pem).unwrap();
    assert_eq!(first.dns_names, ["good1.example.test"]);
    // The failing ones fail with the ACME problem and back off.
    wait_for(
        "the bad certificates to fail",
        Duration::from_secs(60),
        &local,
        || {
            let failed = (0..4).all(|i| {
                std::fs::read_to_string(
                    dir.path()
                        .join(format!("state/certificates/default/bad{i}.json")),
                )
                .is_ok_and(|s| {
                    s.contains("\"failedIssuanceAttempts\": 1")
                        || s.contains("\"failedIssuanceAttempts\": 2")
                })
            });
            failed.then_some(())
        },
    );
    let state =
        std::fs::read_to_string(dir.path().join("state/certificates/default/bad0.json")).unwrap();
    assert!(
        state.contains("bad0.example.test") || state.contains("urn:ietf:params:acme:error"),
        "the problem is recorded: {state}"
    );
    for i in 0..4 {
        assert!(!secret(dir.path(), &format!("bad{i}"))
            .join("tls.crt")
            .exists());
    }
    // `certweave status --dir` names the failed name, its challenge and
    // Pebble's error, under the certificate's row.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
        .args(["status", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(
        table.lines().any(|l| l
            .starts_with("    bad0.example.test (http-01): urn:ietf:params:acme:error:connection")),
        "{table}"
    );

    // A new good certificate is issued promptly despite them.
    manifests.push_str(&certificate_yaml("good2"));
    std::fs::write(dir.path().join("certs.yaml"), &manifests).unwrap();
    let added = Instant::now();
    wait_for("good2", Duration::from_secs(10), &local, || {
        leaf(&secret(dir.path(), "good2"))
    });
    let took = added.elapsed();
    eprintln!("good2 issued {took:?} after its manifest was written (poll interval 250 ms)");
    assert!(took < Duration::from_secs(3), "good2 took {took:?}");

    // The account was registered once and reused for every order.
    let log = local.log();
    assert_eq!(
        log.matches("registered a new ACME account").count(),
        1,
        "{log}"
    );
    assert!(dir
        .path()
        .join("state/accounts/default/pebble-account.key")
        .exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_order_in_flight_is_resumed_after_sigkill() {
    let port = free_port();
    let pebble = Pebble::start(PebbleOptions::http01(port));
    let dir = tempfile::tempdir().unwrap();
    let manifests = format!("{}{}", issuer_yaml(&pebble), certificate_yaml("web"));
    std::fs::write(dir.path().join("certs.yaml"), &manifests).unwrap();
    let state_path = dir.path().join("state/certificates/default/web.json");

    // Catch the process between opening the order and finishing it.
    let mut order_url = None;
    for _attempt in 0..10 {
        let _ = std::fs::remove_dir_all(dir.path().join("state/certificates"));
        let _ = std::fs::remove_dir_all(dir.path().join("secrets"));
        let local = Local::start_with(dir.path(), &["--http01-addr", &format!("127.0.0.1:{port}")]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let state = std::fs::read_to_string(&state_path).unwrap_or_default();
            if let Some(url) = serde_json::from_str::<serde_json::Value>(&state)
                .ok()
                .and_then(|v| {
                    v["order"]["order_url"]
                        .as_str()
                        .or(v["order"]["orderUrl"].as_str())
                        .map(str::to_owned)
                })
            {
                drop(local); // SIGKILL
                order_url = Some(url);
                break;
            }
            if leaf(&secret(dir.path(), "web")).is_some() {
                break; // too fast this time; try again
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if order_url.is_some() {
            break;
        }
    }
    let order_url = order_url.expect("never caught an order in flight in 10 attempts");
    assert!(
        leaf(&secret(dir.path(), "web")).is_none(),
        "killed before the certificate was written"
    );

    let local = Local::start_with(dir.path(), &["--http01-addr", &format!("127.0.0.1:{port}")]);
    wait_for("web after resume", Duration::from_secs(60), &local, || {
        leaf(&secret(dir.path(), "web"))
    });
    let log = local.log();
    assert!(log.contains("resuming the stored ACME order"), "{log}");
    assert!(
        log.contains(&order_url),
        "the same order {order_url} was resumed:\n{log}"
    );
}

/// Certificates whose ACME validation hangs (the CA's connection is
/// accepted and never answered) give their scheduler slot back once their
/// challenges are presented: with sixty of them and `--concurrency 2`, a
/// SelfSigned certificate added afterwards is still issued at once.
#[tokio::test(flavor = "multi_thread")]
async fn validations_that_hang_do_not_hold_up_local_issuers() {
    let port = free_port();
    let pebble = Pebble::start(PebbleOptions::http01(port));
    // Where the stuck names resolve: connections are accepted and held.
    let hang = std::net::TcpListener::bind(("127.0.0.3", port)).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in hang.incoming().flatten() {
            held.push(connection);
        }
    });
    const STUCK: usize = 60;
    for i in 0..STUCK {
        pebble
            .add_a(&format!("stuck{i}.example.test"), "127.0.0.3")
            .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut manifests = issuer_yaml(&pebble);
    for i in 0..STUCK {
        manifests.push_str(&certificate_yaml(&format!("stuck{i}")));
    }
    std::fs::write(dir.path().join("certs.yaml"), &manifests).unwrap();
    let local = Local::start_with(
        dir.path(),
        &[
            "--http01-addr",
            &format!("127.0.0.1:{port}"),
            "--concurrency",
            "2",
        ],
    );
    // Every stuck order has presented its challenges and waits on Pebble.
    wait_for(
        "all stuck orders waiting for validation",
        Duration::from_secs(60),
        &local,
        || {
            (0..STUCK)
                .all(|i| {
                    std::fs::read_to_string(
                        dir.path()
                            .join(format!("state/certificates/default/stuck{i}.json")),
                    )
                    .is_ok_and(|s| s.contains("\"orderProgress\""))
                })
                .then_some(())
        },
    );
    manifests.push_str(
        "---\napiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: self}\nspec: {selfSigned: {}}\n---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: quick}\nspec:\n  secretName: quick-tls\n  dnsNames: [quick.example.test]\n  privateKey: {algorithm: ECDSA}\n  issuerRef: {name: self, kind: ClusterIssuer}\n",
    );
    std::fs::write(dir.path().join("certs.yaml"), &manifests).unwrap();
    let added = Instant::now();
    wait_for("quick", Duration::from_secs(30), &local, || {
        leaf(&secret(dir.path(), "quick"))
    });
    let took = added.elapsed();
    eprintln!("quick issued {took:?} after its manifest was written, beside {STUCK} hanging validations (poll interval 250 ms)");
    assert!(took < Duration::from_secs(2), "quick took {took:?}");
    let stuck_done = (0..STUCK)
        .filter(|i| {
            secret(dir.path(), &format!("stuck{i}"))
                .join("tls.crt")
                .exists()
        })
        .count();
    assert_eq!(stuck_done, 0, "a hanging validation cannot have succeeded");
}
