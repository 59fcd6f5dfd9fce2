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
//! - [`issue`]: `certweave issue`, one certificate issued to a directory.
//! - [`proxy`]: the TLS-terminating sidecar (`certweave proxy`) that serves
//!   a Pod's plain HTTP application over HTTPS with the mounted certificate.
//! - [`tls`]: TLS serving for the webhook and the proxy alike: the serving
//!   certificate reloaded from files on change, the accept loop (handshake
//!   deadline, connection limit, graceful drain) and thread-per-core
//!   connection serving.
//! - [`runtime`]: the one async runtime builder and shutdown signal of
//!   every subcommand.
//! - [`metrics`]: the Prometheus registry the binary exports.
//! - [`store`]: where certificates are kept (today: files in a directory).

pub mod api;
pub mod controller;
pub mod engine;
pub mod inject;
pub mod issue;
pub mod issuers;
pub mod local;
pub mod metrics;
pub mod model;
pub mod pki;
pub mod proxy;
pub mod runtime;
pub mod store;
pub mod tls;
pub mod webhook;

/// The allocator of every binary built with this crate (the `certweave`
/// binary, its tests, benchmarks and examples alike, so that they measure
/// what runs in production).
///
/// Admission reviews and Kubernetes objects are trees of many small
/// allocations: with glibc's allocator, allocating and freeing took about
/// 45% of the instructions of a Pod review. mimalloc's per-thread free lists
/// make both a few instructions and do not contend across the runtime's
/// worker threads. Its `no_thp` feature keeps it from asking for
/// transparent huge pages: with them, every thread's first allocation
/// faulted in 2 MiB, and the idle proxy sidecar grew from 16 to 27 MiB RSS;
/// without them it idles at 15 MiB, below glibc's 16.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
