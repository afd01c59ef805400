/*
 * Results and errors: the caller's view of a PGresult (typed accessors
 * that check the column's type OID before converting its text), and the
 * server's errors turned into an errno and one line of wv_errmsg().
 *
 * Results come in text format: every value can also be read as the server
 * wrote it (wv_pg_value), and no accessor depends on binary layouts.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

/* Type OIDs (pg_type.dat; stable across server versions). */
enum {
    T_BOOL = 16,
    T_BYTEA = 17,
    T_CHAR = 18,
    T_NAME = 19,
    T_INT8 = 20,
    T_INT2 = 21,
    T_INT4 = 23,
    T_TEXT = 25,
    T_OID = 26,
    T_JSON = 114,
    T_XML = 142,
    T_FLOAT4 = 700,
    T_FLOAT8 = 701,
    T_UNKNOWN = 705,
    T_BPCHAR = 1042,
    T_VARCHAR = 1043,
    T_DATE = 1082,
    T_TIME = 1083,
    T_TIMESTAMP = 1114,
    T_TIMESTAMPTZ = 1184,
    T_INTERVAL = 1186,
    T_NUMERIC = 1700,
    T_UUID = 2950,
    T_JSONB = 3802,
};

static const char *type_name(Oid t)
{
    switch (t) {
    case T_BOOL:
        return "boolean";
    case T_BYTEA:
        return "bytea";
    case T_CHAR:
        return "\"char\"";
    case T_NAME:
        return "name";
    case T_INT8:
        return "bigint";
    case T_INT2:
        return "smallint";
    case T_INT4:
        return "integer";
    case T_TEXT:
        return "text";
    case T_OID:
        return "oid";
    case T_JSON:
        return "json";
    case T_XML:
        return "xml";
    case T_FLOAT4:
        return "real";
    case T_FLOAT8:
        return "double precision";
    case T_UNKNOWN:
        return "unknown";
    case T_BPCHAR:
        return "character";
    case T_VARCHAR:
        return "character varying";
    case T_DATE:
        return "date";
    case T_TIME:
        return "time";
    case T_TIMESTAMP:
        return "timestamp";
    case T_TIMESTAMPTZ:
        return "timestamptz";
    case T_INTERVAL:
        return "interval";
    case T_NUMERIC:
        return "numeric";
    case T_UUID:
        return "uuid";
    case T_JSONB:
        return "jsonb";
    default:
        return NULL;
    }
}

static bool is_int(Oid t)
{
    return t == T_INT2 || t == T_INT4 || t == T_INT8 || t == T_OID;
}

static bool is_float(Oid t)
{
    return t == T_FLOAT4 || t == T_FLOAT8 || t == T_NUMERIC || is_int(t);
}

static bool is_text(Oid t)
{
    return t == T_TEXT || t == T_VARCHAR || t == T_BPCHAR || t == T_NAME || t == T_CHAR ||
           t == T_JSON || t == T_JSONB || t == T_XML || t == T_UNKNOWN;
}

static bool is_timestamp(Oid t)
{
    return t == T_TIMESTAMP || t == T_TIMESTAMPTZ || t == T_DATE;
}

/* ---------------------------------------------------------------- errors */

static const char *field(const PGresult *r, int code)
{
    const char *v = PQresultErrorField(r, code);
    return v && *v ? v : NULL;
}

bool pg_error_is(const PGresult *r, const char *state)
{
    const char *s = field(r, PG_DIAG_SQLSTATE);
    return s && strcmp(s, state) == 0;
}

int pg_error_errno(const PGresult *r)
{
    const char *sev = field(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *s = field(r, PG_DIAG_SQLSTATE);
    if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        return -ECONNRESET;
    if (!s)
        return -EIO;
    if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0)
        return -EAGAIN;
    if (strcmp(s, "57014") == 0)
        return -ECANCELED;
    if (strncmp(s, "28", 2) == 0 || strcmp(s, "42501") == 0)
        return -EACCES;
    if (strncmp(s, "57P", 3) == 0 || (strncmp(s, "08", 2) == 0 && strcmp(s, "08P01") != 0))
        return -ECONNRESET;
    return -EREMOTEIO;
}

void pg_error_format(const PGresult *r, char *out, size_t n)
{
    const char *sev = field(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *state = field(r, PG_DIAG_SQLSTATE);
    const char *msg = field(r, PG_DIAG_MESSAGE_PRIMARY);
    if (!sev)
        sev = field(r, PG_DIAG_SEVERITY);
    if (!state || !msg) {
        char line[ERRBUF_SIZE];
        pg_one_line(PQresultErrorMessage(r), line, sizeof line);
        snprintf(out, n, "pg: %s", line[0] ? line : "unknown error");
        return;
    }
    const char *detail = field(r, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = field(r, PG_DIAG_MESSAGE_HINT);
    snprintf(out, n, "%s %s %s%s%s%s%s%s%s", sev ? sev : "ERROR", state, msg,
             detail ? " (detail: " : "", detail ? detail : "", detail ? ")" : "",
             hint ? " (hint: " : "", hint ? hint : "", hint ? ")" : "");
}

bool wv_pg_sqlstate(char state[6])
{
    const char *m = wv_errmsg();
    const char *p = m;
    state[0] = '\0';
    while (*p >= 'A' && *p <= 'Z')
        p++;
    if (p == m || *p != ' ')
        return false;
    p++;
    for (int i = 0; i < 5; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'Z')))
            return false;
    if (p[5] != ' ' && p[5] != '\0')
        return false;
    memcpy(state, p, 5);
    state[5] = '\0';
    return true;
}

/* --------------------------------------------------------------- results */

struct pg_blob {
    struct pg_blob *next;
    int row, col;
    unsigned char *p;
    size_t n;
};

void pg_result_init(wv_pg_result *out, PGresult *r)
{
    out->res = r;
    out->nrows = r ? PQntuples(r) : 0;
    out->ncols = r ? PQnfields(r) : 0;
    out->blobs = NULL;
}

void pg_result_clear(wv_pg_result *r)
{
    struct pg_blob *b = r->blobs;
    while (b) {
        struct pg_blob *next = b->next;
        PQfreemem(b->p);
        free(b);
        b = next;
    }
    r->blobs = NULL;
    PQclear(r->res);
    r->res = NULL;
    r->nrows = r->ncols = 0;
}

wv_pg_result *pg_result_wrap(PGresult *r)
{
    wv_pg_result *w = malloc(sizeof *w);
    if (!w) {
        PQclear(r);
        return NULL;
    }
    pg_result_init(w, r);
    return w;
}

void wv_pg_result_free(wv_pg_result *r)
{
    if (!r)
        return;
    pg_result_clear(r);
    free(r);
}

int wv_pg_nrows(const wv_pg_result *r)
{
    return r ? r->nrows : 0;
}

int wv_pg_ncols(const wv_pg_result *r)
{
    return r ? r->ncols : 0;
}

const char *wv_pg_colname(const wv_pg_result *r, int col)
{
    if (!r || col < 0 || col >= r->ncols)
        return NULL;
    return PQfname(r->res, col);
}

int wv_pg_colnum(const wv_pg_result *r, const char *name)
{
    for (int i = 0; r && name && i < r->ncols; i++)
        if (strcmp(PQfname(r->res, i), name) == 0)
            return i;
    return wv_fail(-ENOENT, "pg: no column named \"%s\"", name ? name : "(null)");
}

unsigned wv_pg_coltype(const wv_pg_result *r, int col)
{
    if (!r || col < 0 || col >= r->ncols)
        return 0;
    return (unsigned)PQftype(r->res, col);
}

bool wv_pg_isnull(const wv_pg_result *r, int row, int col)
{
    if (!r || row < 0 || row >= r->nrows || col < 0 || col >= r->ncols)
        return false;
    return PQgetisnull(r->res, row, col) != 0;
}

const char *wv_pg_value(const wv_pg_result *r, int row, int col)
{
    if (!r || row < 0 || row >= r->nrows || col < 0 || col >= r->ncols ||
        PQgetisnull(r->res, row, col))
        return NULL;
    return PQgetvalue(r->res, row, col);
}

/* The common checks: range, type, NULL. Returns the value's text. */
static int cell(const wv_pg_result *r, int row, int col, bool (*ok)(Oid), const char *want,
                const char **text)
{
    if (!r)
        return wv_fail(-EINVAL, "pg: no result");
    if (col < 0 || col >= r->ncols)
        return wv_fail(-ERANGE, "pg: column %d out of range (%d columns)", col, r->ncols);
    if (row < 0 || row >= r->nrows)
        return wv_fail(-ERANGE, "pg: row %d out of range (%d rows)", row, r->nrows);
    Oid t = PQftype(r->res, col);
    if (!ok(t)) {
        const char *tn = type_name(t);
        if (tn)
            return wv_fail(-EDOM, "pg: column %d (%s) is %s, not %s", col, PQfname(r->res, col), tn,
                           want);
        return wv_fail(-EDOM, "pg: column %d (%s) is of type oid %u, not %s", col,
                       PQfname(r->res, col), (unsigned)t, want);
    }
    if (PQgetisnull(r->res, row, col))
        return wv_fail(-ENODATA, "pg: column %d (%s) is NULL in row %d", col, PQfname(r->res, col),
                       row);
    *text = PQgetvalue(r->res, row, col);
    return 0;
}

static int bad_value(const wv_pg_result *r, int col, const char *text)
{
    return wv_fail(-EPROTO, "pg: column %d (%s): cannot read \"%.40s\"", col, PQfname(r->res, col),
                   text);
}

int wv_pg_get_int(const wv_pg_result *r, int row, int col, int64_t *out)
{
    const char *t;
    int rc = cell(r, row, col, is_int, "an integer", &t);
    if (rc < 0)
        return rc;
    char *end;
    errno = 0;
    long long v = strtoll(t, &end, 10);
    if (end == t || *end || errno)
        return bad_value(r, col, t);
    *out = v;
    return 0;
}

int wv_pg_get_float(const wv_pg_result *r, int row, int col, double *out)
{
    const char *t;
    int rc = cell(r, row, col, is_float, "a number", &t);
    if (rc < 0)
        return rc;
    char *end;
    double v = strtod(t, &end);
    if (end == t || *end)
        return bad_value(r, col, t);
    *out = v; /* out of double's range: +-inf, as float8 would say */
    return 0;
}

static bool is_bool(Oid t)
{
    return t == T_BOOL;
}

int wv_pg_get_bool(const wv_pg_result *r, int row, int col, bool *out)
{
    const char *t;
    int rc = cell(r, row, col, is_bool, "a boolean", &t);
    if (rc < 0)
        return rc;
    if (strcmp(t, "t") != 0 && strcmp(t, "f") != 0)
        return bad_value(r, col, t);
    *out = t[0] == 't';
    return 0;
}

int wv_pg_get_text(const wv_pg_result *r, int row, int col, wv_str *out)
{
    const char *t;
    int rc = cell(r, row, col, is_text, "text", &t);
    if (rc < 0)
        return rc;
    out->p = t;
    out->n = (size_t)PQgetlength(r->res, row, col);
    return 0;
}

static bool is_bytea(Oid t)
{
    return t == T_BYTEA;
}

int wv_pg_get_bytes(wv_pg_result *r, int row, int col, wv_str *out)
{
    const char *t;
    int rc = cell(r, row, col, is_bytea, "bytea", &t);
    if (rc < 0)
        return rc;
    for (struct pg_blob *b = r->blobs; b; b = b->next) {
        if (b->row == row && b->col == col) {
            out->p = (const char *)b->p;
            out->n = b->n;
            return 0;
        }
    }
    struct pg_blob *b = calloc(1, sizeof *b);
    if (!b)
        return wv_fail(-ENOMEM, "pg: out of memory");
    b->p = PQunescapeBytea((const unsigned char *)t, &b->n);
    if (!b->p) {
        free(b);
        return bad_value(r, col, t);
    }
    b->row = row;
    b->col = col;
    b->next = r->blobs;
    r->blobs = b;
    out->p = (const char *)b->p;
    out->n = b->n;
    return 0;
}

int wv_pg_get_timestamp(const wv_pg_result *r, int row, int col, int64_t *out)
{
    const char *t;
    int rc = cell(r, row, col, is_timestamp, "a timestamp", &t);
    if (rc < 0)
        return rc;
    if (pg_parse_timestamp(t, out) < 0)
        return wv_fail(-EPROTO, "pg: column %d (%s): cannot read \"%.40s\" (is DateStyle ISO?)",
                       col, PQfname(r->res, col), t);
    return 0;
}
