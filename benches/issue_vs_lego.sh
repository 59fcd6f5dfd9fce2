#!/usr/bin/env bash
# certweave issue vs lego: the same N single-name certificates from one
# Pebble, one process per certificate, HTTP-01 on the same port, in the same
# run. Prints both wall times and the ratio.
#
#   bash benches/issue_vs_lego.sh [N]        (default N=10)
#
# Needs pebble and pebble-challtestsrv 2.10 (bash e2e/assets.sh builds them;
# eval "$(bash e2e/assets.sh --print)" puts them on PATH), lego (Debian
# package) and openssl. Uses the release binary (built if missing),
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

source benches/lib/pebble-env.sh

N=${1:-10}
require_tools pebble pebble-challtestsrv lego openssl python3

if [ -z "${CERTWEAVE_BIN:-}" ]; then
  cargo build --release --quiet --bin certweave
  CERTWEAVE_BIN=target/release/certweave
fi
start_pebble

certweave_issue() {
  timeout 60 "$CERTWEAVE_BIN" issue --dns-name "$1" --acme-directory "$DIRECTORY" \
    --acme-ca-bundle "$WORK/ca.pem" --email bench@example.test \
    --account-key "$WORK/certweave-account.key" --http01-addr "127.0.0.1:$HTTP_PORT" \
    --out "$WORK/certweave/$1" >>"$WORK/certweave.log" 2>&1
}


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
