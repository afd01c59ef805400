"""The chapter's service (examples/chapter13, what `make run` starts): every
route over real HTTP with its status, headers and JSON body; the page at /;
/healthz and /readyz; CORS for the chapter's dev-server origin; bad options
refused with a message naming them; and SIGTERM with requests in flight: all
of them complete, then the process exits 0."""
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


def start(web, delay_ms, shards="2"):
    proc = subprocess.Popen([BIN, "--port", "0", "--web-dir", web],
                            env=dict(os.environ, ASYNC_DELAY_MS=str(delay_ms), SHARDS=shards),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(20):
        line = proc.stdout.readline()
        if line.startswith("listening on http://127.0.0.1:"):
            return proc, int(line.rsplit(":", 1)[1])
        assert line, "no banner; stderr: " + proc.stderr.read()
    raise AssertionError("no 'listening on' line")


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

    st, h, body = req(port, "POST", "/echo", body=b'{"x": 1}',
                      headers={"Content-Type": "application/json"})
    assert st == 200 and body == b'{"x": 1}' and h["content-type"] == "application/json", (st, h)
    st, h, _ = req(port, "DELETE", "/echo")
    assert st == 405 and "POST" in h["allow"], (st, h)

    st, _, body = req(port, "GET", "/api/sections")
    secs = json.loads(body)["sections"]
    live = {s["id"] for s in secs if s["status"] == "live"}
    assert {"13.2.1", "13.2.2", "13.5.2", "13.6.1", "13.11.1"} <= live, live
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
                "--web-dir", "LOG_LEVEL"):
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
        check_bad_options()
    finally:
        shutil.rmtree(web)
    print("test_chapter13: ok")


if __name__ == "__main__":
    sys.exit(main())
