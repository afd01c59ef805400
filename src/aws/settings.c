/*
 * Endpoint, region and credentials, read the same way by every AWS client
 * (src/aws/settings.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/settings.h"
#include "weave/net.h"
#include "weave/rt.h"

const char *aws_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int aws_region(aws_settings *s, const char *given, const char *who)
{
    const char *region = given;
    if (!region)
        region = aws_env("AWS_REGION");
    if (!region)
        region = aws_env("AWS_DEFAULT_REGION");
    if (!region)
        region = "us-east-1";
    for (const char *c = region; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            return wv_fail(-EINVAL, "%s: the region \"%.40s\" is not a region name", who, region);
    if (!*region || strlen(region) > 64)
        return wv_fail(-EINVAL, "%s: the region is empty or too long", who);
    if (!(s->region = strdup(region)))
        return wv_fail(-ENOMEM, "%s: out of memory", who);
    return 0;
}

int aws_endpoint(aws_settings *s, const char *endpoint, const char *who)
{
    wv_url u;
    int rc = wv_url_parse(endpoint, &u);
    if (rc < 0)
        return wv_fail(-EINVAL, "%s: the endpoint is not a URL: %s", who, wv_errmsg());
    char shown[256];
    wv_url_redact(endpoint, shown, sizeof shown);
    if (strcmp(u.scheme, "http") != 0 && strcmp(u.scheme, "https") != 0)
        rc = wv_fail(-EINVAL, "%s: the endpoint %s is not http:// or https://", who, shown);
    else if (!u.host[0])
        rc = wv_fail(-EINVAL, "%s: the endpoint %s names no host", who, shown);
    else if (u.user || u.password)
        rc = wv_fail(-EINVAL,
                     "%s: the endpoint %s holds credentials: give them as access_key "
                     "and secret_key",
                     who, shown);
    else if ((u.path[0] && strcmp(u.path, "/") != 0) || u.query || u.fragment)
        rc = wv_fail(-EINVAL, "%s: the endpoint %s has a path or query; give scheme, host and port",
                     who, shown);
    if (rc == 0) {
        bool v6 = strchr(u.host, ':') != NULL;
        bool default_port = !u.port_given || u.port == wv_url_default_port(u.scheme);
        char h[300];
        int len = snprintf(h, sizeof h, "%s%s%s", v6 ? "[" : "", u.host, v6 ? "]" : "");
        if (!default_port && len > 0 && (size_t)len < sizeof h)
            len += snprintf(h + len, sizeof h - (size_t)len, ":%d", u.port);
        if (len < 0 || (size_t)len >= sizeof h)
            rc = wv_fail(-EINVAL, "%s: the endpoint's host is too long", who);
        else if (!(s->scheme = strdup(u.scheme)) || !(s->host = strdup(h)))
            rc = wv_fail(-ENOMEM, "%s: out of memory", who);
    }
    wv_url_free(&u);
    return rc;
}

int aws_credentials(aws_settings *s, const char *id, const char *secret, const char *token,
                    const char *who, const char *hint)
{
    const char *from = "access_key and secret_key";
    if (!id) {
        id = aws_env("AWS_ACCESS_KEY_ID");
        secret = aws_env("AWS_SECRET_ACCESS_KEY");
        token = aws_env("AWS_SESSION_TOKEN");
        from = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
    }
    if (!id || !*id || !secret || !*secret)
        return wv_fail(-EINVAL, "%s: no credentials: set %s%s", who, from, hint);
    for (const char *c = id; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '/' || *c == ',' || (unsigned char)*c >= 0x7f)
            return wv_fail(-EINVAL, "%s: the access key id holds a character it cannot hold", who);
    if (token && strpbrk(token, "\r\n"))
        return wv_fail(-EINVAL, "%s: the session token holds a line break", who);
    s->access_key = strdup(id);
    s->secret_key = strdup(secret);
    s->session_token = token && *token ? strdup(token) : NULL;
    if (!s->access_key || !s->secret_key || (token && *token && !s->session_token))
        return wv_fail(-ENOMEM, "%s: out of memory", who);
    return 0;
}

int aws_tls(aws_settings *s, const char *ca_file, bool insecure, const char *who)
{
    s->insecure = insecure;
    if (ca_file && !(s->ca_file = strdup(ca_file)))
        return wv_fail(-ENOMEM, "%s: out of memory", who);
    return 0;
}

void aws_settings_free(aws_settings *s)
{
    free(s->scheme);
    free(s->host);
    free(s->region);
    free(s->access_key);
    if (s->secret_key) {
        volatile char *p = s->secret_key;
        while (*p)
            *p++ = 0;
        free(s->secret_key);
    }
    free(s->session_token);
    free(s->ca_file);
    memset(s, 0, sizeof *s);
}
