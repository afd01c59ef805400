#!/usr/bin/env bash
# bench/run_ws.sh: the WebSocket suite (`make bench-ws`; method: docs/benchmarking.md).
#
# BENCH lines: ws.echo and ws.echo_1 (anchor Python websockets) and
# ws.echo_ws, ws.echo_1_ws (Node ws), ws.broadcast (Node ws) and
# ws.broadcast_floor (the floor below), ws.conn_rss, ws.conn_rss_listen and
# ws.conn_rss_listen_pyclient (Node ws). The weave server is
# examples/chapter13 (SHARDS=1: /ws/echo, /ws/chat); the anchors, at their best
# settings, are bench/ws/websockets_server.py (Debian's python3 + websockets,
# on uvloop, 1 process, compression off) and bench/ws/ws_server.js (Node `ws`
# pinned by bench/ws/package-lock.json, installed into bench/ws/node_modules
# when missing; 1 process, permessage-deflate off, a broadcast encoded once
# into one Buffer sent to every member). Every server runs on CPU 0
# (taskset -c 0), the load client bench_ws (weave's wv_ws client, 1 shard) on
# CPU 1; weave and the anchors take turns, run after run.
#
#   ws.echo       messages/s: 64 connections x 16 messages of 64 bytes in
#                 flight, replies counted for 5 s (10 s long), each checked
#   ws.echo_1     the same with ONE message in flight per connection: each
#                 connection waits for its reply before it sends the next
#                 (request/response, latency-bound)
#                 (both: a '#' line with the server's and the client's CPU)
#   ws.broadcast  ms: N subscribers in the room, one publisher sends a text,
#                 time until the last subscriber has it (median of 5
#                 publishes per run; a fresh server per run). Measured too:
#                 the floor, bench_ws_floor, a bare epoll loop with one
#                 send() per subscriber and no framework; a comment line
#                 says how far ahead of Node any such server can be.
#   ws.conn_rss   bytes: server VmRSS with 5,000 idle connections (each had
#                 one message echoed) minus before, / 5,000 (fresh server per run)
#   ws.conn_rss_listen  bytes: the same with 3,000 connections to the echo
#                 route that never send anything after the handshake (a
#                 subscriber that only listens), opened by bench_ws listen
#   ws.conn_rss_listen_pyclient  the same 3,000 listeners opened by Python
#                 websockets (bench/ws/listen_client.py: websockets.connect
#                 with its defaults, which offer permessage-deflate and ping
#                 every 20 s); then a '#' line on what such a connection costs
#
#   BUILD_DIR=dir     where bench_ws and chapter13 are (default: build/release)
#   BENCH_LONG=1      7 rounds, 10 s echo runs
#   BENCH_ROUNDS=n    override the number of rounds
#   WS_SECONDS=n      seconds per echo run (default 5, 10 with BENCH_LONG=1)
#   WS_SUBSCRIBERS=n  ws.broadcast's subscribers (default 10,000)
#   WS_FIGURES="echo echo_1 broadcast conn_rss conn_rss_listen"   run only these
#   BENCH_KEEP=1      keep the temp dir (server logs)
#
# Ports (checked free first; readiness proves the listener is the process
# started here): echo: weave 29501, websockets 29502, ws 29503; broadcast:
# weave 29511, floor 29512, ws 29513; conn_rss: weave 29521, ws 29523;
# conn_rss_listen: weave 29531, ws 29533.

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
echo_secs=${WS_SECONDS:-$echo_secs}
echo_conns=64 echo_inflight=16 publishes=5 idle_conns=5000 listen_conns=3000

# One descriptor per connection, in the servers and the client alike.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

declare -A port=([weave]=29501 [websockets]=29502 [ws]=29503
    [weave_bc]=29511 [floor_bc]=29512 [ws_bc]=29513 [weave_rss]=29521 [ws_rss]=29523
    [weave_lis]=29531 [ws_lis]=29533)
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
    bench_drop_tmp "$tmp"
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
    bench_load_own "$p"
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

declare -A echo_cpu=() # "FIGURE SERVER" -> " server%/client%" of each run

# echo_run SERVER INFLIGHT FIGURE: one echo run, its CPU noted in echo_cpu
echo_run()
{
    local s=$1 t0 t1 k0 k1 c0 c1
    t0=$(date +%s.%N)
    k0=$(ticks "${pid[$s]}")
    bench_cpu_snapshot c0
    if ! value=$(bench_run taskset -c 1 "$client" echo "$(echo_url "$s")" "$echo_conns" \
        "$2" "$echo_secs"); then
        error=$value
        return 1
    fi
    bench_cpu_snapshot c1
    k1=$(ticks "${pid[$s]}")
    t1=$(date +%s.%N)
    echo_cpu["$3 $s"]+=$(awk -v t="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
        -v k="$((k1 - k0))" -v hz="$(getconf CLK_TCK)" -v c0="$c0" -v c1="$c1" 'BEGIN {
        split(c0, a, " "); split(c1, b, " ")
        printf " %.0f/%.0f", 100 * k / hz / t, 100 * (b[3] - a[3]) / t }')
}

measure_echo() { echo_run "$1" "$echo_inflight" ws.echo; }
measure_echo_1() { echo_run "$1" 1 ws.echo_1; }

# echo_cpu_line FIGURE: the '#' line with the CPU of each run of FIGURE
echo_cpu_line()
{
    local s out=
    for s in weave websockets ws; do
        [[ -z ${echo_cpu["$1 $s"]:-} ]] || out+=" $s${echo_cpu["$1 $s"]};"
    done
    echo "# $1 CPU busy, server/client (% of one core, each run, over the whole run with" \
        "connecting and warm-up):${out%;}"
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

# rss_run SERVER N CLIENT...: start SERVER afresh, read its VmRSS, open N
# connections to its echo route with `CLIENT... URL N` on CPU 1 (it prints
# "ready N" once they are all open, then idles until SIGTERM), read VmRSS
# again a second later: value = the growth per connection, in bytes.
declare -A rss_note=() # SERVER -> what the client said about the handshakes
rss_run()
{
    local s=$1 n=$2 r0 r1 c i out=$tmp/idle.out
    shift 2
    if ! start_server "$s"; then
        error="#   ${down[$s]}"
        stop_server "$s"
        return 1
    fi
    sleep 0.5
    r0=$(rss_kb "${pid[$s]}")
    : >"$out"
    taskset -c 1 "$@" "$(echo_url "$s")" "$n" >"$out" 2>"$tmp/idle.err" &
    c=$!
    extra_pids+=("$c")
    for ((i = 0; i < 600; i++)); do
        grep -q '^ready' "$out" && break
        alive "$c" || break
        sleep 0.1
    done
    if ! grep -q '^ready' "$out"; then
        error="#   the idle client did not get its $n connections; its stderr:"$'\n'
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
    value=$(awk -v a="$r0" -v b="$r1" -v n="$n" 'BEGIN { printf "%.1f\n", (b - a) * 1024 / n }')
    rss_note[$s]=$(sed -n 's/.*extensions agreed: //p' "$tmp/idle.err" | tail -n 1)
    echo "#   ${s%_*}: VmRSS $((r0 / 1024)) MB before, $((r1 / 1024)) MB with $n idle" \
        "connections${rss_note[$s]:+ (handshakes: Sec-WebSocket-Extensions ${rss_note[$s]})}"
}

measure_conn_rss() { rss_run "${1}_rss" "$idle_conns" "$client" idle; }
measure_conn_rss_listen() { rss_run "${1}_lis" "$listen_conns" "$client" listen; }
measure_conn_rss_listen_pyclient()
{
    rss_run "${1}_lis" "$listen_conns" "$py" "$wsdir/listen_client.py"
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

groups=(echo echo_1 broadcast conn_rss conn_rss_listen)
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
[[ -z ${down[ws]:-} ]] || down[ws_bc]=${down[ws]} down[ws_rss]=${down[ws]} down[ws_lis]=${down[ws]}
if ! $py -c 'import websockets, uvloop' 2>/dev/null; then
    down[websockets]="Debian's python3 lacks websockets or uvloop (scripts/deps.sh bench)"
fi

versions="Python websockets $($py -c 'import websockets; print(websockets.__version__)' 2>/dev/null || echo missing)"
versions+=" on uvloop $($py -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo missing)"
versions+=" (Debian python3 $($py -c 'import platform; print(platform.python_version())'))"
versions+=", Node $(node -v) ws $(node -p 'require(process.argv[1]).version' \
    "$wsdir/node_modules/ws/package.json" 2>/dev/null || echo missing)"

bench_header ws "servers on CPU 0 (taskset -c 0: weave chapter13 SHARDS=1, websockets 1\
 process on uvloop, Node ws 1 process), the client bench_ws (weave's wv_ws client, 1 shard,\
 TCP_NODELAY) on CPU 1 (taskset -c 1)"
echo "# anchors: $versions"
echo "# anchor settings: websockets.serve(compression=None) on uvloop (uvloop.install());" \
    "Node ws: WebSocketServer({perMessageDeflate: false}), /echo sends back the Buffer it got," \
    "/chat encodes each relay once (JSON.stringify, then Buffer.from) and sends that one" \
    "Buffer to every member with {binary: false}: no UTF-8 encoding per subscriber." \
    "weave chapter13: its echo route accepts permessage-deflate when a client offers it (bench_ws" \
    "never does)"
echo "# ws.echo: $echo_conns connections x $echo_inflight messages of 64 bytes (text) in" \
    "flight, ws.echo_1: $echo_conns connections x 1; ${echo_secs} s per run after 0.5 s of" \
    "warm-up, every reply checked"
echo "# ws.broadcast: $subs subscribers (WS_SUBSCRIBERS=n to change), median of" \
    "$publishes publishes per run, every relay checked, a fresh server per run (weave" \
    "CHAT_QUEUE=100000 CHAT_EVENTS=0 MAX_CONNECTIONS=100000: no join announcements, like" \
    "the ws anchor's room, and no cap below Node's)"
echo "# ws.conn_rss: server VmRSS with $idle_conns idle connections minus before, per" \
    "connection; a fresh server per run. ws.conn_rss_listen: $listen_conns connections to the" \
    "echo route that never send after the handshake, from bench_ws listen (no extension" \
    "offered, no ping) and, for ws.conn_rss_listen_pyclient, from Python websockets" \
    "(bench/ws/listen_client.py on uvloop: websockets.connect() defaults, permessage-deflate" \
    "offered, a ping every 20 s); VmRSS read 1 s after the last handshake"
bench_load_begin

# conn_rss_note: what a listening connection costs, and why (after the
# conn_rss_listen figures; the numbers are this run's medians)
conn_rss_note()
{
    local line more
    [[ -n ${rss_listen:-} && -n ${rss_py:-} ]] || return 0
    line="# ws.conn_rss_listen: a connection that never sent costs weave $(bench_fmt "$rss_listen")"
    line+=" B with weave's client and $(bench_fmt "$rss_py") B with Python websockets' (Node ws:"
    line+=" $(bench_fmt "${rss_listen_ws:-0}") and $(bench_fmt "${rss_py_ws:-0}") B)"
    [[ -z ${rss_echoed:-} ]] ||
        line+="; one that had a message echoed (ws.conn_rss) $(bench_fmt "$rss_echoed") B"
    echo "$line"
    if awk -v a="$rss_listen" -v b="$rss_py" 'BEGIN { exit !(b < 1.15 * a && a < 1.15 * b) }'; then
        echo "# ws.conn_rss_listen: the Python client makes no difference: it offers" \
            "permessage-deflate, which weave's echo route accepts (the handshake lines above)" \
            "but whose zlib streams weave creates only at the first compressed message, and" \
            "it pings only 20 s after connecting, after the reading; weave's own client, which" \
            "offers nothing and never pings, costs the same"
    else
        echo "# ws.conn_rss_listen: the two clients' listeners cost weave different amounts" \
            "here (see the handshake lines above for what each agreed to)"
    fi
    [[ -n ${rss_echoed:-} ]] || return 0
    if awk -v a="$rss_listen" -v e="$rss_echoed" 'BEGIN { exit !(a > 1.3 * e) }'; then
        more="what costs more is the state weave keeps (src/ws/ws.c) for a connection that"
        more+=" has not received a frame yet: the input buffer reserved at the upgrade and the"
        more+=" handshake's pages of the handler's fiber stack, which wv_ws_recv gives back"
        more+=" (wv_buf_free, wv_fiber_trim_stack) only once a read came back short, i.e. after"
        more+=" the first frame"
    else
        more="listening costs no more than having had a message echoed: the input buffer and"
        more+=" the handshake's fiber-stack pages are given back (src/ws/ws.c) before the first"
        more+=" wait, not only after the first frame (the ws suite in bench/README.md says what"
        more+=" it cost before)"
    fi
    echo "# ws.conn_rss_listen: $more"
}

# the echo servers serve ws.echo and ws.echo_1, and stop before the others
echo_servers_up=
echo_servers()
{
    local s
    if [[ $1 == start && -z $echo_servers_up ]]; then
        for s in weave websockets ws; do
            [[ -n ${down[$s]:-} ]] || start_server "$s" || true
            [[ -z ${down[$s]:-} ]] || echo "# $s: not available: ${down[$s]}"
        done
        [[ -n ${down[websockets]:-} ]] ||
            echo "# websockets says: $(head -n 1 "$tmp/websockets.log")"
        echo_servers_up=1
    elif [[ $1 == stop && -n $echo_servers_up ]]; then
        for s in weave websockets ws; do stop_server "$s"; done
        echo_servers_up=
    fi
}

for g in "${wanted[@]}"; do
    case $g in
        echo | echo_1) echo_servers start ;;
        *) echo_servers stop ;;
    esac
    case $g in
        echo | echo_1)
            figure "ws.$g" msgs/s higher weave websockets ws
            echo_cpu_line "ws.$g"
            ;;
        broadcast)
            figure ws.broadcast ms lower weave ws floor
            # the floor against Node: the most a server that sends to each
            # socket in turn can be ahead of it
            if [[ -n ${fig_median[ws]:-} && -n ${fig_median[floor]:-} ]]; then
                echo "# ws.broadcast floor: a bare epoll loop with one send() per subscriber" \
                    "takes $(bench_fmt "${fig_median[floor]}") ms, Node ws" \
                    "$(bench_fmt "${fig_median[ws]}") ms: no server that" \
                    "sends to each socket gets past $(awk -v a="${fig_median[ws]}" \
                        -v b="${fig_median[floor]}" 'BEGIN { printf "%.2f", a / b }')x Node here"
            fi
            ;;
        conn_rss)
            figure ws.conn_rss bytes lower weave ws
            rss_echoed=${fig_median[weave]:-}
            ;;
        conn_rss_listen)
            figure ws.conn_rss_listen bytes lower weave ws
            rss_listen=${fig_median[weave]:-} rss_listen_ws=${fig_median[ws]:-}
            figure ws.conn_rss_listen_pyclient bytes lower weave ws
            rss_py=${fig_median[weave]:-} rss_py_ws=${fig_median[ws]:-}
            conn_rss_note
            ;;
    esac
done
echo_servers stop

bench_load_end
bench_finish
