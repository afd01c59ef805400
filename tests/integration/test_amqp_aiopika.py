"""weave's AMQP client and aio-pika, the library of the book chapter weave
ports (section 13.4.1), on one RabbitMQ node, each reading what the other
wrote.

aio-pika is Debian's python3-aio-pika (8.2.5, on aiormq and pamqp), run
here by /usr/bin/python3 in an asyncio loop per test; weave's side is
tests/integration/amqp_peer.c. The node is $WEAVE_TEST_AMQP_URL when
scripts/test.sh started one (with $WEAVE_TEST_AMQP_DIR and _CTL, through
which rabbitmqctl reaches it), else this test starts its own with
scripts/rabbitmq_test_server.sh (and stops it).

- Properties both ways: bodies, content type, message and correlation ids,
  priority, persistent delivery mode, and headers as the other side wrote
  them (from aio-pika: every integer width pamqp picks, signed and
  unsigned, booleans, byte arrays, an array, a timestamp, a void and a
  nested table inside a nested table).
- The chapter's flow both ways: N messages then "exit" through the default
  exchange to a durable queue; the consumer acks each (weave by hand,
  aio-pika in `message.process()`) and stops at "exit"; the queue is left
  with nothing ready or unacked (rabbitmqctl list_queues).
- connect_robust: aio-pika's robust consumer keeps receiving what weave
  publishes while the broker force-closes every connection twice
  (rabbitmqctl close_all_connections, each time with both clients in the
  middle of the stream); both come back by themselves, and every message
  weave got a confirm for reaches aio-pika at least once (sent, confirmed,
  received and duplicated are printed).
"""
import asyncio
import datetime
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httptest  # noqa: E402 - the integration tests' runner
from httptest import port_block  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD_DIR", "build/release")
PEER = os.path.join(BUILD, "amqp_peer")
CTL = os.path.join(ROOT, "scripts", "rabbitmq_test_server.sh")

try:
    import aio_pika
    import aiormq
except ImportError:
    print("test_amqp_aiopika: aio-pika is not installed (apt-get install python3-aio-pika, "
          "scripts/deps.sh test)")
    print("0 passed, 1 failed")
    sys.exit(1)

# the robust connection's reconnect messages are expected here, not news
logging.getLogger("aio_pika").setLevel(logging.CRITICAL)
logging.getLogger("aiormq").setLevel(logging.CRITICAL)


def parse_fields(text):
    """A headers table as amqp_peer prints it ("a=1 t={k=v} l=[x,2]") as a
    dict: values are strings, nested tables dicts, arrays lists."""
    pos = 0

    def value(stop):
        nonlocal pos
        if text.startswith("{", pos):
            pos += 1
            d = table("}")
            pos += 1
            return d
        if text.startswith("[", pos):
            pos += 1
            items = []
            while not text.startswith("]", pos):
                items.append(value(",]"))
                if text.startswith(",", pos):
                    pos += 1
            pos += 1
            return items
        start = pos
        while pos < len(text) and text[pos] not in stop:
            pos += 1
        return text[start:pos]

    def table(end):
        nonlocal pos
        d = {}
        while pos < len(text) and not text.startswith(end or "\0", pos):
            eq = text.index("=", pos)
            name = text[pos:eq]
            pos = eq + 1
            d[name] = value(" " + end)
            if text.startswith(" ", pos):
                pos += 1
        return d

    return table("")


class World:
    def __init__(self):
        self.own = None
        self.url = os.environ.get("WEAVE_TEST_AMQP_URL")
        self.node_dir = os.environ.get("WEAVE_TEST_AMQP_DIR")
        self.ctl_script = os.environ.get("WEAVE_TEST_AMQP_CTL") or CTL
        if not self.url:
            self.own = tempfile.mkdtemp(prefix="weave-amqp-aiopika-")
            self.node_dir = os.path.join(self.own, "node")
            self.url = subprocess.run(
                ["bash", CTL, "start", self.node_dir, str(port_block(3))],
                check=True, capture_output=True, text=True, timeout=180).stdout.strip()
        path = urllib.parse.urlsplit(self.url).path
        self.vhost = urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"
        self.prefix = "wvit.aiopika.%d." % os.getpid()

    def q(self, name):
        return self.prefix + name

    def ctl(self, *args):
        assert self.node_dir, "rabbitmqctl needs the node's directory (WEAVE_TEST_AMQP_DIR)"
        r = subprocess.run(["bash", self.ctl_script, "ctl", self.node_dir, *args],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("rabbitmqctl %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def queue_counts(self, q):
        """(messages, messages_unacknowledged, consumers) of q by rabbitmqctl:
        messages counts the unacked ones too, so a message nobody acked is
        counted whether or not the broker has requeued it yet."""
        out = self.ctl("list_queues", "-p", self.vhost, "name", "messages",
                       "messages_unacknowledged", "consumers")
        for line in out.splitlines():
            cols = line.split("\t")
            if cols[0] == q:
                return tuple(int(c) for c in cols[1:4])
        raise AssertionError("no queue %s in %r" % (q, out))

    def peer(self, *args, timeout=60):
        r = subprocess.run([PEER, *args], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("amqp_peer %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def close(self):
        if self.own:
            subprocess.run(["bash", CTL, "stop", self.node_dir], check=False)
            shutil.rmtree(self.own, ignore_errors=True)


def run(coro, timeout=120):
    """Run an aio-pika coroutine to its end, within timeout seconds."""
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def fresh(url, q):
    """A durable queue of this run, new and empty."""
    conn = await aio_pika.connect_robust(url)
    async with conn:
        ch = await conn.channel()
        await ch.queue_delete(q)
        await ch.declare_queue(q, durable=True)


async def delete(url, *queues):
    conn = await aio_pika.connect_robust(url)
    async with conn:
        ch = await conn.channel()
        for q in queues:
            await ch.queue_delete(q)


def test_aio_pika_reads_what_weave_published():
    w = world()
    q = w.q("to-aiopika")
    run(delete(w.url, q))
    assert w.peer("publish", w.url, q, "5", "weave").strip() == "published 5"

    async def read():
        got = []
        conn = await aio_pika.connect_robust(w.url)
        async with conn:
            ch = await conn.channel()
            queue = await ch.declare_queue(q, durable=True)
            async with queue.iterator() as it:
                async for message in it:
                    async with message.process():
                        got.append(message)
                    if len(got) == 5:
                        break
            assert await queue.get(fail=False) is None, "a sixth message"
            await queue.delete()
        return got

    msgs = run(read())
    assert len(msgs) == 5, msgs
    for i, m in enumerate(msgs):
        assert m.body == b"weave-%d" % i, m.body
        assert m.content_type == "text/plain", m.content_type
        assert m.message_id == "weave-%d" % i, m.message_id
        assert m.correlation_id == "corr-%d" % i, m.correlation_id
        assert m.priority == 3, m.priority
        assert m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT, m.delivery_mode
        assert dict(m.headers) == {"from": "weave", "n": i, "ok": True, "nested": {"k": "v"}}, \
            m.headers


WHEN = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


def aio_pika_headers(i):
    """Headers of every kind pamqp writes: b, s, u, I, i, l (the smallest
    integer kind that holds the value), t, S, x, A, T, V and F in F."""
    return {"from": "aio-pika", "n": i, "ok": False, "short": 1000 + i, "ushort": 40000 + i,
            "int": -100000 - i, "uint": 3000000000 + i, "big": 2 ** 40 + i,
            "raw": b"raw-bytes", "tags": ["a", 1, True], "when": WHEN, "none": None,
            "nested": {"k": "v", "deep": {"n": i}}}


def test_weave_reads_what_aio_pika_published():
    w = world()
    q = w.q("from-aiopika")

    async def publish():
        conn = await aio_pika.connect_robust(w.url)
        async with conn:
            ch = await conn.channel()  # publisher confirms: each publish waits for its ack
            await ch.queue_delete(q)
            queue = await ch.declare_queue(q, durable=True)
            for i in range(5):
                await ch.default_exchange.publish(
                    aio_pika.Message(b"aio-pika-%d" % i, content_type="application/json",
                                     message_id="aio-pika-%d" % i, correlation_id="c%d" % i,
                                     reply_to="answers", priority=7,
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                     headers=aio_pika_headers(i)),
                    routing_key=queue.name)

    run(publish())
    lines = w.peer("consume", w.url, q, "5").splitlines()
    assert len(lines) == 5, lines
    for i, line in enumerate(lines):
        m = line.split("\t")
        assert m[:7] == ["aio-pika-%d" % i, "application/json", "aio-pika-%d" % i, "c%d" % i,
                         "answers", "7", "2"], m
        assert parse_fields(m[7]) == {
            "from": "aio-pika", "n": str(i), "ok": "false", "short": str(1000 + i),
            "ushort": str(40000 + i), "int": str(-100000 - i), "uint": str(3000000000 + i),
            "big": str(2 ** 40 + i), "raw": "raw-bytes", "tags": ["a", "1", "true"],
            "when": str(int(WHEN.timestamp())), "none": "void",
            "nested": {"k": "v", "deep": {"n": str(i)}}}, m[7]
    assert w.queue_counts(q) == (0, 0, 0)
    run(delete(w.url, q))


N = 20


def test_weave_works_the_queue_aio_pika_fed_as_in_the_chapter():
    """aio-pika's producer of section 13.4.1 (default exchange, routing key
    queue.name, then "exit"); weave acks each by hand and stops at "exit"."""
    w = world()
    q = w.q("test_queue")

    async def produce():
        connection = await aio_pika.connect_robust(w.url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(q)
            queue = await channel.declare_queue(q, durable=True)
            for i in range(N):
                await channel.default_exchange.publish(
                    aio_pika.Message(body=("message %d" % i).encode()), routing_key=queue.name)
            await channel.default_exchange.publish(
                aio_pika.Message(body=b"exit"), routing_key=queue.name)

    run(produce())
    lines = w.peer("worker", w.url, q, str(N)).splitlines()
    assert lines == ["message %d" % i for i in range(N)] + ["worked %d" % N], lines
    assert w.queue_counts(q) == (0, 0, 0), "left in the queue (messages, unacked, consumers)"
    run(delete(w.url, q))


async def chapter_consumer(url, q, got):
    """The consumer of section 13.4.1, a list where it prints."""
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(q, durable=True)
        async with queue.iterator() as queue_iter:
            async for message in queue_iter:
                async with message.process():  # acked once the block is done
                    got.append(message.body.decode())
                    if message.body.decode() == "exit":
                        break


def test_aio_pika_works_the_queue_weave_fed_as_in_the_chapter():
    """weave publishes N messages then "exit"; aio-pika's consumer of the
    chapter processes (acks) each in `message.process()` and stops at
    "exit": nothing is left."""
    w = world()
    q = w.q("test_queue")
    run(delete(w.url, q))
    out = w.peer("tasks", w.url, q, str(N), "weave").splitlines()
    assert out == ["confirmed weave-%d" % i for i in range(N)] + [
        "confirmed exit", "sent %d confirmed %d lost 0 reconnects 0" % (N + 1, N + 1)], out
    got = []
    run(chapter_consumer(w.url, q, got))
    assert got == ["weave-%d" % i for i in range(N)] + ["exit"], got
    assert w.queue_counts(q) == (0, 0, 0), "left in the queue (messages, unacked, consumers)"
    run(delete(w.url, q))


ROBUST_MIN = 300


async def wait_until(cond, what, timeout=60):
    for _ in range(int(timeout * 100)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("%s: not within %d s" % (what, timeout))


def test_aio_pika_robust_consumer_gets_every_message_weave_confirmed_across_forced_closes():
    """weave publishes a message every 10 ms (each confirmed; one lost with
    the connection is sent again) until told to stop (SIGTERM), then "exit";
    aio-pika's connect_robust consumer, slower than that (15 ms a message,
    20 unacked at most), processes them while the broker closes every
    connection twice: once weave has 30 confirmed, and again once both are
    back (weave confirming, aio-pika processing). weave stops once both
    are back again and ROBUST_MIN are confirmed: however slow rabbitmqctl
    is, both connections are closed mid-stream. Both reconnect by
    themselves; every message weave got a confirm for is received at
    least once, and the queue is left empty."""
    w = world()
    q = w.q("robust")
    run(fresh(w.url, q))
    # reconnect_interval: aio-pika waits 5 s before dialing again by default
    robust_url = w.url + ("&" if "?" in w.url else "?") + "reconnect_interval=0.5"
    received = []  # processed: acked in message.process()
    stale = []  # delivered over a connection the broker closed
    ack_failed = []
    reconnects = []
    confirmed = []
    closes = []

    async def process(message, body):
        async with message.process():
            received.append(body)
            await asyncio.sleep(0.015)

    async def consume(ready):
        connection = await aio_pika.connect_robust(robust_url)
        connection.reconnect_callbacks.add(lambda *_: reconnects.append(1))
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=20)
            queue = await channel.declare_queue(q, durable=True)
            async with queue.iterator() as queue_iter:
                ready.set()
                async for message in queue_iter:
                    body = message.body.decode()
                    if message.channel.is_closed:
                        # it came before the close: it cannot be acked any
                        # more (aio-pika 8.2.5's ack would wait forever on
                        # the dead channel), the broker delivers it again
                        stale.append(body)
                        continue
                    try:
                        await asyncio.wait_for(process(message, body), 1)
                    except (asyncio.TimeoutError, aiormq.exceptions.AMQPError) as e:
                        # the connection closed while it was processed
                        ack_failed.append("%s: %r" % (body, e))
                        continue
                    if body == "exit":
                        break

    async def both_back(k):
        """weave confirms 30 more; aio-pika has reconnected k times and
        processes messages again."""
        c = len(confirmed)
        await wait_until(lambda: len(confirmed) >= c + 30, "weave confirming again")
        await wait_until(lambda: len(reconnects) >= k, "aio-pika reconnecting")
        r = len(received)
        await wait_until(lambda: len(received) > r, "aio-pika processing again")

    async def close_twice_then_stop(publisher):
        try:
            await wait_until(lambda: len(confirmed) >= 30, "weave's first 30 confirms")
            for k in (1, 2):
                await asyncio.to_thread(w.ctl, "close_all_connections", "-p", w.vhost,
                                        "weave test: forced close")
                closes.append(len(confirmed))
                await both_back(k)
            await wait_until(lambda: len(confirmed) >= ROBUST_MIN, "%d confirms" % ROBUST_MIN)
        finally:
            if publisher.returncode is None:
                publisher.send_signal(signal.SIGTERM)  # "exit", then it ends

    async def scenario():
        ready = asyncio.Event()
        consumer = asyncio.create_task(consume(ready))
        await asyncio.wait_for(ready.wait(), 30)
        publisher = await asyncio.create_subprocess_exec(
            PEER, "tasks", w.url, q, "0", "weave", "10",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        director = asyncio.create_task(close_twice_then_stop(publisher))
        try:
            lines = []

            async def read_out():
                async for raw in publisher.stdout:
                    line = raw.decode().strip()
                    lines.append(line)
                    if line.startswith("confirmed "):
                        confirmed.append(line.split(" ", 1)[1])

            _, err = await asyncio.gather(read_out(), publisher.stderr.read())
            assert await publisher.wait() == 0, err.decode()
            await director
            await asyncio.wait_for(consumer, 120)
        finally:
            if publisher.returncode is None:
                publisher.kill()
                await publisher.wait()
            consumer.cancel()
            director.cancel()
        return lines[-1]

    out = run(scenario(), timeout=300)
    # "sent S confirmed C lost L reconnects R"
    words = out.split()
    assert words[0::2] == ["sent", "confirmed", "lost", "reconnects"], out
    sent, n_confirmed, lost, weave_reconnects = (int(x) for x in words[1::2])
    duplicated = len(received) - len(set(received))
    print("    forced closes at %s confirmed; weave sent %d, confirmed %d (%d lost with a "
          "connection and sent again), reconnected %d times; aio-pika received %d (%d distinct), "
          "duplicated %d, dropped %d delivered before a close, %d whose ack failed, "
          "reconnected %d times"
          % (" and ".join(map(str, closes)), sent, n_confirmed, lost, weave_reconnects,
             len(received), len(set(received)), duplicated, len(stale), len(ack_failed),
             len(reconnects)))
    for reason in ack_failed[:1]:
        print("    an ack that could not go: %s" % reason)
    expected = ["weave-%d" % i for i in range(n_confirmed - 1)] + ["exit"]
    assert confirmed == expected, "weave confirmed %r" % confirmed
    assert n_confirmed >= ROBUST_MIN and sent - lost == n_confirmed, out
    assert len(closes) == 2 and weave_reconnects == 2, \
        "weave reconnected %d times" % weave_reconnects
    assert len(reconnects) == 2, "aio-pika reconnected %d times" % len(reconnects)
    seen = set(received)
    missing = [body for body in confirmed if body not in seen]
    assert not missing, "confirmed by the broker, never received: %s" % missing
    assert seen == set(expected), seen - set(expected)
    assert w.queue_counts(q) == (0, 0, 0), "left in the queue (messages, unacked, consumers)"
    run(delete(w.url, q))


_world = None


def world():
    global _world
    if _world is None:
        _world = World()
    return _world


if __name__ == "__main__":
    if not os.path.exists(PEER):
        print("test_amqp_aiopika: %s is not built" % PEER)
        print("0 passed, 1 failed")
        sys.exit(1)
    try:
        httptest.run(globals())
    finally:
        if _world is not None:
            _world.close()
