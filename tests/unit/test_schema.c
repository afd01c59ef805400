/*
 * The schema module: decoding and validation into C structs with every
 * error at once (pydantic v2's types and messages, exact locations),
 * pydantic's lax coercions, nullable and defaulted fields, the limits
 * (errors, depth, size), encoding and the round trip, the JSON Schema
 * read back and checked key by key, parameters, the 422 body, and the
 * model checks (including the database refusing a body-only model).
 *
 * Nothing here needs the runtime.
 */
#include "harness.h"

#include <math.h>

#include "weave/db.h"
#include "weave/json.h"
#include "weave/schema.h"

/* ------------------------------------------------------------- models */

typedef struct address {
    char city[101];
    char zip[21];
} address;

static const wv_db_field address_fields[] = {
    WV_FIELD_TEXT(address, city, .min_chars = 1, .max_chars = 25),
    WV_FIELD_TEXT(address, zip, .pattern = "^[0-9]{5}$", .description = "five digits"),
};
static const wv_db_model address_model = WV_SCHEMA_MODEL("Address", address, address_fields);

typedef struct item {
    char sku[33];
    int64_t qty;
} item;

static const wv_db_field item_fields[] = {
    WV_FIELD_TEXT(item, sku, .min_chars = 1, .max_chars = 8),
    WV_FIELD_INT(item, qty, WV_GE(1)),
};
static const wv_db_model item_model = WV_SCHEMA_MODEL("Item", item, item_fields);

typedef struct user_in {
    int64_t id;
    char name[201];
    double score;
    bool active;
    char role[33];
    int64_t age;
    bool has_age;
    char tags[4][17];
    size_t ntags;
    int64_t created;
    unsigned char avatar[16];
    size_t navatar;
    address home;
    item items[3];
    size_t nitems;
} user_in;

static const wv_db_field user_fields[] = {
    WV_FIELD_INT(user_in, id, WV_GE(0), .example = "7"),
    WV_FIELD_TEXT(user_in, name, .min_chars = 1, .max_chars = 50, .description = "the name"),
    WV_FIELD_FLOAT(user_in, score, WV_GT(0), WV_LE(100), .default_json = "50.5"),
    WV_FIELD_BOOL(user_in, active, .default_json = "true"),
    WV_FIELD_TEXT(user_in, role, WV_ENUM("admin", "user", "guest"), .default_json = "\"user\""),
    WV_FIELD_INT(user_in, age, WV_GE(0), WV_LT(150), .flags = WV_DB_NULLABLE,
                 .default_json = "null", WV_PRESENT(user_in, has_age)),
    WV_FIELD_ARRAY(user_in, tags, ntags, &(const wv_db_field)WV_ITEM_TEXT(char[17], .max_chars = 4),
                   .max_items = 3, .default_json = "[]"),
    WV_FIELD_TIME(user_in, created, .default_json = "\"2026-01-01T00:00:00Z\""),
    WV_FIELD_BLOB(user_in, avatar, navatar, .default_json = "\"\""),
    WV_FIELD_OBJECT(user_in, home, &address_model),
    WV_FIELD_ARRAY(user_in, items, nitems, &(const wv_db_field)WV_ITEM_OBJECT(item, &item_model),
                   .min_items = 1),
};
static const wv_db_model user_model = WV_SCHEMA_MODEL("UserIn", user_in, user_fields);

#define VALID_HOME  "\"home\":{\"city\":\"Paris\",\"zip\":\"75001\"}"
#define VALID_ITEMS "\"items\":[{\"sku\":\"a\",\"qty\":1}]"

/* ------------------------------------------------------------ helpers */

static int decode(const wv_db_model *m, const char *json, void *out, wv_schema_errors *e)
{
    return wv_schema_decode(m, json, strlen(json), out, e);
}

/* Error i is (type, loc, msg); ctx and input checked when not NULL. */
static void expect_error(const wv_schema_errors *e, size_t i, const char *type, const char *loc,
                         const char *msg)
{
    assert_true(i < wv_schema_errors_count(e));
    assert_string_equal(wv_schema_error_type(e, i), type);
    assert_string_equal(wv_schema_error_loc(e, i), loc);
    assert_string_equal(wv_schema_error_msg(e, i), msg);
}

/* One field set to value (JSON text) in an otherwise valid body: exactly
 * one error, (type, loc, msg). */
static void one_bad(const char *member, const char *type, const char *loc, const char *msg)
{
    char body[1024];
    snprintf(body, sizeof body, "{\"id\":1,\"name\":\"a\"," VALID_HOME "," VALID_ITEMS ",%s}",
             member);
    user_in u;
    wv_schema_errors e = {0};
    int rc = decode(&user_model, body, &u, &e);
    if (rc != -EINVAL || wv_schema_errors_count(&e) != 1) {
        print_error("body %s: rc %d, %zu errors, first %s\n", body, rc, wv_schema_errors_count(&e),
                    wv_schema_error_type(&e, 0) ? wv_schema_error_type(&e, 0) : "-");
        fail();
    }
    expect_error(&e, 0, type, loc, msg);
    wv_schema_errors_free(&e);
}

static const char *text_of(wv_buf *b)
{
    assert_int_equal(wv_buf_append(b, "", 1), 0);
    b->n--;
    return b->p;
}

/* ---------------------------------------------------------- decoding */

static void test_decode_valid_body_fills_every_field(void **state)
{
    const char *body =
        "{\"id\":7,\"name\":\"Zoë\",\"score\":99.5,\"active\":false,\"role\":\"admin\",\"age\":30,"
        "\"tags\":[\"a\",\"bcde\"],\"created\":\"2026-11-25T20:30:01.5+01:00\","
        "\"avatar\":\"AAEC\"," VALID_HOME ",\"items\":[{\"sku\":\"x1\",\"qty\":2},"
        "{\"sku\":\"x2\",\"qty\":3}]}";
    user_in u;
    wv_schema_errors e = {0};
    assert_int_equal(decode(&user_model, body, &u, &e), 0);
    assert_int_equal(wv_schema_errors_count(&e), 0);
    assert_int_equal(u.id, 7);
    assert_string_equal(u.name, "Zoë");
    assert_true(u.score == 99.5);
    assert_false(u.active);
    assert_string_equal(u.role, "admin");
    assert_int_equal(u.age, 30);
    assert_true(u.has_age);
    assert_int_equal(u.ntags, 2);
    assert_string_equal(u.tags[1], "bcde");
    /* 19:30:01.5 UTC */
    assert_int_equal(u.created, INT64_C(1795635001500000));
    assert_int_equal(u.navatar, 3);
    assert_memory_equal(u.avatar, "\0\1\2", 3);
    assert_string_equal(u.home.zip, "75001");
    assert_int_equal(u.nitems, 2);
    assert_int_equal(u.items[1].qty, 3);
    wv_schema_errors_free(&e);
}

static void test_decode_defaults_fill_absent_fields(void **state)
{
    user_in u;
    wv_schema_errors e = {0};
    assert_int_equal(
        decode(&user_model, "{\"id\":1,\"name\":\"a\"," VALID_HOME "," VALID_ITEMS "}", &u, &e), 0);
    assert_true(u.score == 50.5);
    assert_true(u.active);
    assert_string_equal(u.role, "user");
    assert_int_equal(u.age, 0);
    assert_false(u.has_age);
    assert_int_equal(u.ntags, 0);
    assert_int_equal(u.created, INT64_C(1767225600000000));
    assert_int_equal(u.navatar, 0);
    wv_schema_errors_free(&e);
}

static void test_decode_null_for_a_nullable_field_is_not_present(void **state)
{
    user_in u;
    wv_schema_errors e = {0};
    assert_int_equal(decode(&user_model,
                            "{\"id\":1,\"name\":\"a\",\"age\":null," VALID_HOME "," VALID_ITEMS "}",
                            &u, &e),
                     0);
    assert_false(u.has_age);
    /* null for a field that is not nullable is its type's error */
    one_bad("\"id\":null", "int_type", "[\"body\",\"id\"]", "Input should be a valid integer");
    one_bad("\"home\":null", "model_attributes_type", "[\"body\",\"home\"]",
            "Input should be a valid dictionary or object to extract fields from");
    wv_schema_errors_free(&e);
}

static void test_decode_lax_coercions_as_pydantic(void **state)
{
    static const struct {
        const char *member;
        int64_t id;
        bool active;
        double score;
    } cases[] = {
        {"\"id\":\"5\"", 5, true, 50.5},   {"\"id\":\" -0 \"", 0, true, 50.5},
        {"\"id\":5.0", 5, true, 50.5},     {"\"id\":\"5.00\"", 5, true, 50.5},
        {"\"id\":true", 1, true, 50.5},    {"\"active\":\"Off\"", 1, false, 50.5},
        {"\"active\":0", 1, false, 50.5},  {"\"active\":\"YES\"", 1, true, 50.5},
        {"\"active\":1.0", 1, true, 50.5}, {"\"score\":\"3.5\"", 1, true, 3.5},
        {"\"score\":true", 1, true, 1.0},  {"\"score\":1e2", 1, true, 100.0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"id\":1,\"name\":\"a\"," VALID_HOME "," VALID_ITEMS ",%s}",
                 cases[i].member);
        user_in u;
        wv_schema_errors e = {0};
        int rc = decode(&user_model, body, &u, &e);
        if (rc != 0)
            print_error("%s: %s\n", body, wv_schema_error_msg(&e, 0));
        assert_int_equal(rc, 0);
        assert_int_equal(u.id, cases[i].id);
        assert_int_equal(u.active, cases[i].active);
        assert_true(u.score == cases[i].score);
        wv_schema_errors_free(&e);
    }
}

static void test_decode_every_error_type_with_pydantic_words(void **state)
{
    one_bad("\"id\":\"abc\"", "int_parsing", "[\"body\",\"id\"]",
            "Input should be a valid integer, unable to parse string as an integer");
    one_bad("\"id\":1.5", "int_from_float", "[\"body\",\"id\"]",
            "Input should be a valid integer, got a number with a fractional part");
    one_bad("\"id\":[]", "int_type", "[\"body\",\"id\"]", "Input should be a valid integer");
    one_bad("\"id\":-1", "greater_than_equal", "[\"body\",\"id\"]",
            "Input should be greater than or equal to 0");
    one_bad("\"id\":99999999999999999999", "less_than_equal", "[\"body\",\"id\"]",
            "Input should be less than or equal to 9223372036854775807");
    one_bad("\"score\":0", "greater_than", "[\"body\",\"score\"]",
            "Input should be greater than 0");
    one_bad("\"score\":100.5", "less_than_equal", "[\"body\",\"score\"]",
            "Input should be less than or equal to 100");
    one_bad("\"score\":\"x\"", "float_parsing", "[\"body\",\"score\"]",
            "Input should be a valid number, unable to parse string as a number");
    one_bad("\"score\":\"nan\"", "finite_number", "[\"body\",\"score\"]",
            "Input should be a finite number");
    one_bad("\"score\":\"0x10\"", "float_parsing", "[\"body\",\"score\"]",
            "Input should be a valid number, unable to parse string as a number");
    one_bad("\"score\":1e400", "finite_number", "[\"body\",\"score\"]",
            "Input should be a finite number");
    one_bad("\"score\":{}", "float_type", "[\"body\",\"score\"]", "Input should be a valid number");
    one_bad("\"age\":150", "less_than", "[\"body\",\"age\"]", "Input should be less than 150");
    one_bad("\"active\":\"maybe\"", "bool_parsing", "[\"body\",\"active\"]",
            "Input should be a valid boolean, unable to interpret input");
    one_bad("\"active\":2", "bool_parsing", "[\"body\",\"active\"]",
            "Input should be a valid boolean, unable to interpret input");
    one_bad("\"active\":[]", "bool_type", "[\"body\",\"active\"]",
            "Input should be a valid boolean");
    one_bad("\"name\":5", "string_type", "[\"body\",\"name\"]", "Input should be a valid string");
    one_bad("\"name\":\"\"", "string_too_short", "[\"body\",\"name\"]",
            "String should have at least 1 character");
    one_bad("\"name\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"", "string_too_long",
            "[\"body\",\"name\"]", "String should have at most 50 characters");
    one_bad("\"role\":\"root\"", "enum", "[\"body\",\"role\"]",
            "Input should be 'admin', 'user' or 'guest'");
    one_bad("\"tags\":5", "list_type", "[\"body\",\"tags\"]", "Input should be a valid list");
    one_bad("\"tags\":[\"a\",\"b\",\"c\",\"d\"]", "too_long", "[\"body\",\"tags\"]",
            "List should have at most 3 items after validation, not 4");
    one_bad("\"tags\":[\"a\",\"toolong\"]", "string_too_long", "[\"body\",\"tags\",1]",
            "String should have at most 4 characters");
    one_bad("\"created\":\"yesterday\"", "datetime_from_date_parsing", "[\"body\",\"created\"]",
            "Input should be a valid datetime or date, input is not an ISO 8601 date and time");
    one_bad("\"created\":\"2026-02-29T00:00:00Z\"", "datetime_from_date_parsing",
            "[\"body\",\"created\"]",
            "Input should be a valid datetime or date, input is not an ISO 8601 date and time");
    one_bad("\"created\":true", "datetime_type", "[\"body\",\"created\"]",
            "Input should be a valid datetime");
    one_bad("\"avatar\":\"!!\"", "bytes_invalid_encoding", "[\"body\",\"avatar\"]",
            "Data should be valid base64");
    one_bad("\"avatar\":\"AAAAAAAAAAAAAAAAAAAAAAAA\"", "bytes_too_long", "[\"body\",\"avatar\"]",
            "Data should have at most 16 bytes");
    one_bad("\"avatar\":1", "bytes_type", "[\"body\",\"avatar\"]", "Input should be a valid bytes");
    /* the last occurrence of a key wins, as in json.loads */
    one_bad("\"id\":1,\"id\":-1", "greater_than_equal", "[\"body\",\"id\"]",
            "Input should be greater than or equal to 0");
}

static void test_decode_reports_every_error_with_nested_locations(void **state)
{
    const char *body = "{\"name\":\"\",\"score\":0,\"home\":{\"city\":\"\",\"zip\":\"abc\"},"
                       "\"items\":[{\"sku\":\"a\",\"qty\":1},{\"qty\":\"x\"},{\"sku\":\"c\","
                       "\"qty\":0}],\"tags\":[1]}";
    user_in u;
    wv_schema_errors e = {0};
    assert_int_equal(decode(&user_model, body, &u, &e), -EINVAL);
    assert_int_equal(wv_schema_errors_count(&e), 9);
    size_t i = 0;
    expect_error(&e, i++, "missing", "[\"body\",\"id\"]", "Field required");
    expect_error(&e, i++, "string_too_short", "[\"body\",\"name\"]",
                 "String should have at least 1 character");
    expect_error(&e, i++, "greater_than", "[\"body\",\"score\"]", "Input should be greater than 0");
    expect_error(&e, i++, "string_type", "[\"body\",\"tags\",0]", "Input should be a valid string");
    expect_error(&e, i++, "string_too_short", "[\"body\",\"home\",\"city\"]",
                 "String should have at least 1 character");
    expect_error(&e, i++, "string_pattern_mismatch", "[\"body\",\"home\",\"zip\"]",
                 "String should match pattern '^[0-9]{5}$'");
    expect_error(&e, i++, "missing", "[\"body\",\"items\",1,\"sku\"]", "Field required");
    expect_error(&e, i++, "int_parsing", "[\"body\",\"items\",1,\"qty\"]",
                 "Input should be a valid integer, unable to parse string as an integer");
    expect_error(&e, i++, "greater_than_equal", "[\"body\",\"items\",2,\"qty\"]",
                 "Input should be greater than or equal to 1");
    /* inputs and contexts as FastAPI gives them */
    assert_string_equal(wv_schema_error_input(&e, 0), body);
    assert_null(wv_schema_error_ctx(&e, 0));
    assert_string_equal(wv_schema_error_input(&e, 5), "\"abc\"");
    assert_string_equal(wv_schema_error_ctx(&e, 5), "{\"pattern\":\"^[0-9]{5}$\"}");
    assert_string_equal(wv_schema_error_ctx(&e, 8), "{\"ge\":1}");
    assert_string_equal(wv_schema_error_ctx(&e, 1), "{\"min_length\":1}");
    wv_schema_errors_free(&e);
}

static void test_decode_missing_fields_and_wrong_shapes(void **state)
{
    user_in u;
    wv_schema_errors e = {0};
    assert_int_equal(decode(&user_model, "{}", &u, &e), -EINVAL);
    assert_int_equal(wv_schema_errors_count(&e), 4);
    expect_error(&e, 0, "missing", "[\"body\",\"id\"]", "Field required");
    expect_error(&e, 1, "missing", "[\"body\",\"name\"]", "Field required");
    expect_error(&e, 2, "missing", "[\"body\",\"home\"]", "Field required");
    expect_error(&e, 3, "missing", "[\"body\",\"items\"]", "Field required");
    assert_string_equal(wv_schema_error_input(&e, 0), "{}");
    wv_schema_errors_free(&e);

    assert_int_equal(decode(&user_model, "[1,2]", &u, &e), -EINVAL);
    assert_int_equal(wv_schema_errors_count(&e), 1);
    expect_error(&e, 0, "model_attributes_type", "[\"body\"]",
                 "Input should be a valid dictionary or object to extract fields from");
    assert_string_equal(wv_schema_error_input(&e, 0), "[1,2]");
    wv_schema_errors_free(&e);

    one_bad("\"home\":5", "model_attributes_type", "[\"body\",\"home\"]",
            "Input should be a valid dictionary or object to extract fields from");
    /* a list shorter than min_items (once its items are valid) */
    char body[] = "{\"id\":1,\"name\":\"a\"," VALID_HOME ",\"items\":[]}";
    assert_int_equal(decode(&user_model, body, &u, &e), -EINVAL);
    expect_error(&e, 0, "too_short", "[\"body\",\"items\"]",
                 "List should have at least 1 item after validation, not 0");
    assert_string_equal(wv_schema_error_ctx(&e, 0),
                        "{\"field_type\":\"List\",\"min_length\":1,\"actual_length\":0}");
    wv_schema_errors_free(&e);

    /* the root can be renamed or dropped */
    e.root = "";
    assert_int_equal(decode(&user_model, "{\"id\":1}", &u, &e), -EINVAL);
    expect_error(&e, 0, "missing", "[\"name\"]", "Field required");
    wv_schema_errors_free(&e);
}

static void test_decode_not_json_is_json_invalid(void **state)
{
    user_in u;
    wv_schema_errors e = {0};
    assert_int_equal(decode(&user_model, "{not json", &u, &e), -EBADMSG);
    assert_string_equal(wv_errmsg(), "line 1, column 2 (byte 1): expected a string as object key");
    assert_int_equal(wv_schema_errors_count(&e), 1);
    expect_error(&e, 0, "json_invalid", "[\"body\",1]", "JSON decode error");
    assert_string_equal(wv_schema_error_ctx(&e, 0),
                        "{\"error\":\"line 1, column 2 (byte 1): expected a string as object "
                        "key\"}");
    wv_schema_errors_free(&e);
}

static void test_limits_bound_errors_depth_and_size(void **state)
{
    user_in u;
    /* error cap: a final note, then nothing more */
    wv_schema_errors e = {.max_errors = 2};
    assert_int_equal(decode(&user_model, "{}", &u, &e), -EINVAL);
    assert_int_equal(wv_schema_errors_count(&e), 3);
    expect_error(&e, 2, "too_many_errors", "[\"body\"]", "Too many errors: stopped after 2");
    /* later calls add nothing once stopped */
    int64_t id;
    static const wv_db_field idf = WV_FIELD_INT(user_in, id);
    assert_int_equal(wv_schema_param(&idf, "path", "x", 1, &id, &e), -EINVAL);
    assert_int_equal(wv_schema_errors_count(&e), 3);
    wv_schema_errors_free(&e);

    /* depth: the reader stops it */
    e = (wv_schema_errors){.max_depth = 4};
    const char *deep = "{\"id\":[[[[[[1]]]]]]}";
    assert_int_equal(decode(&user_model, deep, &u, &e), -EBADMSG);
    assert_string_equal(wv_schema_error_type(&e, 0), "json_invalid");
    wv_schema_errors_free(&e);
    /* 1000 levels with the defaults */
    char *big = malloc(2002);
    memset(big, '[', 1000);
    memset(big + 1000, ']', 1000);
    big[2000] = '\0';
    assert_int_equal(decode(&user_model, big, &u, &e), -EBADMSG);
    wv_schema_errors_free(&e);
    free(big);

    /* size */
    e = (wv_schema_errors){.max_bytes = 10};
    assert_int_equal(decode(&user_model, "{\"id\":1,\"name\":\"x\"}", &u, &e), -EBADMSG);
    expect_error(&e, 0, "json_invalid", "[\"body\",10]", "JSON decode error");
    wv_schema_errors_free(&e);
}

static void test_large_input_is_not_repeated_in_errors(void **state)
{
    /* a 100 KB body missing its fields: the errors do not copy it 4 times */
    size_t n = 100000;
    char *body = malloc(n + 32);
    strcpy(body, "{\"pad\":\"");
    memset(body + 8, 'x', n);
    strcpy(body + 8 + n, "\"}");
    user_in u;
    wv_schema_errors e = {0};
    assert_int_equal(decode(&user_model, body, &u, &e), -EINVAL);
    assert_int_equal(wv_schema_errors_count(&e), 4);
    assert_null(wv_schema_error_input(&e, 0));
    assert_true(e.text.n < 4096);
    wv_schema_errors_free(&e);
    free(body);
}

typedef struct strict_t {
    int64_t a;
} strict_t;
static const wv_db_field strict_fields[] = {WV_FIELD_INT(strict_t, a)};
static const wv_db_model strict_model = {.size = sizeof(strict_t),
                                         .fields = strict_fields,
                                         .nfields = 1,
                                         .name = "Strict",
                                         .forbid_extra = true};

static void test_extra_keys_forbidden_when_the_model_says_so(void **state)
{
    strict_t s;
    wv_schema_errors e = {0};
    assert_int_equal(decode(&strict_model, "{\"a\":1,\"b\":2,\"c\":[3]}", &s, &e), -EINVAL);
    assert_int_equal(wv_schema_errors_count(&e), 2);
    expect_error(&e, 0, "extra_forbidden", "[\"body\",\"b\"]", "Extra inputs are not permitted");
    expect_error(&e, 1, "extra_forbidden", "[\"body\",\"c\"]", "Extra inputs are not permitted");
    assert_string_equal(wv_schema_error_input(&e, 1), "[3]");
    wv_schema_errors_free(&e);
    /* ignored by default */
    assert_int_equal(
        decode(&address_model, "{\"city\":\"x\",\"zip\":\"12345\",\"b\":1}", &(address){0}, &e), 0);
}

/* ---------------------------------------------------- the 422 body */

static void test_errors_json_is_fastapis_422_body(void **state)
{
    user_in u;
    wv_schema_errors e = {0};
    assert_int_equal(
        decode(&user_model, "{\"id\":-1,\"name\":\"a\"," VALID_HOME "," VALID_ITEMS "}", &u, &e),
        -EINVAL);
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    assert_int_equal(wv_schema_errors_json(&e, &j), 0);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_string_equal(text_of(&b),
                        "{\"detail\":[{\"type\":\"greater_than_equal\",\"loc\":[\"body\",\"id\"],"
                        "\"msg\":\"Input should be greater than or equal to 0\",\"input\":-1,"
                        "\"ctx\":{\"ge\":0}}]}");
    wv_buf_free(&b);
    wv_schema_errors_free(&e);
}

/* ---------------------------------------------------------- params */

static void test_params_validate_text_with_a_location(void **state)
{
    static const wv_db_field id = {.name = "id", .type = WV_DB_INT, .size = 8, WV_GE(1)};
    static const wv_db_field limit = {
        .name = "limit", .type = WV_DB_INT, .size = 8, WV_GE(1), WV_LE(100), .default_json = "10"};
    static const wv_db_field q = {.name = "q", .type = WV_DB_TEXT, .size = 9, .max_chars = 2};
    int64_t v;
    char text[9];
    wv_schema_errors e = {0};
    assert_int_equal(wv_schema_param(&id, "path", "42", 2, &v, &e), 0);
    assert_int_equal(v, 42);
    assert_int_equal(wv_schema_param(&limit, "query", NULL, 0, &v, &e), 0);
    assert_int_equal(v, 10);
    assert_int_equal(wv_schema_errors_count(&e), 0);
    /* several parameters, one 422 */
    assert_int_equal(wv_schema_param(&id, "path", "abc", 3, &v, &e), -EINVAL);
    assert_int_equal(wv_schema_param(&limit, "query", "1000", 4, &v, &e), -EINVAL);
    assert_int_equal(wv_schema_param(&q, "query", NULL, 0, text, &e), -EINVAL);
    assert_int_equal(wv_schema_param(&q, "query", "\xff", 1, text, &e), -EINVAL);
    assert_int_equal(wv_schema_param(&q, "query", "abc", 3, text, &e), -EINVAL);
    assert_int_equal(wv_schema_errors_count(&e), 5);
    expect_error(&e, 0, "int_parsing", "[\"path\",\"id\"]",
                 "Input should be a valid integer, unable to parse string as an integer");
    assert_string_equal(wv_schema_error_input(&e, 0), "\"abc\"");
    expect_error(&e, 1, "less_than_equal", "[\"query\",\"limit\"]",
                 "Input should be less than or equal to 100");
    expect_error(&e, 2, "missing", "[\"query\",\"q\"]", "Field required");
    expect_error(&e, 3, "string_unicode", "[\"query\",\"q\"]",
                 "Input should be a valid string, unable to parse raw data as a unicode string");
    expect_error(&e, 4, "string_too_long", "[\"query\",\"q\"]",
                 "String should have at most 2 characters");
    wv_schema_errors_free(&e);
    /* objects are not parameters */
    static const wv_db_field obj = {
        .name = "o", .type = WV_DB_OBJECT, .size = sizeof(address), .object = &address_model};
    assert_int_equal(wv_schema_param(&obj, "query", "x", 1, &(address){0}, &e), -ENOTSUP);
}

/* ------------------------------------------------- encoding, round trip */

static void test_encode_round_trips_through_decode(void **state)
{
    const char *body =
        "{\"id\":7,\"name\":\"Zoë \\\"q\\\"\",\"score\":99.5,\"active\":false,\"role\":\"admin\","
        "\"age\":null,\"tags\":[\"a\",\"bcde\"],\"created\":\"2026-11-25T19:30:01.500000Z\","
        "\"avatar\":\"AAEC\",\"home\":{\"city\":\"Paris\",\"zip\":\"75001\"},"
        "\"items\":[{\"sku\":\"x1\",\"qty\":2}]}";
    user_in u;
    wv_schema_errors e = {0};
    assert_int_equal(decode(&user_model, body, &u, &e), 0);
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    assert_int_equal(wv_schema_encode(&user_model, &u, &j), 0);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_string_equal(text_of(&b), body);
    /* and again: the same struct */
    user_in u2;
    assert_int_equal(wv_schema_decode(&user_model, b.p, b.n, &u2, &e), 0);
    assert_memory_equal(&u, &u2, sizeof u);
    /* a value given: written as it is */
    u.has_age = true;
    u.age = 31;
    wv_buf_reset(&b);
    wv_json_init(&j, &b);
    assert_int_equal(wv_schema_encode(&user_model, &u, &j), 0);
    assert_non_null(strstr(text_of(&b), "\"age\":31,"));
    /* values with no JSON form */
    u.ntags = 5;
    wv_buf_reset(&b);
    wv_json_init(&j, &b);
    assert_int_equal(wv_schema_encode(&user_model, &u, &j), -EINVAL);
    wv_buf_free(&b);
    wv_schema_errors_free(&e);
}

/* ------------------------------------------------------- JSON Schema */

static const wv_json_val *at(const wv_json_val *v, const char *path)
{
    char key[64];
    while (*path) {
        size_t n = strcspn(path, ".");
        memcpy(key, path, n);
        key[n] = '\0';
        char *end;
        long idx = strtol(key, &end, 10);
        v = *end == '\0' && n ? wv_json_array_at(v, (size_t)idx) : wv_json_get(v, key);
        path += n + (path[n] == '.');
    }
    return v;
}

static void expect_str(const wv_json_val *root, const char *path, const char *want)
{
    const char *s;
    if (wv_json_as_string(at(root, path), &s, NULL) < 0) {
        print_error("%s: not a string\n", path);
        fail();
    }
    assert_string_equal(s, want);
}

static void expect_num(const wv_json_val *root, const char *path, double want)
{
    double x;
    if (wv_json_as_double(at(root, path), &x) < 0) {
        print_error("%s: not a number\n", path);
        fail();
    }
    assert_true(x == want);
}

static void test_json_schema_carries_every_constraint(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    assert_int_equal(wv_schema_json_schema(&user_model, &j, "#/components/schemas/"), 0);
    assert_int_equal(wv_json_finish(&j), 0);
    wv_json_doc *doc;
    assert_int_equal(wv_json_parse(b.p, b.n, &doc), 0);
    const wv_json_val *r = wv_json_doc_root(doc);
    expect_str(r, "type", "object");
    expect_str(r, "title", "UserIn");
    expect_str(r, "properties.id.type", "integer");
    expect_num(r, "properties.id.minimum", 0);
    expect_num(r, "properties.id.examples.0", 7);
    expect_str(r, "properties.name.description", "the name");
    expect_num(r, "properties.name.minLength", 1);
    expect_num(r, "properties.name.maxLength", 50);
    expect_str(r, "properties.score.type", "number");
    expect_num(r, "properties.score.exclusiveMinimum", 0);
    expect_num(r, "properties.score.maximum", 100);
    expect_num(r, "properties.score.default", 50.5);
    expect_str(r, "properties.role.enum.2", "guest");
    expect_str(r, "properties.role.default", "user");
    expect_str(r, "properties.age.anyOf.0.type", "integer");
    expect_num(r, "properties.age.anyOf.0.exclusiveMaximum", 150);
    expect_str(r, "properties.age.anyOf.1.type", "null");
    assert_true(wv_json_is_null(at(r, "properties.age.default")));
    expect_str(r, "properties.tags.type", "array");
    expect_num(r, "properties.tags.items.maxLength", 4);
    expect_num(r, "properties.tags.maxItems", 3);
    expect_str(r, "properties.created.format", "date-time");
    expect_str(r, "properties.avatar.contentEncoding", "base64");
    expect_str(r, "properties.home.$ref", "#/components/schemas/Address");
    expect_str(r, "properties.items.items.$ref", "#/components/schemas/Item");
    expect_num(r, "properties.items.minItems", 1);
    expect_num(r, "properties.items.maxItems", 3);
    assert_int_equal(wv_json_array_len(at(r, "required")), 4);
    expect_str(r, "required.0", "id");
    expect_str(r, "required.3", "items");
    assert_null(at(r, "additionalProperties"));
    wv_json_doc_free(doc);

    /* inline, without a prefix */
    wv_buf_reset(&b);
    wv_json_init(&j, &b);
    assert_int_equal(wv_schema_json_schema(&user_model, &j, NULL), 0);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_int_equal(wv_json_parse(b.p, b.n, &doc), 0);
    r = wv_json_doc_root(doc);
    expect_str(r, "properties.home.type", "object");
    expect_str(r, "properties.home.properties.zip.pattern", "^[0-9]{5}$");
    expect_str(r, "properties.home.properties.zip.description", "five digits");
    expect_num(r, "properties.items.items.properties.qty.minimum", 1);
    wv_json_doc_free(doc);

    wv_buf_reset(&b);
    wv_json_init(&j, &b);
    assert_int_equal(wv_schema_json_schema(&strict_model, &j, NULL), 0);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_non_null(strstr(text_of(&b), "\"additionalProperties\":false"));
    wv_buf_free(&b);
}

/* ------------------------------------------------------- model checks */

typedef struct bad_t {
    int64_t i;
    char s[9];
    double d;
} bad_t;

static int check_one(wv_db_field f)
{
    wv_db_model m = {.size = sizeof(bad_t), .fields = &f, .nfields = 1, .name = "Bad"};
    return wv_schema_check(&m);
}

static void test_check_refuses_models_that_are_not_well_formed(void **state)
{
    assert_int_equal(wv_schema_check(&user_model), 0);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_INT(bad_t, i, WV_GE(0))), 0);
    /* 2 characters may need 8 bytes */
    assert_int_equal(check_one((wv_db_field)WV_FIELD_TEXT(bad_t, s, .max_chars = 3)), -EINVAL);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_TEXT(bad_t, s, .max_chars = 2)), 0);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_TEXT(bad_t, s, WV_GE(1))), -EINVAL);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_INT(bad_t, i, .max_chars = 1)), -EINVAL);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_INT(bad_t, i, WV_LE(INFINITY))), -EINVAL);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_INT(bad_t, i, .default_json = "\"x\"")),
                     -EINVAL);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_INT(bad_t, i, WV_GE(0), .default_json = "-1")),
                     -EINVAL);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_INT(bad_t, i, .default_json = "{")), -EINVAL);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_TEXT(bad_t, s, .pattern = "(")), -EINVAL);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_FLOAT(bad_t, i)), 0); /* 8 bytes both */
    assert_int_equal(check_one((wv_db_field)WV_FIELD_BOOL(bad_t, i)), -EINVAL);
    assert_int_equal(check_one((wv_db_field)WV_FIELD_OBJECT(bad_t, s, &address_model)), -EINVAL);
    assert_int_equal(
        check_one((wv_db_field){.name = "x", .type = WV_DB_INT, .offset = 64, .size = 8}), -EINVAL);
    /* an undecodable model is refused by every call */
    wv_db_field f = WV_FIELD_TEXT(bad_t, s, WV_GE(1));
    wv_db_model m = {.size = sizeof(bad_t), .fields = &f, .nfields = 1};
    wv_schema_errors e = {0};
    assert_int_equal(decode(&m, "{}", &(bad_t){0}, &e), -ENOTSUP);
    assert_int_equal(wv_schema_errors_count(&e), 0);
}

static void test_db_refuses_body_only_and_schema_only_models(void **state)
{
    /* no table: the model check comes before anything else */
    assert_int_equal(wv_db_create_table(NULL, &user_model), -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "no table"));
    wv_db_model with_table = user_model;
    with_table.table = "users";
    assert_int_equal(wv_db_create_table(NULL, &with_table), -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "bodies only"));
}

/* ------------------------------------------------ for the interop test */

/* `test_schema schema`: the user model's JSON Schema (inline) on stdout.
 * `test_schema decode`: each stdin line decoded, "ok" or "error TYPE..." per
 * line (tests/integration/test_schema_jsonschema.py compares these with the
 * Python jsonschema library's verdicts). */
static int tool(const char *mode)
{
    wv_buf b = {0};
    if (strcmp(mode, "schema") == 0) {
        wv_json j;
        wv_json_init(&j, &b);
        if (wv_schema_json_schema(&user_model, &j, NULL) < 0 || wv_json_finish(&j) < 0)
            return 1;
        printf("%s\n", text_of(&b));
        wv_buf_free(&b);
        return 0;
    }
    if (strcmp(mode, "decode") != 0)
        return 2;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        if (line[n - 1] == '\n')
            n--;
        user_in u;
        wv_schema_errors e = {0};
        int rc = wv_schema_decode(&user_model, line, (size_t)n, &u, &e);
        if (rc == 0) {
            printf("ok\n");
        } else {
            printf("error");
            for (size_t i = 0; i < wv_schema_errors_count(&e); i++)
                printf(" %s", wv_schema_error_type(&e, i));
            printf("\n");
        }
        wv_schema_errors_free(&e);
    }
    free(line);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2)
        return tool(argv[1]);
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_valid_body_fills_every_field),
        cmocka_unit_test(test_decode_defaults_fill_absent_fields),
        cmocka_unit_test(test_decode_null_for_a_nullable_field_is_not_present),
        cmocka_unit_test(test_decode_lax_coercions_as_pydantic),
        cmocka_unit_test(test_decode_every_error_type_with_pydantic_words),
        cmocka_unit_test(test_decode_reports_every_error_with_nested_locations),
        cmocka_unit_test(test_decode_missing_fields_and_wrong_shapes),
        cmocka_unit_test(test_decode_not_json_is_json_invalid),
        cmocka_unit_test(test_limits_bound_errors_depth_and_size),
        cmocka_unit_test(test_large_input_is_not_repeated_in_errors),
        cmocka_unit_test(test_extra_keys_forbidden_when_the_model_says_so),
        cmocka_unit_test(test_errors_json_is_fastapis_422_body),
        cmocka_unit_test(test_params_validate_text_with_a_location),
        cmocka_unit_test(test_encode_round_trips_through_decode),
        cmocka_unit_test(test_json_schema_carries_every_constraint),
        cmocka_unit_test(test_check_refuses_models_that_are_not_well_formed),
        cmocka_unit_test(test_db_refuses_body_only_and_schema_only_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
