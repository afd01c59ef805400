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

name=kinesis_test_server
# shellcheck source=scripts/node_test_server.sh
. "$(dirname "$0")/node_test_server.sh"

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
    ensure_node_packages kinesis-local/main.js
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd) # node runs from another directory
    # cd first, then start node alone in the background: $! is node's pid
    cd "$node_dir"
    KINESIS_MOCK_CERT_PATH=$node_dir/node_modules/kinesis-local/server.json \
        KINESIS_MOCK_PLAIN_PORT=$port KINESIS_MOCK_TLS_PORT=$tls_port \
        LOG_LEVEL=WARN AWS_REGION=us-east-1 \
        node node_modules/kinesis-local/main.js >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    wait_ready $! "$dir" "$port" answers "$port"
    echo "http://127.0.0.1:$port"
}

dispatch "$0 start DIR PORT [TLS_PORT] | stop DIR" "$@"
