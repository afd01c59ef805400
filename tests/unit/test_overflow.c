/*
 * A fiber that overflows its stack must end the process with a message that
 * names the fiber and says "stack overflow" (guard page caught on an
 * alternate signal stack), never corrupt memory silently. Each case runs in
 * a forked child whose stderr the parent reads.
 *
 * Under AddressSanitizer, ASan may catch the overflow first and print its
 * own "stack-overflow" report; either report is accepted there, but the
 * child must still die abnormally.
 */
#include "harness.h"

#if defined(WEAVE_SANITIZE) || defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* Keeps the compiler from proving the recursion endless (and from warning
 * about it); never reached in practice. */
static volatile int depth_limit = 1 << 30;

static __attribute__((noinline)) int recurse_forever(int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[sizeof(frame) - 1] = (char)depth;
    if (depth >= depth_limit)
        return frame[0];
    /* The addition after the call keeps it from being a tail call. */
    return recurse_forever(depth + 1) + frame[sizeof(frame) - 1];
}

static int overflow_body(void *arg)
{
    return recurse_forever(0);
}

static int spawn_deep_recursion(void *arg)
{
    const wv_spawn_opts *opts = arg;
    wv_group *g = wv_group_new();
    if (g == NULL)
        return 10;
    wv_group_spawn(g, overflow_body, NULL, opts);
    wv_group_join(g);
    wv_group_free(g);
    return 11; /* not reached when the overflow is caught */
}

static int child_overflow_default_stack(void *arg)
{
    static const wv_spawn_opts opts = {.name = "deep-recursion"};
    wv_main_opts mo = {.shards = 1, .no_signal_handling = true};
    wv_main(&mo, spawn_deep_recursion, (void *)&opts);
    return 0; /* surviving is the failure the parent looks for */
}

/* On shard 1, with a small custom stack. */
static int spawn_on_shard_1(void *arg)
{
    return wv_shard_call(1, spawn_deep_recursion, arg);
}

static int child_overflow_small_stack_other_shard(void *arg)
{
    static const wv_spawn_opts opts = {.name = "small-stack-fiber", .stack_size = 64 << 10};
    wv_main_opts mo = {.shards = 2, .no_signal_handling = true};
    wv_main(&mo, spawn_on_shard_1, (void *)&opts);
    return 0;
}

static void assert_overflow_reported(const child_result *r, const char *fiber_name)
{
    if (!child_died_abnormally(r) || (WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGALRM))
        print_error("child status 0x%x; its stderr:\n%s\n", r->status, r->err);
    assert_true(child_died_abnormally(r));
    /* Killed by the harness's 30 s alarm means it hung instead. */
    assert_false(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGALRM);

    bool ours = strstr(r->err, "stack overflow") != NULL && strstr(r->err, fiber_name) != NULL;
    bool asan = UNDER_ASAN && strstr(r->err, "stack-overflow") != NULL;
    if (!ours && !asan)
        print_error("stderr does not report a stack overflow of \"%s\":\n%s\n", fiber_name, r->err);
    assert_true(ours || asan);
}

static void test_stack_overflow_kills_process_naming_the_fiber(void **state)
{
    child_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    assert_int_equal(run_in_child(child_overflow_default_stack, NULL, r), 0);
    assert_overflow_reported(r, "deep-recursion");
    free(r);
}

static void test_stack_overflow_on_small_custom_stack_on_another_shard_is_caught(void **state)
{
    child_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    assert_int_equal(run_in_child(child_overflow_small_stack_other_shard, NULL, r), 0);
    assert_overflow_reported(r, "small-stack-fiber");
    free(r);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_overflow_kills_process_naming_the_fiber),
        cmocka_unit_test(test_stack_overflow_on_small_custom_stack_on_another_shard_is_caught),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
