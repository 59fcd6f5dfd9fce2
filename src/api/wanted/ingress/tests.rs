use super::*;
use serde_json::json;

fn typed(value: &Value) -> Ingress {
    serde_json::from_value(value.clone()).expect("a well-formed Ingress")
}

/// Both ways in give the same Certificates.
fn certificates_of(ingress: &Value) -> Result<Vec<WantedCertificate>, InvalidField> {
    let from_json = certificates_for_ingress_json(ingress, None);
    assert_eq!(certificates_for_ingress(&typed(ingress), None), from_json);
    from_json
}

#[test]
fn one_certificate_per_tls_entry_with_overrides() {
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {
            "cert-manager.io/cluster-issuer": "le",
            "cert-manager.io/duration": "720h",
            "cert-manager.io/private-key-algorithm": "ECDSA"}},
        "spec": {"rules": [{"host": "a.example.com"}, {"host": "b.example.com"}],
                 "tls": [{"hosts": ["a.example.com"], "secretName": "a-tls"}, {"hosts": ["b.example.com"]}]}
    });
    let certs = certificates_of(&ingress).unwrap();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0].name, "a-tls");
    assert_eq!(
        certs[1].name, "web-tls",
        "the entry without secretName got the webhook's default"
    );
    assert_eq!(certs[1].spec.dns_names, ["b.example.com"]);
    assert_eq!(certs[0].spec.duration.as_deref(), Some("720h"));
    assert_eq!(
        certs[0].spec.issuer_ref.kind.as_deref(),
        Some("ClusterIssuer")
    );
    let key = certs[0].spec.private_key.as_ref().unwrap();
    assert_eq!(key.algorithm.as_deref(), Some("ECDSA"));
    assert_eq!(key.size, None, "only what the annotations say is written");
    certs[0].spec.plan().unwrap();
}

#[test]
fn unannotated_ingress_wants_nothing() {
    let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "w"},
                          "spec": {"rules": [{"host": "a.example.com"}]}});
    assert!(certificates_of(&ingress).unwrap().is_empty());
}

#[test]
fn without_tls_every_rule_host_goes_into_one_certificate() {
    let ingress = json!({
        "metadata": {"name": "web", "annotations": {"cert-manager.io/issuer": "ca"}},
        "spec": {"rules": [{"host": "a.example.com"}, {"http": {}}, {"host": "b.example.com"}, {"host": "a.example.com"}]}
    });
    let certs = certificates_of(&ingress).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].name, "web-tls");
    assert_eq!(certs[0].spec.dns_names, ["a.example.com", "b.example.com"]);
    assert_eq!(certs[0].spec.issuer_ref.kind.as_deref(), Some("Issuer"));
    assert_eq!(
        certs[0].spec.issuer_ref.group.as_deref(),
        Some("cert-manager.io")
    );
}

#[test]
fn entries_sharing_a_secret_share_a_certificate() {
    let ingress = json!({
        "metadata": {"name": "web", "annotations": {"cert-manager.io/issuer": "ca"}},
        "spec": {"tls": [
            {"hosts": ["a.example.com", "a.example.com"], "secretName": "s"},
            {"hosts": ["b.example.com"]},
            {"hosts": ["b.example.com", "c.example.com", "c.example.com"], "secretName": "s"},
        ]}
    });
    let certs = certificates_of(&ingress).unwrap();
    let names: Vec<&str> = certs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["s", "web-tls"]);
    assert_eq!(
        certs[0].spec.dns_names,
        [
            "a.example.com",
            "a.example.com",
            "b.example.com",
            "c.example.com"
        ]
    );
}

#[test]
fn refusals_name_the_field() {
    for (ingress, field) in [
        (
            json!({"metadata": {"name": "w", "annotations": {"cert-manager.io/issuer": "ca"}},
                   "spec": {"rules": [{"host": "a.example.com"}, {"host": "-bad-"}]}}),
            "spec.rules[1].host",
        ),
        (
            json!({"metadata": {"name": "w", "annotations": {"cert-manager.io/issuer": "ca"}},
                   "spec": {"tls": [{"hosts": ["a.example.com"]}, {"hosts": []}]}}),
            "spec.tls[1].hosts",
        ),
        (
            json!({"metadata": {"annotations": {"cert-manager.io/issuer": "ca"}},
                   "spec": {"rules": [{"host": "a.example.com"}]}}),
            "spec.tls[0].secretName",
        ),
        (
            json!({"metadata": {"name": "w", "annotations": {"cert-manager.io/issuer": "ca", "cert-manager.io/issuer-kind": "Foo"}},
                   "spec": {"rules": [{"host": "a.example.com"}]}}),
            ann::ISSUER_KIND,
        ),
    ] {
        assert_eq!(
            certificates_of(&ingress).unwrap_err().field,
            field,
            "{ingress}"
        );
    }
}

#[test]
fn tls_acme_uses_the_default_issuer_or_asks_for_nothing() {
    let annotations =
        std::collections::BTreeMap::from([(ann::TLS_ACME.to_owned(), "true".to_owned())]);
    assert_eq!(
        IngressAsk::read(&annotations, None),
        Ok(IngressAsk::NoDefaultIssuer)
    );
    let default = IssuerRef::new("--default-issuer", IssuerKind::ClusterIssuer, "le").unwrap();
    assert!(matches!(
        IngressAsk::read(&annotations, Some(&default)),
        Ok(IngressAsk::Certificates { issuer, .. }) if issuer == default
    ));
}

/// Objects far past the limits are refused after one look at the list, and
/// the largest legal one (1,000 rule hosts, 100 entries of 100 hosts) is
/// served: nothing here is quadratic in the number of hosts or entries.
#[test]
fn many_hosts_and_entries_cost_linear_time() {
    let hosts: Vec<String> = (0..20_000).map(|i| format!("h{i}.example.com")).collect();
    let rules: Vec<Value> = hosts.iter().map(|h| json!({"host": h})).collect();
    let tls: Vec<Value> = hosts
        .iter()
        .map(|h| json!({"hosts": [h], "secretName": "one"}))
        .collect();
    for (spec, field) in [
        (json!({"rules": rules}), "spec.rules"),
        (json!({"tls": tls}), "spec.tls"),
    ] {
        let ingress = json!({"metadata": {"name": "w", "annotations": {"cert-manager.io/issuer": "ca"}}, "spec": spec});
        assert_eq!(certificates_of(&ingress).unwrap_err().field, field);
    }
    let rules: Vec<Value> = hosts[..MAX_INGRESS_HOSTS]
        .iter()
        .map(|h| json!({"host": h}))
        .collect();
    let tls: Vec<Value> = hosts[..MAX_TLS_ENTRIES * MAX_NAMES_PER_CERTIFICATE]
        .chunks(MAX_NAMES_PER_CERTIFICATE)
        .enumerate()
        .map(|(i, chunk)| json!({"hosts": chunk, "secretName": format!("s{i}")}))
        .collect();
    let ingress = json!({"metadata": {"name": "w", "annotations": {"cert-manager.io/issuer": "ca"}}, "spec": {"rules": rules, "tls": tls}});
    let certs = certificates_of(&ingress).unwrap();
    assert_eq!(certs.len(), MAX_TLS_ENTRIES);
    assert!(certs
        .iter()
        .all(|c| c.spec.dns_names.len() == MAX_NAMES_PER_CERTIFICATE));
}

/// Entries naming one Secret share one certificate: together they may
/// hold at most 100 names.
#[test]
fn entries_sharing_a_secret_share_the_name_limit() {
    let entry = |from: usize, to: usize| json!({"hosts": (from..to).map(|i| format!("h{i}.example.com")).collect::<Vec<_>>(), "secretName": "shared"});
    let ingress = |tls: Value| json!({"metadata": {"name": "w", "annotations": {"cert-manager.io/issuer": "ca"}}, "spec": {"tls": tls}});
    // 60 + 40 names, and repeats, fit; 60 + 41 do not.
    assert!(certificates_of(&ingress(json!([entry(0, 60), entry(20, 100)]))).is_ok());
    let err = certificates_of(&ingress(json!([entry(0, 60), entry(40, 101)]))).unwrap_err();
    assert_eq!(err.field, "spec.tls[1].hosts");
    assert!(err.problem.contains("shared"), "{err}");
}

/// The limits hold at their bound and refuse one past it, on both ways in
/// (the webhook's JSON and the controller's typed Ingress).
#[test]
fn limits_allow_their_bound_and_refuse_one_more() {
    let ingress = |rules: usize, distinct: usize, tls: Option<Value>| {
        let rules: Vec<Value> = (0..rules)
            .map(|i| json!({"host": format!("h{}.example.com", i % distinct)}))
            .collect();
        let mut spec = json!({"rules": rules});
        if let Some(tls) = tls {
            spec["tls"] = tls;
        }
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "web", "namespace": "shop",
                            "annotations": {"cert-manager.io/cluster-issuer": "le"}},
               "spec": spec})
    };
    let hosts = |n: usize| {
        (0..n)
            .map(|i| format!("h{i}.example.com"))
            .collect::<Vec<_>>()
    };
    // 100 distinct rule hosts make one certificate of 100 names; 101 do not.
    let certs = certificates_of(&ingress(100, 100, None)).unwrap();
    assert_eq!(certs[0].spec.dns_names.len(), MAX_NAMES_PER_CERTIFICATE);
    let err = certificates_of(&ingress(101, 101, None)).unwrap_err();
    assert_eq!(err.field, "spec.rules");
    // 1,000 rule hosts (repeating 10 names) are served; 1,001 are not.
    assert!(certificates_of(&ingress(MAX_INGRESS_HOSTS, 10, None)).is_ok());
    let err = certificates_of(&ingress(MAX_INGRESS_HOSTS + 1, 10, None)).unwrap_err();
    assert_eq!(err.field, "spec.rules");
    assert!(err.problem.contains("1001"), "{err}");
    // 100 entries of one host each, and one entry of 100 hosts, are served.
    let entries = |n: usize| {
        json!(hosts(n)
            .iter()
            .map(|h| json!({"hosts": [h]}))
            .collect::<Vec<_>>())
    };
    assert_eq!(
        certificates_of(&ingress(1, 1, Some(entries(100))))
            .unwrap()
            .len(),
        100
    );
    assert_eq!(
        certificates_of(&ingress(1, 1, Some(entries(101))))
            .unwrap_err()
            .field,
        "spec.tls"
    );
    assert!(certificates_of(&ingress(1, 1, Some(json!([{"hosts": hosts(100)}])))).is_ok());
    assert_eq!(
        certificates_of(&ingress(1, 1, Some(json!([{"hosts": hosts(101)}]))))
            .unwrap_err()
            .field,
        "spec.tls[0].hosts"
    );
}
