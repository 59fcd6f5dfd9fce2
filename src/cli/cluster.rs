//! The commands a person runs against a cluster (`status`, `renew`,
//! `check api`), and the client they all use: the user's own credentials.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{print_report, OutputFormat};

#[derive(Args)]
pub struct StatusArgs {
    #[command(subcommand)]
    command: Option<StatusCommand>,
    /// The directory of `certweave local`.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum StatusCommand {
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
pub struct StatusCertificateArgs {
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

pub fn status(args: StatusArgs) -> ExitCode {
    match args {
        StatusArgs {
            command: Some(StatusCommand::Certificate(args)),
            ..
        } => status_certificate(args),
        StatusArgs {
            dir: Some(dir),
            command: None,
        } => status_dir(&dir),
        _ => {
            eprintln!("error: give `certificate NAME` or --dir DIR (see certweave status --help)");
            ExitCode::from(2)
        }
    }
}

fn status_certificate(args: StatusCertificateArgs) -> ExitCode {
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

fn status_dir(dir: &std::path::Path) -> ExitCode {
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

#[derive(Subcommand)]
pub enum CheckCommand {
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
pub struct CheckApiArgs {
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

pub fn check_api(args: CheckApiArgs) -> ExitCode {
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

#[derive(Args)]
pub struct RenewArgs {
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

pub fn renew(args: RenewArgs) -> ExitCode {
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
pub fn as_user<T, Fut>(
    kubeconfig: Option<&std::path::Path>,
    work: impl FnOnce(kube::Client) -> Fut,
) -> anyhow::Result<T>
where
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let runtime = certweave::runtime::multi_thread()?;
    runtime.block_on(async { work(user_client(kubeconfig).await?).await })
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
