/*
 * A request, from the caller's side: wv_httpc_req checked (nothing
 * malformed reaches curl, and no header can smuggle a line break) and
 * turned into an easy handle's options; the transfer added to the shard's
 * multi handle; the fiber running it under its deadline (body.c's pump:
 * feeding a streamed body, waiting otherwise); what came back turned into
 * a wv_httpc_response or an errno with its reason; and the attempts, when
 * retries are asked for, inside the net layer's wv_retry.
 *
 * The deadline is given to curl (CURLOPT_TIMEOUT_MS, and as the ceiling
 * of CURLOPT_CONNECTTIMEOUT_MS) and is also the fiber's own wait's
 * deadline: whichever notices first ends the request with -ETIMEDOUT. A
 * wait cut short (deadline, cancellation) takes the easy handle out of the
 * multi handle before returning, which aborts the transfer at once. With
 * retries the deadline covers every attempt and every wait between them.
 *
 * An attempt ends at the response's end (a whole body into memory), or at
 * its head (a body streamed to on_body or read from a wv_httpc_stream):
 * so a retry is decided on the status before any body is handed over.
 * An answer that asks for a retry is kept until the next attempt starts,
 * so that when none may start (attempts spent, no time left) it is what
 * the caller gets: a 503 is a response, as it is without retries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpc/httpc_internal.h"
#include "weave/http.h"
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
        if (httpc_name_eq(req->headers[i].name, name))
            return true;
    return false;
}

/* What is wrong with the request, or NULL: nothing malformed reaches curl,
 * and no header can smuggle a line break. `bad` is filled with the
 * header's name where one is at fault. */
static const char *malformed(const wv_httpc_req *req, const char *method, char *bad, size_t cap)
{
    if (!is_token(method) || strlen(method) > 32)
        return "the method is not an HTTP token";
    if (scheme_of(req->url) == SCHEME_OTHER)
        return "only http:// and https:// URLs are fetched";
    if (req->body && req->body_read)
        return "a body and body_read both";
    if (req->body_len && !req->body && !req->body_read)
        return "body_len without a body";
    if (strcmp(method, "HEAD") == 0 && (req->body || req->body_read))
        return "HEAD with a body";
    if (req->retry.attempts < 0 || req->retry.base_ms < 0 || req->retry.max_ms < 0 ||
        req->retry.max_retry_after_ms < 0)
        return "negative retry options";
    if (req->nheaders && !req->headers)
        return "nheaders without headers";
    for (size_t i = 0; i < req->nheaders; i++) {
        const wv_httpc_header *h = &req->headers[i];
        if (!is_token(h->name)) {
            snprintf(bad, cap, "header name \"%.40s\" is not an HTTP token",
                     h->name ? h->name : "(null)");
            return bad;
        }
        if (!h->value || strpbrk(h->value, "\r\n")) {
            snprintf(bad, cap, "the value of header %.40s holds a line break", h->name);
            return bad;
        }
    }
    return NULL;
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
    bool ok = httpc_slist_add(list, line);
    if (line != small)
        free(line);
    return ok ? 0 : -ENOMEM;
}

/* X-Request-Id and X-Request-Timeout-Ms from the request this call is
 * made for, unless the caller sends its own */
static int propagate(httpc_transfer *t, const wv_httpc_req *req, int64_t deadline)
{
    if (!has_header(req, "X-Request-Id")) {
        wv_str id = wv_req_id(req->from);
        char v[64];
        snprintf(v, sizeof v, "%.*s", (int)(id.n < 60 ? id.n : 60), id.p);
        if (add_header(&t->headers, "X-Request-Id", v) < 0)
            return -ENOMEM;
    }
    if (deadline != WV_NEVER && !has_header(req, WV_DEADLINE_HEADER)) {
        /* whole milliseconds, rounded down: the callee never believes it
         * has more time than the caller will wait */
        int64_t left = (deadline - wv_now()) / HTTPC_NS_PER_MS;
        char v[24];
        snprintf(v, sizeof v, "%lld", (long long)(left > 0 ? left : 0));
        if (add_header(&t->headers, WV_DEADLINE_HEADER, v) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* The request's header list: the shard's own for a request without
 * headers of its own (the common case: nothing built), else one built for
 * it in t->headers. Beside the caller's: Accept-Encoding, said here
 * rather than by curl (which formats it anew for every request), and for
 * a body, empty Content-Type and Expect (curl would call a body form data
 * and ask for 100-continue: the body is in memory and sent at once, and
 * its type is the caller's to say). */
static int build_headers(httpc_transfer *t, const wv_httpc_req *req, bool sends_body,
                         int64_t deadline, const struct curl_slist **out)
{
    bool decode = !req->no_decompress;
    if (!req->nheaders && !req->from) {
        *out = httpc_shard_headers(t->sc, decode, sends_body);
        return 0;
    }
    for (size_t i = 0; i < req->nheaders; i++)
        if (add_header(&t->headers, req->headers[i].name, req->headers[i].value) < 0)
            return -ENOMEM;
    if (req->from && propagate(t, req, deadline) < 0)
        return -ENOMEM;
    if ((decode && !has_header(req, "Accept-Encoding") &&
         !httpc_slist_add(&t->headers, httpc_accept_encoding())) ||
        (sends_body && !has_header(req, "Content-Type") &&
         !httpc_slist_add(&t->headers, "Content-Type:")) ||
        (sends_body && !has_header(req, "Expect") && !httpc_slist_add(&t->headers, "Expect:")))
        return -ENOMEM;
    *out = t->headers;
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

/* Does the handle need `field` set to v (it has another value, or none is
 * known)? If so, it is taken to have it from now on. */
#define CHANGES(field, v) ((!o->known || o->field != (v)) ? (o->field = (v), true) : false)

/* The method and body options, from a plain GET's. */
static CURLcode set_method(CURL *e, const wv_httpc_req *req, const char *method, bool *sends_body)
{
    CURLcode bad = CURLE_OK;
    if (req->body_read) {
        /* streamed: Content-Length when it is known, else chunked */
        *sends_body = true;
        SET(CURLOPT_UPLOAD, 1L);
        SET(CURLOPT_INFILESIZE_LARGE, req->body_len ? (curl_off_t)req->body_len : (curl_off_t)-1);
        if (strcmp(method, "PUT") != 0)
            SET(CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "HEAD") == 0) {
        SET(CURLOPT_NOBODY, 1L);
    } else {
        *sends_body = req->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                      strcmp(method, "PATCH") == 0;
        if (*sends_body) {
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
        }
        if (strcmp(method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, method);
    }
    return bad;
}

/* Back to curl's own method and body options: no body, no method name of
 * our own, not HEAD, no upload: a GET. */
static CURLcode set_plain_get(CURL *e)
{
    CURLcode bad = CURLE_OK;
    SET(CURLOPT_POSTFIELDS, (char *)NULL); /* (it also says POST: HTTPGET undoes that) */
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)-1);
    SET(CURLOPT_NOBODY, 0L);
    SET(CURLOPT_HTTPGET, 1L);
    return bad;
}

/* The request's options on t's easy handle, which has what the last
 * request on it set (t->opts): an option is set when this request wants
 * it otherwise, and the method options go back to a plain GET before
 * another method is set. A handle on which an option failed is not used
 * again (what it has is not known). */
static int set_up(httpc_transfer *t, const wv_httpc_req *req, const char *method, long total_ms,
                  int64_t deadline)
{
    httpc_easy_opts *o = &t->opts;
    /* curl's own CA file comes back with a reset only */
    if (o->ca_file && !req->ca_file && httpc_easy_reset(t) < 0) {
        t->reusable = false;
        return wv_fail(-ENOMEM, "%s: out of memory", httpc_what(t));
    }
    CURL *e = t->easy;
    CURLcode bad = CURLE_OK;
    int scheme = scheme_of(req->url);
    SET(CURLOPT_URL, req->url);
    /* never from TLS down to plain text */
    long https_only = scheme == SCHEME_HTTPS;
    if (CHANGES(https_only, https_only))
        SET(CURLOPT_REDIR_PROTOCOLS_STR, https_only ? "https" : "http,https");
    long follow = req->max_redirects >= 0;
    if (CHANGES(follow, follow))
        SET(CURLOPT_FOLLOWLOCATION, follow);
    long max_redirects = req->max_redirects > 0 ? req->max_redirects : HTTPC_DEFAULT_MAX_REDIRECTS;
    if (follow && CHANGES(max_redirects, max_redirects))
        SET(CURLOPT_MAXREDIRS, max_redirects);
    /* decoding on (the header that asks for it is among the request's) */
    long decode = !req->no_decompress;
    if (CHANGES(decode, decode))
        SET(CURLOPT_ACCEPT_ENCODING, decode ? "" : (char *)NULL);
    long version = curl_version_for(req->version);
    if (CHANGES(version, version))
        SET(CURLOPT_HTTP_VERSION, version);
    /* a request to a host whose connection is still being made waits to
     * learn whether it can share it (HTTP/2) instead of opening another */
    long pipewait = req->version != WV_HTTPC_HTTP1 &&
                    (scheme == SCHEME_HTTPS || req->version == WV_HTTPC_HTTP2);
    if (CHANGES(pipewait, pipewait))
        SET(CURLOPT_PIPEWAIT, pipewait);
    long insecure = req->insecure;
    if (CHANGES(insecure, insecure)) {
        SET(CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L);
        SET(CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L);
    }
    if (req->ca_file && (!o->ca_file || strcmp(o->ca_file, req->ca_file) != 0)) {
        SET(CURLOPT_CAINFO, req->ca_file);
        free(o->ca_file);
        if (!(o->ca_file = strdup(req->ca_file)) && bad == CURLE_OK)
            bad = CURLE_OUT_OF_MEMORY;
    }
    if (req->proxy || o->proxy) {
        SET(CURLOPT_PROXY, req->proxy); /* NULL: the environment's again */
        o->proxy = req->proxy != NULL;
    }
    long connect_ms =
        (long)(req->connect_timeout_ms > 0 ? req->connect_timeout_ms : HTTPC_DEFAULT_CONNECT_MS);
    if (total_ms > 0 && total_ms < connect_ms)
        connect_ms = total_ms;
    if (CHANGES(timeout_ms, total_ms))
        SET(CURLOPT_TIMEOUT_MS, total_ms);
    if (CHANGES(connect_ms, connect_ms))
        SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    /* none for a HEAD: curl would hold the size its head announces against
     * the limit, though no body comes (0: no limit) */
    curl_off_t max_file =
        !t->streaming && strcmp(method, "HEAD") != 0 ? (curl_off_t)t->max_response : 0;
    if (CHANGES(max_file, max_file))
        SET(CURLOPT_MAXFILESIZE_LARGE, max_file);
    if (req->cookies)
        SET(CURLOPT_COOKIEFILE, ""); /* the cookie engine, in memory, this request only */

    bool plain_get = !req->body_read && !req->body && strcmp(method, "GET") == 0;
    bool sends_body = false;
    CURLcode m = CURLE_OK;
    if (!o->plain_get)
        m = set_plain_get(e);
    if (!plain_get && m == CURLE_OK)
        m = set_method(e, req, method, &sends_body);
    o->plain_get = plain_get;
    if (bad == CURLE_OK)
        bad = m;
    const struct curl_slist *headers = NULL;
    if (build_headers(t, req, sends_body, deadline, &headers) < 0)
        bad = CURLE_OUT_OF_MEMORY;
    else
        SET(CURLOPT_HTTPHEADER, headers);
    o->known = bad == CURLE_OK;
    if (bad != CURLE_OK)
        t->reusable = false;
    if (bad == CURLE_OUT_OF_MEMORY)
        return wv_fail(-ENOMEM, "%s: out of memory", httpc_what(t));
    if (bad != CURLE_OK)
        return wv_fail(-EINVAL, "%s: curl refused an option: %s", httpc_what(t),
                       curl_easy_strerror(bad));
    return 0;
}

#undef CHANGES
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

/* The response's head (and, whole, its body) into t->resp. */
static int take_response(httpc_transfer *t, const wv_httpc_req *req)
{
    wv_httpc_response *resp = t->resp;
    long status = 0, version = 0, redirects = 0;
    char *url = NULL;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &version);
    curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_COUNT, &redirects);
    curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url);
    resp->status = status ? (int)status : t->head_status;
    resp->version = http_version_of(version);
    resp->redirects = (int)redirects;
    resp->url = strdup(url ? url : req->url);
    if (!resp->url || httpc_response_take_head(resp, &t->head) < 0)
        return wv_fail(-ENOMEM, "%s: out of memory", httpc_what(t));
    return 0;
}

/* What curl's result code says. */
static int curl_failure(httpc_transfer *t)
{
    if (t->too_big)
        return wv_fail(-EMSGSIZE, "%s: the response body is larger than the limit of %zu bytes",
                       httpc_what(t), t->max_response);
    if (t->head_big)
        return wv_fail(-EMSGSIZE, "%s: the response head is larger than %d bytes", httpc_what(t),
                       HTTPC_MAX_HEAD);
    if (t->no_memory)
        return wv_fail(-ENOMEM, "%s: out of memory for the response", httpc_what(t));
    long os_errno = 0;
    curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno);
    char where[256];
    httpc_failure f = {
        .code = t->code,
        .os_errno = (int)os_errno,
        .socket_errno = t->socket_errno,
        .detail = t->errbuf,
        .max_redirects = t->max_redirects,
        .max_response = t->max_response,
        .refused = t->code == CURLE_UNSUPPORTED_PROTOCOL
                       ? location_of(&t->head, where, sizeof where)
                       : NULL,
    };
    char why[WHY_MAX];
    int rc = httpc_error(&f, why, sizeof why);
    return wv_fail(rc, "%s: %s", httpc_what(t), why);
}

int httpc_stopped(httpc_transfer *t, int woke, int64_t start, int64_t deadline)
{
    if (t->source_failed)
        return woke; /* the pump said why */
    /* curl's timeout and the wait's are the same deadline: whichever saw
     * it first, the caller reads the same */
    bool late = (t->done && t->code == CURLE_OPERATION_TIMEDOUT && deadline != WV_NEVER &&
                 wv_now() + HTTPC_NS_PER_MS >= deadline) ||
                (!t->done && woke == -ETIMEDOUT);
    if (late)
        return wv_fail(-ETIMEDOUT, "%s: the deadline passed after %lld ms (%s)", httpc_what(t),
                       (long long)((wv_now() - start) / HTTPC_NS_PER_MS),
                       t->head_seen ? "while the response was arriving"
                                    : "before the response began");
    if (t->done && t->code != CURLE_OK)
        return curl_failure(t);
    if (woke == -ECANCELED)
        return wv_fail(-ECANCELED, "%s: cancelled", httpc_what(t));
    if (t->shut_down)
        return wv_fail(-ESHUTDOWN, "%s: the runtime is stopping", httpc_what(t));
    if (woke < 0)
        return wv_fail(woke, "%s: %s", httpc_what(t), wv_strerror(woke));
    return wv_fail(-EIO, "%s: the transfer stopped short", httpc_what(t));
}

/* ------------------------------------------------------------- attempts */

/* One call of the API: its request, where its answer goes, its attempts. */
typedef struct call {
    const wv_httpc_req *req;
    const char *method;
    wv_httpc_response *resp;
    httpc_shard *sc;
    httpc_transfer *t; /* streaming: the attempt whose head is in resp */
    bool to_head;      /* an attempt ends at the head (the body is streamed) */
    bool kept;         /* resp (and t) asked for a retry; kept in case none comes */
    int attempts;      /* made so far */
    int max_attempts;
    int64_t max_after_ms;
    int64_t start, deadline;
    char what[WHAT_MAX];
} call;

/* "METHOD URL" for messages, the URL shown without its secrets: made in
 * buf when a message first needs it (most requests never do). */
static const char *what_of(char *buf, size_t cap, const char *method, const char *url)
{
    if (!buf[0]) {
        char shown[WHAT_MAX - 40];
        wv_url_redact(url, shown, sizeof shown);
        snprintf(buf, cap, "%.32s %s", method, shown);
    }
    return buf;
}

static const char *call_what(call *c)
{
    return what_of(c->what, sizeof c->what, c->method, c->req->url);
}

const char *httpc_what(httpc_transfer *t)
{
    return what_of(t->what, sizeof t->what, t->method, t->url);
}

static void transfer_free(httpc_shard *sc, httpc_transfer *t)
{
    httpc_transfer_end(sc, t); /* aborts it if it is still running */
    httpc_transfer_give(sc, t, t->reusable);
}

/* Forget the answer kept from the last attempt. */
static void drop_kept(call *c)
{
    if (c->t)
        transfer_free(c->sc, c->t);
    c->t = NULL;
    wv_httpc_response_free(c->resp);
    c->kept = false;
}

/* Send once and wait for the head (to_head) or the whole response. */
static int attempt_once(call *c)
{
    const wv_httpc_req *req = c->req;
    int64_t now = wv_now();
    long total_ms = 0; /* curl: no limit */
    if (c->deadline != WV_NEVER) {
        int64_t left = c->deadline - now;
        if (left <= 0)
            return wv_fail(-ETIMEDOUT, "%s: the deadline had passed before the request began",
                           call_what(c));
        total_ms = (long)((left + HTTPC_NS_PER_MS - 1) / HTTPC_NS_PER_MS);
    }
    httpc_transfer *t = httpc_transfer_take(c->sc);
    if (!t)
        return wv_fail(-ENOMEM, "%s: out of memory", call_what(c));
    t->resp = c->resp;
    t->max_response = req->max_response ? req->max_response : HTTPC_DEFAULT_MAX_RESPONSE;
    t->max_redirects = req->max_redirects ? req->max_redirects : HTTPC_DEFAULT_MAX_REDIRECTS;
    t->follows = req->max_redirects >= 0;
    t->reusable = !req->cookies;
    t->streaming = c->to_head;
    t->deadline = c->deadline;
    t->source = req->body_read;
    t->source_arg = req->body_read_arg;
    t->up_left = req->body_len ? (int64_t)req->body_len : -1;
    t->method = c->method;
    t->url = req->url;
    int rc = set_up(t, req, c->method, total_ms, c->deadline);
    if (rc == 0)
        rc = httpc_transfer_start(c->sc, t);
    if (rc < 0) {
        httpc_transfer_give(c->sc, t, t->reusable);
        return rc;
    }

    int woke = httpc_pump(t, c->to_head ? httpc_head_ready : httpc_never);
    if (t->done && t->code == CURLE_OK)
        t->head_done = true; /* ended well: whatever came was the answer */
    bool answered = c->to_head ? t->head_done : t->done && t->code == CURLE_OK;
    if (woke == 0 && !t->shut_down && answered)
        rc = take_response(t, req);
    else
        rc = httpc_stopped(t, woke, now, c->deadline);
    if (rc < 0 || !c->to_head) {
        transfer_free(c->sc, t);
        return rc;
    }
    c->t = t;
    return 0;
}

/* wv_retry's attempt: 0 with the answer, or an error; an answer that asks
 * for another attempt is kept and reported as -EAGAIN. */
static int attempt(void *arg, wv_retry_attempt *a)
{
    call *c = arg;
    if (c->kept)
        drop_kept(c); /* the answer before was not the last after all */
    if (a->number > 1)
        httpc_shard_count_retry(c->sc);
    c->attempts = a->number;
    int rc = attempt_once(c);
    if (rc < 0)
        return rc;
    int status = c->resp->status;
    if (a->number >= c->max_attempts || !httpc_retry_status(status))
        return 0;
    if (status == 429 || status == 503) {
        int64_t after =
            httpc_retry_after_ms(wv_httpc_header_get(c->resp, "Retry-After"), (int64_t)time(NULL));
        if (after > c->max_after_ms)
            return 0; /* asks for longer than we wait: that is the answer */
        if (after > 0)
            a->retry_after_ms = after;
    }
    c->kept = true;
    return wv_fail(-EAGAIN, "%s: HTTP %d", call_what(c), status);
}

static bool retryable(int rc, void *arg)
{
    call *c = arg;
    return c->kept || httpc_retry_error(rc);
}

/* Check the request and find the shard's client. */
static int call_begin(call *c, const wv_httpc_req *req, wv_httpc_response *resp)
{
    memset(c, 0, sizeof *c);
    if (!resp)
        return wv_fail(-EINVAL, "httpc: no response to fill");
    memset(resp, 0, sizeof *resp);
    if (!req || !req->url || !*req->url)
        return wv_fail(-EINVAL, "httpc: a request needs a URL");
    c->req = req;
    c->resp = resp;
    c->method = req->method ? req->method : req->body || req->body_read ? "POST" : "GET";
    char bad[128];
    const char *why = malformed(req, c->method, bad, sizeof bad);
    if (why)
        return wv_fail(-EINVAL, "%s: %s", call_what(c), why);
    int rc;

    c->start = wv_now();
    c->deadline = wv_deadline();
    if (req->timeout_ms > 0) {
        int64_t own = wv_after_ms(req->timeout_ms);
        if (own < c->deadline)
            c->deadline = own;
    }
    if (wv_cancelled())
        return wv_fail(-ECANCELED, "%s: cancelled", call_what(c));
    if (c->deadline != WV_NEVER && c->deadline <= c->start)
        return wv_fail(-ETIMEDOUT, "%s: the deadline had passed before the request began",
                       call_what(c));
    c->sc = httpc_shard_get(&rc);
    if (!c->sc)
        return rc;
    c->max_attempts =
        req->retry.attempts > 1 && httpc_retry_allowed(req, c->method) ? req->retry.attempts : 1;
    c->max_after_ms = req->retry.max_retry_after_ms > 0 ? req->retry.max_retry_after_ms
                                                        : HTTPC_DEFAULT_RETRY_AFTER_MAX_MS;
    return 0;
}

/* Every attempt the request may have, under its deadline. 0 with the
 * answer in resp (and c->t streaming), else the error; -EIO with resp
 * kept for fail_on_status. */
static int call_run(call *c)
{
    int64_t old = wv_deadline_set(c->deadline);
    int rc;
    if (c->max_attempts > 1) {
        wv_retry_opts o = {.max_attempts = c->max_attempts,
                           .base_ms = c->req->retry.base_ms,
                           .max_ms = c->req->retry.max_ms,
                           .retryable = retryable};
        rc = wv_retry(&o, attempt, c);
    } else {
        wv_retry_attempt a = {.number = 1};
        rc = attempt(c, &a);
    }
    wv_deadline_set(old);
    if (rc == -EAGAIN && c->kept)
        rc = 0; /* no attempt could follow: the last answer is the answer */
    else if (c->kept)
        drop_kept(c); /* the wait before the next attempt was cut short */
    c->kept = false;
    if (rc < 0)
        return rc;
    c->resp->attempts = c->attempts;
    if (c->req->fail_on_status && c->resp->status >= 400) {
        if (c->t) /* the body of an error is not streamed */
            transfer_free(c->sc, c->t);
        c->t = NULL;
        return wv_fail(-EIO, "%s: HTTP %d", call_what(c), c->resp->status);
    }
    return 0;
}

/* The streamed body into on_body, piece by piece, as it comes. */
static int deliver(call *c)
{
    httpc_transfer *t = c->t;
    const wv_httpc_req *req = c->req;
    int64_t old = wv_deadline_set(c->deadline);
    int rc;
    for (;;) {
        int64_t start = wv_now();
        int woke = httpc_pump(t, httpc_body_ready);
        size_t avail = httpc_down_avail(t);
        if (avail > 0) {
            t->down_pinned = true; /* the sink reads it in place, and may suspend */
            int r = req->on_body(req->on_body_arg, t->down.p + t->down_off, avail);
            t->down_pinned = false;
            if (r < 0) {
                char why[256];
                snprintf(why, sizeof why, "%s", wv_errmsg()[0] ? wv_errmsg() : wv_strerror(r));
                rc = wv_fail(r, "%s: the response body's sink failed: %s", call_what(c), why);
                break;
            }
            httpc_down_consume(t, avail);
            continue;
        }
        rc = t->done && t->code == CURLE_OK && woke == 0
                 ? 0
                 : httpc_stopped(t, woke, start, c->deadline);
        break;
    }
    wv_deadline_set(old);
    transfer_free(c->sc, t);
    c->t = NULL;
    return rc;
}

/* ------------------------------------------------------------- requests */

int wv_httpc_request(const wv_httpc_req *req, wv_httpc_response *resp)
{
    call c;
    int rc = call_begin(&c, req, resp);
    if (rc < 0)
        return rc;
    c.to_head = req->on_body != NULL;
    rc = call_run(&c);
    bool status_failed = rc == -EIO && c.resp->status >= 400 && req->fail_on_status;
    if (rc == 0 && c.t)
        rc = deliver(&c);
    if (rc < 0 && !status_failed) /* fail_on_status keeps the response */
        wv_httpc_response_free(resp);
    return rc;
}

int wv_httpc_open(const wv_httpc_req *req, wv_httpc_response *resp, wv_httpc_stream **out)
{
    if (!out)
        return wv_fail(-EINVAL, "httpc: no stream to open into");
    *out = NULL;
    if (req && req->on_body)
        return wv_fail(-EINVAL, "httpc: on_body is wv_httpc_request's; a stream is read");
    call c;
    int rc = call_begin(&c, req, resp);
    if (rc < 0)
        return rc;
    c.to_head = true;
    rc = call_run(&c);
    bool status_failed = rc == -EIO && c.resp->status >= 400 && req->fail_on_status;
    if (rc < 0) {
        if (!status_failed)
            wv_httpc_response_free(resp);
        return rc;
    }
    *out = httpc_stream_of(c.t);
    return 0;
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
