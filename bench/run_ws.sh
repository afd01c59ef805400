#!/usr/bin/env bash
# bench/run_ws.sh: the WebSocket suite (`make bench-ws`; method: docs/benchmarking.md).
#
# BENCH lines: ws.echo (anchor Python websockets) and ws.echo_ws (Node ws),
# ws.broadcast (Node ws) and ws.broadcast_floor (the floor below),
# ws.conn_rss (Node ws). The weave server is
# examples/chapter13 (SHARDS=1: /ws/echo, /ws/chat); the anchors are
# bench/ws/websockets_server.py (Debian's python3 + websockets, asyncio, 1
# process, compression off) and bench/ws/ws_server.js (Node `ws` pinned by
# bench/ws/package-lock.json, installed into bench/ws/node_modules when
# missing; 1 process, permessage-deflate off). Every server runs on CPU 0
# (taskset -c 0), the load client bench_ws (weave's wv_ws client, 1 shard)
# on CPU 1; weave and the anchors take turns, run after run.
#
#   ws.echo       messages/s: 64 connections x 16 messages of 64 bytes in
#                 flight, replies counted for 5 s (10 s long), each checked
#   ws.broadcast  ms: N subscribers in the room, one publisher sends a text,
#                 time until the last subscriber has it (median of 5
#                 publishes per run; a fresh server per run). Measured too:
#                 the floor, bench_ws_floor, a bare epoll loop with one
#                 send() per subscriber and no framework; a comment line
#                 says how far ahead of Node any such server can be.
#   ws.conn_rss   bytes: server VmRSS with 5,000 idle connections (each had
#                 one message echoed) minus before, / 5,000 (fresh server per run)
#
#   BUILD_DIR=dir     where bench_ws and chapter13 are (default: build/release)
#   BENCH_LONG=1      7 rounds, 10 s echo runs
#   BENCH_ROUNDS=n    override the number of rounds
#   WS_SUBSCRIBERS=n  ws.broadcast's subscribers (default 10,000)
#   WS_FIGURES="echo broadcast conn_rss"   run only these
#   BENCH_KEEP=1      keep the temp dir (server logs)
#
# Ports (checked free first; readiness proves the listener is the process
# started here): echo: weave 29501, websockets 29502, ws 29503; broadcast:
# weave 29511, floor 29512, ws 29513; conn_rss: weave 29521, ws 29523.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$here/../build/release}
client=$build/bench_ws
weave_bin=$build/chapter13
py=/usr/bin/python3 # Debian's, with websockets
wsdir=$here/ws

for f in "$client" "$weave_bin" "$build/bench_ws_floor"; do
    if [[ ! -x $f ]]; then
        echo "run_ws.sh: no $f; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in node npm ss taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "run_ws.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    fi
done
if [[ $(nproc) -lt 2 ]]; then
    echo "run_ws.sh: needs 2 CPUs (servers on CPU 0, the client on CPU 1)" >&2
    exit 1
fi

if [[ ${BENCH_LONG:-0} == 1 ]]; then
    echo_secs=10 subs=${WS_SUBSCRIBERS:-10000}
else
    echo_secs=5 subs=${WS_SUBSCRIBERS:-10000}
fi
echo_conns=64 echo_inflight=16 publishes=5 idle_conns=5000

# One descriptor per connection, in the servers and the client alike.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

declare -A port=([weave]=29501 [websockets]=29502 [ws]=29503
    [weave_bc]=29511 [floor_bc]=29512 [ws_bc]=29513 [weave_rss]=29521 [ws_rss]=29523)
declare -A pid=() down=()
started=()
extra_pids=() # idle clients running in the background

tmp=$(mktemp -d /tmp/weave-bench-ws.XXXXXX)
mkdir -p "$tmp/web"
echo '<!doctype html><title>bench</title>' >"$tmp/web/index.html"

alive()
{
    local state
    state=$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# stop_pid PID: TERM, KILL after 3 s, reap.
stop_pid()
{
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
    for ((i = 0; i < 30; i++)); do
        alive "$p" || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

stop_server()
{
    local name=$1 s keep=()
    [[ -n ${pid[$name]:-} ]] && stop_pid "${pid[$name]}"
    for s in "${started[@]}"; do [[ $s == "$name" ]] || keep+=("$s"); done
    started=("${keep[@]}")
}

cleanup()
{
    local p s
    for p in "${extra_pids[@]}"; do stop_pid "$p"; done
    for s in "${started[@]}"; do stop_pid "${pid[$s]}"; done
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "# kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# server_cmd NAME: the command line of server NAME (weave*, websockets, ws*).
server_cmd()
{
    local p=${port[$1]}
    case $1 in
        weave*) echo env SHARDS=1 WEAVE_SHARDS=1 CHAT_QUEUE=100000 CHAT_EVENTS=0 \
            MAX_CONNECTIONS=100000 "$weave_bin" --port "$p" --web-dir "$tmp/web" ;;
        websockets) echo "$py" "$wsdir/websockets_server.py" "$p" ;;
        ws*) echo node "$wsdir/ws_server.js" "$p" ;;
        floor*) echo "$build/bench_ws_floor" "$p" ;;
    esac
}

# echo_url NAME / room_url NAME
echo_url()
{
    case $1 in
        weave*) echo "ws://127.0.0.1:${port[$1]}/ws/echo" ;;
        websockets) echo "ws://127.0.0.1:${port[$1]}/" ;;
        ws*) echo "ws://127.0.0.1:${port[$1]}/echo" ;;
    esac
}

room_url()
{
    case $1 in
        weave*) echo "ws://127.0.0.1:${port[$1]}/ws/chat" ;;
        ws* | floor*) echo "ws://127.0.0.1:${port[$1]}/chat" ;;
    esac
}

# start_server NAME: start it on CPU 0 and wait (15 s at most) until it
# listens on its port (ss: the listener is this process) and echoes a
# message (the floor has no echo: listening is enough); otherwise down[NAME]
# says why and it returns 1.
start_server()
{
    local name=$1 p i
    local -a cmd
    read -r -a cmd <<<"$(server_cmd "$name")"
    down[$name]=
    if [[ -n $(ss -ltnH "sport = :${port[$name]}") ]]; then
        down[$name]="port ${port[$name]} is already taken by another process"
        return 1
    fi
    taskset -c 0 "${cmd[@]}" >"$tmp/$name.log" 2>&1 &
    p=$!
    pid[$name]=$p
    started+=("$name")
    for ((i = 0; i < 150; i++)); do
        if ! alive "$p"; then
            down[$name]="exited at start: $(tail -n 3 "$tmp/$name.log" | tr '\n' ' ')"
            return 1
        fi
        if ss -ltnpH "sport = :${port[$name]}" | grep -q "pid=$p," &&
            { [[ $name == floor* ]] ||
                "$client" check "$(echo_url "$name")" >/dev/null 2>>"$tmp/$name.check"; }; then
            return 0
        fi
        sleep 0.1
    done
    down[$name]="not ready after 15 s: $(tail -n 2 "$tmp/$name.check" 2>/dev/null | tr '\n' ' ')"
    return 1
}

rss_kb()
{
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Each measure_<figure> SERVER runs once: the value in $value, or returns 1
# with the reason ('#' lines) in $error.
value=
error=

# ticks PID: CPU time (user + system) of PID so far, in clock ticks.
ticks()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

declare -A echo_cpu=() # SERVER -> "server% client%" of each run

measure_echo()
{
    local s=$1 t0 t1 k0 k1 c0 c1
    t0=$(date +%s.%N)
    k0=$(ticks "${pid[$s]}")
    bench_cpu_snapshot c0
    if ! value=$(bench_run taskset -c 1 "$client" echo "$(echo_url "$s")" "$echo_conns" \
        "$echo_inflight" "$echo_secs"); then
        error=$value
        return 1
    fi
    bench_cpu_snapshot c1
    k1=$(ticks "${pid[$s]}")
    t1=$(date +%s.%N)
    echo_cpu[$s]+=$(awk -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
        -v k="$((k1 - k0))" -v hz="$(getconf CLK_TCK)" -v c0="$c0" -v c1="$c1" 'BEGIN {
        split(c0, a, " "); split(c1, b, " ")
        printf " %.0f/%.0f", 100 * k / hz / t, 100 * (b[3] - a[3]) / t }')
}

measure_broadcast()
{
    # shellcheck disable=SC2034 # read by bench_run
    local s=${1}_bc BENCH_TIMEOUT=$((120 + subs / 50))
    if ! start_server "$s"; then
        error="#   ${down[$s]}"
        stop_server "$s"
        return 1
    fi
    if ! value=$(bench_run taskset -c 1 "$client" broadcast "$(room_url "$s")" "$subs" \
        "$publishes"); then
        error=$value
        stop_server "$s"
        return 1
    fi
    stop_server "$s"
}

measure_conn_rss()
{
    local s=${1}_rss r0 r1 c i out=$tmp/idle.out
    if ! start_server "$s"; then
        error="#   ${down[$s]}"
        stop_server "$s"
        return 1
    fi
    sleep 0.5
    r0=$(rss_kb "${pid[$s]}")
    : >"$out"
    taskset -c 1 "$client" idle "$(echo_url "$s")" "$idle_conns" >"$out" 2>"$tmp/idle.err" &
    c=$!
    extra_pids+=("$c")
    for ((i = 0; i < 600; i++)); do
        grep -q '^ready' "$out" && break
        alive "$c" || break
        sleep 0.1
    done
    if ! grep -q '^ready' "$out"; then
        error="#   the idle client did not get its $idle_conns connections; its stderr:"$'\n'
        error+=$(tail -n 5 "$tmp/idle.err" | sed 's/^/#     /')
        stop_pid "$c"
        extra_pids=()
        stop_server "$s"
        return 1
    fi
    sleep 1 # let the server settle
    r1=$(rss_kb "${pid[$s]}")
    stop_pid "$c"
    extra_pids=()
    stop_server "$s"
    value=$(awk -v a="$r0" -v b="$r1" -v n="$idle_conns" 'BEGIN { printf "%.1f\n", (b - a) * 1024 / n }')
    echo "#   ws.conn_rss ${1}: VmRSS $((r0 / 1024)) MB before, $((r1 / 1024)) MB with" \
        "$idle_conns idle connections"
}

# figure NAME UNIT BETTER SERVER...: measure_<NAME minus ws.> for weave and
# each anchor in turn, BENCH_ROUNDS times; then one BENCH line per anchor (the
# first under NAME, the others under NAME_<anchor>). Each server's median is
# left in fig_median[SERVER].
declare -A fig_median=()
figure()
{
    local name=$1 unit=$2 better=$3 fn=measure_${1#ws.}
    shift 3
    local servers=("$@") s r i line label
    local -A samples=() failed=()
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for s in "${servers[@]}"; do
            [[ -z ${failed[$s]:-} ]] || continue
            if [[ -n ${down[$s]:-} ]]; then
                failed[$s]="not available: ${down[$s]}"
            elif "$fn" "$s"; then
                samples[$s]+=" $value"
            else
                failed[$s]="a run failed:"$'\n'"$error"
            fi
        done
        [[ -z ${failed[weave]:-} ]] || break
    done
    line="# $name samples ($unit):"
    fig_median=()
    for s in "${servers[@]}"; do
        if [[ -n ${failed[$s]:-} ]]; then
            line+=" $s failed;"
        else
            # shellcheck disable=SC2086 # the samples are words
            line+=" $s $(bench_fmt_all ${samples[$s]});"
            # shellcheck disable=SC2086
            fig_median[$s]=$(bench_median ${samples[$s]})
        fi
    done
    echo "${line%;}"
    for ((i = 1; i < ${#servers[@]}; i++)); do
        s=${servers[$i]}
        label=$name
        ((i == 1)) || label=${name}_$s
        if [[ -n ${failed[weave]:-} ]]; then
            bench_fail "$label" "weave: ${failed[weave]}"
        elif [[ -n ${failed[$s]:-} ]]; then
            bench_fail "$label" "$s: ${failed[$s]}"
        else
            # shellcheck disable=SC2086
            bench_line "$label" "$(bench_median ${samples[weave]})" "$unit" "$s" \
                "$(bench_median ${samples[$s]})" "$better"
        fi
    done
}

groups=(echo broadcast conn_rss)
wanted=()
for g in ${WS_FIGURES:-${groups[*]}}; do
    [[ " ${groups[*]} " == *" $g "* ]] || {
        echo "run_ws.sh: WS_FIGURES: no group '$g' (groups: ${groups[*]})" >&2
        exit 2
    }
    wanted+=("$g")
done

# ---------------------------------------------------------------------------

# Node's ws, exactly as package-lock.json pins it.
if [[ ! -f $wsdir/node_modules/ws/package.json ]]; then
    echo "# installing bench/ws/node_modules (npm ci)"
    if ! (cd "$wsdir" && npm ci --no-audit --no-fund --silent) >"$tmp/npm.log" 2>&1; then
        echo "# npm ci failed: $(tail -n 3 "$tmp/npm.log" | tr '\n' ' ')"
        down[ws]="bench/ws/node_modules could not be installed"
    fi
fi
[[ -z ${down[ws]:-} ]] || down[ws_bc]=${down[ws]} down[ws_rss]=${down[ws]}
if ! $py -c 'import websockets' 2>/dev/null; then
    down[websockets]="Debian's python3 lacks websockets (scripts/deps.sh bench)"
fi

versions="Python websockets $($py -c 'import websockets; print(websockets.__version__)' 2>/dev/null || echo missing)"
versions+=" (Debian python3 $($py -c 'import platform; print(platform.python_version())'))"
versions+=", Node $(node -v) ws $(node -p 'require(process.argv[1]).version' \
    "$wsdir/node_modules/ws/package.json" 2>/dev/null || echo missing)"

bench_header ws "servers on CPU 0 (taskset -c 0: weave chapter13 SHARDS=1, websockets 1\
 asyncio process, Node ws 1 process), the client bench_ws (weave's wv_ws client, 1 shard,\
 TCP_NODELAY) on CPU 1 (taskset -c 1)"
echo "# anchors: $versions"
echo "# ws.echo: $echo_conns connections x $echo_inflight messages of 64 bytes (text) in" \
    "flight, ${echo_secs} s per run after 0.5 s of warm-up, every reply checked"
echo "# ws.broadcast: $subs subscribers (WS_SUBSCRIBERS=n to change), median of" \
    "$publishes publishes per run, every relay checked, a fresh server per run (weave" \
    "CHAT_QUEUE=100000 CHAT_EVENTS=0 MAX_CONNECTIONS=100000: no join announcements, like" \
    "the ws anchor's room, and no cap below Node's)"
echo "# ws.conn_rss: server VmRSS with $idle_conns idle connections minus before, per" \
    "connection; a fresh server per run"
bench_load_begin

for g in "${wanted[@]}"; do
    case $g in
        echo)
            for s in weave websockets ws; do
                [[ -n ${down[$s]:-} ]] || start_server "$s" || true
                [[ -z ${down[$s]:-} ]] || echo "# $s: not available: ${down[$s]}"
            done
            figure ws.echo msgs/s higher weave websockets ws
            echo "# ws.echo CPU busy, server/client (% of one core, each run, over the whole" \
                "run with connecting and warm-up):$(for s in weave websockets ws; do
                    [[ -z ${echo_cpu[$s]:-} ]] || printf ' %s%s;' "$s" "${echo_cpu[$s]}"
                done | sed 's/;$//')"
            for s in weave websockets ws; do stop_server "$s"; done
            ;;
        broadcast)
            figure ws.broadcast ms lower weave ws floor
            # the floor against Node: the most a server that sends to each
            # socket in turn can be ahead of it
            if [[ -n ${fig_median[ws]:-} && -n ${fig_median[floor]:-} ]]; then
                echo "# ws.broadcast floor: a bare epoll loop with one send() per subscriber" \
                    "takes ${fig_median[floor]} ms, Node ws ${fig_median[ws]} ms: no server that" \
                    "sends to each socket gets past $(awk -v a="${fig_median[ws]}" \
                        -v b="${fig_median[floor]}" 'BEGIN { printf "%.2f", a / b }')x Node here"
            fi
            ;;
        conn_rss)
            figure ws.conn_rss bytes lower weave ws
            ;;
    esac
done

bench_load_end
bench_finish
