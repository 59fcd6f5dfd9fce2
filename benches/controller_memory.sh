#!/usr/bin/env bash
# Controller memory with many managed certificates among many unrelated
# Secrets, against the in-memory API server (benches/support/fake_apiserver.py).
#
#   1. idle: the controller against an empty API server (lease held, caches
#      synced, nothing to manage);
#   2. loaded: CERTS Certificates across NAMESPACES namespaces, issued by a CA
#      ClusterIssuer (ECDSA P-256 keys), plus SECRETS unrelated Opaque Secrets
#      of ~1 KiB each carrying no certweave label. The controller starts after
#      everything is stored, issues every Certificate (timed until the API
#      server counts them all Ready), then VmRSS is sampled every second for
#      SAMPLE_SECONDS while /metrics is scraped every SCRAPE_EVERY seconds
#      (a scrape renders five series per Certificate); VmHWM is the peak
#      over the whole run.
#
# For scale, it also prints the API server's own RSS (Python, holding every
# object) and the size of the unrelated Secrets as compact JSON: a lower
# bound on what caching every Secret would cost.
#
# Usage: benches/controller_memory.sh            (cargo build --release first)
# Env:   CERTWEAVE_BIN (default target/release/certweave), CERTS=10000,
#        SECRETS=90000, NAMESPACES=100, SAMPLE_SECONDS=30, SCRAPE_EVERY=10,
#        ISSUE_TIMEOUT=900,
#        KEEP=1 keeps the work directory (logs, preload file).
# Needs: python3 (3.11+), openssl, curl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CERTWEAVE_BIN:-$ROOT/target/release/certweave}
FAKE=$ROOT/benches/support/fake_apiserver.py
CERTS=${CERTS:-10000}
SECRETS=${SECRETS:-90000}
NAMESPACES=${NAMESPACES:-100}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-30}
ISSUE_TIMEOUT=${ISSUE_TIMEOUT:-900}
SCRAPE_EVERY=${SCRAPE_EVERY:-10}

for tool in python3 openssl curl; do
    command -v "$tool" >/dev/null || { echo "controller_memory: $tool is required" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "controller_memory: $BIN not found; run cargo build --release" >&2; exit 1; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

kib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
proc_kib() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }

# Starts the API server (optionally preloaded); sets API and API_PID.
start_apiserver() {
    local name=$1; shift
    python3 "$FAKE" --port 0 "$@" >"$WORK/$name.port" 2>"$WORK/$name.apiserver.log" &
    API_PID=$!
    PIDS+=("$API_PID")
    local port=""
    for _ in $(seq 1 1200); do
        port=$(head -n1 "$WORK/$name.port" 2>/dev/null || true)
        [ -n "$port" ] && break
        kill -0 "$API_PID" 2>/dev/null || { cat "$WORK/$name.apiserver.log" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$port" ] || { echo "the API server did not start" >&2; exit 1; }
    API=http://127.0.0.1:$port
    cat >"$WORK/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: fake
clusters:
- name: fake
  cluster:
    server: $API
users:
- name: fake
  user:
    token: fake-token
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
EOF
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Starts the controller against the current API server; sets CTL_PID, METRICS.
start_controller() {
    local name=$1 port
    port=$(free_port)
    METRICS=http://127.0.0.1:$port
    RUST_LOG=${RUST_LOG:-warn} "$BIN" controller --kubeconfig "$WORK/$name.kubeconfig" \
        --namespace certweave --identity bench --pod-ip 127.0.0.1 --leader-elect \
        --webhook-addr 127.0.0.1:0 --solver-addr 127.0.0.1:0 --metrics-addr "127.0.0.1:$port" \
        >"$WORK/$name.controller.log" 2>&1 &
    CTL_PID=$!
    PIDS+=("$CTL_PID")
}

wait_ready() {
    for _ in $(seq 1 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$METRICS/readyz")" = 200 ] && return 0
        kill -0 "$CTL_PID" 2>/dev/null || { cat "$WORK/$1.controller.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "the controller never became ready" >&2; exit 1
}

stat_field() { curl -s "$API/_fake/stats" | python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

# Samples VmRSS every second for $1 seconds, scraping /metrics every
# SCRAPE_EVERY seconds as Prometheus would; sets RSS_AVG, RSS_MAX (KiB) and
# METRICS_BYTES (the last scrape's size).
sample_rss() {
    local sum=0 n=0 max=0 rss
    for i in $(seq 1 "$1"); do
        if [ $(((i - 1) % SCRAPE_EVERY)) = 0 ]; then
            METRICS_BYTES=$(curl -s -o /dev/null -w '%{size_download}' "$METRICS/metrics")
        fi
        rss=$(proc_kib "$CTL_PID" VmRSS)
        sum=$((sum + rss)); n=$((n + 1)); [ "$rss" -gt "$max" ] && max=$rss
        sleep 1
    done
    RSS_AVG=$((sum / n)); RSS_MAX=$max
}

stop_controller() {
    kill -TERM "$CTL_PID"
    local code=0
    wait "$CTL_PID" || code=$?
    [ "$code" = 0 ] || echo "warning: the controller exited with $code after SIGTERM" >&2
}

# --- 1. idle -------------------------------------------------------------------
echo "== idle: empty API server"
start_apiserver idle
start_controller idle
wait_ready idle
for _ in $(seq 1 100); do
    [ -n "$(curl -s "$API/apis/coordination.k8s.io/v1/namespaces/certweave/leases/certweave-controller" | grep -o '"holderIdentity":"bench"')" ] && break
    sleep 0.1
done
sleep 5
sample_rss 10
IDLE_RSS=$RSS_AVG
IDLE_HWM=$(proc_kib "$CTL_PID" VmHWM)
stop_controller
kill "$API_PID"

# --- 2. loaded -----------------------------------------------------------------
echo "== loaded: generating $CERTS Certificates in $NAMESPACES namespaces and $SECRETS unrelated Secrets"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=certweave bench CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
SECRET_JSON_BYTES=$(python3 - "$WORK" "$CERTS" "$SECRETS" "$NAMESPACES" <<'EOF'
import base64, json, os, sys
work, certs, secrets, namespaces = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
b64 = lambda b: base64.b64encode(b).decode()
dump = lambda o: json.dumps(o, separators=(",", ":"))
secret_bytes = 0
with open(f"{work}/preload.ndjson", "w") as out:
    ca = lambda name: open(f"{work}/ca.{name}", "rb").read()
    out.write(dump({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                    "metadata": {"name": "bench-ca", "namespace": "certweave"},
                    "data": {"tls.crt": b64(ca("crt")), "tls.key": b64(ca("key"))}}) + "\n")
    out.write(dump({"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer",
                    "metadata": {"name": "bench-ca"}, "spec": {"ca": {"secretName": "bench-ca"}}}) + "\n")
    for i in range(certs):
        ns = f"team-{i % namespaces:03d}"
        out.write(dump({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                        "metadata": {"name": f"app-{i:05d}", "namespace": ns},
                        "spec": {"secretName": f"app-{i:05d}-tls", "dnsNames": [f"app-{i:05d}.{ns}.example.com"],
                                 "privateKey": {"algorithm": "ECDSA", "size": 256},
                                 "issuerRef": {"name": "bench-ca", "kind": "ClusterIssuer"}}}) + "\n")
    for i in range(secrets):
        line = dump({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                     "metadata": {"name": f"unrelated-{i:05d}", "namespace": f"team-{i % namespaces:03d}",
                                  "labels": {"app": f"svc-{i % 500}"}},
                     "data": {"config": b64(os.urandom(768))}}) + "\n"
        secret_bytes += len(line) - 1
        out.write(line)
print(secret_bytes)
EOF
)
start_apiserver loaded --preload "$WORK/preload.ndjson"
APISERVER_RSS=$(proc_kib "$API_PID" VmRSS)
echo "   API server holds $(stat_field "['objects']") ($(kib "$APISERVER_RSS") RSS)"

start_controller loaded
START=$(date +%s.%N)
wait_ready loaded
READY_AT=$(date +%s.%N)
echo "== issuing $CERTS certificates"
ready=0
while :; do
    ready=$(stat_field "['readyCertificates']")
    [ "$ready" -ge "$CERTS" ] && break
    kill -0 "$CTL_PID" 2>/dev/null || { tail -n 50 "$WORK/loaded.controller.log" >&2; exit 1; }
    if awk -v s="$START" -v now="$(date +%s.%N)" -v t="$ISSUE_TIMEOUT" 'BEGIN { exit !(now - s > t) }'; then
        echo "timed out: $ready of $CERTS Ready after ${ISSUE_TIMEOUT}s" >&2
        tail -n 50 "$WORK/loaded.controller.log" >&2
        exit 1
    fi
    sleep 1
done
DONE=$(date +%s.%N)
ISSUE_SECONDS=$(awk -v a="$START" -v b="$DONE" 'BEGIN { printf "%.1f", b - a }')
SYNC_SECONDS=$(awk -v a="$START" -v b="$READY_AT" 'BEGIN { printf "%.1f", b - a }')
TLS_SECRETS=$(stat_field "['objects']['secrets']")
echo "== all $CERTS Ready after ${ISSUE_SECONDS}s; sampling RSS for ${SAMPLE_SECONDS}s"
PRE_SCRAPE_RSS=$(proc_kib "$CTL_PID" VmRSS)
sample_rss "$SAMPLE_SECONDS"
LOADED_AVG=$RSS_AVG
LOADED_MAX=$RSS_MAX
LOADED_HWM=$(proc_kib "$CTL_PID" VmHWM)
APISERVER_RSS_AFTER=$(proc_kib "$API_PID" VmRSS)
WARNINGS=$(grep -c -E ' (WARN|ERROR) ' "$WORK/loaded.controller.log" || true)
stop_controller

# --- report --------------------------------------------------------------------
row() { printf '  %-58s %s\n' "$1" "$2"; }
echo
echo "certweave controller memory ($BIN; $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
row "idle RSS (empty API server; avg of 10 s)" "$(kib "$IDLE_RSS")  (target <= 20 MiB)"
row "idle peak (VmHWM)" "$(kib "$IDLE_HWM")"
row "RSS with $CERTS certs + $SECRETS Secrets (avg of ${SAMPLE_SECONDS} s)" "$(kib "$LOADED_AVG")  (target <= 100 MiB)"
row "RSS max sample" "$(kib "$LOADED_MAX")"
row "RSS once all are Ready, before the first /metrics scrape" "$(kib "$PRE_SCRAPE_RSS")"
row "peak RSS over the run, issuance included (VmHWM)" "$(kib "$LOADED_HWM")"
row "start to caches synced (/readyz 200)" "${SYNC_SECONDS} s"
row "start to all $CERTS Certificates Ready" "${ISSUE_SECONDS} s"
row "/metrics scrape size" "$(kib $((METRICS_BYTES / 1024)))"
row "WARN/ERROR lines in the controller log" "$WARNINGS"
echo "  for scale:"
row "API server RSS (Python, all objects; before / after)" "$(kib "$APISERVER_RSS") / $(kib "$APISERVER_RSS_AFTER")"
row "the $SECRETS unrelated Secrets as compact JSON" "$(kib $((SECRET_JSON_BYTES / 1024)))"
row "Secrets in the API server at the end (all kinds)" "$TLS_SECRETS"
