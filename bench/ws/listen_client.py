"""bench/ws/listen_client.py: the Python `websockets` client of
ws.conn_rss_listen_pyclient (bench/run_ws.sh): N connections that never send
anything after the handshake (subscribers that only listen), as a user of
Debian's python3 + websockets writes them: `websockets.connect(url)` with
its defaults, on uvloop.

    /usr/bin/python3 listen_client.py URL N [OPTION...]

      OPTION  no-compression  do not offer permessage-deflate (the default
                              client offers it: Sec-WebSocket-Extensions:
                              permessage-deflate; client_max_window_bits)
              no-ping         no keepalive pings (the default client pings
                              every 20 s and the server must answer each)

Connects 100 at a time, checks each handshake (what the server agreed to,
on stderr), prints "ready N" on stdout, then stays idle, reading nothing it
does not have to, until SIGTERM. Every message the server sends is counted
and reported on stderr at the end (a listener of an echo route gets none).
"""
import asyncio
import signal
import sys

import uvloop
import websockets

CONNECTORS = 100


async def main():
    url, n = sys.argv[1], int(sys.argv[2])
    opts = set(sys.argv[3:])
    unknown = opts - {"no-compression", "no-ping"}
    if unknown:
        print("listen_client.py: unknown option(s) %s" % " ".join(sorted(unknown)),
              file=sys.stderr)
        return 2
    kw = {}
    if "no-compression" in opts:
        kw["compression"] = None
    if "no-ping" in opts:
        kw["ping_interval"] = None
    conns = []
    next_i = 0
    agreed = {}

    async def connector():
        nonlocal next_i
        while next_i < n:
            next_i += 1
            ws = await asyncio.wait_for(websockets.connect(url, **kw), 20)
            ext = ws.response_headers.get("Sec-WebSocket-Extensions", "none")
            agreed[ext] = agreed.get(ext, 0) + 1
            conns.append(ws)

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.gather(*(connector() for _ in range(min(CONNECTORS, n))))
    print("listen_client.py: %d connections to %s in %.2f s (options: %s); extensions "
          "agreed: %s" % (len(conns), url, loop.time() - t0, " ".join(sorted(opts)) or "none",
                          ", ".join("%s x%d" % kv for kv in agreed.items())),
          file=sys.stderr, flush=True)
    print("ready %d" % len(conns), flush=True)
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    # messages the server sent meanwhile sit in each connection's queue
    got = sum(len(ws.messages) for ws in conns)
    closed = sum(1 for ws in conns if ws.closed)
    print("listen_client.py: %d messages received, %d connections closed by then"
          % (got, closed), file=sys.stderr, flush=True)
    for ws in conns:
        ws.transport.abort()
    return 0


if __name__ == "__main__":
    uvloop.install()
    sys.exit(asyncio.run(main()))
