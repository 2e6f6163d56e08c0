#!/bin/sh
# SPDX-License-Identifier: MIT
# install_test.sh BUILD_DIR ABI_SRC_DIR CC
# Installs the build into a temporary prefix, then proves a user can build
# and run against it through pkg-config and through find_package(mproc), and
# that the shared library exports nothing but mproc_ symbols.
set -eu
build=$1 src=$2 cc=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(ls -d "$prefix"/lib*/ | head -n 1)
libdir=${libdir%/}

# 1. pkg-config (the .pc file is relocatable: found from its own location).
export PKG_CONFIG_PATH=$libdir/pkgconfig
test "$(pkg-config --modversion mproc)" = "$(sed -n 's/#define MPROC_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/mproc/version.h")"
"$cc" -std=c11 -Wall -Wextra -Werror "$src/consumer.c" -o "$work/consumer_pc" \
    $(pkg-config --cflags --libs mproc)
LD_LIBRARY_PATH=$libdir "$work/consumer_pc"
"$cc" -std=c11 "$src/consumer.c" -o "$work/consumer_pc_static" \
    $(pkg-config --cflags mproc) "$libdir/libmproc.a" $(pkg-config --static --libs-only-other --libs-only-l mproc | sed 's/-lmproc//')
"$work/consumer_pc_static"

# 2. find_package(mproc) -> mproc::mproc and mproc::mproc_static.
mkdir "$work/cm"
cp "$src/consumer.c" "$work/cm/"
cp "$src/CMakeLists.consumer.txt" "$work/cm/CMakeLists.txt"
cmake -S "$work/cm" -B "$work/cm/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" >/dev/null
cmake --build "$work/cm/build" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/cm/build/consumer"
"$work/cm/build/consumer_static"

# 3. Only mproc_ symbols are exported; the SONAME carries the major version.
so=$(ls "$libdir"/libmproc.so.*.*.* | head -n 1)
bad=$(nm -D --defined-only "$so" | awk '{print $NF}' | grep -v '^mproc_' || true)
if [ -n "$bad" ]; then
    echo "exported symbols without the mproc_ prefix:" >&2
    echo "$bad" >&2
    exit 1
fi
objdump -p "$so" | grep -q 'SONAME *libmproc\.so\.0$'
test -x "$prefix/bin/mproc"
"$prefix/bin/mproc" version >/dev/null
echo "install test ok: $(nm -D --defined-only "$so" | wc -l) exported mproc_ symbols"
