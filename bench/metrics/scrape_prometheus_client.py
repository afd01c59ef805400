"""The anchor of metrics.scrape (bench/run_metrics.sh): Python's
prometheus_client (Debian's python3-prometheus-client) rendering the same
registry as `bench_metrics scrape N`: one counter family
    http_requests_total{method="GET",route="/items/<i>",status="200"}
with N label sets, series i counted (i % 100) + 1 times, in the text format
0.0.4 (generate_latest). Prints the median ms of 3 rounds of 10 renders as
`value=<ms>`, after checking the output's line count and total.

At its best setting: without the `_created` series. By default
prometheus_client writes, for every counter series, a second sample
`..._created{...} <unix time>`, which doubles its output (weave writes none).
Debian 12's prometheus_client 0.16 turns them off only through the
environment, PROMETHEUS_DISABLE_CREATED_SERIES=True, read once when
prometheus_client.metrics is imported (later versions also have
prometheus_client.disable_created_metrics()); so it is set here before the
import unless the caller set it, the newer call is made when it exists, and
the output is checked to hold no `_created` sample.

    /usr/bin/python3 scrape_prometheus_client.py N
"""
import os
from importlib.metadata import version
import statistics
import sys
import time

os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")

import prometheus_client  # noqa: E402 (after the environment is set)
from prometheus_client import CollectorRegistry, Counter, generate_latest  # noqa: E402

if hasattr(prometheus_client, "disable_created_metrics"):
    prometheus_client.disable_created_metrics()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    reg = CollectorRegistry(auto_describe=False)
    c = Counter("http_requests", "HTTP requests answered.", ["method", "route", "status"],
                registry=reg)
    for i in range(n):
        c.labels("GET", "/items/%d" % i, "200").inc((i % 100) + 1)
    times = []
    out = b""
    for _ in range(3):
        for _ in range(10):
            t0 = time.perf_counter()
            out = generate_latest(reg)
            times.append((time.perf_counter() - t0) * 1000)
    total = 0
    samples = 0
    created = 0
    lines = out.decode().splitlines()
    for line in lines:
        if line.startswith("http_requests_total{"):
            samples += 1
            total += float(line.rsplit(" ", 1)[1])
        elif "_created" in line:
            created += 1
    if created or len(lines) != n + 2:
        print("scrape_prometheus_client: %d lines, %d of them _created samples; expected %d"
              " lines and none (PROMETHEUS_DISABLE_CREATED_SERIES=%s)"
              % (len(lines), created, n + 2, os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES")),
              file=sys.stderr)
        return 1
    want = sum((i % 100) + 1 for i in range(n))
    if samples != n or total != want:
        print("scrape_prometheus_client: %d samples totalling %s, expected %d and %d"
              % (samples, total, n, want), file=sys.stderr)
        return 1
    print("# prometheus_client %s, %d series: %d bytes, %d lines, no _created sample"
          % (version("prometheus_client"), n, len(out), len(lines)))
    print("value=%.4f" % statistics.median(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
