#!/usr/bin/env bash
# bench/db/wrk_rps.sh URL SECONDS: one wrk run (1 thread, 64 connections, on
# CPU 1) for bench/run_db.sh; prints value=<requests/s>. Fails (its output on
# stderr) on any non-2xx answer or socket error.
set -euo pipefail
out=$(taskset -c 1 wrk -t1 -c64 -d"$2"s "$1" 2>&1)
if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
    printf '%s\n' "$out" >&2
    exit 1
fi
rps=$(sed -n 's/^Requests\/sec:[[:space:]]*\([0-9.]*\)/\1/p' <<<"$out")
if [[ -z $rps ]]; then
    printf '%s\n' "$out" >&2
    exit 1
fi
echo "value=$rps"
