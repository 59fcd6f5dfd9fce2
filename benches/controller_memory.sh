#!/usr/bin/env bash
# Controller memory and time to issue many certificates among many
# unrelated Secrets, against a REAL kube-apiserver + etcd on loopback
# (benches/lib/kube-env.sh), for certweave and - when its binary is there -
# cert-manager's controller, one after the other, each against a FRESH etcd
# and API server (never both at once).
#
# Per controller:
#   1. idle: the controller against an empty cluster (its CRDs, namespace
#      certweave; caches synced, nothing to manage): VmRSS averaged over
#      10 s, 5 s after it is ready;
#   2. preload (timed, before the controller starts): NAMESPACES namespaces,
#      SECRETS unrelated Opaque Secrets of ~1 KiB each (no label anyone
#      selects on), the CA Secret + ClusterIssuer bench-ca (spec.ca, ECDSA
#      P-256 CA made by openssl) and CERTS Certificates issued by it (ECDSA
#      P-256 keys, one DNS name each), POSTed by benches/support/kube_load.py
#      with CONCURRENCY connections;
#   3. loaded: the controller starts; the clock runs until a LIST+WATCH of
#      Certificates counts all CERTS Ready=True; then VmRSS is sampled every
#      second for SAMPLE_SECONDS while /metrics is scraped every SCRAPE_EVERY
#      seconds; VmHWM (/proc/PID/status) is the peak over the whole run,
#      issuance included.
#
# certweave: `certweave controller --leader-elect` with an admin kubeconfig.
# cert-manager: CERT_MANAGER_BIN (default
# ~/.cache/certweave-e2e/tools/cert-manager-v1.21.2/cert-manager-controller,
# made by `bash benches/support/build-cert-manager.sh`), a launcher for
# cert-manager v1.21.2's controllers built from its module
# (benches/support/cert-manager-launcher/main.go says what it runs: the
# default controllers but Venafi's, 5 workers, SecretsFilteredCaching on, no
# leader election), with the CRDs of its Helm chart (rendered with helm) or
# deploy/crds from the module in ~/go/pkg/mod. cert-manager's webhook does
# not run. Without the binary its column says why.
#
# Usage: benches/controller_memory.sh            (cargo build --release first)
# Env:   CERTWEAVE_BIN (default target/release/certweave), BASELINE_BIN (a
#        previous build, measured first on its own fresh cluster, with the
#        rate ratio), CERTS=10000,
#        SECRETS=90000, NAMESPACES=100, CONCURRENCY=24, SAMPLE_SECONDS=30,
#        SCRAPE_EVERY=10, ISSUE_TIMEOUT=1800 (s per controller), KEY=ecdsa
#        (KEY=default: the Certificates name no privateKey, so RSA-2048 as
#        cert-manager's default; `CERTS=1000 SECRETS=0 KEY=default
#        CERT_MANAGER=0` measures the issuance rate key generation allows),
#        PROBE=1 (0: no webhook latency probes, which themselves take CPU;
#        1: the controller's webhook and a control, see start_probe),
#        CERT_MANAGER=0 skips cert-manager, CERT_MANAGER_BIN,
#        CERT_MANAGER_CRDS (a CRD manifest file), KUBE_ASSETS, KUBECTL
#        (see benches/lib/kube-env.sh), KEEP=1 keeps the work directory.
# Needs: etcd + kube-apiserver + kubectl (bash e2e/assets.sh), python3,
#        openssl, curl; helm for cert-manager's chart CRDs (optional).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CERTWEAVE_BIN:-$ROOT/target/release/certweave}
CERTS=${CERTS:-10000}
SECRETS=${SECRETS:-90000}
KEY=${KEY:-ecdsa}
PROBE=${PROBE:-1}
NAMESPACES=${NAMESPACES:-100}
CONCURRENCY=${CONCURRENCY:-24}
SAMPLE_SECONDS=${SAMPLE_SECONDS:-30}
SCRAPE_EVERY=${SCRAPE_EVERY:-10}
ISSUE_TIMEOUT=${ISSUE_TIMEOUT:-1800}
CM_VERSION=v1.21.2
CERT_MANAGER_BIN=${CERT_MANAGER_BIN:-$HOME/.cache/certweave-e2e/tools/cert-manager-$CM_VERSION/cert-manager-controller}
LOADER=$ROOT/benches/support/kube_load.py

# shellcheck source=lib/kube-env.sh
. "$ROOT/benches/lib/kube-env.sh"
require_kube
[ -x "$BIN" ] || { echo "controller_memory: $BIN not found; run cargo build --release" >&2; exit 1; }
RUN_START=$(date +%s)

kib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
proc_kib() { awk -v f="$2" '$1 == f":" { print $2 }' "/proc/$1/status"; }
# CPU seconds (user + system) a process has used so far.
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }
# The API server's request counters (apiserver_request_total) as
# "VERB RESOURCE[/SUBRESOURCE] COUNT" lines, summed over codes and scopes.
api_requests() {
    curl -sk -H "Authorization: Bearer $KUBE_TOKEN" "$KUBE_URL/metrics" | python3 -c '
import re, sys, collections
counts = collections.Counter()
for line in sys.stdin:
    if not line.startswith("apiserver_request_total{"):
        continue
    labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line))
    what = labels.get("resource", "") + ("/" + labels["subresource"] if labels.get("subresource") else "")
    counts[(labels.get("verb", ""), what)] += float(line.rsplit(" ", 1)[1])
for (verb, what), n in sorted(counts.items()):
    print(verb, what or "-", int(n))
'
}
# The requests made between two api_requests snapshots, per Certificate,
# largest first: "PATCH secrets 1.00, ...".
api_requests_per() {
    python3 - "$1" "$2" "$3" <<'PY'
import sys
def load(path):
    d = {}
    for line in open(path):
        verb, what, n = line.split()
        d[(verb, what)] = int(n)
    return d
before, after, per = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
delta = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}
rows = sorted(delta.items(), key=lambda kv: -kv[1])
writes = sum(n for (verb, _), n in delta.items() if verb in ("CREATE", "POST", "PATCH", "APPLY", "UPDATE", "PUT", "DELETE"))
print("%.2f writes; " % (writes / per) + ", ".join("%s %s %.2f" % (verb, what, n / per) for (verb, what), n in rows[:8]))
PY
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# start_controller IMPL NAME: starts certweave or cert-manager against the
# current cluster; sets CTL_PID, METRICS, CTL_LOG.
start_controller() {
    local port
    port=$(kube_free_port)
    METRICS=http://127.0.0.1:$port
    CTL_LOG=$WORK/$1.$2.log
    case $1 in
        certweave | baseline)
            local bin=$BIN
            [ "$1" = baseline ] && bin=$BASELINE_BIN
            WEBHOOK_PORT=$(kube_free_port)
            RUST_LOG=${RUST_LOG:-warn} "$bin" controller --kubeconfig "$KUBECONFIG_FILE" \
                --namespace certweave --identity bench --pod-ip 127.0.0.1 --leader-elect \
                --webhook-addr "127.0.0.1:$WEBHOOK_PORT" --solver-addr 127.0.0.1:0 --metrics-addr "127.0.0.1:$port" \
                >"$CTL_LOG" 2>&1 &
            ;;
        cert-manager)
            "$CERT_MANAGER_BIN" --kubeconfig "$KUBECONFIG_FILE" --cluster-resource-namespace certweave \
                --metrics-listen-address "127.0.0.1:$port" >"$CTL_LOG" 2>&1 &
            ;;
    esac
    CTL_PID=$!
    PIDS+=("$CTL_PID")
}

# Ready: certweave's /readyz (caches synced); cert-manager's launcher has no
# readiness endpoint, so /metrics answering (informers started) stands in.
wait_ready() {
    local path=/readyz
    [ "$1" = cert-manager ] && path=/metrics
    for _ in $(seq 1 1200); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$METRICS$path")" = 200 ] && return 0
        kill -0 "$CTL_PID" 2>/dev/null || { tail -n 30 "$CTL_LOG" >&2; exit 1; }
        sleep 0.1
    done
    echo "$1 never became ready" >&2; tail -n 30 "$CTL_LOG" >&2; exit 1
}

# Samples VmRSS every second for $1 seconds, scraping /metrics every
# SCRAPE_EVERY seconds as Prometheus would; sets RSS_AVG, RSS_MAX (KiB) and
# METRICS_BYTES (the last scrape's size).
sample_rss() {
    local sum=0 n=0 max=0 rss
    METRICS_BYTES=0
    for i in $(seq 1 "$1"); do
        if [ $(((i - 1) % SCRAPE_EVERY)) = 0 ]; then
            METRICS_BYTES=$(curl -s --max-time 10 -o /dev/null -w '%{size_download}' "$METRICS/metrics")
        fi
        rss=$(proc_kib "$CTL_PID" VmRSS)
        sum=$((sum + rss)); n=$((n + 1)); [ "$rss" -gt "$max" ] && max=$rss
        sleep 1
    done
    RSS_AVG=$((sum / n)); RSS_MAX=$max
}

# Admission latency while the controller works (certweave and baseline:
# their webhook runs in the controller): one Pod review every 10 ms over one
# connection, from start_probe to stop_probe, which prints "p50 / p99 ms (n,
# errors)". The control: a separate `certweave webhook` process that issues
# nothing, probed the same way at the same time. Its latency moves with the
# machine's load alone (the probes, the API server, etcd, the waiter), so
# the controller's webhook matching the control means issuance does not
# slow admission.
start_probe() {
    [ "$PROBE" = 1 ] || return 0
    PROBE_OUT=$WORK/$impl.$1.probe.json
    CONTROL_OUT=$WORK/$impl.$1.control.json
    local port
    port=$(kube_free_port)
    "$BIN" webhook --addr "127.0.0.1:$port" --tls-cert-file "$WORK/ca.crt" --tls-key-file "$WORK/ca.key" \
        >"$WORK/$impl.$1.control.log" 2>&1 &
    CONTROL_PID=$!
    PIDS+=("$CONTROL_PID")
    for _ in $(seq 1 100); do
        [ "$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/readyz")" = 200 ] && break
        sleep 0.1
    done
    python3 "$ROOT/benches/support/webhook_probe.py" --url "https://127.0.0.1:$WEBHOOK_PORT/mutate" \
        --review "$ROOT/benches/fixtures/pod-review.json" --out "$PROBE_OUT" >/dev/null 2>&1 &
    PROBE_PID=$!
    python3 "$ROOT/benches/support/webhook_probe.py" --url "https://127.0.0.1:$port/mutate" \
        --review "$ROOT/benches/fixtures/pod-review.json" --out "$CONTROL_OUT" >/dev/null 2>&1 &
    CONTROL_PROBE_PID=$!
    PIDS+=("$PROBE_PID" "$CONTROL_PROBE_PID")
}
stop_probe() {
    [ "$PROBE" = 1 ] || { echo "not measured (PROBE=0)"; return 0; }
    kill -TERM "$PROBE_PID" "$CONTROL_PROBE_PID" 2>/dev/null || true
    wait "$PROBE_PID" "$CONTROL_PROBE_PID" 2>/dev/null || true
    kill -TERM "$CONTROL_PID" 2>/dev/null || true
    wait "$CONTROL_PID" 2>/dev/null || true
    python3 -c '
import json, sys
d, c = (json.load(open(f)) for f in sys.argv[1:3])
print("%s / %s ms (%d reviews, %d errors); control %s / %s ms (%d, %d)"
      % (d["p50_ms"], d["p99_ms"], d["count"], d["errors"], c["p50_ms"], c["p99_ms"], c["count"], c["errors"]))' \
        "$PROBE_OUT" "$CONTROL_OUT"
}

stop_controller() {
    kill -TERM "$CTL_PID" 2>/dev/null || true
    local code=0
    for _ in $(seq 1 150); do kill -0 "$CTL_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CTL_PID" 2>/dev/null && echo "warning: $1 did not stop within 15 s of SIGTERM" >&2
    wait "$CTL_PID" || code=$?
    [ "$code" = 0 ] || [ "$code" = 143 ] || echo "warning: $1 exited with $code after SIGTERM" >&2
}

# The CRDs each controller serves.
crds_for() {
    case $1 in
        certweave) "$BIN" crds >"$WORK/certweave.crds.yaml"; echo "$WORK/certweave.crds.yaml" ;;
        baseline) "$BASELINE_BIN" crds >"$WORK/baseline.crds.yaml"; echo "$WORK/baseline.crds.yaml" ;;
        cert-manager)
            if [ -n "${CERT_MANAGER_CRDS:-}" ]; then echo "$CERT_MANAGER_CRDS"; return; fi
            local mod=$HOME/go/pkg/mod/github.com/cert-manager/cert-manager@$CM_VERSION helm=$HOME/.cache/certweave-e2e/bin/helm
            if [ -x "$helm" ] && [ -d "$mod/deploy/charts/cert-manager" ]; then
                cp -r "$mod/deploy/charts/cert-manager" "$WORK/cm-chart" && chmod -R u+w "$WORK/cm-chart"
                "$helm" template cm "$WORK/cm-chart" --set crds.enabled=true \
                    --show-only templates/crd-acme.cert-manager.io_challenges.yaml \
                    --show-only templates/crd-acme.cert-manager.io_orders.yaml \
                    --show-only templates/crd-cert-manager.io_certificaterequests.yaml \
                    --show-only templates/crd-cert-manager.io_certificates.yaml \
                    --show-only templates/crd-cert-manager.io_clusterissuers.yaml \
                    --show-only templates/crd-cert-manager.io_issuers.yaml >"$WORK/cm.crds.yaml"
            else
                cat "$mod"/deploy/crds/*.yaml >"$WORK/cm.crds.yaml"
            fi
            echo "$WORK/cm.crds.yaml" ;;
    esac
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null

IMPLS=(certweave)
# A previous build first, on its own fresh cluster, for ratios in one run.
[ -n "${BASELINE_BIN:-}" ] && IMPLS=(baseline certweave)
CM_SKIP=""
if [ "${CERT_MANAGER:-1}" = 0 ]; then
    CM_SKIP="not measured (CERT_MANAGER=0)"
elif [ ! -x "$CERT_MANAGER_BIN" ]; then
    CM_SKIP="not measured ($CERT_MANAGER_BIN not found; bash benches/support/build-cert-manager.sh makes it)"
else
    IMPLS+=(cert-manager)
fi

declare -A R
for impl in "${IMPLS[@]}"; do
    echo "== $impl: fresh etcd + kube-apiserver $("$KUBE_ASSETS/kube-apiserver" --version | awk '{print $2}')"
    start_kube
    apply_crds "$(crds_for "$impl")"
    kc create namespace certweave >/dev/null

    echo "== $impl idle: empty cluster"
    start_controller "$impl" idle
    T0=$(date +%s.%N)
    wait_ready "$impl"
    R[$impl.idle_ready]=$(elapsed "$T0")
    [ "$impl" != cert-manager ] && start_probe idle
    sleep 5
    sample_rss 10
    [ "$impl" != cert-manager ] && R[$impl.idle_probe]=$(stop_probe)
    R[$impl.idle_rss]=$RSS_AVG
    R[$impl.idle_hwm]=$(proc_kib "$CTL_PID" VmHWM)
    stop_controller "$impl"

    echo "== $impl preload: $NAMESPACES namespaces, $SECRETS unrelated Secrets, $CERTS Certificates"
    T0=$(date +%s.%N)
    KUBE_TOKEN=$KUBE_TOKEN python3 "$LOADER" preload --server "$KUBE_URL" --cacert "$KUBE_CA" \
        --certs "$CERTS" --secrets "$SECRETS" --namespaces "$NAMESPACES" \
        --ca-cert "$WORK/ca.crt" --ca-key "$WORK/ca.key" --issuer-namespace certweave \
        --concurrency "$CONCURRENCY" --key "$KEY" >"$WORK/$impl.preload.json"
    R[$impl.preload]=$(elapsed "$T0")
    R[$impl.preload_detail]=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("Secrets %s s, Certificates %s s" % (d["secrets_seconds"], d["certificates_seconds"]))' "$WORK/$impl.preload.json")
    R[$impl.secret_bytes]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["secret_json_bytes"])' "$WORK/$impl.preload.json")
    R[$impl.apiserver_before]=$(proc_kib "$APISERVER_PID" VmRSS)

    echo "== $impl loaded: issuing $CERTS Certificates"
    api_requests >"$WORK/$impl.requests.before"
    APISERVER_CPU0=$(proc_cpu "$APISERVER_PID")
    ETCD_CPU0=$(proc_cpu "$ETCD_PID")
    start_controller "$impl" loaded
    T0=$(date +%s.%N)
    [ "$impl" != cert-manager ] && start_probe loaded
    if ! KUBE_TOKEN=$KUBE_TOKEN python3 "$LOADER" wait-ready --server "$KUBE_URL" --cacert "$KUBE_CA" \
        --count "$CERTS" --timeout "$ISSUE_TIMEOUT" --pid "$CTL_PID" >/dev/null; then
        echo "$impl: not all $CERTS Certificates Ready; the tail of its log:" >&2
        tail -n 30 "$CTL_LOG" >&2
        exit 1
    fi
    R[$impl.issue]="$(elapsed "$T0") s"
    R[$impl.cpu]="controller $(proc_cpu "$CTL_PID") s, kube-apiserver $(awk -v a="$APISERVER_CPU0" -v b="$(proc_cpu "$APISERVER_PID")" 'BEGIN { printf "%.2f", b - a }') s, etcd $(awk -v a="$ETCD_CPU0" -v b="$(proc_cpu "$ETCD_PID")" 'BEGIN { printf "%.2f", b - a }') s"
    api_requests >"$WORK/$impl.requests.after"
    R[$impl.requests]=$(api_requests_per "$WORK/$impl.requests.before" "$WORK/$impl.requests.after" "$CERTS")
    R[$impl.rate]=$(awk -v n="$CERTS" -v t="${R[$impl.issue]% s}" 'BEGIN { printf "%.1f/s", n / t }')
    [ "$impl" != cert-manager ] && R[$impl.loaded_probe]=$(stop_probe)
    echo "   all Ready after ${R[$impl.issue]}; sampling RSS for ${SAMPLE_SECONDS} s"
    R[$impl.pre_scrape]=$(proc_kib "$CTL_PID" VmRSS)
    sample_rss "$SAMPLE_SECONDS"
    R[$impl.loaded_avg]=$RSS_AVG
    R[$impl.loaded_max]=$RSS_MAX
    R[$impl.loaded_hwm]=$(proc_kib "$CTL_PID" VmHWM)
    R[$impl.metrics_bytes]=$METRICS_BYTES
    R[$impl.warnings]=$(grep -c -E '(WARN|ERROR|^E[0-9]{4} )' "$CTL_LOG" || true)
    R[$impl.apiserver_after]=$(proc_kib "$APISERVER_PID" VmRSS)
    R[$impl.tls_secrets]=$(kc get secrets -A --field-selector type=kubernetes.io/tls -o name | wc -l)
    stop_controller "$impl"
    R[$impl.etcd_kib]=$(du -sk "$KUBE_DIR/etcd" | cut -f1)
    stop_kube
done

# --- report --------------------------------------------------------------------
col() { if [ -n "$CM_SKIP" ]; then printf '  %-56s %22s\n' "$1" "$2"; else printf '  %-56s %22s %22s\n' "$1" "$2" "$3"; fi; }
cm() { [ -n "$CM_SKIP" ] && echo "-" || echo "$1"; }
echo
echo "controller memory, real kube-apiserver $("$KUBE_ASSETS/kube-apiserver" --version | awk '{print $2}') + etcd $("$KUBE_ASSETS/etcd" --version | awk 'NR==1{print $3}') ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
col "" "$("$BIN" --version)" "cert-manager $CM_VERSION"
col "idle RSS (empty cluster, avg of 10 s)" "$(kib "${R[certweave.idle_rss]}")" "$(cm "$(kib "${R[cert-manager.idle_rss]:-0}")")"
col "idle peak (VmHWM)" "$(kib "${R[certweave.idle_hwm]}")" "$(cm "$(kib "${R[cert-manager.idle_hwm]:-0}")")"
col "start to ready, empty cluster" "${R[certweave.idle_ready]} s" "$(cm "${R[cert-manager.idle_ready]:-} s")"
col "preload: $SECRETS Secrets + $CERTS Certificates" "${R[certweave.preload]} s" "$(cm "${R[cert-manager.preload]:-} s")"
col "start to all $CERTS Certificates Ready" "${R[certweave.issue]}" "$(cm "${R[cert-manager.issue]:-}")"
col "Certificates Ready per second (key: $KEY)" "${R[certweave.rate]}" "$(cm "${R[cert-manager.rate]:-}")"
if [ -n "${BASELINE_BIN:-}" ]; then
    echo "  baseline ($BASELINE_BIN, $("$BASELINE_BIN" --version)):"
    echo "    all Ready after ${R[baseline.issue]}: ${R[baseline.rate]}; certweave / baseline: $(awk -v a="${R[certweave.rate]%/s}" -v b="${R[baseline.rate]%/s}" 'BEGIN { printf "%.2fx", a / b }')"
    echo "    CPU: ${R[baseline.cpu]}"
    echo "    API requests per Certificate: ${R[baseline.requests]}"
fi
echo "  CPU while issuing (user + system):"
echo "    certweave:            ${R[certweave.cpu]}"
[ -z "$CM_SKIP" ] && echo "    cert-manager:         ${R[cert-manager.cpu]:-}"
echo "  API requests per Certificate while issuing (every client: controller, probe, waiter):"
echo "    certweave:            ${R[certweave.requests]}"
[ -z "$CM_SKIP" ] && echo "    cert-manager:         ${R[cert-manager.requests]:-}"
echo "  webhook admission p50 / p99 (Pod review every 10 ms; control: a separate idle certweave webhook probed at the same time):"
echo "    idle:                 ${R[certweave.idle_probe]}"
echo "    while issuing:        ${R[certweave.loaded_probe]}"
if [ -n "${BASELINE_BIN:-}" ]; then
    echo "    baseline idle:        ${R[baseline.idle_probe]}"
    echo "    baseline issuing:     ${R[baseline.loaded_probe]}"
fi
col "peak RSS over the loaded run (VmHWM)  [goal <= 100 MiB]" "$(kib "${R[certweave.loaded_hwm]}")" "$(cm "$(kib "${R[cert-manager.loaded_hwm]:-0}")")"
col "RSS once all Ready, before the first scrape" "$(kib "${R[certweave.pre_scrape]}")" "$(cm "$(kib "${R[cert-manager.pre_scrape]:-0}")")"
col "RSS avg / max of ${SAMPLE_SECONDS} s with /metrics scrapes" "$(kib "${R[certweave.loaded_avg]}") / $(kib "${R[certweave.loaded_max]}")" \
    "$(cm "$(kib "${R[cert-manager.loaded_avg]:-0}") / $(kib "${R[cert-manager.loaded_max]:-0}")")"
col "/metrics scrape size" "$(kib $((${R[certweave.metrics_bytes]} / 1024)))" "$(cm "$(kib $((${R[cert-manager.metrics_bytes]:-0} / 1024)))")"
col "kubernetes.io/tls Secrets at the end" "${R[certweave.tls_secrets]}" "$(cm "${R[cert-manager.tls_secrets]:-}")"
col "WARN/ERROR lines in the controller log" "${R[certweave.warnings]}" "$(cm "${R[cert-manager.warnings]:-}")"
echo "  for scale:"
col "kube-apiserver RSS after preload / at the end" "$(kib "${R[certweave.apiserver_before]}") / $(kib "${R[certweave.apiserver_after]}")" \
    "$(cm "$(kib "${R[cert-manager.apiserver_before]:-0}") / $(kib "${R[cert-manager.apiserver_after]:-0}")")"
col "etcd data directory at the end" "$(kib "${R[certweave.etcd_kib]}")" "$(cm "$(kib "${R[cert-manager.etcd_kib]:-0}")")"
col "the $SECRETS unrelated Secrets as compact JSON" "$(kib $((${R[certweave.secret_bytes]} / 1024)))" ""
echo "  preload detail: certweave run: ${R[certweave.preload_detail]}"
if [ -n "$CM_SKIP" ]; then
    echo "cert-manager: $CM_SKIP"
else
    echo "  preload detail: cert-manager run: ${R[cert-manager.preload_detail]}"
fi
echo "  cert-manager's published figure for 10,000 Certificates: 528 MB"
echo "wall time: $(( $(date +%s) - RUN_START )) s"
