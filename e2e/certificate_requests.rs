//! CertificateRequests on the real API server: the webhook records who
//! asked (a forged requester is overwritten), certweave approves and signs
//! with the CA, SelfSigned and ACME issuers, an unparsable request ends
//! `InvalidRequest`, a denied one is never signed, and a request for
//! another issuer group is left alone.

use std::time::{Duration, SystemTime};

use base64::Engine;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{json, Value};

use certweave::api::certificate_request::CertificateRequest;
use certweave::model::CertificateRequest as Wanted;
use certweave::pki::{check_chain, verify_chain_to_root, KeyAlgorithm, KeyEncoding, PrivateKey};

use super::{data, E2e, ACME_ISSUER, ISSUED, NS, SELF_SIGNED};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A PEM request for `names` (DNS), signed by `key`.
fn csr(key: &PrivateKey, names: &[&str], common_name: Option<&str>) -> String {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = common_name {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params
        .serialize_request(key.key_pair())
        .unwrap()
        .pem()
        .unwrap()
}

fn request_object(name: &str, csr_pem: &str, issuer_ref: Value, extra: Value) -> Value {
    let mut object = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "request": B64.encode(csr_pem),
            "issuerRef": issuer_ref,
            "duration": "720h",
            "usages": ["digital signature", "key encipherment", "server auth"],
            // Claims the webhook must overwrite.
            "username": "mallory",
            "groups": ["system:masters", "forged"],
        },
    });
    if let Value::Object(extra) = extra {
        for (key, value) in extra {
            match key.as_str() {
                "annotations" => object["metadata"]["annotations"] = value,
                _ => object["spec"][key] = value,
            }
        }
    }
    object
}

fn ready(request: &CertificateRequest) -> Option<(String, String, String)> {
    let c = request.condition("Ready")?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

impl E2e {
    /// Waits until the request's `Ready` condition has `reason`.
    async fn request_ends(
        &self,
        name: &str,
        reason: &str,
        timeout: Duration,
    ) -> CertificateRequest {
        let api: Api<CertificateRequest> = self.api(NS);
        self.eventually(
            &format!("CertificateRequest {NS}/{name} Ready with reason {reason}"),
            timeout,
            || {
                let api = api.clone();
                async move {
                    let request = api.get(name).await.map_err(|e| e.to_string())?;
                    match ready(&request) {
                        Some((_, r, _)) if r == reason => Ok(request),
                        other => Err(format!("Ready is {other:?}; status {:?}", request.status)),
                    }
                }
            },
        )
        .await
    }

    /// The certificate of an issued request: it carries `key`, covers
    /// `wanted` and, when `root` is given, verifies to it.
    fn check_issued(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        wanted: &Wanted,
        root: Option<&str>,
    ) -> String {
        let status = request.status.as_ref().unwrap();
        let chain = String::from_utf8(
            B64.decode(status.certificate.as_deref().unwrap_or_default())
                .unwrap(),
        )
        .unwrap();
        if let Err(e) = check_chain(
            &chain,
            &key.public_key_der(),
            Some(wanted),
            SystemTime::now(),
        ) {
            self.fail(&format!(
                "{}: the issued chain does not hold: {e}\n{chain}",
                request.metadata.name.as_deref().unwrap_or_default()
            ));
        }
        if let Some(root) = root {
            if let Err(e) = verify_chain_to_root(&chain, root) {
                self.fail(&format!(
                    "the issued chain does not verify to the issuer's root: {e}"
                ));
            }
        }
        chain
    }
}

/// Step: CertificateRequests (after the conformance step, which made the
/// CA Issuer `e2e-ca` and its root `e2e-root`).
pub async fn certificate_requests(e2e: &E2e) {
    let requests: Api<CertificateRequest> = e2e.api(NS);
    let create = |value: Value| {
        let requests = requests.clone();
        async move { e2e.create(&requests, value).await }
    };

    // CA: approved by certweave, signed, the requester recorded by the
    // webhook over the forged claim.
    let ca_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let created = create(request_object(
        "cr-ca",
        &csr(&ca_key, &["cr.example.test"], Some("cr.example.test")),
        json!({"name": "e2e-ca", "kind": "Issuer", "group": "cert-manager.io"}),
        json!({}),
    ))
    .await;
    if created.spec.username.as_deref() != Some("admin")
        || !created.spec.groups.iter().any(|g| g == "system:masters")
        || created.spec.groups.iter().any(|g| g == "forged")
    {
        e2e.fail(&format!(
            "the webhook should record the creator (admin, groups system:masters and \
             system:authenticated) over the forged claim; the request says username {:?}, \
             groups {:?}",
            created.spec.username, created.spec.groups
        ));
    }
    // The spec is immutable, requester included.
    let rewrite = requests
        .patch(
            "cr-ca",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"username": "mallory"}})),
        )
        .await;
    match rewrite {
        Err(kube::Error::Api(s)) if s.message.contains("spec is immutable") => {}
        other => e2e.fail(&format!(
            "changing spec.username should be refused as immutable, got {other:?}"
        )),
    }
    let issued = e2e.request_ends("cr-ca", "Issued", ISSUED).await;
    let approved = issued.condition("Approved").cloned();
    if approved
        .as_ref()
        .map(|c| (c.status.as_str(), c.reason.as_deref()))
        != Some(("True", Some("cert-manager.io")))
    {
        e2e.fail(&format!(
            "cr-ca should be Approved by cert-manager.io: {approved:?}"
        ));
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = e2e.api(NS);
    let root = data(&secrets.get("e2e-root").await.unwrap(), "tls.crt").unwrap_or_default();
    let mut wanted = Wanted::for_dns_names(["cr.example.test"]);
    wanted.common_name = Some("cr.example.test".into());
    e2e.check_issued(&issued, &ca_key, &wanted, Some(&root));
    let ca = String::from_utf8(
        B64.decode(
            issued
                .status
                .as_ref()
                .unwrap()
                .ca
                .as_deref()
                .unwrap_or_default(),
        )
        .unwrap(),
    )
    .unwrap();
    if ca.trim() != root.trim() {
        e2e.fail("status.ca of cr-ca should be the CA's root (e2e-root's tls.crt)");
    }

    // SelfSigned: the private key comes from the annotated Secret.
    let self_key = PrivateKey::generate(KeyAlgorithm::EcdsaP384).unwrap();
    e2e.create(
        &secrets,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "cr-selfsigned-key", "namespace": NS},
            "stringData": {"tls.key": self_key.to_pem(KeyEncoding::Pkcs8).unwrap()},
        }),
    )
    .await;
    create(request_object(
        "cr-selfsigned",
        &csr(&self_key, &["self.example.test"], None),
        json!({"name": SELF_SIGNED, "kind": "ClusterIssuer"}),
        json!({"annotations": {"cert-manager.io/private-key-secret-name": "cr-selfsigned-key"}}),
    ))
    .await;
    // Without the annotation a SelfSigned request fails, saying why.
    create(request_object(
        "cr-selfsigned-no-key",
        &csr(&self_key, &["self.example.test"], None),
        json!({"name": SELF_SIGNED, "kind": "ClusterIssuer"}),
        json!({}),
    ))
    .await;

    // ACME (Pebble, HTTP-01): an order finalized with the request itself.
    let acme_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    create(request_object(
        "cr-acme",
        &csr(&acme_key, &["cr-acme.example.test"], None),
        json!({"name": ACME_ISSUER, "kind": "ClusterIssuer"}),
        json!({}),
    ))
    .await;

    // Not a request at all.
    let mut garbage = request_object(
        "cr-garbage",
        "not a certificate request",
        json!({"name": "e2e-ca"}),
        json!({}),
    );
    garbage["spec"]["request"] = json!(B64
        .encode("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"));
    create(garbage).await;

    // For an issuer that does not exist yet: approved, then Pending; a
    // denial then ends it, and it is not signed once the issuer appears.
    let denied_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    create(request_object(
        "cr-denied",
        &csr(&denied_key, &["denied.example.test"], None),
        json!({"name": "later-ca"}),
        json!({}),
    ))
    .await;

    // For an external issuer: certweave neither approves nor signs it.
    create(request_object(
        "cr-external",
        &csr(&denied_key, &["external.example.test"], None),
        json!({"name": "pca", "kind": "AWSPCAClusterIssuer", "group": "awspca.cert-manager.io"}),
        json!({}),
    ))
    .await;

    let self_signed = e2e.request_ends("cr-selfsigned", "Issued", ISSUED).await;
    let chain = e2e.check_issued(
        &self_signed,
        &self_key,
        &Wanted::for_dns_names(["self.example.test"]),
        None,
    );
    verify_chain_to_root(&chain, &chain)
        .unwrap_or_else(|e| e2e.fail(&format!("cr-selfsigned is not self-signed: {e}")));

    let no_key = e2e
        .request_ends("cr-selfsigned-no-key", "Failed", ISSUED)
        .await;
    let (_, _, message) = ready(&no_key).unwrap();
    if !message.contains("cert-manager.io/private-key-secret-name")
        || no_key.status.as_ref().unwrap().failure_time.is_none()
    {
        e2e.fail(&format!(
            "cr-selfsigned-no-key should fail naming the annotation, with failureTime: {:?}",
            no_key.status
        ));
    }

    let garbage = e2e
        .request_ends("cr-garbage", "InvalidRequest", ISSUED)
        .await;
    let (_, _, message) = ready(&garbage).unwrap();
    if !message.starts_with("spec.request:")
        || garbage
            .condition("InvalidRequest")
            .map(|c| c.status.as_str())
            != Some("True")
    {
        e2e.fail(&format!(
            "cr-garbage should be InvalidRequest saying what is wrong with spec.request: {:?}",
            garbage.status
        ));
    }

    let pending = e2e.request_ends("cr-denied", "Pending", ISSUED).await;
    if !pending.is_approved() {
        e2e.fail("cr-denied should have been approved before it waits for its issuer");
    }
    let mut conditions =
        serde_json::to_value(&pending.status.as_ref().unwrap().conditions).unwrap();
    conditions.as_array_mut().unwrap().push(json!({
        "type": "Denied", "status": "True", "reason": "e2e", "message": "denied by the e2e test",
        "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
    }));
    requests
        .patch_status(
            "cr-denied",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": conditions}})),
        )
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("deny cr-denied: {e}")));
    e2e.request_ends("cr-denied", "Denied", ISSUED).await;
    let issuers: Api<certweave::api::issuer::Issuer> = e2e.api(NS);
    e2e.create(
        &issuers,
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": "later-ca", "namespace": NS},
            "spec": {"ca": {"secretName": "e2e-root"}},
        }),
    )
    .await;

    let acme = e2e.request_ends("cr-acme", "Issued", ISSUED).await;
    e2e.check_issued(
        &acme,
        &acme_key,
        &Wanted::for_dns_names(["cr-acme.example.test"]),
        Some(&e2e.pebble.root(0).await),
    );

    // By now certweave has had every chance to touch these two.
    let denied = requests.get("cr-denied").await.unwrap();
    if denied
        .status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some()
        || ready(&denied).map(|r| r.1) != Some("Denied".into())
    {
        e2e.fail(&format!(
            "a denied request must stay unsigned: {:?}",
            denied.status
        ));
    }
    let external = requests.get("cr-external").await.unwrap();
    if external
        .status
        .as_ref()
        .is_some_and(|s| !s.conditions.is_empty())
    {
        e2e.fail(&format!(
            "a request for an external issuer must be left alone: {:?}",
            external.status
        ));
    }
}
