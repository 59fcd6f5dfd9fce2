//! certweave: automatic TLS certificates for Kubernetes in one binary.
//!
//! The crate is split by concern, the way the binary is deployed:
//!
//! - [`api`]: the annotation contract and the small value types (issuer
//!   references, durations, DNS names) shared by the webhook, `inject` and,
//!   later, the controller. Parsing lives here so every entry point rejects
//!   the same inputs with the same messages.
//! - [`webhook`]: the mutating admission webhook. The mutations themselves are
//!   pure functions (object in, object out); the HTTPS server is a thin shell.
//! - [`inject`]: the offline twin of the webhook for YAML streams.
//! - [`proxy`]: the TLS-terminating sidecar (`certweave proxy`) that serves
//!   a Pod's plain HTTP application over HTTPS with the mounted certificate.
//! - [`tls`]: serving certificates loaded from files and reloaded on change.
//! - [`metrics`]: the Prometheus registry the binary exports.

pub mod api;
pub mod engine;
pub mod inject;
pub mod issuers;
pub mod metrics;
pub mod pki;
pub mod proxy;
pub mod tls;
pub mod webhook;
