//! HTTP-01 in a cluster without solver Pods: for each challenge, the
//! request `http://HOST/.well-known/acme-challenge/TOKEN` is routed by the
//! cluster's ingress controller to the leader's `--solver-addr`.
//!
//! Per challenge, in the Certificate's namespace: a Service without
//! selector and an EndpointSlice holding the leader's Pod IP (an Ingress
//! can only point at Services of its own namespace), and either a temporary
//! Ingress of the solver's class or, for edit-in-place, one more rule on
//! the user's Ingress. All of it is removed when the challenge ends,
//! whatever the outcome.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

use crate::issuers::acme::http01::CHALLENGE_PATH;
use crate::issuers::acme::{Http01Route, Http01Routes};
use crate::model::IssueError;
use crate::model::RequestOrigin;

/// The label on every object made for a challenge.
pub const CHALLENGE_LABEL: &str = "certweave.io/acme-challenge";
/// The field manager of challenge objects.
pub const CHALLENGE_MANAGER: &str = "certweave-acme-http01";

/// Routes challenges to this replica through Kubernetes objects.
pub struct KubeRoutes {
    client: Client,
    solver_port: u16,
    /// The address the challenge Services' endpoints point at, or why
    /// there is none.
    endpoint: Result<IpAddr, String>,
}

impl KubeRoutes {
    /// Routes to `pod_ip`. One that no ingress controller can reach
    /// (missing, loopback, unspecified) is reported here, once, and the
    /// challenges go without endpoints: an ACME server that reaches
    /// `--solver-addr` directly still validates, any other fails with
    /// this reason in the Certificate's condition instead of retrying
    /// an EndpointSlice the API server refuses.
    pub fn new(client: Client, solver_port: u16, pod_ip: Option<String>) -> Self {
        let endpoint = routable_endpoint(pod_ip.as_deref());
        if let Err(why) = &endpoint {
            tracing::warn!("{why}");
        }
        Self {
            client,
            solver_port,
            endpoint,
        }
    }
}

/// The Pod IP as an endpoint address, or why it cannot be one. The API
/// server refuses EndpointSlices with loopback, link-local or unspecified
/// addresses.
pub fn routable_endpoint(pod_ip: Option<&str>) -> Result<IpAddr, String> {
    const EFFECT: &str = "HTTP-01 challenge Services get no endpoints, so only an ACME server \
                          that reaches --solver-addr directly can validate; set POD_IP from \
                          the Pod's status.podIP (the chart does)";
    let Some(text) = pod_ip.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(format!("POD_IP is not set: {EFFECT}"));
    };
    let ip: IpAddr = text
        .parse()
        .map_err(|_| format!("POD_IP {text:?} is not an IP address: {EFFECT}"))?;
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    };
    if ip.is_loopback() || ip.is_unspecified() || link_local {
        return Err(format!(
            "POD_IP {ip} is a loopback, link-local or unspecified address, which an \
             EndpointSlice may not hold: {EFFECT}"
        ));
    }
    Ok(ip)
}

/// The name of a challenge's objects: stable for a host and token, so a
/// resumed order finds them again.
pub fn object_name(host: &str, token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{host}/{token}").as_bytes());
    let hex: String = digest.as_ref()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("certweave-acme-{hex}")
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([(CHALLENGE_LABEL.to_owned(), "true".to_owned())])
}

/// The Service a challenge's route points at.
pub fn service(name: &str, namespace: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels()},
        "spec": {"ports": [{"name": "http", "port": port, "targetPort": port, "protocol": "TCP"}]}
    })
}

/// The endpoints of that Service: this replica.
pub fn endpoint_slice(name: &str, namespace: &str, ip: &str, port: u16) -> Value {
    let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
    let mut labels = labels();
    labels.insert("kubernetes.io/service-name".into(), name.into());
    labels.insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        "certweave.io".into(),
    );
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "addressType": family,
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
    })
}

/// The Ingress rule that sends the challenge path of `host` to `service`.
pub fn challenge_rule(host: &str, token: &str, service: &str, port: u16) -> Value {
    let mut rule = json!({"http": {"paths": [{
        "path": format!("{CHALLENGE_PATH}{token}"),
        "pathType": "Exact",
        "backend": {"service": {"name": service, "port": {"number": port}}}
    }]}});
    // An Ingress host cannot be an IP address; such a rule matches any host.
    if host.parse::<std::net::IpAddr>().is_err() {
        rule["host"] = json!(host);
    }
    rule
}

/// A temporary Ingress for one challenge, of the solver's class.
pub fn challenge_ingress(
    name: &str,
    namespace: &str,
    host: &str,
    token: &str,
    route: &Http01Route,
    port: u16,
) -> Value {
    // The template's labels are added to certweave's own, which win: they
    // are how certweave finds its challenge objects again. The template's
    // annotations win over certweave's, as in cert-manager.
    let mut all_labels = route.labels.clone();
    all_labels.extend(labels());
    let mut annotations = BTreeMap::new();
    if let Some(class) = &route.class {
        annotations.insert("kubernetes.io/ingress.class".to_owned(), class.clone());
    }
    annotations.extend(route.annotations.clone());
    let mut ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "labels": all_labels},
        "spec": {"rules": [challenge_rule(host, token, name, port)]}
    });
    if let Some(class) = &route.ingress_class_name {
        ingress["spec"]["ingressClassName"] = json!(class);
    }
    if !annotations.is_empty() {
        ingress["metadata"]["annotations"] = json!(annotations);
    }
    ingress
}

/// The parents an HTTP-01 HTTPRoute attaches to: the Gateway a
/// Certificate was made for, else the issuer's `parentRefs`.
fn parent_refs(route: &Http01Route, context: &RequestOrigin) -> Result<Vec<Value>, IssueError> {
    if let Some((kind, name)) = &context.http01_parent {
        return Ok(vec![
            json!({"group": "gateway.networking.k8s.io", "kind": kind, "name": name}),
        ]);
    }
    let parents = route.gateway.as_deref().unwrap_or_default();
    if parents.is_empty() {
        return Err(IssueError::Config(
            "the gatewayHTTPRoute solver names no parentRefs, so its HTTPRoute would attach to no Gateway; add spec.acme.solvers[].http01.gatewayHTTPRoute.parentRefs".into(),
        ));
    }
    Ok(parents
        .iter()
        .map(|p| {
            let mut parent = json!({"name": p.name});
            for (key, value) in [
                ("namespace", &p.namespace),
                ("kind", &p.kind),
                ("group", &p.group),
                ("sectionName", &p.section_name),
            ] {
                if let Some(value) = value {
                    parent[key] = json!(value);
                }
            }
            if let Some(port) = p.port {
                parent["port"] = json!(port);
            }
            parent
        })
        .collect())
}

/// A temporary HTTPRoute for one challenge: exactly the token path of
/// `host`, to the challenge Service.
pub fn challenge_http_route(
    name: &str,
    namespace: &str,
    host: &str,
    token: &str,
    parents: Vec<Value>,
    route: &Http01Route,
    port: u16,
) -> Value {
    let mut all_labels = route.labels.clone();
    all_labels.extend(labels());
    let mut spec = json!({
        "parentRefs": parents,
        "rules": [{
            "matches": [{"path": {"type": "Exact", "value": format!("{CHALLENGE_PATH}{token}")}}],
            "backendRefs": [{"name": name, "port": port}],
        }],
    });
    // A hostname cannot be an IP address; such a route matches any host.
    if host.parse::<IpAddr>().is_err() {
        spec["hostnames"] = json!([host]);
    }
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": namespace, "labels": all_labels},
        "spec": spec,
    })
}

/// Conflicts, throttling and server errors pass; the API server refusing
/// the object (invalid, forbidden) does not, until a human changes
/// something, so it is not retried as transient.
fn failed(what: &str, e: kube::Error) -> IssueError {
    let context = format!("cannot {what} for the HTTP-01 challenge");
    match &e {
        kube::Error::Api(s) if (400..500).contains(&s.code) && ![409, 429].contains(&s.code) => {
            IssueError::config_because(context, e)
        }
        _ => IssueError::transient_because(context, e),
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl KubeRoutes {
    fn namespace<'a>(&self, context: &'a RequestOrigin) -> &'a str {
        if context.namespace.is_empty() {
            "default"
        } else {
            &context.namespace
        }
    }

    async fn apply(
        &self,
        path: Api<kube::core::DynamicObject>,
        name: &str,
        body: Value,
    ) -> Result<(), kube::Error> {
        path.patch(
            name,
            &PatchParams::apply(CHALLENGE_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map(|_| ())
    }

    /// Adds or removes the challenge rule on an existing Ingress, retrying
    /// on conflicting writes.
    async fn edit_in_place(
        &self,
        namespace: &str,
        ingress: &str,
        rule: &Value,
        add: bool,
    ) -> Result<(), kube::Error> {
        let api: Api<Ingress> = Api::namespaced(self.client.clone(), namespace);
        let mut attempts = 0;
        loop {
            let current = api.get(ingress).await?;
            let mut value = serde_json::to_value(&current).expect("Ingress serialises");
            let rules = value["spec"]
                .as_object_mut()
                .map(|spec| spec.entry("rules").or_insert_with(|| json!([])))
                .and_then(Value::as_array_mut);
            let Some(rules) = rules else { return Ok(()) };
            let present = rules.iter().any(|r| r == rule);
            match (add, present) {
                (true, true) | (false, false) => return Ok(()),
                (true, false) => rules.push(rule.clone()),
                (false, true) => rules.retain(|r| r != rule),
            }
            let updated: Ingress = serde_json::from_value(value).expect("still an Ingress");
            match api.replace(ingress, &PostParams::default(), &updated).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 && attempts < 5 => attempts += 1,
                Err(e) => return Err(e),
            }
        }
    }

    fn dynamic(&self, namespace: &str, kind: &str) -> Api<kube::core::DynamicObject> {
        let (group, version, plural) = match kind {
            "Service" => ("", "v1", "services"),
            "EndpointSlice" => ("discovery.k8s.io", "v1", "endpointslices"),
            "HTTPRoute" => ("gateway.networking.k8s.io", "v1", "httproutes"),
            _ => ("networking.k8s.io", "v1", "ingresses"),
        };
        let gvk = kube::core::GroupVersionKind::gvk(group, version, kind);
        let resource = kube::core::ApiResource::from_gvk_with_plural(&gvk, plural);
        Api::namespaced_with(self.client.clone(), namespace, &resource)
    }
}

impl Http01Routes for KubeRoutes {
    fn unroutable(&self) -> Option<&str> {
        self.endpoint.as_ref().err().map(String::as_str)
    }

    fn open<'a>(
        &'a self,
        host: &'a str,
        token: &'a str,
        route: &'a Http01Route,
        context: &'a RequestOrigin,
    ) -> crate::issuers::acme::SolverFuture<'a> {
        Box::pin(async move {
            let namespace = self.namespace(context);
            let name = object_name(host, token);
            let port = self.solver_port;
            self.apply(
                self.dynamic(namespace, "Service"),
                &name,
                service(&name, namespace, port),
            )
            .await
            .map_err(|e| failed("create the Service", e))?;
            if let Ok(ip) = &self.endpoint {
                self.apply(
                    self.dynamic(namespace, "EndpointSlice"),
                    &name,
                    endpoint_slice(&name, namespace, &ip.to_string(), port),
                )
                .await
                .map_err(|e| failed("create the EndpointSlice", e))?;
            }
            if route.gateway.is_some() {
                let parents = parent_refs(route, context)?;
                self.apply(
                    self.dynamic(namespace, "HTTPRoute"),
                    &name,
                    challenge_http_route(&name, namespace, host, token, parents, route, port),
                )
                .await
                .map_err(|e| failed("create the HTTPRoute", e))?;
                tracing::info!(%host, namespace, httproute = %name, "routing the HTTP-01 challenge to this replica through an HTTPRoute");
                return Ok(());
            }
            match route.name.as_deref().or(context.edit_in_place.as_deref()) {
                Some(existing) => self
                    .edit_in_place(
                        namespace,
                        existing,
                        &challenge_rule(host, token, &name, port),
                        true,
                    )
                    .await
                    .map_err(|e| {
                        failed(
                            &format!("add the challenge path to Ingress {namespace}/{existing}"),
                            e,
                        )
                    })?,
                None => self
                    .apply(
                        self.dynamic(namespace, "Ingress"),
                        &name,
                        challenge_ingress(&name, namespace, host, token, route, port),
                    )
                    .await
                    .map_err(|e| failed("create the Ingress", e))?,
            }
            tracing::info!(%host, namespace, ingress = %route.name.as_deref().or(context.edit_in_place.as_deref()).unwrap_or(&name), "routing the HTTP-01 challenge to this replica");
            Ok(())
        })
    }

    fn close<'a>(
        &'a self,
        host: &'a str,
        token: &'a str,
        route: &'a Http01Route,
        context: &'a RequestOrigin,
    ) -> crate::issuers::acme::SolverFuture<'a> {
        Box::pin(async move {
            let namespace = self.namespace(context);
            let name = object_name(host, token);
            let mut first_error = None;
            if let Some(existing) = route.name.as_deref().or(context.edit_in_place.as_deref()) {
                let rule = challenge_rule(host, token, &name, self.solver_port);
                if let Err(e) = self.edit_in_place(namespace, existing, &rule, false).await {
                    if !not_found(&e) {
                        first_error.get_or_insert(failed("remove the challenge path", e));
                    }
                }
            }
            let route_kind = if route.gateway.is_some() {
                "HTTPRoute"
            } else {
                "Ingress"
            };
            for kind in [route_kind, "EndpointSlice", "Service"] {
                if let Err(e) = self
                    .dynamic(namespace, kind)
                    .delete(&name, &DeleteParams::background())
                    .await
                {
                    if !not_found(&e) {
                        first_error.get_or_insert(failed(&format!("delete the {kind}"), e));
                    }
                }
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::discovery::v1::EndpointSlice;

    #[test]
    fn a_challenge_http_route_attaches_to_its_parents_and_routes_the_token_path() {
        use crate::issuers::acme::GatewayParent;
        let route = Http01Route {
            labels: BTreeMap::from([("team".into(), "web".into())]),
            gateway: Some(vec![GatewayParent {
                name: "public".into(),
                namespace: Some("infra".into()),
                section_name: Some("http".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let parents = parent_refs(&route, &RequestOrigin::default()).unwrap();
        assert_eq!(
            parents,
            [json!({"name": "public", "namespace": "infra", "sectionName": "http"})]
        );
        let name = object_name("shop.example.com", "tok");
        let http_route = challenge_http_route(
            &name,
            "shop",
            "shop.example.com",
            "tok",
            parents,
            &route,
            8089,
        );
        assert_eq!(http_route["kind"], "HTTPRoute");
        assert_eq!(http_route["metadata"]["labels"][CHALLENGE_LABEL], "true");
        assert_eq!(http_route["metadata"]["labels"]["team"], "web");
        let spec = &http_route["spec"];
        assert_eq!(spec["hostnames"], json!(["shop.example.com"]));
        assert_eq!(
            spec["rules"][0]["matches"][0]["path"],
            json!({"type": "Exact", "value": "/.well-known/acme-challenge/tok"})
        );
        assert_eq!(
            spec["rules"][0]["backendRefs"][0],
            json!({"name": name, "port": 8089})
        );

        // A Certificate made for a Gateway attaches to that Gateway.
        let for_gateway = RequestOrigin {
            http01_parent: Some(("Gateway".into(), "gw".into())),
            ..Default::default()
        };
        assert_eq!(
            parent_refs(&route, &for_gateway).unwrap(),
            [json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"})]
        );
        // No parent at all: said, not an HTTPRoute attached to nothing.
        let orphan = Http01Route {
            gateway: Some(Vec::new()),
            ..Default::default()
        };
        let err = parent_refs(&orphan, &RequestOrigin::default()).unwrap_err();
        assert!(err.to_string().contains("parentRefs"), "{err}");
    }

    #[test]
    fn only_a_routable_pod_ip_becomes_an_endpoint() {
        assert_eq!(
            routable_endpoint(Some("10.244.1.7")),
            Ok("10.244.1.7".parse().unwrap())
        );
        assert_eq!(
            routable_endpoint(Some("fd00::7")),
            Ok("fd00::7".parse().unwrap())
        );
        for (pod_ip, says) in [
            (None, "POD_IP is not set"),
            (Some(""), "POD_IP is not set"),
            (Some("127.0.0.1"), "POD_IP 127.0.0.1 is a loopback"),
            (Some("::1"), "POD_IP ::1 is a loopback"),
            (Some("0.0.0.0"), "POD_IP 0.0.0.0 is a loopback"),
            (Some("169.254.3.4"), "POD_IP 169.254.3.4 is a loopback"),
            (Some("fe80::1"), "POD_IP fe80::1 is a loopback"),
            (Some("pod-a"), "POD_IP \"pod-a\" is not an IP address"),
        ] {
            let why = routable_endpoint(pod_ip).unwrap_err();
            assert!(why.starts_with(says), "{pod_ip:?}: {why}");
            assert!(why.contains("status.podIP"), "names the fix: {why}");
        }
    }

    #[test]
    fn a_challenge_ingress_routes_exactly_the_token_path_to_its_service() {
        let route = Http01Route {
            ingress_class_name: Some("nginx".into()),
            ..Default::default()
        };
        let name = object_name("web.example.com", "tok");
        assert_eq!(name, object_name("web.example.com", "tok"), "stable");
        assert_ne!(name, object_name("web.example.com", "other"));
        assert!(name.len() <= 63);
        let ingress = challenge_ingress(&name, "shop", "web.example.com", "tok", &route, 8089);
        assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
        let rule = &ingress["spec"]["rules"][0];
        assert_eq!(rule["host"], "web.example.com");
        let path = &rule["http"]["paths"][0];
        assert_eq!(path["path"], "/.well-known/acme-challenge/tok");
        assert_eq!(path["pathType"], "Exact");
        assert_eq!(path["backend"]["service"]["name"], json!(name));
        assert_eq!(path["backend"]["service"]["port"]["number"], 8089);
        let typed: Ingress = serde_json::from_value(ingress).unwrap();
        assert_eq!(typed.metadata.labels.unwrap()[CHALLENGE_LABEL], "true");

        let legacy = Http01Route {
            class: Some("traefik".into()),
            ..Default::default()
        };
        let ingress = challenge_ingress(&name, "shop", "web.example.com", "tok", &legacy, 8089);
        assert_eq!(
            ingress["metadata"]["annotations"]["kubernetes.io/ingress.class"],
            "traefik"
        );
        assert!(ingress["spec"].get("ingressClassName").is_none());

        // ingressTemplate: labels join certweave's (which win), annotations
        // win over certweave's.
        let templated = Http01Route {
            class: Some("traefik".into()),
            labels: BTreeMap::from([
                ("team".into(), "web".into()),
                (CHALLENGE_LABEL.into(), "false".into()),
            ]),
            annotations: BTreeMap::from([
                (
                    "kubernetes.io/ingress.class".into(),
                    "nginx-internal".into(),
                ),
                (
                    "nginx.ingress.kubernetes.io/whitelist-source-range".into(),
                    "0.0.0.0/0".into(),
                ),
            ]),
            ..Default::default()
        };
        let ingress = challenge_ingress(&name, "shop", "web.example.com", "tok", &templated, 8089);
        assert_eq!(ingress["metadata"]["labels"]["team"], "web");
        assert_eq!(ingress["metadata"]["labels"][CHALLENGE_LABEL], "true");
        let annotations = &ingress["metadata"]["annotations"];
        assert_eq!(annotations["kubernetes.io/ingress.class"], "nginx-internal");
        assert_eq!(
            annotations["nginx.ingress.kubernetes.io/whitelist-source-range"],
            "0.0.0.0/0"
        );

        let slice: EndpointSlice =
            serde_json::from_value(endpoint_slice(&name, "shop", "10.0.0.7", 8089)).unwrap();
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(
            slice.metadata.labels.unwrap()["kubernetes.io/service-name"],
            name
        );
        let svc: Service = serde_json::from_value(service(&name, "shop", 8089)).unwrap();
        assert!(
            svc.spec.unwrap().selector.is_none(),
            "endpoints are ours, not selected"
        );
    }
}
