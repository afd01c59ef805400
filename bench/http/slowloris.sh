#!/usr/bin/env bash
# bench/http/slowloris.sh: one run of http.slowloris (bench/run_http.sh): the
# normal clients' req/s, with or without 5,000 trickling ones.
#
#   slowloris.sh WITH TRICKLE_CONNS LEAD CONNS SECONDS PID PORT PATH RESPONSE_BYTES INFO_FILE
#
# WITH=0: measure.sh rps (wrk -t1 -cCONNS, keep-alive, no pipelining, every
# response checked) against 127.0.0.1:PORT PATH for SECONDS, nothing else.
# WITH=1: first trickle.py opens TRICKLE_CONNS connections that each send one
# byte of a never-ending request head a second (reopened when the server
# closes them); once all are open, LEAD seconds later, the same wrk run; then
# the trickler stops and its summary line ("trickle ...") is appended to
# INFO_FILE.trickle with its CPU share (trickle_cpu, % of one core). The
# trickler runs on CPU $WRK_CPU (default 1), beside wrk. Prints measure.sh's
# `value=` (req/s); measure.sh's details go to INFO_FILE.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3

die()
{
    echo "slowloris.sh: $*" >&2
    exit 1
}

[[ $# == 10 ]] || die "usage: slowloris.sh WITH TRICKLE_CONNS LEAD CONNS SECONDS PID PORT PATH RESPONSE_BYTES INFO_FILE"
with=$1 tconns=$2 lead=$3 conns=$4 secs=$5 pid=$6 port=$7 path=$8 size=$9 info=${10}

if [[ $with == 0 ]]; then
    exec "$here/measure.sh" rps "$conns" "$secs" "$pid" "http://127.0.0.1:$port$path" "$size" "$info"
fi

out=$(mktemp)
tpid=
cleanup()
{
    if [[ -n $tpid ]]; then
        kill -TERM "$tpid" 2>/dev/null || true
        wait "$tpid" 2>/dev/null || true
    fi
    rm -f "$out"
}
trap cleanup EXIT

taskset -c "${WRK_CPU:-1}" "$py" "$here/trickle.py" 127.0.0.1 "$port" "$tconns" >"$out" &
tpid=$!
for ((i = 0; i < 900; i++)); do
    grep -q '^ready$' "$out" && break
    kill -0 "$tpid" 2>/dev/null || die "trickle.py exited before its connections were open"
    sleep 0.1
done
grep -q '^ready$' "$out" || die "trickle.py did not open its $tconns connections within 90 s"
sleep "$lead"
rc=0
value=$("$here/measure.sh" rps "$conns" "$secs" "$pid" "http://127.0.0.1:$port$path" "$size" "$info") ||
    rc=$?
kill -TERM "$tpid"
wait "$tpid" || die "trickle.py failed at the end"
tpid=
line=$(grep '^trickle ' "$out") || die "no summary from trickle.py"
[[ $rc == 0 ]] || exit "$rc"
# The trickler's CPU share over its window (ready .. stop).
awk -v l="$line" 'BEGIN {
    n = split(l, kv, " ")
    for (i = 2; i <= n; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    cpu = v["secs"] > 0 ? 100 * v["cpu_s"] / v["secs"] : 0
    printf "%s trickle_cpu=%.0f\n", l, cpu
}' >>"$info.trickle"
# Let the server see the trickling connections close before the next run.
sleep 1
echo "$value"
