"""The chapter's service.proto (examples/chapter13/service.proto, §13.6.2)
from both sides: Python's protobuf, with the module grpc_tools.protoc
generates from the same file, against weave's protoc-c code and gRPC
framing (grpc_proto_peer, built from tests/integration/grpc_proto_peer.c).

- grpcio's generated stub calls "/MyService/SayHello" (no package).
- C packs and frames HelloRequests, plain and gzip: Python reads the
  5-byte prefixes, gunzips flagged messages and parses each; unflagged
  payloads are byte for byte what Python's SerializeToString gives.
- Python packs and frames them, plain and gzip (gzip.compress, as grpcio's
  gzip does per message): the C reader, fed 7-byte pieces, decodes every
  name back.
"""
import gzip
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD_DIR = os.environ.get("BUILD_DIR", "build/release")
PEER = os.path.join(BUILD_DIR, "grpc_proto_peer")
PROTO_DIR = os.path.join(ROOT, "examples", "chapter13")

NAMES = [
    "World",
    "",
    "d\u00e9j\u00e0 vu \u2713",
    "\U0001F600 \u4e2d\u6587",
    "x" * 200,
    "long " * 20000,  # 100 kB: spans many of the reader's pieces, gzip shrinks it
]

passed = 0
failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def generate_python_module(out_dir):
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO_DIR,
                    "--python_out=" + out_dir, "--grpc_python_out=" + out_dir,
                    os.path.join(PROTO_DIR, "service.proto")], check=True)
    sys.path.insert(0, out_dir)
    import service_pb2
    import service_pb2_grpc
    return service_pb2, service_pb2_grpc


def frames(stream):
    """The (flag, payload) of each Length-Prefixed-Message in stream."""
    out, i = [], 0
    while i < len(stream):
        flag, length = struct.unpack(">BI", stream[i:i + 5])
        out.append((flag, stream[i + 5:i + 5 + length]))
        i += 5 + length
    assert i == len(stream), "the stream ends inside a message"
    return out


def run_peer(args, data):
    p = subprocess.run([PEER] + args, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise AssertionError("grpc_proto_peer %s: exit %d: %s"
                             % (" ".join(args), p.returncode, p.stderr.decode()))
    return p.stdout


def test_method_path(pb2_grpc):
    class Channel:
        paths = []

        def unary_unary(self, path, *args, **kwargs):
            self.paths.append(path)
            return None

    pb2_grpc.MyServiceStub(Channel())
    check("grpcio calls /MyService/SayHello", Channel.paths == ["/MyService/SayHello"],
          repr(Channel.paths))


def test_c_to_python(pb2, encoding):
    lines = b"".join(n.encode("utf-8").hex().encode() + b"\n" for n in NAMES)
    stream = run_peer(["pack"] + ([encoding] if encoding else []), lines)
    got = frames(stream)
    check("C->Python %s: one message per name" % (encoding or "identity"),
          len(got) == len(NAMES), "%d messages" % len(got))
    for name, (flag, payload) in zip(NAMES, got):
        label = "C->Python %s %r" % (encoding or "identity", name[:12])
        want = pb2.HelloRequest(name=name).SerializeToString()
        if flag == 1:
            if encoding != "gzip":
                check(label, False, "compressed without an encoding")
                continue
            payload = gzip.decompress(payload)
        msg = pb2.HelloRequest()
        msg.ParseFromString(payload)
        check(label, msg.name == name and payload == want)
    if encoding == "gzip":
        # the long, repetitive name must have gone compressed
        check("C->Python gzip compresses what shrinks", got[-1][0] == 1)


def test_python_to_c(pb2, encoding):
    stream = b""
    for name in NAMES:
        payload = pb2.HelloRequest(name=name).SerializeToString()
        flag = 0
        if encoding == "gzip" and len(payload) > 50:
            payload, flag = gzip.compress(payload), 1
        stream += struct.pack(">BI", flag, len(payload)) + payload
    out = run_peer(["unpack"] + ([encoding] if encoding else []), stream)
    names = [bytes.fromhex(line).decode("utf-8") for line in out.decode().splitlines()]
    check("Python->C %s: every name decoded" % (encoding or "identity"), names == NAMES,
          repr([n[:12] for n in names]))


def main():
    if not os.path.exists(PEER):
        print("FAIL %s is not built" % PEER)
        print("0 passed, 1 failed")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        pb2, pb2_grpc = generate_python_module(tmp)
        for test, args in [(test_method_path, (pb2_grpc,)),
                           (test_c_to_python, (pb2, None)), (test_c_to_python, (pb2, "gzip")),
                           (test_python_to_c, (pb2, None)), (test_python_to_c, (pb2, "gzip"))]:
            try:
                test(*args)
            except Exception as e:  # one broken step is one failure, the rest still run
                check(test.__name__, False, repr(e))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
