"""Bad input gets the right status (RFC 9112), the connection is closed
because its byte stream can no longer be trusted, and the server keeps
serving everyone else: after each bad request, a connection opened before it
and a fresh one both still get GET /plaintext answered."""
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import Closed, Conn, Server, build, check, eq, run, shared  # noqa: E402


def ok(c, what):
    r = c.request("GET", "/plaintext")
    eq(r.status, 200, what)
    eq(r.body, b"Hello, World!", what + " body")


def rejected(raw, statuses, close_header=True, server=None, may_just_close=False):
    """Send raw on a fresh connection: the answer is one of statuses and the
    server closes the connection. may_just_close: closing without any
    response also passes (for errors found mid-body)."""
    if isinstance(statuses, int):
        statuses = (statuses,)
    s = server or shared()
    with Conn(s.port) as bystander:
        ok(bystander, "bystander before")
        with Conn(s.port) as c:
            c.try_send(raw)
            try:
                r = c.read_response(timeout=3)
            except Closed:
                check(may_just_close, "closed without a response (expected %s) to %r",
                      statuses, raw[:200])
                r = None
            if r is not None:
                check(r.status in statuses, "status %s (expected %s) for %r; body %r",
                      r.status, statuses, raw[:200], r.body[:200])
                if close_header:
                    check(r.has_token("Connection", "close"),
                          "a %d closing the connection without Connection: close; headers %r",
                          r.status, r.headers)
                c.expect_closed(2, "connection after a %d" % r.status)
        ok(bystander, "bystander after")
    s.assert_serving()
    return r


def head(lines, version="HTTP/1.1", target="/plaintext", method="GET"):
    """A request head from raw header lines (bytes or str)."""
    out = [("%s %s %s" % (method, target, version)).encode()]
    out += [l.encode("latin-1") if isinstance(l, str) else l for l in lines]
    return b"\r\n".join(out) + b"\r\n\r\n"


# ------------------------------------------------------------ framing

def test_content_length_with_transfer_encoding_is_400():
    rejected(head(["Host: x", "Content-Length: 5", "Transfer-Encoding: chunked"],
                  method="POST", target="/echo") + b"5\r\nhello\r\n0\r\n\r\n", 400)


def test_duplicate_content_length_is_400():
    rejected(head(["Host: x", "Content-Length: 5", "Content-Length: 5"], method="POST",
                  target="/echo") + b"hello", 400)


def test_conflicting_content_lengths_are_400():
    rejected(head(["Host: x", "Content-Length: 5", "Content-Length: 6"], method="POST",
                  target="/echo") + b"hello!", 400)


def test_content_length_list_is_400():
    rejected(head(["Host: x", "Content-Length: 5, 5"], method="POST", target="/echo")
             + b"hello", 400)


def test_non_numeric_content_length_is_400():
    for value in ["abc", "-1", "+5", "5a", "0x10", "", "1 2", "5.0"]:
        rejected(head(["Host: x", "Content-Length: " + value], method="POST", target="/echo")
                 + b"hello", 400)


def test_overflowing_content_length_is_rejected():
    rejected(head(["Host: x", "Content-Length: 99999999999999999999999999"], method="POST",
                  target="/echo"), (400, 413))


def test_invalid_chunk_size_is_400_or_closes():
    for size in [b"zz", b"-1", b"", b"0x5", b"5 5"]:
        rejected(head(["Host: x", "Transfer-Encoding: chunked"], method="POST", target="/echo")
                 + size + b"\r\nhello\r\n0\r\n\r\n", 400, close_header=False, may_just_close=True)


def test_overflowing_chunk_size_is_400_or_closes():
    for size in [b"ffffffffffffffffffffffff", b"10000000000000000", b"8000000000000000"]:
        rejected(head(["Host: x", "Transfer-Encoding: chunked"], method="POST", target="/echo")
                 + size + b"\r\nhello\r\n0\r\n\r\n", (400, 413), close_header=False,
                 may_just_close=True)


def test_chunk_without_its_crlf_is_400_or_closes():
    rejected(head(["Host: x", "Transfer-Encoding: chunked"], method="POST", target="/echo")
             + b"5\r\nhelloXX0\r\n\r\n", 400, close_header=False, may_just_close=True)


def test_transfer_encoding_gzip_is_501():
    rejected(head(["Host: x", "Transfer-Encoding: gzip"], method="POST", target="/echo")
             + b"whatever", 501)


def test_transfer_encoding_gzip_then_chunked_is_501():
    rejected(head(["Host: x", "Transfer-Encoding: gzip, chunked"], method="POST",
                  target="/echo") + b"0\r\n\r\n", 501)


def test_chunked_applied_twice_is_400():
    rejected(head(["Host: x", "Transfer-Encoding: chunked, chunked"], method="POST",
                  target="/echo") + b"0\r\n\r\n", 400)


def test_transfer_encoding_on_http10_is_400():
    rejected(head(["Transfer-Encoding: chunked"], version="HTTP/1.0", method="POST",
                  target="/echo") + b"5\r\nhello\r\n0\r\n\r\n", 400)


# -------------------------------------------------------- head syntax

def test_bare_lf_line_endings_are_400():
    rejected(b"GET /plaintext HTTP/1.1\nHost: x\n\n", 400)


def test_bare_lf_ending_one_header_is_400():
    rejected(b"GET /plaintext HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n", 400)


def test_bare_cr_in_the_head_is_400():
    rejected(b"GET /plaintext HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n", 400)


def test_nul_in_a_header_is_400():
    rejected(head(["Host: x", b"X-A: be\x00fore"]), 400)


def test_control_bytes_in_a_header_are_400():
    for ch in [b"\x01", b"\x1f", b"\x7f"]:
        rejected(head(["Host: x", b"X-A: a" + ch + b"b"]), 400)


def test_nul_in_the_request_target_is_400():
    rejected(b"GET /plain\x00text HTTP/1.1\r\nHost: x\r\n\r\n", 400)


def test_whitespace_before_the_colon_is_400():
    rejected(head(["Host: x", "X-A : b"]), 400)
    rejected(head(["Host: x", "X-A\t: b"]), 400)


def test_obs_fold_is_400():
    rejected(head(["Host: x", "X-A: first", " continued"]), 400)
    rejected(head(["Host: x", "X-A: first", "\tcontinued"]), 400)


def test_header_without_a_name_or_colon_is_400():
    rejected(head(["Host: x", ": no name"]), 400)
    rejected(head(["Host: x", "NoColonHere"]), 400)
    rejected(head(["Host: x", "Bad(name): v"]), 400)


def test_malformed_request_lines_are_400():
    for line in [b"GET  /plaintext HTTP/1.1", b"GET /plaintext  HTTP/1.1",
                 b"GET /plaintext HTTP/1.1 extra", b"G@T /plaintext HTTP/1.1",
                 b"GET /pla intext HTTP/1.1", b"GET plaintext HTTP/1.1",
                 b" GET /plaintext HTTP/1.1", b"GET /plaintext HTTP/1.1 ",
                 b"GET /plaintext http/1.1", b"GET /plaintext HTTP/11"]:
        rejected(line + b"\r\nHost: x\r\n\r\n", 400)


def test_http_2_0_version_is_505():
    rejected(b"GET /plaintext HTTP/2.0\r\nHost: x\r\n\r\n", 505)
    rejected(b"GET /plaintext HTTP/3.0\r\nHost: x\r\n\r\n", 505)


def test_missing_host_on_http11_is_400():
    rejected(b"GET /plaintext HTTP/1.1\r\nX-A: b\r\n\r\n", 400)


def test_two_host_headers_are_400():
    rejected(head(["Host: x", "Host: y"]), 400)


def test_random_garbage_is_400():
    rnd = random.Random(5)
    for _ in range(5):
        junk = rnd.randbytes(300).replace(b"\r", b"").replace(b"\n", b"")
        rejected(junk + b"\r\n\r\n", 400)


def test_garbage_of_8k_without_a_line_end_is_answered_without_waiting():
    rnd = random.Random(6)
    junk = bytes(b | 0x80 for b in rnd.randbytes(9000))
    rejected(junk, (400, 414))


# ------------------------------------------------------------ limits

def test_request_line_over_8k_is_414():
    rejected(b"GET /plaintext?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)


def test_request_line_just_under_8k_is_served():
    line = b"GET /plaintext?q=" + b"a" * 8000 + b" HTTP/1.1"
    check(len(line) < 8192, "line length %d", len(line))
    with Conn(shared().port) as c:
        c.send(line + b"\r\nHost: x\r\n\r\n")
        eq(c.read_response().status, 200, "status")


def test_headers_over_64k_are_431():
    lines = ["Host: x"] + ["X-Fill-%d: %s" % (i, "v" * 1000) for i in range(70)]
    rejected(head(lines), 431)


def test_headers_just_under_64k_are_served():
    lines = ["Host: x"] + ["X-Fill-%d: %s" % (i, "v" * 1000) for i in range(60)]
    with Conn(shared().port) as c:
        c.send(head(lines))
        eq(c.read_response().status, 200, "status")


def test_101_headers_are_431():
    rejected(head(["Host: x"] + ["X-H%d: v" % i for i in range(100)]), 431)


def test_100_headers_are_served():
    with Conn(shared().port) as c:
        c.send(head(["Host: x"] + ["X-H%d: v" % i for i in range(99)]))
        eq(c.read_response().status, 200, "status")


def test_max_headers_option_caps_the_header_count():
    with Server(MAX_HEADERS=10) as s:
        with Conn(s.port) as c:
            c.send(head(["Host: x"] + ["X-H%d: v" % i for i in range(9)]))
            eq(c.read_response().status, 200, "10 headers")
        rejected(head(["Host: x"] + ["X-H%d: v" % i for i in range(10)]), 431, server=s)


def test_max_request_line_and_max_head_options_apply():
    with Server(MAX_REQUEST_LINE=200, MAX_HEAD=2000) as s:
        with Conn(s.port) as c:
            c.send(b"GET /plaintext?q=" + b"a" * 150 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            eq(c.read_response().status, 200, "a 177-byte request line")
        rejected(b"GET /plaintext?q=" + b"a" * 250 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414,
                 server=s)
        rejected(head(["Host: x"] + ["X-F%d: %s" % (i, "v" * 100) for i in range(30)]), 431,
                 server=s)


# ------------------------------------------------- clients that vanish

def vanish(data, reset=False, read_some=0, pause=0.0):
    s = shared()
    with Conn(s.port) as bystander:
        ok(bystander, "bystander before")
        c = Conn(s.port)
        c.send(data)
        if read_some:
            c.sock.recv(read_some)
        if pause:
            time.sleep(pause)
        c.reset() if reset else c.close()
        time.sleep(0.05)
        ok(bystander, "bystander after")
    s.assert_serving()


def test_client_disconnecting_mid_head_leaves_the_server_unaffected():
    vanish(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Partial: ab")
    vanish(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Partial: ab", reset=True)


def test_client_disconnecting_mid_body_leaves_the_server_unaffected():
    vanish(build("POST", "/echo", [("Content-Length", "100000")]) + b"x" * 5000, pause=0.05)
    vanish(build("POST", "/echo", [("Content-Length", "100000")]) + b"x" * 5000, reset=True,
           pause=0.05)


def test_client_disconnecting_mid_chunked_body_leaves_the_server_unaffected():
    vanish(build("POST", "/echo", [("Transfer-Encoding", "chunked")]) + b"1000\r\n" + b"y" * 100,
           pause=0.05)
    vanish(build("POST", "/echo", [("Transfer-Encoding", "chunked")]) + b"10\r\n0123", reset=True,
           pause=0.05)


def test_client_disconnecting_mid_streamed_upload_leaves_the_server_unaffected():
    vanish(build("POST", "/upload", [("Transfer-Encoding", "chunked")])
           + b"100000\r\n" + b"z" * 70000, pause=0.05)
    vanish(build("POST", "/upload", [("Content-Length", "900")]) + b"z" * 400, reset=True,
           pause=0.05)


def test_client_leaving_before_a_big_response_is_read_leaves_the_server_unaffected():
    vanish(build("GET", "/big?n=10000000"), read_some=1000)
    vanish(build("GET", "/big?n=10000000"), reset=True, read_some=1000)


def test_client_leaving_during_a_streamed_response_leaves_the_server_unaffected():
    vanish(build("GET", "/stream?n=200000"), read_some=100)
    vanish(build("GET", "/stream?n=200000"), reset=True, read_some=100)


def test_client_leaving_while_its_handler_sleeps_leaves_the_server_unaffected():
    vanish(build("GET", "/sleep?ms=100"), pause=0.02)
    vanish(build("GET", "/sleep?ms=100") * 3, reset=True, pause=0.02)
    time.sleep(0.15)  # the handlers wake and answer into closed sockets
    shared().assert_serving()


if __name__ == "__main__":
    run(globals())
