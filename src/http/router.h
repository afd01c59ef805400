/*
 * The request router: a radix tree (compressed trie) from (method, path) to
 * a handler pointer, with "{name}" parameters and a last "{name...}"
 * catch-all. Sans-I/O and private to the library; the server (routes.c)
 * wraps it for wv_route().
 *
 * Life cycle: router_new, router_add for every route (startup, one thread),
 * then router_match / router_allow from any number of threads at once. The
 * tree is never changed after the last router_add, so readers take no lock,
 * and a match allocates nothing: it writes only into the caller's
 * route_match. router_add must not run concurrently with anything else.
 *
 * Matching rules, in one place:
 *  - A path is matched segment by segment. At each segment a static segment
 *    is tried first, then a parameter, then a catch-all; a branch that fails
 *    further down is abandoned and the next kind tried (backtracking), so
 *    /a/b/c and /a/{x}/d both work for "/a/b/d".
 *  - A parameter matches one non-empty segment; a catch-all matches the rest
 *    of the path, possibly empty, slashes included. Bytes are compared as
 *    they arrive (percent-encoding is not decoded, "%2F" is not a '/'), and
 *    a trailing slash is significant.
 *  - The method takes part in the search: a route whose path matches but
 *    whose method does not is passed over, and the search goes on to the
 *    next candidate in priority order (as Go's ServeMux and Starlette do).
 *    At a route's path, the method is looked up as: the exact method, then
 *    GET for a HEAD request, then a "*" route.
 *  - When some pattern matched the path but none of them took the method,
 *    the answer is ROUTE_METHOD_NOT_ALLOWED and m->allow lists every method
 *    that would have been routed for this path (the union over all matching
 *    patterns, so Allow never leaves out a method that works).
 */
#ifndef WEAVE_HTTP_ROUTER_H
#define WEAVE_HTTP_ROUTER_H

#include "weave/str.h"

#pragma GCC visibility push(hidden)

/* At most this many parameters (catch-all included) in one pattern. */
#define ROUTER_MAX_PARAMS 16

typedef struct route_match {
    void *handler;       /* what router_add stored */
    const char *pattern; /* the route template as registered ("/users/{id}") */
    int nparams;
    wv_str names[ROUTER_MAX_PARAMS];  /* "id"; point into the router */
    wv_str values[ROUTER_MAX_PARAMS]; /* slices of the matched path, NOT decoded */
    /* ROUTE_METHOD_NOT_ALLOWED and router_allow: "DELETE, GET, HEAD, OPTIONS".
     * Sorted, always with OPTIONS, with HEAD when GET is there. "*" routes are
     * not listed (they take every method, so they never cause a 405). Should
     * the list not fit, methods are left out whole (never OPTIONS). */
    char allow[96];
} route_match;

enum { ROUTE_FOUND = 0, ROUTE_NOT_FOUND = 1, ROUTE_METHOD_NOT_ALLOWED = 2 };

typedef struct router router;

/* An empty router. NULL on OOM. */
router *router_new(void);

/* Free the router and every copy it made (NULL is fine). */
void router_free(router *r);

/*
 * Register `handler` (any non-NULL pointer; the router never calls it) for
 * `method` and `pattern`.
 *
 * method: an HTTP token ("GET", "POST", any token; case-sensitive), or "*"
 * for every method. pattern: starts with '/'; segments separated by '/'; a
 * segment is static text, or "{name}" (one whole segment, name =
 * [A-Za-z_][A-Za-z0-9_]*), or, as the last segment only, "{name...}", a
 * catch-all matching the rest of the path. Static text is matched byte for
 * byte, so write it as it arrives on the wire (percent-encoded).
 *
 * Returns 0, or:
 *  -EEXIST  the same method and pattern are already there, also when the
 *           patterns differ only in parameter names (/u/{id} and /u/{uid});
 *  -EINVAL  a malformed method or pattern, with *why (if why is not NULL)
 *           set to a static message: no leading '/', empty "{}", a bad
 *           name, '{' or '}' not a whole segment ("/a{b}"), a catch-all that
 *           is not last, a name used twice, more than ROUTER_MAX_PARAMS
 *           parameters, a byte that never appears in a request path (space,
 *           control, non-ASCII, '?', '#'), or a NULL handler;
 *  -ENOMEM  (the router stays usable; the route is not added).
 * The method and pattern strings are copied.
 */
int router_add(router *r, const char *method, const char *pattern, void *handler, const char **why);

/*
 * Match a request. path: the raw request path (no query), starting with '/'.
 *
 * ROUTE_FOUND: m->handler, m->pattern, m->nparams, m->names and m->values
 * are filled. ROUTE_METHOD_NOT_ALLOWED: a pattern matches the path but no
 * route takes the method; m->allow is filled (see above). ROUTE_NOT_FOUND:
 * no pattern matches the path. In the last two cases m->handler and
 * m->pattern are NULL and m->nparams is 0.
 *
 * Allocates nothing and takes no lock. Time is O(path length + tree depth)
 * for the usual tree; backtracking visits each tree node at most once, so
 * the worst case is bounded by the nodes whose prefixes match the path,
 * never by the number of routes as such.
 */
int router_match(const router *r, wv_str method, wv_str path, route_match *m);

/*
 * For OPTIONS: fill m->allow with the methods routed for `path` (the same
 * list a 405 would carry). ROUTE_FOUND if any pattern matches the path
 * (a "*" route included), else ROUTE_NOT_FOUND with m->allow empty.
 */
int router_allow(const router *r, wv_str path, route_match *m);

#pragma GCC visibility pop

#endif /* WEAVE_HTTP_ROUTER_H */
