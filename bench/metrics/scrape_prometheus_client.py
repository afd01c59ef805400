"""The anchor of metrics.scrape (bench/run_metrics.sh): Python's
prometheus_client (Debian's python3-prometheus-client) rendering the same
registry as `bench_metrics scrape N`: one counter family
    http_requests_total{method="GET",route="/items/<i>",status="200"}
with N label sets, series i counted (i % 100) + 1 times, in the text format
0.0.4 (generate_latest). Prints the median ms of 3 rounds of 10 renders as
`value=<ms>`, after checking the output's line count and total.

    /usr/bin/python3 scrape_prometheus_client.py N
"""
import statistics
import sys
import time

from prometheus_client import CollectorRegistry, Counter, generate_latest


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
    for line in out.decode().splitlines():
        if line.startswith("http_requests_total{"):
            samples += 1
            total += float(line.rsplit(" ", 1)[1])
    want = sum((i % 100) + 1 for i in range(n))
    if samples != n or total != want:
        print("scrape_prometheus_client: %d samples totalling %s, expected %d and %d"
              % (samples, total, n, want), file=sys.stderr)
        return 1
    print("# prometheus_client %d series: %d bytes" % (n, len(out)))
    print("value=%.4f" % statistics.median(times))
    return 0


if __name__ == "__main__":
    sys.exit(main())
