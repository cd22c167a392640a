#!/usr/bin/env bash
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Builds the cargo-fuzz targets in fuzz/ (AddressSanitizer and debug assertions,
# cargo-fuzz's defaults) and runs each for SECONDS_PER_TARGET (default 30), one
# at a time, on one core. Fails on any crash, leak, timeout or out-of-memory,
# leaving the input in fuzz/artifacts/TARGET/. Prints per target the executions
# and coverage from libFuzzer's final "#N DONE cov: ..." line.
#
# Installs cargo-fuzz if missing. cargo-fuzz passes nightly-only flags
# (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
# The corpus is fuzz/corpus/TARGET: the committed seed-* files plus whatever
# earlier runs found there (git ignores those).
#
# Environment: WSCODEC_CARGO_LOCK=FILE runs every cargo command under
# `flock FILE` (for machines where several builds share the cores);
# FUZZ_ARGS adds libFuzzer flags to every run.
set -euo pipefail
cd "$(dirname "$0")/.."

ALL_TARGETS=(decode message handshake_request handshake_response roundtrip stream decode_chaos proxy_reply h2_request)
seconds=${1:-30}
if [[ $# -gt 0 ]]; then shift; fi
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then targets=("${ALL_TARGETS[@]}"); fi
if ! [[ $seconds =~ ^[0-9]+$ ]] || [[ $seconds -eq 0 ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]   (targets: ${ALL_TARGETS[*]})" >&2
    exit 2
fi

cargo_() {
    if [[ -n ${WSCODEC_CARGO_LOCK:-} ]]; then
        flock "$WSCODEC_CARGO_LOCK" cargo "$@"
    else
        cargo "$@"
    fi
}

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo_ install cargo-fuzz --locked
fi

started=$(date +%s)
echo "== building fuzz targets: ${targets[*]}"
# `cargo fuzz build` takes one target or none (all of them).
build_args=()
if [[ ${#targets[@]} -eq 1 ]]; then build_args=("${targets[0]}"); fi
(cd fuzz && cargo_ fuzz build "${build_args[@]}")
built=$(date +%s)
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=fuzz/target/$triple/release

summary=()
failed=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    log=$(mktemp)
    echo "== fuzzing $t for ${seconds}s"
    # -timeout: one input taking 10 s is a hang; -rss_limit_mb bounds memory
    # (ASan's shadow included); a leak fails the run too.
    # shellcheck disable=SC2086
    if "$bin_dir/$t" "fuzz/corpus/$t" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
        ${FUZZ_ARGS:-} >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
        grep -E "ERROR|panicked|SUMMARY|Test unit written|artifact" "$log" | head -40 || true
        echo "   reproduce: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $t artifacts/$t/<file>)"
    fi
    done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    summary+=("$(printf '%-20s %-6s execs %-10s %s' "$t" "$status" "${execs:-?}" "${done_line:-<no DONE line>}")")
    echo "   ${done_line:-<no DONE line: see $log>}"
    [[ $status == ok ]] && rm -f "$log"
done
finished=$(date +%s)

echo "== fuzzing summary (build $((built - started))s, total $((finished - started))s)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
