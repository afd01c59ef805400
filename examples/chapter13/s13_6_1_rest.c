/*
 * §13.6.1 Microservices in other languages over REST: the other side of
 * the chapter's httpx call,
 *
 *     response = await client.get('http://localhost:9000/data')
 *
 * that is, the "Go microservice" answering GET /data, plus POST /echo,
 * which answers with the request body and its content type (what clients
 * and conformance checks use to see a body round-trip).
 */
#include <stdio.h>

#include "chapter13.h"

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

void s13_6_1_rest(wv_app *app)
{
    wv_get(app, "/data", data);
    wv_post(app, "/echo", echo);
}
