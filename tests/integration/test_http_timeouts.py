"""Timeouts, set small through the environment: a head trickled in too
slowly (slowloris) gets 408 and is closed, a body too slow gets 408 (or is
closed), an idle keep-alive connection is closed quietly; none of them cut a
client that is merely slow between requests or a handler that takes long."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import Closed, Conn, Server, build, check, eq, run  # noqa: E402


def test_slowloris_head_gets_408_and_is_closed():
    with Server(HEADER_TIMEOUT_MS=500) as s, Conn(s.port) as c:
        t0 = time.monotonic()
        c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
        r = None
        for ch in b"X-Slow: " + b"a" * 100:
            # a byte every 100 ms: always something new, never a full head
            if c.closed_within(0.1) or c.buf:
                break
            if not c.try_send(bytes([ch])):
                break
        elapsed = time.monotonic() - t0
        try:
            r = c.read_response(timeout=1)
        except Closed:
            pass
        check(r is not None, "closed without a 408 after %.2f s", elapsed)
        eq(r.status, 408, "status")
        check(0.4 <= elapsed <= 1.5, "408 after %.2f s with HEADER_TIMEOUT_MS=500", elapsed)
        check(r.has_token("Connection", "close"), "408 without Connection: close: %r", r.headers)
        c.expect_closed(1)
        s.assert_serving()


def test_partial_head_then_silence_gets_408():
    with Server(HEADER_TIMEOUT_MS=300) as s, Conn(s.port) as c:
        t0 = time.monotonic()
        c.send(b"GET /plaintext HTTP/1.1\r\nHo")
        r = c.read_response(timeout=2)
        elapsed = time.monotonic() - t0
        eq(r.status, 408, "status")
        check(0.25 <= elapsed <= 1.3, "408 after %.2f s with HEADER_TIMEOUT_MS=300", elapsed)
        c.expect_closed(1)


def test_header_timeout_is_per_request_not_per_connection():
    with Server(HEADER_TIMEOUT_MS=300, IDLE_TIMEOUT_MS=2000) as s, Conn(s.port) as c:
        t0 = time.monotonic()
        for i in range(7):
            eq(c.request("GET", "/plaintext").status, 200, "request %d" % i)
            time.sleep(0.1)
        check(time.monotonic() - t0 > 0.6, "the test ran too fast to mean anything")


def test_slow_handler_is_not_cut_by_head_or_body_timeouts():
    with Server(HEADER_TIMEOUT_MS=200, BODY_TIMEOUT_MS=200) as s, Conn(s.port) as c:
        r = c.request("GET", "/sleep?ms=600")
        eq(r.status, 200, "status")
        eq(r.body, b'{"slept":true}', "body")


def test_idle_keep_alive_connection_is_closed_quietly_after_idle_timeout():
    with Server(IDLE_TIMEOUT_MS=300) as s, Conn(s.port) as c:
        eq(c.request("GET", "/plaintext").status, 200, "status")
        t0 = time.monotonic()
        c.expect_closed(2, "idle keep-alive connection")  # and no bytes (no 408)
        elapsed = time.monotonic() - t0
        check(0.25 <= elapsed <= 1.3, "closed after %.2f s with IDLE_TIMEOUT_MS=300", elapsed)
        s.assert_serving()


def test_connection_that_never_sends_is_closed_quietly_after_header_timeout():
    # a new connection's wait for its first byte is part of the request
    # head's time (nginx's client_header_timeout), not the keep-alive idle
    # time: a silent client cannot hold a connection for the idle timeout
    with Server(IDLE_TIMEOUT_MS=5000, HEADER_TIMEOUT_MS=300) as s, Conn(s.port) as c:
        t0 = time.monotonic()
        c.expect_closed(2, "silent connection")  # and no bytes (no 408)
        elapsed = time.monotonic() - t0
        check(0.25 <= elapsed <= 1.3, "closed after %.2f s with HEADER_TIMEOUT_MS=300", elapsed)
        s.assert_serving()


def test_idle_timeout_restarts_after_each_request():
    with Server(IDLE_TIMEOUT_MS=400) as s, Conn(s.port) as c:
        for i in range(4):
            eq(c.request("GET", "/plaintext").status, 200, "request %d" % i)
            time.sleep(0.2)  # 0.8 s in all: longer than the idle timeout
        eq(c.request("GET", "/plaintext").status, 200, "last request")


def test_slow_body_gets_408_or_is_closed():
    with Server(BODY_TIMEOUT_MS=400, HEADER_TIMEOUT_MS=5000) as s, Conn(s.port) as c:
        c.send(build("POST", "/echo", [("Content-Length", "100")]) + b"0123456789")
        t0 = time.monotonic()
        try:
            r = c.read_response(timeout=3)
        except Closed:
            r = None
        elapsed = time.monotonic() - t0
        check(0.3 <= elapsed <= 1.5, "answered after %.2f s with BODY_TIMEOUT_MS=400", elapsed)
        if r is not None:
            eq(r.status, 408, "status")
            c.expect_closed(1)
        s.assert_serving()


def test_slow_chunked_body_trickled_gets_408_or_is_closed():
    with Server(BODY_TIMEOUT_MS=400, HEADER_TIMEOUT_MS=5000) as s, Conn(s.port) as c:
        c.send(build("POST", "/echo", [("Transfer-Encoding", "chunked")]))
        t0 = time.monotonic()
        for _ in range(30):  # one byte chunk every 100 ms, never ending
            if c.closed_within(0.1) or c.buf:
                break
            if not c.try_send(b"1\r\nx\r\n"):
                break
        try:
            r = c.read_response(timeout=1)
        except Closed:
            r = None
        elapsed = time.monotonic() - t0
        check(elapsed <= 1.5, "body trickled for %.2f s with BODY_TIMEOUT_MS=400", elapsed)
        if r is not None:
            eq(r.status, 408, "status")
        s.assert_serving()


def test_slow_streamed_upload_gets_408_or_is_closed():
    with Server(BODY_TIMEOUT_MS=400, HEADER_TIMEOUT_MS=5000) as s, Conn(s.port) as c:
        c.send(build("POST", "/upload", [("Content-Length", "1000")]) + b"a" * 10)
        t0 = time.monotonic()
        try:
            r = c.read_response(timeout=3)
        except Closed:
            r = None
        elapsed = time.monotonic() - t0
        check(0.3 <= elapsed <= 1.5, "answered after %.2f s with BODY_TIMEOUT_MS=400", elapsed)
        if r is not None:
            eq(r.status, 408, "status")
        s.assert_serving()



def test_handler_gives_a_long_upload_more_time_than_the_body_timeout():
    with Server(BODY_TIMEOUT_MS=300, HEADER_TIMEOUT_MS=5000) as s, Conn(s.port) as c:
        c.send(build("POST", "/upload?body_timeout_ms=5000", [("Content-Length", "100")]))
        t0 = time.monotonic()
        for _ in range(10):  # 10 bytes every 100 ms: 1 s, past the server's 300 ms
            time.sleep(0.1)
            c.send(b"a" * 10)
        r = c.read_response(timeout=3)
        eq(r.status, 200, "status")
        eq(r.json()["bytes"], 100, "bytes received")
        check(time.monotonic() - t0 >= 0.9, "the upload took under a second: it proves nothing")
        eq(c.request("POST", "/upload?body_timeout_ms=-1", body=b"x").status, 400,
           "a timeout that is not positive")
        s.assert_serving()


if __name__ == "__main__":
    run(globals())
