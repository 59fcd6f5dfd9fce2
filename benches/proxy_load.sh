#!/usr/bin/env bash
# Load test of `certweave proxy` on 127.0.0.1: throughput and p99 latency of
# small responses through the proxy (HTTPS, TLS terminated by the proxy,
# plain HTTP/1.1 to the app) against the same app reached directly (plain
# HTTP/1.1), in the same run, with 1000 concurrent connections each keeping
# one request in flight. The app is examples/proxy_upstream.rs.
#
# Targets: proxy >= 0.8x the direct throughput; proxy RSS at idle <= 10 MiB.
# It also prints the idle proxy's PSS with a few sibling proxies running,
# the per-sidecar cost on a node where they share the binary's pages.
#
#   bash benches/proxy_load.sh
#
# Environment:
#   DURATION     seconds of each measured run (default 10)
#   CONNECTIONS  concurrent connections (default 1000)
#   THREADS      wrk threads (default 2)
#   SKIP_BUILD   set to 1 to use the binaries already in target/release
#
# The measurements stop by themselves in well under a minute (every wrk run
# is wrapped in `timeout`); a cold release build before them takes longer.
# Every process it starts is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-1000}
THREADS=${THREADS:-2}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if ((${#need[@]})); then
    echo "installing ${need[*]}"
    if ! apt-get install -y -qq "${need[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
    cargo build --release --bin certweave --example proxy_upstream
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CERTWEAVE=$TARGET_DIR/release/certweave
UPSTREAM=$TARGET_DIR/release/examples/proxy_upstream

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wrk opens one descriptor per connection, the proxy two.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
UP_PORT=$(free_port)
PROXY_PORT=$(free_port)
HEALTH_PORT=$(free_port)

# A certificate laid out like a mounted Secret.
mkdir -p "$WORK/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$WORK/tls/tls.key" -out "$WORK/tls/tls.crt" 2>/dev/null

"$UPSTREAM" "127.0.0.1:$UP_PORT" 2>"$WORK/upstream.log" &
UP_PID=$!
PIDS+=($UP_PID)
RUST_LOG=warn "$CERTWEAVE" proxy --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$UP_PORT" \
    --cert-dir "$WORK/tls" --health-addr "127.0.0.1:$HEALTH_PORT" 2>"$WORK/proxy.log" &
PROXY_PID=$!
PIDS+=($PROXY_PID)

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$HEALTH_PORT/readyz" >/dev/null 2>&1 \
        && curl -fsS "http://127.0.0.1:$UP_PORT/" >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
curl -fsS --cacert "$WORK/tls/tls.crt" "https://localhost:$PROXY_PORT/" \
    --resolve "localhost:$PROXY_PORT:127.0.0.1" >/dev/null \
    || { echo "the proxy does not answer; see its log:"; cat "$WORK/proxy.log"; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
sleep 1
IDLE_RSS=$(rss_kib "$PROXY_PID")
# RSS splits into the proxy's own memory (anonymous) and the pages of the
# binary's text and read-only data it has touched (file-backed, shared with
# every other process running the same binary, and reclaimable).
IDLE_ANON=$(awk '/^RssAnon:/ {print $2}' "/proc/$PROXY_PID/status")
IDLE_FILE=$(awk '/^RssFile:/ {print $2}' "/proc/$PROXY_PID/status")

# On a node, every injected sidecar runs the same binary from the same image
# layer, so its file-backed pages are one copy in the page cache. PSS splits
# shared pages between the processes mapping them: with SIBLINGS more idle
# proxies running (each having served one request), it is what one sidecar
# costs the node.
SIBLINGS=3
SIBLING_PIDS=()
for i in $(seq 1 "$SIBLINGS"); do
    port=$(free_port)
    health=$(free_port)
    RUST_LOG=warn "$CERTWEAVE" proxy --listen "127.0.0.1:$port" --upstream "127.0.0.1:$UP_PORT" \
        --cert-dir "$WORK/tls" --health-addr "127.0.0.1:$health" 2>>"$WORK/siblings.log" &
    SIBLING_PIDS+=($!)
    PIDS+=($!)
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$health/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    curl -fsS --cacert "$WORK/tls/tls.crt" "https://localhost:$port/" \
        --resolve "localhost:$port:127.0.0.1" >/dev/null || true
done
sleep 1
rollup_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/smaps_rollup"; }
IDLE_PSS=$(rollup_kib "$PROXY_PID" Pss)
IDLE_PRIVATE=$(rollup_kib "$PROXY_PID" Private_Dirty)
kill "${SIBLING_PIDS[@]}" 2>/dev/null || true

# CPU time (clock ticks) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK_HZ=$(getconf CLK_TCK)

# run NAME URL: prints "NAME rps p99_ms requests proxy_ticks upstream_ticks".
run() {
    local name=$1 url=$2 out
    timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d2s "$url" >/dev/null 2>&1 || true
    local proxy0 up0
    proxy0=$(cpu_ticks "$PROXY_PID")
    up0=$(cpu_ticks "$UP_PID")
    out=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")
    local proxy_ticks=$(($(cpu_ticks "$PROXY_PID") - proxy0)) up_ticks=$(($(cpu_ticks "$UP_PID") - up0))
    echo "$out" >"$WORK/$name.wrk"
    local rps p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out")
    # wrk prints latencies as 850.00us / 12.34ms / 1.20s.
    p99_ms=$(awk -v v="$p99" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n = n / 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n = n * 1000
        printf "%.2f", n }')
    [[ -n $errors ]] && echo "  $name: $errors" >&2
    local requests
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$name $rps $p99_ms $requests $proxy_ticks $up_ticks"
}

# CPU microseconds per request from clock ticks.
per_request() { awk -v t="$1" -v n="$2" -v hz="$TICK_HZ" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }'; }

echo "load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s per run, 24-byte responses, $(nproc) cores"
read -r _ DIRECT_RPS DIRECT_P99 DIRECT_N _ DIRECT_UP_TICKS < <(run direct "http://127.0.0.1:$UP_PORT/")
read -r _ PROXY_RPS PROXY_P99 PROXY_N PROXY_TICKS PROXY_UP_TICKS < <(run proxy "https://127.0.0.1:$PROXY_PORT/")
LOADED_RSS=$(rss_kib "$PROXY_PID")
sleep 2
AFTER_RSS=$(rss_kib "$PROXY_PID")

printf '%-28s %12s %10s\n' "" "req/s" "p99 (ms)"
printf '%-28s %12.0f %10s\n' "direct (plain HTTP/1.1)" "$DIRECT_RPS" "$DIRECT_P99"
printf '%-28s %12.0f %10s\n' "through proxy (TLS)" "$PROXY_RPS" "$PROXY_P99"
RATIO=$(awk -v p="$PROXY_RPS" -v d="$DIRECT_RPS" 'BEGIN { printf "%.2f", p / d }')
echo "throughput ratio proxy/direct: ${RATIO}x (target >= 0.8x)"
echo "CPU per request: app $(per_request "$DIRECT_UP_TICKS" "$DIRECT_N") us direct;" \
    "proxy $(per_request "$PROXY_TICKS" "$PROXY_N") us + app $(per_request "$PROXY_UP_TICKS" "$PROXY_N") us through the proxy" \
    "(load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores)"
mib() { echo "$(($1 / 1024)).$(( ($1 % 1024) * 10 / 1024 ))"; }
echo "proxy RSS: idle $(mib "$IDLE_RSS") MiB (target <= 10 MiB; anonymous $(mib "$IDLE_ANON") MiB, binary's file-backed pages $(mib "$IDLE_FILE") MiB), right after load $((LOADED_RSS / 1024)) MiB, 2 s later $((AFTER_RSS / 1024)) MiB"
echo "proxy PSS at idle with $SIBLINGS sibling sidecars on the machine: $(mib "$IDLE_PSS") MiB, of which private (written) $(mib "$IDLE_PRIVATE") MiB"
grep -q "certweave_proxy_upstream_errors_total 0" <(curl -fsS "http://127.0.0.1:$HEALTH_PORT/metrics") \
    || echo "note: the proxy counted upstream errors during the run"
