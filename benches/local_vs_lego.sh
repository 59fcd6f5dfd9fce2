#!/usr/bin/env bash
# certweave local vs lego: N certificates from one Pebble. certweave local
# issues them all from one manifest with its own concurrency; lego issues
# the same N one after another, as a cron loop over `lego run` would.
# Prints both wall times and the ratio (target >= 20x).
#
#   bash benches/local_vs_lego.sh [N]        (default N=100)
#
# Needs pebble, pebble-challtestsrv, lego and openssl. Uses the release
# binary (built if missing) or CERTWEAVE_BIN. Both clients register their
# account in an untimed warm-up. Everything listens on 127.0.0.1 and is
# stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib/pebble-env.sh

N=${1:-100}
require_tools pebble pebble-challtestsrv lego openssl python3
if [ -z "${CERTWEAVE_BIN:-}" ]; then
  cargo build --release --quiet --bin certweave
  CERTWEAVE_BIN=target/release/certweave
fi
start_pebble

issuer() {
  cat <<YAML
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: pebble}
spec:
  acme:
    server: $DIRECTORY
    email: bench@example.test
    caBundle: $(base64 -w0 "$WORK/ca.pem")
    privateKeySecretRef: {name: bench-account}
    solvers:
    - http01: {ingress: {}}
YAML
}

certificate() {
  printf -- '---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: %s}\nspec:\n  secretName: %s-tls\n  dnsNames: [%s.example.test]\n  privateKey: {algorithm: ECDSA}\n  issuerRef: {name: pebble, kind: ClusterIssuer}\n' "$1" "$1" "$1"
}

count_issued() { find "$WORK/local/secrets" -name tls.crt 2>/dev/null | wc -l; }

mkdir -p "$WORK/local"
echo "warm-up: registering one account per client (not timed)"
{ issuer; certificate warmup; } >"$WORK/local/certs.yaml"
"$CERTWEAVE_BIN" local --dir "$WORK/local" --http01-addr "127.0.0.1:$HTTP_PORT" >"$WORK/local.log" 2>&1 &
LOCAL_PID=$!
PIDS+=("$LOCAL_PID")
for _ in $(seq 600); do [ "$(count_issued)" -ge 1 ] && break; sleep 0.1; done
[ "$(count_issued)" -ge 1 ] || { tail -20 "$WORK/local.log" >&2; exit 1; }

echo "issuing $N certificates with certweave local (one process, its own concurrency)"
{ issuer; certificate warmup; for i in $(seq "$N"); do certificate "cw-$i"; done; } >"$WORK/local/certs.yaml.new"
start=$(now_ms)
mv "$WORK/local/certs.yaml.new" "$WORK/local/certs.yaml"
for _ in $(seq 3000); do [ "$(count_issued)" -ge $((N + 1)) ] && break; sleep 0.05; done
local_ms=$(( $(now_ms) - start ))
[ "$(count_issued)" -ge $((N + 1)) ] || { echo "error: certweave local issued $(( $(count_issued) - 1 )) of $N" >&2; tail -20 "$WORK/local.log" >&2; exit 1; }

# certweave local holds the HTTP-01 port; lego needs it next.
kill "$LOCAL_PID"
wait "$LOCAL_PID" 2>/dev/null || true
lego_issue warmup-lego.example.test || { tail -20 "$WORK/lego.log" >&2; exit 1; }

echo "issuing $N certificates with lego, one after another"
start=$(now_ms)
for i in $(seq "$N"); do
  lego_issue "lego-$i.example.test" || { tail -20 "$WORK/lego.log" >&2; exit 1; }
done
lego_ms=$(( $(now_ms) - start ))
issued_lego=$(find "$WORK/lego/certificates" -name 'lego-*.crt' ! -name '*.issuer.crt' | wc -l)
[ "$issued_lego" -eq "$N" ] || { echo "error: lego issued $issued_lego of $N" >&2; exit 1; }

awk -v n="$N" -v cw="$local_ms" -v lg="$lego_ms" 'BEGIN {
  printf "certweave local: %d certificates in %.2f s (%.1f/s)\n", n, cw / 1000, n * 1000 / cw
  printf "lego:            %d certificates in %.2f s (%.1f/s)\n", n, lg / 1000, n * 1000 / lg
  printf "ratio:           certweave local is %.1fx faster (target >= 20x)\n", lg / cw
}'
