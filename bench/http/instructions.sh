#!/usr/bin/env bash
# bench/http/instructions.sh: the user-space instructions one server spends
# per keep-alive request, counted by valgrind's callgrind. Unlike a time on
# a shared machine, the count is the same every run (to a fraction of a
# percent), so it shows a change of a few percent that CPU-time rounds
# cannot. It counts user space only: the kernel's part of a request (most
# of it, for every server here) is not in it.
#
#   instructions.sh DIR PORT PATH SECONDS CMD...
#
# Starts CMD under callgrind on CPU 0 (its output files in DIR), waits
# until PATH answers on PORT, warms up for a second, zeroes the counters,
# runs wrk -t1 -c32 on CPU 1 for SECONDS, dumps the counters and stops the
# server with SIGTERM. Prints `value=<instructions per request>` and
# `requests=<n>`. CMD must run in the foreground as one process (weave with
# WEAVE_SHARDS=1; nginx with master_process off), and be the program itself:
# valgrind does not follow an exec, so set its environment outside
# (`env PORT=... instructions.sh ... bench_http_server`).
set -euo pipefail

dir=$1 port=$2 path=$3 secs=$4
shift 4
url=http://127.0.0.1:$port$path

# The port must be free (weave listens with SO_REUSEPORT: a process left on
# it would share the requests and the count would be per its share).
if [[ -n $(ss -ltnH "sport = :$port") ]]; then
    echo "port $port is in use: $(ss -ltnpH "sport = :$port" | head -n 1)" >&2
    exit 1
fi

taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.%p" "$@" \
    >"$dir/valgrind.log" 2>&1 &
pid=$!
stop()
{
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
trap stop EXIT

for ((i = 0; i < 150; i++)); do
    curl -sf -o /dev/null --max-time 2 "$url" && break
    kill -0 "$pid" 2>/dev/null || {
        echo "the server exited under valgrind: $(tail -n 3 "$dir/valgrind.log")" >&2
        exit 1
    }
    sleep 0.2
done
owners=$(ss -ltnpH "sport = :$port" | grep -o 'pid=[0-9]*' | sort -u | tr '\n' ' ')
if [[ $owners != "pid=$pid " ]]; then
    echo "port $port is not (only) the server's: listeners ${owners:-none}" >&2
    exit 1
fi
taskset -c 1 wrk -t1 -c32 -d1 "$url" >/dev/null
callgrind_control --zero "$pid" >/dev/null
n=$(taskset -c 1 wrk -t1 -c32 -d"$secs" "$url" | awk '/requests in/ { print $1 }')
callgrind_control --dump "$pid" >/dev/null
for ((i = 0; i < 50; i++)); do
    [[ -s $dir/callgrind.$pid.1 ]] && break
    sleep 0.1
done
total=$(callgrind_annotate "$dir/callgrind.$pid.1" 2>/dev/null |
    awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }')
if [[ -z $total || -z $n || $n == 0 ]]; then
    echo "no count: requests '${n:-}', instructions '${total:-}'" >&2
    exit 1
fi
echo "value=$((total / n))"
echo "requests=$n"
