/*
 * Query results: the builder backends fill (on an offload thread for
 * SQLite), the typed accessors users read them with, and the ISO 8601 time
 * conversions behind WV_DB_TIME.
 *
 * A result is three allocations whatever its size: the header, one array of
 * 16-byte cells (row-major) and one arena holding the column names and every
 * text and blob, each followed by a NUL so text reads as a C string.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"
#include "weave/rt.h"

struct wv_db_rows {
    int ncols;
    size_t nrows, cap; /* rows held, rows the cell array has room for */
    db_cell *cells;
    char *arena;
    size_t used, room;
    uint64_t *names; /* arena offset of each column's name */
};

/* ----------------------------------------------------------------- builder */

wv_db_rows *db_rows_new(int ncols)
{
    if (ncols < 0)
        return NULL;
    wv_db_rows *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->ncols = ncols;
    if (ncols) {
        r->names = calloc((size_t)ncols, sizeof *r->names);
        if (!r->names) {
            free(r);
            return NULL;
        }
    }
    return r;
}

/* Append n bytes and a NUL to the arena; their offset in *off. */
static int arena_put(wv_db_rows *r, const void *p, size_t n, uint64_t *off)
{
    if (n >= UINT32_MAX)
        return -EMSGSIZE;
    if (r->room - r->used < n + 1) {
        size_t want = r->room ? r->room : 256;
        while (want - r->used < n + 1)
            want *= 2;
        char *a = realloc(r->arena, want);
        if (!a)
            return -ENOMEM;
        r->arena = a;
        r->room = want;
    }
    if (n)
        memcpy(r->arena + r->used, p, n);
    r->arena[r->used + n] = '\0';
    *off = r->used;
    r->used += n + 1;
    return 0;
}

int db_rows_set_name(wv_db_rows *r, int col, const char *name, size_t n)
{
    if (col < 0 || col >= r->ncols)
        return -EINVAL;
    return arena_put(r, name ? name : "", name ? n : 0, &r->names[col]);
}

db_cell *db_rows_add(wv_db_rows *r)
{
    size_t w = r->ncols ? (size_t)r->ncols : 1;
    if (r->nrows == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        if (cap > SIZE_MAX / sizeof(db_cell) / w)
            return NULL;
        db_cell *c = realloc(r->cells, cap * w * sizeof(db_cell));
        if (!c)
            return NULL;
        r->cells = c;
        r->cap = cap;
    }
    db_cell *row = r->cells + r->nrows * w;
    for (size_t i = 0; i < w; i++)
        row[i] = (db_cell){.type = WV_DB_NULL};
    r->nrows++;
    return row;
}

void db_cell_int(db_cell *c, wv_db_type type, int64_t v)
{
    c->type = (uint8_t)type;
    c->v.i = v;
}

void db_cell_float(db_cell *c, double v)
{
    c->type = WV_DB_FLOAT;
    c->v.f = v;
}

int db_cell_bytes(wv_db_rows *r, db_cell *c, wv_db_type type, const void *p, size_t n)
{
    uint64_t off;
    int rc = arena_put(r, p, n, &off);
    if (rc < 0)
        return rc;
    c->type = (uint8_t)type;
    c->v.off = off;
    c->len = (uint32_t)n;
    return 0;
}

void wv_db_rows_free(wv_db_rows *r)
{
    if (!r)
        return;
    free(r->cells);
    free(r->arena);
    free(r->names);
    free(r);
}

/* --------------------------------------------------------------- accessors */

size_t wv_db_rows_count(const wv_db_rows *r)
{
    return r ? r->nrows : 0;
}

int wv_db_cols(const wv_db_rows *r)
{
    return r ? r->ncols : 0;
}

const char *wv_db_col_name(const wv_db_rows *r, int col)
{
    if (!r || col < 0 || col >= r->ncols)
        return NULL;
    return r->arena + r->names[col];
}

int wv_db_col_index(const wv_db_rows *r, const char *name)
{
    if (r && name)
        for (int i = 0; i < r->ncols; i++)
            if (strcmp(r->arena + r->names[i], name) == 0)
                return i;
    return -ENOENT;
}

static const db_cell *cell_at(const wv_db_rows *r, size_t row, int col)
{
    if (!r || col < 0 || col >= r->ncols || row >= r->nrows)
        return NULL;
    return &r->cells[row * (size_t)r->ncols + (size_t)col];
}

wv_db_type wv_db_type_at(const wv_db_rows *r, size_t row, int col)
{
    const db_cell *c = cell_at(r, row, col);
    return c ? (wv_db_type)c->type : (wv_db_type)0;
}

bool wv_db_is_null(const wv_db_rows *r, size_t row, int col)
{
    const db_cell *c = cell_at(r, row, col);
    return c && c->type == WV_DB_NULL;
}

static const char *type_name(int t)
{
    switch (t) {
    case WV_DB_NULL:
        return "NULL";
    case WV_DB_INT:
        return "an integer";
    case WV_DB_FLOAT:
        return "a float";
    case WV_DB_BOOL:
        return "a boolean";
    case WV_DB_TEXT:
        return "text";
    case WV_DB_BLOB:
        return "a blob";
    case WV_DB_TIME:
        return "a time";
    }
    return "?";
}

/* The cell, or NULL with the error in *rc: out of range, NULL, or (when
 * `accepts` lacks its type) the wrong type. */
static const db_cell *typed_cell(const wv_db_rows *r, size_t row, int col, unsigned accepts,
                                 const char *want, int *rc)
{
    const db_cell *c = cell_at(r, row, col);
    if (!c) {
        *rc = wv_fail(-EINVAL, "row %zu, column %d: out of range (%zu rows, %d columns)", row, col,
                      wv_db_rows_count(r), wv_db_cols(r));
        return NULL;
    }
    if (c->type == WV_DB_NULL) {
        *rc = wv_fail(-ENODATA, "column %d (%s), row %zu: NULL", col, wv_db_col_name(r, col), row);
        return NULL;
    }
    if (!(accepts & (1u << c->type))) {
        *rc = wv_fail(-EINVAL, "column %d (%s), row %zu: expected %s, got %s", col,
                      wv_db_col_name(r, col), row, want, type_name(c->type));
        return NULL;
    }
    return c;
}

#define T(x) (1u << (x))

int wv_db_get_int(const wv_db_rows *r, size_t row, int col, int64_t *out)
{
    int rc = 0;
    const db_cell *c = typed_cell(r, row, col, T(WV_DB_INT) | T(WV_DB_BOOL), "an integer", &rc);
    if (!c)
        return rc;
    *out = c->v.i;
    return 0;
}

int wv_db_get_float(const wv_db_rows *r, size_t row, int col, double *out)
{
    int rc = 0;
    const db_cell *c = typed_cell(r, row, col, T(WV_DB_FLOAT) | T(WV_DB_INT), "a float", &rc);
    if (!c)
        return rc;
    *out = c->type == WV_DB_INT ? (double)c->v.i : c->v.f;
    return 0;
}

int wv_db_get_bool(const wv_db_rows *r, size_t row, int col, bool *out)
{
    int rc = 0;
    const db_cell *c = typed_cell(r, row, col, T(WV_DB_BOOL) | T(WV_DB_INT), "a boolean", &rc);
    if (!c)
        return rc;
    if (c->v.i != 0 && c->v.i != 1)
        return wv_fail(-EINVAL,
                       "column %d (%s), row %zu: expected a boolean, got the integer %" PRId64, col,
                       wv_db_col_name(r, col), row, c->v.i);
    *out = c->v.i != 0;
    return 0;
}

int wv_db_get_text(const wv_db_rows *r, size_t row, int col, const char **out, size_t *len)
{
    int rc = 0;
    const db_cell *c = typed_cell(r, row, col, T(WV_DB_TEXT), "text", &rc);
    if (!c)
        return rc;
    *out = r->arena + c->v.off;
    if (len)
        *len = c->len;
    return 0;
}

int wv_db_get_blob(const wv_db_rows *r, size_t row, int col, const void **out, size_t *len)
{
    int rc = 0;
    const db_cell *c = typed_cell(r, row, col, T(WV_DB_BLOB), "a blob", &rc);
    if (!c)
        return rc;
    *out = r->arena + c->v.off;
    if (len)
        *len = c->len;
    return 0;
}

int wv_db_get_time(const wv_db_rows *r, size_t row, int col, int64_t *us)
{
    int rc = 0;
    const db_cell *c = typed_cell(r, row, col, T(WV_DB_TIME) | T(WV_DB_TEXT), "a time", &rc);
    if (!c)
        return rc;
    if (c->type == WV_DB_TIME) {
        *us = c->v.i;
        return 0;
    }
    int64_t v;
    if (db_time_parse(r->arena + c->v.off, c->len, &v) < 0)
        return wv_fail(-EINVAL, "column %d (%s), row %zu: \"%.40s\" is not an ISO 8601 time", col,
                       wv_db_col_name(r, col), row, r->arena + c->v.off);
    *us = v;
    return 0;
}

/* -------------------------------------------------------------------- time */

/* wv_days_from_civil / wv_civil_from_days: weave/rt.h */

int db_time_format(int64_t us, char out[32])
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
    char buf[96]; /* room for what the compiler thinks the fields could be */
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", (int)y, m, d,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60),
                     (int)(rest % 1000000));
    memcpy(out, buf, (size_t)n + 1); /* 27 bytes and the NUL */
    return 0;
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

int db_time_parse(const char *s, size_t n, int64_t *us)
{
    /* YYYY-MM-DD?HH:MM:SS */
    if (n < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':')
        return -EINVAL;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), sec = digits(s + 17, 2);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || sec < 0 || sec > 59)
        return -EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -EINVAL;
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        int64_t scale = 100000;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 6) {
                frac += (s[i] - '0') * scale;
                scale /= 10;
            }
            if (i - start >= 9)
                return -EINVAL;
            i++;
        }
        if (i == start)
            return -EINVAL;
    }
    int64_t offset = 0; /* seconds east of UTC */
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int sign = s[i] == '-' ? -1 : 1;
        i++;
        if (n - i < 2)
            return -EINVAL;
        int oh = digits(s + i, 2), om = 0;
        i += 2;
        if (i < n && s[i] == ':')
            i++;
        if (n - i >= 2) {
            om = digits(s + i, 2);
            i += 2;
        }
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -EINVAL;
        offset = sign * (oh * 3600 + om * 60);
    }
    if (i != n)
        return -EINVAL;
    int64_t secs = wv_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    *us = secs * 1000000 + frac;
    return 0;
}
