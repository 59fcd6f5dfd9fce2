//! From a `cert-manager.io/v1` ACME issuer spec to the engine's ACME
//! settings, once for `certweave local` and the controller alike.
//!
//! The caller reads the Secrets the spec references (from manifests in a
//! directory, or from the API server) and passes their contents in; this
//! module only interprets. It decides nothing about where the account key
//! lives or how HTTP-01 is served: those differ between the two callers.

use std::collections::BTreeMap;

use super::dns01_settings::{self, Dns01Context, SecretReader};
use crate::api::issuer::{AcmeIssuer as AcmeSpec, SecretKeySelector};
use crate::issuers::acme::{
    AcmeConfig, ExternalAccountBinding, GatewayParent, Http01Route, RuleMethod, SolverRule,
    SolverSelector, Trust,
};
use crate::model::IssueError;
use crate::store::ObjectKey;

/// Secret contents by Secret, then by key.
pub type SecretValues = BTreeMap<ObjectKey, BTreeMap<String, String>>;

/// What an ACME issuer spec asks of the engine.
pub struct AcmeSettings {
    pub config: AcmeConfig,
    /// Whether a solver validates with HTTP-01 (the caller provides the
    /// token server).
    pub http01: bool,
    /// Every solver with its selector, in spec order.
    pub rules: Vec<SolverRule>,
}

/// The Secrets (and keys) `acme` reads besides its account key: the EAB
/// HMAC key and the DNS-01 providers' credentials. Fetch these before [`acme_settings`].
pub fn referenced_secrets(acme: &AcmeSpec) -> Vec<(SecretKeySelector, &'static str)> {
    let mut out = Vec::new();
    if let Some(eab) = &acme.external_account_binding {
        out.push((eab.key_secret_ref.clone(), "secret"));
    }
    for dns01 in acme.solvers.iter().filter_map(|s| s.dns01.as_ref()) {
        for secret in dns01.secrets() {
            out.push((secret.selector.clone(), secret.default_key));
        }
    }
    out
}

/// Interprets `acme`. `id` names the issuer in messages (`ClusterIssuer
/// le`); Secrets are looked up in `namespace`; `dns` is what the process
/// decides about DNS-01 solvers.
pub fn acme_settings(
    id: &str,
    acme: &AcmeSpec,
    namespace: &str,
    secrets: &SecretValues,
    dns: &Dns01Context,
) -> Result<AcmeSettings, IssueError> {
    let reader = SecretReader {
        id,
        namespace,
        secrets,
    };
    let mut config = AcmeConfig::new(acme.server.clone());
    config.email = acme.email.clone();
    config.preferred_chain = acme.preferred_chain.clone();
    config.profile = acme.profile.clone();
    config.disable_account_key_generation = acme.disable_account_key_generation;
    config.trust = if acme.skip_tls_verify {
        Trust::InsecureSkipVerify
    } else if let Some(bundle) = &acme.ca_bundle {
        use base64::Engine;
        let pem = base64::engine::general_purpose::STANDARD
            .decode(bundle.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                IssueError::Config(format!(
                    "{id}: spec.acme.caBundle is not base64-encoded PEM"
                ))
            })?;
        Trust::CaBundle(pem)
    } else {
        Trust::PublicRoots
    };
    if let Some(eab) = &acme.external_account_binding {
        let hmac = reader.value(
            &eab.key_secret_ref,
            "secret",
            "the external account binding key",
        )?;
        config.external_account_binding =
            Some(ExternalAccountBinding::new(eab.key_id.clone(), &hmac)?);
    }
    let mut http01 = false;
    let mut rules = Vec::new();
    for (i, solver) in acme.solvers.iter().enumerate() {
        let selector = solver
            .selector
            .as_ref()
            .map(|s| SolverSelector {
                dns_names: s.dns_names.clone(),
                dns_zones: s.dns_zones.clone(),
                match_labels: s.match_labels.clone(),
            })
            .unwrap_or_default();
        if let Some(http) = &solver.http01 {
            http01 = true;
            if let Some(route) = &http.gateway_http_route {
                rules.push(SolverRule {
                    selector,
                    method: RuleMethod::Http01(Http01Route {
                        labels: route.labels.clone(),
                        gateway: Some(
                            route
                                .parent_refs
                                .iter()
                                .map(|p| GatewayParent {
                                    name: p.name.clone(),
                                    namespace: p.namespace.clone(),
                                    kind: p.kind.clone(),
                                    group: p.group.clone(),
                                    section_name: p.section_name.clone(),
                                    port: p.port.and_then(|port| u16::try_from(port).ok()),
                                })
                                .collect(),
                        ),
                        ..Default::default()
                    }),
                });
                continue;
            }
            let ingress = http.ingress.clone().unwrap_or_default();
            let template = ingress
                .ingress_template
                .and_then(|t| t.metadata)
                .unwrap_or_default();
            rules.push(SolverRule {
                selector,
                method: RuleMethod::Http01(Http01Route {
                    class: ingress.class,
                    ingress_class_name: ingress.ingress_class_name,
                    name: ingress.name,
                    labels: template.labels,
                    annotations: template.annotations,
                    gateway: None,
                }),
            });
            continue;
        }
        let Some(dns01) = &solver.dns01 else {
            return Err(IssueError::Config(format!(
                "{id}: spec.acme.solvers[{i}] has neither http01 nor dns01"
            )));
        };
        let dns = dns01_settings::dns01_solver(
            &format!("spec.acme.solvers[{i}].dns01"),
            dns01,
            &reader,
            dns,
        )?;
        rules.push(SolverRule {
            selector,
            method: RuleMethod::Dns01(dns),
        });
    }
    Ok(AcmeSettings {
        config,
        http01,
        rules,
    })
}
