//! The long-running commands: `controller`, `webhook`, `proxy`, `local`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use certweave::controller::scope::WatchScope;
use certweave::proxy::{
    Proxy, ProxyError, ProxyMode, ProxyOptions, UpstreamProtocol, DEFAULT_HEALTH_ADDR,
};
use certweave::webhook::server::{
    ServeOptions, WebhookServer, CLIENT_TIMEOUT, DEFAULT_RELOAD_INTERVAL, REVIEW_DEADLINE,
};

use super::dns01::Dns01Args;
use super::{exit_runtime, runtime, with_signal, MutationArgs};

#[derive(Args)]
pub struct ControllerArgs {
    /// Kubeconfig to use; default: in-cluster service account, else
    /// $KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Where the admission webhook listens (HTTPS).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9443")]
    webhook_addr: SocketAddr,
    /// Where /metrics, /healthz and /readyz are served (plain HTTP).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9402")]
    metrics_addr: SocketAddr,
    /// Where ACME HTTP-01 challenges are answered (plain HTTP).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8089")]
    solver_addr: SocketAddr,
    /// Serving certificate for the webhook (reloaded on change); without
    /// it the certificate is self-managed.
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Private key for --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_key_file: Option<PathBuf>,
    /// Elect a leader with a coordination.k8s.io/v1 Lease; only the leader
    /// issues and renews.
    #[arg(long)]
    leader_elect: bool,
    /// The controller's namespace: ClusterIssuer Secrets, the Lease, the
    /// webhook serving Secret.
    #[arg(long, env = "POD_NAMESPACE", default_value = "certweave")]
    namespace: String,
    /// This replica's name, the Lease holder identity (default: $POD_NAME,
    /// else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// This replica's Pod IP, where HTTP-01 challenge routes point.
    #[arg(long, env = "POD_IP")]
    pod_ip: Option<String>,
    /// MutatingWebhookConfiguration whose caBundle a self-managed serving
    /// certificate keeps in sync.
    #[arg(long, default_value = "certweave")]
    webhook_config_name: String,
    /// Service in front of the webhook; the self-managed certificate
    /// covers SERVICE.NAMESPACE.svc.
    #[arg(long, default_value = "certweave-webhook")]
    webhook_service_name: String,
    /// Secret holding the self-managed webhook CA and serving certificate.
    #[arg(long, default_value = "certweave-webhook-tls")]
    webhook_secret_name: String,
    /// Certificates evaluated or issued at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Do not approve CertificateRequests for certweave's issuers; an
    /// approver (approver-policy, `cmctl approve`) sets their Approved
    /// condition instead.
    #[arg(long)]
    disable_auto_approval: bool,
    /// Watch, read and write only in these namespaces (comma separated)
    /// and the controller's own (--namespace), so Roles in them are all
    /// it needs instead of cluster-wide Secret access; ClusterIssuers then
    /// read their Secrets from --namespace. Default: every namespace.
    /// Example: --watch-namespaces team-a,team-b
    #[arg(long, value_name = "NAMESPACES", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    #[command(flatten)]
    dns01: Dns01Args,
    /// Let Issuers' DNS-01 providers use the controller's own cloud
    /// credentials (environment, Pod role) when their spec names none.
    /// Off by default: whoever may create an Issuer would act with the
    /// controller's identity.
    #[arg(long)]
    issuer_ambient_credentials: bool,
    /// Let ClusterIssuers' DNS-01 providers use the controller's own cloud
    /// credentials when their spec names none.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    cluster_issuer_ambient_credentials: bool,
    #[command(flatten)]
    mutation: MutationArgs,
}

pub fn controller(args: ControllerArgs) -> ExitCode {
    exit_runtime(run_controller(args))
}

fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
    let scope = WatchScope::namespaces(&args.watch_namespaces, &args.namespace)?;
    let (runtime, shutdown) = runtime()?;
    let identity = args.identity.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("certweave-{}", std::process::id()))
    });
    runtime.block_on(certweave::controller::run(
        certweave::controller::ControllerOptions {
            kubeconfig: args.kubeconfig,
            webhook_addr: args.webhook_addr,
            metrics_addr: args.metrics_addr,
            solver_addr: args.solver_addr,
            tls_files: args.tls_cert_file.zip(args.tls_key_file),
            mutation: args.mutation.into_config(),
            leader_elect: args.leader_elect,
            namespace: args.namespace,
            identity,
            pod_ip: args.pod_ip,
            webhook_config_name: args.webhook_config_name,
            webhook_service_name: args.webhook_service_name,
            webhook_secret_name: args.webhook_secret_name,
            concurrency: args.concurrency,
            auto_approve: !args.disable_auto_approval,
            scope,
            dns_checks: args.dns01.checks(),
            ambient_credentials: certweave::controller::issuers::AmbientCredentials {
                cluster_issuers: args.cluster_issuer_ambient_credentials,
                issuers: args.issuer_ambient_credentials,
            },
        },
        shutdown,
    ))?;
    Ok(())
}

#[derive(Args)]
pub struct WebhookArgs {
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

pub fn webhook(args: WebhookArgs) -> ExitCode {
    exit_runtime(run_webhook(args))
}

fn run_webhook(args: WebhookArgs) -> anyhow::Result<()> {
    let (runtime, shutdown) = runtime()?;
    runtime.block_on(async {
        let server = WebhookServer::bind(ServeOptions {
            addr: args.addr,
            cert_file: args.tls_cert_file,
            key_file: args.tls_key_file,
            mutation: args.mutation.into_config(),
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            client_timeout: CLIENT_TIMEOUT,
            review_deadline: REVIEW_DEADLINE,
        })
        .await?;
        tracing::info!(addr = %server.local_addr()?, "webhook serving");
        server.run(shutdown).await?;
        tracing::info!("webhook stopped");
        Ok(())
    })
}

#[derive(Args)]
pub struct ProxyArgs {
    /// Address for TLS clients.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The application to forward to, in plain text (HTTP, or any TCP
    /// protocol with --mode tcp).
    #[arg(long, value_name = "ADDR")]
    upstream: SocketAddr,
    /// http: forward HTTP/1.1 and HTTP/2 requests (X-Forwarded-* added);
    /// tcp: pipe the decrypted bytes of each connection to the upstream,
    /// for a database or message broker, e.g.
    /// --mode tcp --listen 0.0.0.0:5433 --upstream 127.0.0.1:5432
    #[arg(long, value_name = "MODE", default_value = "http")]
    mode: ProxyMode,
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
    /// HTTP version spoken to the upstream in HTTP mode: auto (HTTP/1.1;
    /// h2c for HTTP/2 clients when the upstream answers HTTP/2), http1, or
    /// http2 (h2c).
    #[arg(long, value_name = "PROTOCOL", default_value = "auto")]
    upstream_protocol: UpstreamProtocol,
    /// Seconds to wait for open connections on SIGTERM before closing them.
    #[arg(long, value_name = "SECONDS", default_value_t = 25)]
    drain_timeout: u64,
}

pub fn proxy(args: ProxyArgs) -> ExitCode {
    let (runtime, shutdown) = match certweave::runtime::sized_to_cores() {
        Ok(runtime) => with_signal(runtime),
        Err(e) => return exit_runtime(Err(e.into())),
    };
    let mut options = ProxyOptions::new(args.listen, args.upstream, args.cert_dir);
    options.client_ca = args.client_ca;
    options.health_addr = args.health_addr;
    options.mode = args.mode;
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
            cert_dir = %proxy.cert_dir().display(),
            health = ?proxy.health_addr().ok(),
            "proxy started; waiting for a valid certificate"
        );
        exit_runtime(proxy.run(shutdown).await.map_err(anyhow::Error::from))
    })
}

#[derive(Args)]
pub struct LocalArgs {
    /// Directory holding the manifests; Secrets and state are written under it.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Namespace of manifests without one, and of ClusterIssuer Secrets.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Also serve the admission webhook here (certificate from the built-in CA).
    #[arg(long, value_name = "ADDR")]
    webhook_addr: Option<SocketAddr>,
    /// Where ACME HTTP-01 challenges are answered.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:80")]
    http01_addr: SocketAddr,
    /// Command run with `sh -c` after a Secret changes; it sees
    /// CERTWEAVE_SECRET_DIR, CERTWEAVE_NAMESPACE and CERTWEAVE_CERTIFICATE.
    #[arg(long, value_name = "CMD")]
    on_renew: Option<String>,
    /// Issuances running at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[command(flatten)]
    dns01: Dns01Args,
    #[command(flatten)]
    mutation: MutationArgs,
}

pub fn local(args: LocalArgs) -> ExitCode {
    if !args.dir.is_dir() {
        eprintln!(
            "error: --dir {}: not a directory; give the directory holding the manifests",
            args.dir.display()
        );
        return ExitCode::from(2);
    }
    exit_runtime(run_local(args))
}

fn run_local(args: LocalArgs) -> anyhow::Result<()> {
    let (runtime, shutdown) = runtime()?;
    runtime.block_on(certweave::local::run(
        certweave::local::LocalOptions {
            dir: args.dir,
            namespace: args.namespace,
            webhook_addr: args.webhook_addr,
            http01_addr: args.http01_addr,
            on_renew: args.on_renew,
            concurrency: args.concurrency,
            poll_interval: std::time::Duration::from_millis(250),
            mutation: args.mutation.into_config(),
            dns_checks: args.dns01.checks(),
        },
        shutdown,
    ))?;
    Ok(())
}
