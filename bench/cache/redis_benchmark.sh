#!/usr/bin/env bash
# bench/cache/redis_benchmark.sh PORT CLIENTS PIPELINE SECONDS: the anchor of
# redis.get and redis.get_pipelined (bench/run_cache.sh): Redis's own
# redis-benchmark, GET of the preloaded key set,
#   redis-benchmark -t get -c CLIENTS -P PIPELINE -d 3 -r 10000 --threads 1 -n N --csv
# (-r 10000: every GET of a random key key:000000000000 .. key:000000009999,
# the keys `bench_redis preload` set; -d 3 is the value size of its SET test,
# GET reads the 3-byte values already there). It runs for a number of
# requests, not a time: a short first run (its warm-up, as bench_redis has
# one) measures the rate, and the real run asks for SECONDS' worth of it.
#
# It checks that every GET of the real run found its key: the server's
# keyspace_hits grew by at least N and keyspace_misses not at all (INFO
# stats before and after). Prints a '#' line about the run, server_cpu= and
# client_cpu= (the CPU the Redis server, its pid in CACHE_SERVER_PID, and
# redis-benchmark used over the real run, in % of one core; -1 without the
# pid), server_us= and client_us= (the same in CPU µs per GET;
# bench/cache/note.sh collects these lines), and value=<requests per
# second> as redis-benchmark reports it, last.
set -euo pipefail

port=$1 clients=$2 pipeline=$3 secs=$4
hz=$(getconf CLK_TCK)

# rb N: one redis-benchmark run of N GETs; prints its requests per second
rb()
{
    local out
    out=$(redis-benchmark -h 127.0.0.1 -p "$port" -t get -c "$clients" -P "$pipeline" -d 3 \
        -r 10000 --threads 1 -n "$1" --csv) || {
        echo "redis_benchmark.sh: redis-benchmark failed: $out" >&2
        return 1
    }
    awk -F'"' '$2 == "GET" { print $4; found = 1 } END { exit !found }' <<<"$out" || {
        echo "redis_benchmark.sh: no GET line in redis-benchmark's output: $out" >&2
        return 1
    }
}

# stat NAME: a counter of INFO stats
stat()
{
    redis-cli -p "$port" info stats | tr -d '\r' | sed -n "s/^$1://p"
}

# ticks PID: CPU clock ticks (user + system, all threads) of PID so far
ticks()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# our reaped children's CPU ticks (cutime + cstime of this shell)
reaped()
{
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

# the warm-up, and the rate to size the real run with
first=$((clients * pipeline * 400))
rate=$(rb "$first")
n=$(awk -v r="$rate" -v s="$secs" -v c="$clients" 'BEGIN {
    n = int(r * s); if (n < 100 * c) n = 100 * c; print n }')

hits0=$(stat keyspace_hits)
miss0=$(stat keyspace_misses)
pid=${CACHE_SERVER_PID:-0}
k0=$(ticks "$pid")
c0=$(reaped)
t0=$(date +%s.%N)
value=$(rb "$n")
t1=$(date +%s.%N)
c1=$(reaped)
k1=$(ticks "$pid")
hits=$(($(stat keyspace_hits) - hits0))
miss=$(($(stat keyspace_misses) - miss0))

if ((miss != 0 || hits < n)); then
    echo "redis_benchmark.sh: WRONG RESULT: $n GETs, but the server counted $hits hits and" \
        "$miss misses (is the key set loaded?)" >&2
    exit 1
fi
awk -v k="$((k1 - k0))" -v c="$((c1 - c0))" -v hz="$hz" -v t0="$t0" -v t1="$t1" -v pid="$pid" \
    -v n="$n" 'BEGIN {
        w = t1 - t0
        printf "server_cpu=%.0f\nclient_cpu=%.0f\n", (pid > 0 ? 100 * k / hz / w : -1),
            100 * c / hz / w
        printf "server_us=%.3f\nclient_us=%.3f\n", (pid > 0 ? k / hz * 1e6 / n : -1),
            c / hz * 1e6 / n
    }'
echo "# redis-benchmark -t get -c $clients -P $pipeline -d 3 -r 10000 --threads 1 -n $n:" \
    "$value requests/s ($first GETs of warm-up first at $rate/s); the server counted $hits hits," \
    "$miss misses"
echo "value=$value"
