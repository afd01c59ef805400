#!/usr/bin/env bash
# bench/metrics/counted.sh METRICS_URL ROUTE MEASURE_ARGS...: one run of
# bench/http/measure.sh MEASURE_ARGS... (MODE CONNS SECONDS PID URL BYTES
# INFO_FILE) against a server with weave's metrics middleware, for
# metrics.middleware_overhead (bench/run_metrics.sh), checked against what the
# middleware counted: METRICS_URL (its /metrics) is read before and after the
# run, and for ROUTE both http_requests_total and
# http_request_duration_seconds_count must have grown by the requests wrk
# completed, plus at most the requests still in flight when wrk stopped (one
# per connection without pipelining, 16 with). Passes measure.sh's value=
# through; fails (the reason on stderr) when the counts disagree. Appends
# `counted=<n> completed=<n>` to INFO_FILE.counted.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
metrics=$1 route=$2
shift 2
mode=$1 conns=$2 info=$7

# counts: "<http_requests_total> <http_request_duration_seconds_count>" of ROUTE
counts()
{
    curl -sf --max-time 5 "$metrics" | awk -v r="route=\"$route\"" '
        index($0, r) && /^http_requests_total\{/ { t += $NF }
        index($0, r) && /^http_request_duration_seconds_count\{/ { c += $NF }
        END { printf "%d %d\n", t, c }'
}

c0=$(counts) || {
    echo "counted.sh: cannot read $metrics" >&2
    exit 1
}
out=$("$here/../http/measure.sh" "$@")
c1=$(counts) || {
    echo "counted.sh: cannot read $metrics after the run" >&2
    exit 1
}
read -r t0 h0 <<<"$c0"
read -r t1 h1 <<<"$c1"
completed=$(tail -n 1 "$info" | tr ' ' '\n' | sed -n 's/^requests=//p')
depth=1
[[ $mode != pipelined ]] || depth=16
slack=$((conns * depth))
counted=$((t1 - t0)) histogram=$((h1 - h0))
if [[ -z $completed ]] || ((counted < completed || counted > completed + slack ||
    histogram != counted)); then
    echo "counted.sh: the middleware counted $counted requests (histogram: $histogram) on" \
        "$route, wrk completed ${completed:-?} (at most $slack more were in flight)" >&2
    exit 1
fi
echo "counted=$counted completed=$completed" >>"$info.counted"
printf '%s\n' "$out"
