//! Feeds what an ACME server sends that certweave reads itself: the issued
//! certificate chain and the texts of an order's progress.
//!
//! The bytes are split into consecutive DER elements (at most four), each a
//! certificate of a chain, and written as PEM with `pki::certificate_pem`;
//! when the bytes are UTF-8 they are also read as the PEM chain itself, and
//! their lines as an order's URL and state followed by (identifier,
//! challenge, state, error) groups for `model::OrderProgress`. The chain goes
//! through what the ACME issuer does with a downloaded chain:
//! `pki::parse_pem_chain`, `pki::CertInfo::parse` for each certificate,
//! `pki::ari_certificate_id`, `pki::check_chain` and
//! `pki::verify_chain_to_root`.
//!
//! Crashes on a panic; on certificates that do not come back unchanged from
//! their own PEM; on a renewal information identifier for a certificate that
//! does not parse, or whose serial part is not the certificate's serial; on
//! a leaf refused for anything but its validity at its own `notBefore` or a
//! broken or unparsable rest of the chain, or refused as not covering its
//! own names; on a chain that checks but does not verify to itself as root;
//! and on an order progress report with a server text longer than
//! `MAX_TEXT` characters (plus the ellipsis) or not a prefix of what the
//! server sent, with more than `MAX_AUTHORIZATIONS` entries, or that does
//! not survive a JSON round trip.

#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use certweave::model::progress::{MAX_AUTHORIZATIONS, MAX_TEXT};
use certweave::model::{CertificateRequest, OrderProgress};
use certweave::pki::{self, BundleProblem, CertInfo};
use libfuzzer_sys::fuzz_target;

/// Most certificates taken from one input (Let's Encrypt sends two or three).
const MAX_CHAIN: usize = 4;

/// `data` cut into DER elements by their headers; a header that does not
/// fit takes the rest.
fn split_der(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !data.is_empty() && out.len() < MAX_CHAIN {
        let len = der_len(data).unwrap_or(data.len()).clamp(1, data.len());
        let (element, rest) = data.split_at(len);
        out.push(element);
        data = rest;
    }
    out
}

/// Header plus content length of the DER element at the start of `data`.
fn der_len(data: &[u8]) -> Option<usize> {
    let first = *data.get(1)?;
    if first < 0x80 {
        return Some(2 + first as usize);
    }
    let count = (first & 0x7f) as usize;
    if count == 0 || count > 3 {
        return None;
    }
    let bytes = data.get(2..2 + count)?;
    let len = bytes.iter().fold(0usize, |n, b| n << 8 | *b as usize);
    Some(2 + count + len)
}

fn pem_of(ders: &[&[u8]]) -> String {
    ders.iter().map(|d| pki::certificate_pem(d)).collect()
}

/// A request for exactly the names of `leaf`.
fn own_names(leaf: &CertInfo) -> CertificateRequest {
    let mut request = CertificateRequest::for_dns_names(leaf.dns_names.clone());
    request.ip_addresses = leaf.ip_addresses.clone();
    request.uris = leaf.uris.clone();
    request.email_addresses = leaf.email_addresses.clone();
    request
}

/// What the ACME issuer does with the chain `pem` of the certificates `ders`.
fn chain(pem: &str, ders: &[Vec<u8>]) {
    let infos: Vec<_> = ders
        .iter()
        .enumerate()
        .map(|(index, der)| {
            let info = CertInfo::parse(der, index);
            let again = CertInfo::parse(der, index);
            assert_eq!(
                format!("{info:?}"),
                format!("{again:?}"),
                "parsing is not repeatable"
            );
            info
        })
        .collect();

    if let Some(id) = pki::ari_certificate_id(pem) {
        let (aki, serial) = id.split_once('.').expect("two parts");
        assert!(!serial.contains('.'), "{id:?} has more than two parts");
        assert!(URL_SAFE_NO_PAD.decode(aki).is_ok(), "{id:?}");
        let serial = URL_SAFE_NO_PAD.decode(serial).expect("base64url serial");
        let first = pki::pem_block_der(pem).expect("a PEM block");
        let Ok(info) = CertInfo::parse(&first, 0) else {
            panic!("{id:?} is the identifier of a certificate that does not parse")
        };
        let hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();
        assert!(
            hex.eq_ignore_ascii_case(&info.serial_hex),
            "identifier serial {hex} is not {}",
            info.serial_hex
        );
    }

    let Some(Ok(leaf)) = infos.first() else {
        return;
    };
    let at = leaf.not_before;
    let checked = pki::check_chain(pem, &leaf.spki_der, None, at);
    match &checked {
        Ok(info) => assert_eq!(info, leaf),
        Err(BundleProblem::Expired(end)) => assert!(*end <= at, "expired at {end:?}"),
        Err(BundleProblem::BrokenChain { index, next }) => {
            assert!(*next == index + 1 && *next < ders.len())
        }
        Err(BundleProblem::Unparsable { index, .. }) => {
            assert!(
                *index > 0 && infos[*index].is_err(),
                "certificate {index} parsed"
            )
        }
        Err(other) => panic!("the leaf at its own notBefore: {other}"),
    }
    if checked.is_ok() {
        let own = own_names(leaf);
        let again = pki::check_chain(pem, &leaf.spki_der, Some(&own), at);
        assert_eq!(
            again.as_ref(),
            Ok(leaf),
            "the leaf does not cover its own names"
        );
        if let Err(e) = pki::verify_chain_to_root(pem, pem) {
            panic!("a chain that checks does not verify to itself: {e}");
        }
    } else {
        let _ = pki::verify_chain_to_root(pem, pem);
    }
}

fn der_chain(data: &[u8]) {
    let ders = split_der(data);
    let pem = pem_of(&ders);
    let parsed = pki::parse_pem_chain(&pem).expect("certweave's own PEM parses");
    assert!(
        parsed.iter().map(Vec::as_slice).eq(ders.iter().copied()),
        "certificates change through PEM"
    );
    chain(&pem, &parsed);
}

fn pem_chain(text: &str) {
    let _ = pki::pem_block_der(text);
    let Ok(ders) = pki::parse_pem_chain(text) else {
        let _ = pki::ari_certificate_id(text);
        return;
    };
    let slices: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
    let again = pki::parse_pem_chain(&pem_of(&slices)).expect("certweave's own PEM parses");
    assert_eq!(again, ders, "certificates change through PEM");
    chain(text, &ders);
}

/// `kept` is `sent`, or its first `MAX_TEXT` characters and an ellipsis.
fn bounded(kept: &str, sent: &str) {
    let chars = kept.chars().count();
    if chars <= MAX_TEXT {
        assert_eq!(kept, sent, "a short text was changed");
        return;
    }
    let cut = kept.strip_suffix('…').expect("an ellipsis marks a cut");
    assert!(sent.starts_with(cut), "not a prefix of what was sent");
    assert_eq!(chars, MAX_TEXT + 1, "cut at another length");
}

fn progress(text: &str) {
    let mut lines = text.lines();
    let (url, state) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let mut report = OrderProgress::new(url, state);
    bounded(&report.url, url);
    bounded(&report.state, state);
    let rest: Vec<&str> = lines.collect();
    let mut sent = Vec::new();
    for group in rest.chunks(4) {
        let field = |i: usize| group.get(i).copied().unwrap_or("");
        let error = group.get(3).copied().filter(|e| !e.is_empty());
        report.push(field(0), field(1), field(2), error);
        sent.push((field(0), field(1), field(2), error));
    }
    // The whole input as one name's error, as a chatty server might send.
    report.push(url, "http-01", "invalid", Some(text));
    sent.push((url, "http-01", "invalid", Some(text)));

    assert!(report.authorizations.len() <= MAX_AUTHORIZATIONS);
    assert_eq!(
        report.authorizations.len(),
        sent.len().min(MAX_AUTHORIZATIONS)
    );
    for (kept, sent) in report.authorizations.iter().zip(&sent) {
        bounded(&kept.identifier, sent.0);
        bounded(&kept.challenge, sent.1);
        bounded(&kept.state, sent.2);
        match (&kept.error, sent.3) {
            (Some(kept), Some(sent)) => bounded(kept, sent),
            (None, None) => {}
            other => panic!("error kept as {other:?}"),
        }
    }
    let failed = report.failed().count();
    assert_eq!(
        failed,
        report
            .authorizations
            .iter()
            .filter(|a| a.error.is_some())
            .count()
    );
    let json = serde_json::to_string(&report).expect("a report serialises");
    let again: OrderProgress = serde_json::from_str(&json).expect("a report reads back");
    assert_eq!(again, report, "the report changes in a JSON round trip");
}

fuzz_target!(|data: &[u8]| {
    der_chain(data);
    if let Ok(text) = std::str::from_utf8(data) {
        pem_chain(text);
        progress(text);
    }
});
