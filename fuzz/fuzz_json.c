/*
 * libFuzzer target for the JSON reader (src/json/parse.c): any input either
 * parses or fails with -EINVAL / -EMSGSIZE and a message, never crashes; a
 * parsed document is walked completely (every getter on every value), then
 * written back with the streaming writer, and that text must parse again.
 * (A number beyond a double, valid JSON, is read as an error by the getters.)
 */
#include <stdlib.h>
#include <string.h>

#include "weave/json.h"
#include "fuzz_util.h"

static void copy(wv_json *w, const wv_json_val *v, int depth)
{
    if (depth > 200)
        abort(); /* the parser's depth limit must have stopped this */
    switch (wv_json_type_of(v)) {
    case WV_JSON_OBJECT: {
        wv_json_object_begin(w);
        for (size_t i = 0;; i++) {
            const char *k;
            size_t kn;
            const wv_json_val *m = wv_json_object_at(v, i, &k, &kn);
            if (!m)
                break;
            wv_json_keyn(w, k, kn);
            copy(w, m, depth + 1);
        }
        wv_json_object_end(w);
        break;
    }
    case WV_JSON_ARRAY:
        wv_json_array_begin(w);
        for (long i = 0; i < wv_json_array_len(v); i++)
            copy(w, wv_json_array_at(v, (size_t)i), depth + 1);
        wv_json_array_end(w);
        break;
    case WV_JSON_STRING: {
        const char *s;
        size_t n;
        if (wv_json_as_string(v, &s, &n) != 0)
            abort();
        wv_json_stringn(w, s, n);
        break;
    }
    case WV_JSON_NUMBER: {
        int64_t i;
        double d;
        if (wv_json_as_i64(v, &i) == 0)
            wv_json_int(w, i);
        else if (wv_json_as_double(v, &d) == 0)
            wv_json_double(w, d);
        else
            wv_json_null(w); /* valid JSON, but beyond a double (1e999) */
        break;
    }
    case WV_JSON_BOOL: {
        bool b;
        if (wv_json_as_bool(v, &b) != 0)
            abort();
        wv_json_bool(w, b);
        break;
    }
    default:
        if (!wv_json_is_null(v))
            abort();
        wv_json_null(w);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wv_json_doc *doc = NULL;
    int rc = wv_json_parse((const char *)data, size, &doc);
    if (rc != 0) {
        if (doc || (rc != -EINVAL && rc != -EMSGSIZE && rc != -ENOMEM))
            abort();
        return 0;
    }
    wv_buf out = {0};
    wv_json w;
    wv_json_init(&w, &out);
    copy(&w, wv_json_doc_root(doc), 0);
    if (wv_json_finish(&w) != 0)
        abort(); /* what was parsed must be writable */
    wv_json_doc *again = NULL;
    if (wv_json_parse(out.p, out.n, &again) != 0)
        abort(); /* and what we write must parse */
    wv_json_doc_free(again);
    wv_json_doc_free(doc);
    wv_buf_free(&out);
    return 0;
}
