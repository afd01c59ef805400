/*
 * A strict, bounded XML reader for what S3 and GCS answer
 * (ListBucketResult, InitiateMultipartUploadResult,
 * CompleteMultipartUploadResult, CopyObjectResult, Error): a whole reply in
 * memory becomes a tree of elements, each with its decoded text.
 *
 * Only what those replies use is accepted, and anything else is refused
 * rather than guessed at: elements with attributes, text, the five named
 * entities and character references. Outside the root element a
 * declaration, comments and processing instructions are skipped; a
 * DOCTYPE (and so every user-defined entity: no expansion bombs, no
 * external fetches), CDATA, comments inside the root, mixed content (text
 * beside child elements), invalid UTF-8, control characters and names
 * beyond ASCII are errors. Depth and element count are bounded, and the
 * caller bounds the input (the HTTP client's max_response).
 *
 * Two passes over the bytes: the first checks everything and builds the
 * tree with each text's raw span; the second decodes every text in place
 * and NUL-terminates it, writing over the '<' that followed it, which the
 * first pass no longer needs. Decoding only ever shrinks a text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3_internal.h"

enum { MAX_DEPTH = 32, DEFAULT_MAX_NODES = 100000 };

static char empty_text[1];

typedef struct frame {
    int32_t node;
    const char *qname; /* the name as written, prefix included, for the end tag */
    size_t qname_len;
    size_t text_at, text_len; /* the text's raw span (a leaf has one) */
    bool has_children, has_text;
} frame;

typedef struct parser {
    char *p;
    size_t n, i;
    s3_xml *x;
    frame stack[MAX_DEPTH];
    int depth;
    char *why;
    size_t why_cap;
} parser;

static int fail(parser *ps, int rc, const char *what)
{
    snprintf(ps->why, ps->why_cap, "XML: %s at byte %zu", what, ps->i);
    return rc;
}

static bool at(const parser *ps, const char *s)
{
    size_t k = strlen(s);
    return ps->n - ps->i >= k && memcmp(ps->p + ps->i, s, k) == 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_space(parser *ps)
{
    while (ps->i < ps->n && is_space(ps->p[ps->i]))
        ps->i++;
}

static bool name_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':';
}

static bool name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* A name at ps->i: its length (> 0), or 0 when none is there. */
static size_t read_name(parser *ps)
{
    size_t start = ps->i;
    if (ps->i >= ps->n || !name_start((unsigned char)ps->p[ps->i]))
        return 0;
    while (ps->i < ps->n && name_char((unsigned char)ps->p[ps->i]))
        ps->i++;
    return ps->i - start;
}

/* ---------------------------------------------------- characters, entities */

/* The length of the UTF-8 sequence at p[0..n) (1 to 4), or 0 when it is
 * not valid UTF-8 or is a control character XML forbids. */
static size_t utf8_char(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return c >= 0x20 || c == '\t' || c == '\n' || c == '\r' ? 1 : 0;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0;
        if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < len; k++)
        if (p[k] < 0x80 || p[k] > 0xBF)
            return 0;
    return len;
}

/* The entity at p[0..n) (p[0] == '&'): its length up to and including
 * ';', with its code point in *cp; 0 when it is not one we accept. */
static size_t entity(const char *p, size_t n, uint32_t *cp)
{
    static const struct {
        const char *name;
        uint32_t cp;
    } named[] = {{"&lt;", '<'}, {"&gt;", '>'}, {"&amp;", '&'}, {"&quot;", '"'}, {"&apos;", '\''}};
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
        size_t len = strlen(named[k].name);
        if (n >= len && memcmp(p, named[k].name, len) == 0) {
            *cp = named[k].cp;
            return len;
        }
    }
    if (n < 4 || p[1] != '#')
        return 0;
    bool hex = p[2] == 'x';
    size_t i = hex ? 3 : 2, digits = 0;
    uint32_t v = 0;
    for (; i < n && p[i] != ';'; i++, digits++) {
        char c = p[i];
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (hex && c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (hex && c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return 0;
        if (digits >= 8)
            return 0;
        v = v * (hex ? 16 : 10) + d;
    }
    if (i >= n || digits == 0)
        return 0;
    /* a character XML allows */
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || v == 0xFFFE || v == 0xFFFF ||
        (v < 0x20 && v != '\t' && v != '\n' && v != '\r'))
        return 0;
    *cp = v;
    return i + 1;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Check the character data at ps->i up to `stop` (a '<' or quote) without
 * decoding: entities well formed, UTF-8 valid, no forbidden control
 * bytes. Sets *blank when it is all whitespace. */
static int check_chars(parser *ps, char stop, bool *blank)
{
    *blank = true;
    while (ps->i < ps->n && ps->p[ps->i] != stop) {
        char c = ps->p[ps->i];
        if (c == '<')
            return fail(ps, -EPROTO, "'<' inside an attribute value");
        if (c == '&') {
            uint32_t cp;
            size_t len = entity(ps->p + ps->i, ps->n - ps->i, &cp);
            if (!len)
                return fail(ps, -EPROTO, "an unknown or malformed entity");
            ps->i += len;
            *blank = false;
            continue;
        }
        size_t len = utf8_char((const unsigned char *)ps->p + ps->i, ps->n - ps->i);
        if (!len)
            return fail(ps, -EPROTO, "invalid UTF-8 or a control character");
        if (!is_space(c))
            *blank = false;
        ps->i += len;
    }
    return 0;
}

/* Decode t[0..n) in place (entities, and line ends as XML normalises
 * them: CR LF and a lone CR become LF); the new length. */
static size_t decode(char *t, size_t n)
{
    size_t r = 0, w = 0;
    while (r < n) {
        if (t[r] == '&') {
            uint32_t cp = 0;
            size_t len = entity(t + r, n - r, &cp); /* checked by the first pass */
            r += len ? len : 1;
            w += put_utf8(t + w, cp);
        } else if (t[r] == '\r') {
            t[w++] = '\n';
            r += r + 1 < n && t[r + 1] == '\n' ? 2 : 1;
        } else {
            t[w++] = t[r++];
        }
    }
    return w;
}

/* ---------------------------------------------------------- the tree */

static int new_node(parser *ps, int32_t parent, const char *qname, size_t qlen)
{
    s3_xml *x = ps->x;
    int32_t max = x->max_nodes > 0 ? x->max_nodes : DEFAULT_MAX_NODES;
    if (x->n >= max)
        return fail(ps, -EMSGSIZE, "too many elements");
    if (x->n == x->cap) {
        int32_t cap = x->cap ? x->cap * 2 : 64;
        if (cap > max)
            cap = max;
        s3_xml_node *nodes = realloc(x->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes)
            return fail(ps, -ENOMEM, "out of memory");
        x->nodes = nodes;
        x->cap = cap;
    }
    int32_t id = x->n++;
    const char *local = qname;
    for (size_t k = 0; k < qlen; k++)
        if (qname[k] == ':')
            local = qname + k + 1;
    x->nodes[id] = (s3_xml_node){
        .name = local,
        .name_len = (uint32_t)(qlen - (size_t)(local - qname)),
        .text = empty_text,
        .parent = parent,
        .first_child = -1,
        .last_child = -1,
        .next_sibling = -1,
    };
    if (parent >= 0) {
        s3_xml_node *pn = &x->nodes[parent];
        if (pn->last_child >= 0)
            x->nodes[pn->last_child].next_sibling = id;
        else
            pn->first_child = id;
        pn->last_child = id;
    }
    return id;
}

/* ------------------------------------------------------------- parsing */

/* A comment or a processing instruction outside the root; false when
 * there is none at ps->i. */
static int skip_misc(parser *ps, bool *skipped)
{
    *skipped = false;
    const char *end;
    if (at(ps, "<!--"))
        end = "-->";
    else if (at(ps, "<?"))
        end = "?>";
    else
        return 0;
    size_t k = strlen(end);
    for (size_t j = ps->i + 2; j + k <= ps->n; j++)
        if (memcmp(ps->p + j, end, k) == 0) {
            ps->i = j + k;
            *skipped = true;
            return 0;
        }
    return fail(ps, -EPROTO, "an unterminated comment or processing instruction");
}

/* Attributes and the end of a start tag: sets *empty for "/>". */
static int read_attributes(parser *ps, bool *empty)
{
    for (;;) {
        size_t before = ps->i;
        skip_space(ps);
        if (ps->i >= ps->n)
            return fail(ps, -EPROTO, "the document ends inside a tag");
        if (ps->p[ps->i] == '>') {
            ps->i++;
            *empty = false;
            return 0;
        }
        if (at(ps, "/>")) {
            ps->i += 2;
            *empty = true;
            return 0;
        }
        if (ps->i == before)
            return fail(ps, -EPROTO, "no space before an attribute");
        if (!read_name(ps))
            return fail(ps, -EPROTO, "a malformed attribute");
        skip_space(ps);
        if (ps->i >= ps->n || ps->p[ps->i] != '=')
            return fail(ps, -EPROTO, "an attribute without '='");
        ps->i++;
        skip_space(ps);
        if (ps->i >= ps->n || (ps->p[ps->i] != '"' && ps->p[ps->i] != '\''))
            return fail(ps, -EPROTO, "an attribute value without quotes");
        char quote = ps->p[ps->i++];
        bool blank;
        int rc = check_chars(ps, quote, &blank);
        if (rc < 0)
            return rc;
        if (ps->i >= ps->n)
            return fail(ps, -EPROTO, "the document ends inside an attribute value");
        ps->i++;
    }
}

static int start_tag(parser *ps)
{
    ps->i++; /* '<' */
    size_t at_name = ps->i;
    size_t len = read_name(ps);
    if (!len)
        return fail(ps, -EPROTO, "a malformed element name");
    int32_t parent = -1;
    if (ps->depth > 0) {
        frame *f = &ps->stack[ps->depth - 1];
        if (f->has_text)
            return fail(ps, -EPROTO, "text beside child elements (mixed content)");
        f->has_children = true;
        parent = f->node;
    }
    const char *colon = memrchr(ps->p + at_name, ':', len);
    const char *local = colon ? colon + 1 : ps->p + at_name;
    if (local == ps->p + at_name + len || !name_start((unsigned char)*local) || *local == ':')
        return fail(ps, -EPROTO, "a malformed element name");
    int id = new_node(ps, parent, ps->p + at_name, len);
    if (id < 0)
        return id;
    bool empty;
    int rc = read_attributes(ps, &empty);
    if (rc < 0)
        return rc;
    if (empty)
        return 0;
    if (ps->depth == MAX_DEPTH)
        return fail(ps, -EMSGSIZE, "elements nested too deep");
    ps->stack[ps->depth++] = (frame){.node = id, .qname = ps->p + at_name, .qname_len = len};
    return 0;
}

static int end_tag(parser *ps)
{
    ps->i += 2; /* "</" */
    size_t at_name = ps->i;
    size_t len = read_name(ps);
    frame *f = &ps->stack[ps->depth - 1];
    if (!len || len != f->qname_len || memcmp(ps->p + at_name, f->qname, len) != 0)
        return fail(ps, -EPROTO, "an end tag that does not match its start tag");
    skip_space(ps);
    if (ps->i >= ps->n || ps->p[ps->i] != '>')
        return fail(ps, -EPROTO, "a malformed end tag");
    ps->i++;
    if (!f->has_children && f->text_len) {
        s3_xml_node *nd = &ps->x->nodes[f->node];
        nd->text = ps->p + f->text_at;
        nd->text_len = (uint32_t)f->text_len; /* raw for now */
    }
    ps->depth--;
    return 0;
}

static int content(parser *ps)
{
    while (ps->depth > 0) {
        if (ps->i >= ps->n)
            return fail(ps, -EPROTO, "the document ends inside an element");
        if (ps->p[ps->i] != '<') {
            frame *f = &ps->stack[ps->depth - 1];
            size_t start = ps->i;
            bool blank;
            int rc = check_chars(ps, '<', &blank);
            if (rc < 0)
                return rc;
            if (ps->i - start > UINT32_MAX)
                return fail(ps, -EMSGSIZE, "a text too long");
            if (!blank && f->has_children)
                return fail(ps, -EPROTO, "text beside child elements (mixed content)");
            f->has_text = f->has_text || !blank;
            f->text_at = start;
            f->text_len = ps->i - start;
            continue;
        }
        int rc;
        if (at(ps, "</"))
            rc = end_tag(ps);
        else if (at(ps, "<!--") || at(ps, "<?"))
            rc = fail(ps, -EPROTO, "a comment or processing instruction inside an element");
        else if (at(ps, "<!"))
            rc = fail(ps, -EPROTO, "CDATA or a declaration inside an element");
        else
            rc = start_tag(ps);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int s3_xml_parse(char *p, size_t n, s3_xml *x, char *why, size_t why_cap)
{
    parser ps = {.p = p, .n = n, .x = x, .why = why, .why_cap = why_cap};
    x->n = 0;
    if (why_cap)
        why[0] = '\0';
    if (at(&ps, "\xEF\xBB\xBF"))
        ps.i = 3;
    bool root_seen = false;
    for (;;) {
        skip_space(&ps);
        if (ps.i >= n)
            break;
        bool skipped;
        int rc = skip_misc(&ps, &skipped);
        if (rc < 0)
            return rc;
        if (skipped)
            continue;
        if (at(&ps, "<!"))
            return fail(&ps, -EPROTO, "a DOCTYPE or declaration (not accepted)");
        if (ps.p[ps.i] != '<')
            return fail(&ps, -EPROTO, "text outside the root element");
        if (root_seen)
            return fail(&ps, -EPROTO, "a second root element");
        if (at(&ps, "</"))
            return fail(&ps, -EPROTO, "an end tag without a start tag");
        root_seen = true;
        rc = start_tag(&ps);
        if (rc == 0)
            rc = content(&ps);
        if (rc < 0)
            return rc;
    }
    if (!root_seen)
        return fail(&ps, -EPROTO, "no root element");
    for (int32_t k = 0; k < x->n; k++) {
        s3_xml_node *nd = &x->nodes[k];
        if (nd->text == empty_text)
            continue;
        size_t len = decode(nd->text, nd->text_len);
        nd->text[len] = '\0';
        nd->text_len = (uint32_t)len;
    }
    return 0;
}

void s3_xml_free(s3_xml *x)
{
    free(x->nodes);
    x->nodes = NULL;
    x->n = x->cap = 0;
}

/* ----------------------------------------------------------- reading */

bool s3_xml_is(const s3_xml *x, int32_t node, const char *name)
{
    if (node < 0 || node >= x->n)
        return false;
    const s3_xml_node *nd = &x->nodes[node];
    return strlen(name) == nd->name_len && memcmp(nd->name, name, nd->name_len) == 0;
}

int32_t s3_xml_child(const s3_xml *x, int32_t node, const char *name)
{
    if (node < 0 || node >= x->n)
        return -1;
    for (int32_t c = x->nodes[node].first_child; c >= 0; c = x->nodes[c].next_sibling)
        if (s3_xml_is(x, c, name))
            return c;
    return -1;
}

int32_t s3_xml_next(const s3_xml *x, int32_t node)
{
    if (node < 0 || node >= x->n)
        return -1;
    const s3_xml_node *nd = &x->nodes[node];
    for (int32_t c = nd->next_sibling; c >= 0; c = x->nodes[c].next_sibling)
        if (x->nodes[c].name_len == nd->name_len &&
            memcmp(x->nodes[c].name, nd->name, nd->name_len) == 0)
            return c;
    return -1;
}

const char *s3_xml_child_text(const s3_xml *x, int32_t node, const char *name)
{
    int32_t c = s3_xml_child(x, node, name);
    return c >= 0 ? x->nodes[c].text : NULL;
}
