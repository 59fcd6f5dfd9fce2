# Shared by the ACME benchmark scripts: a private Pebble with its own
# pebble-challtestsrv on free loopback ports, torn down on exit.
#
# After `start_pebble`, these are set: WORK (scratch directory), HTTP_PORT
# (where Pebble sends HTTP-01 validations), DIRECTORY (the ACME directory
# URL) and $WORK/ca.pem (the CA of Pebble's TLS certificate).
#
# Pebble runs with PEBBLE_VA_NOSLEEP=1 (no artificial validation delay) and
# its default 5% bad-nonce rejection.

require_tools() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || {
      echo "error: $tool is not installed (pebble: bash e2e/assets.sh, then eval \"\$(bash e2e/assets.sh --print)\"; lego, openssl: apt-get install)" >&2
      exit 2
    }
  done
}

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

now_ms() { date +%s%3N; }

start_pebble() {
  # Pebble's TLS certificate, from a throwaway CA the clients trust.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=bench ACME TLS CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$WORK/key.pem" -out "$WORK/req.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$WORK/san.ext"
  openssl x509 -req -in "$WORK/req.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 1 -extfile "$WORK/san.ext" -out "$WORK/cert.pem" 2>/dev/null

  HTTP_PORT=$(free_port)
  local dns_port dns_mgmt acme_port acme_mgmt
  dns_port=$(free_port)
  dns_mgmt=$(free_port)
  acme_port=$(free_port)
  acme_mgmt=$(free_port)
  cat >"$WORK/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$acme_port",
  "managementListenAddress": "127.0.0.1:$acme_mgmt",
  "certificate": "$WORK/cert.pem",
  "privateKey": "$WORK/key.pem",
  "httpPort": $HTTP_PORT,
  "tlsPort": $(free_port),
  "ocspResponderURL": "",
  "externalAccountBindingRequired": false
}}
JSON
  pebble-challtestsrv -dnsserver "127.0.0.1:$dns_port" -management "127.0.0.1:$dns_mgmt" \
    -http01 "" -https01 "" -tlsalpn01 "" -doh "" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
    >"$WORK/challtestsrv.log" 2>&1 &
  PIDS+=($!)
  PEBBLE_VA_NOSLEEP=1 pebble -config "$WORK/pebble.json" -dnsserver "127.0.0.1:$dns_port" \
    >"$WORK/pebble.log" 2>&1 &
  PIDS+=($!)
  wait_port "$dns_mgmt"
  wait_port "$acme_port"
  DIRECTORY="https://127.0.0.1:$acme_port/dir"
}

# The ClusterIssuer `pebble` for this Pebble (HTTP-01, account key in the
# Secret pebble-account), as YAML on stdout.
pebble_cluster_issuer() {
  cat <<YAML
apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata: {name: pebble}
spec:
  acme:
    server: $DIRECTORY
    email: ops@example.test
    caBundle: $(base64 -w0 "$WORK/ca.pem")
    privateKeySecretRef: {name: pebble-account}
    solvers:
    - http01: {ingress: {ingressClassName: nginx}}
YAML
}

lego_issue() {
  LEGO_CA_CERTIFICATES="$WORK/ca.pem" timeout 60 lego --accept-tos \
    --email bench@example.test --server "$DIRECTORY" --path "$WORK/lego" \
    --domains "$1" --http --http.port "127.0.0.1:$HTTP_PORT" run >>"$WORK/lego.log" 2>&1
}
