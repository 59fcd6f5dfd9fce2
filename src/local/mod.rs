//! `certweave local`: the whole pipeline against a local directory.
//!
//! Reads Certificate/Issuer/ClusterIssuer/Ingress manifests from a
//! directory, issues and renews them for as long as it runs, and writes each
//! Secret's files under `secrets/` (see [`crate::store::fs`]). State under
//! `state/` makes a restart resume: a still-valid certificate is not
//! re-issued, a failing one keeps its backoff.
//!
//! One scheduler task owns the renewal queue; issuance runs in spawned
//! tasks, at most `concurrency` at once, so a certificate stuck on a slow
//! or failing issuer never holds up the others.

pub mod builtin_ca;
pub mod manifests;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use crate::api::issuer::{IssuerConfig, IssuerSpec};
use crate::api::IssuerKind;
use crate::engine::reconcile::{self, Managed, ReconcileError, Step};
use crate::engine::renewal::RenewalQueue;
use crate::issuers::acme::{AcmeIssuer, FileKeyStore, Http01Server, Http01Solver, Solvers};
use crate::issuers::any::AnyIssuer;
use crate::issuers::ca::CaIssuer;
use crate::issuers::from_spec;
use crate::issuers::selfsigned::SelfSignedIssuer;
use crate::issuers::IssueError;
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
    let builtin = Arc::new(builtin);
    let shared = Arc::new(Shared {
        store: (*store).clone(),
        builtin: builtin.clone(),
        root: options.dir.clone(),
        http01_addr: options.http01_addr,
        http01: Http01Solver::new(),
        http01_server: tokio::sync::OnceCell::new(),
        acme: tokio::sync::Mutex::new(HashMap::new()),
    });
    tracing::info!(ca = %builtin_path.display(), dir = %options.dir.display(), "certweave local starting");

    let (stop_webhook, webhook) = match options.webhook_addr {
        Some(addr) => {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let server = start_webhook(&options, &builtin, addr).await?;
            let handle = tokio::spawn(server.run(async {
                let _ = rx.await;
            }));
            (Some(tx), Some(handle))
        }
        None => (None, None),
    };

    let mut wanted = load_wanted(&options);
    let mut fingerprint = manifests::fingerprint(&options.dir);
    let mut queue: RenewalQueue<ObjectKey> = RenewalQueue::with_capacity(wanted.len());
    // Rebuild the schedule: everything is evaluated now (cheap for valid
    // certificates), respecting backoffs recorded before the restart.
    for key in wanted.keys() {
        queue.schedule(key.clone(), SystemTime::now());
    }
    let mut forced: std::collections::HashSet<ObjectKey> = Default::default();
    let mut in_flight: HashMap<ObjectKey, bool> = HashMap::new();
    let (done_tx, mut done_rx) =
        mpsc::unbounded_channel::<(ObjectKey, Result<Step, ReconcileError>, SecretStamp)>();
    let mut last_poll = tokio::time::Instant::now();
    // What each Secret's files looked like after we last evaluated it:
    // edits, deletions and corruption by others trigger a re-evaluation.
    let mut secret_stamps: HashMap<ObjectKey, SecretStamp> = HashMap::new();
    tokio::pin!(shutdown);

    loop {
        let now = SystemTime::now();
        while in_flight.len() < options.concurrency.max(1) {
            let Some(key) = queue.pop_due(now) else { break };
            if let Some(rerun) = in_flight.get_mut(&key) {
                *rerun = true;
                continue;
            }
            let Some(item) = wanted.get(&key).cloned() else {
                continue;
            };
            let respect_backoff = !forced.remove(&key);
            in_flight.insert(key.clone(), false);
            let shared = shared.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let store = &shared.store;
                // Taken before reading: any change after this point differs
                // from the recorded stamp and is evaluated at the next poll.
                let stamp = SecretStamp::of(&store.secret_dir(&item.managed.secret));
                let issuer = shared.issuer_for(&item.issuer).await;
                let mut when = SystemTime::now();
                if !respect_backoff {
                    // A forced evaluation ignores a recorded backoff.
                    if let Ok(Some(mut state)) = store.read_state(&item.managed.certificate).await {
                        if state.next_attempt.take().is_some() {
                            let _ = store.write_state(&item.managed.certificate, &state).await;
                        }
                    }
                    when = SystemTime::now();
                }
                let result = reconcile::reconcile(
                    store,
                    &item.managed,
                    issuer.as_ref().map_err(IssueError::duplicate),
                    when,
                )
                .await;
                let _ = done.send((key, result, stamp));
            });
        }

        let until_due = queue
            .next_due()
            .map(|due| due.duration_since(SystemTime::now()).unwrap_or_default())
            .unwrap_or(Duration::from_secs(3600));
        let until_poll = options.poll_interval.saturating_sub(last_poll.elapsed());
        tokio::select! {
            _ = &mut shutdown => break,
            Some((key, result, stamp)) = done_rx.recv() => {
                let rerun = in_flight.remove(&key).unwrap_or(false);
                let next = match &result {
                    Ok(step) => step.next,
                    Err(e) => {
                        tracing::error!(certificate = %key, error = %e, "cannot read or write the store; retrying in 30s");
                        SystemTime::now() + Duration::from_secs(30)
                    }
                };
                secret_stamps.insert(key.clone(), stamp);
                if wanted.contains_key(&key) {
                    if rerun {
                        forced.insert(key.clone());
                        queue.schedule(key.clone(), SystemTime::now());
                    } else if queue.due(&key).is_none() {
                        queue.schedule(key.clone(), next);
                    }
                }
                if let Ok(step) = &result {
                    if step.issued {
                        if let Some(item) = wanted.get(&key) {
                            on_issued(&options, &store, item);
                            // Certificates signed by the CA in this Secret may be waiting for it.
                            for (other, w) in &wanted {
                                if depends_on(w, &item.managed.secret) {
                                    forced.insert(other.clone());
                                    queue.schedule(other.clone(), SystemTime::now());
                                }
                            }
                        }
                    }
                }
            }
            _ = tokio::time::sleep(until_due.min(until_poll)) => {}
        }

        if last_poll.elapsed() >= options.poll_interval {
            last_poll = tokio::time::Instant::now();
            let current = manifests::fingerprint(&options.dir);
            if current != fingerprint {
                fingerprint = current;
                let fresh = load_wanted(&options);
                for (key, item) in &fresh {
                    if wanted.get(key) != Some(item) {
                        tracing::info!(certificate = %key, source = %item.source, "manifest changed; evaluating");
                        forced.insert(key.clone());
                        queue.schedule(key.clone(), SystemTime::now());
                    }
                }
                for key in wanted.keys() {
                    if !fresh.contains_key(key) {
                        tracing::info!(certificate = %key, "certificate removed from the manifests; its files are kept");
                        queue.remove(key);
                    }
                }
                wanted = fresh;
            }
            for (key, item) in &wanted {
                if in_flight.contains_key(key) {
                    continue;
                }
                let Some(seen) = secret_stamps.get(key) else {
                    continue;
                };
                let now_stamp = SecretStamp::of(&store.secret_dir(&item.managed.secret));
                if *seen != now_stamp {
                    tracing::info!(certificate = %key, "Secret files changed on disk; evaluating");
                    secret_stamps.insert(key.clone(), now_stamp);
                    forced.insert(key.clone());
                    queue.schedule(key.clone(), SystemTime::now());
                }
            }
        }
    }

    tracing::info!(in_flight = in_flight.len(), "shutting down");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !in_flight.is_empty() {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some((key, _, _))) => {
                in_flight.remove(&key);
            }
            _ => break,
        }
    }
    if let Some(stop) = stop_webhook {
        let _ = stop.send(());
    }
    if let Some(handle) = webhook {
        let _ = handle.await;
    }
    Ok(())
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

/// Logged-in ACME issuers by issuer id, with the spec they were built from.
type AcmeSessions = HashMap<String, (Box<IssuerSpec>, Arc<AcmeIssuer>)>;

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
    acme: tokio::sync::Mutex<AcmeSessions>,
}

impl Shared {
    async fn issuer_for(&self, choice: &IssuerChoice) -> Result<AnyIssuer, IssueError> {
        let (id, spec, secret_namespace, secrets) = match choice {
            IssuerChoice::BuiltIn => return Ok(AnyIssuer::Ca(self.builtin.clone())),
            IssuerChoice::Defined {
                id,
                spec,
                secret_namespace,
                secrets,
            } => (id, spec, secret_namespace, secrets),
        };
        match spec
            .config()
            .map_err(|e| IssueError::Config(format!("{id}: {e}")))?
        {
            IssuerConfig::SelfSigned => Ok(AnyIssuer::SelfSigned(SelfSignedIssuer)),
            IssuerConfig::Ca(ca) => {
                let key = ObjectKey::new(secret_namespace.clone(), ca.secret_name.clone());
                let secret = self
                    .store
                    .read_secret(&key)
                    .await
                    .map_err(|e| IssueError::Transient(e.to_string()))?
                    .ok_or_else(|| {
                        IssueError::Transient(format!("{id}: CA Secret {key} does not exist yet"))
                    })?;
                let (Some(cert), Some(ca_key)) = (secret.tls_crt, secret.tls_key) else {
                    return Err(IssueError::Transient(format!(
                        "{id}: CA Secret {key} lacks tls.crt or tls.key"
                    )));
                };
                Ok(AnyIssuer::Ca(Arc::new(CaIssuer::from_pem(&cert, &ca_key)?)))
            }
            IssuerConfig::Acme(acme) => {
                // Held while a new issuer is built, so certificates
                // starting together share one issuer and one account login.
                let mut sessions = self.acme.lock().await;
                if let Some((cached_spec, issuer)) = sessions.get(id) {
                    if cached_spec == spec {
                        return Ok(AnyIssuer::Acme(issuer.clone()));
                    }
                }
                let issuer = Arc::new(
                    self.acme_issuer(id, acme, secret_namespace, secrets)
                        .await?,
                );
                sessions.insert(id.clone(), (spec.clone(), issuer.clone()));
                Ok(AnyIssuer::Acme(issuer))
            }
        }
    }

    async fn acme_issuer(
        &self,
        id: &str,
        acme: &crate::api::issuer::AcmeIssuer,
        namespace: &str,
        secrets: &BTreeMap<ObjectKey, BTreeMap<String, String>>,
    ) -> Result<AcmeIssuer, IssueError> {
        let settings = from_spec::acme_settings(id, acme, namespace, secrets)?;
        let mut solvers = Solvers::default();
        if settings.http01 {
            self.http01_server
                .get_or_try_init(|| self.http01.serve(self.http01_addr))
                .await
                .map_err(|e| {
                    IssueError::Transient(format!(
                        "cannot listen on {} for HTTP-01 challenges: {e}; free the port or set --http01-addr",
                        self.http01_addr
                    ))
                })?;
            solvers.http01 = Some(self.http01.clone());
        }
        solvers.rules = settings.rules;
        let account_key = self
            .root
            .join("state")
            .join("accounts")
            .join(namespace)
            .join(format!("{}.key", acme.private_key_secret_ref.name));
        AcmeIssuer::new(
            settings.config,
            Arc::new(FileKeyStore::new(account_key)),
            solvers,
        )
    }
}

fn on_issued(options: &LocalOptions, store: &FsStore, item: &Wanted) {
    let Some(command) = options.on_renew.clone() else {
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
    builtin: &CaIssuer,
    addr: SocketAddr,
) -> Result<crate::webhook::server::WebhookServer, LocalError> {
    use crate::engine::CertificateRequest;
    let dir = options.dir.join("state").join("webhook");
    let mut request = CertificateRequest::for_dns_names(["localhost".to_string()]);
    request.ip_addresses = vec![
        std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::Ipv6Addr::LOCALHOST.into(),
    ];
    request.key_encoding = crate::pki::KeyEncoding::Pkcs8;
    let key = crate::pki::PrivateKey::generate(request.key_algorithm).map_err(IssueError::from)?;
    let bundle = builtin.sign(&request, &key)?;
    crate::store::files::write_bundle(&dir, &bundle)
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
