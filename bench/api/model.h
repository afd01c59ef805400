/*
 * The model of the api suite (bench/run_api.sh), shared by bench_api_server.c
 * (POST /validate, POST /jwt/validate) and bench_api.c (api.decode): ten
 * fields, as bench/api/fastapi_app.py declares them for pydantic:
 *
 *   name     text, 1..50 characters        email    text, 3..100 characters
 *   age      int, 0 <= age < 150           level    int, 1 <= level <= 10
 *   score    float, 0 <= score <= 100      active   bool
 *   role     "admin" | "editor" | "viewer" address  {city 1..50, zip 5..10}
 *   tags     up to 8 strings of 1..20      note     text, at most 200
 *
 * BENCH_API_BODY is the body every request posts: compact JSON in the
 * model's field order, so the echo of either server (weave's
 * wv_schema_encode, FastAPI's JSONResponse) is the same bytes.
 */
#ifndef WEAVE_BENCH_API_MODEL_H
#define WEAVE_BENCH_API_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weave/schema.h>

#define BENCH_API_BODY                                                                             \
    "{\"name\":\"Ada Lovelace\",\"email\":\"ada@example.com\",\"age\":36,\"level\":7,"             \
    "\"score\":97.5,\"active\":true,\"role\":\"editor\","                                          \
    "\"address\":{\"city\":\"London\",\"zip\":\"12345\"},"                                         \
    "\"tags\":[\"math\",\"poetry\",\"engines\"],\"note\":\"first published algorithm\"}"

typedef struct bench_api_address {
    char city[201];
    char zip[41];
} bench_api_address;

typedef struct bench_api_item {
    char name[201];
    char email[401];
    int64_t age;
    int64_t level;
    double score;
    bool active;
    char role[8];
    bench_api_address address;
    char tags[8][81];
    size_t ntags;
    char note[801];
} bench_api_item;

static const wv_db_field bench_api_address_fields[] = {
    WV_FIELD_TEXT(bench_api_address, city, .min_chars = 1, .max_chars = 50),
    WV_FIELD_TEXT(bench_api_address, zip, .min_chars = 5, .max_chars = 10),
};
static const wv_db_model bench_api_address_model =
    WV_SCHEMA_MODEL("Address", bench_api_address, bench_api_address_fields);

static const wv_db_field bench_api_item_fields[] = {
    WV_FIELD_TEXT(bench_api_item, name, .min_chars = 1, .max_chars = 50),
    WV_FIELD_TEXT(bench_api_item, email, .min_chars = 3, .max_chars = 100),
    WV_FIELD_INT(bench_api_item, age, WV_GE(0), WV_LT(150)),
    WV_FIELD_INT(bench_api_item, level, WV_GE(1), WV_LE(10)),
    WV_FIELD_FLOAT(bench_api_item, score, WV_GE(0), WV_LE(100)),
    WV_FIELD_BOOL(bench_api_item, active),
    WV_FIELD_TEXT(bench_api_item, role, WV_ENUM("admin", "editor", "viewer")),
    WV_FIELD_OBJECT(bench_api_item, address, &bench_api_address_model),
    WV_FIELD_ARRAY(bench_api_item, tags, ntags,
                   &(const wv_db_field)WV_ITEM_TEXT(char[81], .min_chars = 1, .max_chars = 20),
                   .max_items = 8),
    WV_FIELD_TEXT(bench_api_item, note, .max_chars = 200),
};
static const wv_db_model bench_api_item_model =
    WV_SCHEMA_MODEL("Item", bench_api_item, bench_api_item_fields);

#endif /* WEAVE_BENCH_API_MODEL_H */
