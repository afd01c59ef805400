/*
 * weave's task queues (include/weave/tasks.h) without a Redis server: the
 * URLs they refuse, -EPERM outside a fiber, options refused, and a broker
 * that cannot be reached. Everything that needs Redis and Celery is
 * tests/integration/test_tasks_celery.py.
 */
#include "harness.h"

#include "weave/tasks.h"

static void test_outside_a_fiber_is_eperm(void **state)
{
    (void)state;
    wv_tasks *t = (wv_tasks *)1;
    assert_int_equal(wv_tasks_open("redis://127.0.0.1:1/0", NULL, &t), -EPERM);
    assert_null(t);
}

static int bad_urls(void *arg)
{
    (void)arg;
    wv_tasks *t = (wv_tasks *)1;
    CHECK_EQ(wv_tasks_open("amqps://", NULL, &t), -EINVAL); /* no host */
    CHECK(t == NULL);
    CHECK_EQ(wv_tasks_open("sqs://", NULL, &t), -EPROTONOSUPPORT);
    CHECK_EQ(wv_tasks_open(NULL, NULL, &t), -EINVAL);
    CHECK_EQ(wv_tasks_open("redis://127.0.0.1:1/0", &(wv_tasks_opts){.backend = "rpc://"}, &t),
             -EPROTONOSUPPORT);
    CHECK_EQ(wv_tasks_open("redis://127.0.0.1:1/0", &(wv_tasks_opts){.concurrency = -1}, &t),
             -EINVAL);
    CHECK_EQ(
        wv_tasks_open("redis://127.0.0.1:1/0", &(wv_tasks_opts){.visibility_timeout_ms = -5}, &t),
        -EINVAL);
    CHECK_EQ(wv_tasks_open("redis://127.0.0.1:1/0", NULL, NULL), -EINVAL);
    /* a broker nobody listens on: the dial's error */
    CHECK_EQ(wv_tasks_open("redis://127.0.0.1:1/0", NULL, &t), -ECONNREFUSED);
    CHECK(t == NULL);
    CHECK_EQ(wv_tasks_open("amqp://guest@127.0.0.1:1//", &(wv_tasks_opts){.backend = "rpc://"}, &t),
             -ECONNREFUSED);
    CHECK(t == NULL);
    wv_tasks_close(NULL);
    return 0;
}

static void test_bad_urls_and_options(void **state)
{
    (void)state;
    assert_int_equal(run_in_rt(1, bad_urls, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outside_a_fiber_is_eperm),
        cmocka_unit_test(test_bad_urls_and_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
