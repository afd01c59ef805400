#!/usr/bin/env bash
# bench/db/pgbench_tps.sh URL CLIENTS SECONDS [DEPTH]: pgbench running the
# statement bench_pg runs, `SELECT id, name FROM bench_users WHERE id = $1`
# with a random id in 1..10000, prepared once per connection (-M prepared,
# pgbench's fastest mode), CLIENTS connections and as many threads, on CPU 1,
# for bench/run_db.sh. Prints value=<statements/s>.
#
#   no DEPTH  one statement per transaction (pgbench's select-only loop, on
#             bench_users instead of pgbench_accounts: the same table, rows
#             and statement as weave and asyncpg)
#   DEPTH     pipelined: each transaction is \startpipeline, DEPTH statements,
#             \endpipeline (PostgreSQL 15's pgbench; -M prepared); value =
#             transactions/s x DEPTH. libpq's pipeline sends ONE Sync, at
#             \endpipeline, so the DEPTH statements run as one implicit
#             transaction (pgbench 15 has no \syncpipeline): the server does
#             less than for DEPTH statements with a Sync each.
set -euo pipefail
url=$1 clients=$2 secs=$3 depth=${4:-}
script=$(mktemp /tmp/weave-pgbench.XXXXXX)
trap 'rm -f "$script"' EXIT
{
    [[ -z $depth ]] || printf '%s\n' '\startpipeline'
    for ((i = 1; i <= ${depth:-1}; i++)); do
        echo "\\set id$i random(1, 10000)"
        echo "SELECT id, name FROM bench_users WHERE id = :id$i;"
    done
    [[ -z $depth ]] || printf '%s\n' '\endpipeline'
} >"$script"
out=$(taskset -c 1 pgbench -n -M prepared -f "$script" -c "$clients" -j "$clients" -T "$secs" \
    "$url" 2>&1)
tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' <<<"$out")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
if [[ -z $tps || ${failed:-0} != 0 ]]; then
    printf '%s\n' "$out" >&2
    exit 1
fi
printf '%s\n' "$out" | sed -n 's/^\(number of transactions actually processed\|latency average\)/# &/p' >&2
echo "value=$(awk -v t="$tps" -v d="${depth:-1}" 'BEGIN { printf "%.1f", t * d }')"
