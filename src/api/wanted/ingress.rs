//! The Ingress rules, compatible with cert-manager's ingress shim: an
//! Ingress that names an issuer gets a `spec.tls` entry for its hosts (the
//! webhook's job), and one Certificate per `spec.tls` entry, named after its
//! `secretName`, with the cert-manager.io override annotations applied (the
//! shim's job). Both jobs read the Ingress through [`IngressTls`], built from
//! JSON (admission, manifests) or from the typed object (the controller).

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::networking::v1::Ingress;
use serde_json::Value;

use super::secret_names::SecretNames;
use super::{WantedCertificate, MAX_INGRESS_HOSTS, MAX_NAMES_PER_CERTIFICATE, MAX_TLS_ENTRIES};
use crate::api::annotations as ann;
use crate::api::issuer_ref::ISSUER_GROUP;
use crate::api::names;
use crate::api::object::{self, StringLookup, StringMap, NO_STRINGS};
use crate::api::overrides::CertificateOverrides;
use crate::api::{InvalidField, IssuerKind, IssuerRef};

/// The annotations that make an Ingress ours.
const TRIGGERS: [&str; 4] = [
    ann::ISSUER,
    ann::CLUSTER_ISSUER,
    ann::TLS_ACME,
    ann::ISSUER_GROUP,
];

/// What an Ingress's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressAsk {
    /// Nothing: no trigger annotation, or one that names no issuer.
    Nothing,
    /// `kubernetes.io/tls-acme: "true"` while no default issuer is
    /// configured: nothing can be requested, and the user is told so.
    NoDefaultIssuer,
    /// Certificates from `issuer`, shaped by the override annotations.
    Certificates {
        issuer: IssuerRef,
        overrides: Box<CertificateOverrides>,
    },
}

impl IngressAsk {
    /// Reads and checks the trigger and override annotations.
    /// `default_issuer` is what `kubernetes.io/tls-acme` asks for.
    pub fn read(
        annotations: &impl StringLookup,
        default_issuer: Option<&IssuerRef>,
    ) -> Result<Self, InvalidField> {
        if !annotations.contains_any(&TRIGGERS) {
            return Ok(IngressAsk::Nothing);
        }
        let Some(issuer) = ingress_issuer(annotations, default_issuer)? else {
            return Ok(if annotations.get(ann::TLS_ACME)? == Some("true") {
                IngressAsk::NoDefaultIssuer
            } else {
                IngressAsk::Nothing
            });
        };
        let overrides = CertificateOverrides::from_annotations(|key| annotations.get(key))?;
        Ok(IngressAsk::Certificates {
            issuer,
            overrides: Box::new(overrides),
        })
    }
}

/// The warning for [`IngressAsk::NoDefaultIssuer`].
pub fn no_default_issuer_warning() -> String {
    format!(
        "{}: \"true\" is set but certweave has no --default-issuer; no certificate will be requested (add {} instead)",
        ann::TLS_ACME,
        ann::CLUSTER_ISSUER
    )
}

/// The warning for an Ingress that names no host yet ([`TlsFill::NoHosts`]).
pub fn no_hosts_warning() -> String {
    "the Ingress has no spec.rules[].host and no spec.tls hosts; no certificate will be requested until it names a host".into()
}

/// Which issuer an Ingress asks for. `Ok(None)` when it asks for none, or
/// uses `kubernetes.io/tls-acme` while no default issuer is configured.
fn ingress_issuer(
    annotations: &impl StringLookup,
    default_issuer: Option<&IssuerRef>,
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
            Some("true") => Ok(default_issuer.cloned()),
            _ => Ok(None),
        },
    }
}

/// The parts of an Ingress the rules read, unchecked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressTls<'a> {
    /// `metadata.name`, empty while the Ingress has none (generateName).
    pub name: &'a str,
    /// Every non-empty `spec.rules[i].host`, with its rule's index.
    pub rule_hosts: Vec<(usize, &'a str)>,
    /// `spec.tls`, in order.
    pub tls: Vec<TlsEntry<'a>>,
}

/// One `spec.tls` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsEntry<'a> {
    pub hosts: Vec<&'a str>,
    /// `secretName`; an empty one counts as none.
    pub secret_name: Option<&'a str>,
}

impl<'a> IngressTls<'a> {
    /// Reads a JSON Ingress, refusing fields of the wrong type. `None` when
    /// it has no `spec` (nothing to secure yet).
    pub fn from_json(ingress: &'a Value) -> Result<Option<Self>, InvalidField> {
        let spec = match object::field(ingress, "spec") {
            Some(spec @ Value::Object(_)) => spec,
            None | Some(Value::Null) => return Ok(None),
            Some(_) => return Err(object::wrong_type("spec", "an object")),
        };
        let mut rule_hosts = Vec::new();
        for (i, rule) in object::get_array(spec, "rules", "spec.rules")?
            .iter()
            .enumerate()
        {
            let host = object::get_str(rule, "host", format_args!("spec.rules[{i}].host"))?;
            if let Some(host) = host.filter(|h| !h.is_empty()) {
                rule_hosts.push((i, host));
            }
        }
        let entries = object::get_array(spec, "tls", "spec.tls")?;
        let name = object::get_map(ingress, "metadata", "metadata")?
            .and_then(|m| object::lookup(m, "name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let mut tls = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            if !entry.is_object() {
                return Err(object::wrong_type(
                    format_args!("spec.tls[{index}]"),
                    "an object",
                ));
            }
            let hosts = object::get_array(entry, "hosts", format_args!("spec.tls[{index}].hosts"))?
                .iter()
                .enumerate()
                .map(|(j, host)| {
                    host.as_str().ok_or_else(|| {
                        object::wrong_type(format_args!("spec.tls[{index}].hosts[{j}]"), "a string")
                    })
                })
                .collect::<Result<_, _>>()?;
            let secret_name = object::get_str(
                entry,
                "secretName",
                format_args!("spec.tls[{index}].secretName"),
            )?;
            tls.push(TlsEntry { hosts, secret_name });
        }
        Ok(Some(Self {
            name,
            rule_hosts,
            tls,
        }))
    }

    /// Reads a typed Ingress. `None` when it has no `spec`.
    pub fn from_ingress(ingress: &'a Ingress) -> Option<Self> {
        let spec = ingress.spec.as_ref()?;
        let rule_hosts = spec
            .rules
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, rule)| {
                let host = rule.host.as_deref().filter(|h| !h.is_empty())?;
                Some((i, host))
            })
            .collect();
        let tls = spec
            .tls
            .iter()
            .flatten()
            .map(|entry| TlsEntry {
                hosts: entry.hosts.iter().flatten().map(String::as_str).collect(),
                secret_name: entry.secret_name.as_deref(),
            })
            .collect();
        Some(Self {
            name: ingress.metadata.name.as_deref().unwrap_or(""),
            rule_hosts,
            tls,
        })
    }
}

/// How `spec.tls` must change so that every entry names a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFill<'a> {
    /// No `spec.tls` and no rule host: nothing to request yet (warned).
    NoHosts,
    /// Every entry names its Secret already.
    Complete,
    /// No `spec.tls`: one entry with every rule host (deduplicated, in
    /// order) and `secretName: <name>-tls`.
    NewEntry {
        hosts: Vec<&'a str>,
        secret_name: String,
    },
    /// The entries at these indexes (ascending) name no Secret and get
    /// these names; the others are left alone.
    SecretNames(Vec<(usize, String)>),
}

/// Checks the hosts and decides how `spec.tls` is completed: if absent, one
/// entry with every rule host and `secretName: <name>-tls`; an existing
/// entry without `secretName` gets one; nothing else is touched.
pub fn fill_tls<'a>(ingress: &IngressTls<'a>) -> Result<TlsFill<'a>, InvalidField> {
    if ingress.rule_hosts.len() > MAX_INGRESS_HOSTS {
        return Err(InvalidField::new(
            "spec.rules",
            format!(
                "{} rules name a host; at most {MAX_INGRESS_HOSTS} are served per Ingress",
                ingress.rule_hosts.len()
            ),
            "split the hosts over several Ingresses",
        ));
    }
    if ingress.tls.len() > MAX_TLS_ENTRIES {
        return Err(InvalidField::new(
            "spec.tls",
            format!(
                "{} entries; at most {MAX_TLS_ENTRIES} are served per Ingress",
                ingress.tls.len()
            ),
            "group the hosts into fewer entries (up to 100 hosts each), or split the Ingress",
        ));
    }
    let mut hosts = Vec::with_capacity(ingress.rule_hosts.len());
    let mut seen = HashSet::with_capacity(ingress.rule_hosts.len());
    for &(i, host) in &ingress.rule_hosts {
        names::check_dns_name(&format!("spec.rules[{i}].host"), host)?;
        if seen.insert(host) {
            hosts.push(host);
        }
    }
    if ingress.tls.is_empty() {
        if hosts.is_empty() {
            return Ok(TlsFill::NoHosts);
        }
        if hosts.len() > MAX_NAMES_PER_CERTIFICATE {
            return Err(InvalidField::new(
                "spec.rules",
                format!(
                    "{} distinct hosts would go into one certificate; a certificate holds at most {MAX_NAMES_PER_CERTIFICATE} names",
                    hosts.len()
                ),
                "list spec.tls entries of at most 100 hosts each, each with its own secretName",
            ));
        }
        let secret_name = SecretNames::new(ingress.name, []).assign(0)?;
        return Ok(TlsFill::NewEntry { hosts, secret_name });
    }
    let mut names = SecretNames::new(
        ingress.name,
        ingress.tls.iter().filter_map(|entry| entry.secret_name),
    );
    // Entries naming the same Secret become one certificate: the names of
    // all of them count against its limit.
    let mut per_secret: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut assigned = Vec::new();
    for (index, entry) in ingress.tls.iter().enumerate() {
        if entry.hosts.is_empty() {
            return Err(InvalidField::new(
                format!("spec.tls[{index}].hosts"),
                "the entry lists no hosts",
                "list the hosts this entry's certificate should cover",
            ));
        }
        if entry.hosts.len() > MAX_NAMES_PER_CERTIFICATE {
            return Err(InvalidField::new(
                format!("spec.tls[{index}].hosts"),
                format!(
                    "{} hosts; a certificate holds at most {MAX_NAMES_PER_CERTIFICATE} names",
                    entry.hosts.len()
                ),
                "split them over several spec.tls entries, each with its own secretName",
            ));
        }
        for (j, host) in entry.hosts.iter().enumerate() {
            names::check_dns_name(&format!("spec.tls[{index}].hosts[{j}]"), host)?;
        }
        if let Some(secret_name) = entry.secret_name.filter(|s| !s.is_empty()) {
            let shared = per_secret.entry(secret_name).or_default();
            shared.extend(entry.hosts.iter().copied());
            if shared.len() > MAX_NAMES_PER_CERTIFICATE {
                return Err(InvalidField::new(
                    format!("spec.tls[{index}].hosts"),
                    format!(
                        "with the entries before it that name Secret {secret_name:?}, {} distinct hosts go into one certificate; a certificate holds at most {MAX_NAMES_PER_CERTIFICATE} names",
                        shared.len()
                    ),
                    "give some of these entries another secretName",
                ));
            }
            continue;
        }
        assigned.push((index, names.assign(index)?));
    }
    Ok(if assigned.is_empty() {
        TlsFill::Complete
    } else {
        TlsFill::SecretNames(assigned)
    })
}

/// The Certificates of a checked Ingress once `fill` is applied: one per
/// Secret, in entry order; entries sharing a Secret share a Certificate
/// holding the hosts of all of them.
pub fn certificates(
    issuer: &IssuerRef,
    overrides: &CertificateOverrides,
    ingress: &IngressTls<'_>,
    fill: &TlsFill<'_>,
) -> Vec<WantedCertificate> {
    let entries: Vec<(&str, &[&str])> = match fill {
        TlsFill::NoHosts => Vec::new(),
        TlsFill::NewEntry { hosts, secret_name } => vec![(secret_name.as_str(), hosts)],
        TlsFill::Complete | TlsFill::SecretNames(_) => {
            let assigned: &[(usize, String)] = match fill {
                TlsFill::SecretNames(assigned) => assigned,
                _ => &[],
            };
            let mut assigned = assigned.iter().peekable();
            ingress
                .tls
                .iter()
                .enumerate()
                .map(|(index, entry)| {
                    let name = match assigned.next_if(|(i, _)| *i == index) {
                        Some((_, name)) => name.as_str(),
                        None => entry.secret_name.unwrap_or(""),
                    };
                    (name, entry.hosts.as_slice())
                })
                .collect()
        }
    };
    let mut out: Vec<WantedCertificate> = Vec::new();
    // Secret → its Certificate in `out`, and the names it holds.
    let mut by_secret: HashMap<&str, (usize, HashSet<&str>)> = HashMap::new();
    for (secret_name, hosts) in entries {
        if secret_name.is_empty() || hosts.is_empty() {
            continue;
        }
        if let Some((at, seen)) = by_secret.get_mut(secret_name) {
            for &host in hosts {
                if seen.insert(host) {
                    out[*at].spec.dns_names.push(host.to_owned());
                }
            }
            continue;
        }
        by_secret.insert(secret_name, (out.len(), hosts.iter().copied().collect()));
        out.push(WantedCertificate::for_secret(
            secret_name,
            hosts.iter().map(|&h| h.to_owned()).collect(),
            issuer,
            overrides,
        ));
    }
    for certificate in &mut out {
        overrides.add_extra_names(&mut certificate.spec);
    }
    out
}

/// The Certificates a typed Ingress asks for (the controller's Ingress
/// shim), as if it had been through the webhook first: an Ingress created
/// while the webhook was down gets the same Certificates.
pub fn certificates_for_ingress(
    ingress: &Ingress,
    default_issuer: Option<&IssuerRef>,
) -> Result<Vec<WantedCertificate>, InvalidField> {
    let annotations = ingress.metadata.annotations.as_ref().unwrap_or(NO_STRINGS);
    wanted(IngressAsk::read(annotations, default_issuer)?, || {
        Ok(IngressTls::from_ingress(ingress))
    })
}

/// [`certificates_for_ingress`] for an Ingress read from a manifest.
pub fn certificates_for_ingress_json(
    ingress: &Value,
    default_issuer: Option<&IssuerRef>,
) -> Result<Vec<WantedCertificate>, InvalidField> {
    let annotations = StringMap::annotations(ingress)?;
    wanted(IngressAsk::read(&annotations, default_issuer)?, || {
        IngressTls::from_json(ingress)
    })
}

fn wanted<'a>(
    ask: IngressAsk,
    read: impl FnOnce() -> Result<Option<IngressTls<'a>>, InvalidField>,
) -> Result<Vec<WantedCertificate>, InvalidField> {
    let IngressAsk::Certificates { issuer, overrides } = ask else {
        return Ok(Vec::new());
    };
    let Some(ingress) = read()? else {
        return Ok(Vec::new());
    };
    let fill = fill_tls(&ingress)?;
    Ok(certificates(&issuer, &overrides, &ingress, &fill))
}

#[cfg(test)]
mod tests;
