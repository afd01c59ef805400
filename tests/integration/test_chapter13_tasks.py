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
    def __init__(self, env=None, args=(), delay_ms=1000):
        self.dir = tempfile.mkdtemp(prefix="weave-c13t-", dir=DIR)
        full = {"TASKS_URL": URL}
        full.update(env or {})
        self.proc, self.port = start(self.dir, delay_ms, args=(
            "--database-url", "sqlite::memory:", "--files-dir", self.dir) + tuple(args), env=full)

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
        for body, field in (({"x": "2", "y": 3}, "x"), ({"x": 2}, "y"),
                            ({"x": 1, "y": 2, "task": "rm"}, "task")):
            st, doc = s.post(body)
            eq((st, doc["detail"][0]["loc"]), (422, ["body", field]), "422 for %r" % body)
        st, _, data = req(s.port, "POST", "/tasks/add", b"{nope",
                          {"Content-Type": "application/json"})
        eq(st, 422, "not JSON")
        st, doc = s.get("0b1e3a1e-0000-4000-8000-000000000000")
        eq((st, doc["state"]), (200, "PENDING"), "an unknown id is PENDING, as in Celery")
    with Service(env={"TASKS_URL": ""}) as s:
        st, doc = s.post({"x": 1, "y": 2})
        eq(st, 503, "no task queue")
        check("TASKS_URL" in doc["detail"], doc)


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
    r = subprocess.run([BIN, "worker"], env=dict(os.environ, TASKS_URL=""), capture_output=True,
                       text=True, timeout=10)
    eq(r.returncode, 2, "no TASKS_URL: a usage error")
    check("TASKS_URL" in r.stderr, r.stderr)


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
