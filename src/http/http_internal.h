/*
 * Private structures of the HTTP server (src/http/): a connection, a
 * request, a response, a route, a shard's server state.
 *
 * One fiber per connection runs conn_serve: read into the connection's
 * buffer, parse a head (parser.c), dispatch through the router (router.c,
 * routes.c), run the handler, append the response to the connection's
 * output buffer, and write the batch with one writev once no further
 * pipelined request is waiting. Strings handed to handlers point into the
 * read buffer, which does not move while a handler runs.
 */
#ifndef WEAVE_HTTP_INTERNAL_H
#define WEAVE_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "http/parser.h"
#include "http/router.h"
#include "weave/http.h"
#include "weave/net.h"

#pragma GCC visibility push(hidden)

typedef struct http_server http_server;
typedef struct conn conn;
typedef struct route route;

/* A registered route: what the radix tree's handler pointer points at. */
struct route {
    wv_handler *handler;
    void *data;                /* wv_route_with's pointer */
    wv_router *group;          /* whose middleware chain applies */
    route *next_owned;         /* the root's list, in registration order */
    char *method;              /* as registered ("GET", "*") */
    char *pattern;             /* the full pattern, the group's prefix included */
    const wv_route_info *info; /* wv_route_doc's description, or NULL */
};

/* Something a route or middleware needs until the router is freed. */
struct kept {
    void *p;
    void (*free_fn)(void *p);
    struct kept *next;
};

typedef struct mw_entry {
    wv_middleware mw;
    struct mw_entry *next;
} mw_entry;

struct wv_router {
    router *tree;      /* shared by the root and all its groups */
    struct kept *kept; /* root only: objects routes and middleware use */
    wv_router *root;
    wv_router *parent;
    char *prefix;      /* full prefix from the root */
    mw_entry *mws;     /* this group's own middleware, in order */
    wv_router *groups; /* children (owned) */
    wv_router *next_sibling;
    route *routes;       /* root only: every route, in registration order */
    route **routes_tail; /* root only: where the next route is linked */
};

/* wv_req_state_set's values, in the request arena. */
typedef struct req_state {
    const void *key;
    void *value;
    void (*free_fn)(void *value);
    struct req_state *next;
} req_state;

/* Arena blocks for wv_req_alloc. The newest block (wv_req.arena) also
 * holds the head of wv_req_state_set's list, copied into each new block,
 * so that wv_req itself (on the connection fiber's stack, whose touched
 * pages are a connection's memory) does not grow for it. */
typedef struct arena_block {
    struct arena_block *next;
    struct req_state *state;
    size_t used, cap;
    char data[];
} arena_block;

struct wv_req {
    conn *c;
    const wv_http_exchange *x; /* carried by another protocol (HTTP/2), else NULL */
    http_request h;
    size_t head_len;
    route *rt;
    wv_str route_pattern;
    /* body */
    int64_t body_left; /* Content-Length bytes not yet read; -1 when chunked */
    http_chunked chunk;
    bool chunked;
    bool body_done;
    bool continue_pending; /* Expect: 100-continue not yet answered */
    bool body_started;     /* wv_req_read has begun a Content-Length body */
    bool body_whole;       /* wv_req_body has returned the body (body_view) */
    bool body_timed_out;   /* the body deadline passed: 408, close */
    bool body_refused;     /* a chunk declared past the limit: 413, close */
    size_t chunk_limit;    /* wv_req_body of a chunked body: max_body (else 0) */
    size_t chunk_total;    /* decoded bytes delivered so far */
    int64_t body_deadline; /* set at the first body read */
    size_t pending;        /* chunked: decoded bytes at the front, not yet delivered */
    size_t pending_skip;   /* chunked: framing after them, already decoded */
    wv_buf body;           /* a body that had to be copied (chunked, or too big) */
    wv_str body_view;      /* the whole body, once read */
    wv_buf trailer_lines;  /* chunked: the trailer section's "Name: value\r\n" lines */
    /* id */
    wv_str id;
    bool id_from_client;
    arena_block *arena; /* the newest first; it heads wv_req_state_set's list */
    int64_t start_ns;
    /* req_init clears everything above; what follows is written before it
     * is read (the id's text, the match's arrays past nparams) */
    char id_buf[40];
    route_match m;
};

struct wv_res {
    conn *c;
    wv_req *req;
    const wv_http_exchange *x; /* the request's: the response goes through x->ops */
    int status;
    wv_buf headers;  /* extra "Name: value\r\n" lines */
    wv_buf trailers; /* wv_res_trailer's "Name: value\r\n" lines */
    bool started;    /* head sent or queued */
    bool streaming;
    bool chunked;
    bool head_only;             /* HEAD: no body bytes */
    bool close;                 /* Connection: close after this response */
    bool encoded;               /* has a Content-Encoding (ours or the handler's) */
    bool upgraded;              /* 101: the connection now belongs to another protocol */
    void (*on_done)(void *arg); /* run once the handler has returned */
    void *on_done_arg;
    wv_json json; /* wv_res_json_writer's writer, into json_buf */
    wv_buf json_buf;
    int64_t body_bytes;
    int64_t length; /* wv_res_begin_length's promise, else -1 */
};

struct conn {
    wv_stream *s; /* plain or TLS */
    http_server *srv;
    char *rbuf;
    size_t rstart, rlen, rcap; /* unconsumed bytes are rbuf[rstart..rlen) */
    wv_buf out;                /* responses waiting for one writev */
    http_header *hdrs;         /* the current request's headers (own_headers) */
    int hdrs_cap;              /* slots in hdrs */
    bool idle;                 /* waiting for the first byte of a request */
    bool upgraded;             /* handed to another protocol (WebSocket) by a 101 */
    bool linger;               /* unread input may remain: half-close and drain before close */
    bool dead;                 /* a write failed: stop */
    bool served;               /* a request was answered: later waits are keep-alive idle */
    bool h2;                   /* handed to HTTP/2 (wv_h2_serve) */
    void (*on_stop)(void *);   /* wv_http_conn_on_stop: the protocol's goodbye */
    void *on_stop_arg;
    conn *prev, *next;
    char peer[64];
};

struct http_server {
    wv_router *root;
    wv_http_opts o;         /* with defaults filled in */
    size_t server_name_len; /* strlen(o.server_name), for every response head */
    http_limits limits;
    int lfd;
    conn *conns;
    int nconns;
    bool stopping;
    wv_event slot_free; /* set when nconns drops below the cap */
    wv_group *group;
    wv_buf json_spare;   /* a JSON body buffer kept between responses (response.c) */
    http_header *parsed; /* max_headers slots the parser fills; each request
                          * copies its own out before anything can yield */
};

/* request.c */
void req_init(wv_req *req, conn *c);
void req_finish(wv_req *req);                  /* frees the arena and body copy */
int req_discard_body(wv_req *req, size_t max); /* read and drop what the handler left */

/* response.c */
void res_init(wv_res *res, conn *c, wv_req *req);
void res_finish(wv_res *res);
/* End a streamed response that failed midway: no last chunk, the
 * connection closed, so the client sees a cut body, never a whole one. */
void res_abort(wv_res *res);
int res_flush(conn *c);
int res_send_file_head(wv_res *res, int status, const char *content_type, int64_t len);
int res_simple_error(conn *c, int status, const char *detail, bool close);
const char *http_date_now(void); /* "Wed, 25 Nov 2026 20:30:00 GMT", per thread, per second */

/* compress.c */
enum { ENC_NONE, ENC_GZIP, ENC_BR, ENC_ZSTD };
bool compress_type_ok(const char *ctype);
int compress_pick(wv_str accept_encoding);
const char *compress_name(int enc);
int compress_body(wv_req *req, int enc, const void *in, size_t n, const char **out, size_t *outlen);

/* routes.c */
int router_keep(wv_router *root, void *p, void (*free_fn)(void *p));
route *routes_dispatch_target(wv_router *root, wv_req *req, int *kind);
int run_route(wv_req *req, wv_res *res, route *rt, wv_router *chain_of);

/* server.c: between requests, make room and read; >0 bytes, 0 EOF, <0 */
ssize_t conn_fill(conn *c, size_t min_free);
/* server.c: serve one connection on fd (taken; closed at its end) with
 * router r and options opts, in the calling fiber, as an accepted one is
 * served (h2c sniffing included): for the fuzzers (fuzz/fuzz_h2_server.c),
 * with no socket to listen on. 0, or -ENOMEM / wv_stream_open's error. */
int http_serve_fd(wv_router *r, const wv_http_opts *opts, int fd);
/* server.c: route and run a request whose res is initialised, answer for
 * a handler that did not, log it, run on_done */
void http_handle(wv_req *req, wv_res *res);
/* server.c: opts (NULL: none) with every 0 replaced by its default, as a
 * server runs with them (the test client's requests too, testclient.c) */
wv_http_opts http_opts_with_defaults(const wv_http_opts *in);

#pragma GCC visibility pop

#endif
