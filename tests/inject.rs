//! `certweave inject` on realistic manifests, compared with golden files.
//! Set `UPDATE_GOLDEN=1` to rewrite the expected outputs after an intended
//! change, and review the diff.

use std::path::Path;
use std::process::{Command, Output};

fn inject(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_certweave"))
        .arg("inject")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn golden(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let input = dir.join(format!("{name}.yaml"));
    let expected_path = dir.join(format!("{name}.out.yaml"));
    let out = inject(&["-f", input.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let actual = String::from_utf8(out.stdout).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(
        actual,
        expected,
        "inject output of {name} differs from {}",
        expected_path.display()
    );

    // Injecting the output again changes nothing, byte for byte.
    let again = inject(&["-f", "-"], Some(&actual));
    assert!(again.status.success());
    assert_eq!(
        String::from_utf8(again.stdout).unwrap(),
        actual,
        "{name}: inject is not idempotent"
    );
}

#[test]
fn cert_manager_docs_ingress() {
    golden("cert-manager-ingress");
}

#[test]
fn deployment_with_two_containers_and_a_cronjob() {
    golden("deployment-two-containers");
}

#[test]
fn inject_agrees_with_the_webhook() {
    // Same Pod through `inject` and through the admission code path: same object.
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns1", "labels": {"app": "api"},
                     "annotations": {"certweave.io/issuer": "ca", "certweave.io/tls-proxy": "8443:8080"}},
        "spec": {"containers": [{"name": "api", "image": "api:1"}]}
    });
    let out = inject(&["-f", "-"], Some(&serde_yaml_ng::to_string(&pod).unwrap()));
    assert!(out.status.success());
    let injected: serde_json::Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    let admitted = certweave::webhook::pod::mutate_pod(&pod, "ns1", &Default::default())
        .unwrap()
        .object
        .unwrap();
    assert_eq!(injected, admitted);
}

#[test]
fn invalid_annotation_prints_nothing_and_exits_2() {
    let stream = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    metadata:\n      labels: {app: web}\n      annotations:\n        certweave.io/issuer: ca\n        certweave.io/mount-path: tls\n    spec:\n      containers: [{name: web, image: web}]\n";
    let out = inject(&["-f", "-"], Some(stream));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing is printed on error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("document 2 (Deployment web)"), "{stderr}");
    assert!(
        stderr.contains("spec.template.certweave.io/mount-path")
            || stderr.contains("certweave.io/mount-path"),
        "{stderr}"
    );
    assert!(stderr.contains("absolute"), "{stderr}");

    let out = inject(&["-f", "/nonexistent/file.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.yaml"));
}

#[test]
fn namespace_flag_applies_to_documents_without_one() {
    // The default DNS names are derived from the namespace; a namespace that
    // cannot appear in a DNS name is refused, whether it comes from the
    // document or from --namespace.
    let stream = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {app: api}\n  annotations: {certweave.io/issuer: ca}\nspec:\n  containers: [{name: api, image: api}]\n";
    let out = inject(&["-f", "-", "--namespace", "Payments_Team"], Some(stream));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("metadata.namespace"));
    let out = inject(&["-f", "-", "--namespace", "payments"], Some(stream));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let with_own = stream.replace("  name: p\n", "  name: p\n  namespace: Payments_Team\n");
    let out = inject(&["-f", "-", "--namespace", "payments"], Some(&with_own));
    assert_eq!(
        out.status.code(),
        Some(2),
        "the document's own namespace wins"
    );
}

#[test]
fn annotated_gateway() {
    golden("gateway");
}
