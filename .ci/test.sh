#!/usr/bin/env bash
# The whole test suite, as run by CI and by developers:
#
#   bash .ci/test.sh
#
# It installs what the tests need that the machine may lack, then runs the
# format and lint checks and every test target.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain"
cargo --version
rustc --version

if cargo fmt --version >/dev/null 2>&1; then
  echo "== cargo fmt --check"
  cargo fmt --all --check
else
  echo "== cargo fmt: SKIPPED (rustfmt is not installed)"
fi

if cargo clippy --version >/dev/null 2>&1; then
  echo "== cargo clippy"
  cargo clippy --locked --all-targets -- -D warnings
else
  echo "== cargo clippy: SKIPPED (clippy is not installed)"
fi

# Module docs name the code they describe; a renamed or private item breaks
# the link, and this says so.
echo "== cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --quiet

# DNS-01 tests run a real BIND9 (named) on loopback and read it back with dig.
echo "== test peer: bind9"
{ command -v named || [ -x /usr/sbin/named ]; } >/dev/null && command -v dig >/dev/null ||
  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bind9 bind9-dnsutils)

# Real peers built from Go modules into a cache outside target/ (reused
# when present; see e2e/assets.sh): kube-apiserver (the chart's floor and
# the newest release) and etcd for e2e/, Pebble 2.10 with
# pebble-challtestsrv for every ACME test, helm and kubectl.
echo "== test peers from Go modules: kube-apiserver, etcd, pebble, helm, kubectl"
bash e2e/assets.sh
eval "$(bash e2e/assets.sh --print)"
read -r -a k8s_versions <<<"$CERTWEAVE_E2E_K8S_VERSIONS"
echo "pebble: $(command -v pebble); helm: $(helm version --short); kubectl: $(kubectl version --client 2>/dev/null | head -1)"

# One test and benches/issue_vs_lego.sh use lego as an independent ACME
# client (Debian package).
echo "== test peer: lego"
command -v lego >/dev/null ||
  { export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends lego ||
      { apt-get update && apt-get install -y --no-install-recommends lego; }; }

# e2e/ runs here against the newest Kubernetes, then once more against
# each older one; in CI it fails rather than skips without its assets.
newest="${k8s_versions[${#k8s_versions[@]}-1]}"
echo "== cargo test (unit, integration, examples, benches in test mode; e2e on Kubernetes $newest)"
KUBEBUILDER_ASSETS="$CERTWEAVE_E2E_CACHE/k8s/$newest" cargo test --locked --all-targets
for version in "${k8s_versions[@]}"; do
  [ "$version" = "$newest" ] && continue
  echo "== e2e on Kubernetes $version"
  KUBEBUILDER_ASSETS="$CERTWEAVE_E2E_CACHE/k8s/$version" cargo test --locked --test e2e
done
echo "== cargo test --doc"
cargo test --locked --doc

# Packaging: the Helm chart, webhook-config/ and the Dockerfile, checked
# without a cluster (e2e/ installs the chart into a real API server).
# The chart is rendered by the helm binary built above;
# kubernetes-validate holds the Kubernetes OpenAPI schemas.
echo "== packaging tests (pytest tests/packaging)"
python3 -c 'import pytest, yaml, jsonschema, kubernetes_validate' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check \
    pytest pyyaml jsonschema 'kubernetes-validate==1.37.0'
python3 -m pytest -q -rs tests/packaging
