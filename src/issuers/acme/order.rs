//! Driving one ACME order: its persistent record, solving its challenges,
//! polling, finalizing and fetching the chain.
//!
//! An order in flight is described by an [`OrderRecord`]: small, serde
//! serializable, and enough to pick the order up again after a restart
//! (the same order URL, the same certificate key), instead of opening a new
//! order and burning the CA's rate limits.
//!
//! Polling is most of the time an issuance takes, so it is done with care:
//! the first look comes after a few tens of milliseconds (a CA that
//! validates quickly is answered quickly), the interval then grows by half
//! each time up to a cap, and a `Retry-After` from the server always wins.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use instant_acme::{
    AuthorizationStatus, ChallengeStatus, ChallengeType, Identifier, NewOrder, Order, OrderStatus,
};
use serde::{Deserialize, Serialize};

use super::client::AcmeHttp;
use super::error::{classify, problem};
use super::http01::ChallengeToken;
use super::solvers::{Http01Route, Http01Routes, Method};
use super::{DnsSolver, Solvers, TxtRecord};
use crate::model::{
    CertificateRequest, Checkpoint, IssueError, OrderProgress, Problem, RequestOrigin,
    SaveCheckpoint,
};
use crate::pki::{self, CertInfo};

/// An ACME order in flight, as a caller persists it (next to the
/// certificate's other state) to resume after a restart.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    /// The ACME directory the order was opened at.
    pub directory_url: String,
    /// The account that owns the order; resuming with another account's
    /// key is refused.
    pub account_url: String,
    /// The order itself: where its state, authorizations and, in the end,
    /// certificate are found.
    pub order_url: String,
    /// The DNS identifiers, as ordered (`*.example.com` for wildcards).
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<IpAddr>,
    /// The certificate's private key (PKCS#8 PEM): the CSR sent at
    /// finalization must use the key the caller will serve. Store the
    /// record where private keys may be stored.
    pub private_key: String,
    /// Seconds since the Unix epoch when the order was opened.
    pub opened_at: u64,
    /// The certificate the server accepted this order as the replacement
    /// of (its renewal information identifier), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// Never print the private key.
impl std::fmt::Debug for OrderRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderRecord")
            .field("directory_url", &self.directory_url)
            .field("account_url", &self.account_url)
            .field("order_url", &self.order_url)
            .field("dns_names", &self.dns_names)
            .field("ip_addresses", &self.ip_addresses)
            .field("private_key", &"<redacted>")
            .field("replaces", &self.replaces)
            .field("opened_at", &self.opened_at)
            .finish()
    }
}

impl OrderRecord {
    /// Whether this order still matches `request` (same names). A caller
    /// whose Certificate spec changed drops the record and opens a new
    /// order instead of resuming.
    pub fn matches(&self, request: &CertificateRequest) -> bool {
        let mut want = identifiers_of(request)
            .map(|ids| ids.iter().map(identifier_text).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut have: Vec<String> = self.dns_names.clone();
        have.extend(self.ip_addresses.iter().map(ToString::to_string));
        want.sort();
        have.sort();
        want == have
    }
}

/// How an order's state is polled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Polling {
    /// The first wait after telling the server a challenge is ready.
    pub initial: Duration,
    /// Each wait is this much longer than the one before…
    pub factor: f64,
    /// …up to this.
    pub max_interval: Duration,
    /// Give up (as a transient failure) after this long.
    pub timeout: Duration,
}

impl Default for Polling {
    /// 25 ms, growing by half up to 2 s, for at most 5 minutes: about a
    /// dozen looks in the first five seconds, then one every two seconds.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(25),
            factor: 1.5,
            max_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(300),
        }
    }
}

struct Backoff {
    next: Duration,
    policy: Polling,
    deadline: Instant,
}

impl Backoff {
    fn new(policy: Polling) -> Self {
        Self {
            next: policy.initial,
            policy,
            deadline: Instant::now() + policy.timeout,
        }
    }

    /// Waits before the next look: the server's `Retry-After` if it gave
    /// one, else the next interval. Fails once the deadline would pass.
    async fn wait(&mut self, retry_after: Option<Duration>, what: &str) -> Result<(), IssueError> {
        let wait = self.next_wait(retry_after, Instant::now(), what)?;
        tokio::time::sleep(wait).await;
        Ok(())
    }

    /// How long to wait at `now`, advancing the interval.
    fn next_wait(
        &mut self,
        retry_after: Option<Duration>,
        now: Instant,
        what: &str,
    ) -> Result<Duration, IssueError> {
        let wait = retry_after.unwrap_or(self.next);
        if now + wait > self.deadline {
            return Err(IssueError::Transient(format!(
                "{what} did not finish within {}s{}",
                self.policy.timeout.as_secs(),
                retry_after
                    .map(|d| format!(" (the server asked to look again in {}s)", d.as_secs()))
                    .unwrap_or_default()
            )));
        }
        self.next = self
            .next
            .mul_f64(self.policy.factor)
            .min(self.policy.max_interval);
        Ok(wait)
    }
}

/// The identifiers an ACME order for `request` must hold.
pub(crate) fn identifiers_of(request: &CertificateRequest) -> Result<Vec<Identifier>, IssueError> {
    // The CA would sign an end-entity certificate anyway, which never
    // matches the spec, so every renewal check would order another one.
    if request.is_ca {
        return Err(IssueError::Config(
            "an ACME CA issues end-entity certificates only, so isCA: true cannot be \
             honoured; remove isCA, or issue the CA certificate from a SelfSigned or CA issuer"
                .into(),
        ));
    }
    if !request.uris.is_empty()
        || !request.email_addresses.is_empty()
        || !request.other_names.is_empty()
    {
        return Err(IssueError::Config(
            "ACME certificates can only hold DNS names and IP addresses; remove uris, emailAddresses and otherNames".into(),
        ));
    }
    if let Some(cn) = &request.common_name {
        let listed = request.dns_names.iter().any(|n| n.eq_ignore_ascii_case(cn))
            || request.ip_addresses.iter().any(|ip| ip.to_string() == *cn);
        if !listed {
            return Err(IssueError::Config(format!(
                "commonName {cn:?} must also be listed in dnsNames for ACME: the CA validates every name it signs"
            )));
        }
    }
    let mut ids: Vec<Identifier> = Vec::new();
    for name in &request.dns_names {
        let id = Identifier::Dns(name.to_ascii_lowercase());
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for ip in &request.ip_addresses {
        let id = Identifier::Ip(*ip);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(IssueError::Config(
            "an ACME certificate needs at least one DNS name (--dns-name)".into(),
        ));
    }
    Ok(ids)
}

fn identifier_text(id: &Identifier) -> String {
    match id {
        Identifier::Dns(name) => name.clone(),
        other => other.authorized(false).to_string(),
    }
}

/// Everything the driver needs from the issuer (`'s`: the caller's
/// progress listener, which may live shorter than the issuer).
pub(crate) struct Driver<'a, 's> {
    pub account: &'a instant_acme::Account,
    pub account_url: &'a str,
    pub directory_url: &'a str,
    pub http: &'a AcmeHttp,
    pub solvers: &'a Solvers,
    pub polling: Polling,
    /// Who the order is for: picks solvers and places HTTP-01 routes.
    pub origin: &'a RequestOrigin,
    /// The certificate profile asked for in every new order.
    pub profile: Option<&'a str>,
    /// Where the order's progress is reported, when the caller listens.
    pub report: Option<&'a SaveCheckpoint<'s>>,
}

impl Driver<'_, '_> {
    /// Opens a new order for `ids`.
    pub(crate) async fn open(
        &self,
        ids: &[Identifier],
        private_key_pem: String,
    ) -> Result<OrderRecord, IssueError> {
        let new_order = || match self.profile {
            Some(profile) => NewOrder::new(ids).profile(profile),
            None => NewOrder::new(ids),
        };
        let replaced = self.origin.replaces.as_deref().and_then(|id| {
            let (aki, serial) = id.split_once('.')?;
            Some(instant_acme::CertificateIdentifier {
                authority_key_identifier: aki.into(),
                serial: serial.into(),
            })
        });
        let opened = match replaced {
            // A replacement order names the certificate it replaces (RFC
            // 9773 §5), so the CA can exempt it from rate limits. A server
            // without renewal information, or one that refuses the claim
            // (the certificate was replaced already, or is another
            // account's), still gets the order, without the claim.
            Some(replaced) => match self
                .account
                .new_order(&new_order().replaces(replaced))
                .await
            {
                Ok(order) => Ok(order),
                Err(e @ (instant_acme::Error::Api(_) | instant_acme::Error::Unsupported(_))) => {
                    tracing::info!(error = %e, "ordering without naming the replaced certificate");
                    self.account.new_order(&new_order()).await
                }
                Err(e) => Err(e),
            },
            None => self.account.new_order(&new_order()).await,
        };
        let mut order = opened.map_err(|e| self.fail(e, "opening the order", None))?;
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        for id in ids {
            match id {
                Identifier::Ip(ip) => ip_addresses.push(*ip),
                other => dns_names.push(identifier_text(other)),
            }
        }
        tracing::info!(order = %order.url(), names = %dns_names.join(","), "opened ACME order");
        Ok(OrderRecord {
            directory_url: self.directory_url.to_owned(),
            account_url: self.account_url.to_owned(),
            order_url: order.url().to_owned(),
            dns_names,
            ip_addresses,
            private_key: private_key_pem,
            opened_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
            replaces: order
                .state()
                .replaces
                .as_ref()
                .map(|id| format!("{}.{}", id.authority_key_identifier, id.serial)),
        })
    }

    /// Loads an order by URL.
    pub(crate) async fn load(&self, record: &OrderRecord) -> Result<Order, IssueError> {
        self.account
            .order(record.order_url.clone())
            .await
            .map_err(|e| self.fail(e, "loading the order", Some(&record.order_url)))
    }

    /// Solves every pending authorization of `order` and waits until the
    /// order is ready to finalize (or further along). Challenge responses
    /// are withdrawn afterwards, whatever the outcome.
    pub(crate) async fn authorize(&self, order: &mut Order) -> Result<(), IssueError> {
        match order.state().status {
            OrderStatus::Ready | OrderStatus::Processing | OrderStatus::Valid => return Ok(()),
            OrderStatus::Invalid => return Err(self.failure(order).await),
            OrderStatus::Pending => {}
        }
        let mut presented = Presented::default();
        let result = self.solve(order, &mut presented).await;
        presented.withdraw().await;
        result
    }

    async fn solve(&self, order: &mut Order, presented: &mut Presented) -> Result<(), IssueError> {
        let started = Instant::now();
        let mut waiting = 0usize;
        let mut refused = None;
        let mut progress = OrderProgress::new(order.url(), "pending");
        {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz =
                    authz.map_err(|e| self.fail(e, "fetching an authorization", None))?;
                let name = authz.identifier().to_string();
                match authz.status {
                    AuthorizationStatus::Valid => {
                        progress.push(&name, "", "valid", None);
                        continue;
                    }
                    AuthorizationStatus::Pending => {}
                    other => {
                        return Err(IssueError::Rejected(Problem {
                            kind: "urn:ietf:params:acme:error:unauthorized".into(),
                            detail: format!(
                                "the authorization for {name} is {other:?}; open a new order"
                            ),
                            subproblems: Vec::new(),
                        }))
                    }
                }
                let authz_state = status_name(&authz.status);
                let method = self.solvers.choose(&name, &self.origin.labels)?;
                let kind = method.challenge_type();
                let Some(challenge) = authz.challenge(kind.clone()) else {
                    return Err(IssueError::Config(format!(
                        "the ACME server offers no {kind:?} challenge for {name}"
                    )));
                };
                progress.push(&name, challenge_name(&challenge.r#type), &authz_state, None);
                let token = challenge.token.clone();
                let key = self.http.key();
                match method {
                    Method::Http01(solver, route) => {
                        presented
                            .tokens
                            .push(solver.present(&token, key.key_authorization(&token)));
                        if let Some(routes) = &self.solvers.routes {
                            let route = route.cloned().unwrap_or_default();
                            let context = self.origin.clone();
                            // Recorded first: a route opened half-way is
                            // removed too.
                            presented.routes.push((
                                routes.clone(),
                                name.clone(),
                                token.clone(),
                                route.clone(),
                                context.clone(),
                            ));
                            routes.open(&name, &token, &route, &context).await?;
                        }
                    }
                    Method::Dns01(solver) => {
                        let record = TxtRecord::new(&name, key.dns01_value(&token));
                        tracing::info!(fqdn = %record.fqdn, "adding the DNS-01 record");
                        // Recorded first: a present that fails half-way
                        // is cleaned up too.
                        presented.records.push((solver.clone(), record.clone()));
                        solver.present(&record).await?;
                    }
                }
                // A challenge the server is already validating (a resumed
                // order) only needs its response served again.
                if challenge.status == ChallengeStatus::Pending {
                    let mut challenge = challenge;
                    match challenge.set_ready().await {
                        Ok(()) => {}
                        // A fast CA may have failed this or another name
                        // already; the authorizations tell which and why.
                        Err(instant_acme::Error::Api(p)) => {
                            refused = Some((name, p));
                            break;
                        }
                        Err(e) => {
                            return Err(self.fail(
                                e,
                                &format!("starting validation of {name}"),
                                None,
                            ))
                        }
                    }
                }
                waiting += 1;
            }
        }
        if let Some((name, p)) = refused {
            let url = order.url().to_owned();
            order
                .refresh()
                .await
                .map_err(|e| self.fail(e, "polling the order", Some(&url)))?;
            return Err(match self.failure(order).await {
                IssueError::ChallengeFailed(failed) if !failed.subproblems.is_empty() => {
                    IssueError::ChallengeFailed(failed)
                }
                _ => classify(
                    instant_acme::Error::Api(p),
                    &format!("starting validation of {name}"),
                    None,
                ),
            });
        }
        if waiting > 0 {
            tracing::info!(names = waiting, "waiting for the ACME server to validate");
        }
        self.report(progress).await;
        let mut backoff = Backoff::new(self.polling);
        loop {
            match order.state().status {
                OrderStatus::Ready | OrderStatus::Processing | OrderStatus::Valid => {
                    tracing::info!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "all names validated"
                    );
                    return Ok(());
                }
                OrderStatus::Invalid => return Err(self.failure(order).await),
                OrderStatus::Pending => {}
            }
            backoff
                .wait(self.http.retry_after(order.url()), "validation")
                .await?;
            let url = order.url().to_owned();
            order
                .refresh()
                .await
                .map_err(|e| self.fail(e, "polling the order", Some(&url)))?;
        }
    }

    /// Finalizes a ready order with `csr_der` (a processing or valid order
    /// is left as it is) and returns the issued chain as PEM, honouring
    /// `preferred_chain`.
    pub(crate) async fn finalize(
        &self,
        order: &mut Order,
        csr_der: &[u8],
        preferred_chain: Option<&str>,
    ) -> Result<String, IssueError> {
        match order.state().status {
            OrderStatus::Ready => {
                tracing::info!("finalizing the order");
                order
                    .finalize_csr(csr_der)
                    .await
                    .map_err(|e| self.fail(e, "finalizing the order", None))?;
            }
            OrderStatus::Processing | OrderStatus::Valid => {}
            OrderStatus::Invalid => return Err(self.failure(order).await),
            OrderStatus::Pending => {
                return Err(IssueError::Transient(
                    "the order is not authorized yet; solve its challenges first".into(),
                ))
            }
        }
        let mut backoff = Backoff::new(self.polling);
        let chain = loop {
            if order.state().status == OrderStatus::Invalid {
                return Err(self.failure(order).await);
            }
            let url = order.url().to_owned();
            match order
                .certificate()
                .await
                .map_err(|e| self.fail(e, "fetching the certificate", Some(&url)))?
            {
                Some(chain) => break chain,
                None => {
                    backoff
                        .wait(self.http.retry_after(&url), "issuance")
                        .await?
                }
            }
        };
        let Some(preferred) = preferred_chain else {
            return Ok(chain);
        };
        let cert_url = order.state().certificate.clone().unwrap_or_default();
        self.preferred(chain, &cert_url, preferred).await
    }

    /// cert-manager's `preferredChain`: the first chain (default, then the
    /// alternates in the server's order) whose top certificate is issued by
    /// — or is — a CA with that common name; the default chain otherwise.
    async fn preferred(
        &self,
        default: String,
        cert_url: &str,
        preferred: &str,
    ) -> Result<String, IssueError> {
        if chain_top_matches(&default, preferred) {
            return Ok(default);
        }
        for url in self.http.alternates(cert_url) {
            let body = self
                .http
                .post_as_get(self.directory_url, self.account_url, &url)
                .await
                .map_err(|e| self.fail(e, "fetching an alternate chain", None))?;
            let chain = String::from_utf8_lossy(&body).into_owned();
            if chain_top_matches(&chain, preferred) {
                tracing::info!(%preferred, "using the preferred alternate chain");
                return Ok(chain);
            }
        }
        tracing::info!(%preferred, "no chain matches the preferred chain; using the default");
        Ok(default)
    }

    fn fail(&self, err: instant_acme::Error, doing: &str, url: Option<&str>) -> IssueError {
        let retry_after = url
            .and_then(|u| self.http.retry_after(u))
            .or_else(|| self.http.throttled_for());
        classify(err, doing, retry_after)
    }

    /// Why an order is invalid: each failed challenge's problem, by name,
    /// as the server worded it, and the order's own problem when it says
    /// something the challenges do not.
    async fn failure(&self, order: &mut Order) -> IssueError {
        let order_problem = order.state().error.as_ref().map(problem);
        let state = status_name(&order.state().status);
        let mut progress = OrderProgress::new(order.url(), &state);
        let mut failed = Problem::default();
        let mut names = Vec::new();
        let mut http01_failed = false;
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let Ok(mut authz) = authz else { continue };
            if authz.status == AuthorizationStatus::Pending {
                // Cached from before validation: look again.
                if authz.refresh().await.is_err() {
                    continue;
                }
            }
            let name = authz.identifier().to_string();
            let tried = authz
                .challenges
                .iter()
                .find(|c| c.error.is_some() || c.status != ChallengeStatus::Pending);
            progress.push(
                &name,
                tried.map_or("", |c| challenge_name(&c.r#type)),
                &status_name(&authz.status),
                tried
                    .and_then(|c| c.error.as_ref())
                    .map(|e| problem(e).to_string())
                    .as_deref(),
            );
            for challenge in &authz.challenges {
                let Some(error) = &challenge.error else {
                    continue;
                };
                http01_failed |= challenge.r#type == ChallengeType::Http01;
                let p = problem(error);
                if failed.kind.is_empty() {
                    failed.kind = p.kind.clone();
                }
                names.push(name.clone());
                failed
                    .subproblems
                    .push((name.clone(), p.kind.clone(), p.detail.clone()));
                failed.subproblems.extend(p.subproblems);
            }
        }
        match order_problem {
            Some(own) if names.is_empty() => failed = own,
            Some(own) => {
                failed.kind = own.kind.clone();
                if !failed.subproblems.iter().any(|(_, _, d)| *d == own.detail) {
                    failed
                        .subproblems
                        .insert(0, ("order".into(), own.kind, own.detail));
                }
                failed.subproblems.extend(own.subproblems);
            }
            None => {}
        }
        if failed.kind.is_empty() {
            failed.kind = "urn:ietf:params:acme:error:unauthorized".into();
        }
        if failed.detail.is_empty() {
            failed.detail = if names.is_empty() {
                "the order became invalid".into()
            } else {
                format!("validation failed for {}", names.join(", "))
            };
        }
        // A route that cannot reach this process explains a failed
        // HTTP-01 validation better than the server's "connection refused".
        let unroutable = self.solvers.routes.as_ref().and_then(|r| r.unroutable());
        if let Some(why) = unroutable.filter(|_| http01_failed) {
            failed.detail = format!("{} (likely cause: {why})", failed.detail);
        }
        self.report(progress).await;
        IssueError::ChallengeFailed(failed)
    }

    /// Tells the caller, when it listens, how the order stands.
    async fn report(&self, progress: OrderProgress) {
        if let Some(report) = self.report {
            report(Checkpoint::Progress(progress)).await;
        }
    }
}

/// A challenge type as RFC 8555 names it.
fn challenge_name(kind: &ChallengeType) -> &str {
    match kind {
        ChallengeType::Http01 => "http-01",
        ChallengeType::Dns01 => "dns-01",
        ChallengeType::TlsAlpn01 => "tls-alpn-01",
        ChallengeType::Unknown(other) => other,
        _ => "other",
    }
}

/// An order's or authorization's status as RFC 8555 names it
/// (`Pending` → `pending`).
fn status_name(status: &impl std::fmt::Debug) -> String {
    format!("{status:?}").to_ascii_lowercase()
}

/// Whether the chain's top certificate is issued by, or is, `common_name`.
fn chain_top_matches(chain_pem: &str, common_name: &str) -> bool {
    let Ok(ders) = pki::parse_pem_chain(chain_pem) else {
        return false;
    };
    let Some(top) = ders.last() else { return false };
    let Ok(info) = CertInfo::parse(top, ders.len() - 1) else {
        return false;
    };
    info.issuer_cn.as_deref() == Some(common_name)
        || info.subject_cn.as_deref() == Some(common_name)
}

/// A challenge solver picked for one name.
impl Method<'_> {
    fn challenge_type(&self) -> ChallengeType {
        match self {
            Method::Http01(..) => ChallengeType::Http01,
            Method::Dns01(_) => ChallengeType::Dns01,
        }
    }
}

/// Challenge responses in place: HTTP-01 tokens (withdrawn when dropped)
/// and DNS-01 records (removed by [`Presented::withdraw`], or in the
/// background if the driver was cancelled first).
/// An HTTP-01 route opened for a challenge, to be closed afterwards.
type OpenRoute = (
    Arc<dyn Http01Routes>,
    String,
    String,
    Http01Route,
    RequestOrigin,
);

#[derive(Default)]
struct Presented {
    tokens: Vec<ChallengeToken>,
    records: Vec<(Arc<dyn DnsSolver>, TxtRecord)>,
    routes: Vec<OpenRoute>,
}

impl Presented {
    async fn withdraw(&mut self) {
        self.tokens.clear();
        cleanup(
            std::mem::take(&mut self.records),
            std::mem::take(&mut self.routes),
        )
        .await;
    }
}

impl Drop for Presented {
    fn drop(&mut self) {
        let records = std::mem::take(&mut self.records);
        let routes = std::mem::take(&mut self.routes);
        if records.is_empty() && routes.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(cleanup(records, routes));
        }
    }
}

async fn cleanup(records: Vec<(Arc<dyn DnsSolver>, TxtRecord)>, routes: Vec<OpenRoute>) {
    for (dns, record) in records {
        let fqdn = &record.fqdn;
        match dns.cleanup(&record).await {
            Ok(()) => tracing::debug!(%fqdn, "removed the DNS-01 record"),
            Err(e) => tracing::warn!(%fqdn, error = %e, "could not remove the DNS-01 record"),
        }
    }
    for (routes, host, token, route, context) in routes {
        if let Err(e) = routes.close(&host, &token, &route, &context).await {
            tracing::warn!(%host, error = %e, "could not remove the HTTP-01 challenge route");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_the_request() {
        let mut request = CertificateRequest::for_dns_names(["A.example.com", "b.example.com"]);
        request.ip_addresses.push("192.0.2.1".parse().unwrap());
        request.dns_names.push("a.example.com".into());
        let ids = identifiers_of(&request).unwrap();
        assert_eq!(
            ids,
            vec![
                Identifier::Dns("a.example.com".into()),
                Identifier::Dns("b.example.com".into()),
                Identifier::Ip("192.0.2.1".parse().unwrap()),
            ]
        );
        request.common_name = Some("c.example.com".into());
        let err = identifiers_of(&request).unwrap_err().to_string();
        assert!(err.contains("commonName"), "{err}");
        let empty = CertificateRequest::for_dns_names(Vec::<String>::new());
        assert!(identifiers_of(&empty).is_err());
    }

    #[test]
    fn a_ca_certificate_is_refused_before_any_order() {
        let mut request = CertificateRequest::for_dns_names(["ca.example.com"]);
        request.is_ca = true;
        match identifiers_of(&request) {
            Err(IssueError::Config(why)) => {
                assert!(why.contains("isCA") && why.contains("SelfSigned"), "{why}")
            }
            other => panic!("isCA with ACME should be a configuration error: {other:?}"),
        }
    }

    #[test]
    fn records_round_trip_and_match_their_request() {
        let record = OrderRecord {
            directory_url: "https://ca/dir".into(),
            account_url: "https://ca/acct/1".into(),
            order_url: "https://ca/order/1".into(),
            dns_names: vec!["b.example.com".into(), "a.example.com".into()],
            ip_addresses: vec![],
            private_key: "-----BEGIN PRIVATE KEY-----".into(),
            opened_at: 1,
            replaces: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(
            json.contains("\"orderUrl\":\"https://ca/order/1\""),
            "{json}"
        );
        let back: OrderRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
        assert!(!format!("{record:?}").contains("BEGIN"));
        assert!(record.matches(&CertificateRequest::for_dns_names([
            "a.example.com",
            "b.example.com"
        ])));
        assert!(!record.matches(&CertificateRequest::for_dns_names(["a.example.com"])));
    }

    #[test]
    fn backoff_grows_to_its_cap_and_yields_to_retry_after() {
        let policy = Polling {
            initial: Duration::from_millis(100),
            factor: 2.0,
            max_interval: Duration::from_millis(300),
            timeout: Duration::from_secs(10),
        };
        let mut backoff = Backoff::new(policy);
        let now = Instant::now();
        let ms = |n| Duration::from_millis(n);
        let mut next = |retry_after| backoff.next_wait(retry_after, now, "validation");
        assert_eq!(next(None).unwrap(), ms(100));
        assert_eq!(next(None).unwrap(), ms(200));
        assert_eq!(next(None).unwrap(), ms(300));
        assert_eq!(next(None).unwrap(), ms(300), "capped");
        assert_eq!(next(Some(ms(2000))).unwrap(), ms(2000), "Retry-After wins");
        let err = next(Some(Duration::from_secs(60))).unwrap_err();
        assert!(err.is_transient());
        assert!(err.to_string().contains("look again in 60s"), "{err}");
        let late = backoff.next_wait(None, now + Duration::from_secs(10), "validation");
        assert!(late.is_err(), "past the deadline");
    }
}
