#!/usr/bin/env bash
# Time from Ingress admission to a Ready Certificate and its Secret, with
# ACME HTTP-01 against a local Pebble, through `certweave controller`.
#
# Each round: an Ingress with only `cert-manager.io/cluster-issuer` is sent
# to the controller's webhook as an AdmissionReview, the returned patch is
# applied, the mutated Ingress is created in the API server
# (benches/support/fake_apiserver.py: in memory, no kube-apiserver needed),
# and the clock stops when the Certificate the shim made is Ready=True and
# its kubernetes.io/tls Secret exists. Baseline, same run, same Pebble: one
# `certweave issue` per round (the bare ACME exchange, no Kubernetes).
#
# Usage: benches/ingress_to_ready.sh      (cargo build --release first)
# Env:   CERTWEAVE_BIN (default target/release/certweave), ROUNDS=10
# Needs: pebble, pebble-challtestsrv, openssl, python3, curl.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CERTWEAVE_BIN:-$ROOT/target/release/certweave}
ROUNDS=${ROUNDS:-10}
# shellcheck source=lib/pebble-env.sh
. "$ROOT/benches/lib/pebble-env.sh"
require_tools pebble pebble-challtestsrv openssl python3 curl
[ -x "$BIN" ] || { echo "ingress_to_ready: $BIN not found; run cargo build --release" >&2; exit 1; }
start_pebble

echo "== baseline: certweave issue, $ROUNDS certificates"
BASE=()
for i in $(seq "$ROUNDS"); do
  t0=$(now_ms)
  "$BIN" issue --dns-name "base$i.example.test" --acme-directory "$DIRECTORY" \
    --acme-ca-bundle "$WORK/ca.pem" --account-key "$WORK/account.key" \
    --http01-addr "127.0.0.1:$HTTP_PORT" --out "$WORK/base$i" >>"$WORK/issue.log" 2>&1
  BASE+=($(( $(now_ms) - t0 )))
done

# The API server.
python3 "$ROOT/benches/support/fake_apiserver.py" --port 0 >"$WORK/api.port" 2>"$WORK/api.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/api.port" ] && break; sleep 0.1; done
API=http://127.0.0.1:$(head -n1 "$WORK/api.port")
cat >"$WORK/kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: bench
clusters: [{name: bench, cluster: {server: "$API"}}]
users: [{name: bench, user: {token: bench}}]
contexts: [{name: bench, context: {cluster: bench, user: bench}}]
EOF

# The webhook's serving certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$WORK/webhook.key" -out "$WORK/webhook.crt" 2>/dev/null
WEBHOOK_PORT=$(free_port)
METRICS_PORT=$(free_port)
RUST_LOG=warn "$BIN" controller --kubeconfig "$WORK/kubeconfig" --namespace certweave \
  --webhook-addr "127.0.0.1:$WEBHOOK_PORT" --metrics-addr "127.0.0.1:$METRICS_PORT" \
  --solver-addr "127.0.0.1:$HTTP_PORT" --identity bench \
  --tls-cert-file "$WORK/webhook.crt" --tls-key-file "$WORK/webhook.key" \
  >"$WORK/controller.log" 2>&1 &
PIDS+=($!)
wait_port "$METRICS_PORT"

echo "== controller: Ingress admission to Ready Secret, $ROUNDS Ingresses"
CONTROLLER_TIMES=$(API=$API WEBHOOK="https://127.0.0.1:$WEBHOOK_PORT/mutate" \
  WEBHOOK_CA="$WORK/webhook.crt" DIRECTORY="$DIRECTORY" PEBBLE_CA="$WORK/ca.pem" \
  ROUNDS="$ROUNDS" python3 - <<'PY'
import base64, json, os, ssl, sys, time, urllib.request, urllib.error

API = os.environ["API"]
def call(method, path, body=None, content_type="application/json"):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(API + path, data=data, method=method,
                                 headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise

ca_b64 = base64.b64encode(open(os.environ["PEBBLE_CA"], "rb").read()).decode()
call("POST", "/apis/cert-manager.io/v1/clusterissuers", {
    "apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
    "metadata": {"name": "pebble"},
    "spec": {"acme": {"server": os.environ["DIRECTORY"], "email": "ops@example.test",
                      "caBundle": ca_b64, "privateKeySecretRef": {"name": "pebble-account"},
                      "solvers": [{"http01": {"ingress": {"ingressClassName": "nginx"}}}]}}})
def ready(obj):
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in ((obj or {}).get("status") or {}).get("conditions", []))
deadline = time.time() + 60
while not ready(call("GET", "/apis/cert-manager.io/v1/clusterissuers/pebble")):
    if time.time() > deadline:
        sys.exit("the ClusterIssuer did not become Ready; see controller.log")
    time.sleep(0.05)

tls = ssl.create_default_context(cafile=os.environ["WEBHOOK_CA"])
def admit(ingress):
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
              "request": {"uid": "u", "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "Ingress"},
                          "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "ingresses"},
                          "namespace": "shop", "operation": "CREATE", "object": ingress,
                          "userInfo": {"username": "bench"}}}
    req = urllib.request.Request(os.environ["WEBHOOK"], data=json.dumps(review).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=tls, timeout=10) as r:
        response = json.load(r)["response"]
    assert response["allowed"], response
    for op in json.loads(base64.b64decode(response["patch"])):
        path = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = ingress
        for key in path[:-1]:
            target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
        assert op["op"] in ("add", "replace"), op
        if isinstance(target, list):
            target.insert(int(path[-1]) if path[-1] != "-" else len(target), op["value"])
        else:
            target[path[-1]] = op["value"]
    return ingress

for i in range(1, int(os.environ["ROUNDS"]) + 1):
    host = f"shop{i}.example.test"
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": f"shop{i}", "namespace": "shop",
                            "annotations": {"cert-manager.io/cluster-issuer": "pebble"}},
               "spec": {"ingressClassName": "nginx", "rules": [{"host": host, "http": {"paths": [
                   {"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "shop", "port": {"number": 80}}}}]}}]}}
    t0 = time.monotonic()
    mutated = admit(ingress)
    secret = mutated["spec"]["tls"][0]["secretName"]
    call("POST", "/apis/networking.k8s.io/v1/namespaces/shop/ingresses", mutated)
    deadline = time.time() + 60
    while True:
        cert = call("GET", f"/apis/cert-manager.io/v1/namespaces/shop/certificates/{secret}")
        sec = call("GET", f"/api/v1/namespaces/shop/secrets/{secret}")
        if ready(cert) and sec and sec.get("type") == "kubernetes.io/tls":
            break
        if time.time() > deadline:
            sys.exit(f"{secret} did not become Ready; see controller.log")
        time.sleep(0.01)
    print(int((time.monotonic() - t0) * 1000))
PY
)
mapfile -t CTRL <<<"$CONTROLLER_TIMES"

stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%d %d %d", a[int((NR+1)/2)], a[int(NR*0.9+0.5)], a[NR]}'; }
read -r b50 b90 bmax <<<"$(stats "${BASE[@]}")"
read -r c50 c90 cmax <<<"$(stats "${CTRL[@]}")"
echo
printf '%-48s %8s %8s %8s\n' "per certificate (ms)" median p90 max
printf '%-48s %8d %8d %8d\n' "certweave issue (ACME only, baseline)" "$b50" "$b90" "$bmax"
printf '%-48s %8d %8d %8d\n' "controller: admission -> Ready + Secret" "$c50" "$c90" "$cmax"
awk -v c="$c50" -v b="$b50" 'BEGIN { printf "controller / baseline (median): %.2fx; target: <= 2000 ms\n", c / b }'
