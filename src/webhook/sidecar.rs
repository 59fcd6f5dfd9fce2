//! The TLS sidecar injected by `certweave.io/tls-proxy`: the container
//! itself, written as JSON text, and the checks that it fits into the Pod.

use std::sync::LazyLock;

use serde_json::{json, Value};

use super::patch::write_json_str;
use super::pod::write_mount;
use super::MutationConfig;
use crate::api::annotations as ann;
use crate::api::object;
use crate::api::wanted::pod::{ProxyMode, ProxyPorts};
use crate::api::InvalidField;

/// Name of the injected sidecar container.
pub const PROXY_CONTAINER: &str = "certweave-proxy";
/// The sidecar's plain health port (`certweave proxy --health-addr`'s
/// default), probed by the kubelet.
pub const PROXY_HEALTH_PORT: u16 = 9901;

/// Refuses a sidecar that would clash with the Pod: a container already
/// named like it, or an app container on its listen or health port.
pub(super) fn check_proxy_fits(
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
pub(super) fn write_proxy_container(
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
    if ports.mode == ProxyMode::Tcp {
        out.extend_from_slice(b",\"--mode\",\"tcp\"");
    }
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
    use crate::webhook::pod::VOLUME_NAME;
    use crate::webhook::DEFAULT_PROXY_IMAGE;

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
            mode: ProxyMode::Http,
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
    fn a_tcp_sidecar_is_told_its_mode() {
        let ports = ProxyPorts::parse("5433:5432/tcp").unwrap();
        let mut json = Vec::new();
        write_proxy_container(&mut json, &MutationConfig::default(), ports, "/tls");
        let container: Value = serde_json::from_slice(&json).expect("the sidecar is JSON");
        assert_eq!(
            container["args"],
            json!([
                "proxy",
                "--listen",
                "0.0.0.0:5433",
                "--upstream",
                "127.0.0.1:5432",
                "--cert-dir",
                "/tls",
                "--mode",
                "tcp"
            ])
        );
        assert_eq!(container["ports"][0]["containerPort"], 5433);
        let refused = ProxyPorts::parse("5433:5432/udp").unwrap_err();
        assert!(
            refused.problem.contains("udp") && refused.fix.contains("/tcp"),
            "{refused:?}"
        );
    }
}
