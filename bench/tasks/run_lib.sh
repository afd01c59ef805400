# bench/tasks/run_lib.sh: what every per-run script of bench/run_tasks.sh
# shares (source it, do not run it): a temp dir, the worker under test
# started on CPU 0 and stopped with a warm shutdown, and a failure that
# shows the worker's output.
# shellcheck shell=bash
#
#   $dir                             the run's temp dir, removed at exit
#   start_worker WAIT_READY CMD...   CMD on CPU 0 (taskset -c 0, every thread it
#                                    makes), its output in $dir/worker.log, its pid
#                                    in $wpid and $dir/worker.pid; with WAIT_READY=1
#                                    until it says "ready" (a line of its output, at
#                                    most 60 s: its start-up is not timed)
#   start_waiter CMD...              CMD (bench_tasks count ... $dir/subscribed) in the
#                                    background, its stdout in $dir/count.out, its pid
#                                    in $cpid; until it has made $dir/subscribed (5 s)
#   end_waiter [PID]                 wait for it (failing at once if the worker, or PID
#                                    with an exit status not 0, ends first; PID ended
#                                    with 0: $other_reaped=1), make $dir/done, print
#                                    its stdout; fail if it failed
#   stop_worker                      SIGTERM (warm shutdown), SIGKILL after 30 s;
#                                    returns its exit status (in $wrc too)
#   fail WHY                         say why and the worker's last lines, exit 1
#   $cpid                            a helper the run started in the background (the
#                                    waiter): ended at exit, before the worker

run_name=$(basename "$0")
# shellcheck disable=SC2034 # other_reaped: read by the scripts that source this
wpid='' wrc=0 cpid='' other_reaped=0
dir=$(mktemp -d /tmp/weave-bench-tasks-run.XXXXXX)

stop_worker()
{
    local i
    [[ -n $wpid ]] || return 0
    kill -TERM "$wpid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$wpid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$wpid" 2>/dev/null || true
    wrc=0
    wait "$wpid" || wrc=$?
    wpid=''
    return "$wrc"
}

fail()
{
    echo "$run_name: $1; the worker's output ends:" >&2
    tail -n 20 "$dir/worker.log" 2>/dev/null | sed 's/^/  /' >&2 || true
    exit 1
}

run_cleanup()
{
    if [[ -n $cpid ]]; then
        kill -TERM "$cpid" 2>/dev/null || true
        wait "$cpid" 2>/dev/null || true
    fi
    stop_worker || true
    rm -rf "$dir"
}
trap run_cleanup EXIT
trap 'exit 130' INT TERM

start_worker()
{
    local wait_ready=$1 i
    shift
    taskset -c 0 "$@" >"$dir/worker.log" 2>&1 &
    wpid=$!
    echo "$wpid" >"$dir/worker.pid"
    [[ $wait_ready == 1 ]] || return 0
    for ((i = 0; i < 600; i++)); do
        grep -qE '(^|\] )ready$' "$dir/worker.log" && break
        kill -0 "$wpid" 2>/dev/null || fail "the worker exited before it was ready"
        sleep 0.1
    done
    ((i < 600)) || fail "the worker was not ready after 60 s"
}

start_waiter()
{
    local i
    "$@" >"$dir/count.out" &
    cpid=$!
    for ((i = 0; i < 100; i++)); do
        [[ -f $dir/subscribed ]] && return 0
        kill -0 "$cpid" 2>/dev/null || fail "the waiter exited before it subscribed"
        sleep 0.05
    done
    fail "the waiter did not subscribe within 5 s"
}

end_waiter()
{
    local crc=0 other=${1:-} orc
    # the waiter ends by itself (every result, a failure or its timeout); a
    # worker that dies first, or a failed OTHER, ends the run
    while kill -0 "$cpid" 2>/dev/null; do
        kill -0 "$wpid" 2>/dev/null || fail "the worker exited before every result was stored"
        if [[ -n $other ]] && ! kill -0 "$other" 2>/dev/null; then
            orc=0
            wait "$other" || orc=$?
            ((orc == 0)) || fail "the producer failed (exit status $orc)"
            # shellcheck disable=SC2034 # read by the caller
            other='' other_reaped=1
        fi
        sleep 0.05
    done
    wait "$cpid" || crc=$?
    cpid=''
    touch "$dir/done"
    cat "$dir/count.out"
    ((crc == 0)) || fail "the waiter failed"
}
