"""The anchor of memcache.pymemcache (bench/run_cache.sh): Python's
pymemcache (Debian's python3-pymemcache) doing what `bench_memcache shared
SERVER SECONDS 50` does: THREADS threads sharing ONE PooledClient, get of a
random key of the preloaded key set in a loop, every value checked.

pymemcache has no asyncio client; its documented way to serve many callers
at once is PooledClient from threads (a connection per concurrent caller,
max_pool_size = THREADS, connections made before the clock starts), with
no serializer (values come back as the bytes stored) and TCP_NODELAY on
(its default).

The key set is bench_memcache preload's (keyset.py, bench/bench_keyset.h). Every thread first
runs 0.5 s of warm-up; what completes in the SECONDS after it counts.

    /usr/bin/python3 pymemcache_get.py HOST:PORT SECONDS [THREADS]

Prints a '#' line about the run, then server_cpu=, client_cpu=,
server_us=, client_us= (keyset.print_cpu; the server's pid is
CACHE_SERVER_PID) and value=<gets per second> last.
"""
import random
import sys
import threading
import time

import pymemcache
from pymemcache.client.base import PooledClient

from keyset import KEY_NAMES, KEYS, VALUES, cpu_mark, print_cpu
from keyset import server_pid as get_server_pid

WARM_S = 0.5


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    secs = float(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    server_pid = get_server_pid()
    client = PooledClient((host, int(port)), max_pool_size=threads, no_delay=True)
    counts = [0] * threads
    failures = []
    ready = threading.Barrier(threads + 1)
    times = {}

    def worker(k):
        rng = random.Random(k + 1)
        client.get(KEY_NAMES[0])  # this thread's connection, made before the clock
        ready.wait()
        warm_end, end_at = times["warm_end"], times["end_at"]
        done, now, randrange, get = 0, time.perf_counter, rng.randrange, client.get
        while True:
            n = randrange(KEYS)
            v = get(KEY_NAMES[n])
            if v != VALUES[n]:
                failures.append("WRONG VALUE for key %d: %r" % (n, v))
                break
            t = now()
            if t >= end_at:
                break
            if t >= warm_end:
                done += 1
        counts[k] = done

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    start = time.perf_counter()
    times["warm_end"], times["end_at"] = start + WARM_S, start + WARM_S + secs
    ready.wait()
    time.sleep(max(0.0, times["warm_end"] - time.perf_counter()))
    a = cpu_mark(server_pid)
    time.sleep(max(0.0, times["end_at"] - time.perf_counter()))
    b = cpu_mark(server_pid)
    for t in pool:
        t.join()
    if failures:
        sys.exit("pymemcache_get.py: " + failures[0])
    rate = sum(counts) / secs
    print("# pymemcache %s PooledClient(max_pool_size=%d): %d threads, %d gets in %.2f s after "
          "%.1f s of warm-up" % (pymemcache.__version__, threads, threads, sum(counts), secs,
                                 WARM_S))
    print_cpu(a, b, rate)
    print("value=%.1f" % rate)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: pymemcache_get.py HOST:PORT SECONDS [THREADS]")
    main()
