#!/usr/bin/env bash
# Installs what magpool needs on Debian 12, idempotently: only packages that
# are missing are installed (apt-get update runs only then).
#   tools/setup.sh test    toolchain + libraries for the test command
#   tools/setup.sh bench   the above + the benchmark peers and gnuplot
set -euo pipefail
want=(bazel-bootstrap clang libclang-rt-14-dev gcc liburcu-dev libck-dev pkg-config valgrind python3)
if [ "${1:-test}" = bench ]; then
    want+=(libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libtbb-dev libdpdk-dev gnuplot-nox)
fi
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
