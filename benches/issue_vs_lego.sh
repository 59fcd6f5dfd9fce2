#!/usr/bin/env bash
# certweave issue vs lego: the same N single-name certificates from one
# Pebble, one process per certificate, HTTP-01 on the same port, in the same
# run. Prints both wall times and the ratio.
#
#   bash benches/issue_vs_lego.sh [N]        (default N=10)
#
# Needs pebble, pebble-challtestsrv and lego (Debian packages; .ci/test.sh
# installs them) and openssl. Uses the release binary (built if missing),
# or CERTWEAVE_BIN. Everything listens on 127.0.0.1 and is stopped on exit;
# each client process is limited to 60 s, so the run stays within minutes
# even if something hangs.
#
# Pebble runs with PEBBLE_VA_NOSLEEP=1 (no artificial validation delay) and
# its default 5% bad-nonce rejection. Both clients register their account
# once in an untimed warm-up run and reuse it, so the timed runs measure
# issuance: new order, HTTP-01 validation, finalization, download. What
# separates the two is mostly how they wait for the CA: lego polls on a
# fixed schedule of seconds, certweave starts at 25 ms and backs off.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${1:-10}
for tool in pebble pebble-challtestsrv lego openssl; do
  command -v "$tool" >/dev/null || {
    echo "error: $tool is not installed (apt-get install pebble lego openssl)" >&2
    exit 2
  }
done

if [ -z "${CERTWEAVE_BIN:-}" ]; then
  cargo build --release --quiet --bin certweave
  CERTWEAVE_BIN=${CARGO_TARGET_DIR:-target}/release/certweave
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "error: nothing listens on 127.0.0.1:$1; see $WORK/*.log" >&2
  exit 1
}

# Pebble's TLS certificate, from a throwaway CA both clients trust.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj "/CN=bench ACME TLS CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/req.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$WORK/san.ext"
openssl x509 -req -in "$WORK/req.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
  -CAcreateserial -days 1 -extfile "$WORK/san.ext" -out "$WORK/cert.pem" 2>/dev/null

HTTP_PORT=$(free_port)
DNS_PORT=$(free_port)
DNS_MGMT=$(free_port)
ACME_PORT=$(free_port)
ACME_MGMT=$(free_port)
cat >"$WORK/pebble.json" <<EOF
{"pebble": {
  "listenAddress": "127.0.0.1:$ACME_PORT",
  "managementListenAddress": "127.0.0.1:$ACME_MGMT",
  "certificate": "$WORK/cert.pem",
  "privateKey": "$WORK/key.pem",
  "httpPort": $HTTP_PORT,
  "tlsPort": $(free_port),
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false
}}
EOF

pebble-challtestsrv -dns01 "127.0.0.1:$DNS_PORT" -management "127.0.0.1:$DNS_MGMT" \
  -http01 "" -https01 "" -tlsalpn01 "" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
  >"$WORK/challtestsrv.log" 2>&1 &
PIDS+=($!)
PEBBLE_VA_NOSLEEP=1 pebble -config "$WORK/pebble.json" -dnsserver "127.0.0.1:$DNS_PORT" \
  >"$WORK/pebble.log" 2>&1 &
PIDS+=($!)
wait_port "$DNS_MGMT"
wait_port "$ACME_PORT"
DIRECTORY="https://127.0.0.1:$ACME_PORT/dir"

certweave_issue() {
  timeout 60 "$CERTWEAVE_BIN" issue --dns-name "$1" --acme-directory "$DIRECTORY" \
    --acme-ca-bundle "$WORK/ca.pem" --email bench@example.test \
    --account-key "$WORK/certweave-account.key" --http01-addr "127.0.0.1:$HTTP_PORT" \
    --out "$WORK/certweave/$1" >>"$WORK/certweave.log" 2>&1
}

lego_issue() {
  LEGO_CA_CERTIFICATES="$WORK/ca.pem" timeout 60 lego --accept-tos \
    --email bench@example.test --server "$DIRECTORY" --path "$WORK/lego" \
    --domains "$1" --http --http.port "127.0.0.1:$HTTP_PORT" run >>"$WORK/lego.log" 2>&1
}

now_ms() { date +%s%3N; }

echo "warm-up: registering one account per client (not timed)"
certweave_issue warmup-certweave.example.test || { cat "$WORK/certweave.log" >&2; exit 1; }
lego_issue warmup-lego.example.test || { cat "$WORK/lego.log" >&2; exit 1; }

echo "issuing $N certificates with certweave, one process each"
start=$(now_ms)
for i in $(seq "$N"); do
  certweave_issue "cw-$i.example.test" || { tail -20 "$WORK/certweave.log" >&2; exit 1; }
done
certweave_ms=$(( $(now_ms) - start ))

echo "issuing $N certificates with lego, one process each"
start=$(now_ms)
for i in $(seq "$N"); do
  lego_issue "lego-$i.example.test" || { tail -20 "$WORK/lego.log" >&2; exit 1; }
done
lego_ms=$(( $(now_ms) - start ))

# Every certificate really was issued, by both.
issued_cw=$(find "$WORK/certweave" -name tls.crt | wc -l)
issued_lego=$(find "$WORK/lego/certificates" -name 'lego-*.crt' ! -name '*.issuer.crt' | wc -l)
[ "$issued_cw" -eq $((N + 1)) ] && [ "$issued_lego" -eq "$N" ] || {
  echo "error: expected $N certificates each, found certweave=$((issued_cw - 1)) lego=$issued_lego" >&2
  exit 1
}

awk -v n="$N" -v cw="$certweave_ms" -v lg="$lego_ms" 'BEGIN {
  printf "certweave: %d certificates in %.2f s (%.0f ms each)\n", n, cw / 1000, cw / n
  printf "lego:      %d certificates in %.2f s (%.0f ms each)\n", n, lg / 1000, lg / n
  printf "ratio:     certweave is %.1fx faster than lego (target >= 5x)\n", lg / cw
}'
