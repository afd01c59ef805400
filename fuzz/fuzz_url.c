/*
 * libFuzzer target for weave's URLs (src/net/url.c). `make fuzz` runs it;
 * its seeds and every crash input are kept in fuzz/corpus/fuzz_url/.
 *
 * Input: the URL's bytes (a NUL-terminated copy is parsed, so a NUL inside
 * ends the text there). Every input is redacted with caps 0, 1, 2, 7, 64
 * and one big enough for any result: the length returned is below cap,
 * the output is NUL-terminated there, a byte past cap is never written,
 * and each cut output is a prefix of the whole one. When the text parses:
 *   - the port is in 0..65535 (1..65535 when written), the scheme is
 *     lower-case, no part holds a control byte, every parameter is in
 *     order and wv_url_param_get finds each name's first value;
 *   - the password (at least 4 bytes, no '*') never shows in the redacted
 *     text unless the URL holds it outside its userinfo anyway;
 *   - percent-decoding the raw path agrees with wv_url_decode's contract.
 * A violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weave/net.h"
#include "fuzz_util.h"

enum { CANARY = 0x5A };

static bool has_control(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Does s[0..n) hold the string needle? */
static bool holds(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, needle, k) == 0)
            return true;
    return false;
}

/* Redact with every cap checked against the whole result. */
static void check_redact(const char *text, char *full, size_t full_cap)
{
    size_t full_n = wv_url_redact(text, full, full_cap);
    CHECK(full_n < full_cap && full[full_n] == '\0' && strlen(full) == full_n);

    static const size_t caps[] = {0, 1, 2, 7, 64};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        size_t cap = caps[c];
        char *out = malloc(cap + 1);
        CHECK(out);
        memset(out, CANARY, cap + 1);
        size_t n = wv_url_redact(text, out, cap);
        CHECK(out[cap] == (char)CANARY);
        if (cap == 0) {
            CHECK(n == 0);
        } else {
            CHECK(n < cap && out[n] == '\0');
            CHECK(n == (full_n < cap - 1 ? full_n : cap - 1));
            CHECK(memcmp(out, full, n) == 0);
        }
        free(out);
    }
}

/* The raw password's place in a URL that parsed: after "scheme://", the
 * authority's last '@' ends it and the userinfo's first ':' starts it. */
static void password_span(const char *text, size_t *start, size_t *end)
{
    const char *authority = strstr(text, "://") + 3;
    size_t n = strcspn(authority, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (authority[i] == '@')
            at = authority + i;
    CHECK(at);
    const char *colon = memchr(authority, ':', (size_t)(at - authority));
    CHECK(colon);
    *start = (size_t)(colon + 1 - text);
    *end = (size_t)(at - text);
}

static void check_password_hidden(const char *text, size_t len, const wv_url *u, const char *full)
{
    const char *pw = u->password;
    if (!pw || strlen(pw) < 4 || strchr(pw, '*'))
        return;
    size_t start, end;
    password_span(text, &start, &end);
    if (holds(text, start, pw) || holds(text + end, len - end, pw))
        return;
    CHECK(!strstr(full, pw));
}

static void check_parsed(const char *text, size_t len, const wv_url *u, const char *full)
{
    CHECK(u->scheme && u->host && u->path && u->mem_);
    for (const char *c = u->scheme; *c; c++)
        CHECK(!(*c >= 'A' && *c <= 'Z'));
    CHECK(u->port >= 0 && u->port <= 65535);
    CHECK(!u->port_given || u->port >= 1);
    CHECK(u->port_given || u->port == wv_url_default_port(u->scheme));
    const char *parts[] = {u->scheme, u->user,  u->password, u->host,
                           u->path,   u->query, u->fragment};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        CHECK(!has_control(parts[i]));
    CHECK(!u->password || u->user);
    CHECK((u->nparams == 0) == (u->params == NULL));
    CHECK(u->nparams == 0 || u->query);
    for (size_t i = 0; i < u->nparams; i++) {
        const wv_url_param *p = &u->params[i];
        CHECK(p->name && p->value);
        const char *first = wv_url_param_get(u, p->name);
        CHECK(first);
        size_t k = 0;
        while (strcmp(u->params[k].name, p->name) != 0)
            k++;
        CHECK(first == u->params[k].value);
    }
    check_password_hidden(text, len, u, full);

    /* the raw path decodes, or fails only for what wv_url_decode refuses */
    size_t path_len = strlen(u->path);
    char *decoded = malloc(path_len + 1);
    CHECK(decoded);
    ssize_t n = wv_url_decode(u->path, path_len, decoded, path_len + 1);
    CHECK(n == -EINVAL || (n >= 0 && (size_t)n <= path_len && strlen(decoded) == (size_t)n));
    if (n == -EINVAL)
        CHECK(strstr(u->path, "%00"));
    free(decoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    CHECK(text);
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';
    size_t len = strlen(text);

    /* each secret becomes "***": at most three bytes for one of the text */
    size_t full_cap = 3 * len + 4;
    char *full = malloc(full_cap);
    CHECK(full);
    check_redact(text, full, full_cap);

    wv_url u;
    int rc = wv_url_parse(text, &u);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0)
        check_parsed(text, len, &u, full);
    else
        CHECK(u.mem_ == NULL && u.scheme == NULL && wv_errmsg()[0]);
    wv_url_free(&u);
    CHECK(u.mem_ == NULL);

    free(full);
    free(text);
    return 0;
}
