/*
 * yajl 2.1 tree API (libyajl-dev) behind bench/json_libs/json_libs.h.
 *
 * yajl_tree_parse takes a NUL-terminated string (it calls strlen), so a
 * body that is a slice would first be copied; the benchmark's documents are
 * terminated and that copy is not counted. It also turns on
 * yajl_allow_comments, which cannot be switched off through the tree API.
 * Objects are arrays of keys (lookup is a linear strcmp scan).
 */
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "json_libs.h"

static void *parse(const char *text, size_t n, char *err, size_t err_size)
{
    if (strlen(text) != n) {
        snprintf(err, err_size, "NUL byte inside the input");
        return NULL;
    }
    err[0] = '\0';
    yajl_val root = yajl_tree_parse(text, err, err_size);
    if (!root && !err[0])
        snprintf(err, err_size, "parse error");
    return root;
}

static void free_doc(void *doc)
{
    yajl_tree_free(doc);
}

static const void *root(void *doc)
{
    return doc;
}

static const void *get(void *doc, const void *obj, const char *key)
{
    yajl_val o = (yajl_val)obj;
    if (!YAJL_IS_OBJECT(o))
        return NULL;
    for (size_t i = 0; i < o->u.object.len; i++)
        if (strcmp(o->u.object.keys[i], key) == 0)
            return o->u.object.values[i];
    return NULL;
}

static int as_string(void *doc, const void *v, const char **s, size_t *n)
{
    yajl_val o = (yajl_val)v;
    if (!YAJL_IS_STRING(o))
        return -1;
    *s = o->u.string;
    *n = strlen(o->u.string);
    return 0;
}

static int as_i64(void *doc, const void *v, int64_t *out)
{
    yajl_val o = (yajl_val)v;
    if (!YAJL_IS_INTEGER(o))
        return -1;
    *out = o->u.number.i;
    return 0;
}

static int as_double(void *doc, const void *v, double *out)
{
    yajl_val o = (yajl_val)v;
    if (!YAJL_IS_DOUBLE(o))
        return -1;
    *out = o->u.number.d;
    return 0;
}

static int as_bool(void *doc, const void *v, bool *out)
{
    yajl_val o = (yajl_val)v;
    if (!YAJL_IS_TRUE(o) && !YAJL_IS_FALSE(o))
        return -1;
    *out = YAJL_IS_TRUE(o);
    return 0;
}

static bool is_null(void *doc, const void *v)
{
    return YAJL_IS_NULL((yajl_val)v);
}

static long array_len(void *doc, const void *v)
{
    yajl_val o = (yajl_val)v;
    return YAJL_IS_ARRAY(o) ? (long)o->u.array.len : -1;
}

static const void *array_at(void *doc, const void *v, size_t i)
{
    yajl_val o = (yajl_val)v;
    return YAJL_IS_ARRAY(o) && i < o->u.array.len ? o->u.array.values[i] : NULL;
}

const json_lib json_lib_yajl = {
    .name = "yajl 2.1 (tree)",
    .setup = "yajl_tree_parse (NUL-terminated input, comments allowed)",
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
