//! From a `solvers[].dns01` block to the engine's DNS-01 solver: the
//! provider's settings as a [`DnsProvider`], which builds it and wraps it
//! with CNAME following and the self-check ([`CheckedSolver`]) as it does
//! for `certweave issue`. Shared by `certweave local` and the controller
//! through [`super::acme_settings`].
//!
//! Credentials come from the Secrets the caller read ([`SecretReader`]);
//! a missing Secret or key is a configuration error naming both. What
//! differs between the callers (a path to external webhook solvers through
//! the API server, whether an issuer may use the process's own cloud
//! credentials) is a [`Dns01Context`].

use std::sync::Arc;

use super::acme_settings::SecretValues;
use super::issuer::{
    AcmeDnsSolver as AcmeDnsSpec, CloudflareSolver as CloudflareSpec, Dns01Solver as Dns01Spec,
    Rfc2136Solver as Rfc2136Spec, Route53Solver as Route53Spec, SecretKeySelector,
    WebhookSolver as WebhookSpec,
};
use crate::issuers::acme::dns::acme_dns::{parse_accounts, AcmeDnsConfig};
use crate::issuers::acme::dns::api::excerpt;
use crate::issuers::acme::dns::check::{CheckedSolver, DnsChecks};
use crate::issuers::acme::dns::cloudflare::{CloudflareAuth, CloudflareConfig};
use crate::issuers::acme::dns::provider::DnsProvider;
use crate::issuers::acme::dns::route53::{AwsCredentials, Route53Config, Route53Credentials};
use crate::issuers::acme::dns::webhook::{WebhookConfig, WebhookSolver, WebhookTransport};
use crate::issuers::acme::dns01::Rfc2136Config;
use crate::issuers::acme::DnsSolver;
use crate::model::IssueError;
use crate::store::ObjectKey;

/// What the process decides about DNS-01, beside each issuer's spec.
#[derive(Clone, Default)]
pub struct Dns01Context {
    /// Recursive nameservers and the self-check policy
    /// (`--dns01-recursive-nameservers[-only]`).
    pub checks: Arc<DnsChecks>,
    /// How `webhook` solvers are reached (through the API server); `None`
    /// where there is no API server (`certweave local`).
    pub webhook: Option<Arc<dyn WebhookTransport>>,
    /// Whether this issuer may use the process's own credentials (the
    /// environment, the instance's role) when its spec names none:
    /// ClusterIssuers by default, Issuers only when allowed, as in
    /// cert-manager.
    pub ambient_credentials: bool,
    /// The namespace the issuer's Secrets live in, told to webhook
    /// solvers (`resourceNamespace`).
    pub resource_namespace: String,
}

impl std::fmt::Debug for Dns01Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns01Context")
            .field("checks", &self.checks)
            .field("webhook", &self.webhook.is_some())
            .field("ambient_credentials", &self.ambient_credentials)
            .finish()
    }
}

/// Reads values out of the Secrets an issuer references.
pub struct SecretReader<'a> {
    /// Names the issuer in messages (`ClusterIssuer le`).
    pub id: &'a str,
    pub namespace: &'a str,
    pub secrets: &'a SecretValues,
}

impl SecretReader<'_> {
    /// The value at `selector` (key `default_key` when it names none);
    /// `what` says what it is in the error when it is missing.
    pub fn value(
        &self,
        selector: &SecretKeySelector,
        default_key: &str,
        what: &str,
    ) -> Result<String, IssueError> {
        let key = ObjectKey::new(self.namespace, selector.name.clone());
        let field = selector
            .key
            .clone()
            .unwrap_or_else(|| default_key.to_owned());
        self.secrets
            .get(&key)
            .and_then(|values| values.get(&field))
            .cloned()
            .ok_or_else(|| {
                IssueError::Config(format!(
                    "{}: {what} is read from Secret {key} key {field:?}, which does not exist; create the Secret with that key",
                    self.id
                ))
            })
    }
}

/// The solver `spec` (at `path`, e.g. `spec.acme.solvers[1].dns01`)
/// describes.
pub fn dns01_solver(
    path: &str,
    spec: &Dns01Spec,
    secrets: &SecretReader<'_>,
    context: &Dns01Context,
) -> Result<Arc<dyn DnsSolver>, IssueError> {
    let at = |field: &str| Field {
        id: secrets.id,
        path: format!("{path}.{field}"),
    };
    let (provider, field) = if let Some(rfc2136) = &spec.rfc2136 {
        (
            rfc2136_provider(rfc2136, secrets, at("rfc2136"))?,
            "rfc2136",
        )
    } else if let Some(route53) = &spec.route53 {
        (
            route53_provider(route53, secrets, context, at("route53"))?,
            "route53",
        )
    } else if let Some(cloudflare) = &spec.cloudflare {
        (
            cloudflare_provider(cloudflare, secrets, at("cloudflare"))?,
            "cloudflare",
        )
    } else if let Some(acme_dns) = &spec.acme_dns {
        (
            acme_dns_provider(acme_dns, secrets, at("acmeDNS"))?,
            "acmeDNS",
        )
    } else if let Some(webhook) = &spec.webhook {
        // Like the hosted providers, webhook solvers answer before the
        // record is served: always self-checked.
        return Ok(Arc::new(CheckedSolver::new(
            webhook_provider(webhook, context, at("webhook"))?,
            context.checks.clone(),
            spec.follows_cnames(),
            true,
        )));
    } else {
        return Err(IssueError::Config(format!(
            "{}: {path}: no DNS-01 provider is configured; configure one of rfc2136, route53, cloudflare, acmeDNS or webhook",
            secrets.id
        )));
    };
    provider
        .checked(context.checks.clone(), spec.follows_cnames())
        .map_err(|e| at(field).wrap(e))
}

/// Names a field of the issuer in configuration errors.
struct Field<'a> {
    id: &'a str,
    path: String,
}

impl Field<'_> {
    fn error(&self, problem: impl std::fmt::Display) -> IssueError {
        IssueError::Config(format!("{}: {}: {problem}", self.id, self.path))
    }

    /// A provider's own configuration error, prefixed with the field.
    fn wrap(&self, error: IssueError) -> IssueError {
        match error {
            IssueError::Config(problem) => self.error(problem),
            other => other,
        }
    }
}

fn rfc2136_provider(
    spec: &Rfc2136Spec,
    secrets: &SecretReader<'_>,
    at: Field<'_>,
) -> Result<DnsProvider, IssueError> {
    let nameserver = if spec.nameserver.contains(':') {
        spec.nameserver.clone()
    } else {
        format!("{}:53", spec.nameserver)
    };
    let nameserver = nameserver.parse().map_err(|_| {
        at.error(format_args!(
            "nameserver {:?} is not an IP:PORT address",
            excerpt(&spec.nameserver)
        ))
    })?;
    let secret = match &spec.tsig_secret_secret_ref {
        Some(selector) => secrets.value(selector, "tsig-secret-key", "the TSIG secret")?,
        None => String::new(),
    };
    let algorithm = spec
        .tsig_algorithm
        .as_deref()
        .unwrap_or("HMACSHA256")
        .parse()
        .map_err(|e| at.error(format_args!("tsigAlgorithm: {e}")))?;
    Ok(DnsProvider::Rfc2136(Rfc2136Config {
        nameserver,
        tsig_key_name: spec.tsig_key_name.clone().unwrap_or_default(),
        tsig_secret: secret,
        tsig_algorithm: algorithm,
        tcp: spec.protocol.as_deref() == Some("TCP"),
    }))
}

fn route53_provider(
    spec: &Route53Spec,
    secrets: &SecretReader<'_>,
    context: &Dns01Context,
    at: Field<'_>,
) -> Result<DnsProvider, IssueError> {
    let key_id = match (&spec.access_key_id, &spec.access_key_id_secret_ref) {
        (Some(inline), _) => Some(inline.clone()),
        (None, Some(selector)) => {
            Some(secrets.value(selector, "access-key-id", "the Route53 access key ID")?)
        }
        (None, None) => None,
    };
    let credentials = match (key_id, &spec.secret_access_key_secret_ref) {
        (Some(id), Some(selector)) => {
            let secret = secrets.value(
                selector,
                "secret-access-key",
                "the Route53 secret access key",
            )?;
            Route53Credentials::Keys(AwsCredentials::new(id, secret))
        }
        (None, None) if context.ambient_credentials => Route53Credentials::Ambient,
        (None, None) => {
            return Err(at.error(
                "no access key is given and this issuer may not use the controller's own AWS \
                 credentials; give accessKeyIDSecretRef and secretAccessKeySecretRef, use a \
                 ClusterIssuer, or run the controller with --issuer-ambient-credentials",
            ))
        }
        _ => {
            return Err(at.error(
                "an access key needs both its ID (accessKeyID or accessKeyIDSecretRef) and \
                 secretAccessKeySecretRef; give both, or neither for ambient credentials",
            ))
        }
    };
    let mut config = Route53Config::new(spec.region.as_deref().unwrap_or(""), credentials);
    config.hosted_zone_id = spec.hosted_zone_id.clone().filter(|id| !id.is_empty());
    config.role = spec.role.clone().filter(|role| !role.is_empty());
    Ok(DnsProvider::Route53(config))
}

fn cloudflare_provider(
    spec: &CloudflareSpec,
    secrets: &SecretReader<'_>,
    at: Field<'_>,
) -> Result<DnsProvider, IssueError> {
    let auth =
        match (&spec.api_token_secret_ref, &spec.api_key_secret_ref) {
            (Some(token), None) => CloudflareAuth::ApiToken(secrets.value(
                token,
                "api-token",
                "the Cloudflare API token",
            )?),
            (None, Some(key)) => {
                let Some(email) = spec.email.clone().filter(|e| !e.is_empty()) else {
                    return Err(at.error(
                        "the global API key (apiKeySecretRef) needs the account's email; set email",
                    ));
                };
                CloudflareAuth::ApiKey {
                    email,
                    key: secrets.value(key, "api-key", "the Cloudflare API key")?,
                }
            }
            _ => return Err(at.error(
                "set exactly one of apiTokenSecretRef (recommended) or apiKeySecretRef with email",
            )),
        };
    Ok(DnsProvider::Cloudflare(CloudflareConfig::new(auth)))
}

fn acme_dns_provider(
    spec: &AcmeDnsSpec,
    secrets: &SecretReader<'_>,
    at: Field<'_>,
) -> Result<DnsProvider, IssueError> {
    let json = secrets.value(
        &spec.account_secret_ref,
        "acmedns.json",
        "the acme-dns account map",
    )?;
    let accounts = parse_accounts(json.as_bytes()).map_err(|e| at.wrap(e))?;
    Ok(DnsProvider::AcmeDns(AcmeDnsConfig {
        host: spec.host.clone(),
        accounts,
    }))
}

fn webhook_provider(
    spec: &WebhookSpec,
    context: &Dns01Context,
    at: Field<'_>,
) -> Result<Arc<dyn DnsSolver>, IssueError> {
    let Some(transport) = context.webhook.clone() else {
        return Err(at.error(
            "external webhook solvers are called through the Kubernetes API server, which \
             this command has none of; use rfc2136, route53, cloudflare or acmeDNS here",
        ));
    };
    let config = WebhookConfig {
        group_name: spec.group_name.clone(),
        solver_name: spec.solver_name.clone(),
        config: spec.config.clone().unwrap_or(serde_json::Value::Null),
        resource_namespace: context.resource_namespace.clone(),
        allow_ambient_credentials: context.ambient_credentials,
    };
    let solver =
        WebhookSolver::new(config, transport, context.checks.clone()).map_err(|e| at.wrap(e))?;
    Ok(Arc::new(solver))
}
