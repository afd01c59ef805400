/*
 * bench/bench_api.c: the in-process figure of the api suite (bench/run_api.sh)
 * and the body every figure of the suite posts.
 *
 *   bench_api decode N   api.decode: N times wv_schema_decode of the body into
 *                        bench/api/model.h's struct (parse with weave's strict
 *                        reader, validate every field, write the struct; a
 *                        fresh wv_schema_errors each time, freed), after a
 *                        warm-up of N / 10; prints value=<ns per body>
 *   bench_api body       print the body (the suite hands these bytes to wrk,
 *                        to the Python anchors and to the response checks)
 *
 * Before timing, the body is decoded once and every field checked against
 * what it says, and the struct encoded back must be the body byte for
 * byte; after timing, the last decode's struct is checked again. The anchor
 * is bench/api/parse_raw.py: pydantic's Model.parse_raw on the same bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/json.h>
#include <weave/schema.h>

#include "api/model.h"
#include "bench_util.h"

static const char body[] = BENCH_API_BODY;

/* The decoded struct holds what the body says; 0 or -1 with the reason. */
static int check_item(const bench_api_item *it)
{
    const char *bad = NULL;
    if (strcmp(it->name, "Ada Lovelace") != 0)
        bad = "name";
    else if (strcmp(it->email, "ada@example.com") != 0)
        bad = "email";
    else if (it->age != 36 || it->level != 7)
        bad = "age or level";
    else if (it->score != 97.5 || !it->active)
        bad = "score or active";
    else if (strcmp(it->role, "editor") != 0)
        bad = "role";
    else if (strcmp(it->address.city, "London") != 0 || strcmp(it->address.zip, "12345") != 0)
        bad = "address";
    else if (it->ntags != 3 || strcmp(it->tags[0], "math") != 0 ||
             strcmp(it->tags[1], "poetry") != 0 || strcmp(it->tags[2], "engines") != 0)
        bad = "tags";
    else if (strcmp(it->note, "first published algorithm") != 0)
        bad = "note";
    if (bad) {
        fprintf(stderr, "bench_api: the decoded %s is not the body's\n", bad);
        return -1;
    }
    return 0;
}

static int decode_once(bench_api_item *it)
{
    wv_schema_errors errs = {0};
    int rc = wv_schema_decode(&bench_api_item_model, body, sizeof body - 1, it, &errs);
    if (rc < 0) {
        fprintf(stderr, "bench_api: decode: %d (%s), %zu errors%s%s\n", rc, wv_errmsg(),
                wv_schema_errors_count(&errs), wv_schema_errors_count(&errs) ? ": " : "",
                wv_schema_errors_count(&errs) ? wv_schema_error_msg(&errs, 0) : "");
    }
    wv_schema_errors_free(&errs);
    return rc;
}

/* Decoded, then encoded: the same bytes as the body. */
static int check_round_trip(void)
{
    bench_api_item it;
    if (decode_once(&it) < 0 || check_item(&it) < 0)
        return -1;
    wv_buf out = {0};
    wv_json j;
    wv_json_init(&j, &out);
    int rc = wv_schema_encode(&bench_api_item_model, &it, &j);
    if (rc == 0)
        rc = wv_json_finish(&j);
    if (rc < 0 || out.n != sizeof body - 1 || memcmp(out.p, body, out.n) != 0) {
        fprintf(stderr, "bench_api: the struct encoded back is not the body (%d): %.*s\n", rc,
                (int)out.n, out.p ? out.p : "");
        rc = -1;
    }
    wv_buf_free(&out);
    return rc < 0 ? -1 : 0;
}

static int cmd_decode(long n)
{
    if (check_round_trip() < 0)
        return 1;
    bench_api_item it;
    for (long i = 0; i < n / 10 + 1; i++)
        if (decode_once(&it) < 0)
            return 1;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        wv_schema_errors errs = {0};
        int rc = wv_schema_decode(&bench_api_item_model, body, sizeof body - 1, &it, &errs);
        wv_schema_errors_free(&errs);
        if (rc < 0) {
            fprintf(stderr, "bench_api: decode %ld failed: %d\n", i, rc);
            return 1;
        }
    }
    int64_t t1 = now_ns();
    if (check_item(&it) < 0)
        return 1;
    fprintf(stderr, "bench_api decode: %ld bodies of %zu bytes in %.3f s\n", n, sizeof body - 1,
            (double)(t1 - t0) / 1e9);
    printf("value=%.2f\n", (double)(t1 - t0) / (double)n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "body") == 0)
        return fwrite(body, 1, sizeof body - 1, stdout) == sizeof body - 1 ? 0 : 1;
    if (argc == 3 && strcmp(argv[1], "decode") == 0) {
        long n = strtol(argv[2], NULL, 10);
        if (n > 0)
            return cmd_decode(n);
    }
    fprintf(stderr, "usage: bench_api decode N | bench_api body\n");
    return 2;
}
