#!/usr/bin/env bash
# bench/run_grpc.sh: the gRPC suite (`make bench-grpc`; method: docs/benchmarking.md).
#
# One BENCH line per figure and anchor, in this order:
#   grpc.unary         calls/s of SayHello (bench/grpc/bench.proto: the
#                      chapter's §13.6.2 handler without its 1 s sleep), 64
#                      calls in flight (8 connections x 8 streams): weave
#                      against grpc.aio (Python grpcio, Debian's)
#   grpc.unary_node    the same against @grpc/grpc-js (Node)
#   grpc.unary_cpu     server CPU µs per SayHello call at a fixed rate every
#                      server keeps (GRPC_RATE, default 4,000 calls/s), the
#                      same 64 slots: weave against grpc.aio
#   grpc.unary_cpu_node  the same against grpc-js
#   grpc.stream        messages/s of StreamHello, server streaming (COUNT
#                      messages a call, default 100), 64 calls in flight:
#                      weave against grpc.aio
#   grpc.stream_node   the same against @grpc/grpc-js
#   grpc.stream_cpu    server CPU µs per message at a fixed rate of StreamHello
#                      calls (GRPC_STREAM_RATE, default 100 calls/s, 10,000
#                      messages/s): weave against grpc.aio
#   grpc.stream_cpu_node  the same against grpc-js
# Weave is build/release/bench_grpc_server (WEAVE_SHARDS=1); the anchors
# bench/grpc/aio_server.py (the book's server.py: grpc.aio.server, async
# handlers, asyncio.run; /usr/bin/python3) and bench/grpc/grpcjs_server.js
# (one Node process). Every server runs on CPU 0 (taskset -c 0, all its
# threads), the load client on CPU 1. The load client is the same program
# for every server: build/release/grpc_load (bench/grpc/grpc_load.c, nghttp2
# alone), which checks every call (HTTP 200, application/grpc, grpc-status 0,
# every message byte for byte and their count). grpcio's own client
# (bench/grpc/check.py) checks each server's answers before and after its
# runs. Servers take turns, run after run. Every figure also prints how much
# CPU each server and the client used in each run, and per call (or message).
#
#   BUILD_DIR=dir     where bench_grpc_server and grpc_load are (default: build/release)
#   BENCH_LONG=1      7 rounds and longer runs
#   BENCH_ROUNDS=n    override the number of rounds
#   BENCH_VERBOSE=1   show what every run prints (grpc_load's report)
#   BENCH_KEEP=1      keep the temp dir (generated code, server logs, per-run details)
#   GRPC_FIGURES="unary unary_node unary_cpu unary_cpu_node stream stream_node
#                 stream_cpu stream_cpu_node"
#                     run only these figures ("grpc." in front is allowed)
#   GRPC_SECS=s       the length of a run (default 3, 5 with BENCH_LONG=1)
#   GRPC_COUNT=n      messages a StreamHello call (default 100)
#   GRPC_RATE=n       calls/s of grpc.unary_cpu (default 4000)
#   GRPC_STREAM_RATE=n  StreamHello calls/s of grpc.stream_cpu (default 100)
#   GRPC_CONNS=n, GRPC_STREAMS=n
#                     connections, and calls in flight on each (default 8 x 8)
#
# Ports (fixed, checked free first; readiness checks prove the answering
# process is the one started here): weave 28601, grpc.aio 28602, grpc-js 28603.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$here/../build/release}
bin=$build/bench_grpc_server
export GRPC_LOAD=$build/grpc_load
measure=$here/grpc/measure.sh
gdir=$here/grpc
py=/usr/bin/python3

for f in "$bin" "$GRPC_LOAD"; do
    if [[ ! -x $f ]]; then
        echo "run_grpc.sh: no $f; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in node npm ss taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "run_grpc.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    fi
done
if [[ $(nproc) -lt 2 ]]; then
    echo "run_grpc.sh: needs 2 CPUs (server on CPU 0, the client on CPU 1), this machine has $(nproc)" >&2
    exit 1
fi

export CONNS=${GRPC_CONNS:-8} STREAMS=${GRPC_STREAMS:-8} COUNT=${GRPC_COUNT:-100}
if [[ ${BENCH_LONG:-0} == 1 ]]; then
    secs=${GRPC_SECS:-5}
else
    secs=${GRPC_SECS:-3}
fi
unary_rate=${GRPC_RATE:-4000}
stream_rate=${GRPC_STREAM_RATE:-100}
warm_secs=1 # one untimed run per server and kind before its first timed one
loadgen_limit=90 # the client at or over this % of its core: it was the limit

declare -A port=([weave]=28601 [aio]=28602 [grpcjs]=28603)
declare -A label=([weave]=weave [aio]=grpc.aio [grpcjs]=grpc-js)
declare -A pid=()  # the process started and measured (all its threads)
declare -A down=() # why a server is not available
started=()
why=

tmp=$(mktemp -d /tmp/weave-bench-grpc.XXXXXX)
mkdir -p "$tmp/info" "$tmp/py"

alive()
{
    local state
    state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# Stop every server started here (TERM, then KILL after 5 s) and reap it.
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
    started+=("$name")
    bench_load_own "$!"
}

# grpc_check NAME: grpcio's client calls SayHello and StreamHello (COUNT
# messages) and checks the answers; on failure returns 1 with why in $why.
grpc_check()
{
    local out
    if ! out=$(PYTHONPATH=$tmp/py timeout 20 "$py" "$gdir/check.py" "${port[$1]}" "$COUNT" 2>&1); then
        why=$(tail -n 2 <<<"$out" | tr '\n' ' ')
        return 1
    fi
}

# wait_ready NAME: within 20 s, the process started as NAME (and not some
# other one) listens on its port and answers right (grpc_check).
wait_ready()
{
    local name=$1 p i
    [[ -z ${down[$name]:-} ]] || return 0
    p=${pid[$name]}
    why=
    for ((i = 0; i < 100; i++)); do
        if ! alive "$p"; then
            down[$name]="exited at start: $(tail -n 3 "$tmp/$name.log" | tr '\n' ' ')"
            return 0
        fi
        if ss -ltnpH "sport = :${port[$name]}" | grep -q "pid=$p,"; then
            grpc_check "$name" && return 0
        fi
        sleep 0.2
    done
    down[$name]="not ready after 20 s${why:+: $why}"
}

# warm_up NAME: one untimed run of each kind; a failure makes the server
# unavailable.
warm_up()
{
    local name=$1 kind v
    for kind in unary stream; do
        [[ -z ${down[$name]:-} ]] || return 0
        if ! v=$(bench_run "$measure" "$kind" "$warm_secs" 0 "${pid[$name]}" "${port[$name]}" \
            "$tmp/info/warmup_$kind.$name"); then
            down[$name]="its $kind warm-up run failed:"$'\n'"$v"
        fi
    done
}

declare -A samples=() failed=()

# figure NAME UNIT KIND PER RATE BETTER SERVER...: SERVER... (weave first)
# take turns (measure.sh KIND, at RATE calls/s, 0: as fast as answered),
# BENCH_ROUNDS runs each; then one BENCH line per anchor: NAME for grpc.aio
# (the suite's first anchor), NAME_node for grpc-js. A server that fails a
# run is not run again; its lines fail.
figure()
{
    local name=$1 unit=$2 kind=$3 per=$4 rate=$5 better=$6 s v r i lab line
    shift 6
    local servers=("$@")
    for s in "${servers[@]}"; do
        samples[$name.$s]=
        failed[$name.$s]=${down[$s]:+not available: ${down[$s]}}
    done
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for s in "${servers[@]}"; do
            [[ -z ${failed[$name.$s]} ]] || continue
            if v=$(bench_run "$measure" "$kind" "$secs" "$rate" "${pid[$s]}" "${port[$s]}" \
                "$tmp/info/$name.$s"); then
                samples[$name.$s]+=" $v"
            else
                failed[$name.$s]="a run failed:"$'\n'"$v"
            fi
        done
        [[ -z ${failed[$name.weave]} ]] || break
    done
    line="# $name samples ($unit):"
    for s in "${servers[@]}"; do
        if [[ -n ${failed[$name.$s]} ]]; then
            line+=" ${label[$s]} failed;"
        else
            # shellcheck disable=SC2086 # the samples are words
            line+=" ${label[$s]} $(bench_fmt_all ${samples[$name.$s]});"
        fi
    done
    echo "${line%;}"
    cpu_lines "$name" "$per" "$rate" "${servers[@]}"
    for ((i = 1; i < ${#servers[@]}; i++)); do
        s=${servers[$i]}
        lab=$name
        [[ $s == aio ]] || lab=${name}_node
        if [[ -n ${failed[$name.weave]} ]]; then
            bench_fail "$lab" "weave: ${failed[$name.weave]}"
        elif [[ -n ${failed[$name.$s]} ]]; then
            bench_fail "$lab" "${label[$s]}: ${failed[$name.$s]}"
        else
            # shellcheck disable=SC2086
            bench_line "$lab" "$(bench_median ${samples[$name.weave]})" "$unit" "${label[$s]}" \
                "$(bench_median ${samples[$name.$s]})" "$better"
        fi
    done
}

# join WORDS...: them, separated by ", ".
join()
{
    local IFS=$'\x1f' j
    j="$*"
    echo "${j//$'\x1f'/, }"
}

# cpu_lines NAME PER RATE SERVER...: for every server whose runs of NAME all
# succeeded, the CPU the server (all its threads) and grpc_load used in each
# run, in % of one core and in µs per PER; then, for a run as fast as
# answered (RATE 0), what set the pace, and how each framed its messages.
cpu_lines()
{
    local name=$1 per=$2 rate=$3 s sc wc bound=() idle=()
    shift 3
    for s in "$@"; do
        [[ -z ${failed[$name.$s]} ]] || continue
        echo "# $name ${label[$s]}, per run: server CPU $(info_pcts "$name" "$s" server_cpu) of" \
            "CPU 0 ($(info_runs "$name" "$s" server_us) µs a $per), grpc_load" \
            "$(info_pcts "$name" "$s" loadgen_cpu) of CPU 1 ($(info_runs "$name" "$s" \
                loadgen_us) µs a $per); $(info_values "$name" "$s" calls | tr '\n' ' ')calls" \
            "($(info_runs "$name" "$s" rps) a second);" \
            "$(info_runs "$name" "$s" msgs_per_frame) messages a DATA frame; server RSS" \
            "$(info_runs "$name" "$s" rss_kb) kB"
        ((rate == 0)) || continue
        sc=$(info_median "$name" "$s" server_cpu)
        wc=$(info_median "$name" "$s" loadgen_cpu)
        if awk -v w="$wc" -v l="$loadgen_limit" 'BEGIN { exit !(w >= l) }'; then
            bound+=("${label[$s]} (grpc_load $(printf '%.0f' "$wc")%, server $(printf '%.0f' "$sc")%)")
        elif awk -v s="$sc" 'BEGIN { exit !(s < 80) }'; then
            idle+=("${label[$s]} (server $(printf '%.0f' "$sc")%, grpc_load $(printf '%.0f' "$wc")%)")
        fi
    done
    if ((${#bound[@]})); then
        echo "# $name: the load client, not the server, was the limit (grpc_load >=" \
            "$loadgen_limit% of its core, medians) for $(join "${bound[@]}"): a lower bound for that server"
    fi
    if [[ $per == message && $rate == 0 ]]; then
        line="# $name framing (messages a DATA frame, medians):"
        for s in "$@"; do
            [[ -z ${failed[$name.$s]} ]] || continue
            line+=" ${label[$s]} $(info_median "$name" "$s" msgs_per_frame);"
        done
        echo "${line%;}; weave's handler sends its messages without waiting, so they leave" \
            "together (several in one DATA frame, one write) where the anchors frame each on its" \
            "own: the figure includes that (docs/benchmarking.md, \"The gRPC suite\")"
    fi
    if ((${#idle[@]})); then
        echo "# $name: the server used under 80% of its core for $(join "${idle[@]}") (medians): the round trip" \
            "with $((CONNS * STREAMS)) calls in flight set the pace (wake-ups, the machine's other load)"
    fi
}

# target NAME FIGURE ANCHOR GOAL: whether the BENCH line NAME, printed above,
# met the issue's ratio target (a '#' line; the suite does not fail on it).
target()
{
    local name=$1 f=$2 s=$3 goal=$4 r
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

# fig FIGURE KIND UNIT PER RATE BETTER AIO_GOAL NODE_GOAL: grpc.FIGURE and
# grpc.FIGURE_node, those wanted (a goal: the target's ratio, "" for none).
fig()
{
    local f=$1 kind=$2 unit=$3 per=$4 rate=$5 better=$6 aio_goal=$7 node_goal=$8 a=()
    [[ " ${wanted[*]} " != *" $f "* ]] || a+=(aio)
    [[ " ${wanted[*]} " != *" ${f}_node "* ]] || a+=(grpcjs)
    ((${#a[@]})) || return 0
    figure "grpc.$f" "$unit" "$kind" "$per" "$rate" "$better" weave "${a[@]}"
    [[ " ${a[*]} " != *" aio "* || -z $aio_goal ]] || target "grpc.$f" "grpc.$f" aio "$aio_goal"
    [[ " ${a[*]} " != *" grpcjs "* || -z $node_goal ]] ||
        target "grpc.${f}_node" "grpc.$f" grpcjs "$node_goal"
}

figures=(unary unary_node unary_cpu unary_cpu_node stream stream_node stream_cpu stream_cpu_node)
wanted=()
for f in ${GRPC_FIGURES:-${figures[*]}}; do
    f=${f#grpc.}
    [[ " ${figures[*]} " == *" $f "* ]] || {
        echo "run_grpc.sh: GRPC_FIGURES: no figure '$f' (figures: ${figures[*]})" >&2
        exit 2
    }
    wanted+=("$f")
done

# ---------------------------------------------------------------------------

need=" weave"
for f in "${wanted[@]}"; do
    case $f in
    *_node) need+=" grpcjs" ;;
    *) need+=" aio" ;;
    esac
done

# grpcio's Python code for bench.proto (the anchor and check.py), made here
# from the same .proto weave's build compiles.
if ! "$py" -c 'import grpc, grpc_tools' 2>/dev/null; then
    down[aio]="Debian's python3 lacks grpcio or grpc_tools (scripts/deps.sh bench)"
    echo "run_grpc.sh: $py lacks grpcio or grpc_tools, which check every server" \
        "(scripts/deps.sh bench)" >&2
    exit 1
fi
if ! out=$("$py" -m grpc_tools.protoc -I"$gdir" --python_out="$tmp/py" \
    --grpc_python_out="$tmp/py" "$gdir/bench.proto" 2>&1); then
    echo "run_grpc.sh: grpc_tools.protoc failed: $out" >&2
    exit 1
fi

# @grpc/grpc-js and @grpc/proto-loader, exactly as package-lock.json pins them.
if [[ $need == *" grpcjs"* && ! -f $gdir/node_modules/@grpc/grpc-js/package.json ]]; then
    echo "# installing bench/grpc/node_modules (npm ci)"
    if ! (cd "$gdir" && npm ci --no-audit --no-fund --silent) >"$tmp/npm.log" 2>&1; then
        echo "# npm ci failed: $(tail -n 3 "$tmp/npm.log" | tr '\n' ' ')"
        down[grpcjs]="bench/grpc/node_modules could not be installed"
    fi
fi

versions="grpc.aio: Python grpcio $("$py" -c 'import grpc; print(grpc.__version__)')"
versions+=" (Debian python3 $("$py" -c 'import platform; print(platform.python_version())'))"
versions+=", grpc-js: Node $(node -v) @grpc/grpc-js $(node -p \
    'require(process.argv[1]).version' "$gdir/node_modules/@grpc/grpc-js/package.json" \
    2>/dev/null || echo missing) @grpc/proto-loader $(node -p \
    'require(process.argv[1]).version' "$gdir/node_modules/@grpc/proto-loader/package.json" \
    2>/dev/null || echo missing)"
versions+=", grpc_load on libnghttp2 $(pkg-config --modversion libnghttp2 2>/dev/null || echo '?')"

bench_header grpc "servers on CPU 0 (taskset -c 0, every thread: weave WEAVE_SHARDS=1, grpc.aio one\
 Python process, grpc-js one Node process), grpc_load (one thread) on CPU 1 (taskset -c 1)"
echo "# anchors: $versions"
echo "# load: grpc_load, the same client for every server: h2c with prior knowledge on 127.0.0.1," \
    "$CONNS connections x $STREAMS calls in flight ($((CONNS * STREAMS)) calls in flight), a" \
    "call ending starts the next, for $secs s a run, then the calls in flight end; unary:" \
    "SayHello {name: \"bench\"} -> \"Hello, bench!\"; stream: StreamHello {name: \"bench\"," \
    "count: $COUNT} -> $COUNT messages \"Hello, bench! <i>\"; the _cpu figures start calls at a" \
    "fixed rate instead ($unary_rate SayHello, $stream_rate StreamHello calls/s; a run under" \
    "95% of it fails) and take the server's CPU (every thread's, /proc/PID/task/*/schedstat)" \
    "per call or message; every call checked (HTTP 200," \
    "application/grpc, grpc-status 0, every message byte for byte and their count); one" \
    "untimed ${warm_secs} s run of each kind per server first; grpcio's client checks each server" \
    "before and after${GRPC_FIGURES:+; only: ${wanted[*]}}"
echo "# settings: weave bench_grpc_server with wv_http_serve's defaults (h2_max_streams 100);" \
    "grpc.aio: bench/grpc/aio_server.py, the book's server.py (grpc.aio.server with" \
    "ThreadPoolExecutor(max_workers=10), asyncio.run, async handlers, StreamHello an async" \
    "generator), grpcio's defaults, its C-core threads on CPU 0 with the rest; grpc-js:" \
    "bench/grpc/grpcjs_server.js, grpc.Server defaults, proto-loader, call.write per message"
bench_load_begin

start_server weave env PORT="${port[weave]}" WEAVE_SHARDS=1 "$bin"
if [[ $need == *" aio"* && -z ${down[aio]:-} ]]; then
    start_server aio env GRPC_PORT="${port[aio]}" PYTHONPATH="$tmp/py" "$py" "$gdir/aio_server.py"
fi
if [[ $need == *" grpcjs"* && -z ${down[grpcjs]:-} ]]; then
    start_server grpcjs env GRPC_PORT="${port[grpcjs]}" node "$gdir/grpcjs_server.js"
fi
for s in weave aio grpcjs; do
    [[ $need == *" $s"* ]] || continue
    wait_ready "$s"
    warm_up "$s"
    if [[ -n ${down[$s]:-} ]]; then
        echo "# ${label[$s]}: not available: ${down[$s]}"
    else
        echo "# ${label[$s]}: answers checked with grpcio's client (SayHello, StreamHello of" \
            "$COUNT); threads: $(awk '$1 == "Threads:" { print $2 }' "/proc/${pid[$s]}/status"), all allowed CPU" \
            "$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "/proc/${pid[$s]}/status");" \
            "warm-up $(info_runs warmup_unary "$s" value) calls/s," \
            "$(info_runs warmup_stream "$s" value) msgs/s"
    fi
done
if [[ -n ${down[weave]:-} ]]; then
    bench_fail grpc "weave's bench_grpc_server is not available"
    exit 1
fi

fig unary unary calls/s call 0 higher 10 3
fig unary_cpu unary us call "$unary_rate" lower "" ""
fig stream stream msgs/s message 0 higher 10 ""
fig stream_cpu stream us message "$stream_rate" lower "" ""

# After the runs: every server measured still answers right.
for s in weave aio grpcjs; do
    [[ -n ${pid[$s]:-} && -z ${down[$s]:-} ]] || continue
    if grpc_check "$s"; then
        echo "# ${label[$s]}: answers checked again with grpcio's client after its runs: right"
    else
        bench_verdict_fail "grpc (${label[$s]})" "grpcio's client after the runs: $why"
    fi
done

stop_servers
bench_load_end
bench_finish
