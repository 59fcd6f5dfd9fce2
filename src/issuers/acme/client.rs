//! The HTTPS transport under instant-acme, plugged in through its
//! `HttpClient` extension point. It does three things instant-acme leaves
//! to its transport:
//!
//! - **Trust.** Private ACME servers (step-ca, Pebble, a corporate Boulder)
//!   need cert-manager's `caBundle`, or, for tests only, `skipTLSVerify`.
//! - **Signing.** instant-acme signs every request with the P-256 key it
//!   holds. certweave gives it a throwaway key and re-signs each JWS here
//!   with the real account key: ES256 or RS256, so the RSA keys that
//!   cert-manager created keep their accounts. Requests that carry the key
//!   itself (`newAccount`) get the real key's JWK, and an external account
//!   binding is re-bound to that JWK with the binding's HMAC key.
//! - **What responses say besides their body.** `Retry-After` (polling,
//!   rate limits) and `Link: rel="alternate"` (other chains for
//!   `preferredChain`) are remembered per URL for the order driver.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, LINK, RETRY_AFTER};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{Map, Value};

use super::account::AccountKey;
use crate::metrics;
use crate::model::IssueError;
use crate::pki;

/// How the ACME server's TLS certificate is checked.
#[derive(Clone, Default)]
pub enum Trust {
    /// The public web PKI (Mozilla's root program), as for Let's Encrypt.
    #[default]
    PublicRoots,
    /// Only these PEM CA certificates: cert-manager's `acme.caBundle`.
    CaBundle(String),
    /// No verification at all: cert-manager's `acme.skipTLSVerify`. Anyone
    /// on the path can then impersonate the ACME server; for tests only.
    InsecureSkipVerify,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::PublicRoots => f.write_str("PublicRoots"),
            Trust::CaBundle(pem) => write!(f, "CaBundle({} bytes)", pem.len()),
            Trust::InsecureSkipVerify => f.write_str("InsecureSkipVerify"),
        }
    }
}

/// A TLS client configuration built once from [`Trust`], so a bad bundle is
/// reported when the issuer is configured, not at the first order.
#[derive(Clone)]
pub(crate) struct TlsSettings(Arc<rustls::ClientConfig>);

impl TlsSettings {
    /// The rustls configuration, for other clients that trust the same.
    pub(crate) fn client_config(&self) -> &Arc<rustls::ClientConfig> {
        &self.0
    }

    pub(crate) fn new(trust: &Trust) -> Result<Self, IssueError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| IssueError::config_because("TLS setup", e))?;
        let config = match trust {
            Trust::PublicRoots => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::CaBundle(pem) => {
                let bad = |reason: String| {
                    IssueError::Config(format!(
                        "the ACME CA bundle (caBundle) is unusable: {reason}"
                    ))
                };
                let ders = pki::parse_pem_chain(pem).map_err(|e| bad(e.to_string()))?;
                if ders.is_empty() {
                    return Err(bad("it holds no PEM certificate".into()));
                }
                let mut roots = rustls::RootCertStore::empty();
                for der in ders {
                    roots
                        .add(CertificateDer::from(der))
                        .map_err(|e| bad(e.to_string()))?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::InsecureSkipVerify => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth(),
        };
        Ok(Self(Arc::new(config)))
    }
}

/// Accepts any server certificate but still checks handshake signatures,
/// so the connection is at least consistent with the presented key.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An external account binding key (RFC 8555 §7.3.4): the key ID and the
/// decoded HMAC key the CA handed out.
#[derive(Clone)]
pub struct ExternalAccountBinding {
    pub key_id: String,
    pub hmac_key: Vec<u8>,
}

impl ExternalAccountBinding {
    /// From the key ID and the base64url HMAC key as CAs print them
    /// (standard base64 and padding are accepted too).
    pub fn new(key_id: impl Into<String>, hmac_key_b64: &str) -> Result<Self, IssueError> {
        let trimmed = hmac_key_b64.trim().trim_end_matches('=');
        let hmac_key = BASE64_URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|e| {
                IssueError::Config(format!(
                    "the external account binding HMAC key is not base64url: {e}"
                ))
            })?;
        if hmac_key.is_empty() {
            return Err(IssueError::Config(
                "the external account binding HMAC key is empty".into(),
            ));
        }
        Ok(Self {
            key_id: key_id.into(),
            hmac_key,
        })
    }
}

impl std::fmt::Debug for ExternalAccountBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAccountBinding")
            .field("key_id", &self.key_id)
            .field("hmac_key", &"<redacted>")
            .finish()
    }
}

/// The `User-Agent` of every ACME request: this client and its version.
static USER_AGENT: std::sync::LazyLock<http::HeaderValue> = std::sync::LazyLock::new(|| {
    http::HeaderValue::from_static(concat!("certweave/", env!("CARGO_PKG_VERSION")))
});

/// Per-request time limit: a hung ACME server must not hang an issuance.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Time limit for opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Cap on remembered per-URL response facts; older ones are dropped (they
/// are hints, and one order needs a handful).
const SEEN_LIMIT: usize = 4096;

type Hyper = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// The transport for one account. Cheap to clone; clones share the
/// connection pool and what was seen.
#[derive(Clone)]
pub(crate) struct AcmeHttp {
    inner: Arc<Inner>,
}

struct Inner {
    client: Hyper,
    key: Arc<AccountKey>,
    eab: Option<ExternalAccountBinding>,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    retry_after: HashMap<String, SystemTime>,
    alternates: HashMap<String, Vec<String>>,
    /// Status of the last request that carried the account key itself
    /// (`newAccount`): 201 created, 200 found.
    new_account_status: Option<StatusCode>,
    /// `Retry-After` of the last 429 or 503 answer, whatever its URL: rate
    /// limits apply to the account, not to one request.
    throttled_until: Option<SystemTime>,
}

impl AcmeHttp {
    pub(crate) fn new(
        tls: &TlsSettings,
        key: Arc<AccountKey>,
        eab: Option<ExternalAccountBinding>,
    ) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        // ACME requests are small writes on a kept-alive connection: with
        // Nagle's algorithm each one waits for a delayed ACK (~40 ms).
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls.0).clone())
            .https_only()
            .enable_all_versions()
            .wrap_connector(tcp);
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Self {
            inner: Arc::new(Inner {
                client,
                key,
                eab,
                seen: Mutex::new(Seen::default()),
            }),
        }
    }

    pub(crate) fn key(&self) -> &AccountKey {
        &self.inner.key
    }

    /// When the server asked to be polled again at `url`, if it did.
    pub(crate) fn retry_after(&self, url: &str) -> Option<Duration> {
        let at = self.lock().retry_after.get(url).copied()?;
        Some(at.duration_since(SystemTime::now()).unwrap_or_default())
    }

    /// The `rel="alternate"` links of the last response from `url`.
    pub(crate) fn alternates(&self, url: &str) -> Vec<String> {
        self.lock().alternates.get(url).cloned().unwrap_or_default()
    }

    /// How long the server last asked to be left alone after a 429 or 503.
    pub(crate) fn throttled_for(&self) -> Option<Duration> {
        let until = self.lock().throttled_until?;
        Some(until.duration_since(SystemTime::now()).unwrap_or_default())
    }

    pub(crate) fn new_account_status(&self) -> Option<StatusCode> {
        self.lock().new_account_status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic elsewhere while holding the lock cannot leave `Seen`
        // inconsistent in a way that matters: it only holds hints.
        self.inner
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remember(&self, url: &str, parts: &http::response::Parts) {
        let mut seen = self.lock();
        if seen.retry_after.len() > SEEN_LIMIT {
            seen.retry_after.clear();
        }
        if seen.alternates.len() > SEEN_LIMIT {
            seen.alternates.clear();
        }
        let retry_after = parse_retry_after(&parts.headers);
        if matches!(
            parts.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            seen.throttled_until = retry_after;
        }
        match retry_after {
            Some(at) => seen.retry_after.insert(url.to_owned(), at),
            None => seen.retry_after.remove(url),
        };
        let links = alternate_links(&parts.headers);
        if links.is_empty() {
            seen.alternates.remove(url);
        } else {
            seen.alternates.insert(url.to_owned(), links);
        }
    }

    /// Replaces instant-acme's JWS with one signed by the account key,
    /// with `nonce` in place of the one instant-acme chose when given.
    fn resign(
        &self,
        body: &[u8],
        nonce: Option<&str>,
    ) -> Result<(Vec<u8>, bool), instant_acme::Error> {
        let bad = |what: &str| instant_acme::Error::Other(format!("re-signing: {what}").into());
        let jws: Value = serde_json::from_slice(body)?;
        let protected = jws["protected"].as_str().ok_or_else(|| bad("no header"))?;
        let payload = jws["payload"].as_str().ok_or_else(|| bad("no payload"))?;
        let mut header: Map<String, Value> = decode_json(protected).map_err(|e| bad(&e))?;
        let key = &self.inner.key;
        header.insert("alg".into(), Value::from(key.algorithm()));
        if let Some(nonce) = nonce {
            header.insert("nonce".into(), Value::from(nonce));
        }
        let carries_key = header.contains_key("jwk");
        let mut payload = payload.to_owned();
        if carries_key {
            let jwk: Value = serde_json::from_str(key.jwk())?;
            header.insert("jwk".into(), jwk);
            payload = self.rebind_eab(&payload).map_err(|e| bad(&e))?;
        }
        let protected = BASE64_URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        let signature = key
            .sign(format!("{protected}.{payload}").as_bytes())
            .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
        let out = serde_json::json!({
            "protected": protected,
            "payload": payload,
            "signature": BASE64_URL_SAFE_NO_PAD.encode(signature),
        });
        Ok((serde_json::to_vec(&out)?, carries_key))
    }

    /// The binding's inner JWS signs the account's JWK; point it at the
    /// real key and recompute its HMAC.
    fn rebind_eab(&self, payload: &str) -> Result<String, String> {
        let Some(eab) = &self.inner.eab else {
            return Ok(payload.to_owned());
        };
        if payload.is_empty() {
            return Ok(String::new());
        }
        let mut body: Map<String, Value> = decode_json(payload)?;
        let Some(binding) = body.get_mut("externalAccountBinding") else {
            return Ok(payload.to_owned());
        };
        let inner_protected = binding["protected"]
            .as_str()
            .ok_or("external account binding without a header")?
            .to_owned();
        let inner_payload = BASE64_URL_SAFE_NO_PAD.encode(self.inner.key.jwk());
        let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &eab.hmac_key);
        let tag = ring::hmac::sign(
            &mac_key,
            format!("{inner_protected}.{inner_payload}").as_bytes(),
        );
        binding["payload"] = Value::from(inner_payload);
        binding["signature"] = Value::from(BASE64_URL_SAFE_NO_PAD.encode(tag.as_ref()));
        serde_json::to_vec(&body)
            .map(|json| BASE64_URL_SAFE_NO_PAD.encode(json))
            .map_err(|e| e.to_string())
    }

    /// Sends one of instant-acme's requests. A signed (JOSE) request is
    /// re-signed with the account key, and sent again with the fresh nonce
    /// the server returned while it answers `badNonce` (RFC 8555 §6.5), up
    /// to [`BAD_NONCE_ATTEMPTS`] times: every ACME call, from opening an
    /// order to fetching an authorization, survives a run of rejected
    /// nonces in one place. A refused nonce means the server did not act
    /// on the request, so sending it again is safe.
    async fn send(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Result<BytesResponse, instant_acme::Error> {
        let url = request.uri().to_string();
        let is_jose = request.method() == Method::POST
            && request
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/jose+json"));
        if !is_jose {
            let response = self.exchange(request).await?;
            let (parts, body) = response.into_parts();
            self.remember(&url, &parts);
            return Ok(BytesResponse::from(http::Response::from_parts(parts, body)));
        }
        let (parts, unsigned) = request.into_parts();
        let unsigned = match unsigned.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        let (parts, body) = self.send_signed(&parts, &unsigned).await?;
        Ok(BytesResponse::from(http::Response::from_parts(
            parts,
            http_body_util::Full::new(body),
        )))
    }

    /// Signs `unsigned` (a JWS whose signature is ignored) with the account
    /// key and sends it, again with the server's fresh nonce while it
    /// answers `badNonce`. Returns the last answer with its body.
    async fn send_signed(
        &self,
        request: &http::request::Parts,
        unsigned: &[u8],
    ) -> Result<(http::response::Parts, Bytes), instant_acme::Error> {
        let url = request.uri.to_string();
        let mut nonce = None;
        let mut attempt = 1;
        loop {
            let (signed, carries_key) = self.resign(unsigned, nonce.as_deref())?;
            let mut outgoing = Request::new(BodyWrapper::from(signed));
            *outgoing.method_mut() = request.method.clone();
            *outgoing.uri_mut() = request.uri.clone();
            *outgoing.headers_mut() = request.headers.clone();
            let (parts, body) = self.exchange(outgoing).await?.into_parts();
            self.remember(&url, &parts);
            if carries_key {
                self.lock().new_account_status = Some(parts.status);
            }
            let body = body
                .collect()
                .await
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
                .to_bytes();
            let fresh = replay_nonce(&parts.headers);
            if parts.status == StatusCode::BAD_REQUEST
                && attempt < BAD_NONCE_ATTEMPTS
                && fresh.is_some()
                && is_bad_nonce_body(&body)
            {
                tracing::debug!(
                    url,
                    attempt,
                    "badNonce: signing again with the server's fresh nonce"
                );
                attempt += 1;
                nonce = fresh;
                continue;
            }
            return Ok((parts, body));
        }
    }

    /// A signed POST-as-GET (RFC 8555 §6.3) that instant-acme has no call
    /// for: fetching an alternate certificate chain. Returns the body.
    pub(crate) async fn post_as_get(
        &self,
        directory_url: &str,
        account_url: &str,
        url: &str,
    ) -> Result<Bytes, instant_acme::Error> {
        let directory = self.get(directory_url).await?;
        let directory: Value = serde_json::from_slice(&directory)?;
        let new_nonce = directory["newNonce"]
            .as_str()
            .ok_or(instant_acme::Error::Str("newNonce in the directory"))?
            .to_owned();
        let nonce = self.fresh_nonce(&new_nonce).await?;
        let header = serde_json::json!({
            "alg": self.inner.key.algorithm(),
            "kid": account_url,
            "nonce": nonce,
            "url": url,
        });
        let unsigned = serde_json::to_vec(&serde_json::json!({
            "protected": BASE64_URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            "payload": "",
            "signature": "",
        }))?;
        let (request, ()) = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header(CONTENT_TYPE, "application/jose+json")
            .body(())?
            .into_parts();
        let (response, body) = self.send_signed(&request, &unsigned).await?;
        if response.status.is_success() {
            return Ok(body);
        }
        Err(instant_acme::Error::Api(serde_json::from_slice(&body)?))
    }

    async fn get(&self, url: &str) -> Result<Bytes, instant_acme::Error> {
        let request = Request::builder()
            .method(Method::GET)
            .uri(url)
            .body(BodyWrapper::default())?;
        let (status, _, body) = self.raw(request).await?;
        if !status.is_success() {
            return Err(instant_acme::Error::Other(
                format!("GET {url} answered {status}").into(),
            ));
        }
        Ok(body)
    }

    async fn fresh_nonce(&self, new_nonce: &str) -> Result<String, instant_acme::Error> {
        let request = Request::builder()
            .method(Method::HEAD)
            .uri(new_nonce)
            .body(BodyWrapper::default())?;
        let (_, headers, _) = self.raw(request).await?;
        headers
            .get("replay-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(instant_acme::Error::Str("Replay-Nonce from newNonce"))
    }

    /// Sends one request to the ACME server, within [`REQUEST_TIMEOUT`],
    /// and counts it in `certmanager_http_acme_client_request_count` and
    /// `..._duration_seconds` (by scheme, host, path, method and status, as
    /// cert-manager does; a request without an answer has status "error").
    async fn exchange(
        &self,
        mut request: Request<BodyWrapper<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, instant_acme::Error> {
        // RFC 8555 §6.1: every request names its client; Pebble 2.10 (like
        // Let's Encrypt's Boulder) refuses one without.
        request
            .headers_mut()
            .insert(http::header::USER_AGENT, USER_AGENT.clone());
        let uri = request.uri().clone();
        let method = request.method().clone();
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, self.inner.client.request(request))
            .await
            .map_err(|_| {
                instant_acme::Error::Other(
                    format!("no answer from {uri} within {}s", REQUEST_TIMEOUT.as_secs()).into(),
                )
            })
            .and_then(|sent| sent.map_err(|e| instant_acme::Error::Other(Box::new(e))));
        let status = match &outcome {
            Ok(response) => response.status().as_u16().to_string(),
            Err(_) => "error".to_owned(),
        };
        metrics::acme_client().observe(&uri, method.as_str(), &status, started.elapsed());
        outcome
    }

    async fn raw(
        &self,
        request: Request<BodyWrapper<Bytes>>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), instant_acme::Error> {
        let response = self.exchange(request).await?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| instant_acme::Error::Other(Box::new(e)))?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let this = self.clone();
        Box::pin(async move { this.send(req).await })
    }
}

/// How many times one request is sent while the server rejects its nonce.
/// instant-acme retries a `badNonce` three times itself, but servers under
/// load (and Pebble, for ~5% of nonces by default) reject runs of nonces,
/// and giving up there would cost the whole order.
const BAD_NONCE_ATTEMPTS: usize = 10;

fn replay_nonce(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("replay-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Whether an error answer is the problem `badNonce`.
fn is_bad_nonce_body(body: &[u8]) -> bool {
    serde_json::from_slice::<instant_acme::Problem>(body)
        .is_ok_and(|problem| problem.r#type.as_deref() == Some(BAD_NONCE))
}

const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";

fn decode_json(b64: &str) -> Result<Map<String, Value>, String> {
    let bytes = BASE64_URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3).
fn parse_retry_after(headers: &http::HeaderMap) -> Option<SystemTime> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = u64::from_str(value) {
        return Some(SystemTime::now() + Duration::from_secs(seconds));
    }
    httpdate::parse_http_date(value).ok()
}

/// The targets of `Link: <url>;rel="alternate"` headers (RFC 8555 §7.4.2).
fn alternate_links(headers: &http::HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    for value in headers.get_all(LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let mut parts = link.split(';');
            let Some(target) = parts
                .next()
                .map(str::trim)
                .and_then(|t| t.strip_prefix('<'))
                .and_then(|t| t.strip_suffix('>'))
            else {
                continue;
            };
            let alternate = parts.any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"alternate\"" || p == "rel=alternate"
            });
            if alternate {
                out.push(target.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_links_are_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.append(
            LINK,
            "<https://ca/dir>;rel=\"index\", <https://ca/cert/1/1>; rel=\"alternate\""
                .parse()
                .unwrap(),
        );
        headers.append(LINK, "<https://ca/cert/1/2>;rel=alternate".parse().unwrap());
        assert_eq!(
            alternate_links(&headers),
            vec!["https://ca/cert/1/1", "https://ca/cert/1/2"]
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut headers = http::HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        let at = parse_retry_after(&headers).unwrap();
        let wait = at.duration_since(SystemTime::now()).unwrap();
        assert!(wait <= Duration::from_secs(7) && wait > Duration::from_secs(5));
        headers.insert(
            RETRY_AFTER,
            "Fri, 31 Dec 1999 23:59:59 GMT".parse().unwrap(),
        );
        assert!(parse_retry_after(&headers).unwrap() < SystemTime::now());
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), None);
    }

    #[test]
    fn a_bad_ca_bundle_is_refused_up_front() {
        let err = TlsSettings::new(&Trust::CaBundle("not pem".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("caBundle"), "{err}");
    }

    #[test]
    fn eab_keys_accept_both_base64_alphabets() {
        let url = ExternalAccountBinding::new("kid", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajV").unwrap();
        assert_eq!(url.hmac_key.len(), 24);
        assert!(ExternalAccountBinding::new("kid", "a+b/").is_ok());
        assert!(ExternalAccountBinding::new("kid", "!!").is_err());
    }

    /// The re-signed JWS verifies with the account key, and a binding is
    /// re-pointed at the account key with a correct HMAC.
    #[test]
    fn resigned_new_account_requests_carry_the_real_key() {
        let key = Arc::new(AccountKey::generate().unwrap());
        let tls = TlsSettings::new(&Trust::PublicRoots).unwrap();
        let eab = ExternalAccountBinding::new("kid-1", "c2VjcmV0").unwrap();
        let http = AcmeHttp::new(&tls, key.clone(), Some(eab));
        let inner_protected =
            BASE64_URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"kid-1","url":"u"}"#);
        let payload = BASE64_URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({
                "termsOfServiceAgreed": true,
                "externalAccountBinding": {
                    "protected": inner_protected, "payload": "x", "signature": "y"
                }
            }))
            .unwrap(),
        );
        let original = serde_json::json!({
            "protected": BASE64_URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","jwk":{"kty":"EC"},"nonce":"n","url":"u"}"#),
            "payload": payload,
            "signature": "sig",
        });
        let (signed, carries_key) = http
            .resign(&serde_json::to_vec(&original).unwrap(), None)
            .unwrap();
        assert!(carries_key);
        let signed: Value = serde_json::from_slice(&signed).unwrap();
        let header = decode_json(signed["protected"].as_str().unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["nonce"], "n");
        assert_eq!(
            header["jwk"],
            serde_json::from_str::<Value>(key.jwk()).unwrap()
        );
        let body = decode_json(signed["payload"].as_str().unwrap()).unwrap();
        let binding = &body["externalAccountBinding"];
        let bound_jwk = BASE64_URL_SAFE_NO_PAD
            .decode(binding["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(bound_jwk, key.jwk().as_bytes());
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        ring::hmac::verify(
            &mac,
            format!(
                "{}.{}",
                binding["protected"].as_str().unwrap(),
                binding["payload"].as_str().unwrap()
            )
            .as_bytes(),
            &BASE64_URL_SAFE_NO_PAD
                .decode(binding["signature"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
    }
}
