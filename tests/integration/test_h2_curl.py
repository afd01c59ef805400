"""The chapter's service (examples/chapter13) over HTTP/2 with curl, both
ways: `curl --http2` over HTTPS (ALPN "h2", the service's --tls-cert) and
`curl --http2-prior-knowledge` over plain HTTP (h2c). GET /, GET
/api/sections (also compressed), POST /users with JSON (and a refused
one), GET /metrics: %{http_version} is 2, and each answer is what the same
request over HTTP/1.1 gets (status, headers but Date, body; for what differs
by nature, a new user's id and the metrics' counts, the like parts). A user
created over one version is read back over the other, and /metrics counts
the HTTP/2 requests with the HTTP/1.1 ones. test_h2.py does the same for
every route of the HTTP test server; the browser's side is
tests/e2e/chapter13-h2.test.mjs."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import SANITIZER_MARKERS, check, eq, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "chapter13")
TMP = tempfile.mkdtemp(prefix="weave-h2-curl-")
CERTS = os.path.join(TMP, "certs")
PAGE = b"<!doctype html><title>weave</title><script src=app.js></script>\n"


class Chapter13:
    """The service on a free port (HTTPS when tls), a page of its own, a
    fresh SQLite file of users (one for every shard); on leaving, SIGTERM,
    exit 0 and no sanitizer report (killed when the test failed)."""

    def __init__(self, tls):
        self.dir = tempfile.mkdtemp(dir=TMP)
        web = os.path.join(self.dir, "web")
        os.mkdir(web)
        with open(os.path.join(web, "index.html"), "wb") as f:
            f.write(PAGE)
        args = [BIN, "--port", "0", "--shards", "2", "--web-dir", web,
                "--database-url", "sqlite://" + os.path.join(self.dir, "users.db"),
                "--files-dir", os.path.join(self.dir, "files")]
        if tls:
            if not os.path.exists(os.path.join(CERTS, "server.pem")):
                subprocess.run(["bash", os.path.join(ROOT, "tests", "make_certs.sh"), CERTS], check=True)
            args += ["--tls-cert", os.path.join(CERTS, "server.pem"),
                     "--tls-key", os.path.join(CERTS, "server.key")]
        env = dict(os.environ, ASYNC_DELAY_MS="0", S3_BUCKET="", S3_ENDPOINT="")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        for _ in range(30):
            line = self.proc.stdout.readline()
            m = re.match(r"listening on (https?)://127\.0\.0\.1:(\d+)", line)
            if m:
                eq(m.group(1), "https" if tls else "http", "the banner's scheme")
                self.port = int(m.group(2))
                self.base = ("https://localhost:%d" if tls else "http://127.0.0.1:%d") % self.port
                return
            check(line, "no banner; stderr: %s", self.proc.stderr.read() if not line else "")
        raise AssertionError("no 'listening on' line")

    def __enter__(self):
        return self

    def __exit__(self, kind, *_):
        try:
            if kind is not None:
                self.proc.kill()
                self.proc.wait()
                return
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10)
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
            err = self.proc.stderr.read()
            eq(rc, 0, "exit status on SIGTERM (stderr: %s)" % err[-2000:])
            for marker in SANITIZER_MARKERS:
                check(marker not in err, "sanitizer report: %s", err[-4000:])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def curl(url, proto, *args):
    """(status, headers but the date and framing ones, body, %{http_version})"""
    flags = {"1.1": ["--http1.1"], "h2": ["--http2"], "h2c": ["--http2-prior-knowledge"]}[proto]
    with tempfile.TemporaryDirectory(dir=TMP) as d:
        head, body = os.path.join(d, "head"), os.path.join(d, "body")
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", os.path.join(CERTS, "ca.pem"),
                            "-D", head, "-o", body, "-w", "%{http_code} %{http_version}"]
                           + flags + list(args) + [url],
                           capture_output=True, text=True, timeout=30)
        eq(r.returncode, 0, "curl %s %s exit status (%s)" % (proto, url, r.stderr.strip()))
        code, version = r.stdout.split()
        with open(head, "rb") as f:
            last = [b for b in f.read().decode("latin-1").split("\r\n\r\n") if b.strip()][-1]
        headers = {}
        for line in last.split("\r\n")[1:]:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            if name not in ("date", "connection", "keep-alive", "transfer-encoding"):
                headers.setdefault(name, []).append(value.strip())
        with open(body, "rb") as f:
            return int(code), headers, f.read(), version


def both(svc, proto, path, *args):
    """The same request over HTTP/1.1 and over proto: their answers, each
    version checked."""
    one = curl(svc.base + path, "1.1", *args)
    two = curl(svc.base + path, proto, *args)
    eq(one[3], "1.1", "%%{http_version} of %s over --http1.1" % path)
    eq(two[3], "2", "%%{http_version} of %s over %s" % (path, proto))
    return one, two


def same(svc, proto, path, *args, status=200):
    one, two = both(svc, proto, path, *args)
    eq(two[0], one[0], "%s status of %s" % (proto, path))
    eq(two[1], one[1], "%s headers of %s" % (proto, path))
    eq(two[2], one[2], "%s body of %s" % (proto, path))
    eq(two[0], status, "status of %s" % path)
    return two


def served_by_route(metrics, route):
    """http_requests_total{method="GET",route=ROUTE,status="200"}"""
    m = re.search(r'^http_requests_total\{method="GET",route="%s",status="200"\} (\d+)$'
                  % re.escape(route), metrics, re.M)
    return int(m.group(1)) if m else 0


def parity(svc, proto):
    # GET /: the page, from --web-dir
    _, heads, body, _ = same(svc, proto, "/")
    eq(body, PAGE, "the page")
    check(heads["content-type"][0].startswith("text/html"), "the page's type: %s", heads)

    # GET /api/sections, as it is and compressed (curl offers br and gzip)
    _, _, body, _ = same(svc, proto, "/api/sections")
    check(any(s["id"] == "13.5.2" for s in json.loads(body)["sections"]), "no §13.5.2 in %s", body[:200])
    _, heads, _, _ = same(svc, proto, "/api/sections", "--compressed")
    check(heads.get("content-encoding") in (["br"], ["gzip"]), "with --compressed: %s", heads)

    # POST /users with JSON: 201 both ways, each user readable over the other version
    one, two = both(svc, proto, "/users", "-H", "Content-Type: application/json",
                    "--data-binary", '{"name":"Ada"}')
    eq((one[0], two[0]), (201, 201), "POST /users statuses")
    u1, u2 = json.loads(one[2]), json.loads(two[2])
    eq((u1["name"], u2["name"]), ("Ada", "Ada"), "the names created")
    check(u2["id"] != u1["id"], "both created #%s", u1["id"])
    eq(two[1].keys(), one[1].keys(), "the header names of POST /users")
    eq(two[1]["content-type"], one[1]["content-type"], "POST /users content type")
    eq(two[1]["location"], ["/users/%d" % u2["id"]], "Location over %s" % proto)
    eq(one[1]["location"], ["/users/%d" % u1["id"]], "Location over HTTP/1.1")
    st, _, body, _ = curl("%s/users/%d" % (svc.base, u2["id"]), "1.1")
    eq((st, json.loads(body)), (200, u2), "the user created over %s, read over HTTP/1.1" % proto)
    st, _, body, _ = curl("%s/users/%d" % (svc.base, u1["id"]), proto)
    eq((st, json.loads(body)), (200, u1), "the user created over HTTP/1.1, read over %s" % proto)
    # a refused one: the same 422, word for word; a body that is no JSON: the same 4xx
    _, _, body, _ = same(svc, proto, "/users", "-H", "Content-Type: application/json",
                         "--data-binary", '{"name":"%s"}' % ("x" * 51), status=422)
    check(b"at most 50 characters" in body, "the 422 says %s", body)
    one, two = both(svc, proto, "/users", "-H", "Content-Type: application/json", "--data-binary", "{nope")
    check(400 <= one[0] < 500, "a body that is no JSON answered %d", one[0])
    eq(two[:3], one[:3], "%s answer to a body that is no JSON" % proto)

    # GET /metrics: the same families and type; the counts include the HTTP/2 requests
    _, _, before, _ = curl(svc.base + "/metrics", "1.1")
    n = served_by_route(before.decode(), "/api/sections")
    for _ in range(3):
        curl(svc.base + "/api/sections", proto)
    one, two = both(svc, proto, "/metrics")
    eq((one[0], two[0]), (200, 200), "GET /metrics statuses")
    eq(two[1].keys(), one[1].keys(), "the header names of GET /metrics")
    eq(two[1]["content-type"], one[1]["content-type"], "GET /metrics content type")
    families = [set(re.findall(r"^# TYPE (\S+)", r[2].decode(), re.M)) for r in (one, two)]
    eq(families[1], families[0], "the metric families over %s" % proto)
    check("http_requests_total" in families[1], "no http_requests_total in %s", sorted(families[1]))
    eq(served_by_route(two[2].decode(), "/api/sections"), n + 3,
       "GET /api/sections counted after 3 more over %s" % proto)


def test_h2c_prior_knowledge_answers_as_http11_does():
    with Chapter13(tls=False) as svc:
        parity(svc, "h2c")


def test_tls_alpn_h2_answers_as_http11_does():
    with Chapter13(tls=True) as svc:
        parity(svc, "h2")


if __name__ == "__main__":
    try:
        run(globals())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
