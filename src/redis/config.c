/*
 * A Redis client's settings: the URL and the options read once at open
 * into a redis_config that the client, its connections and its dedicated
 * handles share read-only.
 *
 *   redis://[[user]:password@]host[:port][/db][?protocol=2|3&client_name=N]
 *   rediss://...                     TLS
 *   unix:///path/to.sock[?db=N]      a Unix socket (also redis://%2Fpath/N)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_internal.h"

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void config_free(redis_config *c)
{
    free(c->host);
    free(c->user);
    if (c->password) {
        explicit_bzero(c->password, strlen(c->password));
        free(c->password);
    }
    free(c->client_name);
    free(c);
}

void redis_config_ref(redis_config *c)
{
    c->refs++;
}

void redis_config_unref(redis_config *c)
{
    if (c && --c->refs == 0)
        config_free(c);
}

/* A non-negative decimal no larger than max, or -1. */
static long small_number(const char *s, long max)
{
    if (!s || !*s)
        return -1;
    long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    return v;
}

static int parse_url(redis_config *c, const char *text)
{
    wv_url u;
    int rc = wv_url_parse(text, &u);
    if (rc < 0)
        return rc;
    const char *path = NULL;
    if (strcmp(u.scheme, "unix") == 0 || strcmp(u.scheme, "redis+unix") == 0) {
        c->host = strdup(u.path);
        c->port = 0;
    } else if (strcmp(u.scheme, "redis") == 0 || strcmp(u.scheme, "rediss") == 0) {
        c->tls = strcmp(u.scheme, "rediss") == 0;
        if (!u.host[0]) {
            rc = wv_fail(-EINVAL, "redis: %s names no host", c->redacted);
            goto out;
        }
        c->host = strdup(u.host);
        c->port = u.host[0] == '/' ? 0 : u.port;
        path = u.path;
    } else {
        rc = wv_fail(-EINVAL, "redis: %s: the scheme must be redis://, rediss:// or unix://",
                     c->redacted);
        goto out;
    }
    if (!c->host || !c->host[0]) {
        rc = c->host ? wv_fail(-EINVAL, "redis: %s names no socket", c->redacted) : -ENOMEM;
        goto out;
    }
    if (c->host[0] == '/')
        c->port = 0;
    /* the database: /N, or ?db=N */
    const char *db = NULL;
    if (path && path[0] == '/' && path[1])
        db = path + 1;
    if (wv_url_param_get(&u, "db"))
        db = wv_url_param_get(&u, "db");
    if (db) {
        long n = small_number(db, 1L << 20);
        if (n < 0) {
            rc = wv_fail(-EINVAL, "redis: %s: the database must be a number, not \"%s\"",
                         c->redacted, db);
            goto out;
        }
        c->db = (int)n;
    }
    const char *proto = wv_url_param_get(&u, "protocol");
    if (proto) {
        if (strcmp(proto, "2") != 0 && strcmp(proto, "3") != 0) {
            rc = wv_fail(-EINVAL, "redis: %s: protocol must be 2 or 3", c->redacted);
            goto out;
        }
        c->protocol = proto[0] - '0';
    }
    const char *cluster = wv_url_param_get(&u, "cluster");
    if (cluster) {
        if (strcmp(cluster, "true") == 0 || strcmp(cluster, "1") == 0 ||
            strcmp(cluster, "yes") == 0 || !cluster[0])
            c->cluster = true;
        else if (strcmp(cluster, "false") != 0 && strcmp(cluster, "0") != 0 &&
                 strcmp(cluster, "no") != 0) {
            rc = wv_fail(-EINVAL, "redis: %s: cluster must be true or false", c->redacted);
            goto out;
        }
    }
    const char *name = wv_url_param_get(&u, "client_name");
    if (name && !c->client_name)
        c->client_name = strdup(name);
    /* redis://:password@host is a password for the "default" user; a user
     * without a password (redis://name@host) is a user name, as redis-py
     * reads it, and sent only with a password */
    if (u.user && u.user[0] && !(c->user = strdup(u.user)))
        rc = -ENOMEM;
    else if (u.password && !(c->password = strdup(u.password)))
        rc = -ENOMEM;
    else if (name && !c->client_name)
        rc = -ENOMEM;
    else
        rc = 0;
out:
    wv_url_free(&u);
    return rc;
}

int redis_config_parse(const char *url, const wv_redis_opts *opts, redis_config **out)
{
    *out = NULL;
    if (!url || !*url)
        return wv_fail(-EINVAL, "redis: no URL");
    wv_redis_opts o = opts ? *opts : (wv_redis_opts){0};
    if (o.connections < 0 || o.pool_size < 0 || o.connect_timeout_ms < 0)
        return wv_fail(-EINVAL, "redis: negative options");
    redis_config *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->refs = 1;
    wv_url_redact(url, c->redacted, sizeof c->redacted);
    c->client_name = dup_or_null(o.client_name);
    if (o.client_name && !c->client_name) {
        config_free(c);
        return -ENOMEM;
    }
    int rc = parse_url(c, url);
    if (rc < 0) {
        config_free(c);
        return rc;
    }
    c->tls_ctx = o.tls;
    if (o.tls)
        c->tls = true;
    c->connections = o.connections ? o.connections : 1;
    c->pool_size = o.pool_size ? o.pool_size : REDIS_DEFAULT_POOL;
    c->autopipeline = !o.no_autopipeline;
    c->connect_timeout_ms = o.connect_timeout_ms ? o.connect_timeout_ms : REDIS_DEFAULT_CONNECT_MS;
    c->response_timeout_ms =
        o.response_timeout_ms ? o.response_timeout_ms : REDIS_DEFAULT_RESPONSE_MS;
    c->max_reply = o.max_reply ? o.max_reply : (size_t)512 << 20;
    if (o.cluster)
        c->cluster = true;
    *out = c;
    return 0;
}

int redis_config_for_node(const redis_config *base, const char *host, int port, redis_config **out)
{
    *out = NULL;
    redis_config *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = *base;
    c->refs = 1;
    c->stats = (wv_redis_stats){0};
    c->cluster = false;
    c->host = strdup(host);
    c->port = port;
    c->user = dup_or_null(base->user);
    c->password = dup_or_null(base->password);
    c->client_name = dup_or_null(base->client_name);
    snprintf(c->redacted, sizeof c->redacted, "%s://%s:%d", c->tls ? "rediss" : "redis", host,
             port);
    if (!c->host || (base->user && !c->user) || (base->password && !c->password) ||
        (base->client_name && !c->client_name)) {
        config_free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}
