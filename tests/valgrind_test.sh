#!/usr/bin/env bash
# Valgrind memcheck sees pool objects through the mempool client requests:
# tests/vg_uaf.c touches a mem_pool object after mem_put, and memcheck must
# report it; the same program with no misuse (argument "clean") must be
# reported clean.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/sh_check.sh
bazel build //tests:vg_uaf >/tmp/magpool-vg-build.log 2>&1
check "build //tests:vg_uaf" test $? -eq 0 || tail -20 /tmp/magpool-vg-build.log
bin=bazel-bin/tests/vg_uaf
out=$(mktemp)
valgrind --error-exitcode=99 "$bin" clean >"$out" 2>&1
check "memcheck: correct use is clean" test $? -eq 0 || tail -20 "$out"
valgrind --error-exitcode=99 "$bin" >"$out" 2>&1
rc=$?
check "memcheck: use after mem_put is an error (exit 99)" test $rc -eq 99 || tail -30 "$out"
check "memcheck: reports an invalid access" grep -qE "Invalid (read|write)" "$out"
rm -f "$out"
check_done
