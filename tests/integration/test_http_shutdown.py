"""Graceful shutdown: on SIGTERM the server stops accepting, lets requests in
flight finish (none fails), closes idle keep-alive connections, and exits 0
within the drain time; requests still running at drain_timeout are cut."""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import HOST, Closed, Conn, Server, build, check, eq, run  # noqa: E402


def in_flight(s, n, ms):
    conns = [Conn(s.port, timeout=10) for _ in range(n)]
    for c in conns:
        c.send(build("GET", "/sleep?ms=%d" % ms))
    time.sleep(0.15)  # every head has been read and its handler is sleeping
    return conns


def all_answered(conns):
    for i, c in enumerate(conns):
        r = c.read_response(timeout=5)
        eq(r.status, 200, "in-flight request %d" % i)
        eq(r.body, b'{"slept":true}', "in-flight request %d body" % i)
        c.close()


def test_sigterm_lets_every_in_flight_request_finish():
    with Server() as s:
        conns = in_flight(s, 20, 500)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        all_answered(conns)
        rc = s.wait(5)
        elapsed = time.monotonic() - t0
        eq(rc, 0, "exit status")
        check(elapsed < 1.5, "exit %.2f s after SIGTERM with 500 ms of work left", elapsed)


def test_sigterm_with_two_shards_lets_every_in_flight_request_finish():
    with Server(WEAVE_SHARDS=2) as s:
        conns = in_flight(s, 20, 500)
        s.signal(signal.SIGTERM)
        all_answered(conns)
        eq(s.wait(5), 0, "exit status")


def test_sigterm_closes_the_listener_so_new_connections_are_refused():
    with Server() as s:
        conns = in_flight(s, 1, 800)
        s.signal(signal.SIGTERM)
        time.sleep(0.15)
        check(s.alive(), "exited with a request in flight")
        try:
            socket.create_connection((HOST, s.port), timeout=1).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        check(refused, "a new connection was accepted during the drain")
        all_answered(conns)
        eq(s.wait(5), 0, "exit status")


def test_sigterm_closes_idle_keep_alive_connections_at_once():
    with Server() as s:
        idle = Conn(s.port)
        eq(idle.request("GET", "/plaintext").status, 200, "idle connection's request")
        conns = in_flight(s, 1, 800)
        s.signal(signal.SIGTERM)
        took = idle.expect_closed(0.5, "idle keep-alive connection")
        check(s.alive(), "the server exited before the in-flight request finished")
        check(took < 0.5, "idle connection closed after %.2f s", took)
        all_answered(conns)
        eq(s.wait(5), 0, "exit status")


def test_responses_finished_during_the_drain_carry_connection_close():
    with Server() as s:
        conns = in_flight(s, 1, 300)
        s.signal(signal.SIGTERM)
        r = conns[0].read_response(timeout=5)
        eq(r.status, 200, "status")
        check(r.has_token("Connection", "close"), "no Connection: close during the drain: %r",
              r.headers)
        conns[0].expect_closed(1)
        eq(s.wait(5), 0, "exit status")


def test_request_half_received_at_sigterm_is_still_answered():
    with Server() as s, Conn(s.port) as c:
        keep = in_flight(s, 1, 600)  # keeps the drain going
        c.send(b"GET /users/12 HTTP/1.1\r\nHo")
        time.sleep(0.1)
        s.signal(signal.SIGTERM)
        time.sleep(0.1)
        c.send(b"st: x\r\n\r\n")
        r = c.read_response(timeout=3)
        eq(r.status, 200, "status")
        eq(r.body, b'{"id":12}', "body")
        all_answered(keep)
        eq(s.wait(5), 0, "exit status")


def test_sigterm_on_an_idle_server_exits_0_promptly():
    with Server() as s:
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        eq(s.wait(5), 0, "exit status")
        check(time.monotonic() - t0 < 1, "took %.2f s", time.monotonic() - t0)


def test_drain_timeout_cuts_a_request_still_running():
    with Server(DRAIN_TIMEOUT_MS=300) as s:
        (c,) = in_flight(s, 1, 5000)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        rc = s.wait(5)
        elapsed = time.monotonic() - t0
        eq(rc, 0, "exit status")
        check(elapsed < 1.2, "exit %.2f s after SIGTERM with DRAIN_TIMEOUT_MS=300", elapsed)
        try:
            r = c.read_response(timeout=2)
            eq(r.status, 503, "status of the cut request")
        except Closed:
            pass  # closed without an answer: also fine


if __name__ == "__main__":
    run(globals())
