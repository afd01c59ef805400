#!/usr/bin/env bash
# bench/run_messaging.sh: the messaging suite (`make bench-messaging`;
# method: docs/benchmarking.md): weave's RabbitMQ and Kafka clients against
# their Python anchors and a plain C loop on librabbitmq, and the Kafka
# figures against their floor, a plain C loop on librdkafka.
#
# A throwaway RabbitMQ node (scripts/rabbitmq_test_server.sh; its
# beam.smp and epmd) on CPU 0 (taskset -c 0), every AMQP client on CPU 1
# (taskset -c 1); librdkafka's mock cluster (build/release/kafka_mock_cluster,
# 3 brokers in a process of its own) on CPU 0, every Kafka client (its
# librdkafka threads included) on CPU 1: the figures need both cores. Weave
# is bench_amqp / bench_kafka, one shard. Every message is 100 bytes (its
# sequence number in 12 digits, then filler); every run warms up with a
# tenth of its count first, then times the count, and checks what it did
# (every publish confirmed, every message delivered, in order, acked; the
# queue left with exactly what was published, or empty). Weave and its
# anchor take turns, run after run, and every figure is followed by a '#'
# line with the CPU the broker and the client used in each run's timed
# window.
#
#   amqp.publish_confirm   msgs/s: persistent messages to a durable queue
#                          (deleted before and after each run) through
#                          the default exchange, publisher confirms, at most
#                          100 unconfirmed (bench_amqp publish: one fiber,
#                          wv_amqp_publish_start, wv_amqp_confirm_wait on
#                          the oldest), one connection, one channel, vs
#                          aio-pika on uvloop, 100 tasks publishing
#                          (bench/messaging/aio_pika_publish.py)
#   amqp.consume_ack       msgs/s: the same queue filled beforehand, prefetch
#                          100, manual acks, one basic.ack per message
#                          (bench_amqp consume), vs aio-pika on uvloop, the
#                          same (bench/messaging/aio_pika_consume.py)
#   amqp.publish_confirm_perftest
#                          msgs/s: publish_confirm vs a plain C loop on
#                          librabbitmq's blocking API, the same settings
#                          (confirm.select, 100 in flight, basic.ack frames
#                          read with their multiple flag:
#                          bench/messaging/librabbitmq_publish.c)
#   kafka.produce          msgs/s: keyless messages to a new topic (3
#                          partitions), delivery reports, at most 10,000
#                          without one (bench_kafka produce:
#                          wv_kafka_produce_start, wv_kafka_pending_wait on
#                          the oldest), weave's producer defaults
#                          (enable.idempotence=true, acks=all), vs
#                          confluent_kafka's Producer with the same
#                          properties (bench/messaging/confluent_produce.py)
#   kafka.consume          msgs/s: a consumer in a new group reading a topic
#                          (32 partitions) filled beforehand from earliest,
#                          acking each message (bench_kafka consume), vs
#                          confluent_kafka's Consumer with
#                          enable.auto.offset.store=false and store_offsets
#                          per message (bench/messaging/confluent_consume.py)
#
# The floor of both Kafka figures: weave and confluent_kafka both sit on
# librdkafka, whose own threads do most of the work on the client's core, so
# no client on it gets past librdkafka driven by a plain C loop doing the same
# work: bench/messaging/librdkafka_floor.c (produce: rd_kafka_producev, a
# delivery-report callback counting, rd_kafka_poll when 10,000 are without a
# report; consume: rd_kafka_consumer_poll and rd_kafka_offsets_store per
# message), the same properties, messages, counts, topics, warm-up, timed
# window and checks as bench_kafka. After each Kafka figure the floor runs
# alternately with weave (bench_kafka again), as many rounds as the figure,
# and a '#' line gives the floor's median, weave's median of those runs as a
# share of it, and the anchor's median of the figure's runs as a share of it
# (those runs did not alternate with the floor's: the weaker of the two
# shares on a busy machine), then a CPU line for those runs. A floor run that
# fails makes the suite exit 1, as a figure's would.
#
#   BUILD_DIR=dir        where bench_amqp, bench_kafka, librabbitmq_publish,
#                        librdkafka_floor and kafka_mock_cluster are
#   BENCH_LONG=1         7 rounds, more messages (MSG_AMQP_N, MSG_KAFKA_N)
#   BENCH_ROUNDS=n       override the number of rounds
#   MSG_AMQP_N=n         messages timed per AMQP run (default 50,000;
#                        200,000 with BENCH_LONG=1)
#   MSG_KAFKA_N=n        messages timed per Kafka run (default 500,000;
#                        1,000,000 with BENCH_LONG=1)
#   MSG_FIGURES="publish_confirm consume_ack publish_confirm_perftest produce consume"
#                        run only these
#   BENCH_KEEP=1         keep the temp dir (the node's logs)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$here/..
# shellcheck source=lib.sh
. "$here/lib.sh"

build=${BUILD_DIR:-$root/build/release}
py=/usr/bin/python3 # Debian's, with aio_pika, uvloop and confluent_kafka
read -r -a wanted <<<"${MSG_FIGURES:-publish_confirm consume_ack publish_confirm_perftest produce consume}"
need_amqp=0 need_kafka=0
for g in "${wanted[@]}"; do
    case $g in
        publish_confirm | consume_ack | publish_confirm_perftest) need_amqp=1 ;;
        produce | consume) need_kafka=1 ;;
        *)
            echo "run_messaging.sh: unknown figure '$g' (MSG_FIGURES: publish_confirm" \
                "consume_ack publish_confirm_perftest produce consume)" >&2
            exit 2
            ;;
    esac
done
for f in bench_amqp bench_kafka librabbitmq_publish librdkafka_floor kafka_mock_cluster; do
    if [[ ! -x $build/$f ]]; then
        echo "run_messaging.sh: no $build/$f; build first (make build, or set BUILD_DIR)" >&2
        exit 1
    fi
done
for tool in ss taskset; do
    command -v "$tool" >/dev/null || {
        echo "run_messaging.sh: '$tool' is missing (scripts/deps.sh bench installs it)" >&2
        exit 1
    }
done
if [[ $need_amqp == 1 ]] && ! "$py" -c 'import aio_pika, uvloop' 2>/dev/null; then
    echo "run_messaging.sh: $py lacks aio_pika or uvloop (scripts/deps.sh bench installs them)" >&2
    exit 1
fi
if [[ $need_kafka == 1 ]] && ! "$py" -c 'import confluent_kafka' 2>/dev/null; then
    echo "run_messaging.sh: $py lacks confluent_kafka (scripts/deps.sh bench installs it)" >&2
    exit 1
fi
if [[ $(nproc) -lt 2 ]]; then
    echo "run_messaging.sh: needs 2 CPUs (the brokers on CPU 0, the clients on CPU 1)" >&2
    exit 1
fi

amqp_n=50000 kafka_n=500000
if [[ ${BENCH_LONG:-0} == 1 ]]; then
    amqp_n=200000 kafka_n=1000000
fi
amqp_n=${MSG_AMQP_N:-$amqp_n}
kafka_n=${MSG_KAFKA_N:-$kafka_n}
amqp_warm=$((amqp_n / 10)) kafka_warm=$((kafka_n / 10))
window=100         # AMQP: publishes in flight; prefetch
kafka_window=10000 # Kafka: messages without a delivery report
produce_parts=3    # partitions of each new kafka.produce topic
consume_parts=32   # partitions of the kafka.consume topic (the mock keeps 5 MiB of each)

tmp=$(mktemp -d /tmp/weave-bench-messaging.XXXXXX)
rdir=$tmp/rabbitmq
mock_pid='' mock_in='' mock_out=''
cleanup()
{
    if [[ -n $mock_pid ]]; then
        [[ -n $mock_in ]] && eval "exec $mock_in>&-" # its stdin closed: it exits
        for _ in $(seq 1 100); do
            kill -0 "$mock_pid" 2>/dev/null || break
            sleep 0.05
        done
        kill "$mock_pid" 2>/dev/null || true
        wait "$mock_pid" 2>/dev/null || true
    fi
    if [[ -f $rdir/ports ]]; then
        "$root/scripts/rabbitmq_test_server.sh" stop "$rdir" || true
    fi
    bench_drop_tmp "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the first port from $1 with $2 free ports in a row, none of them in
# 35672-35682, which RabbitMQ's command-line tools use for themselves
free_ports()
{
    local port=$1 count=$2 i ok
    while :; do
        ok=1
        for ((i = 0; i < count; i++)); do
            if ss -ltnH "sport = :$((port + i))" | grep -q . ||
                ((port + i >= 35672 && port + i <= 35682)); then
                ok=0
            fi
        done
        [[ $ok == 1 ]] && break
        port=$((port + count))
    done
    echo "$port"
}

# all_on_cpu0 PID NAME: every thread of PID may run on CPU 0 only
all_on_cpu0()
{
    local t
    for t in /proc/"$1"/task/*; do
        if [[ $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status") != 0 ]]; then
            echo "run_messaging.sh: a thread of $2 may run on other CPUs than CPU 0" >&2
            exit 1
        fi
    done
}

# ------------------------------------------------------------ the brokers

url='' rpid=''
if [[ $need_amqp == 1 ]]; then
    # AMQP on port, the Erlang distribution on port+1, the node's epmd on port+2
    port=$(free_ports 26680 3)
    url=$(taskset -c 0 "$root/scripts/rabbitmq_test_server.sh" start "$rdir" "$port")
    rpid=$(cat "$rdir/pid") # beam.smp
    if ! ss -ltnpH "sport = :$port" | grep -q "pid=$rpid,"; then
        echo "run_messaging.sh: the listener on port $port is not the RabbitMQ started here" >&2
        exit 1
    fi
    all_on_cpu0 "$rpid" RabbitMQ
    bench_load_own "$rpid" "$(cat "$rdir/epmd.pid")"
fi

brokers=''
if [[ $need_kafka == 1 ]]; then
    # the mock cluster lives as long as its stdin (the coprocess's pipe) is open
    coproc taskset -c 0 "$build/kafka_mock_cluster" 3 "consume:$consume_parts" \
        2>"$tmp/mock.err"
    mock_pid=$COPROC_PID mock_out=${COPROC[0]} mock_in=${COPROC[1]}
    line=''
    read -r -t 30 -u "$mock_out" line || true
    brokers=${line#bootstraps=}
    if [[ $line != bootstraps=* || -z $brokers ]]; then
        echo "run_messaging.sh: the mock cluster did not start: $line $(cat "$tmp/mock.err")" >&2
        exit 1
    fi
    all_on_cpu0 "$mock_pid" "the mock cluster"
    bench_load_own "$mock_pid"
    # mock_cmd CMD: one command to the mock cluster, which must answer ok
    mock_cmd()
    {
        local answer=''
        echo "$1" >&"$mock_in"
        read -r -t 10 -u "$mock_out" answer || true
        if [[ $answer != ok ]]; then
            echo "run_messaging.sh: the mock cluster answered '$answer' to '$1'" >&2
            exit 1
        fi
    }
fi

bench_header messaging "RabbitMQ (beam.smp) and the Kafka mock cluster on CPU 0\
 (taskset -c 0), every client (bench_amqp and bench_kafka with 1 shard, librabbitmq_publish,\
 librdkafka_floor, Python) on CPU 1 (taskset -c 1): the figures need both cores"
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo '?'; }
if [[ $need_amqp == 1 ]]; then
    sched=$("$root/scripts/rabbitmq_test_server.sh" ctl "$rdir" eval \
        'erlang:system_info(schedulers_online).' 2>/dev/null || echo '?')
    echo "# RabbitMQ $(pkgver rabbitmq-server) (Erlang $(pkgver erlang-base)) on $url" \
        "(scripts/rabbitmq_test_server.sh: fsyncs on, $sched scheduler(s) online), a classic" \
        "durable queue, persistent 100-byte messages through the default exchange;" \
        "$amqp_n messages timed per run after $amqp_warm of warm-up; the queue deleted before" \
        "and after every run, and checked after it (bench/messaging/fresh.sh)"
    echo "# anchors at their best settings:"
    echo "#   aio-pika $(pkgver python3-aio-pika) (aiormq $(pkgver python3-aiormq)) on uvloop" \
        "$(pkgver python3-uvloop), aio_pika.connect, one channel, publisher_confirms=True;" \
        "publish: $window tasks, mandatory=False (as weave's); consume: set_qos($window)," \
        "queue.consume(callback), message.ack() per message"
    echo "#   librabbitmq $(pkgver librabbitmq4) (librabbitmq_publish): its blocking API, one" \
        "connection, confirm.select, $window in flight, basic.ack frames read with their" \
        "multiple flag"
fi
if [[ $need_kafka == 1 ]]; then
    echo "# Kafka: librdkafka $(pkgver librdkafka1)'s mock cluster, 3 brokers in one process" \
        "(kafka_mock_cluster) at $brokers; kafka.produce: a new topic of $produce_parts" \
        "partitions every run; kafka.consume: a topic of $consume_parts partitions filled once" \
        "with $((kafka_warm + kafka_n)) messages, a new group every run; $kafka_n messages timed" \
        "per run after $kafka_warm of warm-up"
    echo "#   confluent_kafka $(pkgver python3-confluent-kafka) on the same librdkafka: the" \
        "same properties as weave's (producer: enable.idempotence=true acks=all, one" \
        "on_delivery callback, at most $kafka_window without a report; consumer:" \
        "auto.offset.reset=earliest, enable.auto.offset.store=false, store_offsets per" \
        "message, consume(num_messages=100)); everything else librdkafka's defaults on both sides"
    echo "#   the floor, librdkafka_floor: a plain C loop on librdkafka's own API, the same" \
        "properties (producer: rd_kafka_producev, one delivery-report callback counting," \
        "rd_kafka_poll(1000) while $kafka_window are without a report; consumer: one" \
        "rd_kafka_consumer_poll per message, rd_kafka_offsets_store per message), run" \
        "alternately with weave after each Kafka figure"
fi
echo "# CPU lines: % of one core over each run's timed window, every run in order [median];" \
    "server = RabbitMQ's beam.smp or the mock cluster (CPU 0), client = the side's process" \
    "(CPU 1): a server near 100% set the pace, a client near 100% is the client's own ceiling"
bench_load_begin

# ------------------------------------------------------------ helpers

# notes_line FIGURE LOG TITLE: one '#' line with what LOG holds, per side
# (in the order the sides first ran) and per name, every run's number in
# order, then the median in brackets (as run_cache.sh prints it).
notes_line()
{
    [[ -s $2 ]] || return 0
    echo "# $1 $3:$(awk '
        function fmt(v, a) { # as bench_fmt, whole numbers as they are
            if (v == int(v)) return sprintf("%d", v)
            a = v < 0 ? -v : v
            return sprintf(a >= 1000 ? "%.0f" : a >= 10 ? "%.1f" : a >= 0.1 ? "%.2f" : \
                a == 0 ? "%.0f" : "%.4f", v) }
        { side = $1; if (!(side in seen)) { seen[side] = 1; order[++ns] = side }
          for (i = 2; i <= NF; i++) {
              split($i, kv, "="); k = side SUBSEP kv[1]
              if (!(k in cnt)) names[side] = names[side] " " kv[1]
              val[k, ++cnt[k]] = kv[2] + 0 } }
        END {
            for (s = 1; s <= ns; s++) {
                side = order[s]; out = out (s > 1 ? ";" : "") " " side
                nn = split(names[side], nm, " ")
                for (j = 1; j <= nn; j++) {
                    k = side SUBSEP nm[j]; n = cnt[k]; runs = ""
                    for (a = 1; a <= n; a++) { x[a] = val[k, a]; runs = runs " " fmt(x[a]) }
                    for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++)
                        if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
                    m = n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
                    out = out (j > 1 ? "," : "") " " nm[j] runs " [" fmt(m) "]"
                }
            }
            print out
        }' "$2")"
}

amqp_cpu="CPU in each run's timed window, every run [median]: server_cpu, client_cpu = % of one\
 core (RabbitMQ's beam.smp on CPU 0, the client on CPU 1); server_us, client_us = CPU µs per\
 message"
kafka_cpu="${amqp_cpu/RabbitMQ\'s beam.smp/the mock cluster}"

# kafka_side VAR LOG SIDE PREFIX CMD...: VAR=(a run of CMD on CPU 1 with every
# word @NAME@ replaced by PREFIX.<n>, a name not used before (fresh.sh name),
# run by cache/note.sh, which appends its name=<number> lines (server_cpu=,
# client_us=, ...) to LOG under SIDE)
kafka_side()
{
    local -n kafka_side_out=$1
    # shellcheck disable=SC2034 # a nameref: sets the caller's array
    kafka_side_out=("$here/cache/note.sh" "$2" "$3" -- env MSG_SERVER_PID="$mock_pid"
        taskset -c 1 "$here/messaging/fresh.sh" name "$seq_file" "$4" -- "${@:5}")
}

# produce_topics COUNT: the topics of the next COUNT kafka.produce runs,
# produce.<n>, n from the name sequence
produce_topics()
{
    local i first
    first=$(($(cat "$seq_file" 2>/dev/null || echo 0) + 1))
    for ((i = first; i < first + $1; i++)); do
        mock_cmd "topic produce.$i $produce_parts"
    done
}

# pct A B: A as a whole percentage of B
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }'; }

# kafka_floor FIGURE ANCHOR WEAVE FLOOR: after FIGURE (its anchor's median in
# ANCHOR, 0 if the figure failed), the runs held in the arrays named WEAVE and
# FLOOR alternately, BENCH_ROUNDS each, their samples, and the floor's '#'
# line: its median, and weave's (of these runs) and the anchor's as shares of it
kafka_floor()
{
    local fig=$1 anchor=$2 anchor_share
    if ! bench_ab "$BENCH_ROUNDS" "$3" "$4"; then
        bench_fail "$fig floor" "a run failed:"
        echo "$BENCH_ERROR"
        return 0
    fi
    echo "# $fig floor samples (msgs/s): weave $(bench_fmt_all "${BENCH_A_SAMPLES[@]}") |" \
        "librdkafka $(bench_fmt_all "${BENCH_B_SAMPLES[@]}")"
    anchor_share="the anchor is $(pct "$anchor" "$BENCH_B")% of it"
    [[ $anchor == 0 ]] && anchor_share="the anchor was not measured" # its figure failed
    echo "# $fig floor: librdkafka C loop $(bench_fmt "$BENCH_B") msgs/s; weave is" \
        "$(pct "$BENCH_A" "$BENCH_B")% of it; $anchor_share"
}

# amqp_side VAR LOG SIDE KIND CLIENT...: a run of CLIENT URL QUEUE WARM N WINDOW on
# a fresh queue (fresh.sh KIND)
amqp_side()
{
    local -n amqp_side_out=$1
    local log=$2 side=$3 kind=$4 queue=bench-$3
    shift 4
    local total=$((amqp_warm + amqp_n))
    # shellcheck disable=SC2034 # a nameref: sets the caller's array
    amqp_side_out=("$here/cache/note.sh" "$log" "$side" -- env MSG_SERVER_PID="$rpid" taskset -c 1
        "$here/messaging/fresh.sh" "$kind" "$build/bench_amqp" "$url" "$queue" "$total" --
        "$@" "$url" "$queue" "$amqp_warm" "$amqp_n" "$window")
}

# ------------------------------------------------------------ the figures

seq_file=$tmp/names.seq
for g in "${wanted[@]}"; do
    log=$tmp/notes.$g
    case $g in
        publish_confirm | publish_confirm_perftest)
            echo "# amqp.$g: persistent 100-byte messages to a durable queue, publisher" \
                "confirms, at most $window unconfirmed, one connection, one channel; weave: one" \
                "fiber, wv_amqp_publish_start and wv_amqp_confirm_wait on the oldest" \
                "(bench_amqp publish)"
            amqp_side w "$log" weave amqp-publish "$build/bench_amqp" publish
            if [[ $g == publish_confirm ]]; then
                amqp_side a "$log" aio_pika amqp-publish "$py" "$here/messaging/aio_pika_publish.py"
                bench_figure "amqp.$g" msgs/s aio_pika higher w a
            else
                amqp_side a "$log" librabbitmq amqp-publish "$build/librabbitmq_publish"
                bench_figure "amqp.$g" msgs/s librabbitmq higher w a
            fi
            notes_line "amqp.$g" "$log" "$amqp_cpu"
            ;;
        consume_ack)
            echo "# amqp.consume_ack: a durable queue filled with $((amqp_warm + amqp_n))" \
                "persistent 100-byte messages before each run, prefetch $window, manual acks," \
                "one basic.ack per message, every message checked in order; weave: one fiber," \
                "wv_amqp_consumer_recv, wv_amqp_ack, wv_amqp_msg_free (bench_amqp consume)"
            amqp_side w "$log" weave amqp-consume "$build/bench_amqp" consume
            amqp_side a "$log" aio_pika amqp-consume "$py" "$here/messaging/aio_pika_consume.py"
            bench_figure amqp.consume_ack msgs/s aio_pika higher w a
            notes_line amqp.consume_ack "$log" "$amqp_cpu"
            ;;
        produce)
            echo "# kafka.produce: 100-byte keyless messages to a new topic of $produce_parts" \
                "partitions every run, delivery reports, at most $kafka_window without one;" \
                "weave: one fiber, wv_kafka_produce_start and wv_kafka_pending_wait on the" \
                "oldest (bench_kafka produce)"
            args=("$brokers" @NAME@ "$kafka_warm" "$kafka_n" "$kafka_window")
            produce_topics $((2 * BENCH_ROUNDS))
            kafka_side w "$log" weave produce "$build/bench_kafka" produce "${args[@]}"
            kafka_side c "$log" confluent_kafka produce "$py" \
                "$here/messaging/confluent_produce.py" "${args[@]}"
            bench_figure kafka.produce msgs/s confluent_kafka higher w c
            notes_line kafka.produce "$log" "$kafka_cpu"
            anchor=$BENCH_B
            produce_topics $((2 * BENCH_ROUNDS))
            kafka_side w "$log.floor" weave produce "$build/bench_kafka" produce "${args[@]}"
            kafka_side f "$log.floor" librdkafka produce "$build/librdkafka_floor" produce \
                "${args[@]}"
            kafka_floor kafka.produce "$anchor" w f
            notes_line "kafka.produce floor" "$log.floor" "$kafka_cpu"
            ;;
        consume)
            echo "# kafka.consume: a consumer in a new group every run reading a topic of" \
                "$consume_parts partitions that holds $((kafka_warm + kafka_n)) 100-byte" \
                "messages from earliest, every message checked (offsets in order per partition)" \
                "and acked; weave: one fiber, wv_kafka_recv and wv_kafka_ack (bench_kafka consume)"
            if [[ ! -f $tmp/consume.filled ]]; then
                taskset -c 1 "$build/bench_kafka" fill "$brokers" consume \
                    $((kafka_warm + kafka_n)) "$consume_parts" >"$tmp/fill.log" 2>&1 || {
                    bench_fail kafka.consume "filling the topic failed: $(tail -n 3 "$tmp/fill.log")"
                    continue
                }
                touch "$tmp/consume.filled"
            fi
            args=("$brokers" consume @NAME@ "$kafka_warm" "$kafka_n")
            kafka_side w "$log" weave group "$build/bench_kafka" consume "${args[@]}"
            kafka_side c "$log" confluent_kafka group "$py" \
                "$here/messaging/confluent_consume.py" "${args[@]}"
            bench_figure kafka.consume msgs/s confluent_kafka higher w c
            notes_line kafka.consume "$log" "$kafka_cpu"
            anchor=$BENCH_B
            kafka_side w "$log.floor" weave group "$build/bench_kafka" consume "${args[@]}"
            kafka_side f "$log.floor" librdkafka group "$build/librdkafka_floor" consume \
                "${args[@]}"
            kafka_floor kafka.consume "$anchor" w f
            notes_line "kafka.consume floor" "$log.floor" "$kafka_cpu"
            ;;
    esac
done

bench_load_end
bench_finish
