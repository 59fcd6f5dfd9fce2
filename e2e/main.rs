//! End-to-end: `certweave controller` against a real kube-apiserver and
//! etcd (from `KUBEBUILDER_ASSETS`, as controller-runtime's envtest) and a
//! real ACME server (Pebble). See `e2e/README.md`.
//!
//! One test, in steps that build on each other; each waits with a timeout
//! and fails with what it last saw and the controller's log. Without
//! `KUBEBUILDER_ASSETS` it prints one line saying so and passes.

#[path = "../tests/support/bind9.rs"]
mod bind9;
#[path = "../tests/support/crd_cases.rs"]
mod crd_cases;
#[path = "../tests/support/moto.rs"]
mod moto;
#[path = "../tests/support/pebble.rs"]
mod pebble;

mod acme_server_features;
mod certificate_requests;
mod chart;
mod conformance;
mod gateway;
mod harness;
mod isolation;
mod keystores;
mod route53;
mod scoped;

use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use certweave::api::certificate::{Certificate, CertificateCondition};
use certweave::api::issuer::{ClusterIssuer, Issuer, IssuerObject};
use certweave::model::CertificateRequest;
use certweave::pki::{check_bundle, verify_chain_to_root, CertInfo};
use chart::Helm;
use harness::{Assets, Cluster, Controller, Serving, CONTROLLER_NAMESPACE};
use pebble::{Pebble, PebbleOptions};

/// Where the test's own objects live.
const NS: &str = "e2e";
/// The cert-manager documentation's ACME ClusterIssuer, pointed at Pebble.
const ACME_ISSUER: &str = "letsencrypt-staging";
/// A SelfSigned ClusterIssuer (Pod certificates, the CA's root).
const SELF_SIGNED: &str = "selfsigned";

/// The numbered steps of [`end_to_end`].
const STEPS: u32 = 13;

const ISSUER_READY: Duration = Duration::from_secs(60);
const ISSUED: Duration = Duration::from_secs(90);

/// Progress and the skip notice, written past the test harness's capture so
/// they show in a plain `cargo test`.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "e2e: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end() {
    let assets = match Assets::from_env() {
        Ok(assets) => assets,
        Err(why) => {
            let why = format!(
                "{why}; set KUBEBUILDER_ASSETS to a folder holding etcd and kube-apiserver \
                 (`bash e2e/assets.sh` builds them; `.ci/test.sh` does it for you) to run \
                 the end-to-end tests"
            );
            // CI must run them: a skip there would hide a broken harness.
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                panic!("e2e cannot run in CI: {why}");
            }
            say(&format!("SKIPPED — {why}"));
            return;
        }
    };
    say(&format!(
        "{} with {}",
        assets.kube_apiserver_version(),
        assets.etcd_version()
    ));
    let started = Instant::now();
    let mut e2e = E2e::start(&assets).await;
    step(
        1,
        "documentation ClusterIssuer (ACME) and Certificate",
        acme_certificate(&e2e),
    )
    .await;
    step(
        2,
        "Ingress with only cert-manager.io/cluster-issuer",
        ingress(&e2e),
    )
    .await;
    step(3, "Pod with certweave.io/cluster-issuer", pod(&e2e)).await;
    step(4, "deleted Secret is issued again", deleted_secret(&e2e)).await;
    step(5, "short-lived certificate is renewed", renewal(&e2e)).await;
    step(
        6,
        "conformance: each issuer type, each kind of request",
        conformance(&e2e),
    )
    .await;
    step(
        7,
        "CertificateRequests: requester, approval, CA, SelfSigned and ACME signing, refusals",
        certificate_requests::certificate_requests(&e2e),
    )
    .await;
    step(
        8,
        "Gateway API: CRDs found without a restart, listener filled at admission, shim",
        gateway::gateway(&e2e),
    )
    .await;
    e2e.check_metrics().await;
    e2e.check_events().await;
    step(
        9,
        "DNS-01 through Route53 (moto): wildcard issued, records cleaned up, misconfiguration named",
        route53::route53(&mut e2e),
    )
    .await;
    step(
        10,
        "self-managed webhook serving certificate and caBundle",
        e2e.self_managed_serving_certificate(),
    )
    .await;
    step(11, "helm upgrade and helm uninstall", chart_lifecycle(&e2e)).await;
    step(
        12,
        "kubectl apply --server-side -k webhook-config/",
        plain_manifests(&e2e),
    )
    .await;
    step(
        13,
        "namespace-scoped install: --watch-namespaces, Roles only, no cluster-wide Secret access",
        scoped::namespace_scoped(&mut e2e),
    )
    .await;
    say(&format!("all steps passed in {:?}", started.elapsed()));
}

/// Runs step `number` of [`end_to_end`], saying when it starts and how long
/// it took.
async fn step(number: u32, name: &str, check: impl Future<Output = ()>) {
    say(&format!("[{number}/{STEPS}] {name} …"));
    let t = Instant::now();
    check.await;
    say(&format!(
        "[{number}/{STEPS}] {name}: ok in {:?}",
        t.elapsed()
    ));
}

/// The running system and a client for it. Field order is drop order: the
/// controller stops first, the API server last.
struct E2e {
    controller: Controller,
    pebble: Pebble,
    cluster: Cluster,
    client: Client,
    helm: Helm,
    /// The chart's webhook `clientConfig`s, replaced by the controller's URL.
    chart_client_configs: Vec<Value>,
}

impl E2e {
    async fn start(assets: &Assets) -> Self {
        let t = Instant::now();
        let cluster = Cluster::start(assets).await;
        say(&format!(
            "etcd and kube-apiserver ready at {} in {:?}",
            cluster.server_url,
            t.elapsed()
        ));
        let client = cluster.client().await;
        let namespace: Namespace = object(json!({"metadata": {"name": NS}}));
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("create namespace {NS}: {e}"));

        let t = Instant::now();
        let helm = Helm::find(&cluster.kubeconfig).unwrap_or_else(|why| panic!("{why}"));
        helm.install(CONTROLLER_NAMESPACE, &[])
            .unwrap_or_else(|e| panic!("helm install of the chart: {e}\n{}", cluster.log_tails()));
        say(&format!(
            "helm install of charts/certweave ({}) in {:?}",
            helm.version(),
            t.elapsed()
        ));
        wait_for_crds(&client).await;
        let judged = crd_rules_on_the_api_server(&client).await;
        say(&format!(
            "the chart's CRDs are established; the API server judges {judged} objects as \
             tests/crds.rs does (CEL rules and their messages)"
        ));

        // The controller runs with the chart's ServiceAccount and RBAC.
        let token =
            chart::service_account_token(&client, CONTROLLER_NAMESPACE, chart::RELEASE).await;
        let kubeconfig = cluster.kubeconfig_for("certweave-serviceaccount", &token);
        let http01_port = pebble::free_port();
        let pebble = Pebble::start(PebbleOptions::http01(http01_port));
        let controller = Controller::start(&cluster, &kubeconfig, http01_port).await;
        say("certweave controller ready, as the chart's ServiceAccount");
        // The loopback --pod-ip cannot be an endpoint: said once, at start.
        let warnings = controller
            .log()
            .matches("POD_IP 127.0.0.1 is a loopback")
            .count();
        assert_eq!(
            warnings,
            1,
            "the controller should report its unroutable POD_IP exactly once at start\n{}",
            controller.log_tail(40)
        );
        // Before the chart's webhooks reach the controller: not ready, with
        // the reason; after, ready.
        let admin_kubeconfig = cluster.kubeconfig.clone();
        let check = move |wait: &str| {
            std::process::Command::new(env!("CARGO_BIN_EXE_certweave"))
                .args(["check", "api", "-n", NS, "--wait", wait, "--kubeconfig"])
                .arg(&admin_kubeconfig)
                .output()
                .unwrap()
        };
        let before = check("0s");
        let why = String::from_utf8_lossy(&before.stderr).into_owned();
        assert!(
            before.status.code() == Some(1) && why.contains("webhook"),
            "certweave check api should fail, naming the webhook, while no webhook answers: {why}"
        );
        let chart_client_configs = chart::route_webhooks(
            &client,
            chart::RELEASE,
            &controller.webhook_url,
            &controller.webhook_ca_bundle,
        )
        .await;
        let e2e = Self {
            controller,
            pebble,
            cluster,
            client,
            helm,
            chart_client_configs,
        };
        e2e.wait_for_webhook().await;
        say("the API server calls the webhook through the chart's configuration");
        let after = check("30s");
        assert!(
            after.status.success(),
            "certweave check api should pass once the webhook answers: {}",
            String::from_utf8_lossy(&after.stderr)
        );
        say("certweave check api: not ready before the webhook was routed, ready after");
        e2e
    }

    /// The leader reports itself and the certificates it manages on the
    /// metrics port, under cert-manager's metric names.
    async fn check_metrics(&self) {
        let url = format!("{}/metrics", self.controller.metrics_url);
        let body = match reqwest::get(&url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(e) => self.fail(&format!("GET {url}: {e}")),
        };
        let has = |metric: &str, needle: &str| {
            body.lines()
                .any(|l| l.starts_with(metric) && l.contains(needle))
        };
        if !has("certweave_leader", " 1")
            || !has(
                "certmanager_certificate_expiration_timestamp_seconds",
                "example-com",
            )
            || !has("certmanager_certificate_ready_status", "example-com")
        {
            self.fail(&format!(
                "{url} should show certweave_leader 1 and the expiration and ready status of \
                 Certificate example-com:\n{body}"
            ));
        }
        say("metrics: leader and certificate series present");
    }

    /// How many AdmissionReviews of `kind` the webhook has answered
    /// (`certweave_admission_requests_total`, all operations and results).
    async fn admission_reviews(&self, kind: &str) -> f64 {
        let url = format!("{}/metrics", self.controller.metrics_url);
        let body = match reqwest::get(&url).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(e) => self.fail(&format!("GET {url}: {e}")),
        };
        let label = format!("kind=\"{kind}\"");
        body.lines()
            .filter(|l| l.starts_with("certweave_admission_requests_total{") && l.contains(&label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// The API server accepted certweave's Events: the ones about the
    /// step 1 Certificate read back, as `kubectl describe` shows them.
    async fn check_events(&self) {
        let about = self.events_about("example-com").await;
        if !about.iter().any(|e| e.starts_with("Normal Issued")) {
            self.fail(&format!(
                "the API server should hold certweave's Events about Certificate \
                 {NS}/example-com, among them one Normal Issued; it has: {about:?}"
            ));
        }
        say(&format!(
            "events: {} about Certificate example-com, e.g. {:?}",
            about.len(),
            about[0]
        ));
    }

    /// certweave's Events about the Certificate `name`, read back from the
    /// API server as `kubectl describe` shows them: "TYPE REASON: NOTE".
    async fn events_about(&self, name: &str) -> Vec<String> {
        let events: Api<k8s_openapi::api::events::v1::Event> = self.api(NS);
        let list = match events.list(&Default::default()).await {
            Ok(list) => list,
            Err(e) => self.fail(&format!("list Events in {NS}: {e}")),
        };
        list.items
            .iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.reporting_controller.as_deref() == Some("certweave.io/controller")
            })
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e.type_.as_deref().unwrap_or("-"),
                    e.reason.as_deref().unwrap_or("-"),
                    e.note.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    /// Step 10: the controller as the chart runs it by default, without
    /// serving-certificate files: restarted so, it creates its CA and
    /// serving certificate in Secret `certweave-webhook-tls` and, as the
    /// leader, patches that CA into every webhook of the chart's
    /// configuration, with nothing but the chart's RBAC.
    async fn self_managed_serving_certificate(&mut self) {
        self.controller.stop();
        let token =
            chart::service_account_token(&self.client, CONTROLLER_NAMESPACE, chart::RELEASE).await;
        let kubeconfig = self
            .cluster
            .kubeconfig_for("certweave-serviceaccount", &token);
        self.controller = Controller::start_serving(
            &self.cluster,
            &kubeconfig,
            self.pebble.http01_port,
            Serving::SelfManaged,
        )
        .await;
        let secrets: Api<Secret> = self.api(CONTROLLER_NAMESPACE);
        let webhooks: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        let secret = self
            .eventually(
                "Secret certweave/certweave-webhook-tls with the webhook's CA, and that CA \
                 in every webhook's caBundle",
                Duration::from_secs(60),
                || {
                    let secrets = secrets.clone();
                    let webhooks = webhooks.clone();
                    async move {
                        let secret = secrets
                            .get_opt("certweave-webhook-tls")
                            .await
                            .map_err(|e| e.to_string())?
                            .ok_or("the Secret does not exist")?;
                        let ca = data(&secret, "ca.crt").ok_or("the Secret has no ca.crt")?;
                        let configuration = webhooks
                            .get(chart::RELEASE)
                            .await
                            .map_err(|e| e.to_string())?;
                        for webhook in configuration.webhooks.iter().flatten() {
                            let bundle = webhook
                                .client_config
                                .ca_bundle
                                .as_ref()
                                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
                                .unwrap_or_default();
                            if !bundle.contains(ca.trim()) {
                                return Err(format!(
                                    "webhook {}: the caBundle does not hold the CA of the Secret yet",
                                    webhook.name
                                ));
                            }
                        }
                        Ok(secret)
                    }
                },
            )
            .await;
        // The serving certificate chains to that CA and names the Service.
        let ca = data(&secret, "ca.crt").unwrap_or_default();
        let leaf = check_tls_secret(&secret, &["certweave-webhook.certweave.svc"], &ca)
            .unwrap_or_else(|e| self.fail(&format!("Secret certweave/certweave-webhook-tls: {e}")));
        say(&format!(
            "[10/{STEPS}] serving certificate for {:?}, its CA in every caBundle",
            leaf.dns_names
        ));
    }

    /// Fails the test with `message` and the logs that explain it.
    fn fail(&self, message: &str) -> ! {
        panic!(
            "{message}\n{}\n{}",
            self.controller.log_tail(60),
            self.cluster.log_tails()
        )
    }

    /// Polls `check` every half second until it returns `Ok`, failing after
    /// `timeout` with the last `Err` it returned.
    async fn eventually<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match check().await {
                Ok(value) => return value,
                Err(last) => last,
            };
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "{what}: not within {timeout:?}; last seen: {last}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Runs kubectl as the cluster admin; its output, or the test fails.
    fn kubectl(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("kubectl")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.cluster.kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap_or_else(|e| {
                self.fail(&format!(
                    "kubectl is not on PATH ({e}); `bash e2e/assets.sh` builds it"
                ))
            });
        if !out.status.success() {
            self.fail(&format!(
                "kubectl {}: {}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn api<K>(&self, namespace: &str) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    async fn create<K>(&self, api: &Api<K>, value: Value) -> K
    where
        K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        let object: K = object(value.clone());
        match api.create(&PostParams::default(), &object).await {
            Ok(created) => created,
            Err(e) => self.fail(&format!("create {value}: {e}")),
        }
    }

    /// Waits until the Certificate `name` is Ready.
    async fn certificate_ready(&self, name: &str, timeout: Duration) -> Certificate {
        self.certificate_ready_in(NS, name, timeout).await
    }

    /// Waits until the Certificate `namespace/name` is Ready.
    async fn certificate_ready_in(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Certificate {
        let api: Api<Certificate> = self.api(namespace);
        self.eventually(
            &format!("Certificate {namespace}/{name} Ready"),
            timeout,
            || {
                let api = api.clone();
                async move {
                    let certificate = api
                        .get_opt(name)
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or("the Certificate does not exist")?;
                    let conditions = certificate
                        .status
                        .as_ref()
                        .map(|s| s.conditions.as_slice())
                        .unwrap_or_default();
                    if is_ready(conditions) {
                        Ok(certificate)
                    } else {
                        Err(describe(conditions))
                    }
                }
            },
        )
        .await
    }

    /// Waits until the Secret `name` holds a valid bundle for `dns_names`
    /// that verifies to `root_pem`, satisfying `accept` (e.g. a new
    /// serial).
    async fn valid_secret(
        &self,
        name: &str,
        dns_names: &[&str],
        root_pem: &str,
        timeout: Duration,
        accept: impl Fn(&Secret, &CertInfo) -> Result<(), String>,
    ) -> (Secret, CertInfo) {
        let api: Api<Secret> = self.api(NS);
        self.eventually(
            &format!("Secret {NS}/{name} with a valid certificate"),
            timeout,
            || {
                let api = api.clone();
                let accept = &accept;
                async move {
                    let secret = api
                        .get_opt(name)
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or("the Secret does not exist")?;
                    let leaf = check_tls_secret(&secret, dns_names, root_pem)?;
                    accept(&secret, &leaf)?;
                    Ok((secret, leaf))
                }
            },
        )
        .await
    }

    /// Waits until the Certificate `name` has a `status.revision` above
    /// `revision`, and returns it.
    async fn revision_above(&self, name: &str, revision_before: i64) -> Certificate {
        let certificates: Api<Certificate> = self.api(NS);
        self.eventually(
            &format!(
                "Certificate {NS}/{name} issued again (status.revision above {revision_before})"
            ),
            Duration::from_secs(150),
            || {
                let certificates = certificates.clone();
                async move {
                    let certificate = certificates.get(name).await.map_err(|e| e.to_string())?;
                    if revision(&certificate) > revision_before {
                        Ok(certificate)
                    } else {
                        Err(format!(
                            "revision {} (renewalTime {:?})",
                            revision(&certificate),
                            certificate
                                .status
                                .as_ref()
                                .and_then(|s| s.renewal_time.clone())
                        ))
                    }
                }
            },
        )
        .await
    }

    /// The webhook configuration reaches the API server's informer a moment
    /// after it is created: dry-run an annotated Ingress until it comes
    /// back mutated.
    async fn wait_for_webhook(&self) {
        let api: Api<Ingress> = self.api(NS);
        let probe: Ingress = object(ingress_json("webhook-probe", "probe.example.test"));
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        self.eventually(
            "the API server calls the webhook",
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let probe = probe.clone();
                let dry_run = dry_run.clone();
                async move {
                    let created = api
                        .create(&dry_run, &probe)
                        .await
                        .map_err(|e| e.to_string())?;
                    match created.spec.and_then(|s| s.tls) {
                        Some(_) => Ok(()),
                        None => Err("the dry-run Ingress came back without spec.tls".into()),
                    }
                }
            },
        )
        .await;
    }
}

/// Step 1: the manifests of cert-manager's documentation, unchanged except
/// for the ACME server (Pebble) and its TLS trust.
async fn acme_certificate(e2e: &E2e) {
    let issuers: Api<ClusterIssuer> = Api::all(e2e.client.clone());
    e2e.create(
        &issuers,
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": ACME_ISSUER},
            "spec": {"acme": {
                "server": e2e.pebble.directory_url,
                "email": "user@example.com",
                "privateKeySecretRef": {"name": "letsencrypt-staging"},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(&e2e.pebble.tls_ca_pem),
                "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}],
            }},
        }),
    )
    .await;
    cluster_issuer_ready(e2e, ACME_ISSUER).await;
    // A ClusterIssuer's account key lives in the controller's namespace.
    let account: Api<Secret> = e2e.api(CONTROLLER_NAMESPACE);
    match account.get_opt("letsencrypt-staging").await {
        Ok(Some(secret)) if data(&secret, "tls.key").is_some() => {}
        other => e2e.fail(&format!(
            "the ACME account key Secret {CONTROLLER_NAMESPACE}/letsencrypt-staging \
             should hold tls.key once the issuer is Ready; got {other:?}"
        )),
    }

    let certificates: Api<Certificate> = e2e.api(NS);
    e2e.create(
        &certificates,
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "example-com", "namespace": NS},
            "spec": {
                "secretName": "example-com-tls",
                "dnsNames": ["example.test", "www.example.test"],
                "issuerRef": {"name": ACME_ISSUER, "kind": "ClusterIssuer"},
            },
        }),
    )
    .await;
    let certificate = e2e.certificate_ready("example-com", ISSUED).await;
    let root = e2e.pebble.root(0).await;
    e2e.valid_secret(
        "example-com-tls",
        &["example.test", "www.example.test"],
        &root,
        Duration::from_secs(10),
        |_, _| Ok(()),
    )
    .await;
    let status = certificate.status.unwrap_or_default();
    if status.revision.unwrap_or(0) < 1 || status.not_after.is_none() {
        e2e.fail(&format!(
            "a Ready Certificate reports its revision and notAfter; status: {status:?}"
        ));
    }
    acme_server_features::renewal_information_and_profiles(e2e).await;
    isolation::hanging_validations_do_not_delay_other_issuers(e2e).await;
}

/// Step 2: the webhook fills in `spec.tls`; the ingress shim makes a
/// Certificate named after the Secret, owned by the Ingress.
async fn ingress(e2e: &E2e) {
    let ingresses: Api<Ingress> = e2e.api(NS);
    // The chart's matchConditions: the API server admits an Ingress with
    // no trigger annotation without calling the webhook at all.
    let reviews_before = e2e.admission_reviews("Ingress").await;
    let mut plain = ingress_json("plain", "plain.example.test");
    plain["metadata"]["annotations"] = json!({"team": "web"});
    e2e.create(&ingresses, plain).await;
    let reviews_after = e2e.admission_reviews("Ingress").await;
    if reviews_after != reviews_before {
        e2e.fail(&format!(
            "an Ingress without trigger annotations should not reach the webhook \
             (matchConditions): Ingress reviews went from {reviews_before} to {reviews_after}"
        ));
    }
    let created = e2e
        .create(&ingresses, ingress_json("shop", "shop.example.test"))
        .await;
    if e2e.admission_reviews("Ingress").await <= reviews_after {
        e2e.fail("the annotated Ingress should have been reviewed by the webhook");
    }
    let tls = serde_json::to_value(created.spec.as_ref().and_then(|s| s.tls.as_ref()))
        .unwrap_or_default();
    let expected = json!([{"hosts": ["shop.example.test"], "secretName": "shop-tls"}]);
    if tls != expected {
        e2e.fail(&format!(
            "the admitted Ingress should have spec.tls {expected}, has {tls}"
        ));
    }
    let certificate = e2e.certificate_ready("shop-tls", ISSUED).await;
    let owned_by_ingress = certificate
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Ingress" && o.name == "shop");
    if !owned_by_ingress {
        e2e.fail(&format!(
            "Certificate shop-tls should be owned by Ingress shop: {:?}",
            certificate.metadata.owner_references
        ));
    }
    let spec = &certificate.spec;
    if spec.dns_names != ["shop.example.test"] || spec.issuer_ref.name != ACME_ISSUER {
        e2e.fail(&format!(
            "Certificate shop-tls asks for the wrong thing: {spec:?}"
        ));
    }
    let root = e2e.pebble.root(0).await;
    e2e.valid_secret(
        "shop-tls",
        &["shop.example.test"],
        &root,
        Duration::from_secs(10),
        |_, _| Ok(()),
    )
    .await;
}

/// Step 3: a Pod naming a ClusterIssuer is admitted with the Secret
/// mounted, and its Certificate is created.
async fn pod(e2e: &E2e) {
    let issuers: Api<ClusterIssuer> = Api::all(e2e.client.clone());
    e2e.create(
        &issuers,
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": SELF_SIGNED},
            "spec": {"selfSigned": {}},
        }),
    )
    .await;
    cluster_issuer_ready(e2e, SELF_SIGNED).await;

    let pods: Api<Pod> = e2e.api(NS);
    let created = e2e
        .create(
            &pods,
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "api-0",
                    "labels": {"app": "api"},
                    "annotations": {"certweave.io/cluster-issuer": SELF_SIGNED},
                },
                "spec": {"containers": [{"name": "app", "image": "registry.example.test/api:1"}]},
            }),
        )
        .await;
    let pod = serde_json::to_value(&created).unwrap();
    let volume = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["secret"]["secretName"] == "api-tls")
        .cloned()
        .unwrap_or_else(|| {
            e2e.fail(&format!(
                "the admitted Pod should have a volume of Secret api-tls: {}",
                pod["spec"]
            ))
        });
    let mounted = pod["spec"]["containers"][0]["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| {
            m["name"] == volume["name"]
                && m["mountPath"] == "/etc/certweave/tls"
                && m["readOnly"] == true
        });
    if !mounted {
        e2e.fail(&format!(
            "container app should mount {} read-only at /etc/certweave/tls: {}",
            volume["name"], pod["spec"]["containers"][0]
        ));
    }
    if pod["metadata"]["labels"]["certweave.io/injected"] != "true" {
        e2e.fail(&format!(
            "the admitted Pod should carry the label certweave.io/injected=true: {}",
            pod["metadata"]
        ));
    }

    let certificates: Api<Certificate> = e2e.api(NS);
    let certificate = e2e
        .eventually(
            "Certificate e2e/api-tls created for the Pod",
            Duration::from_secs(30),
            || {
                let certificates = certificates.clone();
                async move {
                    certificates
                        .get_opt("api-tls")
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or_else(|| "the Certificate does not exist".to_string())
                }
            },
        )
        .await;
    let spec = &certificate.spec;
    let names = ["api.e2e.svc", "api.e2e.svc.cluster.local"];
    if spec.dns_names != names
        || spec.issuer_ref.name != SELF_SIGNED
        || spec.issuer_ref.kind.as_deref() != Some("ClusterIssuer")
    {
        e2e.fail(&format!(
            "Certificate api-tls should ask ClusterIssuer {SELF_SIGNED} for {names:?}: {spec:?}"
        ));
    }
    e2e.certificate_ready("api-tls", ISSUED).await;
    let (secret, _) = e2e
        .valid_secret(
            "api-tls",
            &names,
            "",
            Duration::from_secs(10),
            |_, _| Ok(()),
        )
        .await;
    let chain = data(&secret, "tls.crt").unwrap_or_default();
    if let Err(e) = verify_chain_to_root(&chain, &chain) {
        e2e.fail(&format!("api-tls should be self-signed: {e}"));
    }
}

/// Step 4: deleting the Secret of step 1 brings it back, issued anew.
async fn deleted_secret(e2e: &E2e) {
    let secrets: Api<Secret> = e2e.api(NS);
    let root = e2e.pebble.root(0).await;
    let names = ["example.test", "www.example.test"];
    let (old, old_leaf) = e2e
        .valid_secret(
            "example-com-tls",
            &names,
            &root,
            Duration::from_secs(10),
            |_, _| Ok(()),
        )
        .await;
    let old_uid = old.metadata.uid.clone();
    let certificates: Api<Certificate> = e2e.api(NS);
    let old_revision = revision(&certificates.get("example-com").await.unwrap());
    if let Err(e) = secrets
        .delete("example-com-tls", &DeleteParams::default())
        .await
    {
        e2e.fail(&format!("delete Secret example-com-tls: {e}"));
    }
    e2e.valid_secret("example-com-tls", &names, &root, ISSUED, |secret, leaf| {
        if secret.metadata.uid == old_uid {
            return Err("the old Secret is still there".into());
        }
        if leaf.serial_hex == old_leaf.serial_hex {
            return Err(format!(
                "the new Secret holds the old certificate {}",
                leaf.serial_hex
            ));
        }
        Ok(())
    })
    .await;
    let certificate = e2e.certificate_ready("example-com", ISSUED).await;
    if revision(&certificate) <= old_revision {
        e2e.fail(&format!(
            "re-issuing should raise status.revision above {old_revision}: {:?}",
            certificate.status
        ));
    }
}

/// Step 5: a CA Issuer (its root made by the SelfSigned ClusterIssuer, as
/// in cert-manager's CA bootstrap) signs 2-minute certificates renewed 90
/// s before expiry, i.e. 30 s after issuance, with a new key or (with
/// `rotationPolicy: Never`) the same one; a DNS name added to the spec is
/// issued at once.
async fn renewal(e2e: &E2e) {
    let certificates: Api<Certificate> = e2e.api(NS);
    // The CA Issuer is created before its CA Certificate: not Ready while
    // the Secret does not exist, and Ready as soon as the Secret appears,
    // not at the next periodic recheck (a minute).
    let issuers: Api<Issuer> = e2e.api(NS);
    e2e.create(
        &issuers,
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": {"name": "e2e-ca", "namespace": NS},
            "spec": {"ca": {"secretName": "e2e-root"}},
        }),
    )
    .await;
    issuer_readiness(e2e, &issuers, "e2e-ca", Readiness::NotReady, ISSUER_READY).await;
    e2e.create(
        &certificates,
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "e2e-root", "namespace": NS},
            "spec": {
                "isCA": true,
                "commonName": "certweave e2e root",
                "secretName": "e2e-root",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"name": SELF_SIGNED, "kind": "ClusterIssuer", "group": "cert-manager.io"},
            },
        }),
    )
    .await;
    e2e.certificate_ready("e2e-root", ISSUED).await;
    let root_secret: Api<Secret> = e2e.api(NS);
    let root = data(&root_secret.get("e2e-root").await.unwrap(), "tls.crt").unwrap_or_default();
    let secret_written = Instant::now();
    // Well inside the one-minute recheck: the Secret's change did it.
    issuer_readiness(
        e2e,
        &issuers,
        "e2e-ca",
        Readiness::Ready,
        Duration::from_secs(15),
    )
    .await;
    say(&format!(
        "[5/{STEPS}] CA Issuer created before its CA Secret: Ready {:?} after the Secret was read",
        secret_written.elapsed()
    ));

    // Two 2-minute certificates renewed 90 s before expiry: one with the
    // default key rotation (a new key each time), one that keeps its key.
    let short_lived = [("short-lived", "Always"), ("short-lived-kept", "Never")];
    for (name, rotation) in short_lived {
        e2e.create(
            &certificates,
            json!({
                "apiVersion": "cert-manager.io/v1",
                "kind": "Certificate",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "secretName": format!("{name}-tls"),
                    "dnsNames": ["short.example.test"],
                    "duration": "2m",
                    "renewBefore": "90s",
                    "privateKey": {"rotationPolicy": rotation},
                    "issuerRef": {"name": "e2e-ca"},
                },
            }),
        )
        .await;
    }
    let mut first = Vec::new();
    for (name, _) in short_lived {
        let certificate = e2e.certificate_ready(name, ISSUED).await;
        let (_, leaf) = e2e
            .valid_secret(
                &format!("{name}-tls"),
                &["short.example.test"],
                &root,
                Duration::from_secs(10),
                |_, _| Ok(()),
            )
            .await;
        let lifetime = leaf
            .not_after
            .duration_since(leaf.not_before)
            .unwrap_or_default();
        if lifetime > Duration::from_secs(5 * 60) {
            e2e.fail(&format!(
                "the CA issuer should honour duration 2m; {name} lives {lifetime:?}"
            ));
        }
        first.push((revision(&certificate), leaf));
    }
    for ((name, rotation), (first_revision, first_leaf)) in short_lived.iter().zip(&first) {
        let renewed = e2e.revision_above(name, *first_revision).await;
        let (_, leaf) = e2e
            .valid_secret(
                &format!("{name}-tls"),
                &["short.example.test"],
                &root,
                ISSUED,
                |_, leaf| {
                    if leaf.serial_hex == first_leaf.serial_hex {
                        Err("the Secret still holds the first certificate".into())
                    } else {
                        Ok(())
                    }
                },
            )
            .await;
        let same_key = leaf.spki_der == first_leaf.spki_der;
        if same_key != (*rotation == "Never") {
            e2e.fail(&format!(
                "rotationPolicy {rotation}: the renewed certificate of {name} should {} key",
                if *rotation == "Never" {
                    "keep its"
                } else {
                    "have a new"
                }
            ));
        }
        say(&format!(
            "[5/{STEPS}] {name}: revision {first_revision} → {}, rotationPolicy {rotation}: {}",
            revision(&renewed),
            if same_key { "same key" } else { "new key" }
        ));
    }

    // A name added to the spec is issued at once, with the others.
    let current = revision(&certificates.get("short-lived").await.unwrap());
    let patch = json!({"spec": {"dnsNames": ["short.example.test", "added.example.test"]}});
    if let Err(e) = certificates
        .patch(
            "short-lived",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        e2e.fail(&format!("add a DNS name to Certificate short-lived: {e}"));
    }
    e2e.revision_above("short-lived", current).await;
    e2e.valid_secret(
        "short-lived-tls",
        &["short.example.test", "added.example.test"],
        &root,
        ISSUED,
        |_, _| Ok(()),
    )
    .await;
}

async fn cluster_issuer_ready(e2e: &E2e, name: &str) {
    let issuers: Api<ClusterIssuer> = Api::all(e2e.client.clone());
    issuer_readiness(e2e, &issuers, name, Readiness::Ready, ISSUER_READY).await;
}

/// What [`issuer_readiness`] waits for.
#[derive(Clone, Copy, PartialEq)]
enum Readiness {
    Ready,
    /// Checked and found not ready (`Ready=False`).
    NotReady,
}

/// Waits until the Issuer or ClusterIssuer `name` of `api` is Ready, or
/// was checked and found not Ready, failing after `timeout`.
async fn issuer_readiness<K>(
    e2e: &E2e,
    api: &Api<K>,
    name: &str,
    want: Readiness,
    timeout: Duration,
) where
    K: IssuerObject + DeserializeOwned + std::fmt::Debug,
{
    let what = match want {
        Readiness::Ready => "Ready",
        Readiness::NotReady => "Ready=False",
    };
    e2e.eventually(&format!("{} {name} {what}", K::KIND), timeout, || {
        let api = api.clone();
        async move {
            let issuer = api
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the issuer does not exist")?;
            let reached = match want {
                Readiness::Ready => issuer.is_ready(),
                Readiness::NotReady => issuer
                    .ready_condition()
                    .is_some_and(|c| c.status == "False"),
            };
            if reached {
                Ok(())
            } else {
                Err(describe(
                    issuer
                        .issuer_status()
                        .map(|s| s.conditions.as_slice())
                        .unwrap_or_default(),
                ))
            }
        }
    })
    .await;
}

/// Every object of `tests/support/crd_cases.rs`, created with dry run:
/// the API server refuses each refused one with its CEL rule's message and
/// admits each accepted one, as kube-cel does in `tests/crds.rs`. Returns
/// how many it judged.
async fn crd_rules_on_the_api_server(client: &Client) -> usize {
    use kube::api::{ApiResource, DynamicObject};
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let certificates: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NS, &ApiResource::erase::<Certificate>(&()));
    let issuers: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<ClusterIssuer>(&()));
    let namespaced = |mut object: Value| {
        object["metadata"]["namespace"] = json!(NS);
        object
    };
    let mut cases: Vec<(&Api<DynamicObject>, Value, Option<&str>)> = Vec::new();
    for (object, message, _) in crd_cases::refused_certificates() {
        cases.push((&certificates, namespaced(object), Some(message)));
    }
    for object in crd_cases::accepted_certificates() {
        cases.push((&certificates, namespaced(object), None));
    }
    for (object, message, _) in crd_cases::refused_cluster_issuers() {
        cases.push((&issuers, object, Some(message)));
    }
    for object in crd_cases::accepted_cluster_issuers() {
        cases.push((&issuers, object, None));
    }
    let judged = cases.len();
    for (api, value, refused_with) in cases {
        let dynamic: DynamicObject = object(value.clone());
        match (api.create(&dry_run, &dynamic).await, refused_with) {
            (Ok(_), None) => {}
            (Err(e), Some(message)) if e.to_string().contains(message) => {}
            (outcome, expected) => panic!(
                "the API server should {} {} {}; got {:?}",
                match expected {
                    Some(m) => format!("refuse with {m:?}"),
                    None => "admit".to_owned(),
                },
                value["kind"],
                value["spec"],
                outcome.map(|_| "admitted")
            ),
        }
    }
    judged
}

/// Waits until the CRDs `certweave crds` prints (the chart ships the same
/// ones) are established, and checks that the API server enforces a CEL
/// rule.
async fn wait_for_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let yaml = certweave::api::crds_yaml();
    let mut names = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&yaml) {
        let crd: CustomResourceDefinition =
            serde::Deserialize::deserialize(document).expect("certweave crds prints CRDs");
        names.push(crd.metadata.name.clone().unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let crd = crds.get_opt(&name).await.unwrap();
            let established = crd
                .and_then(|c| c.status)
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "CRD {name} (installed by the chart) not Established within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The CRDs' CEL rules run in the API server: a Certificate naming no
    // subject is refused with the rule's message.
    let certificates: Api<Certificate> = Api::namespaced(client.clone(), NS);
    let nameless: Certificate = object(json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "nameless", "namespace": NS},
        "spec": {"secretName": "nameless-tls", "issuerRef": {"name": "x"}},
    }));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match certificates.create(&PostParams::default(), &nameless).await {
            Err(e) if e.to_string().contains("names no subject") => break,
            // Just after Established, the kind may not be served yet (404).
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!(
                "the API server should refuse a Certificate without names with the CEL \
                 rule's message; got {other:?}"
            ),
        }
    }
}

/// An Ingress with one rule for `host` and only the cluster-issuer
/// annotation: no `spec.tls`.
fn ingress_json(name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {"cert-manager.io/cluster-issuer": ACME_ISSUER},
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": host, "http": {"paths": [{
                "path": "/",
                "pathType": "Prefix",
                "backend": {"service": {"name": name, "port": {"number": 80}}},
            }]}}],
        },
    })
}

/// A Secret's value as text.
fn data(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
}

/// A Secret as certweave must write it: type `kubernetes.io/tls`, a key
/// matching the certificate, the names asked for, valid now, and (unless
/// `root_pem` is empty) a chain to `root_pem`.
fn check_tls_secret(
    secret: &Secret,
    dns_names: &[&str],
    root_pem: &str,
) -> Result<CertInfo, String> {
    if secret.type_.as_deref() != Some("kubernetes.io/tls") {
        return Err(format!("type {:?}, not kubernetes.io/tls", secret.type_));
    }
    let chain = data(secret, "tls.crt").ok_or("no tls.crt")?;
    let key = data(secret, "tls.key").ok_or("no tls.key")?;
    let request = CertificateRequest::for_dns_names(dns_names.iter().copied());
    let leaf = check_bundle(&chain, &key, Some(&request), SystemTime::now())
        .map_err(|e| format!("tls.crt/tls.key: {e}"))?;
    if !root_pem.is_empty() {
        verify_chain_to_root(&chain, root_pem).map_err(|e| format!("tls.crt: {e}"))?;
    }
    Ok(leaf)
}

fn is_ready(conditions: &[CertificateCondition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The conditions, as `kubectl describe` would summarise them.
fn describe(conditions: &[CertificateCondition]) -> String {
    if conditions.is_empty() {
        return "no conditions yet".into();
    }
    conditions
        .iter()
        .map(|c| {
            format!(
                "{}={} ({}: {})",
                c.type_,
                c.status,
                c.reason.as_deref().unwrap_or("-"),
                c.message.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn revision(certificate: &Certificate) -> i64 {
    certificate
        .status
        .as_ref()
        .and_then(|s| s.revision)
        .unwrap_or(0)
}

fn object<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("test object {value} does not deserialize: {e}"))
}

/// Step 6: every conformance case ([`conformance::cases`]) against each
/// issuer type that can serve it, all created at once per issuer, each
/// checked when Ready; and an ACME request for a CA certificate refused
/// with a condition and an Event, not retried in a loop.
async fn conformance(e2e: &E2e) {
    use conformance::Issuers;
    const ZONE: &str = "example.test";

    // DNS-01: a second Pebble that resolves through a BIND9 holding the
    // zone, updated over RFC 2136 with a TSIG key from a Secret.
    let bind = bind9::Bind9::start();
    let secrets: Api<Secret> = e2e.api(CONTROLLER_NAMESPACE);
    e2e.create(
        &secrets,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "bind-tsig", "namespace": CONTROLLER_NAMESPACE},
            "stringData": {"secret": bind.secret},
        }),
    )
    .await;
    let dns_pebble = Pebble::start(PebbleOptions {
        dns_server: Some(bind.addr()),
        ..PebbleOptions::http01(pebble::free_port())
    });
    let issuers: Api<ClusterIssuer> = Api::all(e2e.client.clone());
    e2e.create(
        &issuers,
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": "acme-dns01"},
            "spec": {"acme": {
                "server": dns_pebble.directory_url,
                "email": "user@example.com",
                "privateKeySecretRef": {"name": "acme-dns01-account"},
                "caBundle": base64::engine::general_purpose::STANDARD.encode(&dns_pebble.tls_ca_pem),
                "solvers": [{"dns01": {"rfc2136": {
                    "nameserver": bind.addr().to_string(),
                    "tsigKeyName": bind.key_name,
                    "tsigAlgorithm": "HMACSHA256",
                    "tsigSecretSecretRef": {"name": "bind-tsig", "key": "secret"},
                }}}],
            }},
        }),
    )
    .await;
    cluster_issuer_ready(e2e, "acme-dns01").await;

    let secrets: Api<Secret> = e2e.api(NS);
    let ca_root = data(&secrets.get("e2e-root").await.unwrap(), "tls.crt").unwrap_or_default();
    let cluster_issuer = |name: &str| json!({"name": name, "kind": "ClusterIssuer"});
    let targets = [
        ("selfsigned", cluster_issuer(SELF_SIGNED), String::new()),
        ("ca", json!({"name": "e2e-ca"}), ca_root),
        (
            "http01",
            cluster_issuer(ACME_ISSUER),
            e2e.pebble.root(0).await,
        ),
        (
            "dns01",
            cluster_issuer("acme-dns01"),
            dns_pebble.root(0).await,
        ),
    ];
    let cases = conformance::cases(ZONE);
    let certificates: Api<Certificate> = e2e.api(NS);
    let mut created = Vec::new();
    for (prefix, issuer_ref, root) in &targets {
        for case in &cases {
            let applies = match *prefix {
                "http01" => case.issuers == Issuers::AcmeToo,
                "dns01" => case.issuers == Issuers::Dns01 || case.name == "single-dns",
                _ => true,
            };
            if applies {
                e2e.create(&certificates, case.certificate(prefix, NS, issuer_ref))
                    .await;
                created.push((format!("{prefix}-{}", case.name), case, root));
            }
        }
    }
    for (name, case, root) in &created {
        e2e.certificate_ready(name, ISSUED).await;
        e2e.eventually(
            &format!("Secret {NS}/{name} holds what the spec asks for"),
            std::time::Duration::from_secs(10),
            || {
                let secrets = secrets.clone();
                async move {
                    let secret = secrets
                        .get_opt(name)
                        .await
                        .map_err(|e| e.to_string())?
                        .ok_or("the Secret does not exist")?;
                    case.check(&secret, root)
                }
            },
        )
        .await;
    }
    say(&format!(
        "[6/{STEPS}] {} Certificates Ready, each Secret as its spec asks",
        created.len()
    ));

    // An ACME CA cannot sign a CA certificate: said once, not retried.
    e2e.create(
        &certificates,
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": {"name": "acme-is-ca", "namespace": NS},
            "spec": {
                "secretName": "acme-is-ca",
                "isCA": true,
                "dnsNames": [format!("ca.{ZONE}")],
                "issuerRef": cluster_issuer(ACME_ISSUER),
            },
        }),
    )
    .await;
    let refused = e2e
        .eventually(
            "Certificate acme-is-ca refused with a condition naming isCA",
            Duration::from_secs(30),
            || {
                let certificates = certificates.clone();
                async move {
                    let certificate = certificates
                        .get("acme-is-ca")
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = certificate.status.clone().unwrap_or_default();
                    let says = status.conditions.iter().any(|c| {
                        c.type_ == "Ready"
                            && c.status == "False"
                            && c.message.as_deref().unwrap_or("").contains("isCA")
                    });
                    if says {
                        Ok(status)
                    } else {
                        Err(describe(&status.conditions))
                    }
                }
            },
        )
        .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = certificates
        .get("acme-is-ca")
        .await
        .unwrap()
        .status
        .unwrap_or_default();
    if later.failed_issuance_attempts > refused.failed_issuance_attempts.max(Some(1)) {
        e2e.fail(&format!(
            "a refused ACME isCA request should not be retried within seconds: \
             failedIssuanceAttempts {:?} → {:?}",
            refused.failed_issuance_attempts, later.failed_issuance_attempts
        ));
    }
    let warnings: Vec<String> = e2e
        .events_about("acme-is-ca")
        .await
        .into_iter()
        .filter(|e| e.starts_with("Warning") && e.contains("isCA"))
        .collect();
    if warnings.is_empty() || warnings.len() > 2 {
        e2e.fail(&format!(
            "a refused ACME isCA request should be told in one Warning Event (two at most), \
             not in a loop: {warnings:?}"
        ));
    }
    say(&format!(
        "[6/{STEPS}] ACME isCA refused: {}; Event: {}",
        describe(&later.conditions),
        warnings[0]
    ));
    keystores::keystores(e2e).await;
}

/// Step 11: `helm upgrade` applies a change of values (the
/// PodDisruptionBudget off, a NetworkPolicy on) without leaving the
/// removed object behind, and `helm uninstall` removes every object of the
/// release (CRDs excepted, as Helm keeps a chart's `crds/`).
async fn chart_lifecycle(e2e: &E2e) {
    const SELECTOR: &str = "app.kubernetes.io/instance=certweave";
    let client = &e2e.client;
    let before = chart::labelled_objects(client, SELECTOR).await;
    let pdb = format!("PodDisruptionBudget/{CONTROLLER_NAMESPACE}/certweave");
    if !before.contains(&pdb) {
        e2e.fail(&format!(
            "helm install should have made {pdb}; the release has {before:?}"
        ));
    }
    chart::restore_webhooks(client, chart::RELEASE, &e2e.chart_client_configs).await;
    if let Err(e) = e2e.helm.upgrade(
        CONTROLLER_NAMESPACE,
        &[
            "--set",
            "podDisruptionBudget.enabled=false",
            "--set",
            "networkPolicy.enabled=true",
        ],
    ) {
        e2e.fail(&e);
    }
    let after = chart::labelled_objects(client, SELECTOR).await;
    let mut expected: Vec<String> = before.iter().filter(|o| **o != pdb).cloned().collect();
    expected.push(format!("NetworkPolicy/{CONTROLLER_NAMESPACE}/certweave"));
    expected.sort();
    if after != expected {
        e2e.fail(&format!(
            "after helm upgrade the release should hold {expected:?}, holds {after:?}"
        ));
    }
    if let Err(e) = e2e.helm.uninstall(CONTROLLER_NAMESPACE) {
        e2e.fail(&e);
    }
    let left = chart::labelled_objects(client, SELECTOR).await;
    if !left.is_empty() {
        e2e.fail(&format!("helm uninstall left objects behind: {left:?}"));
    }
    say(&format!(
        "[11/{STEPS}] {} objects installed, upgraded and uninstalled, none left",
        before.len()
    ));
}

/// Step 12: the plain manifests install with `kubectl apply --server-side
/// -k` into the same API server (after the release is gone), hold the
/// same objects as the chart, and `kubectl delete -k` removes them all.
async fn plain_manifests(e2e: &E2e) {
    const SELECTOR: &str = "app.kubernetes.io/instance=certweave";
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("webhook-config");
    let kubectl = |args: &[&str]| e2e.kubectl(args);
    let dir = dir.to_str().unwrap();
    kubectl(&["apply", "--server-side", "-k", dir]);
    let applied = chart::labelled_objects(&e2e.client, SELECTOR).await;
    for kind in [
        "ClusterRole/",
        "ClusterRoleBinding/",
        "MutatingWebhookConfiguration/",
        "Deployment/",
        "ServiceAccount/",
        "Service/",
    ] {
        if !applied.iter().any(|o| o.starts_with(kind)) {
            e2e.fail(&format!(
                "kubectl apply -k webhook-config/ should make a {kind}: made {applied:?}"
            ));
        }
    }
    // Again: server-side apply of the same manifests changes nothing.
    kubectl(&["apply", "--server-side", "-k", dir]);
    // No namespace controller runs here to finish deleting the namespace.
    kubectl(&["delete", "-k", dir, "--wait=false"]);
    let left = chart::labelled_objects(&e2e.client, SELECTOR).await;
    let left: Vec<&String> = left
        .iter()
        .filter(|o| !o.contains(&format!("/{CONTROLLER_NAMESPACE}/")))
        .collect();
    if !left.is_empty() {
        e2e.fail(&format!(
            "kubectl delete -k webhook-config/ left cluster-scoped objects: {left:?}"
        ));
    }
    // The CRDs go only once the API server has deleted every object of
    // theirs; a chart installed before that finds them terminating.
    let crds: Api<CustomResourceDefinition> = Api::all(e2e.client.clone());
    e2e.eventually(
        "the cert-manager.io CRDs deleted with webhook-config/ are gone",
        Duration::from_secs(120),
        || {
            let crds = crds.clone();
            async move {
                let left: Vec<String> = crds
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?
                    .items
                    .iter()
                    .map(|crd| crd.name_any())
                    .filter(|name| name.ends_with(".cert-manager.io"))
                    .collect();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("still there: {left:?}"))
                }
            }
        },
    )
    .await;
    say(&format!(
        "[12/{STEPS}] {} objects applied server-side and deleted",
        applied.len()
    ));
}
