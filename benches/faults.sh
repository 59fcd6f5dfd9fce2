#!/usr/bin/env bash
# Faults on a real cluster (etcd + kube-apiserver on loopback) with Pebble:
#
#   A. kill -9 of the controller KILLS times while N_ACME ACME orders run
#   B. kill -9 of the controller KILLS times during a burst of N_CA
#      Certificates from a CA ClusterIssuer
#   C. kube-apiserver restarted while N_RESTART Certificates are issued
#   D. two replicas with --leader-elect; the leader is killed (-9) during
#      a burst of N_LEADER Certificates: how long until the other holds the
#      Lease, and nothing is issued twice
#
# After each: every Certificate must be Ready, every Secret's key must
# match its certificate (0 mismatches), no Certificate issued twice
# (status.revision above 1), and for A, the orders Pebble created beyond
# one per Certificate ("Added order" lines minus the Certificates): an
# order is abandoned when the process dies between Pebble creating it and
# its record being saved, and an order that failed validation while no
# process answered is replaced by one new order.
#
#   bash benches/faults.sh
#   KILLS=20 N_ACME=30 N_CA=1000 N_RESTART=300 N_LEADER=300 bash benches/faults.sh
#
# Needs the e2e assets (bash e2e/assets.sh; eval "$(bash e2e/assets.sh
# --print)"): etcd, kube-apiserver, kubectl, pebble, pebble-challtestsrv;
# openssl and python3 with cryptography. Uses the release binary (built if
# missing) or CERTWEAVE_BIN. KEEP=1 keeps the work directory and logs.
set -euo pipefail
cd "$(dirname "$0")/.."

source benches/lib/pebble-env.sh
source benches/lib/kube-env.sh

KILLS=${KILLS:-20}
N_ACME=${N_ACME:-30}
N_CA=${N_CA:-1000}
N_RESTART=${N_RESTART:-300}
N_LEADER=${N_LEADER:-300}
require_tools pebble pebble-challtestsrv openssl python3
require_kube
python3 -c 'import cryptography' 2>/dev/null || {
  echo "error: python3 needs the cryptography module (apt-get install python3-cryptography)" >&2
  exit 2
}
if [ -z "${CERTWEAVE_BIN:-}" ]; then
  cargo build --release --quiet --bin certweave
  CERTWEAVE_BIN=target/release/certweave
fi

start_pebble
start_kube
apply_crds charts/certweave/crds/crds.yaml
kc create namespace certweave >/dev/null

# ctl_start IDENTITY SOLVER_ADDR: a controller in the background; CTL_PID.
ctl_start() {
  # Ports first: a kill right after the start must hit the controller, not
  # the shell still working out its arguments.
  local webhook_port metrics_port
  webhook_port=$(kube_free_port)
  metrics_port=$(kube_free_port)
  exec_controller "$1" "$2" "$webhook_port" "$metrics_port" &
  CTL_PID=$!
  PIDS+=("$CTL_PID")
}

exec_controller() {
  RUST_LOG=${RUST_LOG:-info} exec "$CERTWEAVE_BIN" controller --kubeconfig "$KUBECONFIG_FILE" \
    --namespace certweave --identity "$1" --pod-ip 127.0.0.1 --leader-elect \
    --webhook-addr "127.0.0.1:$3" --metrics-addr "127.0.0.1:$4" \
    --solver-addr "$2" >>"$WORK/controller.$1.log" 2>&1
}

kill9() { kill -9 "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# random_sleep MIN_MS MAX_MS
random_sleep() { sleep "$(python3 -c "import random; print(random.uniform($1, $2) / 1000)")"; }

ready_count() {
  kc get certificates -n "$1" \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    grep -c True || true
}

# wait_ready NAMESPACE N TIMEOUT_S: until N Certificates are Ready.
wait_ready() {
  local deadline=$((SECONDS + $3))
  while [ "$(ready_count "$1")" -lt "$2" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.5; done
}

# check NAMESPACE: "mismatches issued_twice" over the namespace's TLS
# Secrets and Certificates.
check() {
  kc get secrets,certificates -n "$1" -o json | python3 -c '
import base64, json, sys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
items = json.load(sys.stdin)["items"]
mismatch = twice = 0
for o in items:
    if o["kind"] == "Secret" and o.get("type") == "kubernetes.io/tls":
        d = o.get("data") or {}
        try:
            cert = x509.load_pem_x509_certificate(base64.b64decode(d["tls.crt"]))
            key = serialization.load_pem_private_key(base64.b64decode(d["tls.key"]), None)
            same = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == \
                   key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        except Exception:
            same = False
        mismatch += not same
    elif o["kind"] == "Certificate":
        twice += (o.get("status") or {}).get("revision", 0) > 1
print(mismatch, twice)'
}

# certificates NAMESPACE N ISSUER_KIND ISSUER PREFIX: N ECDSA Certificates.
certificates() {
  kc create namespace "$1" >/dev/null
  python3 - "$@" <<'PY' | kc apply --server-side -f - >/dev/null
import json, sys
ns, n, kind, issuer, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
    {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
     "metadata": {"name": f"{prefix}{i}", "namespace": ns},
     "spec": {"secretName": f"{prefix}{i}", "dnsNames": [f"{prefix}{i}.example.test"],
              "privateKey": {"algorithm": "ECDSA"},
              "issuerRef": {"kind": kind, "name": issuer}}} for i in range(n)]}))
PY
}

orders() { grep -c '^Pebble .* Added order ' "$WORK/pebble.log" || true; }

ROWS=()
row() { ROWS+=("$(printf '%-34s %9s %10s %12s %s' "$1" "$2" "$3" "$4" "$5")"); }

# --- issuers ---------------------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=faults root" -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout "$WORK/root.key" -out "$WORK/root.crt" 2>/dev/null
kc create secret tls root -n certweave --cert "$WORK/root.crt" --key "$WORK/root.key" >/dev/null
{
  printf 'apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: ca}\nspec: {ca: {secretName: root}}\n---\n'
  pebble_cluster_issuer
} | kc apply --server-side -f - >/dev/null

# --- A: kill -9 during ACME orders -----------------------------------------
echo "== A: $N_ACME ACME Certificates, the controller killed -9 $KILLS times" >&2
orders0=$(orders)
certificates acme "$N_ACME" ClusterIssuer pebble acme
for _ in $(seq 1 "$KILLS"); do
  ctl_start faults "127.0.0.1:$HTTP_PORT"
  random_sleep 300 1500
  kill9 "$CTL_PID"
done
ctl_start faults "127.0.0.1:$HTTP_PORT"
wait_ready acme "$N_ACME" 300
read -r mismatch twice < <(check acme)
duplicates=$(($(orders) - orders0 - N_ACME))
row "A. kill -9 x$KILLS during ACME orders" "$(ready_count acme)/$N_ACME" "$mismatch" "$twice" \
  "orders beyond one per Certificate: $duplicates"

# --- B: kill -9 during a CA burst ------------------------------------------
echo "== B: $N_CA CA Certificates, the controller killed -9 $KILLS times" >&2
kill9 "$CTL_PID"
certificates burst "$N_CA" ClusterIssuer ca burst
start=$(now_ms)
for _ in $(seq 1 "$KILLS"); do
  ctl_start faults "127.0.0.1:$HTTP_PORT"
  random_sleep 500 2000
  kill9 "$CTL_PID"
done
ctl_start faults "127.0.0.1:$HTTP_PORT"
wait_ready burst "$N_CA" 600
seconds=$(python3 -c "print(f'{($(now_ms) - $start) / 1000:.1f}')")
read -r mismatch twice < <(check burst)
row "B. kill -9 x$KILLS during a CA burst" "$(ready_count burst)/$N_CA" "$mismatch" "$twice" \
  "all Ready ${seconds} s after the first start"

# --- C: kube-apiserver restarted mid-issuance ------------------------------
echo "== C: $N_RESTART Certificates, kube-apiserver restarted during issuance" >&2
certificates restart "$N_RESTART" ClusterIssuer ca restart
random_sleep 300 800
before=$(ready_count restart)
restart_apiserver
wait_ready restart "$N_RESTART" 300
read -r mismatch twice < <(check restart)
row "C. kube-apiserver restarted" "$(ready_count restart)/$N_RESTART" "$mismatch" "$twice" \
  "$before Ready before the restart"
kill9 "$CTL_PID"

# --- D: two replicas, the leader killed ----------------------------------
echo "== D: two replicas, the leader killed -9 during $N_LEADER Certificates" >&2
# The Lease of the killed "faults" replicas must not stand in the way.
kc delete lease -n certweave certweave-controller --ignore-not-found >/dev/null
ctl_start replica-a 127.0.0.1:0
pid_a=$CTL_PID
ctl_start replica-b 127.0.0.1:0
pid_b=$CTL_PID
holder() { kc get lease -n certweave certweave-controller -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true; }
for _ in $(seq 1 100); do [ -n "$(holder)" ] && break; sleep 0.2; done
leader=$(holder)
certificates leader "$N_LEADER" ClusterIssuer ca leader
random_sleep 300 800
case $leader in
  replica-a) kill9 "$pid_a"; other=replica-b ;;
  *) kill9 "$pid_b"; other=replica-a ;;
esac
killed=$(now_ms)
while [ "$(holder)" != "$other" ] && [ $(($(now_ms) - killed)) -lt 60000 ]; do sleep 0.1; done
takeover=$(python3 -c "print(f'{($(now_ms) - $killed) / 1000:.1f}')")
wait_ready leader "$N_LEADER" 300
read -r mismatch twice < <(check leader)
row "D. leader killed (2 replicas)" "$(ready_count leader)/$N_LEADER" "$mismatch" "$twice" \
  "$other leads ${takeover} s after the kill (Lease 15 s)"

echo
echo "faults on kube-apiserver $("$KUBE_ASSETS/kube-apiserver" --version | awk '{print $2}') + Pebble"
echo "(goal: every Certificate Ready, 0 mismatches, 0 issued twice, 0 extra orders)"
echo
printf '%-34s %9s %10s %12s %s\n' "fault" "Ready" "mismatch" "issued twice" "notes"
for line in "${ROWS[@]}"; do echo "$line"; done
