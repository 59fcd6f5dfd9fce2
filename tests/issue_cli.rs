//! `certweave issue` as a user runs it: a process, its exit code, its
//! stderr, and the files it leaves (or does not leave) behind. ACME runs
//! against a real Pebble; SelfSigned and CA need nothing else.

#[path = "support/bind9.rs"]
mod bind9;
#[path = "support/moto.rs"]
mod moto;
#[path = "support/pebble.rs"]
mod pebble;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::SystemTime;

use certweave::issuers::selfsigned::SelfSignedIssuer;
use certweave::model::CertificateRequest;
use certweave::pki::{self, KeyAlgorithm, PrivateKey};
use pebble::{Pebble, PebbleOptions};

fn certweave<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certweave"))
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("certweave runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn assert_nothing_written(out: &Path) {
    let entries: Vec<_> = match std::fs::read_dir(out) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name()).collect(),
        Err(_) => Vec::new(),
    };
    assert!(entries.is_empty(), "files were written: {entries:?}");
}

/// The files in `out` make a good bundle for `names`, leading to `root`.
fn assert_bundle(out: &Path, names: &[&str], root: &str) {
    let chain = read(out, "tls.crt");
    let key = read(out, "tls.key");
    let request = CertificateRequest::for_dns_names(names.iter().copied());
    pki::check_bundle(&chain, &key, Some(&request), SystemTime::now()).unwrap();
    pki::verify_chain_to_root(&chain, root).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&out.join("tls.key")), 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn acme_issuance_end_to_end_writes_a_checked_bundle_and_keeps_the_account_key() {
    let port = pebble::free_port();
    let pebble = Pebble::start(PebbleOptions::http01(port));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let account_key = dir.path().join("account.key");
    let http01 = format!("127.0.0.1:{port}");
    let ca_bundle = pebble.tls_ca_file.to_str().unwrap().to_owned();
    let run = |out: &Path, names: &[&str], extra: &[&str]| {
        let mut args = vec![
            "issue",
            "--acme-directory",
            &pebble.directory_url,
            "--acme-ca-bundle",
            &ca_bundle,
            "--email",
            "ops@example.test",
            "--account-key",
            account_key.to_str().unwrap(),
            "--http01-addr",
            &http01,
            "--key-algorithm",
            "rsa2048",
            "--out",
            out.to_str().unwrap(),
        ];
        for name in names {
            args.extend(["--dns-name", name]);
        }
        args.extend(extra);
        certweave(&args)
    };

    let first = run(&out, &["cli.example.test", "www.cli.example.test"], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let root = pebble.root(0).await;
    assert_bundle(&out, &["cli.example.test", "www.cli.example.test"], &root);
    let key = PrivateKey::from_pem(&read(&out, "tls.key")).unwrap();
    assert_eq!(key.algorithm(), KeyAlgorithm::Rsa(2048));
    let log = stderr(&first);
    assert!(log.contains("registered a new ACME account"), "{log}");
    assert!(log.contains("wrote "), "{log}");
    // ACME CAs do not send their root: there is no ca.crt to write.
    assert!(!out.join("ca.crt").exists());
    let stored_key = std::fs::read_to_string(&account_key).unwrap();
    #[cfg(unix)]
    assert_eq!(mode(&account_key), 0o600);

    // Again, into the same directory, with Pebble's six-day profile:
    // replaced in place, same account.
    let second = run(
        &out,
        &["cli.example.test"],
        &["--acme-profile", "shortlived"],
    );
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("using the existing ACME account"),
        "{}",
        stderr(&second)
    );
    assert_bundle(&out, &["cli.example.test"], &root);
    assert_eq!(std::fs::read_to_string(&account_key).unwrap(), stored_key);
    let chain = certweave::pki::parse_pem_chain(&read(&out, "tls.crt")).unwrap();
    let leaf = certweave::pki::CertInfo::parse(&chain[0], 0).unwrap();
    let days = leaf
        .not_after
        .duration_since(leaf.not_before)
        .unwrap()
        .as_secs()
        / 86_400;
    assert!(
        (5..=6).contains(&days),
        "the shortlived profile is six days, got {days}"
    );
}

#[tokio::test]
async fn a_failed_validation_exits_1_explains_and_writes_nothing() {
    let port = pebble::free_port();
    let pebble = Pebble::start(PebbleOptions::http01(port));
    pebble.add_a("down.example.test", "127.0.0.2").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let output = certweave(&[
        "issue",
        "--dns-name",
        "up.example.test",
        "--dns-name",
        "down.example.test",
        "--acme-directory",
        &pebble.directory_url,
        "--acme-ca-bundle",
        pebble.tls_ca_file.to_str().unwrap(),
        "--account-key",
        dir.path().join("account.key").to_str().unwrap(),
        "--http01-addr",
        &format!("127.0.0.1:{port}"),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("down.example.test: urn:ietf:params:acme:error:connection"),
        "{text}"
    );
    assert!(text.contains("nothing was written"), "{text}");
    assert!(text.contains("hint:"), "{text}");
    assert_nothing_written(&out);
}

#[test]
fn a_wildcard_without_dns01_is_a_usage_error_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let account_key = dir.path().join("account.key");
    let output = certweave(&[
        "issue",
        "--dns-name",
        "*.example.test",
        // Never contacted: the request is refused first.
        "--acme-directory",
        "https://127.0.0.1:9/dir",
        "--account-key",
        account_key.to_str().unwrap(),
        "--http01-addr",
        "127.0.0.1:0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(text.contains("*.example.test"), "{text}");
    assert!(
        text.contains("DNS-01") && text.contains("--dns01-rfc2136"),
        "{text}"
    );
    assert_nothing_written(&out);
    assert!(
        !account_key.exists(),
        "no account key for a refused request"
    );
}

/// A wildcard and its apex through the CLI's DNS-01 flags, against BIND9;
/// and a wrong TSIG secret, which must say so and write nothing.
#[tokio::test]
async fn dns01_flags_issue_a_wildcard_and_a_wrong_tsig_secret_is_explained() {
    let bind = bind9::Bind9::start();
    let pebble = Pebble::start(PebbleOptions {
        dns_server: Some(bind.addr()),
        ..PebbleOptions::http01(pebble::free_port())
    });
    let dir = tempfile::tempdir().unwrap();
    let account_key = dir.path().join("account.key");
    let server = bind.addr().to_string();
    let run = |out: &Path, secret: &str, apex: &str| {
        let wildcard = format!("*.{apex}");
        certweave(&[
            "issue",
            "--dns-name",
            apex,
            "--dns-name",
            &wildcard,
            "--acme-directory",
            &pebble.directory_url,
            "--acme-ca-bundle",
            pebble.tls_ca_file.to_str().unwrap(),
            "--account-key",
            account_key.to_str().unwrap(),
            "--dns01-rfc2136",
            &server,
            "--tsig-key-name",
            &bind.key_name,
            "--tsig-secret",
            secret,
            "--tsig-algorithm",
            "hmac-sha256",
            "--out",
            out.to_str().unwrap(),
        ])
    };

    let out = dir.path().join("wildcard");
    let output = run(&out, &bind.secret, "example.test");
    assert!(output.status.success(), "{}", stderr(&output));
    assert_bundle(
        &out,
        &["example.test", "*.example.test"],
        &pebble.root(0).await,
    );
    assert!(bind.txt("_acme-challenge.example.test").is_empty());

    let wrong = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        b"not the secret bind knows",
    );
    // Names never validated: Pebble, like Let's Encrypt, may reuse the
    // valid authorizations of the first order, which needs no DNS update.
    let out = dir.path().join("wrong");
    let output = run(&out, &wrong, "wrong.example.test");
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(text.contains("--tsig-secret"), "{text}");
    assert_nothing_written(&out);
}

/// `--dns01-provider route53` end to end, credentials and endpoint from
/// the environment as a user would set them: moto holds the zone; it
/// serves no DNS, so its TXT records at the challenge name are mirrored
/// into the challtestsrv Pebble resolves through, and the self-check asks
/// there too (`--dns01-recursive-nameservers-only`). Without credentials
/// in the environment the command is refused, naming the variables.
#[tokio::test(flavor = "multi_thread")]
async fn dns01_provider_route53_issues_a_wildcard_with_the_environments_aws_credentials() {
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const CHALLENGE: &str = "_acme-challenge.r53.example.test";
    let moto = Arc::new(moto::Moto::start(pebble::free_port()));
    let zone = moto.create_zone("r53.example.test", false).await;
    let pebble = Pebble::start(PebbleOptions::http01(pebble::free_port()));
    let mirror = pebble::mirror_txt(
        pebble.challtestsrv_management().unwrap(),
        CHALLENGE.into(),
        moto.txt_reader(&zone, CHALLENGE),
    );
    let dir = tempfile::tempdir().unwrap();
    let account_key = dir.path().join("account.key");
    let nameserver = pebble.dns_server.to_string();
    let run = |out: &Path, aws: &[(&str, &str)]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_certweave"));
        command
            .args([
                "issue",
                "--dns-name",
                "r53.example.test",
                "--dns-name",
                "*.r53.example.test",
                "--acme-directory",
                &pebble.directory_url,
                "--acme-ca-bundle",
                pebble.tls_ca_file.to_str().unwrap(),
                "--account-key",
                account_key.to_str().unwrap(),
                "--dns01-provider",
                "route53",
                "--route53-hosted-zone-id",
                &format!("/hostedzone/{zone}"),
                "--dns01-recursive-nameservers",
                &nameserver,
                "--dns01-recursive-nameservers-only",
                "--dns01-propagation-timeout",
                "30",
                "--out",
                out.to_str().unwrap(),
            ])
            .env("RUST_LOG", "info");
        // Only what the test gives: no AWS settings of whoever runs it.
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("AWS_")) {
            command.env_remove(name);
        }
        command.envs(aws.iter().copied());
        command.output()
    };

    let out = dir.path().join("tls");
    let output = run(
        &out,
        &[
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_ENDPOINT_URL", &moto.endpoint),
        ],
    )
    .await
    .unwrap();
    mirror.abort();
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    assert_bundle(
        &out,
        &["r53.example.test", "*.r53.example.test"],
        &pebble.root(0).await,
    );
    assert!(
        moto.txt(&zone, CHALLENGE).await.is_empty(),
        "challenge records left in Route53"
    );

    let out = dir.path().join("no-credentials");
    let output = run(&out, &[("AWS_ENDPOINT_URL", &moto.endpoint)])
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("--dns01-provider route53:")
            && text.contains("AWS_ACCESS_KEY_ID")
            && text.contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "{text}"
    );
    assert_nothing_written(&out);
}

#[test]
fn selfsigned_issues_with_every_key_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in ["ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa4096", "ed25519"] {
        let out = dir.path().join(algorithm);
        let output = certweave(&[
            "issue",
            "--issuer",
            "selfsigned",
            "--dns-name",
            "self.example.test",
            "--key-algorithm",
            algorithm,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{algorithm}: {}", stderr(&output));
        let ca = read(&out, "ca.crt");
        assert_eq!(
            read(&out, "tls.crt"),
            ca,
            "self-signed: ca.crt is the certificate"
        );
        assert_bundle(&out, &["self.example.test"], &ca);
        let key = PrivateKey::from_pem(&read(&out, "tls.key")).unwrap();
        assert_eq!(key.algorithm().to_string(), algorithm);
    }
}

#[test]
fn the_ca_issuer_signs_with_the_given_ca_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let mut ca_request = CertificateRequest::for_dns_names(Vec::<String>::new());
    ca_request.common_name = Some("certweave test CA".into());
    ca_request.is_ca = true;
    let ca = SelfSignedIssuer::default()
        .sign(&ca_request, &ca_key)
        .unwrap();
    let ca_cert = dir.path().join("ca.pem");
    let ca_key_file = dir.path().join("ca.key");
    std::fs::write(&ca_cert, &ca.chain_pem).unwrap();
    std::fs::write(&ca_key_file, &ca.key_pem).unwrap();
    let out = dir.path().join("leaf");
    let args = |key: &Path| {
        vec![
            "issue".to_string(),
            "--issuer".into(),
            "ca".into(),
            "--ca-cert".into(),
            ca_cert.to_str().unwrap().into(),
            "--ca-key".into(),
            key.to_str().unwrap().into(),
            "--dns-name".into(),
            "api.internal.test".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
        ]
    };
    let output = certweave(&args(&ca_key_file));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(read(&out, "ca.crt"), ca.chain_pem);
    assert_bundle(&out, &["api.internal.test"], &ca.chain_pem);

    // A key that is not the CA's: refused as bad input, nothing replaced.
    let before = read(&out, "tls.crt");
    let other = dir.path().join("other.key");
    std::fs::write(
        &other,
        PrivateKey::generate(KeyAlgorithm::EcdsaP256)
            .unwrap()
            .to_pem(Default::default())
            .unwrap(),
    )
    .unwrap();
    let output = certweave(&args(&other));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("does not belong"),
        "{}",
        stderr(&output)
    );
    assert_eq!(read(&out, "tls.crt"), before);
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tls");
    let out_arg = out.to_str().unwrap();
    for (args, expect) in [
        (
            vec!["issue", "--dns-name", "a.test", "--out", out_arg],
            "--acme-directory",
        ),
        (
            vec![
                "issue",
                "--dns-name",
                "a.test",
                "--acme-directory",
                "https://127.0.0.1:9/dir",
                "--out",
                out_arg,
            ],
            "--account-key",
        ),
        (
            vec![
                "issue",
                "--issuer",
                "ca",
                "--dns-name",
                "a.test",
                "--out",
                out_arg,
            ],
            "--ca-cert",
        ),
        (
            vec![
                "issue",
                "--issuer",
                "ca",
                "--ca-cert",
                "/nonexistent/ca.pem",
                "--ca-key",
                "/nonexistent/ca.key",
                "--dns-name",
                "a.test",
                "--out",
                out_arg,
            ],
            "--ca-cert /nonexistent/ca.pem",
        ),
        (
            vec![
                "issue",
                "--issuer",
                "selfsigned",
                "--key-algorithm",
                "dsa",
                "--dns-name",
                "a.test",
                "--out",
                out_arg,
            ],
            "unknown key algorithm",
        ),
        (
            vec![
                "issue",
                "--issuer",
                "selfsigned",
                "--http01-addr",
                "127.0.0.1:0",
                "--dns-name",
                "a.test",
                "--out",
                out_arg,
            ],
            "--http01-addr only applies to --issuer acme",
        ),
        (
            vec![
                "issue",
                "--issuer",
                "selfsigned",
                "--ca-key",
                "/nonexistent/ca.key",
                "--dns-name",
                "a.test",
                "--out",
                out_arg,
            ],
            "--ca-key only applies to --issuer ca",
        ),
        (
            vec![
                "issue",
                "--dns-name",
                "a.test",
                "--acme-directory",
                "https://127.0.0.1:9/dir",
                "--account-key",
                "/nonexistent/account.key",
                "--dns01-provider",
                "rfc2136",
                "--out",
                out_arg,
            ],
            "--dns01-provider rfc2136 needs --dns01-rfc2136 SERVER",
        ),
        (
            vec![
                "issue",
                "--dns-name",
                "a.test",
                "--acme-directory",
                "https://127.0.0.1:9/dir",
                "--account-key",
                "/nonexistent/account.key",
                "--dns01-provider",
                "acmedns",
                "--route53-role",
                "arn:aws:iam::123456789012:role/dns01",
                "--out",
                out_arg,
            ],
            "--route53-role only applies to --dns01-provider route53, not acmedns",
        ),
        (
            vec![
                "issue",
                "--issuer",
                "selfsigned",
                "--dns01-provider",
                "cloudflare",
                "--dns-name",
                "a.test",
                "--out",
                out_arg,
            ],
            "--dns01-provider only applies to --issuer acme",
        ),
    ] {
        let output = certweave(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expect),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_nothing_written(&out);
    }
}

/// `certweave completion SHELL` prints a script that knows the commands;
/// bash accepts it.
#[test]
fn completion_scripts_know_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for command in ["inspect", "renew", "status", "check", "local"] {
            assert!(script.contains(command), "{shell} script lacks {command}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("certweave.bash");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
        .args(["completion", "bash"])
        .output()
        .unwrap();
    std::fs::write(&script, out.stdout).unwrap();
    let sourced = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p certweave",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        sourced.status.success(),
        "{}",
        String::from_utf8_lossy(&sourced.stderr)
    );
}
