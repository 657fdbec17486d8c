#!/usr/bin/env bash
# The README's test command: installs what is missing, then runs
#   1. unit + short stress tests built with clang -O2 (--config=opt: the
#      callers use magpool.h's inline hits)
#   2. the same built with gcc 12 at -O0             (--config=gcc: library
#      calls)
#   3. the same built with gcc 12 at -O2             (gcc's inline hits)
#   4. the same under ThreadSanitizer                (--config=tsan)
#   5. the same under AddressSanitizer + UBSan       (--config=asan)
#   6. install + pkg-config proof, exported-symbol check (tests/install_test.sh)
#   6a. the reference server (examples/kvcache/test.sh, its quick steps:
#      unit and fuzz tests, integration on 127.0.0.1, memccapable -a, the
#      malloc build; the differential test against memcached and the
#      sanitizer load runs are its long steps, run by hand)
#   6b. sanitizers at run time: applications built with -fsanitize=address,
#      leak and thread (clang and gcc) against the installed library
#      (tests/sanitizer_app_test.sh)
#   7. the libFuzzer harness for a fixed number of runs from its corpus
#   8. Valgrind memcheck sees pool objects (a use after free is reported)
#   9. tools/sum_results.py's own test: targets that did not run this time
#      count as failures, whatever stale test.log lies in bazel-testlogs
#      (tests/sum_results_test.py)
#  10. fresh: the whole of this command, less this step, in a new minbase
#      Debian 12 root made with debootstrap (tests/fresh_root.sh), so that a
#      missing install step fails here and not only on a new machine
# and ends with "N passed, N failed" summed over everything; exits non-zero
# on any failure.  Set MAGPOOL_STEPS="clang tsan" (say) to run a subset.
# Bazel suites count a test target that did not run (a build failure) as a
# failure; each step counts at least one failure if it fails at all.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools/setup.sh test || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

all_steps="clang gcc gcc-opt tsan asan install kvcache sanapp fuzz valgrind sums fresh"
# Inside the fresh root, tests/fresh_root.sh sets MAGPOOL_IN_FRESH_ROOT=1:
# the default list is then every step but "fresh" (no root in a root).
if [ -n "${MAGPOOL_IN_FRESH_ROOT:-}" ]; then all_steps=${all_steps/ fresh/}; fi
steps=${MAGPOOL_STEPS:-$all_steps}
total_pass=0
total_fail=0
logdir=$(mktemp -d /tmp/magpool-test.XXXXXX)
start=$(date +%s)

add() { # add PASSED FAILED LABEL
    total_pass=$((total_pass + $1))
    total_fail=$((total_fail + $2))
    printf '== %-10s %5d passed, %d failed   (%ds so far)\n' "$3" "$1" "$2" $(($(date +%s) - start))
}

bazel_suite() { # bazel_suite LABEL FLAGS...
    local label=$1; shift
    local log="$logdir/$label.log"
    echo "== $label: bazel test $* //..."
    bazel test "$@" --test_summary=short //... >"$log" 2>&1
    grep -E "^(//|ERROR|FAIL)" "$log" | grep -v "PASSED" | head -40
    # The test targets //... holds, so that one Bazel did not report (the
    # run died before it said how many it found) counts as a failure.
    bazel query 'tests(//...)' >"$logdir/$label.tests" 2>/dev/null
    read -r p f < <(python3 tools/sum_results.py "$log" "$(bazel info "$@" bazel-testlogs 2>/dev/null)" \
        "$logdir/$label.tests")
    add "$p" "$f" "$label"
}

script_step() { # script_step LABEL COMMAND...
    local label=$1; shift
    local log="$logdir/$label.log"
    echo "== $label: $*"
    "$@" >"$log" 2>&1
    local rc=$?
    local line
    line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$log" | tail -1)
    if [ -n "$line" ]; then
        local p f
        p=$(echo "$line" | awk '{print $1}')
        f=$(echo "$line" | awk '{print $3}')
        [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    elif [ $rc -eq 0 ]; then p=1 f=0; else p=0 f=1; fi
    [ "$f" -ne 0 ] && tail -30 "$log"
    add "$p" "$f" "$label"
}

for s in $steps; do
    case $s in
        clang) bazel_suite clang --config=opt ;;
        gcc) bazel_suite gcc --config=gcc ;;
        gcc-opt) bazel_suite gcc-opt --config=gcc --config=opt ;;
        tsan) bazel_suite tsan --config=tsan ;;
        asan) bazel_suite asan --config=asan ;;
        install) script_step install bash tests/install_test.sh ;;
        sanapp) script_step sanapp bash tests/sanitizer_app_test.sh ;;
        kvcache) script_step kvcache env KV_STEPS="unit fuzz integ capable malloc" bash examples/kvcache/test.sh ;;
        fuzz) script_step fuzz bash stress/run_fuzz.sh ;;
        valgrind) script_step valgrind bash tests/valgrind_test.sh ;;
        sums) script_step sums python3 tests/sum_results_test.py ;;
        fresh) script_step fresh bash tests/fresh_root.sh ;;
        *) echo "unknown step $s"; add 0 1 "$s" ;;
    esac
done
echo "logs in $logdir; wall time $(($(date +%s) - start)) s"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
