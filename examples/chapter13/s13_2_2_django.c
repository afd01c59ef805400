/*
 * §13.2.2 Django asynchronous views.
 *
 *     async def async_view(request):
 *         await asyncio.sleep(1)
 *         return JsonResponse({"message": "Asynchronous Response"})
 *
 *     urlpatterns = [path('async-view/', views.async_view)]
 *
 * Django's urlpatterns become a route group (include()), with Django's
 * trailing slash kept.
 */
#include "chapter13.h"

static int async_view(wv_req *req, wv_res *res)
{
    (void)req;
    int rc = wv_sleep_ms(async_delay_ms);
    if (rc < 0)
        return rc;
    return wv_res_json(res, 200, "{\"message\":\"Asynchronous Response\"}");
}

void s13_2_2_django(wv_app *app)
{
    wv_router *views = wv_router_group(wv_app_router(app), "");
    wv_get(views, "/async-view/", async_view);
}
