/*
 * weave/str.h: wv_str, a byte string that carries its length.
 *
 * Parsers hand out wv_str slices into the buffer they parsed (zero-copy), so
 * a wv_str is neither NUL-terminated nor owned: it is valid as long as the
 * bytes it points into are. Compare with the helpers below, never with
 * strcmp.
 */
#ifndef WEAVE_STR_H
#define WEAVE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct wv_str {
    const char *p; /* first byte; may be NULL when n == 0 */
    size_t n;      /* length in bytes */
} wv_str;

/* A wv_str for a string literal, without its terminating NUL. */
#define WV_STR(lit) ((wv_str){(lit), sizeof(lit) - 1})

/* True when a and b hold the same bytes. */
static inline bool wv_str_eq(wv_str a, wv_str b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* True when a and b are equal ignoring ASCII case (other bytes must match). */
static inline bool wv_str_ieq(wv_str a, wv_str b)
{
    if (a.n != b.n)
        return false;
    for (size_t i = 0; i < a.n; i++) {
        unsigned char x = (unsigned char)a.p[i], y = (unsigned char)b.p[i];
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (y >= 'A' && y <= 'Z')
            y |= 0x20;
        if (x != y)
            return false;
    }
    return true;
}

/* True when a holds exactly the bytes of the NUL-terminated string s. */
static inline bool wv_str_eq_cstr(wv_str a, const char *s)
{
    size_t n = strlen(s);
    return a.n == n && (n == 0 || memcmp(a.p, s, n) == 0);
}

#endif /* WEAVE_STR_H */
