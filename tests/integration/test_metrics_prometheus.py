"""Metrics end to end: the chapter's service (2 shards) is scraped by a real
Prometheus server (Debian's, started here on loopback with
deploy/prometheus/prometheus.yml pointed at the service), and after known
traffic its HTTP API reports exactly that many requests in
http_requests_total, labelled by route template. /metrics passes `promtool
check metrics` in the text format, OpenMetrics is answered when asked for,
the runtime and process metrics are there, and the Grafana dashboard
(deploy/grafana/weave-dashboard.json) parses, names only metrics the service
exports (or, for the PostgreSQL client this run does not use, that the C code
registers), and every panel's query is accepted by Prometheus; the alerting
rules the config names (deploy/prometheus/alerts.yml) load and evaluate. A
task sent to the service's embedded queue (a table in its SQLite file, with
its in-process worker) is counted in the weave_tasks_* metrics, so the
dashboard's Tasks row names metrics this run exports."""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "chapter13")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
passed = failed = 0


def case(fn, *args):
    global passed, failed
    try:
        fn(*args)
        passed += 1
        print("PASS", fn.__name__)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed += 1
        print("FAIL", fn.__name__, repr(e))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(port, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), body


def start_service(tmp):
    web = os.path.join(tmp, "web")
    os.mkdir(web)
    open(os.path.join(web, "index.html"), "w").write("x")
    proc = subprocess.Popen([BIN, "--port", "0", "--web-dir", web],
                            env=dict(os.environ, SHARDS="2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        if line.startswith("listening on http://127.0.0.1:"):
            return proc, int(line.rsplit(":", 1)[1])


def start_prometheus(tmp, target_port):
    conf = open(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")).read()
    assert '"127.0.0.1:8000"' in conf and "scrape_interval: 5s" in conf, conf
    conf = conf.replace('"127.0.0.1:8000"', '"127.0.0.1:%d"' % target_port)
    conf = conf.replace("scrape_interval: 5s", "scrape_interval: 1s")
    path = os.path.join(tmp, "prometheus.yml")
    open(path, "w").write(conf)
    # the alerting rules it names, beside it
    shutil.copy(os.path.join(ROOT, "deploy", "prometheus", "alerts.yml"), tmp)
    r = subprocess.run(["promtool", "check", "config", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    port = free_port()
    proc = subprocess.Popen(["prometheus", "--config.file=" + path,
                             "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                             "--web.listen-address=127.0.0.1:%d" % port],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prom.log"), "w"))
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=2).status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("prometheus not ready: " + open(os.path.join(tmp, "prom.log")).read()[-2000:])


def prom_api(port, path, **params):
    url = "http://127.0.0.1:%d/api/v1/%s?%s" % (port, path, urllib.parse.urlencode(params))
    doc = json.loads(urllib.request.urlopen(url, timeout=10).read())
    assert doc["status"] == "success", doc
    return doc["data"]


def alert_rules_are_loaded(pport):
    # every alert of deploy/prometheus/alerts.yml, evaluated by this server
    want = set(re.findall(r"^\s*- alert: (\w+)", open(os.path.join(
        ROOT, "deploy", "prometheus", "alerts.yml")).read(), re.M))
    assert len(want) >= 5, want
    deadline = time.time() + 30
    while True:
        groups = prom_api(pport, "rules", type="alert")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        got = {r["name"] for r in rules}
        healthy = all(r.get("health") == "ok" for r in rules) and rules
        if got == want and healthy:
            return
        assert time.time() < deadline, (sorted(want), rules)
        time.sleep(0.5)


def query_value(port, q):
    res = prom_api(port, "query", query=q)["result"]
    return None if not res else float(res[0]["value"][1])


def scrape_counts_exactly_the_traffic(sport, pport):
    # wait for the first successful scrape, so the counters are known from 0
    deadline = time.time() + 60
    while time.time() < deadline:
        t = prom_api(pport, "targets")["activeTargets"]
        if t and t[0]["health"] == "up":
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the target never came up: %r" % t)
    for _ in range(37):
        assert get(sport, "/hello")[0] == 200
    for i in range(5):
        assert get(sport, "/no/such/page/%d" % i)[0] == 404
    for i in range(3):
        assert get(sport, "/api/sections")[0] == 200
    want = {'http_requests_total{route="/hello",status="200",method="GET"}': 37,
            'sum(http_requests_total{status="404"})': 5,
            'http_requests_total{route="/api/sections",status="200"}': 3,
            'http_request_duration_seconds_count{route="/hello",method="GET"}': 37}
    got = {}
    deadline = time.time() + 30
    while time.time() < deadline:
        got = {q: query_value(pport, q) for q in want}
        for q, v in got.items():
            assert v is None or v <= want[q], ("more than was sent", q, v)
        if got == want:
            break
        time.sleep(0.5)
    assert got == want, got
    # the raw paths never became labels
    series = prom_api(pport, "series", **{"match[]": "http_requests_total"})
    for s in series:
        assert not s["route"].startswith("/no/such"), s


def exposition_passes_promtool(sport):
    st, ctype, body = get(sport, "/metrics")
    assert st == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8", (st, ctype)
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()[-2000:]
    text = body.decode()
    for family in ("http_requests_total", "http_request_duration_seconds",
                   "http_requests_in_flight", "weave_rt_fibers", "weave_rt_loop_lag_seconds",
                   "weave_rt_offload_queued", "weave_http_connections",
                   "process_cpu_seconds_total", "process_resident_memory_bytes",
                   "process_open_fds", "process_max_fds", "process_start_time_seconds"):
        assert "\n# TYPE %s " % family in "\n" + text, family
    for shard in ("0", "1"):
        assert 'weave_rt_fibers{shard="%s"}' % shard in text, text[:3000]
    # this very request is in flight while /metrics renders
    m = re.search(r"^http_requests_in_flight (\S+)$", text, re.M)
    assert m and float(m.group(1)) >= 1, m


def openmetrics_when_asked(sport):
    st, ctype, body = get(sport, "/metrics", {
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})
    assert st == 200 and ctype.startswith("application/openmetrics-text; version=1.0.0"), ctype
    text = body.decode()
    assert text.endswith("# EOF\n"), text[-100:]
    assert "\n# TYPE http_requests counter\n" in text, text[:2000]


def registered_in_source():
    """The sample names of every family the C code registers
    (wv_metric_register with a literal .type and .name): the clients' metrics
    (weave_pg_* and the like) appear at /metrics only once the client is in
    use, which this test's service (SQLite, no broker) never does."""
    names = set()
    for top in ("src", os.path.join("examples", "chapter13")):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if not f.endswith(".c"):
                    continue
                text = open(os.path.join(dirpath, f), encoding="utf-8", errors="replace").read()
                for call in text.split("wv_metric_register(")[1:]:
                    m = re.search(r'\.type = WV_METRIC_(\w+),\s*\.name = "([a-zA-Z_:][a-zA-Z0-9_:]*)"',
                                  call[:400])
                    if not m:
                        continue
                    kind, name = m.groups()
                    names.add(name)
                    if kind == "HISTOGRAM":
                        names.update(name + s for s in ("_bucket", "_sum", "_count"))
    return names


def post(port, path, doc):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, body=json.dumps(doc), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def samples(port):
    """{sample line without its value: value} of the service's /metrics."""
    _, _, body = get(port, "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def tasks_metrics_after_a_task(sport):
    # the service's embedded queue (a table in its SQLite file) and its
    # in-process worker: one task sent and run shows in the tasks metrics
    st, body = post(sport, "/tasks/add", {"x": 2, "y": 3, "task": "add"})
    assert st == 202, (st, body)
    tid = json.loads(body)["id"]
    deadline = time.time() + 20
    while time.time() < deadline:
        st, _, body = get(sport, "/tasks/" + tid)
        if json.loads(body).get("state") == "SUCCESS":
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the task never succeeded: %r" % body)
    got = samples(sport)
    assert got.get('weave_tasks_sent_total{task="tasks.add",queue="celery"}') == 1, got
    assert got.get('weave_tasks_received_total{task="tasks.add",queue="celery"}') == 1, got
    assert got.get('weave_tasks_finished_total{task="tasks.add",state="SUCCESS"}') == 1, got
    assert got.get('weave_tasks_duration_seconds_count{task="tasks.add"}') == 1, got
    assert got.get('weave_tasks_running{queue="celery"}') == 0, got
    assert 'weave_tasks_queue_depth{queue="celery"}' in got, sorted(got)


def dashboard_names_only_exported_metrics(sport, pport):
    dash = json.load(open(os.path.join(ROOT, "deploy", "grafana", "weave-dashboard.json")))
    assert dash["panels"], "no panels"
    exported = {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", k).group(0) for k in samples(sport)}
    registered = registered_in_source()
    # the parse of the sources found the families this service does export
    assert {"http_requests_total", "weave_rt_loop_lag_seconds_bucket"} <= registered, registered
    titles = set()
    unused = set()
    for p in dash["panels"]:
        if p["type"] == "row":  # a row only groups the panels after it
            assert not p.get("targets"), p["title"]
            continue
        titles.add(p["title"].lower())
        assert p["targets"], p["title"]
        assert p["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        for t in p["targets"]:
            names = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", t["expr"])
            assert names, ("a query naming no metric", t["expr"])
            for n in names:
                assert n in exported or n in registered, \
                    ("the dashboard names a metric the service lacks", n)
                if n not in exported:
                    unused.add(n)
            # Prometheus accepts the query
            prom_api(pport, "query", query=t["expr"].replace("$job", ".*"))
    # only the PostgreSQL client's panels wait for a client this run lacks
    assert all(n.startswith("weave_pg_") for n in unused), unused
    for want in ("request rate", "error rate", "latency", "in flight", "lag", "fibers",
                 "postgresql pool", "database statements", "task queue depth", "tasks running",
                 "tasks finished"):
        assert any(want in t for t in titles), (want, titles)


def main():
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            print("FAIL %s is not installed (scripts/deps.sh test installs it)" % tool)
            print("test_metrics_prometheus: 0 passed, 1 failed")
            return 1
    tmp = tempfile.mkdtemp(prefix="weave-prom-")
    svc = prom = None
    try:
        svc, sport = start_service(tmp)
        prom, pport = start_prometheus(tmp, sport)
        case(scrape_counts_exactly_the_traffic, sport, pport)
        case(exposition_passes_promtool, sport)
        case(openmetrics_when_asked, sport)
        case(tasks_metrics_after_a_task, sport)
        case(dashboard_names_only_exported_metrics, sport, pport)
        case(alert_rules_are_loaded, pport)
    finally:
        for p in (prom, svc):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        if svc:
            err = svc.stderr.read()
            for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
                if bad in err:
                    print("FAIL sanitizer report in the service's stderr:", err[-3000:])
                    global failed
                    failed += 1
                    break
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_metrics_prometheus: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
