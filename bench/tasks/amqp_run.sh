#!/usr/bin/env bash
# bench/tasks/amqp_run.sh: one run of bench/run_tasks.sh's tasks.amqp, the
# same for every side: N messages sent to RabbitMQ while no worker runs,
# one worker started, its results counted in Redis and checked.
#
#   amqp_run.sh BENCH_TASKS BENCH_AMQP AMQP_URL REDIS_URL TASK WARM N UNIT TIMEOUT_S
#       -- WORKER_CMD...
#
# AMQP_URL is the node's (amqp://guest:guest@127.0.0.1:PORT/, the vhost
# "/" as weave's AMQP client reads it); the tasks' clients get kombu's
# spelling of the same vhost (AMQP_URL with "//" at its end).
#
#  1. FLUSHALL on the result backend (the suite's own redis-server) and
#     the queue "celery" deleted (bench_amqp delete): the same empty start
#     for every run;
#  2. `bench_tasks fill` (CPU 1) sends WARM, then N messages of TASK to the
#     queue "celery" with wv_tasks_send (64 fibers, each send confirmed by
#     the broker; persistent, as kombu sends them), the Redis result
#     backend named in them (no reply_to: the same message Celery's
#     producer sends with a Redis backend), and the queue must then hold
#     exactly WARM + N (bench_amqp expect);
#  3. `bench_tasks count` (CPU 1) subscribes to the results
#     (PSUBSCRIBE celery-task-meta-*) and says so, then WORKER_CMD starts on
#     CPU 0 (taskset -c 0, every thread it makes) and consumes the full
#     queue at once: RabbitMQ has no RENAME to hand a worker a whole queue
#     in one step, so the worker's start-up and its first WARM tasks are
#     the warm-up, and the clock starts at the WARM-th result stored (the
#     queue still holds about N messages: every side is timed from the
#     same point of the same full queue, in its steady state) and stops at
#     the (WARM + N)-th; then every result is read back from the backend
#     (SUCCESS, the expected value, the right id);
#  4. the worker gets SIGTERM (warm shutdown) and must exit 0 within 30 s;
#     then the queue must be empty (a message delivered and not acked would
#     be back in it once the worker's connection closed).
#
# stdout is the waiter's (bench_run in ../lib.sh reads its value= line);
# the rest goes to stderr, with the worker's output when something failed.
# The environment passes on TASKS_REDIS_PID and TASKS_BROKER_PID
# (redis-server's and RabbitMQ's pids, for their CPU) and whatever the
# worker reads (TASKS_BROKER, TASKS_BACKEND, ...).
set -euo pipefail

bench=$1 bench_amqp=$2 amqp=$3 url=$4 task=$5 warm=$6 n=$7 unit=$8 timeout_s=$9
shift 9
[[ ${1:-} == -- ]] && shift
broker=${amqp%/}//

# shellcheck source-path=SCRIPTDIR source=run_lib.sh
. "$(dirname "$0")/run_lib.sh"

redis-cli -u "$url" flushall >/dev/null
taskset -c 1 "$bench_amqp" delete "$amqp" celery >&2
taskset -c 1 "$bench" fill "$broker" "$url" "$task" "$warm" "$n" "$dir/ids" >&2
taskset -c 1 "$bench_amqp" expect "$amqp" celery $((warm + n)) >&2 ||
    fail "the queue does not hold the $((warm + n)) messages sent"

TASKS_WORKER_PID_FILE=$dir/worker.pid start_waiter taskset -c 1 "$bench" count "$url" "$warm" \
    "$n" "$dir/ids" "$unit" "$timeout_s" "$dir/subscribed"

start_worker 0 "$@"
end_waiter ""
stop_worker || fail "the worker's warm shutdown failed (exit status $wrc)"
taskset -c 1 "$bench_amqp" expect "$amqp" celery 0 >&2 ||
    fail "messages were left in the queue after every result"
