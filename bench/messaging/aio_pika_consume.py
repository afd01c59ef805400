"""The anchor of amqp.consume_ack (bench/run_messaging.sh): aio-pika
(Debian's python3-aio-pika, on aiormq) doing what `bench_amqp consume`
does: WARM + N messages from a durable queue filled beforehand
(`bench_amqp fill`), prefetch PREFETCH (100), manual acks, one
`message.ack()` (one basic.ack) per message, every message checked (message
i carries sequence number i).

At its best documented settings:
  - on uvloop (uvloop.install());
  - aio_pika.connect (not connect_robust);
  - channel.set_qos(prefetch_count=PREFETCH);
  - queue.consume(callback) (aio-pika runs the callback as a task per
    message), not queue.iterator(), which hands every message on through
    an asyncio.Queue on top of that (MSG_AIO_PIKA_ITERATOR=1 runs it, to
    compare).

The clock starts once the WARM-th message is acked and stops when the last
of the N more is.

    /usr/bin/python3 aio_pika_consume.py URL QUEUE WARM N [PREFETCH]

Prints '#' lines, the CPU lines of cpu.py and value=<messages per second>.
"""
import asyncio
import os
import sys

import aio_pika
import aiormq
import uvloop

from cpu import body, mark, report, server_pid


async def main():
    url, queue, warm, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    prefetch = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    iterator = os.environ.get("MSG_AIO_PIKA_ITERATOR") == "1"
    pid = server_pid()
    loop = asyncio.get_running_loop()

    def quiet_cancel(loop, context):
        # callbacks of messages still in flight when the connection closes
        # (after a failure) end cancelled: not worth a traceback each
        if not isinstance(context.get("exception"), asyncio.CancelledError):
            loop.default_exception_handler(context)

    loop.set_exception_handler(quiet_cancel)
    conn = await aio_pika.connect(url)
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=prefetch)
    q = await ch.declare_queue(queue, durable=True)
    total = warm + n
    state = {"next": 0, "a": None, "b": None, "error": None}
    done = asyncio.get_running_loop().create_future()

    async def on_message(message):
        seq = state["next"]
        if message.body != body(seq):
            if not done.done():
                done.set_exception(RuntimeError("message %d: %r, not the one expected"
                                                % (seq, message.body[:12])))
            return
        state["next"] = seq + 1
        await message.ack()
        if seq + 1 == warm:
            state["a"] = mark(pid)
        if seq + 1 == total:
            state["b"] = mark(pid)
            done.set_result(None)

    if warm == 0:
        state["a"] = mark(pid)
    if iterator:
        async with q.iterator() as it:
            async for message in it:
                await on_message(message)
                if done.done():
                    break
        await done
    else:
        await q.consume(on_message)
        await done
    await conn.close()
    print("# aio-pika %s (aiormq %s) on %s: prefetch %d, %s, message.ack() per message; "
          "%d received" % (aio_pika.__version__, aiormq.__version__,
                           type(asyncio.get_running_loop()).__module__, prefetch,
                           "queue.iterator()" if iterator else "queue.consume(callback)",
                           state["next"]))
    report("consume_ack", state["a"], state["b"], n, warm)


if __name__ == "__main__":
    if len(sys.argv) < 5:
        sys.exit("usage: aio_pika_consume.py URL QUEUE WARM N [PREFETCH]")
    uvloop.install()
    asyncio.run(main())
