#!/usr/bin/env bash
# bench/resolve/run.sh: getaddrinfo on the offload pool (wv_resolve) against
# c-ares driven by the shard's loop (method: docs/benchmarking.md; results
# and the reading of them: RESULTS.md beside this script).
#
# "weave" in the BENCH lines is what wv_resolve does today (getaddrinfo on
# the offload pool; for the DNS figures its stand-in, glibc's res_nquery on
# the pool), the anchor is c-ares on the loop; ratio > 1 means the pool is
# ahead.
#
#   RESOLVE_BIN=path   bench_resolve built with c-ares (default:
#                      $BUILD_DIR/bench_resolve, BUILD_DIR=build/release); see
#                      bench_resolve.c's header for the hand build
#   FAKE_DNS_PORT=n    the fake DNS server's port (default 5353)
#   BENCH_LONG=1       7 rounds; BENCH_ROUNDS=n overrides
#   BENCH_VERBOSE=1    show what every run prints on stderr
#
# The bench (shard and offload threads) runs on CPU 0; the fake DNS server
# (Python) on CPU 1. Only names in /etc/hosts ("localhost") and names under
# weave-bench.test sent to 127.0.0.1:$FAKE_DNS_PORT are ever resolved.

# shellcheck disable=SC2034 source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"

bin=${RESOLVE_BIN:-${BUILD_DIR:-$here/../../build/release}/bench_resolve}
py=/usr/bin/python3
port=${FAKE_DNS_PORT:-5353}
export FAKE_DNS_PORT=$port

if [[ ! -x $bin ]]; then
    echo "run.sh: no $bin (build it with c-ares: see bench/bench_resolve.c)" >&2
    exit 1
fi
if "$bin" 2>/dev/null | grep -q "built without c-ares"; then
    echo "run.sh: $bin was built without c-ares (see bench/bench_resolve.c)" >&2
    exit 1
fi
if ! grep -Eq '^[^#]*[[:space:]]localhost([[:space:]]|$)' /etc/hosts; then
    echo "run.sh: localhost is not in /etc/hosts; the hosts figures would ask DNS" >&2
    exit 1
fi

cpu0=(taskset -c 0)
dns_pid=
dns_dir=$(mktemp -d)

stop_dns()
{
    if [[ -n $dns_pid ]]; then
        kill "$dns_pid" 2>/dev/null || true
        wait "$dns_pid" 2>/dev/null || true
        sed 's/^/# /' "$dns_dir/err"
        dns_pid=
    fi
}
trap 'stop_dns; rm -rf "$dns_dir"' EXIT

# Start fake_dns.py with the given delay; proves the listener is ours.
start_dns()
{
    if ss -Hlun "sport = :$port" | grep -q .; then
        echo "# 127.0.0.1:$port (UDP) is taken by another process: no DNS figures"
        return 1
    fi
    taskset -c 1 "$py" "$here/fake_dns.py" --port "$port" --delay-ms "$1" \
        >"$dns_dir/out" 2>"$dns_dir/err" &
    dns_pid=$!
    for _ in $(seq 50); do
        grep -q "^ready $port$" "$dns_dir/out" && break
        sleep 0.1
    done
    if ! grep -q "^ready $port$" "$dns_dir/out" ||
        ! ss -Hlunp "sport = :$port" | grep -q "pid=$dns_pid,"; then
        echo "# fake_dns.py did not come up on 127.0.0.1:$port:"
        stop_dns
        return 1
    fi
}

# A '#' line with the medians of two commands run alternately.
context()
{
    local label=$1 unit=$2 what_a=$3 what_b=$4
    if bench_ab "$BENCH_ROUNDS" a b; then
        echo "# $label ($unit): $what_a $(bench_fmt "$BENCH_A") [$(bench_fmt_all \
            "${BENCH_A_SAMPLES[@]}")] | $what_b $(bench_fmt "$BENCH_B") [$(bench_fmt_all \
            "${BENCH_B_SAMPLES[@]}")]"
    else
        bench_fail "$label" "a run failed:"
        echo "$BENCH_ERROR"
    fi
}

bench_header resolve "bench_resolve (1 shard, 4 offload threads) on CPU 0 (taskset -c 0);\
 fake_dns.py on CPU 1"
echo "# c-ares $(pkg-config --modversion libcares 2>/dev/null || echo '?'), glibc" \
    "$(getconf GNU_LIBC_VERSION | cut -d' ' -f2); hosts: $(grep -c . /etc/hosts) lines;" \
    "nsswitch hosts: $(sed -n 's/^hosts:[[:space:]]*//p' /etc/nsswitch.conf)"
bench_load_begin

# --- names from /etc/hosts -------------------------------------------------
h=(n=50000)
echo "# hosts figures: \"localhost\" (AF_UNSPEC, SOCK_STREAM) from /etc/hosts; weave ="\
    "wv_resolve (getaddrinfo on the offload pool), anchor = c-ares on the loop, lookups \"f\""

weave=("${cpu0[@]}" "$bin" gai_pool "${h[@]}" conc=1)
anchor=("${cpu0[@]}" "$bin" ares_files "${h[@]}" conc=1)
bench_figure net.resolve_hosts ns c-ares lower weave anchor

weave=("${cpu0[@]}" "$bin" gai_pool "${h[@]}" conc=16)
anchor=("${cpu0[@]}" "$bin" ares_files "${h[@]}" conc=16)
bench_figure net.resolve_hosts_16 ns c-ares lower weave anchor

weave=("${cpu0[@]}" "$bin" gai_pool "${h[@]}" conc=16 metric=mean unit=us)
anchor=("${cpu0[@]}" "$bin" ares_files "${h[@]}" conc=16 metric=mean unit=us)
bench_figure net.resolve_hosts_16_latency us c-ares lower weave anchor

weave=("${cpu0[@]}" "$bin" gai_pool "${h[@]}" conc=16 metric=loop_cpu)
anchor=("${cpu0[@]}" "$bin" ares_files "${h[@]}" conc=16 metric=loop_cpu)
bench_figure net.resolve_hosts_loop_cpu ns c-ares lower weave anchor

a=("${cpu0[@]}" "$bin" gai_pool "${h[@]}" conc=16 metric=cpu)
b=("${cpu0[@]}" "$bin" ares_files "${h[@]}" conc=16 metric=cpu)
context "CPU of the whole process per lookup, 16 fibers" ns "getaddrinfo on the pool" \
    "c-ares on the loop"

a=("${cpu0[@]}" "$bin" gai_direct "${h[@]}")
b=("${cpu0[@]}" "$bin" ares_direct "${h[@]}")
context "floor, no runtime, per lookup" ns "getaddrinfo" "ares_getaddrinfo (files)"

a=("${cpu0[@]}" "$bin" offload_noop "${h[@]}" conc=1)
b=("${cpu0[@]}" "$bin" offload_noop "${h[@]}" conc=16)
context "the thread hop, wv_offload of an empty function, per call" ns "1 fiber" "16 fibers"

a=("${cpu0[@]}" "$bin" ares_files "${h[@]}" conc=1 nosort=1)
b=("${cpu0[@]}" "$bin" ares_direct "${h[@]}" nosort=1)
context "c-ares with ARES_AI_NOSORT, per lookup" ns "on the loop" "no runtime"

# --- DNS: a fake server on loopback (one-sided: not getaddrinfo itself) ----
echo "# DNS figures: A queries for h<i>.weave-bench.test to fake_dns.py on 127.0.0.1:$port;"\
    "weave's side is glibc's res_nquery on the offload pool (getaddrinfo cannot be"\
    "pointed at this server without editing /etc/resolv.conf), anchor = c-ares on the loop"
if start_dns 0; then
    echo "# fake_dns.py answering at once (round trip = loopback + Python)"
    weave=("${cpu0[@]}" "$bin" res_pool n=5000 conc=1)
    anchor=("${cpu0[@]}" "$bin" ares_dns n=5000 conc=1)
    bench_figure net.resolve_dns ns c-ares lower weave anchor

    weave=("${cpu0[@]}" "$bin" res_pool n=8000 conc=16)
    anchor=("${cpu0[@]}" "$bin" ares_dns n=8000 conc=16)
    bench_figure net.resolve_dns_16 ns c-ares lower weave anchor

    weave=("${cpu0[@]}" "$bin" res_pool n=8000 conc=16 metric=loop_cpu)
    anchor=("${cpu0[@]}" "$bin" ares_dns n=8000 conc=16 metric=loop_cpu)
    bench_figure net.resolve_dns_loop_cpu ns c-ares lower weave anchor

    a=("${cpu0[@]}" "$bin" res_pool n=8000 conc=16 metric=cpu)
    b=("${cpu0[@]}" "$bin" ares_dns n=8000 conc=16 metric=cpu)
    context "CPU of the whole process per lookup, 16 fibers" ns "res_nquery on the pool" \
        "c-ares on the loop"

    a=("${cpu0[@]}" "$bin" ares_dns n=5000 conc=1 stayopen=1)
    b=("${cpu0[@]}" "$bin" ares_dns n=8000 conc=16 stayopen=1 metric=loop_cpu)
    context "c-ares with ARES_FLAG_STAYOPEN" ns "1 fiber, per lookup" \
        "16 fibers, loop CPU per lookup"
    stop_dns
fi
if start_dns 5; then
    echo "# fake_dns.py answering after 5 ms (a resolver one round trip away)"
    for c in 16 64; do
        weave=("${cpu0[@]}" "$bin" res_pool n=$((c * 100)) "conc=$c" unit=us)
        anchor=("${cpu0[@]}" "$bin" ares_dns n=$((c * 100)) "conc=$c" unit=us)
        bench_figure "net.resolve_dns_rtt5ms_$c" us c-ares lower weave anchor

        weave=("${cpu0[@]}" "$bin" res_pool n=$((c * 100)) "conc=$c" metric=mean unit=us)
        anchor=("${cpu0[@]}" "$bin" ares_dns n=$((c * 100)) "conc=$c" metric=mean unit=us)
        bench_figure "net.resolve_dns_rtt5ms_${c}_latency" us c-ares lower weave anchor

        a=("${cpu0[@]}" "$bin" res_pool n=$((c * 100)) "conc=$c" "threads=$c" metric=mean unit=us)
        b=("${cpu0[@]}" "$bin" res_pool n=$((c * 100)) "conc=$c" "threads=$c" unit=us)
        context "res_nquery on a pool of $c offload threads, $c fibers" us "mean latency" \
            "per lookup"
    done
    stop_dns
fi

bench_load_end
bench_finish
