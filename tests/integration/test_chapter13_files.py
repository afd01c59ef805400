"""§13.7 in the chapter's service (examples/chapter13/s13_7_cloud.c): POST
/files streams an upload to the store, GET /files lists, GET /files/{name}
streams a file back as an attachment, DELETE /files/{name} removes it; on
the default local directory, on s3rver as S3 (boto3 reads what the service
stored and the other way round) and as GCS through a gs:// bucket URL.
Bad names get 422, a file past the limit 413; an upload whose client goes
away leaves nothing behind; a 64 MiB upload does not grow the service's
memory by its size; a download whose store dies midway is cut, never
handed over as a short file."""
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import check, eq, free_port, run  # noqa: E402
import test_chapter13 as c13  # noqa: E402
from test_chapter13 import req  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUCKET = "chapter13-files"

try:
    import boto3
    import botocore.config
except ImportError:
    print("test_chapter13_files: boto3 is not installed (scripts/deps.sh test installs it)")
    print("0 passed, 1 failed")
    sys.exit(1)


def pattern(n, seed):
    block = bytes((i * 131 + seed) & 0xFF for i in range(65536))
    return (block * (n // len(block) + 1))[:n]


class S3rver:
    """s3rver on a free loopback port for the tests that need it."""
    _one = None

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="weave-c13-s3-")
        self.start()

    def start(self):
        self.port = getattr(self, "port", None) or free_port()
        self.endpoint = subprocess.run(
            ["bash", os.path.join(ROOT, "scripts/s3_test_server.sh"), "start",
             os.path.join(self.dir, "server"), str(self.port), BUCKET],
            check=True, capture_output=True, text=True, timeout=120).stdout.strip()
        self.boto = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
            config=botocore.config.Config(s3={"addressing_style": "path"}))

    def stop(self):
        subprocess.run(["bash", os.path.join(ROOT, "scripts/s3_test_server.sh"), "stop",
                        os.path.join(self.dir, "server")], check=False, capture_output=True)

    def env(self, bucket_url):
        e = {"S3_ENDPOINT": self.endpoint, "S3_BUCKET": bucket_url,
             "AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER",
             "AWS_REGION": "us-east-1"}
        return e

    @classmethod
    def get(cls):
        if cls._one is None:
            cls._one = S3rver()
        return cls._one

    @classmethod
    def close(cls):
        if cls._one is not None:
            cls._one.stop()
            shutil.rmtree(cls._one.dir, ignore_errors=True)
            cls._one = None


class Service(c13.Service):
    """The service with its files in a fresh directory, or in the bucket
    `env` names."""

    def upload(self, name, body, content_type="application/octet-stream"):
        st, h, data = req(self.port, "POST", "/files?name=" + urllib.parse.quote(name), body,
                          {"Content-Type": content_type})
        return st, h, json.loads(data)

    def listing(self):
        st, _, data = req(self.port, "GET", "/files")
        eq(st, 200, "GET /files")
        return json.loads(data)

    def download(self, name):
        return req(self.port, "GET", "/files/" + urllib.parse.quote(name))

    def delete(self, name):
        return req(self.port, "DELETE", "/files/" + urllib.parse.quote(name))[0]

    def rss_hwm_kb(self):
        for line in open("/proc/%d/status" % self.proc.pid):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")


def round_trip(s, names):
    """Upload, list, download byte for byte, delete: what every store must do."""
    bodies = {}
    for i, name in enumerate(names):
        bodies[name] = pattern(1000 * i + 17 * i * i, i) if i else b""
        st, h, doc = s.upload(name, bodies[name], "text/plain" if i == 1 else "image/png")
        eq(st, 201, "upload of %r: %r" % (name, doc))
        eq(doc["name"], name, "name")
        eq(doc["size"], len(bodies[name]), "size")
        eq(h["location"], "/files/" + urllib.parse.quote(name, safe="-._~"), "Location")
    listed = {f["name"]: f for f in s.listing()["files"]}
    eq(sorted(listed), sorted(names), "listed names")
    for name in names:
        eq(listed[name]["size"], len(bodies[name]), "listed size of %r" % name)
        check(abs(listed[name]["modified"] - time.time()) < 600, "modified %r", listed[name])
        st, h, body = s.download(name)
        eq(st, 200, "download of %r" % name)
        check(body == bodies[name], "%r came back different (%d bytes, sent %d)", name,
              len(body), len(bodies[name]))
        eq(h["content-length"], str(len(bodies[name])), "Content-Length")
        check(h["content-disposition"].startswith("attachment;"), "not an attachment: %r", h)
        check("filename*=UTF-8''" + urllib.parse.quote(name, safe="") in
              h["content-disposition"].replace("%21", "!"), "disposition %r", h)
        eq(h["x-content-type-options"], "nosniff", "nosniff")
    for name in names:
        eq(s.delete(name), 204, "DELETE %r" % name)
        eq(s.download(name)[0], 404, "GET of %r after DELETE" % name)
        eq(s.delete(name), 404, "a second DELETE of %r" % name)
    eq(s.listing()["files"], [], "listing after every DELETE")
    return bodies


NAMES = ["empty.txt", "notes.txt", "with space.bin", "ünïcødé файл.png"]


def test_files_default_to_a_local_directory():
    with Service() as s:
        eq(s.listing()["storage"], "directory " + s.files, "storage")
        round_trip(s, NAMES)
        # a file uploaded again replaces the first, whole
        s.upload("again.txt", b"first version")
        s.upload("again.txt", b"second")
        eq(s.download("again.txt")[2], b"second", "replaced")
        eq(sorted(os.listdir(s.files)), ["again.txt"], "nothing else in the directory")


def test_bad_names_are_422_and_store_nothing():
    with Service() as s:
        for name in ["", ".hidden", "..", "a/b", "back\\slash", "tab\there", "x" * 256]:
            st, _, doc = s.upload(name, b"data")
            eq(st, 422, "status for %r" % name)
            eq(doc["detail"][0]["loc"], ["query", "name"], "loc for %r" % name)
        st, _, body = req(s.port, "POST", "/files", b"data")
        eq(st, 422, "no name at all")
        st, _, body = req(s.port, "POST", "/files?name=%FF%FE.bin", b"data")
        eq(st, 422, "a name that is not UTF-8: %r" % body)
        st, _, body = req(s.port, "GET", "/files/.hidden")
        eq(st, 422, "GET of a bad name")
        eq(s.listing()["files"], [], "listing")
        eq(os.listdir(s.files), [], "the directory stays empty")
        eq(s.upload("é" * 127, b"ok")[0], 201, "a 254-byte UTF-8 name")


def test_file_over_the_limit_is_413_declared_or_streamed():
    with Service(args=("--files-max-bytes", "100000")) as s:
        st, _, doc = s.upload("big.bin", pattern(100001, 1))
        eq(st, 413, "a declared length over the limit: %r" % doc)
        # chunked: the limit is found while streaming
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        c.putrequest("POST", "/files?name=chunked.bin")
        c.putheader("Transfer-Encoding", "chunked")
        c.endheaders()
        try:
            for _ in range(30):
                c.send(b"4000\r\n" + b"z" * 0x4000 + b"\r\n")
            c.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        eq(c.getresponse().status, 413, "a chunked upload passing the limit")
        c.close()
        eq(s.upload("fits.bin", pattern(100000, 2))[0], 201, "exactly the limit")
        eq(sorted(os.listdir(s.files)), ["fits.bin"], "no leftovers of the refused uploads")


def cut_upload(port, name, sent, declared):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(("POST /files?name=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                  % (name, declared)).encode() + pattern(sent, 3))
    time.sleep(0.3)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()  # a reset, mid-body


def wait_until(what, fn, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.05)
    raise AssertionError("still not " + what)


def test_client_gone_mid_upload_leaves_nothing_in_the_directory():
    with Service() as s:
        cut_upload(s.port, "cut.bin", 3 << 20, 20 << 20)
        wait_until("cleaned up", lambda: os.listdir(s.files) == [])
        eq(s.listing()["files"], [], "listing")
        eq(s.upload("after.bin", b"fine")[0], 201, "the service goes on")


def test_64mib_upload_and_download_keep_the_service_memory_bounded():
    with Service() as s:
        body = pattern(64 << 20, 5)
        before = s.rss_hwm_kb()
        st, _, doc = s.upload("large.bin", body)
        eq(st, 201, "upload: %r" % doc)
        st, _, got = s.download("large.bin")
        eq(st, 200, "download")
        check(hashlib.sha256(got).digest() == hashlib.sha256(body).digest(), "64 MiB differs")
        grew = (s.rss_hwm_kb() - before) / 1024
        check(grew < 24, "peak memory grew by %.1f MiB moving 64 MiB through", grew)


def test_files_in_s3_round_trip_and_boto3_agrees():
    s3 = S3rver.get()
    with Service(env=s3.env(BUCKET)) as s:
        eq(s.listing()["storage"], "s3://%s/uploads/" % BUCKET, "storage")
        round_trip(s, NAMES)
        # what the service stores, boto3 reads, at the chapter's uploads/ key
        big = pattern(12 << 20, 7)  # three 5 MiB parts
        st, _, doc = s.upload("report.bin", big, "application/x-report")
        eq(st, 201, "multipart upload: %r" % doc)
        o = s3.boto.get_object(Bucket=BUCKET, Key="uploads/report.bin")
        check(o["Body"].read() == big, "boto3 read other bytes")
        eq(o["ContentType"], "application/x-report", "type stored")
        # what boto3 stores there, the service lists and serves
        s3.boto.put_object(Bucket=BUCKET, Key="uploads/from boto.txt", Body=b"hello from boto3",
                           ContentType="text/plain")
        s3.boto.put_object(Bucket=BUCKET, Key="elsewhere/hidden.txt", Body=b"not ours")
        names = sorted(f["name"] for f in s.listing()["files"])
        eq(names, ["from boto.txt", "report.bin"], "listing under the prefix only")
        st, h, body = s.download("from boto.txt")
        eq((st, body, h["content-type"]), (200, b"hello from boto3", "text/plain"), "boto3's")
        for name in names:
            eq(s.delete(name), 204, "DELETE %r" % name)
        s3.boto.delete_object(Bucket=BUCKET, Key="elsewhere/hidden.txt")


def test_gs_bucket_url_uses_the_same_routes():
    s3 = S3rver.get()
    with Service(env=s3.env("gs://%s/gcs-prefix" % BUCKET)) as s:
        eq(s.listing()["storage"], "gs://%s/gcs-prefix/" % BUCKET, "storage")
        eq(s.upload("to gcs.txt", b"via the XML API")[0], 201, "upload")
        o = s3.boto.get_object(Bucket=BUCKET, Key="gcs-prefix/to gcs.txt")
        eq(o["Body"].read(), b"via the XML API", "stored at the prefix")
        eq(s.download("to gcs.txt")[2], b"via the XML API", "download")
        eq(s.delete("to gcs.txt"), 204, "delete")


def test_client_gone_mid_upload_leaves_nothing_in_the_bucket():
    s3 = S3rver.get()
    with Service(env=s3.env(BUCKET)) as s:
        cut_upload(s.port, "cut.bin", 12 << 20, 40 << 20)  # two parts sent, then the reset
        time.sleep(1)
        eq(s.listing()["files"], [], "listing")
        keys = [o["Key"] for o in s3.boto.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        eq(keys, [], "objects in the bucket")
        eq(s.upload("after.bin", b"fine")[0], 201, "the service goes on")
        eq(s.delete("after.bin"), 204, "clean up")


def test_store_down_is_502_and_a_download_cut_midway_is_an_error():
    s3 = S3rver.get()
    with Service(env=s3.env(BUCKET)) as s:
        body = pattern(40 << 20, 9)
        eq(s.upload("long.bin", body)[0], 201, "upload")
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=20)
        c.request("GET", "/files/long.bin")
        r = c.getresponse()
        eq(r.status, 200, "download starts")
        first = r.read(1 << 20)  # the first MiB, then the store goes away
        s3.stop()
        try:
            got = len(first)
            try:
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
                cut = got < len(body)
            except http.client.IncompleteRead:
                cut = True
            check(cut, "the whole 40 MiB arrived: the store was not cut off in time")
            c.close()
            st, _, data = req(s.port, "GET", "/files")
            eq(st, 502, "listing with the store down: %r" % data)
            check("file store failed" in json.loads(data)["detail"], "detail %r", data)
            eq(req(s.port, "GET", "/healthz")[0], 200, "the service itself is alive")
        finally:
            s3.start()
        eq(s.delete("long.bin"), 204, "clean up")


if __name__ == "__main__":
    try:
        run(globals())
    finally:
        S3rver.close()
