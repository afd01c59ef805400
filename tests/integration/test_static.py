"""Static files (wv_static, wv_res_file) on the HTTP test server: content
types, ETag/Last-Modified and 304s, single ranges (206, 416), HEAD, index
files, large files through sendfile, compression of text files, and every
way out of the mounted directory refused."""
import email.utils
import gzip
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile

BIN = os.path.join(os.environ.get("BUILD_DIR", "build/release"), "http_test_server")
passed = failed = 0


def start(static_dir):
    proc = subprocess.Popen([BIN], env=dict(os.environ, PORT="0", WEAVE_SHARDS="1",
                                            STATIC_DIR=static_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("listening on "), line
    return proc, int(line.split()[-1])


def get(port, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def raw(port, path):
    """Send a path exactly as given (http.client would normalise nothing,
    but be explicit about what goes on the wire)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    return int(data.split(b" ", 2)[1])


def case(fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print("PASS", fn.__name__)
    except Exception as e:  # noqa: BLE001 - report every failure
        failed += 1
        print("FAIL", fn.__name__, repr(e))


def main():
    d = tempfile.mkdtemp(prefix="weave-static-")
    outside = tempfile.mkdtemp(prefix="weave-outside-")
    try:
        os.makedirs(os.path.join(d, "sub"))
        big = os.urandom(3 * 1024 * 1024 + 7)
        with open(os.path.join(d, "big.bin"), "wb") as f:
            f.write(big)
        css = ("body { color: red; }\n" * 200).encode()
        with open(os.path.join(d, "sub", "site.css"), "wb") as f:
            f.write(css)
        with open(os.path.join(d, "index.html"), "wb") as f:
            f.write(b"<h1>home</h1>")
        with open(os.path.join(d, "sub", "index.html"), "wb") as f:
            f.write(b"<h1>sub</h1>")
        with open(os.path.join(outside, "secret.txt"), "wb") as f:
            f.write(b"secret")
        os.symlink(os.path.join(outside, "secret.txt"), os.path.join(d, "leak.txt"))
        proc, port = start(d)
        try:
            def content_types_follow_the_extension():
                st, h, body = get(port, "/static/sub/site.css", {"Accept-Encoding": "identity"})
                assert st == 200 and body == css, st
                assert h["content-type"] == "text/css; charset=utf-8", h
                st, h, _ = get(port, "/static/big.bin", {"Range": "bytes=0-0"})
                assert h["content-type"] == "application/octet-stream", h

            def large_file_arrives_whole():
                st, h, body = get(port, "/static/big.bin")
                assert st == 200 and body == big, (st, len(body))
                assert h["content-length"] == str(len(big)) and h["accept-ranges"] == "bytes"

            def etag_and_last_modified_give_304():
                st, h, _ = get(port, "/static/sub/site.css")
                etag, lm = h["etag"], h["last-modified"]
                assert email.utils.parsedate_to_datetime(lm) is not None
                st, h2, body = get(port, "/static/sub/site.css", {"If-None-Match": etag})
                assert st == 304 and body == b"" and h2["etag"] == etag, (st, h2)
                st, _, _ = get(port, "/static/sub/site.css", {"If-None-Match": 'W/' + etag})
                assert st == 304, st
                st, _, _ = get(port, "/static/sub/site.css", {"If-None-Match": '"other", ' + etag})
                assert st == 304, st
                st, _, _ = get(port, "/static/sub/site.css", {"If-Modified-Since": lm})
                assert st == 304, st
                st, _, body = get(port, "/static/sub/site.css",
                                  {"If-None-Match": '"other"', "Accept-Encoding": "identity"})
                assert st == 200 and body == css, st

            def single_ranges_give_206():
                for rng, lo, hi in (("bytes=0-9", 0, 9), ("bytes=100-", 100, len(big) - 1),
                                    ("bytes=-50", len(big) - 50, len(big) - 1),
                                    ("bytes=1000-2000000", 1000, 2000000)):
                    st, h, body = get(port, "/static/big.bin", {"Range": rng})
                    assert st == 206, (rng, st)
                    assert body == big[lo:hi + 1], (rng, len(body))
                    assert h["content-range"] == "bytes %d-%d/%d" % (lo, hi, len(big)), h

            def unsatisfiable_range_is_416():
                st, h, _ = get(port, "/static/big.bin", {"Range": "bytes=%d-" % (len(big) + 5)})
                assert st == 416 and h["content-range"] == "bytes */%d" % len(big), (st, h)

            def multiple_ranges_or_stale_if_range_get_the_whole_file():
                st, _, body = get(port, "/static/big.bin", {"Range": "bytes=0-1,5-6"})
                assert st == 200 and len(body) == len(big), st
                st, _, body = get(port, "/static/big.bin", {"Range": "bytes=0-1",
                                                            "If-Range": '"stale"'})
                assert st == 200 and len(body) == len(big), st

            def head_has_the_length_and_no_body():
                st, h, body = get(port, "/static/big.bin", method="HEAD")
                assert st == 200 and body == b"" and h["content-length"] == str(len(big)), h

            def directories_serve_their_index():
                assert get(port, "/static/")[2] == b"<h1>home</h1>"
                assert get(port, "/static")[2] == b"<h1>home</h1>"
                assert get(port, "/static/sub/")[2] == b"<h1>sub</h1>"

            def text_files_are_compressed_when_asked():
                st, h, body = get(port, "/static/sub/site.css", {"Accept-Encoding": "gzip"})
                assert st == 200 and h.get("content-encoding") == "gzip", h
                assert gzip.decompress(body) == css
                assert "Accept-Encoding" in h.get("vary", "")

            def missing_files_are_404():
                assert get(port, "/static/nope.txt")[0] == 404
                assert get(port, "/static/sub/nope/deeper")[0] == 404

            def nothing_outside_the_directory_is_served():
                for p in (b"/static/../test_static.py", b"/static/%2e%2e/%2e%2e/etc/passwd",
                          b"/static/sub/../../etc/passwd", b"/static/..%2f..%2fetc%2fpasswd",
                          b"/static/leak.txt", b"/static/%00.txt", b"/static/sub%5c..%5c..%5cx"):
                    st = raw(port, p)
                    assert st in (400, 404), (p, st)

            for fn in (content_types_follow_the_extension, large_file_arrives_whole,
                       etag_and_last_modified_give_304, single_ranges_give_206,
                       unsatisfiable_range_is_416,
                       multiple_ranges_or_stale_if_range_get_the_whole_file,
                       head_has_the_length_and_no_body, directories_serve_their_index,
                       text_files_are_compressed_when_asked, missing_files_are_404,
                       nothing_outside_the_directory_is_served):
                case(fn)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            err = proc.stderr.read()
        def server_exits_cleanly():
            assert proc.returncode == 0, (proc.returncode, err)
            for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
                assert bad not in err, err
        case(server_exits_cleanly)
    finally:
        shutil.rmtree(d)
        shutil.rmtree(outside)
    print("test_static: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
