//! acme-dns: `dns01.acmeDNS`.
