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
#                   pipelined_cpu  the same load: value = CPU time of PID
#                              per request, in microseconds (as cpu)
#                   cpu        keep-alive, no pipelining: value = CPU time of
#                              PID (utime + stime of all its threads, from
#                              /proc/PID/stat) per request, in microseconds
#                   rps        keep-alive, no pipelining: value = requests/s
#                   sleep      no pipelining, --timeout 5s, every response's
#                              status and BODY checked by a wrk hook: value =
#                              the steady rate of good responses (a 200 with
#                              BODY): those after the first CONNS, per second
#                              from the CONNS-th to the last (see README.md);
#                              when fewer than 2 * CONNS came, the whole-run
#                              rate (good responses / seconds from the start
#                              to the last), and rate_kind=whole in INFO_FILE
#                   mbps       no pipelining: value = MB/s read (10^6 bytes)
#   CONNS, SECONDS  wrk -c and -d (wrk itself: one thread, on CPU $WRK_CPU,
#                   default 1)
#   PID             the server process measured (nginx: its worker)
#   RESPONSE_BYTES  the size of one whole response (status line, headers,
#                   body) as the readiness check saw it
#   BODY            sleep mode: the exact body every response must carry
#
# The run fails (exit 1, the reason on stderr) unless every response was a
# 2xx/3xx by wrk's count (no "Non-2xx" line); the bytes read add up to whole
# responses of RESPONSE_BYTES (so every answer was the expected one: a 404
# page or a different body would not add up); PID is still alive; wrk saw no
# socket error nor timeout; and there were at least 2 * CONNS * DEPTH
# responses (wrk counts no timeout in a run shorter than its 5 s timeout, so a
# server that leaves requests unanswered would otherwise pass). In sleep mode only wrk's failure, the server's
# death or the absence of any good response fail the run: socket errors,
# timeouts (no answer within 5 s), non-2xx statuses and wrong bodies are
# counted in INFO_FILE (sock_errors, timeouts, non2xx, bad; wrong answers are
# not counted in the rate): whether every request was answered, and in time,
# is part of that figure.
#
# INFO_FILE gets one line per run: value, rps (wrk's requests / run length),
# requests, server_cpu and wrk_cpu (% of one core over the run), p50_us,
# p99_us, max_us, rss0_kb (VmRSS before), hwm_kb (VmHWM after), per_conn,
# sock_errors, timeouts, non2xx, user_share (% of the server's CPU time in
# user space), cpu_us (server CPU per request, µs), and in sleep mode good,
# bad, steady_rps, whole_rps, round_s, rate_kind.
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
pipelined | pipelined_cpu) depth=16 ;;
cpu | rps | mbps) depth=1 ;;
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
    --latency -s "$here/wrk.lua" "$url" -- "depth=$depth" "check=$check" "body=$body" \
    "conns=$conns" 2>&1) || rc=$?
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
sock_errors=$((r[connect] + r[read] + r[write]))
if [[ $check == 1 ]]; then
    # sleep: whether every request was answered (in time) is part of what is
    # measured, counted here and reported by the driver; wrong answers are
    # counted (bad, non2xx) and left out of the rate.
    ((r[good] > 0)) || problems+=("no response was a 200 with the expected body")
else
    ((r[status] == 0)) || problems+=("${r[status]} responses were not 2xx/3xx (wrk's Non-2xx count)")
    for e in connect read write timeout; do
        ((r[$e] == 0)) || problems+=("${r[$e]} socket $e errors")
    done
    # Connections that stall (a server that leaves a request unanswered) are
    # not counted as timeouts by wrk in a run shorter than its 5 s timeout:
    # every connection must have gone round at least twice.
    if ((r[requests] > 0 && r[requests] < 2 * conns * depth)); then
        problems+=("only ${r[requests]} responses on $conns connections with $depth requests in flight each: connections stalled")
    fi
fi
# Every completed response was read whole: bytes >= requests * size. What is
# read beyond that is the start of the responses still in flight when wrk
# stopped (at most CONNS * DEPTH of them) or cut by a socket error. (In sleep
# mode the hook has checked every body; the sizes add up only when every
# answer was good.)
if [[ $check == 0 ]] || ((r[bad] == 0 && r[status] == 0)); then
    if ((r[bytes] < r[requests] * size ||
        r[bytes] > (r[requests] + conns * depth + sock_errors) * size)); then
        problems+=("read ${r[bytes]} bytes for ${r[requests]} responses, expected $size bytes each")
    fi
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
    extra = ""
    if (mode == "pipelined" || mode == "rps") value = rps
    else if (mode == "cpu" || mode == "pipelined_cpu") value = ds / hz * 1e6 / v["requests"]
    else if (mode == "sleep") {
        whole = v["span_us"] > 0 ? v["good"] / (v["span_us"] / 1e6) : 0
        steady = 0
        if (v["round_us"] > 0 && v["span_us"] > v["round_us"])
            steady = (v["good"] - conns) / ((v["span_us"] - v["round_us"]) / 1e6)
        kind = v["good"] >= 2 * conns ? "steady" : "whole"
        value = kind == "steady" ? steady : whole
        extra = sprintf(" good=%d bad=%d steady_rps=%.1f whole_rps=%.1f round_s=%.3f rate_kind=%s",
            v["good"], v["bad"], steady, whole, v["round_us"] / 1e6, kind)
    }
    else value = v["bytes"] / secs / 1e6
    printf "value=%.4f rps=%.1f requests=%d server_cpu=%.0f wrk_cpu=%.0f p50_us=%d p99_us=%d" \
        " max_us=%d rss0_kb=%d hwm_kb=%d per_conn=%.3f sock_errors=%d timeouts=%d non2xx=%d" \
        " user_share=%.0f cpu_us=%.3f%s\n", value, rps, v["requests"], 100 * ds / hz / secs,
        100 * dw / hz / secs, v["p50_us"], v["p99_us"], v["max_us"], rss0, hwm,
        v["requests"] / conns, errs, v["timeout"], v["status"], (ds > 0 ? 100 * du / ds : 0),
        ds / hz * 1e6 / v["requests"], extra
}')
[[ $result == value=* ]] || die "could not compute the figure from: $line"
echo "$result" >>"$info"
echo "${result%% *}"
