//! Issuers in a cluster: from an `issuerRef` to a ready-to-sign issuer, and
//! the `Ready` condition users read on Issuers and ClusterIssuers.
//!
//! A namespaced Issuer serves only Certificates of its own namespace (the
//! reference is resolved there); a ClusterIssuer's Secrets (CA key pair,
//! ACME account key, TSIG and EAB keys) live in the controller's namespace,
//! as with cert-manager's cluster resource namespace.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::controller::scope::ScopedCache;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::Client;

use crate::api::certificate::CertificateCondition;
use crate::api::issuer::{
    AcmeIssuerStatus, ClusterIssuer, Issuer, IssuerConfig, IssuerObject, IssuerSpec,
    SecretKeySelector,
};
use crate::api::issuer_builder::{
    EnvFuture, Http01Setup, IssuerBuilder, IssuerEnvironment, SecretData,
};
use crate::api::{IssuerKind, IssuerRef};
use crate::controller::dns_webhook::KubeWebhookTransport;
use crate::issuers::acme::account::{SaveOutcome, StoreFuture};
use crate::issuers::acme::dns::check::DnsChecks;
use crate::issuers::acme::dns::webhook::WebhookTransport;
use crate::issuers::acme::{AccountKeyStore, Http01Routes, Http01Solver};
use crate::issuers::any::AnyIssuer;
use crate::model::IssueError;
use crate::store::ObjectKey;

/// The ACME account key in the Secret `privateKeySecretRef` names (key
/// `tls.key` unless the reference says otherwise). Created, never replaced.
pub struct SecretKeyStore {
    api: Api<Secret>,
    namespace: String,
    name: String,
    key: String,
}

impl SecretKeyStore {
    pub fn new(client: Client, namespace: &str, name: &str, key: Option<&str>) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.unwrap_or("tls.key").to_owned(),
        }
    }
}

impl AccountKeyStore for SecretKeyStore {
    fn load(&self) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move {
            let secret = self.api.get_opt(&self.name).await.map_err(|e| {
                IssueError::transient_because(
                    format!("cannot read the account key {}", self.describe()),
                    e,
                )
            })?;
            let Some(secret) = secret else {
                return Ok(None);
            };
            match secret.data.as_ref().and_then(|d| d.get(&self.key)) {
                Some(bytes) => String::from_utf8(bytes.0.clone()).map(Some).map_err(|_| {
                    IssueError::Config(format!("{} is not PEM text", self.describe()))
                }),
                // The Secret exists without the key: never overwrite what
                // someone else put there.
                None => Err(IssueError::Config(format!(
                    "{} exists but has no key {:?}; delete the Secret to let certweave create a new account key, or point privateKeySecretRef at the right key",
                    self.describe(),
                    self.key
                ))),
            }
        })
    }

    fn save_new<'a>(&'a self, pem: &'a str) -> StoreFuture<'a, SaveOutcome> {
        Box::pin(async move {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    self.key.clone(),
                    ByteString(pem.as_bytes().to_vec()),
                )])),
                ..Default::default()
            };
            match self.api.create(&PostParams::default(), &secret).await {
                Ok(_) => Ok(SaveOutcome::Saved),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    Ok(SaveOutcome::AlreadyExists)
                }
                Err(e) => Err(IssueError::transient_because(
                    format!("cannot create the account key {}", self.describe()),
                    e,
                )),
            }
        })
    }

    fn describe(&self) -> String {
        format!("Secret {}/{} key {}", self.namespace, self.name, self.key)
    }
}

/// Where Issuer Secrets and ACME account keys live in a cluster, and how
/// HTTP-01 challenges reach this replica.
pub struct ClusterEnvironment {
    client: Client,
    http01: Http01Solver,
    /// Routes HTTP-01 challenge requests to this replica.
    routes: Option<Arc<dyn Http01Routes>>,
}

impl IssuerEnvironment for ClusterEnvironment {
    fn read_secret<'a>(&'a self, key: &'a ObjectKey) -> EnvFuture<'a, Option<SecretData>> {
        Box::pin(async move {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
            let secret = api.get_opt(&key.name).await.map_err(|e| {
                IssueError::transient_because(format!("cannot read Secret {key}"), e)
            })?;
            Ok(secret.map(|s| {
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
                    .collect()
            }))
        })
    }

    fn account_key_store(
        &self,
        namespace: &str,
        selector: &SecretKeySelector,
    ) -> Arc<dyn AccountKeyStore> {
        Arc::new(SecretKeyStore::new(
            self.client.clone(),
            namespace,
            &selector.name,
            selector.key.as_deref(),
        ))
    }

    fn http01(&self) -> EnvFuture<'_, Http01Setup> {
        Box::pin(async move {
            Ok(Http01Setup {
                solver: self.http01.clone(),
                routes: self.routes.clone(),
            })
        })
    }

    fn dns01_webhook(&self) -> Option<Arc<dyn WebhookTransport>> {
        Some(Arc::new(KubeWebhookTransport::new(self.client.clone())))
    }
}

/// Turns issuer references into issuers, from the cached Issuers and
/// ClusterIssuers.
pub struct IssuerResolver {
    /// The controller's namespace: where ClusterIssuer Secrets live.
    namespace: String,
    issuers: ScopedCache<Issuer>,
    cluster_issuers: ScopedCache<ClusterIssuer>,
    env: ClusterEnvironment,
    builder: IssuerBuilder,
    ambient: AmbientCredentials,
}

/// Which issuers' DNS-01 providers may use the controller's own cloud
/// credentials (its environment, its Pod's role) when their spec names
/// none: cert-manager's `--cluster-issuer-ambient-credentials` (default
/// on) and `--issuer-ambient-credentials` (default off, since anyone who
/// may create an Issuer in their namespace would otherwise act with the
/// controller's cloud identity).
#[derive(Debug, Clone, Copy)]
pub struct AmbientCredentials {
    pub cluster_issuers: bool,
    pub issuers: bool,
}

impl Default for AmbientCredentials {
    fn default() -> Self {
        Self {
            cluster_issuers: true,
            issuers: false,
        }
    }
}

/// A resolved issuer, with the id used in messages and the namespace its
/// Secrets are read from.
pub struct Resolved {
    pub id: String,
    pub spec: IssuerSpec,
    pub secret_namespace: String,
    /// Whether its DNS-01 provider may use the controller's own cloud
    /// credentials when its spec names none.
    pub ambient_credentials: bool,
}

impl IssuerResolver {
    /// Where ClusterIssuer Secrets live: the controller's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn new(
        client: Client,
        namespace: String,
        issuers: ScopedCache<Issuer>,
        cluster_issuers: ScopedCache<ClusterIssuer>,
        http01: Http01Solver,
        routes: Option<Arc<dyn Http01Routes>>,
    ) -> Self {
        Self {
            namespace,
            issuers,
            cluster_issuers,
            env: ClusterEnvironment {
                client,
                http01,
                routes,
            },
            builder: IssuerBuilder::new(),
            ambient: AmbientCredentials::default(),
        }
    }

    /// Checks DNS-01 records with `checks`, and lets issuers use ambient
    /// credentials as `ambient` says.
    pub fn with_dns01(mut self, checks: DnsChecks, ambient: AmbientCredentials) -> Self {
        self.builder = self.builder.with_dns_checks(checks);
        self.ambient = ambient;
        self
    }

    /// Finds the issuer `reference` names for a Certificate in `namespace`.
    pub fn find(&self, namespace: &str, reference: &IssuerRef) -> Result<Resolved, IssueError> {
        fn spec_of<K: IssuerObject>(
            cache: &ScopedCache<K>,
            at: ObjectRef<K>,
        ) -> Option<IssuerSpec> {
            cache.get(&at).map(|issuer| issuer.issuer_spec().clone())
        }
        let name = &reference.name;
        let (spec, id, secret_namespace, advice, ambient_credentials) = match reference.kind {
            IssuerKind::Issuer => (
                spec_of(&self.issuers, ObjectRef::new(name).within(namespace)),
                format!("Issuer {namespace}/{name}"),
                namespace,
                "create it (an Issuer serves only Certificates in its own namespace; use a ClusterIssuer to serve all)",
                self.ambient.issuers,
            ),
            IssuerKind::ClusterIssuer => (
                spec_of(&self.cluster_issuers, ObjectRef::new(name)),
                format!("ClusterIssuer {name}"),
                self.namespace.as_str(),
                "create it",
                self.ambient.cluster_issuers,
            ),
        };
        let spec =
            spec.ok_or_else(|| IssueError::Transient(format!("{id} does not exist; {advice}")))?;
        Ok(Resolved {
            id,
            spec,
            secret_namespace: secret_namespace.to_owned(),
            ambient_credentials,
        })
    }

    /// The issuer that signs for `resolved`.
    pub async fn issuer(&self, resolved: &Resolved) -> Result<AnyIssuer, IssueError> {
        self.builder
            .build(
                &self.env,
                &resolved.id,
                &resolved.spec,
                &resolved.secret_namespace,
                resolved.ambient_credentials,
            )
            .await
    }

    /// Checks an issuer the way its Certificates will use it: an ACME
    /// account is found or registered (its key created in
    /// `privateKeySecretRef` if missing), a CA Secret is present and a CA.
    /// Returns the `Ready` condition and, for ACME, the account status.
    pub async fn check(
        &self,
        resolved: &Resolved,
    ) -> (CertificateCondition, Option<AcmeIssuerStatus>) {
        let outcome = match self.issuer(resolved).await {
            Ok(AnyIssuer::Acme(acme)) => match acme.account().await {
                Ok(info) => Ok((
                    "ACMEAccountRegistered",
                    "The ACME account was registered with the ACME server".to_owned(),
                    Some(AcmeIssuerStatus {
                        uri: Some(info.url),
                        last_registered_email: match resolved.spec.config() {
                            Ok(IssuerConfig::Acme(a)) => a.email.clone(),
                            _ => None,
                        },
                    }),
                )),
                Err(e) => Err(("ErrRegisterACMEAccount", e.to_string())),
            },
            Ok(AnyIssuer::Ca(_)) => Ok(("KeyPairVerified", "Signing CA verified".to_owned(), None)),
            Ok(AnyIssuer::SelfSigned(_)) => Ok(("IsReady", String::new(), None)),
            Err(e) => Err(("ErrInitIssuer", e.to_string())),
        };
        let (status, reason, message, acme) = match outcome {
            Ok((reason, message, acme)) => ("True", reason, message, acme),
            Err((reason, message)) => ("False", reason, message, None),
        };
        (
            CertificateCondition {
                type_: "Ready".into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message),
                last_transition_time: k8s_openapi::jiff::Timestamp::try_from(
                    std::time::SystemTime::now(),
                )
                .ok()
                .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
                observed_generation: None,
            },
            acme,
        )
    }
}

/// Writes an issuer's `Ready` condition, keeping the transition time while
/// the status does not change.
pub async fn write_issuer_status(
    client: &Client,
    reference: &IssuerRef,
    namespace: &str,
    previous: Option<&CertificateCondition>,
    mut ready: CertificateCondition,
    acme: Option<AcmeIssuerStatus>,
    generation: Option<i64>,
) -> Result<(), kube::Error> {
    if let Some(previous) = previous.filter(|p| p.status == ready.status) {
        ready.last_transition_time = previous.last_transition_time.clone();
    }
    ready.observed_generation = generation;
    let mut status = serde_json::json!({ "conditions": [ready] });
    if let Some(acme) = acme {
        status["acme"] = serde_json::to_value(acme).expect("status serialises");
    }
    let patch = Patch::Merge(serde_json::json!({ "status": status }));
    let params = PatchParams::default();
    match reference.kind {
        IssuerKind::Issuer => {
            Api::<Issuer>::namespaced(client.clone(), namespace)
                .patch_status(&reference.name, &params, &patch)
                .await?;
        }
        IssuerKind::ClusterIssuer => {
            Api::<ClusterIssuer>::all(client.clone())
                .patch_status(&reference.name, &params, &patch)
                .await?;
        }
    }
    Ok(())
}
