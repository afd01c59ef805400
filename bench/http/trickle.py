"""The slow clients of http.slowloris (bench/run_http.sh, via slowloris.sh).

    /usr/bin/python3 trickle.py HOST PORT CONNS

Opens CONNS connections to HOST:PORT and keeps them open, each sending one
byte of a request head per second and never the blank line that would end
it: the request line and a Host header, then an endless header value
("X-Trickle: aaaa..."), so no server can answer it before its own head
timeout (weave's is 10 s, nginx's client_header_timeout 60 s). A connection
the server closes (a 408, a reset, a plain close) is opened again at once
and starts its head over, so that the pressure stays at CONNS.

The sends are spread over the second (each connection has its own phase), so
the server sees about CONNS single bytes a second, evenly, not a burst.

Once every connection is open and has sent its first byte it prints `ready`
(stdout, flushed); from then until SIGTERM or SIGINT it counts, and on
either prints one line and exits 0:

    trickle conns=5000 secs=.. reconnects=.. answered=.. resets=.. eof=..
            connect_failures=.. bytes=.. open_min=.. open_mean=.. late_sends=..
            statuses=408:5000 cpu_s=..

reconnects: connections the server closed and that were opened again;
answered: of those, how many got a response first (statuses: their codes);
open_min / open_mean: connections open (connected), sampled every 100 ms;
late_sends: bytes sent more than 100 ms after they were due (the trickler
falling behind); cpu_s: the trickler's own CPU time over the window.

It exits 1 (and says why on stderr) if it cannot open all CONNS within 60 s.
Needs CONNS + a few file descriptors. Python's standard library only.
"""

import errno
import heapq
import os
import random
import selectors
import signal
import socket
import sys
import time

HEAD = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trickle: "
FILLER = ord("a")


class Conn:
    __slots__ = ("sock", "sent", "connected", "due", "got", "gen")

    def __init__(self):
        self.sock = None
        self.sent = 0
        self.connected = False
        self.due = 0.0
        self.got = b""
        self.gen = 0


def main():
    if len(sys.argv) != 4:
        print("usage: trickle.py HOST PORT CONNS", file=sys.stderr)
        return 2
    host, port, nconns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    addr = (host, port)
    sel = selectors.EpollSelector()
    conns = [Conn() for _ in range(nconns)]
    heap = []  # (due, index, generation): the next byte of each connection
    stop = False
    counting = False
    stats = dict(reconnects=0, answered=0, resets=0, eof=0, connect_failures=0,
                 bytes=0, late_sends=0)
    statuses = {}
    open_samples = []
    nopen = 0  # connections connected (and so past their first byte)

    def on_signal(signo, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def count(key, n=1):
        if counting:
            stats[key] += n

    def start(i, now):
        c = conns[i]
        c.gen += 1
        c.sent = 0
        c.connected = False
        c.got = b""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sock = s
        rc = s.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            c.sock = None
            count("connect_failures")
            heapq.heappush(heap, (now + 0.1, i, c.gen))  # try again soon
            return
        sel.register(s, selectors.EVENT_WRITE, i)

    def drop(i, now, reason):
        """The server closed connection i (or it failed): open it again, at
        once if it had been open, else (a failed connect) after 100 ms."""
        nonlocal nopen
        c = conns[i]
        if c.sock is not None:
            try:
                sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
            c.sock = None
        if c.connected:
            nopen -= 1
            count("reconnects")
            if c.got:
                count("answered")
                code = c.got.split(b" ", 2)[1].decode(errors="replace") if c.got.startswith(
                    b"HTTP/") and len(c.got.split(b" ", 2)) > 1 else "?"
                if counting:
                    statuses[code] = statuses.get(code, 0) + 1
            count(reason)
            start(i, now)
        else:
            count("connect_failures")
            heapq.heappush(heap, (now + 0.1, i, c.gen))

    def send_next(i, now):
        c = conns[i]
        b = HEAD[c.sent:c.sent + 1] if c.sent < len(HEAD) else bytes((FILLER,))
        try:
            n = c.sock.send(b)
        except BlockingIOError:
            n = 0
        except OSError:
            drop(i, now, "resets")
            return
        if n == 1:
            c.sent += 1
            count("bytes")

    # Open them all, a few hundred at a time (the servers' backlog is 4096).
    t0 = time.monotonic()
    opened = 0
    while opened < nconns:
        now = time.monotonic()
        for i in range(opened, min(nconns, opened + 250)):
            start(i, now)
        opened = min(nconns, opened + 250)
        time.sleep(0.02)

    ready_at = None
    next_sample = 0.0
    while not stop:
        now = time.monotonic()
        timeout = 0.01
        if heap:
            timeout = max(0.0, min(timeout, heap[0][0] - now))
        for key, mask in sel.select(timeout):
            i = key.data
            c = conns[i]
            if not c.connected:
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    drop(i, now, "resets")
                    continue
                c.connected = True
                nopen += 1
                sel.modify(c.sock, selectors.EVENT_READ, i)
                send_next(i, now)
                if c.sock is not None:
                    # The first byte goes at once, the next ones a second
                    # apart, each connection at its own phase: an even
                    # trickle, not a burst a second (also after a wave of
                    # reconnects).
                    heapq.heappush(heap, (now + 1.0 + random.random(), i, c.gen))
                continue
            try:
                data = c.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                drop(i, now, "resets")
                continue
            if not data:
                drop(i, now, "eof")
            else:
                c.got += data[: max(0, 64 - len(c.got))]
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            due, i, gen = heapq.heappop(heap)
            c = conns[i]
            if gen != c.gen:
                continue  # an older connection of this slot
            if c.sock is None:
                start(i, now)  # after a failed connect: try again
                continue
            if not c.connected:
                continue  # its first byte goes when the connect completes
            if now - due > 0.1:
                count("late_sends")
            send_next(i, now)
            if c.gen == gen:
                heapq.heappush(heap, (due + 1.0, i, gen))
        if ready_at is None:
            if nopen == nconns:
                ready_at = time.monotonic()
                counting = True
                cpu0 = os.times()
                print("ready", flush=True)
            elif now - t0 > 60:
                print(f"trickle.py: only {nopen} of {nconns} connections open after 60 s",
                      file=sys.stderr)
                return 1
        elif now >= next_sample:
            open_samples.append(nopen)
            next_sample = now + 0.1

    if ready_at is None:
        print("trickle.py: stopped before every connection was open", file=sys.stderr)
        return 1
    cpu1 = os.times()
    secs = time.monotonic() - ready_at
    st = ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())) or "none"
    print(f"trickle conns={nconns} secs={secs:.1f} reconnects={stats['reconnects']}"
          f" answered={stats['answered']} resets={stats['resets']} eof={stats['eof']}"
          f" connect_failures={stats['connect_failures']} bytes={stats['bytes']}"
          f" open_min={min(open_samples, default=0)}"
          f" open_mean={sum(open_samples) / max(1, len(open_samples)):.0f}"
          f" late_sends={stats['late_sends']} statuses={st}"
          f" cpu_s={(cpu1.user + cpu1.system) - (cpu0.user + cpu0.system):.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
