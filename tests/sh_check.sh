# Shell test harness: `check DESCRIPTION COMMAND...` counts, check_done prints
# "N passed, N failed" and returns non-zero on any failure.
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
