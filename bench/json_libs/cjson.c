/*
 * cJSON 1.7.15 (libcjson-dev) behind bench/json_libs/json_libs.h.
 *
 * cJSON keeps every number as a double (valueint is a clamped int), so an
 * integer read is "a double with no fraction inside int64's range": exact
 * only up to 2^53. Arrays and objects are linked lists, so element i costs
 * O(i); a small cache of cursors (array, index, node), one per recently
 * walked array, makes the in-order walks a handler does (an outer array
 * and the arrays inside its elements) O(1) per element, as a real wrapper
 * would need to.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_libs.h"

enum { CURSORS = 8 };

typedef struct cursor {
    const cJSON *array;
    size_t index;
    const cJSON *node;
} cursor;

typedef struct doc {
    cJSON *root;
    cursor cursors[CURSORS]; /* most recently used first */
} doc;

static void *parse(const char *text, size_t n, char *err, size_t err_size)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        snprintf(err, err_size, "syntax error at byte %td", end ? end - text : -1);
        return NULL;
    }
    while (end < text + n && json_lib_space(*end))
        end++;
    if (end != text + n) {
        cJSON_Delete(root);
        snprintf(err, err_size, "trailing bytes at byte %td", end - text);
        return NULL;
    }
    doc *d = calloc(1, sizeof *d);
    if (!d) {
        cJSON_Delete(root);
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    d->root = root;
    return d;
}

static void free_doc(void *p)
{
    doc *d = p;
    if (d)
        cJSON_Delete(d->root);
    free(d);
}

static const void *root(void *p)
{
    return ((doc *)p)->root;
}

static const void *get(void *p, const void *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static int as_string(void *p, const void *v, const char **s, size_t *n)
{
    const cJSON *j = v;
    if (!cJSON_IsString(j))
        return -1;
    *s = j->valuestring;
    *n = strlen(j->valuestring);
    return 0;
}

static int as_i64(void *p, const void *v, int64_t *out)
{
    const cJSON *j = v;
    if (!cJSON_IsNumber(j))
        return -1;
    double d = j->valuedouble;
    if (d != floor(d) || d < -0x1p63 || d >= 0x1p63)
        return -1;
    *out = (int64_t)d;
    return 0;
}

static int as_double(void *p, const void *v, double *out)
{
    const cJSON *j = v;
    if (!cJSON_IsNumber(j))
        return -1;
    *out = j->valuedouble;
    return 0;
}

static int as_bool(void *p, const void *v, bool *out)
{
    const cJSON *j = v;
    if (!cJSON_IsBool(j))
        return -1;
    *out = cJSON_IsTrue(j);
    return 0;
}

static bool is_null(void *p, const void *v)
{
    return cJSON_IsNull((const cJSON *)v);
}

static long array_len(void *p, const void *v)
{
    return cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
}

static const void *array_at(void *p, const void *v, size_t i)
{
    doc *d = p;
    const cJSON *a = v;
    if (!cJSON_IsArray(a))
        return NULL;
    int slot = 0;
    while (slot < CURSORS - 1 && d->cursors[slot].array != a)
        slot++;
    const cJSON *node = a->child;
    size_t at = 0;
    if (d->cursors[slot].array == a && d->cursors[slot].index <= i) {
        node = d->cursors[slot].node;
        at = d->cursors[slot].index;
    }
    for (; node && at < i; at++)
        node = node->next;
    if (!node)
        return NULL;
    memmove(&d->cursors[1], &d->cursors[0], (size_t)slot * sizeof(cursor));
    d->cursors[0] = (cursor){a, i, node};
    return node;
}

const json_lib json_lib_cjson = {
    .name = "cJSON 1.7.15",
    .setup = "cJSON_ParseWithLengthOpts, then a check for trailing bytes",
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
