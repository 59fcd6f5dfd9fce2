//! The Ingress mutation: an Ingress that names an issuer gets its
//! `spec.tls` completed as [`crate::api::wanted::ingress`] decides, sent as
//! the JSON Patch of exactly that change.

use serde_json::Value;

use super::patch::{self, write_json_str, PatchWriter, Segment};
use super::{MutationConfig, MutationOutcome, MutationPatch, MutationResult};
use crate::api::object::{self, StringMap};
use crate::api::wanted::ingress::{
    fill_tls, no_default_issuer_warning, no_hosts_warning, IngressAsk, IngressTls, TlsFill,
};
use crate::api::InvalidField;

/// The mutation of [`mutate_ingress`] as a JSON Patch against `ingress`:
/// the same operations, in the same order, as the diff of the original and
/// the mutated Ingress, written without building either.
pub fn ingress_patch(
    ingress: &Value,
    config: &MutationConfig,
) -> Result<MutationPatch, InvalidField> {
    let annotations = StringMap::annotations(ingress)?;
    match IngressAsk::read(&annotations, config.default_issuer.as_ref())? {
        IngressAsk::Nothing => return Ok(MutationPatch::default()),
        IngressAsk::NoDefaultIssuer => return Ok(MutationPatch::warn(no_default_issuer_warning())),
        IngressAsk::Certificates { .. } => {}
    }
    let Some(tls) = IngressTls::from_json(ingress)? else {
        return Ok(MutationPatch::warn(no_hosts_warning()));
    };
    let spec = object::field(ingress, "spec").expect("IngressTls found the spec");
    let mut out = PatchWriter::new();
    use Segment::{Index, Key};
    match fill_tls(&tls)? {
        TlsFill::NoHosts => return Ok(MutationPatch::warn(no_hosts_warning())),
        TlsFill::Complete => {}
        TlsFill::NewEntry { hosts, secret_name } => {
            let entry = |out: &mut Vec<u8>| write_entry(out, &hosts, &secret_name);
            match object::field(spec, "tls") {
                None => out.add(&[Key("spec")], Key("tls"), |out| {
                    out.push(b'[');
                    entry(out);
                    out.push(b']');
                }),
                Some(Value::Array(_)) => out.add(&[Key("spec"), Key("tls")], Index(0), entry),
                Some(_) => out.replace(&[Key("spec")], Key("tls"), |out| {
                    out.push(b'[');
                    entry(out);
                    out.push(b']');
                }),
            }
        }
        TlsFill::SecretNames(assigned) => {
            let entries = object::get_array(spec, "tls", "spec.tls")?;
            for (index, secret_name) in &assigned {
                let parent = [Key("spec"), Key("tls"), Index(*index)];
                let value = |out: &mut Vec<u8>| write_json_str(out, secret_name);
                match object::field(&entries[*index], "secretName") {
                    None => out.add(&parent, Key("secretName"), value),
                    Some(_) => out.replace(&parent, Key("secretName"), value),
                }
            }
        }
    }
    Ok(MutationPatch {
        patch: out.finish(),
        warnings: Vec::new(),
    })
}

/// Fills in `spec.tls` for an annotated Ingress: if absent, one entry with
/// every rule host (deduplicated, in order) and `secretName: <name>-tls`; an
/// existing entry without `secretName` gets one; nothing else is touched.
///
/// The mutated object is [`ingress_patch`] applied to `ingress`, so the
/// object `certweave inject` prints and the patch the webhook returns
/// cannot disagree.
pub fn mutate_ingress(ingress: &Value, config: &MutationConfig) -> MutationResult {
    let MutationPatch { patch, warnings } = ingress_patch(ingress, config)?;
    let object = patch
        .map(|patch| {
            patch::apply_json(ingress, &patch).map_err(|problem| {
                InvalidField::new(
                    "spec.tls",
                    format!("cannot complete spec.tls: {problem}"),
                    "send a well-formed Kubernetes object",
                )
            })
        })
        .transpose()?;
    Ok(MutationOutcome { object, warnings })
}

/// `{"hosts":[…],"secretName":…}`, in the key order the entry has in the
/// mutated object.
fn write_entry(out: &mut Vec<u8>, hosts: &[&str], secret_name: &str) {
    out.extend_from_slice(b"{\"hosts\":[");
    for (i, host) in hosts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, host);
    }
    out.extend_from_slice(b"],\"secretName\":");
    write_json_str(out, secret_name);
    out.push(b'}');
}

#[cfg(test)]
mod tests;
