"""weave's Kafka client beside other Kafka clients on one cluster: kcat,
Python's confluent_kafka and Node's kafkajs (pinned in
tests/integration/node/) each read what weave wrote and write what weave
reads, keys and headers included, and a weave consumer shares a consumer
group with a confluent_kafka one.

No Kafka broker is packaged for Debian, so the cluster is librdkafka's mock
cluster (three brokers on loopback), held up by
tests/integration/kafka_mock_cluster.c for as long as its stdin stays open;
it prints the bootstrap servers, and every client is given them. weave's
side is tests/integration/kafka_peer.c, configured from KAFKA_BROKERS as a
service would be.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import run  # noqa: E402

BUILD = os.environ.get("BUILD_DIR", "build/release")
PEER = os.path.join(BUILD, "kafka_peer")
MOCK = os.path.join(BUILD, "kafka_mock_cluster")
NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node")

try:
    import confluent_kafka
    from confluent_kafka import Consumer, Producer, TopicPartition
except ImportError:
    confluent_kafka = None

# kafkajs as a peer: produce COUNT messages, or consume COUNT in GROUP and
# print each as a JSON line. Run with node in tests/integration/node, where
# kafkajs is installed.
KAFKAJS = r"""
const { Kafka, logLevel } = require('kafkajs');
const [mode, brokers, topic, count, group] = process.argv.slice(1);
const kafka = new Kafka({ clientId: 'kafkajs-peer', brokers: brokers.split(','),
                          logLevel: logLevel.ERROR });
async function produce() {
  const p = kafka.producer();
  await p.connect();
  const messages = [];
  for (let i = 0; i < Number(count); i++)
    messages.push({ key: 'jk' + i, value: 'kafkajs-' + i, headers: { origin: 'kafkajs' } });
  await p.send({ topic, messages });
  await p.disconnect();
}
async function consume() {
  const c = kafka.consumer({ groupId: group });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  let got = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('only ' + got + ' messages')), 30000);
    c.run({ eachMessage: async ({ partition, message }) => {
      const headers = {};
      for (const [k, v] of Object.entries(message.headers || {})) headers[k] = v.toString();
      console.log(JSON.stringify({ partition, offset: message.offset,
                                   key: message.key && message.key.toString(),
                                   value: message.value.toString(), headers }));
      if (++got === Number(count)) { clearTimeout(timer); resolve(); }
    } });
  });
  await c.disconnect();
}
(mode === 'produce' ? produce() : consume()).catch(e => { console.error(e); process.exit(1); });
"""


class Cluster:
    """The mock cluster all the tests share, started by the first."""
    _one = None

    @classmethod
    def get(cls):
        if cls._one is None:
            cls._one = Cluster("peers-in:4", "from-weave:4", "shared:4")
        return cls._one

    def __init__(self, *topics):
        self.proc = subprocess.Popen([MOCK, "3", *topics], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("bootstraps="), line
        self.bootstraps = line.strip().split("=", 1)[1]
        self.env = dict(os.environ, KAFKA_BROKERS=self.bootstraps, WEAVE_LOG="error",
                        KAFKAJS_NO_PARTITIONER_WARNING="1")

    @classmethod
    def close(cls):
        if cls._one is None:
            return
        self, cls._one = cls._one, None
        self.stop()

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # a cluster of one test's own: `with Cluster("topic:1") as cl:`
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def weave_peer(cl, *args):
    r = subprocess.run([PEER, *args], env=cl.env, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, "kafka_peer %s: %s" % (" ".join(args), r.stderr)
    return r.stdout


def parse_weave(out):
    """kafka_peer consume's lines as dicts."""
    got = []
    for line in out.splitlines():
        partition, offset, key, value, headers = line.split("\t")
        got.append({"partition": int(partition), "offset": int(offset),
                    "key": None if key == "-" else key, "value": value,
                    "headers": dict(h.split("=", 1) for h in headers.split(";") if h)})
    return got


def kafkajs(cl, *args):
    r = subprocess.run(["node", "-e", KAFKAJS, *args], cwd=NODE_DIR, env=cl.env,
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, "kafkajs %s: %s" % (" ".join(args), r.stderr)
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def read_all(cl, topic, partitions):
    """Every message of topic with confluent_kafka, partitions assigned by
    hand (no group), up to the end of each."""
    c = Consumer({"bootstrap.servers": cl.bootstraps, "group.id": "reader",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
              for p in range(partitions)])
    got, ends, deadline = [], set(), time.time() + 20
    while len(ends) < partitions and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == confluent_kafka.KafkaError._PARTITION_EOF:
                ends.add(m.partition())
                continue
            raise AssertionError(str(m.error()))
        got.append({"partition": m.partition(), "offset": m.offset(),
                    "key": m.key().decode() if m.key() is not None else None,
                    "value": m.value().decode(),
                    "headers": {k: v.decode() for k, v in (m.headers() or [])}})
    c.close()
    assert len(ends) == partitions, "reached the end of %d partitions only" % len(ends)
    return got


def test_peers_write_and_weave_reads_keys_values_and_headers():
    """kcat, confluent_kafka and kafkajs write; weave reads it all."""
    cl = Cluster.get()
    kcat_in = "".join("ck%d:kcat-%d\n" % (i, i) for i in range(5))
    r = subprocess.run(["kcat", "-b", cl.bootstraps, "-P", "-t", "peers-in", "-K", ":",
                        "-H", "origin=kcat"], input=kcat_in, text=True, capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    p = Producer({"bootstrap.servers": cl.bootstraps})
    for i in range(5):
        p.produce("peers-in", value="python-%d" % i, key="pk%d" % i,
                  headers=[("origin", b"confluent_kafka")])
    assert p.flush(20) == 0
    kafkajs(cl, "produce", cl.bootstraps, "peers-in", "5")
    got = parse_weave(weave_peer(cl, "consume", "weave-reads", "peers-in", "15", "3000"))
    values = sorted(m["value"] for m in got)
    want = sorted(["kcat-%d" % i for i in range(5)] + ["python-%d" % i for i in range(5)] +
                  ["kafkajs-%d" % i for i in range(5)])
    assert values == want, values
    for m in got:
        writer, i = m["value"].rsplit("-", 1)
        key = {"kcat": "ck", "python": "pk", "kafkajs": "jk"}[writer] + i
        origin = {"kcat": "kcat", "python": "confluent_kafka", "kafkajs": "kafkajs"}[writer]
        assert m["key"] == key and m["headers"] == {"origin": origin}, m
    # each partition's messages came in offset order
    for part in range(4):
        offsets = [m["offset"] for m in got if m["partition"] == part]
        assert offsets == sorted(offsets), offsets


def test_weave_writes_and_confluent_kafka_kafkajs_and_kcat_read():
    cl = Cluster.get()
    out = weave_peer(cl, "produce", "from-weave", "12")
    reports = sorted(tuple(int(x) for x in line.split()) for line in out.splitlines())
    assert len(reports) == 12 and len(set(reports)) == 12, reports

    def check(msgs, who):
        assert sorted((m["partition"], int(m["offset"])) for m in msgs) == reports, who
        for m in msgs:
            i = m["value"].split("-")[1]
            assert m["value"] == "weave-" + i and m["key"] == "wk" + i, (who, m)
            assert m["headers"] == {"origin": "weave", "seq": i}, (who, m)

    check(read_all(cl, "from-weave", 4), "confluent_kafka")
    check(kafkajs(cl, "consume", cl.bootstraps, "from-weave", "12", "kafkajs-reads"), "kafkajs")
    r = subprocess.run(["kcat", "-b", cl.bootstraps, "-C", "-t", "from-weave", "-o", "beginning",
                        "-e", "-q", "-f", "%p\t%o\t%k\t%s\t%h\n"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    msgs = []
    for line in r.stdout.splitlines():
        partition, offset, key, value, headers = line.split("\t")
        msgs.append({"partition": int(partition), "offset": int(offset), "key": key,
                     "value": value,
                     "headers": dict(h.split("=", 1) for h in headers.split(",") if h)})
    check(msgs, "kcat")


def test_weave_and_confluent_kafka_share_a_consumer_group_and_its_commits():
    cl = Cluster.get()
    p = Producer({"bootstrap.servers": cl.bootstraps})
    for i in range(100):
        p.produce("shared", value="s-%d" % i, partition=i % 4)
    assert p.flush(20) == 0
    weave = subprocess.Popen([PEER, "consume", "shared-group", "shared", "100", "6000"],
                             env=cl.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    theirs = []

    def python_member():
        c = Consumer({"bootstrap.servers": cl.bootstraps, "group.id": "shared-group",
                      "auto.offset.reset": "earliest", "session.timeout.ms": 4000,
                      "heartbeat.interval.ms": 300})
        c.subscribe(["shared"])
        last = time.time() + 15  # the group's first join takes 3 s
        while time.time() < last:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            theirs.append(m.value().decode())
            last = time.time() + 6
        c.close()  # commits what it consumed

    t = threading.Thread(target=python_member)
    t.start()
    out, err = weave.communicate(timeout=90)
    t.join(60)
    assert weave.returncode == 0, err
    ours = [m["value"] for m in parse_weave(out)]
    assert ours and theirs, (len(ours), len(theirs))  # the group split the partitions
    assert set(ours) | set(theirs) == {"s-%d" % i for i in range(100)}
    # both members' commits are the group's: a fresh member starts at the end
    c = Consumer({"bootstrap.servers": cl.bootstraps, "group.id": "shared-group"})
    committed = c.committed([TopicPartition("shared", p) for p in range(4)], timeout=10)
    c.close()
    assert [tp.offset for tp in committed] == [25, 25, 25, 25], committed


def missing(what):
    print("test_kafka: %s" % what)
    print("0 passed, 1 failed")
    sys.exit(1)


if __name__ == "__main__":
    if confluent_kafka is None:
        missing("confluent_kafka is not installed (apt-get install python3-confluent-kafka, "
                "scripts/deps.sh test)")
    for path in (PEER, MOCK):
        if not os.path.exists(path):
            missing("%s is not built" % path)
    if not shutil.which("kcat"):
        missing("kcat is not installed (scripts/deps.sh test)")
    if not os.path.exists(os.path.join(NODE_DIR, "node_modules", "kafkajs", "package.json")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                       check=True, timeout=300)
    try:
        run(globals())
    finally:
        Cluster.close()
