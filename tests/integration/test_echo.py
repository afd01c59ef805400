"""The demo `make run` starts (examples/echo): it serves on the port it is
given, echoes every byte for many concurrent clients across its shards, and
on SIGTERM stops accepting, lets open connections finish, and exits 0."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "echo")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc):
    for _ in range(200):
        if proc.poll() is not None:
            raise AssertionError("echo exited early with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("echo never listened on %d" % port)


def echo_round_trip(port, payload):
    """Send and receive at once: a client that sends everything before
    reading can deadlock any echo server once both socket buffers fill."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)

    def send():
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    got = bytearray()
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    sender.join()
    s.close()
    return bytes(got)


def main():
    port = free_port()
    proc = subprocess.Popen([BIN], env=dict(os.environ, PORT=str(port), WEAVE_SHARDS="2"),
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)

        # 64 clients at once, 1 MiB each, every byte back in order
        errors = []

        def client(i):
            try:
                data = bytes((i + k) % 251 for k in range(1 << 20))
                got = echo_round_trip(port, data)
                if got != data:
                    errors.append("client %d: %d bytes back of %d" % (i, len(got), len(data)))
            except Exception as e:  # a thread's exception must fail the test
                errors.append("client %d: %r" % (i, e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors

        # a connection open during SIGTERM is still served, then the process exits 0
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"before")
        assert s.recv(100) == b"before"
        proc.send_signal(signal.SIGTERM)
        s.sendall(b"during")
        assert s.recv(100) == b"during", "in-flight connection not served during the drain"
        s.close()
        rc = proc.wait(timeout=10)
        err = proc.stderr.read()
        assert rc == 0, "exit %d, stderr:\n%s" % (rc, err)
        assert "stopping gracefully" in err and "stopped" in err, err
        # and nothing listens any more
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            raise AssertionError("still accepting after exit")
        except ConnectionRefusedError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
    print("test_echo: ok")


if __name__ == "__main__":
    sys.exit(main())
