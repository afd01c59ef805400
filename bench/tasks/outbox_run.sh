#!/usr/bin/env bash
# bench/tasks/outbox_run.sh: one run of bench/run_tasks.sh's tasks.outbox:
# N transactions on PostgreSQL, each saving a row of bench_orders and a
# task, and every task run by one worker and its result stored, timed from
# the first transaction to the last result.
#
#   outbox_run.sh weave|celery BENCH_TASKS PG_URL REDIS_URL WARM N PRODUCERS TIMEOUT_S
#       -- WORKER_CMD...
#
#  1. `bench_tasks outbox-reset` (CPU 1): bench_orders and weave_tasks
#     made when missing and emptied; FLUSHALL on Redis: the same empty
#     start for every run;
#  2. WORKER_CMD starts on CPU 0 (taskset -c 0, every thread it makes) and
#     the run waits until it says "ready" (its start-up is not timed);
#  3. weave: `bench_tasks outbox` (CPU 1) runs WARM, then N transactions
#     (INSERT into bench_orders and wv_task_enqueue, committed together)
#     from PRODUCERS fibers on a pool of as many connections, while it
#     counts the results the worker stores (LISTEN weave_tasks_done: the
#     database backend notifies each); the clock runs from the first of
#     the N transactions to their N-th result, and then every order and
#     every task must be in the database, SUCCESS and done.
#     celery: `bench_tasks count` (CPU 1) subscribes to the Redis results;
#     tasks/outbox_celery.py (CPU 1) runs the WARM transactions (INSERT,
#     COMMIT, then send_task to Redis), waits for their results, writes
#     its clock reading and runs the N; the clock runs from that reading to
#     the N-th result published, every result is then checked in Redis,
#     bench_orders must hold WARM + N rows and the queue must be empty (the
#     producer keeps its connections until the waiter is done, so that
#     PostgreSQL's CPU counts every backend);
#  4. the worker gets SIGTERM (warm shutdown) and must exit 0 within 30 s.
#
# stdout is the timing process's (bench_run in ../lib.sh reads its value=
# line); the rest goes to stderr. The environment passes on TASKS_PG_PID
# and TASKS_REDIS_PID (the servers' pids, for their CPU) and whatever the
# worker reads.
set -euo pipefail

side=$1 bench=$2 pg=$3 url=$4 warm=$5 n=$6 producers=$7 timeout_s=$8
shift 8
[[ ${1:-} == -- ]] && shift
py=/usr/bin/python3

# shellcheck source-path=SCRIPTDIR source=run_lib.sh
. "$(dirname "$0")/run_lib.sh"

taskset -c 1 "$bench" outbox-reset "$pg" >&2
redis-cli -u "$url" flushall >/dev/null
start_worker 1 "$@"

case $side in
    weave)
        TASKS_WORKER_PID=$wpid taskset -c 1 "$bench" outbox "$pg" "$warm" "$n" "$producers" \
            "$timeout_s" || fail "the producer failed"
        ;;
    celery)
        TASKS_WORKER_PID=$wpid TASKS_WARM_DONE_FILE=$dir/warm.done TASKS_T0_FILE=$dir/t0 \
            TASKS_PRODUCER_PID_FILE=$dir/producer.pid start_waiter taskset -c 1 "$bench" count \
            "$url" "$warm" "$n" "$dir/ids" rate "$timeout_s" "$dir/subscribed"
        taskset -c 1 "$py" "$(dirname "$0")/outbox_celery.py" "$pg" "$url" "$warm" "$n" \
            "$producers" "$dir/ids" "$dir/warm.done" "$dir/t0" "$dir/done" >&2 &
        ppid=$!
        echo "$ppid" >"$dir/producer.pid"
        end_waiter "$ppid"
        if [[ $other_reaped == 0 ]]; then
            wait "$ppid" || fail "the producer failed"
        fi
        left=$(redis-cli -u "$url" llen celery)
        [[ $left == 0 ]] || fail "$left messages left in the queue after every result"
        ;;
    *) fail "the side is weave or celery, not $side" ;;
esac
stop_worker || fail "the worker's warm shutdown failed (exit status $wrc)"
