#!/usr/bin/env bash
# bench/db/cpu_run.sh INFO SIDE SERVERS -- CMD...: run one measurement of
# bench/run_db.sh (CMD prints value=<n>) and append, to the file INFO, one line
#   SIDE client=<%> <server>=<%> ... wall=<s>
# with the CPU each used over the run, in % of one core: the client (CMD and
# its children: bench_pg, asyncpg, pgbench, wrk) and each server of SERVERS, a
# comma-separated list of NAME:PID:
#   pg:PID     PostgreSQL, PID its postmaster: the postmaster, every process
#              it has forked (backends, background workers) and those it has
#              reaped meanwhile (a backend that ended with its client)
#   NAME:PID   any other process, all its threads (the tfb HTTP servers)
# CMD's stdout is passed through (bench_run in ../lib.sh reads its value=
# line); its exit status is CMD's.
set -euo pipefail

info=$1 side=$2 servers=$3
shift 3
[[ ${1:-} == -- ]] && shift

hz=$(getconf CLK_TCK)

# ticks KIND PID: CPU clock ticks so far (see above)
ticks()
{
    if [[ $1 == pg ]]; then
        { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$2" '{
            pid = $1; sub(/^.*\) /, "")
            if (pid == pm) t += $12 + $13 + $14 + $15
            else if ($2 == pm) t += $12 + $13
        } END { print t + 0 }'
    else
        awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$2/stat" 2>/dev/null || echo 0
    fi
}

# children PID: how many processes PID has forked that are still there
children()
{
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } |
        awk -v pm="$1" '{ sub(/^.*\) /, ""); if ($2 == pm) n++ } END { print n + 0 }'
}

# our children's CPU once reaped (cutime + cstime of this shell)
reaped()
{
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}

IFS=, read -r -a list <<<"$servers"
declare -A before=() kids=()
for s in "${list[@]}"; do
    name=${s%%:*} pid=${s#*:}
    before[$name]=$(ticks "$name" "$pid")
    [[ $name != pg ]] || kids[$name]=$(children "$pid")
done
c0=$(reaped)
t0=$(date +%s.%N)
rc=0
out=$("$@") || rc=$?
t1=$(date +%s.%N)
c1=$(reaped)
printf '%s\n' "$out"
# a backend whose client has gone is reaped by the postmaster a moment later
for s in "${list[@]}"; do
    name=${s%%:*} pid=${s#*:}
    if [[ $name == pg ]]; then
        for ((i = 0; i < 40; i++)); do
            (($(children "$pid") <= kids[$name])) && break
            sleep 0.05
        done
    fi
done
line="$side client=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v t0="$t0" -v t1="$t1" \
    'BEGIN { printf "%.0f", 100 * (b - a) / hz / (t1 - t0) }')"
for s in "${list[@]}"; do
    name=${s%%:*} pid=${s#*:}
    line+=" $name=$(awk -v a="${before[$name]}" -v b="$(ticks "$name" "$pid")" -v hz="$hz" \
        -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", 100 * (b - a) / hz / (t1 - t0) }')"
done
line+=" wall=$(awk -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f", t1 - t0 }')"
[[ $rc != 0 ]] || echo "$line" >>"$info"
exit "$rc"
