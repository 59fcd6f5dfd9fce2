//! The HTTP client every DNS provider API is called with (Route53,
//! Cloudflare, acme-dns).
//!
//! One pooled client for the process: `https://` endpoints are checked
//! against the public web PKI (the providers are public services), and
//! plain `http://` is allowed for what runs beside the cluster (an acme-dns
//! server on a cluster-internal address, an emulator in tests). Every call
//! has a deadline and a cap on the answer's size, and errors name what was
//! being done and the endpoint, never a credential: URLs are reduced to
//! scheme, host and path.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::super::client::{TlsSettings, Trust};
use crate::model::IssueError;

/// Deadline of one call, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Deadline for opening a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read: zone and record listings are a few KiB.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;
/// How much of an unexpected answer goes into an error message.
const EXCERPT_CHARS: usize = 300;

type Hyper = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A DNS provider API client. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct ApiClient {
    client: Hyper,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiClient")
    }
}

static SHARED: LazyLock<ApiClient> = LazyLock::new(|| {
    let tls = TlsSettings::new(&Trust::PublicRoots)
        .expect("the built-in public roots make a TLS configuration");
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((**tls.client_config()).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector);
    ApiClient { client }
});

/// An answer, read whole (up to [`MAX_ANSWER_BYTES`]).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ApiResponse {
    /// The start of the body, for error messages: at most a few hundred
    /// characters, on one line.
    pub fn excerpt(&self) -> String {
        excerpt(&String::from_utf8_lossy(&self.body))
    }
}

/// `text` cut to a few hundred characters on one line.
pub fn excerpt(text: &str) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .take(EXCERPT_CHARS + 1)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    crate::model::text::cut(&one_line, EXCERPT_CHARS)
}

/// `uri` without its query and user info: safe to show.
pub fn describe(uri: &Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.host().unwrap_or(""),
        uri.path()
    )
}

impl ApiClient {
    /// The process's client.
    pub fn shared() -> Self {
        SHARED.clone()
    }

    /// Sends `request`; `what` says what for in errors ("Cloudflare: list
    /// zones"). Network failures, timeouts and oversized answers are
    /// transient errors; any status is returned for the caller to judge.
    pub async fn send(
        &self,
        what: &str,
        request: Request<Bytes>,
    ) -> Result<ApiResponse, IssueError> {
        let target = describe(request.uri());
        let request = request.map(Full::new);
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| IssueError::transient_because(format!("{what} ({target})"), e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    IssueError::Transient(format!(
                        "{what} ({target}): the answer could not be read or is larger than {MAX_ANSWER_BYTES} bytes: {e}"
                    ))
                })?
                .to_bytes();
            Ok(ApiResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(IssueError::Transient(format!(
                    "{what} ({target}): no answer within {}s",
                    REQUEST_TIMEOUT.as_secs()
                )))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt(" a\nb "), "a b");
        let long = "x".repeat(10_000);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn described_urls_leave_out_queries_and_credentials() {
        let uri: Uri = "https://user:pw@api.example.com/v4/zones?name=a&token=secret"
            .parse()
            .unwrap();
        assert_eq!(describe(&uri), "https://api.example.com/v4/zones");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_a_transient_error_naming_it() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let request = Request::get(format!("http://127.0.0.1:{port}/zones?key=secret"))
            .body(Bytes::new())
            .unwrap();
        let err = ApiClient::shared()
            .send("list zones", request)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                IssueError::Transient(_) | IssueError::TransientCause { .. }
            ),
            "{err:?}"
        );
        assert!(text.contains("list zones"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
