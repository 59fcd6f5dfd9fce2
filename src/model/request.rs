//! What a certificate should say: the request every issuer signs.

use std::net::IpAddr;
use std::time::Duration;

use super::key::{KeyAlgorithm, KeyEncoding};
use super::subject::Subject;

/// cert-manager's default certificate lifetime (`duration`: 2160h, 90 days).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(2160 * 3600);

/// A certificate signing request made elsewhere (the `spec.request` of a
/// CertificateRequest resource), parsed and its signature checked (see
/// `pki::parse_csr`). Its private key stays with whoever made it, so an
/// issuer signs its public key as it is.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedCsr {
    /// The request as DER: what an ACME order is finalized with.
    pub der: Vec<u8>,
    /// Its SubjectPublicKeyInfo: what the certificate must carry.
    pub spki_der: Vec<u8>,
}

impl std::fmt::Debug for SignedCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedCsr")
            .field("der", &format_args!("{} bytes", self.der.len()))
            .finish_non_exhaustive()
    }
}

/// What a certificate should say. Mirrors the Certificate spec fields that
/// end up inside the certificate; scheduling fields live with the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    pub common_name: Option<String>,
    /// Subject attributes besides the common name (`spec.subject`).
    pub subject: Subject,
    /// The whole subject, exactly as given (`spec.literalSubject`); set
    /// instead of `common_name` and `subject`.
    pub literal_subject: Option<super::LiteralSubject>,
    /// `otherName` subject alternative names with UTF-8 string values
    /// (`spec.otherNames`, e.g. a Microsoft UPN).
    pub other_names: Vec<OtherName>,
    /// Name constraints of a CA certificate (`spec.nameConstraints`).
    pub name_constraints: Option<NameConstraints>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub email_addresses: Vec<String>,
    /// Requested lifetime. ACME servers choose their own; SelfSigned and CA honour it.
    pub duration: Duration,
    pub is_ca: bool,
    /// Key usages; empty means cert-manager's default (digital signature,
    /// key encipherment, server auth).
    pub usages: Vec<KeyUsage>,
    pub key_algorithm: KeyAlgorithm,
    pub key_encoding: KeyEncoding,
}

impl CertificateRequest {
    /// A server certificate for `dns_names` with every other field defaulted.
    pub fn for_dns_names(dns_names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            common_name: None,
            subject: Subject::default(),
            literal_subject: None,
            other_names: Vec::new(),
            name_constraints: None,
            dns_names: dns_names.into_iter().map(Into::into).collect(),
            ip_addresses: Vec::new(),
            uris: Vec::new(),
            email_addresses: Vec::new(),
            duration: DEFAULT_DURATION,
            is_ca: false,
            usages: Vec::new(),
            key_algorithm: KeyAlgorithm::default(),
            key_encoding: KeyEncoding::default(),
        }
    }

    /// Every identifier, for messages: "example.com, 10.0.0.1, ...".
    pub fn describe_names(&self) -> String {
        let mut names: Vec<String> = self.common_name.iter().cloned().collect();
        names.extend(self.dns_names.iter().cloned());
        names.extend(self.ip_addresses.iter().map(ToString::to_string));
        names.extend(self.uris.iter().cloned());
        names.extend(self.email_addresses.iter().cloned());
        names.dedup();
        names.join(", ")
    }

    /// The usages in effect: the requested ones, or cert-manager's default.
    pub fn effective_usages(&self) -> Vec<KeyUsage> {
        if !self.usages.is_empty() {
            return self.usages.clone();
        }
        if self.is_ca {
            vec![
                KeyUsage::DigitalSignature,
                KeyUsage::CertSign,
                KeyUsage::CrlSign,
            ]
        } else {
            vec![
                KeyUsage::DigitalSignature,
                KeyUsage::KeyEncipherment,
                KeyUsage::ServerAuth,
            ]
        }
    }
}

/// An `otherName` subject alternative name: a type identifier and a UTF-8
/// string value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherName {
    /// The type's object identifier, as arcs (`1.3.6.1.4.1.311.20.2.3`: UPN).
    pub oid: Vec<u64>,
    pub value: String,
}

impl std::fmt::Display for OtherName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let oid: Vec<String> = self.oid.iter().map(u64::to_string).collect();
        write!(f, "{}={}", oid.join("."), self.value)
    }
}

/// The names a CA certificate may sign for (`permitted`) and may not
/// (`excluded`), RFC 5280 §4.2.1.10; written critical.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameConstraints {
    pub permitted: NameSubtrees,
    pub excluded: NameSubtrees,
}

/// One side of [`NameConstraints`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameSubtrees {
    /// `example.com` (the domain and its subdomains) or `.example.com`.
    pub dns_domains: Vec<String>,
    /// CIDR ranges, checked: `10.0.0.0/8`, `2001:db8::/32`.
    pub ip_ranges: Vec<String>,
    /// A mailbox, a host, or `.example.com` for a domain's mailboxes.
    pub email_addresses: Vec<String>,
}

impl std::fmt::Display for NameConstraints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (side, trees) in [("permitted", &self.permitted), ("excluded", &self.excluded)] {
            write!(
                f,
                "{side}(dns={};ip={};email={})",
                trees.dns_domains.join(","),
                trees.ip_ranges.join(","),
                trees.email_addresses.join(",")
            )?;
        }
        Ok(())
    }
}

/// Where relying parties find revocation and the issuer's certificate:
/// URLs an issuer writes into every certificate it signs (cert-manager's
/// `ca.crlDistributionPoints`, `ca.ocspServers`,
/// `ca.issuingCertificateURLs`, `selfSigned.crlDistributionPoints`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerUrls {
    /// CRL distribution points extension.
    pub crl_distribution_points: Vec<String>,
    /// Authority information access, OCSP.
    pub ocsp_servers: Vec<String>,
    /// Authority information access, CA issuers.
    pub issuing_certificate_urls: Vec<String>,
}

impl IssuerUrls {
    pub fn is_empty(&self) -> bool {
        self.crl_distribution_points.is_empty()
            && self.ocsp_servers.is_empty()
            && self.issuing_certificate_urls.is_empty()
    }
}

/// Whether a re-issue gets a fresh key (`privateKey.rotationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyRotation {
    /// A new key on every issuance (cert-manager's default since v1.18).
    #[default]
    Always,
    /// Reuse the stored key while it still matches the requested algorithm.
    Never,
}

/// Key usages and extended key usages, named as cert-manager's `usages`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUsage {
    DigitalSignature,
    KeyEncipherment,
    CertSign,
    CrlSign,
    ServerAuth,
    ClientAuth,
}

impl KeyUsage {
    /// Parses cert-manager's spelling (`"digital signature"`, `"server auth"`, ...).
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "digital signature" => KeyUsage::DigitalSignature,
            "key encipherment" => KeyUsage::KeyEncipherment,
            "cert sign" => KeyUsage::CertSign,
            "crl sign" => KeyUsage::CrlSign,
            "server auth" => KeyUsage::ServerAuth,
            "client auth" => KeyUsage::ClientAuth,
            _ => return None,
        })
    }
}
