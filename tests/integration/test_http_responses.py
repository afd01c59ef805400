"""Responses: streamed chunked bodies (close-delimited on HTTP/1.0),
Server-Sent Events, a 10 MB body intact (also through curl and HEAD), and
the X-Request-Id passed through when sane and generated otherwise."""
import errno
import hashlib
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import Conn, build, check, curl, eq, run, shared  # noqa: E402

ALPHABET = bytes(range(ord("a"), ord("a") + 26))


def big_body(n):
    return (ALPHABET * (n // 26 + 1))[:n]


def stream_body(n):
    return b"".join(b"chunk %d\n" % i for i in range(n))


def test_stream_is_chunked_and_decodes_to_its_lines():
    with Conn(shared().port) as c:
        r = c.request("GET", "/stream?n=100")
        eq(r.status, 200, "status")
        eq(r.framing, "chunked", "framing")
        eq(r.header("Content-Type"), "text/plain", "Content-Type")
        check(r.header("Content-Length") is None, "Content-Length with chunked")
        eq(r.body, stream_body(100), "decoded body")
        check(len(r.chunks) >= 2, "sent as %d chunk(s)", len(r.chunks))
        eq(c.request("GET", "/plaintext").status, 200, "next request on the connection")


def test_stream_of_no_chunks_is_an_empty_chunked_body():
    with Conn(shared().port) as c:
        r = c.request("GET", "/stream?n=0")
        eq(r.status, 200, "status")
        eq(r.body, b"", "body")
        eq(c.request("GET", "/plaintext").status, 200, "next request")


def test_stream_over_http10_is_close_delimited():
    with Conn(shared().port) as c:
        c.send(build("GET", "/stream?n=5", version="HTTP/1.0", host=False))
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.framing, "close", "framing")
        eq(r.body, stream_body(5), "body")


def test_stream_of_known_length_is_sent_with_content_length():
    with Conn(shared().port) as c:
        n = len(stream_body(4))
        r = c.request("GET", "/stream?n=4&length=%d" % n)
        eq(r.status, 200, "status")
        eq(r.framing, "length", "framing")
        eq(r.header("Content-Length"), str(n), "Content-Length")
        eq(r.body, stream_body(4), "body")
        eq(c.request("GET", "/plaintext").status, 200, "next request on the connection")


def test_stream_write_past_its_length_is_refused_and_sends_nothing_of_it():
    with Conn(shared().port) as c:
        # two 8-byte lines fit in 20, the third would not: refused with
        # EMSGSIZE, and the 4-byte note of the refusal fills the promise
        r = c.request("GET", "/stream?n=3&length=20")
        eq(r.status, 200, "status")
        eq(r.body, b"chunk 0\nchunk 1\nE%d\n" % errno.EMSGSIZE, "body")
        eq(c.request("GET", "/plaintext").status, 200, "next request on the connection")


def test_stream_ended_short_of_its_length_closes_the_connection():
    with Conn(shared().port) as c:
        c.send(build("GET", "/stream?n=2&length=100"))
        raw = c.read_to_eof(5)
        check(raw.startswith(b"HTTP/1.1 200 "), "head %r", raw[:40])
        check(b"\r\nContent-Length: 100\r\n" in raw, "Content-Length 100 in %r", raw)
        eq(raw.split(b"\r\n\r\n", 1)[1], stream_body(2), "the 16 bytes sent, then the close")


def test_stream_whose_handler_fails_midway_is_cut_without_its_last_chunk():
    with Conn(shared().port) as c:
        c.send(build("GET", "/stream?n=10&fail=3"))
        raw = c.read_to_eof(5)
        check(raw.startswith(b"HTTP/1.1 200 "), "head %r", raw[:40])
        check(b"chunk 2\n" in raw, "the lines before the failure arrived: %r", raw)
        check(not raw.endswith(b"0\r\n\r\n"), "a broken stream ended like a whole one: %r", raw)
    with Conn(shared().port) as c:
        c.send(build("GET", "/stream?n=10&fail=3&length=80"))
        raw = c.read_to_eof(5)
        eq(raw.split(b"\r\n\r\n", 1)[1], stream_body(3), "sized: the 3 lines, then the close")
    # curl sees the cut as an error, not a short success
    r = curl("-o", "/dev/null", "http://127.0.0.1:%d/stream?n=10&fail=3" % shared().port)
    check(r.returncode != 0, "curl took the cut stream for a whole one: %r", r)


def test_head_of_a_stream_has_no_body():
    with Conn(shared().port) as c:
        r = c.request("HEAD", "/stream?n=3")
        eq(r.status, 200, "status")
        r2 = c.request("GET", "/users/8")
        eq(r2.body, b'{"id":8}', "next response starts right after the HEAD head")


def test_curl_decodes_the_stream():
    p = curl("http://127.0.0.1:%d/stream?n=50" % shared().port)
    eq(p.returncode, 0, "curl exit (stderr %r)" % p.stderr)
    eq(p.stdout, stream_body(50), "body")


def parse_sse(body):
    """Events as (event or None, data) per the WHATWG event-stream rules."""
    text = body.decode("utf-8")
    check("\r" not in text, "CR in the event stream (allowed, but unexpected here)")
    events = []
    for block in text.split("\n\n"):
        if not block:
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            name, colon, value = line.partition(":")
            if colon and value.startswith(" "):
                value = value[1:]
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        if data:
            events.append((event, "\n".join(data)))
    return events


def test_sse_is_a_text_event_stream_of_three_events():
    with Conn(shared().port) as c:
        r = c.request("GET", "/sse")
        eq(r.status, 200, "status")
        eq((r.header("Content-Type") or "").split(";")[0].strip(), "text/event-stream",
           "Content-Type")
        check(r.body.endswith(b"\n\n"), "the stream does not end with a blank line: %r", r.body)
        eq(parse_sse(r.body), [("greeting", "hello"), (None, "line one\nline two"), ("bye", "")],
           "events")
        check(b"data: line one\ndata: line two\n" in r.body,
              "multi-line data not split into data: lines: %r", r.body)


def test_big_response_of_10mb_is_intact():
    with Conn(shared().port, timeout=20) as c:
        r = c.request("GET", "/big?n=10000000")
        eq(r.status, 200, "status")
        eq(r.header("Content-Length"), "10000000", "Content-Length")
        eq(len(r.body), 10000000, "body length")
        check(r.body == big_body(10000000), "body content differs")
        eq(c.request("GET", "/plaintext").status, 200, "next request on the connection")


def test_curl_downloads_10mb_intact():
    p = curl("-o", "-", "http://127.0.0.1:%d/big?n=10000000" % shared().port)
    eq(p.returncode, 0, "curl exit (stderr %r)" % p.stderr)
    eq(len(p.stdout), 10000000, "length")
    eq(hashlib.sha256(p.stdout).hexdigest(), hashlib.sha256(big_body(10000000)).hexdigest(),
       "sha256")


def test_head_of_a_big_response_has_its_length_and_no_body():
    with Conn(shared().port) as c:
        r = c.request("HEAD", "/big?n=10000000")
        eq(r.status, 200, "status")
        eq(r.header("Content-Length"), "10000000", "Content-Length")
        eq(c.request("GET", "/users/1").body, b'{"id":1}', "next response right after the head")


def request_id_of(resp):
    return resp.json()["request_id"]


def test_sane_request_id_is_passed_through_and_echoed():
    with Conn(shared().port) as c:
        r = c.request("GET", "/headers", [("X-Request-Id", "abc-123_DEF.9")])
        eq(r.status, 200, "status")
        eq(request_id_of(r), "abc-123_DEF.9", "wv_req_id")
        eq(r.header("X-Request-Id"), "abc-123_DEF.9", "X-Request-Id in the response")


def test_response_carries_the_request_id_the_client_sent():
    with Conn(shared().port) as c:
        for target in ("/plaintext", "/users/3", "/nowhere", "/stream?n=1"):
            r = c.request("GET", target, [("X-Request-Id", "trace-42")])
            eq(r.header("X-Request-Id"), "trace-42", "X-Request-Id in the response to %s" % target)


def test_request_id_is_generated_when_absent():
    with Conn(shared().port) as c:
        r1 = c.request("GET", "/headers")
        r2 = c.request("GET", "/headers")
        id1, id2 = request_id_of(r1), request_id_of(r2)
        check(re.match(r"^[A-Za-z0-9._-]{1,64}$", id1) is not None, "generated id %r", id1)
        check(id1 != id2, "two requests got the same generated id %r", id1)
        eq(r1.header("X-Request-Id"), id1, "generated id echoed in the response")


def test_request_id_over_limit_is_replaced_by_a_generated_one():
    long_id = "a" * 300
    with Conn(shared().port) as c:
        r = c.request("GET", "/headers", [("X-Request-Id", long_id)])
        eq(r.status, 200, "status")
        rid = request_id_of(r)
        check(rid != long_id and 0 < len(rid) <= 64, "kept a 300-char id: %r", rid[:80])
        check(r.header("X-Request-Id") != long_id, "echoed the 300-char id")
        eq(r.header("X-Request-Id"), rid, "the generated id is echoed")


def test_request_id_with_spaces_is_replaced_by_a_generated_one():
    with Conn(shared().port) as c:
        r = c.request("GET", "/headers", [("X-Request-Id", "has spaces in it")])
        rid = request_id_of(r)
        check(" " not in rid and rid, "kept an id with spaces: %r", rid)
        eq(r.header("X-Request-Id"), rid, "the generated id is echoed")


def test_request_id_with_quotes_is_replaced_by_a_generated_one():
    # (the /headers body echoes raw header values, so only its head is read)
    with Conn(shared().port) as c:
        r = c.request("GET", "/headers", [("X-Request-Id", 'x","admin":"1')])
        rid = r.header("X-Request-Id") or ""
        check(rid and '"' not in rid, "echoed an id with quotes: %r", rid)


def test_headers_route_sees_the_request_headers_in_arrival_order():
    with Conn(shared().port) as c:
        r = c.request("GET", "/headers", [("Host", "example.test"), ("X-B", "2"), ("x-a", "1"),
                                          ("X-Dup", "one"), ("X-Dup", "two")])
        eq(r.json()["headers"], [["Host", "example.test"], ["X-B", "2"], ["x-a", "1"],
                                 ["X-Dup", "one"], ["X-Dup", "two"]], "headers")


def test_header_values_are_trimmed_of_surrounding_whitespace():
    with Conn(shared().port) as c:
        c.send(b"GET /headers HTTP/1.1\r\nHost: h\r\nX-Pad: \t padded value \t\r\n\r\n")
        r = c.read_response()
        eq(r.json()["headers"][1], ["X-Pad", "padded value"], "trimmed value")


if __name__ == "__main__":
    run(globals())
