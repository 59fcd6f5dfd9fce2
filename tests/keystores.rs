//! PKCS#12 and JKS keystores as a Secret holds them, read back by the tools
//! their users run: OpenSSL for PKCS#12, the JDK's keytool for both. A
//! keystore must open with its password, hold the certificate's key with
//! the chain, and its trust store the CA; a changed password or certificate
//! must show as a mismatch, so the Secret is rewritten.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use certweave::issuers::ca::CaIssuer;
use certweave::issuers::selfsigned::SelfSignedIssuer;
use certweave::model::{Bundle, CertificateRequest};
use certweave::pki::{self, KeyAlgorithm, KeyEncoding, PrivateKey};
use certweave::store::keystore::{
    JksOutput, Keystores, Pkcs12Output, Pkcs12Profile, PROFILE_ANNOTATION,
};
use certweave::store::{data_keys, OutputFormats, SecretWrite, StoredSecret};

const DAY: Duration = Duration::from_secs(24 * 3600);

/// A leaf signed by a CA, with the CA as `ca.crt`.
fn bundle(algorithm: KeyAlgorithm) -> Bundle {
    let mut root_request = CertificateRequest::for_dns_names(Vec::<String>::new());
    root_request.common_name = Some("Keystore Root".into());
    root_request.is_ca = true;
    root_request.duration = 30 * DAY;
    let root_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let root = SelfSignedIssuer::default()
        .sign(&root_request, &root_key)
        .unwrap();
    let ca = CaIssuer::from_pem(
        &root.chain_pem,
        &root_key.to_pem(KeyEncoding::Pkcs8).unwrap(),
    )
    .unwrap();
    let mut request = CertificateRequest::for_dns_names(["app.example.com"]);
    request.key_algorithm = algorithm;
    ca.sign(&request, &PrivateKey::generate(algorithm).unwrap())
        .unwrap()
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): install OpenSSL and a JDK"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

fn write_all(bundle: &Bundle, formats: &OutputFormats) -> BTreeMap<&'static str, Vec<u8>> {
    let write = SecretWrite {
        bundle,
        annotations: BTreeMap::new(),
        labels: BTreeMap::new(),
        formats,
    };
    write
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

fn formats(profile: Pkcs12Profile) -> OutputFormats {
    OutputFormats {
        keystores: Keystores {
            pkcs12: Some(Pkcs12Output {
                password: "p12-secret".into(),
                profile,
            }),
            jks: Some(JksOutput {
                password: "changeit".into(),
                alias: "web".into(),
            }),
        },
        ..Default::default()
    }
}

#[test]
fn openssl_and_keytool_read_the_keystores() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    for (algorithm, profile) in [
        (KeyAlgorithm::EcdsaP256, Pkcs12Profile::LegacyDes),
        (KeyAlgorithm::Rsa(2048), Pkcs12Profile::Modern2023),
    ] {
        let bundle = bundle(algorithm);
        let files = write_all(&bundle, &formats(profile));
        for (key, bytes) in &files {
            std::fs::write(path(key), bytes).unwrap();
        }
        let leaf_der = pki::pem_block_der(&bundle.chain_pem).unwrap();

        // OpenSSL: the key and certificate of tls.key / tls.crt, and the CA.
        let dumped = run(
            "openssl",
            &[
                "pkcs12",
                "-in",
                &path(data_keys::KEYSTORE_P12),
                "-passin",
                "pass:p12-secret",
                "-nodes",
            ],
        );
        let key_from_p12 = PrivateKey::from_pem(&dumped).unwrap();
        let key = PrivateKey::from_pem(&bundle.key_pem).unwrap();
        assert_eq!(
            key_from_p12.public_key_der(),
            key.public_key_der(),
            "{profile:?}"
        );
        let certs = pki::parse_pem_chain(&dumped).unwrap();
        assert!(
            certs.contains(&leaf_der),
            "{profile:?}: the leaf is in keystore.p12"
        );
        let ca_der = pki::pem_block_der(bundle.ca_pem.as_deref().unwrap()).unwrap();
        assert!(
            certs.contains(&ca_der),
            "{profile:?}: the CA is in keystore.p12"
        );
        let info = run(
            "openssl",
            &[
                "pkcs12",
                "-info",
                "-noout",
                "-in",
                &path(data_keys::KEYSTORE_P12),
                "-passin",
                "pass:p12-secret",
            ],
        );
        match profile {
            Pkcs12Profile::LegacyDes => {
                assert!(info.contains("pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
                assert!(info.contains("MAC: sha1"), "{info}");
            }
            Pkcs12Profile::Modern2023 => {
                assert!(info.contains("AES-256-CBC"), "{info}");
                assert!(info.contains("MAC: sha256"), "{info}");
            }
        }
        // A wrong password does not open it.
        let wrong = Command::new("openssl")
            .args([
                "pkcs12",
                "-in",
                &path(data_keys::KEYSTORE_P12),
                "-passin",
                "pass:wrong",
                "-nodes",
            ])
            .output()
            .unwrap();
        assert!(!wrong.status.success());

        // keytool: the JKS key entry under its alias with the chain, the CA
        // as a trusted entry; Java reads the PKCS#12 files too.
        let jks = run(
            "keytool",
            &[
                "-list",
                "-v",
                "-keystore",
                &path(data_keys::KEYSTORE_JKS),
                "-storepass",
                "changeit",
                "-storetype",
                "JKS",
            ],
        );
        assert!(jks.contains("Alias name: web"), "{jks}");
        assert!(jks.contains("Entry type: PrivateKeyEntry"), "{jks}");
        assert!(jks.contains("Certificate chain length: 1"), "{jks}");
        assert!(
            jks.contains("Alias name: ca") && jks.contains("trustedCertEntry"),
            "{jks}"
        );
        let truststore = run(
            "keytool",
            &[
                "-list",
                "-keystore",
                &path(data_keys::TRUSTSTORE_JKS),
                "-storepass",
                "changeit",
                "-storetype",
                "JKS",
            ],
        );
        assert!(
            truststore.contains("ca, ") && truststore.contains("trustedCertEntry"),
            "{truststore}"
        );
        let p12 = run(
            "keytool",
            &[
                "-list",
                "-keystore",
                &path(data_keys::KEYSTORE_P12),
                "-storepass",
                "p12-secret",
                "-storetype",
                "PKCS12",
            ],
        );
        assert!(p12.contains("PrivateKeyEntry"), "{p12}");
        let p12_trust = run(
            "keytool",
            &[
                "-list",
                "-keystore",
                &path(data_keys::TRUSTSTORE_P12),
                "-storepass",
                "p12-secret",
                "-storetype",
                "PKCS12",
            ],
        );
        assert!(p12_trust.contains("trustedCertEntry"), "{p12_trust}");

        // Java uses the key: keytool exports the certificate of the key
        // entry, which is tls.crt's leaf.
        let exported = path("exported.der");
        run(
            "keytool",
            &[
                "-exportcert",
                "-alias",
                "web",
                "-keystore",
                &path(data_keys::KEYSTORE_JKS),
                "-storepass",
                "changeit",
                "-file",
                &exported,
            ],
        );
        assert_eq!(std::fs::read(&exported).unwrap(), leaf_der);
        std::fs::remove_file(&exported).unwrap();
    }
}

#[test]
fn stored_keystores_match_until_the_password_or_certificate_changes() {
    let bundle = bundle(KeyAlgorithm::EcdsaP256);
    let wanted = formats(Pkcs12Profile::Modern2023);
    let stored = |files: BTreeMap<&'static str, Vec<u8>>, bundle: &Bundle| StoredSecret {
        tls_crt: Some(bundle.chain_pem.clone()),
        tls_key: Some(bundle.key_pem.clone()),
        ca_crt: bundle.ca_pem.clone(),
        extra: files
            .into_iter()
            .filter(|(k, _)| data_keys::EXTRA.contains(k))
            .collect(),
        annotations: BTreeMap::from([(PROFILE_ANNOTATION.to_owned(), "Modern2023".to_owned())]),
    };
    let secret = stored(write_all(&bundle, &wanted), &bundle);
    assert!(secret.outputs_match(&wanted));
    let mut legacy = wanted.clone();
    legacy.keystores.pkcs12.as_mut().unwrap().profile = Pkcs12Profile::LegacyDes;
    assert!(!secret.outputs_match(&legacy), "a changed profile rewrites");

    let mut new_password = wanted.clone();
    new_password.keystores.jks.as_mut().unwrap().password = "other".into();
    assert!(
        !secret.outputs_match(&new_password),
        "a changed JKS password rewrites"
    );
    let mut new_password = wanted.clone();
    new_password.keystores.pkcs12.as_mut().unwrap().password = "other".into();
    assert!(
        !secret.outputs_match(&new_password),
        "a changed PKCS#12 password rewrites"
    );
    let mut new_alias = wanted.clone();
    new_alias.keystores.jks.as_mut().unwrap().alias = "api".into();
    assert!(
        !secret.outputs_match(&new_alias),
        "a changed alias rewrites"
    );
    assert!(
        !secret.outputs_match(&OutputFormats::default()),
        "keystores no longer wanted"
    );

    // Another certificate in tls.crt: the keystores are stale.
    let other = bundle_with_same_ca_shape();
    let mut stale = stored(write_all(&bundle, &wanted), &other);
    assert!(!stale.outputs_match(&wanted));
    stale.extra.clear();
    assert!(!stale.outputs_match(&wanted), "wanted but missing");
}

fn bundle_with_same_ca_shape() -> Bundle {
    bundle(KeyAlgorithm::EcdsaP256)
}
