//! The cert-manager Issuer fields certweave does not implement, refused by
//! name instead of pruned: an issuer copied from cert-manager's docs with a
//! Vault backend or a Cloudflare solver must fail at `kubectl apply` with a
//! message saying so, not become an ACME issuer without a solver.
//!
//! Each refused field is kept in the schema as an open object (so the API
//! server does not drop it before the rule sees it) and refused by a CEL
//! rule on the object that holds it; [`check`] says the same for
//! `certweave local`, which has no API server in front of it. Both come
//! from one table per object, so they cannot drift.

use serde_json::Value;

use super::InvalidField;

/// A field of one Issuer object that certweave refuses.
pub struct Refused {
    /// The field's name in its object.
    pub name: &'static str,
    /// The CEL rule that holds when the field is acceptable; `None` for
    /// "absent" (`!has(self.<name>)`).
    pub accept: Option<&'static str>,
    /// The same rule for the field's value as JSON (`None`: absent).
    pub accepts: fn(Option<&Value>) -> bool,
    pub message: &'static str,
}

fn absent(value: Option<&Value>) -> bool {
    value.is_none()
}

const DNS_PROVIDER: &str = "not supported by certweave yet; use rfc2136, route53, cloudflare or acmeDNS, or the provider's cert-manager webhook solver (the community's solvers work unchanged)";

/// Fields of `spec`.
pub const SPEC: &[Refused] = &[
    Refused {
        name: "vault",
        accept: None,
        accepts: absent,
        message: "the Vault issuer is not supported by certweave; use a ca issuer with the CA in a Secret, or an acme issuer",
    },
    Refused {
        name: "venafi",
        accept: None,
        accepts: absent,
        message: "the Venafi issuer is not supported by certweave; use a ca issuer with the CA in a Secret, or an acme issuer",
    },
];

/// Fields of `spec.acme`.
pub const ACME: &[Refused] = &[Refused {
    name: "enableDurationFeature",
    accept: Some("!has(self.enableDurationFeature) || !self.enableDurationFeature"),
    accepts: |v| v.is_none_or(|v| v == &Value::Bool(false)),
    message: "true is not supported by certweave: orders never ask for a notAfter date (Let's Encrypt refuses them); remove it",
}];

/// Fields of `spec.acme.solvers[]`.
pub const SOLVER: &[Refused] = &[Refused {
    name: "waitInsteadOfSelfCheck",
    accept: None,
    accepts: absent,
    message: "not supported by certweave; remove it (certweave checks a DNS-01 record on the zone's own server before asking for validation, and answers HTTP-01 itself)",
}];

/// Fields of `spec.acme.solvers[].http01.gatewayHTTPRoute`.
pub const HTTP01_GATEWAY: &[Refused] = &[
    Refused {
        name: "podTemplate",
        accept: None,
        accepts: absent,
        message: "not supported by certweave: certweave answers HTTP-01 challenges from its own pods and runs no solver pods; remove it",
    },
    Refused {
        name: "serviceType",
        accept: None,
        accepts: absent,
        message: "not supported by certweave: the challenge HTTPRoute routes to certweave's own Service, not to a solver Service; remove it",
    },
];

/// Fields of `spec.acme.solvers[].http01.ingress`.
pub const HTTP01_INGRESS: &[Refused] = &[
    Refused {
        name: "podTemplate",
        accept: None,
        accepts: absent,
        message: "not supported by certweave: certweave answers HTTP-01 challenges from its own pods and runs no solver pods; remove it",
    },
    Refused {
        name: "serviceType",
        accept: None,
        accepts: absent,
        message: "not supported by certweave: the challenge Ingress routes to certweave's own Service, not to a solver Service; remove it",
    },
];

/// Fields of `spec.acme.solvers[].dns01`.
pub const DNS01: &[Refused] = &[
    Refused {
        name: "akamai",
        accept: None,
        accepts: absent,
        message: DNS_PROVIDER,
    },
    Refused {
        name: "azureDNS",
        accept: None,
        accepts: absent,
        message: DNS_PROVIDER,
    },
    Refused {
        name: "cloudDNS",
        accept: None,
        accepts: absent,
        message: DNS_PROVIDER,
    },
    Refused {
        name: "digitalocean",
        accept: None,
        accepts: absent,
        message: DNS_PROVIDER,
    },
];

/// The CEL rules refusing `table`'s fields of the object at `path`
/// (`spec.acme.solvers[]` for an item of a list).
pub fn rules(path: &str, table: &[Refused]) -> Vec<Value> {
    table
        .iter()
        .map(|r| {
            let rule = r
                .accept
                .map(str::to_owned)
                .unwrap_or_else(|| format!("!has(self.{})", r.name));
            serde_json::json!({"rule": rule, "message": format!("{path}.{}: {}", r.name, r.message)})
        })
        .collect()
}

/// Appends [`rules`] to a schema's `x-kubernetes-validations`.
pub fn add_rules(schema: &mut schemars::Schema, path: &str, table: &[Refused]) {
    let rules = rules(path, table);
    match schema.get_mut("x-kubernetes-validations") {
        Some(Value::Array(existing)) => existing.extend(rules),
        _ => {
            schema.insert("x-kubernetes-validations".into(), Value::Array(rules));
        }
    }
}

/// The first of `table`'s fields that `object` (serialized) has and
/// certweave refuses, as the error `kubectl apply` would show; `path` is
/// the object's own path with list indexes (`spec.acme.solvers[2]`).
pub fn check(path: &str, object: &Value, table: &[Refused]) -> Result<(), InvalidField> {
    match table.iter().find(|r| !(r.accepts)(object.get(r.name))) {
        None => Ok(()),
        Some(refused) => Err(InvalidField::new(
            format!("{path}.{}", refused.name),
            refused.message,
            format!("remove {path}.{} from the issuer", refused.name),
        )),
    }
}

/// [`check`] for every object of an issuer's `spec` (serialized) that has
/// refused fields: the first one found, as `kubectl apply` would refuse it.
pub fn check_spec(spec: &Value) -> Result<(), InvalidField> {
    check("spec", spec, SPEC)?;
    let Some(acme) = spec.get("acme") else {
        return Ok(());
    };
    check("spec.acme", acme, ACME)?;
    let solvers = acme.get("solvers").and_then(Value::as_array);
    for (i, solver) in solvers.into_iter().flatten().enumerate() {
        let path = format!("spec.acme.solvers[{i}]");
        check(&path, solver, SOLVER)?;
        if let Some(http01) = solver.get("http01") {
            if let Some(ingress) = http01.get("ingress") {
                check(&format!("{path}.http01.ingress"), ingress, HTTP01_INGRESS)?;
            }
            if let Some(route) = http01.get("gatewayHTTPRoute") {
                check(
                    &format!("{path}.http01.gatewayHTTPRoute"),
                    route,
                    HTTP01_GATEWAY,
                )?;
            }
        }
        if let Some(dns01) = solver.get("dns01") {
            check(&format!("{path}.dns01"), dns01, DNS01)?;
        }
    }
    Ok(())
}

/// The schema of a refused field: any object, kept as given so that the
/// rule refusing it sees it.
pub fn open_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_and_its_check_agree() {
        let rules = rules("spec.acme.solvers[].dns01", DNS01);
        assert_eq!(rules[0]["rule"], "!has(self.akamai)");
        assert!(rules[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.acme.solvers[].dns01.akamai: not supported by certweave"));

        let dns01 = serde_json::json!({"cnameStrategy": "Follow", "route53": {}});
        assert!(check("spec.acme.solvers[0].dns01", &dns01, DNS01).is_ok());
        let azure = serde_json::json!({"azureDNS": {"subscriptionID": "x"}});
        let err = check("spec.acme.solvers[3].dns01", &azure, DNS01).unwrap_err();
        assert_eq!(err.field, "spec.acme.solvers[3].dns01.azureDNS");
        assert!(err.problem.contains("webhook solver"), "{}", err.problem);
    }
}
