"""weave's gRPC client (src/grpc/client.c) against a grpcio server.

grpc_client_peer (tests/integration/grpc_client_peer.c) calls the Echo
service of tests/integration/grpc_echo/client.proto, which this script serves with
Debian's python3-grpcio (the module made by grpc_tools.protoc at test time),
and prints what it saw; the server records what it saw, and both are
checked:

- unary: the reply, metadata both ways (ASCII and -bin, headers and
  trailers), wv_grpc_unary;
- server, client and bidirectional streaming (a real ping-pong: each reply
  read before the next request is sent);
- a status with a non-ASCII message; the deadline (timeout_ms and the
  fiber's own): DEADLINE_EXCEEDED on time, the server saw grpc-timeout and
  the cancel; a cancelled fiber and wv_grpc_cancel: the server sees the
  call cancelled;
- messages near and over 4 MiB both ways (RESOURCE_EXHAUSTED past the
  limits), gzip both ways;
- 150 concurrent calls from as many fibers, on one connection (the server
  sees one peer address);
- the server killed mid-call: the calls in flight fail UNAVAILABLE, a call
  while it is down too, and a call after it is back succeeds (reconnect);
- a graceful stop of the server (GOAWAY): the calls in flight finish;
- TLS with a self-signed certificate made with openssl (ca_file), h2 by
  ALPN.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("BUILD_DIR", "build/release")
PEER = os.path.join(BUILD_DIR, "grpc_client_peer")
PROTO_DIR = os.path.join(ROOT, "tests", "integration", "grpc_echo")

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))
    sys.stdout.flush()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def generate(out_dir):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_DIR,
                    "--python_out=" + out_dir, "--grpc_python_out=" + out_dir,
                    os.path.join(PROTO_DIR, "client.proto")], check=True)
    sys.path.insert(0, out_dir)


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.peers = {}      # text -> context.peer()
        self.remaining = {}  # text -> context.time_remaining()
        self.metadata = {}   # text -> invocation metadata
        self.cancelled = set()


def make_servicer(state):
    import grpc
    import client_pb2 as pb2
    import client_pb2_grpc as pb2_grpc

    class Echo(pb2_grpc.EchoServicer):
        def Unary(self, request, context):
            md = context.invocation_metadata()
            with state.lock:
                state.peers[request.text] = context.peer()
                state.remaining[request.text] = context.time_remaining()
                state.metadata.setdefault(request.text, md)
            if request.sleep_ms:
                end = time.time() + request.sleep_ms / 1000
                while time.time() < end:
                    if not context.is_active():
                        with state.lock:
                            state.cancelled.add(request.text)
                        return pb2.EchoReply()
                    time.sleep(0.01)
            if request.code:
                code = [c for c in grpc.StatusCode if c.value[0] == request.code][0]
                context.abort(code, request.text)
            echo = [(k, v) for k, v in md if k.startswith("x-")]
            if echo:
                context.send_initial_metadata(echo)
                context.set_trailing_metadata([("t-" + k[2:], v) for k, v in echo])
            blob = request.blob
            if request.text == "bigreply":
                blob = b"r" * (5 << 20)
            return pb2.EchoReply(text=request.text, blob=blob, peer=context.peer())

        def ServerStream(self, request, context):
            for i in range(request.count):
                yield pb2.EchoReply(text="%s%d" % (request.text, i), index=i)

        def ClientStream(self, request_iterator, context):
            return pb2.EchoReply(text="".join(r.text for r in request_iterator))

        def Bidi(self, request_iterator, context):
            for r in request_iterator:
                yield pb2.EchoReply(text=r.text.replace("ping", "pong"))

    return Echo()


def start_server(port, state, compression=None, tls=None):
    import grpc
    import client_pb2_grpc as pb2_grpc
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=256),
                         compression=compression)
    pb2_grpc.add_EchoServicer_to_server(make_servicer(state), server)
    if tls:
        key, cert = tls
        creds = grpc.ssl_server_credentials([(open(key, "rb").read(), open(cert, "rb").read())])
        server.add_secure_port("127.0.0.1:%d" % port, creds)
    else:
        server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    return server


def peer(target, scenario, *args, timeout=60, may_fail=False):
    p = subprocess.run([PEER, target, scenario] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    if (p.returncode != 0 and not may_fail) or "done" not in out.splitlines():
        raise AssertionError("peer %s exit %d: %s %s" % (scenario, p.returncode, out,
                                                          p.stderr.decode()[-2000:]))
    if "ERROR: AddressSanitizer" in p.stderr.decode() or "runtime error" in p.stderr.decode():
        raise AssertionError("sanitizer: " + p.stderr.decode()[-3000:])
    return out.splitlines()


def line(lines, prefix):
    for ln in lines:
        if ln.startswith(prefix):
            return ln
    return None


def test_unary(url, state):
    out = peer(url, "unary", "hi weave")
    check("unary: reply", "reply hi weave" in out, out)
    check("unary: header x-text", "header x-text hello there" in out, out)
    check("unary: -bin header", "header x-data-bin 000102feff0a78" in out, out)
    check("unary: trailer t-text", "trailer t-text hello there" in out, out)
    check("unary: -bin trailer", "trailer t-data-bin 000102feff0a78" in out, out)
    check("unary: end OK", "end 0 0" in out, out)
    check("unary: wv_grpc_unary", "unary hi weave" in out, out)
    md = dict(state.metadata.get("hi weave", ()))
    check("unary: server got metadata", md.get("x-text") == "hello there" and
          md.get("x-data-bin") == b"\x00\x01\x02\xfe\xff\nx", repr(md))
    check("unary: user-agent", "weave-grpc/" in md.get("user-agent", ""), repr(md))
    rem = state.remaining.get("hi weave")
    check("unary: no deadline, no grpc-timeout", rem is None or rem > 1e6, repr(rem))


def test_status(url):
    msg = "d\u00e9j\u00e0 vu \u2713 100%"
    out = peer(url, "status", 5, msg)
    check("status: NOT_FOUND", "rc -2 code 5" in out, out)
    want = "Echo/Unary: NOT_FOUND: " + msg
    check("status: errmsg", ("errmsg echo." + want) in out, out)
    check("status: message percent-decoded",
          ("message " + msg.encode().hex()) in out, out)
    check("status: recv returns it", "recv 5" in out and "endcode 5" in out, out)


def test_deadline(url, state):
    out = peer(url, "deadline", 500, 5000)
    ln = line(out, "rc ")
    ms = int(ln.split()[-1]) if ln else -1
    check("deadline: DEADLINE_EXCEEDED", ln is not None and ln.startswith("rc -110 code 4"), out)
    check("deadline: on time", 400 <= ms < 1500, ln)
    check("deadline: fiber deadline too", "fiber rc -110 code 4" in out, out)
    rem = state.remaining.get("slow")
    check("deadline: server saw grpc-timeout", rem is not None and 0.2 < rem <= 0.5, repr(rem))
    time.sleep(0.3)
    check("deadline: server saw the cancel", "slow" in state.cancelled, repr(state.cancelled))


def test_cancel(url, state):
    out = peer(url, "cancel")
    check("cancel: fiber cancelled", "call cancel-fiber rc -125 code 1" in out, out)
    check("cancel: wv_grpc_cancel", "recv after cancel -125 code 1" in out and
          "end after cancel code 1" in out, out)
    time.sleep(0.3)
    check("cancel: server saw both", {"cancel-fiber", "cancel-call"} <= state.cancelled,
          repr(state.cancelled))


def test_streams(url):
    out = peer(url, "server_stream", 500)
    check("server streaming", "stream got 500 in_order 1 recv 0" in out and "end 0" in out, out)
    out = peer(url, "client_stream", 300)
    joined = "".join("%d," % i for i in range(300))
    check("client streaming", ("joined " + joined) in out and "end 0" in out, out[:3])
    out = peer(url, "bidi", 50)
    check("bidi ping-pong", "pingpong 50 of 50 recv end 0" in out and "end 0" in out, out)


def test_big(url, gzip=False):
    args = ["--gzip"] if gzip else []
    tag = "gzip " if gzip else ""
    out = peer(url, "big", (4 << 20) - 64, *args)
    check(tag + "big: just under 4 MiB both ways",
          "rc 0 code 0" in out and "echoed %d same 1" % ((4 << 20) - 64) in out, out)
    out = peer(url, "big", (4 << 20) + 16, *args)
    check(tag + "big: over 4 MiB refused by the server: RESOURCE_EXHAUSTED",
          line(out, "rc ") and line(out, "rc ").endswith("code 8"), out)
    out = peer(url, "big", 16, "bigreply", *args)
    check(tag + "big: a 5 MiB reply over the client's max_recv: RESOURCE_EXHAUSTED",
          line(out, "rc ") and line(out, "rc ").endswith("code 8"), out)


def test_gzip(url):
    out = peer(url, "unary", "gz " * 1000, "--gzip")
    check("gzip: both ways", ("reply " + "gz " * 1000) in out, out[:1])
    check("gzip: the server answered gzip", "encoding gzip" in out, out)
    test_big(url, gzip=True)


def test_concurrent(url, state):
    out = peer(url, "concurrent", 150)
    check("concurrent: 150 calls", "concurrent ok 150 of 150 other_peers 0" in out, out)
    peers = {v for k, v in state.peers.items() if k.startswith("c") and k[1:].isdigit()}
    check("concurrent: one connection", len(peers) == 1, repr(peers))


def serve_child(port):
    """--serve PORT: a server in a process of its own, to kill."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        server = start_server(port, State())
        stopped = threading.Event()

        def on_term(sig, frame):  # a graceful stop: GOAWAY, calls in flight finish
            server.stop(grace=5).wait()
            stopped.set()

        signal.signal(signal.SIGTERM, on_term)
        print("ready", flush=True)
        while not stopped.is_set():
            time.sleep(0.05)


def spawn_server(port):
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", str(port)],
                         stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"ready"
    return p


def test_killed():
    port = free_port()
    srv = spawn_server(port)
    p = subprocess.Popen([PEER, "http://127.0.0.1:%d" % port, "killed"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    try:
        for raw in p.stdout:
            ln = raw.decode().rstrip("\n")
            lines.append(ln)
            if ln == "in flight":
                srv.send_signal(signal.SIGKILL)
                srv.wait()
            if ln.startswith("errmsg") and srv.poll() is not None and "after restart" not in \
                    " ".join(lines):
                time.sleep(0.3)
                srv = spawn_server(port)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        srv.kill()
        srv.wait()
    calls = [ln for ln in lines if ln.startswith("call k")]
    check("killed: the calls in flight fail UNAVAILABLE",
          len(calls) == 3 and all(ln.endswith("code 14") for ln in calls), lines)
    check("killed: a call while down fails UNAVAILABLE", "while down code 14" in lines, lines)
    check("killed: a call after the restart reconnects",
          "after restart rc 0" in lines and "reply back" in lines, lines)


def test_goaway():
    port = free_port()
    srv = spawn_server(port)
    p = subprocess.Popen([PEER, "http://127.0.0.1:%d" % port, "goaway"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    try:
        for raw in p.stdout:
            ln = raw.decode().rstrip("\n")
            lines.append(ln)
            if ln == "in flight":
                srv.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
        srv.kill()
        srv.wait()
    check("goaway: calls in flight at a graceful stop finish",
          "drained g0 rc 0" in lines and "drained g1 rc 0" in lines, lines)


class RawServer:
    """An HTTP/2 server written frame by frame with Python's h2, for what a
    grpcio server will not do on purpose. mode "refuse-first": the first
    stream is refused (RST_STREAM REFUSED_STREAM), later ones are served;
    "goaway-first": the first connection answers the first request's
    HEADERS with GOAWAY(last_stream_id 0), later ones serve; "refuse-all":
    every stream on every connection is refused. Serving is Unary's echo."""

    def __init__(self, port, mode):
        import socket
        self.mode, self.connections, self.streams = mode, 0, 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.serve, args=(conn, self.connections),
                             daemon=True).start()

    def serve(self, sock, nth):
        import h2.config
        import h2.connection
        import h2.errors
        import h2.events
        import client_pb2 as pb2
        h2c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        h2c.initiate_connection()
        sock.sendall(h2c.data_to_send())
        bodies = {}
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                for ev in h2c.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        self.streams += 1
                        if self.mode == "goaway-first" and nth == 1:
                            h2c.close_connection(last_stream_id=0)
                            sock.sendall(h2c.data_to_send())
                            return
                        if self.mode == "refuse-all" or (self.mode == "refuse-first" and
                                                         self.streams == 1):
                            h2c.reset_stream(ev.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                        else:
                            bodies[ev.stream_id] = b""
                    elif isinstance(ev, h2.events.DataReceived):
                        h2c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                        if ev.stream_id in bodies:
                            bodies[ev.stream_id] += ev.data
                    elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id in bodies:
                        body = bodies.pop(ev.stream_id)
                        req = pb2.EchoRequest.FromString(body[5:])
                        reply = pb2.EchoReply(text=req.text).SerializeToString()
                        h2c.send_headers(ev.stream_id, [(":status", "200"),
                                                        ("content-type", "application/grpc")])
                        h2c.send_data(ev.stream_id, b"\0" + struct.pack(">I", len(reply)) + reply)
                        h2c.send_headers(ev.stream_id, [("grpc-status", "0")], end_stream=True)
                sock.sendall(h2c.data_to_send())
        except OSError:
            return
        finally:
            sock.close()

    def close(self):
        self.sock.close()


def test_refused_streams_retried_once(tmp):
    """A stream the server refused (RST_STREAM REFUSED_STREAM, or above a
    GOAWAY's last stream) never reached it: the client sends it again, once
    (after a GOAWAY on a new connection); refused twice, the call fails
    UNAVAILABLE."""
    generate(tmp)
    for mode, want in (("refuse-first", "once rc 0 code 0 reply again"),
                       ("goaway-first", "once rc 0 code 0 reply again"),
                       ("refuse-all", "once rc -11 code 14")):
        port = free_port()
        srv = RawServer(port, mode)
        try:
            out = peer("http://127.0.0.1:%d" % port, "once", "again")
        finally:
            srv.close()
        got = line(out, "once ")
        check("refused (%s): %s" % (mode, want), got is not None and got.startswith(want), out)
        check("refused (%s): the server saw two streams" % mode, srv.streams == 2,
              (srv.streams, srv.connections))
        if mode == "goaway-first":
            check("refused (goaway-first): the retry on a new connection", srv.connections == 2,
                  srv.connections)


def make_cert(tmp):
    key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return key, cert


def test_tls(tmp):
    key, cert = make_cert(tmp)
    state = State()
    port = free_port()
    server = start_server(port, state, tls=(key, cert))
    try:
        out = peer("https://127.0.0.1:%d" % port, "unary", "over tls", "--ca", cert)
        check("tls: unary with ca_file", "reply over tls" in out and "end 0 0" in out, out)
        out = peer("https://127.0.0.1:%d" % port, "status", 5, "x", may_fail=True)
        check("tls: without the CA: UNAVAILABLE", "rc -11 code 14" in out and
          "certificate verify failed" in line(out, "errmsg"), out)
    finally:
        server.stop(0)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve_child(int(sys.argv[2]))
        return 0
    if not os.path.exists(PEER):
        print("FAIL %s is not built" % PEER)
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        import grpc
        state, gz_state = State(), State()
        port, gz_port = free_port(), free_port()
        server = start_server(port, state)
        gz_server = start_server(gz_port, gz_state, compression=grpc.Compression.Gzip)
        url = "http://127.0.0.1:%d" % port
        tests = [(test_unary, (url, state)), (test_status, (url,)),
                 (test_deadline, (url, state)), (test_cancel, (url, state)),
                 (test_streams, (url,)), (test_big, ("127.0.0.1:%d" % port,)),
                 (test_gzip, ("http://127.0.0.1:%d" % gz_port,)),
                 (test_concurrent, (url, state)), (test_killed, ()), (test_goaway, ()),
                 (test_refused_streams_retried_once, (tmp,)), (test_tls, (tmp,))]
        only = os.environ.get("GRPC_CLIENT_TESTS")
        for test, args in tests:
            if only and test.__name__ not in only.split(","):
                continue
            try:
                test(*args)
            except Exception as e:  # one broken step is one failure, the rest still run
                check(test.__name__, False, repr(e))
        server.stop(0)
        gz_server.stop(0)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
