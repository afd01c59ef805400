"""Request bodies: Content-Length and chunked (extensions, trailers, split
anywhere), Expect: 100-continue, the max_body limit answered with 413 before
the body is read, streamed uploads beyond that limit, and unread bodies
skipped so the next request on the connection still parses."""
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import Closed, Conn, Server, build, check, chunked, eq, run, shared  # noqa: E402

MASK = (1 << 64) - 1


def checksum(data, s=0):
    """The server's /upload checksum: s = s*31 + byte, mod 2^64."""
    for b in data:
        s = (s * 31 + b) & MASK
    return s


def periodic_upload(total, period=65521, seed=9):
    """A body of `total` bytes repeating a random block of a prime length
    (so no buffer size the server uses lines up with it), and its checksum,
    computed a block at a time."""
    rnd = random.Random(seed)
    block = rnd.randbytes(period)
    hb, mul = checksum(block), pow(31, period, 1 << 64)
    full, tail = divmod(total, period)
    s = 0
    for _ in range(full):
        s = (s * mul + hb) & MASK
    s = checksum(block[:tail], s)
    return block, s


def send_upload(c, block, total, piece=1 << 20):
    """Send `total` bytes of the repeated block; stops quietly if the
    server closes."""
    reps = piece // len(block) + 2
    big = block * reps
    sent = 0
    while sent < total:
        off = sent % len(block)
        n = min(piece, total - sent)
        if not c.try_send(big[off:off + n]):
            return sent
        sent += n
    return sent


def test_content_length_body_is_read_whole():
    body = random.Random(1).randbytes(100000)
    with Conn(shared().port) as c:
        r = c.request("POST", "/echo", [("Content-Type", "application/x-bin")], body)
        eq(r.status, 200, "status")
        eq(r.header("Content-Type"), "application/x-bin", "Content-Type")
        check(r.body == body, "echoed body differs (%d bytes of %d)", len(r.body), len(body))


def test_empty_body_with_content_length_zero():
    with Conn(shared().port) as c:
        r = c.request("POST", "/echo", [("Content-Length", "0")])
        eq(r.status, 200, "status")
        eq(r.header("Content-Length"), "0", "Content-Length")
        eq(r.body, b"", "body")
        eq(c.request("GET", "/plaintext").status, 200, "next request")


def test_body_of_a_megabyte_arriving_slowly_in_pieces_is_read_whole():
    body = random.Random(2).randbytes(1 << 20)  # max_body
    with Conn(shared().port, timeout=10) as c:
        c.send(build("POST", "/echo", body=b"")[:-2] + b"Content-Length: %d\r\n\r\n" % len(body))
        for k in range(0, len(body), 1 << 17):
            c.send(body[k:k + (1 << 17)])
            time.sleep(0.002)
        r = c.read_response()
        eq(r.status, 200, "status")
        check(r.body == body, "echoed body differs (%d bytes of %d)", len(r.body), len(body))


def test_small_bodies_sent_after_their_heads_on_a_fresh_connection():
    # a connection's first buffer holds only what its first read brought: a
    # body that follows its head (as Python's requests sends it) must still
    # arrive whole, and so must the next requests on the connection
    with Conn(shared().port) as c:
        for i, n in enumerate((10, 3000, 4096, 5000, 7)):
            body = random.Random(10 + i).randbytes(n)
            c.send(build("POST", "/echo", body=b"")[:-2] + b"Content-Length: %d\r\n\r\n" % n)
            time.sleep(0.02)
            c.send(body)
            r = c.read_response()
            eq(r.status, 200, "status")
            check(r.body == body, "body %d: echoed %d bytes of %d", i, len(r.body), n)


def test_chunked_body_with_extensions_and_trailers_is_decoded():
    pieces = [b"Hello", b", ", b"chunked ", b"world" * 100]
    raw = (b"5;name=value\r\nHello\r\n"
           b"2;quoted=\"a b;c\"\r\n, \r\n"
           b"0008 ; spaced=1\r\nchunked \r\n"
           b"1F4\r\n" + b"world" * 100 + b"\r\n"
           b"0;last=yes\r\nX-Trailer: one\r\nX-Other: two\r\n\r\n")
    with Conn(shared().port) as c:
        c.send(build("POST", "/echo", [("Transfer-Encoding", "chunked"),
                                       ("Trailer", "X-Trailer, X-Other")]) + raw)
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.body, b"".join(pieces), "decoded body")
        eq(c.request("GET", "/plaintext").status, 200, "next request after the trailers")


def test_chunked_body_with_plain_extension_syntax_is_decoded():
    with Conn(shared().port) as c:
        c.send(build("POST", "/echo", [("Transfer-Encoding", "chunked")])
               + chunked([b"abc", b"defgh"], ext="ext=1", trailers=[("X-Sum", "8")]))
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.body, b"abcdefgh", "decoded body")


def test_chunked_body_split_across_many_writes_is_decoded():
    rnd = random.Random(4)
    body = rnd.randbytes(20000)
    pieces, k = [], 0
    while k < len(body):
        n = rnd.randint(1, 700)
        pieces.append(body[k:k + n])
        k += n
    data = build("POST", "/echo", [("Transfer-Encoding", "chunked")]) + chunked(
        pieces, ext="x=y", trailers=[("X-T", "1")])
    with Conn(shared().port, timeout=10) as c:
        at = 0
        writes = 0
        while at < len(data):
            n = rnd.randint(1, 97)
            c.send(data[at:at + n])
            at += n
            writes += 1
            if writes % 40 == 0:
                time.sleep(0.002)
        r = c.read_response()
        eq(r.status, 200, "status")
        check(r.body == body, "decoded body differs (%d bytes of %d)", len(r.body), len(body))
        eq(c.request("GET", "/users/9").body, b'{"id":9}', "next request")


def test_expect_100_continue_gets_100_before_the_body_is_sent():
    body = b"x" * 5000
    with Conn(shared().port) as c:
        c.send(build("POST", "/echo", [("Expect", "100-continue"),
                                       ("Content-Length", str(len(body)))]))
        interim = c.read_interim(timeout=3)
        eq(interim.status, 100, "interim status")
        eq(interim.version, "HTTP/1.1", "interim version")
        c.send(body)
        r = c.read_response()
        eq(r.status, 200, "final status")
        eq(r.body, body, "body")
        eq(c.request("GET", "/plaintext").status, 200, "next request")


def test_expect_100_continue_with_a_chunked_body():
    with Conn(shared().port) as c:
        c.send(build("POST", "/echo", [("Expect", "100-continue"),
                                       ("Transfer-Encoding", "chunked")]))
        eq(c.read_interim(timeout=3).status, 100, "interim status")
        c.send(chunked([b"part one, ", b"part two"]))
        r = c.read_response()
        eq(r.status, 200, "final status")
        eq(r.body, b"part one, part two", "body")


def test_expect_100_continue_to_a_route_ignoring_the_body_gets_the_final_response():
    with Conn(shared().port) as c:
        c.send(build("GET", "/plaintext", [("Expect", "100-continue"), ("Content-Length", "10")]))
        r = c.read_response(timeout=3)  # without the body ever being sent
        eq(r.status, 200, "status")
        eq(r.body, b"Hello, World!", "body")


def test_body_over_max_body_is_413_before_it_is_sent():
    with Server(MAX_BODY=1000) as s, Conn(s.port) as c:
        c.send(build("POST", "/echo", [("Content-Length", "1000000000")]))
        t0 = time.monotonic()
        r = c.read_response(timeout=3)  # no body byte sent
        eq(r.status, 413, "status")
        check(time.monotonic() - t0 < 2, "the 413 took %.1f s", time.monotonic() - t0)
        check("detail" in r.json(), "body %r", r.body)
        c.expect_closed(2)
        s.assert_serving()


def test_body_over_max_body_with_expect_gets_413_and_no_100():
    with Server(MAX_BODY=1000) as s, Conn(s.port) as c:
        c.send(build("POST", "/echo", [("Content-Length", "5000"), ("Expect", "100-continue")]))
        r = c.read_response(timeout=3)
        eq(r.status, 413, "status")
        eq([i.status for i in r.interim], [], "interim responses before the 413")
        s.assert_serving()


def test_body_of_exactly_max_body_is_accepted_and_one_more_byte_is_413():
    with Server(MAX_BODY=1000) as s:
        with Conn(s.port) as c:
            r = c.request("POST", "/echo", body=b"a" * 1000)
            eq(r.status, 200, "1000 bytes status")
            eq(len(r.body), 1000, "1000 bytes echoed")
        with Conn(s.port) as c:
            eq(c.request("POST", "/echo", body=b"a" * 1001).status, 413, "1001 bytes status")


def test_chunked_body_over_max_body_is_413():
    with Server(MAX_BODY=1000) as s, Conn(s.port) as c:
        c.send(build("POST", "/echo", [("Transfer-Encoding", "chunked")]))
        c.try_send(chunked([b"z" * 600] * 4))
        r = c.read_response(timeout=3)
        eq(r.status, 413, "status")
        s.assert_serving()


def test_chunk_declared_past_max_body_is_413_at_once_and_closed():
    # the chunk-size line alone says the body is too big: refused before any
    # of its data is read (the client sends a few bytes and then waits)
    with Server(MAX_BODY=1000) as s, Conn(s.port) as c:
        c.send(build("POST", "/echo", [("Transfer-Encoding", "chunked")]) + b"100000\r\nzzzz")
        t0 = time.monotonic()
        r = c.read_response(timeout=3)
        eq(r.status, 413, "status")
        check(time.monotonic() - t0 < 2, "the 413 took %.1f s", time.monotonic() - t0)
        check(r.has_token("Connection", "close"), "Connection: %r", r.header("Connection"))
        c.expect_closed(2)
        s.assert_serving()


def test_streamed_upload_of_50mb_with_content_length_is_not_limited_by_max_body():
    total = 50 << 20
    block, expected = periodic_upload(total)
    with Server(MAX_BODY=1000) as s, Conn(s.port, timeout=30) as c:
        c.send(build("POST", "/upload", [("Content-Length", str(total)),
                                         ("Content-Type", "application/octet-stream")]))
        sent = []
        t = threading.Thread(target=lambda: sent.append(send_upload(c, block, total)))
        t.start()
        try:
            r = c.read_response(timeout=30)
        finally:
            t.join(30)
        eq(r.status, 200, "status (body %r)" % r.body[:200])
        eq(r.json(), {"bytes": total, "sum": expected}, "bytes and checksum")


def test_streamed_chunked_upload_of_50mb_is_not_limited_by_max_body():
    total = 50 << 20
    block, expected = periodic_upload(total, seed=10)
    piece = 1 << 20
    with Server(MAX_BODY=1000) as s, Conn(s.port, timeout=30) as c:
        c.send(build("POST", "/upload", [("Transfer-Encoding", "chunked")]))

        def sender():
            big = block * (piece // len(block) + 2)
            sent = 0
            while sent < total:
                off = sent % len(block)
                n = min(piece, total - sent)
                if not c.try_send(b"%x\r\n" % n + big[off:off + n] + b"\r\n"):
                    return
                sent += n
            c.try_send(b"0\r\n\r\n")

        t = threading.Thread(target=sender)
        t.start()
        try:
            r = c.read_response(timeout=30)
        finally:
            t.join(30)
        eq(r.status, 200, "status (body %r)" % r.body[:200])
        eq(r.json(), {"bytes": total, "sum": expected}, "bytes and checksum")


def test_unread_content_length_body_is_skipped_for_the_next_pipelined_request():
    with Conn(shared().port) as c:
        c.send(build("GET", "/plaintext", [("Content-Length", "11")], b"ignored me!")
               + build("GET", "/users/3"))
        r = c.read_response()
        eq(r.status, 200, "first status")
        eq(r.body, b"Hello, World!", "first body")
        r = c.read_response()
        eq(r.status, 200, "second status")
        eq(r.body, b'{"id":3}', "second body")


def test_unread_chunked_body_is_skipped_for_the_next_pipelined_request():
    with Conn(shared().port) as c:
        c.send(build("GET", "/plaintext", [("Transfer-Encoding", "chunked")])
               + chunked([b"GET /users/666 HTTP/1.1\r\n\r\n", b"more"], trailers=[("X-A", "b")])
               + build("GET", "/users/4"))
        eq(c.read_response().body, b"Hello, World!", "first body")
        eq(c.read_response().body, b'{"id":4}', "second body")


def test_unread_large_body_is_skipped_for_the_next_pipelined_request():
    body = b"q" * 200000
    with Conn(shared().port, timeout=10) as c:
        c.send(build("GET", "/plaintext", [("Content-Length", str(len(body)))], body)
               + build("GET", "/users/5"))
        eq(c.read_response().body, b"Hello, World!", "first body")
        eq(c.read_response().body, b'{"id":5}', "second body")


def test_unread_body_of_a_405_never_corrupts_the_stream():
    with Conn(shared().port) as c:
        c.send(build("POST", "/plaintext", body=b"GET /users/666 HTTP/1.1\r\nHost: x\r\n\r\n")
               + build("GET", "/users/6"))
        r = c.read_response()
        eq(r.status, 405, "first status")
        try:
            r2 = c.read_response()
        except Closed:
            check(r.has_token("Connection", "close"), "closed without Connection: close")
            return
        eq(r2.body, b'{"id":6}', "second body (the unread body must not be parsed)")


if __name__ == "__main__":
    run(globals())
