/*
 * The request router (src/http/router.h): static, parameter and catch-all
 * segments, their priority and backtracking, methods (405 + Allow, HEAD
 * falling back to GET, "*" routes), pattern validation, and robustness on
 * hostile paths. Two tests check the tree against plain models: 1,000
 * generated routes, and random route sets compared with a brute-force
 * matcher written straight from the rules in router.h.
 *
 * The router is compiled into this test (not taken from libweave.a) with
 * its allocator redirected to the counting, failing one below, so that one
 * test can fail every allocation of router_add in turn (as nghttp2's
 * failmalloc does) and another can check that matching allocates nothing.
 * ROUTER_GROW_EXACT makes the router reallocate its arrays on every growth
 * instead of doubling them, so that every step of an insertion allocates
 * and can fail.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>

static long allocations;       /* calls so far */
static long fail_at = -1;      /* the call (counting from 0) that fails; -1: none */
static bool allocation_failed; /* fail_at was reached */

static bool allocation_fails(void)
{
    if (allocations++ != fail_at)
        return false;
    allocation_failed = true;
    return true;
}

static void *failing_malloc(size_t n)
{
    return allocation_fails() ? NULL : malloc(n);
}

static void *failing_calloc(size_t n, size_t size)
{
    return allocation_fails() ? NULL : calloc(n, size);
}

static void *failing_realloc(void *p, size_t n)
{
    return allocation_fails() ? NULL : realloc(p, n);
}

#define ROUTER_GROW_EXACT
#define malloc  failing_malloc
#define calloc  failing_calloc
#define realloc failing_realloc
#include "http/router.c"
#undef malloc
#undef calloc
#undef realloc

/* Handlers are opaque to the router: small integers make results readable. */
#define H(i) ((void *)(uintptr_t)(i))

static router *new_router(void)
{
    router *r = router_new();
    assert_non_null(r);
    return r;
}

static void add(router *r, const char *method, const char *pattern, uintptr_t handler)
{
    const char *why = NULL;
    int rc = router_add(r, method, pattern, H(handler), &why);
    if (rc != 0)
        fail_msg("router_add(%s, %s) = %d (%s)", method, pattern, rc, why ? why : "-");
}

static wv_str str(const char *s)
{
    return (wv_str){s, strlen(s)};
}

static int match(const router *r, const char *method, const char *path, route_match *m)
{
    return router_match(r, str(method), str(path), m);
}

/* The handler found for method + path, or 0 when there is none. */
static uintptr_t found(const router *r, const char *method, const char *path)
{
    route_match m;
    if (match(r, method, path, &m) != ROUTE_FOUND)
        return 0;
    return (uintptr_t)m.handler;
}

static void assert_slice(wv_str got, const char *want)
{
    assert_int_equal(got.n, strlen(want));
    assert_memory_equal(got.p, want, got.n);
}

static void assert_add_einval(const char *method, const char *pattern)
{
    router *r = new_router();
    const char *why = NULL;
    int rc = router_add(r, method, pattern, H(1), &why);
    if (rc != -EINVAL)
        fail_msg("router_add(%s, %s) = %d, want -EINVAL", method ? method : "NULL",
                 pattern ? pattern : "NULL", rc);
    assert_non_null(why);
    assert_true(strlen(why) > 0);
    router_free(r);
}

/* ------------------------------------------------------------ static */

static void test_static_route_matches_its_exact_path(void **state)
{
    router *r = new_router();
    add(r, "GET", "/async-endpoint", 1);
    route_match m;
    assert_int_equal(match(r, "GET", "/async-endpoint", &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(1));
    assert_string_equal(m.pattern, "/async-endpoint");
    assert_int_equal(m.nparams, 0);
    router_free(r);
}

static void test_static_routes_sharing_prefixes_each_match_their_own(void **state)
{
    router *r = new_router();
    add(r, "GET", "/api/users", 1);
    add(r, "GET", "/api/user", 2);
    add(r, "GET", "/api/users/me", 3);
    add(r, "GET", "/api", 4);
    add(r, "GET", "/apx", 5);
    assert_int_equal(found(r, "GET", "/api/users"), 1);
    assert_int_equal(found(r, "GET", "/api/user"), 2);
    assert_int_equal(found(r, "GET", "/api/users/me"), 3);
    assert_int_equal(found(r, "GET", "/api"), 4);
    assert_int_equal(found(r, "GET", "/apx"), 5);
    assert_int_equal(found(r, "GET", "/api/use"), 0);
    assert_int_equal(found(r, "GET", "/ap"), 0);
    router_free(r);
}

static void test_root_route_matches_only_the_root_path(void **state)
{
    router *r = new_router();
    add(r, "GET", "/", 1);
    assert_int_equal(found(r, "GET", "/"), 1);
    assert_int_equal(found(r, "GET", "/x"), 0);
    assert_int_equal(found(r, "GET", "//"), 0);
    router_free(r);
}

static void test_registration_order_does_not_change_matches(void **state)
{
    static const char *patterns[] = {
        "/a/b/c", "/a/{x}/d", "/a/b",    "/a/{x}", "/a/{x}/{rest...}",
        "/ab",    "/{y}/c",   "/a/bc/d", "/{y}",   "/a/",
    };
    static const char *paths[] = {
        "/a/b/c",  "/a/b/d",  "/a/b", "/a/q", "/a/b/e/f", "/ab",  "/z/c",
        "/a/bc/d", "/a/bc/e", "/z",   "/a/",  "/a",       "/abc", "/a/b/c/d",
    };
    router *fwd = new_router(), *rev = new_router();
    size_t n = ARRAY_LEN(patterns);
    for (size_t i = 0; i < n; i++) {
        add(fwd, "GET", patterns[i], i + 1);
        add(rev, "GET", patterns[n - 1 - i], n - i);
    }
    for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
        route_match a, b;
        int ra = match(fwd, "GET", paths[i], &a), rb = match(rev, "GET", paths[i], &b);
        assert_int_equal(ra, rb);
        if (ra == ROUTE_FOUND) {
            assert_ptr_equal(a.handler, b.handler);
            assert_int_equal(a.nparams, b.nparams);
        }
    }
    router_free(fwd);
    router_free(rev);
}

/* ------------------------------------------------------------ params */

static void test_param_value_is_an_exact_slice_of_the_path(void **state)
{
    router *r = new_router();
    add(r, "GET", "/users/{id}", 1);
    const char *path = "/users/42";
    route_match m;
    assert_int_equal(match(r, "GET", path, &m), ROUTE_FOUND);
    assert_string_equal(m.pattern, "/users/{id}");
    assert_int_equal(m.nparams, 1);
    assert_slice(m.names[0], "id");
    assert_ptr_equal(m.values[0].p, path + 7);
    assert_int_equal(m.values[0].n, 2);
    router_free(r);
}

static void test_multiple_params_are_returned_in_pattern_order(void **state)
{
    router *r = new_router();
    add(r, "GET", "/orgs/{org}/repos/{repo}/issues/{number}", 1);
    const char *path = "/orgs/weave/repos/core/issues/3";
    route_match m;
    assert_int_equal(match(r, "GET", path, &m), ROUTE_FOUND);
    assert_int_equal(m.nparams, 3);
    assert_slice(m.names[0], "org");
    assert_slice(m.names[1], "repo");
    assert_slice(m.names[2], "number");
    assert_ptr_equal(m.values[0].p, path + 6);
    assert_slice(m.values[0], "weave");
    assert_ptr_equal(m.values[1].p, path + 18);
    assert_slice(m.values[1], "core");
    assert_slice(m.values[2], "3");
    router_free(r);
}

static void test_param_names_come_from_the_route_that_matched(void **state)
{
    router *r = new_router();
    add(r, "GET", "/u/{id}", 1);
    add(r, "GET", "/u/{uid}/posts", 2);
    route_match m;
    assert_int_equal(match(r, "GET", "/u/7", &m), ROUTE_FOUND);
    assert_slice(m.names[0], "id");
    assert_int_equal(match(r, "GET", "/u/7/posts", &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(2));
    assert_slice(m.names[0], "uid");
    assert_slice(m.values[0], "7");
    router_free(r);
}

static void test_param_does_not_match_an_empty_segment(void **state)
{
    router *r = new_router();
    add(r, "GET", "/u/{id}", 1);
    add(r, "GET", "/u/{id}/posts", 2);
    add(r, "GET", "/{a}/{b}", 3);
    assert_int_equal(found(r, "GET", "/u/"), 0);
    assert_int_equal(found(r, "GET", "/u//posts"), 0);
    assert_int_equal(found(r, "GET", "//x"), 0);
    assert_int_equal(found(r, "GET", "/x/"), 0);
    assert_int_equal(found(r, "GET", "//"), 0);
    router_free(r);
}

static void test_param_does_not_match_across_a_slash(void **state)
{
    router *r = new_router();
    add(r, "GET", "/files/{name}", 1);
    assert_int_equal(found(r, "GET", "/files/a/b"), 0);
    router_free(r);
}

static void test_sixteen_params_are_all_returned(void **state)
{
    router *r = new_router();
    add(r, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/{j}/{k}/{l}/{m}/{n}/{o}/{p}", 1);
    route_match m;
    assert_int_equal(match(r, "GET", "/0/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15", &m), ROUTE_FOUND);
    assert_int_equal(m.nparams, ROUTER_MAX_PARAMS);
    assert_slice(m.names[15], "p");
    assert_slice(m.values[15], "15");
    assert_slice(m.values[10], "10");
    router_free(r);
}

/* --------------------------------------------------------- catch-all */

static void test_catch_all_matches_the_rest_with_its_slashes(void **state)
{
    router *r = new_router();
    add(r, "GET", "/static/{path...}", 1);
    const char *path = "/static/css/site/main.css";
    route_match m;
    assert_int_equal(match(r, "GET", path, &m), ROUTE_FOUND);
    assert_int_equal(m.nparams, 1);
    assert_slice(m.names[0], "path");
    assert_ptr_equal(m.values[0].p, path + 8);
    assert_slice(m.values[0], "css/site/main.css");
    router_free(r);
}

static void test_catch_all_matches_an_empty_rest(void **state)
{
    router *r = new_router();
    add(r, "GET", "/static/{path...}", 1);
    route_match m;
    assert_int_equal(match(r, "GET", "/static/", &m), ROUTE_FOUND);
    assert_int_equal(m.nparams, 1);
    assert_int_equal(m.values[0].n, 0);
    router_free(r);
}

static void test_catch_all_needs_the_slash_before_it(void **state)
{
    router *r = new_router();
    add(r, "GET", "/static/{path...}", 1);
    assert_int_equal(found(r, "GET", "/static"), 0);
    assert_int_equal(found(r, "GET", "/staticx"), 0);
    router_free(r);
}

static void test_catch_all_keeps_empty_segments_and_trailing_slash(void **state)
{
    router *r = new_router();
    add(r, "GET", "/f/{rest...}", 1);
    route_match m;
    assert_int_equal(match(r, "GET", "/f/a//b/", &m), ROUTE_FOUND);
    assert_slice(m.values[0], "a//b/");
    router_free(r);
}

static void test_catch_all_after_params_returns_all_values(void **state)
{
    router *r = new_router();
    add(r, "GET", "/repos/{owner}/{repo}/contents/{path...}", 1);
    route_match m;
    assert_int_equal(match(r, "GET", "/repos/a/b/contents/src/x.c", &m), ROUTE_FOUND);
    assert_int_equal(m.nparams, 3);
    assert_slice(m.names[2], "path");
    assert_slice(m.values[0], "a");
    assert_slice(m.values[1], "b");
    assert_slice(m.values[2], "src/x.c");
    router_free(r);
}

static void test_root_catch_all_matches_every_path(void **state)
{
    router *r = new_router();
    add(r, "GET", "/{all...}", 1);
    route_match m;
    assert_int_equal(match(r, "GET", "/", &m), ROUTE_FOUND);
    assert_int_equal(m.values[0].n, 0);
    assert_int_equal(match(r, "GET", "/a/b/c", &m), ROUTE_FOUND);
    assert_slice(m.values[0], "a/b/c");
    router_free(r);
}

/* ---------------------------------------------- priority, backtracking */

static void test_static_beats_param(void **state)
{
    router *r = new_router();
    add(r, "GET", "/users/{id}", 1);
    add(r, "GET", "/users/me", 2);
    route_match m;
    assert_int_equal(match(r, "GET", "/users/me", &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(2));
    assert_int_equal(m.nparams, 0);
    assert_int_equal(found(r, "GET", "/users/mee"), 1);
    assert_int_equal(found(r, "GET", "/users/m"), 1);
    router_free(r);
}

static void test_param_beats_catch_all(void **state)
{
    router *r = new_router();
    add(r, "GET", "/x/{rest...}", 1);
    add(r, "GET", "/x/{id}", 2);
    assert_int_equal(found(r, "GET", "/x/7"), 2);
    assert_int_equal(found(r, "GET", "/x/7/8"), 1);
    assert_int_equal(found(r, "GET", "/x/"), 1);
    router_free(r);
}

static void test_static_beats_catch_all_even_for_an_empty_rest(void **state)
{
    router *r = new_router();
    add(r, "GET", "/x/{rest...}", 1);
    add(r, "GET", "/x/", 2);
    assert_int_equal(found(r, "GET", "/x/"), 2);
    assert_int_equal(found(r, "GET", "/x/y"), 1);
    router_free(r);
}

static void test_failed_static_branch_backtracks_to_param(void **state)
{
    router *r = new_router();
    add(r, "GET", "/a/b/c", 1);
    add(r, "GET", "/a/{x}/d", 2);
    route_match m;
    assert_int_equal(match(r, "GET", "/a/b/d", &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(2));
    assert_slice(m.values[0], "b");
    assert_int_equal(found(r, "GET", "/a/b/c"), 1);
    router_free(r);
}

static void test_failed_param_branch_backtracks_to_catch_all(void **state)
{
    router *r = new_router();
    add(r, "GET", "/a/{x}/{y}/z", 1);
    add(r, "GET", "/a/{rest...}", 2);
    route_match m;
    assert_int_equal(match(r, "GET", "/a/1/2/q", &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(2));
    /* the abandoned branch's values are gone */
    assert_int_equal(m.nparams, 1);
    assert_slice(m.names[0], "rest");
    assert_slice(m.values[0], "1/2/q");
    router_free(r);
}

static void test_static_text_that_is_a_segment_prefix_does_not_match(void **state)
{
    router *r = new_router();
    add(r, "GET", "/ab", 1);
    add(r, "GET", "/{x}", 2);
    route_match m;
    assert_int_equal(match(r, "GET", "/abc", &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(2));
    assert_slice(m.values[0], "abc");
    router_free(r);
}

static void test_backtracking_reaches_a_deep_lower_priority_route(void **state)
{
    router *r = new_router();
    add(r, "GET", "/a/b/c/d/e", 1);
    add(r, "GET", "/a/{p}/c/{q}/f", 2);
    add(r, "GET", "/{s}/b/{t}/d/g", 3);
    assert_int_equal(found(r, "GET", "/a/b/c/d/f"), 2);
    assert_int_equal(found(r, "GET", "/a/b/c/d/g"), 3);
    assert_int_equal(found(r, "GET", "/a/b/c/d/h"), 0);
    router_free(r);
}

/* ----------------------------------------------------- 404, 405, Allow */

static void test_unknown_path_is_not_found(void **state)
{
    router *r = new_router();
    add(r, "GET", "/users/{id}", 1);
    route_match m;
    assert_int_equal(match(r, "GET", "/groups/1", &m), ROUTE_NOT_FOUND);
    assert_null(m.handler);
    assert_null(m.pattern);
    assert_int_equal(m.nparams, 0);
    assert_string_equal(m.allow, "");
    router_free(r);
}

static void test_empty_router_finds_nothing(void **state)
{
    router *r = new_router();
    route_match m;
    assert_int_equal(match(r, "GET", "/", &m), ROUTE_NOT_FOUND);
    router_free(r);
}

static void test_path_without_leading_slash_is_not_found(void **state)
{
    router *r = new_router();
    add(r, "GET", "/{all...}", 1);
    route_match m;
    assert_int_equal(match(r, "GET", "x", &m), ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "", &m), ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "OPTIONS", "*", &m), ROUTE_NOT_FOUND);
    router_free(r);
}

static void test_wrong_method_is_method_not_allowed_with_exact_allow(void **state)
{
    router *r = new_router();
    add(r, "POST", "/items/{id}", 1);
    add(r, "GET", "/items/{id}", 2);
    add(r, "DELETE", "/items/{id}", 3);
    route_match m;
    assert_int_equal(match(r, "PUT", "/items/9", &m), ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "DELETE, GET, HEAD, OPTIONS, POST");
    assert_null(m.handler);
    assert_null(m.pattern);
    assert_int_equal(m.nparams, 0);
    router_free(r);
}

static void test_allow_always_has_options_and_has_head_only_with_get(void **state)
{
    router *r = new_router();
    add(r, "POST", "/upload", 1);
    add(r, "OPTIONS", "/o", 2);
    add(r, "PUT", "/o", 3);
    route_match m;
    assert_int_equal(match(r, "GET", "/upload", &m), ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "OPTIONS, POST");
    assert_int_equal(match(r, "GET", "/o", &m), ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "OPTIONS, PUT");
    router_free(r);
}

static void test_method_mismatch_falls_through_to_a_lower_priority_route(void **state)
{
    router *r = new_router();
    add(r, "GET", "/users/me", 1);
    add(r, "DELETE", "/users/{id}", 2);
    route_match m;
    assert_int_equal(match(r, "DELETE", "/users/me", &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(2));
    assert_slice(m.values[0], "me");
    router_free(r);
}

static void test_allow_is_the_union_over_every_pattern_matching_the_path(void **state)
{
    router *r = new_router();
    add(r, "GET", "/users/me", 1);
    add(r, "DELETE", "/users/{id}", 2);
    add(r, "PATCH", "/users/{rest...}", 3);
    add(r, "POST", "/users/{id}/x", 4); /* does not match the path */
    route_match m;
    assert_int_equal(match(r, "PUT", "/users/me", &m), ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "DELETE, GET, HEAD, OPTIONS, PATCH");
    assert_int_equal(match(r, "PUT", "/users/7", &m), ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "DELETE, OPTIONS, PATCH");
    router_free(r);
}

static void test_allow_leaves_out_whole_methods_that_do_not_fit(void **state)
{
    router *r = new_router();
    char method[40];
    for (char c = 'A'; c <= 'E'; c++) {
        memset(method, c, 30);
        method[30] = '\0';
        add(r, method, "/x", (uintptr_t)c);
    }
    route_match m;
    assert_int_equal(match(r, "GET", "/x", &m), ROUTE_METHOD_NOT_ALLOWED);
    assert_true(strlen(m.allow) < sizeof(m.allow));
    /* "AAA..., BBB..., OPTIONS": a third 30-byte method would pass 95 bytes */
    assert_int_equal(strlen(m.allow), 30 + 2 + 30 + 2 + 7);
    assert_memory_equal(m.allow, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA, BBBB", 36);
    assert_string_equal(m.allow + 64, "OPTIONS");
    router_free(r);
}

static void test_router_allow_lists_the_methods_of_a_path(void **state)
{
    router *r = new_router();
    add(r, "GET", "/a/{id}", 1);
    add(r, "PUT", "/a/{id}", 2);
    add(r, "POST", "/a/new", 3);
    route_match m;
    assert_int_equal(router_allow(r, str("/a/new"), &m), ROUTE_FOUND);
    assert_string_equal(m.allow, "GET, HEAD, OPTIONS, POST, PUT");
    assert_int_equal(router_allow(r, str("/a/1"), &m), ROUTE_FOUND);
    assert_string_equal(m.allow, "GET, HEAD, OPTIONS, PUT");
    router_free(r);
}

static void test_router_allow_for_an_unknown_path_is_not_found(void **state)
{
    router *r = new_router();
    add(r, "GET", "/a", 1);
    route_match m;
    assert_int_equal(router_allow(r, str("/b"), &m), ROUTE_NOT_FOUND);
    assert_string_equal(m.allow, "");
    router_free(r);
}

static void test_router_allow_finds_a_path_with_only_a_star_route(void **state)
{
    router *r = new_router();
    add(r, "*", "/any", 1);
    route_match m;
    assert_int_equal(router_allow(r, str("/any"), &m), ROUTE_FOUND);
    assert_string_equal(m.allow, "OPTIONS");
    router_free(r);
}

/* --------------------------------------------------------- HEAD and "*" */

static void test_head_falls_back_to_the_get_route(void **state)
{
    router *r = new_router();
    add(r, "GET", "/page/{id}", 1);
    route_match m;
    assert_int_equal(match(r, "HEAD", "/page/3", &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(1));
    assert_slice(m.values[0], "3");
    router_free(r);
}

static void test_head_route_beats_the_get_fallback(void **state)
{
    router *r = new_router();
    add(r, "GET", "/page", 1);
    add(r, "HEAD", "/page", 2);
    assert_int_equal(found(r, "HEAD", "/page"), 2);
    assert_int_equal(found(r, "GET", "/page"), 1);
    router_free(r);
}

static void test_head_without_get_is_method_not_allowed(void **state)
{
    router *r = new_router();
    add(r, "POST", "/page", 1);
    route_match m;
    assert_int_equal(match(r, "HEAD", "/page", &m), ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(m.allow, "OPTIONS, POST");
    router_free(r);
}

static void test_star_route_matches_any_method(void **state)
{
    router *r = new_router();
    add(r, "*", "/proxy/{rest...}", 1);
    assert_int_equal(found(r, "GET", "/proxy/a"), 1);
    assert_int_equal(found(r, "BREW", "/proxy/a"), 1);
    assert_int_equal(found(r, "OPTIONS", "/proxy/"), 1);
    router_free(r);
}

static void test_exact_method_beats_the_star_route(void **state)
{
    router *r = new_router();
    add(r, "*", "/x", 1);
    add(r, "GET", "/x", 2);
    assert_int_equal(found(r, "GET", "/x"), 2);
    assert_int_equal(found(r, "HEAD", "/x"), 2);
    assert_int_equal(found(r, "POST", "/x"), 1);
    router_free(r);
}

static void test_methods_are_case_sensitive(void **state)
{
    router *r = new_router();
    add(r, "GET", "/x", 1);
    route_match m;
    assert_int_equal(match(r, "get", "/x", &m), ROUTE_METHOD_NOT_ALLOWED);
    router_free(r);
}

/* ------------------------------------------------------ trailing slash */

static void test_trailing_slash_is_significant(void **state)
{
    router *r = new_router();
    add(r, "GET", "/x", 1);
    add(r, "GET", "/y/", 2);
    add(r, "GET", "/u/{id}", 3);
    assert_int_equal(found(r, "GET", "/x"), 1);
    assert_int_equal(found(r, "GET", "/x/"), 0);
    assert_int_equal(found(r, "GET", "/y/"), 2);
    assert_int_equal(found(r, "GET", "/y"), 0);
    assert_int_equal(found(r, "GET", "/u/1/"), 0);
    router_free(r);
}

static void test_routes_with_and_without_trailing_slash_are_distinct(void **state)
{
    router *r = new_router();
    add(r, "GET", "/x", 1);
    add(r, "GET", "/x/", 2);
    assert_int_equal(found(r, "GET", "/x"), 1);
    assert_int_equal(found(r, "GET", "/x/"), 2);
    router_free(r);
}

/* ---------------------------------------------------------- router_add */

static void test_same_method_and_pattern_twice_is_eexist(void **state)
{
    router *r = new_router();
    add(r, "GET", "/users/{id}", 1);
    assert_int_equal(router_add(r, "GET", "/users/{id}", H(2), NULL), -EEXIST);
    add(r, "*", "/users/{id}", 3);
    assert_int_equal(router_add(r, "*", "/users/{id}", H(4), NULL), -EEXIST);
    assert_int_equal(found(r, "GET", "/users/1"), 1); /* the first one stays */
    router_free(r);
}

static void test_patterns_differing_only_in_param_names_are_eexist(void **state)
{
    router *r = new_router();
    add(r, "GET", "/u/{id}", 1);
    assert_int_equal(router_add(r, "GET", "/u/{uid}", H(2), NULL), -EEXIST);
    add(r, "GET", "/f/{path...}", 3);
    assert_int_equal(router_add(r, "GET", "/f/{rest...}", H(4), NULL), -EEXIST);
    router_free(r);
}

static void test_same_pattern_with_other_methods_is_accepted(void **state)
{
    router *r = new_router();
    add(r, "GET", "/u/{id}", 1);
    add(r, "PUT", "/u/{uid}", 2);
    route_match m;
    assert_int_equal(match(r, "PUT", "/u/5", &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(2));
    assert_slice(m.names[0], "uid");
    assert_string_equal(m.pattern, "/u/{uid}");
    router_free(r);
}

static void test_add_rejects_a_pattern_without_leading_slash(void **state)
{
    assert_add_einval("GET", "users");
    assert_add_einval("GET", "");
    assert_add_einval("GET", "{id}");
    assert_add_einval("GET", NULL);
}

static void test_add_rejects_an_empty_param_name(void **state)
{
    assert_add_einval("GET", "/a/{}");
    assert_add_einval("GET", "/a/{...}");
    assert_add_einval("GET", "/{}/b");
}

static void test_add_rejects_a_bad_param_name(void **state)
{
    assert_add_einval("GET", "/a/{1id}");
    assert_add_einval("GET", "/a/{user-id}");
    assert_add_einval("GET", "/a/{user.id}");
    assert_add_einval("GET", "/a/{id..}");
    assert_add_einval("GET", "/a/{....}");
    assert_add_einval("GET", "/a/{a b}");
}

static void test_add_rejects_braces_that_are_not_a_whole_segment(void **state)
{
    assert_add_einval("GET", "/a{b}");
    assert_add_einval("GET", "/{a}b");
    assert_add_einval("GET", "/x/{a}{b}");
    assert_add_einval("GET", "/{a");
    assert_add_einval("GET", "/a}");
    assert_add_einval("GET", "/{{a}}");
    assert_add_einval("GET", "/{a/b}");
}

static void test_add_rejects_a_catch_all_that_is_not_last(void **state)
{
    assert_add_einval("GET", "/{rest...}/x");
    assert_add_einval("GET", "/a/{rest...}/");
    assert_add_einval("GET", "/a/{rest...}/{id}");
}

static void test_add_rejects_a_duplicate_param_name(void **state)
{
    assert_add_einval("GET", "/{id}/{id}");
    assert_add_einval("GET", "/{id}/x/{id...}");
}

static void test_add_rejects_more_than_max_params(void **state)
{
    char pattern[256] = "";
    for (int i = 0; i <= ROUTER_MAX_PARAMS; i++)
        sprintf(pattern + strlen(pattern), "/{p%d}", i);
    assert_add_einval("GET", pattern);
}

static void test_add_rejects_bytes_never_in_a_request_path(void **state)
{
    assert_add_einval("GET", "/a b");
    assert_add_einval("GET", "/search?q");
    assert_add_einval("GET", "/page#top");
    assert_add_einval("GET", "/caf\xc3\xa9");
    assert_add_einval("GET", "/a\tb");
    assert_add_einval("GET", "/a\x7f");
}

static void test_add_rejects_a_bad_method(void **state)
{
    assert_add_einval("", "/a");
    assert_add_einval("GE T", "/a");
    assert_add_einval("GET\r\n", "/a");
    assert_add_einval("GET/", "/a");
    assert_add_einval(NULL, "/a");
}

static void test_add_rejects_a_null_handler(void **state)
{
    router *r = new_router();
    const char *why = NULL;
    assert_int_equal(router_add(r, "GET", "/a", NULL, &why), -EINVAL);
    assert_non_null(why);
    router_free(r);
}

static void test_rejected_add_registers_nothing(void **state)
{
    router *r = new_router();
    assert_int_equal(router_add(r, "GET", "/a/{x}/{x}", H(1), NULL), -EINVAL);
    assert_int_equal(router_add(r, "GET", "/b/{rest...}/c", H(1), NULL), -EINVAL);
    route_match m;
    assert_int_equal(match(r, "GET", "/a/1/2", &m), ROUTE_NOT_FOUND);
    assert_int_equal(match(r, "GET", "/b/q/c", &m), ROUTE_NOT_FOUND);
    router_free(r);
}

static void test_pattern_and_method_are_copied(void **state)
{
    router *r = new_router();
    char method[8] = "PATCH", pattern[32] = "/things/{thing}";
    add(r, method, pattern, 1);
    memset(method, 'X', sizeof(method) - 1);
    memset(pattern, 'X', sizeof(pattern) - 1);
    route_match m;
    assert_int_equal(match(r, "PATCH", "/things/t", &m), ROUTE_FOUND);
    assert_string_equal(m.pattern, "/things/{thing}");
    assert_slice(m.names[0], "thing");
    router_free(r);
}

/* --------------------------------------------------- generated routes */

#define NGENERATED 1000

/* Route i and a path that must reach it. Three shapes, interleaved so that
 * they share prefixes ("/s1/..." and "/s10/..."): static, two parameters,
 * parameter + catch-all. */
static void generated_route(int i, char *pattern, char *path, size_t size)
{
    switch (i % 3) {
    case 0:
        snprintf(pattern, size, "/s%d/leaf%d", i, i);
        snprintf(path, size, "/s%d/leaf%d", i, i);
        break;
    case 1:
        snprintf(pattern, size, "/p%d/{a}/leaf%d/{b}", i, i);
        snprintf(path, size, "/p%d/A%d/leaf%d/B%d", i, i, i, i);
        break;
    default:
        snprintf(pattern, size, "/c%d/{a}/files/{rest...}", i);
        snprintf(path, size, "/c%d/A%d/files/x/y%d", i, i, i);
        break;
    }
}

static router *generated_router(void)
{
    router *r = new_router();
    char pattern[96], path[96];
    for (int i = 0; i < NGENERATED; i++) {
        generated_route(i, pattern, path, sizeof(pattern));
        add(r, i % 2 ? "GET" : "POST", pattern, (uintptr_t)i + 1);
    }
    return r;
}

static void test_thousand_generated_routes_match_their_own_paths(void **state)
{
    router *r = generated_router();
    char pattern[96], path[96], value[32];
    for (int i = 0; i < NGENERATED; i++) {
        generated_route(i, pattern, path, sizeof(pattern));
        route_match m;
        assert_int_equal(match(r, i % 2 ? "GET" : "POST", path, &m), ROUTE_FOUND);
        assert_ptr_equal(m.handler, H((uintptr_t)i + 1));
        assert_string_equal(m.pattern, pattern);
        if (i % 3 != 0) {
            assert_int_equal(m.nparams, 2);
            snprintf(value, sizeof(value), "A%d", i);
            assert_slice(m.values[0], value);
        }
        /* the other method: 405 naming this route's method */
        assert_int_equal(match(r, i % 2 ? "PUT" : "GET", path, &m), ROUTE_METHOD_NOT_ALLOWED);
        assert_string_equal(m.allow, i % 2 ? "GET, HEAD, OPTIONS" : "OPTIONS, POST");
    }
    router_free(r);
}

static void test_near_misses_of_generated_routes_are_not_found(void **state)
{
    router *r = generated_router();
    for (int i = 0; i < NGENERATED; i++) {
        char misses[4][128];
        switch (i % 3) {
        case 0:
            snprintf(misses[0], 128, "/s%d/leaf%dx", i, i);
            snprintf(misses[1], 128, "/s%d/leaf%d/", i, i);
            snprintf(misses[2], 128, "/s%d/leaf", i);
            snprintf(misses[3], 128, "/s%dx/leaf%d", i, i);
            break;
        case 1:
            snprintf(misses[0], 128, "/p%d/A%d/leaf%d/", i, i, i);        /* empty {b} */
            snprintf(misses[1], 128, "/p%d/A%d/leaf%d/B%d/", i, i, i, i); /* trailing slash */
            snprintf(misses[2], 128, "/p%d/A%d/lea%d/B%d", i, i, i, i);
            snprintf(misses[3], 128, "/p%d//leaf%d/B%d", i, i, i); /* empty {a} */
            break;
        default:
            snprintf(misses[0], 128, "/c%d/A%d/files", i, i); /* no '/' before the rest */
            snprintf(misses[1], 128, "/c%d/A%d/file/x", i, i);
            snprintf(misses[2], 128, "/c%d//files/x", i);
            snprintf(misses[3], 128, "/c%dx/A%d/files/x", i, i);
            break;
        }
        for (size_t k = 0; k < ARRAY_LEN(misses); k++) {
            route_match m;
            int rc = match(r, i % 2 ? "GET" : "POST", misses[k], &m);
            if (rc != ROUTE_NOT_FOUND)
                fail_msg("%s: %d (%s), want ROUTE_NOT_FOUND", misses[k], rc,
                         m.pattern ? m.pattern : "-");
        }
    }
    router_free(r);
}

/* ---------------------------------------------- brute-force reference */

/* Random route sets over a tiny alphabet, so that patterns overlap a lot,
 * matched by the tree and by a model that tries every route: the best
 * route is the one whose segment kinds (static 0 < param 1 < catch-all 2)
 * are lexicographically smallest among the routes that take the method; a
 * 405 lists the methods of every route matching the path. */

#define REF_ROUTES 24
#define REF_SEGS   4

typedef struct ref_route {
    char pattern[64];
    int nsegs;
    char segs[REF_SEGS][16]; /* static text, or "{x}" / "{x...}" forms */
    int kinds[REF_SEGS];
    const char *method;
    uintptr_t handler;
} ref_route;

static uint64_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(rng_state >> 33);
}

static void random_route(ref_route *rt, int index)
{
    static const char *statics[] = {"a", "b", "ab", ""};
    static const char *methods[] = {"GET", "POST", "HEAD", "*", "GET", "PUT"};
    rt->nsegs = 1 + (int)(rng() % REF_SEGS);
    rt->pattern[0] = '\0';
    for (int s = 0; s < rt->nsegs; s++) {
        uint32_t roll = rng() % 10;
        bool last = s == rt->nsegs - 1;
        if (roll < 6) {
            rt->kinds[s] = 0;
            snprintf(rt->segs[s], sizeof(rt->segs[s]), "%s", statics[rng() % 4]);
        } else if (roll < 9 || !last) {
            rt->kinds[s] = 1;
            snprintf(rt->segs[s], sizeof(rt->segs[s]), "{p%d}", s);
        } else {
            rt->kinds[s] = 2;
            snprintf(rt->segs[s], sizeof(rt->segs[s]), "{p%d...}", s);
        }
        strcat(rt->pattern, "/");
        strcat(rt->pattern, rt->segs[s]);
    }
    rt->method = methods[rng() % ARRAY_LEN(methods)];
    rt->handler = (uintptr_t)index + 1;
}

static void random_path(char *path, size_t size)
{
    static const char *segs[] = {"a", "b", "ab", "", "c", "abc"};
    int n = 1 + (int)(rng() % (REF_SEGS + 1));
    path[0] = '\0';
    for (int s = 0; s < n; s++) {
        strncat(path, "/", size - strlen(path) - 1);
        strncat(path, segs[rng() % ARRAY_LEN(segs)], size - strlen(path) - 1);
    }
}

/* Does rt's pattern match path? Fills values like the router would. */
static bool ref_path_matches(const ref_route *rt, const char *path, wv_str *values, int *nvalues)
{
    const char *p = path; /* at a '/' */
    *nvalues = 0;
    for (int s = 0; s < rt->nsegs; s++) {
        if (*p != '/')
            return false;
        const char *seg = p + 1;
        if (rt->kinds[s] == 2) {
            values[(*nvalues)++] = (wv_str){seg, strlen(seg)};
            return true;
        }
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if (rt->kinds[s] == 0) {
            if (len != strlen(rt->segs[s]) || memcmp(seg, rt->segs[s], len) != 0)
                return false;
        } else {
            if (len == 0)
                return false;
            values[(*nvalues)++] = (wv_str){seg, len};
        }
        p = seg + len;
    }
    return *p == '\0';
}

static bool ref_takes(const ref_route *routes, int n, const ref_route *rt, const char *method)
{
    if (strcmp(rt->method, method) == 0)
        return true;
    /* same shape = same node: does it have the exact method / GET for HEAD? */
    bool exact = false, get = false;
    for (int i = 0; i < n; i++) {
        const ref_route *o = &routes[i];
        if (o->nsegs != rt->nsegs)
            continue;
        bool same = true;
        for (int s = 0; s < rt->nsegs && same; s++)
            same = o->kinds[s] == rt->kinds[s] &&
                   (o->kinds[s] != 0 || strcmp(o->segs[s], rt->segs[s]) == 0);
        if (!same)
            continue;
        exact |= strcmp(o->method, method) == 0;
        get |= strcmp(o->method, "GET") == 0;
    }
    if (exact)
        return false;
    if (strcmp(method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)
        return true;
    bool head_via_get = strcmp(method, "HEAD") == 0 && get;
    return strcmp(rt->method, "*") == 0 && !head_via_get;
}

static int ref_kind_cmp(const ref_route *a, const ref_route *b)
{
    for (int s = 0; s < a->nsegs && s < b->nsegs; s++) {
        if (a->kinds[s] != b->kinds[s])
            return a->kinds[s] - b->kinds[s];
    }
    return 0;
}

/* The reference's answer; *best set for ROUTE_FOUND. allow: space-separated
 * sorted methods (without OPTIONS/HEAD additions), for 405. */
static int ref_match(const ref_route *routes, int n, const char *method, const char *path,
                     const ref_route **best, bool *any_get, char methods[][16], int *nmethods)
{
    wv_str values[REF_SEGS];
    int nvalues;
    bool matched = false;
    *best = NULL;
    *any_get = false;
    *nmethods = 0;
    for (int i = 0; i < n; i++) {
        const ref_route *rt = &routes[i];
        if (!ref_path_matches(rt, path, values, &nvalues))
            continue;
        matched = true;
        if (strcmp(rt->method, "*") != 0) {
            bool seen = false;
            for (int k = 0; k < *nmethods; k++)
                seen |= strcmp(methods[k], rt->method) == 0;
            if (!seen)
                snprintf(methods[(*nmethods)++], 16, "%s", rt->method);
            *any_get |= strcmp(rt->method, "GET") == 0;
        }
        if (ref_takes(routes, n, rt, method) && (*best == NULL || ref_kind_cmp(rt, *best) < 0))
            *best = rt;
    }
    if (*best != NULL)
        return ROUTE_FOUND;
    return matched ? ROUTE_METHOD_NOT_ALLOWED : ROUTE_NOT_FOUND;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static void ref_allow(char methods[][16], int n, bool any_get, char *out, size_t size)
{
    snprintf(methods[n++], 16, "OPTIONS");
    if (any_get)
        snprintf(methods[n++], 16, "HEAD");
    qsort(methods, (size_t)n, 16, cmp_cstr);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i > 0 && strcmp(methods[i], methods[i - 1]) == 0)
            continue;
        if (out[0] != '\0')
            strncat(out, ", ", size - strlen(out) - 1);
        strncat(out, methods[i], size - strlen(out) - 1);
    }
}

static void test_matches_agree_with_a_brute_force_reference(void **state)
{
    static const char *methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};
    rng_state = 12345;
    for (int round = 0; round < 400; round++) {
        ref_route routes[REF_ROUTES];
        int n = 0;
        router *r = new_router();
        for (int i = 0; i < REF_ROUTES; i++) {
            random_route(&routes[n], n);
            int rc = router_add(r, routes[n].method, routes[n].pattern, H(routes[n].handler), NULL);
            if (rc == -EEXIST)
                continue; /* same shape and method as an earlier route */
            assert_int_equal(rc, 0);
            n++;
        }
        for (int q = 0; q < 60; q++) {
            char path[64];
            random_path(path, sizeof(path));
            const char *method = methods[rng() % ARRAY_LEN(methods)];
            const ref_route *best;
            bool any_get;
            char allowed[REF_ROUTES + 2][16];
            int nallowed;
            int want = ref_match(routes, n, method, path, &best, &any_get, allowed, &nallowed);
            route_match m;
            int got = match(r, method, path, &m);
            if (got != want)
                fail_msg("round %d: %s %s: router %d, reference %d", round, method, path, got,
                         want);
            if (want == ROUTE_FOUND) {
                if ((uintptr_t)m.handler != best->handler)
                    fail_msg("round %d: %s %s: router took %s, reference %s", round, method, path,
                             m.pattern, best->pattern);
                wv_str values[REF_SEGS];
                int nvalues;
                ref_path_matches(best, path, values, &nvalues);
                assert_int_equal(m.nparams, nvalues);
                for (int k = 0; k < nvalues; k++) {
                    assert_ptr_equal(m.values[k].p, values[k].p);
                    assert_int_equal(m.values[k].n, values[k].n);
                }
            } else if (want == ROUTE_METHOD_NOT_ALLOWED) {
                char allow[256];
                ref_allow(allowed, nallowed, any_get, allow, sizeof(allow));
                assert_string_equal(m.allow, allow);
            }
        }
        router_free(r);
    }
}

/* --------------------------------------------------- hostile paths */

static void test_percent_encoded_bytes_are_matched_literally(void **state)
{
    router *r = new_router();
    add(r, "GET", "/a%2Fb", 1);
    add(r, "GET", "/caf%C3%A9", 2);
    add(r, "GET", "/files/{name}", 3);
    assert_int_equal(found(r, "GET", "/a%2Fb"), 1);
    assert_int_equal(found(r, "GET", "/a/b"), 0);
    assert_int_equal(found(r, "GET", "/a%2fb"), 0);
    assert_int_equal(found(r, "GET", "/caf%C3%A9"), 2);
    assert_int_equal(found(r, "GET", "/caf%c3%a9"), 0);
    route_match m;
    assert_int_equal(match(r, "GET", "/files/a%2Fb%20c", &m), ROUTE_FOUND);
    assert_slice(m.values[0], "a%2Fb%20c");
    router_free(r);
}

static void test_64k_path_does_not_crash(void **state)
{
    router *r = new_router();
    add(r, "GET", "/api/users/{id}", 1);
    add(r, "GET", "/api/{a}/{b}/x", 2);
    add(r, "GET", "/files/{rest...}", 3);
    size_t n = 64 * 1024;
    char *path = malloc(n + 1);
    assert_non_null(path);
    memset(path, 'a', n);
    path[n] = '\0';
    memcpy(path, "/api/users/", 11);
    route_match m;
    assert_int_equal(match(r, "GET", path, &m), ROUTE_FOUND); /* one huge {id} */
    assert_int_equal(m.values[0].n, n - 11);
    path[20] = '/';
    assert_int_equal(match(r, "GET", path, &m), ROUTE_NOT_FOUND);
    memcpy(path, "/files/", 7);
    assert_int_equal(match(r, "GET", path, &m), ROUTE_FOUND);
    assert_int_equal(m.values[0].n, n - 7);
    path[0] = 'x';
    assert_int_equal(match(r, "GET", path, &m), ROUTE_NOT_FOUND);
    free(path);
    router_free(r);
}

static void test_thousand_segment_path_does_not_crash(void **state)
{
    router *r = new_router();
    add(r, "GET", "/a/{x}/a", 1);
    add(r, "GET", "/{x}/{y}/{z}", 2);
    add(r, "GET", "/a/a/{rest...}", 3);
    add(r, "GET", "/b/{rest...}", 4);
    char *path = malloc(2 * 1000 + 1);
    assert_non_null(path);
    for (int i = 0; i < 1000; i++)
        memcpy(path + 2 * i, "/a", 2);
    path[2000] = '\0';
    route_match m;
    assert_int_equal(match(r, "GET", path, &m), ROUTE_FOUND);
    assert_ptr_equal(m.handler, H(3));
    assert_int_equal(m.values[0].n, 2000 - 5);
    path[1] = 'c';
    assert_int_equal(match(r, "GET", path, &m), ROUTE_NOT_FOUND);
    for (int i = 0; i < 1000; i++)
        path[2 * i] = '/', path[2 * i + 1] = '/'; /* "//////...": only empty segments */
    assert_int_equal(match(r, "GET", path, &m), ROUTE_NOT_FOUND);
    free(path);
    router_free(r);
}

/* ------------------------------------------------------ allocation */

static const struct {
    const char *method, *pattern;
} oom_routes[] = {
    {"GET", "/"},
    {"GET", "/api/users"},
    {"POST", "/api/users"},
    {"GET", "/api/user"},
    {"GET", "/api/users/{id}"},
    {"DELETE", "/api/users/{id}"},
    {"GET", "/api/users/{id}/posts/{post}"},
    {"GET", "/api/users/me"},
    {"*", "/api/proxy/{rest...}"},
    {"GET", "/api/{version}/status"},
    {"GET", "/a"},
    {"GET", "/b"},
    {"GET", "/c"},
    {"GET", "/d"},
    {"GET", "/static/{path...}"},
};

static const char *oom_paths[] = {
    "/",
    "/api/users",
    "/api/user",
    "/api/users/7",
    "/api/users/7/posts/8",
    "/api/users/me",
    "/api/proxy/x/y",
    "/api/v2/status",
    "/a",
    "/b",
    "/c",
    "/d",
    "/static/",
    "/static/x/y",
    "/api",
    "/nope",
};

/* Do r and want answer every method and path of the list alike? */
static void assert_same_answers(const router *r, const router *want)
{
    static const char *methods[] = {"GET", "HEAD", "POST", "DELETE", "PUT"};
    for (size_t p = 0; p < ARRAY_LEN(oom_paths); p++) {
        for (size_t k = 0; k < ARRAY_LEN(methods); k++) {
            route_match a, b;
            int ra = match(r, methods[k], oom_paths[p], &a);
            int rb = match(want, methods[k], oom_paths[p], &b);
            if (ra != rb)
                fail_msg("%s %s: %d, want %d", methods[k], oom_paths[p], ra, rb);
            if (ra == ROUTE_FOUND) {
                assert_ptr_equal(a.handler, b.handler);
                assert_int_equal(a.nparams, b.nparams);
            } else if (ra == ROUTE_METHOD_NOT_ALLOWED) {
                assert_string_equal(a.allow, b.allow);
            }
        }
    }
}

/* Fail allocation number fail_at while adding oom_routes: every router_add
 * returns 0 or -ENOMEM, the router answers exactly like one built from the
 * routes that were accepted, and it still takes the others afterwards.
 * Returns whether the failure happened (false once fail_at is past the
 * last allocation). */
static bool oom_run(void)
{
    size_t nroutes = ARRAY_LEN(oom_routes);
    bool added[ARRAY_LEN(oom_routes)];
    allocations = 0;
    allocation_failed = false;
    router *r = router_new();
    if (r == NULL) {
        assert_true(allocation_failed);
        return true;
    }
    for (size_t i = 0; i < nroutes; i++) {
        const char *why = NULL;
        int rc = router_add(r, oom_routes[i].method, oom_routes[i].pattern, H(i + 1), &why);
        if (rc != 0 && rc != -ENOMEM)
            fail_msg("fail_at %ld: router_add(%s) = %d", fail_at, oom_routes[i].pattern, rc);
        assert_true(rc == 0 || why != NULL);
        added[i] = rc == 0;
    }
    bool failed = allocation_failed;
    long at = fail_at;
    fail_at = -1;
    router *want = new_router(), *full = new_router();
    for (size_t i = 0; i < nroutes; i++) {
        if (added[i])
            add(want, oom_routes[i].method, oom_routes[i].pattern, i + 1);
    }
    assert_same_answers(r, want);
    for (size_t i = 0; i < nroutes; i++) {
        if (!added[i])
            add(r, oom_routes[i].method, oom_routes[i].pattern, i + 1);
        add(full, oom_routes[i].method, oom_routes[i].pattern, i + 1);
    }
    assert_same_answers(r, full);
    router_free(r);
    router_free(want);
    router_free(full);
    fail_at = at;
    return failed;
}

static void test_add_survives_every_failed_allocation(void **state)
{
    for (fail_at = 0; oom_run(); fail_at++)
        ;
    assert_true(fail_at > 50); /* that many allocations were each failed once */
    fail_at = -1;
}

static void test_match_and_allow_allocate_nothing(void **state)
{
    router *r = generated_router();
    route_match m;
    long before = allocations;
    assert_int_equal(match(r, "GET", "/p1/A/leaf1/B", &m), ROUTE_FOUND);
    assert_int_equal(match(r, "POST", "/c2/A/files/x/y", &m), ROUTE_FOUND);
    assert_int_equal(match(r, "PUT", "/p1/A/leaf1/B", &m), ROUTE_METHOD_NOT_ALLOWED);
    assert_int_equal(match(r, "GET", "/nope/x", &m), ROUTE_NOT_FOUND);
    assert_int_equal(router_allow(r, str("/s0/leaf0"), &m), ROUTE_FOUND);
    assert_int_equal(allocations, before);
    router_free(r);
}

/* ------------------------------------------------------ concurrency */

typedef struct reader_arg {
    const router *r;
    int rounds;
} reader_arg;

static void *reader(void *arg)
{
    const reader_arg *a = arg;
    for (int i = 0; i < a->rounds; i++) {
        route_match m;
        CHECK_EQ(match(a->r, "GET", "/users/me", &m), ROUTE_FOUND);
        CHECK(m.handler == H(2));
        CHECK_EQ(match(a->r, "GET", "/users/17/posts", &m), ROUTE_FOUND);
        CHECK(m.handler == H(3) && m.nparams == 1 && m.values[0].n == 2);
        CHECK_EQ(match(a->r, "POST", "/users/17", &m), ROUTE_METHOD_NOT_ALLOWED);
        CHECK_STR_EQ(m.allow, "GET, HEAD, OPTIONS");
        CHECK_EQ(match(a->r, "GET", "/nope", &m), ROUTE_NOT_FOUND);
    }
    return NULL;
}

static void test_many_threads_match_at_once(void **state)
{
    router *r = new_router();
    add(r, "GET", "/users/{id}", 1);
    add(r, "GET", "/users/me", 2);
    add(r, "GET", "/users/{id}/posts", 3);
    reader_arg arg = {r, 20000};
    pthread_t threads[4];
    for (size_t i = 0; i < ARRAY_LEN(threads); i++)
        assert_int_equal(pthread_create(&threads[i], NULL, reader, &arg), 0);
    for (size_t i = 0; i < ARRAY_LEN(threads); i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    assert_checks_passed();
    router_free(r);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_route_matches_its_exact_path),
        cmocka_unit_test(test_static_routes_sharing_prefixes_each_match_their_own),
        cmocka_unit_test(test_root_route_matches_only_the_root_path),
        cmocka_unit_test(test_registration_order_does_not_change_matches),
        cmocka_unit_test(test_param_value_is_an_exact_slice_of_the_path),
        cmocka_unit_test(test_multiple_params_are_returned_in_pattern_order),
        cmocka_unit_test(test_param_names_come_from_the_route_that_matched),
        cmocka_unit_test(test_param_does_not_match_an_empty_segment),
        cmocka_unit_test(test_param_does_not_match_across_a_slash),
        cmocka_unit_test(test_sixteen_params_are_all_returned),
        cmocka_unit_test(test_catch_all_matches_the_rest_with_its_slashes),
        cmocka_unit_test(test_catch_all_matches_an_empty_rest),
        cmocka_unit_test(test_catch_all_needs_the_slash_before_it),
        cmocka_unit_test(test_catch_all_keeps_empty_segments_and_trailing_slash),
        cmocka_unit_test(test_catch_all_after_params_returns_all_values),
        cmocka_unit_test(test_root_catch_all_matches_every_path),
        cmocka_unit_test(test_static_beats_param),
        cmocka_unit_test(test_param_beats_catch_all),
        cmocka_unit_test(test_static_beats_catch_all_even_for_an_empty_rest),
        cmocka_unit_test(test_failed_static_branch_backtracks_to_param),
        cmocka_unit_test(test_failed_param_branch_backtracks_to_catch_all),
        cmocka_unit_test(test_static_text_that_is_a_segment_prefix_does_not_match),
        cmocka_unit_test(test_backtracking_reaches_a_deep_lower_priority_route),
        cmocka_unit_test(test_unknown_path_is_not_found),
        cmocka_unit_test(test_empty_router_finds_nothing),
        cmocka_unit_test(test_path_without_leading_slash_is_not_found),
        cmocka_unit_test(test_wrong_method_is_method_not_allowed_with_exact_allow),
        cmocka_unit_test(test_allow_always_has_options_and_has_head_only_with_get),
        cmocka_unit_test(test_method_mismatch_falls_through_to_a_lower_priority_route),
        cmocka_unit_test(test_allow_is_the_union_over_every_pattern_matching_the_path),
        cmocka_unit_test(test_allow_leaves_out_whole_methods_that_do_not_fit),
        cmocka_unit_test(test_router_allow_lists_the_methods_of_a_path),
        cmocka_unit_test(test_router_allow_for_an_unknown_path_is_not_found),
        cmocka_unit_test(test_router_allow_finds_a_path_with_only_a_star_route),
        cmocka_unit_test(test_head_falls_back_to_the_get_route),
        cmocka_unit_test(test_head_route_beats_the_get_fallback),
        cmocka_unit_test(test_head_without_get_is_method_not_allowed),
        cmocka_unit_test(test_star_route_matches_any_method),
        cmocka_unit_test(test_exact_method_beats_the_star_route),
        cmocka_unit_test(test_methods_are_case_sensitive),
        cmocka_unit_test(test_trailing_slash_is_significant),
        cmocka_unit_test(test_routes_with_and_without_trailing_slash_are_distinct),
        cmocka_unit_test(test_same_method_and_pattern_twice_is_eexist),
        cmocka_unit_test(test_patterns_differing_only_in_param_names_are_eexist),
        cmocka_unit_test(test_same_pattern_with_other_methods_is_accepted),
        cmocka_unit_test(test_add_rejects_a_pattern_without_leading_slash),
        cmocka_unit_test(test_add_rejects_an_empty_param_name),
        cmocka_unit_test(test_add_rejects_a_bad_param_name),
        cmocka_unit_test(test_add_rejects_braces_that_are_not_a_whole_segment),
        cmocka_unit_test(test_add_rejects_a_catch_all_that_is_not_last),
        cmocka_unit_test(test_add_rejects_a_duplicate_param_name),
        cmocka_unit_test(test_add_rejects_more_than_max_params),
        cmocka_unit_test(test_add_rejects_bytes_never_in_a_request_path),
        cmocka_unit_test(test_add_rejects_a_bad_method),
        cmocka_unit_test(test_add_rejects_a_null_handler),
        cmocka_unit_test(test_rejected_add_registers_nothing),
        cmocka_unit_test(test_pattern_and_method_are_copied),
        cmocka_unit_test(test_thousand_generated_routes_match_their_own_paths),
        cmocka_unit_test(test_near_misses_of_generated_routes_are_not_found),
        cmocka_unit_test(test_matches_agree_with_a_brute_force_reference),
        cmocka_unit_test(test_percent_encoded_bytes_are_matched_literally),
        cmocka_unit_test(test_64k_path_does_not_crash),
        cmocka_unit_test(test_thousand_segment_path_does_not_crash),
        cmocka_unit_test(test_add_survives_every_failed_allocation),
        cmocka_unit_test(test_match_and_allow_allocate_nothing),
        cmocka_unit_test(test_many_threads_match_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
