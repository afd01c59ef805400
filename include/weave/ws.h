/*
 * WebSockets (RFC 6455), server side, on weave's HTTP server.
 *
 *     static int echo(wv_req *req, wv_res *res)
 *     {
 *         wv_ws *ws;
 *         int rc = wv_ws_accept(req, res, NULL, &ws);   // the handshake
 *         if (rc < 0)
 *             return rc;                                // answered 400/403/426
 *         wv_str msg;
 *         int type;
 *         while ((type = wv_ws_recv(ws, &msg)) > 0)     // whole messages
 *             if (wv_ws_send(ws, type, msg.p, msg.n) < 0)
 *                 break;
 *         return wv_ws_close(ws, WV_WS_NORMAL, NULL);
 *     }
 *     ...
 *     wv_get(router, "/ws", echo);
 *
 * The connection's fiber runs the handler; when it returns, the
 * connection is closed (with a close frame if the handler sent none).
 * Every protocol violation by the peer closes with the right code (1002
 * protocol error, 1007 invalid UTF-8 text, 1009 message too big), is logged
 * once, and makes wv_ws_recv return an error; pings are answered
 * automatically. Deadlines and cancellation apply to every call, as
 * everywhere in weave.
 */
#ifndef WEAVE_WS_H
#define WEAVE_WS_H

#include "weave/http.h"
#include "weave/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_ws wv_ws;

enum { WV_WS_TEXT = 1, WV_WS_BINARY = 2 };

/* Close codes (RFC 6455 7.4.1). */
enum {
    WV_WS_NORMAL = 1000,
    WV_WS_GOING_AWAY = 1001,
    WV_WS_PROTOCOL_ERROR = 1002,
    WV_WS_UNSUPPORTED = 1003,
    WV_WS_NO_STATUS = 1005,
    WV_WS_ABNORMAL = 1006,
    WV_WS_INVALID_DATA = 1007,
    WV_WS_POLICY = 1008,
    WV_WS_TOO_BIG = 1009,
    WV_WS_INTERNAL_ERROR = 1011,
};

typedef struct wv_ws_opts {
    size_t max_message;              /* 0 = 1 MiB; larger: close 1009 */
    const char *const *subprotocols; /* NULL-terminated, in preference order; NULL = none */
    /* Accept this Origin? NULL = any. A refusal answers 403. */
    bool (*check_origin)(wv_str origin, void *arg);
    void *origin_arg;
    int64_t ping_interval_ms; /* 0 = 30 s of silence before we ping; < 0: never */
    int64_t pong_timeout_ms;  /* 0 = 10 s for the pong, then close 1011 */
    /* permessage-deflate (RFC 7692) is accepted when the client offers it
     * (messages of 32 bytes or more are sent compressed; an inflated
     * message past max_message closes with 1009); this turns it off */
    bool no_compression;
} wv_ws_opts;

/*
 * Complete the opening handshake for this request (GET, Upgrade:
 * websocket, Connection: Upgrade, Sec-WebSocket-Version: 13, a valid
 * Sec-WebSocket-Key) and answer 101. On a bad handshake the response is
 * sent (400, 403 for a refused origin, 426 with Sec-WebSocket-Version for
 * another version) and a negative errno returned. opts may be NULL.
 */
int wv_ws_accept(wv_req *req, wv_res *res, const wv_ws_opts *opts, wv_ws **out);

/* The subprotocol agreed on, or NULL. */
const char *wv_ws_subprotocol(const wv_ws *ws);

/*
 * Receive one whole message (fragments joined, text checked as UTF-8).
 * Returns WV_WS_TEXT or WV_WS_BINARY with *msg valid until the next
 * wv_ws_recv or wv_ws_close on ws (its memory may be freed then);
 * -EPIPE once the peer has closed (its code: wv_ws_close_code); -EPROTO
 * after a protocol violation (the connection was closed with its code);
 * -ESHUTDOWN when the server is stopping (it sent 1001 Going Away);
 * -ETIMEDOUT / -ECANCELED; -ECONNRESET when the TCP connection dropped.
 */
int wv_ws_recv(wv_ws *ws, wv_str *msg);

/* Send one message (text must be UTF-8). Frames from several fibers of the
 * shard never interleave. The frame is gathered with the others sent in the
 * same pass of the shard and written once the ready fibers have run (when
 * this fiber next suspends or yields), in one system call; a burst of up to
 * 64 KiB waits for nothing else, a bigger message is written at once. A
 * close is always written at once. -EPIPE once closed or after a failed
 * write. */
int wv_ws_send(wv_ws *ws, int type, const void *data, size_t n);
int wv_ws_send_text(wv_ws *ws, const char *text);

/*
 * Every open connection (server or client) has an id, unique in the
 * process and never 0, that any fiber of any shard can send to: a user's
 * socket found in a table, a job finishing on another shard. The message
 * is sent by the connection's own shard, serialized with its other sends;
 * the caller waits until it is written (its backpressure: a slow peer slows
 * its senders, not the others), so `data` needs to live only for the call.
 * -ENOENT when no open connection has that id (it closed, or never was),
 * -EPIPE once it is closing, -EINVAL for a bad type, -EPERM outside the
 * runtime, and the deadline / cancellation errors of the caller.
 */
uint64_t wv_ws_id(const wv_ws *ws);
int wv_ws_send_to(uint64_t id, int type, const void *data, size_t n);

/* Send a ping (payload up to 125 bytes); the pong is absorbed by recv. */
int wv_ws_ping(wv_ws *ws, const void *data, size_t n);

/* Start (or answer) the closing handshake with a code and a reason (NULL
 * or UTF-8, up to 123 bytes), wait up to a second for the peer's close,
 * and return 0. Calling it again is harmless. */
int wv_ws_close(wv_ws *ws, int code, const char *reason);

/* The code the peer closed with (1005 when it gave none, 1006 when the
 * connection dropped without a close frame); 0 while open. */
int wv_ws_close_code(const wv_ws *ws);

/* ---------------------------------------------------------------- client */

typedef struct wv_ws_connect_opts {
    const char *const *subprotocols; /* offered, NULL-terminated; NULL = none */
    const char *origin;              /* sent as Origin; NULL = none */
    size_t max_message;              /* 0 = 1 MiB */
    int64_t ping_interval_ms;        /* 0 = 30 s; < 0 never */
    int64_t pong_timeout_ms;         /* 0 = 10 s */
    /* wss://: the TLS client context (whose CAs to trust); NULL = the
     * system's CA store (include/weave/net.h) */
    wv_tls_ctx *tls;
} wv_ws_connect_opts;

/*
 * Connect to a WebSocket server: "ws://host[:port]/path?query", or
 * "wss://..." over TLS (port 443 by default; the server's certificate is
 * verified for host against opts->tls's CAs, the system's by default). host
 * is a name or an IP address; names are resolved on the offload pool. The
 * same recv/send/ping/close calls then work on it; frames it sends are
 * masked. -EINVAL for a bad URL, -ECONNREFUSED etc., -EPROTO when the TLS
 * handshake fails (wv_errmsg: "certificate verify failed: ...") or the
 * server does not answer 101 with the right Sec-WebSocket-Accept (wv_errmsg
 * says what it said). Honours the fiber's deadline. Free with wv_ws_free.
 */
int wv_ws_connect(const char *url, const wv_ws_connect_opts *opts, wv_ws **out);

/* Close the socket of a client connection (after wv_ws_close for a clean
 * goodbye) and free it. NULL is ignored. */
void wv_ws_free(wv_ws *ws);

/* ------------------------------------------------------------ broadcast */

/*
 * A hub: named rooms of connections, on every shard, and publishing to a
 * room from any fiber of any shard (a chat, a live dashboard). Each member
 * has an outgoing queue and its own writer, so a slow member never slows
 * the others; what happens when its queue is full is the hub's policy:
 * drop the oldest queued message, or close the member with 1008.
 */
typedef struct wv_ws_hub wv_ws_hub;

typedef enum wv_ws_slow { WV_WS_DROP_OLDEST, WV_WS_CLOSE_SLOW } wv_ws_slow;

typedef struct wv_ws_hub_opts {
    size_t queue_limit; /* messages queued per member; 0 = 256 */
    wv_ws_slow slow;    /* what a full queue does */
} wv_ws_hub_opts;

/* A hub for the whole process; usable before wv_main (it sizes itself on
 * first use). NULL on OOM. opts may be NULL. */
wv_ws_hub *wv_ws_hub_new(const wv_ws_hub_opts *opts);

/* Free (after the runtime has stopped). */
void wv_ws_hub_free(wv_ws_hub *hub);

/* Add the connection to a room (from its handler's fiber). It leaves every
 * room by itself when its handler returns. 0, -ENOMEM, -EEXIST if already
 * in that room. */
int wv_ws_hub_join(wv_ws_hub *hub, const char *room, wv_ws *ws);

/* Remove it from a room. 0 or -ENOENT. */
int wv_ws_hub_leave(wv_ws_hub *hub, const char *room, wv_ws *ws);

/* Send a message to every member of the room, on every shard, without
 * waiting for them. 0, -ENOMEM, -EPERM outside the runtime. */
int wv_ws_hub_publish(wv_ws_hub *hub, const char *room, int type, const void *data, size_t n);

/* Members of a room on the calling shard. */
int wv_ws_hub_count(wv_ws_hub *hub, const char *room);

#ifdef __cplusplus
}
#endif

#endif
