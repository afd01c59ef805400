"""bench/net/asyncio_dial.py: the anchor of net.dial and net.dial_tls
(bench/run_tls.sh), the same loop as bench/bench_dial.c on Python's asyncio
with uvloop's event loop: one coroutine dials a local server back to back
with asyncio.open_connection and closes each connection at once.

    asyncio_dial.py plain HOST PORTS N                    net.dial: dials/s
    asyncio_dial.py tls HOST PORTS N CA_FILE SERVER_NAME  net.dial_tls: dials/s

PORTS is a port, or a range FIRST-LAST dialed in turn, as bench_dial does
(its comment says why).

plain: open_connection(HOST, PORT), then writer.close() and
await writer.wait_closed(). tls: the same with ssl=, an ssl.SSLContext
(PROTOCOL_TLS_CLIENT: certificate and host name verified) trusting CA_FILE
alone, and server_hostname=SERVER_NAME: a full TLS handshake, the server's
certificate verified. Every connection must have come up (TLS: as TLSv1.3).

N/20 dials (at least 50) warm up first; the N that follow are timed with
time.perf_counter_ns. Prints `value=<dials/s>` and a line
`dials=N secs=S cpu_s=C` (the process's user + system CPU time during the
timed dials) on stdout, like bench_dial; a failed dial raises (exit 1).
Run by Debian's /usr/bin/python3 with Debian's python3-uvloop.
"""

import asyncio
import resource
import ssl
import sys
import time

import uvloop


def cpu_now():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def dial_loop(count, host, ports, ctx, server_name):
    nports = len(ports)
    for i in range(count):
        port = ports[i % nports]
        if ctx is None:
            reader, writer = await asyncio.open_connection(host, port)
        else:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ctx, server_hostname=server_name
            )
            version = writer.get_extra_info("ssl_object").version()
            if version != "TLSv1.3":
                raise RuntimeError(f"TLS version {version}, not TLSv1.3")
        writer.close()
        await writer.wait_closed()


async def main(argv):
    mode, host, n = argv[0], argv[1], int(argv[3])
    first, _, last = argv[2].partition("-")
    ports = list(range(int(first), int(last or first) + 1))
    ctx = server_name = None
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=argv[4])
        server_name = argv[5]
    warm = max(n // 20, 50)
    await dial_loop(warm, host, ports, ctx, server_name)
    c0 = cpu_now()
    t0 = time.perf_counter_ns()
    await dial_loop(n, host, ports, ctx, server_name)
    secs = (time.perf_counter_ns() - t0) / 1e9
    cpu = cpu_now() - c0
    print(f"value={n / secs:.1f}")
    print(f"dials={n} secs={secs:.4f} cpu_s={cpu:.4f}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if not (
        (len(args) == 4 and args[0] == "plain") or (len(args) == 6 and args[0] == "tls")
    ):
        print(
            "usage: asyncio_dial.py plain HOST PORT[-LAST] N\n"
            "       asyncio_dial.py tls HOST PORT[-LAST] N CA_FILE SERVER_NAME",
            file=sys.stderr,
        )
        sys.exit(2)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(args))
