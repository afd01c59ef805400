/*
 * A documented API for the OpenAPI tests (tests/integration/test_openapi.py
 * drives tests/openapi/openapi.test.mjs against it): every input is
 * validated through the schema module with the same descriptors the
 * description is written from, so a contract test can check that what the
 * server answers is what /openapi.json says. Groups behind a bearer JWT
 * (HMAC key from $HMAC_KEY), an API key ($API_KEY) and a rate limit.
 * Prints "listening on PORT" once it serves; $DOCS_DIR serves /docs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weave/auth.h"
#include "weave/openapi.h"
#include "weave/ratelimit.h"
#include "weave/schema.h"

typedef struct address {
    char city[101];
    char zip[11];
} address;
static const wv_db_field address_fields[] = {
    WV_FIELD_TEXT(address, city, .min_chars = 1, .max_chars = 25, .example = "\"Paris\""),
    WV_FIELD_TEXT(address, zip, .pattern = "^[0-9]{5}$", .example = "\"75001\""),
};
static const wv_db_model address_model = WV_SCHEMA_MODEL("Address", address, address_fields);

typedef struct user_in {
    char name[201];
    int64_t age;
    bool has_age;
    char role[16];
    char tags[4][33];
    size_t ntags;
    address home;
} user_in;
static const wv_db_field user_in_fields[] = {
    WV_FIELD_TEXT(user_in, name, .min_chars = 1, .max_chars = 50, .description = "Display name"),
    WV_FIELD_INT(user_in, age, WV_GE(0), WV_LT(150), .flags = WV_DB_NULLABLE,
                 .default_json = "null", WV_PRESENT(user_in, has_age)),
    WV_FIELD_TEXT(user_in, role, WV_ENUM("admin", "member"), .default_json = "\"member\""),
    WV_FIELD_ARRAY(user_in, tags, ntags, &(const wv_db_field)WV_ITEM_TEXT(char[33]), .max_items = 3,
                   .default_json = "[]"),
    WV_FIELD_OBJECT(user_in, home, &address_model),
};
static const wv_db_model user_in_model = WV_SCHEMA_MODEL("UserIn", user_in, user_in_fields);

typedef struct user {
    int64_t id;
    char name[201];
    char role[16];
} user;
static const wv_db_field user_fields[] = {
    WV_FIELD_INT(user, id, WV_GE(1)),
    WV_FIELD_TEXT(user, name),
    WV_FIELD_TEXT(user, role, WV_ENUM("admin", "member")),
};
static const wv_db_model user_model = WV_SCHEMA_MODEL("User", user, user_fields);

static const wv_db_field id_param = {.name = "id",
                                     .type = WV_DB_INT,
                                     .size = sizeof(int64_t),
                                     WV_GE(1),
                                     WV_LE(1000000),
                                     .description = "The user's id (404 above 1000)"};
static const wv_db_field limit_param = {.name = "limit",
                                        .type = WV_DB_INT,
                                        .size = sizeof(int64_t),
                                        WV_GE(1),
                                        WV_LE(100),
                                        .default_json = "2"};
static const wv_db_field trace_param = {.name = "X-Trace",
                                        .type = WV_DB_TEXT,
                                        .size = 65,
                                        .max_chars = 16,
                                        .pattern = "^[a-z0-9]+$",
                                        .example = "\"abc123\"",
                                        .default_json = "\"none\""};

static const wv_route_info create_user_info = {
    .summary = "Create a user",
    .tags = (const char *const[]){"users", NULL},
    .body = &user_in_model,
    .responses = (const wv_route_response[]){{201, "Created", .model = &user_model}, {0}},
};
static const wv_route_info list_users_info = {
    .summary = "List users",
    .tags = (const char *const[]){"users", NULL},
    .params = (const wv_route_param[]){{"query", &limit_param}, {0}},
    .responses =
        (const wv_route_response[]){{200, "The first users", .model = &user_model, .array = true},
                                    {0}},
};
static const wv_route_info get_user_info = {
    .summary = "Read a user",
    .tags = (const char *const[]){"users", NULL},
    .params = (const wv_route_param[]){{"path", &id_param}, {"header", &trace_param}, {0}},
    .responses = (const wv_route_response[]){{200, NULL, .model = &user_model},
                                             {.status = 404,
                                              .description = "No such user",
                                              .schema = "{\"type\":\"object\",\"properties\":"
                                                        "{\"detail\":{\"type\":\"string\"}},"
                                                        "\"required\":[\"detail\"]}"},
                                             {0}},
};
static const wv_route_info me_info = {
    .summary = "The token's subject",
    .tags = (const char *const[]){"auth", NULL},
    .responses =
        (const wv_route_response[]){
            {200, "Who the token says",
             .schema = "{\"type\":\"object\",\"properties\":{\"sub\":{\"type\":\"string\"}},"
                       "\"required\":[\"sub\"]}"},
            {0}},
};
static const wv_route_info config_info = {
    .summary = "The configuration (API key)",
    .tags = (const char *const[]){"admin", NULL},
    .responses =
        (const wv_route_response[]){{200, "The configuration", .schema = "{\"type\":\"object\"}"},
                                    {0}},
};
static const wv_route_info ping_info = {
    .summary = "Rate limited",
    .responses =
        (const wv_route_response[]){
            {200, "pong",
             .schema = "{\"type\":\"object\",\"properties\":{\"pong\":{\"const\":true}},"
                       "\"required\":[\"pong\"]}"},
            {0}},
};

static int create_user(wv_req *req, wv_res *res)
{
    user_in in;
    wv_schema_errors errs = {0};
    int rc = wv_schema_decode_body(req, &user_in_model, &in, &errs);
    if (rc == -EINVAL) {
        rc = wv_res_unprocessable(res, &errs);
    } else if (rc == 0) {
        user u = {.id = 7};
        memcpy(u.name, in.name, sizeof u.name);
        memcpy(u.role, in.role, sizeof u.role);
        wv_json *j = wv_res_json_writer(res);
        rc = wv_schema_encode(&user_model, &u, j);
        rc = rc < 0 ? rc : wv_res_json_send(res, 201);
    }
    wv_schema_errors_free(&errs);
    return rc;
}

/* A query or header parameter through the schema module; s NULL: absent. */
static int param(const wv_db_field *f, const char *where, wv_str s, void *out,
                 wv_schema_errors *errs)
{
    return wv_schema_param(f, where, s.p, s.n, out, errs);
}

static int list_users(wv_req *req, wv_res *res)
{
    int64_t limit = 0;
    wv_schema_errors errs = {0};
    wv_str q = {0};
    wv_req_query_param(req, "limit", &q);
    int rc = param(&limit_param, "query", q, &limit, &errs);
    if (rc == -EINVAL) {
        rc = wv_res_unprocessable(res, &errs);
    } else if (rc == 0) {
        wv_json *j = wv_res_json_writer(res);
        wv_json_array_begin(j);
        for (int64_t i = 1; i <= limit && i <= 3 && rc == 0; i++) {
            user u = {.id = i};
            snprintf(u.name, sizeof u.name, "user %lld", (long long)i);
            snprintf(u.role, sizeof u.role, "member");
            rc = wv_schema_encode(&user_model, &u, j);
        }
        wv_json_array_end(j);
        rc = rc < 0 ? rc : wv_res_json_send(res, 200);
    }
    wv_schema_errors_free(&errs);
    return rc;
}

static int get_user(wv_req *req, wv_res *res)
{
    int64_t id = 0;
    char trace[65];
    wv_schema_errors errs = {0};
    wv_str s = {0};
    wv_req_param(req, "id", &s);
    int rc = param(&id_param, "path", s, &id, &errs);
    wv_str h = wv_req_header(req, "X-Trace");
    int rc2 = param(&trace_param, "header", h, trace, &errs);
    if (rc == -EINVAL || rc2 == -EINVAL) {
        rc = wv_res_unprocessable(res, &errs);
    } else if (rc == 0 && rc2 == 0) {
        if (id > 1000) {
            rc = wv_res_error(res, wv_fail(-ENOENT, "no user %lld", (long long)id));
        } else {
            user u = {.id = id};
            snprintf(u.name, sizeof u.name, "user %lld", (long long)id);
            snprintf(u.role, sizeof u.role, "admin");
            wv_json *j = wv_res_json_writer(res);
            rc = wv_schema_encode(&user_model, &u, j);
            rc = rc < 0 ? rc : wv_res_json_send(res, 200);
        }
    } else if (rc == 0) {
        rc = rc2;
    }
    wv_schema_errors_free(&errs);
    return rc;
}

static int me(wv_req *req, wv_res *res)
{
    wv_str sub = wv_auth_subject(req);
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "sub");
    wv_json_stringn(j, sub.p ? sub.p : "", sub.p ? sub.n : 0);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

static int config(wv_req *req, wv_res *res)
{
    return wv_res_json(res, 200, "{\"debug\":false}");
}

static int ping(wv_req *req, wv_res *res)
{
    return wv_res_json(res, 200, "{\"pong\":true}");
}

static int files(wv_req *req, wv_res *res)
{
    return wv_res_json(res, 200, "{}");
}

typedef struct announce {
    wv_event *ready;
    int *port;
} announce;

static int announce_port(void *arg)
{
    announce *a = arg;
    if (wv_event_wait(a->ready) == 0)
        printf("listening on %d\n", *a->port);
    return 0;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) < 0) {                                                                          \
            fprintf(stderr, "openapi_test_server: %s: %s\n", #expr, wv_errmsg());                  \
            wv_router_free(r);                                                                     \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static int serve(void *arg)
{
    (void)arg;
    wv_router *r = wv_router_new();
    TRY(wv_route_with_info(r, "POST", "/users", create_user, NULL, &create_user_info));
    TRY(wv_route_with_info(r, "GET", "/users", list_users, NULL, &list_users_info));
    TRY(wv_route_with_info(r, "GET", "/users/{id}", get_user, NULL, &get_user_info));
    TRY(wv_get(r, "/files/{path...}", files)); /* undocumented: inferred */

    const char *hmac = getenv("HMAC_KEY") ? getenv("HMAC_KEY") : "0123456789abcdef0123456789abcdef";
    wv_router *jwt = wv_router_group(r, "/auth");
    TRY(wv_auth_jwt(
        jwt, &(wv_jwt_opts){.hmac_key = hmac, .scopes = (const char *const[]){"me:read", NULL}}));
    TRY(wv_route_with_info(jwt, "GET", "/me", me, NULL, &me_info));

    wv_router *admin = wv_router_group(r, "/admin");
    const char *key = getenv("API_KEY") ? getenv("API_KEY") : "test-key-0123456789";
    TRY(wv_auth_api_key(admin,
                        &(wv_api_key_opts){.keys = (wv_api_key[]){{"test", key}}, .nkeys = 1}));
    TRY(wv_route_with_info(admin, "GET", "/config", config, NULL, &config_info));

    wv_router *limited = wv_router_group(r, "/limited");
    TRY(wv_ratelimit(limited, &(wv_ratelimit_opts){.name = "limited", .rate = 1, .burst = 2}));
    TRY(wv_route_with_info(limited, "GET", "/ping", ping, NULL, &ping_info));

    TRY(wv_openapi_serve(
        r, &(wv_openapi_opts){.info = {.title = "openapi test server", .version = "1.0.0"},
                              .docs_dir = getenv("DOCS_DIR")}));

    int port = 0;
    const char *p = getenv("PORT");
    wv_event ready = {0};
    wv_http_opts o = {.port = p ? atoi(p) : 0, .bound_port = &port, .ready = &ready};
    announce a = {&ready, &port};
    wv_spawn(announce_port, &a, NULL);
    int rc = wv_http_serve(r, &o);
    if (rc < 0)
        fprintf(stderr, "openapi_test_server: %s\n", wv_errmsg());
    wv_router_free(r);
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    return wv_main(NULL, serve, NULL);
}
