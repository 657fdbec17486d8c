#!/usr/bin/env bash
# The README's main command: the thread-scaling benchmark (issue 6).
#
#   ./bench/run.sh [--quick|--full|--callgrind|--server] [bench options...]
#
#   --quick      (default) every contender, 64 B objects, the workload set of
#                quick mode (a few minutes on 2 cores), plus the callgrind
#                instruction counts; table, CSV and plots in bench/out/
#   --full       sizes 16/64/256/2048, every workload and parameter, threads
#                1..64, 5 runs x 100 ms per point (about an hour on 2 cores),
#                then the server benchmark (below)
#   --callgrind  only the instruction counts per alloc and per free
#   --server     only the server benchmark (issue 17, bench/server.py): kvcache
#                on magpool, its malloc build under glibc/jemalloc/tcmalloc/
#                mimalloc (LD_PRELOAD) and memcached, under memcaslap at -t 2
#                and 8, 20 s x 3 per point, + RSS per item; about 17 minutes.
#                bench/out/server.csv, server.txt, server_*.png.  Not in quick
#                mode (it needs 5+ minutes even when shortened).
#                --server-seconds N, --server-reps N: shorter runs to try it;
#                --server-args "...": more options for bench/server.py
#                (`python3 bench/server.py --help`); --no-server: not in --full
#
#   --spread N   the single-thread rows of every magpool API (magpool,
#                magpool-call, kmem_cache, mem_pool, kmalloc) and of three
#                references (floor, tcmalloc, mimalloc) in N separate
#                processes, and the spread max/min of each row across them
#                (issue 16: <= 1.15; bench/spread.py says how it is read);
#                bench/out/spread.txt, spread.csv.  Part of quick (N = 10,
#                5 x 30 ms per point, about 3 minutes) and full (N = 10)
#                mode; --spread 0 skips it.  `--only spread` runs only it.
#
# Quick and full mode end with the memory workload "idle" (issue 15: T idle
# threads x C caches, RSS held after shrink / a reap interval / destroy;
# bench/idle.c), its own CSV and table: bench/out/idle.csv, idle.txt, plots
# idle_<mode>_c<C>.png.  `--only idle` runs only it, `--no-idle` skips it,
# `--idle-args "..."` passes options to it (`bazel-bin/bench/idle --help`).
#
# It installs what is missing (Debian packages, idempotent; run as root on a
# fresh machine), builds with Bazel (`--config=opt`), and falls back to a
# plain clang build if Bazel cannot build the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=quick
args=()
idle_args=()
want_idle=1
want_server=
no_server=
server_args=()
spread_n=10
only=
prev=
for a in "$@"; do
    case $prev in
        --idle-args) read -r -a idle_args <<<"$a"; prev=; continue ;;
        --server-args) read -r -a more <<<"$a"; server_args+=("${more[@]}"); prev=; continue ;;
        --server-seconds) server_args+=(--seconds "$a"); prev=; continue ;;
        --server-reps) server_args+=(--reps "$a"); prev=; continue ;;
        --spread) spread_n=$a; prev=; continue ;;
    esac
    [ "$prev" = --only ] && only=$a
    prev=$a
    case $a in
        --quick) mode=quick ;;
        --full) mode=full want_server=1 ;;
        --callgrind) mode=callgrind ;;
        --server) mode=server want_server=1 ;;
        --no-server) no_server=1 ;;
        --no-idle) want_idle= ;;
        --idle-args | --server-args | --server-seconds | --server-reps | --spread) ;;
        -h | --help) sed -n '2,42p' "$0"; exit 0 ;;
        *) args+=("$a") ;;
    esac
done
# --only P1,P2: the idle workload runs if "idle" starts with one of the
# prefixes, the server benchmark (--full) if "server" does; the
# thread-scaling benchmark is skipped if every prefix is one of those (it
# has no workload of that name).
want_bench=1
want_spread=1
if [ -n "$only" ]; then
    idle_sel='' server_sel='' spread_sel='' other_sel=''
    IFS=, read -r -a pre <<<"$only"
    for p in "${pre[@]}"; do
        if [[ -n "$p" && idle == "$p"* ]]; then
            idle_sel=1
        elif [[ -n "$p" && server == "$p"* ]]; then
            server_sel=1
        elif [[ -n "$p" && spread == "$p"* ]]; then
            spread_sel=1
        else
            other_sel=1
        fi
    done
    [ -n "$spread_sel" ] || want_spread=
    [ -n "$idle_sel" ] || want_idle=
    if [ -n "$server_sel" ]; then want_server=1; else [ "$mode" = server ] || want_server=; fi
    [ -n "$other_sel" ] || want_bench=
fi
[ -z "$no_server" ] || want_server=
if [ "$mode" = server ] || [ "$mode" = callgrind ]; then
    want_bench='' want_idle='' want_spread=''
fi
[ "$spread_n" -gt 0 ] 2>/dev/null || want_spread=
out=bench/out
mkdir -p "$out"

# ---- 1. packages ---------------------------------------------------------
if [ -x tools/setup.sh ]; then
    tools/setup.sh bench
else
    for p in bazel-bootstrap clang libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev \
        libtbb-dev libdpdk-dev gnuplot-nox valgrind pkg-config libck-dev liburcu-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || {
            [ -n "${updated:-}" ] || { apt-get update -qq; updated=1; }
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
        }
    done
fi

# ---- 2. build --------------------------------------------------------------
bin=
log=$out/build.log
: >"$log"
# the plain-clang fallback's flags (also for the idle binary below)
cf="-std=c11 -Wall -Wextra -D_GNU_SOURCE -O2 -gdwarf-4 -fno-omit-frame-pointer -Iinclude"
inc=$(for d in src/*/; do printf -- '-I%s ' "${d%/}"; done)
if [ -z "$want_bench" ] && [ -z "$want_spread" ] && [ "$mode" != callgrind ]; then
    : # --only idle, --server: no thread-scaling binary needed
elif command -v bazel >/dev/null && bazel build --config=opt --copt=-gdwarf-4 //bench:bench >>"$log" 2>&1; then
    bin=bazel-bin/bench/bench
elif command -v bazel >/dev/null && bazel build --config=opt --copt=-gdwarf-4 //bench:bench_peers_only >>"$log" 2>&1; then
    bin=bazel-bin/bench/bench_peers_only
    echo "run.sh: magpool does not build yet (see $log): running the peers only" >&2
else
    echo "run.sh: Bazel build failed (see $log); building with plain clang" >&2
    o=$out/obj
    mkdir -p "$o"
    dp="-march=corei7 -I/usr/include/dpdk -I/usr/include/x86_64-linux-gnu/dpdk -include rte_config.h"
    libs="-Wl,--no-as-needed -lc -ljemalloc -ltcmalloc_minimal -lmimalloc -ltbbmalloc \
        -lrte_mempool_ring -lrte_mempool -lrte_ring -lrte_eal -lrte_kvargs -lrte_telemetry \
        -lck -lurcu-memb -lurcu-common -lpthread -ldl"
    clang $cf -c bench/peers.c -o "$o/peers.o"
    clang $cf $dp -c bench/peer_dpdk.c -o "$o/peer_dpdk.o"
    mp_ok=1
    for f in src/*/*.c; do
        # shellcheck disable=SC2086
        clang $cf -fvisibility=hidden -DMAGPOOL_BUILDING_LIBRARY_ $inc -c "$f" -o "$o/mp_$(basename "$f" .c).o" >>"$log" 2>&1 || mp_ok=
    done
    if [ -n "$mp_ok" ] && clang $cf -c bench/peer_magpool.c -o "$o/peer_magpool.o" >>"$log" 2>&1 &&
        clang $cf -c bench/bench.c -o "$o/bench.o" &&
        clang -o "$o/bench" "$o/bench.o" "$o/peers.o" "$o/peer_dpdk.o" "$o/peer_magpool.o" \
            "$o"/mp_*.o $libs >>"$log" 2>&1; then
        bin=$o/bench
    else
        echo "run.sh: magpool does not build yet: running the peers only" >&2
        clang $cf -DBENCH_NO_MAGPOOL -c bench/bench.c -o "$o/bench_peers.o"
        clang -o "$o/bench_peers" "$o/bench_peers.o" "$o/peers.o" "$o/peer_dpdk.o" $libs
        bin=$o/bench_peers
    fi
fi
[ -z "$bin" ] || echo "run.sh: binary $bin" >&2

# The idle workload's binary (bench/idle.c: magpool, kmem_cache and the
# malloc peers; no DPDK, TBB or deferred peers), with the same fallbacks.
idle_bin=
if [ -n "$want_idle" ] && [ "$mode" != callgrind ]; then
    if command -v bazel >/dev/null && bazel build --config=opt --copt=-gdwarf-4 //bench:idle >>"$log" 2>&1; then
        idle_bin=bazel-bin/bench/idle
    elif command -v bazel >/dev/null && bazel build --config=opt --copt=-gdwarf-4 //bench:idle_peers_only >>"$log" 2>&1; then
        idle_bin=bazel-bin/bench/idle_peers_only
        echo "run.sh: idle: magpool does not build yet (see $log): the peers only" >&2
    else
        echo "run.sh: idle: Bazel build failed (see $log); building with plain clang" >&2
        o=$out/obj
        mkdir -p "$o"
        ilibs="-Wl,--no-as-needed -lc -ljemalloc -ltcmalloc_minimal -lmimalloc -lck -lpthread -ldl"
        mp_ok=1
        for f in src/*/*.c; do
            # shellcheck disable=SC2086
            clang $cf -fvisibility=hidden -DMAGPOOL_BUILDING_LIBRARY_ $inc -c "$f" -o "$o/mp_$(basename "$f" .c).o" >>"$log" 2>&1 || mp_ok=
        done
        # shellcheck disable=SC2086
        if [ -n "$mp_ok" ] && clang $cf -o "$o/idle" bench/idle.c "$o"/mp_*.o $ilibs >>"$log" 2>&1; then
            idle_bin=$o/idle
        elif clang $cf -DIDLE_NO_MAGPOOL -o "$o/idle_peers" bench/idle.c $ilibs >>"$log" 2>&1; then
            idle_bin=$o/idle_peers
            echo "run.sh: idle: magpool does not build yet: the peers only" >&2
        else
            echo "run.sh: idle: cannot build bench/idle.c (see $log): skipped" >&2
        fi
    fi
    [ -z "$idle_bin" ] || echo "run.sh: idle binary $idle_bin" >&2
fi

# ---- 3. callgrind: instructions per alloc and per free -----------------------
# The worker runs each contender's kernels (<prefix>_cg_alloc/_cg_free: 16
# objects, the fast path; _cg_balloc/_cg_bfree: 1000 objects, amortised) a
# fixed number of times; collection is on only inside those kernels, so each
# kernel's inclusive count / ops = instructions per operation, loop included.
run_callgrind() {
    command -v valgrind >/dev/null || { echo "run.sh: valgrind missing" >&2; return 1; }
    rm -f "$out"/callgrind.out*
    valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out" --collect-atstart=no \
        --toggle-collect='*_cg_*' "$bin" --cg-worker >"$out/cgops.txt" 2>"$out/callgrind.log"
    callgrind_annotate --inclusive=yes --threshold=100 "$out/callgrind.out" >"$out/callgrind.txt" 2>/dev/null
    awk '
        FNR == NR { if ($1 == "cgops") { name[$3] = $2; fast[$3] = $4; wide[$3] = $5 } next }
        /_cg_(b?alloc|b?free) / || /_cg_(b?alloc|b?free)$/ {
            ir = $1; gsub(",", "", ir)
            fn = $0; sub(/.*:/, "", fn); sub(/ .*/, "", fn)
            n = split(fn, parts, "_cg_"); pre = parts[1]; op = parts[2]
            if (!(pre in name)) next
            if (op == "alloc")  printf "%s,alloc,%.1f\n", name[pre], ir / fast[pre]
            if (op == "free")   printf "%s,free,%.1f\n", name[pre], ir / fast[pre]
            if (op == "balloc") printf "%s,alloc1000,%.1f\n", name[pre], ir / wide[pre]
            if (op == "bfree")  printf "%s,free1000,%.1f\n", name[pre], ir / wide[pre]
        }' "$out/cgops.txt" "$out/callgrind.txt" | sort >"$out/callgrind.csv"
    echo
    echo "== callgrind: instructions per operation, 64 B, single thread (loop overhead included) =="
    awk -F, '{ v[$1 "," $2] = $3; c[$1] = 1 }
        END {
            printf "%-20s %10s %10s %16s %16s\n", "contender", "alloc", "free", "alloc (1000)", "free (1000)"
            for (k in c) printf "%-20s %10s %10s %16s %16s\n", k, v[k ",alloc"], v[k ",free"], v[k ",alloc1000"], v[k ",free1000"]
        }' "$out/callgrind.csv" | (read -r h; echo "$h"; sort)
    echo "(fast path: 16 objects allocated then freed, served by the thread's cache;"
    echo " 1000: allocated then freed in batches of 1000, amortising refills)"
    # The fast path alone: magpool_alloc/magpool_free's SELF instructions per
    # call, from the magpool-call contender (which calls the library; the
    # magpool rows inline the hit).  Their slow paths are separate noinline
    # functions, so self cost is exactly the hit path (call/ret included,
    # caller's loop excluded).  The inline names are aliases: either may show.
    callgrind_annotate --inclusive=no --threshold=100 "$out/callgrind.out" >"$out/callgrind_self.txt" 2>/dev/null
    # callgrind splits a function's self cost by the source file its inlined
    # code came from (magazine.c, fastpath.h, cache_impl.h): sum them.  The
    # calls are magpool-call's operations (the inline rows also call on a
    # miss, about once per magazine: a few instructions each, counted in).
    awk '
        FNR == NR { if ($1 == "cgops" && $2 == "magpool-call") calls = $4 + $5; next }
        {
            fn = $0; sub(/ \[.*/, "", fn); sub(/.*:/, "", fn)
            sub(/_miss_$/, "", fn)
            if (fn != "magpool_alloc" && fn != "magpool_free") next
            ir = $1; gsub(",", "", ir); self[fn] += ir
        }
        END {
            if (calls > 0)
                for (fn in self) printf "magpool-fastpath,%s,%.1f\n", substr(fn, 9), self[fn] / calls
        }' "$out/cgops.txt" "$out/callgrind_self.txt" >"$out/callgrind_fast.csv"
    echo
    echo "== callgrind: magpool fast path alone (self instructions per call of magpool_alloc / magpool_free) =="
    awk -F, '{ printf "  %-6s %5.1f instructions per call\n", $2, $3 }' "$out/callgrind_fast.csv"
    cat "$out/callgrind_fast.csv" >>"$out/callgrind.csv"
}

if [ "$mode" = callgrind ]; then
    run_callgrind | tee "$out/callgrind_table.txt"
    exit 0
fi

# ---- 4. run ------------------------------------------------------------------------
if [ -n "$want_bench" ]; then
    cg_args=()
    if run_callgrind >"$out/callgrind_table.txt" 2>&1; then
        cg_args=(--cg-csv "$out/callgrind.csv")
    else
        echo "run.sh: callgrind step failed (see $out/callgrind.log)" >&2
    fi
    "$bin" "--$mode" --out "$out" "${cg_args[@]}" "${args[@]}" | tee "$out/run.txt"
    cat "$out/callgrind_table.txt"
fi

# ---- 4a. the spread across process runs (issue 16) ------------------------------
# The single-thread rows of every magpool API, once per process, N processes:
# whatever a process decides once (addresses, which magazine size a cache
# starts with, when the reaper first runs) shows up here and not in one
# process's repetitions.  bench/spread.py prints max/min per row.
if [ -n "$want_spread" ] && [ -n "$bin" ]; then
    sd=$out/spread
    rm -rf "$sd"
    mkdir -p "$sd"
    echo
    echo "== spread (issue 16): single-thread rows of the magpool APIs, $spread_n processes =="
    for i in $(seq 1 "$spread_n"); do
        printf '  process %d of %d\r' "$i" "$spread_n" >&2
        "$bin" --quick --reps 5 --ms 30 --threads 1 --contenders magpool,floor,tcmalloc,mimalloc \
            --only pair,batch,bulk,larson,deferred,ctor --out "$sd/run$i" >"$sd/run$i.txt" 2>&1 ||
            echo "run.sh: spread: process $i failed (see $sd/run$i.txt)" >&2
    done
    python3 bench/spread.py "$sd" | tee "$out/spread.txt"
    cp -f "$sd/spread.csv" "$out/spread.csv" 2>/dev/null || true
    [ -z "$want_bench" ] || cat "$out/spread.txt" >>"$out/run.txt"
fi

# ---- 5. the idle memory workload (issue 15) ------------------------------------
# T idle threads x C caches, RSS with 0 live objects; one process per
# measurement (quick: T 1,16,64,256 x C 1,32, about 80 s on 2 cores; full:
# T 1..1024 x C 1,8,32).  Progress and the table go to the terminal (stderr),
# the rows to idle.csv, the table and the issue-15 targets to idle.txt.
if [ -n "$idle_bin" ]; then
    echo
    echo "== idle (issue 15): $mode mode, one process per measurement =="
    if "$idle_bin" "--$mode" --table "$out/idle.txt" "${idle_args[@]}" >"$out/idle.csv"; then
        [ -z "$want_bench" ] || cat "$out/idle.txt" >>"$out/run.txt"
    else
        echo "run.sh: the idle workload failed (see above)" >&2
    fi
fi

# ---- 6. plot -------------------------------------------------------------------------
if [ -n "$want_bench" ] || [ -n "$idle_bin" ]; then
    bench/plot.sh "$out"
fi

# ---- 7. the server benchmark (issue 17) -------------------------------------------
# kvcache (magpool), kvcache_malloc under glibc/jemalloc/tcmalloc/mimalloc
# (LD_PRELOAD), memcached; memcaslap for the load, bench/kvclient.c for the
# latency percentiles, the fill and `stats`.  All on 127.0.0.1, every run
# bounded, every server stopped (bench/server.py).  The servers are copied
# out of bazel-bin so that a rebuild during the run cannot swap them.
if [ -n "$want_server" ]; then
    echo
    echo "== server (issue 17): kvcache, its malloc builds and memcached under memcaslap =="
    o=$out/obj
    mkdir -p "$o"
    if ! bazel build --config=opt //examples/kvcache:kvcache //examples/kvcache:kvcache_malloc >>"$log" 2>&1; then
        echo "run.sh: server: cannot build //examples/kvcache (see $log): skipped" >&2
        exit 1
    fi
    cp -f bazel-bin/examples/kvcache/kvcache bazel-bin/examples/kvcache/kvcache_malloc "$o/"
    ${CC:-clang} -std=c11 -O2 -Wall -Wextra -D_GNU_SOURCE -o "$o/kvclient" bench/kvclient.c -lpthread
    python3 bench/server.py --out "$out" --kvcache "$o/kvcache" --kvcache-malloc "$o/kvcache_malloc" \
        --kvclient "$o/kvclient" "${server_args[@]}"
    [ "$mode" = server ] || cat "$out/server.txt" >>"$out/run.txt"
fi
