"""One deadline across services, and load shedding, on real processes.

The chain: A -> B -> C, three weave services (deadline_chain_server), C
sleeping in PostgreSQL (SELECT pg_sleep(5) on WEAVE_TEST_PG_URL). A caller
that will wait 500 ms (X-Request-Timeout-Ms: 500) gets A's 504 within about
that, not the 5 s of the sleep, and its detail names the dependency that
used the time; B and C were sent ever smaller budgets (C's < B's < 500);
C's statement was cancelled on the server (gone from pg_stat_activity
within a second, weave_pg_cancels_total up by one) and every service keeps
serving: a normal request through the chain answers 200 at once. C alone,
given 300 ms, says "postgres: SELECT timed out: the deadline passed after
... ms (cancelled on the server)".

Load shedding: a server with MAX_IN_FLIGHT=8 on one shard, flooded with 50
concurrent slow requests: exactly 8 are served, the 42 others get 503 with
Retry-After: 1 and the overloaded detail at once, none waits past its
deadline, weave_http_shed_total{reason="in_flight"} says 42, /healthz and
/metrics answer during the flood, and the server serves normally after it.
A bad --max-in-flight stops the start with status 2."""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "deadline_chain_server")

passed = 0
failed = 0


def case(name, fn, *args):
    global passed, failed
    try:
        fn(*args)
        passed += 1
        print("ok   %s" % name)
    except Exception as e:  # noqa: BLE001 - report and go on
        failed += 1
        print("FAIL %s: %r" % (name, e))


def start(**env):
    e = dict(os.environ, SHARDS="1", LOG_LEVEL="warn")
    e.update({k: str(v) for k, v in env.items()})
    proc = subprocess.Popen([BIN, "--port", "0"], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("did not start: %s" % proc.stderr.read())
        if line.startswith("listening on http://127.0.0.1:"):
            return proc, int(line.rsplit(":", 1)[1])


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=15)
    err = proc.stderr.read()
    assert rc == 0, (rc, err)
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in err, err


def get(port, path, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.monotonic()
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    took = time.monotonic() - t0
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body, took


def sample(port, name, **labels):
    """A sample of the server's /metrics with exactly these labels (0 when absent)."""
    st, _, body, _ = get(port, "/metrics")
    assert st == 200, st
    for line in body.decode().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, value = line.rsplit(" ", 1)
        if dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', head[len(name):])) == labels:
            return float(value)
    return 0.0


def seen(port):
    st, _, body, _ = get(port, "/seen")
    assert st == 200, st
    return json.loads(body)


def sleeping_statements(url):
    """Statements of other sessions running pg_sleep on the server now."""
    out = subprocess.run(
        ["psql", url, "-Atc",
         "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
         "AND pid <> pg_backend_pid() AND query LIKE 'SELECT 1 FROM pg_sleep%'"],
        capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


# ------------------------------------------------------------ the chain

def chain(pg_url):
    c, cport = start(DATABASE_URL=pg_url)
    procs = [c]
    try:
        b, bport = start(DOWNSTREAM_URL="http://127.0.0.1:%d/hop" % cport)
        procs.append(b)
        a, aport = start(DOWNSTREAM_URL="http://127.0.0.1:%d/hop" % bport)
        procs.append(a)
        # through the chain without a deadline: 200 (and C's pool is open)
        st, _, body, _ = get(aport, "/hop?sleep_ms=0")
        assert (st, json.loads(body)) == (200, {"hop": "end"}), (st, body)
        nb, nc = len(seen(bport)), len(seen(cport))
        cancels = sample(cport, "weave_pg_cancels_total", db="default")

        st, h, body, took = get(aport, "/hop", {"X-Request-Timeout-Ms": "500"})
        assert st == 504, (st, body)
        assert 0.45 <= took < 2.0, "A answered after %.3f s, not within the 500 ms" % took
        detail = json.loads(body)["detail"]
        # the time ran out in C's statement; whichever hop saw it first
        # names what it was waiting on
        names = ("postgres: SELECT timed out: the deadline passed after",
                 "GET http://127.0.0.1:%d/hop: the deadline passed after" % bport,
                 "GET http://127.0.0.1:%d/hop: the deadline passed after" % cport)
        assert detail.startswith(names), detail
        assert h.get("content-type") == "application/json", h
        assert h.get("server-timing") == "deadline;dur=500", h

        got_b, got_c = seen(bport)[nb:], seen(cport)[nc:]
        assert len(got_b) == 1 and len(got_c) == 1, (got_b, got_c)
        assert 0 < got_c[0] < got_b[0] < 500, "budgets: B %r, C %r" % (got_b, got_c)

        # C's statement was cancelled on the server, not left to sleep 5 s
        deadline = time.monotonic() + 1.0
        while sleeping_statements(pg_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sleeping_statements(pg_url) == 0, "pg_sleep still running a second later"
        deadline = time.monotonic() + 2.0
        while (sample(cport, "weave_pg_cancels_total", db="default") < cancels + 1
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert sample(cport, "weave_pg_cancels_total", db="default") == cancels + 1

        # and everything keeps serving: C's connection too, at once
        st, _, body, took = get(aport, "/hop?sleep_ms=0")
        assert (st, json.loads(body)) == (200, {"hop": "end"}), (st, body)
        assert took < 1.0, took
        for port in (aport, bport, cport):
            st, _, _, _ = get(port, "/healthz")
            assert st == 200, (port, st)

        # C alone says what used its time, and a budget that is not a number is 400
        st, _, body, took = get(cport, "/hop", {"X-Request-Timeout-Ms": "300"})
        assert st == 504 and took < 1.5, (st, body, took)
        detail = json.loads(body)["detail"]
        assert re.fullmatch(r"postgres: SELECT timed out: the deadline passed after \d+ ms "
                            r"\(cancelled on the server\)", detail), detail
        # a budget above the server's cap (60 s) is taken as the cap, and said so
        st, h, _, _ = get(cport, "/hop?sleep_ms=0", {"X-Request-Timeout-Ms": "999999"})
        assert st == 200 and h.get("server-timing") == "deadline;dur=60000", (st, h)
        st, h, _, _ = get(cport, "/hop?sleep_ms=0")
        assert st == 200 and "server-timing" not in h, h
        st, _, body, _ = get(aport, "/hop", {"X-Request-Timeout-Ms": "soon"})
        assert st == 400 and b"X-Request-Timeout-Ms" in body, (st, body)
    finally:
        for p in reversed(procs):
            stop(p)


def chain_without_database():
    """The same chain with C sleeping itself: the 504 still comes in time
    and a budget of 0 is refused without running anything."""
    c, cport = start()
    procs = [c]
    try:
        b, bport = start(DOWNSTREAM_URL="http://127.0.0.1:%d/hop" % cport)
        procs.append(b)
        st, _, body, took = get(bport, "/hop?sleep_ms=3000", {"X-Request-Timeout-Ms": "400"})
        assert st == 504 and 0.35 <= took < 2.0, (st, body, took)
        got = seen(cport)
        assert len(got) == 1 and 0 < got[0] < 400, got
        st, _, body, took = get(bport, "/hop", {"X-Request-Timeout-Ms": "0"})
        assert st == 504 and took < 1.0, (st, body)
        assert len(seen(bport)) == 1, "a budget of 0 ran the handler"
    finally:
        for p in reversed(procs):
            stop(p)


# ------------------------------------------------------------ shedding

def flood():
    proc, port = start(MAX_IN_FLIGHT=8)
    try:
        assert sample(port, "weave_http_shed_total", reason="in_flight") == 0
        n = 50
        results = [None] * n
        go = threading.Barrier(n)

        def one(i):
            go.wait()
            try:
                results[i] = get(port, "/slow?ms=1500", {"X-Request-Timeout-Ms": "5000"})
            except Exception as e:  # noqa: BLE001
                results[i] = e

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        # probes and scrapes are never shed
        st, _, _, took = get(port, "/healthz")
        assert st == 200 and took < 1.0, (st, took)
        st, _, _, _ = get(port, "/metrics")
        assert st == 200, st
        for t in threads:
            t.join(timeout=30)
        errors = [r for r in results if not isinstance(r, tuple)]
        assert not errors, errors
        ok = [r for r in results if r[0] == 200]
        shed = [r for r in results if r[0] == 503]
        assert len(ok) == 8 and len(shed) == 42, sorted(r[0] for r in results)
        for st, h, body, took in shed:
            assert h.get("retry-after") == "1", h
            assert json.loads(body) == {"detail": "Service Unavailable: overloaded"}, body
            assert took < 1.0, "a refusal took %.3f s" % took
        for st, h, body, took in ok:
            assert 1.4 <= took < 5.0, took
        assert max(r[3] for r in results) < 5.0, "a request waited past its deadline"
        assert sample(port, "weave_http_shed_total", reason="in_flight") == 42
        assert sample(port, "weave_http_shed_total", reason="loop_lag") == 0
        # after the flood: served, and the whole bound is free again
        st, _, _, _ = get(port, "/slow?ms=10")
        assert st == 200, st
        again = [None] * 8

        def slow(i):
            again[i] = get(port, "/slow?ms=200")[0]

        threads = [threading.Thread(target=slow, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert again == [200] * 8, again
        assert sample(port, "weave_http_shed_total", reason="in_flight") == 42
    finally:
        stop(proc)


def bad_limit_stops_the_start():
    out = subprocess.run([BIN, "--port", "0", "--max-in-flight", "-3"], capture_output=True,
                         text=True, timeout=10)
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "--max-in-flight=-3" in out.stderr and "negative" in out.stderr, out.stderr
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10)
    assert "--max-in-flight N" in out.stdout and "MAX_LOOP_LAG_MS" in out.stdout, out.stdout


def main():
    global failed
    url = os.environ.get("WEAVE_TEST_PG_URL")
    if url:
        case("chain_of_three_with_postgres", chain, url)
    else:
        failed += 1
        print("FAIL chain_of_three_with_postgres: WEAVE_TEST_PG_URL is not set (make test "
              "starts PostgreSQL: scripts/pg_test_server.sh)")
    case("chain_without_database", chain_without_database)
    case("flood_past_max_in_flight", flood)
    case("bad_limit_stops_the_start", bad_limit_stops_the_start)
    print("test_deadline_chain: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
