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
 * every shard, as {"from": "<peer>", "text": "..."}, and joins and leaves
 * are announced ({"event": "join"|"leave", "from": ...}).
 */
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

static void announce(const char *event, const char *from, const char *text, size_t text_len)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_object_begin(&j);
    if (event) {
        wv_json_key(&j, "event");
        wv_json_string(&j, event);
    }
    wv_json_key(&j, "from");
    wv_json_string(&j, from);
    if (text) {
        wv_json_key(&j, "text");
        wv_json_stringn(&j, text, text_len);
    }
    wv_json_object_end(&j);
    if (wv_json_finish(&j) == 0)
        wv_ws_hub_publish(chat_hub, "chat", WV_WS_TEXT, b.p, b.n);
    wv_buf_free(&b);
}

static int chat(wv_req *req, wv_res *res)
{
    wv_ws *ws;
    int rc = wv_ws_accept(req, res, &(wv_ws_opts){.max_message = 64 * 1024}, &ws);
    if (rc < 0)
        return rc;
    const char *me = wv_req_peer(req);
    rc = wv_ws_hub_join(chat_hub, "chat", ws);
    if (rc < 0)
        return wv_ws_close(ws, WV_WS_INTERNAL_ERROR, "cannot join the room");
    announce("join", me, NULL, 0);
    wv_str msg;
    int type;
    while ((type = wv_ws_recv(ws, &msg)) > 0)
        if (type == WV_WS_TEXT)
            announce(NULL, me, msg.p, msg.n);
    announce("leave", me, NULL, 0);
    return wv_ws_close(ws, WV_WS_NORMAL, NULL);
}

void s13_5_1_websockets_options(wv_app *app)
{
    wv_app_option(app, "chat-queue", "CHAT_QUEUE", WV_OPT_INT, "256",
                  "messages queued per /ws/chat member before the slow policy applies");
    wv_app_option(
        app, "chat-slow", "CHAT_SLOW", WV_OPT_STRING, "drop",
        "a /ws/chat member too slow for its queue: drop (its oldest message) or close (1008)");
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
    wv_get(app, "/ws", websocket_endpoint);
    wv_get(app, "/ws/echo", echo);
    wv_get(app, "/ws/chat", chat);
}
