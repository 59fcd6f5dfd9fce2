//! The annotation rules: what an annotated Ingress, Pod or workload asks
//! for, as the Certificates that would fill it.
//!
//! Written once, on small typed views of the objects, so that the webhook
//! (admission), `certweave inject` (offline), the controller (the Ingress
//! shim and Pod certificates, on typed objects) and `certweave local` (on
//! manifests) cannot disagree about a default, a Secret name or a refusal.
//! The rules decide; turning a decision into a JSON Patch or a Kubernetes
//! write is each caller's own job.

pub mod gateway;
pub mod ingress;
pub mod pod;
pub mod secret_names;
pub mod workload;

/// Most hosts one Ingress may name in its rules: far above real use, and a
/// bound on what one object can make the webhook (`failurePolicy: Fail`)
/// and the controller do.
pub const MAX_INGRESS_HOSTS: usize = 1000;

/// Most `spec.tls` entries of one Ingress (each may become a Certificate).
pub const MAX_TLS_ENTRIES: usize = 100;

/// Most DNS names one Certificate made from an annotation may hold: Let's
/// Encrypt's limit per certificate, so an object that passes admission can
/// also be issued by a public ACME CA.
pub const MAX_NAMES_PER_CERTIFICATE: usize = 100;

use super::certificate::{CertificateSpec, IssuerReference};
use super::issuer_ref::ISSUER_GROUP;
use super::overrides::CertificateOverrides;
use super::IssuerRef;

/// A Certificate an annotated object asks for, by name: the Ingress shim
/// and Pod certificates name it after its Secret, so objects naming one
/// Secret share one Certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct WantedCertificate {
    pub name: String,
    pub spec: CertificateSpec,
}

impl WantedCertificate {
    /// The Certificate an annotated Ingress or Gateway asks for: named
    /// after its Secret, for `dns_names`, shaped by the override
    /// annotations (`alt-names` and `ip-sans` are added by the caller once
    /// every name of the Secret is known).
    fn for_secret(
        secret_name: &str,
        dns_names: Vec<String>,
        issuer: &IssuerRef,
        overrides: &CertificateOverrides,
    ) -> Self {
        Self {
            name: secret_name.to_owned(),
            spec: CertificateSpec {
                secret_name: secret_name.to_owned(),
                common_name: overrides.common_name.clone(),
                dns_names,
                duration: overrides.duration.clone(),
                renew_before: overrides.renew_before.clone(),
                issuer_ref: issuer_reference(issuer),
                private_key: overrides.private_key.clone(),
                ..CertificateSpec::default()
            },
        }
    }
}

/// The `issuerRef` of a Certificate requested through annotations: always
/// spelled out in full, so the stored object does not depend on defaults.
fn issuer_reference(issuer: &IssuerRef) -> IssuerReference {
    IssuerReference {
        name: issuer.name.clone(),
        kind: Some(issuer.kind.as_str().to_owned()),
        group: Some(ISSUER_GROUP.to_owned()),
    }
}
