#!/usr/bin/python3
"""weave's task queue in a database table (src/tasks/db.c) across
processes, on a throwaway PostgreSQL 15 (scripts/pg_test_server.sh, a free
port) and then on a SQLite file. weave's side is
tests/integration/tasks_outbox_peer.c; the checks read the tables with psql
and sqlite3.

Checked: with two worker processes on one queue, 1000 orders each enqueued
with their task in one transaction, half of them rolled back: exactly the
committed half runs, each task exactly once (the counts per worker are
printed), and no trace of the rolled-back ones is left; a worker SIGKILLed
mid-task has that task run again by the other once its lease (the
visibility timeout) expires, and the tasks enqueued meanwhile all run; a
task enqueued to idle workers is woken by NOTIFY at commit (the latency is
printed, not asserted: the poll fallback would also run it; on SQLite it is
the poll's).
"""
import datetime
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import httptest  # noqa: E402 - the integration tests' runner
from httptest import check, eq, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("BUILD_DIR", "build/release")
PEER = os.path.abspath(os.path.join(BUILD, "tasks_outbox_peer"))
CTL = os.path.join(ROOT, "scripts", "pg_test_server.sh")
DIR = tempfile.mkdtemp(prefix="weave-outbox-it-")
URL = None
VISIBILITY_MS = 2000


def query(sql):
    """sql's rows as psql -At prints them (columns joined by |)."""
    if URL.startswith("sqlite:"):
        cmd = ["sqlite3", "-batch", "-cmd", ".timeout 10000", URL[len("sqlite://"):], sql]
    else:
        cmd = ["psql", URL, "-v", "ON_ERROR_STOP=1", "-Atqc", sql]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    eq(p.returncode, 0, "%s: %s" % (sql, p.stderr))
    return p.stdout.strip()


def query_int(sql):
    return int(query(sql) or "0")


def lease_end_us(tid):
    """The end of task tid's lease, wall-clock microseconds."""
    if URL.startswith("sqlite:"):
        text = query("SELECT locked_until FROM weave_tasks WHERE id = '%s'" % tid)
        at = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
        return int(at.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000000)
    return query_int("SELECT (extract(epoch FROM locked_until) * 1000000)::bigint "
                     "FROM weave_tasks WHERE id = '%s'" % tid)


class Worker:
    """A worker process whose stdout lines arrive on a queue."""

    def __init__(self):
        self.p = subprocess.Popen([PEER, "worker", str(VISIBILITY_MS)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, TASKS_BROKER=URL))
        self.lines = queue.Queue()
        self.err = []
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.err.append),
                         daemon=True).start()
        eq(self.line(10), "ready", "worker banner: " + "".join(self.err)[-2000:])

    @staticmethod
    def _read(f, put):
        for line in f:
            put(line)

    def line(self, timeout):
        try:
            return self.lines.get(timeout=timeout).strip()
        except queue.Empty:
            return None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
        rc = self.p.wait(timeout=30)
        time.sleep(0.1)  # the reader threads drain
        err = "".join(self.err)
        for bad in httptest.SANITIZER_MARKERS:
            check(bad not in err, err[-3000:])
        eq(rc, 0, "worker exit status: " + err[-2000:])

    def kill(self):
        self.p.kill()
        self.p.wait()


def enqueue(n, sleep_ms=0):
    p = subprocess.run([PEER, "enqueue", str(n), str(sleep_ms)], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, TASKS_BROKER=URL))
    eq(p.returncode, 0, "enqueue: " + p.stderr[-2000:])
    committed, rolled_back = [], []
    for line in p.stdout.splitlines():
        what, tid = line.split()
        (committed if what == "commit" else rolled_back).append(tid)
    return committed, rolled_back


def wait_for(what, cond, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    check(False, "timed out waiting for " + what)


def reset():
    query("DROP TABLE IF EXISTS outbox_orders; DROP TABLE IF EXISTS outbox_runs; "
         "CREATE TABLE outbox_orders (note TEXT); "
         "CREATE TABLE outbox_runs (task_id TEXT, pid INTEGER, started_us BIGINT, "
         "latency_us BIGINT)")
    query("DELETE FROM weave_tasks")


def only_committed_tasks_run_each_once():
    a, b = Worker(), Worker()  # the first creates weave_tasks
    try:
        reset()
        committed, rolled_back = enqueue(1000)
        eq((len(committed), len(rolled_back)), (500, 500), "transactions committed / rolled back")
        eq(query_int("SELECT count(*) FROM outbox_orders"), 500, "orders kept")
        wait_for("500 runs", lambda: query_int("SELECT count(*) FROM outbox_runs") >= 500)
        wait_for("500 acks", lambda: query_int(
            "SELECT count(*) FROM weave_tasks WHERE run_at IS NULL") >= 500, 30)
        runs = query("SELECT task_id, count(*) FROM outbox_runs GROUP BY task_id").splitlines()
        counts = dict(line.split("|") for line in runs)
        eq(sorted(counts), sorted(committed), "the tasks that ran are the committed ones")
        eq(set(counts.values()), {"1"}, "each ran once")
        eq(query_int("SELECT count(*) FROM weave_tasks"), 500, "rows: the committed tasks only")
        eq(query_int("SELECT count(*) FROM weave_tasks WHERE state = 'SUCCESS' AND attempts = 1"),
           500, "each SUCCESS, taken once")
        ids = ",".join("'%s'" % t for t in rolled_back)
        eq(query_int("SELECT count(*) FROM weave_tasks WHERE id IN (%s)" % ids), 0,
           "no row of a rolled-back task")
        per_worker = query("SELECT pid, count(*) FROM outbox_runs GROUP BY pid ORDER BY pid")
        print("    1000 transactions: %d committed, %d rolled back; runs: %d distinct, per "
              "worker pid: %s" % (len(committed), len(rolled_back), len(counts),
                                  per_worker.replace("\n", ", ")))
    finally:
        a.stop()
        b.stop()


def killed_worker_task_runs_on_the_other():
    a = Worker()
    reset()
    committed, _ = enqueue(1, 3000)  # a task of 3 s
    tid = committed[0]
    eq(a.line(10), "running " + tid, "taken by the first worker")
    lease_end = lease_end_us(tid)
    b = Worker()  # started after: the task is a's
    try:
        a.kill()
        t_killed = time.monotonic()
        more, _ = enqueue(40)  # meanwhile: 20 committed
        wait_for("the killed task's run", lambda: query_int(
            "SELECT count(*) FROM outbox_runs WHERE task_id = '%s'" % tid) == 1, 30)
        dt = time.monotonic() - t_killed
        started = query_int("SELECT started_us FROM outbox_runs WHERE task_id = '%s'" % tid)
        check(started >= lease_end, "retaken %d us before the lease expired"
              % (lease_end - started))
        wait_for("the other 20", lambda: query_int(
            "SELECT count(DISTINCT task_id) FROM outbox_runs") == 21, 30)
        eq(query_int("SELECT count(*) FROM outbox_runs"), 21, "each ran once")
        eq(query("SELECT attempts FROM weave_tasks WHERE id = '%s'" % tid), "2",
           "taken twice")
        wait_for("its ack", lambda: query(
            "SELECT state || ' ' || CASE WHEN run_at IS NULL THEN 'done' ELSE 'due' END "
            "FROM weave_tasks WHERE id = '%s'" % tid) == "SUCCESS done", 10)
        pid = query("SELECT pid FROM outbox_runs WHERE task_id = '%s'" % tid)
        eq(pid, str(b.p.pid), "run by the surviving worker")
        print("    killed worker's task finished by pid %s %.1f s after the kill (the lease "
              "of %d ms, then the task's 3 s); the 20 others ran once" % (pid, dt, VISIBILITY_MS))
    finally:
        b.stop()


def idle_workers_woken():
    a = Worker()
    try:
        reset()
        time.sleep(1.5)  # idle: waiting for a notification
        committed, _ = enqueue(1)
        wait_for("the run", lambda: query_int("SELECT count(*) FROM outbox_runs") == 1, 10)
        lat = query_int("SELECT latency_us FROM outbox_runs")
        print("    commit-to-start latency of one task on an idle worker: %.1f ms (%s)"
              % (lat / 1000.0, "polls every 200 ms" if URL.startswith("sqlite:") else
                 "NOTIFY; the poll fallback is 1000 ms"))
        check(lat >= 0, "ran after it was sent")
    finally:
        a.stop()


URLS = {}


def on(backend, body):
    def test():
        global URL
        URL = URLS[backend]
        body()
    return test


for _body in (only_committed_tasks_run_each_once, killed_worker_task_runs_on_the_other,
              idle_workers_woken):
    for _backend in ("postgres", "sqlite"):
        globals()["test_%s_%s" % (_backend, _body.__name__)] = on(_backend, _body)


if __name__ == "__main__":
    code = 1
    try:
        URLS["postgres"] = subprocess.run(
            ["bash", CTL, "start", DIR, str(free_port())], check=True, capture_output=True,
            text=True, timeout=60).stdout.strip()
        URLS["sqlite"] = "sqlite://%s/outbox.db" % DIR
        httptest.run(globals())
    except SystemExit as e:
        code = e.code
    finally:
        subprocess.run(["bash", CTL, "stop", DIR], capture_output=True)
        shutil.rmtree(DIR, ignore_errors=True)
    sys.exit(code)
