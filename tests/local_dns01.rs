//! `certweave local` with a hosted DNS-01 provider: a ClusterIssuer with
//! cert-manager's `route53` solver, its keys in a Secret manifest beside
//! it, against moto (a real AWS emulator serving the Route53 API) and a
//! real Pebble. moto serves no DNS, so what it holds at the challenge name
//! is mirrored into the challtestsrv Pebble resolves through, and
//! `certweave local` checks records there
//! (`--dns01-recursive-nameservers-only`).

#[path = "support/local_process.rs"]
mod local_process;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/pebble.rs"]
mod pebble;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use certweave::pki;

use local_process::{leaf, secret_dir, wait_for, Local};
use moto::Moto;
use pebble::{free_port, Pebble, PebbleOptions};

const ZONE: &str = "local.example";
const CHALLENGE: &str = "_acme-challenge.local.example";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn manifests(pebble: &Pebble) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: route53-keys}}
stringData:
  access-key-id: AKIAIOSFODNN7EXAMPLE
  secret-access-key: {SECRET_ACCESS_KEY}
---
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {{name: route53}}
spec:
  acme:
    server: {server}
    email: ops@example.test
    caBundle: {ca}
    privateKeySecretRef: {{name: route53-account}}
    solvers:
    - dns01:
        route53:
          region: eu-west-1
          accessKeyIDSecretRef: {{name: route53-keys, key: access-key-id}}
          secretAccessKeySecretRef: {{name: route53-keys, key: secret-access-key}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {{name: wildcard}}
spec:
  secretName: wildcard-tls
  dnsNames: ["{ZONE}", "*.{ZONE}"]
  issuerRef: {{name: route53, kind: ClusterIssuer}}
"#,
        server = pebble.directory_url,
        ca = base64::engine::general_purpose::STANDARD.encode(&pebble.tls_ca_pem),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_is_issued_through_route53_from_a_directory() {
    let moto = Arc::new(Moto::start(free_port()));
    let zone_id = moto.create_zone(ZONE, false).await;
    let pebble = Pebble::start(PebbleOptions::http01(free_port()));
    let root_pem = pebble.root(0).await;
    let mirror = pebble::mirror_txt(
        pebble.challtestsrv_management().unwrap(),
        CHALLENGE.into(),
        moto.txt_reader(&zone_id, CHALLENGE),
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("certs.yaml"), manifests(&pebble)).unwrap();
    let nameserver = pebble.dns_server.to_string();
    let local = Local::start_with_env(
        dir.path(),
        &[
            "--dns01-recursive-nameservers",
            &nameserver,
            "--dns01-recursive-nameservers-only",
            "--dns01-propagation-timeout",
            "30",
        ],
        &[("AWS_ENDPOINT_URL", moto.endpoint.as_str())],
    );
    let secret = secret_dir(dir.path(), "default", "wildcard-tls");
    let issued = wait_for(
        "the wildcard certificate",
        Duration::from_secs(90),
        &local,
        || leaf(&secret),
    );
    let mut names = issued.dns_names.clone();
    names.sort();
    assert_eq!(names, ["*.local.example", "local.example"]);
    let chain = std::fs::read_to_string(secret.join("tls.crt")).unwrap();
    pki::verify_chain_to_root(&chain, &root_pem).unwrap();

    // Both challenge values are cleaned up from Route53 afterwards.
    let mut left = moto.txt(&zone_id, CHALLENGE).await;
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = moto.txt(&zone_id, CHALLENGE).await;
    }
    assert!(left.is_empty(), "records left in Route53: {left:?}");
    mirror.abort();
    let log = local.log();
    assert!(
        !log.contains(SECRET_ACCESS_KEY),
        "the secret key must never be logged"
    );
    local.terminate_cleanly();
}
