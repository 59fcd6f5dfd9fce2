#!/usr/bin/env bash
# Time from Ingress creation to a Ready Certificate and its Secret, with
# ACME HTTP-01 against a local Pebble, through `certweave controller` and a
# REAL kube-apiserver + etcd (benches/lib/kube-env.sh), all on loopback.
#
# Setup: certweave's CRDs, the controller (admin kubeconfig, webhook serving
# certificate from a throwaway CA, --solver-addr on the port Pebble sends
# HTTP-01 validations to), a MutatingWebhookConfiguration whose
# clientConfig.url is https://127.0.0.1:PORT/mutate with that CA as caBundle
# (rules, namespaceSelector and matchConditions as in the chart), and an ACME
# ClusterIssuer for Pebble, Ready before the clock starts.
#
# Each round, one at a time: an Ingress with only the annotation
# `cert-manager.io/cluster-issuer` and one rule host is POSTed to the API
# server, which calls the webhook (spec.tls is filled in at admission); the
# controller's ingress shim makes a Certificate; the clock stops when that
# Certificate is Ready=True and its kubernetes.io/tls Secret exists (both
# polled every POLL_MS through the API server). Baseline, same run, same
# Pebble: one `certweave issue` per round (the bare ACME exchange, no
# Kubernetes), once with ECDSA P-256 keys and once with RSA 2048; the ratio
# is against the one with the Ingress certificates' key type.
#
# cert-manager is not measured here: its HTTP-01 solver is a Pod that a
# kubelet must run and an ingress controller must route to (and it
# self-checks the challenge URL through DNS first); this harness has no
# kubelet, no ingress controller and no cluster DNS.
#
# Usage: benches/ingress_to_ready.sh      (cargo build --release first)
# Env:   CERTWEAVE_BIN (default target/release/certweave), ROUNDS=20,
#        POLL_MS=20, ROUND_TIMEOUT=60 (s per Ingress), KUBE_ASSETS, KUBECTL
#        (see benches/lib/kube-env.sh), KEEP=1 keeps the work directory
#        (logs) on exit.
# Needs: etcd + kube-apiserver + kubectl (bash e2e/assets.sh puts them in
#        ~/.cache/certweave-e2e), pebble, pebble-challtestsrv (on PATH or in
#        ~/.cache/certweave-e2e/bin), openssl, python3, curl.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CERTWEAVE_BIN:-$ROOT/target/release/certweave}
ROUNDS=${ROUNDS:-20}
POLL_MS=${POLL_MS:-20}
ROUND_TIMEOUT=${ROUND_TIMEOUT:-60}
[ -d "$HOME/.cache/certweave-e2e/bin" ] && PATH=$HOME/.cache/certweave-e2e/bin:$PATH
# shellcheck source=lib/pebble-env.sh
. "$ROOT/benches/lib/pebble-env.sh"
# shellcheck source=lib/kube-env.sh
. "$ROOT/benches/lib/kube-env.sh"   # its exit trap also honours KEEP=1
require_tools pebble pebble-challtestsrv openssl python3 curl
require_kube
[ -x "$BIN" ] || { echo "ingress_to_ready: $BIN not found; run cargo build --release" >&2; exit 1; }
RUN_START=$(date +%s)
start_pebble

# Two baselines: ECDSA P-256 keys (`certweave issue`'s default) and RSA 2048
# (cert-manager's default, which an Ingress's Certificate gets); the ratio
# is taken against the one whose key type the Ingress certificates have.
baseline() {
  local algorithm=$1 i t0
  for i in $(seq "$ROUNDS"); do
    t0=$(now_ms)
    timeout 60 "$BIN" issue --dns-name "base-$algorithm-$i.example.test" --acme-directory "$DIRECTORY" \
      --acme-ca-bundle "$WORK/ca.pem" --account-key "$WORK/account.key" --key-algorithm "$algorithm" \
      --http01-addr "127.0.0.1:$HTTP_PORT" --out "$WORK/base-$algorithm-$i" >>"$WORK/issue.log" 2>&1 \
      || { echo "certweave issue failed; see $WORK/issue.log" >&2; tail -n 20 "$WORK/issue.log" >&2; exit 1; }
    echo $(( $(now_ms) - t0 ))
  done
}
echo "== baseline: certweave issue, $ROUNDS certificates with ECDSA P-256 keys, $ROUNDS with RSA 2048"
mapfile -t BASE_EC < <(baseline ecdsa-p256)
mapfile -t BASE_RSA < <(baseline rsa2048)
if [ "${#BASE_EC[@]}" != "$ROUNDS" ] || [ "${#BASE_RSA[@]}" != "$ROUNDS" ]; then
  echo "the baseline failed; see above" >&2
  exit 1
fi

echo "== kube-apiserver $("$KUBE_ASSETS/kube-apiserver" --version | awk '{print $2}') + etcd on loopback"
start_kube
"$BIN" crds >"$WORK/crds.yaml"
apply_crds "$WORK/crds.yaml"
kc create namespace certweave >/dev/null
kc create namespace shop >/dev/null

# The webhook's serving certificate, from a CA that goes into caBundle.
serving_cert "$WORK" webhook "IP:127.0.0.1"
WEBHOOK_PORT=$(free_port)
METRICS_PORT=$(free_port)
RUST_LOG=${RUST_LOG:-info} "$BIN" controller --kubeconfig "$KUBECONFIG_FILE" --namespace certweave \
  --webhook-addr "127.0.0.1:$WEBHOOK_PORT" --metrics-addr "127.0.0.1:$METRICS_PORT" \
  --solver-addr "127.0.0.1:$HTTP_PORT" --identity bench --pod-ip 127.0.0.1 \
  --tls-cert-file "$WORK/webhook.crt" --tls-key-file "$WORK/webhook.key" \
  >"$WORK/controller.log" 2>&1 &
CTL_PID=$!
PIDS+=("$CTL_PID")
for i in $(seq 1 600); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$METRICS_PORT/readyz")" = 200 ] && break
  kill -0 "$CTL_PID" 2>/dev/null || { tail -n 30 "$WORK/controller.log" >&2; exit 1; }
  [ "$i" = 600 ] && { echo "the controller was not ready after 60 s" >&2; tail -n 30 "$WORK/controller.log" >&2; exit 1; }
  sleep 0.1
done

kc apply -f - >/dev/null <<EOF
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: certweave
webhooks:
  - name: ingress.certweave.io
    admissionReviewVersions: ["v1"]
    sideEffects: None
    failurePolicy: Fail
    timeoutSeconds: 10
    reinvocationPolicy: IfNeeded
    matchPolicy: Equivalent
    clientConfig:
      url: https://127.0.0.1:$WEBHOOK_PORT/mutate
      caBundle: $(base64 -w0 "$WORK/webhook-ca.crt")
    rules:
      - apiGroups: ["networking.k8s.io"]
        apiVersions: ["v1"]
        operations: ["CREATE", "UPDATE"]
        resources: ["ingresses"]
        scope: Namespaced
    namespaceSelector:
      matchExpressions:
        - key: kubernetes.io/metadata.name
          operator: NotIn
          values: ["kube-system", "certweave"]
    matchConditions:
      - name: has-certweave-trigger
        expression: >-
          has(object.metadata.annotations) &&
          ['cert-manager.io/cluster-issuer', 'cert-manager.io/issuer', 'kubernetes.io/tls-acme'].exists(k, k in object.metadata.annotations)
EOF

echo "== certweave controller: Ingress created -> Ready Certificate + Secret, $ROUNDS Ingresses"
CONTROLLER_TIMES=$(KUBE_URL=$KUBE_URL KUBE_TOKEN=$KUBE_TOKEN KUBE_CA=$KUBE_CA \
  DIRECTORY="$DIRECTORY" PEBBLE_CA="$WORK/ca.pem" ROUNDS="$ROUNDS" POLL_MS="$POLL_MS" \
  ROUND_TIMEOUT="$ROUND_TIMEOUT" CTL_PID="$CTL_PID" SUPPORT="$ROOT/benches/support" \
  LAST_CERT="$WORK/ingress-last.crt" \
  python3 - <<'PY'
import base64, os, sys, time
sys.path.insert(0, os.environ["SUPPORT"])
from kube_load import Kube, ready

kube = Kube(os.environ["KUBE_URL"], os.environ["KUBE_TOKEN"], os.environ["KUBE_CA"], timeout=30)
poll = int(os.environ["POLL_MS"]) / 1000
ctl = int(os.environ["CTL_PID"])

def alive():
    try:
        os.kill(ctl, 0)
        return True
    except OSError:
        return False

def ingress(name, host):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "shop",
                         "annotations": {"cert-manager.io/cluster-issuer": "pebble"}},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "shop", "port": {"number": 80}}}}]}}]}}

# The API server picks the webhook configuration up a moment after it is
# created: dry-run an Ingress until it comes back mutated.
deadline = time.time() + 30
while True:
    status, obj = kube.request("POST", "/apis/networking.k8s.io/v1/namespaces/shop/ingresses?dryRun=All",
                               ingress("probe", "probe.example.test"))
    if status == 201 and (obj.get("spec") or {}).get("tls"):
        break
    if time.time() > deadline:
        sys.exit(f"the API server does not call the webhook: HTTP {status}: {obj}")
    time.sleep(0.1)

ca_b64 = base64.b64encode(open(os.environ["PEBBLE_CA"], "rb").read()).decode()
kube.create("/apis/cert-manager.io/v1/clusterissuers", {
    "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
    "metadata": {"name": "pebble"},
    "spec": {"acme": {"server": os.environ["DIRECTORY"], "email": "ops@example.test",
                      "caBundle": ca_b64, "privateKeySecretRef": {"name": "pebble-account"},
                      "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]}}})
deadline = time.time() + 60
while not ready(kube.get("/apis/cert-manager.io/v1/clusterissuers/pebble")):
    if time.time() > deadline or not alive():
        sys.exit("the ClusterIssuer did not become Ready; see controller.log")
    time.sleep(0.05)

for i in range(1, int(os.environ["ROUNDS"]) + 1):
    t0 = time.monotonic()
    status, created = kube.request("POST", "/apis/networking.k8s.io/v1/namespaces/shop/ingresses",
                                   ingress(f"shop{i}", f"shop{i}.example.test"))
    admitted = time.monotonic()
    if status != 201:
        sys.exit(f"creating Ingress shop{i}: HTTP {status}: {created}")
    tls = (created.get("spec") or {}).get("tls") or []
    if not tls or not tls[0].get("secretName"):
        sys.exit(f"Ingress shop{i} was stored without spec.tls: the webhook did not mutate it")
    secret = tls[0]["secretName"]
    deadline = time.time() + int(os.environ["ROUND_TIMEOUT"])
    while True:
        cert = kube.get(f"/apis/cert-manager.io/v1/namespaces/shop/certificates/{secret}")
        if ready(cert):
            sec = kube.get(f"/api/v1/namespaces/shop/secrets/{secret}")
            if sec and sec.get("type") == "kubernetes.io/tls" and (sec.get("data") or {}).get("tls.crt"):
                with open(os.environ["LAST_CERT"], "wb") as f:
                    f.write(base64.b64decode(sec["data"]["tls.crt"]))
                break
        if time.time() > deadline or not alive():
            sys.exit(f"Certificate shop/{secret} not Ready with its Secret after "
                     f"{os.environ['ROUND_TIMEOUT']} s; see controller.log")
        time.sleep(poll)
    print(int((time.monotonic() - t0) * 1000), int((admitted - t0) * 1000))
PY
)
CTRL=()
ADMIT=()
while read -r total admit; do CTRL+=("$total"); ADMIT+=("$admit"); done <<<"$CONTROLLER_TIMES"
WARNINGS=$(grep -c -E '(WARN|ERROR)' "$WORK/controller.log" || true)
CTL_HWM=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$CTL_PID/status")

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%d %d %d", a[int((NR+1)/2)], a[int(NR*0.9+0.5)], a[NR]}'; }
read -r e50 e90 emax <<<"$(stats "${BASE_EC[@]}")"
read -r r50 r90 rmax <<<"$(stats "${BASE_RSA[@]}")"
read -r c50 c90 cmax <<<"$(stats "${CTRL[@]}")"
read -r a50 a90 amax <<<"$(stats "${ADMIT[@]}")"
if openssl x509 -in "$WORK/ingress-last.crt" -noout -text | grep -q 'Public Key Algorithm: rsaEncryption'; then
  KEY="RSA 2048"; b50=$r50; b90=$r90
else
  KEY="ECDSA P-256"; b50=$e50; b90=$e90
fi
echo
echo "Ingress -> Secret, $ROUNDS Ingresses one at a time ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  $("$BIN" --version), kube-apiserver $("$KUBE_ASSETS/kube-apiserver" --version | awk '{print $2}'), etcd $("$KUBE_ASSETS/etcd" --version | awk 'NR==1{print $3}'), pebble $(command -v pebble)"
printf '%-52s %8s %8s %8s\n' "per certificate (ms)" median p90 max
printf '%-52s %8d %8d %8d\n' "certweave issue, ECDSA P-256 (ACME only, baseline)" "$e50" "$e90" "$emax"
printf '%-52s %8d %8d %8d\n' "certweave issue, RSA 2048 (ACME only, baseline)" "$r50" "$r90" "$rmax"
printf '%-52s %8d %8d %8d\n' "certweave controller: Ingress POST -> Ready + Secret" "$c50" "$c90" "$cmax"
printf '%-52s %8d %8d %8d\n' "  of which the Ingress POST (webhook included)" "$a50" "$a90" "$amax"
awk -v c="$c50" -v b="$b50" -v c9="$c90" -v b9="$b90" -v key="$KEY" 'BEGIN {
  printf "controller / baseline with the same key type (%s): median %.2fx, p90 %.2fx\n", key, c / b, c9 / b9
  printf "goal: median <= 2000 ms: %s\n", (c <= 2000 ? "met" : "NOT met") }'
echo "controller peak RSS (VmHWM) $((CTL_HWM / 1024)) MiB; WARN/ERROR lines in its log: $WARNINGS"
echo "cert-manager: not measured (its HTTP-01 solver is a Pod that needs a kubelet, an ingress controller and cluster DNS; this harness has none)"
echo "wall time: $(( $(date +%s) - RUN_START )) s"
