//! acme-dns: `dns01.acmeDNS`, for [acme-dns](https://github.com/joohoi/acme-dns)
//! servers.
//!
//! acme-dns is a tiny DNS server with an HTTP API that serves nothing but
//! challenge TXT records. Each name to validate is registered once (by hand:
//! `POST /register`), which gives an account (user name, password) and a
//! random subdomain of the server's zone; the name's owner then points
//! `_acme-challenge.<name>` at that subdomain with a CNAME, once. From then
//! on the account can change that one subdomain's TXT values and nothing
//! else, so the credentials in the cluster cannot touch the real zone.
//!
//! cert-manager keeps the accounts in a Secret as one JSON object keyed by
//! the name being validated, exactly as `/register` answers:
//!
//! ```json
//! { "example.com": { "username": "…", "password": "…",
//!                    "fulldomain": "d420….auth.example.org",
//!                    "subdomain": "d420…", "allowfrom": [] } }
//! ```
//!
//! The key is the name without `*.`: a wildcard and its apex validate at
//! the same `_acme-challenge` name, so they share one account. cert-manager
//! matches the key exactly; a key written with the `*.` prefix is accepted
//! here too, as a fallback, since it names the same record.
//!
//! Presenting is `POST {host}/update` with the account in `X-Api-User` and
//! `X-Api-Key`. acme-dns keeps the two most recent values per subdomain
//! (enough for a wildcard and its apex) and has no way to delete one, so
//! cleanup does nothing: the next update replaces the older value.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use http::{Method, Request, StatusCode, Uri};
use serde_json::Value;

use super::api::{self, ApiClient, ApiResponse};
use super::{DnsSolver, SolverFuture, TxtRecord};
use crate::model::IssueError;

/// The largest account JSON read: a few hundred accounts fit in far less.
pub const MAX_ACCOUNTS_JSON_BYTES: usize = 1 << 20;

/// One acme-dns registration, as `POST /register` answers it.
#[derive(Clone, PartialEq, Eq)]
pub struct AcmeDnsAccount {
    /// `X-Api-User`.
    pub username: String,
    /// `X-Api-Key`; never shown.
    pub password: String,
    /// Where `_acme-challenge.<name>` must point (CNAME); for messages.
    pub fulldomain: String,
    /// The subdomain whose TXT values this account changes.
    pub subdomain: String,
    /// Networks updates are accepted from (empty: any).
    pub allowfrom: Vec<String>,
}

/// The password is redacted.
impl fmt::Debug for AcmeDnsAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeDnsAccount")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("fulldomain", &self.fulldomain)
            .field("subdomain", &self.subdomain)
            .field("allowfrom", &self.allowfrom)
            .finish()
    }
}

/// Reads cert-manager's account JSON (the Secret's value): an object from
/// domain to account. Errors say which domain and which field is wrong, or
/// where the JSON breaks, and never quote a value.
pub fn parse_accounts(json: &[u8]) -> Result<BTreeMap<String, AcmeDnsAccount>, IssueError> {
    const WHAT: &str = "the acme-dns account JSON";
    if json.len() > MAX_ACCOUNTS_JSON_BYTES {
        return Err(IssueError::Config(format!(
            "{WHAT} is {} bytes, more than the {MAX_ACCOUNTS_JSON_BYTES} accepted",
            json.len()
        )));
    }
    // Not serde's own messages: they quote the offending value, which may
    // be a password.
    let value: Value = serde_json::from_slice(json).map_err(|e| {
        IssueError::Config(format!(
            "{WHAT} is not valid JSON ({} at line {}, column {})",
            match e.classify() {
                serde_json::error::Category::Eof => "it ends early",
                _ => "syntax error",
            },
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(IssueError::Config(format!(
            "{WHAT} must be an object keyed by domain, as {{\"example.com\": {{\"username\": …, \
             \"password\": …, \"fulldomain\": …, \"subdomain\": …}}}}; it is {}",
            kind(&value)
        )));
    };
    if map.is_empty() {
        return Err(IssueError::Config(format!(
            "{WHAT} holds no accounts; register with the acme-dns server (POST /register) and \
             add the answer under the domain's name"
        )));
    }
    let mut accounts = BTreeMap::new();
    for (domain, entry) in map {
        let shown = api::excerpt(&domain);
        let Value::Object(fields) = entry else {
            return Err(IssueError::Config(format!(
                "{WHAT}: the entry for {shown:?} must be an object with username, password, \
                 fulldomain and subdomain; it is {}",
                kind(&entry)
            )));
        };
        let text = |field: &str, required: bool| -> Result<String, IssueError> {
            match fields.get(field) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
                None | Some(Value::Null) if !required => Ok(String::new()),
                Some(Value::String(_)) if !required => Ok(String::new()),
                None => Err(IssueError::Config(format!(
                    "{WHAT}: the entry for {shown:?} has no {field:?}"
                ))),
                Some(Value::String(_)) => Err(IssueError::Config(format!(
                    "{WHAT}: the entry for {shown:?} has an empty {field:?}"
                ))),
                Some(other) => Err(IssueError::Config(format!(
                    "{WHAT}: the entry for {shown:?} has a {field:?} that is {}, not a string",
                    kind(other)
                ))),
            }
        };
        let username = text("username", true)?;
        let password = text("password", true)?;
        let subdomain = text("subdomain", true)?;
        let fulldomain = text("fulldomain", false)?;
        let allowfrom = match fields.get("allowfrom") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(IssueError::Config(format!(
                        "{WHAT}: the entry for {shown:?} has an \"allowfrom\" item that is {}, \
                         not a string",
                        kind(other)
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(IssueError::Config(format!(
                    "{WHAT}: the entry for {shown:?} has an \"allowfrom\" that is {}, not a list",
                    kind(other)
                )))
            }
        };
        for (field, value) in [("username", &username), ("password", &password)] {
            if HeaderValue::from_str(value).is_err() {
                return Err(IssueError::Config(format!(
                    "{WHAT}: the entry for {shown:?} has a {field:?} with characters that cannot \
                     be sent in an HTTP header"
                )));
            }
        }
        accounts.insert(
            domain,
            AcmeDnsAccount {
                username,
                password,
                fulldomain,
                subdomain,
                allowfrom,
            },
        );
    }
    Ok(accounts)
}

/// A JSON value's kind, for messages that must not show the value.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The account for `domain` (without `*.` or a trailing dot): its own key,
/// else the key with `*.`, compared without case or trailing dots. Shared
/// with `certweave issue`, which checks every name has one before it asks
/// the CA for anything.
pub fn account_for<'a>(
    accounts: &'a BTreeMap<String, AcmeDnsAccount>,
    domain: &str,
) -> Option<&'a AcmeDnsAccount> {
    let domain = domain.trim_end_matches('.');
    let wildcard = format!("*.{domain}");
    accounts
        .get(domain)
        .or_else(|| accounts.get(&wildcard))
        .or_else(|| {
            accounts.iter().find_map(|(key, account)| {
                let key = key.trim_end_matches('.');
                (key.eq_ignore_ascii_case(domain) || key.eq_ignore_ascii_case(&wildcard))
                    .then_some(account)
            })
        })
}

/// cert-manager's `dns01.acmeDNS` block with its Secret read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeDnsConfig {
    /// The acme-dns server's API URL (`https://auth.example.org`).
    pub host: String,
    /// Domain (without `*.`) → account, as [`parse_accounts`] reads them.
    pub accounts: BTreeMap<String, AcmeDnsAccount>,
}

/// Presents DNS-01 TXT records through an acme-dns server. Cheap to share.
pub struct AcmeDnsSolver {
    api: ApiClient,
    /// `{host}/update`.
    update_url: String,
    /// Shown in errors.
    host_shown: String,
    accounts: BTreeMap<String, AcmeDnsAccount>,
}

impl fmt::Debug for AcmeDnsSolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcmeDnsSolver")
            .field("host", &self.host_shown)
            .field("domains", &self.accounts.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl AcmeDnsSolver {
    /// Checks the host URL up front, so a typo fails before any order is
    /// opened.
    pub fn new(config: AcmeDnsConfig) -> Result<Self, IssueError> {
        let host = config.host.trim().trim_end_matches('/');
        let uri: Uri = host.parse().map_err(|_| {
            IssueError::Config(
                "the acme-dns host is not a valid URL; give the server's API URL, as \
                 https://auth.example.org"
                    .into(),
            )
        })?;
        let host_shown = api::describe(&uri);
        if !matches!(uri.scheme_str(), Some("https" | "http"))
            || uri.host().is_none_or(str::is_empty)
            || uri.query().is_some()
        {
            return Err(IssueError::Config(format!(
                "the acme-dns host {host_shown} must be an http:// or https:// URL with a host \
                 and no query"
            )));
        }
        Ok(Self {
            api: ApiClient::shared(),
            update_url: format!("{host}/update"),
            host_shown,
            accounts: config.accounts,
        })
    }

    /// The account for `domain`: its own key, or the key with `*.`.
    fn account(&self, domain: &str) -> Result<&AcmeDnsAccount, IssueError> {
        let domain = domain.trim_end_matches('.');
        account_for(&self.accounts, domain).ok_or_else(|| {
            IssueError::Config(format!(
                "the acme-dns account Secret has no account for {domain}: register one with \
                 the acme-dns server (POST /register), add the answer under the key \
                 {domain:?} (without \"*.\", also for a wildcard), and point \
                 _acme-challenge.{domain} at its fulldomain with a CNAME"
            ))
        })
    }

    /// Sets `record.value` as the newest TXT value of the subdomain of
    /// `record.domain`'s account. `record.fqdn` is not used: where the
    /// record is served is the account's `fulldomain`, which
    /// `_acme-challenge.<domain>` must point at.
    pub async fn present(&self, record: &TxtRecord) -> Result<(), IssueError> {
        let account = self.account(&record.domain)?;
        let what = "acme-dns: update the TXT record";
        let body = serde_json::json!({"subdomain": account.subdomain, "txt": record.value});
        let mut user = HeaderValue::from_str(&account.username).map_err(|_| {
            IssueError::Config(format!(
                "the acme-dns account for {} has a username that cannot be sent in an HTTP header",
                record.domain
            ))
        })?;
        user.set_sensitive(true);
        let mut key = HeaderValue::from_str(&account.password).map_err(|_| {
            IssueError::Config(format!(
                "the acme-dns account for {} has a password that cannot be sent in an HTTP header",
                record.domain
            ))
        })?;
        key.set_sensitive(true);
        let request = Request::builder()
            .method(Method::POST)
            .uri(&self.update_url)
            .header(CONTENT_TYPE, "application/json")
            .header(HeaderName::from_static("x-api-user"), user)
            .header(HeaderName::from_static("x-api-key"), key)
            .body(Bytes::from(body.to_string()))
            .map_err(|e| {
                IssueError::Config(format!(
                    "{what}: cannot build a request to {}: {e}",
                    self.host_shown
                ))
            })?;
        tracing::debug!(
            domain = %record.domain,
            fulldomain = %account.fulldomain,
            "updating the acme-dns TXT record"
        );
        let response = self.api.send(what, request).await?;
        self.judge(what, &record.domain, account, response)
    }

    fn judge(
        &self,
        what: &str,
        domain: &str,
        account: &AcmeDnsAccount,
        response: ApiResponse,
    ) -> Result<(), IssueError> {
        let status = response.status;
        if status.is_success() {
            return Ok(());
        }
        let detail = scrub(&response.excerpt(), account);
        let target = &self.host_shown;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let networks = if account.allowfrom.is_empty() {
                String::new()
            } else {
                format!(
                    ", and that this host's address is in the account's allowfrom ({})",
                    api::excerpt(&account.allowfrom.join(", "))
                )
            };
            return Err(IssueError::Config(format!(
                "{what} for {domain} ({target}): acme-dns refused the account (HTTP {}: {detail}); \
                 check that the username, password and subdomain in the account Secret are the \
                 ones this server registered{networks}",
                status.as_u16()
            )));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(IssueError::Transient(format!(
                "{what} for {domain} ({target}): HTTP {}: {detail}",
                status.as_u16()
            )));
        }
        let hint = if detail.contains("bad_subdomain") {
            ": the account's subdomain is not one acme-dns issued"
        } else if detail.contains("bad_txt") {
            ": acme-dns accepts only 43-character challenge values"
        } else {
            ""
        };
        Err(IssueError::Config(format!(
            "{what} for {domain} ({target}): acme-dns refused with HTTP {}{hint}: {detail}",
            status.as_u16()
        )))
    }

    /// Does nothing: acme-dns cannot delete a value, and keeps only the two
    /// most recent per subdomain, so the next update replaces this one.
    pub async fn cleanup(&self, _record: &TxtRecord) -> Result<(), IssueError> {
        Ok(())
    }
}

/// `text` with the account's password replaced.
fn scrub(text: &str, account: &AcmeDnsAccount) -> String {
    if account.password.len() >= 4 {
        text.replace(account.password.as_str(), "<redacted>")
    } else {
        text.to_owned()
    }
}

impl DnsSolver for AcmeDnsSolver {
    fn present<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(AcmeDnsSolver::present(self, record))
    }

    fn cleanup<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(AcmeDnsSolver::cleanup(self, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "example.com": {"username": "eabcdb41-d89f-4580-826f-3e62e9755ef2",
                        "password": "pbAXVjlIOE01xbut7YnAbkhMQIkcwoHO0ek2j4Q0",
                        "fulldomain": "d420c923-bbd7-4056-ab64-c3ca54c9b3cf.auth.example.org",
                        "subdomain": "d420c923-bbd7-4056-ab64-c3ca54c9b3cf",
                        "allowfrom": ["10.244.0.0/16"]},
        "*.other.example": {"username": "u", "password": "p", "subdomain": "s"}
    }"#;

    fn solver(json: &str) -> AcmeDnsSolver {
        AcmeDnsSolver::new(AcmeDnsConfig {
            host: "https://auth.example.org/".into(),
            accounts: parse_accounts(json.as_bytes()).unwrap(),
        })
        .unwrap()
    }

    #[test]
    fn accounts_are_read_as_register_answers_them() {
        let accounts = parse_accounts(GOOD.as_bytes()).unwrap();
        let account = &accounts["example.com"];
        assert_eq!(account.subdomain, "d420c923-bbd7-4056-ab64-c3ca54c9b3cf");
        assert_eq!(account.allowfrom, ["10.244.0.0/16"]);
        assert_eq!(accounts["*.other.example"].fulldomain, "");
        let shown = format!("{account:?}");
        assert!(!shown.contains("pbAXVjlIOE01"), "{shown}");
    }

    #[test]
    fn broken_account_json_is_named_without_echoing_it() {
        let cases = [
            (
                r#"{"example.com": {"username": "u", "password": "hunter22""#,
                "line 1",
            ),
            (r#"["hunter22"]"#, "must be an object keyed by domain"),
            ("{}", "holds no accounts"),
            (
                r#"{"example.com": "hunter22"}"#,
                "\"example.com\" must be an object",
            ),
            (
                r#"{"example.com": {"username": "u", "subdomain": "s"}}"#,
                "has no \"password\"",
            ),
            (
                r#"{"example.com": {"username": "u", "password": 12345678, "subdomain": "s"}}"#,
                "\"password\" that is a number",
            ),
            (
                r#"{"example.com": {"username": "u", "password": "  ", "subdomain": "s"}}"#,
                "empty \"password\"",
            ),
            (
                r#"{"example.com": {"username": "u", "password": "hunter22\n", "subdomain": "s", "allowfrom": "x"}}"#,
                "not a list",
            ),
        ];
        for (json, want) in cases {
            let err = parse_accounts(json.as_bytes()).unwrap_err();
            let text = err.to_string();
            assert!(err.is_config(), "{text}");
            assert!(text.contains(want), "{json}: {text}");
            assert!(!text.contains("hunter22"), "{text}");
            assert!(!text.contains("12345678"), "{text}");
        }
        let huge = vec![b' '; MAX_ACCOUNTS_JSON_BYTES + 1];
        assert!(parse_accounts(&huge)
            .unwrap_err()
            .to_string()
            .contains("more than"));
    }

    #[test]
    fn accounts_are_found_by_domain_or_its_wildcard_key() {
        let solver = solver(GOOD);
        assert_eq!(
            solver.account("example.com").unwrap().username,
            "eabcdb41-d89f-4580-826f-3e62e9755ef2"
        );
        assert_eq!(solver.account("Example.COM.").unwrap().subdomain.len(), 36);
        assert_eq!(solver.account("other.example").unwrap().username, "u");
        let err = solver.account("missing.example").unwrap_err();
        let text = err.to_string();
        assert!(err.is_config(), "{text}");
        assert!(text.contains("no account for missing.example"), "{text}");
        assert!(text.contains("key \"missing.example\""), "{text}");
        assert!(text.contains("_acme-challenge.missing.example"), "{text}");
    }

    fn respond(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: http::HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn refusals_say_what_to_check() {
        let solver = solver(GOOD);
        let account = solver.account("example.com").unwrap().clone();
        let judge = |status, body: &str| {
            solver.judge(
                "acme-dns: update",
                "example.com",
                &account,
                respond(status, body),
            )
        };
        assert!(judge(200, r#"{"txt": "x"}"#).is_ok());
        let err = judge(
            401,
            r#"{"error": "forbidden pbAXVjlIOE01xbut7YnAbkhMQIkcwoHO0ek2j4Q0"}"#,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(err.is_config(), "{text}");
        assert!(text.contains("refused the account"), "{text}");
        assert!(text.contains("10.244.0.0/16"), "{text}");
        assert!(!text.contains("pbAXVjlIOE01"), "{text}");
        let err = judge(400, r#"{"error": "bad_txt"}"#).unwrap_err();
        assert!(err.to_string().contains("43-character"), "{err}");
        assert!(judge(500, r#"{"error": "db_error"}"#)
            .unwrap_err()
            .is_transient());
    }

    #[test]
    fn the_host_must_be_an_http_url() {
        for host in ["auth.example.org", "ftp://auth.example.org", "http://a?x=1"] {
            let err = AcmeDnsSolver::new(AcmeDnsConfig {
                host: host.into(),
                accounts: BTreeMap::new(),
            })
            .unwrap_err();
            assert!(err.is_config(), "{host}: {err}");
        }
        assert_eq!(solver(GOOD).update_url, "https://auth.example.org/update");
    }
}
