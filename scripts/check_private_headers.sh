#!/usr/bin/env bash
# scripts/check_private_headers.sh
#
# Every header under src/<module>/ is private to that module: no file in
# src/<other>/ includes it. Modules talk through the public headers in
# include/weave/. The one exception is SHARED below: internal code that
# several modules use and that is no public API (src/aws/: the AWS
# request signer the S3 and Kinesis clients both sign with; src/base64/:
# base64 for gRPC metadata, memcached keys and Celery envelopes; src/h2io/: the
# nghttp2 plumbing the HTTP/2 server and the gRPC client both drive). Scans src/*/*.c and src/*/*.h for #include "X/..." where X
# is another directory under src/, prints each as
#   src/ws/ws.c:12: includes http/http_internal.h (another module's private header)
# and exits 1 if there is any. Run by CTest as the test `private_headers`.
set -euo pipefail

cd "$(dirname "$0")/.."
shopt -s nullglob

SHARED=(aws base64 h2io)

bad=0
for file in src/*/*.c src/*/*.h; do
    own=${file#src/}
    own=${own%%/*}
    # "lineno<TAB>dir/header" for every #include "dir/header" of the file
    while IFS=$'\t' read -r line inc; do
        dir=${inc%%/*}
        if [ "$dir" != "$own" ] && [ -d "src/$dir" ] && [[ " ${SHARED[*]} " != *" $dir "* ]]; then
            echo "$file:$line: includes $inc (another module's private header)"
            bad=$((bad + 1))
        fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"/]*/' "$file" |
        sed 's|^\([0-9]*\):[^"]*"\([^"]*\)".*|\1\t\2|' || true)
done

if [ "$bad" -ne 0 ]; then
    echo "check_private_headers: $bad include(s) of another module's private header;" \
        "use the public headers in include/weave/ instead" >&2
    exit 1
fi
echo "check_private_headers: no module includes another's private header"
