//! cert-manager external DNS-01 solvers: `dns01.webhook`.
