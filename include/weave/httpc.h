/*
 * weave's HTTP client: libcurl's multi-socket API driven by the shard's
 * loop. A fiber asks and suspends; the other fibers of its shard keep
 * running, and every fiber's transfer shares the shard's connections.
 *
 *     wv_httpc_response resp;
 *     int rc = wv_httpc_get("https://api.example.com/users/1", &resp);
 *     if (rc < 0)
 *         return rc;                 // wv_errmsg(): "GET https://...: why"
 *     if (resp.status == 200)
 *         use(resp.body.p, resp.body.n);
 *     wv_httpc_response_free(&resp);
 *
 * The model.
 *
 *  - Each shard has one client, made on the shard's first request and
 *    freed when the runtime stops: nothing to open, close or pass around.
 *    Any number of fibers of a shard may have requests in flight at once;
 *    they run together on the shard's loop (no thread per request).
 *  - Connections are kept and reused per shard, per host. Over https://,
 *    HTTP/2 is used when the server offers it (ALPN), and concurrent
 *    requests to that host then share one connection as streams.
 *  - A request honours the fiber's deadline (connecting, sending and
 *    receiving together) and its cancellation: the transfer is abandoned
 *    at once and its connection closed (over HTTP/2, only its stream).
 *  - The response is read whole into memory, up to max_response bytes;
 *    or streamed, with bounded memory: handed to on_body piece by piece,
 *    or read by the caller from a wv_httpc_stream. A request body may be
 *    streamed too, from body_read. A slow consumer pauses the transfer
 *    (the server is made to wait) instead of piling the body up.
 *  - Retries are off unless asked for (.retry.attempts): then GET, HEAD,
 *    PUT, DELETE and OPTIONS are tried again after a failure to connect
 *    and after 502, 503, 504 and 429 (waiting what Retry-After asks),
 *    with backoff, never past the fiber's deadline. POST and PATCH never.
 *  - Propagation, when asked (.from = the server request being handled):
 *    its X-Request-Id goes along, and the time left before the fiber's
 *    deadline as X-Request-Timeout-Ms, which a weave server turns back
 *    into its handler's deadline (wv_deadline_header in weave/http.h).
 *  - An HTTP error status (404, 503) is a response, not an error: the call
 *    returns 0 and resp.status says what the server said, unless the
 *    request asks for fail_on_status.
 *
 * Defaults (each a field of wv_httpc_req below): redirects followed, at
 * most 10, never from https:// to http://; TLS verified against the
 * system's CAs; compressed responses (gzip, deflate, br, zstd) asked for
 * and decoded; proxies from the environment (http_proxy, https_proxy,
 * all_proxy, no_proxy, as curl reads them); no cookies kept; connecting
 * gives up after 10 s; whole responses over 64 MiB refused; no retries;
 * nothing propagated.
 *
 * Errors are negative errno values with the detail in wv_errmsg() ("GET
 * URL: reason", the URL shown without its password or secret parameters):
 *
 *   -EINVAL        a malformed URL or header, a scheme other than http or
 *                  https, bad options
 *   -EHOSTUNREACH  the host's (or the proxy's) name does not resolve
 *   -ECONNREFUSED  nothing listens there (-ENETUNREACH and the like when
 *                  the system says so)
 *   -EPROTO        TLS failed: the server's certificate did not verify
 *                  (wv_errmsg has the reason: "self-signed certificate"),
 *                  or the handshake failed; or a redirect from https:// to
 *                  http:// was refused; or the server broke HTTP
 *   -ETIMEDOUT     the fiber's deadline (or timeout_ms, or
 *                  connect_timeout_ms) passed
 *   -ECANCELED     the fiber was cancelled
 *   (any)          what body_read or on_body returned, when it failed
 *   -EPIPE         body_read ended before body_len bytes
 *   -EMSGSIZE      the response body is larger than max_response
 *   -ELOOP         more redirects than max_redirects
 *   -ECONNRESET    the connection broke before the response was complete
 *   -EIO           with fail_on_status: the server answered 400 or above
 *                  (the response is filled in all the same)
 *   -ESHUTDOWN     the runtime is stopping
 *   -EXDEV         a wv_httpc_stream used from another shard than its own
 *   -ENOMEM        out of memory
 *   -EPERM         called outside a fiber
 */
#ifndef WEAVE_HTTPC_H
#define WEAVE_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weave/buf.h"
#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A header field: NUL-terminated name and value. */
typedef struct wv_httpc_header {
    const char *name;
    const char *value;
} wv_httpc_header;

/* Which HTTP to speak. */
typedef enum wv_httpc_version {
    /* https://: HTTP/2 when the server offers it by ALPN, else HTTP/1.1;
     * http://: HTTP/1.1 */
    WV_HTTPC_AUTO = 0,
    /* HTTP/1.1 only */
    WV_HTTPC_HTTP1,
    /* HTTP/2 on http:// too, with prior knowledge (h2c, no upgrade
     * dance), for servers known to speak it; over https:// as AUTO (ALPN
     * decides, and a server without h2 gets HTTP/1.1) */
    WV_HTTPC_HTTP2,
} wv_httpc_version;

/*
 * A request body produced while it is sent (body_read). Called in the
 * requesting fiber whenever there is room for more: it may suspend (read
 * from another stream, wait for a channel), and the transfer waits for it
 * meanwhile, under the fiber's deadline. Put up to n bytes in buf and
 * return how many; 0 at the end of the body; a negative errno abandons the
 * request, which then returns that error. At most 64 KiB of it is held at
 * a time.
 */
typedef ssize_t wv_httpc_source_fn(void *arg, void *buf, size_t n);

/*
 * Where a response body goes as it arrives (on_body). Called in the
 * requesting fiber with each piece, in order, once the response's head is
 * in *resp: it may suspend (write to its own client: wv_res_write), and
 * the transfer is paused meanwhile, so a slow sink holds the server back
 * instead of filling memory. 0 to go on; a negative errno abandons the
 * request, which then returns that error.
 */
typedef int wv_httpc_sink_fn(void *arg, const void *data, size_t n);

/* Retries (wv_httpc_req.retry). All zero: none, as in requests and httpx. */
typedef struct wv_httpc_retry {
    /* attempts in all, the first included; 0 or 1 = no retry. Only GET,
     * HEAD, PUT, DELETE and OPTIONS are retried, and not with body_read
     * (a streamed body cannot be sent again); a POST or PATCH is sent once.
     * Retried: failing to connect (-ECONNREFUSED, -EHOSTUNREACH,
     * -ENETUNREACH: nothing was sent), and the statuses 502, 503, 504 and
     * 429. When the attempts run out, the last answer is what the call
     * returns (a 503 is then a response, as ever) */
    int attempts;
    int64_t base_ms; /* backoff: a random wait up to base_ms * 2^(n-1); 0 = 100 */
    int64_t max_ms;  /* no backoff longer than this; 0 = 10000 */
    /* a 429's or a 503's Retry-After (seconds, or an HTTP date) is waited
     * for, if it is longer than the backoff; when it asks for more than
     * this, no retry: that answer is returned at once. 0 = 30000 */
    int64_t max_retry_after_ms;
} wv_httpc_retry;

struct wv_req;

/* A request. Zero-initialise, then set what you need: every 0 / NULL
 * field means its default. Nothing is copied or kept after the call. */
typedef struct wv_httpc_req {
    const char *method; /* NULL = "GET", or "POST" when there is a body (or body_read) */
    const char *url;    /* http:// or https:// (required) */
    /* extra request headers, sent as given; one whose name curl would
     * send itself replaces curl's (Accept, User-Agent, Content-Type, ...).
     * A name that is not a token or a value holding CR or LF is
     * -EINVAL, and nothing is sent. */
    const wv_httpc_header *headers;
    size_t nheaders;
    /* the body, sent with Content-Length (POST, PUT and PATCH send
     * "Content-Length: 0" without one). No Content-Type is added: give one
     * in headers. */
    const void *body;
    size_t body_len;
    /* or a body streamed from a source (not with `body`): body_len is then
     * its length if known, sent as Content-Length, and exactly that many
     * bytes are read; 0 = not known: sent chunked over HTTP/1.1 (a server
     * that needs the length, such as S3, wants body_len) */
    wv_httpc_source_fn *body_read;
    void *body_read_arg;
    /* the response body to this sink as it arrives, instead of into
     * resp.body (max_response does not apply) */
    wv_httpc_sink_fn *on_body;
    void *on_body_arg;
    size_t max_response;        /* whole body bytes accepted at most; 0 = 64 MiB; more: -EMSGSIZE */
    int max_redirects;          /* 0 = 10; < 0 = follow none: a 3xx is the response */
    wv_httpc_version version;   /* WV_HTTPC_AUTO */
    int64_t timeout_ms;         /* the whole request at most, retries included (the
                                 * fiber's deadline applies as well); 0 = only the deadline */
    int64_t connect_timeout_ms; /* each connect, TLS included; 0 = 10000 */
    const char *ca_file;        /* CAs to trust (PEM); NULL = the system's */
    bool insecure;              /* do not verify the server's certificate (tests only) */
    /* NULL: the proxy the environment names for the URL (http_proxy,
     * https_proxy, all_proxy, unless no_proxy matches); "" = none, even if
     * the environment names one; else this proxy's URL */
    const char *proxy;
    bool no_decompress; /* send no Accept-Encoding, decode nothing */
    /* keep cookies the server sets during this request's redirects and
     * send them on the following hops (a login that redirects); off by
     * default, and never kept past the request */
    bool cookies;
    bool fail_on_status;  /* a status of 400 or above is -EIO (resp is still filled) */
    wv_httpc_retry retry; /* none unless asked */
    /* the server request this call is made for (a handler's req): its id
     * (wv_req_id) is sent as X-Request-Id, and when the fiber has a
     * deadline, the whole milliseconds left before it (or before
     * timeout_ms, if sooner) as X-Request-Timeout-Ms, at each attempt.
     * A header of either name in `headers` wins. NULL: neither is sent */
    const struct wv_req *from;
} wv_httpc_req;

/* What came back. Every string and byte belongs to the response until
 * wv_httpc_response_free. */
typedef struct wv_httpc_response {
    int status;    /* 200, 404, ...: the last response's, after redirects */
    int version;   /* the HTTP version it came in: 10, 11, 20 */
    wv_buf body;   /* the body, decoded when it came compressed */
    char *url;     /* the URL that answered (after redirects) */
    int redirects; /* redirects followed */
    int attempts;  /* attempts made: 1, or more after retries */
    /* the response's header fields in the order they came (of the last
     * response when redirects were followed; names as the server spelled
     * them, values without surrounding whitespace) */
    wv_httpc_header *headers;
    size_t nheaders;
    char *head_; /* private: the bytes headers point into */
} wv_httpc_response;

/*
 * Send req and wait for the whole response (see the top of this file for
 * the errors). On success (0) *resp holds the response, whatever its
 * status; with on_body set, its body went to the sink and resp.body is
 * empty. On error *resp is empty, except for -EIO from fail_on_status,
 * where it holds the response (with on_body: its head, and the sink never
 * saw the body). Either way free it with wv_httpc_response_free. From a
 * fiber only.
 */
int wv_httpc_request(const wv_httpc_req *req, wv_httpc_response *resp);

/* GET url: wv_httpc_request with every default. */
int wv_httpc_get(const char *url, wv_httpc_response *resp);

/* POST n bytes of body to url with that Content-Type (NULL: none). */
int wv_httpc_post(const char *url, const char *content_type, const void *body, size_t n,
                  wv_httpc_response *resp);

/* The value of the first header field of that name (ASCII
 * case-insensitive), or NULL. */
const char *wv_httpc_header_get(const wv_httpc_response *resp, const char *name);

/* Free what the response holds and zero it; a zeroed response is
 * harmless. */
void wv_httpc_response_free(wv_httpc_response *resp);

/*
 * A response read as it arrives, by the caller:
 *
 *     wv_httpc_stream *s;
 *     wv_httpc_response resp;
 *     int rc = wv_httpc_open(&(wv_httpc_req){.url = url}, &resp, &s);
 *     if (rc < 0)
 *         return rc;
 *     char buf[16384];
 *     ssize_t n;
 *     while ((n = wv_httpc_read(s, buf, sizeof buf)) > 0)
 *         use(buf, n);               // n < 0: the error; 0: the end
 *     wv_httpc_close(s);
 *     wv_httpc_response_free(&resp);
 */
typedef struct wv_httpc_stream wv_httpc_stream;

/*
 * Send req (a body_read body is streamed out meanwhile) and wait for the
 * final response's head: *resp then has the status, version, URL,
 * redirects and header fields, and an empty body; the body is read with
 * wv_httpc_read. Retries, when asked, happen here, before the head is
 * handed over. Errors as wv_httpc_request (max_response does not apply;
 * on_body is -EINVAL: the caller reads). On error *out is NULL and *resp
 * empty, but for -EIO from fail_on_status: *resp then holds the head, and
 * the body is not kept. Free *resp with wv_httpc_response_free and *out
 * with wv_httpc_close. A stream belongs to the shard that opened it, and
 * is read by one fiber at a time.
 */
int wv_httpc_open(const wv_httpc_req *req, wv_httpc_response *resp, wv_httpc_stream **out);

/*
 * Read up to n bytes of the body, suspending until some have come: the
 * count, 0 at its end, or an error (those of the top of this file). Holds
 * the fiber's deadline and the request's; an error (-ETIMEDOUT,
 * -ECANCELED, -ECONNRESET, ...) ends the transfer, and every later read
 * returns it again. While nobody reads, at most 256 KiB of the body waits
 * in memory and the transfer is paused. From the stream's shard only.
 */
ssize_t wv_httpc_read(wv_httpc_stream *s, void *buf, size_t n);

/* Close: a body read to its end leaves the connection for the next
 * request; else the transfer is abandoned (its connection closed, or over
 * HTTP/2 its stream reset). Never suspends. NULL is ignored. */
void wv_httpc_close(wv_httpc_stream *s);

/* The calling shard's client, in figures. */
typedef struct wv_httpc_stats {
    int64_t in_flight;    /* requests running now (open streams included) */
    uint64_t requests;    /* requests started (each attempt counts) */
    uint64_t connections; /* connections opened (a reused one counts once) */
    uint64_t retries;     /* attempts after a request's first */
} wv_httpc_stats;

/* All zero on a shard that has made no request yet. */
void wv_httpc_stats_get(wv_httpc_stats *st);

#ifdef __cplusplus
}
#endif

#endif
