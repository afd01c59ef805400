#!/usr/bin/env bash
# bench/run_db.sh: the database suite (`make bench-db`; method: docs/benchmarking.md).
#
# A throwaway PostgreSQL 15 (scripts/pg_test_server.sh) with bench/db/setup.sql's
# tables (pgbench runs a script of its own on them: no pgbench -i). Every
# client (weave, asyncpg, pgbench, wrk) runs on CPU 1 (taskset -c 1), the HTTP
# servers of the tfb figures on CPU 0, PostgreSQL unpinned; weave and its
# anchors alternate, run after run (A B C A B C ...). Every statement, on every side, is
# `SELECT id, name FROM bench_users WHERE id = $1` with a random id, prepared
# once per connection; every anchor runs at its best settings (the header
# says which), and every figure is followed by a '#' line with the CPU the
# client and the servers used in each run.
#
#   db.select_1conn   queries/s, 1 fiber on 1 connection (bench_pg select_1conn)
#                     vs asyncpg (1 connection) and pgbench -c 1
#                     (db.select_1conn_pgbench)
#   db.select_pool    64 fibers on a pool of 16 (bench_pg select_pool) vs asyncpg
#                     (64 tasks, pool of 16) and pgbench -c 16 (db.select_pool_pgbench)
#   db.pipelined      64 fibers on 1 connection, auto-pipelined with one Sync per
#                     statement (bench_pg pipelined) vs pgbench -c 1 with
#                     \startpipeline, 64 statements, \endpipeline (one Sync per 64)
#   db.batch          1 fiber sending the statements 64 at a time as one
#                     wv_pg_batch, one Sync per 64 (bench_pg batch): what pgbench's
#                     pipeline sends, against the same pgbench runs
#   db.pipelined_mechanism  the mechanism: bench_pg pipelined vs the same 64
#                     fibers without pipelining (bench_pg unpipelined); and a
#                     '#' line with the floor: libpq alone in pipeline mode, one
#                     Sync per statement, depth 64 (bench_pg libpq_pipeline)
#   db.tfb_db, db.tfb_queries (20 per request, one Sync each), db.tfb_fortunes
#                     req/s over HTTP (wrk -c 64, 1 thread): bench_tfb_server (1
#                     shard) vs FastAPI + asyncpg on uvicorn (uvloop, 1 worker)
#   db.sqlite_select  queries/s, the same select on SQLite through its lane
#                     (bench_db_sqlite, 1 fiber) vs Python's sqlite3 in a loop;
#   db.sqlite_select_16  the same from 16 fibers at once (bench_db_sqlite wide);
#                     then a comment line with the ceiling: sqlite3 in a plain C
#                     loop on the same core (bench_db_sqlite ... raw) vs Python
#
#   BUILD_DIR=dir    where bench_pg, bench_tfb_server, bench_db_sqlite are
#   BENCH_LONG=1     7 rounds, 10 s runs
#   DB_SECONDS=n     seconds per run (default 5, 10 with BENCH_LONG=1)
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
if ! "$py" -c 'import asyncpg, fastapi, uvicorn, uvloop, httptools' 2>/dev/null; then
    echo "run_db.sh: $py lacks asyncpg, fastapi, uvicorn, uvloop or httptools" \
        "(scripts/deps.sh bench installs them)" >&2
    exit 1
fi
if [[ $(nproc) -lt 2 ]]; then
    echo "run_db.sh: needs 2 CPUs" >&2
    exit 1
fi

secs=5
[[ ${BENCH_LONG:-0} == 1 ]] && secs=10
secs=${DB_SECONDS:-$secs}
depth=64 # db.pipelined: bench_pg's fibers on the connection, pgbench's statements per pipeline
sp='\startpipeline' ep='\endpipeline' # pgbench's meta-commands, as the output names them
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
    bench_drop_tmp "$tmp" "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=15480
while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
url=$("$root/scripts/pg_test_server.sh" start "$pgdir" "$port")
PGOPTIONS='-c client_min_messages=warning' psql "$url" -q -v ON_ERROR_STOP=1 \
    -f "$here/db/setup.sql" >/dev/null

pm=$(head -n 1 "$pgdir/data/postmaster.pid")

bench_header db "clients (weave, asyncpg, pgbench, wrk) on CPU 1 (taskset -c 1); PostgreSQL\
 15 (fsync off, loopback TCP) unpinned; the tfb HTTP servers on CPU 0 (taskset -c 0)"
pyver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
echo "# the statement, everywhere: SELECT id, name FROM bench_users WHERE id = \$1 (random id of" \
    "10,000), prepared once per connection; ${secs} s per run"
echo "# anchors at their best settings:"
echo "#   asyncpg $(pyver python3-asyncpg) on uvloop $(pyver python3-uvloop) (Debian python3):" \
    "statement cache on (prepared once per connection); pool: 16 connections opened before" \
    "the clock starts, released WITHOUT asyncpg's reset query (a Connection subclass whose" \
    "_get_reset_query() returns '': by default each release costs one more round trip," \
    "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL)"
echo "#   $(pgbench --version): -M prepared (its fastest mode), a script with the same statement" \
    "on the same table (bench/db/pgbench_tps.sh), -c N -j N; pipelined: $sp," \
    "$depth statements, $ep (-M prepared; one Sync per $depth statements, see" \
    "db.pipelined)"
echo "#   FastAPI $(pyver python3-fastapi) on uvicorn $(pyver python3-uvicorn) (--loop uvloop" \
    "--http httptools, 1 worker, --no-access-log), the same asyncpg pool settings (16" \
    "connections, no reset query); /queries: 20 statements, one round trip each, on one" \
    "pooled connection (TechEmpower's FastAPI entry)"
echo "# CPU lines: % of one core over each whole run (connecting and warm-up included), medians;" \
    "client = the load generator (bench_pg, asyncpg, pgbench, wrk), pg = PostgreSQL (the" \
    "postmaster and every process it forked), http = the tfb HTTP server"
bench_load_own "$pm"
bench_load_begin

# wrap VAR SIDE SERVERS CMD...: VAR=(the command CMD, measured by
# db/cpu_run.sh: its CPU and that of SERVERS, "name:pid,...", appended to
# $cpu_info under SIDE)
cpu_info=
wrap()
{
    local -n wrap_out=$1
    # shellcheck disable=SC2034 # a nameref: sets the caller's array
    wrap_out=("$here/db/cpu_run.sh" "$cpu_info" "$2" "$3" -- "${@:4}")
}

# cpu_line FIGURE: the '#' line of the CPU each side used, medians of its runs.
cpu_line()
{
    [[ -s $cpu_info ]] || return 0
    echo "# $1 CPU (% of one core, median of runs):$(awk '
        { side = $1; if (!(side in seen)) { seen[side] = 1; order[++ns] = side }
          for (i = 2; i <= NF; i++) {
              split($i, kv, "="); if (kv[1] == "wall") continue
              k = side SUBSEP kv[1]
              if (!(k in nk)) keys[side] = keys[side] " " kv[1]
              v[k, ++nk[k]] = kv[2] } }
        END {
            for (s = 1; s <= ns; s++) {
                side = order[s]; out = out (s > 1 ? ";" : "") " " side
                nkeys = split(keys[side], ks, " ")
                for (j = 1; j <= nkeys; j++) {
                    k = side SUBSEP ks[j]; n = nk[k]
                    for (a = 1; a <= n; a++) x[a] = v[k, a] + 0
                    for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++)
                        if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
                    m = n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
                    out = out " " ks[j] " " m
                }
            }
            print out
        }' "$cpu_info")"
}

# alternate FIGURE UNIT SIDE:ARRAY...: run the commands held in the arrays in
# turn (A B C A B C ...), BENCH_ROUNDS times; print the samples; leave each
# side's median in med[SIDE], and in failed[SIDE] why a side could not be
# measured (its later runs are skipped).
declare -A med=() failed=()
alternate()
{
    local fig=$1 unit=$2 r sv side v line
    shift 2
    local -A samples=()
    med=() failed=()
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for sv in "$@"; do
            side=${sv%%:*}
            [[ -z ${failed[$side]:-} ]] || continue
            local -n alt_cmd=${sv#*:}
            if v=$(bench_run "${alt_cmd[@]}"); then
                samples[$side]+=" $v"
            else
                failed[$side]="a run failed:"$'\n'"$v"
            fi
            unset -n alt_cmd
        done
    done
    line="# $fig samples ($unit):"
    for sv in "$@"; do
        side=${sv%%:*}
        if [[ -n ${failed[$side]:-} ]]; then
            line+=" $side failed |"
        else
            # shellcheck disable=SC2086 # the samples are words
            line+=" $side $(bench_fmt_all ${samples[$side]}) |"
            # shellcheck disable=SC2086
            med[$side]=$(bench_median ${samples[$side]})
        fi
    done
    echo "${line% |}"
}

# line NAME UNIT SIDE ANCHOR [LABEL]: the BENCH line of SIDE's median against
# ANCHOR's (LABEL: the anchor's name on the line, default ANCHOR), or why not
line()
{
    local name=$1 unit=$2 side=$3 anchor=$4 label=${5:-$4}
    if [[ -n ${failed[$side]:-} ]]; then
        bench_fail "$name" "$side: ${failed[$side]}"
    elif [[ -n ${failed[$anchor]:-} ]]; then
        bench_fail "$name" "$anchor: ${failed[$anchor]}"
    else
        bench_line "$name" "${med[$side]}" "$unit" "$label" "${med[$anchor]}" higher
    fi
}

# the tfb figures: both HTTP servers up at once on CPU 0, wrk alternating
tfb_figures()
{
    local wport=29901 fport=29902 i p path name wpid fpid settings
    for p in $wport $fport; do
        if ss -ltnH "sport = :$p" | grep -q .; then
            bench_fail db.tfb_db "port $p is taken by another process"
            return 0
        fi
    done
    taskset -c 0 env PORT=$wport WEAVE_SHARDS=1 DATABASE_URL="$url" "$build/bench_tfb_server" \
        >"$tmp/tfb-weave.log" 2>&1 &
    wpid=$!
    pids+=("$wpid")
    (cd "$here/db" && exec taskset -c 0 env DATABASE_URL="$url" "$py" -m uvicorn fastapi_tfb:app \
        --port $fport --loop uvloop --http httptools --workers 1 --log-level warning \
        --no-access-log) >"$tmp/tfb-fastapi.log" 2>&1 &
    fpid=$!
    pids+=("$fpid")
    for ((i = 0; i < 100; i++)); do
        curl -sf "http://127.0.0.1:$wport/db" >/dev/null 2>&1 &&
            curl -sf "http://127.0.0.1:$fport/db" >/dev/null 2>&1 && break
        sleep 0.1
    done
    # the listeners are the processes started here, and the answers are right
    # before anything is timed
    for p in "$wport:$wpid" "$fport:$fpid"; do
        if ! ss -ltnpH "sport = :${p%%:*}" | grep -q "pid=${p#*:},"; then
            bench_fail db.tfb_db "the listener on port ${p%%:*} is not the server started here"
            return 0
        fi
        if ! "$py" "$here/db/tfb_check.py" "http://127.0.0.1:${p%%:*}" >"$tmp/check.log" 2>&1; then
            bench_fail db.tfb_db "the server on port ${p%%:*} answered wrongly:" \
                "$(tail -n 2 "$tmp/check.log")"
            return 0
        fi
    done
    settings=$(curl -s "http://127.0.0.1:$fport/settings")
    echo "# db.tfb: FastAPI's settings, as it reports them: $settings"
    if [[ $settings != *'"loop":"uvloop"'* || $settings != *'"reset_query":""'* ]]; then
        bench_fail db.tfb_db "FastAPI does not run at the settings said above: $settings"
        return 0
    fi
    echo "# db.tfb: weave bench_tfb_server (1 shard, TFB_CONNS=${TFB_CONNS:-2} shared connections," \
        "auto-pipelined; /queries: 20 fibers, one wv_pg_query and one Sync each); wrk -t1 -c64;" \
        "server CPU = the HTTP server's, postgres's alongside"
    for name in db queries fortunes; do
        path=/$name
        [[ $name == queries ]] && path="/queries?queries=20"
        cpu_info=$tmp/cpu.tfb_$name
        wrap w weave "http:$wpid,pg:$pm" "$here/db/wrk_rps.sh" "http://127.0.0.1:$wport$path" "$secs"
        wrap a fastapi "http:$fpid,pg:$pm" "$here/db/wrk_rps.sh" "http://127.0.0.1:$fport$path" \
            "$secs"
        alternate "db.tfb_$name" req/s weave:w fastapi:a
        line "db.tfb_$name" req/s weave fastapi
        cpu_line "db.tfb_$name"
    done
}


for g in "${wanted[@]}"; do
    case $g in
        select_1conn)
            cpu_info=$tmp/cpu.select_1conn
            wrap w weave "pg:$pm" taskset -c 1 env WEAVE_SHARDS=1 "$build/bench_pg" "$url" \
                select_1conn "$secs"
            wrap a asyncpg "pg:$pm" taskset -c 1 "$py" "$here/db/asyncpg_select.py" "$url" 1conn \
                "$secs"
            wrap p pgbench "pg:$pm" "$here/db/pgbench_tps.sh" "$url" 1 "$secs"
            alternate db.select_1conn queries/s weave:w asyncpg:a pgbench:p
            line db.select_1conn queries/s weave asyncpg
            line db.select_1conn_pgbench queries/s weave pgbench
            cpu_line db.select_1conn
            ;;
        select_pool)
            cpu_info=$tmp/cpu.select_pool
            wrap w weave "pg:$pm" taskset -c 1 env WEAVE_SHARDS=1 "$build/bench_pg" "$url" \
                select_pool "$secs"
            wrap a asyncpg "pg:$pm" taskset -c 1 "$py" "$here/db/asyncpg_select.py" "$url" pool \
                "$secs"
            wrap p pgbench "pg:$pm" "$here/db/pgbench_tps.sh" "$url" 16 "$secs"
            alternate db.select_pool queries/s weave:w asyncpg:a pgbench:p
            line db.select_pool queries/s weave asyncpg
            line db.select_pool_pgbench queries/s weave pgbench
            cpu_line db.select_pool
            ;;
        pipelined)
            cpu_info=$tmp/cpu.pipelined
            wrap w weave "pg:$pm" taskset -c 1 env WEAVE_SHARDS=1 "$build/bench_pg" "$url" \
                pipelined "$secs"
            wrap p pgbench_pipeline "pg:$pm" "$here/db/pgbench_tps.sh" "$url" 1 "$secs" "$depth"
            wrap b weave_batch "pg:$pm" taskset -c 1 env WEAVE_SHARDS=1 "$build/bench_pg" "$url" \
                batch "$secs"
            wrap u weave_unpipelined "pg:$pm" taskset -c 1 env WEAVE_SHARDS=1 "$build/bench_pg" \
                "$url" unpipelined "$secs"
            wrap f libpq_pipeline "pg:$pm" taskset -c 1 "$build/bench_pg" "$url" libpq_pipeline \
                "$secs"
            echo "# db.pipelined: $depth statements in flight on 1 connection on both sides: weave's" \
                "$depth fibers (auto-pipelined: each statement with its own Sync, its own implicit" \
                "transaction) against pgbench -c 1 with $sp, $depth statements," \
                "$ep, which libpq sends with ONE Sync (pgbench 15 has no" \
                "${sp/start/sync}): PostgreSQL does less for pgbench (one transaction per $depth" \
                "statements), so db.batch compares the same wire: weave's wv_pg_batch of $depth" \
                "statements, one Sync, against the same pgbench runs"
            alternate db.pipelined queries/s weave:w pgbench_pipeline:p weave_batch:b \
                weave_unpipelined:u libpq_pipeline:f
            line db.pipelined queries/s weave pgbench_pipeline
            line db.batch queries/s weave_batch pgbench_pipeline
            echo "# db.pipelined_mechanism: what auto-pipelining gives, weave against itself" \
                "with wv_pg_opts.no_pipeline (the same $depth fibers, one statement on the wire" \
                "at a time): the mechanism, not an anchor"
            line db.pipelined_mechanism queries/s weave weave_unpipelined
            if [[ -n ${med[libpq_pipeline]:-} && -n ${med[weave]:-} ]]; then
                echo "# db.pipelined floor: libpq alone in pipeline mode (no runtime, a blocking" \
                    "loop, one Sync per statement, $depth at a time: the wire of weave's" \
                    "pipeline) does $(bench_fmt "${med[libpq_pipeline]}") queries/s; weave gets" \
                    "$(awk -v a="${med[weave]}" -v b="${med[libpq_pipeline]}" \
                        'BEGIN { printf "%.0f", 100 * a / b }')% of it"
            fi
            cpu_line db.pipelined
            ;;
        tfb)
            tfb_figures
            ;;
        sqlite)
            "$build/bench_db_sqlite" "$tmp/sqlite.db" 1 >/dev/null 2>&1 || true # creates the table
            # shellcheck disable=SC2034 # w and a are read by bench_figure (names)
            w=(taskset -c 1 "$build/bench_db_sqlite" "$tmp/sqlite.db" "$secs")
            # shellcheck disable=SC2034
            a=(taskset -c 1 "$py" "$here/db/sqlite_select.py" "$tmp/sqlite.db" "$secs")
            bench_figure db.sqlite_select queries/s python_sqlite3 higher w a
            # 16 fibers at once: the statements share a lane's hand-offs
            # shellcheck disable=SC2034
            w16=(taskset -c 1 "$build/bench_db_sqlite" "$tmp/sqlite.db" "$secs" wide)
            bench_figure db.sqlite_select_16 queries/s python_sqlite3 higher w16 a
            wide=$BENCH_A
            # the ceiling: sqlite3 in a C loop, no runtime, no offload, same core
            r=(taskset -c 1 "$build/bench_db_sqlite" "$tmp/sqlite.db" "$secs" raw)
            if bench_ab "$BENCH_ROUNDS" r a; then
                echo "# db.sqlite_select ceiling: sqlite3 in a plain C loop on the same core" \
                    "(no runtime, no offload, a statement at a time) does $BENCH_A queries/s," \
                    "$(awk -v a="$BENCH_A" -v b="$BENCH_B" 'BEGIN { printf "%.2f", a / b }')x" \
                    "python_sqlite3's $BENCH_B: no one-statement-at-a-time caller on one core" \
                    "gets past that; weave's 16 fibers do" \
                    "$(awk -v a="$wide" -v r="$BENCH_A" 'BEGIN { printf "%.0f", 100 * a / r }')%" \
                    "of it (a lane runs a batch of reads in one transaction)"
            else
                echo "# db.sqlite_select ceiling: the raw run failed: $BENCH_ERROR"
            fi
            ;;
        *) echo "run_db.sh: unknown figure group '$g'" >&2 ;;
    esac
done

bench_load_end
bench_finish
