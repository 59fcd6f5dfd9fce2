//! The `certweave` command line. Parsing only: every subcommand calls into
//! the library.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};

use certweave::api::IssuerRef;
use certweave::inject::{inject_stream, InjectError, InjectOptions};
use certweave::proxy::{Proxy, ProxyError, ProxyOptions, UpstreamProtocol, DEFAULT_HEALTH_ADDR};
use certweave::webhook::server::{
    ServeOptions, WebhookServer, CLIENT_TIMEOUT, DEFAULT_RELOAD_INTERVAL,
};
use certweave::webhook::{MutationConfig, DEFAULT_PROXY_IMAGE};

/// Automatic TLS certificates for Kubernetes: an admission webhook that fills
/// in Ingress TLS and mounts certificates into Pods, with the issuance engine
/// and renewal queue in the same binary.
#[derive(Parser)]
#[command(name = "certweave", version, propagate_version = true)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the mutating admission webhook alone (no cluster access needed).
    ///
    /// Serves POST /mutate (admission.k8s.io/v1 AdmissionReview for
    /// networking.k8s.io/v1 Ingress and v1 Pod), GET /healthz, /readyz and
    /// /metrics over TLS 1.2/1.3 with HTTP/2 and HTTP/1.1. The certificate
    /// files are re-read when they change on disk.
    ///
    /// Example:
    ///   certweave webhook --addr 0.0.0.0:9443 \
    ///     --tls-cert-file /tls/tls.crt --tls-key-file /tls/tls.key \
    ///     --default-issuer ClusterIssuer/letsencrypt-prod
    #[command(verbatim_doc_comment)]
    Webhook(WebhookArgs),
    /// Apply the webhook's mutations to a YAML stream offline and print it.
    ///
    /// Handles Ingress, Pod, the pod templates of Deployment, StatefulSet,
    /// DaemonSet, ReplicaSet, Job and CronJob, and List items. Documents
    /// that need no change are printed unchanged, byte for byte. A pod
    /// template has no namespace: the workload's metadata.namespace is used,
    /// else --namespace. On any invalid annotation nothing is printed and
    /// the command exits 2.
    ///
    /// Example:
    ///   certweave inject -f deploy.yaml | kubectl apply -f -
    #[command(verbatim_doc_comment)]
    Inject(InjectArgs),
    /// Serve a plain HTTP application over HTTPS: the TLS sidecar.
    ///
    /// Terminates TLS 1.2/1.3 (ALPN h2 and http/1.1) with DIR/tls.crt and
    /// DIR/tls.key and forwards to the upstream. The files are re-read when
    /// the mounted Secret changes; new connections get the new certificate,
    /// open ones are kept; a broken new bundle is rejected and the old one
    /// keeps serving. Nothing is accepted until a valid bundle exists.
    /// HTTP/1.1 clients and upgrades (WebSocket) reach the upstream over
    /// HTTP/1.1; HTTP/2 clients over h2c when the upstream speaks it (see
    /// --upstream-protocol). X-Forwarded-For and X-Forwarded-Proto are set.
    /// The health port serves /healthz, /readyz (503 until a certificate is
    /// loaded and while draining) and /metrics. SIGTERM drains connections.
    ///
    /// Example:
    ///   certweave proxy --listen 0.0.0.0:8443 --upstream 127.0.0.1:8080 \
    ///     --cert-dir /etc/certweave/tls --client-ca /etc/clients/ca.crt
    #[command(verbatim_doc_comment)]
    Proxy(ProxyArgs),
}

#[derive(Args)]
struct MutationArgs {
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

#[derive(Args)]
struct WebhookArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:9443")]
    addr: SocketAddr,
    /// PEM certificate chain to serve (leaf first); reloaded on change.
    #[arg(long, value_name = "FILE")]
    tls_cert_file: PathBuf,
    /// PEM private key of the certificate; reloaded on change.
    #[arg(long, value_name = "FILE")]
    tls_key_file: PathBuf,
    #[command(flatten)]
    mutation: MutationArgs,
}

#[derive(Args)]
struct InjectArgs {
    /// YAML file to read, or - for standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE|-")]
    file: String,
    /// Namespace assumed for documents without metadata.namespace (used for
    /// the default Pod DNS names <svc>.<ns>.svc).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    #[command(flatten)]
    mutation: MutationArgs,
}

#[derive(Args)]
struct ProxyArgs {
    /// Address for TLS clients.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The plain HTTP application to forward to.
    #[arg(long, value_name = "ADDR")]
    upstream: SocketAddr,
    /// Directory holding tls.crt and tls.key (a mounted kubernetes.io/tls
    /// Secret); watched for rotations.
    #[arg(long, value_name = "DIR")]
    cert_dir: PathBuf,
    /// PEM CA certificate(s): require client certificates signed by them.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// Plain HTTP address for /healthz, /readyz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_HEALTH_ADDR)]
    health_addr: SocketAddr,
    /// HTTP version spoken to the upstream: auto (HTTP/1.1; h2c for HTTP/2
    /// clients when the upstream answers HTTP/2), http1, or http2 (h2c).
    #[arg(long, value_name = "PROTOCOL", default_value = "auto")]
    upstream_protocol: UpstreamProtocol,
    /// Seconds to wait for open connections on SIGTERM before closing them.
    #[arg(long, value_name = "SECONDS", default_value_t = 25)]
    drain_timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Webhook(args) => exit_runtime(run_webhook(args)),
        Command::Inject(args) => run_inject(args),
        Command::Proxy(args) => run_proxy(args),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn exit_runtime(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_webhook(args: WebhookArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let server = WebhookServer::bind(ServeOptions {
            addr: args.addr,
            cert_file: args.tls_cert_file,
            key_file: args.tls_key_file,
            mutation: args.mutation.into_config(),
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            client_timeout: CLIENT_TIMEOUT,
        })
        .await?;
        tracing::info!(addr = %server.local_addr()?, "webhook serving");
        server.run(shutdown_signal()).await?;
        tracing::info!("webhook stopped");
        Ok(())
    })
}

fn run_proxy(args: ProxyArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let mut options = ProxyOptions::new(args.listen, args.upstream, args.cert_dir);
    options.client_ca = args.client_ca;
    options.health_addr = args.health_addr;
    options.upstream_protocol = args.upstream_protocol;
    options.drain_timeout = std::time::Duration::from_secs(args.drain_timeout);
    runtime.block_on(async {
        let proxy = match Proxy::bind(options).await {
            Ok(proxy) => proxy,
            Err(e @ ProxyError::ClientCa(_)) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(
            cert_dir = %proxy.certs().dir().display(),
            health = ?proxy.health_addr().ok(),
            "proxy started; waiting for a valid certificate"
        );
        exit_runtime(
            proxy
                .run(shutdown_signal())
                .await
                .map_err(anyhow::Error::from),
        )
    })
}

/// Completes on SIGTERM (how Kubernetes stops a Pod) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler succeeds at start-up");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn run_inject(args: InjectArgs) -> ExitCode {
    let input = if args.file == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map(|_| s)
    } else {
        std::fs::read_to_string(&args.file)
    };
    let input = match input {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.file);
            return ExitCode::from(2);
        }
    };
    let options = InjectOptions {
        mutation: args.mutation.into_config(),
        default_namespace: args.namespace,
    };
    match inject_stream(&input, &options) {
        Ok(injected) => {
            for warning in &injected.warnings {
                eprintln!("warning: {warning}");
            }
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout
                .write_all(injected.output.as_bytes())
                .and_then(|_| stdout.flush())
            {
                eprintln!("error: cannot write output: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        }
        Err(e @ (InjectError::Yaml { .. } | InjectError::Invalid { .. })) => {
            eprintln!("error: {}: {e}", args.file);
            ExitCode::from(2)
        }
    }
}
