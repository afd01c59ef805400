/*
 * FastAPI's answer to input that fails validation, shared by the sections
 * that check what they are sent: 422 with
 *     {"detail": [{"loc": [where, field], "msg": ..., "type": ...}]}
 * (where is "body", "path" or "query"; field may be NULL), and the
 * {"detail": why} of an error that has no errno of its own (a downstream's).
 */
#include <weave/json.h>

#include "chapter13.h"

int unprocessable(wv_res *res, const char *where, const char *field, const char *msg,
                  const char *type)
{
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "detail");
    wv_json_array_begin(j);
    wv_json_object_begin(j);
    wv_json_key(j, "loc");
    wv_json_array_begin(j);
    wv_json_string(j, where);
    if (field)
        wv_json_string(j, field);
    wv_json_array_end(j);
    wv_json_key(j, "msg");
    wv_json_string(j, msg);
    wv_json_key(j, "type");
    wv_json_string(j, type);
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
