"""Node's `ws` (pinned in tests/integration/node/) as an independent peer in
both directions: its client against weave's /ws/echo (text, binary, 1 MB,
fragments, ping, close codes) and weave's client (ws_client_check.c)
against its server."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile

BUILD = os.environ.get("BUILD_DIR", "build/release")
NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")


def ensure_node_modules():
    if not os.path.exists(os.path.join(NODE_DIR, "node_modules", "ws", "package.json")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                       check=True, timeout=300)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ensure_node_modules()
    web = tempfile.mkdtemp(prefix="weave-web-")
    open(os.path.join(web, "index.html"), "w").write("x")
    weave = subprocess.Popen([os.path.join(BUILD, "chapter13"), "--port", "0", "--web-dir", web],
                             env=dict(os.environ, SHARDS="2"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    node = subprocess.Popen(["node", "ws_peer.js", "server"], cwd=NODE_DIR,
                            stdout=subprocess.PIPE, text=True)
    try:
        port = None
        while port is None:
            line = weave.stdout.readline()
            assert line, weave.stderr.read()
            if line.startswith("listening on http://127.0.0.1:"):
                port = int(line.rsplit(":", 1)[1])
        r = subprocess.run(["node", "ws_peer.js", "client", "ws://127.0.0.1:%d/ws/echo" % port],
                           cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
        print("# node ws client -> weave server\n" + r.stdout, end="")
        assert r.returncode == 0, r.stdout + r.stderr

        node_port = int(node.stdout.readline().split()[1])
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        r = subprocess.run([os.path.join(BUILD, "ws_client_check"),
                            "ws://127.0.0.1:%d/" % node_port, "ws://127.0.0.1:%d/" % free_port(),
                            "ws://127.0.0.1:%d/healthz" % port,
                            "ws://127.0.0.1:%d/" % silent.getsockname()[1]],
                           capture_output=True, text=True, timeout=60)
        silent.close()
        print("# weave client -> node ws server\n" + r.stdout, end="")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        node.kill()
        weave.terminate()
        weave.wait(timeout=10)
        shutil.rmtree(web)
    err = weave.stderr.read()
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in err, err
    print("test_ws_node: ok")


if __name__ == "__main__":
    sys.exit(main())
