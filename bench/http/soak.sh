#!/usr/bin/env bash
# bench/http/soak.sh: the mixed load of http.soak (bench/run_http.sh, only with
# BENCH_LONG=1) against a weave bench_http_server that is already running.
#
#   soak.sh PID PORT SECONDS INFO_FILE
#
# For SECONDS, all at once, every client on CPU $WRK_CPU (default 1):
#   - wrk -c64, keep-alive, GET /plaintext (no pipelining)
#   - wrk -c64, GET /json, 16 requests pipelined per connection
#   - wrk -c16, keep-alive, POST /echo with a 4096-byte body
#   - soak_clients.py: 8 WebSockets on /ws echoing 100 messages/s each (and
#     reconnecting every 1000), and 5 bad requests a second (malformed heads,
#     oversized headers and targets, bad or too large Content-Length, ...)
# Every wrk response is checked as in measure.sh: no non-2xx, no socket error
# or timeout, the bytes read add up to whole responses of the size one
# request gets (curl, before the load). The server's VmRSS is sampled every
# 5 s; the "first-minute" sample is the one at 60 s (at SECONDS / 2 when the
# run is shorter than 2 minutes), the end sample the last one before the load
# stops. Prints `value=<end RSS / first-minute RSS>` and writes to INFO_FILE
# one line of key=value pairs (rss_1min_kb, rss_end_kb, rss_idle_kb,
# rss_min_kb, rss_max_kb, rss_at_s, hwm_kb, errors, the counts of every
# client, server_cpu and load_cpu in % of one core, and `series=` the RSS
# samples in MB); the errors, if any, on stderr. Exits 1 only when the run
# could not be measured (the server died, a client did not report): errors
# are counted, and judged by the driver.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=/usr/bin/python3

die()
{
    echo "soak.sh: $*" >&2
    exit 1
}

[[ $# == 4 ]] || die "usage: soak.sh PID PORT SECONDS INFO_FILE"
pid=$1 port=$2 secs=$3 info=$4
url=http://127.0.0.1:$port
cpu=${WRK_CPU:-1}
work=$(mktemp -d /tmp/weave-soak.XXXXXX)
jobs_pids=()
cleanup()
{
    local p
    for p in "${jobs_pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        pkill -TERM -P "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

[[ -r /proc/$pid/stat ]] || die "the server (pid $pid) is not running"
start_time=$(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat")
same_server()
{
    [[ -r /proc/$pid/stat && $(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat") == "$start_time" ]]
}
rss_kb()
{
    awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"
}
proc_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}
children_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

# The size of one whole response of each route, as the wrk runs will get it.
head -c 4096 /dev/zero | tr '\0' x >"$work/post.body"
declare -A size
size[plaintext]=$(curl -s -o /dev/null -w '%{size_header} %{size_download}' "$url/plaintext" |
    awk '{ print $1 + $2 }')
size[json]=$(curl -s -o /dev/null -w '%{size_header} %{size_download}' "$url/json" |
    awk '{ print $1 + $2 }')
size[echo]=$(curl -s -o "$work/echo.out" -w '%{size_header} %{size_download}' \
    -H 'Content-Type: application/octet-stream' --data-binary "@$work/post.body" "$url/echo" |
    awk '{ print $1 + $2 }')
cmp -s "$work/echo.out" "$work/post.body" || die "POST /echo did not echo the body"
for k in plaintext json echo; do
    ((${size[$k]:-0} > 0)) || die "GET/POST /$k did not answer"
done

hz=$(getconf CLK_TCK)
s0=$(proc_cpu "$pid")
l0=$(children_cpu)
t0=$(date +%s.%N)

# name conns depth post path
wrk_job()
{
    taskset -c "$cpu" wrk -t1 -c"$2" -d"${secs}s" --timeout 5s -s "$here/wrk.lua" "$url$5" -- \
        "depth=$3" "post=$4" >"$work/$1.out" 2>&1
}
wrk_job plaintext 64 1 0 /plaintext &
jobs_pids+=($!)
wrk_job json 64 16 0 /json &
jobs_pids+=($!)
wrk_job echo 16 1 4096 /echo &
jobs_pids+=($!)
taskset -c "$cpu" "$py" "$here/soak_clients.py" 127.0.0.1 "$port" "$secs" \
    >"$work/clients.out" 2>"$work/clients.err" &
jobs_pids+=($!)

# RSS every 5 s while the load runs.
first_at=60
((secs >= 120)) || first_at=$((secs / 2))
series=() rss_1min='' rss_end=''
for ((t = 5; t < secs; t += 5)); do
    sleep 5
    same_server || die "the server (pid $pid) died during the soak, ${t} s in"
    r=$(rss_kb)
    series+=("$r")
    ((t < first_at)) || [[ -n $rss_1min ]] || rss_1min=$r
    rss_end=$r
done
for p in "${jobs_pids[@]}"; do
    wait "$p" || true
done
jobs_pids=()
t1=$(date +%s.%N)
same_server || die "the server (pid $pid) died during the soak"
s1=$(proc_cpu "$pid")
l1=$(children_cpu)
sleep 2
rss_idle=$(rss_kb)
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
[[ -n $rss_1min && -n $rss_end ]] || die "the soak is too short to sample the RSS (SECONDS >= 10)"

# The wrk runs: every error counted.
errors=0 detail=()
for k in plaintext json echo; do
    line=$(grep '^wrkdone ' "$work/$k.out" | tail -n 1) || {
        cat "$work/$k.out" >&2
        die "wrk /$k gave no summary"
    }
    declare -A r=()
    for kv in ${line#wrkdone }; do
        r[${kv%%=*}]=${kv#*=}
    done
    depth=1
    [[ $k == json ]] && depth=16
    conns=64
    [[ $k == echo ]] && conns=16
    e=$((r[connect] + r[read] + r[write] + r[timeout] + r[status]))
    if ((r[bytes] < r[requests] * size[$k] ||
        r[bytes] > (r[requests] + conns * depth + e) * size[$k])); then
        echo "soak.sh: /$k: read ${r[bytes]} bytes for ${r[requests]} responses of ${size[$k]} bytes" >&2
        e=$((e + 1))
    fi
    ((e == 0)) || echo "soak.sh: /$k: $line" >&2
    errors=$((errors + e))
    detail+=("${k}_requests=${r[requests]}" "${k}_errors=$e")
done
cline=$(grep '^soakclients ' "$work/clients.out" | tail -n 1) || {
    cat "$work/clients.err" >&2
    die "soak_clients.py gave no summary"
}
cat "$work/clients.err" >&2
declare -A c=()
for kv in ${cline#soakclients }; do
    c[${kv%%=*}]=${kv#*=}
done
errors=$((errors + c[ws_errors] + c[bad_errors]))

rss_min=$(printf '%s\n' "${series[@]}" | sort -n | head -n 1)
rss_max=$(printf '%s\n' "${series[@]}" | sort -n | tail -n 1)
mb=()
for r in "${series[@]}"; do mb+=("$(awk -v k="$r" 'BEGIN { printf "%.1f", k / 1024 }')"); done
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
{
    printf 'rss_1min_kb=%s rss_end_kb=%s rss_idle_kb=%s rss_min_kb=%s rss_max_kb=%s rss_at_s=%s' \
        "$rss_1min" "$rss_end" "$rss_idle" "$rss_min" "$rss_max" "$first_at"
    printf ' hwm_kb=%s errors=%s %s' "$hwm" "$errors" "${detail[*]}"
    printf ' ws_msgs=%s ws_connects=%s ws_errors=%s bad=%s bad_expected=%s bad_errors=%s' \
        "${c[ws_msgs]}" "${c[ws_connects]}" "${c[ws_errors]}" "${c[bad]}" "${c[bad_expected]}" \
        "${c[bad_errors]}"
    printf ' bad_statuses=%s' "${c[bad_statuses]}"
    awk -v ds="$((s1 - s0))" -v dl="$((l1 - l0))" -v hz="$hz" -v w="$wall" 'BEGIN {
        printf " server_cpu=%.0f load_cpu=%.0f secs=%.0f", 100 * ds / hz / w, 100 * dl / hz / w, w }'
    series_mb=$(
        IFS=,
        echo "${mb[*]}"
    )
    printf ' series=%s\n' "$series_mb"
} >>"$info"
awk -v a="$rss_end" -v b="$rss_1min" 'BEGIN { printf "value=%.4f\n", a / b }'
