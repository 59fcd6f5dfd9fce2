//! `certweave issue`: one certificate, issued once, written to a directory —
//! what lego and certbot do, with the engine the controller uses.
//!
//! The files (`tls.crt`, `tls.key`, `ca.crt`) are written only after the
//! issuer checked the chain against the key and the requested names, and
//! each atomically; when anything fails, nothing is written.

mod dns01;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use dns01::{
    resolve_dns_server, Dns01Choice, Dns01Flags, Dns01Provider, EnvLookup, CLOUDFLARE_API_KEY_ENV,
    CLOUDFLARE_API_TOKEN_ENV,
};

use crate::issuers::acme::{
    AcmeConfig, AcmeIssuer, ExternalAccountBinding, FileKeyStore, Http01Solver, Solvers, Trust,
};
use crate::issuers::ca::CaIssuer;
use crate::issuers::selfsigned::SelfSignedIssuer;
use crate::model::{Bundle, CertificateRequest, IssueError, Issuer, RequestOrigin};
use crate::pki::{self, CertInfo, KeyAlgorithm, PrivateKey};
use crate::store::files;

/// Which issuer signs, with what it needs.
#[derive(Debug)]
pub enum IssuerChoice {
    SelfSigned,
    Ca {
        cert_file: PathBuf,
        key_file: PathBuf,
    },
    Acme(Box<AcmeChoice>),
}

/// The ACME side of `certweave issue`.
#[derive(Debug)]
pub struct AcmeChoice {
    pub config: AcmeConfig,
    pub account_key_file: PathBuf,
    /// Where the built-in HTTP-01 server listens, if HTTP-01 is used.
    pub http01_addr: Option<SocketAddr>,
    /// The DNS-01 provider and self-check, if DNS-01 is used.
    pub dns01: Option<Dns01Choice>,
}

/// Which issuer signs a one-off certificate (`--issuer`). Not
/// [`crate::api::IssuerKind`], the kind of a cert-manager issuer reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IssueWith {
    /// An ACME CA (Let's Encrypt, ZeroSSL, step-ca, Pebble…).
    Acme,
    /// Signed by the certificate's own key.
    Selfsigned,
    /// Signed by a CA certificate and key from files (--ca-cert, --ca-key).
    Ca,
}

/// `certweave issue`'s flags as parsed, before they are checked against
/// each other and turned into [`IssueOptions`] by [`IssueFlags::into_options`].
#[derive(Debug)]
pub struct IssueFlags {
    pub dns_names: Vec<String>,
    pub out: PathBuf,
    pub key_algorithm: KeyAlgorithm,
    pub issuer: IssueWith,
    pub acme_directory: Option<String>,
    pub acme_ca_bundle: Option<PathBuf>,
    pub acme_skip_tls_verify: bool,
    pub email: Option<String>,
    pub account_key: Option<PathBuf>,
    pub eab_kid: Option<String>,
    pub eab_hmac_key: Option<String>,
    pub preferred_chain: Option<String>,
    pub acme_profile: Option<String>,
    pub http01_addr: Option<SocketAddr>,
    pub dns01: Dns01Flags,
    pub ca_cert: Option<PathBuf>,
    pub ca_key: Option<PathBuf>,
}

/// What to issue and where to put it.
#[derive(Debug)]
pub struct IssueOptions {
    pub request: CertificateRequest,
    pub issuer: IssuerChoice,
    pub out_dir: PathBuf,
}

/// What was written.
#[derive(Debug)]
pub struct Issued {
    pub leaf: CertInfo,
    pub files: Vec<PathBuf>,
}

/// Why `certweave issue` failed, sorted by exit code: bad input is 2,
/// everything else 1.
#[derive(Debug, thiserror::Error)]
pub enum IssueCommandError {
    /// A file or flag is unusable; fixing the command line fixes it.
    #[error("{0}")]
    Input(String),
    #[error("{error}{hint}")]
    Issue { error: IssueError, hint: String },
    #[error("{0}")]
    Runtime(String),
}

impl IssueCommandError {
    /// 2 for bad usage or input, 1 for failures at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            IssueCommandError::Input(_)
            | IssueCommandError::Issue {
                error: IssueError::Config(_) | IssueError::ConfigCause { .. } | IssueError::Pki(_),
                ..
            } => 2,
            _ => 1,
        }
    }
}

/// Issues one certificate into `options.out_dir`.
pub async fn run(options: IssueOptions) -> Result<Issued, IssueCommandError> {
    let IssueOptions {
        request,
        issuer,
        out_dir,
    } = options;
    let key = PrivateKey::generate(request.key_algorithm)
        .map_err(|e| IssueCommandError::Runtime(e.to_string()))?;
    let bundle = match issuer {
        IssuerChoice::SelfSigned => SelfSignedIssuer::default()
            .issue(&request, &key, &RequestOrigin::default())
            .await
            .map_err(|e| explain(e, None))?,
        IssuerChoice::Ca {
            cert_file,
            key_file,
        } => {
            let cert = read(&cert_file, "--ca-cert")?;
            let ca_key = read(&key_file, "--ca-key")?;
            let ca = CaIssuer::from_pem(&cert, &ca_key).map_err(|e| {
                IssueCommandError::Input(format!(
                    "{e} (--ca-cert {}, --ca-key {})",
                    cert_file.display(),
                    key_file.display()
                ))
            })?;
            ca.issue(&request, &key, &RequestOrigin::default())
                .await
                .map_err(|e| explain(e, None))?
        }
        IssuerChoice::Acme(acme) => issue_acme(*acme, &request, &key).await?,
    };
    write(&out_dir, &bundle)
}

async fn issue_acme(
    acme: AcmeChoice,
    request: &CertificateRequest,
    key: &PrivateKey,
) -> Result<Bundle, IssueCommandError> {
    let dns01 = match acme.dns01 {
        Some(choice) => {
            let named = choice.named;
            Some(choice.solver().map_err(|e| match e {
                // The provider's settings are the flags': a usage error.
                // RFC 2136's errors name their flags already, as before
                // --dns01-provider existed.
                IssueError::Config(problem) if named != Dns01Provider::Rfc2136 => {
                    IssueCommandError::Input(format!("--dns01-provider {named}: {problem}"))
                }
                e => explain(e, None),
            })?)
        }
        None => None,
    };
    let http01 = acme.http01_addr.map(|_| Http01Solver::new());
    let _server = match (&http01, acme.http01_addr) {
        (Some(solver), Some(addr)) => Some(solver.serve(addr).await.map_err(|e| {
            IssueCommandError::Runtime(format!(
                "cannot listen on {addr} for HTTP-01 ({e}); pick another --http01-addr, \
                 or run with the right to bind that port"
            ))
        })?),
        _ => None,
    };
    let issuer = AcmeIssuer::new(
        acme.config,
        Arc::new(FileKeyStore::new(&acme.account_key_file)),
        Solvers {
            http01: http01.clone(),
            dns01,
            ..Default::default()
        },
    )
    .map_err(|e| explain(e, None))?;
    issuer
        .issue(request, key, &RequestOrigin::default())
        .await
        .map_err(|e| explain(e, acme.http01_addr))
}

fn read(path: &Path, flag: &str) -> Result<String, IssueCommandError> {
    std::fs::read_to_string(path).map_err(|e| {
        IssueCommandError::Input(format!("cannot read {flag} {}: {e}", path.display()))
    })
}

/// Adds what to check next to an issuance failure.
fn explain(error: IssueError, http01_addr: Option<SocketAddr>) -> IssueCommandError {
    let hint = match &error {
        IssueError::ChallengeFailed(_) => match http01_addr {
            Some(addr) => format!(
                "\nhint: the CA could not validate the names above: check that each resolves \
                 to this machine and that the CA reaches http://NAME/.well-known/acme-challenge/ \
                 on the HTTP-01 listener ({addr}); for DNS-01, that the TXT records are served \
                 by the zone's public name servers"
            ),
            None => "\nhint: the CA could not validate the names above: check that the \
                     _acme-challenge TXT records are served by the zone's public name servers"
                .into(),
        },
        IssueError::RateLimited { .. } => {
            "\nhint: the CA's rate limit was hit; wait before trying again".into()
        }
        e if e.is_transient() => "\nhint: this may pass on its own; try again".into(),
        _ => String::new(),
    };
    IssueCommandError::Issue { error, hint }
}

fn write(out_dir: &Path, bundle: &Bundle) -> Result<Issued, IssueCommandError> {
    // Issuers check their bundles; parse the leaf once more for the summary.
    let ders = pki::parse_pem_chain(&bundle.chain_pem)
        .map_err(|e| IssueCommandError::Runtime(e.to_string()))?;
    let leaf_der = ders
        .first()
        .ok_or_else(|| IssueCommandError::Runtime("the issuer returned no certificate".into()))?;
    let leaf =
        CertInfo::parse(leaf_der, 0).map_err(|e| IssueCommandError::Runtime(e.to_string()))?;
    files::write_bundle(out_dir, bundle).map_err(|e| {
        IssueCommandError::Runtime(format!("cannot write to {}: {e}", out_dir.display()))
    })?;
    let mut written = vec![
        out_dir.join(files::CERT_FILE),
        out_dir.join(files::KEY_FILE),
    ];
    if bundle.ca_pem.is_some() {
        written.push(out_dir.join(files::CA_FILE));
    }
    Ok(Issued {
        leaf,
        files: written,
    })
}

impl IssueFlags {
    /// The options to issue with, once the flags are checked against each
    /// other (a flag for another issuer is refused, not ignored); `Err` is a
    /// usage error (exit 2) naming the flag.
    pub async fn into_options(self) -> Result<IssueOptions, String> {
        self.into_options_with_env(&|name| std::env::var(name).ok())
            .await
    }

    /// [`Self::into_options`] with `env` as the environment secrets are
    /// read from.
    pub async fn into_options_with_env(self, env: EnvLookup<'_>) -> Result<IssueOptions, String> {
        let args = self;
        let dns_names = args.dns_names.clone();
        let mut request = CertificateRequest::for_dns_names(args.dns_names);
        request.key_algorithm = args.key_algorithm;
        // A flag for another issuer is a mistake worth pointing out, not
        // something to ignore silently.
        let flags = [
            (
                "--acme-directory",
                args.acme_directory.is_some(),
                IssueWith::Acme,
            ),
            (
                "--acme-ca-bundle",
                args.acme_ca_bundle.is_some(),
                IssueWith::Acme,
            ),
            ("--account-key", args.account_key.is_some(), IssueWith::Acme),
            ("--email", args.email.is_some(), IssueWith::Acme),
            ("--eab-kid", args.eab_kid.is_some(), IssueWith::Acme),
            (
                "--preferred-chain",
                args.preferred_chain.is_some(),
                IssueWith::Acme,
            ),
            (
                "--acme-profile",
                args.acme_profile.is_some(),
                IssueWith::Acme,
            ),
            ("--http01-addr", args.http01_addr.is_some(), IssueWith::Acme),
            (
                args.dns01.first_given().unwrap_or_default(),
                args.dns01.first_given().is_some(),
                IssueWith::Acme,
            ),
            ("--ca-cert", args.ca_cert.is_some(), IssueWith::Ca),
            ("--ca-key", args.ca_key.is_some(), IssueWith::Ca),
        ];
        if let Some((flag, _, for_issuer)) = flags
            .iter()
            .find(|(_, given, for_issuer)| *given && *for_issuer != args.issuer)
        {
            let name = match for_issuer {
                IssueWith::Acme => "acme",
                IssueWith::Ca => "ca",
                IssueWith::Selfsigned => "selfsigned",
            };
            return Err(format!("{flag} only applies to --issuer {name}"));
        }
        let issuer = match args.issuer {
            IssueWith::Selfsigned => IssuerChoice::SelfSigned,
            IssueWith::Ca => IssuerChoice::Ca {
                cert_file: args
                    .ca_cert
                    .ok_or("--issuer ca needs --ca-cert FILE (the CA certificate, PEM)")?,
                key_file: args
                    .ca_key
                    .ok_or("--issuer ca needs --ca-key FILE (the CA private key, PEM)")?,
            },
            IssueWith::Acme => {
                let directory = args.acme_directory.ok_or(
                "--issuer acme needs --acme-directory URL (e.g. https://acme-v02.api.letsencrypt.org/directory)",
            )?;
                let account_key_file = args.account_key.ok_or(
                "--issuer acme needs --account-key FILE: the account key, created there if missing and reused afterwards",
            )?;
                let mut config = AcmeConfig::new(directory);
                config.email = args.email;
                config.preferred_chain = args.preferred_chain;
                config.profile = args.acme_profile;
                // clap refuses --acme-ca-bundle with --acme-skip-tls-verify.
                config.trust = match (args.acme_ca_bundle, args.acme_skip_tls_verify) {
                    (Some(path), _) => {
                        Trust::CaBundle(std::fs::read_to_string(&path).map_err(|e| {
                            format!("cannot read --acme-ca-bundle {}: {e}", path.display())
                        })?)
                    }
                    (None, true) => Trust::InsecureSkipVerify,
                    (None, false) => Trust::PublicRoots,
                };
                if let (Some(kid), Some(key)) = (args.eab_kid, args.eab_hmac_key) {
                    config.external_account_binding = Some(
                        ExternalAccountBinding::new(kid, &key)
                            .map_err(|e| format!("--eab-hmac-key: {e}"))?,
                    );
                }
                let dns01 = args.dns01.choose(&dns_names, env).await?;
                let http01_addr = match (args.http01_addr, &dns01) {
                    (Some(addr), _) => Some(addr),
                    (None, None) => Some(SocketAddr::from(([0, 0, 0, 0], 80))),
                    (None, Some(_)) => None,
                };
                IssuerChoice::Acme(Box::new(AcmeChoice {
                    config,
                    account_key_file,
                    http01_addr,
                    dns01,
                }))
            }
        };
        Ok(IssueOptions {
            request,
            issuer,
            out_dir: args.out,
        })
    }
}
