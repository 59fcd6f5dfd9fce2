//! `cert-manager.io/v1` Issuer and ClusterIssuer. Both share [`IssuerSpec`];
//! only their scope differs.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::certificate::CertificateCondition;
use super::{issuer_fields, InvalidField};
use crate::model::IssuerUrls;

// The CEL rules below repeat the structural checks of `IssuerSpec::config`,
// so `kubectl apply` refuses an issuer that could never become Ready.

/// Exactly one of `acme`, `ca`, `selfSigned`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Issuer",
    namespaced,
    status = "IssuerStatus",
    category = "cert-manager",
    doc = "An Issuer signs the Certificates of its own namespace: an ACME account, a CA in a Secret, or self-signed.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.acme) ? 1 : 0) + (has(self.ca) ? 1 : 0) + (has(self.selfSigned) ? 1 : 0) == 1",
        "message": "spec: an issuer has exactly one type; configure exactly one of acme, ca or selfSigned"
    }
]))]
#[schemars(transform = |s: &mut schemars::Schema| issuer_fields::add_rules(s, "spec", issuer_fields::SPEC))]
#[serde(rename_all = "camelCase")]
pub struct IssuerSpec {
    /// Certificates from an ACME server (Let's Encrypt, a private ACME CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuer>,
    /// Certificates signed by the CA certificate and key in a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
    /// Certificates signed by their own key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
    /// cert-manager's Vault issuer: refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub vault: Option<serde_json::Value>,
    /// cert-manager's Venafi issuer: refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub venafi: Option<serde_json::Value>,
}

/// The cluster-scoped twin of [`Issuer`], with the same spec.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "ClusterIssuer",
    status = "IssuerStatus",
    category = "cert-manager",
    doc = "A ClusterIssuer signs Certificates of every namespace; its Secrets live in the controller's namespace.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(description = "Exactly one of `acme`, `ca`, `selfSigned`.")]
#[serde(rename_all = "camelCase")]
pub struct ClusterIssuerSpec {
    #[serde(flatten)]
    pub spec: IssuerSpec,
}

impl std::ops::Deref for ClusterIssuerSpec {
    type Target = IssuerSpec;

    fn deref(&self) -> &IssuerSpec {
        &self.spec
    }
}

/// What the controller reads of an Issuer or a ClusterIssuer. The two
/// differ only in scope (and so in where their Secrets live), so one code
/// path serves both instead of a twin per kind.
pub trait IssuerObject: kube::Resource<DynamicType = ()> + Clone + Send + Sync + 'static {
    const KIND: super::IssuerKind;

    fn issuer_spec(&self) -> &IssuerSpec;

    fn issuer_status(&self) -> Option<&IssuerStatus>;

    /// The `Ready` condition, if the issuer has been checked.
    fn ready_condition(&self) -> Option<&CertificateCondition> {
        self.issuer_status()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
    }

    fn is_ready(&self) -> bool {
        self.ready_condition().is_some_and(|c| c.status == "True")
    }
}

impl IssuerObject for Issuer {
    const KIND: super::IssuerKind = super::IssuerKind::Issuer;

    fn issuer_spec(&self) -> &IssuerSpec {
        &self.spec
    }

    fn issuer_status(&self) -> Option<&IssuerStatus> {
        self.status.as_ref()
    }
}

impl IssuerObject for ClusterIssuer {
    const KIND: super::IssuerKind = super::IssuerKind::ClusterIssuer;

    fn issuer_spec(&self) -> &IssuerSpec {
        &self.spec
    }

    fn issuer_status(&self) -> Option<&IssuerStatus> {
        self.status.as_ref()
    }
}

/// `acme`: an ACME server account and how to solve its challenges.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.server.startsWith('https://') || self.server.startsWith('http://')",
        "message": "spec.acme.server is not a URL; use the ACME directory URL, e.g. https://acme-staging-v02.api.letsencrypt.org/directory"
    },
    {
        "rule": "has(self.solvers) && size(self.solvers) > 0",
        "message": "spec.acme.solvers: no solver is configured; add one, e.g. solvers: [{http01: {ingress: {ingressClassName: nginx}}}]"
    }
]))]
#[schemars(transform = |s: &mut schemars::Schema| issuer_fields::add_rules(s, "spec.acme", issuer_fields::ACME))]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuer {
    /// Directory URL, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub server: String,
    /// Contact address registered with the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Where the account key lives (key `tls.key`); created if missing.
    pub private_key_secret_ref: SecretKeySelector,
    /// Base64 PEM bundle to trust for the ACME server (private ACME servers).
    #[serde(default, rename = "caBundle", skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Do not verify the ACME server's TLS certificate (testing only).
    #[serde(
        default,
        rename = "skipTLSVerify",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub skip_tls_verify: bool,
    /// External account binding, for ACME servers that require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_account_binding: Option<ExternalAccountBinding>,
    /// Prefer the alternate chain whose top issuer has this common name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_chain: Option<String>,
    /// The certificate profile to request (ACME profiles extension, e.g.
    /// `tlsserver` or `shortlived` at Let's Encrypt); the server's default
    /// when unset. A profile the server does not offer fails the order with
    /// the server's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub profile: Option<String>,
    /// How challenges are solved; a name goes to the solver whose
    /// `selector` matches it most specifically.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub solvers: Vec<AcmeSolver>,
    /// Use the account key in `privateKeySecretRef` only: when it is
    /// missing, the issuer is not Ready rather than registering a new
    /// account with a new key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_account_key_generation: bool,
    /// Only `false` is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_duration_feature: Option<bool>,
}

/// A reference to one key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key within the Secret (`tls.key` where not stated otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAccountBinding {
    #[serde(rename = "keyID")]
    pub key_id: String,
    pub key_secret_ref: SecretKeySelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<String>,
}

/// One solver, chosen for a name by its `selector`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.http01) != has(self.dns01)",
        "message": "spec.acme.solvers[]: a solver must configure exactly one of http01 or dns01; split it into two solvers with selectors"
    }
]))]
#[schemars(transform = |s: &mut schemars::Schema| issuer_fields::add_rules(s, "spec.acme.solvers[]", issuer_fields::SOLVER))]
#[serde(rename_all = "camelCase")]
pub struct AcmeSolver {
    /// Which names this solver handles; every name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<SolverSelector>,
    /// HTTP-01: certweave answers the challenge behind a temporary Ingress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http01: Option<Http01Solver>,
    /// DNS-01: a TXT record written with RFC 2136 dynamic updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns01: Option<Dns01Solver>,
    /// Refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_instead_of_self_check: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SolverSelector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_zones: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!(has(self.ingress) && has(self.gatewayHTTPRoute))",
        "message": "spec.acme.solvers[].http01: ingress and gatewayHTTPRoute exclude each other; keep one, or split them into two solvers with selectors"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct Http01Solver {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Http01Ingress>,
    /// Answer through a temporary Gateway API HTTPRoute attached to
    /// `parentRefs` (a Certificate made for a Gateway attaches to that
    /// Gateway instead).
    #[serde(
        default,
        rename = "gatewayHTTPRoute",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_http_route: Option<GatewayHttpRoute>,
}

/// `http01.gatewayHTTPRoute`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(transform = |s: &mut schemars::Schema| issuer_fields::add_rules(s, "spec.acme.solvers[].http01.gatewayHTTPRoute", issuer_fields::HTTP01_GATEWAY))]
#[serde(rename_all = "camelCase")]
pub struct GatewayHttpRoute {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub parent_refs: Vec<ParentReference>,
    /// Labels of the HTTPRoute certweave creates (certweave's own win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// Refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub pod_template: Option<serde_json::Value>,
}

/// A Gateway API `parentRef`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Which Ingress routes the challenge: a new one of `ingressClassName` (or
/// the legacy `class` annotation), or the existing Ingress `name`; at most
/// one of the three.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.class) ? 1 : 0) + (has(self.ingressClassName) ? 1 : 0) + (has(self.name) ? 1 : 0) <= 1",
        "message": "spec.acme.solvers[].http01.ingress: ingressClassName, class and name exclude each other; keep one (ingressClassName for a new Ingress of that class, name to edit an existing Ingress)"
    }
]))]
#[schemars(transform = |s: &mut schemars::Schema| issuer_fields::add_rules(s, "spec.acme.solvers[].http01.ingress", issuer_fields::HTTP01_INGRESS))]
#[serde(rename_all = "camelCase")]
pub struct Http01Ingress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Labels and annotations for the challenge Ingress that certweave
    /// creates (not for an existing Ingress named by `name`); they win over
    /// certweave's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_template: Option<IngressTemplate>,
    /// Refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub pod_template: Option<serde_json::Value>,
    /// Refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
}

/// `http01.ingress.ingressTemplate`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct IngressTemplate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<IngressTemplateMetadata>,
}

/// Only labels and annotations, as cert-manager allows.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
pub struct IngressTemplateMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// DNS-01 providers: exactly one of `rfc2136`, `route53`, `cloudflare`,
/// `acmeDNS` or `webhook` (cert-manager's others are refused by name).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(has(self.rfc2136) ? 1 : 0) + (has(self.route53) ? 1 : 0) + (has(self.cloudflare) ? 1 : 0) + (has(self.acmeDNS) ? 1 : 0) + (has(self.webhook) ? 1 : 0) == 1",
        "message": "spec.acme.solvers[].dns01: exactly one DNS-01 provider must be configured; keep one of rfc2136, route53, cloudflare, acmeDNS or webhook"
    }
]))]
#[schemars(transform = |s: &mut schemars::Schema| issuer_fields::add_rules(s, "spec.acme.solvers[].dns01", issuer_fields::DNS01))]
#[serde(rename_all = "camelCase")]
pub struct Dns01Solver {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc2136: Option<Rfc2136Solver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53: Option<Route53Solver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudflare: Option<CloudflareSolver>,
    #[serde(default, rename = "acmeDNS", skip_serializing_if = "Option::is_none")]
    pub acme_dns: Option<AcmeDnsSolver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSolver>,
    /// `None` (default): the record goes at `_acme-challenge.<name>`.
    /// `Follow`: when that name is a CNAME (delegated to another zone), the
    /// record goes where the CNAME chain ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["None", "Follow"]))]
    pub cname_strategy: Option<String>,
    /// cert-manager's other providers, refused by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub akamai: Option<serde_json::Value>,
    #[serde(default, rename = "azureDNS", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub azure_dns: Option<serde_json::Value>,
    #[serde(default, rename = "cloudDNS", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub cloud_dns: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub digitalocean: Option<serde_json::Value>,
}

/// A Secret key a DNS-01 provider reads, with the key used when the
/// selector names none and what it holds (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSecret<'a> {
    pub selector: &'a SecretKeySelector,
    pub default_key: &'static str,
    pub what: &'static str,
}

impl Dns01Solver {
    /// Every Secret key the configured provider reads: the one list both
    /// the Secret watch and the settings are built from.
    pub fn secrets(&self) -> Vec<ProviderSecret<'_>> {
        let rfc2136 = self.rfc2136.as_ref();
        let route53 = self.route53.as_ref();
        let cloudflare = self.cloudflare.as_ref();
        let candidates = [
            (
                rfc2136.and_then(|r| r.tsig_secret_secret_ref.as_ref()),
                "tsig-secret-key",
                "the TSIG secret",
            ),
            (
                route53.and_then(|r| r.access_key_id_secret_ref.as_ref()),
                "access-key-id",
                "the Route53 access key ID",
            ),
            (
                route53.and_then(|r| r.secret_access_key_secret_ref.as_ref()),
                "secret-access-key",
                "the Route53 secret access key",
            ),
            (
                cloudflare.and_then(|c| c.api_token_secret_ref.as_ref()),
                "api-token",
                "the Cloudflare API token",
            ),
            (
                cloudflare.and_then(|c| c.api_key_secret_ref.as_ref()),
                "api-key",
                "the Cloudflare API key",
            ),
            (
                self.acme_dns.as_ref().map(|a| &a.account_secret_ref),
                "acmedns.json",
                "the acme-dns account map",
            ),
        ];
        candidates
            .into_iter()
            .filter_map(|(selector, default_key, what)| {
                Some(ProviderSecret {
                    selector: selector?,
                    default_key,
                    what,
                })
            })
            .collect()
    }

    /// What the CRD's rules say, for `certweave local` (no API server in
    /// front of it): one provider, and each provider's fields consistent.
    pub fn check(&self, path: &str) -> Result<(), InvalidField> {
        let providers = [
            self.rfc2136.is_some(),
            self.route53.is_some(),
            self.cloudflare.is_some(),
            self.acme_dns.is_some(),
            self.webhook.is_some(),
        ];
        let set = providers.iter().filter(|p| **p).count();
        if set != 1 {
            return Err(InvalidField::new(
                path,
                format!("{set} DNS-01 providers are configured"),
                "configure exactly one of rfc2136, route53, cloudflare, acmeDNS or webhook",
            ));
        }
        if let Some(route53) = &self.route53 {
            let path = format!("{path}.route53");
            if route53.auth.is_some() {
                return Err(InvalidField::new(
                    format!("{path}.auth"),
                    "service-account token authentication is not supported by certweave yet",
                    "give accessKeyIDSecretRef and secretAccessKeySecretRef, a role, or ambient credentials (ClusterIssuers)",
                ));
            }
            if route53.access_key_id.is_some() && route53.access_key_id_secret_ref.is_some() {
                return Err(InvalidField::new(
                    path,
                    "accessKeyID and accessKeyIDSecretRef are both set",
                    "keep one",
                ));
            }
            let has_id =
                route53.access_key_id.is_some() || route53.access_key_id_secret_ref.is_some();
            if has_id != route53.secret_access_key_secret_ref.is_some() {
                return Err(InvalidField::new(
                    path,
                    "an access key needs both its ID and its secret",
                    "give accessKeyID (or accessKeyIDSecretRef) and secretAccessKeySecretRef, or neither for ambient credentials",
                ));
            }
        }
        if let Some(cloudflare) = &self.cloudflare {
            let path = format!("{path}.cloudflare");
            if cloudflare.api_token_secret_ref.is_some() == cloudflare.api_key_secret_ref.is_some()
            {
                return Err(InvalidField::new(
                    path,
                    "exactly one of apiTokenSecretRef and apiKeySecretRef must be set",
                    "set apiTokenSecretRef (a token with Zone:Read and DNS:Edit), or apiKeySecretRef with email",
                ));
            }
            if cloudflare.api_key_secret_ref.is_some() && cloudflare.email.is_none() {
                return Err(InvalidField::new(
                    format!("{path}.email"),
                    "the global API key (apiKeySecretRef) needs the account's email",
                    "set email, or use apiTokenSecretRef instead",
                ));
            }
        }
        if let Some(acme_dns) = &self.acme_dns {
            if !(acme_dns.host.starts_with("https://") || acme_dns.host.starts_with("http://")) {
                return Err(InvalidField::new(
                    format!("{path}.acmeDNS.host"),
                    format!(
                        "{:?} is not a URL",
                        crate::model::text::cut(&acme_dns.host, crate::model::text::QUOTED)
                    ),
                    "give the acme-dns server's API URL, e.g. https://auth.acme-dns.io",
                ));
            }
        }
        if let Some(webhook) = &self.webhook {
            if webhook.group_name.trim().is_empty() || webhook.solver_name.trim().is_empty() {
                return Err(InvalidField::new(
                    format!("{path}.webhook"),
                    "groupName and solverName must both be set",
                    "copy them from the solver's installation instructions",
                ));
            }
        }
        Ok(())
    }

    /// Whether `cnameStrategy: Follow` is set.
    pub fn follows_cnames(&self) -> bool {
        self.cname_strategy.as_deref() == Some("Follow")
    }
}

/// `route53`: TXT records through the Route53 API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.auth)",
        "message": "spec.acme.solvers[].dns01.route53.auth: service-account token authentication is not supported by certweave yet; give accessKeyIDSecretRef and secretAccessKeySecretRef, a role, or ambient credentials (ClusterIssuers)"
    },
    {
        "rule": "!(has(self.accessKeyID) && has(self.accessKeyIDSecretRef))",
        "message": "spec.acme.solvers[].dns01.route53: accessKeyID and accessKeyIDSecretRef are both set; keep one"
    },
    {
        "rule": "(has(self.accessKeyID) || has(self.accessKeyIDSecretRef)) == has(self.secretAccessKeySecretRef)",
        "message": "spec.acme.solvers[].dns01.route53: an access key needs both its ID (accessKeyID or accessKeyIDSecretRef) and secretAccessKeySecretRef; give both, or neither for ambient credentials"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct Route53Solver {
    /// The AWS region of the API calls (Route53 is global; STS is not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The hosted zone to write to; looked up from the name when absent.
    #[serde(
        default,
        rename = "hostedZoneID",
        skip_serializing_if = "Option::is_none"
    )]
    pub hosted_zone_id: Option<String>,
    /// The access key ID, inline (it is not a secret by itself).
    #[serde(
        default,
        rename = "accessKeyID",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_key_id: Option<String>,
    /// The access key ID from a Secret (key `access-key-id` if not given).
    #[serde(
        default,
        rename = "accessKeyIDSecretRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub access_key_id_secret_ref: Option<SecretKeySelector>,
    /// The secret access key (key `secret-access-key` if not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_secret_ref: Option<SecretKeySelector>,
    /// An IAM role ARN to assume (STS AssumeRole) with those credentials
    /// or the ambient ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// cert-manager's service-account token authentication, refused by
    /// name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub auth: Option<serde_json::Value>,
}

/// `cloudflare`: TXT records through the Cloudflare API v4.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.apiTokenSecretRef) != has(self.apiKeySecretRef)",
        "message": "spec.acme.solvers[].dns01.cloudflare: set exactly one of apiTokenSecretRef (recommended) or apiKeySecretRef with email; remove the other"
    },
    {
        "rule": "!has(self.apiKeySecretRef) || has(self.email)",
        "message": "spec.acme.solvers[].dns01.cloudflare.email: the global API key (apiKeySecretRef) needs the account's email; set email, or use an API token (apiTokenSecretRef)"
    }
]))]
#[serde(rename_all = "camelCase")]
pub struct CloudflareSolver {
    /// The account's email, with the global API key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// A scoped API token (Zone:Read, DNS:Edit), key `api-token` if not
    /// given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_token_secret_ref: Option<SecretKeySelector>,
    /// The global API key, key `api-key` if not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeySelector>,
}

/// `acmeDNS`: records through an acme-dns server, to which each name's
/// `_acme-challenge` is delegated by a CNAME.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AcmeDnsSolver {
    /// The acme-dns server's API URL.
    #[schemars(length(min = 1))]
    pub host: String,
    /// The JSON account map acme-dns's `/register` answers, by domain
    /// (key `acmedns.json` if not given).
    pub account_secret_ref: SecretKeySelector,
}

/// `webhook`: a cert-manager external DNS-01 solver, called through the
/// API server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSolver {
    /// The API group the solver serves (its APIService).
    #[schemars(length(min = 1))]
    pub group_name: String,
    /// The solver's name within that group.
    #[schemars(length(min = 1))]
    pub solver_name: String,
    /// Passed to the solver verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "issuer_fields::open_object")]
    pub config: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rfc2136Solver {
    /// `HOST:PORT` (port 53 if omitted).
    #[schemars(length(min = 1))]
    pub nameserver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_key_name: Option<String>,
    /// `HMACSHA256` (default), `HMACSHA384`, `HMACSHA512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig_secret_secret_ref: Option<SecretKeySelector>,
    /// `UDP` (default; TCP when an answer is truncated) or `TCP` (every
    /// message over TCP, for servers or firewalls that take updates over
    /// TCP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["TCP", "UDP"]))]
    pub protocol: Option<String>,
}

/// `ca`: sign with the CA certificate and key in a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuer {
    /// Secret holding the CA's `tls.crt` and `tls.key`.
    #[schemars(length(min = 1))]
    pub secret_name: String,
    /// CRL distribution point URLs written into every certificate signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub crl_distribution_points: Vec<String>,
    /// OCSP server URLs (authority information access) written into every
    /// certificate signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub ocsp_servers: Vec<String>,
    /// URLs where the CA's certificate is published (authority information
    /// access, CA issuers), written into every certificate signed.
    #[serde(
        default,
        rename = "issuingCertificateURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 10))]
    pub issuing_certificate_urls: Vec<String>,
}

/// `selfSigned: {}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SelfSignedIssuer {
    /// CRL distribution point URLs written into every certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub crl_distribution_points: Vec<String>,
}

impl CaIssuer {
    /// The URLs to write into certificates, checked.
    pub fn urls(&self) -> Result<IssuerUrls, InvalidField> {
        Ok(IssuerUrls {
            crl_distribution_points: check_urls(
                "spec.ca.crlDistributionPoints",
                &self.crl_distribution_points,
            )?,
            ocsp_servers: check_urls("spec.ca.ocspServers", &self.ocsp_servers)?,
            issuing_certificate_urls: check_urls(
                "spec.ca.issuingCertificateURLs",
                &self.issuing_certificate_urls,
            )?,
        })
    }
}

impl SelfSignedIssuer {
    /// The URLs to write into certificates, checked.
    pub fn urls(&self) -> Result<IssuerUrls, InvalidField> {
        Ok(IssuerUrls {
            crl_distribution_points: check_urls(
                "spec.selfSigned.crlDistributionPoints",
                &self.crl_distribution_points,
            )?,
            ..Default::default()
        })
    }
}

/// Longest URL accepted in a certificate extension.
const MAX_URL: usize = 2048;

/// URLs go into certificates as IA5String: absolute, ASCII, no spaces.
fn check_urls(field: &str, urls: &[String]) -> Result<Vec<String>, InvalidField> {
    for (i, url) in urls.iter().enumerate() {
        let scheme_ok = url
            .split_once("://")
            .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
        if !scheme_ok || url.len() > MAX_URL || !url.bytes().all(|b| b.is_ascii_graphic()) {
            let shown: String = url.chars().take(64).collect();
            return Err(InvalidField::new(
                format!("{field}[{i}]"),
                format!("{shown:?} is not an absolute ASCII URL of at most {MAX_URL} characters"),
                "write a URL such as http://pki.example.com/ca.crl",
            ));
        }
    }
    Ok(urls.to_vec())
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct IssuerStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CertificateCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuerStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_registered_email: Option<String>,
}

/// Which kind of issuer a spec configures, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerConfig<'a> {
    Acme(&'a AcmeIssuer),
    Ca(&'a CaIssuer),
    SelfSigned(&'a SelfSignedIssuer),
}

impl IssuerSpec {
    /// The names of the Secrets this issuer reads (CA key pair, ACME
    /// account key, external account binding key, TSIG keys), in the
    /// namespace its Secrets live in: a change to one of them may make an
    /// issuer that is not ready usable.
    pub fn secret_names(&self) -> impl Iterator<Item = &str> {
        let ca = self.ca.iter().map(|ca| ca.secret_name.as_str());
        let acme = self.acme.iter().flat_map(|acme| {
            std::iter::once(acme.private_key_secret_ref.name.as_str())
                .chain(
                    acme.external_account_binding
                        .iter()
                        .map(|eab| eab.key_secret_ref.name.as_str()),
                )
                .chain(
                    acme.solvers
                        .iter()
                        .filter_map(|solver| solver.dns01.as_ref())
                        .flat_map(|dns01| dns01.secrets())
                        .map(|secret| secret.selector.name.as_str()),
                )
        });
        ca.chain(acme)
    }

    /// Exactly one issuer type must be set; ACME needs a server, an account
    /// key Secret and at least one solver.
    pub fn config(&self) -> Result<IssuerConfig<'_>, InvalidField> {
        let json = serde_json::to_value(self).map_err(|e| {
            InvalidField::new("spec", format!("cannot be read: {e}"), "fix the issuer")
        })?;
        issuer_fields::check_spec(&json)?;
        let set = [
            self.acme.is_some(),
            self.ca.is_some(),
            self.self_signed.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if set != 1 {
            return Err(InvalidField::new(
                "spec",
                format!("{set} issuer types are configured"),
                "configure exactly one of acme, ca or selfSigned",
            ));
        }
        if let Some(acme) = &self.acme {
            if !(acme.server.starts_with("https://") || acme.server.starts_with("http://")) {
                return Err(InvalidField::new(
                    "spec.acme.server",
                    format!("{:?} is not a URL", acme.server),
                    "use the ACME directory URL, e.g. https://acme-staging-v02.api.letsencrypt.org/directory",
                ));
            }
            super::names::check_object_name(
                "spec.acme.privateKeySecretRef.name",
                &acme.private_key_secret_ref.name,
            )?;
            if acme.solvers.is_empty() {
                return Err(InvalidField::new(
                    "spec.acme.solvers",
                    "no solver is configured",
                    "add a solver, e.g. solvers: [{http01: {ingress: {ingressClassName: nginx}}}]",
                ));
            }
            for (i, solver) in acme.solvers.iter().enumerate() {
                if solver.http01.is_some() == solver.dns01.is_some() {
                    return Err(InvalidField::new(
                        format!("spec.acme.solvers[{i}]"),
                        "a solver must configure exactly one of http01 or dns01",
                        "split it into two solvers with selectors",
                    ));
                }
                if solver
                    .http01
                    .as_ref()
                    .is_some_and(|h| h.ingress.is_some() && h.gateway_http_route.is_some())
                {
                    return Err(InvalidField::new(
                        format!("spec.acme.solvers[{i}].http01"),
                        "ingress and gatewayHTTPRoute are both set",
                        "keep one, or split them into two solvers with selectors",
                    ));
                }
                if let Some(ingress) = solver.http01.as_ref().and_then(|h| h.ingress.as_ref()) {
                    let set = [&ingress.class, &ingress.ingress_class_name, &ingress.name]
                        .iter()
                        .filter(|f| f.is_some())
                        .count();
                    if set > 1 {
                        return Err(InvalidField::new(
                            format!("spec.acme.solvers[{i}].http01.ingress"),
                            "more than one of ingressClassName, class and name is set",
                            "keep one: ingressClassName for a new Ingress of that class, name to edit an existing Ingress",
                        ));
                    }
                }
                if let Some(dns01) = &solver.dns01 {
                    dns01.check(&format!("spec.acme.solvers[{i}].dns01"))?;
                }
            }
            return Ok(IssuerConfig::Acme(acme));
        }
        if let Some(ca) = &self.ca {
            super::names::check_object_name("spec.ca.secretName", &ca.secret_name)?;
            ca.urls()?;
            return Ok(IssuerConfig::Ca(ca));
        }
        let self_signed = self
            .self_signed
            .as_ref()
            .expect("exactly one issuer type is set");
        self_signed.urls()?;
        Ok(IssuerConfig::SelfSigned(self_signed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cert_manager_docs_cluster_issuer_parses() {
        let yaml = r#"
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: letsencrypt-staging
spec:
  acme:
    server: https://acme-staging-v02.api.letsencrypt.org/directory
    email: user@example.com
    privateKeySecretRef:
      name: letsencrypt-staging
    solvers:
    - http01:
        ingress:
          ingressClassName: nginx
"#;
        let issuer: ClusterIssuer = serde_yaml_ng::from_str(yaml).unwrap();
        match issuer.spec.config().unwrap() {
            IssuerConfig::Acme(acme) => {
                assert_eq!(acme.email.as_deref(), Some("user@example.com"));
                assert_eq!(
                    acme.solvers[0]
                        .http01
                        .as_ref()
                        .unwrap()
                        .ingress
                        .as_ref()
                        .unwrap()
                        .ingress_class_name
                        .as_deref(),
                    Some("nginx")
                );
            }
            other => panic!("expected ACME, got {other:?}"),
        }
    }

    #[test]
    fn issuer_urls_must_be_absolute_ascii_urls() {
        let spec: IssuerSpec = serde_yaml_ng::from_str(
            "ca: {secretName: root, crlDistributionPoints: [http://pki.example/ca.crl], ocspServers: ['pki.example/ocsp']}\n",
        )
        .unwrap();
        let err = spec.config().unwrap_err();
        assert_eq!(err.field, "spec.ca.ocspServers[0]");
        let spec: IssuerSpec = serde_yaml_ng::from_str(&format!(
            "selfSigned: {{crlDistributionPoints: ['http://x/{}']}}\n",
            "y".repeat(5000)
        ))
        .unwrap();
        let err = spec.config().unwrap_err();
        assert_eq!(err.field, "spec.selfSigned.crlDistributionPoints[0]");
        assert!(err.problem.len() < 200, "{}", err.problem);
        let spec: IssuerSpec = serde_yaml_ng::from_str(
            "ca: {secretName: root, issuingCertificateURLs: ['http://pki.example/ca.crt']}\n",
        )
        .unwrap();
        assert!(spec.config().is_ok());
    }

    #[test]
    fn exactly_one_issuer_type() {
        let spec: IssuerSpec =
            serde_yaml_ng::from_str("selfSigned: {}\nca: {secretName: root}\n").unwrap();
        assert_eq!(spec.config().unwrap_err().field, "spec");
        let spec: IssuerSpec = serde_yaml_ng::from_str("ca: {secretName: root-ca}\n").unwrap();
        assert_eq!(
            spec.config().unwrap(),
            IssuerConfig::Ca(&CaIssuer {
                secret_name: "root-ca".into(),
                ..Default::default()
            })
        );
    }
}
