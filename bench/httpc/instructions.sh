#!/usr/bin/env bash
# bench/httpc/instructions.sh: the user-space instructions an HTTP client
# spends per GET, counted by valgrind's callgrind, for weave's client or for
# libcurl alone (bench_httpc's floor mode). Unlike a time on a shared
# machine, the count barely moves from run to run, so it shows a change of a
# few percent that CPU-time rounds cannot. User space only: the kernel's
# part of a request is not in it (SYSCALLS=1 counts the system calls).
#
#   instructions.sh BENCH_HTTPC DIR MODE URL SECONDS [FIBERS]
#
# MODE is weave or floor. Runs `BENCH_HTTPC [floor] URL S FIBERS` under
# callgrind on CPU 1 twice, for SECONDS and for twice as long, against a
# server already answering URL (the caller's, on CPU 0). Each run's
# requests are the calls of curl_multi_add_handle callgrind counted (one per
# transfer in both modes), its instructions the program's total; the
# difference between the two runs is steady-state work alone (start-up,
# curl_global_init, the warm-up's connections and the exit are the same in
# both), so
#
#   value = (instructions of the long run - the short one's)
#           / (requests of the long run - the short one's)
#
# Prints `value=<instructions per request>` last, `requests=<n>` (the
# difference) before it, and with SYSCALLS=1 also `syscalls=<per request>`
# and `syscall_detail=<name:per request ...>`: the same two runs under
# `strace -f -c` (without valgrind), each request being one sendto (curl
# sends a small request in one call). DIR keeps the callgrind files and
# logs.
set -euo pipefail

bin=$1 dir=$2 mode=$3 url=$4 secs=$5 fibers=${6:-64}
case $mode in
weave) args=() ;;
floor) args=(floor) ;;
*)
    echo "instructions.sh: MODE is weave or floor, not '$mode'" >&2
    exit 2
    ;;
esac
mkdir -p "$dir"

# calls= lines after a cfn= naming FN, summed (names are compressed: the
# first mention is "(id) name", later ones "(id)")
calls_to()
{
    awk -v FN="$1" '
        /^c?fn=\(/ {
            id = $0; sub(/^c?fn=\(/, "", id); sub(/\).*/, "", id)
            name = $0
            if (sub(/^c?fn=\([0-9]+\) /, "", name)) names[id] = name
            pending = $0 ~ /^cfn=/ && names[id] == FN
            next
        }
        /^calls=/ { if (pending) { split($0, a, /[= ]/); total += a[2] } pending = 0; next }
        END { print total + 0 }' "$2"
}

total_of()
{
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'
}

declare -A ins req
for s in "$secs" $((2 * secs)); do
    out=$dir/callgrind.$mode.$s
    if ! taskset -c 1 valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$bin" "${args[@]}" "$url" "$s" "$fibers" >"$dir/$mode.$s.log" 2>&1; then
        echo "bench_httpc $mode failed under valgrind: $(tail -n 3 "$dir/$mode.$s.log")" >&2
        exit 1
    fi
    ins[$s]=$(total_of "$out")
    req[$s]=$(calls_to curl_multi_add_handle "$out")
done
n=$((req[$((2 * secs))] - req[$secs]))
if [[ -z ${ins[$secs]} || -z ${ins[$((2 * secs))]} || $n -le 0 ]]; then
    echo "no count: requests ${req[*]}, instructions ${ins[*]}" >&2
    exit 1
fi

if [[ ${SYSCALLS:-0} == 1 ]]; then
    # strace -c's table: "% time seconds usecs/call calls errors syscall"
    for s in "$secs" $((2 * secs)); do
        if ! taskset -c 1 strace -f -c -o "$dir/strace.$mode.$s" \
            "$bin" "${args[@]}" "$url" "$s" "$fibers" >"$dir/strace.$mode.$s.log" 2>&1; then
            echo "bench_httpc $mode failed under strace: $(tail -n 3 "$dir/strace.$mode.$s.log")" >&2
            exit 1
        fi
    done
    awk '
        FNR == 1 { run++ }
        $1 ~ /^[0-9.]+$/ && NF >= 5 {
            name = $NF; calls = $4
            if (name == "total") next
            c[run, name] = calls; names[name] = 1
        }
        END {
            sends = c[2, "sendto"] - c[1, "sendto"]
            if (sends <= 0) { print "syscalls=0"; exit }
            for (k in names) {
                d = (c[2, k] - c[1, k]) / sends
                total += d
                if (d >= 0.05) detail = detail sprintf(" %s:%.2f", k, d)
            }
            printf "syscalls=%.2f\nsyscall_detail=%s\n", total, substr(detail, 2)
        }' "$dir/strace.$mode.$secs" "$dir/strace.$mode.$((2 * secs))"
fi
echo "requests=$n"
echo "value=$(((ins[$((2 * secs))] - ins[$secs]) / n))"
