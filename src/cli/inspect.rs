//! `certweave inspect`: what a certificate file or a TLS Secret holds.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::cluster::as_user;
use super::{print_report, OutputFormat};

#[derive(Args)]
pub struct InspectArgs {
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

pub fn run(args: InspectArgs) -> ExitCode {
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
