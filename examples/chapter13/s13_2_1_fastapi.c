/*
 * §13.2.1 FastAPI and asynchronous routes.
 *
 *     @app.get("/async-endpoint")
 *     async def async_endpoint():
 *         await asyncio.sleep(1)
 *         return {"message": "Asynchronous Response"}
 *
 * The sleep suspends only this request's fiber: the shard keeps serving
 * every other request meanwhile.
 */
#include "chapter13.h"

static int async_endpoint(wv_req *req, wv_res *res)
{
    (void)req;
    int rc = wv_sleep_ms(async_delay_ms);
    if (rc < 0)
        return rc;
    return wv_res_json(res, 200, "{\"message\":\"Asynchronous Response\"}");
}

void s13_2_1_fastapi(wv_app *app)
{
    wv_get(app, "/async-endpoint", async_endpoint);
}
