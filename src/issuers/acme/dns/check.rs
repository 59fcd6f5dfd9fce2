//! Where a DNS-01 record goes, and when the world can see it: the same two
//! questions for every provider, answered around it by [`CheckedSolver`].
//!
//! - **CNAME delegation** (`cnameStrategy: Follow`): users who cannot give
//!   certweave write access to a zone point `_acme-challenge.<name>` at a
//!   name in a zone it may write (`CNAME _acme-challenge.example.com.
//!   challenges.example.net.`). The record is then written where the CNAME
//!   chain ends, as the CA will look for it there.
//! - **Self-check**: a provider accepting a record does not mean the CA
//!   sees it: Route53 takes its time, hosted DNS has secondaries, caches
//!   hold the old answer. As cert-manager does, the CA is told to validate
//!   only once every authoritative nameserver of the zone answers the value
//!   (found through the recursive nameservers:
//!   `--dns01-recursive-nameservers`, else `/etc/resolv.conf`), or, with
//!   `--dns01-recursive-nameservers-only`, once the recursive nameservers
//!   do (for clusters that cannot reach authoritative servers on port 53).
//!   The wait is bounded: a record that never appears fails the challenge
//!   with an error naming the servers and what they answered, instead of
//!   asking the CA to validate something it cannot see.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use super::webhook::{ZoneFinder, ZoneFuture};
use super::wire::{self, parse_fqdn, soa_owner, txt_value};
use super::{DnsSolver, SolverFuture, TxtRecord};
use crate::model::text::{cut, QUOTED};
use crate::model::IssueError;

/// How long a record may take to become visible, by default.
pub const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(180);
/// Longest CNAME chain followed (resolvers stop at about this length too).
pub const MAX_CNAME_HOPS: usize = 10;
/// Most nameservers checked for one zone.
pub const MAX_NAMESERVERS: usize = 16;
/// Where `/etc/resolv.conf`'s nameservers come from when none are given.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// How records are found and checked: the process's DNS-01 settings.
#[derive(Debug, Clone)]
pub struct DnsChecks {
    /// `--dns01-recursive-nameservers`; empty: `/etc/resolv.conf`'s.
    pub recursive_nameservers: Vec<SocketAddr>,
    /// `--dns01-recursive-nameservers-only`: check through the recursive
    /// nameservers instead of the zone's authoritative ones.
    pub recursive_only: bool,
    /// How long to wait for the record to become visible.
    pub propagation_timeout: Duration,
    /// The first wait for one DNS answer (doubled on each of 3 tries).
    pub query_timeout: Duration,
    /// The port authoritative nameservers are asked on: 53, except where a
    /// test runs its authoritative server on another.
    pub authoritative_port: u16,
}

impl Default for DnsChecks {
    fn default() -> Self {
        Self {
            recursive_nameservers: Vec::new(),
            recursive_only: false,
            propagation_timeout: DEFAULT_PROPAGATION_TIMEOUT,
            query_timeout: Duration::from_secs(2),
            authoritative_port: 53,
        }
    }
}

/// A nameserver flag value that is not `IP` or `IP:PORT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a nameserver address; give IP or IP:PORT, e.g. 8.8.8.8:53 or [2001:4860:4860::8888]:53")]
pub struct BadNameserver(pub String);

/// Parses a nameserver as given on the command line (`IP`, `IP:PORT`,
/// `[IPv6]:PORT`); port 53 when none is given.
pub fn parse_nameserver(text: &str) -> Result<SocketAddr, BadNameserver> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| BadNameserver(cut(text, QUOTED)))
}

/// The `nameserver` lines of a resolv.conf.
fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| parse_nameserver(rest.split('#').next().unwrap_or("")).ok())
        .take(MAX_NAMESERVERS)
        .collect()
}

impl DnsChecks {
    /// The recursive nameservers asked: the configured ones, else the
    /// system's.
    fn recursive(&self) -> Result<Vec<SocketAddr>, IssueError> {
        if !self.recursive_nameservers.is_empty() {
            return Ok(self.recursive_nameservers.clone());
        }
        let servers = std::fs::read_to_string(RESOLV_CONF)
            .map(|text| resolv_conf_nameservers(&text))
            .unwrap_or_default();
        if servers.is_empty() {
            return Err(IssueError::Config(format!(
                "no recursive nameserver to check DNS-01 records with: {RESOLV_CONF} names none; \
                 give --dns01-recursive-nameservers"
            )));
        }
        Ok(servers)
    }

    /// Asks the recursive nameservers in turn until one answers.
    async fn ask_recursive(
        &self,
        name: &Name,
        record_type: RecordType,
    ) -> Result<hickory_proto::op::Message, IssueError> {
        let mut last = None;
        for server in self.recursive()? {
            match wire::query(server, name, record_type, true, self.query_timeout).await {
                Ok(answer) if answer.response_code != ResponseCode::ServFail => return Ok(answer),
                Ok(_) => {
                    last = Some(IssueError::Transient(format!(
                        "{server} answered SERVFAIL for {name} {record_type}"
                    )))
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| IssueError::Transient("no recursive nameserver".into())))
    }

    /// Where the CNAME chain starting at `fqdn` ends (`fqdn` itself when it
    /// is no CNAME). Loops and chains over [`MAX_CNAME_HOPS`] are
    /// configuration errors.
    pub async fn follow_cname(&self, fqdn: &str) -> Result<String, IssueError> {
        let mut name = parse_fqdn(fqdn)?;
        let mut seen = BTreeSet::from([name.to_lowercase()]);
        for _ in 0..MAX_CNAME_HOPS {
            let answer = self.ask_recursive(&name, RecordType::CNAME).await?;
            let target = answer.answers.iter().find_map(|record| match &record.data {
                RData::CNAME(target) if record.name == name => Some(target.0.clone()),
                _ => None,
            });
            let Some(target) = target else {
                return Ok(without_dot(&name));
            };
            if !seen.insert(target.to_lowercase()) {
                return Err(IssueError::Config(format!(
                    "the CNAME chain from {fqdn} loops back to {target}; fix the CNAME records (cnameStrategy: Follow)"
                )));
            }
            name = target;
        }
        Err(IssueError::Config(format!(
            "the CNAME chain from {fqdn} is longer than {MAX_CNAME_HOPS} names; point _acme-challenge closer to the zone that holds the record"
        )))
    }

    /// The zone (SOA owner) that holds `fqdn`, asked of the recursive
    /// nameservers, without a trailing dot.
    pub async fn find_zone(&self, fqdn: &str) -> Result<String, IssueError> {
        let name = parse_fqdn(fqdn)?;
        let mut candidate = name.clone();
        while !candidate.is_root() {
            let answer = self.ask_recursive(&candidate, RecordType::SOA).await?;
            let zone = soa_owner(&answer.answers, &name)
                .filter(|zone| *zone == candidate)
                .or_else(|| soa_owner(&answer.authorities, &name));
            if let Some(zone) = zone {
                return Ok(without_dot(&zone));
            }
            candidate = candidate.base_name();
        }
        Err(IssueError::Config(format!(
            "no DNS zone holds {fqdn}: the recursive nameservers know no SOA record above it"
        )))
    }

    /// The addresses of the zone's authoritative nameservers (its NS
    /// records, resolved), on [`DnsChecks::authoritative_port`].
    async fn authoritative(&self, zone: &str) -> Result<Vec<SocketAddr>, IssueError> {
        let zone_name = parse_fqdn(zone)?;
        let answer = self.ask_recursive(&zone_name, RecordType::NS).await?;
        let hosts: Vec<Name> = answer
            .answers
            .iter()
            .filter_map(|record| match &record.data {
                RData::NS(ns) => Some(ns.0.clone()),
                _ => None,
            })
            .take(MAX_NAMESERVERS)
            .collect();
        let mut addresses = Vec::new();
        for host in &hosts {
            for record_type in [RecordType::A, RecordType::AAAA] {
                let answer = self.ask_recursive(host, record_type).await?;
                addresses.extend(
                    answer
                        .answers
                        .iter()
                        .filter_map(|record| match &record.data {
                            RData::A(a) => {
                                Some(SocketAddr::new(a.0.into(), self.authoritative_port))
                            }
                            RData::AAAA(a) => {
                                Some(SocketAddr::new(a.0.into(), self.authoritative_port))
                            }
                            _ => None,
                        }),
                );
            }
        }
        addresses.sort();
        addresses.dedup();
        addresses.truncate(MAX_NAMESERVERS);
        if addresses.is_empty() {
            return Err(IssueError::Transient(format!(
                "the authoritative nameservers of {zone} ({}) have no address the recursive nameservers know; \
                 if the cluster cannot reach them, use --dns01-recursive-nameservers-only",
                if hosts.is_empty() {
                    "no NS records".to_owned()
                } else {
                    hosts.iter().map(without_dot).collect::<Vec<_>>().join(", ")
                }
            )));
        }
        Ok(addresses)
    }

    /// Waits until the record is visible: on every authoritative
    /// nameserver of its zone, or through the recursive nameservers with
    /// `recursive_only`. Polls from 250 ms to 10 s apart, for at most the
    /// propagation timeout.
    pub async fn wait_visible(&self, record: &TxtRecord) -> Result<(), IssueError> {
        let deadline = Instant::now() + self.propagation_timeout;
        // The CA follows a CNAME at the record's name (acme-dns works that
        // way), so the check looks where the CA will.
        let fqdn = self.follow_cname(&record.fqdn).await?;
        let name = parse_fqdn(&fqdn)?;
        let servers = if self.recursive_only {
            None
        } else {
            let zone = self.find_zone(&fqdn).await?;
            Some(self.authoritative(&zone).await?)
        };
        let mut pause = Duration::from_millis(250);
        loop {
            let missing = match &servers {
                None => match self.ask_recursive(&name, RecordType::TXT).await {
                    Ok(answer) if holds(&answer, &name, &record.value) => Vec::new(),
                    Ok(_) => vec![format!("the recursive nameservers")],
                    Err(e) => vec![format!("the recursive nameservers ({e})")],
                },
                Some(servers) => {
                    let mut missing = Vec::new();
                    for server in servers {
                        match wire::query(
                            *server,
                            &name,
                            RecordType::TXT,
                            false,
                            self.query_timeout,
                        )
                        .await
                        {
                            Ok(answer) if holds(&answer, &name, &record.value) => {}
                            Ok(_) => missing.push(server.to_string()),
                            Err(e) => missing.push(format!("{server} ({e})")),
                        }
                    }
                    missing
                }
            };
            if missing.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(IssueError::Transient(format!(
                    "the DNS-01 record at {fqdn} is still not visible on {} after {}s; the provider accepted it, \
                     so check that the zone it wrote to is the one the world resolves (and for a delegated \
                     _acme-challenge, cnameStrategy: Follow)",
                    missing.join(", "),
                    self.propagation_timeout.as_secs()
                )));
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(10));
        }
    }
}

/// Whether `answer` holds TXT `value` at `name`.
fn holds(answer: &hickory_proto::op::Message, name: &Name, value: &str) -> bool {
    answer.response_code == ResponseCode::NoError
        && answer.answers.iter().any(|record| {
            record.name == *name
                && matches!(&record.data, RData::TXT(txt) if txt_value(txt) == value.as_bytes())
        })
}

fn without_dot(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_owned()
}

/// External webhook solvers are told the zone a record belongs to; it is
/// found the same way the self-check finds it.
impl ZoneFinder for DnsChecks {
    fn zone<'a>(&'a self, fqdn: &'a str) -> ZoneFuture<'a> {
        Box::pin(self.find_zone(fqdn))
    }
}

/// A provider with CNAME following and the self-check around it.
pub struct CheckedSolver {
    provider: Arc<dyn DnsSolver>,
    checks: Arc<DnsChecks>,
    follow_cnames: bool,
    self_check: bool,
}

impl CheckedSolver {
    /// `provider`, writing where `_acme-challenge` CNAMEs lead when
    /// `follow_cnames`, and returning from `present` only once `checks`
    /// see the record when `self_check`.
    pub fn new(
        provider: Arc<dyn DnsSolver>,
        checks: Arc<DnsChecks>,
        follow_cnames: bool,
        self_check: bool,
    ) -> Self {
        Self {
            provider,
            checks,
            follow_cnames,
            self_check,
        }
    }

    /// The record as the provider is given it: at the end of the CNAME
    /// chain when following CNAMEs.
    async fn placed(&self, record: &TxtRecord) -> Result<TxtRecord, IssueError> {
        if !self.follow_cnames {
            return Ok(record.clone());
        }
        let fqdn = self.checks.follow_cname(&record.fqdn).await?;
        if fqdn != record.fqdn {
            tracing::debug!(from = %record.fqdn, to = %fqdn, "following the _acme-challenge CNAME");
        }
        Ok(TxtRecord {
            fqdn,
            ..record.clone()
        })
    }
}

impl DnsSolver for CheckedSolver {
    fn present<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(async move {
            let placed = self.placed(record).await?;
            self.provider.present(&placed).await?;
            if self.self_check {
                self.checks.wait_visible(&placed).await?;
            }
            Ok(())
        })
    }

    fn cleanup<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(async move {
            let placed = self.placed(record).await?;
            self.provider.cleanup(&placed).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_parse_with_and_without_ports() {
        assert_eq!(
            parse_nameserver("8.8.8.8").unwrap(),
            "8.8.8.8:53".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("[2001:db8::1]:53").unwrap(),
            "[2001:db8::1]:53".parse().unwrap()
        );
        assert_eq!(
            parse_nameserver("2001:db8::1").unwrap(),
            "[2001:db8::1]:53".parse().unwrap()
        );
        let err = parse_nameserver("dns.google").unwrap_err().to_string();
        assert!(err.contains("IP:PORT"), "{err}");
    }

    #[test]
    fn resolv_conf_nameservers_are_read_and_bounded() {
        let text = "# comment\nsearch example.com\nnameserver 10.0.0.10\nnameserver ::1 # local\noptions ndots:5\n";
        assert_eq!(
            resolv_conf_nameservers(text),
            vec![
                "10.0.0.10:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        let many = "nameserver 10.0.0.1\n".repeat(1000);
        assert_eq!(resolv_conf_nameservers(&many).len(), MAX_NAMESERVERS);
    }
}
