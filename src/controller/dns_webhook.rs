//! cert-manager's external DNS-01 solvers, reached the way cert-manager
//! reaches them: a POST to the Kubernetes API server, which proxies
//! `/apis/<groupName>/v1alpha1/<solverName>` to the solver registered by its
//! APIService. The engine's [`WebhookSolver`](crate::issuers::acme::dns::webhook::WebhookSolver)
//! builds the request and judges the answer; this is only the transport,
//! with the controller's own credentials.

use http_body_util::{BodyExt, Limited};
use kube::Client;

use crate::issuers::acme::dns::api::MAX_ANSWER_BYTES;
use crate::issuers::acme::dns::webhook::{TransportFuture, WebhookReply, WebhookTransport};
use crate::model::IssueError;

/// Posts solver requests through the API server with the controller's
/// client, so they carry its service account's identity (which the
/// solver's RBAC must allow to `create` `<solverName>`).
#[derive(Clone)]
pub struct KubeWebhookTransport {
    client: Client,
}

impl std::fmt::Debug for KubeWebhookTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeWebhookTransport")
    }
}

impl KubeWebhookTransport {
    /// Uses `client`; cheap, clones share connections.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl WebhookTransport for KubeWebhookTransport {
    fn post<'a>(&'a self, path: &'a str, body: Vec<u8>) -> TransportFuture<'a> {
        Box::pin(async move {
            let request = http::Request::post(path)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::ACCEPT, "application/json")
                .body(kube::client::Body::from(body))
                .map_err(|e| {
                    IssueError::config_because(format!("building the request to {path}"), e)
                })?;
            // `send` rather than `request_text`: every status comes back
            // with its body, for the engine to judge (a 404 and a 403 mean
            // different fixes).
            let response = self.client.send(request).await.map_err(|e| {
                IssueError::transient_because(format!("calling the API server at {path}"), e)
            })?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    IssueError::Transient(format!(
                        "reading the answer to {path}: it could not be read or is larger than \
                         {MAX_ANSWER_BYTES} bytes: {e}"
                    ))
                })?
                .to_bytes();
            Ok(WebhookReply { status, body })
        })
    }
}
