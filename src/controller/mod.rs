//! Kubernetes-facing logic that turns cluster objects into Certificates.
//! Pure functions live here so `certweave local` and the in-cluster
//! controller derive exactly the same Certificates from the same objects.

pub mod ingress_shim;
