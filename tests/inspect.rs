//! `certweave inspect` on fixed certificates (tests/golden/inspect), its
//! text and JSON output compared with golden files. Set `UPDATE_GOLDEN=1`
//! to rewrite them after an intended change, and review the diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/inspect")
        .join(name)
}

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certweave"))
        .arg("inspect")
        .args(args)
        // Three months before the leaf expires.
        .args(["--now", "2027-01-01T00:00:00Z"])
        .output()
        .unwrap()
}

fn golden(name: &str, out: &Output) {
    let actual = String::from_utf8(out.stdout.clone()).unwrap();
    let path = fixture(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        actual,
        expected,
        "inspect output differs from {}",
        path.display()
    );
}

#[test]
fn a_bundle_with_its_key_and_ca() {
    let bundle = fixture("bundle.pem");
    let ca = fixture("ca.crt");
    let args = [bundle.to_str().unwrap(), "--ca", ca.to_str().unwrap()];
    let text = inspect(&args);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    golden("bundle.out.txt", &text);
    let json = inspect(&[&args[..], &["-o", "json"]].concat());
    assert!(json.status.success());
    golden("bundle.out.json", &json);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["privateKey"]["matchesCertificate"], true);
    assert_eq!(report["chainToCa"]["verifies"], true);
    assert_eq!(report["certificates"][0]["timeLeft"], "90d 0h left");
}

#[test]
fn a_der_certificate_and_the_failures_that_set_the_exit_code() {
    let der = inspect(&[fixture("tls.der").to_str().unwrap()]);
    assert!(der.status.success());
    let text = String::from_utf8(der.stdout).unwrap();
    assert!(
        text.contains("DNS names:          shop.example.com, www.shop.example.com"),
        "{text}"
    );

    // Another key: exit 1, said plainly.
    let mismatched = inspect(&[fixture("mismatched.pem").to_str().unwrap()]);
    assert_eq!(mismatched.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&mismatched.stdout).contains("does NOT match the leaf certificate")
    );

    // A chain checked against a CA that did not sign it: exit 1.
    let wrong_ca = inspect(&[
        fixture("ca.crt").to_str().unwrap(),
        "--ca",
        fixture("tls.crt").to_str().unwrap(),
    ]);
    assert_eq!(wrong_ca.status.code(), Some(1));

    // Not a certificate: exit 2 with what to give instead.
    let readme = inspect(&[fixture("README.md").to_str().unwrap()]);
    assert_eq!(readme.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&readme.stderr).contains("not PEM and not a DER certificate"));
    let usage = inspect(&["a", "b"]);
    assert_eq!(usage.status.code(), Some(2));
}
