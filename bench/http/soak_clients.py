"""The WebSocket traffic and the bad requests of http.soak (bench/http/soak.sh).

    /usr/bin/python3 soak_clients.py HOST PORT SECONDS [WS_CONNS] [WS_RATE] [BAD_RATE]

For SECONDS, against weave's bench_http_server at HOST:PORT:

- WebSockets: WS_CONNS (default 8) connections to /ws (the server's echo
  route), each sending WS_RATE (default 100) messages a second, text and
  binary in turn, 1 to 4096 bytes, and checking that each comes back
  unchanged; every 1000 messages a connection closes (a clean close
  handshake) and opens again, so that connections come and go all along.
  The client offers permessage-deflate (websockets' default), so the
  server's compression runs too.
- Bad requests: BAD_RATE (default 5) a second, each on a new connection,
  in turn: a request line that is not HTTP, a header line without a colon,
  a 70 KiB header (over the 64 KiB head limit), a 9 KiB request target (over
  the 8 KiB request-line limit), a Content-Length that is not a number, a
  declared body over the 1 MiB limit, HTTP/9.9, a NUL in a header value, and
  a head cut short by the client closing. Each must end with a 4xx or 505
  answer or the server closing the connection (the cut head: nothing to
  answer); any other answer (2xx, 500, ...) or silence for 5 s is an error.

Every other failure (a WebSocket that cannot connect, an echo that differs
or does not come within 5 s, a connection dropped without a close frame) is
an error. At the end one line on stdout:

    soakclients secs=.. ws_msgs=.. ws_bytes=.. ws_connects=.. ws_errors=..
                bad=.. bad_expected=.. bad_errors=.. bad_statuses=400:..,431:..,close:..

and the first few errors on stderr. Exit status 0 (the driver judges).
Needs Debian's python3-websockets.
"""

import asyncio
import os
import random
import sys
import time

import websockets

BAD = [
    ("not-http", b"GARBAGE\r\n\r\n"),
    ("no-colon", b"GET /plaintext HTTP/1.1\r\nHost: x\r\nThis is not a header\r\n\r\n"),
    ("head-70k", b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n"),
    ("target-9k", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
    ("length-nan", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
    ("body-2m", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"),
    ("http-9.9", b"GET /plaintext HTTP/9.9\r\nHost: x\r\n\r\n"),
    ("nul-value", b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
    ("cut-head", b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-A: "),
]

errors = []
counts = dict(ws_msgs=0, ws_bytes=0, ws_connects=0, ws_errors=0, bad=0, bad_expected=0,
              bad_errors=0)
statuses = {}


def error(kind, what):
    counts[kind] += 1
    if len(errors) < 20:
        errors.append(what)


async def ws_client(url, rate, deadline, idx):
    rng = random.Random(idx)
    period = 1.0 / rate
    while time.monotonic() < deadline:
        try:
            async with websockets.connect(url, max_size=1 << 20, open_timeout=5,
                                          close_timeout=5) as ws:
                counts["ws_connects"] += 1
                nxt = time.monotonic()
                for n in range(1000):
                    if time.monotonic() >= deadline:
                        break
                    size = rng.randint(1, 4096)
                    if n % 2:
                        msg = os.urandom(size)
                    else:
                        msg = "".join(rng.choice("abcdefghij é€") for _ in range(size // 4 + 1))
                    await ws.send(msg)
                    got = await asyncio.wait_for(ws.recv(), 5)
                    if got != msg:
                        error("ws_errors", f"ws {idx}: echo differs ({len(got)} vs {len(msg)})")
                        break
                    counts["ws_msgs"] += 1
                    counts["ws_bytes"] += len(msg)
                    nxt += period
                    delay = nxt - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        nxt = time.monotonic()
            if ws.close_code != 1000:
                error("ws_errors", f"ws {idx}: closed with {ws.close_code}")
        except Exception as e:  # noqa: BLE001 - every failure counts
            error("ws_errors", f"ws {idx}: {type(e).__name__}: {e}")
            await asyncio.sleep(0.1)


async def bad_request(host, port, name, data):
    counts["bad"] += 1
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    except Exception as e:  # noqa: BLE001
        error("bad_errors", f"bad {name}: connect: {type(e).__name__}: {e}")
        return
    outcome = None
    try:
        try:
            writer.write(data)
            await writer.drain()
        except (ConnectionError, BrokenPipeError):
            pass  # the server may answer and close before reading it all
        if name == "cut-head":
            writer.close()
            outcome = "close"
        else:
            try:
                line = await asyncio.wait_for(reader.readline(), 5)
            except asyncio.TimeoutError:
                line = None
            except ConnectionError:
                line = b""
            if line is None:
                error("bad_errors", f"bad {name}: no answer and no close within 5 s")
                return
            if not line:
                outcome = "close"
            else:
                parts = line.split(b" ", 2)
                outcome = parts[1].decode(errors="replace") if len(parts) > 1 else "?"
    finally:
        writer.close()
    statuses[outcome] = statuses.get(outcome, 0) + 1
    if outcome == "close" or outcome == "505" or (outcome.isdigit() and outcome.startswith("4")):
        counts["bad_expected"] += 1
    else:
        error("bad_errors", f"bad {name}: answered {outcome}")


async def bad_requests(host, port, rate, deadline):
    period = 1.0 / rate
    i = 0
    nxt = time.monotonic()
    tasks = set()
    while time.monotonic() < deadline:
        name, data = BAD[i % len(BAD)]
        i += 1
        t = asyncio.ensure_future(bad_request(host, port, name, data))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        nxt += period
        await asyncio.sleep(max(0.0, nxt - time.monotonic()))
    if tasks:
        await asyncio.wait(tasks)


async def main():
    if len(sys.argv) < 4:
        print("usage: soak_clients.py HOST PORT SECONDS [WS_CONNS] [WS_RATE] [BAD_RATE]",
              file=sys.stderr)
        return 2
    host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    nws = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    rate = float(sys.argv[5]) if len(sys.argv) > 5 else 100
    bad_rate = float(sys.argv[6]) if len(sys.argv) > 6 else 5
    t0 = time.monotonic()
    deadline = t0 + secs
    url = f"ws://{host}:{port}/ws"
    await asyncio.gather(*(ws_client(url, rate, deadline, i) for i in range(nws)),
                         bad_requests(host, port, bad_rate, deadline))
    st = ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())) or "none"
    print(f"soakclients secs={time.monotonic() - t0:.0f} ws_msgs={counts['ws_msgs']}"
          f" ws_bytes={counts['ws_bytes']} ws_connects={counts['ws_connects']}"
          f" ws_errors={counts['ws_errors']} bad={counts['bad']}"
          f" bad_expected={counts['bad_expected']} bad_errors={counts['bad_errors']}"
          f" bad_statuses={st}", flush=True)
    for e in errors:
        print(f"soak_clients.py: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
