#!/usr/bin/env bash
# s3rver (npm s3rver, pinned in tests/integration/node/package.json) on
# loopback, for the S3 client's tests (tests/unit/test_s3.c,
# tests/integration/test_s3.py). Installs the pinned Node packages with
# `npm ci` first if they are missing.
#
#   scripts/s3_test_server.sh start DIR PORT [--tls CERT KEY] [BUCKET...]
#       start s3rver with its data in DIR/data (its log in DIR/log, its pid
#       in DIR/pid) on 127.0.0.1:PORT, with these buckets made; wait until
#       it answers as s3rver (its owner's name in the bucket listing) and
#       print its endpoint, http://127.0.0.1:PORT (https:// with --tls)
#   scripts/s3_test_server.sh stop DIR
#       stop it (SIGTERM, then SIGKILL after 5 s) and wait until it is gone
#
# s3rver's credentials are S3RVER / S3RVER. It does not check SigV4
# signatures (tests/unit/test_s3_sign.c checks ours against botocore), but
# refuses an unknown access key (InvalidAccessKeyId) and requests without
# x-amz-content-sha256. Its continuation tokens are DES-encrypted, which
# OpenSSL 3 keeps in its legacy provider: without
# --openssl-legacy-provider every truncated listing is a 500.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
node_dir=$root/tests/integration/node

die()
{
    echo "s3_test_server: $*" >&2
    exit 1
}

ensure_s3rver()
{
    command -v node >/dev/null 2>&1 || die "node not found (scripts/deps.sh installs nodejs and npm)"
    # one npm ci at a time in that folder (scripts/kinesis_test_server.sh
    # takes the same lock: the two tests may start their servers at once)
    local lock
    lock=${TMPDIR:-/tmp}/weave-npm-ci-$(printf '%s' "$node_dir" | md5sum | cut -c1-12).lock
    (
        flock 9
        if [ ! -f "$node_dir/node_modules/s3rver/bin/s3rver.js" ]; then
            echo "s3_test_server: npm ci in $node_dir" >&2
            cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >&2
        fi
    ) 9>"$lock" || die "npm ci failed in $node_dir"
}

start()
{
    [ $# -ge 2 ] || die "usage: $0 start DIR PORT [--tls CERT KEY] [BUCKET...]"
    local dir=$1 port=$2 scheme=http
    shift 2
    local args=()
    if [ "${1:-}" = --tls ]; then
        [ $# -ge 3 ] || die "--tls needs CERT and KEY"
        args+=(--cert "$2" --key "$3")
        scheme=https
        shift 3
    fi
    local bucket
    for bucket in "$@"; do
        args+=(--configure-bucket "$bucket")
    done
    ensure_s3rver
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd) # node runs from another directory
    # cd first, then start node alone in the background: $! is node's pid
    cd "$node_dir"
    node --openssl-legacy-provider node_modules/s3rver/bin/s3rver.js -d "$dir/data" -a 127.0.0.1 -p "$port" \
        ${args[@]+"${args[@]}"} >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    local pid=$!
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/log" >&2
            die "s3rver exited (port $port taken?)"
        fi
        # the answer must be s3rver's own listing, not another server's
        if curl -sk --max-time 2 "$scheme://127.0.0.1:$port/" 2>/dev/null |
            grep -q '<DisplayName>S3rver</DisplayName>'; then
            echo "$scheme://127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    die "s3rver did not answer on port $port within 30 s"
}

stop()
{
    [ $# -ge 1 ] || die "usage: $0 stop DIR"
    local dir=$1 pid
    [ -f "$dir/pid" ] || return 0
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
}

case ${1:-} in
start)
    shift
    start "$@"
    ;;
stop)
    shift
    stop "$@"
    ;;
*) die "usage: $0 start DIR PORT [--tls CERT KEY] [BUCKET...] | stop DIR" ;;
esac
