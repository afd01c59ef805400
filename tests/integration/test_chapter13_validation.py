"""Every input of the chapter's service is declared (include/weave/schema.h)
and validated as FastAPI validates it: for each converted route, a request
with several errors at once answers 422 with every error's exact type, loc,
msg, input and ctx (pydantic v2's words), in FastAPI's order (path, query,
then body), and a valid request still gets the old success. Routes: GET,
PUT, DELETE /users/{id} and POST /users; POST /tasks/add and GET
/tasks/{id}; PUT, GET, DELETE /cache/{key}?ttl=; POST /events; POST
/messages (a raw body); POST /files?name= and GET, DELETE /files/{name};
GET /grpc/hello?name=. Bodies that are not JSON are json_invalid at the
byte the reader stopped at. The expected errors were checked against
pydantic 2.13's TypeAdapter with the same declarations."""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import check, eq, run  # noqa: E402
import test_chapter13 as c13  # noqa: E402
from test_chapter13 import req  # noqa: E402

JSON = {"Content-Type": "application/json"}
INT_PARSING = "Input should be a valid integer, unable to parse string as an integer"
KEY_PATTERN = "^[^\x01-\x20\x7f]+$"
NAME_PATTERN = "^[^./\\\\\x01-\x1f\x7f][^/\\\\\x01-\x1f\x7f]*$"


def call(s, method, path, body=None, headers=None):
    if isinstance(body, (dict, list)):
        body, headers = json.dumps(body).encode(), JSON
    st, h, data = req(s.port, method, path, body, headers)
    return st, h, json.loads(data) if data and h.get("content-type", "").startswith(
        "application/json") else data


def detail(s, method, path, body=None, headers=None):
    """The 422's errors, checked to be FastAPI's shape."""
    st, _, doc = call(s, method, path, body, headers)
    eq(st, 422, "%s %s status (%r)" % (method, path, doc))
    check(isinstance(doc, dict) and list(doc) == ["detail"], "not FastAPI's body: %r", doc)
    for e in doc["detail"]:
        check(set(e) <= {"type", "loc", "msg", "input", "ctx"} and
              {"type", "loc", "msg"} <= set(e), "error fields: %r", e)
    return doc["detail"]


def err(type_, loc, msg, **kw):
    e = {"type": type_, "loc": loc, "msg": msg}
    e.update(kw)
    return e


# ------------------------------------------------------------------ users

def test_users_path_id_and_body_errors_at_once():
    db = tempfile.mkdtemp(prefix="weave-c13-users-")
    try:
        users_errors(db)
    finally:
        shutil.rmtree(db, ignore_errors=True)


def users_errors(db):
    # a file, so that every shard sees the same users
    with c13.Service(args=("--database-url", "sqlite://" + os.path.join(db, "u.db"))) as s:
        for method in ("GET", "DELETE"):
            eq(detail(s, method, "/users/abc"),
               [err("int_parsing", ["path", "id"], INT_PARSING, input="abc")], method)
        eq(detail(s, "GET", "/users/1.5"),
           [err("int_parsing", ["path", "id"], INT_PARSING, input="1.5")], "a fraction")
        # PUT: the path's error first, then the body's, in one answer
        eq(detail(s, "PUT", "/users/x1", {"name": ""}),
           [err("int_parsing", ["path", "id"], INT_PARSING, input="x1"),
            err("string_too_short", ["body", "name"], "String should have at least 1 character",
                input="", ctx={"min_length": 1})], "PUT, both wrong")
        eq(detail(s, "PUT", "/users/x1"),
           [err("int_parsing", ["path", "id"], INT_PARSING, input="x1"),
            err("missing", ["body"], "Field required", input=None)], "PUT, no body")
        eq(detail(s, "POST", "/users", {"name": 5}),
           [err("string_type", ["body", "name"], "Input should be a valid string", input=5)],
           "POST")
        got = detail(s, "POST", "/users", b"{not json", JSON)
        eq([(e["type"], e["loc"], e["msg"]) for e in got],
           [("json_invalid", ["body", 1], "JSON decode error")], "not JSON")
        eq(got[0]["ctx"], {"error": "line 1, column 2 (byte 1): expected a string as object key"},
           "the reader's words, once")
        # the valid requests: as before
        st, h, alice = call(s, "POST", "/users", {"name": "Alice"})
        eq((st, alice["name"], h["location"]), (201, "Alice", "/users/%d" % alice["id"]), "POST")
        st, _, got = call(s, "PUT", "/users/%d" % alice["id"], {"name": "Alicia"})
        eq((st, got), (200, {"id": alice["id"], "name": "Alicia"}), "PUT")
        st, _, got = call(s, "GET", "/users/%d" % alice["id"])
        eq((st, got), (200, {"id": alice["id"], "name": "Alicia"}), "GET")
        eq(call(s, "DELETE", "/users/%d" % alice["id"])[0], 204, "DELETE")
        eq(call(s, "GET", "/users/%d" % alice["id"])[0], 404, "gone")


# ------------------------------------------------------------------ tasks

def test_tasks_body_errors_at_once():
    queue = tempfile.mkdtemp(prefix="weave-c13-tasks-")
    try:
        tasks_errors(queue)
    finally:
        shutil.rmtree(queue, ignore_errors=True)


def tasks_errors(queue):
    # the embedded queue in a SQLite file of its own
    with c13.Service(env={"TASKS_URL": "sqlite://" + os.path.join(queue, "q.db")}) as s:
        eq(detail(s, "POST", "/tasks/add", {"x": "two", "task": "rm"}),
           [err("float_parsing", ["body", "x"],
                "Input should be a valid number, unable to parse string as a number",
                input="two"),
            err("missing", ["body", "y"], "Field required", input={"x": "two", "task": "rm"}),
            err("enum", ["body", "task"], "Input should be 'async_add' or 'add'", input="rm",
                ctx={"expected": "'async_add' or 'add'"})], "three errors")
        eq(detail(s, "POST", "/tasks/add", [1, 2]),
           [err("model_attributes_type", ["body"],
                "Input should be a valid dictionary or object to extract fields from",
                input=[1, 2])], "not an object")
        eq(detail(s, "POST", "/tasks/add", b""),
           [err("missing", ["body"], "Field required", input=None)], "no body")
        eq(detail(s, "GET", "/tasks/" + "x" * 64),
           [err("string_too_long", ["path", "id"], "String should have at most 63 characters",
                input="x" * 64, ctx={"max_length": 63})], "a task id too long")
        # lax, as pydantic: a number in a string is a number
        st, _, doc = call(s, "POST", "/tasks/add", {"x": "2", "y": 3, "task": "add"})
        eq((st, doc["task"], doc["state"]), (202, "tasks.add", "PENDING"), "valid")
        eq(sorted(doc), ["id", "state", "task"], "TaskSent's fields")
    # validation comes first, as FastAPI's: a 422 even with no task queue
    with c13.Service(env={"TASKS_URL": ""}) as s:
        eq(detail(s, "POST", "/tasks/add", {"x": 1})[0]["loc"], ["body", "y"], "no queue")
        eq(call(s, "POST", "/tasks/add", {"x": 1, "y": 2})[0], 503, "valid, no queue")


# ------------------------------------------------------------------ cache

def test_cache_key_and_ttl_errors_at_once():
    with c13.Service() as s:
        eq(detail(s, "PUT", "/cache/has%20space?ttl=soon", b"v"),
           [err("string_pattern_mismatch", ["path", "key"],
                "String should match pattern '%s'" % KEY_PATTERN, input="has space",
                ctx={"pattern": KEY_PATTERN}),
            err("int_parsing", ["query", "ttl"], INT_PARSING, input="soon")], "both wrong")
        eq(detail(s, "PUT", "/cache/%s?ttl=-1" % ("k" * 251), b"v"),
           [err("string_too_long", ["path", "key"], "String should have at most 250 characters",
                input="k" * 251, ctx={"max_length": 250}),
            err("greater_than_equal", ["query", "ttl"], "Input should be greater than or equal to 0",
                input="-1", ctx={"ge": 0})], "too long, negative")
        eq(detail(s, "PUT", "/cache/k?ttl=31536001", b"v"),
           [err("less_than_equal", ["query", "ttl"],
                "Input should be less than or equal to 31536000", input="31536001",
                ctx={"le": 31536000})], "a ttl past a year")
        eq(detail(s, "GET", "/cache/ctl%01byte")[0]["loc"], ["path", "key"], "GET")
        eq(detail(s, "DELETE", "/cache/%FF")[0]["type"], "string_unicode", "not UTF-8")
        st, _, doc = call(s, "PUT", "/cache/k?ttl=60", b"value")
        eq((st, doc), (200, {"key": "k", "bytes": 5, "ttl": 60}), "valid")
        st, _, doc = call(s, "PUT", "/cache/k2", b"")
        eq((st, doc), (200, {"key": "k2", "bytes": 0, "ttl": 0}), "ttl's default, empty value")
        eq(call(s, "GET", "/cache/k")[2], b"value", "read back")


# ------------------------------------------------------------------ events

def test_events_errors_at_once():
    with c13.Service() as s:
        eq(detail(s, "POST", "/events", [1, {"key": 5, "type": "t" * 257}, {"n": 1}]),
           [err("model_attributes_type", ["body", 0],
                "Input should be a valid dictionary or object to extract fields from", input=1),
            err("string_type", ["body", 1, "key"], "Input should be a valid string", input=5),
            err("string_too_long", ["body", 1, "type"], "String should have at most 256 characters",
                input="t" * 257, ctx={"max_length": 256})], "an array")
        eq(detail(s, "POST", "/events", {"key": ["k"], "type": None}),
           [err("string_type", ["body", "key"], "Input should be a valid string", input=["k"])],
           "one event")
        eq(detail(s, "POST", "/events", []),
           [err("too_short", ["body"], "List should have at least 1 item after validation, not 0",
                input=[], ctx={"field_type": "List", "min_length": 1, "actual_length": 0})],
           "no event")
        got = detail(s, "POST", "/events", [{}] * 501)
        eq([(e["type"], e["loc"], e["msg"], e["ctx"]) for e in got],
           [("too_long", ["body"], "List should have at most 500 items after validation, not 501",
             {"field_type": "List", "max_length": 500, "actual_length": 501})], "501 events")
        eq(detail(s, "POST", "/events", b'[{"a": 1}, oops]', JSON)[0]["loc"], ["body", 11],
           "json_invalid where the body itself stops being JSON")
        eq(detail(s, "POST", "/events", b'1}, {"x": 2', JSON)[0]["type"], "json_invalid",
           "a body that closes the wrapper is still not JSON")
        st, _, doc = call(s, "POST", "/events", [{"key": "k" * 256, "n": 1}, {"type": "t"}])
        eq((st, doc), (202, {"source": "bus topic events", "accepted": 2, "records": []}),
           "valid")


# --------------------------------------------------------------- messages

def test_message_body_errors():
    with c13.Service() as s:
        eq(detail(s, "POST", "/messages", b""),
           [err("missing", ["body"], "Field required", input=None)], "empty")
        eq(detail(s, "POST", "/messages", b"x" * (64 * 1024 + 1)),
           [err("bytes_too_long", ["body"], "Data should have at most 65536 bytes",
                ctx={"max_length": 65536})], "too long")
        st, _, doc = call(s, "POST", "/messages", b"hi", {"Content-Type": "text/plain"})
        eq((st, doc), (202, {"topic": "test_queue", "groups": 1, "bytes": 2}), "valid")


# ------------------------------------------------------------------ files

def test_file_name_errors():
    with c13.Service() as s:
        eq(detail(s, "POST", "/files", b"data"),
           [err("missing", ["query", "name"], "Field required", input=None)], "no name")
        eq(detail(s, "POST", "/files?name=.hidden", b"data"),
           [err("string_pattern_mismatch", ["query", "name"],
                "String should match pattern '%s'" % NAME_PATTERN, input=".hidden",
                ctx={"pattern": NAME_PATTERN})], "a leading dot")
        eq(detail(s, "POST", "/files?name=" + "x" * 256, b"data"),
           [err("string_too_long", ["query", "name"], "String should have at most 255 characters",
                input="x" * 256, ctx={"max_length": 255})], "too long")
        eq(detail(s, "POST", "/files?name=", b"data"),
           [err("string_too_short", ["query", "name"], "String should have at least 1 character",
                input="", ctx={"min_length": 1})], "empty")
        eq(detail(s, "POST", "/files?name=%FF%FE.bin", b"data")[0]["type"], "string_unicode",
           "not UTF-8")
        eq(detail(s, "GET", "/files/a%5Cb")[0]["loc"], ["path", "name"], "a backslash")
        eq(detail(s, "DELETE", "/files/tab%09")[0]["loc"], ["path", "name"], "a tab")
        st, _, doc = call(s, "POST", "/files?name=a.txt", b"data")
        eq((st, doc), (201, {"name": "a.txt", "size": 4, "location": "/files/a.txt"}), "valid")
        eq(call(s, "GET", "/files/a.txt")[2], b"data", "read back")
        eq(os.listdir(s.files), ["a.txt"], "only the valid file stored")


# ------------------------------------------------------------------- gRPC

def test_grpc_hello_name():
    with c13.Service() as s:
        # validated before the handler runs: a 422 even with no gRPC target
        eq(detail(s, "GET", "/grpc/hello?name=" + "%C3%A9" * 257),
           [err("string_too_long", ["query", "name"], "String should have at most 256 characters",
                input="é" * 257, ctx={"max_length": 256})], "too long")
        st, _, doc = call(s, "GET", "/grpc/hello?name=" + "%C3%A9" * 256)
        eq(st, 503, "no target: %r" % doc)


if __name__ == "__main__":
    run(globals())
