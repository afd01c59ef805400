"""The FastAPI + asyncpg anchor of the db.tfb_* figures (bench/run_db.sh):
TechEmpower's database tests, as their FastAPI entry writes them.

    DATABASE_URL=postgres://... /usr/bin/python3 -m uvicorn fastapi_tfb:app \
        --app-dir bench/db --port P --loop uvloop --http httptools --workers 1 \
        --no-access-log

At its best settings: uvicorn on uvloop and httptools, no access log; an
asyncpg pool of 16 connections opened at start-up, statements prepared once
per connection (asyncpg's statement cache), and connections released without
asyncpg's reset query (NoResetConnection below: by default every release
costs one more round trip, `SELECT pg_advisory_unlock_all(); CLOSE ALL;
UNLISTEN *; RESET ALL;`, which weave's pool does not pay). GET /settings says
which loop and connection class are in use (bench/run_db.sh prints it).

/db          one random World row as JSON {"id": n, "randomNumber": n}
/queries?queries=N   N (1..500, bad or missing = 1) random rows as a JSON array
/fortunes    every Fortune plus one added at request time, sorted by message,
             as an HTML table (escaped)
"""
import asyncio
import html
import os
import random

import asyncpg
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

app = FastAPI()
pool = None

READ_ROW = "SELECT id, randomnumber FROM world WHERE id = $1"
FORTUNES = "SELECT id, message FROM fortune"


class NoResetConnection(asyncpg.connection.Connection):
    """Released to the pool without asyncpg's reset query (asyncpg 0.27 builds
    it in Connection._get_reset_query(); Connection.reset() sends nothing when
    it is empty, and still a ROLLBACK if a transaction was left open). The
    handlers never leave a transaction, cursor, LISTEN or setting behind."""

    def _get_reset_query(self):
        return ""


@app.on_event("startup")
async def startup():
    global pool
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=16, max_size=16,
                                     connection_class=NoResetConnection)


@app.get("/settings")
async def settings():
    async with pool.acquire() as conn:
        reset = conn._con._get_reset_query()
        cls = type(conn._con).__name__
    return JSONResponse({"loop": type(asyncio.get_running_loop()).__module__,
                         "asyncpg": asyncpg.__version__,
                         "connection_class": cls,
                         "reset_query": reset,
                         "pool_size": pool.get_max_size()})


def clamp(q):
    try:
        n = int(q)
    except (TypeError, ValueError):
        return 1
    return max(1, min(500, n))


@app.get("/db")
async def single_query():
    async with pool.acquire() as conn:
        row = await conn.fetchrow(READ_ROW, random.randint(1, 10000))
    return JSONResponse({"id": row[0], "randomNumber": row[1]})


@app.get("/queries")
async def multiple_queries(queries: str = None):
    n = clamp(queries)
    ids = [random.randint(1, 10000) for _ in range(n)]
    out = []
    async with pool.acquire() as conn:
        stmt = await conn.prepare(READ_ROW)
        for i in ids:
            row = await stmt.fetchrow(i)
            out.append({"id": row[0], "randomNumber": row[1]})
    return JSONResponse(out)


@app.get("/fortunes")
async def fortunes():
    async with pool.acquire() as conn:
        rows = await conn.fetch(FORTUNES)
    rows = [(r[0], r[1]) for r in rows]
    rows.append((0, "Additional fortune added at request time."))
    rows.sort(key=lambda r: r[1])
    body = "".join("<tr><td>%d</td><td>%s</td></tr>" % (i, html.escape(m, quote=True))
                   for i, m in rows)
    return HTMLResponse("<!DOCTYPE html><html><head><title>Fortunes</title></head><body>"
                        "<table><tr><th>id</th><th>message</th></tr>" + body +
                        "</table></body></html>")
