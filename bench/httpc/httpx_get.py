"""The anchor of httpc.get (bench/run_httpc.sh): Python httpx's AsyncClient on
uvloop, TASKS (64) tasks GETting URL in a loop through one client whose pool
allows as many connections as tasks, every response checked (status 200 and
exactly BODY). What completes in SECONDS after a 0.5 s warm-up counts; the
last line is value=<responses per second>.

    httpx_get.py URL SECONDS [TASKS] [BODY]
"""
import asyncio
import sys
import time

import httpx
import uvloop

WARM = 0.5


async def main(url, seconds, tasks, body):
    limits = httpx.Limits(max_connections=tasks, max_keepalive_connections=tasks)
    done = 0
    failed = 0
    async with httpx.AsyncClient(limits=limits) as client:
        start = time.monotonic()
        warm_end = start + WARM
        end = warm_end + seconds

        async def worker():
            nonlocal done, failed
            while True:
                r = await client.get(url)
                now = time.monotonic()
                if r.status_code != 200 or r.content != body:
                    failed += 1
                    return
                if now >= end:
                    return
                if now >= warm_end:
                    done += 1

        await asyncio.gather(*(worker() for _ in range(tasks)))
    if failed:
        print("# %d responses were not a 200 with the expected body" % failed, file=sys.stderr)
        sys.exit(1)
    print("value=%.0f" % (done / seconds))


if __name__ == "__main__":
    url, seconds = sys.argv[1], float(sys.argv[2])
    tasks = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    body = (sys.argv[4] if len(sys.argv) > 4 else "Hello, World!").encode()
    uvloop.install()
    asyncio.run(main(url, seconds, tasks, body))
