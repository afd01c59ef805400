/*
 * §13.11.1 Prometheus: the chapter's service.
 *
 *     REQUEST_COUNT = Counter('http_requests_total', 'Total HTTP Requests',
 *                             ['method', 'endpoint'])
 *
 *     @app.middleware("http")
 *     async def add_process_time_header(request, call_next):
 *         REQUEST_COUNT.labels(method=request.method,
 *                              endpoint=request.url.path).inc()
 *         return await call_next(request)
 *
 *     @app.get("/metrics")
 *     async def metrics():
 *         return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
 *
 *     @app.get("/hello")
 *     async def hello():
 *         await asyncio.sleep(1)
 *         return {"message": "Hello, Prometheus!"}
 *
 * Only /hello is written here: the counting middleware and /metrics are
 * every wv_app's (include/weave/metrics.h, wv_metrics_http), on by
 * default (--metrics=false turns them off, --metrics-port moves /metrics to
 * an admin port). The counter is labelled by route template, not by the
 * raw path the chapter uses: a path label lets any client create series
 * without bound ("/users/1", "/users/2", ...). The chapter's Grafana
 * dashboard (§13.11.2) is deploy/grafana/weave-dashboard.json, scraped with
 * deploy/prometheus/prometheus.yml.
 */
#include "chapter13.h"

static int hello(wv_req *req, wv_res *res)
{
    (void)req;
    int rc = wv_sleep_ms(async_delay_ms);
    if (rc < 0)
        return rc;
    return wv_res_json(res, 200, "{\"message\":\"Hello, Prometheus!\"}");
}

void s13_11_1_prometheus(wv_app *app)
{
    wv_get(app, "/hello", hello);
}
