"""What the task-queue tests share (test_tasks_celery.py on Redis,
test_tasks_amqp.py on RabbitMQ): weave's C peer (tasks_peer.c) as a
command and as a worker, a Python Celery worker of a test module, and a
wait for a task's state."""
import os
import subprocess
import sys
import time

from httptest import SANITIZER_MARKERS, check, eq

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.abspath(os.path.join(os.environ.get("BUILD_DIR", "build/release"), "tasks_peer"))


def peer(*args, env=None, timeout=60):
    """tasks_peer ARGS: (exit status, stdout, stderr), stripped."""
    p = subprocess.run([PEER, *args], capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout.strip(), p.stderr.strip()


class Worker:
    """tasks_peer worker ARGS, once it says "ready"; stop() is SIGTERM (a
    warm shutdown: exit 0, no sanitizer report), kill() SIGKILL."""

    def __init__(self, *args, env=None):
        self.p = subprocess.Popen([PEER, "worker", *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  env=dict(os.environ, **(env or {})))
        eq(self.p.stdout.readline().strip(), "ready", "worker banner")

    def line(self):
        return self.p.stdout.readline().strip()

    def stop(self):
        self.p.terminate()
        rc = self.p.wait(timeout=30)
        err = self.p.stderr.read()
        for bad in SANITIZER_MARKERS:
            check(bad not in err, err[-3000:])
        eq(rc, 0, "worker exit status: " + err[-2000:])
        return err

    def kill(self):
        self.p.kill()
        self.p.wait()


def py_worker(module, url, *extra):
    """A Python Celery worker (-P solo) of the test module `module` on url."""
    env = dict(os.environ, C_FORCE_ROOT="1", TASKS_BROKER=url)
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", module, "worker", "-P", "solo", *extra,
         "--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "info"],
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_state(r, state, secs=10):
    """r.state once it is `state`, or whatever it is after secs."""
    end = time.monotonic() + secs
    while r.state != state and time.monotonic() < end:
        time.sleep(0.05)
    return r.state


class Events:
    """Celery's own event receiver feeding Celery's State (what Flower and
    `celery events` read), in a thread: .seen lists the event types in the
    order they came, .state the tasks and workers they describe."""

    def __init__(self, app):
        import threading
        self.state = app.events.State()
        self.seen = []
        self.conn = app.connection()
        self.recv = app.events.Receiver(self.conn, handlers={"*": self._on})
        self.thread = threading.Thread(
            target=lambda: self.recv.capture(limit=None, timeout=None), daemon=True)
        self.thread.start()

    def _on(self, event):
        self.seen.append(event["type"])
        self.state.event(event)

    def close(self):
        self.recv.should_stop = True
        self.thread.join(timeout=5)
        self.conn.release()
