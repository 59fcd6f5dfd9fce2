//! A scripted Kubernetes API server, the kube-rs way: the code under test
//! talks to a `tower-test` mock service, and the test answers each request
//! in turn after asserting its method, path, query and body.

#![allow(dead_code)]

use http::{Request, Response};
use kube::client::Body;
use kube::Client;
use serde_json::Value;

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A client wired to a scripted server.
pub fn client() -> (Client, ApiServer) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer { handle })
}

pub struct ApiServer {
    handle: Handle,
}

/// One request as the server saw it.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: Option<String>,
    pub body: Value,
}

impl Seen {
    /// A query parameter's value.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
    }
}

impl ApiServer {
    /// Waits for the next request, checks `method` and `path`, answers it
    /// with `status` and `body` (a null `body` echoes the request body, as
    /// the API server answers a create or an apply), and returns what was
    /// sent.
    pub async fn expect(&mut self, method: &str, path: &str, status: u16, body: Value) -> Seen {
        let (request, send) = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.handle.next_request(),
        )
        .await
        .unwrap_or_else(|_| panic!("no request arrived; expected {method} {path}"))
        .expect("the client is still connected");
        let seen = Seen {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            query: request.uri().query().unwrap_or_default().to_owned(),
            content_type: request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: {
                let bytes = http_body_util::BodyExt::collect(request.into_body())
                    .await
                    .expect("request body")
                    .to_bytes();
                if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).expect("request body is JSON")
                }
            },
        };
        assert_eq!(
            (seen.method.as_str(), seen.path.as_str()),
            (method, path),
            "unexpected request: {seen:#?}"
        );
        let body = if body.is_null() { &seen.body } else { &body };
        send.send_response(
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        );
        seen
    }

    /// The next request, if the client sends one within a second; `None`
    /// once the client is gone.
    pub async fn try_next(&mut self) -> Option<String> {
        match tokio::time::timeout(
            std::time::Duration::from_secs(1),
            self.handle.next_request(),
        )
        .await
        {
            Ok(Some((request, _))) => Some(format!("{} {}", request.method(), request.uri())),
            _ => None,
        }
    }

    /// Answers with the Kubernetes Status of a 404.
    pub async fn expect_not_found(&mut self, method: &str, path: &str) -> Seen {
        self.expect(method, path, 404, status(404, "NotFound", "not found"))
            .await
    }
}

/// A `meta.k8s.io/v1` Status body.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code
    })
}
