#!/usr/bin/env bash
# Proves the non-Bazel install path: `bazel run //:install -- PREFIX`, then a
# program that includes all three public headers builds with plain cc and
# pkg-config (shared and static) and runs; the shared library has a SONAME and
# exports only the public API; the installed library is built as with
# --config=opt (-O2) although the install runs in the default fastbuild mode.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/sh_check.sh
sh_install app
for f in include/magpool/magpool.h include/magpool/mem_pool.h include/magpool/kmem_cache.h \
         lib/libmagpool.a lib/libmagpool.so lib/libmagpool.so.1 lib/pkgconfig/magpool.pc; do
    check "installed $f" test -e "$prefix/$f"
done
check "SONAME is libmagpool.so.1" sh -c "readelf -d '$prefix/lib/libmagpool.so' | grep -q 'SONAME.*libmagpool.so.1'"

# The installed library is the optimised one, whatever mode the command line
# builds in (issue #12: this test installs in Bazel's default fastbuild mode,
# -O0).  //:install takes the library through an opt transition
# (tools/opt.bzl), and the library's objects record their compiler flags in
# DW_AT_producer (-grecord-gcc-switches, tools/copts.bzl).  The effective
# level of a compile unit is its last -O flag; none (clang in fastbuild mode)
# means -O0.  Every unit of the installed .so and .a must say -O2.
opt_levels() {
    readelf --debug-dump=info "$1" 2>/dev/null | grep 'DW_AT_producer' |
        awk '{ lvl = "-O0"; for (i = 1; i <= NF; i++) if ($i ~ /^-O([0-3sgz]|fast)?$/) lvl = $i; print lvl }'
}
nsrc=$(ls src/*/*.c | wc -l)
for lib in libmagpool.so libmagpool.a; do
    opt_levels "$prefix/lib/$lib" >"$work/levels_$lib"
    tally=$(sort "$work/levels_$lib" | uniq -c | awk '{printf "%s%d x %s", sep, $1, $2; sep = ", "}')
    check "installed $lib: every compile unit records -O2 ($nsrc sources; ${tally:-no units})" \
        sh -c "test \$(grep -cx -- -O2 '$work/levels_$lib') -eq $nsrc && test \$(wc -l <'$work/levels_$lib') -eq $nsrc"
done

# Same code as `bazel build --config=opt`: the whole disassembly of the
# installed .so and .a (magpool_alloc and every other function) equals that
# of the --config=opt build.  Only the debug info differs (object paths).
bazel build --config=opt //:libmagpool.so.1 //:magpool_archive >"$work/opt.log" 2>&1
check "bazel build --config=opt //:libmagpool.so.1 //:magpool_archive" test $? -eq 0 || tail -20 "$work/opt.log"
optbin=$(bazel info --config=opt bazel-bin 2>/dev/null)
disasm() { objdump -d --no-show-raw-insn "$1" 2>/dev/null | sed -e "s|$1||g" -e '/file format/d'; }
disasm "$prefix/lib/libmagpool.so" >"$work/inst_so.s"
disasm "$optbin/libmagpool.so.1" >"$work/opt_so.s"
disasm "$prefix/lib/libmagpool.a" >"$work/inst_a.s"
disasm "$optbin/libmagpool.a" >"$work/opt_a.s"
check "installed libmagpool.so has magpool_alloc" grep -q '<magpool_alloc>:' "$work/inst_so.s"
check "installed libmagpool.so: same code as --config=opt (all $(grep -c '>:$' "$work/inst_so.s") functions)" \
    cmp "$work/inst_so.s" "$work/opt_so.s"
check "installed libmagpool.a: same code as --config=opt (all $(grep -c '>:$' "$work/inst_a.s") functions)" \
    cmp "$work/inst_a.s" "$work/opt_a.s"

# Every exported (global: upper-case type) symbol is declared in a public
# header (magpool_tcs_, the thread-local array the inline hits read, among
# them).  Hidden initial-exec TLS variables appear as local (lower-case)
# entries: their dynamic relocations need them, but they are not exported.
nm -D --defined-only "$prefix/lib/libmagpool.so" | awk '$2 ~ /^[A-Z]$/ {print $3}' | sed 's/@.*//' | sort -u >"$work/syms"
bad=0
while read -r s; do
    [ -z "$s" ] && continue
    case $s in MAGPOOL_1.[0-9]*) continue ;; esac
    grep -qw "$s" "$prefix"/include/magpool/*.h || { echo "not public: $s"; bad=1; }
done <"$work/syms"
check "nm -D lists only public symbols ($(wc -l <"$work/syms") exported)" test $bad -eq 0
check "nm -D lists the core API" grep -qx magpool_alloc "$work/syms"

cat >"$work/app.c" <<'C'
#include <magpool/magpool.h>
#include <magpool/mem_pool.h>
#include <magpool/kmem_cache.h>
#include <stdio.h>
#include <string.h>
struct item { long key; char name[40]; };
int main(void)
{
    struct magpool_config cfg = { .name = "app", .size = 48 };
    magpool_cache_t *c = magpool_cache_create(&cfg);
    struct mem_pool *mp = mem_pool_new(struct item, 64);
    struct kmem_cache *kc = KMEM_CACHE(item, SLAB_HWCACHE_ALIGN);
    if (!c || !mp || !kc) { puts("create failed"); return 1; }
    void *a = magpool_alloc(c);
    struct item *b = mem_get0(mp);
    struct item *k = kmem_cache_zalloc(kc, GFP_KERNEL);
    char *s = kmalloc(100, GFP_KERNEL);
    if (!a || !b || !k || !s || b->key != 0 || k->key != 0) { puts("alloc failed"); return 1; }
    strcpy(s, "hello");
    magpool_free(c, a);
    mem_put(b);
    kmem_cache_free(kc, k);
    kfree(s);
    kmem_cache_destroy(kc);
    mem_pool_destroy(mp);
    if (magpool_cache_destroy(c) != 0) { puts("destroy failed"); return 1; }
    puts("app ok");
    return 0;
}
C
check "pkg-config knows magpool" pkg-config --exists magpool
cc -std=c11 -Wall -Werror "$work/app.c" -o "$work/app" $(pkg-config --cflags --libs magpool) 2>"$work/cc.log"
check "cc app.c \$(pkg-config --cflags --libs magpool)" test $? -eq 0 || cat "$work/cc.log"
check "shared app runs" sh -c "'$work/app' | grep -q 'app ok'"
check "shared app uses libmagpool.so.1" sh -c "ldd '$work/app' | grep -q libmagpool.so.1"

# Optimised, pedantic, with both compilers: magpool.h's inline hits compile
# cleanly, reference the exported thread-local array (magpool_tcs_), and
# work against the shared library.
for xcc in cc clang; do
    command -v "$xcc" >/dev/null || continue
    "$xcc" -std=c11 -O2 -Wall -Wextra -pedantic -Werror "$work/app.c" -o "$work/app_o2_$xcc" \
        $(pkg-config --cflags --libs magpool) 2>"$work/cc_o2.log"
    check "$xcc -O2 -pedantic app.c (inline hits)" test $? -eq 0 || cat "$work/cc_o2.log"
    check "$xcc -O2 app inlines the hits (references magpool_tcs_)" \
        sh -c "nm '$work/app_o2_$xcc' | grep -q magpool_tcs_"
    check "$xcc -O2 app runs" sh -c "'$work/app_o2_$xcc' | grep -q 'app ok'"
done

cc -std=c11 -Wall -Werror "$work/app.c" -o "$work/app_static" $(pkg-config --cflags magpool) $static_libs 2>"$work/cc2.log"
check "cc app.c with pkg-config --static" test $? -eq 0 || cat "$work/cc2.log"
check "static app runs" sh -c "'$work/app_static' | grep -q 'app ok'"
check "static app does not load libmagpool.so" sh -c "! ldd '$work/app_static' | grep -q libmagpool"
check_done
