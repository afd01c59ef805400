#!/usr/bin/python3
"""The served API descriptions checked by an OpenAPI 3.1 validator from npm
(tests/openapi: @seriousme/openapi-schema-validator on the official schemas,
offline; Ajv for the bodies), against two live servers:

  - openapi_test_server: documented routes validated through the schema
    module, groups behind a bearer JWT, an API key and a rate limit; the
    contract test runs every documented operation (valid and invalid
    requests) and checks each answer against the document;
  - chapter13: its /openapi.json is valid, and /docs serves Swagger UI
    when the page has been built (scripts/build_web.sh).

Installs tests/openapi/node_modules with `npm ci` when it is missing or
older than the lock. Prints "openapi: N passed, M failed" (node's counts).
"""
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import test_chapter13 as c13  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("BUILD_DIR", "build/release"))
NODE_DIR = os.path.join(ROOT, "tests", "openapi")
DOCS_DIR = os.path.join(ROOT, "examples", "chapter13", "web", "dist", "docs")
HMAC_KEY = "openapi-test-hmac-key-0123456789abcdef"
API_KEY = "openapi-test-api-key-0123456789"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs256(claims):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(HMAC_KEY.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64url(sig))


def npm_ci():
    installed = os.path.join(NODE_DIR, "node_modules", ".package-lock.json")
    lock = os.path.join(NODE_DIR, "package-lock.json")
    if not os.path.exists(installed) or os.path.getmtime(lock) > os.path.getmtime(installed):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=NODE_DIR, check=True)
        os.utime(installed)


def start_test_server(docs):
    env = dict(os.environ, PORT="0", HMAC_KEY=HMAC_KEY, API_KEY=API_KEY)
    if docs:
        env["DOCS_DIR"] = DOCS_DIR
    proc = subprocess.Popen([os.path.join(BUILD, "openapi_test_server")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening on (\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit("openapi_test_server: no port; stderr:\n" + proc.stderr.read())
    return proc, int(m.group(1))


def main():
    npm_ci()
    docs = os.path.exists(os.path.join(DOCS_DIR, "swagger-ui-bundle.js"))
    if not docs:
        print("note: %s not built (scripts/build_web.sh): /docs not checked" % DOCS_DIR)
    web = os.path.dirname(DOCS_DIR) if docs else tempfile.mkdtemp(prefix="weave-openapi-")
    ts, ts_port = start_test_server(docs)
    ch, ch_port = c13.start(web, 0, args=("--database-url", "sqlite::memory:"))
    token = hs256({"sub": "alice", "scope": "me:read", "exp": int(time.time()) + 600})
    servers = [
        {"name": "openapi_test_server", "base": "http://127.0.0.1:%d" % ts_port,
         "contract": True, "docs": docs, "bearer": token, "apiKey": API_KEY},
        {"name": "chapter13", "base": "http://127.0.0.1:%d" % ch_port, "contract": True,
         "minDocumented": 0, "docs": docs},
    ]
    try:
        out = subprocess.run(["node", "--test", "--test-reporter=tap", "openapi.test.mjs"],
                             cwd=NODE_DIR, env=dict(os.environ, OPENAPI_SERVERS=json.dumps(servers)),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=300)
    finally:
        ts.terminate()
        ts.wait(timeout=10)
        c13.stop(ch)
    print(out.stdout)
    passed = re.search(r"^# pass (\d+)", out.stdout, re.M)
    failed = re.search(r"^# fail (\d+)", out.stdout, re.M)
    p = int(passed.group(1)) if passed else 0
    f = int(failed.group(1)) if failed else 1
    if out.returncode != 0 and f == 0:
        f = 1
    print("openapi: %d passed, %d failed" % (p, f))
    return 0 if f == 0 and out.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
