/*
 * wv_retry: which failures are retried (the default list, a caller's
 * predicate, never -ETIMEDOUT / -ECANCELED from the attempt), how many
 * attempts, the full-jitter backoff bounds, Retry-After, the fiber's
 * deadline and cancellation, and the error message that comes back.
 */
#include "harness.h"

#include "weave/net.h"

/* An operation that fails with errs[i] on attempt i + 1 (0 = succeed with
 * `ok`), noting when each attempt started and what number it was told. */
typedef struct op {
    int errs[32];
    int nerrs;
    int ok;
    int64_t retry_after_ms; /* set on every failing attempt */
    int calls;
    int numbers[32];
    int64_t started[32];
} op;

static int run_op(void *arg, wv_retry_attempt *a)
{
    op *o = arg;
    int i = o->calls++;
    if (i < (int)ARRAY_LEN(o->numbers)) {
        o->numbers[i] = a->number;
        o->started[i] = wv_now();
    }
    int err = i < o->nerrs ? o->errs[i] : 0;
    if (err == 0)
        return o->ok;
    a->retry_after_ms = o->retry_after_ms;
    return wv_fail(err, "attempt %d failed", a->number);
}

#define RT_TEST(name, body)                                                                        \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        assert_int_equal(run_in_rt(1, (body), NULL), 0);                                           \
        assert_checks_passed();                                                                    \
    }

static bool only_eagain(int rc, void *arg)
{
    (void)arg;
    return rc == -EAGAIN;
}

static bool everything(int rc, void *arg)
{
    (void)arg;
    return true;
}

/* ------------------------------------------------------------ which, how many */

static int success_value(void *arg)
{
    op o = {.errs = {-ECONNREFUSED}, .nerrs = 1, .ok = 42};
    wv_retry_opts ro = {.base_ms = 1};
    CHECK_EQ(wv_retry(&ro, run_op, &o), 42);
    CHECK_EQ(o.calls, 2);
    CHECK_EQ(o.numbers[0], 1);
    CHECK_EQ(o.numbers[1], 2);
    return 0;
}
RT_TEST(test_retry_returns_the_first_success_result, success_value)

static int non_retryable(void *arg)
{
    op o = {.errs = {-EAGAIN, -EAGAIN, -EPROTO, -EAGAIN}, .nerrs = 4};
    wv_retry_opts ro = {.max_attempts = 10, .base_ms = 1, .retryable = only_eagain};
    CHECK_EQ(wv_retry(&ro, run_op, &o), -EPROTO);
    CHECK_EQ(o.calls, 3);
    CHECK_STR_EQ(wv_errmsg(), "attempt 3 failed");
    return 0;
}
RT_TEST(test_retry_stops_on_non_retryable, non_retryable)

static int max_attempts(void *arg)
{
    op o = {.nerrs = 10};
    for (int i = 0; i < 10; i++)
        o.errs[i] = -ECONNREFUSED;
    wv_retry_opts ro = {.max_attempts = 4, .base_ms = 1};
    CHECK_EQ(wv_retry(&ro, run_op, &o), -ECONNREFUSED);
    CHECK_EQ(o.calls, 4);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(o.numbers[i], i + 1);
    /* 0 means 3 */
    op d = {.nerrs = 10};
    for (int i = 0; i < 10; i++)
        d.errs[i] = -ECONNREFUSED;
    wv_retry_opts dro = {.base_ms = 1};
    CHECK_EQ(wv_retry(&dro, run_op, &d), -ECONNREFUSED);
    CHECK_EQ(d.calls, 3);
    return 0;
}
RT_TEST(test_retry_gives_up_after_max_attempts, max_attempts)

static int default_list(void *arg)
{
    /* every failure to connect is retried ... */
    op o = {.errs = {-ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH, -ECONNABORTED, -EAGAIN},
            .nerrs = 5,
            .ok = 7};
    wv_retry_opts ro = {.max_attempts = 6, .base_ms = 1};
    CHECK_EQ(wv_retry(&ro, run_op, &o), 7);
    CHECK_EQ(o.calls, 6);
    /* ... and nothing else: a request may have gone out */
    static const int others[] = {-ECONNRESET, -EPIPE, -EPROTO, -EIO, -ENOMEM, -EINVAL};
    for (size_t i = 0; i < ARRAY_LEN(others); i++) {
        op x = {.errs = {others[i]}, .nerrs = 1};
        CHECK_EQ(wv_retry(&ro, run_op, &x), others[i]);
        CHECK_EQ(x.calls, 1);
    }
    return 0;
}
RT_TEST(test_retry_default_retries_only_connect_errors, default_list)

static int never_timeout_or_cancel(void *arg)
{
    wv_retry_opts ro = {.max_attempts = 5, .base_ms = 1, .retryable = everything};
    op t = {.errs = {-ETIMEDOUT, -ETIMEDOUT}, .nerrs = 2};
    CHECK_EQ(wv_retry(&ro, run_op, &t), -ETIMEDOUT);
    CHECK_EQ(t.calls, 1);
    op c = {.errs = {-ECANCELED, -ECANCELED}, .nerrs = 2};
    CHECK_EQ(wv_retry(&ro, run_op, &c), -ECANCELED);
    CHECK_EQ(c.calls, 1);
    op e = {.errs = {-EIO, -EIO}, .nerrs = 2}; /* while everything else is */
    CHECK_EQ(wv_retry(&ro, run_op, &e), 0);
    CHECK_EQ(e.calls, 3);
    return 0;
}
RT_TEST(test_retry_never_retries_timeout_or_cancel_from_fn, never_timeout_or_cancel)

/* ------------------------------------------------------------ backoff */

/* base 8 ms, max 24 ms, 30 attempts: ceilings 8, 16, then 24 ms for the
 * remaining 27 gaps. Every gap must stay under its ceiling (plus room for
 * a loaded machine), the capped gaps must not all sit at the ceiling
 * (jitter), must not all stay under base (growth), and must add up to
 * something (they do sleep). */
static int jitter_bounds(void *arg)
{
    enum { N = 30 };
    op o = {.nerrs = N};
    for (int i = 0; i < N; i++)
        o.errs[i] = -ECONNREFUSED;
    wv_retry_opts ro = {.max_attempts = N, .base_ms = 8, .max_ms = 24};
    CHECK_EQ(wv_retry(&ro, run_op, &o), -ECONNREFUSED);
    REQUIRE_EQ(o.calls, N);
    const int64_t slack_ms = 100; /* a loaded machine */
    int64_t sum_ns = 0, min_capped = INT64_MAX, max_capped = 0;
    for (int i = 1; i < N; i++) {
        int64_t gap = o.started[i] - o.started[i - 1];
        int64_t ceiling = i == 1 ? 8 : i == 2 ? 16 : 24;
        CHECK_BETWEEN(gap / NS_PER_MS, 0, ceiling + slack_ms);
        sum_ns += gap;
        if (i >= 3) {
            if (gap < min_capped)
                min_capped = gap;
            if (gap > max_capped)
                max_capped = gap;
        }
    }
    CHECK(min_capped < 12 * NS_PER_MS); /* P(all 27 >= 12 ms) = 2^-27 */
    CHECK(max_capped > 12 * NS_PER_MS); /* P(all 27 <= 12 ms) = 2^-27 */
    CHECK(sum_ns > 150 * NS_PER_MS);    /* mean 336 ms, sd about 36 ms */
    return 0;
}
RT_TEST(test_retry_backoff_is_within_full_jitter_bounds, jitter_bounds)

static int retry_after(void *arg)
{
    op o = {.errs = {-EAGAIN}, .nerrs = 1, .retry_after_ms = 80};
    wv_retry_opts ro = {.base_ms = 1, .max_ms = 1};
    CHECK_EQ(wv_retry(&ro, run_op, &o), 0);
    REQUIRE_EQ(o.calls, 2);
    CHECK_BETWEEN((o.started[1] - o.started[0]) / NS_PER_MS, 80, 2000);
    return 0;
}
RT_TEST(test_retry_honours_retry_after, retry_after)

static int deadline(void *arg)
{
    /* the wait the attempt asks for (300 ms) does not fit in the 100 ms
     * left: the error comes back at once, not -ETIMEDOUT 100 ms later */
    op o = {.errs = {-ECONNREFUSED, -ECONNREFUSED}, .nerrs = 2, .retry_after_ms = 300};
    wv_retry_opts ro = {.base_ms = 1};
    int64_t old = wv_deadline_set(wv_after_ms(100));
    int64_t t0 = wv_now();
    CHECK_EQ(wv_retry(&ro, run_op, &o), -ECONNREFUSED);
    int64_t ms = ms_since(t0);
    wv_deadline_set(old);
    CHECK_EQ(o.calls, 1);
    CHECK_BETWEEN(ms, 0, 50);
    CHECK_STR_EQ(wv_errmsg(), "attempt 1 failed");
    /* one that fits is waited for */
    op f = {.errs = {-ECONNREFUSED}, .nerrs = 1, .retry_after_ms = 20};
    old = wv_deadline_set(wv_after_ms(500));
    CHECK_EQ(wv_retry(&ro, run_op, &f), 0);
    wv_deadline_set(old);
    CHECK_EQ(f.calls, 2);
    return 0;
}
RT_TEST(test_retry_never_sleeps_past_deadline, deadline)

typedef struct cancel_run {
    op o;
    int rc;
} cancel_run;

static int retry_in_fiber(void *arg)
{
    cancel_run *c = arg;
    wv_retry_opts ro = {.base_ms = 1};
    c->rc = wv_retry(&ro, run_op, &c->o);
    return 0;
}

static int cancelled_sleep(void *arg)
{
    cancel_run c = {
        .o = {.errs = {-ECONNREFUSED, -ECONNREFUSED}, .nerrs = 2, .retry_after_ms = 10000},
        .rc = 1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, retry_in_fiber, &c, NULL), 0);
    CHECK_EQ(wv_sleep_ms(20), 0); /* it sleeps 10 s before attempt 2 */
    int64_t t0 = wv_now();
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_BETWEEN(ms_since(t0), 0, 1000);
    CHECK_EQ(c.rc, -ECANCELED);
    CHECK_EQ(c.o.calls, 1);
    return 0;
}
RT_TEST(test_retry_sleep_is_cut_short_by_cancellation, cancelled_sleep)

/* ------------------------------------------------------------ messages */

static bool clobbering_retryable(int rc, void *arg)
{
    (void)arg;
    wv_fail(rc, "the predicate's own words");
    return rc == -ECONNREFUSED;
}

static int last_message(void *arg)
{
    op o = {.errs = {-ECONNREFUSED, -ECONNREFUSED, -ECONNREFUSED, -ECONNREFUSED}, .nerrs = 4};
    wv_retry_opts ro = {.max_attempts = 3, .base_ms = 1, .retryable = clobbering_retryable};
    CHECK_EQ(wv_retry(&ro, run_op, &o), -ECONNREFUSED);
    CHECK_EQ(o.calls, 3);
    CHECK_STR_EQ(wv_errmsg(), "attempt 3 failed");
    /* stopped by a non-retryable error after the predicate ran */
    op n = {.errs = {-ECONNREFUSED, -EPROTO}, .nerrs = 2};
    CHECK_EQ(wv_retry(&ro, run_op, &n), -EPROTO);
    CHECK_EQ(n.calls, 2);
    CHECK_STR_EQ(wv_errmsg(), "attempt 2 failed");
    return 0;
}
RT_TEST(test_retry_keeps_last_error_message, last_message)

static void test_retry_without_fn_is_einval(void **state)
{
    (void)state;
    assert_int_equal(wv_retry(NULL, NULL, NULL), -EINVAL);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_returns_the_first_success_result),
        cmocka_unit_test(test_retry_stops_on_non_retryable),
        cmocka_unit_test(test_retry_gives_up_after_max_attempts),
        cmocka_unit_test(test_retry_default_retries_only_connect_errors),
        cmocka_unit_test(test_retry_never_retries_timeout_or_cancel_from_fn),
        cmocka_unit_test(test_retry_backoff_is_within_full_jitter_bounds),
        cmocka_unit_test(test_retry_honours_retry_after),
        cmocka_unit_test(test_retry_never_sleeps_past_deadline),
        cmocka_unit_test(test_retry_sleep_is_cut_short_by_cancellation),
        cmocka_unit_test(test_retry_keeps_last_error_message),
        cmocka_unit_test(test_retry_without_fn_is_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
