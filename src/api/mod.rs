//! The user-facing contract: annotation keys, issuer references, the value
//! parsers behind them, and the annotation rules ([`wanted`]).
//!
//! Everything here is pure and free of Kubernetes client types, so the same
//! checks run at admission, in `certweave inject` and in the controller.

pub mod acme_settings;
pub mod annotations;
pub mod certificate;
pub mod certificate_fields;
pub mod certificate_request;
pub mod dns01_settings;
pub mod duration;
pub mod issuer;
pub mod issuer_builder;
pub mod issuer_fields;
pub mod issuer_ref;
pub mod keystores;
pub mod literal_subject;
pub mod names;
pub mod object;
pub mod overrides;
pub mod wanted;

pub use issuer_ref::{IssuerKind, IssuerRef};

/// A user input that certweave refuses, with the field it came from and how to
/// fix it. Every rejection a user can see is one of these, so the message
/// always names the annotation (or JSON path) and the remedy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}; {fix}")]
pub struct InvalidField {
    /// The annotation key or JSON path of the offending value.
    pub field: String,
    /// What is wrong with it, quoting the value.
    pub problem: String,
    /// What the user should do instead.
    pub fix: String,
}

impl InvalidField {
    pub fn new(
        field: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        // Bounded whatever a value quoted in it made of it: the denial or
        // condition carrying it, and the log line, stay small.
        use crate::model::text::{cut, MESSAGE, QUOTED};
        Self {
            field: cut(&field.into(), 4 * QUOTED),
            problem: cut(&problem.into(), MESSAGE),
            fix: cut(&fix.into(), MESSAGE),
        }
    }
}

/// The CRDs of every certweave-served kind, as one YAML stream.
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    [
        certificate::Certificate::crd(),
        certificate_request::CertificateRequest::crd(),
        issuer::Issuer::crd(),
        issuer::ClusterIssuer::crd(),
    ]
    .iter()
    .map(|crd| {
        format!(
            "---\n{}",
            serde_yaml_ng::to_string(crd).expect("CRDs serialise")
        )
    })
    .collect()
}
