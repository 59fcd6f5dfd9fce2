#!/usr/bin/env bash
# Is certweave's sidecar cheaper than the one I would otherwise inject?
# `certweave proxy` next to haproxy, nginx and ghostunnel, each terminating
# TLS in front of the same upstream on 127.0.0.1, under the same loads, in
# one run (about 5 minutes with the default DURATION=5):
#
#   bash benches/proxy_vs_peers.sh
#   DURATION=10 SKIP_GHOSTUNNEL=1 bash benches/proxy_vs_peers.sh
#
# Environment:
#   DURATION            seconds of each measured load point (default 5; each
#                       point is preceded by an unmeasured 1 s warm-up)
#   CERTWEAVE_BIN       the binary to test (default target/release/certweave,
#                       built with `nice cargo build --release` if missing)
#   SKIP_GHOSTUNNEL=1   leave ghostunnel out
#   BASELINE_BIN        another certweave binary (e.g. one built from the
#                       previous commit) run as "certweave-base" beside the
#                       others, so a change to the proxy is measured against
#                       what it replaces in the same run; not a peer in the
#                       summary, which gains a "certweave / baseline" column
#   ONLY                comma-separated row names to run (e.g. h1-ka-100,
#                       tcp-ka-100; names as in the summary); default all
#   GHOSTUNNEL_VERSION  the ghostunnel module version built when ghostunnel
#                       is not on PATH (default v1.8.4; built once from the Go
#                       module proxy into target/bench-tools/)
#
# What runs where (the machine is expected to have 2 cores; everything
# listens on 127.0.0.1 and is stopped on exit):
#   core 1: the proxy under test, nothing else; every proxy gets one core's
#           worth of parallelism: nginx 1 worker (plus its master), haproxy
#           nbthread 1, certweave's and ghostunnel's runtimes size themselves
#           from the CPU affinity (1 worker thread, GOMAXPROCS=1).
#   core 0: the upstream (an nginx, 1 process, `return 200 "ok"`; HTTP/1.1
#           on one port, h2c on another for the direct HTTP/2 baseline) and
#           the load generator (wrk -t1 for HTTP/1.1, h2load -t1 -m1 for
#           HTTP/2: one request in flight per connection).
#
# The same ECDSA P-256 certificate for all, made here with openssl. TLS 1.2
# and 1.3 enabled everywhere (nginx 1.22's default lacks 1.3, so it is set);
# which version, cipher and group each proxy negotiated is printed.
#
# Peers, configured as one would for a sidecar in front of a local app:
#   haproxy (Debian) HTTP mode: `bind ... ssl alpn h2,http/1.1`, keep-alive
#           to the upstream with `http-reuse always`; TCP mode: `mode tcp`.
#   nginx   (Debian) HTTP: `listen ... ssl http2`, `proxy_pass` to an
#           upstream block with `keepalive 64`, `proxy_http_version 1.1`,
#           `proxy_set_header Connection ""`, access log off, and
#           keepalive_requests raised so keep-alive loads never reconnect;
#           TCP: the stream module (libnginx-mod-stream), `listen ... ssl`.
#   ghostunnel server (TLS to a TCP target; no HTTP awareness and no ALPN, so
#           it is in the HTTP/1.1 and TCP rows, not the HTTP/2 ones), --quiet=all.
#   certweave proxy --mode http (default --upstream-protocol auto: HTTP/1.1
#           to this upstream) and --mode tcp, RUST_LOG=warn.
#
# Load points (each also run directly against the upstream, in plain text,
# as the baseline for "added latency"):
#   h1 keep-alive, 1 and 100 connections   wrk, GET /, 3-byte body
#   h2 keep-alive, 1 and 100 connections   h2load -m1 (latency percentiles
#                                          from its --log-file)
#   h1 new connection per request, 1 and 100 connections, full handshakes:
#       wrk with `Connection: close`; the proxy closes after each response
#       and wrk reconnects. wrk and h2load both resume TLS sessions on
#       reconnect when the server offers tickets, which would make this a
#       resumption benchmark for some proxies and not others, so they run
#       with a 20-line LD_PRELOAD shim (built here with cc) that drops the
#       saved session: every connection is a full ECDHE + ECDSA handshake.
#       req/s = handshakes/s.
#   h1 new connection per request, 100 connections, resumed: the same
#       without the shim (each proxy's default resumption: tickets or cache).
#   tcp keep-alive, 100 connections: the TCP-mode proxies (certweave --mode
#       tcp, haproxy mode tcp, nginx stream, ghostunnel) between wrk and the
#       upstream; each exchange is a 4 KiB POST answered by a 4 KiB body, so
#       the proxies pipe 4 KiB each way per round trip without parsing it
#       (a C client and an nginx upstream, so neither end is the bottleneck
#       the way a Python echo pair would be).
#   tcp new connection, 100 connections: the same with `Connection: close`
#       and the shim: TLS handshake, upstream connect, 4 KiB each way, close.
#
# Reported per proxy and load point: requests/s; p50/p99 latency and what
# the proxy adds over the direct run; the proxy's CPU per request (utime +
# stime from /proc/PID/stat of the proxy and all its child processes, e.g.
# nginx's master and worker, before and after the load) and its CPU use in %
# of its core (near 100% means the proxy was the bottleneck; lower means the
# load generator or upstream on core 0 was, and CPU/request is the fairer
# comparison); wrk/h2load errors and non-2xx responses.
# Memory per sidecar: PSS (/proc/PID/smaps_rollup, summed over the process
# and its children) of a fresh HTTP-mode instance that has served one
# request, alone and with 3 more instances of the same proxy running (PSS
# splits the shared binary and library pages between them, as on a node
# where every pod runs the same sidecar image); and PSS of the loaded
# instance after all the load points.
#
# The end is a summary: certweave against the best peer per row (>= 1.0x
# is good for req/s and handshakes/s, <= 1.0x for CPU/request and PSS) and
# the targets: req/s >= 1.0x best peer, CPU/request <= best peer,
# handshakes/s >= 1.0x best peer, PSS per sidecar <= nginx's.
#
# Tools: haproxy, nginx, libnginx-mod-stream, wrk, h2load (nghttp2-client),
# curl, openssl, cc, python3 (free ports), taskset; missing Debian packages
# are installed with apt-get. ghostunnel needs Go, or is skipped with a note.
# Numbers from a machine busy with other work are noisy: the load average
# is printed at the start and the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-5}
CERTWEAVE_BIN=${CERTWEAVE_BIN:-$ROOT/target/release/certweave}
SKIP_GHOSTUNNEL=${SKIP_GHOSTUNNEL:-0}
GHOSTUNNEL_VERSION=${GHOSTUNNEL_VERSION:-v1.8.4}
NGINX_STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

# ---- tools -----------------------------------------------------------------

apt_install() {
  echo "installing $* (apt-get)" >&2
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  }
}

require_tools() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  if ((${#need[@]})); then
    apt_install "${need[@]}" || {
      echo "error: cannot install ${need[*]}; install them and run again" >&2
      exit 2
    }
  fi
}
require_tools haproxy:haproxy nginx:nginx wrk:wrk h2load:nghttp2-client curl:curl \
  openssl:openssl cc:gcc python3:python3 taskset:util-linux ps:procps
[[ -f $NGINX_STREAM_MODULE ]] || apt_install libnginx-mod-stream || true

if ((EUID != 0)); then
  echo "note: not root; nginx will warn about its user directive" >&2
fi
if (($(nproc) < 2)); then
  echo "error: needs 2 cores (proxy on core 1, load and upstream on core 0)" >&2
  exit 2
fi

if [[ ! -x $CERTWEAVE_BIN ]]; then
  echo "building $CERTWEAVE_BIN (release)" >&2
  nice -n 10 cargo build --release --quiet --bin certweave
fi

GHOSTUNNEL=""
if [[ $SKIP_GHOSTUNNEL != 1 ]]; then
  GHOSTUNNEL=$(command -v ghostunnel || true)
  cached=$ROOT/target/bench-tools/ghostunnel-$GHOSTUNNEL_VERSION
  if [[ -z $GHOSTUNNEL && -x $cached ]]; then
    GHOSTUNNEL=$cached
  elif [[ -z $GHOSTUNNEL ]] && command -v go >/dev/null; then
    # `go install ...@latest` asks the module proxy for the version list,
    # which it may refuse; a pinned version's module zip builds the same.
    echo "building ghostunnel $GHOSTUNNEL_VERSION (once, into target/bench-tools/)" >&2
    dir=$(go mod download -json "github.com/ghostunnel/ghostunnel@$GHOSTUNNEL_VERSION" 2>/dev/null |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || true
    if [[ -n $dir ]] && (cd "$dir" && nice -n 10 go build -mod=mod -o "$cached" . >/dev/null 2>&1); then
      GHOSTUNNEL=$cached
    fi
  fi
  [[ -n $GHOSTUNNEL ]] || echo "skipping ghostunnel: not on PATH and could not be built with go (set SKIP_GHOSTUNNEL=1 to silence)" >&2
fi

# ---- scratch, processes, helpers -------------------------------------------

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "error: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# The process and all its descendants (nginx's master and workers).
tree_pids() {
  ps -e -o pid=,ppid= | awk -v root="$1" '
    { kids[$2] = kids[$2] " " $1 }
    END { n = 1; q[1] = root
          for (i = 1; i <= n; i++) { print q[i]; m = split(kids[q[i]], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j] } }'
}

# utime + stime, in clock ticks, of the process tree (all threads).
cpu_ticks() {
  local sum=0 p t
  for p in $(tree_pids "$1"); do
    t=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || t=0
    sum=$((sum + ${t:-0}))
  done
  echo "$sum"
}
TICK_HZ=$(getconf CLK_TCK)

# PSS in KiB of the process tree.
pss_kib() {
  local sum=0 p v
  for p in $(tree_pids "$1"); do
    v=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null) || v=0
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

now_ns() { date +%s%N; }

# ---- certificate, shim, upstream -------------------------------------------

TLS=$WORK/tls
mkdir -p "$TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$TLS/tls.key" -out "$TLS/tls.crt" 2>/dev/null
cat "$TLS/tls.crt" "$TLS/tls.key" >"$TLS/haproxy.pem"

# Drops the TLS session wrk (SSL_clear on reconnect) and h2load
# (SSL_set_session) would resume, so each new connection is a full handshake.
cat >"$WORK/no_resume.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
static int (*real_set_session)(SSL *, SSL_SESSION *);
static int (*real_clear)(SSL *);
int SSL_set_session(SSL *s, SSL_SESSION *session) {
  (void)session;
  if (!real_set_session) real_set_session = dlsym(RTLD_NEXT, "SSL_set_session");
  return real_set_session(s, 0);
}
int SSL_clear(SSL *s) {
  if (!real_clear) real_clear = dlsym(RTLD_NEXT, "SSL_clear");
  int r = real_clear(s);
  SSL_set_session(s, 0);
  return r;
}
EOF
cc -shared -fPIC -O2 -o "$WORK/no_resume.so" "$WORK/no_resume.c" -ldl
SHIM=$WORK/no_resume.so

cat >"$WORK/post4k.lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"
EOF
HALF4K=$(head -c 2048 /dev/zero | tr '\0' 'y')

nginx_common() { # nginx_common DIR: the top of every nginx config here
  mkdir -p "$1/tmp"
  cat <<EOF
daemon off;
$( ((EUID == 0)) && echo "user root;")
pid $1/nginx.pid;
error_log $1/error.log warn;
EOF
}
nginx_http_common() {
  cat <<EOF
  access_log off;
  client_body_temp_path $1/tmp/body;
  proxy_temp_path $1/tmp/proxy;
  fastcgi_temp_path $1/tmp/fastcgi;
  uwsgi_temp_path $1/tmp/uwsgi;
  scgi_temp_path $1/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
EOF
}

UP=$(free_port)
UP_H2C=$(free_port)
mkdir -p "$WORK/upstream"
{
  nginx_common "$WORK/upstream"
  cat <<EOF
master_process off;
worker_processes 1;
events { worker_connections 8192; }
http {
$(nginx_http_common "$WORK/upstream")
  server {
    listen 127.0.0.1:$UP reuseport backlog=4096;
    listen 127.0.0.1:$UP_H2C http2 backlog=4096;
    location / { return 200 "ok\n"; }
    # nginx caps one config parameter at 4 KiB: the body is two halves.
    location = /4k { set \$a "$HALF4K"; set \$b "$HALF4K"; return 200 "\$a\$b"; }
  }
}
EOF
} >"$WORK/upstream/nginx.conf"
taskset -c 0 nginx -e "$WORK/upstream/error.log" -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" \
  >"$WORK/upstream/stdout.log" 2>&1 &
UP_PID=$!
PIDS+=("$UP_PID")
wait_port "$UP" || { cat "$WORK/upstream/stdout.log" "$WORK/upstream/error.log" >&2; exit 1; }

# ---- proxies ---------------------------------------------------------------
# start_KIND NAME PORT MODE starts one instance pinned to core 1 and sets
# LAST_PID. MODE is http or tcp.

launch() { # launch NAME CMD...
  local name=$1
  shift
  taskset -c 1 "$@" >"$WORK/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
}

start_certweave() {
  local -a mode=()
  [[ $3 == tcp ]] && mode=(--mode tcp)
  local bin=$CERTWEAVE_BIN
  [[ $1 == certweave-base* ]] && bin=$BASELINE_BIN
  launch "$1" env RUST_LOG=warn "$bin" proxy --listen "127.0.0.1:$2" --upstream "127.0.0.1:$UP" \
    "${mode[@]}" --cert-dir "$TLS" --health-addr "127.0.0.1:$(free_port)"
}

start_haproxy() {
  local cfg=$WORK/$1.haproxy.cfg
  if [[ $3 == http ]]; then
    cat >"$cfg" <<EOF
global
  nbthread 1
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe
  bind 127.0.0.1:$2 ssl crt $TLS/haproxy.pem alpn h2,http/1.1
  default_backend app
backend app
  http-reuse always
  server app 127.0.0.1:$UP
EOF
  else
    cat >"$cfg" <<EOF
global
  nbthread 1
  maxconn 8000
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$2 ssl crt $TLS/haproxy.pem
  default_backend app
backend app
  server app 127.0.0.1:$UP
EOF
  fi
  launch "$1" haproxy -db -f "$cfg"
}

start_nginx() {
  local dir=$WORK/$1
  mkdir -p "$dir"
  {
    if [[ $3 == tcp ]]; then echo "load_module $NGINX_STREAM_MODULE;"; fi
    nginx_common "$dir"
    echo "worker_processes 1;"
    echo "events { worker_connections 8192; }"
    if [[ $3 == http ]]; then
      cat <<EOF
http {
$(nginx_http_common "$dir")
  upstream app {
    server 127.0.0.1:$UP;
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
  }
  server {
    listen 127.0.0.1:$2 ssl http2;
    ssl_certificate $TLS/tls.crt;
    ssl_certificate_key $TLS/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
    else
      cat <<EOF
stream {
  server {
    listen 127.0.0.1:$2 ssl;
    ssl_certificate $TLS/tls.crt;
    ssl_certificate_key $TLS/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    proxy_pass 127.0.0.1:$UP;
  }
}
EOF
    fi
  } >"$dir/nginx.conf"
  launch "$1" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf"
}

start_ghostunnel() {
  launch "$1" "$GHOSTUNNEL" server --listen "127.0.0.1:$2" --target "127.0.0.1:$UP" \
    --cert "$TLS/tls.crt" --key "$TLS/tls.key" --disable-authentication --quiet=all
}

# Waits until the instance answers "ok" over TLS (one request served).
ready() { # ready NAME PORT PID
  for _ in $(seq 100); do
    if [[ $(curl -sk --http1.1 --max-time 2 "https://127.0.0.1:$2/" 2>/dev/null) == ok ]]; then return 0; fi
    kill -0 "$3" 2>/dev/null || break
    sleep 0.1
  done
  echo "error: $1 does not answer on 127.0.0.1:$2; its log:" >&2
  tail -20 "$WORK/$1.log" >&2
  exit 1
}

# Every instance under load: name -> kind, mode, port, pid.
declare -A KIND MODE PORT PID
HTTP_SET=(direct certweave haproxy nginx)
TCP_SET=(direct-tcp certweave-tcp haproxy-tcp)
[[ -f $NGINX_STREAM_MODULE ]] && TCP_SET+=(nginx-tcp) ||
  echo "skipping nginx in TCP mode: no stream module ($NGINX_STREAM_MODULE; apt-get install libnginx-mod-stream)" >&2
if [[ -n $GHOSTUNNEL ]]; then
  HTTP_SET+=(ghostunnel)
  TCP_SET+=(ghostunnel-tcp)
fi
if [[ -n ${BASELINE_BIN:-} ]]; then
  [[ -x $BASELINE_BIN ]] || { echo "error: BASELINE_BIN $BASELINE_BIN is not an executable" >&2; exit 2; }
  HTTP_SET+=(certweave-base)
  TCP_SET+=(certweave-base-tcp)
fi

start_instance() { # start_instance NAME KIND MODE
  local port
  port=$(free_port)
  "start_$2" "$1" "$port" "$3"
  KIND[$1]=$2 MODE[$1]=$3 PORT[$1]=$port PID[$1]=$LAST_PID
  ready "$1" "$port" "$LAST_PID"
}
for name in certweave certweave-base haproxy nginx; do
  [[ " ${HTTP_SET[*]} " == *" $name "* ]] || continue
  start_instance "$name" "${name%-base}" http
done
for name in certweave certweave-base haproxy nginx; do
  if [[ " ${TCP_SET[*]} " == *" $name-tcp "* ]]; then start_instance "$name-tcp" "${name%-base}" tcp; fi
done
if [[ -n $GHOSTUNNEL ]]; then
  start_instance ghostunnel ghostunnel tcp
  # ghostunnel has only one mode; the TCP rows use the same instance.
  KIND[ghostunnel-tcp]=ghostunnel MODE[ghostunnel-tcp]=tcp
  PORT[ghostunnel-tcp]=${PORT[ghostunnel]} PID[ghostunnel-tcp]=${PID[ghostunnel]}
fi

echo "== $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start; DURATION=${DURATION}s per point"
if awk '{ exit !($1 > 0.5) }' /proc/loadavg; then
  echo "   warning: other processes are using the cores (load average above 0.5 before the run);"
  echo "   latency percentiles, the 1-connection rows and CPU % will be noisy"
fi
echo "   certweave $("$CERTWEAVE_BIN" --version 2>/dev/null | head -1) ($CERTWEAVE_BIN)"
[[ -n ${BASELINE_BIN:-} ]] && echo "   certweave-base $("$BASELINE_BIN" --version 2>/dev/null | head -1) ($BASELINE_BIN)"
echo "   $(haproxy -v | head -1 | cut -d' ' -f1-3); $(nginx -v 2>&1 | cut -d' ' -f3)${GHOSTUNNEL:+; ghostunnel ($GHOSTUNNEL)}"
echo "   negotiated with an OpenSSL 3 client (as wrk/h2load use):"
for name in "${HTTP_SET[@]}" certweave-tcp haproxy-tcp nginx-tcp; do
  [[ $name == direct* || -z ${PORT[$name]:-} ]] && continue
  hs=$(openssl s_client -connect "127.0.0.1:${PORT[$name]}" -alpn h2,http/1.1 </dev/null 2>/dev/null |
    awk '/^New, / {v = $2; c = $5} /^Server Temp Key:/ {k = $4} /^ALPN protocol:/ {a = $3}
         END { sub(",", "", v); sub(",", "", k); printf "%s %s %s alpn=%s", v, c, k, (a == "" ? "none" : a) }')
  printf '     %-15s %s\n' "$name" "$hs"
done

# ---- load ------------------------------------------------------------------

# url_for NAME PROTO PATH
url_for() {
  case $1 in
    direct | direct-tcp) [[ $2 == h2 ]] && echo "http://127.0.0.1:$UP_H2C$3" || echo "http://127.0.0.1:$UP$3" ;;
    *) echo "https://127.0.0.1:${PORT[$1]}$3" ;;
  esac
}

# run_load PROTO CONNS CONN_MODE BODY URL SECONDS OUT: the load generator,
# pinned to core 0. CONN_MODE: ka, full (new connection, no resumption) or
# resumed (new connection, resumption allowed). BODY: get or post4k.
run_load() {
  local proto=$1 conns=$2 cmode=$3 body=$4 url=$5 secs=$6 out=$7
  local -a pre=(env) cmd
  [[ $cmode == full ]] && pre+=("LD_PRELOAD=$SHIM")
  if [[ $proto == h2 ]]; then
    rm -f "$out.log"
    cmd=(h2load -t1 -c"$conns" -m1 -D"$secs" --log-file="$out.log" "$url")
  else
    cmd=(wrk -t1 -c"$conns" -d"${secs}s" --latency --timeout 10s)
    [[ $cmode != ka ]] && cmd+=(-H "Connection: close")
    [[ $body == post4k ]] && cmd+=(-s "$WORK/post4k.lua")
    cmd+=("$url")
  fi
  "${pre[@]}" timeout $((secs + 30)) taskset -c 0 "${cmd[@]}" >"$out" 2>&1 || true
}

# to_ms VALUE: wrk prints 850.00us / 12.34ms / 1.20s / 2.00m.
to_ms() {
  awk -v v="$1" 'BEGIN { n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

# parse OUT PROTO: prints "rps requests p50_ms p99_ms errors".
parse() {
  local out=$1 proto=$2
  if [[ $proto == h2 ]]; then
    local rps done_ok failed bad p50 p99
    rps=$(awk '/^finished in/ {print $4}' "$out")
    done_ok=$(awk '/^requests:/ {print $8}' "$out")
    failed=$(awk '/^requests:/ {print $10}' "$out")
    bad=$(awk '/^status codes:/ {print $5 + $7 + $9}' "$out")
    read -r p50 p99 < <(awk -F'\t' '$2 == 200 {print $3}' "$out.log" 2>/dev/null | sort -n |
      awk '{ v[NR] = $1 } END { if (NR == 0) print "nan nan"; else printf "%.3f %.3f\n", v[int(NR * 0.5) + (NR * 0.5 > int(NR * 0.5))] / 1000, v[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))] / 1000 }')
    echo "${rps:-0} ${done_ok:-0} $p50 $p99 $((${failed:-0} + ${bad:-0}))"
  else
    local rps n p50 p99 errors
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    n=$(awk '/ requests in / {print $1}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    errors=$(awk '/Non-2xx or 3xx responses:/ {e += $NF}
                  /Socket errors:/ { gsub(",", ""); e += $4 + $6 + $8 + $10 }
                  END { print e + 0 }' "$out")
    echo "${rps:-0} ${n:-0} $p50 $p99 $errors"
  fi
}

RESULTS=$WORK/results.tsv
: >"$RESULTS"

# point ROW PROTO CONNS CONN_MODE BODY PATH NAME: warm-up, then one
# measured run; appends "row name rps p50 p99 cpu_us cpu_pct errors".
point() {
  local row=$1 proto=$2 conns=$3 cmode=$4 body=$5 path=$6 name=$7 url out
  url=$(url_for "$name" "$proto" "$path")
  out=$WORK/load.$row.$name
  run_load "$proto" "$conns" "$cmode" "$body" "$url" 1 "$out.warmup"
  local pid=${PID[$name]:-} t0 t1 c0=0 c1=0
  [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
  t0=$(now_ns)
  run_load "$proto" "$conns" "$cmode" "$body" "$url" "$DURATION" "$out"
  t1=$(now_ns)
  [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
  local rps n p50 p99 errors
  read -r rps n p50 p99 errors < <(parse "$out" "$proto")
  if [[ ${n:-0} == 0 ]]; then
    # Seen once on a loaded machine: every connection stalled for the whole
    # run. Say so, and measure once more after a pause.
    echo "   $row $name: no requests completed; retrying once. Load output:" >&2
    sed 's/^/     /' "$out" | tail -8 >&2
    sleep 2
    [[ -n $pid ]] && c0=$(cpu_ticks "$pid")
    t0=$(now_ns)
    run_load "$proto" "$conns" "$cmode" "$body" "$url" "$DURATION" "$out"
    t1=$(now_ns)
    [[ -n $pid ]] && c1=$(cpu_ticks "$pid")
    read -r rps n p50 p99 errors < <(parse "$out" "$proto")
  fi
  awk -v row="$row" -v name="$name" -v rps="$rps" -v n="$n" -v p50="$p50" -v p99="$p99" \
    -v ticks=$((c1 - c0)) -v hz="$TICK_HZ" -v ns=$((t1 - t0)) -v e="$errors" -v direct="$([[ -z $pid ]] && echo 1 || echo 0)" \
    'BEGIN { cpu = (direct || n == 0) ? "-" : sprintf("%.1f", ticks / hz * 1e6 / n)
             pct = direct ? "-" : sprintf("%.0f", ticks / hz / (ns / 1e9) * 100)
             printf "%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%d\n", row, name, rps, p50, p99, cpu, pct, e }' >>"$RESULTS"
}

print_row() { # print_row ROW TITLE
  echo
  echo "== $2"
  printf '   %-15s %9s %8s %8s %8s %8s %10s %6s %6s\n' "" "req/s" "p50 ms" "p99 ms" "+p50" "+p99" "CPU us/req" "CPU %" "errors"
  awk -F'\t' -v row="$1" '
    $1 == row && $2 ~ /^direct/ { d50 = $4; d99 = $5 }
    $1 == row { lines[++n] = $0 }
    END { for (i = 1; i <= n; i++) { split(lines[i], f, "\t")
            a50 = (f[2] ~ /^direct/) ? "" : sprintf("%+.2f", f[4] - d50)
            a99 = (f[2] ~ /^direct/) ? "" : sprintf("%+.2f", f[5] - d99)
            printf "   %-15s %9d %8.2f %8.2f %8s %8s %10s %6s %6s\n", f[2], f[3], f[4], f[5], a50, a99, f[6], f[7], f[8] } }' "$RESULTS"
}

ROWS=(
  "h1-ka-1|h1|1|ka|get|/|http|HTTP/1.1 keep-alive, 1 connection (wrk -c1, GET /)"
  "h1-ka-100|h1|100|ka|get|/|http|HTTP/1.1 keep-alive, 100 connections (wrk -c100, GET /)"
  "h2-ka-1|h2|1|ka|get|/|http|HTTP/2 keep-alive, 1 connection (h2load -c1 -m1, GET /)"
  "h2-ka-100|h2|100|ka|get|/|http|HTTP/2 keep-alive, 100 connections (h2load -c100 -m1, GET /)"
  "h1-new-1|h1|1|full|get|/|http|HTTP/1.1 new connection per request, full handshakes, 1 connection (req/s = handshakes/s)"
  "h1-new-100|h1|100|full|get|/|http|HTTP/1.1 new connection per request, full handshakes, 100 connections (req/s = handshakes/s)"
  "h1-resumed-100|h1|100|resumed|get|/|http|HTTP/1.1 new connection per request, TLS resumption allowed, 100 connections"
  "tcp-ka-100|h1|100|ka|post4k|/4k|tcp|TCP mode, 100 persistent connections, 4 KiB up + 4 KiB down per exchange"
  "tcp-new-100|h1|100|full|post4k|/4k|tcp|TCP mode, new connection + full handshake per 4 KiB exchange, 100 connections"
)

for spec in "${ROWS[@]}"; do
  IFS='|' read -r row proto conns cmode body path set title <<<"$spec"
  [[ -z ${ONLY:-} || ",$ONLY," == *",$row,"* ]] || continue
  if [[ $set == http ]]; then targets=("${HTTP_SET[@]}"); else targets=("${TCP_SET[@]}"); fi
  for name in "${targets[@]}"; do
    # ghostunnel negotiates no ALPN: no HTTP/2 through it.
    [[ $proto == h2 && ${KIND[$name]:-} == ghostunnel ]] && continue
    point "$row" "$proto" "$conns" "$cmode" "$body" "$path" "$name"
  done
  print_row "$row" "$title"
done

# ---- memory ----------------------------------------------------------------

echo
echo "== memory per sidecar (HTTP-mode instance, idle after one request): PSS in MiB"
MEM=$WORK/memory.tsv
: >"$MEM"
mem_kinds=(certweave haproxy nginx)
[[ -n $GHOSTUNNEL ]] && mem_kinds+=(ghostunnel)
for kind in "${mem_kinds[@]}"; do
  mode=http
  [[ $kind == ghostunnel ]] && mode=tcp
  start_instance "mem-$kind-1" "$kind" "$mode"
  sleep 1
  alone=$(pss_kib "${PID[mem-$kind-1]}")
  for i in 2 3 4; do start_instance "mem-$kind-$i" "$kind" "$mode"; done
  sleep 1
  four=$(pss_kib "${PID[mem-$kind-1]}")
  loaded=$(pss_kib "${PID[$kind]}")
  for i in 1 2 3 4; do kill "${PID[mem-$kind-$i]}" 2>/dev/null || true; done
  for i in 1 2 3 4; do wait "${PID[mem-$kind-$i]}" 2>/dev/null || true; done
  printf '%s\t%s\t%s\t%s\n' "$kind" "$alone" "$four" "$loaded" >>"$MEM"
done
printf '   %-15s %10s %14s %18s\n' "" "alone" "1 of 4 running" "after the loads"
awk -F'\t' '{ printf "   %-15s %10.1f %14.1f %18.1f\n", $1, $2 / 1024, $3 / 1024, $4 / 1024 }' "$MEM"

# ---- summary ---------------------------------------------------------------

echo
echo "== summary: certweave / best peer (req/s: higher is better; CPU/req, PSS: lower is better)"
printf '   %-15s %10s %-28s %8s %10s %-28s %7s' "" "req/s" "  best peer" "ratio" "CPU us/req" "  best peer" "ratio"
[[ -n ${BASELINE_BIN:-} ]] && printf '  %s' "vs baseline: req/s, CPU/req"
echo
awk -F'\t' '
  function cw_name(row) { return row ~ /^tcp/ ? "certweave-tcp" : "certweave" }
  function base_name(row) { return row ~ /^tcp/ ? "certweave-base-tcp" : "certweave-base" }
  { rows[$1] = 1; order[$1] = order[$1] ? order[$1] : ++nrows; rowname[order[$1]] = $1
    if ($2 ~ /^direct/) next
    if ($2 == cw_name($1)) { cw_rps[$1] = $3; cw_cpu[$1] = $6; cw_pct[$1] = $7; next }
    if ($2 == base_name($1)) { base_rps[$1] = $3; base_cpu[$1] = $6; next }
    if (!($1 in best_rps) || $3 > best_rps[$1]) { best_rps[$1] = $3; best_rps_n[$1] = $2 }
    if ($6 != "-" && (!($1 in best_cpu) || $6 + 0 < best_cpu[$1] + 0)) { best_cpu[$1] = $6; best_cpu_n[$1] = $2 } }
  END {
    for (i = 1; i <= nrows; i++) { r = rowname[i]
      rr = best_rps[r] > 0 ? cw_rps[r] / best_rps[r] : 0
      cr = best_cpu[r] > 0 ? cw_cpu[r] / best_cpu[r] : 0
      mark = (cw_pct[r] + 0 < 90) ? "*" : " "; if (mark == "*") nstar++
      printf "   %-15s %10d   %-26s %6.2fx%s %10s   %-26s %6.2fx", r, cw_rps[r], sprintf("%s %d", best_rps_n[r], best_rps[r]), rr, mark,
        cw_cpu[r], sprintf("%s %s", best_cpu_n[r], best_cpu[r]), cr
      if (base_rps[r] > 0) printf "  %6.2fx %6.2fx", cw_rps[r] / base_rps[r], (base_cpu[r] > 0 ? cw_cpu[r] / base_cpu[r] : 0)
      printf "\n"
      kind = (r ~ /new|resumed/) ? "hs" : "rps"
      if (kind == "rps") { nr++; if (rr >= 1.0) okr++; if (!wr || rr < wrv) { wr = r; wrv = rr } }
      else { nh++; if (rr >= 1.0) okh++; if (!wh || rr < whv) { wh = r; whv = rr } }
      nc++; if (cr <= 1.0) okc++; if (!wc || cr > wcv) { wc = r; wcv = cr } }
    if (nstar) printf "   * certweave used under 90%% of its core there: the load generator or upstream on core 0\n     set the pace (or latency did, with 1 connection), so CPU/request is the comparison that holds\n"
    printf "\n   targets:\n"
    printf "   requests/s   >= 1.0x best peer: %s (%d of %d keep-alive rows; worst %s %.2fx)\n", (okr == nr ? "met" : "MISSED"), okr, nr, wr, wrv
    printf "   CPU/request  <= best peer:      %s (%d of %d rows; worst %s %.2fx)\n", (okc == nc ? "met" : "MISSED"), okc, nc, wc, wcv
    printf "   handshakes/s >= 1.0x best peer: %s (%d of %d new-connection rows; worst %s %.2fx)\n", (okh == nh ? "met" : "MISSED"), okh, nh, wh, whv
  }' "$RESULTS"
awk -F'\t' '
  { alone[$1] = $2; four[$1] = $3 }
  END { r1 = alone["certweave"] / alone["nginx"]; r4 = four["certweave"] / four["nginx"]
        best = ""; for (k in four) if (k != "certweave" && (best == "" || four[k] < four[best])) best = k
        printf "   PSS/sidecar  <= nginx:          %s (1 of 4 running: certweave %.1f MiB, nginx %.1f MiB, %.2fx; alone %.2fx; best peer %s %.1f MiB, %.2fx)\n",
          (r4 <= 1.0 ? "met" : "MISSED"), four["certweave"] / 1024, four["nginx"] / 1024, r4, r1, best, four[best] / 1024, four["certweave"] / four[best] }' "$MEM"
echo
echo "   load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; CPU % is of the proxy's one core (near 100 = proxy-bound)"
