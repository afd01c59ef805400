#!/usr/bin/env bash
# bench/run_tls.sh: the TLS and dial suite (`make bench-tls`; method: docs/benchmarking.md).
#
# One BENCH line per figure:
#   tls.plaintext_cpu  server CPU per request, keep-alive HTTPS (TLS 1.3), wrk,
#                      no pipelining, /plaintext: weave against nginx
#   tls.handshake      server CPU per new TLS 1.3 connection (full handshake,
#                      ECDSA P-256, one request each), h2load: weave against nginx
#                      (the handshakes per second are on '#' lines)
#   net.dial           plain TCP dial + close, dials/s from one fiber:
#                      weave's wv_dial_host against asyncio.open_connection on uvloop
#   net.dial_tls       the same with a verified TLS 1.3 handshake
# Weave's server is build/release/bench_http_server over HTTPS (TLS_CERT,
# TLS_KEY; WEAVE_SHARDS=1), the anchor Debian's nginx (1 worker), with the
# same ECDSA P-256 certificate (tests/make_certs.sh) and neither issuing
# session tickets. Servers on CPU 0 (taskset -c 0), wrk / h2load / the dial
# clients on CPU 1; weave and the anchor take turns, run after run
# (bench/README.md, "The tls suite", says what each figure measures and why
# these load generators).
#
#   BUILD_DIR=dir     where bench_http_server and bench_dial are (default: build/release)
#   BENCH_LONG=1      7 rounds and longer runs
#   BENCH_ROUNDS=n    override the number of rounds
#   BENCH_VERBOSE=1   show what every run prints (wrk's and h2load's reports)
#   BENCH_KEEP=1      keep the temp dir (configs, certificates, logs, per-run details)
#
# Ports (fixed, checked free first; readiness checks prove the answering
# process is the one started here): weave HTTPS 28401, nginx HTTPS 28402,
# nginx plain (net.dial's server) 28410-28425.

# The command arrays (weave, anchor) are passed to bench_figure by name.
# shellcheck disable=SC2034 source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$here/../build/release}
server_bin=$build/bench_http_server
dial_bin=$build/bench_dial
py=/usr/bin/python3 # Debian's; the python3 on PATH may be another one
measure=$here/http/measure.sh
handshake=$here/tls/handshake.sh
measure_dial=$here/net/measure_dial.sh

for b in "$server_bin" "$dial_bin"; do
    if [[ ! -x $b ]]; then
        echo "run_tls.sh: no $b; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in wrk nginx openssl curl ss taskset; do
    if ! command -v "$tool" >/dev/null; then
        echo "run_tls.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    fi
done
if [[ $(nproc) -lt 2 ]]; then
    echo "run_tls.sh: needs 2 CPUs (servers on CPU 0, load on CPU 1), this machine has $(nproc)" >&2
    exit 1
fi

if [[ ${BENCH_LONG:-0} == 1 ]]; then
    secs_cpu=6 hs_requests=20000 dial_n=19000 dial_tls_n=3000
else
    secs_cpu=3 hs_requests=6000 dial_n=10000 dial_tls_n=1000
fi
conns=256    # tls.plaintext_cpu, as http.plaintext_cpu
hs_conns=32  # tls.handshake: h2load clients, each one connection at a time
body='Hello, World!'

declare -A port=([weave]=28401 [nginx]=28402)
dial_first=28410 dial_last=28425 # net.dial's server listens on all 16 (see fig_dial)
declare -A pid=()      # the process started (nginx: its master)
declare -A measured=() # the process whose CPU is read (nginx: its worker)
declare -A down=()     # why a server is not available
declare -A size=()     # bytes of one whole /plaintext response
declare -A tls_info=() # what the TLS check saw
started=()
why=

tmp=$(mktemp -d /tmp/weave-bench-tls.XXXXXX)
chmod 755 "$tmp" # nginx's worker runs as nobody and reads the certificate here
mkdir -p "$tmp/info" "$tmp/nginx-tmp"
certs=$tmp/certs

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

# start_server NAME PORT... -- CMD...: start CMD on CPU 0 in the background,
# unless someone else already listens on one of its ports.
start_server()
{
    local name=$1 p
    shift
    while [[ $1 != -- ]]; do
        if [[ -n $(ss -ltnH "sport = :$1") ]]; then
            down[$name]="port $1 is already taken by another process"
            return 0
        fi
        shift
    done
    shift
    taskset -c 0 "$@" >"$tmp/$name.log" 2>&1 &
    pid[$name]=$!
    measured[$name]=$!
    started+=("$name")
}

# https_check NAME SERVER_HEADER: GET /plaintext over HTTPS (HTTP/1.1, the
# server verified against the test CA as localhost): a 200 with exactly the
# 13-byte body, Content-Type text/plain, a Date header and a Server header
# starting with SERVER_HEADER (which server answered). Records the size of
# the whole response; on failure returns 1 with the reason in $why.
https_check()
{
    local name=$1 server=$2 out code hsize bsize
    why=
    if ! out=$(curl -sS --http1.1 --max-time 5 --cacert "$certs/ca.pem" \
        --resolve "localhost:${port[$name]}:127.0.0.1" -D "$tmp/$name.h" -o "$tmp/$name.b" \
        -w '%{http_code} %{size_header} %{size_download}' \
        "https://localhost:${port[$name]}/plaintext" 2>&1); then
        why="GET /plaintext failed: $out"
    else
        read -r code hsize bsize <<<"$out"
        if [[ $code != 200 ]]; then
            why="GET /plaintext answered $code, not 200"
        elif [[ $(cat "$tmp/$name.b") != "$body" || $bsize != "${#body}" ]]; then
            why="GET /plaintext answered another body: $(head -c 80 "$tmp/$name.b")"
        elif ! grep -qi "^server: $server" "$tmp/$name.h"; then
            why="GET /plaintext: the Server header is not $server*: $(grep -i '^server:' \
                "$tmp/$name.h" | tr -d '\r')"
        elif ! grep -qi '^date: ' "$tmp/$name.h"; then
            why="GET /plaintext: no Date header"
        elif ! grep -qi '^content-type: text/plain' "$tmp/$name.h"; then
            why="GET /plaintext: Content-Type is not text/plain"
        fi
    fi
    [[ -z $why ]] || return 1
    size[$name]=$((hsize + bsize))
}

# wait_ready NAME SERVER_HEADER: within 15 s, the process started as NAME
# (and not some other one) listens on its port and answers /plaintext right.
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
            https_check "$name" "$2" && return 0
        fi
        sleep 0.1
    done
    down[$name]="not ready after 15 s${why:+: $why}"
}

# s_client NAME ARGS...: one openssl s_client connection to NAME's port
# (TLS 1.3, SNI localhost, verified against the test CA) sending one request
# with Connection: close and reading the whole answer; its output.
s_client()
{
    local name=$1
    shift
    printf 'GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client -connect "127.0.0.1:${port[$name]}" -servername localhost \
            -CAfile "$certs/ca.pem" -verify_hostname localhost -verify_return_error -tls1_3 \
            -ign_eof "$@" 2>&1 || true
}

# tls_check NAME: what the server's TLS does, as a client offering what
# wrk (OpenSSL's default order) and h2load (AES-128-GCM first) offer: the
# protocol, cipher suite and key exchange group chosen, whether the
# certificate verified, how many session tickets it sends, and whether a
# second connection offering the first one's session is resumed.
# tls_info[NAME] = "TLSv1.3 SUITE GROUP", tls_info[NAME.h2load] = the suite
# chosen from h2load's order, tls_info[NAME.tickets], tls_info[NAME.resumed].
tls_check()
{
    local name=$1 out proto suite group verify
    [[ -z ${down[$name]:-} ]] || return 0
    out=$(s_client "$name" -sess_out "$tmp/$name.sess")
    read -r proto suite < <(sed -n 's/^New, \(TLSv[0-9.]*\), Cipher is \(.*\)/\1 \2/p' <<<"$out" |
        head -n 1) || true
    group=$(sed -n 's/^Server Temp Key: \([^,]*\),.*/\1/p' <<<"$out" | head -n 1)
    verify=$(sed -n 's/^Verify return code: \([0-9]*\).*/\1/p' <<<"$out" | tail -n 1)
    if [[ ${proto:-} != TLSv1.3 || $verify != 0 || $out != *"$body"* ]]; then
        down[$name]="the TLS check failed (protocol ${proto:-none}, verify code ${verify:-none}):"
        down[$name]+=" $(grep -i -m 2 'error\|fail' <<<"$out" | tr '\n' ' ')"
        return 0
    fi
    tls_info[$name]="$proto $suite ${group:-?}"
    tls_info[$name.tickets]=$(grep -c 'Post-Handshake New Session Ticket' <<<"$out" || true)
    out=$(s_client "$name" -sess_in "$tmp/$name.sess")
    if grep -q '^Reused, ' <<<"$out"; then tls_info[$name.resumed]=yes; else tls_info[$name.resumed]=no; fi
    out=$(s_client "$name" \
        -ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256)
    tls_info[$name.h2load]=$(sed -n 's/^New, TLSv1.3, Cipher is \(.*\)/\1/p' <<<"$out" | head -n 1)
}

# info_pct FIGURE SERVER KEY: the median of a percentage, as "57%".
info_pct()
{
    local v
    mapfile -t v < <(info_values "$@")
    if ((${#v[@]})); then printf '%.0f%%' "$(bench_median "${v[@]}")"; else echo "?"; fi
}

# busy_flag FIGURE WHAT KEY SERVER...: a warning line when the median of KEY
# (a % of one core) reached 90% in a server's runs: WHAT set the pace.
busy_flag()
{
    local fig=$1 what=$2 key=$3 s m
    shift 3
    for s in "$@"; do
        m=$(info_median "$fig" "$s" "$key")
        [[ $m != "?" ]] || continue
        if awk -v m="$m" 'BEGIN { exit !(m >= 90) }'; then
            echo "# $fig ($s): $what used $(info_pct "$fig" "$s" "$key") of its core: it, not" \
                "what is measured, set the pace of these runs"
        fi
    done
}

# ---------------------------------------------------------------------------

ktls=$($py - <<'PY' 2>&1 || true
import errno, socket
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname()); a, _ = l.accept()
try:
    c.setsockopt(socket.IPPROTO_TCP, 31, b"tls")  # TCP_ULP
    print("available (setsockopt TCP_ULP \"tls\" succeeded); neither server here uses it")
except OSError as e:
    print("not available (setsockopt TCP_ULP \"tls\": %s: %s): TLS records are encrypted"
          " in user space by OpenSSL on both sides" % (errno.errorcode.get(e.errno, e.errno),
                                                       e.strerror))
PY
)
read -r port_lo port_hi < /proc/sys/net/ipv4/ip_local_port_range
tw_reuse=$(cat /proc/sys/net/ipv4/tcp_tw_reuse)
nports=$((port_hi - port_lo + 1))
# Each plain dial leaves a TIME_WAIT socket on the client's side (the client
# closes first), holding its 4-tuple for 60 s, or 1 s on loopback with
# tcp_tw_reuse (1, or 2: loopback only). The dials go to 16 server ports in
# turn, and an ephemeral port is free again for another server port: a run
# must fit in 16 times the range (every run of the figure without
# tcp_tw_reuse, 3 clients taking turns).
dial_ports=$((dial_last - dial_first + 1))
dial_warm=$((dial_n / 20 > 50 ? dial_n / 20 : 50))
if [[ $tw_reuse == 0 ]]; then
    max_dials=$((nports * dial_ports * 8 / 10 / (3 * BENCH_ROUNDS)))
else
    max_dials=$((nports * dial_ports * 8 / 10))
fi
if ((dial_n + dial_warm > max_dials)); then
    dial_n=$((max_dials * 20 / 21))
fi

uvloop_version=$($py -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo missing)
versions="nginx $(nginx -v 2>&1 | sed -n 's|.*nginx/||p')"
versions+=", wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || echo '?')"
versions+=", h2load $(h2load --version 2>/dev/null | sed -n 's|.*nghttp2/||p' | grep . || echo missing)"
versions+=", $(openssl version | awk '{ print $1, $2 }')"
versions+=", Python $($py -c 'import platform; print(platform.python_version())') with uvloop"
versions+=" $uvloop_version"

bench_header tls "servers on CPU 0 (taskset -c 0: weave WEAVE_SHARDS=1, nginx 1 worker),\
 wrk -t1 / h2load -t1 / the dial clients (1 shard; 1 event loop) on CPU 1 (taskset -c 1)"
echo "# anchors: $versions"
echo "# kTLS: $ktls"
echo "# runs: tls.plaintext_cpu ${secs_cpu} s at $conns keep-alive connections (wrk, no" \
    "pipelining); tls.handshake $hs_requests requests, each on a new connection, $hs_conns at" \
    "a time (h2load); net.dial $dial_n and net.dial_tls $dial_tls_n dials per run (after" \
    "a warm-up of 1/20 of that, at least 50)"
bench_load_begin

bash "$here/../tests/make_certs.sh" "$certs"
chmod 644 "$certs"/server.pem "$certs"/server.key "$certs"/ca.pem
chmod 755 "$certs"

start_server weave "${port[weave]}" -- env TLS_RESUMPTION=0 \
    PORT="${port[weave]}" WEAVE_SHARDS=1 TLS_CERT="$certs/server.pem" \
    TLS_KEY="$certs/server.key" "$server_bin"
for ((p = dial_first; p <= dial_last; p++)); do
    echo "listen 127.0.0.1:$p backlog=4096;"
done >"$tmp/dial-listen.conf"
sed -e "s|@DIR@|$tmp|g" -e "s|@PORT@|${port[nginx]}|g" \
    -e "s|@CERT@|$certs/server.pem|g" -e "s|@KEY@|$certs/server.key|g" \
    "$here/tls/nginx.conf.in" >"$tmp/nginx.conf"
# shellcheck disable=SC2046 # one port per word
start_server nginx "${port[nginx]}" $(seq "$dial_first" "$dial_last") -- \
    nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log"

wait_ready weave weave
wait_ready nginx nginx/
if [[ -z ${down[nginx]:-} ]]; then
    # CPU is the worker's (worker_processes 1: the master's only child).
    read -r "measured[nginx]" _ <"/proc/${pid[nginx]}/task/${pid[nginx]}/children" || true
    [[ -n ${measured[nginx]} ]] || down[nginx]="no worker process"
fi
tls_check weave
tls_check nginx
for s in weave nginx; do
    if [[ -n ${down[$s]:-} ]]; then
        echo "# $s: not available: ${down[$s]}"
    else
        echo "# $s: GET /plaintext checked (200, the 13-byte body, text/plain, Date, Server:" \
            "$(sed -n 's/^[Ss]erver: //p' "$tmp/$s.h" | tr -d '\r'); ${size[$s]} bytes a response);" \
            "TLS: ${tls_info[$s]} (${tls_info[$s.h2load]} when AES-128-GCM is offered first, as" \
            "h2load does), certificate verified; ${tls_info[$s.tickets]} session tickets sent;" \
            "resumed when offered its session: ${tls_info[$s.resumed]}"
    fi
done
echo "# weave: bench_http_server, WEAVE_SHARDS=1; wv_tls_ctx_server (TLS 1.2-1.3, the server's" \
    "cipher preference, ALPN http/1.1) with resumption off (TLS_RESUMPTION=0:" \
    "wv_tls_opts.no_resumption, no tickets and no session cache)"
echo "# nginx: worker_processes 1, access_log off, keepalive_requests 100000000, ssl_protocols" \
    "TLSv1.3, ssl_prefer_server_ciphers on, ssl_session_tickets off, ssl_session_cache off," \
    "ssl_conf_command NumTickets 0 (bench/tls/nginx.conf.in)"
echo "# clients: wrk and h2load do not verify the server's certificate (neither can); bench_dial" \
    "and asyncio_dial.py verify it against the test CA as localhost (SNI localhost)"
if [[ -n ${down[weave]:-} ]]; then
    bench_fail tls "weave's bench_http_server is not available"
    exit 1
fi

# The like-for-like conditions of the tls figures: the same protocol, suite
# and group on both sides (both figures), and no tickets, no resumption (the
# handshake figure: every handshake a full one).
tls_differ=''
tls_resume=''
if [[ -z ${down[nginx]:-} ]]; then
    if [[ ${tls_info[weave]} != "${tls_info[nginx]}" ||
        ${tls_info[weave.h2load]} != "${tls_info[nginx.h2load]}" ]]; then
        tls_differ="the servers chose different TLS parameters (weave: ${tls_info[weave]},"
        tls_differ+=" ${tls_info[weave.h2load]}; nginx: ${tls_info[nginx]}, ${tls_info[nginx.h2load]})"
    fi
    if [[ ${tls_info[weave.tickets]} != 0 || ${tls_info[nginx.tickets]} != 0 ||
        ${tls_info[weave.resumed]} != no || ${tls_info[nginx.resumed]} != no ]]; then
        tls_resume="a server sends session tickets or resumes a session: not every handshake"
        tls_resume+=" would be a full one"
    fi
fi

# 1. tls.plaintext_cpu: server CPU per request over keep-alive TLS, no
# pipelining (one wrk core is the ceiling, so req/s would not rank the servers).
fig_plaintext_cpu()
{
    local fig=tls.plaintext_cpu s
    if [[ -n ${down[nginx]:-} ]]; then
        bench_fail $fig "nginx: not available: ${down[nginx]}"
        return 0
    fi
    if [[ -n $tls_differ ]]; then
        bench_fail $fig "$tls_differ"
        return 0
    fi
    cmd_weave=("$measure" cpu "$conns" "$secs_cpu" "${measured[weave]}"
        "https://127.0.0.1:${port[weave]}/plaintext" "${size[weave]}" "$tmp/info/$fig.weave")
    cmd_nginx=("$measure" cpu "$conns" "$secs_cpu" "${measured[nginx]}"
        "https://127.0.0.1:${port[nginx]}/plaintext" "${size[nginx]}" "$tmp/info/$fig.nginx")
    bench_figure $fig us nginx lower cmd_weave cmd_nginx
    for s in weave nginx; do
        [[ -s $tmp/info/$fig.$s ]] || continue
        echo "# $fig $s: $(info_median $fig $s rps) req/s, p99 $(bench_fmt "$(awk -v v="$(info_median \
            $fig $s p99_us)" 'BEGIN { print v / 1000 }')") ms; CPU busy: server $(info_pct $fig $s \
            server_cpu), wrk $(info_pct $fig $s wrk_cpu) of one core; $(info_pct $fig $s \
            user_share) of the server's CPU time in user space (medians)"
    done
    busy_flag $fig "wrk (req/s only: the CPU per request stands)" wrk_cpu weave nginx
}

# 2. tls.handshake: server CPU per full handshake (and its one request), h2load
# opening a new connection for every request.
fig_handshake()
{
    local fig=tls.handshake s
    if [[ -n ${down[nginx]:-} ]]; then
        bench_fail $fig "nginx: not available: ${down[nginx]}"
        return 0
    fi
    if [[ -n $tls_differ$tls_resume ]]; then
        bench_fail $fig "${tls_differ:-$tls_resume}"
        return 0
    fi
    if ! command -v h2load >/dev/null; then
        bench_fail $fig "h2load is missing (Debian's nghttp2-client)"
        return 0
    fi
    cmd_weave=("$handshake" "${measured[weave]}" "https://127.0.0.1:${port[weave]}/plaintext"
        "$hs_conns" "$hs_requests" "${#body}" "$tmp/info/$fig.weave")
    cmd_nginx=("$handshake" "${measured[nginx]}" "https://127.0.0.1:${port[nginx]}/plaintext"
        "$hs_conns" "$hs_requests" "${#body}" "$tmp/info/$fig.nginx")
    bench_figure $fig us nginx lower cmd_weave cmd_nginx
    for s in weave nginx; do
        [[ -s $tmp/info/$fig.$s ]] || continue
        # shellcheck disable=SC2046 # one number per line, split on purpose
        echo "# $fig $s: $(info_median $fig $s rate) handshakes/s (samples: $(bench_fmt_all \
            $(info_values $fig $s rate))); CPU busy: server $(info_pct $fig $s server_cpu)," \
            "h2load $(info_pct $fig $s loadgen_cpu) of one core; h2load's CPU per handshake" \
            "$(info_median $fig $s loadgen_us) us (medians)"
    done
    busy_flag $fig "h2load (handshakes/s only: the server CPU per handshake stands)" loadgen_cpu \
        weave nginx
}

# 3. net.dial / net.dial_tls: one client fiber (one coroutine) dialing back to
# back; the server, nginx on CPU 0, the same for both. Alternating with them
# runs the floor, bench_dial floor / floor_tls: the same dials from a plain C
# loop with blocking sockets (and OpenSSL called directly), no event loop: what
# the kernel (and OpenSSL) take per dial, which no client can go below.
fig_dial()
{
    local fig=$1 mode=$2 ports=$3 n=$4 floor_mode=floor s r v line
    local -a extra=() clients=(weave asyncio floor) cmd
    local -A samples=() failed=()
    if [[ $mode == tls ]]; then
        extra=("$certs/ca.pem" localhost)
        floor_mode=floor_tls
    fi
    if [[ -n ${down[nginx]:-} ]]; then
        bench_fail "$fig" "the server (nginx) is not available: ${down[nginx]}"
        return 0
    fi
    if [[ $uvloop_version == missing ]]; then
        bench_fail "$fig" "Debian's python3 has no uvloop (python3-uvloop; scripts/deps.sh bench)"
        return 0
    fi
    for ((r = 0; r < BENCH_ROUNDS; r++)); do
        for s in "${clients[@]}"; do
            [[ -z ${failed[$s]:-} ]] || continue
            case $s in
            weave) cmd=("$dial_bin" "$mode") ;;
            asyncio) cmd=("$py" "$here/net/asyncio_dial.py" "$mode") ;;
            floor) cmd=("$dial_bin" "$floor_mode") ;;
            esac
            if v=$(bench_run "$measure_dial" "${measured[nginx]}" "$tmp/info/$fig.$s" 1 \
                "${cmd[@]}" 127.0.0.1 "$ports" "$n" "${extra[@]}"); then
                samples[$s]+=" $v"
            else
                failed[$s]=$v
            fi
        done
        [[ -z ${failed[weave]:-} && -z ${failed[asyncio]:-} ]] || break
    done
    line="# $fig samples (dials/s):"
    for s in "${clients[@]}"; do
        # shellcheck disable=SC2086 # the samples are words
        [[ -n ${failed[$s]:-} ]] || line+=" $s $(bench_fmt_all ${samples[$s]}) |"
    done
    echo "${line% |}"
    if [[ -n ${failed[weave]:-} ]]; then
        bench_fail "$fig" "weave: a run failed:"
        echo "${failed[weave]}"
    elif [[ -n ${failed[asyncio]:-} ]]; then
        bench_fail "$fig" "asyncio: a run failed:"
        echo "${failed[asyncio]}"
    else
        # shellcheck disable=SC2086
        bench_line "$fig" "$(bench_median ${samples[weave]})" dials/s asyncio \
            "$(bench_median ${samples[asyncio]})" higher
    fi
    for s in "${clients[@]}"; do
        [[ -s $tmp/info/$fig.$s ]] || continue
        echo "# $fig $s: client CPU $(info_median "$fig" "$s" client_us) us a dial, its process" \
            "$(info_pct "$fig" "$s" client_cpu) busy (CPU 1 in all, softirq included:" \
            "$(info_pct "$fig" "$s" core_busy)); server (nginx) $(info_median "$fig" "$s" \
                server_us) us a dial, $(info_pct "$fig" "$s" server_cpu) of CPU 0 (medians)"
    done
    if [[ -n ${failed[floor]:-} ]]; then
        echo "# $fig floor: a run failed:"
        echo "${failed[floor]}"
    elif [[ -z ${failed[weave]:-} && -z ${failed[asyncio]:-} ]]; then
        # Client CPU per dial: what each client costs, which other load on
        # CPU 1 stretches less than it does dials/s.
        # shellcheck disable=SC2086
        awk -v w="$(info_median "$fig" weave client_us)" -v a="$(info_median "$fig" asyncio client_us)" \
            -v f="$(info_median "$fig" floor client_us)" -v fr="$(bench_median ${samples[floor]})" \
            -v fig="$fig" -v what="$floor_mode" 'BEGIN {
            printf "# %s floor (bench_dial %s: blocking sockets%s, no event loop): %.0f dials/s," \
                " %.1f us of client CPU a dial; weave takes %.1f us (the floor + %.1f), asyncio" \
                " on uvloop %.1f (+ %.1f): by client CPU weave is %.2fx ahead of asyncio, and" \
                " no client here could be more than %.2fx ahead\n", fig, what,
                what == "floor_tls" ? " and OpenSSL called directly" : "", fr, f, w, w - f, a,
                a - f, a / w, a / f
        }'
    fi
    busy_flag "$fig" "the server (nginx)" server_cpu weave asyncio
}

# What the handshakes at the start of each tls.plaintext_cpu run weigh in it
# (wrk opens its connections then): tls.handshake's CPU per handshake times
# the connections, as a share of the server's CPU in the run.
handshake_share()
{
    local s hs line=
    for s in weave nginx; do
        [[ -s $tmp/info/tls.plaintext_cpu.$s && -s $tmp/info/tls.handshake.$s ]] || continue
        hs=$(info_median tls.handshake "$s" value)
        line+="${line:+, }$s $(awk -v hs="$hs" -v c="$conns" '{
            v = ""; n = ""
            for (i = 1; i <= NF; i++) {
                split($i, p, "=")
                if (p[1] == "value") v = p[2]; else if (p[1] == "requests") n = p[2]
            }
            if (v * n > 0) print 100 * c * hs / (v * n)
        }' "$tmp/info/tls.plaintext_cpu.$s" | sort -g | awk '{ a[NR] = $1 }
            END { if (NR) printf "%.1f%%", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')"
    done
    [[ -z $line ]] || echo "# tls.plaintext_cpu: the $conns handshakes that open each run's connections" \
        "are part of it, by tls.handshake's CPU per handshake about: $line of the server's CPU" \
        "in the run (medians)"
}

fig_plaintext_cpu
fig_handshake
handshake_share
echo "# net.dial: the client closes first, so each dial leaves a TIME_WAIT socket on the" \
    "client's side holding its 4-tuple: ephemeral ports $port_lo-$port_hi ($nports)," \
    "net.ipv4.tcp_tw_reuse=$tw_reuse (2: on loopback a port in TIME_WAIT is reused once 1 s" \
    "old); runs of $dial_n dials, spread over nginx's $dial_ports ports" \
    "$dial_first-$dial_last in turn (at tens of thousands of dials a second to one port the" \
    "kernel's search for a free ephemeral port, __inet_hash_connect, took a third of the" \
    "client's time)"
fig_dial net.dial plain "$dial_first-$dial_last" "$dial_n"
echo "# net.dial_tls: TLS 1.3 to nginx (the same server as tls.*, no tickets), the certificate" \
    "verified; weave closes after sending its close_notify (RFC 8446 6.1), uvloop's" \
    "wait_closed() also waits for the server's close_notify: one more round trip on its side"
fig_dial net.dial_tls tls "${port[nginx]}" "$dial_tls_n"

stop_servers
bench_load_end
bench_finish
