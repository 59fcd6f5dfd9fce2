//! What an issuer returns and a store keeps.

/// A signed certificate with its key, as written to a Secret: `tls.crt`
/// (leaf first, then intermediates), `tls.key`, and `ca.crt` when known.
#[derive(Clone, PartialEq, Eq)]
pub struct Bundle {
    pub chain_pem: String,
    pub key_pem: String,
    pub ca_pem: Option<String>,
}

/// Never print key material, even in debug logs.
impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &"<redacted>")
            .field(
                "ca_pem",
                &self.ca_pem.as_ref().map(|c| format!("{} bytes", c.len())),
            )
            .finish()
    }
}
