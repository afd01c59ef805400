"""The producer of bench/run_tasks.sh's tasks.outbox anchor: the work of
weave's `bench_tasks outbox` done the way a Python service does it without
a transactional outbox. Each of WARM + N transactions inserts a row into
bench_orders (asyncpg, on uvloop when it is installed) and commits; after
the commit the task is sent with Celery's send_task to Redis (a Celery
worker runs it and stores its result in Redis). PRODUCERS coroutines share
the transactions, each on a connection of its own from an asyncpg pool of
as many (held for the whole batch: no acquire, release or reset query per
transaction; asyncpg's statement cache on), and send_task is Celery's
blocking call, made from the coroutine as a service's handler makes it.

    outbox_celery.py PG_URL REDIS_URL WARM N PRODUCERS IDS WARM_DONE T0 DONE

The WARM transactions first; then it waits until the file WARM_DONE exists
(the waiter, bench_tasks count, makes it once their results are stored),
writes its CLOCK_MONOTONIC reading in ns to the file T0 (the waiter's
clock starts there: the first timed transaction) and runs the N. The ids
of every task, in the order of the transactions, go to the file IDS as
"<id> null" (what bench_tasks count checks in the backend). At the end
bench_orders must hold WARM + N rows, and the pool's connections stay open
until the file DONE exists (the run script makes it once the waiter has
every result), so that PostgreSQL's CPU over the waiter's window counts
every backend that served it. The producer's Celery app has no
result backend: it never waits for a result, so it does not subscribe to
each task's result channel as an app with the Redis backend does at send
time (the worker, which has one, stores every result).
"""
import asyncio
import os
import sys
import time

import asyncpg
from celery import Celery


async def batch(pool, app, first, last, producers, ids):
    async def one(k):
        async with pool.acquire() as conn:
            for i in range(first + k, last, producers):
                async with conn.transaction():
                    await conn.execute("INSERT INTO bench_orders (note) VALUES ($1)",
                                       f"order {i}")
                ids[i] = app.send_task("tasks.noop").id

    await asyncio.gather(*(one(k) for k in range(producers)))


async def wait_file(path, what):
    deadline = time.monotonic() + 600
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            sys.exit(f"outbox_celery.py: {what} did not come within 600 s")
        await asyncio.sleep(0.001)


async def run(pg, app, warm, n, producers, ids_path, warm_done, t0_path, done):
    ids = [None] * (warm + n)
    pool = await asyncpg.create_pool(pg, min_size=producers, max_size=producers)
    await batch(pool, app, 0, warm, producers, ids)
    await wait_file(warm_done, "the warm-up's results")
    with open(t0_path, "w") as f:
        f.write(f"{time.monotonic_ns()}\n")
    await batch(pool, app, warm, warm + n, producers, ids)
    with open(ids_path + ".tmp", "w") as f:
        f.writelines(f"{i} null\n" for i in ids)
    os.replace(ids_path + ".tmp", ids_path)  # whole, for the waiter that looks for it
    rows = await pool.fetchval("SELECT count(*) FROM bench_orders")
    await wait_file(done, "the end of the waiter")
    await pool.close()
    if rows != warm + n:
        sys.exit(f"outbox_celery.py: bench_orders holds {rows} rows, not {warm + n}")


def main():
    if len(sys.argv) != 10:
        sys.exit("usage: outbox_celery.py PG_URL REDIS_URL WARM N PRODUCERS IDS WARM_DONE T0 DONE")
    pg, redis_url = sys.argv[1], sys.argv[2]
    warm, n, producers = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    app = Celery("bench_outbox", broker=redis_url)
    asyncio.run(run(pg, app, warm, n, producers, *sys.argv[6:10]))


if __name__ == "__main__":
    main()
