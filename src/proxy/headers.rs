//! Header rewriting between the client and the upstream.
//!
//! A proxy is two hops, so the headers that describe one hop (RFC 9110
//! section 7.6.1: `Connection` and every header it names, `Keep-Alive`,
//! `Transfer-Encoding`, `TE`, `Upgrade`, …) must not be forwarded as they
//! are: each side of the proxy sets its own. Upgrades (WebSocket) are the
//! exception the caller handles by putting `Connection: upgrade` and
//! `Upgrade` back. The upstream learns who the client was from
//! `X-Forwarded-For` (the client's address appended to any list the client
//! sent, so only the last entry is trustworthy) and `X-Forwarded-Proto:
//! https`.

use std::net::IpAddr;

use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE,
    TRAILER, TRANSFER_ENCODING, UPGRADE,
};

/// Headers that never cross the proxy as they are. Typed names, not
/// strings: a string would be parsed and hashed on every request.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Whether the `Connection` header(s) list `token` (case-insensitive).
fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The protocol an HTTP/1.1 message asks to switch to (`Upgrade` header,
/// announced in `Connection`), if any.
pub(crate) fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    if !connection_has(headers, "upgrade") {
        return None;
    }
    headers.get(UPGRADE).cloned()
}

/// Removes the hop-by-hop headers, including every header the `Connection`
/// header names. `TE: trailers` is kept: gRPC needs it end to end and it is
/// the only `TE` value HTTP/2 allows.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages (every HTTP/2 one) carry none of them: one look at each
    // name settles that without a hash lookup per listed header. Headers
    // that `Connection` names need no look of their own: without a
    // `Connection` header there are none.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let keep_te = headers
        .get(TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("trailers"));
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    if keep_te {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Appends the client's address to `X-Forwarded-For` and sets
/// `X-Forwarded-Proto: https`.
pub(crate) fn set_forwarded(headers: &mut HeaderMap, client: IpAddr) {
    let client = client.to_canonical().to_string();
    let mut list = String::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        if let Ok(v) = value.to_str() {
            let v = v.trim();
            if !v.is_empty() {
                list.push_str(v);
                list.push_str(", ");
            }
        }
    }
    list.push_str(&client);
    let value = HeaderValue::from_str(&list).unwrap_or_else(|_| {
        HeaderValue::from_str(&client).expect("an IP address is a valid header")
    });
    headers.insert(X_FORWARDED_FOR, value);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn strips_standard_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("te", "gzip"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["content-type"], "text/plain");
    }

    #[test]
    fn leaves_end_to_end_headers_alone() {
        let pairs = [
            ("content-type", "text/plain"),
            ("x-keep-alive-ish", "1"),
            ("accept", "*/*"),
            ("accept", "text/html"),
        ];
        let mut h = map(&pairs);
        strip_hop_by_hop(&mut h);
        assert_eq!(h, map(&pairs));
        // A custom hop-by-hop name is found among standard ones too.
        let mut h = map(&[("accept", "*/*"), ("proxy-connection", "keep-alive")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h, map(&[("accept", "*/*")]));
    }

    #[test]
    fn keeps_te_trailers_for_grpc() {
        let mut h = map(&[("te", "trailers")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn detects_upgrades_only_when_connection_announces_them() {
        let h = map(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_protocol(&h).unwrap(), "websocket");
        let h = map(&[("upgrade", "websocket")]);
        assert!(upgrade_protocol(&h).is_none());
        let h = map(&[("connection", "upgrade")]);
        assert!(upgrade_protocol(&h).is_none());
    }

    #[test]
    fn appends_the_client_to_x_forwarded_for() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-proto", "http"),
        ]);
        set_forwarded(&mut h, "::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "203.0.113.7, 198.51.100.1, 10.1.2.3");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-proto"], "https");

        let mut h = HeaderMap::new();
        set_forwarded(&mut h, "2001:db8::1".parse().unwrap());
        assert_eq!(h["x-forwarded-for"], "2001:db8::1");
    }
}
