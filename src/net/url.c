/*
 * src/net/url.c: weave's URLs (include/weave/net.h, section "URLs"): the
 * parser behind wv_url, percent-decoding, the schemes' default ports and
 * which schemes mean TLS, and wv_url_redact, the one way a URL reaches a
 * log line or an error message. See net.h for the contract; this comment
 * says how it is built.
 *
 * Parsing makes two passes. split_url() finds where each part starts and
 * ends and checks everything that can fail: control characters and spaces,
 * the scheme's grammar, the brackets of an IPv6 literal, the port, every
 * percent-escape. The second pass copies the parts into one allocation
 * sized from the first (every string, and the query parameters' array in
 * front of them), so it cannot fail, no error path has anything to free,
 * and wv_url_free is one free(). Decoding only ever shortens a part, so
 * its raw length is room enough.
 *
 * The input is untrusted: every scan is bounded by the text's length,
 * and the port is accumulated with a ceiling so no digit string overflows.
 *
 * Redaction works on any text, not only on URLs that parse, because its
 * main caller is the error message about a URL that did not. It looks for
 * two things: "://" followed by an authority with a userinfo (the password
 * is what lies between the userinfo's first ':' and the authority's last
 * '@', as the parser reads it), and '=' after a name that sounds secret
 * (the value that follows: up to '&', '#' or ';' inside a URL's query, up
 * to a blank or the closing quote in libpq's key=value form). Where the
 * text is ambiguous it hides too much rather than too little. Every byte
 * is looked at a bounded number of times, so a long hostile text costs
 * linear time.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weave/net.h"

enum {
    PORT_MAX = 65535,
    SHOWN_MAX = 160,        /* bytes of the redacted URL an error message shows */
    NAME_DECODED_MAX = 128, /* bytes of a parameter name decoded to look for secrets */
};

/* ------------------------------------------------------------ characters */

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 3986 3.1: what may follow a scheme's first letter */
static bool is_scheme_char(char c)
{
    return is_alpha(c) || is_digit(c) || c == '+' || c == '-' || c == '.';
}

static bool is_control(char c)
{
    unsigned char b = (unsigned char)c;
    return b < 0x20 || b == 0x7f;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int hex_value(char c)
{
    if (is_digit(c))
        return c - '0';
    if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* The byte the escape at s[0..2] ("%41") stands for, or -1 when s[0..n)
 * has no '%' and two hex digits there. */
static int escape_value(const char *s, size_t n)
{
    if (n < 3 || s[0] != '%')
        return -1;
    int high = hex_value(s[1]), low = hex_value(s[2]);
    return high < 0 || low < 0 ? -1 : high << 4 | low;
}

/* ------------------------------------------------------------ schemes */

static const struct {
    const char *scheme;
    int port;
} default_ports[] = {
    {"http", 80},          {"ws", 80},         {"https", 443},
    {"wss", 443},          {"postgres", 5432}, {"postgresql", 5432},
    {"redis", 6379},       {"rediss", 6379},   {"memcached", 11211},
    {"memcacheds", 11211}, {"amqp", 5672},     {"amqps", 5671},
    {"kafka", 9092},       {"grpc", 50051},    {"grpcs", 50051},
    {"mysql", 3306},       {"nats", 4222},     {"mqtt", 1883},
    {"mqtts", 8883},
};

static const char *const tls_schemes[] = {
    "https", "wss", "rediss", "amqps", "grpcs", "mqtts", "memcacheds",
};

int wv_url_default_port(const char *scheme)
{
    if (!scheme)
        return 0;
    for (size_t i = 0; i < sizeof default_ports / sizeof default_ports[0]; i++)
        if (strcasecmp(scheme, default_ports[i].scheme) == 0)
            return default_ports[i].port;
    return 0;
}

bool wv_url_scheme_is_tls(const char *scheme)
{
    if (!scheme)
        return false;
    for (size_t i = 0; i < sizeof tls_schemes / sizeof tls_schemes[0]; i++)
        if (strcasecmp(scheme, tls_schemes[i]) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------ decoding */

/* Percent-decode n bytes whose escapes are known to be valid into out
 * (room for n + 1 bytes), NUL-terminated; the decoded length. */
static size_t decode_checked(const char *in, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int v = in[i] == '%' ? escape_value(in + i, n - i) : -1;
        if (v >= 0) {
            out[k++] = (char)v;
            i += 2;
        } else {
            out[k++] = in[i];
        }
    }
    out[k] = '\0';
    return k;
}

/* Fail a decode: out holds "" when it has room for it. */
static ssize_t decode_failed(char *out, size_t cap, int err)
{
    if (cap)
        out[0] = '\0';
    return err;
}

ssize_t wv_url_decode(const char *in, size_t n, char *out, size_t cap)
{
    /* check every byte first, so a bad input is -EINVAL whatever cap is */
    size_t decoded = 0;
    for (size_t i = 0; i < n; i++, decoded++) {
        if (in[i] == '\0')
            return decode_failed(out, cap, wv_fail(-EINVAL, "a NUL byte at byte %zu", i));
        if (in[i] != '%')
            continue;
        int v = escape_value(in + i, n - i);
        if (v < 0)
            return decode_failed(
                out, cap, wv_fail(-EINVAL, "a '%%' not followed by two hex digits at byte %zu", i));
        if (v == 0)
            return decode_failed(out, cap,
                                 wv_fail(-EINVAL, "an encoded NUL (%%00) at byte %zu", i));
        i += 2;
    }
    if (decoded >= cap)
        return decode_failed(
            out, cap,
            wv_fail(-ENOSPC, "%zu decoded bytes and a NUL do not fit in %zu", decoded, cap));
    return (ssize_t)decode_checked(in, n, out);
}

/* ------------------------------------------------------------ parsing */

/* A part of the text; p == NULL: the part is absent. */
typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct url_parts {
    span scheme, user, password, host, port, path, query, fragment;
    size_t nparams;
} url_parts;

/* What percent-escapes a part may hold once they are known to be well
 * formed: any byte (a part kept raw), any but NUL (decoded to a C string),
 * or no control byte at all (decoded and shown: user, password, host). */
typedef enum escapes { ESCAPES_ANY, ESCAPES_BUT_NUL, ESCAPES_BUT_CONTROL } escapes;

/* -EINVAL, with wv_errmsg() showing the text redacted and why it is not a
 * URL. Control bytes in what is shown become '?', so the message stays one
 * line whatever the text held. */
static int bad_url(const char *text, const char *fmt, ...) WV_PRINTF(2, 3);

static int bad_url(const char *text, const char *fmt, ...)
{
    char shown[SHOWN_MAX], why[96];
    size_t n = wv_url_redact(text, shown, sizeof shown);
    for (size_t i = 0; i < n; i++)
        if (is_control(shown[i]))
            shown[i] = '?';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return wv_fail(-EINVAL, "bad URL \"%s\": %s", shown, why);
}

/* Check a part's percent-escapes: 0, or -EINVAL naming the part. */
static int check_escapes(const char *text, span s, escapes allowed, const char *part)
{
    for (size_t i = 0; s.p && i < s.n; i++) {
        if (s.p[i] != '%')
            continue;
        int v = escape_value(s.p + i, s.n - i);
        if (v < 0)
            return bad_url(text, "a '%%' not followed by two hex digits in the %s", part);
        if (v == 0 && allowed != ESCAPES_ANY)
            return bad_url(text, "an encoded NUL (%%00) in the %s", part);
        if (is_control((char)v) && allowed == ESCAPES_BUT_CONTROL)
            return bad_url(text, "an encoded control character in the %s", part);
        i += 2;
    }
    return 0;
}

/* The port's digits (not empty): 1..65535, or -1. The value stops growing
 * past the limit, so any number of digits is safe. */
static int port_value(span s)
{
    int v = 0;
    for (size_t i = 0; i < s.n; i++) {
        if (!is_digit(s.p[i]))
            return -1;
        v = v * 10 + (s.p[i] - '0');
        if (v > PORT_MAX)
            v = PORT_MAX + 1;
    }
    return v >= 1 && v <= PORT_MAX ? v : -1;
}

/* Is s a bracketed host's inside, an IPv6 address? (inet_pton: no zone id,
 * no IPvFuture.) */
static bool is_ipv6(span s)
{
    char copy[INET6_ADDRSTRLEN];
    struct in6_addr addr;
    if (s.n >= sizeof copy)
        return false;
    memcpy(copy, s.p, s.n);
    copy[s.n] = '\0';
    return inet_pton(AF_INET6, copy, &addr) == 1;
}

/* The authority text[from, to): [user[:password]@]host[:port], where the
 * last '@' ends the userinfo (so an unencoded '@' in a password still
 * parses) and the userinfo's first ':' ends the user. */
static int split_authority(const char *text, const char *from, const char *to, url_parts *parts)
{
    const char *at = NULL;
    for (const char *c = from; c < to; c++)
        if (*c == '@')
            at = c;
    if (at) {
        const char *colon = memchr(from, ':', (size_t)(at - from));
        const char *user_end = colon ? colon : at;
        parts->user = (span){from, (size_t)(user_end - from)};
        if (colon)
            parts->password = (span){colon + 1, (size_t)(at - colon - 1)};
        from = at + 1;
    }

    const char *port = NULL;
    if (from < to && *from == '[') {
        const char *close = memchr(from, ']', (size_t)(to - from));
        if (!close)
            return bad_url(text, "an unclosed '[' in the host");
        parts->host = (span){from + 1, (size_t)(close - from - 1)};
        if (!is_ipv6(parts->host))
            return bad_url(text, "not an IPv6 address between '[' and ']'");
        if (close + 1 < to && close[1] != ':')
            return bad_url(text, "only ':port' may follow ']'");
        if (close + 1 < to)
            port = close + 2;
    } else {
        const char *colon = memchr(from, ':', (size_t)(to - from));
        const char *host_end = colon ? colon : to;
        parts->host = (span){from, (size_t)(host_end - from)};
        if (memchr(parts->host.p, '[', parts->host.n) || memchr(parts->host.p, ']', parts->host.n))
            return bad_url(text, "a '[' or ']' outside an IPv6 literal");
        if (colon)
            port = colon + 1;
    }
    if (port && port < to) { /* "host:" alone means the default port */
        parts->port = (span){port, (size_t)(to - port)};
        if (port_value(parts->port) < 0)
            return bad_url(text, "the port is not a number in 1-65535");
    }
    return 0;
}

/* The query's parameters: its pieces between '&' that are not empty. */
static size_t count_params(span query)
{
    size_t count = 0;
    for (size_t i = 0; query.p && i < query.n;) {
        const char *amp = memchr(query.p + i, '&', query.n - i);
        size_t end = amp ? (size_t)(amp - query.p) : query.n;
        count += end > i;
        i = end + 1;
    }
    return count;
}

/* First pass: find every part and check all that can fail. */
static int split_url(const char *text, size_t len, url_parts *parts)
{
    for (size_t i = 0; i < len; i++) {
        if (is_control(text[i]))
            return bad_url(text, "a control character at byte %zu", i);
        if (text[i] == ' ')
            return bad_url(text, "a space at byte %zu", i);
    }

    size_t scheme_len = 0;
    if (is_alpha(text[0]))
        while (is_scheme_char(text[scheme_len]))
            scheme_len++;
    if (scheme_len == 0 || text[scheme_len] != ':')
        return bad_url(text, "no scheme (scheme://...)");
    parts->scheme = (span){text, scheme_len};

    const char *p = text + scheme_len + 1, *end = text + len;
    if (p[0] == '/' && p[1] == '/') {
        p += 2;
        const char *authority_end = p + strcspn(p, "/?#");
        int rc = split_authority(text, p, authority_end, parts);
        if (rc < 0)
            return rc;
        p = authority_end;
    } else {
        parts->host = (span){p, 0}; /* "unix:/run/x.sock", "mailto:a@b" */
    }

    size_t path_len = strcspn(p, "?#");
    parts->path = (span){p, path_len};
    p += path_len;
    if (*p == '?') {
        size_t query_len = strcspn(p + 1, "#");
        parts->query = (span){p + 1, query_len};
        p += 1 + query_len;
    }
    if (*p == '#')
        parts->fragment = (span){p + 1, (size_t)(end - p - 1)};

    int rc = check_escapes(text, parts->user, ESCAPES_BUT_CONTROL, "user");
    if (rc == 0)
        rc = check_escapes(text, parts->password, ESCAPES_BUT_CONTROL, "password");
    if (rc == 0)
        rc = check_escapes(text, parts->host, ESCAPES_BUT_CONTROL, "host");
    if (rc == 0)
        rc = check_escapes(text, parts->path, ESCAPES_ANY, "path");
    if (rc == 0) /* its parameters are decoded */
        rc = check_escapes(text, parts->query, ESCAPES_BUT_NUL, "query");
    if (rc == 0)
        rc = check_escapes(text, parts->fragment, ESCAPES_ANY, "fragment");
    parts->nparams = count_params(parts->query);
    return rc;
}

/* Second pass: each part copied to *at (advanced past its NUL). */
static char *put_raw(char **at, span s)
{
    if (!s.p)
        return NULL;
    char *str = *at;
    memcpy(str, s.p, s.n);
    str[s.n] = '\0';
    *at += s.n + 1;
    return str;
}

static char *put_decoded(char **at, span s)
{
    if (!s.p)
        return NULL;
    char *str = *at;
    *at += decode_checked(s.p, s.n, str) + 1;
    return str;
}

static char *put_lower(char **at, span s)
{
    char *str = put_raw(at, s);
    for (size_t i = 0; i < s.n; i++)
        if (str[i] >= 'A' && str[i] <= 'Z')
            str[i] = (char)(str[i] | 0x20);
    return str;
}

static void put_params(char **at, span query, wv_url_param *params)
{
    size_t k = 0;
    for (size_t i = 0; query.p && i < query.n;) {
        const char *amp = memchr(query.p + i, '&', query.n - i);
        size_t end = amp ? (size_t)(amp - query.p) : query.n;
        if (end > i) {
            span piece = {query.p + i, end - i};
            const char *eq = memchr(piece.p, '=', piece.n);
            size_t name_len = eq ? (size_t)(eq - piece.p) : piece.n;
            params[k].name = put_decoded(at, (span){piece.p, name_len});
            params[k].value = eq ? put_decoded(at, (span){eq + 1, piece.n - name_len - 1})
                                 : put_decoded(at, (span){"", 0});
            k++;
        }
        i = end + 1;
    }
}

/* Bytes every string of the parts needs, NULs included: a bound, since
 * decoding only shortens. Parameters come from the query: its bytes plus
 * two NULs each. */
static size_t strings_size(const url_parts *parts)
{
    const span *strings[] = {&parts->scheme, &parts->user,  &parts->password, &parts->host,
                             &parts->path,   &parts->query, &parts->fragment};
    size_t size = parts->query.n + 2 * parts->nparams;
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        if (strings[i]->p)
            size += strings[i]->n + 1;
    return size;
}

int wv_url_parse(const char *text, wv_url *u)
{
    if (!u)
        return wv_fail(-EINVAL, "no wv_url to parse into");
    memset(u, 0, sizeof *u);
    if (!text)
        return wv_fail(-EINVAL, "no URL");
    size_t len = strlen(text);
    /* every size below is at most about 20 * len */
    if (len > SIZE_MAX / 32)
        return wv_fail(-ENOMEM, "a URL of %zu bytes", len);

    url_parts parts = {0};
    int rc = split_url(text, len, &parts);
    if (rc < 0)
        return rc;

    size_t params_size = parts.nparams * sizeof(wv_url_param);
    char *mem = malloc(params_size + strings_size(&parts));
    if (!mem)
        return wv_fail(-ENOMEM, "no memory for a URL of %zu bytes", len);

    char *at = mem + params_size;
    u->mem_ = mem;
    u->scheme = put_lower(&at, parts.scheme);
    u->user = put_decoded(&at, parts.user);
    u->password = put_decoded(&at, parts.password);
    u->host = put_decoded(&at, parts.host);
    u->path = put_raw(&at, parts.path);
    u->query = put_raw(&at, parts.query);
    u->fragment = put_raw(&at, parts.fragment);
    if (parts.nparams) {
        u->params = (wv_url_param *)(void *)mem;
        u->nparams = parts.nparams;
        put_params(&at, parts.query, u->params);
    }
    u->port_given = parts.port.p != NULL;
    u->port = u->port_given ? port_value(parts.port) : wv_url_default_port(u->scheme);
    return 0;
}

void wv_url_free(wv_url *u)
{
    if (!u)
        return;
    free(u->mem_);
    memset(u, 0, sizeof *u);
}

const char *wv_url_param_get(const wv_url *u, const char *name)
{
    if (!u || !name)
        return NULL;
    for (size_t i = 0; i < u->nparams; i++)
        if (strcmp(u->params[i].name, name) == 0)
            return u->params[i].value;
    return NULL;
}

/* ------------------------------------------------------------ redaction */

/* Output cut at cap - 1 bytes (cap >= 1), the NUL added at the end. */
typedef struct out_buf {
    char *p;
    size_t cap, n;
} out_buf;

static void put(out_buf *o, const char *s, size_t n)
{
    size_t room = o->cap - 1 - o->n;
    if (n > room)
        n = room;
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static const char *const secret_words[] = {"pass", "secret", "token", "key"};

static bool has_secret_word(const char *s, size_t n)
{
    for (size_t w = 0; w < sizeof secret_words / sizeof secret_words[0]; w++) {
        size_t len = strlen(secret_words[w]);
        for (size_t i = 0; i + len <= n; i++)
            if (strncasecmp(s + i, secret_words[w], len) == 0)
                return true;
    }
    return false;
}

/* Does a parameter name sound secret, as written or percent-decoded
 * ("p%61ssword")? The decoded look covers the first NAME_DECODED_MAX
 * bytes; no real name is longer. */
static bool name_is_secret(const char *name, size_t n)
{
    if (has_secret_word(name, n))
        return true;
    if (!memchr(name, '%', n))
        return false;
    char decoded[NAME_DECODED_MAX];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof decoded; i++) {
        int v = name[i] == '%' ? escape_value(name + i, n - i) : -1;
        decoded[k++] = v >= 0 ? (char)v : name[i];
        if (v >= 0)
            i += 2;
    }
    return has_secret_word(decoded, k);
}

/* What a key=value name is made of: "sslpassword", "api_key",
 * "data[token]", "p%61ss". */
static bool is_name_char(char c)
{
    return is_alpha(c) || is_digit(c) || c == '_' || c == '-' || c == '.' || c == '%' || c == '[' ||
           c == ']';
}

/* Where the scan stands in the current word (bytes between blanks), so
 * each '=' knows at once whether it is in a URL's query: a '?' came
 * earlier in its word. Fed every byte once, so redaction stays linear. */
typedef struct word_state {
    size_t seen;    /* text[0, seen) has been fed */
    bool has_query; /* a '?' since the last blank or control byte */
} word_state;

static void feed_word(word_state *w, const char *text, size_t to)
{
    for (; w->seen < to; w->seen++) {
        char c = text[w->seen];
        if (is_blank(c) || is_control(c))
            w->has_query = false;
        else if (c == '?')
            w->has_query = true;
    }
}

/* End of a libpq value that starts at text[i]: a quoted one ends after its
 * closing quote (a backslash escapes the next byte), or at the end of the
 * text when it has none; any other at a blank or control byte. */
static size_t conninfo_value_end(const char *text, size_t n, size_t i)
{
    if (i < n && (text[i] == '\'' || text[i] == '"')) {
        char quote = text[i++];
        while (i < n && text[i] != quote)
            i += text[i] == '\\' && i + 1 < n ? 2 : 1;
        return i < n ? i + 1 : n;
    }
    while (i < n && !is_blank(text[i]) && !is_control(text[i]))
        i++;
    return i;
}

/* If text[eq] == '=' follows a secret-sounding name (blanks around '='
 * allowed, as libpq allows them), the value's bytes [start, end). */
static bool find_secret_value(const char *text, size_t n, size_t eq, word_state *w, size_t *start,
                              size_t *end)
{
    size_t name_end = eq;
    while (name_end > 0 && is_blank(text[name_end - 1]))
        name_end--;
    size_t name_start = name_end;
    while (name_start > 0 && is_name_char(text[name_start - 1]))
        name_start--;
    if (name_start == name_end || !name_is_secret(text + name_start, name_end - name_start))
        return false;

    feed_word(w, text, eq);
    size_t i = eq + 1;
    if (w->has_query) { /* "?a=1&api_key=v#f": up to the next separator */
        *start = i;
        while (i < n && !strchr("&#;", text[i]) && !is_blank(text[i]) && !is_control(text[i]))
            i++;
    } else { /* libpq's "password = 'a b'" */
        while (i < n && is_blank(text[i]))
            i++;
        *start = i;
        i = conninfo_value_end(text, n, i);
    }
    *end = i;
    return *end > *start;
}

/* After "://" at text[from]: the authority runs to the first '/', '?',
 * '#' or control byte (blanks included, so a password with a space in an
 * invalid URL is still found). If it has a userinfo with a non-empty
 * password (after the first ':', up to the last '@', as the parser reads
 * it), its bytes [start, end). */
static bool find_password(const char *text, size_t n, size_t from, size_t *start, size_t *end)
{
    size_t authority_end = from;
    while (authority_end < n && !strchr("/?#", text[authority_end]) &&
           !is_control(text[authority_end]))
        authority_end++;
    size_t at = authority_end;
    while (at > from && text[at - 1] != '@')
        at--;
    if (at == from)
        return false;
    at--; /* the last '@' */
    const char *colon = memchr(text + from, ':', at - from);
    if (!colon || (size_t)(colon - text) + 1 == at)
        return false;
    *start = (size_t)(colon - text) + 1;
    *end = at;
    return true;
}

size_t wv_url_redact(const char *text, char *out, size_t cap)
{
    if (!out || cap == 0)
        return 0;
    out_buf o = {out, cap, 0};
    if (!text)
        text = "";
    size_t n = strlen(text);
    size_t i = 0, copied = 0; /* text[copied, i) is still to be copied */
    word_state word = {0};
    while (i < n && o.n < cap - 1) {
        size_t start, end;
        bool secret = false;
        if (text[i] == ':' && n - i >= 3 && text[i + 1] == '/' && text[i + 2] == '/') {
            secret = find_password(text, n, i + 3, &start, &end);
            if (!secret)
                i += 2; /* and on past the "//" */
        } else if (text[i] == '=') {
            secret = find_secret_value(text, n, i, &word, &start, &end);
        }
        if (secret) {
            put(&o, text + copied, start - copied);
            put(&o, "***", 3);
            i = copied = end;
        } else {
            i++;
        }
    }
    put(&o, text + copied, n - copied);
    out[o.n] = '\0';
    return o.n;
}
