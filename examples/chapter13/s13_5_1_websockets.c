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
 * conformance suites and benchmarks use.
 */
#include <stdio.h>
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

void s13_5_1_websockets(wv_app *app)
{
    wv_get(app, "/ws", websocket_endpoint);
    wv_get(app, "/ws/echo", echo);
}
