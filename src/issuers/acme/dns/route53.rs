//! Route53: `dns01.route53`.
//!
//! cert-manager's fields map onto [`Route53Config`]: `region`,
//! `hostedZoneID`, `accessKeyID` (or `accessKeyIDSecretRef`) with
//! `secretAccessKeySecretRef` as [`Route53Credentials::Keys`], no keys as
//! [`Route53Credentials::Ambient`], and `role` as a role assumed with STS
//! on top of either.
//!
//! The flow for one challenge:
//!
//! 1. the hosted zone is `hostedZoneID`, or else the deepest public zone
//!    found by `ListHostedZonesByName`, walking up from the record's name
//!    (private zones are skipped, as cert-manager does: ACME servers
//!    resolve the public DNS);
//! 2. present reads the TXT record set at the name and UPSERTs it with
//!    every value already there plus the new one, TTL 10 as cert-manager:
//!    a wildcard and its apex share one name, and a plain UPSERT of one
//!    value would replace the other's; then `GetChange` is polled until
//!    Route53 reports the change `INSYNC` on its name servers;
//! 3. cleanup removes just its value: an UPSERT of what remains, or a
//!    DELETE (which must name the exact current set) when it was the last.
//!
//! Reading and changing a set happen under one lock per solver, so two
//! challenges at one name presented at once do not drop each other's value.
//! Another writer of the same record set outside this process could still
//! interleave; Route53 has no conditional UPSERT.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, StatusCode, Uri};

use super::api::{self, ApiClient, ApiResponse};
pub use super::aws::AwsCredentials;
use super::aws::{self, xml, CredentialProvider, CredentialSource, StsEndpoint};
use super::{DnsSolver, SolverFuture, TxtRecord};
use crate::model::IssueError;

/// TTL of the challenge record set, as cert-manager sets it.
pub const CHALLENGE_TTL: u32 = 10;
/// How long [`Route53Solver::present`] waits for a change to be `INSYNC`
/// by default: Route53 usually takes under a minute; cert-manager waits
/// two.
pub const DEFAULT_CHANGE_TIMEOUT: Duration = Duration::from_secs(120);
/// The Route53 API version in every path.
const API: &str = "/2013-04-01";
/// Most names tried when looking for the hosted zone.
const MAX_ZONE_WALK: usize = 12;
/// Zones asked for per `ListHostedZonesByName` (a public and private zone
/// of one name come one after the other).
const ZONES_PER_LOOKUP: u32 = 10;
/// Most TXT values kept at one name: a few challenges, a few records of
/// other tools; far more means something is wrong.
const MAX_TXT_VALUES: usize = 64;
/// Retries of an answer that says "slow down" (Route53 allows five requests
/// a second per account).
const THROTTLE_RETRIES: u32 = 3;

/// Where the signing credentials come from.
#[derive(Debug, Clone)]
pub enum Route53Credentials {
    /// An access key given in the issuer (cert-manager's `accessKeyID` or
    /// `accessKeyIDSecretRef`, and `secretAccessKeySecretRef`).
    Keys(AwsCredentials),
    /// A role assumed with an OIDC token from a file
    /// (`AssumeRoleWithWebIdentity`): what EKS IAM roles for service
    /// accounts provide.
    WebIdentity {
        role_arn: String,
        token_file: PathBuf,
    },
    /// No keys in the issuer: found in the process environment when the
    /// solver is made, as AWS SDKs do: `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (with `AWS_SESSION_TOKEN`), else
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`. Instance profiles
    /// and shared credential files are not read. Whether an issuer may use
    /// ambient credentials at all is the caller's decision (cert-manager
    /// allows them for ClusterIssuers only, by default).
    Ambient,
}

/// Where Route53 and STS are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route53Endpoints {
    /// The Route53 API, e.g. `https://route53.amazonaws.com`.
    pub route53: String,
    /// STS, for roles, e.g. `https://sts.eu-west-1.amazonaws.com`.
    pub sts: String,
}

impl Route53Endpoints {
    /// AWS's own endpoints for `region`: Route53 is global (one endpoint per
    /// partition); STS is regional when a region is given.
    pub fn aws(region: &str) -> Self {
        let region = region.trim();
        let partition = Partition::of(region);
        let sts = if region.is_empty() {
            format!("https://sts.{}", partition.dns_suffix())
        } else {
            format!("https://sts.{region}.{}", partition.dns_suffix())
        };
        Self {
            route53: partition.route53_endpoint().to_owned(),
            sts,
        }
    }

    /// [`Self::aws`], overridden by the AWS SDKs' variables:
    /// `AWS_ENDPOINT_URL_ROUTE_53`, `AWS_ENDPOINT_URL_STS`, else
    /// `AWS_ENDPOINT_URL` for both (all ignored when
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`). For a Route53-compatible
    /// service or a VPC endpoint.
    pub fn from_env(region: &str) -> Self {
        Self::from_lookup(region, |name| std::env::var(name).ok())
    }

    fn from_lookup(region: &str, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let defaults = Self::aws(region);
        let set = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if set("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return defaults;
        }
        let general = set("AWS_ENDPOINT_URL");
        Self {
            route53: set("AWS_ENDPOINT_URL_ROUTE_53")
                .or_else(|| general.clone())
                .unwrap_or(defaults.route53),
            sts: set("AWS_ENDPOINT_URL_STS")
                .or(general)
                .unwrap_or(defaults.sts),
        }
    }
}

/// AWS partitions: where Route53 is and which region signs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partition {
    Aws,
    China,
    GovCloud,
}

impl Partition {
    fn of(region: &str) -> Self {
        if region.starts_with("cn-") {
            Partition::China
        } else if region.starts_with("us-gov-") {
            Partition::GovCloud
        } else {
            Partition::Aws
        }
    }

    fn dns_suffix(self) -> &'static str {
        match self {
            Partition::China => "amazonaws.com.cn",
            Partition::Aws | Partition::GovCloud => "amazonaws.com",
        }
    }

    fn route53_endpoint(self) -> &'static str {
        match self {
            Partition::Aws => "https://route53.amazonaws.com",
            Partition::China => "https://route53.amazonaws.com.cn",
            Partition::GovCloud => "https://route53.us-gov.amazonaws.com",
        }
    }

    /// The region Route53 requests are signed for, whatever the issuer's
    /// region: Route53 is a global service of the partition.
    fn route53_signing_region(self) -> &'static str {
        match self {
            Partition::Aws => "us-east-1",
            Partition::China => "cn-northwest-1",
            Partition::GovCloud => "us-gov-west-1",
        }
    }
}

/// cert-manager's `dns01.route53` block.
#[derive(Debug, Clone)]
pub struct Route53Config {
    /// `region`: picks the partition and the STS endpoint (empty: the
    /// global STS endpoint and the `aws` partition).
    pub region: String,
    /// `hostedZoneID` (with or without `/hostedzone/`): skips the zone
    /// lookup, and with it the need for `route53:ListHostedZonesByName`.
    pub hosted_zone_id: Option<String>,
    pub credentials: Route53Credentials,
    /// `role`: an IAM role ARN assumed with STS using the credentials
    /// above.
    pub role: Option<String>,
    pub endpoints: Route53Endpoints,
}

impl Route53Config {
    /// A configuration with no hosted zone ID nor role, and the endpoints
    /// from [`Route53Endpoints::from_env`]. With ambient credentials an
    /// empty `region` is taken from `AWS_REGION` or `AWS_DEFAULT_REGION`,
    /// as the SDK cert-manager uses does.
    pub fn new(region: &str, credentials: Route53Credentials) -> Self {
        let mut region = region.trim().to_owned();
        if region.is_empty() && matches!(credentials, Route53Credentials::Ambient) {
            region = ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
                .unwrap_or_default();
        }
        Self {
            endpoints: Route53Endpoints::from_env(&region),
            region,
            hosted_zone_id: None,
            credentials,
            role: None,
        }
    }
}

/// Presents and cleans up DNS-01 TXT records in Route53. Cheap to share;
/// temporary credentials (roles) are fetched once and kept until shortly
/// before they expire.
pub struct Route53Solver {
    client: ApiClient,
    route53: String,
    signing_region: &'static str,
    hosted_zone_id: Option<String>,
    credentials: CredentialProvider,
    change_timeout: Duration,
    poll_interval: Duration,
    /// Held while a record set is read and changed.
    changes: tokio::sync::Mutex<()>,
}

impl fmt::Debug for Route53Solver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route53Solver")
            .field("endpoint", &self.route53)
            .field("hosted_zone_id", &self.hosted_zone_id)
            .field("signer", &self.credentials.describe())
            .finish_non_exhaustive()
    }
}

/// A TXT record set as Route53 holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordSet {
    ttl: u32,
    /// The values as Route53 spells them (`"quoted"`), kept verbatim so
    /// values this solver did not write go back unchanged.
    values: Vec<String>,
}

/// A submitted change.
#[derive(Debug)]
struct Change {
    id: String,
    in_sync: bool,
}

impl Route53Solver {
    /// Checks the configuration (keys not empty, the role an ARN, endpoints
    /// URLs) and resolves ambient credentials, so a mistake fails before
    /// any order is opened.
    pub fn new(config: Route53Config) -> Result<Self, IssueError> {
        let region = config.region.trim().to_owned();
        let partition = Partition::of(&region);
        let role = config
            .role
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty());
        if let Some(role) = &role {
            check_role_arn(role, "role")?;
        }
        let source = match config.credentials {
            Route53Credentials::Keys(keys) => check_keys(keys)?,
            Route53Credentials::WebIdentity {
                role_arn,
                token_file,
            } => {
                check_role_arn(&role_arn, "web identity role")?;
                CredentialSource::WebIdentity {
                    role_arn,
                    token_file,
                    session_name: aws::ROLE_SESSION_NAME.to_owned(),
                }
            }
            Route53Credentials::Ambient => ambient_source(|name| std::env::var(name).ok())?,
        };
        let route53 = check_endpoint(&config.endpoints.route53, "Route53")?;
        let sts = StsEndpoint {
            url: check_endpoint(&config.endpoints.sts, "STS")?
                .parse()
                .map_err(|e| IssueError::config_because("STS endpoint", e))?,
            region: if region.is_empty() {
                "us-east-1".to_owned()
            } else {
                region.clone()
            },
        };
        let hosted_zone_id = match &config.hosted_zone_id {
            Some(id) => check_hosted_zone_id(id, "hostedZoneID")?,
            None => None,
        };
        let client = ApiClient::shared();
        Ok(Self {
            credentials: CredentialProvider::new(client.clone(), source, role, sts),
            client,
            route53,
            signing_region: partition.route53_signing_region(),
            hosted_zone_id,
            change_timeout: DEFAULT_CHANGE_TIMEOUT,
            poll_interval: Duration::from_secs(2),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// How long [`present`](Self::present) waits for Route53 to report the
    /// change `INSYNC` (default [`DEFAULT_CHANGE_TIMEOUT`]).
    pub fn with_change_timeout(mut self, timeout: Duration) -> Self {
        self.change_timeout = timeout;
        self.poll_interval = self
            .poll_interval
            .min(timeout / 4)
            .max(Duration::from_millis(50));
        self
    }

    /// Adds `record`'s value to the TXT record set at its name (keeping
    /// every value already there) and returns once Route53 has the change
    /// on all its name servers.
    pub async fn present(&self, record: &TxtRecord) -> Result<(), IssueError> {
        let name = record_name(&record.fqdn)?;
        let zone = self.hosted_zone(&name).await?;
        let change = {
            let _changing = self.changes.lock().await;
            let current = self.read_txt(&zone, &name).await?;
            let mut values = current.map(|set| set.values).unwrap_or_default();
            if values.iter().any(|v| unquote(v) == record.value) {
                tracing::debug!(%name, %zone, "the DNS-01 TXT value is already in Route53");
                return Ok(());
            }
            if values.len() >= MAX_TXT_VALUES {
                return Err(IssueError::Config(format!(
                    "Route53 zone {zone} already holds {} TXT values at {name}; remove the stale ones",
                    values.len()
                )));
            }
            values.push(quote(&record.value));
            tracing::debug!(%name, %zone, values = values.len(), "adding a DNS-01 TXT value in Route53");
            self.change(&zone, "UPSERT", &name, CHALLENGE_TTL, &values)
                .await?
        };
        if change.in_sync {
            return Ok(());
        }
        self.wait_in_sync(&change.id, &name).await
    }

    /// Removes `record`'s value from the TXT record set at its name, and
    /// the set when it was the last value. Removing a value that is not
    /// there succeeds. Does not wait for `INSYNC`: nothing waits on it.
    pub async fn cleanup(&self, record: &TxtRecord) -> Result<(), IssueError> {
        let name = record_name(&record.fqdn)?;
        let zone = self.hosted_zone(&name).await?;
        let _changing = self.changes.lock().await;
        let Some(current) = self.read_txt(&zone, &name).await? else {
            return Ok(());
        };
        let remaining: Vec<String> = current
            .values
            .iter()
            .filter(|v| unquote(v) != record.value)
            .cloned()
            .collect();
        if remaining.len() == current.values.len() {
            return Ok(());
        }
        tracing::debug!(%name, %zone, remaining = remaining.len(), "removing a DNS-01 TXT value from Route53");
        let result = if remaining.is_empty() {
            self.change(&zone, "DELETE", &name, current.ttl, &current.values)
                .await
        } else {
            self.change(&zone, "UPSERT", &name, current.ttl, &remaining)
                .await
        };
        match result {
            Ok(_) => Ok(()),
            // Deleted by someone else since it was read.
            Err(e) if remaining.is_empty() && e.to_string().contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The ID of the hosted zone that holds `fqdn`: the configured one, or
    /// the deepest public zone whose name `fqdn` is in or under.
    pub async fn hosted_zone(&self, fqdn: &str) -> Result<String, IssueError> {
        if let Some(id) = &self.hosted_zone_id {
            return Ok(id.clone());
        }
        let name = record_name(fqdn)?;
        let labels: Vec<&str> = name.split('.').collect();
        let mut tried = Vec::new();
        let mut private = Vec::new();
        for start in 0..labels.len().min(MAX_ZONE_WALK) {
            let candidate = labels[start..].join(".");
            let path = format!(
                "{API}/hostedzonesbyname?dnsname={}&maxitems={ZONES_PER_LOOKUP}",
                aws::encode(format!("{candidate}.").as_bytes())
            );
            let what = format!("Route53: look up hosted zone {candidate}");
            let response = self.call(&what, Method::GET, path, None).await?;
            let root = read_xml(&what, &response)?;
            for zone in root
                .find("HostedZones")
                .map(|z| z.children("HostedZone").collect::<Vec<_>>())
                .unwrap_or_default()
            {
                let zone_name = zone.child("Name").map(|n| n.text()).unwrap_or("");
                if !same_name(zone_name, &candidate) {
                    continue;
                }
                let id = zone.child("Id").map(|i| i.text()).unwrap_or("");
                let is_private = zone
                    .find("PrivateZone")
                    .is_some_and(|p| p.text().eq_ignore_ascii_case("true"));
                if is_private {
                    private.push(format!("{candidate} ({})", bare_id(id, "/hostedzone/")));
                    continue;
                }
                if !id.is_empty() {
                    let id = bare_id(id, "/hostedzone/").to_owned();
                    tracing::debug!(%name, zone = %candidate, %id, "found the Route53 hosted zone");
                    return Ok(id);
                }
            }
            tried.push(candidate);
        }
        let private = if private.is_empty() {
            String::new()
        } else {
            format!(
                "; private zones are not used, since ACME servers resolve the public DNS: {}",
                private.join(", ")
            )
        };
        Err(IssueError::Config(format!(
            "no public Route53 hosted zone holds {name} for the {}: tried {}{private}; create the zone in this account, or give hostedZoneID (certweave issue: --route53-hosted-zone-id)",
            self.credentials.describe(),
            tried.join(", ")
        )))
    }

    /// The TXT record set at `name` in `zone`, if there is one.
    async fn read_txt(&self, zone: &str, name: &str) -> Result<Option<RecordSet>, IssueError> {
        let path = format!(
            "{API}/hostedzone/{zone}/rrset?name={}&type=TXT&maxitems=1",
            aws::encode(format!("{name}.").as_bytes())
        );
        let what = format!("Route53: read TXT {name} in zone {zone}");
        let response = self.call(&what, Method::GET, path, None).await?;
        let root = read_xml(&what, &response)?;
        let Some(set) = root.descendants("ResourceRecordSet").next() else {
            return Ok(None);
        };
        // The listing starts at the name: the first set may be another's.
        let set_name = set.child("Name").map(|n| n.text()).unwrap_or("");
        let set_type = set.child("Type").map(|t| t.text()).unwrap_or("");
        if !same_name(set_name, name) || set_type != "TXT" {
            return Ok(None);
        }
        if set.child("SetIdentifier").is_some() {
            return Err(IssueError::Config(format!(
                "the TXT record at {name} in Route53 zone {zone} uses a routing policy (SetIdentifier); DNS-01 needs a simple record there"
            )));
        }
        let ttl = set
            .child("TTL")
            .and_then(|t| t.text().parse().ok())
            .unwrap_or(CHALLENGE_TTL);
        let values: Vec<String> = set
            .descendants("Value")
            .take(MAX_TXT_VALUES + 1)
            .map(|v| v.text().to_owned())
            .collect();
        if values.len() > MAX_TXT_VALUES {
            return Err(IssueError::Config(format!(
                "Route53 zone {zone} holds more than {MAX_TXT_VALUES} TXT values at {name}; remove the stale ones"
            )));
        }
        Ok((!values.is_empty()).then_some(RecordSet { ttl, values }))
    }

    /// Submits one change of the TXT set at `name` to `values`.
    async fn change(
        &self,
        zone: &str,
        action: &str,
        name: &str,
        ttl: u32,
        values: &[String],
    ) -> Result<Change, IssueError> {
        let records: String = values
            .iter()
            .map(|v| {
                format!(
                    "<ResourceRecord><Value>{}</Value></ResourceRecord>",
                    xml::escape(v)
                )
            })
            .collect();
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Comment>certweave DNS-01</Comment><Changes><Change><Action>{action}</Action><ResourceRecordSet><Name>{}.</Name><Type>TXT</Type><TTL>{ttl}</TTL><ResourceRecords>{records}</ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"#,
            xml::escape(name)
        );
        let what = format!("Route53: {action} TXT {name} in zone {zone}");
        let path = format!("{API}/hostedzone/{zone}/rrset/");
        let response = self.call(&what, Method::POST, path, Some(body)).await?;
        read_change(&what, &response)
    }

    /// Polls `GetChange` until `INSYNC`, for at most the change timeout.
    async fn wait_in_sync(&self, change_id: &str, name: &str) -> Result<(), IssueError> {
        let deadline = Instant::now() + self.change_timeout;
        let what = format!("Route53: status of change {change_id} (TXT {name})");
        let path = format!("{API}/change/{change_id}");
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(IssueError::Transient(format!(
                    "Route53 accepted the TXT record at {name} but change {change_id} is still not INSYNC after {}s",
                    self.change_timeout.as_secs()
                )));
            }
            tokio::time::sleep(self.poll_interval.min(deadline - now)).await;
            let response = self.call(&what, Method::GET, path.clone(), None).await?;
            if read_change(&what, &response)?.in_sync {
                return Ok(());
            }
        }
    }

    /// Signs and sends one Route53 request; a failed answer becomes an
    /// error naming who signed. Throttled requests are retried a few times.
    async fn call(
        &self,
        what: &str,
        method: Method,
        path_and_query: String,
        body: Option<String>,
    ) -> Result<ApiResponse, IssueError> {
        let uri: Uri = format!("{}{path_and_query}", self.route53)
            .parse()
            .map_err(|e| IssueError::config_because(format!("{what}: request URL"), e))?;
        let mut pause = Duration::from_millis(500);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let credentials = self.credentials.get().await?;
            let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
            if body.is_some() {
                builder = builder.header(CONTENT_TYPE, "application/xml");
            }
            let mut request = builder
                .body(body.clone().map(Bytes::from).unwrap_or_default())
                .map_err(|e| IssueError::config_because(format!("{what}: request"), e))?;
            aws::sign(
                &mut request,
                "route53",
                self.signing_region,
                &credentials,
                std::time::SystemTime::now(),
            )?;
            let response = self.client.send(what, request).await?;
            if response.status.is_success() {
                return Ok(response);
            }
            if credentials.is_temporary() && aws::is_expired_token(&response) {
                self.credentials.forget().await;
            }
            let throttled = response.status == StatusCode::TOO_MANY_REQUESTS
                || aws::parse_error(&response.body).is_some_and(|e| {
                    matches!(
                        e.code.as_str(),
                        "Throttling" | "ThrottlingException" | "PriorRequestNotComplete"
                    )
                });
            if throttled && attempt <= THROTTLE_RETRIES {
                tokio::time::sleep(pause).await;
                pause *= 2;
                continue;
            }
            if let Some(error) = aws::parse_error(&response.body) {
                if error.code == "NoSuchHostedZone" {
                    return Err(IssueError::Config(format!(
                        "{what}: {}; check hostedZoneID (certweave issue: --route53-hosted-zone-id), and that the zone is in the account of the {}",
                        api::excerpt(&error.message),
                        self.credentials.describe()
                    )));
                }
            }
            return Err(aws::classify(what, &self.credentials.describe(), &response));
        }
    }
}

impl DnsSolver for Route53Solver {
    fn present<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(Route53Solver::present(self, record))
    }

    fn cleanup<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(Route53Solver::cleanup(self, record))
    }
}

fn check_keys(keys: AwsCredentials) -> Result<CredentialSource, IssueError> {
    if keys.access_key_id().is_empty() {
        return Err(IssueError::Config(
            "the Route53 access key ID is empty; set accessKeyID (or accessKeyIDSecretRef), or leave both keys out for ambient credentials".into(),
        ));
    }
    if keys.secret_is_empty() {
        return Err(IssueError::Config(format!(
            "the secret access key for Route53 access key {} is empty; check secretAccessKeySecretRef",
            keys.access_key_id()
        )));
    }
    Ok(CredentialSource::Keys(keys))
}

/// The SDK's order: keys in the environment, then a web identity.
fn ambient_source(lookup: impl Fn(&str) -> Option<String>) -> Result<CredentialSource, IssueError> {
    if let Some(keys) = AwsCredentials::from_lookup(&lookup) {
        return Ok(CredentialSource::Keys(keys));
    }
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    if let (Some(token_file), Some(role_arn)) =
        (set("AWS_WEB_IDENTITY_TOKEN_FILE"), set("AWS_ROLE_ARN"))
    {
        check_role_arn(role_arn.trim(), "AWS_ROLE_ARN")?;
        return Ok(CredentialSource::WebIdentity {
            role_arn: role_arn.trim().to_owned(),
            token_file: PathBuf::from(token_file.trim()),
            session_name: set("AWS_ROLE_SESSION_NAME")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| aws::ROLE_SESSION_NAME.to_owned()),
        });
    }
    Err(IssueError::Config(
        "Route53 has no keys and no ambient AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run under an EKS service account with an IAM role (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN); instance profiles and shared credential files are not read (an Issuer may name its own keys instead: accessKeyID and secretAccessKeySecretRef)".into(),
    ))
}

/// `hostedZoneID` as Route53 takes it: without `/hostedzone/`, `None`
/// when empty; `what` names the setting in the error (a field, a flag).
pub fn check_hosted_zone_id(id: &str, what: &str) -> Result<Option<String>, IssueError> {
    let id = bare_id(id.trim(), "/hostedzone/");
    if id.is_empty() {
        return Ok(None);
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IssueError::Config(format!(
            "Route53 {what} {id:?} is not a hosted zone ID (letters and digits, like Z0123456789ABCDEFGHIJ)"
        )));
    }
    Ok(Some(id.to_owned()))
}

/// Checks that `arn` names an IAM role; `what` names the setting in the
/// error (a field, a flag, an environment variable).
pub fn check_role_arn(arn: &str, what: &str) -> Result<(), IssueError> {
    if arn.starts_with("arn:") && arn.contains(":role/") {
        Ok(())
    } else {
        Err(IssueError::Config(format!(
            "Route53 {what} {arn:?} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        )))
    }
}

/// `url` without a trailing slash, if it is an http(s) URL with a host.
fn check_endpoint(url: &str, what: &str) -> Result<String, IssueError> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed: Uri = trimmed
        .parse()
        .map_err(|e| IssueError::config_because(format!("the {what} endpoint {trimmed:?}"), e))?;
    let usable = matches!(parsed.scheme_str(), Some("http" | "https"))
        && parsed.host().is_some()
        && parsed.query().is_none();
    if !usable {
        return Err(IssueError::Config(format!(
            "the {what} endpoint {:?} is not an http(s) URL with a host",
            api::describe(&parsed)
        )));
    }
    Ok(trimmed.to_owned())
}

/// A record name without its trailing dot, checked to be something
/// Route53 can hold.
fn record_name(fqdn: &str) -> Result<String, IssueError> {
    let name = fqdn.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(name)
    } else {
        Err(IssueError::Config(format!(
            "{fqdn:?} is not a DNS name Route53 can hold a challenge record at"
        )))
    }
}

/// Whether Route53's spelling of a name (trailing dot, any case) is `name`.
fn same_name(route53: &str, name: &str) -> bool {
    route53.trim_end_matches('.').eq_ignore_ascii_case(name)
}

/// `/hostedzone/Z123` or `/change/C123` as `Z123`, `C123`.
fn bare_id<'a>(id: &'a str, prefix: &str) -> &'a str {
    id.strip_prefix(prefix).unwrap_or(id)
}

/// A TXT value as Route53 wants it: one quoted string.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The text of a Route53 TXT value: its quoted strings joined (long values
/// are split into several), with `\"`, `\\` and `\DDD` escapes undone.
fn unquote(raw: &str) -> String {
    let raw = raw.trim();
    if !raw.starts_with('"') {
        return raw.to_owned();
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut inside = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match (inside, b) {
            (false, b'"') => inside = true,
            (false, _) => {}
            (true, b'"') => inside = false,
            (true, b'\\')
                if i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(u8::is_ascii_digit) =>
            {
                let code = bytes[i + 1..i + 4]
                    .iter()
                    .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                out.push(u8::try_from(code).unwrap_or(b'?'));
                i += 3;
            }
            (true, b'\\') if i + 1 < bytes.len() => {
                out.push(bytes[i + 1]);
                i += 1;
            }
            (true, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_xml(what: &str, response: &ApiResponse) -> Result<xml::Element, IssueError> {
    std::str::from_utf8(&response.body)
        .map_err(|_| "not UTF-8".to_owned())
        .and_then(|text| xml::parse(text).map_err(|e| e.to_string()))
        .map_err(|why| {
            IssueError::Transient(format!(
                "{what}: unreadable answer ({why}): {}",
                response.excerpt()
            ))
        })
}

fn read_change(what: &str, response: &ApiResponse) -> Result<Change, IssueError> {
    let root = read_xml(what, response)?;
    let info = root.find("ChangeInfo").ok_or_else(|| {
        IssueError::Transient(format!(
            "{what}: no ChangeInfo in the answer: {}",
            response.excerpt()
        ))
    })?;
    let id = info.child("Id").map(|i| i.text()).unwrap_or("");
    if id.is_empty() {
        return Err(IssueError::Transient(format!(
            "{what}: no change ID in the answer: {}",
            response.excerpt()
        )));
    }
    Ok(Change {
        id: bare_id(id, "/change/").to_owned(),
        in_sync: info
            .child("Status")
            .is_some_and(|s| s.text().eq_ignore_ascii_case("INSYNC")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn endpoints_follow_the_partition_and_the_sdk_variables() {
        assert_eq!(
            Route53Endpoints::aws(""),
            Route53Endpoints {
                route53: "https://route53.amazonaws.com".into(),
                sts: "https://sts.amazonaws.com".into(),
            }
        );
        assert_eq!(
            Route53Endpoints::aws("eu-west-1").sts,
            "https://sts.eu-west-1.amazonaws.com"
        );
        let china = Route53Endpoints::aws("cn-north-1");
        assert_eq!(china.route53, "https://route53.amazonaws.com.cn");
        assert_eq!(china.sts, "https://sts.cn-north-1.amazonaws.com.cn");
        assert_eq!(
            Partition::of("us-gov-east-1").route53_signing_region(),
            "us-gov-west-1"
        );

        let general = Route53Endpoints::from_lookup(
            "eu-west-1",
            env(&[
                ("AWS_ENDPOINT_URL", "http://local:4566"),
                ("AWS_ENDPOINT_URL_STS", "http://sts.local"),
            ]),
        );
        assert_eq!(general.route53, "http://local:4566");
        assert_eq!(general.sts, "http://sts.local");
        let specific = Route53Endpoints::from_lookup(
            "",
            env(&[("AWS_ENDPOINT_URL_ROUTE_53", "http://r53.local")]),
        );
        assert_eq!(specific.route53, "http://r53.local");
        assert_eq!(specific.sts, "https://sts.amazonaws.com");
        let ignored = Route53Endpoints::from_lookup(
            "",
            env(&[
                ("AWS_ENDPOINT_URL", "http://local:4566"),
                ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ]),
        );
        assert_eq!(ignored, Route53Endpoints::aws(""));
    }

    #[test]
    fn ambient_credentials_are_keys_then_a_web_identity() {
        match ambient_source(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])) {
            Ok(CredentialSource::Keys(keys)) => assert_eq!(keys.access_key_id(), "AKID"),
            other => panic!("{other:?}"),
        }
        match ambient_source(env(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ])) {
            Ok(CredentialSource::WebIdentity {
                role_arn,
                token_file,
                session_name,
            }) => {
                assert_eq!(role_arn, "arn:aws:iam::1:role/r");
                assert_eq!(token_file, PathBuf::from("/var/run/token"));
                assert_eq!(session_name, "certweave");
            }
            other => panic!("{other:?}"),
        }
        let err = ambient_source(env(&[])).unwrap_err();
        assert!(
            err.is_config() && err.to_string().contains("AWS_ACCESS_KEY_ID"),
            "{err}"
        );
    }

    fn config(credentials: Route53Credentials) -> Route53Config {
        Route53Config {
            region: "us-east-1".into(),
            hosted_zone_id: None,
            credentials,
            role: None,
            endpoints: Route53Endpoints::aws("us-east-1"),
        }
    }

    #[test]
    fn mistakes_in_the_configuration_fail_early_without_the_secret() {
        let empty_secret = Route53Solver::new(config(Route53Credentials::Keys(
            AwsCredentials::new("AKIAEXAMPLE", " "),
        )))
        .unwrap_err();
        assert!(
            empty_secret.to_string().contains("AKIAEXAMPLE"),
            "{empty_secret}"
        );

        let mut bad_role = config(Route53Credentials::Keys(AwsCredentials::new(
            "AKIAEXAMPLE",
            "very-secret",
        )));
        bad_role.role = Some("my-role".into());
        let err = Route53Solver::new(bad_role).unwrap_err();
        assert!(
            err.is_config() && err.to_string().contains("my-role"),
            "{err}"
        );
        assert!(!err.to_string().contains("very-secret"));

        let mut bad_zone = config(Route53Credentials::Keys(AwsCredentials::new("A", "s")));
        bad_zone.hosted_zone_id = Some("Z1/../x".into());
        assert!(Route53Solver::new(bad_zone).unwrap_err().is_config());

        let mut bad_endpoint = config(Route53Credentials::Keys(AwsCredentials::new("A", "s")));
        bad_endpoint.endpoints.route53 = "route53.local".into();
        assert!(Route53Solver::new(bad_endpoint).unwrap_err().is_config());

        let mut prefixed = config(Route53Credentials::Keys(AwsCredentials::new(
            "A",
            "very-secret",
        )));
        prefixed.hosted_zone_id = Some("/hostedzone/Z0123".into());
        let solver = Route53Solver::new(prefixed).unwrap();
        assert_eq!(solver.hosted_zone_id.as_deref(), Some("Z0123"));
        assert!(!format!("{solver:?}").contains("very-secret"));
    }

    #[test]
    fn txt_values_are_quoted_and_unquoted() {
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("a\"b\\"), r#""a\"b\\""#);
        assert_eq!(unquote(&quote("a\"b\\")), "a\"b\\");
        assert_eq!(unquote(r#""abc" "def""#), "abcdef");
        assert_eq!(unquote(r#""a\032b""#), "a b");
        assert_eq!(unquote("bare"), "bare");
    }

    #[test]
    fn record_names_are_checked_and_compared_without_the_dot() {
        assert_eq!(
            record_name("_acme-challenge.Example.test.").unwrap(),
            "_acme-challenge.example.test"
        );
        for bad in ["", ".", "a..b", "a b.test", "a\"b.test"] {
            assert!(record_name(bad).is_err(), "{bad:?}");
        }
        assert!(same_name("Example.TEST.", "example.test"));
        assert!(!same_name("example.test.", "sub.example.test"));
    }

    #[test]
    fn change_answers_give_the_id_and_status() {
        let response = ApiResponse {
            status: StatusCode::OK,
            headers: Default::default(),
            body: Bytes::from_static(
                br#"<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo><Id>/change/C2682N5HXP0BZ4</Id><Status>PENDING</Status><SubmittedAt>2017-03-10T01:36:41.958Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>"#,
            ),
        };
        let change = read_change("change", &response).unwrap();
        assert_eq!(change.id, "C2682N5HXP0BZ4");
        assert!(!change.in_sync);
    }
}
