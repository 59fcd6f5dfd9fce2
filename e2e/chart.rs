//! The Helm chart installed into the real API server, as a user would:
//! `helm install` of `charts/certweave` (CRDs, RBAC, Services, the
//! webhook configuration, the Deployment that no kubelet runs), then
//! `helm upgrade` and `helm uninstall`, each checked for what it leaves.
//!
//! The controller under test runs out of cluster with a token of the
//! chart's own ServiceAccount (TokenRequest), so a verb missing from the
//! chart's RBAC fails the test, and the chart's own
//! MutatingWebhookConfiguration is pointed at it: only `clientConfig`
//! changes (a URL instead of the Service no kube-proxy routes); its
//! rules, selectors, matchConditions and failure policies are the
//! chart's, evaluated by the API server.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::Client;
use serde_json::{json, Value};

/// The release name; with it the chart names every object `certweave`,
/// the binary's defaults.
pub const RELEASE: &str = "certweave";

/// The chart in this repository.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/certweave")
}

/// `helm` on `PATH` (`e2e/assets.sh` builds Helm 4 into its cache), run
/// against one kubeconfig.
pub struct Helm {
    kubeconfig: PathBuf,
}

impl Helm {
    /// The helm binary, or why there is none.
    pub fn find(kubeconfig: &Path) -> Result<Self, String> {
        match Command::new("helm").arg("version").arg("--short").output() {
            Ok(out) if out.status.success() => Ok(Self {
                kubeconfig: kubeconfig.to_owned(),
            }),
            Ok(out) => Err(format!(
                "`helm version` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => Err(format!(
                "helm is not on PATH ({e}); `bash e2e/assets.sh` builds it"
            )),
        }
    }

    /// `helm version --short`.
    pub fn version(&self) -> String {
        self.run(&["version", "--short"])
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// Runs helm with `args`; its stdout, or stdout and stderr on failure.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("helm")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
            .map_err(|e| format!("helm {args:?}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "helm {}: {}\n{stdout}\n{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `helm install` of the chart into `namespace` (created by helm).
    pub fn install(&self, namespace: &str, extra: &[&str]) -> Result<String, String> {
        self.release(
            "install",
            namespace,
            &[&["--create-namespace"], extra].concat(),
        )
    }

    /// `helm upgrade` of the release with `extra` values.
    pub fn upgrade(&self, namespace: &str, extra: &[&str]) -> Result<String, String> {
        self.release("upgrade", namespace, extra)
    }

    /// `helm VERB certweave charts/certweave --namespace NAMESPACE EXTRA...`.
    fn release(&self, verb: &str, namespace: &str, extra: &[&str]) -> Result<String, String> {
        let chart = chart_dir();
        let mut args = vec![
            verb,
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            namespace,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// `helm uninstall` of the release.
    pub fn uninstall(&self, namespace: &str) -> Result<String, String> {
        self.run(&["uninstall", RELEASE, "--namespace", namespace, "--wait"])
    }
}

/// A token of the ServiceAccount `namespace/name`, valid for an hour.
pub async fn service_account_token(client: &Client, namespace: &str, name: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let response = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| {
            panic!("TokenRequest for the chart's ServiceAccount {namespace}/{name}: {e}")
        });
    response
        .status
        .and_then(|s| s.token)
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| panic!("TokenRequest for {namespace}/{name} returned no token"))
}

/// Points every webhook of the chart's configuration at `url`, trusted
/// through `ca_bundle`; nothing else of the chart's configuration changes.
/// Returns the chart's own `clientConfig`s, for [`restore_webhooks`].
pub async fn route_webhooks(client: &Client, name: &str, url: &str, ca_bundle: &str) -> Vec<Value> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let configuration = api
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("the chart's MutatingWebhookConfiguration {name}: {e}"));
    let originals: Vec<Value> = configuration
        .webhooks
        .iter()
        .flatten()
        .map(|w| serde_json::to_value(&w.client_config).unwrap())
        .collect();
    assert!(
        !originals.is_empty(),
        "the chart's MutatingWebhookConfiguration {name} has no webhooks"
    );
    let routed = vec![json!({"url": url, "caBundle": ca_bundle}); originals.len()];
    set_client_configs(&api, name, &routed).await;
    originals
}

/// Puts the chart's own `clientConfig`s back, so that `helm upgrade`
/// (server-side apply) does not add its Service next to the URL set by
/// another field manager, which the API server refuses ("exactly one of
/// url or service is required").
pub async fn restore_webhooks(client: &Client, name: &str, originals: &[Value]) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    set_client_configs(&api, name, originals).await;
}

async fn set_client_configs(
    api: &Api<MutatingWebhookConfiguration>,
    name: &str,
    configs: &[Value],
) {
    let patch: Vec<Value> = configs
        .iter()
        .enumerate()
        .map(|(i, config)| {
            json!({"op": "replace", "path": format!("/webhooks/{i}/clientConfig"), "value": config})
        })
        .collect();
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(patch)).unwrap();
    api.patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .unwrap_or_else(|e| panic!("set the clientConfig of the webhooks of {name}: {e}"));
}

/// Every kind the chart or `webhook-config/` may create:
/// `(group, version, kind, plural)`.
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("", "v1", "ServiceAccount", "serviceaccounts"),
    ("", "v1", "Service", "services"),
    ("", "v1", "Secret", "secrets"),
    ("", "v1", "ConfigMap", "configmaps"),
    ("apps", "v1", "Deployment", "deployments"),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
    ),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
    ),
];

/// `Kind/namespace/name` of every object labelled `selector`, across the
/// kinds above, in every namespace.
pub async fn labelled_objects(client: &Client, selector: &str) -> Vec<String> {
    let mut found = Vec::new();
    for &(group, version, kind, plural) in KINDS {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let list = api
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap_or_else(|e| panic!("list {plural} labelled {selector}: {e}"));
        for object in list {
            found.push(format!(
                "{kind}/{}/{}",
                object.metadata.namespace.as_deref().unwrap_or("-"),
                object.metadata.name.as_deref().unwrap_or("?")
            ));
        }
    }
    found.sort();
    found
}
