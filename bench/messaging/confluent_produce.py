"""The anchor of kafka.produce (bench/run_messaging.sh): confluent_kafka's
Producer (Debian's python3-confluent-kafka, on the same librdkafka as
weave) doing what `bench_kafka produce` does: WARM + N keyless messages of
100 bytes to TOPIC (a new, empty topic), at most WINDOW (10,000) without a
delivery report, every report checked.

The same properties as weave's producer: enable.idempotence=true and
acks=all (weave's defaults; everything else librdkafka's defaults on both
sides: linger.ms, batch.size, compression none, ...). Delivery reports
come to one on_delivery callback set in the configuration (no callback
object per message) and are served by poll(): the loop produces while
fewer than WINDOW messages are without a report, else calls poll(1.0),
which serves every report queued (confluent_kafka's documented way; a
poll(0) after every produce costs a call per message for nothing while
there is room).

The first WARM are the warm-up; once every one of them has its report the
clock starts, and it stops when the last of the N has. Every report must
say written, and the highest offset reported in each partition, plus one,
summed, must be WARM + N.

    /usr/bin/python3 confluent_produce.py BROKERS TOPIC WARM N [WINDOW]

Prints '#' lines, the CPU lines of cpu.py and value=<messages per second>.
"""
import sys

import confluent_kafka

from cpu import body, mark, report, server_pid


def main():
    brokers, topic, warm, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    window = int(sys.argv[5]) if len(sys.argv) > 5 else 10000
    pid = server_pid()
    state = {"delivered": 0, "error": None}
    top = {}

    def on_delivery(err, msg):
        if err is not None:
            if state["error"] is None:
                state["error"] = "delivery failed: %s" % err
            return
        state["delivered"] += 1
        p, o = msg.partition(), msg.offset()
        if o > top.get(p, -1):
            top[p] = o

    p = confluent_kafka.Producer({
        "bootstrap.servers": brokers,
        "enable.idempotence": True,
        "acks": "all",
        "on_delivery": on_delivery,
    })
    def produce_range(first, count):
        produced = state["delivered"]
        for seq in range(first, first + count):
            while produced - state["delivered"] >= window:
                p.poll(1.0)
            p.produce(topic, body(seq))  # made here, as weave makes each
            produced += 1
        while state["delivered"] < produced and state["error"] is None:
            p.poll(1.0)

    if warm:
        produce_range(0, warm)
    a = mark(pid)
    produce_range(warm, n)
    b = mark(pid)
    left = p.flush(30)
    if state["error"] or left:
        raise SystemExit("confluent_produce: %s" % (state["error"] or "%d not flushed" % left))
    if state["delivered"] != warm + n:
        raise SystemExit("confluent_produce: %d delivered of %d" % (state["delivered"], warm + n))
    if sum(o + 1 for o in top.values()) != warm + n:
        raise SystemExit("confluent_produce: the reports' offsets add up to %d messages, not %d"
                         % (sum(o + 1 for o in top.values()), warm + n))
    print("# confluent_kafka %s on librdkafka %s: enable.idempotence=true acks=all, window %d, "
          "%d delivered" % (confluent_kafka.version()[0], confluent_kafka.libversion()[0],
                            window, state["delivered"]))
    report("produce", a, b, n, warm)


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit("usage: confluent_produce.py BROKERS TOPIC WARM N [WINDOW]")
    main()
