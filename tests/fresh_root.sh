#!/usr/bin/env bash
# The test command's last step, "fresh" (issue 12): runs the README's test
# command, ./tests/run.sh, in a new minbase Debian 12 root, so that a package
# the command needs and does not install fails the test command here, not
# only on a new machine (a machine that ran it once already has everything).
#
#   1. debootstrap --variant=minbase bookworm ROOT MIRROR, MIRROR being the
#      host's own Debian mirror, read from its apt sources (one-line *.list and
#      deb822 *.sources files alike), never a fixed address
#   2. the host's apt sources (and the keyrings they name), its apt.conf.d
#      snippets (date checks, DEP-11, ...) and resolv.conf go into the root;
#      proc, sys, dev, dev/pts and dev/shm are mounted in it (Bazel needs
#      /proc); the project's tracked files (`git ls-files`, as they are in the
#      work tree, local changes included: what CI would check out, with no
#      bazel-* links or build outputs) are copied to /root/magpool
#   3. chroot ROOT: ./tests/run.sh with MAGPOOL_IN_FRESH_ROOT=1, which drops
#      this step from its default list; nothing else is set up for it
#   4. the root is unmounted and removed on exit, failure or interrupt
#
# Prints the inner run's output indented, then "N passed, N failed": the
# inner run's counts plus this script's own checks.  If the root cannot be
# made (no mirror, debootstrap or a mount fails) it prints why and
# "0 passed, 1 failed".  Needs root.  MAGPOOL_FRESH_TMP (default /var/tmp)
# is where the root is made; logs stay in /tmp/magpool-fresh-logs.*.
#
#   tests/fresh_root.sh [COMMAND...]
#
# With a COMMAND (by hand, e.g. `tests/fresh_root.sh ./bench/run.sh --quick`)
# it runs that in /root/magpool instead and judges it by its exit status;
# what it writes to bench/out/ is copied back to bench/out/fresh/.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/sh_check.sh
src=$PWD
suite=bookworm
cmd=("$@")
[ ${#cmd[@]} -gt 0 ] || cmd=(./tests/run.sh)
logs=$(mktemp -d /tmp/magpool-fresh-logs.XXXXXX)
start=$(date +%s)

die() { # die MESSAGE: the root could not be made or entered
    echo "fresh_root: $*"
    echo "fresh_root: logs in $logs"
    echo "0 passed, 1 failed"
    exit 1
}

[ -z "${MAGPOOL_IN_FRESH_ROOT:-}" ] || die "already inside a fresh root (MAGPOOL_IN_FRESH_ROOT is set)"
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, mount, chroot)"
command -v debootstrap >/dev/null || die "debootstrap is missing (tools/setup.sh test installs it)"

# ---- the host's mirror ------------------------------------------------------
# The URI of the first enabled "deb" source for $suite, in apt's reading order:
# sources.list, then sources.list.d/*.list (one line: deb [opts] URI SUITE
# COMPONENTS...) and *.sources (deb822 paragraphs: Types, URIs, Suites,
# Enabled; a field may go on over indented lines).
host_mirror() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v s="$suite" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
                if ($(i + 1) == s) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$suite" '
            function flush() {
                if ((" " types " ") ~ / deb / && enabled != "no" && (" " suites " ") ~ (" " s " ") && uris != "") {
                    split(uris, u, " "); print u[1]
                }
                types = uris = suites = key = ""; enabled = "yes"
            }
            BEGIN { enabled = "yes" }
            /^#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]/ { v = $0; sub(/^[ \t]+/, "", v)
                       if (key == "uris") uris = uris " " v; else if (key == "suites") suites = suites " " v
                       next }
            {
                key = tolower($0); sub(/:.*/, "", key)
                v = $0; sub(/^[^:]*:[ \t]*/, "", v)
                if (key == "types") types = v
                else if (key == "uris") uris = v
                else if (key == "suites") suites = v
                else if (key == "enabled") enabled = tolower(v)
            }
            END { flush() }' "$f"
    done
}
mirror=$(host_mirror | head -1)
[ -n "$mirror" ] || die "the host's apt sources name no 'deb' source for $suite"

# ---- the root, and its removal -------------------------------------------------
# On disk, not in a tmpfs /tmp: the toolchain and five Bazel output trees
# take a few GB.
root=$(mktemp -d "${MAGPOOL_FRESH_TMP:-/var/tmp}/magpool-fresh.XXXXXX") || die "cannot make a directory for the root"
root=$(realpath "$root")
# mktemp makes it 0700: the root directory of a system must be searchable by
# all, or apt's _apt user (and every other) cannot reach a file in it.
chmod 0755 "$root"
mounts=() # mounted, in order

# Processes whose root directory is the fresh root (the Bazel server the
# inner run leaves behind, anything an interrupt left running), by pid.
root_pids() {
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && echo "${p#/proc/}"
    done
}
under_root_mounts() { awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo; }

cleanup() {
    trap - EXIT INT TERM
    [ -n "${root:-}" ] && [ -d "$root" ] || return 0
    if [ -x "$root/usr/bin/bazel" ] && [ -d "$root/root/magpool" ] && [ -d "$root/proc/self" ]; then
        timeout 60 chroot "$root" /bin/sh -c 'cd /root/magpool && bazel shutdown' >/dev/null 2>&1
    fi
    local pids sig
    for sig in TERM KILL; do
        pids=$(root_pids)
        [ -z "$pids" ] && break
        # shellcheck disable=SC2086
        kill -s $sig $pids 2>/dev/null
        sleep 2
    done
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"
    done
    mounts=()
    # Never remove through a mount (the bind-mounted /dev above all).
    if [ -n "$(under_root_mounts)" ]; then
        echo "fresh_root: still mounted under $root, not removed:" $(under_root_mounts)
        return 1
    fi
    rm -rf --one-file-system "$root"
    [ ! -e "$root" ]
}
trap cleanup EXIT
trap 'echo "fresh_root: interrupted"; exit 130' INT TERM

# ---- 1. debootstrap -------------------------------------------------------------
# debootstrap downloads with wget, not apt: give it the proxy apt has, if any.
eval "$(apt-config shell http_proxy Acquire::http::Proxy 2>/dev/null)"
[ -n "${http_proxy:-}" ] && export http_proxy
echo "fresh_root: debootstrap --variant=minbase $suite $root $mirror"
t0=$(date +%s)
if ! debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$logs/debootstrap.log" 2>&1; then
    tail -20 "$logs/debootstrap.log"
    die "debootstrap --variant=minbase $suite from $mirror failed"
fi
t_debootstrap=$(($(date +%s) - t0))
echo "fresh_root: root made in ${t_debootstrap}s"

# ---- 2. apt configuration, mounts, the project ----------------------------------------
setup_root() {
    local f k
    # The host's sources replace debootstrap's one-line sources.list; the
    # keyrings they name come along when the root lacks them.
    rm -f "$root/etc/apt/sources.list"
    [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$root/etc/apt/"
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        cp "$f" "$root/etc/apt/sources.list.d/" || return 1
        for k in $(grep -ohiE 'signed-by(=|: *)[^] ,]+' "$f" | sed -E 's/^[^=:]*(=|: *)//'); do
            [ -f "$k" ] && [ ! -e "$root$k" ] && { mkdir -p "$root$(dirname "$k")"; cp "$k" "$root$k"; }
        done
    done
    for d in apt.conf.d trusted.gpg.d keyrings; do
        [ -d "/etc/apt/$d" ] || continue
        mkdir -p "$root/etc/apt/$d" && cp -a "/etc/apt/$d/." "$root/etc/apt/$d/" || return 1
    done
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
}
setup_root || die "cannot copy the apt configuration or resolv.conf into the root"

mnt() { # mnt MOUNT-ARGS... TARGET: mount, remember for cleanup
    mount "$@" || return 1
    mounts+=("${*: -1}")
}
# /dev is bound without its submounts and made private, so nothing mounted
# or unmounted inside reaches the host's /dev.
mnt -t proc proc "$root/proc" &&
    mnt -t sysfs sysfs "$root/sys" &&
    mnt --bind /dev "$root/dev" && mount --make-private "$root/dev" &&
    mnt -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts" &&
    mnt -t tmpfs -o mode=1777 shm "$root/dev/shm" ||
    die "cannot mount proc, sys, dev, dev/pts or dev/shm in the root"

# The tracked files as they are in the work tree (deleted ones skipped).
dest=$root/root/magpool
mkdir -p "$dest"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$src" ls-files -z | while IFS= read -r -d '' f; do
        [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"
    done | tar --null --no-recursion -T - -cf - | tar -xf - -C "$dest" ||
        die "cannot copy the project's tracked files into the root"
else
    # Not a git checkout: the tree less Bazel's links and the bench output.
    tar --exclude='./bazel-*' --exclude=./bench/out -cf - . | tar -xf - -C "$dest" ||
        die "cannot copy the project into the root"
fi
nfiles=$(find "$dest" -type f | wc -l)
chroot "$root" /bin/true || die "cannot chroot into $root"
check "fresh $suite root: debootstrap from $mirror (${t_debootstrap}s), apt config, mounts, $nfiles project files"

# ---- 3. the test command, inside -------------------------------------------------------
# A clean environment, as a new login would have.
echo "fresh_root: chroot $root: cd /root/magpool && ${cmd[*]}"
t0=$(date +%s)
# In the background, waited for: bash runs the INT/TERM trap (and so the
# cleanup, which ends what runs in the root) at once, not when it ends.
{
    chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb MAGPOOL_IN_FRESH_ROOT=1 \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /bin/bash -c 'cd /root/magpool && exec "$@"' fresh_root "${cmd[@]}" </dev/null 2>&1
    echo $? >"$logs/inner.rc"
} | tee "$logs/inner.log" | sed -u 's/^/    /' &
wait $!
rc=$(cat "$logs/inner.rc" 2>/dev/null || echo 1)
t_inner=$(($(date +%s) - t0))
if [ "${cmd[*]}" != ./tests/run.sh ]; then
    echo "fresh_root: ${cmd[*]}: exit $rc, ${t_inner}s"
    check "${cmd[*]} exits 0 in the fresh root" test "$rc" -eq 0
    if [ -d "$dest/bench/out" ]; then
        rm -rf bench/out/fresh && mkdir -p bench/out/fresh && cp -r "$dest/bench/out/." bench/out/fresh/
        echo "fresh_root: bench/out copied to bench/out/fresh:" $(ls bench/out/fresh)
    fi
    check "root unmounted and removed" cleanup
    echo "fresh_root: wall time $(($(date +%s) - start))s (debootstrap ${t_debootstrap}s, command ${t_inner}s); logs in $logs"
    check_done
    exit
fi
line=$(grep -E "^[0-9]+ passed, [0-9]+ failed" "$logs/inner.log" | tail -1)
inner_pass=0 inner_fail=0
if [ -n "$line" ]; then
    read -r inner_pass _ inner_fail _ <<<"$line"
    inner_fail=${inner_fail%,}
fi
echo "fresh_root: inner run: ${line:-no summary line}, exit $rc, ${t_inner}s"
check "inner ./tests/run.sh printed its summary" test -n "$line"
check "inner ./tests/run.sh: 0 failed, exit 0" test "$rc" -eq 0 -a "$inner_fail" -eq 0

# ---- 4. away with it -----------------------------------------------------------------------
check "root unmounted and removed" cleanup
echo "fresh_root: wall time $(($(date +%s) - start))s (debootstrap ${t_debootstrap}s, inner run ${t_inner}s); logs in $logs"
sh_passed=$((sh_passed + inner_pass))
sh_failed=$((sh_failed + inner_fail))
check_done
