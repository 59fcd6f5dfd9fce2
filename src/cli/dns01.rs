//! The DNS-01 flags `controller`, `local` and `issue` share, as
//! cert-manager spells them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use certweave::issuers::acme::dns::check::{parse_nameserver, DnsChecks};

/// How DNS-01 records are found and checked before the CA is asked to
/// validate them.
#[derive(Args, Debug, Clone, Default)]
pub struct Dns01Args {
    /// Recursive nameservers (comma separated, IP or IP:PORT) used to find
    /// a record's zone and its authoritative nameservers, to follow
    /// `_acme-challenge` CNAMEs, and to check records: the record must be
    /// visible before the CA is asked to validate. Default: those of
    /// /etc/resolv.conf. RFC 2136 solvers check their own server and use
    /// these only when given. Example: --dns01-recursive-nameservers
    /// 1.1.1.1:53,8.8.8.8:53
    #[arg(
        long,
        value_name = "SERVERS",
        value_delimiter = ',',
        value_parser = parse_nameserver
    )]
    pub dns01_recursive_nameservers: Vec<SocketAddr>,
    /// Check records through the recursive nameservers only, not the
    /// zone's authoritative nameservers (for networks where port 53 on the
    /// internet is unreachable, or split-horizon DNS).
    #[arg(long)]
    pub dns01_recursive_nameservers_only: bool,
    /// Seconds a record may take to become visible before the challenge
    /// fails with the nameservers that still lack it (it is retried with
    /// backoff like any failed issuance).
    #[arg(long, value_name = "SECONDS", default_value_t = 180)]
    pub dns01_propagation_timeout: u64,
}

impl Dns01Args {
    pub fn checks(&self) -> DnsChecks {
        DnsChecks {
            recursive_nameservers: self.dns01_recursive_nameservers.clone(),
            recursive_only: self.dns01_recursive_nameservers_only,
            propagation_timeout: Duration::from_secs(self.dns01_propagation_timeout),
            ..DnsChecks::default()
        }
    }
}
