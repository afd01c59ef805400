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
 * Every input is declared (include/weave/schema.h): the path's {id} is an integer, and POST
 * /users and PUT /users/{id} take {"name": "..."}, 1 to 50 characters (of UTF-8) (UserIn
 * below). Anything else is FastAPI's 422 with every error at once ({"detail": [{"type":
 * "int_parsing", "loc": ["path", "id"], ...}, {"type": ..., "loc": ["body", "name"], "msg": ...,
 * "input": ..., "ctx": ...}]}), a body that is not JSON included (json_invalid). A user is
 * answered as the User model (the table's own declaration).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/cache.h>
#include <weave/db.h>
#include <weave/json.h>
#include <weave/schema.h>

#include "chapter13.h"

/* Tortoise's CharField(max_length=50) counts characters: 50 of them are
 * up to 200 bytes of UTF-8 */
enum { NAME_MAX_CHARS = 50, NAME_MAX_BYTES = 4 * NAME_MAX_CHARS };

/* How long a user stays in the cache; a write drops it at once. */
enum { USER_TTL_MS = 60 * 1000 };

/* The table and the response model at once: Tortoise's User, pydantic's
 *     class User(BaseModel):
 *         id: int
 *         name: str = Field(min_length=1, max_length=50) */
typedef struct user {
    int64_t id;
    char name[NAME_MAX_BYTES + 1];
} user;

static const wv_db_field user_fields[] = {
    WV_FIELD_INT(user, id, .flags = WV_DB_PRIMARY_KEY | WV_DB_AUTOINCREMENT,
                 .description = "The user's id, given by the database", .example = "1"),
    WV_FIELD_TEXT(user, name, .flags = WV_DB_NOT_NULL, .max_len = NAME_MAX_BYTES, .min_chars = 1,
                  .max_chars = NAME_MAX_CHARS, .description = "The user's name",
                  .example = "\"Alice\""),
};
static const wv_db_model user_model = {.table = "users",
                                       .size = sizeof(user),
                                       .fields = user_fields,
                                       .nfields = sizeof user_fields / sizeof user_fields[0],
                                       .name = "User",
                                       .description = "A user of the chapter's service"};

/* GET, PUT and DELETE /users/{id}: FastAPI's user_id: int, named id */
static const wv_db_field user_id_param = {
    .name = "id", .type = WV_DB_INT, .size = sizeof(int64_t), .description = "The user's id"};

/* The user as the User model's JSON */
static int write_user(wv_json *j, const user *u)
{
    return wv_schema_encode(&user_model, u, j);
}

/* GET /users: asyncpg's conn.fetch('SELECT id, name FROM users') */
static int list_users(wv_req *req, wv_res *res)
{
    wv_db_rows *rows;
    int rc = wv_db_query(wv_req_db(req), &rows, "SELECT id, name FROM users ORDER BY id");
    if (rc < 0)
        return rc;
    rc = 0;
    wv_json *j = wv_res_json_writer(res);
    wv_json_array_begin(j);
    for (size_t i = 0; rc == 0 && i < wv_db_rows_count(rows); i++) {
        user u;
        const char *name;
        size_t n;
        if (wv_db_get_int(rows, i, 0, &u.id) < 0 || wv_db_get_text(rows, i, 1, &name, &n) < 0 ||
            n >= sizeof u.name) {
            rc = -EIO;
            break;
        }
        memcpy(u.name, name, n);
        u.name[n] = '\0';
        rc = write_user(j, &u);
    }
    wv_json_array_end(j);
    wv_db_rows_free(rows);
    return rc < 0 ? rc : wv_res_json_send(res, 200);
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
    rc = write_user(&j, &u);
    (void)ttl_ms;
    int fin = wv_json_finish(&j);
    return rc < 0 ? rc : fin;
}

/* GET /users/{id}: the model's get by primary key, read through the cache
 * (§13.9): the fibers asking for one id at once cost one query */
static int get_user(wv_req *req, wv_res *res)
{
    int64_t id;
    wv_schema_errors errs = {0};
    int rc = input_end(res, input_path(req, &user_id_param, &id, &errs), &errs);
    if (rc != 0)
        return rc < 0 ? rc : 0;
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

/* The body of POST /users and PUT /users/{id}, declared once
 * (include/weave/schema.h): pydantic's
 *     class UserIn(BaseModel):
 *         name: str = Field(min_length=1, max_length=50)
 * Characters are counted, not bytes: the array has room for 50 of them in
 * UTF-8. */
typedef struct user_in {
    char name[NAME_MAX_BYTES + 1];
} user_in;

static const wv_db_field user_in_fields[] = {
    WV_FIELD_TEXT(user_in, name, .min_chars = 1, .max_chars = NAME_MAX_CHARS,
                  .description = "The user's name: 1 to 50 characters", .example = "\"Alice\""),
};
static const wv_db_model user_in_model = {.size = sizeof(user_in),
                                          .fields = user_in_fields,
                                          .nfields = 1,
                                          .name = "UserIn",
                                          .description = "A user to create, or a new name"};

/* POST /users {"name": "Alice"}: Tortoise's User.create(name="Alice") */
static int create_user(wv_req *req, wv_res *res)
{
    user_in in;
    wv_schema_errors errs = {0};
    int rc = input_end(res, wv_schema_decode_body(req, &user_in_model, &in, &errs), &errs);
    if (rc == 0) {
        user u = {0};
        memcpy(u.name, in.name, sizeof u.name);
        rc = wv_db_insert(wv_req_db(req), &user_model, &u);
        if (rc == 0) {
            wv_json *j = wv_res_json_writer(res);
            rc = write_user(j, &u);
            char loc[48];
            snprintf(loc, sizeof loc, "/users/%lld", (long long)u.id);
            if (rc == 0 && (rc = wv_res_header(res, "Location", loc)) == 0)
                rc = wv_res_json_send(res, 201);
        }
    }
    return rc < 0 ? rc : 0;
}

/* PUT /users/{id} {"name": "..."}: rename, and drop the cached copy so the
 * next read sees the write */
static int update_user(wv_req *req, wv_res *res)
{
    int64_t id;
    user_in in;
    wv_schema_errors errs = {0};
    int rc = input_path(req, &user_id_param, &id, &errs);
    rc = input_fold(rc, wv_schema_decode_body(req, &user_in_model, &in, &errs));
    rc = input_end(res, rc, &errs);
    if (rc == 0) {
        user u = {.id = id};
        memcpy(u.name, in.name, sizeof u.name);
        rc = wv_db_update(wv_req_db(req), &user_model, &u, "name");
        if (rc == -ENOENT)
            rc = wv_fail(-ENOENT, "no user %lld", (long long)id);
        char key[32];
        if (rc == 0 && (rc = wv_cache_delete(wv_req_cache(req), user_key(key, id))) >= 0) {
            wv_json *j = wv_res_json_writer(res);
            if ((rc = write_user(j, &u)) == 0)
                rc = wv_res_json_send(res, 200);
        }
    }
    return rc < 0 ? rc : 0;
}

/* DELETE /users/{id}: 204, the cached copy dropped too */
static int delete_user(wv_req *req, wv_res *res)
{
    int64_t id;
    wv_schema_errors errs = {0};
    int rc = input_end(res, input_path(req, &user_id_param, &id, &errs), &errs);
    if (rc != 0)
        return rc < 0 ? rc : 0;
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
