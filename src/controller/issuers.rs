//! Issuers in a cluster: from an `issuerRef` to a ready-to-sign issuer, and
//! the `Ready` condition users read on Issuers and ClusterIssuers.
//!
//! A namespaced Issuer serves only Certificates of its own namespace (the
//! reference is resolved there); a ClusterIssuer's Secrets (CA key pair,
//! ACME account key, TSIG and EAB keys) live in the controller's namespace,
//! as with cert-manager's cluster resource namespace.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store as Cache};
use kube::Client;

use crate::api::certificate::CertificateCondition;
use crate::api::issuer::{AcmeIssuerStatus, ClusterIssuer, Issuer, IssuerConfig, IssuerSpec};
use crate::api::{IssuerKind, IssuerRef};
use crate::issuers::acme::account::{SaveOutcome, StoreFuture};
use crate::issuers::acme::{AccountKeyStore, AcmeIssuer, Http01Routes, Http01Solver, Solvers};
use crate::issuers::any::AnyIssuer;
use crate::issuers::ca::CaIssuer;
use crate::issuers::from_spec::{self, SecretValues};
use crate::issuers::selfsigned::SelfSignedIssuer;
use crate::issuers::IssueError;
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
                IssueError::Transient(format!(
                    "cannot read the account key {}: {e}",
                    self.describe()
                ))
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
                Err(e) => Err(IssueError::Transient(format!(
                    "cannot create the account key {}: {e}",
                    self.describe()
                ))),
            }
        })
    }

    fn describe(&self) -> String {
        format!("Secret {}/{} key {}", self.namespace, self.name, self.key)
    }
}

/// Logged-in ACME issuers by issuer id, with the spec they were built from.
type AcmeSessions = HashMap<String, (IssuerSpec, Arc<AcmeIssuer>)>;

/// Turns issuer references into issuers, from the cached Issuers and
/// ClusterIssuers.
pub struct IssuerResolver {
    client: Client,
    /// The controller's namespace: where ClusterIssuer Secrets live.
    namespace: String,
    issuers: Cache<Issuer>,
    cluster_issuers: Cache<ClusterIssuer>,
    http01: Http01Solver,
    /// Routes HTTP-01 challenge requests to this replica.
    routes: Option<Arc<dyn Http01Routes>>,
    acme: tokio::sync::Mutex<AcmeSessions>,
}

/// A resolved issuer, with the id used in messages and the namespace its
/// Secrets are read from.
pub struct Resolved {
    pub id: String,
    pub spec: IssuerSpec,
    pub secret_namespace: String,
}

impl IssuerResolver {
    pub fn new(
        client: Client,
        namespace: String,
        issuers: Cache<Issuer>,
        cluster_issuers: Cache<ClusterIssuer>,
        http01: Http01Solver,
        routes: Option<Arc<dyn Http01Routes>>,
    ) -> Self {
        Self {
            client,
            namespace,
            issuers,
            cluster_issuers,
            http01,
            routes,
            acme: Default::default(),
        }
    }

    /// Finds the issuer `reference` names for a Certificate in `namespace`.
    pub fn find(&self, namespace: &str, reference: &IssuerRef) -> Result<Resolved, IssueError> {
        match reference.kind {
            IssuerKind::Issuer => {
                let found = self
                    .issuers
                    .get(&ObjectRef::new(&reference.name).within(namespace))
                    .ok_or_else(|| {
                        IssueError::Transient(format!(
                            "Issuer {namespace}/{} does not exist; create it (an Issuer serves only Certificates in its own namespace; use a ClusterIssuer to serve all)",
                            reference.name
                        ))
                    })?;
                Ok(Resolved {
                    id: format!("Issuer {namespace}/{}", reference.name),
                    spec: found.spec.clone(),
                    secret_namespace: namespace.to_owned(),
                })
            }
            IssuerKind::ClusterIssuer => {
                let found = self
                    .cluster_issuers
                    .get(&ObjectRef::new(&reference.name))
                    .ok_or_else(|| {
                        IssueError::Transient(format!(
                            "ClusterIssuer {} does not exist; create it",
                            reference.name
                        ))
                    })?;
                Ok(Resolved {
                    id: format!("ClusterIssuer {}", reference.name),
                    spec: (*found.spec).clone(),
                    secret_namespace: self.namespace.clone(),
                })
            }
        }
    }

    /// The issuer that signs for `resolved`.
    pub async fn issuer(&self, resolved: &Resolved) -> Result<AnyIssuer, IssueError> {
        let id = &resolved.id;
        match resolved
            .spec
            .config()
            .map_err(|e| IssueError::Config(format!("{id}: {e}")))?
        {
            IssuerConfig::SelfSigned => Ok(AnyIssuer::SelfSigned(SelfSignedIssuer)),
            IssuerConfig::Ca(ca) => {
                let values = self
                    .read_secret(&ObjectKey::new(
                        resolved.secret_namespace.clone(),
                        ca.secret_name.clone(),
                    ))
                    .await?
                    .ok_or_else(|| {
                        IssueError::Transient(format!(
                            "{id}: CA Secret {}/{} does not exist yet",
                            resolved.secret_namespace, ca.secret_name
                        ))
                    })?;
                let (Some(cert), Some(key)) = (values.get("tls.crt"), values.get("tls.key")) else {
                    return Err(IssueError::Transient(format!(
                        "{id}: CA Secret {}/{} lacks tls.crt or tls.key",
                        resolved.secret_namespace, ca.secret_name
                    )));
                };
                Ok(AnyIssuer::Ca(Arc::new(CaIssuer::from_pem(cert, key)?)))
            }
            IssuerConfig::Acme(acme) => {
                let mut sessions = self.acme.lock().await;
                if let Some((spec, issuer)) = sessions.get(id) {
                    if *spec == resolved.spec {
                        return Ok(AnyIssuer::Acme(issuer.clone()));
                    }
                }
                let mut secrets = SecretValues::new();
                for (selector, _) in from_spec::referenced_secrets(acme) {
                    let key = ObjectKey::new(resolved.secret_namespace.clone(), selector.name);
                    if let Some(values) = self.read_secret(&key).await? {
                        secrets.insert(key, values);
                    }
                }
                let settings =
                    from_spec::acme_settings(id, acme, &resolved.secret_namespace, &secrets)?;
                let solvers = Solvers {
                    http01: settings.http01.then(|| self.http01.clone()),
                    rules: settings.rules,
                    routes: self.routes.clone(),
                    ..Default::default()
                };
                let key_store = SecretKeyStore::new(
                    self.client.clone(),
                    &resolved.secret_namespace,
                    &acme.private_key_secret_ref.name,
                    acme.private_key_secret_ref.key.as_deref(),
                );
                let issuer = Arc::new(AcmeIssuer::new(
                    settings.config,
                    Arc::new(key_store),
                    solvers,
                )?);
                sessions.insert(id.clone(), (resolved.spec.clone(), issuer.clone()));
                Ok(AnyIssuer::Acme(issuer))
            }
        }
    }

    async fn read_secret(
        &self,
        key: &ObjectKey,
    ) -> Result<Option<BTreeMap<String, String>>, IssueError> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
        let secret = api
            .get_opt(&key.name)
            .await
            .map_err(|e| IssueError::Transient(format!("cannot read Secret {key}: {e}")))?;
        Ok(secret.map(|s| {
            s.data
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| String::from_utf8(v.0).ok().map(|v| (k, v)))
                .collect()
        }))
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
