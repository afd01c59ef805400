"""The anchor of httpc.get_aiohttp (bench/run_httpc.sh): aiohttp's client
(one ClientSession, its TCPConnector allowing as many connections as tasks)
on uvloop, TASKS (64) tasks GETting URL in a loop, every response checked
(status 200 and exactly BODY). What completes in SECONDS after a 0.5 s
warm-up counts; the last line is value=<responses per second>.

    aiohttp_get.py URL SECONDS [TASKS] [BODY]
"""
import asyncio
import sys
import time

import aiohttp
import uvloop

WARM = 0.5


async def main(url, seconds, tasks, body):
    done = 0
    failed = 0
    connector = aiohttp.TCPConnector(limit=tasks)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        warm_end = start + WARM
        end = warm_end + seconds

        async def worker():
            nonlocal done, failed
            while True:
                async with session.get(url) as r:
                    got = await r.read()
                    status = r.status
                now = time.monotonic()
                if status != 200 or got != body:
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
