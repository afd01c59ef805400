/*
 * libFuzzer target for the schema decoder (src/schema): any input, decoded
 * into a model with nested objects, arrays of objects and every field type,
 * either decodes (and then encodes, and the encoding decodes back to the
 * same struct) or fails with -EINVAL / -EBADMSG and a bounded list of
 * errors whose parts are all present and whose 422 body is valid JSON.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weave/json.h"
#include "weave/schema.h"
#include "fuzz_util.h"

typedef struct leaf {
    char code[17];
    int64_t n;
} leaf;

static const wv_db_field leaf_fields[] = {
    WV_FIELD_TEXT(leaf, code, .pattern = "^[a-z]+[0-9]*$", .max_chars = 4),
    WV_FIELD_INT(leaf, n, WV_GE(-5), WV_LT(5), .default_json = "0"),
};
static const wv_db_model leaf_model = WV_SCHEMA_MODEL("Leaf", leaf, leaf_fields);

typedef struct mid {
    leaf one;
    leaf many[3];
    size_t nmany;
    bool flag;
} mid;

static const wv_db_field mid_fields[] = {
    WV_FIELD_OBJECT(mid, one, &leaf_model),
    WV_FIELD_ARRAY(mid, many, nmany, &(const wv_db_field)WV_ITEM_OBJECT(leaf, &leaf_model),
                   .default_json = "[]"),
    WV_FIELD_BOOL(mid, flag, .default_json = "false"),
};
static const wv_db_model mid_model = WV_SCHEMA_MODEL("Mid", mid, mid_fields);

typedef struct top {
    int64_t id;
    double x;
    bool has_x;
    char name[41];
    char kind[9];
    int64_t when;
    unsigned char data[8];
    size_t ndata;
    double nums[4];
    size_t nnums;
    mid m;
    mid ms[2];
    size_t nms;
} top;

static const wv_db_field top_fields[] = {
    WV_FIELD_INT(top, id),
    WV_FIELD_FLOAT(top, x, WV_GT(0), .flags = WV_DB_NULLABLE, .default_json = "null",
                   WV_PRESENT(top, has_x)),
    WV_FIELD_TEXT(top, name, .min_chars = 1, .max_chars = 10, .default_json = "\"n\""),
    WV_FIELD_TEXT(top, kind, WV_ENUM("a", "b"), .default_json = "\"a\""),
    WV_FIELD_TIME(top, when, .default_json = "0"),
    WV_FIELD_BLOB(top, data, ndata, .default_json = "\"\""),
    WV_FIELD_ARRAY(top, nums, nnums, &(const wv_db_field)WV_ITEM_FLOAT(WV_LE(1e6)),
                   .default_json = "[]"),
    WV_FIELD_OBJECT(top, m, &mid_model, .default_json = "{\"one\":{\"code\":\"a\"}}"),
    WV_FIELD_ARRAY(top, ms, nms, &(const wv_db_field)WV_ITEM_OBJECT(mid, &mid_model),
                   .default_json = "[]"),
};
static const wv_db_model top_model = {.size = sizeof(top),
                                      .fields = top_fields,
                                      .nfields = sizeof top_fields / sizeof top_fields[0],
                                      .name = "Top",
                                      .forbid_extra = true};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = copy_exact(data, size);
    top t;
    wv_schema_errors e = {.max_errors = 8, .max_depth = 16, .max_bytes = 64 * 1024};
    int rc = wv_schema_decode(&top_model, in, size, &t, &e);
    CHECK(rc == 0 || rc == -EINVAL || rc == -EBADMSG);
    CHECK((rc == 0) == (wv_schema_errors_count(&e) == 0));
    CHECK(wv_schema_errors_count(&e) <= 9);
    for (size_t i = 0; i < wv_schema_errors_count(&e); i++)
        CHECK(wv_schema_error_type(&e, i) && wv_schema_error_msg(&e, i) &&
              wv_schema_error_loc(&e, i));
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    if (rc == 0) {
        CHECK(wv_schema_encode(&top_model, &t, &j) == 0);
        CHECK(wv_json_finish(&j) == 0);
        top t2;
        wv_schema_errors e2 = {0};
        CHECK(wv_schema_decode(&top_model, b.p, b.n, &t2, &e2) == 0);
        CHECK(t.id == t2.id && t.when == t2.when && t.nnums == t2.nnums && t.nms == t2.nms &&
              t.ndata == t2.ndata && strcmp(t.name, t2.name) == 0);
        wv_schema_errors_free(&e2);
    } else {
        CHECK(wv_schema_errors_json(&e, &j) == 0);
        CHECK(wv_json_finish(&j) == 0);
        wv_json_doc *doc;
        CHECK(wv_json_parse(b.p, b.n, &doc) == 0);
        wv_json_doc_free(doc);
    }
    wv_buf_free(&b);
    wv_schema_errors_free(&e);
    free(in);
    return 0;
}
