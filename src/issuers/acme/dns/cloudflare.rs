//! Cloudflare: `dns01.cloudflare`, through the Cloudflare API v4.
//!
//! The flow for one challenge record, as cert-manager's provider does it:
//!
//! 1. find the zone: `GET /zones?name=<candidate>`, walking up from the
//!    record's name (`_acme-challenge.www.example.com`, `www.example.com`,
//!    `example.com`) until Cloudflare knows one. A scoped API token sees only
//!    the zones it was given, so "no zone" often means "no permission";
//! 2. `POST /zones/{id}/dns_records` with the TXT value (TTL 120, the
//!    shortest Cloudflare allows on every plan). Cloudflare answers "record
//!    already exists" when a retry adds the same value again: that is
//!    success;
//! 3. on cleanup, list the TXT records at the name with that exact value and
//!    delete those, leaving other values alone (a wildcard and its apex share
//!    one name, each with its own value).
//!
//! Credentials are either an API token (`Authorization: Bearer`), which can
//! be limited to the zones and permissions DNS-01 needs (Zone:Read,
//! DNS:Edit), or the older global API key with the account's e-mail
//! (`X-Auth-Key`, `X-Auth-Email`). Neither is ever logged, shown by `Debug`
//! or put into an error: an answer that quotes one back has it replaced
//! before any of its text is used.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, StatusCode, Uri};
use serde::Deserialize;

use super::api::{self, ApiClient, ApiResponse};
use super::{DnsSolver, SolverFuture, TxtRecord};
use crate::model::IssueError;

/// Cloudflare's API v4 endpoint.
pub const DEFAULT_API_URL: &str = "https://api.cloudflare.com/client/v4";

/// TTL of the challenge record: 120 s is the shortest Cloudflare accepts
/// (below that it means "automatic", 300 s).
pub const RECORD_TTL: u32 = 120;

/// The most zone names tried for one record: a DNS name has at most 127
/// labels.
const MAX_ZONE_WALK: usize = 127;

/// Zones remembered between present and cleanup (and across certificates);
/// forgotten all at once when full.
const ZONE_CACHE_ENTRIES: usize = 1024;

/// Cloudflare error codes meaning "this exact record is already there"
/// (older and newer wording of the same refusal).
const RECORD_EXISTS: [i64; 2] = [81057, 81058];

/// Cloudflare error codes for a record that is already gone.
const RECORD_MISSING: [i64; 1] = [81044];

/// Cloudflare error codes that mean the credentials were refused, which
/// Cloudflare sometimes sends with HTTP 400 rather than 401 or 403
/// (malformed or unknown token, unknown key or e-mail).
const AUTH_CODES: [i64; 7] = [6003, 6103, 6111, 9103, 9106, 9109, 10000];

/// How certweave authenticates to Cloudflare: cert-manager's
/// `apiTokenSecretRef` or `apiKeySecretRef` with `email`.
#[derive(Clone, PartialEq, Eq)]
pub enum CloudflareAuth {
    /// An API token (`Authorization: Bearer …`): the recommended form, as
    /// it can be limited to Zone:Read and DNS:Edit on the zones in use.
    ApiToken(String),
    /// The account's global API key with its e-mail (`X-Auth-Email`,
    /// `X-Auth-Key`): full access to the account, kept for compatibility.
    ApiKey { email: String, key: String },
}

/// The token and key are redacted.
impl fmt::Debug for CloudflareAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloudflareAuth::ApiToken(_) => f.debug_tuple("ApiToken").field(&"<redacted>").finish(),
            CloudflareAuth::ApiKey { email, .. } => f
                .debug_struct("ApiKey")
                .field("email", email)
                .field("key", &"<redacted>")
                .finish(),
        }
    }
}

/// Where and how to reach Cloudflare: cert-manager's `dns01.cloudflare`
/// block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudflareConfig {
    pub auth: CloudflareAuth,
    /// The API's base URL, [`DEFAULT_API_URL`] unless testing or going
    /// through a proxy that mirrors the API.
    pub api_url: String,
}

impl CloudflareConfig {
    /// The configuration for Cloudflare itself.
    pub fn new(auth: CloudflareAuth) -> Self {
        Self {
            auth,
            api_url: DEFAULT_API_URL.to_owned(),
        }
    }
}

/// A zone found for a record name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ZoneRef {
    id: String,
    name: String,
}

/// Presents and cleans up DNS-01 TXT records through the Cloudflare API.
/// Cheap to share: calls for different names may run concurrently.
pub struct CloudflareSolver {
    api: ApiClient,
    /// The base URL without a trailing `/`.
    base: String,
    /// Shown in errors: scheme, host and path of the base URL.
    base_shown: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    token: bool,
    /// The secrets, to scrub from any answer text before it is shown.
    secrets: Vec<String>,
    /// Record name → its zone, so cleanup does not walk again.
    zones: Mutex<HashMap<String, ZoneRef>>,
}

impl fmt::Debug for CloudflareSolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareSolver")
            .field("api_url", &self.base_shown)
            .field("auth", &if self.token { "api token" } else { "api key" })
            .finish_non_exhaustive()
    }
}

/// Cloudflare's answer envelope.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<CloudflareError>,
    #[serde(default)]
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct CloudflareError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Debug, Deserialize)]
struct ZoneEntry {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct RecordEntry {
    id: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    content: String,
}

/// A parsed answer that was neither an authentication failure nor a
/// transient one.
struct Answer {
    status: StatusCode,
    envelope: Envelope,
}

impl Answer {
    fn ok(&self) -> bool {
        self.status.is_success() && self.envelope.success
    }

    fn has_code(&self, codes: &[i64]) -> bool {
        self.envelope.errors.iter().any(|e| codes.contains(&e.code))
    }
}

impl CloudflareSolver {
    /// Checks the configuration up front (a usable URL, non-empty
    /// credentials that fit in HTTP headers), so a typo fails before any
    /// order is opened. Errors never quote the credentials.
    pub fn new(config: CloudflareConfig) -> Result<Self, IssueError> {
        let base = config.api_url.trim().trim_end_matches('/').to_owned();
        let uri: Uri = base.parse().map_err(|_| {
            IssueError::Config(
                "the Cloudflare API URL is not a valid URL; leave it unset for Cloudflare itself"
                    .into(),
            )
        })?;
        let base_shown = api::describe(&uri);
        if !matches!(uri.scheme_str(), Some("https" | "http"))
            || uri.host().is_none_or(str::is_empty)
        {
            return Err(IssueError::Config(format!(
                "the Cloudflare API URL {base_shown} must be an http:// or https:// URL with a host"
            )));
        }
        if uri.query().is_some() {
            return Err(IssueError::Config(format!(
                "the Cloudflare API URL {base_shown} must not have a query"
            )));
        }
        let (headers, secrets, token) = match &config.auth {
            CloudflareAuth::ApiToken(token) => {
                let token = token.trim();
                let value = header_value(
                    &format!("Bearer {token}"),
                    "the Cloudflare API token",
                    token.is_empty(),
                )?;
                (vec![(AUTHORIZATION, value)], vec![token.to_owned()], true)
            }
            CloudflareAuth::ApiKey { email, key } => {
                let (email, key) = (email.trim(), key.trim());
                let email_value =
                    header_value(email, "the Cloudflare account e-mail", email.is_empty())?;
                let key_value = header_value(key, "the Cloudflare API key", key.is_empty())?;
                (
                    vec![
                        (HeaderName::from_static("x-auth-email"), email_value),
                        (HeaderName::from_static("x-auth-key"), key_value),
                    ],
                    vec![key.to_owned()],
                    false,
                )
            }
        };
        Ok(Self {
            api: ApiClient::shared(),
            base,
            base_shown,
            headers,
            token,
            secrets,
            zones: Mutex::new(HashMap::new()),
        })
    }

    /// Adds TXT `record.value` at `record.fqdn` in the zone Cloudflare holds
    /// for it; a value already there is success.
    pub async fn present(&self, record: &TxtRecord) -> Result<(), IssueError> {
        let name = record_name(&record.fqdn)?;
        let zone = self.zone_for(&name, &record.domain).await?;
        tracing::debug!(%name, zone = %zone.name, "adding DNS-01 TXT record through Cloudflare");
        let body = serde_json::json!({
            "type": "TXT",
            "name": name,
            "content": record.value,
            "ttl": RECORD_TTL,
        });
        let what = "Cloudflare: create the TXT record";
        let answer = self
            .call(
                what,
                Method::POST,
                &format!("/zones/{}/dns_records", zone.id),
                Some(body),
            )
            .await?;
        if answer.ok() || answer.has_code(&RECORD_EXISTS) {
            return Ok(());
        }
        // The zone may have been deleted and added again under a new id.
        self.forget_zone(&name);
        Err(self.refused(&answer, &format!("{what} {name} in zone {}", zone.name)))
    }

    /// Removes the TXT records at `record.fqdn` whose value is exactly
    /// `record.value`; other values stay. Nothing to remove is success.
    pub async fn cleanup(&self, record: &TxtRecord) -> Result<(), IssueError> {
        let name = record_name(&record.fqdn)?;
        let zone = self.zone_for(&name, &record.domain).await?;
        let what = "Cloudflare: list TXT records";
        let answer = self
            .call(
                what,
                Method::GET,
                &format!(
                    "/zones/{}/dns_records?type=TXT&name={}&content={}",
                    zone.id,
                    query_escape(&name),
                    query_escape(&record.value)
                ),
                None,
            )
            .await?;
        if !answer.ok() {
            self.forget_zone(&name);
            return Err(self.refused(&answer, &format!("{what} at {name}")));
        }
        let records: Vec<RecordEntry> =
            serde_json::from_value(answer.envelope.result).map_err(|e| {
                IssueError::Transient(format!(
                    "{what} at {name} ({}): the answer's `result` is not a list of records: {}",
                    self.base_shown,
                    self.scrub(&api::excerpt(&e.to_string()))
                ))
            })?;
        // The filter is the server's; the decision to delete is ours, on
        // the exact value (Cloudflare may show TXT content quoted).
        for found in records.into_iter().filter(|r| {
            r.kind.eq_ignore_ascii_case("TXT")
                && (r.name.is_empty() || r.name.trim_end_matches('.').eq_ignore_ascii_case(&name))
                && unquote(&r.content) == record.value
        }) {
            check_id(&found.id, "record")?;
            tracing::debug!(%name, zone = %zone.name, "removing DNS-01 TXT record through Cloudflare");
            let what = "Cloudflare: delete the TXT record";
            let answer = self
                .call(
                    what,
                    Method::DELETE,
                    &format!("/zones/{}/dns_records/{}", zone.id, found.id),
                    None,
                )
                .await?;
            if !(answer.ok()
                || answer.status == StatusCode::NOT_FOUND
                || answer.has_code(&RECORD_MISSING))
            {
                return Err(self.refused(&answer, &format!("{what} at {name}")));
            }
        }
        Ok(())
    }

    /// The zone holding `name`: remembered, or found by walking up.
    async fn zone_for(&self, name: &str, domain: &str) -> Result<ZoneRef, IssueError> {
        if let Some(zone) = self.cached_zone(name) {
            return Ok(zone);
        }
        let candidates = zone_candidates(name);
        for candidate in &candidates {
            let what = "Cloudflare: list zones";
            let answer = self
                .call(
                    what,
                    Method::GET,
                    &format!("/zones?name={}", query_escape(candidate)),
                    None,
                )
                .await?;
            if !answer.ok() {
                return Err(self.refused(&answer, &format!("{what} named {candidate}")));
            }
            let zones: Vec<ZoneEntry> =
                serde_json::from_value(answer.envelope.result).map_err(|e| {
                    IssueError::Transient(format!(
                        "{what} named {candidate} ({}): the answer's `result` is not a list of zones: {}",
                        self.base_shown,
                        self.scrub(&api::excerpt(&e.to_string()))
                    ))
                })?;
            if let Some(found) = zones
                .into_iter()
                .find(|z| z.name.trim_end_matches('.').eq_ignore_ascii_case(candidate))
            {
                check_id(&found.id, "zone")?;
                let zone = ZoneRef {
                    id: found.id,
                    name: candidate.clone(),
                };
                self.remember_zone(name, &zone);
                return Ok(zone);
            }
        }
        Err(IssueError::Config(format!(
            "Cloudflare has no zone for {domain} (tried {}): add the domain's zone to the \
             Cloudflare account, or, with an API token, include that zone in the token's \
             Zone:Read and DNS:Edit permissions",
            candidates.join(", ")
        )))
    }

    fn cached_zone(&self, name: &str) -> Option<ZoneRef> {
        self.zones
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(name)
            .cloned()
    }

    fn forget_zone(&self, name: &str) {
        self.zones
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(name);
    }

    fn remember_zone(&self, name: &str, zone: &ZoneRef) {
        let mut zones = self
            .zones
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if zones.len() >= ZONE_CACHE_ENTRIES {
            zones.clear();
        }
        zones.insert(name.to_owned(), zone.clone());
    }

    /// One API call. Authentication failures are configuration errors,
    /// rate limits, server errors and unreadable success answers are
    /// transient; every other answer is returned for the caller to judge.
    async fn call(
        &self,
        what: &str,
        method: Method,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Answer, IssueError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base))
            .header(http::header::ACCEPT, "application/json");
        for (name, value) in &self.headers {
            request = request.header(name, value.clone());
        }
        let body = match body {
            Some(json) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let request = request.body(body).map_err(|e| {
            IssueError::Config(format!(
                "{what}: cannot build a request to {}: {e}",
                self.base_shown
            ))
        })?;
        let response = self.api.send(what, request).await?;
        self.judge(what, response)
    }

    fn judge(&self, what: &str, response: ApiResponse) -> Result<Answer, IssueError> {
        let status = response.status;
        let parsed: Option<Envelope> = serde_json::from_slice(&response.body).ok();
        let auth_refused = status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN
            || parsed.as_ref().is_some_and(|envelope| {
                !envelope.success && envelope.errors.iter().any(|e| AUTH_CODES.contains(&e.code))
            });
        if auth_refused {
            let detail = parsed
                .as_ref()
                .map(|e| self.describe_errors(&e.errors))
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| self.scrub(&response.excerpt()));
            let advice = if self.token {
                "Cloudflare refused the API token: check that it is the current token, \
                 not expired, and has the Zone:Read and DNS:Edit permissions on the zone"
            } else {
                "Cloudflare refused the API key: check the account e-mail and the global \
                 API key (an API token with Zone:Read and DNS:Edit permissions is the \
                 safer choice)"
            };
            return Err(IssueError::Config(format!(
                "{what} ({}): {advice} (HTTP {}: {detail})",
                self.base_shown,
                status.as_u16()
            )));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let after = response
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| format!("; retry after {s}s"))
                .unwrap_or_default();
            return Err(IssueError::Transient(format!(
                "{what} ({}): Cloudflare's rate limit was reached (HTTP 429){after}",
                self.base_shown
            )));
        }
        if status.is_server_error() {
            return Err(IssueError::Transient(format!(
                "{what} ({}): Cloudflare answered HTTP {}: {}",
                self.base_shown,
                status.as_u16(),
                self.scrub(&response.excerpt())
            )));
        }
        match parsed {
            Some(envelope) => Ok(Answer { status, envelope }),
            None if status.is_success() => Err(IssueError::Transient(format!(
                "{what} ({}): the answer (HTTP {}) is not Cloudflare API JSON: {}",
                self.base_shown,
                status.as_u16(),
                self.scrub(&response.excerpt())
            ))),
            None => Err(IssueError::Config(format!(
                "{what} ({}): Cloudflare answered HTTP {} with a body that is not API JSON \
                 (is the API URL right?): {}",
                self.base_shown,
                status.as_u16(),
                self.scrub(&response.excerpt())
            ))),
        }
    }

    /// A refusal that is not about credentials: a human must look at it.
    fn refused(&self, answer: &Answer, doing: &str) -> IssueError {
        let detail = self.describe_errors(&answer.envelope.errors);
        let detail = if detail.is_empty() {
            "no error given".to_owned()
        } else {
            detail
        };
        IssueError::Config(format!(
            "{doing} ({}): Cloudflare refused with HTTP {}: {detail}",
            self.base_shown,
            answer.status.as_u16()
        ))
    }

    /// Cloudflare's errors as `code: message; …`, short and scrubbed.
    fn describe_errors(&self, errors: &[CloudflareError]) -> String {
        let joined = errors
            .iter()
            .take(5)
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        self.scrub(&api::excerpt(&joined))
    }

    /// `text` with every credential replaced.
    fn scrub(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in self.secrets.iter().filter(|s| s.len() >= 4) {
            text = text.replace(secret.as_str(), "<redacted>");
        }
        text
    }
}

impl DnsSolver for CloudflareSolver {
    fn present<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(CloudflareSolver::present(self, record))
    }

    fn cleanup<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(CloudflareSolver::cleanup(self, record))
    }
}

/// A sensitive header value; `empty` or a value that cannot be a header is
/// a configuration error naming `what`, never the value.
fn header_value(value: &str, what: &str, empty: bool) -> Result<HeaderValue, IssueError> {
    if empty {
        return Err(IssueError::Config(format!("{what} is empty")));
    }
    let mut value = HeaderValue::from_str(value).map_err(|_| {
        IssueError::Config(format!(
            "{what} contains characters that cannot be sent in an HTTP header \
             (a line break or a non-ASCII character copied with it?)"
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// The record name without a trailing dot, lower case; a name that cannot
/// be one is a configuration error.
fn record_name(fqdn: &str) -> Result<String, IssueError> {
    let name = fqdn.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 || name.split('.').any(str::is_empty) {
        return Err(IssueError::Config(format!(
            "{:?} is not a DNS name a TXT record can be added at",
            api::excerpt(fqdn)
        )));
    }
    Ok(name)
}

/// The names a zone holding `name` may have, longest first: `name` itself
/// and each parent with at least two labels (Cloudflare holds no top-level
/// zones), at most [`MAX_ZONE_WALK`].
fn zone_candidates(name: &str) -> Vec<String> {
    let labels: Vec<&str> = name.split('.').collect();
    let last = if labels.len() > 1 {
        labels.len() - 2
    } else {
        0
    };
    (0..=last)
        .take(MAX_ZONE_WALK)
        .map(|i| labels[i..].join("."))
        .collect()
}

/// Cloudflare ids are hex; anything else in an answer is not put into a
/// request path.
fn check_id(id: &str, what: &str) -> Result<(), IssueError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IssueError::Transient(format!(
            "Cloudflare answered a {what} id that is not an id: {:?}",
            api::excerpt(id)
        )));
    }
    Ok(())
}

/// `value` percent-encoded for a query string: everything but RFC 3986's
/// unreserved characters.
fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// TXT content without the surrounding quotes Cloudflare may show.
fn unquote(content: &str) -> &str {
    let content = content.trim();
    content
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(t: &str) -> CloudflareConfig {
        CloudflareConfig::new(CloudflareAuth::ApiToken(t.into()))
    }

    #[test]
    fn the_zone_walk_goes_up_to_the_registrable_name() {
        assert_eq!(
            zone_candidates("_acme-challenge.www.example.com"),
            [
                "_acme-challenge.www.example.com",
                "www.example.com",
                "example.com"
            ]
        );
        assert_eq!(zone_candidates("example"), ["example"]);
        let deep = vec!["a"; 200].join(".");
        assert_eq!(zone_candidates(&deep).len(), MAX_ZONE_WALK);
    }

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("_acme-challenge.a.b"), "_acme-challenge.a.b");
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn debug_never_shows_credentials() {
        let auth = CloudflareAuth::ApiKey {
            email: "ops@example.com".into(),
            key: "global-key-value".into(),
        };
        let shown = format!("{:?}", CloudflareConfig::new(auth.clone()));
        assert!(!shown.contains("global-key-value"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let shown = format!("{:?}", token("tok-secret-123"));
        assert!(!shown.contains("tok-secret-123"), "{shown}");
        let solver = CloudflareSolver::new(token("tok-secret-123")).unwrap();
        let shown = format!("{solver:?}");
        assert!(!shown.contains("tok-secret-123"), "{shown}");
        assert!(shown.contains("api.cloudflare.com"), "{shown}");
    }

    #[test]
    fn bad_configurations_are_named_without_the_secret() {
        let err = CloudflareSolver::new(token("  ")).unwrap_err();
        assert!(err.is_config());
        assert!(err.to_string().contains("API token is empty"), "{err}");

        let err = CloudflareSolver::new(token("line\nbreak-secret")).unwrap_err();
        assert!(err.to_string().contains("HTTP header"), "{err}");
        assert!(!err.to_string().contains("break-secret"), "{err}");

        let mut config = token("t0ken");
        config.api_url = "ftp://api.example.com/v4".into();
        let err = CloudflareSolver::new(config).unwrap_err();
        assert!(err.to_string().contains("http:// or https://"), "{err}");

        let err = CloudflareSolver::new(CloudflareConfig::new(CloudflareAuth::ApiKey {
            email: String::new(),
            key: "k".into(),
        }))
        .unwrap_err();
        assert!(err.to_string().contains("e-mail is empty"), "{err}");
    }

    fn answer(solver: &CloudflareSolver, status: u16, body: &str) -> Result<Answer, IssueError> {
        solver.judge(
            "Cloudflare: list zones",
            ApiResponse {
                status: StatusCode::from_u16(status).unwrap(),
                headers: http::HeaderMap::new(),
                body: Bytes::from(body.to_owned()),
            },
        )
    }

    #[test]
    fn refused_credentials_are_configuration_errors_that_say_what_to_check() {
        let solver = CloudflareSolver::new(token("sekrit-token-value")).unwrap();
        let body = r#"{"success":false,"errors":[{"code":9109,"message":"Invalid access token sekrit-token-value"}],"result":null}"#;
        for status in [403, 400] {
            let err = answer(&solver, status, body).err().unwrap();
            let text = err.to_string();
            assert!(err.is_config(), "{text}");
            assert!(text.contains("refused the API token"), "{text}");
            assert!(text.contains("Zone:Read and DNS:Edit"), "{text}");
            assert!(text.contains("9109"), "{text}");
            assert!(!text.contains("sekrit-token-value"), "{text}");
        }
    }

    #[test]
    fn rate_limits_and_server_errors_are_transient() {
        let solver = CloudflareSolver::new(token("t0ken")).unwrap();
        for status in [429, 500, 502] {
            let err = answer(&solver, status, "<html>busy</html>").err().unwrap();
            assert!(err.is_transient(), "{err}");
        }
        let err = answer(&solver, 200, "<html>portal</html>").err().unwrap();
        assert!(err.is_transient(), "{err}");
        let err = answer(&solver, 404, "<html>not found</html>")
            .err()
            .unwrap();
        assert!(err.is_config(), "{err}");
        assert!(err.to_string().contains("API URL"), "{err}");
    }

    #[test]
    fn other_refusals_quote_cloudflares_errors_briefly() {
        let solver = CloudflareSolver::new(token("t0ken")).unwrap();
        let long = "x".repeat(5000);
        let body = format!(
            r#"{{"success":false,"errors":[{{"code":1004,"message":"DNS Validation Error {long}"}}]}}"#
        );
        let answer = answer(&solver, 400, &body).ok().unwrap();
        assert!(!answer.ok());
        let err = solver.refused(&answer, "Cloudflare: create the TXT record");
        let text = err.to_string();
        assert!(err.is_config());
        assert!(text.contains("1004: DNS Validation Error"), "{text}");
        assert!(text.len() < 1000, "{}", text.len());
    }

    #[test]
    fn quoted_txt_content_matches_its_value() {
        assert_eq!(unquote("\"abc\""), "abc");
        assert_eq!(unquote("abc"), "abc");
    }

    #[test]
    fn record_names_are_normalised_and_checked() {
        assert_eq!(
            record_name("_acme-challenge.Example.COM.").unwrap(),
            "_acme-challenge.example.com"
        );
        assert!(record_name("a..b").unwrap_err().is_config());
        assert!(record_name("").unwrap_err().is_config());
    }
}
