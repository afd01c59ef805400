"""Anchor of rt.fiber_rss: resident memory per asyncio task parked in a sleep.

Same shape as `bench_rt fiber_rss`: RSS (/proc/self/statm) before creating n
tasks that each await asyncio.sleep(3600), and once every one of them has
started; then they are cancelled. Prints value=<bytes per task>.
Usage: /usr/bin/python3 asyncio_rss.py [n]
"""

import asyncio
import gc
import os
import sys
import time


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def sleeper(started):
    started[0] += 1
    await asyncio.sleep(3600)


async def main(n):
    gc.collect()
    rss0 = rss_bytes()
    started = [0]
    t0 = time.perf_counter_ns()
    tasks = [asyncio.create_task(sleeper(started)) for _ in range(n)]
    while started[0] < n:
        await asyncio.sleep(0)
    t1 = time.perf_counter_ns()
    rss1 = rss_bytes()
    for t in tasks:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
    if cancelled != n:
        sys.exit(f"asyncio_rss: WRONG RESULT: {cancelled} of {n} tasks were cancelled")
    per = (rss1 - rss0) / n
    print(f"asyncio_rss: {n} tasks parked in asyncio.sleep: RSS {rss0 // 1024} -> "
          f"{rss1 // 1024} KiB, {per:.0f} bytes per task; create+park "
          f"{(t1 - t0) / 1e6:.1f} ms", file=sys.stderr)
    print(f"value={per:.3f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100000))
