# Shell test harness: `check DESCRIPTION COMMAND...` counts, check_done prints
# "N passed, N failed" and returns non-zero on any failure; sh_install installs.
sh_passed=0
sh_failed=0
check() {
    local what=$1; shift
    if "$@" >/dev/null 2>&1; then
        sh_passed=$((sh_passed + 1))
        echo "ok   $what"
        return 0
    fi
    sh_failed=$((sh_failed + 1))
    echo "FAIL $what"
    return 1
}
check_done() {
    echo "$sh_passed passed, $sh_failed failed"
    [ "$sh_failed" -eq 0 ]
}

# The README's install into a fresh prefix, for the tests that build programs
# against the installed library.  Sets prefix and work (temporary directories
# named after TAG, removed at exit), PKG_CONFIG_PATH (the installed .pc) and
# static_libs (pkg-config's static link line, naming the archive), and counts
# "bazel run //:install succeeds" (its log: $work/install.log).
sh_install() { # sh_install TAG
    prefix=$(mktemp -d "/tmp/magpool-$1-prefix.XXXXXX")
    work=$(mktemp -d "/tmp/magpool-$1.XXXXXX")
    trap 'rm -rf "$prefix" "$work"' EXIT
    bazel run //:install -- "$prefix" >"$work/install.log" 2>&1
    check "bazel run //:install succeeds" test $? -eq 0 || tail -20 "$work/install.log"
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    # shellcheck disable=SC2034 # for the sourcing script
    static_libs=$(pkg-config --libs --static magpool | sed 's/-lmagpool/-l:libmagpool.a/')
}
