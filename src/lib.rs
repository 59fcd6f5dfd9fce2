//! certweave: automatic TLS certificates for Kubernetes in one binary.
//!
//! The modules form layers that point one way (`tests/layers.rs` enforces
//! it), so the engine knows nothing about Kubernetes and Kubernetes lives at
//! the edges:
//!
//! 1. [`model`]: the leaf types every layer shares (a requested certificate,
//!    the issued bundle, key algorithms, issuer kinds, [`model::IssueError`]).
//!    Beside it, utilities that know nothing of certificates: [`tls`] (the
//!    serving certificate reloaded from files, the accept loop with handshake
//!    deadline, connection limit and graceful drain, thread-per-core
//!    workers, used by the webhook and the proxy alike), [`runtime`] (the one
//!    runtime builder and shutdown signal) and [`metrics`].
//! 2. [`pki`] (keys, signing, checks), [`store`] (where certificates are
//!    kept: the `Store` trait and a directory) and [`issuers`] (SelfSigned,
//!    CA, ACME, and the CA behind certweave's own serving certificates).
//! 3. [`engine`]: the reconcile step and the one scheduler that both the
//!    controller and `local` run. Beside it [`api`]: the
//!    `cert-manager.io/v1` types, the annotation contract and its parsers,
//!    issuer construction from a spec, and in `api::wanted` the annotation
//!    rules that turn an annotated Ingress, Pod or workload into wanted
//!    Certificates, so every entry point rejects the same inputs with the
//!    same messages.
//! 4. The entry points: [`webhook`] (pure mutations behind a thin HTTPS
//!    shell), [`controller`] (in a cluster: caches, reconcilers, leader
//!    election, the Kubernetes store), [`local`] (the same pipeline on a
//!    directory), [`inject`] (the webhook offline on YAML streams),
//!    [`inspect`] (what a certificate file or Secret holds), [`renew`]
//!    (re-issuance on request, as `cmctl renew`), [`check`] (is certweave
//!    ready to use), [`status`] (why a Certificate is or is not Ready),
//!    [`issue`] (one certificate to a directory) and [`proxy`] (the TLS
//!    sidecar).

pub mod api;
pub mod check;
pub mod controller;
pub mod engine;
pub mod inject;
pub mod inspect;
pub mod issue;
pub mod issuers;
pub mod local;
pub mod metrics;
pub mod model;
pub mod pki;
pub mod proxy;
pub mod renew;
pub mod runtime;
pub mod status;
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
