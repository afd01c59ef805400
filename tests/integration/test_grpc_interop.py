"""gRPC's interop test cases (doc/interop-test-descriptions.md) between
independent implementations, each a client or a server named in the tables
below:

- grpcio: tests/integration/grpc/interop_server.py and interop_client.py
  (Debian's python3-grpcio, /usr/bin/python3);
- grpc-js: tests/integration/node/grpc_interop.js (@grpc/grpc-js, pinned in
  tests/integration/node/package.json; `npm ci` there when missing);
- weave: tests/integration/grpc_interop_peer.c, weave's gRPC server and
  client (built in $BUILD_DIR, build/release unless set);
- grpcio-tls, weave-tls: those over TLS, with a throwaway CA made by openssl
  (the clients claim the name localhost, which the certificate has).

Every case of CASES runs for every (client, server) in PAIRS. A server is
started once, on a free loopback port, when its first case runs (ready once
a TCP connection to the port succeeds), must still be running after each
case, and at the end is stopped with SIGTERM and must exit 0 with no
sanitizer report in its stderr. A client is one process per case: exit 0
with no sanitizer report in its output passes, anything else fails with its
output.

To add an implementation, add its command lines to SERVERS and CLIENTS
({port}, {host}, {case}, {tls_dir} are filled in) and its pairs to PAIRS. A peer that is missing (node, grpcio, the binary) fails
its tests with the reason; nothing is skipped.

Run: /usr/bin/python3 tests/integration/test_grpc_interop.py [SUBSTRING...]
(run.sh runs it with the others; arguments keep only the tests whose name,
test_<client>__<server>__<case>, contains one of them).
"""
import atexit
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httptest  # noqa: E402
from httptest import Failure, check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GRPC_DIR = os.path.join(HERE, "grpc")
NODE_DIR = os.path.join(HERE, "node")
BUILD_DIR = os.environ.get("BUILD_DIR", "build/release")
WEAVE_PEER = os.path.join(BUILD_DIR, "grpc_interop_peer")
PY = "/usr/bin/python3"
HOST = "127.0.0.1"
CLIENT_TIMEOUT = 90  # seconds for one client process (its calls have 30 s deadlines)

CASES = [
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "custom_metadata",
    "unimplemented_method",
    "unimplemented_service",
]

# name -> {"argv": the command that serves on {port}, "needs": [what it needs]}
SERVERS = {
    "grpcio": {
        "argv": [PY, os.path.join(GRPC_DIR, "interop_server.py"), "--port", "{port}"],
        "needs": ["grpcio"],
    },
    "grpc-js": {
        "argv": ["node", os.path.join(NODE_DIR, "grpc_interop.js"), "server", "--port", "{port}"],
        "needs": ["node"],
    },
    "grpcio-tls": {
        "argv": [PY, os.path.join(GRPC_DIR, "interop_server.py"), "--port", "{port}",
                 "--use_tls", "--cert_file", "{tls_dir}/server.pem",
                 "--key_file", "{tls_dir}/server.key"],
        "needs": ["grpcio", "tls"],
    },
    "weave": {
        "argv": [WEAVE_PEER, "server", "--port", "{port}"],
        "needs": ["weave"],
    },
    "weave-tls": {
        "argv": [WEAVE_PEER, "server", "--port", "{port}", "--use_tls",
                 "--cert_file", "{tls_dir}/server.pem", "--key_file", "{tls_dir}/server.key"],
        "needs": ["weave", "tls"],
    },
}

# name -> {"argv": the command that runs {case} against {host}:{port}, "needs": [...]}
CLIENTS = {
    "grpcio": {
        "argv": [PY, os.path.join(GRPC_DIR, "interop_client.py"), "--server_host", "{host}",
                 "--server_port", "{port}", "--test_case", "{case}"],
        "needs": ["grpcio"],
    },
    "grpc-js": {
        "argv": ["node", os.path.join(NODE_DIR, "grpc_interop.js"), "client",
                 "--server_host", "{host}", "--server_port", "{port}", "--test_case", "{case}"],
        "needs": ["node"],
    },
    "grpcio-tls": {
        "argv": [PY, os.path.join(GRPC_DIR, "interop_client.py"), "--server_host", "{host}",
                 "--server_port", "{port}", "--test_case", "{case}", "--use_tls",
                 "--ca_file", "{tls_dir}/ca.pem", "--server_host_override", "localhost"],
        "needs": ["grpcio", "tls"],
    },
    "weave": {
        "argv": [WEAVE_PEER, "client", "--server_host", "{host}", "--server_port", "{port}",
                 "--test_case", "{case}"],
        "needs": ["weave"],
    },
    "weave-tls": {
        "argv": [WEAVE_PEER, "client", "--server_host", "{host}", "--server_port", "{port}",
                 "--test_case", "{case}", "--use_tls", "--ca_file", "{tls_dir}/ca.pem",
                 "--server_host_override", "localhost"],
        "needs": ["weave", "tls"],
    },
}

# (client, server): the peers proven against each other
PAIRS = [
    ("grpcio", "grpc-js"),
    ("grpc-js", "grpcio"),
    ("grpcio-tls", "grpcio-tls"),
    ("weave", "grpcio"),
    ("weave", "grpc-js"),
    ("grpcio", "weave"),
    ("grpc-js", "weave"),
    ("weave", "weave"),
    ("grpcio-tls", "weave-tls"),
    ("weave-tls", "grpcio-tls"),
    ("weave-tls", "weave-tls"),
]


# ------------------------------------------------------------- the needs

_ready = {}


def _need_grpcio():
    r = subprocess.run([PY, "-c", "import grpc, grpc_tools.protoc"], capture_output=True,
                       text=True)
    check(r.returncode == 0, "grpcio or grpc_tools missing for %s (scripts/deps.sh installs "
          "python3-grpcio python3-grpc-tools): %s", PY, r.stderr.strip())


def _need_node():
    check(shutil.which("node") and shutil.which("npm"),
          "node or npm not found (scripts/deps.sh installs nodejs and npm)")
    marker = os.path.join(NODE_DIR, "node_modules", "@grpc", "grpc-js", "package.json")
    # one `npm ci` at a time in this folder, as scripts/node_test_server.sh does
    lock = os.path.join(os.environ.get("TMPDIR", "/tmp"), "weave-npm-ci-%s.lock"
                        % hashlib.md5(NODE_DIR.encode()).hexdigest()[:12])
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        if not os.path.exists(marker):
            r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                               cwd=NODE_DIR, capture_output=True, text=True, timeout=600)
            check(r.returncode == 0, "npm ci in %s failed: %s", NODE_DIR, r.stderr[-2000:])
    check(os.path.exists(marker), "@grpc/grpc-js is not in %s/node_modules after npm ci",
          NODE_DIR)


_tls_dir = None


def _need_tls():
    """A CA and a server certificate for localhost and 127.0.0.1 it signed."""
    global _tls_dir
    check(shutil.which("openssl"), "openssl not found (scripts/deps.sh installs it)")
    d = tempfile.mkdtemp(prefix="weave-grpc-tls-")
    atexit.register(shutil.rmtree, d, True)

    def ssl(*args):
        r = subprocess.run(["openssl"] + list(args), cwd=d, capture_output=True, text=True)
        check(r.returncode == 0, "openssl %s: %s", " ".join(args), r.stderr.strip())

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=weave interop test CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    _tls_dir = d


def _need_weave():
    check(os.path.exists(WEAVE_PEER), "no %s (cmake --build %s --target grpc_interop_peer; "
          "BUILD_DIR picks the build)", WEAVE_PEER, BUILD_DIR)


NEEDS = {"grpcio": _need_grpcio, "node": _need_node, "tls": _need_tls, "weave": _need_weave}


def need(what):
    """Checks (once) what a peer needs; a failed check fails every test that
    needs it, with the same reason."""
    if what not in _ready:
        try:
            NEEDS[what]()
            _ready[what] = None
        except Failure as e:
            _ready[what] = str(e)
    check(_ready[what] is None, "%s", _ready[what])


def fill(argv, **values):
    values.setdefault("tls_dir", _tls_dir or "")
    return [a.format(**values) for a in argv]


# ------------------------------------------------------------- servers

class PeerServer:
    def __init__(self, name):
        self.name = name
        spec = SERVERS[name]
        for n in spec["needs"]:
            need(n)
        self.port = httptest.free_port()
        self.argv = fill(spec["argv"], port=self.port)
        self.logs = tempfile.mkdtemp(prefix="weave-grpc-server-")
        self.out = open(os.path.join(self.logs, "stdout"), "wb")
        self.err = open(os.path.join(self.logs, "stderr"), "wb")
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.out,
                                         stderr=self.err, start_new_session=True)
        except OSError as e:
            shutil.rmtree(self.logs, True)
            raise Failure("server %s cannot start (%s): %s" % (name, e, " ".join(self.argv))) from None
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise Failure("server %s exited with %s before it served on port %d: %s\n%s"
                              % (name, self.proc.returncode, self.port, " ".join(self.argv),
                                 self.output()))
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise Failure("server %s did not accept a connection on port %d within 30 s: "
                              "%s\n%s" % (name, self.port, " ".join(self.argv), self.output()))
            time.sleep(0.1)

    def output(self):
        text = ""
        for part in ("stdout", "stderr"):
            with open(os.path.join(self.logs, part), "rb") as f:
                data = f.read().decode("utf-8", "replace")
            if data:
                text += "--- server %s: %s\n%s" % (self.name, part, data[-4000:])
        return text

    def check_alive(self):
        check(self.proc.poll() is None, "server %s died (exit %s)\n%s", self.name,
              self.proc.returncode, self.output())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.logs, True)

    def stop(self):
        """SIGTERM; it must exit 0 within 10 s, sanitizer-clean."""
        self.check_alive()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            out = self.output()
            self.kill()
            raise Failure("server %s still running 10 s after SIGTERM\n%s" % (self.name, out))
        out = self.output()
        shutil.rmtree(self.logs, True)
        check(rc == 0, "server %s exited %s after SIGTERM\n%s", self.name, rc, out)
        for marker in httptest.SANITIZER_MARKERS:
            check(marker not in out, "server %s: a sanitizer report\n%s", self.name, out)


_servers = {}
_broken = {}


def server(name):
    """The running server `name`, started on first use; a server that could
    not start fails every case that needs it with the same reason."""
    if name in _broken:
        raise Failure(_broken[name])
    if name not in _servers:
        try:
            _servers[name] = PeerServer(name)
        except Failure as e:
            _broken[name] = str(e)
            raise
    return _servers[name]


def _kill_all():
    for s in _servers.values():
        s.kill()


atexit.register(_kill_all)


# ------------------------------------------------------------- the tests

def run_case(client, server_name, case):
    srv = server(server_name)
    for n in CLIENTS[client]["needs"]:
        need(n)
    argv = fill(CLIENTS[client]["argv"], host=HOST, port=srv.port, case=case)
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=CLIENT_TIMEOUT)
    except OSError as e:
        raise Failure("client %s cannot start (%s): %s" % (client, e, " ".join(argv))) from None
    except subprocess.TimeoutExpired as e:
        raise Failure("client %s still running after %d s: %s\n%s" % (
            client, CLIENT_TIMEOUT, " ".join(argv), e.stderr or ""))
    check(r.returncode == 0, "client %s against server %s, exit %s: %s\n%s%s", client,
          server_name, r.returncode, " ".join(argv), r.stdout, r.stderr)
    for marker in httptest.SANITIZER_MARKERS:
        check(marker not in r.stdout + r.stderr, "client %s: a sanitizer report: %s\n%s%s",
              client, " ".join(argv), r.stdout, r.stderr)
    srv.check_alive()


def make_tests():
    tests = {}
    for client, server_name in PAIRS:
        check(client in CLIENTS, "PAIRS names an unknown client %s", client)
        check(server_name in SERVERS, "PAIRS names an unknown server %s", server_name)
        for case in CASES:
            name = "test_%s__%s__%s" % (client.replace("-", "_"), server_name.replace("-", "_"),
                                        case)
            tests[name] = (lambda c=client, s=server_name, k=case: run_case(c, s, k))

    def test_servers_stop_cleanly():
        """Each server started: SIGTERM, exit 0, sanitizer-clean."""
        bad = []
        for name, srv in list(_servers.items()):
            try:
                srv.stop()
            except Failure as e:
                bad.append(str(e))
            del _servers[name]
        check(not bad, "%s", "\n".join(bad))

    tests["test_servers_stop_cleanly"] = test_servers_stop_cleanly
    return tests


if __name__ == "__main__":
    namespace = make_tests()
    namespace["__file__"] = __file__
    httptest.run(namespace)
