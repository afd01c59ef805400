"""The anchor of redis.asyncio (bench/run_cache.sh): Python's redis.asyncio
(Debian's python3-redis) doing what `bench_redis shared URL SECONDS 50`
does: TASKS tasks sharing ONE redis.asyncio.Redis, GET of a random key of
the preloaded key set in a loop, every value checked.

At its best documented settings:
  - on uvloop (uvloop.install());
  - the client's own connection pool with its defaults (Redis.from_url: no
    max_connections, so each task that finds no idle connection opens one:
    up to TASKS connections, one command in flight on each);
  - bytes replies (decode_responses=False, the default: no decoding);
  - hiredis's reply parser when hiredis is installed (python3-hiredis), which
    redis-py picks by itself and documents as its fast path; the '#' line
    says which parser ran.

The key set is bench_redis preload's (keyset.py, bench/bench_keyset.h). Every task
first runs 0.5 s of warm-up (the connections are opened then); what
completes in the SECONDS after it counts.

    /usr/bin/python3 redis_asyncio_get.py URL SECONDS [TASKS]

Prints a '#' line about the run, then server_cpu= and client_cpu= (the CPU
the Redis server, its pid in CACHE_SERVER_PID, and this process used over
the timed window, in % of one core; -1 without the pid), server_us= and
client_us= (the same in CPU microseconds per GET; bench/cache/note.sh
collects these lines), and value=<GETs per second> last.
"""
import asyncio
import random
import sys
import time

import redis
import redis.asyncio
import uvloop

from keyset import KEY_NAMES, KEYS, VALUES, cpu_mark, print_cpu
from keyset import server_pid as get_server_pid

WARM_S = 0.5


async def worker(r, warm_end, end_at, counts, k, rng):
    done = 0
    randrange, now = rng.randrange, time.perf_counter
    while True:
        n = randrange(KEYS)
        v = await r.get(KEY_NAMES[n])
        if v != VALUES[n]:
            raise RuntimeError("WRONG VALUE for key %d: %r" % (n, v))
        t = now()
        if t >= end_at:
            break
        if t >= warm_end:
            done += 1
    counts[k] = done


async def main():
    url, secs = sys.argv[1], float(sys.argv[2])
    tasks = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    server_pid = get_server_pid()
    r = redis.asyncio.Redis.from_url(url)
    await r.ping()
    pool = r.connection_pool
    parser = pool.connection_class(**pool.connection_kwargs)._parser.__class__.__name__
    counts = [0] * tasks
    start = time.perf_counter()
    warm_end, end_at = start + WARM_S, start + WARM_S + secs
    work = asyncio.gather(*(worker(r, warm_end, end_at, counts, k, random.Random(k + 1))
                            for k in range(tasks)))
    marks = []

    async def clock():
        await asyncio.sleep(max(0.0, warm_end - time.perf_counter()))
        marks.append(cpu_mark(server_pid))
        await asyncio.sleep(max(0.0, end_at - time.perf_counter()))
        marks.append(cpu_mark(server_pid))

    await asyncio.gather(work, clock())
    conns = len(pool._available_connections) + len(pool._in_use_connections)
    await r.close()
    await pool.disconnect()
    print("# redis.asyncio (redis-py %s) on %s: %d tasks on one Redis, its default pool "
          "(max_connections %s, %d connections opened), parser %s, decode_responses off; "
          "%d GETs in %.2f s after %.1f s of warm-up"
          % (redis.__version__, type(asyncio.get_running_loop()).__module__, tasks,
             pool.max_connections, conns, parser, sum(counts), secs, WARM_S))
    rate = sum(counts) / secs
    print_cpu(marks[0], marks[1], rate)
    print("value=%.1f" % rate)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: redis_asyncio_get.py URL SECONDS [TASKS]")
    uvloop.install()
    asyncio.run(main())
