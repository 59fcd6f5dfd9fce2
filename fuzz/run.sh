#!/usr/bin/env bash
# Runs every fuzz target (or the ones named as arguments) for a fixed number
# of executions and prints what each run did.
#
#   bash fuzz/run.sh                      # every target, 100000 runs each
#   RUNS=20000 bash fuzz/run.sh annotations proxy_headers
#
# Each target starts from seeds/<target> (read only) and its working corpus
# corpus/<target> (gitignored, grows from run to run), with certweave.dict.
# libFuzzer's output goes to logs/<target>.log, crash inputs to
# artifacts/<target>/.
#
# Environment:
#   RUNS       executions per target (default 100000)
#   TIMEOUT    seconds one input may take before it counts as a hang (default 60)
#   TOOLCHAIN  auto (default): the active toolchain, with RUSTC_BOOTSTRAP=1
#              when it is not a nightly; nightly: `cargo +nightly`, if that
#              toolchain is installed
#   NICE       niceness of the builds and runs (default 10)
#
# Exits non-zero when a target crashed (or its run failed).

set -euo pipefail

cd "$(dirname "$0")"

RUNS=${RUNS:-100000}
TIMEOUT=${TIMEOUT:-60}
TOOLCHAIN=${TOOLCHAIN:-auto}
NICE=${NICE:-10}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed; installing it" >&2
    cargo install cargo-fuzz --locked
fi

# How cargo is called: the -Z flags cargo-fuzz passes need a nightly, or
# RUSTC_BOOTSTRAP=1 on a stable toolchain.
cargo_cmd=(cargo)
if [[ $TOOLCHAIN == nightly ]] && rustc +nightly --version >/dev/null 2>&1; then
    cargo_cmd=(cargo +nightly)
    rustc_version=$(rustc +nightly --version)
else
    if [[ $TOOLCHAIN == nightly ]]; then
        echo "no nightly toolchain; using the active one with RUSTC_BOOTSTRAP=1" >&2
    fi
    rustc_version=$(rustc --version)
    if [[ $rustc_version != *nightly* ]]; then
        export RUSTC_BOOTSTRAP=1
    fi
fi
fuzz() {
    nice -n "$NICE" "${cargo_cmd[@]}" fuzz "$@"
}

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(fuzz list)
fi

echo "building ${targets[*]} with $rustc_version${RUSTC_BOOTSTRAP:+ (RUSTC_BOOTSTRAP=1)}" >&2
for target in "${targets[@]}"; do
    fuzz build "$target"
done

# The crash, leak, hang and out-of-memory inputs libFuzzer wrote for $1.
artifacts() {
    find "artifacts/$1" -maxdepth 1 -type f \
        \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
        2>/dev/null | sort
}

mkdir -p logs
failed=0
rows=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="logs/$target.log"
    before=$(artifacts "$target")
    echo "fuzzing $target for $RUNS runs (log: fuzz/$log)" >&2
    start=$SECONDS
    status=0
    fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -dict=certweave.dict -runs="$RUNS" -timeout="$TIMEOUT" \
        >"$log" 2>&1 || status=$?
    elapsed=$((SECONDS - start))

    # The last stats line: `#N DONE cov: X ft: Y corp: Z/...` after a full
    # run, the last `#N NEW`/`REDUCE`/`pulse` line before a crash.
    stats=$(grep -aE '^#[0-9]+[[:space:]]' "$log" | tail -n 1 || true)
    execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$stats")
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$stats")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$stats")
    corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$stats")
    new=$(comm -13 <(echo "$before") <(artifacts "$target") | grep -c . || true)

    if ((status != 0 || new > 0)); then
        failed=1
        echo "$target: exit status $status, $new new input(s) in fuzz/artifacts/$target/" >&2
        comm -13 <(echo "$before") <(artifacts "$target") | sed 's/^/  fuzz\//' >&2
    fi
    if [[ $stats != *DONE* ]]; then
        execs="${execs:-0} (stopped)"
    fi
    rows+=("$target|${execs:--}|${elapsed}s|${corp:--}|${cov:--}|${ft:--}|$new")
done

echo
format='%-18s %-20s %-8s %-8s %-8s %-8s %s\n'
# shellcheck disable=SC2059
printf "$format" target executions time corpus cov ft crashes
for row in "${rows[@]}"; do
    IFS='|' read -r -a cells <<<"$row"
    # shellcheck disable=SC2059
    printf "$format" "${cells[@]}"
done

exit "$failed"
