"""HTTP server basics, spoken by Python's http.client, curl and raw sockets:
status lines and the standard headers, HEAD, automatic OPTIONS, 404/405,
handler errors as JSON, typed and catch-all parameters, query decoding,
redirects, cookies and middleware."""
import calendar
import http.client
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httptest import Conn, check, curl, eq, parse_curl_include, run, shared  # noqa: E402

IMF_FIXDATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) "
                         r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) "
                         r"(\d{2}):(\d{2}):(\d{2}) GMT$")


def client():
    return http.client.HTTPConnection("127.0.0.1", shared().port, timeout=10)


def fetch(method, target, headers=None, body=None):
    c = client()
    try:
        c.request(method, target, body=body, headers=headers or {})
        r = c.getresponse()
        return r, r.read()
    finally:
        c.close()


def test_plaintext_has_status_server_type_length_and_exact_body():
    r, body = fetch("GET", "/plaintext")
    eq(r.status, 200, "status")
    eq(r.reason, "OK", "reason")
    eq(r.version, 11, "HTTP version")
    eq(r.getheader("Server"), "weave", "Server")
    eq(r.getheader("Content-Type"), "text/plain; charset=utf-8", "Content-Type")
    eq(r.getheader("Content-Length"), "13", "Content-Length")
    eq(body, b"Hello, World!", "body")


def test_date_header_is_an_imf_fixdate_of_now():
    r, _ = fetch("GET", "/plaintext")
    date = r.getheader("Date")
    m = IMF_FIXDATE.match(date or "")
    check(m is not None, "Date %r is not an RFC 9110 IMF-fixdate", date)
    when = calendar.timegm(time.strptime(date, "%a, %d %b %Y %H:%M:%S GMT"))
    check(abs(when - time.time()) < 5, "Date %r is not now (%s)", date,
          time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))


def test_curl_gets_plaintext_with_standard_headers():
    p = curl("-i", "http://127.0.0.1:%d/plaintext" % shared().port)
    eq(p.returncode, 0, "curl exit (stderr %r)" % p.stderr)
    status, h, body = parse_curl_include(p.stdout)
    eq(status, 200, "status")
    eq(h.get("server"), "weave", "Server")
    check(IMF_FIXDATE.match(h.get("date", "")), "Date %r", h.get("date"))
    eq(h.get("content-type"), "text/plain; charset=utf-8", "Content-Type")
    eq(h.get("content-length"), "13", "Content-Length")
    eq(body, b"Hello, World!", "body")


def test_curl_posts_a_binary_body_and_gets_it_back():
    data = bytes(range(256)) * 40
    path = "/tmp/weave_it_curl_body_%d" % os.getpid()
    with open(path, "wb") as f:
        f.write(data)
    try:
        p = curl("-H", "Content-Type: application/x-test", "--data-binary", "@" + path,
                 "-D", "-", "http://127.0.0.1:%d/echo" % shared().port)
    finally:
        os.unlink(path)
    eq(p.returncode, 0, "curl exit (stderr %r)" % p.stderr)
    status, h, body = parse_curl_include(p.stdout)
    eq(status, 200, "status")
    eq(h.get("content-type"), "application/x-test", "Content-Type echoed")
    eq(h.get("content-length"), str(len(data)), "Content-Length")
    check(body == data, "echoed body differs (%d bytes back of %d)", len(body), len(data))


def test_http_client_posts_json_and_gets_it_back():
    doc = json.dumps({"a": [1, 2, 3], "b": "\u00e9"}).encode()
    r, body = fetch("POST", "/echo", {"Content-Type": "application/json"}, doc)
    eq(r.status, 200, "status")
    eq(r.getheader("Content-Type"), "application/json", "Content-Type")
    eq(body, doc, "body")


def test_head_has_the_get_headers_and_no_body():
    with Conn(shared().port) as c:
        get = c.request("GET", "/plaintext")
        head = c.request("HEAD", "/plaintext")
        eq(head.status, 200, "HEAD status")
        eq(head.header("Content-Length"), get.header("Content-Length"), "HEAD Content-Length")
        eq(head.header("Content-Type"), get.header("Content-Type"), "HEAD Content-Type")
        check(head.header("Date") is not None, "HEAD has no Date")
        # no body bytes: the next response on the connection starts right away
        nxt = c.request("GET", "/plaintext")
        eq(nxt.status, 200, "status after HEAD")
        eq(nxt.body, b"Hello, World!", "body after HEAD")


def test_curl_head_gets_headers_only():
    p = curl("-I", "http://127.0.0.1:%d/plaintext" % shared().port)
    eq(p.returncode, 0, "curl exit (stderr %r)" % p.stderr)
    status, h, body = parse_curl_include(p.stdout)
    eq(status, 200, "status")
    eq(h.get("content-length"), "13", "Content-Length")
    eq(body, b"", "body")


def test_options_is_answered_automatically_with_204_and_allow():
    with Conn(shared().port) as c:
        r = c.request("OPTIONS", "/plaintext")
        eq(r.status, 204, "status")
        allow = {m.strip() for m in (r.header("Allow") or "").split(",")}
        check({"GET", "HEAD", "OPTIONS"} <= allow, "Allow %r", r.header("Allow"))
        check("POST" not in allow, "Allow lists POST: %r", r.header("Allow"))
        eq(r.header("Content-Length") in (None, "0"), True, "no body on 204")
        eq(c.request("GET", "/plaintext").status, 200, "next request on the connection")


def test_options_lists_post_for_a_post_route():
    with Conn(shared().port) as c:
        r = c.request("OPTIONS", "/echo")
        eq(r.status, 204, "status")
        allow = {m.strip() for m in (r.header("Allow") or "").split(",")}
        check({"POST", "OPTIONS"} <= allow, "Allow %r", r.header("Allow"))
        check("GET" not in allow, "Allow lists GET: %r", r.header("Allow"))


def test_unknown_path_is_404_with_a_json_detail():
    r, body = fetch("GET", "/no/such/path")
    eq(r.status, 404, "status")
    eq(r.getheader("Content-Type"), "application/json", "Content-Type")
    check("detail" in json.loads(body), "body %r", body)


def test_wrong_method_is_405_with_allow():
    r, body = fetch("DELETE", "/plaintext")
    eq(r.status, 405, "status")
    allow = {m.strip() for m in (r.getheader("Allow") or "").split(",")}
    check({"GET", "HEAD"} <= allow, "Allow %r", r.getheader("Allow"))
    check("DELETE" not in allow, "Allow %r", r.getheader("Allow"))
    check("detail" in json.loads(body), "body %r", body)


def test_post_to_a_get_route_is_405():
    r, _ = fetch("POST", "/plaintext", {"Content-Type": "text/plain"}, b"ignored")
    eq(r.status, 405, "status")
    check("GET" in (r.getheader("Allow") or ""), "Allow %r", r.getheader("Allow"))


def test_handler_einval_is_400_with_the_handler_message():
    r, body = fetch("GET", "/fail/22")
    eq(r.status, 400, "status")
    eq(r.getheader("Content-Type"), "application/json", "Content-Type")
    eq(json.loads(body), {"detail": "failing on purpose with errno 22"}, "body")


def test_handler_enoent_is_404_json():
    r, body = fetch("GET", "/fail/2")
    eq(r.status, 404, "status")
    check("detail" in json.loads(body), "body %r", body)


def test_handler_eio_is_500_without_leaking_the_message():
    r, body = fetch("GET", "/fail/5")
    eq(r.status, 500, "status")
    doc = json.loads(body)
    check("detail" in doc, "body %r", body)
    check(b"failing on purpose" not in body and b"errno" not in body,
          "the 500 leaks the internal message: %r", body)


def test_handler_returning_without_a_response_is_500():
    r, body = fetch("GET", "/noresponse")
    eq(r.status, 500, "status")
    check("detail" in json.loads(body), "body %r", body)


def test_typed_path_parameter_parses():
    r, body = fetch("GET", "/users/42")
    eq(r.status, 200, "status")
    eq(json.loads(body), {"id": 42}, "body")


def test_typed_path_parameter_that_does_not_parse_is_400_naming_it():
    r, body = fetch("GET", "/users/abc")
    eq(r.status, 400, "status")
    detail = json.loads(body).get("detail", "")
    check("id" in detail, "the 400 does not name the parameter 'id': %r", detail)


def test_catch_all_parameter_is_percent_decoded():
    r, body = fetch("GET", "/files/a/b%20c")
    eq(r.status, 200, "status")
    eq(body, b"a/b c", "body")


def test_query_parameter_decodes_plus_and_percent_escapes():
    r, body = fetch("GET", "/query?x=1&name=a+b%26c%3Dd%C3%A9&name=second")
    eq(r.status, 200, "status")
    eq(body, "a b&c=d\u00e9".encode(), "body")


def test_absent_query_parameter_is_reported_absent():
    r, body = fetch("GET", "/query?other=1")
    eq(r.status, 200, "status")
    eq(body, b"(none)", "body")


def test_typed_query_parameter_that_does_not_parse_is_400_naming_it():
    r, body = fetch("GET", "/sleep?ms=abc")
    eq(r.status, 400, "status")
    check("ms" in json.loads(body).get("detail", ""), "detail does not name 'ms': %r", body)


def test_bad_percent_escape_in_a_parameter_is_400():
    for target in ("/files/a%zz", "/query?name=%zz", "/files/a%2"):
        r, _ = fetch("GET", target)
        eq(r.status, 400, "status of %s" % target)


def test_query_string_does_not_affect_routing():
    r, body = fetch("GET", "/plaintext?x=1&y=2")
    eq(r.status, 200, "status")
    eq(body, b"Hello, World!", "body")


def test_absolute_form_target_is_accepted():
    with Conn(shared().port) as c:
        c.send(b"GET http://localhost/users/31?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r = c.read_response()
        eq(r.status, 200, "status")
        eq(r.body, b'{"id":31}', "body")


def test_head_of_a_404_has_no_body():
    with Conn(shared().port) as c:
        r = c.request("HEAD", "/nowhere")
        eq(r.status, 404, "status")
        eq(c.request("GET", "/users/2").body, b'{"id":2}', "next response right after the head")


def test_redirect_is_302_with_location():
    r, _ = fetch("GET", "/redirect")
    eq(r.status, 302, "status")
    eq(r.getheader("Location"), "/plaintext", "Location")


def test_curl_follows_the_redirect():
    p = curl("-L", "http://127.0.0.1:%d/redirect" % shared().port)
    eq(p.returncode, 0, "curl exit (stderr %r)" % p.stderr)
    eq(p.stdout, b"Hello, World!", "body after the redirect")


def test_set_cookie_carries_its_attributes():
    r, body = fetch("GET", "/cookie")
    eq(r.status, 200, "status")
    cookies = r.msg.get_all("Set-Cookie") or []
    eq(len(cookies), 1, "Set-Cookie headers")
    parts = [p.strip() for p in cookies[0].split(";")]
    eq(parts[0], "session=abc123", "cookie pair")
    attrs = {p.split("=")[0].lower(): p for p in parts[1:]}
    eq(attrs.get("path"), "Path=/", "Path")
    eq(attrs.get("max-age"), "Max-Age=3600", "Max-Age")
    eq(attrs.get("httponly"), "HttpOnly", "HttpOnly")
    eq(attrs.get("samesite"), "SameSite=Lax", "SameSite")
    check("secure" not in attrs and "domain" not in attrs, "unexpected attributes %r", parts)
    eq(body, b"cookie set", "body")


def test_root_middleware_stamps_every_response_including_404s():
    cases = [("GET", "/plaintext", 200), ("GET", "/nowhere", 404), ("DELETE", "/plaintext", 405),
             ("GET", "/fail/22", 400), ("GET", "/users/abc", 400), ("GET", "/admin/stats", 401)]
    for method, target, status in cases:
        r, _ = fetch(method, target)
        eq(r.status, status, "%s %s status" % (method, target))
        eq(r.getheader("X-Stamp"), "root", "X-Stamp on %s %s" % (method, target))


def test_group_middleware_rejects_a_request_without_the_token():
    r, body = fetch("GET", "/admin/stats")
    eq(r.status, 401, "status")
    eq(json.loads(body), {"detail": "Not authenticated"}, "body")
    eq(r.getheader("WWW-Authenticate"), "Token", "WWW-Authenticate")


def test_group_middleware_rejects_a_wrong_token():
    r, _ = fetch("GET", "/admin/stats", {"X-Token": "guess"})
    eq(r.status, 401, "status")


def test_group_middleware_lets_the_right_token_through():
    r, body = fetch("GET", "/admin/stats", {"X-Token": "s3cret"})
    eq(r.status, 200, "status")
    eq(json.loads(body), {"admin": True}, "body")
    eq(r.getheader("X-Stamp"), "root", "root middleware runs too")


def test_group_middleware_does_not_apply_outside_the_group():
    r, _ = fetch("GET", "/plaintext")
    eq(r.status, 200, "status")
    check(r.getheader("WWW-Authenticate") is None, "group middleware ran outside /admin")


if __name__ == "__main__":
    run(globals())
