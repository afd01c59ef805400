"""Anchor of rt.spawn: asyncio create_task + await of a trivial coroutine.

Same shape as `bench_rt spawn`: batches of 1000 tasks, each batch created
(create_task) and then awaited task by task; one warm-up batch first.
Prints value=<ns per task>. Usage: /usr/bin/python3 asyncio_spawn.py [n]
"""

import asyncio
import sys
import time

BATCH = 1000


async def trivial(box):
    box[0] += 1


async def batch(box):
    tasks = [asyncio.create_task(trivial(box)) for _ in range(BATCH)]
    for t in tasks:
        await t


async def main(n):
    box = [0]
    await batch(box)
    batches = max(1, n // BATCH)
    box[0] = 0
    t0 = time.perf_counter_ns()
    for _ in range(batches):
        await batch(box)
    ns = time.perf_counter_ns() - t0
    tasks = batches * BATCH
    if box[0] != tasks:
        sys.exit(f"asyncio_spawn: WRONG RESULT: {box[0]} of {tasks} tasks ran")
    per = ns / tasks
    print(f"asyncio_spawn: {tasks} tasks (batches of {BATCH}) in {ns / 1e6:.1f} ms: "
          f"{per:.1f} ns per task", file=sys.stderr)
    print(f"value={per:.3f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200000))
