//! Pod mutation: mount the certificate Secret, optionally inject the TLS
//! sidecar, and mark the Pod as done.
//!
//! The same code mutates Pods at admission and pod templates in
//! `certweave inject`; [`PodCertificateRequest`] is also what the controller
//! reads back from an injected Pod to create its Certificate.

use std::sync::LazyLock;

use serde_json::{json, Value};

use super::object::{self, StringMap};
use super::patch::{write_json_str, AddPatch, Segment};
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
///
/// The mutated object is [`pod_patch`] applied to `pod`, so the object
/// `certweave inject` prints and the patch the webhook returns cannot
/// disagree.
pub fn mutate_pod(pod: &Value, namespace: &str, config: &MutationConfig) -> MutationResult {
    let Some(patch) = pod_patch(pod, namespace, config)? else {
        return Ok(MutationOutcome::unchanged());
    };
    // Both steps only fail if `pod_patch` wrote a bad patch, which the tests
    // rule out; a client still gets an answer rather than a panic.
    let unpatchable = |problem: String| {
        InvalidField::new(
            "spec",
            format!("cannot take the certificate mount: {problem}"),
            "send a well-formed Kubernetes object",
        )
    };
    let ops: json_patch::Patch =
        serde_json::from_slice(&patch).map_err(|e| unpatchable(e.to_string()))?;
    let mut mutated = pod.clone();
    json_patch::patch(&mut mutated, &ops).map_err(|e| unpatchable(e.to_string()))?;
    Ok(MutationOutcome::mutated(mutated))
}

/// The mutation of [`mutate_pod`] as a JSON Patch against `pod`, or `None`
/// when the Pod is not ours or already injected.
///
/// The Pod mutation only adds: a volume, mounts, perhaps a container, two
/// markers. So the webhook writes those operations straight from a
/// read-only look at the Pod, rather than copying the Pod, editing the copy
/// and diffing the two, and the sidecar goes out as JSON text without ever
/// being built as a [`Value`]. On the webhook that is most of a Pod
/// review's work saved (see `benches/admission.rs`).
pub fn pod_patch(
    pod: &Value,
    namespace: &str,
    config: &MutationConfig,
) -> Result<Option<Vec<u8>>, InvalidField> {
    let annotations = StringMap::annotations(pod)?;
    if !annotations.contains_any(&[ann::POD_ISSUER, ann::POD_CLUSTER_ISSUER]) {
        return Ok(None);
    }
    let Some(request) = PodCertificateRequest::from_pod(pod, namespace)? else {
        return Ok(None);
    };
    let spec = object::field(pod, "spec")
        .filter(|s| s.is_object())
        .ok_or_else(|| object::wrong_type("spec", "an object with containers"))?;
    let volumes = object::get_array(spec, "volumes", "spec.volumes")?;
    let containers = object::get_array(spec, "containers", "spec.containers")?;
    let our_volume = volumes
        .iter()
        .find(|v| object::field(v, "name").and_then(Value::as_str) == Some(VOLUME_NAME));

    if annotations.get(ann::POD_INJECTED)? == Some("true") {
        return match our_volume {
            Some(_) => Ok(None),
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

    // Every container has a string name, so every container is an object.
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

    use Segment::{Index, Key};
    let mut patch = AddPatch::new();
    append(
        &mut patch,
        object::field(spec, "volumes"),
        &[Key("spec"), Key("volumes")],
        |out| write_volume(out, &request.secret_name),
    );
    for &i in &targets {
        append(
            &mut patch,
            object::field(&containers[i], "volumeMounts"),
            &[
                Key("spec"),
                Key("containers"),
                Index(i),
                Key("volumeMounts"),
            ],
            |out| write_mount(out, &request.mount_path),
        );
    }
    if let Some(ports) = request.proxy {
        patch.add(
            &[Key("spec"), Key("containers")],
            Index(containers.len()),
            |out| write_proxy_container(out, config, ports, &request.mount_path),
        );
    }
    mark_injected(&mut patch, pod);
    Ok(patch.finish())
}

/// Appends the item `write_item` writes to the list at `path`, or creates
/// the list with it when `existing` (the list's current value) is absent or
/// null. Callers have checked that a present `existing` is a list.
fn append(
    patch: &mut AddPatch,
    existing: Option<&Value>,
    path: &[Segment<'_>],
    write_item: impl FnOnce(&mut Vec<u8>),
) {
    match existing {
        Some(Value::Array(items)) => patch.add(path, Segment::Index(items.len()), write_item),
        _ => {
            let (last, parent) = path.split_last().expect("a list path is never empty");
            patch.add(parent, *last, |out| {
                out.push(b'[');
                write_item(out);
                out.push(b']');
            })
        }
    }
}

/// Sets `certweave.io/injected: "true"` in the annotations and labels,
/// creating either map (or `metadata` itself) where missing; a map that is
/// null or not a map is replaced.
fn mark_injected(patch: &mut AddPatch, pod: &Value) {
    use Segment::Key;
    const TRUE: &[u8] = b"\"true\"";
    let metadata = match object::field(pod, "metadata") {
        Some(Value::Object(metadata)) => Some(metadata),
        _ => {
            patch.add(&[], Key("metadata"), |out| out.extend_from_slice(b"{}"));
            None
        }
    };
    for map in ["annotations", "labels"] {
        match metadata.and_then(|m| object::lookup(m, map)) {
            Some(Value::Object(_)) => patch.add(
                &[Key("metadata"), Key(map)],
                Key(ann::POD_INJECTED),
                |out| out.extend_from_slice(TRUE),
            ),
            _ => patch.add(&[Key("metadata")], Key(map), |out| {
                out.push(b'{');
                write_json_str(out, ann::POD_INJECTED);
                out.push(b':');
                out.extend_from_slice(TRUE);
                out.push(b'}');
            }),
        }
    }
}

/// The certificate volume: the Secret, by name.
fn write_volume(out: &mut Vec<u8>, secret_name: &str) {
    out.extend_from_slice(b"{\"name\":");
    write_json_str(out, VOLUME_NAME);
    out.extend_from_slice(b",\"secret\":{\"secretName\":");
    write_json_str(out, secret_name);
    out.extend_from_slice(b"}}");
}

/// The read-only mount of the certificate volume, in the app containers
/// and the sidecar alike.
fn write_mount(out: &mut Vec<u8>, mount_path: &str) {
    out.extend_from_slice(b"{\"name\":");
    write_json_str(out, VOLUME_NAME);
    out.extend_from_slice(b",\"mountPath\":");
    write_json_str(out, mount_path);
    out.extend_from_slice(b",\"readOnly\":true}");
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
        let existing = object::field(mount, "mountPath")
            .and_then(Value::as_str)
            .unwrap_or("");
        if existing.trim_end_matches('/') == mount_path {
            return Err(InvalidField::new(
                ann::POD_MOUNT_PATH,
                format!("{} already mounts something at {mount_path:?}", path()),
                format!("set {} to a free directory", ann::POD_MOUNT_PATH),
            ));
        }
        if object::field(mount, "name").and_then(Value::as_str) == Some(VOLUME_NAME) {
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
            let used = object::field(port, "containerPort").and_then(Value::as_u64);
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
/// Written from [`PROXY_JSON`], the template's JSON text cut at its per-Pod
/// fields: most of a Pod's patch is this container, and copying its text
/// costs a fraction of building, encoding and dropping it as a [`Value`].
fn write_proxy_container(
    out: &mut Vec<u8>,
    config: &MutationConfig,
    ports: ProxyPorts,
    mount_path: &str,
) {
    let port = |out: &mut Vec<u8>, n: u16| {
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    };
    let [name_to_image, image_to_args, args_to_port, port_to_mounts, rest] = &*PROXY_JSON;
    out.extend_from_slice(name_to_image.as_bytes());
    write_json_str(out, &config.proxy_image);
    out.extend_from_slice(image_to_args.as_bytes());
    out.extend_from_slice(b"[\"proxy\",\"--listen\",\"0.0.0.0:");
    port(out, ports.listen);
    out.extend_from_slice(b"\",\"--upstream\",\"127.0.0.1:");
    port(out, ports.upstream);
    out.extend_from_slice(b"\",\"--cert-dir\",");
    write_json_str(out, mount_path);
    out.push(b']');
    out.extend_from_slice(args_to_port.as_bytes());
    port(out, ports.listen);
    out.extend_from_slice(port_to_mounts.as_bytes());
    out.push(b'[');
    write_mount(out, mount_path);
    out.push(b']');
    out.extend_from_slice(rest.as_bytes());
}

/// The sidecar container's JSON with the per-Pod fields cut out: the text
/// before the image, between image and args, between args and the
/// container port, between the port and the mounts, and after the mounts.
/// The key order is the order of the fields in the patch and in
/// `certweave inject`'s output.
static PROXY_JSON: LazyLock<[String; 5]> = LazyLock::new(|| {
    // Each per-Pod field is a `null` here, and nothing else is.
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
    let parts: Vec<String> = template
        .to_string()
        .split("null")
        .map(str::to_owned)
        .collect();
    parts
        .try_into()
        .expect("the sidecar template has exactly four placeholders")
});

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::DEFAULT_PROXY_IMAGE;

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
        let mut json = Vec::new();
        write_proxy_container(&mut json, &MutationConfig::default(), ports, "/tls");
        let container: Value = serde_json::from_slice(&json).expect("the sidecar is JSON");
        let mut mount = Vec::new();
        write_mount(&mut mount, "/tls");
        let mount: Value = serde_json::from_slice(&mount).expect("the mount is JSON");
        assert_eq!(
            mount,
            json!({ "name": VOLUME_NAME, "mountPath": "/tls", "readOnly": true })
        );
        let mut left = Vec::new();
        nulls(&container, String::new(), &mut left);
        assert!(left.is_empty(), "placeholders left: {left:?}");
        assert_eq!(container["ports"][0]["containerPort"], 8443);
        assert_eq!(container["image"], DEFAULT_PROXY_IMAGE);
        assert_eq!(
            container["args"],
            json!([
                "proxy",
                "--listen",
                "0.0.0.0:8443",
                "--upstream",
                "127.0.0.1:8080",
                "--cert-dir",
                "/tls"
            ])
        );
        assert_eq!(container["volumeMounts"], json!([mount]));
    }

    #[test]
    fn the_patch_creates_missing_lists_and_maps_and_appends_to_present_ones() {
        let config = MutationConfig::default();
        let mount = json!({ "name": VOLUME_NAME, "mountPath": "/tls", "readOnly": true });
        let volume = json!({ "name": VOLUME_NAME, "secret": { "secretName": "web-tls" } });
        let injected = json!({ ann::POD_INJECTED: "true" });
        // Absent, null, and (for labels, unread once the service is named)
        // of the wrong type: each is replaced by a fresh list or map.
        for missing in [None, Some(Value::Null), Some(json!("x"))] {
            let mut pod = json!({
                "metadata": { "annotations": {
                    "certweave.io/issuer": "ca",
                    "certweave.io/service": "web",
                    "certweave.io/mount-path": "/tls",
                } },
                "spec": { "containers": [{ "name": "web" }] },
            });
            if let Some(value) = &missing {
                pod["metadata"]["labels"] = value.clone();
                if value.is_null() {
                    pod["spec"]["volumes"] = Value::Null;
                    pod["spec"]["containers"][0]["volumeMounts"] = Value::Null;
                }
            }
            let mutated = mutate_pod(&pod, "ns", &config).unwrap().object.unwrap();
            assert_eq!(mutated["metadata"]["labels"], injected, "{missing:?}");
            assert_eq!(
                mutated["metadata"]["annotations"][ann::POD_INJECTED],
                "true"
            );
            assert_eq!(mutated["spec"]["volumes"], json!([volume]), "{missing:?}");
            assert_eq!(
                mutated["spec"]["containers"][0]["volumeMounts"],
                json!([mount]),
                "{missing:?}"
            );
        }
        // Present lists and maps keep what they have, in order.
        let pod = json!({
            "metadata": {
                "labels": { "app": "web" },
                "annotations": { "certweave.io/issuer": "ca", "certweave.io/mount-path": "/tls" },
            },
            "spec": {
                "volumes": [{ "name": "data" }],
                "containers": [{ "name": "web", "volumeMounts": [{ "name": "data", "mountPath": "/d" }] }],
            },
        });
        let mutated = mutate_pod(&pod, "ns", &config).unwrap().object.unwrap();
        assert_eq!(
            mutated["metadata"]["labels"],
            json!({ "app": "web", ann::POD_INJECTED: "true" })
        );
        assert_eq!(
            mutated["spec"]["volumes"],
            json!([{ "name": "data" }, volume])
        );
        assert_eq!(
            mutated["spec"]["containers"][0]["volumeMounts"],
            json!([{ "name": "data", "mountPath": "/d" }, mount])
        );
        // Injected once, left alone after.
        assert_eq!(
            mutate_pod(&mutated, "ns", &config),
            Ok(MutationOutcome::unchanged())
        );
    }

    #[test]
    fn the_sidecar_follows_the_app_containers_and_escapes_what_it_is_given() {
        let config = MutationConfig {
            proxy_image: "registry.local/\"odd\"\\image:1".into(),
            ..MutationConfig::default()
        };
        let mut pod = annotated_pod(json!({
            "certweave.io/issuer": "ca",
            "certweave.io/service": "web",
            "certweave.io/tls-proxy": "9443:80",
            "certweave.io/mount-path": "/etc/t\u{e9}ls \"x\"",
        }));
        pod["spec"]["containers"][1]["volumeMounts"] = json!([]);
        let mutated = mutate_pod(&pod, "ns", &config).unwrap().object.unwrap();
        let containers = mutated["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 3);
        let sidecar = &containers[2];
        assert_eq!(sidecar["name"], PROXY_CONTAINER);
        assert_eq!(sidecar["image"], config.proxy_image.as_str());
        assert_eq!(sidecar["args"][2], "0.0.0.0:9443");
        assert_eq!(sidecar["args"][4], "127.0.0.1:80");
        assert_eq!(sidecar["args"][6], "/etc/t\u{e9}ls \"x\"");
        assert_eq!(sidecar["ports"][0]["containerPort"], 9443);
        assert_eq!(sidecar["volumeMounts"], containers[0]["volumeMounts"]);
        assert_eq!(containers[1]["volumeMounts"], containers[0]["volumeMounts"]);
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
