//! AWS request signing and credentials for Route53.
