//! Keys, bundles and the SelfSigned / CA issuers, checked both ways: what
//! certweave writes must be readable by OpenSSL, what OpenSSL writes must
//! load, and `check_bundle` must catch each way a stored bundle goes bad —
//! it is what decides "re-issue now".

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use certweave::issuers::ca::CaIssuer;
use certweave::issuers::selfsigned::SelfSignedIssuer;
use certweave::model::IssueError;
use certweave::model::{Bundle, CertificateRequest};
use certweave::pki::{
    self, BundleProblem, CertInfo, KeyAlgorithm, KeyEncoding, KeyError, PrivateKey,
};

const ALGORITHMS: [KeyAlgorithm; 5] = [
    KeyAlgorithm::EcdsaP256,
    KeyAlgorithm::EcdsaP384,
    KeyAlgorithm::Rsa(2048),
    KeyAlgorithm::Rsa(4096),
    KeyAlgorithm::Ed25519,
];

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Runs `openssl` with `stdin`, returning stdout; panics with its stderr.
fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn first_label(pem: &str) -> &str {
    pem.lines()
        .next()
        .and_then(|l| l.strip_prefix("-----BEGIN "))
        .and_then(|l| l.strip_suffix("-----"))
        .unwrap_or_else(|| panic!("not PEM: {pem}"))
}

fn request(names: &[&str], algorithm: KeyAlgorithm) -> CertificateRequest {
    let mut request = CertificateRequest::for_dns_names(names.iter().copied());
    request.key_algorithm = algorithm;
    request
}

fn ca_request(cn: &str, duration: Duration) -> CertificateRequest {
    let mut request = CertificateRequest::for_dns_names(Vec::<String>::new());
    request.common_name = Some(cn.into());
    request.is_ca = true;
    request.duration = duration;
    request
}

/// A self-signed root CA: its bundle and its key.
fn root_ca(cn: &str, duration: Duration) -> (Bundle, PrivateKey) {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let bundle = SelfSignedIssuer::default()
        .sign(&ca_request(cn, duration), &key)
        .unwrap();
    (bundle, key)
}

fn leaf_info(bundle: &Bundle) -> CertInfo {
    let ders = pki::parse_pem_chain(&bundle.chain_pem).unwrap();
    CertInfo::parse(&ders[0], 0).unwrap()
}

#[test]
fn every_algorithm_round_trips_through_pkcs8_and_openssl_reads_it() {
    for algorithm in ALGORITHMS {
        let key = PrivateKey::generate(algorithm).unwrap();
        assert_eq!(key.algorithm(), algorithm);
        let pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
        assert_eq!(first_label(&pem), "PRIVATE KEY", "{algorithm}");
        let back = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(back.algorithm(), algorithm);
        assert_eq!(back.public_key_der(), key.public_key_der(), "{algorithm}");
        // OpenSSL derives the same public key from what we wrote.
        let spki = openssl(&["pkey", "-pubout", "-outform", "DER"], pem.as_bytes());
        assert_eq!(spki, key.public_key_der(), "{algorithm}");
        // Debug output never carries key material.
        assert_eq!(
            format!("{key:?}"),
            format!("PrivateKey({algorithm}, <redacted>)")
        );
    }
}

/// RSA keys come from AWS-LC for the sizes it generates and from the `rsa`
/// crate for the others cert-manager allows: both are the size asked for
/// and pass OpenSSL's consistency check (primes, CRT parameters).
#[test]
fn rsa_keys_of_every_allowed_size_are_sound() {
    for bits in [2048, 2304, 3072] {
        let algorithm = KeyAlgorithm::Rsa(bits);
        let key = PrivateKey::generate(algorithm).unwrap();
        let pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
        assert_eq!(PrivateKey::from_pem(&pem).unwrap().algorithm(), algorithm);
        let text = String::from_utf8(openssl(
            &["pkey", "-check", "-noout", "-text"],
            pem.as_bytes(),
        ))
        .unwrap();
        assert!(
            text.contains("Key is valid") || text.contains("RSA key ok"),
            "{bits}: {text}"
        );
        assert!(text.contains(&format!("({bits} bit")), "{bits}: {text}");
        // Signs a certificate OpenSSL verifies.
        let bundle = SelfSignedIssuer::default()
            .sign(&request(&["rsa.example"], algorithm), &key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, &bundle.chain_pem).unwrap();
        let cert = cert.to_str().unwrap();
        openssl(&["verify", "-CAfile", cert, "-check_ss_sig", cert], b"");
    }
}

#[test]
fn pkcs1_encoding_is_pkcs1_for_rsa_sec1_for_ecdsa_and_refused_for_ed25519() {
    for (algorithm, label) in [
        (KeyAlgorithm::Rsa(2048), "RSA PRIVATE KEY"),
        (KeyAlgorithm::EcdsaP256, "EC PRIVATE KEY"),
        (KeyAlgorithm::EcdsaP384, "EC PRIVATE KEY"),
    ] {
        let key = PrivateKey::generate(algorithm).unwrap();
        let pem = key.to_pem(KeyEncoding::Pkcs1).unwrap();
        assert_eq!(first_label(&pem), label, "{algorithm}");
        let back = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(back.algorithm(), algorithm);
        assert_eq!(back.public_key_der(), key.public_key_der(), "{algorithm}");
        let spki = openssl(&["pkey", "-pubout", "-outform", "DER"], pem.as_bytes());
        assert_eq!(spki, key.public_key_der(), "{algorithm}");
    }
    let ed = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
    match ed.to_pem(KeyEncoding::Pkcs1) {
        Err(e @ KeyError::Encoding { .. }) => {
            let message = e.to_string();
            assert!(message.contains("ed25519"), "{message}");
            assert!(message.contains("PKCS8"), "{message}");
        }
        other => panic!("Ed25519 as PKCS#1 must be refused, got {other:?}"),
    }
}

#[test]
fn keys_written_by_openssl_load() {
    let cases: [(&[&str], KeyAlgorithm); 7] = [
        (
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            KeyAlgorithm::EcdsaP256,
        ),
        (
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
            ],
            KeyAlgorithm::EcdsaP384,
        ),
        (
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            KeyAlgorithm::Rsa(2048),
        ),
        (&["genpkey", "-algorithm", "ed25519"], KeyAlgorithm::Ed25519),
        (&["genrsa", "-traditional", "2048"], KeyAlgorithm::Rsa(2048)),
        (
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
            KeyAlgorithm::EcdsaP256,
        ),
        // Without -noout, ecparam writes an EC PARAMETERS block first: the
        // common "openssl ecparam -genkey -out ca.key" recipe.
        (
            &["ecparam", "-name", "secp384r1", "-genkey"],
            KeyAlgorithm::EcdsaP384,
        ),
    ];
    for (args, algorithm) in cases {
        let pem = String::from_utf8(openssl(args, b"")).unwrap();
        let key =
            PrivateKey::from_pem(&pem).unwrap_or_else(|e| panic!("openssl {args:?}: {e}\n{pem}"));
        assert_eq!(key.algorithm(), algorithm, "openssl {args:?}");
        let spki = openssl(&["pkey", "-pubout", "-outform", "DER"], pem.as_bytes());
        assert_eq!(key.public_key_der(), spki, "openssl {args:?}");
        // A loaded key signs: a self-signed certificate with it checks out.
        let req = request(&["openssl.example"], algorithm);
        let bundle = SelfSignedIssuer::default().sign(&req, &key).unwrap();
        pki::check_bundle(&bundle.chain_pem, &pem, Some(&req), SystemTime::now()).unwrap();
    }
}

#[test]
fn unusable_key_files_are_refused_with_a_reason() {
    for (pem, expect) in [
        ("", "no PEM block"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "expected a private key",
        ),
    ] {
        match PrivateKey::from_pem(pem) {
            Err(KeyError::BadKey(message)) => assert!(message.contains(expect), "{message}"),
            other => panic!("{pem:?}: {other:?}"),
        }
    }
    let p521 = String::from_utf8(openssl(
        &["ecparam", "-name", "secp521r1", "-genkey", "-noout"],
        b"",
    ))
    .unwrap();
    let message = PrivateKey::from_pem(&p521).unwrap_err().to_string();
    assert!(message.contains("P-256 or P-384"), "{message}");
    let encrypted = String::from_utf8(openssl(
        &[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-aes256",
            "-pass",
            "pass:secret",
        ],
        b"",
    ))
    .unwrap();
    let message = PrivateKey::from_pem(&encrypted).unwrap_err().to_string();
    assert!(message.contains("encrypted"), "{message}");
}

#[test]
fn selfsigned_bundles_pass_the_checks_for_every_algorithm_and_encoding() {
    for algorithm in ALGORITHMS {
        let key = PrivateKey::generate(algorithm).unwrap();
        let encodings: &[KeyEncoding] = if algorithm == KeyAlgorithm::Ed25519 {
            &[KeyEncoding::Pkcs8]
        } else {
            &[KeyEncoding::Pkcs8, KeyEncoding::Pkcs1]
        };
        for &encoding in encodings {
            let mut req = request(&["app.example", "www.app.example"], algorithm);
            req.key_encoding = encoding;
            req.ip_addresses = vec!["10.1.2.3".parse().unwrap()];
            req.common_name = Some("app.example".into());
            let bundle = SelfSignedIssuer::default().sign(&req, &key).unwrap();
            assert_eq!(bundle.ca_pem.as_deref(), Some(bundle.chain_pem.as_str()));
            let info = pki::check_bundle(
                &bundle.chain_pem,
                &bundle.key_pem,
                Some(&req),
                SystemTime::now(),
            )
            .unwrap();
            assert_eq!(info.dns_names, ["app.example", "www.app.example"]);
            assert_eq!(info.ip_addresses, req.ip_addresses);
            assert!(info.self_signed && !info.is_ca);
            pki::verify_chain_to_root(&bundle.chain_pem, bundle.ca_pem.as_deref().unwrap())
                .unwrap();
            // The lifetime is the requested one (90 days by default).
            let lifetime = info.not_after.duration_since(info.not_before).unwrap();
            assert!(
                lifetime >= 90 * DAY && lifetime <= 90 * DAY + Duration::from_secs(120),
                "{algorithm}: {lifetime:?}"
            );
            // OpenSSL agrees the certificate verifies against itself.
            let dir = tempfile::tempdir().unwrap();
            let cert = dir.path().join("tls.crt");
            std::fs::write(&cert, &bundle.chain_pem).unwrap();
            let cert = cert.to_str().unwrap();
            openssl(&["verify", "-CAfile", cert, cert], b"");
        }
    }
}

/// root → intermediate → leaf, built with the issuers under test.
struct ThreeLevels {
    root: Bundle,
    intermediate: Bundle,
    leaf: Bundle,
    request: CertificateRequest,
}

fn three_levels(leaf_algorithm: KeyAlgorithm) -> ThreeLevels {
    let (root, root_key) = root_ca("Test Root", 365 * DAY);
    let root_issuer = CaIssuer::from_pem(
        &root.chain_pem,
        &root_key.to_pem(KeyEncoding::Pkcs8).unwrap(),
    )
    .unwrap();
    let intermediate_key = PrivateKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
    let intermediate = root_issuer
        .sign(
            &ca_request("Test Intermediate", 180 * DAY),
            &intermediate_key,
        )
        .unwrap();
    // The intermediate's bundle is itself + nothing (the root is ca.crt).
    assert_eq!(
        pki::parse_pem_chain(&intermediate.chain_pem).unwrap().len(),
        1
    );
    assert_eq!(
        intermediate.ca_pem.as_deref(),
        Some(root.chain_pem.as_str())
    );

    // A CA file holding the intermediate followed by its root.
    let ca_file = format!("{}{}", intermediate.chain_pem, root.chain_pem);
    let issuer = CaIssuer::from_pem(&ca_file, &intermediate.key_pem).unwrap();
    let request = request(&["shop.example", "*.shop.example"], leaf_algorithm);
    let key = PrivateKey::generate(leaf_algorithm).unwrap();
    let leaf = issuer.sign(&request, &key).unwrap();
    ThreeLevels {
        root,
        intermediate,
        leaf,
        request,
    }
}

#[test]
fn ca_bundles_carry_the_intermediate_and_verify_to_the_root() {
    for algorithm in ALGORITHMS {
        let t = three_levels(algorithm);
        let chain = pki::parse_pem_chain(&t.leaf.chain_pem).unwrap();
        assert_eq!(chain.len(), 2, "leaf + intermediate, no root in tls.crt");
        assert_eq!(t.leaf.ca_pem.as_deref(), Some(t.root.chain_pem.as_str()));
        let info = pki::check_bundle(
            &t.leaf.chain_pem,
            &t.leaf.key_pem,
            Some(&t.request),
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(info.issuer_cn.as_deref(), Some("Test Intermediate"));
        assert!(!info.is_ca);
        pki::verify_chain_to_root(&t.leaf.chain_pem, &t.root.chain_pem).unwrap();

        // OpenSSL builds the same path.
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str, body: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            p.to_str().unwrap().to_owned()
        };
        let root = path("ca.crt", &t.root.chain_pem);
        let intermediate = path("intermediate.crt", &t.intermediate.chain_pem);
        let leaf = path("leaf.crt", &t.leaf.chain_pem);
        openssl(
            &[
                "verify",
                "-CAfile",
                &root,
                "-untrusted",
                &intermediate,
                &leaf,
            ],
            b"",
        );
    }
}

#[test]
fn a_chain_to_another_root_is_untrusted() {
    let t = three_levels(KeyAlgorithm::EcdsaP256);
    let (other_root, _) = root_ca("Other Root", 365 * DAY);
    match pki::verify_chain_to_root(&t.leaf.chain_pem, &other_root.chain_pem) {
        Err(BundleProblem::Untrusted(message)) => {
            // The top of the chain names its issuer, which was not given.
            assert!(message.contains("Test Root"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn check_bundle_catches_a_key_that_is_not_the_certificates() {
    let t = three_levels(KeyAlgorithm::EcdsaP256);
    let other = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let result = pki::check_bundle(
        &t.leaf.chain_pem,
        &other.to_pem(KeyEncoding::Pkcs8).unwrap(),
        Some(&t.request),
        SystemTime::now(),
    );
    assert_eq!(result.unwrap_err(), BundleProblem::KeyMismatch);
    // Same for a key of another algorithm.
    let rsa = PrivateKey::generate(KeyAlgorithm::Rsa(2048)).unwrap();
    let result = pki::check_bundle(
        &t.leaf.chain_pem,
        &rsa.to_pem(KeyEncoding::Pkcs1).unwrap(),
        None,
        SystemTime::now(),
    );
    assert_eq!(result.unwrap_err(), BundleProblem::KeyMismatch);
}

#[test]
fn check_bundle_catches_a_chain_out_of_order() {
    let t = three_levels(KeyAlgorithm::EcdsaP256);
    let now = SystemTime::now();
    // leaf, root, intermediate: the leaf is not signed by the next one.
    let shuffled = format!(
        "{}{}{}",
        t.leaf
            .chain_pem
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap(),
        t.root.chain_pem,
        t.intermediate.chain_pem
    );
    assert_eq!(
        pki::check_bundle(&shuffled, &t.leaf.key_pem, Some(&t.request), now).unwrap_err(),
        BundleProblem::BrokenChain { index: 0, next: 1 }
    );
    // leaf, intermediate, root is fine (the root may be included)...
    let full = format!("{}{}", t.leaf.chain_pem, t.root.chain_pem);
    pki::check_bundle(&full, &t.leaf.key_pem, Some(&t.request), now).unwrap();
    pki::verify_chain_to_root(&full, &t.root.chain_pem).unwrap();
    // ...but leaf, intermediate, unrelated CA is broken at the second link.
    let (other_root, _) = root_ca("Other Root", 365 * DAY);
    let wrong_top = format!("{}{}", t.leaf.chain_pem, other_root.chain_pem);
    assert_eq!(
        pki::check_bundle(&wrong_top, &t.leaf.key_pem, Some(&t.request), now).unwrap_err(),
        BundleProblem::BrokenChain { index: 1, next: 2 }
    );
    // Written root first, the first certificate is the root, which the
    // leaf's key does not match.
    let reversed = format!(
        "{}{}{}",
        t.root.chain_pem,
        t.intermediate.chain_pem,
        t.leaf
            .chain_pem
            .split_inclusive("-----END CERTIFICATE-----\n")
            .next()
            .unwrap()
    );
    assert_eq!(
        pki::check_bundle(&reversed, &t.leaf.key_pem, Some(&t.request), now).unwrap_err(),
        BundleProblem::KeyMismatch
    );
}

#[test]
fn check_bundle_catches_expired_and_not_yet_valid_certificates() {
    let t = three_levels(KeyAlgorithm::EcdsaP256);
    let info = leaf_info(&t.leaf);
    let check = |at: SystemTime| pki::check_bundle(&t.leaf.chain_pem, &t.leaf.key_pem, None, at);

    assert_eq!(
        check(info.not_after).unwrap_err(),
        BundleProblem::Expired(info.not_after)
    );
    assert_eq!(
        check(info.not_after + DAY).unwrap_err(),
        BundleProblem::Expired(info.not_after)
    );
    check(info.not_after - Duration::from_secs(1)).unwrap();

    assert_eq!(
        check(info.not_before - Duration::from_secs(1)).unwrap_err(),
        BundleProblem::NotYetValid(info.not_before)
    );
    check(info.not_before).unwrap();
    // Issued with a minute of slack for clocks behind ours.
    assert!(info.not_before <= SystemTime::now() - Duration::from_secs(59));
}

#[test]
fn check_bundle_catches_a_missing_name() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let issued = request(&["a.example"], KeyAlgorithm::EcdsaP256);
    let bundle = SelfSignedIssuer::default().sign(&issued, &key).unwrap();
    let now = SystemTime::now();

    let wanted = request(&["a.example", "b.example"], KeyAlgorithm::EcdsaP256);
    assert_eq!(
        pki::check_bundle(&bundle.chain_pem, &bundle.key_pem, Some(&wanted), now).unwrap_err(),
        BundleProblem::MissingName("b.example".into())
    );
    let mut wanted_ip = issued.clone();
    wanted_ip.ip_addresses = vec!["192.0.2.7".parse().unwrap()];
    assert_eq!(
        pki::check_bundle(&bundle.chain_pem, &bundle.key_pem, Some(&wanted_ip), now).unwrap_err(),
        BundleProblem::MissingName("192.0.2.7".into())
    );
    // DNS names compare case-insensitively.
    let upper = request(&["A.EXAMPLE"], KeyAlgorithm::EcdsaP256);
    pki::check_bundle(&bundle.chain_pem, &bundle.key_pem, Some(&upper), now).unwrap();
}

#[test]
fn check_bundle_reports_empty_and_garbled_files() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let key_pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
    let now = SystemTime::now();
    assert_eq!(
        pki::check_bundle("", &key_pem, None, now).unwrap_err(),
        BundleProblem::Empty
    );
    let garbled = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJ\n-----END CERTIFICATE-----\n";
    assert!(matches!(
        pki::check_bundle(garbled, &key_pem, None, now),
        Err(BundleProblem::Unparsable { index: 0, .. })
    ));
    let bundle = SelfSignedIssuer::default()
        .sign(&request(&["a.example"], KeyAlgorithm::EcdsaP256), &key)
        .unwrap();
    assert!(matches!(
        pki::check_bundle(&bundle.chain_pem, "not a key", None, now),
        Err(BundleProblem::BadKey(_))
    ));
}

#[test]
fn ca_issuer_refuses_a_non_ca_certificate_and_a_foreign_key() {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let leaf = SelfSignedIssuer::default()
        .sign(
            &request(&["not-a-ca.example"], KeyAlgorithm::EcdsaP256),
            &key,
        )
        .unwrap();
    match CaIssuer::from_pem(&leaf.chain_pem, &leaf.key_pem) {
        Err(IssueError::Config(message)) => {
            assert!(message.contains("is not a CA"), "{message}");
            assert!(message.contains("isCA: true"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    let (root, _) = root_ca("Root", 30 * DAY);
    let stranger = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    match CaIssuer::from_pem(
        &root.chain_pem,
        &stranger.to_pem(KeyEncoding::Pkcs8).unwrap(),
    ) {
        Err(IssueError::Config(message)) => {
            assert!(
                message.contains("does not belong to the CA certificate"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }

    match CaIssuer::from_pem("", &root.key_pem) {
        Err(IssueError::Config(message)) => {
            assert!(message.contains("no certificate"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    match CaIssuer::from_pem(&root.chain_pem, "garbage") {
        Err(err @ IssueError::ConfigCause { .. }) => {
            let message = err.to_string();
            assert!(message.contains("CA key"), "{message}");
            let source = std::error::Error::source(&err).expect("the key error is kept");
            assert!(
                source
                    .downcast_ref::<certweave::model::KeyError>()
                    .is_some(),
                "{source:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ca_issued_certificates_never_outlive_the_ca() {
    let (root, root_key) = root_ca("Short-lived Root", 10 * DAY);
    let root_info = leaf_info(&root);
    let issuer = CaIssuer::from_pem(
        &root.chain_pem,
        &root_key.to_pem(KeyEncoding::Pkcs1).unwrap(),
    )
    .unwrap();
    // Asks for 90 days (the default) from a CA that has 10 left.
    let req = request(&["capped.example"], KeyAlgorithm::EcdsaP256);
    let bundle = issuer
        .sign(
            &req,
            &PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        )
        .unwrap();
    let info = leaf_info(&bundle);
    assert!(
        info.not_after <= root_info.not_after,
        "{info:?} vs {root_info:?}"
    );
    assert!(info.not_after + Duration::from_secs(1) >= root_info.not_after);

    // A shorter request is honoured as asked.
    let mut short = req.clone();
    short.duration = DAY;
    let bundle = issuer
        .sign(
            &short,
            &PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        )
        .unwrap();
    let info = leaf_info(&bundle);
    let lifetime = info.not_after.duration_since(info.not_before).unwrap();
    assert!(lifetime <= DAY + Duration::from_secs(60), "{lifetime:?}");
    assert!(info.not_after < root_info.not_after);
}

#[test]
fn csrs_carry_the_names_and_are_signed_by_the_key() {
    for algorithm in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Rsa(2048),
        KeyAlgorithm::Ed25519,
    ] {
        let key = PrivateKey::generate(algorithm).unwrap();
        let mut req = request(&["csr.example", "*.csr.example"], algorithm);
        req.common_name = Some("csr.example".into());
        let der = pki::csr_der(&req, &key).unwrap();
        let text = String::from_utf8(openssl(
            &["req", "-inform", "DER", "-noout", "-verify", "-text"],
            &der,
        ))
        .unwrap();
        assert!(
            text.contains("DNS:csr.example, DNS:*.csr.example"),
            "{text}"
        );
        assert!(
            text.contains("CN = csr.example") || text.contains("CN=csr.example"),
            "{text}"
        );
        let spki = openssl(&["req", "-inform", "DER", "-noout", "-pubkey"], &der);
        let spki = openssl(&["pkey", "-pubin", "-pubout", "-outform", "DER"], &spki);
        assert_eq!(spki, key.public_key_der(), "{algorithm}");
    }
}

/// The CA issuer's `crlDistributionPoints`, `ocspServers` and
/// `issuingCertificateURLs`, and SelfSigned's `crlDistributionPoints`, as
/// OpenSSL reads them from the issued certificates.
#[test]
fn issuer_urls_are_in_the_certificates_as_openssl_reads_them() {
    let (root, root_key) = root_ca("URL Root", 365 * DAY);
    let long = format!("http://pki.example.test/{}", "p".repeat(200));
    let urls = certweave::model::IssuerUrls {
        crl_distribution_points: vec!["http://pki.example.test/root.crl".into()],
        ocsp_servers: vec!["http://ocsp.example.test".into()],
        issuing_certificate_urls: vec!["http://pki.example.test/root.crt".into(), long.clone()],
    };
    let issuer = CaIssuer::from_pem(
        &root.chain_pem,
        &root_key.to_pem(KeyEncoding::Pkcs8).unwrap(),
    )
    .unwrap()
    .with_urls(urls);
    let request = request(&["urls.example.test"], KeyAlgorithm::EcdsaP256);
    let key = || PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let as_text = |bundle: &Bundle| {
        String::from_utf8(openssl(
            &["x509", "-noout", "-text"],
            bundle.chain_pem.as_bytes(),
        ))
        .unwrap()
    };
    let text = as_text(&issuer.sign(&request, &key()).unwrap());
    for want in [
        "X509v3 CRL Distribution Points",
        "URI:http://pki.example.test/root.crl",
        "Authority Information Access",
        "OCSP - URI:http://ocsp.example.test",
        "CA Issuers - URI:http://pki.example.test/root.crt",
        &format!("CA Issuers - URI:{long}"),
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }

    let self_signed = SelfSignedIssuer {
        urls: certweave::model::IssuerUrls {
            crl_distribution_points: vec!["http://pki.example.test/self.crl".into()],
            ..Default::default()
        },
    };
    let text = as_text(&self_signed.sign(&request, &key()).unwrap());
    assert!(
        text.contains("URI:http://pki.example.test/self.crl"),
        "{text}"
    );
    assert!(!text.contains("Authority Information Access"), "{text}");
}

/// `otherNames` (here a Microsoft UPN) in the subject alternative names, as
/// OpenSSL reads them.
#[test]
fn other_names_are_in_the_certificate_as_openssl_reads_them() {
    let mut request = request(&["upn.example.test"], KeyAlgorithm::EcdsaP256);
    request.other_names = vec![certweave::model::OtherName {
        oid: vec![1, 3, 6, 1, 4, 1, 311, 20, 2, 3],
        value: "web@example.test".into(),
    }];
    let bundle = SelfSignedIssuer::default()
        .sign(
            &request,
            &PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
        )
        .unwrap();
    let text = String::from_utf8(openssl(
        &["x509", "-noout", "-ext", "subjectAltName"],
        bundle.chain_pem.as_bytes(),
    ))
    .unwrap();
    assert!(text.contains("web@example.test"), "{text}");
    assert!(text.contains("UPN"), "OpenSSL names the UPN type: {text}");
    assert!(text.contains("DNS:upn.example.test"), "{text}");
}

/// `nameConstraints` on a CA certificate, as OpenSSL reads them, and
/// enforced by OpenSSL's own verification: a leaf inside the permitted
/// domain verifies, one outside does not.
#[test]
fn name_constraints_are_in_the_ca_and_openssl_enforces_them() {
    let mut ca_req = ca_request("Constrained CA", 30 * DAY);
    ca_req.name_constraints = Some(certweave::model::NameConstraints {
        permitted: certweave::model::NameSubtrees {
            dns_domains: vec!["example.test".into()],
            ip_ranges: vec!["10.0.0.0/8".into()],
            ..Default::default()
        },
        excluded: certweave::model::NameSubtrees {
            dns_domains: vec!["bad.example.test".into()],
            ..Default::default()
        },
    });
    let ca_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let ca = SelfSignedIssuer::default().sign(&ca_req, &ca_key).unwrap();
    let text = String::from_utf8(openssl(
        &["x509", "-noout", "-text"],
        ca.chain_pem.as_bytes(),
    ))
    .unwrap();
    for want in [
        "X509v3 Name Constraints: critical",
        "DNS:example.test",
        "IP:10.0.0.0/255.0.0.0",
        "DNS:bad.example.test",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }

    let issuer =
        CaIssuer::from_pem(&ca.chain_pem, &ca_key.to_pem(KeyEncoding::Pkcs8).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, &ca.chain_pem).unwrap();
    let verify = |name: &str| {
        let leaf = issuer
            .sign(
                &request(&[name], KeyAlgorithm::EcdsaP256),
                &PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap(),
            )
            .unwrap();
        let leaf_only =
            &leaf.chain_pem[..leaf.chain_pem.find("-----END CERTIFICATE-----").unwrap() + 25];
        let out = Command::new("openssl")
            .args(["verify", "-CAfile", root.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(leaf_only.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        out.status.success()
    };
    assert!(verify("www.example.test"), "inside the permitted domain");
    assert!(!verify("www.other.test"), "outside the permitted domain");
    assert!(!verify("x.bad.example.test"), "inside the excluded domain");
}

/// A certificate signing request made by OpenSSL (the key never leaves
/// it), parsed and signed by the CA issuer: the certificate carries the
/// request's key and names, and OpenSSL verifies it to the CA and matches
/// it to its own key.
#[test]
fn the_ca_signs_a_request_made_by_openssl_for_its_key() {
    let (root, root_key) = root_ca("Request Root", 30 * DAY);
    let ca = CaIssuer::from_pem(
        &root.chain_pem,
        &root_key.to_pem(KeyEncoding::Pkcs8).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("app.key");
    let key_path = key_path.to_str().unwrap();
    for (algorithm, options) in [
        ("EC", &["-pkeyopt", "ec_paramgen_curve:P-384"][..]),
        ("RSA", &["-pkeyopt", "rsa_keygen_bits:2048"][..]),
        ("ED25519", &[][..]),
    ] {
        let mut args = vec!["genpkey", "-algorithm", algorithm, "-out", key_path];
        args.extend_from_slice(options);
        openssl(&args, b"");
        let csr_pem = openssl(
            &[
                "req",
                "-new",
                "-key",
                key_path,
                "-subj",
                "/O=Example Ltd/CN=app.example.com",
                "-addext",
                "subjectAltName=DNS:app.example.com,IP:10.0.0.7",
            ],
            b"",
        );
        let (csr, content) = pki::parse_csr(&csr_pem).unwrap();
        assert_eq!(content.common_name.as_deref(), Some("app.example.com"));
        assert_eq!(content.dns_names, ["app.example.com"]);
        let mut request = CertificateRequest::for_dns_names(content.dns_names.clone());
        request.common_name = content.common_name.clone();
        request.subject = content.subject.clone();
        request.ip_addresses = content.ip_addresses.clone();
        request.duration = DAY;
        let bundle = ca.sign_request(&request, &csr).unwrap();
        assert!(bundle.key_pem.is_empty(), "the key stays with its owner");
        assert_eq!(leaf_info(&bundle).spki_der, csr.spki_der, "{algorithm}");

        let cert_path = dir.path().join("app.crt");
        std::fs::write(&cert_path, &bundle.chain_pem).unwrap();
        let ca_path = dir.path().join("ca.crt");
        std::fs::write(&ca_path, bundle.ca_pem.as_deref().unwrap()).unwrap();
        let verified = openssl(
            &[
                "verify",
                "-CAfile",
                ca_path.to_str().unwrap(),
                cert_path.to_str().unwrap(),
            ],
            b"",
        );
        assert!(String::from_utf8_lossy(&verified).contains(": OK"));
        let text = String::from_utf8(openssl(
            &[
                "x509",
                "-noout",
                "-subject",
                "-ext",
                "subjectAltName",
                "-in",
                cert_path.to_str().unwrap(),
            ],
            b"",
        ))
        .unwrap();
        assert!(
            text.contains("O=Example Ltd") || text.contains("O = Example Ltd"),
            "{text}"
        );
        assert!(text.contains("IP Address:10.0.0.7"), "{text}");
        // The certificate's public key is OpenSSL's key's.
        let from_cert = openssl(
            &[
                "x509",
                "-noout",
                "-pubkey",
                "-in",
                cert_path.to_str().unwrap(),
            ],
            b"",
        );
        let from_key = openssl(&["pkey", "-pubout", "-in", key_path], b"");
        assert_eq!(from_cert, from_key, "{algorithm}");
    }
}

/// `literalSubject` is written as given: OpenSSL prints the subject back
/// in RFC 2253 form exactly as the spec wrote it, escapes included.
#[test]
fn a_literal_subject_reads_back_as_written() {
    let text = "CN=app.example.com,OU=Web,O=Example\\, Inc.,L=Berlin,C=DE";
    let mut request = CertificateRequest::for_dns_names(["app.example.com"]);
    request.literal_subject = Some(certweave::api::literal_subject::parse(text).unwrap());
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let bundle = SelfSignedIssuer::default().sign(&request, &key).unwrap();
    let subject = String::from_utf8(openssl(
        &["x509", "-noout", "-subject", "-nameopt", "RFC2253"],
        bundle.chain_pem.as_bytes(),
    ))
    .unwrap();
    assert_eq!(subject.trim(), format!("subject={text}"));
}
