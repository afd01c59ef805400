/*
 * src/memcache/proto.c: the memcached protocol codec: meta and classic
 * requests out, replies of both in. See proto.h for the contract; this
 * comment says how it is built.
 *
 * Encoders validate everything first (key, opaque, mode), then write the
 * command line into a stack buffer sized for the longest line a single-key
 * command can have, then reserve room for line, data and CRLF in one call
 * and copy: so a failure of any kind leaves the wv_buf untouched. A get line
 * (many keys) is measured first and written straight into the buffer.
 *
 * The parser finds the end of the first line (looking no further than
 * MC_LINE_MAX + 2 bytes), splits it into space-separated tokens and decides
 * on the whole line at once; only then does it look at a data block, whose
 * length the line gave. So a line's verdict never depends on how much of
 * what follows has arrived, and a value too long for the caller is refused
 * as soon as its header line is complete.
 */
#include "memcache/proto.h"

#include "base64/base64.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ keys */

bool mc_key_valid(const char *key, size_t len)
{
    if (len == 0 || len > MC_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* An opaque token: key-like, 1..32 bytes. */
static bool opaque_valid(const char *opaque)
{
    return opaque == NULL || (strnlen(opaque, MC_OPAQUE_MAX + 1) <= MC_OPAQUE_MAX &&
                              mc_key_valid(opaque, strlen(opaque)));
}

/* ------------------------------------------------------------ base64 */

size_t mc_base64_encode(const void *in, size_t n, char *out)
{
    return wv__b64_encode(in, n, true, out);
}

ssize_t mc_base64_decode(const char *in, size_t n, void *out, size_t cap)
{
    long got = wv__b64_decode(in, n, false, out, cap);
    return got < 0 ? -EINVAL : (ssize_t)got;
}

/* ------------------------------------------------------------ request lines */

/* The longest single-key command line: a 250-byte key (or its base64) and
 * every flag of ma with 20-digit numbers and a 32-byte opaque fit with room. */
enum { LINE_BUF = 768 };

typedef struct line {
    char p[LINE_BUF];
    size_t n;
} line;

static void put(line *l, const char *s, size_t n)
{
    memcpy(l->p + l->n, s, n);
    l->n += n;
}

static void put_str(line *l, const char *s)
{
    put(l, s, strlen(s));
}

static size_t format_u64(char out[20], uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static void put_u64(line *l, uint64_t v)
{
    l->n += format_u64(l->p + l->n, v);
}

static void put_i64(line *l, int64_t v)
{
    if (v < 0) {
        l->p[l->n++] = '-';
        put_u64(l, (uint64_t)0 - (uint64_t)v);
    } else {
        put_u64(l, (uint64_t)v);
    }
}

/* " c" */
static void put_flag(line *l, char c)
{
    l->p[l->n++] = ' ';
    l->p[l->n++] = c;
}

static void put_flag_u64(line *l, char c, uint64_t v)
{
    put_flag(l, c);
    put_u64(l, v);
}

static void put_flag_i64(line *l, char c, int64_t v)
{
    put_flag(l, c);
    put_i64(l, v);
}

/* "<cmd> <key>", the key base64-encoded when binary. */
static void put_command_key(line *l, const char *cmd, const char *key, size_t len, bool base64)
{
    put_str(l, cmd);
    l->p[l->n++] = ' ';
    if (base64)
        l->n += mc_base64_encode(key, len, l->p + l->n);
    else
        put(l, key, len);
}

static bool meta_key_valid(const char *key, size_t len, bool base64)
{
    return base64 ? len >= 1 && len <= MC_BASE64_KEY_MAX : mc_key_valid(key, len);
}

static void put_opaque(line *l, const char *opaque)
{
    if (opaque) {
        put_flag(l, 'O');
        put_str(l, opaque);
    }
}

/* Append the line, CRLF, and when data is not NULL the data and CRLF: all or nothing. */
static int emit(wv_buf *b, const line *l, const void *data, size_t n)
{
    size_t total = l->n + 2;
    if (data) {
        if (n > SIZE_MAX - total - 2)
            return -ENOMEM;
        total += n + 2;
    }
    int rc = wv_buf_reserve(b, total);
    if (rc < 0)
        return rc;
    char *out = b->p + b->n;
    memcpy(out, l->p, l->n);
    out += l->n;
    memcpy(out, "\r\n", 2);
    out += 2;
    if (data) {
        if (n)
            memcpy(out, data, n);
        memcpy(out + n, "\r\n", 2);
    }
    b->n += total;
    return 0;
}

/* ------------------------------------------------------------ meta requests */

int mc_encode_mg(wv_buf *b, const char *key, size_t len, const mc_mg_opts *o)
{
    static const mc_mg_opts none = {0};
    if (!o)
        o = &none;
    if (!meta_key_valid(key, len, o->base64_key) || !opaque_valid(o->opaque))
        return -EINVAL;
    line l = {.n = 0};
    put_command_key(&l, "mg", key, len, o->base64_key);
    if (o->base64_key)
        put_flag(&l, 'b');
    if (o->value)
        put_flag(&l, 'v');
    if (o->client_flags)
        put_flag(&l, 'f');
    if (o->cas)
        put_flag(&l, 'c');
    if (o->ttl)
        put_flag(&l, 't');
    if (o->key)
        put_flag(&l, 'k');
    if (o->size)
        put_flag(&l, 's');
    if (o->hit)
        put_flag(&l, 'h');
    if (o->last_access)
        put_flag(&l, 'l');
    if (o->no_bump)
        put_flag(&l, 'u');
    if (o->touch)
        put_flag_i64(&l, 'T', o->touch_ttl);
    if (o->vivify)
        put_flag_i64(&l, 'N', o->vivify_ttl);
    if (o->recache)
        put_flag_i64(&l, 'R', o->recache_ttl);
    if (o->quiet)
        put_flag(&l, 'q');
    put_opaque(&l, o->opaque);
    return emit(b, &l, NULL, 0);
}

static bool ms_mode_valid(mc_ms_mode m)
{
    return m == MC_MS_SET || m == MC_MS_ADD || m == MC_MS_APPEND || m == MC_MS_PREPEND ||
           m == MC_MS_REPLACE;
}

int mc_encode_ms(wv_buf *b, const char *key, size_t len, const void *data, size_t n,
                 const mc_ms_opts *o)
{
    static const mc_ms_opts none = {0};
    if (!o)
        o = &none;
    if (!meta_key_valid(key, len, o->base64_key) || !opaque_valid(o->opaque) ||
        !ms_mode_valid(o->mode) || (n && !data))
        return -EINVAL;
    line l = {.n = 0};
    put_command_key(&l, "ms", key, len, o->base64_key);
    l.p[l.n++] = ' ';
    put_u64(&l, n);
    if (o->base64_key)
        put_flag(&l, 'b');
    if (o->mode != MC_MS_SET) {
        put_flag(&l, 'M');
        l.p[l.n++] = (char)o->mode;
    }
    if (o->client_flags)
        put_flag_u64(&l, 'F', o->client_flags);
    if (o->ttl)
        put_flag_i64(&l, 'T', o->ttl);
    if (o->compare_cas)
        put_flag_u64(&l, 'C', o->compare_cas);
    if (o->invalidate)
        put_flag(&l, 'I');
    if (o->return_cas)
        put_flag(&l, 'c');
    if (o->return_key)
        put_flag(&l, 'k');
    if (o->quiet)
        put_flag(&l, 'q');
    put_opaque(&l, o->opaque);
    return emit(b, &l, data ? data : "", n);
}

int mc_encode_md(wv_buf *b, const char *key, size_t len, const mc_md_opts *o)
{
    static const mc_md_opts none = {0};
    if (!o)
        o = &none;
    if (!meta_key_valid(key, len, o->base64_key) || !opaque_valid(o->opaque))
        return -EINVAL;
    line l = {.n = 0};
    put_command_key(&l, "md", key, len, o->base64_key);
    if (o->base64_key)
        put_flag(&l, 'b');
    if (o->compare_cas)
        put_flag_u64(&l, 'C', o->compare_cas);
    if (o->invalidate)
        put_flag(&l, 'I');
    if (o->touch)
        put_flag_i64(&l, 'T', o->touch_ttl);
    if (o->return_key)
        put_flag(&l, 'k');
    if (o->quiet)
        put_flag(&l, 'q');
    put_opaque(&l, o->opaque);
    return emit(b, &l, NULL, 0);
}

int mc_encode_ma(wv_buf *b, const char *key, size_t len, uint64_t delta, const mc_ma_opts *o)
{
    static const mc_ma_opts none = {0};
    if (!o)
        o = &none;
    if (!meta_key_valid(key, len, o->base64_key) || !opaque_valid(o->opaque) ||
        (o->mode != MC_MA_INCR && o->mode != MC_MA_DECR))
        return -EINVAL;
    line l = {.n = 0};
    put_command_key(&l, "ma", key, len, o->base64_key);
    if (o->base64_key)
        put_flag(&l, 'b');
    if (o->mode != MC_MA_INCR) {
        put_flag(&l, 'M');
        l.p[l.n++] = (char)o->mode;
    }
    if (delta != 1)
        put_flag_u64(&l, 'D', delta);
    if (o->vivify)
        put_flag_i64(&l, 'N', o->vivify_ttl);
    if (o->initial)
        put_flag_u64(&l, 'J', o->initial);
    if (o->compare_cas)
        put_flag_u64(&l, 'C', o->compare_cas);
    if (o->touch)
        put_flag_i64(&l, 'T', o->touch_ttl);
    if (o->value)
        put_flag(&l, 'v');
    if (o->ttl)
        put_flag(&l, 't');
    if (o->return_cas)
        put_flag(&l, 'c');
    if (o->return_key)
        put_flag(&l, 'k');
    if (o->quiet)
        put_flag(&l, 'q');
    put_opaque(&l, o->opaque);
    return emit(b, &l, NULL, 0);
}

int mc_encode_mn(wv_buf *b)
{
    return wv_buf_append(b, "mn\r\n", 4);
}

/* ------------------------------------------------------------ classic requests */

int mc_encode_get(wv_buf *b, const wv_str *keys, size_t n, bool with_cas)
{
    if (n == 0)
        return -EINVAL;
    const char *cmd = with_cas ? "gets" : "get";
    size_t total = strlen(cmd) + 2;
    for (size_t i = 0; i < n; i++) {
        if (!mc_key_valid(keys[i].p, keys[i].n))
            return -EINVAL;
        total += 1 + keys[i].n;
    }
    int rc = wv_buf_reserve(b, total);
    if (rc < 0)
        return rc;
    char *out = b->p + b->n;
    size_t at = strlen(cmd);
    memcpy(out, cmd, at);
    for (size_t i = 0; i < n; i++) {
        out[at++] = ' ';
        memcpy(out + at, keys[i].p, keys[i].n);
        at += keys[i].n;
    }
    memcpy(out + at, "\r\n", 2);
    b->n += total;
    return 0;
}

static const char *const store_names[] = {
    [MC_SET] = "set",       [MC_ADD] = "add",         [MC_REPLACE] = "replace",
    [MC_APPEND] = "append", [MC_PREPEND] = "prepend", [MC_CAS] = "cas",
};

int mc_encode_store(wv_buf *b, mc_store_cmd cmd, const char *key, size_t len, const void *data,
                    size_t n, const mc_store_opts *o)
{
    static const mc_store_opts none = {0};
    if (!o)
        o = &none;
    if ((unsigned)cmd > MC_CAS || !mc_key_valid(key, len) || (n && !data))
        return -EINVAL;
    line l = {.n = 0};
    put_command_key(&l, store_names[cmd], key, len, false);
    l.p[l.n++] = ' ';
    put_u64(&l, o->flags);
    l.p[l.n++] = ' ';
    put_i64(&l, o->exptime);
    l.p[l.n++] = ' ';
    put_u64(&l, n);
    if (cmd == MC_CAS) {
        l.p[l.n++] = ' ';
        put_u64(&l, o->cas);
    }
    if (o->noreply)
        put_str(&l, " noreply");
    return emit(b, &l, data ? data : "", n);
}

int mc_encode_delete(wv_buf *b, const char *key, size_t len, bool noreply)
{
    if (!mc_key_valid(key, len))
        return -EINVAL;
    line l = {.n = 0};
    put_command_key(&l, "delete", key, len, false);
    if (noreply)
        put_str(&l, " noreply");
    return emit(b, &l, NULL, 0);
}

static int encode_arith(wv_buf *b, const char *cmd, const char *key, size_t len, uint64_t delta,
                        bool noreply)
{
    if (!mc_key_valid(key, len))
        return -EINVAL;
    line l = {.n = 0};
    put_command_key(&l, cmd, key, len, false);
    l.p[l.n++] = ' ';
    put_u64(&l, delta);
    if (noreply)
        put_str(&l, " noreply");
    return emit(b, &l, NULL, 0);
}

int mc_encode_incr(wv_buf *b, const char *key, size_t len, uint64_t delta, bool noreply)
{
    return encode_arith(b, "incr", key, len, delta, noreply);
}

int mc_encode_decr(wv_buf *b, const char *key, size_t len, uint64_t delta, bool noreply)
{
    return encode_arith(b, "decr", key, len, delta, noreply);
}

int mc_encode_touch(wv_buf *b, const char *key, size_t len, int64_t exptime, bool noreply)
{
    if (!mc_key_valid(key, len))
        return -EINVAL;
    line l = {.n = 0};
    put_command_key(&l, "touch", key, len, false);
    l.p[l.n++] = ' ';
    put_i64(&l, exptime);
    if (noreply)
        put_str(&l, " noreply");
    return emit(b, &l, NULL, 0);
}

int mc_encode_version(wv_buf *b)
{
    return wv_buf_append(b, "version\r\n", 9);
}

/* ------------------------------------------------------------ reply errors */

/* Write "fmt..." into why, quoting q[0..qn) where the format has %s: at
 * most 40 bytes of it, non-printable bytes as \xNN, "..." when cut. */
static ssize_t fail(int err, char *why, size_t why_size, const char *q, size_t qn, const char *fmt,
                    ...) WV_PRINTF(6, 7);

static ssize_t fail(int err, char *why, size_t why_size, const char *q, size_t qn, const char *fmt,
                    ...)
{
    if (!why || why_size == 0)
        return -err;
    char quoted[4 * 40 + 8];
    size_t o = 0;
    for (size_t i = 0; i < qn && i < 40; i++) {
        unsigned char c = (unsigned char)q[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            quoted[o++] = (char)c;
        else
            o += (size_t)sprintf(quoted + o, "\\x%02x", c);
    }
    if (qn > 40) {
        memcpy(quoted + o, "...", 3);
        o += 3;
    }
    quoted[o] = '\0';
    va_list ap;
    va_start(ap, fmt);
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* the quoted bytes replace the one "%q" placeholder, if any */
    char *at = strstr(msg, "%q");
    if (at)
        snprintf(why, why_size, "%.*s\"%s\"%s", (int)(at - msg), msg, quoted, at + 2);
    else
        snprintf(why, why_size, "%s", msg);
    return -err;
}

/* ------------------------------------------------------------ reply lines */

enum { MAX_TOKENS = 24 };

typedef struct tokens {
    mc_slice t[MAX_TOKENS];
    size_t n;
    bool too_many;
} tokens;

/* Split line p[start..end) on runs of spaces. */
static void split(const char *p, size_t start, size_t end, tokens *tk)
{
    tk->n = 0;
    tk->too_many = false;
    size_t i = start;
    while (i < end) {
        while (i < end && p[i] == ' ')
            i++;
        if (i == end)
            break;
        size_t from = i;
        while (i < end && p[i] != ' ')
            i++;
        if (tk->n == MAX_TOKENS) {
            tk->too_many = true;
            return;
        }
        tk->t[tk->n++] = (mc_slice){from, i - from};
    }
}

/* Decimal digits only, no sign, no leading '+', at most UINT64_MAX. */
static bool parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_i64(const char *s, size_t n, int64_t *out)
{
    bool neg = n > 0 && s[0] == '-';
    uint64_t v;
    if (!parse_u64(s + neg, n - neg, &v))
        return false;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

typedef struct ctx {
    const char *p;
    char *why;
    size_t why_size;
} ctx;

/* The returned flags of a meta reply: tokens first.. of the line. */
static ssize_t meta_flags(const ctx *c, const tokens *tk, size_t first, const char *code,
                          mc_reply *r)
{
    const char *p = c->p;
    for (size_t i = first; i < tk->n; i++) {
        mc_slice t = tk->t[i];
        char f = p[t.off];
        const char *arg = p + t.off + 1;
        size_t arg_len = t.len - 1;
        if (!((f >= 'A' && f <= 'Z') || (f >= 'a' && f <= 'z')))
            return fail(EPROTO, c->why, c->why_size, p + t.off, t.len,
                        "%s reply: flag %%q does not start with a letter", code);
        bool ok = true;
        uint64_t u;
        switch (f) {
        case 'f':
            ok = parse_u64(arg, arg_len, &u) && u <= UINT32_MAX;
            if (ok)
                r->client_flags = (uint32_t)u;
            break;
        case 'c':
            ok = parse_u64(arg, arg_len, &r->cas);
            break;
        case 't':
            ok = parse_i64(arg, arg_len, &r->ttl);
            break;
        case 's':
            ok = parse_u64(arg, arg_len, &r->size);
            break;
        case 'l':
            ok = parse_u64(arg, arg_len, &r->last_access);
            break;
        case 'h':
            ok = arg_len == 1 && (arg[0] == '0' || arg[0] == '1');
            r->hit = ok && arg[0] == '1';
            break;
        case 'k':
            ok = arg_len > 0;
            r->key = (mc_slice){t.off + 1, arg_len};
            break;
        case 'O':
            ok = arg_len > 0;
            r->opaque = (mc_slice){t.off + 1, arg_len};
            break;
        case 'b':
        case 'W':
        case 'X':
        case 'Z':
            ok = arg_len == 0;
            break;
        default: /* a flag of a later memcached: noted, its token ignored */
            break;
        }
        if (!ok)
            return fail(EPROTO, c->why, c->why_size, p + t.off, t.len,
                        "%s reply: bad flag token %%q", code);
        r->flags |= (uint64_t)1 << (f - 'A');
    }
    return 0;
}

/* How the rest of a reply's line reads, after its first word. */
typedef enum shape {
    SHAPE_META,  /* returned flags */
    SHAPE_WORD,  /* nothing */
    SHAPE_TEXT,  /* free text: a message, a version */
    SHAPE_ME,    /* a key, then free text */
    SHAPE_VA,    /* a size, returned flags; a data block follows */
    SHAPE_VALUE, /* key, flags, bytes, maybe a CAS; a data block follows */
} shape;

/* The first words of replies, the most frequent first. */
static const struct {
    const char *word;
    uint8_t len;
    uint8_t shape;
    mc_reply_kind kind;
} reply_words[] = {
#define WORD(w, shape, kind)                                                                       \
    {                                                                                              \
        w, sizeof(w) - 1, shape, kind                                                              \
    }
    WORD("HD", SHAPE_META, MC_HD),
    WORD("VA", SHAPE_VA, MC_VA),
    WORD("EN", SHAPE_META, MC_EN),
    WORD("VALUE", SHAPE_VALUE, MC_VALUE),
    WORD("END", SHAPE_WORD, MC_END),
    WORD("STORED", SHAPE_WORD, MC_STORED),
    WORD("MN", SHAPE_META, MC_MN),
    WORD("NF", SHAPE_META, MC_NF),
    WORD("NS", SHAPE_META, MC_NS),
    WORD("EX", SHAPE_META, MC_EX),
    WORD("NOT_STORED", SHAPE_WORD, MC_NOT_STORED),
    WORD("EXISTS", SHAPE_WORD, MC_EXISTS),
    WORD("NOT_FOUND", SHAPE_WORD, MC_NOT_FOUND),
    WORD("DELETED", SHAPE_WORD, MC_DELETED),
    WORD("TOUCHED", SHAPE_WORD, MC_TOUCHED),
    WORD("OK", SHAPE_WORD, MC_OK),
    WORD("ME", SHAPE_ME, MC_ME),
    WORD("VERSION", SHAPE_TEXT, MC_VERSION),
    WORD("ERROR", SHAPE_TEXT, MC_ERROR),
    WORD("CLIENT_ERROR", SHAPE_TEXT, MC_CLIENT_ERROR),
    WORD("SERVER_ERROR", SHAPE_TEXT, MC_SERVER_ERROR),
#undef WORD
};

/* The index in reply_words of the word p[w.off..), or -1. */
static int find_word(const char *p, mc_slice w)
{
    for (size_t i = 0; i < sizeof reply_words / sizeof reply_words[0]; i++)
        if (reply_words[i].len == w.len && memcmp(p + w.off, reply_words[i].word, w.len) == 0)
            return (int)i;
    return -1;
}

/* The run of bytes other than space at p[from..end), and the spaces after it. */
static size_t word_end(const char *p, size_t from, size_t end)
{
    while (from < end && p[from] != ' ')
        from++;
    return from;
}

static size_t skip_spaces(const char *p, size_t from, size_t end)
{
    while (from < end && p[from] == ' ')
        from++;
    return from;
}

/*
 * The line p[0..end) (without CRLF) of a reply with n bytes available in
 * all: fills *r and returns the bytes the reply takes (its data block
 * included), 0 when the data block has not all arrived, or an error.
 */
static ssize_t parse_line(const ctx *c, size_t end, size_t n, size_t max_value, mc_reply *r)
{
    const char *p = c->p;
    size_t line_len = end + 2;
    *r = (mc_reply){0};

    /* the first word decides; lines whose rest is free text are not split */
    size_t from = skip_spaces(p, 0, end);
    if (from == end)
        return fail(EPROTO, c->why, c->why_size, NULL, 0, "empty reply line");
    mc_slice first = {from, word_end(p, from, end) - from};
    size_t rest = skip_spaces(p, first.off + first.len, end);
    int w = find_word(p, first);
    if (w < 0 && !(p[from] >= '0' && p[from] <= '9'))
        return fail(EPROTO, c->why, c->why_size, p + first.off, first.len, "unknown reply %%q");
    if (w >= 0) {
        r->kind = reply_words[w].kind;
        if (reply_words[w].shape == SHAPE_TEXT) {
            r->text = (mc_slice){rest, end - rest};
            return (ssize_t)line_len;
        }
        if (reply_words[w].shape == SHAPE_ME) {
            size_t key_end = word_end(p, rest, end), text = skip_spaces(p, key_end, end);
            if (key_end == rest)
                return fail(EPROTO, c->why, c->why_size, NULL, 0, "ME reply without a key");
            r->key = (mc_slice){rest, key_end - rest};
            r->text = (mc_slice){text, end - text};
            return (ssize_t)line_len;
        }
    }

    tokens tk;
    split(p, from, end, &tk);
    if (tk.too_many)
        return fail(EPROTO, c->why, c->why_size, p, end, "reply line has over %d tokens: %%q",
                    MAX_TOKENS);
    if (w < 0) {
        if (tk.n != 1 || !parse_u64(p + first.off, first.len, &r->number))
            return fail(EPROTO, c->why, c->why_size, p, end, "bad number reply %%q");
        r->kind = MC_NUMBER;
        return (ssize_t)line_len;
    }
    if (reply_words[w].shape == SHAPE_META) {
        ssize_t rc = meta_flags(c, &tk, 1, reply_words[w].word, r);
        return rc < 0 ? rc : (ssize_t)line_len;
    }
    if (reply_words[w].shape == SHAPE_WORD) {
        if (tk.n != 1)
            return fail(EPROTO, c->why, c->why_size, p, end, "%s with more after it: %%q",
                        reply_words[w].word);
        return (ssize_t)line_len;
    }

    size_t data_len;
    if (reply_words[w].shape == SHAPE_VA) {
        uint64_t size;
        if (tk.n < 2 || !parse_u64(p + tk.t[1].off, tk.t[1].len, &size))
            return fail(EPROTO, c->why, c->why_size, p, end, "VA reply without a size: %%q");
        ssize_t rc = meta_flags(c, &tk, 2, "VA", r);
        if (rc < 0)
            return rc;
        data_len = size > SIZE_MAX ? SIZE_MAX : (size_t)size;
    } else { /* SHAPE_VALUE */
        uint64_t flags, size;
        if (tk.n != 4 && tk.n != 5)
            return fail(EPROTO, c->why, c->why_size, p, end,
                        "VALUE line needs key, flags, bytes and maybe a CAS: %%q");
        mc_slice key = tk.t[1];
        if (!mc_key_valid(p + key.off, key.len))
            return fail(EPROTO, c->why, c->why_size, p + key.off, key.len,
                        "VALUE line with an invalid key %%q");
        if (!parse_u64(p + tk.t[2].off, tk.t[2].len, &flags) || flags > UINT32_MAX)
            return fail(EPROTO, c->why, c->why_size, p + tk.t[2].off, tk.t[2].len,
                        "VALUE line with bad client flags %%q");
        if (!parse_u64(p + tk.t[3].off, tk.t[3].len, &size))
            return fail(EPROTO, c->why, c->why_size, p + tk.t[3].off, tk.t[3].len,
                        "VALUE line with a bad length %%q");
        if (tk.n == 5) {
            if (!parse_u64(p + tk.t[4].off, tk.t[4].len, &r->cas))
                return fail(EPROTO, c->why, c->why_size, p + tk.t[4].off, tk.t[4].len,
                            "VALUE line with a bad CAS %%q");
            r->flags |= (uint64_t)1 << ('c' - 'A');
        }
        r->key = key;
        r->client_flags = (uint32_t)flags;
        r->flags |= (uint64_t)1 << ('f' - 'A') | (uint64_t)1 << ('k' - 'A');
        data_len = size > SIZE_MAX ? SIZE_MAX : (size_t)size;
    }

    /* a data block of data_len bytes and CRLF follows the line */
    size_t room = (size_t)SSIZE_MAX - line_len - 2;
    if ((max_value && data_len > max_value) || data_len > room)
        return fail(EMSGSIZE, c->why, c->why_size, NULL, 0,
                    "value of %zu bytes is over the limit of %zu", data_len,
                    max_value && max_value < room ? max_value : room);
    size_t total = line_len + data_len + 2;
    size_t data_end = line_len + data_len;
    if (n > data_end && p[data_end] != '\r')
        return fail(EPROTO, c->why, c->why_size, p + data_end, n - data_end > 2 ? 2 : n - data_end,
                    "data block not followed by CRLF but %%q");
    if (n < total)
        return 0;
    if (p[data_end + 1] != '\n')
        return fail(EPROTO, c->why, c->why_size, p + data_end, 2,
                    "data block not followed by CRLF but %%q");
    r->value = (mc_slice){line_len, data_len};
    return (ssize_t)total;
}

ssize_t mc_parse_reply(const char *p, size_t n, size_t max_value, mc_reply *r, char *why,
                       size_t why_size)
{
    if (n == 0)
        return 0;
    ctx c = {p, why, why_size};
    size_t look = n < MC_LINE_MAX + 2 ? n : MC_LINE_MAX + 2;
    const char *lf = memchr(p, '\n', look);
    if (!lf) {
        if (look == MC_LINE_MAX + 2)
            return fail(EPROTO, why, why_size, p, look, "reply line longer than %d bytes: %%q",
                        MC_LINE_MAX);
        return 0;
    }
    size_t at = (size_t)(lf - p);
    if (at == 0 || p[at - 1] != '\r')
        return fail(EPROTO, why, why_size, p, at, "reply line ends in a bare LF: %%q");
    size_t end = at - 1;
    for (size_t i = 0; i < end; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return fail(EPROTO, why, why_size, p, end, "control byte in the reply line %%q");
    mc_reply tmp;
    ssize_t rc = parse_line(&c, end, n, max_value, &tmp);
    if (rc > 0)
        *r = tmp;
    return rc;
}
