#!/usr/bin/env bash
# Install the Debian packages that weave's build and tests need, if missing.
# Idempotent, and fast (no apt call) when everything is already installed.
# Modules add their packages to PACKAGES below, one group per comment.
set -euo pipefail

PACKAGES=(
    # toolchain and build
    build-essential cmake ninja-build pkg-config
    # clang for the Asan build and libFuzzer (sanitizer runtimes), clang-format for style
    clang libclang-rt-14-dev clang-format
    # libraries the library links (CMakeLists.txt WEAVE_PKG_DEPS): compression
    zlib1g-dev libbrotli-dev libzstd-dev
    # unit tests
    libcmocka-dev
    # the aarch64 context switch, cross-built and run under qemu-user (tests/cross)
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
    # scripts and tests: Debian's python (always call /usr/bin/python3), ps
    python3 procps
    # WebSocket peer for the integration tests (tests/integration/test_websockets.py)
    python3-websockets
    # HTTP benchmarks: wrk, the nginx and h2o anchors, FastAPI on uvicorn's fast mode, curl, ss
    wrk nginx h2o python3-fastapi python3-uvicorn python3-uvloop python3-httptools curl iproute2
    # TLS (src/net/tls.c): OpenSSL 3, and its command line for the tests' certificates
    libssl-dev openssl
    # JSON reading: jsmn's tokenizer, header only (src/json/parse.c; bench/json_libs.md)
    libjsmn-dev
    # the browser test (tests/e2e): headless Chromium, driven by playwright-core from npm
    chromium
    # metrics (issue 6): a real Prometheus server and promtool for the exposition and
    # scrape tests, Python's prometheus_client as the scrape benchmark's anchor
    prometheus python3-prometheus-client
    # databases (issue 7): libpq and SQLite to link, a PostgreSQL 15 server and its client
    # tools (pgbench) for the tests and benchmarks, asyncpg as the benchmarks' anchor
    libpq-dev libsqlite3-dev postgresql-15 postgresql-client-15 python3-asyncpg
)

export DEBIAN_FRONTEND=noninteractive

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done

# Node.js and npm build the chapter 13 page (scripts/build_web.sh) and run the
# browser test. Any node on PATH will do (e.g. a newer one from NodeSource);
# only when there is no npm at all, take Debian's.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#PACKAGES[@]} packages present"
    exit 0
fi

install_cmd=(apt-get install -y -o DPkg::Lock::Timeout=900 --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive ${install_cmd[*]}" >&2
    exit 1
fi

echo "deps: installing ${missing[*]}"
apt-get update
"${install_cmd[@]}"
