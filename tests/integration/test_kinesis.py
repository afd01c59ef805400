"""weave's Kinesis client and boto3 on the same kinesis-local, each reading
what the other wrote.

kinesis-local is started by scripts/kinesis_test_server.sh on free
loopback ports; weave's side is tests/integration/kinesis_peer.c,
configured from the environment only (KINESIS_ENDPOINT,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) as a service would
be. Checked: records weave put (every byte value, empty records, unicode
partition keys, an explicit hash key, a record of 1 MiB, and 1,200 more
than one request holds) read back by boto3 byte for byte, each in the
shard and at the sequence number weave reported; records boto3 put (with
put_records and put_record) read by weave's readers, one a shard, byte
for byte with their keys, sequence numbers and arrival times; both
clients' shard listings agreeing; a stream that does not exist is ENOENT
with the service's words; and a bad record makes weave send nothing.
"""
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD_DIR", "build/release")
PEER = os.path.join(BUILD, "kinesis_peer")
SCRIPT = os.path.join(ROOT, "scripts/kinesis_test_server.sh")
passed = failed = 0

try:
    import boto3
    import botocore.config
except ImportError:
    print("test_kinesis: boto3 is not installed (apt-get install python3-boto3, scripts/deps.sh test)")
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


class World:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="weave-kinesis-it-")
        self.server = os.path.join(self.dir, "server")
        for _ in range(5):
            plain, tls = free_port(), free_port()
            r = subprocess.run(["bash", SCRIPT, "start", self.server, str(plain), str(tls)],
                               capture_output=True, text=True, timeout=120)
            if r.returncode == 0:
                self.endpoint = r.stdout.strip()
                break
        else:
            raise RuntimeError("kinesis-local did not start: " + r.stderr)
        self.env = dict(os.environ, KINESIS_ENDPOINT=self.endpoint, AWS_ACCESS_KEY_ID="weave",
                        AWS_SECRET_ACCESS_KEY="weave-secret", AWS_REGION="us-east-1")
        for k in ("AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "http_proxy", "https_proxy",
                  "HTTP_PROXY", "HTTPS_PROXY"):
            self.env.pop(k, None)
        self.boto = boto3.client(
            "kinesis", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="weave", aws_secret_access_key="weave-secret",
            config=botocore.config.Config(retries={"max_attempts": 3}))
        self.streams = 0

    def peer(self, *args, ok=True):
        r = subprocess.run([PEER, *args], env=self.env, capture_output=True, timeout=120)
        if ok and r.returncode != 0:
            raise AssertionError("kinesis_peer %s: %s" % (" ".join(args), r.stderr.decode()))
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def stream_name(self):
        self.streams += 1
        return "it-%d-%d" % (os.getpid(), self.streams)

    def boto_stream(self, shards):
        name = self.stream_name()
        self.boto.create_stream(StreamName=name, ShardCount=shards)
        self.boto.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        return name

    def boto_read_all(self, stream):
        """Every record of every shard, as boto3 reads them: seq -> (shard, key, data)."""
        got = {}
        for shard in self.boto.list_shards(StreamName=stream)["Shards"]:
            it = self.boto.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                r = self.boto.get_records(ShardIterator=it, Limit=1000)
                for rec in r["Records"]:
                    got[rec["SequenceNumber"]] = (shard["ShardId"], rec["PartitionKey"],
                                                  rec["Data"])
                if not r["Records"]:
                    break
                it = r.get("NextShardIterator")
        return got

    def close(self):
        subprocess.run(["bash", SCRIPT, "stop", self.server], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def records_file(w, name, records):
    path = os.path.join(w.dir, name)
    with open(path, "w", encoding="utf-8") as f:
        for key, data, *hash_key in records:
            f.write("%s\t%s%s\n" % (key, data.hex(), "\t" + hash_key[0] if hash_key else ""))
    return path


def boto_reads_what_weave_put(w):
    stream = w.stream_name()
    w.peer("create", stream, "3")
    rnd = random.Random(7)
    records = [
        ("every byte", bytes(range(256))),
        ("empty", b""),
        ("caf\u00e9 \u65e5\u672c \U0001F600", b"unicode key"),
        ("anything", b"sent by its hash key", "340282366920938463463374607431768211455"),
        ("k" * 16, bytes(rnd.getrandbits(8) for _ in range(1024 * 1024 - 16))),  # 1 MiB in all
    ]
    records += [("key-%d" % (i % 50), rnd.randbytes(rnd.randrange(0, 300))) for i in range(1200)]
    _, out, _ = w.peer("put", stream, records_file(w, "put.txt", records))
    put = [line.split(" ") for line in out.splitlines()]
    assert len(put) == len(records), (len(put), len(records))
    got = w.boto_read_all(stream)
    assert len(got) == len(records), (len(got), len(records))
    for (index, shard, seq), rec in zip(put, records):
        their_shard, key, data = got[seq]
        assert key == rec[0], (index, key, rec[0])
        assert data == rec[1], (index, len(data), len(rec[1]))
        assert their_shard == shard, (index, their_shard, shard)
    # the hash key 2^128 - 1 lands in the last shard
    assert put[3][1] == "shardId-000000000002", put[3]


def weave_reads_what_boto_put(w):
    stream = w.boto_stream(2)
    rnd = random.Random(11)
    sent = {}
    entries = [{"PartitionKey": "p-%d" % i, "Data": rnd.randbytes(rnd.randrange(1, 2000))}
               for i in range(300)]
    before = time.time()
    for start in range(0, len(entries), 100):
        r = w.boto.put_records(StreamName=stream, Records=entries[start:start + 100])
        assert r["FailedRecordCount"] == 0
        for e, res in zip(entries[start:start + 100], r["Records"]):
            sent[res["SequenceNumber"]] = (res["ShardId"], e["PartitionKey"], e["Data"])
    one = w.boto.put_record(StreamName=stream, PartitionKey="single", Data=b"\x00\xff put_record")
    sent[one["SequenceNumber"]] = (one["ShardId"], "single", b"\x00\xff put_record")
    after = time.time()
    _, out, _ = w.peer("read", stream, str(len(sent)))
    lines = out.splitlines()
    assert len(lines) == len(sent), (len(lines), len(sent))
    seen = set()
    for line in lines:
        shard, seq, key, hexdata, arrival = line.split(" ")
        assert seq not in seen, "read twice: " + seq
        seen.add(seq)
        their_shard, their_key, data = sent[seq]
        assert (shard, key) == (their_shard, their_key), (shard, key, their_shard, their_key)
        assert (b"" if hexdata == "-" else bytes.fromhex(hexdata)) == data, seq
        assert before - 2 <= int(arrival) / 1000 <= after + 2, arrival


def shard_listings_agree(w):
    stream = w.boto_stream(5)
    _, out, _ = w.peer("shards", stream)  # one shard a page: NextToken followed
    mine = [tuple(line.split(" ")) for line in out.splitlines()]
    theirs = [(s["ShardId"], s["HashKeyRange"]["StartingHashKey"],
               s["HashKeyRange"]["EndingHashKey"])
              for s in w.boto.list_shards(StreamName=stream)["Shards"]]
    assert mine == theirs and len(mine) == 5, (mine, theirs)


def missing_stream_is_enoent(w):
    path = records_file(w, "one.txt", [("k", b"x")])
    rc, out, err = w.peer("put", "it-no-such-stream", path, ok=False)
    assert rc == 1 and out.strip() == "ENOENT", (rc, out)
    assert "ResourceNotFoundException" in err and "it-no-such-stream" in err, err
    rc, out, err = w.peer("shards", "it-no-such-stream", ok=False)
    assert rc == 1 and out.strip() == "ENOENT", (rc, out)


def bad_record_sends_nothing(w):
    stream = w.boto_stream(1)
    path = records_file(w, "bad.txt", [("good", b"fine"), ("k" * 257, b"key too long")])
    rc, out, err = w.peer("put", stream, path, ok=False)
    assert rc == 1 and out.strip() == "EINVAL", (rc, out, err)
    assert "record 1: a partition key is 1 to 256 characters" in err, err
    assert w.boto_read_all(stream) == {}  # not even the good one


def main():
    if not os.path.exists(PEER):
        print("test_kinesis: %s is not built" % PEER)
        print("0 passed, 1 failed")
        return 1
    w = World()
    try:
        case("boto3 reads every byte of what weave put, in the shard weave said",
             boto_reads_what_weave_put, w)
        case("weave's readers read every byte of what boto3 put, once", weave_reads_what_boto_put,
             w)
        case("weave's and boto3's shard listings agree", shard_listings_agree, w)
        case("a stream that does not exist is ENOENT with the service's words",
             missing_stream_is_enoent, w)
        case("a bad record makes weave send nothing", bad_record_sends_nothing, w)
    finally:
        w.close()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


sys.exit(main())
