"""weave's AMQP client and two independent clients, pika (Python) and
amqplib (Node, pinned in tests/integration/node), on one RabbitMQ node,
each reading what the other wrote.

The node is $WEAVE_TEST_AMQP_URL when scripts/test.sh started one, else
this test starts its own with scripts/rabbitmq_test_server.sh (and stops
it). weave's side is tests/integration/amqp_peer.c. Checked both ways with
each peer: bodies, content type, message and correlation ids, priority,
persistent delivery mode, and headers of several types (strings, integers
small and large, booleans, a nested table) as the other side wrote them;
and a request/reply round trip where pika asks and weave answers to its
reply-to queue with its correlation id.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httptest  # noqa: E402 - the integration tests' runner
from httptest import port_block  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD_DIR", "build/release")
PEER = os.path.join(BUILD, "amqp_peer")
NODE_DIR = os.path.join(ROOT, "tests", "integration", "node")
CTL = os.path.join(ROOT, "scripts", "rabbitmq_test_server.sh")

try:
    import pika
except ImportError:
    print("test_amqp_peers: pika is not installed (apt-get install python3-pika, "
          "scripts/deps.sh test)")
    print("0 passed, 1 failed")
    sys.exit(1)


def text(v):
    return v.decode() if isinstance(v, bytes) else v


class World:
    def __init__(self):
        self.dir = None
        self.url = os.environ.get("WEAVE_TEST_AMQP_URL")
        if not self.url:
            self.dir = tempfile.mkdtemp(prefix="weave-amqp-it-")
            self.url = subprocess.run(
                ["bash", CTL, "start", os.path.join(self.dir, "node"), str(port_block(3))],
                check=True, capture_output=True, text=True, timeout=180).stdout.strip()
        self.prefix = "wvit.%d." % os.getpid()
        self.params = pika.URLParameters(self.url)

    def q(self, name):
        return self.prefix + name

    def pika(self):
        return pika.BlockingConnection(self.params)

    def peer(self, *args, timeout=60):
        r = subprocess.run([PEER, *args], capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("amqp_peer %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def weave_consumes(self, q, n):
        """amqp_peer consume: (body, type, id, corr, reply_to, prio, mode, headers) each."""
        lines = self.peer("consume", self.url, q, str(n)).splitlines()
        assert len(lines) == n, lines
        return [line.split("\t") for line in lines]

    def node(self, *args):
        r = subprocess.run(["node", "amqp_peer.js", *args], cwd=NODE_DIR, capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise AssertionError("amqp_peer.js %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def fresh(self, name):
        """A durable queue of this run, new and empty."""
        q = self.q(name)
        with self.pika() as conn:
            ch = conn.channel()
            ch.queue_delete(q)
            ch.queue_declare(q, durable=True)
        return q

    def delete(self, *queues):
        with self.pika() as conn:
            ch = conn.channel()
            for q in queues:
                ch.queue_delete(q)

    def close(self):
        if self.dir:
            subprocess.run(["bash", CTL, "stop", os.path.join(self.dir, "node")], check=False)
            shutil.rmtree(self.dir, ignore_errors=True)


def test_pika_reads_what_weave_published():
    w = world()
    q = w.q("to-pika")
    w.delete(q)
    assert w.peer("publish", w.url, q, "5", "weave").strip() == "published 5"
    with w.pika() as conn:
        ch = conn.channel()
        for i in range(5):
            method, props, body = ch.basic_get(q, auto_ack=True)
            assert method is not None, "message %d missing" % i
            assert body == b"weave-%d" % i, body
            assert props.content_type == "text/plain"
            assert props.message_id == "weave-%d" % i
            assert props.correlation_id == "corr-%d" % i
            assert props.priority == 3
            assert props.delivery_mode == 2, props.delivery_mode
            h = props.headers
            assert text(h["from"]) == "weave" and h["n"] == i and h["ok"] is True, h
            assert text(h["nested"]["k"]) == "v", h
        assert ch.basic_get(q)[0] is None
        ch.queue_delete(q)


def test_weave_reads_what_pika_published():
    w = world()
    q = w.fresh("from-pika")
    with w.pika() as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(5):
            ch.basic_publish(
                "", q, b"pika-%d" % i,
                pika.BasicProperties(content_type="application/json", message_id="pika-%d" % i,
                                     correlation_id="c%d" % i, reply_to="answers", priority=7,
                                     delivery_mode=2,
                                     headers={"from": "pika", "n": i, "ok": False,
                                              "big": 2 ** 40 + i, "nested": {"k": "v"}}))
    for i, m in enumerate(w.weave_consumes(q, 5)):
        assert m[:7] == ["pika-%d" % i, "application/json", "pika-%d" % i, "c%d" % i,
                         "answers", "7", "2"], m
        headers = m[7]
        fields = dict(kv.split("=", 1) for kv in headers.replace("{k=v}", "{k:v}").split(" "))
        assert fields == {"from": "pika", "n": str(i), "ok": "false", "big": str(2 ** 40 + i),
                          "nested": "{k:v}"}, fields
    w.delete(q)


def test_pika_asks_weave_answers():
    w = world()
    q = w.fresh("rpc")
    server = subprocess.Popen([PEER, "serve", w.url, q, "3"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        with w.pika() as conn:
            ch = conn.channel()
            replies = ch.queue_declare("", exclusive=True).method.queue
            for i in range(3):
                ch.basic_publish("", q, b"req-%d" % i,
                                 pika.BasicProperties(reply_to=replies, correlation_id="id-%d" % i))
            got = {}
            for method, props, body in ch.consume(replies, auto_ack=True, inactivity_timeout=20):
                assert method is not None, "no reply within 20 s (got %r)" % got
                got[props.correlation_id] = body
                if len(got) == 3:
                    break
            ch.cancel()
        assert got == {"id-%d" % i: b"reply to req-%d" % i for i in range(3)}, got
        out, err = server.communicate(timeout=30)
        assert server.returncode == 0 and out.strip() == "served 3", (out, err)
    finally:
        if server.poll() is None:
            server.kill()
    w.delete(q)


def test_amqplib_reads_what_weave_published():
    w = world()
    q = w.q("to-node")
    w.delete(q)
    w.peer("publish", w.url, q, "4", "weave")
    msgs = [json.loads(line) for line in w.node("consume", w.url, q, "4").splitlines()]
    assert [m["body"] for m in msgs] == ["weave-%d" % i for i in range(4)], msgs
    for i, m in enumerate(msgs):
        assert m["contentType"] == "text/plain" and m["messageId"] == "weave-%d" % i, m
        assert m["correlationId"] == "corr-%d" % i and m["priority"] == 3, m
        assert m["deliveryMode"] == 2, m
        assert m["headers"] == {"from": "weave", "n": i, "ok": True, "nested": {"k": "v"}}, m
    w.delete(q)


def test_weave_reads_what_amqplib_published():
    w = world()
    q = w.q("from-node")
    w.delete(q)
    assert w.node("publish", w.url, q, "4", "node").strip() == "published 4"
    for i, m in enumerate(w.weave_consumes(q, 4)):
        assert m == ["node-%d" % i, "text/plain", "node-%d" % i, "corr-%d" % i, "", "5", "2",
                     "from=node n=%d ok=true nested={k=v}" % i], m
    w.delete(q)


_world = None


def world():
    global _world
    if _world is None:
        _world = World()
    return _world


if __name__ == "__main__":
    if not os.path.exists(PEER):
        print("test_amqp_peers: %s is not built" % PEER)
        print("0 passed, 1 failed")
        sys.exit(1)
    if not os.path.exists(os.path.join(NODE_DIR, "node_modules", "amqplib")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                       check=True, timeout=300)
    try:
        httptest.run(globals())
    finally:
        if _world is not None:
            _world.close()
