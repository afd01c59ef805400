/*
 * wv_buf: growable byte buffers. Growth doubles, so appending n bytes in
 * pieces costs O(n); every failure is -ENOMEM to the caller, never an abort.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weave/buf.h"

int wv_buf_reserve(wv_buf *b, size_t extra)
{
    /* the limit holds even when the memory is already there (a buffer
     * that grew before its limit was set, or was given a smaller one) */
    if (b->limit && (extra > b->limit || b->n > b->limit - extra))
        return -ENOMEM;
    if (extra <= b->cap - b->n)
        return 0;
    if (extra > SIZE_MAX - b->n)
        return -ENOMEM;
    size_t need = b->n + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->limit && cap > b->limit)
        cap = b->limit;
    char *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int wv_buf_append(wv_buf *b, const void *data, size_t n)
{
    int rc = wv_buf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
    return 0;
}

int wv_buf_puts(wv_buf *b, const char *s)
{
    return wv_buf_append(b, s, strlen(s));
}

int wv_buf_vprintf(wv_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    int rc = 0;
    if (n < 0) {
        rc = -EINVAL;
    } else if ((size_t)n < sizeof small) {
        rc = wv_buf_append(b, small, (size_t)n);
    } else {
        rc = wv_buf_reserve(b, (size_t)n + 1);
        if (rc == 0) {
            vsnprintf(b->p + b->n, (size_t)n + 1, fmt, again);
            b->n += (size_t)n;
        }
    }
    va_end(again);
    return rc;
}

int wv_buf_printf(wv_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = wv_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int wv_buf_i64(wv_buf *b, long long v)
{
    char tmp[24];
    char *end = tmp + sizeof tmp, *p = end;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    return wv_buf_append(b, p, (size_t)(end - p));
}

/* The entity for each byte wv_buf_html replaces, and its length. */
static const char *const html_entity[256] = {
    ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#x27;",
};
static const uint8_t html_len[256] = {['&'] = 5, ['<'] = 4, ['>'] = 4, ['"'] = 6, ['\''] = 6};

int wv_buf_html(wv_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t start = b->n, run = 0;
    for (size_t i = 0;; i++) {
        /* copy each run of plain bytes at once, with the entity after it */
        while (i < n && !html_len[u[i]])
            i++;
        size_t k = i < n ? html_len[u[i]] : 0;
        if (wv_buf_reserve(b, i - run + k) < 0) {
            b->n = start;
            return -ENOMEM;
        }
        if (i > run)
            memcpy(b->p + b->n, s + run, i - run);
        b->n += i - run;
        if (i == n)
            return 0;
        memcpy(b->p + b->n, html_entity[u[i]], k);
        b->n += k;
        run = i + 1;
    }
}

void wv_buf_free(wv_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}
