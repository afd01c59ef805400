/*
 * bench/bench_http_router.c: the router's match time (src/http/router.c).
 *
 * A router with 50 routes shaped like a typical JSON API (static paths,
 * one- and two-parameter paths, catch-alls for files and docs) matches one
 * path over and over; the figure is nanoseconds per router_match.
 *
 *     bench_http_router [figure [n]]
 *
 * figures: `static` (GET /api/v1/auth/session), `params2`
 * (GET /api/v1/users/12345/posts/678, two parameters) and `notfound`
 * (GET /api/v1/unknown/thing, a 404). With a figure, prints one line
 * `value=<ns>`; without, all three in that order, one `value=` line each.
 * Human-readable details go to stderr. Each figure is the median of 5 timed
 * batches of n matches (default 2,000,000) after a warm-up, and every
 * match's result is checked, so a wrong answer fails the run (exit 1)
 * instead of producing a number.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/router.h"

#define BATCHES 5

static const struct {
    const char *method, *pattern;
} routes[] = {
    {"GET", "/"},
    {"GET", "/health"},
    {"GET", "/metrics"},
    {"GET", "/favicon.ico"},
    {"GET", "/robots.txt"},
    {"GET", "/async-endpoint"},
    {"GET", "/static/{path...}"},
    {"GET", "/docs/{path...}"},
    {"GET", "/ws"},
    {"POST", "/webhooks/{provider}"},
    {"POST", "/api/v1/auth/login"},
    {"POST", "/api/v1/auth/logout"},
    {"POST", "/api/v1/auth/refresh"},
    {"GET", "/api/v1/auth/session"},
    {"GET", "/api/v1/users"},
    {"POST", "/api/v1/users"},
    {"GET", "/api/v1/users/me"},
    {"GET", "/api/v1/users/{id}"},
    {"PUT", "/api/v1/users/{id}"},
    {"PATCH", "/api/v1/users/{id}"},
    {"DELETE", "/api/v1/users/{id}"},
    {"GET", "/api/v1/users/{id}/followers"},
    {"GET", "/api/v1/users/{id}/following"},
    {"GET", "/api/v1/users/{id}/posts"},
    {"POST", "/api/v1/users/{id}/posts"},
    {"GET", "/api/v1/users/{id}/posts/{post_id}"},
    {"PUT", "/api/v1/users/{id}/posts/{post_id}"},
    {"DELETE", "/api/v1/users/{id}/posts/{post_id}"},
    {"GET", "/api/v1/posts"},
    {"GET", "/api/v1/posts/{id}"},
    {"GET", "/api/v1/posts/{id}/comments"},
    {"POST", "/api/v1/posts/{id}/comments"},
    {"GET", "/api/v1/posts/{id}/comments/{comment_id}"},
    {"DELETE", "/api/v1/posts/{id}/comments/{comment_id}"},
    {"GET", "/api/v1/orgs/{org}"},
    {"GET", "/api/v1/orgs/{org}/members"},
    {"GET", "/api/v1/orgs/{org}/repos"},
    {"GET", "/api/v1/orgs/{org}/repos/{repo}"},
    {"GET", "/api/v1/orgs/{org}/repos/{repo}/contents/{path...}"},
    {"GET", "/api/v1/search"},
    {"GET", "/api/v1/tags/{tag}"},
    {"GET", "/api/v1/notifications"},
    {"GET", "/api/v1/notifications/{id}"},
    {"GET", "/api/v2/items"},
    {"POST", "/api/v2/items"},
    {"GET", "/api/v2/items/{id}"},
    {"GET", "/admin"},
    {"GET", "/admin/users"},
    {"GET", "/admin/users/{id}"},
    {"*", "/proxy/{rest...}"},
};

typedef struct figure {
    const char *name;
    const char *method;
    const char *path;
    int want;                 /* ROUTE_* */
    const char *want_pattern; /* for ROUTE_FOUND */
    int want_params;
} figure;

static const figure figures[] = {
    {"static", "GET", "/api/v1/auth/session", ROUTE_FOUND, "/api/v1/auth/session", 0},
    {"params2", "GET", "/api/v1/users/12345/posts/678", ROUTE_FOUND,
     "/api/v1/users/{id}/posts/{post_id}", 2},
    {"notfound", "GET", "/api/v1/unknown/thing", ROUTE_NOT_FOUND, NULL, 0},
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* n matches; returns how many gave the wrong answer. */
static long run_batch(const router *r, const figure *f, long n)
{
    wv_str method = {f->method, strlen(f->method)};
    wv_str path = {f->path, strlen(f->path)};
    long wrong = 0;
    for (long i = 0; i < n; i++) {
        route_match m;
        int rc = router_match(r, method, path, &m);
        wrong += rc != f->want || m.nparams != f->want_params;
    }
    return wrong;
}

static int measure(const router *r, const figure *f, long n)
{
    route_match m;
    wv_str method = {f->method, strlen(f->method)};
    wv_str path = {f->path, strlen(f->path)};
    int rc = router_match(r, method, path, &m);
    if (rc != f->want || (rc == ROUTE_FOUND && strcmp(m.pattern, f->want_pattern) != 0)) {
        fprintf(stderr, "bench_http_router %s: FAILED: %s %s gave %d (%s)\n", f->name, f->method,
                f->path, rc, rc == ROUTE_FOUND ? m.pattern : "-");
        return 1;
    }
    run_batch(r, f, n / 10 + 1); /* warm-up */
    double ns[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        int64_t t0 = now_ns();
        long wrong = run_batch(r, f, n);
        ns[b] = (double)(now_ns() - t0) / (double)n;
        if (wrong != 0) {
            fprintf(stderr, "bench_http_router %s: FAILED: %ld wrong answers\n", f->name, wrong);
            return 1;
        }
    }
    qsort(ns, BATCHES, sizeof(ns[0]), cmp_double);
    fprintf(stderr,
            "bench_http_router %s: %s %s among %zu routes: %.1f ns per match "
            "(median of %d x %ld; min %.1f, max %.1f)\n",
            f->name, f->method, f->path, sizeof(routes) / sizeof(routes[0]), ns[BATCHES / 2],
            BATCHES, n, ns[0], ns[BATCHES - 1]);
    printf("value=%.1f\n", ns[BATCHES / 2]);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 2000000;
    if (n <= 0) {
        fprintf(stderr, "usage: bench_http_router [static|params2|notfound [n]]\n");
        return 2;
    }
    router *r = router_new();
    if (r == NULL) {
        fprintf(stderr, "bench_http_router: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const char *why = NULL;
        int rc =
            router_add(r, routes[i].method, routes[i].pattern, (void *)(uintptr_t)(i + 1), &why);
        if (rc != 0) {
            fprintf(stderr, "bench_http_router: router_add(%s, %s): %d %s\n", routes[i].method,
                    routes[i].pattern, rc, why ? why : "");
            router_free(r);
            return 1;
        }
    }
    int status = 0;
    bool any = false;
    for (size_t i = 0; i < sizeof(figures) / sizeof(figures[0]); i++) {
        if (argc > 1 && strcmp(argv[1], figures[i].name) != 0)
            continue;
        any = true;
        status |= measure(r, &figures[i], n);
    }
    router_free(r);
    if (!any) {
        fprintf(stderr, "bench_http_router: unknown figure '%s' (static, params2, notfound)\n",
                argv[1]);
        return 2;
    }
    return status;
}
