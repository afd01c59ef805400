"""Anchor of rt.chan: two tasks ping-pong over two asyncio.Queue(maxsize=1).

Same shape as `bench_rt chan`: the main task puts i on `ping` and gets it
back from `pong`, an echo task does the reverse; one round trip = a put and
a get each way. 1000 warm-up round trips first.
Prints value=<ns per round trip>. Usage: /usr/bin/python3 asyncio_queue.py [n]
"""

import asyncio
import sys
import time


async def echo(ping, pong):
    while True:
        v = await ping.get()
        if v is None:
            return
        await pong.put(v)


async def round_trips(ping, pong, start, n):
    for i in range(start, start + n):
        await ping.put(i)
        v = await pong.get()
        if v != i:
            sys.exit(f"asyncio_queue: WRONG RESULT: sent {i}, got {v} back")


async def main(n):
    ping, pong = asyncio.Queue(maxsize=1), asyncio.Queue(maxsize=1)
    task = asyncio.create_task(echo(ping, pong))
    await round_trips(ping, pong, 0, 1000)
    t0 = time.perf_counter_ns()
    await round_trips(ping, pong, 1000, n)
    ns = time.perf_counter_ns() - t0
    await ping.put(None)
    await task
    per = ns / n
    print(f"asyncio_queue: {n} round trips in {ns / 1e6:.1f} ms: {per:.1f} ns per round trip",
          file=sys.stderr)
    print(f"value={per:.3f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50000))
