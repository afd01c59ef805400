"""§13.9 on the chapter's service: the cache routes and /users/{id} read
through the cache, on each backend: the in-process store (the default),
Redis (WEAVE_TEST_REDIS_URL) and memcached (WEAVE_TEST_MEMCACHED_SERVERS),
both started by `make test`.

PUT /cache/{key} (?ttl= seconds) stores the body, GET answers it or 404,
DELETE answers 204 or 404; a key memcached would refuse is 422 on every
backend, a value over 1 MiB 413. GET /users/{id} says X-Cache: miss then
hit, and PUT or DELETE /users/{id} drop the cached copy. Redis's and
memcached's own clients (redis-cli, pymemcache) read what the service
stored. With its Redis stopped the service still answers /users/{id} from
the database while /readyz reports the cache down. --help names the
options."""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "chapter13")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REDIS = os.environ.get("WEAVE_TEST_REDIS_URL")
MEMCACHED = os.environ.get("WEAVE_TEST_MEMCACHED_SERVERS")
passed = failed = 0


def case(name, fn, *args):
    global passed, failed
    try:
        fn(*args)
        passed += 1
        print("PASS", name)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed += 1
        print("FAIL", name, repr(e))


class Service:
    def __init__(self, env, shards="2"):
        self.web = tempfile.mkdtemp(prefix="weave-web-")
        self.db = os.path.join(self.web, "users.db")
        open(os.path.join(self.web, "index.html"), "w").write("x")
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("CACHE_URL", "REDIS_URL", "MEMCACHED_SERVERS")}
        self.proc = subprocess.Popen(
            [BIN, "--port", "0", "--web-dir", self.web, "--database-url", "sqlite://" + self.db],
            env=dict(clean, SHARDS=shards, **env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.banner = ""
        while True:
            line = self.proc.stdout.readline()
            assert line, self.proc.stderr.read()
            self.banner += line
            if line.startswith("listening on http://127.0.0.1:"):
                self.port = int(line.rsplit(":", 1)[1])
                break

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=body)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data

    def json(self, method, path, body=None):
        st, h, data = self.call(method, path, json.dumps(body) if body is not None else None)
        return st, h, json.loads(data) if data else None

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=20)
        err = self.proc.stderr.read()
        shutil.rmtree(self.web)
        assert rc == 0, (rc, err[-2000:])
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert bad not in err, err[-3000:]


def key(name):
    return "wvi%d:%s" % (os.getpid(), name)


def roundtrip(svc):
    k = key("roundtrip")
    value = b"bin\x00ary \xff\xfe value"
    st, _, body = svc.call("PUT", "/cache/" + k, value)
    assert st == 200 and json.loads(body) == {"key": k, "bytes": len(value), "ttl": 0}, (st, body)
    # every connection (spread over both shards) reads it
    for _ in range(8):
        st, h, got = svc.call("GET", "/cache/" + k)
        assert st == 200 and got == value, (st, got)
        assert h["Content-Type"] == "application/octet-stream", h
    st, _, _ = svc.call("DELETE", "/cache/" + k)
    assert st == 204, st
    st, _, body = svc.call("GET", "/cache/" + k)
    assert st == 404 and "no key" in json.loads(body)["detail"], (st, body)
    st, _, _ = svc.call("DELETE", "/cache/" + k)
    assert st == 404, st


def expires(svc):
    k = key("ttl")
    st, _, _ = svc.call("PUT", "/cache/%s?ttl=1" % k, b"short-lived")
    assert st == 200, st
    assert svc.call("GET", "/cache/" + k)[0] == 200
    time.sleep(2.2)
    st, _, _ = svc.call("GET", "/cache/" + k)
    assert st == 404, st
    assert svc.call("PUT", "/cache/%s?ttl=-1" % k, b"x")[0] == 422
    assert svc.call("PUT", "/cache/%s?ttl=soon" % k, b"x")[0] == 422  # FastAPI's int_parsing


def bad_input(svc):
    for bad in ("has%20space", "ctl%01byte", "k" * 251, "tab%09"):
        st, _, body = svc.call("PUT", "/cache/" + bad, b"v")
        assert st == 422, (bad, st, body)
        assert json.loads(body)["detail"][0]["loc"] == ["path", "key"], body
        assert svc.call("GET", "/cache/" + bad)[0] == 422
        assert svc.call("DELETE", "/cache/" + bad)[0] == 422
    assert svc.call("PUT", "/cache/" + "k" * 250, b"v")[0] == 200
    assert svc.call("DELETE", "/cache/" + "k" * 250)[0] == 204
    st, _, _ = svc.call("PUT", "/cache/" + key("big"), b"x" * (1024 * 1024 + 1))
    assert st == 413, st


def users_through_cache(svc):
    st, _, alice = svc.json("POST", "/users", {"name": "Alice"})
    assert st == 201, st
    path = "/users/%d" % alice["id"]
    st, h, got = svc.json("GET", path)
    assert st == 200 and got == alice and h["X-Cache"] == "miss", (st, h, got)
    st, h, got = svc.json("GET", path)
    assert st == 200 and got == alice and h["X-Cache"] == "hit", (st, h, got)
    st, _, renamed = svc.json("PUT", path, {"name": "Alicia"})
    assert st == 200 and renamed["name"] == "Alicia", (st, renamed)
    st, h, got = svc.json("GET", path)  # the write dropped the cached copy
    assert got["name"] == "Alicia" and h["X-Cache"] == "miss", (h, got)
    st, _, body = svc.json("PUT", path, {"name": ""})
    assert st == 422, st
    st, _, _ = svc.json("DELETE", path)
    assert st == 204, st
    st, _, body = svc.json("GET", path)
    assert st == 404 and body["detail"] == "no user %d" % alice["id"], (st, body)
    assert svc.json("PUT", "/users/999999", {"name": "Nobody"})[0] == 404
    assert svc.json("DELETE", "/users/999999")[0] == 404


def ready(svc, backend):
    st, _, body = svc.json("GET", "/readyz")
    assert st == 200 and body["checks"]["cache"] == "ok", (st, body)
    assert body["backends"]["cache"].startswith(backend), body


def redis_cli_reads_it(svc):
    k = key("peer")
    assert svc.call("PUT", "/cache/" + k, b"seen by redis-cli")[0] == 200
    out = subprocess.run(["redis-cli", "-u", REDIS + "/4", "--raw", "GET", k], capture_output=True,
                         text=True, check=True).stdout
    assert out == "seen by redis-cli\n", out
    subprocess.run(["redis-cli", "-u", REDIS + "/4", "SET", k, "from redis-cli"], check=True,
                   capture_output=True)
    st, _, got = svc.call("GET", "/cache/" + k)
    assert st == 200 and got == b"from redis-cli", (st, got)
    svc.call("DELETE", "/cache/" + k)


def pymemcache_reads_it(svc):
    from pymemcache.client.base import Client
    k = key("peer")
    assert svc.call("PUT", "/cache/" + k, b"seen by pymemcache")[0] == 200
    # the key is on one of the servers: pymemcache asks each
    found = []
    for server in MEMCACHED.split(","):
        host, port = server.rsplit(":", 1)
        c = Client((host, int(port)))
        v = c.get(k)
        if v is not None:
            found.append(v)
        c.close()
    assert found == [b"seen by pymemcache"], found
    svc.call("DELETE", "/cache/" + k)


def cache_down_reads_around():
    d = tempfile.mkdtemp(prefix="weave-cache-redis-")
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    ctl = os.path.join(ROOT, "scripts", "redis_test_server.sh")
    url = subprocess.run([ctl, "start", d, str(port)], capture_output=True, text=True,
                         check=True).stdout.strip()
    svc = None
    try:
        svc = Service({"CACHE_URL": url})
        st, _, alice = svc.json("POST", "/users", {"name": "Alice"})
        path = "/users/%d" % alice["id"]
        assert svc.json("GET", path)[1]["X-Cache"] == "miss"
        subprocess.run([ctl, "stop", d], check=True)
        st, h, got = svc.json("GET", path)
        assert st == 200 and got == alice, (st, got)  # from the database
        st, _, body = svc.json("GET", "/readyz")
        assert st == 503 and body["checks"]["cache"] != "ok", (st, body)
        st, _, body = svc.json("GET", "/cache/" + key("x"))
        assert st in (502, 503, 504), (st, body)
    finally:
        if svc:
            svc.stop()
        subprocess.run([ctl, "stop", d])
        shutil.rmtree(d, ignore_errors=True)


def help_names_the_options():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    for word in ("--cache-url", "CACHE_URL", "REDIS_URL", "MEMCACHED_SERVERS", "memory://"):
        assert word in out, (word, out)


def main():
    backends = [("memory", {})]
    if REDIS:
        backends.append(("redis", {"CACHE_URL": REDIS + "/4"}))
    else:
        case("WEAVE_TEST_REDIS_URL is set", lambda: (_ for _ in ()).throw(
            AssertionError("WEAVE_TEST_REDIS_URL is not set")))
    if MEMCACHED:
        backends.append(("memcached", {"MEMCACHED_SERVERS": MEMCACHED}))
    else:
        case("WEAVE_TEST_MEMCACHED_SERVERS is set", lambda: (_ for _ in ()).throw(
            AssertionError("WEAVE_TEST_MEMCACHED_SERVERS is not set")))
    for name, env in backends:
        svc = Service(env)
        try:
            case("%s: put, get and delete a binary value" % name, roundtrip, svc)
            case("%s: a value expires after its ttl" % name, expires, svc)
            case("%s: bad keys are 422, a value over 1 MiB 413" % name, bad_input, svc)
            case("%s: /users/{id} reads through the cache, writes drop it" % name,
                 users_through_cache, svc)
            case("%s: /readyz checks the cache" % name, ready, svc, name)
            if name == "redis":
                case("redis: redis-cli reads what the service stored", redis_cli_reads_it, svc)
            if name == "memcached":
                case("memcached: pymemcache reads what the service stored",
                     pymemcache_reads_it, svc)
        finally:
            svc.stop()
    if REDIS:
        case("with Redis stopped, /users/{id} answers from the database", cache_down_reads_around)
    case("--help names the cache options", help_names_the_options)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
