//! DNS-01: getting a TXT record into the DNS, whoever hosts the zone.
//!
//! The order driver asks a [`DnsSolver`] to present and later clean up one
//! [`TxtRecord`] per name. cert-manager's `solvers[].dns01` providers are
//! each a solver:
//!
//! - `rfc2136`: dynamic update with TSIG ([`super::dns01`]);
//! - `route53`, `cloudflare`, `acmeDNS`: the hosted providers' HTTP APIs,
//!   through the one client in [`api`];
//! - `webhook`: cert-manager's external solvers, reached through the
//!   Kubernetes API server by whoever implements [`webhook`]'s transport.
//!
//! Where the record goes (a delegated `_acme-challenge` CNAME followed) and
//! whether the world can see it yet are the same question for every
//! provider, so they are answered once, around the provider ([`check`]);
//! [`provider`] builds a provider from its settings and wraps it, for
//! Issuers and `certweave issue` alike.

pub mod acme_dns;
pub mod api;
pub(crate) mod aws;
pub mod check;
pub mod cloudflare;
pub mod provider;
pub mod route53;
pub mod webhook;
pub(crate) mod wire;

use std::future::Future;
use std::pin::Pin;

use crate::model::IssueError;

/// The future a [`DnsSolver`] returns.
pub type SolverFuture<'a> = Pin<Box<dyn Future<Output = Result<(), IssueError>> + Send + 'a>>;

/// One DNS-01 challenge record.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxtRecord {
    /// The name being validated, without `*.` (`example.com` for both
    /// `example.com` and `*.example.com`).
    pub domain: String,
    /// Where the record goes, without a trailing dot:
    /// `_acme-challenge.<domain>`, or where its CNAME leads when the issuer
    /// follows CNAMEs.
    pub fqdn: String,
    /// The TXT value (the key authorization's digest).
    pub value: String,
}

impl TxtRecord {
    /// The record for `domain` (a `*.` prefix is dropped) at its own
    /// `_acme-challenge` name.
    pub fn new(domain: &str, value: impl Into<String>) -> Self {
        let domain = domain
            .strip_prefix("*.")
            .unwrap_or(domain)
            .trim_end_matches('.');
        Self {
            domain: domain.to_owned(),
            fqdn: format!("_acme-challenge.{domain}"),
            value: value.into(),
        }
    }
}

/// Publishes DNS-01 TXT records. A trait so the order driver does not
/// depend on how records get into DNS.
pub trait DnsSolver: Send + Sync {
    /// Adds the record, leaving other TXT values at the same name alone (a
    /// wildcard and its apex share one name); returns once the provider
    /// has accepted it.
    fn present<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a>;
    /// Removes exactly that record.
    fn cleanup<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_named_after_the_domain_without_the_wildcard() {
        let record = TxtRecord::new("*.example.com", "v");
        assert_eq!(record.domain, "example.com");
        assert_eq!(record.fqdn, "_acme-challenge.example.com");
        assert_eq!(
            TxtRecord::new("a.example.com.", "v").fqdn,
            "_acme-challenge.a.example.com"
        );
    }
}
