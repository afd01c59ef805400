/*
 * Load shedding (wv_shed): the decisions with made-up numbers (limits off,
 * at and past the bound, the lag folded and overdue, exempt paths), bad
 * options refused, and on a real server on one shard: past max_in_flight a
 * request is answered 503 with Retry-After at once while the admitted ones
 * finish, the exempt /healthz is served meanwhile, the count comes back
 * down so later requests pass, a loop stall sheds by lag and is forgotten,
 * and weave_http_shed_total counts each refusal by reason.
 */
#include "harness.h"

#include "http/shed.h"
#include "weave/http.h"
#include "weave/httpc.h"
#include "weave/metrics.h"

/* ------------------------------------------------------------ decisions */

static void test_no_limits_sheds_nothing(void **state)
{
    shed_limits l = {0, 0};
    assert_int_equal(shed_decide(&l, 0, 0), SHED_NONE);
    assert_int_equal(shed_decide(&l, 1000000, INT64_C(10) * 1000000000), SHED_NONE);
}

static void test_in_flight_bound_is_exact(void **state)
{
    shed_limits l = {.max_in_flight = 8};
    assert_int_equal(shed_decide(&l, 0, 0), SHED_NONE);
    assert_int_equal(shed_decide(&l, 7, 0), SHED_NONE); /* the 8th is let in */
    assert_int_equal(shed_decide(&l, 8, 0), SHED_IN_FLIGHT);
    assert_int_equal(shed_decide(&l, 50, 0), SHED_IN_FLIGHT);
    /* no lag bound: any lag passes */
    assert_int_equal(shed_decide(&l, 3, INT64_C(5) * 1000000000), SHED_NONE);
}

static void test_lag_bound_is_strictly_above(void **state)
{
    shed_limits l = {.max_lag_ns = 100 * NS_PER_MS};
    assert_int_equal(shed_decide(&l, 0, 0), SHED_NONE);
    assert_int_equal(shed_decide(&l, 0, 100 * NS_PER_MS), SHED_NONE);
    assert_int_equal(shed_decide(&l, 0, 100 * NS_PER_MS + 1), SHED_LOOP_LAG);
    assert_int_equal(shed_decide(&l, 1000000, 0), SHED_NONE); /* no in-flight bound */
}

static void test_in_flight_is_reported_before_lag(void **state)
{
    shed_limits l = {.max_in_flight = 2, .max_lag_ns = NS_PER_MS};
    assert_int_equal(shed_decide(&l, 2, 50 * NS_PER_MS), SHED_IN_FLIGHT);
    assert_int_equal(shed_decide(&l, 1, 50 * NS_PER_MS), SHED_LOOP_LAG);
    assert_string_equal(shed_reason_label(SHED_IN_FLIGHT), "in_flight");
    assert_string_equal(shed_reason_label(SHED_LOOP_LAG), "loop_lag");
}

static void test_a_stall_is_remembered_then_forgotten(void **state)
{
    int64_t r = 0;
    r = shed_lag_fold(r, 300 * NS_PER_MS); /* one stall */
    assert_int_equal(r, 300 * NS_PER_MS);
    r = shed_lag_fold(r, 0);
    assert_int_equal(r, 150 * NS_PER_MS);
    r = shed_lag_fold(r, NS_PER_MS);
    assert_int_equal(r, 75 * NS_PER_MS);
    for (int i = 0; i < 30; i++)
        r = shed_lag_fold(r, 0);
    assert_int_equal(r, 0);
    /* a larger sample wins at once; a negative one (clock skew) is 0 */
    assert_int_equal(shed_lag_fold(10, 500), 500);
    assert_int_equal(shed_lag_fold(-5, -7), 0);
}

static void test_an_overdue_sampler_counts_as_lag(void **state)
{
    /* no sampler yet: only the estimate */
    assert_int_equal(shed_lag_now(7, 0, 1000 * NS_PER_MS), 7);
    /* the sampler is not due yet: the estimate */
    assert_int_equal(shed_lag_now(7, 200, 100), 7);
    /* due 400 ms ago and still asleep: the loop is that late right now */
    assert_int_equal(shed_lag_now(7, 100 * NS_PER_MS, 500 * NS_PER_MS), 400 * NS_PER_MS);
    /* a larger estimate still wins */
    assert_int_equal(shed_lag_now(900 * NS_PER_MS, 100 * NS_PER_MS, 500 * NS_PER_MS),
                     900 * NS_PER_MS);
}

static void test_exempt_paths_match_exactly(void **state)
{
    const char *const ex[] = {"/healthz", "/readyz", NULL};
    assert_true(shed_exempt(ex, (wv_str){"/healthz", 8}));
    assert_true(shed_exempt(ex, (wv_str){"/readyz", 7}));
    assert_false(shed_exempt(ex, (wv_str){"/healthz/", 9}));
    assert_false(shed_exempt(ex, (wv_str){"/health", 7}));
    assert_false(shed_exempt(ex, (wv_str){"/HEALTHZ", 8}));
    assert_false(shed_exempt(ex, (wv_str){"", 0}));
    assert_false(shed_exempt(NULL, (wv_str){"/healthz", 8}));
}

static void test_bad_options_are_refused(void **state)
{
    wv_router *r = wv_router_new();
    assert_non_null(r);
    assert_int_equal(wv_shed(r, NULL), -EINVAL);
    assert_int_equal(wv_shed(NULL, &(wv_shed_opts){.max_in_flight = 1}), -EINVAL);
    assert_int_equal(wv_shed(r, &(wv_shed_opts){0}), -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "max_in_flight or max_loop_lag_ms"));
    assert_int_equal(wv_shed(r, &(wv_shed_opts){.max_in_flight = -1}), -EINVAL);
    assert_int_equal(wv_shed(r, &(wv_shed_opts){.max_in_flight = 1, .max_loop_lag_ms = -1}),
                     -EINVAL);
    assert_int_equal(wv_shed(r, &(wv_shed_opts){.max_loop_lag_ms = INT64_MAX}), -EINVAL);
    assert_int_equal(wv_shed(r, &(wv_shed_opts){.max_in_flight = 4}), 0);
    wv_router_free(r); /* frees the middleware's state (ASan checks) */
}

/* ------------------------------------------------------------ a server */

static struct {
    int port, rc;
    wv_event ready;
    wv_event release; /* lets /slow answer */
    int arrived;      /* handlers of /slow entered */
    wv_group *g;
} srv;

static int slow(wv_req *req, wv_res *res)
{
    srv.arrived++;
    int rc = wv_event_wait(&srv.release);
    if (rc < 0)
        return rc;
    return wv_res_text(res, 200, "slow");
}

static int fast(wv_req *req, wv_res *res)
{
    return wv_res_text(res, 200, "fast");
}

static int serve(void *arg)
{
    const wv_shed_opts *o = arg;
    wv_router *r = wv_router_new();
    if (!r)
        return srv.rc = -ENOMEM;
    wv_get(r, "/slow", slow);
    wv_get(r, "/fast", fast);
    wv_get(r, "/healthz", slow); /* exempt: served even when full */
    int rc = wv_shed(r, o);
    if (rc == 0)
        rc = wv_http_serve(r, &(wv_http_opts){.host = "127.0.0.1",
                                              .no_h2 = true,
                                              .drain_timeout_ms = 500,
                                              .bound_port = &srv.port,
                                              .ready = &srv.ready});
    if (rc < 0)
        wv_event_set(&srv.ready);
    wv_router_free(r);
    return srv.rc = rc;
}

static int start(const wv_shed_opts *o)
{
    memset(&srv, 0, sizeof srv);
    srv.g = wv_group_new();
    REQUIRE(srv.g);
    REQUIRE_EQ(wv_group_spawn(srv.g, serve, (void *)o, NULL), 0);
    REQUIRE_EQ(wv_event_wait(&srv.ready), 0);
    REQUIRE_EQ(srv.rc, 0);
    return 0;
}

static void stop(void)
{
    wv_event_set(&srv.release);
    wv_stop();
    CHECK_EQ(wv_group_join(srv.g), 0);
    wv_group_free(srv.g);
    CHECK_EQ(srv.rc, 0);
}

/* The value of weave_http_shed_total{reason="<reason>"} (0 when absent). */
static int64_t shed_count(const char *reason)
{
    wv_buf out = {0};
    int64_t v = 0;
    char key[96];
    snprintf(key, sizeof key, "weave_http_shed_total{reason=\"%s\"} ", reason);
    if (wv_metrics_render(NULL, WV_METRICS_PROMETHEUS, &out) == 0 && out.p) {
        wv_buf_append(&out, "", 1);
        const char *p = strstr(out.p, key);
        if (p)
            v = strtoll(p + strlen(key), NULL, 10);
    }
    wv_buf_free(&out);
    return v;
}

typedef struct call {
    const char *path;
    int status;
    char retry_after[16];
    char body[128];
    int64_t ms;
} call;

static int get(void *arg)
{
    call *c = arg;
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv.port, c->path);
    int64_t t0 = wv_now();
    wv_httpc_response r;
    int rc = wv_httpc_request(&(wv_httpc_req){.url = url, .timeout_ms = 5000}, &r);
    c->ms = ms_since(t0);
    if (rc < 0) {
        c->status = rc;
        return 0;
    }
    c->status = r.status;
    const char *ra = wv_httpc_header_get(&r, "Retry-After");
    snprintf(c->retry_after, sizeof c->retry_after, "%s", ra ? ra : "");
    snprintf(c->body, sizeof c->body, "%.*s", (int)r.body.n, r.body.p ? r.body.p : "");
    wv_httpc_response_free(&r);
    return 0;
}

static int in_flight_body(void *arg)
{
    static const wv_shed_opts o = {.max_in_flight = 2};
    if (start(&o) < 0)
        return -1;
    int64_t before = shed_count("in_flight");
    call admitted[2] = {{.path = "/slow"}, {.path = "/slow"}};
    wv_group *g = wv_group_new();
    REQUIRE(g);
    for (int i = 0; i < 2; i++)
        REQUIRE_EQ(wv_group_spawn(g, get, &admitted[i], NULL), 0);
    int64_t t0 = wv_now();
    while (srv.arrived < 2 && ms_since(t0) < 3000)
        wv_sleep_ms(5);
    CHECK_EQ(srv.arrived, 2);

    /* full: three more are refused at once, with Retry-After */
    call refused[3] = {{.path = "/slow"}, {.path = "/fast"}, {.path = "/slow"}};
    for (int i = 0; i < 3; i++) {
        get(&refused[i]);
        CHECK_EQ(refused[i].status, 503);
        CHECK_STR_EQ(refused[i].retry_after, "1");
        CHECK_STR_EQ(refused[i].body, "{\"detail\":\"Service Unavailable: overloaded\"}");
        CHECK(refused[i].ms < 1000);
    }
    CHECK_EQ(srv.arrived, 2); /* no refused one reached a handler */
    CHECK_EQ(shed_count("in_flight") - before, 3);

    /* the exempt path is served (and not counted: it waits on /slow's event
     * too, so it would itself fill the shard were it counted) */
    call health = {.path = "/healthz"};
    wv_group *hg = wv_group_new();
    REQUIRE(hg);
    REQUIRE_EQ(wv_group_spawn(hg, get, &health, NULL), 0);
    t0 = wv_now();
    while (srv.arrived < 3 && ms_since(t0) < 3000)
        wv_sleep_ms(5);
    CHECK_EQ(srv.arrived, 3);

    wv_event_set(&srv.release);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(wv_group_join(hg), 0);
    wv_group_free(g);
    wv_group_free(hg);
    CHECK_EQ(admitted[0].status, 200);
    CHECK_EQ(admitted[1].status, 200);
    CHECK_EQ(health.status, 200);

    /* the count came back down: two at once pass again, and the refused
     * ones did not leave it wrong either way */
    call again[2] = {{.path = "/slow"}, {.path = "/fast"}};
    g = wv_group_new();
    REQUIRE(g);
    for (int i = 0; i < 2; i++)
        REQUIRE_EQ(wv_group_spawn(g, get, &again[i], NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(again[0].status, 200);
    CHECK_EQ(again[1].status, 200);
    call third = {.path = "/fast"};
    get(&third);
    CHECK_EQ(third.status, 200);
    CHECK_EQ(shed_count("in_flight") - before, 3);
    stop();
    return 0;
}

static void test_past_max_in_flight_requests_are_refused_at_once(void **state)
{
    assert_int_equal(run_in_rt(1, in_flight_body, NULL), 0);
    assert_checks_passed();
}

/* Keep the shard busy without suspending. */
static void hog_ms(int64_t ms)
{
    int64_t end = wv_now() + ms * NS_PER_MS;
    while (wv_now() < end)
        ;
}

static int lag_body(void *arg)
{
    static const wv_shed_opts o = {.max_loop_lag_ms = 100};
    if (start(&o) < 0)
        return -1;
    int64_t before = shed_count("loop_lag");
    wv_event_set(&srv.release);
    call c = {.path = "/fast"};
    get(&c); /* starts the shard's sampler */
    CHECK_EQ(c.status, 200);
    wv_sleep_ms(120);
    c = (call){.path = "/fast"};
    get(&c);
    CHECK_EQ(c.status, 200); /* an idle loop is not late */

    hog_ms(400); /* a handler hogging the shard */
    c = (call){.path = "/fast"};
    get(&c);
    CHECK_EQ(c.status, 503);
    CHECK_STR_EQ(c.retry_after, "1");
    c = (call){.path = "/healthz"};
    get(&c);
    CHECK_EQ(c.status, 200); /* never shed */
    CHECK_EQ(shed_count("loop_lag") - before, 1);

    /* the stall is forgotten once the loop keeps time again */
    wv_sleep_ms(600);
    c = (call){.path = "/fast"};
    get(&c);
    CHECK_EQ(c.status, 200);
    stop();
    return 0;
}

static void test_a_stalled_loop_sheds_then_recovers(void **state)
{
    assert_int_equal(run_in_rt(1, lag_body, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_limits_sheds_nothing),
        cmocka_unit_test(test_in_flight_bound_is_exact),
        cmocka_unit_test(test_lag_bound_is_strictly_above),
        cmocka_unit_test(test_in_flight_is_reported_before_lag),
        cmocka_unit_test(test_a_stall_is_remembered_then_forgotten),
        cmocka_unit_test(test_an_overdue_sampler_counts_as_lag),
        cmocka_unit_test(test_exempt_paths_match_exactly),
        cmocka_unit_test(test_bad_options_are_refused),
        cmocka_unit_test(test_past_max_in_flight_requests_are_refused_at_once),
        cmocka_unit_test(test_a_stalled_loop_sheds_then_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
