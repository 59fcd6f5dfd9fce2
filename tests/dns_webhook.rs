//! cert-manager's external DNS-01 solvers (`dns01.webhook`): the exact
//! request the controller sends through the Kubernetes API server, a
//! wildcard and apex certificate issued by a real Pebble through the
//! solver contract, and the failures a user can fix (the solver's own
//! refusal, a solver that is not installed).

#[path = "support/kube_mock.rs"]
mod kube_mock;
#[path = "support/pebble.rs"]
mod pebble;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use certweave::controller::dns_webhook::KubeWebhookTransport;
use certweave::issuers::acme::dns::webhook::{
    ChallengeAction, ChallengePayload, TransportFuture, WebhookConfig, WebhookReply, WebhookSolver,
    WebhookTransport, ZoneFinder, ZoneFuture,
};
use certweave::issuers::acme::{DnsSolver, TxtRecord};
use certweave::model::IssueError;
use http::{Request, Response};
use kube::client::Body;
use pebble::{Pebble, PebbleOptions};
use serde_json::{json, Value};

const GROUP: &str = "acme.example.com";
const SOLVER: &str = "my-solver";
const SOLVER_PATH: &str = "/apis/acme.example.com/v1alpha1/my-solver";

/// Every name's zone is `example.test` (the only zone these tests use);
/// the controller's real lookup asks DNS for the SOA.
struct ExampleTest;

impl ZoneFinder for ExampleTest {
    fn zone<'a>(&'a self, _fqdn: &'a str) -> ZoneFuture<'a> {
        Box::pin(async { Ok("example.test".to_owned()) })
    }
}

fn webhook_config() -> WebhookConfig {
    WebhookConfig {
        group_name: GROUP.into(),
        solver_name: SOLVER.into(),
        config: json!({"apiKeySecretRef": {"name": "dns-token", "key": "token"}, "ttl": 60}),
        resource_namespace: "shop".into(),
        allow_ambient_credentials: false,
    }
}

fn solver_over(transport: Arc<dyn WebhookTransport>) -> WebhookSolver {
    WebhookSolver::new(webhook_config(), transport, Arc::new(ExampleTest)).unwrap()
}

/// A solver's answer: the request copied back with `response` set, as
/// cert-manager's solver framework answers.
fn solver_answer(request: &Value, success: bool, message: Option<&str>) -> Value {
    let mut answer = request.clone();
    let mut response = json!({"uid": request["request"]["uid"], "success": success});
    if let Some(message) = message {
        response["status"] = json!({"status": "Failed", "message": message});
    }
    answer["response"] = response;
    answer
}

// ---------------------------------------------------------------------
// (a) The request on the wire, against a scripted API server.
// ---------------------------------------------------------------------

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A kube client wired to a scripted API server whose answers may depend
/// on the request (a solver copies the request's `uid` back).
fn scripted_client() -> (kube::Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// Takes the next request, checks that it is a JSON POST to the solver's
/// path, answers as a working solver would (201, `success: true`), and
/// returns the body sent.
async fn answer_as_a_solver(handle: &mut Handle) -> Value {
    let (request, send) =
        tokio::time::timeout(std::time::Duration::from_secs(10), handle.next_request())
            .await
            .expect("a request arrives")
            .expect("the client is still connected");
    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri().path(), SOLVER_PATH);
    assert_eq!(request.uri().query(), None);
    assert_eq!(
        request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let bytes = http_body_util::BodyExt::collect(request.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: Value = serde_json::from_slice(&bytes).expect("the body is JSON");
    let answer = solver_answer(&body, true, None);
    send.send_response(
        Response::builder()
            .status(201)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap(),
    );
    body
}

/// What cert-manager would send for `action` on the record of
/// `*.www.example.test`, apart from the `uid`.
fn expected_body(action: &str, uid: &Value) -> Value {
    json!({
        "apiVersion": "webhook.acme.cert-manager.io/v1alpha1",
        "kind": "ChallengePayload",
        "request": {
            "uid": uid,
            "action": action,
            "type": "dns-01",
            "dnsName": "www.example.test",
            "key": "the-digest",
            "resourceNamespace": "shop",
            "resolvedFQDN": "_acme-challenge.www.example.test.",
            "resolvedZone": "example.test.",
            "allowAmbientCredentials": false,
            "config": {"apiKeySecretRef": {"name": "dns-token", "key": "token"}, "ttl": 60},
        }
    })
}

#[tokio::test]
async fn present_and_cleanup_post_cert_managers_payload_through_the_api_server() {
    let (client, mut server) = scripted_client();
    let solver = solver_over(Arc::new(KubeWebhookTransport::new(client)));
    let record = TxtRecord::new("*.www.example.test", "the-digest");

    let (result, body) = tokio::join!(solver.present(&record), answer_as_a_solver(&mut server));
    result.unwrap();
    let uid = body["request"]["uid"].clone();
    assert_eq!(body, expected_body("Present", &uid));
    assert_eq!(uid.as_str().unwrap().len(), 36, "a UUID: {uid}");

    let (result, body) = tokio::join!(solver.cleanup(&record), answer_as_a_solver(&mut server));
    result.unwrap();
    let cleanup_uid = body["request"]["uid"].clone();
    assert_eq!(body, expected_body("CleanUp", &cleanup_uid));
    assert_ne!(cleanup_uid, uid, "every call has its own uid");
}

// ---------------------------------------------------------------------
// (c) What a user can fix, as the API server and the solver say it.
// ---------------------------------------------------------------------

#[tokio::test]
async fn a_solvers_refusal_comes_back_with_its_own_message() {
    let (client, mut server) = scripted_client();
    let solver = solver_over(Arc::new(KubeWebhookTransport::new(client)));
    let record = TxtRecord::new("www.example.test", "the-digest");
    let refuse = async {
        let (request, send) = server.next_request().await.unwrap();
        let bytes = http_body_util::BodyExt::collect(request.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let answer = solver_answer(
            &body,
            false,
            Some("hetzner: zone example.test: API token rejected: 401 Unauthorized"),
        );
        send.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap(),
        );
    };
    let (result, ()) = tokio::join!(solver.present(&record), refuse);
    let err = result.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("hetzner: zone example.test: API token rejected: 401 Unauthorized"),
        "{text}"
    );
    assert!(err.is_config(), "a rejected token needs a human: {err:?}");

    // A provider hiccup is the solver's failure too, but worth a quick retry.
    let flaky = async {
        let (request, send) = server.next_request().await.unwrap();
        let bytes = http_body_util::BodyExt::collect(request.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let answer = solver_answer(&body, false, Some("hetzner: 502 Bad Gateway"));
        send.send_response(
            Response::builder()
                .status(201)
                .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                .unwrap(),
        );
    };
    let (result, ()) = tokio::join!(solver.present(&record), flaky);
    let err = result.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(
        err.to_string().contains("hetzner: 502 Bad Gateway"),
        "{err}"
    );
}

#[tokio::test]
async fn a_solver_that_is_not_installed_says_to_install_its_apiservice() {
    let (client, mut server) = kube_mock::client();
    let solver = solver_over(Arc::new(KubeWebhookTransport::new(client)));
    let record = TxtRecord::new("www.example.test", "the-digest");
    let (result, seen) = tokio::join!(
        solver.present(&record),
        server.expect(
            "POST",
            SOLVER_PATH,
            404,
            kube_mock::status(
                404,
                "NotFound",
                "the server could not find the requested resource"
            ),
        )
    );
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(seen.body["request"]["action"], "Present");
    let err = result.unwrap_err();
    assert!(err.is_config(), "{err:?}");
    let text = err.to_string();
    for needle in [GROUP, SOLVER, "install the solver", "APIService"] {
        assert!(text.contains(needle), "{needle:?} missing: {text}");
    }
}

#[tokio::test]
async fn a_forbidden_call_names_the_rbac_rule_to_grant() {
    let (client, mut server) = kube_mock::client();
    let solver = solver_over(Arc::new(KubeWebhookTransport::new(client)));
    let record = TxtRecord::new("www.example.test", "the-digest");
    let (result, _) = tokio::join!(
        solver.cleanup(&record),
        server.expect(
            "POST",
            SOLVER_PATH,
            403,
            kube_mock::status(
                403,
                "Forbidden",
                "my-solver.acme.example.com is forbidden: User \"system:serviceaccount:certweave:certweave\" cannot create resource \"my-solver\" in API group \"acme.example.com\" at the cluster scope",
            ),
        )
    );
    let err = result.unwrap_err();
    assert!(err.is_config(), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("\"create\" on resource \"my-solver\" in API group \"acme.example.com\""),
        "{text}"
    );
}

#[tokio::test]
async fn an_unavailable_solver_is_retried_soon() {
    let (client, mut server) = kube_mock::client();
    let solver = solver_over(Arc::new(KubeWebhookTransport::new(client)));
    let record = TxtRecord::new("www.example.test", "the-digest");
    let (result, _) = tokio::join!(
        solver.present(&record),
        server.expect(
            "POST",
            SOLVER_PATH,
            503,
            kube_mock::status(503, "ServiceUnavailable", "service unavailable"),
        )
    );
    let err = result.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

// ---------------------------------------------------------------------
// (b) A certificate from a real Pebble through the solver contract.
// ---------------------------------------------------------------------

/// A test solver implementing the documented contract (not a community
/// solver): it reads each `ChallengePayload` as a solver's server would,
/// publishes `key` at `resolvedFQDN` in Pebble's challtestsrv on
/// `Present`, removes exactly that value on `CleanUp`, and answers with
/// the request copied back and `response.success`.
struct ChalltestsrvSolver {
    management: String,
    /// The TXT values this solver has published, by name.
    published: Mutex<BTreeMap<String, Vec<String>>>,
    /// Every (action, resolvedFQDN) handled, in order.
    calls: Mutex<Vec<(String, String)>>,
}

impl ChalltestsrvSolver {
    async fn handle(&self, path: &str, body: &[u8]) -> Result<Value, String> {
        if path != SOLVER_PATH {
            return Err(format!("no solver at {path}"));
        }
        let payload: ChallengePayload =
            serde_json::from_slice(body).map_err(|e| format!("not a ChallengePayload: {e}"))?;
        if payload.api_version != "webhook.acme.cert-manager.io/v1alpha1"
            || payload.kind != "ChallengePayload"
        {
            return Err(format!("{} {}", payload.api_version, payload.kind));
        }
        let request = payload.request.ok_or("no request")?;
        if request.challenge_type != "dns-01" || request.resolved_zone != "example.test." {
            return Err(format!("{request:?}"));
        }
        let fqdn = request.resolved_fqdn.clone();
        self.calls
            .lock()
            .unwrap()
            .push((format!("{:?}", request.action), fqdn.clone()));
        match request.action {
            ChallengeAction::Present => {
                self.published
                    .lock()
                    .unwrap()
                    .entry(fqdn.clone())
                    .or_default()
                    .push(request.key.clone());
                pebble::set_txt(&self.management, &fqdn, &request.key).await;
            }
            ChallengeAction::CleanUp => {
                // challtestsrv clears a name whole, so the other values
                // there (a wildcard's beside its apex's) are put back.
                let remaining = {
                    let mut published = self.published.lock().unwrap();
                    let values = published.entry(fqdn.clone()).or_default();
                    values.retain(|v| *v != request.key);
                    let remaining = values.clone();
                    if remaining.is_empty() {
                        published.remove(&fqdn);
                    }
                    remaining
                };
                pebble::clear_txt(&self.management, &fqdn).await;
                for value in remaining {
                    pebble::set_txt(&self.management, &fqdn, &value).await;
                }
            }
        }
        let request: Value = serde_json::from_slice(body).unwrap();
        Ok(solver_answer(&request, true, None))
    }
}

impl WebhookTransport for ChalltestsrvSolver {
    fn post<'a>(&'a self, path: &'a str, body: Vec<u8>) -> TransportFuture<'a> {
        Box::pin(async move {
            let (status, answer) = match self.handle(path, &body).await {
                Ok(answer) => (201, answer),
                Err(why) => (400, kube_mock::status(400, "BadRequest", &why)),
            };
            Ok::<_, IssueError>(WebhookReply {
                status,
                body: Bytes::from(serde_json::to_vec(&answer).unwrap()),
            })
        })
    }
}

#[tokio::test]
async fn a_wildcard_and_apex_certificate_is_issued_through_a_webhook_solver() {
    let pebble = Pebble::start(PebbleOptions::http01(pebble::free_port()));
    let test_solver = Arc::new(ChalltestsrvSolver {
        management: pebble
            .challtestsrv_management()
            .expect("Pebble runs its own challtestsrv"),
        published: Mutex::new(BTreeMap::new()),
        calls: Mutex::new(Vec::new()),
    });
    let solver = solver_over(test_solver.clone());
    pebble::issue_wildcard(&pebble, Arc::new(solver), String::new).await;

    let calls = test_solver.calls.lock().unwrap().clone();
    let count = |action: &str| calls.iter().filter(|(a, _)| a == action).count();
    assert_eq!(count("Present"), 2, "{calls:?}");
    assert_eq!(count("CleanUp"), 2, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|(_, fqdn)| fqdn == "_acme-challenge.example.test."),
        "{calls:?}"
    );
    assert!(
        test_solver.published.lock().unwrap().is_empty(),
        "records left behind: {:?}",
        test_solver.published.lock().unwrap()
    );
}
