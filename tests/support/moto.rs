//! A real AWS emulator for the Route53 tests: moto's server (`moto_server`,
//! from PyPI), one private instance per test on a loopback port, killed on
//! drop. It implements Route53, STS and IAM over their real HTTP APIs.
//!
//! `e2e/assets.sh` installs moto into a virtualenv of its cache and links
//! `moto_server` into the folder that `eval "$(bash e2e/assets.sh
//! --print)"` puts on PATH; `.ci/test.sh` runs it. When it is missing the
//! harness fails with a message saying so, never skips.
//!
//! The harness sets the emulator up through the same APIs, unsigned: moto
//! picks the service from the `Authorization` header's credential scope
//! and, with authentication off, checks nothing else. With
//! [`Moto::start_with_auth`] moto checks access keys and signatures after
//! the first few requests, which the harness uses for its own setup.

#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`: every service on one endpoint.
    pub endpoint: String,
}

fn require(binary: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{binary}` is not on PATH: the Route53 tests need moto's server (moto[server] from PyPI). \
         Run the suite with `bash .ci/test.sh`, or install it with `bash e2e/assets.sh` and \
         `eval \"$(bash e2e/assets.sh --print)\"`."
    );
}

/// An access key made in moto's IAM.
#[derive(Debug, Clone)]
pub struct IamKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Moto {
    /// moto on `port`, accepting any credentials.
    pub fn start(port: u16) -> Self {
        Self::spawn(port, None)
    }

    /// moto on `port` checking credentials (moto's IAM authentication)
    /// after the first `setup_requests` requests.
    pub fn start_with_auth(port: u16, setup_requests: u32) -> Self {
        Self::spawn(port, Some(setup_requests))
    }

    fn spawn(port: u16, setup_requests: Option<u32>) -> Self {
        let binary = require("moto_server");
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let mut command = Command::new(binary);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("INITIAL_NO_AUTH_ACTION_COUNT")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(count) = setup_requests {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", count.to_string());
        }
        let child = command.spawn().expect("moto_server starts");
        let mut moto = Self {
            child,
            dir,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited ({status}); log:\n{}", moto.log());
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on 127.0.0.1:{port} within 60s; log:\n{}",
                moto.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// moto's log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }

    /// Sends an unsigned request to `service`; returns status and body.
    async fn request(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> (u16, String) {
        let response = reqwest::Client::new()
            .request(method, format!("{}{path}", self.endpoint))
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=harness/20250101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
                ),
            )
            .header("content-type", content_type)
            .body(body)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    /// A query-API call (IAM, STS): `Action=...&...` posted as a form.
    async fn query_api(&self, service: &str, form: &[(&str, &str)]) -> String {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let (status, text) = self
            .request(
                service,
                reqwest::Method::POST,
                "/",
                "application/x-www-form-urlencoded",
                body,
            )
            .await;
        assert!(status < 300, "{service} {form:?}: {status}: {text}");
        text
    }

    /// Creates a hosted zone (private ones attached to a made-up VPC) and
    /// returns its ID without `/hostedzone/`.
    pub async fn create_zone(&self, name: &str, private: bool) -> String {
        let vpc = if private {
            "<VPC><VPCRegion>us-east-1</VPCRegion><VPCId>vpc-12345678</VPCId></VPC><HostedZoneConfig><PrivateZone>true</PrivateZone></HostedZoneConfig>"
        } else {
            ""
        };
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><CreateHostedZoneRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Name>{name}.</Name><CallerReference>{name}-{private}-{}</CallerReference>{vpc}</CreateHostedZoneRequest>"#,
            std::process::id()
        );
        let (status, text) = self
            .request(
                "route53",
                reqwest::Method::POST,
                "/2013-04-01/hostedzone",
                "application/xml",
                body,
            )
            .await;
        assert!(status < 300, "create zone {name}: {status}: {text}");
        let id = between(&text, "<Id>", "</Id>").expect("a zone ID");
        id.trim_start_matches("/hostedzone/").to_string()
    }

    /// Sets the TXT record set at `name` to `values` (already quoted), as
    /// another tool would.
    pub async fn put_txt(&self, zone: &str, name: &str, values: &[&str]) {
        let records: String = values
            .iter()
            .map(|v| format!("<ResourceRecord><Value>{v}</Value></ResourceRecord>"))
            .collect();
        let body = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Changes><Change><Action>UPSERT</Action><ResourceRecordSet><Name>{name}.</Name><Type>TXT</Type><TTL>300</TTL><ResourceRecords>{records}</ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"#
        );
        let (status, text) = self
            .request(
                "route53",
                reqwest::Method::POST,
                &format!("/2013-04-01/hostedzone/{zone}/rrset/"),
                "application/xml",
                body,
            )
            .await;
        assert!(status < 300, "put TXT {name}: {status}: {text}");
    }

    /// The TXT values (as Route53 spells them, quoted) at `name` in
    /// `zone`: what moto holds, read independently of the solver.
    pub async fn txt(&self, zone: &str, name: &str) -> Vec<String> {
        let (status, text) = self
            .request(
                "route53",
                reqwest::Method::GET,
                &format!("/2013-04-01/hostedzone/{zone}/rrset"),
                "application/xml",
                String::new(),
            )
            .await;
        assert!(status < 300, "list {zone}: {status}: {text}");
        let wanted = format!("<Name>{}.</Name>", name.trim_end_matches('.'));
        let mut values = Vec::new();
        for set in text.split("<ResourceRecordSet>").skip(1) {
            if set.contains(&wanted) && set.contains("<Type>TXT</Type>") {
                let mut rest = set;
                while let Some(value) = between(rest, "<Value>", "</Value>") {
                    values.push(unescape(&value));
                    rest = &rest[rest.find("</Value>").unwrap() + 8..];
                }
            }
        }
        values
    }

    /// A reader of [`Moto::txt`] at `name` in `zone` that owns what it
    /// needs, e.g. for `pebble::mirror_txt`.
    pub fn txt_reader(
        self: &std::sync::Arc<Self>,
        zone: &str,
        name: &str,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send>>
           + Send
           + 'static {
        let (moto, zone, name) = (self.clone(), zone.to_owned(), name.to_owned());
        move || {
            let (moto, zone, name) = (moto.clone(), zone.clone(), name.clone());
            Box::pin(async move { moto.txt(&zone, &name).await })
        }
    }

    /// Creates an IAM user with an access key and an inline policy
    /// allowing `actions`.
    pub async fn create_user_with_key(&self, user: &str, actions: &[&str]) -> IamKey {
        self.query_api(
            "iam",
            &[
                ("Action", "CreateUser"),
                ("UserName", user),
                ("Version", "2010-05-08"),
            ],
        )
        .await;
        let key = self
            .query_api(
                "iam",
                &[
                    ("Action", "CreateAccessKey"),
                    ("UserName", user),
                    ("Version", "2010-05-08"),
                ],
            )
            .await;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        })
        .to_string();
        self.query_api(
            "iam",
            &[
                ("Action", "PutUserPolicy"),
                ("UserName", user),
                ("PolicyName", "certweave"),
                ("PolicyDocument", &policy),
                ("Version", "2010-05-08"),
            ],
        )
        .await;
        IamKey {
            access_key_id: between(&key, "<AccessKeyId>", "</AccessKeyId>").unwrap(),
            secret_access_key: between(&key, "<SecretAccessKey>", "</SecretAccessKey>").unwrap(),
        }
    }

    /// Creates an IAM role anyone in the account may assume, allowed
    /// `actions`; returns its ARN.
    pub async fn create_role(&self, name: &str, actions: &[&str]) -> String {
        let trust = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
        })
        .to_string();
        let created = self
            .query_api(
                "iam",
                &[
                    ("Action", "CreateRole"),
                    ("RoleName", name),
                    ("AssumeRolePolicyDocument", &trust),
                    ("Version", "2010-05-08"),
                ],
            )
            .await;
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        })
        .to_string();
        self.query_api(
            "iam",
            &[
                ("Action", "PutRolePolicy"),
                ("RoleName", name),
                ("PolicyName", "certweave"),
                ("PolicyDocument", &policy),
                ("Version", "2010-05-08"),
            ],
        )
        .await;
        between(&created, "<Arn>", "</Arn>").unwrap()
    }

    /// moto's whole state as JSON (its `/moto-api/data.json`), to see what
    /// happened inside, e.g. which roles were assumed.
    pub async fn state(&self) -> String {
        reqwest::get(format!("{}/moto-api/data.json", self.endpoint))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- moto log (last lines) ---");
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("{line}");
            }
        }
    }
}

/// The text between the first `start` and the next `end`.
fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(text[from..to].to_string())
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
