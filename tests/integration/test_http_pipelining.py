"""Pipelining: requests written back to back on one connection are answered
in order, whatever their mix and however the bytes are split on the wire."""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import Conn, build, chunked, eq, run, shared  # noqa: E402


def mixed_requests(n, seed):
    """n requests and, for each, (method, check(response))."""
    rnd = random.Random(seed)
    reqs, expect = [], []
    for i in range(n):
        kind = rnd.choice(["plain", "echo", "head", "user", "chunked_echo"])
        if kind == "plain":
            reqs.append(build("GET", "/plaintext"))
            expect.append(("GET", 200, b"Hello, World!"))
        elif kind == "echo":
            body = (b"request %d " % i) * rnd.randint(0, 300)
            reqs.append(build("POST", "/echo", [("Content-Type", "text/x-%d" % i)], body))
            expect.append(("POST", 200, body))
        elif kind == "chunked_echo":
            body = rnd.randbytes(rnd.randint(1, 3000))
            pieces = [body[k:k + 700] for k in range(0, len(body), 700)]
            reqs.append(build("POST", "/echo", [("Transfer-Encoding", "chunked")],
                              chunked(pieces)))
            expect.append(("POST", 200, body))
        elif kind == "head":
            reqs.append(build("HEAD", "/plaintext"))
            expect.append(("HEAD", 200, b""))
        else:
            reqs.append(build("GET", "/users/%d" % i))
            expect.append(("GET", 200, b'{"id":%d}' % i))
    return reqs, expect


def read_all_in_order(c, expect):
    for i, (method, status, body) in enumerate(expect):
        r = c.read_response(method)
        eq(r.status, status, "response %d status" % i)
        eq(r.body, body, "response %d body" % i)
        if method == "HEAD":
            eq(r.header("Content-Length"), "13", "response %d (HEAD) Content-Length" % i)


def test_hundred_pipelined_mixed_requests_are_answered_in_order():
    reqs, expect = mixed_requests(100, seed=1)
    with Conn(shared().port, timeout=10) as c:
        c.send(b"".join(reqs))
        read_all_in_order(c, expect)
        eq(c.request("GET", "/plaintext").status, 200, "a request after the batch")
        eq(c.nothing_pending(0.05), True, "nothing extra after the batch")


def test_two_thousand_pipelined_requests_are_all_answered_in_order():
    data = b"".join(build("GET", "/users/%d" % i) for i in range(2000))
    with Conn(shared().port, timeout=10) as c:
        threading.Thread(target=c.send, args=(data,), daemon=True).start()
        for i in range(2000):
            eq(c.read_response().body, b'{"id":%d}' % i, "response %d" % i)


def test_pipelined_requests_split_at_arbitrary_boundaries_parse_the_same():
    reqs, expect = mixed_requests(40, seed=2)
    data = b"".join(reqs)
    rnd = random.Random(3)
    cuts = sorted(rnd.sample(range(1, len(data)), 60))
    with Conn(shared().port, timeout=10) as c:
        got = []

        def reader():
            try:
                read_all_in_order(c, expect)
                got.append(True)
            except BaseException as e:  # reported below
                got.append(e)

        t = threading.Thread(target=reader)
        t.start()
        prev = 0
        for cut in cuts + [len(data)]:
            c.send(data[prev:cut])
            prev = cut
            time.sleep(rnd.uniform(0, 0.004))
        t.join(15)
        eq(got[:1] == [True], True, "responses in order (%r)" % got)


def test_requests_sent_byte_by_byte_are_answered():
    data = build("GET", "/users/5") + build("POST", "/echo", body=b"x=1") + build("HEAD", "/plaintext")
    with Conn(shared().port) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
            if i % 16 == 0:
                time.sleep(0.001)
        read_all_in_order(c, [("GET", 200, b'{"id":5}'), ("POST", 200, b"x=1"), ("HEAD", 200, b"")])


def test_pipelined_chunked_and_big_responses_stay_in_order():
    expect = []
    data = b""
    for i in range(10):
        data += build("GET", "/stream?n=%d" % (i + 1))
        expect.append(("GET", 200, b"".join(b"chunk %d\n" % k for k in range(i + 1))))
        data += build("GET", "/big?n=%d" % (100000 + i))
        expect.append(("GET", 200, None))
        data += build("GET", "/users/%d" % i)
        expect.append(("GET", 200, b'{"id":%d}' % i))
    alphabet = bytes(range(ord("a"), ord("a") + 26))
    with Conn(shared().port, timeout=10) as c:
        threading.Thread(target=c.send, args=(data,), daemon=True).start()
        for i, (method, status, body) in enumerate(expect):
            r = c.read_response(method)
            eq(r.status, status, "response %d status" % i)
            if body is None:
                n = 100000 + i // 3
                eq(len(r.body), n, "response %d length" % i)
                eq(r.body, (alphabet * (n // 26 + 1))[:n], "response %d body" % i)
            else:
                eq(r.body, body, "response %d body" % i)


def test_slow_handler_in_a_pipeline_holds_back_later_responses():
    data = build("GET", "/sleep?ms=150") + build("GET", "/users/1") + build("GET", "/users/2")
    with Conn(shared().port) as c:
        t0 = time.monotonic()
        c.send(data)
        r = c.read_response()
        eq(r.status, 200, "sleep status")
        eq(r.body, b'{"slept":true}', "sleep body first")
        eq(c.read_response().body, b'{"id":1}', "second")
        eq(c.read_response().body, b'{"id":2}', "third")
        eq(time.monotonic() - t0 >= 0.14, True, "the sleep was honoured")


def test_errors_in_a_pipeline_keep_the_connection_when_framing_is_intact():
    data = (build("GET", "/nowhere") + build("GET", "/fail/22") + build("DELETE", "/plaintext")
            + build("GET", "/plaintext"))
    with Conn(shared().port) as c:
        c.send(data)
        eq([c.read_response().status for _ in range(4)], [404, 400, 405, 200], "statuses")


if __name__ == "__main__":
    run(globals())
