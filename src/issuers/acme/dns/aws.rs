//! AWS request signing and credentials for Route53.
//!
//! What the Route53 solver needs from AWS is small: Signature Version 4 on
//! a handful of requests, credentials from three places (keys given in the
//! issuer, the process environment, or an EKS service account's web
//! identity token), STS to turn those into a role's temporary credentials,
//! and reading a few fields out of XML answers. That is written here, on
//! the HMAC and SHA-256 of `ring` already in the tree, rather than taken
//! from the AWS SDK, whose client, runtime and HTTP stack would come along
//! for four API calls.
//!
//! Secrets never leave this module in text: `Debug` redacts them, and
//! errors name the access key ID (which AWS itself shows in consoles and
//! logs) and the role, never the secret key, the session token or the web
//! identity token.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{Method, Request, Uri};
use ring::{digest, hmac};
use time::OffsetDateTime;

use super::api::{self, ApiClient, ApiResponse};
use crate::model::IssueError;

/// The STS API version the Query API calls name.
const STS_VERSION: &str = "2011-06-15";
/// The session name AssumeRole records in CloudTrail: who assumed the role.
pub const ROLE_SESSION_NAME: &str = "certweave";
/// Temporary credentials are renewed this long before they expire, so a
/// request signed with them never arrives after the expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Largest web identity token file read (EKS tokens are about 1 KiB).
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// An AWS access key, with the session token of temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

/// The secret and the session token are redacted.
impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl AwsCredentials {
    /// Long-term keys: cert-manager's `accessKeyID` (or
    /// `accessKeyIDSecretRef`) and `secretAccessKeySecretRef`.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into().trim().to_owned(),
            secret_access_key: secret_access_key.into().trim().to_owned(),
            session_token: None,
        }
    }

    /// Temporary credentials carry a session token, sent with every
    /// request.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// The key ID: safe to show, and what a user checks first.
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Whether the secret access key is missing (an empty Secret key).
    pub fn secret_is_empty(&self) -> bool {
        self.secret_access_key.is_empty()
    }

    /// Whether these are temporary credentials (they have a session token).
    pub fn is_temporary(&self) -> bool {
        self.session_token.is_some()
    }

    /// Ambient keys, as every AWS SDK reads them: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and, for temporary ones,
    /// `AWS_SESSION_TOKEN`. `None` unless both keys are set.
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let credentials = Self::new(set("AWS_ACCESS_KEY_ID")?, set("AWS_SECRET_ACCESS_KEY")?);
        Some(match set("AWS_SESSION_TOKEN") {
            Some(token) => credentials.with_session_token(token.trim()),
            None => credentials,
        })
    }
}

/// Signs `request` for `service` in `region` with AWS Signature Version 4:
/// sets `host`, `x-amz-date`, `x-amz-security-token` (temporary
/// credentials) and `authorization`. Every header already on the request
/// is signed, so set them (content type included) before signing.
pub fn sign(
    request: &mut Request<Bytes>,
    service: &str,
    region: &str,
    credentials: &AwsCredentials,
    now: SystemTime,
) -> Result<(), IssueError> {
    let time = OffsetDateTime::from(now);
    let date = format!(
        "{:04}{:02}{:02}",
        time.year(),
        u8::from(time.month()),
        time.day()
    );
    let amz_date = format!(
        "{date}T{:02}{:02}{:02}Z",
        time.hour(),
        time.minute(),
        time.second()
    );
    let header = |value: &str, what: &str| {
        HeaderValue::from_str(value).map_err(|_| {
            IssueError::Config(format!(
                "the AWS {what} has characters that cannot go into an HTTP header"
            ))
        })
    };
    if !request.headers().contains_key(HOST) {
        let host = host_header(request.uri())?;
        request
            .headers_mut()
            .insert(HOST, header(&host, "endpoint")?);
    }
    request.headers_mut().insert(
        HeaderName::from_static("x-amz-date"),
        header(&amz_date, "date")?,
    );
    if let Some(token) = &credentials.session_token {
        request.headers_mut().insert(
            HeaderName::from_static("x-amz-security-token"),
            header(token, "session token")?,
        );
    }

    let (signed_headers, canonical_headers) = canonical_headers(request);
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method().as_str(),
        canonical_uri(request.uri().path()),
        canonical_query(request.uri().query().unwrap_or("")),
        canonical_headers,
        signed_headers,
        hex(digest::digest(&digest::SHA256, request.body()).as_ref()),
    );
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref())
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    );
    request
        .headers_mut()
        .insert(AUTHORIZATION, header(&authorization, "access key ID")?);
    Ok(())
}

/// `host[:port]` as an HTTP client sends it: the port only when it is not
/// the scheme's default.
fn host_header(uri: &Uri) -> Result<String, IssueError> {
    let host = uri
        .host()
        .ok_or_else(|| IssueError::Config(format!("AWS endpoint {uri} has no host")))?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    Ok(match uri.port_u16() {
        Some(port) if port != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}

/// Headers no proxy may be relied on to keep as they are, left unsigned.
const UNSIGNED_HEADERS: [&str; 4] = ["authorization", "user-agent", "expect", "x-amzn-trace-id"];

/// `(signed header names, canonical header block)`: names lower-cased and
/// sorted, values trimmed with inner runs of spaces folded, repeated
/// headers joined with commas.
fn canonical_headers(request: &Request<Bytes>) -> (String, String) {
    let mut headers: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (name, value) in request.headers() {
        if UNSIGNED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let text = String::from_utf8_lossy(value.as_bytes());
        let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
        headers.entry(name.as_str()).or_default().push(folded);
    }
    let signed = headers.keys().copied().collect::<Vec<_>>().join(";");
    let block = headers
        .iter()
        .map(|(name, values)| format!("{name}:{}\n", values.join(",")))
        .collect();
    (signed, block)
}

/// The path URI-encoded once more, `/` kept: what every service except S3
/// expects. Route53 paths hold only unreserved characters.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/').enumerate() {
        if segment.0 > 0 {
            out.push('/');
        }
        encode_into(segment.1.as_bytes(), &mut out);
    }
    out
}

/// The query's parameters decoded, re-encoded the AWS way and sorted by
/// name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                encode(&percent_decode(name)),
                encode(&percent_decode(value)),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 3986 percent-encoding of everything but the unreserved characters,
/// with upper-case hex, as SigV4 requires (a space is `%20`, never `+`).
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    encode_into(bytes, &mut out);
    out
}

fn encode_into(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = char::from(bytes[i + 1]).to_digit(16);
            let lo = char::from(bytes[i + 2]).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An STS endpoint and the region its requests are signed for.
#[derive(Debug, Clone)]
pub struct StsEndpoint {
    pub url: Uri,
    pub region: String,
}

/// Credentials and when they stop working.
#[derive(Debug, Clone)]
pub struct TemporaryCredentials {
    pub credentials: AwsCredentials,
    pub expires: SystemTime,
}

/// STS `AssumeRole`: `role_arn`'s temporary credentials, asked for with
/// `base`.
pub async fn assume_role(
    client: &ApiClient,
    sts: &StsEndpoint,
    base: &AwsCredentials,
    role_arn: &str,
) -> Result<TemporaryCredentials, IssueError> {
    let body = format!(
        "Action=AssumeRole&RoleArn={}&RoleSessionName={ROLE_SESSION_NAME}&Version={STS_VERSION}",
        encode(role_arn.as_bytes())
    );
    let mut request = sts_request(sts, body)?;
    sign(&mut request, "sts", &sts.region, base, SystemTime::now())?;
    let what = format!("STS: assume role {role_arn}");
    let response = client.send(&what, request).await?;
    let who = format!(
        "access key {} assuming role {role_arn}",
        base.access_key_id()
    );
    read_credentials(&what, &who, &response)
}

/// STS `AssumeRoleWithWebIdentity`: `role_arn`'s temporary credentials for
/// the holder of `token` (an EKS service account's projected token). The
/// request is not signed: the token is the proof.
pub async fn assume_role_with_web_identity(
    client: &ApiClient,
    sts: &StsEndpoint,
    role_arn: &str,
    session_name: &str,
    token: &str,
) -> Result<TemporaryCredentials, IssueError> {
    let body = format!(
        "Action=AssumeRoleWithWebIdentity&RoleArn={}&RoleSessionName={}&WebIdentityToken={}&Version={STS_VERSION}",
        encode(role_arn.as_bytes()),
        encode(session_name.as_bytes()),
        encode(token.trim().as_bytes()),
    );
    let request = sts_request(sts, body)?;
    let what = format!("STS: assume role {role_arn} with a web identity");
    let response = client.send(&what, request).await?;
    let who = format!("the web identity token assuming role {role_arn}");
    read_credentials(&what, &who, &response)
}

fn sts_request(sts: &StsEndpoint, body: String) -> Result<Request<Bytes>, IssueError> {
    Request::builder()
        .method(Method::POST)
        .uri(sts.url.clone())
        .header(
            CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(Bytes::from(body))
        .map_err(|e| IssueError::config_because("STS request", e))
}

fn read_credentials(
    what: &str,
    who: &str,
    response: &ApiResponse,
) -> Result<TemporaryCredentials, IssueError> {
    if !response.status.is_success() {
        return Err(classify(what, who, response));
    }
    let unexpected = |why: &str| {
        IssueError::Transient(format!(
            "{what}: {why} in the answer: {}",
            response.excerpt()
        ))
    };
    let text = std::str::from_utf8(&response.body).map_err(|_| unexpected("not UTF-8"))?;
    let root = xml::parse(text).map_err(|e| unexpected(&e.to_string()))?;
    let credentials = root
        .find("Credentials")
        .ok_or_else(|| unexpected("no Credentials"))?;
    let field = |name: &str| {
        credentials
            .child(name)
            .map(|e| e.text().to_owned())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| IssueError::Transient(format!("{what}: no {name} in the answer")))
    };
    let expiration = field("Expiration")?;
    let expires =
        OffsetDateTime::parse(&expiration, &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                IssueError::Transient(format!(
                    "{what}: the expiration {expiration:?} is not an RFC 3339 time"
                ))
            })?;
    Ok(TemporaryCredentials {
        credentials: AwsCredentials::new(field("AccessKeyId")?, field("SecretAccessKey")?)
            .with_session_token(field("SessionToken")?),
        expires: expires.into(),
    })
}

/// Where credentials come from before any role is assumed.
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Keys given in the issuer or found in the environment.
    Keys(AwsCredentials),
    /// An OIDC token in a file (EKS IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE`),
    /// exchanged for `role_arn`'s credentials; the file is read again at
    /// every exchange, since the kubelet rotates it.
    WebIdentity {
        role_arn: String,
        token_file: PathBuf,
        session_name: String,
    },
}

/// Credentials for signing, assuming a role when one is given and keeping
/// temporary credentials until shortly before they expire.
#[derive(Debug)]
pub struct CredentialProvider {
    client: ApiClient,
    source: CredentialSource,
    role: Option<String>,
    sts: StsEndpoint,
    cache: tokio::sync::Mutex<Option<TemporaryCredentials>>,
}

impl CredentialProvider {
    pub fn new(
        client: ApiClient,
        source: CredentialSource,
        role: Option<String>,
        sts: StsEndpoint,
    ) -> Self {
        Self {
            client,
            source,
            role,
            sts,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    /// Who signs, for error messages: the access key ID and the role.
    pub fn describe(&self) -> String {
        let base = match &self.source {
            CredentialSource::Keys(keys) => format!("access key {}", keys.access_key_id()),
            CredentialSource::WebIdentity {
                role_arn,
                token_file,
                ..
            } => format!(
                "web identity token {} for role {role_arn}",
                token_file.display()
            ),
        };
        match &self.role {
            Some(role) => format!("{base}, assuming role {role}"),
            None => base,
        }
    }

    /// The credentials to sign the next request with.
    pub async fn get(&self) -> Result<AwsCredentials, IssueError> {
        if let (CredentialSource::Keys(keys), None) = (&self.source, &self.role) {
            return Ok(keys.clone());
        }
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref() {
            if SystemTime::now() + REFRESH_MARGIN < cached.expires {
                return Ok(cached.credentials.clone());
            }
        }
        let fresh = self.fetch().await?;
        tracing::debug!(
            signer = %self.describe(),
            access_key_id = fresh.credentials.access_key_id(),
            "obtained temporary AWS credentials"
        );
        let credentials = fresh.credentials.clone();
        *cache = Some(fresh);
        Ok(credentials)
    }

    /// Drops cached temporary credentials (AWS said they expired).
    pub async fn forget(&self) {
        *self.cache.lock().await = None;
    }

    async fn fetch(&self) -> Result<TemporaryCredentials, IssueError> {
        let base = match &self.source {
            CredentialSource::Keys(keys) => keys.clone(),
            CredentialSource::WebIdentity {
                role_arn,
                token_file,
                session_name,
            } => {
                let token = read_token(token_file).await?;
                let identity = assume_role_with_web_identity(
                    &self.client,
                    &self.sts,
                    role_arn,
                    session_name,
                    &token,
                )
                .await?;
                match &self.role {
                    None => return Ok(identity),
                    Some(_) => identity.credentials,
                }
            }
        };
        match &self.role {
            Some(role) => assume_role(&self.client, &self.sts, &base, role).await,
            None => Err(IssueError::Config(
                "no role to assume with long-term keys".into(),
            )),
        }
    }
}

async fn read_token(path: &PathBuf) -> Result<String, IssueError> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await.map_err(|e| {
        IssueError::config_because(
            format!("reading the web identity token {}", path.display()),
            e,
        )
    })?;
    let mut token = String::new();
    file.take(MAX_TOKEN_BYTES)
        .read_to_string(&mut token)
        .await
        .map_err(|e| {
            IssueError::config_because(
                format!("reading the web identity token {}", path.display()),
                e,
            )
        })?;
    if token.trim().is_empty() {
        return Err(IssueError::Config(format!(
            "the web identity token file {} is empty",
            path.display()
        )));
    }
    Ok(token)
}

/// An AWS error answer's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub code: String,
    pub message: String,
}

/// The error in an AWS XML error answer: `<ErrorResponse><Error><Code>`
/// (Route53, STS, IAM; also with an `<Errors>` level), or Route53's
/// `<InvalidChangeBatch><Messages><Message>`.
pub fn parse_error(body: &[u8]) -> Option<AwsError> {
    let root = xml::parse(std::str::from_utf8(body).ok()?).ok()?;
    if root.name == "InvalidChangeBatch" {
        let messages: Vec<&str> = root
            .descendants("Message")
            .map(|m| m.text())
            .take(5)
            .collect();
        return Some(AwsError {
            code: "InvalidChangeBatch".into(),
            message: messages.join("; "),
        });
    }
    let error = root.find("Error")?;
    Some(AwsError {
        code: error.child("Code")?.text().to_owned(),
        message: error
            .child("Message")
            .map(|m| m.text().to_owned())
            .unwrap_or_default(),
    })
}

/// Error codes that mean the credentials themselves were refused.
const BAD_KEY: [&str; 3] = [
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
];
const THROTTLED: [&str; 6] = [
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
];

/// Whether AWS said the temporary credentials used have expired.
pub fn is_expired_token(response: &ApiResponse) -> bool {
    parse_error(&response.body)
        .is_some_and(|e| matches!(e.code.as_str(), "ExpiredToken" | "ExpiredTokenException"))
}

/// A failed AWS answer as an [`IssueError`]: refused credentials and
/// permissions are configuration errors naming `who` signed (the key ID,
/// the role) and what to check; throttling, server errors and expired
/// temporary credentials are transient; other refusals are configuration
/// errors with AWS's own code and message (cut short).
pub fn classify(what: &str, who: &str, response: &ApiResponse) -> IssueError {
    let status = response.status;
    let Some(error) = parse_error(&response.body) else {
        let text = format!("{what}: HTTP {status}: {}", response.excerpt());
        return if status.is_server_error() || status.as_u16() == 429 {
            IssueError::Transient(text)
        } else {
            IssueError::Config(text)
        };
    };
    let message = api::excerpt(&error.message);
    let code = error.code.as_str();
    if BAD_KEY.contains(&code) {
        IssueError::Config(format!(
            "{what}: AWS does not know the {who} ({code}: {message}); check the access key ID (accessKeyID, accessKeyIDSecretRef or AWS_ACCESS_KEY_ID) and that the key is active"
        ))
    } else if code == "SignatureDoesNotMatch" || code == "IncompleteSignature" {
        IssueError::Config(format!(
            "{what}: AWS refused the signature of the {who} ({code}); check that the secret access key (secretAccessKeySecretRef or AWS_SECRET_ACCESS_KEY) belongs to that key ID, and that this machine's clock is right"
        ))
    } else if code == "ExpiredToken" || code == "ExpiredTokenException" {
        IssueError::Transient(format!(
            "{what}: the temporary credentials of the {who} expired ({code}); new ones are fetched on the next try"
        ))
    } else if code == "AccessDenied" || code == "AccessDeniedException" {
        IssueError::Config(format!(
            "{what}: AWS denied the {who} ({code}: {message}); its IAM policy must allow route53:GetChange, route53:ChangeResourceRecordSets, route53:ListResourceRecordSets and route53:ListHostedZonesByName (and sts:AssumeRole when a role is set, which the role's trust policy must allow too)"
        ))
    } else if THROTTLED.contains(&code) || status.is_server_error() || status.as_u16() == 429 {
        IssueError::Transient(format!("{what}: {code}: {message}"))
    } else {
        IssueError::Config(format!("{what}: HTTP {status}: {code}: {message}"))
    }
}

/// Just enough XML to read AWS's answers: elements, text, CDATA, the five
/// predefined entities and character references; namespaces are dropped
/// from names (`<ns:Code>` is `Code`). DOCTYPEs are refused, so no entity
/// is ever expanded from the document itself, and depth and element count
/// are capped (the answer is already capped in size by the API client).
pub mod xml {
    use std::fmt;

    const MAX_DEPTH: usize = 32;
    const MAX_ELEMENTS: usize = 20_000;

    /// An element with its local name, text (the concatenation of its own
    /// text nodes) and child elements.
    #[derive(Debug, Clone, PartialEq, Eq, Default)]
    pub struct Element {
        pub name: String,
        text: String,
        pub children: Vec<Element>,
    }

    impl Element {
        /// The element's text without surrounding whitespace.
        pub fn text(&self) -> &str {
            self.text.trim()
        }

        /// The first child called `name`.
        pub fn child(&self, name: &str) -> Option<&Element> {
            self.children.iter().find(|c| c.name == name)
        }

        /// The children called `name`.
        pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
            self.children.iter().filter(move |c| c.name == name)
        }

        /// The first element called `name` at any depth, this one included
        /// (depth first, in document order).
        pub fn find(&self, name: &str) -> Option<&Element> {
            if self.name == name {
                return Some(self);
            }
            self.children.iter().find_map(|c| c.find(name))
        }

        /// Every element called `name` below this one, in document order.
        pub fn descendants<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
            let mut found = Vec::new();
            collect(self, name, &mut found);
            found.into_iter()
        }
    }

    fn collect<'a>(element: &'a Element, name: &str, found: &mut Vec<&'a Element>) {
        for child in &element.children {
            if child.name == name {
                found.push(child);
            }
            collect(child, name, found);
        }
    }

    /// Why a document could not be read.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct XmlError(pub String);

    impl fmt::Display for XmlError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "malformed XML: {}", self.0)
        }
    }

    impl std::error::Error for XmlError {}

    fn fail<T>(why: impl Into<String>) -> Result<T, XmlError> {
        Err(XmlError(why.into()))
    }

    /// Parses a whole document into its root element.
    pub fn parse(input: &str) -> Result<Element, XmlError> {
        let mut rest = input.trim_start_matches('\u{feff}');
        let mut stack: Vec<(String, Element)> = Vec::new();
        let mut root: Option<Element> = None;
        let mut count = 0usize;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("<?") {
                rest = skip_past(after, "?>")?;
            } else if let Some(after) = rest.strip_prefix("<!--") {
                rest = skip_past(after, "-->")?;
            } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
                let end = after
                    .find("]]>")
                    .ok_or_else(|| XmlError("unterminated CDATA".into()))?;
                match stack.last_mut() {
                    Some((_, element)) => element.text.push_str(&after[..end]),
                    None => return fail("CDATA outside the root element"),
                }
                rest = &after[end + 3..];
            } else if rest.starts_with("<!") {
                return fail("DOCTYPE and other declarations are not accepted");
            } else if let Some(after) = rest.strip_prefix("</") {
                let end = after
                    .find('>')
                    .ok_or_else(|| XmlError("unterminated end tag".into()))?;
                let name = after[..end].trim();
                let Some((open, element)) = stack.pop() else {
                    return fail(format!("</{name}> closes nothing"));
                };
                if open != name {
                    return fail(format!("<{open}> closed by </{name}>"));
                }
                rest = &after[end + 1..];
                match stack.last_mut() {
                    Some((_, parent)) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => return fail("more than one root element"),
                }
            } else if let Some(after) = rest.strip_prefix('<') {
                let end = tag_end(after)?;
                let tag = &after[..end];
                let (tag, empty) = match tag.strip_suffix('/') {
                    Some(tag) => (tag, true),
                    None => (tag, false),
                };
                let qualified = tag
                    .split(|c: char| c.is_ascii_whitespace())
                    .next()
                    .unwrap_or("");
                if qualified.is_empty() {
                    return fail("a tag without a name");
                }
                count += 1;
                if count > MAX_ELEMENTS {
                    return fail(format!("more than {MAX_ELEMENTS} elements"));
                }
                if stack.len() >= MAX_DEPTH {
                    return fail(format!("nested deeper than {MAX_DEPTH}"));
                }
                if root.is_some() {
                    return fail("more than one root element");
                }
                let element = Element {
                    name: local(qualified).to_owned(),
                    ..Default::default()
                };
                rest = &after[end + 1..];
                if empty {
                    match stack.last_mut() {
                        Some((_, parent)) => parent.children.push(element),
                        None => root = Some(element),
                    }
                } else {
                    stack.push((qualified.to_owned(), element));
                }
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                let text = &rest[..end];
                match stack.last_mut() {
                    Some((_, element)) => decode_into(text, &mut element.text)?,
                    None if text.trim().is_empty() => {}
                    None => return fail("text outside the root element"),
                }
                rest = &rest[end..];
            }
        }
        if let Some((open, _)) = stack.last() {
            return fail(format!("<{open}> is never closed"));
        }
        root.ok_or_else(|| XmlError("no root element".into()))
    }

    fn skip_past<'a>(text: &'a str, end: &str) -> Result<&'a str, XmlError> {
        text.find(end)
            .map(|at| &text[at + end.len()..])
            .ok_or_else(|| XmlError(format!("missing {end:?}")))
    }

    /// Where a start tag's `>` is, skipping `>` inside quoted attribute
    /// values.
    fn tag_end(tag: &str) -> Result<usize, XmlError> {
        let mut quote = None;
        for (at, c) in tag.char_indices() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), _) if c == q => quote = None,
                (None, '>') => return Ok(at),
                (None, '<') => return fail("'<' inside a tag"),
                _ => {}
            }
        }
        fail("unterminated start tag")
    }

    fn local(qualified: &str) -> &str {
        qualified.rsplit(':').next().unwrap_or(qualified)
    }

    /// Appends `text` with its entity and character references replaced.
    fn decode_into(text: &str, out: &mut String) -> Result<(), XmlError> {
        let mut rest = text;
        while let Some(at) = rest.find('&') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let end = after
                .find(';')
                .filter(|&end| end <= 10)
                .ok_or_else(|| XmlError("an unterminated '&' reference".into()))?;
            let reference = &after[..end];
            let decoded = match reference {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let number = if let Some(hex) = reference
                        .strip_prefix("#x")
                        .or_else(|| reference.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else if let Some(decimal) = reference.strip_prefix('#') {
                        decimal.parse().ok()
                    } else {
                        return fail(format!("unknown entity &{reference};"));
                    };
                    number.and_then(char::from_u32).ok_or_else(|| {
                        XmlError(format!("invalid character reference &{reference};"))
                    })?
                }
            };
            out.push(decoded);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(())
    }

    /// `text` with `&`, `<`, `>`, `"` and `'` escaped, for element content
    /// and attribute values.
    pub fn escape(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&apos;"),
                c => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    /// The credentials and time of AWS's Signature Version 4 test suite.
    fn suite_credentials() -> AwsCredentials {
        AwsCredentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    }

    fn suite_time() -> SystemTime {
        // 2015-08-30T12:36:00Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn signed(method: &str, uri: &str) -> Request<Bytes> {
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Bytes::new())
            .unwrap();
        sign(
            &mut request,
            "service",
            "us-east-1",
            &suite_credentials(),
            suite_time(),
        )
        .unwrap();
        request
    }

    fn authorization(request: &Request<Bytes>) -> &str {
        request.headers()[AUTHORIZATION].to_str().unwrap()
    }

    /// AWS's published Signature Version 4 test suite: request line and
    /// the expected signature (`get-vanilla`, query ordering and encoding,
    /// `post-vanilla`).
    #[test]
    fn signatures_match_the_aws_test_suite() {
        let scope = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=";
        for (name, method, uri, signature) in [
            (
                "get-vanilla",
                "GET",
                "https://example.amazonaws.com/",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "get-vanilla-query-order-key-case",
                "GET",
                "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "get-vanilla-empty-query-key",
                "GET",
                "https://example.amazonaws.com/?Param1=value1",
                "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
            ),
            (
                "get-vanilla-query-unreserved",
                "GET",
                "https://example.amazonaws.com/?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
            ),
            (
                "get-vanilla-utf8-query",
                "GET",
                "https://example.amazonaws.com/?%E1%88%B4=bar",
                "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
            ),
            (
                "get-vanilla-query-order-encoded",
                "GET",
                "https://example.amazonaws.com/?Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
                "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac",
            ),
            (
                "post-vanilla",
                "POST",
                "https://example.amazonaws.com/",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
        ] {
            let request = signed(method, uri);
            assert_eq!(
                authorization(&request),
                format!("{scope}{signature}"),
                "{name}"
            );
            assert_eq!(request.headers()["x-amz-date"], "20150830T123600Z");
            assert_eq!(request.headers()[HOST], "example.amazonaws.com");
        }
    }

    #[test]
    fn temporary_credentials_send_and_sign_their_session_token() {
        let mut request = Request::get("http://127.0.0.1:5000/2013-04-01/change/C1")
            .body(Bytes::new())
            .unwrap();
        let credentials = suite_credentials().with_session_token("the-token");
        sign(
            &mut request,
            "route53",
            "us-east-1",
            &credentials,
            suite_time(),
        )
        .unwrap();
        assert_eq!(request.headers()["x-amz-security-token"], "the-token");
        assert_eq!(request.headers()[HOST], "127.0.0.1:5000");
        assert!(
            authorization(&request).contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"),
            "{}",
            authorization(&request)
        );
    }

    #[test]
    fn paths_are_encoded_again_and_queries_decoded_then_encoded() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a b/%2F"), "/a%20b/%252F");
        assert_eq!(
            canonical_query("name=_acme-challenge.example.test.&type=TXT&maxitems=1"),
            "maxitems=1&name=_acme-challenge.example.test.&type=TXT"
        );
        assert_eq!(canonical_query("a=%2a&b=x+y&c"), "a=%2A&b=x%2By&c=");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let text = format!("{:?}", suite_credentials().with_session_token("tok-secret"));
        assert!(text.contains("AKIDEXAMPLE"), "{text}");
        assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
        assert!(!text.contains("tok-secret"), "{text}");
    }

    #[test]
    fn ambient_keys_need_both_halves() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            AwsCredentials::from_lookup(env(&[("AWS_ACCESS_KEY_ID", "AKID")])),
            None
        );
        let found = AwsCredentials::from_lookup(env(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("AWS_SESSION_TOKEN", "t"),
        ]))
        .unwrap();
        assert_eq!(found.access_key_id(), "AKID");
        assert!(found.is_temporary());
    }

    #[test]
    fn xml_answers_are_read_with_entities_cdata_and_namespaces() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<a:Root xmlns:a="urn:x" attr="1 > 0"><a:Value>&quot;x&amp;y&#65;&#x42;&quot;</a:Value>
  <Value><![CDATA["<raw>"]]></Value><Empty/></a:Root>"#;
        let root = xml::parse(doc).unwrap();
        assert_eq!(root.name, "Root");
        let values: Vec<&str> = root.children("Value").map(|v| v.text()).collect();
        assert_eq!(values, ["\"x&yAB\"", "\"<raw>\""]);
        assert!(root.child("Empty").is_some());
    }

    #[test]
    fn malformed_or_hostile_xml_is_refused() {
        for doc in [
            "",
            "<a>",
            "<a></b>",
            "<a>&unknown;</a>",
            "<a>&#xD800;</a>",
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            "<a/><b/>",
            "text<a/>",
        ] {
            assert!(xml::parse(doc).is_err(), "{doc:?}");
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(xml::parse(&deep).is_err());
        let many = format!("<a>{}</a>", "<b/>".repeat(30_000));
        assert!(xml::parse(&many).is_err());
    }

    fn answer(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: Default::default(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn refused_credentials_are_configuration_errors_naming_the_key() {
        let who = "access key AKIAEXAMPLE";
        let refused = answer(
            403,
            r#"<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error><RequestId>r</RequestId></ErrorResponse>"#,
        );
        let err = classify("Route53: list", who, &refused);
        assert!(err.is_config(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("AKIAEXAMPLE") && text.contains("secret access key"),
            "{text}"
        );

        // IAM-style answers have an <Errors> level.
        let unknown = answer(
            403,
            "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid.</Message></Error></Errors></ErrorResponse>",
        );
        let err = classify("Route53: list", who, &unknown);
        assert!(
            err.is_config() && err.to_string().contains("AKIAEXAMPLE"),
            "{err}"
        );

        let denied = answer(
            403,
            "<ErrorResponse><Error><Code>AccessDenied</Code><Message>User is not authorized to perform route53:ChangeResourceRecordSets</Message></Error></ErrorResponse>",
        );
        let text = classify("Route53: change", who, &denied).to_string();
        assert!(text.contains("route53:ChangeResourceRecordSets"), "{text}");
    }

    #[test]
    fn throttling_server_errors_and_expired_tokens_are_transient() {
        let who = "access key AKIAEXAMPLE";
        for response in [
            answer(
                400,
                "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>",
            ),
            answer(
                400,
                "<ErrorResponse><Error><Code>PriorRequestNotComplete</Code><Message>wait</Message></Error></ErrorResponse>",
            ),
            answer(503, "<html>unavailable</html>"),
            answer(
                403,
                "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>expired</Message></Error></ErrorResponse>",
            ),
        ] {
            let err = classify("Route53: list", who, &response);
            assert!(err.is_transient(), "{err}");
        }
        assert!(is_expired_token(&answer(
            403,
            "<ErrorResponse><Error><Code>ExpiredToken</Code></Error></ErrorResponse>"
        )));
    }

    #[test]
    fn invalid_change_batches_carry_their_messages() {
        let error = parse_error(
            br#"<?xml version="1.0"?><InvalidChangeBatch xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Messages><Message>Tried to delete resource record set [name='x.', type='TXT'] but it was not found</Message></Messages><RequestId>r</RequestId></InvalidChangeBatch>"#,
        )
        .unwrap();
        assert_eq!(error.code, "InvalidChangeBatch");
        assert!(error.message.contains("not found"), "{error:?}");
    }

    #[test]
    fn sts_credentials_are_read_from_the_answer() {
        let response = answer(
            200,
            r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>s&amp;cret</SecretAccessKey><SessionToken>tok</SessionToken><Expiration>2030-01-02T03:04:05.123Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/certweave</Arn></AssumedRoleUser></AssumeRoleResult></AssumeRoleResponse>"#,
        );
        let temporary = read_credentials("STS", "key", &response).unwrap();
        assert_eq!(
            temporary.credentials,
            AwsCredentials::new("ASIAEXAMPLE", "s&cret").with_session_token("tok")
        );
        assert_eq!(
            OffsetDateTime::from(temporary.expires).year(),
            2030,
            "{temporary:?}"
        );
        let refused = answer(
            403,
            "<ErrorResponse><Error><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error></ErrorResponse>",
        );
        assert!(read_credentials("STS", "key", &refused)
            .unwrap_err()
            .is_config());
    }
}
