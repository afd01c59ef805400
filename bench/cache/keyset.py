"""What the cache suite's Python anchors share (bench/cache/redis_asyncio_get.py,
pymemcache_get.py): the key set of bench/bench_keyset.h, and the CPU lines
bench/cache/note.sh collects.

The key set: KEYS keys key:<n> written with 12 digits (key:000000001234),
n = 0 .. KEYS - 1, each holding the 3-byte value value_of(n) gives, the same
bytes bench_keyset.h's keyset_value writes.
"""
import os
import time

KEYS = 10000
ALPHABET = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def value_of(n):
    return bytes((ALPHABET[(n // (62 * 62)) % 62], ALPHABET[(n // 62) % 62], ALPHABET[n % 62]))


KEY_NAMES = [b"key:%012d" % n for n in range(KEYS)]
VALUES = [value_of(n) for n in range(KEYS)]


def server_pid():
    """The server's pid from CACHE_SERVER_PID, 0 when not given."""
    return int(os.environ.get("CACHE_SERVER_PID", "0"))


def proc_cpu(pid):
    """CPU seconds process pid has used (all its threads), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_mark(pid):
    """Wall time, this process's CPU time and the server's, now."""
    return (time.perf_counter(), time.process_time(), proc_cpu(pid) if pid else None)


def print_cpu(a, b, rate):
    """The CPU over the window between marks a and b: server_cpu= and
    client_cpu= in % of one core, server_us= and client_us= in microseconds
    per operation at `rate` operations per second."""
    wall = b[0] - a[0]
    server = b[2] - a[2] if a[2] is not None and b[2] is not None else None
    client = b[1] - a[1]
    print("server_cpu=%.0f\nclient_cpu=%.0f" % (100 * server / wall if server is not None else -1,
                                                100 * client / wall))
    print("server_us=%.3f\nclient_us=%.3f" % (server * 1e6 / (rate * wall) if server is not None
                                              else -1, client * 1e6 / (rate * wall)))
