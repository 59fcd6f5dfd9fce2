//! Annotation keys certweave reads and writes.
//!
//! Ingress keys are cert-manager's, so existing manifests keep working; Pod
//! keys live under `certweave.io/` because cert-manager has no Pod feature.

/// Ingress: request a certificate from the named ClusterIssuer.
pub const CLUSTER_ISSUER: &str = "cert-manager.io/cluster-issuer";
/// Ingress: request a certificate from the named Issuer in the Ingress's namespace.
pub const ISSUER: &str = "cert-manager.io/issuer";
/// Ingress: kind of the issuer named by [`ISSUER`] (`Issuer` or `ClusterIssuer`).
pub const ISSUER_KIND: &str = "cert-manager.io/issuer-kind";
/// Ingress: API group of the issuer named by [`ISSUER`]; only `cert-manager.io` is served.
pub const ISSUER_GROUP: &str = "cert-manager.io/issuer-group";
/// Ingress: legacy trigger that uses the controller's `--default-issuer`.
pub const TLS_ACME: &str = "kubernetes.io/tls-acme";

/// Ingress overrides copied onto the resulting Certificate, as cert-manager does.
pub const COMMON_NAME: &str = "cert-manager.io/common-name";
pub const DURATION: &str = "cert-manager.io/duration";
pub const RENEW_BEFORE: &str = "cert-manager.io/renew-before";
pub const PRIVATE_KEY_ALGORITHM: &str = "cert-manager.io/private-key-algorithm";
pub const PRIVATE_KEY_SIZE: &str = "cert-manager.io/private-key-size";
/// On an Ingress: solve HTTP-01 by adding the challenge path to this
/// Ingress instead of creating a temporary one.
pub const HTTP01_EDIT_IN_PLACE: &str = "acme.cert-manager.io/http01-edit-in-place";
/// On a Certificate (set by the Ingress shim): the Ingress to edit for
/// HTTP-01 challenges.
pub const HTTP01_OVERRIDE_INGRESS_NAME: &str = "acme.cert-manager.io/http01-override-ingress-name";
/// Set by the Gateway shim on its Certificates: the Gateway an HTTP-01
/// HTTPRoute attaches to (cert-manager's names).
pub const HTTP01_PARENT_REF_KIND: &str = "acme.cert-manager.io/http01-parentrefkind";
pub const HTTP01_PARENT_REF_NAME: &str = "acme.cert-manager.io/http01-parentrefname";
/// Ingress/Gateway: more DNS names and IP addresses for every Certificate
/// made for the object, comma-separated (cert-manager's cert-shim).
pub const ALT_NAMES: &str = "cert-manager.io/alt-names";
pub const IP_SANS: &str = "cert-manager.io/ip-sans";
/// Gateway/ListenerSet: comma-separated listener names left alone.
pub const IGNORE_TLS_LISTENERS: &str = "cert-manager.io/ignore-tls-listeners";
pub const PRIVATE_KEY_ROTATION_POLICY: &str = "cert-manager.io/private-key-rotation-policy";

/// Pod: request a certificate from the named Issuer in the Pod's namespace.
pub const POD_ISSUER: &str = "certweave.io/issuer";
/// Pod: request a certificate from the named ClusterIssuer.
pub const POD_CLUSTER_ISSUER: &str = "certweave.io/cluster-issuer";
/// Pod: the service name used for the default DNS names and Secret name.
pub const POD_SERVICE: &str = "certweave.io/service";
/// Pod: comma-separated subject alternative names.
pub const POD_DNS_NAMES: &str = "certweave.io/dns-names";
/// Pod: the Secret to mount (also the Certificate's name).
pub const POD_SECRET_NAME: &str = "certweave.io/secret-name";
/// Pod: where `tls.crt`, `tls.key` and `ca.crt` appear in the containers.
pub const POD_MOUNT_PATH: &str = "certweave.io/mount-path";
/// Pod: comma-separated names of the containers that get the mount.
pub const POD_CONTAINERS: &str = "certweave.io/containers";
/// Pod: `"LISTEN:UPSTREAM"` injects the TLS-terminating sidecar.
pub const POD_TLS_PROXY: &str = "certweave.io/tls-proxy";
/// Pod: set by the webhook once the Pod is mutated; a marked Pod is left alone.
/// Also set as a label so the controller can watch injected Pods by selector.
pub const POD_INJECTED: &str = "certweave.io/injected";

/// Every annotation above, for tests and tools that must cover them all.
pub const ALL: [&str; 27] = [
    CLUSTER_ISSUER,
    ISSUER,
    ISSUER_KIND,
    ISSUER_GROUP,
    TLS_ACME,
    COMMON_NAME,
    DURATION,
    RENEW_BEFORE,
    PRIVATE_KEY_ALGORITHM,
    PRIVATE_KEY_SIZE,
    HTTP01_EDIT_IN_PLACE,
    HTTP01_OVERRIDE_INGRESS_NAME,
    HTTP01_PARENT_REF_KIND,
    HTTP01_PARENT_REF_NAME,
    ALT_NAMES,
    IP_SANS,
    IGNORE_TLS_LISTENERS,
    PRIVATE_KEY_ROTATION_POLICY,
    POD_ISSUER,
    POD_CLUSTER_ISSUER,
    POD_SERVICE,
    POD_DNS_NAMES,
    POD_SECRET_NAME,
    POD_MOUNT_PATH,
    POD_CONTAINERS,
    POD_TLS_PROXY,
    POD_INJECTED,
];

/// Labels that name a Pod's service when [`POD_SERVICE`] is absent, in order.
pub const SERVICE_NAME_LABELS: [&str; 2] = ["app.kubernetes.io/name", "app"];

/// Default mount path for Pod certificates.
pub const DEFAULT_MOUNT_PATH: &str = "/etc/certweave/tls";
