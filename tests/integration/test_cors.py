"""CORS middleware (wv_cors) on the HTTP test server: allowed origins get the
allow headers on simple requests and answered preflights, other origins get
none and a 403 preflight, and requests without Origin are untouched."""
import http.client
import os
import subprocess
import sys

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "http_test_server")


def start():
    proc = subprocess.Popen([BIN], env=dict(os.environ, PORT="0", WEAVE_SHARDS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    return proc, int(line.split()[-1])


def request(port, method, path, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request(method, path, headers=headers)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def main():
    proc, port = start()
    try:
        # preflight from an allowed origin: answered here, with what was asked
        st, h, body = request(port, "OPTIONS", "/echo", {
            "Origin": "http://allowed.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-custom"})
        assert st == 204, st
        assert h["access-control-allow-origin"] == "http://allowed.example", h
        assert h["access-control-allow-credentials"] == "true", h
        assert "POST" in h["access-control-allow-methods"], h
        assert h["access-control-allow-headers"] == "content-type, x-custom", h
        assert h["access-control-max-age"] == "600", h
        assert "Origin" in h.get("vary", ""), h
        assert body == b""

        # preflight from another origin: refused, without allow headers
        st, h, _ = request(port, "OPTIONS", "/echo", {
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
        assert st == 403, st
        assert "access-control-allow-origin" not in h, h

        # simple request from an allowed origin (the chapter's dev server)
        st, h, body = request(port, "GET", "/plaintext", {"Origin": "http://localhost:8000"})
        assert st == 200 and body == b"Hello, World!", (st, body)
        assert h["access-control-allow-origin"] == "http://localhost:8000", h
        assert h["access-control-expose-headers"] == "X-Stamp", h

        # simple request from another origin: served, but no CORS headers
        st, h, _ = request(port, "GET", "/plaintext", {"Origin": "http://evil.example"})
        assert st == 200 and "access-control-allow-origin" not in h, h

        # no Origin: no CORS headers at all; a 404 still passes the middleware
        st, h, _ = request(port, "GET", "/plaintext", {})
        assert "access-control-allow-origin" not in h, h
        st, h, _ = request(port, "GET", "/nowhere", {"Origin": "http://localhost:8000"})
        assert st == 404 and h["access-control-allow-origin"] == "http://localhost:8000", h

        # a plain OPTIONS (no preflight) is the automatic Allow answer
        st, h, _ = request(port, "OPTIONS", "/plaintext", {"Origin": "http://localhost:8000"})
        assert st == 204 and h["allow"] == "GET, HEAD, OPTIONS", h
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        err = proc.stderr.read()
    assert proc.returncode == 0, (proc.returncode, err)
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in err, err
    print("test_cors: ok")


if __name__ == "__main__":
    sys.exit(main())
