"""h2c by Upgrade (RFC 7540 3.2): an HTTP/1.1 request without a body that
asks for "Upgrade: h2c" with one HTTP2-Settings field (both named in
Connection) gets 101 Switching Protocols and its answer as stream 1 of an
HTTP/2 connection, which then serves further streams. Requests with a body,
requests missing a part of the handshake, TLS connections and a no_h2
server are answered over HTTP/1.1, the Upgrade ignored. Driven with curl
--http2 (which asks for the upgrade on http://) and with Python's h2
(initiate_upgrade_connection) on a raw socket."""
import base64
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.events

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httptest  # noqa: E402
from httptest import HOST, Server, check, eq, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def server():
    if httptest._shared is None or not httptest._shared.alive():
        httptest._shared = Server()
    return httptest._shared


def curl(*args):
    r = subprocess.run(["curl", "-sS", "-w", "\n%{http_code} %{http_version}"] + list(args),
                       capture_output=True, text=True, timeout=20)
    eq(r.returncode, 0, "curl exit (%s)" % r.stderr)
    body, _, tail = r.stdout.rpartition("\n")
    code, version = tail.split()
    return int(code), version, body


def read_head(sock):
    """The bytes of one HTTP/1.1 head, and what came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        check(got, "the connection closed inside the head: %r", data)
        data += got
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


class Upgraded:
    """A client that asks for the upgrade with Python's h2."""

    def __init__(self, port, method="GET", path="/plaintext", extra=b""):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        settings = self.h2.initiate_upgrade_connection()
        self.sock.sendall(b"%s %s HTTP/1.1\r\nHost: localhost\r\n"
                          b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                          b"HTTP2-Settings: %s\r\n%s\r\n"
                          % (method.encode(), path.encode(), settings, extra))
        self.head, rest = read_head(self.sock)
        self.status, self.data, self.ended, self.fields = {}, {}, set(), {}
        self.terminated = None
        self.closed = False
        if self.head.startswith("HTTP/1.1 101 "):
            self.sock.sendall(self.h2.data_to_send())
            self.take(rest)

    def take(self, got):
        for ev in self.h2.receive_data(got):
            if isinstance(ev, h2.events.ResponseReceived):
                self.fields[ev.stream_id] = dict(ev.headers)
                self.status[ev.stream_id] = int(self.fields[ev.stream_id][":status"])
            elif isinstance(ev, h2.events.DataReceived):
                self.data[ev.stream_id] = self.data.get(ev.stream_id, b"") + ev.data
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.terminated = ev
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self, until, timeout=5):
        deadline = time.monotonic() + timeout
        while not until() and not self.closed and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got = self.sock.recv(65536)
            except socket.timeout:
                break
            if not got:
                self.closed = True
                break
            self.take(got)
        return until()

    def get(self, path):
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                   (":authority", "localhost")], end_stream=True)
        self.sock.sendall(self.h2.data_to_send())
        return sid


def test_an_upgrade_is_101_then_the_request_is_stream_1_over_http2():
    s = server()
    c = Upgraded(s.port, path="/users/42", extra=b"X-Request-Id: up-1\r\n")
    check(c.head.startswith("HTTP/1.1 101 Switching Protocols"), "head %r", c.head)
    lines = [ln.lower() for ln in c.head.split("\r\n")[1:]]
    check("upgrade: h2c" in lines and "connection: upgrade" in lines, "101's fields %r", lines)
    ok = c.pump(lambda: 1 in c.ended)
    check(ok, "stream 1 did not end")
    eq((c.status[1], c.data.get(1)), (200, b'{"id":42}'), "stream 1's answer")
    eq(c.fields[1].get("x-request-id"), "up-1", "a field of the upgraded request")
    # the connection is HTTP/2's now: more streams
    sid = c.get("/plaintext")
    ok = c.pump(lambda: sid in c.ended)
    check(ok, "stream %d did not end" % sid)
    eq((c.status[sid], c.data.get(sid)), (200, b"Hello, World!"), "stream 3's answer")
    eq(c.terminated, None, "GOAWAY")
    c.sock.close()


def test_an_upgraded_head_request_has_no_body():
    s = server()
    c = Upgraded(s.port, method="HEAD", path="/big?n=5000")
    check(c.head.startswith("HTTP/1.1 101 "), "head %r", c.head)
    ok = c.pump(lambda: 1 in c.ended)
    check(ok, "stream 1 did not end")
    eq((c.status[1], c.data.get(1), c.fields[1].get("content-length")), (200, None, "5000"),
       "HEAD over the upgrade")
    c.sock.close()


def test_curl_http2_upgrades_a_get_and_serves_a_post_over_http11():
    s = server()
    url = "http://%s:%d" % (HOST, s.port)
    eq(curl("--http2", url + "/plaintext"), (200, "2", "Hello, World!"), "curl --http2 GET")
    eq(curl("--http2", "-I", url + "/big?n=10")[:2], (200, "2"), "curl --http2 HEAD")
    # a body: served over HTTP/1.1, the Upgrade ignored
    code, version, body = curl("--http2", "--data-binary", "hello", "-H",
                               "Content-Type: application/octet-stream", url + "/echo")
    eq((code, version, body), (200, "1.1", "hello"), "curl --http2 POST")


def test_requests_missing_part_of_the_handshake_are_served_over_http11():
    s = server()
    good = base64.urlsafe_b64encode(b"\x00\x03\x00\x00\x00\x64").rstrip(b"=")
    cases = [
        ("no HTTP2-Settings", b"Connection: Upgrade\r\nUpgrade: h2c\r\n"),
        ("HTTP2-Settings not in Connection",
         b"Connection: Upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: " + good + b"\r\n"),
        ("two HTTP2-Settings", b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
         b"HTTP2-Settings: " + good + b"\r\nHTTP2-Settings: " + good + b"\r\n"),
        ("HTTP2-Settings not base64url", b"Connection: Upgrade, HTTP2-Settings\r\n"
         b"Upgrade: h2c\r\nHTTP2-Settings: a+b/\r\n"),
        ("HTTP2-Settings not whole settings", b"Connection: Upgrade, HTTP2-Settings\r\n"
         b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAA\r\n"),
        ("Upgrade: h2", b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2\r\n"
         b"HTTP2-Settings: " + good + b"\r\n"),
        ("a body", b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
         b"HTTP2-Settings: " + good + b"\r\nContent-Length: 2\r\n\r\nhi"),
    ]
    for what, fields in cases:
        c = socket.create_connection((HOST, s.port), timeout=5)
        method = b"POST /echo" if what == "a body" else b"GET /plaintext"
        c.sendall(method + b" HTTP/1.1\r\nHost: localhost\r\n" + fields +
                  (b"" if what == "a body" else b"\r\n"))
        head, rest = read_head(c)
        check(head.startswith("HTTP/1.1 200 "), "%s: %r", what, head)
        c.close()
    # an absolute-form target has no :path to become: HTTP/1.1
    c = socket.create_connection((HOST, s.port), timeout=5)
    c.sendall(b"GET http://localhost/plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: "
              b"Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: " + good + b"\r\n\r\n")
    head, _ = read_head(c)
    check(head.startswith("HTTP/1.1 200 "), "absolute-form: %r", head)
    c.close()
    # Upgrade lists h2c among others: taken
    c = socket.create_connection((HOST, s.port), timeout=5)
    c.sendall(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: HTTP2-Settings, "
              b"Upgrade\r\nUpgrade: foo/2, h2c\r\nHTTP2-Settings: " + good + b"\r\n\r\n")
    head, _ = read_head(c)
    check(head.startswith("HTTP/1.1 101 "), "h2c in a list: %r", head)
    c.close()


def test_a_bad_settings_payload_after_the_101_is_a_goaway():
    """HTTP2-Settings that decodes to whole settings whose value is out of
    range (ENABLE_PUSH 2): nghttp2 refuses it once the 101 is out, so the
    connection ends with GOAWAY PROTOCOL_ERROR."""
    s = server()
    c = socket.create_connection((HOST, s.port), timeout=5)
    bad = base64.urlsafe_b64encode(b"\x00\x02\x00\x00\x00\x02").rstrip(b"=")
    c.sendall(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, "
              b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: " + bad + b"\r\n\r\n")
    head, rest = read_head(c)
    check(head.startswith("HTTP/1.1 101 "), "head %r", head)
    c.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    data = rest
    c.settimeout(5)
    try:
        while True:
            got = c.recv(65536)
            if not got:
                break
            data += got
    except (socket.timeout, ConnectionResetError):
        pass
    codes, i = [], 0
    while i + 9 <= len(data):
        n = int.from_bytes(data[i:i + 3], "big")
        if data[i + 3] == 0x7:
            codes.append(int.from_bytes(data[i + 13:i + 17], "big"))
        i += 9 + n
    eq(codes, [1], "GOAWAY codes")
    c.close()


def test_tls_and_no_h2_servers_ignore_the_upgrade():
    with tempfile.TemporaryDirectory() as d:
        subprocess.run(["bash", os.path.join(ROOT, "tests", "make_certs.sh"), d], check=True,
                       capture_output=True)
        with Server(TLS_CERT=os.path.join(d, "server.pem"),
                    TLS_KEY=os.path.join(d, "server.key")) as s:
            ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
            ctx.set_alpn_protocols(["http/1.1"])
            c = ctx.wrap_socket(socket.create_connection((HOST, s.port), timeout=5),
                                server_hostname="localhost")
            c.sendall(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, "
                      b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABk\r\n\r\n")
            head, _ = read_head(c)
            check(head.startswith("HTTP/1.1 200 "), "over TLS: %r", head)
            c.close()
    with Server(NO_H2=1) as s:
        eq(curl("--http2", "http://%s:%d/plaintext" % (HOST, s.port)), (200, "1.1",
                                                                        "Hello, World!"),
           "curl --http2 against no_h2")


if __name__ == "__main__":
    run(globals())
