"""No field of cert-manager's v1 Certificate, CertificateRequest, Issuer or
ClusterIssuer is silently pruned: each one is implemented or refused by name
(see cert_manager_fields.py for the table)."""

import shutil

import pytest

import cert_manager_fields

KINDS = ["Certificate", "CertificateRequest", "Issuer", "ClusterIssuer"]


@pytest.fixture(scope="module")
def report():
    # Go is there: .ci/test.sh builds the Kubernetes and ACME peers with it.
    assert shutil.which("go"), "go is needed to fetch cert-manager's CRDs from its module"
    return cert_manager_fields.report()


@pytest.mark.parametrize("kind", KINDS)
def test_no_field_is_pruned(report, kind):
    pruned = [path for path, status, _ in report[kind] if status == "pruned"]
    assert not pruned, f"cert-manager {kind} fields dropped without a word: {pruned}"


@pytest.mark.parametrize("kind", KINDS)
def test_refusals_name_the_field(report, kind):
    for path, status, detail in report[kind]:
        if status == "refused":
            top = path.split("[]")[0].split(".")[:2]
            assert detail.startswith(".".join(top)), (path, detail)


def test_refused_subtrees_are_refused_not_kept(report):
    """A field inside a refused provider is refused, not "kept as given"."""
    rows = {path: status for path, status, _ in report["Issuer"]}
    assert rows["spec.acme.solvers[].dns01.akamai.serviceConsumerDomain"] == "refused"
    assert rows["spec.acme.solvers[].dns01.route53.region"] == "implemented"
    assert rows["spec.vault.server"] == "refused"
