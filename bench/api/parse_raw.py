"""api.decode's anchor (bench/run_api.sh): pydantic 1.10's Item.parse_raw.

    /usr/bin/python3 bench/api/parse_raw.py BODY_FILE N

N times Item.parse_raw(body) (json.loads, then every field validated into
the model: what FastAPI does with a request body), timed with timeit after
a warm-up of N / 10, the same body bytes as bench_api decode (bench_api
body). Prints value=<ns per body>. The result is checked before and after
timing: every field as the body says, and the model encoded back compactly
(json.dumps of .dict(), enum values) is the body byte for byte.
"""

import json
import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import Item  # noqa: E402 (beside this file)


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: parse_raw.py BODY_FILE N", file=sys.stderr)
        return 2
    with open(sys.argv[1], "rb") as f:
        body = f.read()
    n = int(sys.argv[2])

    def check(item) -> None:
        want = json.loads(body)
        got = json.loads(json.dumps(item.dict(), default=lambda e: e.value))
        if got != want:
            raise SystemExit(f"parse_raw.py: the model is not the body: {got}")
        echo = json.dumps(item.dict(), default=lambda e: e.value, separators=(",", ":"),
                          ensure_ascii=False).encode()
        if echo != body:
            raise SystemExit(f"parse_raw.py: encoded back, not the body: {echo!r}")

    check(Item.parse_raw(body))
    timer = timeit.Timer("parse(body)", globals={"parse": Item.parse_raw, "body": body})
    timer.timeit(number=n // 10 + 1)
    t = timer.timeit(number=n)
    check(Item.parse_raw(body))
    print(f"parse_raw.py: {n} bodies of {len(body)} bytes in {t:.3f} s", file=sys.stderr)
    print(f"value={t / n * 1e9:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
