//! The ingress shim, as cert-manager's: one Certificate per `spec.tls` entry
//! of an annotated Ingress, named after its `secretName`, with the
//! cert-manager.io override annotations applied.

use serde_json::Value;

use crate::api::annotations as ann;
use crate::api::certificate::{CertificatePrivateKey, CertificateSpec, IssuerReference};
use crate::api::issuer_ref::ISSUER_GROUP;
use crate::api::overrides::{CertificateOverrides, KeyAlgorithm, RotationPolicy};
use crate::api::InvalidField;
use crate::webhook::ingress::{ingress_issuer, mutate_ingress};
use crate::webhook::object::{self, StringMap};
use crate::webhook::MutationConfig;

/// A Certificate the shim wants, by name (its `secretName`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShimCertificate {
    pub name: String,
    pub spec: CertificateSpec,
}

/// The Certificates an Ingress asks for. The Ingress is first run through
/// the webhook mutation (so an Ingress that was never admitted by the
/// webhook, as in `certweave local`, gets the same `spec.tls`).
pub fn certificates_for_ingress(
    ingress: &Value,
    config: &MutationConfig,
) -> Result<Vec<ShimCertificate>, InvalidField> {
    let mutated = mutate_ingress(ingress, config)?.object;
    let ingress = mutated.as_ref().unwrap_or(ingress);
    let annotations = StringMap::annotations(ingress)?;
    let Some(issuer) = ingress_issuer(&annotations, config)? else {
        return Ok(Vec::new());
    };
    let overrides = CertificateOverrides::from_annotations(|key| annotations.get(key))?;
    let spec = ingress.get("spec").cloned().unwrap_or(Value::Null);
    let mut out: Vec<ShimCertificate> = Vec::new();
    for (i, entry) in object::get_array(&spec, "tls", "spec.tls")?
        .iter()
        .enumerate()
    {
        let Some(secret_name) = entry
            .get("secretName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let hosts: Vec<String> =
            object::get_array(entry, "hosts", format_args!("spec.tls[{i}].hosts"))?
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        if hosts.is_empty() {
            continue;
        }
        // Two entries with one Secret: merge their hosts into one Certificate.
        if let Some(existing) = out.iter_mut().find(|c| c.name == secret_name) {
            for host in hosts {
                if !existing.spec.dns_names.contains(&host) {
                    existing.spec.dns_names.push(host);
                }
            }
            continue;
        }
        let private_key = if overrides.key_algorithm.is_some()
            || overrides.key_size.is_some()
            || overrides.rotation_policy.is_some()
        {
            Some(CertificatePrivateKey {
                algorithm: overrides.key_algorithm.map(|a| {
                    match a {
                        KeyAlgorithm::Rsa => "RSA",
                        KeyAlgorithm::Ecdsa => "ECDSA",
                        KeyAlgorithm::Ed25519 => "Ed25519",
                    }
                    .to_owned()
                }),
                size: overrides.key_size.map(|s| s as i32),
                encoding: None,
                rotation_policy: overrides.rotation_policy.map(|p| {
                    match p {
                        RotationPolicy::Always => "Always",
                        RotationPolicy::Never => "Never",
                    }
                    .to_owned()
                }),
            })
        } else {
            None
        };
        out.push(ShimCertificate {
            name: secret_name.to_owned(),
            spec: CertificateSpec {
                secret_name: secret_name.to_owned(),
                common_name: overrides.common_name.clone(),
                dns_names: hosts,
                duration: annotations.get(ann::DURATION)?.map(str::to_owned),
                renew_before: annotations.get(ann::RENEW_BEFORE)?.map(str::to_owned),
                issuer_ref: IssuerReference {
                    name: issuer.name.clone(),
                    kind: Some(issuer.kind.as_str().to_owned()),
                    group: Some(ISSUER_GROUP.to_owned()),
                },
                private_key,
                ..CertificateSpec::default()
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let certs = certificates_for_ingress(&ingress, &MutationConfig::default()).unwrap();
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
        assert_eq!(
            certs[0]
                .spec
                .private_key
                .as_ref()
                .unwrap()
                .algorithm
                .as_deref(),
            Some("ECDSA")
        );
        certs[0].spec.plan().unwrap();
    }

    #[test]
    fn unannotated_ingress_wants_nothing() {
        let ingress = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "w"},
                              "spec": {"rules": [{"host": "a.example.com"}]}});
        assert!(
            certificates_for_ingress(&ingress, &MutationConfig::default())
                .unwrap()
                .is_empty()
        );
    }
}
