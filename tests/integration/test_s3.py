"""weave's S3 client and boto3 on the same s3rver, each reading what the
other wrote.

s3rver is started by scripts/s3_test_server.sh on a free loopback port
(tests/integration/s3world.py, shared with test_s3_node.py); weave's side
is tests/integration/s3_peer.c, configured from the environment only
(S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) as a
service would be. Checked: objects weave put (one PUT, and a 12 MiB file
in 5 MiB parts) read back by boto3 byte for byte with their type and
metadata; objects boto3 put (one PUT, and boto3's own multipart upload)
read by weave into memory and into a file; both listings agreeing on keys
with spaces and unicode, page by page and with a delimiter; weave's
presigned GET and PUT URLs used by urllib with no credentials; a missing
key is ENOENT with S3's words; and after weave deletes an object boto3 no
longer finds it.
"""
import hashlib
import io
import sys
import urllib.request

from s3world import BUCKET, pattern, run

try:
    import boto3
    import botocore.config
    from boto3.s3.transfer import TransferConfig
except ImportError:
    print("test_s3: boto3 is not installed (apt-get install python3-boto3, scripts/deps.sh test)")
    print("0 passed, 1 failed")
    sys.exit(1)


def with_boto(w):
    w.boto = boto3.client(
        "s3", endpoint_url=w.endpoint, region_name="us-east-1",
        aws_access_key_id="S3RVER", aws_secret_access_key="S3RVER",
        config=botocore.config.Config(s3={"addressing_style": "path"}))


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
    parts_before = w.parts_stored()
    w.peer("put", BUCKET, "weave/caf\u00e9 big.bin", w.path("big"))
    got = w.boto.get_object(Bucket=BUCKET, Key="weave/caf\u00e9 big.bin")
    assert got["ContentLength"] == len(big)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(big).digest()
    # it went up in three parts of 5 MiB, as s3rver's log tells
    assert w.parts_stored() - parts_before == 3


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


sys.exit(run("test_s3", [
    ("boto3 reads what weave put (one PUT, and a multipart file)", boto_reads_what_weave_put),
    ("weave reads what boto3 put (one PUT, and boto3's multipart)", weave_reads_what_boto_put),
    ("weave's and boto3's listings agree, page by page and with a delimiter", listings_agree),
    ("weave's presigned PUT and GET work for urllib without credentials",
     presigned_urls_work_without_credentials),
    ("a missing key is ENOENT with S3's words; a delete boto3 sees", missing_key_and_delete),
], setup=with_boto))
