/*
 * The struct as JSON (wv_schema_encode) and the model's JSON Schema
 * 2020-12 (wv_schema_json_schema), from the same descriptors decoding
 * reads.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base64/base64.h"
#include "schema/schema_internal.h"

/* ------------------------------------------------------------ encoding */

static int enc_model(const wv_db_model *m, const char *obj, wv_json *j);

static int enc_value(const wv_db_model *m, const wv_db_field *f, const char *p, const char *base,
                     wv_json *j)
{
    const char *mn = m->name ? m->name : m->table ? m->table : "(unnamed)";
    switch (f->type) {
    case WV_DB_INT: {
        int64_t x;
        memcpy(&x, p, sizeof x);
        wv_json_int(j, x);
        return 0;
    }
    case WV_DB_FLOAT: {
        double x;
        memcpy(&x, p, sizeof x);
        if (!isfinite(x))
            return wv_fail(-EINVAL, "%s.%s: %g has no JSON form", mn, f->name, x);
        wv_json_double(j, x);
        return 0;
    }
    case WV_DB_BOOL: {
        bool b;
        memcpy(&b, p, sizeof b);
        wv_json_bool(j, b);
        return 0;
    }
    case WV_DB_TEXT: {
        size_t n = strnlen(p, f->size);
        if (n == f->size)
            return wv_fail(-EINVAL, "%s.%s: no NUL within the field's %zu bytes", mn, f->name,
                           f->size);
        wv_json_stringn(j, p, n);
        return 0;
    }
    case WV_DB_TIME: {
        int64_t t;
        char s[32];
        memcpy(&t, p, sizeof t);
        if (schema_time_format(t, s) < 0)
            return wv_fail(-EINVAL, "%s.%s: a time outside years 0 to 9999", mn, f->name);
        wv_json_string(j, s);
        return 0;
    }
    case WV_DB_BLOB: {
        size_t n;
        memcpy(&n, base + f->len_offset, sizeof n);
        if (n > f->size)
            return wv_fail(-EINVAL, "%s.%s: a length of %zu past the array's %zu bytes", mn,
                           f->name, n, f->size);
        char *s = malloc(wv__b64_encoded_len(n, true) + 1);
        if (!s)
            return wv_fail(-ENOMEM, "%s.%s: out of memory", mn, f->name);
        size_t len = wv__b64_encode(p, n, true, s);
        wv_json_stringn(j, s, len);
        free(s);
        return 0;
    }
    case WV_DB_OBJECT:
        return enc_model(f->object, p, j);
    case WV_DB_ARRAY: {
        size_t n;
        memcpy(&n, base + f->len_offset, sizeof n);
        if (n > schema_array_capacity(f))
            return wv_fail(-EINVAL, "%s.%s: a count of %zu past the capacity %zu", mn, f->name, n,
                           schema_array_capacity(f));
        wv_json_array_begin(j);
        for (size_t i = 0; i < n; i++) {
            int rc = enc_value(m, f->items, p + i * f->items->size, NULL, j);
            if (rc < 0)
                return rc;
        }
        wv_json_array_end(j);
        return 0;
    }
    default:
        return wv_fail(-EINVAL, "%s.%s: not a field type", mn, f->name);
    }
}

static int enc_model(const wv_db_model *m, const char *obj, wv_json *j)
{
    wv_json_object_begin(j);
    for (size_t i = 0; i < m->nfields; i++) {
        const wv_db_field *f = &m->fields[i];
        wv_json_key(j, f->name);
        bool present = true;
        if (f->present_offset)
            memcpy(&present, obj + f->present_offset - 1, sizeof present);
        if (!present && (f->flags & WV_DB_NULLABLE)) {
            wv_json_null(j);
            continue;
        }
        int rc = enc_value(m, f, obj + f->offset, obj, j);
        if (rc < 0)
            return rc;
    }
    wv_json_object_end(j);
    return 0;
}

int wv_schema_encode(const wv_db_model *m, const void *obj, wv_json *j)
{
    if (!obj || !j)
        return wv_fail(-ENOTSUP, "wv_schema_encode: obj or j is NULL");
    if (schema_check_model(m, 0) < 0)
        return -ENOTSUP;
    return enc_model(m, obj, j);
}

/* --------------------------------------------------------- JSON Schema */

static void model_keys(const wv_db_model *m, wv_json *j, const char *ref);

static void num(wv_json *j, const char *key, double x)
{
    char t[40];
    schema_num_text(x, t);
    wv_json_key(j, key);
    wv_json_raw(j, t, strlen(t));
}

static void ref_key(wv_json *j, const char *ref, const char *name)
{
    wv_buf b = {0};
    if (wv_buf_printf(&b, "%s%s", ref, name) < 0) {
        j->err = j->err ? j->err : -ENOMEM;
        return;
    }
    wv_json_key(j, "$ref");
    wv_json_stringn(j, b.p, b.n);
    wv_buf_free(&b);
}

static bool by_ref(const wv_db_field *f, const char *ref)
{
    return f->type == WV_DB_OBJECT && ref && f->object->name;
}

/* The keys that say what a value of f is, inside an open object. */
static void value_keys(const wv_db_field *f, wv_json *j, const char *ref)
{
    switch (f->type) {
    case WV_DB_INT:
    case WV_DB_FLOAT:
        wv_json_key(j, "type");
        wv_json_string(j, f->type == WV_DB_INT ? "integer" : "number");
        if (f->has_min)
            num(j, f->min_exclusive ? "exclusiveMinimum" : "minimum", f->min);
        if (f->has_max)
            num(j, f->max_exclusive ? "exclusiveMaximum" : "maximum", f->max);
        return;
    case WV_DB_BOOL:
        wv_json_key(j, "type");
        wv_json_string(j, "boolean");
        return;
    case WV_DB_TEXT:
        wv_json_key(j, "type");
        wv_json_string(j, "string");
        if (f->min_chars) {
            wv_json_key(j, "minLength");
            wv_json_uint(j, f->min_chars);
        }
        if (f->max_chars) {
            wv_json_key(j, "maxLength");
            wv_json_uint(j, f->max_chars);
        }
        if (f->pattern) {
            wv_json_key(j, "pattern");
            wv_json_string(j, f->pattern);
        }
        if (f->enum_values) {
            wv_json_key(j, "enum");
            wv_json_array_begin(j);
            for (size_t i = 0; f->enum_values[i]; i++)
                wv_json_string(j, f->enum_values[i]);
            wv_json_array_end(j);
        }
        return;
    case WV_DB_TIME:
        wv_json_key(j, "type");
        wv_json_string(j, "string");
        wv_json_key(j, "format");
        wv_json_string(j, "date-time");
        return;
    case WV_DB_BLOB:
        wv_json_key(j, "type");
        wv_json_string(j, "string");
        wv_json_key(j, "contentEncoding");
        wv_json_string(j, "base64");
        return;
    case WV_DB_OBJECT:
        if (by_ref(f, ref))
            ref_key(j, ref, f->object->name);
        else
            model_keys(f->object, j, ref);
        return;
    case WV_DB_ARRAY:
        wv_json_key(j, "type");
        wv_json_string(j, "array");
        wv_json_key(j, "items");
        wv_json_object_begin(j);
        if (f->items->flags & WV_DB_NULLABLE) {
            wv_json_key(j, "anyOf");
            wv_json_array_begin(j);
            wv_json_object_begin(j);
            value_keys(f->items, j, ref);
            wv_json_object_end(j);
            wv_json_object_begin(j);
            wv_json_key(j, "type");
            wv_json_string(j, "null");
            wv_json_object_end(j);
            wv_json_array_end(j);
        } else {
            value_keys(f->items, j, ref);
        }
        wv_json_object_end(j);
        if (f->min_items) {
            wv_json_key(j, "minItems");
            wv_json_uint(j, f->min_items);
        }
        wv_json_key(j, "maxItems");
        wv_json_uint(j, schema_array_max(f));
        return;
    default:
        return;
    }
}

/* A property: the value's keys (or anyOf [value, null] for a nullable
 * field) and description, default, examples. */
static void field_schema(const wv_db_field *f, wv_json *j, const char *ref)
{
    wv_json_object_begin(j);
    if (f->flags & WV_DB_NULLABLE) {
        wv_json_key(j, "anyOf");
        wv_json_array_begin(j);
        wv_json_object_begin(j);
        value_keys(f, j, ref);
        wv_json_object_end(j);
        wv_json_object_begin(j);
        wv_json_key(j, "type");
        wv_json_string(j, "null");
        wv_json_object_end(j);
        wv_json_array_end(j);
    } else if (f->type == WV_DB_OBJECT && !by_ref(f, ref)) {
        /* inline: the nested model's own keys, its description kept unless
         * the field has one */
        value_keys(f, j, ref);
        if (f->description && f->object->description)
            goto examples; /* the object's description was written */
    } else {
        value_keys(f, j, ref);
    }
    if (f->description) {
        wv_json_key(j, "description");
        wv_json_string(j, f->description);
    }
examples:
    if (f->default_json) {
        wv_json_key(j, "default");
        wv_json_raw(j, f->default_json, strlen(f->default_json));
    }
    if (f->example) {
        wv_json_key(j, "examples");
        wv_json_array_begin(j);
        wv_json_raw(j, f->example, strlen(f->example));
        wv_json_array_end(j);
    }
    wv_json_object_end(j);
}

static void model_keys(const wv_db_model *m, wv_json *j, const char *ref)
{
    wv_json_key(j, "type");
    wv_json_string(j, "object");
    if (m->name || m->table) {
        wv_json_key(j, "title");
        wv_json_string(j, m->name ? m->name : m->table);
    }
    if (m->description) {
        wv_json_key(j, "description");
        wv_json_string(j, m->description);
    }
    wv_json_key(j, "properties");
    wv_json_object_begin(j);
    for (size_t i = 0; i < m->nfields; i++) {
        wv_json_key(j, m->fields[i].name);
        field_schema(&m->fields[i], j, ref);
    }
    wv_json_object_end(j);
    bool any = false;
    for (size_t i = 0; i < m->nfields; i++)
        any |= !m->fields[i].default_json;
    if (any) {
        wv_json_key(j, "required");
        wv_json_array_begin(j);
        for (size_t i = 0; i < m->nfields; i++)
            if (!m->fields[i].default_json)
                wv_json_string(j, m->fields[i].name);
        wv_json_array_end(j);
    }
    if (m->forbid_extra) {
        wv_json_key(j, "additionalProperties");
        wv_json_bool(j, false);
    }
}

int wv_schema_json_schema(const wv_db_model *m, wv_json *j, const char *ref_prefix)
{
    if (!j)
        return wv_fail(-ENOTSUP, "wv_schema_json_schema: j is NULL");
    if (schema_check_model(m, 0) < 0)
        return -ENOTSUP;
    wv_json_object_begin(j);
    model_keys(m, j, ref_prefix);
    wv_json_object_end(j);
    return 0;
}
