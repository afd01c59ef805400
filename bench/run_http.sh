#!/usr/bin/env bash
# bench/run_http.sh: the HTTP suite (`make bench-http`; method: docs/benchmarking.md).
#
# One BENCH line per figure and anchor, in this order: http.plaintext_cpu (+
# _h2o, _lwan), http.json_cpu (+ _fastapi, _lwan), http.p99 (the headline:
# server CPU per unpipelined request, like for like), then http.plaintext (+
# _h2o, _lwan) and http.json (+ _fastapi, _lwan) (16 requests pipelined: they
# measure the pipelining mechanism, one write answering 16 requests),
# http.plaintext_pipelined_cpu (+ _h2o, _lwan), http.static_4k /
# http.static_1m once bench_http_server serves /static/, http.sleep10k,
# http.slowloris (+ _same_timeout: weave at nginx's 60 s head timeout),
# http.plaintext_instructions and http.json_instructions (user-space
# instructions per request under callgrind, against nginx), and with
# BENCH_LONG=1 http.soak (weave alone). Weave is
# build/release/bench_http_server; the anchors are Debian's nginx (1 worker),
# h2o (1 thread) and FastAPI on uvicorn with uvloop + httptools (1 worker),
# and lwan (1 thread) when LWAN_BIN names its TechEmpower sample binary
# (docs/benchmarking.md, "Optional anchors"). Every server runs on CPU 0
# (taskset -c 0; weave with WEAVE_SHARDS=1), wrk -t1 on CPU 1; weave and the
# anchors take turns, run after run (bench/http/README.md says what each
# figure measures and how). Every figure also prints how busy the server's
# core and wrk's were, and whether wrk, not the server, was the limit.
#
#   BUILD_DIR=dir     where bench_http_server is (default: build/release)
#   BENCH_LONG=1      7 rounds and longer runs (sleep10k and slowloris 30 s),
#                     and http.soak (30 minutes)
#   BENCH_ROUNDS=n    override the number of rounds
#   BENCH_VERBOSE=1   show what every run prints (wrk's own report)
#   BENCH_KEEP=1      keep the temp dir (configs, server logs, per-run details)
#   LWAN_BIN=path     lwan's TechEmpower sample binary, an optional anchor
#   SOAK_MINUTES=n    the length of http.soak (default 30)
#   HTTP_FIGURES="plaintext_cpu json_cpu plaintext json plaintext_pipelined_cpu
#                 static sleep10k slowloris instructions soak"
#                     run only these groups ("http." in front is allowed;
#                     plaintext_cpu also gives http.p99)
#
# Ports (fixed, checked free first; readiness checks prove the answering
# process is the one started here): weave 28301, nginx 28302, h2o 28303,
# FastAPI 28304, lwan 28305; the http.sleep10k servers: weave 28311, FastAPI
# 28314; http.slowloris: weave 28321, nginx 28322, weave at a 60 s head timeout 28323;
# http.soak: weave 28331; http.*_instructions: weave 28341, nginx 28342.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

bin=${BUILD_DIR:-$here/../build/release}/bench_http_server
py=/usr/bin/python3 # Debian's; the python3 on PATH may be another one
measure=$here/http/measure.sh

if [[ ! -x $bin ]]; then
    echo "run_http.sh: no $bin; build first (make build, or set BUILD_DIR)" >&2
    exit 1
fi
for tool in wrk curl ss taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "run_http.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    fi
done
if [[ $(nproc) -lt 2 ]]; then
    echo "run_http.sh: needs 2 CPUs (server on CPU 0, wrk on CPU 1), this machine has $(nproc)" >&2
    exit 1
fi

# Run lengths. sleep10k and slowloris are short by default (the header says
# so): BENCH_LONG=1 runs them 30 s.
if [[ ${BENCH_LONG:-0} == 1 ]]; then
    secs_pipe=10 secs_cpu=6 secs_sleep=30 secs_static=6 secs_slow=30
else
    secs_pipe=5 secs_cpu=3 secs_sleep=5 secs_static=3 secs_slow=8
fi
soak_minutes=${SOAK_MINUTES:-30}
conns=256
sleep_conns=10000
static_1m_conns=32
slow_conns=5000 # trickling connections of http.slowloris
slow_lead=3     # seconds between the trickle's start and wrk's, so that weave's 10 s
# head timeout (the trickled connections closed and reopened) falls within the run
wrk_limit=90 # wrk at or over this % of its core: the load generator was the limit

declare -A port=([weave]=28301 [nginx]=28302 [h2o]=28303 [fastapi]=28304 [lwan]=28305 [floor]=28306
    [weave_sleep]=28311 [fastapi_sleep]=28314 [weave_slow]=28321 [nginx_slow]=28322 [weave60_slow]=28323
    [weave_cg]=28341 [nginx_cg]=28342
    [weave_soak]=28331)
optional=(lwan floor) # anchors that may be missing: skipped with one '#' line, not failed
declare -A pid=()      # the process started (nginx: its master)
declare -A measured=() # the process whose CPU and memory are read (nginx: its worker)
declare -A down=()     # why a server is not available
declare -A size=()     # "<server> <path>" -> bytes of one whole response
started=()
why= # http_check's reason for a failure

plain_body='Hello, World!'
json_body='{"message":"Hello, World!"}'
sleep_body='{"message":"Asynchronous Response"}'

tmp=$(mktemp -d /tmp/weave-bench-http.XXXXXX)
chmod 755 "$tmp" # nginx's worker and h2o run as nobody and read files here
mkdir -p "$tmp/info" "$tmp/nginx-tmp" "$tmp/h2o" "$tmp/static"

# alive PID: the process runs (an exited child stays a zombie until reaped,
# and kill -0 would still succeed on it).
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
# ${port[NAME]}, unless someone else already listens there (other processes may
# hold our ports; docs/benchmarking.md).
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

# http_check NAME PATH BODY_FILE CONTENT_TYPE: one request to PATH; a 200 with
# Server and Date headers (TechEmpower rules), the Content-Type and exactly
# the bytes of BODY_FILE. Records the size of the whole response in
# size["NAME PATH"]; on failure returns 1 with the reason in $why.
http_check()
{
    local name=$1 path=$2 body_file=$3 type=$4 out code hsize bsize
    why=
    if ! out=$(curl -sS --max-time 5 -D "$tmp/$name.h" -o "$tmp/$name.b" \
        -w '%{http_code} %{size_header} %{size_download}' \
        "http://127.0.0.1:${port[$name]}$path" 2>&1); then
        why="GET $path failed: $out"
    else
        read -r code hsize bsize <<<"$out"
        if [[ $code != 200 ]]; then
            why="GET $path answered $code, not 200"
        elif ! cmp -s "$tmp/$name.b" "$body_file"; then
            why="GET $path answered another body: $(head -c 80 "$tmp/$name.b")"
        elif ! grep -qi '^server: ' "$tmp/$name.h" || ! grep -qi '^date: ' "$tmp/$name.h"; then
            why="GET $path: no Server or Date header"
        elif ! grep -qi "^content-type: $type" "$tmp/$name.h"; then
            why="GET $path: Content-Type is not $type"
        fi
    fi
    [[ -z $why ]] || return 1
    size["$name $path"]=$((hsize + bsize))
}

# wait_ready NAME PATH BODY TYPE: within 15 s, the process started as NAME
# (and not some other one) listens on its port and answers PATH correctly.
wait_ready()
{
    local name=$1 path=$2 body=$3 type=$4 p i
    [[ -z ${down[$name]:-} ]] || return 0
    p=${pid[$name]}
    why=
    printf '%s' "$body" >"$tmp/$name.expected"
    for ((i = 0; i < 150; i++)); do
        if ! alive "$p"; then
            down[$name]="exited at start: $(tail -n 3 "$tmp/$name.log" | tr '\n' ' ')"
            return 0
        fi
        # ss -p lists every process holding the listening socket (nginx:
        # master and worker), so this proves the port is ours.
        if ss -ltnpH "sport = :${port[$name]}" | grep -q "pid=$p,"; then
            http_check "$name" "$path" "$tmp/$name.expected" "$type" && return 0
        fi
        sleep 0.1
    done
    down[$name]="not ready after 15 s${why:+: $why}"
}

# also_check NAME PATH BODY TYPE: a further route of a ready server.
also_check()
{
    local name=$1 path=$2
    [[ -z ${down[$name]:-} ]] || return 0
    printf '%s' "$3" >"$tmp/$name.expected"
    http_check "$name" "$path" "$tmp/$name.expected" "$4" || down[$name]=$why
}

# render TEMPLATE PORT OUT [NAME] [WORKER_CONNECTIONS]: bench/http/TEMPLATE.in
# with its @...@ filled in, as OUT.
render()
{
    sed -e "s|@DIR@|$tmp|g" -e "s|@PORT@|$2|g" -e "s|@NAME@|${4:-}|g" \
        -e "s|@WORKER_CONNECTIONS@|${5:-4096}|g" "$here/http/$1.in" >"$3"
}

# label SERVER: the name the lines use (weave_sleep -> weave).
label()
{
    echo "${1%%_*}"
}

# start_nginx NAME WORKER_CONNECTIONS
start_nginx()
{
    if ! command -v nginx >/dev/null; then
        down[$1]="nginx is not installed (scripts/deps.sh bench)"
        return 0
    fi
    render nginx.conf "${port[$1]}" "$tmp/$1.conf" "$1" "$2"
    start_server "$1" nginx -p "$tmp" -c "$tmp/$1.conf" -e "$tmp/$1-error.log"
}

# nginx_worker NAME: CPU and memory are read from the worker (worker_processes
# 1: the master's only child).
nginx_worker()
{
    [[ -z ${down[$1]:-} ]] || return 0
    read -r "measured[$1]" _ <"/proc/${pid[$1]}/task/${pid[$1]}/children" || true
    [[ -n ${measured[$1]} ]] || down[$1]="no worker process"
}

# start_lwan: lwan's TechEmpower sample from $LWAN_BIN (optional), run from a
# directory of its own holding a copy of the binary, its config (lwan reads
# `<its file name>.conf` from the working directory) and the empty SQLite
# database it opens at start even to serve /plaintext.
start_lwan()
{
    local d=$tmp/lwan missing
    if [[ -z ${LWAN_BIN:-} ]]; then
        down[lwan]="LWAN_BIN is not set (docs/benchmarking.md, \"Optional anchors\")"
        return 0
    fi
    if [[ ! -f $LWAN_BIN || ! -x $LWAN_BIN ]]; then
        down[lwan]="LWAN_BIN does not name an executable file"
        return 0
    fi
    missing=$(ldd "$LWAN_BIN" 2>&1 | awk '/not found/ { printf "%s%s", sep, $1; sep = " " }') || true
    if [[ -n $missing ]]; then
        down[lwan]="LWAN_BIN cannot run: $missing not found (libmariadb3: scripts/deps.sh bench)"
        return 0
    fi
    if ! mkdir -p "$d" || ! cp "$LWAN_BIN" "$d/lwan-techempower" 2>/dev/null; then
        down[lwan]="could not copy LWAN_BIN into the temp dir"
        return 0
    fi
    render lwan.conf "${port[lwan]}" "$d/lwan-techempower.conf"
    if ! (cd "$d" && "$py" -c 'import sqlite3; sqlite3.connect("techempower.db").executescript(
        "CREATE TABLE IF NOT EXISTS World(id INTEGER PRIMARY KEY, randomNumber INTEGER);"
        "CREATE TABLE IF NOT EXISTS Fortune(id INTEGER PRIMARY KEY, message TEXT)")') 2>/dev/null; then
        down[lwan]="could not create the SQLite database it opens at start"
        return 0
    fi
    lwan_sum=$(sha256sum "$LWAN_BIN" | cut -c 1-12)
    start_server lwan env -C "$d" ./lwan-techempower
}

# lwan_pinned: every thread of lwan on CPU 0 (it sets its worker's affinity
# itself, to CPU 0 for one thread: check that it matches ours).
lwan_pinned()
{
    local t cpus=
    [[ -z ${down[lwan]:-} ]] || return 0
    for t in /proc/"${pid[lwan]}"/task/*; do
        cpus+=" $(awk '/^Cpus_allowed_list:/ { print $2 }' "$t/status")"
    done
    if [[ $(tr ' ' '\n' <<<"$cpus" | sort -u | tr -d '\n') != 0 ]]; then
        down[lwan]="its threads are not all on CPU 0 (Cpus_allowed_list:$cpus)"
    else
        lwan_threads=$(wc -w <<<"$cpus")
    fi
}

# info_percent FIGURE SERVER KEY: the median of a percentage, as "57%".
info_percent()
{
    local v
    mapfile -t v < <(info_values "$@")
    if ((${#v[@]})); then printf '%.0f%%' "$(bench_median "${v[@]}")"; else echo "?"; fi
}

# info_max FIGURE SERVER KEY [SCALE]: their largest, formatted.
info_max()
{
    bench_fmt "$(info_values "$@" | sort -g | tail -n 1)"
}

declare -A samples=() failed=() pipelining=()

# pipelining_ok SERVER PATH: whether SERVER answered 16 requests for PATH
# written at once (http/pipeline_probe.py, once per server and path); on
# failure returns 1 with the reason in $why.
pipelining_ok()
{
    local s=$1 path=$2 n
    why=
    if [[ -z ${pipelining["$s $path"]:-} ]]; then
        n=$("$py" "$here/http/pipeline_probe.py" "${port[$s]}" "$path" "${size["$s $path"]}" 16 \
            2>/dev/null) || n=0
        pipelining["$s $path"]=$n
    fi
    n=${pipelining["$s $path"]}
    [[ $n == 16 ]] && return 0
    why="it answered $n of 16 requests for $path written at once (as wrk writes them in the"
    why+=" pipelined runs) within 2 s: a pipelined run would measure its stalled connections"
    return 1
}

# figure NAME UNIT BETTER MODE CONNS SECONDS PATH SERVER...: SERVER... (weave
# first, then the anchors in the order of bench/http/README.md) take turns,
# BENCH_ROUNDS runs each; then one BENCH line per anchor: NAME for the first,
# NAME_<anchor> for the others. A server that fails a run is not run again;
# its lines fail. An optional anchor (lwan) that is not available is left
# out: the reason was said once, at the start.
figure()
{
    local name=$1 unit=$2 better=$3 mode=$4 nconns=$5 secs=$6 path=$7
    shift 7
    local servers=() s v r line anchor i lab
    local -a bodyarg
    for s in "$@"; do
        if [[ " ${optional[*]} " == *" $(label "$s") "* && -n ${down[$s]:-} ]]; then
            continue
        fi
        servers+=("$s")
    done
    for s in "${servers[@]}"; do
        samples[$name.$s]=
        failed[$name.$s]=${down[$s]:+not available: ${down[$s]}}
        if [[ -z ${failed[$name.$s]} && -z ${size["$s $path"]:-} ]]; then
            failed[$name.$s]="not available: $path was not checked"
        fi
    done
    if [[ $mode == pipelined* ]]; then
        # Every server must answer pipelined requests; an optional anchor
        # that does not is left out of the figure, with a '#' line.
        local kept=()
        for s in "${servers[@]}"; do
            if [[ -z ${failed[$name.$s]} ]] && ! pipelining_ok "$s" "$path"; then
                if [[ " ${optional[*]} " == *" $(label "$s") "* ]]; then
                    echo "# ${name}_$(label "$s"): skipped: $(label "$s") does not answer" \
                        "pipelined requests: $why"
                    unset "failed[$name.$s]"
                    continue
                fi
                failed[$name.$s]="does not answer pipelined requests: $why"
            fi
            kept+=("$s")
        done
        servers=("${kept[@]}")
    fi
    bodyarg=()
    [[ $mode == sleep ]] && bodyarg=("$sleep_body")
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for s in "${servers[@]}"; do
            [[ -z ${failed[$name.$s]} ]] || continue
            if v=$(bench_run "$measure" "$mode" "$nconns" "$secs" "${measured[$s]}" \
                "http://127.0.0.1:${port[$s]}$path" "${size["$s $path"]}" \
                "$tmp/info/$name.$(label "$s")" "${bodyarg[@]}"); then
                samples[$name.$s]+=" $v"
            else
                failed[$name.$s]="a run failed:"$'\n'"$v"
            fi
        done
        # Without weave's figure the anchors' runs are of no use.
        [[ -z ${failed[$name.${servers[0]}]} ]] || break
    done
    line="# $name samples ($unit):"
    for s in "${servers[@]}"; do
        lab=$(label "$s")
        if [[ -n ${failed[$name.$s]} ]]; then
            line+=" $lab failed;"
        else
            # shellcheck disable=SC2086 # the samples are words
            line+=" $lab $(bench_fmt_all ${samples[$name.$s]});"
        fi
    done
    echo "${line%;}"
    s=${servers[0]}
    for ((i = 1; i < ${#servers[@]}; i++)); do
        anchor=$(label "${servers[$i]}")
        lab=$name
        ((i == 1)) || lab=${name}_$anchor
        if [[ -n ${failed[$name.$s]} ]]; then
            bench_fail "$lab" "weave: ${failed[$name.$s]}"
        elif [[ -n ${failed[$name.${servers[$i]}]} ]]; then
            bench_fail "$lab" "$anchor: ${failed[$name.${servers[$i]}]}"
        else
            # shellcheck disable=SC2086
            bench_line "$lab" "$(bench_median ${samples[$name.$s]})" "$unit" "$anchor" \
                "$(bench_median ${samples[$name.${servers[$i]}]})" "$better"
        fi
    done
}

# figure_ok NAME SERVER: SERVER's runs of figure NAME all succeeded.
figure_ok()
{
    [[ -z ${failed[$1.$2]-x} ]]
}

# limit_notes NAME KIND SERVER...: how busy the server's core and wrk's core
# were during the runs of figure NAME (medians of the runs), on one line, and
# a second saying for which servers the load generator, not the server, was
# the limit (wrk >= $wrk_limit% of its core). KIND says what that means for
# the figure: rate (the figure is then wrk's ceiling, a lower bound for the
# server), cpu (the CPU time per request is the server's own and stands; the
# req/s beside it are wrk's), sleep (the rate is set by the sleep).
# Optional anchors that did not run are left out.
limit_notes()
{
    local name=$1 kind=$2 s lab sc wc line='' bound=() busy=() neither=()
    shift 2
    for s in "$@"; do
        figure_ok "$name" "$s" || continue
        lab=$(label "$s")
        sc=$(info_values "$name" "$lab" server_cpu) || true
        wc=$(info_values "$name" "$lab" wrk_cpu) || true
        [[ -n $sc && -n $wc ]] || continue
        # shellcheck disable=SC2086
        sc=$(bench_median $sc) wc=$(bench_median $wc)
        line+="${line:+, }$lab $(printf '%.0f%%/%.0f%%' "$sc" "$wc")"
        if awk -v w="$wc" -v l="$wrk_limit" 'BEGIN { exit !(w >= l) }'; then
            bound+=("$lab")
        elif awk -v c="$sc" -v l="$wrk_limit" 'BEGIN { exit !(c >= l) }'; then
            busy+=("$lab")
        else
            neither+=("$lab")
        fi
    done
    [[ -n $line ]] || return 0
    echo "# $name CPU use, server/wrk (% of one core, medians of the runs): $line"
    if ((${#bound[@]})); then
        case $kind in
        rate) line="its req/s figure is wrk's ceiling, a lower bound for the server" ;;
        cpu) line="the req/s are wrk's ceiling; the server CPU per request is the server's own and stands" ;;
        *) line="the figure may be wrk's, not the server's" ;;
        esac
        echo "# $name: the load generator, not the server, was the limit (wrk >= $wrk_limit%" \
            "of its core) for ${bound[*]}: $line"
    fi
    if ((${#busy[@]})); then
        echo "# $name: the server was the limit (server >= $wrk_limit% of its core, wrk" \
            "below) for ${busy[*]}"
    fi
    if ((${#neither[@]})); then
        case $kind in
        sleep) line="the 1 s sleep sets the pace" ;;
        *) line="if neither waits on the other, other processes took the cores (see # load)" ;;
        esac
        echo "# $name: neither the server nor wrk reached $wrk_limit% of its core for" \
            "${neither[*]}: $line"
    fi
}

# rate_details NAME SERVER...: req/s and p99 reached during the runs of NAME.
rate_details()
{
    local name=$1 s lab p99
    shift
    for s in "$@"; do
        figure_ok "$name" "$s" || continue
        lab=$(label "$s")
        p99=$(info_median "$name" "$lab" p99_us 1000)
        # wrk records no latency sample when a batch of pipelined responses
        # ends the run, and few at all when pipelining: say so, not "0 ms"
        [[ $p99 != 0 ]] || p99="none recorded by wrk (pipelined)"
        [[ $p99 == none* ]] || p99="$p99 ms"
        echo "# $name $lab: $(info_median "$name" "$lab" rps) req/s," \
            "p99 $p99, $(info_percent "$name" "$lab" user_share) of its CPU time in user" \
            "space (medians)"
    done
}

# The figures, in groups; HTTP_FIGURES picks some (all by default).

# 1. The headline: server CPU per request without pipelining, like for like
# (wrk-bound, so req/s alone would not rank the servers); the plaintext runs
# also give http.p99.
fig_plaintext_cpu()
{
    local pw pn
    figure http.plaintext_cpu us lower cpu "$conns" "$secs_cpu" /plaintext weave nginx h2o lwan \
        floor
    limit_notes http.plaintext_cpu cpu weave nginx h2o lwan floor
    rate_details http.plaintext_cpu weave nginx h2o lwan floor
    if figure_ok http.plaintext_cpu nginx && figure_ok http.plaintext_cpu floor; then
        local fl ng
        # shellcheck disable=SC2086 # one sample per word
        fl=$(bench_median ${samples[http.plaintext_cpu.floor]})
        # shellcheck disable=SC2086 # one sample per word
        ng=$(bench_median ${samples[http.plaintext_cpu.nginx]})
        echo "# http.plaintext_cpu floor: a bare epoll loop that parses nothing and sends a" \
            "fixed response (bench_http_floor) takes $(bench_fmt "$fl") us a request, nginx" \
            "$(bench_fmt "$ng"): the kernel's part, which every server pays, leaves no server more" \
            "than $(bench_fmt "$(echo "$ng / $fl" | bc -l)")x ahead of nginx here"
    fi
    if figure_ok http.plaintext_cpu weave && figure_ok http.plaintext_cpu nginx; then
        mapfile -t pw < <(info_values http.plaintext_cpu weave p99_us 1000)
        mapfile -t pn < <(info_values http.plaintext_cpu nginx p99_us 1000)
        echo "# http.p99 samples (ms; the http.plaintext_cpu runs: $conns connections, no" \
            "pipelining): weave $(bench_fmt_all "${pw[@]}") | nginx $(bench_fmt_all "${pn[@]}")"
        bench_line http.p99 "$(bench_median "${pw[@]}")" ms nginx "$(bench_median "${pn[@]}")" lower
    else
        bench_fail http.p99 "the http.plaintext_cpu runs of weave or nginx failed"
    fi
}

fig_json_cpu()
{
    figure http.json_cpu us lower cpu "$conns" "$secs_cpu" /json weave nginx fastapi lwan
    limit_notes http.json_cpu cpu weave nginx fastapi lwan
    rate_details http.json_cpu weave nginx fastapi lwan
}

# 2. Pipelined throughput (16 requests in flight per connection): the server,
# not wrk, is the bottleneck, and weave answers each batch with one write. A
# figure of the pipelining mechanism, not like for like: the CPU figures
# above come first.
pipelined_note()
{
    echo "# $1: 16 requests pipelined per connection: this measures the pipelining" \
        "mechanism (weave answers the 16 with one write), not like-for-like serving;" \
        "the like-for-like figure is $2"
}

fig_plaintext()
{
    pipelined_note http.plaintext http.plaintext_cpu
    figure http.plaintext req/s higher pipelined "$conns" "$secs_pipe" /plaintext weave nginx h2o lwan
    limit_notes http.plaintext rate weave nginx h2o lwan
}

fig_json()
{
    pipelined_note http.json http.json_cpu
    figure http.json req/s higher pipelined "$conns" "$secs_pipe" /json weave nginx fastapi lwan
    limit_notes http.json rate weave nginx fastapi lwan
}

# 3. Server CPU per request under 16-deep pipelining: what http.plaintext
# shows, without depending on wrk's own ceiling.
fig_plaintext_pipelined_cpu()
{
    figure http.plaintext_pipelined_cpu us lower pipelined_cpu "$conns" "$secs_pipe" /plaintext \
        weave nginx h2o lwan
    limit_notes http.plaintext_pipelined_cpu cpu weave nginx h2o lwan
    rate_details http.plaintext_pipelined_cpu weave nginx h2o lwan
}

# 4. Static files, once weave serves them ($STATIC_DIR under /static/).
fig_static()
{
    local code f s ok=1
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
        "http://127.0.0.1:${port[weave]}/static/4k.bin") || true
    if [[ $code != 200 ]]; then
        echo "# http.static_4k: skipped (weave has no static handler yet)"
        echo "# http.static_1m: skipped (weave has no static handler yet)"
        return 0
    fi
    for f in 4k.bin 1m.bin; do
        for s in weave nginx; do
            [[ -z ${down[$s]:-} ]] || continue
            if ! http_check "$s" "/static/$f" "$tmp/static/$f" application/octet-stream; then
                echo "# http.static: $s: $why"
                ok=0
            fi
        done
    done
    if [[ $ok == 1 ]]; then
        figure http.static_4k req/s higher pipelined "$conns" "$secs_static" /static/4k.bin weave nginx
        limit_notes http.static_4k rate weave nginx
        figure http.static_1m MB/s higher mbps "$static_1m_conns" "$secs_static" /static/1m.bin \
            weave nginx
        limit_notes http.static_1m rate weave nginx
    else
        bench_fail http.static_4k "a server did not serve the files right (above)"
        bench_fail http.static_1m "a server did not serve the files right (above)"
    fi
}

# met VALUE OP TARGET: "met" or "NOT met".
met()
{
    if awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN { exit !(op == ">=" ? v >= t : v <= t) }'; then
        echo met
    else
        echo "NOT met"
    fi
}

# 5. The chapter's /async-endpoint (a 1 s sleep) at 10,000 connections, on
# servers of its own (their peak RSS is this figure's), started once the
# others are stopped: every connection is a file descriptor on each side
# (wrk's 10,000 and the server's 10,000 each stay under an open-file limit
# of 20,000).
fig_sleep10k()
{
    local s errs late non2xx bad answered rate p99 peak kinds
    start_server weave_sleep env PORT="${port[weave_sleep]}" WEAVE_SHARDS=1 "$bin"
    if [[ -z ${down[fastapi]:-} ]]; then
        start_server fastapi_sleep "${uvicorn[@]}" --port "${port[fastapi_sleep]}"
    else
        down[fastapi_sleep]=${down[fastapi]}
    fi
    wait_ready weave_sleep /async-endpoint "$sleep_body" application/json
    wait_ready fastapi_sleep /async-endpoint "$sleep_body" application/json
    if [[ ${BENCH_LONG:-0} != 1 ]]; then
        echo "# http.sleep10k: a short run ($secs_sleep s; BENCH_LONG=1 runs 30 s): its steady rate" \
            "rests on $((secs_sleep - 2)) or so rounds of 1 s sleeps, and the first round (the" \
            "$sleep_conns connections opening at once) weighs more in the p99"
    fi
    figure http.sleep10k req/s higher sleep "$sleep_conns" "$secs_sleep" /async-endpoint \
        weave_sleep fastapi_sleep
    limit_notes http.sleep10k sleep weave_sleep fastapi_sleep
    for s in weave fastapi; do
        figure_ok http.sleep10k "${s}_sleep" || continue
        # Every request answered: in every run no socket error, no request
        # unanswered after wrk's 5 s timeout, no non-2xx status, no body
        # other than the expected one.
        errs=$(info_values http.sleep10k "$s" sock_errors | sort -g | tail -n 1)
        late=$(info_values http.sleep10k "$s" timeouts | sort -g | tail -n 1)
        non2xx=$(info_values http.sleep10k "$s" non2xx | sort -g | tail -n 1)
        bad=$(info_values http.sleep10k "$s" bad | sort -g | tail -n 1)
        answered=no
        ((errs + late + non2xx + bad == 0)) && answered=yes
        # shellcheck disable=SC2086
        rate=$(bench_median ${samples[http.sleep10k.${s}_sleep]})
        p99=$(info_median http.sleep10k "$s" p99_us 1000000)
        peak=$(info_max http.sleep10k "$s" hwm_kb 1024)
        kinds=$(sed -n 's/.* rate_kind=\([a-z]*\).*/\1/p' "$tmp/info/http.sleep10k.$s" | sort -u |
            tr '\n' ' ')
        case $kinds in
        "steady ") kinds="steady: the good responses after the first $sleep_conns, per second from the ${sleep_conns}th to the last" ;;
        "whole ") kinds="whole run: fewer than $((2 * sleep_conns)) good responses came in a run, so the good responses per second from the start to the last" ;;
        *) kinds="steady where $((2 * sleep_conns)) good responses came in a run, else whole-run" ;;
        esac
        echo "# http.sleep10k $s: every request answered: $answered (worst run: $errs socket" \
            "errors (connect/read/write), $late unanswered after 5 s, $non2xx non-2xx, $bad" \
            "wrong bodies); req/s $(bench_fmt "$rate") ($kinds; whole run" \
            "$(info_median http.sleep10k "$s" whole_rps); wrk's own $(info_median http.sleep10k \
                "$s" rps); first round complete after $(info_median http.sleep10k "$s" round_s) s);" \
            "p99 $p99 s, p50 $(info_median http.sleep10k "$s" p50_us 1000000) s (medians)"
        # One server for all the runs: VmHWM after each run is the peak so
        # far; VmRSS before each run shows what the previous ones left behind.
        # shellcheck disable=SC2046 # one number per line, split on purpose
        echo "# http.sleep10k $s: peak RSS $peak MB (VmHWM after each run:" \
            "$(bench_fmt_all $(info_values http.sleep10k "$s" hwm_kb 1024)) MB; VmRSS before" \
            "each run: $(bench_fmt_all $(info_values http.sleep10k "$s" rss0_kb 1024)) MB)"
        if [[ $s == weave ]]; then
            echo "# http.sleep10k targets for weave: req/s >= 9500 at $sleep_conns connections:" \
                "$(met "$rate" '>=' 9500); every request answered: $answered; p99 <= 1.1 s:" \
                "$(met "$p99" '<=' 1.1); peak RSS <= 100 MB: $(met "$peak" '<=' 100)"
        fi
    done
    stop_servers
}

# 6. Slow clients: the req/s of wrk's $conns keep-alive connections on
# /plaintext while $slow_conns others trickle a request head, one byte per
# connection per second, as a share of the same without them. Weave and
# nginx on servers of their own (nginx with worker_connections 16384, so that
# the connections fit), alternating: weave without, weave with, then weave
# at nginx's 60 s head timeout (weave60) and nginx, each without and with,
# BENCH_ROUNDS times. weave's own default (10 s) makes it time the tricklers
# out, answer 408 and see them reconnect during the run, work nginx at 60 s
# never does: weave60 is the like-for-like figure.
fig_slowloris()
{
    local s lab r v mode line ok=1 t
    local servers=(weave_slow weave60_slow nginx_slow)
    declare -A slow_samples=() slow_failed=() share=()
    start_server weave_slow env PORT="${port[weave_slow]}" WEAVE_SHARDS=1 "$bin"
    start_server weave60_slow env PORT="${port[weave60_slow]}" WEAVE_SHARDS=1 \
        HEADER_TIMEOUT_MS=60000 "$bin"
    start_nginx nginx_slow 16384
    wait_ready weave_slow /plaintext "$plain_body" text/plain
    wait_ready weave60_slow /plaintext "$plain_body" text/plain
    wait_ready nginx_slow /plaintext "$plain_body" text/plain
    nginx_worker nginx_slow
    echo "# http.slowloris: $slow_conns connections trickle a request head (one byte per" \
        "connection per second, never the blank line that ends it; bench/http/trickle.py," \
        "reopening every connection the server closes) while wrk -t1 -c$conns (keep-alive," \
        "no pipelining, /plaintext) runs ${secs_slow} s, starting ${slow_lead} s after they are" \
        "all open; the trickler runs on CPU 1 beside wrk (on CPU 0 it would take the server's" \
        "core); head timeouts: weave 10 s (its default), weave60 60 s, nginx" \
        "client_header_timeout 60 s (its default)"
    for s in "${servers[@]}"; do
        for mode in 0 1; do
            slow_samples[$s.$mode]=
            slow_failed[$s.$mode]=${down[$s]:+not available: ${down[$s]}}
        done
    done
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for s in "${servers[@]}"; do
            for mode in 0 1; do
                [[ -z ${slow_failed[$s.0]}${slow_failed[$s.1]} ]] || continue
                lab=$(label "$s")
                if v=$(bench_run "$here/http/slowloris.sh" "$mode" "$slow_conns" "$slow_lead" \
                    "$conns" "$secs_slow" "${measured[$s]}" "${port[$s]}" /plaintext \
                    "${size["$s /plaintext"]}" "$tmp/info/http.slowloris.$lab.$mode"); then
                    slow_samples[$s.$mode]+=" $v"
                else
                    slow_failed[$s.$mode]="a run failed:"$'\n'"$v"
                fi
            done
        done
        [[ -z ${slow_failed[weave_slow.0]}${slow_failed[weave_slow.1]} ]] || break
    done
    for s in "${servers[@]}"; do
        lab=$(label "$s")
        if [[ -n ${slow_failed[$s.0]}${slow_failed[$s.1]} ]]; then
            ok=0
            continue
        fi
        # shellcheck disable=SC2086
        share[$lab]=$(awk -v a="$(bench_median ${slow_samples[$s.1]})" \
            -v b="$(bench_median ${slow_samples[$s.0]})" 'BEGIN { print a / b }')
        # shellcheck disable=SC2086
        echo "# http.slowloris samples ($lab, req/s): without $(bench_fmt_all ${slow_samples[$s.0]})" \
            "| with $(bench_fmt_all ${slow_samples[$s.1]}); share $(bench_fmt "${share[$lab]}")" \
            "(with/without, medians)"
        t=$tmp/info/http.slowloris.$lab.1.trickle
        echo "# http.slowloris $lab: the trickle, per run (medians): $(info_int "$t" \
            reconnects) reconnects (the server closed the connection; answered first:" \
            "$(info_int "$t" answered), statuses seen over all runs:" \
            "$(sed -n 's/.* statuses=\([^ ]*\).*/\1/p' "$t" | tr '\n' ' ' | sed 's/ $//')), open" \
            "connections min $(info_int "$t" open_min), mean $(info_int "$t" open_mean) of" \
            "$slow_conns, $(info_int "$t" bytes) bytes sent, $(info_int "$t" late_sends) sent" \
            "over 100 ms late; trickler CPU $(info_int "$t" trickle_cpu)% of one core"
        for mode in 0 1; do
            line="without"
            [[ $mode == 1 ]] && line="with the trickle"
            echo "# http.slowloris $lab $line: CPU use, server/wrk (% of one core, medians):" \
                "$(info_percent http.slowloris "$lab.$mode" server_cpu)/$(info_percent \
                    http.slowloris "$lab.$mode" wrk_cpu); server CPU per normal request" \
                "$(info_median http.slowloris "$lab.$mode" cpu_us) µs; p99 $(info_median \
                    http.slowloris "$lab.$mode" p99_us 1000) ms"
            if awk -v w="$(info_median http.slowloris "$lab.$mode" wrk_cpu)" -v l="$wrk_limit" \
                'BEGIN { exit !(w >= l) }'; then
                echo "# http.slowloris $lab $line: the load generator, not the server, was the" \
                    "limit (wrk >= $wrk_limit% of its core): the req/s are wrk's ceiling"
            fi
        done
    done
    if [[ $ok == 1 ]]; then
        # wrk is often the limit here, and the trickler shares its core: the
        # server's own side of the share is its CPU per normal request.
        line=
        for s in weave weave60 nginx; do
            line+="${line:+, }$s $(awk -v a="$(info_median http.slowloris "$s.0" cpu_us)" \
                -v b="$(info_median http.slowloris "$s.1" cpu_us)" \
                'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "?" }')"
        done
        echo "# http.slowloris: the servers' side of it, server CPU per normal request without" \
            "the trickle / with it (medians; 1 = the trickle cost the normal clients nothing" \
            "on the server, whatever wrk's core allowed): $line"
        echo "# http.slowloris: target: weave's share >= 0.9: at its default 10 s" \
            "$(met "${share[weave]}" '>=' 0.9), at nginx's 60 s $(met "${share[weave60]}" '>=' 0.9)"
        bench_line http.slowloris "${share[weave]}" share nginx "${share[nginx]}" higher
        bench_line http.slowloris_same_timeout "${share[weave60]}" share nginx "${share[nginx]}" \
            higher
    else
        for s in "${servers[@]}"; do
            for mode in 0 1; do
                [[ -z ${slow_failed[$s.$mode]} ]] ||
                    bench_fail http.slowloris "$(label "$s"): ${slow_failed[$s.$mode]}"
            done
        done
    fi
    stop_servers
}

# info_raw FILE KEY: KEY's value on FILE's last line, as written.
info_raw()
{
    sed -n "s/^\(.*[[:space:]]\)\{0,1\}$2=\([^[:space:]]*\).*/\2/p" "$1" 2>/dev/null | tail -n 1
}

# mb: kilobytes on stdin to megabytes, one decimal.
mb()
{
    awk '{ printf "%.1f\n", $1 / 1024 }'
}

# info_int FILE KEY: the median of KEY over FILE's lines, a whole number.
info_int()
{
    local v
    mapfile -t v < <(sed -n "s/^\(.*[[:space:]]\)\{0,1\}$2=\([^[:space:]]*\).*/\2/p" "$1" 2>/dev/null)
    if ((${#v[@]})); then printf '%.0f\n' "$(bench_median "${v[@]}")"; else echo "?"; fi
}

# 7. The soak (BENCH_LONG=1 only): $soak_minutes minutes of mixed load on one
# weave server (bench/http/soak.sh): RSS after the first minute and at the
# end, and every error counted.
fig_soak()
{
    local secs=$((soak_minutes * 60)) v f=$tmp/info/http.soak errs ratio logged every step
    if [[ ${BENCH_LONG:-0} != 1 ]]; then
        echo "# http.soak: skipped: only with BENCH_LONG=1 ($soak_minutes minutes; SOAK_MINUTES" \
            "sets the length)"
        return 0
    fi
    start_server weave_soak env PORT="${port[weave_soak]}" WEAVE_SHARDS=1 "$bin"
    wait_ready weave_soak /plaintext "$plain_body" text/plain
    also_check weave_soak /json "$json_body" application/json
    if [[ -n ${down[weave_soak]:-} ]]; then
        bench_fail http.soak "weave: not available: ${down[weave_soak]}"
        stop_servers
        return 0
    fi
    echo "# http.soak: $soak_minutes min of mixed load on one weave server (WEAVE_SHARDS=1," \
        "CPU 0), every client on CPU 1: wrk -c64 keep-alive /plaintext, wrk -c64 /json 16" \
        "pipelined, wrk -c16 POST /echo (4096-byte bodies), 8 WebSockets echoing 100 messages/s" \
        "each on /ws (reconnecting every 1000), 5 bad requests/s (malformed heads, a 70 KiB" \
        "header, a 9 KiB target, bad or too large Content-Length, HTTP/9.9, a NUL, a cut head;" \
        "bench/http/soak_clients.py)"
    if ! v=$(BENCH_TIMEOUT=$((secs + 300)) bench_run "$here/http/soak.sh" "${pid[weave_soak]}" \
        "${port[weave_soak]}" "$secs" "$f"); then
        bench_fail http.soak "the run failed:"$'\n'"$v"
        stop_servers
        return 0
    fi
    ratio=$v
    errs=$(info_raw "$f" errors)
    logged=$(grep -c -E ' (WARN|ERROR) ' "$tmp/weave_soak.log" || true)
    echo "# http.soak RSS: $(info_raw "$f" rss_1min_kb | mb) MB at $(info_raw "$f" rss_at_s) s," \
        "$(info_raw "$f" rss_end_kb | mb) MB at the end (under load), $(info_raw "$f" rss_idle_kb |
            mb) MB 2 s after it; min/max of the samples $(info_raw "$f" rss_min_kb | mb)/$(
            info_raw "$f" rss_max_kb | mb) MB, peak (VmHWM) $(info_raw "$f" hwm_kb | mb) MB"
    # Every 5 s for a short soak, every minute for a long one.
    every=1 step="5 s"
    ((secs <= 120)) || every=12 step=minute
    echo "# http.soak RSS (MB) every $step: $(info_raw "$f" series | tr ',' '\n' |
        awk -v every="$every" 'NR % every == 0 { printf "%s%s", sep, $1; sep = " " }')"
    echo "# http.soak counts: /plaintext $(info_raw "$f" plaintext_requests) requests," \
        "$(info_raw "$f" plaintext_errors) errors; /json (pipelined) $(info_raw "$f" json_requests)," \
        "$(info_raw "$f" json_errors) errors; POST /echo $(info_raw "$f" echo_requests)," \
        "$(info_raw "$f" echo_errors) errors; WebSocket $(info_raw "$f" ws_msgs) messages echoed" \
        "on $(info_raw "$f" ws_connects) connections, $(info_raw "$f" ws_errors) errors; bad" \
        "requests $(info_raw "$f" bad) sent, $(info_raw "$f" bad_expected) answered as expected" \
        "(4xx/505 or closed: $(info_raw "$f" bad_statuses)), $(info_raw "$f" bad_errors)" \
        "otherwise; the server logged $logged WARN/ERROR lines"
    echo "# http.soak CPU use: server $(info_raw "$f" server_cpu)% of CPU 0, the load generators" \
        "$(info_raw "$f" load_cpu)% of CPU 1 (all of them together; the load is a mix, not a" \
        "throughput figure)"
    if (($(info_raw "$f" load_cpu) >= wrk_limit)); then
        echo "# http.soak: the load generators, not the server, were the limit (>= $wrk_limit% of" \
            "their core): the server ran below its capacity"
    fi
    echo "# http.soak pass: end RSS within 10% of the first-minute RSS: $(met "$ratio" '<=' 1.1);" \
        "errors (other than the bad requests' expected 4xx/closes) = 0: $(met "${errs:-1}" '<=' 0)"
    if [[ $(met "$ratio" '<=' 1.1) != met || $(met "${errs:-1}" '<=' 0) != met ]]; then
        bench_verdict_fail http.soak "its pass conditions were not met (above)"
    fi
    bench_line http.soak "$ratio" ratio none 0 lower
    stop_servers
}

# 8. User-space instructions per keep-alive request under callgrind
# (bench/http/instructions.sh), weave and nginx (master_process off: the
# worker is the process), /plaintext and /json, one run each: the count is
# the same every run. lwan is left out: the build we measure stops with an
# illegal instruction under valgrind.
fig_instructions()
{
    local path name v ok s cmd
    declare -A got=()
    if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
        bench_fail http.plaintext_instructions "valgrind is not installed (scripts/deps.sh bench)"
        return 0
    fi
    render nginx.conf "${port[nginx_cg]}" "$tmp/nginx_cg.conf" nginx_cg 4096
    sed -i 's/^master_process on;/master_process off;/' "$tmp/nginx_cg.conf"
    echo "# http.*_instructions: user-space instructions per request (callgrind; the kernel's" \
        "part is not counted), wrk -t1 -c32 keep-alive for ${secs_cpu} s after a 1 s warm-up;" \
        "weave WEAVE_SHARDS=1, nginx with master_process off (its worker alone); one run each," \
        "the count being the same from run to run"
    for path in /plaintext /json; do
        name=http.${path#/}_instructions
        ok=1
        for s in weave nginx; do
            mkdir -p "$tmp/cg_$s"
            # the environment is set outside valgrind, which does not follow
            # an exec (of env) into the program
            if [[ $s == weave ]]; then
                cmd=("$bin")
            else
                cmd=(nginx -p "$tmp" -c "$tmp/nginx_cg.conf" -e "$tmp/nginx_cg-error.log")
            fi
            if v=$(bench_run env PORT="${port[weave_cg]}" WEAVE_SHARDS=1 \
                "$here/http/instructions.sh" "$tmp/cg_$s" "${port[${s}_cg]}" "$path" \
                "$secs_cpu" "${cmd[@]}"); then
                got[$s]=$v
            else
                bench_fail "$name" "$s: $v"
                ok=0
            fi
        done
        [[ $ok == 1 ]] && bench_line "$name" "${got[weave]}" instructions nginx "${got[nginx]}" lower
    done
}

groups=(plaintext_cpu json_cpu plaintext json plaintext_pipelined_cpu static sleep10k slowloris
    instructions soak)
main_groups=" plaintext_cpu json_cpu plaintext json plaintext_pipelined_cpu static "
wanted=()
for g in ${HTTP_FIGURES:-${groups[*]}}; do
    g=${g#http.}
    [[ " ${groups[*]} " == *" $g "* ]] || {
        echo "run_http.sh: HTTP_FIGURES: no group '$g' (groups: ${groups[*]})" >&2
        exit 2
    }
    wanted+=("$g")
done

# ---------------------------------------------------------------------------

versions="nginx $(nginx -v 2>&1 | sed -n 's|.*nginx/||p'), h2o $(h2o -v 2>/dev/null | sed -n 's/^h2o version //p')"
versions+=", FastAPI $($py -c 'import fastapi, uvicorn, uvloop, httptools
print(fastapi.__version__, "on uvicorn", uvicorn.__version__, "(uvloop", uvloop.__version__ + ", httptools", httptools.__version__ + ")")' 2>/dev/null || echo "missing")"
versions+=", wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo '?')"

bench_header http "servers on CPU 0 (taskset -c 0: weave WEAVE_SHARDS=1, nginx 1 worker, h2o 1\
 thread, uvicorn 1 worker, lwan 1 thread), wrk -t1 on CPU 1 (taskset -c 1)"
echo "# anchors: $versions"
echo "# settings: weave bench_http_server with wv_http_serve's defaults (backlog 4096, head" \
    "timeout 10 s, idle timeout 60 s, compression only of text bodies >= 1 KiB; max_connections" \
    "20000); nginx: worker_processes 1, access_log off, keepalive_requests 100000000," \
    "worker_connections 4096 (16384 for http.slowloris), backlog 4096, sendfile on, its default" \
    "60 s client_header_timeout; h2o: num-threads 1, /plaintext from a 13-byte file; FastAPI:" \
    "uvicorn --loop uvloop --http httptools --workers 1 --no-access-log --backlog 4096; lwan" \
    "(LWAN_BIN, its TechEmpower sample): threads 1, keep_alive_timeout 15, quiet"
echo "# runs: ${secs_cpu} s unpipelined and ${secs_pipe} s pipelined (16 deep) at $conns" \
    "connections; static ${secs_static} s; sleep10k ${secs_sleep} s at $sleep_conns connections;" \
    "slowloris ${secs_slow} s at $conns + $slow_conns trickling connections$(
        [[ ${BENCH_LONG:-0} == 1 ]] || echo " (sleep10k and slowloris short: BENCH_LONG=1 runs 30 s)")$(
        [[ ${BENCH_LONG:-0} == 1 ]] && echo "; soak $soak_minutes min")${HTTP_FIGURES:+; only: ${wanted[*]}}"
bench_load_begin

uvicorn=("$py" -m uvicorn --app-dir "$here/http" fastapi_app:app --host 127.0.0.1 --loop uvloop
    --http httptools --workers 1 --no-access-log --log-level warning --backlog 4096)
if ! $py -c 'import fastapi, uvicorn, uvloop, httptools' 2>/dev/null; then
    down[fastapi]="Debian's python lacks fastapi/uvicorn/uvloop/httptools (scripts/deps.sh bench)"
fi

need_main=0
for g in "${wanted[@]}"; do
    [[ $main_groups != *" $g "* ]] || need_main=1
done
if [[ $need_main == 1 ]]; then
    # The files the servers answer with.
    printf '%s' "$plain_body" >"$tmp/h2o/plaintext.txt"
    head -c 4096 /dev/urandom >"$tmp/static/4k.bin"
    head -c 1048576 /dev/urandom >"$tmp/static/1m.bin"
    chmod 644 "$tmp/h2o/plaintext.txt" "$tmp/static/"*.bin
    chmod 755 "$tmp/h2o" "$tmp/static"

    start_server weave env PORT="${port[weave]}" WEAVE_SHARDS=1 STATIC_DIR="$tmp/static" "$bin"
    start_nginx nginx 4096
    if command -v h2o >/dev/null; then
        render h2o.conf "${port[h2o]}" "$tmp/h2o.conf"
        start_server h2o h2o -c "$tmp/h2o.conf"
    else
        down[h2o]="h2o is not installed (scripts/deps.sh bench)"
    fi
    [[ -n ${down[fastapi]:-} ]] || start_server fastapi "${uvicorn[@]}" --port "${port[fastapi]}"
    start_lwan
    # the floor of http.plaintext_cpu: a bare epoll loop (bench_http_floor.c)
    start_server floor "$(dirname "$bin")/bench_http_floor" "${port[floor]}"

    wait_ready weave /plaintext "$plain_body" text/plain
    also_check weave /json "$json_body" application/json
    wait_ready nginx /plaintext "$plain_body" text/plain
    also_check nginx /json "$json_body" application/json
    wait_ready h2o /plaintext "$plain_body" text/plain
    wait_ready fastapi /json "$json_body" application/json
    wait_ready lwan /plaintext "$plain_body" text/plain
    also_check lwan /json "$json_body" application/json
    wait_ready floor /plaintext "$plain_body" text/plain
    nginx_worker nginx
    lwan_pinned
    for s in weave nginx h2o fastapi lwan floor; do
        [[ -z ${down[$s]:-} ]] || echo "# $s: not available: ${down[$s]}"
    done
    if [[ -z ${down[lwan]:-} ]]; then
        echo "# lwan: LWAN_BIN (sha256 $lwan_sum...), $lwan_threads threads, all on CPU 0"
    fi
    if [[ -n ${down[weave]:-} ]]; then
        bench_fail http "weave's bench_http_server is not available"
        exit 1
    fi
fi

for g in "${wanted[@]}"; do
    [[ $main_groups == *" $g "* ]] || stop_servers
    "fig_$g"
done

stop_servers
bench_load_end
bench_finish
