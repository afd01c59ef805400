"""The schema module's JSON Schema against an independent validator: the
Python jsonschema library (Debian's python3-jsonschema) checks that the
schema weave emits is a valid 2020-12 schema, then validates a table of
documents with it, and each verdict must agree with weave's own decoder
(tests/unit/test_schema.c's model, run as `test_schema schema|decode`).
The only disagreements allowed are pydantic's lax coercions, which a JSON
Schema cannot express (the string "5" for an integer, true for a number,
"yes" for a boolean): those rows say so, and must disagree."""
import json
import os
import subprocess
import sys

try:
    import jsonschema
except ImportError:
    print("FAIL test_schema_jsonschema: python3-jsonschema is not installed "
          "(scripts/deps.sh test installs it)")
    sys.exit(1)

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "test_schema")

BASE = {"id": 1, "name": "a", "home": {"city": "Paris", "zip": "75001"},
        "items": [{"sku": "a", "qty": 1}]}


def with_(**kw):
    d = json.loads(json.dumps(BASE))
    for k, v in kw.items():
        if v is ...:
            d.pop(k, None)
        else:
            d[k] = v
    return d


# (document, lax): lax=True when weave (like pydantic) accepts what the JSON
# Schema refuses
ROWS = [
    (BASE, False),
    (with_(id=0), False),
    (with_(id=-1), False),
    (with_(id=1.5), False),
    (with_(id=5.0), False),         # an integer to JSON Schema too
    (with_(id="5"), True),          # lax: a string of an integer
    (with_(id=True), True),         # lax: a bool is an int
    (with_(id=None), False),
    (with_(id=...), False),
    (with_(name=""), False),
    (with_(name="x" * 50), False),
    (with_(name="x" * 51), False),
    (with_(name="é" * 50), False),  # characters, not bytes
    (with_(name="日" * 51), False),
    (with_(name=5), False),
    (with_(score=0), False),
    (with_(score=0.001), False),
    (with_(score=100), False),
    (with_(score=100.01), False),
    (with_(score="3.5"), True),     # lax: a string of a number
    (with_(active=False), False),
    (with_(active="yes"), True),    # lax
    (with_(active=0), True),        # lax
    (with_(active=[]), False),
    (with_(role="admin"), False),
    (with_(role="root"), False),
    (with_(age=None), False),
    (with_(age=149), False),
    (with_(age=150), False),
    (with_(age=-1), False),
    (with_(tags=[]), False),
    (with_(tags=["abcd", "e"]), False),
    (with_(tags=["abcde"]), False),
    (with_(tags=["a", "b", "c", "d"]), False),
    (with_(tags="a"), False),
    (with_(created="2026-01-01T00:00:00Z"), False),
    (with_(avatar="AAEC"), False),
    (with_(home={"city": "Paris", "zip": "7500"}), False),
    (with_(home={"city": "", "zip": "75001"}), False),
    (with_(home={"city": "Paris"}), False),
    (with_(home=[]), False),
    (with_(items=[]), False),
    (with_(items=[{"sku": "a", "qty": 0}]), False),
    (with_(items=[{"sku": "abcdefghi", "qty": 1}]), False),
    (with_(items=[{"sku": "a", "qty": 1}] * 3), False),
    (with_(items=[{"sku": "a", "qty": 1}] * 4), False),
    (with_(items=[{"qty": 1}]), False),
    ([1, 2], False),
    ("x", False),
    (with_(extra={"anything": 1}), False),
]


def main():
    schema = json.loads(subprocess.run([BIN, "schema"], capture_output=True, text=True,
                                       check=True).stdout)
    cls = jsonschema.Draft202012Validator
    cls.check_schema(schema)  # a valid 2020-12 schema
    validator = cls(schema)
    lines = "".join(json.dumps(doc, ensure_ascii=False) + "\n" for doc, _ in ROWS)
    out = subprocess.run([BIN, "decode"], input=lines, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(out) == len(ROWS), out
    failed = 0
    for (doc, lax), verdict in zip(ROWS, out):
        ours = verdict == "ok"
        theirs = validator.is_valid(doc)
        want_agree = not lax
        if (ours == theirs) != want_agree or (lax and not ours):
            failed += 1
            print("FAIL", json.dumps(doc)[:120], "weave:", verdict, "jsonschema:", theirs,
                  "(lax row)" if lax else "")
    # the schema rejects what weave rejects, and some rows on each side
    assert sum(v == "ok" for v in out) > 5 and sum(v != "ok" for v in out) > 20, out
    print("test_schema_jsonschema: %d rows, %d failed" % (len(ROWS), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
