/*
 * §13.3 databases: asyncpg (13.3.1), SQLAlchemy's async session and
 * Tortoise ORM (13.3.2).
 *
 *     rows = await conn.fetch('SELECT id, name FROM users')       # asyncpg
 *
 *     result = await session.execute(select(User))                 # SQLAlchemy
 *
 *     class User(models.Model):                                    # Tortoise
 *         id = fields.IntField(pk=True)
 *         name = fields.CharField(max_length=50)
 *     await Tortoise.generate_schemas()
 *     user = await User.create(name="Alice")
 *
 * Here: GET /users is the asyncpg query, written as SQL; GET /users/{id},
 * POST /users, PUT /users/{id} (rename) and DELETE /users/{id} go through
 * the model (include/weave/db.h), whose table is created at startup
 * (generate_schemas). GET /users/{id} reads through the app's cache
 * (§13.9, s13_9_caching.c) for a minute, with single-flight (the fibers
 * asking for one id at once cost one query; X-Cache says hit or miss), and
 * PUT and DELETE drop the cached copy, so a read after a write sees it. The database is SQLite by
 * default (a file, so every shard sees the same users and `make run` needs no server) and
 * PostgreSQL when --database-url / DATABASE_URL says postgres://. The app owns the database: it
 * opens a handle per shard at start, checks it in /readyz and closes it at stop; a handler takes
 * its shard's with wv_req_db(req).
 *
 * POST /users and PUT /users/{id} take {"name": "..."}: 1 to 50 characters (of UTF-8). Anything
 * else is a 422 naming the field, as FastAPI answers ({"detail": [{"loc": ["body", "name"], "msg":
 * ..., "type": ...}]}); a body that is not JSON is a 400.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/cache.h>
#include <weave/db.h>
#include <weave/json.h>

#include "chapter13.h"

/* Tortoise's CharField(max_length=50) counts characters: 50 of them are
 * up to 200 bytes of UTF-8 */
enum { NAME_MAX_CHARS = 50, NAME_MAX_BYTES = 4 * NAME_MAX_CHARS };

/* How long a user stays in the cache; a write drops it at once. */
enum { USER_TTL_MS = 60 * 1000 };

typedef struct user {
    int64_t id;
    char name[NAME_MAX_BYTES + 1];
} user;

static const wv_db_field user_fields[] = {
    WV_DB_FIELD(user, id, WV_DB_INT, WV_DB_PRIMARY_KEY | WV_DB_AUTOINCREMENT),
    WV_DB_TEXT_FIELD(user, name, NAME_MAX_BYTES, WV_DB_NOT_NULL),
};
static const wv_db_model user_model = WV_DB_MODEL("users", user, user_fields);

static void write_user(wv_json *j, int64_t id, const char *name, size_t n)
{
    wv_json_object_begin(j);
    wv_json_key(j, "id");
    wv_json_int(j, id);
    wv_json_key(j, "name");
    wv_json_stringn(j, name, n);
    wv_json_object_end(j);
}

/* GET /users: asyncpg's conn.fetch('SELECT id, name FROM users') */
static int list_users(wv_req *req, wv_res *res)
{
    wv_db_rows *rows;
    int rc = wv_db_query(wv_req_db(req), &rows, "SELECT id, name FROM users ORDER BY id");
    if (rc < 0)
        return rc;
    wv_json *j = wv_res_json_writer(res);
    wv_json_array_begin(j);
    for (size_t i = 0; i < wv_db_rows_count(rows); i++) {
        int64_t id;
        const char *name;
        size_t n;
        if (wv_db_get_int(rows, i, 0, &id) < 0 || wv_db_get_text(rows, i, 1, &name, &n) < 0) {
            wv_db_rows_free(rows);
            return -EIO;
        }
        write_user(j, id, name, n);
    }
    wv_json_array_end(j);
    wv_db_rows_free(rows);
    return wv_res_json_send(res, 200);
}

/* The cache key of a user: "user:<id>". */
static wv_str user_key(char buf[32], int64_t id)
{
    int n = snprintf(buf, 32, "user:%lld", (long long)id);
    return (wv_str){buf, (size_t)n};
}

typedef struct user_load {
    wv_db *db;
    int64_t id;
} user_load;

/* The cache's fill: the user as JSON, from the model's get by primary key */
static int load_user(void *arg, wv_buf *value, int64_t *ttl_ms)
{
    user_load *l = arg;
    user u;
    int rc = wv_db_get(l->db, &user_model, wv_db_int(l->id), &u);
    if (rc == -ENOENT)
        return wv_fail(-ENOENT, "no user %lld", (long long)l->id);
    if (rc < 0)
        return rc;
    wv_json j;
    wv_json_init(&j, value);
    write_user(&j, u.id, u.name, strlen(u.name));
    (void)ttl_ms;
    return wv_json_finish(&j);
}

/* GET /users/{id}: the model's get by primary key, read through the cache
 * (§13.9): the fibers asking for one id at once cost one query */
static int get_user(wv_req *req, wv_res *res)
{
    int64_t id;
    int rc = wv_req_param_i64(req, "id", &id);
    if (rc < 0)
        return rc;
    char key[32];
    user_load l = {wv_req_db(req), id};
    wv_buf v = {0};
    rc = wv_cache_get_or_fill(wv_req_cache(req), user_key(key, id), &v, USER_TTL_MS, load_user, &l);
    if (rc >= 0) {
        wv_res_header(res, "X-Cache", rc == 1 ? "hit" : "miss");
        rc = wv_res_send(res, 200, "application/json", v.p, v.n);
    }
    wv_buf_free(&v);
    return rc;
}

/* Characters in valid UTF-8 (the JSON reader checked it). */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* The body's {"name": "..."}: 0 with the name, or 1 once a 422 or 400
 * has been sent. */
static int read_name(wv_req *req, wv_res *res, wv_json_doc **doc, const char **s, size_t *n)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    if (wv_json_parse(body.p ? body.p : "", body.n, doc) < 0)
        return wv_fail(-EINVAL, "the body is not JSON: %s", wv_errmsg());
    const wv_json_val *root = wv_json_doc_root(*doc);
    const wv_json_val *name = wv_json_get(root, "name");
    if (wv_json_type_of(root) != WV_JSON_OBJECT)
        rc = unprocessable(res, "body", NULL, "Input should be a JSON object",
                           "model_attributes_type");
    else if (!name)
        rc = unprocessable(res, "body", "name", "Field required", "missing");
    else if (wv_json_as_string(name, s, n) < 0)
        rc = unprocessable(res, "body", "name", "Input should be a valid string", "string_type");
    else if (*n == 0)
        rc = unprocessable(res, "body", "name", "String should have at least 1 character",
                           "string_too_short");
    else if (utf8_chars(*s, *n) > NAME_MAX_CHARS)
        rc = unprocessable(res, "body", "name", "String should have at most 50 characters",
                           "string_too_long");
    else
        return 0;
    return rc < 0 ? rc : 1;
}

/* POST /users {"name": "Alice"}: Tortoise's User.create(name="Alice") */
static int create_user(wv_req *req, wv_res *res)
{
    wv_json_doc *doc = NULL;
    const char *s;
    size_t n;
    int rc = read_name(req, res, &doc, &s, &n);
    if (rc == 0) {
        user u = {0};
        memcpy(u.name, s, n);
        rc = wv_db_insert(wv_req_db(req), &user_model, &u);
        if (rc == 0) {
            wv_json *j = wv_res_json_writer(res);
            write_user(j, u.id, u.name, n);
            char loc[48];
            snprintf(loc, sizeof loc, "/users/%lld", (long long)u.id);
            wv_res_header(res, "Location", loc);
            rc = wv_res_json_send(res, 201);
        }
    }
    wv_json_doc_free(doc);
    return rc < 0 ? rc : 0;
}

/* PUT /users/{id} {"name": "..."}: rename, and drop the cached copy so the
 * next read sees the write */
static int update_user(wv_req *req, wv_res *res)
{
    int64_t id;
    int rc = wv_req_param_i64(req, "id", &id);
    if (rc < 0)
        return rc;
    wv_json_doc *doc = NULL;
    const char *s;
    size_t n;
    rc = read_name(req, res, &doc, &s, &n);
    if (rc == 0) {
        user u = {.id = id};
        memcpy(u.name, s, n);
        rc = wv_db_update(wv_req_db(req), &user_model, &u, "name");
        if (rc == -ENOENT)
            rc = wv_fail(-ENOENT, "no user %lld", (long long)id);
        char key[32];
        if (rc == 0 && (rc = wv_cache_delete(wv_req_cache(req), user_key(key, id))) >= 0) {
            wv_json *j = wv_res_json_writer(res);
            write_user(j, id, u.name, n);
            rc = wv_res_json_send(res, 200);
        }
    }
    wv_json_doc_free(doc);
    return rc < 0 ? rc : 0;
}

/* DELETE /users/{id}: 204, the cached copy dropped too */
static int delete_user(wv_req *req, wv_res *res)
{
    int64_t id;
    int rc = wv_req_param_i64(req, "id", &id);
    if (rc < 0)
        return rc;
    rc = wv_db_delete(wv_req_db(req), &user_model, wv_db_int(id));
    if (rc == -ENOENT)
        return wv_fail(-ENOENT, "no user %lld", (long long)id);
    char key[32];
    if (rc < 0 || (rc = wv_cache_delete(wv_req_cache(req), user_key(key, id))) < 0)
        return rc;
    return wv_res_send(res, 204, NULL, NULL, 0);
}

/* ------------------------------------------------------------- start */

/* generate_schemas(): CREATE TABLE IF NOT EXISTS on this shard's handle */
static int create_here(void *arg)
{
    int rc = wv_db_create_table(wv_app_db(arg), &user_model);
    if (rc < 0)
        return wv_fail(rc, "creating the users table: %s", wv_errmsg());
    return 0;
}

/* On the first shard alone, then on every shard: a file database is
 * created once (the others find the table), and each shard's own
 * sqlite::memory: database gets its table too. */
static int create_schema(void *arg)
{
    int rc = create_here(arg);
    return rc < 0 ? rc : wv_shard_each(create_here, arg);
}

void s13_3_databases_options(wv_app *app)
{
    wv_app_option(app, "database-url", "DATABASE_URL", WV_OPT_STRING, DEFAULT_DATABASE_URL,
                  "the users' database: sqlite://FILE, sqlite::memory: (one per shard) or "
                  "postgres://user:password@host:port/db");
}

void s13_3_databases(wv_app *app)
{
    wv_app_database(app, wv_app_str(app, "database-url"));
    wv_app_on_start(app, create_schema, app);
    wv_get(app, "/users", list_users);
    wv_get(app, "/users/{id}", get_user);
    wv_put(app, "/users/{id}", update_user);
    wv_delete(app, "/users/{id}", delete_user);
    wv_post(app, "/users", create_user);
}
