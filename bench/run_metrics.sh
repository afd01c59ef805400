#!/usr/bin/env bash
# bench/run_metrics.sh: the metrics suite (`make bench-metrics`; method:
# docs/benchmarking.md).
#
# BENCH lines:
#   metrics.counter              ns per increment of a resolved counter, 2 shards
#                                at once, against a plain add in the same loop
#                                (bench_metrics counter; it prints its own lines,
#                                and metrics.resolve_counter)
#   metrics.middleware_overhead  plaintext req/s of bench_http_server with the
#                                metrics middleware (METRICS=1) against the same
#                                server without it: ratio = with / without
#                                (pipelined, 64 connections x 16, wrk on CPU 1,
#                                bench/http/measure.sh)
#   metrics.scrape               ms to render 10,000 series in the text format
#                                0.0.4: weave's wv_metrics_render against Python
#                                prometheus_client's generate_latest of the same
#                                registry (bench/metrics/scrape_prometheus_client.py)
#
#   BUILD_DIR=dir   where bench_metrics and bench_http_server are (default build/release)
#   BENCH_LONG=1    7 rounds, 10 s plaintext runs
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
series=10000

tmp=$(mktemp -d /tmp/weave-bench-metrics.XXXXXX)
declare -A port=([off]=29701 [on]=29702) pid=()

cleanup()
{
    local p
    for p in "${pid[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "# kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_header metrics "bench_metrics counter: 2 shards on CPUs 0,1 (taskset -c 0,1, shard i on\
 CPU i); scrape renders on CPU 0 (taskset -c 0); bench_http_server (1 shard) on CPU 0, wrk -t1\
 on CPU 1"
echo "# anchors: Python prometheus_client $(dpkg-query -W -f='${Version}' python3-prometheus-client \
    2>/dev/null || echo '?') (Debian python3 $("$py" -c 'import platform; print(platform.python_version())'))," \
    "wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo '?')"
bench_load_begin

# 1. metrics.counter (and metrics.resolve_counter): bench_metrics prints them.
if ! taskset -c 0,1 "$build/bench_metrics" counter | grep -v '^value='; then
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
if start off && start on METRICS=1 && ready off && ready on &&
    [[ $(curl -s "http://127.0.0.1:${port[on]}/metrics") == *http_requests_total* ]]; then
    size=$(curl -s -o /dev/null -w '%{size_header} %{size_download}' \
        "http://127.0.0.1:${port[on]}/plaintext" | awk '{ print $1 + $2 }')
    with=("$here/http/measure.sh" pipelined 64 "$secs" "${pid[on]}"
        "http://127.0.0.1:${port[on]}/plaintext" "$size" "$tmp/info.on")
    without=("$here/http/measure.sh" pipelined 64 "$secs" "${pid[off]}"
        "http://127.0.0.1:${port[off]}/plaintext" "$size" "$tmp/info.off")
    bench_figure metrics.middleware_overhead req/s weave_no_middleware higher with without
    counted=$(curl -s "http://127.0.0.1:${port[on]}/metrics" |
        awk '/^http_requests_total\{.*route="\/plaintext".*\} / { n += $2 } END { print n + 0 }')
    echo "# the server with the middleware counted $counted /plaintext requests"
else
    bench_fail metrics.middleware_overhead "a server did not start (logs: BENCH_KEEP=1)"
fi

# 3. metrics.scrape
weave=(taskset -c 0 "$build/bench_metrics" scrape "$series")
anchor=(taskset -c 0 "$py" "$here/metrics/scrape_prometheus_client.py" "$series")
echo "# metrics.scrape: $series series of one counter family, text format 0.0.4 (prometheus_client" \
    "also writes a _created sample per series: its default)"
bench_figure metrics.scrape ms prometheus_client lower weave anchor

bench_load_end
bench_finish
