#!/usr/bin/python3
"""Capture Python's pickles for tests/unit/test_pickle.c.

Runs CPython 3.11's pickle (on /usr/bin/python3) and RQ 1.13's serializer
(Debian's python3-rq) and writes, unchanged, into this directory:

  v_NAME.json, v_NAME.pkl   a JSON text and pickle.dumps(json.loads(text),
                            protocol=5): what weave's writer must give byte
                            for byte, and its reader must read back
  c_NAME.json, c_NAME.pkl   [func, args, kwargs] and RQ's Job.data for
                            q.enqueue_call(func, args=tuple(args),
                            kwargs=kwargs): the job tuple (func, None,
                            args, kwargs) through rq.serializers
  r_NAME.pkl, r_NAME.json   plain values written otherwise (protocols 2 to
                            4, tuples, lists and dicts by LIST and DICT
                            opcodes, memo GETs) and the JSON they read as
  n_NAME.pkl                values that are not plain (the test names the
                            error each gives)
  big.pkl                   BIG (below), past 64 KiB: a str that goes
                            outside any frame and a frame cut at 64 KiB;
                            the test builds the same value itself

No Redis is needed. Regenerate with:

  /usr/bin/python3 tests/unit/pickle_fixtures/capture.py

The output does not depend on the run: regenerating changes nothing.
"""
import datetime
import decimal
import json
import os
import pickle
import pickletools

from rq.serializers import DefaultSerializer

HERE = os.path.dirname(os.path.abspath(__file__))


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


VALUES = {
    "none": "null",
    "true": "true",
    "false": "false",
    "ints": json.dumps([0, 1, 255, 256, 65535, 65536, -1, -128, -129, -256, -257, -32769,
                        2 ** 31 - 1, -2 ** 31, 2 ** 31, -2 ** 31 - 1, 2 ** 40, -2 ** 40,
                        2 ** 63 - 1, -2 ** 63, 128, 32768, 8388608, -8388609]),
    "floats": json.dumps([0.0, -0.0, 0.5, 1e-07, 3.141592653589793, 1e300, -2.5e-300, 1e16,
                          6.02e23]),
    "strings": json.dumps(["", "a", "\u00e9", "ab", "h\u00e9llo", "\u65e5\u672c",
                           "\U0001f600", "it's \"q\" \\", "line\nbreak\t\u0001"]),
    "singletons": json.dumps(["a", "a", "", "", "\u00ff", "\u00ff", "\u0100", "\u0100",
                              "ab", "ab"]),
    "keys_shared": json.dumps([{"key": "key", "a": 1}, {"key": 2, "a": "a"},
                               {"k\u00e9y": {"k\u00e9y": "k\u00e9y"}}]),
    "dup_keys": '{"a": 1, "b": 2, "a": 3, "c": {"x": 1, "x": [2]}}',
    "nested": json.dumps({"list": [[], [[]], {}, {"a": {"b": [None, True, False]}}],
                          "": "empty", "n": [1, [2, [3, [4, [5]]]]]}),
    "one_each": json.dumps([[1], {"k": 1}, [[]], [{}]]),
    "list_1001": json.dumps(list(range(1001))),
    "list_2000": json.dumps(list(range(2000))),
    "dict_1000": json.dumps({"k%d" % i: i for i in range(1000)}),
    "dict_1001": json.dumps({"k%d" % i: i for i in range(1001)}),
    "str_256": json.dumps("s" * 256),
    "memo_256": json.dumps([{"k%d" % i: "v"} for i in range(300)]),
}

CALLS = {
    "add": ["tasks.add", [2, 3], {}],
    "none": ["tasks.run", [], {}],
    "one": ["tasks.one", ["x"], {}],
    "three": ["tasks.three", [1, "a", None], {}],
    "kwargs": ["tasks.echo", [1, 2, 3, 4, 5], {"a": "a", "key": [1.5, {"key": None}]}],
    "nested": ["mod.sub.f", [{"x": [1, {"y": "\u00e9"}]}, "", ""], {"z": True}],
}

READS = {
    "proto2": (pickle.dumps([1, "a", {"b": 2.5}], protocol=2), [1, "a", {"b": 2.5}]),
    "proto3": (pickle.dumps({"k": [None, True]}, protocol=3), {"k": [None, True]}),
    "proto4": (pickle.dumps(["x" * 300, -70000], protocol=4), ["x" * 300, -70000]),
    "tuple": (pickle.dumps((1, (2, 3), (), (4, 5, 6, 7)), protocol=5),
              [1, [2, 3], [], [4, 5, 6, 7]]),
    "shared": (pickle.dumps([[1, 2]] * 3, protocol=5), [[1, 2]] * 3),
    # LIST and DICT from MARK (protocol 0's containers, still read)
    "mark_list_dict": (b"\x80\x02(K\x01K\x02l(X\x01\x00\x00\x00kK\x03d\x86.",
                       [[1, 2], {"k": 3}]),
    "binput": (pickle.dumps(["same", "same"], protocol=2), ["same", "same"]),
    "long4": (b"\x80\x05\x8b\x02\x00\x00\x00\xff\x7f.", 32767),
    "long1_padded": (b"\x80\x05\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\xff.", -2 ** 63),
}

NOT_PLAIN = {
    "datetime": datetime.datetime(2026, 12, 8, 1, 2, 3),
    "bytes": b"\x00\x01",
    "set": {1, 2},
    "frozenset": frozenset([1]),
    "bigint": 2 ** 70,
    "nan": float("nan"),
    "int_key": {1: "one"},
    "decimal": decimal.Decimal("1.5"),
    "surrogate": "\ud800",
    "bytearray": bytearray(b"ab"),
}


# ["x" * 65536, [256, 257, ..., 22255], "end"]
BIG = ["x" * 65536, list(range(256, 22256)), "end"]


def main():
    write("big.pkl", pickle.dumps(json.loads(json.dumps(BIG)), protocol=5))
    for name, text in VALUES.items():
        write("v_%s.json" % name, text)
        write("v_%s.pkl" % name, pickle.dumps(json.loads(text), protocol=5))
    for name, call in CALLS.items():
        text = json.dumps(call)
        func, args, kwargs = json.loads(text)
        write("c_%s.json" % name, text)
        write("c_%s.pkl" % name, DefaultSerializer.dumps((func, None, tuple(args), kwargs)))
    for name, (data, value) in READS.items():
        pickletools.dis(data, out=open(os.devnull, "w"))  # a valid pickle
        assert pickle.loads(data) == value or json.loads(json.dumps(pickle.loads(data))) == value
        write("r_%s.pkl" % name, data)
        write("r_%s.json" % name, json.dumps(value))
    for name, value in NOT_PLAIN.items():
        write("n_%s.pkl" % name, pickle.dumps(value, protocol=5))


if __name__ == "__main__":
    main()
