#!/usr/bin/env bash
# bench/db/pgbench_tps.sh URL CLIENTS SECONDS: pgbench's select-only workload
# (-S -M prepared, CLIENTS connections and threads, on CPU 1) for
# bench/run_db.sh; prints value=<transactions/s> (each one a select by key).
set -euo pipefail
out=$(taskset -c 1 pgbench -n -S -M prepared -c "$2" -j "$2" -T "$3" "$1" 2>&1)
tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
if [[ -z $tps ]]; then
    printf '%s\n' "$out" >&2
    exit 1
fi
echo "value=$tps"
