"""The chat room on the broadcast hub (/ws/chat, wv_ws_hub): members on
both shards get every message and the join/leave events, a publisher's
messages arrive in order to everyone, and a member too slow to read is
handled by the policy: with drop it stays connected and keeps the newest
messages, with close it is cut off, and either way the others are never
held up. "/to <id> ..." reaches one member whichever shard holds it
(wv_ws_send_to), and an id that is gone is answered "no member"."""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import websockets

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "chapter13")
passed = failed = 0


def start(**env):
    web = tempfile.mkdtemp(prefix="weave-web-")
    open(os.path.join(web, "index.html"), "w").write("x")
    proc = subprocess.Popen([BIN, "--port", "0", "--web-dir", web],
                            env=dict(os.environ, SHARDS="2", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        if line.startswith("listening on http://127.0.0.1:"):
            return proc, web, "ws://127.0.0.1:%s/ws/chat" % line.rsplit(":", 1)[1].strip()


def stop(proc, web):
    proc.terminate()
    rc = proc.wait(timeout=20)
    err = proc.stderr.read()
    shutil.rmtree(web)
    assert rc == 0, (rc, err[-2000:])
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in err, err[-3000:]


async def next_text(ws):
    while True:
        m = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if "text" in m:
            return m


async def members_on_both_shards_see_messages_and_events(url):
    clients = [await websockets.connect(url) for _ in range(8)]  # spread over 2 shards
    await asyncio.sleep(0.2)
    await clients[0].send("hello room")
    for c in clients:
        m = await next_text(c)
        assert m["text"] == "hello room", m
    watcher = clients[1]
    await clients[7].close()
    while True:
        m = json.loads(await asyncio.wait_for(watcher.recv(), 10))
        if m.get("event") == "leave":
            break
    for c in clients[:7]:
        await c.close()


async def a_publishers_messages_arrive_in_order_to_everyone(url):
    clients = [await websockets.connect(url) for _ in range(40)]
    await asyncio.sleep(0.2)
    for i in range(100):
        await clients[0].send("m%d" % i)
    for c in clients:
        got = [(await next_text(c))["text"] for _ in range(100)]
        assert got == ["m%d" % i for i in range(100)], got[:5]
    for c in clients:
        await c.close()


async def join(url):
    """Connect and read our own join announcement: it carries our id."""
    c = await websockets.connect(url)
    while True:
        m = json.loads(await asyncio.wait_for(c.recv(), 10))
        if m.get("event") == "join":
            return c, m["id"]


async def direct_messages_reach_one_member_on_either_shard(url):
    # the kernel spreads connections over the shards' listeners by a hash:
    # join until both shards have members (8 usually do; allow up to 40)
    members = [await join(url) for _ in range(8)]
    while len({int(i) % 1024 for _, i in members}) < 2 and len(members) < 40:
        members.append(await join(url))
    shards = {int(i) % 1024 for _, i in members}
    assert shards == {0, 1}, "ids %s: the members did not land on both shards" % shards
    # every member sends one direct message to the next one (half of them
    # cross shards), and one to an id that does not exist
    for k, (c, my_id) in enumerate(members):
        _, to = members[(k + 1) % len(members)]
        await c.send("/to %s hi from %d" % (to, k))
    for k, (c, my_id) in enumerate(members):
        prev = (k - 1) % len(members)
        while True:
            m = json.loads(await asyncio.wait_for(c.recv(), 10))
            if m.get("to") == my_id:
                break
            assert "to" not in m, ("a direct message reached the wrong member", m)
        assert m["text"] == "hi from %d" % prev and m["id"] == members[prev][1], m
    c, my_id = members[0]
    await c.send("/to 999999999999 anyone?")
    while True:
        m = json.loads(await asyncio.wait_for(c.recv(), 10))
        if m.get("from") == "server":
            break
    assert m["text"] == "no member 999999999999", m
    # a member that left is no longer reachable
    gone_c, gone_id = members[1]
    await gone_c.close()
    await asyncio.sleep(0.2)
    await c.send("/to %s still there?" % gone_id)
    while True:
        m = json.loads(await asyncio.wait_for(c.recv(), 10))
        if m.get("from") == "server":
            break
    assert m["text"] == "no member %s" % gone_id, m
    for c, _ in members:
        await c.close()


def slow_member(url):
    """A member that never reads, with a tiny receive buffer."""
    host, port = url[5:].split("/")[0].split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, int(port)))
    s.sendall(b"GET /ws/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert b" 101 " in head
    return s


async def flood(url, n=6000):
    """A member publishes in batches and reads each batch back (it is in the
    room too), so it keeps up; the slow member never reads."""
    pub = await websockets.connect(url)
    fast = pub
    await asyncio.sleep(0.2)
    payload = "x" * 4000
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for batch in range(0, n, 100):  # the fast member keeps up; the slow one never reads
        for i in range(batch, batch + 100):
            await pub.send("%d %s" % (i, payload))
        for i in range(batch, batch + 100):
            m = await next_text(fast)
            assert m["text"].startswith("%d " % i), m["text"][:10]
    took = loop.time() - t0
    await pub.close()
    return took


def drain(s):
    s.settimeout(3)
    data = b""
    try:
        while True:
            b = s.recv(1 << 20)
            if not b:
                return data, "eof"
            data += b
    except socket.timeout:
        return data, "open"
    except ConnectionResetError:
        return data, "reset"


async def slow_member_with_drop_policy_keeps_the_newest(url):
    s = slow_member(url)
    took = await flood(url)
    assert took < 20, "a slow member held the room up for %.1f s" % took
    data, state = drain(s)
    assert state == "open", state  # still a member
    # whole frames only, in order (some dropped), ending with the newest: a
    # frame the socket took half of was finished before any other
    seqs = []
    for m in parse_frames(data):
        if "text" in m:
            seqs.append(int(m["text"].split(" ", 1)[0]))
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "out of order or repeated"
    assert seqs[-1] == 5999, "the newest message was dropped"
    assert len(seqs) < 6000, "nothing was dropped: the test did not fill the queue"
    s.close()


def parse_frames(data):
    """Server frames (unmasked, unfragmented text) as JSON objects; fails on
    anything else, including a frame cut short."""
    out, i = [], 0
    while i < len(data):
        assert data[i] == 0x81, "not a final text frame at byte %d: %r" % (i, data[i:i + 8])
        n = data[i + 1]
        assert n & 0x80 == 0, "a masked server frame"
        i += 2
        if n == 126:
            n = int.from_bytes(data[i:i + 2], "big")
            i += 2
        elif n == 127:
            n = int.from_bytes(data[i:i + 8], "big")
            i += 8
        assert i + n <= len(data), "a frame cut short at the end"
        out.append(json.loads(data[i:i + n]))
        i += n
    return out


async def slow_member_with_close_policy_is_cut_off(url):
    s = slow_member(url)
    took = await flood(url)
    assert took < 20, "a slow member held the room up for %.1f s" % took
    data, state = drain(s)
    assert state in ("eof", "reset") or data.endswith(b"\x88\x02\x03\xf0"), state
    s.close()


def case(name, fn, **env):
    global passed, failed
    proc, web, url = start(**env)
    try:
        asyncio.run(asyncio.wait_for(fn(url), 60))
        stop(proc, web)
        passed += 1
        print("PASS", name)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed += 1
        print("FAIL", name, repr(e))
        if proc.poll() is None:
            proc.kill()


def main():
    case("members_on_both_shards_see_messages_and_events",
         members_on_both_shards_see_messages_and_events)
    case("a_publishers_messages_arrive_in_order_to_everyone",
         a_publishers_messages_arrive_in_order_to_everyone)
    case("direct_messages_reach_one_member_on_either_shard",
         direct_messages_reach_one_member_on_either_shard)
    case("slow_member_with_drop_policy_keeps_the_newest",
         slow_member_with_drop_policy_keeps_the_newest, CHAT_QUEUE="1000", CHAT_SLOW="drop")
    case("slow_member_with_close_policy_is_cut_off", slow_member_with_close_policy_is_cut_off,
         CHAT_QUEUE="1000", CHAT_SLOW="close")
    print("test_ws_chat: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
