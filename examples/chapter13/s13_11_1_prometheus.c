/*
 * §13.11.1 Prometheus: the chapter's /hello route.
 *
 *     @app.get("/hello")
 *     async def hello():
 *         await asyncio.sleep(1)
 *         return {"message": "Hello, Prometheus!"}
 *
 * /metrics and the request-counting middleware arrive with the metrics
 * module (issue 6).
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
