/*
 * A response's header fields: the head curl handed over line by line
 * ("HTTP/1.1 200 OK", "Name: value", ..., "") becomes the array of
 * wv_httpc_header the caller reads, in place: names and values are
 * NUL-terminated inside the received bytes, so the whole head costs two
 * allocations (the bytes and the array). Also the lookups and freeing.
 */
#include <stdlib.h>
#include <string.h>

#include "httpc/httpc_internal.h"

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_eol(char c)
{
    return c == '\r' || c == '\n';
}

/* Is there a space or a tab in [p, end)? */
static bool has_ws(const char *p, const char *end)
{
    size_t n = (size_t)(end - p);
    return memchr(p, ' ', n) || memchr(p, '\t', n);
}

int httpc_response_take_head(wv_httpc_response *resp, wv_buf *head)
{
    if (wv_buf_reserve(head, 1) < 0)
        return -ENOMEM;
    char *p = head->p, *end = head->p + head->n;
    *end = '\0';
    size_t lines = 1;
    for (char *c = p; (c = memchr(c, '\n', (size_t)(end - c))); c++)
        lines++;
    enum { ON_STACK = 32 }; /* a head's usual number of lines, and then some */
    char *stack_ends[ON_STACK];
    wv_httpc_header *h = calloc(lines, sizeof *h);
    char **value_end = lines <= ON_STACK ? stack_ends : calloc(lines, sizeof *value_end);
    if (!h || !value_end) {
        free(h);
        if (value_end != stack_ends)
            free(value_end);
        return -ENOMEM;
    }
    size_t n = 0;
    for (char *line = p; line < end;) {
        char *eol = memchr(line, '\n', (size_t)(end - line));
        char *next = eol ? eol + 1 : end;
        char *stop = eol ? eol : end; /* the line without its LF (and CR below) */
        if (stop > line && stop[-1] == '\r')
            stop--;
        if (is_ws(*line) && n > 0) {
            /* obsolete line folding: the line continues the value above;
             * the line break between them becomes spaces (RFC 9112 5.2) */
            for (char *c = value_end[n - 1]; c < line; c++)
                *c = ' ';
            value_end[n - 1] = stop;
        } else if (stop > line && strncmp(line, "HTTP/", 5) != 0) {
            char *colon = memchr(line, ':', (size_t)(stop - line));
            if (colon && colon > line && !has_ws(line, colon)) {
                char *v = colon + 1;
                while (v < stop && is_ws(*v))
                    v++;
                h[n].name = line;
                h[n].value = v;
                value_end[n] = stop;
                *colon = '\0';
                n++;
            }
        }
        line = next;
    }
    for (size_t i = 0; i < n; i++) {
        char *e = value_end[i];
        while (e > h[i].value && (is_ws(e[-1]) || is_eol(e[-1])))
            e--;
        *e = '\0';
    }
    if (value_end != stack_ends)
        free(value_end);
    resp->headers = h;
    resp->nheaders = n;
    resp->head_ = head->p;
    *head = (wv_buf){0};
    return 0;
}

const char *wv_httpc_header_get(const wv_httpc_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (httpc_name_eq(resp->headers[i].name, name))
            return resp->headers[i].value;
    return NULL;
}

void wv_httpc_response_free(wv_httpc_response *resp)
{
    if (!resp)
        return;
    wv_buf_free(&resp->body);
    free(resp->url);
    free(resp->headers);
    free(resp->head_);
    memset(resp, 0, sizeof *resp);
}
