#!/usr/bin/env bash
# Load test of the webhook over TLS + HTTP/2 on 127.0.0.1, against a bare
# hyper + rustls server that answers every POST with a fixed response
# (examples/bare_webhook.rs).
#
# Targets: certweave >= 0.6x the bare server and >= 40k req/s with
# `h2load -c 8 -m 8`; p99 <= 2 ms at a fixed 1000 req/s.
#
#   bash benches/load.sh
#
# Environment:
#   ROUNDS     saturated rounds, each bare then certweave (default 3)
#   DURATION   seconds of each saturated run (default 10)
#   WARMUP     seconds of warm-up before each run (default 2)
#   RATE_SECS  seconds of each fixed-rate run (default 10)
#   SKIP_BUILD set to 1 to use the binaries already in target/release
#   CERTWEAVE_BIN, BARE_BIN  binaries to use instead of target/release's
#
# The saturated runs alternate between the two servers, ROUNDS times, and
# the figures are the medians: on a shared 2-core machine throughput drifts
# by 10-30% from one minute to the next, and a single pair of runs can land
# on either side of a target. The measurements stop by themselves in about
# two minutes (every h2load run is wrapped in `timeout`); a cold release
# build before them takes longer.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
FIXTURE=$ROOT/benches/fixtures/pod-review.json
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
RATE_SECS=${RATE_SECS:-10}
GO_REFERENCE_RPS=13500

need=()
command -v h2load >/dev/null || need+=(nghttp2-client)
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
    cargo build --release --bin certweave --example bare_webhook
fi
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

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
# Run copies, so that a concurrent build into the same target directory
# cannot swap the binaries mid-run.
cp "${CERTWEAVE_BIN:-$TARGET_DIR/release/certweave}" "$WORK/certweave"
cp "${BARE_BIN:-$TARGET_DIR/release/examples/bare_webhook}" "$WORK/bare_webhook"
CERTWEAVE=$WORK/certweave
BARE=$WORK/bare_webhook

# A throwaway serving certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=127.0.0.1 -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
    -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null

free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

wait_listening() { # PORT NAME
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return
        fi
        sleep 0.1
    done
    echo "$2 did not start listening on port $1; its log:" >&2
    cat "$WORK/$2.log" >&2
    exit 1
}

CW_PORT=$(free_port)
RUST_LOG=warn "$CERTWEAVE" webhook --addr "127.0.0.1:$CW_PORT" \
    --tls-cert-file "$WORK/tls.crt" --tls-key-file "$WORK/tls.key" >"$WORK/certweave.log" 2>&1 &
CW_PID=$!
PIDS+=("$CW_PID")
wait_listening "$CW_PORT" certweave
BARE_PORT=$(free_port)
"$BARE" --addr "127.0.0.1:$BARE_PORT" \
    --tls-cert-file "$WORK/tls.crt" --tls-key-file "$WORK/tls.key" >"$WORK/bare.log" 2>&1 &
BARE_PID=$!
PIDS+=("$BARE_PID")
wait_listening "$BARE_PORT" bare

CW_URL=https://127.0.0.1:$CW_PORT/mutate
BARE_URL=https://127.0.0.1:$BARE_PORT/mutate

# One request through each, over HTTP/2, before any load.
check() { # NAME URL NEEDLE
    local status
    status=$(curl -sS --http2 --cacert "$WORK/tls.crt" --max-time 5 -o "$WORK/$1.out" -w '%{http_code} %{http_version}' \
        -H 'content-type: application/json' --data-binary "@$FIXTURE" "$2")
    if [[ $status != "200 2" ]]; then
        echo "$1: expected HTTP/2 200, got '$status'" >&2
        cat "$WORK/$1.out" >&2
        exit 1
    fi
    if ! grep -q "$3" "$WORK/$1.out"; then
        echo "$1: response lacks $3:" >&2
        cat "$WORK/$1.out" >&2
        exit 1
    fi
    echo "$1: HTTP/2 200, $(wc -c <"$WORK/$1.out") byte response"
}
check certweave "$CW_URL" '"patchType":"JSONPatch"'
check bare "$BARE_URL" '"patchType":"JSONPatch"'

# p50/p99/p99.9/max in ms from h2load's --log-file (3rd column: µs until
# the end of the response).
percentiles() {
    cut -f3 "$1" | sort -n | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "no samples"; exit }
            n = NR
            i50 = int(n * 0.50); if (i50 < 1) i50 = 1
            i99 = int(n * 0.99 + 0.999999); if (i99 > n) i99 = n
            i999 = int(n * 0.999 + 0.999999); if (i999 > n) i999 = n
            printf "p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (%d requests)", v[i50] / 1000, v[i99] / 1000, v[i999] / 1000, v[n] / 1000, n
        }'
}

p99_ms() {
    cut -f3 "$1" | sort -n | awk '{ v[NR] = $1 } END { i = int(NR * 0.99 + 0.999999); if (i > NR) i = NR; printf "%.3f", v[i] / 1000 }'
}

# CPU time (user + system) a process has used so far, in clock ticks.
cpu_ticks() { # PID
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
CLK_TCK=$(getconf CLK_TCK)

# Runs h2load, with WARM seconds of warm-up, against the server with pid
# PID; prints its summary lines and leaves the req/s in $RPS and the
# server's CPU µs per request in $CPU_US (what the server would sustain per
# core without h2load and other processes competing for the two cores is
# about 1e6 / CPU_US). h2load counts only the requests after the warm-up,
# so the server's CPU time is read from then on too.
run_h2load() { # NAME PID LOGFILE WARM ARGS...
    local name=$1 pid=$2 log=$3 warm=$4
    shift 4
    local out=$WORK/$name.h2load
    (sleep "$warm" && cpu_ticks "$pid" >"$WORK/$name.cpu0") &
    local sampler=$!
    if ! timeout 60 h2load "$@" --warm-up-time "$warm" --log-file="$log" \
        -H 'content-type: application/json' -d "$FIXTURE" >"$out" 2>&1; then
        kill "$sampler" 2>/dev/null || true
        echo "h2load against $name failed:" >&2
        cat "$out" >&2
        exit 1
    fi
    local cpu_after
    cpu_after=$(cpu_ticks "$pid")
    wait "$sampler"
    grep -E '^(finished in|requests:|status codes:|time for request:)' "$out" | sed "s/^/  [$name] /"
    # Every request must succeed with a 2xx. (The 2xx count itself can be
    # a few short of the total: h2load tallies status codes of requests in
    # flight at the end of the warm-up differently.)
    local total bad
    total=$(awk '/^requests:/ { print $2 }' "$out")
    bad=$(awk '/^requests:/ { n += $10 + $12 + $14 } /^status codes:/ { n += $5 + $7 + $9 } END { print n + 0 }' "$out")
    if [[ -z $total || $total == 0 || $bad != 0 ]]; then
        echo "$name: failed, errored, timed-out or non-2xx requests ($bad of $total)" >&2
        exit 1
    fi
    RPS=$(awk '/^finished in/ { gsub(",", "", $4); print $4 }' "$out")
    CPU_US=$(awk -v t="$((cpu_after - $(cat "$WORK/$name.cpu0")))" -v hz="$CLK_TCK" -v n="$total" \
        'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    echo "  [$name] server CPU: $CPU_US µs per request"
}

echo
echo "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other processes on the machine skew every figure but the CPU per request)"
echo
awk_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
meets() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? (v >= t) : (v <= t); print ok ? "meets" : "MISSES" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== saturated: h2load -c 8 -m 8 -D $DURATION --warm-up-time $WARMUP (TLS 1.3, h2), $ROUNDS rounds =="
BARE_RPS_ALL=() CW_RPS_ALL=() BARE_CPU_ALL=() CW_CPU_ALL=() RATIOS=()
for ((round = 1; round <= ROUNDS; round++)); do
    run_h2load "bare-$round" "$BARE_PID" "$WORK/bare-sat-$round.log" "$WARMUP" -c 8 -m 8 -D "$DURATION" "$BARE_URL"
    BARE_RPS_ALL+=("$RPS")
    BARE_CPU_ALL+=("$CPU_US")
    run_h2load "certweave-$round" "$CW_PID" "$WORK/cw-sat-$round.log" "$WARMUP" -c 8 -m 8 -D "$DURATION" "$CW_URL"
    CW_RPS_ALL+=("$RPS")
    CW_CPU_ALL+=("$CPU_US")
    RATIOS+=("$(awk_ratio "$RPS" "${BARE_RPS_ALL[-1]}")")
done
BARE_RPS=$(median "${BARE_RPS_ALL[@]}")
CW_RPS=$(median "${CW_RPS_ALL[@]}")
BARE_CPU_US=$(median "${BARE_CPU_ALL[@]}")
CW_CPU_US=$(median "${CW_CPU_ALL[@]}")
# Latency under saturation over every round's requests.
cat "$WORK"/bare-sat-*.log >"$WORK/bare-sat.log"
cat "$WORK"/cw-sat-*.log >"$WORK/cw-sat.log"
BARE_SAT_P99=$(p99_ms "$WORK/bare-sat.log")
CW_SAT_P99=$(p99_ms "$WORK/cw-sat.log")

echo
echo "== fixed rate: 1000 req/s for ${RATE_SECS}s (h2load -c 4 -m 1 --rps 250) =="
run_h2load certweave-1k "$CW_PID" "$WORK/cw-1k.log" 1 -c 4 -m 1 --rps 250 -D "$RATE_SECS" "$CW_URL"
CW_1K_RPS=$RPS
run_h2load bare-1k "$BARE_PID" "$WORK/bare-1k.log" 1 -c 4 -m 1 --rps 250 -D "$RATE_SECS" "$BARE_URL"
BARE_1K_RPS=$RPS

CW_1K_P99=$(p99_ms "$WORK/cw-1k.log")
# The median of the per-round ratios: each compares two runs a few seconds apart.
RATIO=$(median "${RATIOS[@]}")
GO_RATIO=$(awk_ratio "$CW_RPS" "$GO_REFERENCE_RPS")

echo
echo "== results ($(nproc) cores shared by h2load and the server; load average $(cut -d' ' -f1-3 /proc/loadavg)) =="
echo "(saturated figures: medians of $ROUNDS rounds; per round, certweave / bare: ${RATIOS[*]})"
printf '%-34s %12s\n' "saturated req/s, bare hyper+rustls" "$BARE_RPS"
printf '%-34s %12s   %s >= 40000\n' "saturated req/s, certweave" "$CW_RPS" "$(meets "$CW_RPS" 40000 '>=')"
printf '%-34s %12s   %s >= 0.6\n' "certweave / bare" "${RATIO}x" "$(meets "$RATIO" 0.6 '>=')"
printf '%-34s %12s\n' "certweave / Go reference (13.5k)" "${GO_RATIO}x"
printf '%-34s %12s\n' "server CPU per request, bare" "$BARE_CPU_US µs"
printf '%-34s %12s\n' "server CPU per request, certweave" "$CW_CPU_US µs"
printf '%-34s %12s\n' "CPU-time ratio bare / certweave" "$(awk_ratio "$BARE_CPU_US" "$CW_CPU_US")x"
printf '%-34s %12s\n' "p99 under saturation, bare" "$BARE_SAT_P99 ms"
printf '%-34s %12s\n' "p99 under saturation, certweave" "$CW_SAT_P99 ms"
echo "certweave at 1k req/s ($CW_1K_RPS req/s achieved): $(percentiles "$WORK/cw-1k.log")"
echo "bare at 1k req/s ($BARE_1K_RPS req/s achieved):      $(percentiles "$WORK/bare-1k.log")"
printf '%-34s %12s   %s <= 2 ms\n' "p99 at 1k req/s, certweave" "$CW_1K_P99 ms" "$(meets "$CW_1K_P99" 2 '<=')"
