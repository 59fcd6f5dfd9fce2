//! The Gateway mutation: an annotated Gateway's HTTPS and TLS listeners
//! that name a hostname but no certificate get `tls.certificateRefs` (and
//! `tls.mode: Terminate` when unset), as [`crate::api::wanted::gateway`]
//! decides, sent as the JSON Patch of exactly that change.

use serde_json::Value;

use super::patch::{self, write_json_str, PatchWriter, Segment};
use super::{MutationOutcome, MutationPatch, MutationResult};
use crate::api::object::{self, StringMap};
use crate::api::wanted::gateway::{fill_listeners, GatewayListeners};
use crate::api::wanted::ingress::IngressAsk;
use crate::api::InvalidField;

/// The mutation of [`mutate_gateway`] as a JSON Patch against `gateway`.
pub fn gateway_patch(gateway: &Value, namespace: &str) -> Result<MutationPatch, InvalidField> {
    let annotations = StringMap::annotations(gateway)?;
    // The annotations are checked as for an Ingress, so a typo is refused
    // here rather than found by the shim later.
    let IngressAsk::Certificates { .. } = IngressAsk::read(&annotations, None)? else {
        return Ok(MutationPatch::default());
    };
    let listeners = GatewayListeners::from_json(gateway, namespace)?;
    let fills = fill_listeners(&listeners)?;
    let mut out = PatchWriter::new();
    use Segment::{Index, Key};
    let all = object::field(gateway, "spec")
        .and_then(|spec| object::field(spec, "listeners"))
        .and_then(Value::as_array);
    for fill in &fills {
        let listener = &all.expect("listeners were read")[fill.index];
        let at = [Key("spec"), Key("listeners"), Index(fill.index)];
        let refs = |out: &mut Vec<u8>| {
            out.extend_from_slice(b"[{\"name\":");
            write_json_str(out, &fill.secret_name);
            out.extend_from_slice(b"}]");
        };
        match object::field(listener, "tls") {
            None | Some(Value::Null) => {
                let tls = |out: &mut Vec<u8>| {
                    out.extend_from_slice(b"{\"certificateRefs\":");
                    refs(out);
                    out.extend_from_slice(b",\"mode\":\"Terminate\"}");
                };
                match object::field(listener, "tls") {
                    None => out.add(&at, Key("tls"), tls),
                    Some(_) => out.replace(&at, Key("tls"), tls),
                }
            }
            Some(tls) => {
                let tls_at = [Key("spec"), Key("listeners"), Index(fill.index), Key("tls")];
                match object::field(tls, "certificateRefs") {
                    None => out.add(&tls_at, Key("certificateRefs"), refs),
                    Some(_) => out.replace(&tls_at, Key("certificateRefs"), refs),
                }
                if object::field(tls, "mode").is_none() {
                    out.add(&tls_at, Key("mode"), |out| {
                        out.extend_from_slice(b"\"Terminate\"")
                    });
                }
            }
        }
    }
    Ok(MutationPatch {
        patch: out.finish(),
        warnings: Vec::new(),
    })
}

/// Fills in the listeners' certificates of an annotated Gateway; the
/// mutated object is [`gateway_patch`] applied, so `certweave inject` and
/// the webhook cannot disagree.
pub fn mutate_gateway(gateway: &Value, namespace: &str) -> MutationResult {
    let MutationPatch { patch, warnings } = gateway_patch(gateway, namespace)?;
    let object = patch
        .map(|patch| {
            patch::apply_json(gateway, &patch).map_err(|problem| {
                InvalidField::new(
                    "spec.listeners",
                    format!("cannot complete the listeners: {problem}"),
                    "send a well-formed Gateway",
                )
            })
        })
        .transpose()?;
    Ok(MutationOutcome { object, warnings })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hostname_only_listeners_get_a_secret_and_the_result_is_stable() {
        let gateway = json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web", "annotations": {"cert-manager.io/cluster-issuer": "le"}},
            "spec": {"gatewayClassName": "eg", "listeners": [
                {"name": "https", "hostname": "shop.example.com", "port": 443, "protocol": "HTTPS"},
                {"name": "tls", "hostname": "api.example.com", "port": 8443, "protocol": "TLS",
                 "tls": {"certificateRefs": []}},
                {"name": "http", "hostname": "shop.example.com", "port": 80, "protocol": "HTTP"},
            ]},
        });
        let mutated = mutate_gateway(&gateway, "shop")
            .unwrap()
            .object
            .expect("mutated");
        let listeners = &mutated["spec"]["listeners"];
        assert_eq!(
            listeners[0]["tls"],
            json!({"mode": "Terminate", "certificateRefs": [{"name": "web-https-tls"}]})
        );
        assert_eq!(
            listeners[1]["tls"],
            json!({"mode": "Terminate", "certificateRefs": [{"name": "web-tls-tls"}]})
        );
        assert!(listeners[2].get("tls").is_none());
        // Idempotent: the mutated Gateway needs nothing more.
        assert_eq!(mutate_gateway(&mutated, "shop").unwrap().object, None);
        // Not annotated: untouched.
        let mut plain = gateway.clone();
        plain["metadata"]["annotations"] = json!({});
        assert_eq!(mutate_gateway(&plain, "shop").unwrap().object, None);
        // A bad annotation is refused, naming it.
        let mut bad = gateway.clone();
        bad["metadata"]["annotations"]["cert-manager.io/duration"] = json!("soon");
        let err = mutate_gateway(&bad, "shop").unwrap_err();
        assert_eq!(err.field, "cert-manager.io/duration");
    }
}
