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
 */
#include <pthread.h>
#include <stdlib.h>

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

int wv_offload(wv_fn *fn, void *arg)
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

bool wv_offload_cancelled(void)
{
    job *j = running_job;
    return j && atomic_load(&j->abandoned);
}

int wv_offload_queued(void)
{
    pthread_mutex_lock(&pool.lock);
    int n = pool.queued;
    pthread_mutex_unlock(&pool.lock);
    return n;
}
