"""The Python anchor of db.sqlite_select (bench/run_db.sh): the same
single-row select by id that bench_db_sqlite runs, with Python's sqlite3 in
a plain loop (no event loop: the cheapest a Python service could do it).

    /usr/bin/python3 sqlite_select.py PATH SECONDS

The database file is made by bench_db_sqlite (table users, 10k rows). Every
row is checked. Prints `value=<queries/s>` last.
"""
import random
import sqlite3
import sys
import time


def main():
    path, secs = sys.argv[1], float(sys.argv[2])
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    cur = db.cursor()
    n = 0
    t0 = time.perf_counter()
    until = t0 + secs
    while time.perf_counter() < until:
        i = random.randint(1, 10000)
        row = cur.execute("SELECT id, name FROM users WHERE id = ?", (i,)).fetchone()
        if row is None or row[0] != i:
            print("sqlite_select: wrong row for %d: %r" % (i, row), file=sys.stderr)
            return 1
        n += 1
    took = time.perf_counter() - t0
    print("# python sqlite3: %d queries in %.2f s" % (n, took))
    print("value=%.1f" % (n / took))
    return 0


if __name__ == "__main__":
    sys.exit(main())
