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

name=s3_test_server
# shellcheck source=scripts/node_test_server.sh
. "$(dirname "$0")/node_test_server.sh"

# the answer must be s3rver's own listing, not another server's
answers()
{
    curl -sk --max-time 2 "$1://127.0.0.1:$2/" 2>/dev/null |
        grep -q '<DisplayName>S3rver</DisplayName>'
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
    ensure_node_packages s3rver/bin/s3rver.js
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd) # node runs from another directory
    # cd first, then start node alone in the background: $! is node's pid
    cd "$node_dir"
    node --openssl-legacy-provider node_modules/s3rver/bin/s3rver.js -d "$dir/data" -a 127.0.0.1 -p "$port" \
        ${args[@]+"${args[@]}"} >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    wait_ready $! "$dir" "$port" answers "$scheme" "$port"
    echo "$scheme://127.0.0.1:$port"
}

dispatch "$0 start DIR PORT [--tls CERT KEY] [BUCKET...] | stop DIR" "$@"
