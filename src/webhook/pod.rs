//! Pod mutation: mount the certificate Secret, optionally inject the TLS
//! sidecar, and mark the Pod as done.
//!
//! The same code mutates Pods at admission and pod templates in
//! `certweave inject`; [`PodCertificateRequest`] is also what the controller
//! reads back from an injected Pod to create its Certificate.

use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use super::object::{self, StringMap};
use super::{MutationConfig, MutationOutcome, MutationResult};
use crate::api::annotations as ann;
use crate::api::names;
use crate::api::{InvalidField, IssuerKind, IssuerRef};

/// Name of the Pod volume holding the certificate Secret.
pub const VOLUME_NAME: &str = "certweave-tls";
/// Name of the injected sidecar container.
pub const PROXY_CONTAINER: &str = "certweave-proxy";
/// The sidecar's plain health port (`certweave proxy --health-addr`'s
/// default), probed by the kubelet.
pub const PROXY_HEALTH_PORT: u16 = 9901;

/// The ports of the TLS sidecar: it listens on `listen` in the Pod and
/// forwards plain traffic to `127.0.0.1:upstream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyPorts {
    pub listen: u16,
    pub upstream: u16,
}

impl ProxyPorts {
    /// Parses `"LISTEN:UPSTREAM"`, e.g. `"8443:8080"`.
    pub fn parse(value: &str) -> Result<Self, InvalidField> {
        let bad = |problem: String| {
            InvalidField::new(
                ann::POD_TLS_PROXY,
                problem,
                "write \"LISTEN:UPSTREAM\" with two different ports 1-65535, e.g. \"8443:8080\"",
            )
        };
        let (listen, upstream) = value
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
    /// Reads the request from a Pod (or pod template). `Ok(None)` when the
    /// Pod carries neither issuer annotation. `namespace` is the Pod's
    /// namespace, used for the default `<svc>.<ns>.svc` names.
    pub fn from_pod(pod: &Value, namespace: &str) -> Result<Option<Self>, InvalidField> {
        let annotations = StringMap::annotations(pod)?;
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

        let service = service_name(pod, &annotations)?;
        let need_service =
            |what: &str| {
                service.clone().ok_or_else(|| {
                    InvalidField::new(
                        ann::POD_SERVICE,
                        format!("no service name to derive the {what} from"),
                        format!(
                        "set {} (or the label app.kubernetes.io/name or app), or set {} explicitly",
                        ann::POD_SERVICE,
                        if what == "DNS names" { ann::POD_DNS_NAMES } else { ann::POD_SECRET_NAME }
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
}

/// `certweave.io/service`, else label `app.kubernetes.io/name`, else `app`.
fn service_name(pod: &Value, annotations: &StringMap<'_>) -> Result<Option<String>, InvalidField> {
    if let Some(svc) = annotations.get(ann::POD_SERVICE)? {
        names::check_dns_label(ann::POD_SERVICE, svc)?;
        return Ok(Some(svc.to_owned()));
    }
    let labels = StringMap::labels(pod)?;
    for key in ann::SERVICE_NAME_LABELS {
        if let Some(svc) = labels.get(key)? {
            names::check_dns_label(&format!("metadata.labels[{key}]"), svc)?;
            return Ok(Some(svc.to_owned()));
        }
    }
    Ok(None)
}

/// Splits a comma-separated list, trimming blanks, and checks every name.
fn parse_dns_names(list: &str) -> Result<Vec<String>, InvalidField> {
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim) {
        names::check_dns_name(ann::POD_DNS_NAMES, name)?;
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// Splits a comma-separated list of container names, checking each and
/// dropping repeats (a name listed twice must still be mounted only once).
fn parse_container_list(list: &str) -> Result<Vec<String>, InvalidField> {
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim) {
        names::check_dns_label(ann::POD_CONTAINERS, name)?;
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// Mutates a Pod or pod template: adds the Secret volume, read-only mounts in
/// the selected containers, the sidecar when asked, and the injected marker.
/// `namespace` is the Pod's namespace (from the admission request, since a
/// Pod being created may not carry it yet).
pub fn mutate_pod(pod: &Value, namespace: &str, config: &MutationConfig) -> MutationResult {
    let annotations = StringMap::annotations(pod)?;
    if !annotations.contains_any(&[ann::POD_ISSUER, ann::POD_CLUSTER_ISSUER]) {
        return Ok(MutationOutcome::unchanged());
    }
    let Some(request) = PodCertificateRequest::from_pod(pod, namespace)? else {
        return Ok(MutationOutcome::unchanged());
    };
    let spec = pod
        .get("spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| object::wrong_type("spec", "an object with containers"))?;
    let volumes = object::get_array(spec, "volumes", "spec.volumes")?;
    let containers = object::get_array(spec, "containers", "spec.containers")?;
    let our_volume = volumes
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(VOLUME_NAME));

    if annotations.get(ann::POD_INJECTED)? == Some("true") {
        return match our_volume {
            Some(_) => Ok(MutationOutcome::unchanged()),
            None => Err(InvalidField::new(
                ann::POD_INJECTED,
                format!("the Pod is marked as injected but has no volume {VOLUME_NAME:?}"),
                format!(
                    "remove the {} annotation so certweave injects the certificate again",
                    ann::POD_INJECTED
                ),
            )),
        };
    }
    if our_volume.is_some() {
        return Err(InvalidField::new(
            "spec.volumes",
            format!("a volume named {VOLUME_NAME:?} already exists"),
            "rename that volume: certweave uses this name for the certificate mount",
        ));
    }

    let container_names: Vec<&str> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            object::get_str(c, "name", format_args!("spec.containers[{i}].name"))?.ok_or_else(
                || object::wrong_type(format_args!("spec.containers[{i}].name"), "a string"),
            )
        })
        .collect::<Result<_, _>>()?;
    if containers.is_empty() {
        return Err(object::wrong_type("spec.containers", "a non-empty list"));
    }
    let targets: Vec<usize> = match &request.containers {
        None => (0..containers.len()).collect(),
        Some(wanted) => wanted
            .iter()
            .map(|name| {
                container_names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| {
                        InvalidField::new(
                            ann::POD_CONTAINERS,
                            format!("the Pod has no container named {name:?}"),
                            format!("list some of: {}", container_names.join(", ")),
                        )
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    for &i in &targets {
        check_mount_is_free(&containers[i], i, &request.mount_path)?;
    }
    if let Some(ports) = request.proxy {
        check_proxy_fits(containers, &container_names, ports)?;
    }

    let mut mutated = pod.clone();
    let spec = mutated
        .get_mut("spec")
        .expect("spec was checked to be an object above");
    object::array_mut(spec, "volumes")
        .expect("spec is an object")
        .push(json!({
            "name": VOLUME_NAME,
            "secret": { "secretName": request.secret_name },
        }));
    let mount = json!({
        "name": VOLUME_NAME,
        "mountPath": request.mount_path,
        "readOnly": true,
    });
    let containers = object::array_mut(spec, "containers").expect("spec is an object");
    for &i in &targets {
        object::array_mut(&mut containers[i], "volumeMounts")
            .ok_or_else(|| object::wrong_type(format_args!("spec.containers[{i}]"), "an object"))?
            .push(mount.clone());
    }
    if let Some(ports) = request.proxy {
        containers.push(proxy_container(config, ports, &request.mount_path, mount));
    }
    object::set_metadata_entry(&mut mutated, "annotations", ann::POD_INJECTED, "true");
    object::set_metadata_entry(&mut mutated, "labels", ann::POD_INJECTED, "true");
    Ok(MutationOutcome::mutated(mutated))
}

fn check_mount_is_free(
    container: &Value,
    index: usize,
    mount_path: &str,
) -> Result<(), InvalidField> {
    let path = || format!("spec.containers[{index}].volumeMounts");
    for mount in object::get_array(
        container,
        "volumeMounts",
        format_args!("spec.containers[{index}].volumeMounts"),
    )? {
        let existing = mount.get("mountPath").and_then(Value::as_str).unwrap_or("");
        if existing.trim_end_matches('/') == mount_path {
            return Err(InvalidField::new(
                ann::POD_MOUNT_PATH,
                format!("{} already mounts something at {mount_path:?}", path()),
                format!("set {} to a free directory", ann::POD_MOUNT_PATH),
            ));
        }
        if mount.get("name").and_then(Value::as_str) == Some(VOLUME_NAME) {
            return Err(InvalidField::new(
                path(),
                format!("already mounts a volume named {VOLUME_NAME:?}"),
                "remove that mount: certweave adds it",
            ));
        }
    }
    Ok(())
}

fn check_proxy_fits(
    containers: &[Value],
    names: &[&str],
    ports: ProxyPorts,
) -> Result<(), InvalidField> {
    if names.contains(&PROXY_CONTAINER) {
        return Err(InvalidField::new(
            "spec.containers",
            format!("a container named {PROXY_CONTAINER:?} already exists"),
            format!(
                "rename it, or drop {} if the sidecar is already there",
                ann::POD_TLS_PROXY
            ),
        ));
    }
    for (i, container) in containers.iter().enumerate() {
        for port in object::get_array(
            container,
            "ports",
            format_args!("spec.containers[{i}].ports"),
        )? {
            let used = port.get("containerPort").and_then(Value::as_u64);
            if used == Some(u64::from(ports.listen)) {
                return Err(InvalidField::new(
                    ann::POD_TLS_PROXY,
                    format!(
                        "container {:?} already uses port {}, where the sidecar would listen",
                        names[i], ports.listen
                    ),
                    "pick a free LISTEN port, e.g. \"8443:8080\"",
                ));
            }
            if used == Some(u64::from(PROXY_HEALTH_PORT)) {
                return Err(InvalidField::new(
                    ann::POD_TLS_PROXY,
                    format!(
                        "container {:?} uses port {PROXY_HEALTH_PORT}, the sidecar's health port",
                        names[i]
                    ),
                    "move the application off port 9901, or drop the sidecar and terminate TLS in the application",
                ));
            }
        }
    }
    Ok(())
}

/// The sidecar: least privilege, small footprint, same certificate mount.
///
/// Built from [`PROXY_TEMPLATE`]: cloning a map copies its hash table as it
/// is, where building the container afresh hashed and inserted some forty
/// keys one by one, which was a tenth of the webhook's CPU time per Pod.
fn proxy_container(
    config: &MutationConfig,
    ports: ProxyPorts,
    mount_path: &str,
    mount: Value,
) -> Value {
    let mut container = PROXY_TEMPLATE.clone();
    // Fill in the per-Pod fields in place, by walking the keys rather than
    // looking each one up.
    let mut mount = Some(mount);
    for (key, value) in container.iter_mut() {
        match key.as_str() {
            "image" => *value = Value::String(config.proxy_image.clone()),
            "args" => {
                *value = Value::Array(vec![
                    "proxy".into(),
                    "--listen".into(),
                    format!("0.0.0.0:{}", ports.listen).into(),
                    "--upstream".into(),
                    format!("127.0.0.1:{}", ports.upstream).into(),
                    "--cert-dir".into(),
                    mount_path.into(),
                ])
            }
            "ports" => {
                if let Some(port) = value.pointer_mut("/0/containerPort") {
                    *port = ports.listen.into();
                }
            }
            "volumeMounts" => *value = Value::Array(mount.take().into_iter().collect()),
            _ => {}
        }
    }
    Value::Object(container)
}

/// The sidecar container with every per-Pod field (image, args, port, mount)
/// left as a placeholder for [`proxy_container`] to fill in. The key order is
/// the order the fields are written in the patch and in `certweave inject`'s
/// output.
static PROXY_TEMPLATE: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    let template = json!({
        "name": PROXY_CONTAINER,
        "image": null,
        "args": null,
        "ports": [{ "name": "certweave-tls", "containerPort": null, "protocol": "TCP" }],
        // About 56 KiB per open connection: 128Mi holds ~2,000.
        "resources": {
            "requests": { "cpu": "10m", "memory": "16Mi" },
            "limits": { "memory": "128Mi" },
        },
        "readinessProbe": {
            "httpGet": { "path": "/readyz", "port": PROXY_HEALTH_PORT },
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "httpGet": { "path": "/healthz", "port": PROXY_HEALTH_PORT },
            "periodSeconds": 10,
        },
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "capabilities": { "drop": ["ALL"] },
            "seccompProfile": { "type": "RuntimeDefault" },
        },
        "volumeMounts": null,
    });
    match template {
        Value::Object(map) => map,
        _ => unreachable!("the template is a JSON object"),
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated_pod(annotations: Value) -> Value {
        json!({
            "metadata": { "annotations": annotations },
            "spec": { "containers": [
                { "name": "web", "image": "web:1" },
                { "name": "log", "image": "log:1" },
            ] },
        })
    }

    #[test]
    fn the_sidecar_template_has_every_placeholder_filled() {
        fn nulls(value: &Value, path: String, out: &mut Vec<String>) {
            match value {
                Value::Null => out.push(path),
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| nulls(v, format!("{path}/{i}"), out)),
                Value::Object(map) => map
                    .iter()
                    .for_each(|(k, v)| nulls(v, format!("{path}/{k}"), out)),
                _ => {}
            }
        }
        let ports = ProxyPorts {
            listen: 8443,
            upstream: 8080,
        };
        let mount = json!({ "name": VOLUME_NAME, "mountPath": "/tls", "readOnly": true });
        let container = proxy_container(&MutationConfig::default(), ports, "/tls", mount.clone());
        let mut left = Vec::new();
        nulls(&container, String::new(), &mut left);
        assert!(left.is_empty(), "placeholders left: {left:?}");
        assert_eq!(container["ports"][0]["containerPort"], 8443);
        assert_eq!(container["args"][4], "127.0.0.1:8080");
        assert_eq!(container["volumeMounts"], json!([mount]));
    }

    #[test]
    fn a_container_listed_twice_is_mounted_once() {
        let pod = annotated_pod(json!({
            "certweave.io/issuer": "ca",
            "certweave.io/service": "web",
            "certweave.io/containers": "web, web",
        }));
        let mutated = mutate_pod(&pod, "default", &MutationConfig::default())
            .unwrap()
            .object
            .unwrap();
        let containers = mutated["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers[0]["volumeMounts"].as_array().unwrap().len(), 1);
        assert!(containers[1].get("volumeMounts").is_none());
    }

    #[test]
    fn a_derived_secret_name_follows_the_kubernetes_name_rule() {
        // A 63-character service gives a 67-character Secret name: longer
        // than a DNS label, and still a valid Kubernetes object name.
        let svc = "a".repeat(63);
        let object =
            annotated_pod(json!({ "certweave.io/issuer": "ca", "certweave.io/service": svc }));
        let mutated = mutate_pod(&object, "default", &MutationConfig::default()).unwrap();
        let volume = &mutated.object.unwrap()["spec"]["volumes"][0];
        assert_eq!(volume["secret"]["secretName"], format!("{svc}-tls"));
    }
}
