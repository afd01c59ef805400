"""bench/ws/websockets_server.py: the Python `websockets` anchor of bench/run_ws.sh.

    /usr/bin/python3 websockets_server.py PORT

One process on uvloop (websockets' documentation recommends it for
performance), compression off (as on the other servers); every message is
echoed as it came (text as text, binary as binary), on any path. Prints the
loop it runs on.
"""
import asyncio
import signal
import sys

import uvloop
import websockets


async def echo(ws, path=None):
    async for msg in ws:
        await ws.send(msg)


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(echo, "127.0.0.1", port, compression=None,
                                max_size=16 << 20, backlog=4096):
        loop = type(asyncio.get_running_loop()).__module__
        print(f"listening on ws://127.0.0.1:{port} (websockets {websockets.__version__}, {loop})",
              flush=True)
        await stop


uvloop.install()
asyncio.run(main(int(sys.argv[1])))
