#!/usr/bin/env bash
# bench/run_api.sh: the api suite (`make bench-api`; method: docs/benchmarking.md):
# a FastAPI-style route, a JSON body validated into a declared model and
# echoed back, in weave (include/weave/schema.h, include/weave/auth.h) and in
# FastAPI with the same pydantic model.
#
#   api.validate  server CPU µs per request: POST /validate of a 10-field JSON
#                 body (bench/api/model.h: strings with length limits, ints
#                 with ranges, a float, a bool, an enum, a nested object, an
#                 array of strings), decoded and validated into the C struct
#                 (wv_schema_decode_body) and encoded back (wv_schema_encode).
#                 weave: build/release/bench_api_server. Anchor: FastAPI with
#                 the same model in pydantic (bench/api/fastapi_app.py) on
#                 uvicorn + uvloop + httptools, 1 worker, --no-access-log.
#   api.jwt       the same at POST /jwt/validate behind an HS256 bearer JWT
#                 (wv_auth_jwt on the /jwt group), the token made once by
#                 PyJWT. Anchor: FastAPI's HTTPBearer + PyJWT's jwt.decode
#                 in a dependency.
#   api.decode    ns per body, in-process on CPU 0: bench_api decode N, a C
#                 loop over wv_schema_decode of the same bytes. Anchor:
#                 bench/api/parse_raw.py, Item.parse_raw in a timeit loop.
#
# Debian's FastAPI (0.92) runs on Debian's pydantic 1.10 (pure Python, not
# pydantic 2's Rust core): the header prints the versions the anchor
# reported. Both servers run on CPU 0 (taskset -c 0; weave with
# WEAVE_SHARDS=1), wrk -t1 on CPU 1, the same connections for both (keep-
# alive, no pipelining), weave and FastAPI taking turns run after run. Server
# CPU is utime + stime of the server process around each run
# (bench/api/measure.sh), over the requests wrk completed.
#
# Checked before any timing, on each server (by curl): the echo of
# /validate and of /jwt/validate with the token is the posted body byte for
# byte (application/json); a body with age 200 is answered 422; /jwt/validate
# is answered 401 with WWW-Authenticate: Bearer without the token, and 401
# with a token signed with another key. Each run then fails unless wrk
# completed requests, none was a non-2xx, and the bytes read add up to
# whole echoes of the checked size.
#
#   BUILD_DIR=dir     where bench_api_server and bench_api are (build/release)
#   BENCH_LONG=1      7 rounds, 6 s runs, 1,000,000 / 100,000 decodes
#   BENCH_ROUNDS=n    override the number of rounds
#   BENCH_SECONDS=s   the length of each wrk run (default 3; 6 with BENCH_LONG=1)
#   BENCH_VERBOSE=1   show what every run prints (wrk's own report)
#   BENCH_KEEP=1      keep the temp dir (body, key, token, logs, per-run details)
#   API_CONNS=n       wrk's connections (default 256, as http.json_cpu)
#   API_FIGURES="validate jwt decode"   run only these
#
# Ports (fixed, checked free first; readiness proves the listener is the
# process started here): weave 28701, FastAPI 28702.

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$here/../build/release}
server_bin=$build/bench_api_server
decode_bin=$build/bench_api
py=/usr/bin/python3 # Debian's; the python3 on PATH may be another one
measure=$here/api/measure.sh

for b in "$server_bin" "$decode_bin"; do
    if [[ ! -x $b ]]; then
        echo "run_api.sh: no $b; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in wrk curl ss taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "run_api.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    fi
done
if ! "$py" -c 'import fastapi, uvicorn, uvloop, httptools, pydantic, jwt' 2>/dev/null; then
    echo "run_api.sh: $py lacks fastapi, uvicorn, uvloop, httptools, pydantic or jwt" \
        "(python3-fastapi python3-uvicorn python3-uvloop python3-httptools python3-pydantic" \
        "python3-jwt)" >&2
    exit 1
fi
if [[ $(nproc) -lt 2 ]]; then
    echo "run_api.sh: needs 2 CPUs (server on CPU 0, wrk on CPU 1), this machine has $(nproc)" >&2
    exit 1
fi

if [[ ${BENCH_LONG:-0} == 1 ]]; then
    secs=${BENCH_SECONDS:-6} n_c=1000000 n_py=100000
else
    secs=${BENCH_SECONDS:-3} n_c=200000 n_py=20000
fi
conns=${API_CONNS:-256}
wrk_limit=90 # wrk at or over this % of its core: the load generator was the limit
declare -A target=([api.validate]=10 [api.jwt]=10 [api.decode]=5)

read -r -a wanted <<<"${API_FIGURES:-validate jwt decode}"
for g in "${wanted[@]}"; do
    case ${g#api.} in
    validate | jwt | decode) ;;
    *)
        echo "run_api.sh: unknown figure '$g' (API_FIGURES: validate jwt decode)" >&2
        exit 2
        ;;
    esac
done
wants()
{
    [[ " ${wanted[*]#api.} " == *" $1 "* ]]
}

declare -A port=([weave]=28701 [fastapi]=28702)
declare -A pid=() size=()
started=()

tmp=$(mktemp -d /tmp/weave-bench-api.XXXXXX)
mkdir -p "$tmp/info"

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

# The body (bench_api's bytes: the same for wrk, the checks and parse_raw.py),
# an HMAC secret and a token PyJWT signs with it, valid for a day; and a
# token of the same claims signed with another secret, which must be refused.
"$decode_bin" body >"$tmp/body.json"
"$py" -c 'import secrets; print(secrets.token_hex(32))' >"$tmp/jwt.key"
"$py" -c 'import secrets; print(secrets.token_hex(32))' >"$tmp/other.key"
make_token()
{
    "$py" - "$1" <<'EOF'
import sys, time, jwt
key = open(sys.argv[1], "rb").read().rstrip(b"\n")
now = int(time.time())
print(jwt.encode({"sub": "bench", "iat": now, "exp": now + 86400}, key, algorithm="HS256"))
EOF
}
token=$(make_token "$tmp/jwt.key")
bad_token=$(make_token "$tmp/other.key")
[[ $token == *.*.* && $bad_token == *.*.* ]] || {
    echo "run_api.sh: PyJWT made no token" >&2
    exit 1
}
"$py" - "$tmp/body.json" "$tmp/bad.json" <<'EOF'
import json, sys
body = json.load(open(sys.argv[1]))
body["age"] = 200
open(sys.argv[2], "w").write(json.dumps(body, separators=(",", ":")))
EOF

# start_server NAME CMD...: CMD on CPU 0 in the background, unless another
# process already listens on the port.
declare -A down=()
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

# post NAME PATH BODY_FILE [TOKEN]: one POST; sets code, the headers in
# $tmp/NAME.h, the body in $tmp/NAME.b and the whole response's size in resp.
post()
{
    local name=$1 path=$2 file=$3 tok=${4:-} out hsize bsize
    local -a auth=()
    [[ -z $tok ]] || auth=(-H "Authorization: Bearer $tok")
    code=000 resp=0
    out=$(curl -sS --max-time 5 -D "$tmp/$name.h" -o "$tmp/$name.b" \
        -w '%{http_code} %{size_header} %{size_download}' -H 'Content-Type: application/json' \
        "${auth[@]}" --data-binary "@$file" "http://127.0.0.1:${port[$name]}$path" 2>&1) || return 1
    read -r code hsize bsize <<<"$out"
    resp=$((hsize + bsize))
}

# check_server NAME: the answers every figure relies on (see the top); on
# failure sets down[NAME] to the reason.
check_server()
{
    local name=$1 path
    for path in /validate /jwt/validate; do
        post "$name" "$path" "$tmp/body.json" "$token" || true
        if [[ $code != 200 ]]; then
            down[$name]="POST $path answered $code, not 200: $(head -c 200 "$tmp/$name.b")"
            return 0
        fi
        if ! cmp -s "$tmp/$name.b" "$tmp/body.json"; then
            down[$name]="POST $path echoed another body: $(head -c 300 "$tmp/$name.b")"
            return 0
        fi
        if ! grep -qi '^content-type: application/json' "$tmp/$name.h"; then
            down[$name]="POST $path: the Content-Type is not application/json"
            return 0
        fi
        size["$name $path"]=$resp
    done
    post "$name" /validate "$tmp/bad.json" || true
    if [[ $code != 422 ]] || ! grep -q '"age"' "$tmp/$name.b"; then
        down[$name]="POST /validate with age 200 answered $code, not 422 naming age"
        return 0
    fi
    post "$name" /jwt/validate "$tmp/body.json" || true
    if [[ $code != 401 ]] || ! grep -qi '^www-authenticate: bearer' "$tmp/$name.h"; then
        down[$name]="POST /jwt/validate without a token answered $code, not 401 with"
        down[$name]+=" WWW-Authenticate: Bearer"
        return 0
    fi
    post "$name" /jwt/validate "$tmp/body.json" "$bad_token" || true
    if [[ $code != 401 ]]; then
        down[$name]="POST /jwt/validate with a token signed with another key answered $code, not 401"
        return 0
    fi
}

# wait_ready NAME: within 30 s the process started as NAME listens on its
# port and passes check_server.
wait_ready()
{
    local name=$1 p i
    [[ -z ${down[$name]:-} ]] || return 0
    p=${pid[$name]}
    for ((i = 0; i < 300; i++)); do
        if ! alive "$p"; then
            down[$name]="exited at start: $(tail -n 3 "$tmp/$name.log" | tr '\n' ' ')"
            return 0
        fi
        if ss -ltnpH "sport = :${port[$name]}" | grep -q "pid=$p,"; then
            check_server "$name"
            return 0
        fi
        sleep 0.1
    done
    down[$name]="not listening after 30 s"
}

info_values_of()
{
    info_values "$1" "$2" "$3"
}

# notes NAME: every run's server and wrk CPU, the req/s, the p99; whether
# wrk was the limit; and the ratio against the team's target.
notes()
{
    local name=$1 s sc wc
    for s in weave fastapi; do
        [[ -s $tmp/info/$name.$s ]] || continue
        echo "# $name $s: server CPU $(info_pcts "$name" "$s" server_cpu) of CPU 0, wrk" \
            "$(info_pcts "$name" "$s" wrk_cpu) of CPU 1; $(info_runs "$name" "$s" rps) req/s;" \
            "p99 $(info_runs "$name" "$s" p99_us 1000) ms; $(info_values "$name" "$s" requests | paste -sd ' ')" \
            "requests, all 2xx"
        mapfile -t sc < <(info_values_of "$name" "$s" server_cpu)
        mapfile -t wc < <(info_values_of "$name" "$s" wrk_cpu)
        if awk -v w="$(bench_median "${wc[@]}")" -v l="$wrk_limit" 'BEGIN { exit !(w >= l) }'; then
            echo "# $name $s: the load generator, not the server, was the limit (wrk >= $wrk_limit%" \
                "of its core): the req/s are wrk's ceiling; the server CPU per request is the" \
                "server's own and stands"
        elif awk -v c="$(bench_median "${sc[@]}")" -v l="$wrk_limit" 'BEGIN { exit !(c < l) }'; then
            echo "# $name $s: neither the server nor wrk reached $wrk_limit% of its core: if" \
                "neither waits on the other, other processes took the cores (see # load)"
        fi
    done
}

# verdict NAME LINE: the ratio of a BENCH line against the team's target.
verdict()
{
    local name=$1 line=$2 ratio
    ratio=$(sed -n 's/.* ratio=\([0-9.]*\).*/\1/p' <<<"$line")
    [[ -n $ratio ]] || return 0
    if awk -v r="$ratio" -v t="${target[$name]}" 'BEGIN { exit !(r >= t) }'; then
        echo "# $name: ${ratio}x, target >= ${target[$name]}x: met"
    else
        echo "# $name: ${ratio}x, target >= ${target[$name]}x: NOT met"
    fi
}

# http_figure NAME PATH [TOKEN]: weave and FastAPI take turns.
http_figure()
{
    local name=$1 path=$2 tok=${3:-} s line
    for s in weave fastapi; do
        if [[ -n ${down[$s]:-} ]]; then
            bench_fail "$name" "$s is not available: ${down[$s]}"
            return 0
        fi
    done
    # shellcheck disable=SC2034 # read by bench_figure through namerefs
    local -a a=("$measure" "$conns" "$secs" "${pid[weave]}" "http://127.0.0.1:${port[weave]}$path"
        "${size["weave $path"]}" "$tmp/info/$name.weave" "$tmp/body.json" "$tok")
    # shellcheck disable=SC2034
    local -a b=("$measure" "$conns" "$secs" "${pid[fastapi]}"
        "http://127.0.0.1:${port[fastapi]}$path" "${size["fastapi $path"]}"
        "$tmp/info/$name.fastapi" "$tmp/body.json" "$tok")
    line=$(bench_figure "$name" us fastapi lower a b)
    echo "$line"
    [[ $line != *FAILED* ]] || BENCH_FAILED=1
    notes "$name"
    verdict "$name" "$(grep '^BENCH ' <<<"$line" || true)"
}

bench_header api "servers (weave WEAVE_SHARDS=1, FastAPI 1 uvicorn worker) on CPU 0 (taskset -c 0), wrk -t1 -c$conns on CPU 1, ${secs} s runs; api.decode on CPU 0"
bench_load_begin

if wants validate || wants jwt; then
    start_server weave env PORT="${port[weave]}" WEAVE_SHARDS=1 JWT_KEY_FILE="$tmp/jwt.key" \
        "$server_bin"
    start_server fastapi env JWT_KEY_FILE="$tmp/jwt.key" "$py" -m uvicorn --app-dir "$here/api" \
        fastapi_app:app --host 127.0.0.1 --port "${port[fastapi]}" --loop uvloop --http httptools \
        --workers 1 --no-access-log --log-level warning --backlog 4096
    wait_ready weave
    wait_ready fastapi
    if [[ -z ${down[fastapi]:-} ]]; then
        settings=$(curl -sS --max-time 5 "http://127.0.0.1:${port[fastapi]}/settings" || true)
        echo "# FastAPI: uvicorn --loop uvloop --http httptools --workers 1 --no-access-log;" \
            "versions $settings (Debian's pydantic 1.10: pure Python, not pydantic 2's Rust core)"
    fi
    echo "# body: $(wc -c <"$tmp/body.json") bytes, $(cat "$tmp/body.json")"
    for s in weave fastapi; do
        if [[ -z ${down[$s]:-} ]]; then
            echo "# $s checked: the echo equals the body, age 200 is a 422, /jwt/validate is a" \
                "401 without the token and with one signed with another key"
        else
            echo "# $s: not available: ${down[$s]}"
        fi
    done
    if wants validate; then http_figure api.validate /validate; fi
    if wants jwt; then http_figure api.jwt /jwt/validate "$token"; fi
    stop_servers
fi

if wants decode; then
    # shellcheck disable=SC2034 # read by bench_figure through namerefs
    weave=(taskset -c 0 "$decode_bin" decode "$n_c")
    # shellcheck disable=SC2034
    anchor=(taskset -c 0 "$py" "$here/api/parse_raw.py" "$tmp/body.json" "$n_py")
    echo "# api.decode: $n_c decodes (weave) and $n_py parse_raw (pydantic) a run, each after" \
        "a tenth as many of warm-up, checked before and after"
    line=$(bench_figure api.decode ns pydantic lower weave anchor)
    echo "$line"
    [[ $line != *FAILED* ]] || BENCH_FAILED=1
    verdict api.decode "$(grep '^BENCH ' <<<"$line" || true)"
fi

bench_load_end
bench_finish
