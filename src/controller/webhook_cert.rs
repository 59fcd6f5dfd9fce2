//! The webhook's own serving certificate, when no files are given: a CA and
//! a serving certificate for the webhook Service, kept in one Secret in the
//! controller's namespace (`tls.crt`, `tls.key`, `ca.crt`, `ca.key`).
//!
//! Every replica serves from files mirrored from that Secret (the webhook
//! server reloads them when they change). Any replica creates the Secret
//! when it is missing or unusable, with optimistic concurrency so only one
//! write wins; the leader renews it before expiry and keeps the `caBundle`
//! of the MutatingWebhookConfiguration equal to the CA (plus, after a CA
//! rotation, the CA it replaced, until that one expires).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

use crate::issuers::own_ca::{self, CaSpec, ServingPair};
use crate::model::{IssueError, RenewBefore};
use crate::pki;
use crate::store::files;

use super::ControllerOptions;

/// The CA lives five years and is replaced in its last third
/// ([`WEBHOOK_CA`]).
pub const CA_LIFETIME: Duration = Duration::from_secs(5 * 365 * 86400);
/// The serving certificate lives one year, renewed in its last third.
pub const SERVING_LIFETIME: Duration = Duration::from_secs(365 * 86400);
/// The key of the replaced CA in the serving Secret: replicas pick up a
/// new serving certificate up to [`CHECK_INTERVAL`] apart, so the webhook's
/// `caBundle` trusts both CAs until the old one expires.
const PREVIOUS_CA_KEY: &str = "ca.previous.crt";
/// How often replicas re-read the Secret and the leader checks it.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// The self-managed webhook CA: replaced in its last third.
pub const WEBHOOK_CA: CaSpec = CaSpec {
    common_name: "certweave webhook CA",
    lifetime: CA_LIFETIME,
    renew_before: RenewBefore::Default,
};

/// The names the serving certificate covers: every way the API server may
/// address the Service.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// What to store instead of `existing`, or `None` when it is fine (see
/// [`own_ca::plan`]): the webhook's CA and a serving certificate for
/// `dns_names` that lives [`SERVING_LIFETIME`].
pub fn plan(
    existing: Option<&ServingPair>,
    dns_names: &[String],
    now: SystemTime,
) -> Result<Option<ServingPair>, IssueError> {
    let serving = own_ca::serving_request(dns_names.to_vec(), Vec::new(), Some(SERVING_LIFETIME));
    own_ca::plan(existing, &WEBHOOK_CA, &serving, now)
}

fn parse(secret: &Secret) -> Option<ServingPair> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    Some(ServingPair {
        ca_crt: text("ca.crt")?,
        ca_key: text("ca.key")?,
        tls_crt: text("tls.crt")?,
        tls_key: text("tls.key")?,
        previous_ca_crt: text(PREVIOUS_CA_KEY),
    })
}

fn to_secret(
    options: &ControllerOptions,
    s: &ServingPair,
    resource_version: Option<String>,
) -> Secret {
    let data = [
        ("ca.crt", Some(&s.ca_crt)),
        ("ca.key", Some(&s.ca_key)),
        ("tls.crt", Some(&s.tls_crt)),
        ("tls.key", Some(&s.tls_key)),
        (PREVIOUS_CA_KEY, s.previous_ca_crt.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect::<BTreeMap<_, _>>();
    Secret {
        metadata: ObjectMeta {
            name: Some(options.webhook_secret_name.clone()),
            namespace: Some(options.namespace.clone()),
            resource_version,
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "certweave".to_owned(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// Reads the serving Secret, creating or replacing it when missing,
/// unusable or due; concurrent writers are resolved by the API server
/// (create fails with 409, replace with a stale resourceVersion too).
pub async fn ensure(client: &Client, options: &ControllerOptions) -> Result<ServingPair, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), &options.namespace);
    let name = &options.webhook_secret_name;
    let dns_names = service_dns_names(&options.webhook_service_name, &options.namespace);
    for _ in 0..5 {
        let existing = api
            .get_opt(name)
            .await
            .map_err(|e| format!("cannot read Secret {}/{name}: {e}", options.namespace))?;
        let current = existing.as_ref().and_then(parse);
        let Some(new) =
            plan(current.as_ref(), &dns_names, SystemTime::now()).map_err(|e| e.to_string())?
        else {
            return Ok(current.expect("plan keeps only an existing Secret"));
        };
        let written = match &existing {
            None => {
                api.create(&PostParams::default(), &to_secret(options, &new, None))
                    .await
            }
            Some(existing) => {
                api.replace(
                    name,
                    &PostParams::default(),
                    &to_secret(options, &new, existing.metadata.resource_version.clone()),
                )
                .await
            }
        };
        match written {
            Ok(_) => {
                tracing::info!(secret = %format!("{}/{name}", options.namespace), "wrote the webhook serving certificate");
                return Ok(new);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => {
                return Err(format!(
                    "cannot write Secret {}/{name}: {e}",
                    options.namespace
                ))
            }
        }
    }
    Err(format!(
        "Secret {}/{name} keeps changing under us",
        options.namespace
    ))
}

/// Makes sure the serving Secret exists, writes it to files for the
/// webhook server, and keeps the files in step with the Secret until
/// `stop`. Returns the certificate and key paths.
pub async fn mirror_to_files(
    client: &Client,
    options: &ControllerOptions,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(PathBuf, PathBuf), String> {
    let dir = std::env::temp_dir().join(format!("certweave-webhook-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cert = dir.join(files::CERT_FILE);
    let key = dir.join(files::KEY_FILE);
    let mut attempt = 0u32;
    let first = loop {
        match ensure(client, options).await {
            Ok(first) => break first,
            Err(e) if attempt < 12 => {
                attempt += 1;
                tracing::warn!(error = %e, "cannot set up the webhook serving certificate; retrying in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => return Err(e),
        }
    };
    write_files(&dir, &first).map_err(|e| format!("{}: {e}", dir.display()))?;
    let client = client.clone();
    let options = Arc::new(options.clone());
    let refresh_dir = dir.clone();
    tokio::spawn(async move {
        let mut last = first;
        let api: Api<Secret> = Api::namespaced(client, &options.namespace);
        let refresh = async {
            loop {
                tokio::time::sleep(CHECK_INTERVAL).await;
                let Ok(Some(secret)) = api.get_opt(&options.webhook_secret_name).await else {
                    continue;
                };
                if let Some(current) = parse(&secret).filter(|c| *c != last) {
                    if pki::check_bundle(
                        &current.tls_crt,
                        &current.tls_key,
                        None,
                        SystemTime::now(),
                    )
                    .is_ok()
                        && write_files(&refresh_dir, &current).is_ok()
                    {
                        tracing::info!("the webhook serving certificate was rotated");
                        last = current;
                    }
                }
            }
        };
        tokio::select! {
            _ = stop => {}
            _ = refresh => {}
        }
    });
    Ok((cert, key))
}

fn write_files(dir: &std::path::Path, s: &ServingPair) -> std::io::Result<()> {
    files::write_bundle(
        dir,
        &crate::model::Bundle {
            chain_pem: s.tls_crt.clone(),
            key_pem: s.tls_key.clone(),
            ca_pem: Some(s.ca_crt.clone()),
        },
    )
}

/// The leader's part: renew the Secret when due and keep the webhook
/// configuration's `caBundle` equal to [`ServingPair::ca_bundle`], until
/// `stop`.
pub async fn maintain(
    client: Client,
    options: Arc<ControllerOptions>,
    stop: impl std::future::Future<Output = ()>,
) {
    let work = async {
        loop {
            match ensure(&client, &options).await {
                Ok(secret) => {
                    if let Err(e) =
                        sync_ca_bundle(&client, &options.webhook_config_name, &secret.ca_bundle())
                            .await
                    {
                        tracing::warn!(error = %e, "cannot update the webhook caBundle");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the webhook serving certificate")
                }
            }
            tokio::time::sleep(CHECK_INTERVAL).await;
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = work => {}
    }
}

/// Sets `caBundle` on every webhook of the configuration `name` whose
/// bundle differs. A missing configuration is not an error: it may be
/// installed after the controller starts.
pub async fn sync_ca_bundle(client: &Client, name: &str, ca_pem: &str) -> Result<(), kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let Some(config) = api.get_opt(name).await? else {
        tracing::debug!(name, "no MutatingWebhookConfiguration of that name yet");
        return Ok(());
    };
    let wanted = ca_pem.as_bytes();
    let stale: Vec<serde_json::Value> = config
        .webhooks
        .unwrap_or_default()
        .iter()
        .filter(|w| w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(wanted))
        .map(|w| {
            serde_json::json!({
                "name": w.name,
                "clientConfig": {
                    "caBundle": base64::engine::general_purpose::STANDARD.encode(wanted)
                }
            })
        })
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let count = stale.len();
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Strategic(serde_json::json!({ "webhooks": stale })),
    )
    .await?;
    tracing::info!(name, webhooks = count, "updated the webhook caBundle");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuers::selfsigned::SelfSignedIssuer;
    use crate::model::CertificateRequest;
    use crate::pki::{KeyAlgorithm, PrivateKey};

    #[test]
    fn a_replaced_ca_stays_in_the_bundle_until_it_expires() {
        let names = service_dns_names("certweave-webhook", "certweave");
        let day = Duration::from_secs(86400);
        let now = SystemTime::now();
        let first = plan(None, &names, now).unwrap().expect("created");
        assert_eq!(first.previous_ca_crt, None);
        assert_eq!(first.ca_bundle(), first.ca_crt);

        // The CA is due: a new one signs the leaf, the old one is still
        // trusted for the replicas that have not reloaded yet.
        let due = now + CA_LIFETIME * 3 / 4;
        let replaced = plan(Some(&first), &names, due).unwrap().expect("new CA");
        assert_ne!(replaced.ca_crt, first.ca_crt);
        assert_eq!(
            replaced.previous_ca_crt.as_deref(),
            Some(first.ca_crt.as_str())
        );
        let bundle = replaced.ca_bundle();
        assert!(bundle.contains(replaced.ca_crt.trim_end()), "{bundle}");
        assert!(bundle.contains(first.ca_crt.trim_end()), "{bundle}");
        assert_eq!(pki::parse_pem_chain(&bundle).unwrap().len(), 2);
        pki::verify_chain_to_root(&replaced.tls_crt, &replaced.ca_crt).unwrap();
        // (Certificates are issued at the real time, so the new CA is fresh
        // now, not at `due`.)
        assert_eq!(plan(Some(&replaced), &names, now).unwrap(), None);

        // Once the replaced CA has expired it leaves the bundle, and
        // nothing else changes. (A CA that lives one day stands in for it.)
        let mut short = CertificateRequest::for_dns_names(Vec::<String>::new());
        short.common_name = Some("old CA".into());
        short.is_ca = true;
        short.duration = day;
        let short_key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let old_ca = SelfSignedIssuer::default()
            .sign(&short, &short_key)
            .unwrap()
            .chain_pem;
        let with_old = ServingPair {
            previous_ca_crt: Some(old_ca),
            ..replaced.clone()
        };
        assert_eq!(plan(Some(&with_old), &names, now).unwrap(), None);
        let cleaned = plan(Some(&with_old), &names, now + 2 * day)
            .unwrap()
            .expect("expired CA dropped");
        assert_eq!(cleaned.previous_ca_crt, None);
        assert_eq!(cleaned.tls_crt, replaced.tls_crt);
        assert_eq!(cleaned.ca_bundle(), replaced.ca_crt);
        assert_eq!(plan(Some(&cleaned), &names, now + 2 * day).unwrap(), None);
    }

    #[test]
    fn a_fresh_secret_is_kept_and_a_due_one_renewed_with_the_same_ca() {
        let names = service_dns_names("certweave-webhook", "certweave");
        let now = SystemTime::now();
        let first = plan(None, &names, now).unwrap().expect("created");
        let leaf = pki::check_bundle(&first.tls_crt, &first.tls_key, None, now).unwrap();
        assert_eq!(leaf.dns_names, names);
        pki::verify_chain_to_root(&first.tls_crt, &first.ca_crt).unwrap();
        assert_eq!(plan(Some(&first), &names, now).unwrap(), None);

        // Past the serving certificate's renewal time: same CA, new leaf.
        let later = now + SERVING_LIFETIME * 3 / 4;
        let renewed = plan(Some(&first), &names, later).unwrap().expect("renewed");
        assert_eq!(renewed.ca_crt, first.ca_crt);
        assert_ne!(renewed.tls_crt, first.tls_crt);

        // A new Service name needs a new leaf.
        let other = service_dns_names("other", "certweave");
        assert!(plan(Some(&first), &other, now).unwrap().is_some());

        // A broken Secret is replaced whole.
        let mut broken = first.clone();
        broken.ca_key = "garbage".into();
        let replaced = plan(Some(&broken), &names, now).unwrap().expect("replaced");
        assert_ne!(replaced.ca_crt, first.ca_crt);
        pki::verify_chain_to_root(&replaced.tls_crt, &replaced.ca_crt).unwrap();
    }
}
