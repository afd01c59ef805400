/*
 * src/schema: what the schema module's files share (private).
 */
#ifndef WEAVE_SCHEMA_INTERNAL_H
#define WEAVE_SCHEMA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/schema.h"

#pragma GCC visibility push(hidden)

/* One error: its type (a static string) and its strings, offsets into the
 * errors' text (SCHEMA_NONE: absent). */
struct wv_schema_error_item {
    const char *type;
    size_t msg, loc, input, ctx;
};
#define SCHEMA_NONE SIZE_MAX

/* The structural check of a model (and of the models it nests): 0 or
 * -EINVAL with wv_errmsg(). depth: the model's nesting so far. */
int schema_check_model(const wv_db_model *m, int depth);
/* The same for a parameter's field (a scalar type, no offsets). */
int schema_check_param(const wv_db_field *f);

/* Whether pattern matches somewhere in s (regexec's search): 1, 0, or -1
 * when the pattern does not compile. Compiled once per distinct pattern. */
int schema_regex_match(const char *pattern, const char *s);

/* The parsed default json (once per distinct text): its root, or NULL
 * when it is not JSON. *tmp is set when the process-wide cache is full:
 * release it with schema_default_release after use (NULL is fine). */
const wv_json_val *schema_default(const char *json, void **tmp);
void schema_default_release(void *tmp);

/* Unicode code points in valid UTF-8. */
size_t schema_utf8_chars(const char *s, size_t n);
/* Whether s[0..n) is valid UTF-8 without NUL. */
bool schema_utf8_valid(const char *s, size_t n);

/* ISO 8601 ("2026-11-25T20:30:01.5Z", ' ' for 'T', fraction up to 9 digits
 * rounded down to microseconds, zone Z/+HH/+HHMM/+HH:MM or none = UTC, or a
 * date alone = midnight UTC) into microseconds since the epoch. 0 or -EINVAL. */
int schema_time_parse(const char *s, size_t n, int64_t *us);
/* "YYYY-MM-DDTHH:MM:SS.ffffffZ"; -ERANGE outside years 0..9999. */
int schema_time_format(int64_t us, char out[32]);

/* A bound as text: integral values without a fraction ("0", "-5"), others
 * the shortest form that reads back ("0.5", "1e-05"). */
void schema_num_text(double x, char out[40]);

/* Effective limits of a TEXT (bytes of storage), an ARRAY (capacity). */
size_t schema_text_room(const wv_db_field *f);
size_t schema_array_capacity(const wv_db_field *f);
size_t schema_array_max(const wv_db_field *f);

#pragma GCC visibility pop

#endif
