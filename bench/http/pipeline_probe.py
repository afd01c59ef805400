"""Does a server answer pipelined requests? (bench/run_http.sh, before the
pipelined figures.)

    /usr/bin/python3 pipeline_probe.py PORT PATH RESPONSE_BYTES [DEPTH]

Writes DEPTH (default 16) GET requests for PATH to 127.0.0.1:PORT in one
write, as wrk does in the pipelined runs (bench/http/wrk.lua), and prints how
many whole responses of RESPONSE_BYTES came back within 2 s: DEPTH for a
server that answers every pipelined request. A server that answers fewer
would stall each connection of a pipelined wrk run, which would then measure
the stall (wrk counts no timeout in a run shorter than its 5 s timeout).
"""

import socket
import sys
import time


def main():
    port, path, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    depth = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.sendall(req * depth)
    got = 0
    deadline = time.monotonic() + 2
    while got < size * depth:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            data = s.recv(65536)
        except (socket.timeout, OSError):
            break
        if not data:
            break
        got += len(data)
    s.close()
    print(got // size)


if __name__ == "__main__":
    main()
