//! Leader election with a `coordination.k8s.io/v1` Lease (through
//! kube-lease-manager): only the holder issues and renews; every replica
//! serves the webhook. Without `--leader-elect` this replica always leads.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;

use crate::metrics::ControllerMetrics;

use super::ControllerOptions;

/// The Lease's name, in the controller's namespace.
pub const LEASE_NAME: &str = "certweave-controller";
/// How long a lease is held without renewal before others may take it.
pub const LEASE_SECONDS: u64 = 15;
/// Extra time a holder is granted before its lease counts as expired.
pub const GRACE_SECONDS: u64 = 5;

/// Whether this replica leads, as it changes.
pub struct Leadership {
    leading: watch::Receiver<bool>,
    task: Option<
        tokio::task::JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
    >,
    /// Dropped to make the lease manager release the lease and stop.
    holder: Option<watch::Receiver<bool>>,
    /// Stops the task that mirrors the lease state into `leading`.
    forwarder: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Leadership {
    /// Starts competing for the Lease (or leads at once without
    /// `--leader-elect`). Lease API errors are retried.
    pub async fn start(
        client: &Client,
        options: &ControllerOptions,
        metrics: ControllerMetrics,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Self {
        if !options.leader_elect {
            metrics.leader.set(1);
            let (tx, rx) = watch::channel(true);
            // Keep the sender alive for as long as the process runs.
            tokio::spawn(async move {
                stop.await;
                drop(tx);
            });
            return Self {
                leading: rx,
                task: None,
                holder: None,
                forwarder: None,
            };
        }
        let manager = loop {
            match LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
                .with_namespace(options.namespace.clone())
                .with_identity(options.identity.clone())
                .with_duration(LEASE_SECONDS)
                .with_grace(GRACE_SECONDS)
                .with_field_manager("certweave")
                .build()
                .await
            {
                Ok(manager) => break manager,
                Err(e) => {
                    tracing::warn!(error = %e, lease = LEASE_NAME, namespace = %options.namespace, "cannot set up the leader Lease; retrying in 5s");
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
            }
        };
        let (holder, task) = manager.watch().await;
        let (tx, leading) = watch::channel(*holder.borrow());
        let mut changes = holder.clone();
        let (stop_forwarding, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let forwarder = tokio::spawn(async move {
            loop {
                let now = *changes.borrow_and_update();
                metrics.leader.set(i64::from(now));
                let _ = tx.send(now);
                tokio::select! {
                    _ = &mut stopped => break,
                    changed = changes.changed() => if changed.is_err() { break },
                }
            }
            metrics.leader.set(0);
            let _ = tx.send(false);
        });
        Self {
            leading,
            task: Some(task),
            holder: Some(holder),
            forwarder: Some((stop_forwarding, forwarder)),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Gives the Lease up, so another replica takes over within seconds
    /// rather than after the lease expires.
    pub async fn release(mut self) {
        if let Some((stop, forwarder)) = self.forwarder.take() {
            let _ = stop.send(());
            let _ = forwarder.await;
        }
        drop(self.holder.take());
        drop(self.leading);
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(std::time::Duration::from_secs(5), task).await {
                Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "cannot release the leader Lease"),
                _ => tracing::warn!("the leader Lease was not released in time"),
            }
        }
    }
}
