"""The asyncpg anchor of bench/run_db.sh: the single-row select by id that
bench_pg runs, on Debian's python3 + asyncpg, at its best settings:

  - on uvloop (asyncpg's own benchmarks and documentation run it there);
  - the statement prepared once per connection (asyncpg's statement cache,
    on by default, as weave's);
  - pool mode: a pool of 16 connections opened before the clock starts
    (min_size = max_size), whose connections skip asyncpg's reset query on
    release (NoResetConnection below). By default every release runs
    `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;`,
    one more round trip per acquire/release that weave's pool does not pay
    (weave resets only a connection that needs it: a transaction left open,
    a LISTEN).

    /usr/bin/python3 asyncpg_select.py URL MODE SECONDS
      MODE 1conn: 1 task, 1 connection (db.select_1conn)
           pool:  64 tasks on a pool of 16 (db.select_pool)

Every row is checked (id and name). Prints a '#' line with the settings and
`value=<queries/s>` last.
"""
import asyncio
import random
import sys
import time

import asyncpg
import uvloop

SQL = "SELECT id, name FROM bench_users WHERE id = $1"


class NoResetConnection(asyncpg.connection.Connection):
    """A pool connection released without asyncpg's reset query: the tasks
    here never leave a transaction, a cursor, a LISTEN or a setting behind.
    asyncpg (0.27 in Debian 12) builds the reset query in
    Connection._get_reset_query(); Connection.reset() sends nothing when it
    is empty (and still sends ROLLBACK when a transaction was left open)."""

    def _get_reset_query(self):
        return ""


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
        pool = await asyncpg.create_pool(url, min_size=16, max_size=16,
                                         connection_class=NoResetConnection)
        async with pool.acquire() as c:  # NoResetConnection really is what the pool makes
            if not isinstance(c._con, NoResetConnection) or c._con._get_reset_query():
                raise RuntimeError("the pool's connections still have a reset query")
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
    print("# asyncpg %s %s on %s: %d queries in %.2f s%s"
          % (asyncpg.__version__, mode, type(asyncio.get_running_loop()).__module__,
             sum(counts), took,
             ", pool of 16 without the reset query on release" if mode == "pool" else ""))
    print("value=%.1f" % (sum(counts) / took))


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main())
