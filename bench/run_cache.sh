#!/usr/bin/env bash
# bench/run_cache.sh: the cache suite (`make bench-cache`; method: docs/benchmarking.md).
#
# A throwaway Redis 7 (scripts/redis_test_server.sh, no persistence, one
# I/O thread) on CPU 0 (taskset -c 0), every Redis client on CPU 1
# (taskset -c 1): the redis figures need both cores; the same for a
# throwaway memcached (scripts/memcached_test_server.sh, one worker thread)
# and its clients. The key set, loaded
# before anything is timed (bench_redis preload): 10,000 keys
# key:000000000000 .. key:000000009999 (redis-benchmark -r's spelling), each
# holding its own 3-byte value; every side GETs random keys of it, and every
# weave GET is checked against its key's value (redis-benchmark's runs are
# checked through the server's keyspace_hits and keyspace_misses). Weave is
# bench_redis, one shard. Weave and its anchor take turns, run after run,
# and every redis figure is followed by a '#' line with the CPU the server
# and the client used in each run's timed window.
#
#   redis.get            GETs/s: 50 fibers, each on its own dedicated
#                        connection (wv_redis_acquire), one GET in flight per
#                        connection, vs redis-benchmark -t get -c 50
#                        --threads 1 (bench/cache/redis_benchmark.sh)
#   redis.get_pipelined  GETs/s: the same 50 connections, 16 GETs per round
#                        trip (a wv_redis_pipe on each handle), vs
#                        redis-benchmark -c 50 -P 16
#   redis.autopipe       GETs/s: 1,000 fibers on one client (its one shared
#                        connection) with auto-pipelining, vs the same with
#                        .no_autopipeline = true (each command its own send,
#                        still many in flight); then a '#' line with the same
#                        fibers taking turns on one connection, one command
#                        in flight at a time (pool_size 1, acquire/GET/release)
#   redis.asyncio        GETs/s: 50 fibers through one client with its
#                        defaults, vs Python's redis.asyncio on uvloop, 50
#                        tasks sharing one Redis and its default pool
#                        (bench/cache/redis_asyncio_get.py)
#   cache.memory_get, cache.memory_set, cache.memory_miss
#                        ns per operation of the embedded cache's store
#                        (bench_cache_store get|set|miss) vs Python's
#                        cachetools.LRUCache (bench/cache/cachetools_get.py),
#                        on CPU 0 alone; a '#' line with the thread CPU time;
#                        for get, a '#' line with its floor (bench_cache_store
#                        floor: a bare table doing the same lookups and copies)
#   memcache.get         gets/s: 50 fibers, each with a client of its own (its
#                        own connection), one get in flight on each, vs
#                        memcaslap -T 1 -c 50, gets only (bench/cache/memcaslap.sh)
#   memcache.pymemcache  gets/s: 50 fibers through one client with its defaults
#                        (one connection, auto-pipelined), vs pymemcache's
#                        PooledClient from 50 threads (bench/cache/pymemcache_get.py)
#   resp.*               bench_resp's own lines, passed through (weave's RESP
#                        reader vs hiredis's, thread CPU time, CPU 0)
#
#   BUILD_DIR=dir        where bench_redis, bench_cache_store, bench_resp are
#   BENCH_LONG=1         7 rounds, 10 s runs
#   BENCH_ROUNDS=n       override the number of rounds
#   CACHE_SECONDS=n      seconds per redis run (default 5, 10 with BENCH_LONG=1);
#                        the memory runs last about 2/5 of it
#   CACHE_FIGURES="get get_pipelined autopipe asyncio memcache memory resp"   run only these
#   BENCH_KEEP=1         keep the temp dir (the server's log)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$here/..
rounds_given=${BENCH_ROUNDS:-}
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$root/build/release}
py=/usr/bin/python3 # Debian's, with redis (redis.asyncio), hiredis, uvloop, cachetools
for f in bench_redis bench_memcache bench_cache_store bench_resp; do
    if [[ ! -x $build/$f ]]; then
        echo "run_cache.sh: no $build/$f; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in redis-server redis-cli redis-benchmark memcached memcaslap ss taskset; do
    command -v "$tool" >/dev/null || {
        echo "run_cache.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    }
done
if ! "$py" -c 'import redis.asyncio, uvloop, cachetools, pymemcache' 2>/dev/null; then
    echo "run_cache.sh: $py lacks redis (redis.asyncio), uvloop, cachetools or pymemcache" \
        "(scripts/deps.sh bench installs them)" >&2
    exit 1
fi
if [[ $(nproc) -lt 2 ]]; then
    echo "run_cache.sh: needs 2 CPUs (Redis on CPU 0, the clients on CPU 1)" >&2
    exit 1
fi

secs=5
[[ ${BENCH_LONG:-0} == 1 ]] && secs=10
secs=${CACHE_SECONDS:-$secs}
conns=50     # redis.get, redis.get_pipelined: connections; redis.asyncio: fibers and tasks
depth=16     # redis.get_pipelined: GETs per round trip
autofib=1000 # redis.autopipe: fibers
read -r -a wanted <<<"${CACHE_FIGURES:-get get_pipelined autopipe asyncio memcache memory resp}"

tmp=$(mktemp -d /tmp/weave-bench-cache.XXXXXX)
rdir=$tmp/redis mdir=$tmp/memcached
cleanup()
{
    "$root/scripts/redis_test_server.sh" stop "$rdir" || true
    "$root/scripts/memcached_test_server.sh" stop "$mdir" 2>/dev/null || true
    bench_drop_tmp "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ the server

port=16480
while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
url=$(taskset -c 0 "$root/scripts/redis_test_server.sh" start "$rdir" "$port")
rpid=$(cat "$rdir/redis.pid")
# the listener is the server started here, and every thread of it runs on CPU 0
if ! ss -ltnpH "sport = :$port" | grep -q "pid=$rpid,"; then
    echo "run_cache.sh: the listener on port $port is not the Redis started here" >&2
    exit 1
fi
for t in /proc/"$rpid"/task/*; do
    if [[ $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status") != 0 ]]; then
        echo "run_cache.sh: a thread of Redis may run on other CPUs than CPU 0" >&2
        exit 1
    fi
done
taskset -c 1 "$build/bench_redis" preload "$url" >"$tmp/preload.log" 2>&1 || {
    echo "run_cache.sh: loading the key set failed:" >&2
    cat "$tmp/preload.log" >&2
    exit 1
}
if [[ $(redis-cli -p "$port" dbsize) != 10000 ]]; then
    echo "run_cache.sh: the server holds $(redis-cli -p "$port" dbsize) keys, not 10000" >&2
    exit 1
fi

# the memcached: one worker thread (-t 1) on CPU 0, the key set preloaded the same way
mport=$((port + 1))
while ss -ltnH "sport = :$mport" | grep -q .; do mport=$((mport + 1)); done
maddr=$(taskset -c 0 "$root/scripts/memcached_test_server.sh" start "$mdir" "$mport" -t 1)
mpid=$(cat "$mdir/pid")
if ! ss -ltnpH "sport = :$mport" | grep -q "pid=$mpid,"; then
    echo "run_cache.sh: the listener on port $mport is not the memcached started here" >&2
    exit 1
fi
taskset -c 1 "$build/bench_memcache" preload "$maddr" >"$tmp/mpreload.log" 2>&1 || {
    echo "run_cache.sh: loading the memcached key set failed:" >&2
    cat "$tmp/mpreload.log" >&2
    exit 1
}

bench_header cache "Redis and memcached on CPU 0 (taskset -c 0), every client (bench_redis and\
 bench_memcache with 1 shard, redis-benchmark, memcaslap, Python) on CPU 1 (taskset -c 1): the\
 redis and memcache figures need both cores; cache.memory_* and resp.* on CPU 0 alone"
pyver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
hiredis_py=$("$py" -c 'import redis.utils as u; print("on" if u.HIREDIS_AVAILABLE else "off")' \
    2>/dev/null || echo '?')
echo "# server: $(redis-server --version | awk '{ print $1, $2, $3 }') on 127.0.0.1:$port" \
    "(scripts/redis_test_server.sh: no persistence, 1 I/O thread), the key set: 10,000 keys" \
    "key:000000000000 .. key:000000009999, 3-byte values; ${secs} s per redis run after a warm-up"
echo "# anchors at their best settings:"
echo "#   $(redis-benchmark --version | awk '{ print $1, $2 }'): -t get -d 3 -r 10000" \
    "--threads 1 --csv, -c $conns (-P $depth for redis.get_pipelined); a first short run warms" \
    "up and sizes -n to ${secs} s (bench/cache/redis_benchmark.sh)"
echo "#   redis.asyncio (python3-redis $(pyver python3-redis)) on uvloop $(pyver python3-uvloop):" \
    "$conns tasks sharing one Redis.from_url() with its default connection pool (no" \
    "max_connections: a connection per concurrent task), bytes replies, hiredis's parser" \
    "$hiredis_py (python3-hiredis $(pyver python3-hiredis), which redis-py uses when installed)"
echo "#   $(memcaslap -V 2>&1 | head -n 1) (libmemcached-tools $(pyver libmemcached-tools)):" \
    "-T 1 -c $conns -w 1k -t ${secs}s, gets only, 16-byte keys, 3-byte values" \
    "(bench/cache/memcaslap.sh); memcached $(memcached -V | awk '{ print $2 }') -t 1 on" \
    "127.0.0.1:$mport, the same key set as Redis's"
echo "#   pymemcache $(pyver python3-pymemcache): PooledClient(max_pool_size=$conns) shared by" \
    "$conns threads, no serializer, TCP_NODELAY (bench/cache/pymemcache_get.py)"
echo "#   cachetools $(pyver python3-cachetools).LRUCache(maxsize=10000) on Python" \
    "$("$py" -c 'import sys; print(sys.version.split()[0])')"
echo "# CPU lines: % of one core over each run's timed window (warm-up and connecting left" \
    "out), every run in order; server = redis-server or memcached (CPU 0), client = the side's process" \
    "(CPU 1): a server near 100% set the pace, a client near 100% is the load generator's" \
    "ceiling"
bench_load_own "$rpid" "$mpid"
bench_load_begin

# ------------------------------------------------------------ helpers

# note VAR LOG SIDE CMD...: VAR=(CMD, run by cache/note.sh, which appends
# its name=<number> lines (server_cpu=, client_us=, cpu_ns=, ...) to LOG under SIDE)
note()
{
    local -n note_out=$1
    # shellcheck disable=SC2034 # a nameref: sets the caller's array
    note_out=("$here/cache/note.sh" "$2" "$3" -- "${@:4}")
}

# notes_line FIGURE LOG TITLE: one '#' line with what LOG holds, per side
# (in the order the sides first ran) and per name, every run's number in
# order, then the median in brackets.
notes_line()
{
    [[ -s $2 ]] || return 0
    echo "# $1 $3:$(awk '
        function fmt(v, a) { # as bench_fmt, whole numbers as they are
            if (v == int(v)) return sprintf("%d", v)
            a = v < 0 ? -v : v
            return sprintf(a >= 1000 ? "%.0f" : a >= 10 ? "%.1f" : a >= 0.1 ? "%.2f" : \
                a == 0 ? "%.0f" : "%.4f", v) }
        { side = $1; if (!(side in seen)) { seen[side] = 1; order[++ns] = side }
          for (i = 2; i <= NF; i++) {
              split($i, kv, "="); k = side SUBSEP kv[1]
              if (!(k in cnt)) names[side] = names[side] " " kv[1]
              val[k, ++cnt[k]] = kv[2] + 0 } }
        END {
            for (s = 1; s <= ns; s++) {
                side = order[s]; out = out (s > 1 ? ";" : "") " " side
                nn = split(names[side], nm, " ")
                for (j = 1; j <= nn; j++) {
                    k = side SUBSEP nm[j]; n = cnt[k]; runs = ""
                    for (a = 1; a <= n; a++) { x[a] = val[k, a]; runs = runs " " fmt(x[a]) }
                    for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++)
                        if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
                    m = n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
                    out = out (j > 1 ? "," : "") " " nm[j] runs " [" fmt(m) "]"
                }
            }
            print out
        }' "$2")"
}

# rotate FIGURE UNIT SIDE:ARRAY...: the commands held in the arrays, in turn
# (A B C A B C ...), BENCH_ROUNDS times; prints the samples and leaves each
# side's median in med[SIDE], or why it could not be measured in why[SIDE]
# (its later runs are skipped).
declare -A med=() why=()
rotate()
{
    local fig=$1 unit=$2 r spec side v line
    shift 2
    local -A got=()
    med=() why=()
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for spec in "$@"; do
            side=${spec%%:*}
            [[ -z ${why[$side]:-} ]] || continue
            local -n rotate_cmd=${spec#*:}
            if v=$(bench_run "${rotate_cmd[@]}"); then
                got[$side]+=" $v"
            else
                why[$side]="a run failed:"$'\n'"$v"
            fi
            unset -n rotate_cmd
        done
    done
    line="# $fig samples ($unit):"
    for spec in "$@"; do
        side=${spec%%:*}
        if [[ -n ${why[$side]:-} ]]; then
            line+=" $side failed |"
        else
            # shellcheck disable=SC2086 # the samples are words
            line+=" $side $(bench_fmt_all ${got[$side]}) |"
            # shellcheck disable=SC2086
            med[$side]=$(bench_median ${got[$side]})
        fi
    done
    echo "${line% |}"
}

cpu_title="CPU in each run's timed window, every run [median]: server_cpu, client_cpu = % of one\
 core (redis-server on CPU 0, the client on CPU 1); server_us, client_us = CPU µs per GET;\
 per_write = weave's commands per write"

# the weave side of a redis figure: bench_redis MODE with FIBERS on CPU 1
weave_cmd()
{
    note "$1" "$2" "$3" env CACHE_SERVER_PID="$rpid" taskset -c 1 "$build/bench_redis" "$4" \
        "$url" "$secs" "$5"
}

# ------------------------------------------------------------ the figures

for g in "${wanted[@]}"; do
    log=$tmp/notes.$g
    case $g in
        get | get_pipelined)
            pipeline=1
            [[ $g == get_pipelined ]] && pipeline=$depth
            if [[ $g == get ]]; then
                echo "# redis.get: $conns fibers, each on its own dedicated connection" \
                    "(wv_redis_acquire from a client with pool_size $conns), GET of a random key," \
                    "one in flight per connection; redis-benchmark: $conns connections, -P 1"
            else
                echo "# redis.get_pipelined: the same $conns connections, each fiber sending" \
                    "$depth GETs per round trip (a wv_redis_pipe on its handle, refilled with new" \
                    "keys every round, every reply checked); redis-benchmark: $conns" \
                    "connections, -P $depth: the same batches on both sides"
            fi
            weave_cmd w "$log" weave "$g" "$conns"
            note a "$log" redis-benchmark env CACHE_SERVER_PID="$rpid" taskset -c 1 \
                "$here/cache/redis_benchmark.sh" "$port" "$conns" "$pipeline" "$secs"
            bench_figure "redis.$g" ops/s redis-benchmark higher w a
            notes_line "redis.$g" "$log" "$cpu_title"
            ;;
        autopipe)
            echo "# redis.autopipe: $autofib fibers on one shard, one client, its one shared" \
                "connection, GET of a random key in a loop: auto-pipelining (the default: what" \
                "the fibers issue during one pass of the loop leaves in one write) against the" \
                "same client with .no_autopipeline = true (each command its own send, still up" \
                "to $autofib in flight): the mechanism, weave against itself"
            weave_cmd w "$log" weave shared "$autofib"
            weave_cmd n "$log" no_autopipeline shared_noauto "$autofib"
            weave_cmd o "$log" one_in_flight shared_one "$autofib"
            rotate redis.autopipe ops/s weave:w no_autopipeline:n one_in_flight:o
            if [[ -n ${why[weave]:-} ]]; then
                bench_fail redis.autopipe "weave: ${why[weave]}"
            elif [[ -n ${why[no_autopipeline]:-} ]]; then
                bench_fail redis.autopipe "no_autopipeline: ${why[no_autopipeline]}"
            else
                bench_line redis.autopipe "${med[weave]}" ops/s no_autopipeline \
                    "${med[no_autopipeline]}" higher
            fi
            if [[ -n ${why[one_in_flight]:-} ]]; then
                echo "# redis.autopipe one command in flight: ${why[one_in_flight]}"
            elif [[ -n ${med[weave]:-} ]]; then
                echo "# redis.autopipe, the other meaning of \"without auto-pipelining\": the same" \
                    "$autofib fibers taking turns on ONE connection with one command in flight at" \
                    "a time (a client with pool_size 1; wv_redis_acquire, GET, wv_redis_release)" \
                    "do $(bench_fmt "${med[one_in_flight]}") GETs/s; auto-pipelining does" \
                    "$(bench_fmt "$(bench_ratio "${med[weave]}" "${med[one_in_flight]}" higher)")x" \
                    "that"
            fi
            notes_line redis.autopipe "$log" "$cpu_title"
            ;;
        asyncio)
            echo "# redis.asyncio: $conns concurrent fibers doing GET through one client with its" \
                "defaults (one shared connection, auto-pipelined), against $conns redis.asyncio" \
                "tasks sharing one Redis (its default pool: a connection per concurrent task)"
            weave_cmd w "$log" weave shared "$conns"
            note a "$log" redis_asyncio env CACHE_SERVER_PID="$rpid" taskset -c 1 "$py" \
                "$here/cache/redis_asyncio_get.py" "$url" "$secs" "$conns"
            bench_figure redis.asyncio ops/s redis_asyncio higher w a
            notes_line redis.asyncio "$log" "$cpu_title"
            ;;
        memory)
            echo "# cache.memory_*: the embedded cache's store (bench_cache_store: 10,000 items," \
                "16-byte keys, 100-byte values, default options, keys in a scattered order, the" \
                "value copied out) against cachetools.LRUCache doing the same" \
                "(cache/cachetools_get.py); both on CPU 0, the servers idle"
            # operations per run: about 2/5 of CACHE_SECONDS on this machine's speeds
            for op in get:60000000:10000000 set:40000000:4000000 miss:150000000:25000000; do
                IFS=: read -r name nw na <<<"$op"
                nw=$(awk -v n="$nw" -v s="$secs" 'BEGIN { n = int(n * s / 5 / 10000) * 10000;
                    print n < 10000 ? 10000 : n }')
                na=$(awk -v n="$na" -v s="$secs" 'BEGIN { n = int(n * s / 5 / 10000) * 10000;
                    print n < 10000 ? 10000 : n }')
                mlog=$log.$name
                note w "$mlog" weave taskset -c 0 "$build/bench_cache_store" "$name" "$nw"
                note a "$mlog" cachetools taskset -c 0 "$py" "$here/cache/cachetools_get.py" \
                    "$name" "$na"
                if [[ $name != get ]]; then
                    bench_figure "cache.memory_$name" ns cachetools lower w a
                else
                    # the get's floor (bench_cache_store floor) in the same rotation
                    note f "$mlog" floor taskset -c 0 "$build/bench_cache_store" floor "$nw"
                    rotate cache.memory_get ns weave:w cachetools:a floor:f
                    if [[ -n ${why[weave]:-} || -n ${why[cachetools]:-} ]]; then
                        bench_fail cache.memory_get "${why[weave]:-}${why[cachetools]:-}"
                    else
                        bench_line cache.memory_get "${med[weave]}" ns cachetools \
                            "${med[cachetools]}" lower
                    fi
                    if [[ -n ${why[floor]:-} ]]; then
                        echo "# cache.memory_get floor: ${why[floor]}"
                    elif [[ -n ${med[weave]:-} && -n ${med[cachetools]:-} ]]; then
                        echo "# cache.memory_get floor: the same gets through a bare" \
                            "open-addressing table (the store's hash, no lock, no clock bit, no" \
                            "expiry, no eviction) take $(bench_fmt "${med[floor]}") ns: no store" \
                            "doing this work gets past" \
                            "$(bench_fmt "$(bench_ratio "${med[floor]}" "${med[cachetools]}" lower)")x" \
                            "cachetools here; weave's store is at" \
                            "$(bench_fmt "$(bench_ratio "${med[weave]}" "${med[floor]}" higher)")x" \
                            "the floor's time"
                    fi
                fi
                notes_line "cache.memory_$name" "$mlog" "CPU time of the timed loop (thread\
 CPU time, ns per operation: time spent waiting for the CPU left out), every run [median]"
            done
            ;;
        resp)
            resp_rounds=5
            [[ ${BENCH_LONG:-0} == 1 ]] && resp_rounds=9
            [[ -n $rounds_given ]] && resp_rounds=$rounds_given
            rc=0
            taskset -c 0 "$build/bench_resp" "$resp_rounds" >"$tmp/resp.out" 2>"$tmp/resp.err" ||
                rc=$?
            sed 's/^# load:/# bench_resp load:/' "$tmp/resp.out"
            if [[ $rc != 0 ]]; then
                bench_fail resp "bench_resp exited with $rc: $(tail -n 3 "$tmp/resp.err")"
            fi
            ;;
        memcache)
            echo "# memcache.get: $conns fibers, each with a memcached client of its own (its own" \
                "connection), get of a random key, one in flight per connection; memcaslap:" \
                "one thread, $conns connections, one request in flight on each"
            note w "$log.get" weave env CACHE_SERVER_PID="$mpid" taskset -c 1 \
                "$build/bench_memcache" get "$maddr" "$secs" "$conns"
            note a "$log.get" memcaslap env CACHE_SERVER_PID="$mpid" taskset -c 1 \
                "$here/cache/memcaslap.sh" "$mport" "$conns" "$secs"
            bench_figure memcache.get ops/s memcaslap higher w a
            notes_line memcache.get "$log.get" "${cpu_title/redis-server/memcached}"
            echo "# memcache.pymemcache: $conns concurrent fibers doing get through one client" \
                "with its defaults (one connection, auto-pipelined), against $conns threads" \
                "sharing one pymemcache PooledClient (a connection per thread)"
            note w "$log.py" weave env CACHE_SERVER_PID="$mpid" taskset -c 1 \
                "$build/bench_memcache" shared "$maddr" "$secs" "$conns"
            note a "$log.py" pymemcache env CACHE_SERVER_PID="$mpid" taskset -c 1 "$py" \
                "$here/cache/pymemcache_get.py" "$maddr" "$secs" "$conns"
            bench_figure memcache.pymemcache ops/s pymemcache higher w a
            notes_line memcache.pymemcache "$log.py" "${cpu_title/redis-server/memcached}"
            ;;
        *) echo "run_cache.sh: unknown figure group '$g'" >&2 ;;
    esac
done

bench_load_end
bench_finish
