//! Ingress mutation, compatible with cert-manager's ingress shim: an Ingress
//! that names an issuer gets a `spec.tls` entry for its hosts, so the shim
//! (and the cluster's ingress controller) know which Secret serves them.

use serde_json::{json, Value};

use super::object::{self, StringMap};
use super::{MutationConfig, MutationOutcome, MutationResult};
use crate::api::annotations as ann;
use crate::api::issuer_ref::ISSUER_GROUP;
use crate::api::names;
use crate::api::overrides::CertificateOverrides;
use crate::api::{InvalidField, IssuerKind, IssuerRef};

/// Which issuer an Ingress asks for. `Ok(None)` when it asks for none, or
/// uses `kubernetes.io/tls-acme` while no default issuer is configured (the
/// caller warns in that case; see [`mutate_ingress`]).
pub fn ingress_issuer(
    annotations: &StringMap<'_>,
    config: &MutationConfig,
) -> Result<Option<IssuerRef>, InvalidField> {
    if let Some(group) = annotations.get(ann::ISSUER_GROUP)? {
        if group != ISSUER_GROUP {
            return Err(InvalidField::new(
                ann::ISSUER_GROUP,
                format!("external issuer group {group:?} is not served by certweave"),
                format!(
                    "use a cert-manager.io Issuer or ClusterIssuer and drop {}",
                    ann::ISSUER_GROUP
                ),
            ));
        }
    }
    match (
        annotations.get(ann::ISSUER)?,
        annotations.get(ann::CLUSTER_ISSUER)?,
    ) {
        (Some(_), Some(_)) => Err(InvalidField::new(
            ann::ISSUER,
            format!("both {} and {} are set", ann::ISSUER, ann::CLUSTER_ISSUER),
            "keep only one of them",
        )),
        (Some(name), None) => {
            let kind = match annotations.get(ann::ISSUER_KIND)? {
                Some(kind) => IssuerKind::parse(ann::ISSUER_KIND, kind)?,
                None => IssuerKind::Issuer,
            };
            IssuerRef::new(ann::ISSUER, kind, name).map(Some)
        }
        (None, Some(name)) => {
            IssuerRef::new(ann::CLUSTER_ISSUER, IssuerKind::ClusterIssuer, name).map(Some)
        }
        (None, None) => match annotations.get(ann::TLS_ACME)? {
            Some("true") => Ok(config.default_issuer.clone()),
            _ => Ok(None),
        },
    }
}

/// Fills in `spec.tls` for an annotated Ingress: if absent, one entry with
/// every rule host (deduplicated, in order) and `secretName: <name>-tls`; an
/// existing entry without `secretName` gets one; nothing else is touched.
pub fn mutate_ingress(ingress: &Value, config: &MutationConfig) -> MutationResult {
    let annotations = StringMap::annotations(ingress)?;
    if !annotations.contains_any(&[
        ann::ISSUER,
        ann::CLUSTER_ISSUER,
        ann::TLS_ACME,
        ann::ISSUER_GROUP,
    ]) {
        return Ok(MutationOutcome::unchanged());
    }
    if ingress_issuer(&annotations, config)?.is_none() {
        if annotations.get(ann::TLS_ACME)? == Some("true") {
            return Ok(MutationOutcome::warn(format!(
                "{}: \"true\" is set but certweave has no --default-issuer; no certificate will be requested (add {} instead)",
                ann::TLS_ACME,
                ann::CLUSTER_ISSUER
            )));
        }
        return Ok(MutationOutcome::unchanged());
    }
    CertificateOverrides::from_annotations(|key| annotations.get(key))?;

    let spec = match ingress.get("spec") {
        Some(spec @ Value::Object(_)) => spec,
        None | Some(Value::Null) => return Ok(MutationOutcome::warn(no_hosts_warning())),
        Some(_) => return Err(object::wrong_type("spec", "an object")),
    };
    let hosts = rule_hosts(spec)?;
    let tls = object::get_array(spec, "tls", "spec.tls")?;
    let name = object::get_map(ingress, "metadata", "metadata")?
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");

    let new_tls: Vec<Value> = if tls.is_empty() {
        if hosts.is_empty() {
            return Ok(MutationOutcome::warn(no_hosts_warning()));
        }
        vec![json!({ "hosts": hosts, "secretName": default_secret_name(name, 0, &[])? })]
    } else {
        let taken: Vec<&str> = tls
            .iter()
            .filter_map(|e| e.get("secretName").and_then(Value::as_str))
            .collect();
        let mut entries = tls.to_vec();
        let mut assigned: Vec<String> = Vec::new();
        for (i, entry) in entries.iter_mut().enumerate() {
            check_tls_entry(entry, i)?;
            if object::get_str(
                entry,
                "secretName",
                format_args!("spec.tls[{i}].secretName"),
            )?
            .is_some_and(|s| !s.is_empty())
            {
                continue;
            }
            let in_use: Vec<&str> = taken
                .iter()
                .copied()
                .chain(assigned.iter().map(String::as_str))
                .collect();
            let secret = default_secret_name(name, i, &in_use)?;
            assigned.push(secret.clone());
            entry
                .as_object_mut()
                .expect("checked to be an object")
                .insert("secretName".into(), Value::String(secret));
        }
        if assigned.is_empty() {
            return Ok(MutationOutcome::unchanged());
        }
        entries
    };

    let mut mutated = ingress.clone();
    mutated
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .expect("spec is an object")
        .insert("tls".into(), Value::Array(new_tls));
    Ok(MutationOutcome::mutated(mutated))
}

fn no_hosts_warning() -> String {
    "the Ingress has no spec.rules[].host and no spec.tls hosts; no certificate will be requested until it names a host".into()
}

/// Every `spec.rules[].host`, validated, deduplicated, in order.
fn rule_hosts(spec: &Value) -> Result<Vec<String>, InvalidField> {
    let mut hosts: Vec<String> = Vec::new();
    for (i, rule) in object::get_array(spec, "rules", "spec.rules")?
        .iter()
        .enumerate()
    {
        let field = format!("spec.rules[{i}].host");
        if let Some(host) = object::get_str(rule, "host", &field)? {
            if host.is_empty() {
                continue;
            }
            names::check_dns_name(&field, host)?;
            if !hosts.iter().any(|h| h == host) {
                hosts.push(host.to_owned());
            }
        }
    }
    Ok(hosts)
}

fn check_tls_entry(entry: &Value, index: usize) -> Result<(), InvalidField> {
    let field = format!("spec.tls[{index}].hosts");
    if !entry.is_object() {
        return Err(object::wrong_type(
            format_args!("spec.tls[{index}]"),
            "an object",
        ));
    }
    let hosts = object::get_array(entry, "hosts", &field)?;
    if hosts.is_empty() {
        return Err(InvalidField::new(
            field,
            "the entry lists no hosts",
            "list the hosts this entry's certificate should cover",
        ));
    }
    for (j, host) in hosts.iter().enumerate() {
        let field = format!("spec.tls[{index}].hosts[{j}]");
        let host = host
            .as_str()
            .ok_or_else(|| object::wrong_type(&field, "a string"))?;
        names::check_dns_name(&field, host)?;
    }
    Ok(())
}

/// The first of `<name>-tls`, `<name>-tls-1`, `<name>-tls-2`, ... that no
/// other entry uses.
fn default_secret_name(name: &str, index: usize, in_use: &[&str]) -> Result<String, InvalidField> {
    let field = format!("spec.tls[{index}].secretName");
    if name.is_empty() {
        return Err(InvalidField::new(
            field,
            "the Ingress has no name yet (generateName), so no Secret name can be derived",
            "set spec.tls[].secretName explicitly, or give the Ingress a fixed metadata.name",
        ));
    }
    let base = format!("{name}-tls");
    let candidate = std::iter::once(base.clone())
        .chain((1..).map(|n| format!("{base}-{n}")))
        .find(|c| !in_use.contains(&c.as_str()))
        .expect("an unbounded sequence has a free name");
    names::check_object_name(&field, &candidate)?;
    Ok(candidate)
}
