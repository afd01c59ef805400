#!/usr/bin/python3
"""weave's task queues (include/weave/tasks.h) beside real Python Celery
5.2.6 (kombu 5.2.4, Debian's python3-celery on /usr/bin/python3) on one
throwaway redis-server (scripts/redis_test_server.sh, a free port).

Also: retries (RETRY stored, the same id sent again, FAILURE once
max_retries is passed), STARTED with track_started and wv_tasks_state,
hard and soft time limits (a task that ignores its deadline is
cancelled), revocation both ways (Python's app.control.revoke obeyed by
the C worker, also with terminate; C's revoke obeyed by a Python worker),
task and worker events read by Celery's own event receiver and State (as
Flower reads them), kombu's priority lists, and malformed messages sent to
the dead-letter list.

weave's side is tests/integration/tasks_peer.c. Checked: a task sent by
Python (delay) runs in the C worker and Python reads its result; a task
sent from C runs in a Python worker and C reads its result (and Python's
AsyncResult reads one the C worker stored); FAILURE arrives in Python as
the ValueError raised; 100 one-second tasks on one C shard run at once;
with acks_late a task whose worker is killed mid-task runs again in the
next worker after the visibility timeout; an expired task is REVOKED and
not run; a countdown is honoured.

This file is also the Python worker's app module (-A test_tasks_celery).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from celery import Celery  # noqa: E402

URL = os.environ.get("TASKS_BROKER", "redis://127.0.0.1:6379/0")
app = Celery("tasks", broker=URL, backend=URL)
app.conf.worker_hijack_root_logger = False


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.header", bind=True)
def header(self):
    return getattr(self.request, "tenant", None)


@app.task(name="tasks.fail")
def fail(what):
    raise ValueError(what)


if __name__ == "__main__":
    import httptest  # noqa: E402 - the integration tests' runner
    from httptest import check, eq, free_port  # noqa: E402
    import celerytest  # noqa: E402
    from celerytest import Worker, peer, wait_state  # noqa: E402

    ROOT = os.path.dirname(os.path.dirname(HERE))
    CTL = os.path.join(ROOT, "scripts", "redis_test_server.sh")
    DIR = tempfile.mkdtemp(prefix="weave-tasks-it-")
    URL = subprocess.run(["bash", CTL, "start", DIR, str(free_port())], check=True,
                         capture_output=True, text=True, timeout=60).stdout.strip() + "/0"
    os.environ["TASKS_BROKER"] = URL
    app.conf.broker_url = URL
    app.conf.result_backend = URL
    import redis  # noqa: E402
    R = redis.Redis.from_url(URL)

    def py_worker():
        return celerytest.py_worker("test_tasks_celery", URL)

    def test_python_delay_runs_in_c_worker():
        w = Worker()
        try:
            eq(add.delay(2, 3).get(timeout=10), 5, "add.delay(2, 3)")
            eq(add.delay(2.5, 1).get(timeout=10), 3.5, "floats")
            r = app.send_task("tasks.echo", ("h\u00e9llo",))
            eq(r.get(timeout=10), "h\u00e9llo", "echo")
            check(R.sismember("_kombu.binding.celery", "celery\x06\x16\x06\x16celery"),
                  "binding declared by Python")
        finally:
            w.stop()

    def test_c_producer_python_worker():
        p = py_worker()
        try:
            rc, tid, err = peer("send", "tasks.add", "[2, 3]")
            eq(rc, 0, err)
            check(R.sismember("_kombu.binding.celery", "celery\x06\x16\x06\x16celery"),
                  "binding declared by C")
            rc, out, err = peer("result", tid)
            eq((rc, out), (0, "5"), "C reads the Python worker's result: " + err)
            eq(app.AsyncResult(tid).get(timeout=10), 5, "Python reads it too")
        finally:
            p.terminate()
            p.wait(timeout=20)
        # a C worker's result read by Python's AsyncResult
        w = Worker()
        try:
            rc, tid, err = peer("send", "tasks.add", "[20, 22]")
            eq(app.AsyncResult(tid).get(timeout=10), 42, "AsyncResult of a C-stored result")
        finally:
            w.stop()

    def test_failure_is_value_error():
        w = Worker()
        try:
            r = fail.delay("bad input")
            try:
                r.get(timeout=10)
                check(False, "no exception")
            except ValueError as e:
                eq(str(e), "bad input", "message")
            eq(r.state, "FAILURE", "state")
            rc, tid, err = peer("send", "tasks.fail", '["from C"]')
            rc, out, err = peer("result", tid)
            eq((rc, err), (2, "ValueError: from C"), "C sees the failure")
            r = app.send_task("tasks.nope", (1,))
            try:
                r.get(timeout=10)
                check(False, "no exception")
            except Exception as e:  # noqa: BLE001
                eq(type(e).__name__, "NotRegistered", "unknown task")
        finally:
            w.stop()

    def test_hundred_async_tasks_run_concurrently():
        w = Worker()
        try:
            t0 = time.monotonic()
            rs = [app.send_task("tasks.async_add", (i, 1)) for i in range(100)]
            eq([r.get(timeout=60) for r in rs], [i + 1 for i in range(100)], "results")
            dt = time.monotonic() - t0
            check(dt < 30, "100 one-second tasks took %.1f s: not concurrent" % dt)
        finally:
            w.stop()

    def test_acks_late_redelivered_after_kill():
        R.delete("unacked", "unacked_index")
        w = Worker("acks_late", "2000")
        r = app.send_task("tasks.sleep", (3,))
        eq(w.line(), "running " + r.id, "started")
        check(R.hexists("unacked", R.zrange("unacked_index", 0, -1)[0]), "recorded unacked")
        w.kill()
        w2 = Worker("acks_late", "2000")
        try:
            eq(r.get(timeout=30), 3.0, "ran again")
            eq(R.hlen("unacked"), 0, "acked")
        finally:
            w2.stop()

    def test_expires_and_countdown():
        # sent with no worker running: it expires in the queue
        r = app.send_task("tasks.add", (1, 2), expires=1)
        time.sleep(1.5)
        w = Worker()
        try:
            try:
                r.get(timeout=10)
                check(False, "expired task ran")
            except Exception as e:  # noqa: BLE001
                eq(type(e).__name__, "TaskRevokedError", "revoked")
            eq(r.state, "REVOKED", "state")
            t0 = time.monotonic()
            r = app.send_task("tasks.add", (1, 2), countdown=2)
            time.sleep(1)
            eq(r.state, "PENDING", "not run before its countdown")
            eq(r.get(timeout=10), 3, "run after it")
            check(time.monotonic() - t0 >= 2, "countdown")
            rc, tid, err = peer("send", "tasks.add", "[3, 4]", "1500")
            t0 = time.monotonic()
            rc, out, err = peer("result", tid)
            eq(out, "7", err)
            check(time.monotonic() - t0 >= 1.0, "C countdown honoured")
        finally:
            w.stop()

    def test_malformed_messages_dead_lettered():
        R.delete("celery.dead")
        w = Worker("dead=celery.dead")
        try:
            no_id = '{"body": "W1tdLCB7fSwge31d", "headers": {"task": "tasks.add"}}'
            bad = [b"not json", b"{}", b'{"body": 5}', b"\xff\xfe",
                   b'{"body": "gAN9cQAu", "content-type": "application/x-python-serialize", '
                   b'"content-encoding": "binary", "headers": {}, "properties": '
                   b'{"body_encoding": "base64", "delivery_tag": "x"}}',
                   no_id.encode()]
            for b in bad:
                R.lpush("celery", b)
            deadline = time.monotonic() + 10
            while R.llen("celery.dead") < len(bad) and time.monotonic() < deadline:
                time.sleep(0.05)
            eq(sorted(R.lrange("celery.dead", 0, -1)), sorted(bad), "all dead-lettered as sent")
            eq(add.delay(2, 3).get(timeout=10), 5, "the worker goes on")
            # an unknown task: FAILURE NotRegistered, and its message dead-lettered
            r = app.send_task("tasks.nope", (1,))
            try:
                r.get(timeout=10)
                check(False, "no exception")
            except Exception as e:  # noqa: BLE001
                eq(type(e).__name__, "NotRegistered", "unknown task")
            eq(R.llen("celery.dead"), len(bad) + 1, "its message dead-lettered")
            check(r.id.encode() in R.lindex("celery.dead", 0), "the unknown task's message")
            # wrong argument types: the task's own TypeError
            try:
                add.delay("2", [3]).get(timeout=10)
                check(False, "no exception")
            except TypeError as e:
                eq(str(e), "add takes two numbers", "wrong argument types")
            # protocol 1 (Celery 3's body), as Celery 5 still runs it
            app.conf.task_protocol = 1
            try:
                eq(add.delay(20, 22).get(timeout=10), 42, "a protocol 1 message runs")
            finally:
                app.conf.task_protocol = 2
        finally:
            w.stop()

    def test_retry_with_countdown_and_max_retries():
        w = Worker("track_started")
        try:
            r = app.send_task("tasks.flaky", ())
            eq(wait_state(r, "RETRY"), "RETRY", "RETRY stored between attempts")
            eq(r.info.__class__.__name__, "ValueError", "RETRY's exception")
            try:
                r.get(timeout=10)
                check(False, "no exception")
            except ValueError as e:
                eq(str(e), "boom 2", "FAILURE once max_retries (2) is passed")
            r = app.send_task("tasks.flaky", (), {"ok_at": 3})
            eq(r.get(timeout=10), 3, "succeeds on its third retry")
            # the same id each time, as Celery's retry
            eq(R.llen("celery"), 0, "nothing left queued")
        finally:
            w.stop()

    def test_started_state_and_lookup():
        w = Worker("track_started", "name=cw1@test")
        try:
            rc, out, err = peer("state", "0b1e3a1e-0000-4000-8000-000000000000")
            eq((rc, out), (0, "PENDING"), "an unknown id is PENDING: " + err)
            r = app.send_task("tasks.sleep", (1.5,))
            eq(w.line(), "running " + r.id, "started")
            eq(wait_state(r, "STARTED"), "STARTED", "STARTED stored")
            eq(r.info.get("hostname"), "cw1@test", "STARTED names the worker")
            check(isinstance(r.info.get("pid"), int), "and its pid")
            rc, out, err = peer("state", r.id)
            eq(out, "STARTED", "C sees STARTED")
            r.get(timeout=10)
            rc, out, err = peer("state", r.id)
            eq(out, "SUCCESS 1.5", "C sees SUCCESS and the result")
            r = fail.delay("nope")
            wait_state(r, "FAILURE")
            rc, out, err = peer("state", r.id)
            eq(out, "FAILURE ValueError: nope", "C sees FAILURE")
        finally:
            w.stop()

    def test_time_limits():
        w = Worker()
        try:
            rc, tid, err = peer("send", "tasks.stubborn", "[]", "hard=1000")
            eq(w.line(), "running " + tid, "started")
            rc, out, err = peer("result", tid)
            eq(rc, 2, "hard limit: a failure")
            check(err.startswith("TimeLimitExceeded"), err)
            eq(app.AsyncResult(tid).state, "FAILURE", "Python sees FAILURE")
            rc, tid, err = peer("send", "tasks.patient", "[]", "soft=300")
            rc, out, err = peer("result", tid)
            check(rc == 2 and err.startswith("SoftTimeLimitExceeded"), err)
            r = app.send_task("tasks.stubborn", time_limit=1)
            eq(w.line(), "running " + r.id, "started")
            try:
                r.get(timeout=10)
                check(False, "no exception")
            except Exception as e:  # noqa: BLE001
                eq(type(e).__name__, "TimeLimitExceeded", "Python's time_limit")
            eq(add.delay(1, 1).get(timeout=10), 2, "the worker goes on")
        finally:
            w.stop()

    def test_revoke_both_ways():
        w = Worker()
        try:
            time.sleep(0.5)  # the worker's remote-control subscription
            r = add.apply_async((1, 2), countdown=2)
            app.control.revoke(r.id)
            try:
                r.get(timeout=10)
                check(False, "a revoked task ran")
            except Exception as e:  # noqa: BLE001
                eq(type(e).__name__, "TaskRevokedError", "revoked before it ran")
            r = app.send_task("tasks.stubborn")
            eq(w.line(), "running " + r.id, "started")
            app.control.revoke(r.id, terminate=True)
            eq(wait_state(r, "REVOKED"), "REVOKED", "terminated while running")
            eq(add.delay(2, 2).get(timeout=10), 4, "the worker goes on")
        finally:
            w.stop()
        p = py_worker()
        try:
            deadline = time.monotonic() + 20
            while not app.control.ping(timeout=0.5) and time.monotonic() < deadline:
                pass
            rc, tid, err = peer("send", "tasks.add", "[5, 5]", "2000")
            rc, out, err = peer("revoke", tid)
            eq(rc, 0, err)
            r = app.AsyncResult(tid)
            eq(wait_state(r, "REVOKED", 15), "REVOKED", "a Python worker obeys C's revoke")
        finally:
            p.terminate()
            p.wait(timeout=20)

    def test_events_seen_by_celery():
        ev = celerytest.Events(app)
        state, seen = ev.state, ev.seen
        time.sleep(1)
        w = Worker("events", "name=cw2@test")
        try:
            ok = add.delay(2, 3)
            eq(ok.get(timeout=10), 5, "result")
            bad = fail.delay("evt")
            try:
                bad.get(timeout=10)
            except ValueError:
                pass
            end = time.monotonic() + 10
            while time.monotonic() < end and (
                    state.tasks.get(bad.id) is None or state.tasks[bad.id].state != "FAILURE"
                    or "worker-heartbeat" not in seen):
                time.sleep(0.1)
            t = state.tasks.get(ok.id)
            check(t is not None, "the task is known from events")
            eq((t.state, t.name, t.result, t.args), ("SUCCESS", "tasks.add", "5", "(2, 3)"),
               "task-received and task-succeeded")
            eq(state.tasks[bad.id].state, "FAILURE", "task-failed")
            eq(state.tasks[bad.id].exception, "ValueError('evt')", "its exception")
            check("cw2@test" in state.workers and state.workers["cw2@test"].alive,
                  "the worker is alive in Celery's state: %s" % list(state.workers))
            for ty in ("task-received", "task-started", "task-succeeded", "task-failed",
                       "worker-online", "worker-heartbeat"):
                check(ty in seen, ty + " seen")
        finally:
            w.stop()
            ev.close()
        end = time.monotonic() + 5
        while "worker-offline" not in seen and time.monotonic() < end:
            time.sleep(0.1)
        check("worker-offline" in seen, "worker-offline at the warm shutdown")

    def test_priorities_are_kombus_lists():
        R.delete("celery", "celery\x06\x163", "celery\x06\x169")
        rc, tid, err = peer("send", "tasks.add", "[4, 4]", "priority=5")
        eq(R.llen("celery\x06\x163"), 1, "priority 5 on kombu's step-3 list")
        p = py_worker()
        try:
            eq(app.AsyncResult(tid).get(timeout=15), 8, "a Python worker takes it")
        finally:
            p.terminate()
            p.wait(timeout=20)
        r = add.apply_async((1, 1), priority=9)
        eq(R.llen("celery\x06\x169"), 1, "Python's priority 9")
        w = Worker()
        try:
            eq(r.get(timeout=10), 2, "the C worker takes it")
        finally:
            w.stop()

    def test_worker_killed_with_acks_late_loses_nothing():
        """SIGKILL a worker with 10 tasks running (acks_late): a second
        worker runs all 10 again after the visibility timeout, and the tasks
        queued meanwhile; every one succeeds."""
        R.delete("unacked", "unacked_index", "celery")
        a = Worker("acks_late", "2000")
        first = [app.send_task("tasks.sleep", (2,)) for _ in range(10)]
        started = {a.line().split()[1] for _ in first}
        eq(started, {r.id for r in first}, "worker A started all 10")
        eq(R.hlen("unacked"), 10, "all 10 recorded unacked")
        a.kill()
        later = [app.send_task("tasks.add", (i, i)) for i in range(20)]
        b = Worker("acks_late", "2000")
        try:
            again = set()
            while len(again) < 10:
                again.add(b.line().split()[1])
            eq(again, started, "worker B ran A's 10 again")
            results = [r.get(timeout=30) for r in first] + [r.get(timeout=30) for r in later]
            eq(results, [2.0] * 10 + [2 * i for i in range(20)], "every result")
            eq(R.hlen("unacked"), 0, "nothing left unacked")
            print("enqueued 30, started 40 (10 by the killed worker), succeeded 30, "
                  "redelivered 10, lost 0")
        finally:
            b.stop()

    def test_custom_headers_both_ways():
        w = Worker()
        try:
            r = app.send_task("tasks.header", headers={"tenant": "acme"})
            eq(r.get(timeout=10), "acme", "Python's custom header read by the C task")
        finally:
            w.stop()
        p = py_worker()
        try:
            rc, tid, err = peer("send", "tasks.header", "[]", 'headers={"tenant": "h\u00e9"}')
            eq(rc, 0, err)
            eq(app.AsyncResult(tid).get(timeout=15), "h\u00e9", "C's custom header in Python")
        finally:
            p.terminate()
            p.wait(timeout=20)

    KEEP = []

    def test_broker_restarted_mid_run():
        """Redis (with an append-only file) killed and started again while a
        worker with acks_late runs 20 one-second tasks: the worker
        reconnects, and every task sent before, during and after succeeds."""
        rdir = os.path.join(DIR, "persistent")
        rurl = subprocess.run(["bash", CTL, "start", rdir, str(free_port())], check=True,
                              capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, REDIS_APPENDONLY="1")).stdout.strip() + "/0"
        papp = Celery("tasks", broker=rurl, backend=rurl)
        old = os.environ["TASKS_BROKER"]
        os.environ["TASKS_BROKER"] = rurl
        w = Worker("acks_late", "3000")
        os.environ["TASKS_BROKER"] = old
        try:
            before = [papp.send_task("tasks.async_add", (i, 1)) for i in range(20)]
            time.sleep(0.5)
            subprocess.run(["bash", CTL, "kill", rdir], check=True, timeout=30)
            time.sleep(1.5)
            subprocess.run(["bash", CTL, "restart", rdir], check=True, timeout=30)
            after = [papp.send_task("tasks.add", (i, 2)) for i in range(10)]
            eq([r.get(timeout=60) for r in before], [i + 1 for i in range(20)],
               "the tasks running when the broker died")
            eq([r.get(timeout=30) for r in after], [i + 2 for i in range(10)],
               "the tasks sent after it came back")
            print("enqueued 30 around a broker crash, succeeded 30, lost 0")
            # kept until the process ends: collected, they would reach for
            # the server this test stops
            KEEP.extend([papp] + before + after)
        finally:
            w.stop()
            subprocess.run(["bash", CTL, "stop", rdir], capture_output=True)

    def test_chains_callbacks_and_errbacks():
        from celery import chain
        w = Worker()
        try:
            res = chain(add.s(2, 3), add.s(4), add.s(5)).apply_async()
            eq(res.get(timeout=15), 14, "a chain of three, each step on the C worker")
            eq(res.parent.get(timeout=5), 9, "its middle step, under the id Python chose")
            eq(res.parent.parent.get(timeout=5), 5, "its first")
            r = add.apply_async((1, 1), link=add.si(100, 1))
            eq(r.get(timeout=10), 2, "the linked task's own result")
            deadline = time.monotonic() + 10
            linked = []
            while not linked and time.monotonic() < deadline:
                for k in R.scan_iter("celery-task-meta-*"):
                    meta = json.loads(R.get(k))
                    if meta.get("result") == 101 and meta.get("parent_id") == r.id:
                        linked.append(meta)
                time.sleep(0.05)
            check(linked, "the callback (immutable) ran with parent_id the task's id")
            r = add.apply_async((1, 2), link=add.s(10))
            r.get(timeout=10)
            deadline = time.monotonic() + 10
            got = None
            while got is None and time.monotonic() < deadline:
                for k in R.scan_iter("celery-task-meta-*"):
                    meta = json.loads(R.get(k))
                    if meta.get("parent_id") == r.id and meta.get("status") == "SUCCESS":
                        got = meta["result"]
                time.sleep(0.05)
            eq(got, 13, "the callback got the result first: add(3, 10)")
            r = fail.apply_async(("x",), link_error=app.signature("tasks.echo"))
            try:
                r.get(timeout=10)
            except ValueError:
                pass
            deadline = time.monotonic() + 10
            got = None
            while got is None and time.monotonic() < deadline:
                for k in R.scan_iter("celery-task-meta-*"):
                    meta = json.loads(R.get(k))
                    if meta.get("parent_id") == r.id:
                        got = meta["result"]
                time.sleep(0.05)
            eq(got, r.id, "the errback got the failed task's id")
        finally:
            w.stop()

    code = 1
    try:
        httptest.run(globals())
    except SystemExit as e:
        code = e.code
    finally:
        subprocess.run(["bash", CTL, "stop", DIR], capture_output=True)
        shutil.rmtree(DIR, ignore_errors=True)
    # not through the interpreter's teardown: Celery's result objects would
    # try to reach the stopped server as they are collected
    sys.stdout.flush()
    os._exit(code)
