/*
 * Models: a C struct declared once as a table of fields (wv_db_field), and
 * the few statements a service needs over it (create the table, insert
 * returning the key, get by key, filter by equality, update, delete),
 * generated per backend dialect and sent through the ordinary query calls.
 *
 * The SQL is plain and predictable: identifiers always double-quoted (they
 * are checked to be [A-Za-z_][A-Za-z0-9_]* first), every value a $N
 * parameter, numbered in the order the values are bound. No statement is
 * cached here: the backends' prepared-statement caches key on the SQL text,
 * which is the same for the same call shape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"

enum { MAX_FIELDS = 64 };

/* ------------------------------------------------------------- checking */

static bool is_ident(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static size_t max_len_of(const wv_db_field *f)
{
    if (f->max_len)
        return f->max_len;
    return f->type == WV_DB_TEXT ? f->size - 1 : f->size;
}

static int check_field(const wv_db_model *m, const wv_db_field *f)
{
    const char *t = m->table;
    if (!is_ident(f->name))
        return wv_fail(-EINVAL, "model %s: field name \"%s\" is not an identifier", t,
                       f->name ? f->name : "(null)");
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
                           "model %s: field %s: a text needs a char array with room "
                           "for max_len bytes and a NUL",
                           t, f->name);
        break;
    case WV_DB_BLOB:
        if (f->size < 1 || f->max_len > f->size || f->len_offset > m->size ||
            m->size - f->len_offset < sizeof(size_t))
            return wv_fail(-EINVAL,
                           "model %s: field %s: a blob needs a byte array with room "
                           "for max_len bytes and a size_t length member",
                           t, f->name);
        break;
    case WV_DB_OBJECT:
    case WV_DB_ARRAY:
        return wv_fail(-EINVAL,
                       "model %s: field %s: OBJECT and ARRAY fields are for bodies only "
                       "(include/weave/schema.h), not table columns",
                       t, f->name);
    default:
        return wv_fail(-EINVAL, "model %s: field %s: type %d is not a field type", t, f->name,
                       (int)f->type);
    }
    if (want && f->size != want)
        return wv_fail(-EINVAL, "model %s: field %s: member of %zu bytes, the type needs %zu", t,
                       f->name, f->size, want);
    if (f->offset > m->size || m->size - f->offset < f->size)
        return wv_fail(-EINVAL, "model %s: field %s: outside the struct", t, f->name);
    if (f->flags & ~(unsigned)(WV_DB_PRIMARY_KEY | WV_DB_AUTOINCREMENT | WV_DB_NOT_NULL |
                               WV_DB_UNIQUE | WV_DB_NULLABLE))
        return wv_fail(-EINVAL, "model %s: field %s: unknown flags", t, f->name);
    if ((f->flags & WV_DB_AUTOINCREMENT) &&
        (!(f->flags & WV_DB_PRIMARY_KEY) || f->type != WV_DB_INT))
        return wv_fail(-EINVAL, "model %s: field %s: AUTOINCREMENT needs an INT primary key", t,
                       f->name);
    return 0;
}

int db_model_check(const wv_db_model *m)
{
    if (!m || !m->fields)
        return wv_fail(-EINVAL, "model is NULL or has no fields");
    if (!m->table)
        return wv_fail(-EINVAL, "model %s has no table: it describes a body only",
                       m->name ? m->name : "(unnamed)");
    if (!is_ident(m->table))
        return wv_fail(-EINVAL, "model: table name \"%s\" is not an identifier",
                       m->table ? m->table : "(null)");
    if (m->nfields < 1 || m->nfields > MAX_FIELDS)
        return wv_fail(-EINVAL, "model %s: %zu fields (1 to %d)", m->table, m->nfields, MAX_FIELDS);
    int keys = 0;
    for (size_t i = 0; i < m->nfields; i++) {
        int rc = check_field(m, &m->fields[i]);
        if (rc < 0)
            return rc;
        keys += (m->fields[i].flags & WV_DB_PRIMARY_KEY) != 0;
        for (size_t k = 0; k < i; k++)
            if (strcmp(m->fields[k].name, m->fields[i].name) == 0)
                return wv_fail(-EINVAL, "model %s: two fields named %s", m->table,
                               m->fields[i].name);
    }
    if (keys != 1)
        return wv_fail(-EINVAL, "model %s: %d primary keys (want exactly one)", m->table, keys);
    return 0;
}

static size_t key_index(const wv_db_model *m)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (m->fields[i].flags & WV_DB_PRIMARY_KEY)
            return i;
    return 0;
}

/* Parse "a, b" (or "-a,b" with sort) into field indexes; the count or
 * -EINVAL. */
static int field_list(const wv_db_model *m, const char *list, int idx[MAX_FIELDS],
                      bool desc[MAX_FIELDS], const char *what)
{
    int n = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        bool minus = *p == '-';
        if (minus && desc)
            p++;
        size_t len = strcspn(p, ", ");
        size_t i = 0;
        while (i < m->nfields &&
               !(strlen(m->fields[i].name) == len && memcmp(m->fields[i].name, p, len) == 0))
            i++;
        if (i == m->nfields || n == MAX_FIELDS)
            return wv_fail(-EINVAL, "model %s: %s: no field \"%.*s\"", m->table, what, (int)len, p);
        if (desc)
            desc[n] = minus;
        idx[n++] = (int)i;
        p += len;
    }
    return n;
}

/* ----------------------------------------------------------- generation */

static int quoted(wv_buf *out, const char *name)
{
    return wv_buf_printf(out, "\"%s\"", name);
}

static int finish(wv_buf *out, int rc)
{
    if (rc == 0)
        rc = wv_buf_append(out, "", 1);
    if (rc < 0)
        return wv_fail(rc, "model: out of memory");
    out->n--; /* the NUL stays after the text */
    return 0;
}

static const char *column_type(db_dialect d, wv_db_type t)
{
    bool pg = d == DB_POSTGRES;
    switch (t) {
    case WV_DB_INT:
        return pg ? "BIGINT" : "INTEGER";
    case WV_DB_FLOAT:
        return pg ? "DOUBLE PRECISION" : "REAL";
    case WV_DB_BOOL:
        return "BOOLEAN";
    case WV_DB_BLOB:
        return pg ? "BYTEA" : "BLOB";
    case WV_DB_TIME:
        return pg ? "TIMESTAMPTZ" : "TEXT";
    default:
        return "TEXT";
    }
}

static int column_list(const wv_db_model *m, wv_buf *out)
{
    int rc = 0;
    for (size_t i = 0; i < m->nfields && rc == 0; i++) {
        if (i)
            rc = wv_buf_puts(out, ", ");
        if (rc == 0)
            rc = quoted(out, m->fields[i].name);
    }
    return rc;
}

int db_sql_create_table(db_dialect d, const wv_db_model *m, wv_buf *out)
{
    int rc = wv_buf_puts(out, "CREATE TABLE IF NOT EXISTS ");
    if (rc == 0)
        rc = quoted(out, m->table);
    if (rc == 0)
        rc = wv_buf_puts(out, " (");
    for (size_t i = 0; i < m->nfields && rc == 0; i++) {
        const wv_db_field *f = &m->fields[i];
        if (i)
            rc = wv_buf_puts(out, ", ");
        if (rc == 0)
            rc = quoted(out, f->name);
        if (rc)
            break;
        if (f->flags & WV_DB_AUTOINCREMENT)
            rc = wv_buf_puts(out, d == DB_POSTGRES
                                      ? " BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
                                      : " INTEGER PRIMARY KEY AUTOINCREMENT");
        else if (f->flags & WV_DB_PRIMARY_KEY)
            rc = wv_buf_printf(out, " %s PRIMARY KEY NOT NULL", column_type(d, f->type));
        else
            rc = wv_buf_printf(out, " %s%s%s", column_type(d, f->type),
                               f->flags & WV_DB_NOT_NULL ? " NOT NULL" : "",
                               f->flags & WV_DB_UNIQUE ? " UNIQUE" : "");
    }
    if (rc == 0)
        rc = wv_buf_puts(out, ")");
    return finish(out, rc);
}

int db_sql_insert(db_dialect d, const wv_db_model *m, bool with_key, wv_buf *out)
{
    (void)d;
    size_t key = key_index(m);
    int rc = wv_buf_puts(out, "INSERT INTO ");
    if (rc == 0)
        rc = quoted(out, m->table);
    int n = 0;
    for (size_t i = 0; i < m->nfields && rc == 0; i++) {
        if (i == key && !with_key)
            continue;
        rc = wv_buf_puts(out, n ? ", " : " (");
        if (rc == 0)
            rc = quoted(out, m->fields[i].name);
        n++;
    }
    if (rc == 0 && n == 0)
        rc = wv_buf_puts(out, " DEFAULT VALUES");
    for (int i = 0; i < n && rc == 0; i++)
        rc = wv_buf_printf(out, "%s$%d", i ? ", " : ") VALUES (", i + 1);
    if (rc == 0)
        rc = wv_buf_puts(out, n ? ") RETURNING " : " RETURNING ");
    if (rc == 0)
        rc = quoted(out, m->fields[key].name);
    return finish(out, rc);
}

static int select_from(const wv_db_model *m, wv_buf *out)
{
    int rc = wv_buf_puts(out, "SELECT ");
    if (rc == 0)
        rc = column_list(m, out);
    if (rc == 0)
        rc = wv_buf_puts(out, " FROM ");
    if (rc == 0)
        rc = quoted(out, m->table);
    return rc;
}

static int where_key(const wv_db_model *m, int n, wv_buf *out)
{
    int rc = wv_buf_puts(out, " WHERE ");
    if (rc == 0)
        rc = quoted(out, m->fields[key_index(m)].name);
    if (rc == 0)
        rc = wv_buf_printf(out, " = $%d", n);
    return rc;
}

int db_sql_get(db_dialect d, const wv_db_model *m, wv_buf *out)
{
    (void)d;
    int rc = select_from(m, out);
    if (rc == 0)
        rc = where_key(m, 1, out);
    return finish(out, rc);
}

int db_sql_filter(db_dialect d, const wv_db_model *m, const wv_db_filter_opts *f,
                  uint64_t where_null, wv_buf *out)
{
    int idx[MAX_FIELDS];
    bool desc[MAX_FIELDS];
    int rc = select_from(m, out), arg = 0;
    if (rc < 0)
        return finish(out, rc);
    int n = f && f->where ? field_list(m, f->where, idx, NULL, "where") : 0;
    if (n < 0)
        return n;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = wv_buf_puts(out, i ? " AND " : " WHERE ");
        if (rc == 0)
            rc = quoted(out, m->fields[idx[i]].name);
        if (rc == 0)
            rc = where_null & (UINT64_C(1) << i) ? wv_buf_puts(out, " IS NULL")
                                                 : wv_buf_printf(out, " = $%d", ++arg);
    }
    if (f && f->order_by) {
        n = field_list(m, f->order_by, idx, desc, "order_by");
        if (n < 0)
            return n;
    } else {
        n = 1;
        idx[0] = (int)key_index(m);
        desc[0] = false;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        rc = wv_buf_puts(out, i ? ", " : " ORDER BY ");
        if (rc == 0)
            rc = quoted(out, m->fields[idx[i]].name);
        if (rc == 0 && desc[i])
            rc = wv_buf_puts(out, " DESC");
    }
    if (rc == 0 && f && f->limit > 0)
        rc = wv_buf_printf(out, " LIMIT $%d", ++arg);
    else if (rc == 0 && f && f->offset > 0 && d == DB_SQLITE)
        rc = wv_buf_puts(out, " LIMIT -1"); /* SQLite has no OFFSET without LIMIT */
    if (rc == 0 && f && f->offset > 0)
        rc = wv_buf_printf(out, " OFFSET $%d", ++arg);
    return finish(out, rc);
}

int db_sql_update(db_dialect d, const wv_db_model *m, const char *fields, wv_buf *out)
{
    (void)d;
    int idx[MAX_FIELDS];
    int n = 0;
    size_t key = key_index(m);
    if (fields) {
        n = field_list(m, fields, idx, NULL, "update");
        if (n < 0)
            return n;
        for (int i = 0; i < n; i++)
            if ((size_t)idx[i] == key)
                return wv_fail(-EINVAL, "model %s: update: the primary key cannot be changed",
                               m->table);
    } else {
        for (size_t i = 0; i < m->nfields; i++)
            if (i != key)
                idx[n++] = (int)i;
    }
    if (n == 0)
        return wv_fail(-EINVAL, "model %s: update: no field to set", m->table);
    int rc = wv_buf_puts(out, "UPDATE ");
    if (rc == 0)
        rc = quoted(out, m->table);
    for (int i = 0; i < n && rc == 0; i++) {
        rc = wv_buf_puts(out, i ? ", " : " SET ");
        if (rc == 0)
            rc = quoted(out, m->fields[idx[i]].name);
        if (rc == 0)
            rc = wv_buf_printf(out, " = $%d", i + 1);
    }
    if (rc == 0)
        rc = where_key(m, n + 1, out);
    return finish(out, rc);
}

int db_sql_delete(db_dialect d, const wv_db_model *m, wv_buf *out)
{
    (void)d;
    int rc = wv_buf_puts(out, "DELETE FROM ");
    if (rc == 0)
        rc = quoted(out, m->table);
    if (rc == 0)
        rc = where_key(m, 1, out);
    return finish(out, rc);
}

/* ------------------------------------------------------ struct <-> values */

static int to_value(const wv_db_model *m, const wv_db_field *f, const void *obj, wv_db_value *v)
{
    const char *p = (const char *)obj + f->offset;
    int64_t i;
    switch (f->type) {
    case WV_DB_INT:
    case WV_DB_TIME:
        memcpy(&i, p, sizeof i);
        *v = f->type == WV_DB_INT ? wv_db_int(i) : wv_db_time(i);
        return 0;
    case WV_DB_FLOAT: {
        double x;
        memcpy(&x, p, sizeof x);
        *v = wv_db_float(x);
        return 0;
    }
    case WV_DB_BOOL: {
        bool b;
        memcpy(&b, p, sizeof b);
        *v = wv_db_bool(b);
        return 0;
    }
    case WV_DB_TEXT: {
        size_t len = strnlen(p, f->size);
        if (len == f->size)
            return wv_fail(-EMSGSIZE, "%s.%s: no NUL within the field's %zu bytes", m->table,
                           f->name, f->size);
        if (len > max_len_of(f))
            return wv_fail(-EMSGSIZE, "%s.%s: a text of %zu bytes, longer than the field's %zu",
                           m->table, f->name, len, max_len_of(f));
        *v = wv_db_textn(p, len);
        return 0;
    }
    case WV_DB_BLOB: {
        size_t len;
        memcpy(&len, (const char *)obj + f->len_offset, sizeof len);
        if (len > max_len_of(f))
            return wv_fail(-EMSGSIZE, "%s.%s: a blob of %zu bytes, longer than the field's %zu",
                           m->table, f->name, len, max_len_of(f));
        *v = wv_db_blob(p, len);
        return 0;
    }
    default:
        return wv_fail(-EINVAL, "%s.%s: not a field type", m->table, f->name);
    }
}

/* Cell (row, col) of r into field f of the struct at obj. */
static int from_cell(const wv_db_model *m, const wv_db_field *f, const wv_db_rows *r, size_t row,
                     int col, void *obj)
{
    char *p = (char *)obj + f->offset;
    if (wv_db_is_null(r, row, col)) {
        memset(p, 0, f->size);
        if (f->type == WV_DB_BLOB)
            memset((char *)obj + f->len_offset, 0, sizeof(size_t));
        return 0;
    }
    int rc;
    switch (f->type) {
    case WV_DB_INT:
    case WV_DB_TIME: {
        int64_t i = 0;
        rc =
            f->type == WV_DB_INT ? wv_db_get_int(r, row, col, &i) : wv_db_get_time(r, row, col, &i);
        if (rc == 0)
            memcpy(p, &i, sizeof i);
        return rc;
    }
    case WV_DB_FLOAT: {
        double x = 0;
        rc = wv_db_get_float(r, row, col, &x);
        if (rc == 0)
            memcpy(p, &x, sizeof x);
        return rc;
    }
    case WV_DB_BOOL: {
        bool b = false;
        rc = wv_db_get_bool(r, row, col, &b);
        if (rc == 0)
            memcpy(p, &b, sizeof b);
        return rc;
    }
    case WV_DB_TEXT: {
        const char *s;
        size_t len;
        rc = wv_db_get_text(r, row, col, &s, &len);
        if (rc == 0 && len > max_len_of(f))
            rc = wv_fail(-EMSGSIZE,
                         "%s.%s: the stored text has %zu bytes, more than the "
                         "field's %zu",
                         m->table, f->name, len, max_len_of(f));
        if (rc == 0) {
            memcpy(p, s, len);
            p[len] = '\0';
        }
        return rc;
    }
    case WV_DB_BLOB: {
        const void *b;
        size_t len;
        rc = wv_db_get_blob(r, row, col, &b, &len);
        if (rc == 0 && len > max_len_of(f))
            rc = wv_fail(-EMSGSIZE,
                         "%s.%s: the stored blob has %zu bytes, more than the "
                         "field's %zu",
                         m->table, f->name, len, max_len_of(f));
        if (rc == 0) {
            memcpy(p, b, len);
            memcpy((char *)obj + f->len_offset, &len, sizeof len);
        }
        return rc;
    }
    default:
        return -EINVAL;
    }
}

/* Row `row` of r (columns in field order) into the struct at obj. */
static int from_row(const wv_db_model *m, const wv_db_rows *r, size_t row, void *obj)
{
    for (size_t i = 0; i < m->nfields; i++) {
        int rc = from_cell(m, &m->fields[i], r, row, (int)i, obj);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ------------------------------------------------------------- the calls */

int wv_db_create_table(wv_db *db, const wv_db_model *m)
{
    int rc = db_model_check(m);
    if (rc < 0 || !db)
        return rc < 0 ? rc : wv_fail(-EINVAL, "wv_db_create_table: db is NULL");
    wv_buf sql = {0};
    rc = db_sql_create_table(db_dialect_of(db), m, &sql);
    if (rc == 0)
        rc = wv_db_exec_argv(db, sql.p, NULL, 0);
    wv_buf_free(&sql);
    return rc < 0 ? rc : 0;
}

int wv_db_insert(wv_db *db, const wv_db_model *m, void *obj)
{
    int rc = db_model_check(m);
    if (rc < 0)
        return rc;
    if (!db || !obj)
        return wv_fail(-EINVAL, "wv_db_insert: db or obj is NULL");
    size_t key = key_index(m);
    const wv_db_field *kf = &m->fields[key];
    int64_t id = 0;
    if (kf->flags & WV_DB_AUTOINCREMENT)
        memcpy(&id, (const char *)obj + kf->offset, sizeof id);
    bool with_key = !(kf->flags & WV_DB_AUTOINCREMENT) || id != 0;
    wv_db_value args[MAX_FIELDS];
    size_t n = 0;
    for (size_t i = 0; i < m->nfields; i++) {
        if (i == key && !with_key)
            continue;
        rc = to_value(m, &m->fields[i], obj, &args[n++]);
        if (rc < 0)
            return rc;
    }
    wv_buf sql = {0};
    rc = db_sql_insert(db_dialect_of(db), m, with_key, &sql);
    wv_db_rows *rows = NULL;
    if (rc == 0)
        rc = wv_db_query_row_argv(db, &rows, sql.p, args, n);
    wv_buf_free(&sql);
    if (rc == 0)
        rc = from_cell(m, kf, rows, 0, 0, obj);
    wv_db_rows_free(rows);
    if (rc == 0 && with_key && (kf->flags & WV_DB_AUTOINCREMENT) &&
        db_dialect_of(db) == DB_POSTGRES) {
        /* an explicit key does not move PostgreSQL's identity sequence (it
         * moves SQLite's AUTOINCREMENT): move it past the largest key, so the
         * next generated one does not collide, as on SQLite. Names are
         * checked identifiers (db_model_check). */
        char q[1024];
        snprintf(q, sizeof q,
                 "SELECT setval(pg_get_serial_sequence('\"%s\"', '%s'), "
                 "(SELECT max(\"%s\") FROM \"%s\"))",
                 m->table, kf->name, kf->name, m->table);
        int64_t ignored;
        rc = wv_db_query_int(db, &ignored, q);
    }
    return rc;
}

int wv_db_get(wv_db *db, const wv_db_model *m, wv_db_value key, void *obj)
{
    int rc = db_model_check(m);
    if (rc < 0)
        return rc;
    if (!db || !obj)
        return wv_fail(-EINVAL, "wv_db_get: db or obj is NULL");
    wv_buf sql = {0};
    rc = db_sql_get(db_dialect_of(db), m, &sql);
    wv_db_rows *rows = NULL;
    if (rc == 0)
        rc = wv_db_query_row_argv(db, &rows, sql.p, &key, 1);
    wv_buf_free(&sql);
    if (rc == -ENOENT)
        return wv_fail(-ENOENT, "wv_db_get: %s: no row with that key", m->table);
    if (rc < 0)
        return rc;
    /* decode into a copy, so obj is untouched on error */
    char *tmp = malloc(m->size);
    if (!tmp) {
        wv_db_rows_free(rows);
        return wv_fail(-ENOMEM, "wv_db_get: out of memory");
    }
    memcpy(tmp, obj, m->size);
    rc = from_row(m, rows, 0, tmp);
    if (rc == 0)
        memcpy(obj, tmp, m->size);
    free(tmp);
    wv_db_rows_free(rows);
    return rc;
}

int wv_db_filter(wv_db *db, const wv_db_model *m, const wv_db_filter_opts *f, void *out,
                 size_t *count)
{
    int rc = db_model_check(m);
    if (rc < 0)
        return rc;
    if (!db || !out || !count)
        return wv_fail(-EINVAL, "wv_db_filter: db, out or count is NULL");
    void *none = NULL;
    memcpy(out, &none, sizeof none);
    *count = 0;
    if (f && (f->limit < 0 || f->offset < 0))
        return wv_fail(-EINVAL, "wv_db_filter: negative limit or offset");
    int idx[MAX_FIELDS];
    int nwhere = f && f->where ? field_list(m, f->where, idx, NULL, "where") : 0;
    if (nwhere < 0)
        return nwhere;
    if (nwhere && !f->args)
        return wv_fail(-EINVAL, "wv_db_filter: %d where fields but no args", nwhere);
    wv_db_value args[MAX_FIELDS + 2];
    size_t n = 0;
    uint64_t where_null = 0;
    for (int i = 0; i < nwhere; i++) {
        if (f->args[i].type == WV_DB_NULL)
            where_null |= UINT64_C(1) << i;
        else
            args[n++] = f->args[i];
    }
    if (f && f->limit > 0)
        args[n++] = wv_db_int(f->limit);
    if (f && f->offset > 0)
        args[n++] = wv_db_int(f->offset);
    wv_buf sql = {0};
    rc = db_sql_filter(db_dialect_of(db), m, f, where_null, &sql);
    wv_db_rows *rows = NULL;
    if (rc == 0)
        rc = wv_db_query_argv(db, &rows, sql.p, args, n);
    wv_buf_free(&sql);
    if (rc < 0)
        return rc;
    size_t nrows = wv_db_rows_count(rows);
    char *arr = NULL;
    if (nrows) {
        arr = calloc(nrows, m->size);
        if (!arr) {
            wv_db_rows_free(rows);
            return wv_fail(-ENOMEM, "wv_db_filter: out of memory for %zu rows", nrows);
        }
    }
    for (size_t r = 0; r < nrows && rc >= 0; r++)
        rc = from_row(m, rows, r, arr + r * m->size);
    wv_db_rows_free(rows);
    if (rc < 0) {
        free(arr);
        return rc;
    }
    memcpy(out, &arr, sizeof arr);
    *count = nrows;
    return 0;
}

int wv_db_update(wv_db *db, const wv_db_model *m, const void *obj, const char *fields)
{
    int rc = db_model_check(m);
    if (rc < 0)
        return rc;
    if (!db || !obj)
        return wv_fail(-EINVAL, "wv_db_update: db or obj is NULL");
    wv_buf sql = {0};
    rc = db_sql_update(db_dialect_of(db), m, fields, &sql);
    if (rc < 0)
        return rc;
    int idx[MAX_FIELDS];
    size_t key = key_index(m), n = 0;
    int nset = 0;
    if (fields) {
        nset = field_list(m, fields, idx, NULL, "update");
    } else {
        for (size_t i = 0; i < m->nfields; i++)
            if (i != key)
                idx[nset++] = (int)i;
    }
    wv_db_value args[MAX_FIELDS + 1];
    for (int i = 0; i < nset && rc == 0; i++)
        rc = to_value(m, &m->fields[idx[i]], obj, &args[n++]);
    if (rc == 0)
        rc = to_value(m, &m->fields[key], obj, &args[n++]);
    if (rc == 0)
        rc = wv_db_exec_argv(db, sql.p, args, n);
    wv_buf_free(&sql);
    if (rc == 0)
        return wv_fail(-ENOENT, "wv_db_update: %s: no row with that key", m->table);
    return rc < 0 ? rc : 0;
}

int wv_db_delete(wv_db *db, const wv_db_model *m, wv_db_value key)
{
    int rc = db_model_check(m);
    if (rc < 0)
        return rc;
    if (!db)
        return wv_fail(-EINVAL, "wv_db_delete: db is NULL");
    wv_buf sql = {0};
    rc = db_sql_delete(db_dialect_of(db), m, &sql);
    if (rc == 0)
        rc = wv_db_exec_argv(db, sql.p, &key, 1);
    wv_buf_free(&sql);
    if (rc == 0)
        return wv_fail(-ENOENT, "wv_db_delete: %s: no row with that key", m->table);
    return rc < 0 ? rc : 0;
}
