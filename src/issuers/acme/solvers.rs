//! Which challenge solver validates which name.
//!
//! With no rules, a name is HTTP-01-validated when an HTTP-01 solver is
//! configured, else DNS-01. With rules (cert-manager's `solvers[].selector`),
//! the most specific matching rule wins: a `dnsNames` entry naming it, then
//! the longest matching `dnsZones` entry, then the most `matchLabels`, then
//! a rule without selector. Wildcards always need DNS-01 (RFC 8555 §7.1.3)
//! and IP addresses HTTP-01. A name no rule accepts is refused before the
//! ACME server is asked for anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::http01::Http01Solver;
use super::{DnsSolver, SolverFuture};
use crate::model::{IssueError, RequestOrigin};

/// How a challenge request reaches the HTTP-01 solver: hints for the
/// caller's [`Http01Routes`] (a cluster creates an Ingress of this class).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Http01Route {
    pub class: Option<String>,
    pub ingress_class_name: Option<String>,
    /// An existing object to add the route to.
    pub name: Option<String>,
    /// Labels and annotations for a route object the caller creates
    /// (cert-manager's `ingressTemplate.metadata`).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Route through a Gateway API HTTPRoute attached to these parents
    /// (cert-manager's `gatewayHTTPRoute`) instead of an Ingress.
    pub gateway: Option<Vec<GatewayParent>>,
}

/// A Gateway (or other parent) an HTTP-01 HTTPRoute attaches to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayParent {
    pub name: String,
    pub namespace: Option<String>,
    pub kind: Option<String>,
    pub group: Option<String>,
    pub section_name: Option<String>,
    pub port: Option<u16>,
}

/// Makes `http://HOST/.well-known/acme-challenge/TOKEN` reach the HTTP-01
/// solver while a challenge is open (in a cluster: a temporary Ingress and
/// Service), and removes that again afterwards.
pub trait Http01Routes: Send + Sync {
    fn open<'a>(
        &'a self,
        host: &'a str,
        token: &'a str,
        route: &'a Http01Route,
        context: &'a RequestOrigin,
    ) -> SolverFuture<'a>;
    fn close<'a>(
        &'a self,
        host: &'a str,
        token: &'a str,
        route: &'a Http01Route,
        context: &'a RequestOrigin,
    ) -> SolverFuture<'a>;
    /// Why the routes cannot bring a validation to this process, when
    /// that is known up front (e.g. no routable Pod IP); added to the
    /// message of a failed HTTP-01 validation.
    fn unroutable(&self) -> Option<&str> {
        None
    }
}

/// Which names a rule takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SolverSelector {
    pub dns_names: Vec<String>,
    pub dns_zones: Vec<String>,
    pub match_labels: BTreeMap<String, String>,
}

/// One of an issuer's solvers, with its selector.
#[derive(Clone)]
pub struct SolverRule {
    pub selector: SolverSelector,
    pub method: RuleMethod,
}

#[derive(Clone)]
pub enum RuleMethod {
    Http01(Http01Route),
    Dns01(Arc<dyn DnsSolver>),
}

/// The challenge solvers an issuer may use.
#[derive(Clone, Default)]
pub struct Solvers {
    /// The token server every HTTP-01 challenge is answered by.
    pub http01: Option<Http01Solver>,
    /// The DNS-01 solver when there are no rules.
    pub dns01: Option<Arc<dyn DnsSolver>>,
    /// Selector rules; empty means "HTTP-01 if available, else DNS-01".
    pub rules: Vec<SolverRule>,
    /// Routes challenge requests to `http01` (in a cluster).
    pub routes: Option<Arc<dyn Http01Routes>>,
}

impl std::fmt::Debug for Solvers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Solvers")
            .field("http01", &self.http01.is_some())
            .field("dns01", &self.dns01.is_some())
            .field("rules", &self.rules.len())
            .field("routes", &self.routes.is_some())
            .finish()
    }
}

/// The solver chosen for one name.
pub(crate) enum Method<'a> {
    Http01(&'a Http01Solver, Option<&'a Http01Route>),
    Dns01(&'a Arc<dyn DnsSolver>),
}

/// How specifically a selector matches a name; `None` when it does not.
fn specificity(
    selector: &SolverSelector,
    name: &str,
    labels: &BTreeMap<String, String>,
) -> Option<(u8, usize, usize)> {
    if !selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return None;
    }
    let labels_matched = selector.match_labels.len();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if selector
        .dns_names
        .iter()
        .any(|n| n.trim_end_matches('.').eq_ignore_ascii_case(&name))
    {
        return Some((2, usize::MAX, labels_matched));
    }
    let bare = name.strip_prefix("*.").unwrap_or(&name);
    let zone = selector
        .dns_zones
        .iter()
        .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
        .filter(|z| bare == z.as_str() || bare.ends_with(&format!(".{z}")))
        .map(|z| z.len())
        .max();
    if let Some(len) = zone {
        return Some((1, len, labels_matched));
    }
    if selector.dns_names.is_empty() && selector.dns_zones.is_empty() {
        return Some((0, 0, labels_matched));
    }
    None
}

impl Solvers {
    /// The solver for `name` (`*.example.com` for a wildcard), or why none
    /// fits.
    /// `labels` are the requester's, which `matchLabels` selectors compare
    /// with.
    pub(crate) fn choose(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Method<'_>, IssueError> {
        let wildcard = name.starts_with("*.");
        let is_ip = name.parse::<std::net::IpAddr>().is_ok();
        if !self.rules.is_empty() {
            let best = self
                .rules
                .iter()
                .filter(|rule| match rule.method {
                    RuleMethod::Http01(_) => !wildcard && self.http01.is_some(),
                    RuleMethod::Dns01(_) => !is_ip,
                })
                .filter_map(|rule| specificity(&rule.selector, name, labels).map(|s| (s, rule)))
                // The first of equally specific rules wins, as in cert-manager.
                .fold(
                    None::<((u8, usize, usize), &SolverRule)>,
                    |best, (s, rule)| match best {
                        Some((b, _)) if b >= s => best,
                        _ => Some((s, rule)),
                    },
                );
            return match best {
                Some((_, rule)) => Ok(match &rule.method {
                    RuleMethod::Http01(route) => Method::Http01(
                        self.http01.as_ref().expect("filtered on http01 presence"),
                        Some(route),
                    ),
                    RuleMethod::Dns01(dns) => Method::Dns01(dns),
                }),
                None => Err(IssueError::Config(format!(
                    "no solver of this issuer accepts {name}{}; add a solver whose selector (dnsNames, dnsZones, matchLabels) covers it{}",
                    if wildcard { " (a wildcard needs a DNS-01 solver)" } else { "" },
                    if is_ip { ", with HTTP-01 for an IP address" } else { "" },
                ))),
            };
        }
        match (&self.http01, &self.dns01) {
            (_, Some(dns)) if wildcard => Ok(Method::Dns01(dns)),
            (_, None) if wildcard => Err(IssueError::Config(format!(
                "{name} is a wildcard name, and wildcards can only be validated with DNS-01; \
                 configure a DNS-01 solver (--dns01-provider route53, cloudflare or acmedns, \
                 or --dns01-rfc2136 SERVER --tsig-key-name with CERTWEAVE_TSIG_SECRET) or list \
                 the names without the wildcard"
            ))),
            (Some(http), _) => Ok(Method::Http01(http, None)),
            (None, Some(_)) if is_ip => Err(IssueError::Config(format!(
                "{name} is an IP address, which can only be validated with HTTP-01; \
                 configure an HTTP-01 solver (--http01-addr)"
            ))),
            (None, Some(dns)) => Ok(Method::Dns01(dns)),
            (None, None) => Err(IssueError::Config(
                "no ACME challenge solver is configured: give an HTTP-01 address or a DNS-01 provider".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuers::acme::TxtRecord;

    struct NoDns;
    impl DnsSolver for NoDns {
        fn present<'a>(&'a self, _: &'a TxtRecord) -> SolverFuture<'a> {
            Box::pin(async { Ok(()) })
        }
        fn cleanup<'a>(&'a self, _: &'a TxtRecord) -> SolverFuture<'a> {
            Box::pin(async { Ok(()) })
        }
    }

    fn rule(
        dns_names: &[&str],
        dns_zones: &[&str],
        labels: &[(&str, &str)],
        http: Option<&str>,
    ) -> SolverRule {
        SolverRule {
            selector: SolverSelector {
                dns_names: dns_names.iter().map(|s| s.to_string()).collect(),
                dns_zones: dns_zones.iter().map(|s| s.to_string()).collect(),
                match_labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            method: match http {
                Some(class) => RuleMethod::Http01(Http01Route {
                    ingress_class_name: Some(class.into()),
                    ..Default::default()
                }),
                None => RuleMethod::Dns01(Arc::new(NoDns)),
            },
        }
    }

    fn chosen(solvers: &Solvers, name: &str) -> String {
        chosen_for(solvers, name, &BTreeMap::new())
    }

    fn chosen_for(solvers: &Solvers, name: &str, labels: &BTreeMap<String, String>) -> String {
        match solvers.choose(name, labels) {
            Ok(Method::Http01(_, Some(route))) => {
                format!("http01:{}", route.ingress_class_name.clone().unwrap())
            }
            Ok(Method::Http01(_, None)) => "http01".into(),
            Ok(Method::Dns01(_)) => "dns01".into(),
            Err(e) => format!("error: {e}"),
        }
    }

    #[tokio::test]
    async fn the_most_specific_selector_wins() {
        let solvers = Solvers {
            http01: Some(Http01Solver::new()),
            rules: vec![
                rule(&[], &[], &[], Some("default")),
                rule(&[], &["example.com"], &[], Some("zone")),
                rule(&[], &["shop.example.com"], &[], Some("subzone")),
                rule(&["exact.example.com"], &[], &[], Some("exact")),
                rule(&[], &["example.com"], &[], None),
            ],
            ..Default::default()
        };
        assert_eq!(chosen(&solvers, "exact.example.com"), "http01:exact");
        assert_eq!(chosen(&solvers, "a.shop.example.com"), "http01:subzone");
        assert_eq!(
            chosen(&solvers, "b.example.com"),
            "http01:zone",
            "first of equals"
        );
        assert_eq!(chosen(&solvers, "other.org"), "http01:default");
        assert_eq!(
            chosen(&solvers, "*.example.com"),
            "dns01",
            "wildcards need DNS-01"
        );
    }

    #[tokio::test]
    async fn names_no_rule_accepts_are_refused_and_labels_are_honoured() {
        let solvers = Solvers {
            http01: Some(Http01Solver::new()),
            rules: vec![
                rule(&[], &["example.com"], &[], Some("zone")),
                rule(&[], &[], &[("team", "shop")], Some("shop")),
            ],
            ..Default::default()
        };
        let refused = chosen(&solvers, "other.org");
        assert!(
            refused.contains("no solver of this issuer accepts other.org"),
            "{refused}"
        );
        let labels = BTreeMap::from([("team".into(), "shop".into())]);
        assert_eq!(chosen_for(&solvers, "other.org", &labels), "http01:shop");
    }
}
