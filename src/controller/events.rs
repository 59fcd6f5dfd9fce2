//! Events on Certificates (`kubectl describe certificate`), published as
//! `events.k8s.io/v1` Events without a client-side cache.
//!
//! kube-runtime's `Recorder` keeps every event it published for six
//! minutes to aggregate repeats into series; issuing ten thousand
//! certificates at once made that cache the controller's largest memory
//! user. certweave publishes few events per certificate and issuance, so
//! each is simply created.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;

/// The controller name events are reported by.
pub const REPORTING_CONTROLLER: &str = "certweave.io/controller";

/// Normal or Warning, as `kubectl` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// Publishes events as one replica.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    instance: String,
}

/// The Event for `regarding`: `reason` in PascalCase, `note` at most 1 kB.
pub fn event_for(
    regarding: &ObjectReference,
    type_: EventType,
    reason: &str,
    note: &str,
    instance: &str,
) -> Event {
    let name = regarding.name.as_deref().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(event_name(name, std::time::SystemTime::now())),
            namespace: regarding.namespace.clone(),
            ..Default::default()
        },
        event_time: k8s_openapi::jiff::Timestamp::try_from(std::time::SystemTime::now())
            .ok()
            .map(MicroTime),
        type_: Some(
            match type_ {
                EventType::Normal => "Normal",
                EventType::Warning => "Warning",
            }
            .to_owned(),
        ),
        reason: Some(reason.to_owned()),
        note: Some(truncate(note, 1000)),
        action: Some("Reconcile".to_owned()),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(REPORTING_CONTROLLER.to_owned()),
        reporting_instance: Some(instance[..instance.len().min(128)].to_owned()),
        ..Default::default()
    }
}

/// `<object>.<nanoseconds since the epoch, hex>`, as client-go's recorder
/// names events. Not `generateName: "<object>."`: the API server validates
/// a generateName prefix as a name and refuses one that ends in a dot.
/// Object names are DNS subdomains of at most 253 characters; the prefix
/// is cut to 200 (at a character that may end a name) so the suffix fits.
fn event_name(object: &str, now: std::time::SystemTime) -> String {
    let mut prefix = &object[..object.len().min(200)];
    while prefix.ends_with(['.', '-']) {
        prefix = &prefix[..prefix.len() - 1];
    }
    let nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}.{nanos:x}")
}

fn truncate(text: &str, max: usize) -> String {
    crate::model::text::cut_bytes(text, max)
}

impl EventPublisher {
    pub fn new(client: Client, instance: String) -> Self {
        Self { client, instance }
    }

    /// Publishes one event; a failure is logged, never fatal.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) {
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        let event = event_for(regarding, type_, reason, note, &self.instance);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(error = %e, reason, "cannot publish an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_object_and_stay_within_limits() {
        let regarding = ObjectReference {
            api_version: Some("cert-manager.io/v1".into()),
            kind: Some("Certificate".into()),
            name: Some("web".into()),
            namespace: Some("shop".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let long = "é".repeat(800);
        let event = event_for(&regarding, EventType::Warning, "Failed", &long, "pod-a");
        let name = event.metadata.name.clone().unwrap();
        assert!(name.starts_with("web."), "{name}");
        assert!(event.metadata.generate_name.is_none());
        assert_eq!(event.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
        assert_eq!(event.regarding.unwrap().uid.as_deref(), Some("u1"));
        assert!(event.note.unwrap().len() <= 1004);
        assert!(
            event.event_time.is_some(),
            "events.k8s.io/v1 requires eventTime"
        );
        assert_eq!(
            event.reporting_controller.as_deref(),
            Some(REPORTING_CONTROLLER)
        );
    }

    /// A valid DNS subdomain (RFC 1123), as the API server checks names.
    fn is_dns_subdomain(name: &str) -> bool {
        name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    }

    #[test]
    fn event_names_are_valid_object_names_for_any_object_name() {
        let now = std::time::SystemTime::now();
        // 253 characters whose 200th is a dash inside a label.
        let label = format!("{}a", "a-".repeat(31));
        let longest = format!("{label}.{label}.{label}.{}", &label[..61]);
        assert_eq!(longest.len(), 253);
        for object in ["web", "my.app-tls", &longest] {
            let name = event_name(object, now);
            assert!(is_dns_subdomain(&name), "{object:?} gave {name:?}");
        }
        let later = now + std::time::Duration::from_nanos(1);
        assert_ne!(event_name("web", now), event_name("web", later));
    }
}
