//! The ACME issuer against a real Pebble: HTTP-01 and DNS-01 (with BIND9),
//! account keys created once and reused (P-256, and RSA keys registered by
//! another client), failures with the server's own problem, resuming an
//! order after a restart, external account binding, preferred chains and
//! TLS trust. Pebble rejects 5% of nonces throughout, so the retries are
//! exercised by every test.

#[path = "support/bind9.rs"]
mod bind9;
#[path = "support/pebble.rs"]
mod pebble;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certweave::issuers::acme::dns01::{Rfc2136Config, Rfc2136Solver, TsigAlgorithm};
use certweave::issuers::acme::{
    AccountKeyStore, AcmeConfig, AcmeIssuer, ExternalAccountBinding, FileKeyStore, Http01Route,
    Http01Routes, Http01Server, Http01Solver, MemoryKeyStore, OrderRecord, SolverFuture, Solvers,
    Trust,
};
use certweave::model::{
    Bundle, CertificateRequest, Checkpoint, IssueError, Issuer, OrderProgress, RequestOrigin,
};
use certweave::pki::{self, CertInfo, KeyAlgorithm, PrivateKey};
use instant_acme::OrderStatus;
use pebble::{Pebble, PebbleOptions};

/// An HTTP-01 solver on a free loopback port, and a Pebble validating
/// against that port.
async fn http01_setup(
    configure: impl FnOnce(&mut PebbleOptions),
) -> (Pebble, Http01Solver, Http01Server) {
    let solver = Http01Solver::new();
    let server = solver.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut options = PebbleOptions::http01(server.local_addr().port());
    configure(&mut options);
    (Pebble::start(options), solver, server)
}

fn config(pebble: &Pebble) -> AcmeConfig {
    let mut config = AcmeConfig::new(&pebble.directory_url);
    config.trust = Trust::CaBundle(pebble.tls_ca_pem.clone());
    config.email = Some("certs@example.test".into());
    config
}

fn http01(solver: &Http01Solver) -> Solvers {
    Solvers {
        http01: Some(solver.clone()),
        ..Default::default()
    }
}

fn issuer(config: AcmeConfig, store: Arc<dyn AccountKeyStore>, solvers: Solvers) -> AcmeIssuer {
    AcmeIssuer::new(config, store, solvers).unwrap()
}

fn key() -> PrivateKey {
    PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap()
}

fn leaf(bundle: &Bundle) -> CertInfo {
    let ders = pki::parse_pem_chain(&bundle.chain_pem).unwrap();
    CertInfo::parse(&ders[0], 0).unwrap()
}

/// Checks a bundle the way a user would: key, names, validity, and the
/// chain up to the root Pebble says it signs with.
fn assert_good(bundle: &Bundle, request: &CertificateRequest, root: &str) {
    let info = pki::check_bundle(
        &bundle.chain_pem,
        &bundle.key_pem,
        Some(request),
        SystemTime::now(),
    )
    .unwrap();
    let mut names = info.dns_names.clone();
    names.sort();
    let mut want = request.dns_names.clone();
    want.sort();
    assert_eq!(names, want);
    pki::verify_chain_to_root(&bundle.chain_pem, root).unwrap();
    assert_eq!(
        pki::parse_pem_chain(&bundle.chain_pem).unwrap().len(),
        2,
        "leaf and Pebble's intermediate"
    );
}

#[tokio::test]
async fn http01_issues_a_multi_name_certificate_that_verifies_to_pebbles_root() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    let issuer = issuer(
        config(&pebble),
        Arc::new(MemoryKeyStore::default()),
        http01(&solver),
    );
    let request =
        CertificateRequest::for_dns_names(["a.example.test", "b.example.test", "c.example.test"]);
    let key = key();
    let bundle = issuer
        .issue(&request, &key, &RequestOrigin::default())
        .await
        .unwrap();

    assert_good(&bundle, &request, &pebble.root(0).await);
    assert_eq!(
        PrivateKey::from_pem(&bundle.key_pem)
            .unwrap()
            .public_key_der(),
        key.public_key_der()
    );
    assert_eq!(bundle.ca_pem, None, "Pebble does not send its root");
    assert_eq!(solver.active(), 0, "every challenge token was withdrawn");

    // Every request was counted under cert-manager's metric names, one
    // series per kind of resource rather than per order or authorization.
    let text = certweave::metrics::ControllerMetrics::new().render();
    let created = text.lines().find(|l| {
        l.starts_with("certmanager_http_acme_client_request_count{")
            && l.contains("method=\"POST\"")
            && l.contains("path=\"/order-plz\"")
            && l.contains("scheme=\"https\"")
            && l.contains("status=\"201\"")
    });
    assert!(created.is_some(), "no newOrder count in:\n{text}");
    assert!(
        text.contains("certmanager_http_acme_client_request_duration_seconds_bucket{"),
        "{text}"
    );
    for line in text.lines().filter(|l| l.contains("path=\"")) {
        let path = line
            .split("path=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            path.split('/').all(|segment| segment.len() < 16),
            "identifier left in the path label: {line}"
        );
    }
}

#[tokio::test]
async fn many_orders_run_at_once_on_one_solver_port() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    let issuer = Arc::new(issuer(
        config(&pebble),
        Arc::new(MemoryKeyStore::default()),
        http01(&solver),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    let algorithms = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa(2048),
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
    ];
    for (i, algorithm) in algorithms.into_iter().enumerate() {
        let issuer = issuer.clone();
        tasks.spawn(async move {
            let mut request = CertificateRequest::for_dns_names([format!("site{i}.example.test")]);
            request.key_algorithm = algorithm;
            let key = PrivateKey::generate(algorithm).unwrap();
            let bundle = issuer
                .issue(&request, &key, &RequestOrigin::default())
                .await;
            (request, bundle)
        });
    }
    let root = pebble.root(0).await;
    let mut issued = 0;
    while let Some(joined) = tasks.join_next().await {
        let (request, bundle) = joined.unwrap();
        let bundle = bundle.unwrap_or_else(|e| panic!("{}: {e}", request.describe_names()));
        assert_good(&bundle, &request, &root);
        issued += 1;
    }
    assert_eq!(issued, algorithms.len());
    assert_eq!(solver.active(), 0);
}

/// RFC 8555 §6.5: a request refused for its nonce is sent again with the
/// fresh one. With Pebble rejecting half of all good nonces, every step of
/// every order (account, new order, authorizations, challenges, polling,
/// finalize, download) meets runs of rejections; all orders still finish.
#[tokio::test]
async fn orders_finish_while_the_server_rejects_half_of_all_nonces() {
    let (pebble, solver, _server) = http01_setup(|options| {
        options.nonce_reject_percent = Some(50);
    })
    .await;
    let issuer = Arc::new(issuer(
        config(&pebble),
        Arc::new(MemoryKeyStore::default()),
        http01(&solver),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..6 {
        let issuer = issuer.clone();
        tasks.spawn(async move {
            let request = CertificateRequest::for_dns_names([format!("nonce{i}.example.test")]);
            let bundle = issuer
                .issue(&request, &key(), &RequestOrigin::default())
                .await;
            (request, bundle)
        });
    }
    let root = pebble.root(0).await;
    let mut issued = 0;
    while let Some(joined) = tasks.join_next().await {
        let (request, bundle) = joined.unwrap();
        let bundle = bundle.unwrap_or_else(|e| panic!("{}: {e}", request.describe_names()));
        assert_good(&bundle, &request, &root);
        issued += 1;
    }
    assert_eq!(issued, 6);
    let text = certweave::metrics::ControllerMetrics::new().render();
    assert!(
        text.lines().any(
            |l| l.starts_with("certmanager_http_acme_client_request_count{")
                && l.contains("status=\"400\"")
        ),
        "Pebble rejected no nonce; the test proves nothing:\n{text}"
    );
}

/// A signing request made elsewhere (a CertificateRequest's) is ordered
/// and finalized as it is: the certificate carries its key, which certweave
/// never sees.
#[tokio::test]
async fn a_signing_request_made_elsewhere_is_ordered_and_finalized_as_it_is() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    let issuer = issuer(
        config(&pebble),
        Arc::new(MemoryKeyStore::default()),
        http01(&solver),
    );
    let owner_key = key();
    let mut params = rcgen::CertificateParams::new(vec![
        "csr.example.test".to_owned(),
        "www.csr.example.test".to_owned(),
    ])
    .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr_pem = params
        .serialize_request(owner_key.key_pair())
        .unwrap()
        .pem()
        .unwrap();
    let (csr, content) = pki::parse_csr(csr_pem.as_bytes()).unwrap();
    let request = CertificateRequest::for_dns_names(content.dns_names);
    let bundle = issuer
        .sign_csr(&request, &csr, &RequestOrigin::default())
        .await
        .unwrap();
    assert!(bundle.key_pem.is_empty());
    let info = pki::check_chain(
        &bundle.chain_pem,
        &owner_key.public_key_der(),
        Some(&request),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(info.dns_names.len(), 2);
    pki::verify_chain_to_root(&bundle.chain_pem, &pebble.root(0).await).unwrap();
    assert_eq!(solver.active(), 0);
}

#[tokio::test]
async fn the_account_key_is_created_once_and_reused_without_a_new_account() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("acme/account.key");

    let first = issuer(
        config(&pebble),
        Arc::new(FileKeyStore::new(&key_file)),
        http01(&solver),
    );
    let account = first.account().await.unwrap();
    assert!(account.key_generated && account.created, "{account:?}");
    let stored = std::fs::read_to_string(&key_file).unwrap();
    assert!(stored.starts_with("-----BEGIN PRIVATE KEY-----"));
    let request = CertificateRequest::for_dns_names(["reuse.example.test"]);
    first
        .issue(&request, &key(), &RequestOrigin::default())
        .await
        .unwrap();
    drop(first);

    // A new process: the same file, the same account; nothing registered.
    let second = issuer(
        config(&pebble),
        Arc::new(FileKeyStore::new(&key_file)),
        http01(&solver),
    );
    let again = second.account().await.unwrap();
    assert_eq!(again.url, account.url);
    assert!(!again.created && !again.key_generated, "{again:?}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), stored);
    let bundle = second
        .issue(&request, &key(), &RequestOrigin::default())
        .await
        .unwrap();
    assert_good(&bundle, &request, &pebble.root(0).await);
}

/// `disableAccountKeyGeneration`: without a stored key the issuer fails
/// with a configuration error and generates nothing; with a key provisioned
/// out of band it finds that key's account.
#[tokio::test]
async fn with_key_generation_disabled_only_a_provided_account_key_is_used() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    let mut disabled = config(&pebble);
    disabled.disable_account_key_generation = true;
    let empty = Arc::new(MemoryKeyStore::default());
    let err = issuer(disabled.clone(), empty.clone(), http01(&solver))
        .account()
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err:?}");
    assert!(
        err.to_string().contains("disableAccountKeyGeneration"),
        "{err}"
    );
    assert_eq!(empty.pem(), None, "no key was generated");

    let registered_with = Arc::new(MemoryKeyStore::default());
    let registered = issuer(config(&pebble), registered_with.clone(), http01(&solver))
        .account()
        .await
        .unwrap();
    let provided = Arc::new(MemoryKeyStore::new(registered_with.pem()));
    let found = issuer(disabled, provided, http01(&solver))
        .account()
        .await
        .unwrap();
    assert_eq!(found.url, registered.url);
    assert!(!found.key_generated && !found.created, "{found:?}");
}

/// cert-manager users bring RSA-2048 PKCS#1 account keys. Here lego
/// registers the account with such a key (an independent client); certweave
/// then finds that same account with the key and issues with it, signing
/// every request RS256.
#[tokio::test]
async fn an_rsa_account_key_registered_by_another_client_keeps_its_account() {
    let port = pebble::free_port();
    let pebble = Pebble::start(PebbleOptions::http01(port));
    let lego_dir = tempfile::tempdir().unwrap();
    let lego = std::process::Command::new("lego")
        .env("LEGO_CA_CERTIFICATES", &pebble.tls_ca_file)
        .args([
            "--accept-tos",
            "--email",
            "migrating@example.test",
            "--server",
            &pebble.directory_url,
            "--key-type",
            "rsa2048",
            "--domains",
            "lego.example.test",
            "--http",
            "--http.port",
            &format!("127.0.0.1:{port}"),
            "--path",
        ])
        .arg(lego_dir.path())
        .arg("run")
        .output()
        .expect("lego is installed (Debian package lego; .ci/test.sh installs it)");
    assert!(
        lego.status.success(),
        "lego failed: {}",
        String::from_utf8_lossy(&lego.stderr)
    );
    let (key_pem, account_url) = lego_account(lego_dir.path());
    assert!(key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));

    let solver = Http01Solver::new();
    let _server = solver
        .serve(format!("127.0.0.1:{port}").parse().unwrap())
        .await
        .unwrap();
    let store = Arc::new(MemoryKeyStore::new(Some(key_pem.clone())));
    let issuer = issuer(config(&pebble), store.clone(), http01(&solver));
    let account = issuer.account().await.unwrap();
    assert_eq!(account.url, account_url, "the account lego registered");
    assert!(!account.created && !account.key_generated, "{account:?}");
    assert_eq!(store.pem().unwrap(), key_pem, "the key is kept as it was");

    let request = CertificateRequest::for_dns_names(["rsa-account.example.test"]);
    let bundle = issuer
        .issue(&request, &key(), &RequestOrigin::default())
        .await
        .unwrap();
    assert_good(&bundle, &request, &pebble.root(0).await);
}

/// lego keeps `accounts/<server>/<email>/keys/<email>.key` and the account
/// URL in `account.json`.
fn lego_account(dir: &Path) -> (String, String) {
    let mut key = None;
    let mut url = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "key")
                && path.parent().unwrap().ends_with("keys")
            {
                key = Some(std::fs::read_to_string(&path).unwrap());
            } else if path.file_name().is_some_and(|n| n == "account.json") {
                let json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                url = json["registration"]["uri"].as_str().map(str::to_owned);
            }
        }
    }
    (
        key.expect("lego wrote an account key"),
        url.expect("lego wrote account.json"),
    )
}

#[tokio::test]
async fn a_name_that_cannot_be_validated_fails_with_the_servers_problem() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    // Nothing listens there: Pebble's validation connection is refused.
    pebble.add_a("broken.example.test", "127.0.0.2").await;
    let issuer = issuer(
        config(&pebble),
        Arc::new(MemoryKeyStore::default()),
        http01(&solver),
    );
    let request = CertificateRequest::for_dns_names(["fine.example.test", "broken.example.test"]);
    // What the caller is told while the order runs: where to resume, the
    // names pending, then which name failed, with which challenge and why.
    let told = std::sync::Mutex::new(Vec::new());
    let save = |checkpoint: Checkpoint| -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        told.lock().unwrap().push(checkpoint);
        Box::pin(async {})
    };
    let err = issuer
        .issue_resumable(&request, &key(), &RequestOrigin::default(), None, &save)
        .await
        .unwrap_err();
    let told = told.into_inner().unwrap();
    assert!(
        matches!(told.first(), Some(Checkpoint::Resume(_))),
        "{told:?}"
    );
    let progress: Vec<&OrderProgress> = told
        .iter()
        .filter_map(|c| match c {
            Checkpoint::Progress(p) => Some(p),
            Checkpoint::Resume(_) => None,
        })
        .collect();
    let [pending, failed] = progress[..] else {
        panic!("expected two progress reports, got {progress:?}");
    };
    assert_eq!(pending.state, "pending");
    assert!(pending
        .authorizations
        .iter()
        .all(|a| a.challenge == "http-01" && a.state == "pending"));
    assert_eq!(failed.state, "invalid");
    let broken = failed
        .authorizations
        .iter()
        .find(|a| a.identifier == "broken.example.test")
        .unwrap();
    assert_eq!(
        (broken.challenge.as_str(), broken.state.as_str()),
        ("http-01", "invalid")
    );
    assert!(
        broken.error.as_deref().unwrap().contains("127.0.0.2"),
        "{broken:?}"
    );
    let fine = failed
        .authorizations
        .iter()
        .find(|a| a.identifier == "fine.example.test")
        .unwrap();
    assert_eq!(fine.error, None, "{fine:?}");
    let IssueError::ChallengeFailed(problem) = &err else {
        panic!("expected a challenge failure, got {err:?}");
    };
    let (name, kind, detail) = problem
        .subproblems
        .iter()
        .find(|(name, _, _)| name == "broken.example.test")
        .unwrap_or_else(|| panic!("no subproblem for the broken name: {problem}"));
    assert_eq!(name, "broken.example.test");
    assert!(kind.starts_with("urn:ietf:params:acme:error:"), "{problem}");
    assert!(detail.contains("127.0.0.2"), "{problem}");
    assert!(!problem
        .subproblems
        .iter()
        .any(|(name, _, _)| name == "fine.example.test"));
    let text = err.to_string();
    assert!(
        text.contains("validation failed for broken.example.test"),
        "{text}"
    );
    assert_eq!(solver.active(), 0);
}

/// Routes that open and close without error but say, as a cluster with no
/// routable Pod IP does, that validations cannot reach this process.
struct UnroutableRoutes;

impl Http01Routes for UnroutableRoutes {
    fn open<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a Http01Route,
        _: &'a RequestOrigin,
    ) -> SolverFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    fn close<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
        _: &'a Http01Route,
        _: &'a RequestOrigin,
    ) -> SolverFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    fn unroutable(&self) -> Option<&str> {
        Some("POD_IP is not set: HTTP-01 challenge Services get no endpoints")
    }
}

#[tokio::test]
async fn a_failed_validation_names_an_unroutable_route_as_its_likely_cause() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    pebble.add_a("unrouted.example.test", "127.0.0.2").await;
    let solvers = Solvers {
        routes: Some(Arc::new(UnroutableRoutes)),
        ..http01(&solver)
    };
    let issuer = issuer(
        config(&pebble),
        Arc::new(MemoryKeyStore::default()),
        solvers,
    );
    let request = CertificateRequest::for_dns_names(["unrouted.example.test"]);
    let err = issuer
        .issue(&request, &key(), &RequestOrigin::default())
        .await
        .unwrap_err();
    let IssueError::ChallengeFailed(problem) = &err else {
        panic!("expected a challenge failure, got {err:?}");
    };
    assert!(
        problem
            .detail
            .contains("(likely cause: POD_IP is not set: HTTP-01 challenge Services"),
        "{problem}"
    );
}

/// Open an order and solve it, stop before finalizing (a restart), then
/// resume from the persisted record in a new issuer with a new solver
/// server: the certificate comes from the same order.
#[tokio::test]
async fn an_order_is_resumed_from_its_record_after_a_restart() {
    let (pebble, solver, server) = http01_setup(|_| {}).await;
    let port = server.local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("account.key");
    let request = CertificateRequest::for_dns_names(["resume.example.test", "www.example.test"]);

    let record_json = {
        let before = issuer(
            config(&pebble),
            Arc::new(FileKeyStore::new(&key_file)),
            http01(&solver),
        );
        let record = before
            .open_order(&request, &key(), &RequestOrigin::default())
            .await
            .unwrap();
        before
            .authorize(&record, &RequestOrigin::default())
            .await
            .unwrap();
        serde_json::to_string(&record).unwrap()
    };
    drop(server);
    drop(solver);

    let record: OrderRecord = serde_json::from_str(&record_json).unwrap();
    let account_key = std::fs::read_to_string(&key_file).unwrap();
    let view = pebble.account_view(&record.account_url, &account_key).await;
    let mut order = view.order(record.order_url.clone()).await.unwrap();
    assert_eq!(
        order.state().status,
        OrderStatus::Ready,
        "validated, not finalized"
    );

    // The "restarted" process.
    let solver = Http01Solver::new();
    let _server = bind_again(&solver, port).await;
    let after = issuer(
        config(&pebble),
        Arc::new(FileKeyStore::new(&key_file)),
        http01(&solver),
    );
    let bundle = after
        .resume(&record, &request, &RequestOrigin::default())
        .await
        .unwrap();
    assert_good(&bundle, &request, &pebble.root(0).await);
    assert_eq!(
        leaf(&bundle).spki_der,
        PrivateKey::from_pem(&record.private_key)
            .unwrap()
            .public_key_der(),
        "signed for the key stored with the order"
    );

    let mut order = view.order(record.order_url.clone()).await.unwrap();
    assert_eq!(order.state().status, OrderStatus::Valid);
    let from_order = order.certificate().await.unwrap().unwrap();
    assert_eq!(
        pki::parse_pem_chain(&from_order).unwrap()[0],
        pki::parse_pem_chain(&bundle.chain_pem).unwrap()[0],
        "the certificate of the recorded order"
    );

    // Resuming a finished order again just fetches its certificate.
    let again = after
        .resume(&record, &request, &RequestOrigin::default())
        .await
        .unwrap();
    assert_eq!(again.chain_pem, bundle.chain_pem);
    // A record for other names is refused rather than finalized.
    let other = CertificateRequest::for_dns_names(["resume.example.test"]);
    let err = after
        .resume(&record, &other, &RequestOrigin::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("open a new order"), "{err}");
}

/// A crash while the CA validates: the stored order failed because no
/// process answered its challenge. Resuming it opens one new order at
/// once (not a failure with an hour's backoff), and that one is issued.
#[tokio::test]
async fn an_order_that_failed_while_nobody_answered_is_replaced_when_resumed() {
    let (pebble, solver, server) = http01_setup(|_| {}).await;
    let port = server.local_addr().port();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("account.key");
    let request = CertificateRequest::for_dns_names(["crash.example.test"]);
    let before = issuer(
        config(&pebble),
        Arc::new(FileKeyStore::new(&key_file)),
        http01(&solver),
    );
    let record = before
        .open_order(&request, &key(), &RequestOrigin::default())
        .await
        .unwrap();
    // The process is gone: nothing answers on the solver port.
    drop(server);
    let failed = before
        .authorize(&record, &RequestOrigin::default())
        .await
        .unwrap_err();
    assert!(matches!(failed, IssueError::ChallengeFailed(_)), "{failed}");

    // The restarted process resumes from the stored record.
    let _server = bind_again(&solver, port).await;
    let after = issuer(
        config(&pebble),
        Arc::new(FileKeyStore::new(&key_file)),
        http01(&solver),
    );
    let told = std::sync::Mutex::new(Vec::new());
    let save = |checkpoint: Checkpoint| -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        told.lock().unwrap().push(checkpoint);
        Box::pin(async {})
    };
    let bundle = after
        .issue_resumable(
            &request,
            &key(),
            &RequestOrigin::default(),
            Some(serde_json::to_value(&record).unwrap()),
            &save,
        )
        .await
        .unwrap();
    assert_good(&bundle, &request, &pebble.root(0).await);
    let new_orders: Vec<String> = told
        .into_inner()
        .unwrap()
        .into_iter()
        .filter_map(|c| match c {
            Checkpoint::Resume(value) => Some(value["orderUrl"].as_str().unwrap_or("").to_owned()),
            Checkpoint::Progress(_) => None,
        })
        .collect();
    assert_eq!(new_orders.len(), 1, "exactly one new order: {new_orders:?}");
    assert_ne!(new_orders[0], record.order_url);
}

async fn bind_again(solver: &Http01Solver, port: u16) -> Http01Server {
    for _ in 0..100 {
        if let Ok(server) = solver
            .serve(format!("127.0.0.1:{port}").parse().unwrap())
            .await
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("port {port} did not become free again");
}

#[tokio::test]
async fn external_account_binding_is_required_and_then_honoured() {
    const KID: &str = "kid-1";
    const HMAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let (pebble, solver, _server) = http01_setup(|o| o.eab = Some((KID.into(), HMAC.into()))).await;
    let store = Arc::new(MemoryKeyStore::default());

    let without = issuer(config(&pebble), store.clone(), http01(&solver));
    let err = without.account().await.unwrap_err();
    assert!(matches!(err, IssueError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("--eab-kid"), "{err}");
    let key_pem = store.pem().expect("the key was stored before registering");

    let mut with_binding = config(&pebble);
    with_binding.external_account_binding = Some(ExternalAccountBinding::new(KID, HMAC).unwrap());
    let with = issuer(with_binding, store.clone(), http01(&solver));
    let account = with.account().await.unwrap();
    assert!(account.created && !account.key_generated, "{account:?}");
    assert_eq!(store.pem().unwrap(), key_pem, "the same key, not a new one");
    let request = CertificateRequest::for_dns_names(["eab.example.test"]);
    with.issue(&request, &key(), &RequestOrigin::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn preferred_chain_picks_the_chain_of_the_named_root() {
    let (pebble, solver, _server) = http01_setup(|o| o.alternate_roots = 1).await;
    let roots = [pebble.root(0).await, pebble.root(1).await];
    let common_names: Vec<String> = roots
        .iter()
        .map(|pem| {
            let der = &pki::parse_pem_chain(pem).unwrap()[0];
            CertInfo::parse(der, 0).unwrap().subject_cn.unwrap()
        })
        .collect();
    assert_ne!(common_names[0], common_names[1]);
    let store: Arc<dyn AccountKeyStore> = Arc::new(MemoryKeyStore::default());
    for (index, root) in roots.iter().enumerate().rev() {
        let mut config = config(&pebble);
        config.preferred_chain = Some(common_names[index].clone());
        let issuer = issuer(config, store.clone(), http01(&solver));
        let request = CertificateRequest::for_dns_names([format!("chain{index}.example.test")]);
        let bundle = issuer
            .issue(&request, &key(), &RequestOrigin::default())
            .await
            .unwrap();
        assert_good(&bundle, &request, root);
        let other = &roots[1 - index];
        assert!(
            pki::verify_chain_to_root(&bundle.chain_pem, other).is_err(),
            "chain {index} must not lead to the other root"
        );
    }
}

#[tokio::test]
async fn the_acme_servers_certificate_must_be_trusted_unless_told_otherwise() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    let mut public = config(&pebble);
    public.trust = Trust::PublicRoots;
    let err = issuer(public, Arc::new(MemoryKeyStore::default()), http01(&solver))
        .account()
        .await
        .unwrap_err();
    assert!(matches!(err, IssueError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("--acme-ca-bundle"), "{err}");

    let mut skip = config(&pebble);
    skip.trust = Trust::InsecureSkipVerify;
    let account = issuer(skip, Arc::new(MemoryKeyStore::default()), http01(&solver))
        .account()
        .await
        .unwrap();
    assert!(account.created);
}

/// A wildcard and its apex in one certificate, validated over DNS-01: the
/// TXT records go into a real BIND9 by RFC 2136, Pebble resolves through
/// that BIND9, and the records are gone afterwards.
#[tokio::test]
async fn dns01_issues_a_wildcard_and_apex_certificate_through_bind() {
    let bind = bind9::Bind9::start();
    let pebble = Pebble::start(PebbleOptions {
        dns_server: Some(bind.addr()),
        ..PebbleOptions::http01(pebble::free_port())
    });
    let solver = Rfc2136Solver::new(Rfc2136Config {
        nameserver: bind.addr(),
        tsig_key_name: bind.key_name.clone(),
        tsig_secret: bind.secret.clone(),
        tsig_algorithm: TsigAlgorithm::HmacSha256,
        tcp: false,
    })
    .unwrap();
    let issuer = issuer(
        config(&pebble),
        Arc::new(MemoryKeyStore::default()),
        Solvers {
            dns01: Some(Arc::new(solver)),
            ..Default::default()
        },
    );
    let request = CertificateRequest::for_dns_names(["example.test", "*.example.test"]);
    let bundle = issuer
        .issue(&request, &key(), &RequestOrigin::default())
        .await
        .unwrap();
    assert_good(&bundle, &request, &pebble.root(0).await);
    assert!(
        bind.txt("_acme-challenge.example.test").is_empty(),
        "records left behind: {:?}",
        bind.txt("_acme-challenge.example.test")
    );
}

/// `acme.profile` is sent with the new order (Pebble's `shortlived` profile
/// gives six days instead of ninety), and a profile the server does not
/// offer fails with the server's own word, naming the profile.
#[tokio::test]
async fn the_profile_is_asked_for_and_an_unknown_one_fails_with_the_servers_problem() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    let mut short = config(&pebble);
    short.profile = Some("shortlived".into());
    let request = CertificateRequest::for_dns_names(["short.example.test"]);
    let bundle = issuer(short, Arc::new(MemoryKeyStore::default()), http01(&solver))
        .issue(&request, &key(), &RequestOrigin::default())
        .await
        .unwrap();
    let info = leaf(&bundle);
    let lifetime = info.not_after.duration_since(info.not_before).unwrap();
    let day = Duration::from_secs(86_400);
    assert!(
        lifetime > 5 * day && lifetime < 7 * day,
        "shortlived is six days: {lifetime:?}"
    );

    let mut unknown = config(&pebble);
    unknown.profile = Some("no-such-profile".into());
    let err = issuer(
        unknown,
        Arc::new(MemoryKeyStore::default()),
        http01(&solver),
    )
    .issue(&request, &key(), &RequestOrigin::default())
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("no-such-profile"), "{message}");
    assert!(
        !err.is_transient(),
        "retrying an unknown profile cannot help: {message}"
    );
}

/// ACME renewal information (RFC 9773) from Pebble: a window inside the
/// certificate's life, a renewal that names the certificate it replaces
/// (accepted once), and a second claim on the same certificate refused by
/// the server and ordered without it.
#[tokio::test]
async fn renewal_information_and_replacement_orders() {
    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    let issuer = issuer(
        config(&pebble),
        Arc::new(MemoryKeyStore::default()),
        http01(&solver),
    );
    let request = CertificateRequest::for_dns_names(["ari.example.test"]);
    let first = issuer
        .issue(&request, &key(), &RequestOrigin::default())
        .await
        .unwrap();
    let info = leaf(&first);
    let window = issuer
        .renewal_window(&first.chain_pem)
        .await
        .unwrap()
        .expect("Pebble 2.10 serves renewal information");
    assert!(
        info.not_before <= window.start
            && window.start < window.end
            && window.end <= info.not_after,
        "{window:?} inside {:?}..{:?}",
        info.not_before,
        info.not_after
    );
    assert!(window.check_again > SystemTime::now());

    let replaced = pki::ari_certificate_id(&first.chain_pem).expect("Pebble's leaves have an AKI");
    let origin = RequestOrigin {
        replaces: Some(replaced.clone()),
        ..Default::default()
    };
    let record = issuer.open_order(&request, &key(), &origin).await.unwrap();
    assert_eq!(
        record.replaces.as_deref(),
        Some(replaced.as_str()),
        "accepted as the replacement"
    );
    // Once the replacement is issued, the old certificate counts as
    // replaced (Pebble records it right after finalization).
    issuer.resume(&record, &request, &origin).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = issuer.open_order(&request, &key(), &origin).await.unwrap();
    assert_eq!(
        again.replaces, None,
        "already replaced: ordered without the claim"
    );

    // A window moved into the past (a CA about to revoke) is what the
    // server answers next.
    pebble
        .set_renewal_window(
            &first.chain_pem,
            "2020-01-01T00:00:00Z",
            "2020-01-02T00:00:00Z",
        )
        .await;
    let moved = issuer
        .renewal_window(&first.chain_pem)
        .await
        .unwrap()
        .unwrap();
    assert!(moved.end < SystemTime::now());
}

/// The engine with a real ACME server: after issuance it asks for renewal
/// information, sets the renewal time inside the suggested window and keeps
/// it while the answer holds; when the server moves the window into the
/// past, the next check renews at once, as a replacement of the old
/// certificate.
#[tokio::test]
async fn the_engine_renews_inside_the_servers_window_and_when_it_moves() {
    use certweave::engine::reconcile::{reconcile, Managed};
    use certweave::model::{KeyRotation, RenewBefore};
    use certweave::store::fs::FsStore;
    use certweave::store::{ObjectKey, Store};

    let (pebble, solver, _server) = http01_setup(|_| {}).await;
    let issuer = issuer(
        config(&pebble),
        Arc::new(MemoryKeyStore::default()),
        http01(&solver),
    );
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::new(dir.path());
    let mut request = CertificateRequest::for_dns_names(["engine.example.test"]);
    request.key_algorithm = KeyAlgorithm::EcdsaP256;
    let managed = Managed {
        certificate: ObjectKey::new("default", "web"),
        secret: ObjectKey::new("default", "web-tls"),
        request,
        renew_before: RenewBefore::Default,
        rotation: KeyRotation::Always,
        issuer_kind: "ClusterIssuer".into(),
        issuer_name: "acme".into(),
        issuer_group: "cert-manager.io".into(),
        origin: RequestOrigin::default(),
        secret_labels: Default::default(),
        secret_annotations: Default::default(),
        output_formats: Default::default(),
        renew_now: false,
    };
    let step = || reconcile(&store, &managed, Ok(&issuer), SystemTime::now());

    assert!(step().await.unwrap().issued);
    let checked = step().await.unwrap();
    assert!(!checked.issued);
    let ari = checked
        .state
        .ari
        .clone()
        .expect("renewal information recorded");
    let renewal = checked.state.renewal_time.unwrap();
    assert!(
        ari.window_start.unwrap() <= renewal && renewal <= ari.window_end.unwrap(),
        "{ari:?}"
    );
    assert_eq!(ari.renewal_time, Some(renewal));
    assert!(checked.next <= ari.check_again.unwrap());
    assert_eq!(
        step().await.unwrap().state.ari,
        Some(ari),
        "kept while the answer holds"
    );

    let chain =
        std::fs::read_to_string(dir.path().join("secrets/default/web-tls/tls.crt")).unwrap();
    pebble
        .set_renewal_window(&chain, "2020-01-01T00:00:00Z", "2020-01-01T01:00:00Z")
        .await;
    // Time passes until the recorded answer says to ask again.
    let mut state = store
        .read_state(&managed.certificate)
        .await
        .unwrap()
        .unwrap();
    state.ari.as_mut().unwrap().check_again = Some(SystemTime::now() - Duration::from_secs(1));
    store
        .write_state(&managed.certificate, &state)
        .await
        .unwrap();
    let renewed = step().await.unwrap();
    assert!(renewed.issued, "{:?}", renewed.error);
    assert!(
        renewed
            .issuing_because
            .as_deref()
            .unwrap()
            .contains("renewal window"),
        "{:?}",
        renewed.issuing_because
    );
    let new_chain =
        std::fs::read_to_string(dir.path().join("secrets/default/web-tls/tls.crt")).unwrap();
    assert_ne!(new_chain, chain);
}
