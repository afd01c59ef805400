#!/usr/bin/env bash
# bench/cache/note.sh LOG SIDE -- CMD...: run one measurement of
# bench/run_cache.sh and keep what it says beside its value. CMD's stdout is
# passed through (bench_run in ../lib.sh reads its value= line); when CMD
# succeeds, its other `name=<number>` lines (server_cpu=, client_cpu=,
# server_us=, client_us=, per_write=, cpu_ns=) are appended to the file LOG
# as one line
#   SIDE name=<number> name=<number> ...
# for the suite's '#' lines. The exit status is CMD's.
set -euo pipefail

log=$1 side=$2
shift 2
[[ ${1:-} == -- ]] && shift

rc=0
out=$("$@") || rc=$?
printf '%s\n' "$out"
if [[ $rc == 0 ]]; then
    notes=$(printf '%s\n' "$out" | awk -F= '/^[a-z_]+=-?[0-9.]+$/ && $1 != "value" {
        printf " %s", $0 }')
    echo "$side$notes" >>"$log"
fi
exit "$rc"
