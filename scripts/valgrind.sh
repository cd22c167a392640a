#!/usr/bin/env bash
# Usage: scripts/valgrind.sh
#
# Runs the library's unit tests and the property tests (tests/proptest.rs,
# which read decoded text through `Utf8Bytes::as_str`, the crate's one unsafe
# block) under valgrind: any invalid read, use of uninitialised memory or
# definite leak fails. Miri is not available on the stable toolchain; the fuzz
# targets cover the same block under AddressSanitizer (scripts/fuzz.sh).
#
# Environment: WSCODEC_CARGO_LOCK=FILE runs cargo under `flock FILE`;
# PROPTEST_CASES (default 256) bounds the property tests, which valgrind
# slows down some fifty times.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_() {
    if [[ -n ${WSCODEC_CARGO_LOCK:-} ]]; then
        flock "$WSCODEC_CARGO_LOCK" cargo "$@"
    else
        cargo "$@"
    fi
}

if ! command -v valgrind >/dev/null; then
    echo "== installing valgrind"
    if [[ $(id -u) -eq 0 ]]; then
        apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
    else
        sudo apt-get update -qq && sudo apt-get install -y -qq valgrind >/dev/null
    fi
fi

# The test executables, from cargo's JSON messages (one per line).
executables() {
    cargo_ test --locked --all-features --no-run --message-format=json "$@" |
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"])
'
}

export PROPTEST_CASES=${PROPTEST_CASES:-256}
status=0
for selection in "--lib" "--test proptest"; do
    # shellcheck disable=SC2086
    mapfile -t bins < <(executables $selection)
    if [[ ${#bins[@]} -ne 1 ]]; then
        echo "expected one test executable for $selection, got: ${bins[*]:-none}" >&2
        exit 1
    fi
    echo "== valgrind $selection: ${bins[0]}"
    if ! valgrind --error-exitcode=1 --leak-check=full --show-leak-kinds=definite \
        --errors-for-leak-kinds=definite \
        --quiet "${bins[0]}" --test-threads=1 -q; then
        status=1
    fi
done
exit $status
