"""Connection persistence: HTTP/1.1 keep-alive by default, `Connection:
close` honoured both ways, HTTP/1.0 closing unless keep-alive is asked for,
and an idle keep-alive connection costs the server little memory."""
import http.client
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import (BIN, Conn, Server, allow_many_fds, build, check, curl, eq, rss_kb,  # noqa: E402
                      run, sanitized, shared)


def test_several_requests_share_one_keep_alive_connection():
    with Conn(shared().port) as c:
        for i in range(20):
            r = c.request("GET", "/plaintext")
            eq(r.status, 200, "request %d status" % i)
            eq(r.body, b"Hello, World!", "request %d body" % i)
            check(not r.has_token("Connection", "close"), "request %d: Connection: close", i)
        r = c.request("POST", "/echo", body=b"still here")
        eq(r.body, b"still here", "a POST on the same connection")
        check(c.nothing_pending(0.05), "the connection is open and quiet after 21 requests")


def test_requests_of_every_size_follow_each_other_on_one_connection():
    # Between requests a connection keeps a small read buffer and headers
    # array for the next request and drops larger ones: each request here
    # needs more or less than the one before it.
    with Conn(shared().port) as c:
        many = [("X-H%d" % i, "v%d" % i) for i in range(20)]
        steps = [
            ("small", [], b""),
            ("a 3 KB head", [("X-Big", "b" * 3000)], b""),
            ("small again", [], b""),
            ("20 headers", many, b""),
            ("one header", [("X-One", "1")], b""),
            ("a 2 KB body", [], b"y" * 2000),
            ("small last", [], b""),
        ]
        for what, headers, body in steps:
            if body:
                r = c.request("POST", "/echo", headers=headers, body=body)
                eq(r.status, 200, what + ": status")
                eq(r.body, body, what + ": the body echoed")
                continue
            r = c.request("GET", "/headers", headers=headers)
            eq(r.status, 200, what + ": status")
            for name, value in headers:
                check(('"%s"' % value).encode() in r.body, "%s: %s's value in the echo", what, name)
        check(c.nothing_pending(0.05), "the connection is open and quiet after them")


def test_idle_keep_alive_connections_cost_under_8_kb_each():
    # Between requests a connection holds at most 512 bytes of read buffer
    # and 8 header slots (larger ones are freed): 12.3 KB per idle connection
    # when it kept 4 KiB and 100 slots, 4.9 KB after (its fiber's stack page
    # is most of the rest).
    if sanitized(BIN):
        print("  (a sanitizer build: its memory says nothing; not measured)")
        return
    allow_many_fds()
    with Server() as srv:
        def idle():
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s.sendall(build("GET", "/plaintext"))
            got = b""
            while not got.endswith(b"Hello, World!"):
                b = s.recv(4096)
                check(b, "closed before the response")
                got += b
            return s

        socks = [idle() for _ in range(64)]  # the shard's heap and stack slabs exist
        time.sleep(0.3)
        before = rss_kb(srv.proc.pid)
        socks += [idle() for _ in range(1000)]
        time.sleep(0.5)
        per = (rss_kb(srv.proc.pid) - before) * 1024 / 1000
        for s in socks:
            s.close()
        print("  %d bytes per idle keep-alive connection" % per)
        check(per < 8000, "%d bytes per idle keep-alive connection", per)


def test_http_client_reuses_its_connection():
    hc = http.client.HTTPConnection("127.0.0.1", shared().port, timeout=10)
    try:
        hc.request("GET", "/plaintext")
        r = hc.getresponse()
        r.read()
        sock = hc.sock
        for _ in range(5):
            hc.request("GET", "/users/7")
            r = hc.getresponse()
            eq(r.read(), b'{"id":7}', "body")
        check(hc.sock is sock and sock is not None, "http.client had to reconnect")
    finally:
        hc.close()


def test_curl_reuses_the_connection_for_several_urls():
    url = "http://127.0.0.1:%d/plaintext" % shared().port
    p = curl("-v", url, url, url)
    eq(p.returncode, 0, "curl exit (stderr %r)" % p.stderr)
    eq(p.stdout, b"Hello, World!" * 3, "bodies")
    eq(p.stderr.count(b"Re-using existing connection"), 2, "curl reuses (stderr %r)" % p.stderr)


def test_client_connection_close_gets_connection_close_and_the_server_closes():
    with Conn(shared().port) as c:
        c.send(build("GET", "/plaintext", [("Connection", "close")]))
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.body, b"Hello, World!", "body")
        check(r.has_token("Connection", "close"), "no Connection: close in %r", r.headers)
        c.expect_closed(2)


def test_requests_pipelined_after_connection_close_are_not_answered():
    with Conn(shared().port) as c:
        c.send(build("GET", "/plaintext", [("Connection", "close")]) + build("GET", "/users/1"))
        r = c.read_response()
        eq(r.status, 200, "status")
        c.expect_closed(2)


def test_http10_closes_after_the_response_by_default():
    with Conn(shared().port) as c:
        c.send(build("GET", "/plaintext", version="HTTP/1.0", host=False))
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.body, b"Hello, World!", "body")
        eq(r.header("Content-Length"), "13", "Content-Length")
        c.expect_closed(2)


def test_http10_keep_alive_is_honoured_and_announced():
    with Conn(shared().port) as c:
        for i in range(3):
            c.send(build("GET", "/plaintext", [("Connection", "keep-alive")],
                         version="HTTP/1.0", host=False))
            r = c.read_response()
            eq(r.status, 200, "request %d status" % i)
            eq(r.body, b"Hello, World!", "request %d body" % i)
            check(r.has_token("Connection", "keep-alive"),
                  "request %d: no Connection: keep-alive in %r", i, r.headers)
        check(c.nothing_pending(0.1), "the HTTP/1.0 keep-alive connection was closed")
        # and a plain 1.0 request on it ends it
        c.send(build("GET", "/plaintext", version="HTTP/1.0", host=False))
        eq(c.read_response().status, 200, "last status")
        c.expect_closed(2)


def test_http11_response_to_http10_request_still_has_a_length():
    with Conn(shared().port) as c:
        c.send(build("POST", "/echo", [("Connection", "keep-alive")], body=b"abc",
                     version="HTTP/1.0", host=False))
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.framing, "length", "framing")
        eq(r.body, b"abc", "body")


def test_connection_header_tokens_are_case_insensitive():
    with Conn(shared().port) as c:
        c.send(build("GET", "/plaintext", [("Connection", "Keep-Alive, CLOSE")]))
        eq(c.read_response().status, 200, "status")
        c.expect_closed(2)


if __name__ == "__main__":
    run(globals())
