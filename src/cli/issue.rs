//! `certweave issue`: one certificate to a directory, like lego or certbot.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use certweave::issue::{Dns01Flags, Dns01Provider, IssueFlags, IssueWith};
use certweave::issuers::acme::dns01::TsigAlgorithm;
use certweave::pki::KeyAlgorithm;

use super::dns01::Dns01Args;
use super::exit_runtime;

#[derive(Args)]
pub struct IssueArgs {
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
    /// Validate over DNS-01 through this provider: it publishes the
    /// _acme-challenge TXT records (wildcards need DNS-01). Secrets come
    /// from the environment or files, never from the command line; see
    /// each provider's flags below. Example: --dns01-provider cloudflare
    #[arg(long, value_enum, value_name = "PROVIDER")]
    dns01_provider: Option<Dns01Provider>,
    /// DNS server (HOST[:PORT], default port 53) that accepts RFC 2136
    /// updates for the names' zones: enables DNS-01 (--dns01-provider
    /// rfc2136). Example: CERTWEAVE_TSIG_SECRET=... certweave issue ...
    /// --dns01-rfc2136 ns1.example.com --tsig-key-name certweave
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
    #[command(flatten)]
    hosted_dns01: Box<HostedDns01Args>,
    #[command(flatten)]
    dns01_checks: Dns01Args,
    /// Put the TXT record where a CNAME at `_acme-challenge.<name>` leads
    /// (the challenge delegated to another zone), as an Issuer's
    /// `cnameStrategy: Follow`. Without it such a CNAME is an error that
    /// says to add this flag.
    #[arg(long)]
    dns01_follow_cnames: bool,
    /// CA certificate (PEM) for --issuer ca.
    #[arg(long, value_name = "FILE", required_if_eq("issuer", "ca"))]
    ca_cert: Option<PathBuf>,
    /// CA private key (PEM) for --issuer ca.
    #[arg(long, value_name = "FILE", required_if_eq("issuer", "ca"))]
    ca_key: Option<PathBuf>,
}

/// The flags of the hosted DNS-01 providers (`--dns01-provider route53,
/// cloudflare, acmedns`); their secrets are read from the environment or
/// files, never from argv. Boxed in [`IssueArgs`]: the flags are many and
/// the command enum stays small.
#[derive(Args)]
struct HostedDns01Args {
    /// Route53: AWS region, for STS (--route53-role) and the partition
    /// (aws-cn, aws-us-gov); Route53 itself is global. Default:
    /// AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1. Credentials
    /// are the environment's: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    /// (with AWS_SESSION_TOKEN), else AWS_WEB_IDENTITY_TOKEN_FILE with
    /// AWS_ROLE_ARN; AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_ROUTE_53,
    /// AWS_ENDPOINT_URL_STS) for a Route53-compatible API. Example:
    /// AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... certweave issue ...
    /// --dns01-provider route53 --route53-region eu-west-1
    #[arg(long, value_name = "REGION")]
    route53_region: Option<String>,
    /// Route53: the hosted zone to write to (Z0123..., with or without
    /// /hostedzone/); default: the deepest public zone holding the name,
    /// which needs route53:ListHostedZonesByName.
    #[arg(long, value_name = "ID")]
    route53_hosted_zone_id: Option<String>,
    /// Route53: IAM role to assume with STS before changing records.
    /// Example: --route53-role arn:aws:iam::123456789012:role/dns01
    #[arg(long, value_name = "ARN")]
    route53_role: Option<String>,
    /// Cloudflare: file holding an API token (Zone:Read and DNS:Edit on
    /// the zones), instead of the CLOUDFLARE_API_TOKEN environment
    /// variable; a trailing newline is ignored. Examples:
    /// CLOUDFLARE_API_TOKEN=... certweave issue ... --dns01-provider
    /// cloudflare, or --dns01-provider cloudflare
    /// --cloudflare-api-token-file /run/secrets/cloudflare-token
    #[arg(long, value_name = "FILE")]
    cloudflare_api_token_file: Option<PathBuf>,
    /// Cloudflare: the account's email, for the global API key
    /// (CLOUDFLARE_API_KEY or --cloudflare-api-key-file); not used with a
    /// token.
    #[arg(long, value_name = "EMAIL")]
    cloudflare_email: Option<String>,
    /// Cloudflare: file holding the global API key, instead of the
    /// CLOUDFLARE_API_KEY environment variable (with --cloudflare-email).
    /// A token is better: it can be limited to the zones.
    #[arg(long, value_name = "FILE")]
    cloudflare_api_key_file: Option<PathBuf>,
    /// Cloudflare: API base URL, for a proxy or a test server. Default:
    /// https://api.cloudflare.com/client/v4
    #[arg(long, value_name = "URL")]
    cloudflare_api_url: Option<String>,
    /// acme-dns: the server's API URL. Example: --dns01-provider acmedns
    /// --acme-dns-host https://auth.acme-dns.io --acme-dns-account-file
    /// acmedns.json
    #[arg(long, value_name = "URL")]
    acme_dns_host: Option<String>,
    /// acme-dns: JSON file of accounts by domain, as cert-manager's
    /// acmedns.json: {"example.com": what POST /register answered}; each
    /// _acme-challenge.DOMAIN is a CNAME to its account's fulldomain.
    #[arg(long, value_name = "FILE")]
    acme_dns_account_file: Option<PathBuf>,
}

impl IssueArgs {
    /// The flags as the library takes them.
    fn into_flags(self) -> IssueFlags {
        let hosted = *self.hosted_dns01;
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
            dns01: Dns01Flags {
                provider: self.dns01_provider,
                rfc2136: self.dns01_rfc2136,
                tsig_key_name: self.tsig_key_name,
                tsig_secret: self.tsig_secret,
                tsig_algorithm: self.tsig_algorithm,
                tcp: self.dns01_tcp,
                route53_region: hosted.route53_region,
                route53_hosted_zone_id: hosted.route53_hosted_zone_id,
                route53_role: hosted.route53_role,
                cloudflare_api_token_file: hosted.cloudflare_api_token_file,
                cloudflare_email: hosted.cloudflare_email,
                cloudflare_api_key_file: hosted.cloudflare_api_key_file,
                cloudflare_api_url: hosted.cloudflare_api_url,
                acme_dns_host: hosted.acme_dns_host,
                acme_dns_account_file: hosted.acme_dns_account_file,
                checks: self.dns01_checks.checks(),
                follow_cnames: self.dns01_follow_cnames,
            },
            ca_cert: self.ca_cert,
            ca_key: self.ca_key,
        }
    }
}

pub fn run(args: IssueArgs) -> ExitCode {
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
