/*
 * Private structure of a WebSocket connection, shared by ws.c (the
 * protocol) and hub.c (rooms and broadcast).
 */
#ifndef WEAVE_WS_INTERNAL_H
#define WEAVE_WS_INTERNAL_H

#include <zlib.h>

#include "weave/http.h"
#include "weave/net.h"
#include "weave/ws.h"

#pragma GCC visibility push(hidden)

typedef struct hub_blob hub_blob;
typedef struct hub_member hub_member;

struct wv_ws {
    wv_stream *s; /* the connection: HTTP's after an upgrade, or our own (client) */
    bool client;  /* frames we send are masked, frames we get must not be */
    char peer[64];
    size_t max_message;
    int64_t ping_interval_ms, pong_timeout_ms;
    const char *subprotocol;
    wv_buf in; /* received bytes not yet consumed: in.p[pos..in.n) */
    size_t pos;
    bool drained; /* the last read came back short: the socket was empty */
    bool trimmed; /* the fiber's stack was trimmed at its first idle wait */
    wv_buf msg;   /* the message being assembled */
    wv_mutex send_lock;
    bool opened; /* the 101 went out */
    /* permessage-deflate (RFC 7692), when negotiated */
    bool deflate;
    bool server_no_ctx, client_no_ctx; /* reset our compressor / their stream per message */
    int server_bits, client_bits;      /* LZ77 windows: ours, theirs */
    bool zin_ready, zout_ready;
    z_stream zin, zout;
    wv_buf zgather; /* a compressed message being received (the reader's) */
    wv_buf zsend;   /* a message we compressed (under the send lock) */
    /* bytes owed to the socket before anything else: frames gathered in
     * this pass (written at its end, flush_hook), or the end of a frame
     * ws_send_nowait could only half write; whoever takes the send lock
     * next writes them first */
    wv_buf wpending;
    size_t wpending_off;
    wv_pass_hook flush_hook; /* writes wpending at the end of the pass */
    bool flushing;           /* a flusher fiber is writing the rest */
    bool close_sent, close_received, broken;
    int close_code; /* the peer's */
    int64_t ping_due, pong_due;
    /* hub membership (hub.c): rooms joined, and the outgoing queue its
     * writer fiber drains */
    hub_member *rooms;
    hub_blob **queue;
    size_t q_head, q_len, q_cap;
    wv_event q_wake;
    wv_event writer_done;
    bool writer_running, writer_stop, writer_sending, slow_closed;
    /* direct.c: the id other shards send to, its table chain, and the
     * senders from wv_ws_send_to inside this connection right now */
    uint64_t id;
    wv_ws *id_next;
    int remote_senders;
    bool draining;
    wv_event senders_done;
};

/* ws.c */
int ws_send_frame(wv_ws *ws, uint8_t opcode, const void *data, size_t n);
int ws_send_close(wv_ws *ws, int code, const char *reason);
/* Send a data frame at once if nothing else is in the way (no sender, no
 * queue, no compression) and the socket takes it without waiting: 1 when
 * it is the connection's now (written, or its end kept in wpending for the
 * next sender), 0 when the caller must queue it, -EPIPE when the connection
 * is broken. Never suspends. */
int ws_send_nowait(wv_ws *ws, const void *frame, size_t n);
/* Write wpending, under the send lock. */
int ws_flush_pending(wv_ws *ws);

/* direct.c: list the connection under a new id on the calling shard
 * (-EPERM outside the runtime, -ENOMEM); take it off the list; take it off
 * and wait for the senders inside it (before the teardown) */
int ws_register(wv_ws *ws);
void ws_unregister(wv_ws *ws);
void ws_drain_senders(wv_ws *ws);

/* hub.c: leave every room and stop the writer (from the handler's fiber) */
void hub_detach(wv_ws *ws);

#pragma GCC visibility pop

#endif
