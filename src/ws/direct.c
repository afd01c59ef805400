/*
 * Sending to one connection from any fiber of any shard (wv_ws_send_to).
 *
 * Every connection gets an id when it opens: a process-wide sequence
 * number with the owning shard in its low 10 bits (wv_main allows at most
 * 1024 shards), so a sender knows where the connection lives without
 * asking anyone. Each shard keeps its own table from id to connection
 * (thread-local, touched only by that shard's thread); a send from another
 * shard runs as a wv_shard_call there, looks the id up and sends, and the
 * caller waits for it: that wait is the backpressure, and it keeps the
 * caller's bytes alive for the send without a copy.
 *
 * A connection leaves its table before it is torn down; senders already
 * inside it are counted and waited for, so none touches freed memory.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "ws/ws_internal.h"

enum { SHARD_BITS = 10, MIN_BUCKETS = 64 };

typedef struct id_table {
    wv_ws **buckets; /* chains through wv_ws.id_next */
    size_t cap;      /* a power of two */
    size_t n;
} id_table;

static _Thread_local id_table table;
static atomic_uint_fast64_t next_seq = 1;

static size_t slot(uint64_t id, size_t cap)
{
    uint64_t h = id * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (cap - 1);
}

static int grow(void)
{
    size_t cap = table.cap ? table.cap * 2 : MIN_BUCKETS;
    wv_ws **b = calloc(cap, sizeof *b);
    if (!b)
        return -ENOMEM;
    for (size_t i = 0; i < table.cap; i++) {
        wv_ws *ws = table.buckets[i];
        while (ws) {
            wv_ws *next = ws->id_next;
            size_t s = slot(ws->id, cap);
            ws->id_next = b[s];
            b[s] = ws;
            ws = next;
        }
    }
    free(table.buckets);
    table.buckets = b;
    table.cap = cap;
    return 0;
}

int ws_register(wv_ws *ws)
{
    int home = wv_shard_id();
    if (home < 0)
        return -EPERM;
    if (table.n >= table.cap && grow() < 0)
        return -ENOMEM;
    uint64_t seq = atomic_fetch_add_explicit(&next_seq, 1, memory_order_relaxed);
    ws->id = seq << SHARD_BITS | (uint64_t)home;
    size_t s = slot(ws->id, table.cap);
    ws->id_next = table.buckets[s];
    table.buckets[s] = ws;
    table.n++;
    return 0;
}

static wv_ws *lookup(uint64_t id)
{
    if (!table.cap)
        return NULL;
    for (wv_ws *ws = table.buckets[slot(id, table.cap)]; ws; ws = ws->id_next)
        if (ws->id == id)
            return ws;
    return NULL;
}

void ws_unregister(wv_ws *ws)
{
    if (!ws->id || !table.cap)
        return;
    for (wv_ws **p = &table.buckets[slot(ws->id, table.cap)]; *p; p = &(*p)->id_next) {
        if (*p == ws) {
            *p = ws->id_next;
            ws->id_next = NULL;
            if (--table.n == 0) {
                /* the shard's last connection: give the table back, so a
                 * finished runtime leaves nothing behind on this thread */
                free(table.buckets);
                table.buckets = NULL;
                table.cap = 0;
            }
            break;
        }
    }
}

void ws_drain_senders(wv_ws *ws)
{
    ws_unregister(ws);
    if (!ws->remote_senders)
        return;
    /* a sender stuck writing to a peer that stopped reading must not hold
     * the teardown: end our side of the stream, its write fails */
    wv_stream_shutdown(ws->s, SHUT_RDWR);
    ws->draining = true;
    wv_event_wait_shielded(&ws->senders_done);
}

uint64_t wv_ws_id(const wv_ws *ws)
{
    return ws->id;
}

typedef struct direct_job {
    uint64_t id;
    int type;
    const void *data;
    size_t n;
} direct_job;

static int direct_send(void *arg)
{
    direct_job *j = arg;
    wv_ws *ws = lookup(j->id);
    if (!ws)
        return -ENOENT;
    ws->remote_senders++;
    int rc = wv_ws_send(ws, j->type, j->data, j->n);
    if (--ws->remote_senders == 0 && ws->draining)
        wv_event_set(&ws->senders_done);
    return rc;
}

int wv_ws_send_to(uint64_t id, int type, const void *data, size_t n)
{
    if (type != WV_WS_TEXT && type != WV_WS_BINARY)
        return -EINVAL;
    int self = wv_shard_id();
    if (self < 0)
        return -EPERM;
    int owner = (int)(id & ((1u << SHARD_BITS) - 1));
    if (id == 0 || owner >= wv_shard_count())
        return -ENOENT;
    direct_job j = {.id = id, .type = type, .data = data, .n = n};
    if (owner == self)
        return direct_send(&j);
    return wv_shard_call(owner, direct_send, &j);
}
