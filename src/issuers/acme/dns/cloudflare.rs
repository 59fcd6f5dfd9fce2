//! Cloudflare: `dns01.cloudflare`.
