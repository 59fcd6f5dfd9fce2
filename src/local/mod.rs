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
mod environment;
mod job;
pub mod manifests;
mod progress;
mod wanted;
mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::api::issuer_builder::IssuerBuilder;
use crate::engine::scheduler::{self, Scheduler};
use crate::issuers::acme::dns::check::DnsChecks;
use crate::issuers::acme::Http01Solver;
use crate::issuers::own_ca;
use crate::model::IssueError;
use crate::store::fs::FsStore;
use crate::store::ObjectKey;
use crate::webhook::MutationConfig;
use environment::Shared;
use job::LocalJob;
use wanted::load_wanted;
use watch::watch_directory;

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
    /// How DNS-01 records are found and checked.
    pub dns_checks: DnsChecks,
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

/// Runs until `shutdown` completes.
pub async fn run(
    options: LocalOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), LocalError> {
    if !options.dir.is_dir() {
        return Err(LocalError::NotADirectory(options.dir.clone()));
    }
    let store = Arc::new(FsStore::new(&options.dir));
    // Files a killed run staged but never renamed: nobody will finish them.
    let swept = crate::store::files::sweep_stale_temps(&options.dir.join("state"))
        + crate::store::files::sweep_stale_temps(&options.dir.join("secrets"));
    if swept > 0 {
        tracing::info!(
            files = swept,
            "removed temporary files left by an earlier run that was killed"
        );
    }
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
        builder: IssuerBuilder::new().with_dns_checks(options.dns_checks.clone()),
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
        initial: std::sync::Mutex::new(Some(keys.iter().cloned().collect())),
        progress: std::sync::Mutex::new(progress::Progress::new(keys.len())),
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

async fn start_webhook(
    options: &LocalOptions,
    bundle: &crate::model::Bundle,
    addr: SocketAddr,
) -> Result<crate::webhook::server::WebhookServer, LocalError> {
    let dir = options.dir.join("state").join("webhook");
    crate::store::files::write_bundle(&dir, bundle)
        .map_err(|e| IssueError::config_because(format!("cannot write {}", dir.display()), e))?;
    let server =
        crate::webhook::server::WebhookServer::bind(crate::webhook::server::ServeOptions {
            addr,
            cert_file: dir.join(crate::store::files::CERT_FILE),
            key_file: dir.join(crate::store::files::KEY_FILE),
            mutation: options.mutation.clone(),
            reload_interval: crate::webhook::server::DEFAULT_RELOAD_INTERVAL,
            client_timeout: crate::webhook::server::CLIENT_TIMEOUT,
            review_deadline: crate::webhook::server::REVIEW_DEADLINE,
        })
        .await?;
    tracing::info!(%addr, "webhook serving with a certificate from the built-in CA");
    Ok(server)
}
