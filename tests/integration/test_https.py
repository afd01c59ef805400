"""HTTPS: the same handlers over TLS, checked with curl and Python's ssl
against certificates made for the run (tests/make_certs.sh: a test CA, two
server certificates for localhost). TLS 1.3 and 1.2 served and older
refused, ALPN h2 (when offered) or http/1.1, session resumption, keep-alive and large bodies
through TLS, a client that stalls mid-handshake cut at the head timeout,
plain HTTP on the TLS port refused; and the app's HTTPS options: the
redirect listener, the certificate reloaded on SIGHUP (an open connection
kept with its old certificate, a new one given the new), a bad reload
keeping the old certificate; and the WebSocket echo over wss:// with
Python's websockets."""
import asyncio
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import Server  # noqa: E402

BUILD = os.environ.get("BUILD_DIR", "build/release")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
passed = failed = 0
CERTS = tempfile.mkdtemp(prefix="weave-https-")


def case(fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print("PASS", fn.__name__)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed += 1
        print("FAIL", fn.__name__, repr(e))


def cert(name):
    return os.path.join(CERTS, name)


def client_ctx(**kw):
    ctx = ssl.create_default_context(cafile=cert("ca.pem"))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def tls_conn(port, ctx=None, session=None, alpn=None):
    ctx = ctx or client_ctx()
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost", session=session)


def request(sock, path="/plaintext", keep=True):
    sock.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n" %
                  (path, "" if keep else "Connection: close\r\n")).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?i)content-length: (\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(body) < n:
        chunk = sock.recv(65536)
        assert chunk, (head, len(body))
        body += chunk
    return int(head.split(b" ")[1]), head, body


def fingerprint(sock):
    return hashlib.sha256(sock.getpeercert(binary_form=True)).hexdigest()


def file_fingerprint(pem):
    der = ssl.PEM_cert_to_DER_cert(open(pem).read())
    return hashlib.sha256(der).hexdigest()


def tls_server(**env):
    return Server(TLS_CERT=cert("server.pem"), TLS_KEY=cert("server.key"), **env)


# ------------------------------------------------------- the HTTP server


def curl_with_the_test_ca():
    with tls_server() as s:
        r = subprocess.run(["curl", "-sS", "--cacert", cert("ca.pem"), "-w",
                            " %{http_code} %{http_version} %{ssl_verify_result}",
                            "https://localhost:%d/plaintext" % s.port],
                           capture_output=True, text=True, timeout=20)
        assert r.stdout == "Hello, World! 200 2 0", (r.stdout, r.stderr)  # h2 by ALPN
        # without the CA, curl refuses the certificate
        r = subprocess.run(["curl", "-sS", "https://localhost:%d/plaintext" % s.port],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 60, (r.returncode, r.stderr)


def tls_13_and_12_served_and_older_refused():
    with tls_server() as s:
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            ctx = client_ctx(minimum_version=version, maximum_version=version)
            with tls_conn(s.port, ctx) as c:
                assert c.version() == {ssl.TLSVersion.TLSv1_3: "TLSv1.3",
                                       ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version], c.version()
                assert request(c)[2] == b"Hello, World!"
        ctx = client_ctx()
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        try:
            tls_conn(s.port, ctx).close()
            raise AssertionError("a TLS 1.1 handshake succeeded")
        except (ssl.SSLError, ConnectionResetError):
            pass


def alpn_chooses_h2_when_offered_else_http_1_1():
    with tls_server() as s:
        with tls_conn(s.port, alpn=["h2", "http/1.1"]) as c:
            assert c.selected_alpn_protocol() == "h2", c.selected_alpn_protocol()
        with tls_conn(s.port, alpn=["http/1.1"]) as c:
            assert c.selected_alpn_protocol() == "http/1.1", c.selected_alpn_protocol()
            assert request(c)[0] == 200


def sessions_resume():
    with tls_server() as s:
        ctx = client_ctx()
        with tls_conn(s.port, ctx) as c:
            request(c)  # TLS 1.3 tickets come after the handshake
            session = c.session
            assert not c.session_reused
        with tls_conn(s.port, ctx, session=session) as c:
            assert c.session_reused, "the second connection did a full handshake"
            assert request(c)[2] == b"Hello, World!"


def no_resumption_when_turned_off():
    with tls_server(TLS_RESUMPTION="0") as s:
        ctx = client_ctx()
        with tls_conn(s.port, ctx) as c:
            request(c)
            session = c.session
        with tls_conn(s.port, ctx, session=session) as c:
            assert not c.session_reused, "resumed although resumption is off"
            assert request(c)[2] == b"Hello, World!"


def keep_alive_and_big_bodies_through_tls():
    static = tempfile.mkdtemp(prefix="weave-https-static-")
    try:
        blob = os.urandom(300000)
        open(os.path.join(static, "blob.bin"), "wb").write(blob)
        with tls_server(STATIC_DIR=static) as s, tls_conn(s.port) as c:
            for _ in range(3):
                assert request(c)[2] == b"Hello, World!"
            st, _, body = request(c, "/static/blob.bin")  # sendfile, through TLS
            assert st == 200 and body == blob, (st, len(body))
            st, _, body = request(c, "/big")
            assert st == 200 and len(body) > 100000, (st, len(body))
            assert request(c)[2] == b"Hello, World!"
    finally:
        shutil.rmtree(static, ignore_errors=True)


def stalled_handshake_is_cut_at_the_head_timeout():
    with tls_server(HEADER_TIMEOUT_MS=300) as s:
        for hello in (b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):  # half a ClientHello
            raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            raw.sendall(hello)
            t0 = time.monotonic()
            got = raw.recv(100)
            elapsed = time.monotonic() - t0
            raw.close()
            assert got == b"" and 0.25 <= elapsed <= 2, (got, elapsed)
        with tls_conn(s.port) as c:  # and it still serves
            assert request(c)[0] == 200


def plain_http_on_the_tls_port_is_refused_and_serving_goes_on():
    with tls_server() as s:
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        raw.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        try:
            while True:
                chunk = raw.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        raw.close()
        assert b"Hello" not in data, data
        with tls_conn(s.port) as c:
            assert request(c)[2] == b"Hello, World!"


# ------------------------------------------------------------- the app


class App:
    def __init__(self, *args, binary="app_test_server", **env):
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, binary), "--port", "0"] + list(args),
            env=dict(os.environ, SHARDS="2", **env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.banner = ""
        while True:
            line = self.proc.stdout.readline()
            assert line, self.proc.stderr.read()
            self.banner += line
            m = re.match(r"listening on (https?)://127\.0\.0\.1:(\d+)", line)
            if m:
                self.scheme, self.port = m.group(1), int(m.group(2))
                break

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=15)
        err = self.proc.stderr.read()
        assert rc == 0, (rc, err)
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert bad not in err, err
        return err


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def app_serves_https_and_redirects_plain_http():
    rport = free_port()
    app = App("--tls-cert", cert("server.pem"), "--tls-key", cert("server.key"),
              "--http-redirect-port", str(rport))
    try:
        assert app.scheme == "https", app.banner
        assert "open      https://localhost:%d/" % app.port in app.banner, app.banner
        with tls_conn(app.port) as c:
            st, _, body = request(c, "/hello")
            assert (st, body) == (200, b"hello"), (st, body)
        raw = socket.create_connection(("127.0.0.1", rport), timeout=5)
        raw.sendall(b"POST /hello?x=1 HTTP/1.1\r\nHost: localhost:%d\r\nContent-Length: 0\r\n\r\n"
                    % rport)
        st, head, _ = request_head(raw)
        raw.close()
        assert st == 308, head
        assert b"\r\nLocation: https://localhost:%d/hello?x=1\r\n" % app.port in head, head
    finally:
        app.stop()
    # half the pair is not enough
    r = subprocess.run([os.path.join(BUILD, "app_test_server"), "--tls-cert", cert("server.pem")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--tls-key" in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([os.path.join(BUILD, "app_test_server"), "--tls-cert", "/nonexistent.pem",
                        "--tls-key", cert("server.key")], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1 and "/nonexistent.pem" in r.stderr, (r.returncode, r.stderr)


def request_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0]
    return int(head.split(b" ")[1]), head + b"\r\n", data


def sighup_reloads_the_certificate_and_keeps_open_connections():
    live = tempfile.mkdtemp(prefix="weave-live-")
    try:
        c_path, k_path = os.path.join(live, "cert.pem"), os.path.join(live, "key.pem")
        shutil.copy(cert("server.pem"), c_path)
        shutil.copy(cert("server.key"), k_path)
        old, new = file_fingerprint(cert("server.pem")), file_fingerprint(cert("server2.pem"))
        app = App("--tls-cert", c_path, "--tls-key", k_path)
        try:
            kept = tls_conn(app.port)
            assert fingerprint(kept) == old
            assert request(kept, "/hello")[2] == b"hello"
            shutil.copy(cert("server2.pem"), c_path)
            shutil.copy(cert("server2.key"), k_path)
            app.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while True:
                with tls_conn(app.port) as c:
                    if fingerprint(c) == new:
                        assert request(c, "/hello")[2] == b"hello"
                        break
                assert time.monotonic() < deadline, "SIGHUP did not load the new certificate"
                time.sleep(0.05)
            # the connection made before the reload was not dropped
            assert request(kept, "/hello")[2] == b"hello"
            assert fingerprint(kept) == old
            kept.close()
            # a reload from files that do not load keeps the certificate
            open(c_path, "w").write("not a certificate")
            app.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            with tls_conn(app.port) as c:
                assert fingerprint(c) == new
        finally:
            err = app.stop()
        assert "TLS certificate reloaded" in err, err
        assert "TLS certificate not reloaded (the old one stays)" in err, err
    finally:
        shutil.rmtree(live, ignore_errors=True)


def websocket_echo_over_wss():
    import websockets  # Debian's python3-websockets

    web = tempfile.mkdtemp(prefix="weave-web-")
    open(os.path.join(web, "index.html"), "w").write("x")
    app = App("--tls-cert", cert("server.pem"), "--tls-key", cert("server.key"),
              "--web-dir", web, "--database-url", "sqlite::memory:", binary="chapter13")
    try:
        async def talk():
            async with websockets.connect("wss://localhost:%d/ws/echo" % app.port,
                                          ssl=client_ctx()) as ws:
                got = []
                for text in ("hello", "x" * 70000, "ünïcode"):
                    await ws.send(text)
                    got.append(await ws.recv())
                await ws.send(b"\x00\x01binary")
                got.append(await ws.recv())
                return got

        got = asyncio.run(asyncio.wait_for(talk(), 20))
        assert got == ["hello", "x" * 70000, "ünïcode", b"\x00\x01binary"], [g[:20] for g in got]
    finally:
        app.stop()
        shutil.rmtree(web, ignore_errors=True)


def main():
    r = subprocess.run(["bash", os.path.join(ROOT, "tests", "make_certs.sh"), CERTS])
    if r.returncode != 0:
        print("FAIL make_certs.sh")
        return 1
    try:
        for fn in (curl_with_the_test_ca, tls_13_and_12_served_and_older_refused,
                   alpn_chooses_h2_when_offered_else_http_1_1, sessions_resume, no_resumption_when_turned_off,
                   keep_alive_and_big_bodies_through_tls,
                   stalled_handshake_is_cut_at_the_head_timeout,
                   plain_http_on_the_tls_port_is_refused_and_serving_goes_on,
                   app_serves_https_and_redirects_plain_http,
                   sighup_reloads_the_certificate_and_keeps_open_connections,
                   websocket_echo_over_wss):
            case(fn)
    finally:
        shutil.rmtree(CERTS, ignore_errors=True)
    print("test_https: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
