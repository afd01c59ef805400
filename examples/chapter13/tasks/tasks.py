"""The chapter's §13.8 tasks for Python's Celery, beside weave's C worker
(examples/chapter13/s13_8_tasks.c): the same task names, on the same
broker, so either side runs what the other sends.

    TASKS_URL=redis://localhost:6379/0 celery -A tasks worker      # Python's worker
    TASKS_URL=redis://localhost:6379/0 chapter13 worker            # weave's

The book passes a coroutine to a task (run_async_task.delay(async_add(2,
3))); a coroutine object cannot cross a broker (it is not serializable),
so here async_add is the task, and it runs its coroutine with asyncio.run,
which is what run_async_task did with it. With TASKS_URL=amqp://... this
is §13.8.2's configuration.
"""
import asyncio
import os

from celery import Celery

BROKER = os.environ.get("TASKS_URL", "redis://localhost:6379/0")
BACKEND = os.environ.get("TASKS_BACKEND") or (
    "rpc://" if BROKER.startswith("amqp") else BROKER)

app = Celery("tasks", broker=BROKER, backend=BACKEND)


@app.task
def add(x, y):
    return x + y


async def _async_add(x, y):
    await asyncio.sleep(1)
    return x + y


@app.task
def async_add(x, y):
    return asyncio.run(_async_add(x, y))


if __name__ == "__main__":
    result = async_add.delay(2, 3)
    print(result.get())  # Output: 5 after delay
