//! `spec.keystores` through the controller: the Secret gets PKCS#12 and JKS
//! keystores and trust stores encrypted with the passwords the spec names
//! (one from a Secret, one literal), OpenSSL opens the PKCS#12 one, and a
//! keystore taken out of the spec leaves the Secret without a new
//! certificate.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use certweave::api::certificate::Certificate;

use super::{say, E2e, ISSUED, NS, STEPS};

const KEYS: [&str; 4] = [
    "keystore.p12",
    "truststore.p12",
    "keystore.jks",
    "truststore.jks",
];

fn bytes(secret: &Secret, key: &str) -> Option<Vec<u8>> {
    secret.data.as_ref()?.get(key).map(|b| b.0.clone())
}

pub async fn keystores(e2e: &E2e) {
    let secrets: Api<Secret> = e2e.api(NS);
    e2e.create(
        &secrets,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "keystore-password", "namespace": NS},
            "stringData": {"password": "p12-secret"},
        }),
    )
    .await;
    let certificates: Api<Certificate> = e2e.api(NS);
    e2e.create(
        &certificates,
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "keystores", "namespace": NS},
            "spec": {
                "secretName": "keystores",
                "dnsNames": ["keystores.example.test"],
                "issuerRef": {"name": "e2e-ca"},
                "keystores": {
                    "pkcs12": {"create": true, "profile": "Modern2023",
                               "passwordSecretRef": {"name": "keystore-password", "key": "password"}},
                    "jks": {"create": true, "password": "changeit"},
                },
            },
        }),
    )
    .await;
    e2e.certificate_ready("keystores", ISSUED).await;
    let secret = e2e
        .eventually("Secret keystores with its keystores", ISSUED, || {
            let secrets = secrets.clone();
            async move {
                let secret = secrets.get("keystores").await.map_err(|e| e.to_string())?;
                let missing: Vec<&str> = KEYS
                    .into_iter()
                    .filter(|k| bytes(&secret, k).is_none())
                    .collect();
                if missing.is_empty() {
                    Ok(secret)
                } else {
                    Err(format!("missing {missing:?}"))
                }
            }
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let p12 = dir.path().join("keystore.p12");
    std::fs::write(&p12, bytes(&secret, "keystore.p12").unwrap()).unwrap();
    let opened = std::process::Command::new("openssl")
        .args(["pkcs12", "-nokeys", "-passin", "pass:p12-secret", "-in"])
        .arg(&p12)
        .output()
        .unwrap();
    let tls_crt = String::from_utf8(bytes(&secret, "tls.crt").unwrap()).unwrap();
    let leaf = certweave::pki::pem_block_der(&tls_crt).unwrap();
    let in_p12 = certweave::pki::parse_pem_chain(&String::from_utf8_lossy(&opened.stdout))
        .unwrap_or_default();
    if !opened.status.success() || !in_p12.contains(&leaf) {
        e2e.fail(&format!(
            "keystore.p12 should open with the password from Secret keystore-password and hold tls.crt's leaf: {}",
            String::from_utf8_lossy(&opened.stderr)
        ));
    }

    // Without the JKS keystore in the spec, its files go; the certificate stays.
    certificates
        .patch(
            "keystores",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"keystores": {"jks": null}}})),
        )
        .await
        .unwrap_or_else(|e| e2e.fail(&format!("drop the JKS keystore: {e}")));
    let after = e2e
        .eventually(
            "keystore.jks and truststore.jks removed",
            Duration::from_secs(30),
            || {
                let secrets = secrets.clone();
                async move {
                    let secret = secrets.get("keystores").await.map_err(|e| e.to_string())?;
                    if bytes(&secret, "keystore.jks").is_none()
                        && bytes(&secret, "truststore.jks").is_none()
                    {
                        Ok(secret)
                    } else {
                        Err("the JKS files are still there".to_owned())
                    }
                }
            },
        )
        .await;
    if bytes(&after, "tls.crt").as_deref() != Some(tls_crt.as_bytes())
        || bytes(&after, "keystore.p12").is_none()
    {
        e2e.fail("dropping the JKS keystore should keep the certificate and the PKCS#12 keystore");
    }
    say(&format!(
        "[6/{STEPS}] keystores: PKCS#12 (password from a Secret) and JKS written, OpenSSL opens keystore.p12; JKS dropped without re-issuing"
    ));
}
