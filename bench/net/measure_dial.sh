#!/usr/bin/env bash
# bench/net/measure_dial.sh: one run of a dial client of bench/run_tls.sh
# (net.dial, net.dial_tls: bench_dial or asyncio_dial.py) against a server
# that is already running. Prints the client's `value=<dials/s>` (what
# bench_run in ../lib.sh reads) and appends the run's details, as key=value
# pairs, to INFO_FILE.
#
#   measure_dial.sh SERVER_PID INFO_FILE CLIENT_CPU CMD...
#
# CMD is the client, run here on CPU CLIENT_CPU (taskset); it prints
# `value=<dials/s>` and `dials=N secs=S cpu_s=C` (its own CPU time during the
# N timed dials). INFO_FILE gets, besides the value: how busy the client
# process kept its core during the timed dials (client_cpu, %), how busy that
# core was in all (core_busy, %: the client plus the kernel's softirq work on
# it, which the process's own CPU time may not include; over the whole run,
# start-up and warm-up included), and the server's CPU time per dial
# (server_us: utime + stime of SERVER_PID over the whole run, divided by the
# dials, warm-up included) and its share of a core at that rate.
set -euo pipefail

die()
{
    echo "measure_dial.sh: $*" >&2
    exit 1
}

[[ $# -ge 4 ]] || die "usage: measure_dial.sh SERVER_PID INFO_FILE CLIENT_CPU CMD..."
pid=$1 info=$2 cpu=$3
shift 3
hz=$(getconf CLK_TCK)

proc_cpu()
{
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# busy jiffies of CPU $1 (everything but idle and iowait)
core_busy()
{
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

[[ -r /proc/$pid/stat ]] || die "the server (pid $pid) is not running"
s0=$(proc_cpu "$pid")
c0=$(core_busy "$cpu")
t0=$(date +%s.%N)
rc=0
out=$(taskset -c "$cpu" "$@") || rc=$?
t1=$(date +%s.%N)
c1=$(core_busy "$cpu")
s1=$(proc_cpu "$pid" 2>/dev/null) || die "the server (pid $pid) died during the run"
printf '%s\n' "$out" >&2
[[ $rc == 0 ]] || die "the client exited with status $rc"

value=$(sed -n 's/^value=//p' <<<"$out" | tail -n 1)
line=$(grep '^dials=' <<<"$out" | tail -n 1) || die "no dials= line from the client"
[[ -n $value ]] || die "no value= line from the client"

result=$(awk -v v="$value" -v line="$line" -v hz="$hz" -v ds="$((s1 - s0))" \
    -v dc="$((c1 - c0))" -v wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" 'BEGIN {
    n = split(line, kv, " ")
    for (i = 1; i <= n; i++) { split(kv[i], p, "="); r[p[1]] = p[2] }
    warm = int(r["dials"] / 20); if (warm < 50) warm = 50
    server_us = ds / hz * 1e6 / (r["dials"] + warm)
    printf "value=%s dials=%d secs=%.3f client_cpu=%.0f core_busy=%.0f server_us=%.2f" \
        " server_cpu=%.0f client_us=%.2f\n", v, r["dials"], r["secs"],
        100 * r["cpu_s"] / r["secs"], 100 * dc / hz / wall, server_us,
        server_us * v / 1e4, r["cpu_s"] * 1e6 / r["dials"]
}')
echo "$result" >>"$info"
echo "value=$value"
