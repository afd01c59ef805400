"""§13.4 in the chapter's service (examples/chapter13/s13_4_messaging.c) on
its default in-process bus: POST /messages publishes, a consumer per
shard processes and acks each message (GET /messages shows it with its
shard and latency), 300 messages sent at once are each processed exactly
once, the book's "exit" stops the consumers (later messages wait in the
group's backlog) and POST /messages/consumer starts them again,
GET /messages/stream delivers processed messages as Server-Sent Events,
bad bodies get 422, and the service stops cleanly with a stream open."""
import http.client
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import check, eq, run  # noqa: E402
import test_chapter13 as c13  # noqa: E402
from test_chapter13 import req  # noqa: E402


class Service(c13.Service):
    def publish(self, text):
        st, _, body = req(self.port, "POST", "/messages", text.encode(),
                          {"Content-Type": "text/plain"})
        return st, json.loads(body)

    def state(self):
        st, _, body = req(self.port, "GET", "/messages")
        eq(st, 200, "GET /messages")
        return json.loads(body)

    def wait_for(self, what, fn, timeout=5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.state()
            if fn(s):
                return s
            time.sleep(0.02)
        raise AssertionError("not %s within %s s: %r" % (what, timeout, self.state()))


def test_published_message_is_processed_and_acked_by_a_consumer():
    with Service() as s:
        eq(s.state()["consumer"], "running", "consumers at start")
        st, doc = s.publish("Hello, RabbitMQ!")
        eq((st, doc), (202, {"topic": "test_queue", "groups": 1, "bytes": 16}), "publish")
        got = s.wait_for("processed", lambda x: x["processed"] == 1)
        m = got["messages"][0]
        eq((m["text"], m["deliveries"]), ("Hello, RabbitMQ!", 1), "the message")
        check(m["shard"] in (0, 1), "shard %r", m["shard"])
        check(0 <= m["latency_ms"] < 2000, "latency %r", m["latency_ms"])
        eq(got["pending"], 0, "nothing left in the group")
        _, _, metrics = req(s.port, "GET", "/metrics")
        for line in ("messages_published_total 1", "messages_processed_total 1"):
            check(line in metrics.decode().splitlines(), "no %r in /metrics", line)


def test_300_messages_at_once_are_each_processed_exactly_once():
    with Service() as s:
        texts = ["m%03d" % i for i in range(300)]
        errors = []

        def send(chunk):
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
            for t in chunk:
                c.request("POST", "/messages", t.encode())
                r = c.getresponse()
                r.read()
                if r.status != 202:
                    errors.append((t, r.status))
            c.close()

        threads = [threading.Thread(target=send, args=(texts[i::6],)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        eq(errors, [], "publishes refused")
        got = s.wait_for("all processed", lambda x: x["processed"] == 300)
        eq(got["pending"], 0, "backlog")
        # the log keeps the last 50: distinct, each delivered once
        last = [m["text"] for m in got["messages"]]
        eq(len(last), 50, "log size")
        eq(len(set(last)), 50, "duplicates in the last 50")
        check(all(m["deliveries"] == 1 for m in got["messages"]), "redelivered: %r", got)
        shards = {m["shard"] for m in got["messages"]}
        check(shards <= {0, 1}, "shards %r", shards)
        time.sleep(0.3)
        eq(s.state()["processed"], 300, "processed after a pause: none twice")


def test_exit_stops_the_consumers_until_they_are_started_again():
    with Service() as s:
        s.publish("exit")
        s.wait_for("stopped", lambda x: x["consumer"] == "stopped" and x["processed"] == 1)
        eq(s.publish("while stopped")[0], 202, "publish while stopped")
        time.sleep(0.3)
        got = s.state()
        eq((got["processed"], got["pending"]), (1, 1), "waiting in the group, not processed")
        st, _, body = req(s.port, "POST", "/messages/consumer")
        eq((st, json.loads(body)), (200, {"consumer": "running"}), "restart")
        got = s.wait_for("processed after the restart", lambda x: x["processed"] == 2)
        eq(got["messages"][0]["text"], "while stopped", "the waiting message")
        eq(got["pending"], 0, "backlog")
        # a second restart while running changes nothing
        eq(req(s.port, "POST", "/messages/consumer")[0], 200, "restart while running")
        s.publish("once")
        got = s.wait_for("processed", lambda x: x["processed"] == 3)
        time.sleep(0.2)
        eq(s.state()["processed"], 3, "one consumer per shard, not two")


def test_stream_sends_processed_messages_as_server_sent_events():
    with Service() as s:
        s.publish("before the stream")
        s.wait_for("processed", lambda x: x["processed"] == 1)
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        c.request("GET", "/messages/stream")
        r = c.getresponse()
        eq(r.status, 200, "status")
        eq(r.getheader("Content-Type"), "text/event-stream", "type")

        def next_event():
            lines = []
            while True:
                line = r.readline().decode()
                check(line != "", "the stream ended")
                if line == "\n" and lines:
                    return lines
                if line.strip() and not line.startswith(":"):
                    lines.append(line.rstrip("\n"))

        ev = next_event()
        eq(ev[0], "event: message", "event name")
        eq(json.loads(ev[1][len("data: "):])["text"], "before the stream", "the backlog first")
        for text in ("one", "two"):
            s.publish(text)
            ev = next_event()
            eq(json.loads(ev[1][len("data: "):])["text"], text, "live event")
        # the service stops cleanly with the stream still open (checked on exit)
        s.stream = (c, r)


def test_bad_message_bodies_are_422():
    with Service() as s:
        for body in (b"", b"x" * (64 * 1024 + 1)):
            st, _, data = req(s.port, "POST", "/messages", body)
            eq(st, 422, "a body of %d bytes" % len(body))
            eq(json.loads(data)["detail"][0]["loc"], ["body"], "loc")
        eq(req(s.port, "POST", "/messages", b"x" * (64 * 1024))[0], 202, "64 KiB exactly")
        eq(s.state()["processed"] <= 1, True, "nothing else published")


if __name__ == "__main__":
    run(globals())
