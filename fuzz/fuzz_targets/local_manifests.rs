//! Feeds bytes as the one manifest file of a `certweave local` directory to
//! `local::manifests::load`, twice, and checks what it accepted.
//!
//! Crashes on a panic; on two loads of the same file that differ; on a
//! non-UTF-8 file not reported as unreadable; on an error line that does not
//! name the file; on an accepted Certificate without a name, whose stored
//! plan is not what its spec plans to now, that shares its Secret with
//! another Certificate of its namespace, or whose spec does not survive a
//! JSON round trip; and on an accepted Issuer or ClusterIssuer whose spec
//! no longer checks or does not survive a JSON round trip.

#![no_main]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use certweave::api::certificate::CertificateSpec;
use certweave::api::issuer::IssuerSpec;
use certweave::api::{IssuerKind, IssuerRef};
use certweave::local::manifests::{load, Manifests};
use certweave::webhook::MutationConfig;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "certs.yaml";
const NAMESPACE: &str = "default";

static DIR: OnceLock<PathBuf> = OnceLock::new();

/// A directory of this process's own, in memory when `/dev/shm` exists,
/// removed when the process exits normally.
fn dir() -> &'static Path {
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        remove_stale(&base, "certweave-fuzz-local-");
        let dir = base.join(format!("certweave-fuzz-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        // SAFETY: registers a function that takes no arguments and does not
        // unwind.
        unsafe { libc::atexit(remove_dir) };
        dir
    })
}

extern "C" fn remove_dir() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes what processes that are gone left in `base` under `prefix<pid>`:
/// a crash skips `atexit`.
fn remove_stale(base: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// As `certweave local --default-issuer ClusterIssuer/letsencrypt` runs, so
/// `kubernetes.io/tls-acme` Ingresses are read too.
fn config() -> MutationConfig {
    MutationConfig {
        default_issuer: Some(IssuerRef {
            kind: IssuerKind::ClusterIssuer,
            name: "letsencrypt".to_owned(),
        }),
        ..MutationConfig::default()
    }
}

fn same(a: &Manifests, b: &Manifests) {
    assert_eq!(a.certificates, b.certificates, "certificates differ");
    assert_eq!(a.issuers, b.issuers, "issuers differ");
    assert_eq!(
        a.cluster_issuers, b.cluster_issuers,
        "cluster issuers differ"
    );
    assert_eq!(a.secrets, b.secrets, "secrets differ");
    assert_eq!(a.errors, b.errors, "errors differ");
}

fn issuer_checks(what: &str, spec: &IssuerSpec) {
    assert!(
        spec.config().is_ok(),
        "{what} was accepted but its spec does not check: {:?}",
        spec.config()
    );
    let json = serde_json::to_value(spec).expect("an issuer spec serialises");
    let again: IssuerSpec = serde_json::from_value(json.clone())
        .unwrap_or_else(|e| panic!("{what}: its own JSON {json} does not read back: {e}"));
    assert_eq!(&again, spec, "{what} changes in a JSON round trip");
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    std::fs::write(dir.join(FILE), data).expect("the manifest file is written");
    let config = config();
    let first = load(dir, NAMESPACE, &config);
    let second = load(dir, NAMESPACE, &config);
    same(&first, &second);

    if std::str::from_utf8(data).is_err() {
        assert!(
            first.certificates.is_empty() && first.errors.len() == 1,
            "a file that is not UTF-8 was read: {:?}",
            first.errors
        );
    }
    for error in &first.errors {
        assert!(error.starts_with(FILE), "{error:?} does not name the file");
    }

    let mut secrets = BTreeSet::new();
    for (key, cert) in &first.certificates {
        assert!(!key.name.is_empty(), "a Certificate without a name: {key}");
        assert!(
            cert.source.starts_with(&format!("{FILE}#")),
            "{key} comes from {:?}",
            cert.source
        );
        assert_eq!(cert.plan.secret_name, cert.spec.secret_name, "{key}");
        assert!(
            secrets.insert((key.namespace.as_str(), cert.spec.secret_name.as_str())),
            "Secret {}/{} is filled twice",
            key.namespace,
            cert.spec.secret_name
        );
        match cert.spec.plan() {
            Ok(plan) => assert_eq!(plan, cert.plan, "{key}: the plan differs when made again"),
            Err(errors) => panic!("{key} was accepted but its spec no longer plans: {errors:?}"),
        }
        let json = serde_json::to_value(&cert.spec).expect("a certificate spec serialises");
        let again: CertificateSpec = serde_json::from_value(json.clone())
            .unwrap_or_else(|e| panic!("{key}: its own JSON {json} does not read back: {e}"));
        assert_eq!(again, cert.spec, "{key} changes in a JSON round trip");
    }
    for (key, spec) in &first.issuers {
        issuer_checks(&format!("Issuer {key}"), spec);
    }
    for (name, spec) in &first.cluster_issuers {
        issuer_checks(&format!("ClusterIssuer {name}"), spec);
    }
});
