#!/usr/bin/env bash
# certweave's key generation and signing throughput next to OpenSSL's, on
# this machine, in one run:
#
#   bash benches/pki_vs_openssl.sh            # full criterion run (~4 min)
#   QUICK=1 bash benches/pki_vs_openssl.sh    # criterion --quick (~1 min)
#
# - signatures: criterion's `sign_raw/<alg>` (one signature with the key,
#   ring underneath) against `openssl speed -seconds 1` sign/s for the same
#   algorithm; plus certweave's whole-certificate rates (`selfsigned`, `ca`:
#   build, sign, PEM-encode and check the bundle), which have no OpenSSL
#   counterpart in `openssl speed` and are shown for scale;
# - key generation: criterion's `keygen/<alg>` against `openssl genpkey`
#   run N times, with the cost of starting an openssl process (measured with
#   `openssl version`) subtracted, so the figure is OpenSSL's key generation.
#
# Needs openssl and python3 (to read criterion's estimates). Prints a table
# with ratios (certweave / OpenSSL, above 1 means certweave is faster).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v openssl >/dev/null || { echo "openssl is missing: apt-get install openssl" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing: apt-get install python3" >&2; exit 1; }

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
criterion_dir="$target_dir/criterion"

echo "== cargo bench --bench pki" >&2
extra=()
[ "${QUICK:-}" = 1 ] && extra=(--quick)
cargo bench --bench pki -- --noplot "${extra[@]}" >&2

echo "== openssl speed" >&2
speed=$(openssl speed -seconds 1 ecdsap256 ecdsap384 rsa2048 rsa4096 ed25519 2>/dev/null)

# Mean wall time (seconds) of `openssl ARGS` over N runs.
per_run() {
  local n=$1; shift
  local start end
  start=$(date +%s.%N)
  for _ in $(seq "$n"); do openssl "$@" >/dev/null 2>&1; done
  end=$(date +%s.%N)
  python3 -c "print(($end - $start) / $n)"
}

echo "== openssl genpkey" >&2
spawn=$(per_run 50 version)
gen_p256=$(per_run 50 genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256)
gen_p384=$(per_run 50 genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384)
gen_ed=$(per_run 50 genpkey -algorithm ed25519)
gen_rsa2048=$(per_run 20 genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048)
gen_rsa4096=$(per_run 6 genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096)

CRITERION_DIR="$criterion_dir" SPEED="$speed" SPAWN="$spawn" \
GEN_P256="$gen_p256" GEN_P384="$gen_p384" GEN_ED="$gen_ed" \
GEN_RSA2048="$gen_rsa2048" GEN_RSA4096="$gen_rsa4096" python3 - <<'EOF'
import json, os, re

crit = os.environ["CRITERION_DIR"]
speed = os.environ["SPEED"]
spawn = float(os.environ["SPAWN"])

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
    ("rsa4096", r"^rsa 4096 bits", "GEN_RSA4096"),
    ("ed25519", r"EdDSA \(Ed25519\)", "GEN_ED"),
]

print()
print("Signatures per second (one signature; certweave = ring via rcgen)")
print(f"{'algorithm':<12}{'certweave':>12}{'openssl':>12}{'ratio':>8}   {'selfsigned cert/s':>18}{'CA cert/s':>12}")
for alg, pattern, _ in algs:
    ours = 1 / mean_seconds("sign_raw", alg)
    theirs = openssl_sign_per_s(pattern)
    ss = 1 / mean_seconds("selfsigned", alg)
    ca = 1 / mean_seconds("ca", alg)
    print(f"{alg:<12}{ours:>12.0f}{theirs:>12.0f}{ours / theirs:>8.2f}   {ss:>18.0f}{ca:>12.0f}")

print()
print(f"Key generation, ms per key (openssl genpkey minus {spawn * 1e3:.2f} ms process start)")
print(f"{'algorithm':<12}{'certweave':>12}{'openssl':>12}{'ratio':>8}")
for alg, _, env in algs:
    ours = mean_seconds("keygen", alg) * 1e3
    theirs = max(float(os.environ[env]) - spawn, 1e-6) * 1e3
    print(f"{alg:<12}{ours:>12.3f}{theirs:>12.3f}{theirs / ours:>8.2f}")
print()
print("ratio = certweave throughput / openssl throughput (above 1: certweave is faster)")
EOF
