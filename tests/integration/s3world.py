"""What the S3 integration tests (tests/integration/test_s3*.py) share: an
s3rver on a free loopback port (scripts/s3_test_server.sh) with one
bucket, weave's peer (tests/integration/s3_peer.c) configured from the
environment only (S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION) as a service would be, and the runner: each case prints PASS
or FAIL, the last line is "N passed, M failed" and the exit status is
non-zero on any failure.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD_DIR", "build/release")
PEER = os.path.join(BUILD, "s3_peer")
BUCKET = "test-bucket"
SERVER_SCRIPT = os.path.join(ROOT, "scripts/s3_test_server.sh")


def pattern(n, seed):
    return bytes((i * 131 + seed) & 0xFF for i in range(n))


class World:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="weave-s3-it-")
        self.endpoint = subprocess.run(
            ["bash", SERVER_SCRIPT, "start", os.path.join(self.dir, "server"), str(free_port()),
             BUCKET],
            check=True, capture_output=True, text=True, timeout=120).stdout.strip()
        self.env = dict(os.environ, S3_ENDPOINT=self.endpoint, AWS_ACCESS_KEY_ID="S3RVER",
                        AWS_SECRET_ACCESS_KEY="S3RVER", AWS_REGION="us-east-1",
                        WEAVE_PEER_PART_MIB="5")
        for k in ("AWS_SESSION_TOKEN", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            self.env.pop(k, None)

    def peer(self, *args, ok=True, binary=False):
        r = subprocess.run([PEER, *args], env=self.env, capture_output=True, timeout=120)
        if ok and r.returncode != 0:
            raise AssertionError("s3_peer %s: %s" % (" ".join(args), r.stderr.decode()))
        return r if binary else (r.returncode, r.stdout.decode(), r.stderr.decode())

    def server_log(self):
        return open(os.path.join(self.dir, "server", "log"), errors="replace").read()

    def parts_stored(self):
        """How many parts s3rver has stored so far, by its log."""
        return self.server_log().count("Stored part ")

    def path(self, name):
        return os.path.join(self.dir, name)

    def close(self):
        subprocess.run(["bash", SERVER_SCRIPT, "stop", os.path.join(self.dir, "server")],
                       check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def run(name, cases, setup=None):
    """Run each (title, fn) of cases as fn(world) on one fresh World (after
    setup(world), if given); print the tally and return the exit status."""
    if not os.path.exists(PEER):
        print("%s: %s is not built" % (name, PEER))
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    w = World()
    try:
        if setup:
            setup(w)
    except Exception as e:  # noqa: BLE001 - reported like a failed case
        print("FAIL setting up", repr(e))
        cases, failed = [], 1
    try:
        for title, fn in cases:
            try:
                fn(w)
                passed += 1
                print("PASS", title)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                failed += 1
                print("FAIL", title, repr(e))
    finally:
        w.close()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1
