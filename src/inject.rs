//! `certweave inject`: the webhook's mutations applied offline to a YAML
//! stream, like `linkerd inject`.
//!
//! Documents that need no change are copied through byte for byte (comments
//! and formatting kept); mutated documents are re-serialised. Pods and
//! Ingresses go through exactly the functions the webhook runs. Pod templates
//! of workloads are mutated as Pods; since a template has no namespace of its
//! own, the workload's `metadata.namespace` is used, else the
//! `default_namespace` option (`default` unless told otherwise).

use serde_json::Value;

use crate::api::wanted::workload::pod_template;
use crate::api::InvalidField;
use crate::webhook::{gateway, ingress, pod, MutationConfig, MutationOutcome};

/// Settings for [`inject_stream`].
#[derive(Debug, Clone)]
pub struct InjectOptions {
    pub mutation: MutationConfig,
    /// Namespace assumed for documents without `metadata.namespace`; it only
    /// affects the default Pod DNS names (`<svc>.<ns>.svc`).
    pub default_namespace: String,
}

impl Default for InjectOptions {
    fn default() -> Self {
        Self {
            mutation: MutationConfig::default(),
            default_namespace: "default".into(),
        }
    }
}

/// Why a stream could not be injected. Nothing is printed in that case, so a
/// pipe into `kubectl apply` never applies half a stream.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("document {index}: not valid YAML: {source}")]
    Yaml {
        index: usize,
        source: serde_yaml_ng::Error,
    },
    #[error("document {index} ({object}): {source}")]
    Invalid {
        index: usize,
        object: String,
        source: InvalidField,
    },
}

/// The result of injecting a stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Injected {
    /// The output stream.
    pub output: String,
    /// Non-blocking messages, prefixed with the document they concern.
    pub warnings: Vec<String>,
    /// How many documents were changed.
    pub mutated: usize,
}

/// Applies the webhook mutations to every document of a YAML stream.
pub fn inject_stream(input: &str, options: &InjectOptions) -> Result<Injected, InjectError> {
    let mut out = Injected::default();
    for (i, segment) in split_documents(input).into_iter().enumerate() {
        let index = i + 1;
        out.output.push_str(segment.separator);
        let parsed: Option<Value> = if is_blank(segment.body) {
            None
        } else {
            serde_yaml_ng::from_str(segment.body)
                .map_err(|source| InjectError::Yaml { index, source })?
        };
        let Some(document) = parsed else {
            out.output.push_str(segment.body);
            continue;
        };
        let outcome =
            mutate_document(&document, options).map_err(|source| InjectError::Invalid {
                index,
                object: describe(&document),
                source,
            })?;
        out.warnings.extend(
            outcome
                .warnings
                .iter()
                .map(|w| format!("document {index} ({}): {w}", describe(&document))),
        );
        match outcome.object {
            Some(mutated) if mutated != document => {
                out.mutated += 1;
                out.output.push_str(leading_comments(segment.body));
                let yaml = serde_yaml_ng::to_string(&mutated)
                    .expect("a JSON value always serialises to YAML");
                out.output.push_str(&yaml);
            }
            _ => out.output.push_str(segment.body),
        }
    }
    Ok(out)
}

/// Mutates one document: a Pod, an Ingress, a Gateway, a workload's pod template, or
/// each item of a `List`.
fn mutate_document(
    document: &Value,
    options: &InjectOptions,
) -> Result<MutationOutcome, InvalidField> {
    let api_version = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = document.get("kind").and_then(Value::as_str).unwrap_or("");
    let namespace = document
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or(&options.default_namespace);
    match (api_version, kind) {
        ("v1", "Pod") => pod::mutate_pod(document, namespace, &options.mutation),
        ("networking.k8s.io/v1", "Ingress") => ingress::mutate_ingress(document, &options.mutation),
        ("gateway.networking.k8s.io/v1", "Gateway" | "ListenerSet") => {
            gateway::mutate_gateway(document, namespace)
        }
        ("v1", "List") => {
            let Some(items) = document.get("items").and_then(Value::as_array) else {
                return Ok(MutationOutcome::unchanged());
            };
            let mut mutated = document.clone();
            let mut warnings = Vec::new();
            let mut changed = false;
            for (i, item) in items.iter().enumerate() {
                let outcome = mutate_document(item, options)
                    .map_err(|e| within(&format!("items[{i}]"), e))?;
                warnings.extend(outcome.warnings);
                if let Some(new_item) = outcome.object {
                    mutated["items"][i] = new_item;
                    changed = true;
                }
            }
            Ok(MutationOutcome {
                object: changed.then_some(mutated),
                warnings,
            })
        }
        _ => {
            let Some((pointer, template)) = pod_template(document, api_version, kind) else {
                return Ok(MutationOutcome::unchanged());
            };
            let location = pointer.trim_start_matches('/').replace('/', ".");
            let outcome = pod::mutate_pod(template, namespace, &options.mutation)
                .map_err(|e| within(&location, e))?;
            Ok(match outcome.object {
                Some(new_template) => {
                    let mut mutated = document.clone();
                    *mutated
                        .pointer_mut(pointer)
                        .expect("pointer resolved above") = new_template;
                    MutationOutcome {
                        object: Some(mutated),
                        warnings: outcome.warnings,
                    }
                }
                None => outcome,
            })
        }
    }
}

/// Prefixes a field path with where the pod template sits in the document.
fn within(location: &str, mut e: InvalidField) -> InvalidField {
    if !e.field.contains('/') {
        e.field = format!("{location}.{}", e.field);
    } else {
        e.problem = format!("{} (in {location})", e.problem);
    }
    e
}

fn describe(document: &Value) -> String {
    let kind = document.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = document
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    format!("{kind} {name}")
}

/// The comment and blank lines that open a document, kept when the rest of
/// the document is re-serialised.
fn leading_comments(text: &str) -> &str {
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            break;
        }
        end += line.len();
    }
    &text[..end]
}

fn is_blank(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
}

struct Segment<'a> {
    /// The `---` line (with its newline) that opened this document, or "".
    separator: &'a str,
    body: &'a str,
}

/// Splits a stream at `---` document markers that start a line. Block
/// scalars are indented, so a marker at column 0 always separates documents.
fn split_documents(input: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    let mut separator = "";
    let mut body_start = 0;
    let mut offset = 0;
    for line in input.split_inclusive('\n') {
        let is_marker =
            line.starts_with("---") && line[3..].chars().next().is_none_or(|c| c.is_whitespace());
        if is_marker {
            segments.push(Segment {
                separator,
                body: &input[body_start..offset],
            });
            separator = line;
            body_start = offset + line.len();
        }
        offset += line.len();
    }
    segments.push(Segment {
        separator,
        body: &input[body_start..],
    });
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_keeps_untouched_documents_verbatim() {
        let input = "# leading comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n# another\nkind: Service\napiVersion: v1\nmetadata:\n  name:   b\n---\n";
        let out = inject_stream(input, &InjectOptions::default()).unwrap();
        assert_eq!(out.output, input);
        assert_eq!(out.mutated, 0);
    }

    #[test]
    fn invalid_yaml_names_the_document() {
        let input = "apiVersion: v1\nkind: Pod\n---\nfoo: [unclosed\n";
        let err = inject_stream(input, &InjectOptions::default()).unwrap_err();
        assert!(err.to_string().starts_with("document 2:"), "{err}");
    }
}
