"""Concurrency: handlers that sleep do not block each other, many clients at
once all get correct answers, and at the connection cap accept waits (no
client gets an error) while the connections already open keep being
served."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import Conn, Server, build, check, eq, run, shared  # noqa: E402


def in_threads(n, fn):
    """Run fn(i) in n threads at once; returns the exceptions raised."""
    errors = []
    start = threading.Barrier(n)

    def body(i):
        try:
            start.wait(10)
            fn(i)
        except BaseException as e:  # collected and reported by the caller
            errors.append("client %d: %r" % (i, e))

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_200_concurrent_sleeping_requests_do_not_block_each_other():
    port = shared().port

    def client(i):
        with Conn(port, timeout=10) as c:
            r = c.request("GET", "/sleep?ms=300")
            eq(r.status, 200, "status")
            eq(r.body, b'{"slept":true}', "body")

    t0 = time.monotonic()
    errors = in_threads(200, client)
    elapsed = time.monotonic() - t0
    eq(errors, [], "client errors")
    check(elapsed < 3, "200 x 300 ms sleeps took %.2f s on one shard (serialised would be 60 s)",
          elapsed)


def test_many_keep_alive_clients_at_once_all_get_their_own_answers():
    port = shared().port

    def client(i):
        with Conn(port, timeout=10) as c:
            for k in range(20):
                body = b"client %d request %d" % (i, k)
                r = c.request("POST", "/echo", body=body)
                eq(r.body, body, "echo")
                eq(c.request("GET", "/users/%d" % (i * 100 + k)).body,
                   b'{"id":%d}' % (i * 100 + k), "user")

    eq(in_threads(50, client), [], "client errors")


def test_at_the_connection_cap_accept_waits_and_every_client_is_served():
    with Server(MAX_CONNECTIONS=5) as s:
        statuses = []

        def client(i):
            with Conn(s.port, timeout=10) as c:
                c.send(build("GET", "/sleep?ms=100", [("Connection", "close")]))
                r = c.read_response(timeout=10)
                statuses.append(r.status)
                eq(r.status, 200, "status")

        t0 = time.monotonic()
        errors = in_threads(20, client)
        elapsed = time.monotonic() - t0
        eq(errors, [], "client errors")
        eq(len(statuses), 20, "answers")
        # at most 5 in flight: at least 4 rounds of 100 ms
        check(elapsed >= 0.35, "20 clients x 100 ms done in %.2f s: the cap of 5 was not applied",
              elapsed)
        check(elapsed < 5, "took %.2f s", elapsed)


def test_at_the_connection_cap_existing_connections_keep_being_served():
    with Server(MAX_CONNECTIONS=5) as s:
        held = [Conn(s.port) for _ in range(5)]
        try:
            for c in held:
                eq(c.request("GET", "/plaintext").status, 200, "held connection")
            waiting = [Conn(s.port) for _ in range(10)]  # sit in the backlog
            for w in waiting:
                w.send(build("GET", "/users/77"))
            time.sleep(0.1)
            for w in waiting:
                check(w.nothing_pending(0), "a connection over the cap was served")
            for round_ in range(3):
                for c in held:
                    r = c.request("GET", "/users/%d" % round_)
                    eq(r.body, b'{"id":%d}' % round_, "held connection, round %d" % round_)
            for c in held:
                c.close()
            held = []
            for w in waiting:  # now the cap frees up, five at a time
                r = w.read_response(timeout=5)
                eq(r.status, 200, "waiting client")
                eq(r.body, b'{"id":77}', "waiting client body")
                w.close()
        finally:
            for c in held:
                c.close()


if __name__ == "__main__":
    run(globals())
