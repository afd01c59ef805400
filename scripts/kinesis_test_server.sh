#!/usr/bin/env bash
# kinesis-local (npm kinesis-local, a build of kinesis-mock pinned in
# tests/integration/node/package.json), for the Kinesis client's tests
# (tests/unit/test_kinesis.c, tests/integration/test_kinesis.py). Installs
# the pinned Node packages with `npm ci` first if they are missing.
#
#   scripts/kinesis_test_server.sh start DIR PORT [TLS_PORT]
#       start kinesis-local (its log in DIR/log, its pid in DIR/pid) with
#       plain HTTP on PORT and HTTPS (its own self-signed certificate) on
#       TLS_PORT, by default the first free port above PORT; wait until it
#       answers as kinesis-local (a signed ListStreams answered with
#       StreamNames) and print its endpoint, http://127.0.0.1:PORT
#   scripts/kinesis_test_server.sh stop DIR
#       stop it (SIGTERM, then SIGKILL after 5 s) and wait until it is gone
#
# kinesis-local listens on every interface (*:PORT), not only loopback:
# it has no option to choose the address. Its default ports (4567 for
# HTTPS, 4568 for HTTP) are s3rver's default too, so ports are always
# given. It does not check SigV4 signatures (tests/unit/test_kinesis_sign.c
# checks ours against botocore) but refuses a request without an
# Authorization header, and it does not enforce PutRecords' request
# limits (500 records, 5 MiB), only a record's size.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
node_dir=$root/tests/integration/node

die()
{
    echo "kinesis_test_server: $*" >&2
    exit 1
}

# The pinned packages, installed once: test_s3 and test_kinesis may start
# their servers at the same moment, and two `npm ci` in one folder would
# undo each other, so the install holds a lock (the one s3_test_server.sh
# takes too).
ensure_kinesis_local()
{
    command -v node >/dev/null 2>&1 || die "node not found (scripts/deps.sh installs nodejs and npm)"
    local lock
    lock=${TMPDIR:-/tmp}/weave-npm-ci-$(printf '%s' "$node_dir" | md5sum | cut -c1-12).lock
    (
        flock 9
        if [ ! -f "$node_dir/node_modules/kinesis-local/main.js" ]; then
            echo "kinesis_test_server: npm ci in $node_dir" >&2
            cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >&2
        fi
    ) 9>"$lock" || die "npm ci failed in $node_dir"
}

port_free()
{
    ! ss -ltnH "sport = :$1" | grep -q .
}

# A signed ListStreams (any key: kinesis-local does not check it) must
# come back as kinesis-local's answer, not another server's.
answers()
{
    curl -s --max-time 2 --aws-sigv4 "aws:amz:us-east-1:kinesis" --user weave:weave \
        -H 'Content-Type: application/x-amz-json-1.1' \
        -H 'X-Amz-Target: Kinesis_20131202.ListStreams' -d '{}' \
        "http://127.0.0.1:$1/" 2>/dev/null | grep -q '"StreamNames"'
}

start()
{
    [ $# -ge 2 ] || die "usage: $0 start DIR PORT [TLS_PORT]"
    local dir=$1 port=$2 tls_port=${3:-}
    if [ -z "$tls_port" ]; then
        tls_port=$((port + 1))
        while ! port_free "$tls_port"; do tls_port=$((tls_port + 1)); done
    fi
    port_free "$port" || die "port $port is taken"
    ensure_kinesis_local
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd) # node runs from another directory
    # cd first, then start node alone in the background: $! is node's pid
    cd "$node_dir"
    KINESIS_MOCK_CERT_PATH=$node_dir/node_modules/kinesis-local/server.json \
        KINESIS_MOCK_PLAIN_PORT=$port KINESIS_MOCK_TLS_PORT=$tls_port \
        LOG_LEVEL=WARN AWS_REGION=us-east-1 \
        node node_modules/kinesis-local/main.js >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    local pid=$!
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/log" >&2
            die "kinesis-local exited (port $port or $tls_port taken?)"
        fi
        if answers "$port"; then
            echo "http://127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    die "kinesis-local did not answer on port $port within 30 s"
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
*) die "usage: $0 start DIR PORT [TLS_PORT] | stop DIR" ;;
esac
