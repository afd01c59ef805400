/*
 * Offload: a pool of threads for blocking work (SQLite, file reads,
 * getaddrinfo) so a shard's loop never blocks.
 *
 * Jobs live on the waiting fiber's stack. The pool is process-wide, started
 * on first use, and takes jobs from one FIFO under a mutex: offload is for
 * work that blocks for micro- to milliseconds, so the lock is never the cost.
 * A finished job is posted back to its shard's mailbox, which wakes the
 * fiber. A job still queued when its fiber gives up is unlinked and never
 * runs; a running one is flagged (wv_offload_cancelled) and waited for.
 *
 * Waking. A thread is woken only when none is already on its way (`waking`),
 * and a woken thread that leaves jobs behind wakes the next: a burst of jobs
 * costs one wake-up per thread that helps, not one per job, and blocking
 * jobs still get every thread. Signals go out after the lock is released,
 * so the woken thread never wakes straight into the lock.
 *
 * Lanes (wv_lane) are the other shape: one thread per resource, for many
 * short jobs. Submitting does not wake the thread; an end-of-pass hook does,
 * once, so the jobs the shard's fibers queued in one pass of the loop go
 * over together. The thread takes the whole queue, runs it, and posts every
 * completion after the last job: posted one by one, the first would wake
 * the shard, which on a single core preempts the thread, and the batch
 * would fall apart into round trips again.
 */
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt/rt_internal.h"

typedef struct job job;
struct job {
    msg done;
    job *next, *prev;
    wv_fn *fn;
    void *arg;
    int result;
    shard *sh;
    wv_fiber *f;
    bool finished;          /* on the shard */
    _Atomic bool abandoned; /* the fiber gave up */
    bool queued;            /* in the FIFO; under the pool lock */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    pthread_t *threads;
    int nthreads;
    int queued; /* jobs in the FIFO */
    int idle;   /* threads waiting for a job */
    int waking; /* threads signalled that have not taken the lock yet */
    bool quit;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static _Thread_local job *running_job;

/* Caller holds the lock: whether to signal a thread (once it is released). */
static bool want_wake(void)
{
    if (!pool.head || pool.waking > 0 || pool.idle == 0)
        return false;
    pool.waking++;
    return true;
}

static void *worker(void *p)
{
    (void)p;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head && !pool.quit) {
            pool.idle++;
            pthread_cond_wait(&pool.cond, &pool.lock);
            pool.idle--;
            if (pool.waking > 0) /* a spurious wake-up may take another's count: harmless */
                pool.waking--;
        }
        if (!pool.head)
            break;
        job *j = pool.head;
        pool.queued--;
        pool.head = j->next;
        if (pool.head)
            pool.head->prev = NULL;
        else
            pool.tail = NULL;
        j->queued = false;
        bool wake = want_wake();
        pthread_mutex_unlock(&pool.lock);
        if (wake)
            pthread_cond_signal(&pool.cond);

        running_job = j;
        j->result = j->fn(j->arg);
        running_job = NULL;
        shard_post_msg(j->sh, &j->done); /* j may be gone once posted */
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Caller holds the lock. */
static int pool_start(void)
{
    if (pool.threads)
        return 0;
    int n = wv__rt->offload_threads;
    pool.threads = calloc((size_t)n, sizeof *pool.threads);
    if (!pool.threads)
        return -ENOMEM;
    pool.quit = false;
    pool.idle = pool.waking = 0;
    for (int i = 0; i < n; i++) {
        int e = pthread_create(&pool.threads[i], NULL, worker, NULL);
        if (e) {
            if (i == 0) {
                free(pool.threads);
                pool.threads = NULL;
                return -e;
            }
            break;
        }
        pool.nthreads++;
    }
    return 0;
}

void offload_shutdown(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.quit = true;
    pthread_cond_broadcast(&pool.cond);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.nthreads; i++)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pool.threads = NULL;
    pool.nthreads = 0;
    pool.quit = false;
}

static void job_done(msg *m)
{
    job *j = (job *)m;
    j->finished = true;
    fiber_wake(j->f, 0);
}

static int offload_run(wv_fn *fn, void *arg)
{
    wv_fiber *f = current();
    if (!f)
        return -EPERM;
    int rc = wv_check();
    if (rc < 0)
        return rc;
    job j = {.fn = fn, .arg = arg, .sh = f->sh, .f = f, .queued = true};
    j.done.run = job_done;

    pthread_mutex_lock(&pool.lock);
    rc = pool_start();
    if (rc < 0) {
        pthread_mutex_unlock(&pool.lock);
        return rc;
    }
    j.prev = pool.tail;
    if (pool.tail)
        pool.tail->next = &j;
    else
        pool.head = &j;
    pool.tail = &j;
    pool.queued++;
    bool wake = want_wake();
    pthread_mutex_unlock(&pool.lock);
    if (wake)
        pthread_cond_signal(&pool.cond);

    rc = 0;
    while (!j.finished) {
        rc = park(WV_NEVER, NULL, NULL);
        if (rc < 0)
            break;
    }
    if (j.finished)
        return j.result;

    /* the fiber gave up: drop the job if it has not started */
    pthread_mutex_lock(&pool.lock);
    bool dropped = j.queued;
    if (dropped) {
        pool.queued--;
        if (j.prev)
            j.prev->next = j.next;
        else
            pool.head = j.next;
        if (j.next)
            j.next->prev = j.prev;
        else
            pool.tail = j.prev;
    } else {
        atomic_store(&j.abandoned, true);
    }
    pthread_mutex_unlock(&pool.lock);
    if (!dropped)
        while (!j.finished)
            park_nocancel(NULL, NULL);
    return rc;
}

/* A job in flight counts as a wait outside the shard: the virtual clock
 * does not jump over it (timer.c). */
int wv_offload(wv_fn *fn, void *arg)
{
    shard *sh = wv__shard;
    if (!sh || !sh->cur)
        return -EPERM;
    sh->ext_waits++;
    int rc = offload_run(fn, arg);
    sh->ext_waits--;
    return rc;
}

bool wv_offload_cancelled(void)
{
    job *j = running_job;
    return j && atomic_load(&j->abandoned);
}

int wv_offload_threads(void)
{
    return wv__rt ? wv__rt->offload_threads : 0;
}

int wv_offload_queued(void)
{
    pthread_mutex_lock(&pool.lock);
    int n = pool.queued;
    pthread_mutex_unlock(&pool.lock);
    return n;
}

/* ------------------------------------------------------------------ lanes */

struct wv_lane {
    pthread_t thread;
    pthread_mutex_t lock;
    job *head, *tail;           /* queued, under lock */
    _Atomic int load;           /* queued or running */
    _Atomic int64_t busy_since; /* the running batch's start, 0 when idle */
    _Atomic int sleeping;       /* the thread waits on `word` */
    _Atomic uint32_t word;      /* futex: 1 when a wake-up is owed */
    shard *sh;                  /* whose fibers submit */
    wv_lane_opts opts;
    wv_pass_hook wake_hook; /* wakes the thread at the end of the pass */
    bool quit;              /* under lock */
};

static long futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
    return syscall(SYS_futex, addr, op, val, NULL, NULL, 0);
}

static void lane_wake(wv_lane *l)
{
    if (atomic_load(&l->sleeping)) {
        atomic_store(&l->word, 1);
        futex(&l->word, FUTEX_WAKE_PRIVATE, 1);
    }
}

static void lane_wake_hook(wv_pass_hook *h)
{
    lane_wake((wv_lane *)(void *)((char *)h - offsetof(wv_lane, wake_hook)));
}

static void *lane_main(void *p)
{
    wv_lane *l = p;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        if (!l->head) {
            if (l->quit)
                break;
            /* set under the lock: a job queued after it is seen by the
             * end-of-pass hook, which runs after the job was queued */
            atomic_store(&l->sleeping, 1);
            pthread_mutex_unlock(&l->lock);
            while (atomic_exchange(&l->word, 0) == 0)
                futex(&l->word, FUTEX_WAIT_PRIVATE, 0);
            atomic_store(&l->sleeping, 0);
            pthread_mutex_lock(&l->lock);
            continue;
        }
        job *batch = l->head;
        l->head = l->tail = NULL;
        int n = 0;
        for (job *j = batch; j; j = j->next, n++)
            j->queued = false;
        pthread_mutex_unlock(&l->lock);
        atomic_store(&l->busy_since, wv_now());
        bool grouped = n > 1 && l->opts.batch_begin;
        if (grouped)
            l->opts.batch_begin(l->opts.arg, n);
        for (job *j = batch; j; j = j->next) {
            running_job = j;
            j->result = j->fn(j->arg);
            running_job = NULL;
        }
        if (grouped && l->opts.batch_end)
            l->opts.batch_end(l->opts.arg);
        atomic_store(&l->busy_since, 0);
        /* every completion in the mailbox first, then one doorbell: rung
         * at the first, the shard would preempt us after one */
        for (job *j = batch; j;) {
            job *next = j->next; /* j may be gone once posted */
            atomic_fetch_sub(&l->load, 1);
            mailbox_push(&l->sh->mb, &j->done);
            j = next;
        }
        shard_ring(l->sh);
        pthread_mutex_lock(&l->lock);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

int wv_lane_new(const wv_lane_opts *opts, wv_lane **out)
{
    *out = NULL;
    shard *sh = wv__shard;
    if (!sh)
        return -EPERM;
    wv_lane *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    pthread_mutex_init(&l->lock, NULL);
    l->sh = sh;
    if (opts)
        l->opts = *opts;
    int e = pthread_create(&l->thread, NULL, lane_main, l);
    if (e) {
        pthread_mutex_destroy(&l->lock);
        free(l);
        return -e;
    }
    *out = l;
    return 0;
}

int wv_lane_load(const wv_lane *l)
{
    return atomic_load(&((wv_lane *)l)->load);
}

int64_t wv_lane_busy_since(const wv_lane *l)
{
    return atomic_load(&((wv_lane *)l)->busy_since);
}

static int lane_run(wv_lane *l, wv_fn *fn, void *arg)
{
    wv_fiber *f = current();
    if (!f)
        return -EPERM;
    if (f->sh != l->sh)
        return -EXDEV;
    int rc = wv_check();
    if (rc < 0)
        return rc;
    job j = {.fn = fn, .arg = arg, .sh = f->sh, .f = f, .queued = true};
    j.done.run = job_done;
    atomic_fetch_add(&l->load, 1);
    pthread_mutex_lock(&l->lock);
    j.prev = l->tail;
    if (l->tail)
        l->tail->next = &j;
    else
        l->head = &j;
    l->tail = &j;
    pthread_mutex_unlock(&l->lock);
    wv_pass_hook_queue(&l->wake_hook, lane_wake_hook);

    while (!j.finished) {
        rc = park(WV_NEVER, NULL, NULL);
        if (rc < 0)
            break;
    }
    if (j.finished)
        return j.result;
    /* the fiber gave up: drop the job if the thread has not taken it */
    pthread_mutex_lock(&l->lock);
    bool dropped = j.queued;
    if (dropped) {
        if (j.prev)
            j.prev->next = j.next;
        else
            l->head = j.next;
        if (j.next)
            j.next->prev = j.prev;
        else
            l->tail = j.prev;
    } else {
        atomic_store(&j.abandoned, true);
    }
    pthread_mutex_unlock(&l->lock);
    if (dropped)
        atomic_fetch_sub(&l->load, 1);
    else
        while (!j.finished)
            park_nocancel(NULL, NULL);
    return rc;
}

int wv_lane_run(wv_lane *l, wv_fn *fn, void *arg)
{
    shard *sh = wv__shard;
    if (!sh || !sh->cur)
        return -EPERM;
    sh->ext_waits++; /* as wv_offload's */
    int rc = lane_run(l, fn, arg);
    sh->ext_waits--;
    return rc;
}

void wv_lane_free(wv_lane *l)
{
    if (!l)
        return;
    wv_pass_hook_cancel(&l->wake_hook);
    pthread_mutex_lock(&l->lock);
    l->quit = true;
    pthread_mutex_unlock(&l->lock);
    atomic_store(&l->word, 1);
    futex(&l->word, FUTEX_WAKE_PRIVATE, 1);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
