//! The crate's layers point one way (README, "Layout"): each top-level
//! module may use only the modules of the layers below it, so the engine
//! never learns about Kubernetes and a change at the bottom is the only kind
//! that ripples up. This test reads every `crate::` path in `src/` (code, not
//! comments) and fails on any edge the table below does not allow, naming
//! the file and the edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, lowest first. A module may use every module of a lower layer.
const LAYERS: &[&[&str]] = &[
    // 1: the leaf types, and utilities that know nothing of certificates.
    &["model", "metrics", "tls", "runtime"],
    // 2: certificate mechanics, issuers and the store trait (no Kubernetes).
    &["pki", "store", "issuers"],
    // 3: the scheduler and reconcile loop; beside it the cert-manager API
    //    types and the annotation rules.
    &["engine", "api"],
    // 4: the entry points.
    &[
        "webhook",
        "proxy",
        "controller",
        "local",
        "inject",
        "inspect",
        "issue",
        "renew",
        "check",
        "status",
    ],
    // 5: the command line (the binary crate: `main.rs` and `cli/`), which
    //    turns flags into calls to the entry points.
    &["cli"],
];

/// Edges inside one layer, each with why it is not a cycle waiting to
/// happen. Everything else inside a layer is refused.
const SAME_LAYER: &[(&str, &str, &str)] = &[
    (
        "store",
        "pki",
        "the directory store checks bundles before writing",
    ),
    ("issuers", "pki", "issuers build and check certificates"),
    ("issuers", "store", "ACME account keys and object keys"),
    (
        "controller",
        "webhook",
        "the controller serves the admission webhook in its own process",
    ),
    (
        "local",
        "webhook",
        "`certweave local` serves the admission webhook beside its engine",
    ),
    (
        "inject",
        "webhook",
        "`certweave inject` is the webhook's mutation applied offline",
    ),
    (
        "status",
        "inspect",
        "`certweave status` shows the Secret as `certweave inspect` reads it",
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn allowed(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    match (layer_of(from), layer_of(to)) {
        (Some(a), Some(b)) if b < a => true,
        (Some(a), Some(b)) if a == b => SAME_LAYER.iter().any(|(f, t, _)| *f == from && *t == to),
        _ => false,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/engine/renewal.rs` →
/// `engine`, `src/pki.rs` → `pki`; `None` for `lib.rs` and `main.rs`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

/// The code of a file without its comments (doc links are not uses).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal ("https://...") is rare in
            // `crate::` lines; cutting there only hides text, never adds.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every top-level module named after `crate::`, including each member
/// of a `crate::{a::x, b::{y, z}}` group.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `certweave_crate::` or similar, not ours
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut expect_name = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        expect_name = false;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_name = true,
                    c if expect_name && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if expect_name && !name.is_empty() => {
                        used.insert(std::mem::take(&mut name));
                        expect_name = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                used.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

#[test]
fn every_module_imports_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut unknown = BTreeSet::new();
    let mut violations: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else {
            continue;
        };
        if layer_of(&from).is_none() {
            unknown.insert(from.clone());
            continue;
        }
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for to in used_modules(&code) {
            if to == "self" || to == "super" {
                continue;
            }
            if layer_of(&to).is_none() {
                unknown.insert(to.clone());
            } else if !allowed(&from, &to) {
                violations
                    .entry((from.clone(), to))
                    .or_default()
                    .push(file.strip_prefix(&src).unwrap().display().to_string());
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from the LAYERS table of tests/layers.rs (and README's layout): {unknown:?}"
    );
    let report: Vec<String> = violations
        .iter()
        .map(|((from, to), files)| format!("{from} -> {to} in {}", files.join(", ")))
        .collect();
    assert!(
        report.is_empty(),
        "imports against the layer order (move the shared piece down, or pass it in):\n{}",
        report.join("\n")
    );
}

#[test]
fn the_scanner_sees_grouped_and_nested_uses() {
    let code = "use crate::{engine::x, api::{a, b}, model};\nlet y = crate::pki::f();";
    let used = used_modules(code);
    assert_eq!(
        used,
        ["api", "engine", "model", "pki"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert!(!allowed("engine", "api"), "siblings of layer 3 stay apart");
    assert!(
        !allowed("pki", "issuers"),
        "same-layer edges are listed one way"
    );
    assert!(allowed("controller", "engine"));
    assert!(!allowed("model", "pki"));
}
