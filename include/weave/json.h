/*
 * weave JSON: a streaming writer, and a strict reader with typed getters
 * over jsmn's tokenizer (the library bench/bench_json.c chose; the numbers
 * and reasons are in bench/json_libs.md).
 *
 * Writing: a wv_json appends one document to a wv_buf as calls arrive, with
 * no tree in between:
 *
 *     wv_buf out = {0};
 *     wv_json j;
 *     wv_json_init(&j, &out);
 *     wv_json_object_begin(&j);
 *     wv_json_key(&j, "id");    wv_json_int(&j, 42);
 *     wv_json_key(&j, "tags");  wv_json_array_begin(&j);
 *     wv_json_string(&j, "a");  wv_json_array_end(&j);
 *     wv_json_object_end(&j);
 *     if (wv_json_finish(&j) < 0) ... // out.p[0..out.n) is {"id":42,"tags":["a"]}
 *
 * Calls never fail one by one: the first error (-ENOMEM, or -EINVAL for a
 * misuse) is kept in j->err, every later call does nothing, and
 * wv_json_finish() reports it. After an error the buffer holds a truncated
 * document; throw it away.
 *
 * Strings are always written as valid UTF-8 JSON (RFC 8259): '"', '\\' and
 * control bytes are escaped (\n \r \t \b \f, else \u00XX); U+2028 and U+2029
 * become \u2028 and \u2029 so the text can be embedded in a <script>; bytes
 * that are not valid UTF-8 (stray continuation bytes, overlong forms,
 * surrogates, truncated sequences, code points past U+10FFFF) are replaced by
 * U+FFFD, one per maximal invalid subpart, as browsers decode them.
 *
 * Reading: wv_json_parse() checks a request body strictly and indexes it
 * (jsmn's tokens in one allocation, strings unescaped in place), and the
 * getters read it with type checks, so a handler is a few lines:
 *
 *     wv_json_doc *doc;
 *     if (wv_json_parse(body.p, body.n, &doc) < 0)
 *         return wv_res_error(res, -EINVAL);           // 400, wv_errmsg() says where
 *     const char *name; size_t name_len;
 *     int64_t age;
 *     const wv_json_val *root = wv_json_doc_root(doc);
 *     if (wv_json_get_string(root, "name", &name, &name_len) < 0 ||
 *         wv_json_get_i64(root, "age", &age) < 0) {
 *         wv_json_doc_free(doc);
 *         return wv_res_error(res, -ERANGE);           // 422, "age: expected an integer"
 *     }
 *
 * Every getter accepts NULL (a missing field or a failed lookup) and then
 * fails with -EINVAL, so lookups chain without checks in between. Values
 * belong to their document and die with wv_json_doc_free().
 */
#ifndef WEAVE_JSON_H
#define WEAVE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ writer */

/* Containers may nest this deep when writing; the parser's default too. */
#define WV_JSON_MAX_DEPTH 64

typedef struct wv_json {
    wv_buf *out;
    int depth;          /* open containers, at most WV_JSON_MAX_DEPTH */
    uint64_t first;     /* bit d-1: nothing written yet in the container at depth d */
    uint64_t in_object; /* bit d-1: the container at depth d is an object */
    bool want_value;    /* a key was written, its value is due */
    bool done;          /* a complete top-level value has been written */
    int err;            /* first error (-ENOMEM, -EINVAL); sticky */
} wv_json;

/* Start a document appended to `out` (whatever it already holds stays). */
void wv_json_init(wv_json *j, wv_buf *out);

/* Containers. -EINVAL: deeper than WV_JSON_MAX_DEPTH, an end that does not
 * match the open container, an object ended right after a key. */
void wv_json_object_begin(wv_json *j);
void wv_json_object_end(wv_json *j);
void wv_json_array_begin(wv_json *j);
void wv_json_array_end(wv_json *j);

/* An object member's name; its value is the next call. -EINVAL outside an
 * object, twice in a row, or key == NULL. Escaped like any string. */
void wv_json_key(wv_json *j, const char *key);
void wv_json_keyn(wv_json *j, const char *key, size_t n);

/* Values. Each is -EINVAL inside an object without a key before it, and
 * after the document's top-level value is complete. */
void wv_json_string(wv_json *j, const char *s); /* NUL-terminated; NULL writes null */
/* s[0..n) may hold NULs (written as \u0000, which wv_json_parse refuses) */
void wv_json_stringn(wv_json *j, const char *s, size_t n); /* NULL writes null */
void wv_json_int(wv_json *j, long long v);
void wv_json_uint(wv_json *j, unsigned long long v);
/* The shortest of %.15g/%.16g/%.17g that reads back as the same double,
 * with ".0" added to integral values so they stay floats for typed readers
 * (1.0 -> 1.0, -0.0 -> -0.0, 1e300 -> 1e+300). NaN and infinities have no
 * JSON form: -EINVAL. */
void wv_json_double(wv_json *j, double v);
void wv_json_bool(wv_json *j, bool v);
void wv_json_null(wv_json *j);
/* A value that is already JSON text, inserted as is (not checked). */
void wv_json_raw(wv_json *j, const char *json, size_t n);

/* 0 when exactly one complete, balanced value was written; else the sticky
 * error, or -EINVAL for an unfinished document. */
int wv_json_finish(wv_json *j);

/* ------------------------------------------------------------------ reader */

typedef struct wv_json_doc wv_json_doc; /* a parsed document (owns its values) */
typedef struct wv_json_val wv_json_val; /* one value inside a document */

/* The default input limit of wv_json_parse(). */
#define WV_JSON_MAX_BYTES (8u << 20)

typedef struct wv_json_parse_opts {
    int max_depth;    /* 0 = WV_JSON_MAX_DEPTH (64); at most 1024 */
    size_t max_bytes; /* 0 = WV_JSON_MAX_BYTES (8 MiB); at most 1 GiB */
} wv_json_parse_opts;

/* Parse text[0..n) (need not be NUL-terminated; it is copied, so the
 * document does not depend on it) into *out. Strict RFC 8259: exactly one
 * value with optional whitespace around it; no comments, trailing commas,
 * leading zeros, NaN or byte order mark; strings must be valid UTF-8 with
 * control characters escaped, and may not contain \u0000 or unpaired
 * surrogates. Returns 0, or
 *   -EINVAL   not strict JSON, nested deeper than the limit, or text == NULL;
 *             wv_errmsg() says what and where, e.g.
 *             "line 1, column 9 (byte 8): expected ':' after an object key",
 *   -EMSGSIZE n is over the size limit,
 *   -ENOMEM   out of memory (the document needs about 24 bytes per value
 *             plus a copy of the text, in one allocation).
 * *out is NULL on failure. A document is read-only once parsed, so any
 * number of fibers and threads may read it at once. */
int wv_json_parse(const char *text, size_t n, wv_json_doc **out);
int wv_json_parse_with(const char *text, size_t n, const wv_json_parse_opts *opts,
                       wv_json_doc **out);

/* Free a document and every value in it. NULL is fine. */
void wv_json_doc_free(wv_json_doc *doc);

/* The top-level value. NULL if doc is NULL. */
const wv_json_val *wv_json_doc_root(const wv_json_doc *doc);

typedef enum wv_json_type {
    WV_JSON_MISSING, /* v is NULL */
    WV_JSON_NULL,
    WV_JSON_BOOL,
    WV_JSON_NUMBER,
    WV_JSON_STRING,
    WV_JSON_ARRAY,
    WV_JSON_OBJECT,
} wv_json_type;

wv_json_type wv_json_type_of(const wv_json_val *v);

/* An object's member by name (exact bytes, after unescaping), or NULL (v is
 * not an object, or has no such member). When a name occurs more than once
 * the last occurrence wins, as in JavaScript, Python and Go, so that weave
 * reads a document the way the services around it do. O(members). */
const wv_json_val *wv_json_get(const wv_json_val *obj, const char *key);
const wv_json_val *wv_json_getn(const wv_json_val *obj, const char *key, size_t n);

/* Typed reads: 0, or -EINVAL when v is NULL or of another type. On failure
 * the outputs are left untouched. */

/* A string's bytes (UTF-8, unescaped, NUL-terminated, no NULs inside),
 * valid while the document lives. len may be NULL. */
int wv_json_as_string(const wv_json_val *v, const char **s, size_t *len);
/* A number written as an integer (no fraction, no exponent) that fits in
 * int64_t, read exactly. 3.0, 1e3 and 9223372036854775808 are -EINVAL. */
int wv_json_as_i64(const wv_json_val *v, int64_t *out);
/* Any number, correctly rounded; -EINVAL if it is beyond double's range
 * (1e400). */
int wv_json_as_double(const wv_json_val *v, double *out);
int wv_json_as_bool(const wv_json_val *v, bool *out);
/* A number's text exactly as written (not NUL-terminated), valid while the
 * document lives: to tell an integer past int64 (no '.', 'e' or 'E') from a
 * float, as Python's json.loads does, or to keep every digit. */
int wv_json_as_number_text(const wv_json_val *v, const char **text, size_t *len);

/* Whether v is JSON null (false for NULL: a missing member is not null). */
bool wv_json_is_null(const wv_json_val *v);

/* An array's length, or -EINVAL if v is not an array. */
long wv_json_array_len(const wv_json_val *v);
/* An array's element i, or NULL (not an array, i out of range). O(1). */
const wv_json_val *wv_json_array_at(const wv_json_val *v, size_t i);

/* An object's number of members, or -EINVAL if v is not an object; and its
 * member i in document order: the value, with its name in *key and *key_len
 * (either may be NULL), or NULL if out of range. O(1). */
long wv_json_object_len(const wv_json_val *v);
const wv_json_val *wv_json_object_at(const wv_json_val *v, size_t i, const char **key,
                                     size_t *key_len);

/* Member lookup and typed read in one call, for handlers: 0, or -EINVAL
 * with wv_errmsg() naming the member ("age: missing", "age: expected an
 * integer"), ready for a 422. */
int wv_json_get_string(const wv_json_val *obj, const char *key, const char **s, size_t *len);
int wv_json_get_i64(const wv_json_val *obj, const char *key, int64_t *out);
int wv_json_get_double(const wv_json_val *obj, const char *key, double *out);
int wv_json_get_bool(const wv_json_val *obj, const char *key, bool *out);

#ifdef __cplusplus
}
#endif

#endif /* WEAVE_JSON_H */
