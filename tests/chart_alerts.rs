//! The alerts and dashboard shipped with the Helm chart query only metrics
//! the binary really exports, with labels and label values it really sets.
//!
//! Reads `charts/certweave/files/prometheus-rules.yaml` (embedded verbatim
//! in the chart's PrometheusRule) and `charts/certweave/files/dashboard.json`,
//! extracts every metric selector from the PromQL, and compares it with the
//! text exposition of `ControllerMetrics` and `WebhookMetrics` (what
//! `/metrics` serves), after touching every labelled series so that the
//! vectors show up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use certweave::metrics::{ControllerMetrics, WebhookMetrics};

/// Series name → label name → values seen.
type Exported = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn exposition() -> String {
    let controller = ControllerMetrics::new();
    let soon = SystemTime::now() + Duration::from_secs(3600);
    for (name, ready) in [("a", Some(true)), ("b", Some(false)), ("c", None)] {
        controller.observe_certificate(
            [name, "default", "le", "ClusterIssuer", "cert-manager.io"],
            ready,
            Some(soon),
            Some(soon),
        );
    }
    for result in ["success", "failure"] {
        controller
            .issuance
            .with_label_values(&["ACME", result])
            .inc();
    }
    controller
        .issuance_duration
        .with_label_values(&["ACME"])
        .observe(1.5);
    controller.queue_depth.set(3);
    controller.leader.set(1);

    let webhook = WebhookMetrics::new();
    for result in [
        "patched",
        "allowed",
        "denied",
        "malformed",
        "too_large",
        "timeout",
    ] {
        webhook
            .requests
            .with_label_values(&["Ingress", "CREATE", result])
            .inc();
    }
    webhook
        .duration
        .with_label_values(&["Ingress"])
        .observe(0.000_2);
    webhook.tls_reload_errors.inc();

    format!("{}{}", controller.render(), webhook.render())
}

/// Parses the Prometheus text format: every sample's series name, labels
/// and values; and checks that every family announced by `# TYPE` has
/// samples (so no metric is missed for lack of a touched label set).
fn parse(text: &str) -> Exported {
    let mut out = Exported::new();
    let mut families = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().unwrap().to_owned();
            families.insert(name, parts.next().unwrap().to_owned());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, labels) = match line.find('{') {
            Some(open) => {
                let close = line.rfind('}').unwrap();
                (&line[..open], &line[open + 1..close])
            }
            None => (line.split_whitespace().next().unwrap(), ""),
        };
        let entry = out.entry(series.to_owned()).or_default();
        for pair in split_labels(labels) {
            let (k, v) = pair.split_once('=').unwrap();
            entry
                .entry(k.to_owned())
                .or_default()
                .insert(v.trim_matches('"').to_owned());
        }
    }
    for (family, kind) in &families {
        let series: Vec<String> = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{family}{s}"))
                .collect(),
            _ => vec![family.clone()],
        };
        for s in series {
            assert!(
                out.contains_key(&s),
                "{s} is declared but has no samples: touch it in exposition()"
            );
        }
    }
    out
}

fn split_labels(labels: &str) -> Vec<&str> {
    let (mut out, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in labels.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&labels[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        out.push(&labels[start..]);
    }
    out
}

/// A metric selector found in a PromQL expression.
#[derive(Debug, PartialEq)]
struct Selector {
    metric: String,
    /// (label, operator, value)
    matchers: Vec<(String, String, String)>,
}

const KEYWORDS: [&str; 10] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
];

/// Extracts the metric selectors of a PromQL expression: identifiers that
/// are not functions, aggregations, keywords, label lists or numbers.
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out: Vec<Selector> = Vec::new();
    let mut i = 0;
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let next_non_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let mut last_was_metric = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            last_was_metric = false;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '{' {
            let close = (i..chars.len())
                .find(|&j| chars[j] == '}')
                .expect("closed {");
            let body: String = chars[i + 1..close].iter().collect();
            let matchers = parse_matchers(&body);
            if last_was_metric {
                out.last_mut().unwrap().matchers = matchers;
            } else {
                panic!("a selector without a metric name in {expr:?}: {{{body}}}");
            }
            i = close + 1;
            last_was_metric = false;
        } else if c.is_ascii_digit()
            || (c == '.' && i + 1 < chars.len() && chars[i + 1].is_ascii_digit())
        {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            last_was_metric = false;
        } else if ident_start(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let after = next_non_space(i);
            let rest: String = chars[after..].iter().collect();
            // `sum by (x) (…)`: an aggregation with its grouping first.
            let grouping = ["by", "without"].iter().any(|k| {
                rest.strip_prefix(k)
                    .is_some_and(|r| r.trim_start().starts_with('('))
            });
            let followed_by_paren = (after < chars.len() && chars[after] == '(') || grouping;
            if KEYWORDS.contains(&word.as_str()) {
                if followed_by_paren && !matches!(word.as_str(), "and" | "or" | "unless" | "bool") {
                    // A label list: by (a, b), on (x), group_left (y).
                    i = (after..chars.len()).find(|&j| chars[j] == ')').unwrap() + 1;
                }
                last_was_metric = false;
            } else if followed_by_paren {
                last_was_metric = false; // a function or an aggregation
            } else {
                out.push(Selector {
                    metric: word,
                    matchers: Vec::new(),
                });
                last_was_metric = true;
            }
        } else {
            if !c.is_whitespace() {
                last_was_metric = false;
            }
            i += 1;
        }
    }
    out
}

fn parse_matchers(body: &str) -> Vec<(String, String, String)> {
    split_labels(body)
        .into_iter()
        .filter(|m| !m.trim().is_empty())
        .map(|m| {
            let m = m.trim();
            let op_at = m.find(['=', '!']).expect("a matcher operator");
            let label = m[..op_at].trim().to_owned();
            let rest = &m[op_at..];
            let op = ["=~", "!~", "!=", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .unwrap();
            let value = rest[op.len()..].trim().trim_matches('"').to_owned();
            (label, op.to_owned(), value)
        })
        .collect()
}

/// Problems with one expression against the exported series.
fn problems(expr: &str, exported: &Exported) -> Vec<String> {
    let mut out = Vec::new();
    let found = selectors(expr);
    if found.is_empty() {
        out.push(format!("no metric at all in {expr:?}"));
    }
    for sel in found {
        let Some(labels) = exported.get(&sel.metric) else {
            out.push(format!("{} is not exported", sel.metric));
            continue;
        };
        for (label, op, value) in &sel.matchers {
            if label == "__name__" {
                continue;
            }
            let Some(values) = labels.get(label) else {
                out.push(format!("{} has no label {label}", sel.metric));
                continue;
            };
            // Literal values (and each alternative of a simple regex) must
            // be ones the binary sets.
            let literals: Vec<&str> = match op.as_str() {
                "=" | "!=" => vec![value.as_str()],
                _ if value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '|') =>
                {
                    value.split('|').collect()
                }
                _ => vec![],
            };
            for v in literals {
                if !values.contains(v) {
                    out.push(format!(
                        "{}{{{label}{op}\"{value}\"}}: {label} is never {v:?} (values: {values:?})",
                        sel.metric
                    ));
                }
            }
        }
    }
    out
}

fn chart_file(name: &str) -> String {
    let path = format!(
        "{}/charts/certweave/files/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn alert_exprs() -> Vec<(String, String)> {
    let rules: serde_json::Value =
        serde_yaml_ng::from_str(&chart_file("prometheus-rules.yaml")).expect("YAML rule file");
    let mut out = Vec::new();
    for group in rules["groups"].as_array().expect("groups") {
        for rule in group["rules"].as_array().expect("rules") {
            out.push((
                rule["alert"].as_str().expect("alert name").to_owned(),
                rule["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    out
}

fn dashboard_exprs() -> Vec<(String, String)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&chart_file("dashboard.json")).expect("dashboard JSON");
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            out.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

#[test]
fn alert_expressions_use_exported_metrics_labels_and_values() {
    let exported = parse(&exposition());
    let exprs = alert_exprs();
    assert!(exprs.len() >= 5, "the alerts are there: {exprs:?}");
    let mut all = Vec::new();
    for (alert, expr) in &exprs {
        for p in problems(expr, &exported) {
            all.push(format!("{alert}: {p}"));
        }
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}

#[test]
fn dashboard_expressions_use_exported_metrics_labels_and_values() {
    let exported = parse(&exposition());
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 10, "the panels are there");
    let mut all = Vec::new();
    for (panel, expr) in &exprs {
        for p in problems(expr, &exported) {
            all.push(format!("{panel}: {p}"));
        }
    }
    assert!(all.is_empty(), "{}", all.join("\n"));
}

#[test]
fn every_exported_metric_is_alerted_on_or_charted() {
    let exported = parse(&exposition());
    let used: BTreeSet<String> = alert_exprs()
        .into_iter()
        .chain(dashboard_exprs())
        .flat_map(|(_, e)| selectors(&e).into_iter().map(|s| s.metric))
        .collect();
    let unused: Vec<&String> = exported
        .keys()
        .filter(|m| !m.ends_with("_sum") && !m.ends_with("_count"))
        .filter(|m| !used.contains(*m) && !used.contains(&format!("{m}_bucket")))
        .collect();
    assert!(
        unused.is_empty(),
        "not on the dashboard nor in an alert: {unused:?}"
    );
}

#[test]
fn the_checker_catches_unknown_names_labels_and_values() {
    let exported = parse(&exposition());
    assert_eq!(
        selectors(
            r#"sum by (kind) (rate(certweave_admission_requests_total{result=~"malformed|timeout"}[5m])) > 0.5"#
        ),
        vec![Selector {
            metric: "certweave_admission_requests_total".into(),
            matchers: vec![("result".into(), "=~".into(), "malformed|timeout".into())],
        }]
    );
    assert!(
        problems("increase(certweave_issuance_totl[1h]) > 0", &exported)[0]
            .contains("not exported")
    );
    assert!(
        problems(r#"certweave_issuance_total{reason="x"}"#, &exported)[0]
            .contains("no label reason")
    );
    assert!(
        problems(r#"certweave_issuance_total{result="failed"}"#, &exported)[0]
            .contains("never \"failed\"")
    );
    assert!(problems(
        r#"certweave_admission_requests_total{result=~"malformed|error"}"#,
        &exported
    )[0]
    .contains("never \"error\""));
    assert!(problems("time() - 3600", &exported)[0].contains("no metric"));
    assert!(problems("sum by (kind) (rate(certweave_leader[5m]))", &exported).is_empty());
    assert!(problems(
        "histogram_quantile(0.99, sum by (le) (rate(certweave_admission_duration_seconds_bucket[5m])))",
        &exported
    )
    .is_empty());
}
