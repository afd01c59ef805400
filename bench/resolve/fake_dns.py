#!/usr/bin/python3
"""A tiny DNS responder on loopback for bench/bench_resolve.c (stdlib only).

    /usr/bin/python3 bench/resolve/fake_dns.py [--port 5353] [--delay-ms 0]

Answers every UDP query for a name under `weave-bench.test.`:
A with 127.0.0.77 (an address nothing else hands out, so the benchmark can
tell that this server answered and not some other one), AAAA with ::1, any
other type with an empty NOERROR answer. Anything else gets REFUSED. Each
answer leaves after --delay-ms (a timer, not a sleep: any number of queries
wait at once, as at a real server one round trip away). It binds
127.0.0.1 only, prints "ready <port>" on stdout once bound, and stops on
SIGTERM or SIGINT; on exit it prints how many queries it answered.
"""

import argparse
import asyncio
import signal
import struct
import sys

ZONE = b"weave-bench.test"
A_ADDR = bytes([127, 0, 0, 77])
AAAA_ADDR = bytes(15) + b"\x01"
T_A, T_AAAA, C_IN = 1, 28, 1


def parse_question(msg):
    """(id, flags, qname bytes as labels joined by '.', qtype, end offset) or None."""
    if len(msg) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if qdcount != 1 or flags & 0x8000:  # one question, and a query
        return None
    labels, i = [], 12
    while True:
        if i >= len(msg):
            return None
        n = msg[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0 or i + n > len(msg):
            return None
        labels.append(msg[i : i + n])
        i += n
    if i + 4 > len(msg):
        return None
    qtype, qclass = struct.unpack("!HH", msg[i : i + 4])
    return qid, flags, b".".join(labels).lower(), qtype, qclass, i + 4


def answer(msg):
    q = parse_question(msg)
    if q is None:
        return None
    qid, flags, name, qtype, qclass, end = q
    question = msg[12:end]
    rd = flags & 0x0100
    if not (name == ZONE or name.endswith(b"." + ZONE)) or qclass != C_IN:
        return struct.pack("!HHHHHH", qid, 0x8080 | rd | 5, 1, 0, 0, 0) + question  # REFUSED
    rr = b""
    if qtype == T_A:
        rr = struct.pack("!HHHIH", 0xC00C, T_A, C_IN, 60, 4) + A_ADDR
    elif qtype == T_AAAA:
        rr = struct.pack("!HHHIH", 0xC00C, T_AAAA, C_IN, 60, 16) + AAAA_ADDR
    ancount = 1 if rr else 0
    # QR, AA, RD copied, RA; NOERROR
    return struct.pack("!HHHHHH", qid, 0x8480 | rd, 1, ancount, 0, 0) + question + rr


class Responder(asyncio.DatagramProtocol):
    def __init__(self, delay):
        self.delay = delay
        self.transport = None
        self.answered = 0

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        reply = answer(data)
        if reply is None:
            return
        self.answered += 1
        if self.delay > 0:
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, reply, addr)
        else:
            self.transport.sendto(reply, addr)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=5353)
    ap.add_argument("--delay-ms", type=float, default=0.0)
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    transport, proto = await loop.create_datagram_endpoint(
        lambda: Responder(args.delay_ms / 1000.0), local_addr=("127.0.0.1", args.port)
    )
    print(f"ready {args.port}", flush=True)
    try:
        await stop
    finally:
        transport.close()
        print(f"fake_dns: answered {proto.answered} queries", file=sys.stderr, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
