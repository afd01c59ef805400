"""The Celery 5.2 app of bench/run_tasks.sh's anchors (Debian's
python3-celery on /usr/bin/python3), the same tasks as bench_tasks.c's
worker:

  tasks.noop         does nothing (its result: None, stored as null)
  tasks.async_add    sleeps 1 s, returns x + y (time.sleep: under -P gevent
                     Celery's monkey patching makes it gevent's sleep)

Run as `celery -A celery_app worker ...` from this directory (or with it on
PYTHONPATH) with the broker in $TASKS_BROKER and the result backend in
$TASKS_BACKEND (the broker's URL when unset: one redis:// URL for both, as
weave's worker uses in the suite). Settings beside the defaults, each from Celery's "Optimizing"
guide or the worker's documented options:

  worker_disable_rate_limits   no task has a rate limit: skip the rate-limit
                               bookkeeping of every task
  worker_prefetch_multiplier   $TASKS_PREFETCH (4, Celery's default, when
                               unset): messages reserved per unit of
                               concurrency
  worker_hijack_root_logger    off: the command line's -l WARNING decides

Once the consumer is up, the worker_ready signal prints "ready" on stdout
(what the suite waits for before it releases the queue).
"""
import os
import sys
import time

from celery import Celery
from celery.signals import worker_ready

URL = os.environ.get("TASKS_BROKER", "redis://127.0.0.1:6379/0")

app = Celery("bench_tasks", broker=URL, backend=os.environ.get("TASKS_BACKEND", URL))
app.conf.worker_disable_rate_limits = True
app.conf.worker_prefetch_multiplier = int(os.environ.get("TASKS_PREFETCH", "4"))
app.conf.worker_hijack_root_logger = False


@app.task(name="tasks.noop")
def noop():
    return None


@app.task(name="tasks.async_add")
def async_add(x, y):
    time.sleep(1)
    return x + y


@worker_ready.connect
def _say_ready(**_):
    sys.stdout.write("ready\n")
    sys.stdout.flush()
