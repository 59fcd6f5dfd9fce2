//! The cert-manager Ingress annotations that shape the resulting Certificate
//! (`cert-manager.io/duration`, `private-key-algorithm`, ...), validated once
//! so the webhook can refuse a typo before the controller ever sees it.

use std::time::Duration;

use super::annotations as ann;
use super::duration::parse_go_duration;
use super::InvalidField;

/// Private key algorithms as cert-manager spells them in `privateKey.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa,
    Ecdsa,
    Ed25519,
}

/// When to generate a fresh private key, as `privateKey.rotationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationPolicy {
    Never,
    Always,
}

/// Certificate fields overridden by Ingress annotations. `None` means "use
/// the Certificate default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateOverrides {
    pub common_name: Option<String>,
    pub duration: Option<Duration>,
    pub renew_before: Option<Duration>,
    pub key_algorithm: Option<KeyAlgorithm>,
    pub key_size: Option<u32>,
    pub rotation_policy: Option<RotationPolicy>,
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
        if let Some(d) = lookup(ann::DURATION)? {
            out.duration = Some(positive(ann::DURATION, d)?);
        }
        if let Some(d) = lookup(ann::RENEW_BEFORE)? {
            out.renew_before = Some(positive(ann::RENEW_BEFORE, d)?);
        }
        if let (Some(duration), Some(renew_before)) = (out.duration, out.renew_before) {
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
        if let Some(alg) = lookup(ann::PRIVATE_KEY_ALGORITHM)? {
            out.key_algorithm = Some(match alg {
                "RSA" => KeyAlgorithm::Rsa,
                "ECDSA" => KeyAlgorithm::Ecdsa,
                "Ed25519" => KeyAlgorithm::Ed25519,
                other => {
                    return Err(InvalidField::new(
                        ann::PRIVATE_KEY_ALGORITHM,
                        format!("unknown algorithm {other:?}"),
                        "use \"RSA\", \"ECDSA\" or \"Ed25519\"",
                    ))
                }
            });
        }
        if let Some(size) = lookup(ann::PRIVATE_KEY_SIZE)? {
            out.key_size = Some(key_size(size, out.key_algorithm)?);
        }
        if let Some(policy) = lookup(ann::PRIVATE_KEY_ROTATION_POLICY)? {
            out.rotation_policy = Some(match policy {
                "Never" => RotationPolicy::Never,
                "Always" => RotationPolicy::Always,
                other => {
                    return Err(InvalidField::new(
                        ann::PRIVATE_KEY_ROTATION_POLICY,
                        format!("unknown policy {other:?}"),
                        "use \"Always\" (new key on every issuance) or \"Never\"",
                    ))
                }
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

/// Key sizes cert-manager accepts: RSA 2048-8192 bits, ECDSA curves 256/384/521.
fn key_size(value: &str, algorithm: Option<KeyAlgorithm>) -> Result<u32, InvalidField> {
    let size: u32 = value.trim().parse().map_err(|_| {
        InvalidField::new(
            ann::PRIVATE_KEY_SIZE,
            format!("{value:?} is not a number"),
            "write the size in bits, e.g. \"2048\" for RSA or \"256\" for ECDSA",
        )
    })?;
    let ok = match algorithm.unwrap_or(KeyAlgorithm::Rsa) {
        KeyAlgorithm::Rsa => (2048..=8192).contains(&size),
        KeyAlgorithm::Ecdsa => matches!(size, 256 | 384 | 521),
        KeyAlgorithm::Ed25519 => true,
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
        assert_eq!(o.duration, Some(Duration::from_secs(720 * 3600)));
        assert_eq!(o.key_algorithm, Some(KeyAlgorithm::Ecdsa));
        assert_eq!(o.key_size, Some(384));
        assert_eq!(o.rotation_policy, Some(RotationPolicy::Always));
    }

    #[test]
    fn refuses_inconsistent_values() {
        let cases: &[(&[(&str, &'static str)], &str)] = &[
            (
                &[(ann::DURATION, "1h"), (ann::RENEW_BEFORE, "2h")],
                ann::RENEW_BEFORE,
            ),
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
