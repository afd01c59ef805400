"""The interop protos (empty.proto, messages.proto, test.proto beside this
file) compiled for Python at run time: grpc_tools.protoc writes the _pb2 and
_pb2_grpc modules into a temporary folder, removed at exit, and load()
returns them. Shared by interop_server.py and interop_client.py."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = ["empty.proto", "messages.proto", "test.proto"]


def load():
    out = tempfile.mkdtemp(prefix="weave-grpc-interop-")
    atexit.register(shutil.rmtree, out, True)
    r = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", HERE,
                        "--python_out=" + out, "--grpc_python_out=" + out]
                       + [os.path.join(HERE, p) for p in PROTOS],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit("grpc_tools.protoc failed on %s: %s" % (HERE, r.stderr.strip()))
    sys.path.insert(0, out)
    import empty_pb2
    import messages_pb2
    import test_pb2_grpc
    return types.SimpleNamespace(empty=empty_pb2, messages=messages_pb2, grpc=test_pb2_grpc)
