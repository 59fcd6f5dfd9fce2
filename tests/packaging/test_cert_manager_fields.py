"""No field of cert-manager's v1 Certificate is silently pruned: each one is
implemented or refused by name (see cert_manager_fields.py for the table).

Issuer and ClusterIssuer still lack many cert-manager solvers and issuer
types; their count of pruned fields may only go down."""

import shutil

import pytest

import cert_manager_fields

# Pruned Issuer/ClusterIssuer fields today (cert-manager v1.21.2): the DNS
# providers, Vault, Venafi and a few ACME settings.
ISSUER_PRUNED_CEILING = 425


@pytest.fixture(scope="module")
def report():
    # Go is there: .ci/test.sh builds the Kubernetes and ACME peers with it.
    assert shutil.which("go"), "go is needed to fetch cert-manager's CRDs from its module"
    return cert_manager_fields.report()


def test_no_certificate_field_is_pruned(report):
    pruned = [path for path, status, _ in report["Certificate"] if status == "pruned"]
    assert not pruned, f"cert-manager Certificate fields dropped without a word: {pruned}"


def test_refusals_name_the_field(report):
    for path, status, detail in report["Certificate"]:
        if status == "refused":
            top = path.split("[]")[0].split(".")[:2]
            assert detail.startswith(".".join(top)), (path, detail)


@pytest.mark.parametrize("kind", ["Issuer", "ClusterIssuer"])
def test_issuer_pruning_only_shrinks(report, kind):
    pruned = [path for path, status, _ in report[kind] if status == "pruned"]
    assert len(pruned) <= ISSUER_PRUNED_CEILING, (
        f"{kind}: {len(pruned)} cert-manager fields pruned, more than the "
        f"{ISSUER_PRUNED_CEILING} known; a new one: {pruned[:5]}"
    )
