/*
 * TLS contexts (include/weave/net.h): the OpenSSL 3 configuration a
 * client or a server makes its connections with. The connections
 * themselves are streams (stream.c).
 *
 * A context is shared by every shard. A server's can be reloaded while
 * others handshake: the current SSL_CTX is swapped under a mutex, and a
 * new connection takes a reference to whichever is current when it starts
 * (OpenSSL counts references, so connections made before a reload keep
 * the old certificate until they close). The session-ticket keys move to
 * the new SSL_CTX, so clients resume across a reload.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_internal.h"

struct wv_tls_ctx {
    pthread_mutex_t mu;
    SSL_CTX *ssl; /* the current one, under mu */
    bool server;
    wv_tls_opts opts; /* the strings below, kept for reloads */
    char *ca_file, *cert_file, *key_file;
    unsigned char alpn[256]; /* ALPN's wire format: length-prefixed names */
    unsigned alpn_n;
};

int tls_fail(const char *what)
{
    unsigned long e = ERR_peek_error();
    char why[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    return wv_fail(-EPROTO, "%s: %s", what, reason ? reason : why);
}

/* "h2,http/1.1" to ALPN's wire format. */
static int alpn_encode(const char *list, unsigned char *out, unsigned *outlen)
{
    unsigned n = 0;
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len > 255 || n + 1 + len > 256)
            return wv_fail(-EINVAL, "bad ALPN list \"%s\"", list);
        out[n++] = (unsigned char)len;
        memcpy(out + n, p, len);
        n += (unsigned)len;
        p += len + (comma ? 1 : 0);
    }
    *outlen = n;
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    wv_tls_ctx *ctx = arg;
    unsigned char *chosen;
    (void)ssl;
    if (SSL_select_next_proto(&chosen, outlen, ctx->alpn, ctx->alpn_n, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* nothing in common: go on without ALPN */
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

/* A new SSL_CTX from ctx's options: the certificate, key and CAs read
 * from their files now. */
static int build(wv_tls_ctx *ctx, SSL_CTX **out)
{
    SSL_CTX *c = SSL_CTX_new(ctx->server ? TLS_server_method() : TLS_client_method());
    if (!c)
        return tls_fail("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    /* a retried write may come from a moved buffer (a frame assembled
     * again, a record kept by try_writev), and partial writes are ours to
     * finish */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
    /* one read takes a whole record (and the ones behind it), not its
     * 5-byte header first: half the read system calls */
    SSL_CTX_set_read_ahead(c, 1);
    int rc = 0;
    const wv_tls_opts *o = &ctx->opts;
    if (ctx->server) {
        SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE);
        SSL_CTX_set_session_id_context(c, (const unsigned char *)"weave", 5);
        SSL_CTX_set_session_cache_mode(c, o->no_resumption ? SSL_SESS_CACHE_OFF
                                                           : SSL_SESS_CACHE_SERVER);
        if (o->no_resumption) {
            SSL_CTX_set_num_tickets(c, 0);
            SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
        }
        if (SSL_CTX_use_certificate_chain_file(c, o->cert_file) != 1)
            rc = tls_fail(o->cert_file);
        else if (SSL_CTX_use_PrivateKey_file(c, o->key_file, SSL_FILETYPE_PEM) != 1)
            rc = tls_fail(o->key_file);
        else if (SSL_CTX_check_private_key(c) != 1)
            rc = tls_fail("the key does not match the certificate");
        if (rc == 0 && o->verify_peer) {
            SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
            if (!o->ca_file || SSL_CTX_load_verify_locations(c, o->ca_file, NULL) != 1)
                rc = o->ca_file ? tls_fail(o->ca_file)
                                : wv_fail(-EINVAL, "verify_peer needs a ca_file");
        }
        if (rc == 0 && ctx->alpn_n)
            SSL_CTX_set_alpn_select_cb(c, alpn_select, ctx);
    } else {
        if (o->insecure) {
            SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
        } else {
            SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
            int ok = o->ca_file ? SSL_CTX_load_verify_locations(c, o->ca_file, NULL)
                                : SSL_CTX_set_default_verify_paths(c);
            if (!ok)
                rc = tls_fail(o->ca_file ? o->ca_file : "the system's CA store");
        }
        if (rc == 0 && o->cert_file) {
            if (SSL_CTX_use_certificate_chain_file(c, o->cert_file) != 1)
                rc = tls_fail(o->cert_file);
            else if (SSL_CTX_use_PrivateKey_file(c, o->key_file ? o->key_file : o->cert_file,
                                                 SSL_FILETYPE_PEM) != 1)
                rc = tls_fail(o->key_file ? o->key_file : o->cert_file);
        }
        if (rc == 0 && ctx->alpn_n && SSL_CTX_set_alpn_protos(c, ctx->alpn, ctx->alpn_n) != 0)
            rc = tls_fail("ALPN");
    }
    if (rc < 0) {
        SSL_CTX_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static char *dup_or_null(const char *s, int *rc)
{
    if (!s)
        return NULL;
    char *p = strdup(s);
    if (!p)
        *rc = -ENOMEM;
    return p;
}

static int ctx_new(const wv_tls_opts *o, bool server, wv_tls_ctx **out)
{
    *out = NULL;
    wv_tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return -ENOMEM;
    pthread_mutex_init(&ctx->mu, NULL);
    ctx->server = server;
    int rc = 0;
    if (o) {
        ctx->opts = *o;
        ctx->opts.ca_file = ctx->ca_file = dup_or_null(o->ca_file, &rc);
        ctx->opts.cert_file = ctx->cert_file = dup_or_null(o->cert_file, &rc);
        ctx->opts.key_file = ctx->key_file = dup_or_null(o->key_file, &rc);
        ctx->opts.alpn = NULL;
        if (rc == 0 && o->alpn)
            rc = alpn_encode(o->alpn, ctx->alpn, &ctx->alpn_n);
    }
    if (rc == 0)
        rc = build(ctx, &ctx->ssl);
    if (rc < 0) {
        wv_tls_ctx_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int wv_tls_ctx_client(const wv_tls_opts *opts, wv_tls_ctx **out)
{
    return ctx_new(opts, false, out);
}

int wv_tls_ctx_server(const wv_tls_opts *opts, wv_tls_ctx **out)
{
    *out = NULL;
    if (!opts || !opts->cert_file || !opts->key_file)
        return wv_fail(-EINVAL, "a TLS server needs cert_file and key_file");
    return ctx_new(opts, true, out);
}

static wv_tls_ctx *default_ctx;
static char default_why[200];
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void make_default(void)
{
    if (wv_tls_ctx_client(NULL, &default_ctx) < 0)
        snprintf(default_why, sizeof default_why, "%s", wv_errmsg());
}

wv_tls_ctx *wv_tls_ctx_default(void)
{
    pthread_once(&default_once, make_default);
    if (!default_ctx)
        wv_fail(-EPROTO, "no default TLS context: %s", default_why);
    return default_ctx;
}

int wv_tls_ctx_reload(wv_tls_ctx *ctx)
{
    if (!ctx)
        return -EINVAL;
    SSL_CTX *fresh;
    int rc = build(ctx, &fresh);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&ctx->mu);
    SSL_CTX *old = ctx->ssl;
    if (ctx->server) {
        /* tickets issued before the reload stay valid */
        unsigned char keys[80];
        if (SSL_CTX_get_tlsext_ticket_keys(old, keys, sizeof keys) == 1)
            SSL_CTX_set_tlsext_ticket_keys(fresh, keys, sizeof keys);
        OPENSSL_cleanse(keys, sizeof keys);
    }
    ctx->ssl = fresh;
    pthread_mutex_unlock(&ctx->mu);
    SSL_CTX_free(old); /* connections made with it hold their own references */
    return 0;
}

void wv_tls_ctx_free(wv_tls_ctx *ctx)
{
    if (!ctx || ctx == default_ctx)
        return;
    SSL_CTX_free(ctx->ssl);
    pthread_mutex_destroy(&ctx->mu);
    free(ctx->ca_file);
    free(ctx->cert_file);
    free(ctx->key_file);
    free(ctx);
}

SSL *tls_ctx_new_ssl(wv_tls_ctx *ctx)
{
    pthread_mutex_lock(&ctx->mu);
    SSL_CTX *c = ctx->ssl;
    SSL_CTX_up_ref(c);
    pthread_mutex_unlock(&ctx->mu);
    SSL *ssl = SSL_new(c); /* takes its own reference */
    SSL_CTX_free(c);
    return ssl;
}

bool tls_ctx_is_server(const wv_tls_ctx *ctx)
{
    return ctx->server;
}
