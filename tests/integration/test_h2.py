"""HTTP/2 (src/h2): every route of the HTTP test server served over h2c with
prior knowledge and over TLS by ALPN "h2", answering what HTTP/1.1 answers
(curl); many concurrent streams on one connection (nghttp); and frames
driven by hand with Python's h2 library: a stream whose peer never opens
its window stalls alone, rapid reset gets GOAWAY ENHANCE_YOUR_CALM, bad
bytes after the preface get a connection error, a graceful stop lets a
stream in flight finish and says GOAWAY. Every server must exit 0 and
sanitizer-clean at the end (httptest.Server)."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import HOST, Server, build, check, chunked, eq, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CERTS = tempfile.mkdtemp(prefix="weave-h2-")
MAX_BODY = 8 << 20
_tls = None


def certs():
    if not os.path.exists(os.path.join(CERTS, "server.pem")):
        subprocess.run(["bash", os.path.join(ROOT, "tests", "make_certs.sh"), CERTS], check=True)
    return os.path.join(CERTS, "server.pem"), os.path.join(CERTS, "server.key")


def tls_server():
    cert, key = certs()
    return Server(TLS_CERT=cert, TLS_KEY=key, MAX_BODY=MAX_BODY)


# ------------------------------------------------------------------ curl

def curl(url, *args, proto):
    """(status, headers without date and framing fields, body, version)"""
    with tempfile.TemporaryDirectory() as d:
        hfile, bfile = os.path.join(d, "h"), os.path.join(d, "b")
        flags = {"h1": ["--http1.1"], "h2c": ["--http2-prior-knowledge"], "h2": ["--http2"]}[proto]
        cmd = ["curl", "-sS", "--cacert", os.path.join(CERTS, "ca.pem"), "-D", hfile, "-o", bfile,
               "-w", "%{http_code} %{http_version}"] + flags + list(args) + [url]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        eq(r.returncode, 0, "curl %s %s exit (%s)" % (proto, url, r.stderr.strip()))
        code, version = r.stdout.split()
        heads = {}
        with open(hfile, "rb") as f:
            blocks = f.read().decode("latin-1").split("\r\n\r\n")
        for line in [b for b in blocks if b.strip()][-1].split("\r\n")[1:]:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            if name not in ("date", "transfer-encoding", "connection", "keep-alive"):
                heads.setdefault(name, []).append(value.strip())
        with open(bfile, "rb") as f:
            body = f.read() if "-I" not in args else b""  # HEAD: curl writes the head there
        return int(code), heads, body, version


def same_as_http11(url_h1, url_h2, proto, *args):
    s1, h1, b1, v1 = curl(url_h1, *args, proto="h1")
    s2, h2_, b2, v2 = curl(url_h2, *args, proto=proto)
    eq(v1, "1.1", "HTTP/1.1 version")
    eq(v2, "2", "%s version" % proto)
    eq(s2, s1, "%s status of %s" % (proto, url_h2))
    eq(h2_, h1, "%s headers of %s" % (proto, url_h2))
    eq(b2, b1, "%s body of %s" % (proto, url_h2))
    return s2, b2


CASES = [  # (path, curl arguments, expected status)
    ("/plaintext", [], 200),
    ("/users/7", [], 200),                                   # JSON
    ("/json/users", ["-H", "Content-Type: application/json",
                     "--data-binary", '{"name":"Ada","age":36}'], None),
    ("/nope", [], 404),
    ("/plaintext", ["-X", "POST"], 405),                     # with Allow
    ("/users/abc", [], 400),
    ("/big?n=3000000", [], 200),                             # a 3 MB response
    ("/stream?n=200", [], 200),                              # streamed (chunked on 1.1)
    ("/sse", [], 200),                                       # Server-Sent Events
    ("/plaintext", ["-H", "X-Request-Id: abc-123"], 200),    # the id echoed
    ("/fail/13", [], 403),
    ("/redirect", [], 302),
    ("/cookie", [], None),
    ("/big?n=5000", ["-I"], 200),                            # HEAD: the head only
]


def big_file():
    path = os.path.join(CERTS, "upload.bin")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(os.urandom(3 << 20))
    return path


def parity(s, proto):
    scheme = "https" if proto == "h2" else "http"
    host = "localhost" if proto == "h2" else HOST
    url = "%s://%s:%d" % (scheme, host, s.port)
    for path, args, status in CASES:
        got, _ = same_as_http11(url + path, url + path, proto, *args)
        if status:
            eq(got, status, "status of %s" % path)
    # large request bodies, whole (wv_req_body) and streamed (wv_req_read)
    up = big_file()
    got, body = same_as_http11(url + "/echo", url + "/echo", proto,
                               "-H", "Content-Type: application/octet-stream",
                               "--data-binary", "@" + up)
    eq(got, 200, "echo status")
    eq(len(body), 3 << 20, "echoed bytes")
    got, body = same_as_http11(url + "/upload", url + "/upload", proto, "--data-binary", "@" + up)
    check(body.startswith(b'{"bytes":3145728,'), "upload answer %r", body)
    # past max_body: 413 on both
    over = os.path.join(CERTS, "over.bin")
    with open(over, "wb") as f:
        f.write(b"x" * (MAX_BODY + 1))
    got, _ = same_as_http11(url + "/echo", url + "/echo", proto, "--data-binary", "@" + over)
    eq(got, 413, "a body over max_body")


def test_h2c_prior_knowledge_answers_every_route_as_http11_does():
    with Server(MAX_BODY=MAX_BODY) as s:
        parity(s, "h2c")


def test_tls_alpn_h2_answers_every_route_as_http11_does():
    with tls_server() as s:
        parity(s, "h2")


# ---------------------------------------------------------------- nghttp

def test_nghttp_100_concurrent_streams_on_one_connection_each_answered():
    with Server() as s:
        urls = ["http://%s:%d/users/%d" % (HOST, s.port, i) for i in range(100)]
        r = subprocess.run(["nghttp", "-s"] + urls, capture_output=True, text=True, timeout=60)
        eq(r.returncode, 0, "nghttp exit (%s)" % r.stderr)
        for i in range(100):
            eq(r.stdout.count('{"id":%d}' % i), 1, "body of /users/%d" % i)
        codes = [ln.split()[4] for ln in r.stdout.splitlines() if "/users/" in ln and "+" in ln]
        eq(len(codes), 100, "responses in nghttp's statistics")
        eq(set(codes), {"200"}, "statuses")
        # 100 handlers that each sleep 500 ms run at once on the connection
        t0 = time.monotonic()
        r = subprocess.run(["nghttp", "-n", "-s", "-m", "100",
                            "http://%s:%d/sleep?ms=500" % (HOST, s.port)],
                           capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t0
        eq(r.returncode, 0, "nghttp -m 100 exit (%s)" % r.stderr)
        codes = [ln.split()[4] for ln in r.stdout.splitlines() if "/sleep" in ln and "+" in ln]
        eq(codes, ["200"] * 100, "statuses of 100 sleeps")
        check(took < 5, "100 concurrent 500 ms sleeps took %.2f s", took)


# -------------------------------------------------------- h2 by hand

class Peer:
    """An HTTP/2 client on a raw socket, Python's h2 doing the framing."""

    def __init__(self, port, window=None):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.h2.initiate_connection()
        if window is not None:
            self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.data = {}
        self.ended = set()
        self.status = {}
        self.headers = {}    # sid -> the response's fields
        self.trailers = {}   # sid -> the trailer fields
        self.ended_by = {}   # sid -> "headers", "data" or "trailers": the frame with END_STREAM
        self.resets = {}     # sid -> the error code of the server's RST_STREAM
        self.terminated = None
        self.closed = False

    def flush(self):
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def get(self, path, end=True):
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                   (":authority", "localhost")], end_stream=end)
        self.flush()
        return sid

    def pump(self, until, timeout=5, ack=lambda sid: True):
        """Read and handle events until until() or the timeout. Data on a
        stream for which ack(sid) is false is acknowledged for the
        connection only: its stream window never reopens."""
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline and not self.closed:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                got = self.sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                got = b""
            if not got:
                self.closed = True
                break
            for ev in self.h2.receive_data(got):
                if isinstance(ev, h2.events.ResponseReceived):
                    self.status[ev.stream_id] = int(dict(ev.headers)[":status"])
                    self.headers[ev.stream_id] = ev.headers
                    if ev.stream_ended is not None:
                        self.ended_by[ev.stream_id] = "headers"
                elif isinstance(ev, h2.events.TrailersReceived):
                    self.trailers[ev.stream_id] = ev.headers
                    if ev.stream_ended is not None:
                        self.ended_by[ev.stream_id] = "trailers"
                elif isinstance(ev, h2.events.StreamReset):
                    self.resets[ev.stream_id] = ev.error_code
                elif isinstance(ev, h2.events.DataReceived):
                    self.data[ev.stream_id] = self.data.get(ev.stream_id, b"") + ev.data
                    if ev.stream_ended is not None:
                        self.ended_by[ev.stream_id] = "data"
                    n = ev.flow_controlled_length
                    if ack(ev.stream_id):
                        self.h2.acknowledge_received_data(n, ev.stream_id)
                    elif n:
                        self.h2.increment_flow_control_window(n)  # the connection's only
                elif isinstance(ev, h2.events.StreamEnded):
                    self.ended.add(ev.stream_id)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    self.terminated = ev
            try:
                self.flush()
            except OSError:
                self.closed = True
        return until()

    def close(self):
        self.sock.close()


def assert_serving(s):
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge",
                        "http://%s:%d/plaintext" % (HOST, s.port)],
                       capture_output=True, text=True, timeout=10)
    eq(r.stdout, "Hello, World!", "h2c on a fresh connection")
    r = subprocess.run(["curl", "-sS", "http://%s:%d/plaintext" % (HOST, s.port)],
                       capture_output=True, text=True, timeout=10)
    eq(r.stdout, "Hello, World!", "HTTP/1.1 on a fresh connection")


def test_a_stream_whose_window_stays_shut_stalls_alone():
    with Server() as s:
        p = Peer(s.port)
        stuck = p.get("/stream?n=100000")       # 1.2 MB of lines
        ok = p.pump(lambda: len(p.data.get(stuck, b"")) >= 65535, ack=lambda sid: sid != stuck)
        check(ok, "the stalled stream got %d bytes", len(p.data.get(stuck, b"")))
        time.sleep(0.3)
        p.pump(lambda: False, timeout=0.3, ack=lambda sid: sid != stuck)
        eq(len(p.data[stuck]), 65535, "bytes sent past a shut window")
        check(stuck not in p.ended, "the stalled stream ended")
        other = p.get("/plaintext")
        ok = p.pump(lambda: other in p.ended, ack=lambda sid: sid != stuck)
        check(ok, "the other stream did not complete")
        eq(p.status[other], 200, "other stream's status")
        eq(p.data[other], b"Hello, World!", "other stream's body")
        # opening the window lets the stalled one finish, whole
        p.h2.increment_flow_control_window(1 << 30, stream_id=stuck)
        p.flush()
        ok = p.pump(lambda: stuck in p.ended, timeout=20)
        check(ok, "the stalled stream did not finish once its window opened")
        body = p.data[stuck]
        eq(len(body), sum(len("chunk %d\n" % i) for i in range(100000)), "the stream's bytes")
        p.close()
        assert_serving(s)


def test_rapid_reset_gets_goaway_enhance_your_calm_and_others_are_served():
    with Server() as s:
        p = Peer(s.port)
        try:
            for _ in range(400):
                sid = p.get("/sleep?ms=2000")
                p.h2.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
            p.flush()
        except OSError:
            pass  # the server said GOAWAY and closed before we were done
        p.pump(lambda: p.terminated is not None, timeout=10)
        check(p.terminated is not None, "no GOAWAY after 400 resets")
        eq(p.terminated.error_code, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "GOAWAY's code")
        p.pump(lambda: p.closed, timeout=5)
        check(p.closed, "the connection stayed open after its GOAWAY")
        p.close()
        assert_serving(s)
        check(s.wait_stderr(lambda e: "ENHANCE_YOUR_CALM" in e), "no warning logged")


def goaway_codes(data):
    """The error codes of the GOAWAY frames in raw server bytes."""
    codes, i = [], 0
    while i + 9 <= len(data):
        n = int.from_bytes(data[i:i + 3], "big")
        if data[i + 3] == 0x7 and i + 9 + 8 <= len(data):
            codes.append(int.from_bytes(data[i + 13:i + 17], "big"))
        i += 9 + n
    return codes


def read_all(sock, timeout=5):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            got = sock.recv(65536)
            if not got:
                return data, True
            data += got
    except socket.timeout:
        return data, False
    except ConnectionResetError:
        return data, True


def test_garbage_after_the_preface_gets_goaway_protocol_error_and_others_are_served():
    with Server() as s:
        c = socket.create_connection((HOST, s.port), timeout=5)
        c.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x63garbage!" * 4)
        data, closed = read_all(c)
        check(closed, "the connection stayed open")
        eq(goaway_codes(data), [h2.errors.ErrorCodes.PROTOCOL_ERROR], "GOAWAY codes")
        c.close()
        # a preface that is not HTTP/2's is HTTP/1.1's to refuse
        c = socket.create_connection((HOST, s.port), timeout=5)
        c.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        data, closed = read_all(c)
        check(data.startswith(b"HTTP/1.1 505 "), "answer %r", data[:60])
        check(closed, "the connection stayed open")
        c.close()
        assert_serving(s)


def test_garbage_preface_over_tls_h2_gets_goaway_and_others_are_served():
    with tls_server() as s:
        ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((HOST, s.port), timeout=5)
        c = ctx.wrap_socket(raw, server_hostname="localhost")
        eq(c.selected_alpn_protocol(), "h2", "ALPN")
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data, closed = read_all(c)
        check(closed, "the connection stayed open")
        eq(goaway_codes(data), [h2.errors.ErrorCodes.PROTOCOL_ERROR], "GOAWAY codes")
        c.close()
        r = subprocess.run(["curl", "-sS", "--http2", "--cacert", os.path.join(CERTS, "ca.pem"),
                            "https://localhost:%d/plaintext" % s.port],
                           capture_output=True, text=True, timeout=10)
        eq(r.stdout, "Hello, World!", "h2 over TLS on a fresh connection")


def test_graceful_stop_finishes_the_stream_in_flight_then_goaway_and_close():
    with Server(DRAIN_TIMEOUT_MS=5000) as s:
        p = Peer(s.port)
        sid = p.get("/sleep?ms=800")
        p.pump(lambda: False, timeout=0.3)
        t0 = time.monotonic()
        s.signal(signal.SIGTERM)
        ok = p.pump(lambda: sid in p.ended, timeout=5)
        check(ok, "the stream in flight did not finish")
        eq(p.status[sid], 200, "status")
        eq(p.data[sid], b'{"slept":true}', "body")
        p.pump(lambda: p.closed, timeout=5)
        check(p.terminated is not None, "no GOAWAY")
        eq(p.terminated.error_code, h2.errors.ErrorCodes.NO_ERROR, "GOAWAY's code")
        check(p.terminated.last_stream_id >= sid, "GOAWAY's last stream %s does not cover %d",
              p.terminated.last_stream_id, sid)
        check(p.closed, "the connection stayed open")
        eq(s.wait(5), 0, "exit status")
        check(time.monotonic() - t0 < 3, "exit took %.2f s", time.monotonic() - t0)
        p.close()



# ------------------------------------------------------------- trailers

def test_trailers_after_a_streamed_body_are_a_headers_frame_with_end_stream():
    with Server() as s:
        p = Peer(s.port)
        sid = p.get("/trailers?n=3")
        ok = p.pump(lambda: sid in p.ended)
        check(ok, "the stream did not end")
        eq(p.status[sid], 200, "status")
        eq(p.data[sid], b"line 0\nline 1\nline 2\n", "body")
        eq(p.trailers.get(sid), [("x-checksum", "3"), ("grpc-status", "0")], "trailers")
        eq(p.ended_by[sid], "trailers", "the frame that ended the stream")
        # a whole body (wv_res_send) with a trailer, and an empty one
        a, b = p.get("/trailers-whole"), p.get("/trailers-whole?empty=1")
        ok = p.pump(lambda: a in p.ended and b in p.ended)
        check(ok, "the whole-body streams did not end")
        eq(p.data.get(a), b"whole", "whole body")
        eq(p.data.get(b), None, "empty body")
        for sid in (a, b):
            eq(p.status[sid], 200, "status")
            eq(p.trailers.get(sid), [("grpc-status", "0")], "trailers of a whole body")
            eq(p.ended_by[sid], "trailers", "the frame that ended the stream")
        p.close()


def test_a_trailers_only_response_is_one_headers_frame_with_end_stream():
    with Server() as s:
        c = socket.create_connection((HOST, s.port), timeout=5)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        conn = h2.connection.H2Connection(config=cfg)
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", "/trailers-only"),
                              (":scheme", "http"), (":authority", "localhost")], end_stream=True)
        c.sendall(conn.data_to_send())
        frames, buf = [], b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                t == 0x1 and sid == 1 and flags & 0x1 for t, flags, sid, _ in frames):
            got = c.recv(65536)
            check(got, "the connection closed")
            buf += got
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                frames.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff,
                               buf[9:9 + n]))
                buf = buf[9 + n:]
        on1 = [(t, flags) for t, flags, sid, _ in frames if sid == 1]
        eq(len(on1), 1, "frames on the stream (%r)" % on1)
        eq(on1[0][0], 0x1, "the frame's type (HEADERS)")
        check(on1[0][1] & 0x1, "END_STREAM not set on the HEADERS")
        events = conn.receive_data(b"".join(
            len(pl).to_bytes(3, "big") + bytes([t, fl]) + sid.to_bytes(4, "big") + pl
            for t, fl, sid, pl in frames))
        heads = [dict(ev.headers) for ev in events if isinstance(ev, h2.events.ResponseReceived)]
        eq(len(heads), 1, "responses")
        eq((heads[0][":status"], heads[0]["content-type"], heads[0]["grpc-status"],
            heads[0]["grpc-message"]), ("200", "application/grpc", "5", "not found"), "fields")
        c.close()


def test_http11_chunked_trailers_only_when_te_trailers_was_sent():
    with Server() as s:
        with s.conn() as c:
            r = c.request("GET", "/trailers?n=2", headers=[("TE", "trailers")])
            eq(r.status, 200, "status")
            eq(r.framing, "chunked", "framing")
            eq(r.body, b"line 0\nline 1\n", "body")
            eq(r.trailers, [("X-Checksum", "2"), ("grpc-status", "0")], "trailers with TE")
            r = c.request("GET", "/trailers?n=2")
            eq(r.framing, "chunked", "framing")
            eq(r.trailers, [], "trailers without TE")
            r = c.request("GET", "/trailers?n=1", headers=[("TE", "gzip;q=0.5, Trailers")])
            eq(r.trailers, [("X-Checksum", "1"), ("grpc-status", "0")], "trailers, TE a list")
            r = c.request("GET", "/trailers-whole", headers=[("TE", "trailers")])
            eq((r.framing, r.body, r.trailers), ("length", b"whole", []),
               "a whole body drops them")


def test_request_trailers_reach_the_handler_over_http2():
    with Server() as s:
        p = Peer(s.port)
        sids = {}
        for whole in (0, 1):
            sid = p.h2.get_next_available_stream_id()
            p.h2.send_headers(sid, [(":method", "POST"), (":path", "/trailers-in?whole=%d" % whole),
                                    (":scheme", "http"), (":authority", "localhost"),
                                    ("te", "trailers")])
            p.h2.send_data(sid, b"x" * 1000)
            p.h2.send_headers(sid, [("x-checksum", "abc%d" % whole), ("grpc-status", "0")],
                              end_stream=True)
            sids[whole] = sid
        plain = p.h2.get_next_available_stream_id()  # no trailers
        p.h2.send_headers(plain, [(":method", "POST"), (":path", "/trailers-in"),
                                  (":scheme", "http"), (":authority", "localhost")])
        p.h2.send_data(plain, b"yy", end_stream=True)
        p.flush()
        ok = p.pump(lambda: all(sid in p.ended for sid in list(sids.values()) + [plain]))
        check(ok, "the streams did not end")
        eq(p.data[sids[0]], b"1000 abc0 0 after", "streamed body's trailers")
        eq(p.data[sids[1]], b"1000 abc1 0 after", "whole body's trailers")
        eq(p.data[plain], b"2 - - after", "no trailers")
        p.close()
    with Server(MAX_HEAD=1024) as s:  # trailers past max_head: the body's read fails
        p = Peer(s.port)
        sid = p.h2.get_next_available_stream_id()
        p.h2.send_headers(sid, [(":method", "POST"), (":path", "/trailers-in"),
                                (":scheme", "http"), (":authority", "localhost")])
        p.h2.send_data(sid, b"x")
        p.h2.send_headers(sid, [("x-big", "v" * 2000)], end_stream=True)
        p.flush()
        ok = p.pump(lambda: sid in p.ended)
        check(ok, "the stream did not end")
        eq(p.status[sid], 413, "trailers past max_head")
        p.close()


def test_request_trailers_reach_the_handler_over_http11_chunked():
    with Server() as s:
        with s.conn() as c:
            for whole in (0, 1):
                body = chunked([b"x" * 700, b"y" * 300],
                               trailers=[("X-Checksum", "abc%d" % whole), ("grpc-status", "0")])
                r = c.request("POST", "/trailers-in?whole=%d" % whole,
                              headers=[("Transfer-Encoding", "chunked")], body=body)
                eq((r.status, r.body), (200, b"1000 abc%d 0 after" % whole), "chunked trailers")
            # sent a few bytes at a time: lines split across reads
            body = chunked([b"z" * 5], trailers=[("x-checksum", "split"), ("Grpc-Status", "3")])
            c.send(build("POST", "/trailers-in", [("Transfer-Encoding", "chunked")]))
            for i in range(0, len(body), 3):
                c.send(body[i:i + 3])
                time.sleep(0.005)
            r = c.read_response()
            eq((r.status, r.body), (200, b"5 split 3 after"), "trailers in pieces")
            r = c.request("POST", "/trailers-in", body=b"plain")
            eq((r.status, r.body), (200, b"5 - - after"), "a Content-Length body")
    with Server(MAX_HEAD=1024) as s:
        with s.conn() as c:
            body = chunked([b"x"], trailers=[("x-big", "v" * 2000)])
            r = c.request("POST", "/trailers-in", headers=[("Transfer-Encoding", "chunked")],
                          body=body)
            eq(r.status, 413, "trailers past max_head")


# ------------------------------------------------------------ cancelling

def cancelled(s):
    r = subprocess.run(["curl", "-sS", "http://%s:%d/cancelled" % (HOST, s.port)],
                       capture_output=True, text=True, timeout=10)
    import json
    return json.loads(r.stdout)


def test_rst_stream_cancels_the_handler_and_the_connection_serves_on():
    with Server() as s:
        p = Peer(s.port)
        t0 = time.monotonic()
        sid = p.get("/cancellable?ms=10000")
        p.pump(lambda: False, timeout=0.2)
        p.h2.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
        p.flush()
        reset_at_ms = (time.monotonic() - t0) * 1000
        deadline = time.monotonic() + 3
        got = cancelled(s)
        while got["count"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
            got = cancelled(s)
        eq(got["count"], 1, "handlers that saw -ECANCELED")
        # the handler's sleep ended within 100 ms of the reset leaving us
        check(got["after_ms"] <= reset_at_ms + 100,
              "the handler slept %d ms; the reset went at %.0f ms", got["after_ms"], reset_at_ms)
        other = p.get("/plaintext")
        ok = p.pump(lambda: other in p.ended)
        check(ok, "the next stream did not complete")
        eq((p.status[other], p.data[other]), (200, b"Hello, World!"), "the next stream")
        check(not p.closed and p.terminated is None, "the connection ended")
        # a connection that dies cancels its handlers too
        q = Peer(s.port)
        q.get("/cancellable?ms=10000")
        q.pump(lambda: False, timeout=0.2)
        q.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        q.close()  # an RST on the wire
        deadline = time.monotonic() + 3
        while cancelled(s)["count"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        eq(cancelled(s)["count"], 2, "handlers cancelled after the connection died")
        p.close()
        assert_serving(s)


def test_a_client_that_half_closes_gets_whole_requests_answered_then_goaway_at_once():
    with Server() as s:
        p = Peer(s.port)
        whole = p.get("/sleep?ms=300")
        cut = p.h2.get_next_available_stream_id()
        p.h2.send_headers(cut, [(":method", "POST"), (":path", "/echo"), (":scheme", "http"),
                                (":authority", "localhost")], end_stream=False)
        p.h2.send_data(cut, b"part of a body")
        p.flush()
        p.pump(lambda: False, timeout=0.1)
        p.sock.shutdown(socket.SHUT_WR)
        t0 = time.monotonic()
        p.pump(lambda: p.closed, timeout=5)
        took = time.monotonic() - t0
        check(p.closed, "the connection stayed open")
        eq((p.status.get(whole), p.data.get(whole)), (200, b'{"slept":true}'), "the whole request")
        check(whole in p.ended, "the whole request's stream did not end")
        eq(p.resets.get(cut), h2.errors.ErrorCodes.CANCEL, "the cut request's reset")
        check(p.terminated is not None, "no GOAWAY")
        eq(p.terminated.error_code, h2.errors.ErrorCodes.NO_ERROR, "GOAWAY's code")
        check(took < 0.8, "closed %.2f s after our EOF", took)
        p.close()
        assert_serving(s)


def test_a_connection_error_cancels_the_handlers_in_flight():
    with Server() as s:
        before = cancelled(s)["count"]
        p = Peer(s.port)
        p.get("/cancellable?ms=10000")
        p.pump(lambda: False, timeout=0.2)
        t0 = time.monotonic()
        p.sock.sendall(b"\x00\x00\x04\x63garbage!")  # bad frames, as in the garbage test
        p.sock.sendall(b"\x00\x00\x08\x07\x00\x00\x00\x00\x01" + b"\x00" * 8)  # GOAWAY on stream 1
        p.pump(lambda: p.closed, timeout=5)
        check(p.terminated is not None, "no GOAWAY")
        eq(p.terminated.error_code, h2.errors.ErrorCodes.PROTOCOL_ERROR, "GOAWAY's code")
        deadline = time.monotonic() + 3
        while cancelled(s)["count"] < before + 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        eq(cancelled(s)["count"], before + 1, "handlers cancelled by the connection error")
        check(time.monotonic() - t0 < 2, "took %.2f s", time.monotonic() - t0)
        p.close()
        assert_serving(s)

if __name__ == "__main__":
    try:
        run(globals())
    finally:
        shutil.rmtree(CERTS, ignore_errors=True)
