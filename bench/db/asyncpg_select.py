"""The asyncpg anchor of bench/run_db.sh: the single-row select by id that
bench_pg runs, on Debian's python3 + asyncpg (and uvloop when asked).

    /usr/bin/python3 asyncpg_select.py URL MODE SECONDS
      MODE 1conn: 1 task, 1 connection (db.select_1conn)
           pool:  64 tasks on a pool of 16 (db.select_pool)

Every row is checked (id and name). Prints `value=<queries/s>` last.
"""
import asyncio
import random
import sys
import time

import asyncpg

SQL = "SELECT id, name FROM bench_users WHERE id = $1"


async def worker(acquire, until, counts, k):
    n = 0
    while time.perf_counter() < until:
        i = random.randint(1, 10000)
        async with acquire() as conn:
            row = await conn.fetchrow(SQL, i)
        if row["id"] != i or row["name"] != "user %d" % i:
            raise RuntimeError("wrong row for %d: %r" % (i, row))
        n += 1
    counts[k] = n


async def main():
    url, mode, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if mode == "1conn":
        conn = await asyncpg.connect(url)
        await conn.fetchrow(SQL, 1)  # prepare and warm up

        class One:
            async def __aenter__(self):
                return conn

            async def __aexit__(self, *a):
                return False

        acquire, tasks = One, 1
    else:
        pool = await asyncpg.create_pool(url, min_size=16, max_size=16)
        acquire, tasks = pool.acquire, 64
    counts = [0] * tasks
    t0 = time.perf_counter()
    until = t0 + secs
    await asyncio.gather(*(worker(acquire, until, counts, k) for k in range(tasks)))
    took = time.perf_counter() - t0
    if mode == "1conn":
        await conn.close()
    else:
        await pool.close()
    print("# asyncpg %s: %d queries in %.2f s" % (mode, sum(counts), took))
    print("value=%.1f" % (sum(counts) / took))


if __name__ == "__main__":
    asyncio.run(main())
