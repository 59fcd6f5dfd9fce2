//! The store in a cluster: certificates live in `kubernetes.io/tls` Secrets,
//! their status in the Certificate's status subresource.
//!
//! - A Secret is written with one server-side apply request, so the key and
//!   the certificate change together and fields other tools own survive.
//! - Status is a merge patch of the status subresource; condition
//!   transition times are kept while a condition does not change.
//! - An ACME order in flight carries the certificate's next private key, so
//!   it is kept in a Secret owned by the Certificate (named in
//!   `status.nextPrivateKeySecretName`), never in the readable status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};

use crate::api::certificate::{
    AcmeAuthorizationStatus, AcmeOrderStatus, AriStatus, Certificate, CertificateAcmeStatus,
    CertificateCondition, CertificateStatus,
};
use crate::controller::own_writes::OwnWrites;
use crate::controller::scope::{namespaced_or_all, WatchScope};
use crate::model::{AuthorizationProgress, OrderProgress};
use crate::store::{
    data_keys, AriState, CertificateState, ObjectKey, SecretWrite, Store, StoreError, StoredSecret,
};

/// The field manager certweave applies as.
pub const FIELD_MANAGER: &str = "certweave";

/// The label cert-manager puts on Secrets it manages, so controllers can
/// watch them by selector instead of caching every Secret in the cluster.
pub const MANAGED_SECRET_LABEL: &str = "controller.cert-manager.io/fao";

/// Key of the order record in an order Secret.
const ORDER_KEY: &str = "order.json";

/// Certificates and their status as Kubernetes objects.
#[derive(Clone)]
pub struct KubeStore {
    client: Client,
    scope: WatchScope,
    /// Where the versions of the Secrets written are noted, for the watch
    /// to tell its own echo from a change.
    own_writes: Arc<OwnWrites>,
}

impl KubeStore {
    /// A store over every namespace.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            scope: WatchScope::Cluster,
            own_writes: Arc::default(),
        }
    }

    /// The same store, noting its Secret writes in `own_writes`.
    pub fn noting_writes_in(self, own_writes: Arc<OwnWrites>) -> Self {
        Self { own_writes, ..self }
    }

    /// The same store, confined to `scope` where it lists.
    pub fn within(self, scope: WatchScope) -> Self {
        Self { scope, ..self }
    }

    /// The string values of a Secret that certweave does not manage (a
    /// keystore password), or `None` when it does not exist.
    pub async fn read_secret_values(
        &self,
        secret: &ObjectKey,
    ) -> Result<Option<BTreeMap<String, String>>, StoreError> {
        let found = self
            .secrets(&secret.namespace)
            .get_opt(&secret.name)
            .await
            .map_err(|e| api_error(&format!("Secret {secret}"), e))?;
        Ok(found.map(|s| {
            s.data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect()
        }))
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn certificates(&self, namespace: &str) -> Api<Certificate> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

/// The name of the Secret holding a certificate's order in flight.
pub fn order_secret_name(certificate: &str) -> String {
    let suffix = "-certweave-order";
    let keep = 253 - suffix.len();
    let base = &certificate[..certificate.len().min(keep)];
    format!("{base}{suffix}")
}

fn api_error(object: &str, e: kube::Error) -> StoreError {
    StoreError::Api {
        object: object.to_owned(),
        advice: None,
        source: Box::new(e),
    }
}

/// Why a Secret could not be written. A Secret's `type` cannot change, so
/// an existing Secret of another type (often an Opaque one created by hand
/// under the name a Certificate asks for) can never take the certificate:
/// say so and what to do, instead of the API server's bare 422.
fn secret_write_error(secret: &ObjectKey, e: kube::Error) -> StoreError {
    match &e {
        kube::Error::Api(status)
            if status.code == 422
                && status.message.contains("type")
                && status.message.contains("immutable") =>
        {
            StoreError::Api {
                object: format!("Secret {secret}"),
                advice: Some(
                    "it already exists with a type other than kubernetes.io/tls, and a Secret's type cannot change; \
                     delete that Secret so certweave can create it, or set spec.secretName to a free name"
                        .into(),
                ),
                source: Box::new(e),
            }
        }
        _ => api_error(&format!("Secret {secret}"), e),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

fn text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .filter(|s| !s.trim().is_empty())
}

/// The Secret as certweave wants it: type, data, annotations and labels.
pub fn desired_secret(key: &ObjectKey, write: &SecretWrite<'_>) -> Result<Secret, StoreError> {
    let data: BTreeMap<String, ByteString> = write
        .entries()
        .map_err(|source| StoreError::Keystore {
            secret: key.to_string(),
            source,
        })?
        .into_iter()
        .map(|e| (e.key.to_owned(), ByteString(e.value)))
        .collect();
    let mut labels = write.labels.clone();
    labels.insert(MANAGED_SECRET_LABEL.to_owned(), "true".to_owned());
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(key.name.clone()),
            namespace: Some(key.namespace.clone()),
            annotations: Some(write.annotations.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Default::default()
    })
}

fn timestamp(t: SystemTime) -> Option<Time> {
    k8s_openapi::jiff::Timestamp::try_from(t).ok().map(Time)
}

fn system_time(t: &Time) -> SystemTime {
    SystemTime::from(t.0)
}

/// Reads what the engine records from a Certificate's status.
pub fn state_from_status(status: &CertificateStatus) -> CertificateState {
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status == "True", c.message.clone()));
    CertificateState {
        revision: status.revision.unwrap_or(0).max(0) as u64,
        not_before: status.not_before.as_ref().map(system_time),
        not_after: status.not_after.as_ref().map(system_time),
        renewal_time: status.renewal_time.as_ref().map(system_time),
        failed_issuance_attempts: status.failed_issuance_attempts.unwrap_or(0).max(0) as u32,
        last_failure_time: status.last_failure_time.as_ref().map(system_time),
        next_attempt: status.next_attempt_time.as_ref().map(system_time),
        ready: ready.as_ref().is_some_and(|(r, _)| *r),
        // A failing renewal of a valid certificate is told by Issuing.
        message: status
            .conditions
            .iter()
            .find(|c| c.type_ == "Issuing" && c.status == "False")
            .and_then(|c| c.message.clone())
            .or(ready.and_then(|(_, m)| m)),
        order: None,
        order_progress: status
            .acme
            .as_ref()
            .and_then(|a| a.order.as_ref())
            .map(|order| OrderProgress {
                url: order.url.clone(),
                state: order.state.clone(),
                authorizations: order
                    .authorizations
                    .iter()
                    .map(|a| AuthorizationProgress {
                        identifier: a.identifier.clone(),
                        challenge: a.challenge.clone().unwrap_or_default(),
                        state: a.state.clone(),
                        error: a.error.clone(),
                    })
                    .collect(),
            }),
        ari: status
            .acme
            .as_ref()
            .and_then(|a| a.ari.as_ref())
            .map(|ari| AriState {
                serial: ari.serial_number.clone(),
                window_start: ari.suggested_window_start.as_ref().map(system_time),
                window_end: ari.suggested_window_end.as_ref().map(system_time),
                renewal_time: ari.selected_renewal_time.as_ref().map(system_time),
                check_again: ari.next_check_time.as_ref().map(system_time),
                explanation_url: ari.explanation_url.clone(),
            }),
    }
}

/// The status that records `state`, keeping the transition times of
/// conditions that did not change.
pub fn status_from_state(
    state: &CertificateState,
    previous: Option<&CertificateStatus>,
    order_secret: Option<String>,
    generation: Option<i64>,
    now: SystemTime,
) -> CertificateStatus {
    let condition = |type_: &str, status: &str, reason: &str, message: String| {
        let unchanged = previous
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
            .filter(|c| c.status == status);
        CertificateCondition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message),
            last_transition_time: unchanged
                .and_then(|c| c.last_transition_time.clone())
                .or_else(|| timestamp(now)),
            observed_generation: generation,
        }
    };
    let message = state.message.clone().unwrap_or_default();
    let mut conditions = Vec::new();
    if state.ready && state.failed_issuance_attempts > 0 {
        // The stored certificate still serves; the renewal is failing.
        conditions.push(condition(
            "Ready",
            "True",
            "Ready",
            "Certificate is valid; its renewal is failing".into(),
        ));
        conditions.push(condition("Issuing", "False", "Failed", message));
    } else if state.ready {
        conditions.push(condition("Ready", "True", "Ready", message));
    } else if state.failed_issuance_attempts > 0 {
        conditions.push(condition("Ready", "False", "Failed", message.clone()));
        conditions.push(condition("Issuing", "False", "Failed", message));
    } else {
        conditions.push(condition("Ready", "False", "Issuing", message.clone()));
        conditions.push(condition("Issuing", "True", "Issuing", message));
    }
    CertificateStatus {
        conditions,
        not_before: state.not_before.and_then(timestamp),
        not_after: state.not_after.and_then(timestamp),
        renewal_time: state.renewal_time.and_then(timestamp),
        revision: (state.revision > 0).then_some(state.revision as i64),
        failed_issuance_attempts: (state.failed_issuance_attempts > 0)
            .then_some(i64::from(state.failed_issuance_attempts)),
        last_failure_time: state.last_failure_time.and_then(timestamp),
        next_private_key_secret_name: order_secret,
        next_attempt_time: state.next_attempt.and_then(timestamp),
        acme: acme_status(state),
    }
}

/// `status.acme`, when there is something to say.
fn acme_status(state: &CertificateState) -> Option<CertificateAcmeStatus> {
    let ari = state.ari.as_ref().map(|ari| AriStatus {
        serial_number: ari.serial.clone(),
        suggested_window_start: ari.window_start.and_then(timestamp),
        suggested_window_end: ari.window_end.and_then(timestamp),
        selected_renewal_time: ari.renewal_time.and_then(timestamp),
        next_check_time: ari.check_again.and_then(timestamp),
        explanation_url: ari.explanation_url.clone(),
    });
    let order = state.order_progress.as_ref().map(|order| AcmeOrderStatus {
        url: order.url.clone(),
        state: order.state.clone(),
        authorizations: order
            .authorizations
            .iter()
            .map(|a| AcmeAuthorizationStatus {
                identifier: a.identifier.clone(),
                challenge: (!a.challenge.is_empty()).then(|| a.challenge.clone()),
                state: a.state.clone(),
                error: a.error.clone(),
            })
            .collect(),
    });
    (ari.is_some() || order.is_some()).then_some(CertificateAcmeStatus { ari, order })
}

impl Store for KubeStore {
    async fn read_secret(&self, secret: &ObjectKey) -> Result<Option<StoredSecret>, StoreError> {
        let found = self
            .secrets(&secret.namespace)
            .get_opt(&secret.name)
            .await
            .map_err(|e| api_error(&format!("Secret {secret}"), e))?;
        Ok(found.map(|s| {
            let data = s.data.unwrap_or_default();
            StoredSecret {
                tls_crt: text(&data, "tls.crt"),
                tls_key: text(&data, "tls.key"),
                ca_crt: text(&data, "ca.crt"),
                extra: data_keys::EXTRA
                    .into_iter()
                    .filter_map(|key| Some((key, data.get(key)?.0.clone())))
                    .collect(),
                annotations: s.metadata.annotations.unwrap_or_default(),
            }
        }))
    }

    async fn write_secret(
        &self,
        secret: &ObjectKey,
        write: &SecretWrite<'_>,
    ) -> Result<(), StoreError> {
        let desired = desired_secret(secret, write)?;
        let write = self.own_writes.begin(secret.clone());
        let written = self
            .secrets(&secret.namespace)
            .patch(
                &secret.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await
            .map_err(|e| secret_write_error(secret, e))?;
        write.done(written.metadata.resource_version);
        Ok(())
    }

    async fn read_state(
        &self,
        certificate: &ObjectKey,
    ) -> Result<Option<CertificateState>, StoreError> {
        let object = format!("Certificate {certificate}");
        let Some(found) = self
            .certificates(&certificate.namespace)
            .get_opt(&certificate.name)
            .await
            .map_err(|e| api_error(&object, e))?
        else {
            return Ok(None);
        };
        let Some(status) = found.status.as_ref() else {
            return Ok(None);
        };
        let mut state = state_from_status(status);
        if let Some(name) = &status.next_private_key_secret_name {
            let order = self
                .secrets(&certificate.namespace)
                .get_opt(name)
                .await
                .map_err(|e| api_error(&format!("Secret {}/{name}", certificate.namespace), e))?
                .and_then(|s| s.data)
                .and_then(|d| d.get(ORDER_KEY).cloned())
                .and_then(|b| serde_json::from_slice(&b.0).ok());
            state.order = order;
        }
        Ok(Some(state))
    }

    async fn write_state(
        &self,
        certificate: &ObjectKey,
        state: &CertificateState,
    ) -> Result<(), StoreError> {
        let object = format!("Certificate {certificate}");
        let api = self.certificates(&certificate.namespace);
        let current = api
            .get_opt(&certificate.name)
            .await
            .map_err(|e| api_error(&object, e))?;
        let Some(current) = current else {
            // Deleted meanwhile: nothing to record.
            return Ok(());
        };
        let previous = current.status.as_ref();
        let order_name = order_secret_name(&certificate.name);
        let order_secret = match &state.order {
            Some(order) => {
                let owner = current.controller_owner_ref(&()).map(|mut r| {
                    r.controller = Some(false);
                    r
                });
                self.write_order(certificate, &order_name, order, owner)
                    .await?;
                Some(order_name)
            }
            None => {
                if previous.is_some_and(|p| p.next_private_key_secret_name.is_some()) {
                    self.delete_order(certificate, &order_name).await?;
                }
                None
            }
        };
        let status = status_from_state(
            state,
            previous,
            order_secret,
            current.metadata.generation,
            SystemTime::now(),
        );
        // A merge patch with explicit nulls clears fields the new status
        // no longer has (a failure count after success, say).
        let mut value = serde_json::to_value(&status).expect("status serialises");
        for field in [
            "notBefore",
            "notAfter",
            "renewalTime",
            "revision",
            "failedIssuanceAttempts",
            "lastFailureTime",
            "nextPrivateKeySecretName",
            "nextAttemptTime",
            "acme",
        ] {
            value
                .as_object_mut()
                .expect("status is an object")
                .entry(field)
                .or_insert(serde_json::Value::Null);
        }
        if let Some(acme) = value["acme"].as_object_mut() {
            for field in ["ari", "order"] {
                acme.entry(field).or_insert(serde_json::Value::Null);
            }
        }
        api.patch_status(
            &certificate.name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": value })),
        )
        .await
        .map_err(|e| api_error(&object, e))?;
        Ok(())
    }

    async fn list_states(&self) -> Result<Vec<(ObjectKey, CertificateState)>, StoreError> {
        let mut items = Vec::new();
        for (_, api) in self
            .scope
            .apis(|ns| namespaced_or_all::<Certificate>(&self.client, ns))
        {
            let list = api
                .list(&ListParams::default())
                .await
                .map_err(|e| api_error("Certificates", e))?;
            items.extend(list.items);
        }
        Ok(items
            .iter()
            .filter_map(|c| {
                let status = c.status.as_ref()?;
                Some((
                    ObjectKey::new(c.namespace().unwrap_or_default(), c.name_any()),
                    state_from_status(status),
                ))
            })
            .collect())
    }
}

impl KubeStore {
    async fn write_order(
        &self,
        certificate: &ObjectKey,
        name: &str,
        order: &serde_json::Value,
        owner: Option<OwnerReference>,
    ) -> Result<(), StoreError> {
        let mut labels = BTreeMap::new();
        labels.insert(MANAGED_SECRET_LABEL.to_owned(), "true".to_owned());
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(certificate.namespace.clone()),
                labels: Some(labels),
                annotations: Some(BTreeMap::from([(
                    "cert-manager.io/certificate-name".to_owned(),
                    certificate.name.clone(),
                )])),
                owner_references: owner.map(|o| vec![o]),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                ORDER_KEY.to_owned(),
                ByteString(serde_json::to_vec(order).expect("JSON serialises")),
            )])),
            ..Default::default()
        };
        let write = self.own_writes.begin(ObjectKey::new(
            certificate.namespace.clone(),
            name.to_owned(),
        ));
        let written = self
            .secrets(&certificate.namespace)
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await
            .map_err(|e| api_error(&format!("Secret {}/{name}", certificate.namespace), e))?;
        write.done(written.metadata.resource_version);
        Ok(())
    }

    async fn delete_order(&self, certificate: &ObjectKey, name: &str) -> Result<(), StoreError> {
        match self
            .secrets(&certificate.namespace)
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api_error(
                &format!("Secret {}/{name}", certificate.namespace),
                e,
            )),
        }
    }
}
