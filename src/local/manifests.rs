//! Reading the manifests of a `certweave local` directory.
//!
//! Every `*.yaml`/`*.yml` file directly in the directory is read as a YAML
//! stream. Certificates, Issuers and ClusterIssuers are taken as they are;
//! Ingresses and annotated Pods and workloads go through the annotation
//! rules of `api::wanted`, exactly as in a cluster. A bad document is reported with its file, document
//! number, field and fix, and skipped: it never stops the others.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::Value;

use crate::api::certificate::{Certificate, CertificatePlan, CertificateSpec};
use crate::api::issuer::{ClusterIssuer, Issuer, IssuerSpec};
use crate::api::wanted::gateway::certificates_for_gateway_json;
use crate::api::wanted::ingress::certificates_for_ingress_json;
use crate::api::wanted::pod::PodCertificateRequest;
use crate::api::wanted::workload::pod_template;
use crate::store::ObjectKey;
use crate::webhook::MutationConfig;

/// A Certificate wanted by the manifests, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct WantedCertificate {
    /// `file.yaml#3` (or `file.yaml#3 (Ingress web)` for shim certificates).
    pub source: String,
    pub spec: CertificateSpec,
    pub plan: CertificatePlan,
}

/// Everything the directory asks for.
#[derive(Debug, Default)]
pub struct Manifests {
    pub certificates: BTreeMap<ObjectKey, WantedCertificate>,
    pub issuers: BTreeMap<ObjectKey, IssuerSpec>,
    pub cluster_issuers: BTreeMap<String, IssuerSpec>,
    /// `v1` Secrets given as manifests (TSIG keys, EAB keys), key → value.
    pub secrets: BTreeMap<ObjectKey, BTreeMap<String, String>>,
    /// One line per rejected document or field: `file#doc: field: problem; fix`.
    pub errors: Vec<String>,
}

/// The manifest files of `dir`, sorted.
pub fn manifest_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Size and modification time of every manifest file: when this changes,
/// the directory is read again.
pub fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    manifest_files(dir)
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).ok();
            let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let modified = meta.and_then(|m| m.modified().ok());
            (p, len, modified)
        })
        .collect()
}

/// Reads every manifest of `dir`. Documents without a namespace are in
/// `default_namespace`.
pub fn load(dir: &Path, default_namespace: &str, mutation: &MutationConfig) -> Manifests {
    let mut out = Manifests::default();
    let files = match manifest_files(dir) {
        Ok(files) => files,
        Err(e) => {
            out.errors
                .push(format!("{}: cannot list manifests: {e}", dir.display()));
            return out;
        }
    };
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                out.errors.push(format!("{name}: cannot read: {e}"));
                continue;
            }
        };
        for (i, document) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let source = format!("{name}#{}", i + 1);
            match Value::deserialize(document) {
                Ok(Value::Null) => {}
                Ok(value) => out.add(&source, value, default_namespace, mutation),
                Err(e) => {
                    // The parser cannot resynchronise after a syntax error.
                    out.errors.push(format!(
                        "{source}: not valid YAML: {e}; the rest of {name} is skipped until it is fixed"
                    ));
                    break;
                }
            }
        }
    }
    out
}

impl Manifests {
    fn add(
        &mut self,
        source: &str,
        document: Value,
        default_namespace: &str,
        mutation: &MutationConfig,
    ) {
        let api_version = document
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let kind = document
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let namespace = document
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(default_namespace)
            .to_owned();
        let name = document
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match (api_version.as_str(), kind.as_str()) {
            ("cert-manager.io/v1", "Certificate") => {
                match serde_json::from_value::<Certificate>(document) {
                    Ok(cert) => self.add_certificate(
                        source.to_owned(),
                        ObjectKey::new(namespace, name),
                        cert.spec,
                    ),
                    Err(e) => self
                        .errors
                        .push(format!("{source} (Certificate {name}): {e}")),
                }
            }
            ("cert-manager.io/v1", "Issuer") => match serde_json::from_value::<Issuer>(document) {
                Ok(issuer) => match issuer.spec.config() {
                    Ok(_) => {
                        self.issuers
                            .insert(ObjectKey::new(namespace, name), issuer.spec);
                    }
                    Err(e) => self.errors.push(format!("{source} (Issuer {name}): {e}")),
                },
                Err(e) => self.errors.push(format!("{source} (Issuer {name}): {e}")),
            },
            ("cert-manager.io/v1", "ClusterIssuer") => {
                match serde_json::from_value::<ClusterIssuer>(document) {
                    Ok(issuer) => match issuer.spec.config() {
                        Ok(_) => {
                            self.cluster_issuers.insert(name, issuer.spec.spec);
                        }
                        Err(e) => self
                            .errors
                            .push(format!("{source} (ClusterIssuer {name}): {e}")),
                    },
                    Err(e) => self
                        .errors
                        .push(format!("{source} (ClusterIssuer {name}): {e}")),
                }
            }
            ("networking.k8s.io/v1", "Ingress") => {
                match certificates_for_ingress_json(&document, mutation.default_issuer.as_ref()) {
                    Ok(certs) => {
                        for cert in certs {
                            self.add_certificate(
                                format!("{source} (Ingress {name})"),
                                ObjectKey::new(namespace.clone(), cert.name),
                                cert.spec,
                            );
                        }
                    }
                    Err(e) => self.errors.push(format!("{source} (Ingress {name}): {e}")),
                }
            }
            ("gateway.networking.k8s.io/v1", "Gateway" | "ListenerSet") => {
                // As if admitted: hostname-only listeners get their Secret.
                let admitted = crate::webhook::gateway::mutate_gateway(&document, &namespace)
                    .map(|outcome| outcome.object.unwrap_or(document));
                match admitted
                    .and_then(|gateway| certificates_for_gateway_json(&gateway, &namespace))
                {
                    Ok((certs, skipped)) => {
                        for listener in skipped {
                            tracing::warn!(gateway = %format!("{namespace}/{name}"), listener = %listener.listener, reason = %listener.reason, "listener skipped");
                        }
                        for cert in certs {
                            self.add_certificate(
                                format!("{source} ({kind} {name})"),
                                ObjectKey::new(namespace.clone(), cert.name),
                                cert.spec,
                            );
                        }
                    }
                    Err(e) => self.errors.push(format!("{source} ({kind} {name}): {e}")),
                }
            }
            ("v1", "Secret") => {
                let mut values = BTreeMap::new();
                if let Some(data) = document.get("data").and_then(Value::as_object) {
                    for (k, v) in data {
                        let decoded = v.as_str().and_then(|b64| {
                            use base64::Engine;
                            base64::engine::general_purpose::STANDARD
                                .decode(b64.trim())
                                .ok()
                        });
                        match decoded.and_then(|b| String::from_utf8(b).ok()) {
                            Some(text) => {
                                values.insert(k.clone(), text);
                            }
                            None => self.errors.push(format!(
                                "{source} (Secret {name}): data.{k} is not base64 text; use stringData for plain values"
                            )),
                        }
                    }
                }
                if let Some(data) = document.get("stringData").and_then(Value::as_object) {
                    for (k, v) in data {
                        if let Some(text) = v.as_str() {
                            values.insert(k.clone(), text.to_owned());
                        }
                    }
                }
                self.secrets.insert(ObjectKey::new(namespace, name), values);
            }
            ("v1", "Pod") => {
                self.add_pod_certificate(source, &document, &namespace, &format!("Pod {name}"))
            }
            (api_version, kind) => {
                if let Some((_, template)) = pod_template(&document, api_version, kind) {
                    self.add_pod_certificate(
                        source,
                        template,
                        &namespace,
                        &format!("{kind} {name}"),
                    );
                }
            }
        }
    }

    /// A Pod or pod template annotated for a certificate asks for the
    /// Certificate the controller would create for it (shared by every Pod
    /// naming the same Secret).
    fn add_pod_certificate(&mut self, source: &str, pod: &Value, namespace: &str, what: &str) {
        let wanted = match PodCertificateRequest::from_pod(pod, namespace) {
            Ok(Some(request)) => request.certificate(),
            Ok(None) => return,
            Err(e) => {
                self.errors.push(format!("{source} ({what}): {e}"));
                return;
            }
        };
        let key = ObjectKey::new(namespace, wanted.name.clone());
        if self
            .certificates
            .get(&key)
            .is_some_and(|c| c.spec.dns_names == wanted.spec.dns_names)
        {
            return;
        }
        self.add_certificate(format!("{source} ({what})"), key, wanted.spec);
    }

    fn add_certificate(&mut self, source: String, key: ObjectKey, spec: CertificateSpec) {
        if key.name.is_empty() {
            self.errors.push(format!(
                "{source}: metadata.name is missing; name the Certificate"
            ));
            return;
        }
        if let Some(existing) = self.certificates.get(&key) {
            self.errors.push(format!(
                "{source}: Certificate {key} is already defined by {}; rename one of them",
                existing.source
            ));
            return;
        }
        if let Some(other) = self
            .certificates
            .iter()
            .find(|(k, c)| k.namespace == key.namespace && c.spec.secret_name == spec.secret_name)
        {
            self.errors.push(format!(
                "{source}: Secret {}/{} is already filled by Certificate {} ({}); two certificates cannot share a Secret",
                key.namespace, spec.secret_name, other.0, other.1.source
            ));
            return;
        }
        match spec.plan() {
            Ok(plan) => {
                self.certificates
                    .insert(key, WantedCertificate { source, spec, plan });
            }
            Err(errors) => {
                for e in errors {
                    self.errors
                        .push(format!("{source} (Certificate {key}): {e}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Gateway manifest is read as if admitted: its hostname-only
    /// listener gets `<gateway>-<listener>-tls`, and shared Secrets one
    /// Certificate.
    #[test]
    fn gateways_become_certificates_as_if_admitted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gateway.yaml"),
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: shop
  annotations: {cert-manager.io/issuer: ca}
spec:
  gatewayClassName: eg
  listeners:
  - {name: https, hostname: shop.example.test, port: 443, protocol: HTTPS}
  - name: api
    hostname: api.example.test
    port: 8443
    protocol: HTTPS
    tls: {certificateRefs: [{name: api-tls}]}
"#,
        )
        .unwrap();
        let loaded = load(dir.path(), "default", &MutationConfig::default());
        assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
        let names: Vec<(String, Vec<String>)> = loaded
            .certificates
            .iter()
            .map(|(key, cert)| (key.name.clone(), cert.plan.request.dns_names.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("api-tls".to_owned(), vec!["api.example.test".to_owned()]),
                (
                    "shop-https-tls".to_owned(),
                    vec!["shop.example.test".to_owned()]
                ),
            ]
        );
    }
}
