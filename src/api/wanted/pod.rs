//! The Pod rules: what a Pod (or pod template) annotated with
//! `certweave.io/issuer` or `certweave.io/cluster-issuer` asks for. The
//! webhook and `certweave inject` mount what it names; the controller and
//! `certweave local` request the Certificate that fills it, named after the
//! Secret, so every Pod naming one Secret shares one Certificate.

use std::collections::HashSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::{issuer_reference, WantedCertificate, MAX_NAMES_PER_CERTIFICATE};
use crate::api::annotations as ann;
use crate::api::certificate::CertificateSpec;
use crate::api::names;
use crate::api::object::{StringLookup, StringMap, NO_STRINGS};
use crate::api::{InvalidField, IssuerKind, IssuerRef};

/// The annotations that make a Pod ours.
pub const TRIGGERS: [&str; 2] = [ann::POD_ISSUER, ann::POD_CLUSTER_ISSUER];

/// What the TLS sidecar (`certweave proxy --mode`) does with a client's
/// connection once TLS is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// HTTP/1.1 and HTTP/2: each request forwarded, `X-Forwarded-*` added.
    #[default]
    Http,
    /// Any protocol (a database, a message broker): the decrypted bytes
    /// piped to one upstream connection.
    Tcp,
}

/// An unknown proxy mode.
#[derive(Debug, thiserror::Error)]
#[error("unknown proxy mode {0:?}; expected http or tcp")]
pub struct UnknownProxyMode(String);

impl std::str::FromStr for ProxyMode {
    type Err = UnknownProxyMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "http" => Ok(Self::Http),
            "tcp" => Ok(Self::Tcp),
            _ => Err(UnknownProxyMode(crate::model::text::cut(
                s,
                crate::model::text::QUOTED,
            ))),
        }
    }
}

impl ProxyMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tcp => "tcp",
        }
    }
}

/// The TLS sidecar: it listens on `listen` in the Pod and forwards the
/// decrypted traffic to `127.0.0.1:upstream`, as HTTP or as plain TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyPorts {
    pub listen: u16,
    pub upstream: u16,
    pub mode: ProxyMode,
}

impl ProxyPorts {
    /// Parses `"LISTEN:UPSTREAM"` (HTTP, e.g. `"8443:8080"`) or
    /// `"LISTEN:UPSTREAM/MODE"` with MODE `http` or `tcp` (e.g.
    /// `"5433:5432/tcp"` in front of a database).
    pub fn parse(value: &str) -> Result<Self, InvalidField> {
        let bad = |problem: String| {
            InvalidField::new(
                ann::POD_TLS_PROXY,
                problem,
                "write \"LISTEN:UPSTREAM\" with two different ports 1-65535, e.g. \"8443:8080\", \
                 and \"/tcp\" after them for an upstream that does not speak HTTP, e.g. \"5433:5432/tcp\"",
            )
        };
        let (ports, mode) = match value.rsplit_once('/') {
            Some((ports, mode)) => (
                ports,
                mode.parse::<ProxyMode>().map_err(|e| bad(e.to_string()))?,
            ),
            None => (value, ProxyMode::Http),
        };
        let (listen, upstream) = ports
            .split_once(':')
            .ok_or_else(|| bad(format!("{value:?} is not of the form LISTEN:UPSTREAM")))?;
        let port = |s: &str| -> Result<u16, InvalidField> {
            match s.trim().parse::<u16>() {
                Ok(p) if p > 0 => Ok(p),
                _ => Err(bad(format!("{s:?} in {value:?} is not a port number"))),
            }
        };
        let ports = ProxyPorts {
            listen: port(listen)?,
            upstream: port(upstream)?,
            mode,
        };
        if ports.listen == ports.upstream {
            return Err(bad(format!(
                "{value:?} listens and forwards on the same port"
            )));
        }
        Ok(ports)
    }
}

/// What a Pod's annotations ask for, resolved against its labels and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCertificateRequest {
    pub issuer: IssuerRef,
    pub dns_names: Vec<String>,
    /// The Secret to mount; also the name of the Certificate that fills it.
    pub secret_name: String,
    pub mount_path: String,
    /// Containers to mount into; `None` means every app container.
    pub containers: Option<Vec<String>>,
    pub proxy: Option<ProxyPorts>,
}

impl PodCertificateRequest {
    /// Reads the request from a Pod's annotations, and its labels when the
    /// annotations name no service (`labels` is only called then, so a Pod
    /// with odd labels that never needs them is not refused for them).
    /// `Ok(None)` when the Pod carries neither issuer annotation.
    /// `namespace` is the Pod's, used for the default `<svc>.<ns>.svc` names.
    pub fn read<L: StringLookup>(
        annotations: &impl StringLookup,
        labels: impl FnOnce() -> Result<L, InvalidField>,
        namespace: &str,
    ) -> Result<Option<Self>, InvalidField> {
        let issuer = match (
            annotations.get(ann::POD_ISSUER)?,
            annotations.get(ann::POD_CLUSTER_ISSUER)?,
        ) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err(InvalidField::new(
                    ann::POD_ISSUER,
                    format!(
                        "both {} and {} are set",
                        ann::POD_ISSUER,
                        ann::POD_CLUSTER_ISSUER
                    ),
                    "keep only one of them",
                ))
            }
            (Some(name), None) => IssuerRef::new(ann::POD_ISSUER, IssuerKind::Issuer, name)?,
            (None, Some(name)) => {
                IssuerRef::new(ann::POD_CLUSTER_ISSUER, IssuerKind::ClusterIssuer, name)?
            }
        };

        let service = service_name(annotations, labels)?;
        let need_service = |what: &str| {
            service.clone().ok_or_else(|| {
                InvalidField::new(
                    ann::POD_SERVICE,
                    format!("no service name to derive the {what} from"),
                    format!(
                        "set {} (or the label app.kubernetes.io/name or app), or set {} explicitly",
                        ann::POD_SERVICE,
                        if what == "DNS names" {
                            ann::POD_DNS_NAMES
                        } else {
                            ann::POD_SECRET_NAME
                        }
                    ),
                )
            })
        };

        let dns_names = match annotations.get(ann::POD_DNS_NAMES)? {
            Some(list) => parse_dns_names(list)?,
            None => {
                let svc = need_service("DNS names")?;
                names::check_dns_label("metadata.namespace", namespace)?;
                vec![
                    format!("{svc}.{namespace}.svc"),
                    format!("{svc}.{namespace}.svc.cluster.local"),
                ]
            }
        };

        let secret_name = match annotations.get(ann::POD_SECRET_NAME)? {
            Some(name) => {
                names::check_object_name(ann::POD_SECRET_NAME, name)?;
                name.to_owned()
            }
            // A DNS label plus "-tls" is always a valid object name.
            None => format!("{}-tls", need_service("Secret name")?),
        };

        let mount_path = match annotations.get(ann::POD_MOUNT_PATH)? {
            Some(path) => {
                names::check_mount_path(ann::POD_MOUNT_PATH, path)?;
                path.trim_end_matches('/').to_owned()
            }
            None => ann::DEFAULT_MOUNT_PATH.to_owned(),
        };

        let containers = annotations
            .get(ann::POD_CONTAINERS)?
            .map(parse_container_list)
            .transpose()?;

        let proxy = annotations
            .get(ann::POD_TLS_PROXY)?
            .map(ProxyPorts::parse)
            .transpose()?;

        Ok(Some(Self {
            issuer,
            dns_names,
            secret_name,
            mount_path,
            containers,
            proxy,
        }))
    }

    /// Reads the request from a JSON Pod (or pod template).
    pub fn from_pod(pod: &Value, namespace: &str) -> Result<Option<Self>, InvalidField> {
        let annotations = StringMap::annotations(pod)?;
        Self::read(&annotations, || StringMap::labels(pod), namespace)
    }

    /// Reads the request from a typed Pod's metadata.
    pub fn from_metadata(
        metadata: &ObjectMeta,
        namespace: &str,
    ) -> Result<Option<Self>, InvalidField> {
        let annotations = metadata.annotations.as_ref().unwrap_or(NO_STRINGS);
        let labels = metadata.labels.as_ref().unwrap_or(NO_STRINGS);
        Self::read(annotations, || Ok(labels), namespace)
    }

    /// The Certificate that fills the Secret this Pod mounts.
    pub fn certificate(&self) -> WantedCertificate {
        WantedCertificate {
            name: self.secret_name.clone(),
            spec: CertificateSpec {
                secret_name: self.secret_name.clone(),
                dns_names: self.dns_names.clone(),
                issuer_ref: issuer_reference(&self.issuer),
                ..CertificateSpec::default()
            },
        }
    }
}

/// `certweave.io/service`, else label `app.kubernetes.io/name`, else `app`.
fn service_name<L: StringLookup>(
    annotations: &impl StringLookup,
    labels: impl FnOnce() -> Result<L, InvalidField>,
) -> Result<Option<String>, InvalidField> {
    if let Some(svc) = annotations.get(ann::POD_SERVICE)? {
        names::check_dns_label(ann::POD_SERVICE, svc)?;
        return Ok(Some(svc.to_owned()));
    }
    let labels = labels()?;
    for key in ann::SERVICE_NAME_LABELS {
        if let Some(svc) = labels.get(key)? {
            names::check_dns_label(&format!("metadata.labels[{key}]"), svc)?;
            return Ok(Some(svc.to_owned()));
        }
    }
    Ok(None)
}

/// Splits a comma-separated list, trimming blanks, checks every name with
/// `check`, and drops repeats (a set, since the list comes from the request).
fn parse_list(
    list: &str,
    check: impl Fn(&str) -> Result<(), InvalidField>,
) -> Result<Vec<String>, InvalidField> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = HashSet::new();
    for name in list.split(',').map(str::trim) {
        check(name)?;
        if seen.insert(name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

fn parse_dns_names(list: &str) -> Result<Vec<String>, InvalidField> {
    let names = parse_list(list, |name| names::check_dns_name(ann::POD_DNS_NAMES, name))?;
    if names.len() > MAX_NAMES_PER_CERTIFICATE {
        return Err(InvalidField::new(
            ann::POD_DNS_NAMES,
            format!(
                "{} names; a certificate holds at most {MAX_NAMES_PER_CERTIFICATE}",
                names.len()
            ),
            "list at most 100 names, or give the Pods behind them separate certificates",
        ));
    }
    Ok(names)
}

/// Container names; one listed twice must still be mounted only once.
fn parse_container_list(list: &str) -> Result<Vec<String>, InvalidField> {
    parse_list(list, |name| {
        names::check_dns_label(ann::POD_CONTAINERS, name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_asks_for_a_certificate_named_after_its_secret() {
        let pod = json!({"metadata": {"name": "api-1", "namespace": "shop", "annotations": {
            "certweave.io/cluster-issuer": "le",
            "certweave.io/service": "api",
            "certweave.io/dns-names": "api.example.com, api.example.com"}}});
        let request = PodCertificateRequest::from_pod(&pod, "shop")
            .unwrap()
            .unwrap();
        let metadata: ObjectMeta = serde_json::from_value(pod["metadata"].clone()).unwrap();
        assert_eq!(
            PodCertificateRequest::from_metadata(&metadata, "shop"),
            Ok(Some(request.clone()))
        );
        let cert = request.certificate();
        assert_eq!(cert.spec.dns_names, ["api.example.com"]);
        assert_eq!(cert.spec.issuer_ref.name, "le");
        assert_eq!(cert.spec.issuer_ref.kind.as_deref(), Some("ClusterIssuer"));
        assert_eq!(cert.name, "api-tls");
        assert_eq!(cert.name, cert.spec.secret_name);
        assert!(cert.spec.plan().is_ok());
        let plain = json!({"metadata": {"name": "api-2", "annotations": {}}});
        assert_eq!(PodCertificateRequest::from_pod(&plain, "shop"), Ok(None));
    }

    #[test]
    fn defaults_come_from_the_service_label_and_namespace() {
        let metadata = ObjectMeta {
            annotations: Some([(ann::POD_ISSUER.to_owned(), "ca".to_owned())].into()),
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
            ..ObjectMeta::default()
        };
        let request = PodCertificateRequest::from_metadata(&metadata, "shop")
            .unwrap()
            .unwrap();
        assert_eq!(
            request.dns_names,
            ["web.shop.svc", "web.shop.svc.cluster.local"]
        );
        assert_eq!(request.secret_name, "web-tls");
        assert_eq!(request.mount_path, ann::DEFAULT_MOUNT_PATH);
        assert_eq!(request.containers, None);
        assert_eq!(request.proxy, None);
    }

    #[test]
    fn labels_are_read_only_when_no_service_is_named() {
        let pod = json!({"metadata": {
            "annotations": {"certweave.io/issuer": "ca", "certweave.io/service": "web"},
            "labels": "not a map"}});
        assert!(PodCertificateRequest::from_pod(&pod, "ns")
            .unwrap()
            .is_some());
        let pod =
            json!({"metadata": {"annotations": {"certweave.io/issuer": "ca"}, "labels": "x"}});
        assert_eq!(
            PodCertificateRequest::from_pod(&pod, "ns")
                .unwrap_err()
                .field,
            "metadata.labels"
        );
    }
}
