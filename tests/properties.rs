//! Property tests: the annotation parsers against simple reference models, and
//! the Pod and Ingress mutations (directly and through the AdmissionReview
//! handler) over generated objects with valid and invalid annotations.
//!
//! The mutation properties are the webhook contract of DESIGN.md section 5:
//! never panic, the JSON Patch reproduces the mutated object, a second review
//! of the result changes nothing, and only the documented additions happen.

use std::collections::HashSet;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use certweave::api::annotations as ann;
use certweave::api::duration::parse_go_duration;
use certweave::api::names::{check_dns_label, check_dns_name, check_mount_path, check_object_name};
use certweave::api::overrides::CertificateOverrides;
use certweave::api::{InvalidField, IssuerKind, IssuerRef};
use certweave::webhook::admission::review;
use certweave::webhook::ingress::mutate_ingress;
use certweave::webhook::patch;
use certweave::webhook::pod::{mutate_pod, ProxyMode, ProxyPorts, PROXY_CONTAINER, VOLUME_NAME};
use certweave::webhook::{MutationConfig, MutationResult};
#[path = "support/hostile.rs"]
mod hostile;

use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;
use serde_json::{json, Map, Value};

/// 256 cases per property keeps the file to a few seconds in debug builds;
/// `PROPTEST_CASES=20000 cargo test --release --test properties` digs deeper.
fn config() -> ProptestConfig {
    let defaults = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            defaults.cases
        } else {
            256
        },
        // Failures found here are kept as named regression tests instead.
        failure_persistence: None,
        ..defaults
    }
}

// ---------------------------------------------------------------------------
// Reference models of the name rules (RFC 1123 labels, DNS names, mounts).
// ---------------------------------------------------------------------------

fn model_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// Kubernetes' IsDNS1123Subdomain: RFC 1123 labels without their
/// 63-character limit, at most 253 characters in all.
fn model_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn model_dns_name(name: &str) -> bool {
    if name.is_empty() || name.len() > 253 || name.parse::<IpAddr>().is_ok() {
        return false;
    }
    let rest = match name.strip_prefix("*.") {
        Some(rest) if rest.split('.').count() < 2 => return false,
        Some(rest) => rest,
        None => name,
    };
    rest.split('.').all(model_label)
}

// ---------------------------------------------------------------------------
// Strategies for names and strings.
// ---------------------------------------------------------------------------

/// A valid RFC 1123 label, mostly short, sometimes close to the 63 limit.
fn label() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?",
        1 => "[a-z][a-z0-9-]{59,61}[a-z0-9]",
    ]
    .boxed()
}

/// A valid, non-wildcard DNS name that is not an IP address.
fn dns_name() -> BoxedStrategy<String> {
    prop::collection::vec(label(), 1..6)
        .prop_map(|labels| labels.join("."))
        .prop_filter("at most 253 bytes and not an IP address", |n| {
            n.len() <= 253 && n.parse::<IpAddr>().is_err()
        })
        .boxed()
}

/// A valid wildcard DNS name: `*.` over at least two labels.
fn wildcard_name() -> BoxedStrategy<String> {
    prop::collection::vec(label(), 2..5)
        .prop_map(|labels| format!("*.{}", labels.join(".")))
        .prop_filter("at most 253 bytes", |n| n.len() <= 253)
        .boxed()
}

/// Strings near the valid/invalid border of the name rules, plus anything.
fn name_like() -> BoxedStrategy<String> {
    prop_oneof![
        3 => dns_name(),
        1 => wildcard_name(),
        3 => "[a-zA-Z0-9.*_-]{0,24}",
        1 => "[0-9.]{1,15}",
        1 => "[0-9a-f:.]{2,12}",
        1 => (dns_name(), 0usize..64, "[A-Z_.* /-]")
            .prop_map(|(n, at, c)| {
                let at = at.min(n.len());
                format!("{}{c}{}", &n[..at], &n[at..])
            }),
        1 => "[a-z]{250,256}",
        2 => any::<String>(),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Parser properties.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn name_checks_agree_with_the_model(s in name_like()) {
        let dns = check_dns_name("spec.rules[0].host", &s);
        prop_assert_eq!(dns.is_ok(), model_dns_name(&s), "check_dns_name({:?}) = {:?}", s, dns);
        let object = check_object_name("certweave.io/secret-name", &s);
        prop_assert_eq!(object.is_ok(), model_object_name(&s), "check_object_name({:?}) = {:?}", s, object);
        let label = check_dns_label("certweave.io/service", &s);
        prop_assert_eq!(label.is_ok(), model_label(&s), "check_dns_label({:?}) = {:?}", s, label);

        for (result, field) in [
            (dns, "spec.rules[0].host"),
            (object, "certweave.io/secret-name"),
            (label, "certweave.io/service"),
        ] {
            if let Err(e) = result {
                prop_assert_eq!(e.field, field);
                prop_assert!(!e.problem.is_empty() && !e.fix.is_empty());
            }
        }
    }

    #[test]
    fn generated_dns_names_are_accepted(name in dns_name(), wildcard in wildcard_name()) {
        prop_assert!(check_dns_name("f", &name).is_ok(), "{:?}", name);
        prop_assert!(check_object_name("f", &name).is_ok(), "{:?}", name);
        prop_assert!(check_dns_name("f", &wildcard).is_ok(), "{:?}", wildcard);
        // A wildcard is a SAN form, never an object name; uppercase is refused.
        prop_assert!(check_object_name("f", &wildcard).is_err());
        if name.bytes().any(|b| b.is_ascii_lowercase()) {
            let upper = name.to_ascii_uppercase();
            let e = check_dns_name("f", &upper).unwrap_err();
            prop_assert!(e.fix.contains(&name), "fix should suggest {:?}: {}", name, e);
        }
    }

    #[test]
    fn generated_labels_are_accepted(l in label()) {
        prop_assert!(check_dns_label("f", &l).is_ok());
        prop_assert!(check_object_name("f", &l).is_ok());
        let dotted = format!("{l}.x");
        let dashed = format!("-{l}");
        prop_assert!(check_dns_label("f", &dotted).is_err());
        prop_assert!(check_dns_label("f", &dashed).is_err());
    }

    #[test]
    fn accepted_mount_paths_are_usable(path in prop_oneof![
        "(/[a-z.]{0,4}){0,4}/{0,2}",
        "/{1,4}",
        "[/a-z.:]{0,12}",
        any::<String>(),
    ]) {
        match check_mount_path("certweave.io/mount-path", &path) {
            Ok(()) => {
                prop_assert!(path.starts_with('/'));
                prop_assert!(!path.contains(':'));
                prop_assert!(!path.split('/').any(|c| c == ".."));
                // What the Pod mutation mounts is the path without trailing
                // slashes: it must still name a directory below the root.
                let mounted = path.trim_end_matches('/');
                prop_assert!(mounted.starts_with('/') && mounted.len() > 1, "{:?} mounts {:?}", path, mounted);
            }
            Err(e) => prop_assert_eq!(e.field, "certweave.io/mount-path"),
        }
    }

    #[test]
    fn durations_from_parts_sum_up(
        h in prop::option::of(0u64..100_000),
        m in prop::option::of(0u64..10_000),
        s in prop::option::of(0u64..1_000_000),
        ms in prop::option::of(0u64..100_000),
        us in prop::option::of(0u64..100_000),
        ns in prop::option::of(0u64..100_000),
        micro in prop::sample::select(vec!["us", "µs", "μs"]),
        plus in any::<bool>(),
        pad in "[ \t]{0,2}",
    ) {
        let mut text = String::new();
        let mut nanos: u128 = 0;
        for (value, scale, unit) in [
            (h, 3_600_000_000_000u128, "h"),
            (m, 60_000_000_000, "m"),
            (s, 1_000_000_000, "s"),
            (ms, 1_000_000, "ms"),
            (us, 1_000, micro),
            (ns, 1, "ns"),
        ] {
            if let Some(v) = value {
                text.push_str(&format!("{v}{unit}"));
                nanos += u128::from(v) * scale;
            }
        }
        prop_assume!(!text.is_empty());
        let input = format!("{pad}{}{text}{pad}", if plus { "+" } else { "" });
        let parsed = parse_go_duration("cert-manager.io/duration", &input);
        prop_assert_eq!(parsed, Ok(Duration::from_nanos(nanos as u64)), "{:?}", input);
    }

    #[test]
    fn fractional_durations_are_exact_for_coarse_units(
        whole in 0u64..10_000,
        frac in "[0-9]{1,9}",
        unit in prop::sample::select(vec![("h", 3_600_000_000_000u128), ("m", 60_000_000_000), ("s", 1_000_000_000)]),
    ) {
        let input = format!("{whole}.{frac}{}", unit.0);
        let frac_value: u128 = frac.parse().unwrap();
        let expected = u128::from(whole) * unit.1 + frac_value * unit.1 / 10u128.pow(frac.len() as u32);
        prop_assert_eq!(
            parse_go_duration("f", &input),
            Ok(Duration::from_nanos(expected as u64)),
            "{:?}", input
        );
        // ".5h" and "0.5h" are the same duration, as in Go.
        prop_assert_eq!(
            parse_go_duration("f", &format!("0.{frac}{}", unit.0)),
            parse_go_duration("f", &format!(".{frac}{}", unit.0))
        );
    }

    #[test]
    fn durations_concatenate_additively(
        a in (1u64..10_000, prop::sample::select(vec!["h", "m", "s", "ms", "us", "ns"])),
        b in (1u64..10_000, prop::sample::select(vec!["h", "m", "s", "ms", "us", "ns"])),
    ) {
        let a = format!("{}{}", a.0, a.1);
        let b = format!("{}{}", b.0, b.1);
        let sum = parse_go_duration("f", &a).unwrap() + parse_go_duration("f", &b).unwrap();
        prop_assert_eq!(parse_go_duration("f", &format!("{a}{b}")), Ok(sum));
    }

    #[test]
    fn duration_parser_never_panics(input in prop_oneof![
        "[-+ 0-9.a-zµμ]{0,16}",
        "[0-9]{15,40}[hms]",
        any::<String>(),
    ]) {
        match parse_go_duration("cert-manager.io/renew-before", &input) {
            Ok(d) => {
                prop_assert!(!input.trim().is_empty());
                prop_assert!(!input.trim().starts_with('-'));
                // Surrounding blanks never change the value.
                prop_assert_eq!(parse_go_duration("f", input.trim()), Ok(d));
            }
            Err(e) => {
                prop_assert_eq!(e.field, "cert-manager.io/renew-before");
                prop_assert!(e.fix.contains("Go duration"));
            }
        }
    }

    #[test]
    fn proxy_ports_round_trip(a in 1u16.., b in 1u16.., spaces in any::<bool>()) {
        let text = if spaces { format!(" {a} : {b} ") } else { format!("{a}:{b}") };
        let parsed = ProxyPorts::parse(&text);
        if a == b {
            let e = parsed.unwrap_err();
            prop_assert_eq!(e.field, ann::POD_TLS_PROXY);
        } else {
            prop_assert_eq!(parsed, Ok(ProxyPorts { listen: a, upstream: b, mode: ProxyMode::Http }));
            let tcp = ProxyPorts::parse(&format!("{text}/tcp"));
            prop_assert_eq!(tcp, Ok(ProxyPorts { listen: a, upstream: b, mode: ProxyMode::Tcp }));
        }
        let bad = [
            format!("0:{b}"),
            format!("{a}:0"),
            format!("{a}"),
            format!("{}:{b}", u32::from(a) + 65_536),
            format!("{a}:{b}/udp"),
            format!("{a}:{b}/"),
        ];
        for text in bad {
            let e = ProxyPorts::parse(&text).unwrap_err();
            prop_assert_eq!(e.field, ann::POD_TLS_PROXY);
        }
    }

    #[test]
    fn proxy_ports_never_panic(text in prop_oneof!["[0-9: +-]{0,14}", any::<String>()]) {
        match ProxyPorts::parse(&text) {
            Ok(p) => {
                prop_assert!(p.listen != 0 && p.upstream != 0 && p.listen != p.upstream);
                let again = ProxyPorts::parse(&format!("{}:{}", p.listen, p.upstream));
                prop_assert_eq!(again, Ok(p));
            }
            Err(e) => prop_assert_eq!(e.field, ann::POD_TLS_PROXY),
        }
    }

    #[test]
    fn issuer_refs_round_trip(
        kind in prop_oneof![Just(IssuerKind::Issuer), Just(IssuerKind::ClusterIssuer)],
        name in dns_name(),
    ) {
        let text = format!("{kind}/{name}");
        let parsed: IssuerRef = text.parse().unwrap();
        prop_assert_eq!(parsed.kind, kind);
        prop_assert_eq!(&parsed.name, &name);
        prop_assert_eq!(parsed.to_string(), text);
    }

    #[test]
    fn issuer_ref_parser_never_panics(text in prop_oneof![
        (prop::sample::select(vec!["Issuer", "ClusterIssuer", "issuer", "", "Foo"]), "/?", name_like())
            .prop_map(|(k, s, n)| format!("{k}{s}{n}")),
        any::<String>(),
    ]) {
        match text.parse::<IssuerRef>() {
            Ok(r) => {
                prop_assert_eq!(r.to_string(), text.clone());
                prop_assert!(model_object_name(&r.name));
                prop_assert_eq!(text.parse::<IssuerRef>(), Ok(r));
            }
            Err(e) => prop_assert_eq!(e.field, "--default-issuer"),
        }
    }

    #[test]
    fn overrides_are_consistent(values in override_values()) {
        let lookup = |key: &str| -> Result<Option<&str>, InvalidField> {
            Ok(values.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str()))
        };
        let get = |key: &str| values.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        match CertificateOverrides::from_annotations(lookup) {
            Ok(o) => {
                prop_assert_eq!(o.common_name.as_deref(), get(ann::COMMON_NAME));
                prop_assert_eq!(o.duration.as_deref(), get(ann::DURATION));
                prop_assert_eq!(o.renew_before.as_deref(), get(ann::RENEW_BEFORE));
                let parse = |d: &Option<String>| {
                    d.as_deref().map(|d| parse_go_duration("d", d).expect("checked"))
                };
                let (duration, renew_before) = (parse(&o.duration), parse(&o.renew_before));
                if let (Some(d), Some(r)) = (duration, renew_before) {
                    prop_assert!(r < d);
                }
                prop_assert!(duration != Some(Duration::ZERO));
                prop_assert!(renew_before != Some(Duration::ZERO));
                let key = o.private_key.clone().unwrap_or_default();
                prop_assert_eq!(key.algorithm.as_deref(), get(ann::PRIVATE_KEY_ALGORITHM));
                if let Some(size) = key.size {
                    match key.algorithm.as_deref().unwrap_or("RSA") {
                        "RSA" => prop_assert!((2048..=8192).contains(&size)),
                        "ECDSA" => prop_assert!([256, 384, 521].contains(&size)),
                        _ => {}
                    }
                }
                prop_assert_eq!(key.rotation_policy.as_deref(), get(ann::PRIVATE_KEY_ROTATION_POLICY));
            }
            Err(e) => {
                prop_assert!(OVERRIDE_KEYS.contains(&e.field.as_str()), "field {:?}", e.field);
                prop_assert!(get(&e.field).is_some(), "{} is not set but was blamed", e.field);
            }
        }
    }
}

const OVERRIDE_KEYS: [&str; 6] = [
    ann::COMMON_NAME,
    ann::DURATION,
    ann::RENEW_BEFORE,
    ann::PRIVATE_KEY_ALGORITHM,
    ann::PRIVATE_KEY_SIZE,
    ann::PRIVATE_KEY_ROTATION_POLICY,
];

/// Picks a value (valid, invalid or arbitrary) from `pool` or anything.
fn one_of(pool: &[&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::sample::select(pool.to_vec()).prop_map(String::from),
        1 => "\\PC{0,12}",
    ]
    .boxed()
}

fn override_value(key: &'static str) -> BoxedStrategy<String> {
    match key {
        ann::COMMON_NAME => prop_oneof![
            4 => dns_name().prop_filter("short", |n| n.len() <= 64),
            1 => Just(String::new()),
            1 => "[a-z]{65,70}",
        ]
        .boxed(),
        ann::DURATION => one_of(&["2160h", "720h", "1h", "90m", "0s", "0", "5d", "-1h", ""]),
        ann::RENEW_BEFORE => one_of(&["720h", "240h", "2h", "1h", "0s", "bad"]),
        ann::PRIVATE_KEY_ALGORITHM => one_of(&["RSA", "ECDSA", "Ed25519", "rsa", "DSA"]),
        ann::PRIVATE_KEY_SIZE => one_of(&[
            "2048", "4096", "8192", "256", "384", "521", " 384 ", "1024", "big", "-1",
        ]),
        _ => one_of(&["Always", "Never", "always", "Sometimes"]),
    }
}

/// A random subset of the six override annotations with assorted values.
fn override_values() -> BoxedStrategy<Vec<(&'static str, String)>> {
    let parts: Vec<BoxedStrategy<Option<(&'static str, String)>>> = OVERRIDE_KEYS
        .iter()
        .map(|&key| {
            prop::option::weighted(0.4, override_value(key).prop_map(move |v| (key, v))).boxed()
        })
        .collect();
    parts
        .prop_map(|pairs| pairs.into_iter().flatten().collect())
        .boxed()
}

/// A consistent set of valid override annotations (what a careful user writes).
fn valid_override_values() -> BoxedStrategy<Vec<(&'static str, String)>> {
    (
        prop::option::weighted(0.2, prop::sample::select(vec!["example.com", "web"])),
        prop::option::weighted(
            0.3,
            prop::sample::select(vec![("2160h", "720h"), ("720h", "240h"), ("90m", "30m")]),
        ),
        prop::option::weighted(
            0.3,
            prop::sample::select(vec![
                ("RSA", "4096"),
                ("ECDSA", "384"),
                ("ECDSA", "256"),
                ("Ed25519", ""),
            ]),
        ),
        prop::option::weighted(0.2, prop::sample::select(vec!["Always", "Never"])),
    )
        .prop_map(|(cn, durations, key, rotation)| {
            let mut out = Vec::new();
            if let Some(cn) = cn {
                out.push((ann::COMMON_NAME, cn.to_owned()));
            }
            if let Some((d, r)) = durations {
                out.push((ann::DURATION, d.to_owned()));
                out.push((ann::RENEW_BEFORE, r.to_owned()));
            }
            if let Some((alg, size)) = key {
                out.push((ann::PRIVATE_KEY_ALGORITHM, alg.to_owned()));
                if !size.is_empty() {
                    out.push((ann::PRIVATE_KEY_SIZE, size.to_owned()));
                }
            }
            if let Some(policy) = rotation {
                out.push((ann::PRIVATE_KEY_ROTATION_POLICY, policy.to_owned()));
            }
            out
        })
        .boxed()
}

// ---------------------------------------------------------------------------
// Generated Pods.
//
// Every generator takes `bad`, the weight of its invalid choices: each case
// is drawn either clean (`bad == 0`: the object a careful user writes, so
// most clean cases are mutated) or messy (`bad == 1`: invalid values, name
// clashes, duplicate containers, wrong JSON types).
// ---------------------------------------------------------------------------

const CONTAINER_POOL: [&str; 5] = ["app", "web", "sidecar", "db", "worker"];

fn strs(pool: &[&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(pool.to_vec())
        .prop_map(String::from)
        .boxed()
}

/// A weighted choice; arms of weight 0 are dropped, so a clean case never
/// produces (or shrinks to) a messy choice.
fn pick<T: std::fmt::Debug + 'static>(arms: Vec<(u32, BoxedStrategy<T>)>) -> BoxedStrategy<T> {
    let arms: Vec<_> = arms.into_iter().filter(|(w, _)| *w > 0).collect();
    prop::strategy::Union::new_weighted(arms).boxed()
}

/// `Some` with probability `p` in messy cases, never in clean ones.
fn messy<T: std::fmt::Debug + Clone + 'static>(
    bad: u32,
    p: f64,
    strategy: BoxedStrategy<T>,
) -> BoxedStrategy<Option<T>> {
    if bad == 0 {
        Just(None).boxed()
    } else {
        prop::option::weighted(p, strategy).boxed()
    }
}

/// Valid choices from `good`, invalid ones from `invalid` with weight `bad`.
fn good_or_bad(
    good: BoxedStrategy<String>,
    invalid: BoxedStrategy<String>,
    bad: u32,
) -> BoxedStrategy<String> {
    pick(vec![(6, good), (bad, invalid)])
}

fn volume_name(bad: u32) -> BoxedStrategy<String> {
    good_or_bad(
        strs(&["data", "config", "cache"]),
        Just(VOLUME_NAME.to_string()).boxed(),
        bad,
    )
}

fn container(name: String, bad: u32) -> BoxedStrategy<Value> {
    // Clean Pods never use the default mount path or a sidecar port.
    let paths = if bad == 0 {
        vec!["/data", "/var/run/secrets", "/cache"]
    } else {
        vec![
            "/data",
            "/etc/certweave/tls",
            "/etc/certweave/tls/",
            "/etc/tls",
            "/var/run/secrets",
        ]
    };
    let ports = if bad == 0 {
        vec![80u16, 9090, 3000]
    } else {
        vec![80u16, 8080, 8443, 9090]
    };
    let mount = (volume_name(bad), prop::sample::select(paths))
        .prop_map(|(name, path)| json!({ "name": name, "mountPath": path }));
    (
        prop::option::of(prop::collection::vec(mount, 0..3)),
        prop::option::of(prop::collection::vec(prop::sample::select(ports), 0..3)),
        any::<bool>(),
    )
        .prop_map(move |(mounts, ports, env)| {
            let mut c = json!({ "name": name, "image": format!("example/{name}:1") });
            if let Some(mounts) = mounts {
                c["volumeMounts"] = Value::Array(mounts);
            }
            if let Some(ports) = ports {
                c["ports"] = ports
                    .into_iter()
                    .map(|p| json!({ "containerPort": p, "protocol": "TCP" }))
                    .collect();
            }
            if env {
                c["env"] = json!([{ "name": "MODE", "value": "prod" }]);
            }
            c
        })
        .boxed()
}

/// Container names: distinct ones from the pool when clean; repeats, the
/// sidecar's name and invalid names when messy.
fn container_names(bad: u32) -> BoxedStrategy<Vec<String>> {
    if bad == 0 {
        prop::sample::subsequence(CONTAINER_POOL.to_vec(), 1..=4)
            .prop_shuffle()
            .prop_map(|names| names.into_iter().map(String::from).collect())
            .boxed()
    } else {
        let name = prop_oneof![
            8 => strs(&CONTAINER_POOL),
            1 => Just(PROXY_CONTAINER.to_string()),
            1 => "[a-z][a-z0-9-]{0,10}",
        ];
        prop::collection::vec(name, 1..=4).boxed()
    }
}

#[derive(Debug, Clone)]
enum Trigger {
    None,
    Namespaced(String),
    Cluster(String),
    Both(String, String),
}

fn issuer_name(bad: u32) -> BoxedStrategy<String> {
    good_or_bad(
        strs(&["ca", "letsencrypt-prod", "internal.ca"]),
        strs(&["", "Bad_Issuer", "-x", "a/b"]),
        bad,
    )
}

fn pod_trigger(bad: u32) -> BoxedStrategy<Trigger> {
    pick(vec![
        (bad, Just(Trigger::None).boxed()),
        (4, issuer_name(bad).prop_map(Trigger::Namespaced).boxed()),
        (4, issuer_name(bad).prop_map(Trigger::Cluster).boxed()),
        (
            bad,
            (issuer_name(bad), issuer_name(bad))
                .prop_map(|(a, b)| Trigger::Both(a, b))
                .boxed(),
        ),
    ])
}

fn pod_dns_names(bad: u32) -> BoxedStrategy<String> {
    let good = (
        prop::collection::vec(prop_oneof![4 => dns_name(), 1 => wildcard_name()], 1..4),
        any::<bool>(),
    )
        .prop_map(|(names, spaced)| names.join(if spaced { ", " } else { "," }));
    pick(vec![
        (6, good.boxed()),
        (
            1,
            (dns_name(), 1usize..3)
                .prop_map(|(n, k)| vec![n; k].join(","))
                .boxed(),
        ),
        (
            bad,
            strs(&[
                "",
                "a,,b",
                "Bad.example.com",
                "10.0.0.1",
                "*.com",
                "x..y",
                "ok.example.com,",
            ]),
        ),
    ])
}

/// `certweave.io/containers`: a subset of the Pod's own names when clean;
/// pool names (possibly absent or repeated) and invalid lists when messy.
fn pod_containers_annotation(names: Vec<String>, bad: u32) -> BoxedStrategy<String> {
    let join = |(names, spaced): (Vec<String>, bool)| names.join(if spaced { ", " } else { "," });
    if bad == 0 {
        let n = names.len();
        (prop::sample::subsequence(names, 1..=n), any::<bool>())
            .prop_map(join)
            .boxed()
    } else {
        let name = prop_oneof![
            8 => strs(&CONTAINER_POOL),
            1 => Just("missing".to_string()),
            1 => Just("Bad_Name".to_string()),
        ];
        prop_oneof![
            8 => (prop::collection::vec(name, 1..4), any::<bool>()).prop_map(join),
            1 => strs(&["", ",", "app,"]),
        ]
        .boxed()
    }
}

fn pod_tls_proxy(bad: u32) -> BoxedStrategy<String> {
    let listen = if bad == 0 {
        vec![8443u16, 9443]
    } else {
        vec![8443u16, 9443, 8080]
    };
    good_or_bad(
        (
            prop::sample::select(listen),
            prop::sample::select(vec![8080u16, 3000]),
        )
            .prop_map(|(l, u)| format!("{l}:{u}"))
            .boxed(),
        strs(&["8080:8080", "x", "0:80", "70000:80", "8443", ":", ""]),
        bad,
    )
}

fn mount_path_annotation(bad: u32) -> BoxedStrategy<String> {
    let good = if bad == 0 {
        vec!["/etc/tls", "/srv/tls/", "/srv/tls//", "/run/certs"]
    } else {
        vec!["/etc/tls", "/etc/certweave/tls", "/data", "/srv/tls/"]
    };
    good_or_bad(
        strs(&good),
        strs(&["relative", "/", "//", "///", "/a/../b", "/a:b", ""]),
        bad,
    )
}

#[derive(Debug, Clone)]
struct PodCase {
    pod: Value,
    namespace: String,
}

/// The Pod's annotations; `names` are its containers' names.
fn pod_annotations(names: Vec<String>, bad: u32) -> BoxedStrategy<Map<String, Value>> {
    let valued = (
        pod_trigger(bad),
        prop::option::weighted(0.6, good_or_bad(label(), strs(&["Web", "a.b", ""]), bad)),
        prop::option::weighted(0.3, pod_dns_names(bad)),
        prop::option::weighted(
            0.3,
            good_or_bad(
                strs(&["web-tls", "tls.secret"]),
                strs(&["", "Bad", "x_y"]),
                bad,
            ),
        ),
        prop::option::weighted(0.3, mount_path_annotation(bad)),
        prop::option::weighted(0.4, pod_containers_annotation(names, bad)),
        prop::option::weighted(0.4, pod_tls_proxy(bad)),
        messy(bad, 0.1, strs(&["true", "false", "yes"])),
        prop::option::weighted(
            0.3,
            (
                strs(&["example.com/a~b", "x/y~1z", "note", "a/b/c"]),
                "\\PC{0,10}",
            ),
        ),
        messy(
            bad,
            0.05,
            prop::sample::select(vec![
                ann::POD_TLS_PROXY,
                ann::POD_CONTAINERS,
                ann::POD_ISSUER,
                ann::POD_INJECTED,
            ])
            .boxed(),
        ),
    );
    valued
        .prop_map(|a| {
            let (
                trigger,
                service,
                dns,
                secret,
                mount,
                containers,
                proxy,
                injected,
                extra,
                bad_type,
            ) = a;
            let mut annotations = Map::new();
            let mut put = |k: &str, v: &str| {
                annotations.insert(k.to_owned(), Value::String(v.to_owned()));
            };
            match &trigger {
                Trigger::None => {}
                Trigger::Namespaced(n) => put(ann::POD_ISSUER, n),
                Trigger::Cluster(n) => put(ann::POD_CLUSTER_ISSUER, n),
                Trigger::Both(a, b) => {
                    put(ann::POD_ISSUER, a);
                    put(ann::POD_CLUSTER_ISSUER, b);
                }
            }
            let optional = [
                (ann::POD_SERVICE, service),
                (ann::POD_DNS_NAMES, dns),
                (ann::POD_SECRET_NAME, secret),
                (ann::POD_MOUNT_PATH, mount),
                (ann::POD_CONTAINERS, containers),
                (ann::POD_TLS_PROXY, proxy),
                (ann::POD_INJECTED, injected),
            ];
            for (key, value) in optional {
                if let Some(v) = value {
                    put(key, &v);
                }
            }
            if let Some((k, v)) = extra {
                put(&k, &v);
            }
            if let Some(key) = bad_type {
                // A value of the wrong JSON type (unquoted in YAML).
                annotations.insert(key.to_owned(), json!(8443));
            }
            annotations
        })
        .boxed()
}

fn pod_labels(bad: u32) -> BoxedStrategy<Option<Map<String, Value>>> {
    prop::option::weighted(
        0.8,
        (
            prop::option::of(good_or_bad(strs(&["web", "api"]), strs(&["Web_1"]), bad)),
            prop::option::of(good_or_bad(strs(&["web", "db"]), strs(&["BAD"]), bad)),
            prop::option::of("[a-z]{1,5}"),
        )
            .prop_map(|(k8s_name, app, other)| {
                let mut l = Map::new();
                for (key, value) in [
                    ("app.kubernetes.io/name", k8s_name),
                    ("app", app),
                    ("tier", other),
                ] {
                    if let Some(v) = value {
                        l.insert(key.into(), Value::String(v));
                    }
                }
                l
            }),
    )
    .boxed()
}

fn pod_case() -> BoxedStrategy<PodCase> {
    prop_oneof![Just(0u32), Just(1u32)]
        .prop_flat_map(|bad| (Just(bad), container_names(bad)))
        .prop_flat_map(|(bad, names)| {
            let containers: Vec<BoxedStrategy<Value>> =
                names.iter().map(|n| container(n.clone(), bad)).collect();
            (
                pod_annotations(names, bad),
                pod_labels(bad),
                containers,
                prop::option::of(prop::collection::vec(volume_name(bad), 0..3)),
                any::<bool>(),
                pick(vec![
                    (12, Just("normal").boxed()),
                    (bad, Just("no-spec").boxed()),
                    (bad, Just("no-containers").boxed()),
                ]),
                good_or_bad(
                    strs(&["default", "prod", "team-a"]),
                    strs(&["Bad_NS", ""]),
                    bad,
                ),
                prop::option::of("[a-z]{1,8}"),
            )
        })
        .prop_map(
            |(annotations, labels, containers, volumes, restart, shape, namespace, name)| {
                let mut metadata = Map::new();
                if let Some(name) = name {
                    metadata.insert("name".into(), Value::String(name));
                }
                if !annotations.is_empty() {
                    metadata.insert("annotations".into(), Value::Object(annotations));
                }
                if let Some(labels) = labels {
                    metadata.insert("labels".into(), Value::Object(labels));
                }
                let mut pod = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": metadata });
                if shape != "no-spec" {
                    let mut spec = Map::new();
                    let containers = if shape == "no-containers" {
                        Vec::new()
                    } else {
                        containers
                    };
                    spec.insert("containers".into(), Value::Array(containers));
                    if let Some(volumes) = volumes {
                        spec.insert(
                            "volumes".into(),
                            volumes
                                .into_iter()
                                .map(|n| json!({ "name": n, "emptyDir": {} }))
                                .collect(),
                        );
                    }
                    if restart {
                        spec.insert("restartPolicy".into(), json!("Always"));
                    }
                    pod["spec"] = Value::Object(spec);
                }
                PodCase { pod, namespace }
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------
// Generated Ingresses.
// ---------------------------------------------------------------------------

fn host(bad: u32) -> BoxedStrategy<String> {
    pick(vec![
        (
            8,
            strs(&["example.com", "www.example.com", "api.example.com"]),
        ),
        (4, dns_name()),
        (1, wildcard_name()),
        (
            bad,
            strs(&["", "Bad.Host", "1.2.3.4", "a..b", "x.example.com."]),
        ),
    ])
}

#[derive(Debug, Clone)]
struct IngressCase {
    ingress: Value,
    config: MutationConfig,
}

fn ingress_trigger(bad: u32) -> BoxedStrategy<Vec<(&'static str, String)>> {
    let kinds = if bad == 0 {
        vec!["Issuer", "ClusterIssuer"]
    } else {
        vec!["Issuer", "ClusterIssuer", "clusterissuer"]
    };
    pick(vec![
        (bad, Just(vec![]).boxed()),
        (
            4,
            issuer_name(bad)
                .prop_map(|n| vec![(ann::CLUSTER_ISSUER, n)])
                .boxed(),
        ),
        (
            3,
            (
                issuer_name(bad),
                prop::option::of(prop::sample::select(kinds)),
            )
                .prop_map(|(n, kind)| {
                    let mut v = vec![(ann::ISSUER, n)];
                    if let Some(kind) = kind {
                        v.push((ann::ISSUER_KIND, kind.to_owned()));
                    }
                    v
                })
                .boxed(),
        ),
        (
            2,
            good_or_bad(strs(&["true"]), strs(&["false"]), bad)
                .prop_map(|v| vec![(ann::TLS_ACME, v)])
                .boxed(),
        ),
        (
            bad,
            (issuer_name(bad), issuer_name(bad))
                .prop_map(|(a, b)| vec![(ann::ISSUER, a), (ann::CLUSTER_ISSUER, b)])
                .boxed(),
        ),
    ])
}

fn ingress_case() -> BoxedStrategy<IngressCase> {
    prop_oneof![Just(0u32), Just(1u32)]
        .prop_flat_map(ingress_case_with)
        .boxed()
}

fn ingress_case_with(bad: u32) -> BoxedStrategy<IngressCase> {
    let rule = (prop::option::weighted(0.85, host(bad)), any::<bool>()).prop_map(|(host, http)| {
        let mut r = Map::new();
        if let Some(h) = host {
            r.insert("host".into(), Value::String(h));
        }
        if http {
            r.insert(
                "http".into(),
                json!({ "paths": [{ "path": "/", "pathType": "Prefix",
                    "backend": { "service": { "name": "web", "port": { "number": 80 } } } }] }),
            );
        }
        Value::Object(r)
    });
    let tls_entry = (
        pick(vec![
            (8, prop::collection::vec(host(bad), 1..3).boxed()),
            (bad, Just(vec![]).boxed()),
        ]),
        prop::option::of(good_or_bad(
            strs(&["web-tls", "web-tls-1", "shop-tls", "other-tls", ""]),
            strs(&["Bad_Secret"]),
            bad,
        )),
        prop::option::weighted(0.1, Just(json!({ "note": "kept" }))),
    )
        .prop_map(|(hosts, secret, extra)| {
            let mut e = Map::new();
            e.insert("hosts".into(), json!(hosts));
            if let Some(s) = secret {
                e.insert("secretName".into(), json!(s));
            }
            if let Some(x) = extra {
                e.insert("x-extra".into(), x);
            }
            Value::Object(e)
        });
    let overrides = if bad == 0 {
        valid_override_values()
    } else {
        override_values()
            .prop_map(|v| if v.len() > 2 { Vec::new() } else { v })
            .boxed()
    };
    let group = if bad == 0 {
        vec!["cert-manager.io"]
    } else {
        vec!["cert-manager.io", "example.com"]
    };
    let annotations = (
        ingress_trigger(bad),
        prop::option::weighted(0.15, prop::sample::select(group)),
        overrides,
        prop::option::weighted(0.3, ("[a-z./~]{1,12}", "\\PC{0,8}")),
    );
    let name = pick(vec![
        (8, strs(&["web", "shop"]).prop_map(Some).boxed()),
        (bad, Just(None).boxed()),
        (bad, strs(&["", "Bad_Name"]).prop_map(Some).boxed()),
        (bad, "[a-z]{245,250}".prop_map(Some).boxed()),
    ]);
    (
        annotations,
        prop::collection::vec(rule, (1 - bad as usize)..4),
        prop::option::of(prop::collection::vec(tls_entry, 0..3)),
        name,
        any::<bool>(),
        pick(vec![
            (12, Just("normal").boxed()),
            (bad, Just("no-spec").boxed()),
        ]),
    )
        .prop_map(move |(a, rules, tls, name, default_issuer, shape)| {
            let (trigger, group, overrides, extra) = a;
            let acme = trigger.iter().any(|(k, _)| *k == ann::TLS_ACME);
            let mut annotations = Map::new();
            for (k, v) in trigger.into_iter().chain(overrides) {
                annotations.insert(k.to_owned(), Value::String(v));
            }
            if let Some(g) = group {
                annotations.insert(ann::ISSUER_GROUP.to_owned(), json!(g));
            }
            if let Some((k, v)) = extra {
                annotations.entry(k).or_insert(Value::String(v));
            }
            let mut metadata = Map::new();
            if let Some(name) = name {
                metadata.insert("name".into(), Value::String(name));
            }
            metadata.insert("namespace".into(), json!("default"));
            metadata.insert("annotations".into(), Value::Object(annotations));
            let mut ingress = json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": metadata,
            });
            if shape != "no-spec" {
                let mut spec = Map::new();
                spec.insert("ingressClassName".into(), json!("nginx"));
                spec.insert("rules".into(), Value::Array(rules));
                if let Some(tls) = tls {
                    spec.insert("tls".into(), Value::Array(tls));
                }
                ingress["spec"] = Value::Object(spec);
            }
            // Clean cases that rely on tls-acme get a default issuer.
            let default_issuer = default_issuer || (bad == 0 && acme);
            let config = MutationConfig {
                default_issuer: default_issuer.then(|| IssuerRef {
                    kind: IssuerKind::ClusterIssuer,
                    name: "letsencrypt".into(),
                }),
                ..MutationConfig::default()
            };
            IngressCase { ingress, config }
        })
        .boxed()
}

// ---------------------------------------------------------------------------
// Mutation checks shared by the direct and the AdmissionReview properties.
// ---------------------------------------------------------------------------

/// The JSON Patch reproduces the mutated object.
fn check_patch_reproduces(original: &Value, mutated: &Value) -> Result<(), TestCaseError> {
    let ops = patch::diff(original, mutated);
    prop_assert!(
        !ops.0.is_empty(),
        "a mutation that changes nothing must return no object"
    );
    let applied = patch::apply(original, &ops)
        .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}")))?;
    prop_assert_eq!(&applied, mutated);
    Ok(())
}

fn strings(items: &[Value]) -> Vec<Option<&str>> {
    items
        .iter()
        .map(|v| v.get("name").and_then(Value::as_str))
        .collect()
}

fn without(value: &Value, pointer_parent: &str, keys: &[&str]) -> Value {
    let mut v = value.clone();
    if let Some(Value::Object(map)) = v.pointer_mut(pointer_parent) {
        for k in keys {
            map.remove(*k);
        }
    }
    v
}

fn check_pod_mutation(
    case: &PodCase,
    mutated: &Value,
    cfg: &MutationConfig,
) -> Result<(), TestCaseError> {
    let pod = &case.pod;
    check_patch_reproduces(pod, mutated)?;

    let again = mutate_pod(mutated, &case.namespace, cfg);
    prop_assert!(
        matches!(&again, Ok(o) if o.object.is_none()),
        "second mutation is not a no-op: {:?}",
        again
    );

    // Nothing outside the documented paths changed.
    let strip = |v: &Value| {
        let v = without(v, "/metadata", &["annotations", "labels"]);
        without(&v, "/spec", &["volumes", "containers"])
    };
    prop_assert_eq!(strip(pod), strip(mutated));
    for key in ["annotations", "labels"] {
        let before = pod["metadata"]
            .get(key)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let after = mutated["metadata"][key]
            .as_object()
            .cloned()
            .unwrap_or_default();
        prop_assert_eq!(after.get(ann::POD_INJECTED), Some(&json!("true")));
        let mut after = after;
        after.remove(ann::POD_INJECTED);
        let mut before = before;
        before.remove(ann::POD_INJECTED);
        prop_assert_eq!(before, after, "{} changed beyond the marker", key);
    }

    // One new volume, the Secret.
    let empty = Vec::new();
    let vols_before = pod["spec"]
        .get("volumes")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let vols_after = mutated["spec"]["volumes"].as_array().expect("volumes");
    prop_assert_eq!(vols_after.len(), vols_before.len() + 1);
    prop_assert_eq!(&vols_after[..vols_before.len()], &vols_before[..]);
    let secret_volume = &vols_after[vols_before.len()];
    prop_assert_eq!(secret_volume["name"].as_str(), Some(VOLUME_NAME));
    let secret_name = secret_volume["secret"]["secretName"].as_str().unwrap_or("");
    prop_assert!(
        model_object_name(secret_name),
        "secretName {:?}",
        secret_name
    );

    // Containers keep their order; at most the sidecar is appended.
    let before = pod["spec"]["containers"].as_array().expect("containers");
    let after = mutated["spec"]["containers"]
        .as_array()
        .expect("containers");
    prop_assert_eq!(&strings(&after[..before.len()]), &strings(before));
    let annotations = &pod["metadata"]["annotations"];
    let wants_proxy = annotations.get(ann::POD_TLS_PROXY).is_some();
    prop_assert_eq!(after.len(), before.len() + usize::from(wants_proxy));
    if wants_proxy {
        prop_assert_eq!(after[before.len()]["name"].as_str(), Some(PROXY_CONTAINER));
    }

    let selected: Option<Vec<&str>> = annotations
        .get(ann::POD_CONTAINERS)
        .and_then(Value::as_str)
        .map(|list| list.split(',').map(str::trim).collect());
    // A listed name selects the first container so named (duplicate names
    // are invalid in a Pod and refused later by the API server).
    let names_before = strings(before);
    let mut mount_path = None;
    for (i, (b, a)) in before.iter().zip(after).enumerate() {
        let name = b["name"].as_str().unwrap_or("");
        let first_of_name = names_before.iter().position(|n| *n == Some(name)) == Some(i);
        let is_target = selected
            .as_ref()
            .is_none_or(|s| first_of_name && s.contains(&name));
        prop_assert_eq!(
            without(b, "", &["volumeMounts"]),
            without(a, "", &["volumeMounts"]),
            "container {} changed beyond its mounts",
            i
        );
        let mounts_before = b
            .get("volumeMounts")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        let mounts_after = a
            .get("volumeMounts")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        prop_assert_eq!(
            &mounts_after[..mounts_before.len().min(mounts_after.len())],
            &mounts_before[..]
        );
        let ours: Vec<&Value> = mounts_after
            .iter()
            .filter(|m| m["name"].as_str() == Some(VOLUME_NAME))
            .collect();
        if is_target {
            prop_assert_eq!(
                ours.len(),
                1,
                "container {} ({:?}) needs exactly one mount: {:?}",
                i,
                name,
                mounts_after
            );
            prop_assert_eq!(mounts_after.len(), mounts_before.len() + 1);
            prop_assert_eq!(ours[0]["readOnly"].as_bool(), Some(true));
            let path = ours[0]["mountPath"].as_str().unwrap_or("");
            prop_assert!(
                path.starts_with('/') && path.len() > 1 && !path.ends_with('/'),
                "mountPath {:?}",
                path
            );
            mount_path = Some(path.to_owned());
        } else {
            prop_assert_eq!(
                mounts_after,
                mounts_before,
                "unselected container {} was touched",
                i
            );
        }
    }
    if wants_proxy {
        let proxy = &after[before.len()];
        prop_assert_eq!(proxy["volumeMounts"][0]["name"].as_str(), Some(VOLUME_NAME));
        let path = proxy["volumeMounts"][0]["mountPath"]
            .as_str()
            .map(str::to_owned);
        if mount_path.is_some() {
            prop_assert_eq!(path, mount_path);
        }
    }
    Ok(())
}

fn check_ingress_mutation(case: &IngressCase, mutated: &Value) -> Result<(), TestCaseError> {
    let ing = &case.ingress;
    check_patch_reproduces(ing, mutated)?;

    let again = mutate_ingress(mutated, &case.config);
    prop_assert!(
        matches!(&again, Ok(o) if o.object.is_none()),
        "second mutation is not a no-op: {:?}",
        again
    );

    prop_assert_eq!(
        without(ing, "/spec", &["tls"]),
        without(mutated, "/spec", &["tls"])
    );
    let empty = Vec::new();
    let before = ing["spec"]
        .get("tls")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let after = mutated["spec"]["tls"].as_array().expect("spec.tls");
    let secret = |e: &Value| {
        e.get("secretName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    for (i, e) in after.iter().enumerate() {
        prop_assert!(!secret(e).is_empty(), "spec.tls[{}] has no secretName", i);
    }

    if before.is_empty() {
        let mut hosts: Vec<&str> = Vec::new();
        for rule in ing["spec"]["rules"].as_array().unwrap_or(&empty) {
            if let Some(h) = rule.get("host").and_then(Value::as_str) {
                if !h.is_empty() && !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
        }
        prop_assert_eq!(after.len(), 1);
        prop_assert_eq!(&after[0]["hosts"], &json!(hosts));
        let name = ing["metadata"]["name"].as_str().unwrap_or("");
        prop_assert_eq!(secret(&after[0]), format!("{name}-tls"));
    } else {
        prop_assert_eq!(after.len(), before.len());
        let mut assigned = 0;
        for (i, (b, a)) in before.iter().zip(after).enumerate() {
            prop_assert_eq!(&b["hosts"], &a["hosts"], "spec.tls[{}].hosts changed", i);
            prop_assert_eq!(
                without(b, "", &["secretName"]),
                without(a, "", &["secretName"])
            );
            if secret(b).is_empty() {
                assigned += 1;
                let name = secret(a);
                prop_assert!(model_object_name(&name), "assigned {:?}", name);
                let clashes = after
                    .iter()
                    .enumerate()
                    .filter(|(j, other)| *j != i && secret(other) == name)
                    .count();
                prop_assert_eq!(clashes, 0, "assigned secretName {:?} is not unique", name);
            } else {
                prop_assert_eq!(secret(a), secret(b), "an existing secretName changed");
            }
        }
        prop_assert!(assigned > 0);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// AdmissionReview wrapping.
// ---------------------------------------------------------------------------

fn review_body(
    uid: &str,
    gvk: (&str, &str, &str),
    operation: &str,
    namespace: &str,
    object: Option<&Value>,
) -> Vec<u8> {
    let mut request = json!({
        "uid": uid,
        "kind": { "group": gvk.0, "version": gvk.1, "kind": gvk.2 },
        "resource": { "group": gvk.0, "version": gvk.1, "resource": format!("{}s", gvk.2.to_lowercase()) },
        "operation": operation,
        "namespace": namespace,
        "userInfo": { "username": "system:serviceaccount:kube-system:replicaset-controller" },
        "dryRun": false,
    });
    if let Some(object) = object {
        request["object"] = object.clone();
    }
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }))
    .unwrap()
}

/// Reviews `body` and checks the response against the direct mutation result.
fn check_review(
    body: &[u8],
    uid: &str,
    original: &Value,
    expected: &MutationResult,
    cfg: &MutationConfig,
) -> Result<(), TestCaseError> {
    let reviewed = review(body, cfg).map_err(|e| TestCaseError::fail(format!("malformed: {e}")))?;
    let response: Value = serde_json::from_slice(&reviewed.body)
        .map_err(|e| TestCaseError::fail(format!("response is not JSON: {e}")))?;
    prop_assert_eq!(&response["apiVersion"], "admission.k8s.io/v1");
    prop_assert_eq!(&response["kind"], "AdmissionReview");
    let response = &response["response"];
    prop_assert_eq!(response["uid"].as_str(), Some(uid));
    match expected {
        Err(e) => {
            prop_assert_eq!(&response["allowed"], false);
            prop_assert_eq!(&response["status"]["code"], 400);
            let message = response["status"]["message"].as_str().unwrap_or("");
            prop_assert!(
                message.contains(&e.field),
                "{:?} does not name {:?}",
                message,
                e.field
            );
            prop_assert!(response.get("patch").is_none());
        }
        Ok(outcome) => {
            prop_assert_eq!(&response["allowed"], true);
            let warnings: Vec<&str> = response
                .get("warnings")
                .and_then(Value::as_array)
                .map(|w| w.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            prop_assert_eq!(
                warnings,
                outcome
                    .warnings
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
            );
            match &outcome.object {
                None => prop_assert!(response.get("patch").is_none()),
                Some(mutated) => {
                    prop_assert_eq!(&response["patchType"], "JSONPatch");
                    let raw = base64::engine::general_purpose::STANDARD
                        .decode(response["patch"].as_str().unwrap_or(""))
                        .map_err(|e| TestCaseError::fail(format!("patch is not base64: {e}")))?;
                    let ops: json_patch::Patch = serde_json::from_slice(&raw).map_err(|e| {
                        TestCaseError::fail(format!("patch is not a JSON Patch: {e}"))
                    })?;
                    let applied = patch::apply(original, &ops)
                        .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}")))?;
                    prop_assert_eq!(&applied, mutated);
                }
            }
        }
    }
    Ok(())
}

fn uid() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        1 => "\\PC{1,12}",
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Mutation properties.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn pod_mutation_is_additive_reproducible_and_idempotent(case in pod_case(), uid in uid()) {
        let cfg = MutationConfig::default();
        let result = mutate_pod(&case.pod, &case.namespace, &cfg);
        if let Ok(outcome) = &result {
            if let Some(mutated) = &outcome.object {
                check_pod_mutation(&case, mutated, &cfg)?;
            }
        }
        let annotations = case.pod["metadata"].get("annotations");
        let triggered = annotations.is_some_and(|a| {
            a.get(ann::POD_ISSUER).is_some() || a.get(ann::POD_CLUSTER_ISSUER).is_some()
        });
        if !triggered {
            prop_assert_eq!(&result, &Ok(Default::default()));
        }
        if let Err(e) = &result {
            prop_assert!(!e.field.is_empty() && !e.fix.is_empty());
        }

        // The same verdict through the AdmissionReview handler. An empty
        // request namespace falls back to metadata.namespace, then "default".
        let review_ns = if case.namespace.is_empty() { "default" } else { case.namespace.as_str() };
        let expected = if review_ns == case.namespace { result } else { mutate_pod(&case.pod, review_ns, &cfg) };
        let body = review_body(&uid, ("", "v1", "Pod"), "CREATE", &case.namespace, Some(&case.pod));
        check_review(&body, &uid, &case.pod, &expected, &cfg)?;
    }

    #[test]
    fn ingress_mutation_is_additive_reproducible_and_idempotent(
        case in ingress_case(),
        uid in uid(),
        update in any::<bool>(),
    ) {
        let result = mutate_ingress(&case.ingress, &case.config);
        if let Ok(outcome) = &result {
            if let Some(mutated) = &outcome.object {
                check_ingress_mutation(&case, mutated)?;
            }
        }
        if let Err(e) = &result {
            prop_assert!(!e.field.is_empty() && !e.fix.is_empty());
        }
        let body = review_body(
            &uid,
            ("networking.k8s.io", "v1", "Ingress"),
            if update { "UPDATE" } else { "CREATE" },
            "default",
            Some(&case.ingress),
        );
        check_review(&body, &uid, &case.ingress, &result, &case.config)?;
    }

    #[test]
    fn reviews_of_any_envelope_answer_with_the_same_uid(
        uid in prop_oneof![4 => uid(), 1 => Just(String::new())],
        gvk in prop::sample::select(vec![
            ("", "v1", "Pod"),
            ("networking.k8s.io", "v1", "Ingress"),
            ("networking.k8s.io", "v1beta1", "Ingress"),
            ("apps", "v1", "Deployment"),
            ("", "v1", "ConfigMap"),
        ]),
        operation in prop::sample::select(vec!["CREATE", "UPDATE", "DELETE", "CONNECT"]),
        sub_resource in prop::option::of(prop::sample::select(vec!["", "status", "ephemeralcontainers"])),
        dry_run in any::<bool>(),
        object in prop_oneof![
            4 => pod_case().prop_map(|c| Some(c.pod)),
            4 => ingress_case().prop_map(|c| Some(c.ingress)),
            1 => Just(None),
            1 => prop::sample::select(vec![json!(null), json!(1), json!("pod"), json!([]), json!({})]).prop_map(Some),
        ],
    ) {
        let mut body: Value = serde_json::from_slice(&review_body(&uid, gvk, operation, "default", object.as_ref())).unwrap();
        if let Some(s) = sub_resource {
            body["request"]["subResource"] = json!(s);
        }
        body["request"]["dryRun"] = json!(dry_run);
        let bytes = serde_json::to_vec(&body).unwrap();
        let cfg = MutationConfig::default();
        match review(&bytes, &cfg) {
            Err(e) => prop_assert!(uid.is_empty(), "malformed although well-formed: {}", e),
            Ok(reviewed) => {
                prop_assert!(!uid.is_empty());
                let response: Value = serde_json::from_slice(&reviewed.body).unwrap();
                prop_assert_eq!(response["response"]["uid"].as_str(), Some(uid.as_str()));
                let allowed = response["response"]["allowed"].as_bool();
                prop_assert!(allowed.is_some());
                if allowed == Some(false) {
                    prop_assert_eq!(&response["response"]["status"]["code"], 400);
                }
                // Only CREATE Pods and CREATE/UPDATE Ingresses, never subresources, are mutated.
                let applies = sub_resource.unwrap_or("").is_empty()
                    && match gvk {
                        ("", "v1", "Pod") => operation == "CREATE",
                        ("networking.k8s.io", "v1", "Ingress") => matches!(operation, "CREATE" | "UPDATE"),
                        _ => false,
                    };
                if !applies {
                    prop_assert_eq!(allowed, Some(true));
                    prop_assert!(response["response"].get("patch").is_none());
                }
                if let (Some(patch_b64), Some(original)) = (response["response"]["patch"].as_str(), object.as_ref()) {
                    let raw = base64::engine::general_purpose::STANDARD.decode(patch_b64).unwrap();
                    let ops: json_patch::Patch = serde_json::from_slice(&raw).unwrap();
                    let patched = patch::apply(original, &ops).unwrap();
                    // Reviewing the patched object again yields no patch.
                    let again = review_body(&uid, gvk, operation, "default", Some(&patched));
                    let again: Value = serde_json::from_slice(&review(&again, &cfg).unwrap().body).unwrap();
                    prop_assert!(again["response"].get("patch").is_none(), "{}", again);
                    prop_assert_eq!(&again["response"]["allowed"], true);
                }
            }
        }
    }

    #[test]
    fn reviews_of_arbitrary_bytes_never_panic(body in prop_oneof![
        any::<Vec<u8>>(),
        "\\PC{0,64}".prop_map(String::into_bytes),
        // Truncations and byte flips of a real review.
        (0usize..600, any::<u8>(), any::<bool>()).prop_map(|(at, byte, flip)| {
            let mut b = review_body(
                "0b4e3a1c",
                ("", "v1", "Pod"),
                "CREATE",
                "prod",
                Some(&json!({
                    "metadata": { "name": "web", "annotations": { "certweave.io/issuer": "ca",
                        "certweave.io/service": "web", "certweave.io/tls-proxy": "8443:8080" } },
                    "spec": { "containers": [{ "name": "web", "image": "web:1" }] },
                })),
            );
            let at = at.min(b.len());
            if flip && at < b.len() {
                b[at] = byte;
            } else {
                b.truncate(at);
            }
            b
        }),
    ]) {
        if let Ok(reviewed) = review(&body, &MutationConfig::default()) {
            let response: Value = serde_json::from_slice(&reviewed.body)
                .map_err(|e| TestCaseError::fail(format!("response is not JSON: {e}")))?;
            let uid = response["response"]["uid"].as_str().unwrap_or("");
            prop_assert!(!uid.is_empty());
            // serde skips fields the envelope ignores without checking their
            // escapes (a lone "\ud800" in userInfo, say), so an accepted body
            // may not parse as a `Value`; when it does, the uid must match.
            if let Ok(request) = serde_json::from_slice::<Value>(&body) {
                prop_assert_eq!(request["request"]["uid"].as_str(), Some(uid));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Hand-picked cases the generators reach only rarely.
// ---------------------------------------------------------------------------

#[test]
fn repeated_container_names_in_the_annotation_mount_once() {
    let pod = json!({
        "metadata": { "annotations": {
            "certweave.io/issuer": "ca",
            "certweave.io/service": "web",
            "certweave.io/containers": "web, web",
        } },
        "spec": { "containers": [{ "name": "web", "image": "web:1" }, { "name": "log", "image": "log:1" }] },
    });
    let case = PodCase {
        pod,
        namespace: "default".into(),
    };
    let cfg = MutationConfig::default();
    let mutated = mutate_pod(&case.pod, &case.namespace, &cfg)
        .unwrap()
        .object
        .unwrap();
    check_pod_mutation(&case, &mutated, &cfg).unwrap();
}

#[test]
fn ingress_secret_names_skip_taken_ones() {
    let ingress = json!({
        "metadata": { "name": "web", "annotations": { "cert-manager.io/cluster-issuer": "ca" } },
        "spec": {
            "rules": [{ "host": "a.example.com" }],
            "tls": [
                { "hosts": ["a.example.com"] },
                { "hosts": ["b.example.com"], "secretName": "web-tls" },
                { "hosts": ["c.example.com"], "secretName": "" },
                { "hosts": ["d.example.com"], "secretName": "web-tls-1" },
            ],
        },
    });
    let case = IngressCase {
        ingress,
        config: MutationConfig::default(),
    };
    let mutated = mutate_ingress(&case.ingress, &case.config)
        .unwrap()
        .object
        .unwrap();
    check_ingress_mutation(&case, &mutated).unwrap();
    let names: HashSet<&str> = mutated["spec"]["tls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["secretName"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

// ---------------------------------------------------------------------------
// Cost: a review of n names costs O(n), whatever list grows.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..config() })]

    /// Eight times the names costs about eight times the CPU (the bound,
    /// 24×, is three times linear; quadratic work would be 64×, the cubic
    /// Secret naming this guards against far more). Thread CPU time, the
    /// least of five runs, so other work on the machine does not count.
    #[test]
    fn review_cost_is_linear_in_the_number_of_names(
        shape in prop::sample::select(hostile::Shape::ALL.to_vec()),
        n in 1_000usize..2_500,
    ) {
        let config = MutationConfig::default();
        let cost = |n: usize| {
            let body = hostile::review(shape, n);
            let reviewed = review(&body, &config).expect("a well-formed review");
            prop_assert!(reviewed.denial.is_some(), "{} past the limit is refused", shape.label());
            Ok(hostile::least_cpu_ns(5, || {
                std::hint::black_box(review(std::hint::black_box(&body), &config).unwrap());
            }))
        };
        let small = cost(n)?.max(1);
        let large = cost(8 * n)?;
        let ratio = large as f64 / small as f64;
        prop_assert!(
            ratio < 24.0,
            "{}: {n} names {small} ns, {} names {large} ns: {ratio:.1}x for 8x the input",
            shape.label(),
            8 * n
        );
    }
}
