/*
 * HTTP/2 server connections on nghttp2 (RFC 9113), serving the HTTP
 * server's routes through its exchange seam (weave/http.h).
 *
 * nghttp2's session is the sans-I/O engine: bytes in (mem_recv), frames
 * out (mem_send), events through callbacks. Around it, per connection:
 *
 *  - the reader: the connection's own fiber (wv_h2_serve's caller) reads
 *    the stream and feeds the session; its callbacks only record what
 *    came and wake fibers, they never suspend;
 *  - the writer: a fiber that drains mem_send into batches of up to
 *    H2_WRITE_BATCH bytes and writes them, woken by `kick` whenever anything
 *    may have become sendable;
 *  - one fiber per request stream, started once its head is complete,
 *    running the route through wv_http_exchange_run. Its response body
 *    goes into the stream's buffer (at most OUT_CAP bytes; a write waits
 *    for room), which the data provider drains as the peer's flow-control
 *    window allows, deferring when it is empty. Its request body arrives
 *    in the stream's input buffer, bounded by the stream's window: the
 *    window is reopened (nghttp2_session_consume) only for bytes the
 *    handler has read.
 *
 * All of them are fibers of one shard, so the session needs no lock.
 * Abuse ends the connection with GOAWAY: more than RESET_LIMIT
 * RST_STREAMs from the peer within RESET_WINDOW_MS (rapid reset,
 * CVE-2023-44487) or more than EMPTY_LIMIT empty DATA frames that do not
 * end their stream (CVE-2019-9518) is ENHANCE_YOUR_CALM, and so are
 * nghttp2's own flood checks (PING and SETTINGS ACKs piling up,
 * CONTINUATION floods); a handler per stream is never started beyond
 * max_streams running at once (a stream past it is refused), so resets
 * cannot pile up handlers either.
 *
 * Timeouts: a connection with no stream is closed after the idle timeout;
 * one whose open streams all wait on the peer (no handler running: a body
 * or a header block never finished, a response's tail held by the peer's
 * window) has its streams reset once the peer has sent nothing for the
 * body timeout (noticed within two of them); a handler reading a body has
 * the body timeout of its own.
 */
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "h2io/h2io.h"
#include "weave/h2.h"

enum {
    READ_BUF = 16384,
    OUT_CAP = 64 * 1024,       /* a stream's response buffer */
    CONN_WINDOW = 1024 * 1024, /* the connection's receive window */
    RESET_LIMIT = 200,
    RESET_WINDOW_MS = 10000,
    EMPTY_LIMIT = 1000,             /* empty DATA frames without END_STREAM per RESET_WINDOW_MS */
    GOODBYE_MS = 1000,              /* to send a GOAWAY that ends a connection */
    DISCARD_MAX = 16 * 1024 * 1024, /* request body left unread: dropped up to this, then RST */
    SPARE_MAX = 32,                 /* ended streams kept for reuse, per connection */
    SPARE_BUF_MAX = 16 * 1024,      /* ...with buffers no larger than this */
    LOCAL_FIELDS = 32,              /* header fields handled without an allocation */
};

typedef struct h2conn h2conn;

/* a count of events within a time window (resets, empty DATA frames) */
typedef struct rate {
    int n;
    int64_t from;
} rate;

/*
 * nghttp2's allocations for one connection (nghttp2_mem), with the small
 * ones kept for reuse: a request's stream, header and frame objects are
 * freed and made again for the next one, and glibc's malloc is a good part
 * of a request's cost. Blocks up to 1 KiB come from five size classes,
 * each a list of at most MEM_KEEP freed blocks; larger ones go to malloc.
 * Every block starts with its class (a max_align_t's worth).
 */
enum { MEM_CLASSES = 5, MEM_MIN = 64, MEM_KEEP = 64, MEM_BIG = MEM_CLASSES };

typedef union mblock {
    union mblock *next; /* while kept */
    unsigned cls;       /* while in use */
    max_align_t align;
} mblock;

typedef struct h2mem {
    mblock *free[MEM_CLASSES];
    int nfree[MEM_CLASSES];
} h2mem;

static unsigned mem_class(size_t n)
{
    unsigned c = 0;
    for (size_t cap = MEM_MIN; c < MEM_CLASSES; c++, cap *= 2)
        if (n <= cap)
            return c;
    return MEM_BIG;
}

static size_t mem_cap(unsigned c)
{
    return (size_t)MEM_MIN << c;
}

static void *mem_malloc(size_t n, void *user)
{
    h2mem *m = user;
    unsigned c = mem_class(n);
    mblock *b;
    if (c < MEM_CLASSES && (b = m->free[c])) {
        m->free[c] = b->next;
        m->nfree[c]--;
    } else if (!(b = malloc(sizeof *b + (c < MEM_CLASSES ? mem_cap(c) : n)))) {
        return NULL;
    }
    b->cls = c;
    return b + 1;
}

static void mem_free(void *p, void *user)
{
    if (!p)
        return;
    h2mem *m = user;
    mblock *b = (mblock *)p - 1;
    unsigned c = b->cls;
    if (c < MEM_CLASSES && m->nfree[c] < MEM_KEEP) {
        b->next = m->free[c];
        m->free[c] = b;
        m->nfree[c]++;
        return;
    }
    free(b);
}

static void *mem_calloc(size_t k, size_t n, void *user)
{
    if (n && k > SIZE_MAX / n)
        return NULL;
    void *p = mem_malloc(k * n, user);
    if (p)
        memset(p, 0, k * n);
    return p;
}

static void *mem_realloc(void *p, size_t n, void *user)
{
    if (!p)
        return mem_malloc(n, user);
    mblock *b = (mblock *)p - 1;
    if (b->cls < MEM_CLASSES && n <= mem_cap(b->cls))
        return p;
    if (b->cls == MEM_BIG && mem_class(n) == MEM_BIG) {
        mblock *nb = realloc(b, sizeof *nb + n);
        return nb ? nb + 1 : NULL;
    }
    void *q = mem_malloc(n, user);
    if (!q)
        return NULL;
    /* a class block holds its class's bytes; a big one more than any
     * class, so at least the n a smaller class block can take */
    size_t old = b->cls < MEM_CLASSES ? mem_cap(b->cls) : n;
    memcpy(q, p, old < n ? old : n);
    mem_free(p, user);
    return q;
}

static void mem_release(h2mem *m)
{
    for (int c = 0; c < MEM_CLASSES; c++)
        while (m->free[c]) {
            mblock *b = m->free[c];
            m->free[c] = b->next;
            free(b);
        }
}

typedef struct h2stream {
    h2conn *hc;
    int32_t id;
    /* the request head: "name\0value\0" pairs and their offsets */
    wv_buf hdr;
    size_t (*offs)[4]; /* name offset, length, value offset, length */
    int nfields, capfields;
    size_t header_bytes;
    bool too_large; /* past max_head or max_headers: 431, no handler */
    size_t method[2], path[2], authority[2];
    bool has_method, has_path, has_authority;
    bool head_end_stream; /* the request had no body */
    wv_buf trl;           /* the request's trailers: "name\0value\0" pairs */
    size_t trl_bytes;     /* their size by RFC 9113 6.5.2's accounting */
    bool trl_over;        /* past max_head: the body's end is an error */
    /* the request body */
    wv_buf in;
    size_t in_off;
    bool in_end;
    wv_event in_ready;
    /* the response */
    wv_buf out;
    size_t out_off;
    bool out_end, submitted, deferred, sent_end;
    wv_event out_room;
    nghttp2_nv *trailers; /* op_trailers' fields (their text after them), sent
                           * once the provider reaches the body's end */
    size_t ntrailers;
    /* life */
    size_t discarded;             /* body bytes dropped after its handler returned */
    bool running;                 /* its fiber has not finished */
    wv_group *handler;            /* the handler's fiber: cancelled when the peer resets */
    bool closed;                  /* nghttp2 closed it */
    struct h2stream *prev, *next; /* the connection's streams, for its end */
} h2stream;

struct h2conn {
    h2mem mem; /* first: nghttp2's allocator gets the connection */
    wv_http_conn *conn;
    wv_stream *s;
    nghttp2_session *session;
    wv_http_conn_limits lim;
    wv_group *fibers; /* the writer and the streams */
    wv_event kick;    /* the writer has something to look at */
    wv_event writer_done;
    bool dead;         /* the stream failed: nothing more goes out */
    bool session_over; /* the writer saw nothing left to read or write */
    bool stopping;     /* the server's graceful stop: no new streams */
    int running;       /* stream fibers running handlers */
    int open;          /* streams nghttp2 has not closed */
    h2stream *streams; /* every stream not yet freed */
    h2stream *spare;   /* ended streams, buffers kept, for the next ones */
    int nspare;
    rate resets;  /* RST_STREAMs from the peer */
    rate empties; /* empty DATA frames without END_STREAM */
};

static void kick(h2conn *hc)
{
    wv_event_set(&hc->kick);
}

/* During the server's graceful stop, once the streams in flight are done:
 * GOAWAY naming the last stream taken; the connection then ends. Streams
 * the client opens meanwhile are refused (REFUSED_STREAM: safe to retry
 * elsewhere). */
static void goodbye_when_done(h2conn *hc)
{
    if (!hc->stopping || hc->running > 0 || hc->open > 0 || hc->dead)
        return;
    nghttp2_submit_goaway(hc->session, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(hc->session), NGHTTP2_NO_ERROR,
                          NULL, 0);
    kick(hc);
}

static void on_server_stop(void *arg)
{
    h2conn *hc = arg;
    hc->stopping = true;
    goodbye_when_done(hc);
}

static void terminate(h2conn *hc, uint32_t code)
{
    nghttp2_session_terminate_session(hc->session, code);
    kick(hc);
}

static void stream_destroy(h2stream *st)
{
    wv_buf_free(&st->hdr);
    wv_buf_free(&st->trl);
    wv_buf_free(&st->in);
    wv_buf_free(&st->out);
    free(st->offs);
    free(st->trailers);
    free(st);
}

/* A stream is over: off the connection's list, and kept for the next one
 * (with its buffers, unless they grew large) or freed. */
static void stream_free(h2stream *st)
{
    h2conn *hc = st->hc;
    if (st->prev)
        st->prev->next = st->next;
    else
        hc->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    free(st->trailers);
    st->trailers = NULL;
    if (hc->nspare >= SPARE_MAX || st->hdr.cap > SPARE_BUF_MAX || st->trl.cap > SPARE_BUF_MAX ||
        st->in.cap > SPARE_BUF_MAX || st->out.cap > OUT_CAP) {
        stream_destroy(st);
        return;
    }
    st->next = hc->spare;
    hc->spare = st;
    hc->nspare++;
}

static wv_str field(const h2stream *st, const size_t at[2])
{
    return (wv_str){st->hdr.p + at[0], at[1]};
}

/* ------------------------------------------------- the exchange's ops */

static ssize_t op_read(void *x, void *buf, size_t n)
{
    h2stream *st = x;
    for (;;) {
        size_t have = st->in.n - st->in_off;
        if (have > 0) {
            size_t k = have < n ? have : n;
            memcpy(buf, st->in.p + st->in_off, k);
            st->in_off += k;
            if (st->in_off == st->in.n)
                st->in.n = st->in_off = 0;
            if (!st->closed)
                nghttp2_session_consume(st->hc->session, st->id, k); /* reopen the window */
            else
                nghttp2_session_consume_connection(st->hc->session, k);
            kick(st->hc);
            return (ssize_t)k;
        }
        if (st->in_end && st->trl_over)
            return wv_fail(-EMSGSIZE, "the request's trailers exceed %zu bytes",
                           st->hc->lim.max_head);
        if (st->in_end)
            return 0;
        if (st->closed || st->hc->dead)
            return wv_fail(-ECONNRESET, "the client cancelled the request mid-body");
        wv_event_clear(&st->in_ready);
        int rc = wv_event_wait(&st->in_ready);
        if (rc < 0)
            return rc;
    }
}

static int gone(void)
{
    return wv_fail(-ECONNRESET, "the client reset the HTTP/2 stream");
}

static ssize_t data_source(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)user;
    h2stream *st = source->ptr;
    size_t have = st->out.n - st->out_off;
    if (have == 0 && !st->out_end) {
        st->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t k = have < length ? have : length;
    if (k) /* an empty body's buffer was never allocated */
        memcpy(buf, st->out.p + st->out_off, k);
    st->out_off += k;
    if (st->out_off == st->out.n)
        st->out.n = st->out_off = 0;
    if (st->out_end && st->out.n == 0) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->trailers) {
            /* the trailers' HEADERS carries END_STREAM (nghttp2 copies them) */
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            int rv = nghttp2_submit_trailer(session, stream_id, st->trailers, st->ntrailers);
            free(st->trailers);
            st->trailers = NULL;
            if (rv != 0)
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
        }
    }
    wv_event_set(&st->out_room);
    return (ssize_t)k;
}

static int op_head(void *x, int status, const wv_http_field *fields, int nfields, bool end)
{
    h2stream *st = x;
    if (st->closed || st->hc->dead)
        return gone();
    nghttp2_nv local[LOCAL_FIELDS + 1];
    nghttp2_nv *nv = nfields <= LOCAL_FIELDS ? local : malloc((size_t)(nfields + 1) * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    unsigned st3 = (unsigned)status % 1000; /* wv_res_send keeps it in 100..999 */
    char code[4] = {(char)('0' + st3 / 100), (char)('0' + st3 / 10 % 10), (char)('0' + st3 % 10),
                    0};
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
    for (int i = 0; i < nfields; i++)
        nv[i + 1] = (nghttp2_nv){(uint8_t *)fields[i].name.p, (uint8_t *)fields[i].value.p,
                                 fields[i].name.n, fields[i].value.n, NGHTTP2_NV_FLAG_NONE};
    nghttp2_data_provider body = {.source.ptr = st, .read_callback = data_source};
    /* nghttp2 copies the fields */
    int rv = nghttp2_submit_response(st->hc->session, st->id, nv, (size_t)nfields + 1,
                                     end ? NULL : &body);
    if (nv != local)
        free(nv);
    if (rv != 0)
        return wv_fail(-EPROTO, "HTTP/2 response head: %s", nghttp2_strerror(rv));
    st->submitted = true;
    if (end)
        st->out_end = true;
    kick(st->hc);
    return 0;
}

/* The provider ran dry and deferred: there is more now. */
static void resume(h2stream *st)
{
    if (st->deferred && !st->closed) {
        st->deferred = false;
        nghttp2_session_resume_data(st->hc->session, st->id);
    }
    kick(st->hc);
}

static int op_write(void *x, const void *data, size_t n)
{
    h2stream *st = x;
    const char *p = data;
    while (n > 0) {
        if (st->closed || st->hc->dead)
            return gone();
        size_t held = st->out.n - st->out_off;
        if (held >= OUT_CAP) {
            /* the peer's window holds the buffer full: this handler waits,
             * the connection and its other streams go on */
            wv_event_clear(&st->out_room);
            int rc = wv_event_wait(&st->out_room);
            if (rc < 0)
                return rc;
            continue;
        }
        if (st->out_off > 0) {
            memmove(st->out.p, st->out.p + st->out_off, held);
            st->out.n = held;
            st->out_off = 0;
        }
        size_t k = OUT_CAP - held < n ? OUT_CAP - held : n;
        if (wv_buf_append(&st->out, p, k) < 0)
            return -ENOMEM;
        p += k;
        n -= k;
        resume(st);
    }
    return 0;
}

static int op_end(void *x)
{
    h2stream *st = x;
    if (st->closed || st->hc->dead)
        return gone();
    st->out_end = true;
    resume(st);
    return 0;
}

/* The body's end with trailer fields: kept (names already lower-case)
 * until the provider has sent the last DATA, then submitted. */
static int op_trailers(void *x, const wv_http_field *fields, int nfields)
{
    h2stream *st = x;
    if (st->closed || st->hc->dead)
        return gone();
    if (!st->submitted || st->out_end || st->trailers)
        return wv_fail(-EPROTO, "HTTP/2 trailers without an open response body");
    size_t bytes = (size_t)nfields * sizeof *st->trailers;
    for (int i = 0; i < nfields; i++)
        bytes += fields[i].name.n + fields[i].value.n;
    nghttp2_nv *nv = malloc(bytes ? bytes : 1);
    if (!nv)
        return -ENOMEM;
    uint8_t *text = (uint8_t *)(nv + nfields);
    for (int i = 0; i < nfields; i++) {
        nv[i] = (nghttp2_nv){text, text + fields[i].name.n, fields[i].name.n, fields[i].value.n,
                             NGHTTP2_NV_FLAG_NONE};
        memcpy(text, fields[i].name.p, fields[i].name.n);
        text += fields[i].name.n;
        memcpy(text, fields[i].value.p, fields[i].value.n);
        text += fields[i].value.n;
    }
    st->trailers = nv;
    st->ntrailers = (size_t)nfields;
    st->out_end = true;
    resume(st);
    return 0;
}

static void op_abort(void *x)
{
    h2stream *st = x;
    if (!st->closed && !st->hc->dead)
        nghttp2_submit_rst_stream(st->hc->session, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
    kick(st->hc);
}

/* A trailer field of the request, once its body has ended. */
static wv_str op_trailer(void *x, const char *name)
{
    h2stream *st = x;
    wv_str want = {name, strlen(name)};
    if (!st->trl.n)
        return (wv_str){NULL, 0};
    const char *p = st->trl.p, *end = p + st->trl.n;
    while (p < end) {
        size_t nn = strlen(p);
        const char *v = p + nn + 1;
        size_t vn = strlen(v);
        if (wv_str_ieq((wv_str){p, nn}, want))
            return (wv_str){v, vn};
        p = v + vn + 1;
    }
    return (wv_str){NULL, 0};
}

static const wv_http_exchange_ops exchange_ops = {.read = op_read,
                                                  .head = op_head,
                                                  .write = op_write,
                                                  .end = op_end,
                                                  .abort = op_abort,
                                                  .trailers = op_trailers,
                                                  .trailer = op_trailer};

/* ------------------------------------------------------ stream fibers */

static int64_t content_length_of(const wv_http_field *f, int n)
{
    for (int i = 0; i < n; i++) {
        if (!wv_str_eq_cstr(f[i].name, "content-length"))
            continue;
        int64_t v = 0;
        for (size_t k = 0; k < f[i].value.n; k++) {
            unsigned d = (unsigned)(f[i].value.p[k] - '0');
            if (d > 9 || v > (INT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + d;
        }
        return v;
    }
    return -1;
}

static int stream_handle(void *arg)
{
    h2stream *st = arg;
    h2conn *hc = st->hc;
    wv_http_field local[LOCAL_FIELDS];
    wv_http_field *fields =
        st->nfields <= LOCAL_FIELDS ? local : malloc((size_t)st->nfields * sizeof *fields);
    if (!fields || st->too_large || !st->has_method) {
        int status = st->too_large ? 431 : !fields ? 503 : 400;
        op_head(st, status, NULL, 0, true);
    } else {
        for (int i = 0; i < st->nfields; i++)
            fields[i] = (wv_http_field){{st->hdr.p + st->offs[i][0], st->offs[i][1]},
                                        {st->hdr.p + st->offs[i][2], st->offs[i][3]}};
        wv_http_exchange ex = {
            .method = field(st, st->method),
            .target = st->has_path ? field(st, st->path) : (wv_str){"", 0},
            .authority = st->has_authority ? field(st, st->authority) : (wv_str){"", 0},
            .headers = fields,
            .nheaders = st->nfields,
            .content_length = content_length_of(fields, st->nfields),
            .no_body = st->head_end_stream,
            .version = 20,
            .ops = &exchange_ops,
            .x = st,
        };
        wv_http_exchange_run(hc->conn, &ex);
    }
    if (fields != local)
        free(fields);
    return 0;
}

/* A stream's fiber: the handler runs in a group of its own, so a reset
 * from the peer cancels it alone (on_stream_close), and the stream is
 * freed only once that fiber has ended. A cancelled connection cancels
 * this fiber, whose join then cancels the handler and waits for it. */
static int stream_main(void *arg)
{
    h2stream *st = arg;
    h2conn *hc = st->hc;
    st->handler = wv_group_new();
    if (!st->handler || wv_group_spawn(st->handler, stream_handle, st,
                                       &(wv_spawn_opts){.name = "h2-handler"}) < 0) {
        if (!st->closed && !hc->dead)
            nghttp2_submit_rst_stream(hc->session, NGHTTP2_FLAG_NONE, st->id,
                                      NGHTTP2_REFUSED_STREAM);
    } else {
        wv_group_join(st->handler);
    }
    wv_group_free(st->handler);
    st->handler = NULL;
    hc->running--;
    st->running = false;
    if (st->closed) {
        stream_free(st);
        goodbye_when_done(hc);
        return 0;
    }
    if (!st->in_end) {
        /* the handler left part of the body unread: give the window back
         * for what is buffered and drop the rest as it comes (on_data_chunk),
         * so the client can finish sending and read the whole response */
        size_t unread = st->in.n - st->in_off;
        if (unread)
            nghttp2_session_consume(hc->session, st->id, unread);
        wv_buf_free(&st->in);
        st->in_off = 0;
    }
    kick(hc);
    return 0;
}

/* ---------------------------------------------------------- callbacks */

/* A request stream nghttp2 has opened: ours from here to its end. */
static h2stream *stream_new(h2conn *hc, int32_t id)
{
    h2stream *st = hc->spare;
    if (st) {
        hc->spare = st->next;
        hc->nspare--;
        /* everything zero again but the buffers, emptied */
        h2stream keep = *st;
        memset(st, 0, sizeof *st);
        st->hdr = keep.hdr;
        st->trl = keep.trl;
        st->in = keep.in;
        st->out = keep.out;
        st->hdr.n = st->trl.n = st->in.n = st->out.n = 0;
        st->offs = keep.offs;
        st->capfields = keep.capfields;
    } else if (!(st = calloc(1, sizeof *st))) {
        return NULL;
    }
    st->hc = hc;
    st->id = id;
    st->next = hc->streams;
    if (hc->streams)
        hc->streams->prev = st;
    hc->streams = st;
    hc->open++;
    nghttp2_session_set_stream_user_data(hc->session, id, st);
    return st;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)session;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    return stream_new(user, frame->hd.stream_id) ? 0 : NGHTTP2_ERR_CALLBACK_FAILURE;
}

/* Copy p[0..n) and a NUL into the head's buffer, which has room (the
 * caller reserved it); *at is where it starts. */
static void keep_text(h2stream *st, const uint8_t *p, size_t n, size_t *at)
{
    *at = st->hdr.n;
    memcpy(st->hdr.p + st->hdr.n, p, n);
    st->hdr.p[st->hdr.n + n] = 0;
    st->hdr.n += n + 1;
}

/* One field of a request head into the stream: pseudo-headers to their
 * slots, the others in order; past the limits, only the verdict (431). */
static int keep_field(h2stream *st, const uint8_t *name, size_t namelen, const uint8_t *value,
                      size_t valuelen)
{
    h2conn *hc = st->hc;
    if (st->too_large)
        return 0;
    st->header_bytes += namelen + valuelen + 32; /* RFC 9113 6.5.2's accounting */
    if (st->header_bytes > hc->lim.max_head || st->nfields >= hc->lim.max_headers) {
        st->too_large = true;
        return 0;
    }
    size_t at = 0, vat = 0;
    bool pseudo = namelen > 0 && name[0] == ':';
    /* one reservation for what this field keeps (sizes are bounded by
     * max_head above) */
    if (wv_buf_reserve(&st->hdr, (pseudo ? 0 : namelen + 1) + valuelen + 1) < 0)
        return -ENOMEM;
    if (pseudo) {
        keep_text(st, value, valuelen, &vat);
        size_t *slot = NULL;
        if (namelen == 7 && !memcmp(name, ":method", 7))
            slot = st->method, st->has_method = true;
        else if (namelen == 5 && !memcmp(name, ":path", 5))
            slot = st->path, st->has_path = true;
        else if (namelen == 10 && !memcmp(name, ":authority", 10))
            slot = st->authority, st->has_authority = true;
        if (slot) {
            slot[0] = vat;
            slot[1] = valuelen;
        }
        return 0;
    }
    if (st->nfields == st->capfields) {
        int cap = st->capfields ? st->capfields * 2 : 16;
        void *p = realloc(st->offs, (size_t)cap * sizeof *st->offs);
        if (!p)
            return -ENOMEM;
        st->offs = p;
        st->capfields = cap;
    }
    keep_text(st, name, namelen, &at);
    keep_text(st, value, valuelen, &vat);
    size_t *o = st->offs[st->nfields++];
    o[0] = at;
    o[1] = namelen;
    o[2] = vat;
    o[3] = valuelen;
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    h2stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st)
        return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
        /* the request's trailers (nghttp2 has checked them), kept for
         * wv_req_trailer within max_head; past it, the body's read fails */
        h2conn *hc = user;
        st->trl_bytes += namelen + valuelen + 32;
        if (st->trl_bytes > hc->lim.max_head)
            st->trl_over = true;
        if (st->trl_over || !st->running)
            return 0;
        if (wv_buf_append(&st->trl, name, namelen) < 0 || wv_buf_append(&st->trl, "", 1) < 0 ||
            wv_buf_append(&st->trl, value, valuelen) < 0 || wv_buf_append(&st->trl, "", 1) < 0)
            return NGHTTP2_ERR_CALLBACK_FAILURE;
        return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    return keep_field(st, name, namelen, value, valuelen) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

/* A request head is complete: its handler's fiber, unless too many run. */
static void start_stream(h2conn *hc, h2stream *st, bool end_stream)
{
    st->head_end_stream = st->in_end = end_stream;
    if (hc->running >= hc->lim.max_streams || hc->stopping) {
        nghttp2_submit_rst_stream(hc->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
        return;
    }
    st->running = true;
    hc->running++;
    if (wv_group_spawn(hc->fibers, stream_main, st, &(wv_spawn_opts){.name = "h2-stream"}) < 0) {
        st->running = false;
        hc->running--;
        nghttp2_submit_rst_stream(hc->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
    }
}

/* One more of what r counts; past limit within RESET_WINDOW_MS, the
 * connection ends with GOAWAY ENHANCE_YOUR_CALM (once). */
static void count_abuse(h2conn *hc, rate *r, int limit, const char *what)
{
    int64_t now = wv_now_coarse();
    if (now - r->from > (int64_t)RESET_WINDOW_MS * 1000000) {
        r->from = now;
        r->n = 0;
    }
    if (++r->n == limit + 1) {
        wv_warn("HTTP/2: %d %s within %d s from a client: GOAWAY ENHANCE_YOUR_CALM", r->n, what,
                RESET_WINDOW_MS / 1000);
        terminate(hc, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    h2conn *hc = user;
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        count_abuse(hc, &hc->resets, RESET_LIMIT, "stream resets");
        return 0;
    }
    if (frame->hd.type == NGHTTP2_DATA && frame->hd.length == frame->data.padlen &&
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        count_abuse(hc, &hc->empties, EMPTY_LIMIT, "empty DATA frames");
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    h2stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st)
        return 0;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        start_stream(hc, st, end);
        return 0;
    }
    if (end) {
        st->in_end = true;
        wv_event_set(&st->in_ready);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user)
{
    (void)flags, (void)user;
    h2stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!st || !st->running) {
        nghttp2_session_consume(session, stream_id, len); /* nobody reads it */
        if (st && (st->discarded += len) > DISCARD_MAX && st->sent_end) {
            /* a body too long to wait for: the response is out, end it
             * here (RFC 9113 8.1, NO_ERROR) */
            st->discarded = 0;
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_NO_ERROR);
        }
        return 0;
    }
    /* bounded by the stream's window, which only the handler's reads reopen */
    if (wv_buf_append(&st->in, data, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    wv_event_set(&st->in_ready);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    h2stream *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!st)
        return 0;
    st->sent_end = true;
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user)
{
    (void)error_code, (void)user;
    h2stream *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    h2conn *hc = st->hc;
    hc->open--;
    goodbye_when_done(hc);
    size_t unread = st->in.n - st->in_off;
    if (unread) /* the connection's window, for bytes nobody will read now */
        nghttp2_session_consume_connection(session, unread);
    st->in.n = st->in_off = 0;
    st->closed = true;
    if (!st->running) {
        stream_free(st);
        return 0;
    }
    if (!st->sent_end && st->handler) /* reset before its response was out: cancel it */
        wv_group_cancel(st->handler);
    wv_event_set(&st->in_ready);
    wv_event_set(&st->out_room);
    return 0;
}

/* -------------------------------------------------------- the writer */

static int writer_main(void *arg)
{
    h2conn *hc = arg;
    wv_buf batch = {0};
    while (!hc->dead) {
        wv_event_clear(&hc->kick);
        if (h2_flush(hc->session, hc->s, &batch) < 0) {
            hc->dead = true;
            break;
        }
        if (!nghttp2_session_want_read(hc->session) && !nghttp2_session_want_write(hc->session)) {
            hc->session_over = true;
            break;
        }
        if (wv_event_wait(&hc->kick) < 0)
            break;
    }
    wv_buf_free(&batch);
    wv_event_set(&hc->writer_done);
    wv_stream_interrupt(hc->s); /* wake the reader: nothing more will be read */
    return 0;
}

/* ----------------------------------------------------------- serving */

static int session_new(h2conn *hc)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -ENOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cb);
        return -ENOMEM;
    }
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_mem mem = {.mem_user_data = &hc->mem,
                       .malloc = mem_malloc,
                       .free = mem_free,
                       .calloc = mem_calloc,
                       .realloc = mem_realloc};
    int rv = nghttp2_session_server_new3(&hc->session, cb, hc, opt, &mem);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0)
        return -ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)hc->lim.max_streams},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)hc->lim.max_head},
    };
    rv = nghttp2_submit_settings(hc->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv);
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(hc->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    return rv == 0 ? 0 : -ENOMEM;
}

/* Feed bytes to the session; false once it refuses them (the connection
 * is then ending with a GOAWAY). */
static bool feed(h2conn *hc, const void *p, size_t n)
{
    ssize_t rv = nghttp2_session_mem_recv(hc->session, p, n);
    if (rv < 0) {
        wv_debug("HTTP/2: %s", nghttp2_strerror((int)rv));
        bool flood = rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS;
        terminate(hc, flood ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR);
        return false;
    }
    kick(hc);
    return true;
}

/* The peer closed its side (EOF): it may still read. Streams whose
 * requests are whole get their answers; the others can never be whole, so
 * they are reset (cancelling their handlers); then GOAWAY, as at a graceful
 * stop (after the answers: some clients drop what follows a GOAWAY), and
 * the session is over at once instead of at the goodbye's timeout. */
static void peer_done(h2conn *hc)
{
    for (h2stream *st = hc->streams; st; st = st->next)
        if (!st->in_end && !st->closed)
            nghttp2_submit_rst_stream(hc->session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
    hc->stopping = true;
    goodbye_when_done(hc);
    kick(hc);
}

/* The peer sent nothing for the body timeout while every open stream
 * waited on it: reset them (NO_ERROR for one whose response is out, RFC
 * 9113 8.1; CANCEL otherwise). */
static void expire_waiting(h2conn *hc)
{
    for (h2stream *st = hc->streams; st; st = st->next)
        if (!st->closed && !st->running)
            nghttp2_submit_rst_stream(hc->session, NGHTTP2_FLAG_NONE, st->id,
                                      st->sent_end ? NGHTTP2_NO_ERROR : NGHTTP2_CANCEL);
    kick(hc);
}

/* Fields HTTP/2 has no place for (RFC 9113 8.2.2), and Host, which is
 * :authority there. */
static bool hop_by_hop(wv_str name, wv_str value)
{
    static const char *const drop[] = {
        "connection",       "upgrade",           "http2-settings", "keep-alive",
        "proxy-connection", "transfer-encoding", "host",           NULL};
    for (int i = 0; drop[i]; i++)
        if (wv_str_ieq(name, (wv_str){drop[i], strlen(drop[i])}))
            return true;
    return wv_str_ieq(name, WV_STR("te")) && !wv_str_ieq(value, WV_STR("trailers"));
}

/* h2c by Upgrade: the HTTP/1.1 request is stream 1, half-closed (remote)
 * already, its handler started like any other's. */
static int upgrade(h2conn *hc, const wv_http_exchange *first, const void *settings, size_t len)
{
    bool head = wv_str_eq_cstr(first->method, "HEAD");
    int rv = nghttp2_session_upgrade2(hc->session, settings, len, head, NULL);
    if (rv != 0)
        return wv_fail(-EPROTO, "h2c upgrade: %s", nghttp2_strerror(rv));
    h2stream *st = stream_new(hc, 1);
    if (!st)
        return -ENOMEM;
    struct {
        const char *name;
        wv_str value;
    } pseudo[] = {{":method", first->method},
                  {":path", first->target},
                  {":scheme", WV_STR("http")},
                  {":authority", first->authority}};
    for (size_t i = 0; i < sizeof pseudo / sizeof *pseudo; i++)
        if (keep_field(st, (const uint8_t *)pseudo[i].name, strlen(pseudo[i].name),
                       (const uint8_t *)pseudo[i].value.p, pseudo[i].value.n) < 0)
            return -ENOMEM;
    char lower[256];
    for (int i = 0; i < first->nheaders; i++) {
        wv_str name = first->headers[i].name, value = first->headers[i].value;
        if (hop_by_hop(name, value))
            continue;
        if (name.n > sizeof lower) {
            st->too_large = true; /* no such field fits in max_head anyway */
            continue;
        }
        for (size_t k = 0; k < name.n; k++)
            lower[k] = (char)(name.p[k] >= 'A' && name.p[k] <= 'Z' ? name.p[k] + 32 : name.p[k]);
        if (keep_field(st, (const uint8_t *)lower, name.n, (const uint8_t *)value.p, value.n) < 0)
            return -ENOMEM;
    }
    start_stream(hc, st, true);
    return 0;
}

static int serve(wv_http_conn *conn, wv_stream *s, const void *pre, size_t n,
                 const wv_http_exchange *first, const void *settings, size_t settings_len)
{
    h2conn hc = {.conn = conn, .s = s};
    hc.resets.from = hc.empties.from = wv_now_coarse();
    wv_http_conn_limits_of(conn, &hc.lim);
    if (hc.lim.max_streams <= 0)
        hc.lim.max_streams = 100;
    int rc = session_new(&hc);
    hc.fibers = rc == 0 ? wv_group_new() : NULL;
    char *buf = rc == 0 ? malloc(READ_BUF) : NULL;
    if (!buf) {
        free(buf);
        wv_group_free(hc.fibers);
        if (hc.session)
            nghttp2_session_del(hc.session);
        mem_release(&hc.mem);
        return -ENOMEM;
    }
    wv_group_spawn(hc.fibers, writer_main, &hc, &(wv_spawn_opts){.name = "h2-writer"});
    wv_http_conn_on_stop(conn, on_server_stop, &hc);
    bool ok = true;
    if (first && upgrade(&hc, first, settings, settings_len) < 0) {
        wv_debug("HTTP/2: %s", wv_errmsg());
        terminate(&hc, NGHTTP2_PROTOCOL_ERROR);
        ok = false;
    }
    ok = ok && (n == 0 || feed(&hc, pre, n));
    bool fresh = first == NULL; /* a new connection's first wait is the head's */
    while (ok && !hc.dead && nghttp2_session_want_read(hc.session)) {
        /* a connection with nothing in flight may sit idle only so long,
         * and one whose streams all wait on the peer only so long too */
        bool idle = hc.open == 0 && hc.running == 0;
        int64_t wait = idle && fresh ? hc.lim.header_timeout_ms
                       : idle        ? hc.lim.idle_timeout_ms
                                     : hc.lim.body_timeout_ms;
        int64_t old = wv_deadline_set(wv_after_ms(wait));
        ssize_t got = wv_stream_read(s, buf, READ_BUF);
        wv_deadline_set(old);
        fresh = false;
        if (got == -ETIMEDOUT && idle) {
            terminate(&hc, NGHTTP2_NO_ERROR); /* idle: GOAWAY, then close */
            break;
        }
        if (got == -ETIMEDOUT) {
            /* silent for the body timeout: streams that only wait on the
             * peer now (no handler running) go; with handlers running,
             * look again after another one (a handler that ends does not
             * wake this read) */
            if (hc.running == 0 && hc.open > 0)
                expire_waiting(&hc);
            continue;
        }
        if (got == 0) {
            peer_done(&hc);
            break;
        }
        if (got < 0)
            break;
        ok = feed(&hc, buf, (size_t)got);
    }
    /* let the writer send what is queued (the GOAWAY) unless the peer is
     * gone, then end what still runs */
    int64_t old = wv_deadline_set(wv_after_ms(GOODBYE_MS));
    if (!hc.dead)
        wv_event_wait(&hc.writer_done);
    wv_deadline_set(old);
    wv_http_conn_on_stop(conn, NULL, NULL);
    /* The connection broke or was cut, or the session is over: a graceful
     * end (a stop, the peer's EOF) comes here with every handler done, and
     * a connection error (GOAWAY after bad frames or abuse) closes every
     * stream. Either way nothing a handler still running does can reach
     * the peer now, and a handler waiting for body bytes or for window
     * would wait for its timeout, or for ever: cancel them. */
    hc.dead = true;
    wv_group_cancel(hc.fibers);
    kick(&hc);
    wv_group_join(hc.fibers); /* every stream fiber has returned */
    wv_group_free(hc.fibers);
    hc.dead = true;
    while (hc.streams) /* those nghttp2 had not closed */
        stream_free(hc.streams);
    while (hc.spare) {
        h2stream *st = hc.spare;
        hc.spare = st->next;
        stream_destroy(st);
    }
    nghttp2_session_del(hc.session);
    mem_release(&hc.mem);
    free(buf);
    return 0;
}

int wv_h2_serve(wv_http_conn *conn, wv_stream *s, const void *pre, size_t n)
{
    return serve(conn, s, pre, n, NULL, NULL, 0);
}

int wv_h2_serve_upgraded(wv_http_conn *conn, wv_stream *s, const wv_http_exchange *first,
                         const void *settings, size_t settings_len, const void *pre, size_t n)
{
    return serve(conn, s, pre, n, first, settings, settings_len);
}
