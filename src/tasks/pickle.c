/*
 * src/tasks/pickle.c: Python's pickle for JSON's plain types (pickle.h):
 * a writer that gives CPython 3.11's protocol 5 bytes, and a stack machine
 * that reads the subset of opcodes those types use back into JSON text.
 */
#include "tasks/pickle.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "weave/rt.h"

/* The opcodes (Lib/pickletools.py names them). */
enum {
    OP_MARK = '(',
    OP_STOP = '.',
    OP_POP = '0',
    OP_POP_MARK = '1',
    OP_DUP = '2',
    OP_FLOAT = 'F',
    OP_INT = 'I',
    OP_BININT = 'J',
    OP_BININT1 = 'K',
    OP_LONG = 'L',
    OP_BININT2 = 'M',
    OP_NONE = 'N',
    OP_PERSID = 'P',
    OP_BINPERSID = 'Q',
    OP_REDUCE = 'R',
    OP_STRING = 'S',
    OP_BINSTRING = 'T',
    OP_SHORT_BINSTRING = 'U',
    OP_UNICODE = 'V',
    OP_BINUNICODE = 'X',
    OP_APPEND = 'a',
    OP_BUILD = 'b',
    OP_GLOBAL = 'c',
    OP_DICT = 'd',
    OP_EMPTY_DICT = '}',
    OP_APPENDS = 'e',
    OP_GET = 'g',
    OP_BINGET = 'h',
    OP_INST = 'i',
    OP_LONG_BINGET = 'j',
    OP_LIST = 'l',
    OP_EMPTY_LIST = ']',
    OP_OBJ = 'o',
    OP_PUT = 'p',
    OP_BINPUT = 'q',
    OP_LONG_BINPUT = 'r',
    OP_SETITEM = 's',
    OP_TUPLE = 't',
    OP_EMPTY_TUPLE = ')',
    OP_SETITEMS = 'u',
    OP_BINFLOAT = 'G',
    OP_PROTO = 0x80,
    OP_NEWOBJ = 0x81,
    OP_EXT1 = 0x82,
    OP_EXT2 = 0x83,
    OP_EXT4 = 0x84,
    OP_TUPLE1 = 0x85,
    OP_TUPLE2 = 0x86,
    OP_TUPLE3 = 0x87,
    OP_NEWTRUE = 0x88,
    OP_NEWFALSE = 0x89,
    OP_LONG1 = 0x8a,
    OP_LONG4 = 0x8b,
    OP_SHORT_BINBYTES = 'C',
    OP_BINBYTES = 'B',
    OP_SHORT_BINUNICODE = 0x8c,
    OP_BINUNICODE8 = 0x8d,
    OP_BINBYTES8 = 0x8e,
    OP_EMPTY_SET = 0x8f,
    OP_ADDITEMS = 0x90,
    OP_FROZENSET = 0x91,
    OP_NEWOBJ_EX = 0x92,
    OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94,
    OP_FRAME = 0x95,
    OP_BYTEARRAY8 = 0x96,
    OP_NEXT_BUFFER = 0x97,
    OP_READONLY_BUFFER = 0x98,
};

#define FRAME_HEADER      9           /* FRAME and its 8-byte length */
#define FRAME_SIZE_MIN    4           /* a shorter frame loses its header */
#define FRAME_SIZE_TARGET (64u << 10) /* a frame is cut once this long */
#define BATCHSIZE         1000        /* items per APPENDS or SETITEMS */
#define NO_FRAME          SIZE_MAX

/* ================================================================ writer */

/* A str object CPython would pickle once and then refer to: a singleton,
 * or an object key json.loads shared within one document (scope). */
typedef struct shared_str {
    const char *p;
    size_t n;
    uint32_t scope; /* 0: a singleton; else the document */
    uint32_t memo;
} shared_str;

typedef struct writer {
    wv_buf *out;
    size_t frame; /* offset of the open frame's header, or NO_FRAME */
    uint32_t memo;
    uint32_t scope;
    shared_str *shared; /* open addressing, cap a power of two */
    size_t nshared, cap;
    int err;
} writer;

static void put(writer *w, const void *p, size_t n)
{
    if (w->err)
        return;
    if (w->frame == NO_FRAME) {
        w->frame = w->out->n;
        if (wv_buf_append(w->out, "\0\0\0\0\0\0\0\0\0", FRAME_HEADER) < 0) {
            w->err = -ENOMEM;
            return;
        }
    }
    if (n && wv_buf_append(w->out, p, n) < 0)
        w->err = -ENOMEM;
}

static void put_byte(writer *w, int b)
{
    unsigned char c = (unsigned char)b;
    put(w, &c, 1);
}

static void le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Close the open frame: its header written, or dropped when it is short. */
static void commit_frame(writer *w)
{
    if (w->err || w->frame == NO_FRAME)
        return;
    size_t len = w->out->n - w->frame - FRAME_HEADER;
    unsigned char *h = (unsigned char *)w->out->p + w->frame;
    if (len >= FRAME_SIZE_MIN) {
        h[0] = OP_FRAME;
        le(h + 1, len, 8);
    } else {
        memmove(h, h + FRAME_HEADER, len);
        w->out->n -= FRAME_HEADER;
    }
    w->frame = NO_FRAME;
}

/* Between two objects: a frame is cut once it reached the target. */
static void boundary(writer *w)
{
    if (w->frame != NO_FRAME && w->out->n - w->frame - FRAME_HEADER >= FRAME_SIZE_TARGET)
        commit_frame(w);
}

static void memoize(writer *w)
{
    put_byte(w, OP_MEMOIZE);
    w->memo++;
}

static void get_memo(writer *w, uint32_t i)
{
    unsigned char b[5];
    if (i < 256) {
        b[0] = OP_BINGET;
        b[1] = (unsigned char)i;
        put(w, b, 2);
    } else {
        b[0] = OP_LONG_BINGET;
        le(b + 1, i, 4);
        put(w, b, 5);
    }
}

static uint64_t hash_bytes(const char *p, size_t n, uint32_t scope)
{
    uint64_t h = 1469598103934665603u ^ scope; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211u;
    return h;
}

static shared_str *shared_find(writer *w, const char *p, size_t n, uint32_t scope)
{
    if (!w->cap)
        return NULL;
    size_t mask = w->cap - 1;
    for (size_t i = hash_bytes(p, n, scope) & mask;; i = (i + 1) & mask) {
        shared_str *s = &w->shared[i];
        if (!s->p)
            return NULL;
        if (s->scope == scope && s->n == n && memcmp(s->p, p, n) == 0)
            return s;
    }
}

static void shared_add(writer *w, const char *p, size_t n, uint32_t scope, uint32_t memo)
{
    if (w->err)
        return;
    if ((w->nshared + 1) * 2 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        shared_str *t = calloc(cap, sizeof *t);
        if (!t) {
            w->err = -ENOMEM;
            return;
        }
        for (size_t i = 0; i < w->cap; i++) {
            shared_str *s = &w->shared[i];
            if (!s->p)
                continue;
            size_t j = hash_bytes(s->p, s->n, s->scope) & (cap - 1);
            while (t[j].p)
                j = (j + 1) & (cap - 1);
            t[j] = *s;
        }
        free(w->shared);
        w->shared = t;
        w->cap = cap;
    }
    size_t mask = w->cap - 1;
    size_t i = hash_bytes(p, n, scope) & mask;
    while (w->shared[i].p)
        i = (i + 1) & mask;
    w->shared[i] = (shared_str){p ? p : "", n, scope, memo};
    w->nshared++;
}

/* CPython's singletons: '' and the one-character strings below U+0100. */
static bool singleton(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    return n == 0 || (n == 1 && u[0] < 0x80) || (n == 2 && (u[0] == 0xc2 || u[0] == 0xc3));
}

static void save_str(writer *w, const char *p, size_t n, bool key)
{
    uint32_t scope = singleton(p, n) ? 0 : key ? w->scope : UINT32_MAX;
    if (scope != UINT32_MAX) {
        shared_str *s = shared_find(w, p ? p : "", n, scope);
        if (s) {
            get_memo(w, s->memo);
            return;
        }
    }
    unsigned char h[9];
    size_t hn;
    if (n < 256) {
        h[0] = OP_SHORT_BINUNICODE;
        h[1] = (unsigned char)n;
        hn = 2;
    } else if (n <= UINT32_MAX) {
        h[0] = OP_BINUNICODE;
        le(h + 1, n, 4);
        hn = 5;
    } else {
        h[0] = OP_BINUNICODE8;
        le(h + 1, n, 8);
        hn = 9;
    }
    if (n >= FRAME_SIZE_TARGET) {
        /* a large payload goes outside any frame, as CPython writes it */
        commit_frame(w);
        if (!w->err && (wv_buf_append(w->out, h, hn) < 0 || wv_buf_append(w->out, p, n) < 0))
            w->err = -ENOMEM;
    } else {
        put(w, h, hn);
        put(w, p, n);
    }
    if (scope != UINT32_MAX)
        shared_add(w, p, n, scope, w->memo);
    memoize(w);
}

static void save_int(writer *w, int64_t v)
{
    unsigned char b[10];
    if (v >= 0 && v < 256) {
        b[0] = OP_BININT1;
        b[1] = (unsigned char)v;
        put(w, b, 2);
    } else if (v >= 0 && v < 65536) {
        b[0] = OP_BININT2;
        le(b + 1, (uint64_t)v, 2);
        put(w, b, 3);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        b[0] = OP_BININT;
        le(b + 1, (uint64_t)v, 4);
        put(w, b, 5);
    } else {
        /* LONG1: (bits of |v|) / 8 + 1 bytes of two's complement, less
         * one when a negative number does not need its top 0xff */
        uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        int nbits = 64 - __builtin_clzll(mag);
        int nbytes = nbits / 8 + 1;
        unsigned char d[9];
        le(d, (uint64_t)v, 8);
        d[8] = v < 0 ? 0xff : 0;
        if (v < 0 && nbytes > 1 && d[nbytes - 1] == 0xff && (d[nbytes - 2] & 0x80))
            nbytes--;
        b[0] = OP_LONG1;
        b[1] = (unsigned char)nbytes;
        memcpy(b + 2, d, (size_t)nbytes);
        put(w, b, 2 + (size_t)nbytes);
    }
}

static void save_float(writer *w, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, 8);
    unsigned char b[9] = {OP_BINFLOAT};
    for (int i = 0; i < 8; i++)
        b[1 + i] = (unsigned char)(bits >> (56 - 8 * i));
    put(w, b, 9);
}

static void save(writer *w, const wv_json_val *v, int depth);

static void save_list(writer *w, const wv_json_val *v, int depth)
{
    size_t n = (size_t)wv_json_array_len(v);
    put_byte(w, OP_EMPTY_LIST);
    memoize(w);
    if (n == 1) {
        save(w, wv_json_array_at(v, 0), depth);
        put_byte(w, OP_APPEND);
        return;
    }
    size_t i = 0;
    while (i < n && !w->err) {
        put_byte(w, OP_MARK);
        for (size_t k = 0; k < BATCHSIZE && i < n; k++, i++)
            save(w, wv_json_array_at(v, i), depth);
        put_byte(w, OP_APPENDS);
    }
}

/* An object's members as json.loads builds its dict: in the order of each
 * name's first occurrence, with its last value. */
typedef struct member {
    const char *key;
    size_t len;
    const wv_json_val *val;
} member;

static member *dict_members(const wv_json_val *v, size_t *count, int *err)
{
    size_t n = (size_t)wv_json_object_len(v), cap = 8, m = 0;
    while (cap < n * 2)
        cap *= 2;
    member *out = malloc((n ? n : 1) * sizeof *out);
    size_t *slot = malloc(cap * sizeof *slot); /* index + 1 into out; 0 = free */
    if (!out || !slot) {
        free(out);
        free(slot);
        *err = -ENOMEM;
        return NULL;
    }
    memset(slot, 0, cap * sizeof *slot);
    for (size_t i = 0; i < n; i++) {
        member e;
        e.val = wv_json_object_at(v, i, &e.key, &e.len);
        size_t j = hash_bytes(e.key, e.len, 0) & (cap - 1);
        while (slot[j] &&
               !(out[slot[j] - 1].len == e.len && memcmp(out[slot[j] - 1].key, e.key, e.len) == 0))
            j = (j + 1) & (cap - 1);
        if (slot[j]) {
            out[slot[j] - 1].val = e.val;
        } else {
            out[m] = e;
            slot[j] = ++m;
        }
    }
    free(slot);
    *count = m;
    return out;
}

static void save_dict_members(writer *w, const member *m, size_t n, int depth)
{
    put_byte(w, OP_EMPTY_DICT);
    memoize(w);
    if (n == 0)
        return;
    if (n == 1) {
        save_str(w, m[0].key, m[0].len, true);
        save(w, m[0].val, depth);
        put_byte(w, OP_SETITEM);
        return;
    }
    /* CPython's batch_dict_exact: a full last batch is followed by an
     * empty one */
    size_t i = 0, k;
    do {
        put_byte(w, OP_MARK);
        for (k = 0; k < BATCHSIZE && i < n; k++, i++) {
            save_str(w, m[i].key, m[i].len, true);
            save(w, m[i].val, depth);
        }
        put_byte(w, OP_SETITEMS);
    } while (k == BATCHSIZE && !w->err);
}

static void save_dict(writer *w, const wv_json_val *v, int depth)
{
    size_t n = 0;
    member *m = dict_members(v, &n, &w->err);
    if (m)
        save_dict_members(w, m, n, depth);
    free(m);
}

static void save(writer *w, const wv_json_val *v, int depth)
{
    if (w->err)
        return;
    wv_json_type t = wv_json_type_of(v);
    if ((t == WV_JSON_ARRAY || t == WV_JSON_OBJECT) && depth >= PICKLE_MAX_DEPTH) {
        w->err = wv_fail(-EINVAL, "pickle: nested deeper than %d", PICKLE_MAX_DEPTH);
        return;
    }
    boundary(w);
    int64_t i;
    double d;
    bool b;
    const char *s;
    size_t n;
    switch (t) {
    case WV_JSON_NULL:
        put_byte(w, OP_NONE);
        break;
    case WV_JSON_BOOL:
        wv_json_as_bool(v, &b);
        put_byte(w, b ? OP_NEWTRUE : OP_NEWFALSE);
        break;
    case WV_JSON_NUMBER:
        if (wv_json_as_i64(v, &i) == 0) {
            save_int(w, i);
        } else if (wv_json_as_number_text(v, &s, &n) == 0 && !memchr(s, '.', n) &&
                   !memchr(s, 'e', n) && !memchr(s, 'E', n)) {
            w->err = wv_fail(-ERANGE, "pickle: %.*s: an integer beyond int64", (int)n, s);
        } else if (wv_json_as_double(v, &d) < 0) {
            w->err = wv_fail(-ERANGE, "pickle: a float beyond double's range");
        } else {
            save_float(w, d);
        }
        break;
    case WV_JSON_STRING:
        wv_json_as_string(v, &s, &n);
        save_str(w, s, n, false);
        break;
    case WV_JSON_ARRAY:
        save_list(w, v, depth + 1);
        break;
    case WV_JSON_OBJECT:
        save_dict(w, v, depth + 1);
        break;
    default:
        w->err = wv_fail(-EINVAL, "pickle: no value");
        break;
    }
}

static void start(writer *w, wv_buf *out)
{
    *w = (writer){.out = out, .frame = NO_FRAME, .scope = 1};
    unsigned char proto[2] = {OP_PROTO, 5};
    if (wv_buf_append(out, proto, 2) < 0)
        w->err = -ENOMEM;
}

static int finish(writer *w)
{
    put_byte(w, OP_STOP);
    commit_frame(w);
    free(w->shared);
    return w->err;
}

int pickle_dumps(const wv_json_val *v, wv_buf *out)
{
    if (!v || !out)
        return -EINVAL;
    writer w;
    start(&w, out);
    save(&w, v, 0);
    return finish(&w);
}

int pickle_dumps_call(const char *func_name, const wv_json_val *args, const wv_json_val *kwargs,
                      wv_buf *out)
{
    if (!func_name || !out || (args && wv_json_type_of(args) != WV_JSON_ARRAY) ||
        (kwargs && wv_json_type_of(kwargs) != WV_JSON_OBJECT))
        return -EINVAL;
    writer w;
    start(&w, out);
    /* (func_name, None, args, kwargs): four items, so MARK ... TUPLE */
    put_byte(&w, OP_MARK);
    boundary(&w);
    save_str(&w, func_name, strlen(func_name), false);
    boundary(&w);
    put_byte(&w, OP_NONE);
    boundary(&w);
    size_t n = args ? (size_t)wv_json_array_len(args) : 0;
    if (n == 0) {
        put_byte(&w, OP_EMPTY_TUPLE);
    } else {
        if (n > 3)
            put_byte(&w, OP_MARK);
        for (size_t i = 0; i < n; i++)
            save(&w, wv_json_array_at(args, i), 1);
        put_byte(&w, n == 1 ? OP_TUPLE1 : n == 2 ? OP_TUPLE2 : n == 3 ? OP_TUPLE3 : OP_TUPLE);
        memoize(&w);
    }
    w.scope++; /* kwargs: another json.loads document */
    if (kwargs) {
        save(&w, kwargs, 0);
    } else {
        boundary(&w);
        save_dict_members(&w, NULL, 0, 1);
    }
    put_byte(&w, OP_TUPLE);
    memoize(&w);
    return finish(&w);
}

/* ================================================================ reader */

typedef enum node_type { N_NONE, N_BOOL, N_INT, N_FLOAT, N_STR, N_LIST, N_TUPLE, N_DICT } node_type;

typedef struct node {
    node_type type;
    union {
        bool b;
        int64_t i;
        double d;
        struct {
            const char *p;
            size_t n;
        } s;
        struct {
            struct node **items; /* a dict: key, value, key, value, ... */
            size_t n, cap;
        } c;
    } u;
} node;

typedef struct reader {
    const unsigned char *p, *end;
    node **nodes; /* every node made, to free */
    size_t nnodes, nodes_cap;
    node **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    node **memo;
    size_t memo_cap, memo_len; /* indices [0, memo_len) allocated */
    size_t memo_count;         /* entries set: MEMOIZE's next index */
} reader;

static int bad(const char *what)
{
    return wv_fail(-EBADMSG, "pickle: %s", what);
}

static int grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, c * size);
    if (!p)
        return -ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

static node *make(reader *r, node_type t)
{
    if (grow((void **)&r->nodes, &r->nodes_cap, r->nnodes + 1, sizeof *r->nodes) < 0)
        return NULL;
    node *n = calloc(1, sizeof *n);
    if (n) {
        n->type = t;
        r->nodes[r->nnodes++] = n;
    }
    return n;
}

static int push(reader *r, node *n)
{
    if (!n || grow((void **)&r->stack, &r->stack_cap, r->sp + 1, sizeof *r->stack) < 0)
        return -ENOMEM;
    r->stack[r->sp++] = n;
    return 0;
}

static int push_new(reader *r, node_type t, node **out)
{
    node *n = make(r, t);
    *out = n;
    return push(r, n);
}

static int add_item(node *c, node *item)
{
    if (grow((void **)&c->u.c.items, &c->u.c.cap, c->u.c.n + 1, sizeof *c->u.c.items) < 0)
        return -ENOMEM;
    c->u.c.items[c->u.c.n++] = item;
    return 0;
}

/* The n argument bytes of an opcode. */
static const unsigned char *take(reader *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n)
        return NULL;
    const unsigned char *p = r->p;
    r->p += n;
    return p;
}

static uint64_t rd_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The stack's items since the last MARK (popping the mark): at *first. */
static int pop_mark(reader *r, size_t *first)
{
    if (!r->nmarks)
        return bad("no MARK before an opcode that needs one");
    *first = r->marks[--r->nmarks];
    return 0;
}

/* Items above the last MARK are the only ones an opcode may take. */
static size_t fence(const reader *r)
{
    return r->nmarks ? r->marks[r->nmarks - 1] : 0;
}

static int memo_put(reader *r, size_t idx)
{
    if (r->sp <= fence(r))
        return bad("a memo PUT with nothing to put");
    if (idx > r->nnodes + 1024) /* indices are dense in anything Python wrote */
        return bad("a memo index out of range");
    if (grow((void **)&r->memo, &r->memo_cap, idx + 1, sizeof *r->memo) < 0)
        return -ENOMEM;
    for (; r->memo_len <= idx; r->memo_len++)
        r->memo[r->memo_len] = NULL;
    if (!r->memo[idx])
        r->memo_count++;
    r->memo[idx] = r->stack[r->sp - 1];
    return 0;
}

static int memo_get(reader *r, size_t idx)
{
    if (idx >= r->memo_len || !r->memo[idx])
        return bad("a memo GET of an index never PUT");
    return push(r, r->memo[idx]);
}

static int read_str(reader *r, size_t len_bytes)
{
    const unsigned char *h = take(r, len_bytes);
    if (!h)
        return bad("truncated string length");
    uint64_t n = rd_le(h, (int)len_bytes);
    const unsigned char *s = n <= (uint64_t)(r->end - r->p) ? take(r, (size_t)n) : NULL;
    if (!s)
        return bad("truncated string");
    node *x;
    int rc = push_new(r, N_STR, &x);
    if (rc == 0) {
        x->u.s.p = (const char *)s;
        x->u.s.n = (size_t)n;
    }
    return rc;
}

static int read_long(reader *r, size_t len_bytes)
{
    const unsigned char *h = take(r, len_bytes);
    if (!h)
        return bad("truncated LONG length");
    uint64_t n = rd_le(h, (int)len_bytes);
    if (len_bytes == 4 && (n & 0x80000000u))
        return bad("a negative LONG4 length");
    const unsigned char *d = n <= (uint64_t)(r->end - r->p) ? take(r, (size_t)n) : NULL;
    if (!d)
        return bad("truncated LONG");
    /* two's complement, little-endian: fits int64 when the bytes past
     * the eighth only repeat its sign */
    bool neg = n && (d[n - 1] & 0x80);
    for (uint64_t k = 8; k < n; k++)
        if (d[k] != (neg ? 0xff : 0))
            return wv_fail(-ENOTSUP, "pickle: an int beyond int64");
    uint64_t v = neg ? UINT64_MAX : 0;
    for (uint64_t k = 0; k < n && k < 8; k++) {
        v &= ~((uint64_t)0xff << (8 * k));
        v |= (uint64_t)d[k] << (8 * k);
    }
    if (n > 8 && ((v >> 63) != 0) != neg)
        return wv_fail(-ENOTSUP, "pickle: an int beyond int64");
    node *x;
    int rc = push_new(r, N_INT, &x);
    if (rc == 0)
        x->u.i = (int64_t)v;
    return rc;
}

static int read_int(reader *r, int n, bool is_signed)
{
    const unsigned char *d = take(r, (size_t)n);
    if (!d)
        return bad("truncated int");
    uint64_t v = rd_le(d, n);
    node *x;
    int rc = push_new(r, N_INT, &x);
    if (rc == 0)
        x->u.i = is_signed ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v;
    return rc;
}

/* Move the stack's items from first on into container c. */
static int move_items(reader *r, node *c, size_t first)
{
    if (c->type == N_DICT && (r->sp - first) % 2)
        return bad("SETITEMS with a key but no value");
    for (size_t i = first; i < r->sp; i++) {
        if (c->type == N_DICT && (i - first) % 2 == 0 && r->stack[i]->type != N_STR)
            return wv_fail(-ENOTSUP, "pickle: a dict key that is not a str");
        if (add_item(c, r->stack[i]) < 0)
            return -ENOMEM;
    }
    r->sp = first;
    return 0;
}

/* TUPLE, LIST, DICT, TUPLE1..3: the items from first on become one. */
static int collect(reader *r, size_t first, node_type t)
{
    if (first > r->sp || first < fence(r))
        return bad("a tuple of more items than the stack holds");
    node *c = make(r, t);
    if (!c)
        return -ENOMEM;
    int rc = move_items(r, c, first);
    return rc ? rc : push(r, c);
}

/* APPEND(S), SETITEM(S): the items from first on go into the container
 * below them. */
static int fill(reader *r, size_t first, node_type want)
{
    if (first <= fence(r) || first > r->sp)
        return bad("APPEND or SETITEM without a container");
    node *c = r->stack[first - 1];
    if (c->type != want)
        return bad(want == N_LIST ? "APPEND to something not a list"
                                  : "SETITEM on something not a dict");
    return move_items(r, c, first);
}

static int push_mark(reader *r)
{
    if (grow((void **)&r->marks, &r->marks_cap, r->nmarks + 1, sizeof *r->marks) < 0)
        return -ENOMEM;
    r->marks[r->nmarks++] = r->sp;
    return 0;
}

/* A global's name, for the error: STACK_GLOBAL's two strings. */
static int not_plain_global(reader *r)
{
    if (r->sp >= 2 && r->stack[r->sp - 2]->type == N_STR && r->stack[r->sp - 1]->type == N_STR) {
        node *m = r->stack[r->sp - 2], *n = r->stack[r->sp - 1];
        return wv_fail(-ENOTSUP, "pickle: %.*s.%.*s is not a plain type", (int)m->u.s.n, m->u.s.p,
                       (int)n->u.s.n, n->u.s.p);
    }
    return wv_fail(-ENOTSUP, "pickle: a reference to a Python global is not a plain type");
}

static int unsupported(reader *r, int op)
{
    switch (op) {
    case OP_STACK_GLOBAL:
        return not_plain_global(r);
    case OP_GLOBAL:
    case OP_INST: {
        /* "module\nname\n" */
        const unsigned char *nl1 = memchr(r->p, '\n', (size_t)(r->end - r->p));
        const unsigned char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(r->end - nl1 - 1)) : NULL;
        if (!nl2)
            return bad("truncated GLOBAL");
        return wv_fail(-ENOTSUP, "pickle: %.*s.%.*s is not a plain type", (int)(nl1 - r->p),
                       (const char *)r->p, (int)(nl2 - nl1 - 1), (const char *)nl1 + 1);
    }
    case OP_SHORT_BINBYTES:
    case OP_BINBYTES:
    case OP_BINBYTES8:
    case OP_BINSTRING:
    case OP_SHORT_BINSTRING:
    case OP_STRING:
        return wv_fail(-ENOTSUP, "pickle: bytes are not a plain type");
    case OP_BYTEARRAY8:
    case OP_NEXT_BUFFER:
    case OP_READONLY_BUFFER:
        return wv_fail(-ENOTSUP, "pickle: a bytearray or buffer is not a plain type");
    case OP_EMPTY_SET:
    case OP_ADDITEMS:
    case OP_FROZENSET:
        return wv_fail(-ENOTSUP, "pickle: a set is not a plain type");
    case OP_LONG:
    case OP_INT:
    case OP_FLOAT:
    case OP_UNICODE:
    case OP_GET:
    case OP_PUT:
        return wv_fail(-ENOTSUP, "pickle: protocol 0's text opcodes are not read");
    default:
        return wv_fail(-ENOTSUP,
                       "pickle: an object built by reduce, persistent id or extension "
                       "(opcode 0x%02x) is not a plain type",
                       op);
    }
}

static int step(reader *r, int op)
{
    const unsigned char *a;
    size_t first = 0;
    node *x;
    int rc;
    switch (op) {
    case OP_PROTO:
        if (!(a = take(r, 1)) || a[0] > 5)
            return bad("an unknown protocol");
        return 0;
    case OP_FRAME:
        if (!(a = take(r, 8)) || rd_le(a, 8) > (uint64_t)(r->end - r->p))
            return bad("a FRAME longer than the data");
        return 0;
    case OP_MARK:
        return push_mark(r);
    case OP_POP:
        if (r->nmarks && r->marks[r->nmarks - 1] == r->sp) /* POP of a mark */
            return r->nmarks--, 0;
        if (r->sp <= fence(r))
            return bad("POP on an empty stack");
        r->sp--;
        return 0;
    case OP_POP_MARK:
        if ((rc = pop_mark(r, &first)) == 0)
            r->sp = first;
        return rc;
    case OP_DUP:
        if (r->sp <= fence(r))
            return bad("DUP on an empty stack");
        return push(r, r->stack[r->sp - 1]);
    case OP_NONE:
        return push_new(r, N_NONE, &x);
    case OP_NEWTRUE:
    case OP_NEWFALSE:
        if ((rc = push_new(r, N_BOOL, &x)) == 0)
            x->u.b = op == OP_NEWTRUE;
        return rc;
    case OP_BININT1:
        return read_int(r, 1, false);
    case OP_BININT2:
        return read_int(r, 2, false);
    case OP_BININT:
        return read_int(r, 4, true);
    case OP_LONG1:
        return read_long(r, 1);
    case OP_LONG4:
        return read_long(r, 4);
    case OP_BINFLOAT: {
        if (!(a = take(r, 8)))
            return bad("truncated BINFLOAT");
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits = bits << 8 | a[i];
        if ((rc = push_new(r, N_FLOAT, &x)) == 0)
            memcpy(&x->u.d, &bits, 8);
        return rc;
    }
    case OP_SHORT_BINUNICODE:
        return read_str(r, 1);
    case OP_BINUNICODE:
        return read_str(r, 4);
    case OP_BINUNICODE8:
        return read_str(r, 8);
    case OP_EMPTY_LIST:
        return push_new(r, N_LIST, &x);
    case OP_EMPTY_DICT:
        return push_new(r, N_DICT, &x);
    case OP_EMPTY_TUPLE:
        return push_new(r, N_TUPLE, &x);
    case OP_LIST:
    case OP_DICT:
    case OP_TUPLE:
        if ((rc = pop_mark(r, &first)) < 0)
            return rc;
        return collect(r, first, op == OP_LIST ? N_LIST : op == OP_DICT ? N_DICT : N_TUPLE);
    case OP_APPEND:
        return r->sp < 1 ? bad("APPEND on an empty stack") : fill(r, r->sp - 1, N_LIST);
    case OP_SETITEM:
        return r->sp < 2 ? bad("SETITEM without a key and value") : fill(r, r->sp - 2, N_DICT);
    case OP_APPENDS:
    case OP_SETITEMS:
        if ((rc = pop_mark(r, &first)) < 0)
            return rc;
        return fill(r, first, op == OP_APPENDS ? N_LIST : N_DICT);
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3: {
        size_t k = (size_t)(op - OP_TUPLE1 + 1);
        return r->sp < k ? bad("a tuple of more items than the stack holds")
                         : collect(r, r->sp - k, N_TUPLE);
    }
    case OP_MEMOIZE:
        return memo_put(r, r->memo_count);
    case OP_BINPUT:
        return (a = take(r, 1)) ? memo_put(r, a[0]) : bad("truncated BINPUT");
    case OP_LONG_BINPUT:
        return (a = take(r, 4)) ? memo_put(r, (size_t)rd_le(a, 4)) : bad("truncated LONG_BINPUT");
    case OP_BINGET:
        return (a = take(r, 1)) ? memo_get(r, a[0]) : bad("truncated BINGET");
    case OP_LONG_BINGET:
        return (a = take(r, 4)) ? memo_get(r, (size_t)rd_le(a, 4)) : bad("truncated LONG_BINGET");
    case OP_STACK_GLOBAL:
    case OP_GLOBAL:
    case OP_INST:
    case OP_SHORT_BINBYTES:
    case OP_BINBYTES:
    case OP_BINBYTES8:
    case OP_BINSTRING:
    case OP_SHORT_BINSTRING:
    case OP_STRING:
    case OP_BYTEARRAY8:
    case OP_NEXT_BUFFER:
    case OP_READONLY_BUFFER:
    case OP_EMPTY_SET:
    case OP_ADDITEMS:
    case OP_FROZENSET:
    case OP_LONG:
    case OP_INT:
    case OP_FLOAT:
    case OP_UNICODE:
    case OP_GET:
    case OP_PUT:
    case OP_REDUCE:
    case OP_BUILD:
    case OP_OBJ:
    case OP_NEWOBJ:
    case OP_NEWOBJ_EX:
    case OP_PERSID:
    case OP_BINPERSID:
    case OP_EXT1:
    case OP_EXT2:
    case OP_EXT4:
        return unsupported(r, op);
    default:
        return wv_fail(-EBADMSG, "pickle: unknown opcode 0x%02x", op);
    }
}

/* Whether s[0..n) is UTF-8 as Python's str holds it: surrogates (which
 * pickle writes with surrogatepass) have no JSON form. */
static int check_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        int need = c >= 0xc2 && c <= 0xdf   ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (!need || end - p < need)
            return bad("a string that is not UTF-8");
        for (int k = 1; k < need; k++)
            if ((p[k] & 0xc0) != 0x80)
                return bad("a string that is not UTF-8");
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
            return bad("a string that is not UTF-8");
        if (c == 0xed && p[1] >= 0xa0)
            return wv_fail(-ENOTSUP, "pickle: a string with a lone surrogate has no JSON form");
        p += need;
    }
    return 0;
}

static int write_json(reader *r, wv_json *j, const node *x, int depth)
{
    if (x->type >= N_LIST && depth >= PICKLE_MAX_DEPTH)
        return wv_fail(-ENOTSUP, "pickle: nested deeper than %d (or a list that holds itself)",
                       PICKLE_MAX_DEPTH);
    if (j->out->n > PICKLE_MAX_JSON)
        return wv_fail(-EMSGSIZE, "pickle: its JSON is over %u bytes", PICKLE_MAX_JSON);
    int rc = 0;
    switch (x->type) {
    case N_NONE:
        wv_json_null(j);
        break;
    case N_BOOL:
        wv_json_bool(j, x->u.b);
        break;
    case N_INT:
        wv_json_int(j, x->u.i);
        break;
    case N_FLOAT:
        if (!isfinite(x->u.d))
            return wv_fail(-ENOTSUP, "pickle: a float that is not finite has no JSON form");
        wv_json_double(j, x->u.d);
        break;
    case N_STR:
        if ((rc = check_utf8(x->u.s.p, x->u.s.n)) < 0)
            return rc;
        wv_json_stringn(j, x->u.s.p, x->u.s.n);
        break;
    case N_LIST:
    case N_TUPLE:
        wv_json_array_begin(j);
        for (size_t i = 0; i < x->u.c.n && rc == 0; i++)
            rc = write_json(r, j, x->u.c.items[i], depth + 1);
        wv_json_array_end(j);
        break;
    case N_DICT:
        wv_json_object_begin(j);
        for (size_t i = 0; i + 1 < x->u.c.n && rc == 0; i += 2) {
            const node *k = x->u.c.items[i];
            if ((rc = check_utf8(k->u.s.p, k->u.s.n)) == 0) {
                wv_json_keyn(j, k->u.s.p, k->u.s.n);
                rc = write_json(r, j, x->u.c.items[i + 1], depth + 1);
            }
        }
        wv_json_object_end(j);
        break;
    }
    if (rc == 0 && j->out->n > PICKLE_MAX_JSON)
        rc = wv_fail(-EMSGSIZE, "pickle: its JSON is over %u bytes", PICKLE_MAX_JSON);
    return rc ? rc : j->err;
}

static void reader_free(reader *r)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        if (r->nodes[i]->type >= N_LIST)
            free(r->nodes[i]->u.c.items);
        free(r->nodes[i]);
    }
    free(r->nodes);
    free(r->stack);
    free(r->marks);
    free(r->memo);
}

int pickle_loads_json(const void *data, size_t n, wv_buf *json)
{
    if (!data || !json)
        return -EINVAL;
    if (n > PICKLE_MAX_BYTES)
        return wv_fail(-EMSGSIZE, "pickle: over %u bytes", PICKLE_MAX_BYTES);
    reader r = {.p = data, .end = (const unsigned char *)data + n};
    int rc = 0;
    bool stopped = false;
    while (rc == 0 && !stopped) {
        if (r.p == r.end) {
            rc = bad("no STOP at the end");
            break;
        }
        int op = *r.p++;
        if (op == OP_STOP)
            stopped = true;
        else
            rc = step(&r, op);
    }
    if (rc == 0 && (r.sp != 1 || r.nmarks))
        rc = bad("STOP with a stack that is not one value");
    if (rc == 0 && r.p != r.end)
        rc = bad("bytes after STOP");
    if (rc == 0) {
        wv_json j;
        wv_json_init(&j, json);
        rc = write_json(&r, &j, r.stack[0], 0);
        if (rc == 0)
            rc = wv_json_finish(&j);
    }
    reader_free(&r);
    return rc;
}
