//! Feeds strings to the annotation value parsers, and `key=value` lines as
//! the annotations of a Pod and an Ingress.
//!
//! Crashes on a panic, on a rejection that names another field than the one
//! checked, and on a mutation whose patch does not reproduce it or that is
//! not idempotent.

#![no_main]

use certweave::api::annotations as ann;
use certweave::api::duration::parse_go_duration;
use certweave::api::names::{check_dns_label, check_dns_name, check_mount_path, check_object_name};
use certweave::api::overrides::CertificateOverrides;
use certweave::api::{IssuerKind, IssuerRef};
use certweave::webhook::pod::ProxyPorts;
use certweave::webhook::{ingress, patch, pod, MutationConfig, MutationResult};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};

/// Keys for lines without `=`, in order, so short inputs reach every parser.
const KEYS: [&str; 14] = [
    ann::POD_ISSUER,
    ann::POD_SERVICE,
    ann::POD_DNS_NAMES,
    ann::POD_SECRET_NAME,
    ann::POD_MOUNT_PATH,
    ann::POD_CONTAINERS,
    ann::POD_TLS_PROXY,
    ann::CLUSTER_ISSUER,
    ann::COMMON_NAME,
    ann::DURATION,
    ann::RENEW_BEFORE,
    ann::PRIVATE_KEY_ALGORITHM,
    ann::PRIVATE_KEY_SIZE,
    ann::PRIVATE_KEY_ROTATION_POLICY,
];

fn parsers(s: &str) {
    for (field, result) in [
        ("f.dns", check_dns_name("f.dns", s)),
        ("f.obj", check_object_name("f.obj", s)),
        ("f.label", check_dns_label("f.label", s)),
        ("f.mount", check_mount_path("f.mount", s)),
    ] {
        if let Err(e) = result {
            assert_eq!(e.field, field);
        }
    }
    if check_mount_path("f", s).is_ok() {
        assert!(
            s.trim_end_matches('/').len() > 1,
            "{s:?} mounts over the root"
        );
    }
    if check_dns_label("f", s).is_ok() {
        assert!(check_object_name("f", s).is_ok());
    }
    match parse_go_duration("f.duration", s) {
        Ok(d) => assert_eq!(parse_go_duration("f", s.trim()), Ok(d)),
        Err(e) => assert_eq!(e.field, "f.duration"),
    }
    match ProxyPorts::parse(s) {
        Ok(p) => {
            assert!(p.listen != 0 && p.upstream != 0 && p.listen != p.upstream);
            let again = ProxyPorts::parse(&format!("{}:{}", p.listen, p.upstream));
            assert_eq!(again, Ok(p));
        }
        Err(e) => assert_eq!(e.field, ann::POD_TLS_PROXY),
    }
    match s.parse::<IssuerRef>() {
        Ok(r) => assert_eq!(r.to_string(), s),
        Err(e) => assert_eq!(e.field, "--default-issuer"),
    }
    if let Err(e) = IssuerKind::parse("f.kind", s) {
        assert_eq!(e.field, "f.kind");
    }
}

fn annotations(s: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for (i, line) in s.lines().enumerate() {
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.to_owned(), v),
            None => (KEYS[i % KEYS.len()].to_owned(), line),
        };
        map.insert(key, Value::String(value.to_owned()));
    }
    map
}

fn check_mutation(
    original: &Value,
    result: MutationResult,
    again: impl Fn(&Value) -> MutationResult,
) {
    let Ok(outcome) = result else { return };
    let Some(mutated) = outcome.object else {
        return;
    };
    let ops = patch::diff(original, &mutated);
    let patched = patch::apply(original, &ops).expect("the patch applies");
    assert_eq!(
        patched, mutated,
        "the patch does not reproduce the mutation"
    );
    let second = again(&mutated);
    assert!(
        matches!(&second, Ok(o) if o.object.is_none()),
        "not idempotent: {second:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    parsers(s);
    for line in s.lines() {
        parsers(line);
    }

    let annotations = annotations(s);
    let lookup = |key: &str| Ok(annotations.get(key).and_then(Value::as_str));
    if let Err(e) = CertificateOverrides::from_annotations(lookup) {
        assert!(
            annotations.contains_key(&e.field),
            "{} was blamed but not set",
            e.field
        );
    }

    let config = MutationConfig::default();
    let pod = json!({
        "metadata": { "name": "web", "labels": { "app": "web" }, "annotations": annotations },
        "spec": {
            "containers": [
                { "name": "web", "image": "web:1", "ports": [{ "containerPort": 8080 }] },
                { "name": "log", "image": "log:1",
                  "volumeMounts": [{ "name": "data", "mountPath": "/data" }] },
            ],
            "volumes": [{ "name": "data", "emptyDir": {} }],
        },
    });
    check_mutation(&pod, pod::mutate_pod(&pod, "default", &config), |p| {
        pod::mutate_pod(p, "default", &config)
    });

    let hosts: Vec<&str> = annotations
        .get(ann::POD_DNS_NAMES)
        .and_then(Value::as_str)
        .map(|list| list.split(',').collect())
        .unwrap_or_else(|| vec!["example.com"]);
    let rules: Vec<Value> = hosts.iter().map(|h| json!({ "host": h })).collect();
    let ingress = json!({
        "metadata": { "name": "web", "annotations": annotations },
        "spec": { "rules": rules },
    });
    check_mutation(&ingress, ingress::mutate_ingress(&ingress, &config), |i| {
        ingress::mutate_ingress(i, &config)
    });
});
