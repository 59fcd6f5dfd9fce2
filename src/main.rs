//! The `certweave` command line. Parsing only: every subcommand calls into
//! the library.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use certweave::api::IssuerRef;
use certweave::inject::{inject_stream, InjectError, InjectOptions};
use certweave::issue::{IssueFlags, IssueWith};
use certweave::issuers::acme::dns01::TsigAlgorithm;
use certweave::pki::KeyAlgorithm;
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
    /// Run in a cluster: webhook, controllers, issuance engine and renewal
    /// queue in one process.
    ///
    /// Every replica serves the admission webhook on --webhook-addr and
    /// /metrics, /healthz, /readyz on --metrics-addr (ready once its caches
    /// have synced). With --leader-elect, the replica holding the Lease
    /// certweave-controller in --namespace issues and renews; without it,
    /// this replica always does. Without --tls-cert-file/--tls-key-file the
    /// webhook's serving certificate is self-managed: a CA and certificate
    /// in Secret --webhook-secret-name, and the caBundle of the
    /// MutatingWebhookConfiguration --webhook-config-name kept in sync.
    ///
    /// Example:
    ///   certweave controller --leader-elect \
    ///     --default-issuer ClusterIssuer/letsencrypt-prod
    #[command(verbatim_doc_comment)]
    Controller(ControllerArgs),
    /// Serve the mutating admission webhook alone (no cluster access needed).
    ///
    /// Serves POST /mutate (admission.k8s.io/v1 AdmissionReview for
    /// networking.k8s.io/v1 Ingress, v1 Pod, Gateway API Gateway and
    /// ListenerSet, cert-manager.io/v1 CertificateRequest), GET /healthz, /readyz and
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
    /// Show what a certificate file or a TLS Secret holds.
    ///
    /// Every certificate of the chain (subject, names, validity and time
    /// left, key, usages, issuer, serial, SHA-256 fingerprint); whether the
    /// private key matches the leaf; whether the chain verifies to ca.crt;
    /// a Secret's cert-manager.io annotations. A file is PEM (certificates,
    /// and a key if present) or one DER certificate; no cluster needed.
    /// Exit 0 when readable, 1 when the key does not match or the chain
    /// does not verify, 2 on bad usage or unreadable input.
    ///
    /// Examples:
    ///   certweave inspect tls.crt
    ///   cat bundle.pem | certweave inspect - --ca ca.crt
    ///   certweave inspect secret web-tls -n shop -o json
    #[command(verbatim_doc_comment)]
    Inspect(InspectArgs),
    /// Ask for new certificates now, as `cmctl renew` does.
    ///
    /// Adds the condition Issuing=True (reason ManuallyTriggered) to each
    /// Certificate's status; the controller issues it at once and replaces
    /// the condition. A Certificate already issuing is left alone. cmctl's
    /// own `renew` works against certweave the same way.
    ///
    /// Examples:
    ///   certweave renew web-tls -n shop
    ///   certweave renew --all -A -l team=web
    #[command(verbatim_doc_comment)]
    Renew(RenewArgs),
    /// Show why something is or is not Ready.
    ///
    /// `status certificate NAME` in a cluster; `status --dir DIR` for the
    /// certificates of `certweave local` (read from DIR/state, whether
    /// local runs or not): exit 0 when all are Ready, 1 otherwise.
    ///
    /// Examples:
    ///   certweave status certificate web-tls -n shop
    ///   certweave status --dir ./certs
    #[command(verbatim_doc_comment, args_conflicts_with_subcommands = true)]
    Status(StatusArgs),
    /// Print a shell completion script.
    ///
    /// Examples:
    ///   certweave completion bash > /etc/bash_completion.d/certweave
    ///   certweave completion zsh > "${fpath[1]}/_certweave"
    ///   certweave completion fish > ~/.config/fish/completions/certweave.fish
    #[command(verbatim_doc_comment)]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Check that certweave is ready to use (as `cmctl check api`).
    #[command(subcommand)]
    Check(CheckCommand),
    /// Run the whole pipeline on a machine without Kubernetes.
    ///
    /// Reads every *.yaml manifest in DIR (Certificate, Issuer,
    /// ClusterIssuer, Ingress — an Ingress goes through the webhook mutation
    /// and ingress shim, as in a cluster), issues and renews the
    /// certificates for as long as it runs, and writes each Secret under
    /// DIR/secrets/<namespace>/<secretName>/ as tls.crt, tls.key (0600),
    /// ca.crt and secret.yaml. A Certificate whose issuer DIR does not
    /// define is signed by the built-in CA (DIR/state/ca/tls.crt, created
    /// on first start). State lives under DIR/state/: a restart resumes
    /// without re-issuing what is still valid. Edited manifests are picked
    /// up while it runs. SIGTERM finishes in-flight issuance and exits.
    ///
    /// Example:
    ///   certweave local --dir ./certs --on-renew 'nginx -s reload'
    #[command(verbatim_doc_comment)]
    Local(LocalArgs),
    /// Print the CustomResourceDefinitions (Certificate, CertificateRequest,
    /// Issuer, ClusterIssuer in cert-manager.io/v1), generated from the Rust
    /// types.
    ///
    /// Example:
    ///   certweave crds | kubectl apply --server-side -f -
    #[command(verbatim_doc_comment)]
    Crds,
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
    /// Issue one certificate and write it to a directory, like lego/certbot.
    ///
    /// Writes DIR/tls.crt (leaf, then intermediates), DIR/tls.key (mode
    /// 0600) and DIR/ca.crt (when the issuer knows the root; ACME CAs
    /// usually do not send it), each atomically, and only after the chain
    /// was checked against the key and the names. On failure nothing is
    /// written. Progress goes to stderr.
    ///
    /// ACME: the account key (--account-key) is created if missing and
    /// reused afterwards; cert-manager's RSA account keys work too. Names
    /// are validated over HTTP-01 by a built-in listener (--http01-addr,
    /// default 0.0.0.0:80 when no DNS-01 server is given) or over DNS-01
    /// by RFC 2136 updates (--dns01-rfc2136); wildcards need DNS-01.
    ///
    /// Examples:
    ///   certweave issue --dns-name example.com --dns-name www.example.com \
    ///     --acme-directory https://acme-v02.api.letsencrypt.org/directory \
    ///     --email ops@example.com --account-key /var/lib/certweave/account.key \
    ///     --out /etc/tls/example
    ///   certweave issue --issuer ca --ca-cert ca.crt --ca-key ca.key \
    ///     --dns-name api.internal --out ./api
    #[command(verbatim_doc_comment)]
    Issue(IssueArgs),
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
struct ControllerArgs {
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
    #[command(flatten)]
    mutation: MutationArgs,
}

/// The runtime of a long-running subcommand, with its shutdown signal.
fn runtime() -> anyhow::Result<(
    tokio::runtime::Runtime,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    let runtime = certweave::runtime::multi_thread()?;
    let shutdown = certweave::runtime::shutdown_signal(&runtime);
    Ok((runtime, shutdown))
}

fn run_controller(args: ControllerArgs) -> anyhow::Result<()> {
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
        },
        shutdown,
    ))?;
    Ok(())
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
struct InspectArgs {
    /// FILE, - for standard input, or `secret NAME`.
    #[arg(value_name = "FILE|-|secret NAME", num_args = 1..=2, required = true)]
    target: Vec<String>,
    /// The Secret's namespace (with `secret NAME`).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Kubeconfig for `secret NAME` (default: $KUBECONFIG, ~/.kube/config
    /// or the in-cluster service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// PEM CA certificate(s) the chain of a file must verify to.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// Inspect as of this time (RFC 3339), for reproducible output.
    #[arg(long, hide = true)]
    now: Option<String>,
}

#[derive(Args)]
struct StatusArgs {
    #[command(subcommand)]
    command: Option<StatusCommand>,
    /// The directory of `certweave local`.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum StatusCommand {
    /// One screen on a Certificate: its conditions, its issuer and the
    /// issuer's Ready condition, what its Secret holds (serial, validity,
    /// names, key and whether it matches, chain to ca.crt), renewal time,
    /// failed attempts and the next retry, the ACME server's renewal window
    /// and the last Events. Exit 0 when Ready, 1 when not (or when it does
    /// not exist: close matches are listed), 2 on bad usage.
    ///
    /// Examples:
    ///   certweave status certificate web-tls -n shop
    ///   certweave status certificate web-tls -n shop -o json
    #[command(verbatim_doc_comment)]
    Certificate(StatusCertificateArgs),
}

#[derive(Args)]
struct StatusCertificateArgs {
    name: String,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Kubeconfig (default: $KUBECONFIG, ~/.kube/config or the in-cluster
    /// service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

#[derive(Subcommand)]
enum CheckCommand {
    /// Exit 0 once the cert-manager.io/v1 kinds are served and the
    /// admission webhook answers a dry-run CertificateRequest; 1 with the
    /// reason otherwise. For install scripts and CI.
    ///
    /// Examples:
    ///   certweave check api
    ///   helm install certweave charts/certweave && certweave check api --wait 2m
    #[command(verbatim_doc_comment)]
    Api(CheckApiArgs),
}

#[derive(Args)]
struct CheckApiArgs {
    /// Keep checking this long (a Go duration such as 90s or 2m) before
    /// giving up; 0 checks once.
    #[arg(long, default_value = "0s", value_name = "DURATION")]
    wait: String,
    /// Namespace of the dry-run CertificateRequest.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Kubeconfig (default: $KUBECONFIG, ~/.kube/config or the in-cluster
    /// service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
}

#[derive(Args)]
struct RenewArgs {
    /// Certificates to renew.
    #[arg(
        value_name = "NAME",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    names: Vec<String>,
    /// Every Certificate of the namespace (or of all with -A).
    #[arg(long)]
    all: bool,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Every namespace (with --all).
    #[arg(short = 'A', long = "all-namespaces", requires = "all")]
    all_namespaces: bool,
    /// Only Certificates with these labels (with --all), e.g. team=web.
    #[arg(short = 'l', long, requires = "all")]
    selector: Option<String>,
    /// Kubeconfig (default: $KUBECONFIG, ~/.kube/config or the in-cluster
    /// service account).
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Renew in the directory of `certweave local` instead of a cluster:
    /// a running local picks the request up at its next poll, a stopped
    /// one when it starts.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["kubeconfig", "all", "all_namespaces", "selector"])]
    dir: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
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

#[derive(Args)]
struct IssueArgs {
    /// A DNS name for the certificate; repeat for several.
    #[arg(long = "dns-name", value_name = "NAME", required = true)]
    dns_names: Vec<String>,
    /// Directory to write tls.crt, tls.key and ca.crt to (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Private key algorithm of the certificate.
    #[arg(long, value_name = "ALGORITHM", default_value = "ecdsa-p256")]
    key_algorithm: KeyAlgorithm,
    /// Which issuer signs.
    #[arg(long, value_enum, default_value_t = IssueWith::Acme)]
    issuer: IssueWith,
    /// ACME directory URL (https).
    #[arg(long, value_name = "URL")]
    acme_directory: Option<String>,
    /// PEM CA certificates to trust for the ACME server's TLS, instead of
    /// the public roots (cert-manager's caBundle).
    #[arg(long, value_name = "PEM", conflicts_with = "acme_skip_tls_verify")]
    acme_ca_bundle: Option<PathBuf>,
    /// Do not verify the ACME server's TLS certificate (tests only).
    #[arg(long)]
    acme_skip_tls_verify: bool,
    /// Contact email for the ACME account.
    #[arg(long, value_name = "EMAIL")]
    email: Option<String>,
    /// ACME account key (PEM; ECDSA P-256 or RSA): created if missing,
    /// reused afterwards. Keep it: a new key means a new account.
    #[arg(long, value_name = "FILE")]
    account_key: Option<PathBuf>,
    /// External account binding key ID, for CAs that require one.
    #[arg(long, value_name = "KID", requires = "eab_hmac_key")]
    eab_kid: Option<String>,
    /// External account binding HMAC key (base64url), from the CA.
    #[arg(
        long,
        value_name = "KEY",
        env = "CERTWEAVE_EAB_HMAC_KEY",
        hide_env_values = true,
        requires = "eab_kid"
    )]
    eab_hmac_key: Option<String>,
    /// Prefer the chain whose root (top issuer) has this common name.
    #[arg(long, value_name = "CN")]
    preferred_chain: Option<String>,
    /// Ask for this certificate profile (ACME profiles extension, e.g.
    /// `shortlived` at Let's Encrypt); the server's default otherwise.
    #[arg(long, value_name = "NAME")]
    acme_profile: Option<String>,
    /// Address for the built-in HTTP-01 listener; the CA must reach it on
    /// port 80 of every name.
    #[arg(long, value_name = "ADDR")]
    http01_addr: Option<SocketAddr>,
    /// DNS server (HOST[:PORT], default port 53) that accepts RFC 2136
    /// updates for the names' zones: enables DNS-01.
    #[arg(
        long = "dns01-rfc2136",
        value_name = "SERVER",
        requires = "tsig_key_name"
    )]
    dns01_rfc2136: Option<String>,
    /// TSIG key name, as the DNS server knows it.
    #[arg(
        long,
        value_name = "NAME",
        requires = "dns01_rfc2136",
        requires = "tsig_secret"
    )]
    tsig_key_name: Option<String>,
    /// TSIG secret (base64, as in named.conf).
    #[arg(
        long,
        value_name = "SECRET",
        env = "CERTWEAVE_TSIG_SECRET",
        hide_env_values = true
    )]
    tsig_secret: Option<String>,
    /// TSIG algorithm: hmac-sha256, hmac-sha384 or hmac-sha512.
    #[arg(long, value_name = "ALGORITHM", default_value = "hmac-sha256")]
    tsig_algorithm: TsigAlgorithm,
    /// Send DNS updates and queries over TCP only (for servers or
    /// firewalls that take updates over TCP); UDP by default.
    #[arg(long, requires = "dns01_rfc2136")]
    dns01_tcp: bool,
    /// CA certificate (PEM) for --issuer ca.
    #[arg(long, value_name = "FILE", required_if_eq("issuer", "ca"))]
    ca_cert: Option<PathBuf>,
    /// CA private key (PEM) for --issuer ca.
    #[arg(long, value_name = "FILE", required_if_eq("issuer", "ca"))]
    ca_key: Option<PathBuf>,
}

impl IssueArgs {
    /// The flags as the library takes them.
    fn into_flags(self) -> IssueFlags {
        IssueFlags {
            dns_names: self.dns_names,
            out: self.out,
            key_algorithm: self.key_algorithm,
            issuer: self.issuer,
            acme_directory: self.acme_directory,
            acme_ca_bundle: self.acme_ca_bundle,
            acme_skip_tls_verify: self.acme_skip_tls_verify,
            email: self.email,
            account_key: self.account_key,
            eab_kid: self.eab_kid,
            eab_hmac_key: self.eab_hmac_key,
            preferred_chain: self.preferred_chain,
            acme_profile: self.acme_profile,
            http01_addr: self.http01_addr,
            dns01_rfc2136: self.dns01_rfc2136,
            tsig_key_name: self.tsig_key_name,
            tsig_secret: self.tsig_secret,
            tsig_algorithm: self.tsig_algorithm,
            dns01_tcp: self.dns01_tcp,
            ca_cert: self.ca_cert,
            ca_key: self.ca_key,
        }
    }
}

#[derive(Args)]
struct LocalArgs {
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
    mutation: MutationArgs,
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
        },
        shutdown,
    ))?;
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Controller(args) => exit_runtime(run_controller(args)),
        Command::Webhook(args) => exit_runtime(run_webhook(args)),
        Command::Inject(args) => run_inject(args),
        Command::Inspect(args) => run_inspect(args),
        Command::Renew(args) => run_renew(args),
        Command::Check(CheckCommand::Api(args)) => run_check_api(args),
        Command::Status(StatusArgs {
            command: Some(StatusCommand::Certificate(args)),
            ..
        }) => run_status_certificate(args),
        Command::Status(StatusArgs {
            dir: Some(dir),
            command: None,
        }) => run_status_dir(&dir),
        Command::Status(_) => {
            eprintln!("error: give `certificate NAME` or --dir DIR (see certweave status --help)");
            ExitCode::from(2)
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "certweave", &mut script);
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(&script);
            ExitCode::SUCCESS
        }
        Command::Local(args) if !args.dir.is_dir() => {
            eprintln!(
                "error: --dir {}: not a directory; give the directory holding the manifests",
                args.dir.display()
            );
            ExitCode::from(2)
        }
        Command::Local(args) => exit_runtime(run_local(args)),
        Command::Crds => {
            print!("{}", certweave::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Proxy(args) => run_proxy(args),
        Command::Issue(args) => run_issue(args),
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rustls warns on every handshake whose SNI is an IP address (load
        // generators, health checkers); that is noise, not news.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    let (runtime, shutdown) = runtime()?;
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
        server.run(shutdown).await?;
        tracing::info!("webhook stopped");
        Ok(())
    })
}

fn run_proxy(args: ProxyArgs) -> ExitCode {
    let (runtime, shutdown) = match runtime() {
        Ok(started) => started,
        Err(e) => return exit_runtime(Err(e)),
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
            cert_dir = %proxy.cert_dir().display(),
            health = ?proxy.health_addr().ok(),
            "proxy started; waiting for a valid certificate"
        );
        exit_runtime(proxy.run(shutdown).await.map_err(anyhow::Error::from))
    })
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

fn run_inspect(args: InspectArgs) -> ExitCode {
    use certweave::inspect::{render_text, report, Material};
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    let now = match &args.now {
        None => std::time::SystemTime::now(),
        Some(text) => {
            match time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            {
                Ok(t) => {
                    std::time::SystemTime::UNIX_EPOCH
                        + std::time::Duration::from_secs(t.unix_timestamp().max(0) as u64)
                }
                Err(e) => {
                    return usage(format!(
                        "--now {text:?}: {e}; write RFC 3339, e.g. 2026-01-01T00:00:00Z"
                    ))
                }
            }
        }
    };
    let material = match args.target.as_slice() {
        [kind, name] if kind == "secret" => {
            match as_user(args.kubeconfig.as_deref(), |client| {
                secret_material(client, &args.namespace, name)
            }) {
                Ok(material) => material,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(1);
                }
            }
        }
        [file] => {
            let bytes = if file == "-" {
                let mut buf = Vec::new();
                std::io::stdin()
                    .take(certweave::inspect::MAX_INPUT as u64 + 1)
                    .read_to_end(&mut buf)
                    .map(|_| buf)
            } else {
                std::fs::read(file)
            };
            let bytes = match bytes {
                Ok(bytes) => bytes,
                Err(e) => return usage(format!("cannot read {file}: {e}")),
            };
            let mut material = match Material::from_bytes(&bytes) {
                Ok(material) => material,
                Err(e) => return usage(format!("{file}: {e}")),
            };
            if let Some(ca) = &args.ca {
                match std::fs::read_to_string(ca) {
                    Ok(pem) => material.ca_pem = Some(pem),
                    Err(e) => return usage(format!("cannot read --ca {}: {e}", ca.display())),
                }
            }
            material
        }
        other => {
            return usage(format!(
                "inspect takes FILE, - or `secret NAME`, not {:?}",
                other.join(" ")
            ))
        }
    };
    let report = match report(&material, now) {
        Ok(report) => report,
        Err(e) => return usage(e.to_string()),
    };
    print_report(args.output, &report, render_text);
    let bad_key = report
        .private_key
        .as_ref()
        .is_some_and(|k| !k.matches_certificate);
    let bad_chain = report.chain_to_ca.as_ref().is_some_and(|c| !c.verifies);
    if bad_key || bad_chain {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn run_status_certificate(args: StatusCertificateArgs) -> ExitCode {
    let result = as_user(args.kubeconfig.as_deref(), |client| async move {
        certweave::status::status(&client, &args.namespace, &args.name)
            .await
            .map_err(anyhow::Error::msg)
    });
    match result {
        Ok(report) => {
            print_report(args.output, &report, certweave::status::render_text);
            if report.ready {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(why) => {
            eprintln!("error: {why:#}");
            ExitCode::from(1)
        }
    }
}

fn run_check_api(args: CheckApiArgs) -> ExitCode {
    let wait = match certweave::api::duration::parse_go_duration("--wait", &args.wait) {
        Ok(wait) => wait,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = as_user(args.kubeconfig.as_deref(), |client| async move {
        certweave::check::check(&client, &args.namespace, wait)
            .await
            .map_err(anyhow::Error::msg)
    });
    match result {
        Ok(()) => {
            println!("The certweave API is ready");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: not ready: {why:#}");
            ExitCode::from(1)
        }
    }
}

fn run_status_dir(dir: &std::path::Path) -> ExitCode {
    match certweave::status::local_status(dir) {
        Ok(rows) => {
            print!("{}", certweave::status::render_local(&rows));
            if rows.iter().all(|r| r.ready) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
    }
}

fn run_renew(args: RenewArgs) -> ExitCode {
    use certweave::renew::{renew, RenewTarget, Renewed};
    if let Some(dir) = &args.dir {
        return match certweave::renew::renew_local(dir, &args.namespace, &args.names) {
            Ok(requested) => {
                for id in requested {
                    println!("Renewal of Certificate {id} requested; a running certweave local issues it at its next poll");
                }
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("error: {why}");
                ExitCode::from(1)
            }
        };
    }
    let target = RenewTarget {
        names: args.names,
        all: args.all,
        namespace: (!args.all_namespaces).then_some(args.namespace),
        selector: args.selector,
    };
    let result = as_user(args.kubeconfig.as_deref(), |client| async {
        renew(client, &target).await.map_err(anyhow::Error::msg)
    });
    match result {
        Ok(renewed) => {
            if renewed.is_empty() {
                eprintln!("no Certificate matched");
            }
            for r in renewed {
                match r {
                    Renewed::Triggered(id) => {
                        println!("Manually triggered issuance of Certificate {id}")
                    }
                    Renewed::AlreadyIssuing(id) => {
                        println!("Certificate {id} is already being issued; left alone")
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs `work` on a runtime of its own with a client as the user: the
/// shape of every command that reads or writes the cluster for a person.
fn as_user<T, Fut>(
    kubeconfig: Option<&std::path::Path>,
    work: impl FnOnce(kube::Client) -> Fut,
) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let runtime = certweave::runtime::multi_thread()?;
    runtime.block_on(async { work(user_client(kubeconfig).await?).await })
}

/// A report as text for a terminal, or as JSON.
fn print_report<R: serde::Serialize>(output: OutputFormat, report: &R, text: fn(&R) -> String) {
    match output {
        OutputFormat::Text => print!("{}", text(report)),
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(report).expect("the report serialises")
        ),
    }
}

/// A client as the user: `kubeconfig`, else the usual inference.
async fn user_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    use anyhow::Context;
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("cannot read --kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("cannot find a cluster; give --kubeconfig")?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// The certificate, key, CA and cert-manager annotations of a Secret.
async fn secret_material(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<certweave::inspect::Material> {
    use anyhow::Context;
    use k8s_openapi::api::core::v1::Secret;
    let secret = kube::Api::<Secret>::namespaced(client, namespace)
        .get_opt(name)
        .await
        .with_context(|| format!("cannot read Secret {namespace}/{name}"))?
        .with_context(|| format!("Secret {namespace}/{name} does not exist"))?;
    let data = secret.data.unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    let crt =
        text("tls.crt").with_context(|| format!("Secret {namespace}/{name} has no tls.crt"))?;
    let chain = certweave::pki::parse_pem_chain(&crt)
        .map_err(|e| anyhow::anyhow!("tls.crt of Secret {namespace}/{name}: {e}"))?;
    Ok(certweave::inspect::Material {
        chain,
        key_pem: text("tls.key"),
        ca_pem: text("ca.crt"),
        annotations: secret
            .metadata
            .annotations
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k.starts_with("cert-manager.io/"))
            .collect(),
    })
}

fn run_issue(args: IssueArgs) -> ExitCode {
    let runtime = match certweave::runtime::multi_thread() {
        Ok(runtime) => runtime,
        Err(e) => return exit_runtime(Err(e.into())),
    };
    let out = args.out.clone();
    let options = match runtime.block_on(args.into_flags().into_options()) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let names = options.request.describe_names();
    eprintln!("issuing a certificate for {names}");
    match runtime.block_on(certweave::issue::run(options)) {
        Ok(issued) => {
            let not_after = time::OffsetDateTime::from(issued.leaf.not_after);
            eprintln!(
                "wrote {} (serial {}, valid until {not_after})",
                issued
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                issued.leaf.serial_hex,
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: issuing for {names} failed; nothing was written to {}",
                out.display()
            );
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
