/*
 * libFuzzer target for the S3 client's XML reader (src/s3/xml.c). `make
 * fuzz` runs it; its seeds and every crash input are kept in
 * fuzz/corpus/fuzz_s3_xml/.
 *
 * Input: one control byte (bits 0-3: max_nodes, 0 = the default, else
 * 1..15), then the document. The document is parsed from an exact-size
 * heap copy (ASan catches a read past its end). A refusal must be
 * -EPROTO, -EMSGSIZE or -ENOMEM with a reason naming a byte. An accepted
 * document must give a consistent tree: at least one element and at most
 * max_nodes; node 0 the root; every other node's parent before it and
 * finding it among its children; at most 32 deep; names of ASCII name
 * characters; every text NUL-terminated at its length, valid UTF-8, with
 * no NUL inside. The tree is then written back as XML (texts
 * escaped) and parsed again: it must give the same names and texts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3_internal.h"
#include "fuzz_util.h"

static bool valid_utf8(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        if (!len || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

static bool name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

static int depth_of(const s3_xml *x, int32_t k)
{
    int d = 1;
    while ((k = x->nodes[k].parent) >= 0)
        d++;
    return d;
}

static void check_tree(const s3_xml *x, int32_t max_nodes)
{
    CHECK(x->n >= 1 && x->n <= (max_nodes ? max_nodes : 100000));
    CHECK(x->nodes[0].parent == -1);
    for (int32_t k = 0; k < x->n; k++) {
        const s3_xml_node *nd = &x->nodes[k];
        CHECK(nd->name_len > 0 && name_ok(nd->name, nd->name_len));
        CHECK(nd->text[nd->text_len] == '\0' && strlen(nd->text) == nd->text_len);
        CHECK(valid_utf8((const unsigned char *)nd->text, nd->text_len));
        CHECK(nd->text_len == 0 || nd->first_child == -1); /* no mixed content */
        CHECK(depth_of(x, k) <= 32);
        if (k == 0)
            continue;
        CHECK(nd->parent >= 0 && nd->parent < k);
        bool found = false;
        for (int32_t c = x->nodes[nd->parent].first_child; c >= 0; c = x->nodes[c].next_sibling)
            found = found || c == k;
        CHECK(found);
    }
}

/* Write node k and its children as XML. */
static void write_node(const s3_xml *x, int32_t k, FILE *out)
{
    const s3_xml_node *nd = &x->nodes[k];
    fprintf(out, "<%.*s>", (int)nd->name_len, nd->name);
    for (size_t i = 0; i < nd->text_len; i++) {
        char c = nd->text[i];
        if (c == '<')
            fputs("&lt;", out);
        else if (c == '&')
            fputs("&amp;", out);
        else if (c == '\r')
            fputs("&#13;", out); /* a literal CR would be read back as LF */
        else
            fputc(c, out);
    }
    for (int32_t c = nd->first_child; c >= 0; c = x->nodes[c].next_sibling)
        write_node(x, c, out);
    fprintf(out, "</%.*s>", (int)nd->name_len, nd->name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int32_t max_nodes = data[0] & 15;
    char *doc = copy_exact(data + 1, size - 1);
    s3_xml x = {.max_nodes = max_nodes};
    char why[160];
    int rc = s3_xml_parse(doc, size - 1, &x, why, sizeof why);
    if (rc < 0) {
        CHECK(rc == -EPROTO || rc == -EMSGSIZE || rc == -ENOMEM);
        CHECK(strstr(why, "at byte") != NULL);
    } else {
        check_tree(&x, max_nodes);
        char *again = NULL;
        size_t again_n = 0;
        FILE *out = open_memstream(&again, &again_n);
        CHECK(out);
        write_node(&x, 0, out);
        CHECK(fclose(out) == 0);
        s3_xml y = {.max_nodes = max_nodes};
        CHECK(s3_xml_parse(again, again_n, &y, why, sizeof why) == 0);
        CHECK(y.n == x.n);
        for (int32_t k = 0; k < x.n; k++) {
            CHECK(y.nodes[k].name_len == x.nodes[k].name_len);
            CHECK(memcmp(y.nodes[k].name, x.nodes[k].name, x.nodes[k].name_len) == 0);
            CHECK(y.nodes[k].text_len == x.nodes[k].text_len);
            CHECK(memcmp(y.nodes[k].text, x.nodes[k].text, x.nodes[k].text_len) == 0);
            CHECK(y.nodes[k].parent == x.nodes[k].parent);
        }
        s3_xml_free(&y);
        free(again);
    }
    s3_xml_free(&x);
    free(doc);
    return 0;
}
