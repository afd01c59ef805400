/*
 * The book chapter's service, ported to C: `make run` starts it on
 * http://localhost:8000. Each section of the chapter is one file here (the
 * table in the README maps them); this file wires them into one app.
 *
 *     chapter13 --help          every option, its variable and default
 *     chapter13 worker          the task workers alone (s13_8_tasks.c)
 */
#include <stdlib.h>
#include <string.h>

#include "chapter13.h"

int64_t async_delay_ms = 1000;

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "worker") == 0)
        return s13_8_worker_main();
    wv_app *app = wv_app_new(argc, argv);
    wv_app_option(app, "async-delay-ms", "ASYNC_DELAY_MS", WV_OPT_INT, "1000",
                  "the simulated work of the chapter's handlers (asyncio.sleep(1))");
    wv_app_option(app, "web-dir", "WEB_DIR", WV_OPT_STRING, "examples/chapter13/web/dist",
                  "the built React page served at /");
    s13_3_databases_options(app);
    s13_4_messaging_options(app);
    s13_5_1_websockets_options(app);
    s13_6_1_rest_options(app);
    s13_6_2_grpc_options(app);
    s13_7_cloud_options(app);
    s13_8_tasks_options(app);
    s13_9_caching_options(app);
    s13_10_events_options(app);
    s13_13_practices_options(app);
    async_delay_ms = wv_app_int(app, "async-delay-ms");

    s13_2_1_fastapi(app);
    s13_2_2_django(app);
    s13_3_databases(app);
    s13_4_messaging(app);
    s13_5_1_websockets(app);
    s13_6_1_rest(app);
    s13_6_2_grpc(app);
    s13_7_cloud(app);
    s13_8_tasks(app);
    s13_9_caching(app);
    s13_10_events(app);
    s13_11_1_prometheus(app);
    s13_13_practices(app);
    sections(app);
    s13_5_2_frontend(app); /* its static files take every other path */
    s13_13_docs(app);      /* last: the description of every route above */

    int status = wv_app_run(app);
    s13_6_2_grpc_free();
    return status;
}
