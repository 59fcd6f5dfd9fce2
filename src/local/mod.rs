//! `certweave local`: the whole pipeline against a local directory.
//!
//! Reads Certificate/Issuer/ClusterIssuer/Ingress manifests from a
//! directory, issues and renews them for as long as it runs, and writes each
//! Secret's files under `secrets/` (see [`crate::store::fs`]). State under
//! `state/` makes a restart resume: a still-valid certificate is not
//! re-issued, a failing one keeps its backoff.
//!
//! The engine's [`Scheduler`] decides when each certificate is evaluated,
//! exactly as in the cluster; this module supplies what one evaluation is
//! (`LocalJob`) and the triggers a directory gives (edited manifests,
//! Secret files changed by someone else, a CA that was just issued).

pub mod builtin_ca;
pub mod manifests;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::api::acme_settings::SecretValues;
use crate::api::issuer::SecretKeySelector;
use crate::api::issuer::{IssuerConfig, IssuerSpec};
use crate::api::issuer_builder::{
    EnvFuture, Http01Setup, IssuerBuilder, IssuerEnvironment, SecretData,
};
use crate::api::IssuerKind;
use crate::engine::reconcile::{self, Managed, ReconcileError};
use crate::engine::scheduler::{self, Job, Scheduler, Trigger, Triggers};
use crate::issuers::acme::{AccountKeyStore, FileKeyStore, Http01Server, Http01Solver};
use crate::issuers::any::AnyIssuer;
use crate::issuers::ca::CaIssuer;
use crate::issuers::own_ca;
use crate::model::{IssueError, RequestOrigin};
use crate::store::fs::FsStore;
use crate::store::{ObjectKey, Store};
use crate::webhook::MutationConfig;

/// Settings of `certweave local`.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub dir: PathBuf,
    /// Namespace of documents without one, and of ClusterIssuer Secrets.
    pub namespace: String,
    /// Serve the admission webhook here too (certificate from the built-in CA).
    pub webhook_addr: Option<SocketAddr>,
    /// Where ACME HTTP-01 challenges are answered.
    pub http01_addr: SocketAddr,
    /// Run through `sh -c` after a Secret changes.
    pub on_renew: Option<String>,
    /// Issuances running at once.
    pub concurrency: usize,
    /// How often the directory is checked for edited manifests.
    pub poll_interval: Duration,
    pub mutation: MutationConfig,
}

/// Why `certweave local` stopped.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("built-in CA: {0}")]
    Ca(#[from] IssueError),
    #[error("webhook: {0}")]
    Webhook(#[from] crate::webhook::server::ServeError),
    #[error("state: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// Which issuer a certificate resolved to.
#[derive(Debug, Clone, PartialEq)]
enum IssuerChoice {
    /// Defined in the directory; CA Secrets are read from `secret_namespace`.
    Defined {
        /// `Issuer ns/name` or `ClusterIssuer name`: caches and messages.
        id: String,
        spec: Box<IssuerSpec>,
        secret_namespace: String,
        /// Secret manifests the issuer may reference (TSIG, EAB keys).
        secrets: Arc<BTreeMap<ObjectKey, BTreeMap<String, String>>>,
    },
    /// Not defined: the built-in CA signs.
    BuiltIn,
}

#[derive(Debug, Clone, PartialEq)]
struct Wanted {
    managed: Managed,
    issuer: IssuerChoice,
    source: String,
}

/// Runs until `shutdown` completes.
pub async fn run(
    options: LocalOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LocalError> {
    if !options.dir.is_dir() {
        return Err(LocalError::NotADirectory(options.dir.clone()));
    }
    let store = Arc::new(FsStore::new(&options.dir));
    let (builtin, builtin_path) = builtin_ca::load_or_create(&options.dir)?;
    // The webhook's certificate is signed before the CA becomes the issuer
    // of every Certificate without one.
    let webhook_bundle = match options.webhook_addr {
        Some(_) => Some(builtin.issue_serving(&own_ca::serving_request(
            vec!["localhost".to_owned()],
            vec![
                std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::Ipv6Addr::LOCALHOST.into(),
            ],
            None,
        ))?),
        None => None,
    };
    let builtin = Arc::new(builtin.into_issuer());
    let shared = Arc::new(Shared {
        store: (*store).clone(),
        builtin: builtin.clone(),
        root: options.dir.clone(),
        http01_addr: options.http01_addr,
        http01: Http01Solver::new(),
        http01_server: tokio::sync::OnceCell::new(),
        builder: IssuerBuilder::new(),
    });
    tracing::info!(ca = %builtin_path.display(), dir = %options.dir.display(), "certweave local starting");

    let (stop_webhook, webhook) = match options.webhook_addr.zip(webhook_bundle) {
        Some((addr, bundle)) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let server = start_webhook(&options, &bundle, addr).await?;
            let handle = tokio::spawn(server.run(async {
                let _ = rx.await;
            }));
            (Some(tx), Some(handle))
        }
        None => (None, None),
    };

    let wanted = load_wanted(&options);
    let keys: Vec<ObjectKey> = wanted.keys().cloned().collect();
    let (triggers, inbox) = scheduler::triggers();
    let job = Arc::new(LocalJob {
        shared,
        on_renew: options.on_renew.clone(),
        wanted: std::sync::RwLock::new(Arc::new(wanted)),
        stamps: Default::default(),
        triggers,
    });
    let poller = tokio::spawn(watch_directory(options.clone(), job.clone()));
    // Rebuild the schedule: everything is evaluated now (cheap for valid
    // certificates), respecting backoffs recorded before the restart.
    let left = Scheduler::new(job, options.concurrency)
        .run(keys, inbox, shutdown)
        .await;
    poller.abort();
    if left > 0 {
        tracing::warn!(
            in_flight = left,
            "stopped with issuances still running; they resume at the next start"
        );
    }
    if let Some(stop) = stop_webhook {
        let _ = stop.send(());
    }
    if let Some(handle) = webhook {
        let _ = handle.await;
    }
    Ok(())
}

/// `certweave local`'s evaluation of one certificate, for the engine's
/// [`Scheduler`].
struct LocalJob {
    shared: Arc<Shared>,
    on_renew: Option<String>,
    /// What the manifests ask for; replaced whole when they change.
    wanted: std::sync::RwLock<Arc<BTreeMap<ObjectKey, Wanted>>>,
    /// What each Secret's files looked like after its last evaluation:
    /// edits, deletions and corruption by others trigger a re-evaluation.
    /// A key is absent while it is evaluated, so its own writes do not.
    stamps: std::sync::Mutex<HashMap<ObjectKey, SecretStamp>>,
    triggers: Triggers<ObjectKey>,
}

impl LocalJob {
    fn wanted(&self) -> Arc<BTreeMap<ObjectKey, Wanted>> {
        self.wanted.read().expect("wanted lock").clone()
    }
}

impl Job for LocalJob {
    type Key = ObjectKey;
    type Error = ReconcileError;

    async fn run(
        &self,
        key: ObjectKey,
        forced: bool,
    ) -> Result<Option<SystemTime>, ReconcileError> {
        let Some(item) = self.wanted().get(&key).cloned() else {
            return Ok(None);
        };
        let store = &self.shared.store;
        // Taken before reading: any change after this point differs from
        // the recorded stamp and is evaluated at the next poll.
        let stamp = SecretStamp::of(&store.secret_dir(&item.managed.secret));
        self.stamps.lock().expect("stamps lock").remove(&key);
        let issuer = self.shared.issuer_for(&item.issuer).await;
        let result = async {
            if forced {
                reconcile::clear_backoff(store, &item.managed.certificate).await?;
            }
            reconcile::reconcile(
                store,
                &item.managed,
                issuer.as_ref().map_err(IssueError::duplicate),
                SystemTime::now(),
            )
            .await
        }
        .await;
        self.stamps
            .lock()
            .expect("stamps lock")
            .insert(key.clone(), stamp);
        let step = result?;
        let wanted = self.wanted();
        if step.issued {
            on_issued(self.on_renew.as_deref(), store, &item);
            // Certificates signed by the CA in this Secret may be waiting for it.
            for (other, w) in wanted.iter() {
                if depends_on(w, &item.managed.secret) {
                    self.triggers.send(Trigger::Force(other.clone()));
                }
            }
        }
        Ok(wanted.contains_key(&key).then_some(step.next))
    }
}

/// Polls the directory: edited manifests force the certificates they
/// change, and Secret files changed by someone else force theirs.
async fn watch_directory(options: LocalOptions, job: Arc<LocalJob>) {
    let mut fingerprint = manifests::fingerprint(&options.dir);
    loop {
        tokio::time::sleep(options.poll_interval).await;
        let current = manifests::fingerprint(&options.dir);
        if current != fingerprint {
            fingerprint = current;
            let fresh = Arc::new(load_wanted(&options));
            // Replaced before the triggers go out: an evaluation they start
            // must see the new manifests.
            let wanted = std::mem::replace(
                &mut *job.wanted.write().expect("wanted lock"),
                fresh.clone(),
            );
            for (key, item) in fresh.iter() {
                if wanted.get(key) != Some(item) {
                    tracing::info!(certificate = %key, source = %item.source, "manifest changed; evaluating");
                    job.triggers.send(Trigger::Force(key.clone()));
                }
            }
            for key in wanted.keys() {
                if !fresh.contains_key(key) {
                    tracing::info!(certificate = %key, "certificate removed from the manifests; its files are kept");
                    job.triggers.send(Trigger::Forget(key.clone()));
                }
            }
        }
        // Read outside the lock: file metadata can be slow, evaluations wait.
        let wanted = job.wanted();
        let current: Vec<(ObjectKey, SecretStamp)> = wanted
            .iter()
            .map(|(key, item)| {
                let dir = job.shared.store.secret_dir(&item.managed.secret);
                (key.clone(), SecretStamp::of(&dir))
            })
            .collect();
        let mut stamps = job.stamps.lock().expect("stamps lock");
        for (key, now_stamp) in current {
            // No stamp: never evaluated, or being evaluated right now.
            let Some(seen) = stamps.get_mut(&key) else {
                continue;
            };
            if *seen != now_stamp {
                tracing::info!(certificate = %key, "Secret files changed on disk; evaluating");
                *seen = now_stamp;
                job.triggers.send(Trigger::Force(key));
            }
        }
    }
}

/// Identity of a Secret directory's visible files (size, mtime, inode of
/// each, following symlinks): cheap to take every poll.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SecretStamp(Vec<Option<(u64, Option<SystemTime>, u64)>>);

impl SecretStamp {
    fn of(dir: &std::path::Path) -> Self {
        use crate::store::files::{CA_FILE, CERT_FILE, KEY_FILE};
        SecretStamp(
            [CERT_FILE, KEY_FILE, CA_FILE]
                .iter()
                .map(|name| {
                    std::fs::metadata(dir.join(name)).ok().map(|m| {
                        #[cfg(unix)]
                        let inode = std::os::unix::fs::MetadataExt::ino(&m);
                        #[cfg(not(unix))]
                        let inode = 0;
                        (m.len(), m.modified().ok(), inode)
                    })
                })
                .collect(),
        )
    }
}

fn depends_on(wanted: &Wanted, secret: &ObjectKey) -> bool {
    match &wanted.issuer {
        IssuerChoice::Defined {
            spec,
            secret_namespace,
            ..
        } => {
            matches!(spec.config(), Ok(IssuerConfig::Ca(ca)) if ca.secret_name == secret.name && *secret_namespace == secret.namespace)
        }
        IssuerChoice::BuiltIn => false,
    }
}

fn load_wanted(options: &LocalOptions) -> BTreeMap<ObjectKey, Wanted> {
    let loaded = manifests::load(&options.dir, &options.namespace, &options.mutation);
    for error in &loaded.errors {
        tracing::error!("{error}");
        eprintln!("error: {error}");
    }
    let secrets = Arc::new(loaded.secrets.clone());
    let mut out = BTreeMap::new();
    for (key, cert) in &loaded.certificates {
        let plan = &cert.plan;
        let issuer = match plan.issuer.kind {
            IssuerKind::Issuer => loaded
                .issuers
                .get(&ObjectKey::new(
                    key.namespace.clone(),
                    plan.issuer.name.clone(),
                ))
                .map(|spec| IssuerChoice::Defined {
                    id: format!("Issuer {}/{}", key.namespace, plan.issuer.name),
                    spec: Box::new(spec.clone()),
                    secret_namespace: key.namespace.clone(),
                    secrets: secrets.clone(),
                }),
            IssuerKind::ClusterIssuer => {
                loaded
                    .cluster_issuers
                    .get(&plan.issuer.name)
                    .map(|spec| IssuerChoice::Defined {
                        id: format!("ClusterIssuer {}", plan.issuer.name),
                        spec: Box::new(spec.clone()),
                        secret_namespace: options.namespace.clone(),
                        secrets: secrets.clone(),
                    })
            }
        };
        let issuer = issuer.unwrap_or_else(|| {
            tracing::warn!(certificate = %key, issuer = %plan.issuer, "issuer not defined in the directory; the built-in CA signs this certificate");
            IssuerChoice::BuiltIn
        });
        out.insert(
            key.clone(),
            Wanted {
                managed: Managed {
                    certificate: key.clone(),
                    secret: ObjectKey::new(key.namespace.clone(), plan.secret_name.clone()),
                    request: plan.request.clone(),
                    renew_before: plan.renew_before,
                    rotation: plan.rotation,
                    issuer_kind: match &issuer {
                        IssuerChoice::BuiltIn => "BuiltIn".into(),
                        IssuerChoice::Defined { .. } => plan.issuer.kind.as_str().into(),
                    },
                    issuer_name: match &issuer {
                        IssuerChoice::BuiltIn => "certweave-local-ca".into(),
                        IssuerChoice::Defined { .. } => plan.issuer.name.clone(),
                    },
                    issuer_group: crate::api::issuer_ref::ISSUER_GROUP.to_owned(),
                    origin: RequestOrigin {
                        namespace: key.namespace.clone(),
                        ..Default::default()
                    },
                    secret_labels: plan.secret_template.labels.clone(),
                    secret_annotations: plan.secret_template.annotations.clone(),
                },
                issuer,
                source: cert.source.clone(),
            },
        );
    }
    tracing::info!(
        certificates = out.len(),
        errors = loaded.errors.len(),
        "manifests loaded"
    );
    out
}

/// What issuance tasks share: the store, the built-in CA, the HTTP-01
/// listener and the logged-in ACME accounts.
struct Shared {
    store: FsStore,
    builtin: Arc<CaIssuer>,
    root: PathBuf,
    http01_addr: SocketAddr,
    http01: Http01Solver,
    /// Bound on first use: binding port 80 is only needed with ACME.
    http01_server: tokio::sync::OnceCell<Http01Server>,
    /// One ACME issuer (one account session) per issuer spec.
    builder: IssuerBuilder,
}

impl Shared {
    async fn issuer_for(&self, choice: &IssuerChoice) -> Result<AnyIssuer, IssueError> {
        match choice {
            IssuerChoice::BuiltIn => Ok(AnyIssuer::Ca(self.builtin.clone())),
            IssuerChoice::Defined {
                id,
                spec,
                secret_namespace,
                secrets,
            } => {
                let env = DirectoryEnvironment {
                    shared: self,
                    manifests: secrets,
                };
                self.builder.build(&env, id, spec, secret_namespace).await
            }
        }
    }
}

/// Where a directory keeps what issuers need: Secrets in the store (a CA
/// issued here) or among the manifests (TSIG and EAB keys), ACME account
/// keys under `state/accounts/`, and an HTTP-01 listener of its own.
struct DirectoryEnvironment<'a> {
    shared: &'a Shared,
    manifests: &'a SecretValues,
}

impl IssuerEnvironment for DirectoryEnvironment<'_> {
    fn read_secret<'a>(&'a self, key: &'a ObjectKey) -> EnvFuture<'a, Option<SecretData>> {
        Box::pin(async move {
            let stored = self
                .shared
                .store
                .read_secret(key)
                .await
                .map_err(|e| IssueError::Transient(e.to_string()))?;
            if let Some(secret) = stored {
                let mut data = SecretData::new();
                for (name, value) in [
                    ("tls.crt", secret.tls_crt),
                    ("tls.key", secret.tls_key),
                    ("ca.crt", secret.ca_crt),
                ] {
                    if let Some(value) = value {
                        data.insert(name.to_owned(), value);
                    }
                }
                return Ok(Some(data));
            }
            Ok(self.manifests.get(key).cloned())
        })
    }

    fn account_key_store(
        &self,
        namespace: &str,
        selector: &SecretKeySelector,
    ) -> Arc<dyn AccountKeyStore> {
        let file = self
            .shared
            .root
            .join("state")
            .join("accounts")
            .join(namespace)
            .join(format!("{}.key", selector.name));
        Arc::new(FileKeyStore::new(file))
    }

    fn http01(&self) -> EnvFuture<'_, Http01Setup> {
        Box::pin(async move {
            let shared = self.shared;
            shared
                .http01_server
                .get_or_try_init(|| shared.http01.serve(shared.http01_addr))
                .await
                .map_err(|e| {
                    IssueError::Transient(format!(
                        "cannot listen on {} for HTTP-01 challenges: {e}; free the port or set --http01-addr",
                        shared.http01_addr
                    ))
                })?;
            Ok(Http01Setup {
                solver: shared.http01.clone(),
                routes: None,
            })
        })
    }
}

fn on_issued(on_renew: Option<&str>, store: &FsStore, item: &Wanted) {
    let Some(command) = on_renew.map(str::to_owned) else {
        return;
    };
    let dir = store.secret_dir(&item.managed.secret);
    let certificate = item.managed.certificate.clone();
    tokio::spawn(async move {
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("CERTWEAVE_SECRET_DIR", &dir)
            .env("CERTWEAVE_NAMESPACE", &certificate.namespace)
            .env("CERTWEAVE_CERTIFICATE", &certificate.name)
            .status()
            .await;
        match status {
            Ok(s) if s.success() => tracing::info!(%certificate, "--on-renew command succeeded"),
            Ok(s) => tracing::warn!(%certificate, status = %s, "--on-renew command failed"),
            Err(e) => {
                tracing::warn!(%certificate, error = %e, "--on-renew command could not start")
            }
        }
    });
}

async fn start_webhook(
    options: &LocalOptions,
    bundle: &crate::model::Bundle,
    addr: SocketAddr,
) -> Result<crate::webhook::server::WebhookServer, LocalError> {
    let dir = options.dir.join("state").join("webhook");
    crate::store::files::write_bundle(&dir, bundle)
        .map_err(|e| IssueError::Config(format!("cannot write {}: {e}", dir.display())))?;
    let server =
        crate::webhook::server::WebhookServer::bind(crate::webhook::server::ServeOptions {
            addr,
            cert_file: dir.join(crate::store::files::CERT_FILE),
            key_file: dir.join(crate::store::files::KEY_FILE),
            mutation: options.mutation.clone(),
            reload_interval: crate::webhook::server::DEFAULT_RELOAD_INTERVAL,
            client_timeout: crate::webhook::server::CLIENT_TIMEOUT,
        })
        .await?;
    tracing::info!(%addr, "webhook serving with a certificate from the built-in CA");
    Ok(server)
}
