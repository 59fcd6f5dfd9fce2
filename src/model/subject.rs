//! The X.509 subject attributes a certificate carries beside its common
//! name: cert-manager's `spec.subject`.

/// One attribute of a certificate's subject, in the order certweave writes
/// them (the order Go's `pkix.Name` uses, so a certificate from certweave
/// reads like one from cert-manager), the common name last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectAttribute {
    Country,
    Organization,
    OrganizationalUnit,
    Locality,
    Province,
    StreetAddress,
    PostalCode,
    SerialNumber,
}

impl SubjectAttribute {
    /// The attribute's object identifier (RFC 4519 / X.520), as arcs.
    pub fn oid(self) -> &'static [u64] {
        match self {
            SubjectAttribute::Country => &[2, 5, 4, 6],
            SubjectAttribute::Organization => &[2, 5, 4, 10],
            SubjectAttribute::OrganizationalUnit => &[2, 5, 4, 11],
            SubjectAttribute::Locality => &[2, 5, 4, 7],
            SubjectAttribute::Province => &[2, 5, 4, 8],
            SubjectAttribute::StreetAddress => &[2, 5, 4, 9],
            SubjectAttribute::PostalCode => &[2, 5, 4, 17],
            SubjectAttribute::SerialNumber => &[2, 5, 4, 5],
        }
    }

    /// The attribute's field in a Certificate's `spec.subject`.
    pub fn field(self) -> &'static str {
        match self {
            SubjectAttribute::Country => "countries",
            SubjectAttribute::Organization => "organizations",
            SubjectAttribute::OrganizationalUnit => "organizationalUnits",
            SubjectAttribute::Locality => "localities",
            SubjectAttribute::Province => "provinces",
            SubjectAttribute::StreetAddress => "streetAddresses",
            SubjectAttribute::PostalCode => "postalCodes",
            SubjectAttribute::SerialNumber => "serialNumber",
        }
    }

    pub const ALL: [SubjectAttribute; 8] = [
        SubjectAttribute::Country,
        SubjectAttribute::Organization,
        SubjectAttribute::OrganizationalUnit,
        SubjectAttribute::Locality,
        SubjectAttribute::Province,
        SubjectAttribute::StreetAddress,
        SubjectAttribute::PostalCode,
        SubjectAttribute::SerialNumber,
    ];
}

/// The subject attributes a certificate should carry besides its common
/// name, at most one value each (checked where the spec is read: the
/// certificate builder writes one value per attribute type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    values: Vec<(SubjectAttribute, String)>,
}

impl Subject {
    /// Sets `attribute`, replacing an earlier value.
    pub fn set(&mut self, attribute: SubjectAttribute, value: impl Into<String>) {
        self.values.retain(|(a, _)| *a != attribute);
        self.values.push((attribute, value.into()));
        self.values.sort_by_key(|(a, _)| *a);
    }

    pub fn get(&self, attribute: SubjectAttribute) -> Option<&str> {
        self.values
            .iter()
            .find(|(a, _)| *a == attribute)
            .map(|(_, v)| v.as_str())
    }

    /// Every attribute set, in writing order.
    pub fn iter(&self) -> impl Iterator<Item = (SubjectAttribute, &str)> {
        self.values.iter().map(|(a, v)| (*a, v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// `C=DE, O=Example Corp`: the attributes in writing order, with the short
/// names of RFC 4514 (`STREET`, `postalCode`, `serialNumber` beyond them);
/// a `,` or `\` inside a value is escaped, so equal texts mean equal
/// subjects.
impl std::fmt::Display for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (attribute, value)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let name = match attribute {
                SubjectAttribute::Country => "C",
                SubjectAttribute::Organization => "O",
                SubjectAttribute::OrganizationalUnit => "OU",
                SubjectAttribute::Locality => "L",
                SubjectAttribute::Province => "ST",
                SubjectAttribute::StreetAddress => "STREET",
                SubjectAttribute::PostalCode => "postalCode",
                SubjectAttribute::SerialNumber => "serialNumber",
            };
            write!(f, "{name}=")?;
            for c in value.chars() {
                if c == ',' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_keep_writing_order_and_one_value_each() {
        let mut subject = Subject::default();
        subject.set(SubjectAttribute::PostalCode, "12345");
        subject.set(SubjectAttribute::Organization, "Example");
        subject.set(SubjectAttribute::Country, "DE");
        subject.set(SubjectAttribute::Organization, "Example Corp");
        let got: Vec<_> = subject.iter().collect();
        assert_eq!(
            got,
            vec![
                (SubjectAttribute::Country, "DE"),
                (SubjectAttribute::Organization, "Example Corp"),
                (SubjectAttribute::PostalCode, "12345"),
            ]
        );
        assert_eq!(subject.get(SubjectAttribute::Locality), None);
        assert_eq!(
            subject.to_string(),
            "C=DE, O=Example Corp, postalCode=12345"
        );
        subject.set(SubjectAttribute::Organization, "a,b\\c");
        assert_eq!(subject.to_string(), "C=DE, O=a\\,b\\\\c, postalCode=12345");
        assert_eq!(Subject::default().to_string(), "");
    }
}

/// A subject written exactly as given (cert-manager's `literalSubject`):
/// its attributes in certificate (ASN.1) order, each an object identifier
/// and a value, and the text it was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiteralSubject {
    /// The RFC 4514 text, as the spec says it (recorded on the Secret, so a
    /// change re-issues).
    pub text: String,
    /// The attributes, first to last as the certificate holds them (the
    /// reverse of the text's order).
    pub attributes: Vec<(Vec<u64>, String)>,
}
