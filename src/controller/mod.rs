//! `certweave controller`: the cluster add-on.
//!
//! Every replica serves the admission webhook and the metrics port and keeps
//! the caches (Certificates, Issuers, ClusterIssuers; Secrets only by label
//! and metadata only). The leader — one replica, chosen with a
//! `coordination.k8s.io/v1` Lease — also issues and renews, writes issuer
//! status, signs CertificateRequests, runs the Ingress and Gateway shims and
//! Pod certificates, and keeps the
//! webhook's own serving certificate fresh.
//!
//! Which Certificates an Ingress or a Pod asks for is decided by the
//! annotation rules in [`crate::api::wanted`], shared with the webhook,
//! `certweave local` and `certweave inject`; [`owned`] writes them.

pub mod certificate_requests;
pub mod certificates;
pub mod challenges;
pub mod dns_webhook;
pub mod events;
pub mod gateway_shim;
pub mod health;
pub mod issuers;
pub mod kube_store;
pub mod leader;
pub mod own_writes;
pub mod owned;
pub mod scope;
pub mod watch;
pub mod webhook_cert;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch as signal;

use crate::controller::kube_store::KubeStore;
use crate::issuers::acme::Http01Solver;
use crate::metrics::ControllerMetrics;
use crate::webhook::server::{
    ServeOptions, WebhookServer, CLIENT_TIMEOUT, DEFAULT_RELOAD_INTERVAL, REVIEW_DEADLINE,
};
use crate::webhook::MutationConfig;

/// Settings of `certweave controller`.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub kubeconfig: Option<PathBuf>,
    pub webhook_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub solver_addr: SocketAddr,
    /// Serving certificate files; `None` means self-managed.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    pub mutation: MutationConfig,
    pub leader_elect: bool,
    /// The controller's own namespace.
    pub namespace: String,
    /// This replica's name (the Lease holder identity).
    pub identity: String,
    /// This replica's Pod IP: HTTP-01 challenge routes point at it.
    pub pod_ip: Option<String>,
    pub webhook_config_name: String,
    pub webhook_service_name: String,
    pub webhook_secret_name: String,
    /// Evaluations running at once.
    pub concurrency: usize,
    /// Approve CertificateRequests for certweave's issuers.
    pub auto_approve: bool,
    /// The namespaces watched, read and written (`--watch-namespaces`).
    pub scope: scope::WatchScope,
    /// How DNS-01 records are found and checked
    /// (`--dns01-recursive-nameservers[-only]`).
    pub dns_checks: crate::issuers::acme::dns::check::DnsChecks,
    /// Which issuers may use the controller's own cloud credentials.
    pub ambient_credentials: issuers::AmbientCredentials,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The client could not be set up; `kubeconfig` is the file given
    /// with `--kubeconfig`, `None` when the configuration was inferred.
    #[error("cannot connect to the Kubernetes API{} (set --kubeconfig or run in a Pod with a service account)", kubeconfig.as_ref().map(|p| format!(" with {}", p.display())).unwrap_or_default())]
    Connect {
        kubeconfig: Option<PathBuf>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("webhook: {0}")]
    Webhook(#[from] crate::webhook::server::ServeError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("self-managed serving certificate: {0}")]
    ServingCertificate(String),
}

/// Runs until `shutdown` completes.
pub async fn run(
    options: ControllerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let client = connect(options.kubeconfig.as_deref()).await?;
    let (stop_tx, mut stop_rx) = signal::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = || until_set(&stop_rx);

    let metrics = ControllerMetrics::new();
    let ready = health::Readiness::default();

    // Caches, on every replica: readiness means they are synced.
    let caches = watch::Caches::start(client.clone(), &options.scope, ready.clone());

    let http01 = Http01Solver::new();
    let solver =
        http01
            .serve(options.solver_addr)
            .await
            .map_err(|source| ControllerError::Bind {
                addr: options.solver_addr,
                source,
            })?;
    tracing::info!(addr = %solver.local_addr(), "answering ACME HTTP-01 challenges");

    // The serving certificate: given files, or the self-managed Secret
    // mirrored into files every replica serves from.
    let (cert_file, key_file) = match &options.tls_files {
        Some((cert, key)) => (cert.clone(), key.clone()),
        None => webhook_cert::mirror_to_files(&client, &options, stopped())
            .await
            .map_err(ControllerError::ServingCertificate)?,
    };
    let server = WebhookServer::bind(ServeOptions {
        addr: options.webhook_addr,
        cert_file,
        key_file,
        mutation: options.mutation.clone(),
        reload_interval: DEFAULT_RELOAD_INTERVAL,
        client_timeout: CLIENT_TIMEOUT,
        review_deadline: REVIEW_DEADLINE,
    })
    .await?;
    let webhook_metrics = server.metrics();
    tracing::info!(addr = %server.local_addr().map(|a| a.to_string()).unwrap_or_default(), "serving the admission webhook");
    let webhook = tokio::spawn(server.run(stopped()));

    let health_server = health::serve(
        options.metrics_addr,
        metrics.clone(),
        webhook_metrics,
        ready.clone(),
        stopped(),
    )
    .await
    .map_err(|source| ControllerError::Bind {
        addr: options.metrics_addr,
        source,
    })?;

    let events = events::EventPublisher::new(client.clone(), options.identity.clone());
    let resolver = Arc::new(
        issuers::IssuerResolver::new(
            client.clone(),
            options.namespace.clone(),
            caches.issuers.clone(),
            caches.cluster_issuers.clone(),
            http01.clone(),
            Some(Arc::new(challenges::KubeRoutes::new(
                client.clone(),
                solver.local_addr().port(),
                options.pod_ip.clone(),
            ))
                as Arc<dyn crate::issuers::acme::Http01Routes>),
        )
        .with_dns01(options.dns_checks.clone(), options.ambient_credentials),
    );

    let leadership = leader::Leadership::start(&client, &options, metrics.clone(), stopped()).await;
    let options = Arc::new(options);
    // Leader work: started on gaining the lease, stopped on losing it.
    let mut leading = leadership.subscribe();
    loop {
        if *stop_rx.borrow() {
            break;
        }
        if *leading.borrow() {
            tracing::info!(identity = %options.identity, "leading: issuing and renewing");
            let (lost_tx, lost) = signal::channel(false);
            let work = tokio::spawn(lead(
                client.clone(),
                options.clone(),
                caches.clone(),
                resolver.clone(),
                metrics.clone(),
                events.clone(),
                lost,
            ));
            tokio::select! {
                _ = stop_rx.wait_for(|s| *s) => {}
                _ = leading.wait_for(|l| !*l) => {
                    tracing::warn!("lost the leader Lease; stopping issuance");
                }
            }
            let _ = lost_tx.send(true);
            let _ = work.await;
        } else {
            tokio::select! {
                _ = stop_rx.wait_for(|s| *s) => {}
                _ = leading.wait_for(|l| *l) => {}
            }
        }
    }
    tracing::info!("shutting down");
    leadership.release().await;
    let _ = webhook.await;
    let _ = health_server.await;
    drop(solver);
    Ok(())
}

/// A future that completes once `signal` is set.
fn until_set(
    signal: &signal::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut signal = signal.clone();
    async move {
        let _ = signal.wait_for(|set| *set).await;
    }
}

/// The leader's work, until `lost` is set.
async fn lead(
    client: Client,
    options: Arc<ControllerOptions>,
    caches: watch::Caches,
    resolver: Arc<issuers::IssuerResolver>,
    metrics: ControllerMetrics,
    events: events::EventPublisher,
    lost: signal::Receiver<bool>,
) {
    let lost = || until_set(&lost);
    caches.wait_synced().await;
    let (trigger_tx, trigger_rx) = crate::engine::scheduler::triggers();
    let own_writes = Arc::new(own_writes::OwnWrites::default());
    let controller = Arc::new(certificates::CertificateController {
        store: KubeStore::new(client.clone())
            .within(caches.scope.clone())
            .noting_writes_in(own_writes.clone()),
        resolver: resolver.clone(),
        certificates: caches.certificates.clone(),
        metrics,
        events: events.clone(),
        concurrency: options.concurrency,
        renewals_done: Default::default(),
    });
    let signer = Arc::new(certificate_requests::RequestSigner {
        client: client.clone(),
        resolver: resolver.clone(),
        events: events.clone(),
        auto_approve: options.auto_approve,
        scope: caches.scope.clone(),
    });
    let mut tasks = vec![
        tokio::spawn(signer.run(options.concurrency, lost())),
        tokio::spawn(controller.run(trigger_rx, lost())),
        tokio::spawn(watch::forward_triggers(
            client.clone(),
            caches.clone(),
            resolver.clone(),
            own_writes,
            trigger_tx,
            lost(),
        )),
        tokio::spawn(owned::run(
            client.clone(),
            caches.scope.clone(),
            caches.certificates.clone(),
            options.mutation.clone(),
            lost(),
        )),
    ];
    for kind in gateway_shim::LISTENER_KINDS {
        tasks.push(tokio::spawn(gateway_shim::run(
            client.clone(),
            caches.scope.clone(),
            caches.certificates.clone(),
            events.clone(),
            kind,
            lost(),
        )));
    }
    if options.tls_files.is_none() {
        tasks.push(tokio::spawn(webhook_cert::maintain(
            client.clone(),
            options.clone(),
            lost(),
        )));
    }
    for task in tasks {
        let _ = task.await;
    }
}

async fn connect(kubeconfig: Option<&std::path::Path>) -> Result<Client, ControllerError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| ControllerError::Connect {
        kubeconfig: kubeconfig.map(ToOwned::to_owned),
        source,
    };
    let mut config = match kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| failed(e.into()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| failed(e.into()))?
        }
        None => kube::Config::infer().await.map_err(|e| failed(e.into()))?,
    };
    config.read_timeout = Some(Duration::from_secs(300));
    Client::try_from(config).map_err(|e| failed(e.into()))
}
