#!/usr/bin/env bash
# ACME under a nonce storm: Pebble rejects REJECT% of all nonces (RFC 8555
# §6.5 badNonce, PEBBLE_WFE_NONCEREJECT), and certweave issues N
# single-name certificates three ways, one after the other, from the same
# Pebble:
#
#   issue       N runs of `certweave issue` (4 at a time)
#   local       `certweave local` with N Certificates in one directory
#   controller  `certweave controller` on a real kube-apiserver + etcd with
#               N Certificates (skipped with CONTROLLER=0, or when the e2e
#               assets are missing)
#
# For each: certificates written (and valid for their name), orders Pebble
# created ("Added order" in its log) and how many of those are more than
# one per certificate (duplicate orders), certificates Pebble issued that
# were not written, wall time. Goal: N of N, 0 duplicate orders, 0 lost.
#
#   bash benches/nonce_storm.sh [N]          (default N=100, REJECT=50)
#
# Needs pebble and pebble-challtestsrv (bash e2e/assets.sh builds them;
# eval "$(bash e2e/assets.sh --print)" puts them on PATH) and openssl; the
# controller phase also etcd, kube-apiserver and kubectl from the same
# assets. Uses the release binary (built if missing), or CERTWEAVE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

source benches/lib/pebble-env.sh
if [ "${CONTROLLER:-1}" != 0 ]; then
  source benches/lib/kube-env.sh
fi

N=${1:-100}
export PEBBLE_WFE_NONCEREJECT=${REJECT:-50}
require_tools pebble pebble-challtestsrv openssl python3

if [ -z "${CERTWEAVE_BIN:-}" ]; then
  cargo build --release --quiet --bin certweave
  CERTWEAVE_BIN=target/release/certweave
fi
start_pebble

orders_so_far() { grep -c '^Pebble .* Added order ' "$WORK/pebble.log" || true; }
issued_so_far() { grep -c '^Pebble .* Issued certificate serial ' "$WORK/pebble.log" || true; }

# valid_count DIR PREFIX: how many DIR/<PREFIX><i>/tls.crt hold a
# certificate for <PREFIX><i>.example.test.
valid_count() {
  local ok=0 i
  for i in $(seq 1 "$N"); do
    local crt=$1/$2$i/tls.crt
    [ -s "$crt" ] && openssl x509 -in "$crt" -noout -checkhost "$2$i.example.test" 2>/dev/null |
      grep -q 'does match' && ok=$((ok + 1))
  done
  echo "$ok"
}

# certificates_yaml PREFIX NAMESPACE: N ECDSA Certificates <PREFIX><i> for
# <PREFIX><i>.example.test from the ClusterIssuer pebble, as YAML.
certificates_yaml() {
  local i
  for i in $(seq 1 "$N"); do
    printf -- '---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: %s%s, namespace: %s}\nspec:\n  secretName: %s%s\n  dnsNames: [%s%s.example.test]\n  privateKey: {algorithm: ECDSA}\n  issuerRef: {name: pebble, kind: ClusterIssuer}\n' \
      "$1" "$i" "$2" "$1" "$i" "$1" "$i"
  done
}

ROWS=()
# row NAME WRITTEN ORDERS ISSUED SECONDS
row() {
  local duplicates=$(($3 - $2)) lost=$(($4 - $2))
  [ "$duplicates" -lt 0 ] && duplicates=0
  [ "$lost" -lt 0 ] && lost=0
  ROWS+=("$(printf '%-11s %9s %8s %11s %7s %8s' "$1" "$2/$N" "$3" "$duplicates" "$lost" "$5")")
}

# --- certweave issue -------------------------------------------------------
echo "== certweave issue: $N certificates, $PEBBLE_WFE_NONCEREJECT% of nonces rejected" >&2
"$CERTWEAVE_BIN" issue --dns-name warmup.example.test --acme-directory "$DIRECTORY" \
  --acme-ca-bundle "$WORK/ca.pem" --email bench@example.test \
  --account-key "$WORK/issue-account.key" --http01-addr "127.0.0.1:$HTTP_PORT" \
  --out "$WORK/issue-warmup" >>"$WORK/issue.log" 2>&1 || true
orders0=$(orders_so_far)
issued0=$(issued_so_far)
start=$(now_ms)
# One process per certificate, 4 at a time, each on its own solver port
# would need Pebble to know it: they share HTTP_PORT, so run them in turn.
for i in $(seq 1 "$N"); do
  timeout 120 "$CERTWEAVE_BIN" issue --dns-name "issue$i.example.test" \
    --acme-directory "$DIRECTORY" --acme-ca-bundle "$WORK/ca.pem" --email bench@example.test \
    --account-key "$WORK/issue-account.key" --http01-addr "127.0.0.1:$HTTP_PORT" \
    --out "$WORK/issue/issue$i" >>"$WORK/issue.log" 2>&1 || echo "issue$i failed" >>"$WORK/issue.failed"
done
seconds=$(python3 -c "print(f'{($(now_ms) - $start) / 1000:.1f}')")
row issue "$(valid_count "$WORK/issue" issue)" $(($(orders_so_far) - orders0)) \
  $(($(issued_so_far) - issued0)) "$seconds"

# --- certweave local --------------------------------------------------------
echo "== certweave local: $N certificates" >&2
LOCAL=$WORK/local
mkdir -p "$LOCAL"
{
  pebble_cluster_issuer
  certificates_yaml local default
} >"$LOCAL/certs.yaml"
orders0=$(orders_so_far)
issued0=$(issued_so_far)
start=$(now_ms)
"$CERTWEAVE_BIN" local --dir "$LOCAL" --http01-addr "127.0.0.1:$HTTP_PORT" >"$WORK/local.log" 2>&1 &
LOCAL_PID=$!
PIDS+=("$LOCAL_PID")
for _ in $(seq 1 600); do
  [ "$(valid_count "$LOCAL/secrets/default" local)" = "$N" ] && break
  sleep 0.5
done
seconds=$(python3 -c "print(f'{($(now_ms) - $start) / 1000:.1f}')")
kill "$LOCAL_PID" 2>/dev/null || true
wait "$LOCAL_PID" 2>/dev/null || true
row local "$(valid_count "$LOCAL/secrets/default" local)" $(($(orders_so_far) - orders0)) \
  $(($(issued_so_far) - issued0)) "$seconds"

# --- certweave controller -------------------------------------------------
if [ "${CONTROLLER:-1}" != 0 ] && [ -x "${KUBE_ASSETS:-}/kube-apiserver" ]; then
  echo "== certweave controller: $N Certificates on kube-apiserver $("$KUBE_ASSETS/kube-apiserver" --version | awk '{print $2}')" >&2
  start_kube
  apply_crds charts/certweave/crds/crds.yaml
  kc create namespace certweave >/dev/null
  kc create namespace storm >/dev/null
  "$CERTWEAVE_BIN" controller --kubeconfig "$KUBECONFIG_FILE" --namespace certweave \
    --identity bench --pod-ip 127.0.0.1 --leader-elect \
    --webhook-addr "127.0.0.1:$(kube_free_port)" --metrics-addr "127.0.0.1:$(kube_free_port)" \
    --solver-addr "127.0.0.1:$HTTP_PORT" >"$WORK/controller.log" 2>&1 &
  PIDS+=($!)
  orders0=$(orders_so_far)
  issued0=$(issued_so_far)
  start=$(now_ms)
  {
    pebble_cluster_issuer
    certificates_yaml ctl storm
  } | kc apply --server-side -f - >/dev/null
  ready=0
  for _ in $(seq 1 600); do
    ready=$(kc get certificates -n storm -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
    [ "$ready" = "$N" ] && break
    sleep 0.5
  done
  seconds=$(python3 -c "print(f'{($(now_ms) - $start) / 1000:.1f}')")
  mkdir -p "$WORK/ctl"
  for i in $(seq 1 "$N"); do
    mkdir -p "$WORK/ctl/ctl$i"
    kc get secret -n storm "ctl$i" -o jsonpath='{.data.tls\.crt}' 2>/dev/null | base64 -d >"$WORK/ctl/ctl$i/tls.crt" 2>/dev/null || true
  done
  row controller "$(valid_count "$WORK/ctl" ctl)" $(($(orders_so_far) - orders0)) \
    $(($(issued_so_far) - issued0)) "$seconds"
else
  ROWS+=("controller  skipped (CONTROLLER=0, or no kube-apiserver in KUBE_ASSETS)")
fi

echo
echo "ACME with $PEBBLE_WFE_NONCEREJECT% of nonces rejected by Pebble, $N single-name certificates each"
echo "(goal: $N/$N written, 0 duplicate orders, 0 issued but not written)"
echo
printf '%-11s %9s %8s %11s %7s %8s\n' "client" "written" "orders" "duplicates" "lost" "seconds"
for line in "${ROWS[@]}"; do echo "$line"; done
