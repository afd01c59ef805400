#!/usr/bin/env bash
# bench/tls/handshake.sh: one h2load run of tls.handshake (bench/run_tls.sh)
# against a server that is already running. Prints `value=<n>` (what bench_run
# in ../lib.sh reads) and appends the run's details, as key=value pairs, to
# INFO_FILE.
#
#   handshake.sh PID URL CONNS REQUESTS BODY_BYTES INFO_FILE
#
# h2load (nghttp2-client) on CPU $LOADGEN_CPU (default 1), HTTP/1.1 over TLS
# (--h1: ALPN http/1.1), CONNS clients sending REQUESTS requests in all, each
# with `Connection: close`: the server answers and closes, and h2load opens a
# new connection, with a new TLS handshake, for the next request. So every
# request is one new connection, one full TLS 1.3 handshake (neither server
# issues session tickets: run_tls.sh checks it) and one GET.
#
# value = the CPU time of PID (utime + stime, all threads, /proc/PID/stat)
# per handshake (and its request), in microseconds. INFO_FILE also gets the
# handshakes per second h2load reached and how busy the server's and h2load's
# cores were.
#
# The run fails (exit 1, the reason on stderr) unless all REQUESTS succeeded
# with a 2xx, their bodies add up to REQUESTS * BODY_BYTES, the kernel
# accepted at least REQUESTS new TCP connections meanwhile (Tcp PassiveOpens,
# /proc/net/snmp: one connection per request, not keep-alive) and PID is
# still the process it was.
set -euo pipefail

die()
{
    echo "handshake.sh: $*" >&2
    exit 1
}

[[ $# -eq 6 ]] || die "usage: handshake.sh PID URL CONNS REQUESTS BODY_BYTES INFO_FILE"
pid=$1 url=$2 conns=$3 requests=$4 body=$5 info=$6
hz=$(getconf CLK_TCK)

proc_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# cutime + cstime of this shell: the CPU of its children once reaped (h2load).
children_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

passive_opens()
{
    awk '/^Tcp:/ { if (!n) { for (i = 1; i <= NF; i++) if ($i == "PassiveOpens") c = i; n = 1 }
        else print $c }' /proc/net/snmp
}

[[ -r /proc/$pid/stat ]] || die "the server (pid $pid) is not running"
start_time=$(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat")

o0=$(passive_opens)
s0=$(proc_cpu "$pid")
w0=$(children_cpu)
rc=0
out=$(taskset -c "${LOADGEN_CPU:-1}" h2load --h1 -c "$conns" -n "$requests" \
    -H 'Connection: close' "$url" 2>&1) || rc=$?
s1=$(proc_cpu "$pid" 2>/dev/null) || die "the server (pid $pid) died during the run"
w1=$(children_cpu)
o1=$(passive_opens)
printf '%s\n' "$out" >&2 # shown by bench_run on failure or with BENCH_VERBOSE=1

[[ $rc == 0 ]] || die "h2load exited with status $rc"
[[ $(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat") == "$start_time" ]] ||
    die "the server (pid $pid) was replaced during the run"

# finished in 3.21s, 3115.44 req/s, 0B/s
# requests: N total, N started, N done, N succeeded, 0 failed, 0 errored, 0 timeout
# status codes: N 2xx, 0 3xx, 0 4xx, 0 5xx
# traffic: 0B (0) total, 20.31KB (20800) headers (space savings 0.00%), 2.54KB (2600) data
secs=$(sed -n 's/^finished in \([0-9.]*\)s,.*/\1/p' <<<"$out")
succeeded=$(sed -n 's/^requests: [0-9]* total, .* \([0-9]*\) succeeded, .*/\1/p' <<<"$out")
ok2xx=$(sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p' <<<"$out")
data=$(sed -n 's/^traffic: .*(\([0-9]*\)) data.*/\1/p' <<<"$out")
[[ -n $secs && -n $succeeded && -n $ok2xx && -n $data ]] || die "could not read h2load's report"

problems=()
((succeeded == requests)) || problems+=("$succeeded of $requests requests succeeded")
((ok2xx == requests)) || problems+=("$ok2xx of $requests responses were 2xx")
((data == requests * body)) ||
    problems+=("$data bytes of body for $requests responses, expected $body each")
((o1 - o0 >= requests)) ||
    problems+=("only $((o1 - o0)) new connections for $requests requests: not one each")
if ((${#problems[@]})); then
    printf -v why '%s; ' "${problems[@]}"
    die "${why%; }"
fi

result=$(awk -v n="$requests" -v secs="$secs" -v hz="$hz" -v ds="$((s1 - s0))" \
    -v dw="$((w1 - w0))" -v opens="$((o1 - o0))" 'BEGIN {
    printf "value=%.4f rate=%.1f handshakes=%d secs=%.3f server_cpu=%.0f loadgen_cpu=%.0f" \
        " loadgen_us=%.1f opens=%d\n", ds / hz * 1e6 / n, n / secs, n, secs,
        100 * ds / hz / secs, 100 * dw / hz / secs, dw / hz * 1e6 / n, opens
}')
echo "$result" >>"$info"
echo "${result%% *}"
