"""The app layer (include/weave/app.h) through a small wv_app: /readyz turns
503 naming the failing dependency and back to 200 when it recovers, /healthz
stays 200, the banner names the backends, a failing start hook stops the
process with status 1 and its message, options take flag over env over
default, and --max-connections caps open connections (a bad value: status
2)."""
import http.client
import json
import os
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


def main():
    fd, ready = tempfile.mkstemp(prefix="weave-ready-")
    os.close(fd)
    try:
        # flag beats env: PORT says 1, --port 0 wins (any free port)
        proc = subprocess.Popen([BIN, "--port", "0", "--ready-file", ready],
                                env=dict(os.environ, PORT="1", SHARDS="1"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        banner = []
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            banner.append(line)
            if line.startswith("listening on http://127.0.0.1:"):
                port = int(line.rsplit(":", 1)[1])
                break
        text = "".join(banner)
        assert "1 shard" in text and "dependency" in text and "a file (test)" in text, text
        try:
            st, body = get(port, "/readyz")
            doc = json.loads(body)
            assert st == 200 and doc["status"] == "ready", (st, doc)
            assert doc["checks"] == {"dependency": "ok"}, doc
            assert doc["backends"] == {"dependency": "a file (test)"}, doc

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
        assert rc == 0, (rc, err)
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert bad not in err, err

        r = subprocess.run([BIN, "--port", "0", "--fail-start"], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert "the dependency refused the connection at start" in r.stderr, r.stderr

        r = subprocess.run([BIN], env=dict(os.environ, FAIL_START="maybe"), capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2 and "FAIL_START=maybe" in r.stderr, r.stderr

        # --max-connections: with 2 open, a third waits until one closes
        proc = subprocess.Popen([BIN, "--port", "0", "--max-connections", "2"],
                                env=dict(os.environ, SHARDS="1"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if line.startswith("listening on http://127.0.0.1:"):
                port = int(line.rsplit(":", 1)[1])
                break
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
    finally:
        if os.path.exists(ready):
            os.unlink(ready)
    print("test_app: ok")


if __name__ == "__main__":
    sys.exit(main())
