/*
 * A request, from the caller's side: wv_httpc_req checked (nothing
 * malformed reaches curl, and no header can smuggle a line break) and
 * turned into an easy handle's options; the transfer added to the shard's
 * multi handle; the fiber waiting for it under its deadline; and what came
 * back turned into a wv_httpc_response or an errno with its reason.
 *
 * The deadline is given to curl (CURLOPT_TIMEOUT_MS, and as the ceiling
 * of CURLOPT_CONNECTTIMEOUT_MS) and is also the fiber's own wait's
 * deadline: whichever notices first ends the request with -ETIMEDOUT. A
 * wait cut short (deadline, cancellation) takes the easy handle out of the
 * multi handle before returning, which aborts the transfer at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc/httpc_internal.h"
#include "weave/net.h"

enum { WHAT_MAX = 320, WHY_MAX = 640 };
enum { SCHEME_OTHER, SCHEME_HTTP, SCHEME_HTTPS };

/* --------------------------------------------------------- checking input */

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

static bool ascii_ieq(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (y >= 'A' && y <= 'Z')
            y |= 0x20;
        if (x != y)
            return false;
        if (!x)
            return true;
    }
}

static bool ascii_iprefix(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        unsigned char x = (unsigned char)*s;
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (x != (unsigned char)*prefix)
            return false;
    }
    return true;
}

static int scheme_of(const char *url)
{
    if (ascii_iprefix(url, "https://"))
        return SCHEME_HTTPS;
    if (ascii_iprefix(url, "http://"))
        return SCHEME_HTTP;
    return SCHEME_OTHER;
}

static bool has_header(const wv_httpc_req *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (ascii_ieq(req->headers[i].name, name))
            return true;
    return false;
}

static int check(const wv_httpc_req *req, const char *method, const char *what)
{
    if (!is_token(method) || strlen(method) > 32)
        return wv_fail(-EINVAL, "%s: the method is not an HTTP token", what);
    if (scheme_of(req->url) == SCHEME_OTHER)
        return wv_fail(-EINVAL, "%s: only http:// and https:// URLs are fetched", what);
    if (req->body_len && !req->body)
        return wv_fail(-EINVAL, "%s: body_len without a body", what);
    if (strcmp(method, "HEAD") == 0 && req->body)
        return wv_fail(-EINVAL, "%s: HEAD with a body", what);
    if (req->nheaders && !req->headers)
        return wv_fail(-EINVAL, "%s: nheaders without headers", what);
    for (size_t i = 0; i < req->nheaders; i++) {
        const wv_httpc_header *h = &req->headers[i];
        if (!is_token(h->name))
            return wv_fail(-EINVAL, "%s: header name \"%.40s\" is not an HTTP token", what,
                           h->name ? h->name : "(null)");
        if (!h->value || strpbrk(h->value, "\r\n"))
            return wv_fail(-EINVAL, "%s: the value of header %.40s holds a line break", what,
                           h->name);
    }
    return 0;
}

/* ------------------------------------------------------ curl's callbacks */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    httpc_transfer *t = arg;
    wv_buf *b = &t->resp->body;
    size_t len = size * n;
    if (len > t->max_response - b->n) {
        t->too_big = true;
        return 0; /* ends the transfer */
    }
    if (b->cap == 0) {
        /* the first bytes: room for what the server announced at once */
        curl_off_t announced = -1;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
        if (announced > 0 && (uint64_t)announced <= t->max_response)
            wv_buf_reserve(b, (size_t)announced);
    }
    if (wv_buf_append(b, p, len) < 0) {
        t->no_memory = true;
        return 0;
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    httpc_transfer *t = arg;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a 1xx or a redirect): only the last one's
         * head and body are the answer */
        t->head.n = 0;
        t->resp->body.n = 0;
        t->head_seen = true;
    }
    if (len > HTTPC_MAX_HEAD - t->head.n) {
        t->head_big = true;
        return 0;
    }
    if (wv_buf_append(&t->head, p, len) < 0) {
        t->no_memory = true;
        return 0;
    }
    return len;
}

/* ------------------------------------------------------------- setting up */

/* Where a redirect that curl refused led: the Location of the last head. */
static const char *location_of(wv_buf *head, char *out, size_t cap)
{
    for (size_t i = 0; i < head->n;) {
        char *line = head->p + i;
        char *eol = memchr(line, '\n', head->n - i);
        size_t len = eol ? (size_t)(eol - line) : head->n - i;
        if (len > 9 && ascii_iprefix(line, "location:")) {
            char *v = line + 9, *e = line + len;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
                e--;
            char raw[512];
            snprintf(raw, sizeof raw, "%.*s", (int)(e - v), v);
            wv_url_redact(raw, out, cap);
            return out;
        }
        i += len + 1;
    }
    return NULL;
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    /* "Name;" is how curl is told to send a header with an empty value */
    size_t n = strlen(name) + strlen(value) + 3;
    char small[256];
    char *line = n <= sizeof small ? small : malloc(n);
    if (!line)
        return -ENOMEM;
    if (*value)
        snprintf(line, n, "%s: %s", name, value);
    else
        snprintf(line, n, "%s;", name);
    struct curl_slist *l = curl_slist_append(*list, line);
    if (line != small)
        free(line);
    if (!l)
        return -ENOMEM;
    *list = l;
    return 0;
}

static int build_headers(httpc_transfer *t, const wv_httpc_req *req, bool sends_body)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (add_header(&t->headers, req->headers[i].name, req->headers[i].value) < 0)
            return -ENOMEM;
    /* curl would call a body form data and ask for 100-continue: the body
     * is in memory and sent at once, and its type is the caller's to say */
    if (sends_body && !has_header(req, "Content-Type") &&
        !(t->headers = curl_slist_append(t->headers, "Content-Type:")))
        return -ENOMEM;
    if (!has_header(req, "Expect") && !(t->headers = curl_slist_append(t->headers, "Expect:")))
        return -ENOMEM;
    return 0;
}

static long curl_version_for(wv_httpc_version v)
{
    switch (v) {
    case WV_HTTPC_HTTP1:
        return CURL_HTTP_VERSION_1_1;
    case WV_HTTPC_HTTP2:
        return CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
    default:
        return CURL_HTTP_VERSION_2TLS;
    }
}

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        CURLcode c_ = curl_easy_setopt(e, (opt), (val));                                           \
        if (c_ != CURLE_OK && bad == CURLE_OK)                                                     \
            bad = c_;                                                                              \
    } while (0)

static int set_up(httpc_shard *sc, httpc_transfer *t, const wv_httpc_req *req, const char *method,
                  long total_ms, const char *what)
{
    CURL *e = t->easy;
    CURLcode bad = CURLE_OK;
    int scheme = scheme_of(req->url);
    httpc_easy_attach(sc, t);
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_NOSIGNAL, 1L);
    /* a transfer abandoned while its name is being resolved leaves curl's
     * resolver thread to finish alone, instead of the shard waiting for it */
    SET(CURLOPT_QUICK_EXIT, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    /* never from TLS down to plain text */
    SET(CURLOPT_REDIR_PROTOCOLS_STR, scheme == SCHEME_HTTPS ? "https" : "http,https");
    if (req->max_redirects >= 0) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS,
            (long)(req->max_redirects ? req->max_redirects : HTTPC_DEFAULT_MAX_REDIRECTS));
    }
    if (!req->no_decompress)
        SET(CURLOPT_ACCEPT_ENCODING, ""); /* every coding this curl decodes */
    SET(CURLOPT_HTTP_VERSION, curl_version_for(req->version));
    /* a request to a host whose connection is still being made waits to
     * learn whether it can share it (HTTP/2) instead of opening another */
    if (req->version != WV_HTTPC_HTTP1 &&
        (scheme == SCHEME_HTTPS || req->version == WV_HTTPC_HTTP2))
        SET(CURLOPT_PIPEWAIT, 1L);
    SET(CURLOPT_SSL_VERIFYPEER, req->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, req->insecure ? 0L : 2L);
    if (req->ca_file)
        SET(CURLOPT_CAINFO, req->ca_file);
    if (req->proxy)
        SET(CURLOPT_PROXY, req->proxy);
    long connect_ms =
        (long)(req->connect_timeout_ms > 0 ? req->connect_timeout_ms : HTTPC_DEFAULT_CONNECT_MS);
    if (total_ms > 0 && total_ms < connect_ms)
        connect_ms = total_ms;
    SET(CURLOPT_TIMEOUT_MS, total_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_response);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, t);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, t);
    SET(CURLOPT_ERRORBUFFER, t->errbuf);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    if (!has_header(req, "User-Agent")) {
        char ua[64];
        snprintf(ua, sizeof ua, "weave/%s", wv_version());
        SET(CURLOPT_USERAGENT, ua);
    }
    if (req->cookies)
        SET(CURLOPT_COOKIEFILE, ""); /* the cookie engine, in memory, this request only */

    bool sends_body = false;
    if (strcmp(method, "GET") == 0 && !req->body) {
        SET(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        sends_body = req->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                     strcmp(method, "PATCH") == 0;
        if (sends_body) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
        }
        if (strcmp(method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, method);
    }
    if (build_headers(t, req, sends_body) < 0)
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    SET(CURLOPT_HTTPHEADER, t->headers);
    if (bad == CURLE_OUT_OF_MEMORY)
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    if (bad != CURLE_OK)
        return wv_fail(-EINVAL, "%s: curl refused an option: %s", what, curl_easy_strerror(bad));
    return 0;
}

#undef SET

/* ------------------------------------------------------------- the result */

static int http_version_of(long v)
{
    switch (v) {
    case CURL_HTTP_VERSION_1_0:
        return 10;
    case CURL_HTTP_VERSION_1_1:
        return 11;
    case CURL_HTTP_VERSION_2_0:
        return 20;
    case CURL_HTTP_VERSION_3:
        return 30;
    default:
        return 0;
    }
}

static int take_response(httpc_transfer *t, const wv_httpc_req *req, const char *what)
{
    wv_httpc_response *resp = t->resp;
    long status = 0, version = 0, redirects = 0;
    char *url = NULL;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &version);
    curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_COUNT, &redirects);
    curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url);
    resp->status = (int)status;
    resp->version = http_version_of(version);
    resp->redirects = (int)redirects;
    resp->url = strdup(url ? url : req->url);
    if (!resp->url || httpc_response_take_head(resp, &t->head) < 0)
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    if (req->fail_on_status && status >= 400)
        return wv_fail(-EIO, "%s: HTTP %ld", what, status);
    return 0;
}

static int failure(httpc_transfer *t, const wv_httpc_req *req, const char *what)
{
    if (t->too_big)
        return wv_fail(-EMSGSIZE, "%s: the response body is larger than the limit of %zu bytes",
                       what, t->max_response);
    if (t->head_big)
        return wv_fail(-EMSGSIZE, "%s: the response head is larger than %d bytes", what,
                       HTTPC_MAX_HEAD);
    if (t->no_memory)
        return wv_fail(-ENOMEM, "%s: out of memory for the response", what);
    long os_errno = 0;
    curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno);
    char where[256];
    httpc_failure f = {
        .code = t->code,
        .os_errno = (int)os_errno,
        .socket_errno = t->socket_errno,
        .detail = t->errbuf,
        .max_redirects = req->max_redirects ? req->max_redirects : HTTPC_DEFAULT_MAX_REDIRECTS,
        .max_response = t->max_response,
        .refused = t->code == CURLE_UNSUPPORTED_PROTOCOL
                       ? location_of(&t->head, where, sizeof where)
                       : NULL,
    };
    char why[WHY_MAX];
    int rc = httpc_error(&f, why, sizeof why);
    return wv_fail(rc, "%s: %s", what, why);
}

/* ------------------------------------------------------------- requests */

int wv_httpc_request(const wv_httpc_req *req, wv_httpc_response *resp)
{
    if (!resp)
        return wv_fail(-EINVAL, "httpc: no response to fill");
    memset(resp, 0, sizeof *resp);
    if (!req || !req->url || !*req->url)
        return wv_fail(-EINVAL, "httpc: a request needs a URL");
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    char shown[WHAT_MAX - 40], what[WHAT_MAX];
    wv_url_redact(req->url, shown, sizeof shown);
    snprintf(what, sizeof what, "%.32s %s", method, shown);
    int rc = check(req, method, what);
    if (rc < 0)
        return rc;

    int64_t start = wv_now();
    int64_t deadline = wv_deadline();
    if (req->timeout_ms > 0) {
        int64_t own = wv_after_ms(req->timeout_ms);
        if (own < deadline)
            deadline = own;
    }
    long total_ms = 0; /* curl: no limit */
    if (wv_cancelled())
        return wv_fail(-ECANCELED, "%s: cancelled", what);
    if (deadline != WV_NEVER) {
        int64_t left = deadline - start;
        if (left <= 0)
            return wv_fail(-ETIMEDOUT, "%s: the deadline had passed before the request began",
                           what);
        total_ms = (long)((left + HTTPC_NS_PER_MS - 1) / HTTPC_NS_PER_MS);
    }

    httpc_shard *sc = httpc_shard_get(&rc);
    if (!sc)
        return rc;
    httpc_transfer t = {
        .resp = resp,
        .max_response = req->max_response ? req->max_response : HTTPC_DEFAULT_MAX_RESPONSE,
    };
    t.easy = httpc_easy_take(sc);
    if (!t.easy)
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    rc = set_up(sc, &t, req, method, total_ms, what);
    if (rc == 0)
        rc = httpc_transfer_start(sc, &t);
    if (rc < 0) {
        curl_slist_free_all(t.headers);
        wv_buf_free(&t.head);
        httpc_easy_give(sc, t.easy, !req->cookies);
        return rc;
    }

    int64_t old = wv_deadline_set(deadline);
    int woke;
    do
        woke = wv_event_wait(&t.done_ev);
    while (woke == 0 && !t.done && !t.shut_down);
    wv_deadline_set(old);

    bool answered = t.done && t.code == CURLE_OK;
    /* curl's timeout and the wait's are the same deadline: whichever saw
     * it first, the caller reads the same */
    bool late = (t.done && t.code == CURLE_OPERATION_TIMEDOUT && deadline != WV_NEVER &&
                 wv_now() + HTTPC_NS_PER_MS >= deadline) ||
                (!t.done && woke == -ETIMEDOUT);
    if (answered)
        rc = take_response(&t, req, what);
    else if (late)
        rc = wv_fail(-ETIMEDOUT, "%s: the deadline passed after %lld ms (%s)", what,
                     (long long)((wv_now() - start) / HTTPC_NS_PER_MS),
                     t.head_seen ? "while the response was arriving" : "before the response began");
    else if (t.done)
        rc = failure(&t, req, what);
    else if (woke == -ECANCELED)
        rc = wv_fail(-ECANCELED, "%s: cancelled", what);
    else if (t.shut_down)
        rc = wv_fail(-ESHUTDOWN, "%s: the runtime is stopping", what);
    else
        rc = wv_fail(woke, "%s: %s", what, wv_strerror(woke));

    httpc_transfer_end(sc, &t, !req->cookies); /* aborts it if it is still running */
    curl_slist_free_all(t.headers);
    wv_buf_free(&t.head);
    if (rc < 0 && !(answered && rc == -EIO)) /* fail_on_status keeps the response */
        wv_httpc_response_free(resp);
    return rc;
}

int wv_httpc_get(const char *url, wv_httpc_response *resp)
{
    return wv_httpc_request(&(wv_httpc_req){.url = url}, resp);
}

int wv_httpc_post(const char *url, const char *content_type, const void *body, size_t n,
                  wv_httpc_response *resp)
{
    wv_httpc_header type = {"Content-Type", content_type};
    return wv_httpc_request(&(wv_httpc_req){.method = "POST",
                                            .url = url,
                                            .headers = content_type ? &type : NULL,
                                            .nheaders = content_type ? 1 : 0,
                                            .body = body,
                                            .body_len = n},
                            resp);
}
