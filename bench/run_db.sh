#!/usr/bin/env bash
# bench/run_db.sh: the database suite (`make bench-db`; method: docs/benchmarking.md).
#
# A throwaway PostgreSQL 15 (scripts/pg_test_server.sh) with bench/db/setup.sql's
# tables and pgbench's own (pgbench -i). Every client (weave, asyncpg, pgbench,
# wrk) runs on CPU 1 (taskset -c 1); the servers (PostgreSQL's backends, the
# HTTP servers of the tfb figures) on CPU 0; weave and its anchors alternate,
# run after run.
#
#   db.select_1conn   queries/s, single-row select by id, 1 fiber on 1 connection
#                     (bench_pg select_1conn) vs asyncpg (1 connection) and
#                     pgbench -S -M prepared -c 1 (db.select_1conn_pgbench)
#   db.select_pool    64 fibers on a pool of 16 (bench_pg select_pool) vs asyncpg
#                     (64 tasks, pool of 16) and pgbench -c 16 (db.select_pool_pgbench)
#   db.pipelined      64 fibers on 1 connection, auto-pipelined (bench_pg pipelined)
#                     vs the same without pipelining (bench_pg unpipelined) and
#                     pgbench -c 1 (db.pipelined_pgbench)
#   db.tfb_db, db.tfb_queries (20 per request), db.tfb_fortunes
#                     req/s over HTTP (wrk -c 64, 1 thread): bench_tfb_server (1
#                     shard) vs FastAPI + asyncpg on uvicorn (uvloop, 1 worker)
#   db.sqlite_select  queries/s, the same select on SQLite through the offload
#                     pool (bench_db_sqlite, 1 fiber) vs Python's sqlite3 in a loop;
#                     then a comment line with the ceiling: sqlite3 in a plain C
#                     loop on the same core (bench_db_sqlite ... raw) vs Python
#
#   BUILD_DIR=dir    where bench_pg, bench_tfb_server, bench_db_sqlite are
#   BENCH_LONG=1     7 rounds, 10 s runs
#   DB_FIGURES="select_1conn select_pool pipelined tfb sqlite"   run only these
#   BENCH_KEEP=1     keep the temp dir (server logs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$here/..
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$root/build/release}
py=/usr/bin/python3 # Debian's, with asyncpg, FastAPI, uvicorn
for f in bench_pg bench_tfb_server bench_db_sqlite; do
    if [[ ! -x $build/$f ]]; then
        echo "run_db.sh: no $build/$f; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in wrk curl ss taskset psql pgbench; do
    command -v "$tool" >/dev/null || {
        echo "run_db.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    }
done
if ! "$py" -c 'import asyncpg, fastapi, uvicorn' 2>/dev/null; then
    echo "run_db.sh: $py lacks asyncpg, fastapi or uvicorn (scripts/deps.sh bench installs them)" >&2
    exit 1
fi
if [[ $(nproc) -lt 2 ]]; then
    echo "run_db.sh: needs 2 CPUs" >&2
    exit 1
fi

secs=5
[[ ${BENCH_LONG:-0} == 1 ]] && secs=10
read -r -a wanted <<<"${DB_FIGURES:-select_1conn select_pool pipelined tfb sqlite}"

tmp=$(mktemp -d /tmp/weave-bench-db.XXXXXX)
# its own directory: the postgres user must reach it (mktemp's are 0700)
pgdir=$(mktemp -d /tmp/weave-bench-pg.XXXXXX)
pids=()
cleanup()
{
    local p
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    "$root/scripts/pg_test_server.sh" stop "$pgdir" || true
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "# kept $tmp and $pgdir"
    else
        rm -rf "$tmp" "$pgdir"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=15480
while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
url=$("$root/scripts/pg_test_server.sh" start "$pgdir" "$port")
PGOPTIONS='-c client_min_messages=warning' psql "$url" -q -v ON_ERROR_STOP=1 \
    -f "$here/db/setup.sql" >/dev/null
pgbench -i -q -s 1 "$url" >"$tmp/pgbench-init.log" 2>&1

bench_header db "clients (weave, asyncpg, pgbench, wrk) on CPU 1 (taskset -c 1); PostgreSQL\
 15 (fsync off, loopback TCP) unpinned; the tfb HTTP servers on CPU 0 (taskset -c 0)"
echo "# anchors: asyncpg $(dpkg-query -W -f='${Version}' python3-asyncpg 2>/dev/null || echo '?')," \
    "$(pgbench --version), FastAPI $(dpkg-query -W -f='${Version}' python3-fastapi 2>/dev/null ||
        echo '?') on uvicorn (uvloop, httptools); ${secs} s per run"
bench_load_begin


# the tfb figures: both HTTP servers up at once on CPU 0, wrk alternating
tfb_figures()
{
    local wport=29901 fport=29902 i p path name
    for p in $wport $fport; do
        if ss -ltnH "sport = :$p" | grep -q .; then
            bench_fail db.tfb_db "port $p is taken by another process"
            return 0
        fi
    done
    taskset -c 0 env PORT=$wport WEAVE_SHARDS=1 DATABASE_URL="$url" "$build/bench_tfb_server" \
        >"$tmp/tfb-weave.log" 2>&1 &
    pids+=($!)
    (cd "$here/db" && exec taskset -c 0 env DATABASE_URL="$url" "$py" -m uvicorn fastapi_tfb:app \
        --port $fport --loop uvloop --http httptools --workers 1 --log-level warning) \
        >"$tmp/tfb-fastapi.log" 2>&1 &
    pids+=($!)
    for ((i = 0; i < 100; i++)); do
        curl -sf "http://127.0.0.1:$wport/db" >/dev/null 2>&1 &&
            curl -sf "http://127.0.0.1:$fport/db" >/dev/null 2>&1 && break
        sleep 0.1
    done
    # the answers are right before anything is timed
    for p in $wport $fport; do
        if ! "$py" "$here/db/tfb_check.py" "http://127.0.0.1:$p" >"$tmp/check-$p.log" 2>&1; then
            bench_fail db.tfb_db "the server on port $p answered wrongly: $(tail -n 2 "$tmp/check-$p.log")"
            return 0
        fi
    done
    for name in db queries fortunes; do
        path=/$name
        [[ $name == queries ]] && path="/queries?queries=20"
        w=("$here/db/wrk_rps.sh" "http://127.0.0.1:$wport$path" "$secs")
        a=("$here/db/wrk_rps.sh" "http://127.0.0.1:$fport$path" "$secs")
        bench_figure "db.tfb_$name" req/s fastapi higher w a
    done
}


for g in "${wanted[@]}"; do
    case $g in
        select_1conn)
            w=(taskset -c 1 env WEAVE_SHARDS=1 "$build/bench_pg" "$url" select_1conn "$secs")
            a=(taskset -c 1 "$py" "$here/db/asyncpg_select.py" "$url" 1conn "$secs")
            p=("$here/db/pgbench_tps.sh" "$url" 1 "$secs")
            bench_figure db.select_1conn queries/s asyncpg higher w a
            bench_figure db.select_1conn_pgbench queries/s pgbench higher w p
            ;;
        select_pool)
            w=(taskset -c 1 env WEAVE_SHARDS=1 "$build/bench_pg" "$url" select_pool "$secs")
            a=(taskset -c 1 "$py" "$here/db/asyncpg_select.py" "$url" pool "$secs")
            p=("$here/db/pgbench_tps.sh" "$url" 16 "$secs")
            bench_figure db.select_pool queries/s asyncpg higher w a
            bench_figure db.select_pool_pgbench queries/s pgbench higher w p
            ;;
        pipelined)
            w=(taskset -c 1 env WEAVE_SHARDS=1 "$build/bench_pg" "$url" pipelined "$secs")
            u=(taskset -c 1 env WEAVE_SHARDS=1 "$build/bench_pg" "$url" unpipelined "$secs")
            p=("$here/db/pgbench_tps.sh" "$url" 1 "$secs")
            bench_figure db.pipelined queries/s unpipelined higher w u
            bench_figure db.pipelined_pgbench queries/s pgbench higher w p
            ;;
        tfb)
            tfb_figures
            ;;
        sqlite)
            "$build/bench_db_sqlite" "$tmp/sqlite.db" 1 >/dev/null 2>&1 || true # creates the table
            w=(taskset -c 1 "$build/bench_db_sqlite" "$tmp/sqlite.db" "$secs")
            a=(taskset -c 1 "$py" "$here/db/sqlite_select.py" "$tmp/sqlite.db" "$secs")
            bench_figure db.sqlite_select queries/s python_sqlite3 higher w a
            # the ceiling: sqlite3 in a C loop, no runtime, no offload, same core
            r=(taskset -c 1 "$build/bench_db_sqlite" "$tmp/sqlite.db" "$secs" raw)
            if bench_ab "$BENCH_ROUNDS" r a; then
                echo "# db.sqlite_select ceiling: sqlite3 in a plain C loop on the same core" \
                    "(no runtime, no offload) does $BENCH_A queries/s," \
                    "$(awk -v a="$BENCH_A" -v b="$BENCH_B" 'BEGIN { printf "%.2f", a / b }')x" \
                    "python_sqlite3's $BENCH_B: no implementation on one core gets past that"
            else
                echo "# db.sqlite_select ceiling: the raw run failed: $BENCH_ERROR"
            fi
            ;;
        *) echo "run_db.sh: unknown figure group '$g'" >&2 ;;
    esac
done

bench_load_end
bench_finish
