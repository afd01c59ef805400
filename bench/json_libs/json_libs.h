/*
 * bench/json_libs: one JSON library per file, each behind the same small
 * reading interface, so bench_json.c can run the same handler-like code over
 * all of them. json-c and jansson both define json_object, json_type, ...:
 * their headers must never meet in one translation unit, hence the files.
 *
 * The interface is the one weave's wrapper offers (include/weave/json.h):
 * parse, member by name, typed reads, array length and element. Every
 * function receives the document, for libraries (jsmn) whose values cannot
 * be read without it. A value is an opaque pointer; NULL means missing, and
 * every getter accepts it and fails.
 */
#ifndef BENCH_JSON_LIBS_H
#define BENCH_JSON_LIBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct json_lib {
    const char *name;
    const char *setup; /* how it is configured, for the report */
    /* Parse text[0..n) (text[n] is '\0'); NULL on error, with a message in
     * err. The document must reject trailing garbage. */
    void *(*parse)(const char *text, size_t n, char *err, size_t err_size);
    void (*free_doc)(void *doc);
    const void *(*root)(void *doc);
    const void *(*get)(void *doc, const void *obj, const char *key);
    int (*as_string)(void *doc, const void *v, const char **s, size_t *n);
    int (*as_i64)(void *doc, const void *v, int64_t *out);
    int (*as_double)(void *doc, const void *v, double *out);
    int (*as_bool)(void *doc, const void *v, bool *out);
    bool (*is_null)(void *doc, const void *v);
    long (*array_len)(void *doc, const void *v);
    const void *(*array_at)(void *doc, const void *v, size_t i);
} json_lib;

/* Defined by json_libs/<library>.c when it is compiled in. */
extern const json_lib json_lib_cjson;
extern const json_lib json_lib_jansson;
extern const json_lib json_lib_jsonc;
extern const json_lib json_lib_yajl;
extern const json_lib json_lib_jsmn;

/* True for JSON's four whitespace bytes. */
static inline bool json_lib_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

#endif
