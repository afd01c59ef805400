#!/usr/bin/env bash
# Install test: install build/release into a temporary prefix, then build and
# run tests/install/consumer.c against it (a) with pkg-config (shared lib) and
# (b) with find_package(weave) from tests/install/cmake_consumer (static and
# shared). Needs a built build/release (`make build`).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD_DIR=${WEAVE_BUILD_DIR:-build/release}
CC=${CC:-cc}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/weave-install-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PREFIX=$TMP/prefix

fail()
{
    echo "install test: FAILED: $*" >&2
    exit 1
}

[ -f "$BUILD_DIR/cmake_install.cmake" ] || fail "$BUILD_DIR is not a configured build (run make build)"

echo "install test: cmake --install $BUILD_DIR --prefix $PREFIX"
cmake --install "$BUILD_DIR" --prefix "$PREFIX" >"$TMP/install.log" || {
    cat "$TMP/install.log" >&2
    fail "cmake --install"
}
for f in lib/libweave.a lib/libweave.so lib/pkgconfig/weave.pc include/weave/rt.h \
    lib/cmake/weave/weaveConfig.cmake lib/cmake/weave/weaveConfigVersion.cmake \
    lib/cmake/weave/weaveTargets.cmake; do
    [ -e "$PREFIX/$f" ] || fail "not installed: $f"
done

# (a) pkg-config, shared library
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
flags=$(pkg-config --cflags --libs weave) || fail "pkg-config weave"
echo "install test: pkg-config: $flags"
# shellcheck disable=SC2086 # flags are meant to split
"$CC" -Wall -Wextra -Werror -o "$TMP/consumer_pc" tests/install/consumer.c $flags ||
    fail "compile consumer.c with pkg-config flags"
LD_LIBRARY_PATH=$PREFIX/lib "$TMP/consumer_pc" || fail "consumer (pkg-config, shared) exited $?"
ldd_out=$(LD_LIBRARY_PATH=$PREFIX/lib ldd "$TMP/consumer_pc") # not piped into grep -q: its early exit
# would SIGPIPE ldd and, under pipefail, fail the check at random
grep -q "$PREFIX/lib/libweave.so" <<<"$ldd_out" ||
    fail "consumer (pkg-config) is not linked to the installed libweave.so"

# (b) find_package(weave), static and shared
cmake -S tests/install/cmake_consumer -B "$TMP/cmake_consumer" -DCMAKE_PREFIX_PATH="$PREFIX" \
    >"$TMP/consumer-configure.log" 2>&1 || {
    cat "$TMP/consumer-configure.log" >&2
    fail "configure cmake_consumer"
}
weave_dir=$(sed -n 's/^weave_DIR:PATH=//p' "$TMP/cmake_consumer/CMakeCache.txt")
[ "$weave_dir" = "$PREFIX/lib/cmake/weave" ] || fail "find_package found weave in '$weave_dir'"
cmake --build "$TMP/cmake_consumer" >"$TMP/consumer-build.log" 2>&1 || {
    cat "$TMP/consumer-build.log" >&2
    fail "build cmake_consumer"
}
"$TMP/cmake_consumer/consumer_static" || fail "consumer_static (find_package) exited $?"
LD_LIBRARY_PATH=$PREFIX/lib "$TMP/cmake_consumer/consumer_shared" ||
    fail "consumer_shared (find_package) exited $?"

echo "install test: ok"
