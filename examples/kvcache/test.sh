#!/usr/bin/env bash
# kvcache's test command: builds and runs every test, each bounded in time,
# all traffic on 127.0.0.1, and ends with "N passed, N failed".
#   unit      proto_test (parser, every command's reply, eviction, conservation)
#   fuzz      standalone fuzz driver, then a short libFuzzer run (--config=fuzz)
#   integ     integration.py against the -O2 build; clean shutdown (SIGTERM)
#   capable   memccapable -a (libmemcached-tools)
#   diff      difftest.py against Debian's memcached 1.6.18 (DIFF_COUNT, 20000)
#   malloc    the malloc build: integration + memccapable
#   tsan      the server under --config=tsan with a short load: no report
#   asan      the server under --config=asan with a short load: clean
# KV_STEPS="unit diff" runs a subset.  Needs: memcached, libmemcached-tools,
# liburcu-dev (apt-get install -y memcached libmemcached-tools liburcu-dev).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/sh_check.sh
steps=${KV_STEPS:-"unit fuzz integ capable diff malloc tsan asan"}
work=$(mktemp -d /tmp/kvcache-test.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
want() { [[ " $steps " == *" $1 "* ]]; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server BINARY LOGNAME ARGS... -> sets $port and $spid
start_server() {
    local bin=$1 log=$2; shift 2
    port=$(free_port)
    "$bin" -p "$port" -l 127.0.0.1 "$@" 2>"$work/$log.err" &
    spid=$!
    pids+=("$spid")
    for _ in $(seq 50); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),timeout=1)" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
# stop_server NAME: SIGTERM, exit 0 and the "clean" conservation line
stop_server() {
    local name=$1
    kill -TERM "$spid"
    timeout 60 tail --pid="$spid" -f /dev/null
    wait "$spid"
    local rc=$?
    check "$name: clean shutdown (exit 0, every object back in its pool)" \
        bash -c "[ $rc -eq 0 ] && grep -q 'connection objects 0 live: clean' '$work/$name.err'" ||
        cat "$work/$name.err" | tail -20
}

opt_build() {
    bazel build --config=opt //examples/kvcache:kvcache //examples/kvcache:kvcache_malloc >"$work/build.log" 2>&1
}

if want unit; then
    bazel test --config=opt //examples/kvcache:proto_test >"$work/unit.log" 2>&1
    check "proto_test: parser and protocol unit tests" test $? -eq 0 ||
        tail -30 bazel-testlogs/examples/kvcache/proto_test/test.log
    bazel build --config=gcc //examples/kvcache:kvcache //examples/kvcache:kvcache_malloc >"$work/gcc.log" 2>&1
    check "gcc 12 build, -Wall -Wextra -Werror" test $? -eq 0 || tail -20 "$work/gcc.log"
fi

if want fuzz; then
    bazel test --config=opt //examples/kvcache:fuzz_proto >"$work/fuzz.log" 2>&1
    check "fuzz_proto: standalone driver, 3000 inputs, conservation" test $? -eq 0
    if bazel build --config=fuzz //examples/kvcache:fuzz_proto_libfuzzer >"$work/lf.log" 2>&1; then
        mkdir -p "$work/corpus"
        ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 timeout 300 \
            bazel-bin/examples/kvcache/fuzz_proto_libfuzzer -runs="${FUZZ_RUNS:-30000}" -seed=1 \
            -max_len=4096 -artifact_prefix="$work/" "$work/corpus" >"$work/lf.run" 2>&1
        check "libFuzzer (ASan): ${FUZZ_RUNS:-30000} inputs, no crash" test $? -eq 0 || tail -30 "$work/lf.run"
    else
        check "libFuzzer harness builds (--config=fuzz)" false
    fi
fi

if want integ || want capable || want diff || want malloc; then
    opt_build
    check "build --config=opt kvcache and kvcache_malloc" test $? -eq 0 || tail -20 "$work/build.log"
fi
KV=bazel-bin/examples/kvcache/kvcache
KVM=bazel-bin/examples/kvcache/kvcache_malloc

if want integ; then
    start_server "$KV" integ -t 2 -m 32 -c 12000
    timeout 300 python3 examples/kvcache/integration.py --port "$port" --idle "${IDLE_CONNS:-10000}" >"$work/integ.out" 2>&1
    rc=$?
    check "integration.py (magpool build): $(tail -1 "$work/integ.out")" test $rc -eq 0 || cat "$work/integ.out"
    stop_server integ
fi

if want capable; then
    start_server "$KV" capable -t 2 -m 64
    timeout 120 memccapable -a -h 127.0.0.1 -p "$port" >"$work/capable.out" 2>&1
    rc=$?
    npass=$(grep -c '\[pass\]' "$work/capable.out")
    nfail=$(grep -ci '\[fail\]' "$work/capable.out") # memccapable prints [FAIL]
    check "memccapable -a: $npass pass, $nfail fail" bash -c "[ $rc -eq 0 ] && [ $nfail -eq 0 ] && [ $npass -gt 0 ]" ||
        cat "$work/capable.out"
    stop_server capable
fi

if want diff; then
    start_server "$KV" diff -t 2 -m 64
    kvport=$port
    mcport=$(free_port)
    # -o no_lru_maintainer: memcached's segmented LRU bumps an item on its
    # second hit asynchronously, holding a reference until the maintainer
    # thread's next pass (1 ms to 1 s later); an incr/decr inside that window
    # makes a new exact-length item instead of rewriting in place, so the
    # stored length would depend on thread timing (difftest.py).
    memcached -p "$mcport" -l 127.0.0.1 -U 0 -t 2 -m 64 -u root -o no_lru_maintainer &
    mcpid=$!
    pids+=("$mcpid")
    sleep 0.5
    # 20,000 commands take about 10 s; 1,000,000 (the long mode) about 4 min
    # on an idle 2-core machine, 15 min on a loaded one: the bound scales.
    count=${DIFF_COUNT:-20000}
    timeout $((600 + count / 250)) python3 examples/kvcache/difftest.py --kv "$kvport" --mc "$mcport" \
        --count "$count" --seed "${DIFF_SEED:-1}" >"$work/diff.out" 2>&1
    rc=$?
    check "differential vs memcached $(memcached -V | cut -d' ' -f2): $(grep difftest: "$work/diff.out" | cut -c6-)" \
        test $rc -eq 0 || head -40 "$work/diff.out"
    kill "$mcpid"
    stop_server diff
fi

if want malloc; then
    start_server "$KVM" malloc -t 2 -m 32 -c 4000
    timeout 300 python3 examples/kvcache/integration.py --port "$port" --idle 1000 --load-seconds 2 >"$work/malloc.out" 2>&1
    rc=$?
    check "integration.py (malloc build): $(tail -1 "$work/malloc.out")" test $rc -eq 0 || cat "$work/malloc.out"
    timeout 120 memccapable -a -h 127.0.0.1 -p "$port" >"$work/capable-m.out" 2>&1
    check "memccapable -a (malloc build)" test $? -eq 0 || cat "$work/capable-m.out"
    stop_server malloc
fi

# A sanitizer build under a short load: integration.py's load and bad
# clients, then a clean shutdown with no sanitizer report.
san_run() {
    local cfg=$1
    if ! bazel build --config="$cfg" //examples/kvcache:kvcache >"$work/$cfg.build" 2>&1; then
        check "$cfg build" false
        tail -20 "$work/$cfg.build"
        return
    fi
    cp bazel-bin/examples/kvcache/kvcache "$work/kvcache-$cfg"
    export TSAN_OPTIONS="halt_on_error=1:exitcode=66:suppressions=$PWD/examples/kvcache/tsan.supp" ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:exitcode=66"
    export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
    start_server "$work/kvcache-$cfg" "$cfg" -t 2 -m 32 -c 2000
    timeout 300 python3 examples/kvcache/integration.py --port "$port" --idle 500 --load-seconds 3 >"$work/$cfg.out" 2>&1
    rc=$?
    check "$cfg: integration.py under load: $(tail -1 "$work/$cfg.out")" test $rc -eq 0 || cat "$work/$cfg.out"
    stop_server "$cfg"
    check "$cfg: no sanitizer report" bash -c "! grep -q 'Sanitizer\|runtime error' '$work/$cfg.err'" ||
        head -60 "$work/$cfg.err"
    unset TSAN_OPTIONS ASAN_OPTIONS UBSAN_OPTIONS
    bazel build --config=opt //examples/kvcache:kvcache >/dev/null 2>&1 # leave the -O2 binary in bazel-bin
}
want tsan && san_run tsan
want asan && san_run asan

check_done
