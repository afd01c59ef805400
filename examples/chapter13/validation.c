/*
 * The chapter's inputs, read through their declarations
 * (include/weave/schema.h): path and query parameters, the results of
 * several inputs folded into one, and FastAPI's 422 with every error at
 * once; the 422 of a raw body's one error, which no declaration states;
 * and the {"detail": why} of an error that has no errno of its own (a
 * downstream's).
 */
#include <string.h>

#include <weave/json.h>

#include "chapter13.h"

int input_path(wv_req *req, const wv_db_field *f, void *out, wv_schema_errors *errs)
{
    wv_str s;
    int rc = wv_req_param(req, f->name, &s);
    return wv_schema_param(f, "path", rc == 0 ? s.p : NULL, rc == 0 ? s.n : 0, out, errs);
}

int input_query(wv_req *req, const wv_db_field *f, void *out, wv_schema_errors *errs)
{
    wv_str s;
    int rc = wv_req_query_param(req, f->name, &s);
    /* an empty value reads as text: "" */
    return wv_schema_param(f, "query", rc == 0 ? (s.p ? s.p : "") : NULL, rc == 0 ? s.n : 0, out,
                           errs);
}

static bool invalid(int rc)
{
    return rc == -EINVAL || rc == -EBADMSG;
}

int input_fold(int rc, int next)
{
    if (rc < 0 && !invalid(rc))
        return rc;
    if (next < 0 && !invalid(next))
        return next;
    return rc < 0 || next < 0 ? -EINVAL : 0;
}

int input_end(wv_res *res, int rc, wv_schema_errors *errs)
{
    if (invalid(rc) && wv_schema_errors_count(errs) > 0) {
        rc = wv_res_unprocessable(res, errs);
        if (rc >= 0)
            rc = 1;
    } else if (rc > 0) {
        rc = 0;
    }
    wv_schema_errors_free(errs);
    return rc;
}

int unprocessable(wv_res *res, const char *type, const char *msg, const char *loc,
                  const char *input, const char *ctx)
{
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "detail");
    wv_json_array_begin(j);
    wv_json_object_begin(j);
    wv_json_key(j, "type");
    wv_json_string(j, type);
    wv_json_key(j, "loc");
    wv_json_raw(j, loc, strlen(loc));
    wv_json_key(j, "msg");
    wv_json_string(j, msg);
    if (input) {
        wv_json_key(j, "input");
        wv_json_raw(j, input, strlen(input));
    }
    if (ctx) {
        wv_json_key(j, "ctx");
        wv_json_raw(j, ctx, strlen(ctx));
    }
    wv_json_object_end(j);
    wv_json_array_end(j);
    wv_json_object_end(j);
    return wv_res_json_send(res, 422);
}

int detail_error(wv_res *res, int status, const char *why)
{
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "detail");
    wv_json_string(j, why);
    wv_json_object_end(j);
    return wv_res_json_send(res, status);
}
