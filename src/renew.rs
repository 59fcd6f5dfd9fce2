//! `certweave renew`: ask for new certificates now, the way `cmctl renew`
//! does, so either tool works against certweave: an `Issuing` condition
//! with reason `ManuallyTriggered` is added to each Certificate's status,
//! and the controller issues it at once and replaces the condition.

use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::certificate::{Certificate, CertificateCondition, MANUALLY_TRIGGERED};

/// Which Certificates to renew.
pub struct RenewTarget {
    /// Names (in `namespace`); empty with `all`.
    pub names: Vec<String>,
    pub all: bool,
    /// `None`: every namespace (`-A`).
    pub namespace: Option<String>,
    pub selector: Option<String>,
}

/// What happened to one Certificate.
#[derive(Debug, PartialEq, Eq)]
pub enum Renewed {
    Triggered(String),
    /// Issuing already (`Issuing=True`): left as it is.
    AlreadyIssuing(String),
}

/// Marks each target Certificate for re-issuance. A name that does not
/// exist is an error naming it.
pub async fn renew(client: Client, target: &RenewTarget) -> Result<Vec<Renewed>, String> {
    let api: Api<Certificate> = match &target.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut certificates = Vec::new();
    if target.all {
        let mut params = ListParams::default();
        if let Some(selector) = &target.selector {
            params = params.labels(selector);
        }
        certificates = api
            .list(&params)
            .await
            .map_err(|e| format!("cannot list Certificates: {e}"))?
            .items;
    } else {
        for name in &target.names {
            match api.get_opt(name).await {
                Ok(Some(certificate)) => certificates.push(certificate),
                Ok(None) => {
                    return Err(format!(
                        "Certificate {}/{name} does not exist; `kubectl get certificates -n {}` lists them",
                        target.namespace.as_deref().unwrap_or("default"),
                        target.namespace.as_deref().unwrap_or("default"),
                    ))
                }
                Err(e) => return Err(format!("cannot read Certificate {name}: {e}")),
            }
        }
    }
    let mut out = Vec::new();
    for certificate in certificates {
        let namespace = certificate.namespace().unwrap_or_default();
        let id = format!("{namespace}/{}", certificate.name_any());
        let mut conditions = certificate
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        if conditions
            .iter()
            .any(|c| c.type_ == "Issuing" && c.status == "True")
        {
            out.push(Renewed::AlreadyIssuing(id));
            continue;
        }
        conditions.retain(|c| c.type_ != "Issuing");
        conditions.push(CertificateCondition {
            type_: "Issuing".into(),
            status: "True".into(),
            reason: Some(MANUALLY_TRIGGERED.into()),
            message: Some("Certificate re-issuance manually triggered".into()),
            last_transition_time: k8s_openapi::jiff::Timestamp::try_from(
                std::time::SystemTime::now(),
            )
            .ok()
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
            observed_generation: certificate.metadata.generation,
        });
        let patch = json!({
            "metadata": {"resourceVersion": certificate.resource_version()},
            "status": {"conditions": conditions},
        });
        Api::<Certificate>::namespaced(client.clone(), &namespace)
            .patch_status(
                &certificate.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| format!("cannot mark Certificate {id} for renewal: {e}"))?;
        out.push(Renewed::Triggered(id));
    }
    Ok(out)
}

/// `certweave renew --dir`: records a renewal request for each named
/// certificate of `certweave local`'s directory. A name local has never
/// recorded is an error naming it and the ones it knows.
pub fn renew_local(
    dir: &std::path::Path,
    namespace: &str,
    names: &[String],
) -> Result<Vec<String>, String> {
    use crate::store::fs::FsStore;
    use crate::store::ObjectKey;
    if !dir.is_dir() {
        return Err(format!(
            "--dir {}: not a directory; give certweave local's --dir",
            dir.display()
        ));
    }
    let store = FsStore::new(dir);
    let known = store.certificates_with_state();
    let mut out = Vec::new();
    for name in names {
        let key = ObjectKey::new(namespace, name.clone());
        if !known.contains(&key) {
            let close = crate::api::names::close_matches(
                name,
                known
                    .iter()
                    .filter(|k| k.namespace == namespace)
                    .map(|k| k.name.as_str()),
            );
            let hint = if close.is_empty() {
                format!("`certweave status --dir {}` lists them", dir.display())
            } else {
                format!("did you mean {}?", close.join(", "))
            };
            return Err(format!(
                "certweave local has no Certificate {key} in {}; {hint}",
                dir.display()
            ));
        }
        store
            .request_renewal(&key)
            .map_err(|e| format!("cannot record the request: {e}"))?;
        out.push(key.to_string());
    }
    Ok(out)
}
