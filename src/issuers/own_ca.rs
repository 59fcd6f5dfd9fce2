//! A CA certweave makes and keeps for itself, and the serving certificates
//! it signs with it.
//!
//! Two entry points need a certificate before anyone has configured an
//! issuer: the controller's webhook (the API server only calls a webhook
//! over TLS it can verify) and `certweave local` (the shipped examples must
//! work with no external service). Both bootstrap the same way — a
//! self-signed CA, reused while it has enough life left, signing leaves
//! with fresh keys — and differ only in where the PEM documents are kept
//! (a Secret, a directory), which stays with them. Keeping the bootstrap
//! here means a fix to how a self-made CA is judged or rotated reaches both.

use std::time::{Duration, SystemTime};

use super::ca::CaIssuer;
use super::selfsigned::SelfSignedIssuer;
use crate::model::{Bundle, CertificateRequest, IssueError, RenewBefore};
use crate::pki::{self, KeyAlgorithm, KeyEncoding, PrivateKey};

/// What a self-made CA is called, how long it lives, and when it is
/// replaced.
#[derive(Debug, Clone, Copy)]
pub struct CaSpec {
    pub common_name: &'static str,
    pub lifetime: Duration,
    pub renew_before: RenewBefore,
}

/// A self-made CA: its PEM documents, to be stored, and the issuer they make.
pub struct OwnCa {
    cert_pem: String,
    key_pem: String,
    issuer: CaIssuer,
}

impl std::fmt::Debug for OwnCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnCa")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl OwnCa {
    /// A new self-signed CA (ECDSA P-256, PKCS#8 key).
    pub fn create(spec: &CaSpec) -> Result<Self, IssueError> {
        let mut request = CertificateRequest::for_dns_names(Vec::<String>::new());
        request.common_name = Some(spec.common_name.into());
        request.is_ca = true;
        request.duration = spec.lifetime;
        request.key_algorithm = KeyAlgorithm::EcdsaP256;
        request.key_encoding = KeyEncoding::Pkcs8;
        let key = PrivateKey::generate(request.key_algorithm)?;
        let bundle = SelfSignedIssuer::default().sign(&request, &key)?;
        let issuer = CaIssuer::from_pem(&bundle.chain_pem, &bundle.key_pem)?;
        Ok(Self {
            cert_pem: bundle.chain_pem,
            key_pem: bundle.key_pem,
            issuer,
        })
    }

    /// The stored CA, if it is a CA whose key matches and it is not yet
    /// due for replacement under `spec` at `now`; `None` means make a new one.
    pub fn reuse(spec: &CaSpec, cert_pem: &str, key_pem: &str, now: SystemTime) -> Option<Self> {
        let ca = pki::check_bundle(cert_pem, key_pem, None, now)
            .ok()
            .filter(|ca| ca.is_ca)?;
        if now >= spec.renew_before.renewal_time(ca.not_before, ca.not_after) {
            return None;
        }
        let issuer = CaIssuer::from_pem(cert_pem, key_pem).ok()?;
        Some(Self {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA as a bundle to store: its certificate, its key, and itself
    /// as the root.
    pub fn bundle(&self) -> Bundle {
        Bundle {
            chain_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
            ca_pem: Some(self.cert_pem.clone()),
        }
    }

    /// The issuer the CA signs with.
    pub fn into_issuer(self) -> CaIssuer {
        self.issuer
    }

    /// A serving certificate for `request`, with a newly generated key.
    pub fn issue_serving(&self, request: &CertificateRequest) -> Result<Bundle, IssueError> {
        let key = PrivateKey::generate(request.key_algorithm)?;
        self.issuer.sign(request, &key)
    }

    /// Whether `cert_pem` and `key_pem` are a leaf of this CA that still
    /// matches `request` and is before its renewal time.
    pub fn still_serves(
        &self,
        cert_pem: &str,
        key_pem: &str,
        request: &CertificateRequest,
        now: SystemTime,
    ) -> bool {
        pki::check_bundle(cert_pem, key_pem, Some(request), now)
            .ok()
            .is_some_and(|leaf| {
                now < RenewBefore::Default.renewal_time(leaf.not_before, leaf.not_after)
                    && pki::verify_chain_to_root(cert_pem, &self.cert_pem).is_ok()
            })
    }
}

/// A serving certificate request: the names, a PKCS#8 key (what every
/// TLS library reads), and the lifetime.
pub fn serving_request(
    dns_names: Vec<String>,
    ip_addresses: Vec<std::net::IpAddr>,
    lifetime: Option<Duration>,
) -> CertificateRequest {
    let mut request = CertificateRequest::for_dns_names(dns_names);
    request.ip_addresses = ip_addresses;
    if let Some(lifetime) = lifetime {
        request.duration = lifetime;
    }
    request.key_encoding = KeyEncoding::Pkcs8;
    request
}

/// A self-made CA and a serving certificate it signed, as stored together.
#[derive(Clone, PartialEq, Eq)]
pub struct ServingPair {
    pub ca_crt: String,
    pub ca_key: String,
    pub tls_crt: String,
    pub tls_key: String,
    /// The CA this one replaced, while it has not expired. Servers pick up
    /// a new serving certificate some time apart; until they all have, some
    /// still serve a leaf of the old CA, so clients must trust both.
    pub previous_ca_crt: Option<String>,
}

impl std::fmt::Debug for ServingPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingPair").finish_non_exhaustive()
    }
}

impl ServingPair {
    /// What clients trust: the CA, then the one it replaced, if any.
    pub fn ca_bundle(&self) -> String {
        match &self.previous_ca_crt {
            Some(previous) => format!("{}\n{}", self.ca_crt.trim_end(), previous.trim_end()),
            None => self.ca_crt.clone(),
        }
    }
}

/// What to store instead of `existing`, or `None` when it is fine: the CA
/// is kept until `ca` says to replace it, the serving certificate while it
/// is signed by that CA, matches `serving` and is before its renewal time.
/// A replaced CA stays as `previous_ca_crt` until it expires.
pub fn plan(
    existing: Option<&ServingPair>,
    ca: &CaSpec,
    serving: &CertificateRequest,
    now: SystemTime,
) -> Result<Option<ServingPair>, IssueError> {
    let kept = existing.and_then(|s| OwnCa::reuse(ca, &s.ca_crt, &s.ca_key, now).map(|c| (s, c)));
    let (own_ca, previous_ca_crt) = match kept {
        Some((s, own_ca)) => {
            let previous = s
                .previous_ca_crt
                .clone()
                .filter(|previous| unexpired_ca(previous, now));
            if own_ca.still_serves(&s.tls_crt, &s.tls_key, serving, now) {
                if previous == s.previous_ca_crt {
                    return Ok(None);
                }
                // Only the replaced CA expired: drop it from the bundle.
                return Ok(Some(ServingPair {
                    previous_ca_crt: previous,
                    ..s.clone()
                }));
            }
            (own_ca, previous)
        }
        None => {
            let previous = existing
                .map(|s| s.ca_crt.clone())
                .filter(|previous| unexpired_ca(previous, now));
            (OwnCa::create(ca)?, previous)
        }
    };
    let leaf = own_ca.issue_serving(serving)?;
    Ok(Some(ServingPair {
        ca_crt: own_ca.cert_pem,
        ca_key: own_ca.key_pem,
        tls_crt: leaf.chain_pem,
        tls_key: leaf.key_pem,
        previous_ca_crt,
    }))
}

/// Whether `pem` starts with a CA certificate that is still valid at `now`.
fn unexpired_ca(pem: &str, now: SystemTime) -> bool {
    pki::parse_pem_chain(pem)
        .ok()
        .and_then(|chain| {
            chain
                .first()
                .and_then(|der| pki::CertInfo::parse(der, 0).ok())
        })
        .is_some_and(|ca| ca.is_ca && now < ca.not_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    #[test]
    fn a_ca_is_reused_until_its_renewal_time_and_signs_serving_leaves() {
        let spec = CaSpec {
            common_name: "test CA",
            lifetime: 100 * DAY,
            renew_before: RenewBefore::Fixed(10 * DAY),
        };
        let now = SystemTime::now();
        let ca = OwnCa::create(&spec).unwrap();
        let stored = ca.bundle();
        assert_eq!(stored.ca_pem.as_deref(), Some(ca.cert_pem()));
        let reused = OwnCa::reuse(&spec, &stored.chain_pem, &stored.key_pem, now).unwrap();
        assert!(OwnCa::reuse(&spec, &stored.chain_pem, &stored.key_pem, now + 91 * DAY).is_none());
        assert!(OwnCa::reuse(&spec, &stored.chain_pem, "garbage", now).is_none());
        let renewed = OwnCa::create(&spec).unwrap();
        assert_ne!(renewed.cert_pem(), ca.cert_pem());

        let request = serving_request(vec!["svc.test".into()], Vec::new(), Some(30 * DAY));
        let leaf = reused.issue_serving(&request).unwrap();
        pki::verify_chain_to_root(&leaf.chain_pem, ca.cert_pem()).unwrap();
        assert!(ca.still_serves(&leaf.chain_pem, &leaf.key_pem, &request, now));
        assert!(!ca.still_serves(&leaf.chain_pem, &leaf.key_pem, &request, now + 25 * DAY));
        assert!(!renewed.still_serves(&leaf.chain_pem, &leaf.key_pem, &request, now));
    }
}
