"""The anchor of kafka.consume (bench/run_messaging.sh): confluent_kafka's
Consumer (Debian's python3-confluent-kafka, on the same librdkafka as
weave) doing what `bench_kafka consume` does: one consumer in the new
group GROUP subscribed to TOPIC, which holds exactly WARM + N messages
(`bench_kafka fill`), reading from the earliest offset, every message
checked and its offset stored for commit once handled.

The same properties as weave's consumer: auto.offset.reset=earliest,
enable.auto.offset.store=false with store_offsets(message) after each
message (what wv_kafka_ack does), enable.auto.commit=true, and the
prefetch limits raised (queued.min.messages=10000000,
queued.max.messages.kbytes=1048576: librdkafka 2.0 stops fetching once
100,000 messages wait and looks again about a second later, which left
this consumer idle for most of each second; see bench_kafka.c); the rest
librdkafka's defaults on both sides. Messages come in batches of up to
100 from consume(num_messages=100, timeout=1.0), confluent_kafka's
documented call for many messages at once, which here handed out about a
third more messages per second than poll(); MSG_CONFLUENT_BATCH=K sets the
batch, and MSG_CONFLUENT_BATCH=0 takes one message per poll(1.0) call
instead, to compare.

The clock starts once the WARM-th message is handled (so the group join
is left out) and stops when the last of the N more is. In each partition
the offsets must come 0, 1, 2, ... and each value must be 100 bytes
starting with 12 digits. Then (untimed) the stored offsets are committed
and the consumer closed.

    /usr/bin/python3 confluent_consume.py BROKERS TOPIC GROUP WARM N

Prints '#' lines, the CPU lines of cpu.py and value=<messages per second>.
"""
import os
import sys

import confluent_kafka

from cpu import SIZE, mark, report, server_pid

FILLER = b"xxxx"


def main():
    brokers, topic, group = sys.argv[1], sys.argv[2], sys.argv[3]
    warm, n = int(sys.argv[4]), int(sys.argv[5])
    batch = int(os.environ.get("MSG_CONFLUENT_BATCH", "100"))
    pid = server_pid()
    c = confluent_kafka.Consumer({
        "bootstrap.servers": brokers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.offset.store": False,
        "enable.auto.commit": True,
        "queued.min.messages": 10000000,
        "queued.max.messages.kbytes": 1048576,
    })
    c.subscribe([topic])
    expect = {}

    def handle(m):
        if m.error():
            raise SystemExit("confluent_consume: %s" % m.error())
        p, o, v = m.partition(), m.offset(), m.value()
        if o != expect.get(p, 0) or len(v) != SIZE or v[12:16] != FILLER or not v[:1].isdigit():
            raise SystemExit("confluent_consume: partition %d offset %d (%d expected): not a "
                             "message of fill's" % (p, o, expect.get(p, 0)))
        expect[p] = o + 1
        c.store_offsets(message=m)

    def consume_some(count):
        got = 0
        if batch:
            while got < count:
                msgs = c.consume(num_messages=min(batch, count - got), timeout=1.0)
                for m in msgs:
                    handle(m)
                got += len(msgs)
        else:
            while got < count:
                m = c.poll(1.0)
                if m is None:
                    continue
                handle(m)
                got += 1

    consume_some(warm)
    a = mark(pid)
    consume_some(n)
    b = mark(pid)
    c.commit(asynchronous=False)
    c.close()
    print("# confluent_kafka %s on librdkafka %s: enable.auto.offset.store=false, store_offsets "
          "per message, %s; %d received in %d partitions"
          % (confluent_kafka.version()[0], confluent_kafka.libversion()[0],
             "consume(num_messages=%d)" % batch if batch else "poll() per message",
             sum(expect.values()), len(expect)))
    report("consume", a, b, n, warm)


if __name__ == "__main__":
    if len(sys.argv) < 6:
        sys.exit("usage: confluent_consume.py BROKERS TOPIC GROUP WARM N")
    main()
