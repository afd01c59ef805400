#!/usr/bin/env bash
# bench/run_httpc.sh: the HTTP client suite (`make bench-httpc`; method:
# docs/benchmarking.md).
#
# One server, bench_http_server (one shard) on CPU 0, answers GET
# /plaintext ("Hello, World!", 13 bytes); every client runs on CPU 1 with
# 64 requests in flight over 64 keep-alive connections, and checks every
# response (a 200 with exactly that body). BENCH lines, responses per
# second, weave's client against:
#   httpc.get          Python httpx's AsyncClient on uvloop, 64 tasks, a pool of
#                      64 connections (bench/httpc/httpx_get.py)
#   httpc.get_aiohttp  aiohttp's ClientSession on uvloop, 64 tasks, a connector
#                      limit of 64 (bench/httpc/aiohttp_get.py)
#   httpc.get_wrk      wrk -t1 -c64 (bench/http/measure.sh rps): the load
#                      generator's own ceiling on one core, the most any client
#                      could do here
# weave is bench_httpc (64 fibers on one shard sharing its client). After
# httpc.get, a '#' line gives the client's and the server's CPU use; after
# httpc.get_wrk, the floor of any client on libcurl: libcurl alone with no
# runtime (bench_httpc floor), as a share of wrk, and weave's share of it.
#
#   BUILD_DIR=dir    where bench_httpc and bench_http_server are (default build/release)
#   BENCH_LONG=1     7 rounds, 10 s runs (default 3 rounds, 5 s)
#   HTTPC_SECONDS=n  seconds per run
#   HTTPC_FIGURES="get aiohttp wrk"   run only these
#   BENCH_KEEP=1     keep the temp dir (server log, run details)
#
# Port 29801, checked free first.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$here/../build/release}
py=/usr/bin/python3 # Debian's, with httpx, aiohttp and uvloop
for f in "$build/bench_httpc" "$build/bench_http_server"; do
    if [[ ! -x $f ]]; then
        echo "run_httpc.sh: no $f; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in wrk curl ss taskset; do
    command -v "$tool" >/dev/null || {
        echo "run_httpc.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    }
done
if [[ $(nproc) -lt 2 ]]; then
    echo "run_httpc.sh: needs 2 CPUs (the server on CPU 0, the clients on CPU 1)" >&2
    exit 1
fi

secs=5
[[ ${BENCH_LONG:-0} == 1 ]] && secs=10
secs=${HTTPC_SECONDS:-$secs}
conns=64
port=29801
url=http://127.0.0.1:$port/plaintext
body="Hello, World!"

tmp=$(mktemp -d /tmp/weave-bench-httpc.XXXXXX)
server=
cleanup()
{
    if [[ -n $server ]]; then
        kill -TERM "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    bench_drop_tmp "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r -a wanted <<<"${HTTPC_FIGURES:-get aiohttp wrk}"
want() { [[ " ${wanted[*]} " == *" $1 "* ]]; }

version()
{
    "$py" -c "import $1; print($1.__version__)" 2>/dev/null || echo missing
}
bench_header httpc "bench_http_server (1 shard) on CPU 0 (taskset -c 0); every client on CPU 1\
 (taskset -c 1), weave's bench_httpc with 1 shard"
echo "# anchors: httpx $(version httpx) and aiohttp $(version aiohttp) on uvloop $(version uvloop)" \
    "(Debian python3 $("$py" -c 'import platform; print(platform.python_version())')), wrk" \
    "$(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo '?'); weave's client on libcurl" \
    "$(curl-config --version 2>/dev/null | sed 's/libcurl //' || echo '?')"
echo "# every run: GET $url, $conns requests in flight on $conns keep-alive connections," \
    "${secs} s after a 0.5 s warm-up (wrk: none), every response checked (200, the 13-byte body)"
bench_load_begin

if [[ -n $(ss -ltnH "sport = :$port") ]]; then
    bench_fail httpc "port $port is taken by another process"
    exit 1
fi
taskset -c 0 env PORT=$port WEAVE_SHARDS=1 "$build/bench_http_server" >"$tmp/server.log" 2>&1 &
server=$!
bench_load_own "$server"
for ((i = 0; i < 100; i++)); do
    if [[ $(curl -s --max-time 2 "$url" 2>/dev/null) == "$body" ]] &&
        ss -ltnpH "sport = :$port" | grep -q "pid=$server,"; then
        break
    fi
    sleep 0.1
done
if ((i == 100)); then
    bench_fail httpc "the server did not start: $(tail -n 3 "$tmp/server.log")"
    exit 1
fi

# shellcheck disable=SC2034 # read by bench_figure (names)
weave=(taskset -c 1 env HTTPC_SERVER_PID="$server" "$build/bench_httpc" "$url" "$secs" "$conns")

# client_line FIGURE: weave's client and the server, CPU % of one core and
# CPU µs per response, from bench_httpc's last runs (bench_run keeps only
# value=, so one more short run prints them)
client_line()
{
    local out
    out=$(taskset -c 1 env HTTPC_SERVER_PID="$server" "$build/bench_httpc" "$url" 2 "$conns" \
        2>/dev/null) || return 0
    echo "# $1: a 2 s run of weave's client: client $(sed -n 's/^client_cpu=//p' <<<"$out")%" \
        "of its core ($(sed -n 's/^client_us=//p' <<<"$out") µs per response), server" \
        "$(sed -n 's/^server_cpu=//p' <<<"$out")% ($(sed -n 's/^server_us=//p' <<<"$out") µs)," \
        "$(sed -n 's/^connections=//p' <<<"$out") connections opened"
}

if want get; then
    if "$py" -c 'import httpx, uvloop' 2>/dev/null; then
        # shellcheck disable=SC2034
        anchor=(taskset -c 1 "$py" "$here/httpc/httpx_get.py" "$url" "$secs" "$conns")
        bench_figure httpc.get req/s httpx higher weave anchor
        client_line httpc.get
    else
        bench_fail httpc.get "Debian's python lacks httpx or uvloop (scripts/deps.sh bench)"
    fi
fi
if want aiohttp; then
    if "$py" -c 'import aiohttp, uvloop' 2>/dev/null; then
        # shellcheck disable=SC2034
        anchor=(taskset -c 1 "$py" "$here/httpc/aiohttp_get.py" "$url" "$secs" "$conns")
        bench_figure httpc.get_aiohttp req/s aiohttp higher weave anchor
    else
        bench_fail httpc.get_aiohttp "Debian's python lacks aiohttp or uvloop (scripts/deps.sh bench)"
    fi
fi
if want wrk; then
    size=$(curl -s -o /dev/null -w '%{size_header} %{size_download}' "$url" |
        awk '{ print $1 + $2 }')
    # shellcheck disable=SC2034
    anchor=(env WRK_CPU=1 "$here/http/measure.sh" rps "$conns" "$secs" "$server" "$url" "$size"
        "$tmp/wrk.info")
    bench_figure httpc.get_wrk req/s wrk higher weave anchor
    weave_rate=$BENCH_A wrk_rate=$BENCH_B
    # the floor: libcurl alone, without the runtime (bench_httpc floor)
    # shellcheck disable=SC2034
    floor=(taskset -c 1 env HTTPC_SERVER_PID="$server" "$build/bench_httpc" floor "$url" "$secs"
        "$conns")
    if bench_ab "$BENCH_ROUNDS" floor; then
        echo "# httpc.get_wrk floor samples (req/s): $(bench_fmt_all "${BENCH_A_SAMPLES[@]}")"
        echo "# httpc.get_wrk floor: libcurl alone (64 easy handles configured once, each added" \
            "back as its transfer ends, curl_multi_perform and curl_multi_poll, no runtime) does" \
            "$(bench_fmt "$BENCH_A") req/s, $(awk -v a="$BENCH_A" -v w="$wrk_rate" \
                'BEGIN { printf "%.2f", a / w }')x wrk: no client on libcurl gets past that here;" \
            "weave's client does $(awk -v a="$weave_rate" -v f="$BENCH_A" \
                'BEGIN { printf "%.0f", 100 * a / f }')% of it"
    else
        bench_fail httpc.get_wrk "the libcurl floor run failed:"
        echo "$BENCH_ERROR"
    fi
fi

bench_load_end
bench_finish
