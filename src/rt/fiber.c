/*
 * Fibers: stacks, spawning, switching, parking and waking, cancellation,
 * deadlines, and the stack-overflow report.
 *
 * Stacks are carved from slabs of STACKS_PER_SLAB default-size stacks, each
 * with a guard region below it. On Linux 6.13+ the guard is installed with
 * madvise(MADV_GUARD_INSTALL), which does not split the mapping, so 100k
 * fibers do not run into vm.max_map_count (65530 by default); older kernels
 * fall back to mprotect(PROT_NONE). Freed default stacks go back to the
 * shard's pool; when the shard goes idle, the pages of all but the warmest
 * (the top of the pool, reused first: as many as the shard recently ran
 * fibers at once, POOL_WARM at least) are given back to the kernel
 * (MADV_DONTNEED), so a burst of fibers does not pin memory for long and
 * the fibers of a steady load reuse warm stacks.
 *
 * A fiber's record (struct wv_fiber) lives at the top of its own stack, so a
 * parked fiber costs the pages its stack touched and nothing else.
 *
 * Switching is direct: a fiber that parks hands the CPU to the next ready
 * fiber; only when the run queue is empty (or FIBER_BUDGET fibers ran in a
 * row) does the shard's scheduler context poll epoll again.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "rt/rt_internal.h"

#ifdef WV_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define WV_VALGRIND 1
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

enum {
    GUARD_SIZE = 16 * 1024,
    STACKS_PER_SLAB = 16,
    POOL_WARM = 256,
    FIBER_BUDGET = 1024,
    ALTSTACK_SIZE = 64 * 1024,
};

#define FIBER_RECORD_SIZE ((sizeof(wv_fiber) + 63) & ~(size_t)63)

void wv__fiber_main(wv_fiber *f) __attribute__((noreturn, used, visibility("hidden")));

static _Atomic uint64_t next_fiber_id = 1;
static _Atomic int guard_by_madvise = 1;

/* ------------------------------------------------------------------ time */

int64_t wv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* the virtual clock's jumps (timer.c); 0 without one */
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec +
           atomic_load_explicit(&wv__clock_offset, memory_order_relaxed);
}

int64_t wv_now_coarse(void)
{
    shard *sh = wv__shard;
    return sh ? sh->now : wv_now();
}

int64_t wv_after_ms(int64_t ms)
{
    int64_t now = wv_now();
    if (ms >= (WV_NEVER - now) / 1000000)
        return WV_NEVER;
    return now + ms * 1000000;
}

int64_t effective_deadline(wv_fiber *f, int64_t at)
{
    return at < f->deadline ? at : f->deadline;
}

/* ---------------------------------------------------------------- stacks */

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

static size_t round_stack(size_t n)
{
    size_t ps = page_size();
    if (n < 16 * 1024)
        n = 16 * 1024;
    return (n + ps - 1) & ~(ps - 1);
}

static int guard(char *lo)
{
    if (atomic_load_explicit(&guard_by_madvise, memory_order_relaxed)) {
        if (madvise(lo, GUARD_SIZE, MADV_GUARD_INSTALL) == 0)
            return 0;
        atomic_store(&guard_by_madvise, 0); /* kernel before 6.13 */
    }
    return mprotect(lo, GUARD_SIZE, PROT_NONE) == 0 ? 0 : -errno;
}

/* Map `count` stacks of `size` usable bytes, each above its guard. Returns
 * the mapping, or NULL with *err set. */
static char *map_stacks(size_t size, int count, int *err)
{
    if (FAULT(WV_FAULT_MMAP, err))
        return NULL;
    size_t span = (GUARD_SIZE + size) * (size_t)count;
    char *m = mmap(NULL, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    for (int i = 0; i < count; i++) {
        int rc = guard(m + (GUARD_SIZE + size) * (size_t)i);
        if (rc < 0) {
            munmap(m, span);
            *err = rc;
            return NULL;
        }
    }
    return m;
}

static void pool_push(shard *sh, char *lo)
{
    if (sh->pool_n == sh->pool_cap) {
        size_t cap = sh->pool_cap ? sh->pool_cap * 2 : 64;
        char **v = realloc(sh->stack_pool, cap * sizeof *v);
        if (!v)
            die("out of memory growing the stack pool");
        sh->stack_pool = v;
        sh->pool_cap = cap;
    }
    sh->stack_pool[sh->pool_n++] = lo;
}

/* A default-size stack from the pool, mapping a new slab when empty. */
static char *pool_take(shard *sh, int *err)
{
    if (sh->pool_n == 0) {
        size_t size = wv__rt->stack_size;
        char *m = map_stacks(size, STACKS_PER_SLAB, err);
        if (!m)
            return NULL;
        for (int i = STACKS_PER_SLAB - 1; i >= 0; i--)
            pool_push(sh, m + (GUARD_SIZE + size) * (size_t)i + GUARD_SIZE);
    }
    char *lo = sh->stack_pool[--sh->pool_n];
    if (sh->pool_n < sh->pool_clean)
        sh->pool_clean = sh->pool_n;
    return lo;
}

/* Give the pages of idle stacks back to the kernel, all but the warmest:
 * as many as the shard ran fibers at once in the last second or two, and
 * POOL_WARM at least. The pool is a stack (the last freed is the first
 * reused), so the warmest are its top entries, the ones the next fibers
 * get: a steady load (a fiber per request, per HTTP/2 stream) reuses them
 * without a page fault, and a burst's stacks are given back once the
 * shard has been quieter for a second. Called when the shard is about to
 * sleep, so a burst of fibers costs no syscalls while it runs. Entries
 * below pool_clean are clean already (given back at an earlier trim, or
 * not handed out since). */
void pool_trim(shard *sh)
{
    int64_t now = wv_now();
    if (now - sh->peak_since > 1000 * 1000 * 1000) {
        sh->fiber_peak_before = sh->fiber_peak;
        sh->fiber_peak = sh->nfibers;
        sh->peak_since = now;
    }
    int64_t peak = sh->fiber_peak > sh->fiber_peak_before ? sh->fiber_peak : sh->fiber_peak_before;
    size_t warm = peak > POOL_WARM ? (size_t)peak : POOL_WARM;
    size_t keep_from = sh->pool_n > warm ? sh->pool_n - warm : 0;
    for (size_t i = sh->pool_clean; i < keep_from; i++)
        madvise(sh->stack_pool[i], wv__rt->stack_size, MADV_DONTNEED);
    if (keep_from > sh->pool_clean)
        sh->pool_clean = keep_from;
}

/* noinline: __builtin_frame_address must be this function's own frame */
__attribute__((noinline)) void wv_fiber_trim_stack(void)
{
    wv_fiber *f = current();
    if (!f)
        return;
    uintptr_t ps = page_size(), lo = (uintptr_t)f->stack_lo;
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    if (sp < lo || sp >= lo + f->stack_size)
        return; /* not on the fiber's stack (cannot happen; be safe) */
    /* 1 KiB below this frame stays: the madvise call's own frames, and the
     * caller's wait that follows (in the same page, usually) */
    uintptr_t keep = (sp - 1024) & ~(ps - 1);
    if (keep > lo)
        madvise((void *)lo, keep - lo, MADV_DONTNEED);
}

static void stack_release(shard *sh, wv_fiber *f)
{
    char *lo = f->stack_lo;
    size_t size = f->stack_size;
#ifdef WV_VALGRIND
    VALGRIND_STACK_DEREGISTER(f->valgrind_id);
#endif
#ifdef WV_ASAN
    /* frames that never returned leave poisoned redzones behind */
    __asan_unpoison_memory_region(lo, size);
#endif
    if (f->pooled) {
        pool_push(sh, lo);
    } else {
        munmap(lo - GUARD_SIZE, GUARD_SIZE + size);
    }
}

/* Slabs are never unmapped while the process lives (the pool keeps their
 * stacks); at shutdown only the pool vector goes. */
void stacks_free(shard *sh)
{
    free(sh->stack_pool);
    sh->stack_pool = NULL;
    sh->pool_n = sh->pool_cap = 0;
}

/* ------------------------------------------------------------- switching */

static inline void switch_context(void **save, void *next_sp, void **fake_save, const void *lo,
                                  size_t size)
{
#ifdef WV_ASAN
    __sanitizer_start_switch_fiber(fake_save, lo, size);
#else
    (void)fake_save, (void)lo, (void)size;
#endif
    wv__switch(save, next_sp);
#ifdef WV_ASAN
    __sanitizer_finish_switch_fiber(fake_save ? *fake_save : NULL, NULL, NULL);
#endif
}

void sched_ready(wv_fiber *f)
{
    shard *sh = f->sh;
    f->state = FIBER_READY;
    f->runq_next = NULL;
    if (sh->runq_tail)
        sh->runq_tail->runq_next = f;
    else
        sh->runq_head = f;
    sh->runq_tail = f;
}

wv_fiber *runq_pop(shard *sh)
{
    wv_fiber *f = sh->runq_head;
    if (f) {
        sh->runq_head = f->runq_next;
        if (!sh->runq_head)
            sh->runq_tail = NULL;
    }
    return f;
}

static wv_fiber *next_to_run(shard *sh)
{
    if (sh->budget <= 0)
        return NULL;
    sh->budget--;
    return runq_pop(sh);
}

/* The running fiber has parked or queued itself; run the next one. Returns
 * when the fiber is resumed. */
static inline __attribute__((always_inline)) void switch_to_next(shard *sh, wv_fiber *self)
{
    wv_fiber *next = next_to_run(sh);
    if (next == self) {
        self->state = FIBER_RUNNING;
        return;
    }
#ifdef WV_ASAN
    void **fake = &self->asan_fake;
#else
    void **fake = NULL;
#endif
    if (next) {
        sh->cur = next;
        next->state = FIBER_RUNNING;
        switch_context(&self->sp, next->sp, fake, next->stack_lo,
                       next->stack_size - FIBER_RECORD_SIZE);
    } else {
        sh->cur = NULL;
        switch_context(&self->sp, sh->sched_sp, fake, sh->sched_stack_lo, sh->sched_stack_size);
    }
    if (WV_UNLIKELY(sh->dead != NULL))
        fiber_recycle_dead(sh);
}

void sched_switch_to_next(void)
{
    shard *sh = wv__shard;
    switch_to_next(sh, sh->cur);
}

/* From the scheduler context: run f, and whatever it hands over to, until
 * control comes back. */
void sched_run(shard *sh, wv_fiber *f)
{
    sh->budget = FIBER_BUDGET;
    sh->cur = f;
    f->state = FIBER_RUNNING;
#ifdef WV_ASAN
    void **fake = (void **)&sh->sched_fake;
#else
    void **fake = NULL;
#endif
    switch_context(&sh->sched_sp, f->sp, fake, f->stack_lo, f->stack_size - FIBER_RECORD_SIZE);
    if (sh->dead)
        fiber_recycle_dead(sh);
}

void fiber_recycle_dead(shard *sh)
{
    wv_fiber *f = sh->dead;
    sh->dead = NULL;
    stack_release(sh, f);
}

/* ---------------------------------------------------------------- parking */

static void fiber_timeout(wv_timer *t)
{
    wv_fiber *f = (wv_fiber *)((char *)t - offsetof(wv_fiber, timer));
    /* a timer left armed by a wait that ended otherwise finds the fiber
     * running, or in a wait without a deadline: nothing to do */
    if (f->state == FIBER_WAITING && f->timed && !f->nocancel)
        fiber_wake(f, -ETIMEDOUT);
}

void fiber_wake(wv_fiber *f, int result)
{
    if (f->state != FIBER_WAITING)
        return;
    if (f->unlink) {
        unlink_fn *u = f->unlink;
        f->unlink = NULL;
        u(f->waitobj);
    }
    f->wake_result = result;
    sched_ready(f);
}

void fiber_cancel(wv_fiber *f)
{
    f->cancelled = true;
    if (f->state == FIBER_WAITING && !f->nocancel)
        fiber_wake(f, -ECANCELED);
}

/* A wait that ended at dl: when that was the fiber's deadline rather than
 * the waiter's own time (at), say so, so that whatever answers the error
 * (a 504) does not show an older, unrelated detail of the fiber's. */
static int deadline_passed(wv_fiber *f, int64_t dl, int64_t at)
{
    if (dl == f->deadline && dl < at)
        return wv_fail(-ETIMEDOUT, "the deadline passed");
    return -ETIMEDOUT;
}

int park(int64_t at, unlink_fn *unlink, void *waitobj)
{
    shard *sh = wv__shard;
    wv_fiber *f = sh->cur;
    if (WV_UNLIKELY(f->cancelled)) {
        if (unlink)
            unlink(waitobj);
        return -ECANCELED;
    }
    int64_t dl = effective_deadline(f, at);
    if (dl != WV_NEVER) {
        /* the pass's clock: a deadline it has not seen pass yet is caught
         * by its timer, which fires at the loop's next poll */
        if (dl <= sh->now) {
            if (unlink)
                unlink(waitobj);
            return deadline_passed(f, dl, at);
        }
        wheel_rearm(&sh->timers, &f->timer, dl);
    }
    f->timed = dl != WV_NEVER;
    f->unlink = unlink;
    f->waitobj = waitobj;
    f->wake_result = 0;
    f->state = FIBER_WAITING;
    sched_switch_to_next();
    /* The timer stays armed when the wait ends otherwise: the next wait
     * mostly has the same deadline (a request head arriving in pieces, a
     * body) or one in the same slot of the wheel (a connection's next idle
     * timeout), and re-arming in place costs less than a removal and an
     * insertion per wait. A leftover fires once and is dropped (see
     * fiber_timeout); the fiber's exit disarms it. */
    f->unlink = NULL;
    if (WV_UNLIKELY(f->wake_result == -ETIMEDOUT))
        return deadline_passed(f, dl, at);
    return f->wake_result;
}

void park_nocancel(unlink_fn *unlink, void *waitobj)
{
    wv_fiber *f = current();
    f->nocancel = true;
    f->timed = false;
    f->unlink = unlink;
    f->waitobj = waitobj;
    f->state = FIBER_WAITING;
    sched_switch_to_next();
    f->unlink = NULL;
    f->nocancel = false;
}

/* ------------------------------------------------------ creation and exit */

/* Ids are unique in the process; shards take them from the global counter
 * in blocks, so a spawn costs no atomic operation. */
static uint64_t new_fiber_id(shard *sh)
{
    if (sh->id_next == sh->id_end) {
        sh->id_next = atomic_fetch_add_explicit(&next_fiber_id, 4096, memory_order_relaxed);
        sh->id_end = sh->id_next + 4096;
    }
    return sh->id_next++;
}

wv_fiber *fiber_create(shard *sh, wv_fn *fn, void *arg, const wv_spawn_opts *opts, int *err)
{
    size_t size = opts && opts->stack_size ? round_stack(opts->stack_size) : wv__rt->stack_size;
    bool pooled = size == wv__rt->stack_size;
    char *lo;
    if (pooled) {
        lo = pool_take(sh, err);
        if (!lo)
            return NULL;
    } else {
        char *m = map_stacks(size, 1, err);
        if (!m)
            return NULL;
        lo = m + GUARD_SIZE;
    }
    wv_fiber *f = (wv_fiber *)(lo + size - FIBER_RECORD_SIZE);
    /* field by field rather than memset: a spawn is ~50 ns, and clearing
     * the whole record (its name buffer included) was a fifth of it */
    f->sh = sh;
    f->runq_next = NULL;
    f->wake_result = 0;
    f->cancelled = false;
    f->nocancel = false;
    f->unlink = NULL;
    f->waitobj = NULL;
    f->deadline = WV_NEVER;
    f->timer.where_ = 0;
    f->timer.cb = fiber_timeout;
    f->timed = false;
    f->fn = fn;
    f->arg = arg;
    f->id = new_fiber_id(sh);
    f->all_prev = NULL;
    f->group = NULL;
    f->grp_prev = f->grp_next = NULL;
    f->stack_lo = lo;
    f->stack_size = size;
    f->pooled = pooled;
    f->errmsg = NULL;
#ifdef WV_ASAN
    f->asan_fake = NULL;
#endif
    f->name[0] = '\0';
    if (opts && opts->name) {
        strncpy(f->name, opts->name, sizeof f->name - 1);
        f->name[sizeof f->name - 1] = '\0';
    }
    f->sp = wv__context_init(f, f);
#ifdef WV_VALGRIND
    f->valgrind_id = VALGRIND_STACK_REGISTER(lo, lo + size);
#endif
    f->all_next = sh->all;
    if (sh->all)
        sh->all->all_prev = f;
    sh->all = f;
    if (++sh->nfibers > sh->fiber_peak)
        sh->fiber_peak = sh->nfibers;
    sched_ready(f);
    return f;
}

static void __attribute__((noreturn)) fiber_exit(wv_fiber *f, int rc)
{
    shard *sh = f->sh;
    if (f->group)
        group_child_exited(f, rc);
    else if (rc < 0 && rc != -ECANCELED)
        wv_debug("fiber %llu%s%s exited with %s", (unsigned long long)f->id, f->name[0] ? " " : "",
                 f->name, wv_strerror(rc));
    if (f->all_prev)
        f->all_prev->all_next = f->all_next;
    else
        sh->all = f->all_next;
    if (f->all_next)
        f->all_next->all_prev = f->all_prev;
    sh->nfibers--;
    if (f->timer.where_)
        wheel_remove(&sh->timers, &f->timer); /* left armed by its last wait */
    if (f->errmsg) {
        free(f->errmsg);
        f->errmsg = NULL;
    }
    f->state = FIBER_DEAD;
    sh->dead = f; /* recycled by whoever runs next, once off this stack */

    void *dummy;
    wv_fiber *next = next_to_run(sh);
    if (next) {
        sh->cur = next;
        next->state = FIBER_RUNNING;
        switch_context(&dummy, next->sp, NULL, next->stack_lo,
                       next->stack_size - FIBER_RECORD_SIZE);
    } else {
        sh->cur = NULL;
        switch_context(&dummy, sh->sched_sp, NULL, sh->sched_stack_lo, sh->sched_stack_size);
    }
    __builtin_unreachable();
}

void wv__fiber_main(wv_fiber *f)
{
#ifdef WV_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    if (f->sh->dead)
        fiber_recycle_dead(f->sh);
    /* even a fiber cancelled before it started runs: its first suspending
     * call returns -ECANCELED, and code after it (a reply, a cleanup) runs */
    fiber_exit(f, f->fn(f->arg));
}

/* ------------------------------------------------------------- public API */

int wv_spawn(wv_fn *fn, void *arg, const wv_spawn_opts *opts)
{
    shard *sh = wv__shard;
    if (!sh)
        return -EPERM;
    if (sh->terminating)
        return -ESHUTDOWN;
    int err = 0;
    return fiber_create(sh, fn, arg, opts, &err) ? 0 : err;
}

int wv_yield(void)
{
    shard *sh = wv__shard;
    wv_fiber *f = sh ? sh->cur : NULL;
    if (WV_UNLIKELY(!f))
        return -EPERM;
    if (WV_UNLIKELY(f->cancelled))
        return -ECANCELED;
    sched_ready(f);
    switch_to_next(sh, f);
    return f->cancelled ? -ECANCELED : 0;
}

int wv_sleep_until(int64_t at)
{
    wv_fiber *f = current();
    if (!f)
        return -EPERM;
    int rc = park(at, NULL, NULL);
    if (rc == -ETIMEDOUT && at <= f->deadline)
        return 0; /* our own wake-up time, not the fiber's deadline */
    return rc;
}

int wv_sleep_ms(int64_t ms)
{
    return wv_sleep_until(wv_after_ms(ms));
}

int64_t wv_deadline(void)
{
    wv_fiber *f = current();
    return f ? f->deadline : WV_NEVER;
}

int64_t wv_deadline_set(int64_t at)
{
    wv_fiber *f = current();
    if (!f)
        return WV_NEVER;
    int64_t old = f->deadline;
    f->deadline = at;
    return old;
}

int wv_check(void)
{
    wv_fiber *f = current();
    if (!f)
        return 0;
    if (f->cancelled)
        return -ECANCELED;
    if (f->deadline != WV_NEVER && f->deadline <= wv_now())
        return wv_fail(-ETIMEDOUT, "the deadline passed");
    return 0;
}

bool wv_cancelled(void)
{
    wv_fiber *f = current();
    return f && f->cancelled;
}

uint64_t wv_fiber_id(void)
{
    wv_fiber *f = current();
    return f ? f->id : 0;
}

const char *wv_fiber_name(void)
{
    wv_fiber *f = current();
    return f ? f->name : "";
}

/* ------------------------------------------------------ stack overflow */

static struct sigaction old_segv, old_bus;
static _Thread_local void *altstack;

static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s && at < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_u64(char *buf, size_t at, size_t cap, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at < cap)
        buf[at++] = tmp[--n];
    return at;
}

static void segv_handler(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    shard *sh = wv__shard;
    wv_fiber *f = sh ? sh->cur : NULL;
    char *addr = si->si_addr;
    if (f && addr >= f->stack_lo - GUARD_SIZE && addr < f->stack_lo) {
        char text[256];
        size_t n = 0, cap = sizeof text;
        n = put(text, n, cap, "weave: stack overflow in fiber '");
        n = put(text, n, cap, f->name[0] ? f->name : "(unnamed)");
        n = put(text, n, cap, "' (id ");
        n = put_u64(text, n, cap, f->id);
        n = put(text, n, cap, ", stack ");
        n = put_u64(text, n, cap, f->stack_size);
        n = put(text, n, cap, " bytes): give it a larger wv_spawn_opts.stack_size\n");
        ssize_t w = write(STDERR_FILENO, text, n);
        (void)w;
        signal(sig, SIG_DFL);
        return; /* the access faults again and the default action ends us */
    }
    /* not ours: hand the fault to whoever had it before (ASan, default) */
    sigaction(sig, sig == SIGSEGV ? &old_segv : &old_bus, NULL);
}

void overflow_handler_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

void overflow_altstack_setup(void)
{
    stack_t ss;
    if (sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE) && ss.ss_size >= ALTSTACK_SIZE)
        return; /* the thread already has one (ASan sets its own) */
    altstack = malloc(ALTSTACK_SIZE);
    if (!altstack)
        return;
    ss.ss_sp = altstack;
    ss.ss_size = ALTSTACK_SIZE;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
}

void overflow_altstack_free(void)
{
    if (!altstack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(altstack);
    altstack = NULL;
}

int64_t wv_fibers_alive(void)
{
    shard *sh = wv__shard;
    return sh ? sh->nfibers : 0;
}
