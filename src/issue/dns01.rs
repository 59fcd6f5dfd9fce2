//! `certweave issue`'s DNS-01 flags: which provider (`--dns01-provider`, or
//! `--dns01-rfc2136 SERVER` as before it existed), its settings from flags,
//! and its secrets from the environment or files.
//!
//! Secrets never come from argv, where `ps` and shell history show them;
//! files are read with their trailing newline dropped, and no error quotes
//! a secret. The flags are checked against each other here, so a mistake
//! is a usage error naming the flag and the fix; the provider itself is
//! built from the result by [`DnsProvider`], as an Issuer's is.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::issuers::acme::dns::acme_dns::{
    account_for, parse_accounts, AcmeDnsConfig, MAX_ACCOUNTS_JSON_BYTES,
};
use crate::issuers::acme::dns::check::{DnsChecks, DEFAULT_PROPAGATION_TIMEOUT};
use crate::issuers::acme::dns::cloudflare::{CloudflareAuth, CloudflareConfig};
use crate::issuers::acme::dns::provider::DnsProvider;
use crate::issuers::acme::dns::route53::{
    check_hosted_zone_id, check_role_arn, Route53Config, Route53Credentials,
};
use crate::issuers::acme::dns01::{Rfc2136Config, TsigAlgorithm};
use crate::issuers::acme::{DnsSolver, TxtRecord};
use crate::model::IssueError;

/// The environment variable a Cloudflare API token is read from.
pub const CLOUDFLARE_API_TOKEN_ENV: &str = "CLOUDFLARE_API_TOKEN";
/// The environment variable Cloudflare's global API key is read from.
pub const CLOUDFLARE_API_KEY_ENV: &str = "CLOUDFLARE_API_KEY";

/// The largest token or key file read: a credential is far smaller, and a
/// wrong path (a log, a device) should fail rather than fill memory.
const MAX_SECRET_FILE_BYTES: usize = 64 * 1024;

/// Looks up an environment variable; the process's, or a test's.
pub type EnvLookup<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// Who publishes the DNS-01 records (`--dns01-provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dns01Provider {
    /// AWS Route53, with the AWS credentials of the environment.
    Route53,
    /// Cloudflare, with an API token (or the global API key and email).
    Cloudflare,
    /// An acme-dns server, with the accounts it registered.
    #[value(name = "acmedns")]
    AcmeDns,
    /// RFC 2136 dynamic updates signed with TSIG (--dns01-rfc2136).
    Rfc2136,
}

impl Dns01Provider {
    /// As given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dns01Provider::Route53 => "route53",
            Dns01Provider::Cloudflare => "cloudflare",
            Dns01Provider::AcmeDns => "acmedns",
            Dns01Provider::Rfc2136 => "rfc2136",
        }
    }
}

impl std::fmt::Display for Dns01Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The DNS-01 flags of `certweave issue` as parsed.
#[derive(Debug, Default)]
pub struct Dns01Flags {
    pub provider: Option<Dns01Provider>,
    /// `--dns01-rfc2136 SERVER`: implies `--dns01-provider rfc2136`.
    pub rfc2136: Option<String>,
    pub tsig_key_name: Option<String>,
    /// `CERTWEAVE_TSIG_SECRET` (or the older `--tsig-secret`).
    pub tsig_secret: Option<String>,
    pub tsig_algorithm: TsigAlgorithm,
    pub tcp: bool,
    pub route53_region: Option<String>,
    pub route53_hosted_zone_id: Option<String>,
    pub route53_role: Option<String>,
    pub cloudflare_api_token_file: Option<PathBuf>,
    pub cloudflare_email: Option<String>,
    pub cloudflare_api_key_file: Option<PathBuf>,
    pub cloudflare_api_url: Option<String>,
    pub acme_dns_host: Option<String>,
    pub acme_dns_account_file: Option<PathBuf>,
    /// `--dns01-recursive-nameservers[-only]`,
    /// `--dns01-propagation-timeout`.
    pub checks: DnsChecks,
    /// `--dns01-follow-cnames`: an Issuer's `cnameStrategy: Follow`.
    pub follow_cnames: bool,
}

/// DNS-01 as `certweave issue` solves it.
#[derive(Debug)]
pub struct Dns01Choice {
    pub provider: DnsProvider,
    pub checks: DnsChecks,
    /// Whether a CNAME at `_acme-challenge` is followed
    /// (`--dns01-follow-cnames`).
    pub follow_cnames: bool,
    /// Which `--dns01-provider`, to name in errors.
    pub named: Dns01Provider,
}

impl Dns01Choice {
    /// The solver, self-checked and following CNAMEs as an Issuer's would
    /// be. `Err` is the provider's configuration error in its own words,
    /// for the caller to present.
    pub fn solver(self) -> Result<Arc<dyn DnsSolver>, IssueError> {
        self.provider
            .checked(Arc::new(self.checks), self.follow_cnames)
    }
}

impl Dns01Flags {
    /// Each provider's own flags: given or not, and whose.
    fn provider_flags(&self) -> [(&'static str, bool, Dns01Provider); 12] {
        use Dns01Provider::*;
        [
            ("--dns01-rfc2136", self.rfc2136.is_some(), Rfc2136),
            ("--tsig-key-name", self.tsig_key_name.is_some(), Rfc2136),
            ("--dns01-tcp", self.tcp, Rfc2136),
            ("--route53-region", self.route53_region.is_some(), Route53),
            (
                "--route53-hosted-zone-id",
                self.route53_hosted_zone_id.is_some(),
                Route53,
            ),
            ("--route53-role", self.route53_role.is_some(), Route53),
            (
                "--cloudflare-api-token-file",
                self.cloudflare_api_token_file.is_some(),
                Cloudflare,
            ),
            (
                "--cloudflare-email",
                self.cloudflare_email.is_some(),
                Cloudflare,
            ),
            (
                "--cloudflare-api-key-file",
                self.cloudflare_api_key_file.is_some(),
                Cloudflare,
            ),
            (
                "--cloudflare-api-url",
                self.cloudflare_api_url.is_some(),
                Cloudflare,
            ),
            ("--acme-dns-host", self.acme_dns_host.is_some(), AcmeDns),
            (
                "--acme-dns-account-file",
                self.acme_dns_account_file.is_some(),
                AcmeDns,
            ),
        ]
    }

    /// The self-check flags given (a timeout of exactly the default cannot
    /// be told from none).
    fn check_flags(&self) -> Option<&'static str> {
        if !self.checks.recursive_nameservers.is_empty() {
            Some("--dns01-recursive-nameservers")
        } else if self.checks.recursive_only {
            Some("--dns01-recursive-nameservers-only")
        } else if self.follow_cnames {
            Some("--dns01-follow-cnames")
        } else if self.checks.propagation_timeout != DEFAULT_PROPAGATION_TIMEOUT {
            Some("--dns01-propagation-timeout")
        } else {
            None
        }
    }

    /// The first DNS-01 flag given, if any: they all apply to ACME only.
    /// Secrets in the environment do not count: they may be there for
    /// other tools.
    pub fn first_given(&self) -> Option<&'static str> {
        if self.provider.is_some() {
            return Some("--dns01-provider");
        }
        self.provider_flags()
            .into_iter()
            .find_map(|(flag, given, _)| given.then_some(flag))
            .or_else(|| self.check_flags())
    }

    /// DNS-01 as the flags describe it, `None` when no provider is chosen.
    /// `dns_names` are the names to issue for (each needs an acme-dns
    /// account); `env` looks up environment variables. `Err` is a usage
    /// error naming the flag or variable and the fix.
    pub async fn choose(
        self,
        dns_names: &[String],
        env: EnvLookup<'_>,
    ) -> Result<Option<Dns01Choice>, String> {
        let chosen = match (self.provider, &self.rfc2136) {
            (Some(Dns01Provider::Rfc2136), None) => {
                return Err(
                    "--dns01-provider rfc2136 needs --dns01-rfc2136 SERVER (HOST[:PORT] \
                     of the server that takes RFC 2136 updates for the names' zones), with \
                     --tsig-key-name NAME and the secret in CERTWEAVE_TSIG_SECRET"
                        .into(),
                )
            }
            (Some(provider), _) => Some(provider),
            (None, Some(_)) => Some(Dns01Provider::Rfc2136),
            (None, None) => None,
        };
        for (flag, given, owner) in self.provider_flags() {
            if given && Some(owner) != chosen {
                return Err(match chosen {
                    Some(other) => format!(
                        "{flag} only applies to --dns01-provider {owner}, not {other}; drop it, \
                         or use --dns01-provider {owner}"
                    ),
                    None => format!(
                        "{flag} only applies to --dns01-provider {owner}; add \
                         --dns01-provider {owner}"
                    ),
                });
            }
        }
        let Some(named) = chosen else {
            if let Some(flag) = self.check_flags() {
                return Err(format!(
                    "{flag} only applies to DNS-01; add --dns01-provider \
                     (route53, cloudflare, acmedns or rfc2136), or drop it"
                ));
            }
            return Ok(None);
        };
        let checks = self.checks.clone();
        let follow_cnames = self.follow_cnames;
        let provider = match named {
            Dns01Provider::Rfc2136 => self.rfc2136_provider().await?,
            Dns01Provider::Route53 => self.route53_provider()?,
            Dns01Provider::Cloudflare => self.cloudflare_provider(env)?,
            Dns01Provider::AcmeDns => self.acme_dns_provider(dns_names)?,
        };
        Ok(Some(Dns01Choice {
            provider,
            checks,
            follow_cnames,
            named,
        }))
    }

    async fn rfc2136_provider(self) -> Result<DnsProvider, String> {
        let server = self.rfc2136.unwrap_or_default();
        Ok(DnsProvider::Rfc2136(Rfc2136Config {
            nameserver: resolve_dns_server(&server).await?,
            tsig_key_name: self.tsig_key_name.unwrap_or_default(),
            tsig_secret: self
                .tsig_secret
                .ok_or("--dns01-rfc2136 needs --tsig-secret (or CERTWEAVE_TSIG_SECRET)")?,
            tsig_algorithm: self.tsig_algorithm,
            tcp: self.tcp,
        }))
    }

    /// Credentials are the environment's ([`Route53Credentials::Ambient`]),
    /// checked when the solver is made; an empty region is
    /// [`Route53Config::new`]'s to default.
    fn route53_provider(self) -> Result<DnsProvider, String> {
        let region = self.route53_region.unwrap_or_default();
        let mut config = Route53Config::new(&region, Route53Credentials::Ambient);
        if let Some(id) = &self.route53_hosted_zone_id {
            config.hosted_zone_id =
                check_hosted_zone_id(id, "--route53-hosted-zone-id").map_err(problem)?;
        }
        if let Some(role) = &self.route53_role {
            let role = role.trim();
            check_role_arn(role, "--route53-role").map_err(problem)?;
            config.role = Some(role.to_owned());
        }
        Ok(DnsProvider::Route53(config))
    }

    /// Exactly one of an API token or the global API key with the email.
    fn cloudflare_provider(self, env: EnvLookup<'_>) -> Result<DnsProvider, String> {
        let token = secret(
            env,
            CLOUDFLARE_API_TOKEN_ENV,
            self.cloudflare_api_token_file.as_deref(),
            "--cloudflare-api-token-file",
            "the Cloudflare API token",
        )?;
        let key = secret(
            env,
            CLOUDFLARE_API_KEY_ENV,
            self.cloudflare_api_key_file.as_deref(),
            "--cloudflare-api-key-file",
            "the Cloudflare global API key",
        )?;
        let email = self
            .cloudflare_email
            .map(|e| e.trim().to_owned())
            .filter(|e| !e.is_empty());
        let auth = match (token, key, email) {
            (Some(token), None, None) => CloudflareAuth::ApiToken(token.value),
            (None, Some(key), Some(email)) => CloudflareAuth::ApiKey {
                email,
                key: key.value,
            },
            (Some(token), Some(key), _) => {
                return Err(format!(
                    "both an API token ({}) and a global API key ({}) are given for Cloudflare; \
                     use one: the token (recommended), or the key with --cloudflare-email",
                    token.from, key.from
                ))
            }
            (Some(token), None, Some(_)) => {
                return Err(format!(
                    "--cloudflare-email goes with the global API key, but an API token ({}) is \
                     given; drop --cloudflare-email to use the token, or use the key \
                     ({CLOUDFLARE_API_KEY_ENV} or --cloudflare-api-key-file) instead of the token",
                    token.from
                ))
            }
            (None, Some(key), None) => {
                return Err(format!(
                    "the Cloudflare global API key ({}) needs the account's email: add \
                     --cloudflare-email EMAIL, or use an API token ({CLOUDFLARE_API_TOKEN_ENV} \
                     or --cloudflare-api-token-file) instead",
                    key.from
                ))
            }
            (None, None, Some(_)) => {
                return Err(format!(
                    "--cloudflare-email needs the global API key: set {CLOUDFLARE_API_KEY_ENV} \
                     or give --cloudflare-api-key-file FILE (or use an API token, \
                     {CLOUDFLARE_API_TOKEN_ENV} or --cloudflare-api-token-file, without \
                     --cloudflare-email)"
                ))
            }
            (None, None, None) => {
                return Err(format!(
                    "--dns01-provider cloudflare needs credentials: an API token with Zone:Read \
                     and DNS:Edit (recommended) in {CLOUDFLARE_API_TOKEN_ENV} or \
                     --cloudflare-api-token-file FILE, or the global API key in \
                     {CLOUDFLARE_API_KEY_ENV} or --cloudflare-api-key-file FILE with \
                     --cloudflare-email EMAIL"
                ))
            }
        };
        let mut config = CloudflareConfig::new(auth);
        if let Some(url) = self.cloudflare_api_url {
            config.api_url = url;
        }
        Ok(DnsProvider::Cloudflare(config))
    }

    /// The account file is read and checked now: every name needs an
    /// account, which is better said before the CA is asked for anything.
    fn acme_dns_provider(self, dns_names: &[String]) -> Result<DnsProvider, String> {
        let host = self.acme_dns_host.ok_or(
            "--dns01-provider acmedns needs --acme-dns-host URL: the acme-dns server's API, \
             e.g. https://auth.acme-dns.io",
        )?;
        let file = self.acme_dns_account_file.ok_or(
            "--dns01-provider acmedns needs --acme-dns-account-file FILE: JSON with what \
             acme-dns's POST /register answered under each domain's name, as \
             {\"example.com\": {\"username\": …, \"password\": …, \"fulldomain\": …, \
             \"subdomain\": …}}",
        )?;
        let shown = file.display();
        let json = read_limited(&file, MAX_ACCOUNTS_JSON_BYTES, "--acme-dns-account-file")?;
        let accounts = parse_accounts(&json)
            .map_err(|e| format!("--acme-dns-account-file {shown}: {}", problem(e)))?;
        for name in dns_names {
            let domain = TxtRecord::new(name, "").domain;
            if account_for(&accounts, &domain).is_none() {
                return Err(format!(
                    "--acme-dns-account-file {shown} has no account for {domain}: register one \
                     with the acme-dns server (POST /register), add the answer under the key \
                     {domain:?} (also for *.{domain}), and point _acme-challenge.{domain} at its \
                     fulldomain with a CNAME"
                ));
            }
        }
        Ok(DnsProvider::AcmeDns(AcmeDnsConfig { host, accounts }))
    }
}

/// A secret and where it came from (an environment variable, or a flag and
/// its file), to name in errors instead of the value.
struct Secret {
    value: String,
    from: String,
}

/// The secret in environment variable `var` or in the file of `flag`;
/// both is ambiguous, an empty variable is unset, an empty file a mistake.
fn secret(
    env: EnvLookup<'_>,
    var: &str,
    file: Option<&Path>,
    flag: &str,
    what: &str,
) -> Result<Option<Secret>, String> {
    let from_env = env(var).filter(|v| !v.trim().is_empty());
    match (from_env, file) {
        (Some(_), Some(_)) => Err(format!(
            "{what} is given twice, in {var} and by {flag}; unset {var} or drop {flag}"
        )),
        (Some(value), None) => Ok(Some(Secret {
            value: value.trim().to_owned(),
            from: var.to_owned(),
        })),
        (None, Some(path)) => {
            let bytes = read_limited(path, MAX_SECRET_FILE_BYTES, flag)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| format!("{flag} {}: the file is not UTF-8 text", path.display()))?;
            let value = text.trim_end_matches(['\n', '\r']);
            if value.trim().is_empty() {
                return Err(format!(
                    "{flag} {} is empty; put {what} in it",
                    path.display()
                ));
            }
            Ok(Some(Secret {
                value: value.to_owned(),
                from: format!("{flag} {}", path.display()),
            }))
        }
        (None, None) => Ok(None),
    }
}

/// The file at `path`, refused when over `limit` bytes; errors name `flag`.
fn read_limited(path: &Path, limit: usize, flag: &str) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read {flag} {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() > limit {
        return Err(format!(
            "{flag} {} is larger than {limit} bytes; is it the right file?",
            path.display()
        ));
    }
    Ok(bytes)
}

/// A configuration error's text without the "issuer misconfigured" its
/// `Display` adds, as the flag it came from is named instead.
fn problem(error: IssueError) -> String {
    match error {
        IssueError::Config(problem) => problem,
        other => other.to_string(),
    }
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

#[cfg(test)]
mod tests;
