"""The anchor of amqp.publish_confirm (bench/run_messaging.sh): aio-pika
(Debian's python3-aio-pika, on aiormq) doing what `bench_amqp publish`
does: WARM + N persistent messages of 100 bytes to a durable queue through
the default exchange, publisher confirms on, at most WINDOW (100)
unconfirmed, one connection, one channel, every confirm checked.

At its best documented settings:
  - on uvloop (uvloop.install());
  - aio_pika.connect (not connect_robust: no recovery bookkeeping; weave's
    side runs with its recovery on, its default);
  - one channel with publisher_confirms=True (aio-pika's default), so each
    `await exchange.publish(...)` returns once the broker confirmed it;
  - WINDOW tasks publishing in a loop (aio-pika's way to keep WINDOW
    publishes in flight), mandatory=False as on weave's side (aio-pika's
    default is True; the queue exists, so nothing is returned either way;
    bench/messaging/amqp_run.sh checks the queue holds every message).

The first WARM messages are the warm-up; once all are confirmed the clock
starts, and it stops when the last of the N is confirmed.

    /usr/bin/python3 aio_pika_publish.py URL QUEUE WARM N [WINDOW]

Prints '#' lines, the CPU lines of cpu.py and value=<messages per second>.
"""
import asyncio
import sys

import aio_pika
import aiormq
import uvloop
from pamqp import commands

from cpu import body, mark, report, server_pid


async def publish_range(exchange, queue, first, n, window):
    """Publish first .. first+n-1 from `window` tasks; the number acked."""
    nxt = [first]
    end = first + n
    acked = [0]

    async def task():
        while nxt[0] < end:
            seq = nxt[0]
            nxt[0] += 1
            msg = aio_pika.Message(body(seq), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            confirm = await exchange.publish(msg, routing_key=queue, mandatory=False)
            if not isinstance(confirm, commands.Basic.Ack):
                raise RuntimeError("publish %d: not acked: %r" % (seq, confirm))
            acked[0] += 1

    await asyncio.gather(*(task() for _ in range(min(window, n))))
    return acked[0]


async def main():
    url, queue, warm, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    window = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    pid = server_pid()
    conn = await aio_pika.connect(url)
    ch = await conn.channel(publisher_confirms=True)
    await ch.declare_queue(queue, durable=True)
    ex = ch.default_exchange
    got = await publish_range(ex, queue, 0, warm, window) if warm else 0
    a = mark(pid)
    got += await publish_range(ex, queue, warm, n, window)
    b = mark(pid)
    await conn.close()
    if got != warm + n:
        raise RuntimeError("%d acked of %d sent" % (got, warm + n))
    print("# aio-pika %s (aiormq %s) on %s: %d tasks, one channel, confirms on, persistent, "
          "mandatory off; %d acked" % (aio_pika.__version__, aiormq.__version__,
                                       type(asyncio.get_running_loop()).__module__, window, got))
    report("publish_confirm", a, b, n, warm)


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit("usage: aio_pika_publish.py URL QUEUE WARM N [WINDOW]")
    uvloop.install()
    asyncio.run(main())
