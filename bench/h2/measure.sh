#!/usr/bin/env bash
# bench/h2/measure.sh: one h2load run of bench/run_h2.sh against a server that
# is already running. Prints `value=<n>` (what bench_run in ../lib.sh reads)
# and appends the run's details, as key=value pairs, to INFO_FILE.
#
#   measure.sh MODE CONNS STREAMS REQUESTS RPS PID URL BODY_BYTES INFO_FILE
#
#   MODE       rps  value = requests/s (REQUESTS / h2load's "finished in")
#              cpu  value = CPU time of PID (utime + stime of all its threads,
#                   /proc/PID/stat) per request, in microseconds
#   CONNS      h2load -c: connections (one client each)
#   STREAMS    h2load -m: concurrent streams per connection
#   REQUESTS   h2load -n: requests in all (the run ends when all are done)
#   RPS        h2load --rps: requests per second per connection (0: as fast
#              as the server answers). A run at a fixed rate fails when it
#              reached less than 95% of CONNS * RPS: the server could not keep
#              up, and its CPU per request would not be at the rate asked for.
#   PID        the server process measured (nginx: its worker)
#   URL        http://... : h2c with prior knowledge (h2load's default for an
#              http URI)
#   BODY_BYTES the size of one response body
#
# h2load (nghttp2-client) runs with one thread on CPU $LOADGEN_CPU (default 1)
# and --connection-inactivity-timeout 5 s, so that a server leaving a stream
# unanswered fails the run within seconds instead of hanging it.
#
# The run fails (exit 1, the reason on stderr) unless h2load negotiated h2c;
# its report shows every request succeeded (REQUESTS succeeded, REQUESTS 2xx,
# none failed, errored or timed out); the bodies add up to REQUESTS *
# BODY_BYTES; and PID is still the process it was.
#
# INFO_FILE gets one line per run: value, rps, requests, secs, server_cpu and
# loadgen_cpu (% of one core over the run), server_us and loadgen_us (CPU µs
# per request), mean_us (h2load's mean time per request), rss0_kb (VmRSS
# before), rss1_kb (VmRSS after), hwm_kb (VmHWM after), header_bytes (HPACK-
# compressed header bytes h2load read, per response).
set -euo pipefail

die()
{
    echo "measure.sh: $*" >&2
    exit 1
}

[[ $# -eq 9 ]] ||
    die "usage: measure.sh MODE CONNS STREAMS REQUESTS RPS PID URL BODY_BYTES INFO_FILE"
mode=$1 conns=$2 streams=$3 requests=$4 rps=$5 pid=$6 url=$7 body=$8 info=$9
case $mode in
rps | cpu) ;;
*) die "unknown mode '$mode'" ;;
esac
hz=$(getconf CLK_TCK)

# utime + stime (fields 14, 15; all threads) of process $1, in clock ticks.
proc_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# cutime + cstime of this shell: the CPU of its children once reaped (h2load).
children_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

status_kb()
{
    awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"
}

[[ -r /proc/$pid/stat ]] || die "the server (pid $pid) is not running"
start_time=$(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat")

rate=()
((rps == 0)) || rate=(--rps "$rps")
rss0=$(status_kb "$pid" VmRSS)
s0=$(proc_cpu "$pid")
w0=$(children_cpu)
rc=0
out=$(taskset -c "${LOADGEN_CPU:-1}" h2load -t1 -c "$conns" -m "$streams" -n "$requests" \
    "${rate[@]}" -N 5s "$url" 2>&1) || rc=$?
s1=$(proc_cpu "$pid" 2>/dev/null) || die "the server (pid $pid) died during the run"
w1=$(children_cpu)
rss1=$(status_kb "$pid" VmRSS)
hwm=$(status_kb "$pid" VmHWM)
printf '%s\n' "$out" >&2 # shown by bench_run on failure or with BENCH_VERBOSE=1

[[ $rc == 0 ]] || die "h2load exited with status $rc"
[[ $(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat") == "$start_time" ]] ||
    die "the server (pid $pid) was replaced during the run"

# Application protocol: h2c
# finished in 3.21s, 93115.44 req/s, 3.54MB/s      (or 460.24ms, or 900us)
# requests: N total, N started, N done, N succeeded, 0 failed, 0 errored, 0 timeout
# status codes: N 2xx, 0 3xx, 0 4xx, 0 5xx
# traffic: 4.38MB (4595744) total, 1.54MB (1618980) headers (space savings 90.18%), 2.22MB (2328820) data
# time for request:       53us       413us       101us        40us    87.00%
proto=$(sed -n 's/^Application protocol: *//p' <<<"$out" | head -n 1)
secs=$(sed -n 's/^finished in \([0-9.]*\)\(us\|ms\|s\),.*/\1 \2/p' <<<"$out" |
    awk '{ print $2 == "us" ? $1 / 1e6 : $2 == "ms" ? $1 / 1e3 : $1 }')
read -r total succeeded failed errored timedout < <(sed -n \
    's/^requests: \([0-9]*\) total, .* \([0-9]*\) succeeded, \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3 \4 \5/p' \
    <<<"$out") || true
ok2xx=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
headers=$(sed -n 's/^traffic: .* (\([0-9]*\)) headers .*/\1/p' <<<"$out")
data=$(sed -n 's/^traffic: .*(\([0-9]*\)) data.*/\1/p' <<<"$out")
mean=$(sed -n 's/^time for request: *[0-9.]*[mu]*s *[0-9.]*[mu]*s *\([0-9.]*\)\([mu]*s\) .*/\1 \2/p' \
    <<<"$out" | awk '{ print $2 == "us" ? $1 : $2 == "ms" ? $1 * 1e3 : $1 * 1e6 }')
[[ -n $secs && -n ${total:-} && -n $ok2xx && -n $data && -n $headers ]] ||
    die "could not read h2load's report"

problems=()
[[ $proto == h2c ]] || problems+=("h2load negotiated '${proto:-nothing}', not h2c")
((total == requests)) || problems+=("h2load's total is $total, not $requests")
((succeeded == requests)) || problems+=("$succeeded of $requests requests succeeded")
((failed + errored + timedout == 0)) ||
    problems+=("$failed failed, $errored errored, $timedout timed out")
((ok2xx == requests)) || problems+=("$ok2xx of $requests responses were 2xx")
((data == requests * body)) ||
    problems+=("$data bytes of body for $requests responses, expected $body each")
if ((rps > 0)); then
    awk -v n="$requests" -v s="$secs" -v want="$((conns * rps))" 'BEGIN { exit !(n / s >= 0.95 * want) }' ||
        problems+=("the run reached $(awk -v n="$requests" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') req/s, under 95% of the fixed rate $((conns * rps)): the server did not keep up")
fi
if ((${#problems[@]})); then
    printf -v why '%s; ' "${problems[@]}"
    die "${why%; }"
fi

result=$(awk -v mode="$mode" -v n="$requests" -v secs="$secs" -v hz="$hz" -v ds="$((s1 - s0))" \
    -v dw="$((w1 - w0))" -v mean="${mean:-0}" -v rss0="${rss0:-0}" -v rss1="${rss1:-0}" \
    -v hwm="${hwm:-0}" -v hdr="$headers" 'BEGIN {
    value = mode == "rps" ? n / secs : ds / hz * 1e6 / n
    printf "value=%.4f rps=%.1f requests=%d secs=%.3f server_cpu=%.0f loadgen_cpu=%.0f" \
        " server_us=%.3f loadgen_us=%.3f mean_us=%.0f rss0_kb=%d rss1_kb=%d hwm_kb=%d" \
        " header_bytes=%.1f\n", value, n / secs, n, secs, 100 * ds / hz / secs,
        100 * dw / hz / secs, ds / hz * 1e6 / n, dw / hz * 1e6 / n, mean, rss0, rss1, hwm, hdr / n
}')
[[ $result == value=* ]] || die "could not compute the figure"
echo "$result" >>"$info"
echo "${result%% *}"
