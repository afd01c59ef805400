/*
 * src/http/parser.c: the HTTP/1.1 request-head parser and the chunked-body
 * decoder (RFC 9110, RFC 9112), sans-I/O and zero-copy. See parser.h for the
 * contract; this comment says how it is built.
 *
 * A head is parsed in two passes.
 *
 * 1. scan_head() looks for the blank line that ends the head. On the way it
 *    checks what needs no grammar: every line ends in CRLF (a bare LF or CR
 *    is an error), no byte is DEL or a control byte other than HTAB, the
 *    request line fits max_request_line, the head max_head_bytes, and there
 *    are at most max_headers field lines. It runs 16 bytes at a time with
 *    SSE2 and keeps its place in the caller's `scanned` cursor, so bytes are
 *    scanned once however the head is split. Its errors are decided by the
 *    bytes alone, in byte order, so a prefix reports the same error as the
 *    whole or none. When it scanned the whole head in one call (the usual
 *    case) it also hands pass 2 where each field line's CR is.
 *
 * 2. parse_head() runs once, on a complete head: request line, target form,
 *    version, field lines, and the framing headers (Content-Length,
 *    Transfer-Encoding, Host, Connection, Expect, Upgrade). It can rely on
 *    pass 1: each CR is followed by LF, and every byte of a field value is
 *    already valid (HTAB, SP, VCHAR, obs-text), so values need no check, and
 *    with the CRs known no line waits for the previous one to be searched:
 *    the CPU overlaps their work.
 *
 * Because pass 2 only runs on complete heads, pass 1 errors win over pass 2
 * errors, and within pass 2 the first error in byte order wins, except that
 * a 501 (unknown transfer coding) is only reported when nothing is a 400.
 *
 * Character classes are one 256-entry table built at compile time.
 */
#include "http/parser.h"

#include <limits.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ------------------------------------------------------------ character classes */

enum {
    C_TCHAR = 1,    /* token (RFC 9110 5.6.2) */
    C_VISIBLE = 2,  /* VCHAR 0x21-0x7E: request-target bytes */
    C_SPECIAL = 4,  /* never in a head except as CRLF: CTLs other than HTAB, and DEL */
    C_HOST = 8,     /* reg-name (RFC 3986): unreserved / sub-delims, and '%' */
    C_HEX = 16,     /* HEXDIG */
    C_FIELD = 32,   /* HTAB / SP / VCHAR / obs-text: field values, quoted-pair */
    C_QDTEXT = 64,  /* qdtext (RFC 9110 5.6.4) */
    C_SCHEME = 128, /* scheme (RFC 3986 3.1) after its first ALPHA */
};

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_ALPHA(c) (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))
#define IS_TCHAR(c)                                                                                \
    (IS_DIGIT(c) || IS_ALPHA(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||         \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||          \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_UNRESERVED(c)                                                                           \
    (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~')
#define IS_SUBDELIM(c)                                                                             \
    ((c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' || (c) == ')' ||          \
     (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=')
#define IS_HEX(c) (IS_DIGIT(c) || ((c) >= 'a' && (c) <= 'f') || ((c) >= 'A' && (c) <= 'F'))

#define CLASS(c)                                                                                   \
    ((IS_TCHAR(c) ? C_TCHAR : 0) | ((c) >= 0x21 && (c) <= 0x7e ? C_VISIBLE : 0) |                  \
     (((c) < 0x20 && (c) != 0x09) || (c) == 0x7f ? C_SPECIAL : 0) |                                \
     (IS_UNRESERVED(c) || IS_SUBDELIM(c) || (c) == '%' ? C_HOST : 0) | (IS_HEX(c) ? C_HEX : 0) |   \
     ((c) == 0x09 || ((c) >= 0x20 && (c) != 0x7f) ? C_FIELD : 0) |                                 \
     ((c) == 0x09 || (c) == 0x20 || (c) == 0x21 || ((c) >= 0x23 && (c) <= 0x5b) ||                 \
              ((c) >= 0x5d && (c) <= 0x7e) || (c) >= 0x80                                          \
          ? C_QDTEXT                                                                               \
          : 0) |                                                                                   \
     (IS_ALPHA(c) || IS_DIGIT(c) || (c) == '+' || (c) == '-' || (c) == '.' ? C_SCHEME : 0))
#define ROW(b)                                                                                     \
    CLASS((b) + 0), CLASS((b) + 1), CLASS((b) + 2), CLASS((b) + 3), CLASS((b) + 4),                \
        CLASS((b) + 5), CLASS((b) + 6), CLASS((b) + 7), CLASS((b) + 8), CLASS((b) + 9),            \
        CLASS((b) + 10), CLASS((b) + 11), CLASS((b) + 12), CLASS((b) + 13), CLASS((b) + 14),       \
        CLASS((b) + 15)

static const unsigned char cls[256] = {
    ROW(0x00), ROW(0x10), ROW(0x20), ROW(0x30), ROW(0x40), ROW(0x50), ROW(0x60), ROW(0x70),
    ROW(0x80), ROW(0x90), ROW(0xa0), ROW(0xb0), ROW(0xc0), ROW(0xd0), ROW(0xe0), ROW(0xf0),
};

static inline bool is(char c, unsigned class_mask)
{
    return (cls[(unsigned char)c] & class_mask) != 0;
}

bool http_token_char(unsigned char c)
{
    return (cls[c] & C_TCHAR) != 0;
}

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline int hex_value(char c)
{
    return IS_DIGIT(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* ------------------------------------------------------------ scanning */

static bool use_simd = true;

void http_parser_use_simd(bool on)
{
    use_simd = on;
}

/* Index of the first C_SPECIAL byte (CR, LF, another CTL but HTAB, DEL) in
 * buf[i..end), or end. */
static inline size_t find_special(const char *buf, size_t i, size_t end)
{
#ifdef __SSE2__
    if (use_simd) {
        const __m128i ctl = _mm_set1_epi8(0x1f), tab = _mm_set1_epi8(0x09);
        const __m128i del = _mm_set1_epi8(0x7f);
        while (end - i >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
            __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(x, ctl), x); /* x <= 0x1f */
            low = _mm_andnot_si128(_mm_cmpeq_epi8(x, tab), low);
            int bits = _mm_movemask_epi8(_mm_or_si128(low, _mm_cmpeq_epi8(x, del)));
            if (bits)
                return i + (size_t)__builtin_ctz((unsigned)bits);
            i += 16;
        }
    }
#endif
    for (; i < end; i++)
        if (is(buf[i], C_SPECIAL))
            return i;
    return end;
}

/* The first byte of [p, end) that is not VCHAR; *query gets the first '?'
 * before it (NULL if none). */
static inline const char *scan_target(const char *p, const char *end, const char **query)
{
    const char *q = NULL;
#ifdef __SSE2__
    if (use_simd) {
        const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f);
        const __m128i qm = _mm_set1_epi8('?');
        while (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
            /* signed compares: 0x80-0xff are negative, so "not > 0x20" */
            __m128i ok = _mm_and_si128(_mm_cmpgt_epi8(x, sp), _mm_cmplt_epi8(x, del));
            unsigned bad = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
            unsigned qs = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, qm));
            if (bad)
                qs &= (1u << __builtin_ctz(bad)) - 1; /* only '?' before the end */
            if (qs && !q)
                q = p + __builtin_ctz(qs);
            if (bad) {
                *query = q;
                return p + __builtin_ctz(bad);
            }
            p += 16;
        }
    }
#endif
    for (; p < end && is(*p, C_VISIBLE); p++)
        if (*p == '?' && !q)
            q = p;
    *query = q;
    return p;
}

/* The first byte at or after p that is not a letter, a digit, '-' or
 * `extra`, looking no further than end. Names and host names are nearly
 * always made of these, which SSE2 checks 16 at a time; callers go on byte by
 * byte with their full character class from where this stops. */
static inline const char *skip_alnum(const char *p, const char *end, char extra)
{
#ifdef __SSE2__
    if (use_simd) {
        const __m128i case_bit = _mm_set1_epi8(0x20), dash = _mm_set1_epi8('-');
        const __m128i other = _mm_set1_epi8(extra);
        const __m128i a = _mm_set1_epi8('a' - 1), z = _mm_set1_epi8('z' + 1);
        const __m128i d0 = _mm_set1_epi8('0' - 1), d9 = _mm_set1_epi8('9' + 1);
        while (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i lower = _mm_or_si128(x, case_bit);
            __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(lower, a), _mm_cmplt_epi8(lower, z));
            __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, d0), _mm_cmplt_epi8(x, d9));
            __m128i punct = _mm_or_si128(_mm_cmpeq_epi8(x, dash), _mm_cmpeq_epi8(x, other));
            __m128i ok = _mm_or_si128(_mm_or_si128(alpha, digit), punct);
            unsigned stop = (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
            if (stop)
                return p + __builtin_ctz(stop);
            p += 16;
        }
    }
#endif
    while (p < end && (IS_ALPHA(*p) || IS_DIGIT(*p) || *p == '-' || *p == extra))
        p++;
    return p;
}

/* The first CR in [p, end); pass 1 guarantees there is one. */
static inline const char *find_cr(const char *p, const char *end)
{
#ifdef __SSE2__
    if (use_simd) {
        const __m128i cr = _mm_set1_epi8('\r');
        while (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
            int bits = _mm_movemask_epi8(_mm_cmpeq_epi8(x, cr));
            if (bits)
                return p + __builtin_ctz((unsigned)bits);
            p += 16;
        }
    }
#endif
    while (p < end && *p != '\r')
        p++;
    return p;
}

/* ------------------------------------------------------------ pass 1: find the end of the head */

/*
 * The `scanned` cursor packs where pass 1 stopped: the position (31 bits:
 * heads are capped at INT_MAX), a field (31 bits) and a state (2 bits).
 *   SCAN_LEAD:    before or in the request line; field = where the current
 *                 line starts (past any leading empty lines)
 *   SCAN_FIELDS:  in the field lines; field = field lines begun so far
 *   SCAN_DONE:    complete; position = head length
 * The position is never between a CR and its LF.
 */
enum { SCAN_LEAD = 0, SCAN_FIELDS = 1, SCAN_DONE = 2 };

_Static_assert(sizeof(size_t) >= 8, "the scanned cursor needs a 64-bit size_t");

static inline size_t cursor_pack(size_t pos, size_t field, size_t state)
{
    return pos | field << 31 | state << 62;
}

static int scan_error(const char **why, const char *reason, int err)
{
    *why = reason;
    return err;
}

/* Where the CRs of the first field lines are, when pass 1 scanned the whole
 * head in one call: pass 2 then knows every line's end up front instead of
 * searching for it, so the CPU can work on several lines at once. */
#define LINE_ENDS_MAX 64
typedef struct line_ends {
    bool recording; /* pass 1 started at byte 0 in this call */
    int n;
    uint32_t at[LINE_ENDS_MAX];
} line_ends;

/* buf[pos] is a C_SPECIAL byte: 0 when it is a CR followed by LF, 1 when it
 * is a CR whose next byte has not arrived, or the error. */
static int line_end(const char *buf, size_t pos, size_t avail, const char **why)
{
    if (buf[pos] == '\r') {
        if (pos + 1 == avail)
            return 1;
        if (buf[pos + 1] == '\n')
            return 0;
        return scan_error(why, "CR not followed by LF", HTTP_E_BAD_REQUEST);
    }
    if (buf[pos] == '\n')
        return scan_error(why, "bare LF (lines must end in CRLF)", HTTP_E_BAD_REQUEST);
    return scan_error(why, "control character in request head", HTTP_E_BAD_REQUEST);
}

static int scan_head(const char *buf, size_t len, size_t max_head, size_t max_line, int max_fields,
                     size_t *cursor, line_ends *ends, const char **why)
{
    size_t pos = *cursor & 0x7fffffff, field = *cursor >> 31 & 0x7fffffff, state = *cursor >> 62;
    ends->recording = false;
    ends->n = 0;
    if (state == SCAN_DONE && pos <= len)
        return (int)pos;
    if (pos > len || state > SCAN_FIELDS || (state == SCAN_LEAD && field > pos) ||
        (state == SCAN_FIELDS && pos < 2))
        pos = field = state = 0; /* not a cursor for these bytes: start over */
    ends->recording = pos == 0;

    size_t avail = len < max_head ? len : max_head;
    int rc;
    bool mid_line;
    if (state == SCAN_LEAD) {
        while (pos == field && pos < avail && buf[pos] == '\r') { /* empty lines (RFC 9112 2.2) */
            if ((rc = line_end(buf, pos, avail, why)) != 0)
                goto stop;
            field = pos += 2;
        }
        if (pos == avail)
            goto incomplete;
        size_t end = avail;
        bool limited = avail - field > max_line;
        if (limited)
            end = field + max_line + 1; /* the byte that would make the line too long */
        pos = find_special(buf, pos, end);
        if (pos == end) {
            if (limited)
                return scan_error(why, "request line too long", HTTP_E_URI_TOO_LONG);
            goto incomplete;
        }
        if ((rc = line_end(buf, pos, avail, why)) != 0)
            goto stop;
        pos += 2;
        state = SCAN_FIELDS;
        field = 0;
        mid_line = false;
    } else {
        mid_line = buf[pos - 1] != '\n';
    }

    size_t max = max_fields < 0 ? 0 : (size_t)max_fields;
    for (;;) { /* field lines; field counts those begun */
        if (!mid_line) {
            if (pos == avail)
                goto incomplete;
            if (buf[pos] == '\r') { /* the blank line that ends the head */
                if ((rc = line_end(buf, pos, avail, why)) != 0)
                    goto stop;
                *cursor = cursor_pack(pos + 2, 0, SCAN_DONE);
                return (int)(pos + 2);
            }
            if (field >= max)
                return scan_error(why, "too many header fields", HTTP_E_HEADERS_TOO_LARGE);
            if (is(buf[pos], C_SPECIAL))
                return line_end(buf, pos, avail, why);
            field++;
            pos++;
        }
        mid_line = false;
        pos = find_special(buf, pos, avail);
        if (pos == avail)
            goto incomplete;
        if ((rc = line_end(buf, pos, avail, why)) != 0)
            goto stop;
        if (ends->n < LINE_ENDS_MAX)
            ends->at[ends->n++] = (uint32_t)pos;
        pos += 2;
    }

stop:
    if (rc < 0)
        return rc;
incomplete: /* pos is where scanning resumes: never between a CR and its LF */
    *cursor = cursor_pack(pos, field, state);
    if (len > max_head)
        return scan_error(why, "request head too large", HTTP_E_HEADERS_TOO_LARGE);
    return 0;
}

/* ------------------------------------------------------------ pass 2: parse a complete head */

/* What the field lines say about framing and the connection. */
typedef struct head_facts {
    bool host, content_length, te, te_chunked, te_last_chunked, te_other;
    bool conn_close, conn_keep_alive, conn_upgrade, upgrade, expect_continue;
} head_facts;

static int bad(const char **why, const char *reason)
{
    *why = reason;
    return HTTP_E_BAD_REQUEST;
}

/* name equals the lowercase literal (letters, digits, '-'), ignoring case.
 * ORing 0x20 maps only A-Z onto a-z among bytes that can match: the others
 * it maps onto a literal byte are control bytes, which pass 1 rejected. n is
 * a constant at every call, so this becomes a few word compares. */
static inline bool name_is(const char *name, const char *lower, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t a, b;
        memcpy(&a, name + i, 8);
        memcpy(&b, lower + i, 8);
        if ((a | UINT64_C(0x2020202020202020)) != b)
            return false;
    }
    if (n - i >= 4) {
        uint32_t a, b;
        memcpy(&a, name + i, 4);
        memcpy(&b, lower + i, 4);
        if ((a | 0x20202020u) != b)
            return false;
        i += 4;
    }
    for (; i < n; i++)
        if (((unsigned char)name[i] | 0x20) != (unsigned char)lower[i])
            return false;
    return true;
}

static inline bool str_ieq_lit(const char *p, size_t n, const char *lower, size_t lower_n)
{
    return n == lower_n && name_is(p, lower, n);
}

static const char *skip_ows(const char *s, const char *e)
{
    while (s < e && is_ows(*s))
        s++;
    return s;
}

static const char *skip_token(const char *s, const char *e)
{
    while (s < e && is(*s, C_TCHAR))
        s++;
    return s;
}

/* s at a DQUOTE: past the closing DQUOTE of a valid quoted-string, or NULL. */
static const char *skip_quoted(const char *s, const char *e)
{
    for (s++; s < e; s++) {
        if (*s == '"')
            return s + 1;
        if (*s == '\\') {
            if (++s == e || !is(*s, C_FIELD))
                return NULL;
        } else if (!is(*s, C_QDTEXT)) {
            return NULL;
        }
    }
    return NULL;
}

/* uri-host [ ":" port ] (RFC 3986, RFC 9110 7.2), without userinfo. */
static bool valid_authority(const char *s, size_t n, const char *readable, bool need_host,
                            bool need_port)
{
    const char *e = s + n, *start = s;
    if (s < e && *s == '[') { /* IP-literal: loosely, host chars and ':' up to ']' */
        for (s++; s < e && *s != ']'; s++)
            if (!is(*s, C_HOST) && *s != ':')
                return false;
        if (s == e || s == start + 1)
            return false;
        s++;
    } else {
        s = skip_alnum(s, readable, '.');
        if (s > e)
            s = e;
        while (s < e && is(*s, C_HOST)) {
            if (*s == '%') {
                if (e - s < 3 || !is(s[1], C_HEX) || !is(s[2], C_HEX))
                    return false;
                s += 3;
            } else {
                s++;
            }
        }
        if (need_host && s == start)
            return false;
    }
    if (s == e)
        return !need_port;
    if (*s++ != ':')
        return false;
    const char *port = s;
    while (s < e && IS_DIGIT(*s))
        s++;
    return s == e && (s > port || !need_port);
}

static int parse_content_length(const char *v, size_t n, int64_t *out, const char **why)
{
    if (n == 0)
        return bad(why, "empty Content-Length");
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!IS_DIGIT(v[i]))
            return bad(why, "Content-Length is not a decimal number");
        int d = v[i] - '0';
        if (x > (INT64_MAX - d) / 10)
            return bad(why, "Content-Length overflows");
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

/* Transfer-Encoding = #( token *( OWS ";" OWS token BWS "=" BWS ( token / quoted-string ) ) ),
 * several header lines making one list. */
static int parse_transfer_encoding(const char *s, size_t n, head_facts *f, const char **why)
{
    const char *e = s + n;
    int codings = 0;
    for (;;) {
        s = skip_ows(s, e);
        if (s == e)
            break;
        if (*s == ',') {
            s++;
            continue;
        }
        const char *name = s;
        s = skip_token(s, e);
        if (s == name)
            return bad(why, "invalid Transfer-Encoding");
        size_t name_n = (size_t)(s - name);
        bool params = false;
        for (;;) {
            s = skip_ows(s, e);
            if (s == e || *s == ',')
                break;
            if (*s != ';')
                return bad(why, "invalid Transfer-Encoding");
            params = true;
            const char *t = skip_ows(s + 1, e), *pname = t;
            t = skip_token(t, e);
            if (t == pname)
                return bad(why, "invalid Transfer-Encoding parameter");
            t = skip_ows(t, e);
            if (t == e || *t != '=')
                return bad(why, "invalid Transfer-Encoding parameter");
            t = skip_ows(t + 1, e);
            if (t < e && *t == '"') {
                t = skip_quoted(t, e);
                if (!t)
                    return bad(why, "invalid Transfer-Encoding parameter");
            } else {
                const char *pvalue = t;
                t = skip_token(t, e);
                if (t == pvalue)
                    return bad(why, "invalid Transfer-Encoding parameter");
            }
            s = t;
        }
        codings++;
        if (str_ieq_lit(name, name_n, "chunked", 7)) {
            if (params)
                return bad(why, "chunked transfer coding with parameters");
            if (f->te_chunked)
                return bad(why, "chunked transfer coding applied more than once");
            f->te_chunked = f->te_last_chunked = true;
        } else {
            f->te_last_chunked = false;
            f->te_other = true;
        }
    }
    if (codings == 0)
        return bad(why, "empty Transfer-Encoding");
    return 0;
}

/* Connection = #connection-option (a token); several lines make one list. */
static int parse_connection(const char *s, size_t n, head_facts *f, const char **why)
{
    const char *e = s + n;
    for (;;) {
        s = skip_ows(s, e);
        if (s == e)
            return 0;
        if (*s == ',') {
            s++;
            continue;
        }
        const char *t = s;
        s = skip_token(s, e);
        if (s == t)
            return bad(why, "invalid Connection option");
        size_t tn = (size_t)(s - t);
        if (str_ieq_lit(t, tn, "close", 5))
            f->conn_close = true;
        else if (str_ieq_lit(t, tn, "keep-alive", 10))
            f->conn_keep_alive = true;
        else if (str_ieq_lit(t, tn, "upgrade", 7))
            f->conn_upgrade = true;
        s = skip_ows(s, e);
        if (s < e && *s != ',')
            return bad(why, "invalid Connection option");
    }
}

/* Expect = #expectation: note a 100-continue member; other expectations are
 * left to the server (which may answer 417). */
static void parse_expect(const char *s, size_t n, head_facts *f)
{
    const char *e = s + n;
    while (s < e) {
        const char *m = skip_ows(s, e), *c = m;
        while (c < e && *c != ',')
            c++;
        const char *me = c;
        while (me > m && is_ows(me[-1]))
            me--;
        if (str_ieq_lit(m, (size_t)(me - m), "100-continue", 12))
            f->expect_continue = true;
        s = c + (c < e);
    }
}

/* The field lines a parser must understand, chosen by name length first:
 * Host, Expect, Upgrade, Connection, Content-Length, Transfer-Encoding. */
#define FRAMING_NAME_LENGTHS (1u << 4 | 1u << 6 | 1u << 7 | 1u << 10 | 1u << 14 | 1u << 17)

static int interpret_field(const char *name, size_t name_n, const char *v, size_t vn,
                           const char *head_end, http_request *req, head_facts *f, const char **why)
{
    switch (name_n) {
    case 4:
        if (name_is(name, "host", 4)) {
            if (f->host)
                return bad(why, "more than one Host header");
            if (!valid_authority(v, vn, head_end, false, false))
                return bad(why, "invalid Host header");
            f->host = true;
            req->host = (wv_str){v, vn};
        }
        return 0;
    case 6:
        if (name_is(name, "expect", 6))
            parse_expect(v, vn, f);
        return 0;
    case 7:
        if (name_is(name, "upgrade", 7) && vn > 0)
            f->upgrade = true;
        return 0;
    case 10:
        if (name_is(name, "connection", 10))
            return parse_connection(v, vn, f, why);
        return 0;
    case 14:
        if (name_is(name, "content-length", 14)) {
            if (f->content_length)
                return bad(why, "more than one Content-Length header");
            f->content_length = true;
            return parse_content_length(v, vn, &req->content_length, why);
        }
        return 0;
    case 17:
        if (name_is(name, "transfer-encoding", 17)) {
            f->te = true;
            return parse_transfer_encoding(v, vn, f, why);
        }
        return 0;
    default:
        return 0;
    }
}

static const char slash[] = "/";

/* absolute-form: "http" / "https" "://" authority [ path ] [ "?" query ]. */
static int parse_absolute_form(http_request *req, const char *head_end, const char **why)
{
    const char *t = req->target.p, *e = t + req->target.n, *s = t;
    if (!IS_ALPHA(*s))
        return bad(why, "request-target is not in origin, absolute, authority or asterisk form");
    while (s < e && is(*s, C_SCHEME))
        s++;
    if (s == e || *s != ':')
        return bad(why, "request-target is not in origin, absolute, authority or asterisk form");
    if (!str_ieq_lit(t, (size_t)(s - t), "http", 4) && !str_ieq_lit(t, (size_t)(s - t), "https", 5))
        return bad(why, "absolute-form target with a scheme other than http or https");
    s++;
    if (e - s < 2 || s[0] != '/' || s[1] != '/')
        return bad(why, "absolute-form target without an authority");
    const char *authority = s += 2;
    while (s < e && *s != '/' && *s != '?')
        s++;
    if (!valid_authority(authority, (size_t)(s - authority), head_end, true, false))
        return bad(why, "invalid authority in absolute-form target");
    req->host = (wv_str){authority, (size_t)(s - authority)};
    if (s < e && *s == '/') {
        const char *path = s;
        while (s < e && *s != '?')
            s++;
        req->path = (wv_str){path, (size_t)(s - path)};
    } else {
        req->path = (wv_str){slash, 1};
    }
    req->query = s < e ? (wv_str){s + 1, (size_t)(e - s - 1)} : (wv_str){e, 0};
    return 0;
}

static int parse_head(const char *buf, size_t head_n, const http_limits *lim, const line_ends *ends,
                      http_request *req, const char **why)
{
    const char *p = buf, *end = buf + head_n;
    while (*p == '\r') /* empty lines before the request line (RFC 9112 2.2) */
        p += 2;

    /* method SP */
    const char *method = p;
    while (is(*p, C_TCHAR))
        p++;
    if (p == method || *p != ' ')
        return bad(why, "method is not a token followed by one SP");
    req->method = (wv_str){method, (size_t)(p - method)};

    /* request-target SP */
    const char *target = ++p, *query;
    p = scan_target(p, end, &query);
    if (p == target)
        return bad(why, "empty request-target (two SPs?)");
    if (*p != ' ')
        return bad(why, *p == '\r' ? "request line without HTTP version"
                                   : "request-target byte outside visible ASCII");
    req->target = (wv_str){target, (size_t)(p - target)};

    /* HTTP-version CRLF; HTTP-name is case-sensitive (RFC 9112 2.3) */
    p++;
    if (end - p >= 10 && memcmp(p, "HTTP/1.1\r", 9) == 0) {
        req->minor = 1;
    } else if (p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' &&
               IS_DIGIT(p[5]) && p[6] == '.' && IS_DIGIT(p[7]) && p[8] == '\r') {
        if (p[5] != '1' || p[7] > '1') {
            *why = "unsupported HTTP version";
            return HTTP_E_VERSION;
        }
        req->minor = p[7] - '0';
    } else {
        return bad(why, "malformed HTTP version");
    }
    p += 10;

    /* the form of the target, which depends on the method (RFC 9112 3.2) */
    bool connect = req->method.n == 7 && memcmp(method, "CONNECT", 7) == 0;
    req->host = (wv_str){buf, 0};
    if (*target == '/') {
        if (connect)
            return bad(why, "CONNECT needs an authority-form target");
        const char *target_end = target + req->target.n;
        req->path = (wv_str){target, (size_t)((query ? query : target_end) - target)};
        req->query =
            query ? (wv_str){query + 1, (size_t)(target_end - query - 1)} : (wv_str){target_end, 0};
    } else if (connect) {
        if (!valid_authority(target, req->target.n, end, true, true))
            return bad(why, "CONNECT target is not host:port");
        req->path = req->target;
        req->query = (wv_str){target + req->target.n, 0};
    } else if (req->target.n == 1 && *target == '*') {
        if (!(req->method.n == 7 && memcmp(method, "OPTIONS", 7) == 0))
            return bad(why, "asterisk-form target with a method other than OPTIONS");
        req->path = req->target;
        req->query = (wv_str){target + 1, 0};
    } else {
        int rc = parse_absolute_form(req, end, why);
        if (rc < 0)
            return rc;
    }
    wv_str absolute_host = req->host;

    /* field lines: name ":" OWS value OWS CRLF */
    head_facts f = {0};
    req->content_length = -1;
    int n = 0, cap = lim->max_headers;
    int known_ends = ends->recording ? ends->n : 0;
    while (*p != '\r') {
        const char *name = p, *cr = n < known_ends ? buf + ends->at[n] : find_cr(p, end);
        p = skip_alnum(p, end, '-');
        while (is(*p, C_TCHAR)) /* stops at the line's CR at the latest */
            p++;
        if (*p != ':' || p == name) {
            if (p == name && is_ows(*p))
                return bad(why, "obs-fold or whitespace at the start of a header line");
            if (p == name && *p == ':')
                return bad(why, "empty header name");
            if (is_ows(*p))
                return bad(why, "whitespace between header name and colon");
            if (*p == '\r')
                return bad(why, "header line without a colon");
            return bad(why, "invalid character in header name");
        }
        size_t name_n = (size_t)(p - name);
        p = skip_ows(p + 1, end);
        const char *value = p, *value_end = cr;
        while (value_end > value && is_ows(value_end[-1]))
            value_end--;
        p = cr + 2;
        size_t value_n = (size_t)(value_end - value);
        if (n >= cap) { /* only if pass 1 counted with another limit */
            *why = "too many header fields";
            return HTTP_E_HEADERS_TOO_LARGE;
        }
        if (req->headers)
            req->headers[n] = (http_header){{name, name_n}, {value, value_n}};
        n++;
        if (name_n <= 17 && (FRAMING_NAME_LENGTHS >> name_n & 1)) {
            int rc = interpret_field(name, name_n, value, value_n, end, req, &f, why);
            if (rc < 0)
                return rc;
        }
    }
    req->nheaders = n;

    /* framing and the connection (RFC 9112 6.1, 6.3, 9.3; RFC 9110 7.2, 7.8, 10.1.1) */
    if (f.te) {
        if (req->minor == 0)
            return bad(why, "Transfer-Encoding in an HTTP/1.0 request");
        if (f.content_length)
            return bad(why, "both Transfer-Encoding and Content-Length");
        if (f.te_chunked && !f.te_last_chunked)
            return bad(why, "chunked is not the final transfer coding");
    }
    if (req->minor == 1 && !f.host)
        return bad(why, "HTTP/1.1 request without Host");
    if (f.te_other) {
        *why = "transfer coding other than chunked";
        return HTTP_E_NOT_IMPLEMENTED;
    }
    if (absolute_host.n > 0)
        req->host = absolute_host;
    req->chunked = f.te_chunked;
    req->keep_alive = req->minor == 1 ? !f.conn_close : f.conn_keep_alive && !f.conn_close;
    req->expect_continue = req->minor == 1 && f.expect_continue;
    req->upgrade = req->minor == 1 && f.conn_upgrade && f.upgrade;
    return (int)head_n;
}

int http_parse_request(const char *buf, size_t len, const http_limits *lim, http_request *req,
                       size_t *scanned, const char **why)
{
    static const http_limits defaults = HTTP_LIMITS_DEFAULT;
    const char *reason = "";
    if (!lim)
        lim = &defaults;
    size_t max_head = lim->max_head_bytes < INT_MAX ? lim->max_head_bytes : INT_MAX;
    size_t cursor = scanned ? *scanned : 0;
    line_ends ends;
    int rc = scan_head(buf, len, max_head, lim->max_request_line, lim->max_headers, &cursor, &ends,
                       &reason);
    if (rc >= 0 && scanned)
        *scanned = cursor;
    if (rc > 0)
        rc = parse_head(buf, (size_t)rc, lim, &ends, req, &reason);
    if (rc < 0 && why)
        *why = reason;
    return rc;
}

/* ------------------------------------------------------------ chunked decoder */

enum chunk_state {
    CH_SIZE_START,       /* expecting the first HEXDIG of a chunk-size */
    CH_SIZE,             /* in chunk-size */
    CH_EXT_BWS,          /* BWS, expecting ";" */
    CH_EXT_NAME_START,   /* after ";": BWS, then a chunk-ext-name */
    CH_EXT_NAME,         /* in chunk-ext-name */
    CH_EXT_AFTER_NAME,   /* BWS after a name, expecting "=" or ";" */
    CH_EXT_VALUE_START,  /* after "=": BWS, then a token or quoted-string */
    CH_EXT_VALUE,        /* in a token chunk-ext-val */
    CH_EXT_QUOTED,       /* in a quoted-string chunk-ext-val */
    CH_EXT_QUOTED_PAIR,  /* after a backslash in it */
    CH_EXT_AFTER_QUOTED, /* after its closing DQUOTE */
    CH_SIZE_LF,          /* after the CR ending the chunk-size line */
    CH_DATA,             /* in chunk-data */
    CH_DATA_CR,          /* expecting the CR after chunk-data */
    CH_DATA_LF,
    CH_TRAILER_START, /* at the start of a trailer line, or the final CRLF */
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF,
    CH_FINAL_LF,
    CH_DONE,
    CH_FAILED,
};

void http_chunked_init(http_chunked *d)
{
    *d = (http_chunked){0};
}

static int chunk_fail(http_chunked *d, const char *why, size_t used, size_t *consumed)
{
    d->state = CH_FAILED;
    d->why = why;
    *consumed = used;
    return HTTP_E_BAD_REQUEST;
}

/* After a chunk-size line's CRLF: data, or the trailer section after the last chunk. */
static int chunk_line_done(http_chunked *d)
{
    return d->remaining ? CH_DATA : CH_TRAILER_START;
}

int http_chunked_feed(http_chunked *d, const char *in, size_t len, size_t *consumed,
                      const char **data, size_t *data_len)
{
    size_t i = 0;
    if (d->state == CH_DONE) {
        *consumed = 0;
        return HTTP_CHUNK_DONE;
    }
    if (d->state == CH_FAILED) {
        *consumed = 0;
        return HTTP_E_BAD_REQUEST;
    }
    size_t trailer_from = SIZE_MAX; /* keep_trailers: where this call's trailer bytes began */
    while (i < len) {
        if (d->keep_trailers && d->state >= CH_TRAILER_START && d->state <= CH_TRAILER_LF) {
            if (d->state == CH_TRAILER_START && in[i] == '\r' && trailer_from != SIZE_MAX)
                break; /* the field lines so far first; the final CRLF next call */
            if (trailer_from == SIZE_MAX && !(d->state == CH_TRAILER_START && in[i] == '\r'))
                trailer_from = i;
        }
        if (d->state == CH_DATA) {
            size_t n = len - i < d->remaining ? len - i : (size_t)d->remaining;
            *data = in + i;
            *data_len = n;
            d->remaining -= n;
            if (d->remaining == 0)
                d->state = CH_DATA_CR;
            *consumed = i + n;
            return HTTP_CHUNK_DATA;
        }
        char c = in[i++];
        if (d->state <= CH_SIZE_LF && ++d->line_bytes > HTTP_CHUNK_LINE_MAX)
            return chunk_fail(d, "chunk-size line too long", i, consumed);
        if (d->state >= CH_TRAILER_START && ++d->trailer_bytes > HTTP_CHUNK_TRAILER_MAX)
            return chunk_fail(d, "trailer section too large", i, consumed);
        switch (d->state) {
        case CH_SIZE_START:
            if (!is(c, C_HEX))
                return chunk_fail(d, "chunk size is not hexadecimal", i, consumed);
            d->remaining = (uint64_t)hex_value(c);
            d->state = CH_SIZE;
            break;
        case CH_SIZE:
            if (is(c, C_HEX)) {
                if (d->remaining > ((uint64_t)INT64_MAX - (uint64_t)hex_value(c)) / 16)
                    return chunk_fail(d, "chunk size overflows", i, consumed);
                d->remaining = d->remaining * 16 + (uint64_t)hex_value(c);
            } else if (c == '\r') {
                d->state = CH_SIZE_LF;
            } else if (c == ';') {
                d->state = CH_EXT_NAME_START;
            } else if (is_ows(c)) {
                d->state = CH_EXT_BWS;
            } else {
                return chunk_fail(d, "chunk size is not hexadecimal", i, consumed);
            }
            break;
        case CH_EXT_BWS:
            if (c == ';')
                d->state = CH_EXT_NAME_START;
            else if (!is_ows(c))
                return chunk_fail(d, "invalid chunk extension", i, consumed);
            break;
        case CH_EXT_NAME_START:
            if (is(c, C_TCHAR))
                d->state = CH_EXT_NAME;
            else if (!is_ows(c))
                return chunk_fail(d, "invalid chunk extension", i, consumed);
            break;
        case CH_EXT_NAME:
        case CH_EXT_VALUE:
            if (is(c, C_TCHAR))
                break;
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (c == ';')
                d->state = CH_EXT_NAME_START;
            else if (c == '=' && d->state == CH_EXT_NAME)
                d->state = CH_EXT_VALUE_START;
            else if (is_ows(c))
                d->state = d->state == CH_EXT_NAME ? CH_EXT_AFTER_NAME : CH_EXT_BWS;
            else
                return chunk_fail(d, "invalid chunk extension", i, consumed);
            break;
        case CH_EXT_AFTER_NAME:
            if (c == '=')
                d->state = CH_EXT_VALUE_START;
            else if (c == ';')
                d->state = CH_EXT_NAME_START;
            else if (!is_ows(c))
                return chunk_fail(d, "invalid chunk extension", i, consumed);
            break;
        case CH_EXT_VALUE_START:
            if (c == '"')
                d->state = CH_EXT_QUOTED;
            else if (is(c, C_TCHAR))
                d->state = CH_EXT_VALUE;
            else if (!is_ows(c))
                return chunk_fail(d, "invalid chunk extension", i, consumed);
            break;
        case CH_EXT_QUOTED:
            if (c == '"')
                d->state = CH_EXT_AFTER_QUOTED;
            else if (c == '\\')
                d->state = CH_EXT_QUOTED_PAIR;
            else if (!is(c, C_QDTEXT))
                return chunk_fail(d, "invalid chunk extension", i, consumed);
            break;
        case CH_EXT_AFTER_QUOTED:
            if (c == '\r')
                d->state = CH_SIZE_LF;
            else if (c == ';')
                d->state = CH_EXT_NAME_START;
            else if (is_ows(c))
                d->state = CH_EXT_BWS;
            else
                return chunk_fail(d, "invalid chunk extension", i, consumed);
            break;
        case CH_EXT_QUOTED_PAIR:
            if (!is(c, C_FIELD))
                return chunk_fail(d, "invalid chunk extension", i, consumed);
            d->state = CH_EXT_QUOTED;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                return chunk_fail(d, "chunk-size line without CRLF", i, consumed);
            d->line_bytes = 0;
            d->state = chunk_line_done(d);
            break;
        case CH_DATA_CR:
            if (c != '\r')
                return chunk_fail(d, "chunk data not followed by CRLF", i, consumed);
            d->state = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                return chunk_fail(d, "chunk data not followed by CRLF", i, consumed);
            d->state = CH_SIZE_START;
            break;
        case CH_TRAILER_START:
            if (c == '\r')
                d->state = CH_FINAL_LF;
            else if (is(c, C_TCHAR))
                d->state = CH_TRAILER_NAME;
            else
                return chunk_fail(d, "invalid trailer field", i, consumed);
            break;
        case CH_TRAILER_NAME:
            if (c == ':')
                d->state = CH_TRAILER_VALUE;
            else if (!is(c, C_TCHAR))
                return chunk_fail(d, "invalid trailer field name", i, consumed);
            break;
        case CH_TRAILER_VALUE:
            if (c == '\r')
                d->state = CH_TRAILER_LF;
            else if (!is(c, C_FIELD))
                return chunk_fail(d, "invalid byte in trailer field value", i, consumed);
            break;
        case CH_TRAILER_LF:
            if (c != '\n')
                return chunk_fail(d, "trailer line without CRLF", i, consumed);
            d->state = CH_TRAILER_START;
            break;
        case CH_FINAL_LF:
            if (c != '\n')
                return chunk_fail(d, "chunked body not ended by CRLF", i, consumed);
            d->state = CH_DONE;
            *consumed = i;
            return HTTP_CHUNK_DONE;
        default:
            return chunk_fail(d, "chunked decoder in an unknown state", i, consumed);
        }
    }
    if (trailer_from != SIZE_MAX) {
        *data = in + trailer_from;
        *data_len = i - trailer_from;
        *consumed = i;
        return HTTP_CHUNK_TRAILER;
    }
    *consumed = len;
    return HTTP_CHUNK_MORE;
}

/* ------------------------------------------------------------ status reasons */

/* Indexed by status - 100; RFC 9110 section 15, and the other codes of the
 * IANA registry in use. 306 and 418 are reserved ("(Unused)"). */
static const char *const reasons[] = {
    [100 - 100] = "Continue",
    [101 - 100] = "Switching Protocols",
    [102 - 100] = "Processing",
    [103 - 100] = "Early Hints",
    [200 - 100] = "OK",
    [201 - 100] = "Created",
    [202 - 100] = "Accepted",
    [203 - 100] = "Non-Authoritative Information",
    [204 - 100] = "No Content",
    [205 - 100] = "Reset Content",
    [206 - 100] = "Partial Content",
    [207 - 100] = "Multi-Status",
    [208 - 100] = "Already Reported",
    [226 - 100] = "IM Used",
    [300 - 100] = "Multiple Choices",
    [301 - 100] = "Moved Permanently",
    [302 - 100] = "Found",
    [303 - 100] = "See Other",
    [304 - 100] = "Not Modified",
    [305 - 100] = "Use Proxy",
    [307 - 100] = "Temporary Redirect",
    [308 - 100] = "Permanent Redirect",
    [400 - 100] = "Bad Request",
    [401 - 100] = "Unauthorized",
    [402 - 100] = "Payment Required",
    [403 - 100] = "Forbidden",
    [404 - 100] = "Not Found",
    [405 - 100] = "Method Not Allowed",
    [406 - 100] = "Not Acceptable",
    [407 - 100] = "Proxy Authentication Required",
    [408 - 100] = "Request Timeout",
    [409 - 100] = "Conflict",
    [410 - 100] = "Gone",
    [411 - 100] = "Length Required",
    [412 - 100] = "Precondition Failed",
    [413 - 100] = "Content Too Large",
    [414 - 100] = "URI Too Long",
    [415 - 100] = "Unsupported Media Type",
    [416 - 100] = "Range Not Satisfiable",
    [417 - 100] = "Expectation Failed",
    [421 - 100] = "Misdirected Request",
    [422 - 100] = "Unprocessable Content",
    [423 - 100] = "Locked",
    [424 - 100] = "Failed Dependency",
    [425 - 100] = "Too Early",
    [426 - 100] = "Upgrade Required",
    [428 - 100] = "Precondition Required",
    [429 - 100] = "Too Many Requests",
    [431 - 100] = "Request Header Fields Too Large",
    [451 - 100] = "Unavailable For Legal Reasons",
    [500 - 100] = "Internal Server Error",
    [501 - 100] = "Not Implemented",
    [502 - 100] = "Bad Gateway",
    [503 - 100] = "Service Unavailable",
    [504 - 100] = "Gateway Timeout",
    [505 - 100] = "HTTP Version Not Supported",
    [506 - 100] = "Variant Also Negotiates",
    [507 - 100] = "Insufficient Storage",
    [508 - 100] = "Loop Detected",
    [511 - 100] = "Network Authentication Required",
};

const char *http_status_reason(int status)
{
    unsigned i = (unsigned)status - 100u;
    if (i >= sizeof reasons / sizeof reasons[0] || !reasons[i])
        return "";
    return reasons[i];
}
