//! From a `cert-manager.io/v1` Issuer or ClusterIssuer spec to a
//! ready-to-sign issuer, once for the controller and `certweave local`.
//!
//! What differs between the two is where things live: Secrets (the API
//! server, or the store and the manifests of a directory), the ACME account
//! key (a Secret, or a file), and how HTTP-01 challenges reach the solver
//! (routes through a temporary Ingress, or a listener bound on first use).
//! That is an [`IssuerEnvironment`]; everything else — interpreting the
//! spec, checking the CA Secret, logging in to an ACME account once and
//! sharing that session — is here.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::acme_settings::{self, SecretValues};
use super::dns01_settings::Dns01Context;
use super::issuer::{AcmeIssuer as AcmeSpec, IssuerConfig, IssuerSpec, SecretKeySelector};
use crate::issuers::acme::dns::check::DnsChecks;
use crate::issuers::acme::dns::webhook::WebhookTransport;
use crate::issuers::acme::{AccountKeyStore, AcmeIssuer, Http01Routes, Http01Solver, Solvers};
use crate::issuers::any::AnyIssuer;
use crate::issuers::ca::CaIssuer;
use crate::issuers::selfsigned::SelfSignedIssuer;
use crate::model::{IssueError, IssuerUrls};
use crate::store::ObjectKey;

/// A boxed future of the environment's answers.
pub type EnvFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, IssueError>> + Send + 'a>>;

/// The string values of one Secret, by key.
pub type SecretData = BTreeMap<String, String>;

/// How HTTP-01 challenges are answered where the issuer runs.
#[derive(Clone)]
pub struct Http01Setup {
    pub solver: Http01Solver,
    /// Routes challenge requests to the solver (in a cluster); `None` where
    /// the solver's listener is reached directly.
    pub routes: Option<Arc<dyn Http01Routes>>,
}

/// Where an issuer's Secrets, account keys and HTTP-01 solver come from.
pub trait IssuerEnvironment: Send + Sync {
    /// The Secret's values, or `None` when it does not exist (yet).
    fn read_secret<'a>(&'a self, key: &'a ObjectKey) -> EnvFuture<'a, Option<SecretData>>;

    /// Where the ACME account key `selector` names, in `namespace`, is kept.
    fn account_key_store(
        &self,
        namespace: &str,
        selector: &SecretKeySelector,
    ) -> Arc<dyn AccountKeyStore>;

    /// The HTTP-01 solver, asked for only when an issuer solves HTTP-01.
    fn http01(&self) -> EnvFuture<'_, Http01Setup>;

    /// How cert-manager's external DNS-01 solvers (`dns01.webhook`) are
    /// reached: through the API server, so only where there is one.
    fn dns01_webhook(&self) -> Option<Arc<dyn WebhookTransport>> {
        None
    }
}

/// Logged-in ACME issuers by issuer id, with the spec they were built from.
type AcmeSessions = HashMap<String, (IssuerSpec, Arc<AcmeIssuer>)>;

/// Builds issuers from specs, sharing one ACME session per issuer.
#[derive(Default)]
pub struct IssuerBuilder {
    acme: tokio::sync::Mutex<AcmeSessions>,
    dns_checks: Arc<DnsChecks>,
}

impl IssuerBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks DNS-01 records with `checks` (the process's
    /// `--dns01-recursive-nameservers[-only]`).
    pub fn with_dns_checks(mut self, checks: DnsChecks) -> Self {
        self.dns_checks = Arc::new(checks);
        self
    }

    /// The issuer `spec` describes, with its Secrets and solvers from `env`.
    /// `id` ("Issuer ns/name", "ClusterIssuer name") names it in messages
    /// and keys the session cache; `secret_namespace` is where its Secrets
    /// live; `ambient_credentials` says whether its DNS-01 provider may
    /// use the process's own cloud credentials when the spec names none.
    pub async fn build(
        &self,
        env: &impl IssuerEnvironment,
        id: &str,
        spec: &IssuerSpec,
        secret_namespace: &str,
        ambient_credentials: bool,
    ) -> Result<AnyIssuer, IssueError> {
        match spec
            .config()
            .map_err(|e| IssueError::Config(format!("{id}: {e}")))?
        {
            IssuerConfig::SelfSigned(spec) => Ok(AnyIssuer::SelfSigned(SelfSignedIssuer {
                urls: checked_urls(id, spec.urls())?,
            })),
            IssuerConfig::Ca(ca) => {
                let key = ObjectKey::new(secret_namespace, ca.secret_name.clone());
                let values = env.read_secret(&key).await?.ok_or_else(|| {
                    IssueError::Transient(format!("{id}: CA Secret {key} does not exist yet"))
                })?;
                let (Some(cert), Some(ca_key)) = (values.get("tls.crt"), values.get("tls.key"))
                else {
                    return Err(IssueError::Transient(format!(
                        "{id}: CA Secret {key} lacks tls.crt or tls.key"
                    )));
                };
                let urls = checked_urls(id, ca.urls())?;
                Ok(AnyIssuer::Ca(Arc::new(
                    CaIssuer::from_pem(cert, ca_key)?.with_urls(urls),
                )))
            }
            IssuerConfig::Acme(acme) => {
                // Held while a new issuer is built, so certificates starting
                // together share one issuer and one account login.
                let mut sessions = self.acme.lock().await;
                if let Some((cached, issuer)) = sessions.get(id) {
                    if cached == spec {
                        return Ok(AnyIssuer::Acme(issuer.clone()));
                    }
                }
                let dns = Dns01Context {
                    checks: self.dns_checks.clone(),
                    webhook: env.dns01_webhook(),
                    ambient_credentials,
                    resource_namespace: secret_namespace.to_owned(),
                };
                let issuer = Arc::new(acme_issuer(env, id, acme, secret_namespace, &dns).await?);
                sessions.insert(id.to_owned(), (spec.clone(), issuer.clone()));
                Ok(AnyIssuer::Acme(issuer))
            }
        }
    }
}

async fn acme_issuer(
    env: &impl IssuerEnvironment,
    id: &str,
    acme: &AcmeSpec,
    namespace: &str,
    dns: &Dns01Context,
) -> Result<AcmeIssuer, IssueError> {
    let mut secrets = SecretValues::new();
    for (selector, _) in acme_settings::referenced_secrets(acme) {
        let key = ObjectKey::new(namespace, selector.name);
        if let Some(values) = env.read_secret(&key).await? {
            secrets.insert(key, values);
        }
    }
    let settings = acme_settings::acme_settings(id, acme, namespace, &secrets, dns)?;
    let mut solvers = Solvers {
        rules: settings.rules,
        ..Default::default()
    };
    if settings.http01 {
        let setup = env.http01().await?;
        solvers.http01 = Some(setup.solver);
        solvers.routes = setup.routes;
    }
    let key_store = env.account_key_store(namespace, &acme.private_key_secret_ref);
    AcmeIssuer::new(settings.config, key_store, solvers)
}

/// `config()` checked the URLs already; a failure here is told the same way.
fn checked_urls(
    id: &str,
    urls: Result<IssuerUrls, crate::api::InvalidField>,
) -> Result<IssuerUrls, IssueError> {
    urls.map_err(|e| IssueError::Config(format!("{id}: {e}")))
}
