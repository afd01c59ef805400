"""§13.6.2 live, both ways. The chapter's service (examples/chapter13)
serves MyService.SayHello on --grpc-port, and the chapter's own Python
client (examples/chapter13/grpc/client.py, with the code grpc_tools.protoc
generates from examples/chapter13/service.proto) calls it and prints the
book's line; GET /grpc/hello calls SayHello with weave's client, on the
book's own server.py (--grpc-target) or on the service itself, carrying the
request's deadline (504), 502 when the target cannot be reached, 503 with
no target; grpc.health.v1 answers SERVING for it. The 1-second wait runs in the call's fiber: 50 callers at once
all finish together; a caller's deadline ends its wait; over TLS when the
service has a certificate; off unless a port is given, and a port out of
range refused."""
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_chapter13 as c13  # noqa: E402
from httptest import check, eq, free_port, run  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "chapter13")
GEN = tempfile.mkdtemp(prefix="weave-c13-grpc-")
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", EXAMPLE, "--python_out=" + GEN,
                "--grpc_python_out=" + GEN, os.path.join(EXAMPLE, "service.proto")], check=True)
sys.path.insert(0, GEN)
for lib_proto in ("health.proto", "reflection.proto"):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I",
                    os.path.join(ROOT, "src", "grpc"), "--python_out=" + GEN,
                    "--grpc_python_out=" + GEN, os.path.join(ROOT, "src", "grpc", lib_proto)],
                   check=True)
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import reflection_pb2  # noqa: E402
import reflection_pb2_grpc  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402
import service_pb2  # noqa: E402
import service_pb2_grpc  # noqa: E402

WEB = tempfile.mkdtemp(prefix="weave-c13-grpc-web-")


def python(script, **env):
    """One of the chapter's Python scripts, with the generated modules."""
    return subprocess.run([sys.executable, os.path.join(EXAMPLE, "grpc", script)],
                          env=dict(os.environ, PYTHONPATH=GEN, **env), capture_output=True,
                          text=True, timeout=30)


class Chapter13:
    def __init__(self, delay_ms=1000, args=()):
        self.grpc_port = free_port()
        self.proc, self.port = c13.start(WEB, delay_ms, args=("--grpc-port", str(self.grpc_port))
                                         + tuple(args))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            c13.stop(self.proc)
        elif self.proc.poll() is None:
            self.proc.kill()


def test_the_books_client_gets_its_hello_from_weave():
    with Chapter13() as svc:
        t0 = time.monotonic()
        out = python("client.py", GRPC_TARGET="localhost:%d" % svc.grpc_port)
        eq(out.returncode, 0, "client.py: %s" % out.stderr)
        eq(out.stdout.strip(), "Received message: Hello, Python!")
        check(time.monotonic() - t0 >= 1.0, "the chapter's 1-second wait did not happen")


def test_fifty_callers_wait_together():
    with Chapter13() as svc:
        with grpc.insecure_channel("127.0.0.1:%d" % svc.grpc_port) as ch:
            stub = service_pb2_grpc.MyServiceStub(ch)
            t0 = time.monotonic()
            futures = [stub.SayHello.future(service_pb2.HelloRequest(name="n%d" % i), timeout=30)
                       for i in range(50)]
            eq([f.result().message for f in futures], ["Hello, n%d!" % i for i in range(50)])
            # one after another would take 50 s
            check(time.monotonic() - t0 < 10, "the calls did not wait concurrently")


def test_the_health_service_answers_for_my_service():
    with Chapter13(delay_ms=0) as svc:
        with grpc.insecure_channel("127.0.0.1:%d" % svc.grpc_port) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            for name in ("", "MyService"):
                eq(health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status,
                   health_pb2.HealthCheckResponse.SERVING, "health of %r" % name)


def test_reflection_lists_my_service_and_gives_service_proto():
    with Chapter13(delay_ms=0) as svc:
        with grpc.insecure_channel("127.0.0.1:%d" % svc.grpc_port) as ch:
            refl = reflection_pb2_grpc.ServerReflectionStub(ch)
            asks = [reflection_pb2.ServerReflectionRequest(list_services=""),
                    reflection_pb2.ServerReflectionRequest(file_containing_symbol="MyService")]
            listed, described = list(refl.ServerReflectionInfo(iter(asks), timeout=10))
            check("MyService" in {s.name for s in listed.list_services_response.service},
                  "MyService listed: %r", listed)
            f = descriptor_pb2.FileDescriptorProto.FromString(
                described.file_descriptor_response.file_descriptor_proto[0])
            eq((f.name, f.service[0].name, f.service[0].method[0].name),
               ("service.proto", "MyService", "SayHello"))


def test_a_callers_deadline_ends_the_wait():
    with Chapter13(delay_ms=5000) as svc:
        with grpc.insecure_channel("127.0.0.1:%d" % svc.grpc_port) as ch:
            stub = service_pb2_grpc.MyServiceStub(ch)
            try:
                stub.SayHello(service_pb2.HelloRequest(name="late"), timeout=0.3)
                raise AssertionError("no DEADLINE_EXCEEDED")
            except grpc.RpcError as e:
                eq(e.code(), grpc.StatusCode.DEADLINE_EXCEEDED)


def test_grpc_over_tls_with_the_services_certificate():
    certs = tempfile.mkdtemp(prefix="weave-c13-grpc-tls-")
    subprocess.run(["bash", os.path.join(ROOT, "tests", "make_certs.sh"), certs], check=True)
    args = ("--tls-cert", os.path.join(certs, "server.pem"),
            "--tls-key", os.path.join(certs, "server.key"))
    proc = None
    try:
        grpc_port = free_port()
        proc = subprocess.Popen([c13.BIN, "--port", "0", "--web-dir", WEB, "--grpc-port",
                                 str(grpc_port)] + list(args),
                                env=dict(os.environ, ASYNC_DELAY_MS="0", SHARDS="1"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        banner = []
        for _ in range(20):
            line = proc.stdout.readline()
            banner.append(line)
            if line.startswith("listening on"):
                break
        check(any(("grpc" in l and "https://localhost:%d/" % grpc_port in l) for l in banner),
              "the banner names the gRPC port: %r", banner)
        with open(os.path.join(certs, "ca.pem"), "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        with grpc.secure_channel("localhost:%d" % grpc_port, creds) as ch:
            reply = service_pb2_grpc.MyServiceStub(ch).SayHello(
                service_pb2.HelloRequest(name="tls"), timeout=10)
            eq(reply.message, "Hello, tls!")
        c13.stop(proc)
    finally:
        if proc and proc.poll() is None:
            proc.kill()
        shutil.rmtree(certs, ignore_errors=True)


def test_no_grpc_port_unless_asked():
    proc, port = c13.start(WEB, 0)
    try:
        r = subprocess.run([c13.BIN, "--help"], capture_output=True, text=True, timeout=10)
        check("--grpc-port" in r.stdout and "GRPC_PORT" in r.stdout, "--help lists --grpc-port")
    finally:
        c13.stop(proc)


def get_json(port, path, headers=None):
    st, _, body = c13.req(port, "GET", path, headers=headers)
    return st, json.loads(body) if body else None


def test_get_grpc_hello_calls_the_services_own_grpc_port():
    with Chapter13(delay_ms=300) as svc:
        t0 = time.monotonic()
        eq(get_json(svc.port, "/grpc/hello?name=weave"), (200, {"message": "Hello, weave!"}))
        check(time.monotonic() - t0 >= 0.3, "the 300 ms wait did not happen")
        eq(get_json(svc.port, "/grpc/hello"), (200, {"message": "Hello, Python!"}),
           "the book's name by default")


def test_weave_calls_the_books_server_py():
    port = free_port()
    server = subprocess.Popen([sys.executable, os.path.join(EXAMPLE, "grpc", "server.py")],
                              env=dict(os.environ, PYTHONPATH=GEN, GRPC_PORT=str(port)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        check(line.startswith("listening on"), "server.py did not start: %r %r", line,
              server.stderr.read() if server.poll() is not None else "")
        proc, hport = c13.start(WEB, 0, args=("--grpc-target", "localhost:%d" % port))
        try:
            t0 = time.monotonic()
            eq(get_json(hport, "/grpc/hello?name=weave"), (200, {"message": "Hello, weave!"}))
            check(time.monotonic() - t0 >= 1.0, "server.py's 1-second wait did not happen")
            # the caller's 300 ms reach server.py as grpc-timeout: 504, not 1 s later
            t0 = time.monotonic()
            st, body = get_json(hport, "/grpc/hello", {"X-Request-Timeout-Ms": "300"})
            eq(st, 504, "a deadline shorter than server.py's wait (%r)" % body)
            check(time.monotonic() - t0 < 0.9, "the deadline did not cut the call short")
            # many at once share one connection and wait together
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                t0 = time.monotonic()
                got = list(pool.map(lambda i: get_json(hport, "/grpc/hello?name=n%d" % i),
                                    range(20)))
            eq(got, [(200, {"message": "Hello, n%d!" % i}) for i in range(20)])
            check(time.monotonic() - t0 < 10, "the calls did not wait concurrently")
        finally:
            c13.stop(proc)
    finally:
        server.kill()
        server.wait()


def test_grpc_hello_without_a_reachable_target():
    proc, port = c13.start(WEB, 0)
    try:
        st, body = get_json(port, "/grpc/hello")
        eq(st, 503, "no target")
        check("--grpc-target" in body["detail"], "the detail says what to set: %r", body)
    finally:
        c13.stop(proc)
    closed = free_port()
    proc, port = c13.start(WEB, 0, args=("--grpc-target", "127.0.0.1:%d" % closed))
    try:
        st, body = get_json(port, "/grpc/hello")
        eq(st, 502, "nothing listens there")
        check("UNAVAILABLE" in body["detail"], "the detail names the status: %r", body)
    finally:
        c13.stop(proc)


def test_a_bad_grpc_port_is_refused():
    r = subprocess.run([c13.BIN, "--port", "0", "--web-dir", WEB, "--grpc-port", "70000"],
                       capture_output=True, text=True, timeout=20)
    eq(r.returncode, 2, "exit status for --grpc-port 70000 (stderr %r)" % r.stderr)
    check("70000" in r.stderr, "the error names the port: %r", r.stderr)


if __name__ == "__main__":
    run(globals())
