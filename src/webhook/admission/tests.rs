use super::*;
use crate::api::annotations as ann;
use crate::webhook::envelope::tests::arb_json;
use crate::webhook::envelope::Envelope;
use crate::webhook::patch;
use base64::Engine;
use proptest::prelude::*;
use serde_json::json;

#[test]
fn malformed_bodies_get_the_errors_of_from_slice() {
    for body in [
        &b"{\"apiVersion\":\"admission.k8s.io/v1\xff\"}"[..],
        b"\xfe{}",
        b"{\"request\":{\"uid\":\"\xc3\x28\"}}",
        b"{\"request\":{\"uid\":\"a\"",
        b"{\"kind\":\"\\ud800\"}",
        b"",
    ] {
        let reference = serde_json::from_slice::<Envelope>(body).err().unwrap();
        let ours = review(body, &MutationConfig::default()).unwrap_err();
        let expected = match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None => "the body is empty".to_owned(),
            Some(b'{') => format!("the body is not a valid AdmissionReview: {reference}"),
            Some(_) => "the body is not a JSON object".to_owned(),
        };
        assert!(ours.0.starts_with(&format!("{expected}; ")), "{}", ours.0);
    }
}

/// The review as computed before managedFields was skipped: the whole
/// object decoded as a `Value`, mutated, and diffed by json_patch itself.
/// Returns the mutated object (`None` if unchanged), or the denial
/// message. Patches are compared by what they do: the Pod patch is
/// written in its own order, not in the order of a diff.
fn reference_outcome(body: &[u8]) -> Result<Option<Value>, String> {
    let review: Value = serde_json::from_slice(body).unwrap();
    let request = &review["request"];
    let object = &request["object"];
    let config = MutationConfig::default();
    let outcome = match request["kind"]["kind"].as_str() {
        Some("Pod") => pod::mutate_pod(
            object,
            request["namespace"].as_str().unwrap_or("default"),
            &config,
        ),
        _ => ingress::mutate_ingress(object, &config),
    }
    .map_err(|e| e.to_string())?;
    Ok(outcome.object.filter(|mutated| mutated != object))
}

fn outcome_of(body: &[u8]) -> Result<Option<Value>, String> {
    let reviewed = review(body, &MutationConfig::default()).expect("well-formed review");
    if let Some(denial) = reviewed.denial {
        return Err(denial);
    }
    let response: Value = serde_json::from_slice(&reviewed.body).unwrap();
    let original: Value = serde_json::from_slice(body).unwrap();
    Ok(response["response"]["patch"].as_str().map(|b64| {
        let json = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let ops: json_patch::Patch = serde_json::from_slice(&json).unwrap();
        patch::apply(&original["request"]["object"], &ops).expect("the patch applies")
    }))
}

#[test]
fn reviews_match_a_review_of_the_whole_object() {
    let pod: Value =
        serde_json::from_str(include_str!("../../../benches/fixtures/pod-review.json")).unwrap();
    let ingress: Value = serde_json::from_str(include_str!(
        "../../../benches/fixtures/ingress-review.json"
    ))
    .unwrap();
    let mut bodies = vec![pod.clone(), ingress.clone()];
    for managed_fields in [json!(null), json!(7), json!({"a": [1]}), json!([])] {
        for base in [&pod, &ingress] {
            let mut body = base.clone();
            body["request"]["object"]["metadata"]["managedFields"] = managed_fields.clone();
            bodies.push(body);
        }
    }
    // Odd metadata: the mutations must fail (or pass) the same way.
    for metadata in [json!("x"), json!(null), json!([{"managedFields": 1}])] {
        for base in [&pod, &ingress] {
            let mut body = base.clone();
            body["request"]["object"]["metadata"] = metadata.clone();
            bodies.push(body);
        }
    }
    for body in bodies {
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(outcome_of(&bytes), reference_outcome(&bytes), "{body}");
    }
    assert!(matches!(
        outcome_of(include_bytes!("../../../benches/fixtures/pod-review.json")),
        Ok(Some(_))
    ));
}

/// Paths (below the object) where a change alters what a mutation sees
/// or does: every annotation and label read, every field the projection
/// keeps, and some it skips.
fn perturbed_paths() -> Vec<Vec<String>> {
    // Every annotation certweave knows rather than those the projection
    // keeps, so that a key missing there is still perturbed here.
    let annotations = ann::ALL;
    let labels = ann::SERVICE_NAME_LABELS
        .into_iter()
        .chain([ann::POD_INJECTED, "pod-template-hash"]);
    let mut paths: Vec<Vec<String>> = annotations
        .into_iter()
        .map(|key| vec!["metadata".into(), "annotations".into(), key.into()])
        .chain(labels.map(|key| vec!["metadata".into(), "labels".into(), key.into()]))
        .collect();
    for path in [
        "metadata",
        "metadata/name",
        "metadata/namespace",
        "metadata/generateName",
        "metadata/annotations",
        "metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
        "metadata/labels",
        "metadata/ownerReferences",
        "spec",
        "spec/volumes",
        "spec/volumes/0",
        "spec/volumes/0/name",
        "spec/volumes/1/name",
        "spec/volumes/0/secret",
        "spec/containers",
        "spec/containers/0",
        "spec/containers/0/name",
        "spec/containers/1/name",
        "spec/containers/0/image",
        "spec/containers/0/volumeMounts",
        "spec/containers/0/volumeMounts/0",
        "spec/containers/0/volumeMounts/0/name",
        "spec/containers/0/volumeMounts/0/mountPath",
        "spec/containers/1/volumeMounts",
        "spec/containers/0/ports",
        "spec/containers/0/ports/0",
        "spec/containers/0/ports/0/containerPort",
        "spec/containers/1/ports/0/containerPort",
        "spec/containers/0/ports/0/name",
        "spec/initContainers",
        "spec/rules",
        "spec/rules/0",
        "spec/rules/0/host",
        "spec/rules/1/host",
        "spec/rules/0/http",
        "spec/tls",
        "spec/tls/0",
        "spec/tls/0/hosts",
        "spec/tls/0/hosts/0",
        "spec/tls/0/secretName",
        "spec/tls/1/secretName",
        "spec/defaultBackend",
        "status",
    ] {
        paths.push(path.split('/').map(|t| t.replace("~1", "/")).collect());
    }
    paths
}

/// Sets (or, with `None`, removes) the value at `path`, if its parent
/// exists; an index one past the end appends.
fn set_path(object: &mut Value, path: &[String], new: Option<Value>) {
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut parent = object;
    for token in parents {
        parent = match parent {
            Value::Object(map) => match map.get_mut(token) {
                Some(child) => child,
                None => return,
            },
            Value::Array(items) => {
                match token.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(child) => child,
                    None => return,
                }
            }
            _ => return,
        };
    }
    match (parent, new) {
        (Value::Object(map), Some(value)) => {
            map.insert(last.clone(), value);
        }
        (Value::Object(map), None) => {
            map.shift_remove(last);
        }
        (Value::Array(items), new) => {
            let Ok(index) = last.parse::<usize>() else {
                return;
            };
            match new {
                Some(value) if index < items.len() => items[index] = value,
                Some(value) if index == items.len() => items.push(value),
                None if index < items.len() => {
                    items.remove(index);
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// Values that matter to the mutations, and arbitrary JSON.
fn perturbation_value() -> impl Strategy<Value = Option<Value>> {
    let interesting = prop::sample::select(vec![
        json!(null),
        json!("true"),
        json!("false"),
        json!(true),
        json!(8443),
        json!(9901),
        json!("8443:8080"),
        json!("9443:8443"),
        json!("ca-issuer"),
        json!("Issuer"),
        json!("ClusterIssuer"),
        json!("cert-manager.io"),
        json!("web"),
        json!("shop, web"),
        json!("shop"),
        json!("certweave-tls"),
        json!("certweave-proxy"),
        json!("/etc/certweave/tls"),
        json!("/etc/certweave/tls/"),
        json!("relative/path"),
        json!("shop.example.com"),
        json!("*.example.com"),
        json!("-bad-"),
        json!("720h"),
        json!(""),
        json!([]),
        json!({}),
        json!([{ "name": "certweave-tls" }]),
        json!({ "name": "certweave-tls", "mountPath": "/etc/certweave/tls" }),
        json!({ "name": "app", "image": "app:1", "ports": [{ "containerPort": 8443 }] }),
        json!([{ "hosts": ["a.example.com"] }, { "hosts": ["b.example.com"], "secretName": "shop-tls" }]),
        json!({ "host": "c.example.com", "http": { "paths": [] } }),
    ]);
    prop_oneof![
        3 => interesting.prop_map(Some),
        1 => arb_json().prop_map(Some),
        1 => Just(None),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// The projected review patches (or denies) exactly as a review of
    /// the whole object, on the fixtures changed at up to four places.
    #[test]
    fn projected_reviews_match_whole_object_reviews(
        ingress in any::<bool>(),
        changes in prop::collection::vec(
            (any::<prop::sample::Index>(), perturbation_value()),
            0..5,
        ),
    ) {
        let fixture: &[u8] = if ingress {
            include_bytes!("../../../benches/fixtures/ingress-review.json")
        } else {
            include_bytes!("../../../benches/fixtures/pod-review.json")
        };
        let mut body: Value = serde_json::from_slice(fixture).unwrap();
        let paths = perturbed_paths();
        for (index, value) in changes {
            let path: &Vec<String> = index.get(&paths);
            set_path(&mut body["request"]["object"], path, value);
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        prop_assert_eq!(outcome_of(&bytes), reference_outcome(&bytes), "{}", body["request"]["object"]);
    }
}

/// A new CertificateRequest records who created it, from the review's
/// userInfo, over whatever the creator wrote; updates and other kinds of
/// the group pass unchanged.
#[test]
fn a_certificate_request_records_its_requester_from_user_info() {
    let review_of = |operation: &str, kind: &str| {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "cert-manager.io", "version": "v1", "kind": kind},
                "operation": operation,
                "namespace": "apps",
                "userInfo": {"username": "system:serviceaccount:apps:csi", "uid": "42",
                             "groups": ["system:serviceaccounts"], "extra": {"scopes": ["x"]}},
                "object": {"apiVersion": "cert-manager.io/v1", "kind": kind,
                           "metadata": {"name": "r", "namespace": "apps"},
                           "spec": {"request": "eA==", "issuerRef": {"name": "ca"},
                                    "username": "admin", "groups": ["system:masters"]}}
            }
        })
        .to_string()
    };
    let mutated = outcome_of(review_of("CREATE", "CertificateRequest").as_bytes())
        .unwrap()
        .expect("patched");
    assert_eq!(
        mutated["spec"]["username"],
        "system:serviceaccount:apps:csi"
    );
    assert_eq!(mutated["spec"]["groups"], json!(["system:serviceaccounts"]));
    assert_eq!(mutated["spec"]["uid"], "42");
    assert_eq!(mutated["spec"]["extra"], json!({"scopes": ["x"]}));
    assert_eq!(mutated["spec"]["request"], "eA==");

    assert_eq!(
        outcome_of(review_of("UPDATE", "CertificateRequest").as_bytes()),
        Ok(None)
    );
    assert_eq!(
        outcome_of(review_of("CREATE", "Certificate").as_bytes()),
        Ok(None)
    );

    let mut without_user: Value =
        serde_json::from_str(&review_of("CREATE", "CertificateRequest")).unwrap();
    without_user["request"]
        .as_object_mut()
        .unwrap()
        .remove("userInfo");
    let denial = outcome_of(without_user.to_string().as_bytes()).unwrap_err();
    assert!(denial.contains("request.userInfo"), "{denial}");
}

/// An annotated Gateway is completed at admission from the projected
/// object exactly as from the whole one; an UPDATE is mutated too, a
/// DELETE is not.
#[test]
fn an_annotated_gateway_gets_its_listener_certificates() {
    let review_of = |operation: &str| {
        json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "g1",
                "kind": {"group": "gateway.networking.k8s.io", "version": "v1", "kind": "Gateway"},
                "operation": operation,
                "namespace": "shop",
                "object": {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"name": "web", "namespace": "shop",
                                 "annotations": {"cert-manager.io/cluster-issuer": "le",
                                                 "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                                 "managedFields": [{"manager": "kubectl"}]},
                    "spec": {"gatewayClassName": "eg", "listeners": [
                        {"name": "https", "hostname": "shop.example.com", "port": 443, "protocol": "HTTPS",
                         "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}
            }
        })
        .to_string()
    };
    let body = review_of("CREATE");
    let mutated = outcome_of(body.as_bytes()).unwrap().expect("patched");
    let whole: Value = serde_json::from_str(&body).unwrap();
    let reference = crate::webhook::gateway::mutate_gateway(&whole["request"]["object"], "shop")
        .unwrap()
        .object
        .unwrap();
    assert_eq!(mutated, reference);
    assert_eq!(
        mutated["spec"]["listeners"][0]["tls"]["certificateRefs"][0]["name"],
        "web-https-tls"
    );
    assert!(outcome_of(review_of("UPDATE").as_bytes())
        .unwrap()
        .is_some());
    assert_eq!(outcome_of(review_of("DELETE").as_bytes()), Ok(None));
}
