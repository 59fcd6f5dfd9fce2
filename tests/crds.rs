//! The CRDs that `certweave crds` prints (`certweave::api::crds_yaml()`):
//!
//! - the committed copies (the chart's `crds/` and `webhook-config/`) are
//!   exactly the generator's output;
//! - every schema is structural, as the API server requires;
//! - names, status subresource and printer columns are cert-manager's;
//! - every CEL rule compiles, is cheap, and decides as
//!   `CertificateSpec::plan` / `IssuerSpec::config` do (evaluated here with
//!   kube-cel, the API server's CEL dialect; `e2e/` sends the same objects,
//!   `tests/support/crd_cases.rs`, to real API servers);
//! - the cert-manager documentation manifests pass the rules and plan.

#[path = "support/crd_cases.rs"]
mod crd_cases;

use crd_cases::{certificate_with, yaml, DOCS_CERTIFICATE, DOCS_CLUSTER_ISSUER};

use certweave::api::certificate::{Certificate, SUPPORTED_USAGES};
use certweave::api::issuer::{ClusterIssuer, Issuer, IssuerConfig};
use certweave::model::KeyUsage;
use serde::Deserialize;
use serde_json::{json, Value};

const COMMITTED_COPIES: [&str; 2] = [
    "charts/certweave/crds/crds.yaml",
    "webhook-config/crds.yaml",
];

const REGENERATE: &str = "cargo run -q -- crds > charts/certweave/crds/crds.yaml && \
                          cp charts/certweave/crds/crds.yaml webhook-config/crds.yaml";

/// The generated CRDs, as JSON values, in stream order.
fn crds() -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(&certweave::api::crds_yaml())
        .map(|doc| Value::deserialize(doc).expect("certweave crds prints valid YAML"))
        .collect()
}

fn crd(kind: &str) -> Value {
    crds()
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

fn schema(kind: &str) -> Value {
    crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Every kind certweave serves.
const KINDS: [&str; 4] = [
    "Certificate",
    "CertificateRequest",
    "Issuer",
    "ClusterIssuer",
];

#[test]
fn committed_copies_are_the_generator_output() {
    let generated = certweave::api::crds_yaml();
    for path in COMMITTED_COPIES {
        let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        let committed = std::fs::read_to_string(&full)
            .unwrap_or_else(|e| panic!("{path}: {e}; generate it with:\n  {REGENERATE}"));
        if committed != generated {
            let line = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
            panic!(
                "{path} differs from `certweave crds` (first at line {}): the Rust types in \
                 src/api changed. Regenerate both copies with:\n  {REGENERATE}",
                line + 1
            );
        }
    }
}

#[test]
fn four_cert_manager_kinds_with_status_and_columns() {
    let crds = crds();
    let names: Vec<&str> = crds
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "certificates.cert-manager.io",
            "certificaterequests.cert-manager.io",
            "issuers.cert-manager.io",
            "clusterissuers.cert-manager.io"
        ]
    );
    for crd in &crds {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap();
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(crd["spec"]["group"], "cert-manager.io", "{kind}");
        assert_eq!(
            crd["spec"]["names"]["categories"],
            json!(["cert-manager"]),
            "{kind}"
        );
        let versions = crd["spec"]["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1, "{kind}: one version");
        let v1 = &versions[0];
        assert_eq!(v1["name"], "v1");
        assert_eq!(v1["served"], true);
        assert_eq!(v1["storage"], true);
        assert_eq!(
            v1["subresources"]["status"],
            json!({}),
            "{kind}: status subresource"
        );
        let columns: Vec<(&str, &str)> = v1["additionalPrinterColumns"]
            .as_array()
            .unwrap_or_else(|| panic!("{kind}: no printer columns"))
            .iter()
            .filter(|c| c.get("priority").is_none())
            .map(|c| (c["name"].as_str().unwrap(), c["jsonPath"].as_str().unwrap()))
            .collect();
        let ready = ("Ready", r#".status.conditions[?(@.type=="Ready")].status"#);
        let age = ("Age", ".metadata.creationTimestamp");
        let expected = match kind {
            "Certificate" => vec![
                ready,
                ("Secret", ".spec.secretName"),
                ("Issuer", ".spec.issuerRef.name"),
                age,
            ],
            // As cert-manager's.
            "CertificateRequest" => vec![
                (
                    "Approved",
                    r#".status.conditions[?(@.type=="Approved")].status"#,
                ),
                (
                    "Denied",
                    r#".status.conditions[?(@.type=="Denied")].status"#,
                ),
                ready,
                ("Issuer", ".spec.issuerRef.name"),
                ("Requestor", ".spec.username"),
                age,
            ],
            _ => vec![ready, age],
        };
        assert_eq!(columns, expected, "{kind}: printer columns");
    }
    let certificate = crd("Certificate");
    assert_eq!(certificate["spec"]["scope"], "Namespaced");
    assert_eq!(
        certificate["spec"]["names"]["shortNames"],
        json!(["cert", "certs"])
    );
    let request = crd("CertificateRequest");
    assert_eq!(request["spec"]["scope"], "Namespaced");
    assert_eq!(request["spec"]["names"]["shortNames"], json!(["cr", "crs"]));
    assert_eq!(crd("Issuer")["spec"]["scope"], "Namespaced");
    assert_eq!(crd("ClusterIssuer")["spec"]["scope"], "Cluster");
}

/// Walks a schema node, calling `visit(path, node, list_ancestors)`.
fn walk(path: &str, node: &Value, lists: usize, visit: &mut dyn FnMut(&str, &Value, usize)) {
    visit(path, node, lists);
    if let Some(properties) = node.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            walk(&format!("{path}.{name}"), child, lists, visit);
        }
    }
    if let Some(items) = node.get("items") {
        walk(&format!("{path}[]"), items, lists + 1, visit);
    }
    if let Some(additional) = node.get("additionalProperties").filter(|a| a.is_object()) {
        walk(&format!("{path}{{}}"), additional, lists + 1, visit);
    }
}

/// The API server's structural-schema rules, as far as certweave's schemas
/// need them: a type on every node (no node is left to
/// `x-kubernetes-preserve-unknown-fields`), no `$ref` or logical
/// combinators, `properties` and `additionalProperties` not together, and a
/// root that leaves `metadata` to the server.
#[test]
fn every_schema_is_structural() {
    for kind in KINDS {
        let root = schema(kind);
        assert_eq!(root["type"], "object", "{kind}: root type");
        assert!(
            root["properties"].get("metadata").is_none(),
            "{kind}: metadata must be left to the API server"
        );
        assert!(root["properties"]["spec"].is_object(), "{kind}: spec");
        assert!(root["properties"]["status"].is_object(), "{kind}: status");
        walk(kind, &root, 0, &mut |path, node, _| {
            let obj = node
                .as_object()
                .unwrap_or_else(|| panic!("{path}: a schema must be an object, got {node}"));
            for forbidden in [
                "$ref",
                "anyOf",
                "oneOf",
                "allOf",
                "not",
                "definitions",
                "$defs",
            ] {
                assert!(
                    !obj.contains_key(forbidden),
                    "{path}: `{forbidden}` is not structural; inline the type"
                );
            }
            // Unknown fields are pruned everywhere, except inside a
            // cert-manager field certweave refuses by name: that field is
            // kept as given so that the rule on its parent sees it.
            for (name, field) in obj
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                // A webhook solver's `config` is the one object passed on
                // verbatim, to a solver whose schema certweave cannot know.
                let passed_verbatim = path.ends_with(".dns01.webhook") && name == "config";
                if field.get("x-kubernetes-preserve-unknown-fields").is_some() && !passed_verbatim {
                    let refusing = format!("!has(self.{name})");
                    let rules = obj
                        .get("x-kubernetes-validations")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    assert!(
                        rules.iter().any(|r| r["rule"] == refusing.as_str()),
                        "{path}.{name}: unknown fields are pruned everywhere; give the field a schema (or refuse it with {refusing})"
                    );
                }
            }
            let ty = obj
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{path}: every node needs a `type`"));
            assert!(
                ["object", "array", "string", "integer", "number", "boolean"].contains(&ty),
                "{path}: unknown type {ty:?}"
            );
            assert!(
                !(obj.contains_key("properties") && obj.contains_key("additionalProperties")),
                "{path}: properties and additionalProperties are exclusive"
            );
            if ty == "array" {
                assert!(
                    obj.get("items").is_some_and(Value::is_object),
                    "{path}: an array needs one `items` schema"
                );
            }
            if let Some(required) = obj.get("required").and_then(Value::as_array) {
                for field in required {
                    let field = field.as_str().unwrap();
                    assert!(
                        obj["properties"].get(field).is_some(),
                        "{path}: required {field} has no schema"
                    );
                }
            }
        });
    }
}

/// Every rule of a schema, with the path of the node it sits on and how many
/// lists (or maps) enclose it.
fn rules(kind: &str) -> Vec<(String, String, String, usize)> {
    let mut out = Vec::new();
    walk(kind, &schema(kind), 0, &mut |path, node, lists| {
        for rule in node
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push((
                path.to_owned(),
                rule["rule"].as_str().unwrap().to_owned(),
                rule["message"].as_str().unwrap_or("").to_owned(),
                lists,
            ));
        }
    });
    out
}

#[test]
fn cel_rules_compile_name_the_field_and_stay_cheap() {
    for kind in KINDS {
        let compiled = kube_cel::compile_schema(&schema(kind));
        assert!(
            !compiled.has_errors(),
            "{kind}: CEL rules do not compile: {:?}",
            compiled.compilation_errors()
        );
        let rules = rules(kind);
        assert!(
            rules.len() >= 2,
            "{kind}: expected CEL rules, got {rules:?}"
        );
        for (path, rule, message, _) in &rules {
            assert!(
                message.starts_with("spec"),
                "{path}: the message of `{rule}` must start with the field it is about: {message:?}"
            );
            assert!(
                message.contains("; "),
                "{path}: the message of `{rule}` must say how to fix it: {message:?}"
            );
            // No comprehension macros: each rule costs a constant, whatever
            // the size of the object, so the CEL cost budget only sees the
            // cardinality of the lists around it.
            for macro_ in [".all(", ".exists(", ".exists_one(", ".map(", ".filter("] {
                assert!(
                    !rule.contains(macro_),
                    "{path}: `{rule}` iterates ({macro_}); bound it with maxItems or move it to plan()"
                );
            }
        }
    }
    // Rules inside a list run once per item: the list must be bounded.
    let solvers =
        &schema("Issuer")["properties"]["spec"]["properties"]["acme"]["properties"]["solvers"];
    assert!(
        solvers["maxItems"].as_u64().is_some_and(|n| n <= 100),
        "solvers carries per-item rules and needs maxItems"
    );
    for kind in KINDS {
        for (path, rule, _, lists) in rules(kind) {
            if lists > 0 {
                assert!(
                    path.contains(".solvers[]"),
                    "{path}: `{rule}` runs per list item; bound that list with maxItems"
                );
            }
        }
    }
    let certificate: Vec<String> = rules("Certificate").into_iter().map(|r| r.1).collect();
    for expected in [
        "has(self.dnsNames)",
        "has(self.renewBeforePercentage)",
        "self.kind in",
    ] {
        assert!(
            certificate.iter().any(|r| r.contains(expected)),
            "no Certificate rule uses {expected}"
        );
    }
    let issuer: Vec<String> = rules("Issuer").into_iter().map(|r| r.1).collect();
    assert_eq!(
        issuer,
        rules("ClusterIssuer")
            .into_iter()
            .map(|r| r.1)
            .collect::<Vec<_>>()
    );
    for expected in [
        "has(self.selfSigned)",
        "has(self.http01) != has(self.dns01)",
    ] {
        assert!(
            issuer.iter().any(|r| r.contains(expected)),
            "no Issuer rule uses {expected}"
        );
    }
}

/// Runs an object through its kind's CEL rules: the messages of the rules
/// it breaks.
fn cel(object: &Value) -> Vec<String> {
    let kind = object["kind"].as_str().unwrap();
    match kube_cel::validate(&schema(kind), object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

#[test]
fn cert_manager_documentation_manifests_apply_and_plan() {
    let certificate = yaml(DOCS_CERTIFICATE);
    assert_eq!(cel(&certificate), Vec::<String>::new());
    let typed: Certificate = serde_json::from_value(certificate).unwrap();
    let plan = typed
        .spec
        .plan()
        .expect("the documentation Certificate plans");
    assert_eq!(plan.issuer.to_string(), "ClusterIssuer/letsencrypt-staging");
    assert_eq!(plan.request.dns_names, ["example.com", "www.example.com"]);

    let issuer = yaml(DOCS_CLUSTER_ISSUER);
    assert_eq!(cel(&issuer), Vec::<String>::new());
    let typed: ClusterIssuer = serde_json::from_value(issuer.clone()).unwrap();
    assert!(matches!(typed.spec.config(), Ok(IssuerConfig::Acme(_))));
    // The same spec as a namespaced Issuer.
    let mut namespaced = issuer;
    namespaced["kind"] = json!("Issuer");
    namespaced["metadata"]["namespace"] = json!("sandbox");
    assert_eq!(cel(&namespaced), Vec::<String>::new());
    let typed: Issuer = serde_json::from_value(namespaced).unwrap();
    typed.spec.config().unwrap();

    for other in [
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: selfsigned}\nspec: {selfSigned: {}}\n",
        "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: ca}\nspec: {ca: {secretName: root-ca}}\n",
    ] {
        let issuer = yaml(other);
        assert_eq!(cel(&issuer), Vec::<String>::new(), "{other}");
        let typed: Issuer = serde_json::from_value(issuer).unwrap();
        typed.spec.config().unwrap();
    }
}

/// Each CEL rule refuses what the Rust check refuses, with a message about
/// the same field. (The Rust checks stay the authority: they also see what
/// CEL does not, such as DNS syntax and durations.)
#[test]
fn cel_rules_agree_with_plan_and_config() {
    let certificates = crd_cases::refused_certificates();
    for (object, cel_message, plan_field) in certificates {
        let refused = cel(&object);
        assert!(
            refused.iter().any(|m| m.contains(cel_message)),
            "CEL should refuse {} with {cel_message:?}, said {refused:?}",
            object["spec"]
        );
        let typed: Certificate = serde_json::from_value(object.clone()).unwrap();
        let errors = typed.spec.plan().unwrap_err();
        assert!(
            errors.iter().any(|e| e.field == plan_field),
            "plan should refuse {} at {plan_field}, said {errors:?}",
            object["spec"]
        );
    }

    // What both accept.
    for object in crd_cases::accepted_certificates() {
        assert_eq!(cel(&object), Vec::<String>::new(), "{}", object["spec"]);
        let typed: Certificate = serde_json::from_value(object.clone()).unwrap();
        typed
            .spec
            .plan()
            .unwrap_or_else(|e| panic!("{}: {e:?}", object["spec"]));
    }

    let issuers = crd_cases::refused_cluster_issuers();
    for (object, cel_message, config_field) in issuers {
        let refused = cel(&object);
        assert!(
            refused.iter().any(|m| m.contains(cel_message)),
            "CEL should refuse {} with {cel_message:?}, said {refused:?}",
            object["spec"]
        );
        let typed: ClusterIssuer = serde_json::from_value(object.clone()).unwrap();
        let error = typed.spec.config().unwrap_err();
        assert_eq!(error.field, config_field, "{}: {error}", object["spec"]);
    }

    for object in crd_cases::accepted_cluster_issuers() {
        assert_eq!(cel(&object), Vec::<String>::new(), "{}", object["spec"]);
        let typed: ClusterIssuer = serde_json::from_value(object.clone()).unwrap();
        typed
            .spec
            .config()
            .unwrap_or_else(|e| panic!("{}: {e}", object["spec"]));
    }
}

#[test]
fn enums_accept_what_the_engine_parses() {
    let spec = &schema("Certificate")["properties"]["spec"]["properties"];
    assert_eq!(spec["usages"]["items"]["enum"], json!(SUPPORTED_USAGES));
    for usage in SUPPORTED_USAGES {
        assert!(KeyUsage::parse(usage).is_some(), "{usage}");
    }
    let key = &spec["privateKey"]["properties"];
    for (field, values) in [
        ("algorithm", json!(["RSA", "ECDSA", "Ed25519"])),
        ("encoding", json!(["PKCS1", "PKCS8"])),
        ("rotationPolicy", json!(["Never", "Always"])),
    ] {
        assert_eq!(key[field]["enum"], values, "privateKey.{field}");
    }
    for value in ["RSA", "ECDSA", "Ed25519"] {
        let object = certificate_with(|s| s["privateKey"] = json!({ "algorithm": value }));
        let typed: Certificate = serde_json::from_value(object).unwrap();
        typed.spec.plan().unwrap();
    }
    // cert-manager declares no schema defaults and neither does certweave:
    // what an absent field means is decided once, by plan().
    for kind in KINDS {
        walk(kind, &schema(kind), 0, &mut |path, node, _| {
            assert!(node.get("default").is_none(), "{path}: unexpected default");
        });
    }
}
