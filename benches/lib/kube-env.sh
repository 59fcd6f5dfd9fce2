# shellcheck shell=bash
# Shared by the benchmark scripts that need a real Kubernetes API server:
# etcd + kube-apiserver on free loopback ports, as controller-runtime's
# envtest (and e2e/harness.rs) runs them, torn down on exit.
#
# Source it after benches/lib/pebble-env.sh when both are wanted (it reuses
# that file's WORK, PIDS and exit trap); on its own it makes its own.
#
# `start_kube` starts a FRESH etcd (new data directory, --unsafe-no-fsync)
# and kube-apiserver (serving certificate from a throwaway CA, a static
# bearer token in system:masters, RBAC, PKCS#1 RSA service-account key,
# the ServiceAccount admission plugin off) and waits for /readyz. Then these
# are set: KUBE_URL, KUBE_TOKEN, KUBE_CA (PEM file), KUBECONFIG_FILE
# ($WORK/kubeconfig, admin), APISERVER_PID, ETCD_PID, KUBE_DIR. `stop_kube`
# stops both and deletes the data, so the next `start_kube` is a new cluster.
#
# Binaries: KUBE_ASSETS (a folder with etcd and kube-apiserver; default the
# newest ~/.cache/certweave-e2e/k8s/<version>/, made by e2e/assets.sh) and
# KUBECTL (default ~/.cache/certweave-e2e/bin/kubectl, else kubectl on PATH).

# On exit: SIGTERM to every process in PIDS, newest first (the API server
# before etcd), SIGKILL to what is left after 10 s (a kube-apiserver whose
# etcd is gone can wait a long time), then the work directory goes unless
# KEEP=1.
kube_cleanup() {
  local pid i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local left=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-}" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
if [ -z "${WORK:-}" ]; then
  WORK=$(mktemp -d)
  PIDS=()
fi
# Replaces benches/lib/pebble-env.sh's trap when sourced after it.
trap kube_cleanup EXIT

kube_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ -z "${KUBE_ASSETS:-}" ]; then
  KUBE_ASSETS=$(find "$HOME/.cache/certweave-e2e/k8s" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort -V | tail -n1)
fi
KUBECTL=${KUBECTL:-$HOME/.cache/certweave-e2e/bin/kubectl}
[ -x "$KUBECTL" ] || KUBECTL=$(command -v kubectl || true)

require_kube() {
  local missing=""
  [ -n "$KUBE_ASSETS" ] && [ -x "$KUBE_ASSETS/etcd" ] || missing="$missing etcd"
  [ -n "$KUBE_ASSETS" ] && [ -x "$KUBE_ASSETS/kube-apiserver" ] || missing="$missing kube-apiserver"
  [ -n "$KUBECTL" ] || missing="$missing kubectl"
  for tool in openssl curl python3; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
  if [ -n "$missing" ]; then
    echo "error: missing:$missing (KUBE_ASSETS=${KUBE_ASSETS:-unset}; run bash e2e/assets.sh)" >&2
    exit 2
  fi
}

# kc ARGS...: kubectl as the admin of the current cluster.
kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" --request-timeout=60s "$@"; }

# Waits until `$1` (a URL) answers 2xx with the admin token, for at most $2 s.
kube_wait_url() {
  local url=$1 seconds=$2 pid=$3
  for _ in $(seq 1 $((seconds * 10))); do
    curl -sf --max-time 2 --cacert "$KUBE_CA" -H "Authorization: Bearer $KUBE_TOKEN" \
      -o /dev/null "$url" && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# serving_cert DIR NAME SANS: a throwaway CA (DIR/NAME-ca.crt, .key) and a
# serving certificate for SANS (e.g. "IP:127.0.0.1") signed by it
# (DIR/NAME.crt, DIR/NAME.key); ECDSA P-256, valid for two days.
serving_cert() {
  local dir=$1 name=$2 sans=$3
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench $name CA" -addext basicConstraints=critical,CA:TRUE \
    -keyout "$dir/$name-ca.key" -out "$dir/$name-ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  printf 'subjectAltName=%s\n' "$sans" >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$name-ca.crt" -CAkey "$dir/$name-ca.key" \
    -CAcreateserial -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
}

start_kube() {
  KUBE_DIR=$WORK/kube.$((${KUBE_GENERATION:-0} + 1))
  KUBE_GENERATION=$((${KUBE_GENERATION:-0} + 1))
  mkdir -p "$KUBE_DIR/apiserver-certs"
  local etcd_port peer_port port
  etcd_port=$(kube_free_port)
  peer_port=$(kube_free_port)
  "$KUBE_ASSETS/etcd" --name=bench --data-dir="$KUBE_DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" \
    --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="bench=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync=true --quota-backend-bytes=$((8 * 1024 * 1024 * 1024)) \
    >"$KUBE_DIR/etcd.log" 2>&1 &
  ETCD_PID=$!
  PIDS+=("$ETCD_PID")
  local i
  for i in $(seq 1 300); do
    curl -sf --max-time 2 "http://127.0.0.1:$etcd_port/health" >/dev/null && break
    kill -0 "$ETCD_PID" 2>/dev/null || { tail -n 20 "$KUBE_DIR/etcd.log" >&2; exit 1; }
    [ "$i" = 300 ] && { echo "error: etcd not healthy after 30 s" >&2; exit 1; }
    sleep 0.1
  done

  # Serving certificate, service-account key (PKCS#1: "RSA PRIVATE KEY"),
  # admin token.
  serving_cert "$KUBE_DIR" apiserver "IP:127.0.0.1,DNS:localhost"
  openssl genrsa -traditional -out "$KUBE_DIR/service-account.key" 2048 2>/dev/null
  KUBE_TOKEN=bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s,admin,admin,system:masters\n' "$KUBE_TOKEN" >"$KUBE_DIR/tokens.csv"
  KUBE_CA=$KUBE_DIR/apiserver-ca.crt

  port=$(kube_free_port)
  KUBE_URL=https://127.0.0.1:$port
  KUBE_ETCD_URL=http://127.0.0.1:$etcd_port
  start_apiserver

  KUBECONFIG_FILE=$WORK/kubeconfig
  cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
current-context: bench
clusters:
- name: bench
  cluster:
    server: $KUBE_URL
    certificate-authority-data: $(base64 -w0 "$KUBE_CA")
users:
- name: admin
  user:
    token: $KUBE_TOKEN
contexts:
- name: bench
  context:
    cluster: bench
    user: admin
EOF
}

# Starts kube-apiserver (again) on KUBE_URL against the running etcd and
# waits for /readyz: after `restart_apiserver`, the same cluster.
start_apiserver() {
  "$KUBE_ASSETS/kube-apiserver" --etcd-servers="$KUBE_ETCD_URL" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
    --secure-port="${KUBE_URL##*:}" --tls-cert-file="$KUBE_DIR/apiserver.crt" \
    --tls-private-key-file="$KUBE_DIR/apiserver.key" --token-auth-file="$KUBE_DIR/tokens.csv" \
    --authorization-mode=RBAC --service-account-issuer="$KUBE_URL" \
    --service-account-key-file="$KUBE_DIR/service-account.key" \
    --service-account-signing-key-file="$KUBE_DIR/service-account.key" \
    --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
    --disable-admission-plugins=ServiceAccount --cert-dir="$KUBE_DIR/apiserver-certs" \
    >>"$KUBE_DIR/apiserver.log" 2>&1 &
  APISERVER_PID=$!
  PIDS+=("$APISERVER_PID")
  kube_wait_url "$KUBE_URL/readyz" 120 "$APISERVER_PID" || {
    echo "error: kube-apiserver not ready after 120 s" >&2
    tail -n 30 "$KUBE_DIR/apiserver.log" >&2
    exit 1
  }
}

# Stops kube-apiserver alone (etcd and its data stay) and starts it again.
restart_apiserver() {
  kill "$APISERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$APISERVER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$APISERVER_PID" 2>/dev/null || true
  wait "$APISERVER_PID" 2>/dev/null || true
  start_apiserver
}

# Stops kube-apiserver, then etcd, and deletes the cluster's data.
stop_kube() {
  local pid
  for pid in "$APISERVER_PID" "$ETCD_PID"; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ "${KEEP:-}" = 1 ] || rm -rf "$KUBE_DIR/etcd"
}

# apply_crds FILE...: applies CRD manifests and waits until they are
# Established.
apply_crds() {
  local file
  for file in "$@"; do kc apply --server-side -f "$file" >/dev/null; done
  kc wait --for=condition=Established --timeout=60s crd --all >/dev/null
}
