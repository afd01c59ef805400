#!/usr/bin/env bash
# bench/messaging/fresh.sh: one run of bench/run_messaging.sh on a fresh
# queue, topic or group, checked afterwards. CMD's stdout is passed through
# (bench_run in ../lib.sh reads its value= line); what the set-up and the
# checks say goes to stderr. The exit status is CMD's, or 1 when a check
# fails.
#
#   fresh.sh amqp-publish BENCH_AMQP URL QUEUE COUNT -- CMD...
#       delete QUEUE, run CMD (a publisher that declares QUEUE and publishes
#       COUNT messages to it), then check that QUEUE holds exactly COUNT
#       ready messages and delete it
#   fresh.sh amqp-consume BENCH_AMQP URL QUEUE COUNT -- CMD...
#       delete QUEUE, fill it with COUNT persistent messages (BENCH_AMQP
#       fill), run CMD (a consumer that reads and acks all of them), then
#       check that QUEUE is empty (what was delivered and not acked would
#       be back in it once the consumer's connection closed) and delete it
#   fresh.sh name SEQFILE PREFIX -- CMD...
#       take the next number from SEQFILE (1, 2, ...) and run CMD with every
#       word @NAME@ in it replaced by PREFIX.<number>: a topic made
#       beforehand, or a consumer group nobody used yet
set -euo pipefail

what=$1
shift
case $what in
    amqp-publish | amqp-consume)
        bench_amqp=$1 url=$2 queue=$3 count=$4
        shift 4
        ;;
    name)
        seqfile=$1 prefix=$2
        shift 2
        ;;
    *)
        echo "fresh.sh: unknown kind $what" >&2
        exit 2
        ;;
esac
[[ ${1:-} == -- ]] && shift

case $what in
    amqp-publish | amqp-consume)
        "$bench_amqp" delete "$url" "$queue" >&2
        if [[ $what == amqp-consume ]]; then
            "$bench_amqp" fill "$url" "$queue" "$count" >&2
        fi
        "$@"
        left=0
        [[ $what == amqp-publish ]] && left=$count
        "$bench_amqp" expect "$url" "$queue" "$left" >&2
        "$bench_amqp" delete "$url" "$queue" >&2
        ;;
    name)
        n=$(($(cat "$seqfile" 2>/dev/null || echo 0) + 1))
        echo "$n" >"$seqfile"
        cmd=()
        for w in "$@"; do cmd+=("${w//@NAME@/$prefix.$n}"); done
        "${cmd[@]}"
        ;;
esac
