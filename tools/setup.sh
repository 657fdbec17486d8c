#!/usr/bin/env bash
# Installs what magpool needs on Debian 12, idempotently: only packages that
# are missing are installed (apt-get update runs only then).
#   tools/setup.sh test    toolchain + libraries for the test command, with the
#                          benchmark peers' -dev packages (`bazel test //...`
#                          also builds //bench:*, whose sources include their
#                          headers) and debootstrap (the fresh-root step)
#   tools/setup.sh bench   the above + gnuplot (bench/plot.sh)
set -euo pipefail
want=(bazel-bootstrap clang libclang-rt-14-dev gcc liburcu-dev libck-dev pkg-config valgrind python3)
# The peers bench/BUILD compiles and links against: jemalloc, tcmalloc
# (gperftools), mimalloc, tbbmalloc, DPDK's rte_mempool.
want+=(libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev libtbb-dev libdpdk-dev)
# tests/fresh_root.sh makes a minbase Debian 12 root to run the test command in.
want+=(debootstrap)
# The reference server's tests (examples/kvcache/test.sh): memccapable and
# Debian's memcached 1.6.18 for the differential test.
want+=(memcached libmemcached-tools)
if [ "${1:-test}" = bench ]; then
    want+=(gnuplot-nox)
fi
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq
    # Start no service while installing (memcached's package would start one
    # on port 11211; the tests run their own servers on free ports, and a
    # chroot has no init): a policy-rc.d that refuses, only for this install
    # and only if the machine has none of its own.
    policy=/usr/sbin/policy-rc.d
    own_policy=
    if [ ! -e "$policy" ]; then
        trap '[ -z "$own_policy" ] || $SUDO rm -f "$policy"' EXIT
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        own_policy=1
        $SUDO chmod 755 "$policy"
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
