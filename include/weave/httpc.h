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
 *  - The response is read whole into memory, up to max_response bytes.
 *  - An HTTP error status (404, 503) is a response, not an error: the call
 *    returns 0 and resp.status says what the server said, unless the
 *    request asks for fail_on_status.
 *
 * Defaults (each a field of wv_httpc_req below): redirects followed, at
 * most 10, never from https:// to http://; TLS verified against the
 * system's CAs; compressed responses (gzip, deflate, br, zstd) asked for
 * and decoded; proxies from the environment (http_proxy, https_proxy,
 * all_proxy, no_proxy, as curl reads them); no cookies kept; connecting
 * gives up after 10 s; responses over 64 MiB refused.
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
 *   -EMSGSIZE      the response body is larger than max_response
 *   -ELOOP         more redirects than max_redirects
 *   -ECONNRESET    the connection broke before the response was complete
 *   -EIO           with fail_on_status: the server answered 400 or above
 *                  (the response is filled in all the same)
 *   -ESHUTDOWN     the runtime is stopping
 *   -ENOMEM        out of memory
 *   -EPERM         called outside a fiber
 */
#ifndef WEAVE_HTTPC_H
#define WEAVE_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* A request. Zero-initialise, then set what you need: every 0 / NULL
 * field means its default. Nothing is copied or kept after the call. */
typedef struct wv_httpc_req {
    const char *method; /* NULL = "GET", or "POST" when there is a body */
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
    size_t max_response;        /* body bytes accepted at most; 0 = 64 MiB; more: -EMSGSIZE */
    int max_redirects;          /* 0 = 10; < 0 = follow none: a 3xx is the response */
    wv_httpc_version version;   /* WV_HTTPC_AUTO */
    int64_t timeout_ms;         /* the whole request at most (the fiber's deadline
                                 * applies as well); 0 = only the deadline */
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
    bool fail_on_status; /* a status of 400 or above is -EIO (resp is still filled) */
} wv_httpc_req;

/* What came back. Every string and byte belongs to the response until
 * wv_httpc_response_free. */
typedef struct wv_httpc_response {
    int status;    /* 200, 404, ...: the last response's, after redirects */
    int version;   /* the HTTP version it came in: 10, 11, 20 */
    wv_buf body;   /* the body, decoded when it came compressed */
    char *url;     /* the URL that answered (after redirects) */
    int redirects; /* redirects followed */
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
 * status. On error *resp is empty, except for -EIO from fail_on_status,
 * where it holds the response. Either way free it with
 * wv_httpc_response_free. From a fiber only.
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

/* The calling shard's client, in figures. */
typedef struct wv_httpc_stats {
    int64_t in_flight;    /* requests running now */
    uint64_t requests;    /* requests started */
    uint64_t connections; /* connections opened (a reused one counts once) */
} wv_httpc_stats;

/* All zero on a shard that has made no request yet. */
void wv_httpc_stats_get(wv_httpc_stats *st);

#ifdef __cplusplus
}
#endif

#endif
