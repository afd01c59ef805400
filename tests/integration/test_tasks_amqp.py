#!/usr/bin/python3
"""weave's task queues (include/weave/tasks.h) over RabbitMQ beside real
Python Celery 5.2.6 (kombu 5.2.4 on py-amqp, Debian's python3-celery on
/usr/bin/python3), with Celery's RPC result backend (rpc://) and, once,
the Redis one.

The node is $WEAVE_TEST_AMQP_URL when scripts/test.sh started one (the
restart test stops and starts it through $WEAVE_TEST_AMQP_CTL and _DIR),
else this test starts its own with scripts/rabbitmq_test_server.sh on free
ports (and stops it). weave's side is tests/integration/tasks_peer.c.

Checked: Python's add.delay(2, 3).get() answered by the C worker through
the RPC backend; a task sent from C runs in a Python worker (-P solo) and
C reads its RPC result; the message C sends is the one Python sends (same
properties, header names and types, body); the queue both declare is
Celery's (durable, no arguments, its direct exchange and binding) and
neither gets PRECONDITION_FAILED; FAILURE arrives as the ValueError
raised; an unregistered task name is NotRegistered in Python and its
message goes to the queue's dead-letter exchange; malformed messages
(bad JSON, pickle, no id) are dead-lettered as sent and the worker goes
on; a countdown is honoured and held ETA messages do not starve the
prefetch; a queue deleted under a running worker is declared again and
consumed; Python's revoke (before a task runs, and terminating one that
runs) obeyed by the C worker over celery.pidbox, C's revoke obeyed by a
Python worker, and the C worker's events read by Celery's own receiver; with acks_late, tasks running in a worker killed with SIGKILL
are redelivered by RabbitMQ to the next worker and run again (counts
printed); the node stopped and started mid-run: the worker reconnects and
runs what is sent afterwards; 100 one-second async tasks on one shard run
at once; a Redis result backend with the AMQP broker; rpc:// refused with
a Redis broker.

This file is also the Python worker's app module (-A test_tasks_amqp).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from celery import Celery  # noqa: E402
from kombu import Exchange, Queue  # noqa: E402

URL = os.environ.get("TASKS_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
app = Celery("tasks", broker=URL, backend="rpc://")
app.conf.worker_hijack_root_logger = False


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.fail")
def fail(what):
    raise ValueError(what)


if __name__ == "__main__":
    import httptest  # noqa: E402 - the integration tests' runner
    from httptest import check, eq, free_port, port_block  # noqa: E402
    import celerytest  # noqa: E402
    from celerytest import Worker, peer  # noqa: E402
    import pika  # noqa: E402

    ROOT = os.path.dirname(os.path.dirname(HERE))
    CTL = os.environ.get("WEAVE_TEST_AMQP_CTL") or os.path.join(ROOT, "scripts",
                                                                 "rabbitmq_test_server.sh")
    DIR = tempfile.mkdtemp(prefix="weave-tasks-amqp-it-")
    NODE = os.environ.get("WEAVE_TEST_AMQP_DIR")
    OWN = not (os.environ.get("WEAVE_TEST_AMQP_URL") and NODE)
    if OWN:
        NODE = os.path.join(DIR, "node")
        base = subprocess.run(["bash", CTL, "start", NODE, str(port_block(3))], check=True,
                              capture_output=True, text=True, timeout=180).stdout.strip()
    else:
        base = os.environ["WEAVE_TEST_AMQP_URL"]
    URL = base.rstrip("/") + "//"  # kombu's spelling of the vhost "/"
    os.environ["TASKS_BROKER"] = URL
    os.environ["TASKS_BACKEND"] = "rpc://"
    os.environ.pop("TASKS_QUEUE", None)
    app.conf.broker_url = URL
    PIKA = pika.URLParameters(base.rstrip("/") + "/%2F")

    def ctl(*args):
        return subprocess.run(["bash", CTL, "ctl", NODE, *args], capture_output=True, text=True,
                              timeout=60).stdout

    def queue_info(name):
        """(ready, unacked, durable, auto_delete, arguments) of a queue, or None."""
        for line in ctl("list_queues", "name", "messages_ready", "messages_unacknowledged",
                        "durable", "auto_delete", "arguments").splitlines():
            f = line.split("\t")
            if f[0] == name:
                return int(f[1]), int(f[2]), f[3], f[4], f[5]
        return None

    def consuming(q, timeout=10):
        """Wait until q has a consumer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in ctl("list_queues", "name", "consumers").splitlines():
                f = line.split("\t")
                if f[0] == q and f[1] != "0":
                    return
            time.sleep(0.1)
        raise httptest.Failure("nobody consumes %s" % q)

    def channel():
        conn = pika.BlockingConnection(PIKA)
        return conn, conn.channel()

    def fresh(*queues):
        conn, ch = channel()
        for q in queues:
            ch.queue_delete(q)
        conn.close()

    def purge(q):
        """Empty q, which stays: kombu remembers the queues it declared on a
        connection and does not declare them again before it publishes."""
        conn, ch = channel()
        try:
            ch.queue_purge(q)
        except pika.exceptions.ChannelClosedByBroker:
            pass  # not there yet
        conn.close()

    def dead_letter_queue(q):
        """Queue q with the dead-letter exchange q.dlx, whose queue is q.dead;
        the kombu Queue to send to it."""
        fresh(q, q + ".dead")
        conn, ch = channel()
        ch.exchange_declare(q + ".dlx", "fanout", durable=True)
        ch.queue_declare(q + ".dead", durable=True)
        ch.queue_bind(q + ".dead", q + ".dlx")
        args = {"x-dead-letter-exchange": q + ".dlx"}
        ch.queue_declare(q, durable=True, arguments=args)
        conn.close()
        return Queue(q, Exchange(q, type="direct"), routing_key=q, queue_arguments=args)

    def drain(q, n, timeout=10):
        """n messages from q (acked), waiting up to timeout seconds."""
        conn, ch = channel()
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            m, p, b = ch.basic_get(q, auto_ack=True)
            if m is None:
                time.sleep(0.05)
            else:
                got.append((p, b))
        conn.close()
        return got

    def py_worker():
        return celerytest.py_worker("test_tasks_amqp", URL, "-Q", "celery")

    def test_python_delay_runs_in_c_worker():
        purge("celery")
        w = Worker()
        try:
            eq(add.delay(2, 3).get(timeout=10), 5, "add.delay(2, 3)")
            eq(add.delay(2.5, 1).get(timeout=10), 3.5, "floats")
            r = app.send_task("tasks.echo", ("h\u00e9llo",))
            eq(r.get(timeout=10), "h\u00e9llo", "echo")
            # Celery's queue as Celery declares it, and the C worker's
            # declaration matched it (or it would have failed)
            eq(queue_info("celery")[2:], ("true", "false", "[]"), "celery queue: durable, no args")
            check("celery\texchange\tcelery\tqueue\tcelery" in ctl("list_bindings"),
                  "binding celery -> celery")
            ex = [l for l in ctl("list_exchanges", "name", "type", "durable").splitlines()
                  if l.startswith("celery\t")]
            eq(ex, ["celery\tdirect\ttrue"], "exchange celery")
        finally:
            w.stop()

    def test_c_message_is_what_celery_sends():
        purge("celery")
        r = add.apply_async((2, 3), countdown=60)
        rc, tid, err = peer("send", "tasks.add", "[2, 3]", "60000")
        eq(rc, 0, err)
        (pp, pb), (cp, cb) = drain("celery", 2)
        eq(cp.correlation_id, tid, "correlation_id is the task id")
        eq(pp.correlation_id, r.id, "Python's too")
        for name in ("content_type", "content_encoding", "delivery_mode"):
            eq(getattr(cp, name), getattr(pp, name), name)
        # kombu sends priority 0; weave's client leaves a 0 out, which
        # RabbitMQ reads as 0
        eq((pp.priority, cp.priority or 0), (0, 0), "priority")
        check(cp.reply_to, "reply_to set (the RPC backend's queue)")
        eq(sorted(cp.headers), sorted(pp.headers), "header names")
        for k, v in pp.headers.items():
            if k in ("id", "root_id", "origin", "eta"):
                continue
            eq(cp.headers[k], v, "header " + k)
        eq((type(cp.headers["eta"]), type(cp.headers["retries"])),
           (type(pp.headers["eta"]), type(pp.headers["retries"])), "header types")
        eq(cp.headers["root_id"], tid, "root_id")
        eq(cb, pb, "body")
        print("  C and Python messages agree: %d headers, body %r" % (len(cp.headers), cb))

    def test_c_producer_python_worker():
        purge("celery")
        p = py_worker()
        try:
            rc, out, err = peer("call", "tasks.add", "[2, 3]", "3")
            eq(rc, 0, err)
            lines = out.splitlines()
            eq(lines[3:], ["5", "5", "5"], "C reads the Python worker's RPC results")
            rc, out, err = peer("call", "tasks.fail", '["from C"]')
            eq((rc, err), (2, "ValueError: from C"), "C sees the Python failure")
        finally:
            p.terminate()
            p.wait(timeout=20)

    def test_failure_is_value_error_and_unregistered_dead_lettered():
        q = dead_letter_queue("wvtasks.dlx")
        purge("celery")
        w = Worker()
        wq = Worker(env={"TASKS_QUEUE": "wvtasks.dlx"})
        try:
            r = fail.delay("bad input")
            try:
                r.get(timeout=10)
                check(False, "no exception")
            except ValueError as e:
                eq(str(e), "bad input", "message")
            eq(r.state, "FAILURE", "state")
            rc, out, err = peer("call", "tasks.fail", '["from C"]')
            eq((rc, err), (2, "ValueError: from C"), "C sees the failure")
            r = app.send_task("tasks.nope", (1,), queue=q)
            try:
                r.get(timeout=10)
                check(False, "no exception")
            except Exception as e:  # noqa: BLE001
                eq(type(e).__name__, "NotRegistered", "unknown task")
            # and from C, whose declaration of the queue (without the
            # dead-letter argument) falls back to the queue as it is
            rc, tid, err = peer("send", "tasks.nope2", "[2]",
                                env={"TASKS_QUEUE": "wvtasks.dlx", "TASKS_BACKEND": "none"})
            eq(rc, 0, err)
            dead = drain("wvtasks.dlx.dead", 2)
            eq(sorted(p.headers["task"] for p, b in dead), ["tasks.nope", "tasks.nope2"],
               "both dead-lettered")
            reason = dead[0][0].headers["x-death"][0]["reason"]
            eq(reason.decode() if isinstance(reason, bytes) else reason, "rejected",
               "x-death reason")
            eq(queue_info("wvtasks.dlx")[:2], (0, 0), "nothing left in the queue")
        finally:
            w.stop()
            wq.stop()

    def test_malformed_messages_rejected():
        q = dead_letter_queue("wvtasks.bad")
        w = Worker(env={"TASKS_QUEUE": "wvtasks.bad"})
        try:
            h = {"task": "tasks.add", "id": "00000000-0000-4000-8000-000000000001", "lang": "py"}
            no_id = {"task": "tasks.add", "lang": "py"}
            good_body = b'[[1, 2], {}, {"callbacks": null, "errbacks": null, "chain": null, ' \
                        b'"chord": null}]'
            bad = [(b"not json", "application/json", h),
                   (b"\x80\x04K\x05.", "application/x-python-serialize", h),
                   (good_body, "application/json", no_id),
                   (b'{"x": 1}', "application/json", h),
                   (b"[[1, 2], {}, {}", "application/json", h)]
            conn, ch = channel()
            for body, ctype, headers in bad:
                ch.basic_publish("", "wvtasks.bad", body, pika.BasicProperties(
                    content_type=ctype, content_encoding="utf-8", headers=headers,
                    delivery_mode=2))
            conn.close()
            dead = drain("wvtasks.bad.dead", len(bad))
            eq(sorted(b for p, b in dead), sorted(b for b, c, h in bad), "dead-lettered as sent")
            r = app.send_task("tasks.add", (2, 3), queue=q)
            eq(r.get(timeout=10), 5, "the worker goes on")
        finally:
            err = w.stop()
        eq(err.count("does not decode"), len(bad), "each logged")

    def test_countdown_and_eta_do_not_starve_prefetch():
        purge("celery")
        w = Worker("conc=2")
        try:
            t0 = time.monotonic()
            held = [app.send_task("tasks.add", (i, 1), countdown=5) for i in range(4)]
            deadline = time.monotonic() + 4
            while queue_info("celery")[:2] != (0, 4) and time.monotonic() < deadline:
                time.sleep(0.1)
            eq(queue_info("celery")[:2], (0, 4),
               "4 held unacked by the worker with concurrency 2 (its prefetch raised by 4)")
            now = [add.delay(i, 2) for i in range(2)]
            eq([r.get(timeout=10) for r in now], [2, 3], "immediate tasks")
            eq([r.ready() for r in held], [False] * 4,
               "the immediate tasks did not wait for the held ones")
            eq([r.get(timeout=10) for r in held], [1, 2, 3, 4], "held tasks ran")
            check(time.monotonic() - t0 >= 5, "countdown honoured")
        finally:
            w.stop()

    def test_acks_late_redelivered_after_kill():
        purge("celery")
        n = 10
        w = Worker("acks_late", "conc=16")
        rs = [app.send_task("tasks.sleep", (4,)) for _ in range(n)]
        running = {w.line() for _ in range(n)}
        eq(running, {"running " + r.id for r in rs}, "all started")
        eq(queue_info("celery")[:2], (0, n), "unacked while they run")
        w.kill()
        w2 = Worker("acks_late", "conc=16")
        try:
            again = {w2.line() for _ in range(n)}
            eq(again, running, "redelivered and run again")
            results = [r.get(timeout=30) for r in rs]
            eq(results, [4.0] * n, "results")
            eq(queue_info("celery")[:2], (0, 0), "all acked")
        finally:
            w2.stop()
        print("  sent %d, running when killed %d, run again %d, results %d, lost 0"
              % (n, len(running), len(again), len(results)))

    def test_hundred_async_tasks_run_concurrently():
        purge("celery")
        w = Worker("conc=100")
        try:
            t0 = time.monotonic()
            rs = [app.send_task("tasks.async_add", (i, 1)) for i in range(100)]
            eq([r.get(timeout=60) for r in rs], [i + 1 for i in range(100)], "results")
            dt = time.monotonic() - t0
            print("  100 one-second tasks in %.1f s" % dt)
            check(dt < 8, "100 one-second tasks took %.1f s: not at once" % dt)
        finally:
            w.stop()

    def test_queue_deleted_under_the_worker_is_declared_again():
        purge("celery")
        w = Worker()
        try:
            consuming("celery")
            conn, ch = channel()
            ch.queue_delete("celery")  # RabbitMQ cancels the worker's consumer
            conn.close()
            deadline = time.monotonic() + 15
            while queue_info("celery") is None and time.monotonic() < deadline:
                time.sleep(0.1)
            info = queue_info("celery")
            check(info is not None, "the worker declared the queue again")
            eq(info[2:], ("true", "false", "[]"), "as Celery declares it")
            rc, out, err = peer("call", "tasks.add", "[4, 5]")
            eq((rc, out.splitlines()[-1]), (0, "9"), "the worker consumes it: " + err)
        finally:
            err = w.stop()
        check("cancelled by the broker" in err, "the cancel was logged: " + err[-500:])

    def bound(exchange, timeout=10):
        """Wait until a queue is bound to exchange (somebody listens)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if exchange + "\texchange" in ctl("list_bindings"):
                return
            time.sleep(0.1)
        raise httptest.Failure("nobody listens on " + exchange)

    def revoked(r):
        try:
            r.get(timeout=10)
            return "ran"
        except Exception as e:  # noqa: BLE001
            return type(e).__name__

    def test_revoke_and_events_over_amqp():
        purge("celery")
        ev = celerytest.Events(app)
        state, seen = ev.state, ev.seen
        bound("celeryev")  # Celery's receiver
        w = Worker("events", "name=cwa@test")
        try:
            bound("celery.pidbox")  # the C worker's remote control
            r = add.apply_async((1, 2), countdown=2)
            app.control.revoke(r.id)
            eq(revoked(r), "TaskRevokedError", "revoked by Python before it ran")
            r = app.send_task("tasks.stubborn")
            eq(w.line(), "running " + r.id, "started")
            app.control.revoke(r.id, terminate=True)
            eq(revoked(r), "TaskRevokedError", "terminated while running")
            ok = add.delay(2, 3)
            eq(ok.get(timeout=10), 5, "the worker goes on")
            end = time.monotonic() + 10
            while time.monotonic() < end and (
                    state.tasks.get(ok.id) is None or state.tasks[ok.id].state != "SUCCESS"
                    or "worker-heartbeat" not in seen):
                time.sleep(0.1)
            t = state.tasks.get(ok.id)
            check(t is not None, "the task is known from events")
            eq((t.state, t.name, t.result), ("SUCCESS", "tasks.add", "5"), "its events")
            check("cwa@test" in state.workers and state.workers["cwa@test"].alive,
                  "the worker is alive in Celery's state: %s" % list(state.workers))
            for ty in ("task-received", "task-started", "task-succeeded", "task-revoked",
                       "worker-online", "worker-heartbeat"):
                check(ty in seen, ty + " seen")
        finally:
            w.stop()
            ev.close()
        # C's revoke reaches a Python worker
        p = py_worker()
        try:
            deadline = time.monotonic() + 20
            while not app.control.ping(timeout=0.5) and time.monotonic() < deadline:
                pass
            rc, tid, err = peer("send", "tasks.add", "[5, 5]", "2000",
                                env={"TASKS_BACKEND": "none"})
            rc, out, err = peer("revoke", tid)
            eq(rc, 0, err)
            time.sleep(3)
        finally:
            p.terminate()
            out = p.communicate(timeout=20)[0]
        check("Discarding revoked task: tasks.add[%s]" % tid in out,
              "the Python worker obeyed C's revoke: " + out[-1500:])

    def test_redis_backend_with_amqp_broker():
        rctl = os.path.join(ROOT, "scripts", "redis_test_server.sh")
        rdir = os.path.join(DIR, "redis")
        rurl = subprocess.run(["bash", rctl, "start", rdir, str(free_port())], check=True,
                              capture_output=True, text=True, timeout=60).stdout.strip() + "/0"
        purge("celery")
        app2 = Celery("tasks2", broker=URL, backend=rurl)
        w = Worker(env={"TASKS_BACKEND": rurl})
        try:
            r = app2.send_task("tasks.add", (40, 2))
            eq(r.get(timeout=10), 42, "a C result through Redis")
            rc, tid, err = peer("send", "tasks.add", "[1, 2]", env={"TASKS_BACKEND": rurl})
            rc, out, err = peer("result", tid, env={"TASKS_BACKEND": rurl})
            eq((rc, out), (0, "3"), "read by another client: " + err)
        finally:
            w.stop()
            subprocess.run(["bash", rctl, "stop", rdir], capture_output=True)

    def test_rpc_backend_needs_amqp_broker():
        rc, out, err = peer("send", "tasks.add", "[1, 2]",
                            env={"TASKS_BROKER": "redis://127.0.0.1:1/0"})
        eq(rc, 1, "refused")
        check("rpc:// result backend needs an amqp" in err, err)

    def test_broker_restart_worker_reconnects():
        purge("celery")
        w = Worker("acks_late")
        try:
            rc, out, err = peer("call", "tasks.add", "[1, 1]")
            eq((rc, out.splitlines()[-1]), (0, "2"), "before: " + err)
            # a task running while the node goes away: its ack cannot be
            # sent, so RabbitMQ delivers it again once it is back
            caller = subprocess.Popen([celerytest.PEER, "call", "tasks.sleep", "[6]"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            tid = caller.stdout.readline().strip()
            eq(w.line(), "running " + tid, "running before the stop")
            subprocess.run(["bash", CTL, "stop", NODE], check=True, capture_output=True,
                           timeout=120)
            time.sleep(1)
            subprocess.run(["bash", CTL, "restart", NODE], check=True, capture_output=True,
                           timeout=180)
            check(w.p.poll() is None, "worker alive through the restart")
            eq(w.line(), "running " + tid, "delivered again after the restart")
            out, err = caller.communicate(timeout=90)
            eq((caller.returncode, out.strip()), (0, "6.0"),
               "the caller reconnected and got the result: " + err)
            rc, out, err = peer("call", "tasks.add", "[20, 1]", "5", timeout=90)
            eq((rc, out.splitlines()[5:]), (0, ["21"] * 5), "after the restart: " + err)
        finally:
            err = w.stop()
        print("  across the restart: a running task run again and answered; "
              "after it: 5 tasks sent, 5 results")

    code = 1
    try:
        httptest.run(globals())
    except SystemExit as e:
        code = e.code
    finally:
        for q in ("wvtasks.dlx", "wvtasks.dlx.dead", "wvtasks.bad", "wvtasks.bad.dead"):
            try:
                fresh(q)
            except Exception:  # noqa: BLE001
                pass
        if OWN:
            subprocess.run(["bash", CTL, "stop", NODE], capture_output=True)
        shutil.rmtree(DIR, ignore_errors=True)
    # not through the interpreter's teardown: Celery's result objects would
    # try to reach the stopped node as they are collected
    sys.stdout.flush()
    os._exit(code)
