//! The cert-manager Ingress annotations that shape the resulting Certificate
//! (`cert-manager.io/duration`, `private-key-algorithm`, ...), validated once
//! so the webhook can refuse a typo before the controller ever sees it.
//!
//! The checked values are kept in the Certificate's own fields and spelling
//! (the annotations use cert-manager's, as `spec.privateKey` does), so the
//! ingress rules copy them onto the Certificate as they are: nothing is
//! turned into an enum here only to be written back as a string and parsed
//! again by [`CertificateSpec::plan`](super::certificate::CertificateSpec::plan),
//! which alone maps them onto the engine's types.

use std::time::Duration;

use super::annotations as ann;
use super::certificate::CertificatePrivateKey;
use super::duration::parse_go_duration;
use super::InvalidField;

/// Certificate fields overridden by Ingress annotations, checked, in the
/// Certificate's types. `None` means "use the Certificate default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateOverrides {
    pub common_name: Option<String>,
    /// `spec.duration`: a positive Go duration, as written.
    pub duration: Option<String>,
    /// `spec.renewBefore`: a positive Go duration shorter than `duration`,
    /// as written.
    pub renew_before: Option<String>,
    /// `spec.privateKey`, when any of the key annotations is set.
    pub private_key: Option<CertificatePrivateKey>,
    /// `cert-manager.io/alt-names`: DNS names added to every Certificate.
    pub alt_names: Vec<String>,
    /// `cert-manager.io/ip-sans`: IP addresses added to every Certificate.
    pub ip_sans: Vec<String>,
}

/// Most names one list annotation may add (Let's Encrypt's limit).
const MAX_EXTRA_NAMES: usize = 100;

/// A comma-separated list annotation: trimmed, empty items dropped,
/// duplicates dropped, at most 100.
pub fn comma_list(key: &str, value: &str) -> Result<Vec<String>, InvalidField> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if out.len() == MAX_EXTRA_NAMES {
            return Err(InvalidField::new(
                key,
                format!("lists more than {MAX_EXTRA_NAMES} entries"),
                "list fewer, or split the object",
            ));
        }
        if seen.insert(item) {
            out.push(item.to_owned());
        }
    }
    Ok(out)
}

impl CertificateOverrides {
    /// Adds the `alt-names` and `ip-sans` entries to a Certificate spec
    /// made for the object, without repeating a name it has.
    pub fn add_extra_names(&self, spec: &mut super::certificate::CertificateSpec) {
        for name in &self.alt_names {
            if !spec.dns_names.contains(name) {
                spec.dns_names.push(name.clone());
            }
        }
        for ip in &self.ip_sans {
            if !spec.ip_addresses.contains(ip) {
                spec.ip_addresses.push(ip.clone());
            }
        }
    }
}

/// The longest common name X.509 allows (RFC 5280 `ub-common-name`).
const MAX_COMMON_NAME: usize = 64;

impl CertificateOverrides {
    /// Reads and checks the override annotations through `lookup`, which
    /// returns an annotation's value by key.
    pub fn from_annotations<'a>(
        lookup: impl Fn(&str) -> Result<Option<&'a str>, InvalidField>,
    ) -> Result<Self, InvalidField> {
        let mut out = Self::default();
        if let Some(cn) = lookup(ann::COMMON_NAME)? {
            if cn.is_empty() || cn.len() > MAX_COMMON_NAME {
                return Err(InvalidField::new(
                    ann::COMMON_NAME,
                    format!("{cn:?} is empty or longer than {MAX_COMMON_NAME} characters"),
                    "use a short name (usually one of the hosts), or drop the annotation",
                ));
            }
            out.common_name = Some(cn.to_owned());
        }
        let duration = lookup(ann::DURATION)?
            .map(|d| positive(ann::DURATION, d).map(|value| (d, value)))
            .transpose()?;
        let renew_before = lookup(ann::RENEW_BEFORE)?
            .map(|d| positive(ann::RENEW_BEFORE, d).map(|value| (d, value)))
            .transpose()?;
        if let (Some((_, duration)), Some((_, renew_before))) = (duration, renew_before) {
            if renew_before >= duration {
                return Err(InvalidField::new(
                    ann::RENEW_BEFORE,
                    format!(
                        "renew-before ({renew_before:?}) is not shorter than the duration ({duration:?})"
                    ),
                    "renew-before must be less than cert-manager.io/duration, e.g. a third of it",
                ));
            }
        }
        out.duration = duration.map(|(text, _)| text.to_owned());
        out.renew_before = renew_before.map(|(text, _)| text.to_owned());

        let algorithm = match lookup(ann::PRIVATE_KEY_ALGORITHM)? {
            Some(alg @ ("RSA" | "ECDSA" | "Ed25519")) => Some(alg),
            Some(other) => {
                return Err(InvalidField::new(
                    ann::PRIVATE_KEY_ALGORITHM,
                    format!("unknown algorithm {other:?}"),
                    "use \"RSA\", \"ECDSA\" or \"Ed25519\"",
                ))
            }
            None => None,
        };
        let size = lookup(ann::PRIVATE_KEY_SIZE)?
            .map(|size| key_size(size, algorithm))
            .transpose()?;
        let rotation_policy = match lookup(ann::PRIVATE_KEY_ROTATION_POLICY)? {
            Some(policy @ ("Never" | "Always")) => Some(policy),
            Some(other) => {
                return Err(InvalidField::new(
                    ann::PRIVATE_KEY_ROTATION_POLICY,
                    format!("unknown policy {other:?}"),
                    "use \"Always\" (new key on every issuance) or \"Never\"",
                ))
            }
            None => None,
        };
        if let Some(value) = lookup(ann::ALT_NAMES)? {
            out.alt_names = comma_list(ann::ALT_NAMES, value)?;
            for name in &out.alt_names {
                super::names::check_dns_name(ann::ALT_NAMES, name)?;
            }
        }
        if let Some(value) = lookup(ann::IP_SANS)? {
            out.ip_sans = comma_list(ann::IP_SANS, value)?;
            for ip in &out.ip_sans {
                if ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(InvalidField::new(
                        ann::IP_SANS,
                        format!(
                            "{:?} is not an IP address",
                            ip.chars().take(64).collect::<String>()
                        ),
                        "list IPv4 or IPv6 addresses, comma-separated",
                    ));
                }
            }
        }
        if algorithm.is_some() || size.is_some() || rotation_policy.is_some() {
            out.private_key = Some(CertificatePrivateKey {
                algorithm: algorithm.map(str::to_owned),
                // As the Certificate's field: a size that passed the checks
                // for RSA or ECDSA fits; Ed25519 ignores it.
                size: size.map(|s| s as i32),
                encoding: None,
                rotation_policy: rotation_policy.map(str::to_owned),
            });
        }
        Ok(out)
    }
}

fn positive(field: &str, value: &str) -> Result<Duration, InvalidField> {
    let d = parse_go_duration(field, value)?;
    if d.is_zero() {
        return Err(InvalidField::new(
            field,
            "the duration is zero",
            "give a positive Go duration such as \"720h\"",
        ));
    }
    Ok(d)
}

/// Key sizes cert-manager accepts: RSA (the default algorithm) 2048-8192
/// bits, ECDSA curves 256/384/521, anything for Ed25519 (which has one size).
fn key_size(value: &str, algorithm: Option<&str>) -> Result<u32, InvalidField> {
    let size: u32 = value.trim().parse().map_err(|_| {
        InvalidField::new(
            ann::PRIVATE_KEY_SIZE,
            format!("{value:?} is not a number"),
            "write the size in bits, e.g. \"2048\" for RSA or \"256\" for ECDSA",
        )
    })?;
    let ok = match algorithm {
        None | Some("RSA") => (2048..=8192).contains(&size),
        Some("ECDSA") => matches!(size, 256 | 384 | 521),
        Some(_) => true,
    };
    if !ok {
        return Err(InvalidField::new(
            ann::PRIVATE_KEY_SIZE,
            format!("{size} is not a valid size for this key algorithm"),
            "use 2048-8192 for RSA, or 256, 384 or 521 for ECDSA",
        ));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(pairs: &[(&str, &'static str)]) -> Result<CertificateOverrides, InvalidField> {
        let map: HashMap<String, &'static str> =
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        CertificateOverrides::from_annotations(|k| Ok(map.get(k).copied()))
    }

    #[test]
    fn reads_every_override() {
        let o = parse(&[
            (ann::COMMON_NAME, "example.com"),
            (ann::DURATION, "720h"),
            (ann::RENEW_BEFORE, "240h"),
            (ann::PRIVATE_KEY_ALGORITHM, "ECDSA"),
            (ann::PRIVATE_KEY_SIZE, "384"),
            (ann::PRIVATE_KEY_ROTATION_POLICY, "Always"),
        ])
        .unwrap();
        assert_eq!(o.common_name.as_deref(), Some("example.com"));
        assert_eq!(o.duration.as_deref(), Some("720h"));
        assert_eq!(o.renew_before.as_deref(), Some("240h"));
        assert_eq!(
            o.private_key,
            Some(CertificatePrivateKey {
                algorithm: Some("ECDSA".into()),
                size: Some(384),
                encoding: None,
                rotation_policy: Some("Always".into()),
            })
        );
        assert_eq!(parse(&[]).unwrap(), CertificateOverrides::default());
        let extra = parse(&[
            (
                ann::ALT_NAMES,
                " www.example.com,, api.example.com ,www.example.com",
            ),
            (ann::IP_SANS, "192.0.2.1, 2001:db8::1"),
        ])
        .unwrap();
        assert_eq!(extra.alt_names, ["www.example.com", "api.example.com"]);
        assert_eq!(extra.ip_sans, ["192.0.2.1", "2001:db8::1"]);
    }

    #[test]
    fn refuses_inconsistent_values() {
        let cases: &[(&[(&str, &'static str)], &str)] = &[
            (
                &[(ann::DURATION, "1h"), (ann::RENEW_BEFORE, "2h")],
                ann::RENEW_BEFORE,
            ),
            (
                &[(ann::ALT_NAMES, "ok.example.com, bad..name")],
                ann::ALT_NAMES,
            ),
            (&[(ann::IP_SANS, "192.0.2.1,not-an-ip")], ann::IP_SANS),
            (
                &[(ann::PRIVATE_KEY_ALGORITHM, "DSA")],
                ann::PRIVATE_KEY_ALGORITHM,
            ),
            (
                &[
                    (ann::PRIVATE_KEY_ALGORITHM, "ECDSA"),
                    (ann::PRIVATE_KEY_SIZE, "2048"),
                ],
                ann::PRIVATE_KEY_SIZE,
            ),
            (&[(ann::PRIVATE_KEY_SIZE, "big")], ann::PRIVATE_KEY_SIZE),
            (
                &[(ann::PRIVATE_KEY_ROTATION_POLICY, "Sometimes")],
                ann::PRIVATE_KEY_ROTATION_POLICY,
            ),
            (&[(ann::DURATION, "0s")], ann::DURATION),
            (&[(ann::COMMON_NAME, "")], ann::COMMON_NAME),
        ];
        for (pairs, field) in cases {
            assert_eq!(parse(pairs).unwrap_err().field, *field);
        }
    }
}
