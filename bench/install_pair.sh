#!/usr/bin/env bash
# What an installed libmagpool costs a plain-cc program (issue #12): the hot
# pair kmem_cache_alloc + kmem_cache_free (64-byte objects, one thread, every
# call into the library), in ns per pair, for several installs side by side.
#
#   bench/install_pair.sh                       # the three installs below
#   bench/install_pair.sh LABEL=PREFIX ...      # existing installs instead
#   PAIRS=50000000 RUNS=5 bench/install_pair.sh # the defaults
#
# Without arguments it installs, in a temporary directory:
#   readme     `bazel run //:install -- PREFIX` (the README's command)
#   opt        `bazel run --config=opt //:install -- PREFIX`
#   fastbuild  the library of a plain `bazel build` (Bazel's default fastbuild
#              mode, -O0) given to tools/install.sh by hand: what the
#              README's command installed before issue #12
# The program is built with `cc -O2 $(pkg-config --cflags --libs magpool)`
# against each PREFIX (PKG_CONFIG_PATH, LD_LIBRARY_PATH set to it).  Each run
# times PAIRS pairs after a warm-up; the installs take turns, RUNS rounds,
# pinned to one CPU when taskset is there; the median (min-max) is printed.
# Not part of any test: a measurement, run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${PAIRS:-50000000}
runs=${RUNS:-5}
work=$(mktemp -d /tmp/magpool-install-pair.XXXXXX)
trap 'rm -rf "$work"' EXIT

labels=()
prefixes=()
if [ $# -gt 0 ]; then
    for a in "$@"; do
        case $a in
            *=*) labels+=("${a%%=*}"); prefixes+=("${a#*=}") ;;
            *) echo "usage: $0 [LABEL=PREFIX ...]" >&2; exit 2 ;;
        esac
    done
else
    echo "installing (readme, opt, fastbuild) under $work ..."
    bazel run //:install -- "$work/readme" >"$work/readme.log" 2>&1 ||
        { tail -20 "$work/readme.log"; exit 1; }
    bazel run --config=opt //:install -- "$work/opt" >"$work/opt.log" 2>&1 ||
        { tail -20 "$work/opt.log"; exit 1; }
    bazel build //:magpool_archive //:libmagpool.so.1 >"$work/fast.log" 2>&1 ||
        { tail -20 "$work/fast.log"; exit 1; }
    bin=$(bazel info bazel-bin 2>/dev/null)
    bash tools/install.sh "$bin/libmagpool.lo" "$bin/libmagpool.so.1" tools/magpool.pc.in \
        include/magpool/*.h "$work/fastbuild" >/dev/null
    labels=(readme opt fastbuild)
    prefixes=("$work/readme" "$work/opt" "$work/fastbuild")
fi

cat >"$work/pair.c" <<'C'
#define _POSIX_C_SOURCE 200809L
#include <magpool/kmem_cache.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
struct obj { char b[64]; };
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 50000000L;
    struct kmem_cache *c = kmem_cache_create("pair", sizeof(struct obj), 0, 0, NULL);
    if (!c) { puts("kmem_cache_create failed"); return 1; }
    for (long i = 0; i < 1000000; i++) {          /* warm-up */
        struct obj *o = kmem_cache_alloc(c, GFP_KERNEL);
        o->b[0] = (char)i;
        kmem_cache_free(c, o);
    }
    double t0 = now();
    for (long i = 0; i < n; i++) {
        struct obj *o = kmem_cache_alloc(c, GFP_KERNEL);
        o->b[0] = (char)i;                         /* touch */
        kmem_cache_free(c, o);
    }
    double t1 = now();
    printf("%.3f\n", (t1 - t0) * 1e9 / (double)n);
    kmem_cache_destroy(c);
    return 0;
}
C

pin=()
command -v taskset >/dev/null && pin=(taskset -c "$(( $(nproc) - 1 ))")
for i in "${!labels[@]}"; do
    p=${prefixes[$i]}
    PKG_CONFIG_PATH="$p/lib/pkgconfig" cc -std=c11 -O2 -Wall -Werror "$work/pair.c" \
        -o "$work/pair_$i" $(PKG_CONFIG_PATH="$p/lib/pkgconfig" pkg-config --cflags --libs magpool)
done
for r in $(seq "$runs"); do
    for i in "${!labels[@]}"; do
        LD_LIBRARY_PATH="${prefixes[$i]}/lib" "${pin[@]}" "$work/pair_$i" "$pairs" >>"$work/ns_$i"
    done
done

printf '%-14s %10s %17s  %s\n' install "ns/pair" "(min-max)" prefix
for i in "${!labels[@]}"; do
    sort -g "$work/ns_$i" | awk -v l="${labels[$i]}" -v p="${prefixes[$i]}" '
        { v[NR] = $1 }
        END { printf "%-14s %10.2f %17s  %s\n", l, v[int((NR + 1) / 2)],
              sprintf("(%.2f-%.2f)", v[1], v[NR]), p }'
done
echo "($runs runs of $pairs pairs each, 64-byte objects, one thread; median (min-max))"
