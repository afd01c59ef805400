"""§13.10 in the chapter's service (examples/chapter13/s13_10_events.c):
POST /events puts events, a background reader reads them back and counts
them (GET /events, events_read_total at /metrics). On the default
in-process bus, and on a Kinesis stream in kinesis-local (the service
makes the stream; boto3 reads the records the service put, and the
reader counts what boto3 puts). Bodies that are not an object or an
array of 1 to 500 objects get 422."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import check, eq, free_port, run  # noqa: E402
import test_chapter13 as c13  # noqa: E402
from test_chapter13 import req  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STREAM = "chapter13-events"

try:
    import boto3
except ImportError:
    print("test_chapter13_events: boto3 is not installed (scripts/deps.sh test installs it)")
    print("0 passed, 1 failed")
    sys.exit(1)


class Kinesis:
    """kinesis-local on free ports, for the tests that need it."""
    _one = None

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="weave-c13-kinesis-")
        # ports are found free, then taken by the server a moment later: a
        # race another process may win, so a few tries, each on new ports
        for _ in range(5):
            r = subprocess.run(
                ["bash", os.path.join(ROOT, "scripts/kinesis_test_server.sh"), "start",
                 os.path.join(self.dir, "server"), str(free_port())],
                capture_output=True, text=True, timeout=120)
            if r.returncode == 0:
                self.endpoint = r.stdout.strip()
                break
        else:
            raise RuntimeError("kinesis-local did not start: " + r.stderr)
        self.boto = boto3.client("kinesis", endpoint_url=self.endpoint, region_name="us-east-1",
                                 aws_access_key_id="AKID", aws_secret_access_key="SECRET")

    def env(self):
        return {"KINESIS_STREAM": STREAM, "KINESIS_ENDPOINT": self.endpoint,
                "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "SECRET",
                "AWS_REGION": "us-east-1"}

    def records(self):
        """Every record of the stream, as boto3 reads them."""
        out = []
        for shard in self.boto.list_shards(StreamName=STREAM)["Shards"]:
            it = self.boto.get_shard_iterator(StreamName=STREAM, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                r = self.boto.get_records(ShardIterator=it, Limit=1000)
                out += r["Records"]
                if not r["Records"]:
                    break
                it = r.get("NextShardIterator")
        return out

    @classmethod
    def get(cls):
        if cls._one is None:
            cls._one = Kinesis()
        return cls._one

    @classmethod
    def close(cls):
        if cls._one is not None:
            subprocess.run(["bash", os.path.join(ROOT, "scripts/kinesis_test_server.sh"), "stop",
                            os.path.join(cls._one.dir, "server")], check=False,
                           capture_output=True)
            shutil.rmtree(cls._one.dir, ignore_errors=True)
            cls._one = None


class Service(c13.Service):
    def put(self, events):
        st, _, body = req(self.port, "POST", "/events", json.dumps(events).encode(),
                          {"Content-Type": "application/json"})
        return st, json.loads(body)

    def state(self):
        st, _, body = req(self.port, "GET", "/events")
        eq(st, 200, "GET /events")
        return json.loads(body)

    def wait_read(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.state()
            if s["read"] >= n:
                return s
            time.sleep(0.05)
        raise AssertionError("read %d of %d within %s s" % (self.state()["read"], n, timeout))


def check_read_back(s, sent):
    got = s.wait_read(len(sent))
    eq(got["read"], len(sent), "events read")
    last = list(reversed(got["last"]))  # oldest first
    eq([e["event"] for e in last], sent[-20:], "the events, in order")
    _, _, metrics = req(s.port, "GET", "/metrics")
    lines = metrics.decode().splitlines()
    for line in ("events_put_total %d" % len(sent), "events_read_total %d" % len(sent)):
        check(line in lines, "no %r at /metrics", line)
    return got


def test_events_on_the_default_bus_are_read_back_and_counted():
    with Service() as s:
        eq(s.state()["source"], "bus topic events", "source")
        sent = [{"type": "click", "n": i, "tags": ["a", None, True], "x": 1.5} for i in range(25)]
        st, doc = s.put(sent[:24])
        eq((st, doc["accepted"]), (202, 24), "a batch")
        st, doc = s.put(sent[24])
        eq((st, doc["accepted"]), (202, 1), "one event")
        got = check_read_back(s, sent)
        eq(got["last"][0]["key"], "click", "partition key from the type")


def test_bad_event_bodies_are_422_and_nothing_is_put():
    with Service() as s:
        # FastAPI's locations: the byte where JSON stopped, the array's item
        for body, loc in ((b"", ["body"]), (b"{", ["body", 1]), (b"[]", ["body"]),
                          (b"[1, 2]", ["body", 0]), (b"\"text\"", ["body"]),
                          (json.dumps([{}] * 501).encode(), ["body"])):
            st, _, data = req(s.port, "POST", "/events", body)
            eq(st, 422, "status for %r" % body[:20])
            eq(json.loads(data)["detail"][0]["loc"], loc, "loc")
        eq(s.state()["read"], 0, "nothing read")


def test_events_on_kinesis_are_read_back_and_boto3_agrees():
    k = Kinesis.get()
    with Service(env=k.env()) as s:
        eq(s.state()["source"], "kinesis stream %s" % STREAM, "source")
        sent = [{"key": "user-%d" % (i % 3), "type": "order", "n": i} for i in range(30)]
        st, doc = s.put(sent)
        eq((st, doc["accepted"], len(doc["records"])), (202, 30, 30), "put")
        check(all(r["sequence"] and r["shard"].startswith("shardId-") for r in doc["records"]),
              "records %r", doc["records"][:2])
        got = check_read_back(s, sent)
        eq(got["last"][0]["key"], "user-2", "partition key from the key member")
        # boto3 reads exactly what the service put, at the sequences it said
        by_seq = {r["SequenceNumber"]: r for r in k.records()}
        for event, where in zip(sent, doc["records"]):
            r = by_seq[where["sequence"]]
            eq(json.loads(r["Data"]), event, "boto3's record %s" % where["sequence"])
            eq(r["PartitionKey"], event["key"], "partition key")
        # and the reader counts what boto3 puts
        k.boto.put_record(StreamName=STREAM, Data=b'{"from":"boto3"}', PartitionKey="b")
        got = s.wait_read(31)
        eq(got["last"][0]["event"], {"from": "boto3"}, "boto3's event read back")


if __name__ == "__main__":
    try:
        run(globals())
    finally:
        Kinesis.close()
