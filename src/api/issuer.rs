//! `cert-manager.io/v1` Issuer and ClusterIssuer. Both share [`IssuerSpec`];
//! only their scope differs.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::certificate::CertificateCondition;
use super::InvalidField;

/// Exactly one of `acme`, `ca`, `selfSigned`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Issuer",
    namespaced,
    status = "IssuerStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IssuerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
}

/// The cluster-scoped twin of [`Issuer`], with the same spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "ClusterIssuer",
    status = "IssuerStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterIssuerSpec {
    #[serde(flatten)]
    pub spec: IssuerSpec,
}

impl std::ops::Deref for ClusterIssuerSpec {
    type Target = IssuerSpec;

    fn deref(&self) -> &IssuerSpec {
        &self.spec
    }
}

/// `acme`: an ACME server account and how to solve its challenges.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuer {
    /// Directory URL, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Where the account key lives (key `tls.key`); created if missing.
    pub private_key_secret_ref: SecretKeySelector,
    /// Base64 PEM bundle to trust for the ACME server (private ACME servers).
    #[serde(default, rename = "caBundle", skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    #[serde(
        default,
        rename = "skipTLSVerify",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub skip_tls_verify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_binding: Option<ExternalAccountBinding>,
    /// Prefer the alternate chain whose top issuer has this common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_chain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub solvers: Vec<AcmeSolver>,
}

/// A reference to one key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAccountBinding {
    #[serde(rename = "keyID")]
    pub key_id: String,
    pub key_secret_ref: SecretKeySelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<String>,
}

/// One solver, chosen for a name by its `selector`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AcmeSolver {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SolverSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http01: Option<Http01Solver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns01: Option<Dns01Solver>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SolverSelector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_zones: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Http01Solver {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Http01Ingress>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Http01Ingress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Dns01Solver {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc2136: Option<Rfc2136Solver>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rfc2136Solver {
    /// `HOST:PORT` (port 53 if omitted).
    pub nameserver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_key_name: Option<String>,
    /// `HMACSHA256` (default), `HMACSHA384`, `HMACSHA512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_secret_secret_ref: Option<SecretKeySelector>,
}

/// `ca`: sign with the CA certificate and key in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuer {
    pub secret_name: String,
}

/// `selfSigned: {}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct SelfSignedIssuer {}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct IssuerStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CertificateCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuerStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_registered_email: Option<String>,
}

/// Which kind of issuer a spec configures, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerConfig<'a> {
    Acme(&'a AcmeIssuer),
    Ca(&'a CaIssuer),
    SelfSigned,
}

impl IssuerSpec {
    /// Exactly one issuer type must be set; ACME needs a server, an account
    /// key Secret and at least one solver.
    pub fn config(&self) -> Result<IssuerConfig<'_>, InvalidField> {
        let set = [
            self.acme.is_some(),
            self.ca.is_some(),
            self.self_signed.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set != 1 {
            return Err(InvalidField::new(
                "spec",
                format!("{set} issuer types are configured"),
                "configure exactly one of acme, ca or selfSigned",
            ));
        }
        if let Some(acme) = &self.acme {
            if !(acme.server.starts_with("https://") || acme.server.starts_with("http://")) {
                return Err(InvalidField::new(
                    "spec.acme.server",
                    format!("{:?} is not a URL", acme.server),
                    "use the ACME directory URL, e.g. https://acme-staging-v02.api.letsencrypt.org/directory",
                ));
            }
            super::names::check_object_name(
                "spec.acme.privateKeySecretRef.name",
                &acme.private_key_secret_ref.name,
            )?;
            if acme.solvers.is_empty() {
                return Err(InvalidField::new(
                    "spec.acme.solvers",
                    "no solver is configured",
                    "add a solver, e.g. solvers: [{http01: {ingress: {ingressClassName: nginx}}}]",
                ));
            }
            for (i, solver) in acme.solvers.iter().enumerate() {
                if solver.http01.is_some() == solver.dns01.is_some() {
                    return Err(InvalidField::new(
                        format!("spec.acme.solvers[{i}]"),
                        "a solver must configure exactly one of http01 or dns01",
                        "split it into two solvers with selectors",
                    ));
                }
            }
            return Ok(IssuerConfig::Acme(acme));
        }
        if let Some(ca) = &self.ca {
            super::names::check_object_name("spec.ca.secretName", &ca.secret_name)?;
            return Ok(IssuerConfig::Ca(ca));
        }
        Ok(IssuerConfig::SelfSigned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_manager_docs_cluster_issuer_parses() {
        let yaml = r#"
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
        let issuer: ClusterIssuer = serde_yaml_ng::from_str(yaml).unwrap();
        match issuer.spec.config().unwrap() {
            IssuerConfig::Acme(acme) => {
                assert_eq!(acme.email.as_deref(), Some("user@example.com"));
                assert_eq!(
                    acme.solvers[0]
                        .http01
                        .as_ref()
                        .unwrap()
                        .ingress
                        .as_ref()
                        .unwrap()
                        .ingress_class_name
                        .as_deref(),
                    Some("nginx")
                );
            }
            other => panic!("expected ACME, got {other:?}"),
        }
    }

    #[test]
    fn exactly_one_issuer_type() {
        let spec: IssuerSpec =
            serde_yaml_ng::from_str("selfSigned: {}\nca: {secretName: root}\n").unwrap();
        assert_eq!(spec.config().unwrap_err().field, "spec");
        let spec: IssuerSpec = serde_yaml_ng::from_str("ca: {secretName: root-ca}\n").unwrap();
        assert_eq!(
            spec.config().unwrap(),
            IssuerConfig::Ca(&CaIssuer {
                secret_name: "root-ca".into()
            })
        );
    }
}
