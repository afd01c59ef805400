/*
 * weave schema: a C struct's fields declared once (the wv_db_field /
 * wv_db_model descriptors of include/weave/db.h) drive four things, as a
 * pydantic model does for FastAPI:
 *
 *   1. decoding and validating a JSON body into the struct, every error
 *      reported at once in pydantic v2's words (wv_schema_decode),
 *   2. encoding the struct as JSON (wv_schema_encode),
 *   3. its JSON Schema 2020-12, for OpenAPI 3.1 (wv_schema_json_schema),
 *   4. where the model also has a table, its DDL (wv_db_create_table).
 *
 *     typedef struct address { char city[101]; char zip[11]; } address;
 *     static const wv_db_field address_fields[] = {
 *         WV_FIELD_TEXT(address, city, .min_chars = 1, .max_chars = 25),
 *         WV_FIELD_TEXT(address, zip, .pattern = "^[0-9]{5}$"),
 *     };
 *     static const wv_db_model address_model = WV_SCHEMA_MODEL("Address", address,
 *                                                              address_fields);
 *     typedef struct user_in {
 *         char name[201];
 *         int64_t age;
 *         bool has_age;
 *         char tags[8][33];
 *         size_t ntags;
 *         address home;
 *     } user_in;
 *     static const wv_db_field user_in_fields[] = {
 *         WV_FIELD_TEXT(user_in, name, .min_chars = 1, .max_chars = 50),
 *         WV_FIELD_INT(user_in, age, WV_GE(0), WV_LT(150), .flags = WV_DB_NULLABLE,
 *                      .default_json = "null", WV_PRESENT(user_in, has_age)),
 *         WV_FIELD_ARRAY(user_in, tags, ntags, &(const wv_db_field)WV_ITEM_TEXT(char[33]),
 *                        .max_items = 5),
 *         WV_FIELD_OBJECT(user_in, home, &address_model),
 *     };
 *     static const wv_db_model user_in_model = WV_SCHEMA_MODEL("UserIn", user_in,
 *                                                              user_in_fields);
 *
 *     static int create(wv_req *req, wv_res *res)
 *     {
 *         user_in u;
 *         wv_schema_errors errs = {0};
 *         int rc = wv_schema_decode_body(req, &user_in_model, &u, &errs);
 *         if (rc == -EINVAL)
 *             rc = wv_res_unprocessable(res, &errs);   // 422 {"detail": [...]}
 *         else if (rc == 0)
 *             ...                                       // u is valid
 *         wv_schema_errors_free(&errs);
 *         return rc;
 *     }
 *
 * Types (the C member each needs): INT int64_t, FLOAT double, BOOL bool,
 * TEXT char[N] (NUL-terminated UTF-8), BLOB unsigned char[N] + a size_t
 * length (base64 in JSON), TIME int64_t microseconds since the epoch (ISO
 * 8601 in JSON), OBJECT a nested struct (.object = its model), ARRAY a
 * fixed array T items[N] + a size_t count (.len_offset; .items describes
 * one element: any type but ARRAY; capacity N = sizeof(array) /
 * items->size). Model nesting is at most WV_SCHEMA_MAX_NESTING deep.
 *
 * Presence: a field is required unless it has .default_json (an absent
 * field then takes the default's value). WV_DB_NULLABLE accepts JSON null,
 * which stores the zero value. WV_PRESENT(T, flag_member) names a bool
 * member that decoding sets to true when the input gave the field a
 * non-null value (false when absent, defaulted or null), and that encoding
 * reads: false writes null for a nullable field.
 *
 * Coercions are pydantic v2's lax mode, as FastAPI validates a JSON body:
 * INT takes integers, numbers with no fraction (5.0), booleans (true = 1)
 * and strings of an integer ("5", " -5 ", "5.0"); FLOAT takes numbers,
 * booleans and strings of a number; BOOL takes true/false, 0/1, 0.0/1.0 and
 * the strings "0", "1", "t", "f", "y", "n", "yes", "no", "on", "off",
 * "true", "false" (any case); TEXT takes strings only; TIME takes ISO 8601
 * strings and numbers (Unix seconds, or milliseconds past 2e10). See
 * docs/schema.md for every decision.
 *
 * Errors are pydantic v2's (type and msg exactly), each with its location:
 * ["body", "home", "zip"], ["body", "tags", 2]. They are collected in a
 * wv_schema_errors the caller owns (zero it; free it), which can gather
 * the errors of several calls (a body and some parameters) before one 422.
 *
 * Threading: every call may run on any thread or fiber; descriptors are
 * read-only and may be shared; a wv_schema_errors belongs to one caller.
 * Patterns are compiled once per distinct pattern text, and defaults
 * parsed once per distinct text, in a process-wide cache (thread-safe).
 */
#ifndef WEAVE_SCHEMA_H
#define WEAVE_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/db.h"
#include "weave/http.h"
#include "weave/json.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How deep models may nest (OBJECT in OBJECT, or in an ARRAY of OBJECT). */
#define WV_SCHEMA_MAX_NESTING 16

/* ------------------------------------------------------------ declaring */

/*
 * Field declarations: the struct type, the member, then any wv_db_field
 * members as designated initializers (constraints, flags, description...).
 * With nothing after the member the variadic part is empty, which every C17
 * compiler here accepts (gcc and clang warn only under -Wpedantic).
 */
#define WV__FIELD(T_, member_, type_)                                                              \
    .name = #member_, .type = (type_), .offset = offsetof(T_, member_),                            \
    .size = sizeof(((T_ *)0)->member_)
#define WV_FIELD_INT(T_, member_, ...)                                                             \
    {                                                                                              \
        WV__FIELD(T_, member_, WV_DB_INT), __VA_ARGS__                                             \
    }
#define WV_FIELD_FLOAT(T_, member_, ...)                                                           \
    {                                                                                              \
        WV__FIELD(T_, member_, WV_DB_FLOAT), __VA_ARGS__                                           \
    }
#define WV_FIELD_BOOL(T_, member_, ...)                                                            \
    {                                                                                              \
        WV__FIELD(T_, member_, WV_DB_BOOL), __VA_ARGS__                                            \
    }
#define WV_FIELD_TEXT(T_, member_, ...)                                                            \
    {                                                                                              \
        WV__FIELD(T_, member_, WV_DB_TEXT), __VA_ARGS__                                            \
    }
#define WV_FIELD_TIME(T_, member_, ...)                                                            \
    {                                                                                              \
        WV__FIELD(T_, member_, WV_DB_TIME), __VA_ARGS__                                            \
    }
/* unsigned char member_[N] and size_t len_member_ */
#define WV_FIELD_BLOB(T_, member_, len_member_, ...)                                               \
    {                                                                                              \
        WV__FIELD(T_, member_, WV_DB_BLOB), .len_offset = offsetof(T_, len_member_), __VA_ARGS__   \
    }
/* a struct member described by *model_ */
#define WV_FIELD_OBJECT(T_, member_, model_, ...)                                                  \
    {                                                                                              \
        WV__FIELD(T_, member_, WV_DB_OBJECT), .object = (model_), __VA_ARGS__                      \
    }
/* E member_[N], its count in size_t count_member_, one element described
 * by *items_ (a WV_ITEM_*) */
#define WV_FIELD_ARRAY(T_, member_, count_member_, items_, ...)                                    \
    {                                                                                              \
        WV__FIELD(T_, member_, WV_DB_ARRAY), .len_offset = offsetof(T_, count_member_),            \
                                             .items = (items_), __VA_ARGS__                        \
    }

/* One element of an ARRAY (C type E_): use as
 * .items = &(const wv_db_field)WV_ITEM_INT(WV_GE(0)) */
#define WV__ITEM(type_, E_) .name = "items", .type = (type_), .size = sizeof(E_)
#define WV_ITEM_INT(...)                                                                           \
    {                                                                                              \
        WV__ITEM(WV_DB_INT, int64_t), __VA_ARGS__                                                  \
    }
#define WV_ITEM_FLOAT(...)                                                                         \
    {                                                                                              \
        WV__ITEM(WV_DB_FLOAT, double), __VA_ARGS__                                                 \
    }
#define WV_ITEM_BOOL(...)                                                                          \
    {                                                                                              \
        WV__ITEM(WV_DB_BOOL, bool), __VA_ARGS__                                                    \
    }
#define WV_ITEM_TIME(...)                                                                          \
    {                                                                                              \
        WV__ITEM(WV_DB_TIME, int64_t), __VA_ARGS__                                                 \
    }
#define WV_ITEM_TEXT(E_, ...)                                                                      \
    {                                                                                              \
        WV__ITEM(WV_DB_TEXT, E_), __VA_ARGS__                                                      \
    } /* E_: char[N] */
#define WV_ITEM_OBJECT(E_, model_, ...)                                                            \
    {                                                                                              \
        WV__ITEM(WV_DB_OBJECT, E_), .object = (model_), __VA_ARGS__                                \
    }

/* Numeric bounds (pydantic's ge, gt, le, lt; JSON Schema's minimum,
 * exclusiveMinimum, maximum, exclusiveMaximum). One lower and one upper. */
#define WV_GE(x_) .has_min = true, .min = (x_)
#define WV_GT(x_) .has_min = true, .min = (x_), .min_exclusive = true
#define WV_LE(x_) .has_max = true, .max = (x_)
#define WV_LT(x_) .has_max = true, .max = (x_), .max_exclusive = true
/* The allowed values of a TEXT: WV_ENUM("a", "b", "c") */
#define WV_ENUM(...)                                                                               \
    .enum_values = (const char *const[])                                                           \
    {                                                                                              \
        __VA_ARGS__, NULL                                                                          \
    }
/* The bool member that says whether the field was given */
#define WV_PRESENT(T_, member_) .present_offset = offsetof(T_, member_) + 1

/* A model with no table: a body or response type named name_ (its JSON
 * Schema component name). */
#define WV_SCHEMA_MODEL(name_, T_, fields_)                                                        \
    {                                                                                              \
        .table = NULL, .size = sizeof(T_), .fields = (fields_),                                    \
        .nfields = sizeof(fields_) / sizeof((fields_)[0]), .name = (name_)                         \
    }

/*
 * Check that m (and every model it nests) is well formed for the schema:
 * member sizes that fit their types, offsets inside the struct, names,
 * constraints on the right types, a count member for ARRAY, nesting at most
 * WV_SCHEMA_MAX_NESTING, defaults that are valid values of their fields,
 * patterns that compile. 0, or -EINVAL with wv_errmsg() saying what. Every
 * call below runs the structural part itself (returning -ENOTSUP).
 */
int wv_schema_check(const wv_db_model *m);

/* -------------------------------------------------------------- errors */

/* The defaults of the limits in wv_schema_errors. */
#define WV_SCHEMA_MAX_ERRORS 32
#define WV_SCHEMA_MAX_DEPTH  32
#define WV_SCHEMA_MAX_BYTES  (1u << 20)

typedef struct wv_schema_error_item wv_schema_error_item; /* private */

/*
 * Validation errors, collected across calls. Zero it before the first
 * call; set the limits first if the defaults do not suit (0 = default):
 *   max_errors  errors kept (default 32, at most 1000); one more error
 *               stops the decoding, and a last entry of type
 *               "too_many_errors" says so
 *   max_depth   how deeply the JSON may nest (default 32, at most 64)
 *   max_bytes   the largest body decoded (default 1 MiB)
 *   root        the first element of a body error's loc: NULL = "body",
 *               "" = none (the loc starts with the field)
 * Free with wv_schema_errors_free (it keeps the limits, so it can be reused).
 */
typedef struct wv_schema_errors {
    size_t max_errors;
    int max_depth;
    size_t max_bytes;
    const char *root;
    /* private */
    wv_schema_error_item *items;
    size_t n, cap;
    wv_buf text; /* every item's strings, NUL-terminated */
    bool truncated;
} wv_schema_errors;

void wv_schema_errors_free(wv_schema_errors *e);

/* The number of errors (the "too_many_errors" note included). */
size_t wv_schema_errors_count(const wv_schema_errors *e);

/* Error i's parts, valid until the next call on e; NULL for i out of range
 * (and for input/ctx when the error has none):
 *   type   pydantic's error type: "missing", "int_parsing", ...
 *   msg    pydantic's message: "Field required", ...
 *   loc    the location as JSON text: ["body","tags",2]
 *   input  the input as JSON text (absent when over 4 KiB, or for missing
 *          fields of a parameter)
 *   ctx    the constraint as a JSON object text: {"ge":0} */
const char *wv_schema_error_type(const wv_schema_errors *e, size_t i);
const char *wv_schema_error_msg(const wv_schema_errors *e, size_t i);
const char *wv_schema_error_loc(const wv_schema_errors *e, size_t i);
const char *wv_schema_error_input(const wv_schema_errors *e, size_t i);
const char *wv_schema_error_ctx(const wv_schema_errors *e, size_t i);

/* FastAPI's 422 body: {"detail":[{"type":...,"loc":[...],"msg":...,
 * "input":...,"ctx":{...}}, ...]} written to j (input and ctx when the
 * error has them). 0, or -EINVAL for NULL arguments (j's own errors stay
 * in j: see wv_json_finish). */
int wv_schema_errors_json(const wv_schema_errors *e, wv_json *j);

/* Send that body with status 422 (the response's return value). */
int wv_res_unprocessable(wv_res *res, const wv_schema_errors *e);

/* ------------------------------------------------------------ decoding */

/*
 * Parse json[0..n) with weave's strict reader and decode it into the
 * struct at out (m->size bytes; zeroed first, then every field written:
 * given, defaulted or zero). Every error is added to errs. Returns
 *   0          valid: out holds the value
 *   -EINVAL    invalid: errs holds the errors (out is partly written)
 *   -EBADMSG   not JSON, nested deeper than errs->max_depth, or over
 *              errs->max_bytes: errs holds one "json_invalid" error and
 *              wv_errmsg() the reader's words ("line 1, column 2 (byte
 *              1): ...")
 *   -ENOTSUP   m is not well formed (wv_errmsg() says why), or a NULL
 *              argument
 *   -ENOMEM
 * Nothing is allocated but the parsed document (freed before returning)
 * and the errors.
 */
int wv_schema_decode(const wv_db_model *m, const char *json, size_t n, void *out,
                     wv_schema_errors *errs);

/* The same for a value of a document already parsed (v NULL: a missing
 * body). -EBADMSG does not occur. */
int wv_schema_decode_val(const wv_db_model *m, const wv_json_val *v, void *out,
                         wv_schema_errors *errs);

/* The request's body (wv_req_body) decoded as above; wv_req_body's errors
 * are returned as they are. An empty body is the "missing" error at
 * ["body"], as FastAPI answers. */
int wv_schema_decode_body(wv_req *req, const wv_db_model *m, void *out, wv_schema_errors *errs);

/*
 * A path, query or header parameter: the text s[0..n) (s NULL: the
 * parameter is absent) validated as field f (INT, FLOAT, BOOL, TEXT or
 * TIME, with f's constraints; f->name is the parameter's name, f->offset
 * is ignored) and stored at out (the member itself: an int64_t for INT...).
 * Errors are located [where, f->name]: where is "path", "query", "header"
 * or "cookie". An absent parameter takes f's default, else is "missing".
 * Returns 0, -EINVAL (errs holds the error), -ENOTSUP (f not usable), or
 * -ENOMEM.
 */
int wv_schema_param(const wv_db_field *f, const char *where, const char *s, size_t n, void *out,
                    wv_schema_errors *errs);

/* ------------------------------------------------------------ encoding */

/*
 * The struct at obj as a JSON object written to j: every field in order
 * (TIME as ISO 8601 in UTC with microseconds, BLOB as padded base64, a
 * nullable field whose present member is false as null). 0, -ENOTSUP
 * for a model not well formed, -EINVAL for a value that has no JSON form
 * (a TEXT with no NUL in its array, a count past an array's capacity, a
 * non-finite FLOAT, a TIME outside years 0-9999), with wv_errmsg() naming
 * the field; j's own errors stay in j.
 */
int wv_schema_encode(const wv_db_model *m, const void *obj, wv_json *j);

/*
 * m's JSON Schema (2020-12, the dialect of OpenAPI 3.1) written to j:
 * {"type":"object","title":name,"properties":{...},"required":[...]} with
 * every constraint, description, default and example. A nested model with
 * a name becomes {"$ref": ref_prefix + name} when ref_prefix is not NULL
 * ("#/components/schemas/" for OpenAPI: the generator emits each named
 * model once); with ref_prefix NULL it is written inline. 0, -ENOTSUP
 * for a model not well formed.
 */
int wv_schema_json_schema(const wv_db_model *m, wv_json *j, const char *ref_prefix);

#ifdef __cplusplus
}
#endif

#endif /* WEAVE_SCHEMA_H */
