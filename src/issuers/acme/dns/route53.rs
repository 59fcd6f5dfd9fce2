//! Route53: `dns01.route53`.
