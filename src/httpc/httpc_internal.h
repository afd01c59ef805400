/*
 * Private structures of the HTTP client, shared by the files of
 * src/httpc/.
 *
 * The picture. Each shard has one httpc_shard (shard.c), made by its first
 * request: a curl multi handle, a share of TLS sessions, and the two fibers
 * that drive the multi handle from the shard's loop (the io fiber watches
 * curl's sockets, the timer fiber keeps curl's timer). A request
 * (request.c) is an httpc_transfer: an easy handle set up from
 * wv_httpc_req, added to the multi handle, and the requesting fiber
 * waiting on the transfer's event. Transfers are kept in a pool per
 * shard, each with its easy handle, which keeps its options from one
 * request to the next: what every transfer has is set once, when the
 * handle is made, and a request sets only what differs from what the
 * last one left (httpc_easy_opts). Whichever fiber drives curl when the
 * transfer ends takes it out of the multi handle and sets the event; a
 * fiber that stops waiting (deadline, cancellation) takes its transfer out
 * itself, which aborts it at once. body.c moves streamed bodies between
 * curl's callbacks and the requesting fiber (bounded buffers, pause and
 * unpause) and owns wv_httpc_stream; retry.c decides what may be tried
 * again and reads Retry-After; error.c turns curl's result into an errno
 * and a reason; response.c turns the received head into header fields.
 *
 * Every curl call of a shard happens on that shard's thread, in one of its
 * fibers, and none of the callbacks suspends: so curl is never entered
 * twice at once and needs no lock. Whatever may suspend (a body's source,
 * a body's sink, the caller reading a stream) runs in the requesting
 * fiber, outside curl, and meets the callbacks through the transfer's
 * buffers and its event.
 */
#ifndef WEAVE_HTTPC_INTERNAL_H
#define WEAVE_HTTPC_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weave/buf.h"
#include "weave/httpc.h"
#include "weave/rt.h"
#include "weave/str.h"

#pragma GCC visibility push(hidden)

#define HTTPC_NS_PER_MS INT64_C(1000000)

enum {
    HTTPC_DEFAULT_MAX_REDIRECTS = 10,
    HTTPC_DEFAULT_CONNECT_MS = 10000,
    HTTPC_MAX_HEAD = 1 << 20,   /* bytes of response head kept at most */
    HTTPC_UP_CAP = 64 << 10,    /* a streamed request body's buffer */
    HTTPC_DOWN_CAP = 256 << 10, /* a streamed response body's buffer: past it, curl pauses */
    HTTPC_DEFAULT_RETRY_AFTER_MAX_MS = 30000,
};
#define HTTPC_DEFAULT_MAX_RESPONSE ((size_t)64 << 20)

typedef struct httpc_transfer httpc_transfer;
typedef struct httpc_shard httpc_shard;

/* The options of an easy handle that differ from one request to the next,
 * as the last request on the handle left them: set_up (request.c) sets
 * only those that this request wants otherwise. Numbers and flags as curl
 * takes them (long), so that what is kept is what was set. */
typedef struct httpc_easy_opts {
    bool known;     /* false: nothing is kept yet, every option is set */
    bool plain_get; /* the method options are curl's own: a GET without a body */
    bool proxy;     /* CURLOPT_PROXY is set (NULL gives the environment's back) */
    char *ca_file;  /* a copy of CURLOPT_CAINFO's; NULL: curl's default */
    long follow, max_redirects, https_only, decode, version, pipewait, insecure;
    long timeout_ms, connect_ms;
    curl_off_t max_file;
} httpc_easy_opts;

/* One request in flight: taken from the shard's pool (httpc_transfer_take)
 * and given back when it is over, or handed to the caller behind a
 * wv_httpc_stream until it is closed. */
struct httpc_transfer {
    /* kept while the transfer waits in the pool */
    httpc_shard *sc;
    CURL *easy; /* its callbacks' data is this transfer, set once */
    httpc_easy_opts opts;
    httpc_transfer *pool_next;
    char errbuf[CURL_ERROR_SIZE]; /* curl's words on a failure; emptied for each request */
    char what[320];               /* httpc_what's, once made; emptied for each request */

    /* the request's: every field from here on is zeroed when it is taken */
    const char *method, *url; /* the request's, for httpc_what (url: NULL once a stream) */
    struct curl_slist *headers;
    wv_httpc_response *resp; /* where the head (and a whole body) goes */
    size_t max_response;
    wv_buf head;      /* the header lines of the response being received */
    bool head_seen;   /* a status line has come */
    bool too_big;     /* the body passed max_response */
    bool head_big;    /* the head passed HTTPC_MAX_HEAD */
    bool no_memory;   /* a callback could not grow a buffer */
    bool in_multi;    /* added to the multi handle, not taken out yet */
    bool done;        /* curl finished it (code is its result) */
    bool shut_down;   /* taken out because the client is closing */
    int socket_errno; /* why the last socket could not be made (curl keeps no errno) */
    CURLcode code;
    wv_event wake; /* set by every callback that changes what the fiber waits for */
    httpc_transfer *prev, *next;

    /* the response's head, as the header callback sees it */
    bool follows;       /* redirects are followed */
    int head_status;    /* the status of the head being received */
    bool head_location; /* it has a Location */
    bool head_done;     /* the final response's head is complete */

    /* a response body streamed (wv_httpc_open, on_body): into `down`, at
     * most HTTPC_DOWN_CAP bytes, then curl is paused until the fiber has
     * taken some; else the whole body goes into resp->body */
    bool streaming;
    bool recv_paused;
    bool down_pinned; /* a sink is reading `down` in place: it must not move */
    wv_buf down;
    size_t down_off; /* bytes of `down` already taken */

    /* a request body streamed from a source (body_read): the fiber fills
     * `up`, curl's read callback empties it, pausing when it is empty */
    wv_httpc_source_fn *source;
    void *source_arg;
    char *up;
    size_t up_off, up_len; /* taken by curl / filled by the fiber */
    bool up_dropped;       /* bytes curl took are gone from `up` (no rewind) */
    bool up_eof;           /* the source is done (or body_len bytes were read) */
    int64_t up_left;       /* body_len bytes still to read; -1 when not known */
    int64_t up_total;      /* bytes read from the source */
    bool send_paused;
    bool source_failed; /* the pump's error is the source's (message set) */

    int max_redirects; /* the request's bound, for messages */
    bool reusable;     /* the easy handle may serve another request */

    /* behind a wv_httpc_stream */
    bool is_stream;
    bool busy;        /* a fiber is inside a call on it */
    bool orphan;      /* the client closed under it: no easy handle, no shard */
    int stream_error; /* sticky: what every later read returns */
    int64_t deadline; /* the request's own (timeout_ms), WV_NEVER when none */
};

/* Where the per-request fields of an httpc_transfer begin. */
#define HTTPC_TRANSFER_REQUEST offsetof(httpc_transfer, method)

/* shard.c: the calling shard's client, made on first use. NULL with *err
 * set: -EPERM outside the runtime, -ESHUTDOWN while it stops, -ENOMEM. */
httpc_shard *httpc_shard_get(int *err);

/* A transfer for a new request: one from the shard's pool, its easy handle
 * as the last request left it (t->opts says how), or a new one; its
 * per-request fields zeroed. NULL when out of memory. */
httpc_transfer *httpc_transfer_take(httpc_shard *sc);

/* t's request is over (httpc_transfer_end was called, or it never
 * started): free what the request held, and put t back into sc's pool when
 * it may serve another request, else free it with its easy handle. A
 * handle that kept cookies, or whose transfer ended paused, is not
 * reused. sc NULL: t is an orphan, freed. */
void httpc_transfer_give(httpc_shard *sc, httpc_transfer *t, bool reusable);

/* Put t's easy handle back to curl's defaults and set again what every
 * transfer has (the callbacks, whose data is t; the TLS session share;
 * the runtime's sockets): the only way back to some defaults (curl's CA
 * file). t->opts is forgotten. 0, or -ENOMEM (then the handle is unusable:
 * give t back as not reusable). */
int httpc_easy_reset(httpc_transfer *t);

/* Add t (set up) to the multi handle; its fiber then waits on wake. */
int httpc_transfer_start(httpc_shard *sc, httpc_transfer *t);

/* Take t out of the multi handle if it is still in it (abandoning it:
 * its connection is closed, or over HTTP/2 its stream reset). */
void httpc_transfer_abort(httpc_shard *sc, httpc_transfer *t);

/* The fiber is done with t: take it out of the multi handle if it is still
 * there, and forget it (httpc_transfer_give comes next). */
void httpc_transfer_end(httpc_shard *sc, httpc_transfer *t);

/* The client is closing and t is a stream no fiber is using: free its
 * easy handle now and leave t without one (reads: -ESHUTDOWN). */
void httpc_transfer_orphan(httpc_shard *sc, httpc_transfer *t);

/* The header list of a request without headers of its own: the shard's,
 * shared, living as long as the shard. Accept-Encoding when `decode`;
 * empty Content-Type and Expect when the request `sends_body`. */
const struct curl_slist *httpc_shard_headers(httpc_shard *sc, bool decode, bool sends_body);

/* Append a copy of line to *list; false when out of memory (*list kept). */
bool httpc_slist_add(struct curl_slist **list, const char *line);

/* "Accept-Encoding: ...": every coding this curl decodes, as curl names
 * them when CURLOPT_ACCEPT_ENCODING is "" ("deflate, gzip, br, zstd"). */
const char *httpc_accept_encoding(void);

/* Is sc the calling shard's client? */
bool httpc_shard_is_here(const httpc_shard *sc);

/* Count an attempt after the first (wv_httpc_stats.retries). */
void httpc_shard_count_retry(httpc_shard *sc);

/* body.c: curl's body and head callbacks, installed by request.c. */
size_t httpc_on_header(char *p, size_t size, size_t n, void *arg);
size_t httpc_on_body(char *p, size_t size, size_t n, void *arg);
size_t httpc_on_read(char *p, size_t size, size_t n, void *arg);
int httpc_on_seek(void *arg, curl_off_t offset, int origin);

/* body.c: run t from the requesting fiber until until(t) holds, it is done,
 * or the client shuts down: fill the upload from its source, let curl go
 * on where it paused, wait for the callbacks otherwise. 0, the wait's
 * error (-ETIMEDOUT, -ECANCELED), or the source's (wv_errmsg set). */
int httpc_pump(httpc_transfer *t, bool (*until)(const httpc_transfer *t));

/* Predicates for httpc_pump. */
bool httpc_head_ready(const httpc_transfer *t);
bool httpc_body_ready(const httpc_transfer *t);
bool httpc_never(const httpc_transfer *t);

/* Bytes of a streamed body waiting in t->down. */
static inline size_t httpc_down_avail(const httpc_transfer *t)
{
    return t->down.n - t->down_off;
}

/* Take k bytes of t->down (they have been delivered), and let curl go on
 * if it paused and there is room again. */
void httpc_down_consume(httpc_transfer *t, size_t k);

/* Free t's body buffers. */
void httpc_bodies_free(httpc_transfer *t);

/* request.c: "METHOD URL" for t's messages, the URL without its secrets
 * (made on first use). */
const char *httpc_what(httpc_transfer *t);

/* request.c: why t stopped short of what its fiber waited for: the
 * negative errno, with wv_errmsg set. `woke` is httpc_pump's result,
 * `start` when the wait began, `deadline` the wait's. */
int httpc_stopped(httpc_transfer *t, int woke, int64_t start, int64_t deadline);

/* body.c: t (on the heap) handed to the caller as a stream. */
wv_httpc_stream *httpc_stream_of(httpc_transfer *t);

/* retry.c */
/* May this request be tried again at all (method, body)? */
bool httpc_retry_allowed(const wv_httpc_req *req, const char *method);
/* Is this status worth another attempt (502, 503, 504, 429)? */
bool httpc_retry_status(int status);
/* Is this error one of failing to connect (nothing was sent)? */
bool httpc_retry_error(int rc);
/* Retry-After's value in ms from now (`now` is the wall clock's seconds
 * since 1970): delta-seconds or an HTTP date in any of its three forms;
 * a date in the past is 0. -1 when it is neither. */
int64_t httpc_retry_after_ms(const char *value, int64_t now);

/* error.c: what a failed transfer means. */
typedef struct httpc_failure {
    CURLcode code;
    int os_errno;        /* CURLINFO_OS_ERRNO: the system's reason, 0 if none */
    int socket_errno;    /* socket(2) failed with it (curl keeps no errno then), or 0 */
    const char *detail;  /* curl's own words (its error buffer); "" when none */
    int max_redirects;   /* the request's bound */
    size_t max_response; /* the request's limit */
    const char *refused; /* for a refused redirect: where it led (NULL if unknown) */
} httpc_failure;

/* The negative errno for f, with the reason (without the request's method
 * and URL) written to why. */
int httpc_error(const httpc_failure *f, char *why, size_t cap);

/* response.c: move the head received (status line and header lines) into
 * resp->headers; head is emptied (its memory now belongs to resp).
 * 0 or -ENOMEM. */
int httpc_response_take_head(wv_httpc_response *resp, wv_buf *head);

#pragma GCC visibility pop

/* Header names compared ignoring ASCII case, whatever the locale says. */
static inline bool httpc_name_eq(const char *a, const char *b)
{
    return wv_str_ieq((wv_str){a, strlen(a)}, (wv_str){b, strlen(b)});
}

#endif
