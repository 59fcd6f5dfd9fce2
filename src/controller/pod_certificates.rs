//! The Certificate a Pod asks for with `certweave.io/issuer` (or
//! `certweave.io/cluster-issuer`): named after the Secret it fills, so every
//! Pod naming the same Secret shares one Certificate.

use serde_json::Value;

use crate::api::certificate::{CertificateSpec, IssuerReference};
use crate::api::issuer_ref::ISSUER_GROUP;
use crate::api::InvalidField;
use crate::webhook::pod::PodCertificateRequest;

use super::ingress_shim::ShimCertificate;

/// The label on Certificates created for Pods: they are garbage-collected
/// some time after no Pod uses them.
pub const POD_CERTIFICATE_LABEL: &str = "certweave.io/pod-certificate";

/// The Certificate `pod` (in `namespace`) asks for, if any.
pub fn certificate_for_pod(
    pod: &Value,
    namespace: &str,
) -> Result<Option<ShimCertificate>, InvalidField> {
    let Some(request) = PodCertificateRequest::from_pod(pod, namespace)? else {
        return Ok(None);
    };
    Ok(Some(ShimCertificate {
        name: request.secret_name.clone(),
        spec: CertificateSpec {
            secret_name: request.secret_name,
            dns_names: request.dns_names,
            issuer_ref: IssuerReference {
                name: request.issuer.name.clone(),
                kind: Some(request.issuer.kind.as_str().to_owned()),
                group: Some(ISSUER_GROUP.to_owned()),
            },
            ..CertificateSpec::default()
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_asks_for_a_certificate_named_after_its_secret() {
        let pod = json!({"metadata": {"name": "api-1", "namespace": "shop", "annotations": {
            "certweave.io/cluster-issuer": "le",
            "certweave.io/service": "api",
            "certweave.io/dns-names": "api.example.com"}}});
        let cert = certificate_for_pod(&pod, "shop").unwrap().unwrap();
        assert_eq!(cert.spec.dns_names, ["api.example.com"]);
        assert_eq!(cert.spec.issuer_ref.name, "le");
        assert_eq!(cert.spec.issuer_ref.kind.as_deref(), Some("ClusterIssuer"));
        assert_eq!(cert.name, "api-tls");
        assert_eq!(cert.name, cert.spec.secret_name);
        assert!(cert.spec.plan().is_ok());
        let plain = json!({"metadata": {"name": "api-2", "annotations": {}}});
        assert_eq!(certificate_for_pod(&plain, "shop").unwrap(), None);
    }
}
