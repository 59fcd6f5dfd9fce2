#!/usr/bin/env bash
# The figures of "hostile input and faults", each with its goal, in one
# run (about 15 minutes on two cores, more with FUZZ=1):
#
#   1. admission cost for 10k/100k rule hosts, 4k/20k spec.tls entries,
#      10k/100k hosts in one entry and Pod dns-names (goal: linear)
#      — benches/admission.rs
#   2. isolation: a SelfSigned certificate beside ACME validations that
#      hang, in `local` (goal: ≤ 1 s) — tests/local_acme.rs; the controller's
#      figure (60 hanging validations) is printed by the e2e suite, step 1
#   3. nonce storm: 100 certificates with 50% bad nonces in issue, local
#      and the controller (goal: 100/100, 0 duplicate orders, 0 lost)
#      — benches/nonce_storm.sh
#   4. faults: kill -9 during ACME orders and a CA burst, kube-apiserver
#      restart, leader takeover (goal: all Ready, 0 mismatches, 0 issued
#      twice) — benches/faults.sh
#   5. with FUZZ=1: every fuzz target for RUNS executions — fuzz/run.sh
#
#   bash benches/hostile.sh
#
# Needs what each part needs (the e2e assets: bash e2e/assets.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(bash e2e/assets.sh --print)"

echo "== 1. admission cost by size (goal: linear, cost per name flat)"
cargo bench --quiet --bench admission -- --quick none 2>/dev/null | sed -n '/^hostile reviews/,$p'

echo
echo "== 2. isolation in local: 60 hanging validations, --concurrency 2 (goal: ≤ 1 s)"
cargo test --quiet --test local_acme validations_that_hang_do_not_hold_up_local_issuers \
  -- --nocapture 2>&1 | grep -E '^quick issued|test result'
echo "   (the controller's figure, 60 hanging validations and --concurrency 16:"
echo "    cargo test --test e2e, step 1, line 'a SelfSigned Certificate Ready …')"

echo
echo "== 3. nonce storm"
bash benches/nonce_storm.sh 100 2>/dev/null | sed -n '/^ACME with/,$p'

echo
echo "== 4. faults"
bash benches/faults.sh 2>/dev/null | sed -n '/^faults on/,$p'

if [ "${FUZZ:-0}" = 1 ]; then
  echo
  echo "== 5. fuzzing"
  bash fuzz/run.sh
fi
