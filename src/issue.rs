//! `certweave issue`: one certificate, issued once, written to a directory —
//! what lego and certbot do, with the engine the controller uses.
//!
//! The files (`tls.crt`, `tls.key`, `ca.crt`) are written only after the
//! issuer checked the chain against the key and the requested names, and
//! each atomically; when anything fails, nothing is written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::issuers::acme::dns01::{Rfc2136Config, Rfc2136Solver};
use crate::issuers::acme::{AcmeConfig, AcmeIssuer, FileKeyStore, Http01Solver, Solvers};
use crate::issuers::ca::CaIssuer;
use crate::issuers::selfsigned::SelfSignedIssuer;
use crate::model::{Bundle, CertificateRequest, IssueError, Issuer, RequestOrigin};
use crate::pki::{self, CertInfo, PrivateKey};
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
    /// The RFC 2136 server for DNS-01, if DNS-01 is used.
    pub dns01: Option<Rfc2136Config>,
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
                error: IssueError::Config(_) | IssueError::Pki(_),
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
        IssuerChoice::SelfSigned => SelfSignedIssuer
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
        Some(config) => {
            let solver = Rfc2136Solver::new(config).map_err(|e| explain(e, None))?;
            Some(Arc::new(solver) as Arc<dyn crate::issuers::acme::DnsSolver>)
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
        IssueError::Transient(_) => "\nhint: this may pass on its own; try again".into(),
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

/// `--dns01-rfc2136 HOST[:PORT]` (port 53 by default) to one socket
/// address; `Err` is a usage error naming the flag.
pub async fn resolve_dns_server(server: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = server.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = server.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    let with_port = if server
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        server.to_owned()
    } else {
        format!("{server}:53")
    };
    let mut addresses = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| format!("--dns01-rfc2136 {server}: cannot resolve: {e}"))?;
    addresses
        .next()
        .ok_or_else(|| format!("--dns01-rfc2136 {server}: the name has no address"))
}
