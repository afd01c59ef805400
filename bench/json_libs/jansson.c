/*
 * jansson 2.14 (libjansson-dev) behind bench/json_libs/json_libs.h.
 *
 * Configured as weave would use it: json_loadb (length-bounded input),
 * JSON_DECODE_ANY (any value at the top, as RFC 8259 allows) and
 * JSON_REJECT_DUPLICATES. Objects are hash tables, arrays are vectors,
 * integers are long long, strings carry their length.
 */
#include <jansson.h>
#include <stdio.h>

#include "json_libs.h"

static void *parse(const char *text, size_t n, char *err, size_t err_size)
{
    json_error_t e;
    json_t *root = json_loadb(text, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!root)
        snprintf(err, err_size, "line %d, column %d (byte %d): %s", e.line, e.column, e.position,
                 e.text);
    return root;
}

static void free_doc(void *doc)
{
    json_decref(doc);
}

static const void *root(void *doc)
{
    return doc;
}

static const void *get(void *doc, const void *obj, const char *key)
{
    return obj ? json_object_get(obj, key) : NULL;
}

static int as_string(void *doc, const void *v, const char **s, size_t *n)
{
    if (!json_is_string((const json_t *)v))
        return -1;
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 0;
}

static int as_i64(void *doc, const void *v, int64_t *out)
{
    if (!json_is_integer((const json_t *)v))
        return -1;
    *out = json_integer_value(v);
    return 0;
}

static int as_double(void *doc, const void *v, double *out)
{
    if (!json_is_number((const json_t *)v))
        return -1;
    *out = json_number_value(v);
    return 0;
}

static int as_bool(void *doc, const void *v, bool *out)
{
    if (!json_is_boolean((const json_t *)v))
        return -1;
    *out = json_is_true((const json_t *)v);
    return 0;
}

static bool is_null(void *doc, const void *v)
{
    return json_is_null((const json_t *)v);
}

static long array_len(void *doc, const void *v)
{
    return json_is_array((const json_t *)v) ? (long)json_array_size(v) : -1;
}

static const void *array_at(void *doc, const void *v, size_t i)
{
    return v ? json_array_get(v, i) : NULL;
}

const json_lib json_lib_jansson = {
    .name = "jansson 2.14",
    .setup = "json_loadb, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES",
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
