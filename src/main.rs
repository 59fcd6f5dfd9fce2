//! The `certweave` command line: the commands, their flags and `--help`
//! (clap), and the dispatch. Each command's flags and the step from flags
//! to a library call, output and exit code live in `cli`.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod cli;

use cli::{cluster, inject, inspect, issue, serve};

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
    Controller(serve::ControllerArgs),
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
    Webhook(serve::WebhookArgs),
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
    Inject(inject::InjectArgs),
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
    Inspect(inspect::InspectArgs),
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
    Renew(cluster::RenewArgs),
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
    Status(cluster::StatusArgs),
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
    Check(cluster::CheckCommand),
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
    Local(serve::LocalArgs),
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
    Proxy(serve::ProxyArgs),
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
    /// default 0.0.0.0:80 when DNS-01 is not used) or over DNS-01
    /// (--dns01-provider route53, cloudflare, acmedns or rfc2136);
    /// wildcards need DNS-01. DNS-01 secrets come from the environment or
    /// files, never from the command line.
    ///
    /// Examples:
    ///   certweave issue --dns-name example.com --dns-name www.example.com \
    ///     --acme-directory https://acme-v02.api.letsencrypt.org/directory \
    ///     --email ops@example.com --account-key /var/lib/certweave/account.key \
    ///     --out /etc/tls/example
    ///   AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... certweave issue \
    ///     --dns-name example.com --dns-name '*.example.com' \
    ///     --acme-directory https://acme-v02.api.letsencrypt.org/directory \
    ///     --account-key account.key --out ./tls \
    ///     --dns01-provider route53 --route53-hosted-zone-id Z0123456789ABC
    ///   CLOUDFLARE_API_TOKEN=... certweave issue --dns-name '*.example.com' \
    ///     --acme-directory https://acme-v02.api.letsencrypt.org/directory \
    ///     --account-key account.key --out ./tls --dns01-provider cloudflare
    ///   certweave issue --dns-name '*.example.com' \
    ///     --acme-directory https://acme-v02.api.letsencrypt.org/directory \
    ///     --account-key account.key --out ./tls --dns01-provider acmedns \
    ///     --acme-dns-host https://auth.acme-dns.io --acme-dns-account-file acmedns.json
    ///   CERTWEAVE_TSIG_SECRET=... certweave issue --dns-name '*.example.com' \
    ///     --acme-directory https://acme-v02.api.letsencrypt.org/directory \
    ///     --account-key account.key --out ./tls \
    ///     --dns01-rfc2136 ns1.example.com --tsig-key-name certweave
    ///   certweave issue --issuer ca --ca-cert ca.crt --ca-key ca.key \
    ///     --dns-name api.internal --out ./api
    #[command(verbatim_doc_comment)]
    Issue(issue::IssueArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Controller(args) => serve::controller(args),
        Command::Webhook(args) => serve::webhook(args),
        Command::Inject(args) => inject::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Renew(args) => cluster::renew(args),
        Command::Check(cluster::CheckCommand::Api(args)) => cluster::check_api(args),
        Command::Status(args) => cluster::status(args),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "certweave", &mut script);
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(&script);
            ExitCode::SUCCESS
        }
        Command::Local(args) => serve::local(args),
        Command::Crds => {
            print!("{}", certweave::api::crds_yaml());
            ExitCode::SUCCESS
        }
        Command::Proxy(args) => serve::proxy(args),
        Command::Issue(args) => issue::run(args),
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
