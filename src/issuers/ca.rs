//! The CA issuer: signs with a CA certificate and key the user provides
//! (cert-manager's `ca: {secretName}`).

use std::time::SystemTime;

use super::{IssueError, Issuer};
use crate::model::{Bundle, CertificateRequest, IssuerUrls, RequestOrigin, SignedCsr};
use crate::pki::{self, CertInfo, PrivateKey};

/// A loaded, checked CA. `tls.crt` of issued bundles is the leaf followed by
/// the CA's chain without its self-signed root; `ca.crt` is that root (or
/// the top of the CA's chain when the root is not included).
pub struct CaIssuer {
    /// The CA's certificates, the signing CA first, as PEM blocks.
    chain: Vec<String>,
    /// Whether the last certificate of `chain` is a self-signed root.
    top_is_self_signed: bool,
    ca_info: CertInfo,
    key: PrivateKey,
    /// Written into every certificate signed (`ca.crlDistributionPoints`,
    /// `ca.ocspServers`, `ca.issuingCertificateURLs`).
    urls: IssuerUrls,
}
impl std::fmt::Debug for CaIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaIssuer")
            .field("subject", &self.ca_info.subject_cn)
            .finish_non_exhaustive()
    }
}

impl CaIssuer {
    /// Loads a CA from PEM, refusing certificates that are not CAs and keys
    /// that do not belong to them, with a message that says which.
    pub fn from_pem(ca_cert_pem: &str, ca_key_pem: &str) -> Result<Self, IssueError> {
        let ders = pki::parse_pem_chain(ca_cert_pem)?;
        let first = ders.first().ok_or_else(|| {
            IssueError::Config("the CA certificate file holds no certificate".into())
        })?;
        let ca_info = CertInfo::parse(first, 0)?;
        if !ca_info.is_ca {
            return Err(IssueError::Config(format!(
                "certificate {:?} is not a CA (basicConstraints CA:TRUE is missing); issue it with isCA: true",
                ca_info.subject_cn.as_deref().unwrap_or("")
            )));
        }
        let key = PrivateKey::from_pem(ca_key_pem)
            .map_err(|e| IssueError::config_because("CA key", e))?;
        if key.public_key_der() != ca_info.spki_der {
            return Err(IssueError::Config(
                "the CA key does not belong to the CA certificate".into(),
            ));
        }
        if SystemTime::now() >= ca_info.not_after {
            return Err(IssueError::Config(
                "the CA certificate has expired; renew the CA first".into(),
            ));
        }
        let top = ders.len() - 1;
        let top_is_self_signed = CertInfo::parse(&ders[top], top)?.self_signed;
        let chain = ders.iter().map(|der| pki::certificate_pem(der)).collect();
        Ok(Self {
            chain,
            top_is_self_signed,
            ca_info,
            key,
            urls: IssuerUrls::default(),
        })
    }

    /// The CA, writing `urls` into every certificate it signs.
    pub fn with_urls(mut self, urls: IssuerUrls) -> Self {
        self.urls = urls;
        self
    }

    /// The synchronous core.
    pub fn sign(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
    ) -> Result<Bundle, IssueError> {
        let now = SystemTime::now();
        let (chain_pem, ca_pem) = self.signed_chain(request, key.key_pair(), now)?;
        super::checked_bundle(request, key, chain_pem, ca_pem, now)
    }

    /// Signs the public key of a certificate signing request made elsewhere.
    pub fn sign_request(
        &self,
        request: &CertificateRequest,
        csr: &SignedCsr,
    ) -> Result<Bundle, IssueError> {
        let now = SystemTime::now();
        let public_key =
            pki::csr_public_key(csr).map_err(|e| IssueError::config_because("the request", e))?;
        let (chain_pem, ca_pem) = self.signed_chain(request, &public_key, now)?;
        super::checked_csr_bundle(request, csr, chain_pem, Some(ca_pem), now)
    }

    /// The leaf for `public_key` followed by the CA's intermediates, and
    /// the top of the CA's chain (for `ca.crt`).
    fn signed_chain(
        &self,
        request: &CertificateRequest,
        public_key: &impl rcgen::PublicKeyData,
        now: SystemTime,
    ) -> Result<(String, String), IssueError> {
        let mut params = pki::certificate_params(request, now)?;
        pki::add_issuer_urls(&mut params, &self.urls);
        // Nothing may outlive the CA that signed it.
        let ca_not_after = self
            .ca_info
            .not_after
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        if let Ok(limit) = time::OffsetDateTime::from_unix_timestamp(ca_not_after) {
            params.not_after = params.not_after.min(limit);
        }
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.chain[0], self.key.key_pair())
            .map_err(|e| IssueError::config_because("CA certificate", e))?;
        let leaf = params
            .signed_by(public_key, &issuer)
            .map_err(|e| IssueError::from(pki::PkiError::Build(e.to_string())))?;

        // tls.crt carries the intermediates, not the self-signed root;
        // ca.crt is the top of the CA's chain.
        let last = self.chain.len() - 1;
        let intermediates = if self.top_is_self_signed {
            &self.chain[..last]
        } else {
            &self.chain[..]
        };
        let ca_pem = self.chain[last].clone();
        let mut chain_pem = leaf.pem();
        for cert in intermediates {
            chain_pem.push_str(cert);
        }
        Ok((chain_pem, ca_pem))
    }
}

impl Issuer for CaIssuer {
    fn kind(&self) -> &'static str {
        "ca"
    }

    async fn issue(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        _origin: &RequestOrigin,
    ) -> Result<Bundle, IssueError> {
        self.sign(request, key)
    }

    async fn sign_csr<'a>(
        &'a self,
        request: &'a CertificateRequest,
        csr: &'a SignedCsr,
        _origin: &'a RequestOrigin,
    ) -> Result<Bundle, IssueError> {
        self.sign_request(request, csr)
    }
}
