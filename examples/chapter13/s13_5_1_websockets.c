/*
 * §13.5.1 WebSockets for real-time communication.
 *
 *     @app.websocket("/ws")
 *     async def websocket_endpoint(websocket: WebSocket):
 *         await websocket.accept()
 *         while True:
 *             data = await websocket.receive_text()
 *             await asyncio.sleep(1)  # simulated processing
 *             await websocket.send_text(f"Echo: {data}")
 *
 * /ws is that endpoint (the delay is --async-delay-ms); /ws/echo echoes
 * every message exactly, text as text and binary as binary, at once: what
 * conformance suites and benchmarks use; /ws/chat is a chat room on a
 * broadcast hub: every text sent is relayed to everyone in the room, on
 * every shard, as {"from": "<peer>", "id": "<member id>", "text": "..."},
 * and joins and leaves are announced ({"event": "join"|"leave", "from":
 * ..., "id": ...}) unless --chat-events=false. A text "/to <id> <words>" goes to that one member
 * instead (wv_ws_send_to, whichever shard holds it), as {"from", "id",
 * "to", "text"}; an unknown id is answered {"from": "server", "text":
 * "no member <id>"}.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/ws.h>

#include "chapter13.h"

static int websocket_endpoint(wv_req *req, wv_res *res)
{
    wv_ws *ws;
    int rc = wv_ws_accept(req, res, NULL, &ws);
    if (rc < 0)
        return rc;
    wv_str data;
    int type;
    while ((type = wv_ws_recv(ws, &data)) > 0) {
        if (type != WV_WS_TEXT)
            return wv_ws_close(ws, WV_WS_UNSUPPORTED, "text only");
        /* the message lives until the next receive: keep a copy across the sleep */
        char *reply = wv_req_alloc(req, data.n + 7);
        if (!reply)
            return wv_ws_close(ws, WV_WS_INTERNAL_ERROR, NULL);
        memcpy(reply, "Echo: ", 6);
        memcpy(reply + 6, data.p, data.n);
        if (wv_sleep_ms(async_delay_ms) < 0 || wv_ws_send(ws, WV_WS_TEXT, reply, data.n + 6) < 0)
            break;
    }
    return wv_ws_close(ws, WV_WS_NORMAL, NULL);
}

static int echo(wv_req *req, wv_res *res)
{
    wv_ws *ws;
    int rc = wv_ws_accept(req, res, &(wv_ws_opts){.max_message = 16 << 20}, &ws);
    if (rc < 0)
        return rc;
    wv_str msg;
    int type;
    while ((type = wv_ws_recv(ws, &msg)) > 0)
        if (wv_ws_send(ws, type, msg.p, msg.n) < 0)
            break;
    return wv_ws_close(ws, WV_WS_NORMAL, NULL);
}

static wv_ws_hub *chat_hub;
static bool chat_events; /* announce joins and leaves */

/* One chat frame as JSON: {"event"?, "from", "id", "to"?, "text"?}. */
static int chat_frame(wv_buf *b, const char *event, const char *from, uint64_t id, uint64_t to,
                      const char *text, size_t text_len)
{
    char num[24];
    wv_json j;
    wv_json_init(&j, b);
    wv_json_object_begin(&j);
    if (event) {
        wv_json_key(&j, "event");
        wv_json_string(&j, event);
    }
    wv_json_key(&j, "from");
    wv_json_string(&j, from);
    /* ids as strings: a 64-bit number does not survive JavaScript */
    snprintf(num, sizeof num, "%" PRIu64, id);
    wv_json_key(&j, "id");
    wv_json_string(&j, num);
    if (to) {
        snprintf(num, sizeof num, "%" PRIu64, to);
        wv_json_key(&j, "to");
        wv_json_string(&j, num);
    }
    if (text) {
        wv_json_key(&j, "text");
        wv_json_stringn(&j, text, text_len);
    }
    wv_json_object_end(&j);
    return wv_json_finish(&j);
}

static void announce(const char *event, const char *from, uint64_t id, const char *text,
                     size_t text_len)
{
    wv_buf b = {0};
    if (chat_frame(&b, event, from, id, 0, text, text_len) == 0)
        wv_ws_hub_publish(chat_hub, "chat", WV_WS_TEXT, b.p, b.n);
    wv_buf_free(&b);
}

/* "/to <id> <words>": to one member, on whichever shard it is. */
static int direct(wv_ws *ws, const char *me, wv_str msg)
{
    const char *p = msg.p + 4, *end = msg.p + msg.n;
    uint64_t to = 0;
    while (p < end && *p >= '0' && *p <= '9' && to < UINT64_MAX / 10)
        to = to * 10 + (uint64_t)(*p++ - '0');
    if (p < end && *p == ' ')
        p++;
    wv_buf b = {0};
    int rc = chat_frame(&b, NULL, me, wv_ws_id(ws), to, p, (size_t)(end - p));
    if (rc == 0)
        rc = wv_ws_send_to(to, WV_WS_TEXT, b.p, b.n);
    if (rc == -ENOENT) {
        char text[48];
        int n = snprintf(text, sizeof text, "no member %" PRIu64, to);
        b.n = 0;
        rc = chat_frame(&b, NULL, "server", 0, 0, text, (size_t)n);
        if (rc == 0)
            rc = wv_ws_send(ws, WV_WS_TEXT, b.p, b.n);
    }
    wv_buf_free(&b);
    return rc;
}

static int chat(wv_req *req, wv_res *res)
{
    wv_ws *ws;
    int rc = wv_ws_accept(req, res, &(wv_ws_opts){.max_message = 64 * 1024}, &ws);
    if (rc < 0)
        return rc;
    const char *me = wv_req_peer(req);
    uint64_t id = wv_ws_id(ws);
    rc = wv_ws_hub_join(chat_hub, "chat", ws);
    if (rc < 0)
        return wv_ws_close(ws, WV_WS_INTERNAL_ERROR, "cannot join the room");
    if (chat_events)
        announce("join", me, id, NULL, 0);
    wv_str msg;
    int type;
    while ((type = wv_ws_recv(ws, &msg)) > 0) {
        if (type != WV_WS_TEXT)
            continue;
        if (msg.n > 4 && memcmp(msg.p, "/to ", 4) == 0) {
            if (direct(ws, me, msg) < 0 && wv_cancelled())
                break;
        } else {
            announce(NULL, me, id, msg.p, msg.n);
        }
    }
    if (chat_events)
        announce("leave", me, id, NULL, 0);
    return wv_ws_close(ws, WV_WS_NORMAL, NULL);
}

void s13_5_1_websockets_options(wv_app *app)
{
    wv_app_option(app, "chat-queue", "CHAT_QUEUE", WV_OPT_INT, "256",
                  "messages queued per /ws/chat member before the slow policy applies");
    wv_app_option(
        app, "chat-slow", "CHAT_SLOW", WV_OPT_STRING, "drop",
        "a /ws/chat member too slow for its queue: drop (its oldest message) or close (1008)");
    wv_app_option(app, "chat-events", "CHAT_EVENTS", WV_OPT_BOOL, "true",
                  "announce /ws/chat joins and leaves to the room (off for a large audience: "
                  "each join is a message to every member)");
}

void s13_5_1_websockets(wv_app *app)
{
    const char *slow = wv_app_str(app, "chat-slow");
    if (strcmp(slow, "drop") != 0 && strcmp(slow, "close") != 0) {
        fprintf(stderr, "chapter13: --chat-slow=%s: expected drop or close\n", slow);
        exit(2);
    }
    chat_hub = wv_ws_hub_new(&(wv_ws_hub_opts){
        .queue_limit = (size_t)wv_app_int(app, "chat-queue"),
        .slow = strcmp(slow, "close") == 0 ? WV_WS_CLOSE_SLOW : WV_WS_DROP_OLDEST});
    chat_events = wv_app_bool(app, "chat-events");
    wv_get(app, "/ws", websocket_endpoint);
    wv_get(app, "/ws/echo", echo);
    wv_get(app, "/ws/chat", chat);
}
