"""Semantic checks shared by the webhook-config/ tests and the chart render
tests. Each takes the parsed documents (and, for comments, the text) and
raises AssertionError naming the object and field that is wrong."""

from __future__ import annotations

import re

import kubernetes_validate
import yaml

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion; webhook
# matchConditions are GA since 1.30) and the newest schema bundled with
# kubernetes-validate at the time of writing.
K8S_VERSIONS = ["1.30.0", "1.37.0"]

# Kinds served by CRDs, which kubernetes-validate has no schema for; they
# are checked structurally by check_crd_typed.
CRD_GROUPS = {"cert-manager.io", "monitoring.coreos.com", "apiextensions.k8s.io"}

PORTS = {"webhook": 9443, "metrics": 9402, "http-solver": 8089}


def group_of(doc: dict) -> str:
    api = doc["apiVersion"]
    return api.split("/")[0] if "/" in api else ""


def ident(doc: dict) -> str:
    md = doc.get("metadata", {})
    ns = md.get("namespace")
    return f"{doc.get('kind')}/{(ns + '/') if ns else ''}{md.get('name')}"


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


def one(docs, kind):
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected exactly one {kind}, found {[ident(d) for d in found]}"
    return found[0]


# ---------------------------------------------------------------- schemas


def validate_against_kubernetes(docs) -> list[str]:
    """Validates every built-in kind against the Kubernetes OpenAPI schemas
    (strict: unknown fields are errors). Returns the CRD-typed objects
    skipped, for the caller to check otherwise."""
    skipped = []
    for doc in docs:
        if group_of(doc) in CRD_GROUPS and doc["kind"] != "CustomResourceDefinition":
            skipped.append(ident(doc))
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                raise AssertionError(
                    f"{ident(doc)} is invalid for Kubernetes {version}: {e.message} "
                    f"at {'/'.join(map(str, e.path))}"
                ) from None
    return skipped


def _dns1123(name) -> bool:
    return isinstance(name, str) and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name) is not None


def check_crd_typed(docs) -> None:
    """Structural checks for objects whose schema is a CRD."""
    for doc in docs:
        g, kind, spec = group_of(doc), doc["kind"], doc.get("spec")
        if g not in CRD_GROUPS or kind == "CustomResourceDefinition":
            continue
        assert _dns1123(doc["metadata"].get("name")), f"{ident(doc)}: bad name"
        assert isinstance(spec, dict), f"{ident(doc)}: no spec"
        if g == "cert-manager.io":
            assert doc["apiVersion"] == "cert-manager.io/v1", ident(doc)
        if kind == "ClusterIssuer" or kind == "Issuer":
            kinds = [k for k in ("acme", "ca", "selfSigned") if k in spec]
            assert len(kinds) == 1, f"{ident(doc)}: exactly one of acme, ca, selfSigned: {kinds}"
            if "acme" in spec:
                acme = spec["acme"]
                assert acme["server"].startswith("https://"), ident(doc)
                assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", acme["email"]), ident(doc)
                assert _dns1123(acme["privateKeySecretRef"]["name"]), ident(doc)
                assert acme["solvers"] and all("http01" in s or "dns01" in s for s in acme["solvers"])
            if "ca" in spec:
                assert _dns1123(spec["ca"]["secretName"]), ident(doc)
        elif kind == "Certificate":
            assert doc["metadata"].get("namespace"), f"{ident(doc)}: namespaced"
            assert _dns1123(spec["secretName"]), ident(doc)
            assert spec["issuerRef"]["kind"] in ("Issuer", "ClusterIssuer"), ident(doc)
            assert spec.get("dnsNames") or spec.get("commonName"), ident(doc)
            if "duration" in spec:
                assert re.fullmatch(r"([0-9]+(ns|us|ms|s|m|h))+", spec["duration"]), ident(doc)
        elif kind == "ServiceMonitor":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            assert spec["selector"]["matchLabels"], ident(doc)
            for ep in spec["endpoints"]:
                assert ep["port"] and ep.get("path", "/metrics") == "/metrics", ident(doc)
        elif kind == "PrometheusRule":
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            check_rule_groups(spec)
        else:
            raise AssertionError(f"{ident(doc)}: no structural check for this kind")


def check_rule_groups(spec: dict) -> None:
    """A Prometheus rule file: groups of alerts, each well formed."""
    names = set()
    assert spec.get("groups"), "no rule groups"
    for group in spec["groups"]:
        assert group["name"] and group["rules"], group
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"]), rule["alert"]
            assert rule["alert"] not in names, f"duplicate alert {rule['alert']}"
            names.add(rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule["alert"]
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
            if "for" in rule:
                assert re.fullmatch(r"([0-9]+[smhdw])+", rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


# --------------------------------------------------------------- workload


def _container_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p["name"] == port:
            return p["containerPort"]
    raise AssertionError(f"container {container['name']}: no port named {port}")


def check_deployment(
    docs, *, replicas: int | None = None, leader_elect: bool | None = None, watch_namespaces=()
) -> dict:
    dep = one(docs, "Deployment")
    name = ident(dep)
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    if replicas is not None:
        assert spec["replicas"] == replicas, f"{name}: replicas"
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()

    # Restricted Pod Security Standard, Pod level.
    psc = pod["securityContext"]
    assert psc["runAsNonRoot"] is True, f"{name}: pod runAsNonRoot"
    assert isinstance(psc["runAsUser"], int) and psc["runAsUser"] > 0, f"{name}: numeric non-root runAsUser"
    assert psc["seccompProfile"]["type"] == "RuntimeDefault", f"{name}: pod seccomp"
    for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(forbidden), f"{name}: {forbidden}"
    for vol in pod.get("volumes", []):
        assert "hostPath" not in vol, f"{name}: hostPath volume {vol['name']}"

    containers = pod["containers"]
    assert [c["name"] for c in containers] == ["controller"], f"{name}: containers"
    assert not pod.get("initContainers"), f"{name}: unexpected initContainers"
    c = containers[0]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False, f"{name}: allowPrivilegeEscalation"
    assert sc["readOnlyRootFilesystem"] is True, f"{name}: readOnlyRootFilesystem"
    assert sc["capabilities"]["drop"] == ["ALL"], f"{name}: capabilities.drop"
    assert not sc["capabilities"].get("add"), f"{name}: capabilities.add"
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == psc["runAsUser"], f"{name}: container user"
    assert sc["seccompProfile"]["type"] == "RuntimeDefault", f"{name}: container seccomp"
    assert not sc.get("privileged"), f"{name}: privileged"

    # /tmp is a writable emptyDir despite the read-only root filesystem.
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in vols[mounts["/tmp"]], f"{name}: /tmp emptyDir"

    # The command line the binary's contract fixes.
    args = c["args"]
    assert args[0] == "controller", f"{name}: args start with the subcommand: {args}"
    flags = {a.split("=", 1)[0]: (a.split("=", 1)[1] if "=" in a else True) for a in args[1:]}
    assert flags["--webhook-addr"] == "0.0.0.0:9443", f"{name}: --webhook-addr"
    assert flags["--metrics-addr"] == "0.0.0.0:9402", f"{name}: --metrics-addr"
    assert flags["--solver-addr"] == "0.0.0.0:8089", f"{name}: --solver-addr"
    assert flags["--namespace"] == "$(POD_NAMESPACE)", f"{name}: --namespace"
    assert flags["--proxy-image"], f"{name}: --proxy-image"
    if leader_elect is not None:
        assert ("--leader-elect" in flags) == leader_elect, f"{name}: --leader-elect"
    if spec["replicas"] > 1:
        assert "--leader-elect" in flags, f"{name}: several replicas need --leader-elect"
    known = {
        "--log-format", "--webhook-addr", "--metrics-addr", "--solver-addr", "--namespace",
        "--leader-elect", "--webhook-service-name", "--webhook-config-name",
        "--webhook-secret-name", "--tls-cert-file", "--tls-key-file", "--proxy-image",
        "--default-issuer", "--watch-namespaces", "--disable-auto-approval",
        "--dns01-recursive-nameservers", "--dns01-recursive-nameservers-only",
        "--dns01-propagation-timeout", "--cluster-issuer-ambient-credentials",
        "--issuer-ambient-credentials",
    }
    assert set(flags) <= known, f"{name}: unknown flags {set(flags) - known}"
    assert ("--tls-cert-file" in flags) == ("--tls-key-file" in flags), f"{name}: TLS file flags come in pairs"
    if watch_namespaces:
        assert flags.get("--watch-namespaces") == ",".join(watch_namespaces), f"{name}: --watch-namespaces"
    else:
        assert "--watch-namespaces" not in flags, f"{name}: --watch-namespaces in a cluster-wide install"
    if "--tls-cert-file" in flags:
        mounted = [p for p in mounts if flags["--tls-cert-file"].startswith(p + "/")]
        assert mounted and "secret" in vols[mounts[mounted[0]]], f"{name}: TLS files come from a Secret"
    else:
        assert flags.get("--webhook-secret-name"), f"{name}: self-managed serving cert needs --webhook-secret-name"

    env = {e["name"]: e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") for e in c["env"]}
    assert env["POD_NAMESPACE"] == "metadata.namespace", f"{name}: POD_NAMESPACE"
    assert env["POD_NAME"] == "metadata.name", f"{name}: POD_NAME"
    assert env["POD_IP"] == "status.podIP", f"{name}: POD_IP"

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == PORTS, f"{name}: ports {ports}"
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, f"{name}: {probe} path"
        assert _container_port(c, get["port"]) == 9402, f"{name}: {probe} on the metrics port"
        assert get.get("scheme", "HTTP") == "HTTP", f"{name}: {probe} scheme"
    res = c["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"], f"{name}: resources"
    return dep


def check_pdb(docs, dep) -> None:
    pdbs = by_kind(docs, "PodDisruptionBudget")
    if dep["spec"]["replicas"] > 1:
        assert len(pdbs) == 1, "several replicas need a PodDisruptionBudget"
        pdb = pdbs[0]
        assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["minAvailable"] < dep["spec"]["replicas"], "a drain must be able to proceed"
        anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
        terms = anti.get("preferredDuringSchedulingIgnoredDuringExecution", []) + anti.get(
            "requiredDuringSchedulingIgnoredDuringExecution", []
        )
        assert terms, "replicas are spread by podAntiAffinity"
    else:
        assert not pdbs, "a PodDisruptionBudget on one replica blocks every drain"


def check_services(docs, dep) -> dict:
    c = dep["spec"]["template"]["spec"]["containers"][0]
    selector = dep["spec"]["selector"]["matchLabels"]
    found = {}
    for svc in by_kind(docs, "Service"):
        assert svc["spec"]["selector"] == selector, f"{ident(svc)}: selects the controller Pods"
        for p in svc["spec"]["ports"]:
            found[_container_port(c, p["targetPort"])] = (svc["metadata"]["name"], p["port"])
    assert found[9443][1] == 443, "webhook Service: 443 -> 9443"
    assert found[9402][1] == 9402, "metrics Service: 9402"
    return found


# -------------------------------------------------------------------- RBAC

EXPECTED_CLUSTER_VERBS = {
    ("cert-manager.io", "certificates"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("cert-manager.io", "certificaterequests"): {"get", "list", "watch"},
    ("cert-manager.io", "issuers"): {"get", "list", "watch"},
    ("cert-manager.io", "clusterissuers"): {"get", "list", "watch"},
    ("cert-manager.io", "certificates/status"): {"get", "patch", "update"},
    ("cert-manager.io", "certificaterequests/status"): {"get", "patch", "update"},
    ("cert-manager.io", "issuers/status"): {"get", "patch", "update"},
    ("cert-manager.io", "clusterissuers/status"): {"get", "patch", "update"},
    ("", "secrets"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    ("networking.k8s.io", "ingresses"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("gateway.networking.k8s.io", "gateways"): {"get", "list", "watch"},
    ("gateway.networking.k8s.io", "listenersets"): {"get", "list", "watch"},
    ("gateway.networking.k8s.io", "httproutes"): {"get", "create", "patch", "delete"},
    ("", "services"): {"get", "list", "create", "patch", "delete"},
    ("discovery.k8s.io", "endpointslices"): {"get", "list", "create", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    ("events.k8s.io", "events"): {"create", "patch"},
    ("", "events"): {"create", "patch"},
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): {"get", "patch"},
}
EXPECTED_ROLE_VERBS = {("coordination.k8s.io", "leases"): {"get", "create", "update", "patch"}}
# What stays in the ClusterRole of a namespace-scoped install
# (watchNamespaces): the cluster-scoped kinds. Everything else in
# EXPECTED_CLUSTER_VERBS moves into a Role per namespace.
CLUSTER_SCOPED = {
    ("cert-manager.io", "clusterissuers"),
    ("cert-manager.io", "clusterissuers/status"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
}
# Kinds no ClusterRole of a namespace-scoped install may grant anything on.
NEVER_CLUSTER_WIDE_WHEN_SCOPED = {
    ("", "secrets"), ("networking.k8s.io", "ingresses"), ("", "services"),
    ("discovery.k8s.io", "endpointslices"), ("", "pods"),
}


def _effective(rules):
    verbs = {}
    for rule in rules:
        for v in rule["verbs"]:
            assert v != "*", f"wildcard verb in {rule}"
        for g in rule["apiGroups"]:
            assert g != "*", f"wildcard group in {rule}"
            for r in rule["resources"]:
                assert r != "*", f"wildcard resource in {rule}"
                verbs.setdefault((g, r), set()).update(rule["verbs"])
    return verbs


def _check_binding(b, *, ref_kind: str, ref_name: str, namespace: str, service_account: str) -> None:
    assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref_name}, ident(b)
    assert b["subjects"] == [
        {"kind": "ServiceAccount", "name": service_account, "namespace": namespace}
    ], ident(b)


def check_rbac(
    docs, *, webhook_config_name: str, namespace: str, service_account: str, watch_namespaces=()
) -> None:
    """RBAC of a cluster-wide install, or with `watch_namespaces` of a
    namespace-scoped one: the ClusterRole keeps the cluster-scoped kinds
    and a Role + RoleBinding named like it grants the rest in each watched
    namespace and the release namespace."""
    cr = one(docs, "ClusterRole")
    if watch_namespaces:
        broad = set(_effective(cr["rules"])) & NEVER_CLUSTER_WIDE_WHEN_SCOPED
        assert not broad, f"namespace-scoped install: ClusterRole grants {sorted(broad)}"
        expected_cluster = {k: v for k, v in EXPECTED_CLUSTER_VERBS.items() if k in CLUSTER_SCOPED}
    else:
        expected_cluster = EXPECTED_CLUSTER_VERBS
    assert _effective(cr["rules"]) == expected_cluster, (
        f"ClusterRole verbs differ: {_effective(cr['rules'])}"
    )
    # Writes to webhook configurations only on ours.
    for rule in cr["rules"]:
        if "mutatingwebhookconfigurations" in rule["resources"]:
            writes = set(rule["verbs"]) & {"get", "patch", "update", "delete", "create"}
            if writes:
                assert rule.get("resourceNames") == [webhook_config_name], (
                    f"webhook config {sorted(writes)} must be limited to {webhook_config_name}"
                )
        elif rule.get("resourceNames"):
            raise AssertionError(f"unexpected resourceNames in {rule}")
    name = cr["metadata"]["name"]
    scoped_roles = [r for r in by_kind(docs, "Role") if r["metadata"]["name"] == name]
    scoped_bindings = [b for b in by_kind(docs, "RoleBinding") if b["metadata"]["name"] == name]
    want = sorted({namespace, *watch_namespaces}) if watch_namespaces else []
    assert sorted(r["metadata"]["namespace"] for r in scoped_roles) == want, (
        f"Roles {name}: {[ident(r) for r in scoped_roles]}, expected one in each of {want}"
    )
    assert sorted(b["metadata"]["namespace"] for b in scoped_bindings) == want, (
        f"RoleBindings {name}: {[ident(b) for b in scoped_bindings]}, expected one in each of {want}"
    )
    expected_namespaced = {k: v for k, v in EXPECTED_CLUSTER_VERBS.items() if k not in CLUSTER_SCOPED}
    for r in scoped_roles:
        assert _effective(r["rules"]) == expected_namespaced, f"{ident(r)} verbs: {_effective(r['rules'])}"
        assert not any(rule.get("resourceNames") for rule in r["rules"]), f"{ident(r)}: unexpected resourceNames"
    for b in scoped_bindings:
        _check_binding(b, ref_kind="Role", ref_name=name, namespace=namespace, service_account=service_account)

    role = one([r for r in by_kind(docs, "Role") if r not in scoped_roles], "Role")
    assert role["metadata"]["namespace"] == namespace, "the leader-election Role is in the release namespace"
    assert _effective(role["rules"]) == EXPECTED_ROLE_VERBS, f"Role verbs: {_effective(role['rules'])}"
    for rule in role["rules"]:
        if set(rule["verbs"]) - {"create"}:
            assert rule.get("resourceNames") == ["certweave-controller"], f"Lease rule {rule}"
    leader_binding = one([b for b in by_kind(docs, "RoleBinding") if b not in scoped_bindings], "RoleBinding")
    for b, ref_kind, ref in (
        (one(docs, "ClusterRoleBinding"), "ClusterRole", cr),
        (leader_binding, "Role", role),
    ):
        _check_binding(
            b, ref_kind=ref_kind, ref_name=ref["metadata"]["name"], namespace=namespace, service_account=service_account
        )
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["name"] == service_account and sa["metadata"]["namespace"] == namespace


def rbac_comment_problems(text: str) -> list[str]:
    """For each Role/ClusterRole document in `text`: every rule must be
    directly preceded by a comment that names each of its verbs."""
    problems = []
    for doc_text in re.split(r"(?m)^---[ \t]*$", text):
        doc = yaml.safe_load(doc_text)
        if not doc or doc.get("kind") not in ("Role", "ClusterRole"):
            continue
        lines = doc_text.splitlines()
        starts = [i for i, l in enumerate(lines) if re.match(r"^  - apiGroups:", l)]
        assert len(starts) == len(doc["rules"]), (
            f"{ident(doc)}: expected each rule to start with '  - apiGroups:'"
        )
        for rule, start in zip(doc["rules"], starts):
            comment = []
            i = start - 1
            while i >= 0 and lines[i].strip().startswith("#"):
                comment.insert(0, lines[i].strip().lstrip("#").strip())
                i -= 1
            words = set(re.findall(r"[a-z]+", " ".join(comment)))
            missing = [v for v in rule["verbs"] if v not in words]
            if not comment:
                problems.append(f"{ident(doc)}: rule {rule} has no comment")
            elif missing:
                problems.append(f"{ident(doc)}: rule {rule}: comment does not justify {missing}")
    return problems


# ----------------------------------------------------------------- webhook

INGRESS_TRIGGERS = ["cert-manager.io/cluster-issuer", "cert-manager.io/issuer", "kubernetes.io/tls-acme"]
POD_TRIGGERS = ["certweave.io/issuer", "certweave.io/cluster-issuer"]
GATEWAY_TRIGGERS = ["cert-manager.io/cluster-issuer", "cert-manager.io/issuer"]


def check_webhook_config(
    docs,
    *,
    namespace: str,
    service_name: str,
    ingress_policy: str = "Fail",
    gateway_policy: str = "Fail",
    pod_policy: str = "Ignore",
    timeout: int = 10,
    extra_excluded=(),
    opt_out: bool = True,
    match_conditions: bool = True,
    ca_bundle: str | None = None,
    watch_namespaces=(),
) -> dict:
    """With `watch_namespaces` (a namespace-scoped install) the Ingress,
    Gateway and Pod webhooks select those namespaces minus the excluded
    ones (`In`) instead of every namespace but the excluded (`NotIn`)."""
    mwc = one(docs, "MutatingWebhookConfiguration")
    hooks = {w["name"]: w for w in mwc["webhooks"]}
    assert set(hooks) == {
        "ingress.certweave.io", "gateway.certweave.io", "pod.certweave.io", "certificaterequest.certweave.io",
    }, (
        f"webhooks: {sorted(hooks)}"
    )
    # CertificateRequests: who created one is recorded on every one, in
    # every namespace, or creation fails: no selector, no condition, Fail.
    cr = hooks.pop("certificaterequest.certweave.io")
    assert cr["rules"] == [{
        "apiGroups": ["cert-manager.io"], "apiVersions": ["v1"],
        "operations": ["CREATE"], "resources": ["certificaterequests"], "scope": "Namespaced",
    }], f"certificaterequest: rules {cr['rules']}"
    assert cr["failurePolicy"] == "Fail", "certificaterequest: failurePolicy"
    assert cr["sideEffects"] == "None" and cr["admissionReviewVersions"] == ["v1"]
    for absent in ("namespaceSelector", "objectSelector", "matchConditions"):
        assert not cr.get(absent), f"certificaterequest: {absent}"
    assert cr["clientConfig"]["service"] == {
        "name": service_name, "namespace": namespace, "path": "/mutate", "port": 443,
    }, "certificaterequest: clientConfig.service"
    if ca_bundle is None:
        assert not cr["clientConfig"].get("caBundle"), "certificaterequest: caBundle is left to the controller"
    else:
        assert cr["clientConfig"]["caBundle"] == ca_bundle, "certificaterequest: caBundle"
    expected_rules = {
        "ingress.certweave.io": [{
            "apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["ingresses"], "scope": "Namespaced",
        }],
        "gateway.certweave.io": [{
            "apiGroups": ["gateway.networking.k8s.io"], "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"], "resources": ["gateways", "listenersets"], "scope": "Namespaced",
        }],
        "pod.certweave.io": [{
            "apiGroups": [""], "apiVersions": ["v1"],
            "operations": ["CREATE"], "resources": ["pods"], "scope": "Namespaced",
        }],
    }
    policies = {
        "ingress.certweave.io": ingress_policy, "gateway.certweave.io": gateway_policy, "pod.certweave.io": pod_policy,
    }
    triggers = {
        "ingress.certweave.io": INGRESS_TRIGGERS, "gateway.certweave.io": GATEWAY_TRIGGERS, "pod.certweave.io": POD_TRIGGERS,
    }
    for name, w in hooks.items():
        assert w["rules"] == expected_rules[name], f"{name}: rules {w['rules']}"
        assert w["sideEffects"] == "None", f"{name}: sideEffects"
        assert w["admissionReviewVersions"] == ["v1"], f"{name}: admissionReviewVersions"
        assert w["failurePolicy"] == policies[name], f"{name}: failurePolicy"
        assert w["timeoutSeconds"] == timeout and 1 <= timeout <= 30, f"{name}: timeoutSeconds"
        assert w["reinvocationPolicy"] == "IfNeeded", f"{name}: reinvocationPolicy"
        svc = w["clientConfig"]["service"]
        assert svc == {"name": service_name, "namespace": namespace, "path": "/mutate", "port": 443}, (
            f"{name}: clientConfig.service {svc}"
        )
        assert "url" not in w["clientConfig"], f"{name}: url"
        if ca_bundle is None:
            assert not w["clientConfig"].get("caBundle"), f"{name}: caBundle is left to the controller"
        else:
            assert w["clientConfig"]["caBundle"] == ca_bundle, f"{name}: caBundle"
        exprs = w["namespaceSelector"]["matchExpressions"]
        assert not w["namespaceSelector"].get("matchLabels"), name
        assert len(exprs) == 1 and exprs[0]["key"] == "kubernetes.io/metadata.name", f"{name}: namespaceSelector"
        excluded = {"kube-system", namespace, *extra_excluded}
        if watch_namespaces:
            assert exprs[0]["operator"] == "In", f"{name}: namespaceSelector operator"
            assert exprs[0]["values"] == [n for n in watch_namespaces if n not in excluded], (
                f"{name}: selected namespaces {exprs[0]['values']}"
            )
        else:
            assert exprs[0]["operator"] == "NotIn", f"{name}: namespaceSelector operator"
            assert set(exprs[0]["values"]) == excluded, f"{name}: excluded namespaces {exprs[0]['values']}"
        if opt_out:
            assert w["objectSelector"] == {
                "matchExpressions": [{"key": "certweave.io/ignore", "operator": "NotIn", "values": ["true"]}]
            }, f"{name}: objectSelector"
        else:
            assert not w.get("objectSelector"), f"{name}: objectSelector"
        if match_conditions:
            (cond,) = w["matchConditions"]
            expr = cond["expression"]
            assert "has(object.metadata.annotations)" in expr, f"{name}: guards missing annotations"
            quoted = re.findall(r"'([^']+)'", expr)
            assert quoted == triggers[name], f"{name}: matchConditions triggers {quoted}"
        else:
            assert not w.get("matchConditions"), f"{name}: matchConditions"
    return mwc


def check_names(docs, *, mwc, webhook_service: str) -> None:
    """The names the binary is told (flags) are the objects' real names."""
    dep = one(docs, "Deployment")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    flags = dict(a.split("=", 1) for a in c["args"] if "=" in a)
    assert flags["--webhook-config-name"] == mwc["metadata"]["name"], "--webhook-config-name"
    assert flags["--webhook-service-name"] == webhook_service, "--webhook-service-name"
    assert webhook_service in {s["metadata"]["name"] for s in by_kind(docs, "Service")}
    sa = dep["spec"]["template"]["spec"]["serviceAccountName"]
    assert sa == one(docs, "ServiceAccount")["metadata"]["name"], "serviceAccountName"
