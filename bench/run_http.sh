#!/usr/bin/env bash
# bench/run_http.sh: the HTTP suite (`make bench-http`; method: docs/benchmarking.md).
#
# One BENCH line per figure and anchor: http.plaintext (+ _h2o), http.json
# (+ _fastapi), http.plaintext_cpu (+ _h2o), http.json_cpu (+ _fastapi),
# http.p99, http.sleep10k, and http.static_4k / http.static_1m once
# bench_http_server serves /static/. Weave is build/release/bench_http_server;
# the anchors are Debian's nginx (1 worker), h2o (1 thread) and FastAPI on
# uvicorn with uvloop + httptools (1 worker). Every server runs on CPU 0
# (taskset -c 0; weave with WEAVE_SHARDS=1), wrk -t1 on CPU 1; weave and the
# anchors take turns, run after run (bench/http/README.md says what each
# figure measures and how).
#
#   BUILD_DIR=dir     where bench_http_server is (default: build/release)
#   BENCH_LONG=1      7 rounds and longer runs (sleep10k: 15 s instead of 5 s)
#   BENCH_ROUNDS=n    override the number of rounds
#   BENCH_VERBOSE=1   show what every run prints (wrk's own report)
#   BENCH_KEEP=1      keep the temp dir (configs, server logs, per-run details)
#   HTTP_FIGURES="plaintext json plaintext_cpu json_cpu static sleep10k"
#                     run only these groups (plaintext_cpu also gives http.p99)
#
# Ports (fixed, checked free first; readiness checks prove the answering
# process is the one started here): weave 28301, nginx 28302, h2o 28303,
# FastAPI 28304; the http.sleep10k servers: weave 28311, FastAPI 28314.

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

if [[ ${BENCH_LONG:-0} == 1 ]]; then
    secs_pipe=10 secs_cpu=6 secs_sleep=15 secs_static=6
else
    secs_pipe=5 secs_cpu=3 secs_sleep=5 secs_static=3
fi
conns=256
sleep_conns=10000
static_1m_conns=32

declare -A port=([weave]=28301 [nginx]=28302 [h2o]=28303 [fastapi]=28304
    [weave_sleep]=28311 [fastapi_sleep]=28314)
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
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "# kept $tmp"
    else
        rm -rf "$tmp"
    fi
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

render()
{
    sed -e "s|@DIR@|$tmp|g" -e "s|@PORT@|$2|g" "$here/http/$1.in" >"$tmp/$1"
}

# info_values FIGURE SERVER KEY [SCALE]: KEY of every run of SERVER in FIGURE
# (measure.sh's details), divided by SCALE, one per line.
info_values()
{
    sed -n "s/.*[[:space:]]$3=\([^[:space:]]*\).*/\1/p" "$tmp/info/$1.$2" 2>/dev/null |
        awk -v s="${4:-1}" '{ print $1 / s }'
}

# info_median FIGURE SERVER KEY [SCALE]: their median, formatted.
info_median()
{
    local v
    mapfile -t v < <(info_values "$@")
    if ((${#v[@]})); then bench_fmt "$(bench_median "${v[@]}")"; else echo "?"; fi
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

declare -A samples=() failed=()

# figure NAME UNIT BETTER MODE CONNS SECONDS PATH SERVER...: SERVER... (weave
# first, then the anchors in the order of bench/http/README.md) take turns, BENCH_ROUNDS runs
# each; then one BENCH line per anchor: NAME for the first, NAME_<anchor> for
# the others. A server that fails a run is not run again; its lines fail.
figure()
{
    local name=$1 unit=$2 better=$3 mode=$4 nconns=$5 secs=$6 path=$7
    shift 7
    local servers=("$@") s v r line anchor i label
    local -a bodyarg
    for s in "${servers[@]}"; do
        samples[$name.$s]=
        failed[$name.$s]=${down[$s]:+not available: ${down[$s]}}
        if [[ -z ${failed[$name.$s]} && -z ${size["$s $path"]:-} ]]; then
            failed[$name.$s]="not available: $path was not checked"
        fi
    done
    bodyarg=()
    [[ $mode == sleep ]] && bodyarg=("$sleep_body")
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for s in "${servers[@]}"; do
            [[ -z ${failed[$name.$s]} ]] || continue
            if v=$(bench_run "$measure" "$mode" "$nconns" "$secs" "${measured[$s]}" \
                "http://127.0.0.1:${port[$s]}$path" "${size["$s $path"]}" \
                "$tmp/info/$name.${s%_sleep}" "${bodyarg[@]}"); then
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
        label=${s%_sleep}
        if [[ -n ${failed[$name.$s]} ]]; then
            line+=" $label failed;"
        else
            # shellcheck disable=SC2086 # the samples are words
            line+=" $label $(bench_fmt_all ${samples[$name.$s]});"
        fi
    done
    echo "${line%;}"
    s=${servers[0]}
    for ((i = 1; i < ${#servers[@]}; i++)); do
        anchor=${servers[$i]%_sleep}
        label=$name
        ((i == 1)) || label=${name}_$anchor
        if [[ -n ${failed[$name.$s]} ]]; then
            bench_fail "$label" "weave: ${failed[$name.$s]}"
        elif [[ -n ${failed[$name.${servers[$i]}]} ]]; then
            bench_fail "$label" "$anchor: ${failed[$name.${servers[$i]}]}"
        else
            # shellcheck disable=SC2086
            bench_line "$label" "$(bench_median ${samples[$name.$s]})" "$unit" "$anchor" \
                "$(bench_median ${samples[$name.${servers[$i]}]})" "$better"
        fi
    done
}

# figure_ok NAME SERVER: SERVER's runs of figure NAME all succeeded.
figure_ok()
{
    [[ -z ${failed[$1.$2]-x} ]]
}

# cpu_notes NAME SERVER...: how busy the server's core and wrk's core were
# during the runs of figure NAME (medians): both near 100% would mean that
# wrk, not the server, set the pace.
cpu_notes()
{
    local name=$1 s line=
    shift
    for s in "$@"; do
        figure_ok "$name" "$s" || continue
        line+="${line:+, }$s $(info_percent "$name" "$s" server_cpu)/$(info_percent "$name" "$s" wrk_cpu)"
    done
    [[ -z $line ]] || echo "# $name CPU busy, server/wrk (% of one core, medians): $line"
}

# The figures, in groups; HTTP_FIGURES picks some (all by default).

# 1. Pipelined throughput: the server, not wrk, is the bottleneck (unpipelined,
# one wrk core is the ceiling).
fig_plaintext()
{
    figure http.plaintext req/s higher pipelined "$conns" "$secs_pipe" /plaintext weave nginx h2o
    cpu_notes http.plaintext weave nginx h2o
}

fig_json()
{
    figure http.json req/s higher pipelined "$conns" "$secs_pipe" /json weave nginx fastapi
    cpu_notes http.json weave nginx fastapi
}

# cpu_details NAME SERVER...: what the unpipelined runs reached meanwhile.
cpu_details()
{
    local name=$1 s
    shift
    for s in "$@"; do
        if figure_ok "$name" "$s"; then
            echo "# $name $s: $(info_median "$name" "$s" rps) req/s," \
                "p99 $(info_median "$name" "$s" p99_us 1000) ms, $(info_percent "$name" "$s" \
                    user_share) of its CPU time in user space (medians)"
        fi
    done
}

# 2. Server CPU per request without pipelining (wrk-bound, so req/s alone
# would not rank the servers); the plaintext runs also give http.p99.
fig_plaintext_cpu()
{
    local pw pn
    figure http.plaintext_cpu us lower cpu "$conns" "$secs_cpu" /plaintext weave nginx h2o
    cpu_details http.plaintext_cpu weave nginx h2o
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
    figure http.json_cpu us lower cpu "$conns" "$secs_cpu" /json weave nginx fastapi
    cpu_details http.json_cpu weave nginx fastapi
}

# 3. Static files, once weave serves them ($STATIC_DIR under /static/).
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
        cpu_notes http.static_4k weave nginx
        figure http.static_1m MB/s higher mbps "$static_1m_conns" "$secs_static" /static/1m.bin \
            weave nginx
        cpu_notes http.static_1m weave nginx
    else
        bench_fail http.static_4k "a server did not serve the files right (above)"
        bench_fail http.static_1m "a server did not serve the files right (above)"
    fi
}

# 4. The chapter's /async-endpoint (a 1 s sleep) at 10,000 connections, on
# servers of its own (their peak RSS is this figure's), started once the
# others are stopped: every connection is a file descriptor (the open-file
# limit may be 20,000).
fig_sleep10k()
{
    local s least errs late answered
    start_server weave_sleep env PORT="${port[weave_sleep]}" WEAVE_SHARDS=1 "$bin"
    if [[ -z ${down[fastapi]:-} ]]; then
        start_server fastapi_sleep "${uvicorn[@]}" --port "${port[fastapi_sleep]}"
    else
        down[fastapi_sleep]=${down[fastapi]}
    fi
    wait_ready weave_sleep /async-endpoint "$sleep_body" application/json
    wait_ready fastapi_sleep /async-endpoint "$sleep_body" application/json
    figure http.sleep10k req/s higher sleep "$sleep_conns" "$secs_sleep" /async-endpoint \
        weave_sleep fastapi_sleep
    for s in weave fastapi; do
        figure_ok http.sleep10k "${s}_sleep" || continue
        # Every request answered: no socket error, no response later than
        # wrk's 5 s timeout, and every connection kept busy: in each run at
        # least 98% of the SECONDS - 1 responses per connection a 1 s sleep
        # allows. (Every response was a 200 with the exact body, or the
        # figure would have failed.)
        least=$(info_values http.sleep10k "$s" per_conn | sort -g | head -n 1)
        errs=$(info_values http.sleep10k "$s" sock_errors | sort -g | tail -n 1)
        late=$(info_values http.sleep10k "$s" timeouts | sort -g | tail -n 1)
        answered=no
        awk -v m="$least" -v d="$secs_sleep" -v e="$errs" -v t="$late" \
            'BEGIN { exit !(m >= 0.98 * (d - 1) && e == 0 && t == 0) }' && answered=yes
        echo "# http.sleep10k $s: every request answered: $answered (worst run: $errs socket" \
            "errors, $late responses over 5 s, $(bench_fmt "$least") responses per connection" \
            "of the $((secs_sleep - 1)) a 1 s sleep allows in ${secs_sleep} s; every response" \
            "a 200 with the exact body); p99 $(info_median http.sleep10k "$s" p99_us 1000000)" \
            "s; wrk's own req/s (whole run) $(info_median http.sleep10k "$s" rps) (medians)"
        # One server for all the runs: VmHWM after each run is the peak so
        # far; VmRSS before each run shows what the previous ones left behind.
        # shellcheck disable=SC2046 # one number per line, split on purpose
        echo "# http.sleep10k $s: peak RSS $(info_max http.sleep10k "$s" hwm_kb 1024) MB" \
            "(VmHWM after each run: $(bench_fmt_all $(info_values http.sleep10k "$s" hwm_kb 1024))" \
            "MB; VmRSS before each run: $(bench_fmt_all $(info_values http.sleep10k "$s" rss0_kb 1024)) MB)"
    done
    stop_servers
}

groups=(plaintext json plaintext_cpu json_cpu static sleep10k)
wanted=()
for g in ${HTTP_FIGURES:-${groups[*]}}; do
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
 thread, uvicorn 1 worker), wrk -t1 on CPU 1 (taskset -c 1)"
echo "# anchors: $versions"
echo "# runs: ${secs_pipe} s pipelined (16 deep) and ${secs_cpu} s unpipelined at $conns" \
    "connections; static ${secs_static} s; sleep10k ${secs_sleep} s at $sleep_conns" \
    "connections${HTTP_FIGURES:+; only: ${wanted[*]}}"
bench_load_begin

uvicorn=("$py" -m uvicorn --app-dir "$here/http" fastapi_app:app --host 127.0.0.1 --loop uvloop
    --http httptools --workers 1 --no-access-log --log-level warning --backlog 4096)
if ! $py -c 'import fastapi, uvicorn, uvloop, httptools' 2>/dev/null; then
    down[fastapi]="Debian's python lacks fastapi/uvicorn/uvloop/httptools (scripts/deps.sh bench)"
fi

if [[ " ${wanted[*]} " != " sleep10k " ]]; then
    # The files the servers answer with.
    printf '%s' "$plain_body" >"$tmp/h2o/plaintext.txt"
    head -c 4096 /dev/urandom >"$tmp/static/4k.bin"
    head -c 1048576 /dev/urandom >"$tmp/static/1m.bin"
    chmod 644 "$tmp/h2o/plaintext.txt" "$tmp/static/"*.bin
    chmod 755 "$tmp/h2o" "$tmp/static"

    start_server weave env PORT="${port[weave]}" WEAVE_SHARDS=1 STATIC_DIR="$tmp/static" "$bin"
    if command -v nginx >/dev/null; then
        render nginx.conf "${port[nginx]}"
        start_server nginx nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log"
    else
        down[nginx]="nginx is not installed (scripts/deps.sh bench)"
    fi
    if command -v h2o >/dev/null; then
        render h2o.conf "${port[h2o]}"
        start_server h2o h2o -c "$tmp/h2o.conf"
    else
        down[h2o]="h2o is not installed (scripts/deps.sh bench)"
    fi
    [[ -n ${down[fastapi]:-} ]] || start_server fastapi "${uvicorn[@]}" --port "${port[fastapi]}"

    wait_ready weave /plaintext "$plain_body" text/plain
    also_check weave /json "$json_body" application/json
    wait_ready nginx /plaintext "$plain_body" text/plain
    also_check nginx /json "$json_body" application/json
    wait_ready h2o /plaintext "$plain_body" text/plain
    wait_ready fastapi /json "$json_body" application/json
    if [[ -z ${down[nginx]:-} ]]; then
        # CPU and memory are the worker's (worker_processes 1: the master's only child).
        read -r "measured[nginx]" _ <"/proc/${pid[nginx]}/task/${pid[nginx]}/children" || true
        [[ -n ${measured[nginx]} ]] || down[nginx]="no worker process"
    fi
    for s in weave nginx h2o fastapi; do
        [[ -z ${down[$s]:-} ]] || echo "# $s: not available: ${down[$s]}"
    done
    if [[ -n ${down[weave]:-} ]]; then
        bench_fail http "weave's bench_http_server is not available"
        exit 1
    fi
fi

for g in "${wanted[@]}"; do
    [[ $g == sleep10k ]] && stop_servers
    "fig_$g"
done

stop_servers
bench_load_end
bench_finish
