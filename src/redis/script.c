/*
 * Lua scripts: EVALSHA by the script's SHA1, EVAL (which also loads it)
 * when the server answers NOSCRIPT. The SHA1 is OpenSSL's, computed once
 * when the script is made; a script is immutable, so any shard may use it.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_internal.h"

struct wv_redis_script {
    char sha[41];
    size_t len;
    char lua[]; /* NUL-terminated */
};

int wv_redis_script_new(const char *lua, wv_redis_script **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!lua)
        return wv_fail(-EINVAL, "redis script: no text");
    size_t n = strlen(lua);
    wv_redis_script *s = malloc(sizeof *s + n + 1);
    if (!s)
        return -ENOMEM;
    memcpy(s->lua, lua, n + 1);
    s->len = n;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(lua, n, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
        free(s);
        return wv_fail(-ENOTSUP, "redis script: SHA1 is not available");
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 20; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
    *out = s;
    return 0;
}

void wv_redis_script_free(wv_redis_script *s)
{
    free(s);
}

const char *wv_redis_script_sha(const wv_redis_script *s)
{
    return s ? s->sha : NULL;
}

int wv_redis_eval(wv_redis *r, const wv_redis_script *s, int nkeys, const wv_str *keys, int nargs,
                  const wv_str *args, wv_redis_reply **reply)
{
    if (reply)
        *reply = NULL;
    if (!r || !s || nkeys < 0 || nargs < 0 || (nkeys && !keys) || (nargs && !args))
        return wv_fail(-EINVAL, "redis EVALSHA: bad arguments");
    int argc = 3 + nkeys + nargs;
    enum { INLINE = 16 };
    wv_str small[INLINE], *argv = argc <= INLINE ? small : malloc(sizeof *argv * (size_t)argc);
    if (!argv)
        return -ENOMEM;
    char num[16];
    int len = snprintf(num, sizeof num, "%d", nkeys);
    argv[0] = WV_STR("EVALSHA");
    argv[1] = (wv_str){s->sha, 40};
    argv[2] = (wv_str){num, (size_t)len};
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    int rc = wv_redis_cmdv(r, reply, argc, argv);
    if (rc == -EIO && strncmp(wv_errmsg(), "NOSCRIPT", 8) == 0) {
        argv[0] = WV_STR("EVAL");
        argv[1] = (wv_str){s->lua, s->len};
        rc = wv_redis_cmdv(r, reply, argc, argv);
    }
    if (argv != small)
        free(argv);
    return rc;
}
