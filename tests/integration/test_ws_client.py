"""weave's WebSocket client (tests/integration/ws_client_check.c) against an
independent server, Python's websockets, and against weave's own /ws/echo:
round trips of text, binary and 1 MB, pings, the closing handshake, and the
failures (refused, not a WebSocket, a silent server); and wss:// against
websockets over TLS (a certificate made for the run with the openssl
command line): trusted through its CA file, refused by the system's CAs."""
import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

import websockets

BUILD = os.environ.get("BUILD_DIR", "build/release")
CHECK = os.path.join(BUILD, "ws_client_check")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def python_echo_server(ssl_ctx=None):
    ready = threading.Event()
    box = {}

    async def echo(ws, path=None):
        async for m in ws:
            await ws.send(m)

    async def serve():
        async with websockets.serve(echo, "127.0.0.1", 0, max_size=None, ssl=ssl_ctx) as srv:
            box["port"] = srv.sockets[0].getsockname()[1]
            box["stop"] = asyncio.get_running_loop().create_future()
            box["loop"] = asyncio.get_running_loop()
            ready.set()
            await box["stop"]

    t = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    t.start()
    ready.wait(10)
    return box


def run_check(echo_url, not_ws_url, ca_file=None):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts (in the backlog) and never answers
    args = [CHECK, echo_url, "ws://127.0.0.1:%d/" % free_port(), not_ws_url,
            "ws://127.0.0.1:%d/" % silent.getsockname()[1]] + ([ca_file] if ca_file else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    silent.close()
    print(r.stdout, end="")
    assert r.returncode == 0, r.stdout + r.stderr
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in r.stderr, r.stderr


def main():
    # 1) against Python's websockets
    box = python_echo_server()
    web = tempfile.mkdtemp(prefix="weave-web-")
    open(os.path.join(web, "index.html"), "w").write("x")
    proc = subprocess.Popen([os.path.join(BUILD, "chapter13"), "--port", "0", "--web-dir", web],
                            env=dict(os.environ, SHARDS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        port = None
        while port is None:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if line.startswith("listening on http://127.0.0.1:"):
                port = int(line.rsplit(":", 1)[1])
        not_ws = "ws://127.0.0.1:%d/healthz" % port
        print("# against Python websockets")
        run_check("ws://127.0.0.1:%d/" % box["port"], not_ws)
        # 2) against weave's own server
        print("# against weave's /ws/echo")
        run_check("ws://127.0.0.1:%d/ws/echo" % port, not_ws)
        # 3) wss:// against Python's websockets over TLS
        cert, key = os.path.join(web, "cert.pem"), os.path.join(web, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key,
                        "-out", cert], check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        tls_box = python_echo_server(ctx)
        print("# wss:// against Python websockets over TLS")
        try:
            run_check("wss://localhost:%d/" % tls_box["port"], not_ws, cert)
        finally:
            tls_box["loop"].call_soon_threadsafe(tls_box["stop"].set_result, None)
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set_result, None)
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(web)
    print("test_ws_client: ok")


if __name__ == "__main__":
    sys.exit(main())
