# bench/lib.sh: helpers shared by every bench/run_<suite>.sh (source it, do not run it).
# shellcheck shell=bash
#
# The method is docs/benchmarking.md's: weave and its anchor run alternately
# (A B A B ...) in the same invocation, the medians are compared, and each
# figure ends in one line
#   BENCH <suite>.<figure> value=<n> unit=<unit> anchor=<name> anchor_value=<n> ratio=<r>
# Everything else a suite prints starts with '#'.
#
#   bench_header SUITE PINNING        first line: machine, date, commit, rounds, pinning
#   bench_figure NAME UNIT ANCHOR BETTER A [B]
#                                     the usual figure: run the commands held in the
#                                     arrays named A and B alternately BENCH_ROUNDS
#                                     times each, print the samples and the BENCH line
#                                     (ANCHOR "none" and no B for a figure without one)
#   bench_ab ROUNDS A [B]             the alternation alone: medians in BENCH_A and
#                                     BENCH_B (0 without B), samples in
#                                     BENCH_A_SAMPLES / BENCH_B_SAMPLES; on failure
#                                     returns 1 with bench_run's reason in BENCH_ERROR
#   bench_run CMD...                  run CMD once (with a timeout), print the number
#                                     of its last `value=` line; on failure print why
#                                     ('#' lines: exit status, its stderr) and return 1
#   bench_median N...                 the median
#   bench_fmt N / bench_fmt_all N...  numbers as the BENCH lines write them
#   bench_ratio VALUE ANCHOR BETTER   how many times better VALUE is than ANCHOR:
#                                     ANCHOR/VALUE for BETTER=lower (time, memory),
#                                     VALUE/ANCHOR for BETTER=higher (throughput)
#   bench_line NAME VALUE UNIT ANCHOR ANCHOR_VALUE BETTER    print the BENCH line
#   bench_fail NAME WHY               a figure that could not be measured (no BENCH line)
#   bench_load_begin / bench_load_end what other processes used of the CPUs meanwhile
#   bench_drop_tmp DIR...            at exit: remove a suite's temp dirs, or keep them
#                                     and say so with BENCH_KEEP=1
#   bench_load_own PID...             count these daemons (a server the suite started and
#                                     that is not its child) as ours, not as other processes
#   bench_finish                      the suite's exit status: 1 if a figure failed
#   bench_verdict_fail NAME WHY       a measured figure that failed its own pass condition
#
# Environment: BENCH_LONG=1 (careful run: 7 rounds; suites also use larger n),
# BENCH_ROUNDS (overrides the number of rounds), BENCH_TIMEOUT (seconds per
# run, default 120), BENCH_VERBOSE=1 (show every run's stderr).

if [[ ${BENCH_LONG:-0} == 1 ]]; then
    BENCH_ROUNDS=${BENCH_ROUNDS:-7}
else
    BENCH_ROUNDS=${BENCH_ROUNDS:-3}
fi
BENCH_TIMEOUT=${BENCH_TIMEOUT:-120}
BENCH_FAILED=0
BENCH_LOAD_T0=
BENCH_LOAD_S0=

# A number for humans and parsers alike: never an exponent, 3-4 significant digits.
bench_fmt()
{
    awk -v x="$1" 'BEGIN {
        a = x < 0 ? -x : x
        if (a >= 1000) f = "%.0f"; else if (a >= 10) f = "%.1f"
        else if (a >= 0.1) f = "%.2f"; else if (a == 0) f = "%.0f"; else f = "%.4f"
        printf f "\n", x
    }'
}

# The numbers, each as bench_fmt writes it, on one line.
bench_fmt_all()
{
    local bench_fmt_v bench_fmt_out=()
    for bench_fmt_v in "$@"; do bench_fmt_out+=("$(bench_fmt "$bench_fmt_v")"); done
    echo "${bench_fmt_out[*]}"
}

bench_median()
{
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END {
            if (NR == 0) exit 1
            if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

bench_ratio()
{
    awk -v v="$1" -v a="$2" -v better="$3" 'BEGIN {
        if (v <= 0 || a <= 0) { print 0; exit }
        if (better == "lower") print a / v
        else if (better == "higher") print v / a
        else { print "bench_ratio: BETTER must be lower or higher" > "/dev/stderr"; exit 1 }
    }'
}

bench_line()
{
    local name=$1 value=$2 unit=$3 anchor=$4 anchor_value=$5 better=$6 ratio=0
    if [[ $anchor == none ]]; then
        anchor_value=0
    else
        ratio=$(bench_ratio "$value" "$anchor_value" "$better") || return 1
    fi
    echo "BENCH $name value=$(bench_fmt "$value") unit=$unit anchor=$anchor" \
        "anchor_value=$(bench_fmt "$anchor_value") ratio=$(bench_fmt "$ratio")"
}

bench_fail()
{
    echo "# $1: FAILED, no figure: $2"
    BENCH_FAILED=1
}

bench_finish()
{
    if [[ $BENCH_FAILED != 0 ]]; then
        echo "# some figures FAILED (see the lines above)"
        return 1
    fi
    return 0
}

bench_run()
{
    local err out rc=0 value
    err=$(mktemp)
    out=$(timeout -k 5 "$BENCH_TIMEOUT" "$@" 2>"$err") || rc=$?
    value=$(printf '%s\n' "$out" | sed -n 's/^value=//p' | tail -n 1)
    if [[ $rc != 0 || ! $value =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
        if [[ $rc == 124 || $rc == 137 ]]; then
            echo "#   '$*' timed out after ${BENCH_TIMEOUT}s; its stderr:"
        else
            echo "#   '$*' failed (exit $rc${value:+, value=$value}); its stderr:"
        fi
        tail -n 20 "$err" | sed 's/^/#     /'
        rm -f "$err"
        return 1
    fi
    if [[ ${BENCH_VERBOSE:-0} == 1 ]]; then
        sed 's/^/#   /' "$err" >&2
    fi
    rm -f "$err"
    echo "$value"
}

bench_ab()
{
    local bench_ab_rounds=$1 bench_ab_i bench_ab_v
    local -n bench_ab_cmd_a=$2
    BENCH_A_SAMPLES=()
    BENCH_B_SAMPLES=()
    BENCH_A=0
    BENCH_B=0
    BENCH_ERROR=
    if [[ -n ${3:-} ]]; then
        local -n bench_ab_cmd_b=$3
    fi
    for ((bench_ab_i = 0; bench_ab_i < bench_ab_rounds; bench_ab_i++)); do
        if ! bench_ab_v=$(bench_run "${bench_ab_cmd_a[@]}"); then
            BENCH_ERROR=$bench_ab_v
            return 1
        fi
        BENCH_A_SAMPLES+=("$bench_ab_v")
        if [[ -n ${3:-} ]]; then
            if ! bench_ab_v=$(bench_run "${bench_ab_cmd_b[@]}"); then
                BENCH_ERROR=$bench_ab_v
                return 1
            fi
            BENCH_B_SAMPLES+=("$bench_ab_v")
        fi
    done
    BENCH_A=$(bench_median "${BENCH_A_SAMPLES[@]}")
    if [[ -n ${3:-} ]]; then
        BENCH_B=$(bench_median "${BENCH_B_SAMPLES[@]}")
    fi
}

bench_figure()
{
    local bench_fig_name=$1 bench_fig_unit=$2 bench_fig_anchor=$3 bench_fig_better=$4
    local bench_fig_b=${6:-} bench_fig_samples
    if ! bench_ab "$BENCH_ROUNDS" "$5" "$bench_fig_b"; then
        bench_fail "$bench_fig_name" "a run failed:"
        echo "$BENCH_ERROR"
        return 0
    fi
    bench_fig_samples="weave $(bench_fmt_all "${BENCH_A_SAMPLES[@]}")"
    if [[ -n $bench_fig_b ]]; then
        bench_fig_samples+=" | $bench_fig_anchor $(bench_fmt_all "${BENCH_B_SAMPLES[@]}")"
    fi
    echo "# $bench_fig_name samples ($bench_fig_unit): $bench_fig_samples"
    bench_line "$bench_fig_name" "$BENCH_A" "$bench_fig_unit" "$bench_fig_anchor" "$BENCH_B" \
        "$bench_fig_better"
}

bench_header()
{
    local suite=$1 pinning=$2 model commit
    model=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
    commit=$(git -C "$(dirname "${BASH_SOURCE[0]}")" describe --always --dirty 2>/dev/null ||
        echo "no commit")
    echo "# bench $suite: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs (${model:-unknown}," \
        "$(uname -r)), commit $commit; $BENCH_ROUNDS rounds, weave and anchor alternating," \
        "medians; pinning: $pinning"
}

# Set variable $1 to "busy-jiffies steal-jiffies our-children-CPU-seconds".
# `times` must run in this shell (not a $(...) subshell) to see our children.
bench_cpu_snapshot()
{
    local bench_snap_f bench_snap_children
    bench_snap_f=$(mktemp)
    times >"$bench_snap_f"
    bench_snap_children=$(sed -n 2p "$bench_snap_f") # "0m1.234s 0m0.056s": user, system
    rm -f "$bench_snap_f"
    printf -v "$1" '%s' "$(awk -v children="$bench_snap_children" '/^cpu / {
        busy = $2 + $3 + $4 + $7 + $8; steal = $9
        split(children, t, /[ms] */)
        ours = t[1] * 60 + t[2] + t[3] * 60 + t[4]
        printf "%d %d %.3f\n", busy, steal, ours
    }' /proc/stat)"
}

# bench_drop_tmp DIR...: a suite's temp directories at its exit: removed,
# or kept (and named) with BENCH_KEEP=1.
bench_drop_tmp()
{
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        echo "# kept $*"
    else
        rm -rf "$@"
    fi
}

BENCH_LOAD_OWN=()

# bench_load_own PID...: servers the suite started that it will not have
# reaped when bench_load_end runs (daemons such as Redis and PostgreSQL's
# postmaster, or its own background servers, stopped only at exit) are the
# benchmark's own load. Call it when each starts; a process started before
# bench_load_begin counts from there.
bench_load_own()
{
    BENCH_LOAD_OWN+=("$@")
}

# CPU seconds the processes of BENCH_LOAD_OWN used so far: each with the
# children it reaped (PostgreSQL's finished backends) and, while they run,
# its live descendants (nginx's workers, PostgreSQL's backends).
bench_load_own_cpu()
{
    local -a queue=("${BENCH_LOAD_OWN[@]}") kids
    local p t sum=0
    while ((${#queue[@]})); do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$p/stat" \
            2>/dev/null) || continue
        sum=$((sum + t))
        read -r -a kids <<<"$(cat /proc/"$p"/task/*/children 2>/dev/null)"
        queue+=("${kids[@]}")
    done
    awk -v t="$sum" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f\n", t / hz }'
}

bench_load_begin()
{
    BENCH_LOAD_T0=$(date +%s.%N)
    bench_cpu_snapshot BENCH_LOAD_S0
    BENCH_LOAD_OWN0=$(bench_load_own_cpu)
}

# Runs during which other processes used >= 20% of a core (or the hypervisor
# stole as much) are suspect: say so (docs/benchmarking.md, "Quiet machine").
bench_load_end()
{
    local t1 s1 own1
    t1=$(date +%s.%N)
    bench_cpu_snapshot s1
    own1=$(bench_load_own_cpu)
    awk -v t0="$BENCH_LOAD_T0" -v t1="$t1" -v s0="$BENCH_LOAD_S0" -v s1="$s1" \
        -v own0="$BENCH_LOAD_OWN0" -v own1="$own1" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(s0, a, " "); split(s1, b, " ")
        wall = t1 - t0
        busy = (b[1] - a[1]) / hz; steal = (b[2] - a[2]) / hz
        ours = b[3] - a[3] + (own1 - own0)
        others = busy - ours; if (others < 0) others = 0
        printf "# load: %.0f s wall; our runs used %.1f CPU-s, other processes %.1f CPU-s" \
            " (%.0f%% of a core), hypervisor steal %.1f s\n",
            wall, ours, others, 100 * others / wall, steal
        if (others / wall >= 0.2 || steal / wall >= 0.2)
            print "# warning: the machine was busy during this run: trust the ratios," \
                " not the absolute figures"
    }'
}

# bench_verdict_fail NAME WHY: a figure that was measured (its BENCH line is
# printed) but did not pass a pass/fail condition of its own (a soak's
# errors, say): say so on a '#' line and make the suite exit 1.
bench_verdict_fail()
{
    echo "# $1: did not pass: $2"
    BENCH_FAILED=1
}

# The details a suite's measure.sh wrote for each run, one file per figure
# and server: "$tmp/info/FIGURE.SERVER", lines of "key=value" words.
#
# info_values FIGURE SERVER KEY [SCALE]: KEY of every run, one per line,
# divided by SCALE when one is given.
info_values()
{
    local v
    v=$(sed -n "s/^\(.*[[:space:]]\)\{0,1\}$3=\([^[:space:]]*\).*/\2/p" "$tmp/info/$1.$2" \
        2>/dev/null)
    [[ -n $v ]] || return 0
    if [[ -n ${4:-} ]]; then awk -v s="$4" '{ print $1 / s }' <<<"$v"; else echo "$v"; fi
}

# info_median FIGURE SERVER KEY [SCALE]: their median, formatted ("?" when none).
info_median()
{
    local v
    mapfile -t v < <(info_values "$@")
    if ((${#v[@]})); then bench_fmt "$(bench_median "${v[@]}")"; else echo "?"; fi
}

# info_runs FIGURE SERVER KEY: every run's KEY, formatted, on one line.
info_runs()
{
    local v
    mapfile -t v < <(info_values "$@")
    if ((${#v[@]})); then bench_fmt_all "${v[@]}"; else echo "?"; fi
}

# info_pcts FIGURE SERVER KEY: every run's KEY, a percentage, as "92% 90%".
info_pcts()
{
    local v
    mapfile -t v < <(info_values "$@")
    if ((${#v[@]})); then printf '%.0f%% ' "${v[@]}" | sed 's/ $//'; else echo "?"; fi
}
