"""weave's auth middleware (wv_auth_jwt, wv_auth_api_key) on a real server
(tests/integration/auth_test_server.c), with tokens made by PyJWT 2.6
(python3-jwt, keys by python3-cryptography) and real requests from
http.client: every algorithm verified, every refusal's status,
WWW-Authenticate challenge and {"detail"} body, the claims the handler
saw, scopes, size limits, API keys of every wrong length, and tokens
weave signs (wv_jwt_sign) decoded by PyJWT."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httptest  # noqa: E402
from httptest import check, eq  # noqa: E402

import jwt  # noqa: E402  (python3-jwt)
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from jwt.algorithms import ECAlgorithm, RSAAlgorithm  # noqa: E402

httptest.BIN = os.path.join(httptest.BUILD_DIR, "auth_test_server")
ISS, AUD = "https://id.example", "weave-api"
HKEY = "hmac-key-for-the-auth-test-" + "0123456789abcdef" * 2

DIR = tempfile.mkdtemp(prefix="weave-auth-")
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_J_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC1 = ec.generate_private_key(ec.SECP256R1())
EC2 = ec.generate_private_key(ec.SECP256R1())
EC3 = ec.generate_private_key(ec.SECP384R1())
API_KEYS = {"ci-bot": "ci-3f9a1c2b7d4e5f60718293a4b5c6d7e8", "ops": "k"}


def pem_private(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                           serialization.NoEncryption())


def pem_public(k):
    return k.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)


def write(name, data):
    path = os.path.join(DIR, name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


def jwk(key, kid, alg=None):
    if isinstance(key, rsa.RSAPrivateKey):
        d = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    else:
        d = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    d["kid"] = kid
    if alg:
        d["alg"] = alg
    return d


def server():
    if httptest._shared is None or not httptest._shared.alive():
        jwks = {"keys": [
            jwk(EC1, "ec-1", "ES256"), jwk(EC2, "ec-2"), jwk(EC3, "ec-3"),
            jwk(RSA_J_KEY, "rsa-j"),
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
        ]}
        keys_file = "# name key\n" + "".join("%s %s\n" % kv for kv in API_KEYS.items()) + \
            "\n   # an indented comment\nanonymous-key-9876543210\n"
        httptest._shared = httptest.Server(
            HMAC_KEY_FILE=write("hmac.key", HKEY + "\n"),
            RSA_PUB_FILE=write("rsa.pub.pem", pem_public(RSA_KEY)),
            JWKS_FILE=write("jwks.json", json.dumps(jwks)),
            ISSUER=ISS, AUDIENCE=AUD,
            API_KEYS_FILE=write("api.keys", keys_file),
            SIGN_HS_KEY_FILE=write("sign.hs", HKEY),
            SIGN_RSA_KEY_FILE=write("sign.rsa.pem", pem_private(RSA_KEY)),
            SIGN_EC_KEY_FILE=write("sign.ec.pem", pem_private(EC1)))
    return httptest._shared


def request(path, headers=None, method="GET", body=None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", server().port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = data
    return r.status, hdrs, doc


def bearer(tok):
    return {"Authorization": "Bearer " + (tok.decode() if isinstance(tok, bytes) else tok)}


def claims(**kw):
    now = int(time.time())
    c = {"sub": "user-42", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 300}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def hs_raw(header, payload, key=HKEY.encode()):
    """A token with any header and payload, HS256-signed by hand (PyJWT
    will not sign what these tests need it to)."""
    h = b64(json.dumps(header).encode()) if isinstance(header, dict) else header
    p = b64(json.dumps(payload).encode()) if isinstance(payload, dict) else payload
    sig = hmac.new(key, ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64(sig))


def expect_invalid(path, tok, reason):
    st, h, doc = request(path, bearer(tok))
    eq(st, 401, "status for %r" % reason)
    www = h.get("www-authenticate", "")
    check(www.startswith('Bearer error="invalid_token", error_description="'), "challenge %r", www)
    desc = www.split('error_description="', 1)[1][:-1]
    check(reason in desc, "wanted %r in %r", reason, desc)
    eq(doc, {"detail": desc}, "body")


# ------------------------------------------------------------------ tests

def test_a_public_route_needs_nothing():
    st, _, doc = request("/public")
    eq((st, doc), (200, {"public": True}))


def test_no_bearer_credentials_is_401_with_a_bare_challenge():
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer"}, {"Authorization": "Token abc.def.ghi"},
                    {"Authorization": "Bearerabc.def.ghi"}):
        st, h, doc = request("/jwt/me", headers)
        eq(st, 401, "status for %r" % headers)
        eq(h.get("www-authenticate"), "Bearer", "challenge for %r" % headers)
        eq(doc, {"detail": "Not authenticated"})


def test_pyjwt_tokens_of_every_algorithm_reach_the_handler_with_their_claims():
    big = 12345678901234567890123  # past int64: the claim's digits come back as written
    extra = {"name": "Zoë", "n": big, "roles": ["a", "b"], "nested": {"x": [1, 2.5, None, True]}}
    cases = [("HS256", HKEY, None), ("HS384", HKEY, None), ("HS512", HKEY, None)]
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        cases.append((alg, pem_private(RSA_KEY), None))
    cases += [("ES256", pem_private(EC1), "ec-1"), ("ES256", pem_private(EC2), "ec-2"),
              ("ES384", pem_private(EC3), "ec-3"), ("RS256", pem_private(RSA_J_KEY), "rsa-j"),
              ("PS256", pem_private(RSA_J_KEY), "rsa-j")]
    for alg, key, kid in cases:
        c = claims(sub="u-" + alg, **extra)
        tok = jwt.encode(c, key, algorithm=alg, headers={"kid": kid} if kid else None)
        st, h, doc = request("/jwt/me", bearer(tok))
        eq(st, 200, "%s %s: %r %r" % (alg, kid, doc, h.get("www-authenticate")))
        eq(doc["sub"], "u-" + alg)
        eq(doc["claims"], c, "claims the handler saw (%s)" % alg)
    # "bearer" in any case (RFC 9110 11.1), several spaces before the token
    tok = jwt.encode(claims(), HKEY, algorithm="HS256")
    for scheme in ("bearer ", "BEARER ", "Bearer    "):
        st, _, doc = request("/jwt/me", {"Authorization": scheme + tok})
        eq((st, doc["sub"]), (200, "user-42"), scheme)


def test_every_refusal_is_401_invalid_token_with_its_reason():
    now = int(time.time())
    rsa_pem = pem_private(RSA_KEY)
    cases = [
        (jwt.encode(claims(exp=now - 60), HKEY, algorithm="HS256"), "expired"),
        (jwt.encode(claims(nbf=now + 600), HKEY, algorithm="HS256"), "not valid yet"),
        (jwt.encode(claims(iat=now + 600), HKEY, algorithm="HS256"), "issued in the future"),
        (jwt.encode(claims(iss="https://evil.example"), HKEY, algorithm="HS256"), "issuer"),
        (jwt.encode(claims(iss=None), HKEY, algorithm="HS256"), "no iss claim"),
        (jwt.encode(claims(aud="other"), HKEY, algorithm="HS256"), "audience"),
        (jwt.encode(claims(aud=["other", "more"]), HKEY, algorithm="HS256"), "audience"),
        (jwt.encode(claims(aud=None), HKEY, algorithm="HS256"), "no aud claim"),
        (jwt.encode(claims(sub=None), HKEY, algorithm="HS256"), "no sub claim"),
        (jwt.encode(claims(), "another-key-of-enough-length-0123456789", algorithm="HS256"),
         "signature verification failed"),
        (jwt.encode(claims(), None, algorithm="none"), "alg none"),
        (jwt.encode(claims(), pem_private(EC1), algorithm="ES256", headers={"kid": "nope"}),
         "no ES256 key with kid nope"),
        (jwt.encode(claims(), pem_private(EC1), algorithm="ES256", headers={"kid": "ed"}),
         "no ES256 key with kid ed"),
        # ec-1 is bound to ES256 by its JWK's alg
        (jwt.encode(claims(), pem_private(EC3), algorithm="ES384", headers={"kid": "ec-1"}),
         "no ES384 key with kid ec-1"),
        # the right key under another kid
        (jwt.encode(claims(), pem_private(EC1), algorithm="ES256", headers={"kid": "ec-2"}),
         "signature verification failed"),
        (hs_raw({"alg": "HS256", "crit": ["b64"], "b64": False}, claims()), "crit"),
        (hs_raw({"alg": "HS256"}, b64(b"[1,2,3]")), "not a JSON object"),
        (hs_raw({"alg": "HS256"}, b64(b'{"sub":"a",}')), "not a JSON object"),
        (hs_raw(b64(b"{'alg':'HS256'}"), claims()), "header is not a JSON object"),
        (hs_raw("eyJhbGciOiJIUzI1NiJ9=", claims()), "not base64url"),
        ("a.b", "three parts"),
        ("..", "empty part"),
        ("...", "three parts"),
        ("x" * 100, "three parts"),
    ]
    tampered = jwt.encode(claims(), rsa_pem, algorithm="RS256")
    h, p, s = tampered.split(".")
    body = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    body["sub"] = "admin"
    cases.append(("%s.%s.%s" % (h, b64(json.dumps(body).encode()), s),
                  "signature verification failed"))
    cases.append((tampered[:-2], "signature"))
    for tok, reason in cases:
        expect_invalid("/jwt/me", tok, reason)


def test_hs256_made_with_the_rsa_public_key_is_refused():
    # the classic algorithm confusion: /rsa accepts HS256 and RS256 and has
    # only an RSA public key, whose PEM an attacker knows
    pub = pem_public(RSA_KEY)
    forged = hs_raw({"alg": "HS256", "typ": "JWT"}, claims(sub="admin", aud=None), key=pub)
    expect_invalid("/rsa/me", forged, "no key for algorithm HS256")
    good = jwt.encode(claims(sub="real", aud=None), pem_private(RSA_KEY), algorithm="RS256")
    st, _, doc = request("/rsa/me", bearer(good))
    eq((st, doc["sub"]), (200, "real"))
    # /rsa configures no audience: a token meant for one is not for it (RFC 7519 4.1.3)
    expect_invalid("/rsa/me", jwt.encode(claims(), pem_private(RSA_KEY), algorithm="RS256"),
                   "expects none")


def test_scopes_missing_is_403_insufficient_scope():
    ok = [{"scope": "items:read items:write"}, {"scope": "profile items:write items:read"},
          {"scp": ["items:write", "items:read"]}]
    for extra in ok:
        tok = jwt.encode(claims(aud=None, **extra), HKEY, algorithm="HS256")
        st, _, doc = request("/scoped/items", bearer(tok))
        eq(st, 200, "scopes %r" % extra)
    for extra in ({"scope": "items:read"}, {}, {"scp": ["items:read items:write"]},
                  {"scope": "items:readitems:write"}):
        tok = jwt.encode(claims(aud=None, **extra), HKEY, algorithm="HS256")
        st, h, doc = request("/scoped/items", bearer(tok))
        eq(st, 403, "scopes %r" % extra)
        eq(h.get("www-authenticate"),
           'Bearer error="insufficient_scope", scope="items:read items:write"')
        eq(doc, {"detail": "Not enough permissions"})
    # a bad token is still 401, not 403
    expect_invalid("/scoped/items", jwt.encode(claims(exp=1, aud=None), HKEY, algorithm="HS256"),
                   "expired")


def test_a_token_over_the_limit_is_refused_for_its_size():
    small = jwt.encode({"sub": "s"}, HKEY, algorithm="HS256")
    st, _, doc = request("/small/me", bearer(small))
    eq((st, doc["sub"]), (200, "s"))
    big = jwt.encode({"sub": "s", "pad": "x" * 600}, HKEY, algorithm="HS256")
    expect_invalid("/small/me", big, "longer than 512 bytes")
    huge = jwt.encode(claims(pad="x" * 9000), HKEY, algorithm="HS256")
    expect_invalid("/jwt/me", huge, "longer than 8192 bytes")


def test_tokens_weave_signs_decode_in_pyjwt():
    rsa_pub = RSA_KEY.public_key()
    ec_pub = EC1.public_key()
    for alg, key, kid in (("HS256", HKEY, None), ("HS512", HKEY, "h1"), ("RS256", rsa_pub, None),
                          ("PS256", rsa_pub, "r1"), ("RS512", rsa_pub, None),
                          ("ES256", ec_pub, "ec-1")):
        c = claims(sub="signed-" + alg, n=7, tags=["x"])
        path = "/token/" + alg + ("?kid=" + kid if kid else "")
        st, h, tok = request(path, method="POST", body=json.dumps(c).encode())
        eq(st, 200, "sign %s: %r" % (alg, tok))
        eq(h["content-type"], "application/jwt")
        tok = tok.decode()
        got = jwt.decode(tok, key, algorithms=[alg], audience=AUD, issuer=ISS)
        eq(got, c, "PyJWT read what weave signed (%s)" % alg)
        hdr = jwt.get_unverified_header(tok)
        eq(hdr.get("kid"), kid)
        eq((hdr["alg"], hdr["typ"]), (alg, "JWT"))
        # and weave verifies its own, through the middleware
        st, _, doc = request("/jwt/me", bearer(tok))
        eq((st, doc["claims"]), (200, c))
    st, _, _ = request("/token/HS256", method="POST", body=b"[1]")
    eq(st, 400)


def test_api_keys_from_the_header_the_query_the_list_and_the_file():
    for name, key in list(API_KEYS.items()) + [("inline", "inline-key-0123456789"),
                                               ("line 6", "anonymous-key-9876543210")]:
        st, _, doc = request("/key/whoami", {"X-API-Key": key})
        eq((st, doc), (200, {"key": name, "claims": False}), "header key of %s" % name)
        st, _, doc = request("/key/whoami?api_key=" + key)
        eq((st, doc), (200, {"key": name, "claims": False}), "query key of %s" % name)
    st, _, doc = request("/key/whoami", {"x-api-key": API_KEYS["ops"]})
    eq((st, doc["key"]), (200, "ops"))


def test_api_key_missing_or_wrong_of_any_length_is_401():
    st, h, doc = request("/key/whoami")
    eq((st, doc), (401, {"detail": "Not authenticated"}))
    eq(h.get("www-authenticate"), 'APIKey header="X-API-Key"')
    st, _, doc = request("/key/whoami", {"X-API-Key": ""})
    eq((st, doc), (401, {"detail": "Not authenticated"}))
    real = API_KEYS["ci-bot"]
    wrong = ["x" * n for n in range(1, 80)]
    wrong += [real[:n] for n in range(1, len(real))]  # every prefix
    wrong += [real + "0", real.upper(), real[:-1] + "0", "K", "kk", "# name key", "#", "name"]
    for w in wrong:
        st, h, doc = request("/key/whoami", {"X-API-Key": w})
        eq((st, doc), (401, {"detail": "Invalid API key"}), "key %r" % w)
        eq(h.get("www-authenticate"), 'APIKey header="X-API-Key"')
    st, _, doc = request("/key/whoami?api_key=nope")
    eq((st, doc), (401, {"detail": "Invalid API key"}))


def test_state_does_not_outlive_its_request_on_a_kept_alive_connection():
    c = http.client.HTTPConnection("127.0.0.1", server().port, timeout=10)
    tok = jwt.encode(claims(), HKEY, algorithm="HS256")
    for _ in range(3):
        st, _, doc = request("/jwt/me", bearer(tok), conn=c)
        eq((st, doc["sub"]), (200, "user-42"))
        st, _, doc = request("/key/whoami", {"X-API-Key": API_KEYS["ops"]}, conn=c)
        eq((st, doc), (200, {"key": "ops", "claims": False}))
        st, _, doc = request("/jwt/me", {}, conn=c)
        eq(st, 401)
    c.close()


if __name__ == "__main__":
    try:
        httptest.run(globals())
    finally:
        import shutil
        shutil.rmtree(DIR, ignore_errors=True)
