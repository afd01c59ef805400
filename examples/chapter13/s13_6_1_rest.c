/*
 * §13.6.1 Microservices in other languages over REST: both sides of the
 * chapter's httpx call,
 *
 *     async with httpx.AsyncClient() as client:
 *         response = await client.get('http://localhost:9000/data')
 *         return response.json()
 *
 * The callee, the "Go microservice": GET /data, plus POST /echo, which
 * answers with the request body and its content type (what clients and
 * conformance checks use to see a body round-trip).
 *
 * The caller: GET /proxy/data calls the downstream service with weave's
 * HTTP client (include/weave/httpc.h) and returns what it got:
 *
 *   --downstream-url / DOWNSTREAM_URL   what to call; by default this
 *                                       service's own /data, on the port
 *                                       it listens on
 *   --downstream-timeout-ms /           how long to wait for it (5000; 0:
 *     DOWNSTREAM_TIMEOUT_MS             no bound of its own); a caller's
 *                                       X-Request-Timeout-Ms makes it
 *                                       shorter, never longer
 *
 * The downstream's answer comes back with its status, content type and
 * body, an error status included (a 404 there is a 404 here). 502 when it
 * cannot be reached or breaks HTTP, 504 when the time runs out. The call
 * is a GET, so 502, 503, 504 and 429 answers and refused connections are
 * tried again (three attempts, with backoff, within the deadline); and it
 * passes on this request's X-Request-Id and the time left, which a weave
 * downstream turns into its own handler's deadline: every route of this
 * service honours X-Request-Timeout-Ms (wv_deadline_header), so the
 * service can be its own downstream.
 */
#include <stdio.h>
#include <string.h>

#include <weave/httpc.h>

#include "chapter13.h"

typedef struct downstream {
    const char *url;  /* NULL: this service's own /data */
    const char *host; /* where this service listens */
    int64_t timeout_ms;
} downstream;

static downstream down;

void s13_6_1_rest_options(wv_app *app)
{
    wv_app_option(app, "downstream-url", "DOWNSTREAM_URL", WV_OPT_STRING, NULL,
                  "what GET /proxy/data calls (default: this service's own /data)");
    wv_app_option(app, "downstream-timeout-ms", "DOWNSTREAM_TIMEOUT_MS", WV_OPT_INT, "5000",
                  "how long GET /proxy/data waits for the downstream, retries included "
                  "(0: only as long as its caller)");
}

static int data(wv_req *req, wv_res *res)
{
    (void)req;
    static const char *names[] = {"alpha", "beta", "gamma"};
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "service");
    wv_json_string(j, "data");
    wv_json_key(j, "items");
    wv_json_array_begin(j);
    for (int i = 0; i < 3; i++) {
        wv_json_object_begin(j);
        wv_json_key(j, "id");
        wv_json_int(j, i + 1);
        wv_json_key(j, "name");
        wv_json_string(j, names[i]);
        wv_json_object_end(j);
    }
    wv_json_array_end(j);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

static int echo(wv_req *req, wv_res *res)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    wv_str ct = wv_req_header(req, "Content-Type");
    char type[256] = "application/octet-stream";
    if (ct.p && ct.n < sizeof type)
        snprintf(type, sizeof type, "%.*s", (int)ct.n, ct.p);
    return wv_res_send(res, 200, type, body.p, body.n);
}

/* This service's own /data, on the address and port it listens on. */
static int own_data_url(wv_req *req, char *url, size_t cap)
{
    int port = wv_req_local_port(req);
    if (port < 0)
        return wv_fail(port, "cannot tell which port this service listens on");
    const char *host = down.host;
    if (!host || !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !host[0])
        host = "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL;
    snprintf(url, cap, "%s://%s%s%s:%d/data", wv_req_is_tls(req) ? "https" : "http", v6 ? "[" : "",
             host, v6 ? "]" : "", port);
    return 0;
}

/* An error of the call as FastAPI would put it: {"detail": why}. */
static int gateway_error(wv_res *res, int status)
{
    char why[512];
    snprintf(why, sizeof why, "%s", wv_errmsg());
    return detail_error(res, status, why);
}

/* GET /proxy/data: response = await client.get(DOWNSTREAM_URL) */
static int proxy_data(wv_req *req, wv_res *res)
{
    char own[128];
    const char *url = down.url;
    if (!url) {
        int rc = own_data_url(req, own, sizeof own);
        if (rc < 0)
            return rc;
        url = own;
    }
    int64_t outer = wv_deadline();
    if (down.timeout_ms > 0 && wv_after_ms(down.timeout_ms) < outer)
        wv_deadline_set(wv_after_ms(down.timeout_ms));
    wv_httpc_response up;
    int rc = wv_httpc_request(
        &(wv_httpc_req){.url = url,
                        .headers = (wv_httpc_header[]){{"Accept", "application/json"}},
                        .nheaders = 1,
                        .retry = {.attempts = 3},
                        .from = req},
        &up);
    wv_deadline_set(outer);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        return rc; /* 504, 503 */
    if (rc < 0)
        return gateway_error(res, 502); /* unreachable, refused, broke HTTP */
    const char *type = wv_httpc_header_get(&up, "Content-Type");
    rc =
        wv_res_send(res, up.status, type ? type : "application/octet-stream", up.body.p, up.body.n);
    wv_httpc_response_free(&up);
    return rc;
}

void s13_6_1_rest(wv_app *app)
{
    down.url = wv_app_str(app, "downstream-url");
    down.host = wv_app_str(app, "host");
    down.timeout_ms = wv_app_int(app, "downstream-timeout-ms");
    if (down.url && !down.url[0])
        down.url = NULL;
    wv_get(app, "/data", data);
    wv_post(app, "/echo", echo);
    wv_get(app, "/proxy/data", proxy_data);
    /* a caller's X-Request-Timeout-Ms becomes every handler's deadline */
    wv_deadline_header(wv_app_router(app), NULL);
}
