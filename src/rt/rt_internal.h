/*
 * Private structures of the runtime, shared by the files of src/rt/.
 *
 * The picture: a process has one `runtime` with N `shard`s. A shard is a
 * thread running `shard_loop` on its native stack (the "scheduler context")
 * over an epoll set, a timer heap, a run queue of ready fibers and a mailbox
 * other threads post into. A fiber is a stack (mmap'd, guard page below,
 * pooled per shard) whose top holds its `wv_fiber` record. Fibers switch
 * directly to the next ready fiber; the scheduler context runs only when the
 * run queue is empty or a fairness budget is spent, to poll for I/O.
 */
#ifndef WEAVE_RT_INTERNAL_H
#define WEAVE_RT_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/rt.h"

/* Everything declared below is internal to the library: hidden, so calls
 * between its files bind directly instead of through the PLT. */
#pragma GCC visibility push(hidden)

#if defined(__SANITIZE_ADDRESS__)
#define WV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WV_ASAN 1
#endif
#endif

#define WV_LIKELY(x)   __builtin_expect(!!(x), 1)
#define WV_UNLIKELY(x) __builtin_expect(!!(x), 0)

typedef struct wv_fiber wv_fiber;
typedef struct shard shard;

/* ---- context switch (switch_*.S) */

/* Save callee-saved registers on the current stack, store the stack pointer
 * in *save, load `next` and return into whatever it saved. */
void wv__switch(void **save, void *next);
/* First instructions of a new fiber: calls fiber_main(fiber). */
void wv__fiber_start(void);
/* Prepare a fresh stack whose top is `top` so that switching to the returned
 * stack pointer enters wv__fiber_start with `fiber` as argument. */
void *wv__context_init(void *top, wv_fiber *fiber);

/* ---- fibers */

enum fiber_state { FIBER_READY, FIBER_RUNNING, FIBER_WAITING, FIBER_DEAD };

/* A waiting fiber parked on something registers how to undo that
 * registration, so a timeout or cancellation can wake it cleanly. */
typedef void unlink_fn(void *waitobj);

struct wv_fiber {
    void *sp; /* saved stack pointer while not running */
    shard *sh;
    wv_fiber *runq_next;
    int state;
    int wake_result; /* what park() returns: 0, -ETIMEDOUT, -ECANCELED */
    bool cancelled;
    bool nocancel; /* parked in a wait cancellation must not interrupt */
    bool timed;    /* parked in a wait that `timer` ends (else the timer is a leftover) */
    unlink_fn *unlink;
    void *waitobj;
    int64_t deadline;
    wv_timer timer;
    wv_fn *fn;
    void *arg;
    uint64_t id;
    /* all fibers of the shard, for cancel-all at shutdown */
    wv_fiber *all_prev, *all_next;
    /* group membership */
    struct wv_group *group;
    wv_fiber *grp_prev, *grp_next;
    /* stack */
    char *stack_lo; /* lowest usable byte (above the guard) */
    size_t stack_size;
    bool pooled;  /* default-size stack from the shard's pool */
    char *errmsg; /* lazily allocated wv_errmsg buffer */
#ifdef WV_ASAN
    void *asan_fake;
#endif
    unsigned valgrind_id;
    char name[32];
};

/* ---- timers: a hierarchical timing wheel (timer.c) */

enum { TICK_SHIFT = 10, LEVEL_BITS = 6, SLOTS = 64, LEVELS = 9 };

typedef struct timer_vec {
    wv_timer **v;
    uint32_t n, cap;
} timer_vec;

typedef struct timer_wheel {
    uint64_t now_tick; /* every tick before this one has been handled */
    uint64_t occupied[LEVELS];
    timer_vec slots[LEVELS * SLOTS];
    timer_vec due;   /* armed with a deadline already past */
    timer_vec spare; /* an empty array swapped in for a slot being emptied */
    uint64_t count;
} timer_wheel;

void wheel_init(timer_wheel *w, int64_t now);
void wheel_add(timer_wheel *w, wv_timer *t);
void wheel_remove(timer_wheel *w, wv_timer *t);
/* Arm t for `at`, whether it is armed or not: in place when `at` falls in
 * the slot it already sits in (no array work), else moved. */
void wheel_rearm(timer_wheel *w, wv_timer *t, int64_t at);
void wheel_advance(timer_wheel *w, int64_t now); /* fires what is due */
int64_t wheel_next(const timer_wheel *w);        /* when to call advance next */
void wheel_free(timer_wheel *w);

/* ---- the virtual clock (timer.c)
 *
 * wv_now() is CLOCK_MONOTONIC plus wv__clock_offset, which is 0 unless a
 * runtime ran with the virtual clock and jumped it forward (it never goes
 * back, so wv_now() stays monotonic for the whole process). */
extern _Atomic int64_t wv__clock_offset;
/* The loop is about to sleep (nothing runnable, mailbox empty) for
 * `timeout` ns (-1: no timer): publish whether the shard waits on timers
 * only and, when every shard does, jump the clock to the earliest timer.
 * Returns the timeout to sleep with (0 after a jump). `ran`: fibers ran
 * in this pass. */
int64_t vclock_idle(shard *sh, int64_t timeout, bool ran);
/* The loop woke: no longer quiet. active: it brought fd events or mail
 * (the threshold's idle time starts again). */
void vclock_woke(shard *sh, bool active);

/* ---- mailbox: Vyukov's intrusive multi-producer single-consumer queue */

typedef struct msg msg;
struct msg {
    _Atomic(msg *) next;
    void (*run)(msg *m); /* called on the target shard's loop; must not suspend */
};

typedef struct mailbox {
    _Atomic(msg *) head; /* producers push here */
    msg *tail;           /* the consumer pops here */
    msg stub;
} mailbox;

void mailbox_init(mailbox *mb);
void mailbox_push(mailbox *mb, msg *m); /* returns true if it was empty */
msg *mailbox_pop(mailbox *mb);
bool mailbox_empty(mailbox *mb);

/* ---- per-fd readiness records (edge-triggered epoll) */

typedef struct fdrec {
    wv_fiber *reader, *writer;
    int *reader_result, *writer_result;
    uint8_t registered;
    uint8_t ready;   /* WV_IN / WV_OUT seen and not yet consumed */
    uint8_t drained; /* the last read came back short: the socket was empty */
    uint8_t hup;     /* the peer's FIN (or an error) was seen: reads never wait */
} fdrec;

/* ---- shards */

struct shard {
    int id;
    int epfd;
    int evfd;  /* mailbox doorbell */
    int sigfd; /* shard 0 only, -1 elsewhere */
    pthread_t thread;
    void *sched_sp; /* the scheduler context's saved stack pointer */
    char *sched_stack_lo;
    size_t sched_stack_size;
    void *sched_fake; /* ASan's fake-stack handle of the scheduler context */
    wv_fiber *cur;
    wv_fiber *runq_head, *runq_tail;
    int budget; /* fibers run back to back before polling again */
    timer_wheel timers;
    mailbox mb;
    _Atomic int sleeping; /* in epoll_wait: posters must ring evfd */
    fdrec *fds;
    int nfds;
    wv_fiber *all; /* list of live fibers */
    int64_t nfibers;
    uint64_t id_next, id_end; /* this shard's block of fiber ids */
    int64_t last_heap_trim;   /* wv_now() of the last malloc_trim */
    char **stack_pool;        /* free default-size stacks (their lowest byte) */
    size_t pool_n, pool_cap;
    size_t pool_clean;  /* pool entries below this index hold no pages (trimmed, or unused since) */
    int64_t fiber_peak; /* the most fibers alive at once since peak_since */
    int64_t fiber_peak_before; /* ... in the window before that */
    int64_t peak_since;        /* when the window began (wv_now) */
    bool terminating;          /* cancel everything and leave once no fiber lives */
    wv_waitq stop_waiters;
    wv_fiber *dead;         /* a fiber that exited; its stack is recycled once off it */
    wv_pass_hook *deferred; /* wv_pass_hook_queue's queue */
    int64_t now;            /* wv_now() when the loop last polled: wv_now_coarse() */
    wv_waitq reload_waiters;
    /* fibers parked on something outside the shard's timers and fibers: an
     * fd (loop.c), an offload or lane job (offload.c). The virtual clock
     * never jumps over their waits (unless its threshold says so) */
    int ext_waits;
    /* the virtual clock (timer.c), when wv_main_opts.virtual_clock is on */
    bool vactive;          /* the last wake-up brought fd events or mail */
    int64_t vidle_since;   /* real time the shard last went idle (threshold) */
    _Atomic int vquiet;    /* published: asleep, waiting on timers only */
    _Atomic int64_t vnext; /* published with it: when its next timer is due */
};

typedef struct runtime {
    int nshards;
    shard *shards;
    size_t stack_size;
    int offload_threads;
    _Atomic bool stop_requested;
    _Atomic int signals_seen;
    _Atomic bool reload_wanted; /* a fiber has waited for SIGHUP */
    bool signals_handled;       /* !wv_main_opts.no_signal_handling */
    _Atomic bool exiting;
    bool vclock;           /* wv_main_opts.virtual_clock */
    int64_t vthreshold_ns; /* wv_main_opts.virtual_clock_threshold_ms, in ns */
} runtime;

extern runtime *wv__rt;
/* initial-exec: the library is built position-independent, and the default
 * TLS model would make every access a call to __tls_get_addr */
#define WV_TLS _Thread_local __attribute__((tls_model("initial-exec")))
extern WV_TLS shard *wv__shard;

static inline wv_fiber *current(void)
{
    shard *sh = wv__shard;
    return sh ? sh->cur : NULL;
}

/* fiber.c */
void sched_ready(wv_fiber *f);
void fiber_wake(wv_fiber *f, int result);
void fiber_cancel(wv_fiber *f);
int park(int64_t at, unlink_fn *unlink, void *waitobj);
void park_nocancel(unlink_fn *unlink, void *waitobj);
void sched_switch_to_next(void);
void sched_run(shard *sh, wv_fiber *f);
wv_fiber *runq_pop(shard *sh);
wv_fiber *fiber_create(shard *sh, wv_fn *fn, void *arg, const wv_spawn_opts *opts, int *err);
void fiber_recycle_dead(shard *sh);
void stacks_free(shard *sh);
void pool_trim(shard *sh);
/* Give the kernel the pages of the calling fiber's stack below its current
 * depth, less a page of margin: for a fiber about to wait a long time after
 * deep calls (a WebSocket going idle after its handshake). */
void overflow_handler_install(void);
void overflow_altstack_setup(void);
void overflow_altstack_free(void);
void shard_sched_stack_bounds(shard *sh);
int64_t effective_deadline(wv_fiber *f, int64_t at);

/* loop.c */
int shard_init(shard *sh, int id);
void shard_destroy(shard *sh);
void shard_loop(shard *sh);
void shard_post_msg(shard *target, msg *m);
void shard_ring(shard *target); /* wake it if it sleeps: after mailbox_push of a batch */
int shard_watch_signals(shard *sh, const sigset_t *set);
bool shard_should_exit(shard *sh);
void signals_received(shard *sh);
int fd_wait_again(int fd, int events); /* wv_fd_wait(fd, events | WV_FRESH, WV_NEVER) */
void fd_note_short_read(int fd);
bool fd_error_seen(int fd); /* an EPOLLERR / EPOLLHUP / EPOLLRDHUP came for fd */
int fd_wait_if_drained(int fd);
void fds_wake_all(shard *sh, int fd, int result);

/* group.c */
void group_child_exited(wv_fiber *f, int rc);

/* sync.c: intrusive FIFO wait queues of `waiter`s living on fiber stacks */
typedef struct waiter waiter;
struct waiter {
    wv_fiber *f;
    waiter *prev, *next;
    wv_waitq *q;
};
void waitq_push(wv_waitq *q, waiter *w);
void waitq_remove(wv_waitq *q, waiter *w);
waiter *waitq_pop(wv_waitq *q);
static inline bool waitq_empty(const wv_waitq *q)
{
    return q->head_ == NULL;
}
void waiter_unlink(void *w);
/* Park the current fiber on q until woken; 0 or -ETIMEDOUT / -ECANCELED. */
int waitq_wait(wv_waitq *q, int64_t at);
void waitq_wake_one(wv_waitq *q, int result);
void waitq_wake_all(wv_waitq *q, int result);

/* main.c */
void stop_wake_local(shard *sh);

/* offload.c */
void offload_shutdown(void);

/* io.c */
bool fault_hit(wv_fault what, int *err);
extern _Atomic int wv__faults_armed;

#define FAULT(what, err_out)                                                                       \
    (WV_UNLIKELY(atomic_load_explicit(&wv__faults_armed, memory_order_relaxed)) &&                 \
     fault_hit((what), (err_out)))

/* log.c */
void log_init_from_env(void);
void die(const char *fmt, ...) WV_PRINTF(1, 2) __attribute__((noreturn));

/* cpus.c: the CPUs this process may use (affinity, capped by its cgroup's
 * CPU quota, rounded up), and that quota alone, read from a cgroup file
 * system mounted at sysfs for the process whose /proc/PID/cgroup is
 * proc_cgroup (0: no limit), for the tests' fake trees. */
int wv__cpu_count(void);
int wv__cgroup_cpu_limit(const char *sysfs, const char *proc_cgroup);

#pragma GCC visibility pop

#endif
