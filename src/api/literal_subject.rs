//! `spec.literalSubject`: a subject given as an RFC 4514 string
//! (`CN=app,OU=Web,O=Example Corp,C=DE`), written into the certificate as
//! it says, for software that matches the subject exactly.
//!
//! The text is read in one pass (linear in its length, at most
//! [`MAX_LITERAL_SUBJECT`] bytes). Each attribute type appears once (the
//! certificate builder keeps one value per type) and each RDN holds one
//! attribute; a `#`-encoded value, a multi-valued RDN (`+`) or a repeated
//! type is refused by name rather than written differently.

use super::InvalidField;
use crate::model::LiteralSubject;

/// Longest `literalSubject` accepted.
pub const MAX_LITERAL_SUBJECT: usize = 1024;

const FIELD: &str = "spec.literalSubject";

/// RFC 4514's short names, and the others cert-manager's parser knows.
fn oid_of(name: &str) -> Option<Vec<u64>> {
    let arcs: &[u64] = match name.to_ascii_uppercase().as_str() {
        "CN" => &[2, 5, 4, 3],
        "C" => &[2, 5, 4, 6],
        "O" => &[2, 5, 4, 10],
        "OU" => &[2, 5, 4, 11],
        "L" => &[2, 5, 4, 7],
        "ST" => &[2, 5, 4, 8],
        "STREET" => &[2, 5, 4, 9],
        "POSTALCODE" => &[2, 5, 4, 17],
        "SERIALNUMBER" => &[2, 5, 4, 5],
        "DC" => &[0, 9, 2342, 19200300, 100, 1, 25],
        "UID" => &[0, 9, 2342, 19200300, 100, 1, 1],
        "EMAILADDRESS" | "E" => &[1, 2, 840, 113549, 1, 9, 1],
        _ => {
            // A dotted OID: digits and dots, at least two arcs.
            let arcs: Option<Vec<u64>> = name.split('.').map(|a| a.parse().ok()).collect();
            return arcs.filter(|a| a.len() >= 2);
        }
    };
    Some(arcs.to_vec())
}

fn invalid(problem: impl Into<String>) -> InvalidField {
    InvalidField::new(
        FIELD,
        problem,
        "write it as RFC 4514 attributes, most specific first, e.g. \"CN=app,O=Example Corp,C=DE\"",
    )
}

/// Reads `text` into the subject's attributes, in certificate order.
pub fn parse(text: &str) -> Result<LiteralSubject, InvalidField> {
    if text.len() > MAX_LITERAL_SUBJECT {
        return Err(invalid(format!(
            "is {} bytes, more than the {MAX_LITERAL_SUBJECT} accepted",
            text.len()
        )));
    }
    let mut attributes: Vec<(Vec<u64>, String)> = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        // The type, up to '='.
        let mut name = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            name.push(c);
        }
        let name = name.trim();
        if name.is_empty() {
            return Err(invalid("has an attribute without a type"));
        }
        let Some(oid) = oid_of(name) else {
            return Err(invalid(format!(
                "names the unknown attribute type {:?}; use CN, C, O, OU, L, ST, STREET, postalCode, serialNumber, DC, UID, emailAddress or a dotted OID",
                name.chars().take(64).collect::<String>()
            )));
        };
        // The value, up to an unescaped ',' (or the end).
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek() == Some(&'#') {
            return Err(invalid(format!(
                "gives {name} as a #-encoded BER value, which certweave does not write; give it as text"
            )));
        }
        let mut value = String::new();
        let mut trailing_spaces = 0;
        let mut ended = true;
        while let Some(c) = chars.next() {
            match c {
                ',' => {
                    ended = false;
                    break;
                }
                '+' => {
                    return Err(invalid(format!(
                        "has a multi-valued RDN at {name}, which certweave does not write; give each attribute its own RDN"
                    )))
                }
                '\\' => {
                    trailing_spaces = 0;
                    match chars.next() {
                        Some(h1) if h1.is_ascii_hexdigit() => {
                            let h2 = chars.next().filter(char::is_ascii_hexdigit).ok_or_else(
                                || invalid(format!("has a broken \\XX escape in {name}")),
                            )?;
                            let byte = u8::from_str_radix(&format!("{h1}{h2}"), 16)
                                .expect("two hex digits");
                            // Multi-byte UTF-8 arrives as consecutive escapes.
                            let mut bytes = vec![byte];
                            while bytes.len() < 4 && std::str::from_utf8(&bytes).is_err() {
                                let (Some('\\'), Some(a), Some(b)) =
                                    (chars.next(), chars.next(), chars.next())
                                else {
                                    return Err(invalid(format!(
                                        "has an escaped byte in {name} that is not UTF-8"
                                    )));
                                };
                                let next = u8::from_str_radix(&format!("{a}{b}"), 16).map_err(|_| {
                                    invalid(format!("has a broken \\XX escape in {name}"))
                                })?;
                                bytes.push(next);
                            }
                            value.push_str(std::str::from_utf8(&bytes).map_err(|_| {
                                invalid(format!("has an escaped byte in {name} that is not UTF-8"))
                            })?);
                        }
                        Some(special) => value.push(special),
                        None => return Err(invalid(format!("ends in a lone \\ in {name}"))),
                    }
                }
                ' ' => {
                    trailing_spaces += 1;
                    value.push(c);
                }
                _ => {
                    trailing_spaces = 0;
                    value.push(c);
                }
            }
        }
        value.truncate(value.len() - trailing_spaces);
        if value.is_empty() {
            return Err(invalid(format!("gives {name} an empty value")));
        }
        if attributes.iter().any(|(o, _)| *o == oid) {
            return Err(invalid(format!(
                "names {name} twice; certweave writes each attribute type once"
            )));
        }
        attributes.push((oid, value));
        if ended {
            break;
        }
    }
    // RFC 4514 writes the last RDN of the certificate's sequence first.
    attributes.reverse();
    Ok(LiteralSubject {
        text: text.to_owned(),
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<String> {
        parse(text)
            .unwrap()
            .attributes
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn attributes_are_read_in_certificate_order_with_escapes() {
        let subject = parse("CN=app.example.com, O=Example\\, Inc.,C=DE").unwrap();
        assert_eq!(
            subject.attributes,
            [
                (vec![2, 5, 4, 6], "DE".to_owned()),
                (vec![2, 5, 4, 10], "Example, Inc.".to_owned()),
                (vec![2, 5, 4, 3], "app.example.com".to_owned()),
            ]
        );
        assert_eq!(values("2.5.4.11=Web,cn=x"), ["x", "Web"]);
        assert_eq!(
            values("O=M\\C3\\BCller \\+ S\\C3\\B6hne"),
            ["Müller + Söhne"]
        );
        assert_eq!(values("CN=trailing  "), ["trailing"]);
    }

    #[test]
    fn what_cannot_be_written_as_given_is_refused_by_name() {
        for (text, says) in [
            ("", "without a type"),
            ("CN", "empty value"),
            ("XYZ=1", "unknown attribute type"),
            ("CN=a+O=b", "multi-valued"),
            ("DC=example,DC=com", "twice"),
            ("CN=#0403616263", "#-encoded"),
            ("CN=a\\", "lone \\"),
            ("CN=a\\4", "broken"),
            ("CN=\\C3", "UTF-8"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.field, "spec.literalSubject");
            assert!(err.problem.contains(says), "{text:?}: {}", err.problem);
        }
        let long = format!("CN={}", "a".repeat(MAX_LITERAL_SUBJECT));
        assert!(parse(&long).unwrap_err().problem.contains("more than"));
    }
}
