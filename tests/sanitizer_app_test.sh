#!/usr/bin/env bash
# Sanitizers at run time: applications built with clang -fsanitize=address
# and -fsanitize=thread against the INSTALLED library (the README's install
# command; the library itself is not instrumented), linked shared and static.
# tests/san_app.c holds the scenarios.  Proves: a clean program exits 0 with
# no report; objects held at exit are no leak, while a real leak still is;
# a use after free through every front end is reported, with the pool named;
# objects handed between threads give no TSan report, a real race still does.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/sh_check.sh
sh_install sanapp

build() { # build NAME SANITIZER shared|static [COMPILER]
    local out="$work/$1" link xcc=${4:-clang}
    if [ "$3" = static ]; then link="$(pkg-config --cflags magpool) $static_libs"
    else link="$(pkg-config --cflags --libs magpool) -Wl,-rpath,$prefix/lib"; fi
    # shellcheck disable=SC2086
    "$xcc" -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize="$2" tests/san_app.c -o "$out" $link -lpthread \
        2>"$work/$1.cc.log"
    check "$xcc -fsanitize=$2 san_app.c ($3 libmagpool)" test $? -eq 0 || cat "$work/$1.cc.log"
}

# The engine calls no malloc (src/memory/meta.h): nothing in the shared library
# refers to the allocator an application may be replacing.
nm -D --undefined-only "$prefix/lib/libmagpool.so" | awk '{print $2}' | sed 's/@.*//' >"$work/undef"
check "libmagpool.so calls no malloc/calloc/realloc/free/qsort" \
    sh -c "! grep -qxE 'malloc|calloc|realloc|free|aligned_alloc|posix_memalign|memalign|valloc|strdup|qsort' '$work/undef'" ||
    cat "$work/undef"

# run_ok BIN SCENARIO: exit 0 and no sanitizer report.
run_ok() {
    local log="$work/$(basename "$1").$2.log"
    "$1" "$2" >"$log" 2>&1
    local rc=$?
    check "$(basename "$1") $2: exit 0, no report" \
        sh -c "[ $rc -eq 0 ] && ! grep -q 'Sanitizer' '$log'" || head -40 "$log"
}

# run_report BIN SCENARIO PATTERN [PATTERN2]: non-zero exit and the report.
run_report() {
    local log="$work/$(basename "$1").$2.log"
    "$1" "$2" >"$log" 2>&1
    local rc=$?
    check "$(basename "$1") $2: reported ($3)" sh -c "[ $rc -ne 0 ] && grep -q -- '$3' '$log'" || head -40 "$log"
    if [ $# -ge 4 ]; then
        check "$(basename "$1") $2: names the pool ($4)" grep -q -- "$4" "$log" || head -40 "$log"
    fi
}

export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:exitcode=66
for link in shared static; do
    build "asan_$link" address "$link"
    a="$work/asan_$link"
    run_ok "$a" clean
    run_ok "$a" keep
    run_report "$a" leak "LeakSanitizer: detected memory leaks"
    run_report "$a" uaf-core "use-after-poison" "cache 'uaf-core-cache'"
    run_report "$a" uaf-kmem "use-after-poison" "cache 'uaf-kmem-cache'"
    run_report "$a" uaf-mempool "use-after-poison" "cache 'uaf-mempool-pool'"
    run_report "$a" uaf-kmalloc "use-after-poison" "cache 'kmalloc-256'"
    run_report "$a" uaf-large "use-after-poison"
    run_report "$a" uaf-deferred "use-after-poison" "cache 'uaf-deferred-cache'"
    run_report "$a" overflow "use-after-poison" "cache 'overflow-cache'"

    build "tsan_$link" thread "$link"
    t="$work/tsan_$link"
    run_ok "$t" clean
    run_ok "$t" handoff
    run_report "$t" race "ThreadSanitizer: data race"

    # Standalone LeakSanitizer.
    build "lsan_$link" leak "$link"
    run_ok "$work/lsan_$link" keep
    run_report "$work/lsan_$link" leak "LeakSanitizer: detected memory leaks"
done

# gcc's sanitizer runtimes (libasan/libtsan shared objects) export the same
# interface.
build asan_gcc address shared gcc
run_ok "$work/asan_gcc" clean
run_ok "$work/asan_gcc" keep
run_report "$work/asan_gcc" uaf-kmem "use-after-poison" "cache 'uaf-kmem-cache'"
build tsan_gcc thread shared gcc
run_ok "$work/tsan_gcc" handoff
run_report "$work/tsan_gcc" race "ThreadSanitizer: data race"
check_done
