#!/usr/bin/python3
"""§13.8 in the chapter's service (examples/chapter13/s13_8_tasks.c) on a
throwaway redis-server (scripts/redis_test_server.sh): POST /tasks/add and
GET /tasks/{id} with the in-process worker (--worker): PENDING or STARTED,
then SUCCESS with 5 after the chapter's one-second wait; 200 tasks at once
finish together; 422 for bad bodies, 503 without TASKS_URL. Beside the
chapter's own Python tasks.py (examples/chapter13/tasks/) in a real Celery
5.2 worker: the service's POST runs in it, and Python's add.delay(2, 3)
and async_add.delay(2, 3) are answered by `chapter13 worker`, a process of
its own that exits 0 on SIGTERM after finishing what it runs.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
TASKS_DIR = os.path.join(ROOT, "examples", "chapter13", "tasks")

import httptest  # noqa: E402
from httptest import check, eq, free_port  # noqa: E402
from test_chapter13 import BIN, req, start, stop  # noqa: E402

CTL = os.path.join(ROOT, "scripts", "redis_test_server.sh")
DIR = tempfile.mkdtemp(prefix="weave-c13-tasks-")
URL = subprocess.run(["bash", CTL, "start", DIR + "/redis", str(free_port())], check=True,
                     capture_output=True, text=True, timeout=60).stdout.strip() + "/0"
os.environ["TASKS_URL"] = URL
sys.path.insert(0, TASKS_DIR)
import tasks as chapter_tasks  # noqa: E402 - the chapter's tasks.py, on URL

import redis  # noqa: E402
R = redis.Redis.from_url(URL)


class Service:
    def __init__(self, env=None, args=(), delay_ms=1000, db="sqlite::memory:"):
        self.dir = tempfile.mkdtemp(prefix="weave-c13t-", dir=DIR)
        full = {"TASKS_URL": URL}
        full.update(env or {})
        if db == "file":
            db = "sqlite://" + os.path.join(self.dir, "c13.db")
        self.proc, self.port = start(self.dir, delay_ms, args=(
            "--database-url", db, "--files-dir", self.dir) + tuple(args), env=full)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            stop(self.proc)
        elif self.proc.poll() is None:
            self.proc.kill()

    def post(self, body):
        st, _, data = req(self.port, "POST", "/tasks/add", json.dumps(body).encode(),
                          {"Content-Type": "application/json"})
        return st, json.loads(data)

    def get(self, tid):
        st, _, data = req(self.port, "GET", "/tasks/" + tid)
        return st, json.loads(data)

    def wait(self, tid, timeout=15):
        end = time.monotonic() + timeout
        while True:
            st, doc = self.get(tid)
            if doc.get("state") in ("SUCCESS", "FAILURE") or time.monotonic() > end:
                return st, doc
            time.sleep(0.05)


def python_worker():
    env = dict(os.environ, C_FORCE_ROOT="1", TASKS_URL=URL)
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-P", "solo",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "warning"],
        cwd=TASKS_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_post_and_get_a_task_run_by_the_in_process_worker():
    R.flushdb()
    with Service(args=("--worker",)) as s:
        t0 = time.monotonic()
        st, doc = s.post({"x": 2, "y": 3})
        eq((st, doc["task"], doc["state"]), (202, "tasks.async_add", "PENDING"), "POST")
        st, now = s.get(doc["id"])
        check(st == 200 and now["state"] in ("PENDING", "STARTED"), "at once: %r" % now)
        st, done = s.wait(doc["id"])
        eq((st, done), (200, {"id": doc["id"], "state": "SUCCESS", "result": 5}), "once done")
        check(time.monotonic() - t0 >= 1.0, "the chapter's one-second wait")
        st, doc = s.post({"x": 2.5, "y": 1, "task": "add"})
        eq(s.wait(doc["id"])[1]["result"], 3.5, "add, floats")
        # what a Python client reads
        eq(chapter_tasks.app.AsyncResult(doc["id"]).get(timeout=5), 3.5, "AsyncResult")


def test_two_hundred_tasks_wait_together():
    R.flushdb()
    with Service(args=("--worker",)) as s:
        t0 = time.monotonic()
        ids = [s.post({"x": i, "y": 1})[1]["id"] for i in range(200)]
        results = [s.wait(i, timeout=60)[1].get("result") for i in ids]
        took = time.monotonic() - t0
        eq(results, [i + 1 for i in range(200)], "every result")
        print("200 one-second tasks: %.2f s" % took)
        check(took < 30, "200 one-second tasks took %.1f s: not concurrent" % took)


def test_bad_input_and_no_queue():
    with Service(args=("--worker",)) as s:
        # FastAPI's lax float: {"x": "2"} is a number; "two" is not
        for body, field in (({"x": "two", "y": 3}, "x"), ({"x": 2}, "y"),
                            ({"x": 1, "y": 2, "task": "rm"}, "task")):
            st, doc = s.post(body)
            eq((st, doc["detail"][0]["loc"]), (422, ["body", field]), "422 for %r" % body)
        st, _, data = req(s.port, "POST", "/tasks/add", b"{nope",
                          {"Content-Type": "application/json"})
        eq((st, json.loads(data)["detail"][0]["type"]), (422, "json_invalid"), "not JSON")
        st, doc = s.get("0b1e3a1e-0000-4000-8000-000000000000")
        eq((st, doc["state"]), (200, "PENDING"), "an unknown id is PENDING, as in Celery")
    with Service(env={"TASKS_URL": ""}) as s:
        st, doc = s.post({"x": 1, "y": 2})
        eq(st, 503, "no task queue")
        check("TASKS_URL" in doc["detail"], doc)


def test_the_embedded_queue_in_the_services_database():
    """No TASKS_URL: the queue is a table in the service's SQLite file (what
    `make run` does), with the service's own worker."""
    with Service(env={"TASKS_URL": ""}, db="file") as s:
        t0 = time.monotonic()
        ids = [s.post({"x": i, "y": 3})[1]["id"] for i in range(20)]
        done = [s.wait(i, timeout=30)[1] for i in ids]
        eq([d["result"] for d in done], [i + 3 for i in range(20)], "every result")
        check(all(d["state"] == "SUCCESS" for d in done), "all SUCCESS")
        check(time.monotonic() - t0 >= 1.0, "after the one-second wait")
        st, doc = s.post({"x": 1, "y": 2, "task": "add"})
        eq(s.wait(doc["id"])[1]["result"], 3, "add")
        st, _, body = req(s.port, "GET", "/readyz")
        check(b"tasks" in body, "the queue in /readyz: %r" % body)


def test_the_chapters_python_worker_runs_what_the_service_sends():
    R.flushdb()
    p = python_worker()
    try:
        with Service() as s:  # no --worker: only Python's
            st, doc = s.post({"x": 2, "y": 3, "task": "add"})
            st, done = s.wait(doc["id"], timeout=30)
            eq(done["state"], "SUCCESS", "run by Python: %r" % done)
            eq(done["result"], 5, "tasks.add in Python")
    finally:
        p.terminate()
        p.wait(timeout=20)


def test_chapter13_worker_answers_pythons_delay():
    R.flushdb()
    w = subprocess.Popen([BIN, "worker"], env=dict(os.environ, TASKS_URL=URL, SHARDS="2"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eq(chapter_tasks.add.delay(2, 3).get(timeout=15), 5, "add.delay(2, 3).get()")
        t0 = time.monotonic()
        r = chapter_tasks.async_add.delay(2, 3)
        eq(r.get(timeout=15), 5, "async_add: 5 after the delay")
        check(time.monotonic() - t0 >= 1.0, "after the one-second wait")
        # SIGTERM with a task running: it finishes, then the worker exits 0
        r = chapter_tasks.async_add.delay(20, 22)
        time.sleep(0.3)
        w.send_signal(signal.SIGTERM)
        eq(w.wait(timeout=20), 0, "exit status")
        eq(r.get(timeout=5), 42, "the running task finished: warm shutdown")
        err = w.stderr.read()
        for bad in httptest.SANITIZER_MARKERS:
            check(bad not in err, err[-2000:])
    finally:
        if w.poll() is None:
            w.kill()
    r = subprocess.run([BIN, "worker"], env=dict(os.environ, WORKER_CONCURRENCY="0"),
                       capture_output=True, text=True, timeout=10)
    eq(r.returncode, 2, "a bad WORKER_CONCURRENCY: a usage error")
    check("WORKER_CONCURRENCY" in r.stderr, r.stderr)


def amqp_url():
    """The node scripts/test.sh started, in its second virtual host."""
    base = os.environ.get("WEAVE_TEST_AMQP_URL")
    assert base, "no WEAVE_TEST_AMQP_URL: scripts/test.sh starts RabbitMQ and sets it"
    host = base.split("@", 1)[1].split("/", 1)[0]
    return "amqp://weave:weave-secret@%s/weave%%2Ftest" % host


def test_on_rabbitmq_13_8_2():
    """§13.8.2's configuration, Celery on RabbitMQ with the RPC backend:
    Python's add.delay(2, 3).get() answered by `chapter13 worker`, and the
    service's POST /tasks/add run by its own worker, read back through a
    Redis result backend (GET cannot read RPC results: 501)."""
    from celery import Celery
    url = amqp_url()
    papp = Celery("tasks", broker=url, backend="rpc://")
    w = subprocess.Popen([BIN, "worker"], env=dict(os.environ, TASKS_URL=url, SHARDS="1"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        eq(papp.send_task("tasks.add", (2, 3)).get(timeout=20), 5, "add.delay(2, 3) on RabbitMQ")
        t0 = time.monotonic()
        eq(papp.send_task("tasks.async_add", (2, 3)).get(timeout=20), 5, "async_add")
        check(time.monotonic() - t0 >= 1.0, "after the one-second wait")
    finally:
        w.send_signal(signal.SIGTERM)
        eq(w.wait(timeout=20), 0, "the worker's exit status")
    with Service(env={"TASKS_URL": url, "TASKS_BACKEND": URL}, args=("--worker",)) as s:
        st, doc = s.post({"x": 2, "y": 3})
        eq(st, 202, "POST on RabbitMQ")
        st, done = s.wait(doc["id"], timeout=20)
        eq((done["state"], done.get("result")), ("SUCCESS", 5), "through RabbitMQ")
    with Service(env={"TASKS_URL": url, "TASKS_BACKEND": ""}) as s:
        st, doc = s.post({"x": 1, "y": 1, "task": "add"})
        eq(st, 202, "POST with the RPC backend")
        st, got = s.get(doc["id"])
        eq(st, 501, "GET cannot read an RPC result: %r" % got)
    # the task the last service sent, with nobody left to run it
    papp.connection_for_write().default_channel.queue_purge("celery")
    KEEP.append(papp)


KEEP = []


if __name__ == "__main__":
    code = 1
    try:
        httptest.run(globals())
    except SystemExit as e:
        code = e.code
    finally:
        subprocess.run(["bash", CTL, "stop", DIR + "/redis"], capture_output=True)
        shutil.rmtree(DIR, ignore_errors=True)
    sys.stdout.flush()
    os._exit(code)
