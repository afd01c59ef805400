/*
 * The weave side of the HTTP benchmarks (bench/run_http.sh): TechEmpower's
 * plaintext and JSON routes (the JSON serialized for every request, as
 * TechEmpower's rules require), the chapter's /async-endpoint (a 1 s sleep),
 * POST /echo, a WebSocket echo under /ws (for http.soak), and static files
 * from $STATIC_DIR under /static/. PORT (default 8080) and
 * WEAVE_SHARDS set where and how wide it runs; METRICS=1 adds the metrics
 * middleware (wv_metrics_http) and GET /metrics, for
 * metrics.middleware_overhead (bench/run_metrics.sh); TLS_CERT and TLS_KEY
 * (PEM files) serve HTTPS instead, for bench/run_tls.sh, and
 * TLS_RESUMPTION=0 turns session resumption off (every handshake full).
 * HEADER_TIMEOUT_MS sets the request head's timeout (default 10 s), for
 * http.slowloris at nginx's 60 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/http.h>
#include <weave/metrics.h>
#include <weave/ws.h>

static int plaintext(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_send(res, 200, "text/plain", "Hello, World!", 13);
}

/* {"message":"Hello, World!"}, serialized anew for every request with the
 * streaming writer, as a service would (TechEmpower's rule for /json). */
static int json(wv_req *req, wv_res *res)
{
    (void)req;
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "message");
    wv_json_string(j, "Hello, World!");
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

static int async_endpoint(wv_req *req, wv_res *res)
{
    (void)req;
    int rc = wv_sleep_ms(1000);
    if (rc < 0)
        return rc;
    return wv_res_json(res, 200, "{\"message\":\"Asynchronous Response\"}");
}

static int echo(wv_req *req, wv_res *res)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    wv_str ct = wv_req_header(req, "Content-Type");
    char type[128] = "application/octet-stream";
    if (ct.p && ct.n < sizeof type)
        snprintf(type, sizeof type, "%.*s", (int)ct.n, ct.p);
    return wv_res_send(res, 200, type, body.p, body.n);
}

/* Every message sent back as it came, until the peer closes. */
static int ws_echo(wv_req *req, wv_res *res)
{
    wv_ws *ws;
    int rc = wv_ws_accept(req, res, NULL, &ws);
    if (rc < 0)
        return rc;
    wv_str msg;
    int type;
    while ((type = wv_ws_recv(ws, &msg)) > 0)
        if (wv_ws_send(ws, type, msg.p, msg.n) < 0)
            break;
    return wv_ws_close(ws, WV_WS_NORMAL, NULL);
}

static int serve(void *arg)
{
    (void)arg;
    const char *p = getenv("PORT");
    wv_router *r = wv_router_new();
    wv_get(r, "/plaintext", plaintext);
    wv_get(r, "/json", json);
    wv_get(r, "/async-endpoint", async_endpoint);
    wv_post(r, "/echo", echo);
    wv_get(r, "/ws", ws_echo);
    const char *m = getenv("METRICS");
    if (m && strcmp(m, "1") == 0 &&
        (wv_metrics_http(r, NULL) < 0 ||
         wv_route_with(r, "GET", "/metrics", wv_metrics_handler, NULL) < 0)) {
        fprintf(stderr, "bench_http_server: metrics: %s\n", wv_errmsg());
        return 1;
    }
    const char *dir = getenv("STATIC_DIR");
    if (dir && wv_static(r, "/static", dir) < 0) {
        fprintf(stderr, "bench_http_server: %s\n", wv_errmsg());
        return 1;
    }
    wv_tls_ctx *tls = NULL;
    const char *cert = getenv("TLS_CERT"), *key = getenv("TLS_KEY");
    const char *resume = getenv("TLS_RESUMPTION");
    if (cert && key &&
        wv_tls_ctx_server(&(wv_tls_opts){.cert_file = cert,
                                         .key_file = key,
                                         .alpn = "http/1.1",
                                         .no_resumption = resume && strcmp(resume, "0") == 0},
                          &tls) < 0) {
        fprintf(stderr, "bench_http_server: %s\n", wv_errmsg());
        return 1;
    }
    const char *head_ms = getenv("HEADER_TIMEOUT_MS");
    int rc = wv_http_serve(r, &(wv_http_opts){.port = p ? atoi(p) : 8080,
                                              .max_connections = 20000,
                                              .tls = tls,
                                              .header_timeout_ms = head_ms ? atoi(head_ms) : 0});
    if (rc < 0)
        fprintf(stderr, "bench_http_server: %s\n", wv_errmsg());
    wv_router_free(r);
    wv_tls_ctx_free(tls);
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    return wv_main(NULL, serve, NULL);
}
