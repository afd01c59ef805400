/*
 * The broadcast hub: rooms of WebSocket connections on every shard.
 *
 * Shards share nothing, so each keeps its own rooms; publishing posts the
 * message (one reference-counted copy of the whole frame, built once) to
 * every shard, whose fiber hands it to the local members. A member with nothing queued whose socket
 * takes the frame at once gets it right there; otherwise it goes to the member's queue, which its
 * writer fiber drains, so a slow reader only ever fills its own queue, and the hub's policy decides
 * what a full queue does: drop the oldest message, or close that member with 1008 (policy
 * violation).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "ws/frame.h"
#include "ws/ws_internal.h"

/* A published message: the whole server frame, built once for every
 * member (header, then the payload at data). */
struct hub_blob {
    _Atomic int refs;
    int type;
    size_t n;     /* the payload's length */
    size_t hl;    /* the frame header's */
    char *data;   /* the payload: frame + hl */
    char frame[]; /* header and payload */
};

/* one membership: a room on this shard */
struct hub_member {
    struct room *room;
    hub_member *next; /* the connection's other rooms */
};

typedef struct room {
    char *name;
    wv_ws **members;
    size_t n, cap;
    struct room *next;
} room;

typedef struct hub_shard {
    room *rooms;
} hub_shard;

struct wv_ws_hub {
    size_t queue_limit;
    wv_ws_slow slow;
    _Atomic(hub_shard *) shards; /* one per shard, made on first use */
    _Atomic int nshards;
};

wv_ws_hub *wv_ws_hub_new(const wv_ws_hub_opts *o)
{
    wv_ws_hub *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->queue_limit = o && o->queue_limit ? o->queue_limit : 256;
    h->slow = o ? o->slow : WV_WS_DROP_OLDEST;
    return h;
}

static hub_shard *local(wv_ws_hub *h)
{
    int id = wv_shard_id();
    if (id < 0)
        return NULL;
    hub_shard *s = atomic_load(&h->shards);
    if (!s) {
        int n = wv_shard_count();
        hub_shard *fresh = calloc((size_t)n, sizeof *fresh);
        if (!fresh)
            return NULL;
        atomic_store(&h->nshards, n); /* every shard stores the same count */
        hub_shard *expected = NULL;
        if (atomic_compare_exchange_strong(&h->shards, &expected, fresh)) {
            s = fresh;
        } else {
            free(fresh); /* another shard made it first */
            s = expected;
        }
    }
    return &s[id];
}

static room *find_room(hub_shard *s, const char *name, bool create)
{
    for (room *r = s->rooms; r; r = r->next)
        if (strcmp(r->name, name) == 0)
            return r;
    if (!create)
        return NULL;
    room *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name))) {
        free(r);
        return NULL;
    }
    r->next = s->rooms;
    s->rooms = r;
    return r;
}

static void blob_unref(hub_blob *b)
{
    if (atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

/* ------------------------------------------------------------ the writer */

static int writer(void *arg)
{
    wv_ws *ws = arg;
    while (!ws->writer_stop) {
        if (ws->q_len == 0 && ws->wpending.n) {
            /* the end of a frame ws_send_nowait could not finish */
            ws->writer_sending = true;
            int rc = ws_flush_pending(ws);
            ws->writer_sending = false;
            if (rc < 0)
                break;
            continue;
        }
        if (ws->q_len == 0) {
            wv_event_clear(&ws->q_wake);
            if (wv_event_wait(&ws->q_wake) < 0)
                break;
            continue;
        }
        hub_blob *b = ws->queue[ws->q_head];
        ws->q_head = (ws->q_head + 1) % ws->q_cap;
        ws->q_len--;
        ws->writer_sending = true;
        int rc =
            ws_send_frame(ws, b->type == WV_WS_TEXT ? WS_OP_TEXT : WS_OP_BINARY, b->data, b->n);
        ws->writer_sending = false;
        blob_unref(b);
        if (rc < 0)
            break;
    }
    ws->writer_running = false;
    wv_event_set(&ws->writer_done);
    return 0;
}

/* Queue b for ws (taking a reference), applying the slow-member policy. */
static void enqueue(wv_ws_hub *h, wv_ws *ws, hub_blob *b)
{
    if (ws->slow_closed || ws->writer_stop)
        return;
    if (ws->q_len == h->queue_limit) {
        if (h->slow == WV_WS_CLOSE_SLOW) {
            /* too slow to keep up: close it without ever blocking the
             * publisher. The 1008 frame goes out only if the socket takes
             * it now and no frame is half-written; then the socket is shut
             * down, which fails the writer and ends the reader. */
            ws->slow_closed = true;
            wv_warn("websocket %s: too slow for its room (%zu queued); closing with 1008", ws->peer,
                    ws->q_len);
            if (ws->send_lock.owner_ == 0 && ws->wpending.n == 0) {
                static const uint8_t close_1008[] = {0x88, 0x02, 0x03, 0xf0};
                struct iovec iov = {(void *)close_1008, sizeof close_1008};
                (void)wv_stream_try_writev(ws->s, &iov, 1);
            }
            wv_stream_shutdown(ws->s, SHUT_RDWR);
            return;
        }
        hub_blob *oldest = ws->queue[ws->q_head];
        ws->q_head = (ws->q_head + 1) % ws->q_cap;
        ws->q_len--;
        blob_unref(oldest);
    }
    if (ws->q_len == 0) {
        /* nothing queued: straight to the socket if it takes it now,
         * without waking the writer */
        int rc = ws_send_nowait(ws, b->frame, b->hl + b->n);
        if (rc != 0) {
            if (ws->wpending.n)
                wv_event_set(&ws->q_wake);
            return;
        }
    }
    if (ws->q_cap == 0) {
        ws->queue = calloc(h->queue_limit, sizeof *ws->queue);
        if (!ws->queue)
            return;
        ws->q_cap = h->queue_limit;
    }
    atomic_fetch_add(&b->refs, 1);
    ws->queue[(ws->q_head + ws->q_len) % ws->q_cap] = b;
    ws->q_len++;
    wv_event_set(&ws->q_wake);
}

/* -------------------------------------------------------------- rooms */

int wv_ws_hub_join(wv_ws_hub *h, const char *name, wv_ws *ws)
{
    hub_shard *s = local(h);
    if (!s)
        return -EPERM;
    room *r = find_room(s, name, true);
    if (!r)
        return -ENOMEM;
    for (hub_member *m = ws->rooms; m; m = m->next)
        if (m->room == r)
            return -EEXIST;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        wv_ws **v = realloc(r->members, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        r->members = v;
        r->cap = cap;
    }
    hub_member *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->room = r;
    m->next = ws->rooms;
    ws->rooms = m;
    r->members[r->n++] = ws;
    if (!ws->writer_running) {
        ws->writer_running = true;
        ws->writer_stop = false;
        wv_event_clear(&ws->writer_done);
        if (wv_spawn(writer, ws, &(wv_spawn_opts){.name = "ws-writer"}) < 0) {
            ws->writer_running = false;
            wv_ws_hub_leave(h, name, ws);
            return -ENOMEM;
        }
    }
    return 0;
}

static void room_remove(room *r, wv_ws *ws)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->members[i] == ws) {
            r->members[i] = r->members[--r->n];
            return;
        }
    }
}

int wv_ws_hub_leave(wv_ws_hub *h, const char *name, wv_ws *ws)
{
    hub_shard *s = local(h);
    room *r = s ? find_room(s, name, false) : NULL;
    for (hub_member **p = &ws->rooms; r && *p; p = &(*p)->next) {
        if ((*p)->room == r) {
            hub_member *m = *p;
            *p = m->next;
            free(m);
            room_remove(r, ws);
            return 0;
        }
    }
    return -ENOENT;
}

void hub_detach(wv_ws *ws)
{
    while (ws->rooms) {
        hub_member *m = ws->rooms;
        ws->rooms = m->next;
        room_remove(m->room, ws);
        free(m);
    }
    if (ws->writer_running) {
        /* the writer uses this connection: it must be gone before the
         * socket closes, even if our own fiber was cancelled */
        ws->writer_stop = true;
        wv_event_set(&ws->q_wake);
        if (ws->writer_sending)
            wv_stream_shutdown(ws->s,
                               SHUT_RDWR); /* a peer that stopped reading: do not wait on it */
        wv_event_wait_shielded(&ws->writer_done);
    }
    while (ws->q_len) {
        blob_unref(ws->queue[ws->q_head]);
        ws->q_head = (ws->q_head + 1) % ws->q_cap;
        ws->q_len--;
    }
    free(ws->queue);
    ws->queue = NULL;
    ws->q_cap = 0;
}

int wv_ws_hub_count(wv_ws_hub *h, const char *name)
{
    hub_shard *s = local(h);
    room *r = s ? find_room(s, name, false) : NULL;
    return r ? (int)r->n : 0;
}

/* ------------------------------------------------------------ publishing */

typedef struct delivery {
    wv_ws_hub *hub;
    hub_blob *blob;
    char room[];
} delivery;

static int deliver(void *arg)
{
    delivery *d = arg;
    hub_shard *s = local(d->hub);
    room *r = s ? find_room(s, d->room, false) : NULL;
    for (size_t i = 0; r && i < r->n; i++)
        enqueue(d->hub, r->members[i], d->blob);
    blob_unref(d->blob);
    free(d);
    return 0;
}

int wv_ws_hub_publish(wv_ws_hub *h, const char *name, int type, const void *data, size_t n)
{
    if (!local(h))
        return -EPERM;
    if (type != WV_WS_TEXT && type != WV_WS_BINARY)
        return -EINVAL;
    hub_blob *b = malloc(sizeof *b + 14 + n);
    if (!b)
        return -ENOMEM;
    atomic_init(&b->refs, 1); /* ours, until every shard has its own */
    b->type = type;
    b->n = n;
    b->hl = ws_write_header((uint8_t *)b->frame, true, 0,
                            type == WV_WS_TEXT ? WS_OP_TEXT : WS_OP_BINARY, n, NULL);
    b->data = b->frame + b->hl;
    memcpy(b->data, data, n);
    size_t nl = strlen(name) + 1;
    int rc = 0;
    int nshards = atomic_load(&h->nshards);
    for (int i = 0; i < nshards; i++) {
        delivery *d = malloc(sizeof *d + nl);
        if (!d) {
            rc = -ENOMEM;
            break;
        }
        d->hub = h;
        d->blob = b;
        memcpy(d->room, name, nl);
        atomic_fetch_add(&b->refs, 1);
        int prc = wv_shard_post(i, deliver, d);
        if (prc < 0) {
            blob_unref(b);
            free(d);
            rc = prc;
        }
    }
    blob_unref(b);
    return rc;
}

void wv_ws_hub_free(wv_ws_hub *h)
{
    if (!h)
        return;
    hub_shard *s = atomic_load(&h->shards);
    for (int i = 0; s && i < h->nshards; i++) {
        while (s[i].rooms) {
            room *r = s[i].rooms;
            s[i].rooms = r->next;
            free(r->members);
            free(r->name);
            free(r);
        }
    }
    free(s);
    free(h);
}
