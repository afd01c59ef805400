/*
 * libFuzzer target for the pickle codec (src/tasks/pickle.c). `make fuzz`
 * runs it; its seeds (pickles and JSON values of
 * tests/unit/pickle_fixtures/) are in fuzz/corpus/fuzz_pickle/.
 *
 * Input: one control byte, then data. Bit 0 of the control byte says what
 * the data is: 0 a pickle, 1 a JSON text.
 *
 * A pickle either fails with -EBADMSG, -ENOTSUP or -EMSGSIZE and a
 * "pickle: " message, or reads as JSON that wv_json_parse accepts (but
 * for a str holding U+0000, which it refuses as \u0000); that
 * value pickles, and the pickle reads back as the same JSON text and
 * pickles to the same bytes (a fixed point). A JSON text that parses
 * either pickles (-ERANGE and -EINVAL for what the writer refuses), and
 * then reads back and pickles again to the same bytes; as a job's
 * arguments (an array) it makes a job tuple that reads back. A violation
 * aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/pickle.h"
#include "fuzz_util.h"
#include "weave/rt.h"

static bool same(const wv_buf *a, const wv_buf *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

/* v pickles; that pickle reads back, and pickles again to the same bytes. */
static void fixed_point(const wv_json_val *v)
{
    wv_buf pk = {0}, text = {0}, pk2 = {0}, text2 = {0};
    int rc = pickle_dumps(v, &pk);
    if (rc == 0 && pk.n > PICKLE_MAX_BYTES) {
        /* a value a small pickle shared (memo GETs) may be too big written out */
    } else if (rc == 0) {
        CHECK(pickle_loads_json(pk.p, pk.n, &text) == 0);
        wv_json_doc *doc;
        wv_json_parse_opts o = {.max_bytes = PICKLE_MAX_JSON};
        CHECK(wv_json_parse_with(text.p, text.n, &o, &doc) == 0);
        CHECK(pickle_dumps(wv_json_doc_root(doc), &pk2) == 0);
        CHECK(same(&pk, &pk2));
        CHECK(pickle_loads_json(pk2.p, pk2.n, &text2) == 0);
        CHECK(same(&text, &text2));
        wv_json_doc_free(doc);
    } else {
        CHECK(rc == -ERANGE || rc == -EINVAL);
    }
    wv_buf_free(&pk);
    wv_buf_free(&text);
    wv_buf_free(&pk2);
    wv_buf_free(&text2);
}

static void from_pickle(const char *p, size_t n)
{
    wv_buf text = {0};
    int rc = pickle_loads_json(p, n, &text);
    if (rc == 0) {
        /* a str may hold U+0000: JSON's \u0000, which wv_json_parse refuses */
        wv_json_doc *doc;
        bool nul = memmem(text.p, text.n, "\\u0000", 6) != NULL;
        wv_json_parse_opts o = {.max_bytes = PICKLE_MAX_JSON};
        CHECK(wv_json_parse_with(text.p, text.n, &o, &doc) == 0 || nul);
        if (!nul)
            fixed_point(wv_json_doc_root(doc));
        wv_json_doc_free(doc);
    } else {
        CHECK(rc == -EBADMSG || rc == -ENOTSUP || rc == -EMSGSIZE);
        CHECK(strncmp(wv_errmsg(), "pickle: ", 8) == 0);
    }
    wv_buf_free(&text);
}

static void from_json(const char *p, size_t n)
{
    wv_json_doc *doc;
    if (wv_json_parse(p, n, &doc) < 0)
        return;
    const wv_json_val *v = wv_json_doc_root(doc);
    fixed_point(v);
    if (wv_json_type_of(v) == WV_JSON_ARRAY) {
        wv_buf pk = {0}, text = {0};
        if (pickle_dumps_call("tasks.fuzz", v, NULL, &pk) == 0)
            CHECK(pickle_loads_json(pk.p, pk.n, &text) == 0);
        wv_buf_free(&pk);
        wv_buf_free(&text);
    }
    wv_json_doc_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *p = copy_exact(data + 1, size - 1);
    if (data[0] & 1)
        from_json(p, size - 1);
    else
        from_pickle(p, size - 1);
    free(p);
    return 0;
}
