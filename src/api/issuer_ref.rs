//! References from a certificate request to the issuer that signs it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::names;
use super::InvalidField;

/// The API group of every issuer certweave serves.
pub const ISSUER_GROUP: &str = "cert-manager.io";

/// Which kind of issuer a request names. Only cert-manager's two kinds exist:
/// certweave does not run external issuers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IssuerKind {
    /// Namespaced: serves requests from its own namespace only.
    Issuer,
    /// Cluster-scoped: serves every namespace its solvers allow.
    ClusterIssuer,
}

impl IssuerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Issuer => "Issuer",
            IssuerKind::ClusterIssuer => "ClusterIssuer",
        }
    }

    /// Parses a kind exactly as Kubernetes spells it, with a message that
    /// lists the accepted spellings otherwise.
    pub fn parse(field: &str, value: &str) -> Result<Self, InvalidField> {
        match value {
            "Issuer" => Ok(IssuerKind::Issuer),
            "ClusterIssuer" => Ok(IssuerKind::ClusterIssuer),
            other => Err(InvalidField::new(
                field,
                format!("unknown issuer kind {other:?}"),
                "use \"Issuer\" or \"ClusterIssuer\" (spelled exactly so)",
            )),
        }
    }
}

impl fmt::Display for IssuerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated reference to an issuer: the `issuerRef` of a Certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IssuerRef {
    pub kind: IssuerKind,
    pub name: String,
}

impl IssuerRef {
    /// Builds a reference after checking that `name` can name a Kubernetes
    /// object; `field` is reported on failure.
    pub fn new(field: &str, kind: IssuerKind, name: &str) -> Result<Self, InvalidField> {
        names::check_object_name(field, name)?;
        Ok(Self {
            kind,
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for IssuerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// `KIND/NAME`, the form of `--default-issuer`.
impl FromStr for IssuerRef {
    type Err = InvalidField;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FIELD: &str = "--default-issuer";
        let Some((kind, name)) = s.split_once('/') else {
            return Err(InvalidField::new(
                FIELD,
                format!("{s:?} is not of the form KIND/NAME"),
                "write e.g. ClusterIssuer/letsencrypt-prod or Issuer/my-ca",
            ));
        };
        let kind = IssuerKind::parse(FIELD, kind)?;
        IssuerRef::new(FIELD, kind, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kind_slash_name() {
        let r: IssuerRef = "ClusterIssuer/letsencrypt".parse().unwrap();
        assert_eq!(r.kind, IssuerKind::ClusterIssuer);
        assert_eq!(r.name, "letsencrypt");
        assert_eq!(r.to_string(), "ClusterIssuer/letsencrypt");
    }

    #[test]
    fn rejects_unknown_kind_and_missing_slash() {
        let e = "clusterissuer/x".parse::<IssuerRef>().unwrap_err();
        assert!(e.to_string().contains("unknown issuer kind"), "{e}");
        let e = "letsencrypt".parse::<IssuerRef>().unwrap_err();
        assert!(e.to_string().contains("KIND/NAME"), "{e}");
        let e = "Issuer/Bad_Name".parse::<IssuerRef>().unwrap_err();
        assert!(e.to_string().contains("--default-issuer"), "{e}");
    }
}
