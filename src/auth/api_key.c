/*
 * The API key middleware (wv_auth_api_key). Keys are kept only as SHA-256
 * digests; a presented key is hashed and its digest compared with every
 * stored one by CRYPTO_memcmp, without stopping at a match. A plain
 * strcmp/memcmp on the keys would return sooner the fewer leading bytes
 * match, and a length check first would tell the key's length: comparing
 * fixed-size digests in constant time tells neither (what could leak is
 * which digest matched, and an attacker cannot choose a digest's bytes).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "auth/auth_internal.h"
#include "weave/rt.h"

/* the key of the matched key's name in the request's state */
static const char name_key;

typedef struct stored_key {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char *name;
} stored_key;

typedef struct api_key_mw {
    wv_auth_scheme scheme; /* first: what wv_auth_scheme_of returns */
    char *header, *query;
    stored_key *keys;
    size_t nkeys;
    char *challenge;
} api_key_mw;

int wv__auth_api_key_before(wv_req *req, wv_res *res, void *arg)
{
    const api_key_mw *m = arg;
    wv_str key = {0};
    if (m->header)
        key = wv_req_header(req, m->header);
    if ((!key.p || !key.n) && m->query && wv_req_query_param(req, m->query, &key) < 0)
        key = (wv_str){0};
    if (!key.p || !key.n)
        return wv__auth_refuse(res, 401, m->challenge, "Not authenticated");
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)key.p, key.n, d);
    size_t found = m->nkeys;
    for (size_t i = 0; i < m->nkeys; i++) {
        /* every key is compared; no early exit */
        size_t eq = (size_t)(CRYPTO_memcmp(d, m->keys[i].digest, sizeof d) == 0);
        found ^= (found ^ i) & ((size_t)0 - eq);
    }
    OPENSSL_cleanse(d, sizeof d);
    if (found == m->nkeys)
        return wv__auth_refuse(res, 401, m->challenge, "Invalid API key");
    int rc = wv_req_state_set(req, &name_key, m->keys[found].name, NULL);
    return rc < 0 ? rc : WV_NEXT;
}

wv_str wv_auth_key_name(const wv_req *req)
{
    const char *name = wv_req_state(req, &name_key);
    return name ? (wv_str){name, strlen(name)} : (wv_str){0};
}

static void api_key_free(void *arg)
{
    api_key_mw *m = arg;
    for (size_t i = 0; i < m->nkeys; i++)
        free(m->keys[i].name);
    free(m->keys);
    free(m->header);
    free(m->query);
    free(m->challenge);
    free(m);
}

static int add(api_key_mw *m, const char *name, size_t name_len, const char *key, size_t n)
{
    if (n == 0)
        return wv_fail(-EINVAL, "API key %.*s is empty", (int)name_len, name);
    stored_key k;
    SHA256((const unsigned char *)key, n, k.digest);
    for (size_t i = 0; i < m->nkeys; i++)
        if (memcmp(k.digest, m->keys[i].digest, sizeof k.digest) == 0)
            return wv_fail(-EINVAL, "API key %.*s is also key %s", (int)name_len, name,
                           m->keys[i].name);
    if (!(k.name = strndup(name, name_len)))
        return -ENOMEM;
    stored_key *keys = realloc(m->keys, (m->nkeys + 1) * sizeof *keys);
    if (!keys) {
        free(k.name);
        return -ENOMEM;
    }
    m->keys = keys;
    m->keys[m->nkeys++] = k;
    return 0;
}

/* One key a line: "name key" or "key"; blank lines and lines whose first
 * character that is not a space is '#' are skipped. */
static int load_file(api_key_mw *m, const char *path)
{
    char *text;
    size_t n;
    int rc = wv__auth_read_file(path, 1 << 20, &text, &n);
    if (rc < 0)
        return rc;
    int line = 0;
    for (char *p = text, *end = text + n; rc == 0 && p < end; line++) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        /* fields separated by spaces or tabs */
        const char *f[3];
        size_t fl[3];
        int nf = 0;
        for (char *q = p; q < eol;) {
            while (q < eol && (*q == ' ' || *q == '\t' || *q == '\r'))
                q++;
            if (q == eol)
                break;
            char *s = q;
            while (q < eol && *q != ' ' && *q != '\t' && *q != '\r')
                q++;
            if (nf < 3) {
                f[nf] = s;
                fl[nf] = (size_t)(q - s);
            }
            nf++;
        }
        if (nf > 0 && f[0][0] != '#') {
            char label[32];
            if (nf > 2) {
                rc = wv_fail(-EINVAL, "%s:%d: more than \"name key\"", path, line + 1);
            } else if (nf == 2) {
                rc = add(m, f[0], fl[0], f[1], fl[1]);
            } else {
                int ln = snprintf(label, sizeof label, "line %d", line + 1);
                rc = add(m, label, (size_t)ln, f[0], fl[0]);
            }
            if (rc == -EINVAL && nf <= 2)
                rc = wv_fail(rc, "%s:%d: %s", path, line + 1, wv_errmsg());
        }
        p = eol + 1;
    }
    OPENSSL_cleanse(text, n);
    free(text);
    return rc;
}

int wv_auth_api_key(wv_router *r, const wv_api_key_opts *opts)
{
    if (!r || !opts)
        return -EINVAL;
    api_key_mw *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    int rc = 0;
    const char *header = opts->header ? opts->header : "X-API-Key";
    if (header[0] && !(m->header = strdup(header)))
        rc = -ENOMEM;
    if (rc == 0 && opts->query && opts->query[0] && !(m->query = strdup(opts->query)))
        rc = -ENOMEM;
    static const char token[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                "!#$%&'*+-.^_`|~";
    if (rc == 0 && ((m->header && m->header[strspn(m->header, token)]) ||
                    (m->query && m->query[strspn(m->query, token)])))
        rc = wv_fail(-EINVAL, "API key: the header or query name is not a token");
    if (rc == 0 && !m->header && !m->query)
        rc = wv_fail(-EINVAL, "API key: neither a header nor a query parameter");
    for (size_t i = 0; rc == 0 && i < opts->nkeys; i++) {
        const wv_api_key *k = &opts->keys[i];
        const char *name = k->name ? k->name : "";
        rc = k->key ? add(m, name, strlen(name), k->key, strlen(k->key))
                    : wv_fail(-EINVAL, "API key %s has no key", name);
    }
    if (rc == 0 && opts->keys_file)
        rc = load_file(m, opts->keys_file);
    if (rc == 0 && m->nkeys == 0)
        rc = wv_fail(-EINVAL, "API key: no keys");
    if (rc == 0) {
        wv_buf b = {0};
        if (m->header)
            rc = wv_buf_printf(&b, "APIKey header=\"%s\"", m->header);
        else
            rc = wv_buf_printf(&b, "APIKey query=\"%s\"", m->query);
        if (rc == 0)
            rc = wv_buf_append(&b, "", 1);
        if (rc < 0)
            wv_buf_free(&b);
        m->challenge = b.p;
    }
    if (rc < 0) {
        api_key_free(m);
        return rc;
    }
    static const char *const no_scopes[] = {NULL};
    m->scheme = (wv_auth_scheme){
        .type = "apiKey",
        .in = m->header ? "header" : "query",
        .name = m->header ? m->header : m->query,
        .query_name = m->header ? m->query : NULL,
        .scopes = no_scopes,
    };
    return wv_router_use(r, &(wv_middleware){.name = "auth_api_key",
                                             .before = wv__auth_api_key_before,
                                             .arg = m,
                                             .free = api_key_free});
}
