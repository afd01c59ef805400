/*
 * weave runtime: fibers on one epoll loop per core ("shard").
 *
 * A weave program calls wv_main(), which starts one shard per CPU (a thread
 * with its own loop, timers and fibers) and runs the given function as the
 * first fiber on shard 0. Inside a fiber, code reads sequentially: a call that
 * would block (a socket read, a sleep, a channel receive, a mutex, an offload
 * job) suspends only the calling fiber while the shard runs the others.
 *
 * Conventions that hold for every call in this header:
 *
 *  - Errors are negative errno values; 0 (or a count) means success.
 *  - Every suspending call honours the calling fiber's deadline
 *    (wv_deadline_set) and returns -ETIMEDOUT once it has passed, and returns
 *    -ECANCELED once the fiber has been cancelled (its group was cancelled,
 *    or the runtime is shutting down). Cancellation is sticky: every later
 *    suspending call of that fiber returns -ECANCELED too, so code unwinds.
 *  - Times are int64_t nanoseconds on the monotonic clock (wv_now());
 *    WV_NEVER means "no deadline".
 *  - Objects (channels, groups, mutexes, ...) belong to the shard that made
 *    them; fibers of other shards talk through wv_shard_post/wv_shard_call.
 *  - Suspending calls must be made from a fiber; outside one they return
 *    -EPERM.
 */
#ifndef WEAVE_RT_H
#define WEAVE_RT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WV_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define WV_PRINTF(a, b)
#endif

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *wv_version(void);

/* ------------------------------------------------------------------ time */

#define WV_NEVER INT64_MAX

/* Monotonic clock in nanoseconds. */
int64_t wv_now(void);

/* The deadline `ms` milliseconds from now (saturates at WV_NEVER; a
 * negative `ms` gives a deadline in the past). */
int64_t wv_after_ms(int64_t ms);

/* The shard's clock as of its loop's last poll: no clock read at all,
 * behind wv_now() by at most the time its fibers have run since. For
 * deadlines and timestamps of a request, not for measuring durations.
 * wv_now() outside the runtime. */
int64_t wv_now_coarse(void);

/* ------------------------------------------------------------- the runtime */

typedef struct wv_main_opts {
    int shards;              /* loops/threads; 0 = $WEAVE_SHARDS, else one per CPU the
                                process may use (its affinity, capped by its cgroup's
                                CPU quota: a container's CPU limit, rounded up) */
    size_t stack_size;       /* default fiber stack; 0 = 128 KiB */
    int offload_threads;     /* blocking-work threads; 0 = 4 */
    bool no_signal_handling; /* leave SIGINT/SIGTERM alone */
    /* For tests: a virtual clock that jumps over idle time (Trio's
     * MockClock with autojump). Once every shard is asleep with its fibers
     * waiting only on timers, sleeps, deadlines and each other (none
     * runnable, no mail between shards, none waiting on a file descriptor
     * or on an offload or lane job), wv_now() jumps to the earliest timer,
     * which fires at once: a handler's wv_sleep_ms(1000) takes microseconds
     * while it sees a full second pass, and deadlines and timers keep
     * their order. Between jumps the clock runs at real speed, so a
     * socket's round trip or a computation still takes its time. One clock
     * for the process: the jumps persist after wv_main returns, and
     * wv_now() never goes back. Wall-clock time (log lines, HTTP Date,
     * signatures) is not virtual. docs/testing.md has the rules. */
    bool virtual_clock;
    /* With virtual_clock: while a fiber waits on a file descriptor (a
     * listening server, a database connection's reader) or blocking work,
     * the clock does not jump, unless the runtime has been idle this many
     * real milliseconds (Trio's autojump_threshold); 0 = never. */
    int64_t virtual_clock_threshold_ms;
} wv_main_opts;

/* A fiber's body. Its return value is what a group join or wv_shard_call
 * reports; a negative value other than -ECANCELED counts as a failure. */
typedef int wv_fn(void *arg);

/*
 * Start the shards, run fn(arg) as a fiber on shard 0 and return its result
 * once it has returned. Then every fiber still alive on any shard is
 * cancelled and waited for, the threads are joined and everything is freed.
 * SIGINT/SIGTERM request a graceful stop (see wv_stop_wait); a second one
 * ends the process at once. SIGPIPE is ignored.
 * Errors: -EBUSY if a runtime is already running, -EINVAL for bad options,
 * -ENOMEM / -errno when a thread, epoll or eventfd cannot be made.
 * `opts` may be NULL.
 */
int wv_main(const wv_main_opts *opts, wv_fn *fn, void *arg);

/* Request a graceful stop, as SIGINT/SIGTERM do. Safe from any thread. */
void wv_stop(void);

/* Has a stop been requested? */
bool wv_stopping(void);

/* Suspend until a stop is requested: 0, or -ECANCELED / -ETIMEDOUT. A server
 * fiber waits here, then drains and returns. */
int wv_stop_wait(void);

/* ------------------------------------------------------------------ fibers */

typedef struct wv_spawn_opts {
    size_t stack_size; /* 0 = the runtime default (wv_main_opts.stack_size) */
    const char *name;  /* shown in logs and stack-overflow reports; copied (31 bytes kept) */
} wv_spawn_opts;

/* Start fn(arg) in a new, detached fiber on the calling shard. It runs when
 * the caller next suspends or yields. `opts` may be NULL.
 * Errors: -EPERM outside the runtime, -ENOMEM when no stack can be mapped,
 * -ESHUTDOWN while the runtime is shutting down. */
int wv_spawn(wv_fn *fn, void *arg, const wv_spawn_opts *opts);

/* Let the other ready fibers run. 0, or -ECANCELED if the fiber is
 * cancelled (a cancellation checkpoint). */
int wv_yield(void);

/* Sleep without blocking the shard. 0, or -ETIMEDOUT if the fiber's own
 * deadline comes first, or -ECANCELED. */
int wv_sleep_ms(int64_t ms);
int wv_sleep_until(int64_t at);

/* The running fiber's deadline (WV_NEVER when none). */
int64_t wv_deadline(void);

/* Set the running fiber's deadline and return the previous one, so a scope
 * reads: `int64_t old = wv_deadline_set(wv_after_ms(500)); ...;
 * wv_deadline_set(old);`. Every suspending call inside applies it. */
int64_t wv_deadline_set(int64_t at);

/* 0, or -ECANCELED / -ETIMEDOUT when the fiber is cancelled or past its
 * deadline: a checkpoint for long computations that do not suspend. */
int wv_check(void);

/* Has the running fiber been cancelled? */
bool wv_cancelled(void);

/* Fibers alive on the calling shard, the running one included (0 outside
 * the runtime). */
int64_t wv_fibers_alive(void);

/* The running fiber's id (unique per process, never 0) and name ("" when it
 * has none). 0 / "" outside a fiber. */
uint64_t wv_fiber_id(void);
const char *wv_fiber_name(void);

/* ------------------------------------------- groups (structured concurrency) */

/*
 * A group owns the fibers spawned into it, like asyncio.TaskGroup: join waits
 * for all of them; the first child that fails (returns a negative value other
 * than -ECANCELED) cancels its siblings and its error is what join returns;
 * cancelling the group cancels every child. A group belongs to its shard.
 */
typedef struct wv_group wv_group;

/* NULL outside the runtime. */
wv_group *wv_group_new(void);

/* Spawn a child. Errors as wv_spawn, and -ECANCELED when the group has been
 * cancelled (the child is not started). */
int wv_group_spawn(wv_group *g, wv_fn *fn, void *arg, const wv_spawn_opts *opts);

/* Wait until every child has returned. Returns 0, or the first child's
 * failure. If the joining fiber is cancelled or its deadline passes, the
 * children are cancelled and waited for, and -ECANCELED / -ETIMEDOUT is
 * returned: join never leaves a child running. */
int wv_group_join(wv_group *g);

/* Cancel every child (now and later spawned). Does not wait. */
void wv_group_cancel(wv_group *g);

/* Children still running. */
int wv_group_count(const wv_group *g);

/* Cancel and wait for any children left, then free. NULL is ignored. */
void wv_group_free(wv_group *g);

/* ------------------------------------------------------------------ shards */

/* This shard's index (0-based), or -1 outside the runtime. */
int wv_shard_id(void);

/* Number of shards, or 0 outside the runtime. */
int wv_shard_count(void);

/* Run fn(arg) in a new fiber on `shard`, without waiting (fire and forget).
 * Safe from any shard's fiber, including the same shard.
 * Errors: -EINVAL bad shard, -ESHUTDOWN when shutting down, -EPERM outside
 * the runtime. */
int wv_shard_post(int shard, wv_fn *fn, void *arg);

/* Run fn(arg) in a fiber on `shard` and wait for its result. If the caller is
 * cancelled or its deadline passes, the remote fiber is cancelled and waited
 * for, and -ECANCELED / -ETIMEDOUT is returned (so `arg` may live on the
 * caller's stack). */
int wv_shard_call(int shard, wv_fn *fn, void *arg);

/* Run fn(arg) on every shard at once (a fiber each) and wait for all; returns
 * 0 or the first failure. The usual way to start one listener per shard. */
int wv_shard_each(wv_fn *fn, void *arg);

/* ------------------------------------------------------------------ timers */

/*
 * A callback timer on the shard's loop, for code that is not a fiber (idle
 * connection sweeps, protocol keepalives). The callback runs on the loop
 * between fibers and must not suspend; it may arm or stop any timer. Timers
 * fire in deadline order to within 1.024 us (the wheel's tick): never before
 * their deadline, at most one tick after it once the shard is free, and two
 * timers due within the same tick in either order. Arming and stopping are
 * O(1). Embed the struct and zero it first; its fields are private.
 */
typedef struct wv_timer wv_timer;
struct wv_timer {
    int64_t at;
    void (*cb)(wv_timer *t);
    uint32_t where_; /* private: the wheel slot + 1, 0 when not pending */
    uint32_t idx_;   /* private: index within that slot */
};

/* Arm (or re-arm) t to fire at `at` on the calling shard. -EPERM outside
 * the runtime. */
int wv_timer_start(wv_timer *t, int64_t at, void (*cb)(wv_timer *t));

/* Disarm; harmless when not pending. */
void wv_timer_stop(wv_timer *t);

static inline bool wv_timer_pending(const wv_timer *t)
{
    return t->where_ != 0;
}

/* ---------------------------------------------------------------- channels */

/*
 * A channel carries fixed-size elements (copied in and out) between fibers of
 * one shard. capacity 0 = rendezvous (a send waits for a receiver),
 * WV_CHAN_UNBOUNDED = never full (Python's asyncio.Queue()).
 */
typedef struct wv_chan wv_chan;

#define WV_CHAN_UNBOUNDED SIZE_MAX

/* NULL outside the runtime, or if elem_size is 0. */
wv_chan *wv_chan_new(size_t elem_size, size_t capacity);

/* Send one element; suspends while full. -EPIPE once closed. */
int wv_chan_send(wv_chan *c, const void *elem);

/* Receive one element; suspends while empty. After close, the buffered
 * elements are still delivered, then -EPIPE. */
int wv_chan_recv(wv_chan *c, void *elem);

/* wv_chan_recv with its own deadline (the earlier of it and the fiber's). */
int wv_chan_recv_until(wv_chan *c, void *elem, int64_t at);

/* Never suspend: -EAGAIN when the operation would have to wait. */
int wv_chan_try_send(wv_chan *c, const void *elem);
int wv_chan_try_recv(wv_chan *c, void *elem);

/* Close: wakes every waiting sender (-EPIPE) and, once drained, every
 * receiver (-EPIPE). Closing twice is harmless. */
void wv_chan_close(wv_chan *c);

/* Buffered elements. */
size_t wv_chan_len(const wv_chan *c);

/* Free; waiters (there should be none) are woken with -EPIPE first. */
void wv_chan_free(wv_chan *c);

enum { WV_RECV = 1, WV_SEND = 2 };

typedef struct wv_select_case {
    wv_chan *chan;
    int op;     /* WV_RECV or WV_SEND */
    void *elem; /* where a received element goes / what is sent */
    int result; /* set by wv_chan_select for the chosen case: 0 or -EPIPE */
} wv_select_case;

/* Wait until one of the cases can proceed, perform it, and return its index
 * (its `result` says 0 or -EPIPE for a closed channel). When several are
 * ready at once the first in the array wins. -ETIMEDOUT at `at` (or the
 * fiber's deadline), -ECANCELED, -EINVAL for a bad case. */
int wv_chan_select(wv_select_case *cases, int n, int64_t at);

/* ------------------------------------------------------- fiber sync (shard) */

/* Wait queue: private. */
typedef struct wv_waitq {
    void *head_;
    void *tail_;
} wv_waitq;

/* A fiber mutex. Zero-initialise (or `= {0}`); FIFO hand-off. */
typedef struct wv_mutex {
    wv_waitq q_;
    uint64_t owner_;
} wv_mutex;

/* 0, or -ECANCELED / -ETIMEDOUT (the lock is then not held), -EDEADLK if
 * the fiber already holds it. */
int wv_mutex_lock(wv_mutex *m);
int wv_mutex_trylock(wv_mutex *m); /* 0 or -EBUSY */
void wv_mutex_unlock(wv_mutex *m);

/* A condition variable for wv_mutex. Zero-initialise. */
typedef struct wv_cond {
    wv_waitq q_;
} wv_cond;

/* Atomically release m and wait for a signal; m is held again on return,
 * whatever the result: 0, -ECANCELED, -ETIMEDOUT. */
int wv_cond_wait(wv_cond *c, wv_mutex *m);
void wv_cond_signal(wv_cond *c);
void wv_cond_broadcast(wv_cond *c);

/* An event: a flag fibers wait for (asyncio.Event). Zero-initialise. */
typedef struct wv_event {
    wv_waitq q_;
    bool set_;
} wv_event;

int wv_event_wait(wv_event *e); /* 0 at once if set */

/* Wait for e even when the fiber is cancelled or past its deadline (a
 * shielded wait, as Trio calls it): for teardown that must see another
 * fiber let go of memory before freeing it. Use only for waits that are
 * sure to end soon. */
void wv_event_wait_shielded(wv_event *e);
void wv_event_set(wv_event *e); /* wakes every waiter */
void wv_event_clear(wv_event *e);
static inline bool wv_event_is_set(const wv_event *e)
{
    return e->set_;
}

/* A wait group: wait until a counter drops to zero (Go's sync.WaitGroup).
 * Zero-initialise. */
typedef struct wv_waitgroup {
    wv_waitq q_;
    int64_t count_;
} wv_waitgroup;

void wv_waitgroup_add(wv_waitgroup *wg, int64_t n);
void wv_waitgroup_done(wv_waitgroup *wg);
int wv_waitgroup_wait(wv_waitgroup *wg);

/* ----------------------------------------------------------------- offload */

/*
 * Run blocking work (SQLite, file reads, getaddrinfo) on the offload thread
 * pool; the calling fiber suspends, the shard keeps running. Returns fn's
 * result. If the fiber is cancelled or its deadline passes while the job is
 * still queued, the job is dropped and -ECANCELED / -ETIMEDOUT returned; once
 * it has started it cannot be stopped from outside, so the fiber waits for it
 * (fn may poll wv_offload_cancelled() to finish early) and then returns
 * -ECANCELED / -ETIMEDOUT. fn must not call fiber functions.
 */
int wv_offload(wv_fn *fn, void *arg);

/* Inside an offload job: has the waiting fiber given up on it? */
bool wv_offload_cancelled(void);

/*
 * A lane: a thread of its own for blocking work on one resource that no
 * two threads may use at once (a SQLite connection), made for many short
 * jobs. Jobs from the fibers of one shard run in the order they came. The
 * thread is woken at most once per pass of the shard's loop, runs every job
 * it finds, and hands them all back at once, so a burst of N jobs costs
 * one wake-up each way instead of N. wv_offload's rules hold for each job
 * (fn must not call fiber functions; the deadline and cancellation drop a
 * job still queued, and a running one is waited for; wv_offload_cancelled
 * works inside it). A lane belongs to the shard that made it.
 */
typedef struct wv_lane wv_lane;

typedef struct wv_lane_opts {
    /* called on the lane's thread before and after a batch of n > 1 jobs
     * (a database runs them in one transaction); either may be NULL */
    void (*batch_begin)(void *arg, int n);
    void (*batch_end)(void *arg);
    void *arg;
} wv_lane_opts;

/* opts may be NULL. -EPERM outside the runtime, -ENOMEM, -errno when the
 * thread cannot start. */
int wv_lane_new(const wv_lane_opts *opts, wv_lane **out);

/* Run fn(arg) on the lane and return its result (see wv_offload for the
 * errors). -EXDEV from another shard. */
int wv_lane_run(wv_lane *l, wv_fn *fn, void *arg);

/* Jobs queued or running on the lane now. */
int wv_lane_load(const wv_lane *l);

/* When the batch the lane's thread is running began (wv_now's clock), or
 * 0 when it is idle: a caller choosing among lanes can avoid one stuck
 * behind a long job. */
int64_t wv_lane_busy_since(const wv_lane *l);

/* Stop the thread once its jobs are done, and free the lane. From the
 * lane's shard, with no fiber waiting in wv_lane_run. NULL is ignored. */
void wv_lane_free(wv_lane *l);

/* Jobs waiting for an offload thread (from every shard) right now. */
int wv_offload_queued(void);

/* The offload pool's size (wv_main_opts.offload_threads), 0 outside the
 * runtime. */
int wv_offload_threads(void);

/* --------------------------------------------------- file descriptors, I/O */

enum { WV_IN = 1, WV_OUT = 2, WV_FRESH = 4 };

/*
 * Wait until fd is readable (WV_IN) and/or writable (WV_OUT), or `at`.
 * Returns the ready events (> 0), -ETIMEDOUT, -ECANCELED, -EBUSY if another
 * fiber already waits on that direction of fd, -EBADF if the fd was closed
 * with wv_close meanwhile. The fd stays registered with the shard's epoll
 * (edge-triggered) until wv_close() or wv_fd_forget(). After it reports
 * WV_IN, the next wv_read reads at once (it does not wait for a further
 * edge because an earlier read came back short): so a fiber may wait for
 * input without holding a buffer, then take one and read. Once the peer's
 * FIN (or an error) has been seen, WV_IN is reported at once: no edge would
 * follow, and a read returns what is left, then 0.
 */
int wv_fd_wait(int fd, int events, int64_t at);

/* WV_FRESH in `events`: wait only for readiness that arrives after this
 * call. For code that drives the fd with its own system calls (an SSL
 * library, a protocol's own recv) and has just seen EAGAIN: readiness the
 * runtime recorded before that EAGAIN is stale, and waiting on it would spin.
 * The plain helpers below do this themselves. */

/* Forget fd (before closing it by other means than wv_close). */
void wv_fd_forget(int fd);

/* Forget fd, wake its waiters with -EBADF, close it. */
int wv_close(int fd);

/* Put fd in non-blocking mode. */
int wv_fd_nonblock(int fd);

/* socket(2), non-blocking and close-on-exec. */
int wv_socket(int domain, int type, int protocol);

/* accept4(2): suspends until a connection arrives; the new fd is
 * non-blocking and close-on-exec. addr/len may be NULL. */
int wv_accept(int fd, struct sockaddr *addr, socklen_t *len);

/* connect(2): suspends until connected. -ECONNREFUSED etc. from the peer. */
int wv_connect(int fd, const struct sockaddr *addr, socklen_t len);

/* read(2): suspends until some bytes (or EOF: 0) are there. */
ssize_t wv_read(int fd, void *buf, size_t n);

/* Write all n bytes (suspending as needed); returns n, or an error (bytes
 * may have been written before it). -EPIPE when the peer is gone. */
ssize_t wv_write(int fd, const void *buf, size_t n);

/* recv(2) and send(2) on a socket: wv_read's and wv_write's twins (the
 * same waiting; send never raises SIGPIPE), a layer thinner in the kernel
 * than read and write. -ENOTSOCK on anything else. */
ssize_t wv_recv(int fd, void *buf, size_t n, int flags);
ssize_t wv_send(int fd, const void *buf, size_t n, int flags);

/* Write every iovec in full (the array is not modified); total or error. */
ssize_t wv_writev(int fd, const struct iovec *iov, int iovcnt);

/* sendfile(2) until `count` bytes are sent or the file ends; returns the
 * bytes sent; *offset advances. */
ssize_t wv_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);

/* ------------------------------------------------------- end-of-pass hooks */

/*
 * Work for the shard's loop to run once the fibers ready in this pass have
 * run, before it polls for I/O: what several fibers wrote to one connection
 * during a pass, gathered into one system call (WebSocket frames). The
 * callback runs on the loop, between fibers, and must not suspend; it may
 * queue hooks, which run in the same pass. Embed the struct and zero it;
 * its fields are private.
 */
typedef struct wv_pass_hook wv_pass_hook;
struct wv_pass_hook {
    void (*fn_)(wv_pass_hook *h);
    wv_pass_hook *prev_, *next_;
    bool queued_;
};

/* Queue h on the calling shard, to run fn(h) at the end of this pass. A
 * hook already queued stays queued once (fn is updated). Outside the
 * runtime it does nothing. */
void wv_pass_hook_queue(wv_pass_hook *h, void (*fn)(wv_pass_hook *h));

/* Take h off its shard's queue if it is on it (before freeing it). */
void wv_pass_hook_cancel(wv_pass_hook *h);

/* Give the kernel back the pages of the running fiber's stack below its
 * current depth (1 KiB below it stays): for a fiber about to wait long
 * (an idle connection) after deep calls, so it holds one page, not the
 * handful its deepest call touched. One madvise; harmless outside a fiber. */
void wv_fiber_trim_stack(void);

/* --------------------------------------------------------------- reload */

/* Suspend until the process receives SIGHUP, the conventional "reload your
 * configuration" signal (nginx's), then return 0; or -ECANCELED /
 * -ETIMEDOUT. Any fiber of any shard may wait; each SIGHUP wakes every
 * waiter. While no fiber has ever waited, SIGHUP stops the runtime
 * gracefully, as SIGTERM does (a hung-up terminal still ends the program).
 * Not with wv_main_opts.no_signal_handling (-ENOTSUP). */
int wv_reload_wait(void);

/* --------------------------------------------------------- fault injection */

/*
 * Make a system call fail on purpose, to test error paths (as neco's fail
 * counters do): the `nth` call from now (1 = the next one) of that kind, in
 * any thread, fails with errno `err`. nth 0 disarms. For tests; costs one
 * relaxed load per call when unused.
 */
typedef enum wv_fault {
    WV_FAULT_ACCEPT,
    WV_FAULT_READ,
    WV_FAULT_WRITE, /* write and writev */
    WV_FAULT_CONNECT,
    WV_FAULT_SENDFILE,
    WV_FAULT_SOCKET,
    WV_FAULT_MMAP, /* fiber stacks */
    WV_FAULT_COUNT_
} wv_fault;

void wv_fault_inject(wv_fault what, int nth, int err);
void wv_fault_clear(void);

/* ---------------------------------------------------------------- calendar */

#define WV_US_PER_DAY INT64_C(86400000000)

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1..12, d 1..31; |y| < 10^16). */
static inline int64_t wv_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The proleptic Gregorian date y-m-d `days` days after 1970-01-01 (|days| < 4 * 10^18). */
static inline void wv_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ---------------------------------------------------------------- logging */

typedef enum wv_log_level {
    WV_LOG_DEBUG,
    WV_LOG_INFO,
    WV_LOG_WARN,
    WV_LOG_ERROR,
    WV_LOG_OFF,
} wv_log_level;

/* One line to stderr: "2026-11-25T20:30:01.123Z WARN  [shard 1] text".
 * The level starts at $WEAVE_LOG (debug, info, warn, error, off; default
 * info). */
void wv_log(wv_log_level level, const char *fmt, ...) WV_PRINTF(2, 3);
wv_log_level wv_log_level_get(void);
void wv_log_level_set(wv_log_level level);

#define wv_debug(...) wv_log(WV_LOG_DEBUG, __VA_ARGS__)
#define wv_info(...)  wv_log(WV_LOG_INFO, __VA_ARGS__)
#define wv_warn(...)  wv_log(WV_LOG_WARN, __VA_ARGS__)
#define wv_error(...) wv_log(WV_LOG_ERROR, __VA_ARGS__)

/* ----------------------------------------------------------------- errors */

/* The detail of the running fiber's last error ("" when none): a server's
 * message, an SQLSTATE, an HTTP status. Valid until the fiber's next error. */
const char *wv_errmsg(void);

/* Set that detail (printf-style) and return `err` as given, for `return
 * wv_fail(-EPROTO, "bad frame %d", n)` style code. */
int wv_fail(int err, const char *fmt, ...) WV_PRINTF(2, 3);

/* Forget the running fiber's detail (wv_errmsg() returns "" after it).
 * Costs nothing when there is none. */
void wv_errmsg_clear(void);

/* strerror for a negative errno ("Connection refused"). */
const char *wv_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
