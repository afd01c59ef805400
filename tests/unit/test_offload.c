/*
 * The offload pool: jobs run on another thread while the shard keeps
 * running its fibers; the job's result comes back; a deadline or a
 * cancellation drops a job still queued (it never runs) and, for a job
 * already running, waits for it (the job sees wv_offload_cancelled()); the
 * pool size comes from wv_main_opts.offload_threads. Lanes (wv_lane): jobs
 * in order on one thread of their own, the jobs of one pass run as one
 * batch, a queued job dropped at its deadline, one shard only.
 */
#include "harness.h"

#include <pthread.h>
#include <time.h>

static void sleep_real_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ------------------------------------------------------------ thread, result */

typedef struct thread_probe {
    pthread_t job_thread;
} thread_probe;

static int record_thread(void *arg)
{
    ((thread_probe *)arg)->job_thread = pthread_self();
    return 1234;
}

static int offload_on_other_thread(void *arg)
{
    thread_probe p;
    memset(&p, 0, sizeof(p));
    pthread_t shard_thread = pthread_self();
    CHECK_EQ(wv_offload(record_thread, &p), 1234);
    CHECK(!pthread_equal(p.job_thread, shard_thread));
    CHECK(pthread_equal(pthread_self(), shard_thread)); /* resumed on its shard */
    return 0;
}

static void test_offload_runs_the_job_on_another_thread_and_returns_its_result(void **state)
{
    assert_int_equal(run_in_rt(1, offload_on_other_thread, NULL), 0);
    assert_checks_passed();
}

static int return_eio(void *arg)
{
    return -EIO;
}

static int offload_negative(void *arg)
{
    CHECK_EQ(wv_offload(return_eio, NULL), -EIO);
    return 0;
}

static void test_offload_returns_a_negative_job_result_unchanged(void **state)
{
    assert_int_equal(run_in_rt(1, offload_negative, NULL), 0);
    assert_checks_passed();
}

typedef struct ticker {
    int ticks;
    int stop;
} ticker;

static int tick_every_ms(void *arg)
{
    ticker *t = arg;
    while (!t->stop) {
        if (wv_sleep_ms(1) != 0)
            return -EIO;
        t->ticks++;
    }
    return 0;
}

static int block_50ms(void *arg)
{
    sleep_real_ms(50);
    return 5;
}

static int shard_keeps_running(void *arg)
{
    ticker t = {0, 0};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, tick_every_ms, &t, NULL), 0);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_offload(block_50ms, NULL), 5);
    CHECK(ms_since(t0) >= 50);
    CHECK(t.ticks >= 5); /* ~50 expected; the shard was never blocked */
    t.stop = 1;
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    return 0;
}

static void test_shard_keeps_running_fibers_while_a_job_blocks(void **state)
{
    assert_int_equal(run_in_rt(1, shard_keeps_running, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ queued jobs */

typedef struct pool_state {
    atomic_int blocker_started;
    atomic_int release;
    atomic_int dropped_ran;
    int blocker_result;
} pool_state;

/* Occupies the (single) pool thread until released (at most 5 s). */
static int block_until_released(void *arg)
{
    pool_state *p = arg;
    atomic_store(&p->blocker_started, 1);
    for (int i = 0; i < 5000 && !atomic_load(&p->release); i++)
        sleep_real_ms(1);
    return 0;
}

static int offload_blocker(void *arg)
{
    pool_state *p = arg;
    p->blocker_result = wv_offload(block_until_released, p);
    return 0;
}

static int mark_dropped_ran(void *arg)
{
    atomic_store(&((pool_state *)arg)->dropped_ran, 1);
    return 0;
}

static int noop_job(void *arg)
{
    return 0;
}

/* Fill the one-thread pool with a job that blocks until released. */
static int with_full_pool(pool_state *p, wv_group *g)
{
    CHECK_EQ(wv_group_spawn(g, offload_blocker, p, NULL), 0);
    REQUIRE(wait_for_atomic(&p->blocker_started, 1, 2000));
    return 0;
}

/* Release the blocker and check that the dropped job never ran. */
static int after_full_pool(pool_state *p, wv_group *g)
{
    atomic_store(&p->release, 1);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(p->blocker_result, 0);
    /* The pool runs jobs in order: once a later job has run, the dropped
     * one would have run before it. */
    CHECK_EQ(wv_offload(noop_job, NULL), 0);
    CHECK_EQ(wv_offload(noop_job, NULL), 0);
    CHECK_EQ(atomic_load(&p->dropped_ran), 0);
    return 0;
}

static int deadline_while_queued(void *arg)
{
    pool_state p;
    memset(&p, 0, sizeof(p));
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    REQUIRE_EQ(with_full_pool(&p, g), 0);

    int64_t at = wv_after_ms(20);
    int64_t old = wv_deadline_set(at);
    CHECK_EQ(wv_offload(mark_dropped_ran, &p), -ETIMEDOUT);
    int64_t now = wv_now();
    wv_deadline_set(old);
    CHECK(now >= at);
    CHECK(now - at < 1000 * NS_PER_MS); /* promptly: not after the blocker */
    CHECK_EQ(atomic_load(&p.release), 0);

    after_full_pool(&p, g);
    wv_group_free(g);
    return 0;
}

static void test_deadline_while_the_job_is_queued_returns_promptly_and_drops_it(void **state)
{
    wv_main_opts opts = {.shards = 1, .offload_threads = 1, .no_signal_handling = true};
    assert_int_equal(run_in_rt_opts(&opts, deadline_while_queued, NULL), 0);
    assert_checks_passed();
}

typedef struct queued_waiter {
    pool_state *p;
    int result;
    int returned;
} queued_waiter;

static int offload_dropped_record(void *arg)
{
    queued_waiter *w = arg;
    w->result = wv_offload(mark_dropped_ran, w->p);
    w->returned = 1;
    return 0;
}

static int cancel_while_queued(void *arg)
{
    pool_state p;
    memset(&p, 0, sizeof(p));
    wv_group *blockers = wv_group_new();
    wv_group *g = wv_group_new();
    REQUIRE(blockers != NULL && g != NULL);
    REQUIRE_EQ(with_full_pool(&p, blockers), 0);

    queued_waiter w = {&p, 1, 0};
    CHECK_EQ(wv_group_spawn(g, offload_dropped_record, &w, NULL), 0);
    CHECK_EQ(wv_sleep_ms(5), 0);
    CHECK_EQ(w.returned, 0);
    int64_t t0 = wv_now();
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK(ms_since(t0) < 1000);
    CHECK_EQ(w.result, -ECANCELED);
    CHECK_EQ(atomic_load(&p.release), 0); /* the blocker is still running */

    after_full_pool(&p, blockers);
    wv_group_free(blockers);
    wv_group_free(g);
    return 0;
}

static void test_cancel_while_the_job_is_queued_returns_ecanceled_and_drops_it(void **state)
{
    wv_main_opts opts = {.shards = 1, .offload_threads = 1, .no_signal_handling = true};
    assert_int_equal(run_in_rt_opts(&opts, cancel_while_queued, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ running jobs */

typedef struct running_job {
    atomic_int started;
    atomic_int saw_cancel;
    atomic_int finished;
} running_job;

/* Runs up to 2 s, polling wv_offload_cancelled() to finish early. */
static int poll_until_cancelled(void *arg)
{
    running_job *j = arg;
    atomic_store(&j->started, 1);
    for (int i = 0; i < 2000; i++) {
        if (wv_offload_cancelled()) {
            atomic_store(&j->saw_cancel, 1);
            break;
        }
        sleep_real_ms(1);
    }
    sleep_real_ms(5); /* a little cleanup after noticing */
    atomic_store(&j->finished, 1);
    return 77;
}

static int deadline_while_running(void *arg)
{
    running_job j;
    memset(&j, 0, sizeof(j));
    int64_t t0 = wv_now();
    int64_t at = wv_after_ms(20);
    int64_t old = wv_deadline_set(at);
    CHECK_EQ(wv_offload(poll_until_cancelled, &j), -ETIMEDOUT);
    int64_t now = wv_now();
    wv_deadline_set(old);
    CHECK_EQ(atomic_load(&j.started), 1);
    CHECK_EQ(atomic_load(&j.finished), 1); /* it waited for the job */
    CHECK_EQ(atomic_load(&j.saw_cancel), 1);
    CHECK(now >= at);
    CHECK((now - t0) / NS_PER_MS < 1500); /* the job stopped early */
    return 0;
}

static void test_deadline_while_the_job_runs_waits_for_it_and_returns_etimedout(void **state)
{
    assert_int_equal(run_in_rt(1, deadline_while_running, NULL), 0);
    assert_checks_passed();
}

typedef struct running_waiter {
    running_job *j;
    int result;
} running_waiter;

static int offload_poller_record(void *arg)
{
    running_waiter *w = arg;
    w->result = wv_offload(poll_until_cancelled, w->j);
    return 0;
}

static int cancel_while_running(void *arg)
{
    running_job j;
    memset(&j, 0, sizeof(j));
    running_waiter w = {&j, 1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, offload_poller_record, &w, NULL), 0);
    REQUIRE(wait_for_atomic(&j.started, 1, 2000));
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(w.result, -ECANCELED);
    CHECK_EQ(atomic_load(&j.finished), 1);
    CHECK_EQ(atomic_load(&j.saw_cancel), 1);
    wv_group_free(g);
    return 0;
}

static void test_cancel_while_the_job_runs_waits_for_it_and_returns_ecanceled(void **state)
{
    assert_int_equal(run_in_rt(1, cancel_while_running, NULL), 0);
    assert_checks_passed();
}

static int report_cancelled(void *arg)
{
    return wv_offload_cancelled() ? 1 : 0;
}

static int not_cancelled(void *arg)
{
    CHECK_EQ(wv_offload(report_cancelled, NULL), 0);
    CHECK(!wv_offload_cancelled()); /* a fiber is not a job */
    return 0;
}

static void test_offload_cancelled_is_false_while_the_fiber_still_waits(void **state)
{
    assert_int_equal(run_in_rt(1, not_cancelled, NULL), 0);
    assert_checks_passed();
    assert_false(wv_offload_cancelled());
}

/* ------------------------------------------------------------ scale, pool size */

typedef struct many_job {
    atomic_int *ran;
    int index;
    int result;
} many_job;

static int count_and_double(void *arg)
{
    many_job *m = arg;
    atomic_fetch_add(m->ran, 1);
    return 2 * m->index;
}

static int offload_one(void *arg)
{
    many_job *m = arg;
    m->result = wv_offload(count_and_double, m);
    return 0;
}

static int thousand_offloads(void *arg)
{
    enum { N = 1000 };
    atomic_int ran = 0;
    many_job *jobs = calloc(N, sizeof(*jobs));
    REQUIRE(jobs != NULL);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < N; i++) {
        jobs[i] = (many_job){&ran, i, -1};
        CHECK_EQ(wv_group_spawn(g, offload_one, &jobs[i], NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(atomic_load(&ran), N);
    for (int i = 0; i < N; i++)
        if (!CHECK_EQ(jobs[i].result, 2 * i))
            break;
    wv_group_free(g);
    free(jobs);
    return 0;
}

static void test_1000_concurrent_offloads_all_complete_with_their_results(void **state)
{
    assert_int_equal(run_in_rt(1, thousand_offloads, NULL), 0);
    assert_checks_passed();
}

typedef struct concurrency {
    atomic_int now, max;
} concurrency;

static int measure_concurrency(void *arg)
{
    concurrency *c = arg;
    int cur = atomic_fetch_add(&c->now, 1) + 1;
    int seen = atomic_load(&c->max);
    while (cur > seen && !atomic_compare_exchange_weak(&c->max, &seen, cur)) {
    }
    sleep_real_ms(20);
    atomic_fetch_sub(&c->now, 1);
    return 0;
}

static int offload_measure(void *arg)
{
    return wv_offload(measure_concurrency, arg);
}

static int parallel_jobs(void *arg)
{
    concurrency c;
    atomic_init(&c.now, 0);
    atomic_init(&c.max, 0);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(wv_group_spawn(g, offload_measure, &c, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    return atomic_load(&c.max);
}

static void test_offload_threads_option_sets_how_many_jobs_run_at_once(void **state)
{
    wv_main_opts opts = {.shards = 1, .offload_threads = 2, .no_signal_handling = true};
    assert_int_equal(run_in_rt_opts(&opts, parallel_jobs, NULL), 2);
    assert_checks_passed();
}

static int offload_on_each_shard(void *arg)
{
    return wv_offload(count_and_double, arg) == 2 * ((many_job *)arg)->index ? 0 : -EIO;
}

static int offload_from_every_shard(void *arg)
{
    atomic_int ran = 0;
    many_job m = {&ran, 21, 0};
    CHECK_EQ(wv_shard_each(offload_on_each_shard, &m), 0);
    CHECK_EQ(atomic_load(&ran), wv_shard_count());
    return 0;
}

static void test_offload_works_from_every_shard(void **state)
{
    assert_int_equal(run_in_rt(3, offload_from_every_shard, NULL), 0);
    assert_checks_passed();
}

/* one offload thread; the first job holds it until `release` */
static atomic_bool release_first;

static int hold_until_released(void *arg)
{
    while (!atomic_load(&release_first))
        sleep_real_ms(1);
    return 0;
}

static int offload_holder(void *arg)
{
    return wv_offload(hold_until_released, NULL);
}

static int offload_queued_counts(void *arg)
{
    atomic_store(&release_first, false);
    CHECK_EQ(wv_offload_queued(), 0);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(wv_group_spawn(g, offload_holder, NULL, NULL), 0);
    /* the first runs on the only thread, the other three wait in the FIFO */
    int64_t until = wv_after_ms(5000);
    while (wv_offload_queued() != 3 && wv_now() < until)
        CHECK_EQ(wv_sleep_ms(1), 0);
    CHECK_EQ(wv_offload_queued(), 3);
    atomic_store(&release_first, true);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(wv_offload_queued(), 0);
    return 0;
}

static void test_offload_queued_counts_jobs_waiting_for_a_thread(void **state)
{
    wv_main_opts opts = {.shards = 1, .offload_threads = 1, .no_signal_handling = true};
    assert_int_equal(run_in_rt_opts(&opts, offload_queued_counts, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------------ lanes */

typedef struct lane_log {
    pthread_t thread;
    int order[64];
    int n;
    int batches[64]; /* batch_begin's n, in order */
    int nbatches;
    bool inside; /* between batch_begin and batch_end */
    bool nested;
} lane_log;

static lane_log lanelog;

static void log_begin(void *arg, int n)
{
    lane_log *l = arg;
    l->nested |= l->inside;
    l->inside = true;
    if (l->nbatches < 64)
        l->batches[l->nbatches++] = n;
}

static void log_end(void *arg)
{
    ((lane_log *)arg)->inside = false;
}

typedef struct lane_job {
    wv_lane *lane;
    int id;
} lane_job;

static int note_order(void *arg)
{
    lane_job *j = arg;
    lanelog.order[lanelog.n++] = j->id; /* one thread: no race */
    if (lanelog.thread && !pthread_equal(lanelog.thread, pthread_self()))
        return -EXDEV;
    lanelog.thread = pthread_self();
    return 100 + j->id;
}

static int submit(void *arg)
{
    lane_job *j = arg;
    return wv_lane_run(j->lane, note_order, j) == 100 + j->id ? 0 : -EIO;
}

static int lane_order_and_batches(void *arg)
{
    memset(&lanelog, 0, sizeof lanelog);
    wv_lane *l;
    REQUIRE_EQ(
        wv_lane_new(
            &(wv_lane_opts){.batch_begin = log_begin, .batch_end = log_end, .arg = &lanelog}, &l),
        0);
    /* the lane's thread started and asleep first: a thread still starting
     * (or between batches) takes what it finds queued without waiting for
     * the end of the pass, and on a loaded machine that can be half of it */
    lane_job warm = {l, 99};
    CHECK_EQ(wv_lane_run(l, note_order, &warm), 199);
    wv_sleep_ms(20);
    memset(&lanelog, 0, sizeof lanelog);
    /* 8 fibers submit in the same pass: one batch of 8, in order */
    enum { N = 8 };
    lane_job jobs[N];
    wv_group *g = wv_group_new();
    for (int i = 0; i < N; i++) {
        jobs[i] = (lane_job){l, i};
        REQUIRE_EQ(wv_group_spawn(g, submit, &jobs[i], NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(lanelog.n, N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(lanelog.order[i], i);
    CHECK_EQ(lanelog.nbatches, 1);
    CHECK_EQ(lanelog.batches[0], N);
    CHECK(!lanelog.inside && !lanelog.nested);
    CHECK(!pthread_equal(lanelog.thread, pthread_self()));
    /* one job alone is no batch: no begin/end around it */
    lane_job one = {l, 42};
    CHECK_EQ(wv_lane_run(l, note_order, &one), 142);
    CHECK_EQ(lanelog.nbatches, 1);
    CHECK_EQ(wv_lane_load(l), 0);
    CHECK_EQ(wv_lane_busy_since(l), 0);
    wv_lane_free(l);
    return 0;
}

static void test_lane_runs_jobs_in_order_and_a_pass_as_one_batch(void **state)
{
    assert_int_equal(run_in_rt(1, lane_order_and_batches, NULL), 0);
    assert_checks_passed();
}

static atomic_int lane_ran;

static int block_200ms(void *arg)
{
    sleep_real_ms(200);
    atomic_fetch_add(&lane_ran, 1);
    return 0;
}

static int count_ran(void *arg)
{
    atomic_fetch_add(&lane_ran, 10);
    return 0;
}

static int run_blocker(void *arg)
{
    return wv_lane_run(arg, block_200ms, NULL);
}

static int lane_deadline(void *arg)
{
    atomic_store(&lane_ran, 0);
    wv_lane *l;
    REQUIRE_EQ(wv_lane_new(NULL, &l), 0);
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, run_blocker, l, NULL), 0);
    wv_sleep_ms(20); /* the blocker runs */
    CHECK(wv_lane_busy_since(l) > 0);
    CHECK_EQ(wv_lane_load(l), 1);
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(50));
    CHECK_EQ(wv_lane_run(l, count_ran, NULL), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 45, 150); /* not after the blocker */
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(atomic_load(&lane_ran), 1); /* the dropped job never ran */
    CHECK_EQ(wv_lane_load(l), 0);
    wv_lane_free(l);
    return 0;
}

static void test_lane_deadline_while_queued_drops_the_job(void **state)
{
    assert_int_equal(run_in_rt(1, lane_deadline, NULL), 0);
    assert_checks_passed();
}

static int from_shard_1(void *arg)
{
    return wv_lane_run(arg, count_ran, NULL);
}

static int lane_other_shard(void *arg)
{
    if (wv_shard_id() != 0)
        return 0;
    wv_lane *l;
    REQUIRE_EQ(wv_lane_new(NULL, &l), 0);
    CHECK_EQ(wv_shard_call(1, from_shard_1, l), -EXDEV);
    wv_lane_free(l);
    return 0;
}

static void test_lane_belongs_to_its_shard(void **state)
{
    assert_int_equal(run_in_rt(2, lane_other_shard, NULL), 0);
    wv_lane *l = (wv_lane *)1;
    assert_int_equal(wv_lane_new(NULL, &l), -EPERM);
    assert_null(l);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offload_runs_the_job_on_another_thread_and_returns_its_result),
        cmocka_unit_test(test_offload_returns_a_negative_job_result_unchanged),
        cmocka_unit_test(test_shard_keeps_running_fibers_while_a_job_blocks),
        cmocka_unit_test(test_deadline_while_the_job_is_queued_returns_promptly_and_drops_it),
        cmocka_unit_test(test_cancel_while_the_job_is_queued_returns_ecanceled_and_drops_it),
        cmocka_unit_test(test_deadline_while_the_job_runs_waits_for_it_and_returns_etimedout),
        cmocka_unit_test(test_cancel_while_the_job_runs_waits_for_it_and_returns_ecanceled),
        cmocka_unit_test(test_offload_cancelled_is_false_while_the_fiber_still_waits),
        cmocka_unit_test(test_1000_concurrent_offloads_all_complete_with_their_results),
        cmocka_unit_test(test_offload_threads_option_sets_how_many_jobs_run_at_once),
        cmocka_unit_test(test_offload_works_from_every_shard),
        cmocka_unit_test(test_offload_queued_counts_jobs_waiting_for_a_thread),
        cmocka_unit_test(test_lane_runs_jobs_in_order_and_a_pass_as_one_batch),
        cmocka_unit_test(test_lane_deadline_while_queued_drops_the_job),
        cmocka_unit_test(test_lane_belongs_to_its_shard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
