//! DNS-01 over RFC 2136: TXT records added and removed by dynamic update,
//! signed with TSIG, on the zone's primary name server.
//!
//! This is cert-manager's `rfc2136` solver. The flow for one challenge:
//!
//! 1. find the zone that holds `_acme-challenge.<name>` by asking the
//!    configured server for SOA records, walking up from the name (one query
//!    usually suffices: an authoritative "no such name" carries the zone's
//!    SOA);
//! 2. send an UPDATE that adds the TXT value (TTL 60) to that zone, signed
//!    with the TSIG key;
//! 3. poll the same server until it answers the value, so the ACME server is
//!    told only once the record can be seen;
//! 4. on cleanup, delete exactly that record, leaving any other TXT value at
//!    the same name (a wildcard and its apex share one name).
//!
//! Every message is TSIG-signed, queries included, and every answer's TSIG
//! is verified: the zone lookup and the propagation check then work against
//! servers whose `allow-query` is restricted to the key, and a forged "the
//! record is there" cannot cut validation short.
//!
//! The transport is plain UDP (with a TCP retry when an answer is
//! truncated) on a connected socket, written here rather than taken from
//! `hickory-net`: its client hides the response code of a rejected TSIG
//! behind a generic verification error, and telling users *why* the server
//! refused (wrong secret, unknown key, clock skew, update policy) is most of
//! this module's value. The secret is never logged nor shown by `Debug`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hickory_proto::op::{update_message, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm as HickoryTsigAlgorithm, TsigError};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, RecordSet, RecordType, TSigVerifier, TSigner};

use super::dns::wire::{self, parse_fqdn, soa_owner, txt_value};
use crate::model::IssueError;

/// TTL of the challenge record: short, so a resolver that cached a failed
/// attempt's answer forgets it quickly.
pub const CHALLENGE_TTL: u32 = 60;

/// How far apart the TSIG time may be from the server's clock (RFC 8945
/// recommends 300 s).
const TSIG_FUDGE: u16 = 300;

/// HMAC algorithms for TSIG. The older MD5 and SHA-1 variants are not
/// offered: BIND's `tsig-keygen` defaults to hmac-sha256 and RFC 8945 marks
/// MD5 deprecated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TsigAlgorithm {
    #[default]
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    fn to_hickory(self) -> HickoryTsigAlgorithm {
        match self {
            TsigAlgorithm::HmacSha256 => HickoryTsigAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha384 => HickoryTsigAlgorithm::HmacSha384,
            TsigAlgorithm::HmacSha512 => HickoryTsigAlgorithm::HmacSha512,
        }
    }
}

/// BIND's spelling, as `tsig-keygen -a` and `named.conf` use it.
impl fmt::Display for TsigAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        })
    }
}

/// A TSIG algorithm name certweave does not support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown TSIG algorithm {0:?}; use hmac-sha256, hmac-sha384 or hmac-sha512")]
pub struct UnknownTsigAlgorithm(pub String);

/// Accepts BIND's names (`hmac-sha256`, also with a trailing dot, as the
/// algorithm appears on the wire) and cert-manager's `tsigAlgorithm` values
/// (`HMACSHA256`), in any case.
impl FromStr for TsigAlgorithm {
    type Err = UnknownTsigAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normalized: String = s
            .trim()
            .trim_end_matches('.')
            .chars()
            .filter(|c| *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        match normalized.as_str() {
            "hmacsha256" => Ok(TsigAlgorithm::HmacSha256),
            "hmacsha384" => Ok(TsigAlgorithm::HmacSha384),
            "hmacsha512" => Ok(TsigAlgorithm::HmacSha512),
            _ => Err(UnknownTsigAlgorithm(s.to_owned())),
        }
    }
}

/// Where and how to send updates: cert-manager's `dns01.rfc2136` block, or
/// `certweave issue --dns01-rfc2136 SERVER --tsig-key-name --tsig-secret
/// --tsig-algorithm`.
#[derive(Clone)]
pub struct Rfc2136Config {
    /// The zone's primary server, which accepts updates.
    pub nameserver: SocketAddr,
    /// The key's name exactly as the server knows it (`key "NAME" { ... }`).
    pub tsig_key_name: String,
    /// The base64 secret, as in `named.conf` (`secret "...";`).
    pub tsig_secret: String,
    pub tsig_algorithm: TsigAlgorithm,
    /// Send every message over TCP (cert-manager's `protocol: TCP`), for
    /// servers or firewalls that take updates over TCP only; otherwise UDP,
    /// with TCP when an answer is truncated.
    pub tcp: bool,
}

/// The secret is redacted.
impl fmt::Debug for Rfc2136Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rfc2136Config")
            .field("nameserver", &self.nameserver)
            .field("tsig_key_name", &self.tsig_key_name)
            .field("tsig_secret", &"<redacted>")
            .field("tsig_algorithm", &self.tsig_algorithm)
            .field("tcp", &self.tcp)
            .finish()
    }
}

/// Presents and cleans up DNS-01 TXT records on one RFC 2136 server. Cheap
/// to share: calls for different names (or values) may run concurrently.
pub struct Rfc2136Solver {
    nameserver: SocketAddr,
    signer: TSigner,
    key_name: String,
    algorithm: TsigAlgorithm,
    propagation_timeout: Duration,
    query_timeout: Duration,
    tcp: bool,
}

impl fmt::Debug for Rfc2136Solver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rfc2136Solver")
            .field("nameserver", &self.nameserver)
            .field("tsig_key_name", &self.key_name)
            .field("tsig_algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Rfc2136Solver {
    /// Checks the configuration up front (the key name is a DNS name, the
    /// secret is non-empty base64), so a typo fails before any order is
    /// opened.
    pub fn new(config: Rfc2136Config) -> Result<Self, IssueError> {
        let secret = decode_secret(&config.tsig_secret)?;
        if config.tsig_key_name.trim().is_empty() {
            return Err(IssueError::Config(
                "--tsig-key-name is empty; give the key's name as the DNS server knows it".into(),
            ));
        }
        let mut key_name = Name::from_ascii(config.tsig_key_name.trim()).map_err(|e| {
            IssueError::Config(format!(
                "--tsig-key-name {:?} is not a valid DNS name: {e}",
                config.tsig_key_name
            ))
        })?;
        if key_name.is_root() {
            return Err(IssueError::Config(
                "--tsig-key-name is empty; give the key's name as the DNS server knows it".into(),
            ));
        }
        key_name.set_fqdn(true);
        let signer = TSigner::new(
            secret,
            config.tsig_algorithm.to_hickory(),
            key_name,
            TSIG_FUDGE,
        )
        .map_err(|e| IssueError::config_because("TSIG key", e))?;
        Ok(Self {
            nameserver: config.nameserver,
            signer,
            key_name: config.tsig_key_name.trim().to_owned(),
            algorithm: config.tsig_algorithm,
            propagation_timeout: Duration::from_secs(60),
            query_timeout: Duration::from_secs(2),
            tcp: config.tcp,
        })
    }

    /// How long [`present`](Self::present) waits for the server to answer
    /// the new record (default 60 s). A primary that applied the update
    /// answers at once; a server that does not is misbehaving, and waiting
    /// longer only delays the error.
    pub fn with_propagation_timeout(mut self, timeout: Duration) -> Self {
        self.propagation_timeout = timeout;
        self
    }

    /// Adds TXT `value` at `fqdn` (e.g. "_acme-challenge.example.com") and
    /// returns once the authoritative server answers it.
    pub async fn present(&self, fqdn: &str, value: &str) -> Result<(), IssueError> {
        let name = parse_fqdn(fqdn)?;
        let zone = self.find_zone(&name).await?;
        let mut rrset = RecordSet::with_ttl(name.clone(), RecordType::TXT, CHALLENGE_TTL);
        rrset.add_rdata(RData::TXT(txt_rdata(value)));
        let update = update_message::append(rrset, zone.clone(), false, false);
        tracing::debug!(%name, %zone, server = %self.nameserver, "adding DNS-01 TXT record");
        self.send_update(update, &zone, &name).await?;
        self.wait_for_txt(&name, value).await
    }

    /// Removes exactly that TXT record (other TXT values at the same name
    /// stay). Removing a record that is not there succeeds.
    pub async fn cleanup(&self, fqdn: &str, value: &str) -> Result<(), IssueError> {
        let name = parse_fqdn(fqdn)?;
        let zone = self.find_zone(&name).await?;
        let mut rrset = RecordSet::with_ttl(name.clone(), RecordType::TXT, 0);
        rrset.add_rdata(RData::TXT(txt_rdata(value)));
        let update = update_message::delete_by_rdata(rrset, zone.clone(), false);
        tracing::debug!(%name, %zone, server = %self.nameserver, "removing DNS-01 TXT record");
        self.send_update(update, &zone, &name).await
    }

    /// The zone (SOA owner) that contains `name` on the configured server.
    async fn find_zone(&self, name: &Name) -> Result<Name, IssueError> {
        let mut candidate = name.clone();
        let mut refused = Vec::new();
        while !candidate.is_root() {
            let answer = self.query(&candidate, RecordType::SOA).await?;
            match answer.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => {
                    if let Some(zone) = soa_owner(&answer.answers, name)
                        .filter(|zone| *zone == candidate)
                        .or_else(|| {
                            answer
                                .authoritative
                                .then(|| soa_owner(&answer.authorities, name))
                                .flatten()
                        })
                    {
                        return Ok(zone);
                    }
                    if let Some(cut) = answer
                        .authorities
                        .iter()
                        .find(|r| r.record_type() == RecordType::NS && r.name.zone_of(name))
                    {
                        return Err(IssueError::Config(format!(
                            "{name} is in zone {}, which {} delegates to other servers; point the RFC 2136 nameserver at that zone's primary",
                            cut.name, self.nameserver
                        )));
                    }
                }
                ResponseCode::Refused | ResponseCode::NotAuth => {
                    refused.push(candidate.to_string());
                }
                ResponseCode::ServFail => {
                    return Err(IssueError::Transient(format!(
                        "{} answered SERVFAIL for the SOA of {candidate}: is the zone loaded?",
                        self.nameserver
                    )));
                }
                other => {
                    return Err(IssueError::Config(format!(
                        "{} answered {} to an SOA query for {candidate}",
                        self.nameserver,
                        rcode_name(other)
                    )));
                }
            }
            candidate = candidate.base_name();
        }
        Err(IssueError::Config(format!(
            "{} serves no zone containing {name} (it refused SOA queries for {}); point the RFC 2136 nameserver at the primary of the zone that holds {name}",
            self.nameserver,
            refused.join(", ")
        )))
    }

    /// Sends a signed UPDATE and turns the server's verdict into an error a
    /// user can act on.
    async fn send_update(
        &self,
        update: Message,
        zone: &Name,
        name: &Name,
    ) -> Result<(), IssueError> {
        let answer = self.exchange(update).await?;
        match answer.response_code {
            ResponseCode::NoError => Ok(()),
            ResponseCode::Refused => Err(IssueError::Config(format!(
                "{} refused the update of {name} in zone {zone}: the zone's allow-update (or update-policy) does not grant TSIG key {:?}; add `allow-update {{ key \"{}\"; }};` to the zone on that server",
                self.nameserver, self.key_name, self.key_name
            ))),
            ResponseCode::NotZone => Err(IssueError::Config(format!(
                "{} says {name} is not in zone {zone} (NOTZONE); is the zone delegated further down?",
                self.nameserver
            ))),
            ResponseCode::ServFail => Err(IssueError::Transient(format!(
                "{} failed to apply the update of {name} in zone {zone} (SERVFAIL)",
                self.nameserver
            ))),
            other => Err(IssueError::Config(format!(
                "{} rejected the update of {name} in zone {zone}: {}",
                self.nameserver,
                rcode_name(other)
            ))),
        }
    }

    /// Polls the server until it answers `value` at `name`, with a backoff
    /// from 50 ms to 2 s, for at most the propagation timeout. A lost or
    /// failed poll is retried like a negative answer; a configuration error
    /// (the key rejected) ends the wait at once.
    async fn wait_for_txt(&self, name: &Name, value: &str) -> Result<(), IssueError> {
        let deadline = Instant::now() + self.propagation_timeout;
        let mut pause = Duration::from_millis(50);
        let mut last_failure = None;
        loop {
            match self.query(name, RecordType::TXT).await {
                Ok(answer)
                    if answer.response_code == ResponseCode::NoError
                        && answer.answers.iter().any(|record| {
                            record.name == *name
                                && matches!(&record.data, RData::TXT(txt) if txt_value(txt) == value.as_bytes())
                        }) =>
                {
                    return Ok(());
                }
                Ok(answer) => {
                    if let Some(target) = answer.answers.iter().find_map(|record| match &record.data {
                        RData::CNAME(target) if record.name == *name => Some(target.0.clone()),
                        _ => None,
                    }) {
                        return Err(IssueError::Config(format!(
                            "{name} is a CNAME to {target}, so {} keeps the TXT record beside it unanswered; \
                             set `cnameStrategy: Follow` on the DNS-01 solver to put the record at the CNAME's target",
                            self.nameserver
                        )));
                    }
                }
                Err(IssueError::Transient(reason)) => last_failure = Some(reason),
                Err(other) => return Err(other),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(IssueError::Transient(format!(
                    "{} accepted the TXT record at {name} but still does not answer it after {}s{}",
                    self.nameserver,
                    self.propagation_timeout.as_secs(),
                    last_failure
                        .map(|r| format!(" (last poll: {r})"))
                        .unwrap_or_default()
                )));
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// A signed, non-recursive query; the answer's TSIG is verified.
    async fn query(&self, name: &Name, record_type: RecordType) -> Result<Message, IssueError> {
        let mut message = Message::query();
        message.metadata.recursion_desired = false;
        let mut query = Query::query(name.clone(), record_type);
        query.set_query_class(DNSClass::IN);
        message.add_query(query);
        self.exchange(message).await
    }

    /// Signs `message`, sends it, and returns the verified answer. TSIG
    /// rejections become [`IssueError::Config`]; silence becomes
    /// [`IssueError::Transient`].
    async fn exchange(&self, mut message: Message) -> Result<Message, IssueError> {
        let verifier = message
            .finalize(&self.signer, unix_now())
            .map_err(|e| IssueError::config_because("cannot sign the DNS message", e))?;
        let request = message
            .to_vec()
            .map_err(|e| IssueError::config_because("cannot encode the DNS message", e))?;
        let bytes = wire::exchange(
            self.nameserver,
            &request,
            message.id,
            self.tcp,
            self.query_timeout,
        )
        .await?;
        let answer = Message::from_vec(&bytes).map_err(|e| {
            IssueError::Transient(format!("unreadable answer from {}: {e}", self.nameserver))
        })?;
        if answer.message_type != MessageType::Response || answer.op_code != message.op_code {
            return Err(IssueError::Transient(format!(
                "{} sent something that is not an answer to our {:?}",
                self.nameserver, message.op_code
            )));
        }
        self.check_tsig(&answer, verifier, &bytes)?;
        Ok(answer)
    }

    /// Maps the server's TSIG verdict to an error, then verifies its
    /// signature on the answer.
    fn check_tsig(
        &self,
        answer: &Message,
        verifier: Option<TSigVerifier>,
        bytes: &[u8],
    ) -> Result<(), IssueError> {
        let tsig_error = answer.signature().and_then(|r| r.data.error);
        let reason = match (&tsig_error, answer.response_code) {
            (Some(TsigError::BadSig), _) | (None, ResponseCode::BADSIG) => {
                Some("BADSIG: the signature did not verify, so the secret or algorithm is wrong")
            }
            (Some(TsigError::BadKey), _) | (None, ResponseCode::BADKEY) => Some(
                "BADKEY: the server has no key by that name and algorithm",
            ),
            (Some(TsigError::BadTime), _) | (None, ResponseCode::BADTIME) => Some(
                "BADTIME: the clocks of this machine and the server differ by more than 5 minutes",
            ),
            (Some(_), _) => Some("the server rejected the signature"),
            (None, ResponseCode::NotAuth) => Some(
                "NOTAUTH: the key was not accepted, or the server is not authoritative for the zone",
            ),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(IssueError::Config(format!(
                "TSIG rejected by {} ({reason}): check --tsig-key-name/--tsig-secret/--tsig-algorithm (key {:?}, {})",
                self.nameserver, self.key_name, self.algorithm
            )));
        }
        if let Some(mut verifier) = verifier {
            verifier.verify(bytes).map_err(|e| {
                IssueError::transient_because(
                    format!(
                        "the answer from {} failed TSIG verification",
                        self.nameserver
                    ),
                    e,
                )
            })?;
        }
        Ok(())
    }
}

/// Decodes the base64 secret, with or without padding, ignoring the line
/// breaks a copy from `named.conf` may carry.
fn decode_secret(secret: &str) -> Result<Vec<u8>, IssueError> {
    let compact: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(IssueError::Config(
            "--tsig-secret is empty; give the key's base64 secret as in named.conf".into(),
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .map_err(|e| {
            IssueError::Config(format!(
                "--tsig-secret is not valid base64 ({e}); copy the `secret` value from the key's named.conf block"
            ))
        })
}

/// TXT character-strings hold at most 255 bytes; longer values are split
/// and read back joined (RFC 7208 §3.3 style).
fn txt_rdata(value: &str) -> TXT {
    TXT::from_bytes(value.as_bytes().chunks(255).collect())
}

fn rcode_name(code: ResponseCode) -> String {
    format!("{} ({})", code.to_str(), u16::from(code))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_and_accept_cert_manager_spelling() {
        for alg in [
            TsigAlgorithm::HmacSha256,
            TsigAlgorithm::HmacSha384,
            TsigAlgorithm::HmacSha512,
        ] {
            assert_eq!(alg.to_string().parse::<TsigAlgorithm>(), Ok(alg));
        }
        assert_eq!("HMACSHA384".parse(), Ok(TsigAlgorithm::HmacSha384));
        assert_eq!("hmac-sha512.".parse(), Ok(TsigAlgorithm::HmacSha512));
        assert!("hmac-md5".parse::<TsigAlgorithm>().is_err());
    }

    fn config(secret: &str, key: &str) -> Rfc2136Config {
        Rfc2136Config {
            nameserver: "127.0.0.1:53".parse().unwrap(),
            tsig_key_name: key.into(),
            tsig_secret: secret.into(),
            tsig_algorithm: TsigAlgorithm::HmacSha256,
            tcp: false,
        }
    }

    #[test]
    fn bad_secrets_are_config_errors_that_name_the_flag() {
        for secret in ["", "not base64!!", "   "] {
            match Rfc2136Solver::new(config(secret, "acme")) {
                Err(IssueError::Config(msg)) => assert!(msg.contains("--tsig-secret"), "{msg}"),
                other => panic!("{secret:?}: {other:?}"),
            }
        }
        assert!(Rfc2136Solver::new(config("c2VjcmV0", "acme")).is_ok());
        assert!(Rfc2136Solver::new(config("c2VjcmV0", "")).is_err());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let cfg = config("c3VwZXJzZWNyZXQ=", "acme");
        assert!(!format!("{cfg:?}").contains("c3VwZXJzZWNyZXQ"));
        let solver = Rfc2136Solver::new(cfg).unwrap();
        assert!(!format!("{solver:?}").contains("c3VwZXJzZWNyZXQ"));
    }

    #[test]
    fn long_txt_values_are_split_and_joined() {
        let value = "x".repeat(600);
        let txt = txt_rdata(&value);
        assert_eq!(txt.txt_data.len(), 3);
        assert_eq!(txt_value(&txt), value.as_bytes());
    }
}
