//! Name checks: Kubernetes object names, DNS labels, and the DNS names that go
//! into a certificate. ACME servers and the API server reject bad names late
//! and vaguely; checking them at admission turns that into an immediate,
//! precise message.

use super::InvalidField;

/// The longest DNS name a certificate can carry (RFC 1035, without the root dot).
const MAX_DNS_NAME: usize = 253;
const MAX_LABEL: usize = 63;

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// A Kubernetes object name (RFC 1123 subdomain): Secrets, issuers.
pub fn check_object_name(field: &str, name: &str) -> Result<(), InvalidField> {
    if name.is_empty() {
        return Err(InvalidField::new(
            field,
            "the name is empty",
            "give the name of a Kubernetes object",
        ));
    }
    // Kubernetes' IsDNS1123Subdomain: labels are not limited to 63
    // characters here, only the whole name to 253.
    let part_ok = |p: &str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !p.starts_with('-')
            && !p.ends_with('-')
    };
    if name.len() > MAX_DNS_NAME || !name.split('.').all(part_ok) {
        return Err(InvalidField::new(
            field,
            format!("{name:?} is not a valid Kubernetes object name"),
            "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters",
        ));
    }
    Ok(())
}

/// A single DNS label (RFC 1123), e.g. a Service name.
pub fn check_dns_label(field: &str, label: &str) -> Result<(), InvalidField> {
    if !is_label(label) {
        return Err(InvalidField::new(
            field,
            format!("{label:?} is not a valid DNS label"),
            "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        ));
    }
    Ok(())
}

/// A DNS name for a certificate's subject alternative names. A wildcard is
/// allowed only as the whole leftmost label, over at least two labels
/// (`*.example.com`), which is what public CAs and RFC 6125 accept.
pub fn check_dns_name(field: &str, name: &str) -> Result<(), InvalidField> {
    let fail = |problem: String, fix: &str| Err(InvalidField::new(field, problem, fix));
    if name.is_empty() {
        return fail(
            "a DNS name is empty".into(),
            "remove the stray comma or list a name",
        );
    }
    if name.len() > MAX_DNS_NAME {
        return fail(
            format!("{name:?} is longer than 253 characters"),
            "shorten the name",
        );
    }
    if name.ends_with('.') {
        return fail(
            format!("{name:?} ends with a dot"),
            "write the name without the trailing dot",
        );
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return fail(
            format!("{name:?} is an IP address, not a DNS name"),
            "list DNS names only; use a Certificate with ipAddresses for IP SANs",
        );
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return fail(
            format!("{name:?} contains uppercase letters"),
            &format!("write it in lowercase: {:?}", name.to_ascii_lowercase()),
        );
    }
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, name),
    };
    if rest.contains('*') {
        return fail(
            format!("{name:?} has a misplaced wildcard"),
            "a wildcard may only be the whole leftmost label, as in *.example.com",
        );
    }
    if wildcard && rest.split('.').count() < 2 {
        return fail(
            format!("{name:?} is a wildcard over a top-level domain"),
            "use a wildcard under a registered domain, as in *.example.com",
        );
    }
    if let Some(label) = rest.split('.').find(|l| !is_label(l)) {
        return fail(
            format!("{name:?} has an invalid label {label:?}"),
            "labels are 1-63 lowercase letters, digits and '-', not starting or ending with '-'",
        );
    }
    Ok(())
}

/// A container mount path: absolute, without `..` or `:` (which the kubelet
/// would reject only after the Pod is scheduled).
pub fn check_mount_path(field: &str, path: &str) -> Result<(), InvalidField> {
    if !path.starts_with('/') {
        return Err(InvalidField::new(
            field,
            format!("{path:?} is not an absolute path"),
            "use a path starting with '/', e.g. /etc/certweave/tls",
        ));
    }
    if path.split('/').any(|c| c == "..") || path.contains(':') {
        return Err(InvalidField::new(
            field,
            format!("{path:?} contains '..' or ':'"),
            "use a plain absolute directory path, e.g. /etc/certweave/tls",
        ));
    }
    // "//" is "/" too: the trailing slashes are dropped before mounting.
    if path.trim_end_matches('/').is_empty() {
        return Err(InvalidField::new(
            field,
            format!("{path:?} would hide the container's whole filesystem"),
            "use a dedicated directory, e.g. /etc/certweave/tls",
        ));
    }
    Ok(())
}

/// Close matches for a missing name, for the "did you mean" line.
pub fn close_matches<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let wanted = wanted.to_ascii_lowercase();
    let mut out: Vec<String> = names
        .filter(|n| {
            let n = n.to_ascii_lowercase();
            n.contains(&wanted) || wanted.contains(&n) || prefix(&n, &wanted) >= 3
        })
        .map(str::to_owned)
        .collect();
    out.sort();
    out.truncate(5);
    out
}

fn prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    #[test]
    fn close_matches_find_typos_and_parts() {
        let names = ["web-tls", "api-tls", "website", "db"];
        assert_eq!(
            super::close_matches("web", names.into_iter()),
            ["web-tls", "website"]
        );
        assert_eq!(
            super::close_matches("api-tl", names.into_iter()),
            ["api-tls"]
        );
        assert!(super::close_matches("zzz", names.into_iter()).is_empty());
    }

    use super::*;

    #[test]
    fn dns_names() {
        for ok in [
            "example.com",
            "*.example.com",
            "a-b.c0.example",
            "localhost",
        ] {
            check_dns_name("f", ok).unwrap();
        }
        for bad in [
            "",
            "Example.com",
            "foo..bar",
            "-a.com",
            "a-.com",
            "*.com",
            "foo.*.com",
            "*foo.com",
            "*",
            "a_b.com",
            "example.com.",
            "10.0.0.1",
            &"a".repeat(64),
        ] {
            let e = check_dns_name("certweave.io/dns-names", bad).unwrap_err();
            assert_eq!(e.field, "certweave.io/dns-names", "{bad}");
        }
    }

    #[test]
    fn object_names_and_labels() {
        check_object_name("f", "my-app.tls").unwrap();
        check_object_name("f", "").unwrap_err();
        check_object_name("f", "My_App").unwrap_err();
        check_dns_label("f", "web").unwrap();
        check_dns_label("f", "web.app").unwrap_err();
    }

    #[test]
    fn mount_paths() {
        check_mount_path("f", "/etc/tls").unwrap();
        for bad in ["etc/tls", "/", "/etc/../tls", "/a:b", ""] {
            check_mount_path("f", bad).unwrap_err();
        }
    }

    #[test]
    fn mount_paths_of_only_slashes_are_the_root() {
        // The Pod mutation trims trailing slashes, so these used to mount at "".
        for bad in ["//", "///", "////"] {
            let e = check_mount_path("certweave.io/mount-path", bad).unwrap_err();
            assert_eq!(e.field, "certweave.io/mount-path");
            assert!(e.problem.contains("whole filesystem"), "{e}");
        }
        check_mount_path("f", "/etc/tls//").unwrap();
    }
}
