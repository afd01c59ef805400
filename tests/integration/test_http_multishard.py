"""Multi-core: with WEAVE_SHARDS=2 every shard listens on the same port
(SO_REUSEPORT), connections spread over both, and all of them are served."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import Conn, Server, build, eq, run  # noqa: E402


def serve_200_connections(s):
    errors = []
    start = threading.Barrier(200)

    def client(i):
        try:
            start.wait(10)
            with Conn(s.port, timeout=10) as c:
                for k in range(3):
                    r = c.request("GET", "/users/%d" % (i * 10 + k))
                    eq(r.status, 200, "status")
                    eq(r.body, b'{"id":%d}' % (i * 10 + k), "body")
                r = c.request("POST", "/echo", body=b"from %d" % i)
                eq(r.body, b"from %d" % i, "echo")
        except BaseException as e:  # reported below
            errors.append("client %d: %r" % (i, e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_two_shards_serve_200_concurrent_connections():
    with Server(WEAVE_SHARDS=2) as s:
        eq(serve_200_connections(s), [], "client errors")


def test_both_shards_accept_connections():
    # max_connections is per shard: with a cap of 1, each shard serves one
    # held connection and the rest wait, so exactly two are answered
    with Server(WEAVE_SHARDS=2, MAX_CONNECTIONS=1) as s:
        conns = [Conn(s.port) for _ in range(20)]
        try:
            for c in conns:
                c.send(build("GET", "/plaintext"))
            time.sleep(0.3)
            served = [c for c in conns if not c.nothing_pending(0)]
            eq(len(served), 2, "connections served at once by 2 shards capped at 1 each")
            for c in served:
                eq(c.read_response().status, 200, "status")
        finally:
            for c in conns:
                c.close()
        for _ in range(3):
            s.assert_serving()


if __name__ == "__main__":
    run(globals())
