//! The ACME issuer (RFC 8555) and its challenge solvers.
//!
//! [`AcmeIssuer`] turns a [`CertificateRequest`] into a checked [`Bundle`]
//! through one ACME order, on top of instant-acme:
//!
//! - [`account`]: the account key (created once as ECDSA P-256, stored,
//!   reused; cert-manager's RSA keys keep working) and its signatures;
//! - [`client`]: the HTTPS transport (trust, JWS signing, response hints);
//! - [`order`]: one order's record, challenges, polling and finalization;
//! - [`http01`]: the shared HTTP-01 server; [`dns`]: DNS-01 records,
//!   whoever hosts the zone ([`dns01`]: RFC 2136 updates);
//! - `error`: ACME failures as [`IssueError`]s the renewal queue acts on.
//!
//! An order can be driven in one call ([`Issuer::issue`]) or in steps that
//! a caller persists between: [`AcmeIssuer::open_order`] returns an
//! [`OrderRecord`] to store, [`AcmeIssuer::authorize`] solves the
//! challenges, and [`AcmeIssuer::resume`] takes a stored record — after a
//! restart, too — through to the certificate from the same order.

pub mod account;
pub mod client;
pub mod dns;
pub mod dns01;
mod error;
pub mod http01;
pub mod order;
pub mod solvers;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::OnceCell;

pub use account::{AccountInfo, AccountKey, AccountKeyStore, FileKeyStore, MemoryKeyStore};
pub use client::{ExternalAccountBinding, Trust};
pub use dns::{DnsSolver, SolverFuture, TxtRecord};
pub use http01::{Http01Server, Http01Solver};
pub use order::{OrderRecord, Polling};
pub use solvers::{
    GatewayParent, Http01Route, Http01Routes, RuleMethod, SolverRule, SolverSelector, Solvers,
};

use crate::model::{
    Bundle, CertificateRequest, Checkpoint, IssueError, Issuer, RenewalWindow, RequestOrigin,
    SaveCheckpoint, SignedCsr,
};
use crate::pki::{self, KeyEncoding, PrivateKey};
use client::{AcmeHttp, TlsSettings};
use order::Driver;

/// What an ACME issuer talks to and as whom: cert-manager's `spec.acme`
/// without the solvers.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The directory URL (`acme.server`).
    pub directory_url: String,
    /// Contact address for the account (`acme.email`), used by the CA for
    /// expiry and incident notices.
    pub email: Option<String>,
    /// How the server's TLS certificate is checked (`caBundle`,
    /// `skipTLSVerify`).
    pub trust: Trust,
    /// `externalAccountBinding`, for CAs that tie ACME accounts to an
    /// account of their own (ZeroSSL, Google, Sectigo…).
    pub external_account_binding: Option<ExternalAccountBinding>,
    /// `preferredChain`: the common name of the root (or top issuer) to
    /// prefer among the chains the server offers.
    pub preferred_chain: Option<String>,
    /// `profile`: the certificate profile to ask the server for (the ACME
    /// profiles extension, e.g. Let's Encrypt's `shortlived`); the server's
    /// default when `None`.
    pub profile: Option<String>,
    /// `disableAccountKeyGeneration`: use the stored account key only; when
    /// there is none, fail with a configuration error instead of
    /// registering a new account (the key is provisioned out of band).
    pub disable_account_key_generation: bool,
    pub polling: Polling,
}

impl AcmeConfig {
    pub fn new(directory_url: impl Into<String>) -> Self {
        Self {
            directory_url: directory_url.into(),
            email: None,
            trust: Trust::default(),
            external_account_binding: None,
            preferred_chain: None,
            profile: None,
            disable_account_key_generation: false,
            polling: Polling::default(),
        }
    }
}

impl DnsSolver for dns01::Rfc2136Solver {
    fn present<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(dns01::Rfc2136Solver::present(
            self,
            &record.fqdn,
            &record.value,
        ))
    }

    fn cleanup<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(dns01::Rfc2136Solver::cleanup(
            self,
            &record.fqdn,
            &record.value,
        ))
    }
}

/// Issues certificates from an ACME CA.
pub struct AcmeIssuer {
    config: AcmeConfig,
    tls: TlsSettings,
    key_store: Arc<dyn AccountKeyStore>,
    solvers: Solvers,
    session: OnceCell<Session>,
}

/// A logged-in account: found or registered once per issuer.
struct Session {
    account: instant_acme::Account,
    http: AcmeHttp,
    info: AccountInfo,
}

impl std::fmt::Debug for AcmeIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeIssuer")
            .field("directory_url", &self.config.directory_url)
            .field("account_key", &self.key_store.describe())
            .field("solvers", &self.solvers)
            .finish_non_exhaustive()
    }
}

impl AcmeIssuer {
    /// Checks the configuration (the CA bundle parses, the directory is an
    /// https URL); nothing is sent until the first order.
    pub fn new(
        config: AcmeConfig,
        key_store: Arc<dyn AccountKeyStore>,
        solvers: Solvers,
    ) -> Result<Self, IssueError> {
        if !config.directory_url.starts_with("https://") {
            return Err(IssueError::Config(format!(
                "the ACME directory {:?} must be an https:// URL",
                config.directory_url
            )));
        }
        let tls = TlsSettings::new(&config.trust)?;
        Ok(Self {
            config,
            tls,
            key_store,
            solvers,
            session: OnceCell::new(),
        })
    }

    /// Finds the account of the stored key — or, when there is no key yet,
    /// creates one and registers it. Runs once per issuer; later calls
    /// return the same account.
    pub async fn account(&self) -> Result<AccountInfo, IssueError> {
        Ok(self.session().await?.info.clone())
    }

    async fn session(&self) -> Result<&Session, IssueError> {
        self.session.get_or_try_init(|| self.login()).await
    }

    async fn login(&self) -> Result<Session, IssueError> {
        let (key, key_generated) = if self.config.disable_account_key_generation {
            (account::load_key(self.key_store.as_ref()).await?, false)
        } else {
            account::load_or_create_key(self.key_store.as_ref()).await?
        };
        let http = AcmeHttp::new(
            &self.tls,
            Arc::new(key),
            self.config.external_account_binding.clone(),
        );
        let contact: Vec<String> = self
            .config
            .email
            .iter()
            .map(|e| format!("mailto:{e}"))
            .collect();
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        // instant-acme builds the binding over its own throwaway key; the
        // transport re-binds it to the account key with this same HMAC key.
        let binding = self
            .config
            .external_account_binding
            .as_ref()
            .map(|b| instant_acme::ExternalAccountKey::new(b.key_id.clone(), &b.hmac_key));
        let (account, _) = instant_acme::Account::builder_with_http(Box::new(http.clone()))
            .create(
                &instant_acme::NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory_url.clone(),
                binding.as_ref(),
            )
            .await
            .map_err(|e| {
                error::classify(e, "registering the ACME account", http.throttled_for())
            })?;
        let created = http.new_account_status() == Some(http::StatusCode::CREATED);
        let info = AccountInfo {
            url: account.id().to_owned(),
            created,
            key_generated,
        };
        if created && !key_generated {
            tracing::warn!(
                account = %info.url,
                key = %self.key_store.describe(),
                "the stored account key had no account at this ACME server; registered it"
            );
        } else if created {
            tracing::info!(account = %info.url, "registered a new ACME account");
        } else {
            tracing::info!(account = %info.url, "using the existing ACME account");
        }
        Ok(Session {
            account,
            http,
            info,
        })
    }

    fn driver<'a, 's>(&'a self, session: &'a Session, origin: &'a RequestOrigin) -> Driver<'a, 's> {
        Driver {
            report: None,
            origin,
            account: &session.account,
            account_url: &session.info.url,
            directory_url: &self.config.directory_url,
            http: &session.http,
            solvers: &self.solvers,
            polling: self.config.polling,
            profile: self.config.profile.as_deref(),
        }
    }

    /// Opens a new order for `request`, to be signed with `key`. The
    /// returned record is what a caller persists to resume the order.
    pub async fn open_order(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        origin: &RequestOrigin,
    ) -> Result<OrderRecord, IssueError> {
        self.open_order_with(request, key.to_pem(KeyEncoding::Pkcs8)?, origin)
            .await
    }

    /// [`AcmeIssuer::open_order`] with the key as the record keeps it
    /// (empty when the key is not certweave's: a signing request's).
    async fn open_order_with(
        &self,
        request: &CertificateRequest,
        key_pem: String,
        origin: &RequestOrigin,
    ) -> Result<OrderRecord, IssueError> {
        let ids = order::identifiers_of(request)?;
        // Refuse what no solver can validate before asking the CA.
        for id in &ids {
            self.solvers
                .choose(&id.authorized(false).to_string(), &origin.labels)?;
        }
        let session = self.session().await?;
        self.driver(session, origin).open(&ids, key_pem).await
    }

    /// Solves the order's challenges and waits until it can be finalized.
    pub async fn authorize(
        &self,
        record: &OrderRecord,
        origin: &RequestOrigin,
    ) -> Result<(), IssueError> {
        let session = self.checked_session(record).await?;
        let driver = self.driver(session, origin);
        let mut order = driver.load(record).await?;
        driver.authorize(&mut order).await
    }

    /// Takes the order of `record` from wherever it stands — pending,
    /// ready, processing or valid — to a checked bundle for `request`. The
    /// certificate comes from that same order; nothing new is opened.
    pub async fn resume(
        &self,
        record: &OrderRecord,
        request: &CertificateRequest,
        origin: &RequestOrigin,
    ) -> Result<Bundle, IssueError> {
        self.resume_reporting(record, request, origin, None).await
    }

    /// [`AcmeIssuer::resume`], reporting the order's progress to `report`.
    async fn resume_reporting(
        &self,
        record: &OrderRecord,
        request: &CertificateRequest,
        origin: &RequestOrigin,
        report: Option<&SaveCheckpoint<'_>>,
    ) -> Result<Bundle, IssueError> {
        if !record.matches(request) {
            return Err(IssueError::Config(format!(
                "the stored order {} is for {:?}, not for {}; discard it and open a new order",
                record.order_url,
                record.dns_names,
                request.describe_names()
            )));
        }
        let key = PrivateKey::from_pem(&record.private_key)?;
        let session = self.checked_session(record).await?;
        let driver = Driver {
            report,
            ..self.driver(session, origin)
        };
        let mut order = driver.load(record).await?;
        driver.authorize(&mut order).await?;
        let csr = pki::csr_der(request, &key)?;
        let chain_pem = driver
            .finalize(&mut order, &csr, self.config.preferred_chain.as_deref())
            .await?;
        let bundle = bundle_from_chain(chain_pem, &key, request)?;
        tracing::info!(order = %record.order_url, "certificate issued");
        Ok(bundle)
    }

    /// Orders a certificate for a signing request made elsewhere and
    /// finalizes the order with that request as it is. The order is not
    /// resumable across restarts (its record holds no key): an interrupted
    /// one is opened again.
    pub async fn sign_request(
        &self,
        request: &CertificateRequest,
        csr: &SignedCsr,
        origin: &RequestOrigin,
    ) -> Result<Bundle, IssueError> {
        let record = self.open_order_with(request, String::new(), origin).await?;
        let session = self.checked_session(&record).await?;
        let driver = self.driver(session, origin);
        let mut order = driver.load(&record).await?;
        driver.authorize(&mut order).await?;
        let chain_pem = driver
            .finalize(&mut order, &csr.der, self.config.preferred_chain.as_deref())
            .await?;
        let (chain_pem, ca_pem) = split_root(&chain_pem)?;
        let bundle = super::checked_csr_bundle(request, csr, chain_pem, ca_pem, SystemTime::now())?;
        tracing::info!(order = %record.order_url, "certificate issued for a signing request");
        Ok(bundle)
    }

    async fn checked_session(&self, record: &OrderRecord) -> Result<&Session, IssueError> {
        if record.directory_url != self.config.directory_url {
            return Err(IssueError::Config(format!(
                "the stored order belongs to {}, not to this issuer's {}; discard it and open a new order",
                record.directory_url, self.config.directory_url
            )));
        }
        let session = self.session().await?;
        if session.info.url != record.account_url {
            return Err(IssueError::Config(format!(
                "the stored order belongs to account {}, but the account key is now account {}; \
                 discard the order and open a new one",
                record.account_url, session.info.url
            )));
        }
        Ok(session)
    }
}

/// The issued chain without a self-signed root, and that root when the CA
/// sent it along (ACME CAs usually do not, and then it is left unknown).
fn split_root(chain_pem: &str) -> Result<(String, Option<String>), IssueError> {
    let ders = pki::parse_pem_chain(chain_pem)
        .map_err(|e| IssueError::BadBundle(format!("the CA sent an unparsable chain: {e}")))?;
    let mut chain = Vec::new();
    let mut ca_pem = None;
    for (index, der) in ders.iter().enumerate() {
        let info = pki::CertInfo::parse(der, index)?;
        let pem = pki::certificate_pem(der);
        if index > 0 && info.self_signed {
            ca_pem = Some(pem);
        } else {
            chain.push(pem);
        }
    }
    Ok((chain.concat(), ca_pem))
}

/// Checks the issued chain against the key and the request before anyone
/// gets to store it.
fn bundle_from_chain(
    chain_pem: String,
    key: &PrivateKey,
    request: &CertificateRequest,
) -> Result<Bundle, IssueError> {
    let (chain_pem, ca_pem) = split_root(&chain_pem)?;
    let bundle = Bundle {
        chain_pem,
        key_pem: key.to_pem(request.key_encoding)?,
        ca_pem,
    };
    pki::check_bundle(
        &bundle.chain_pem,
        &bundle.key_pem,
        Some(request),
        SystemTime::now(),
    )
    .map_err(|e| IssueError::BadBundle(e.to_string()))?;
    if let Some(ca) = &bundle.ca_pem {
        pki::verify_chain_to_root(&bundle.chain_pem, ca)
            .map_err(|e| IssueError::BadBundle(e.to_string()))?;
    }
    Ok(bundle)
}

impl Issuer for AcmeIssuer {
    fn kind(&self) -> &'static str {
        "acme"
    }

    async fn issue(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        origin: &RequestOrigin,
    ) -> Result<Bundle, IssueError> {
        let record = self.open_order(request, key, origin).await?;
        self.resume(&record, request, origin).await
    }

    /// Resumes the order of a stored [`OrderRecord`] when there is one for
    /// this request; otherwise opens an order, saves its record, and drives
    /// it. A stored order this issuer can no longer use (another directory
    /// or account, other names), or one whose validation failed before it
    /// was resumed, is dropped for a new one.
    async fn issue_resumable<'a>(
        &'a self,
        request: &'a CertificateRequest,
        key: &'a PrivateKey,
        origin: &'a RequestOrigin,
        checkpoint: Option<serde_json::Value>,
        save: &'a SaveCheckpoint<'a>,
    ) -> Result<Bundle, IssueError> {
        if let Some(record) = checkpoint.and_then(|c| serde_json::from_value::<OrderRecord>(c).ok())
        {
            if record.matches(request) && record.directory_url == self.config.directory_url {
                tracing::info!(order = %record.order_url, "resuming the stored ACME order");
                match self
                    .resume_reporting(&record, request, origin, Some(save))
                    .await
                {
                    Err(IssueError::Config(reason)) => {
                        tracing::warn!(order = %record.order_url, %reason, "cannot resume the stored order; opening a new one");
                    }
                    // Validated while no process answered its challenges
                    // (a restart, a crash): the dead order says nothing
                    // about the names. One new order tells; if it fails
                    // too, that failure counts.
                    Err(IssueError::ChallengeFailed(problem)) => {
                        tracing::warn!(order = %record.order_url, error = %problem, "the stored order failed validation before it was resumed (its challenges may have gone unanswered during a restart); opening a new one");
                    }
                    other => return other,
                }
            }
        }
        let record = self.open_order(request, key, origin).await?;
        save(Checkpoint::Resume(
            serde_json::to_value(&record).expect("an order record serialises"),
        ))
        .await;
        self.resume_reporting(&record, request, origin, Some(save))
            .await
    }

    async fn sign_csr<'a>(
        &'a self,
        request: &'a CertificateRequest,
        csr: &'a SignedCsr,
        origin: &'a RequestOrigin,
    ) -> Result<Bundle, IssueError> {
        self.sign_request(request, csr, origin).await
    }

    /// Asks the server's renewal information (RFC 9773) about the
    /// certificate; `None` when the server offers none or the certificate
    /// has no identifier (no authority key identifier).
    async fn renewal_window<'a>(
        &'a self,
        chain_pem: &'a str,
    ) -> Result<Option<RenewalWindow>, IssueError> {
        let Some(id) = pki::ari_certificate_id(chain_pem) else {
            return Ok(None);
        };
        let (aki, serial) = id
            .split_once('.')
            .expect("ari_certificate_id joins two parts");
        let id = instant_acme::CertificateIdentifier {
            authority_key_identifier: aki.into(),
            serial: serial.into(),
        };
        let session = self.session().await?;
        match session.account.renewal_info(&id).await {
            Ok((info, retry_after)) => {
                let time = |t: time::OffsetDateTime| {
                    SystemTime::UNIX_EPOCH + Duration::from_secs(t.unix_timestamp().max(0) as u64)
                };
                Ok(Some(RenewalWindow {
                    start: time(info.suggested_window.start),
                    end: time(info.suggested_window.end),
                    // RFC 9773 §4.3.2: at least every six hours is enough;
                    // a server asking for less than a minute is clamped.
                    check_again: SystemTime::now()
                        + retry_after.clamp(Duration::from_secs(60), Duration::from_secs(6 * 3600)),
                    explanation_url: info.explanation_url,
                }))
            }
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(error::classify(
                e,
                "asking the ACME server for renewal information",
                None,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_need_dns01_and_say_so() {
        let solvers = Solvers {
            http01: Some(Http01Solver::new()),
            ..Default::default()
        };
        let err = solvers
            .choose("*.example.com", &Default::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("DNS-01"), "{err}");
        assert!(err.contains("*.example.com"), "{err}");
        assert!(matches!(
            solvers.choose("www.example.com", &Default::default()),
            Ok(solvers::Method::Http01(..))
        ));
        let none = Solvers::default();
        assert!(none.choose("www.example.com", &Default::default()).is_err());
    }

    #[test]
    fn directories_must_be_https() {
        let err = AcmeIssuer::new(
            AcmeConfig::new("http://ca.example/dir"),
            Arc::new(MemoryKeyStore::default()),
            Solvers::default(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("https://"), "{err}");
    }
}
