#!/usr/bin/env bash
# bench/tasks/redis_run.sh: one run of bench/run_tasks.sh on Redis, the same
# for every side: N messages produced while no worker runs, one worker
# started, the queue released to it, every result waited for and checked.
#
#   redis_run.sh BENCH_TASKS URL TASK WARM N UNIT TIMEOUT_S -- WORKER_CMD...
#
#  1. FLUSHALL: the suite's own throwaway server, the same empty database
#     for every run;
#  2. `bench_tasks produce` (CPU 1) sends WARM, then N messages of TASK
#     (noop or async_add) to the queue "celery", each batch then renamed
#     out of sight (bench.warm, bench.hold);
#  3. WORKER_CMD starts on CPU 0 (taskset -c 0, every thread it makes); the
#     run waits until it says "ready" (a line of its output, at most 60 s):
#     its start-up is not timed;
#  4. `bench_tasks wait` (CPU 1) renames bench.warm back to "celery" and
#     waits for its WARM results (the warm-up), then renames bench.hold
#     back (the clock starts) and waits for the N-th result published by
#     the backend (the clock stops); then it checks every result in the
#     backend and that the queue is empty, and prints value= in UNIT
#     (rate: tasks/s; seconds) and the worker's and Redis's CPU over the
#     timed window;
#  5. the worker gets SIGTERM (warm shutdown) and must exit 0 within 30 s.
#
# stdout is the waiter's (bench_run in ../lib.sh reads its value= line);
# the rest goes to stderr, with the worker's output when something failed.
# The environment passes on: TASKS_REDIS_PID (redis-server's pid, for its
# CPU), and whatever the worker reads (TASKS_BROKER, ...).
set -euo pipefail

bench=$1 url=$2 task=$3 warm=$4 n=$5 unit=$6 timeout_s=$7
shift 7
[[ ${1:-} == -- ]] && shift

# shellcheck source-path=SCRIPTDIR source=run_lib.sh
. "$(dirname "$0")/run_lib.sh"

redis-cli -u "$url" flushall >/dev/null
taskset -c 1 "$bench" produce "$url" "$task" "$warm" "$n" "$dir/ids" >&2

start_worker 1 "$@"

TASKS_WORKER_PID=$wpid taskset -c 1 "$bench" wait "$url" "$warm" "$n" "$dir/ids" "$unit" \
    "$timeout_s" || fail "the waiter failed"
stop_worker || fail "the worker's warm shutdown failed (exit status $wrc)"
