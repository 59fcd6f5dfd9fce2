use super::*;
use crate::api::annotations as ann;
use serde_json::json;

fn ingress(spec: Value) -> Value {
    json!({
        "metadata": { "name": "web", "annotations": { ann::CLUSTER_ISSUER: "le" } },
        "spec": spec,
    })
}

/// The written patch is exactly what the diff of the original and the
/// patched Ingress gives, byte for byte.
fn assert_patch_is_the_diff(original: &Value) -> Option<Value> {
    let written = ingress_patch(original, &MutationConfig::default())
        .unwrap()
        .patch?;
    let mutated = patch::apply_json(original, &written).unwrap();
    let diffed = patch::diff_json(original, &mutated).unwrap().unwrap();
    assert_eq!(
        String::from_utf8(written).unwrap(),
        String::from_utf8(diffed).unwrap(),
        "{original}"
    );
    Some(mutated)
}

#[test]
fn every_way_of_completing_tls_is_written_as_the_diff_would_be() {
    let rules = json!([{ "host": "a.example.com" }, { "host": "b.example.com" }, { "host": "a.example.com" }]);
    for tls in [None, Some(json!(null)), Some(json!([]))] {
        let mut spec = json!({ "rules": rules });
        if let Some(tls) = tls {
            spec["tls"] = tls;
        }
        let mutated = assert_patch_is_the_diff(&ingress(spec)).expect("patched");
        assert_eq!(
            mutated["spec"]["tls"],
            json!([{ "hosts": ["a.example.com", "b.example.com"], "secretName": "web-tls" }])
        );
    }
    let spec = json!({ "tls": [
        { "hosts": ["a.example.com"] },
        { "hosts": ["b.example.com"], "secretName": null },
        { "hosts": ["c.example.com"], "secretName": "web-tls" },
        { "secretName": "", "hosts": ["d.example.com"], "x": 1 },
        { "hosts": ["e.example.com"], "secretName": "mine" },
    ] });
    let mutated = assert_patch_is_the_diff(&ingress(spec)).expect("patched");
    let names: Vec<&str> = mutated["spec"]["tls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["secretName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["web-tls-1", "web-tls-2", "web-tls", "web-tls-3", "mine"]
    );
    // Re-invoked on its own output, the webhook has nothing more to say.
    assert_eq!(assert_patch_is_the_diff(&mutated), None);
}

#[test]
fn warnings_and_refusals() {
    let config = MutationConfig::default();
    let no_hosts = ingress_patch(&ingress(json!({ "rules": [{ "http": {} }] })), &config).unwrap();
    assert_eq!(no_hosts.warnings, [no_hosts_warning()]);
    let no_spec = ingress_patch(&ingress(Value::Null), &config).unwrap();
    assert_eq!(no_spec.warnings, [no_hosts_warning()]);
    let acme = json!({ "metadata": { "name": "w", "annotations": { ann::TLS_ACME: "true" } } });
    assert_eq!(
        ingress_patch(&acme, &config).unwrap().warnings,
        [no_default_issuer_warning()]
    );
    let bad = ingress(json!({ "tls": [{ "hosts": ["a.example.com"] }, "x"] }));
    assert_eq!(
        ingress_patch(&bad, &config).unwrap_err().field,
        "spec.tls[1]"
    );
    let plain =
        json!({ "metadata": { "name": "w" }, "spec": { "rules": [{ "host": "a.example.com" }] } });
    assert_eq!(
        mutate_ingress(&plain, &config),
        Ok(MutationOutcome::unchanged())
    );
}
