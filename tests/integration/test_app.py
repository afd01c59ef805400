"""The app layer (include/weave/app.h) through a small wv_app: /readyz turns
503 naming the failing dependency and back to 200 when it recovers, /healthz
stays 200, the banner names the backends, a failing start hook stops the
process with status 1 and its message, options take flag over env over
default, --max-connections caps open connections (a bad value: status 2),
wv_app_run returns its status instead of exiting, a client the app owns is
opened on every shard, reached from the request, checked by /readyz,
shown redacted and closed at stop (a failing open stops the start naming
it), and metrics: requests counted by route template, method and status
at /metrics, or on an admin port (--metrics-port), or off
(--metrics=false)."""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "app_test_server")


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def start(*args, **env):
    proc = subprocess.Popen([BIN, "--port", "0"] + list(args),
                            env=dict(os.environ, **(env or {"SHARDS": "2"})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = []
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        banner.append(line)
        if line.startswith("listening on http://127.0.0.1:"):
            return proc, int(line.rsplit(":", 1)[1]), "".join(banner)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=10)
    err = proc.stderr.read()
    assert rc == 0, (rc, err)
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in err, err


def raw(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(data)
    got = b""
    while b"\r\n\r\n" not in got:
        b = s.recv(4096)
        if not b:
            break
        got += b
    s.close()
    return got


def sample(text, name, **labels):
    """The value of the sample with exactly these labels (any order), or None."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', head[len(name):]))
        if got == labels:
            return float(value)
    return None


def metrics_by_route_template_method_and_status():
    """Every app counts requests by route template (never the raw path),
    method (unknown ones as "other") and status, on every shard, and serves
    them at /metrics."""
    proc, port, banner = start()
    try:
        assert "  metrics   http://localhost:%d/metrics" % port in banner, banner
        for _ in range(7):
            assert get(port, "/hello")[0] == 200
        for i in range(4):
            assert get(port, "/nothing/here/%d" % i)[0] == 404
        assert raw(port, b"BREW /hello HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 405")
        st, body = get(port, "/metrics")
        text = body.decode()
        assert st == 200, st
        assert sample(text, "http_requests_total", method="GET", route="/hello", status="200") == 7
        assert sample(text, "http_requests_total", method="GET", route="none", status="404") == 4
        assert sample(text, "http_requests_total", method="other", route="none", status="405") == 1
        assert "/nothing/here" not in text and "BREW" not in text, "a raw path or method leaked"
        assert sample(text, "http_request_duration_seconds_count", method="GET", route="/hello") == 7
        assert sample(text, "weave_rt_fibers", shard="1") is not None, text[:2000]
        assert sample(text, "process_open_fds") > 0
    finally:
        stop(proc)


def metrics_on_an_admin_port_or_off():
    admin = socket.socket()
    admin.bind(("127.0.0.1", 0))
    aport = admin.getsockname()[1]
    admin.close()
    proc, port, banner = start("--metrics-port", str(aport))
    try:
        assert "/metrics" in banner and ":%d/metrics" % aport in banner, banner
        assert get(port, "/hello")[0] == 200
        assert get(port, "/metrics")[0] == 404, "still on the main port"
        st, body = get(aport, "/metrics")
        assert st == 200
        assert sample(body.decode(), "http_requests_total", method="GET", route="/hello",
                      status="200") == 1
    finally:
        stop(proc)
    proc, port, banner = start("--metrics=false")
    try:
        assert "metrics" not in banner, banner
        assert get(port, "/metrics")[0] == 404
    finally:
        stop(proc)
    r = subprocess.run([BIN, "--metrics-port", "70000"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2 and "--metrics-port=70000" in r.stderr, r.stderr


def clients_the_app_owns():
    """A client declared once is opened on every shard before the start
    hooks, reached from the request on its own shard, in /readyz and the
    banner with its password hidden, and closed on every shard at stop."""
    proc, port, banner = start(SHARDS="2")
    try:
        assert "counter://user:***@example/1" in banner and "hunter2" not in banner, banner
        shards = set()
        for _ in range(40):
            st, body = get(port, "/client")
            assert st == 200, (st, body)
            m = re.fullmatch(rb"counter of shard (\d) on shard (\d), call \d+", body)
            assert m and m.group(1) == m.group(2), body
            shards.add(m.group(1))
        st, body = get(port, "/readyz")
        doc = json.loads(body)
        assert doc["checks"]["counter"] == "ok", doc
        assert doc["backends"]["counter"] == "counter://user:***@example/1", doc
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        out = proc.stdout.read()
    assert rc == 0, rc
    assert sorted(re.findall(r"counter closed on shard (\d)", out)) == ["0", "1"], out
    r = subprocess.run([BIN, "--port", "0"], env=dict(os.environ, SHARDS="2",
                                                     COUNTER_URL="refuse://u:pw123@h/"),
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1, (r.returncode, r.stderr)
    errors = [line.split("ERROR [shard 0] ", 1)[1] for line in r.stderr.splitlines()
              if "ERROR [shard 0] " in line]
    assert errors == ["startup failed: counter refuse://u:***@h/: the counter refused"], r.stderr
    assert "pw123" not in r.stdout + r.stderr
    assert r.stdout.endswith("stop hook 2 ran\nstop hook 1 ran\nwv_app_run returned 1\n"), \
        r.stdout


def main():
    fd, ready = tempfile.mkstemp(prefix="weave-ready-")
    os.close(fd)
    try:
        # flag beats env: PORT says 1, --port 0 wins (any free port)
        proc, port, text = start("--ready-file", ready, PORT="1", SHARDS="1")
        assert "1 shard" in text and "dependency" in text and "a file (test)" in text, text
        try:
            st, body = get(port, "/readyz")
            doc = json.loads(body)
            assert st == 200 and doc["status"] == "ready", (st, doc)
            assert doc["checks"] == {"counter": "ok", "dependency": "ok"}, doc
            assert doc["backends"] == {"counter": "counter://user:***@example/1",
                                       "dependency": "a file (test)"}, doc

            os.unlink(ready)
            st, body = get(port, "/readyz")
            doc = json.loads(body)
            assert st == 503 and doc["status"] == "not ready", (st, doc)
            assert doc["failing"] == "dependency", doc
            assert doc["checks"]["dependency"] == ready + " is missing", doc
            st, body = get(port, "/healthz")
            assert st == 200 and json.loads(body) == {"status": "ok"}, body

            open(ready, "w").close()
            st, _ = get(port, "/readyz")
            assert st == 200, st
            assert get(port, "/hello") == (200, b"hello")
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=10)
            err = proc.stderr.read()
            out = proc.stdout.read()
        assert rc == 0, (rc, err)
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert bad not in err, err
        # the stop hooks, newest first, then the clients close, then
        # wv_app_run returns (it never exits the process itself)
        assert out.endswith("stop hook 2 ran\nstop hook 1 ran\ncounter closed on shard 0\n"
                            "wv_app_run returned 0\n"), out

        r = subprocess.run([BIN, "--port", "0", "--fail-start"], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "the dependency refused the connection at start" in r.stderr, r.stderr
        # the stop hooks still run, newest first, to close what was opened
        assert "stop hook 2 ran\nstop hook 1 ran\n" in r.stdout, r.stdout
        assert r.stdout.endswith("wv_app_run returned 1\n"), r.stdout

        r = subprocess.run([BIN], env=dict(os.environ, FAIL_START="maybe"), capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2 and "FAIL_START=maybe" in r.stderr, r.stderr
        assert r.stdout == "wv_app_run returned 2\n", r.stdout
        r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and r.stdout.endswith("wv_app_run returned 0\n"), r.stdout
        assert "--tls-cert" in r.stdout and "HTTP_REDIRECT_PORT" in r.stdout, r.stdout

        # --max-connections: with 2 open, a third waits until one closes
        proc, port, _ = start("--max-connections", "2", SHARDS="1")
        try:
            held = []
            for _ in range(2):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/hello")
                assert c.getresponse().read() == b"hello"
                held.append(c)
            third = socket.create_connection(("127.0.0.1", port), timeout=1)
            third.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                got = third.recv(100)
                raise AssertionError("a third connection was served past the cap: %r" % got)
            except socket.timeout:
                pass
            held[0].close()
            third.settimeout(5)
            assert third.recv(100).startswith(b"HTTP/1.1 200"), "not served after one closed"
            third.close()
            held[1].close()
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=10)
        assert rc == 0, rc

        r = subprocess.run([BIN, "--max-connections", "0"], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 2 and "--max-connections=0: expected 1 to" in r.stderr, r.stderr
        assert r.stdout == "wv_app_run returned 2\n", r.stdout
    finally:
        if os.path.exists(ready):
            os.unlink(ready)
    metrics_by_route_template_method_and_status()
    metrics_on_an_admin_port_or_off()
    clients_the_app_owns()
    print("test_app: ok")


if __name__ == "__main__":
    sys.exit(main())
