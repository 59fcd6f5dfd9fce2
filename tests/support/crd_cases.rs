//! Certificates and ClusterIssuers the CRDs' CEL rules must refuse (with
//! the message naming the field) or accept, shared by `tests/crds.rs`
//! (kube-cel, and the Rust checks `plan`/`config`) and `e2e/` (the real
//! API server), so both judge the same objects.

#![allow(dead_code)]

use serde_json::{json, Value};

pub fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

pub const DOCS_CERTIFICATE: &str = r#"
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: example-com
  namespace: sandbox
spec:
  secretName: example-com-tls
  dnsNames:
  - example.com
  - www.example.com
  issuerRef:
    name: letsencrypt-staging
    kind: ClusterIssuer
"#;

pub const DOCS_CLUSTER_ISSUER: &str = r#"
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: letsencrypt-staging
spec:
  acme:
    server: https://acme-staging-v02.api.letsencrypt.org/directory
    email: user@example.com
    privateKeySecretRef:
      name: letsencrypt-staging
    solvers:
    - http01:
        ingress:
          ingressClassName: nginx
"#;

/// The full Certificate of cert-manager's "Creating Certificate Resources"
/// page, every field it shows set (a PKCS#12 keystore, subject, otherNames,
/// all kinds of names).
pub const DOCS_FULL_CERTIFICATE: &str = r#"
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: example-com
  namespace: sandbox
spec:
  secretName: example-com-tls
  secretTemplate:
    annotations:
      my-secret-annotation-1: "foo"
      my-secret-annotation-2: "bar"
    labels:
      my-secret-label: foo
  privateKey:
    algorithm: RSA
    encoding: PKCS1
    size: 2048
  keystores:
    pkcs12:
      create: true
      passwordSecretRef:
        name: example-com-tls-keystore
        key: password
      profile: Modern2023
  duration: 2160h
  renewBefore: 360h
  isCA: false
  usages:
    - server auth
    - client auth
  subject:
    organizations:
      - cert-manager
  commonName: example.com
  dnsNames:
    - example.com
    - www.example.com
  uris:
    - spiffe://cluster.local/ns/sandbox/sa/example
  emailAddresses:
    - john.doe@cert-manager.io
  ipAddresses:
    - 192.168.0.5
  otherNames:
    - oid: 1.3.6.1.4.1.311.20.2.3
      utf8Value: upn@example.local
  issuerRef:
    name: ca-issuer
    kind: Issuer
    group: cert-manager.io
"#;

/// A Certificate with the documentation spec, changed by `edit`.
pub fn certificate_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut object = yaml(DOCS_CERTIFICATE);
    edit(&mut object["spec"]);
    object
}

pub fn cluster_issuer_with(edit: impl FnOnce(&mut Value)) -> Value {
    let mut object = yaml(DOCS_CLUSTER_ISSUER);
    edit(&mut object["spec"]);
    object
}

/// A refused object, the message CEL refuses it with, and the field the
/// Rust check names.
pub type Refused = (Value, &'static str, &'static str);

/// Certificates the rules refuse.
pub fn refused_certificates() -> Vec<Refused> {
    vec![
        (
            certificate_with(|s| {
                s.as_object_mut().unwrap().remove("dnsNames");
            }),
            "names no subject",
            "spec.dnsNames",
        ),
        (
            certificate_with(|s| s["dnsNames"] = json!([])),
            "names no subject",
            "spec.dnsNames",
        ),
        (
            certificate_with(|s| {
                s["renewBefore"] = json!("360h");
                s["renewBeforePercentage"] = json!(20);
            }),
            "spec.renewBefore and spec.renewBeforePercentage",
            "spec.renewBefore",
        ),
        (
            certificate_with(|s| s["issuerRef"]["kind"] = json!("Vault")),
            "spec.issuerRef.kind",
            "spec.issuerRef.kind",
        ),
        (
            certificate_with(|s| {
                s["issuerRef"]["kind"] = json!("ClusterIssuer ");
                s["issuerRef"]["group"] = json!("cert-manager.io");
            }),
            "spec.issuerRef.kind",
            "spec.issuerRef.kind",
        ),
        (
            certificate_with(|s| s["privateKey"] = json!({"algorithm": "ECDSA", "size": 521})),
            "spec.privateKey.size",
            "spec.privateKey",
        ),
        (
            certificate_with(|s| s["privateKey"] = json!({"algorithm": "RSA", "size": 1024})),
            "spec.privateKey.size",
            "spec.privateKey",
        ),
        (
            certificate_with(|s| s["privateKey"] = json!({"size": 384})),
            "spec.privateKey.size",
            "spec.privateKey",
        ),
        // cert-manager fields certweave does not implement: refused by
        // name, never pruned.
        (
            certificate_with(|s| {
                s["literalSubject"] = json!("CN=example.com,O=Example");
                s["commonName"] = json!("example.com");
            }),
            "spec.literalSubject: replaces commonName and subject",
            "spec.literalSubject",
        ),
        (
            certificate_with(|s| {
                s["nameConstraints"] = json!({"permitted": {"dnsDomains": ["example.com"]}});
            }),
            "spec.nameConstraints",
            "spec.nameConstraints",
        ),
        (
            certificate_with(|s| {
                s["isCA"] = json!(true);
                s["nameConstraints"] = json!({"permitted": {"uriDomains": ["example.com"]}});
            }),
            "spec.nameConstraints.permitted.uriDomains",
            "spec.nameConstraints.permitted.uriDomains",
        ),
        (
            certificate_with(|s| {
                s["isCA"] = json!(true);
                s["nameConstraints"] =
                    json!({"critical": false, "permitted": {"dnsDomains": ["example.com"]}});
            }),
            "spec.nameConstraints.critical",
            "spec.nameConstraints.critical",
        ),
        (
            certificate_with(|s| {
                s["keystores"] = json!({"pkcs12": {"create": true, "password": "changeit",
                    "passwordSecretRef": {"name": "p12", "key": "password"}}})
            }),
            "spec.keystores: a keystore needs exactly one of password and passwordSecretRef",
            "spec.keystores.pkcs12",
        ),
        (
            certificate_with(|s| s["keystores"] = json!({"jks": {"create": true}})),
            "spec.keystores: a keystore needs exactly one of password and passwordSecretRef",
            "spec.keystores.jks",
        ),
        (
            certificate_with(|s| s["signatureAlgorithm"] = json!("SHA384WithRSA")),
            "spec.signatureAlgorithm",
            "spec.signatureAlgorithm",
        ),
        (
            certificate_with(|s| s["encodeUsagesInRequest"] = json!(false)),
            "spec.encodeUsagesInRequest",
            "spec.encodeUsagesInRequest",
        ),
        (
            certificate_with(|s| s["renewal"] = json!({"policy": "Disabled"})),
            "spec.renewal",
            "spec.renewal",
        ),
        (
            certificate_with(|s| s["subject"] = json!({"organizations": ["A", "B"]})),
            "spec.subject.organizations",
            "spec.subject.organizations",
        ),
    ]
}

/// Certificates the rules accept.
pub fn accepted_certificates() -> Vec<Value> {
    vec![
        yaml(DOCS_FULL_CERTIFICATE),
        certificate_with(|s| {
            s.as_object_mut().unwrap().remove("dnsNames");
            s["commonName"] = json!("example.com");
        }),
        certificate_with(|s| s["ipAddresses"] = json!(["10.0.0.1"])),
        certificate_with(|s| {
            s["issuerRef"] = json!({"name": "ca", "kind": "Issuer", "group": "cert-manager.io"})
        }),
        certificate_with(|s| s["issuerRef"] = json!({"name": "ca", "kind": "", "group": ""})),
        certificate_with(|s| s["renewBeforePercentage"] = json!(25)),
        certificate_with(|s| s["privateKey"] = json!({"algorithm": "ECDSA", "size": 384})),
        certificate_with(|s| s["privateKey"] = json!({"algorithm": "RSA", "size": 4096})),
        certificate_with(|s| s["privateKey"] = json!({"algorithm": "Ed25519", "size": 256})),
        certificate_with(|s| s["privateKey"] = json!({"rotationPolicy": "Never"})),
        certificate_with(|s| {
            s["isCA"] = json!(true);
            s["nameConstraints"] = json!({"critical": true,
                "permitted": {"dnsDomains": ["example.com"], "ipRanges": ["10.0.0.0/8"]},
                "excluded": {"emailAddresses": ["bad.example.com"]}});
        }),
        certificate_with(|s| {
            s["subject"] = json!({
                "organizations": ["Example Corp"], "countries": ["DE"],
                "organizationalUnits": ["Web"], "localities": ["Berlin"],
                "provinces": ["Berlin"], "streetAddresses": ["Unter den Linden 1"],
                "postalCodes": ["10117"], "serialNumber": "42"
            });
            s["additionalOutputFormats"] = json!([{"type": "DER"}, {"type": "CombinedPEM"}]);
            s["revisionHistoryLimit"] = json!(2);
            s["encodeUsagesInRequest"] = json!(true);
            s["keystores"] = json!({"pkcs12": {"create": false}});
        }),
        // cert-manager's documented literalSubject.
        certificate_with(|s| {
            s["literalSubject"] = json!("CN=example.com,OU=Web,O=Example Inc.,L=Berlin,C=DE");
        }),
        // cert-manager's documented keystores.
        certificate_with(|s| {
            s["keystores"] = json!({
                "pkcs12": {"create": true, "profile": "Modern2023",
                           "passwordSecretRef": {"name": "p12-password", "key": "password"}},
                "jks": {"create": true, "alias": "web", "password": "changeit"},
            });
            s["renewal"] = json!({"policy": "RenewBefore"});
            s["otherNames"] =
                json!([{"oid": "1.3.6.1.4.1.311.20.2.3", "utf8Value": "u@example.com"}]);
        }),
    ]
}

/// ClusterIssuers the rules refuse.
pub fn refused_cluster_issuers() -> Vec<Refused> {
    vec![
        (
            cluster_issuer_with(|s| s["selfSigned"] = json!({})),
            "exactly one of acme, ca or selfSigned",
            "spec",
        ),
        (
            cluster_issuer_with(|s| {
                s.as_object_mut().unwrap().remove("acme");
            }),
            "exactly one of acme, ca or selfSigned",
            "spec",
        ),
        (
            cluster_issuer_with(|s| s["acme"]["solvers"] = json!([])),
            "spec.acme.solvers",
            "spec.acme.solvers",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"].as_object_mut().unwrap().remove("solvers");
            }),
            "spec.acme.solvers",
            "spec.acme.solvers",
        ),
        (
            cluster_issuer_with(|s| s["acme"]["server"] = json!("acme-v02.api.letsencrypt.org")),
            "spec.acme.server",
            "spec.acme.server",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"] = json!([{
                    "http01": {"ingress": {"ingressClassName": "nginx"}},
                    "dns01": {"rfc2136": {"nameserver": "10.0.0.53"}},
                }])
            }),
            "exactly one of http01 or dns01",
            "spec.acme.solvers[0]",
        ),
        (
            cluster_issuer_with(|s| s["acme"]["solvers"] = json!([{"selector": {}}])),
            "exactly one of http01 or dns01",
            "spec.acme.solvers[0]",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"] = json!([{"http01": {"ingress": {"ingressClassName": "nginx", "class": "nginx"}}}])
            }),
            "spec.acme.solvers[].http01.ingress",
            "spec.acme.solvers[0].http01.ingress",
        ),
        (
            cluster_issuer_with(|s| s["acme"]["solvers"] = json!([{"dns01": {}}])),
            "spec.acme.solvers[].dns01: exactly one DNS-01 provider must be configured",
            "spec.acme.solvers[0].dns01",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"] = json!([{"dns01": {
                    "rfc2136": {"nameserver": "10.0.0.53"},
                    "cloudflare": {"apiTokenSecretRef": {"name": "cf", "key": "token"}},
                }}])
            }),
            "spec.acme.solvers[].dns01: exactly one DNS-01 provider must be configured",
            "spec.acme.solvers[0].dns01",
        ),
        // cert-manager fields certweave does not implement: refused by name.
        (
            cluster_issuer_with(|s| {
                s.as_object_mut().unwrap().remove("acme");
                s["vault"] = json!({"server": "https://vault.example", "path": "pki/sign/web"});
            }),
            "spec.vault: the Vault issuer is not supported by certweave",
            "spec.vault",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"] = json!([{"dns01": {"akamai": {
                    "serviceConsumerDomain": "akab.example", "clientTokenSecretRef": {"name": "a", "key": "t"}}}}])
            }),
            "spec.acme.solvers[].dns01.akamai: not supported by certweave yet",
            "spec.acme.solvers[0].dns01.akamai",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"] = json!([{"dns01": {"route53": {
                    "region": "eu-west-1",
                    "auth": {"kubernetes": {"serviceAccountRef": {"name": "certweave"}}},
                }}}])
            }),
            "spec.acme.solvers[].dns01.route53.auth: service-account token authentication is not supported",
            "spec.acme.solvers[0].dns01.route53.auth",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"] = json!([{"dns01": {"cloudflare": {
                    "email": "ops@example.com",
                    "apiTokenSecretRef": {"name": "cf", "key": "token"},
                    "apiKeySecretRef": {"name": "cf", "key": "key"},
                }}}])
            }),
            "spec.acme.solvers[].dns01.cloudflare: set exactly one of apiTokenSecretRef",
            "spec.acme.solvers[0].dns01.cloudflare",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"] = json!([{"http01": {"gatewayHTTPRoute": {
                    "parentRefs": [{"name": "gw"}], "serviceType": "ClusterIP"}}}])
            }),
            "spec.acme.solvers[].http01.gatewayHTTPRoute.serviceType: not supported by certweave",
            "spec.acme.solvers[0].http01.gatewayHTTPRoute.serviceType",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"] = json!([{"http01": {
                    "ingress": {"ingressClassName": "nginx"},
                    "gatewayHTTPRoute": {"parentRefs": [{"name": "gw"}]}}}])
            }),
            "spec.acme.solvers[].http01: ingress and gatewayHTTPRoute exclude each other",
            "spec.acme.solvers[0].http01",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"][0]["http01"]["ingress"]["podTemplate"] =
                    json!({"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}})
            }),
            "spec.acme.solvers[].http01.ingress.podTemplate: not supported by certweave",
            "spec.acme.solvers[0].http01.ingress.podTemplate",
        ),
        (
            cluster_issuer_with(|s| s["acme"]["enableDurationFeature"] = json!(true)),
            "spec.acme.enableDurationFeature: true is not supported by certweave",
            "spec.acme.enableDurationFeature",
        ),
        (
            cluster_issuer_with(|s| {
                s["acme"]["solvers"][0]["waitInsteadOfSelfCheck"] = json!("30s")
            }),
            "spec.acme.solvers[].waitInsteadOfSelfCheck: not supported by certweave",
            "spec.acme.solvers[0].waitInsteadOfSelfCheck",
        ),
    ]
}

/// ClusterIssuers the rules accept.
pub fn accepted_cluster_issuers() -> Vec<Value> {
    vec![
        cluster_issuer_with(|s| {
            s["acme"]["solvers"] = json!([
                {"selector": {"dnsZones": ["internal.example"]},
                 "dns01": {"rfc2136": {"nameserver": "10.0.0.53:53", "tsigKeyName": "k"}}},
                {"http01": {"ingress": {"class": "traefik"}}},
                {"http01": {"ingress": {"name": "web"}}},
                {"http01": {}},
            ])
        }),
        // cert-manager's documented DNS-01 providers, as its docs show them.
        cluster_issuer_with(|s| {
            s["acme"]["solvers"] = json!([
                {"selector": {"dnsZones": ["aws.example.com"]},
                 "dns01": {"cnameStrategy": "Follow", "route53": {
                    "region": "eu-central-1",
                    "hostedZoneID": "DIKER8JEXAMPLE",
                    "accessKeyIDSecretRef": {"name": "prod-route53-credentials-secret", "key": "access-key-id"},
                    "secretAccessKeySecretRef": {"name": "prod-route53-credentials-secret", "key": "secret-access-key"},
                    "role": "arn:aws:iam::YYYYYYYYYYYY:role/dns-manager"}}},
                {"selector": {"dnsZones": ["ambient.example.com"]},
                 "dns01": {"route53": {"region": "us-east-1"}}},
                {"selector": {"dnsZones": ["cf.example.com"]},
                 "dns01": {"cloudflare": {"apiTokenSecretRef": {"name": "cloudflare-api-token-secret", "key": "api-token"}}}},
                {"selector": {"dnsZones": ["cfkey.example.com"]},
                 "dns01": {"cloudflare": {"email": "my-cloudflare-acc@example.com",
                    "apiKeySecretRef": {"name": "cloudflare-api-key-secret", "key": "api-key"}}}},
                {"selector": {"dnsZones": ["acmedns.example.com"]},
                 "dns01": {"acmeDNS": {"host": "https://acme.example.com",
                    "accountSecretRef": {"name": "acme-dns", "key": "acmedns.json"}}}},
                {"selector": {"dnsZones": ["hetzner.example.com"]},
                 "dns01": {"webhook": {"groupName": "acme.example.com", "solverName": "hetzner",
                    "config": {"secretName": "hetzner-secret", "zoneName": "example.com",
                               "apiUrl": "https://dns.hetzner.com/api/v1"}}}},
            ])
        }),
        cluster_issuer_with(|s| s["acme"]["server"] = json!("http://127.0.0.1:14000/dir")),
        cluster_issuer_with(|s| s["acme"]["profile"] = json!("shortlived")),
        // cert-manager's documented Gateway API solver.
        cluster_issuer_with(|s| {
            s["acme"]["solvers"] = json!([{"http01": {"gatewayHTTPRoute": {
                "labels": {"team": "web"},
                "parentRefs": [{"name": "traefik", "namespace": "traefik", "kind": "Gateway",
                                "group": "gateway.networking.k8s.io", "sectionName": "web", "port": 80}],
            }}}])
        }),
        cluster_issuer_with(|s| {
            s["acme"]["disableAccountKeyGeneration"] = json!(true);
            s["acme"]["enableDurationFeature"] = json!(false);
            s["acme"]["solvers"] = json!([
                {"http01": {"ingress": {
                    "ingressClassName": "nginx",
                    "ingressTemplate": {"metadata": {
                        "labels": {"team": "web"},
                        "annotations": {"nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0"},
                    }},
                }}},
                {"selector": {"dnsZones": ["internal.example"]},
                 "dns01": {"cnameStrategy": "None",
                           "rfc2136": {"nameserver": "10.0.0.53:53", "tsigKeyName": "k", "protocol": "TCP"}}},
            ])
        }),
        cluster_issuer_with(|s| {
            s.as_object_mut().unwrap().remove("acme");
            s["ca"] = json!({
                "secretName": "root-ca",
                "crlDistributionPoints": ["http://pki.example.test/root.crl"],
                "ocspServers": ["http://ocsp.example.test"],
                "issuingCertificateURLs": ["http://pki.example.test/root.crt"],
            });
        }),
        cluster_issuer_with(|s| {
            s.as_object_mut().unwrap().remove("acme");
            s["selfSigned"] =
                json!({"crlDistributionPoints": ["http://pki.example.test/self.crl"]});
        }),
    ]
}
