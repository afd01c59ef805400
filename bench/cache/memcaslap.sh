#!/usr/bin/env bash
# bench/cache/memcaslap.sh PORT CONNECTIONS SECONDS: the anchor of
# memcache.get (bench/run_cache.sh): memcached's own load generator from
# libmemcached-tools, gets only,
#   memcaslap -s 127.0.0.1:PORT -T 1 -c CONNECTIONS -w W -F CONFIG -t SECONDS
# one thread, CONNECTIONS connections with one request in flight on each,
# 16-byte keys and 3-byte values (the CONFIG written here: bench_memcache's
# key and value sizes), get proportion 1. memcaslap makes its own keys: it
# first sets the window of each connection (-w 1k, the smallest it takes:
# 1,024 keys per connection, 51,200 with 50, where bench_memcache has
# 10,000; both fit memcached's memory many times over), outside its timed
# run, then gets random keys of it for SECONDS.
#
# Its TPS counts those warm-up sets as operations, so the figure is taken
# from its counters instead: cmd_get over its run time. Every get must have
# hit: get_misses 0, and the server's get_hits grew by cmd_get (less one
# per connection: memcaslap counts the gets it sent when its time ran out,
# whose replies it no longer reads). Prints a
# '#' line about the run, server_cpu= and client_cpu= (the CPU memcached,
# its pid in CACHE_SERVER_PID, and memcaslap used from the server's first
# get to memcaslap's exit, in % of one core: the warm-up's sets are left
# out), server_us= and client_us= (the same in CPU µs per get;
# bench/cache/note.sh collects these lines), and value=<gets per second>
# last.
set -euo pipefail

port=$1 conns=$2 secs=$3
hz=$(getconf CLK_TCK)
cfg=$(mktemp /tmp/weave-memcaslap.XXXXXX)
trap 'rm -f "$cfg" "$cfg.out"' EXIT
printf 'key\n16 16 1\nvalue\n3 3 1\ncmd\n0 0.0\n1 1.0\n' >"$cfg"

# stat NAME: a counter of memcached's `stats`
stat()
{
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'stats\r\nquit\r\n' >&3
    tr -d '\r' <&3 | awk -v k="$1" '$1 == "STAT" && $2 == k { print $3 }'
    exec 3<&-
}

ticks()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

reaped()
{
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

pid=${CACHE_SERVER_PID:-0}
hits0=$(stat get_hits)
gets0=$(stat cmd_get)
c0=$(reaped)
memcaslap -s "127.0.0.1:$port" -T 1 -c "$conns" -w 1k -F "$cfg" -t "${secs}s" >"$cfg.out" 2>&1 &
mp=$!
# the timed run begins when the gets do: mark the CPU of both processes then
while kill -0 "$mp" 2>/dev/null && (($(stat cmd_get) == gets0)); do sleep 0.02; done
km=$(ticks "$pid")
cm=$(ticks "$mp")
tm=$(date +%s.%N)
rc=0
wait "$mp" || rc=$?
t1=$(date +%s.%N)
k1=$(ticks "$pid")
c1=$(reaped)
out=$(cat "$cfg.out")
rm -f "$cfg.out"
if [[ $rc != 0 ]]; then
    echo "memcaslap.sh: memcaslap failed: $out" >&2
    exit 1
fi
hits=$(($(stat get_hits) - hits0))

gets=$(awk '$1 == "cmd_get:" { print $2 }' <<<"$out")
misses=$(awk '$1 == "get_misses:" { print $2 }' <<<"$out")
run=$(awk '$1 == "Run" && $2 == "time:" { sub(/s$/, "", $3); print $3 }' <<<"$out")
if [[ -z $gets || -z $misses || -z $run ]]; then
    echo "memcaslap.sh: cannot read memcaslap's counters: $out" >&2
    exit 1
fi
if ((misses != 0 || gets == 0 || hits < gets - conns)); then
    echo "memcaslap.sh: WRONG RESULT: memcaslap counted $gets gets, $misses misses; the server" \
        "$hits hits" >&2
    exit 1
fi
awk -v k="$((k1 - km))" -v c="$((c1 - c0 - cm))" -v hz="$hz" -v t0="$tm" -v t1="$t1" \
    -v pid="$pid" -v n="$gets" 'BEGIN {
        w = t1 - t0
        printf "server_cpu=%.0f\nclient_cpu=%.0f\n", (pid > 0 ? 100 * k / hz / w : -1),
            100 * c / hz / w
        printf "server_us=%.3f\nclient_us=%.3f\n", (pid > 0 ? k / hz * 1e6 / n : -1),
            c / hz * 1e6 / n
    }'
rate=$(awk -v n="$gets" -v w="$run" 'BEGIN { printf "%.0f", n / w }')
echo "# memcaslap -T 1 -c $conns -w 1k -t ${secs}s, gets only: $gets gets in $run s, $misses" \
    "misses (the server counted $hits hits)"
echo "value=$rate"
