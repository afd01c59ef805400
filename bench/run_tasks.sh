#!/usr/bin/env bash
# bench/run_tasks.sh: the task-queue suite (`make bench-tasks`; method:
# docs/benchmarking.md): weave's Celery-compatible worker
# (include/weave/tasks.h) against Python Celery 5.2's own workers, on the
# same broker and result backend, with the same producer, the same
# messages and the same tasks (tasks.outbox: the same transactions).
#
#   tasks.redis   tasks/s: N (TASKS_REDIS_N: 5,000; 20,000 with
#                 BENCH_LONG=1) messages of tasks.noop (no arguments,
#                 returns None) run and their results (null) stored in the
#                 Redis result backend, from the release of the queue to
#                 the N-th result stored. weave: bench_tasks worker, one
#                 shard, concurrency 16 (the client's default). Anchors:
#                 a Celery worker with -P solo (tasks.redis) and with
#                 -P threads -c 8 (tasks.redis_celery_threads).
#   tasks.sleep   seconds: 10,000 (TASKS_SLEEP_N) messages of
#                 tasks.async_add (sleeps 1 s, returns x + y), from the
#                 release to the last result stored. weave: one shard,
#                 concurrency 10,000 (all of them at once). Anchor: a
#                 Celery worker with -P gevent -c 1000 (tasks.sleep);
#                 TASKS_SLEEP_ANCHORS="gevent threads" adds -P threads
#                 -c 1000 (tasks.sleep_celery_threads).
#   tasks.amqp    tasks/s: N (TASKS_AMQP_N: 5,000; 20,000 with BENCH_LONG=1)
#                 messages of tasks.noop on RabbitMQ (a throwaway node,
#                 scripts/rabbitmq_test_server.sh, on CPU 1), results in
#                 the Redis backend, from the warm-up's last result to the
#                 N-th result after it (bench/tasks/amqp_run.sh). weave:
#                 concurrency 128 (TASKS_AMQP_CONCURRENCY; on RabbitMQ also
#                 its prefetch). Anchor: a Celery worker -P solo (kombu's
#                 py-amqp transport) with worker_prefetch_multiplier 128, so
#                 both may hold 128 messages unacked. -P threads is left out
#                 by default: with Celery 5.2.6 and py-amqp 5.1.1 its pool
#                 threads ack on the connection the consumer thread drains
#                 (py-amqp is not thread-safe) and the worker stops taking
#                 messages after a few hundred (seen in every trial);
#                 TASKS_AMQP_ANCHORS="solo threads" tries it anyway.
#   tasks.outbox  tasks/s: N (TASKS_OUTBOX_N: 5,000; 20,000 with
#                 BENCH_LONG=1) transactions on PostgreSQL (a throwaway
#                 one, scripts/pg_test_server.sh, on CPU 1), each an INSERT
#                 into bench_orders and a tasks.noop for it, committed, and
#                 every task run and its result stored, from the first
#                 timed transaction to the N-th result
#                 (bench/tasks/outbox_run.sh). weave: wv_task_enqueue in
#                 the transaction, the worker (concurrency 16) on the same
#                 database, results in the task rows. Anchors: the same
#                 transactions from asyncpg, each followed by Celery's
#                 send_task to Redis once committed (the usual way without
#                 an outbox), run by a Celery worker -P solo
#                 (tasks.outbox) and -P threads -c 8
#                 (tasks.outbox_celery_threads), results in Redis. Both
#                 sides: 16 producers (TASKS_OUTBOX_PRODUCERS), N/10
#                 transactions of warm-up first.
#
# The producer, the same for every side: bench_tasks produce sends N/10
# warm-up messages, then the N timed ones, with wv_tasks_send (64 fibers)
# to the queue "celery" while no worker runs (byte for byte the messages
# kombu writes: docs/tasks.md), renaming each batch out of sight; then the
# worker starts and says it is ready (its start-up is not timed), and
# bench_tasks wait renames the warm-up back and waits for its results,
# then renames the timed batch back (one atomic RENAME, which wakes the
# idle worker's BRPOP with all N messages there) and starts the clock. So
# no producer sets the pace and every worker starts from the same full
# queue. The clock stops when the N-th result is published by the backend
# (Celery's Redis backend and weave's both SET the result and PUBLISH it on
# its key's channel; the waiter PSUBSCRIBEs to them before the release);
# then every one of the results is read back from the backend (SUCCESS,
# the expected value, the right id) and the queue must be empty, or the run
# fails: nothing is counted that did not happen. bench/tasks/redis_run.sh
# is one such run.
#
# Pinning: the worker (weave's, or Celery's with every thread of its pool)
# on CPU 0 (taskset -c 0); redis-server (scripts/redis_test_server.sh, a
# throwaway one), RabbitMQ, PostgreSQL (every backend), the producers and
# the waiters on CPU 1: the figures need both cores. Weave and its anchors take turns, run after run (A B C A B C),
# each run a fresh worker on a flushed database. After every figure a '#'
# line gives, per side and run, the CPU of the worker, of Redis and of the
# waiter over the timed window (in % of one core; the worker's also in µs
# per task): CPU 1 near 100% (Redis + waiter) would mean the figure is
# that core's ceiling, not the worker's.
#
# Like for like: a Celery worker (kombu's Redis transport) records every
# message in Redis (ZADD unacked_index + HSET unacked) when it takes it and
# deletes the record (ZREM + HDEL) when it acks, even with early acks;
# weave's worker records only the messages that must survive it (acks_late,
# ETA), which is one round trip less per task (docs/tasks.md). The
# tasks.redis figure is weave's default worker; after it a '#' line gives
# weave with acks_late (it records and acks every message as kombu does),
# run in the same rounds, and its ratio against the better anchor.
#
# A figure on another broker has a set-up (start_redis, start_rabbitmq,
# start_pg below), a per-run script in bench/tasks/ (redis_run.sh,
# amqp_run.sh, outbox_run.sh, sharing run_lib.sh) and a case in the figure
# loop; the alternation (tasks_rounds), the CPU lines (cpu_line, and
# cpu_ratio: the worker's CPU per task against each anchor's, the
# like-for-like cost whatever capped the other core) and
# bench/tasks/celery_app.py (TASKS_BROKER, TASKS_BACKEND) are shared.
#
#   BUILD_DIR=dir          where bench_tasks is (default: build/release)
#   BENCH_LONG=1           7 rounds, 20,000 tasks for tasks.redis
#   BENCH_ROUNDS=n         override the number of rounds
#   BENCH_TIMEOUT=s        the longest a run may take (default here: 300)
#   BENCH_KEEP=1           keep the temp dir (Redis's log, every run's notes)
#   TASKS_FIGURES="redis sleep amqp outbox"    run only these
#   TASKS_REDIS_N=n, TASKS_SLEEP_N=n, TASKS_AMQP_N=n, TASKS_OUTBOX_N=n
#                          the number of tasks of each figure
#   TASKS_REDIS_ANCHORS="solo threads", TASKS_SLEEP_ANCHORS="gevent",
#   TASKS_AMQP_ANCHORS="solo", TASKS_OUTBOX_ANCHORS="solo threads"
#                          the Celery pools each figure runs against
#   TASKS_THREADS=c        -P threads concurrency for tasks.redis (8)
#   TASKS_GEVENT=c         -P gevent (and tasks.sleep's -P threads)
#                          concurrency (1000)
#   TASKS_PREFETCH=m       Celery's worker_prefetch_multiplier (4, its default)
#   TASKS_WEAVE_CONCURRENCY=c          weave's tasks.redis and tasks.outbox
#                                      concurrency (16)
#   TASKS_AMQP_CONCURRENCY=c           weave's tasks.amqp concurrency and the
#                                      messages every side may hold unacked (128)
#   TASKS_OUTBOX_PRODUCERS=p           tasks.outbox's producers, each side (16)
#   TASKS_ACKS_LATE=0      leave out the acks_late runs
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$here/..
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300} # a Celery tasks.sleep run takes about 30 s
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$root/build/release}
bench=$build/bench_tasks
py=/usr/bin/python3 # Debian's, with celery and gevent

read -r -a wanted <<<"${TASKS_FIGURES:-redis sleep amqp outbox}"
read -r -a redis_anchors <<<"${TASKS_REDIS_ANCHORS:-solo threads}"
read -r -a sleep_anchors <<<"${TASKS_SLEEP_ANCHORS:-gevent}"
read -r -a amqp_anchors <<<"${TASKS_AMQP_ANCHORS:-solo}"
read -r -a outbox_anchors <<<"${TASKS_OUTBOX_ANCHORS:-solo threads}"
need_redis=1 need_gevent=0 need_rabbitmq=0 need_pg=0 # Redis: every figure's results
for g in "${wanted[@]}"; do
    case ${g#tasks.} in
        redis | sleep) ;;
        amqp) need_rabbitmq=1 ;;
        outbox) need_pg=1 ;;
        *)
            echo "run_tasks.sh: unknown figure '$g' (TASKS_FIGURES: redis sleep amqp outbox)" >&2
            exit 2
            ;;
    esac
    [[ ${g#tasks.} == sleep && " ${sleep_anchors[*]} " == *" gevent "* ]] && need_gevent=1
done
for a in "${redis_anchors[@]}" "${sleep_anchors[@]}" "${amqp_anchors[@]}" \
    "${outbox_anchors[@]}"; do
    case $a in
        solo | threads | gevent) ;;
        *)
            echo "run_tasks.sh: unknown Celery pool '$a' (solo, threads, gevent)" >&2
            exit 2
            ;;
    esac
done
for b in "$bench" "$build/bench_amqp"; do
    if [[ ! -x $b ]]; then
        echo "run_tasks.sh: no $b; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in ss taskset redis-server redis-cli; do
    command -v "$tool" >/dev/null || {
        echo "run_tasks.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    }
done
modules=(celery redis) # the Python modules of the anchors run here
[[ $need_gevent == 1 ]] && modules+=(gevent)
[[ $need_rabbitmq == 1 ]] && modules+=(amqp)  # py-amqp, kombu's RabbitMQ transport
[[ $need_pg == 1 ]] && modules+=(asyncpg uvloop) # tasks/outbox_celery.py
for m in "${modules[@]}"; do
    if ! "$py" -c "import $m" 2>/dev/null; then
        echo "run_tasks.sh: $py lacks the module $m (scripts/deps.sh bench installs it)" >&2
        exit 1
    fi
done
if [[ $(nproc) -lt 2 ]]; then
    echo "run_tasks.sh: needs 2 CPUs (the worker on CPU 0, Redis and the producer on CPU 1)" >&2
    exit 1
fi

redis_n=5000
[[ ${BENCH_LONG:-0} == 1 ]] && redis_n=20000
redis_n=${TASKS_REDIS_N:-$redis_n}
sleep_n=${TASKS_SLEEP_N:-10000}
threads=${TASKS_THREADS:-8}
gevent=${TASKS_GEVENT:-1000}
weave_conc=${TASKS_WEAVE_CONCURRENCY:-16}
acks_late=${TASKS_ACKS_LATE:-1}
amqp_n=5000
[[ ${BENCH_LONG:-0} == 1 ]] && amqp_n=20000
amqp_n=${TASKS_AMQP_N:-$amqp_n}
amqp_conc=${TASKS_AMQP_CONCURRENCY:-128}
outbox_n=5000
[[ ${BENCH_LONG:-0} == 1 ]] && outbox_n=20000
outbox_n=${TASKS_OUTBOX_N:-$outbox_n}
outbox_producers=${TASKS_OUTBOX_PRODUCERS:-16}

w=() # a worker command (celery_worker)
tmp=$(mktemp -d /tmp/weave-bench-tasks.XXXXXX)
mkdir -p "$tmp/info"
pgdir='' # PostgreSQL's, beside $tmp: its owner (postgres) cannot enter $tmp
cleanup()
{
    if [[ -d $tmp/redis ]]; then
        "$root/scripts/redis_test_server.sh" stop "$tmp/redis" || true
    fi
    if [[ -f $tmp/rabbitmq/ports ]]; then
        "$root/scripts/rabbitmq_test_server.sh" stop "$tmp/rabbitmq" || true
    fi
    if [[ -n $pgdir ]]; then
        "$root/scripts/pg_test_server.sh" stop "$pgdir" || true
        bench_drop_tmp "$pgdir"
    fi
    bench_drop_tmp "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ the broker

# own_listener PORT PID NAME: the listener on PORT must be PID (the server
# started here, not somebody else's)
own_listener()
{
    if ! ss -ltnpH "sport = :$1" | grep -q "pid=$2,"; then
        echo "run_tasks.sh: the listener on port $1 is not the $3 started here" >&2
        exit 1
    fi
}

# start_redis: a throwaway redis-server on CPU 1 on the first free port from
# 26790; sets url and exports TASKS_REDIS_PID
url=''
start_redis()
{
    local port=26790 pid
    while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
    url=$(taskset -c 1 "$root/scripts/redis_test_server.sh" start "$tmp/redis" "$port")/0
    pid=$(cat "$tmp/redis/redis.pid")
    own_listener "$port" "$pid" redis-server
    export TASKS_REDIS_PID=$pid
    bench_load_own "$pid"
}
[[ $need_redis == 1 ]] && start_redis

# on_cpu1 PID NAME: every thread of PID may run on CPU 1 only
on_cpu1()
{
    if taskset -apc "$1" | grep -qv 'list: 1$'; then
        echo "run_tasks.sh: a thread of $2 ($1) may run on other CPUs than CPU 1" >&2
        exit 1
    fi
}

# start_rabbitmq: a throwaway RabbitMQ node (scripts/rabbitmq_test_server.sh)
# on CPU 1, AMQP on the first port from 26880 with the two after it free
# too (its Erlang distribution and its own epmd); sets amqp_url and rpid
amqp_url='' rpid=''
start_rabbitmq()
{
    local port=26880 i busy
    while :; do
        busy=0
        for ((i = 0; i < 3; i++)); do
            ss -ltnH "sport = :$((port + i))" | grep -q . && busy=1
        done
        [[ $busy == 0 ]] && break
        port=$((port + 3))
    done
    amqp_url=$(taskset -c 1 "$root/scripts/rabbitmq_test_server.sh" start "$tmp/rabbitmq" "$port")
    rpid=$(cat "$tmp/rabbitmq/pid") # beam.smp
    own_listener "$port" "$rpid" RabbitMQ
    on_cpu1 "$rpid" RabbitMQ
    bench_load_own "$rpid" "$(cat "$tmp/rabbitmq/epmd.pid")"
}
[[ $need_rabbitmq == 1 ]] && start_rabbitmq

# start_pg: a throwaway PostgreSQL 15 (scripts/pg_test_server.sh: fsync and
# synchronous_commit off) on CPU 1 (every backend it forks too) on the
# first free port from 26895; sets pg_url and pgpid (the postmaster)
pg_url='' pgpid=''
start_pg()
{
    local port=26895
    while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
    pgdir=$(mktemp -d /tmp/weave-bench-tasks-pg.XXXXXX)
    pg_url=$(taskset -c 1 "$root/scripts/pg_test_server.sh" start "$pgdir" "$port")
    pgpid=$(head -n 1 "$pgdir/data/postmaster.pid")
    own_listener "$port" "$pgpid" PostgreSQL
    on_cpu1 "$pgpid" PostgreSQL
    bench_load_own "$pgpid"
}
[[ $need_pg == 1 ]] && start_pg

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
bench_header tasks "every worker (bench_tasks with 1 shard, or a Celery worker with all its\
 threads) on CPU 0 (taskset -c 0); redis-server, RabbitMQ, PostgreSQL, the producers and the\
 waiters on CPU 1: the figures need both cores"
echo "# Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') at $url" \
    "(scripts/redis_test_server.sh: no persistence), FLUSHALL before every run: broker and" \
    "result backend of tasks.redis and tasks.sleep, the result backend of tasks.amqp, broker" \
    "and result backend of tasks.outbox's Celery side"
echo "# tasks.redis and tasks.sleep, the producer (every side): bench_tasks produce, wv_tasks_send from 64 fibers into the" \
    "queue while no worker runs, N/10 warm-up messages and then N, each batch then held under" \
    "a key of its own; once the worker is ready, the waiter RENAMEs the warm-up back to its" \
    "queue and waits for its results, then starts the clock, RENAMEs the N back and stops" \
    "the clock at their last result stored; every result is then read back from the backend" \
    "and checked"
echo "# anchors: Celery $(pkgver python3-celery) (kombu $(pkgver python3-kombu), redis-py" \
    "$(pkgver python3-redis)$([[ $need_gevent == 1 ]] && echo ", gevent $(pkgver python3-gevent)"))" \
    "on $py: celery -A celery_app worker -l WARNING --without-heartbeat --without-gossip" \
    "--without-mingle, worker_disable_rate_limits, prefetch multiplier ${TASKS_PREFETCH:-4}" \
    "(bench/tasks/celery_app.py); -P threads -c $threads for tasks.redis; -P gevent -c $gevent" \
    "for tasks.sleep"
echo "# weave: bench_tasks worker, 1 shard, tasks.redis concurrency $weave_conc, tasks.sleep" \
    "concurrency $sleep_n (every task at once); acks early, results in the Redis backend"
if [[ $need_rabbitmq == 1 ]]; then
    echo "# tasks.amqp: RabbitMQ $(pkgver rabbitmq-server) (Erlang $(pkgver erlang-base)) at" \
        "$amqp_url (scripts/rabbitmq_test_server.sh: fsyncs on; Celery's durable queue" \
        "'celery', persistent messages), the broker; results in the Redis backend above (no" \
        "reply_to: the RPC backend's results reach only the client that sent the task). Every" \
        "side: bench_tasks fill sends N/10 warm-up messages then N (wv_tasks_send, 64 fibers," \
        "each confirmed) into the queue while no worker runs; the waiter subscribes, the" \
        "worker starts and takes the full queue; RabbitMQ has no RENAME to hand it over in one" \
        "step, so the worker's start-up and the warm-up's tasks are not timed: the clock runs" \
        "from the warm-up's last result to the N-th result after it (the worker in its steady" \
        "state on a queue still full), every result is then read back and the queue must be" \
        "empty once the worker is gone"
    echo "# tasks.amqp sides: weave concurrency $amqp_conc (on RabbitMQ also its prefetch, a" \
        "global basic.qos); Celery (py-amqp $(pkgver python3-amqp)) with" \
        "worker_prefetch_multiplier $amqp_conc / its pool's concurrency, so every side may hold" \
        "the same $amqp_conc messages unacked (a trial at 4, 16 and 64 for -P solo: no faster" \
        "than 4); both ack early"
fi
if [[ $need_pg == 1 ]]; then
    echo "# tasks.outbox: PostgreSQL $(pkgver postgresql-15) at ${pg_url%%@*}@..." \
        "(scripts/pg_test_server.sh: fsync and synchronous_commit off), bench_orders and weave_tasks" \
        "emptied before every run; $outbox_producers producers on both sides (weave: fibers" \
        "of bench_tasks outbox on a pool of as many connections; Celery: coroutines of" \
        "tasks/outbox_celery.py, asyncpg $(pkgver python3-asyncpg) on uvloop, a connection" \
        "each), one worker (weave: concurrency $weave_conc; Celery: the tasks.redis pools," \
        "on the Redis above)"
fi
bench_load_begin

# ------------------------------------------------------------ helpers

# redis_side VAR FIGURE SIDE TASK N UNIT -- WORKER...: VAR=(one run of
# WORKER, tasks/redis_run.sh: N tasks timed after N/10 of warm-up, on a
# freshly produced queue; its notes (worker_cpu= ...) kept by cache/note.sh
# in $tmp/info/FIGURE.SIDE)
redis_side()
{
    local -n redis_side_out=$1
    local fig=$2 side=$3 task=$4 n=$5 unit=$6
    shift 7
    # shellcheck disable=SC2034 # a nameref: sets the caller's array
    redis_side_out=("$here/cache/note.sh" "$tmp/info/$fig.$side" "$side" --
        "$here/tasks/redis_run.sh" "$bench" "$url" "$task" $((n / 10)) "$n" "$unit"
        "$BENCH_TIMEOUT" -- "$@")
}

# amqp_side VAR FIGURE SIDE -- WORKER...: VAR=(one run of WORKER,
# tasks/amqp_run.sh: amqp_n tasks timed after amqp_n/10 of warm-up, on a
# freshly filled queue; its notes kept as redis_side's)
amqp_side()
{
    local -n amqp_side_out=$1
    local fig=$2 side=$3
    shift 4
    # shellcheck disable=SC2034 # a nameref: sets the caller's array
    amqp_side_out=("$here/cache/note.sh" "$tmp/info/$fig.$side" "$side" -- env
        TASKS_BROKER_PID="$rpid" "$here/tasks/amqp_run.sh" "$bench" "$build/bench_amqp"
        "$amqp_url" "$url" noop $((amqp_n / 10)) "$amqp_n" rate "$BENCH_TIMEOUT" -- "$@")
}

# outbox_side VAR FIGURE SIDE weave|celery -- WORKER...: VAR=(one run of
# WORKER, tasks/outbox_run.sh: outbox_n transactions timed after
# outbox_n/10 of warm-up; its notes kept as redis_side's)
outbox_side()
{
    local -n outbox_side_out=$1
    local fig=$2 side=$3 kind=$4
    shift 5
    # shellcheck disable=SC2034 # a nameref: sets the caller's array
    outbox_side_out=("$here/cache/note.sh" "$tmp/info/$fig.$side" "$side" -- env
        TASKS_PG_PID="$pgpid" "$here/tasks/outbox_run.sh" "$kind" "$bench" "$pg_url" "$url"
        $((outbox_n / 10)) "$outbox_n" "$outbox_producers" "$BENCH_TIMEOUT" -- "$@")
}

# pool_conc POOL: the concurrency the suite gives a Celery pool
pool_conc()
{
    case $1 in
        solo) echo 1 ;;
        threads) echo "$threads" ;;
        gevent) echo "$gevent" ;;
    esac
}

# celery_worker VAR POOL CONCURRENCY [NAME=VALUE...]: VAR=(the Celery
# worker command), its broker Redis unless the NAME=VALUEs (its
# environment) say otherwise
celery_worker()
{
    local -n celery_worker_out=$1
    local conc=()
    [[ $2 != solo ]] && conc=(-c "$3")
    # shellcheck disable=SC2034 # a nameref: sets the caller's array
    celery_worker_out=(env TASKS_BROKER="$url" C_FORCE_ROOT=1 PYTHONPATH="$here/tasks" "${@:4}"
        "$py" -m celery -A celery_app worker -P "$2" "${conc[@]}" -l WARNING
        --without-heartbeat --without-gossip --without-mingle)
}

# tasks_rounds FIGURE UNIT BETTER SIDE...: the runs held in the arrays named
# run_<SIDE>, one after the other in every round, BENCH_ROUNDS rounds; the
# medians in median[SIDE], every side's samples on one '#' line. Returns 1
# (the figure failed, said by bench_fail) when a run fails.
declare -A median=()
tasks_rounds()
{
    local fig=$1 unit=$2 side r v cmd line=''
    shift 3
    local -A runs=()
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for side in "$@"; do
            cmd="run_${side}[@]"
            if ! v=$(bench_run "${!cmd}"); then
                bench_fail "$fig" "a $side run failed:"
                echo "$v"
                return 1
            fi
            runs[$side]+=" $v"
        done
    done
    for side in "$@"; do
        # shellcheck disable=SC2086 # the samples, one word each
        median[$side]=$(bench_median ${runs[$side]})
        # shellcheck disable=SC2086
        line+="${line:+ | }$side $(bench_fmt_all ${runs[$side]})"
    done
    echo "# $fig samples ($unit): $line"
}

# cpu_line FIGURE "NAME..." SIDE...: the worker's CPU in every run of each
# side, and the medians, then those of the processes NAME (redis, broker,
# pg, producer, waiter: what the runs noted) on CPU 1
cpu_line()
{
    local fig=$1 side out='' k
    local -a keys
    read -r -a keys <<<"$2"
    shift 2
    for side in "$@"; do
        out+="${out:+; }$side: worker $(info_pcts "$fig" "$side" worker_cpu)"
        out+=" [$(info_median "$fig" "$side" worker_cpu)], $(info_runs "$fig" "$side" worker_us)"
        out+=" µs/task [$(info_median "$fig" "$side" worker_us)]"
        for k in "${keys[@]}"; do
            out+=", $k $(info_pcts "$fig" "$side" "${k}_cpu") [$(info_median "$fig" "$side" \
                "${k}_cpu")] $(info_median "$fig" "$side" "${k}_us") µs/task"
        done
    done
    echo "# $fig CPU in each run's timed window, every run [median]: the worker (CPU 0) in %" \
        "of one core and in CPU µs per task, then on CPU 1 ${keys[*]} (redis: redis-server;" \
        "broker: RabbitMQ; pg: PostgreSQL, every backend) in % of one core [median] and the" \
        "median µs per task: $out"
}

# cpu_ratio FIGURE SIDE ANCHOR...: a '#' line with the worker's CPU µs per
# task of each anchor against weave's (SIDE): the like-for-like cost of a
# task, whatever the other core capped
cpu_ratio()
{
    local fig=$1 w a out='' mine theirs
    w=$2
    shift 2
    mine=$(info_median "$fig" "$w" worker_us)
    for a in "$@"; do
        theirs=$(info_median "$fig" "$a" worker_us)
        out+="${out:+, }$a $theirs µs ($(bench_fmt "$(bench_ratio "$mine" "$theirs" lower)")x)"
    done
    echo "# $fig worker CPU per task (medians): $w $mine µs; $out"
}

# best_anchor FIGURE BETTER SIDE...: the name of the anchor side with the
# best median
best_anchor()
{
    local better=$2 side best=''
    shift 2
    for side in "$@"; do
        if [[ -z $best ]] || awk -v a="${median[$side]}" -v b="${median[$best]}" -v h="$better" \
            'BEGIN { exit !(h == "higher" ? a > b : a < b) }'; then
            best=$side
        fi
    done
    echo "$best"
}

# anchor_lines FIGURE UNIT BETTER TARGET ANCHOR...: a BENCH line per anchor
# (the first under FIGURE, the others FIGURE_<anchor>), then weave against
# the better anchor and TARGET
anchor_lines()
{
    local fig=$1 unit=$2 better=$3 target=$4 a name best ratio
    shift 4
    for a in "$@"; do
        name=${fig}_$a
        [[ $a == "$1" ]] && name=$fig
        bench_line "$name" "${median[weave]}" "$unit" "$a" "${median[$a]}" "$better"
    done
    best=$(best_anchor "$fig" "$better" "$@")
    ratio=$(bench_ratio "${median[weave]}" "${median[$best]}" "$better")
    echo "# $fig: the better anchor is $best; weave is $(bench_fmt "$ratio")x it (target:" \
        "${target}x)"
}

# weave_vs FIGURE TARGET "NAME..." ANCHOR...: a tasks/s figure of weave (the
# side run_weave) against the anchors: the rounds, the BENCH lines, the
# workers' CPU per task and the CPU line with NAME (cpu_line); 1 when a run
# failed
weave_vs()
{
    local fig=$1 target=$2 names=$3
    shift 3
    tasks_rounds "$fig" tasks/s higher weave "$@" || return 1
    anchor_lines "$fig" tasks/s higher "$target" "$@"
    cpu_ratio "$fig" weave "$@"
    cpu_line "$fig" "$names" weave "$@"
}

# ------------------------------------------------------------ the figures

for g in "${wanted[@]}"; do
    g=${g#tasks.}
    case $g in
        redis)
            fig=tasks.redis
            echo "# $fig: $redis_n messages of tasks.noop (after $((redis_n / 10)) of warm-up)," \
                "results stored, tasks/s from the release of the queue to the last result stored"
            sides=(weave)
            redis_side run_weave "$fig" weave noop "$redis_n" rate -- \
                "$bench" worker "$url" "$weave_conc"
            if [[ $acks_late == 1 ]]; then
                redis_side run_weave_acks_late "$fig" weave_acks_late noop "$redis_n" rate -- \
                    "$bench" worker "$url" "$weave_conc" acks_late
                sides+=(weave_acks_late)
            fi
            anchors=()
            for a in "${redis_anchors[@]}"; do
                celery_worker w "$a" "$threads"
                redis_side "run_celery_$a" "$fig" "celery_$a" noop "$redis_n" rate -- "${w[@]}"
                anchors+=("celery_$a")
            done
            tasks_rounds "$fig" tasks/s higher "${sides[@]}" "${anchors[@]}" || continue
            anchor_lines "$fig" tasks/s higher 20 "${anchors[@]}"
            if [[ $acks_late == 1 ]]; then
                best=$(best_anchor "$fig" higher "${anchors[@]}")
                echo "# $fig like for like: weave with acks_late (every message recorded in" \
                    "unacked and acked, as kombu does) $(bench_fmt "${median[weave_acks_late]}")" \
                    "tasks/s, $(bench_fmt "$(bench_ratio "${median[weave_acks_late]}" \
                        "${median[$best]}" higher)")x $best"
            fi
            cpu_line "$fig" "redis waiter" "${sides[@]}" "${anchors[@]}"
            ;;
        sleep)
            fig=tasks.sleep
            echo "# $fig: $sleep_n messages of tasks.async_add (sleep 1 s, return x + y; after" \
                "$((sleep_n / 10)) of warm-up), seconds from the release of the queue to the last" \
                "result stored"
            redis_side run_weave "$fig" weave async_add "$sleep_n" seconds -- \
                "$bench" worker "$url" "$sleep_n"
            anchors=()
            for a in "${sleep_anchors[@]}"; do
                celery_worker w "$a" "$gevent"
                redis_side "run_celery_$a" "$fig" "celery_$a" async_add "$sleep_n" seconds -- \
                    "${w[@]}"
                anchors+=("celery_$a")
            done
            tasks_rounds "$fig" s lower weave "${anchors[@]}" || continue
            anchor_lines "$fig" s lower 10 "${anchors[@]}"
            cpu_line "$fig" "redis waiter" weave "${anchors[@]}"
            ;;
        amqp)
            fig=tasks.amqp
            echo "# $fig: $amqp_n messages of tasks.noop (after $((amqp_n / 10)) of warm-up) on" \
                "RabbitMQ, results stored in Redis, tasks/s from the warm-up's last result to the" \
                "last result stored"
            broker=${amqp_url%/}// # kombu's spelling of the vhost "/", weave reads it alike
            amqp_side run_weave "$fig" weave -- "$bench" worker "$broker" "$amqp_conc" \
                "backend=$url"
            anchors=()
            for a in "${amqp_anchors[@]}"; do
                c=$(pool_conc "$a")
                pf=$((amqp_conc / c > 0 ? amqp_conc / c : 1))
                celery_worker w "$a" "$c" TASKS_BROKER="$broker" TASKS_BACKEND="$url" \
                    TASKS_PREFETCH="$pf"
                amqp_side "run_celery_$a" "$fig" "celery_$a" -- "${w[@]}"
                anchors+=("celery_$a")
            done
            weave_vs "$fig" 10 "broker redis waiter" "${anchors[@]}" || continue
            ;;
        outbox)
            fig=tasks.outbox
            echo "# $fig: $outbox_n transactions (after $((outbox_n / 10)) of warm-up), each an" \
                "INSERT into bench_orders and a tasks.noop for it, committed, the task run and" \
                "its result stored; tasks/s from the first timed transaction to the last result." \
                "weave: wv_task_enqueue in the transaction, the queue and the results in" \
                "PostgreSQL (weave_tasks), counted by LISTEN weave_tasks_done in the producer" \
                "(its own waiter) and then in the table. Celery: the transaction committed, then send_task to Redis (no outbox:" \
                "a task can be lost between the two), results in Redis"
            outbox_side run_weave "$fig" weave weave -- "$bench" worker "$pg_url" "$weave_conc"
            anchors=()
            for a in "${outbox_anchors[@]}"; do
                celery_worker w "$a" "$(pool_conc "$a")"
                outbox_side "run_celery_$a" "$fig" "celery_$a" celery -- "${w[@]}"
                anchors+=("celery_$a")
            done
            weave_vs "$fig" 5 "pg redis producer waiter" "${anchors[@]}" || continue
            ;;
    esac
done

bench_load_end
bench_finish
