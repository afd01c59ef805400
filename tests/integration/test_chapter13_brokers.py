"""§13.4 and §13.10 in the chapter's service on real brokers: RabbitMQ
(AMQP_URL: the node scripts/test.sh started, $WEAVE_TEST_AMQP_URL) and
Kafka (KAFKA_BROKERS: librdkafka's mock cluster, started here by
kafka_mock_cluster). On each: POST /messages is processed and acked by a
consumer, a message another client (pika, confluent_kafka) publishes the
book's way reaches the service's consumers, what the service publishes
reaches that client, "exit" stops the consumers and a message sent
meanwhile waits for POST /messages/consumer, /readyz checks the broker
(503 while RabbitMQ refuses the service, ready again after), and the
service does not start without its broker. On Kafka, §13.10.1's events go
through the topic "events" and are read back."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import check, eq, run  # noqa: E402
import test_chapter13 as c13  # noqa: E402
import test_chapter13_messages  # noqa: E402
from test_chapter13 import req  # noqa: E402
from test_kafka import Cluster  # noqa: E402 - the mock cluster, in a process of its own
AMQP_URL = os.environ.get("WEAVE_TEST_AMQP_URL")
# the test node's second virtual host: this test's queues stay out of the others' way
AMQP_VHOST = "weave/test"

import pika  # noqa: E402 - scripts/deps.sh test installs python3-pika
from confluent_kafka import Consumer, Producer  # noqa: E402 - python3-confluent-kafka


class Service(test_chapter13_messages.Service):
    def wait_for(self, what, fn, timeout=30):  # a broker takes longer than the bus
        return super().wait_for(what, fn, timeout)

    def readyz(self):
        st, _, body = req(self.port, "GET", "/readyz")
        return st, json.loads(body)


def texts(state):
    return [m["text"] for m in state["messages"]]


# ------------------------------------------------------------- RabbitMQ

def amqp_url():
    assert AMQP_URL, "no WEAVE_TEST_AMQP_URL: scripts/test.sh starts RabbitMQ and sets it"
    base = AMQP_URL.split("@", 1)[1].split("/", 1)[0]
    return "amqp://weave:weave-secret@%s/%s" % (base, AMQP_VHOST.replace("/", "%2F"))


def pika_channel():
    host, port = AMQP_URL.split("@", 1)[1].split("/", 1)[0].split(":")
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host=host, port=int(port), virtual_host=AMQP_VHOST,
        credentials=pika.PlainCredentials("weave", "weave-secret")))
    return conn, conn.channel()


def fresh_rabbitmq():
    """No queue or exchange left by an earlier run."""
    conn, ch = pika_channel()
    for q in ("test_queue.chapter13", "test_queue.peer"):
        ch.queue_delete(q)
    ch.exchange_delete("test_queue")
    conn.close()


def test_messages_on_rabbitmq_are_processed_and_reach_other_amqp_clients():
    fresh_rabbitmq()
    with Service(env={"AMQP_URL": amqp_url()}) as s:
        st, ready = s.readyz()
        eq((st, ready["checks"]["bus"]), (200, "ok"), "/readyz with RabbitMQ up")
        check(ready["backends"]["bus"].startswith("amqp://weave:***@"), "banner %r", ready)
        st, doc = s.publish("Hello, RabbitMQ!")
        eq((st, doc), (202, {"topic": "test_queue", "groups": 1, "bytes": 16}), "publish")
        got = s.wait_for("processed", lambda x: x["processed"] == 1)
        eq((got["messages"][0]["text"], got["messages"][0]["deliveries"]),
           ("Hello, RabbitMQ!", 1), "the message")
        eq(got["pending"], 0, "the queue is empty: acked")
        # pika publishes the book's way, to the topic's exchange
        conn, ch = pika_channel()
        ch.basic_publish("test_queue", "", b"from pika",
                         pika.BasicProperties(delivery_mode=2))
        got = s.wait_for("pika's message", lambda x: "from pika" in texts(x))
        # a second group (another service) gets its own copy of what the service publishes
        ch.queue_declare("test_queue.peer", durable=True)
        ch.queue_bind("test_queue.peer", "test_queue")
        eq(s.publish("to everyone")[1]["groups"], 1, "publish")
        body = None
        for _ in range(100):
            _, _, body = ch.basic_get("test_queue.peer", auto_ack=True)
            if body:
                break
            time.sleep(0.05)
        eq(body, b"to everyone", "the peer's group got it")
        s.wait_for("the service's group got it too", lambda x: "to everyone" in texts(x))
        # "exit" stops the consumers; a message sent meanwhile waits in the queue
        s.publish("exit")
        s.wait_for("stopped", lambda x: x["consumer"] == "stopped")
        n = s.state()["processed"]
        s.publish("while stopped")
        got = s.wait_for("waiting", lambda x: x["pending"] == 1)
        eq(got["processed"], n, "nothing processed while stopped")
        eq(req(s.port, "POST", "/messages/consumer")[0], 200, "restart")
        got = s.wait_for("processed after the restart",
                         lambda x: x["processed"] == n + 1 and x["pending"] == 0)
        eq(got["messages"][0]["text"], "while stopped", "the waiting message")
        conn.close()


def ctl(*args):
    r = subprocess.run(["bash", os.environ["WEAVE_TEST_AMQP_CTL"], "ctl",
                        os.environ["WEAVE_TEST_AMQP_DIR"], *args],
                       capture_output=True, text=True, timeout=60)
    eq(r.returncode, 0, "rabbitmqctl %s: %s" % (" ".join(args), r.stderr))


def test_readyz_fails_while_rabbitmq_refuses_the_service_and_recovers():
    with Service(env={"AMQP_URL": amqp_url()}) as s:
        eq(s.readyz()[0], 200, "ready at first")
        # the broker takes the service's rights away and drops its connection:
        # every reconnect is refused until the rights come back
        ctl("clear_permissions", "-p", AMQP_VHOST, "weave")
        try:
            ctl("close_all_connections", "-p", AMQP_VHOST, "chapter13 test")
            deadline = time.monotonic() + 20
            st, ready = s.readyz()
            while st == 200 and time.monotonic() < deadline:
                time.sleep(0.1)
                st, ready = s.readyz()
            eq((st, ready["status"], ready["failing"]), (503, "not ready", "bus"), "/readyz")
            check("RabbitMQ" in ready["checks"]["bus"], "why: %r", ready)
        finally:
            ctl("set_permissions", "-p", AMQP_VHOST, "weave", ".*", ".*", ".*")
        # each shard's connection comes back by itself (its backoff): ready
        # again once every shard answers 200
        deadline = time.monotonic() + 30
        ok = 0
        while ok < 6 and time.monotonic() < deadline:
            ok = ok + 1 if s.readyz()[0] == 200 else 0
            time.sleep(0.05)
        eq(ok, 6, "ready again once the broker lets it in")
        eq(s.publish("after the outage")[0], 202, "publish")
        s.wait_for("processed", lambda x: "after the outage" in texts(x))


def test_service_without_its_broker_does_not_start_and_says_why():
    web = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.run([c13.BIN, "--port", "0", "--web-dir", web,
                           "--database-url", "sqlite::memory:",
                           "--amqp-url", "amqp://guest:guest@127.0.0.1:1/"],
                          capture_output=True, text=True, timeout=30)
    eq(proc.returncode, 1, "exit status: %s" % proc.stderr)
    check("bus" in proc.stderr and "amqp://guest:***@127.0.0.1:1/" in proc.stderr,
          "the error names the client and the redacted URL: %r", proc.stderr)


# ---------------------------------------------------------------- Kafka

# the mock's group coordinator: a short session so a rebalance takes seconds
KAFKA_PROPS = ("consumer.session.timeout.ms=4000&consumer.heartbeat.interval.ms=300"
               "&consumer.fetch.wait.max.ms=50&topic.metadata.refresh.interval.ms=1000"
               "&producer.linger.ms=5")


def test_messages_and_events_on_kafka_are_processed_and_reach_confluent_kafka():
    with Cluster("test_topic:1", "events:1") as cl:
        env = {"BUS_URL": "kafka://%s?%s" % (cl.bootstraps, KAFKA_PROPS),
               "KAFKA_BROKERS": "", "AMQP_URL": ""}
        with Service(env=env) as s:
            st, ready = s.readyz()
            eq((st, ready["checks"]["bus"]), (200, "ok"), "/readyz with Kafka up")
            st, doc = s.publish("Hello, Kafka!")
            eq((st, doc), (202, {"topic": "test_topic", "groups": 1, "bytes": 13}), "publish")
            got = s.wait_for("processed", lambda x: x["processed"] == 1)
            eq(got["messages"][0]["text"], "Hello, Kafka!", "the message")
            eq(got["pending"], None, "Kafka's lag is the brokers' to tell")
            # confluent_kafka produces the book's way (send_and_wait)
            p = Producer({"bootstrap.servers": cl.bootstraps, "acks": "all"})
            p.produce("test_topic", b"from confluent_kafka")
            eq(p.flush(10), 0, "confluent_kafka's produce delivered")
            s.wait_for("its message", lambda x: "from confluent_kafka" in texts(x))
            # and reads what the service produced, in a group of its own
            c = Consumer({"bootstrap.servers": cl.bootstraps, "group.id": "peer",
                          "auto.offset.reset": "earliest", "session.timeout.ms": 4000})
            c.subscribe(["test_topic"])
            seen = []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(seen) < 2:
                m = c.poll(0.5)
                if m is not None and m.error() is None:
                    seen.append(m.value())
            c.close()
            eq(sorted(seen), [b"Hello, Kafka!", b"from confluent_kafka"], "the peer's group")
            # "exit" stops the consumers; what comes meanwhile waits in the topic
            s.publish("exit")
            s.wait_for("stopped", lambda x: x["consumer"] == "stopped")
            n = s.state()["processed"]
            s.publish("while stopped")
            time.sleep(1)
            eq(s.state()["processed"], n, "nothing processed while stopped")
            eq(req(s.port, "POST", "/messages/consumer")[0], 200, "restart")
            got = s.wait_for("processed after the restart", lambda x: x["processed"] == n + 1)
            eq(got["messages"][0]["text"], "while stopped", "the waiting message, read once")
            # §13.10.1: events through the topic "events", read back by the reader
            st, _, body = req(s.port, "POST", "/events",
                              json.dumps([{"type": "click", "n": i} for i in range(5)]).encode(),
                              {"Content-Type": "application/json"})
            eq(st, 202, "POST /events: %r" % body)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                st, _, body = req(s.port, "GET", "/events")
                doc = json.loads(body)
                if doc.get("read", 0) >= 5:
                    break
                time.sleep(0.1)
            check(doc.get("read", 0) >= 5, "events read back: %r", doc)


if __name__ == "__main__":
    run(globals())
