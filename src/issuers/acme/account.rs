//! ACME account keys: where they are kept, how they sign, and how an
//! account is found or registered with them.
//!
//! The key *is* the account: ACME servers identify an account by its public
//! key, and rate limits, authorizations and external account bindings hang
//! off it. So a key is created once (ECDSA P-256), stored before it is
//! registered, and reused for every order afterwards; a stored key is never
//! replaced by a new one.
//!
//! cert-manager stores RSA-2048 PKCS#1 account keys, and users migrating to
//! certweave keep those Secrets. instant-acme only signs with P-256, so
//! certweave signs every JWS itself (see [`super::client`]): ES256 for P-256
//! keys and RS256 for RSA keys, against the same account URL the key was
//! registered with by cert-manager. Other key types (P-384, Ed25519) are
//! refused with a message that says why, rather than registering a new
//! account behind the user's back.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;

use crate::model::IssueError;
use crate::pki::{KeyAlgorithm, KeyEncoding, PrivateKey};
use crate::store::files;

/// A boxed future, so key stores can be trait objects (the Kubernetes store
/// is async; the file store is not).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, IssueError>> + Send + 'a>>;

/// Where the account key lives: a file for `certweave issue`, the Secret
/// named by `privateKeySecretRef` in the cluster.
pub trait AccountKeyStore: Send + Sync {
    /// The stored key as PEM, or `None` when there is none yet.
    fn load(&self) -> StoreFuture<'_, Option<String>>;
    /// Stores a freshly generated key. Must fail with
    /// [`SaveOutcome::AlreadyExists`] rather than replace a key that
    /// appeared in the meantime (another process won the race): the caller
    /// then uses that one.
    fn save_new<'a>(&'a self, pem: &'a str) -> StoreFuture<'a, SaveOutcome>;
    /// Where the key is, for messages: "file /etc/acme/account.key".
    fn describe(&self) -> String;
}

/// What [`AccountKeyStore::save_new`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveOutcome {
    Saved,
    AlreadyExists,
}

/// The account key in a PEM file (`certweave issue --account-key FILE`),
/// written with mode 0600 and never overwritten.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    path: PathBuf,
}

impl FileKeyStore {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl AccountKeyStore for FileKeyStore {
    fn load(&self) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move {
            match tokio::fs::read_to_string(&self.path).await {
                Ok(pem) => Ok(Some(pem)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(IssueError::config_because(
                    format!("cannot read the account key {}", self.path.display()),
                    e,
                )),
            }
        })
    }

    fn save_new<'a>(&'a self, pem: &'a str) -> StoreFuture<'a, SaveOutcome> {
        Box::pin(async move {
            let path = self.path.clone();
            let pem = pem.to_owned();
            let result = tokio::task::spawn_blocking(move || {
                files::create_new_private(&path, pem.as_bytes())
            })
            .await
            .map_err(|e| IssueError::transient_because("key store task failed", e))?;
            match result {
                Ok(()) => Ok(SaveOutcome::Saved),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(SaveOutcome::AlreadyExists)
                }
                Err(e) => Err(IssueError::config_because(
                    format!("cannot write the account key {}", self.path.display()),
                    e,
                )),
            }
        })
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// An account key held in memory: for callers that persist the PEM
/// themselves (read it back with [`MemoryKeyStore::pem`]) and for tests.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    pem: std::sync::Mutex<Option<String>>,
}

impl MemoryKeyStore {
    pub fn new(pem: Option<String>) -> Self {
        Self {
            pem: std::sync::Mutex::new(pem),
        }
    }

    /// The key, once one was loaded or generated.
    pub fn pem(&self) -> Option<String> {
        self.pem.lock().expect("key store lock").clone()
    }
}

impl AccountKeyStore for MemoryKeyStore {
    fn load(&self) -> StoreFuture<'_, Option<String>> {
        Box::pin(async move { Ok(self.pem()) })
    }

    fn save_new<'a>(&'a self, pem: &'a str) -> StoreFuture<'a, SaveOutcome> {
        Box::pin(async move {
            let mut slot = self.pem.lock().expect("key store lock");
            if slot.is_some() {
                return Ok(SaveOutcome::AlreadyExists);
            }
            *slot = Some(pem.to_owned());
            Ok(SaveOutcome::Saved)
        })
    }

    fn describe(&self) -> String {
        "in-memory account key".into()
    }
}

/// A private key that can sign ACME requests (JWS, RFC 7515).
pub struct AccountKey {
    signer: Signer,
    /// The public key as a JWK with only the required members in
    /// lexicographic order: RFC 7638's input to the thumbprint.
    jwk: String,
    thumbprint: String,
    /// PKCS#8 PEM, for storing a key this process generated.
    pem: String,
}

enum Signer {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountKey({}, <redacted>)", self.algorithm())
    }
}

impl AccountKey {
    /// A new ECDSA P-256 key, the algorithm every ACME server accepts.
    pub fn generate() -> Result<Self, IssueError> {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
        Self::from_private_key(&key)
    }

    /// Reads a stored key: P-256 in PKCS#8 or SEC1, or RSA (2048 bits or
    /// more) in PKCS#8 or PKCS#1, as cert-manager writes them.
    pub fn from_pem(pem: &str) -> Result<Self, IssueError> {
        let key = PrivateKey::from_pem(pem)
            .map_err(|e| IssueError::config_because("the ACME account key is unusable", e))?;
        Self::from_private_key(&key)
    }

    fn from_private_key(key: &PrivateKey) -> Result<Self, IssueError> {
        let pkcs8 = key.key_pair().serialize_der();
        let pem = key.to_pem(KeyEncoding::Pkcs8)?;
        let unusable = |what: &str| {
            IssueError::Config(format!(
                "the ACME account key cannot sign: {what} (the key is kept; nothing was registered)"
            ))
        };
        match key.algorithm() {
            KeyAlgorithm::EcdsaP256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8,
                    &SystemRandom::new(),
                )
                .map_err(|e| unusable(&e.to_string()))?;
                // Uncompressed point: 0x04 || x || y.
                let point = pair.public_key().as_ref();
                let (x, y) = point[1..].split_at(32);
                let jwk = format!(
                    r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
                    BASE64_URL_SAFE_NO_PAD.encode(x),
                    BASE64_URL_SAFE_NO_PAD.encode(y)
                );
                Ok(Self::new(Signer::Es256(pair), jwk, pem))
            }
            KeyAlgorithm::Rsa(_) => {
                let pair = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|e| unusable(&e.to_string()))?;
                let rsa = rsa::RsaPrivateKey::from_pkcs8_der(&pkcs8)
                    .map_err(|e| unusable(&e.to_string()))?;
                let jwk = format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    BASE64_URL_SAFE_NO_PAD.encode(rsa.e().to_bytes_be()),
                    BASE64_URL_SAFE_NO_PAD.encode(rsa.n().to_bytes_be())
                );
                Ok(Self::new(Signer::Rs256(pair), jwk, pem))
            }
            other => Err(IssueError::Config(format!(
                "the ACME account key is {other}; ACME accounts need an ECDSA P-256 or RSA key. \
                 The key was left as it is and no new account was registered: point the account \
                 key at a P-256 or RSA key, or remove it to have a new P-256 account created"
            ))),
        }
    }

    fn new(signer: Signer, jwk: String, pem: String) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, jwk.as_bytes());
        Self {
            signer,
            thumbprint: BASE64_URL_SAFE_NO_PAD.encode(digest.as_ref()),
            jwk,
            pem,
        }
    }

    /// The JWS `alg`: `ES256` or `RS256`.
    pub fn algorithm(&self) -> &'static str {
        match self.signer {
            Signer::Es256(_) => "ES256",
            Signer::Rs256(_) => "RS256",
        }
    }

    /// The public key as a JWK (JSON text).
    pub fn jwk(&self) -> &str {
        &self.jwk
    }

    /// The RFC 7638 thumbprint, base64url: the second half of every key
    /// authorization.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// `token.thumbprint`: what HTTP-01 serves and DNS-01 hashes.
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint)
    }

    /// The DNS-01 TXT value: base64url(SHA-256(key authorization)).
    pub fn dns01_value(&self, token: &str) -> String {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            self.key_authorization(token).as_bytes(),
        );
        BASE64_URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// PKCS#8 PEM.
    pub fn to_pem(&self) -> &str {
        &self.pem
    }

    /// Signs `message` (the JWS signing input) in the JWS encoding of the
    /// key's algorithm: r || s for ECDSA, PKCS#1 v1.5 for RSA.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IssueError> {
        let rng = SystemRandom::new();
        let failed = |_| IssueError::Transient("signing an ACME request failed".into());
        match &self.signer {
            Signer::Es256(pair) => Ok(pair.sign(&rng, message).map_err(failed)?.as_ref().to_vec()),
            Signer::Rs256(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &rng,
                    message,
                    &mut signature,
                )
                .map_err(failed)?;
                Ok(signature)
            }
        }
    }
}

/// The account certweave acts as, once found or registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// The account URL (the JWS `kid`); it never changes for a key.
    pub url: String,
    /// Whether this login registered the account (the server answered 201)
    /// rather than finding the existing one (200).
    pub created: bool,
    /// Whether the key was generated by this login (there was none stored).
    pub key_generated: bool,
}

/// Loads the stored key; its absence is a configuration error (the key is
/// provisioned out of band: cert-manager's `disableAccountKeyGeneration`).
pub async fn load_key(store: &dyn AccountKeyStore) -> Result<AccountKey, IssueError> {
    match store.load().await? {
        Some(pem) => AccountKey::from_pem(&pem),
        None => Err(IssueError::Config(format!(
            "there is no ACME account key in {}, and account key generation is disabled (disableAccountKeyGeneration); store the account's PEM key there, or remove disableAccountKeyGeneration to register a new account",
            store.describe()
        ))),
    }
}

/// Loads the stored key, or generates and stores a new P-256 key when there
/// is none. The key is stored *before* it is registered, so a crash cannot
/// leave an account whose key was lost.
pub async fn load_or_create_key(
    store: &dyn AccountKeyStore,
) -> Result<(AccountKey, bool), IssueError> {
    if let Some(pem) = store.load().await? {
        return Ok((AccountKey::from_pem(&pem)?, false));
    }
    let key = AccountKey::generate()?;
    match store.save_new(key.to_pem()).await? {
        SaveOutcome::Saved => {
            tracing::info!(store = %store.describe(), "created a new ACME account key");
            Ok((key, true))
        }
        SaveOutcome::AlreadyExists => {
            let pem = store.load().await?.ok_or_else(|| {
                IssueError::Transient(format!(
                    "the account key in {} appeared and vanished while it was being created",
                    store.describe()
                ))
            })?;
            Ok((AccountKey::from_pem(&pem)?, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p256_thumbprint_matches_rfc7638_form() {
        let key = AccountKey::generate().unwrap();
        assert_eq!(key.algorithm(), "ES256");
        assert!(key.jwk().starts_with(r#"{"crv":"P-256","kty":"EC","x":""#));
        // SHA-256 is 32 bytes: 43 base64url characters without padding.
        assert_eq!(key.thumbprint().len(), 43);
        let again = AccountKey::from_pem(key.to_pem()).unwrap();
        assert_eq!(again.thumbprint(), key.thumbprint());
        assert_eq!(
            key.key_authorization("tok"),
            format!("tok.{}", key.thumbprint())
        );
    }

    #[test]
    fn rsa_pkcs1_keys_as_cert_manager_writes_them_sign_rs256() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let rsa = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let pem = rsa.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let key = AccountKey::from_pem(&pem).unwrap();
        assert_eq!(key.algorithm(), "RS256");
        let signature = key.sign(b"protected.payload").unwrap();
        assert_eq!(signature.len(), 256);
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(&rsa.to_public_key())
                .unwrap()
                .as_bytes()
                .to_vec(),
        );
        public.verify(b"protected.payload", &signature).unwrap();
        assert!(key.jwk().starts_with(r#"{"e":"AQAB","kty":"RSA","n":""#));
    }

    #[test]
    fn es256_signatures_are_fixed_width_and_verify() {
        let key = AccountKey::generate().unwrap();
        let signature = key.sign(b"input").unwrap();
        assert_eq!(signature.len(), 64);
        let Signer::Es256(pair) = &key.signer else {
            panic!("generated keys are P-256")
        };
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            pair.public_key().as_ref(),
        )
        .verify(b"input", &signature)
        .unwrap();
    }

    #[test]
    fn other_key_types_are_refused_with_the_reason() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        let pem = key.to_pem(KeyEncoding::Pkcs8).unwrap();
        let err = AccountKey::from_pem(&pem).unwrap_err().to_string();
        assert!(err.contains("P-256 or RSA"), "{err}");
        assert!(err.contains("no new account was registered"), "{err}");
    }

    #[tokio::test]
    async fn a_stored_key_is_reused_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path().join("account.key"));
        let (first, generated) = load_or_create_key(&store).await.unwrap();
        assert!(generated);
        let (second, generated) = load_or_create_key(&store).await.unwrap();
        assert!(!generated);
        assert_eq!(first.thumbprint(), second.thumbprint());
        assert_eq!(
            store.save_new("other").await.unwrap(),
            SaveOutcome::AlreadyExists
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("account.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
