//! `spec.keystores`: which PKCS#12 and JKS keystores a Certificate's Secret
//! gets, and the passwords they are encrypted with. A password is given
//! literally (`password`) or read from a Secret in the Certificate's
//! namespace (`passwordSecretRef`); the caller fetches the Secrets that
//! [`KeystoreRequest::secret_refs`] names and passes them to
//! [`KeystoreRequest::resolve`], as for an issuer's Secrets.

use super::acme_settings::SecretValues;
use super::certificate_fields::{CertificateKeystores, Keystore};
use super::InvalidField;
use crate::store::keystore::{JksOutput, Keystores, Pkcs12Output, Pkcs12Profile};
use crate::store::ObjectKey;

/// The JKS alias cert-manager uses when none is given.
pub const DEFAULT_JKS_ALIAS: &str = "certificate";

/// Longest password accepted (keytool takes any; a limit keeps a hostile
/// value from being copied around).
const MAX_PASSWORD: usize = 1024;

/// Where a keystore password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Literal(String),
    Secret { name: String, key: String },
}

/// The keystores asked for, checked, with their passwords still to fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeystoreRequest {
    pub pkcs12: Option<(PasswordSource, Pkcs12Profile)>,
    pub jks: Option<(PasswordSource, String)>,
}

impl KeystoreRequest {
    /// Checks `spec.keystores`, adding every problem to `errors`.
    pub fn check(spec: Option<&CertificateKeystores>, errors: &mut Vec<InvalidField>) -> Self {
        let Some(spec) = spec else {
            return Self::default();
        };
        let pkcs12 = spec.pkcs12.as_ref().filter(|k| k.create).and_then(|k| {
            let source = password_source("spec.keystores.pkcs12", k, errors)?;
            let profile = match k.profile.as_deref() {
                None | Some("LegacyRC2" | "LegacyDES") => Pkcs12Profile::LegacyDes,
                Some("Modern2023") => Pkcs12Profile::Modern2023,
                Some(other) => {
                    errors.push(InvalidField::new(
                        "spec.keystores.pkcs12.profile",
                        format!(
                            "unknown profile {:?}",
                            other.chars().take(64).collect::<String>()
                        ),
                        "use LegacyRC2, LegacyDES or Modern2023",
                    ));
                    return None;
                }
            };
            Some((source, profile))
        });
        let jks = spec.jks.as_ref().filter(|k| k.create).and_then(|k| {
            let source = password_source("spec.keystores.jks", k, errors)?;
            let alias = k
                .alias
                .clone()
                .unwrap_or_else(|| DEFAULT_JKS_ALIAS.to_owned());
            if alias.is_empty() || alias.len() > 255 {
                errors.push(InvalidField::new(
                    "spec.keystores.jks.alias",
                    "must be 1 to 255 characters",
                    format!("use a short alias, or omit it for {DEFAULT_JKS_ALIAS:?}"),
                ));
                return None;
            }
            Some((source, alias))
        });
        Self { pkcs12, jks }
    }

    /// The Secrets (by name, in the Certificate's namespace) that hold
    /// passwords.
    pub fn secret_refs(&self) -> Vec<&str> {
        [
            self.pkcs12.as_ref().map(|p| &p.0),
            self.jks.as_ref().map(|j| &j.0),
        ]
        .into_iter()
        .flatten()
        .filter_map(|source| match source {
            PasswordSource::Secret { name, .. } => Some(name.as_str()),
            PasswordSource::Literal(_) => None,
        })
        .collect()
    }

    /// The keystores with their passwords, read from `secrets` where they
    /// come from a Secret of `namespace`.
    pub fn resolve(&self, namespace: &str, secrets: &SecretValues) -> Result<Keystores, String> {
        let password = |field: &str, source: &PasswordSource| -> Result<String, String> {
            let value = match source {
                PasswordSource::Literal(password) => password.clone(),
                PasswordSource::Secret { name, key } => secrets
                    .get(&ObjectKey::new(namespace, name.clone()))
                    .and_then(|data| data.get(key))
                    .cloned()
                    .ok_or_else(|| {
                        format!("{field}.passwordSecretRef: Secret {namespace}/{name} has no key {key:?} yet; create it with the keystore password")
                    })?,
            };
            if value.is_empty() || value.len() > MAX_PASSWORD {
                return Err(format!(
                    "{field}: the password is empty or longer than {MAX_PASSWORD} bytes; give a password of 1 to {MAX_PASSWORD} bytes"
                ));
            }
            Ok(value)
        };
        Ok(Keystores {
            pkcs12: match &self.pkcs12 {
                Some((source, profile)) => Some(Pkcs12Output {
                    password: password("spec.keystores.pkcs12", source)?,
                    profile: *profile,
                }),
                None => None,
            },
            jks: match &self.jks {
                Some((source, alias)) => Some(JksOutput {
                    password: password("spec.keystores.jks", source)?,
                    alias: alias.clone(),
                }),
                None => None,
            },
        })
    }
}

fn password_source(
    field: &str,
    keystore: &Keystore,
    errors: &mut Vec<InvalidField>,
) -> Option<PasswordSource> {
    match (&keystore.password, &keystore.password_secret_ref) {
        (Some(password), None) => Some(PasswordSource::Literal(password.clone())),
        (None, Some(reference)) => match &reference.key {
            Some(key) if !key.is_empty() && !reference.name.is_empty() => {
                Some(PasswordSource::Secret {
                    name: reference.name.clone(),
                    key: key.clone(),
                })
            }
            _ => {
                errors.push(InvalidField::new(
                    format!("{field}.passwordSecretRef"),
                    "needs a name and a key",
                    "name the Secret and the key in it that holds the password",
                ));
                None
            }
        },
        _ => {
            errors.push(InvalidField::new(
                field,
                "needs exactly one of password and passwordSecretRef",
                "give the password in a Secret (passwordSecretRef: {name, key}) or literally (password)",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::certificate_fields::KeystorePasswordRef;

    fn keystore(password: Option<&str>, secret: Option<(&str, Option<&str>)>) -> Keystore {
        Keystore {
            create: true,
            password: password.map(str::to_owned),
            password_secret_ref: secret.map(|(name, key)| KeystorePasswordRef {
                name: name.into(),
                key: key.map(str::to_owned),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn passwords_come_from_the_spec_or_a_secret() {
        let spec = CertificateKeystores {
            pkcs12: Some(Keystore {
                profile: Some("Modern2023".into()),
                ..keystore(None, Some(("pw", Some("password"))))
            }),
            jks: Some(keystore(Some("changeit"), None)),
        };
        let mut errors = Vec::new();
        let request = KeystoreRequest::check(Some(&spec), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(request.secret_refs(), ["pw"]);
        let missing = request.resolve("shop", &SecretValues::new()).unwrap_err();
        assert!(
            missing.contains("Secret shop/pw has no key \"password\""),
            "{missing}"
        );
        let secrets = SecretValues::from([(
            ObjectKey::new("shop", "pw"),
            BTreeMap::from([("password".to_owned(), "s3cret".to_owned())]),
        )]);
        let resolved = request.resolve("shop", &secrets).unwrap();
        let pkcs12 = resolved.pkcs12.unwrap();
        assert_eq!(
            (pkcs12.password.as_str(), pkcs12.profile),
            ("s3cret", Pkcs12Profile::Modern2023)
        );
        let jks = resolved.jks.unwrap();
        assert_eq!(
            (jks.password.as_str(), jks.alias.as_str()),
            ("changeit", "certificate")
        );
    }

    #[test]
    fn a_keystore_needs_exactly_one_password_and_a_known_profile() {
        for (spec, field) in [
            (keystore(None, None), "spec.keystores.jks"),
            (
                keystore(Some("a"), Some(("pw", Some("k")))),
                "spec.keystores.jks",
            ),
            (
                keystore(None, Some(("pw", None))),
                "spec.keystores.jks.passwordSecretRef",
            ),
        ] {
            let mut errors = Vec::new();
            let spec = CertificateKeystores {
                jks: Some(spec),
                pkcs12: None,
            };
            KeystoreRequest::check(Some(&spec), &mut errors);
            assert_eq!(errors.len(), 1, "{field}");
            assert_eq!(errors[0].field, field);
        }
        let mut errors = Vec::new();
        let spec = CertificateKeystores {
            pkcs12: Some(Keystore {
                profile: Some("RC4".into()),
                ..keystore(Some("a"), None)
            }),
            jks: None,
        };
        KeystoreRequest::check(Some(&spec), &mut errors);
        assert_eq!(errors[0].field, "spec.keystores.pkcs12.profile");
        // create: false asks for nothing.
        let spec = CertificateKeystores {
            pkcs12: Some(Keystore {
                create: false,
                ..Default::default()
            }),
            jks: None,
        };
        let mut errors = Vec::new();
        assert_eq!(
            KeystoreRequest::check(Some(&spec), &mut errors),
            KeystoreRequest::default()
        );
        assert!(errors.is_empty());
    }
}
