"""Anchor of cache.memory_get (and _set, _miss): Python's cachetools.LRUCache.

Same shape as `bench_cache_store get|set|miss`: an LRUCache(maxsize=10000)
holding 10,000 items, each a 16-byte bytes key ("key:%012d") and a 100-byte
bytes value that names its key. The timed loop walks a list of the keys in
the same scattered order as weave's side (the i-th is key (i * 7919) mod
10000, so every key is visited once per pass, no hot key), as many passes
as it takes to make n operations:

  get   cache[key]                    a hit (LRUCache moves the key to the end)
  set   cache[key] = value            replacing the value of a present key
  miss  cache.get(key)                a key that is not there ("miss:%011d")

One untimed pass first (warm-up), and the results are checked after the
timed loop: every key still maps to its own value, the cache still holds
10,000 items, and a miss returns None.

Prints value=<ns per operation> (perf_counter_ns), and before it
cpu_ns=<CPU ns per operation> (thread_time_ns: a second view on a busy machine).
Usage: /usr/bin/python3 cachetools_get.py [get|set|miss] [n] [items]
(items: 10000 unless given, as `bench_cache_store get N spin ITEMS`)
"""

import sys
import time

import cachetools

ITEMS = 10000
STRIDE = 7919


def value_of(i):
    v = b"value of key:%012d|" % i
    return v + b"." * (100 - len(v))


def main(figure, n, items):
    global ITEMS
    ITEMS = items
    cache = cachetools.LRUCache(maxsize=ITEMS)
    keys = [b"key:%012d" % i for i in range(ITEMS)]
    values = [value_of(i) for i in range(ITEMS)]
    assert all(len(k) == 16 for k in keys) and all(len(v) == 100 for v in values)
    for k, v in zip(keys, values):
        cache[k] = v
    order = [(i * STRIDE) % ITEMS for i in range(ITEMS)]
    if figure == "miss":
        walk = [b"miss:%011d" % i for i in order]
    else:
        walk = [keys[i] for i in order]
    pairs = [(keys[i], values[i]) for i in order]
    passes = max(1, n // ITEMS)

    def run(passes):
        c = cache
        if figure == "get":
            for _ in range(passes):
                for k in walk:
                    c[k]
        elif figure == "set":
            for _ in range(passes):
                for k, v in pairs:
                    c[k] = v
        else:
            get = c.get
            for _ in range(passes):
                for k in walk:
                    get(k)

    run(1)
    t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
    run(passes)
    ns, cpu = time.perf_counter_ns() - t0, time.thread_time_ns() - c0

    if len(cache) != ITEMS or any(cache[k] != v for k, v in zip(keys, values)):
        sys.exit("cachetools_get: WRONG RESULT: the cache lost or changed an item")
    if figure == "miss" and cache.get(walk[0]) is not None:
        sys.exit("cachetools_get: WRONG RESULT: a miss found something")
    ops = passes * ITEMS
    per = ns / ops
    print(f"cachetools_get {figure}: {ops} operations in {ns / 1e6:.1f} ms: {per:.1f} ns each "
          f"(cachetools {cachetools.__version__}, Python {sys.version.split()[0]})",
          file=sys.stderr)
    print(f"cpu_ns={cpu / ops:.3f}")
    print(f"value={per:.3f}")


if __name__ == "__main__":
    fig = sys.argv[1] if len(sys.argv) > 1 else "get"
    if fig not in ("get", "set", "miss"):
        sys.exit("usage: cachetools_get.py [get|set|miss] [n] [items]")
    main(fig, int(sys.argv[2]) if len(sys.argv) > 2 else 1000000,
         int(sys.argv[3]) if len(sys.argv) > 3 else ITEMS)
