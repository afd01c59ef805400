/*
 * weave's Redis client: the reply type.
 *
 * A reply is a tree of wv_redis_reply nodes that lives in one allocation
 * with the reply's bytes: every string points into it, NUL-terminated and
 * binary-safe with its len. Both RESP2 and RESP3 (HELLO 3) replies map onto
 * it; RESP3 attributes (`|`) are read and dropped, as redis-py does.
 */
#ifndef WEAVE_REDIS_H
#define WEAVE_REDIS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wv_redis_type {
    WV_REDIS_NIL = 0,   /* RESP2 null bulk ($-1) or null array (*-1); RESP3 null (_) */
    WV_REDIS_STATUS,    /* simple string (+OK): str, len */
    WV_REDIS_ERROR,     /* simple (-ERR ...) or blob (!) error: str, len */
    WV_REDIS_INT,       /* integer (:): integer */
    WV_REDIS_STRING,    /* bulk string ($): str, len */
    WV_REDIS_ARRAY,     /* array (*): elem[0..len) */
    WV_REDIS_MAP,       /* map (%): elem[0..len), keys and values alternate (len = 2 x pairs) */
    WV_REDIS_SET,       /* set (~): elem[0..len) */
    WV_REDIS_DOUBLE,    /* double (,): dbl, and its text in str, len (inf, -inf, nan too) */
    WV_REDIS_BOOL,      /* boolean (#t, #f): integer is 1 or 0 */
    WV_REDIS_BIGNUM,    /* big number ((): its decimal text in str, len */
    WV_REDIS_VERBATIM,  /* verbatim string (=): str, len after the "txt:" prefix; format in vfmt */
    WV_REDIS_PUSH,      /* push (>): elem[0..len); pub/sub messages and invalidations */
} wv_redis_type;

typedef struct wv_redis_reply {
    wv_redis_type type;
    char vfmt[4];                 /* WV_REDIS_VERBATIM: the format ("txt", "mkd"), NUL-terminated */
    size_t len;                   /* bytes of str, or elements of elem */
    const char *str;              /* text types: NUL-terminated, may hold NUL bytes */
    long long integer;            /* WV_REDIS_INT, WV_REDIS_BOOL */
    double dbl;                   /* WV_REDIS_DOUBLE */
    struct wv_redis_reply *elem;  /* aggregate types */
} wv_redis_reply;

#ifdef __cplusplus
}
#endif

#endif
