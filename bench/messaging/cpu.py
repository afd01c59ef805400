"""CPU marks for the messaging suite's Python anchors (bench/run_messaging.sh):
the same server_cpu=, client_cpu=, server_us= and client_us= lines
bench/bench_util.h's print_cpu_lines writes for weave's side, which
bench/cache/note.sh collects for the suite's '#' lines. The server is the
broker's process (RabbitMQ's beam.smp, or the Kafka mock cluster), its pid
in MSG_SERVER_PID."""
import os
import time

SIZE = 100  # bytes in every message


def body(seq):
    """Message seq's body: its sequence number in 12 digits, then filler up
    to SIZE bytes (bench_amqp.c's and bench_kafka.c's make_body)."""
    return b"%012d" % seq + b"x" * (SIZE - 12)


def server_pid():
    return int(os.environ.get("MSG_SERVER_PID", "0"))


def proc_cpu(pid):
    """CPU seconds process pid has used (all its threads), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def mark(pid):
    """Wall time, this process's CPU time (every thread) and the server's, now."""
    return (time.perf_counter(), time.process_time(), proc_cpu(pid) if pid else None)


def report(what, a, b, n, warm):
    """The run's '#' line, its CPU lines and value=<messages per second>."""
    wall = b[0] - a[0]
    rate = n / wall
    print("# %s: %d messages of %d bytes in %.3f s after %d of warm-up" % (what, n, SIZE, wall,
                                                                          warm))
    server = b[2] - a[2] if a[2] is not None and b[2] is not None else None
    client = b[1] - a[1]
    print("server_cpu=%.0f\nclient_cpu=%.0f" % (100 * server / wall if server is not None else -1,
                                                100 * client / wall))
    print("server_us=%.3f\nclient_us=%.3f" % (server * 1e6 / n if server is not None else -1,
                                              client * 1e6 / n))
    print("value=%.0f" % rate)
