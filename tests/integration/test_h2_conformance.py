"""HTTP/2 conformance of the server (src/h2, on nghttp2), frame by frame.

Each test sends the bytes of one error case of RFC 9113 on a raw socket
(frames built here, header blocks encoded with Python's hpack) against
http_test_server and checks the answer the RFC names: a connection error is
a GOAWAY with the code and then the close; a stream error is an RST_STREAM
with the code, after which the same connection still answers a request.
Then the abuse cases (floods, a stream that never ends, oversized header
lists) and two real clients, h2load and nghttp.

Where nghttp2 1.52 answers differently from the RFC's letter, the test
says so in its docstring and asserts what is sent (docs/h2.md lists them).
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

import hpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httptest  # noqa: E402
from httptest import BIN, HOST, Server, check, eq, rss_kb, run, sanitized  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED = 0x1, 0x1, 0x4, 0x8

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)

S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE, \
    S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = range(1, 7)


def frame(kind, flags, sid, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + sid.to_bytes(4, "big") + payload


def settings(*pairs):
    return frame(SETTINGS, 0, 0, b"".join(k.to_bytes(2, "big") + v.to_bytes(4, "big")
                                          for k, v in pairs))


def window_update(sid, n):
    return frame(WINDOW_UPDATE, 0, sid, n.to_bytes(4, "big"))


def request(path="/plaintext", method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":path", path),
            (":authority", "localhost")] + list(extra)


class Raw:
    """A client speaking frames it builds itself: nothing is checked on the
    way out, so it can send what a conforming client never would."""

    def __init__(self, port, first=b"", rcvbuf=None, ack=True):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect((HOST, port))
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = b""
        self.frames = []      # (type, flags, sid, payload) as they came
        self.closed = False
        self.block = None     # a response header block being gathered
        self.status = {}      # sid -> :status
        self.fields = {}      # sid -> the response's fields
        self.body = {}        # sid -> bytes
        self.ended = set()    # sids the server ended
        self.blocks = []      # raw header block payloads, in order
        self.ack = ack        # answer the server's SETTINGS and PINGs, give DATA's window back
        self.send(PREFACE + (first or settings()))

    def send(self, *data):
        self.sock.sendall(b"".join(data))

    def headers(self, sid, fields, end_stream=True, end_headers=True):
        flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, flags, sid, self.enc.encode(fields))

    def get(self, sid, path="/plaintext", end_stream=True, extra=()):
        self.send(self.headers(sid, request(path, extra=extra), end_stream))

    def _take(self, kind, flags, sid, payload):
        self.frames.append((kind, flags, sid, payload))
        if kind == SETTINGS and not flags & ACK:
            if self.ack:
                self.send(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            if self.ack:
                self.send(frame(PING, ACK, 0, payload))
        elif kind in (HEADERS, CONTINUATION):
            self.block = (self.block or b"") + payload
            if flags & END_HEADERS:
                self.blocks.append(self.block)
                fields = self.dec.decode(self.block)
                self.block = None
                if sid not in self.status:
                    self.status[sid] = int(dict(fields)[":status"])
                    self.fields[sid] = fields
            if kind == HEADERS and flags & END_STREAM:
                self.ended.add(sid)
        elif kind == DATA:
            self.body[sid] = self.body.get(sid, b"") + payload
            if payload and self.ack:  # give the window back at once
                self.send(window_update(0, len(payload)), window_update(sid, len(payload)))
            if flags & END_STREAM:
                self.ended.add(sid)

    def pump(self, until, timeout=5):
        """Read frames until until() or the timeout or the close."""
        deadline = time.monotonic() + timeout
        while not until() and not self.closed and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                got = b""
            if not got:
                self.closed = True
                break
            self.buf += got
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                kind, flags = self.buf[3], self.buf[4]
                sid = int.from_bytes(self.buf[5:9], "big") & 0x7fffffff
                payload = self.buf[9:9 + n]
                self.buf = self.buf[9 + n:]
                try:
                    self._take(kind, flags, sid, payload)
                except OSError:
                    pass  # the server closed first; what it sent is read
        return until()

    def goaways(self):
        return [int.from_bytes(p[4:8], "big") for k, _, _, p in self.frames if k == GOAWAY]

    def resets(self, sid):
        return [int.from_bytes(p[:4], "big") for k, _, s, p in self.frames
                if k == RST_STREAM and s == sid]

    def expect_goaway(self, code, what):
        """A connection error: GOAWAY with code, then the server closes."""
        self.pump(lambda: self.closed, timeout=5)
        eq(self.goaways(), [code], "%s: GOAWAY codes" % what)
        check(self.closed, "%s: the connection stayed open after its GOAWAY", what)
        self.sock.close()

    def expect_reset(self, sid, code, what):
        """A stream error: RST_STREAM with code, and the connection serves on."""
        self.pump(lambda: self.resets(sid), timeout=5)
        eq(self.resets(sid), [code], "%s: RST_STREAM codes on stream %d" % (what, sid))
        self.expect_serving(what)

    def expect_serving(self, what):
        sid = self.next_sid()
        self.get(sid)
        self.pump(lambda: sid in self.ended)
        eq((self.status.get(sid), self.body.get(sid)), (200, b"Hello, World!"),
           "%s: the next request on the connection" % what)
        eq(self.goaways(), [], "%s: GOAWAY codes" % what)

    def next_sid(self):
        used = [s for _, _, s, _ in self.frames] + list(self.status) + [getattr(self, "last", 0)]
        self.last = max(used + [0]) + 2 if max(used + [0]) % 2 else max(used + [0]) + 1
        return self.last

    def close(self):
        self.sock.close()


def fresh(s, *data, first=b""):
    """A new connection that sent data after its preface and SETTINGS."""
    c = Raw(s.port, first=first)
    if data:
        c.send(*data)
    return c


def assert_serving(s):
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge",
                        "http://%s:%d/plaintext" % (HOST, s.port)],
                       capture_output=True, text=True, timeout=10)
    eq(r.stdout, "Hello, World!", "h2c on a fresh connection")


def server():
    """The file's server, shared by the tests (httptest.run checks it is
    alive after each and stops it, sanitizer-clean, at the end)."""
    if httptest._shared is None or not httptest._shared.alive():
        httptest._shared = Server(BODY_TIMEOUT_MS=800, MAX_HEAD=8192, MAX_HEADERS=20)
    return httptest._shared


# ----------------------------------------------------------- frame sizes

def test_a_frame_over_max_frame_size_is_a_connection_frame_size_error():
    """RFC 9113 4.2: a frame over SETTINGS_MAX_FRAME_SIZE (16384 here)."""
    s = server()
    c = fresh(s)
    c.send(c.headers(1, request("/echo", "POST"), end_stream=False),
           frame(DATA, 0, 1, b"x" * 16385))
    c.expect_goaway(FRAME_SIZE_ERROR, "DATA of 16385 bytes")
    c = fresh(s, frame(HEADERS, END_HEADERS, 1, b"\x82" * 16385))
    c.expect_goaway(FRAME_SIZE_ERROR, "HEADERS of 16385 bytes")


def test_control_frames_of_a_bad_length_are_frame_size_errors():
    """RFC 9113 6.5, 6.7, 6.9, 6.4: SETTINGS not a multiple of 6 (or an ACK
    with a payload), a PING other than 8 bytes, a WINDOW_UPDATE other than 4
    and an RST_STREAM other than 4 are connection FRAME_SIZE_ERRORs. A
    PRIORITY other than 5 bytes should be a stream error (6.3); nghttp2
    makes it a connection error (GOAWAY FRAME_SIZE_ERROR) too."""
    s = server()
    cases = [
        ("SETTINGS of 5 bytes", frame(SETTINGS, 0, 0, b"\x00" * 5)),
        ("SETTINGS ACK with a payload", frame(SETTINGS, ACK, 0, b"\x00" * 6)),
        ("PING of 7 bytes", frame(PING, 0, 0, b"\x00" * 7)),
        ("PING of 9 bytes", frame(PING, 0, 0, b"\x00" * 9)),
        ("WINDOW_UPDATE of 3 bytes", frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01")),
    ]
    for what, data in cases:
        fresh(s, data).expect_goaway(FRAME_SIZE_ERROR, what)
    c = fresh(s)
    c.get(1, "/sleep?ms=300")
    c.send(frame(RST_STREAM, 0, 1, b"\x00\x00\x08"))
    c.expect_goaway(FRAME_SIZE_ERROR, "RST_STREAM of 3 bytes")
    c = fresh(s)
    c.get(1, "/sleep?ms=300")
    c.send(frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00"))
    c.expect_goaway(FRAME_SIZE_ERROR, "PRIORITY of 4 bytes")


# --------------------------------------------------------- stream states

def test_data_on_an_idle_stream_is_a_connection_protocol_error():
    """RFC 9113 5.1 (idle): any frame but HEADERS or PRIORITY."""
    s = server()
    fresh(s, frame(DATA, END_STREAM, 1, b"hi")).expect_goaway(PROTOCOL_ERROR, "DATA on idle")
    fresh(s, window_update(1, 100)).expect_goaway(PROTOCOL_ERROR, "WINDOW_UPDATE on idle")
    fresh(s, frame(RST_STREAM, 0, 1, b"\x00\x00\x00\x08")).expect_goaway(
        PROTOCOL_ERROR, "RST_STREAM on idle")


def test_frames_on_a_half_closed_remote_stream_are_stream_closed_errors():
    """RFC 9113 5.1 (half-closed (remote)): a frame other than
    WINDOW_UPDATE, PRIORITY or RST_STREAM is a stream error STREAM_CLOSED.
    nghttp2 goes further and makes HEADERS and DATA there connection
    errors: GOAWAY STREAM_CLOSED."""
    s = server()
    c = fresh(s)
    c.get(1, "/sleep?ms=500")  # END_STREAM: half-closed (remote) while it sleeps
    c.send(c.headers(1, [("x-late", "1")]))
    c.expect_goaway(STREAM_CLOSED, "HEADERS on half-closed (remote)")
    c = fresh(s)
    c.get(1, "/sleep?ms=500")
    c.send(frame(DATA, END_STREAM, 1, b"late"))
    c.expect_goaway(STREAM_CLOSED, "DATA on half-closed (remote)")
    # the frames it allows there
    c = fresh(s)
    c.get(1, "/sleep?ms=200")
    c.send(window_update(1, 1000), frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"))
    c.pump(lambda: 1 in c.ended)
    eq((c.status.get(1), c.body.get(1)), (200, b'{"slept":true}'), "the sleeping stream")
    c.expect_serving("WINDOW_UPDATE and PRIORITY on half-closed (remote)")
    c.close()


def test_frames_on_closed_streams():
    """RFC 9113 5.1 (closed): once END_STREAM went both ways, a DATA or
    HEADERS from the peer is a connection error STREAM_CLOSED; a
    WINDOW_UPDATE, PRIORITY or RST_STREAM there is allowed and ignored."""
    s = server()
    for what, late in [("DATA", frame(DATA, END_STREAM, 1, b"after the end")),
                       ("HEADERS", hpack.Encoder().encode(request()))]:
        c = fresh(s)
        c.get(1)
        c.pump(lambda: 1 in c.ended)
        c.send(late if what == "DATA" else frame(HEADERS, END_HEADERS | END_STREAM, 1, late))
        c.expect_goaway(STREAM_CLOSED, "%s on a closed stream" % what)
    c = fresh(s)
    c.get(1)
    c.pump(lambda: 1 in c.ended)
    c.send(window_update(1, 10), frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10"),
           frame(RST_STREAM, 0, 1, b"\x00" * 4))
    c.pump(lambda: False, timeout=0.3)
    eq((c.goaways(), c.resets(1)), ([], []), "GOAWAYs and resets after allowed frames")
    c.expect_serving("WINDOW_UPDATE, PRIORITY and RST_STREAM on a closed stream")
    c.close()



def test_frames_after_a_reset():
    """RFC 9113 5.1 (closed): frames that arrive on a stream after the
    server reset it MUST be ignored (they may have been in flight); a DATA
    after the client's own RST_STREAM is a frame on a closed stream, which
    an endpoint MAY treat as a connection error STREAM_CLOSED, and nghttp2
    does."""
    s = server()
    for what, late in [("DATA", lambda c: frame(DATA, END_STREAM, 1, b"late")),
                       ("HEADERS", lambda c: frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                                   c.enc.encode([("x-t", "1")]))),
                       ("WINDOW_UPDATE", lambda c: window_update(1, 5))]:
        c = fresh(s)
        c.send(c.headers(1, request(extra=[("connection", "x")]), end_stream=False))
        c.pump(lambda: c.resets(1))
        eq(c.resets(1), [PROTOCOL_ERROR], "the server's reset")
        c.send(late(c))
        c.pump(lambda: False, timeout=0.2)
        c.expect_serving("%s after the server's reset" % what)
        c.close()
    c = fresh(s)
    c.get(1, "/sleep?ms=500", end_stream=False)
    c.send(frame(RST_STREAM, 0, 1, (CANCEL).to_bytes(4, "big")), frame(DATA, 0, 1, b"late"))
    c.expect_goaway(STREAM_CLOSED, "DATA after the client's reset")


def test_a_client_stream_with_an_even_id_is_a_connection_protocol_error():
    """RFC 9113 5.1.1: a client's streams are odd-numbered."""
    s = server()
    c = fresh(s)
    c.get(2)
    c.expect_goaway(PROTOCOL_ERROR, "HEADERS on stream 2")


def test_a_stream_id_lower_than_one_already_opened():
    """RFC 9113 5.1.1: a new stream's id must be greater than every id the
    client used; one that is not MUST be a connection error PROTOCOL_ERROR.
    nghttp2 cannot tell a reused id from a late frame of a stream it has
    forgotten, so it ignores the HEADERS (no answer on it) and serves on;
    a HEADERS for stream 0 is a connection PROTOCOL_ERROR."""
    s = server()
    c = fresh(s)
    c.get(5)
    c.pump(lambda: 5 in c.ended)
    c.get(3)
    c.pump(lambda: 3 in c.status or c.closed, timeout=0.5)
    eq(c.status.get(3), None, "an answer on stream 3")
    eq(c.goaways(), [], "GOAWAYs")
    c.expect_serving("a lower stream id")
    c.close()
    fresh(s, frame(HEADERS, END_HEADERS | END_STREAM, 0, hpack.Encoder().encode(request()))) \
        .expect_goaway(PROTOCOL_ERROR, "HEADERS on stream 0")


# ------------------------------------------------------- SETTINGS values

def test_settings_values_out_of_range_are_connection_errors():
    """RFC 9113 6.5.2: ENABLE_PUSH other than 0 or 1 and MAX_FRAME_SIZE
    outside 16384..16777215 are PROTOCOL_ERROR, INITIAL_WINDOW_SIZE over
    2^31-1 is FLOW_CONTROL_ERROR; SETTINGS on a stream is PROTOCOL_ERROR
    (6.5); an unknown setting is ignored."""
    s = server()
    for what, data, code in [
        ("ENABLE_PUSH 2", settings((S_ENABLE_PUSH, 2)), PROTOCOL_ERROR),
        ("INITIAL_WINDOW_SIZE 2^31", settings((S_INITIAL_WINDOW_SIZE, 1 << 31)),
         FLOW_CONTROL_ERROR),
        ("MAX_FRAME_SIZE 16383", settings((S_MAX_FRAME_SIZE, 16383)), PROTOCOL_ERROR),
        ("MAX_FRAME_SIZE 2^24", settings((S_MAX_FRAME_SIZE, 1 << 24)), PROTOCOL_ERROR),
        ("SETTINGS on stream 1", frame(SETTINGS, 0, 1, b""), PROTOCOL_ERROR),
    ]:
        fresh(s, first=data).expect_goaway(code, what)
    c = fresh(s, first=settings((0x4242, 7), (S_MAX_FRAME_SIZE, 1 << 20),
                                (S_INITIAL_WINDOW_SIZE, (1 << 31) - 1)))
    c.expect_serving("unknown and extreme valid settings")
    c.close()


# ------------------------------------------------------------ flow control

def test_window_update_of_zero():
    """RFC 9113 6.9: an increment of 0 is a stream error PROTOCOL_ERROR on
    a stream, a connection error PROTOCOL_ERROR on stream 0. nghttp2 makes
    it a connection error on a stream too: GOAWAY PROTOCOL_ERROR."""
    s = server()
    c = fresh(s)
    c.get(1, "/sleep?ms=300")
    c.send(window_update(1, 0))
    c.expect_goaway(PROTOCOL_ERROR, "WINDOW_UPDATE 0 on a stream")
    fresh(s, window_update(0, 0)).expect_goaway(PROTOCOL_ERROR, "WINDOW_UPDATE 0 on 0")


def test_a_window_past_2_31_minus_1_is_a_flow_control_error():
    """RFC 9113 6.9.1: on a stream, a stream error; on the connection, a
    connection error; both FLOW_CONTROL_ERROR."""
    s = server()
    c = fresh(s)
    c.get(1, "/sleep?ms=300")
    c.send(window_update(1, (1 << 31) - 1))
    c.expect_reset(1, FLOW_CONTROL_ERROR, "a stream's window past 2^31-1")
    c.close()
    fresh(s, window_update(0, (1 << 31) - 1)).expect_goaway(
        FLOW_CONTROL_ERROR, "the connection's window past 2^31-1")


def test_data_past_the_receive_window_is_a_flow_control_error():
    """RFC 9113 6.9.1: the server announces no INITIAL_WINDOW_SIZE, so a
    stream may carry 65535 bytes before the server opens it; its handler
    here reads nothing, so one byte more is a stream error (RST_STREAM
    FLOW_CONTROL_ERROR). The connection's window is 1 MiB: 17 such streams
    overflow it, a connection error."""
    s = server()
    c = fresh(s)
    c.get(1, "/sleep?ms=1000", end_stream=False)
    c.send(*[frame(DATA, 0, 1, b"x" * 16384) for _ in range(4)])
    c.expect_reset(1, FLOW_CONTROL_ERROR, "a stream's window overrun")
    c.close()
    c = fresh(s)
    for i in range(17):
        sid = 1 + 2 * i
        c.get(sid, "/sleep?ms=1000", end_stream=False)
        c.send(*[frame(DATA, 0, sid, b"x" * 16383) for _ in range(4)] +
               [frame(DATA, 0, sid, b"x" * 3)])
    c.expect_goaway(FLOW_CONTROL_ERROR, "the connection's window overrun")


# ------------------------------------------------------------------ HPACK

def test_hpack_errors_are_connection_compression_errors():
    """RFC 9113 4.3 and RFC 7541: an index past the tables (2.3.3), index 0
    (6.1), a dynamic table size update above the server's
    SETTINGS_HEADER_TABLE_SIZE (4096, 6.3) and a truncated block end the
    connection with COMPRESSION_ERROR."""
    s = server()
    for what, block in [
        ("index 70, the dynamic table empty", b"\x82\x86\x84\xc6"),
        ("index 0", b"\x80"),
        ("a table size update to 8192", b"\x3f\xe1\x3f\x82\x86\x84"),
        ("a literal cut short", b"\x82\x86\x84\x40\x05ab"),
    ]:
        fresh(s, frame(HEADERS, END_HEADERS | END_STREAM, 1, block)).expect_goaway(
            COMPRESSION_ERROR, what)


def test_a_client_header_table_size_of_zero_is_honoured():
    """RFC 7541 4.2: once the client sets SETTINGS_HEADER_TABLE_SIZE to 0,
    the server's next header block opens with a table size update to 0 and
    never refers to its dynamic table (the decoder here allows none)."""
    s = server()
    c = fresh(s, first=settings((S_HEADER_TABLE_SIZE, 0)))
    c.dec.max_allowed_table_size = 0
    c.dec.header_table_size = 0
    for sid in (1, 3, 5):
        c.get(sid, "/users/%d" % sid)
        c.pump(lambda: sid in c.ended)
        eq(c.status.get(sid), 200, "status of stream %d" % sid)
        eq(c.body.get(sid), b'{"id":%d}' % sid, "body of stream %d" % sid)
    eq(c.blocks[0][:1], b"\x20", "the first block's table size update")
    eq(c.goaways(), [], "GOAWAYs")
    c.close()


# --------------------------------------------------- pseudo-header rules

BAD_HEADS = [  # RFC 9113 8.2, 8.2.1, 8.2.2, 8.3, 8.3.1
    ("no :method", [(":scheme", "http"), (":path", "/plaintext"), (":authority", "x")]),
    ("no :path", [(":method", "GET"), (":scheme", "http"), (":authority", "x")]),
    ("no :scheme", [(":method", "GET"), (":path", "/plaintext"), (":authority", "x")]),
    ("an empty :path", request("")),
    ("two :path", request() + [(":path", "/plaintext")]),
    ("an unknown pseudo-header", request() + [(":foo", "bar")]),
    ("a response pseudo-header", request() + [(":status", "200")]),
    ("a pseudo-header after a regular field",
     [(":method", "GET"), (":scheme", "http"), ("accept", "*/*"), (":path", "/plaintext")]),
    ("an upper-case name", request(extra=[("X-Upper", "1")])),
    ("connection: keep-alive", request(extra=[("connection", "keep-alive")])),
    ("keep-alive", request(extra=[("keep-alive", "timeout=5")])),
    ("proxy-connection", request(extra=[("proxy-connection", "keep-alive")])),
    ("transfer-encoding", request(extra=[("transfer-encoding", "chunked")])),
    ("upgrade", request(extra=[("upgrade", "websocket")])),
    ("te: gzip", request(extra=[("te", "gzip")])),
    ("a name with a space", request(extra=[("x y", "1")])),
    ("a value with a newline", request(extra=[("x-y", "a\nb")])),
]


def test_malformed_request_heads_are_stream_protocol_errors():
    """RFC 9113 8.1.1: a malformed request is a stream error PROTOCOL_ERROR:
    RST_STREAM, no handler runs, and the connection serves on. te:
    trailers is the one te allowed."""
    s = server()
    c = fresh(s)
    sid = 1
    for what, fields in BAD_HEADS:
        c.send(c.headers(sid, fields))
        c.pump(lambda: c.resets(sid) or sid in c.status or c.closed)
        eq((c.resets(sid), c.status.get(sid)), ([PROTOCOL_ERROR], None), what)
        sid += 2
    c.get(sid, extra=[("te", "trailers")])
    c.pump(lambda: sid in c.ended)
    eq(c.status.get(sid), 200, "te: trailers")
    c.expect_serving("after malformed heads")
    c.close()


# ---------------------------------------------------------- CONTINUATION

def test_continuation_out_of_place_is_a_connection_protocol_error():
    """RFC 9113 6.10: a CONTINUATION that follows no unfinished header
    block, another frame inside a header block, or a CONTINUATION on
    another stream than its HEADERS."""
    s = server()
    enc = hpack.Encoder()
    block = enc.encode(request())
    fresh(s, frame(CONTINUATION, END_HEADERS, 1, block)).expect_goaway(
        PROTOCOL_ERROR, "CONTINUATION without HEADERS")
    c = fresh(s)
    c.get(1)
    c.pump(lambda: 1 in c.ended)
    c.send(frame(CONTINUATION, END_HEADERS, 1, b""))
    c.expect_goaway(PROTOCOL_ERROR, "CONTINUATION after a finished block")
    fresh(s, frame(HEADERS, END_STREAM, 1, block[:3]), frame(PING, 0, 0, b"\x00" * 8)) \
        .expect_goaway(PROTOCOL_ERROR, "PING inside a header block")
    fresh(s, frame(HEADERS, END_STREAM, 1, block[:3]),
          frame(CONTINUATION, END_HEADERS, 3, block[3:])).expect_goaway(
        PROTOCOL_ERROR, "CONTINUATION on another stream")


# ------------------------------------------------------------------ abuse

def flood(s, unit, count, rcvbuf=4096):
    """Send count copies of unit without reading (a small receive buffer,
    so the server's answers back up), then read what came."""
    c = Raw(s.port, rcvbuf=rcvbuf)
    c.sock.settimeout(3)
    try:
        c.sock.sendall(unit * count)
    except (socket.timeout, OSError):
        pass  # the server stopped reading
    c.sock.settimeout(5)
    c.pump(lambda: c.closed, timeout=10)
    c.close()
    return c


def test_continuation_flood_ends_the_connection():
    """CVE-2024-28182: HEADERS without END_HEADERS, then empty
    CONTINUATIONs without end. nghttp2 (as Debian patched 1.52) allows 8
    CONTINUATIONs in a block; the server then ends the connection with
    GOAWAY ENHANCE_YOUR_CALM."""
    s = server()
    c = Raw(s.port)
    c.send(frame(HEADERS, 0, 1, hpack.Encoder().encode(request())))
    try:
        c.send(frame(CONTINUATION, 0, 1) * 10000)
    except OSError:
        pass
    c.expect_goaway(ENHANCE_YOUR_CALM, "CONTINUATION flood")
    assert_serving(s)


def test_ping_settings_and_empty_data_floods_end_the_connection_and_memory_stays_flat():
    """PINGs and SETTINGS each owe an ACK; a client that sends them faster
    than it reads makes those pile up: nghttp2 stops at 1000 queued
    (ERR_FLOODED; one read of 16 KiB of PINGs is 963 of them) and the
    server ends the connection with GOAWAY ENHANCE_YOUR_CALM. Empty
    DATA frames without END_STREAM (CVE-2019-9518) cost work and no window:
    the server counts them and ends the connection with ENHANCE_YOUR_CALM
    past 1000. The server's memory does not grow across rounds."""
    s = server()
    c = Raw(s.port)
    c.get(1, "/sleep?ms=100", end_stream=False)
    empty = frame(DATA, 0, 1)

    def rounds(n):
        for _ in range(n):
            for what, unit, count in [("PING", frame(PING, 0, 0, b"\x00" * 8), 60000),
                                      ("SETTINGS", settings((S_ENABLE_PUSH, 0)), 60000)]:
                got = flood(s, unit, count)
                eq(got.goaways(), [ENHANCE_YOUR_CALM], "%s flood: GOAWAY codes" % what)
                check(got.closed, "%s flood: the connection stayed open", what)
            got = Raw(s.port)
            got.get(1, "/sleep?ms=100", end_stream=False)
            try:
                got.send(empty * 5000)
            except OSError:
                pass
            got.expect_goaway(ENHANCE_YOUR_CALM, "empty DATA flood")
    rounds(3)
    if sanitized(BIN):
        print("  (a sanitizer build: its memory says nothing; not measured)")
    else:
        before = rss_kb(s.proc.pid)
        rounds(30)
        after = rss_kb(s.proc.pid)
        check(after - before < 4096, "RSS grew from %d to %d KiB over 30 rounds", before, after)
    c.close()
    assert_serving(s)


def test_a_stream_never_finished_is_closed_at_the_body_timeout_and_others_are_served():
    """A request whose body never ends: its handler's read times out
    (body_timeout_ms, 800 here: 408); a request whose handler never reads
    its unfinished body is answered, then reset once no handler runs and
    the client has sent nothing for the body timeout (RST_STREAM NO_ERROR,
    RFC 9113 8.1; within two body timeouts of the handler's end); a header
    block never finished gets its stream reset the same way (CANCEL).
    Other streams on the connection are served meanwhile."""
    s = server()
    c = fresh(s)
    t0 = time.monotonic()
    c.send(c.headers(1, request("/echo", "POST"), end_stream=False), frame(DATA, 0, 1, b"part"))
    c.get(3, end_stream=False)
    c.get(5)
    c.pump(lambda: 5 in c.ended and 3 in c.status)
    eq((c.status.get(5), c.body.get(5)), (200, b"Hello, World!"), "another stream")
    eq((c.status.get(3), c.body.get(3)), (200, b"Hello, World!"), "the unfinished GET's answer")
    c.pump(lambda: 1 in c.status, timeout=3)
    eq(c.status.get(1), 408, "the unfinished body's answer")
    took = time.monotonic() - t0
    check(0.6 < took < 2, "the body timed out after %.2f s", took)
    c.pump(lambda: c.resets(3) and (c.resets(1) or 1 in c.ended), timeout=4)
    eq(c.resets(3), [NO_ERROR], "the unfinished GET's reset")
    c.expect_serving("after unfinished streams")
    c.close()
    # a client that says nothing at all once its unfinished request is
    # answered (no SETTINGS ACK, no WINDOW_UPDATE): reset all the same
    c = Raw(s.port, ack=False)
    c.get(1, "/sleep?ms=300", end_stream=False)
    t0 = time.monotonic()
    c.pump(lambda: c.resets(1) or c.closed, timeout=4)
    eq((c.status.get(1), c.body.get(1), c.resets(1)), (200, b'{"slept":true}', [NO_ERROR]),
       "a silent client's unfinished request")
    took = time.monotonic() - t0
    check(took < 0.3 + 2 * 0.8 + 0.5, "reset after %.2f s", took)
    c.close()
    # a header block that never ends (no SETTINGS ACK either: it would be
    # a frame inside the block)
    c = Raw(s.port, ack=False)
    c.send(frame(HEADERS, 0, 1, hpack.Encoder().encode(request())))
    c.pump(lambda: c.resets(1) or c.closed, timeout=4)
    eq(c.resets(1), [CANCEL], "the unfinished header block's reset")
    c.close()
    assert_serving(s)


def test_a_header_list_over_the_limits_is_answered_431():
    """SETTINGS_MAX_HEADER_LIST_SIZE is max_head (8192 here) and the field
    count is max_headers (20 here): a request past either is answered 431
    without running its handler, and the connection serves on."""
    s = server()
    c = fresh(s)
    c.pump(lambda: any(k == SETTINGS for k, _, _, _ in c.frames))
    sets = [p for k, f, _, p in c.frames if k == SETTINGS and not f & ACK][0]
    got = {int.from_bytes(sets[i:i + 2], "big"): int.from_bytes(sets[i + 2:i + 6], "big")
           for i in range(0, len(sets), 6)}
    eq(got.get(S_MAX_HEADER_LIST_SIZE), 8192, "SETTINGS_MAX_HEADER_LIST_SIZE")
    c.get(1, extra=[("x-big-%d" % i, "v" * 1000) for i in range(9)])
    c.get(3, extra=[("x-n-%d" % i, "v") for i in range(21)])
    c.pump(lambda: 1 in c.ended and 3 in c.ended)
    eq((c.status.get(1), c.status.get(3)), (431, 431), "statuses")
    c.expect_serving("after 431s")
    c.close()


# -------------------------------------------------------- real clients

def test_h2load_thousands_of_requests_all_succeed():
    """h2load over h2c (prior knowledge): every request answered 2xx. A
    correctness check, not a benchmark: no timing is asserted."""
    s = server()
    r = subprocess.run(["h2load", "-n", "4000", "-c", "4", "-m", "16",
                        "http://%s:%d/plaintext" % (HOST, s.port)],
                       capture_output=True, text=True, timeout=120)
    eq(r.returncode, 0, "h2load exit (%s)" % r.stderr)
    check("4000 total, 4000 started, 4000 done, 4000 succeeded, 0 failed, 0 errored" in r.stdout,
          "h2load: %s", r.stdout)
    check("status codes: 4000 2xx" in r.stdout, "h2load statuses: %s", r.stdout)
    r = subprocess.run(["h2load", "-n", "1000", "-c", "2", "-m", "8",
                        "http://%s:%d/users/9" % (HOST, s.port)],
                       capture_output=True, text=True, timeout=120)
    check("1000 succeeded, 0 failed, 0 errored" in r.stdout, "h2load: %s", r.stdout)


def test_nghttp_posts_a_body_and_gets_it_back():
    """nghttp -v: the request's DATA goes out, the echo comes back whole."""
    s = server()
    with tempfile.NamedTemporaryFile() as f:
        body = b"".join(b"line %d\n" % i for i in range(5000))
        f.write(body)
        f.flush()
        r = subprocess.run(["nghttp", "-v", "-d", f.name, "-H", "content-type: text/plain",
                            "http://%s:%d/echo" % (HOST, s.port)],
                           capture_output=True, timeout=30)
    out = r.stdout
    eq(r.returncode, 0, "nghttp exit (%s)" % r.stderr)
    check(b"send DATA frame" in out, "no DATA sent: %r", out[:2000])
    check(b"recv DATA frame" in out, "no DATA received")
    check(b":status: 200" in out, "no 200 in %r", out[:2000])
    check(body in out, "the echoed body is not whole")
    check(b"send GOAWAY" in out, "nghttp did not end cleanly")


if __name__ == "__main__":
    run(globals())
