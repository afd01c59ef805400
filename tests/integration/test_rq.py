#!/usr/bin/python3
"""weave's RQ producer (include/weave/rq.h) beside real Python RQ 1.13
(Debian's python3-rq on /usr/bin/python3) on one throwaway redis-server 7
(scripts/redis_test_server.sh, a free port).

weave's side is tests/integration/rq_peer.c. Checked: jobs C enqueued run
in a Python RQ worker (rq worker --burst), and C reads back their status
(finished, failed) and results; Python's Job.fetch sees the call C wrote
(function, args, kwargs, description, meta, timeouts) and its
return_value(), .result and get_status(); the job hash C writes has
Python's fields in Python's order and the same `data` bytes Python writes
for the same call; non-ASCII strings, ints at the ends of int64, floats and
nested dicts and lists round trip; a failure reads as the Python exception;
results that are not plain (a datetime, an int past int64, bytes) are
-ENOTSUP, not a crash; at_front, ttl, result_ttl=0, a cancelled job, a
missing job and the deadline; results in the job hash as older RQ keeps
them; a client over a Redis client the caller keeps.

This file is also the worker's module of job functions (test_rq.add, ...).
"""
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def add(x, y):
    return x + y


def echo(*args, **kwargs):
    return {"args": list(args), "kwargs": kwargs}


def same(value):
    return value


def fail(what):
    raise ValueError(what)


def when():
    return datetime.datetime(2026, 12, 8, 1, 2, 3)


def huge():
    return 2 ** 70


def raw():
    return b"\x00bytes"


def pair():
    return (1, "two")


def nothing():
    return None


def my_meta():
    from rq import get_current_job
    return get_current_job().meta


if __name__ == "__main__":
    import httptest  # noqa: E402 - the integration tests' runner
    from httptest import check, eq  # noqa: E402
    import redis  # noqa: E402
    from rq import Queue  # noqa: E402
    from rq.job import Job  # noqa: E402

    BUILD = os.environ.get("BUILD_DIR", "build/release")
    PEER = os.path.abspath(os.path.join(BUILD, "rq_peer"))
    REDIS = httptest.RedisServer("weave-rq-it-")
    URL = REDIS.url
    R = redis.Redis.from_url(URL)

    def peer(*args, timeout=30):
        p = subprocess.run([PEER, *args], capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, RQ_URL=URL))
        for bad in httptest.SANITIZER_MARKERS:
            check(bad not in p.stderr, p.stderr[-3000:])
        return p.returncode, p.stdout.strip(), p.stderr.strip()

    def enqueue(func, args, *opts):
        rc, jid, err = peer("enqueue", func, args, *opts)
        eq(rc, 0, err)
        return jid

    def burst(*queues):
        """A Python worker that runs every job queued now, then exits."""
        p = subprocess.run(
            [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", URL,
             "-w", "rq.worker.SimpleWorker", *(queues or ("default",))],
            cwd=HERE, env=dict(os.environ, PYTHONPATH=HERE), capture_output=True, text=True,
            timeout=120)
        eq(p.returncode, 0, "rq worker: " + p.stdout[-2000:] + p.stderr[-2000:])
        return p.stderr + p.stdout

    NESTED = {
        "name": "h\u00e9llo w\u00f6rld \u65e5\u672c \U0001f600",
        "ints": [0, 1, -1, 255, 256, 65535, 65536, 2 ** 31 - 1, -2 ** 31, 2 ** 31,
                 2 ** 63 - 1, -2 ** 63],
        "floats": [0.5, -0.0, 3.141592653589793, 1e-07, 2.0, 1e15, 6.02e23],
        "nested": {"list": [[], [[]], {}, {"a": {"b": [None, True, False]}}], "": "empty"},
        "quotes": "it's \"quoted\" \\ and\nnew\tline",
        "long": "x" * 1000,
    }

    def test_c_jobs_run_in_python_worker():
        a = enqueue("test_rq.add", "[2, 3]")
        b = enqueue("test_rq.echo", json.dumps([NESTED, "\u00fc"]),
                    "kwargs=" + json.dumps({"k\u00e9y": [1.5, {"x": None}], "z": 2 ** 62}))
        c = enqueue("test_rq.fail", '["boom \u00e9"]')
        d = enqueue("test_rq.nothing", "[]")
        eq(peer("status", a)[1], "queued", "status before the worker")
        burst()
        eq(peer("status", a)[1], "finished", "C reads finished")
        eq(peer("status", c)[1], "failed", "C reads failed")
        eq(peer("result", a)[1], "5", "C reads add's result")
        rc, out, err = peer("result", b)
        eq(rc, 0, err)
        eq(json.loads(out), {"args": [NESTED, "\u00fc"],
                             "kwargs": {"k\u00e9y": [1.5, {"x": None}], "z": 2 ** 62}},
           "nested JSON round trip through Python")
        rc, out, err = peer("result", c)
        eq((rc, err), (1, "EREMOTEIO: ValueError: boom \u00e9"), "the failure as Python raised it")
        eq(peer("result", d)[1], "null", "None")
        # and Python reads the same
        ja = Job.fetch(a, connection=R)
        eq(ja.get_status(), "finished", "Python get_status")
        eq(ja.return_value(), 5, "Python return_value()")
        eq(Job.fetch(b, connection=R).result["args"][0], NESTED, "Python .result")
        jc = Job.fetch(c, connection=R)
        eq(jc.get_status(), "failed", "Python sees failed")
        check("ValueError: boom" in jc.latest_result().exc_string, "Python's traceback")
        check(R.exists("rq:results:" + a), "results in the stream (Redis 7)")
        check(not R.hexists("rq:job:" + a, "result"), "not in the job hash")

    def test_python_reads_the_call_c_wrote():
        jid = enqueue("test_rq.echo", json.dumps([1, "two", [3.5]]),
                      "kwargs=" + json.dumps({"b": True, "a": None}), "timeout=42",
                      "result_ttl=77", "failure_ttl=88", "ttl=600",
                      "meta=" + json.dumps({"owner": "c", "n": 1}), "queue=q1")
        j = Job.fetch(jid, connection=R)
        eq(j.func_name, "test_rq.echo", "func_name")
        eq(j.args, (1, "two", [3.5]), "args: a tuple")
        eq(j.kwargs, {"b": True, "a": None}, "kwargs")
        eq(j.description, "test_rq.echo(1, 'two', [3.5], a=None, b=True)", "RQ's call string")
        eq(j.origin, "q1", "origin")
        eq((j.timeout, j.result_ttl, j.failure_ttl, j.ttl), (42, 77, 88, 600), "times")
        eq(j.meta, {"owner": "c", "n": 1}, "meta")
        eq(j.get_status(), "queued", "queued")
        check(595 <= R.ttl("rq:job:" + jid) <= 600, "ttl: EXPIRE on the job")
        eq(Queue("q1", connection=R).job_ids, [jid], "on rq:queue:q1")
        check(R.sismember("rq:queues", "rq:queue:q1"), "queue registered in rq:queues")
        burst("q1")
        eq(peer("result", jid)[1],
           json.dumps({"args": [1, "two", [3.5]], "kwargs": {"b": True, "a": None}},
                      separators=(",", ":")), "result")
        m = enqueue("test_rq.my_meta", "[]", "meta=" + json.dumps({"who": "\u00e9"}))
        burst()
        eq(peer("result", m)[1], '{"who":"\u00e9"}', "the worker saw C's meta")

    def test_job_hash_is_what_python_writes():
        args_text = json.dumps([NESTED, 7, "a", "a", ""])
        kwargs_text = json.dumps({"a": "", "key": {"key": "a"}, "x\u00e9": [2 ** 40, -3]})
        cid = enqueue("test_rq.echo", args_text, "kwargs=" + kwargs_text, "queue=cmp",
                      "ttl=900", "result_ttl=60")
        pid = Queue("cmp", connection=R).enqueue_call(
            "test_rq.echo", args=tuple(json.loads(args_text)), kwargs=json.loads(kwargs_text),
            ttl=900, result_ttl=60).id
        c, p = R.hgetall("rq:job:" + cid), R.hgetall("rq:job:" + pid)
        eq(list(c), list(p), "the same fields in the same order")
        for f in c:
            if f not in (b"created_at", b"enqueued_at"):
                eq(c[f], p[f], "field %s" % f.decode())
        for f in (b"created_at", b"enqueued_at"):
            datetime.datetime.strptime(c[f].decode(), "%Y-%m-%dT%H:%M:%S.%fZ")
        eq(R.ttl("rq:job:" + cid) > 890, True, "ttl")
        eq(R.lrange("rq:queue:cmp", 0, -1), [cid.encode(), pid.encode()], "RPUSH order")
        front = enqueue("test_rq.add", "[1, 1]", "queue=cmp", "at_front=1")
        eq(R.lindex("rq:queue:cmp", 0), front.encode(), "at_front: LPUSH")
        # descriptions: repr of every plain type, cut at 75 characters
        for args in ([1.5, -0.0, 1e16, 1e-05, 0.0001, 123456789.125],
                     ["it's", 'say "hi"', "both ' \"", "\\", "\u00e9\u00a0\u200b\x7f\U0001f600"],
                     ["y" * 100, [list(range(40))], {"k": "v" * 80}]):
            cid = enqueue("test_rq.same", json.dumps(args), "queue=descr")
            pj = Queue("descr", connection=R).enqueue_call("test_rq.same", args=tuple(args))
            eq(Job.fetch(cid, connection=R).description, pj.description, "description")
        kw = {"z\u00e9": [1, "x" * 90], "a": {"k": None}, "a_b": True, "A": 1.25}
        cid = enqueue("test_rq.echo", "[]", "queue=descr", "kwargs=" + json.dumps(kw))
        pj = Queue("descr", connection=R).enqueue_call("test_rq.echo", kwargs=kw)
        eq(Job.fetch(cid, connection=R).description, pj.description, "keyword arguments sorted")

    def test_results_that_are_not_plain():
        q = Queue(connection=R)
        jobs = {f: q.enqueue("test_rq." + f).id for f in ("when", "huge", "raw", "pair")}
        burst()
        rc, out, err = peer("result", jobs["when"])
        eq((rc, err), (1, "ENOTSUP: pickle: datetime.datetime is not a plain type"), "datetime")
        rc, out, err = peer("result", jobs["huge"])
        eq((rc, err), (1, "ENOTSUP: pickle: an int beyond int64"), "2 ** 70")
        rc, out, err = peer("result", jobs["raw"])
        eq((rc, err), (1, "ENOTSUP: pickle: bytes are not a plain type"), "bytes")
        eq(peer("result", jobs["pair"])[1], '[1,"two"]', "a tuple reads as an array")
        eq(peer("status", jobs["when"])[1], "finished", "status of a non-plain result")

    def test_missing_cancelled_expired_and_deadline():
        rc, out, err = peer("status", "no-such-job")
        eq((rc, err.split(":")[0]), (1, "ENOENT"), "status of no job")
        rc, out, err = peer("result", "no-such-job")
        eq((rc, err.split(":")[0]), (1, "ENOENT"), "result of no job")
        jid = enqueue("test_rq.add", "[1, 2]", "queue=idle")
        t0 = time.monotonic()
        rc, out, err = peer("result", jid, "700")
        took = time.monotonic() - t0
        eq((rc, err.split(":")[0]), (1, "ETIMEDOUT"), "no worker: the deadline")
        check(0.6 < took < 3, "within the deadline (%.2f s)" % took)
        Job.fetch(jid, connection=R).cancel()
        rc, out, err = peer("result", jid)
        eq((rc, err.split(":")[0]), (1, "ECANCELED"), "cancelled")
        gone = enqueue("test_rq.add", "[1, 2]", "no_result=1")
        burst()
        rc, out, err = peer("result", gone)
        eq((rc, err.split(":")[0]), (1, "ENOENT"), "result_ttl=0: nothing kept")
        check(not R.exists("rq:job:" + gone), "the job is deleted")

    def test_result_waits_for_the_worker():
        jid = enqueue("test_rq.add", "[20, 22]")
        waiter = subprocess.Popen([PEER, "result", jid, "20000"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, RQ_URL=URL))
        time.sleep(1.5)
        check(waiter.poll() is None, "still waiting before the worker runs")
        t0 = time.monotonic()
        burst()
        out, err = waiter.communicate(timeout=30)
        eq((waiter.returncode, out.strip()), (0, "42"), err)
        check(time.monotonic() - t0 < 10, "woken by the result")

    def test_results_in_the_job_hash_as_older_rq_keeps_them():
        # RQ before 1.12, or on Redis before 5: `result` and `exc_info` in
        # the job's hash (Job.save with include_result), no stream
        import pickle
        import zlib
        ok = enqueue("test_rq.add", "[1, 1]", "queue=old")
        R.hset("rq:job:" + ok, mapping={
            "status": "finished", "result": pickle.dumps({"sum": 2, "t": (1, 1.5)}, protocol=5)})
        eq(peer("result", ok)[1], '{"sum":2,"t":[1,1.5]}', "result from the hash")
        none = enqueue("test_rq.add", "[1, 1]", "queue=old")
        R.hset("rq:job:" + none, "status", "finished")
        eq(peer("result", none)[1], "null", "None is not stored")
        bad = enqueue("test_rq.add", "[1, 1]", "queue=old")
        tb = "Traceback (most recent call last):\n  File \"x\"\nKeyError: 'k\u00e9y'\n"
        R.hset("rq:job:" + bad, mapping={
            "status": "failed", "exc_info": zlib.compress(tb.encode())})
        rc, out, err = peer("result", bad)
        eq((rc, err), (1, "EREMOTEIO: KeyError: 'k\u00e9y'"), "exc_info from the hash")

    def test_over_a_redis_client_the_caller_keeps():
        env = dict(os.environ, RQ_URL=URL, RQ_SHARED="1")
        p = subprocess.run([PEER, "enqueue", "test_rq.add", "[40, 2]"], capture_output=True,
                           text=True, timeout=30, env=env)
        eq(p.returncode, 0, p.stderr)
        jid = p.stdout.strip()
        burst()
        p = subprocess.run([PEER, "result", jid], capture_output=True, text=True, timeout=30,
                           env=env)
        eq((p.returncode, p.stdout.strip()), (0, "42"), p.stderr)

    def test_refused_arguments():
        for args, opts, want in (('{"a": 1}', [], "EINVAL"), ("[1e400]", [], "ERANGE"),
                                 ("[9223372036854775808]", [], "ERANGE"),
                                 ("[1]", ["kwargs=[1]"], "EINVAL"), ("[1]", ["ttl=-5"], "EINVAL"),
                                 ("[1", [], "EINVAL")):
            rc, out, err = peer("enqueue", "test_rq.same", args, *opts)
            eq((rc, err.split(":")[0]), (1, want), "refused: %s %s" % (args, opts))
        eq(R.llen("rq:queue:default"), 0, "nothing enqueued by a refusal")

    code = 1
    try:
        httptest.run(globals())
    except SystemExit as e:
        code = e.code
    finally:
        REDIS.stop()
    sys.stdout.flush()
    os._exit(code)
