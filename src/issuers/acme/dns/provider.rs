//! A DNS-01 provider from plain settings, with the self-check around it.
//!
//! An Issuer's `solvers[].dns01` block (read with its Secrets, in
//! [`crate::api`]) and `certweave issue`'s flags (read with the
//! environment and files, in [`crate::issue`]) come down to the same
//! settings; building the solver and deciding whether its records are
//! self-checked happens here once, so both behave alike.

use std::sync::Arc;

use super::acme_dns::{AcmeDnsConfig, AcmeDnsSolver};
use super::check::{CheckedSolver, DnsChecks};
use super::cloudflare::{CloudflareConfig, CloudflareSolver};
use super::route53::{Route53Config, Route53Solver};
use super::DnsSolver;
use crate::issuers::acme::dns01::{Rfc2136Config, Rfc2136Solver};
use crate::model::IssueError;

/// A provider's settings, secrets included (each config redacts them in
/// `Debug`).
#[derive(Debug, Clone)]
pub enum DnsProvider {
    Rfc2136(Rfc2136Config),
    Route53(Route53Config),
    Cloudflare(CloudflareConfig),
    AcmeDns(AcmeDnsConfig),
}

impl DnsProvider {
    /// Whether `present` waits until `checks` see the record. Hosted
    /// providers accept a record before their nameservers serve it, so
    /// they are always checked; an RFC 2136 solver already waits for the
    /// primary it updated, and the recursive check is added only when
    /// recursive nameservers were given for it.
    pub fn self_checked(&self, checks: &DnsChecks) -> bool {
        match self {
            DnsProvider::Rfc2136(_) => !checks.recursive_nameservers.is_empty(),
            DnsProvider::Route53(_) | DnsProvider::Cloudflare(_) | DnsProvider::AcmeDns(_) => true,
        }
    }

    /// The provider's own solver, its settings checked (so a typo fails
    /// before any order is opened); errors are configuration errors in the
    /// provider's words, for the caller to say where the setting came from.
    pub fn solver(self) -> Result<Arc<dyn DnsSolver>, IssueError> {
        Ok(match self {
            DnsProvider::Rfc2136(config) => Arc::new(Rfc2136Solver::new(config)?),
            DnsProvider::Route53(config) => Arc::new(Route53Solver::new(config)?),
            DnsProvider::Cloudflare(config) => Arc::new(CloudflareSolver::new(config)?),
            DnsProvider::AcmeDns(config) => Arc::new(AcmeDnsSolver::new(config)?),
        })
    }

    /// The solver with CNAME following (when `follow_cnames`) and the
    /// self-check ([`Self::self_checked`]) around it: what the order driver
    /// is given.
    pub fn checked(
        self,
        checks: Arc<DnsChecks>,
        follow_cnames: bool,
    ) -> Result<Arc<dyn DnsSolver>, IssueError> {
        let self_check = self.self_checked(&checks);
        Ok(Arc::new(CheckedSolver::new(
            self.solver()?,
            checks,
            follow_cnames,
            self_check,
        )))
    }
}
