//! `certweave local` as a process: issuance through a CA bootstrap chain,
//! real renewals of short-lived certificates, drift, bad manifests, and
//! crash safety under repeated SIGKILL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use certweave::pki;

#[path = "support/local_process.rs"]
mod local_process;

use local_process::{leaf, secret_dir, wait_for, Local};

const CHAIN: &str = r#"
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: selfsigned}
spec: {selfSigned: {}}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: root-ca}
spec:
  isCA: true
  commonName: certweave test root
  secretName: root-ca
  privateKey: {algorithm: ECDSA, size: 256}
  issuerRef: {name: selfsigned, kind: Issuer}
---
apiVersion: cert-manager.io/v1
kind: Issuer
metadata: {name: ca}
spec:
  ca: {secretName: root-ca}
"#;

fn certificate(name: &str, secret: &str, names: &[&str], extra: &str) -> String {
    format!(
        "---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {{name: {name}}}\nspec:\n  secretName: {secret}\n  dnsNames: [{}]\n  issuerRef: {{name: ca}}\n{extra}",
        names.join(", ")
    )
}

#[test]
fn ca_bootstrap_chain_and_real_renewal_with_key_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let short = "  duration: 1m\n  renewBefore: 50s\n";
    let manifests = format!(
        "{CHAIN}{}{}",
        certificate(
            "web",
            "web-tls",
            &["web.example.test"],
            &format!("{short}  privateKey: {{algorithm: ECDSA, rotationPolicy: Always}}\n")
        ),
        certificate(
            "api",
            "api-tls",
            &["api.example.test"],
            &format!("{short}  privateKey: {{algorithm: ECDSA, rotationPolicy: Never}}\n")
        ),
    );
    std::fs::write(dir.path().join("certs.yaml"), manifests).unwrap();
    let hook_log = dir.path().join("renewed.log");
    let on_renew = format!(
        "echo \"$CERTWEAVE_NAMESPACE/$CERTWEAVE_CERTIFICATE $CERTWEAVE_SECRET_DIR\" >> {}",
        hook_log.display()
    );
    let local = Local::start_with(dir.path(), &["--on-renew", &on_renew]);
    let root = secret_dir(dir.path(), "default", "root-ca");
    let web = secret_dir(dir.path(), "default", "web-tls");
    let api = secret_dir(dir.path(), "default", "api-tls");
    let first_web = wait_for("web-tls", Duration::from_secs(30), &local, || leaf(&web));
    let first_api = wait_for("api-tls", Duration::from_secs(30), &local, || leaf(&api));
    let root_pem = std::fs::read_to_string(root.join("tls.crt")).unwrap();
    assert!(leaf(&root).unwrap().is_ca);
    for d in [&web, &api] {
        let chain = std::fs::read_to_string(d.join("tls.crt")).unwrap();
        pki::verify_chain_to_root(&chain, &root_pem).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("ca.crt")).unwrap(),
            root_pem,
            "ca.crt is the root"
        );
        let yaml = std::fs::read_to_string(d.join("secret.yaml")).unwrap();
        assert!(yaml.contains("type: kubernetes.io/tls"));
        assert!(yaml.contains("cert-manager.io/issuer-name: ca"));
    }
    let web_key = std::fs::read_to_string(web.join("tls.key")).unwrap();
    let api_key = std::fs::read_to_string(api.join("tls.key")).unwrap();

    // Renewal is due 10 s after issuance (1m lifetime, renewBefore 50s).
    let renewed_web = wait_for("web renewal", Duration::from_secs(40), &local, || {
        leaf(&web).filter(|l| l.serial_hex != first_web.serial_hex)
    });
    let renewed_api = wait_for("api renewal", Duration::from_secs(40), &local, || {
        leaf(&api).filter(|l| l.serial_hex != first_api.serial_hex)
    });
    assert!(renewed_web.not_after > first_web.not_after);
    assert_ne!(
        std::fs::read_to_string(web.join("tls.key")).unwrap(),
        web_key,
        "rotationPolicy Always: new key"
    );
    assert_eq!(
        renewed_api.spki_der, first_api.spki_der,
        "rotationPolicy Never: same key"
    );
    assert_eq!(
        std::fs::read_to_string(api.join("tls.key")).unwrap(),
        api_key
    );
    pki::verify_chain_to_root(
        &std::fs::read_to_string(web.join("tls.crt")).unwrap(),
        &root_pem,
    )
    .unwrap();
    // The state is recorded right after the Secret.
    let state = wait_for(
        "web revision 2 in the state",
        Duration::from_secs(10),
        &local,
        || {
            std::fs::read(dir.path().join("state/certificates/default/web.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .filter(|v| v["revision"].as_u64() >= Some(2))
        },
    );
    assert!(
        state["renewalTime"].as_str().unwrap().ends_with('Z'),
        "timestamps are RFC 3339: {state}"
    );
    // --on-renew ran for every issuance, with the Secret's directory. The
    // command runs after the state is recorded, so it may still be starting.
    wait_for(
        "--on-renew ran for both web issuances",
        Duration::from_secs(10),
        &local,
        || {
            std::fs::read_to_string(&hook_log)
                .ok()
                .filter(|h| h.matches("default/web ").count() >= 2)
        },
    );
    let api_hook = format!("default/api {}", api.display());
    let hooks = wait_for(
        "--on-renew ran for api, with its directory",
        Duration::from_secs(10),
        &local,
        || Some(std::fs::read_to_string(&hook_log).ok()?).filter(|h| h.contains(&api_hook)),
    );
    assert!(hooks.contains("default/web "), "{hooks}");
    local.terminate_cleanly();
}

#[test]
fn serves_the_webhook_with_a_certificate_from_the_built_in_ca() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let local = Local::start_with(
        dir.path(),
        &["--webhook-addr", &format!("127.0.0.1:{port}")],
    );
    let ca = dir.path().join("state/ca/tls.crt");
    wait_for("the built-in CA", Duration::from_secs(20), &local, || {
        ca.exists().then_some(())
    });
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
            "name": "web", "namespace": "default", "operation": "CREATE", "userInfo": {},
            "object": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": "web", "annotations": {"cert-manager.io/cluster-issuer": "le"}},
                "spec": {"rules": [{"host": "web.example.test"}]}}}
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let answer: serde_json::Value = rt.block_on(async {
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap(),
            )
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match client
                .post(format!("https://localhost:{port}/mutate"))
                .json(&review)
                .send()
                .await
            {
                Ok(response) => return response.json().await.unwrap(),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("webhook never answered: {e}\n{}", local.log()),
            }
        }
    });
    assert_eq!(answer["response"]["uid"], "u1");
    assert_eq!(answer["response"]["patchType"], "JSONPatch");
    local.kill();
}

#[test]
fn drift_reissues_and_bad_manifests_do_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certs.yaml");
    std::fs::write(
        &path,
        format!(
            "{CHAIN}{}",
            certificate("web", "web-tls", &["a.example.test"], "")
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: broken}\nspec:\n  secretName: broken-tls\n  dnsNames: ['*.com']\n  issuerRef: {name: ca}\n---\nkind: [unclosed\n",
    )
    .unwrap();
    let local = Local::start(dir.path());
    let web = secret_dir(dir.path(), "default", "web-tls");
    let first = wait_for("web-tls", Duration::from_secs(30), &local, || leaf(&web));
    assert_eq!(first.dns_names, ["a.example.test"]);
    let log = wait_for(
        "the manifest errors",
        Duration::from_secs(10),
        &local,
        || {
            let log = local.log();
            (log.contains("broken.yaml#1") && log.contains("broken.yaml#2")).then_some(log)
        },
    );
    assert!(log.contains("spec.dnsNames[0]"), "{log}");
    assert!(!secret_dir(dir.path(), "default", "broken-tls").exists());

    // Names changed in the manifest: re-issued with the new names.
    std::fs::write(
        &path,
        format!(
            "{CHAIN}{}",
            certificate("web", "web-tls", &["a.example.test", "b.example.test"], "")
        ),
    )
    .unwrap();
    let second = wait_for(
        "re-issue on new names",
        Duration::from_secs(30),
        &local,
        || leaf(&web).filter(|l| l.dns_names.len() == 2),
    );
    assert_ne!(second.serial_hex, first.serial_hex);

    // Files deleted: re-issued.
    std::fs::remove_dir_all(&web).unwrap();
    let third = wait_for(
        "re-issue after deletion",
        Duration::from_secs(30),
        &local,
        || leaf(&web),
    );
    assert_ne!(third.serial_hex, second.serial_hex);

    // tls.key corrupted: re-issued.
    std::fs::write(
        web.join("tls.key"),
        "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let fourth = wait_for(
        "re-issue after corruption",
        Duration::from_secs(30),
        &local,
        || leaf(&web),
    );
    assert_ne!(fourth.serial_hex, third.serial_hex);
    local.kill();
}

/// A small deterministic generator, so a failing kill schedule can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn survives_repeated_sigkill_without_ever_exposing_a_broken_bundle() {
    let kills: usize = std::env::var("CERTWEAVE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    eprintln!("kill schedule seed: {seed} ({kills} kills)");
    let mut rng = Lcg(seed);
    let dir = tempfile::tempdir().unwrap();
    // RSA keys make each issuance slow enough for kills to land inside it.
    let mut manifests = CHAIN.to_string();
    let names: Vec<String> = (0..6).map(|i| format!("svc{i}")).collect();
    for name in &names {
        manifests.push_str(&certificate(
            name,
            &format!("{name}-tls"),
            &[&format!("{name}.example.test")],
            "  privateKey: {algorithm: RSA, size: 2048}\n",
        ));
    }
    std::fs::write(dir.path().join("certs.yaml"), manifests).unwrap();
    let all: Vec<PathBuf> = std::iter::once("root-ca".to_string())
        .chain(names.iter().map(|n| format!("{n}-tls")))
        .map(|s| secret_dir(dir.path(), "default", &s))
        .collect();

    let check_disk = |when: &str| {
        for d in &all {
            if d.join("tls.crt").exists() || d.join("tls.key").exists() {
                assert!(
                    leaf(d).is_some(),
                    "{when}: {} holds a key and certificate that do not form a valid bundle",
                    d.display()
                );
            }
        }
    };
    for i in 0..kills {
        let local = Local::start(dir.path());
        std::thread::sleep(Duration::from_millis(20 + rng.next(400)));
        local.kill();
        check_disk(&format!("after kill {i} (seed {seed})"));
    }

    let local = Local::start(dir.path());
    let serials: BTreeMap<PathBuf, String> = all
        .iter()
        .map(|d| {
            (
                d.clone(),
                wait_for(
                    &format!("{}", d.display()),
                    Duration::from_secs(60),
                    &local,
                    || leaf(d),
                )
                .serial_hex,
            )
        })
        .collect();
    // All Ready in the recorded state too.
    wait_for("every state Ready", Duration::from_secs(10), &local, || {
        let ready = std::iter::once("root-ca".to_string())
            .chain(names.iter().cloned())
            .all(|n| {
                std::fs::read(
                    dir.path()
                        .join(format!("state/certificates/default/{n}.json")),
                )
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|v| v["ready"] == true)
            });
        ready.then_some(())
    });
    local.terminate_cleanly();

    // A restart does not re-issue what is still valid.
    let local = Local::start(dir.path());
    std::thread::sleep(Duration::from_secs(3));
    for (d, serial) in &serials {
        assert_eq!(
            &leaf(d).unwrap().serial_hex,
            serial,
            "{} was re-issued on restart",
            d.display()
        );
    }
    assert!(
        !local.log().contains("issuing"),
        "nothing is issued on a clean restart:\n{}",
        local.log()
    );
    local.kill();
}

/// `spec.subject` and `spec.additionalOutputFormats`, read back with
/// OpenSSL (an independent parser): the subject is in the certificate,
/// `key.der` is the key of `tls.key`, `tls-combined.pem` is key then chain;
/// dropping a format removes its file without a new certificate.
#[test]
fn subject_and_additional_output_formats_read_back_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "  subject:\n    organizations: [Example Corp]\n    countries: [DE]\n    localities: [Berlin]\n    postalCodes: [\"10117\"]\n    serialNumber: \"42\"\n  additionalOutputFormats: [{type: DER}, {type: CombinedPEM}]\n  privateKey: {algorithm: ECDSA, encoding: PKCS8}\n";
    let manifests = format!(
        "{CHAIN}{}",
        certificate("web", "web-tls", &["web.example.test"], extra)
    );
    std::fs::write(dir.path().join("certs.yaml"), &manifests).unwrap();
    let local = Local::start(dir.path());
    let web = secret_dir(dir.path(), "default", "web-tls");
    let first = wait_for("web issued", Duration::from_secs(30), &local, || {
        web.join("tls-combined.pem")
            .exists()
            .then(|| leaf(&web))
            .flatten()
    });

    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let cert = web.join("tls.crt");
    let subject = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    for part in [
        "O=Example Corp",
        "C=DE",
        "L=Berlin",
        "postalCode=10117",
        "serialNumber=42",
    ] {
        assert!(subject.contains(part), "{part} missing from {subject}");
    }
    // key.der is the same key as tls.key.
    let from_pem = openssl(&[
        "pkey",
        "-in",
        web.join("tls.key").to_str().unwrap(),
        "-pubout",
    ]);
    let from_der = openssl(&[
        "pkey",
        "-inform",
        "DER",
        "-in",
        web.join("key.der").to_str().unwrap(),
        "-pubout",
    ]);
    assert_eq!(from_pem, from_der);
    let combined = std::fs::read_to_string(web.join("tls-combined.pem")).unwrap();
    let key = std::fs::read_to_string(web.join("tls.key")).unwrap();
    let chain = std::fs::read_to_string(&cert).unwrap();
    assert!(
        combined.starts_with(&key) && combined.ends_with(&chain),
        "key, then chain"
    );
    let secret_yaml = std::fs::read_to_string(web.join("secret.yaml")).unwrap();
    assert!(secret_yaml.contains("key.der") && secret_yaml.contains("tls-combined.pem"));

    // Only DER now: the combined file goes, the certificate stays.
    std::fs::write(
        dir.path().join("certs.yaml"),
        manifests.replace("[{type: DER}, {type: CombinedPEM}]", "[{type: DER}]"),
    )
    .unwrap();
    wait_for(
        "tls-combined.pem removed",
        Duration::from_secs(20),
        &local,
        || (!web.join("tls-combined.pem").exists()).then_some(()),
    );
    assert!(web.join("key.der").exists());
    assert_eq!(
        leaf(&web).unwrap().serial_hex,
        first.serial_hex,
        "no new certificate"
    );

    // A changed subject is a new certificate.
    std::fs::write(
        dir.path().join("certs.yaml"),
        manifests.replace("Example Corp", "Example GmbH"),
    )
    .unwrap();
    wait_for(
        "reissued with the new subject",
        Duration::from_secs(30),
        &local,
        || leaf(&web).filter(|l| l.serial_hex != first.serial_hex),
    );
    let subject = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    assert!(subject.contains("O=Example GmbH"), "{subject}");
    local.terminate_cleanly();
}

/// `spec.keystores` in standalone mode: the Secret directory gets
/// `keystore.p12`, `truststore.p12`, `keystore.jks` and `truststore.jks`,
/// encrypted with the password from a Secret manifest (PKCS#12) and the
/// literal one (JKS); OpenSSL and keytool open them.
#[test]
fn keystores_are_written_into_the_secret_directory() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "  keystores:\n    pkcs12: {create: true, passwordSecretRef: {name: p12-password, key: password}}\n    jks: {create: true, password: changeit}\n";
    let manifests = format!(
        "{CHAIN}{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: p12-password}}\nstringData: {{password: p12-secret}}\n",
        certificate("java", "java-tls", &["java.example.test"], extra)
    );
    std::fs::write(dir.path().join("certs.yaml"), &manifests).unwrap();
    let local = Local::start(dir.path());
    let java = secret_dir(dir.path(), "default", "java-tls");
    wait_for("keystores written", Duration::from_secs(30), &local, || {
        [
            "keystore.p12",
            "truststore.p12",
            "keystore.jks",
            "truststore.jks",
        ]
        .iter()
        .all(|f| java.join(f).exists())
        .then_some(())
    });
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let path = |f: &str| java.join(f).to_str().unwrap().to_owned();
    let dumped = run(
        "openssl",
        &[
            "pkcs12",
            "-nokeys",
            "-passin",
            "pass:p12-secret",
            "-in",
            &path("keystore.p12"),
        ],
    );
    let leaf_der =
        pki::pem_block_der(&std::fs::read_to_string(java.join("tls.crt")).unwrap()).unwrap();
    assert!(pki::parse_pem_chain(&dumped).unwrap().contains(&leaf_der));
    let listed = run(
        "keytool",
        &[
            "-list",
            "-keystore",
            &path("keystore.jks"),
            "-storepass",
            "changeit",
            "-storetype",
            "JKS",
        ],
    );
    assert!(
        listed.contains("certificate, ") && listed.contains("PrivateKeyEntry"),
        "{listed}"
    );
}

/// `certweave status --dir` reads the state while local runs, and
/// `certweave renew --dir` makes the running local issue again, once.
#[test]
fn status_and_renew_work_on_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = format!(
        "{CHAIN}{}",
        certificate("web", "web-tls", &["web.example.test"], "")
    );
    std::fs::write(dir.path().join("certs.yaml"), &manifests).unwrap();
    let local = Local::start(dir.path());
    let web = secret_dir(dir.path(), "default", "web-tls");
    let first = wait_for("web issued", Duration::from_secs(30), &local, || leaf(&web));
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let status = wait_for(
        "every certificate Ready in status --dir",
        Duration::from_secs(20),
        &local,
        || {
            let out = run(&["status"]);
            out.status
                .success()
                .then(|| String::from_utf8(out.stdout).unwrap())
        },
    );
    assert!(status.starts_with("CERTIFICATE"), "{status}");
    // The first pass ended with one summary line.
    let summary = wait_for("the summary line", Duration::from_secs(10), &local, || {
        local
            .log()
            .lines()
            .find(|l| l.contains("certificates ready"))
            .map(str::to_owned)
    });
    assert!(
        summary.contains("2 certificates ready, 0 failing, next renewal in "),
        "{summary}"
    );
    assert_eq!(
        local.log().matches("certificates ready").count(),
        1,
        "said once"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("default/web ") && l.contains("True")),
        "{status}"
    );

    let typo = run(&["renew", "webb"]);
    assert_eq!(typo.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("did you mean web"));
    let renew = run(&["renew", "web"]);
    assert!(
        renew.status.success(),
        "{}",
        String::from_utf8_lossy(&renew.stderr)
    );
    let second = wait_for("web issued again", Duration::from_secs(30), &local, || {
        leaf(&web).filter(|l| l.serial_hex != first.serial_hex)
    });
    // Once: the request is gone and a few polls later the serial holds.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(leaf(&web).unwrap().serial_hex, second.serial_hex);
    assert!(!dir.path().join("state/renew/default/web").exists());
}
