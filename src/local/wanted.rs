//! What the manifests in the directory ask for: each Certificate with the
//! issuer it resolved to (one defined in the directory, or the built-in CA).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{manifests, LocalOptions};
use crate::api::issuer::{IssuerConfig, IssuerSpec};
use crate::api::IssuerKind;
use crate::engine::reconcile::Managed;
use crate::model::RequestOrigin;
use crate::store::ObjectKey;

/// Which issuer a certificate resolved to.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum IssuerChoice {
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
pub(super) struct Wanted {
    pub(super) managed: Managed,
    pub(super) issuer: IssuerChoice,
    pub(super) source: String,
}

pub(super) fn depends_on(wanted: &Wanted, secret: &ObjectKey) -> bool {
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

pub(super) fn load_wanted(options: &LocalOptions) -> BTreeMap<ObjectKey, Wanted> {
    let loaded = manifests::load(&options.dir, &options.namespace, &options.mutation);
    for error in &loaded.errors {
        tracing::error!("{error}");
        eprintln!("error: {error}");
    }
    let secrets = Arc::new(loaded.secrets.clone());
    let mut out = BTreeMap::new();
    for (key, cert) in &loaded.certificates {
        let plan = &cert.plan;
        let mut output_formats = plan.output_formats.clone();
        match plan.keystores.resolve(&key.namespace, &loaded.secrets) {
            Ok(keystores) => output_formats.keystores = keystores,
            Err(message) => {
                let error = format!("{}: Certificate {key}: {message}", cert.source);
                tracing::error!("{error}");
                eprintln!("error: {error}");
                continue;
            }
        }
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
                    output_formats,
                    renew_now: false,
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
