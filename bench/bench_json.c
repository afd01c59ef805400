/*
 * bench/bench_json.c: which JSON library weave parses with, measured
 * (bench/json_libs.md has the results and the decision).
 *
 *   bench_json [table] [rounds]   parse + read every field, per document and
 *                                 library; then BENCH lines for weave's
 *                                 wrapper against the library it wraps
 *   bench_json probe              how each library treats hostile input
 *   bench_json dump small|medium|large   print a document
 *
 * Three documents, written with weave's own writer: a small request body,
 * a ~2 KB order with nested arrays, and a ~1 MB array of 10,000 user
 * objects. Each library reads every field of each document through the
 * same handler-like code (member by name, typed read, array walk; see
 * json_libs/json_libs.h), and the values read must add up to what the
 * generator wrote, so a library that skips or garbles something fails
 * instead of looking fast.
 *
 * Timing: rounds alternate the libraries (A B C ... A B C ...), each
 * measurement is a loop of ~40 ms after a warm-up, and the table shows the
 * median per library. Memory is counted by wrapping malloc/calloc/realloc/
 * free around glibc's (only while one document is parsed, outside the timed
 * loops; not under ASan, which owns malloc): allocations per document, the
 * bytes the parsed tree holds, and the peak while parsing.
 *
 * The library adapters are separate files under bench/json_libs/ (json-c
 * and jansson headers clash) and are declared weak here: a candidate whose
 * file is not linked in is listed as "not built" and skipped.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <weave/json.h>

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "json_libs/json_libs.h"

extern const json_lib json_lib_cjson __attribute__((weak));
extern const json_lib json_lib_jansson __attribute__((weak));
extern const json_lib json_lib_jsonc __attribute__((weak));
extern const json_lib json_lib_yajl __attribute__((weak));
extern const json_lib json_lib_jsmn __attribute__((weak));

/* ------------------------------------------------- weave's own wrapper */

static void *weave_parse(const char *text, size_t n, char *err, size_t err_size)
{
    wv_json_doc *doc;
    if (wv_json_parse(text, n, &doc) < 0) {
        snprintf(err, err_size, "%s", wv_errmsg());
        return NULL;
    }
    return doc;
}

static void weave_free(void *doc)
{
    wv_json_doc_free(doc);
}

static const void *weave_root(void *doc)
{
    return wv_json_doc_root(doc);
}

static const void *weave_get(void *doc, const void *obj, const char *key)
{
    return wv_json_get(obj, key);
}

static int weave_as_string(void *doc, const void *v, const char **s, size_t *n)
{
    return wv_json_as_string(v, s, n);
}

static int weave_as_i64(void *doc, const void *v, int64_t *out)
{
    return wv_json_as_i64(v, out);
}

static int weave_as_double(void *doc, const void *v, double *out)
{
    return wv_json_as_double(v, out);
}

static int weave_as_bool(void *doc, const void *v, bool *out)
{
    return wv_json_as_bool(v, out);
}

static bool weave_is_null(void *doc, const void *v)
{
    return wv_json_is_null(v);
}

static long weave_array_len(void *doc, const void *v)
{
    return wv_json_array_len(v);
}

static const void *weave_array_at(void *doc, const void *v, size_t i)
{
    return wv_json_array_at(v, i);
}

static const json_lib json_lib_weave = {
    .name = "weave (wv_json_*)",
    .setup = "wv_json_parse: depth 64, 8 MiB limit",
    .parse = weave_parse,
    .free_doc = weave_free,
    .root = weave_root,
    .get = weave_get,
    .as_string = weave_as_string,
    .as_i64 = weave_as_i64,
    .as_double = weave_as_double,
    .as_bool = weave_as_bool,
    .is_null = weave_is_null,
    .array_len = weave_array_len,
    .array_at = weave_array_at,
};

/* The anchor of the BENCH lines: the fastest of the tree libraries. */
#define ANCHOR_LIB  json_lib_cjson
#define ANCHOR_NAME "cjson"

static const json_lib *candidates[6];
static int ncandidates;

static void collect_candidates(void)
{
    const json_lib *all[] = {&json_lib_cjson, &json_lib_jansson, &json_lib_jsonc,
                             &json_lib_yajl,  &json_lib_jsmn,    &json_lib_weave};
    const char *names[] = {"cjson", "jansson", "json-c", "yajl", "jsmn", "weave"};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (all[i])
            candidates[ncandidates++] = all[i];
        else
            fprintf(stderr, "# %s: not built (bench/json_libs/ not linked in)\n", names[i]);
    }
}

/* ------------------------------------------------------------ checksum */

/* What a document holds, folded so that reading order does not matter. */
typedef struct sum {
    uint64_t ints, doubles, strings, bools, nulls, values;
} sum;

static uint64_t string_hash(const char *s, size_t n, bool full)
{
    if (!full) /* cheap inside timed loops: touch both ends */
        return n * 31 + (n ? (unsigned char)s[0] * 7 + (unsigned char)s[n - 1] : 0);
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * UINT64_C(1099511628211);
    return h;
}

static void sum_int(sum *s, int64_t v)
{
    s->ints += (uint64_t)v;
    s->values++;
}

static void sum_double(sum *s, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    s->doubles += bits;
    s->values++;
}

static void sum_string(sum *s, const char *p, size_t n, bool full)
{
    s->strings += string_hash(p, n, full);
    s->values++;
}

static void sum_bool(sum *s, bool v)
{
    s->bools += v ? 3 : 1;
    s->values++;
}

static void sum_null(sum *s)
{
    s->nulls++;
    s->values++;
}

static bool sum_equal(const sum *a, const sum *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* ----------------------------------------------------------- documents */

enum { SMALL, MEDIUM, LARGE, NDOCS };
static const char *doc_names[NDOCS] = {"small", "medium", "large"};

typedef struct document {
    wv_buf text;
    sum expected, expected_full;
} document;

static document docs[NDOCS];

/* Writing helpers that also record what was written (unless the sums are
 * NULL: when the writer itself is timed). */
typedef struct gen {
    wv_json j;
    sum *cheap, *full;
} gen;

static void g_key(gen *g, const char *k)
{
    wv_json_key(&g->j, k);
}

static void g_str(gen *g, const char *s)
{
    wv_json_string(&g->j, s);
    if (g->cheap) {
        sum_string(g->cheap, s, strlen(s), false);
        sum_string(g->full, s, strlen(s), true);
    }
}

static void g_int(gen *g, int64_t v)
{
    wv_json_int(&g->j, v);
    if (g->cheap) {
        sum_int(g->cheap, v);
        sum_int(g->full, v);
    }
}

static void g_double(gen *g, double v)
{
    wv_json_double(&g->j, v);
    if (g->cheap) {
        sum_double(g->cheap, v);
        sum_double(g->full, v);
    }
}

static void g_bool(gen *g, bool v)
{
    wv_json_bool(&g->j, v);
    if (g->cheap) {
        sum_bool(g->cheap, v);
        sum_bool(g->full, v);
    }
}

static void g_null(gen *g)
{
    wv_json_null(&g->j);
    if (g->cheap) {
        sum_null(g->cheap);
        sum_null(g->full);
    }
}

static void gen_small(gen *g)
{
    wv_json_object_begin(&g->j);
    g_key(g, "name");
    g_str(g, "Alice");
    g_key(g, "email");
    g_str(g, "alice@example.com");
    g_key(g, "age");
    g_int(g, 30);
    wv_json_object_end(&g->j);
}

enum { ORDER_ITEMS = 10 };

static void gen_medium(gen *g)
{
    char tmp[64];
    wv_json *j = &g->j;
    wv_json_object_begin(j);
    g_key(g, "order_id");
    g_str(g, "ord_8f14e45fceea167a");
    g_key(g, "created_at");
    g_str(g, "2024-05-17T10:42:00Z");
    g_key(g, "status");
    g_str(g, "paid");
    g_key(g, "customer");
    wv_json_object_begin(j);
    g_key(g, "id");
    g_int(g, 918273);
    g_key(g, "name");
    g_str(g, "Zoë Müller");
    g_key(g, "email");
    g_str(g, "zoe.muller@example.com");
    g_key(g, "vip");
    g_bool(g, false);
    g_key(g, "phone");
    g_null(g);
    wv_json_object_end(j);
    g_key(g, "items");
    wv_json_array_begin(j);
    for (int i = 0; i < ORDER_ITEMS; i++) {
        wv_json_object_begin(j);
        g_key(g, "sku");
        snprintf(tmp, sizeof tmp, "SKU-%04d", 1001 + i * 37);
        g_str(g, tmp);
        g_key(g, "name");
        snprintf(tmp, sizeof tmp, "Widget \"Pro\" %d", i);
        g_str(g, tmp);
        g_key(g, "qty");
        g_int(g, 1 + i % 4);
        g_key(g, "unit_price");
        g_double(g, 4.99 + i * 3.5);
        g_key(g, "options");
        wv_json_array_begin(j);
        g_str(g, i % 2 ? "size:M" : "size:XL");
        g_str(g, "color:red");
        wv_json_array_end(j);
        g_key(g, "dims");
        wv_json_array_begin(j);
        g_double(g, 10.5 + i);
        g_double(g, 4.25);
        g_double(g, 3.125 * i);
        wv_json_array_end(j);
        wv_json_object_end(j);
    }
    wv_json_array_end(j);
    g_key(g, "shipping");
    wv_json_object_begin(j);
    g_key(g, "method");
    g_str(g, "express");
    g_key(g, "address");
    wv_json_object_begin(j);
    g_key(g, "line1");
    g_str(g, "12 Rue de la Paix");
    g_key(g, "city");
    g_str(g, "Paris");
    g_key(g, "zip");
    g_str(g, "75002");
    g_key(g, "country");
    g_str(g, "FR");
    wv_json_object_end(j);
    g_key(g, "cost");
    g_double(g, 9.5);
    wv_json_object_end(j);
    g_key(g, "totals");
    wv_json_object_begin(j);
    g_key(g, "subtotal");
    g_double(g, 321.73);
    g_key(g, "tax");
    g_double(g, 64.35);
    g_key(g, "total");
    g_double(g, 395.58);
    wv_json_object_end(j);
    g_key(g, "notes");
    g_str(g, "Leave at the door.\nRing twice \u2014 thanks!\t\u2713 \"fragile\"");
    g_key(g, "matrix");
    wv_json_array_begin(j);
    for (int r = 0; r < 3; r++) {
        wv_json_array_begin(j);
        for (int c = 0; c < 3; c++)
            g_int(g, r * 3 + c - 4);
        wv_json_array_end(j);
    }
    wv_json_array_end(j);
    g_key(g, "flags");
    wv_json_array_begin(j);
    g_bool(g, true);
    g_bool(g, false);
    g_bool(g, true);
    wv_json_array_end(j);
    wv_json_object_end(j);
}

enum { USERS = 10000 };

static void gen_large(gen *g)
{
    static const char *cities[] = {"Paris", "Berlin", "Tokyo", "São Paulo",
                                   "Lagos", "Austin", "Oslo",  "Kraków"};
    static const char *tags[] = {"admin", "beta", "staff", "trial", "vip", "new"};
    char tmp[64];
    wv_json *j = &g->j;
    wv_json_array_begin(j);
    for (int i = 0; i < USERS; i++) {
        wv_json_object_begin(j);
        g_key(g, "id");
        g_int(g, 100000 + i);
        g_key(g, "name");
        snprintf(tmp, sizeof tmp, "User %d", i);
        g_str(g, tmp);
        g_key(g, "age");
        g_int(g, 18 + i % 60);
        g_key(g, "active");
        g_bool(g, i % 3 != 0);
        g_key(g, "score");
        g_double(g, (i * 7919 % 10000) / 100.0);
        g_key(g, "tags");
        wv_json_array_begin(j);
        for (int t = 0; t < i % 3; t++)
            g_str(g, tags[(i + t) % 6]);
        wv_json_array_end(j);
        g_key(g, "address");
        wv_json_object_begin(j);
        g_key(g, "city");
        g_str(g, cities[i % 8]);
        g_key(g, "zip");
        snprintf(tmp, sizeof tmp, "%05d", i * 13 % 100000);
        g_str(g, tmp);
        wv_json_object_end(j);
        wv_json_object_end(j);
    }
    wv_json_array_end(j);
}

/* Write document d into out (emptied first), adding what was written to
 * the sums unless they are NULL. */
static int write_document(int d, wv_buf *out, sum *cheap, sum *full)
{
    void (*gens[NDOCS])(gen *) = {gen_small, gen_medium, gen_large};
    gen g = {.cheap = cheap, .full = full};
    wv_buf_reset(out);
    wv_json_init(&g.j, out);
    gens[d](&g);
    return wv_json_finish(&g.j);
}

static int generate(void)
{
    for (int d = 0; d < NDOCS; d++) {
        int rc = write_document(d, &docs[d].text, &docs[d].expected, &docs[d].expected_full);
        if (rc < 0 || wv_buf_append(&docs[d].text, "", 1) < 0) {
            fprintf(stderr, "bench_json: writing the %s document failed: %d\n", doc_names[d], rc);
            return -1;
        }
        docs[d].text.n--; /* keep the NUL after the text, outside it */
    }
    return 0;
}

/* -------------------------------------------------------------- access */

typedef struct reader {
    const json_lib *lib;
    void *doc;
    sum *s;
    bool full;
    int bad; /* getters that failed */
} reader;

static void r_str(reader *r, const void *v)
{
    const char *s;
    size_t n;
    if (r->lib->as_string(r->doc, v, &s, &n) < 0)
        r->bad++;
    else
        sum_string(r->s, s, n, r->full);
}

static void r_int(reader *r, const void *v)
{
    int64_t i;
    if (r->lib->as_i64(r->doc, v, &i) < 0)
        r->bad++;
    else
        sum_int(r->s, i);
}

static void r_double(reader *r, const void *v)
{
    double d;
    if (r->lib->as_double(r->doc, v, &d) < 0)
        r->bad++;
    else
        sum_double(r->s, d);
}

static void r_bool(reader *r, const void *v)
{
    bool b;
    if (r->lib->as_bool(r->doc, v, &b) < 0)
        r->bad++;
    else
        sum_bool(r->s, b);
}

static void r_null(reader *r, const void *v)
{
    if (!r->lib->is_null(r->doc, v))
        r->bad++;
    else
        sum_null(r->s);
}

static const void *get(reader *r, const void *obj, const char *key)
{
    return r->lib->get(r->doc, obj, key);
}

static void read_small(reader *r, const void *root)
{
    r_str(r, get(r, root, "name"));
    r_str(r, get(r, root, "email"));
    r_int(r, get(r, root, "age"));
}

static void read_medium(reader *r, const void *root)
{
    const json_lib *L = r->lib;
    r_str(r, get(r, root, "order_id"));
    r_str(r, get(r, root, "created_at"));
    r_str(r, get(r, root, "status"));
    const void *c = get(r, root, "customer");
    r_int(r, get(r, c, "id"));
    r_str(r, get(r, c, "name"));
    r_str(r, get(r, c, "email"));
    r_bool(r, get(r, c, "vip"));
    r_null(r, get(r, c, "phone"));
    const void *items = get(r, root, "items");
    long n = L->array_len(r->doc, items);
    if (n != ORDER_ITEMS)
        r->bad++;
    for (long i = 0; i < n; i++) {
        const void *it = L->array_at(r->doc, items, (size_t)i);
        r_str(r, get(r, it, "sku"));
        r_str(r, get(r, it, "name"));
        r_int(r, get(r, it, "qty"));
        r_double(r, get(r, it, "unit_price"));
        const void *opts = get(r, it, "options");
        for (long k = 0, m = L->array_len(r->doc, opts); k < m; k++)
            r_str(r, L->array_at(r->doc, opts, (size_t)k));
        const void *dims = get(r, it, "dims");
        for (long k = 0, m = L->array_len(r->doc, dims); k < m; k++)
            r_double(r, L->array_at(r->doc, dims, (size_t)k));
    }
    const void *ship = get(r, root, "shipping");
    r_str(r, get(r, ship, "method"));
    const void *addr = get(r, ship, "address");
    r_str(r, get(r, addr, "line1"));
    r_str(r, get(r, addr, "city"));
    r_str(r, get(r, addr, "zip"));
    r_str(r, get(r, addr, "country"));
    r_double(r, get(r, ship, "cost"));
    const void *tot = get(r, root, "totals");
    r_double(r, get(r, tot, "subtotal"));
    r_double(r, get(r, tot, "tax"));
    r_double(r, get(r, tot, "total"));
    r_str(r, get(r, root, "notes"));
    const void *matrix = get(r, root, "matrix");
    for (long i = 0, m = L->array_len(r->doc, matrix); i < m; i++) {
        const void *row = L->array_at(r->doc, matrix, (size_t)i);
        for (long k = 0, rn = L->array_len(r->doc, row); k < rn; k++)
            r_int(r, L->array_at(r->doc, row, (size_t)k));
    }
    const void *flags = get(r, root, "flags");
    for (long i = 0, m = L->array_len(r->doc, flags); i < m; i++)
        r_bool(r, L->array_at(r->doc, flags, (size_t)i));
}

static void read_large(reader *r, const void *root)
{
    const json_lib *L = r->lib;
    long n = L->array_len(r->doc, root);
    if (n != USERS)
        r->bad++;
    for (long i = 0; i < n; i++) {
        const void *u = L->array_at(r->doc, root, (size_t)i);
        r_int(r, get(r, u, "id"));
        r_str(r, get(r, u, "name"));
        r_int(r, get(r, u, "age"));
        r_bool(r, get(r, u, "active"));
        r_double(r, get(r, u, "score"));
        const void *tags = get(r, u, "tags");
        for (long k = 0, m = L->array_len(r->doc, tags); k < m; k++)
            r_str(r, L->array_at(r->doc, tags, (size_t)k));
        const void *addr = get(r, u, "address");
        r_str(r, get(r, addr, "city"));
        r_str(r, get(r, addr, "zip"));
    }
}

/* Parse document d with lib, read all of it (unless parse_only) into s,
 * free it. 0, or -1 after printing why. */
static int run_once(const json_lib *lib, int d, bool parse_only, bool full, sum *s)
{
    static void (*readers[NDOCS])(reader *, const void *) = {read_small, read_medium, read_large};
    char err[256];
    void *doc = lib->parse(docs[d].text.p, docs[d].text.n, err, sizeof err);
    if (!doc) {
        fprintf(stderr, "bench_json: %s cannot parse the %s document: %s\n", lib->name,
                doc_names[d], err);
        return -1;
    }
    int bad = 0;
    if (!parse_only) {
        reader r = {.lib = lib, .doc = doc, .s = s, .full = full};
        readers[d](&r, lib->root(doc));
        bad = r.bad;
    }
    lib->free_doc(doc);
    if (bad) {
        fprintf(stderr, "bench_json: %s: %d reads failed in the %s document\n", lib->name, bad,
                doc_names[d]);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- timing */

enum { MAX_ROUNDS = 15, TARGET_NS = 40 * 1000 * 1000 };

typedef struct result {
    bool ok;
    long iters[2];                 /* per loop: [parse+read, parse only] */
    double samples[2][MAX_ROUNDS]; /* ns per document */
    double median[2];
    long allocs, tree_bytes, peak_bytes;
} result;

static result results[NDOCS][8];

/* ------------------------------------------------------ heap counting */

static bool counting;
static long heap_now, heap_peak, heap_allocs;

#ifndef WEAVE_SANITIZE
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static void count(void *p, long sign)
{
    if (!p)
        return;
    heap_now += sign * (long)malloc_usable_size(p);
    if (heap_now > heap_peak)
        heap_peak = heap_now;
    if (sign > 0)
        heap_allocs++;
}

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    if (counting)
        count(p, 1);
    return p;
}

void *calloc(size_t n, size_t size)
{
    void *p = __libc_calloc(n, size);
    if (counting)
        count(p, 1);
    return p;
}

void *realloc(void *p, size_t n)
{
    if (!counting)
        return __libc_realloc(p, n);
    long before = p ? (long)malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (q) {
        heap_now -= before;
        count(q, 1);
    }
    return q;
}

void free(void *p)
{
    if (counting)
        count(p, -1);
    __libc_free(p);
}
#define HEAP_COUNTED true
#else
#define HEAP_COUNTED false
#endif

/* Check the values read, size the loops, measure the tree. */
static int prepare(int d, int c)
{
    const json_lib *lib = candidates[c];
    result *res = &results[d][c];
    sum full = {0};
    if (run_once(lib, d, false, true, &full) < 0)
        return -1;
    if (!sum_equal(&full, &docs[d].expected_full)) {
        fprintf(stderr, "bench_json: %s read the %s document wrong (%llu of %llu values)\n",
                lib->name, doc_names[d], (unsigned long long)full.values,
                (unsigned long long)docs[d].expected_full.values);
        return -1;
    }
    for (int mode = 0; mode < 2; mode++) {
        sum s = {0};
        long n = 1;
        int64_t t;
        for (;;) { /* warm up and find a loop of about TARGET_NS */
            t = now_ns();
            for (long i = 0; i < n; i++)
                if (run_once(lib, d, mode == 1, false, &s) < 0)
                    return -1;
            t = now_ns() - t;
            if (t >= TARGET_NS / 8)
                break;
            n *= 4;
        }
        res->iters[mode] = (long)((double)n * TARGET_NS / (double)t) + 1;
    }
    char err[256];
    heap_now = heap_peak = heap_allocs = 0;
    counting = true;
    void *doc = lib->parse(docs[d].text.p, docs[d].text.n, err, sizeof err);
    res->allocs = heap_allocs;
    res->tree_bytes = heap_now;
    res->peak_bytes = heap_peak;
    lib->free_doc(doc);
    counting = false;
    res->ok = true;
    return 0;
}

static int measure(int d, int c, int round)
{
    result *res = &results[d][c];
    for (int mode = 0; mode < 2; mode++) {
        sum s = {0};
        int64_t t = now_ns();
        for (long i = 0; i < res->iters[mode]; i++)
            if (run_once(candidates[c], d, mode == 1, false, &s) < 0)
                return -1;
        t = now_ns() - t;
        /* Every loop must have read every value. */
        if (mode == 0 && s.values != docs[d].expected.values * (uint64_t)res->iters[0]) {
            fprintf(stderr, "bench_json: %s: values went missing\n", candidates[c]->name);
            return -1;
        }
        res->samples[mode][round] = (double)t / (double)res->iters[mode];
    }
    return 0;
}

/* ------------------------------------------------------------ load */

static void print_ns(char *out, size_t size, double ns)
{
    if (ns >= 1e6)
        snprintf(out, size, "%.2f ms", ns / 1e6);
    else if (ns >= 1e4)
        snprintf(out, size, "%.1f us", ns / 1e3);
    else
        snprintf(out, size, "%.0f ns", ns);
}

static int cmd_table(int rounds)
{
    int failed = 0;
    int64_t t0 = now_ns();
    double busy0 = machine_busy_seconds(), own0 = own_cpu_seconds();
    printf("# bench_json: parse + read every field; median of %d alternating rounds\n", rounds);
    for (int d = 0; d < NDOCS; d++) {
        for (int c = 0; c < ncandidates; c++)
            if (prepare(d, c) < 0)
                failed = 1;
        for (int r = 0; r < rounds; r++)
            for (int c = 0; c < ncandidates; c++)
                if (results[d][c].ok && measure(d, c, r) < 0) {
                    results[d][c].ok = false;
                    failed = 1;
                }
        double best = 0;
        for (int c = 0; c < ncandidates; c++) {
            result *res = &results[d][c];
            if (!res->ok)
                continue;
            for (int mode = 0; mode < 2; mode++)
                res->median[mode] = median(res->samples[mode], rounds);
            if (best == 0 || res->median[0] < best)
                best = res->median[0];
        }
        size_t n = docs[d].text.n;
        printf("\n## %s document: %zu bytes, %llu values\n\n", doc_names[d], n,
               (unsigned long long)docs[d].expected.values);
        printf("| library | parse + read | parse only | MB/s | vs fastest | allocs | tree bytes | "
               "peak bytes |\n");
        printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for (int c = 0; c < ncandidates; c++) {
            result *res = &results[d][c];
            if (!res->ok) {
                printf("| %s | FAILED | | | | | | |\n", candidates[c]->name);
                continue;
            }
            char a[32], b[32];
            print_ns(a, sizeof a, res->median[0]);
            print_ns(b, sizeof b, res->median[1]);
            printf("| %s | %s | %s | %.0f | %.2fx |", candidates[c]->name, a, b,
                   (double)n / res->median[0] * 1e3, res->median[0] / best);
            if (HEAP_COUNTED)
                printf(" %ld | %ld | %ld |\n", res->allocs, res->tree_bytes, res->peak_bytes);
            else
                printf(" - | - | - |\n");
        }
        fflush(stdout);
    }
    /* The writer: each document written again and again into one buffer;
     * the best of `rounds` loops (preemption only ever adds time). */
    printf("\n");
    for (int d = 0; d < NDOCS; d++) {
        wv_buf out = {0};
        double best = 0;
        long n = 1;
        for (int round = 0; round < rounds + 1; round++) {
            int64_t t = now_ns();
            for (long i = 0; i < n; i++) {
                if (write_document(d, &out, NULL, NULL) < 0)
                    return 1;
            }
            t = now_ns() - t;
            if (round == 0) { /* warm-up, and size the loop */
                n = (long)((double)n * TARGET_NS / (double)(t ? t : 1)) + 1;
                continue;
            }
            double per_doc = (double)t / (double)n;
            if (best == 0 || per_doc < best)
                best = per_doc;
        }
        printf("# writer: %s document in %.0f ns, %.0f MB/s (generator's snprintf included)\n",
               doc_names[d], best, (double)out.n / best * 1e3);
        wv_buf_free(&out);
    }

    /* weave's reader against the anchor (ratio > 1: weave is faster) */
    int weave = -1, anchor = -1;
    for (int c = 0; c < ncandidates; c++) {
        if (candidates[c] == &json_lib_weave)
            weave = c;
        if (candidates[c] == &ANCHOR_LIB)
            anchor = c;
    }
    printf("\n");
    for (int d = 0; d < NDOCS && weave >= 0; d++) {
        result *w = &results[d][weave];
        if (!w->ok)
            continue;
        if (anchor >= 0 && results[d][anchor].ok) {
            double a = results[d][anchor].median[0];
            printf("BENCH json.parse_%s value=%.1f unit=ns anchor=%s anchor_value=%.1f "
                   "ratio=%.2f\n",
                   doc_names[d], w->median[0], ANCHOR_NAME, a, a / w->median[0]);
        } else {
            printf("BENCH json.parse_%s value=%.1f unit=ns anchor=none anchor_value=0 ratio=0\n",
                   doc_names[d], w->median[0]);
        }
    }
    print_load(t0, busy0, own0);
    return failed;
}

/* -------------------------------------------------------------- probes */

typedef struct probe {
    const char *what;
    const char *text;
    size_t n; /* 0: strlen(text) */
} probe;

static char *repeat(const char *open, const char *close, int times)
{
    size_t a = strlen(open), b = strlen(close);
    char *s = malloc((a + b) * (size_t)times + 1);
    if (!s)
        return NULL;
    for (int i = 0; i < times; i++)
        memcpy(s + a * (size_t)i, open, a);
    for (int i = 0; i < times; i++)
        memcpy(s + a * (size_t)times + b * (size_t)i, close, b);
    s[(a + b) * (size_t)times] = '\0';
    return s;
}

/* What lib makes of p, in a child process (a crash is an answer too). */
static void run_probe(const json_lib *lib, const probe *p)
{
    fflush(stdout);
    int fds[2];
    if (pipe(fds) < 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        char err[256] = "", line[400];
        size_t n = p->n ? p->n : strlen(p->text);
        void *doc = lib->parse(p->text, n, err, sizeof err);
        const void *root = doc ? lib->root(doc) : NULL;
        if (!doc) {
            for (char *c = err; *c; c++)
                if (*c == '\n' || *c == '|')
                    *c = ' ';
            snprintf(line, sizeof line, "rejected: %.200s", err);
        } else {
            const char *s;
            size_t len;
            int64_t i;
            double x;
            const void *v = lib->array_len(doc, root) > 0 ? lib->array_at(doc, root, 0) : root;
            const void *a = lib->get(doc, root, "a");
            if (a)
                v = a;
            if (lib->as_string(doc, v, &s, &len) == 0)
                snprintf(line, sizeof line, "accepted: string of %zu bytes", len);
            else if (lib->as_i64(doc, v, &i) == 0)
                snprintf(line, sizeof line, "accepted: integer %lld", (long long)i);
            else if (lib->as_double(doc, v, &x) == 0)
                snprintf(line, sizeof line, "accepted: number %g", x);
            else
                snprintf(line, sizeof line, "accepted");
            lib->free_doc(doc);
        }
        ssize_t w = write(fds[1], line, strlen(line));
        (void)w;
        _exit(0);
    }
    close(fds[1]);
    char buf[400];
    ssize_t got = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf(" CRASH (signal %d) |", WTERMSIG(status));
    else
        printf(" %.*s |", got > 0 ? (int)got : 0, buf);
}

static int cmd_probe(void)
{
    char *deep = repeat("[", "]", 100000), *deep65 = repeat("[", "]", 65);
    char *deep_obj = repeat("{\"a\":", "}", 100000);
    if (!deep || !deep65 || !deep_obj)
        return 1;
    /* deep_obj ends in "{"a":}" : make the innermost value a 1 */
    size_t k = strlen("{\"a\":") * 100000;
    char *deep_obj_ok = malloc(k + 1 + 100000 + 1);
    if (!deep_obj_ok)
        return 1;
    memcpy(deep_obj_ok, deep_obj, k);
    deep_obj_ok[k] = '1';
    memcpy(deep_obj_ok + k + 1, deep_obj + k, 100000 + 1);
    const probe probes[] = {
        {"65 nested arrays", deep65, 0},
        {"100,000 nested arrays", deep, 0},
        {"100,000 nested objects", deep_obj_ok, 0},
        {"invalid UTF-8 byte in a string", "[\"\xff\"]", 0},
        {"overlong UTF-8 (C0 AF)", "[\"\xc0\xaf\"]", 0},
        {"UTF-8 surrogate (ED A0 80)", "[\"\xed\xa0\x80\"]", 0},
        {"lone surrogate escape \\ud800", "[\"\\ud800\"]", 0},
        {"escaped NUL \\u0000", "[\"a\\u0000b\"]", 0},
        {"raw control byte in a string", "[\"a\tb\"]", 0},
        {"NUL byte after the value", "[1]\0[2]", 7},
        {"trailing garbage", "[1] x", 0},
        {"two values", "[1] [2]", 0},
        {"trailing comma", "[1,]", 0},
        {"missing comma", "[1 2]", 0},
        {"comment", "[1 /* c */]", 0},
        {"leading zero", "[01]", 0},
        {"bare literal typo", "[tru]", 0},
        {"NaN", "[NaN]", 0},
        {"2^63 (int64 overflow)", "[9223372036854775808]", 0},
        {"-2^63 (int64 min)", "[-9223372036854775808]", 0},
        {"1e400 (double overflow)", "[1e400]", 0},
        {"1.5 as integer?", "[1.5]", 0},
        {"duplicate keys", "{\"a\":1,\"a\":2}", 0},
        {"truncated", "{\"a\":[1,2", 0},
        {"empty input", "", 0},
        {"top-level scalar 42", "42", 0},
        {"invalid escape \\x", "[\"\\x41\"]", 0},
    };
    printf("| input |");
    for (int c = 0; c < ncandidates; c++)
        printf(" %s |", candidates[c]->name);
    printf("\n| --- |");
    for (int c = 0; c < ncandidates; c++)
        printf(" --- |");
    printf("\n");
    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
        printf("| %s |", probes[i].what);
        for (int c = 0; c < ncandidates; c++)
            run_probe(candidates[c], &probes[i]);
        printf("\n");
    }
    free(deep);
    free(deep65);
    free(deep_obj);
    free(deep_obj_ok);
    return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "table";
    collect_candidates();
    if (generate() < 0)
        return 1;
    if (strcmp(cmd, "probe") == 0)
        return cmd_probe();
    if (strcmp(cmd, "dump") == 0) {
        for (int d = 0; d < NDOCS; d++)
            if (argc > 2 && strcmp(argv[2], doc_names[d]) == 0)
                return fwrite(docs[d].text.p, 1, docs[d].text.n, stdout) == docs[d].text.n ? 0 : 1;
        fprintf(stderr, "usage: bench_json dump small|medium|large\n");
        return 2;
    }
    if (strcmp(cmd, "table") != 0) {
        fprintf(stderr, "usage: bench_json [table [rounds]] | probe | dump <doc>\n");
        return 2;
    }
    int rounds = getenv("BENCH_LONG") ? 9 : 5;
    if (argc > 2)
        rounds = atoi(argv[2]);
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 5;
    return cmd_table(rounds);
}
