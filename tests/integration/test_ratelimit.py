"""Rate limiting (wv_ratelimit) over real sockets, on
tests/integration/ratelimit_test_server.c.

In the process: a burst spread over two shards is counted once (exactly N
allowed, then 429 with Retry-After and the draft's RateLimit fields and a
JSON body); routes outside the limited group are untouched; clients on
127.0.0.1 and 127.0.0.2 have buckets of their own; API keys, X-Forwarded-For
behind one proxy (a spoofed left part changes nothing), a key function
that exempts, the legacy header triple, and the counters on /metrics.

In Redis (WEAVE_TEST_REDIS_URL, started by `make test`): two server
processes, one opening its own clients from a URL and one handed a client
per shard, share one bucket: N+k requests across both, exactly N allowed,
the rest 429 with a Retry-After that agrees with RateLimit's t, the bucket a
Redis key with a TTL. On a Redis of the test's own: killed mid-run, the
server lets requests through (fail open), warns once, counts the errors,
keeps serving, and limits again once Redis is back; a Redis that is too
slow is timed out and read around; with fail_closed, a Redis that cannot
be reached answers 503."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD_DIR = os.environ.get("BUILD_DIR", "build/release")
BIN = os.path.join(BUILD_DIR, "ratelimit_test_server")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CTL = os.path.join(ROOT, "scripts", "redis_test_server.sh")
REDIS = os.environ.get("WEAVE_TEST_REDIS_URL")
SANITIZER = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
passed = failed = 0


def case(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print("PASS", name)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed += 1
        print("FAIL", name, repr(e))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, **env):
        full = dict(os.environ, PORT="0", WEAVE_SHARDS="2")
        full.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        full.update({k: str(v) for k, v in env.items()})
        self.proc = subprocess.Popen([BIN], env=full, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.err = []
        threading.Thread(target=self._drain, daemon=True).start()
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.wait(10)
            raise AssertionError("no port: %r %s" % (line, self.stderr()))
        self.port = int(line.split()[-1])

    def _drain(self):
        for line in self.proc.stderr:
            self.err.append(line)

    def stderr(self):
        return "".join(self.err)

    def call(self, path, headers=None, source="127.0.0.1"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10,
                                       source_address=(source, 0))
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    def metric(self, name, **labels):
        _, _, body = self.call("/metrics")
        want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
        for line in body.decode().splitlines():
            m = re.match(r"^(\w+)\{(.*)\} (\S+)$", line)
            if m and m.group(1) == name and ",".join(sorted(m.group(2).split(","))) == want:
                return float(m.group(3))
        return None

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        time.sleep(0.1)
        err = self.stderr()
        assert rc == 0, (rc, err[-3000:])
        for bad in SANITIZER:
            assert bad not in err, err[-4000:]


def with_server(fn, **env):
    def run():
        s = Server(**env)
        try:
            fn(s)
        finally:
            if s.proc.poll() is None:
                s.stop()
            else:
                raise AssertionError("the server died: %s" % s.stderr()[-3000:])
    return run


def burst_of(send, n):
    """n requests; the list of (status, headers, body)."""
    return [send() for _ in range(n)]


# ------------------------------------------------------------ in the process

def burst_counted_once_across_shards(s):
    got = burst_of(lambda: s.call("/api/ping"), 8)  # new connections: both shards see some
    statuses = [st for st, _, _ in got]
    assert statuses == [200] * 5 + [429] * 3, statuses
    for i, (_, h, body) in enumerate(got[:5]):
        assert json.loads(body) == {"ok": True}
        assert h["ratelimit-policy"] == '"default";q=5;w=25', h
        assert h["ratelimit"] == '"default";r=%d;t=5' % (4 - i), h
        assert "retry-after" not in h, h
    for st, h, body in got[5:]:
        assert json.loads(body) == {"detail": "Too Many Requests"}, body
        assert h["content-type"].startswith("application/json"), h
        retry = int(h["retry-after"])
        assert 1 <= retry <= 5, h
        assert h["ratelimit"] == '"default";r=0;t=%d' % retry, h
        assert h["ratelimit-policy"] == '"default";q=5;w=25', h
    # outside the group: no limit, no fields
    st, h, _ = s.call("/free/ping")
    assert st == 200 and "ratelimit" not in h and "retry-after" not in h, (st, h)
    # another address has its own bucket, and does not free the first's
    got2 = burst_of(lambda: s.call("/api/ping", source="127.0.0.2"), 6)
    assert [st for st, _, _ in got2] == [200] * 5 + [429], got2
    assert s.call("/api/ping")[0] == 429
    assert s.metric("weave_ratelimit_requests_total", limiter="default", result="allowed") == 10
    assert s.metric("weave_ratelimit_requests_total", limiter="default", result="limited") == 5
    assert s.metric("weave_ratelimit_requests_total", limiter="default", result="error") == 0


def refills_at_the_rate(s):
    # 10 per second, burst 2: spent, then one more 100 ms later
    assert [s.call("/api/ping")[0] for _ in range(3)] == [200, 200, 429]
    time.sleep(0.25)
    got = [s.call("/api/ping")[0] for _ in range(3)]
    assert got.count(200) in (2, 3) and got[-1] == 429, got


def api_keys(s):
    k = {"X-API-Key": "key-a"}
    assert [s.call("/api/ping", k)[0] for _ in range(4)] == [200, 200, 200, 429]
    assert s.call("/api/ping", {"X-API-Key": "key-b"})[0] == 200  # another key
    assert s.call("/api/ping", {"X-API-Key": "key-b"}, source="127.0.0.2")[0] == 200
    # without the header: keyed by the address, which key-a's use did not spend
    assert [s.call("/api/ping")[0] for _ in range(4)] == [200, 200, 200, 429]
    assert s.call("/api/ping", k, source="127.0.0.2")[0] == 429  # the key, wherever from


def forwarded_behind_one_proxy(s):
    # the proxy appends the address it saw; what the client wrote before it is ignored
    a1 = {"X-Forwarded-For": "203.0.113.1"}
    a2 = {"X-Forwarded-For": "6.6.6.6, 203.0.113.1"}  # spoofed left part: same client
    b = {"X-Forwarded-For": "203.0.113.1, 198.51.100.2"}
    assert [s.call("/api/ping", a1)[0] for _ in range(2)] == [200, 200]
    assert s.call("/api/ping", a2)[0] == 429
    assert s.call("/api/ping", b)[0] == 200
    # not an address: keyed by the peer, as a request without the header
    assert s.call("/api/ping", {"X-Forwarded-For": "unknown"})[0] == 200
    assert s.call("/api/ping")[0] == 200
    assert s.call("/api/ping", {"X-Forwarded-For": "[::1"})[0] == 429


def key_function_exempts(s):
    assert [s.call("/api/ping?user=ann")[0] for _ in range(3)] == [200, 200, 429]
    assert s.call("/api/ping?user=bob")[0] == 200
    assert [s.call("/api/ping")[0] for _ in range(5)] == [200] * 5  # no key: exempt
    st, h, _ = s.call("/api/ping")
    assert "ratelimit" not in h, h


def legacy_fields(s):
    st, h, _ = s.call("/api/ping")
    assert st == 200 and h["ratelimit-limit"] == "2" and h["ratelimit-remaining"] == "1", h
    assert h["ratelimit-reset"] == "1" and "ratelimit" not in h, h
    s.call("/api/ping")
    st, h, _ = s.call("/api/ping")
    assert st == 429 and h["ratelimit-remaining"] == "0" and h["retry-after"] == "1", h


def no_fields(s):
    st, h, _ = s.call("/api/ping")
    assert st == 200 and not any(k.startswith("ratelimit") for k in h), h
    st, h, _ = s.call("/api/ping")
    assert st == 429 and h["retry-after"] == "1", h
    assert not any(k.startswith("ratelimit") for k in h), h


# ------------------------------------------------------------------ Redis

def redis_cli(url, *args):
    return subprocess.run(["redis-cli", "-u", url] + list(args), capture_output=True, text=True,
                          timeout=20).stdout.strip()


def two_processes_share_one_redis_bucket():
    assert REDIS, "WEAVE_TEST_REDIS_URL is not set (make test starts a Redis)"
    name = "it%d" % os.getpid()
    env = dict(RL_RATE="0.2", RL_BURST="6", RL_NAME=name, RL_REDIS_URL=REDIS + "/9")
    a = Server(RL_REDIS_MODE="url", **env)
    b = Server(RL_REDIS_MODE="fn", **env)
    try:
        got = []
        for i in range(10):
            got.append((a if i % 2 == 0 else b).call("/api/ping"))
        statuses = [st for st, _, _ in got]
        assert statuses == [200] * 6 + [429] * 4, statuses
        for i, (_, h, _) in enumerate(got[:6]):
            assert h["ratelimit"] == '"%s";r=%d;t=5' % (name, 5 - i), (i, h)
            assert h["ratelimit-policy"] == '"%s";q=6;w=30' % name, h
        for _, h, body in got[6:]:
            retry = int(h["retry-after"])
            assert 1 <= retry <= 5 and h["ratelimit"] == '"%s";r=0;t=%d' % (name, retry), h
            assert json.loads(body) == {"detail": "Too Many Requests"}
        # 127.0.0.2 has its own bucket in Redis too
        assert b.call("/api/ping", source="127.0.0.2")[0] == 200
        key = "ratelimit:%s:a:127.0.0.1" % name
        ttl = int(redis_cli(REDIS + "/9", "PTTL", key))
        assert 25000 < ttl <= 31000, ttl  # a full bucket's worth, then gone
        assert a.metric("weave_ratelimit_requests_total", limiter=name, result="allowed") == 3
        assert b.metric("weave_ratelimit_requests_total", limiter=name, result="limited") == 2
        assert a.metric("weave_ratelimit_requests_total", limiter=name, result="error") == 0
    finally:
        a.stop()
        b.stop()
        redis_cli(REDIS + "/9", "DEL", "ratelimit:%s:a:127.0.0.1" % name,
                  "ratelimit:%s:a:127.0.0.2" % name)


def limiter_freed_after_the_runtime():
    # as in a wv_app, whose router is freed once wv_main has returned: the
    # limiter's per-shard clients are closed by the runtime's end, on their
    # shards, and nothing leaks
    assert REDIS, "WEAVE_TEST_REDIS_URL is not set"
    name = "fa%d" % os.getpid()
    s = Server(RL_RATE="1", RL_BURST="2", RL_NAME=name, RL_REDIS_URL=REDIS + "/9",
               RL_FREE_AFTER="1")
    try:
        for _ in range(6):  # both shards open their client
            assert s.call("/api/ping")[0] in (200, 429)
        assert s.metric("weave_ratelimit_requests_total", limiter=name, result="error") == 0
    finally:
        s.stop()
        redis_cli(REDIS + "/9", "DEL", "ratelimit:%s:a:127.0.0.1" % name)


def redis_api_keys_are_hashed():
    assert REDIS, "WEAVE_TEST_REDIS_URL is not set"
    name = "ik%d" % os.getpid()
    s = Server(RL_RATE="1", RL_BURST="1", RL_NAME=name, RL_KEY="header", RL_HEADER="X-API-Key",
               RL_REDIS_URL=REDIS + "/9")
    try:
        assert s.call("/api/ping", {"X-API-Key": "sk-very-secret"})[0] == 200
        assert s.call("/api/ping", {"X-API-Key": "sk-very-secret"})[0] == 429
        keys = redis_cli(REDIS + "/9", "--scan", "--pattern", "ratelimit:%s:*" % name).split()
        assert len(keys) == 1 and re.match(r"^ratelimit:%s:h:[0-9a-f]{32}$" % name, keys[0]), keys
        assert "secret" not in keys[0]
        redis_cli(REDIS + "/9", "DEL", keys[0])
    finally:
        s.stop()


class OwnRedis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="weave-rl-redis-")
        self.port = free_port()
        self.url = subprocess.run(["bash", CTL, "start", self.dir, str(self.port)], check=True,
                                  capture_output=True, text=True, timeout=60).stdout.strip()

    def kill(self):
        subprocess.run(["bash", CTL, "kill", self.dir], check=True, timeout=30)

    def restart(self):
        subprocess.run(["bash", CTL, "restart", self.dir], check=True, capture_output=True,
                       timeout=60)

    def stop(self):
        subprocess.run(["bash", CTL, "stop", self.dir], capture_output=True, timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_killed_fails_open():
    rd = OwnRedis()
    s = None
    try:
        s = Server(RL_RATE="0.2", RL_BURST="3", RL_NAME="down", RL_REDIS_URL=rd.url + "/0")
        assert [s.call("/api/ping")[0] for _ in range(4)] == [200, 200, 200, 429]
        rd.kill()
        got = [s.call("/api/ping") for _ in range(12)]
        assert [st for st, _, _ in got] == [200] * 12, [st for st, _, _ in got]
        assert all("ratelimit" not in h for _, h, _ in got), got[0]
        assert s.call("/free/ping")[0] == 200
        assert s.metric("weave_ratelimit_requests_total", limiter="down", result="error") == 12
        warned = [l for l in s.stderr().splitlines() if "ratelimit down: Redis failed" in l]
        assert len(warned) == 1, s.stderr()[-2000:]  # once per 10 s, not per request
        assert "let through" in warned[0], warned
        rd.restart()
        # the shard's client dials again; the bucket starts full (Redis kept nothing)
        deadline = time.monotonic() + 10
        while True:
            st, h, _ = s.call("/api/ping")
            if "ratelimit" in h or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert st == 200 and "ratelimit" in h, (st, h, s.stderr()[-1500:])
        # the other shard's client dials again once its backoff (2 s at
        # most) is over; then every request is limited again, from a fresh
        # bucket (127.0.0.2's, untouched so far)
        time.sleep(2.5)
        got = [s.call("/api/ping", source="127.0.0.2") for _ in range(10)]
        assert [st for st, _, _ in got] == [200] * 3 + [429] * 7, got
        assert all(h["ratelimit"].startswith('"down";r=') for _, h, _ in got), got
    finally:
        if s:
            s.stop()
        rd.stop()


def slow_redis_times_out():
    rd = OwnRedis()
    s = None
    try:
        s = Server(RL_RATE="100", RL_BURST="100", RL_NAME="slow", RL_REDIS_TIMEOUT_MS="150",
                   RL_REDIS_URL=rd.url + "/0", WEAVE_SHARDS="1")
        assert s.call("/api/ping")[0] == 200  # the client is open
        sleeper = subprocess.Popen(["redis-cli", "-u", rd.url, "DEBUG", "SLEEP", "2"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        t0 = time.monotonic()
        st, h, _ = s.call("/api/ping")
        took = time.monotonic() - t0
        sleeper.wait(10)
        assert st == 200 and "ratelimit" not in h, (st, h)
        assert took < 1.0, took  # 150 ms, not Redis's 2 s
        assert s.metric("weave_ratelimit_requests_total", limiter="slow", result="error") == 1
    finally:
        if s:
            s.stop()
        rd.stop()


def fail_closed_answers_503():
    s = Server(RL_RATE="5", RL_NAME="closed", RL_FAIL_CLOSED="1",
               RL_REDIS_URL="redis://127.0.0.1:%d/0" % free_port())
    try:
        for _ in range(3):
            st, h, body = s.call("/api/ping")
            assert st == 503 and h["retry-after"] == "1", (st, h)
            assert json.loads(body) == {"detail": "Rate limiter unavailable"}
        assert s.call("/free/ping")[0] == 200
        assert s.metric("weave_ratelimit_requests_total", limiter="closed", result="error") == 3
        assert "refused (503)" in s.stderr(), s.stderr()
    finally:
        s.stop()


def bad_options_refused():
    p = subprocess.run([BIN], env=dict(os.environ, PORT="0", RL_RATE="0"), capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 2 and "rate must be above 0" in p.stderr, (p.returncode, p.stderr)


def main():
    if not os.path.exists(BIN):
        print("no %s (set BUILD_DIR)" % BIN)
        sys.exit(1)
    only = sys.argv[1:]
    cases = [
        ("burst_counted_once_across_shards",
         with_server(burst_counted_once_across_shards, RL_RATE="0.2", RL_BURST="5")),
        ("refills_at_the_rate", with_server(refills_at_the_rate, RL_RATE="10", RL_BURST="2")),
        ("api_keys", with_server(api_keys, RL_RATE="0.1", RL_BURST="3", RL_KEY="header",
                                 RL_HEADER="X-API-Key")),
        ("forwarded_behind_one_proxy",
         with_server(forwarded_behind_one_proxy, RL_RATE="0.1", RL_BURST="2", RL_HOPS="1")),
        ("key_function_exempts",
         with_server(key_function_exempts, RL_RATE="0.1", RL_BURST="2", RL_KEY="fn")),
        ("legacy_fields",
         with_server(legacy_fields, RL_RATE="2", RL_BURST="2", RL_HEADERS="legacy")),
        ("no_fields", with_server(no_fields, RL_RATE="1", RL_BURST="1", RL_HEADERS="none")),
        ("two_processes_share_one_redis_bucket", two_processes_share_one_redis_bucket),
        ("redis_api_keys_are_hashed", redis_api_keys_are_hashed),
        ("limiter_freed_after_the_runtime", limiter_freed_after_the_runtime),
        ("redis_killed_fails_open", redis_killed_fails_open),
        ("slow_redis_times_out", slow_redis_times_out),
        ("fail_closed_answers_503", fail_closed_answers_503),
        ("bad_options_refused", bad_options_refused),
    ]
    for name, fn in cases:
        if not only or any(o in name for o in only):
            case(name, fn)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
