#!/usr/bin/env bash
# bench/run_metrics.sh: the metrics suite (`make bench-metrics`; method:
# docs/benchmarking.md).
#
# BENCH lines:
#   metrics.counter              ns per increment of a resolved counter, 2 shards
#                                at once, against a plain add in the same loop
#                                (bench_metrics counter; it prints its own lines,
#                                and metrics.resolve_counter)
#   metrics.middleware_overhead  server CPU µs per /plaintext request of
#                                bench_http_server with the metrics middleware
#                                (METRICS=1) against the same server without it:
#                                ratio = without / with (keep-alive, no pipelining,
#                                256 connections, wrk on CPU 1, bench/http/measure.sh
#                                cpu: utime + stime of the server / requests). Every
#                                run with the middleware is checked against its
#                                /metrics (bench/metrics/counted.sh): the counter and
#                                the histogram grew by the requests wrk completed
#                                (plus at most those in flight at the end)
#   metrics.scrape               ms to render 10,000 series in the text format
#                                0.0.4: weave's wv_metrics_render against Python
#                                prometheus_client's generate_latest of the same
#                                registry (bench/metrics/scrape_prometheus_client.py),
#                                without its _created series (they double its output;
#                                weave writes none): PROMETHEUS_DISABLE_CREATED_SERIES=True
#
#   BUILD_DIR=dir   where bench_metrics and bench_http_server are (default build/release)
#   BENCH_LONG=1    7 rounds, 10 s plaintext runs
#   METRICS_SECONDS=n  seconds per plaintext run (default 5, 10 with BENCH_LONG=1)
#   METRICS_FIGURES="counter middleware scrape"   run only these
#   BENCH_KEEP=1    keep the temp dir (server logs)
#
# Ports 29701 (without the middleware) and 29702 (with it), checked free first.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$here/../build/release}
py=/usr/bin/python3 # Debian's, with prometheus_client
for f in "$build/bench_metrics" "$build/bench_http_server"; do
    if [[ ! -x $f ]]; then
        echo "run_metrics.sh: no $f; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in wrk curl ss taskset; do
    command -v "$tool" >/dev/null || {
        echo "run_metrics.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    }
done
if ! "$py" -c 'import prometheus_client' 2>/dev/null; then
    echo "run_metrics.sh: $py has no prometheus_client (scripts/deps.sh bench installs" \
        "python3-prometheus-client)" >&2
    exit 1
fi
if [[ $(nproc) -lt 2 ]]; then
    echo "run_metrics.sh: needs 2 CPUs" >&2
    exit 1
fi

secs=5
[[ ${BENCH_LONG:-0} == 1 ]] && secs=10
secs=${METRICS_SECONDS:-$secs}
series=10000
conns=256

tmp=$(mktemp -d /tmp/weave-bench-metrics.XXXXXX)
declare -A port=([off]=29701 [on]=29702) pid=()

cleanup()
{
    local p
    for p in "${pid[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    bench_drop_tmp "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r -a wanted <<<"${METRICS_FIGURES:-counter middleware scrape}"
want() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

bench_header metrics "bench_metrics counter: 2 shards on CPUs 0,1 (taskset -c 0,1, shard i on\
 CPU i); scrape renders on CPU 0 (taskset -c 0); bench_http_server (1 shard) on CPU 0, wrk -t1\
 on CPU 1"
echo "# anchors: Python prometheus_client $(dpkg-query -W -f='${Version}' python3-prometheus-client \
    2>/dev/null || echo '?') (Debian python3 $("$py" -c 'import platform; print(platform.python_version())'))," \
    "without its _created series (PROMETHEUS_DISABLE_CREATED_SERIES=True: 0.16 has no" \
    "disable_created_metrics()); wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo '?')"
bench_load_begin

# 1. metrics.counter (and metrics.resolve_counter): bench_metrics prints them.
if want counter && ! taskset -c 0,1 "$build/bench_metrics" counter | grep -v '^value='; then
    bench_fail metrics.counter "bench_metrics counter failed"
fi

# 2. metrics.middleware_overhead
start()
{
    local name=$1
    shift
    if [[ -n $(ss -ltnH "sport = :${port[$name]}") ]]; then
        echo "# port ${port[$name]} is taken by another process" >&2
        return 1
    fi
    taskset -c 0 env PORT="${port[$name]}" WEAVE_SHARDS=1 "$@" "$build/bench_http_server" \
        >"$tmp/$name.log" 2>&1 &
    pid[$name]=$!
    bench_load_own "$!"
}
ready()
{
    local name=$1 i
    for ((i = 0; i < 100; i++)); do
        if [[ $(curl -s --max-time 2 "http://127.0.0.1:${port[$name]}/plaintext" 2>/dev/null) == \
            "Hello, World!" ]] && ss -ltnpH "sport = :${port[$name]}" | grep -q "pid=${pid[$name]},"; then
            return 0
        fi
        sleep 0.1
    done
    echo "# $name: not ready: $(tail -n 3 "$tmp/$name.log")" >&2
    return 1
}
# cpu_line LABEL INFO: the server's and wrk's CPU (% of one core) in each run
cpu_line()
{
    echo "#   $1: server/wrk CPU % of one core, each run:$(sed -n \
        's/.* server_cpu=\([0-9]*\) wrk_cpu=\([0-9]*\).*/ \1\/\2/p' "$2" | tr -d '\n')"
}
middleware()
{
    local size plain=http://127.0.0.1
    if ! { start off && start on METRICS=1 && ready off && ready on &&
        [[ $(curl -s "$plain:${port[on]}/metrics") == *http_requests_total* ]]; }; then
        bench_fail metrics.middleware_overhead "a server did not start (logs: BENCH_KEEP=1)"
        return 0
    fi
    size=$(curl -s -o /dev/null -w '%{size_header} %{size_download}' \
        "$plain:${port[on]}/plaintext" | awk '{ print $1 + $2 }')
    # shellcheck disable=SC2034 # read by bench_figure (names)
    with=("$here/metrics/counted.sh" "$plain:${port[on]}/metrics" /plaintext
        cpu "$conns" "$secs" "${pid[on]}" "$plain:${port[on]}/plaintext" "$size" "$tmp/info.on")
    # shellcheck disable=SC2034
    without=("$here/http/measure.sh" cpu "$conns" "$secs" "${pid[off]}"
        "$plain:${port[off]}/plaintext" "$size" "$tmp/info.off")
    echo "# metrics.middleware_overhead: server CPU (utime + stime) per /plaintext request," \
        "wrk -t1 -c$conns keep-alive without pipelining, ${secs} s per run, every response" \
        "checked (bench/http/measure.sh cpu); the same bench_http_server with METRICS=1 (the" \
        "middleware: a counter and a duration histogram per method, route and status) and" \
        "without; ratio = without / with"
    bench_figure metrics.middleware_overhead us weave_no_middleware lower with without
    cpu_line "with the middleware" "$tmp/info.on"
    cpu_line "without" "$tmp/info.off"
    if [[ -s $tmp/info.on.counted ]]; then
        echo "# metrics.middleware_overhead: the middleware's count against wrk's, each run" \
            "(http_requests_total and http_request_duration_seconds_count both):$(awk '{
                split($1, c, "="); split($2, w, "=")
                printf " %d/%d (+%d in flight)", c[2], w[2], c[2] - w[2] }' "$tmp/info.on.counted")"
    fi
}
want middleware && middleware

# 3. metrics.scrape
if want scrape; then
    # shellcheck disable=SC2034 # read by bench_figure (names)
    weave=(taskset -c 0 "$build/bench_metrics" scrape "$series")
    # shellcheck disable=SC2034
    anchor=(taskset -c 0 env PROMETHEUS_DISABLE_CREATED_SERIES=True "$py"
        "$here/metrics/scrape_prometheus_client.py" "$series")
    echo "# metrics.scrape: $series series of one counter family, text format 0.0.4, the same" \
        "lines on both sides ($((series + 2)): HELP, TYPE and one sample per series; checked):" \
        "prometheus_client's _created series are off (PROMETHEUS_DISABLE_CREATED_SERIES=True)"
    bench_figure metrics.scrape ms prometheus_client lower weave anchor
fi

bench_load_end
bench_finish
