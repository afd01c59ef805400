/*
 * The OpenAPI generator (weave/openapi.h): a router with documented routes
 * (nested models, arrays, path/query/header parameters with constraints),
 * groups behind wv_auth_jwt, wv_auth_api_key and wv_ratelimit, read back
 * with weave's JSON reader: paths, parameters, every $ref resolving to a
 * component, security schemes and requirements, the responses the
 * generator infers, hidden and HEAD routes left out, the same bytes twice;
 * the mistakes it refuses; and wv_openapi_serve through the test client.
 */
#include "harness.h"
#include "weave/auth.h"
#include "weave/openapi.h"
#include "weave/ratelimit.h"
#include "weave/schema.h"
#include "weave/testclient.h"

/* ------------------------------------------------------------- the app */

typedef struct address {
    char city[101];
    char zip[11];
} address;
static const wv_db_field address_fields[] = {
    WV_FIELD_TEXT(address, city, .min_chars = 1, .max_chars = 25),
    WV_FIELD_TEXT(address, zip, .pattern = "^[0-9]{5}$", .example = "\"75001\""),
};
static const wv_db_model address_model = WV_SCHEMA_MODEL("Address", address, address_fields);

typedef struct user_in {
    char name[201];
    int64_t age;
    bool has_age;
    char tags[4][33];
    size_t ntags;
    address home;
    address others[3];
    size_t nothers;
} user_in;
static const wv_db_field user_in_fields[] = {
    WV_FIELD_TEXT(user_in, name, .min_chars = 1, .max_chars = 50),
    WV_FIELD_INT(user_in, age, WV_GE(0), WV_LT(150), .flags = WV_DB_NULLABLE,
                 .default_json = "null", WV_PRESENT(user_in, has_age)),
    WV_FIELD_ARRAY(user_in, tags, ntags, &(const wv_db_field)WV_ITEM_TEXT(char[33]),
                   .default_json = "[]"),
    WV_FIELD_OBJECT(user_in, home, &address_model),
    WV_FIELD_ARRAY(user_in, others, nothers,
                   &(const wv_db_field)WV_ITEM_OBJECT(address, &address_model),
                   .default_json = "[]"),
};
static const wv_db_model user_in_model = WV_SCHEMA_MODEL("UserIn", user_in, user_in_fields);

typedef struct user {
    int64_t id;
    char name[201];
} user;
static const wv_db_field user_fields[] = {
    WV_FIELD_INT(user, id),
    WV_FIELD_TEXT(user, name),
};
static const wv_db_model user_model = WV_SCHEMA_MODEL("User", user, user_fields);

static const wv_db_field id_param = {
    .name = "id", .type = WV_DB_INT, .size = sizeof(int64_t), WV_GE(1), .description = "The id"};
static const wv_db_field limit_param = {.name = "limit",
                                        .type = WV_DB_INT,
                                        .size = sizeof(int64_t),
                                        WV_GE(1),
                                        WV_LE(100),
                                        .default_json = "10"};
static const wv_db_field trace_param = {
    .name = "X-Trace", .type = WV_DB_TEXT, .size = 65, .max_chars = 16, .default_json = "\"\""};
static const wv_db_field order_param = {.name = "order",
                                        .type = WV_DB_TEXT,
                                        .size = 8,
                                        WV_ENUM("asc", "desc"),
                                        .default_json = "\"asc\""};

static const wv_route_info create_user_info = {
    .summary = "Create a user",
    .tags = (const char *const[]){"users", NULL},
    .operation_id = "create_user",
    .body = &user_in_model,
    .responses = (const wv_route_response[]){{201, "Created", .model = &user_model}, {0}},
};
static const wv_route_info list_users_info = {
    .summary = "List users",
    .tags = (const char *const[]){"users", NULL},
    .params = (const wv_route_param[]){{"query", &limit_param}, {"query", &order_param}, {0}},
    .responses =
        (const wv_route_response[]){{200, "The users", .model = &user_model, .array = true}, {0}},
};
static const wv_route_info get_user_info = {
    .summary = "Read a user",
    .tags = (const char *const[]){"users", NULL},
    .params = (const wv_route_param[]){{"path", &id_param}, {"header", &trace_param}, {0}},
    .responses = (const wv_route_response[]){{200, NULL, .model = &user_model},
                                             {.status = 404, .description = "No such user"},
                                             {0}},
};
static const wv_route_info put_user_info = {
    .deprecated = true,
    .body = &user_in_model,
    .responses = (const wv_route_response[]){{200, "Replaced", .model = &user_model}, {0}},
};
static const wv_route_info hidden_info = {.hidden = true};
static const wv_route_info items_info = {
    .summary = "Items",
    .responses =
        (const wv_route_response[]){
            {200, "Free-form", .schema = "{\"type\":\"object\",\"additionalProperties\":true}"},
            {0}},
};
static const wv_route_info bad_path_param_info = {
    .params = (const wv_route_param[]){{"path", &id_param}, {0}},
};

static int ok(wv_req *req, wv_res *res)
{
    return wv_res_json(res, 200, "{}");
}

static const char hkey[] = "0123456789abcdef0123456789abcdef";

static wv_router *make_app(void)
{
    wv_router *r = wv_router_new();
    assert_non_null(r);
    assert_int_equal(wv_route_with_info(r, "POST", "/users", ok, NULL, &create_user_info), 0);
    assert_int_equal(wv_get(r, "/users", ok), 0);
    assert_int_equal(wv_route_doc(r, "GET", "/users", &list_users_info), 0);
    assert_int_equal(wv_get(r, "/users/{id}", ok), 0);
    assert_int_equal(wv_route_doc(r, "GET", "/users/{id}", &get_user_info), 0);
    assert_int_equal(wv_route_with_info(r, "PUT", "/users/{id}", ok, NULL, &put_user_info), 0);
    assert_int_equal(wv_route(r, "HEAD", "/users", ok), 0);
    assert_int_equal(wv_route(r, "*", "/any", ok), 0);
    assert_int_equal(wv_get(r, "/files/{path...}", ok), 0);
    assert_int_equal(wv_route_with_info(r, "GET", "/hidden", ok, NULL, &hidden_info), 0);

    wv_router *api = wv_router_group(r, "/api");
    assert_int_equal(
        wv_auth_jwt(api, &(wv_jwt_opts){.hmac_key = hkey,
                                        .scopes = (const char *const[]){"items:read", NULL}}),
        0);
    assert_int_equal(wv_ratelimit(api, &(wv_ratelimit_opts){.name = "api", .rate = 10}), 0);
    assert_int_equal(wv_route_with_info(api, "GET", "/items", ok, NULL, &items_info), 0);

    wv_router *admin = wv_router_group(r, "/admin");
    static const wv_api_key keys[] = {{"ops", "k-0123456789"}};
    assert_int_equal(
        wv_auth_api_key(admin, &(wv_api_key_opts){.query = "api_key", .keys = keys, .nkeys = 1}),
        0);
    assert_int_equal(wv_get(admin, "/config", ok), 0);
    return r;
}

static char *write_doc(const wv_router *r, int *rc)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    static const wv_openapi_server servers[] = {{"http://localhost:8000", "local"}, {0}};
    *rc = wv_openapi_write(
        r, &(wv_openapi_info){.title = "Test", .version = "1.2.3", .servers = servers}, &j);
    if (*rc == 0)
        *rc = wv_json_finish(&j);
    char *s = b.p ? strndup(b.p, b.n) : NULL;
    wv_buf_free(&b);
    return s;
}

static const wv_json_val *at(const wv_json_val *v, const char *path)
{
    /* "paths./users/{id}.get": '.' separates keys (paths hold no '.') */
    char key[256];
    while (v && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        snprintf(key, sizeof key, "%.*s", (int)n, path);
        if (wv_json_type_of(v) == WV_JSON_ARRAY)
            v = wv_json_array_at(v, (size_t)atoi(key));
        else
            v = wv_json_get(v, key);
        path += n + (dot ? 1 : 0);
    }
    return v;
}

static const char *str_at(const wv_json_val *v, const char *path)
{
    const char *s = NULL;
    const wv_json_val *x = at(v, path);
    if (!x || wv_json_as_string(x, &s, NULL) < 0)
        return NULL;
    return s;
}

/* Every "$ref" in v must name a schema of components.schemas. */
static int check_refs(const wv_json_val *root, const wv_json_val *v, int *nrefs)
{
    if (wv_json_type_of(v) == WV_JSON_ARRAY) {
        for (long i = 0; i < wv_json_array_len(v); i++)
            if (check_refs(root, wv_json_array_at(v, (size_t)i), nrefs) < 0)
                return -1;
    } else if (wv_json_type_of(v) == WV_JSON_OBJECT) {
        for (long i = 0; i < wv_json_object_len(v); i++) {
            const char *k;
            size_t kn;
            const wv_json_val *m = wv_json_object_at(v, (size_t)i, &k, &kn);
            if (kn == 4 && memcmp(k, "$ref", 4) == 0) {
                const char *ref = NULL;
                if (wv_json_as_string(m, &ref, NULL) < 0 ||
                    strncmp(ref, "#/components/schemas/", 21) != 0 ||
                    !wv_json_get(at(root, "components.schemas"), ref + 21)) {
                    print_error("dangling $ref %s\n", ref ? ref : "(not a string)");
                    return -1;
                }
                (*nrefs)++;
            } else if (check_refs(root, m, nrefs) < 0) {
                return -1;
            }
        }
    }
    return 0;
}

/* --------------------------------------------------------------- tests */

static void test_document_structure(void **state)
{
    wv_router *r = make_app();
    int rc;
    char *doc = write_doc(r, &rc);
    assert_int_equal(rc, 0);
    wv_json_doc *d = NULL;
    assert_int_equal(wv_json_parse(doc, strlen(doc), &d), 0);
    const wv_json_val *root = wv_json_doc_root(d);

    assert_string_equal(str_at(root, "openapi"), "3.1.0");
    assert_string_equal(str_at(root, "info.title"), "Test");
    assert_string_equal(str_at(root, "info.version"), "1.2.3");
    assert_string_equal(str_at(root, "servers.0.url"), "http://localhost:8000");

    /* paths in registration order; HEAD, "*" and hidden routes left out */
    const wv_json_val *paths = at(root, "paths");
    const char *want[] = {"/users", "/users/{id}", "/files/{path}", "/api/items", "/admin/config"};
    assert_int_equal(wv_json_object_len(paths), ARRAY_LEN(want));
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        const char *k;
        size_t kn;
        wv_json_object_at(paths, i, &k, &kn);
        assert_int_equal(kn, strlen(want[i]));
        assert_memory_equal(k, want[i], kn);
    }
    assert_null(at(root, "paths./users.head"));
    assert_null(at(root, "paths./hidden"));
    assert_null(at(root, "paths./any"));
    /* methods in the Path Item's order: get before post */
    const char *k0;
    wv_json_object_at(at(root, "paths./users"), 0, &k0, NULL);
    assert_memory_equal(k0, "get", 3);

    /* POST /users: body by $ref, 201 by $ref, 422 added */
    assert_string_equal(str_at(root, "paths./users.post.operationId"), "create_user");
    assert_string_equal(str_at(root, "paths./users.post.tags.0"), "users");
    bool b = false;
    assert_int_equal(wv_json_as_bool(at(root, "paths./users.post.requestBody.required"), &b), 0);
    assert_true(b);
    assert_string_equal(
        str_at(root, "paths./users.post.requestBody.content.application/json.schema.$ref"),
        "#/components/schemas/UserIn");
    assert_string_equal(
        str_at(root, "paths./users.post.responses.201.content.application/json.schema.$ref"),
        "#/components/schemas/User");
    assert_string_equal(
        str_at(root, "paths./users.post.responses.422.content.application/json.schema.$ref"),
        "#/components/schemas/HTTPValidationError");
    assert_null(at(root, "paths./users.post.responses.200"));

    /* GET /users: query parameters with their constraints, an array of User */
    assert_string_equal(str_at(root, "paths./users.get.parameters.0.name"), "limit");
    assert_string_equal(str_at(root, "paths./users.get.parameters.0.in"), "query");
    assert_null(at(root, "paths./users.get.parameters.0.required"));
    int64_t n;
    assert_int_equal(wv_json_as_i64(at(root, "paths./users.get.parameters.0.schema.maximum"), &n),
                     0);
    assert_int_equal(n, 100);
    assert_int_equal(wv_json_as_i64(at(root, "paths./users.get.parameters.0.schema.default"), &n),
                     0);
    assert_int_equal(n, 10);
    assert_string_equal(str_at(root, "paths./users.get.parameters.1.schema.enum.1"), "desc");
    assert_string_equal(
        str_at(root, "paths./users.get.responses.200.content.application/json.schema.type"),
        "array");
    assert_string_equal(
        str_at(root, "paths./users.get.responses.200.content.application/json.schema.items.$ref"),
        "#/components/schemas/User");
    assert_non_null(at(root, "paths./users.get.responses.422"));

    /* GET /users/{id}: the declared path parameter, then the header */
    assert_string_equal(str_at(root, "paths./users/{id}.get.parameters.0.name"), "id");
    assert_string_equal(str_at(root, "paths./users/{id}.get.parameters.0.in"), "path");
    assert_string_equal(str_at(root, "paths./users/{id}.get.parameters.0.schema.type"), "integer");
    assert_string_equal(str_at(root, "paths./users/{id}.get.parameters.0.description"), "The id");
    assert_int_equal(wv_json_as_bool(at(root, "paths./users/{id}.get.parameters.0.required"), &b),
                     0);
    assert_true(b);
    assert_string_equal(str_at(root, "paths./users/{id}.get.parameters.1.in"), "header");
    assert_int_equal(
        wv_json_as_i64(at(root, "paths./users/{id}.get.parameters.1.schema.maxLength"), &n), 0);
    assert_int_equal(n, 16);
    assert_string_equal(str_at(root, "paths./users/{id}.get.responses.200.description"), "OK");
    assert_string_equal(str_at(root, "paths./users/{id}.get.responses.404.description"),
                        "No such user");
    assert_null(at(root, "paths./users/{id}.get.responses.404.content"));
    assert_int_equal(wv_json_as_bool(at(root, "paths./users/{id}.put.deprecated"), &b), 0);
    assert_true(b);

    /* an undocumented catch-all: a required string, the default 200, no 422 */
    assert_string_equal(str_at(root, "paths./files/{path}.get.parameters.0.name"), "path");
    assert_string_equal(str_at(root, "paths./files/{path}.get.parameters.0.schema.type"), "string");
    assert_non_null(str_at(root, "paths./files/{path}.get.parameters.0.description"));
    assert_string_equal(str_at(root, "paths./files/{path}.get.responses.200.description"),
                        "Successful Response");
    assert_null(at(root, "paths./files/{path}.get.responses.422"));
    assert_string_equal(str_at(root, "paths./files/{path}.get.operationId"), "get_files__path");

    /* security: the JWT group with its scope and its limiter */
    assert_string_equal(str_at(root, "paths./api/items.get.security.0.HTTPBearer.0"), "items:read");
    assert_non_null(at(root, "paths./api/items.get.responses.401"));
    assert_non_null(at(root, "paths./api/items.get.responses.403"));
    assert_non_null(at(root, "paths./api/items.get.responses.429"));
    assert_null(at(root, "paths./api/items.get.responses.422"));
    assert_string_equal(
        str_at(root, "paths./api/items.get.responses.200.content.application/json.schema.type"),
        "object");
    assert_string_equal(str_at(root, "components.securitySchemes.HTTPBearer.type"), "http");
    assert_string_equal(str_at(root, "components.securitySchemes.HTTPBearer.scheme"), "bearer");
    assert_string_equal(str_at(root, "components.securitySchemes.HTTPBearer.bearerFormat"), "JWT");
    /* the API key: header or query, two alternatives; 401 but no 403 */
    assert_int_equal(wv_json_array_len(at(root, "paths./admin/config.get.security")), 2);
    assert_non_null(at(root, "paths./admin/config.get.security.0.APIKeyHeader"));
    assert_non_null(at(root, "paths./admin/config.get.security.1.APIKeyQuery"));
    assert_non_null(at(root, "paths./admin/config.get.responses.401"));
    assert_null(at(root, "paths./admin/config.get.responses.403"));
    assert_null(at(root, "paths./admin/config.get.responses.429"));
    assert_string_equal(str_at(root, "components.securitySchemes.APIKeyHeader.name"), "X-API-Key");
    assert_string_equal(str_at(root, "components.securitySchemes.APIKeyHeader.in"), "header");
    assert_string_equal(str_at(root, "components.securitySchemes.APIKeyQuery.name"), "api_key");
    assert_null(at(root, "paths./users.get.security"));

    /* components: each model once, by name, the nested Address too */
    const wv_json_val *schemas = at(root, "components.schemas");
    const char *names[] = {"Address", "HTTPError", "HTTPValidationError",
                           "User",    "UserIn",    "ValidationError"};
    assert_int_equal(wv_json_object_len(schemas), ARRAY_LEN(names));
    for (size_t i = 0; i < ARRAY_LEN(names); i++) {
        const char *k;
        size_t kn;
        wv_json_object_at(schemas, i, &k, &kn);
        assert_int_equal(kn, strlen(names[i]));
        assert_memory_equal(k, names[i], kn);
    }
    assert_string_equal(str_at(schemas, "UserIn.properties.home.$ref"),
                        "#/components/schemas/Address");
    assert_string_equal(str_at(schemas, "UserIn.properties.others.items.$ref"),
                        "#/components/schemas/Address");
    assert_string_equal(str_at(schemas, "Address.properties.zip.pattern"), "^[0-9]{5}$");
    int nrefs = 0;
    assert_int_equal(check_refs(root, root, &nrefs), 0);
    assert_true(nrefs >= 10);

    wv_json_doc_free(d);
    /* deterministic: the same router, the same bytes */
    char *again = write_doc(r, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(doc, again);
    free(again);
    free(doc);
    wv_router_free(r);
}

static const wv_db_field other_fields[] = {WV_FIELD_INT(user, id)};
static const wv_db_model other_user = WV_SCHEMA_MODEL("User", user, other_fields);
static const wv_route_info same_name_a = {
    .responses = (const wv_route_response[]){{200, NULL, .model = &user_model}, {0}}};
static const wv_route_info same_name_b = {.body = &other_user};
static const wv_route_info bad_in_info = {
    .params = (const wv_route_param[]){{"body", &limit_param}, {0}}};

static void test_mistakes_are_refused(void **state)
{
    wv_router *r = wv_router_new();
    assert_non_null(r);
    /* a description for a route that is not there */
    assert_int_equal(wv_route_doc(r, "GET", "/nope", &items_info), -ENOENT);
    assert_non_null(strstr(wv_errmsg(), "/nope"));
    assert_int_equal(wv_route_doc(r, "GET", NULL, &items_info), -EINVAL);
    /* a group's pattern is relative to its prefix */
    wv_router *g = wv_router_group(r, "/g");
    assert_int_equal(wv_get(g, "/x", ok), 0);
    assert_int_equal(wv_route_doc(r, "GET", "/x", &items_info), -ENOENT);
    assert_int_equal(wv_route_doc(g, "GET", "/x", &items_info), 0);
    assert_int_equal(wv_route_doc(r, "GET", "/g/x", &items_info), 0);
    assert_int_equal(wv_route_doc(g, "POST", "/x", &items_info), -ENOENT);

    /* a declared path parameter the pattern does not have */
    assert_int_equal(
        wv_route_with_info(r, "GET", "/things/{thing}", ok, NULL, &bad_path_param_info), 0);
    int rc;
    free(write_doc(r, &rc));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "id"));
    assert_int_equal(wv_route_doc(r, "GET", "/things/{thing}", NULL), 0);
    free(write_doc(r, &rc));
    assert_int_equal(rc, 0);

    /* two different models under one name */
    assert_int_equal(wv_route_with_info(r, "GET", "/a", ok, NULL, &same_name_a), 0);
    assert_int_equal(wv_route_with_info(r, "POST", "/a", ok, NULL, &same_name_b), 0);
    free(write_doc(r, &rc));
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "User"));

    /* a model that is not well formed (a TEXT of one byte) */
    static const wv_db_field broken_fields[] = {{.name = "s", .type = WV_DB_TEXT, .size = 1}};
    static const wv_db_model broken = {
        .size = 1, .fields = broken_fields, .nfields = 1, .name = "Broken"};
    static const wv_route_info c = {.body = &broken};
    assert_int_equal(wv_route_doc(r, "POST", "/a", &c), 0);
    free(write_doc(r, &rc));
    assert_int_equal(rc, -EINVAL);
    /* a bad "in" */
    assert_int_equal(wv_route_doc(r, "POST", "/a", &bad_in_info), 0);
    free(write_doc(r, &rc));
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(wv_openapi_write(NULL, NULL, NULL), -EINVAL);
    wv_router_free(r);
}

static void test_two_api_keys_get_two_schemes(void **state)
{
    wv_router *r = wv_router_new();
    static const wv_api_key keys[] = {{"a", "secret-a-0123"}};
    wv_router *g1 = wv_router_group(r, "/one");
    wv_router *g2 = wv_router_group(r, "/two");
    assert_int_equal(wv_auth_api_key(g1, &(wv_api_key_opts){.keys = keys, .nkeys = 1}), 0);
    assert_int_equal(
        wv_auth_api_key(g2, &(wv_api_key_opts){.header = "X-Other", .keys = keys, .nkeys = 1}), 0);
    assert_int_equal(wv_get(g1, "/x", ok), 0);
    assert_int_equal(wv_get(g2, "/x", ok), 0);
    int rc;
    char *doc = write_doc(r, &rc);
    assert_int_equal(rc, 0);
    wv_json_doc *d = NULL;
    assert_int_equal(wv_json_parse(doc, strlen(doc), &d), 0);
    const wv_json_val *root = wv_json_doc_root(d);
    assert_string_equal(str_at(root, "components.securitySchemes.APIKeyHeader.name"), "X-API-Key");
    assert_string_equal(str_at(root, "components.securitySchemes.APIKeyHeader2.name"), "X-Other");
    assert_non_null(at(root, "paths./two/x.get.security.0.APIKeyHeader2"));
    wv_json_doc_free(d);
    free(doc);
    wv_router_free(r);
}

/* ---------------------------------------------------------- serving */

static char docs_dir[64];

static int serve_body(void *arg)
{
    wv_router *r = make_app();
    int rc = wv_openapi_serve(
        r, &(wv_openapi_opts){.info = {.title = "Served <&>"}, .docs_dir = docs_dir});
    REQUIRE_EQ(rc, 0);
    wv_test_client *c = wv_test_client_new(r, NULL);
    REQUIRE(c != NULL);
    wv_test_res *res = NULL;
    CHECK_EQ(wv_test_get(c, "/openapi.json", &res), 0);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 200);
        CHECK(wv_str_eq_cstr(wv_test_res_header(res, "Content-Type"), "application/json"));
        const wv_json_val *root = wv_test_res_json(res);
        CHECK(root != NULL);
        CHECK_STR_EQ(str_at(root, "info.title"), "Served <&>");
        CHECK(at(root, "paths./users") != NULL);
        /* its own routes are hidden */
        CHECK(at(root, "paths./openapi.json") == NULL);
        CHECK(at(root, "paths./docs") == NULL);
        CHECK(at(root, "paths./docs/{path}") == NULL);
    }
    wv_test_res_free(res);
    /* cached: the second answer is the same bytes */
    wv_test_res *r1 = NULL, *r2 = NULL;
    CHECK_EQ(wv_test_get(c, "/openapi.json", &r1), 0);
    CHECK_EQ(wv_test_get(c, "/openapi.json", &r2), 0);
    if (r1 && r2) {
        wv_str b1 = wv_test_res_body(r1), b2 = wv_test_res_body(r2);
        CHECK(b1.n > 1000 && b1.n == b2.n && memcmp(b1.p, b2.p, b1.n) == 0);
    }
    wv_test_res_free(r1);
    wv_test_res_free(r2);

    CHECK_EQ(wv_test_get(c, "/docs", &res), 0);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 200);
        wv_str body = wv_test_res_body(res);
        char *html = strndup(body.p, body.n);
        CHECK(strstr(html, "data-openapi-url=\"/openapi.json\"") != NULL);
        CHECK(strstr(html, "<script src=\"/docs/swagger-ui-bundle.js\"></script>") != NULL);
        CHECK(strstr(html, "Served &lt;&amp;&gt; - Swagger UI") != NULL);
        /* no inline script: every <script> has a src */
        for (const char *p = html; (p = strstr(p, "<script")) != NULL; p++)
            CHECK(strncmp(p, "<script src=", 12) == 0);
        free(html);
    }
    wv_test_res_free(res);
    CHECK_EQ(wv_test_get(c, "/docs/weave-docs.js", &res), 0);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 200);
        CHECK(wv_str_eq_cstr(wv_test_res_body(res), "init();\n"));
    }
    wv_test_res_free(res);
    CHECK_EQ(wv_test_get(c, "/docs/../../etc/passwd", &res), 0);
    if (res)
        CHECK_EQ(wv_test_res_status(res), 404);
    wv_test_res_free(res);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_serve_document_and_docs_page(void **state)
{
    snprintf(docs_dir, sizeof docs_dir, "/tmp/weave-openapi-XXXXXX");
    assert_non_null(mkdtemp(docs_dir));
    write_file(docs_dir, "swagger-ui-bundle.js", "bundle();\n");
    write_file(docs_dir, "swagger-ui.css", "body{}\n");
    /* without the initializer the page cannot work: refused */
    wv_router *r = wv_router_new();
    assert_int_equal(wv_openapi_serve(r, &(wv_openapi_opts){.docs_dir = docs_dir}), -ENOENT);
    assert_non_null(strstr(wv_errmsg(), "weave-docs.js"));
    assert_int_equal(wv_openapi_serve(r, &(wv_openapi_opts){.openapi_path = "x"}), -EINVAL);
    wv_router_free(r);
    write_file(docs_dir, "weave-docs.js", "init();\n");

    assert_int_equal(run_in_rt(1, serve_body, NULL), 0);
    assert_checks_passed();

    const char *files[] = {"swagger-ui-bundle.js", "swagger-ui.css", "weave-docs.js"};
    for (size_t i = 0; i < ARRAY_LEN(files); i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", docs_dir, files[i]);
        unlink(path);
    }
    rmdir(docs_dir);
}

/* Without docs_dir only the document is served. */
static int no_docs_body(void *arg)
{
    wv_router *r = make_app();
    REQUIRE_EQ(wv_openapi_serve(r, &(wv_openapi_opts){.openapi_path = "/api.json"}), 0);
    REQUIRE_EQ(wv_openapi_serve(r, &(wv_openapi_opts){.openapi_path = "/api.json"}), -EEXIST);
    wv_test_client *c = wv_test_client_new(r, NULL);
    wv_test_res *res = NULL;
    CHECK_EQ(wv_test_get(c, "/api.json", &res), 0);
    if (res)
        CHECK_EQ(wv_test_res_status(res), 200);
    wv_test_res_free(res);
    CHECK_EQ(wv_test_get(c, "/docs", &res), 0);
    if (res)
        CHECK_EQ(wv_test_res_status(res), 404);
    wv_test_res_free(res);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_serve_without_docs(void **state)
{
    assert_int_equal(run_in_rt(1, no_docs_body, NULL), 0);
    assert_checks_passed();
}

int main(int argc, char **argv)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document_structure),
        cmocka_unit_test(test_mistakes_are_refused),
        cmocka_unit_test(test_two_api_keys_get_two_schemes),
        cmocka_unit_test(test_serve_document_and_docs_page),
        cmocka_unit_test(test_serve_without_docs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
