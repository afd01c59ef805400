#!/usr/bin/env bash
# Install test: install build/release into a temporary prefix, then build and
# run tests/install/consumer.c against it (a) with pkg-config (shared lib) and
# (b) with find_package(weave) from tests/install/cmake_consumer (static and
# shared). Then README.md's "Your first service": (c) its hello.c and
# CMakeLists.txt blocks must be byte for byte examples/hello/hello.c and
# examples/hello/CMakeLists.txt; hello is built (d) with the README's
# pkg-config line and (e) with that CMakeLists.txt, and each binary is run on
# a free port, asked for greetings with curl and stopped with SIGTERM, which
# must end it with exit status 0. Needs a built build/release (`make build`
# or `make lib`) and curl.
set -euo pipefail

cd "$(dirname "$0")/../.."
BUILD_DIR=${WEAVE_BUILD_DIR:-build/release}
CC=${CC:-cc}

TMP=$(mktemp -d "${TMPDIR:-/tmp}/weave-install-test.XXXXXX")
PREFIX=$TMP/prefix
server_pid=""

cleanup()
{
    if [ -n "$server_pid" ]; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

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

# (c) README.md's "Your first service" shows examples/hello/ as it is.
# readme_block LANG: the first ```LANG fenced block of that section.
readme_block()
{
    awk -v fence='```'"$1" '
        !inblock && /^## / { insec = ($0 == "## Your first service"); next }
        insec && !inblock && !done && $0 == fence { inblock = 1; next }
        inblock && $0 == "```" { inblock = 0; done = 1; next }
        inblock { print }
        END { exit !done }' README.md
}
for pair in c:hello.c cmake:CMakeLists.txt; do
    lang=${pair%%:*} file=examples/hello/${pair#*:}
    readme_block "$lang" >"$TMP/readme-block" ||
        fail "README.md's \"Your first service\" has no \`\`\`$lang block (for $file)"
    if ! cmp -s "$TMP/readme-block" "$file"; then
        diff -u "$file" "$TMP/readme-block" | sed 's/^/  | /' >&2 || true
        fail "README.md's \`\`\`$lang block in \"Your first service\" differs from $file (diff: - file, + README)"
    fi
done
echo "install test: README.md's hello.c and CMakeLists.txt match examples/hello/"

command -v curl >/dev/null 2>&1 || fail "curl not found (scripts/deps.sh test installs it)"

# run_hello NAME BIN: start BIN on a free loopback port, check its answers,
# stop it with SIGTERM and expect exit status 0.
run_hello()
{
    local name=$1 bin=$2 port="" body want rc="" check path log
    log=$TMP/$(basename "$(dirname "$bin")").log
    LD_LIBRARY_PATH=$PREFIX/lib "$bin" --port 0 --host 127.0.0.1 --shards 1 >"$log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        port=$(sed -n 's#^listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$log" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        sed 's/^/  | /' "$log" >&2
        fail "$name did not print \"listening on http://127.0.0.1:PORT\" within 10 s"
    fi
    # the last one percent-decoded, its UTF-8 written as is
    for check in '/|{"message":"Hello, World!"}' \
        '/hello/Ada|{"message":"Hello, Ada!"}' \
        '/hello/J%C3%BCrgen|{"message":"Hello, J'$'\xc3\xbc''rgen!"}'; do
        path=${check%%|*} want=${check#*|}
        body=$(curl -sS --noproxy "*" --max-time 5 "http://127.0.0.1:$port$path") ||
            fail "$name: curl http://127.0.0.1:$port$path failed"
        [ "$body" = "$want" ] || fail "$name: GET $path answered '$body', not '$want'"
    done
    kill -TERM "$server_pid"
    for _ in $(seq 1 100); do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            rc=0
            wait "$server_pid" || rc=$?
            break
        fi
        sleep 0.1
    done
    [ -n "$rc" ] || fail "$name was still running 10 s after SIGTERM"
    server_pid=""
    if [ "$rc" != 0 ]; then
        sed 's/^/  | /' "$log" >&2
        fail "$name exited $rc on SIGTERM, not 0"
    fi
    echo "install test: $name answered on port $port and exited 0 on SIGTERM"
}

# (d) hello with the README's line: cc hello.c -o hello $(pkg-config --cflags --libs weave)
mkdir -p "$TMP/hello_pc"
cp examples/hello/hello.c "$TMP/hello_pc/"
# shellcheck disable=SC2086 # flags are meant to split
(cd "$TMP/hello_pc" && "$CC" -Wall -Wextra -Werror hello.c -o hello $flags) ||
    fail "compile examples/hello/hello.c with pkg-config flags"
run_hello "hello (pkg-config)" "$TMP/hello_pc/hello"

# (e) hello with examples/hello/CMakeLists.txt
cmake -S examples/hello -B "$TMP/hello_cmake" -DCMAKE_PREFIX_PATH="$PREFIX" \
    >"$TMP/hello-configure.log" 2>&1 || {
    cat "$TMP/hello-configure.log" >&2
    fail "configure examples/hello/CMakeLists.txt"
}
weave_dir=$(sed -n 's/^weave_DIR:PATH=//p' "$TMP/hello_cmake/CMakeCache.txt")
[ "$weave_dir" = "$PREFIX/lib/cmake/weave" ] || fail "examples/hello: find_package found weave in '$weave_dir'"
cmake --build "$TMP/hello_cmake" >"$TMP/hello-build.log" 2>&1 || {
    cat "$TMP/hello-build.log" >&2
    fail "build examples/hello with CMake"
}
run_hello "hello (CMake)" "$TMP/hello_cmake/hello"

echo "install test: ok"
