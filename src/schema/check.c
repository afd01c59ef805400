/*
 * The schema's model check, and the helpers the other files share: the
 * process-wide cache of compiled patterns and parsed defaults, UTF-8
 * counting, ISO 8601 times, numbers as text.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_internal.h"

enum { MAX_FIELDS = 64, MAX_PATTERN = 1024 };

/* ------------------------------------------------------------- checking */

size_t schema_text_room(const wv_db_field *f)
{
    return f->max_len ? f->max_len : f->size - 1;
}

size_t schema_array_capacity(const wv_db_field *f)
{
    return f->items && f->items->size ? f->size / f->items->size : 0;
}

size_t schema_array_max(const wv_db_field *f)
{
    size_t cap = schema_array_capacity(f);
    return f->max_items && f->max_items < cap ? f->max_items : cap;
}

static const char *model_name(const wv_db_model *m)
{
    return m->name ? m->name : m->table ? m->table : "(unnamed)";
}

static int check_field(const char *mn, size_t msize, const wv_db_field *f, bool item, int depth)
{
    const char *fn = f->name ? f->name : "(null)";
    if (!f->name || !*f->name)
        return wv_fail(-EINVAL, "model %s: a field has no name", mn);
    size_t want = 0;
    switch ((int)f->type) {
    case WV_DB_INT:
    case WV_DB_TIME:
        want = sizeof(int64_t);
        break;
    case WV_DB_FLOAT:
        want = sizeof(double);
        break;
    case WV_DB_BOOL:
        want = sizeof(bool);
        break;
    case WV_DB_TEXT:
        if (f->size < 2 || f->max_len > f->size - 1)
            return wv_fail(-EINVAL,
                           "model %s: field %s: a text needs a char array with room for "
                           "max_len bytes and a NUL",
                           mn, fn);
        if (f->max_chars && schema_text_room(f) / 4 < f->max_chars)
            return wv_fail(-EINVAL,
                           "model %s: field %s: max_chars %zu needs %zu bytes of room (4 per "
                           "character of UTF-8), the field has %zu",
                           mn, fn, f->max_chars, 4 * f->max_chars, schema_text_room(f));
        if (f->max_chars && f->min_chars > f->max_chars)
            return wv_fail(-EINVAL, "model %s: field %s: min_chars > max_chars", mn, fn);
        if (f->pattern && strlen(f->pattern) > MAX_PATTERN)
            return wv_fail(-EINVAL, "model %s: field %s: a pattern longer than %d bytes", mn, fn,
                           MAX_PATTERN);
        if (f->enum_values && !f->enum_values[0])
            return wv_fail(-EINVAL, "model %s: field %s: an empty enum", mn, fn);
        break;
    case WV_DB_BLOB:
        if (item)
            return wv_fail(-EINVAL, "model %s: field %s: BLOB elements are not supported", mn, fn);
        if (f->size < 1 || f->max_len > f->size || f->len_offset > msize ||
            msize - f->len_offset < sizeof(size_t))
            return wv_fail(-EINVAL,
                           "model %s: field %s: a blob needs a byte array with room for "
                           "max_len bytes and a size_t length member",
                           mn, fn);
        break;
    case WV_DB_OBJECT:
        if (!f->object)
            return wv_fail(-EINVAL, "model %s: field %s: an OBJECT needs .object", mn, fn);
        if (depth + 1 > WV_SCHEMA_MAX_NESTING)
            return wv_fail(-EINVAL, "model %s: field %s: models nest deeper than %d", mn, fn,
                           WV_SCHEMA_MAX_NESTING);
        if (f->object->size != f->size)
            return wv_fail(-EINVAL, "model %s: field %s: member of %zu bytes, its model's is %zu",
                           mn, fn, f->size, f->object->size);
        {
            int rc = schema_check_model(f->object, depth + 1);
            if (rc < 0)
                return rc;
        }
        break;
    case WV_DB_ARRAY: {
        if (item)
            return wv_fail(-EINVAL, "model %s: field %s: arrays of arrays are not supported", mn,
                           fn);
        if (!f->items)
            return wv_fail(-EINVAL, "model %s: field %s: an ARRAY needs .items", mn, fn);
        if (!f->items->size || f->size % f->items->size || f->size < f->items->size)
            return wv_fail(-EINVAL,
                           "model %s: field %s: the member (%zu bytes) is not an array of "
                           "elements of %zu bytes",
                           mn, fn, f->size, f->items->size);
        if (f->len_offset > msize || msize - f->len_offset < sizeof(size_t))
            return wv_fail(-EINVAL, "model %s: field %s: the count member is outside the struct",
                           mn, fn);
        if (f->max_items > schema_array_capacity(f) ||
            (f->max_items && f->min_items > f->max_items) ||
            f->min_items > schema_array_capacity(f))
            return wv_fail(-EINVAL,
                           "model %s: field %s: min_items/max_items beyond the capacity (%zu) or "
                           "crossed",
                           mn, fn, schema_array_capacity(f));
        int rc = check_field(mn, f->items->size, f->items, true, depth);
        if (rc < 0)
            return rc;
        break;
    }
    default:
        return wv_fail(-EINVAL, "model %s: field %s: type %d is not a field type", mn, fn,
                       (int)f->type);
    }
    if (want && f->size != want)
        return wv_fail(-EINVAL, "model %s: field %s: member of %zu bytes, the type needs %zu", mn,
                       fn, f->size, want);
    if (item && (f->offset || f->present_offset || f->default_json))
        return wv_fail(-EINVAL,
                       "model %s: field %s: an array element has no offset, present member or "
                       "default",
                       mn, fn);
    if (f->offset > msize || msize - f->offset < f->size)
        return wv_fail(-EINVAL, "model %s: field %s: outside the struct", mn, fn);
    if (f->present_offset &&
        (f->present_offset - 1 > msize || msize - (f->present_offset - 1) < sizeof(bool)))
        return wv_fail(-EINVAL, "model %s: field %s: the present member is outside the struct", mn,
                       fn);
    bool num = f->type == WV_DB_INT || f->type == WV_DB_FLOAT;
    if ((f->has_min || f->has_max || f->min_exclusive || f->max_exclusive) && !num)
        return wv_fail(-EINVAL, "model %s: field %s: numeric bounds on a non-number", mn, fn);
    if ((f->has_min && !isfinite(f->min)) || (f->has_max && !isfinite(f->max)))
        return wv_fail(-EINVAL, "model %s: field %s: a bound that is not finite", mn, fn);
    if (f->type != WV_DB_TEXT && (f->min_chars || f->max_chars || f->pattern || f->enum_values))
        return wv_fail(-EINVAL, "model %s: field %s: text constraints on a non-text", mn, fn);
    if (f->type != WV_DB_ARRAY && (f->min_items || f->max_items))
        return wv_fail(-EINVAL, "model %s: field %s: min_items/max_items on a non-array", mn, fn);
    if (f->flags & ~(unsigned)(WV_DB_PRIMARY_KEY | WV_DB_AUTOINCREMENT | WV_DB_NOT_NULL |
                               WV_DB_UNIQUE | WV_DB_NULLABLE))
        return wv_fail(-EINVAL, "model %s: field %s: unknown flags", mn, fn);
    return 0;
}

int schema_check_model(const wv_db_model *m, int depth)
{
    if (!m || !m->fields || m->nfields < 1 || m->nfields > MAX_FIELDS || !m->size)
        return wv_fail(-EINVAL, "model %s: NULL, no fields, more than %d, or a zero size",
                       m ? model_name(m) : "(null)", MAX_FIELDS);
    if (depth > WV_SCHEMA_MAX_NESTING)
        return wv_fail(-EINVAL, "model %s: models nest deeper than %d", model_name(m),
                       WV_SCHEMA_MAX_NESTING);
    for (size_t i = 0; i < m->nfields; i++) {
        int rc = check_field(model_name(m), m->size, &m->fields[i], false, depth);
        if (rc < 0)
            return rc;
        for (size_t k = 0; k < i; k++)
            if (strcmp(m->fields[k].name, m->fields[i].name) == 0)
                return wv_fail(-EINVAL, "model %s: two fields named %s", model_name(m),
                               m->fields[i].name);
    }
    return 0;
}

int schema_check_param(const wv_db_field *f)
{
    if (!f)
        return wv_fail(-EINVAL, "parameter: field is NULL");
    switch (f->type) {
    case WV_DB_INT:
    case WV_DB_FLOAT:
    case WV_DB_BOOL:
    case WV_DB_TEXT:
    case WV_DB_TIME:
        break;
    default:
        return wv_fail(-EINVAL, "parameter %s: only INT, FLOAT, BOOL, TEXT and TIME",
                       f->name ? f->name : "(null)");
    }
    if (f->present_offset)
        return wv_fail(-EINVAL, "parameter %s: no present member", f->name);
    /* checked as a struct of exactly the member, at offset 0 */
    wv_db_field g = *f;
    g.offset = 0;
    return check_field("(parameter)", f->size, &g, false, 0);
}

/* Patterns and defaults each walk the rest of a full model: done here, by
 * wv_schema_check only (decoding reports a bad one when it meets it). */
static int check_deep(const wv_db_model *m);

static int check_field_deep(const wv_db_model *m, const wv_db_field *f)
{
    if (f->pattern && schema_regex_match(f->pattern, "") < 0)
        return wv_fail(-EINVAL, "model %s: field %s: the pattern \"%s\" does not compile",
                       model_name(m), f->name, f->pattern);
    if (f->type == WV_DB_OBJECT)
        return check_deep(f->object);
    if (f->type == WV_DB_ARRAY)
        return check_field_deep(m, f->items);
    if (f->example) {
        wv_json_doc *doc;
        if (wv_json_parse(f->example, strlen(f->example), &doc) < 0)
            return wv_fail(-EINVAL, "model %s: field %s: the example is not JSON", model_name(m),
                           f->name);
        wv_json_doc_free(doc);
    }
    return 0;
}

static int check_deep(const wv_db_model *m)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const wv_db_field *f = &m->fields[i];
        int rc = check_field_deep(m, f);
        if (rc < 0)
            return rc;
        if (!f->default_json)
            continue;
        /* the default must be a valid value of the field: decode it alone */
        wv_db_field g = *f;
        g.default_json = NULL;
        g.present_offset = 0;
        char *tmp = calloc(1, m->size);
        if (!tmp)
            return -ENOMEM;
        wv_db_model one = {.size = m->size, .fields = &g, .nfields = 1, .name = m->name};
        wv_buf text = {0};
        wv_buf_puts(&text, "{\"");
        wv_buf_puts(&text, f->name);
        wv_buf_puts(&text, "\":");
        wv_buf_puts(&text, f->default_json);
        wv_buf_puts(&text, "}");
        wv_schema_errors errs = {.max_errors = 1};
        rc = text.p ? wv_schema_decode(&one, text.p, text.n, tmp, &errs) : -ENOMEM;
        if (rc < 0 && rc != -ENOMEM)
            rc = wv_fail(-EINVAL, "model %s: field %s: the default %s is not a valid value (%s)",
                         model_name(m), f->name, f->default_json,
                         errs.n ? wv_schema_error_msg(&errs, 0) : "not JSON");
        wv_schema_errors_free(&errs);
        wv_buf_free(&text);
        free(tmp);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int wv_schema_check(const wv_db_model *m)
{
    int rc = schema_check_model(m, 0);
    return rc < 0 ? rc : check_deep(m);
}

/* ---------------------------------------------------------------- cache */

/* Compiled patterns and parsed defaults, keyed by their text (so a
 * descriptor may live anywhere, even on a stack): an open-addressing table
 * whose slots are filled once under a mutex and read without one. When it
 * is full, callers compile or parse for the one use. */
enum { SLOTS = 1024 };

typedef struct centry {
    bool is_regex;
    bool ok;
    regex_t re;
    wv_json_doc *doc;
    char text[];
} centry;

static _Atomic(centry *) slots[SLOTS];
static pthread_mutex_t slots_mu = PTHREAD_MUTEX_INITIALIZER;

static size_t hash(const char *s, bool is_regex)
{
    uint64_t h = is_regex ? 0x9e3779b97f4a7c15u : 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (size_t)(h % SLOTS);
}

static centry *make_entry(const char *text, bool is_regex)
{
    size_t n = strlen(text);
    centry *e = calloc(1, sizeof *e + n + 1);
    if (!e)
        return NULL;
    memcpy(e->text, text, n + 1);
    e->is_regex = is_regex;
    if (is_regex)
        e->ok = regcomp(&e->re, text, REG_EXTENDED | REG_NOSUB) == 0;
    else
        e->ok = wv_json_parse(text, n, &e->doc) == 0;
    return e;
}

static void free_entry(centry *e)
{
    if (!e)
        return;
    if (e->is_regex && e->ok)
        regfree(&e->re);
    wv_json_doc_free(e->doc);
    free(e);
}

/* Probe for text: the entry, or NULL with the first empty slot in *empty
 * (SIZE_MAX: the table is full). Entries are only ever added, under the
 * mutex, so a probe without it sees a consistent prefix. */
static centry *probe(const char *text, bool is_regex, size_t *empty)
{
    size_t h = hash(text, is_regex);
    for (size_t k = 0; k < SLOTS; k++) {
        size_t i = (h + k) % SLOTS;
        centry *e = atomic_load_explicit(&slots[i], memory_order_acquire);
        if (!e) {
            *empty = i;
            return NULL;
        }
        if (e->is_regex == is_regex && strcmp(e->text, text) == 0)
            return e;
    }
    *empty = SIZE_MAX;
    return NULL;
}

/* The entry for text, made on first use; *tmp is set (free it with
 * free_entry) when the table is full. NULL when out of memory. */
static centry *lookup(const char *text, bool is_regex, centry **tmp)
{
    size_t empty;
    *tmp = NULL;
    centry *e = probe(text, is_regex, &empty);
    if (e)
        return e;
    pthread_mutex_lock(&slots_mu);
    e = probe(text, is_regex, &empty);
    if (!e) {
        e = make_entry(text, is_regex);
        if (e && empty != SIZE_MAX)
            atomic_store_explicit(&slots[empty], e, memory_order_release);
        else
            *tmp = e;
    }
    pthread_mutex_unlock(&slots_mu);
    return e;
}

int schema_regex_match(const char *pattern, const char *s)
{
    centry *tmp;
    centry *e = lookup(pattern, true, &tmp);
    if (!e || !e->ok) {
        free_entry(tmp);
        return -1;
    }
    /* glibc's regexec locks the compiled pattern itself: shared safely */
    int rc = regexec(&e->re, s, 0, NULL, 0) == 0;
    free_entry(tmp);
    return rc;
}

const wv_json_val *schema_default(const char *json, void **tmp)
{
    centry *t;
    centry *e = lookup(json, false, &t);
    *tmp = t;
    return e && e->ok ? wv_json_doc_root(e->doc) : NULL;
}

void schema_default_release(void *tmp)
{
    free_entry(tmp);
}

/* ------------------------------------------------------------ helpers */

size_t schema_utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

bool schema_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t len;
        uint32_t cp;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += len;
    }
    return true;
}

void schema_num_text(double x, char out[40])
{
    if (x == floor(x) && fabs(x) < 1e15) {
        snprintf(out, 40, "%.0f", x);
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, x);
        if (strtod(out, NULL) == x)
            return;
    }
}

/* n digits at s as a number, or -1. */
static int digits(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int days_in_month(int64_t y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

int schema_time_parse(const char *s, size_t n, int64_t *us)
{
    if (n < 10 || s[4] != '-' || s[7] != '-')
        return -EINVAL;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return -EINVAL;
    int64_t t = wv_days_from_civil(y, mo, d) * WV_US_PER_DAY;
    size_t i = 10;
    if (i == n) {
        *us = t;
        return 0;
    }
    if (n - i < 9 || (s[i] != 'T' && s[i] != 't' && s[i] != ' ') || s[i + 3] != ':' ||
        s[i + 6] != ':')
        return -EINVAL;
    int hh = digits(s + i + 1, 2), mm = digits(s + i + 4, 2), ss = digits(s + i + 7, 2);
    if (hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 59)
        return -EINVAL;
    t += ((int64_t)hh * 3600 + mm * 60 + ss) * 1000000;
    i += 9;
    if (i < n && (s[i] == '.' || s[i] == ',')) {
        i++;
        size_t k = 0;
        int64_t frac = 0, scale = 100000;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (k < 6) {
                frac += (s[i] - '0') * scale;
                scale /= 10;
            }
            i++;
            k++;
        }
        if (k == 0 || k > 9)
            return -EINVAL;
        t += frac;
    }
    if (i < n) {
        if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
            i++;
        } else if (s[i] == '+' || s[i] == '-') {
            int sign = s[i] == '-' ? -1 : 1, oh, om = 0;
            size_t rest = n - i - 1;
            const char *z = s + i + 1;
            if (rest == 2)
                oh = digits(z, 2);
            else if (rest == 4)
                oh = digits(z, 2), om = digits(z + 2, 2);
            else if (rest == 5 && z[2] == ':')
                oh = digits(z, 2), om = digits(z + 3, 2);
            else
                return -EINVAL;
            if (oh < 0 || oh > 23 || om < 0 || om > 59)
                return -EINVAL;
            t -= sign * ((int64_t)oh * 3600 + om * 60) * 1000000;
            i = n;
        } else {
            return -EINVAL;
        }
    }
    *us = t;
    return 0;
}

int schema_time_format(int64_t us, char out[32])
{
    static const int64_t lo = -INT64_C(62167219200000000); /* 0000-01-01 */
    static const int64_t hi = INT64_C(253402300800000000); /* 10000-01-01 */
    if (us < lo || us >= hi)
        return -ERANGE;
    int64_t days = us / WV_US_PER_DAY, rest = us % WV_US_PER_DAY;
    if (rest < 0) {
        rest += WV_US_PER_DAY;
        days--;
    }
    int64_t y;
    int m, d;
    wv_civil_from_days(days, &y, &m, &d);
    int64_t secs = rest / 1000000;
    char buf[96];
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", (int)y, m, d,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60),
                     (int)(rest % 1000000));
    memcpy(out, buf, (size_t)n + 1);
    return 0;
}
