//! What issuers get from a directory: Secrets, ACME account keys and an
//! HTTP-01 listener, behind the same [`IssuerEnvironment`] the controller
//! implements on the cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::wanted::IssuerChoice;
use crate::api::acme_settings::SecretValues;
use crate::api::issuer::SecretKeySelector;
use crate::api::issuer_builder::{
    EnvFuture, Http01Setup, IssuerBuilder, IssuerEnvironment, SecretData,
};
use crate::issuers::acme::{AccountKeyStore, FileKeyStore, Http01Server, Http01Solver};
use crate::issuers::any::AnyIssuer;
use crate::issuers::ca::CaIssuer;
use crate::model::IssueError;
use crate::store::fs::FsStore;
use crate::store::{ObjectKey, Store};

/// What issuance tasks share: the store, the built-in CA, the HTTP-01
/// listener and the logged-in ACME accounts.
pub(super) struct Shared {
    pub(super) store: FsStore,
    pub(super) builtin: Arc<CaIssuer>,
    pub(super) root: PathBuf,
    pub(super) http01_addr: SocketAddr,
    pub(super) http01: Http01Solver,
    /// Bound on first use: binding port 80 is only needed with ACME.
    pub(super) http01_server: tokio::sync::OnceCell<Http01Server>,
    /// One ACME issuer (one account session) per issuer spec.
    pub(super) builder: IssuerBuilder,
}

impl Shared {
    pub(super) async fn issuer_for(&self, choice: &IssuerChoice) -> Result<AnyIssuer, IssueError> {
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
                // The directory's owner runs this with their own
                // credentials: any issuer may use them.
                self.builder
                    .build(&env, id, spec, secret_namespace, true)
                    .await
            }
        }
    }
}

/// Where a directory keeps what issuers need: Secrets in the store (a CA
/// issued here) or among the manifests (TSIG and EAB keys), ACME account
/// keys under `state/accounts/`, and an HTTP-01 listener of its own.
pub(super) struct DirectoryEnvironment<'a> {
    pub(super) shared: &'a Shared,
    pub(super) manifests: &'a SecretValues,
}

impl IssuerEnvironment for DirectoryEnvironment<'_> {
    fn read_secret<'a>(&'a self, key: &'a ObjectKey) -> EnvFuture<'a, Option<SecretData>> {
        Box::pin(async move {
            let stored =
                self.shared.store.read_secret(key).await.map_err(|e| {
                    IssueError::transient_because(format!("reading Secret {key}"), e)
                })?;
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
