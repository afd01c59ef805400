"""The chapter's service (examples/chapter13, what `make run` starts): every
route over real HTTP with its status, headers and JSON body; the page at /;
/healthz and /readyz; CORS for the chapter's dev-server origin; bad options
refused with a message naming them; and SIGTERM with requests in flight: all
of them complete, then the process exits 0. GET /proxy/data (13.6.1's
caller) against the service itself and against a second instance as its
downstream: what it answers, its status passed on, 502 when it cannot be
reached, and a caller's 300 ms deadline cutting both services short (504,
the request id the same in both)."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "chapter13")


def start(web, delay_ms, shards="2", args=(), env=None):
    proc = subprocess.Popen([BIN, "--port", "0", "--web-dir", web] + list(args),
                            env=dict(os.environ, ASYNC_DELAY_MS=str(delay_ms), SHARDS=shards,
                                     **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(20):
        line = proc.stdout.readline()
        if line.startswith("listening on http://127.0.0.1:"):
            return proc, int(line.rsplit(":", 1)[1])
        assert line, "no banner; stderr: " + proc.stderr.read()
    raise AssertionError("no 'listening on' line")


def stop(proc):
    """SIGTERM, exit 0, and stderr free of sanitizer reports; stderr returned."""
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert rc == 0, (rc, err)
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in err, err
    return err


class Service:
    """The service on a free port for one test: a fresh directory for its
    files (self.files), an in-memory database, no bucket unless env names
    one; stopped on leaving (exit 0, no sanitizer report), killed when the
    test failed."""

    def __init__(self, env=None, args=()):
        self.dir = tempfile.mkdtemp(prefix="weave-c13-")
        self.files = os.path.join(self.dir, "files")
        clean = {k: "" for k in ("S3_BUCKET", "S3_ENDPOINT")}
        clean.update(env or {})
        self.proc, self.port = start(self.dir, 0, args=("--database-url", "sqlite::memory:",
                                                        "--files-dir", self.files) + tuple(args),
                                     env=clean)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                stop(self.proc)
            elif self.proc.poll() is None:
                self.proc.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def req(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def check_routes(port):
    t0 = time.monotonic()
    st, h, body = req(port, "GET", "/async-endpoint")
    took = time.monotonic() - t0
    assert st == 200 and h["content-type"] == "application/json", (st, h)
    assert json.loads(body) == {"message": "Asynchronous Response"}, body
    assert took >= 0.2, "the 300 ms delay did not happen (%.3f s)" % took
    assert "server" in h and "date" in h

    st, _, body = req(port, "GET", "/async-view/")
    assert st == 200 and json.loads(body) == {"message": "Asynchronous Response"}
    st, _, _ = req(port, "GET", "/async-view")  # Django keeps its trailing slash
    assert st == 404, st
    st, _, body = req(port, "GET", "/hello")
    assert st == 200 and json.loads(body) == {"message": "Hello, Prometheus!"}
    st, _, body = req(port, "GET", "/data")
    doc = json.loads(body)
    assert st == 200 and doc["service"] == "data" and [i["id"] for i in doc["items"]] == [1, 2, 3]
    # 13.6.1's caller: by default the service's own /data, over HTTP
    st, h, body = req(port, "GET", "/proxy/data", headers={"X-Request-Id": "proxy-own-1"})
    assert st == 200 and json.loads(body) == doc, (st, body)
    assert h["content-type"] == "application/json" and h["x-request-id"] == "proxy-own-1", h

    st, h, body = req(port, "POST", "/echo", body=b'{"x": 1}',
                      headers={"Content-Type": "application/json"})
    assert st == 200 and body == b'{"x": 1}' and h["content-type"] == "application/json", (st, h)
    st, h, _ = req(port, "DELETE", "/echo")
    assert st == 405 and "POST" in h["allow"], (st, h)

    st, _, body = req(port, "GET", "/api/sections")
    secs = json.loads(body)["sections"]
    live = {s["id"] for s in secs if s["status"] == "live"}
    assert {"13.2.1", "13.2.2", "13.5.2", "13.6.1", "13.11.1"} <= live, live
    rest = [s for s in secs if s["id"] == "13.6.1"][0]
    assert "GET /proxy/data" in rest["routes"], rest
    for s in secs:
        if s["status"] == "live":
            assert os.path.exists(s["file"]), s
        else:
            assert s["status"] == "planned" and "issue" not in s, s

    st, h, body = req(port, "GET", "/")
    assert st == 200 and body == b"<h1>page</h1>" and h["content-type"].startswith("text/html")
    st, _, body = req(port, "GET", "/no/such/page")
    assert st == 404 and json.loads(body)["detail"] == "Not Found"

    st, _, body = req(port, "GET", "/healthz")
    assert st == 200 and json.loads(body) == {"status": "ok"}
    st, _, body = req(port, "GET", "/readyz")
    assert st == 200 and json.loads(body)["status"] == "ready", body

    # the chapter's React dev server origin may call the API
    st, h, _ = req(port, "OPTIONS", "/async-endpoint", headers={
        "Origin": "http://localhost:8000", "Access-Control-Request-Method": "GET"})
    assert st == 204 and h["access-control-allow-origin"] == "http://localhost:8000", (st, h)
    st, h, _ = req(port, "GET", "/data", headers={"Origin": "http://localhost:3000"})
    assert h.get("access-control-allow-origin") == "http://localhost:3000", h
    st, h, _ = req(port, "GET", "/data", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in h, h


def check_graceful_stop(proc, port):
    results = []

    def one():
        try:
            st, _, body = req(port, "GET", "/async-endpoint")
            results.append((st, body))
        except Exception as e:  # counted below
            results.append(e)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.1)  # all 20 are sleeping in their handlers now
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(10)
    ok = [r for r in results if isinstance(r, tuple) and r[0] == 200]
    assert len(ok) == 20, results
    assert proc.wait(timeout=10) == 0


def check_proxy(web):
    """GET /proxy/data with a second instance as the downstream."""
    db = "sqlite::memory:"
    down, down_port = start(web, 1000, args=("--database-url", db), env={"ACCESS_LOG": "json"})
    front = None
    try:
        url = "http://127.0.0.1:%d" % down_port
        front, port = start(web, 0, args=("--database-url", db,
                                          "--downstream-url", url + "/async-endpoint"))
        # no deadline but the proxy's own (5 s): the downstream's answer
        t0 = time.monotonic()
        st, h, body = req(port, "GET", "/proxy/data")
        assert st == 200 and json.loads(body) == {"message": "Asynchronous Response"}, (st, body)
        assert time.monotonic() - t0 >= 0.9
        # a caller that waits 300 ms: 504 at 300 ms, and the downstream, told
        # the time left, gave up at the same moment under the same id (which
        # of the two 504s comes back depends on which deadline passes first:
        # the front's own, or the downstream's answered before it)
        t0 = time.monotonic()
        st, h, body = req(port, "GET", "/proxy/data",
                          headers={"X-Request-Timeout-Ms": "300", "X-Request-Id": "cut-short-1"})
        took = time.monotonic() - t0
        assert st == 504 and json.loads(body)["detail"], (st, body)
        assert h["x-request-id"] == "cut-short-1", h
        assert 0.25 <= took < 0.9, took
        stop(front)
        front = None

        # the downstream's error status comes back as it was
        front, port = start(web, 0, args=("--database-url", db,
                                          "--downstream-url", url + "/no/such/page"))
        st, _, body = req(port, "GET", "/proxy/data")
        assert st == 404 and json.loads(body)["detail"] == "Not Found", (st, body)
        stop(front)
        front = None

        # nobody there: 502, saying why
        front, port = start(web, 0, args=("--database-url", db,
                                          "--downstream-url", "http://127.0.0.1:1/data"))
        st, _, body = req(port, "GET", "/proxy/data")
        detail = json.loads(body)["detail"]
        assert st == 502 and "cannot connect" in detail, (st, body)
        stop(front)
        front = None
    except BaseException:
        for p in (front, down):
            if p is not None and p.poll() is None:
                p.kill()
        raise
    log = stop(down)
    seen = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    cut = [e for e in seen if e.get("request_id") == "cut-short-1"]
    assert len(cut) == 1 and cut[0]["status"] == 504 and cut[0]["ms"] < 500, cut


def check_bad_options():
    r = subprocess.run([BIN, "--port", "abc"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--port=abc" in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([BIN], env=dict(os.environ, ASYNC_DELAY_MS="-5"), capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 2 and "ASYNC_DELAY_MS=-5" in r.stderr, r.stderr
    r = subprocess.run([BIN, "--nope"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--nope" in r.stderr, r.stderr
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0
    for opt in ("--port", "PORT", "--shards", "SHARDS", "--async-delay-ms", "ASYNC_DELAY_MS",
                "--web-dir", "LOG_LEVEL", "--downstream-url", "DOWNSTREAM_URL",
                "--downstream-timeout-ms", "DOWNSTREAM_TIMEOUT_MS"):
        assert opt in r.stdout, (opt, r.stdout)


def main():
    web = tempfile.mkdtemp(prefix="weave-web-")
    with open(os.path.join(web, "index.html"), "w") as f:
        f.write("<h1>page</h1>")
    try:
        proc, port = start(web, 300)
        try:
            check_routes(port)
            check_graceful_stop(proc, port)
        finally:
            if proc.poll() is None:
                proc.kill()
            err = proc.stderr.read()
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert bad not in err, err
        check_proxy(web)
        check_bad_options()
    finally:
        shutil.rmtree(web)
    print("test_chapter13: ok")


if __name__ == "__main__":
    sys.exit(main())
