#!/usr/bin/python3
"""Capture Celery's wire format for tests/unit/test_celery.c.

Runs Python Celery 5.2.6 + kombu 5.2.4 (Debian's python3-celery, on
/usr/bin/python3) against a throwaway redis-server on a free loopback port
and writes what they put in Redis, unchanged, into this directory:

  task_*.json     kombu's Redis envelopes as LPUSHed on the "celery" list
                  (Task.apply_async with no worker running, so they stay)
  result_*.json   result meta a real worker (celery worker -P solo) stored
                  at celery-task-meta-<id>: SUCCESS, FAILURE, RETRY, STARTED

Regenerate (needs redis-server and python3-celery; scripts/deps.sh test):

  /usr/bin/python3 tests/unit/celery_fixtures/capture.py

Ids, delivery tags, dates and the worker's pid and host name change on every
run; the tests read them from the files, so a regenerated set passes as is.
This file is also the worker's app module (-A capture).
"""
import json
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone

from celery import Celery, chain

HERE = os.path.dirname(os.path.abspath(__file__))
URL = os.environ.get("CAPTURE_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("capture", broker=URL, backend=URL)
app.conf.task_track_started = True
app.conf.worker_hijack_root_logger = False


@app.task
def add(x, y=0):
    return x + y


@app.task
def echo(*args, **kwargs):
    return [args, kwargs]


@app.task
def fail(what):
    raise ValueError(what)


@app.task(bind=True)
def again(self):
    # a countdown of an hour: the RETRY meta stays while the capture reads it
    raise self.retry(exc=KeyError("later"), countdown=3600, max_retries=3)


@app.task
def slow():
    time.sleep(4)
    return "done"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(name, text):
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        f.write(text)
        f.write("\n")


def capture_tasks(r):
    sends = [
        ("task_add.json", lambda: add.apply_async((2, 3))),
        ("task_countdown.json", lambda: add.apply_async((2, 3), countdown=10)),
        ("task_eta.json", lambda: add.apply_async(
            (2, 3), eta=datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=timezone.utc))),
        ("task_expires.json", lambda: add.apply_async((2, 3), expires=60)),
        ("task_kwargs.json", lambda: add.apply_async(kwargs={"x": 2, "y": 3})),
        ("task_list_args.json", lambda: add.apply_async([2, 3])),
        ("task_unicode.json", lambda: echo.apply_async(
            ("h\u00e9llo \u2713 \U0001F600 'single' \"double\" back\\slash\nnewline\ttab",),
            {"cl\u00e9": "\u65e5\u672c"})),
        ("task_values.json", lambda: echo.apply_async(
            ([1, -2.5, 1e300, 0.1, None, True, False, [], {}],
             {"deep": [1, [2, [3, [4]]]], "x": {"y": {"z": {"w": 1}}}}),
            {"n": None, "f": 3.0, "big": 12345678901234567890})),
        ("task_long.json", lambda: echo.apply_async(("word " * 300, "tail"))),
        ("task_link.json", lambda: add.apply_async(
            (2, 3), link=add.s(10), link_error=echo.si("failed"))),
        ("task_chain.json", lambda: chain(add.s(2, 3), add.s(4), add.s(5)).apply_async()),
        ("task_options.json", lambda: add.apply_async(
            (2, 3), retries=2, time_limit=30, soft_time_limit=20, ignore_result=True,
            shadow="add-shadow")),
    ]
    for name, send in sends:
        r.delete("celery")
        send()
        items = r.lrange("celery", 0, -1)
        assert len(items) == 1, (name, items, r.keys("*"))
        write(name, items[0].decode("utf-8"))
    r.delete("celery")


def wait_meta(r, task_id, status, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        raw = r.get("celery-task-meta-" + task_id)
        if raw is not None and json.loads(raw)["status"] == status:
            return raw.decode("utf-8")
        time.sleep(0.05)
    raise SystemExit(f"no {status} result for {task_id}")


def capture_results(r, port):
    env = dict(os.environ, CAPTURE_REDIS_URL=URL, PYTHONPATH=HERE)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "capture", "worker", "-P", "solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning",
         "-n", "capture@weave"],
        cwd=HERE, env=env)
    try:
        ok = add.apply_async((2, 3))
        write("result_success.json", wait_meta(r, ok.id, "SUCCESS"))
        bad = fail.apply_async(("bad 'value' \u00e9",))
        write("result_failure.json", wait_meta(r, bad.id, "FAILURE"))
        retry = again.apply_async()
        write("result_retry.json", wait_meta(r, retry.id, "RETRY"))
        started = slow.apply_async()
        write("result_started.json", wait_meta(r, started.id, "STARTED"))
        wait_meta(r, started.id, "SUCCESS")
    finally:
        worker.terminate()
        worker.wait(30)


def main():
    global URL
    import redis

    port = free_port()
    URL = f"redis://127.0.0.1:{port}/0"
    app.conf.broker_url = URL
    app.conf.result_backend = URL
    subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--daemonize", "yes",
                    "--pidfile", f"/tmp/capture-redis-{port}.pid"], check=True)
    r = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        capture_tasks(r)
        capture_results(r, port)
    finally:
        r.shutdown(nosave=True)


if __name__ == "__main__":
    main()
