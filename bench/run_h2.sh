#!/usr/bin/env bash
# bench/run_h2.sh: the HTTP/2 suite (`make bench-h2`; method: docs/benchmarking.md).
#
# One BENCH line per figure and anchor, in this order:
#   h2.plaintext         req/s, h2load -c64 -m10 (64 connections, 10 streams in
#                        flight on each), h2c with prior knowledge, GET
#                        /plaintext ("Hello, World!"): weave against h2o
#   h2.plaintext_nginx   the same against nginx (listen ... http2)
#   h2.plaintext_cpu     server CPU µs per request, the same 64 x 10 shape at a
#                        fixed rate every server keeps (H2_RATE, default 25,600
#                        req/s): weave against h2o
#   h2.plaintext_cpu_nginx  the same against nginx
# Weave is build/release/bench_http_server (every route over h2c with prior
# knowledge on its one port, docs/h2.md); the anchors Debian's h2o 2.2.5 (1
# thread; h2c with prior knowledge on a cleartext port) and nginx 1.22 (1
# worker, `listen ... http2`). Every server runs on CPU 0 (taskset -c 0;
# weave with WEAVE_SHARDS=1), h2load -t1 on CPU 1; weave and the anchors take
# turns, run after run (bench/README.md, "The h2 suite"). Every figure also
# prints how much CPU each server and h2load used in each run's timed window.
#
#   BUILD_DIR=dir     where bench_http_server is (default: build/release)
#   BENCH_LONG=1      7 rounds and longer runs
#   BENCH_ROUNDS=n    override the number of rounds
#   BENCH_VERBOSE=1   show what every run prints (h2load's own report)
#   BENCH_KEEP=1      keep the temp dir (configs, server logs, per-run details)
#   H2_FIGURES="plaintext plaintext_nginx plaintext_cpu plaintext_cpu_nginx"
#                     run only these figures ("h2." in front is allowed)
#   H2_N=n            requests per h2.plaintext run (default 300000, 1000000
#                     with BENCH_LONG=1)
#   H2_RATE=n         the fixed rate of h2.plaintext_cpu, req/s in all (a
#                     multiple of 64; default 25600)
#   H2_CPU_SECS=s     the length of an h2.plaintext_cpu run (default 4, 8 with
#                     BENCH_LONG=1)
#
# Ports (fixed, checked free first; readiness checks prove the answering
# process is the one started here): weave 28501, nginx 28502, h2o 28503.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

bin=${BUILD_DIR:-$here/../build/release}/bench_http_server
measure=$here/h2/measure.sh

if [[ ! -x $bin ]]; then
    echo "run_h2.sh: no $bin; build first (make build, or set BUILD_DIR)" >&2
    exit 1
fi
for tool in h2load curl ss taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "run_h2.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    fi
done
if [[ $(nproc) -lt 2 ]]; then
    echo "run_h2.sh: needs 2 CPUs (server on CPU 0, h2load on CPU 1), this machine has $(nproc)" >&2
    exit 1
fi

conns=64
streams=10
if [[ ${BENCH_LONG:-0} == 1 ]]; then
    n_rps=${H2_N:-1000000} cpu_secs=${H2_CPU_SECS:-8}
else
    n_rps=${H2_N:-300000} cpu_secs=${H2_CPU_SECS:-4}
fi
rate=${H2_RATE:-25600}
if ((rate <= 0 || rate % conns != 0)); then
    echo "run_h2.sh: H2_RATE must be a positive multiple of $conns (h2load's --rps is per connection)" >&2
    exit 2
fi
per_conn=$((rate / conns))
n_cpu=$((rate * cpu_secs))
n_warm=20000 # one untimed run per server before its first timed one
loadgen_limit=90 # h2load at or over this % of its core: the load generator was the limit

declare -A port=([weave]=28501 [nginx]=28502 [h2o]=28503)
declare -A pid=()      # the process started (nginx: its master)
declare -A measured=() # the process whose CPU and memory are read (nginx: its worker)
declare -A down=()     # why a server is not available
declare -A headers=()  # the response header names a server sends
started=()
why=

body='Hello, World!'

tmp=$(mktemp -d /tmp/weave-bench-h2.XXXXXX)
chmod 755 "$tmp" # nginx's worker and h2o run as nobody and read files here
mkdir -p "$tmp/info" "$tmp/nginx-tmp" "$tmp/h2o"
printf '%s' "$body" >"$tmp/expected"

# alive PID: the process runs (an exited child stays a zombie until reaped).
alive()
{
    local state
    state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# Stop every server started here (TERM, then KILL after 5 s) and reap it, so
# that its CPU time counts as ours in bench_load_end.
stop_servers()
{
    local name p i
    for name in "${started[@]}"; do
        p=${pid[$name]}
        kill -TERM "$p" 2>/dev/null || continue
        for ((i = 0; i < 50; i++)); do
            alive "$p" || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    started=()
}

cleanup()
{
    stop_servers
    bench_drop_tmp "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server NAME CMD...: start CMD on CPU 0 in the background, on port
# ${port[NAME]}, unless someone else already listens there.
start_server()
{
    local name=$1
    shift
    if [[ -n $(ss -ltnH "sport = :${port[$name]}") ]]; then
        down[$name]="port ${port[$name]} is already taken by another process"
        return 0
    fi
    taskset -c 0 "$@" >"$tmp/$name.log" 2>&1 &
    pid[$name]=$!
    measured[$name]=$!
    started+=("$name")
    bench_load_own "$!"
}

# h2_check NAME: GET /plaintext over h2c with prior knowledge (curl): HTTP/2,
# a 200 with exactly the 13-byte body, Content-Type text/plain, Server and
# Date headers. Records the header names the server sent in headers[NAME];
# on failure returns 1 with the reason in $why.
h2_check()
{
    local name=$1 out code version
    why=
    if ! out=$(curl -sS --http2-prior-knowledge --max-time 5 -D "$tmp/$name.h" \
        -o "$tmp/$name.b" -w '%{http_code} %{http_version}' \
        "http://127.0.0.1:${port[$name]}/plaintext" 2>&1); then
        why="GET /plaintext over h2c failed: $out"
    else
        read -r code version <<<"$out"
        if [[ $version != 2 ]]; then
            why="GET /plaintext was answered over HTTP/$version, not HTTP/2"
        elif [[ $code != 200 ]]; then
            why="GET /plaintext answered $code, not 200"
        elif ! cmp -s "$tmp/$name.b" "$tmp/expected"; then
            why="GET /plaintext answered another body: $(head -c 80 "$tmp/$name.b")"
        elif ! grep -qi '^server: ' "$tmp/$name.h" || ! grep -qi '^date: ' "$tmp/$name.h"; then
            why="GET /plaintext: no Server or Date header"
        elif ! grep -qi '^content-type: text/plain' "$tmp/$name.h"; then
            why="GET /plaintext: Content-Type is not text/plain"
        fi
    fi
    [[ -z $why ]] || return 1
    headers[$name]=$(sed -n 's/^\([A-Za-z0-9-]*\):.*/\L\1/p' "$tmp/$name.h" | tr '\n' ' ' |
        sed 's/ $//')
}

# wait_ready NAME: within 15 s, the process started as NAME (and not some
# other one) listens on its port and answers /plaintext right over h2c.
wait_ready()
{
    local name=$1 p i
    [[ -z ${down[$name]:-} ]] || return 0
    p=${pid[$name]}
    why=
    for ((i = 0; i < 150; i++)); do
        if ! alive "$p"; then
            down[$name]="exited at start: $(tail -n 3 "$tmp/$name.log" | tr '\n' ' ')"
            return 0
        fi
        # ss -p lists every process holding the listening socket (nginx:
        # master and worker), so this proves the port is ours.
        if ss -ltnpH "sport = :${port[$name]}" | grep -q "pid=$p,"; then
            h2_check "$name" && return 0
        fi
        sleep 0.1
    done
    down[$name]="not ready after 15 s${why:+: $why}"
}

# render TEMPLATE PORT OUT: bench/h2/TEMPLATE.in with its @...@ filled in.
render()
{
    sed -e "s|@DIR@|$tmp|g" -e "s|@PORT@|$2|g" "$here/h2/$1.in" >"$3"
}

# warm_up NAME: one untimed run (pools, caches, the server's first
# connections), checked like the others; a failure makes the server
# unavailable.
warm_up()
{
    local name=$1 v
    [[ -z ${down[$name]:-} ]] || return 0
    if ! v=$(bench_run "$measure" rps "$conns" "$streams" "$n_warm" 0 "${measured[$name]}" \
        "http://127.0.0.1:${port[$name]}/plaintext" "${#body}" "$tmp/info/warmup.$name"); then
        down[$name]="its warm-up run failed:"$'\n'"$v"
    fi
}

declare -A samples=() failed=()

# figure NAME UNIT BETTER MODE REQUESTS RPS SERVER...: SERVER... (weave first)
# take turns, BENCH_ROUNDS runs each; then one BENCH line per anchor: NAME for
# h2o (the suite's first anchor, even when it is not run), NAME_<anchor> for
# the others. A server that fails a run is not
# run again; its lines fail.
figure()
{
    local name=$1 unit=$2 better=$3 mode=$4 n=$5 rps=$6 s v r i lab line
    shift 6
    local servers=("$@")
    for s in "${servers[@]}"; do
        samples[$name.$s]=
        failed[$name.$s]=${down[$s]:+not available: ${down[$s]}}
    done
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for s in "${servers[@]}"; do
            [[ -z ${failed[$name.$s]} ]] || continue
            if v=$(bench_run "$measure" "$mode" "$conns" "$streams" "$n" "$rps" \
                "${measured[$s]}" "http://127.0.0.1:${port[$s]}/plaintext" "${#body}" \
                "$tmp/info/$name.$s"); then
                samples[$name.$s]+=" $v"
            else
                failed[$name.$s]="a run failed:"$'\n'"$v"
            fi
        done
        # Without weave's figure the anchors' runs are of no use.
        [[ -z ${failed[$name.weave]} ]] || break
    done
    line="# $name samples ($unit):"
    for s in "${servers[@]}"; do
        if [[ -n ${failed[$name.$s]} ]]; then
            line+=" $s failed;"
        else
            # shellcheck disable=SC2086 # the samples are words
            line+=" $s $(bench_fmt_all ${samples[$name.$s]});"
        fi
    done
    echo "${line%;}"
    cpu_lines "$name" "${servers[@]}"
    for ((i = 1; i < ${#servers[@]}; i++)); do
        s=${servers[$i]}
        lab=$name
        [[ $s == h2o ]] || lab=${name}_$s
        if [[ -n ${failed[$name.weave]} ]]; then
            bench_fail "$lab" "weave: ${failed[$name.weave]}"
        elif [[ -n ${failed[$name.$s]} ]]; then
            bench_fail "$lab" "$s: ${failed[$name.$s]}"
        else
            # shellcheck disable=SC2086
            bench_line "$lab" "$(bench_median ${samples[$name.weave]})" "$unit" "$s" \
                "$(bench_median ${samples[$name.$s]})" "$better"
        fi
    done
}

# cpu_lines NAME SERVER...: for every server whose runs of NAME all
# succeeded, the CPU the server (all its threads; nginx: its worker) and
# h2load used in each run's timed window (h2load's start to its end), in % of
# one core and in µs per request, and the rate reached; then which of the
# two was the limit.
cpu_lines()
{
    local name=$1 s sc wc bound=()
    shift
    for s in "$@"; do
        [[ -z ${failed[$name.$s]} ]] || continue
        echo "# $name $s, per run: server CPU $(info_pcts "$name" "$s" server_cpu) of CPU 0" \
            "($(info_runs "$name" "$s" server_us) µs a request), h2load $(info_pcts "$name" "$s" \
                loadgen_cpu) of CPU 1 ($(info_runs "$name" "$s" loadgen_us) µs a request);" \
            "$(info_runs "$name" "$s" rps) req/s; h2load's mean time per request" \
            "$(info_runs "$name" "$s" mean_us) µs"
        sc=$(info_median "$name" "$s" server_cpu)
        wc=$(info_median "$name" "$s" loadgen_cpu)
        if awk -v w="$wc" -v l="$loadgen_limit" 'BEGIN { exit !(w >= l) }'; then
            bound+=("$s (h2load $wc%, server $sc%)")
        fi
    done
    if ((${#bound[@]})); then
        echo "# $name: the load generator, not the server, was the limit (h2load >=" \
            "$loadgen_limit% of its core, medians) for ${bound[*]}: a lower bound for that server"
    fi
}

# target NAME GOAL ANCHOR: whether the BENCH line of NAME, printed above, met its
# ratio target (a '#' line; the suite does not fail on it).
target()
{
    local name=$1 goal=$2 s=$3 f=${1%_nginx} r
    [[ -z ${failed[$f.weave]-x}${failed[$f.$s]-x} ]] || return 0
    # shellcheck disable=SC2086
    r=$(bench_ratio "$(bench_median ${samples[$f.weave]})" "$(bench_median ${samples[$f.$s]})" \
        higher)
    if awk -v r="$r" -v g="$goal" 'BEGIN { exit !(r >= g) }'; then
        echo "# $name target: ratio >= $goal: met ($(bench_fmt "$r"))"
    else
        echo "# $name target: ratio >= $goal: NOT met ($(bench_fmt "$r"))"
    fi
}

# anchors_of FIGURE: the anchors wanted for FIGURE (h2o for the plain name,
# nginx for _nginx), in the suite's order.
anchors_of()
{
    local a=()
    [[ " ${wanted[*]} " != *" $1 "* ]] || a+=(h2o)
    [[ " ${wanted[*]} " != *" ${1}_nginx "* ]] || a+=(nginx)
    echo "${a[*]}"
}

# 1. Throughput: as many requests as h2load gets answered, 64 connections
# with 10 streams in flight each.
fig_plaintext()
{
    local a
    read -r -a a <<<"$(anchors_of plaintext)"
    ((${#a[@]})) || return 0
    figure h2.plaintext req/s higher rps "$n_rps" 0 weave "${a[@]}"
    [[ " ${a[*]} " != *" h2o "* ]] || target h2.plaintext 1.0 h2o
    [[ " ${a[*]} " != *" nginx "* ]] || target h2.plaintext_nginx 3 nginx
}

# 2. Server CPU per request at a fixed rate every server keeps: like for like
# whatever the load generator's ceiling, and with the same batching
# opportunity on every side (at saturation a server that falls behind reads
# more requests per wake-up).
fig_plaintext_cpu()
{
    local a
    read -r -a a <<<"$(anchors_of plaintext_cpu)"
    ((${#a[@]})) || return 0
    figure h2.plaintext_cpu us lower cpu "$n_cpu" "$per_conn" weave "${a[@]}"
}

figures=(plaintext plaintext_nginx plaintext_cpu plaintext_cpu_nginx)
wanted=()
for f in ${H2_FIGURES:-${figures[*]}}; do
    f=${f#h2.}
    [[ " ${figures[*]} " == *" $f "* ]] || {
        echo "run_h2.sh: H2_FIGURES: no figure '$f' (figures: ${figures[*]})" >&2
        exit 2
    }
    wanted+=("$f")
done

# ---------------------------------------------------------------------------

versions="h2o $(h2o -v 2>/dev/null | sed -n 's/^h2o version //p' | grep . || echo missing)"
versions+=", nginx $(nginx -v 2>&1 | sed -n 's|.*nginx/||p' | grep . || echo missing)"
versions+=", h2load $(h2load --version 2>/dev/null | sed -n 's|.*nghttp2/||p' | grep . || echo '?')"

bench_header h2 "servers on CPU 0 (taskset -c 0: weave WEAVE_SHARDS=1, h2o 1 thread, nginx 1\
 worker), h2load -t1 on CPU 1 (taskset -c 1)"
echo "# anchors: $versions"
echo "# protocol: h2c with prior knowledge (cleartext; h2load's default for an http:// URI)," \
    "checked on every run (h2load's 'Application protocol: h2c') and at start (curl" \
    "--http2-prior-knowledge). h2o 2.2.5 serves it on a cleartext listener, as nginx does, so" \
    "the figures need no TLS; h2 over TLS (ALPN) is not measured: bench_http_server's TLS" \
    "context offers ALPN http/1.1 only"
echo "# load: h2load -t1 -c$conns -m$streams (64 connections, 10 streams in flight on each)," \
    "GET /plaintext; h2.plaintext: $n_rps requests a run, as fast as answered;" \
    "h2.plaintext_cpu: $n_cpu requests a run at a fixed $rate req/s (--rps $per_conn per" \
    "connection, ${cpu_secs} s); one untimed run of $n_warm requests per server first;" \
    "-N 5s (a connection silent for 5 s fails the run)${H2_FIGURES:+; only: ${wanted[*]}}"
echo "# settings: weave bench_http_server with wv_http_serve's defaults (h2_max_streams 100," \
    "idle timeout 60 s); h2o: num-threads 1, its HTTP/2 defaults, /plaintext from a 13-byte" \
    "file; nginx: worker_processes 1, listen ... http2, access_log off, keepalive_requests" \
    "100000000, its HTTP/2 defaults (bench/h2/*.conf.in)"
bench_load_begin

need=" weave"
for f in "${wanted[@]}"; do
    case $f in
    *_nginx) need+=" nginx" ;;
    *) need+=" h2o" ;;
    esac
done

start_server weave env PORT="${port[weave]}" WEAVE_SHARDS=1 "$bin"
if [[ $need == *" h2o"* ]]; then
    if command -v h2o >/dev/null; then
        printf '%s' "$body" >"$tmp/h2o/plaintext.txt"
        chmod 644 "$tmp/h2o/plaintext.txt"
        chmod 755 "$tmp/h2o"
        render h2o.conf "${port[h2o]}" "$tmp/h2o.conf"
        start_server h2o h2o -c "$tmp/h2o.conf"
    else
        down[h2o]="h2o is not installed (scripts/deps.sh bench)"
    fi
fi
if [[ $need == *" nginx"* ]]; then
    if command -v nginx >/dev/null; then
        render nginx.conf "${port[nginx]}" "$tmp/nginx.conf"
        start_server nginx nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log"
    else
        down[nginx]="nginx is not installed (scripts/deps.sh bench)"
    fi
fi
for s in weave h2o nginx; do
    [[ $need == *" $s"* ]] || continue
    wait_ready "$s"
    if [[ $s == nginx && -z ${down[nginx]:-} ]]; then
        # CPU and memory are the worker's (worker_processes 1: the master's only child).
        read -r "measured[nginx]" _ <"/proc/${pid[nginx]}/task/${pid[nginx]}/children" || true
        [[ -n ${measured[nginx]} ]] || down[nginx]="no worker process"
    fi
    warm_up "$s"
    if [[ -n ${down[$s]:-} ]]; then
        echo "# $s: not available: ${down[$s]}"
    else
        echo "# $s: GET /plaintext over h2c checked (HTTP/2 200, the 13-byte body, text/plain," \
            "Server: $(sed -n 's/^[Ss]erver: //p' "$tmp/$s.h" | tr -d '\r'), Date); response" \
            "headers: ${headers[$s]}; warm-up $(info_runs warmup "$s" rps) req/s"
    fi
done
if [[ -n ${down[weave]:-} ]]; then
    bench_fail h2 "weave's bench_http_server is not available"
    exit 1
fi
rss_start=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/${pid[weave]}/status")

fig_plaintext
fig_plaintext_cpu

# What weave's server went through: its memory and what it logged.
if alive "${pid[weave]}"; then
    echo "# weave memory: VmRSS $((rss_start / 1024)) MB after the warm-up, $(($(awk \
        '$1 == "VmRSS:" { print $2 }' "/proc/${pid[weave]}/status") / 1024)) MB at the end, peak" \
        "(VmHWM) $(($(awk '$1 == "VmHWM:" { print $2 }' "/proc/${pid[weave]}/status") / 1024))" \
        "MB; it logged $(grep -c -E ' (WARN|ERROR) ' "$tmp/weave.log" || true) WARN/ERROR lines"
else
    bench_fail h2 "weave's bench_http_server is no longer running"
fi

stop_servers
bench_load_end
bench_finish
