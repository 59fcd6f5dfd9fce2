//! The Pod mutation: mount the certificate Secret the Pod asks for (see
//! [`crate::api::wanted::pod`]), optionally inject the TLS sidecar, and
//! mark the Pod as done. The same code mutates Pods at admission and pod
//! templates in `certweave inject`.

use std::collections::HashMap;

use serde_json::Value;

use super::patch::{self, write_json_str, PatchWriter, Segment};
use super::sidecar::{check_proxy_fits, write_proxy_container};
pub use super::sidecar::{PROXY_CONTAINER, PROXY_HEALTH_PORT};
use super::{MutationConfig, MutationOutcome, MutationResult};
use crate::api::annotations as ann;
use crate::api::object::{self, StringMap};
use crate::api::wanted::pod::TRIGGERS;
pub use crate::api::wanted::pod::{PodCertificateRequest, ProxyMode, ProxyPorts};
use crate::api::InvalidField;

/// Name of the Pod volume holding the certificate Secret.
pub const VOLUME_NAME: &str = "certweave-tls";

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
    let mutated = patch::apply_json(pod, &patch).map_err(|problem| {
        InvalidField::new(
            "spec",
            format!("cannot take the certificate mount: {problem}"),
            "send a well-formed Kubernetes object",
        )
    })?;
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
    if !annotations.contains_any(&TRIGGERS) {
        return Ok(None);
    }
    let Some(request) =
        PodCertificateRequest::read(&annotations, || StringMap::labels(pod), namespace)?
    else {
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
        Some(wanted) => {
            // Both lists come from the request: look names up in a map, so
            // the cost stays linear in their lengths. A name used twice
            // stands for its first container.
            let mut index: HashMap<&str, usize> = HashMap::with_capacity(container_names.len());
            for (i, name) in container_names.iter().enumerate() {
                index.entry(name).or_insert(i);
            }
            wanted
                .iter()
                .map(|name| {
                    index.get(name.as_str()).copied().ok_or_else(|| {
                        InvalidField::new(
                            ann::POD_CONTAINERS,
                            format!("the Pod has no container named {name:?}"),
                            format!("list some of: {}", container_names.join(", ")),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        }
    };
    for &i in &targets {
        check_mount_is_free(&containers[i], i, &request.mount_path)?;
    }
    if let Some(ports) = request.proxy {
        check_proxy_fits(containers, &container_names, ports)?;
    }

    use Segment::{Index, Key};
    let mut patch = PatchWriter::new();
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
    patch: &mut PatchWriter,
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
fn mark_injected(patch: &mut PatchWriter, pod: &Value) {
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
pub(super) fn write_mount(out: &mut Vec<u8>, mount_path: &str) {
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

#[cfg(test)]
mod tests;
