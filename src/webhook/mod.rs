//! The mutating admission webhook.
//!
//! [`ingress`] and [`pod`] are pure: a JSON object and a [`MutationConfig`]
//! in, the mutated object (or a precise [`InvalidField`]) out; the Pod
//! mutation also comes as the JSON Patch it is made of
//! ([`pod::pod_patch`]), which the webhook sends without building the
//! mutated Pod. [`admission`] wraps them in the AdmissionReview protocol and
//! [`server`] serves that over HTTPS. `certweave inject` and the controller call the same pure functions,
//! so what the cluster does and what users preview offline never diverge.

pub mod admission;
pub mod ingress;
pub mod object;
pub mod patch;
pub mod pod;
pub mod server;

use serde_json::Value;

use crate::api::{InvalidField, IssuerRef};

/// The image injected as the TLS sidecar unless `--proxy-image` says otherwise:
/// the same image the chart runs, at this binary's version.
pub const DEFAULT_PROXY_IMAGE: &str = concat!("certweave/certweave:", env!("CARGO_PKG_VERSION"));

/// Settings the mutations depend on besides the object itself. Cheap to
/// clone; read on every request, so it holds no locks.
#[derive(Debug, Clone)]
pub struct MutationConfig {
    /// Issuer for Ingresses annotated only with `kubernetes.io/tls-acme: "true"`.
    pub default_issuer: Option<IssuerRef>,
    /// Image for the injected `certweave-proxy` container.
    pub proxy_image: String,
}

impl Default for MutationConfig {
    fn default() -> Self {
        Self {
            default_issuer: None,
            proxy_image: DEFAULT_PROXY_IMAGE.to_owned(),
        }
    }
}

/// The result of running a mutation over an object that passed validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MutationOutcome {
    /// The mutated object, or `None` when nothing needs to change.
    pub object: Option<Value>,
    /// Messages for the user that do not block the request (returned to
    /// `kubectl` as admission warnings).
    pub warnings: Vec<String>,
}

impl MutationOutcome {
    pub fn unchanged() -> Self {
        Self::default()
    }

    pub fn warn(message: impl Into<String>) -> Self {
        Self {
            object: None,
            warnings: vec![message.into()],
        }
    }

    pub fn mutated(object: Value) -> Self {
        Self {
            object: Some(object),
            warnings: Vec::new(),
        }
    }
}

/// Result type of the mutations: a rejection always names the field and fix.
pub type MutationResult = Result<MutationOutcome, InvalidField>;
