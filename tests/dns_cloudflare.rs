//! The Cloudflare DNS-01 solver against a local stand-in for the Cloudflare
//! API v4.
//!
//! There is no Cloudflare emulator to run, so this file serves the
//! documented endpoints the solver uses (`GET /zones?name=`, `POST`, `GET`
//! and `DELETE` under `/zones/{id}/dns_records`, with Cloudflare's answer
//! envelope and error codes) from an axum server on a loopback port, and
//! every test asserts the exact requests the solver sent: method, path,
//! query, authentication headers and JSON body. What the stand-in cannot
//! show is whether Cloudflare itself behaves as documented.
//!
//! The issuance test goes further: the stand-in mirrors every record it
//! holds into the pebble-challtestsrv a real Pebble resolves through, so a
//! wildcard and apex certificate is validated from what the solver created.

#[path = "support/pebble.rs"]
mod pebble;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use certweave::issuers::acme::dns::cloudflare::{
    CloudflareAuth, CloudflareConfig, CloudflareSolver, DEFAULT_API_URL,
};
use certweave::issuers::acme::{DnsSolver, TxtRecord};
use pebble::{Pebble, PebbleOptions};
use serde_json::{json, Value};

const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";
const OTHER_ZONE_ID: &str = "9a7806061c88ada191ed06f989cc3dac";

/// One request as the stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: String,
    /// The path below the API base (`/zones`, `/zones/ID/dns_records`).
    path: String,
    /// The raw query string, as sent.
    query: String,
    /// `None` for requests without a body.
    body: Option<Value>,
}

impl Seen {
    fn new(method: &str, path: &str, query: &str, body: Option<Value>) -> Self {
        Self {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            body,
        }
    }
}

#[derive(Debug, Clone)]
struct StoredRecord {
    zone: String,
    name: String,
    content: String,
}

/// The stand-in's state.
struct Fake {
    auth: CloudflareAuth,
    /// Zone id → name.
    zones: BTreeMap<String, String>,
    records: Mutex<BTreeMap<String, StoredRecord>>,
    seen: Mutex<Vec<Seen>>,
    /// Anything about a request that a real client must not do.
    violations: Mutex<Vec<String>>,
    next_id: Mutex<u64>,
    /// Pebble's challtestsrv, to mirror records into.
    mirror: Option<String>,
}

struct FakeCloudflare {
    state: Arc<Fake>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCloudflare {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeCloudflare {
    async fn start(auth: CloudflareAuth, mirror: Option<String>) -> Self {
        let state = Arc::new(Fake {
            auth,
            zones: BTreeMap::from([
                (ZONE_ID.to_owned(), "example.test".to_owned()),
                (OTHER_ZONE_ID.to_owned(), "unrelated.test".to_owned()),
            ]),
            records: Mutex::new(BTreeMap::new()),
            seen: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            next_id: Mutex::new(1),
            mirror,
        });
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            state,
            addr,
            server,
        }
    }

    fn api_url(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    fn solver(&self, auth: CloudflareAuth) -> CloudflareSolver {
        CloudflareSolver::new(CloudflareConfig {
            auth,
            api_url: self.api_url(),
        })
        .unwrap()
    }

    /// A record put there by someone else.
    fn seed(&self, name: &str, content: &str) -> String {
        let id = self.state.new_id();
        self.state.records.lock().unwrap().insert(
            id.clone(),
            StoredRecord {
                zone: ZONE_ID.into(),
                name: name.into(),
                content: content.into(),
            },
        );
        id
    }

    /// The TXT values at `name`, sorted.
    fn txt(&self, name: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .state
            .records
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.name == name)
            .map(|r| r.content.clone())
            .collect();
        values.sort();
        values
    }

    fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.state.seen.lock().unwrap())
    }

    fn assert_no_violations(&self) {
        let violations = self.state.violations.lock().unwrap();
        assert!(violations.is_empty(), "bad requests: {violations:#?}");
    }
}

impl Fake {
    fn new_id(&self) -> String {
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        format!("{:032x}", *next * 0x9e37_79b9)
    }

    /// Checks the credentials headers exactly as the configured kind needs
    /// them: the right ones present, the other kind's absent.
    fn authenticated(&self, headers: &HeaderMap) -> bool {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        match &self.auth {
            CloudflareAuth::ApiToken(token) => {
                if get("x-auth-key").is_some() || get("x-auth-email").is_some() {
                    self.violation("API key headers sent with a token");
                }
                get("authorization") == Some(&format!("Bearer {token}"))
            }
            CloudflareAuth::ApiKey { email, key } => {
                if get("authorization").is_some() {
                    self.violation("Authorization sent with an API key");
                }
                get("x-auth-email") == Some(email.as_str()) && get("x-auth-key") == Some(key)
            }
        }
    }

    fn violation(&self, what: impl Into<String>) {
        self.violations.lock().unwrap().push(what.into());
    }

    /// Challtestsrv holds exactly the values this stand-in holds at `name`.
    async fn mirror(&self, name: &str) {
        let Some(management) = &self.mirror else {
            return;
        };
        let values: Vec<String> = self
            .records
            .lock()
            .unwrap()
            .values()
            .filter(|r| r.name == name)
            .map(|r| r.content.clone())
            .collect();
        pebble::clear_txt(management, name).await;
        for value in values {
            pebble::set_txt(management, name, &value).await;
        }
    }
}

fn envelope(status: StatusCode, result: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"success": true, "errors": [], "messages": [], "result": result}).to_string(),
    )
        .into_response()
}

fn failure(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"success": false, "errors": [{"code": code, "message": message}], "messages": [], "result": null})
            .to_string(),
    )
        .into_response()
}

/// `k=v&…` with percent-decoding, in order.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else if bytes[i] == b'+' {
                out.push(b' ');
                i += 1;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

async fn handle(
    State(fake): State<Arc<Fake>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(path) = uri.path().strip_prefix("/client/v4") else {
        fake.violation(format!("outside the API base: {}", uri.path()));
        return failure(StatusCode::NOT_FOUND, 7003, "Could not route");
    };
    let query = uri.query().unwrap_or("").to_owned();
    let json_body = if body.is_empty() {
        None
    } else {
        if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
            fake.violation(format!("{method} {path}: body without JSON content type"));
        }
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                fake.violation(format!("{method} {path}: body is not JSON: {e}"));
                return failure(
                    StatusCode::BAD_REQUEST,
                    6007,
                    "Malformed JSON in request body",
                );
            }
        }
    };
    fake.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.to_owned(),
        query: query.clone(),
        body: json_body.clone(),
    });
    if !fake.authenticated(&headers) {
        // Cloudflare's answer to an unknown token; this one also quotes the
        // header back, as a hostile or buggy proxy might, to show the solver
        // never repeats it.
        let quoted = headers
            .get("authorization")
            .or_else(|| headers.get("x-auth-key"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        return failure(
            StatusCode::FORBIDDEN,
            9109,
            &format!("Invalid access token: {quoted}"),
        );
    }
    let params = query_pairs(&query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["zones"]) => {
            let Some(name) = param("name") else {
                fake.violation("zone listing without a name");
                return envelope(StatusCode::OK, json!([]));
            };
            let found: Vec<Value> = fake
                .zones
                .iter()
                .filter(|(_, zone)| **zone == name)
                .map(|(id, zone)| json!({"id": id, "name": zone, "status": "active"}))
                .collect();
            envelope(StatusCode::OK, Value::Array(found))
        }
        ("POST", ["zones", zone, "dns_records"]) if fake.zones.contains_key(*zone) => {
            let body = json_body.unwrap_or(Value::Null);
            let (Some(kind), Some(name), Some(content), Some(_ttl)) = (
                body["type"].as_str(),
                body["name"].as_str(),
                body["content"].as_str(),
                body["ttl"].as_u64(),
            ) else {
                fake.violation(format!("bad record body {body}"));
                return failure(StatusCode::BAD_REQUEST, 9000, "DNS name is invalid");
            };
            if kind != "TXT" {
                fake.violation(format!("record type {kind}"));
            }
            let exists = fake
                .records
                .lock()
                .unwrap()
                .values()
                .any(|r| r.zone == *zone && r.name == name && r.content == content);
            if exists {
                return failure(
                    StatusCode::BAD_REQUEST,
                    81058,
                    "An identical record already exists.",
                );
            }
            let id = fake.new_id();
            fake.records.lock().unwrap().insert(
                id.clone(),
                StoredRecord {
                    zone: (*zone).to_owned(),
                    name: name.to_owned(),
                    content: content.to_owned(),
                },
            );
            fake.mirror(name).await;
            envelope(
                StatusCode::OK,
                json!({"id": id, "type": "TXT", "name": name, "content": content, "ttl": body["ttl"]}),
            )
        }
        ("GET", ["zones", zone, "dns_records"]) if fake.zones.contains_key(*zone) => {
            let (kind, name, content) = (param("type"), param("name"), param("content"));
            let found: Vec<Value> = fake
                .records
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, r)| {
                    r.zone == *zone
                        && kind.as_deref().is_none_or(|k| k == "TXT")
                        && name.as_deref().is_none_or(|n| n == r.name)
                        && content.as_deref().is_none_or(|c| c == r.content)
                })
                // Cloudflare shows TXT content quoted.
                .map(|(id, r)| {
                    json!({"id": id, "type": "TXT", "name": r.name, "content": format!("\"{}\"", r.content), "ttl": 120})
                })
                .collect();
            envelope(StatusCode::OK, Value::Array(found))
        }
        ("DELETE", ["zones", zone, "dns_records", id]) if fake.zones.contains_key(*zone) => {
            let removed = fake.records.lock().unwrap().remove(*id);
            match removed {
                Some(record) => {
                    fake.mirror(&record.name).await;
                    envelope(StatusCode::OK, json!({"id": id}))
                }
                None => failure(StatusCode::NOT_FOUND, 81044, "Record does not exist."),
            }
        }
        _ => {
            fake.violation(format!("unknown endpoint {method} {path}?{query}"));
            failure(StatusCode::NOT_FOUND, 7003, "Could not route")
        }
    }
}

fn token() -> CloudflareAuth {
    CloudflareAuth::ApiToken("cf-token-Q9x7Lw2".into())
}

fn key() -> CloudflareAuth {
    CloudflareAuth::ApiKey {
        email: "dns-admin@example.test".into(),
        key: "c2547eb745079dac9320b638f5e225cf483cc5cfdda41".into(),
    }
}

/// A realistic challenge value (43 characters of base64url).
fn value(n: u8) -> String {
    format!("{}{:03}", "x".repeat(40), n)
}

/// Presents two values at one name (and one again), then cleans both up,
/// checking every request and that a value someone else put there stays.
async fn present_and_cleanup(auth: CloudflareAuth) {
    let fake = FakeCloudflare::start(auth.clone(), None).await;
    let solver = fake.solver(auth);
    let name = "_acme-challenge.www.example.test";
    let kept = fake.seed(name, "someone-elses-value");
    let first = TxtRecord::new("www.example.test", value(1));
    let second = TxtRecord::new("*.www.example.test", value(2));
    assert_eq!(first.fqdn, name);

    solver.present(&first).await.unwrap();
    solver.present(&second).await.unwrap();
    // A retried present meets "already exists" and succeeds.
    solver.present(&first).await.unwrap();
    assert_eq!(
        fake.txt(name),
        ["someone-elses-value".into(), value(1), value(2)]
    );
    let record_body = |v: &str| json!({"type": "TXT", "name": name, "content": v, "ttl": 120});
    let records_path = format!("/zones/{ZONE_ID}/dns_records");
    assert_eq!(
        fake.take_seen(),
        [
            Seen::new(
                "GET",
                "/zones",
                "name=_acme-challenge.www.example.test",
                None
            ),
            Seen::new("GET", "/zones", "name=www.example.test", None),
            Seen::new("GET", "/zones", "name=example.test", None),
            Seen::new("POST", &records_path, "", Some(record_body(&value(1)))),
            // The zone is remembered.
            Seen::new("POST", &records_path, "", Some(record_body(&value(2)))),
            Seen::new("POST", &records_path, "", Some(record_body(&value(1)))),
        ]
    );

    let ids: BTreeMap<String, String> = fake
        .state
        .records
        .lock()
        .unwrap()
        .iter()
        .map(|(id, r)| (r.content.clone(), id.clone()))
        .collect();
    solver.cleanup(&first).await.unwrap();
    assert_eq!(fake.txt(name), ["someone-elses-value".into(), value(2)]);
    solver.cleanup(&second).await.unwrap();
    assert_eq!(fake.txt(name), ["someone-elses-value"]);
    assert!(fake.state.records.lock().unwrap().contains_key(&kept));
    // Cleaning up what is gone lists, finds nothing and deletes nothing.
    solver.cleanup(&first).await.unwrap();
    let list = |v: &str| {
        Seen::new(
            "GET",
            &records_path,
            &format!("type=TXT&name={name}&content={v}"),
            None,
        )
    };
    let delete = |v: &str| Seen::new("DELETE", &format!("{records_path}/{}", ids[v]), "", None);
    assert_eq!(
        fake.take_seen(),
        [
            list(&value(1)),
            delete(&value(1)),
            list(&value(2)),
            delete(&value(2)),
            list(&value(1)),
        ]
    );
    fake.assert_no_violations();
}

#[tokio::test]
async fn present_and_cleanup_with_an_api_token() {
    present_and_cleanup(token()).await;
}

#[tokio::test]
async fn present_and_cleanup_with_a_global_api_key_and_email() {
    present_and_cleanup(key()).await;
}

#[tokio::test]
async fn a_refused_token_is_a_configuration_error_that_does_not_repeat_it() {
    let fake = FakeCloudflare::start(token(), None).await;
    let wrong = "cf-wrong-token-Zr81Kd0p";
    let solver = fake.solver(CloudflareAuth::ApiToken(wrong.into()));
    let err = solver
        .present(&TxtRecord::new("example.test", value(1)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(err.is_config(), "{err:?}");
    assert!(text.contains("refused the API token"), "{text}");
    assert!(text.contains("Zone:Read and DNS:Edit"), "{text}");
    assert!(text.contains("HTTP 403"), "{text}");
    assert!(!text.contains(wrong), "{text}");
    assert!(!format!("{err:?}").contains(wrong));
    assert!(!format!("{solver:?}").contains(wrong));
    // The first call was refused and nothing more was tried.
    assert_eq!(
        fake.take_seen(),
        [Seen::new(
            "GET",
            "/zones",
            "name=_acme-challenge.example.test",
            None
        )]
    );

    // The same for a global key.
    let wrong_key = "0123456789abcdef0123456789abcdef01234";
    let solver = fake.solver(CloudflareAuth::ApiKey {
        email: "dns-admin@example.test".into(),
        key: wrong_key.into(),
    });
    let err = solver
        .present(&TxtRecord::new("example.test", value(1)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(err.is_config(), "{err:?}");
    assert!(text.contains("refused the API key"), "{text}");
    assert!(!text.contains(wrong_key), "{text}");
}

#[tokio::test]
async fn a_name_in_no_zone_is_a_configuration_error_naming_the_zones_tried() {
    let fake = FakeCloudflare::start(token(), None).await;
    let solver = fake.solver(token());
    let err = solver
        .present(&TxtRecord::new("a.elsewhere.test", value(1)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(err.is_config(), "{err:?}");
    assert!(text.contains("no zone for a.elsewhere.test"), "{text}");
    assert!(
        text.contains("_acme-challenge.a.elsewhere.test, a.elsewhere.test, elsewhere.test"),
        "{text}"
    );
    assert_eq!(fake.take_seen().len(), 3);
    fake.assert_no_violations();
}

#[tokio::test]
async fn an_unreachable_api_is_transient() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let solver = CloudflareSolver::new(CloudflareConfig {
        auth: token(),
        api_url: format!("http://127.0.0.1:{port}/client/v4"),
    })
    .unwrap();
    let err = solver
        .present(&TxtRecord::new("example.test", value(1)))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(!err.to_string().contains("cf-token"), "{err}");
    assert_eq!(
        CloudflareConfig::new(token()).api_url,
        DEFAULT_API_URL,
        "Cloudflare itself unless told otherwise"
    );
}

/// A wildcard and its apex in one certificate from a real Pebble: the two
/// values share `_acme-challenge.example.test`, the stand-in mirrors them
/// into the challtestsrv Pebble resolves through, and both are gone after.
#[tokio::test]
async fn issues_a_wildcard_and_apex_certificate_through_the_api() {
    let pebble = Pebble::start(PebbleOptions::http01(pebble::free_port()));
    let fake = FakeCloudflare::start(token(), pebble.challtestsrv_management()).await;
    let solver: Arc<dyn DnsSolver> = Arc::new(fake.solver(token()));
    pebble::issue_wildcard(&pebble, solver, String::new).await;

    let seen = fake.take_seen();
    let created: Vec<&Seen> = seen.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(created.len(), 2, "{seen:#?}");
    for post in &created {
        assert_eq!(post.path, format!("/zones/{ZONE_ID}/dns_records"));
        let body = post.body.as_ref().unwrap();
        assert_eq!(body["name"], "_acme-challenge.example.test");
        assert_eq!(body["type"], "TXT");
        assert_eq!(body["ttl"], 120);
    }
    assert_ne!(
        created[0].body.as_ref().unwrap()["content"],
        created[1].body.as_ref().unwrap()["content"],
        "the wildcard and the apex each have their own value"
    );
    assert_eq!(
        seen.iter().filter(|s| s.method == "DELETE").count(),
        2,
        "{seen:#?}"
    );
    assert!(fake.txt("_acme-challenge.example.test").is_empty());
    fake.assert_no_violations();
}
