"""bench/ws/websockets_server.py: the Python `websockets` anchor of bench/run_ws.sh.

    /usr/bin/python3 websockets_server.py PORT

One process, plain asyncio event loop, compression off; every message is
echoed as it came (text as text, binary as binary), on any path.
"""
import asyncio
import signal
import sys

import websockets


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(echo, "127.0.0.1", port, compression=None,
                                max_size=16 << 20, backlog=4096):
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await stop


asyncio.run(main(int(sys.argv[1])))
