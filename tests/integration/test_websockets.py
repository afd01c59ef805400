"""WebSockets on the chapter's service, against an independent client
(Python's websockets, Debian's package) and raw sockets for what a polite
client never sends: /ws answers "Echo: <text>" after the chapter's delay,
/ws/echo echoes text as text and binary as binary (small, fragmented,
16 MB), pings are answered, close handshakes complete both ways, and every
protocol violation closes with its code (1002, 1007, 1009) while the
server keeps serving others; bad handshakes get 400 / 426; and an idle
connection costs the server little memory."""
import asyncio
import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import zlib

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import allow_many_fds, rss_kb, sanitized  # noqa: E402

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "chapter13")
passed = failed = 0


def case(fn):
    global passed, failed
    try:
        r = fn()
        if asyncio.iscoroutine(r):
            asyncio.run(asyncio.wait_for(r, 30))
        passed += 1
        print("PASS", fn.__name__)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed += 1
        print("FAIL", fn.__name__, repr(e))


def raw_handshake(port, path="/ws/echo", extra=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
              b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        assert b, "closed during the handshake"
        head += b
    return s, head


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, (0x80 if mask else 0) | n])
    elif n < 65536:
        head = bytes([b0, (0x80 if mask else 0) | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, (0x80 if mask else 0) | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def read_close_code(s):
    """Read frames until the server's close; its code (or None if cut)."""
    buf = b""
    s.settimeout(5)
    while True:
        while len(buf) < 2:
            b = s.recv(65536)
            if not b:
                return None
            buf += b
        n = buf[1] & 0x7F
        hl = 2 + (2 if n == 126 else 8 if n == 127 else 0)
        while len(buf) < hl:
            buf += s.recv(65536)
        if n == 126:
            n = struct.unpack("!H", buf[2:4])[0]
        elif n == 127:
            n = struct.unpack("!Q", buf[2:10])[0]
        while len(buf) < hl + n:
            b = s.recv(65536)
            if not b:
                return None
            buf += b
        op, payload = buf[0] & 0x0F, buf[hl:hl + n]
        buf = buf[hl + n:]
        if op == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def main():
    allow_many_fds()  # a thousand idle connections, here and in the server
    web = tempfile.mkdtemp(prefix="weave-web-")
    open(os.path.join(web, "index.html"), "w").write("<h1>page</h1>")
    proc = subprocess.Popen([BIN, "--port", "0", "--web-dir", web],
                            env=dict(os.environ, ASYNC_DELAY_MS="100", SHARDS="2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = None
    while port is None:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        if line.startswith("listening on http://127.0.0.1:"):
            port = int(line.rsplit(":", 1)[1])
    url = "ws://127.0.0.1:%d" % port

    async def chapter_ws_echoes_with_prefix_after_the_delay():
        async with websockets.connect(url + "/ws") as ws:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await ws.send("hello")
            assert await ws.recv() == "Echo: hello"
            assert loop.time() - t0 >= 0.09

    async def echo_keeps_text_text_and_binary_binary():
        async with websockets.connect(url + "/ws/echo", max_size=None) as ws:
            for m in ("", "x", "héllo wörld ✓", "a" * 70000, b"", b"\x00\xff" * 1000):
                await ws.send(m)
                got = await ws.recv()
                assert got == m and type(got) is type(m), (type(got), len(got))

    async def fragmented_messages_are_joined():
        async with websockets.connect(url + "/ws/echo") as ws:
            await ws.send(["frag", "men", "ted ✓"])
            assert await ws.recv() == "fragmented ✓"
            await ws.send([b"\x01", b"\x02\x03"])
            assert await ws.recv() == b"\x01\x02\x03"

    async def sixteen_megabytes_round_trip():
        data = os.urandom(16 << 20)
        async with websockets.connect(url + "/ws/echo", max_size=None) as ws:
            await ws.send(data)
            assert await ws.recv() == data

    async def ping_gets_a_pong():
        async with websockets.connect(url + "/ws/echo") as ws:
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)

    async def client_close_is_answered_with_its_code():
        ws = await websockets.connect(url + "/ws/echo")
        await ws.close(code=4000, reason="bye")
        assert ws.close_code == 4000, ws.close_code

    async def many_concurrent_clients():
        async def one(i):
            async with websockets.connect(url + "/ws/echo") as ws:
                for k in range(20):
                    await ws.send("%d-%d" % (i, k))
                    assert await ws.recv() == "%d-%d" % (i, k)
        await asyncio.gather(*(one(i) for i in range(100)))

    def unmasked_client_frame_closes_1002():
        s, head = raw_handshake(port)
        assert b" 101 " in head.split(b"\r\n")[0], head
        s.sendall(frame(0x1, b"hi", mask=False))
        assert read_close_code(s) == 1002

    def invalid_utf8_text_closes_1007():
        s, _ = raw_handshake(port)
        s.sendall(frame(0x1, b"\xed\xa0\x80"))
        assert read_close_code(s) == 1007

    def utf8_split_across_fragments_is_accepted_and_bad_split_is_1007():
        s, _ = raw_handshake(port)
        s.sendall(frame(0x1, b"\xce", fin=False) + frame(0x0, b"\xba"))
        s.settimeout(5)
        got = s.recv(100)
        assert got[0] == 0x81 and got[2:4] == b"\xce\xba", got
        s.sendall(frame(0x1, b"ok\xce", fin=False) + frame(0x0, b"x"))
        assert read_close_code(s) == 1007

    def oversized_message_closes_1009():
        s, _ = raw_handshake(port, "/ws")
        s.sendall(frame(0x1, b"a" * ((1 << 20) + 1)))
        assert read_close_code(s) == 1009

    def reserved_bits_and_opcodes_close_1002():
        for bad in (frame(0x1, b"x", rsv=4), frame(0x3, b"x"), frame(0x9, b"x" * 126),
                    frame(0x9, b"x", fin=False), frame(0x0, b"x")):
            s, _ = raw_handshake(port)
            s.sendall(bad)
            assert read_close_code(s) == 1002, bad[:2]

    def bad_close_codes_close_1002():
        for payload in (b"\x03\xed", b"\x03", struct.pack("!H", 1005), struct.pack("!H", 999)):
            s, _ = raw_handshake(port)
            s.sendall(frame(0x8, payload))
            assert read_close_code(s) == 1002, payload

    def control_frames_between_fragments_are_handled():
        s, _ = raw_handshake(port)
        s.sendall(frame(0x1, b"ab", fin=False) + frame(0x9, b"p") + frame(0x0, b"cd"))
        s.settimeout(5)
        data = b""
        while len(data) < 9:
            data += s.recv(100)
        assert data[:3] == b"\x8a\x01p", data  # the pong first
        assert data[3:] == b"\x81\x04abcd", data

    def bad_handshakes_get_400_or_426():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert b" 400 " in s.recv(4096).split(b"\r\n")[0]
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 8\r\n\r\n")
        r = s.recv(4096)
        assert b" 426 " in r.split(b"\r\n")[0] and b"Sec-WebSocket-Version: 13" in r, r
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 426 " in s.recv(4096).split(b"\r\n")[0]

    def accept_key_matches_rfc_example():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n")
        r = s.recv(4096)
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in r, r

    def deflate_raw(data, fresh=True, _state={}):
        if fresh or "c" not in _state:
            _state["c"] = zlib.compressobj(6, zlib.DEFLATED, -15)
        out = _state["c"].compress(data) + _state["c"].flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]

    def read_frame(s):
        s.settimeout(5)
        buf = b""
        while len(buf) < 2:
            buf += s.recv(2 - len(buf))
        n = buf[1] & 0x7F
        ext = {126: 2, 127: 8}.get(n, 0)
        while len(buf) < 2 + ext:
            buf += s.recv(2 + ext - len(buf))
        if ext:
            n = int.from_bytes(buf[2:2 + ext], "big")
        payload = b""
        while len(payload) < n:
            payload += s.recv(n - len(payload))
        return buf[0], payload

    async def compression_is_negotiated_by_a_real_client():
        async with websockets.connect(url + "/ws/echo") as ws:
            names = [e.name for e in ws.extensions]
            assert names == ["permessage-deflate"], names
            text = "weave " * 20000
            await ws.send(text)
            assert await ws.recv() == text

    def compressed_frames_both_ways_with_rsv1():
        s, head = raw_handshake(port, extra=b"Sec-WebSocket-Extensions: permessage-deflate; "
                                            b"server_no_context_takeover; client_no_context_takeover\r\n")
        assert b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; " \
               b"client_no_context_takeover" in head, head
        for msg in (b"hello hello hello hello hello hello hello", b"second message, fresh context " * 3):
            s.sendall(frame(0x1, deflate_raw(msg), rsv=4))
            b0, payload = read_frame(s)
            assert b0 == 0xC1, hex(b0)  # FIN + RSV1 + text: the reply is compressed too
            d = zlib.decompressobj(-15)
            assert d.decompress(payload + b"\x00\x00\xff\xff") == msg

    def a_compressed_bomb_closes_1009():
        s, head = raw_handshake(port, "/ws", extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        assert b"permessage-deflate" in head, head
        s.sendall(frame(0x1, deflate_raw(b"a" * (8 << 20)), rsv=4))  # ~8 KB on the wire
        assert read_close_code(s) == 1009

    def rsv1_on_a_continuation_closes_1002():
        s, _ = raw_handshake(port, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        s.sendall(frame(0x1, deflate_raw(b"ab"), fin=False, rsv=4) + frame(0x0, b"x", rsv=4))
        assert read_close_code(s) == 1002

    def an_offer_we_cannot_honour_is_declined():
        s, head = raw_handshake(port, extra=b"Sec-WebSocket-Extensions: permessage-deflate; "
                                            b"server_max_window_bits=8\r\n")
        assert b"Sec-WebSocket-Extensions" not in head, head
        s.sendall(frame(0x1, b"plain"))
        b0, payload = read_frame(s)
        assert b0 == 0x81 and payload == b"plain", (hex(b0), payload)

    async def server_still_serves_after_all_that():
        async with websockets.connect(url + "/ws/echo") as ws:
            await ws.send("still here")
            assert await ws.recv() == "still here"

    def idle_connections_cost_under_10_kb_each():
        # Each idle connection (after one echo) holds no receive buffer, no
        # HTTP response buffer, only its handshake's own bytes (not a 4 KiB
        # read buffer) and no stack pages its handshake touched: 19.7 KB
        # each before that, 6.2 KB after (bench/run_ws.sh ws.conn_rss).
        if sanitized(BIN):
            print("  (a sanitizer build: its memory says nothing; not measured)")
            return

        def idle():
            s, head = raw_handshake(port)
            assert head.startswith(b"HTTP/1.1 101"), head
            s.sendall(frame(0x1, b"hello"))
            b0, payload = read_frame(s)
            assert b0 == 0x81 and payload == b"hello", (hex(b0), payload)
            return s

        warm = [idle() for _ in range(64)]  # both shards' heaps and stack slabs exist
        time.sleep(0.3)
        before = rss_kb(proc.pid)
        socks = [idle() for _ in range(1000)]
        time.sleep(0.5)
        after = rss_kb(proc.pid)
        for s in warm + socks:
            s.close()
        per = (after - before) * 1024 / 1000
        print("  %d bytes per idle connection" % per)
        assert per < 10000, per

    async def listeners_that_never_send_cost_under_8_kb_each():
        # Clients that only listen (Python websockets, compression offered,
        # nothing sent after the handshake): the first receive waits without
        # a buffer and gives back the handshake's stack pages, as every
        # later idle wait does (11.9 KB each before, 5.6 KB after). A server
        # of its own, one shard: the heap has no memory freed by the other
        # cases to hide the growth in.
        if sanitized(BIN):
            print("  (a sanitizer build: its memory says nothing; not measured)")
            return
        own = subprocess.Popen([BIN, "--port", "0", "--web-dir", web],
                               env=dict(os.environ, SHARDS="1"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            line = ""
            while not line.startswith("listening on http://127.0.0.1:"):
                line = own.stdout.readline()
                assert line, own.stderr.read()
            own_url = "ws://127.0.0.1:%d/ws/echo" % int(line.rsplit(":", 1)[1])
            warm = [await websockets.connect(own_url, ping_interval=None) for _ in range(64)]
            await asyncio.sleep(0.3)
            before = rss_kb(own.pid)
            conns = [await websockets.connect(own_url, ping_interval=None) for _ in range(1000)]
            await asyncio.sleep(0.5)
            after = rss_kb(own.pid)
            await conns[-1].send("still")  # and they are served
            assert await conns[-1].recv() == "still"
            for ws in warm + conns:
                await ws.close()
        finally:
            own.send_signal(signal.SIGTERM)
            own.wait(timeout=15)
        per = (after - before) * 1024 / 1000
        print("  %d bytes per connection that never sent" % per)
        assert per < 8000, per

    async def sigterm_closes_open_sockets_with_going_away():
        ws = await websockets.connect(url + "/ws/echo")
        await ws.send("x")
        assert await ws.recv() == "x"
        busy = await websockets.connect(url + "/ws")  # its handler is in its delay at SIGTERM
        await busy.send("late")
        await asyncio.sleep(0.03)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(busy.recv(), 5) == "Echo: late"
        try:
            await asyncio.wait_for(busy.recv(), 5)  # then 1001 at once, not after the drain
        except websockets.ConnectionClosed:
            pass
        assert busy.close_code == 1001, busy.close_code
        try:
            await asyncio.wait_for(ws.recv(), 15)
        except websockets.ConnectionClosed:
            pass
        assert ws.close_code in (1001, 1000), ws.close_code

    try:
        for fn in (chapter_ws_echoes_with_prefix_after_the_delay,
                   echo_keeps_text_text_and_binary_binary, fragmented_messages_are_joined,
                   sixteen_megabytes_round_trip, ping_gets_a_pong,
                   client_close_is_answered_with_its_code, many_concurrent_clients,
                   unmasked_client_frame_closes_1002, invalid_utf8_text_closes_1007,
                   utf8_split_across_fragments_is_accepted_and_bad_split_is_1007,
                   oversized_message_closes_1009, reserved_bits_and_opcodes_close_1002,
                   bad_close_codes_close_1002, control_frames_between_fragments_are_handled,
                   bad_handshakes_get_400_or_426, accept_key_matches_rfc_example,
                   compression_is_negotiated_by_a_real_client,
                   compressed_frames_both_ways_with_rsv1, a_compressed_bomb_closes_1009,
                   rsv1_on_a_continuation_closes_1002, an_offer_we_cannot_honour_is_declined,
                   server_still_serves_after_all_that,
                   idle_connections_cost_under_10_kb_each,
                   listeners_that_never_send_cost_under_8_kb_each,
                   sigterm_closes_open_sockets_with_going_away):
            case(fn)
        rc = proc.wait(timeout=20)
        err = proc.stderr.read()

        def server_exits_0_without_sanitizer_reports():
            assert rc == 0, (rc, err[-2000:])
            for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
                assert bad not in err, err[-3000:]
        case(server_exits_0_without_sanitizer_reports)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(web)
    print("test_websockets: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
