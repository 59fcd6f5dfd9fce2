//! DNS messages on the wire: one question, one answer, over UDP (TCP when
//! the answer is truncated, or always when asked), with deadlines. Shared
//! by the RFC 2136 provider (signed updates) and the propagation checks
//! (plain queries), written here rather than taken from `hickory-net` for
//! the reasons [`super::super::dns01`] gives.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::model::IssueError;

/// Sends `request` (whose message id is `id`) to `server` and returns the
/// raw answer: over TCP when `tcp`, else over UDP with a TCP retry when
/// the answer is truncated. `query_timeout` is the first UDP try's wait.
pub(crate) async fn exchange(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    tcp: bool,
    query_timeout: Duration,
) -> Result<Vec<u8>, IssueError> {
    if tcp {
        return send_tcp(server, request, id, query_timeout).await;
    }
    let bytes = send_udp(server, request, id, query_timeout).await?;
    if Message::from_vec(&bytes).is_ok_and(|m| m.truncation) {
        return send_tcp(server, request, id, query_timeout).await;
    }
    Ok(bytes)
}

/// An unsigned query for `name`'s `record_type` records, parsed. Answers
/// that are not responses to it are transient errors.
pub(crate) async fn query(
    server: SocketAddr,
    name: &Name,
    record_type: RecordType,
    recursion_desired: bool,
    query_timeout: Duration,
) -> Result<Message, IssueError> {
    let mut message = Message::query();
    message.metadata.recursion_desired = recursion_desired;
    let mut question = Query::query(name.clone(), record_type);
    question.set_query_class(DNSClass::IN);
    message.add_query(question);
    let request = message
        .to_vec()
        .map_err(|e| IssueError::config_because("cannot encode the DNS query", e))?;
    let bytes = exchange(server, &request, message.id, false, query_timeout).await?;
    let answer = Message::from_vec(&bytes)
        .map_err(|e| IssueError::Transient(format!("unreadable answer from {server}: {e}")))?;
    if answer.id != message.id || answer.queries != message.queries {
        return Err(IssueError::Transient(format!(
            "{server} answered another question than {name} {record_type}"
        )));
    }
    Ok(answer)
}

/// One request over UDP, retried on silence (each try waits twice as
/// long), on a socket connected to the server so only its datagrams are
/// read. Returns the raw answer.
async fn send_udp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    query_timeout: Duration,
) -> Result<Vec<u8>, IssueError> {
    let unreachable = |e: std::io::Error| {
        IssueError::transient_because(format!("cannot reach DNS server {server}"), e)
    };
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(unreachable)?;
    socket.connect(server).await.map_err(unreachable)?;
    let mut buf = vec![0u8; 65535];
    let mut wait = query_timeout / 2;
    let mut waited = Duration::ZERO;
    for _ in 0..3 {
        socket.send(request).await.map_err(unreachable)?;
        let until = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(until, socket.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) => return Err(unreachable(e)),
                // Stray datagrams (a late answer to an earlier try has the
                // same id and is as good) are skipped by id.
                Ok(Ok(len)) if len >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                    return Ok(buf[..len].to_vec())
                }
                Ok(Ok(_)) => continue,
            }
        }
        waited += wait;
        wait *= 2;
    }
    Err(IssueError::Transient(format!(
        "no answer from DNS server {server} after 3 tries over {:.1}s",
        waited.as_secs_f64()
    )))
}

/// One request over TCP (RFC 1035 §4.2.2 length-prefixed), for answers
/// too large for UDP.
async fn send_tcp(
    server: SocketAddr,
    request: &[u8],
    id: u16,
    query_timeout: Duration,
) -> Result<Vec<u8>, IssueError> {
    let fail = |e: std::io::Error| {
        IssueError::transient_because(format!("DNS over TCP to {server} failed"), e)
    };
    let exchange = async {
        let mut stream = TcpStream::connect(server).await?;
        let len =
            u16::try_from(request.len()).map_err(|_| std::io::Error::other("request too large"))?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(request);
        stream.write_all(&framed).await?;
        loop {
            let len = stream.read_u16().await? as usize;
            let mut answer = vec![0u8; len];
            stream.read_exact(&mut answer).await?;
            if len >= 2 && u16::from_be_bytes([answer[0], answer[1]]) == id {
                return Ok(answer);
            }
        }
    };
    match tokio::time::timeout(query_timeout * 2, exchange).await {
        Ok(result) => result.map_err(fail),
        Err(_) => Err(IssueError::Transient(format!(
            "no answer from DNS server {server} over TCP within {}s",
            (query_timeout * 2).as_secs()
        ))),
    }
}

/// `fqdn` as an absolute name (the trailing dot optional).
pub(crate) fn parse_fqdn(fqdn: &str) -> Result<Name, IssueError> {
    let mut name = Name::from_ascii(fqdn.trim()).map_err(|e| {
        IssueError::Config(format!(
            "{:?} is not a valid DNS name: {e}",
            crate::model::text::cut(fqdn, crate::model::text::QUOTED)
        ))
    })?;
    if name.is_root() {
        return Err(IssueError::Config(
            "cannot present a DNS-01 record at the root".into(),
        ));
    }
    name.set_fqdn(true);
    Ok(name)
}

/// A TXT record's character-strings joined: values over 255 bytes are
/// split into several (RFC 7208 §3.3 style).
pub(crate) fn txt_value(txt: &TXT) -> Vec<u8> {
    txt.txt_data
        .iter()
        .flat_map(|s| s.iter().copied())
        .collect()
}

/// The owner of an SOA record in `records` that encloses `name`.
pub(crate) fn soa_owner(records: &[Record], name: &Name) -> Option<Name> {
    records
        .iter()
        .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(name))
        .map(|r| r.name.clone())
}
