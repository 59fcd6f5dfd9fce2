//! From flags to library calls: each command's arguments, how they become
//! the library's options, and what the user sees (output and exit code).
//! `main.rs` holds the command tree; nothing here is reached any other way.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use certweave::api::IssuerRef;
use certweave::webhook::{MutationConfig, DEFAULT_PROXY_IMAGE};

pub mod cluster;
pub mod dns01;
pub mod inject;
pub mod inspect;
pub mod issue;
pub mod serve;

// The flags that shape the mutations, shared by every command that
// serves or applies them.
#[derive(Args)]
pub struct MutationArgs {
    /// Issuer for Ingresses annotated kubernetes.io/tls-acme: "true", as
    /// KIND/NAME (e.g. ClusterIssuer/letsencrypt-prod).
    #[arg(long, value_name = "KIND/NAME")]
    default_issuer: Option<IssuerRef>,
    /// Image of the injected certweave-proxy sidecar.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_PROXY_IMAGE)]
    proxy_image: String,
}

impl MutationArgs {
    fn into_config(self) -> MutationConfig {
        MutationConfig {
            default_issuer: self.default_issuer,
            proxy_image: self.proxy_image,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// The runtime of a long-running subcommand, with its shutdown signal.
pub fn runtime() -> anyhow::Result<(
    tokio::runtime::Runtime,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    Ok(with_signal(certweave::runtime::multi_thread()?))
}

/// `runtime` with its shutdown signal.
pub fn with_signal(
    runtime: tokio::runtime::Runtime,
) -> (
    tokio::runtime::Runtime,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let shutdown = certweave::runtime::shutdown_signal(&runtime);
    (runtime, shutdown)
}

/// Exit 0, or 1 with the error and its causes on stderr.
pub fn exit_runtime(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A report as text for a terminal, or as JSON.
pub fn print_report<R: serde::Serialize>(output: OutputFormat, report: &R, text: fn(&R) -> String) {
    match output {
        OutputFormat::Text => print!("{}", text(report)),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).expect("the report serialises")
        ),
    }
}
