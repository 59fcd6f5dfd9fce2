use super::*;
use crate::webhook::sidecar::PROXY_CONTAINER;
use serde_json::json;

fn annotated_pod(annotations: Value) -> Value {
    json!({
        "metadata": { "annotations": annotations },
        "spec": { "containers": [
            { "name": "web", "image": "web:1" },
            { "name": "log", "image": "log:1" },
        ] },
    })
}

#[test]
fn the_patch_creates_missing_lists_and_maps_and_appends_to_present_ones() {
    let config = MutationConfig::default();
    let mount = json!({ "name": VOLUME_NAME, "mountPath": "/tls", "readOnly": true });
    let volume = json!({ "name": VOLUME_NAME, "secret": { "secretName": "web-tls" } });
    let injected = json!({ ann::POD_INJECTED: "true" });
    // Absent, null, and (for labels, unread once the service is named)
    // of the wrong type: each is replaced by a fresh list or map.
    for missing in [None, Some(Value::Null), Some(json!("x"))] {
        let mut pod = json!({
            "metadata": { "annotations": {
                "certweave.io/issuer": "ca",
                "certweave.io/service": "web",
                "certweave.io/mount-path": "/tls",
            } },
            "spec": { "containers": [{ "name": "web" }] },
        });
        if let Some(value) = &missing {
            pod["metadata"]["labels"] = value.clone();
            if value.is_null() {
                pod["spec"]["volumes"] = Value::Null;
                pod["spec"]["containers"][0]["volumeMounts"] = Value::Null;
            }
        }
        let mutated = mutate_pod(&pod, "ns", &config).unwrap().object.unwrap();
        assert_eq!(mutated["metadata"]["labels"], injected, "{missing:?}");
        assert_eq!(
            mutated["metadata"]["annotations"][ann::POD_INJECTED],
            "true"
        );
        assert_eq!(mutated["spec"]["volumes"], json!([volume]), "{missing:?}");
        assert_eq!(
            mutated["spec"]["containers"][0]["volumeMounts"],
            json!([mount]),
            "{missing:?}"
        );
    }
    // Present lists and maps keep what they have, in order.
    let pod = json!({
        "metadata": {
            "labels": { "app": "web" },
            "annotations": { "certweave.io/issuer": "ca", "certweave.io/mount-path": "/tls" },
        },
        "spec": {
            "volumes": [{ "name": "data" }],
            "containers": [{ "name": "web", "volumeMounts": [{ "name": "data", "mountPath": "/d" }] }],
        },
    });
    let mutated = mutate_pod(&pod, "ns", &config).unwrap().object.unwrap();
    assert_eq!(
        mutated["metadata"]["labels"],
        json!({ "app": "web", ann::POD_INJECTED: "true" })
    );
    assert_eq!(
        mutated["spec"]["volumes"],
        json!([{ "name": "data" }, volume])
    );
    assert_eq!(
        mutated["spec"]["containers"][0]["volumeMounts"],
        json!([{ "name": "data", "mountPath": "/d" }, mount])
    );
    // Injected once, left alone after.
    assert_eq!(
        mutate_pod(&mutated, "ns", &config),
        Ok(MutationOutcome::unchanged())
    );
}

#[test]
fn the_sidecar_follows_the_app_containers_and_escapes_what_it_is_given() {
    let config = MutationConfig {
        proxy_image: "registry.local/\"odd\"\\image:1".into(),
        ..MutationConfig::default()
    };
    let mut pod = annotated_pod(json!({
        "certweave.io/issuer": "ca",
        "certweave.io/service": "web",
        "certweave.io/tls-proxy": "9443:80",
        "certweave.io/mount-path": "/etc/t\u{e9}ls \"x\"",
    }));
    pod["spec"]["containers"][1]["volumeMounts"] = json!([]);
    let mutated = mutate_pod(&pod, "ns", &config).unwrap().object.unwrap();
    let containers = mutated["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 3);
    let sidecar = &containers[2];
    assert_eq!(sidecar["name"], PROXY_CONTAINER);
    assert_eq!(sidecar["image"], config.proxy_image.as_str());
    assert_eq!(sidecar["args"][2], "0.0.0.0:9443");
    assert_eq!(sidecar["args"][4], "127.0.0.1:80");
    assert_eq!(sidecar["args"][6], "/etc/t\u{e9}ls \"x\"");
    assert_eq!(sidecar["ports"][0]["containerPort"], 9443);
    assert_eq!(sidecar["volumeMounts"], containers[0]["volumeMounts"]);
    assert_eq!(containers[1]["volumeMounts"], containers[0]["volumeMounts"]);
}

#[test]
fn a_container_listed_twice_is_mounted_once() {
    let pod = annotated_pod(json!({
        "certweave.io/issuer": "ca",
        "certweave.io/service": "web",
        "certweave.io/containers": "web, web",
    }));
    let mutated = mutate_pod(&pod, "default", &MutationConfig::default())
        .unwrap()
        .object
        .unwrap();
    let containers = mutated["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers[0]["volumeMounts"].as_array().unwrap().len(), 1);
    assert!(containers[1].get("volumeMounts").is_none());
}

#[test]
fn a_derived_secret_name_follows_the_kubernetes_name_rule() {
    // A 63-character service gives a 67-character Secret name: longer
    // than a DNS label, and still a valid Kubernetes object name.
    let svc = "a".repeat(63);
    let object = annotated_pod(json!({ "certweave.io/issuer": "ca", "certweave.io/service": svc }));
    let mutated = mutate_pod(&object, "default", &MutationConfig::default()).unwrap();
    let volume = &mutated.object.unwrap()["spec"]["volumes"][0];
    assert_eq!(volume["secret"]["secretName"], format!("{svc}-tls"));
}
