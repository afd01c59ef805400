"""botocore as the oracle for weave's SigV4 signer (src/aws/sigv4.c), for
tests/unit/test_s3_sign.c and tests/unit/test_kinesis_sign.c.

Neither s3rver nor kinesis-local checks signatures, so the signatures
weave makes are checked here, offline, against botocore's signers for the
same request at the same time: S3SigV4Auth for S3's Authorization header,
a botocore client's generate_presigned_url (S3SigV4QueryAuth) for
presigned URLs, and SigV4Auth (what every service but S3 uses: the path
normalised and encoded twice) for the other services.

Input on stdin, one case a line, fields separated by tabs (bytes that may
not be text are hex):

  H ak sk token region time method url body_hex signed ours name value ...
      a request weave signed: its URL as sent, its body, whether its payload
      hash is signed (1) or UNSIGNED-PAYLOAD (0), weave's Authorization
      header, and the headers it sent (Authorization left out)
  P ak sk token region time method endpoint style bucket key_hex expires ours
      a presigned URL weave made; style is "path" or "virtual"
  V ak sk token region service time method url body_hex ours name value ...
      as H, for another service than S3 (signed by SigV4Auth)

token is "-" for none, body_hex "-" for an empty body. For each line the
output is one line: "OK", or "DIFF" with both results. Run with Debian's
python (/usr/bin/python3) and python3-boto3; without botocore the only
line printed is "NO-BOTOCORE".
"""
import datetime
import sys
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

try:
    import botocore.auth
    import botocore.awsrequest
    import botocore.config
    import botocore.credentials
    import botocore.session
except ImportError:
    print("NO-BOTOCORE", flush=True)
    sys.exit(0)

CLIENT_METHOD = {"GET": "get_object", "PUT": "put_object", "HEAD": "head_object",
                 "DELETE": "delete_object"}


def fixed_clock(unix_time):
    """A datetime.datetime whose utcnow() is the case's time."""
    at = datetime.datetime.utcfromtimestamp(unix_time)

    class Fixed(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return at

    return mock.patch.object(botocore.auth.datetime, "datetime", Fixed)


def authorization(make_signer, ak, sk, token, t, method, url, body_hex, pairs, config=None):
    """The Authorization header botocore's signer gives the request."""
    headers = dict(zip(pairs[0::2], pairs[1::2]))
    body = b"" if body_hex == "-" else bytes.fromhex(body_hex)
    creds = botocore.credentials.Credentials(ak, sk, None if token == "-" else token)
    req = botocore.awsrequest.AWSRequest(method=method, url=url, headers=headers, data=body)
    if config:
        req.context["client_config"] = config
    with fixed_clock(int(t)):
        make_signer(creds).add_auth(req)
    return req.headers["Authorization"]


def header_case(f):
    ak, sk, token, region, t, method, url, body_hex, signed, ours = f[:10]
    config = botocore.config.Config(s3={"payload_signing_enabled": signed == "1"})
    theirs = authorization(lambda creds: botocore.auth.S3SigV4Auth(creds, "s3", region),
                           ak, sk, token, t, method, url, body_hex, f[10:], config)
    return "OK" if theirs == ours else "DIFF ours=%s theirs=%s" % (ours, theirs)


def service_case(f):
    ak, sk, token, region, service, t, method, url, body_hex, ours = f[:10]
    theirs = authorization(lambda creds: botocore.auth.SigV4Auth(creds, service, region),
                           ak, sk, token, t, method, url, body_hex, f[10:])
    return "OK" if theirs == ours else "DIFF ours=%s theirs=%s" % (ours, theirs)


def presign_case(f):
    ak, sk, token, region, t, method, endpoint, style, bucket, key_hex, expires, ours = f
    key = bytes.fromhex(key_hex).decode("utf-8")
    session = botocore.session.get_session()
    client = session.create_client(
        "s3", region_name=region, endpoint_url=endpoint, aws_access_key_id=ak,
        aws_secret_access_key=sk, aws_session_token=None if token == "-" else token,
        config=botocore.config.Config(signature_version="s3v4",
                                      s3={"addressing_style": style}))
    with fixed_clock(int(t)):
        theirs = client.generate_presigned_url(
            CLIENT_METHOD[method], Params={"Bucket": bucket, "Key": key},
            ExpiresIn=int(expires), HttpMethod=method)
    a, b = urlsplit(ours), urlsplit(theirs)
    same = ((a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
            and sorted(parse_qsl(a.query, keep_blank_values=True))
            == sorted(parse_qsl(b.query, keep_blank_values=True)))
    return "OK" if same else "DIFF ours=%s theirs=%s" % (ours, theirs)


def main():
    for line in sys.stdin:
        f = line.rstrip("\n").split("\t")
        try:
            if f[0] == "H":
                out = header_case(f[1:])
            elif f[0] == "P":
                out = presign_case(f[1:])
            elif f[0] == "V":
                out = service_case(f[1:])
            else:
                out = "DIFF unknown case kind %r" % f[0]
        except Exception as e:  # a broken case is a failure, with the reason
            out = "DIFF error %s: %s" % (type(e).__name__, e)
        print(out, flush=True)


main()
