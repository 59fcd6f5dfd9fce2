//! cert-manager external DNS-01 solvers: `dns01.webhook`.
//!
//! The community's solvers (Hetzner, OVH, Gandi, …) are each a small
//! extension API server: an APIService makes the Kubernetes API server proxy
//! `POST /apis/<groupName>/v1alpha1/<solverName>` to it. The body is a
//! [`ChallengePayload`] (`webhook.acme.cert-manager.io/v1alpha1`) holding a
//! [`ChallengeRequest`]; the solver answers the same object with its
//! [`ChallengeResponse`] filled in. Speaking this contract exactly as
//! cert-manager does lets every existing solver work unchanged.
//!
//! This module builds the requests and judges the answers; it knows nothing
//! of Kubernetes. How the bytes reach the API server is a
//! [`WebhookTransport`] (the controller's uses its `kube::Client`), and the
//! zone a record belongs to, which solvers expect as `resolvedZone`, comes
//! from a [`ZoneFinder`], so no DNS is done here either.
//!
//! Failures are sorted by who must act:
//!
//! - 404 from the API server: no solver serves that path (no APIService for
//!   `groupName`, or the solver does not know `solverName`): configuration;
//! - 403: certweave may not `create` `<solverName>` in API group
//!   `<groupName>`: configuration (RBAC);
//! - the solver's own `success: false`: its `status.message`, as a
//!   configuration error when it reads like a refusal of credentials or
//!   configuration (see [`is_config_refusal`]), otherwise transient;
//! - 5xx, timeouts, unreadable answers, network trouble: transient.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::api::excerpt;
use super::{DnsSolver, SolverFuture, TxtRecord};
use crate::model::IssueError;

/// `apiVersion` of the payload, as cert-manager's scheme registers it
/// (whatever the solver's own `groupName`).
pub const PAYLOAD_API_VERSION: &str = "webhook.acme.cert-manager.io/v1alpha1";
/// `kind` of the payload.
pub const PAYLOAD_KIND: &str = "ChallengePayload";
/// The API version every solver serves its resource under.
pub const SOLVER_VERSION: &str = "v1alpha1";
/// `type` of every request: solvers only do DNS-01.
pub const CHALLENGE_TYPE: &str = "dns-01";
/// How long one call may take, answer included. Solvers call their
/// provider's API before answering, and some wait for it to apply the
/// change, so this is generous; a call that takes longer is retried.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The object posted to a solver and answered by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengePayload {
    /// [`PAYLOAD_API_VERSION`] when posting; solvers echo it.
    #[serde(default)]
    pub api_version: String,
    /// [`PAYLOAD_KIND`].
    #[serde(default)]
    pub kind: String,
    /// What to do; set when posting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ChallengeRequest>,
    /// What happened; set by the solver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ChallengeResponse>,
}

impl ChallengePayload {
    /// A payload carrying `request`, with cert-manager's `apiVersion` and
    /// `kind`.
    pub fn new(request: ChallengeRequest) -> Self {
        Self {
            api_version: PAYLOAD_API_VERSION.to_owned(),
            kind: PAYLOAD_KIND.to_owned(),
            request: Some(request),
            response: None,
        }
    }
}

/// Whether a record is to be added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChallengeAction {
    /// Add the TXT value at `resolvedFQDN`, beside any already there.
    Present,
    /// Remove exactly that value.
    CleanUp,
}

impl ChallengeAction {
    /// The verb for messages.
    fn doing(self) -> &'static str {
        match self {
            ChallengeAction::Present => "presenting",
            ChallengeAction::CleanUp => "cleaning up",
        }
    }
}

/// One request to a solver, field for field as cert-manager sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeRequest {
    /// Tells this call from an otherwise identical one (retries, a wildcard
    /// and its apex), for correlating the solver's logs.
    pub uid: String,
    pub action: ChallengeAction,
    /// Always [`CHALLENGE_TYPE`].
    #[serde(rename = "type")]
    pub challenge_type: String,
    /// The name being validated, without `*.`.
    pub dns_name: String,
    /// The TXT value.
    pub key: String,
    /// Where the solver looks up Secrets its `config` refers to: the
    /// Issuer's namespace, or the cluster resource namespace for a
    /// ClusterIssuer.
    #[serde(default)]
    pub resource_namespace: String,
    /// Where the record goes, with a trailing dot, CNAMEs already followed.
    #[serde(rename = "resolvedFQDN", default)]
    pub resolved_fqdn: String,
    /// The zone holding `resolvedFQDN`, with a trailing dot, so solvers need
    /// not find it themselves.
    #[serde(default)]
    pub resolved_zone: String,
    /// Whether the solver may use credentials from its environment (a cloud
    /// role) instead of ones named in `config`.
    #[serde(default)]
    pub allow_ambient_credentials: bool,
    /// The issuer's `webhook.config`, verbatim; absent when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

/// A solver's answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeResponse {
    /// The request's `uid`, copied back.
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub success: bool,
    /// Why it failed; ignored on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SolverStatus>,
}

/// The parts of a Kubernetes `Status` a solver (or the API server) fills in
/// to say why something failed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SolverStatus {
    /// `Failure` (the API server) or `Failed` (cert-manager's framework).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// What went wrong, in the solver's words: what users are shown.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// A Kubernetes reason (`NotFound`, `Forbidden`, …), when one is set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// An HTTP-like code, when one is set.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub code: i32,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

/// What the API server answered to one POST: its status code and body, read
/// whole (a transport caps its size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReply {
    /// The HTTP status, whatever it is: [`WebhookSolver`] judges it.
    pub status: u16,
    /// The body, at most a transport's cap.
    pub body: Bytes,
}

/// The future a [`WebhookTransport`] returns.
pub type TransportFuture<'a> =
    Pin<Box<dyn Future<Output = Result<WebhookReply, IssueError>> + Send + 'a>>;

/// Carries one JSON body to the Kubernetes API server. A trait so the engine
/// stays free of Kubernetes: the controller implements it with its client,
/// tests with a scripted solver.
pub trait WebhookTransport: Send + Sync {
    /// POSTs `body` (JSON) to `path` (`/apis/<group>/v1alpha1/<solver>`) and
    /// returns whatever status came back; only a failure to get an answer
    /// at all (network, oversized body) is an error, and then a transient
    /// one.
    fn post<'a>(&'a self, path: &'a str, body: Vec<u8>) -> TransportFuture<'a>;
}

/// The future a [`ZoneFinder`] returns: the zone's name, with or without a
/// trailing dot.
pub type ZoneFuture<'a> = Pin<Box<dyn Future<Output = Result<String, IssueError>> + Send + 'a>>;

/// Finds the zone a name belongs to (the closest enclosing SOA), which
/// solvers are given as `resolvedZone`. A trait so this module does no DNS:
/// the caller supplies the lookup.
pub trait ZoneFinder: Send + Sync {
    /// The zone holding `fqdn` (given without a trailing dot).
    fn zone<'a>(&'a self, fqdn: &'a str) -> ZoneFuture<'a>;
}

/// An issuer's `dns01.webhook` block, with what cert-manager adds from the
/// issuer itself.
#[derive(Clone, PartialEq)]
pub struct WebhookConfig {
    /// The API group the solver's APIService registers.
    pub group_name: String,
    /// The resource the solver serves in that group.
    pub solver_name: String,
    /// Passed to the solver verbatim; `Null` when the issuer has none.
    pub config: Value,
    /// Where the solver reads Secrets named in `config`: the Issuer's
    /// namespace, or the cluster resource namespace for a ClusterIssuer.
    pub resource_namespace: String,
    /// Whether the solver may use ambient credentials (cert-manager's
    /// `--issuer-ambient-credentials` / `--cluster-issuer-ambient-credentials`).
    pub allow_ambient_credentials: bool,
}

/// `config` is left out: some solvers take API tokens in it.
impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("group_name", &self.group_name)
            .field("solver_name", &self.solver_name)
            .field("config", &"<omitted>")
            .field("resource_namespace", &self.resource_namespace)
            .field("allow_ambient_credentials", &self.allow_ambient_credentials)
            .finish()
    }
}

/// A [`DnsSolver`] that delegates to one of cert-manager's external
/// solvers through the Kubernetes API server.
pub struct WebhookSolver {
    config: WebhookConfig,
    path: String,
    transport: Arc<dyn WebhookTransport>,
    zones: Arc<dyn ZoneFinder>,
    timeout: Duration,
}

impl fmt::Debug for WebhookSolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSolver")
            .field("config", &self.config)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WebhookSolver {
    /// Checks `groupName` and `solverName` up front (they become a URL
    /// path, so they may hold no `/`, `?` or the like), so a typo fails
    /// before any order is opened.
    pub fn new(
        config: WebhookConfig,
        transport: Arc<dyn WebhookTransport>,
        zones: Arc<dyn ZoneFinder>,
    ) -> Result<Self, IssueError> {
        check_name("groupName", &config.group_name)?;
        check_name("solverName", &config.solver_name)?;
        Ok(Self {
            path: solver_path(&config.group_name, &config.solver_name),
            config,
            transport,
            zones,
            timeout: CALL_TIMEOUT,
        })
    }

    /// Replaces [`CALL_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Where requests go: `/apis/<groupName>/v1alpha1/<solverName>`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The request for `record`, with `zone` as `resolvedZone`.
    pub fn payload(
        &self,
        action: ChallengeAction,
        record: &TxtRecord,
        zone: &str,
        uid: String,
    ) -> ChallengePayload {
        ChallengePayload::new(ChallengeRequest {
            uid,
            action,
            challenge_type: CHALLENGE_TYPE.to_owned(),
            dns_name: record.domain.clone(),
            key: record.value.clone(),
            resource_namespace: self.config.resource_namespace.clone(),
            resolved_fqdn: absolute(&record.fqdn),
            resolved_zone: absolute(zone),
            allow_ambient_credentials: self.config.allow_ambient_credentials,
            config: (!self.config.config.is_null()).then(|| self.config.config.clone()),
        })
    }

    /// `groupName`/`solverName` for messages.
    fn who(&self) -> String {
        format!(
            "DNS-01 webhook solver {:?} (groupName {:?})",
            self.config.solver_name, self.config.group_name
        )
    }

    async fn call(&self, action: ChallengeAction, record: &TxtRecord) -> Result<(), IssueError> {
        let zone = self.zone_of(&record.fqdn).await?;
        let uid = new_uid();
        let payload = self.payload(action, record, &zone, uid.clone());
        let body = serde_json::to_vec(&payload).map_err(|e| {
            IssueError::config_because(format!("{}: encoding the request", self.who()), e)
        })?;
        let reply = tokio::time::timeout(self.timeout, self.transport.post(&self.path, body))
            .await
            .map_err(|_| {
                IssueError::Transient(format!(
                    "{}: {} {}: no answer within {}s",
                    self.who(),
                    action.doing(),
                    record.fqdn,
                    self.timeout.as_secs()
                ))
            })??;
        self.judge(action, record, &uid, &reply)
    }

    async fn zone_of(&self, fqdn: &str) -> Result<String, IssueError> {
        let fqdn = fqdn.trim_end_matches('.');
        let zone = self.zones.zone(fqdn).await?;
        let zone = zone.trim_end_matches('.');
        let inside = zone.is_empty()
            || fqdn.eq_ignore_ascii_case(zone)
            || fqdn
                .to_ascii_lowercase()
                .ends_with(&format!(".{}", zone.to_ascii_lowercase()));
        if !inside {
            return Err(IssueError::Transient(format!(
                "{}: the zone found for {fqdn} is {zone:?}, which does not hold it",
                self.who()
            )));
        }
        Ok(zone.to_owned())
    }

    /// Turns an answer into success or an error saying who must act.
    fn judge(
        &self,
        action: ChallengeAction,
        record: &TxtRecord,
        uid: &str,
        reply: &WebhookReply,
    ) -> Result<(), IssueError> {
        let what = format!("{}: {} {}", self.who(), action.doing(), record.fqdn);
        if !(200..300).contains(&reply.status) {
            return Err(self.refused_by_api_server(&what, reply));
        }
        let answer: Reply = serde_json::from_slice(&reply.body).map_err(|e| {
            IssueError::Transient(format!(
                "{what}: the answer is not a ChallengePayload ({e}): {}",
                excerpt(&String::from_utf8_lossy(&reply.body))
            ))
        })?;
        let Some(response) = answer.response else {
            return Err(IssueError::Transient(format!(
                "{what}: the answer has no response: {}",
                excerpt(&String::from_utf8_lossy(&reply.body))
            )));
        };
        if !response.uid.is_empty() && response.uid != uid {
            tracing::warn!(
                solver = %self.config.solver_name,
                sent = %uid,
                answered = %excerpt(&response.uid),
                "the DNS-01 webhook solver answered with another request's uid"
            );
        }
        if response.success {
            return Ok(());
        }
        let status = response.status.unwrap_or_default();
        let said = if status.message.trim().is_empty() {
            "it failed without saying why".to_owned()
        } else {
            format!("the solver said: {}", excerpt(&status.message))
        };
        if is_config_refusal(&status) {
            Err(IssueError::Config(format!("{what}: {said}")))
        } else {
            Err(IssueError::Transient(format!("{what}: {said}")))
        }
    }

    /// An API server status other than 2xx, as an error saying who must
    /// act: the answer never reached a solver, or the solver's server
    /// refused the request itself.
    fn refused_by_api_server(&self, what: &str, reply: &WebhookReply) -> IssueError {
        let group = &self.config.group_name;
        let solver = &self.config.solver_name;
        let said = api_message(&reply.body);
        match reply.status {
            404 => IssueError::Config(format!(
                "{what}: the API server has no {path} ({said}): no solver is installed for \
                 groupName {group:?} with solverName {solver:?}; install the solver, whose \
                 APIService v1alpha1.{group} makes the API server proxy this path to it, or \
                 correct groupName/solverName to match the installed one",
                path = self.path,
            )),
            403 => IssueError::Config(format!(
                "{what}: the API server refused ({said}): certweave's service account needs \
                 RBAC verb \"create\" on resource {solver:?} in API group {group:?} (a \
                 ClusterRole with that rule, bound to the service account)"
            )),
            400 | 422 => IssueError::Config(format!(
                "{what}: the request was refused ({}): {said}",
                reply.status
            )),
            503 => IssueError::Transient(format!(
                "{what}: the API server could not reach the solver (503: {said}); is the \
                 solver's Pod running and its APIService available?"
            )),
            status => {
                IssueError::Transient(format!("{what}: the API server answered {status}: {said}"))
            }
        }
    }
}

impl DnsSolver for WebhookSolver {
    fn present<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(self.call(ChallengeAction::Present, record))
    }

    fn cleanup<'a>(&'a self, record: &'a TxtRecord) -> SolverFuture<'a> {
        Box::pin(self.call(ChallengeAction::CleanUp, record))
    }
}

/// `/apis/<group>/v1alpha1/<solver>`: the path cert-manager's client posts
/// to (its REST client is made for API group `group`, version `v1alpha1`,
/// with the solver name as the resource).
pub fn solver_path(group: &str, solver: &str) -> String {
    format!("/apis/{group}/{SOLVER_VERSION}/{solver}")
}

/// The answer as read back: only `response` matters, and a solver that
/// changes or drops the echoed request is still understood.
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    response: Option<ChallengeResponse>,
}

/// What the API server said in a `Status` body, or the start of whatever
/// else it sent.
fn api_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_slice::<SolverStatus>(body)
        .ok()
        .map(|s| s.message)
        .filter(|m| !m.trim().is_empty());
    match message {
        Some(message) => excerpt(&message),
        None if text.trim().is_empty() => "no details".to_owned(),
        None => excerpt(&text),
    }
}

/// Whether a solver's `success: false` asks a human to change something
/// rather than to wait.
///
/// cert-manager's solver framework answers every solver error the same
/// way, `success: false` with only `status.message` (the Go error's text),
/// so the message is most of what there is to go on. The default is
/// transient: provider APIs time out, rate-limit and fail for a while, and
/// a quick retry costs little. A refusal is taken as configuration when the
/// solver set a client-error `code` (4xx other than 408 and 429) or a
/// client-error `reason`, or when its message says credentials or access
/// were refused, a Secret named in `config` does not exist, or `config`
/// could not be read: those fail the same way until someone changes the
/// issuer, its Secret or the provider account.
pub fn is_config_refusal(status: &SolverStatus) -> bool {
    if (400..500).contains(&status.code) && status.code != 408 && status.code != 429 {
        return true;
    }
    if matches!(
        status.reason.as_str(),
        "BadRequest" | "Invalid" | "Unauthorized" | "Forbidden" | "NotFound"
    ) {
        return true;
    }
    let message = status.message.to_ascii_lowercase();
    const REFUSALS: &[&str] = &[
        "unauthorized",
        "unauthenticated",
        "forbidden",
        "permission denied",
        "access denied",
        "authentication failed",
        "invalid credentials",
        "invalid api key",
        "invalid api token",
        "invalid token",
        "error decoding solver config",
        "cannot unmarshal",
    ];
    REFUSALS.iter().any(|r| message.contains(r))
        || (message.contains("secrets \"") && message.contains("not found"))
}

/// Refuses names that could not be one segment of a URL path.
fn check_name(field: &str, name: &str) -> Result<(), IssueError> {
    let fine = !name.is_empty()
        && name.len() <= 253
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if fine {
        Ok(())
    } else {
        Err(IssueError::Config(format!(
            "dns01.webhook.{field} {:?} is not a valid name: give the solver's {field} as its \
             documentation states (letters, digits, '-', '.')",
            excerpt(name)
        )))
    }
}

/// `name` with one trailing dot.
fn absolute(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// A fresh random version-4 UUID, the form Kubernetes uses for `uid`s.
fn new_uid() -> String {
    let mut bytes = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Mutex;

    /// The zone is the last two labels: enough for `example.com` names.
    struct LastTwoLabels;

    impl ZoneFinder for LastTwoLabels {
        fn zone<'a>(&'a self, fqdn: &'a str) -> ZoneFuture<'a> {
            let labels: Vec<&str> = fqdn.split('.').collect();
            let zone = labels[labels.len().saturating_sub(2)..].join(".");
            Box::pin(async move { Ok(zone) })
        }
    }

    /// Answers every call with one scripted reply and keeps what was sent.
    struct Scripted {
        status: u16,
        body: Value,
        sent: Mutex<Vec<(String, Value)>>,
    }

    impl Scripted {
        fn new(status: u16, body: Value) -> Arc<Self> {
            Arc::new(Self {
                status,
                body,
                sent: Mutex::new(Vec::new()),
            })
        }

        fn raw(status: u16, body: &str) -> Arc<Self> {
            Self::new(status, Value::String(body.to_owned()))
        }

        /// A solver that copies the request back with `response` set.
        fn answering(success: bool, status: Option<Value>) -> Arc<Self> {
            let mut response = json!({"success": success});
            if let Some(status) = status {
                response["status"] = status;
            }
            Self::new(201, json!({"echo": true, "response": response}))
        }
    }

    impl WebhookTransport for Scripted {
        fn post<'a>(&'a self, path: &'a str, body: Vec<u8>) -> TransportFuture<'a> {
            Box::pin(async move {
                let request: Value = serde_json::from_slice(&body).unwrap();
                self.sent
                    .lock()
                    .unwrap()
                    .push((path.to_owned(), request.clone()));
                let body = match &self.body {
                    Value::String(raw) => Bytes::from(raw.clone()),
                    Value::Object(o) if o.contains_key("echo") => {
                        let mut answer = request;
                        let mut response = o["response"].clone();
                        response["uid"] = answer["request"]["uid"].clone();
                        answer["response"] = response;
                        Bytes::from(serde_json::to_vec(&answer).unwrap())
                    }
                    other => Bytes::from(serde_json::to_vec(other).unwrap()),
                };
                Ok(WebhookReply {
                    status: self.status,
                    body,
                })
            })
        }
    }

    fn config() -> WebhookConfig {
        WebhookConfig {
            group_name: "acme.example.com".into(),
            solver_name: "my-solver".into(),
            config: json!({"zb": {"nested": [1, "two"]}, "apiKeySecretRef": {"name": "dns", "key": "token"}, "ttl": 120}),
            resource_namespace: "shop".into(),
            allow_ambient_credentials: false,
        }
    }

    fn solver(transport: Arc<Scripted>) -> WebhookSolver {
        WebhookSolver::new(config(), transport, Arc::new(LastTwoLabels)).unwrap()
    }

    fn record() -> TxtRecord {
        TxtRecord::new("*.www.example.com", "digest-value")
    }

    async fn present_err(transport: Arc<Scripted>) -> IssueError {
        solver(transport).present(&record()).await.unwrap_err()
    }

    #[tokio::test]
    async fn the_request_is_cert_managers_payload_field_for_field() {
        let transport = Scripted::answering(true, None);
        let solver = solver(transport.clone());
        solver.present(&record()).await.unwrap();
        solver.cleanup(&record()).await.unwrap();
        let sent = transport.sent.lock().unwrap();
        assert_eq!(sent.len(), 2);
        let (path, body) = &sent[0];
        assert_eq!(path, "/apis/acme.example.com/v1alpha1/my-solver");
        let uid = body["request"]["uid"].as_str().unwrap().to_owned();
        assert_eq!(
            body,
            &json!({
                "apiVersion": "webhook.acme.cert-manager.io/v1alpha1",
                "kind": "ChallengePayload",
                "request": {
                    "uid": uid,
                    "action": "Present",
                    "type": "dns-01",
                    "dnsName": "www.example.com",
                    "key": "digest-value",
                    "resourceNamespace": "shop",
                    "resolvedFQDN": "_acme-challenge.www.example.com.",
                    "resolvedZone": "example.com.",
                    "allowAmbientCredentials": false,
                    "config": {"zb": {"nested": [1, "two"]}, "apiKeySecretRef": {"name": "dns", "key": "token"}, "ttl": 120},
                }
            })
        );
        // Verbatim, down to the order of keys.
        let text = serde_json::to_string(&body["request"]["config"]).unwrap();
        assert_eq!(
            text,
            r#"{"zb":{"nested":[1,"two"]},"apiKeySecretRef":{"name":"dns","key":"token"},"ttl":120}"#
        );
        assert_eq!(sent[1].1["request"]["action"], "CleanUp");
        assert_ne!(sent[1].1["request"]["uid"], body["request"]["uid"]);
    }

    #[test]
    fn no_config_means_no_config_field_and_dots_are_not_doubled() {
        let mut config = config();
        config.config = Value::Null;
        config.allow_ambient_credentials = true;
        let solver = WebhookSolver::new(
            config,
            Scripted::answering(true, None),
            Arc::new(LastTwoLabels),
        )
        .unwrap();
        let record = TxtRecord {
            domain: "example.com".into(),
            fqdn: "_acme-challenge.example.com.".into(),
            value: "v".into(),
        };
        let payload = solver.payload(
            ChallengeAction::CleanUp,
            &record,
            "example.com.",
            "u".into(),
        );
        let value = serde_json::to_value(&payload).unwrap();
        assert!(value["request"].get("config").is_none(), "{value}");
        assert_eq!(
            value["request"]["resolvedFQDN"],
            "_acme-challenge.example.com."
        );
        assert_eq!(value["request"]["resolvedZone"], "example.com.");
        assert_eq!(value["request"]["allowAmbientCredentials"], true);
        assert!(value.get("response").is_none());
        let back: ChallengePayload = serde_json::from_value(value).unwrap();
        assert_eq!(back, payload);
    }

    #[test]
    fn uids_are_fresh_version_4_uuids() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12], "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(&a[14..15], "4", "{a}");
        assert!("89ab".contains(&a[19..20]), "{a}");
    }

    #[tokio::test]
    async fn a_solvers_failure_is_transient_with_its_own_message() {
        let err = present_err(Scripted::answering(
            false,
            Some(json!({"status": "Failed", "message": "provider API: 502 Bad Gateway"})),
        ))
        .await;
        assert!(err.is_transient(), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("provider API: 502 Bad Gateway"), "{text}");
        assert!(text.contains("my-solver"), "{text}");
        assert!(text.contains("_acme-challenge.www.example.com"), "{text}");
    }

    #[tokio::test]
    async fn a_solver_refusing_credentials_or_config_is_a_configuration_error() {
        for message in [
            "secrets \"hetzner-secret\" not found",
            "GET https://dns.example/api: 401 Unauthorized",
            "error decoding solver config: json: cannot unmarshal string into Go value",
        ] {
            let err = present_err(Scripted::answering(
                false,
                Some(json!({"status": "Failed", "message": message})),
            ))
            .await;
            assert!(err.is_config(), "{message}: {err:?}");
            assert!(err.to_string().contains(message), "{err}");
        }
        let err = present_err(Scripted::answering(
            false,
            Some(json!({"message": "zone locked", "reason": "Forbidden", "code": 403})),
        ))
        .await;
        assert!(err.is_config(), "{err:?}");
    }

    #[tokio::test]
    async fn a_long_failure_message_is_cut() {
        let long = format!("provider said: {}", "x".repeat(10_000));
        let err = present_err(Scripted::answering(false, Some(json!({"message": long})))).await;
        let text = err.to_string();
        assert!(text.len() < 1_000, "{} chars", text.len());
        assert!(text.contains("provider said: xxx"), "{text}");
    }

    #[tokio::test]
    async fn a_failure_without_status_still_fails() {
        let err = present_err(Scripted::answering(false, None)).await;
        assert!(err.is_transient(), "{err:?}");
        assert!(err.to_string().contains("without saying why"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_solver_says_to_install_its_apiservice() {
        let err = present_err(Scripted::new(
            404,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": "the server could not find the requested resource",
                   "reason": "NotFound", "code": 404}),
        ))
        .await;
        assert!(err.is_config(), "{err:?}");
        let text = err.to_string();
        for needle in [
            "\"acme.example.com\"",
            "\"my-solver\"",
            "APIService",
            "install the solver",
            "could not find the requested resource",
        ] {
            assert!(text.contains(needle), "{needle} missing: {text}");
        }
    }

    #[tokio::test]
    async fn a_forbidden_call_names_the_rbac_rule_needed() {
        let err = present_err(Scripted::new(
            403,
            json!({"kind": "Status", "message": "my-solver.acme.example.com is forbidden: User \"system:serviceaccount:certweave:certweave\" cannot create resource \"my-solver\" in API group \"acme.example.com\" at the cluster scope", "reason": "Forbidden", "code": 403}),
        ))
        .await;
        assert!(err.is_config(), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("\"create\" on resource \"my-solver\" in API group \"acme.example.com\""),
            "{text}"
        );
    }

    #[tokio::test]
    async fn server_errors_and_unreadable_answers_are_transient_and_short() {
        for (status, body) in [
            (503, "service unavailable".to_owned()),
            (500, "{\"kind\":\"Status\",\"message\":\"boom\"}".to_owned()),
            (429, "slow down".to_owned()),
            (200, format!("<html>{}</html>", "y".repeat(50_000))),
            (201, "{\"apiVersion\": \"v1\"}".to_owned()),
        ] {
            let err = present_err(Scripted::raw(status, &body)).await;
            assert!(err.is_transient(), "{status}: {err:?}");
            assert!(err.to_string().len() < 1_000, "{status}: {err}");
        }
    }

    #[tokio::test]
    async fn a_solver_that_does_not_answer_in_time_is_transient() {
        struct Silent;
        impl WebhookTransport for Silent {
            fn post<'a>(&'a self, _: &'a str, _: Vec<u8>) -> TransportFuture<'a> {
                Box::pin(std::future::pending())
            }
        }
        let solver = WebhookSolver::new(config(), Arc::new(Silent), Arc::new(LastTwoLabels))
            .unwrap()
            .with_timeout(Duration::from_millis(20));
        let err = solver.present(&record()).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
        assert!(err.to_string().contains("no answer"), "{err}");
    }

    #[tokio::test]
    async fn a_zone_that_does_not_hold_the_name_is_refused() {
        struct Elsewhere;
        impl ZoneFinder for Elsewhere {
            fn zone<'a>(&'a self, _: &'a str) -> ZoneFuture<'a> {
                Box::pin(async { Ok("ample.com.".to_owned()) })
            }
        }
        let transport = Scripted::answering(true, None);
        let solver = WebhookSolver::new(config(), transport.clone(), Arc::new(Elsewhere)).unwrap();
        let err = solver.present(&record()).await.unwrap_err();
        assert!(err.to_string().contains("does not hold it"), "{err}");
        assert!(transport.sent.lock().unwrap().is_empty());
    }

    #[test]
    fn names_that_are_not_one_path_segment_are_refused() {
        for (group, solver) in [
            ("", "s"),
            ("acme.example.com", ""),
            ("acme.example.com/../x", "s"),
            ("acme.example.com", "s?x=1"),
            ("acme.example.com", ".."),
        ] {
            let mut config = config();
            config.group_name = group.into();
            config.solver_name = solver.into();
            let err = WebhookSolver::new(
                config,
                Scripted::answering(true, None),
                Arc::new(LastTwoLabels),
            )
            .unwrap_err();
            assert!(err.is_config(), "{group}/{solver}: {err:?}");
        }
    }

    #[test]
    fn debug_leaves_out_the_config() {
        let text = format!("{:?}", solver(Scripted::answering(true, None)));
        assert!(text.contains("my-solver"), "{text}");
        assert!(!text.contains("apiKeySecretRef"), "{text}");
    }
}
