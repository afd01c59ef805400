"""weave's S3 client and the AWS SDK for JavaScript v3 on the same s3rver,
each reading what the other wrote.

The SDK's side is tests/integration/node/s3_peer.js (@aws-sdk/client-s3
and @aws-sdk/lib-storage, pinned in tests/integration/node/package.json,
with the SDK's default checksums), weave's is tests/integration/s3_peer.c;
both take their settings from the same environment, and s3rver is started
as for test_s3.py (tests/integration/s3world.py). Checked, byte for byte:
objects weave put (a small one with its type and metadata, an empty one,
every byte value, keys with spaces and unicode, a 12 MiB file in three
5 MiB parts) read by the SDK's GetObject; objects the SDK put (PutObject
with type and metadata, empty, every byte value under a unicode key, and
lib-storage's multipart Upload in three parts) read by weave; and an
object weave deletes is NoSuchKey to the SDK.
"""
import hashlib
import json
import os
import subprocess
import sys

from s3world import BUCKET, pattern, run

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")
EVERY_BYTE = bytes(range(256)) * 300 + bytes(range(255, -1, -1))


def ensure_sdk(w):
    modules = os.path.join(NODE_DIR, "node_modules", "@aws-sdk")
    if not all(os.path.exists(os.path.join(modules, m, "package.json"))
               for m in ("client-s3", "lib-storage")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                       check=True, timeout=300)


def node(w, *args, ok=True):
    r = subprocess.run(["node", "s3_peer.js", *args], cwd=NODE_DIR, env=w.env,
                       capture_output=True, text=True, timeout=120)
    if ok and r.returncode != 0:
        raise AssertionError("s3_peer.js %s: %s" % (" ".join(args), r.stderr))
    return r


def sdk_get(w, key):
    """GetObject through the SDK: (the bytes, what it said of them)."""
    out = w.path("sdk.out")
    said = json.loads(node(w, "get", BUCKET, key, out).stdout)
    return open(out, "rb").read(), said


def weave_put(w, key, data, *type_and_meta):
    open(w.path("weave.in"), "wb").write(data)
    w.peer("put", BUCKET, key, w.path("weave.in"), *type_and_meta)


def sdk_puts(w, cmd, key, data, *rest):
    open(w.path("sdk.in"), "wb").write(data)
    node(w, cmd, BUCKET, key, w.path("sdk.in"), *rest)


def weave_cat(w, key):
    r = w.peer("cat", BUCKET, key, binary=True)
    return r.stdout


def sdk_reads_weaves_object_with_type_and_metadata(w):
    data = pattern(70000, 3)
    weave_put(w, "weave/small", data, "application/x-weave", "colour=blue", "Run=7")
    got, said = sdk_get(w, "weave/small")
    assert got == data
    assert said["size"] == len(data), said
    assert said["type"] == "application/x-weave", said
    assert said["metadata"] == {"colour": "blue", "run": "7"}, said
    assert said["etag"] == '"%s"' % hashlib.md5(data).hexdigest(), said


def sdk_reads_weaves_empty_object(w):
    weave_put(w, "weave/empty", b"")
    got, said = sdk_get(w, "weave/empty")
    assert got == b"" and said["size"] == 0, said
    assert said["etag"] == '"%s"' % hashlib.md5(b"").hexdigest(), said


def sdk_reads_every_byte_value_weave_put(w):
    weave_put(w, "weave/every byte.bin", EVERY_BYTE, "application/octet-stream")
    got, said = sdk_get(w, "weave/every byte.bin")
    assert got == EVERY_BYTE, (len(got), said)


def sdk_reads_weaves_keys_with_spaces_and_unicode(w):
    keys = ["weave/a b  c", "weave/caf\u00e9 cr\u00e8me", "weave/\u65e5\u672c\u8a9e/\u6587\u66f8",
            "weave/emoji \U0001F600", "weave/plus+and%25 ~tilde"]
    for k in keys:
        weave_put(w, k, k.encode())
    for k in keys:
        got, _ = sdk_get(w, k)
        assert got == k.encode(), (k, got)


def sdk_reads_weaves_multipart_upload(w):
    big = pattern(12 * 1024 * 1024 + 11, 5)
    parts_before = w.parts_stored()
    weave_put(w, "weave/caf\u00e9 big.bin", big)
    # it went up in three parts of 5 MiB, as s3rver's log tells
    assert w.parts_stored() - parts_before == 3
    got, said = sdk_get(w, "weave/caf\u00e9 big.bin")
    assert said["size"] == len(big), said
    assert hashlib.sha256(got).digest() == hashlib.sha256(big).digest()


def weave_reads_sdks_object_with_type_and_metadata(w):
    data = pattern(50000, 9)
    sdk_puts(w, "put", "sdk/small", data, "text/x-node", "origin=aws-sdk-js", "Case=Mixed")
    assert weave_cat(w, "sdk/small") == data
    _, out, _ = w.peer("head", BUCKET, "sdk/small", "origin", "case")
    assert out.split("\n")[:4] == ["size=50000", "type=text/x-node", "origin=aws-sdk-js",
                                   "case=Mixed"], out


def weave_reads_sdks_empty_object(w):
    sdk_puts(w, "put", "sdk/empty", b"")
    assert weave_cat(w, "sdk/empty") == b""
    _, out, _ = w.peer("head", BUCKET, "sdk/empty")
    assert out.startswith("size=0\n"), out


def weave_reads_every_byte_value_sdk_put_under_unicode_key(w):
    key = "sdk/every byte \u00e9\u65e5\u672c \U0001F600.bin"
    sdk_puts(w, "put", key, EVERY_BYTE)
    assert weave_cat(w, key) == EVERY_BYTE


def weave_reads_sdks_multipart_upload(w):
    big = pattern(11 * 1024 * 1024 + 1, 1)
    parts_before = w.parts_stored()
    sdk_puts(w, "upload", "sdk/multi part.bin", big, "5")
    assert w.parts_stored() - parts_before == 3
    w.peer("get", BUCKET, "sdk/multi part.bin", w.path("multi.out"))
    assert open(w.path("multi.out"), "rb").read() == big


def sdk_finds_no_object_weave_deleted(w):
    sdk_puts(w, "put", "sdk/doomed", b"x")
    w.peer("delete", BUCKET, "sdk/doomed")
    r = node(w, "get", BUCKET, "sdk/doomed", w.path("doomed.out"), ok=False)
    assert r.returncode == 1 and r.stdout.strip() == "NoSuchKey", (r.returncode, r.stdout)


sys.exit(run("test_s3_node", [
    ("the SDK reads weave's object with its type and metadata",
     sdk_reads_weaves_object_with_type_and_metadata),
    ("the SDK reads weave's empty object", sdk_reads_weaves_empty_object),
    ("the SDK reads every byte value weave put", sdk_reads_every_byte_value_weave_put),
    ("the SDK reads weave's keys with spaces and unicode",
     sdk_reads_weaves_keys_with_spaces_and_unicode),
    ("the SDK reads weave's multipart upload (three parts)", sdk_reads_weaves_multipart_upload),
    ("weave reads the SDK's PutObject with its type and metadata",
     weave_reads_sdks_object_with_type_and_metadata),
    ("weave reads the SDK's empty object", weave_reads_sdks_empty_object),
    ("weave reads every byte value the SDK put under a unicode key",
     weave_reads_every_byte_value_sdk_put_under_unicode_key),
    ("weave reads lib-storage's multipart Upload (three parts)",
     weave_reads_sdks_multipart_upload),
    ("the SDK finds no object weave deleted (NoSuchKey)", sdk_finds_no_object_weave_deleted),
], setup=ensure_sdk))
