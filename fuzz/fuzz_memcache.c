/*
 * libFuzzer target for the memcached codec (src/memcache/proto.c). `make
 * fuzz` runs it; its seeds and every crash input are kept in
 * fuzz/corpus/fuzz_memcache/.
 *
 * Input: one control byte, then a stream of replies. Bits 0-1 of the control
 * byte pick max_value (none, 16, 1000, 1 MiB), bits 2-7 a split point (in
 * 64ths of the stream).
 *
 * The stream is parsed reply by reply, each call on an exactly sized heap
 * copy of the bytes left (so ASan catches a read past the end). Each result
 * is checked: a reply's slices lie inside it, a data block is followed by
 * CRLF, numbers agree with the text, an error is -EPROTO or -EMSGSIZE with a
 * reason; every prefix of the bytes left gives 0 or the same result. The
 * stream is then fed as a reader would, in two pieces split at the split
 * point and (when short) byte by byte, and must give the same replies.
 *
 * The same bytes also drive the encoders: a key, a value and options taken
 * from the input; an encoder succeeds exactly when a reference says the key
 * (and opaque) are valid, and its request must read back: one CRLF-ended
 * line whose second token is the key (or its base64), then for ms and the
 * storage commands the value and CRLF. Base64 round-trips. A violation
 * aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memcache/proto.h"
#include "fuzz_util.h"

/* ------------------------------------------------------------ references */

/* The key rule, by another method: a table of the bytes allowed. */
static bool ref_key_valid(const char *k, size_t n)
{
    static bool allowed[256];
    static bool init;
    if (!init) {
        for (int c = 0; c < 256; c++)
            allowed[c] = c > ' ' && c != 127;
        init = true;
    }
    if (n < 1 || n > 250)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!allowed[(unsigned char)k[i]])
            return false;
    return true;
}

static bool slice_inside(mc_slice s, size_t n)
{
    return s.off <= n && s.len <= n - s.off;
}

/* ------------------------------------------------------------ replies */

typedef struct result {
    ssize_t rc;
    mc_reply r;
} result;

static result parse_copy(const char *p, size_t n, size_t max_value, char *why, size_t why_size)
{
    char *b = copy_exact(p, n);
    result res;
    memset(&res.r, 0, sizeof res.r);
    res.rc = mc_parse_reply(b, n, max_value, &res.r, why, why_size);
    free(b);
    return res;
}

static bool same_reply(const mc_reply *a, const mc_reply *b)
{
    return a->kind == b->kind && a->flags == b->flags &&
           !memcmp(&a->value, &b->value, sizeof a->value) &&
           !memcmp(&a->key, &b->key, sizeof a->key) &&
           !memcmp(&a->opaque, &b->opaque, sizeof a->opaque) &&
           !memcmp(&a->text, &b->text, sizeof a->text) && a->client_flags == b->client_flags &&
           a->cas == b->cas && a->ttl == b->ttl && a->size == b->size &&
           a->last_access == b->last_access && a->hit == b->hit && a->number == b->number;
}

static void check_reply(const char *p, size_t n, const result *res, size_t max_value,
                        const char *why)
{
    if (res->rc < 0) {
        CHECK(res->rc == -EPROTO || res->rc == -EMSGSIZE);
        CHECK(why[0] != '\0' && strlen(why) < 256);
        return;
    }
    if (res->rc == 0)
        return;
    size_t len = (size_t)res->rc;
    const mc_reply *r = &res->r;
    CHECK(len <= n && len >= 3);
    CHECK(r->kind >= MC_HD && r->kind <= MC_SERVER_ERROR);
    const char *lf = memchr(p, '\n', len);
    CHECK(lf && lf > p && lf[-1] == '\r');
    size_t line_len = (size_t)(lf - p) + 1;
    CHECK(line_len - 2 <= MC_LINE_MAX);
    for (size_t i = 0; i + 2 < line_len; i++)
        CHECK((unsigned char)p[i] >= 0x20 && p[i] != 0x7f);
    CHECK(slice_inside(r->value, len) && slice_inside(r->key, line_len) &&
          slice_inside(r->opaque, line_len) && slice_inside(r->text, line_len));
    if (r->kind == MC_VA || r->kind == MC_VALUE) {
        CHECK(r->value.off == line_len && r->value.off + r->value.len + 2 == len);
        CHECK(p[len - 2] == '\r' && p[len - 1] == '\n');
        CHECK(max_value == 0 || r->value.len <= max_value);
    } else {
        CHECK(len == line_len && r->value.len == 0);
    }
    if (r->kind == MC_VALUE) {
        CHECK(ref_key_valid(p + r->key.off, r->key.len));
        CHECK(mc_reply_has(r, 'f') && mc_reply_has(r, 'k'));
    }
    if (r->kind == MC_NUMBER) {
        /* the digits, read again */
        uint64_t v = 0;
        size_t i = 0;
        while (p[i] == ' ')
            i++;
        for (; p[i] >= '0' && p[i] <= '9'; i++)
            v = v * 10 + (uint64_t)(p[i] - '0');
        CHECK(v == r->number);
    }
    if (mc_reply_has(r, 'k') && r->kind != MC_VALUE)
        CHECK(r->key.len > 0 && p[r->key.off - 1] == 'k');
    if (mc_reply_has(r, 'O'))
        CHECK(r->opaque.len > 0 && p[r->opaque.off - 1] == 'O');
    for (size_t i = 0; i < r->text.len; i++)
        CHECK(p[r->text.off + i] != '\r' && p[r->text.off + i] != '\n');
}

/* Every prefix of p[0..n) gives 0 or the whole's answer (at most 600 prefixes
 * for a long input: the short ones, then a stride). */
static void check_prefixes(const char *p, size_t n, const result *whole, size_t max_value)
{
    size_t stride = n <= 512 ? 1 : n / 64;
    for (size_t k = 0; k < n; k += (k < 512 ? 1 : stride)) {
        char why[256] = "";
        result res = parse_copy(p, k, max_value, why, sizeof why);
        if (res.rc == 0)
            continue;
        CHECK(res.rc == whole->rc);
        if (res.rc > 0)
            CHECK(same_reply(&res.r, &whole->r));
    }
}

typedef struct event {
    ssize_t rc;
    mc_reply r;
} event;

/* Parse in[0..n) whole, reply by reply; returns the events (last: 0 or an error). */
static size_t parse_stream(const char *in, size_t n, size_t max_value, event *ev, size_t max_ev)
{
    size_t at = 0, count = 0;
    while (count < max_ev) {
        char why[256] = "";
        result res = parse_copy(in + at, n - at, max_value, why, sizeof why);
        check_reply(in + at, n - at, &res, max_value, why);
        check_prefixes(in + at, n - at, &res, max_value);
        ev[count].rc = res.rc;
        ev[count].r = res.r;
        count++;
        if (res.rc <= 0)
            break;
        at += (size_t)res.rc;
    }
    return count;
}

/* The same stream fed as pieces arrive: the first `split` bytes, then the rest
 * (or one byte at a time when bytewise), parsing whatever is buffered after
 * each piece. The replies must be the whole-parse's. */
static void feed(const char *in, size_t n, size_t max_value, size_t split, bool bytewise,
                 const event *ev, size_t n_ev)
{
    char *buf = malloc(n ? n : 1);
    CHECK(buf);
    size_t have = 0, start = 0, got = 0;
    bool stopped = false;
    while (have < n && !stopped) {
        size_t piece = bytewise ? 1 : (have < split ? split - have : n - have);
        memcpy(buf + have, in + have, piece);
        have += piece;
        for (;;) {
            char *b = copy_exact(buf + start, have - start);
            mc_reply r;
            ssize_t rc = mc_parse_reply(b, have - start, max_value, &r, NULL, 0);
            free(b);
            if (rc == 0)
                break;
            CHECK(got < n_ev && ev[got].rc == rc);
            if (rc < 0) {
                stopped = true;
                break;
            }
            CHECK(same_reply(&r, &ev[got].r));
            got++;
            start += (size_t)rc;
        }
    }
    /* every reply the whole parse found, and its final 0 or error */
    if (!stopped)
        CHECK(got + 1 == n_ev && ev[got].rc == 0);
    else
        CHECK(got + 1 == n_ev);
    free(buf);
}

/* ------------------------------------------------------------ requests */

/* The first line of out[0..n): its length up to CRLF; the line holds no CR or LF. */
static size_t request_line(const char *out, size_t n)
{
    const char *lf = memchr(out, '\n', n);
    CHECK(lf && lf > out && lf[-1] == '\r');
    size_t len = (size_t)(lf - out) - 1;
    CHECK(!memchr(out, '\r', len));
    return len;
}

/* Token i (0-based, single spaces) of line[0..len). */
static const char *token(const char *line, size_t len, int i, size_t *tlen)
{
    size_t at = 0;
    for (int t = 0; t < i; t++) {
        const char *sp = memchr(line + at, ' ', len - at);
        CHECK(sp);
        at = (size_t)(sp - line) + 1;
    }
    const char *sp = memchr(line + at, ' ', len - at);
    *tlen = sp ? (size_t)(sp - line) - at : len - at;
    return line + at;
}

static void check_key_token(const char *line, size_t len, const char *key, size_t klen, bool base64)
{
    size_t tlen;
    const char *t = token(line, len, 1, &tlen);
    if (base64) {
        char back[MC_BASE64_KEY_MAX];
        CHECK(mc_base64_decode(t, tlen, back, sizeof back) == (ssize_t)klen);
        CHECK(memcmp(back, key, klen) == 0);
    } else {
        CHECK(tlen == klen && memcmp(t, key, klen) == 0);
    }
}

static void check_data_block(const char *out, size_t n, size_t line_len, const char *value,
                             size_t vlen)
{
    CHECK(n == line_len + 2 + vlen + 2);
    CHECK(vlen == 0 || memcmp(out + line_len + 2, value, vlen) == 0);
    CHECK(out[n - 2] == '\r' && out[n - 1] == '\n');
}

static void check_encoders(const uint8_t *data, size_t size)
{
    if (size < 4)
        return;
    uint8_t sel = data[0], bits = data[1];
    size_t klen = data[2] % 255, olen = data[3] % 36;
    const char *rest = (const char *)data + 4;
    size_t left = size - 4;
    if (klen > left)
        klen = left;
    char *key = copy_exact(rest, klen);
    rest += klen;
    left -= klen;
    if (olen > left)
        olen = left;
    char opaque_buf[40];
    memcpy(opaque_buf, rest, olen);
    opaque_buf[olen] = '\0';
    rest += olen;
    left -= olen;
    const char *opaque = (bits & 1) ? opaque_buf : NULL;
    size_t ol = strlen(opaque_buf);
    bool opaque_ok = !opaque || (ol <= 32 && ref_key_valid(opaque_buf, ol));
    bool base64 = bits & 2;
    bool key_ok = base64 ? klen >= 1 && klen <= MC_BASE64_KEY_MAX : ref_key_valid(key, klen);
    char *value = copy_exact(rest, left);
    bool quiet = bits & 4;
    uint64_t num = (uint64_t)bits * 0x9E3779B97F4A7C15u;

    wv_buf b = {0};
    int rc;
    switch (sel % 6) {
    case 0:
        rc = mc_encode_mg(&b, key, klen,
                          &(mc_mg_opts){.value = bits & 8,
                                        .cas = bits & 16,
                                        .quiet = quiet,
                                        .base64_key = base64,
                                        .opaque = opaque,
                                        .touch = bits & 32,
                                        .touch_ttl = -(int64_t)(num >> 1)});
        CHECK(rc == (key_ok && opaque_ok ? 0 : -EINVAL));
        if (rc == 0)
            check_key_token(b.p, request_line(b.p, b.n), key, klen, base64);
        break;
    case 1: {
        rc = mc_encode_ms(&b, key, klen, value, left,
                          &(mc_ms_opts){.mode = (bits & 8) ? MC_MS_APPEND : MC_MS_SET,
                                        .client_flags = (uint32_t)num,
                                        .ttl = (int64_t)num,
                                        .compare_cas = num,
                                        .quiet = quiet,
                                        .base64_key = base64,
                                        .opaque = opaque});
        CHECK(rc == (key_ok && opaque_ok ? 0 : -EINVAL));
        if (rc == 0) {
            size_t len = request_line(b.p, b.n), tlen;
            check_key_token(b.p, len, key, klen, base64);
            const char *t = token(b.p, len, 2, &tlen);
            uint64_t v = 0;
            for (size_t i = 0; i < tlen; i++)
                v = v * 10 + (uint64_t)(t[i] - '0');
            CHECK(v == left);
            check_data_block(b.p, b.n, len, value, left);
        }
        break;
    }
    case 2:
        rc = mc_encode_md(
            &b, key, klen,
            &(mc_md_opts){
                .invalidate = bits & 8, .quiet = quiet, .base64_key = base64, .opaque = opaque});
        CHECK(rc == (key_ok && opaque_ok ? 0 : -EINVAL));
        if (rc == 0)
            check_key_token(b.p, request_line(b.p, b.n), key, klen, base64);
        break;
    case 3:
        rc = mc_encode_ma(&b, key, klen, num,
                          &(mc_ma_opts){.mode = (bits & 8) ? MC_MA_DECR : MC_MA_INCR,
                                        .vivify = bits & 16,
                                        .initial = num,
                                        .quiet = quiet,
                                        .base64_key = base64,
                                        .opaque = opaque});
        CHECK(rc == (key_ok && opaque_ok ? 0 : -EINVAL));
        if (rc == 0)
            check_key_token(b.p, request_line(b.p, b.n), key, klen, base64);
        break;
    case 4: {
        key_ok = ref_key_valid(key, klen);
        rc = mc_encode_store(
            &b, (mc_store_cmd)(bits % 6), key, klen, value, left,
            &(mc_store_opts){
                .flags = (uint32_t)num, .exptime = -(int64_t)bits, .cas = num, .noreply = quiet});
        CHECK(rc == (key_ok ? 0 : -EINVAL));
        if (rc == 0) {
            size_t len = request_line(b.p, b.n);
            check_key_token(b.p, len, key, klen, false);
            check_data_block(b.p, b.n, len, value, left);
        }
        break;
    }
    default: {
        /* get with the key cut in two halves, each a key */
        wv_str keys[2] = {{key, klen / 2}, {key + klen / 2, klen - klen / 2}};
        key_ok = ref_key_valid(keys[0].p, keys[0].n) && ref_key_valid(keys[1].p, keys[1].n);
        rc = mc_encode_get(&b, keys, 2, bits & 8);
        CHECK(rc == (key_ok ? 0 : -EINVAL));
        if (rc == 0) {
            size_t len = request_line(b.p, b.n);
            CHECK(len == ((bits & 8) ? 4 : 3) + 2 + klen && b.n == len + 2);
        }
        break;
    }
    }
    if (rc != 0)
        CHECK(b.n == 0);
    wv_buf_free(&b);

    /* the key rule itself, and base64 both ways */
    CHECK(mc_key_valid(key, klen) == ref_key_valid(key, klen));
    char *text = malloc(4 * (left / 3 + 1) + 1);
    CHECK(text);
    size_t tlen = mc_base64_encode(value, left, text);
    CHECK(tlen == 4 * ((left + 2) / 3));
    char *back = malloc(left + 1);
    CHECK(back);
    CHECK(mc_base64_decode(text, tlen, back, left) == (ssize_t)left);
    CHECK(left == 0 || memcmp(back, value, left) == 0);
    ssize_t dn = mc_base64_decode(value, left, back, left);
    CHECK(dn == -EINVAL || (dn >= 0 && (size_t)dn <= left));
    free(text);
    free(back);
    free(key);
    free(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t limits[4] = {0, 16, 1000, 1 << 20};
    size_t max_value = limits[data[0] & 3];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    size_t split = n * (data[0] >> 2) / 64;

    enum { MAX_EVENTS = 256 };
    event *ev = malloc(MAX_EVENTS * sizeof *ev);
    CHECK(ev);
    size_t n_ev = parse_stream(in, n, max_value, ev, MAX_EVENTS);
    if (n_ev < MAX_EVENTS || ev[n_ev - 1].rc <= 0) {
        feed(in, n, max_value, split, false, ev, n_ev);
        if (n <= 256)
            feed(in, n, max_value, 0, true, ev, n_ev);
    }
    free(ev);

    check_encoders(data, size);
    return 0;
}
