#!/usr/bin/env bash
# bench/api/measure.sh: one wrk run of bench/run_api.sh against a server that
# is already running (the api suite's counterpart of bench/http/measure.sh's
# cpu mode). Prints `value=<n>` (what bench_run in ../lib.sh reads): the
# server's CPU time per request in microseconds (utime + stime of all its
# threads, from /proc/PID/stat, around the run, over the requests wrk
# completed); appends the run's details, as key=value pairs, to INFO_FILE.
#
#   measure.sh CONNS SECONDS PID URL RESPONSE_BYTES INFO_FILE BODY_FILE [TOKEN]
#
#   CONNS, SECONDS  wrk -c and -d (wrk itself: one thread, on CPU $WRK_CPU,
#                   default 1; keep-alive, no pipelining)
#   PID             the server process measured
#   RESPONSE_BYTES  the size of one whole response (status line, headers,
#                   body) as the readiness check saw it
#   BODY_FILE       what every request posts (post.lua)
#   TOKEN           a bearer token sent with every request
#
# The run fails (exit 1, the reason on stderr) unless wrk completed requests
# and every response was a 2xx/3xx by wrk's count (no "Non-2xx"); the bytes
# read add up to whole responses of RESPONSE_BYTES (the echo checked before
# the run has the body's size: a 422 or 401 page would not add up); PID is
# still the same live process; wrk saw no socket error nor timeout; and there
# were at least 2 * CONNS responses (wrk counts no timeout in a run shorter
# than its 5 s timeout, so stalled connections would otherwise pass).
#
# INFO_FILE gets one line per run: value, rps, requests, server_cpu and
# wrk_cpu (% of one core over the run), p50_us, p99_us, max_us, sock_errors,
# timeouts, non2xx, user_share (% of the server's CPU time in user space),
# cpu_us (= value).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die()
{
    echo "measure.sh: $*" >&2
    exit 1
}

[[ $# -ge 7 ]] || die "usage: measure.sh CONNS SECONDS PID URL RESPONSE_BYTES INFO_FILE BODY_FILE [TOKEN]"
conns=$1 seconds=$2 pid=$3 url=$4 size=$5 info=$6 body=$7 token=${8:-}
hz=$(getconf CLK_TCK)

# utime + stime (fields 14, 15; all threads, those that ended too) of process
# $1, in clock ticks; fields counted after the ')' that closes the name.
proc_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

proc_user()
{
    awk '{ sub(/^.*\) /, ""); print $12 }' "/proc/$1/stat"
}

# cutime + cstime of this shell: its children's CPU once reaped (wrk).
children_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

[[ -r /proc/$pid/stat ]] || die "the server (pid $pid) is not running"
[[ -r $body ]] || die "no body file $body"
start_time=$(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat")

s0=$(proc_cpu "$pid")
u0=$(proc_user "$pid")
w0=$(children_cpu)
rc=0
out=$(taskset -c "${WRK_CPU:-1}" wrk -t1 -c"$conns" -d"${seconds}s" --timeout 5s --latency \
    -s "$here/post.lua" "$url" -- "body=$body" "token=$token" 2>&1) || rc=$?
s1=$(proc_cpu "$pid" 2>/dev/null) || die "the server (pid $pid) died during the run"
u1=$(proc_user "$pid")
w1=$(children_cpu)
printf '%s\n' "$out" >&2 # shown by bench_run on failure or with BENCH_VERBOSE=1

[[ $rc == 0 ]] || die "wrk exited with status $rc"
[[ $(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat") == "$start_time" ]] ||
    die "the server (pid $pid) was replaced during the run"

line=$(printf '%s\n' "$out" | grep '^wrkdone ' | tail -n 1) || die "no summary line from post.lua"
declare -A r
for kv in ${line#wrkdone }; do
    r[${kv%%=*}]=${kv#*=}
done

problems=()
((r[requests] > 0)) || problems+=("no request completed")
((r[status] == 0)) || problems+=("${r[status]} responses were not 2xx/3xx (wrk's Non-2xx count)")
for e in connect read write timeout; do
    ((r[$e] == 0)) || problems+=("${r[$e]} socket $e errors")
done
if ((r[requests] > 0 && r[requests] < 2 * conns)); then
    problems+=("only ${r[requests]} responses on $conns connections: connections stalled")
fi
# Every completed response read whole; beyond that, at most one response in
# flight per connection when wrk stopped.
if ((r[bytes] < r[requests] * size || r[bytes] > (r[requests] + conns) * size)); then
    problems+=("read ${r[bytes]} bytes for ${r[requests]} responses, expected $size bytes each")
fi
if ((${#problems[@]})); then
    printf -v why '%s; ' "${problems[@]}"
    die "${why%; }"
fi

result=$(awk -v r="$line" -v hz="$hz" -v ds="$((s1 - s0))" -v du="$((u1 - u0))" \
    -v dw="$((w1 - w0))" 'BEGIN {
    n = split(r, kv, " ")
    for (i = 2; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    secs = v["duration_us"] / 1e6
    cpu_us = ds / hz * 1e6 / v["requests"]
    printf "value=%.4f rps=%.1f requests=%d server_cpu=%.0f wrk_cpu=%.0f p50_us=%d p99_us=%d" \
        " max_us=%d sock_errors=%d timeouts=%d non2xx=%d user_share=%.0f cpu_us=%.3f\n",
        cpu_us, v["requests"] / secs, v["requests"], 100 * ds / hz / secs, 100 * dw / hz / secs,
        v["p50_us"], v["p99_us"], v["max_us"], v["connect"] + v["read"] + v["write"],
        v["timeout"], v["status"], (ds > 0 ? 100 * du / ds : 0), cpu_us
}')
[[ $result == value=* ]] || die "could not compute the figure from: $line"
echo "$result" >>"$info"
echo "${result%% *}"
