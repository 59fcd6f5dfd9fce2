//! Default Secret names for the `spec.tls` entries of an Ingress that name
//! none: `<ingress>-tls`, then `<ingress>-tls-1`, `-2`, ... skipping every
//! name another entry already uses.

use std::collections::HashSet;

use crate::api::names;
use crate::api::InvalidField;

/// Hands out the default Secret names of one Ingress, in entry order.
///
/// A request controls how many entries and names there are, so the names in
/// use are kept in a set and the search resumes where the last one stopped
/// (every earlier candidate is taken, and stays taken): naming all entries
/// costs time linear in their number, not quadratic.
#[derive(Debug)]
pub struct SecretNames<'a> {
    /// `<ingress>-tls`; empty when the Ingress has no name yet.
    base: String,
    taken: HashSet<&'a str>,
    assigned: HashSet<String>,
    /// The suffix to try next: 0 is the bare base, n is `<base>-n`.
    next: usize,
}

impl<'a> SecretNames<'a> {
    /// For the Ingress `ingress_name`, whose entries already use `taken`.
    pub fn new(ingress_name: &str, taken: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            base: if ingress_name.is_empty() {
                String::new()
            } else {
                format!("{ingress_name}-tls")
            },
            taken: taken.into_iter().collect(),
            assigned: HashSet::new(),
            next: 0,
        }
    }

    /// The name for entry `index`: the first free candidate, then taken.
    pub fn assign(&mut self, index: usize) -> Result<String, InvalidField> {
        let field = format!("spec.tls[{index}].secretName");
        if self.base.is_empty() {
            return Err(InvalidField::new(
                field,
                "the Ingress has no name yet (generateName), so no Secret name can be derived",
                "set spec.tls[].secretName explicitly, or give the Ingress a fixed metadata.name",
            ));
        }
        let candidate = loop {
            let candidate = match self.next {
                0 => self.base.clone(),
                n => format!("{}-{n}", self.base),
            };
            self.next += 1;
            if !self.taken.contains(candidate.as_str()) && !self.assigned.contains(&candidate) {
                break candidate;
            }
        };
        names::check_object_name(&field, &candidate)?;
        self.assigned.insert(candidate.clone());
        Ok(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_skip_those_in_use_and_those_handed_out() {
        let mut names = SecretNames::new("web", ["web-tls", "web-tls-2", ""]);
        assert_eq!(names.assign(0).unwrap(), "web-tls-1");
        assert_eq!(names.assign(1).unwrap(), "web-tls-3");
        assert_eq!(names.assign(2).unwrap(), "web-tls-4");
        assert_eq!(
            SecretNames::new("web", []).assign(0).unwrap(),
            "web-tls",
            "the first entry gets the bare name"
        );
    }

    #[test]
    fn an_unnamed_ingress_or_an_overlong_name_is_refused_for_the_entry() {
        let e = SecretNames::new("", []).assign(3).unwrap_err();
        assert_eq!(e.field, "spec.tls[3].secretName");
        let long = "a".repeat(250);
        let e = SecretNames::new(&long, []).assign(0).unwrap_err();
        assert_eq!(e.field, "spec.tls[0].secretName");
    }

    #[test]
    fn many_entries_cost_linear_time() {
        let taken: Vec<String> = (1..20_000).map(|n| format!("web-tls-{n}")).collect();
        let mut names = SecretNames::new("web", taken.iter().map(String::as_str));
        assert_eq!(names.assign(0).unwrap(), "web-tls");
        for i in 1..20_000 {
            assert_eq!(names.assign(i).unwrap(), format!("web-tls-{}", 19_999 + i));
        }
    }
}
