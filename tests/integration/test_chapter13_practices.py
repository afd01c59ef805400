#!/usr/bin/python3
"""§13.13 in the chapter's service (examples/chapter13/s13_13_practices.c):
GET /me behind a bearer JWT (tokens made by PyJWT: HS256 with JWT_SECRET,
RS256 and ES256 from a JWK Set file, issuer and audience checked), GET
/admin/config behind an API key (header or query, passwords redacted in
what it shows), both answering 503 when not configured; RATE_LIMIT per
client address with the probes exempt, in the process and shared by two
replicas through a throwaway redis-server (scripts/redis_test_server.sh);
MAX_IN_FLIGHT sheds what a shard cannot take.
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import jwt  # noqa: E402  (python3-jwt)
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

import httptest  # noqa: E402
from httptest import check, eq, free_port  # noqa: E402
from test_chapter13 import req, start, stop  # noqa: E402

CTL = os.path.join(ROOT, "scripts", "redis_test_server.sh")
DIR = tempfile.mkdtemp(prefix="weave-c13-practices-")
SECRET = "0123456789abcdef0123456789abcdef-chapter13"


class Service:
    """The service on a free port, in-memory database, no sleep in its
    handlers beyond 50 ms; stopped on leaving (exit 0, sanitizer clean)."""

    def __init__(self, env, delay_ms=50, shards="2"):
        self.dir = tempfile.mkdtemp(dir=DIR)
        self.proc, self.port = start(self.dir, delay_ms, shards=shards, args=(
            "--database-url", "sqlite::memory:", "--files-dir", self.dir), env=env)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            stop(self.proc)
        elif self.proc.poll() is None:
            self.proc.kill()

    def get(self, path, headers=None):
        st, h, body = req(self.port, "GET", path, headers=headers)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = body
        return st, h, doc


def bearer(token):
    return {"Authorization": "Bearer " + token}


def claims(**extra):
    c = {"sub": "ada", "scope": "profile", "exp": int(time.time()) + 300}
    c.update(extra)
    return c


def b64(n, size=None):
    raw = n.to_bytes(size or (n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256_by_hand(payload, key):
    """What PyJWT refuses to make: an HS256 token keyed with a public key."""
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=")
    signing = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(payload)
    sig = base64.urlsafe_b64encode(hmac.new(key, signing, hashlib.sha256).digest()).rstrip(b"=")
    return (signing + b"." + sig).decode()


def test_unconfigured_routes_answer_503_never_open():
    with Service({}) as s:
        st, _, doc = s.get("/me", bearer(jwt.encode(claims(), SECRET, algorithm="HS256")))
        eq(st, 503, "GET /me without keys")
        check("JWT_SECRET" in doc["detail"], "says what to set: %r", doc)
        st, _, doc = s.get("/admin/config", {"X-API-Key": "anything"})
        eq(st, 503, "GET /admin/config without keys")
        check("API_KEYS" in doc["detail"], "says what to set: %r", doc)


def test_me_behind_an_hs256_bearer_token():
    with Service({"JWT_SECRET": SECRET, "JWT_ISSUER": "https://auth.example"}) as s:
        good = jwt.encode(claims(iss="https://auth.example"), SECRET, algorithm="HS256")
        st, _, doc = s.get("/me", bearer(good))
        eq(st, 200, "a valid token: %r" % doc)
        eq((doc["sub"], doc["scope"]), ("ada", "profile"), "the verified claims")
        st, h, doc = s.get("/me")
        eq((st, h.get("www-authenticate")), (401, "Bearer"), "no token")
        eq(doc, {"detail": "Not authenticated"}, "no token's body")
        cases = {
            "expired": jwt.encode(claims(iss="https://auth.example", exp=int(time.time()) - 600),
                                  SECRET, algorithm="HS256"),
            "wrong secret": jwt.encode(claims(iss="https://auth.example"),
                                       SECRET + "x", algorithm="HS256"),
            "wrong issuer": jwt.encode(claims(iss="https://evil.example"), SECRET,
                                       algorithm="HS256"),
            "an audience nobody configured": jwt.encode(
                claims(iss="https://auth.example", aud="other"), SECRET, algorithm="HS256"),
            "alg none": jwt.encode(claims(iss="https://auth.example"), None, algorithm="none"),
            "garbage": "not.a.token",
        }
        for what, token in cases.items():
            st, h, doc = s.get("/me", bearer(token))
            eq(st, 401, what)
            check(h.get("www-authenticate", "").startswith('Bearer error="invalid_token"'),
                  "%s: challenge %r", what, h.get("www-authenticate"))
            check(doc.get("detail"), "%s: a reason: %r", what, doc)


def test_me_with_rs256_and_es256_keys_from_a_jwks_file():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rn = rsa_key.public_key().public_numbers()
    en = ec_key.public_key().public_numbers()
    jwks = {"keys": [
        {"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": b64(rn.n), "e": b64(rn.e)},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(en.x, 32),
         "y": b64(en.y, 32)},
    ]}
    path = os.path.join(DIR, "jwks.json")
    with open(path, "w") as f:
        json.dump(jwks, f)
    rsa_pem = rsa_key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    with Service({"JWT_JWKS_FILE": path, "JWT_AUDIENCE": "chapter13"}) as s:
        for alg, key, kid in (("RS256", rsa_key, "r1"), ("ES256", ec_key, "e1")):
            token = jwt.encode(claims(aud="chapter13"), key, algorithm=alg, headers={"kid": kid})
            st, _, doc = s.get("/me", bearer(token))
            eq((st, doc.get("sub")), (200, "ada"), alg)
        # the classic confusion: the RSA public key's PEM used as an HMAC secret
        pub = rsa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
        forged = hs256_by_hand(claims(aud="chapter13"), pub)
        st, _, _ = s.get("/me", bearer(forged))
        eq(st, 401, "an HS256 token keyed with the RSA public key")
        st, _, _ = s.get("/me", bearer(jwt.encode(claims(), rsa_pem, algorithm="RS256",
                                                  headers={"kid": "r1"})))
        eq(st, 401, "a token without the audience")


def test_admin_config_behind_an_api_key_redacts_passwords():
    env = {"API_KEYS": "ops:k3y-one,ci:k3y-two",
           "DOWNSTREAM_URL": "http://weave:hunter2@127.0.0.1:%d/data" % free_port()}
    with Service(env) as s:
        st, _, doc = s.get("/admin/config", {"X-API-Key": "k3y-two"})
        eq(st, 200, "the right key: %r" % doc)
        eq(doc["api_key"], "ci", "the key's name")
        check("hunter2" not in json.dumps(doc) and "weave" in doc["downstream"],
              "the downstream URL, its password redacted: %r", doc["downstream"])
        st, _, doc = s.get("/admin/config?api_key=k3y-one")
        eq((st, doc.get("api_key")), (200, "ops"), "the key as a query parameter")
        st, h, doc = s.get("/admin/config")
        eq((st, doc), (401, {"detail": "Not authenticated"}), "no key")
        check(h.get("www-authenticate", "").startswith("APIKey"), "challenge: %r", h)
        for wrong in ("k3y-on", "k3y-one!", "K3Y-ONE", "", "x" * 300):
            st, _, doc = s.get("/admin/config", {"X-API-Key": wrong})
            eq(st, 401, "wrong key %r" % wrong)


def burst(s, n, path="/api/sections"):
    return [s.get(path)[:2] for _ in range(n)]


def test_rate_limit_per_client_with_the_probes_exempt():
    with Service({"RATE_LIMIT": "1", "RATE_BURST": "3"}) as s:
        got = burst(s, 5)
        eq([st for st, _ in got], [200, 200, 200, 429, 429], "3 allowed, then limited")
        h = got[3][1]
        check(int(h["retry-after"]) >= 1, "Retry-After: %r", h)
        eq(h.get("ratelimit-policy"), '"chapter13";q=3;w=3', "the policy")
        eq([st for st, _ in burst(s, 5, "/healthz")], [200] * 5, "probes are never limited")
        st, _, _ = s.get("/metrics")
        eq(st, 200, "nor /metrics")


def test_rate_limit_shared_by_two_replicas_through_redis():
    url = subprocess.run(["bash", CTL, "start", DIR + "/redis", str(free_port())], check=True,
                         capture_output=True, text=True, timeout=60).stdout.strip() + "/0"
    try:
        env = {"RATE_LIMIT": "1", "RATE_BURST": "4", "CACHE_URL": url}
        with Service(env) as a, Service(env) as b:
            got = [x.get("/api/sections")[0] for x in (a, b, a, b, a, b)]
            eq(sorted(got), [200] * 4 + [429] * 2, "one bucket of 4 for both: %r" % got)
    finally:
        subprocess.run(["bash", CTL, "stop", DIR + "/redis"], capture_output=True)


def test_max_in_flight_sheds_the_excess_at_once():
    with Service({"MAX_IN_FLIGHT": "2"}, delay_ms=1500, shards="1") as s:
        results = []

        def one():
            t0 = time.monotonic()
            st, h, _ = req(s.port, "GET", "/async-endpoint")
            results.append((st, h.get("retry-after"), time.monotonic() - t0))

        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = [r for r in results if r[0] == 200]
        shed = [r for r in results if r[0] == 503]
        eq((len(ok), len(shed)), (2, 4), "2 served, 4 shed: %r" % results)
        check(all(r[1] == "1" and r[2] < 1.0 for r in shed),
              "the shed ones answered at once with Retry-After: 1: %r", shed)
        eq(s.get("/async-endpoint")[0], 200, "served again once the flood is over")


if __name__ == "__main__":
    code = 1
    try:
        httptest.run(globals())
    except SystemExit as e:
        code = e.code
    finally:
        shutil.rmtree(DIR, ignore_errors=True)
    sys.stdout.flush()
    os._exit(code)
