#!/usr/bin/env bash
# Installs magpool for use without Bazel:
#   PREFIX/include/magpool/*.h, PREFIX/lib/libmagpool.a,
#   PREFIX/lib/libmagpool.so{,.1,.1.1.0} (SONAME libmagpool.so.1),
#   PREFIX/lib/pkgconfig/magpool.pc
# Run as `bazel run //:install -- PREFIX`; Bazel passes the built files first.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bazel run //:install -- PREFIX" >&2
    exit 2
fi
prefix="${!#}"
case "$prefix" in
    /*) ;;
    *) prefix="${BUILD_WORKING_DIRECTORY:-$PWD}/$prefix" ;;
esac
version=1.1.0   # minor: symbols added (src/magpool.map MAGPOOL_1.1)
mkdir -p "$prefix/include/magpool" "$prefix/lib/pkgconfig"
n=$#
i=0
for f in "$@"; do
    i=$((i + 1))
    [ "$i" -eq "$n" ] && break
    case "$f" in
        *.h) install -m 0644 "$f" "$prefix/include/magpool/" ;;
        *.pc.in) sed "s|@PREFIX@|$prefix|g; s|@VERSION@|$version|g" "$f" > "$prefix/lib/pkgconfig/magpool.pc" ;;
        *libmagpool.so.1)
            install -m 0755 "$f" "$prefix/lib/libmagpool.so.$version"
            ln -sf "libmagpool.so.$version" "$prefix/lib/libmagpool.so.1"
            ln -sf "libmagpool.so.1" "$prefix/lib/libmagpool.so" ;;
        # An alwayslink cc_library's archive is named .lo; it is a plain ar archive.
        *.a | *.lo) install -m 0644 "$f" "$prefix/lib/libmagpool.a" ;;
        *) ;; # the cc_library's own unversioned .so is not installed
    esac
done
echo "magpool $version installed in $prefix"
