#!/usr/bin/env bash
# certweave's key generation and signing throughput next to OpenSSL's, on
# this machine, in one run:
#
#   bash benches/pki_vs_openssl.sh            # full criterion run (~4 min)
#   QUICK=1 bash benches/pki_vs_openssl.sh    # criterion --quick (~1 min)
#   REUSE=1 bash benches/pki_vs_openssl.sh    # keep the last criterion results
#   ALTERNATIVES=1 bash benches/pki_vs_openssl.sh
#       # adds the Rust RSA generators certweave could use instead of
#       # AWS-LC (benches/rsa_keygen_alternatives, its own workspace: about
#       # 1.5 min to build once, then 30 s or so per key size)
#
# - signatures: criterion's `sign_raw/<alg>` (one signature with the key,
#   ring underneath) against `openssl speed -seconds 1` sign/s for the same
#   algorithm; plus certweave's whole-certificate rates (`selfsigned`, `ca`:
#   build, sign, PEM-encode and check the bundle), which have no OpenSSL
#   counterpart in `openssl speed` and are shown for scale;
# - key generation: criterion's `keygen/<alg>` against OpenSSL's
#   EVP_PKEY_generate in-process (a small C program built here against the
#   system libcrypto, the library `openssl speed` uses; OpenSSL 3.0's
#   `openssl speed` has no key generation test). Without a C compiler and
#   libssl-dev it falls back to timing `openssl genpkey` runs minus
#   `openssl pkey` runs on a key of the same kind, which for the fast
#   algorithms is a small difference of two large numbers: read those rows
#   as orders of magnitude only.
#
# - RSA against Go's crypto/rsa too (benches/go_rsa, standard library only,
#   built with the machine's Go when there is one), and against the
#   pure-Rust `rsa` crate certweave generated RSA keys with before AWS-LC
#   (criterion's `keygen_portable/rsa2048`).
#
# Needs openssl and python3 (to read criterion's estimates). Prints tables
# with ratios (certweave / peer, above 1 means certweave is faster).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v openssl >/dev/null || { echo "openssl is missing: apt-get install openssl" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing: apt-get install python3" >&2; exit 1; }

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
criterion_dir="$target_dir/criterion"

echo "== cargo bench --bench pki" >&2
extra=()
[ "${QUICK:-}" = 1 ] && extra=(--quick)
if [ "${REUSE:-}" = 1 ] && [ -d "$criterion_dir/keygen" ]; then
  echo "   (REUSE=1: using the results in $criterion_dir)" >&2
else
  cargo bench --bench pki -- --noplot "${extra[@]}" >&2
fi

echo "== openssl speed" >&2
speed=$(openssl speed -seconds 1 ecdsap256 ecdsap384 rsa2048 rsa3072 rsa4096 ed25519 2>/dev/null)

# Mean wall time (seconds) of `openssl ARGS` over N runs.
per_run() {
  local n=$1; shift
  local start end
  start=$(date +%s.%N)
  for _ in $(seq "$n"); do openssl "$@" >/dev/null 2>&1; done
  end=$(date +%s.%N)
  python3 -c "print(($end - $start) / $n)"
}

keys=$(mktemp -d)
trap 'rm -rf "$keys"' EXIT
cat >"$keys/keygen.c" <<'C'
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void generate(const char *alg) {
  EVP_PKEY_CTX *ctx;
  EVP_PKEY *key = NULL;
  if (!strncmp(alg, "ecdsa-", 6)) {
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY_keygen_init(ctx);
    EVP_PKEY_CTX_set_group_name(ctx, strcmp(alg, "ecdsa-p256") ? "P-384" : "P-256");
  } else if (!strncmp(alg, "rsa", 3)) {
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY_keygen_init(ctx);
    EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, atoi(alg + 3));
  } else {
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "ED25519", NULL);
    EVP_PKEY_keygen_init(ctx);
  }
  if (EVP_PKEY_generate(ctx, &key) <= 0) {
    fprintf(stderr, "%s: key generation failed\n", alg);
    exit(1);
  }
  EVP_PKEY_free(key);
  EVP_PKEY_CTX_free(ctx);
}

/* Prints "<alg> <seconds per key>" for each argument. */
int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    double budget = strncmp(argv[i], "rsa", 3) ? 1.0 : 8.0;
    int n = 0;
    double start = now();
    do {
      generate(argv[i]);
      n++;
    } while (now() - start < budget || n < 3);
    printf("%s %.9f\n", argv[i], (now() - start) / n);
  }
  return 0;
}
C

if cc -O2 -o "$keys/keygen" "$keys/keygen.c" -lcrypto 2>"$keys/cc.log"; then
  echo "== OpenSSL EVP_PKEY_generate, in process" >&2
  keygen_method="EVP_PKEY_generate in process, system libcrypto"
  gen=$("$keys/keygen" ecdsa-p256 ecdsa-p384 rsa2048 rsa3072 rsa4096 ed25519)
  pick() { awk -v a="$1" '$1 == a { print $2 }' <<<"$gen"; }
  gen_p256=$(pick ecdsa-p256)
  gen_p384=$(pick ecdsa-p384)
  gen_rsa2048=$(pick rsa2048)
  gen_rsa3072=$(pick rsa3072)
  gen_rsa4096=$(pick rsa4096)
  gen_ed=$(pick ed25519)
else
  echo "== no C compiler or libssl-dev ($(head -1 "$keys/cc.log")): timing openssl genpkey runs" >&2
  keygen_method="openssl genpkey minus openssl pkey on such a key: rough"
  # genpkey_cost N NAME GENPKEY-ARGS...: seconds per key, less the cost of
  # starting openssl and loading and writing such a key.
  genpkey_cost() {
    local n=$1 name=$2; shift 2
    openssl genpkey "$@" -out "$keys/$name.pem" 2>/dev/null
    local gen load
    gen=$(per_run "$n" genpkey "$@")
    load=$(per_run "$n" pkey -in "$keys/$name.pem")
    python3 -c "print(max($gen - $load, 1e-6))"
  }
  gen_p256=$(genpkey_cost 60 p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256)
  gen_p384=$(genpkey_cost 60 p384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384)
  gen_ed=$(genpkey_cost 60 ed25519 -algorithm ed25519)
  gen_rsa2048=$(genpkey_cost 20 rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048)
  gen_rsa3072=$(genpkey_cost 10 rsa3072 -algorithm RSA -pkeyopt rsa_keygen_bits:3072)
  gen_rsa4096=$(genpkey_cost 8 rsa4096 -algorithm RSA -pkeyopt rsa_keygen_bits:4096)
fi

go_rsa=""
if command -v go >/dev/null; then
  echo "== Go crypto/rsa ($(go version | cut -d' ' -f3))" >&2
  go_rsa=$(cd benches/go_rsa && go run main.go 2048 3072 4096)
else
  echo "== no go on PATH: the Go columns are left out" >&2
fi

alternatives=""
if [ "${ALTERNATIVES:-}" = 1 ]; then
  echo "== Rust RSA generators: aws-lc-rs, graviola, rsa 0.10 (benches/rsa_keygen_alternatives)" >&2
  alternatives=$(cd benches/rsa_keygen_alternatives && CARGO_TARGET_DIR="$target_dir/rsa-keygen-alternatives" cargo run --release --quiet -- 2048 3072 4096)
fi

CRITERION_DIR="$criterion_dir" SPEED="$speed" KEYGEN_METHOD="$keygen_method" GO_RSA="$go_rsa" ALTERNATIVES="$alternatives" \
GEN_P256="$gen_p256" GEN_P384="$gen_p384" GEN_ED="$gen_ed" \
GEN_RSA2048="$gen_rsa2048" GEN_RSA3072="$gen_rsa3072" GEN_RSA4096="$gen_rsa4096" python3 - <<'EOF'
import json, os, re

crit = os.environ["CRITERION_DIR"]
speed = os.environ["SPEED"]
keygen_method = os.environ["KEYGEN_METHOD"]

def mean_seconds(group, alg):
    path = os.path.join(crit, group, alg, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["mean"]["point_estimate"] / 1e9

def openssl_sign_per_s(pattern):
    for line in speed.splitlines():
        if re.search(pattern, line):
            return float(line.split()[-2])
    raise SystemExit(f"no openssl speed line matches {pattern!r}:\n{speed}")

algs = [
    ("ecdsa-p256", r"ecdsa \(nistp256\)", "GEN_P256"),
    ("ecdsa-p384", r"ecdsa \(nistp384\)", "GEN_P384"),
    ("rsa2048", r"^rsa 2048 bits", "GEN_RSA2048"),
    ("rsa3072", r"^rsa 3072 bits", "GEN_RSA3072"),
    ("rsa4096", r"^rsa 4096 bits", "GEN_RSA4096"),
    ("ed25519", r"EdDSA \(Ed25519\)", "GEN_ED"),
]

go = {}
for line in os.environ.get("GO_RSA", "").splitlines():
    alg, per_key, per_s = line.split()
    go[alg] = (float(per_key), float(per_s))

print()
print("Signatures per second (one signature; certweave = rcgen's backend)")
print(f"{'algorithm':<12}{'certweave':>12}{'openssl':>12}{'ratio':>8}   {'selfsigned cert/s':>18}{'CA cert/s':>12}")
for alg, pattern, _ in algs:
    ours = 1 / mean_seconds("sign_raw", alg)
    theirs = openssl_sign_per_s(pattern)
    ss = 1 / mean_seconds("selfsigned", alg)
    ca = 1 / mean_seconds("ca", alg)
    print(f"{alg:<12}{ours:>12.0f}{theirs:>12.0f}{ours / theirs:>8.2f}   {ss:>18.0f}{ca:>12.0f}")

print()
print(f"Key generation, ms per key (openssl: {keygen_method})")
print(f"{'algorithm':<12}{'certweave':>12}{'openssl':>12}{'ratio':>8}")
for alg, _, env in algs:
    ours = mean_seconds("keygen", alg) * 1e3
    theirs = float(os.environ[env]) * 1e3
    print(f"{alg:<12}{ours:>12.3f}{theirs:>12.3f}{theirs / ours:>8.2f}")
if go:
    print()
    print("RSA against Go's crypto/rsa and the pure-Rust rsa crate (certweave's generator before AWS-LC)")
    print(f"{'algorithm':<12}{'keygen ms':>11}{'go ms':>9}{'ratio':>8}{'sign/s':>10}{'go sign/s':>11}{'ratio':>8}")
    for alg in ("rsa2048", "rsa3072", "rsa4096"):
        if alg not in go:
            continue
        ours_key = mean_seconds("keygen", alg)
        ours_sign = 1 / mean_seconds("sign_raw", alg)
        go_key, go_sign = go[alg]
        print(f"{alg:<12}{ours_key * 1e3:>11.3f}{go_key * 1e3:>9.3f}{go_key / ours_key:>8.2f}{ours_sign:>10.0f}{go_sign:>11.0f}{ours_sign / go_sign:>8.2f}")
for alg in ("rsa2048", "rsa3072", "rsa4096"):
    try:
        ring_rate = 1 / mean_seconds("sign_raw_ring", alg)
        ours = 1 / mean_seconds("sign_raw", alg)
        print(f"{alg} signatures with ring: {ring_rate:.0f}/s; AWS-LC is {ours / ring_rate:.2f}x")
    except FileNotFoundError:
        pass
try:
    portable = mean_seconds("keygen_portable", "rsa2048")
    ours = mean_seconds("keygen", "rsa2048")
    print(f"rsa2048 keygen, pure-Rust rsa crate: {portable * 1e3:.3f} ms per key; AWS-LC is {portable / ours:.2f}x faster")
except FileNotFoundError:
    pass
alternatives = {}
for line in os.environ.get("ALTERNATIVES", "").splitlines():
    alg, generator, per_key = line.split()
    alternatives[(alg, generator)] = float(per_key) * 1e3
if alternatives:
    generators = ["aws-lc-rs", "graviola", "rsa-0.10"]
    print()
    print("RSA key generation in Rust, ms per key (the generators take turns key by key; graviola's")
    print("and rsa's keys are encoded and parsed by AWS-LC, as certweave would take them)")
    print(f"{'algorithm':<12}" + "".join(f"{g:>12}" for g in generators) + f"{'go':>10}")
    for alg in ("rsa2048", "rsa3072", "rsa4096"):
        if (alg, "aws-lc-rs") not in alternatives:
            continue
        row = "".join(f"{alternatives[(alg, g)]:>12.3f}" for g in generators)
        go_ms = f"{go[alg][0] * 1e3:>10.3f}" if alg in go else f"{'-':>10}"
        print(f"{alg:<12}{row}{go_ms}")
    print("side channels: aws-lc-rs generates primes and inverts in constant time; graviola documents")
    print("its RSA key generation as not side-channel safe (e is inverted mod phi in variable time);")
    print("rsa 0.10's prime search (crypto-primes) and Go's isPrime and inverse mod lambda are")
    print("variable-time. certweave keeps AWS-LC: keys are made in clusters other tenants share.")
print()
print("ratio = certweave throughput / peer throughput (above 1: certweave is faster)")
EOF
