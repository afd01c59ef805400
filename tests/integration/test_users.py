"""§13.3 on the chapter's service: /users on both backends, the embedded
SQLite (a file: it survives a restart and every shard sees the same rows)
and a real PostgreSQL 15 (the one `make test` starts: WEAVE_TEST_PG_URL).
GET /users lists, POST /users creates (201 with Location; FastAPI's 422
naming the field for a bad body, json_invalid for one that is not JSON),
GET /users/{id} reads (404; 422 int_parsing for a non-integer id); 50 concurrent creations get 50 ids; the
table is created at start; /readyz checks the database, and a database
that cannot be opened stops the start with status 1."""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "chapter13")
passed = failed = 0


def case(name, fn, *args):
    global passed, failed
    try:
        fn(*args)
        passed += 1
        print("PASS", name)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failed += 1
        print("FAIL", name, repr(e))


class Service:
    def __init__(self, url, shards="2"):
        self.web = tempfile.mkdtemp(prefix="weave-web-")
        open(os.path.join(self.web, "index.html"), "w").write("x")
        self.proc = subprocess.Popen(
            [BIN, "--port", "0", "--web-dir", self.web, "--database-url", url],
            env=dict(os.environ, SHARDS=shards), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.banner = ""
        while True:
            line = self.proc.stdout.readline()
            assert line, self.proc.stderr.read()
            self.banner += line
            if line.startswith("listening on http://127.0.0.1:"):
                self.port = int(line.rsplit(":", 1)[1])
                break

    def call(self, method, path, body=None, raw=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        c.request(method, path, body=data,
                  headers={"Content-Type": "application/json"} if data is not None else {})
        r = c.getresponse()
        text = r.read()
        c.close()
        return r.status, dict(r.getheaders()), json.loads(text) if text else None

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(timeout=20)
        err = self.proc.stderr.read()
        shutil.rmtree(self.web)
        assert rc == 0, (rc, err[-2000:])
        for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
            assert bad not in err, err[-3000:]


def crud(svc):
    st, _, body = svc.call("GET", "/users")
    assert st == 200 and body == [], (st, body)
    st, h, alice = svc.call("POST", "/users", {"name": "Alice"})
    assert st == 201 and alice["name"] == "Alice" and alice["id"] > 0, (st, alice)
    assert h["Location"] == "/users/%d" % alice["id"], h
    st, _, got = svc.call("GET", "/users/%d" % alice["id"])
    assert st == 200 and got == alice, got
    st, _, bob = svc.call("POST", "/users", {"name": "Bøb 日本"})
    assert st == 201 and bob["name"] == "Bøb 日本", bob
    st, _, body = svc.call("GET", "/users")
    assert body == [alice, bob], body
    st, _, body = svc.call("GET", "/users/%d" % (bob["id"] + 1000))
    assert st == 404, st
    # FastAPI's 422 for a path id that is not an integer (was weave's 400)
    st, _, body = svc.call("GET", "/users/abc")
    assert st == 422 and body == {"detail": [{
        "type": "int_parsing", "loc": ["path", "id"], "input": "abc",
        "msg": "Input should be a valid integer, unable to parse string as an integer"}]}, (st, body)


def validation(svc):
    for payload, field, kind in (({}, "name", "missing"),
                                 ({"name": 5}, "name", "string_type"),
                                 ({"name": ""}, "name", "string_too_short"),
                                 ({"name": "x" * 51}, "name", "string_too_long"),
                                 ([1, 2], None, "model_attributes_type")):
        st, _, body = svc.call("POST", "/users", payload)
        assert st == 422, (payload, st, body)
        d = body["detail"][0]
        assert d["type"] == kind and d["loc"] == (["body", field] if field else ["body"]), body
    # 50 characters of 2-byte UTF-8 are fine: characters are counted, not bytes
    st, _, body = svc.call("POST", "/users", {"name": "é" * 50})
    assert st == 201 and body["name"] == "é" * 50, (st, body)
    st, _, body = svc.call("POST", "/users", raw="{not json")
    # FastAPI's 422 json_invalid (was a 400) at the byte the reader stopped
    # at; the whole message, once: the parser's words, not garbled
    assert st == 422 and body == {"detail": [{
        "type": "json_invalid", "loc": ["body", 1], "msg": "JSON decode error",
        "ctx": {"error": "line 1, column 2 (byte 1): expected a string as object key"}}]}, (st, body)
    st, _, body = svc.call("GET", "/users")
    assert all(u["name"] for u in body) and not any(u["name"] == "" for u in body)


def concurrent_creates(svc):
    ids, errors = [], []

    def make(i):
        try:
            st, _, body = svc.call("POST", "/users", {"name": "user %d" % i})
            assert st == 201, (st, body)
            ids.append(body["id"])
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=make, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(set(ids)) == 50, ids
    # every shard sees every row: ask many times over fresh connections
    for _ in range(10):
        st, _, body = svc.call("GET", "/users")
        have = {u["id"] for u in body}
        assert set(ids) <= have, "a shard misses rows"


def readyz(svc):
    st, _, body = svc.call("GET", "/readyz")
    assert st == 200 and body["checks"]["database"] == "ok", body


def sqlite_backend(tmp):
    path = os.path.join(tmp, "users.db")
    svc = Service("sqlite://" + path)
    try:
        assert "database" in svc.banner and path in svc.banner, svc.banner
        crud(svc)
        validation(svc)
        concurrent_creates(svc)
        readyz(svc)
        st, _, before = svc.call("GET", "/users")
    finally:
        svc.stop()
    # the file keeps them across a restart (the table is not created twice)
    svc = Service("sqlite://" + path, shards="1")
    try:
        st, _, after = svc.call("GET", "/users")
        assert after == before, (len(before), len(after))
    finally:
        svc.stop()


def postgres_backend(url):
    r = subprocess.run(["psql", url, "-q", "-c", "DROP TABLE IF EXISTS users"],
                       capture_output=True, text=True, env=dict(os.environ, PGCONNECT_TIMEOUT="5"))
    assert r.returncode == 0, r.stderr
    svc = Service(url)
    try:
        assert "postgres://app:***@127.0.0.1:" in svc.banner, svc.banner
        assert "app:app@" not in svc.banner, svc.banner
        crud(svc)
        validation(svc)
        concurrent_creates(svc)
        readyz(svc)
    finally:
        svc.stop()
    r = subprocess.run(["psql", url, "-Atqc", "SELECT count(*) FROM users"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and int(r.stdout) == 53, (r.stdout, r.stderr)


def bad_database_stops_the_start(tmp):
    r = subprocess.run([BIN, "--port", "0", "--database-url",
                        "sqlite://" + os.path.join(tmp, "no", "such", "dir", "x.db")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "database" in r.stderr, (r.returncode, r.stderr[-500:])
    r = subprocess.run([BIN, "--port", "0", "--database-url", "mysql://x"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "mysql" in r.stderr, (r.returncode, r.stderr[-500:])


def password_is_never_printed():
    # a database that refuses: the start-up error names it, its password hidden
    r = subprocess.run([BIN, "--port", "0", "--shards", "1", "--database-url",
                        "postgres://nobody:secret@127.0.0.1:1/x"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "secret" not in r.stdout + r.stderr, r.stdout + r.stderr
    errors = [line.split("ERROR [shard 0] ", 1)[1] for line in r.stderr.splitlines()
              if "ERROR [shard 0] " in line]
    assert errors == [
        'startup failed: database postgres://nobody:***@127.0.0.1:1/x: postgres: pg: connection '
        'to server at "127.0.0.1", port 1 failed: Connection refused Is the server running on '
        'that host and accepting TCP/IP connections?'], r.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="weave-users-")
    try:
        case("sqlite_backend", sqlite_backend, tmp)
        url = os.environ.get("WEAVE_TEST_PG_URL")
        if url:
            case("postgres_backend", postgres_backend, url)
        else:
            global failed
            failed += 1
            print("FAIL postgres_backend: WEAVE_TEST_PG_URL is not set (make test starts "
                  "PostgreSQL: scripts/pg_test_server.sh)")
        case("bad_database_stops_the_start", bad_database_stops_the_start, tmp)
        case("password_is_never_printed", password_is_never_printed)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("test_users: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
