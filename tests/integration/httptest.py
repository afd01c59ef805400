"""Helpers for the HTTP integration tests (tests/integration/test_http_*.py).

They drive build/<type>/http_test_server (tests/integration/http_test_server.c)
over real sockets on loopback:

- Server: starts the server with environment overrides (PORT=0, one shard
  unless WEAVE_SHARDS is given), reads "listening on N", collects its stderr,
  and at stop sends SIGTERM and checks that it exits 0 with no sanitizer
  report in its stderr.
- Conn: a raw client socket with a small response parser of our own
  (Content-Length, chunked with trailers, close-delimited, interim 1xx), so
  tests can send exactly the bytes they mean, malformed ones included.
- Memory checks: allow_many_fds(), rss_kb(pid), sanitized(binary).
- run(): the test runner. Every function test_<behaviour> in the calling
  module runs in definition order; each prints PASS or FAIL, the last line is
  "N passed, M failed" and the exit status is non-zero on any failure.
  Arguments on the command line select tests by substring.

Tests that need no special configuration share one server per file
(shared()); after each test it must still be alive and sanitizer-clean.
"""
import os
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BUILD_DIR = os.environ.get("BUILD_DIR", "build/release")
BIN = os.path.join(BUILD_DIR, "http_test_server")
HOST = "127.0.0.1"

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer")


class Failure(AssertionError):
    pass


def check(cond, msg, *args):
    if not cond:
        raise Failure(msg % args if args else msg)


def eq(actual, expected, what="value"):
    if actual != expected:
        a, e = repr(actual), repr(expected)
        if len(a) > 600:
            a = a[:600] + "...(%d chars)" % len(a)
        if len(e) > 600:
            e = e[:600] + "...(%d chars)" % len(e)
        raise Failure("%s: expected %s, got %s" % (what, e, a))


# ------------------------------------------------------------------ server

class Server:
    """The test server as a child process. Use as a context manager: on a
    clean exit of the block it is stopped with SIGTERM and must exit 0 and
    sanitizer-clean; on an exception it is killed."""

    def __init__(self, **env):
        self.env = dict(os.environ)
        self.env.update({"PORT": "0", "WEAVE_SHARDS": "1"})
        # stderr is checked for reports; let ASan/UBSan print them there
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.env.update({k: str(v) for k, v in env.items()})
        self.proc = None
        self.port = None
        self._err = []
        self._err_lock = threading.Lock()
        self._threads = []
        self.start()

    def start(self):
        check(os.path.exists(BIN), "no server binary at %s (set BUILD_DIR)", BIN)
        self.proc = subprocess.Popen([BIN], env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = []
        got = threading.Event()

        def read_out():
            for line in self.proc.stdout:
                lines.append(line.decode("utf-8", "replace"))
                got.set()
            got.set()

        def read_err():
            for line in self.proc.stderr:
                with self._err_lock:
                    self._err.append(line.decode("utf-8", "replace"))

        for fn in (read_out, read_err):
            t = threading.Thread(target=fn, daemon=True)
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got.wait(0.05)
            got.clear()
            for line in lines:
                m = re.match(r"listening on (\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    return
            if self.proc.poll() is not None and not any("listening" in l for l in lines):
                time.sleep(0.1)
                raise Failure("server exited early with %s; stderr:\n%s"
                              % (self.proc.returncode, self.stderr()))
        self.kill()
        raise Failure("server never printed 'listening on PORT'; stderr:\n%s" % self.stderr())

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.stop()
        else:
            self.kill()
        return False

    def stderr(self):
        with self._err_lock:
            return "".join(self._err)

    def stderr_lines(self):
        with self._err_lock:
            return list(self._err)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def sanitizer_report(self):
        err = self.stderr()
        for marker in SANITIZER_MARKERS:
            i = err.find(marker)
            if i >= 0:
                return err[max(0, i - 200):i + 4000]
        return None

    def check_clean(self):
        rep = self.sanitizer_report()
        check(rep is None, "sanitizer report in the server's stderr:\n%s", rep)

    def check_alive(self):
        self.check_clean()
        check(self.alive(), "the server died (exit %s); stderr:\n%s",
              self.proc.returncode if self.proc else None, self.stderr()[-4000:])

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        """Wait for the exit; returns the exit status. Fails after timeout."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure("server did not exit within %.1f s; stderr:\n%s"
                          % (timeout, self.stderr()[-4000:]))
        for t in self._threads:
            t.join(5)
        return rc

    def stop(self, timeout=15):
        """SIGTERM, then it must exit 0 with a sanitizer-clean stderr."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        self.check_clean()
        check(rc == 0, "server exited with %s; stderr:\n%s", rc, self.stderr()[-4000:])

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def wait_stderr(self, pred, timeout=3):
        """Poll stderr until pred(text) is true; returns the text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.stderr()
            if pred(text) or time.monotonic() > deadline:
                return text
            time.sleep(0.02)

    # convenience
    def conn(self, timeout=5):
        return Conn(self.port, timeout)

    def get(self, target, headers=None, **kw):
        """One request on a fresh connection (closed afterwards)."""
        with self.conn() as c:
            return c.request("GET", target, headers, **kw)

    def assert_serving(self):
        """A fresh connection still gets GET /plaintext answered."""
        self.check_alive()
        r = self.get("/plaintext")
        eq(r.status, 200, "GET /plaintext on a fresh connection")
        eq(r.body, b"Hello, World!", "GET /plaintext body")


_shared = None


def free_port():
    """A loopback port nobody listens on (free when asked; a server started
    right after gets it)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisServer:
    """A throwaway Redis 7 on a free loopback port, in a temporary directory
    of its own (scripts/redis_test_server.sh); .url is
    redis://127.0.0.1:PORT/0. stop() stops it and removes the directory."""

    CTL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "scripts", "redis_test_server.sh")

    def __init__(self, prefix="weave-redis-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.url = subprocess.run(["bash", self.CTL, "start", self.dir, str(free_port())],
                                  check=True, capture_output=True, text=True,
                                  timeout=60).stdout.strip() + "/0"

    def stop(self):
        subprocess.run(["bash", self.CTL, "stop", self.dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def port_block(count):
    """The first of `count` free loopback ports in a row (RabbitMQ's CLI
    tools own 35672-35682)."""
    for base in range(26700, 34000, count + 1):
        ok = True
        for p in range(base, base + count):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
    raise RuntimeError("no free ports")


def allow_many_fds(n=4096):
    """Raise this process's descriptor limit to n (or the hard limit), for
    tests that hold many connections; servers started after it inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n and (hard == resource.RLIM_INFINITY or hard > soft):
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (n if hard == resource.RLIM_INFINITY else min(hard, n), hard))


def rss_kb(pid):
    """VmRSS of process pid, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Failure("no VmRSS for %d" % pid)


def sanitized(binary):
    """Whether binary is a sanitizer build (its memory figures mean nothing)."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def shared():
    """The file's default-configured server, started on first use."""
    global _shared
    if _shared is None or not _shared.alive():
        _shared = Server()
    return _shared


# -------------------------------------------------------------- requests

def build(method, target, headers=None, body=b"", version="HTTP/1.1", host=True):
    """Request bytes. headers: list of (name, value); Host and (for a body)
    Content-Length are added unless given or host=False."""
    headers = list(headers or [])
    names = {n.lower() for n, _ in headers}
    if host and "host" not in names:
        headers.insert(0, ("Host", "localhost"))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        headers.append(("Content-Length", str(len(body))))
    out = ["%s %s %s\r\n" % (method, target, version)]
    for n, v in headers:
        out.append("%s: %s\r\n" % (n, v))
    out.append("\r\n")
    head = "".join(out).encode("latin-1")
    if isinstance(body, str):
        body = body.encode()
    return head + body


def chunked(pieces, ext=None, trailers=None):
    """A chunked body from pieces (bytes), optional chunk extension text and
    trailer (name, value) pairs."""
    out = bytearray()
    for p in pieces:
        out += b"%x" % len(p)
        if ext:
            out += b";" + ext.encode()
        out += b"\r\n" + p + b"\r\n"
    out += b"0\r\n"
    for n, v in trailers or []:
        out += ("%s: %s\r\n" % (n, v)).encode()
    out += b"\r\n"
    return bytes(out)


class Response:
    def __init__(self):
        self.version = None
        self.status = None
        self.reason = None
        self.headers = []  # (name, value) in order
        self.body = b""
        self.chunks = None  # the chunk payloads of a chunked body
        self.trailers = []
        self.interim = []  # 1xx responses before this one
        self.head_raw = b""
        self.framing = None  # "length", "chunked", "close", "none"

    def header(self, name, default=None):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def has_token(self, name, token):
        for v in self.header_all(name):
            if token.lower() in [t.strip().lower() for t in v.split(",")]:
                return True
        return False

    def json(self):
        import json
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %s %s %r body=%r>" % (self.status, self.reason, self.headers,
                                                 self.body[:200])


class Closed(Exception):
    """The peer closed the connection (or reset it) before a full response."""


class Conn:
    """A raw client connection with its own receive buffer."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Close with an RST (SO_LINGER 0)."""
        import struct
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def try_send(self, data):
        """Send, but report a peer that has gone instead of raising."""
        try:
            self.send(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, deadline):
        if self.eof:
            raise Closed("connection closed; %d unparsed bytes: %r" % (len(self.buf),
                                                                      bytes(self.buf[:200])))
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("timed out waiting for the server; have %d bytes: %r"
                          % (len(self.buf), bytes(self.buf[:300])))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise Failure("timed out waiting for the server; have %d bytes: %r"
                          % (len(self.buf), bytes(self.buf[:300])))
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise Closed("connection closed; %d unparsed bytes: %r" % (len(self.buf),
                                                                      bytes(self.buf[:200])))
        self.buf += data

    def _line(self, deadline, limit=1 << 17):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                check(b"\n" not in line, "bare LF in a response line: %r", line)
                return line
            check(len(self.buf) < limit, "response line too long: %r", bytes(self.buf[:200]))
            self._fill(deadline)

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_response(self, method="GET", timeout=None):
        """The next final response (1xx ones land in .interim). Fails on a
        malformed response; raises Closed if the connection ends first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        interim = []
        while True:
            r = self._read_one(method, deadline)
            if 100 <= r.status < 200 and r.status != 101:
                interim.append(r)
                continue
            r.interim = interim
            return r

    def read_interim(self, timeout=None):
        """Exactly one response head that must be 1xx (e.g. 100 Continue)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        return self._read_one("GET", deadline)

    def _read_one(self, method, deadline):
        r = Response()
        status_line = self._line(deadline)
        m = re.match(rb"^(HTTP/\d\.\d) (\d{3}) ?(.*)$", status_line)
        check(m is not None, "malformed status line %r", status_line)
        r.version = m.group(1).decode()
        r.status = int(m.group(2))
        r.reason = m.group(3).decode("latin-1")
        raw = [status_line]
        while True:
            line = self._line(deadline)
            raw.append(line)
            if not line:
                break
            m = re.match(rb"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$", line)
            check(m is not None, "malformed response header line %r", line)
            r.headers.append((m.group(1).decode(), m.group(2).decode("latin-1")))
        r.head_raw = b"\r\n".join(raw) + b"\r\n"
        if 100 <= r.status < 200 or r.status in (204, 304) or method == "HEAD":
            r.framing = "none"
            return r
        te = r.header("Transfer-Encoding")
        cl = r.header_all("Content-Length")
        if te is not None:
            check(te.strip().lower() == "chunked", "unexpected Transfer-Encoding %r", te)
            check(not cl, "response has both Transfer-Encoding and Content-Length")
            r.framing = "chunked"
            r.chunks = []
            body = bytearray()
            while True:
                size_line = self._line(deadline)
                m = re.match(rb"^([0-9A-Fa-f]+)(;.*)?$", size_line)
                check(m is not None, "malformed chunk size line %r", size_line)
                size = int(m.group(1), 16)
                if size == 0:
                    break
                data = self._exact(size, deadline)
                eq(self._exact(2, deadline), b"\r\n", "bytes after a chunk")
                r.chunks.append(data)
                body += data
            while True:
                line = self._line(deadline)
                if not line:
                    break
                n, _, v = line.partition(b":")
                r.trailers.append((n.decode(), v.strip().decode("latin-1")))
            r.body = bytes(body)
        elif cl:
            check(len(cl) == 1, "several Content-Length headers: %r", cl)
            check(re.match(r"^\d+$", cl[0]) is not None, "bad Content-Length %r", cl[0])
            r.framing = "length"
            r.body = self._exact(int(cl[0]), deadline)
        else:
            r.framing = "close"
            r.body = self.read_to_eof(deadline - time.monotonic())
        return r

    def request(self, method, target, headers=None, body=b"", **kw):
        self.send(build(method, target, headers, body, **kw))
        return self.read_response(method)

    def read_to_eof(self, timeout=None):
        """Everything until the peer closes; fails if it does not close
        within timeout."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while not self.eof:
            try:
                self._fill(deadline)
            except Closed:
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def expect_closed(self, timeout=2, what="connection"):
        """The server closes the connection within timeout, sending nothing
        more. Returns the elapsed seconds."""
        t0 = time.monotonic()
        try:
            extra = self.read_to_eof(timeout)
        except Failure:
            raise Failure("%s still open %.1f s later" % (what, timeout))
        eq(extra, b"", "bytes sent before closing the %s" % what)
        return time.monotonic() - t0

    def closed_within(self, timeout):
        """True if the peer closes (EOF/RST) within timeout; data received
        meanwhile stays in the buffer."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except Closed:
                return True
            except Failure:
                return False
        return True

    def nothing_pending(self, wait=0.05):
        """No bytes arrive and the connection stays open for `wait` s."""
        r, _, _ = select.select([self.sock], [], [], wait)
        return not r and not self.buf


# ------------------------------------------------------------------ curl

def curl(*args, timeout=20):
    """Run curl; returns the CompletedProcess (bytes stdout/stderr)."""
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout + 5)


def parse_curl_include(out):
    """Split `curl -i` output into (status, headers dict lower-cased, body);
    interim 1xx heads are skipped."""
    while True:
        head, _, rest = out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        if 100 <= status < 200:
            out = rest
            continue
        hdrs = {}
        for l in lines[1:]:
            n, _, v = l.partition(b":")
            hdrs[n.decode().strip().lower()] = v.decode("latin-1").strip()
        return status, hdrs, rest


# ------------------------------------------------------------------ runner

def run(namespace):
    global _shared
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    wanted = sys.argv[1:]
    if wanted:
        tests = [(n, f) for n, f in tests if any(w in n for w in wanted)]
    module = os.path.basename(namespace.get("__file__", "?"))
    passed = failed = 0
    started = time.monotonic()
    for name, fn in tests:
        t0 = time.monotonic()
        err = None
        try:
            fn()
            if _shared is not None:
                _shared.check_alive()
        except Exception:
            err = traceback.format_exc()
        dt = time.monotonic() - t0
        if err is None:
            passed += 1
            print("PASS %s (%.2fs)" % (name, dt), flush=True)
        else:
            failed += 1
            print("FAIL %s (%.2fs)\n%s" % (name, dt, "    " + err.rstrip().replace("\n", "\n    ")),
                  flush=True)
            if _shared is not None and not _shared.alive():
                _shared = None  # the next test starts a fresh one
    if _shared is not None:
        name = "shared_server_exits_0_sanitizer_clean"
        try:
            _shared.stop()
            passed += 1
            print("PASS %s" % name)
        except Exception:
            failed += 1
            print("FAIL %s\n    %s" % (name, traceback.format_exc().rstrip().replace("\n", "\n    ")))
        _shared = None
    print("%s: %d passed, %d failed (%.1fs)" % (module, passed, failed,
                                                time.monotonic() - started))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
