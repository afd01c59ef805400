"""JSON request bodies and JSON responses through the HTTP server: a body
parsed with wv_json_parse, validation failures as 422 naming the field,
malformed JSON as 400 with the parser's position, and the response written
with the streaming writer (escaping intact)."""
import http.client
import json
import os
import subprocess
import sys

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "http_test_server")


def post(port, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("POST", "/json/users", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), data


def main():
    proc = subprocess.Popen([BIN], env=dict(os.environ, PORT="0", WEAVE_SHARDS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().split()[-1])
    try:
        st, ct, data = post(port, json.dumps({"name": "Al \"the\" \u00e9\n", "age": 30}))
        assert st == 201 and ct == "application/json", (st, ct)
        assert json.loads(data) == {"id": 1, "name": "Al \"the\" \u00e9\n", "age": 30}, data

        st, _, data = post(port, json.dumps({"age": 30}))
        assert st == 422 and "name" in json.loads(data)["detail"], (st, data)

        st, _, data = post(port, json.dumps({"name": "x", "age": "thirty"}))
        assert st == 422 and "age" in json.loads(data)["detail"], (st, data)

        st, _, data = post(port, b'{"name": "x",')
        detail = json.loads(data)["detail"]
        assert st == 400 and "line 1" in detail, (st, data)

        st, _, data = post(port, b'\xff\xfe')
        assert st == 400, (st, data)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        err = proc.stderr.read()
    assert proc.returncode == 0, err
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in err, err
    print("test_json_bodies: ok")


if __name__ == "__main__":
    sys.exit(main())
