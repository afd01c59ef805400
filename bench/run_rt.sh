#!/usr/bin/env bash
# bench/run_rt.sh: the runtime suite (`make bench-rt`; method: docs/benchmarking.md).
#
# One BENCH line per figure (rt.switch, rt.spawn, rt.fiber_rss, rt.timer,
# rt.chan, rt.shard_post), weave measured by build/release/bench_rt and each
# anchor (glibc swapcontext, Python asyncio) in the same run, alternating.
# Single-shard figures and the Python anchors run on CPU 0; shard_post needs
# two CPUs (its two shards are pinned to CPUs 0 and 1).
#
#   BUILD_DIR=dir     where bench_rt is (default: build/release of this repo)
#   BENCH_LONG=1      7 rounds and 5x longer runs (the fixed-size figures,
#                     fiber_rss at 100k fibers and timer at 1M, keep their size)
#   BENCH_ROUNDS=n    override the number of rounds
#   BENCH_VERBOSE=1   show what every run prints on stderr

# The command arrays (weave, anchor) are passed to bench_figure by name.
# shellcheck disable=SC2034 source-path=SCRIPTDIR
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

bin=${BUILD_DIR:-$here/../build/release}/bench_rt
py=/usr/bin/python3 # Debian's; the python3 on PATH may be another one
anchors=$here/anchors

if [[ ! -x $bin ]]; then
    echo "run_rt.sh: no $bin; build first (make build, or set BUILD_DIR)" >&2
    exit 1
fi
if [[ ! -x $py ]]; then
    echo "run_rt.sh: $py is missing (the asyncio anchors need Debian's python3)" >&2
    exit 1
fi

x=1
[[ ${BENCH_LONG:-0} == 1 ]] && x=5

cpu0=(taskset -c 0)
cpus01=(taskset -c "0,1")

bench_header rt "weave (1 shard) and anchors on CPU 0 (taskset -c 0); shard_post: 2 shards\
 on CPUs 0,1 (taskset -c 0,1, shard i pinned to CPU i)"
bench_load_begin

weave=("${cpu0[@]}" "$bin" switch $((20000000 * x)))
anchor=("${cpu0[@]}" "$bin" swapcontext $((1000000 * x)))
bench_figure rt.switch ns swapcontext lower weave anchor
switch_ns=$BENCH_A
# the switch's floor: the runtime's register switch alone between two
# stacks (no run queue, no scheduler), run alone after the figure
floor=("${cpu0[@]}" "$bin" switch_floor $((20000000 * x)))
if bench_ab "$BENCH_ROUNDS" floor; then
    echo "# rt.switch floor samples (ns): $(bench_fmt_all "${BENCH_A_SAMPLES[@]}")"
    echo "# rt.switch floor: $(bench_fmt "$BENCH_A") ns per switch for wv__switch alone between" \
        "two stacks (registers only: no run queue, no scheduler, no fiber state); a yield adds" \
        "$(bench_fmt "$(awk -v a="$switch_ns" -v b="$BENCH_A" 'BEGIN { print a - b }')") ns"
else
    echo "# rt.switch floor: not measured: $BENCH_ERROR"
fi

weave=("${cpu0[@]}" "$bin" spawn $((3000000 * x)))
anchor=("${cpu0[@]}" "$py" "$anchors/asyncio_spawn.py" $((200000 * x)))
bench_figure rt.spawn ns asyncio lower weave anchor

weave=("${cpu0[@]}" "$bin" fiber_rss 100000)
anchor=("${cpu0[@]}" "$py" "$anchors/asyncio_rss.py" 100000)
bench_figure rt.fiber_rss bytes asyncio lower weave anchor

weave=("${cpu0[@]}" "$bin" timer 1000000)
bench_figure rt.timer ns none lower weave

weave=("${cpu0[@]}" "$bin" chan $((3000000 * x)))
anchor=("${cpu0[@]}" "$py" "$anchors/asyncio_queue.py" $((50000 * x)))
bench_figure rt.chan ns asyncio lower weave anchor

# shard_post has no anchor; beside it (alternating) runs its floor: two bare
# threads on the same two CPUs ping-ponging over eventfds, i.e. two cross-core
# wake-ups per round trip, which dominate on virtual machines.
if [[ $(nproc) -ge 2 ]]; then
    weave=("${cpus01[@]}" "$bin" shard_post $((20000 * x)))
    floor=("${cpus01[@]}" "$bin" eventfd_floor $((20000 * x)))
    if bench_ab "$BENCH_ROUNDS" weave floor; then
        echo "# rt.shard_post samples (us): weave $(bench_fmt_all "${BENCH_A_SAMPLES[@]}") |" \
            "floor $(bench_fmt_all "${BENCH_B_SAMPLES[@]}")"
        floor_us=$BENCH_B
        bench_line rt.shard_post "$BENCH_A" us none 0 lower
        echo "# rt.shard_post floor: $(bench_fmt "$floor_us") us per round trip for two bare" \
            "threads on CPUs 0,1 (eventfd, blocking reads); weave adds" \
            "$(bench_fmt "$(awk -v a="$BENCH_A" -v b="$floor_us" 'BEGIN { print a - b }')") us"
    else
        bench_fail rt.shard_post "a run failed:"
        echo "$BENCH_ERROR"
    fi
else
    bench_fail rt.shard_post "needs 2 CPUs, this machine has $(nproc)"
fi

bench_load_end
bench_finish
