/*
 * §13.5.2 Frontend frameworks: the chapter's React component,
 *
 *     useEffect(() => {
 *       fetch('http://localhost:8000/async-endpoint')
 *         .then(response => response.json())
 *         .then(data => setMessage(data.message))
 *     }, []);
 *
 * lives in web/ (built with esbuild from npm at build time) and is served
 * here from --web-dir at /. CORS lets the same API serve a page from the
 * chapter's dev-server origin, http://localhost:8000 (and :5173, :3000).
 */
#include <stdio.h>
#include <stdlib.h>

#include "chapter13.h"

void s13_5_2_frontend(wv_app *app)
{
    static const char *const origins[] = {"http://localhost:8000", "http://127.0.0.1:8000",
                                          "http://localhost:5173", "http://localhost:3000", NULL};
    wv_cors(wv_app_router(app), &(wv_cors_opts){.origins = origins});
    const char *dir = wv_app_str(app, "web-dir");
    if (wv_static(wv_app_router(app), "/", dir) < 0) {
        fprintf(stderr, "chapter13: %s (build the page with `make build`, or set --web-dir)\n",
                wv_errmsg());
        exit(2);
    }
}
