//! The mutating admission webhook.
//!
//! One job per module. [`envelope`] decodes the AdmissionReview;
//! [`ingress`] and [`pod`] (with the [`sidecar`]) are the mutations, pure:
//! a JSON object and a [`MutationConfig`] in, the JSON Patch they make of
//! the rules in [`crate::api::wanted`] (or a precise [`InvalidField`]) out,
//! both written with the [`patch`] writer; [`response`] encodes the answer;
//! [`admission`] routes a review through them and [`server`] serves that
//! over HTTPS. `certweave inject` applies the same patches offline, so what
//! the cluster does and what users preview never diverge.

pub mod admission;
pub mod envelope;
pub mod gateway;
pub mod ingress;
pub mod patch;
pub mod pod;
pub mod response;
pub mod server;
pub mod sidecar;

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

/// What a mutation decided for an allowed object: the JSON Patch to send,
/// if anything changes, and warnings for the user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MutationPatch {
    pub patch: Option<Vec<u8>>,
    pub warnings: Vec<String>,
}

impl MutationPatch {
    pub fn warn(message: String) -> Self {
        Self {
            patch: None,
            warnings: vec![message],
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
