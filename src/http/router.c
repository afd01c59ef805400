/*
 * The request router (router.h): a radix tree over request paths.
 *
 * Shape. Static text is stored byte-wise as in any radix tree: an edge label
 * may span several segments ("/api/v1/") and is split where two routes part.
 * A parameter or catch-all is a child of its own kind, hung off the node
 * whose text ends exactly where the segment starts (just after a '/'); the
 * insertion splits static edges so that such a node exists. So a node has
 * up to three kinds of children, tried in the order static, parameter,
 * catch-all, and the search backtracks on failure. A node's place in the tree
 * fixes how much of the path has been consumed when it is reached, so the
 * depth-first search visits each node at most once.
 *
 * Layout. A match is a chain of dependent loads, one per node, so the layout
 * is what makes it fast: every node lives in one array (router.nodes) and is
 * named by its index; the static children of a node sit side by side in that
 * array, each carrying its label's first byte, so choosing the child for
 * the next path byte scans adjacent memory and goes straight on. Labels are
 * slices of one text buffer (router.text): splitting a label moves no bytes.
 * When a node's block of children is full it is copied to a block twice the
 * size at the end of the array; the old block is zeroed and never used again
 * (at most as many dead slots as live ones).
 *
 * Routes live in the node where their pattern ends: an array of endpoints
 * (method, handler, the pattern copy and its parameter names) sorted by
 * method, plus one optional "*" endpoint. Parameter names belong to the
 * endpoint, not to the node, because /u/{id} and /u/{uid}/posts share the
 * parameter node.
 *
 * Matching keeps its state on the stack (struct search) and writes only into
 * the caller's route_match; the tree is read-only after startup, so any
 * number of threads may match at once without locks.
 */
#include "http/router.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum node_kind { NODE_STATIC, NODE_PARAM, NODE_CATCH_ALL };

/* Index into router.nodes. 0 is the root, which is nobody's child, so 0
 * also means "none" in the fields below. */
typedef uint32_t node_id;

typedef struct endpoint {
    const char *method; /* NUL-terminated, in this allocation */
    size_t method_len;
    void *handler;
    const char *pattern; /* NUL-terminated copy, in this allocation */
    int nparams;
    wv_str names[]; /* point into pattern */
} endpoint;

typedef struct node {
    uint32_t label;     /* NODE_STATIC: offset of the label in router.text */
    uint32_t label_len; /* 0 for the root and for parameter nodes */
    node_id children;   /* static children: nodes[children .. children + nchildren) */
    uint16_t nchildren;
    uint16_t capacity; /* slots reserved at `children` */
    node_id param;     /* only on nodes ending at a segment start */
    node_id catch_all; /* idem */
    unsigned char kind;
    char first;          /* the label's first byte, scanned by the parent */
    uint16_t nendpoints; /* in endpoints, sorted by method; "*" is not among them */
    endpoint **endpoints;
    endpoint *any; /* the "*" route */
} node;

struct router {
    node *nodes; /* nodes[0] is the root: empty label, never split */
    uint32_t nnodes, cap_nodes;
    char *text; /* every label */
    uint32_t ntext, cap_text;
};

/* ---------------------------------------------------------------- pattern */

/* A pattern cut into what the tree stores: runs of static text (slashes
 * included) and parameters. Each parameter follows a run ending in '/'. */
typedef struct piece {
    unsigned char kind; /* enum node_kind */
    const char *p;      /* NODE_STATIC: the text; otherwise the name */
    size_t n;
} piece;

#define MAX_PIECES (2 * ROUTER_MAX_PARAMS + 1)

typedef struct parsed {
    piece pieces[MAX_PIECES];
    int npieces;
    int nparams;
    wv_str names[ROUTER_MAX_PARAMS];
} parsed;

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* RFC 9110 tchar. */
static bool is_token_char(char c)
{
    return is_name_char(c) || (c != '\0' && strchr("!#$%&'*+-.^|~`", c) != NULL);
}

/* Bytes a raw request path can hold (RFC 9112 rejects the others, and the
 * query and fragment never reach the router), braces aside. */
static bool is_path_byte(char c)
{
    unsigned char u = (unsigned char)c;
    return u > 0x20 && u < 0x7f && c != '?' && c != '#';
}

static void add_piece(parsed *pp, unsigned char kind, const char *p, size_t n)
{
    pp->pieces[pp->npieces++] = (piece){kind, p, n};
}

/* One "{...}" segment, seg[0..n). 0 or -EINVAL. */
static int parse_param(parsed *pp, const char *seg, size_t n, bool last, const char **why)
{
    if (n < 2 || seg[0] != '{' || seg[n - 1] != '}' || memchr(seg + 1, '{', n - 2) != NULL ||
        memchr(seg + 1, '}', n - 2) != NULL) {
        *why = "'{' and '}' must enclose a whole segment, as in /users/{id}";
        return -EINVAL;
    }
    const char *name = seg + 1;
    size_t len = n - 2;
    bool catch_all = len >= 3 && memcmp(name + len - 3, "...", 3) == 0;
    if (catch_all)
        len -= 3;
    if (len == 0) {
        *why = "empty parameter name";
        return -EINVAL;
    }
    if (!is_name_start(name[0])) {
        *why = "a parameter name must match [A-Za-z_][A-Za-z0-9_]*";
        return -EINVAL;
    }
    for (size_t i = 1; i < len; i++) {
        if (!is_name_char(name[i])) {
            *why = "a parameter name must match [A-Za-z_][A-Za-z0-9_]*";
            return -EINVAL;
        }
    }
    if (catch_all && !last) {
        *why = "a catch-all {name...} must be the last segment";
        return -EINVAL;
    }
    for (int i = 0; i < pp->nparams; i++) {
        if (pp->names[i].n == len && memcmp(pp->names[i].p, name, len) == 0) {
            *why = "a parameter name is used twice in one pattern";
            return -EINVAL;
        }
    }
    if (pp->nparams == ROUTER_MAX_PARAMS) {
        *why = "more than ROUTER_MAX_PARAMS (16) parameters in one pattern";
        return -EINVAL;
    }
    pp->names[pp->nparams++] = (wv_str){name, len};
    add_piece(pp, catch_all ? NODE_CATCH_ALL : NODE_PARAM, name, len);
    return 0;
}

/* Cut `pat` into pieces, checking every rule of router.h. 0 or -EINVAL. */
static int parse_pattern(const char *pat, parsed *pp, const char **why)
{
    pp->npieces = 0;
    pp->nparams = 0;
    if (pat == NULL || pat[0] != '/') {
        *why = "a pattern must start with '/'";
        return -EINVAL;
    }
    size_t run = 0; /* start of the static text not yet cut into a piece */
    size_t i = 0;   /* at a '/' */
    while (pat[i] != '\0') {
        size_t seg = i + 1, end = seg;
        bool braces = false;
        for (; pat[end] != '\0' && pat[end] != '/'; end++) {
            if (pat[end] == '{' || pat[end] == '}') {
                braces = true;
            } else if (!is_path_byte(pat[end])) {
                *why = "a pattern may hold only visible ASCII without '?' and '#' "
                       "(percent-encode the rest)";
                return -EINVAL;
            }
        }
        if (braces) {
            add_piece(pp, NODE_STATIC, pat + run, seg - run);
            int rc = parse_param(pp, pat + seg, end - seg, pat[end] == '\0', why);
            if (rc < 0)
                return rc;
            run = end;
        }
        i = end;
    }
    if (i > run)
        add_piece(pp, NODE_STATIC, pat + run, i - run);
    return 0;
}

static int check_method(const char *method, const char **why)
{
    if (method == NULL || method[0] == '\0') {
        *why = "empty method";
        return -EINVAL;
    }
    for (const char *c = method; *c != '\0'; c++) {
        if (!is_token_char(*c)) {
            *why = "a method must be an HTTP token (\"GET\") or \"*\"";
            return -EINVAL;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ tree */

/* Grow a buffer of `size`-byte items to hold `need`; 0 or -ENOMEM.
 * ROUTER_GROW_EXACT (defined by the unit test that compiles this file in)
 * makes every growth reallocate, so that each can be made to fail. */
static int grow(void *buf, uint32_t *cap, uint32_t need, size_t size)
{
    if (need <= *cap)
        return 0;
#ifdef ROUTER_GROW_EXACT
    uint64_t want = need;
#else
    uint64_t want = *cap > 0 ? (uint64_t)*cap * 2 : 16;
    while (want < need)
        want *= 2;
#endif
    if (want > UINT32_MAX)
        want = UINT32_MAX;
    if (need > want)
        return -ENOMEM;
    void *p = realloc(*(void **)buf, (size_t)want * size);
    if (p == NULL)
        return -ENOMEM;
    *(void **)buf = p;
    *cap = (uint32_t)want;
    return 0;
}

/* `count` zeroed slots at the end of the array: the first one's id, or 0 on
 * OOM. Moves the array: node pointers taken before are stale. */
static node_id alloc_nodes(router *r, uint32_t count)
{
    if (count > UINT32_MAX - r->nnodes ||
        grow(&r->nodes, &r->cap_nodes, r->nnodes + count, sizeof(node)) < 0)
        return 0;
    node_id id = r->nnodes;
    memset(&r->nodes[id], 0, count * sizeof(node));
    r->nnodes += count;
    return id;
}

/* Copy s[0..len) into the text buffer: its offset, or -1 on OOM. */
static int64_t add_text(router *r, const char *s, size_t len)
{
    if (len > UINT32_MAX - r->ntext ||
        grow(&r->text, &r->cap_text, r->ntext + (uint32_t)len, 1) < 0)
        return -1;
    memcpy(r->text + r->ntext, s, len);
    r->ntext += (uint32_t)len;
    return r->ntext - (uint32_t)len;
}

/* Append a copy of *child to parent's children; its id, or 0 on OOM. */
static node_id add_child(router *r, node_id parent, const node *child)
{
    node *p = &r->nodes[parent];
    if (p->nchildren == p->capacity) {
        uint16_t cap = p->capacity > 0 ? (uint16_t)(p->capacity * 2) : 2;
        node_id block = alloc_nodes(r, cap);
        if (block == 0)
            return 0;
        p = &r->nodes[parent];
        memcpy(&r->nodes[block], &r->nodes[p->children], p->nchildren * sizeof(node));
        memset(&r->nodes[p->children], 0, p->nchildren * sizeof(node));
        p->children = block;
        p->capacity = cap;
    }
    node_id id = p->children + p->nchildren++;
    r->nodes[id] = *child;
    return id;
}

/* Cut the label of node `id` after k bytes (0 < k < label_len): the node
 * keeps its slot and the first k bytes, and a new node below it takes the
 * rest of the label with everything else. Returns id, or 0 on OOM. */
static node_id split(router *r, node_id id, uint32_t k)
{
    node_id rest = alloc_nodes(r, 1);
    if (rest == 0)
        return 0;
    node *n = &r->nodes[id], *below = &r->nodes[rest];
    node head = {.kind = NODE_STATIC,
                 .label = n->label,
                 .label_len = k,
                 .first = n->first,
                 .children = rest,
                 .nchildren = 1,
                 .capacity = 1};
    *below = *n;
    below->label += k;
    below->label_len -= k;
    below->first = r->text[below->label];
    *n = head;
    return id;
}

static node_id find_child(const router *r, node_id id, char c)
{
    const node *n = &r->nodes[id];
    for (uint32_t i = 0; i < n->nchildren; i++) {
        if (r->nodes[n->children + i].first == c)
            return n->children + i;
    }
    return 0;
}

/* Follow or create the static path for s[0..len) (len > 0) below `id`;
 * returns the node where it ends, or 0 on OOM. Nodes created before an OOM
 * stay, without endpoints: they match nothing, so behaviour is unchanged. */
static node_id insert_static(router *r, node_id id, const char *s, size_t len)
{
    while (len > 0) {
        node_id child = find_child(r, id, s[0]);
        if (child == 0) {
            int64_t label = add_text(r, s, len);
            if (label < 0)
                return 0;
            node fresh = {.kind = NODE_STATIC,
                          .label = (uint32_t)label,
                          .label_len = (uint32_t)len,
                          .first = s[0]};
            return add_child(r, id, &fresh);
        }
        const node *c = &r->nodes[child];
        const char *label = r->text + c->label;
        uint32_t k = 1;
        while (k < c->label_len && k < len && label[k] == s[k])
            k++;
        if (k < c->label_len && split(r, child, k) == 0)
            return 0;
        id = child;
        s += k;
        len -= k;
    }
    return id;
}

/* The parameter or catch-all child of `id`, created if need be; 0 on OOM. */
static node_id insert_param(router *r, node_id id, unsigned char kind)
{
    node_id p = kind == NODE_PARAM ? r->nodes[id].param : r->nodes[id].catch_all;
    if (p != 0)
        return p;
    p = alloc_nodes(r, 1);
    if (p == 0)
        return 0;
    r->nodes[p].kind = kind;
    if (kind == NODE_PARAM)
        r->nodes[id].param = p;
    else
        r->nodes[id].catch_all = p;
    return p;
}

static node_id insert_pieces(router *r, const parsed *pp)
{
    node_id id = 0;
    for (int i = 0; i < pp->npieces; i++) {
        const piece *pc = &pp->pieces[i];
        id = pc->kind == NODE_STATIC ? insert_static(r, id, pc->p, pc->n)
                                     : insert_param(r, id, pc->kind);
        if (id == 0)
            return 0;
    }
    return id;
}

/* One allocation: the endpoint, its names, the method and pattern copies. */
static endpoint *endpoint_new(const char *method, const char *pattern, void *handler,
                              const parsed *pp)
{
    size_t mlen = strlen(method), plen = strlen(pattern);
    size_t names = (size_t)pp->nparams * sizeof(wv_str);
    endpoint *ep = malloc(sizeof(*ep) + names + mlen + 1 + plen + 1);
    if (ep == NULL)
        return NULL;
    char *method_copy = (char *)ep->names + names;
    char *pattern_copy = method_copy + mlen + 1;
    memcpy(method_copy, method, mlen + 1);
    memcpy(pattern_copy, pattern, plen + 1);
    ep->method = method_copy;
    ep->method_len = mlen;
    ep->handler = handler;
    ep->pattern = pattern_copy;
    ep->nparams = pp->nparams;
    for (int i = 0; i < pp->nparams; i++)
        ep->names[i] = (wv_str){pattern_copy + (pp->names[i].p - pattern), pp->names[i].n};
    return ep;
}

/* Store ep in n, keeping the array sorted. 0, -EEXIST or -ENOMEM; on
 * failure ep is the caller's to free. */
static int attach_endpoint(node *n, endpoint *ep)
{
    if (strcmp(ep->method, "*") == 0) {
        if (n->any != NULL)
            return -EEXIST;
        n->any = ep;
        return 0;
    }
    int at = 0;
    for (; at < n->nendpoints; at++) {
        int c = strcmp(n->endpoints[at]->method, ep->method);
        if (c == 0)
            return -EEXIST;
        if (c > 0)
            break;
    }
    if (n->nendpoints == UINT16_MAX)
        return -ENOMEM;
    endpoint **eps = realloc(n->endpoints, ((size_t)n->nendpoints + 1) * sizeof(*eps));
    if (eps == NULL)
        return -ENOMEM;
    n->endpoints = eps;
    memmove(eps + at + 1, eps + at, (size_t)(n->nendpoints - at) * sizeof(*eps));
    eps[at] = ep;
    n->nendpoints++;
    return 0;
}

router *router_new(void)
{
    router *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    /* the root, and room for text so that r->text is never NULL */
    if (grow(&r->nodes, &r->cap_nodes, 1, sizeof(node)) < 0 ||
        grow(&r->text, &r->cap_text, 1, 1) < 0) {
        free(r->nodes);
        free(r);
        return NULL;
    }
    memset(&r->nodes[0], 0, sizeof(node));
    r->nnodes = 1;
    return r;
}

void router_free(router *r)
{
    if (r == NULL)
        return;
    for (uint32_t i = 0; i < r->nnodes; i++) { /* dead slots are zeroed */
        node *n = &r->nodes[i];
        for (int k = 0; k < n->nendpoints; k++)
            free(n->endpoints[k]);
        free(n->endpoints);
        free(n->any);
    }
    free(r->nodes);
    free(r->text);
    free(r);
}

int router_add(router *r, const char *method, const char *pattern, void *handler, const char **why)
{
    const char *ignored;
    if (why == NULL)
        why = &ignored;
    int rc = check_method(method, why);
    if (rc < 0)
        return rc;
    parsed pp;
    rc = parse_pattern(pattern, &pp, why);
    if (rc < 0)
        return rc;
    if (handler == NULL) {
        *why = "the handler is NULL";
        return -EINVAL;
    }
    endpoint *ep = endpoint_new(method, pattern, handler, &pp);
    node_id id = ep != NULL ? insert_pieces(r, &pp) : 0;
    rc = id != 0 ? attach_endpoint(&r->nodes[id], ep) : -ENOMEM;
    if (rc < 0) {
        free(ep);
        *why = rc == -EEXIST ? "this method and pattern are already routed" : "out of memory";
    }
    return rc;
}

/* ----------------------------------------------------------------- match */

typedef struct search {
    const node *nodes;
    const char *text;
    const char *path;
    size_t len;
    wv_str method;
    bool head;         /* the method is HEAD: GET routes take it too */
    bool collect;      /* listing methods for Allow: take no route, note each one */
    bool matched;      /* some pattern matched the path */
    bool saw_get;      /* collect: a matching pattern has a GET route */
    const char *after; /* collect: look for the smallest method sorting after this */
    const char *next;  /* collect: ... found so far */
    route_match *m;
} search;

static inline uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint32_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline uint16_t load16(const char *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* memcmp(a, b, n) == 0, inline and with few branches: for the short labels
 * of a route a libc call costs more than the compare (and glibc's masked
 * vector memcmp took 85% of a match on the AMD EPYC these benchmarks run
 * on). Short sizes compare two overlapping words; nothing outside
 * [0, n) is read. */
static inline bool same_bytes(const char *a, const char *b, size_t n)
{
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8) {
            if (load64(a + i) != load64(b + i))
                return false;
        }
        return load64(a + n - 8) == load64(b + n - 8);
    }
    if (n >= 4)
        return ((load32(a) ^ load32(b)) | (load32(a + n - 4) ^ load32(b + n - 4))) == 0;
    if (n >= 2)
        return ((load16(a) ^ load16(b)) | (load16(a + n - 2) ^ load16(b + n - 2))) == 0;
    return n == 0 || a[0] == b[0];
}

static const endpoint *find_method(const node *n, const char *method, size_t len)
{
    for (int i = 0; i < n->nendpoints; i++) {
        const endpoint *ep = n->endpoints[i];
        if (ep->method_len == len && same_bytes(ep->method, method, len))
            return ep;
    }
    return NULL;
}

/* Collect: keep `method` if it is the smallest yet that sorts after s->after. */
static void consider(search *s, const char *method)
{
    if (s->after != NULL && strcmp(method, s->after) <= 0)
        return;
    if (s->next == NULL || strcmp(method, s->next) < 0)
        s->next = method;
}

/* The whole path has been consumed at n: take its route for the method. */
static bool take_route(search *s, const node *n)
{
    if (n->nendpoints == 0 && n->any == NULL)
        return false;
    s->matched = true;
    if (s->collect) {
        for (int i = 0; i < n->nendpoints; i++) {
            consider(s, n->endpoints[i]->method);
            if (strcmp(n->endpoints[i]->method, "GET") == 0)
                s->saw_get = true;
        }
        return false;
    }
    const endpoint *ep = find_method(n, s->method.p, s->method.n);
    if (ep == NULL && s->head)
        ep = find_method(n, "GET", 3);
    if (ep == NULL)
        ep = n->any;
    if (ep == NULL)
        return false;
    route_match *m = s->m;
    m->handler = ep->handler;
    m->pattern = ep->pattern;
    for (int i = 0; i < m->nparams; i++)
        m->names[i] = ep->names[i];
    return true;
}

/* Catch-all below the node where the path reached pos: the rest is its value. */
static bool take_rest(search *s, node_id c, size_t pos)
{
    route_match *m = s->m;
    if (m->nparams == ROUTER_MAX_PARAMS)
        return false;
    m->values[m->nparams++] = (wv_str){s->path + pos, s->len - pos};
    if (take_route(s, &s->nodes[c]))
        return true;
    m->nparams--;
    return false;
}

/* Match the path from pos at node id (static or parameter) and below.
 * Straight runs of the tree loop; only a node with a choice recurses. */
static bool walk(search *s, node_id id, size_t pos)
{
    route_match *m = s->m;
    const int saved = m->nparams;
    for (;;) {
        const node *n = &s->nodes[id];
        if (n->kind == NODE_STATIC) {
            if (s->len - pos < n->label_len ||
                !same_bytes(s->path + pos, s->text + n->label, n->label_len))
                break;
            pos += n->label_len;
        } else {
            const char *seg = s->path + pos;
            size_t seglen = 0, left = s->len - pos;
            while (seglen < left && seg[seglen] != '/')
                seglen++;
            if (seglen == 0 || m->nparams == ROUTER_MAX_PARAMS)
                break;
            m->values[m->nparams++] = (wv_str){seg, seglen};
            pos += seglen;
        }
        if (pos == s->len) {
            if (take_route(s, n) || (n->catch_all != 0 && take_rest(s, n->catch_all, pos)))
                return true;
            break;
        }
        node_id next = 0;
        char c = s->path[pos];
        for (uint32_t i = 0; i < n->nchildren; i++) {
            if (s->nodes[n->children + i].first == c) {
                next = n->children + i;
                break;
            }
        }
        if (next != 0 && (n->param != 0 || n->catch_all != 0)) {
            if (walk(s, next, pos))
                return true;
            next = 0;
        }
        if (next == 0 && n->param != 0) {
            if (n->catch_all == 0)
                next = n->param;
            else if (walk(s, n->param, pos))
                return true;
        }
        if (next == 0) {
            if (n->catch_all != 0 && take_rest(s, n->catch_all, pos))
                return true;
            break;
        }
        id = next;
    }
    m->nparams = saved;
    return false;
}

static void search_init(search *s, const router *r, wv_str method, wv_str path, route_match *m)
{
    s->nodes = r->nodes;
    s->text = r->text;
    s->path = path.p;
    s->len = path.n;
    s->method = method;
    s->head = method.n == 4 && same_bytes(method.p, "HEAD", 4);
    s->collect = false;
    s->matched = false;
    s->saw_get = false;
    s->after = NULL;
    s->next = NULL;
    s->m = m;
    m->handler = NULL;
    m->pattern = NULL;
    m->nparams = 0;
    m->allow[0] = '\0';
}

/*
 * m->allow: every method routed at a pattern matching the path, plus
 * OPTIONS, plus HEAD if GET is there; sorted and ", "-separated. Built by
 * walking the tree once per method, each walk finding the smallest method
 * after the last one written: no list to bound, and a 405 is not the hot
 * path. A method that does not fit (with room kept for OPTIONS) is left out.
 */
static void build_allow(search *s)
{
    static const char options[] = "OPTIONS";
    char *out = s->m->allow;
    size_t used = 0;
    s->collect = true;
    s->after = NULL;
    for (;;) {
        s->next = NULL;
        walk(s, 0, 0);
        if (!s->matched)
            break;
        consider(s, options);
        if (s->saw_get)
            consider(s, "HEAD");
        if (s->next == NULL)
            break;
        const char *method = s->next;
        size_t len = strlen(method), sep = used > 0 ? 2 : 0;
        size_t keep = strcmp(method, options) < 0 ? 2 + sizeof(options) - 1 : 0;
        if (used + sep + len + keep < sizeof(s->m->allow)) {
            memcpy(out + used, ", ", sep);
            memcpy(out + used + sep, method, len);
            used += sep + len;
        }
        s->after = method;
    }
    out[used] = '\0';
}

int router_match(const router *r, wv_str method, wv_str path, route_match *m)
{
    search s;
    search_init(&s, r, method, path, m);
    if (path.n == 0 || path.p[0] != '/')
        return ROUTE_NOT_FOUND;
    if (walk(&s, 0, 0))
        return ROUTE_FOUND;
    if (!s.matched)
        return ROUTE_NOT_FOUND;
    build_allow(&s);
    return ROUTE_METHOD_NOT_ALLOWED;
}

int router_allow(const router *r, wv_str path, route_match *m)
{
    search s;
    search_init(&s, r, (wv_str){"", 0}, path, m);
    if (path.n == 0 || path.p[0] != '/')
        return ROUTE_NOT_FOUND;
    build_allow(&s);
    return s.matched ? ROUTE_FOUND : ROUTE_NOT_FOUND;
}
