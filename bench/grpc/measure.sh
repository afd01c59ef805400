#!/usr/bin/env bash
# bench/grpc/measure.sh: one grpc_load run of bench/run_grpc.sh against a
# server that is already running. Prints `value=<n>` (what bench_run in
# ../lib.sh reads) and appends the run's details, as key=value pairs, to
# INFO_FILE.
#
#   measure.sh KIND SECS RATE PID PORT INFO_FILE
#
#   KIND   unary   SayHello calls
#          stream  StreamHello calls, COUNT messages each
#   SECS   grpc_load -d: start calls for this long, then let those in flight end
#   RATE   0       as fast as answered: value = calls/s (unary) or
#                  messages/s (stream)
#          n       n calls a second (grpc_load -r): value = the server's CPU
#                  µs per call (unary) or per message (stream). The run fails
#                  when it reached under 95% of n calls/s: the server did not
#                  keep up, and its CPU would not be at the rate asked for.
#   PID    the server process measured (CPU of all its threads)
#   PORT   where it listens (h2c, 127.0.0.1)
#
# Environment: GRPC_LOAD (the grpc_load binary), CONNS and STREAMS (grpc_load
# -c and -m: calls in flight = CONNS * STREAMS), COUNT (messages a stream
# call), LOADGEN_CPU (default 1: the CPU grpc_load is pinned to).
#
# grpc_load checks every call itself (HTTP 200, application/grpc, grpc-status
# 0, every message byte for byte, their count) and exits 1 at the first that
# is wrong; this script then fails too, and also when PID died or was
# replaced during the run.
#
# INFO_FILE gets one line per run: value, rps (calls a second), calls, messages, secs, server_cpu
# and loadgen_cpu (% of one core over the run), server_us and loadgen_us (CPU
# µs per call for unary, per message for stream), rss_kb (the server's VmRSS
# after), msgs_per_frame (messages per HTTP/2 DATA frame the server sent:
# 1 when it frames each on its own, more when it packs several in one),
# cpu_src (where the server's CPU came from: schedstat, or ticks).
set -euo pipefail

die()
{
    echo "measure.sh: $*" >&2
    exit 1
}

[[ $# -eq 6 ]] || die "usage: measure.sh KIND SECS RATE PID PORT INFO_FILE"
kind=$1 secs=$2 rate=$3 pid=$4 port=$5 info=$6
case $kind in
unary | stream) ;;
*) die "unknown kind '$kind'" ;;
esac
: "${GRPC_LOAD:?}" "${CONNS:?}" "${STREAMS:?}" "${COUNT:?}"

# The CPU time of process $1, all its threads, in ns: the scheduler's own
# count (the first field of /proc/PID/task/TID/schedstat), where utime +
# stime in /proc/PID/stat count clock ticks (10 ms), too coarse for a server
# that spends a tenth of a second in a run. (A thread that exits during the
# run takes its time with it: see proc_ticks.)
proc_cpu()
{
    local f
    f=(/proc/"$1"/task/*/schedstat)
    [[ -r ${f[0]} ]] || return 1
    awk '{ s += $1 } END { printf "%.0f\n", s }' "${f[@]}"
}

# utime + stime of process $1 in clock ticks (/proc/PID/stat: every thread,
# those that exited too). When they add up to clearly more than proc_cpu's
# count (a thread exited during the run, as grpcio's C-core may retire one),
# the run's server CPU is taken from them instead.
proc_ticks()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
hz=$(getconf CLK_TCK)

[[ -r /proc/$pid/stat ]] || die "the server (pid $pid) is not running"
start_time=$(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat")

s0=$(proc_cpu "$pid") || die "the server (pid $pid) is not running"
t0=$(proc_ticks "$pid")
rc=0
out=$(taskset -c "${LOADGEN_CPU:-1}" "$GRPC_LOAD" -p "$port" -k "$kind" -c "$CONNS" \
    -m "$STREAMS" -s "$COUNT" -d "$secs" -r "$rate" -T "$((${secs%.*} + 60))") || rc=$?
s1=$(proc_cpu "$pid" 2>/dev/null) || die "the server (pid $pid) died during the run"
t1=$(proc_ticks "$pid" 2>/dev/null) || die "the server (pid $pid) died during the run"
rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$pid/status")
printf '%s\n' "$out" >&2 # shown by bench_run on failure or with BENCH_VERBOSE=1

[[ $rc == 0 ]] || die "grpc_load exited with status $rc"
[[ $(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat") == "$start_time" ]] ||
    die "the server (pid $pid) was replaced during the run"

# calls=N messages=N secs=S cpu_s=C data_frames=N
read -r calls messages wall cpu frames < <(sed -n \
    's/^calls=\([0-9]*\) messages=\([0-9]*\) secs=\([0-9.]*\) cpu_s=\([0-9.]*\) data_frames=\([0-9]*\)$/\1 \2 \3 \4 \5/p' \
    <<<"$out") || true
[[ -n ${frames:-} ]] || die "could not read grpc_load's report"
((calls > 0)) || die "no call was made"
if [[ $rate != 0 ]]; then
    awk -v n="$calls" -v s="$wall" -v want="$rate" 'BEGIN { exit !(n / s >= 0.95 * want) }' ||
        die "the run reached $(awk -v n="$calls" -v s="$wall" 'BEGIN { printf "%.0f", n / s }')" \
            "calls/s, under 95% of the fixed rate $rate: the server did not keep up"
fi

result=$(awk -v kind="$kind" -v rate="$rate" -v calls="$calls" -v msgs="$messages" -v secs="$wall" \
    -v cpu="$cpu" -v frames="$frames" -v dsched="$(((s1 - s0) / 1000))" -v dticks="$((t1 - t0))" -v hz="$hz" -v rss="${rss:-0}" 'BEGIN {
    per = kind == "unary" ? calls : msgs
    ds = dsched; src = "schedstat"                     # µs
    if (dticks * 1e6 / hz > dsched * 1.05 + 20000) { ds = dticks * 1e6 / hz; src = "ticks" }
    value = rate == 0 ? per / secs : ds / per
    printf "value=%.4f rps=%.1f calls=%.0f messages=%.0f secs=%.3f server_cpu=%.0f loadgen_cpu=%.0f" \
        " server_us=%.3f loadgen_us=%.3f rss_kb=%.0f msgs_per_frame=%.2f cpu_src=%s\n", value, calls / secs, calls,
        msgs, secs, 100 * ds / 1e6 / secs, 100 * cpu / secs, ds / per, cpu * 1e6 / per,
        rss, frames ? msgs / frames : 0, src
}')
[[ $result == value=* ]] || die "could not compute the figure"
echo "$result" >>"$info"
echo "${result%% *}"
