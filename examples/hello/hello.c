/*
 * A first weave service: GET / answers JSON, GET /hello/{name} greets.
 *
 *     cc hello.c -o hello $(pkg-config --cflags --libs weave)
 *     ./hello --port 8000          # --help lists every option
 *     curl http://localhost:8000/hello/Ada
 *
 * Every connection is served by a fiber of its own: a handler may wait (a
 * sleep, a database query) without holding up the other connections.
 */
#include <stdio.h>

#include <weave/app.h>

static int root(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_json(res, 200, "{\"message\":\"Hello, World!\"}");
}

static int hello(wv_req *req, wv_res *res)
{
    wv_str name;
    int rc = wv_req_param(req, "name", &name); /* percent-decoded */
    if (rc < 0)
        return rc;
    char message[128];
    snprintf(message, sizeof message, "Hello, %.*s!", (int)name.n, name.p);
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "message");
    wv_json_string(j, message); /* escaped as JSON requires */
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

int main(int argc, char **argv)
{
    wv_app *app = wv_app_new(argc, argv); /* --port / PORT, --shards / SHARDS, ... */
    wv_get(app, "/", root);
    wv_get(app, "/hello/{name}", hello);
    return wv_app_run(app); /* serves until SIGTERM or Ctrl-C, then returns 0 */
}
