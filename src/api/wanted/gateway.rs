//! The Gateway rules, compatible with cert-manager's Gateway shim: a
//! `gateway.networking.k8s.io/v1` Gateway that names an issuer (the same
//! annotations as an Ingress) gets one Certificate per distinct Secret its
//! listeners reference, covering the hostnames of the listeners that use
//! it. Beyond cert-manager, admission fills in the Secret of an HTTPS or
//! TLS listener that names a hostname but no certificate, so one
//! annotation is all a Gateway needs.
//!
//! Both jobs read the Gateway through [`GatewayListeners`], from JSON
//! (admission, manifests, and the controller, which watches Gateways
//! without typed bindings).

use std::collections::HashMap;

use serde_json::Value;

use super::ingress::IngressAsk;
use super::WantedCertificate;
use crate::api::annotations as ann;
use crate::api::names;
use crate::api::object::{self, StringMap};
use crate::api::overrides::{comma_list, CertificateOverrides};
use crate::api::{InvalidField, IssuerRef};

/// The Gateway API group and version certweave reads.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
pub const GATEWAY_VERSION: &str = "v1";

/// One listener, as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener<'a> {
    pub name: &'a str,
    pub hostname: Option<&'a str>,
    pub protocol: &'a str,
    /// `tls` is present at all.
    pub has_tls: bool,
    /// `tls.mode`, when set.
    pub tls_mode: Option<&'a str>,
    pub certificate_refs: Vec<CertificateRef<'a>>,
}

/// One `tls.certificateRefs` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRef<'a> {
    pub name: &'a str,
    pub kind: Option<&'a str>,
    pub group: Option<&'a str>,
    pub namespace: Option<&'a str>,
}

impl CertificateRef<'_> {
    /// A Secret in the Gateway's own namespace: what a Certificate can fill.
    fn is_local_secret(&self, namespace: &str) -> bool {
        self.kind.is_none_or(|k| k == "Secret")
            && self.group.is_none_or(str::is_empty)
            && self.namespace.is_none_or(|n| n == namespace)
    }
}

/// The parts of a Gateway the rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayListeners<'a> {
    /// `metadata.name`, empty while the Gateway has none (generateName).
    pub name: &'a str,
    pub namespace: &'a str,
    pub listeners: Vec<Listener<'a>>,
    /// `cert-manager.io/ignore-tls-listeners`: listeners left alone.
    pub ignored: Vec<String>,
}

/// Whether a listener terminates TLS with a certificate (HTTPS, or TLS in
/// `Terminate` mode).
fn terminates_tls(listener: &Listener<'_>) -> bool {
    matches!(listener.protocol, "HTTPS" | "TLS")
        && listener.tls_mode.is_none_or(|mode| mode == "Terminate")
}

impl<'a> GatewayListeners<'a> {
    /// Reads a JSON Gateway, refusing fields of the wrong type. `namespace`
    /// is the one the Gateway lives in (admission knows it even when the
    /// object does not say).
    pub fn from_json(gateway: &'a Value, namespace: &'a str) -> Result<Self, InvalidField> {
        let name = object::get_map(gateway, "metadata", "metadata")?
            .and_then(|m| object::lookup(m, "name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut listeners = Vec::new();
        if let Some(spec) = object::field(gateway, "spec").filter(|s| !s.is_null()) {
            if !spec.is_object() {
                return Err(object::wrong_type("spec", "an object"));
            }
            for (i, listener) in object::get_array(spec, "listeners", "spec.listeners")?
                .iter()
                .enumerate()
            {
                let at = |field: &str| format!("spec.listeners[{i}].{field}");
                if !listener.is_object() {
                    return Err(object::wrong_type(
                        format_args!("spec.listeners[{i}]"),
                        "an object",
                    ));
                }
                let tls = object::get_map(listener, "tls", at("tls"))?;
                let mut certificate_refs = Vec::new();
                if tls.is_some() {
                    let tls_value = object::field(listener, "tls").expect("tls was read");
                    for (j, reference) in
                        object::get_array(tls_value, "certificateRefs", at("tls.certificateRefs"))?
                            .iter()
                            .enumerate()
                    {
                        let ref_at = |field: &str| {
                            format!("spec.listeners[{i}].tls.certificateRefs[{j}].{field}")
                        };
                        certificate_refs.push(CertificateRef {
                            name: object::get_str(reference, "name", ref_at("name"))?.unwrap_or(""),
                            kind: object::get_str(reference, "kind", ref_at("kind"))?,
                            group: object::get_str(reference, "group", ref_at("group"))?,
                            namespace: object::get_str(
                                reference,
                                "namespace",
                                ref_at("namespace"),
                            )?,
                        });
                    }
                }
                let tls_mode = match object::field(listener, "tls") {
                    Some(tls) => object::get_str(tls, "mode", at("tls.mode"))?,
                    None => None,
                };
                listeners.push(Listener {
                    name: object::get_str(listener, "name", at("name"))?.unwrap_or(""),
                    hostname: object::get_str(listener, "hostname", at("hostname"))?
                        .filter(|h| !h.is_empty()),
                    protocol: object::get_str(listener, "protocol", at("protocol"))?.unwrap_or(""),
                    has_tls: tls.is_some(),
                    tls_mode,
                    certificate_refs,
                });
            }
        }
        let ignored = match StringMap::annotations(gateway)?.get(ann::IGNORE_TLS_LISTENERS)? {
            Some(value) => comma_list(ann::IGNORE_TLS_LISTENERS, value)?,
            None => Vec::new(),
        };
        Ok(Self {
            name,
            namespace,
            listeners,
            ignored,
        })
    }

    /// Whether `cert-manager.io/ignore-tls-listeners` names `listener`.
    fn ignores(&self, listener: &Listener<'_>) -> bool {
        self.ignored.iter().any(|name| name == listener.name)
    }
}

/// What admission adds to one listener: a reference to the Secret
/// `secret_name`, and `tls.mode: Terminate` when the listener says no mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerFill {
    pub index: usize,
    pub secret_name: String,
}

/// The listeners that terminate TLS for a hostname but name no certificate,
/// with the Secret admission gives each: `<gateway>-<listener>-tls`.
pub fn fill_listeners(gateway: &GatewayListeners<'_>) -> Result<Vec<ListenerFill>, InvalidField> {
    let mut out = Vec::new();
    for (index, listener) in gateway.listeners.iter().enumerate() {
        let Some(hostname) = listener.hostname else {
            continue;
        };
        if !terminates_tls(listener)
            || !listener.certificate_refs.is_empty()
            || gateway.ignores(listener)
        {
            continue;
        }
        names::check_dns_name(&format!("spec.listeners[{index}].hostname"), hostname)?;
        if gateway.name.is_empty() {
            // generateName: the Secret name would not be known; the user
            // names the certificate (the shim then covers it).
            continue;
        }
        let secret_name = format!("{}-{}-tls", gateway.name, listener.name);
        names::check_object_name(
            &format!("spec.listeners[{index}].tls.certificateRefs[0].name"),
            &secret_name,
        )?;
        out.push(ListenerFill { index, secret_name });
    }
    Ok(out)
}

/// A listener the shim does not make a certificate for, and why (told to
/// the user in a Warning Event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedListener {
    pub listener: String,
    pub reason: String,
}

/// The Certificates of a Gateway: one per distinct local Secret its TLS
/// listeners reference, holding the hostnames of those listeners; and the
/// HTTPS/TLS listeners left out, with why.
pub fn certificates(
    issuer: &IssuerRef,
    overrides: &CertificateOverrides,
    gateway: &GatewayListeners<'_>,
) -> (Vec<WantedCertificate>, Vec<SkippedListener>) {
    let mut out: Vec<WantedCertificate> = Vec::new();
    let mut skipped = Vec::new();
    // Secret → its Certificate in `out`.
    let mut by_secret: HashMap<&str, usize> = HashMap::new();
    for listener in &gateway.listeners {
        if !matches!(listener.protocol, "HTTPS" | "TLS") || gateway.ignores(listener) {
            continue;
        }
        let skip = |reason: String| SkippedListener {
            listener: listener.name.to_owned(),
            reason,
        };
        if !terminates_tls(listener) {
            skipped.push(skip(format!(
                "tls.mode is {}, not Terminate: the backend holds the certificate",
                listener.tls_mode.unwrap_or_default()
            )));
            continue;
        }
        let Some(hostname) = listener.hostname else {
            skipped.push(skip(
                "it has no hostname to put in a certificate; set spec.listeners[].hostname".into(),
            ));
            continue;
        };
        if names::check_dns_name("hostname", hostname).is_err() {
            skipped.push(skip("its hostname is not a valid DNS name".into()));
            continue;
        }
        let local: Vec<&CertificateRef<'_>> = listener
            .certificate_refs
            .iter()
            .filter(|r| r.is_local_secret(gateway.namespace) && !r.name.is_empty())
            .collect();
        if local.is_empty() {
            skipped.push(skip(if listener.certificate_refs.is_empty() {
                "it references no certificate; add tls.certificateRefs (certweave's webhook fills it in when the Gateway is annotated at admission)".into()
            } else {
                "its certificateRefs name no Secret in the Gateway's namespace".into()
            }));
            continue;
        }
        for reference in local {
            match by_secret.get(reference.name) {
                Some(&at) => {
                    let names = &mut out[at].spec.dns_names;
                    if !names.iter().any(|n| n == hostname) {
                        names.push(hostname.to_owned());
                    }
                }
                None => {
                    by_secret.insert(reference.name, out.len());
                    out.push(WantedCertificate::for_secret(
                        reference.name,
                        vec![hostname.to_owned()],
                        issuer,
                        overrides,
                    ));
                }
            }
        }
    }
    for certificate in &mut out {
        overrides.add_extra_names(&mut certificate.spec);
    }
    (out, skipped)
}

/// The Certificates a Gateway (as JSON) asks for, and the listeners
/// skipped; nothing when it names no issuer.
pub fn certificates_for_gateway_json(
    gateway: &Value,
    namespace: &str,
) -> Result<(Vec<WantedCertificate>, Vec<SkippedListener>), InvalidField> {
    let annotations = StringMap::annotations(gateway)?;
    // kubernetes.io/tls-acme has no meaning for Gateways in cert-manager.
    let IngressAsk::Certificates { issuer, overrides } = IngressAsk::read(&annotations, None)?
    else {
        return Ok((Vec::new(), Vec::new()));
    };
    let listeners = GatewayListeners::from_json(gateway, namespace)?;
    Ok(certificates(&issuer, &overrides, &listeners))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn gateway(annotations: Value, listeners: Value) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
            "spec": {"gatewayClassName": "eg", "listeners": listeners},
        })
    }

    #[test]
    fn one_certificate_per_secret_with_the_hostnames_that_use_it() {
        let gw = gateway(
            json!({"cert-manager.io/cluster-issuer": "le", "cert-manager.io/duration": "720h",
                   "cert-manager.io/ignore-tls-listeners": "ignored, other",
                   "cert-manager.io/alt-names": "www.example.com", "cert-manager.io/ip-sans": "192.0.2.7"}),
            json!([
                {"name": "a", "hostname": "a.example.com", "port": 443, "protocol": "HTTPS",
                 "tls": {"certificateRefs": [{"name": "shared"}]}},
                {"name": "b", "hostname": "b.example.com", "port": 443, "protocol": "HTTPS",
                 "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "group": "", "name": "shared"}]}},
                {"name": "a-again", "hostname": "a.example.com", "port": 8443, "protocol": "TLS",
                 "tls": {"certificateRefs": [{"name": "shared"}]}},
                {"name": "c", "hostname": "c.example.com", "port": 443, "protocol": "HTTPS",
                 "tls": {"certificateRefs": [{"name": "c-tls"}]}},
                {"name": "http", "hostname": "a.example.com", "port": 80, "protocol": "HTTP"},
                {"name": "passthrough", "hostname": "p.example.com", "port": 443, "protocol": "TLS",
                 "tls": {"mode": "Passthrough"}},
                {"name": "no-host", "port": 443, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "x"}]}},
                {"name": "elsewhere", "hostname": "e.example.com", "port": 443, "protocol": "HTTPS",
                 "tls": {"certificateRefs": [{"name": "e", "namespace": "other"}]}},
                {"name": "ignored", "hostname": "i.example.com", "port": 443, "protocol": "HTTPS",
                 "tls": {"certificateRefs": [{"name": "managed-elsewhere"}]}},
            ]),
        );
        let (wanted, skipped) = certificates_for_gateway_json(&gw, "shop").unwrap();
        let summary: Vec<(&str, Vec<&str>)> = wanted
            .iter()
            .map(|w| {
                (
                    w.name.as_str(),
                    w.spec.dns_names.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "shared",
                    vec!["a.example.com", "b.example.com", "www.example.com"]
                ),
                ("c-tls", vec!["c.example.com", "www.example.com"])
            ]
        );
        assert_eq!(wanted[1].spec.ip_addresses, ["192.0.2.7"]);
        assert_eq!(wanted[0].spec.duration.as_deref(), Some("720h"));
        assert_eq!(
            wanted[0].spec.issuer_ref.kind.as_deref(),
            Some("ClusterIssuer")
        );
        let skipped: Vec<&str> = skipped.iter().map(|s| s.listener.as_str()).collect();
        assert_eq!(
            skipped,
            ["passthrough", "no-host", "elsewhere"],
            "HTTP listeners are not TLS listeners"
        );
    }

    #[test]
    fn admission_fills_a_hostname_only_listener_and_nothing_else() {
        let gw = gateway(
            json!({"cert-manager.io/issuer": "ca"}),
            json!([
                {"name": "https", "hostname": "shop.example.com", "port": 443, "protocol": "HTTPS"},
                {"name": "named", "hostname": "n.example.com", "port": 443, "protocol": "HTTPS",
                 "tls": {"certificateRefs": [{"name": "mine"}]}},
                {"name": "http", "hostname": "shop.example.com", "port": 80, "protocol": "HTTP"},
                {"name": "passthrough", "hostname": "p.example.com", "port": 443, "protocol": "TLS",
                 "tls": {"mode": "Passthrough"}},
                {"name": "wild", "hostname": "*.example.com", "port": 8443, "protocol": "TLS", "tls": {}},
            ]),
        );
        let listeners = GatewayListeners::from_json(&gw, "shop").unwrap();
        assert_eq!(
            fill_listeners(&listeners).unwrap(),
            [
                ListenerFill {
                    index: 0,
                    secret_name: "web-https-tls".into()
                },
                ListenerFill {
                    index: 4,
                    secret_name: "web-wild-tls".into()
                },
            ]
        );
        let bad = gateway(
            json!({"cert-manager.io/issuer": "ca"}),
            json!([{"name": "https", "hostname": "bad..host", "port": 443, "protocol": "HTTPS"}]),
        );
        let err = fill_listeners(&GatewayListeners::from_json(&bad, "shop").unwrap()).unwrap_err();
        assert_eq!(err.field, "spec.listeners[0].hostname");
        let wrong_type = gateway(json!({}), json!([{"name": 3}]));
        let err = GatewayListeners::from_json(&wrong_type, "shop").unwrap_err();
        assert_eq!(err.field, "spec.listeners[0].name");
    }
}
