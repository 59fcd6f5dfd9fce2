"""The chart rendered with each values file in charts/certweave/ci/.
Needs the helm binary; skipped with one clear line without it (failed in
CI)."""

import json
from pathlib import Path

import pytest
import yaml

import checks
import helmrender
from helmrender import CHART, NAMESPACE

CI = sorted((CHART / "ci").glob("*.yaml"))

# What each values file must produce.
EXPECT = {
    "default-values.yaml": dict(
        fullname="certweave", replicas=2, leader=True, webhook=dict(), sa="certweave",
        kinds={"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
               "Deployment", "PodDisruptionBudget", "Service", "MutatingWebhookConfiguration"},
    ),
    "monitoring-values.yaml": dict(
        fullname="certweave", replicas=2, leader=True, webhook=dict(), sa="certweave",
        kinds={"ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy"},
    ),
    "issuers-values.yaml": dict(
        fullname="certweave", replicas=2, leader=True, webhook=dict(), sa="certweave",
        kinds={"ClusterIssuer", "Certificate"},
    ),
    "custom-values.yaml": dict(
        fullname="tls", replicas=1, leader=False, sa="certweave-sa", config_name="tls-webhooks",
        webhook=dict(pod_policy="Fail", timeout=5, extra_excluded=("monitoring",), opt_out=False,
                     match_conditions=False),
        kinds=set(),
    ),
    "namespaced-values.yaml": dict(
        fullname="certweave", replicas=2, leader=True, sa="certweave", watch=("team-a", "team-b"),
        webhook=dict(watch_namespaces=("team-a", "team-b")),
        kinds={"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "MutatingWebhookConfiguration"},
    ),
}

@pytest.fixture(autouse=True)
def _helm():
    helmrender.require_renderer(pytest)


def values_of(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.fixture(scope="module")
def rendered():
    return {p.name: helmrender.render(values_of(p)) for p in CI}


def test_every_ci_values_file_has_expectations():
    assert {p.name for p in CI} == set(EXPECT)


@pytest.mark.parametrize("values_file", sorted(EXPECT))
def test_render(rendered, values_file):
    exp = EXPECT[values_file]
    values = values_of(CHART / "ci" / values_file)
    out = rendered[values_file]
    docs = [d for _, d in helmrender.documents(out)]
    kinds = {d["kind"] for d in docs}
    assert exp["kinds"] <= kinds, f"missing kinds {exp['kinds'] - kinds}"

    skipped = checks.validate_against_kubernetes(docs)
    checks.check_crd_typed(docs)
    assert len(skipped) == sum(1 for d in docs if checks.group_of(d) in checks.CRD_GROUPS)

    watch = exp.get("watch", ())
    dep = checks.check_deployment(docs, replicas=exp["replicas"], leader_elect=exp["leader"], watch_namespaces=watch)
    checks.check_pdb(docs, dep)
    checks.check_services(docs, dep)
    service = f"{exp['fullname']}-webhook"
    config_name = exp.get("config_name", exp["fullname"])
    ca = values.get("webhook", {}).get("tls", {}).get("caBundle")
    mwc = checks.check_webhook_config(docs, namespace=NAMESPACE, service_name=service, ca_bundle=ca, **exp["webhook"])
    assert mwc["metadata"]["name"] == config_name
    checks.check_names(docs, mwc=mwc, webhook_service=service)
    checks.check_rbac(
        docs, webhook_config_name=config_name, namespace=NAMESPACE, service_account=exp["sa"], watch_namespaces=watch
    )
    assert checks.rbac_comment_problems(out["rbac.yaml"]) == []
    for d in docs:
        named_by_values = d["metadata"]["name"] in (exp["sa"], config_name)
        assert d["metadata"]["name"].startswith(exp["fullname"]) or named_by_values or d["kind"] in (
            "ClusterIssuer", "Certificate"
        ), f"{checks.ident(d)} is not prefixed with the full name"


def test_custom_values_wire_the_existing_serving_secret(rendered):
    docs = [d for _, d in helmrender.documents(rendered["custom-values.yaml"])]
    c = checks.one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--tls-cert-file=/etc/certweave/webhook-tls/tls.crt" in c["args"]
    assert not any(a.startswith("--webhook-secret-name") for a in c["args"])
    assert c["image"].startswith("registry.example.com/certweave@sha256:")
    assert "--proxy-image=registry.example.com/certweave-proxy:0.1.0" in c["args"]
    assert {"name": "RUST_LOG", "value": "info,certweave=debug"} in c["env"]
    assert "tls-solver" not in {s["metadata"]["name"] for s in checks.by_kind(docs, "Service")}


def test_monitoring_objects_embed_the_shipped_files(rendered):
    docs = [d for _, d in helmrender.documents(rendered["monitoring-values.yaml"])]
    rule = checks.one(docs, "PrometheusRule")
    shipped = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == shipped
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = {r["alert"] for g in shipped["groups"] for r in g["rules"]}
    assert {"CertweaveCertificateNotReady", "CertweaveCertificateExpiringSoon",
            "CertweaveCertificateRenewalOverdue", "CertweaveIssuanceFailing",
            "CertweaveWebhookErrors"} <= alerts
    not_ready = next(r for g in shipped["groups"] for r in g["rules"] if r["alert"] == "CertweaveCertificateNotReady")
    assert not_ready["for"] == "10m"
    expiring = next(r for g in shipped["groups"] for r in g["rules"] if r["alert"] == "CertweaveCertificateExpiringSoon")
    assert "7 * 24 * 3600" in expiring["expr"]
    # Prometheus templates ({{ $labels.name }}) must survive Helm untouched.
    assert "{{ $labels.name }}" in json.dumps(rule)

    cm = checks.one(docs, "ConfigMap")
    dashboard = json.loads(cm["data"]["certweave.json"])
    assert dashboard == json.loads((CHART / "files" / "dashboard.json").read_text())
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"

    sm = checks.one(docs, "ServiceMonitor")
    metrics_svc = next(s for s in checks.by_kind(docs, "Service") if s["metadata"]["name"] == "certweave-metrics")
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in metrics_svc["spec"]["ports"]}
    assert sm["spec"]["selector"]["matchLabels"].items() <= metrics_svc["metadata"]["labels"].items()

    np = checks.one(docs, "NetworkPolicy")
    ingress_ports = {p["port"] for r in np["spec"]["ingress"] for p in r["ports"]}
    assert ingress_ports == {9443, 9402, 8089}
    egress_ports = {p["port"] for r in np["spec"]["egress"] for p in r["ports"]}
    assert {53, 443, 6443, 5353} <= egress_ports


def test_issuers_only_when_enabled(rendered):
    default = [d for _, d in helmrender.documents(rendered["default-values.yaml"])]
    assert not [d for d in default if checks.group_of(d) == "cert-manager.io"]
    docs = [d for _, d in helmrender.documents(rendered["issuers-values.yaml"])]
    issuers = {d["metadata"]["name"]: d["spec"] for d in checks.by_kind(docs, "ClusterIssuer")}
    assert set(issuers) == {"selfsigned", "internal-ca-bootstrap", "internal-ca", "letsencrypt-staging", "letsencrypt-prod"}
    assert issuers["letsencrypt-staging"]["acme"]["server"] == "https://acme-staging-v02.api.letsencrypt.org/directory"
    assert issuers["letsencrypt-prod"]["acme"]["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert issuers["letsencrypt-prod"]["acme"]["solvers"] == [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]
    assert issuers["internal-ca"] == {"ca": {"secretName": "internal-root-ca"}}
    root = checks.one(docs, "Certificate")
    assert root["metadata"]["namespace"] == NAMESPACE and root["spec"]["isCA"] is True
    assert root["spec"]["issuerRef"]["name"] == "internal-ca-bootstrap"
    c = checks.one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--default-issuer=ClusterIssuer/letsencrypt-prod" in c["args"]


def test_namespaced_install_confines_certweave(rendered):
    """watchNamespaces: nothing namespaced stays cluster-wide, the release
    namespace gets a Role too (the webhook serving Secret and ClusterIssuer
    Secrets live there), and the webhook leaves other namespaces alone."""
    out = rendered["namespaced-values.yaml"]
    docs = [d for _, d in helmrender.documents(out)]
    cr = checks.one(docs, "ClusterRole")
    granted = {r for rule in cr["rules"] for r in rule["resources"]}
    assert granted == {"clusterissuers", "clusterissuers/status", "mutatingwebhookconfigurations"}
    roles = {
        r["metadata"]["namespace"]: r for r in checks.by_kind(docs, "Role") if r["metadata"]["name"] == "certweave"
    }
    assert set(roles) == {"team-a", "team-b", NAMESPACE}
    assert "secrets" in {r for rule in roles[NAMESPACE]["rules"] for r in rule["resources"]}
    assert any(r["metadata"]["name"] == "certweave-leader-election" for r in checks.by_kind(docs, "Role"))
    # The rule text is shared with the cluster-wide ClusterRole: same rules
    # there, except that ClusterIssuers are added to the issuer rules.
    default_docs = [d for _, d in helmrender.documents(rendered["default-values.yaml"])]
    wide = checks.one(default_docs, "ClusterRole")["rules"]

    def namespaced(rule):
        return {**rule, "resources": [r for r in rule["resources"] if not r.startswith("clusterissuers")]}

    assert [namespaced(r) for r in wide if "mutatingwebhookconfigurations" not in r["resources"]] == (
        roles["team-a"]["rules"]
    )
    # A release-namespace entry in watchNamespaces is not rendered twice.
    again = [d for _, d in helmrender.documents(helmrender.render({"watchNamespaces": ["team-a", NAMESPACE]}))]
    checks.check_rbac(
        again, webhook_config_name="certweave", namespace=NAMESPACE, service_account="certweave",
        watch_namespaces=("team-a", NAMESPACE),
    )
    c = checks.one(again, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert f"--watch-namespaces=team-a,{NAMESPACE}" in c["args"]
    hooks = checks.one(again, "MutatingWebhookConfiguration")["webhooks"]
    for w in hooks:
        if "namespaceSelector" in w:
            assert w["namespaceSelector"]["matchExpressions"][0]["values"] == ["team-a"], w["name"]


@pytest.mark.parametrize(
    "values, needle",
    [
        ({"issuers": {"letsencrypt": {"staging": {"enabled": True}}}}, "email"),
        ({"webhook": {"tls": {"existingSecret": "x"}}}, "caBundle"),
        ({"webhook": {"timeoutSeconds": 31}}, "timeoutSeconds"),
        ({"webhook": {"ingress": {"failurePolicy": "fail"}}}, "failurePolicy"),
        ({"replicaCount": "two"}, "replicaCount"),
        ({"replicas": 3}, "replicas"),
        ({"defaultIssuer": "letsencrypt"}, "defaultIssuer"),
        ({"runAsUser": 0}, "runAsUser"),
        ({"watchNamespaces": ["Bad_NS"]}, "watchNamespaces"),
        ({"watchNamespaces": ["team-a", "team-a"]}, "watchNamespaces"),
        # Only excluded namespaces: the webhook would select none.
        ({"watchNamespaces": ["kube-system", NAMESPACE]}, "watchNamespaces"),
        ({"watchNamespaces": ["team-a"], "webhook": {"excludeNamespaces": ["team-a"]}}, "watchNamespaces"),
    ],
)
def test_bad_values_are_refused(values, needle):
    with pytest.raises(helmrender.RenderError) as e:
        helmrender.render(values)
    assert needle in str(e.value)


@pytest.mark.parametrize("values_file", sorted(EXPECT))
def test_helm_lint_strict(values_file):
    out = helmrender.lint_strict(values_of(CHART / "ci" / values_file))
    # INFO lines (e.g. "icon is recommended") pass; warnings fail --strict.
    assert "[WARNING]" not in out and "[ERROR]" not in out, out
