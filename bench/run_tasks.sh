#!/usr/bin/env bash
# bench/run_tasks.sh: the task-queue suite (`make bench-tasks`; method:
# docs/benchmarking.md): weave's Celery-compatible worker
# (include/weave/tasks.h) against Python Celery 5.2's own workers, on the
# same broker and result backend, with the same producer, the same
# messages and the same tasks.
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
# throwaway one), the producer and the waiter on CPU 1: the figures need
# both cores. Weave and its anchors take turns, run after run (A B C A B C),
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
# Later figures (not here yet): tasks.amqp (Celery on RabbitMQ) and
# tasks.outbox (a PostgreSQL transactional queue) each need a broker
# set-up (like start_redis below), a per-run script beside
# bench/tasks/redis_run.sh, and a case in the figure loop; the
# alternation (tasks_rounds), the CPU lines and bench/tasks/celery_app.py
# (TASKS_BROKER, TASKS_BACKEND) are shared.
#
#   BUILD_DIR=dir          where bench_tasks is (default: build/release)
#   BENCH_LONG=1           7 rounds, 20,000 tasks for tasks.redis
#   BENCH_ROUNDS=n         override the number of rounds
#   BENCH_TIMEOUT=s        the longest a run may take (default here: 300)
#   BENCH_KEEP=1           keep the temp dir (Redis's log, every run's notes)
#   TASKS_FIGURES="redis sleep"        run only these
#   TASKS_REDIS_N=n, TASKS_SLEEP_N=n   the number of tasks of each figure
#   TASKS_REDIS_ANCHORS="solo threads", TASKS_SLEEP_ANCHORS="gevent"
#                          the Celery pools each figure runs against
#   TASKS_THREADS=c        -P threads concurrency for tasks.redis (8)
#   TASKS_GEVENT=c         -P gevent (and tasks.sleep's -P threads)
#                          concurrency (1000)
#   TASKS_PREFETCH=m       Celery's worker_prefetch_multiplier (4, its default)
#   TASKS_WEAVE_CONCURRENCY=c          weave's tasks.redis concurrency (16)
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

read -r -a wanted <<<"${TASKS_FIGURES:-redis sleep}"
read -r -a redis_anchors <<<"${TASKS_REDIS_ANCHORS:-solo threads}"
read -r -a sleep_anchors <<<"${TASKS_SLEEP_ANCHORS:-gevent}"
need_redis=0 need_gevent=0
for g in "${wanted[@]}"; do
    case ${g#tasks.} in
        redis | sleep) need_redis=1 ;;
        *)
            echo "run_tasks.sh: unknown figure '$g' (TASKS_FIGURES: redis sleep)" >&2
            exit 2
            ;;
    esac
    [[ ${g#tasks.} == sleep && " ${sleep_anchors[*]} " == *" gevent "* ]] && need_gevent=1
done
for a in "${redis_anchors[@]}" "${sleep_anchors[@]}"; do
    case $a in
        solo | threads | gevent) ;;
        *)
            echo "run_tasks.sh: unknown Celery pool '$a' (solo, threads, gevent)" >&2
            exit 2
            ;;
    esac
done
if [[ ! -x $bench ]]; then
    echo "run_tasks.sh: no $bench; build first (make build, or set BUILD_DIR)" >&2
    exit 1
fi
for tool in ss taskset redis-server redis-cli; do
    command -v "$tool" >/dev/null || {
        echo "run_tasks.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    }
done
if ! "$py" -c 'import celery, redis' 2>/dev/null; then
    echo "run_tasks.sh: $py lacks celery or redis (scripts/deps.sh bench installs them)" >&2
    exit 1
fi
if [[ $need_gevent == 1 ]] && ! "$py" -c 'import gevent' 2>/dev/null; then
    echo "run_tasks.sh: $py lacks gevent (scripts/deps.sh bench installs it)" >&2
    exit 1
fi
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

w=() # a worker command (celery_worker)
tmp=$(mktemp -d /tmp/weave-bench-tasks.XXXXXX)
mkdir -p "$tmp/info"
cleanup()
{
    if [[ -d $tmp/redis ]]; then
        "$root/scripts/redis_test_server.sh" stop "$tmp/redis" || true
    fi
    bench_drop_tmp "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ the broker

# start_redis: a throwaway redis-server on CPU 1 on the first free port from
# 26790; sets url and exports TASKS_REDIS_PID
url=''
start_redis()
{
    local port=26790 pid
    while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
    url=$(taskset -c 1 "$root/scripts/redis_test_server.sh" start "$tmp/redis" "$port")/0
    pid=$(cat "$tmp/redis/redis.pid")
    if ! ss -ltnpH "sport = :$port" | grep -q "pid=$pid,"; then
        echo "run_tasks.sh: the listener on port $port is not the redis-server started here" >&2
        exit 1
    fi
    export TASKS_REDIS_PID=$pid
    bench_load_own "$pid"
}
[[ $need_redis == 1 ]] && start_redis

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
bench_header tasks "every worker (bench_tasks with 1 shard, or a Celery worker with all its\
 threads) on CPU 0 (taskset -c 0); redis-server, the producer and the waiter on CPU 1: the\
 figures need both cores"
echo "# Redis $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p') at $url" \
    "(scripts/redis_test_server.sh: no persistence), broker and result backend alike, FLUSHALL" \
    "before every run"
echo "# producer (every side): bench_tasks produce, wv_tasks_send from 64 fibers into the" \
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

# celery_worker VAR POOL CONCURRENCY: VAR=(the Celery worker command)
celery_worker()
{
    local -n celery_worker_out=$1
    local conc=()
    [[ $2 != solo ]] && conc=(-c "$3")
    # shellcheck disable=SC2034 # a nameref: sets the caller's array
    celery_worker_out=(env TASKS_BROKER="$url" C_FORCE_ROOT=1 PYTHONPATH="$here/tasks"
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

# cpu_line FIGURE SIDE...: the worker's and Redis's CPU in every run of
# each side, and the medians
cpu_line()
{
    local fig=$1 side out=''
    shift
    for side in "$@"; do
        out+="${out:+; }$side: worker $(info_pcts "$fig" "$side" worker_cpu)"
        out+=" [$(info_median "$fig" "$side" worker_cpu)], $(info_runs "$fig" "$side" worker_us)"
        out+=" µs/task [$(info_median "$fig" "$side" worker_us)], redis"
        out+=" $(info_pcts "$fig" "$side" redis_cpu) [$(info_median "$fig" "$side" redis_cpu)],"
        out+=" waiter $(info_pcts "$fig" "$side" waiter_cpu)"
    done
    echo "# $fig CPU in each run's timed window, every run [median]: the worker (CPU 0)," \
        "redis-server and the waiter (CPU 1) in % of one core, the worker in CPU µs per task:" \
        "$out"
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
            cpu_line "$fig" "${sides[@]}" "${anchors[@]}"
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
            cpu_line "$fig" weave "${anchors[@]}"
            ;;
    esac
done

bench_load_end
bench_finish
