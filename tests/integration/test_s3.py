"""weave's S3 client and boto3 on the same s3rver, each reading what the
other wrote.

s3rver is started by scripts/s3_test_server.sh on a free loopback port;
weave's side is tests/integration/s3_peer.c, configured from the
environment only (S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_REGION) as a service would be. Checked: objects weave put (one PUT,
and a 12 MiB file in 5 MiB parts) read back by boto3 byte for byte with
their type and metadata; objects boto3 put (one PUT, and boto3's own
multipart upload) read by weave into memory and into a file; both
listings agreeing on keys with spaces and unicode, page by page and with a
delimiter; weave's presigned GET and PUT URLs used by urllib with no
credentials; a missing key is ENOENT with S3's words; and after weave
deletes an object boto3 no longer finds it.
"""
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD_DIR", "build/release")
PEER = os.path.join(BUILD, "s3_peer")
BUCKET = "test-bucket"
passed = failed = 0

try:
    import boto3
    import botocore.config
    from boto3.s3.transfer import TransferConfig
except ImportError:
    print("test_s3: boto3 is not installed (apt-get install python3-boto3, scripts/deps.sh test)")
    print("0 passed, 1 failed")
    sys.exit(1)


def case(name, fn, *args):
    global passed, failed
    try:
        fn(*args)
        passed += 1
        print("PASS", name)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed += 1
        print("FAIL", name, repr(e))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pattern(n, seed):
    return bytes((i * 131 + seed) & 0xFF for i in range(n))


class World:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="weave-s3-it-")
        self.endpoint = subprocess.run(
            ["bash", os.path.join(ROOT, "scripts/s3_test_server.sh"), "start",
             os.path.join(self.dir, "server"), str(free_port()), BUCKET],
            check=True, capture_output=True, text=True, timeout=120).stdout.strip()
        self.env = dict(os.environ, S3_ENDPOINT=self.endpoint, AWS_ACCESS_KEY_ID="S3RVER",
                        AWS_SECRET_ACCESS_KEY="S3RVER", AWS_REGION="us-east-1",
                        WEAVE_PEER_PART_MIB="5")
        for k in ("AWS_SESSION_TOKEN", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            self.env.pop(k, None)
        self.boto = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
            config=botocore.config.Config(s3={"addressing_style": "path"}))

    def peer(self, *args, ok=True, binary=False):
        r = subprocess.run([PEER, *args], env=self.env, capture_output=True, timeout=120)
        if ok and r.returncode != 0:
            raise AssertionError("s3_peer %s: %s" % (" ".join(args), r.stderr.decode()))
        return r if binary else (r.returncode, r.stdout.decode(), r.stderr.decode())

    def server_log(self):
        return open(os.path.join(self.dir, "server", "log"), errors="replace").read()

    def path(self, name):
        return os.path.join(self.dir, name)

    def close(self):
        subprocess.run(["bash", os.path.join(ROOT, "scripts/s3_test_server.sh"), "stop",
                        os.path.join(self.dir, "server")], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def boto_reads_what_weave_put(w):
    small = pattern(70000, 3)
    open(w.path("small"), "wb").write(small)
    w.peer("put", BUCKET, "weave/small one.bin", w.path("small"), "application/x-weave",
           "colour=blue", "Run=7")
    got = w.boto.get_object(Bucket=BUCKET, Key="weave/small one.bin")
    assert got["Body"].read() == small
    assert got["ContentType"] == "application/x-weave", got["ContentType"]
    assert got["Metadata"] == {"colour": "blue", "run": "7"}, got["Metadata"]
    assert got["ETag"] == '"%s"' % hashlib.md5(small).hexdigest()

    big = pattern(12 * 1024 * 1024 + 11, 5)
    open(w.path("big"), "wb").write(big)
    parts_before = w.server_log().count("Stored part ")
    w.peer("put", BUCKET, "weave/caf\u00e9 big.bin", w.path("big"))
    got = w.boto.get_object(Bucket=BUCKET, Key="weave/caf\u00e9 big.bin")
    assert got["ContentLength"] == len(big)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(big).digest()
    # it went up in three parts of 5 MiB, as s3rver's log tells
    assert w.server_log().count("Stored part ") - parts_before == 3


def weave_reads_what_boto_put(w):
    data = pattern(50000, 9)
    w.boto.put_object(Bucket=BUCKET, Key="boto/one shot \u65e5\u672c.bin", Body=data,
                      ContentType="text/x-boto", Metadata={"origin": "boto3"})
    r = w.peer("cat", BUCKET, "boto/one shot \u65e5\u672c.bin", binary=True)
    assert r.returncode == 0 and r.stdout == data
    _, out, _ = w.peer("head", BUCKET, "boto/one shot \u65e5\u672c.bin", "origin")
    assert out.split("\n")[:3] == ["size=50000", "type=text/x-boto", "origin=boto3"], out

    big = pattern(11 * 1024 * 1024 + 1, 1)
    w.boto.upload_fileobj(io.BytesIO(big), BUCKET, "boto/multi.bin",
                          Config=TransferConfig(multipart_threshold=5 * 1024 * 1024,
                                                multipart_chunksize=5 * 1024 * 1024))
    w.peer("get", BUCKET, "boto/multi.bin", w.path("multi.out"))
    assert open(w.path("multi.out"), "rb").read() == big


def listings_agree(w):
    keys = ["list/a b/1", "list/a b/2", "list/caf\u00e9", "list/plus+sign", "list/z/deep/er",
            "list/~tilde", "list/percent%41"]
    for k in keys:
        w.boto.put_object(Bucket=BUCKET, Key=k, Body=k.encode())
    _, out, _ = w.peer("list", BUCKET, "list/")
    mine = [line.split("\t")[0] for line in out.splitlines()]
    theirs = [o["Key"] for o in w.boto.list_objects_v2(Bucket=BUCKET, Prefix="list/")["Contents"]]
    assert mine == theirs == sorted(keys), (mine, theirs)
    _, out, _ = w.peer("list", BUCKET, "list/", "/")
    lines = out.splitlines()
    r = w.boto.list_objects_v2(Bucket=BUCKET, Prefix="list/", Delimiter="/")
    assert [line[2:] for line in lines if line.startswith("P ")] == \
        [p["Prefix"] for p in r["CommonPrefixes"]], (lines, r["CommonPrefixes"])
    assert [line.split("\t")[0] for line in lines if not line.startswith("P ")] == \
        [o["Key"] for o in r["Contents"]]


def presigned_urls_work_without_credentials(w):
    _, put_url, _ = w.peer("presign", "PUT", BUCKET, "presigned/up load.txt", "600")
    req = urllib.request.Request(put_url.strip(), data=b"sent with urllib", method="PUT")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    got = w.boto.get_object(Bucket=BUCKET, Key="presigned/up load.txt")["Body"].read()
    assert got == b"sent with urllib"
    _, get_url, _ = w.peer("presign", "GET", BUCKET, "presigned/up load.txt", "600")
    with urllib.request.urlopen(get_url.strip(), timeout=30) as resp:
        assert resp.read() == b"sent with urllib"


def missing_key_and_delete(w):
    rc, out, err = w.peer("cat", BUCKET, "no/such key", ok=False)
    assert rc == 1 and out.strip() == "ENOENT", (rc, out)
    assert "NoSuchKey" in err and "The specified key does not exist." in err, err
    w.boto.put_object(Bucket=BUCKET, Key="doomed", Body=b"x")
    w.peer("delete", BUCKET, "doomed")
    try:
        w.boto.head_object(Bucket=BUCKET, Key="doomed")
    except w.boto.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] in ("404", "NoSuchKey")
    else:
        raise AssertionError("boto3 still finds the deleted object")


def main():
    if not os.path.exists(PEER):
        print("test_s3: %s is not built" % PEER)
        print("0 passed, 1 failed")
        return 1
    w = World()
    try:
        case("boto3 reads what weave put (one PUT, and a multipart file)",
             boto_reads_what_weave_put, w)
        case("weave reads what boto3 put (one PUT, and boto3's multipart)",
             weave_reads_what_boto_put, w)
        case("weave's and boto3's listings agree, page by page and with a delimiter",
             listings_agree, w)
        case("weave's presigned PUT and GET work for urllib without credentials",
             presigned_urls_work_without_credentials, w)
        case("a missing key is ENOENT with S3's words; a delete boto3 sees",
             missing_key_and_delete, w)
    finally:
        w.close()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


sys.exit(main())
