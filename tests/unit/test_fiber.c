/*
 * Fibers and the runtime's entry point: when a spawned fiber runs, yield
 * fairness, sleeping, ids and names, stack sizes, spawning at scale, and
 * what wv_main returns (including -EBUSY / -EINVAL / -EPERM misuse).
 */
#include "harness.h"

#include "rt/rt_internal.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/utsname.h>

/* ------------------------------------------------------------ helpers */

static int set_flag(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

/* Recurse `depth` frames of at least 1 KiB each; not a tail call. */
static __attribute__((noinline)) int recurse(int depth)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[sizeof(frame) - 1] = (char)depth;
    if (depth <= 0)
        return frame[0];
    return recurse(depth - 1) + (frame[sizeof(frame) - 1] == (char)depth ? 1 : 0);
}

static int recurse_400(void *arg)
{
    *(int *)arg = recurse(400);
    return 0;
}

/* ------------------------------------------------------------ spawn */

static int spawn_then_yield(void *arg)
{
    int ran = 0;
    CHECK_EQ(wv_spawn(set_flag, &ran, NULL), 0);
    CHECK_EQ(ran, 0); /* not yet: the caller has not suspended */
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(ran, 1);
    return 0;
}

static void test_spawned_fiber_runs_only_after_caller_yields(void **state)
{
    assert_int_equal(run_in_rt(1, spawn_then_yield, NULL), 0);
    assert_checks_passed();
}

static int spawn_then_sleep(void *arg)
{
    int ran = 0;
    CHECK_EQ(wv_spawn(set_flag, &ran, NULL), 0);
    CHECK_EQ(ran, 0);
    CHECK_EQ(wv_sleep_ms(1), 0);
    CHECK_EQ(ran, 1);
    return 0;
}

static void test_spawned_fiber_runs_when_caller_sleeps(void **state)
{
    assert_int_equal(run_in_rt(1, spawn_then_sleep, NULL), 0);
    assert_checks_passed();
}

static int yield_once_and_count(void *arg)
{
    if (wv_yield() != 0)
        return -EIO;
    (*(int *)arg)++;
    return 0;
}

static int spawn_100k(void *arg)
{
    int ran = 0;
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 100000; i++) {
        int r = wv_group_spawn(g, yield_once_and_count, &ran, NULL);
        if (!CHECK_EQ(r, 0))
            break;
        /* Let each batch run, so stacks are recycled (100k stacks at once
         * would need 200k mappings with guard pages). */
        if (i % 1000 == 999)
            CHECK_EQ(wv_yield(), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(ran, 100000);
    CHECK_EQ(wv_group_count(g), 0);
    wv_group_free(g);
    return 0;
}

static void test_100k_fibers_spawned_into_a_group_all_run_and_join(void **state)
{
    int64_t t0 = wv_now();
    assert_int_equal(run_in_rt(1, spawn_100k, NULL), 0);
    assert_checks_passed();
    assert_true(ms_since(t0) < 30000);
}

static int sleep_1ms_and_count(void *arg)
{
    int r = wv_sleep_ms(1);
    if (r != 0)
        return r;
    (*(int *)arg)++;
    return 0;
}

static int spawn_10k_sleepers(void *arg)
{
    int woke = 0;
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 10000; i++)
        if (!CHECK_EQ(wv_group_spawn(g, sleep_1ms_and_count, &woke, NULL), 0))
            break;
    CHECK_EQ(wv_group_count(g), 10000);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(woke, 10000);
    wv_group_free(g);
    return 0;
}

static void test_10k_sleeping_fibers_alive_at_once_all_wake_and_join(void **state)
{
    assert_int_equal(run_in_rt(1, spawn_10k_sleepers, NULL), 0);
    assert_checks_passed();
}

/* 100k stacks alive at once, each with a guard region: on kernels before
 * 6.13 (no MADV_GUARD_INSTALL) every guard page splits a mapping, which
 * needs vm.max_map_count above 200k (the default is 65530). */
static bool can_hold_100k_guarded_stacks(void)
{
    struct utsname u;
    int major = 0, minor = 0;
    if (uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
        (major > 6 || (major == 6 && minor >= 13)))
        return true;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long max_maps = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld", &max_maps) != 1)
            max_maps = 0;
        fclose(f);
    }
    return max_maps >= 220000;
}

static int spawn_100k_sleepers(void *arg)
{
    int woke = 0;
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 100000; i++)
        if (!CHECK_EQ(wv_group_spawn(g, sleep_1ms_and_count, &woke, NULL), 0))
            break;
    CHECK_EQ(wv_group_count(g), 100000);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(woke, 100000);
    wv_group_free(g);
    return 0;
}

static void test_100k_sleeping_fibers_alive_at_once_all_wake_and_join(void **state)
{
    if (!can_hold_100k_guarded_stacks()) {
        print_message("skipped: kernel < 6.13 and vm.max_map_count < 220000\n");
        skip();
    }
    assert_int_equal(run_in_rt(1, spawn_100k_sleepers, NULL), 0);
    assert_checks_passed();
}

static int detached_completes(void *arg)
{
    int ran = 0;
    CHECK_EQ(wv_spawn(sleep_1ms_and_count, &ran, NULL), 0);
    CHECK_EQ(wv_sleep_ms(20), 0);
    CHECK_EQ(ran, 1);
    return 0;
}

static void test_detached_fiber_runs_to_completion_without_a_join(void **state)
{
    assert_int_equal(run_in_rt(1, detached_completes, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ no starvation */

typedef struct spinner {
    int done;    /* set by the fiber being waited for */
    int64_t end; /* give up spinning here (wall clock guard) */
    int yields;
} spinner;

/* Yield until s->done, without ever sleeping; gives up at s->end. */
static int yield_until_done(void *arg)
{
    spinner *s = arg;
    while (!s->done && wv_now() < s->end) {
        if (wv_yield() != 0)
            return -EIO;
        s->yields++;
    }
    return 0;
}

static int sleep_5ms_then_done(void *arg)
{
    spinner *s = arg;
    int r = wv_sleep_ms(5);
    s->done = 1;
    return r;
}

static int yielding_vs_timer(void *arg)
{
    spinner s = {0, wv_after_ms(3000), 0};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, yield_until_done, &s, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, sleep_5ms_then_done, &s, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(s.done, 1);
    CHECK(wv_now() < s.end);
    wv_group_free(g);
    return 0;
}

static void test_a_fiber_that_keeps_yielding_does_not_starve_a_sleeper(void **state)
{
    assert_int_equal(run_in_rt(1, yielding_vs_timer, NULL), 0);
    assert_checks_passed();
}

typedef struct reader_spin {
    spinner *s;
    int fd;
} reader_spin;

static int read_then_done(void *arg)
{
    reader_spin *r = arg;
    char ch;
    ssize_t n = wv_read(r->fd, &ch, 1);
    r->s->done = 1;
    return n == 1 ? 0 : -EIO;
}

static void *write_byte_after_5ms(void *arg)
{
    usleep(5000);
    ssize_t n = write(*(int *)arg, "z", 1);
    (void)n;
    return NULL;
}

static int yielding_vs_io(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    spinner s = {0, wv_after_ms(3000), 0};
    reader_spin r = {&s, sv[0]};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, yield_until_done, &s, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, read_then_done, &r, NULL), 0);
    pthread_t th;
    REQUIRE_EQ(pthread_create(&th, NULL, write_byte_after_5ms, &sv[1]), 0);
    CHECK_EQ(wv_group_join(g), 0);
    pthread_join(th, NULL);
    CHECK_EQ(s.done, 1);
    CHECK(wv_now() < s.end);
    wv_group_free(g);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_a_fiber_that_keeps_yielding_does_not_starve_a_socket_reader(void **state)
{
    assert_int_equal(run_in_rt(1, yielding_vs_io, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ ids and names */

#define ID_FIBERS 1000
static uint64_t ids[ID_FIBERS + 1];
static int ids_n;
static uint64_t first_run_main_id;

static int record_id(void *arg)
{
    ids[ids_n++] = wv_fiber_id();
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int collect_ids(void *arg)
{
    ids_n = 0;
    ids[ids_n++] = wv_fiber_id();
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < ID_FIBERS; i++)
        CHECK_EQ(wv_group_spawn(g, record_id, NULL, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    return 0;
}

static void test_fiber_ids_are_nonzero_and_unique(void **state)
{
    assert_int_equal(run_in_rt(1, collect_ids, NULL), 0);
    assert_checks_passed();
    assert_int_equal(ids_n, ID_FIBERS + 1);
    qsort(ids, (size_t)ids_n, sizeof(ids[0]), cmp_u64);
    assert_true(ids[0] != 0);
    for (int i = 1; i < ids_n; i++)
        assert_true(ids[i] != ids[i - 1]);
}

static int record_main_id(void *arg)
{
    *(uint64_t *)arg = wv_fiber_id();
    return 0;
}

static void test_fiber_ids_are_not_reused_by_a_later_runtime(void **state)
{
    uint64_t second = 0;
    assert_int_equal(run_in_rt(1, record_main_id, &first_run_main_id), 0);
    assert_int_equal(run_in_rt(1, record_main_id, &second), 0);
    assert_true(first_run_main_id != 0);
    assert_true(second != 0);
    assert_true(second != first_run_main_id);
}

static void test_fiber_id_is_zero_and_name_empty_outside_a_fiber(void **state)
{
    assert_true(wv_fiber_id() == 0);
    assert_string_equal(wv_fiber_name(), "");
}

typedef struct name_probe {
    char seen[64];
} name_probe;

static int record_name(void *arg)
{
    name_probe *p = arg;
    const char *n = wv_fiber_name();
    snprintf(p->seen, sizeof(p->seen), "%s", n ? n : "(null)");
    return 0;
}

static int spawn_named(void *arg)
{
    name_probe p;
    memset(&p, 0, sizeof(p));
    CHECK_EQ(wv_spawn(record_name, &p, &(wv_spawn_opts){.name = "worker-7"}), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_STR_EQ(p.seen, "worker-7");
    return 0;
}

static void test_fiber_name_is_the_one_given_at_spawn(void **state)
{
    assert_int_equal(run_in_rt(1, spawn_named, NULL), 0);
    assert_checks_passed();
}

static int spawn_unnamed(void *arg)
{
    name_probe a, b;
    memset(&a, 'x', sizeof(a));
    memset(&b, 'x', sizeof(b));
    CHECK_EQ(wv_spawn(record_name, &a, NULL), 0);
    CHECK_EQ(wv_spawn(record_name, &b, &(wv_spawn_opts){.stack_size = 0}), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_STR_EQ(a.seen, "");
    CHECK_STR_EQ(b.seen, "");
    return 0;
}

static void test_fiber_name_is_empty_when_none_given(void **state)
{
    assert_int_equal(run_in_rt(1, spawn_unnamed, NULL), 0);
    assert_checks_passed();
}

static int spawn_with_scratch_name(void *arg)
{
    name_probe p;
    memset(&p, 0, sizeof(p));
    char name[32] = "original";
    CHECK_EQ(wv_spawn(record_name, &p, &(wv_spawn_opts){.name = name}), 0);
    strcpy(name, "changed!");
    CHECK_EQ(wv_yield(), 0);
    CHECK_STR_EQ(p.seen, "original");
    return 0;
}

static void test_fiber_name_is_copied_at_spawn(void **state)
{
    assert_int_equal(run_in_rt(1, spawn_with_scratch_name, NULL), 0);
    assert_checks_passed();
}

static int spawn_long_name(void *arg)
{
    name_probe p;
    memset(&p, 0, sizeof(p));
    const char *name = "0123456789abcdefghijklmnopqrstuvwxyz-too-long";
    CHECK_EQ(wv_spawn(record_name, &p, &(wv_spawn_opts){.name = name}), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_STR_EQ(p.seen, "0123456789abcdefghijklmnopqrstu"); /* 31 bytes */
    return 0;
}

static void test_fiber_name_keeps_its_first_31_bytes(void **state)
{
    assert_int_equal(run_in_rt(1, spawn_long_name, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ yield, sleep */

typedef struct order_log {
    char buf[64];
    int n;
} order_log;

typedef struct yielder {
    order_log *log;
    char tag;
} yielder;

static int yield_4_times(void *arg)
{
    yielder *y = arg;
    for (int i = 0; i < 4; i++) {
        y->log->buf[y->log->n++] = y->tag;
        CHECK_EQ(wv_yield(), 0);
    }
    return 0;
}

static int three_yielders(void *arg)
{
    order_log log;
    memset(&log, 0, sizeof(log));
    yielder a = {&log, 'A'}, b = {&log, 'B'}, c = {&log, 'C'};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, yield_4_times, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, yield_4_times, &b, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, yield_4_times, &c, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_STR_EQ(log.buf, "ABCABCABCABC");
    return 0;
}

static void test_yielding_fibers_take_turns_in_fifo_order(void **state)
{
    assert_int_equal(run_in_rt(1, three_yielders, NULL), 0);
    assert_checks_passed();
}

static int sleep_20ms(void *arg)
{
    int64_t t0 = wv_now();
    CHECK_EQ(wv_sleep_ms(20), 0);
    CHECK_BETWEEN(wv_now() - t0, 20 * NS_PER_MS, 2000 * NS_PER_MS);
    return 0;
}

static void test_sleep_lasts_at_least_the_requested_time(void **state)
{
    assert_int_equal(run_in_rt(1, sleep_20ms, NULL), 0);
    assert_checks_passed();
}

static int sleep_until_20ms(void *arg)
{
    int64_t at = wv_after_ms(20);
    CHECK_EQ(wv_sleep_until(at), 0);
    CHECK(wv_now() >= at);
    CHECK(ms_since(at) < 2000);
    return 0;
}

static void test_sleep_until_returns_at_the_given_time(void **state)
{
    assert_int_equal(run_in_rt(1, sleep_until_20ms, NULL), 0);
    assert_checks_passed();
}

static int sleep_in_the_past(void *arg)
{
    int64_t t0 = wv_now();
    CHECK_EQ(wv_sleep_until(wv_now() - 1000 * NS_PER_MS), 0);
    CHECK_EQ(wv_sleep_ms(0), 0);
    CHECK_EQ(wv_sleep_ms(-5), 0);
    CHECK(ms_since(t0) < 1000);
    return 0;
}

static void test_sleep_for_zero_or_a_past_time_returns_zero_at_once(void **state)
{
    assert_int_equal(run_in_rt(1, sleep_in_the_past, NULL), 0);
    assert_checks_passed();
}

typedef struct sleeper {
    order_log *log;
    int ms;
} sleeper;

static int sleep_then_log(void *arg)
{
    sleeper *s = arg;
    CHECK_EQ(wv_sleep_ms(s->ms), 0);
    s->log->buf[s->log->n++] = (char)('0' + s->ms / 10);
    return 0;
}

static int sleepers_out_of_order(void *arg)
{
    order_log log;
    memset(&log, 0, sizeof(log));
    sleeper s[] = {{&log, 30}, {&log, 10}, {&log, 20}};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (size_t i = 0; i < ARRAY_LEN(s); i++)
        CHECK_EQ(wv_group_spawn(g, sleep_then_log, &s[i], NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_STR_EQ(log.buf, "123");
    return 0;
}

static void test_sleeping_fibers_wake_in_deadline_order(void **state)
{
    assert_int_equal(run_in_rt(1, sleepers_out_of_order, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ stacks */

static int spawn_with_1mib_stack(void *arg)
{
    int result = -1;
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, recurse_400, &result, &(wv_spawn_opts){.stack_size = 1 << 20}), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(result, 400);
    return 0;
}

static void test_fiber_with_a_1mib_stack_can_recurse_through_400kib(void **state)
{
    assert_int_equal(run_in_rt(1, spawn_with_1mib_stack, NULL), 0);
    assert_checks_passed();
}

static int deep_main(void *arg)
{
    int result = -1;
    recurse_400(&result); /* the main fiber itself */
    CHECK_EQ(result, 400);
    result = -1;
    CHECK_EQ(wv_spawn(recurse_400, &result, NULL), 0);
    CHECK_EQ(wv_sleep_ms(1), 0);
    CHECK_EQ(result, 400);
    return 0;
}

static void test_main_opts_stack_size_is_the_default_for_every_fiber(void **state)
{
    wv_main_opts opts = {.shards = 1, .stack_size = 1 << 20, .no_signal_handling = true};
    assert_int_equal(run_in_rt_opts(&opts, deep_main, NULL), 0);
    assert_checks_passed();
}

static int recurse_60(void *arg)
{
    *(int *)arg = recurse(60);
    return 0;
}

static int default_stack_depth(void *arg)
{
    int result = -1;
    CHECK_EQ(wv_spawn(recurse_60, &result, NULL), 0);
    CHECK_EQ(wv_sleep_ms(1), 0);
    CHECK_EQ(result, 60);
    return 0;
}

static void test_default_stack_holds_60_frames_of_1kib(void **state)
{
    assert_int_equal(run_in_rt(1, default_stack_depth, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ outside the runtime */

static int never_runs(void *arg)
{
    if (arg)
        *(int *)arg = 1;
    return 0;
}

static void fired(wv_timer *t)
{
}

static void test_suspending_calls_outside_the_runtime_return_eperm(void **state)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    int ran = 0;
    assert_int_equal(wv_spawn(never_runs, &ran, NULL), -EPERM);
    assert_int_equal(wv_yield(), -EPERM);
    assert_int_equal(wv_sleep_ms(1), -EPERM);
    assert_int_equal(wv_sleep_until(wv_after_ms(1)), -EPERM);
    assert_int_equal(wv_fd_wait(p[0], WV_IN, wv_after_ms(1)), -EPERM);
    assert_int_equal(wv_offload(never_runs, &ran), -EPERM);
    assert_int_equal(wv_stop_wait(), -EPERM);
    assert_int_equal(ran, 0);
    close(p[0]);
    close(p[1]);
}

static void test_shard_calls_outside_the_runtime_return_eperm(void **state)
{
    int ran = 0;
    wv_timer t;
    memset(&t, 0, sizeof(t));
    assert_int_equal(wv_shard_post(0, never_runs, &ran), -EPERM);
    assert_int_equal(wv_shard_call(0, never_runs, &ran), -EPERM);
    assert_int_equal(wv_shard_each(never_runs, &ran), -EPERM);
    assert_int_equal(wv_timer_start(&t, wv_after_ms(1), fired), -EPERM);
    assert_false(wv_timer_pending(&t));
    assert_int_equal(ran, 0);
}

static void test_constructors_outside_the_runtime_return_null(void **state)
{
    assert_null(wv_group_new());
    assert_null(wv_chan_new(sizeof(int), 1));
    assert_int_equal(wv_shard_id(), -1);
    assert_int_equal(wv_shard_count(), 0);
}

typedef struct foreign_results {
    int spawn, yield, sleep, shard_id, shard_count;
    uint64_t fiber_id;
    bool group_null;
} foreign_results;

static void *foreign_thread(void *arg)
{
    foreign_results *r = arg;
    r->spawn = wv_spawn(never_runs, NULL, NULL);
    r->yield = wv_yield();
    r->sleep = wv_sleep_ms(1);
    r->shard_id = wv_shard_id();
    r->shard_count = wv_shard_count();
    r->fiber_id = wv_fiber_id();
    wv_group *g = wv_group_new();
    r->group_null = g == NULL;
    wv_group_free(g);
    return NULL;
}

static int call_from_foreign_thread(void *arg)
{
    foreign_results r;
    memset(&r, 0, sizeof(r));
    pthread_t th;
    REQUIRE_EQ(pthread_create(&th, NULL, foreign_thread, &r), 0);
    pthread_join(th, NULL);
    CHECK_EQ(r.spawn, -EPERM);
    CHECK_EQ(r.yield, -EPERM);
    CHECK_EQ(r.sleep, -EPERM);
    CHECK_EQ(r.shard_id, -1);
    CHECK_EQ(r.shard_count, 0);
    CHECK_EQ(r.fiber_id, 0);
    CHECK(r.group_null);
    return 0;
}

static void test_calls_from_a_thread_that_is_not_a_shard_return_eperm(void **state)
{
    assert_int_equal(run_in_rt(1, call_from_foreign_thread, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ wv_main */

static int return_arg(void *arg)
{
    return *(int *)arg;
}

static void test_wv_main_returns_the_main_fiber_result(void **state)
{
    int v = 42;
    assert_int_equal(run_in_rt(1, return_arg, &v), 42);
    v = -7;
    assert_int_equal(run_in_rt(2, return_arg, &v), -7);
    v = 0;
    assert_int_equal(run_in_rt(1, return_arg, &v), 0);
}

static int nested_main(void *arg)
{
    int ran = 0;
    CHECK_EQ(wv_main(NULL, never_runs, &ran), -EBUSY);
    CHECK_EQ(ran, 0);
    return 0;
}

static void test_wv_main_while_running_returns_ebusy(void **state)
{
    assert_int_equal(run_in_rt(1, nested_main, NULL), 0);
    assert_checks_passed();
}

static void test_wv_main_rejects_bad_options_with_einval(void **state)
{
    int ran = 0;
    wv_main_opts bad_shards = {.shards = -1, .no_signal_handling = true};
    assert_int_equal(wv_main(&bad_shards, never_runs, &ran), -EINVAL);
    wv_main_opts bad_offload = {.shards = 1, .offload_threads = -1, .no_signal_handling = true};
    assert_int_equal(wv_main(&bad_offload, never_runs, &ran), -EINVAL);
    assert_int_equal(ran, 0);
}

static int main_on_shard_0(void *arg)
{
    CHECK_EQ(wv_shard_id(), 0);
    CHECK(wv_shard_count() >= 1);
    CHECK(wv_fiber_id() != 0);
    return 5;
}

/* Touch 48 KiB of stack below the caller, then return. */
static __attribute__((noinline)) int touch_deep(int seed)
{
    volatile char big[48 * 1024];
    for (size_t i = 0; i < sizeof big; i += 64)
        big[i] = (char)(seed + (int)i);
    return big[64] + big[sizeof big - 64];
}

/* Pages of the calling fiber's stack that are resident. */
static int resident_stack_pages(void)
{
    wv_fiber *f = current();
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = f->stack_size / ps;
    unsigned char *vec = calloc(n, 1);
    if (!vec || mincore(f->stack_lo, f->stack_size, vec) != 0) {
        free(vec);
        return -1;
    }
    int resident = 0;
    for (size_t i = 0; i < n; i++)
        resident += vec[i] & 1;
    free(vec);
    return resident;
}

static int trim_body(void *arg)
{
    (void)arg;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    int want = touch_deep(1);
    int before = resident_stack_pages();
    wv_fiber_trim_stack();
    int after = resident_stack_pages();
    CHECK((size_t)before * ps >= 48 * 1024); /* the 48 KiB were touched */
    /* what stays: this frame and those above it (a few KiB), in whole pages */
    CHECK(after >= 1 && (size_t)after * ps <= 16 * 1024 + ps);
    CHECK(after < before);
    /* what the fiber stands on survived; the pages come back when needed */
    CHECK_EQ(touch_deep(1), want);
    CHECK((size_t)resident_stack_pages() * ps >= 48 * 1024);
    return 0;
}

static void test_stack_trim_gives_back_the_pages_below_the_fiber(void **state)
{
    (void)state;
    assert_int_equal(run_in_rt(1, trim_body, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------ the stack pool's trim */

enum { BURST = 1000, STEADY = 200 };

static int burst_fiber(void *arg)
{
    (void)arg;
    touch_deep(2);
    wv_sleep_ms(20); /* all alive at once: the pool grows to BURST */
    return 0;
}

static int steady_fiber(void *arg)
{
    atomic_int *warm = arg;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    /* a stack that kept its pages still has the 48 KiB a burst fiber touched */
    if ((size_t)resident_stack_pages() * ps >= 48 * 1024)
        atomic_fetch_add(warm, 1);
    touch_deep(3);
    return 0;
}

/* Pages resident in the stack of pool entry i. */
static int pool_entry_pages(size_t i)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE), n = wv__rt->stack_size / ps;
    unsigned char *vec = calloc(n, 1);
    int resident = -1;
    if (vec && mincore(wv__shard->stack_pool[i], wv__rt->stack_size, vec) == 0)
        for (size_t k = resident = 0; k < n; k++)
            resident += vec[k] & 1;
    free(vec);
    return resident;
}

static int steady_sleeper(void *arg)
{
    steady_fiber(arg);
    wv_sleep_ms(20); /* all alive at once */
    return 0;
}

/* Run n fibers at once; how many of them started on a warm stack. */
static int run_at_once(int n, wv_fn *fn)
{
    atomic_int warm = 0;
    wv_group *g = wv_group_new();
    for (int i = 0; i < n; i++)
        if (wv_group_spawn(g, fn, &warm, NULL) < 0)
            return -1;
    wv_group_join(g);
    wv_group_free(g);
    return atomic_load(&warm);
}

static int pool_body(void *arg)
{
    (void)arg;
    wv_group *g = wv_group_new();
    for (int i = 0; i < BURST; i++)
        REQUIRE_EQ(wv_group_spawn(g, burst_fiber, NULL, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    /* idle for two seconds: the burst is over, the pool is trimmed down to
     * the warmest 256 */
    wv_sleep_ms(1100);
    wv_sleep_ms(1100);
    wv_sleep_ms(10);
    shard *sh = wv__shard;
    REQUIRE(sh->pool_n >= BURST);
    /* the coldest entries gave their pages back, the warmest 256 kept them */
    int cold_resident = 0, warm_resident = 0;
    for (size_t i = 0; i < sh->pool_n; i++) {
        int r = pool_entry_pages(i);
        REQUIRE(r >= 0);
        if (i + 256 < sh->pool_n)
            cold_resident += r > 0;
        else
            warm_resident += r > 0;
    }
    CHECK_EQ(cold_resident, 0);
    CHECK(warm_resident >= 250); /* a few were never touched (fresh slab entries) */
    /* a load of up to 256 fibers at a time gets warm stacks */
    CHECK(run_at_once(STEADY, steady_fiber) >= STEADY - 6);
    /* a steady load of more at once (600: an HTTP/2 server's streams)
     * keeps as many warm across the idle moments between its rounds */
    run_at_once(600, steady_sleeper);
    wv_sleep_ms(30);
    CHECK(run_at_once(600, steady_sleeper) >= 600 - 6);
    return 0;
}

static void
test_idle_shard_trims_the_coldest_stacks_and_keeps_the_recently_needed_warm(void **state)
{
    (void)state;
    assert_int_equal(run_in_rt(1, pool_body, NULL), 0);
    assert_checks_passed();
}

static void test_wv_main_accepts_null_options(void **state)
{
    assert_int_equal(wv_main(NULL, main_on_shard_0, NULL), 5);
    assert_checks_passed();
}

static void test_wv_main_can_run_again_after_returning(void **state)
{
    for (int i = 0; i < 3; i++) {
        int v = i;
        assert_int_equal(run_in_rt(2, return_arg, &v), i);
    }
}

static int nap_20ms(void *arg)
{
    wv_sleep_ms(20);
    return 0;
}

static int fibers_alive_counts(void *arg)
{
    int64_t base = wv_fibers_alive();
    CHECK(base >= 1); /* this one */
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(wv_group_spawn(g, nap_20ms, NULL, NULL), 0);
    CHECK_EQ(wv_fibers_alive(), base + 5);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(wv_fibers_alive(), base);
    return 0;
}

static void test_fibers_alive_counts_the_shards_live_fibers(void **state)
{
    assert_int_equal(run_in_rt(1, fibers_alive_counts, NULL), 0);
    assert_checks_passed();
    assert_int_equal(wv_fibers_alive(), 0); /* outside the runtime */
}

/* wv_pass_hook_queue: the loop's end-of-pass hooks */
/* ------------------------------------- a deadline left armed at exit */

/* A wait that ends before its deadline leaves the fiber's timer armed (the
 * next wait re-arms it in place); a fiber that exits then must take it out
 * of the wheel: its record is reused by the next fiber on the same stack. */
static int wait_briefly(void *arg)
{
    int v;
    return wv_chan_recv_until(arg, &v, wv_after_ms(30)) == 0 ? 0 : -EIO;
}

static int exit_with_armed_deadlines(void *arg)
{
    (void)arg;
    enum { N = 100 };
    uint64_t armed = wv__shard->timers.count;
    wv_chan *c = wv_chan_new(sizeof(int), N);
    wv_group *g = wv_group_new();
    REQUIRE(c != NULL && g != NULL);
    for (int i = 0; i < N; i++)
        CHECK_EQ(wv_group_spawn(g, wait_briefly, c, NULL), 0);
    wv_sleep_ms(1);
    CHECK_EQ(wv__shard->timers.count, armed + N); /* all waiting, each timer armed */
    for (int i = 0; i < N; i++)
        CHECK_EQ(wv_chan_send(c, &i), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(wv__shard->timers.count, armed); /* every exit disarmed its timer */
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void
test_fiber_exiting_with_its_deadline_still_armed_leaves_no_timer_in_the_wheel(void **state)
{
    assert_int_equal(run_in_rt(1, exit_with_armed_deadlines, NULL), 0);
    assert_checks_passed();
}

static int hook_runs, hook_order, other_order, order_seq;

static void count_hook(wv_pass_hook *h)
{
    hook_runs++;
    hook_order = ++order_seq;
}

static int other_fiber(void *arg)
{
    other_order = ++order_seq;
    return 0;
}

static int defer_runs_after_the_pass(void *arg)
{
    hook_runs = hook_order = other_order = order_seq = 0;
    wv_pass_hook h = {0}, never = {0};
    wv_pass_hook_queue(&h, count_hook);
    wv_pass_hook_queue(&h, count_hook); /* queued once */
    wv_pass_hook_queue(&never, count_hook);
    wv_pass_hook_cancel(&never); /* taken back: never runs */
    CHECK_EQ(wv_spawn(other_fiber, NULL, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    /* the other fiber ran, and this one again, in the same pass */
    CHECK_EQ(other_order, 1);
    CHECK_EQ(hook_runs, 0);
    CHECK_EQ(wv_sleep_ms(1), 0); /* the pass ends: the hook runs before the poll */
    CHECK_EQ(hook_runs, 1);
    CHECK_EQ(hook_order, 2);
    CHECK_EQ(wv_sleep_ms(1), 0);
    CHECK_EQ(hook_runs, 1); /* once per queueing */
    return 0;
}

static void test_deferred_hook_runs_once_after_the_ready_fibers_and_undefer_cancels_it(void **state)
{
    assert_int_equal(run_in_rt(1, defer_runs_after_the_pass, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawned_fiber_runs_only_after_caller_yields),
        cmocka_unit_test(test_fibers_alive_counts_the_shards_live_fibers),
        cmocka_unit_test(
            test_deferred_hook_runs_once_after_the_ready_fibers_and_undefer_cancels_it),
        cmocka_unit_test(test_spawned_fiber_runs_when_caller_sleeps),
        cmocka_unit_test(test_100k_fibers_spawned_into_a_group_all_run_and_join),
        cmocka_unit_test(test_10k_sleeping_fibers_alive_at_once_all_wake_and_join),
        cmocka_unit_test(test_100k_sleeping_fibers_alive_at_once_all_wake_and_join),
        cmocka_unit_test(test_detached_fiber_runs_to_completion_without_a_join),
        cmocka_unit_test(test_a_fiber_that_keeps_yielding_does_not_starve_a_sleeper),
        cmocka_unit_test(test_a_fiber_that_keeps_yielding_does_not_starve_a_socket_reader),
        cmocka_unit_test(test_fiber_ids_are_nonzero_and_unique),
        cmocka_unit_test(test_fiber_ids_are_not_reused_by_a_later_runtime),
        cmocka_unit_test(test_fiber_id_is_zero_and_name_empty_outside_a_fiber),
        cmocka_unit_test(test_fiber_name_is_the_one_given_at_spawn),
        cmocka_unit_test(test_fiber_name_is_empty_when_none_given),
        cmocka_unit_test(test_fiber_name_is_copied_at_spawn),
        cmocka_unit_test(test_fiber_name_keeps_its_first_31_bytes),
        cmocka_unit_test(test_yielding_fibers_take_turns_in_fifo_order),
        cmocka_unit_test(test_sleep_lasts_at_least_the_requested_time),
        cmocka_unit_test(test_sleep_until_returns_at_the_given_time),
        cmocka_unit_test(test_sleep_for_zero_or_a_past_time_returns_zero_at_once),
        cmocka_unit_test(test_sleeping_fibers_wake_in_deadline_order),
        cmocka_unit_test(test_fiber_with_a_1mib_stack_can_recurse_through_400kib),
        cmocka_unit_test(test_main_opts_stack_size_is_the_default_for_every_fiber),
        cmocka_unit_test(test_default_stack_holds_60_frames_of_1kib),
        cmocka_unit_test(test_suspending_calls_outside_the_runtime_return_eperm),
        cmocka_unit_test(test_shard_calls_outside_the_runtime_return_eperm),
        cmocka_unit_test(test_constructors_outside_the_runtime_return_null),
        cmocka_unit_test(test_calls_from_a_thread_that_is_not_a_shard_return_eperm),
        cmocka_unit_test(test_wv_main_returns_the_main_fiber_result),
        cmocka_unit_test(test_wv_main_while_running_returns_ebusy),
        cmocka_unit_test(test_wv_main_rejects_bad_options_with_einval),
        cmocka_unit_test(test_stack_trim_gives_back_the_pages_below_the_fiber),
        cmocka_unit_test(
            test_idle_shard_trims_the_coldest_stacks_and_keeps_the_recently_needed_warm),
        cmocka_unit_test(
            test_fiber_exiting_with_its_deadline_still_armed_leaves_no_timer_in_the_wheel),
        cmocka_unit_test(test_wv_main_accepts_null_options),
        cmocka_unit_test(test_wv_main_can_run_again_after_returning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
