#!/usr/bin/env bash
# Short libFuzzer run for the test command: builds the harness with
# -fsanitize=fuzzer,address (--config=fuzz), runs a fixed number of
# executions from a copy of the checked-in corpus (so CI never writes into the
# tree), and reports "N passed, N failed".  FUZZ_RUNS overrides the count.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/sh_check.sh
runs=${FUZZ_RUNS:-50000}
work=$(mktemp -d /tmp/magpool-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
bazel build --config=fuzz //stress:fuzz_api_libfuzzer >"$work/build.log" 2>&1
check "build the libFuzzer harness (--config=fuzz)" test $? -eq 0 || tail -20 "$work/build.log"
cp -r stress/corpus/fuzz_api "$work/corpus"
ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 \
    bazel-bin/stress/fuzz_api_libfuzzer -runs="$runs" -seed=1 -timeout=20 \
    -artifact_prefix="$work/" "$work/corpus" >"$work/fuzz.log" 2>&1
rc=$?
check "libFuzzer: $runs executions from the corpus, no crash or mismatch" test $rc -eq 0 || tail -40 "$work/fuzz.log"
check "libFuzzer: all executions done" grep -q "Done $runs runs" "$work/fuzz.log" || tail -5 "$work/fuzz.log"
check_done
