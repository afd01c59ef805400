#!/usr/bin/env bash
# bench/http/measure.sh: one wrk run of bench/run_http.sh against a server that
# is already running. Prints `value=<n>` (what bench_run in ../lib.sh reads)
# and appends the run's details, as key=value pairs, to INFO_FILE.
#
#   measure.sh MODE CONNS SECONDS PID URL RESPONSE_BYTES INFO_FILE [BODY]
#
#   MODE            pipelined  16 requests written at once per connection
#                              (the server, not wrk, is the bottleneck):
#                              value = requests/s
#                   cpu        keep-alive, no pipelining: value = CPU time of
#                              PID (utime + stime of all its threads, from
#                              /proc/PID/stat) per request, in microseconds
#                   sleep      no pipelining, --timeout 5s, every response's
#                              status and BODY checked by a wrk hook: value =
#                              responses / seconds from the start of the run
#                              to the last response (see README.md)
#                   mbps       no pipelining: value = MB/s read (10^6 bytes)
#   CONNS, SECONDS  wrk -c and -d (wrk itself: one thread, on CPU $WRK_CPU,
#                   default 1)
#   PID             the server process measured (nginx: its worker)
#   RESPONSE_BYTES  the size of one whole response (status line, headers,
#                   body) as the readiness check saw it
#   BODY            sleep mode: the exact body every response must carry
#
# The run fails (exit 1, the reason on stderr) unless every response was a
# 2xx/3xx by wrk's count (no "Non-2xx" line) and, in sleep mode, a 200 with
# BODY by the hook; the bytes read add up to whole responses of RESPONSE_BYTES
# (so every answer was the expected one: a 404 page or a different body would
# not add up); PID is still alive; and, except in sleep mode, wrk saw no
# socket error nor timeout. In sleep mode those are counted in INFO_FILE
# (sock_errors, timeouts): whether every request was answered in time is
# part of that figure.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die()
{
    echo "measure.sh: $*" >&2
    exit 1
}

[[ $# -ge 7 ]] || die "usage: measure.sh MODE CONNS SECONDS PID URL RESPONSE_BYTES INFO_FILE [BODY]"
mode=$1 conns=$2 seconds=$3 pid=$4 url=$5 size=$6 info=$7 body=${8:-}

timeout=5
check=0
case $mode in
pipelined) depth=16 ;;
cpu | mbps) depth=1 ;;
sleep) depth=1 check=1 ;;
*) die "unknown mode '$mode'" ;;
esac

hz=$(getconf CLK_TCK)

# utime + stime (fields 14, 15; all threads) of process $1, in clock ticks.
# The fields are counted after the ')' that closes the command name.
proc_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# utime of process $1 alone (user-space share of its CPU).
proc_user()
{
    awk '{ sub(/^.*\) /, ""); print $12 }' "/proc/$1/stat"
}

# cutime + cstime of this shell: the CPU of its children once reaped (wrk).
children_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

[[ -r /proc/$pid/stat ]] || die "the server (pid $pid) is not running"
start_time=$(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat")

rss0=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
s0=$(proc_cpu "$pid")
u0=$(proc_user "$pid")
w0=$(children_cpu)
rc=0
out=$(taskset -c "${WRK_CPU:-1}" wrk -t1 -c"$conns" -d"${seconds}s" --timeout "${timeout}s" \
    -s "$here/wrk.lua" "$url" -- "$depth" "$check" "$body" 2>&1) || rc=$?
s1=$(proc_cpu "$pid" 2>/dev/null) || die "the server (pid $pid) died during the run"
u1=$(proc_user "$pid")
w1=$(children_cpu)
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
printf '%s\n' "$out" >&2 # shown by bench_run on failure or with BENCH_VERBOSE=1

[[ $rc == 0 ]] || die "wrk exited with status $rc"
# The same pid but another process (pid reuse) would have another start time.
[[ $(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat") == "$start_time" ]] ||
    die "the server (pid $pid) was replaced during the run"

line=$(printf '%s\n' "$out" | grep '^wrkdone ' | tail -n 1) || die "no summary line from wrk.lua"
declare -A r
for kv in ${line#wrkdone }; do
    r[${kv%%=*}]=${kv#*=}
done

problems=()
((r[requests] > 0)) || problems+=("no request completed")
((r[status] == 0)) || problems+=("${r[status]} responses were not 2xx/3xx (wrk's Non-2xx count)")
sock_errors=$((r[connect] + r[read] + r[write]))
if [[ $check == 1 ]]; then
    # sleep: whether every request was answered (in time) is part of what is
    # measured, reported by the driver; only a wrong answer fails the run.
    ((r[bad] == 0)) || problems+=("${r[bad]} of ${r[checked]} responses were not a 200 with the expected body")
else
    for e in connect read write timeout; do
        ((r[$e] == 0)) || problems+=("${r[$e]} socket $e errors")
    done
fi
# Every completed response was read whole: bytes >= requests * size. What is
# read beyond that is the start of the responses still in flight when wrk
# stopped (at most CONNS * DEPTH of them) or cut by a socket error.
if ((r[bytes] < r[requests] * size ||
    r[bytes] > (r[requests] + conns * depth + sock_errors) * size)); then
    problems+=("read ${r[bytes]} bytes for ${r[requests]} responses, expected $size bytes each")
fi
if ((${#problems[@]})); then
    printf -v why '%s; ' "${problems[@]}"
    die "${why%; }"
fi

result=$(awk -v mode="$mode" -v r="$line" -v hz="$hz" -v ds="$((s1 - s0))" -v du="$((u1 - u0))" -v dw="$((w1 - w0))" \
    -v hwm="${hwm:-0}" -v rss0="${rss0:-0}" -v conns="$conns" -v errs="$sock_errors" 'BEGIN {
    n = split(r, kv, " ")
    for (i = 2; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    secs = v["duration_us"] / 1e6
    rps = v["requests"] / secs
    if (mode == "pipelined") value = rps
    else if (mode == "cpu") value = ds / hz * 1e6 / v["requests"]
    else if (mode == "sleep") value = v["checked"] / (v["span_us"] / 1e6)
    else value = v["bytes"] / secs / 1e6
    printf "value=%.4f rps=%.1f requests=%d server_cpu=%.0f wrk_cpu=%.0f p50_us=%d p99_us=%d" \
        " max_us=%d rss0_kb=%d hwm_kb=%d per_conn=%.3f sock_errors=%d timeouts=%d" \
        " user_share=%.0f\n", value, rps, v["requests"], 100 * ds / hz / secs,
        100 * dw / hz / secs, v["p50_us"], v["p99_us"], v["max_us"], rss0, hwm,
        v["requests"] / conns, errs, v["timeout"], (ds > 0 ? 100 * du / ds : 0)
}')
[[ $result == value=* ]] || die "could not compute the figure from: $line"
echo "$result" >>"$info"
echo "${result%% *}"
