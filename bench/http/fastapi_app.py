"""The FastAPI anchor of bench/run_http.sh: the book chapter's own stack.

run_http.sh runs it with Debian's python and uvicorn's fast mode (uvloop and
httptools; without them uvicorn falls back to asyncio + h11, see
docs/benchmarking.md), one worker, on CPU 0:

    taskset -c 0 /usr/bin/python3 -m uvicorn --app-dir bench/http fastapi_app:app \
        --host 127.0.0.1 --port PORT --loop uvloop --http httptools --workers 1 \
        --no-access-log --log-level warning --backlog 4096
"""

import asyncio

from fastapi import FastAPI

app = FastAPI()


@app.get("/json")
async def json_route():
    """http.json / http.json_cpu: a route returning the dict."""
    return {"message": "Hello, World!"}


@app.get("/async-endpoint")
async def async_endpoint():
    """http.sleep10k: the chapter's endpoint, an asynchronous 1 s sleep."""
    await asyncio.sleep(1)
    return {"message": "Asynchronous Response"}
