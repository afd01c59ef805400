/*
 * json-c 0.16 (libjson-c-dev) behind bench/json_libs/json_libs.h.
 *
 * Configured as weave would use it: a tokener with a depth limit of 64
 * (json_tokener_new_ex), JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8,
 * and the input's terminating NUL passed in so that a number at the very
 * end parses. A tokener is made per document (weave could keep one per
 * shard; its cost is in the figures).
 */
#include <json-c/json.h>
#include <stdio.h>

#include "json_libs.h"

/* json-c represents JSON null as a NULL object; values and documents need
 * a non-NULL stand-in for it, since NULL means "missing" here. */
static const char null_value;
#define JSON_NULL ((void *)&null_value)

static void *parse(const char *text, size_t n, char *err, size_t err_size)
{
    struct json_tokener *tok = json_tokener_new_ex(64);
    if (!tok) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *root = json_tokener_parse_ex(tok, text, (int)n + 1);
    enum json_tokener_error e = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (e != json_tokener_success) {
        snprintf(err, err_size, "byte %zu: %s", end, json_tokener_error_desc(e));
        json_object_put(root);
        return NULL;
    }
    /* The terminating NUL ends the value; anything after it is not ours. */
    while (end < n && json_lib_space(text[end]))
        end++;
    if (end < n) {
        snprintf(err, err_size, "trailing bytes at byte %zu", end);
        json_object_put(root);
        return NULL;
    }
    /* A JSON null parses to the NULL object; give it a stand-in. */
    return root ? (void *)root : JSON_NULL;
}

static void free_doc(void *doc)
{
    if (doc != JSON_NULL)
        json_object_put(doc);
}

static const void *root(void *doc)
{
    return doc == JSON_NULL ? NULL : doc;
}

static const void *get(void *doc, const void *obj, const char *key)
{
    struct json_object *v = NULL;
    if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &v))
        return NULL;
    return v ? (const void *)v : (const void *)JSON_NULL;
}

static struct json_object *value(const void *v)
{
    return v == (const void *)JSON_NULL ? NULL : (struct json_object *)v;
}

static int as_string(void *doc, const void *v, const char **s, size_t *n)
{
    struct json_object *o = value(v);
    if (!o || !json_object_is_type(o, json_type_string))
        return -1;
    *s = json_object_get_string(o);
    *n = (size_t)json_object_get_string_len(o);
    return 0;
}

static int as_i64(void *doc, const void *v, int64_t *out)
{
    struct json_object *o = value(v);
    if (!o || !json_object_is_type(o, json_type_int))
        return -1;
    *out = json_object_get_int64(o);
    return 0;
}

static int as_double(void *doc, const void *v, double *out)
{
    struct json_object *o = value(v);
    if (!o || !(json_object_is_type(o, json_type_double) || json_object_is_type(o, json_type_int)))
        return -1;
    *out = json_object_get_double(o);
    return 0;
}

static int as_bool(void *doc, const void *v, bool *out)
{
    struct json_object *o = value(v);
    if (!o || !json_object_is_type(o, json_type_boolean))
        return -1;
    *out = json_object_get_boolean(o);
    return 0;
}

static bool is_null(void *doc, const void *v)
{
    return v == (const void *)JSON_NULL;
}

static long array_len(void *doc, const void *v)
{
    struct json_object *o = value(v);
    return o && json_object_is_type(o, json_type_array) ? (long)json_object_array_length(o) : -1;
}

static const void *array_at(void *doc, const void *v, size_t i)
{
    struct json_object *o = value(v);
    if (!o || !json_object_is_type(o, json_type_array) || i >= json_object_array_length(o))
        return NULL;
    struct json_object *e = json_object_array_get_idx(o, i);
    return e ? (const void *)e : (const void *)JSON_NULL;
}

const json_lib json_lib_jsonc = {
    .name = "json-c 0.16",
    .setup = "json_tokener_new_ex(64), STRICT | VALIDATE_UTF8",
    .parse = parse,
    .free_doc = free_doc,
    .root = root,
    .get = get,
    .as_string = as_string,
    .as_i64 = as_i64,
    .as_double = as_double,
    .as_bool = as_bool,
    .is_null = is_null,
    .array_len = array_len,
    .array_at = array_at,
};
