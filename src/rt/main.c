/*
 * The runtime's life: wv_main starts the shards, runs the main fiber, and
 * tears everything down; graceful stop and signals; messages between shards
 * (post, call, each).
 *
 * Shutdown is two-phase so no cross-shard call can be left waiting on a
 * shard that already left: when the main fiber returns, every shard is told
 * to terminate (it cancels its fibers and refuses new ones, answering late
 * calls with -ESHUTDOWN). A shard whose last fiber has gone counts itself
 * idle, but keeps serving its mailbox until every shard is idle; then all
 * loops leave together and wv_main joins the threads.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "rt/rt_internal.h"

runtime *wv__rt;
WV_TLS shard *wv__shard;

static _Atomic bool running;

/* per-shard bookkeeping that other files need not see */
typedef struct shard_extra {
    msg terminate;
    msg stop;
    msg reload;
    _Atomic bool reload_posted; /* `reload` is in the mailbox */
    bool idle_counted;
} shard_extra;

static shard_extra *extras;
static _Atomic int busy_shards;
static int main_rc;

/* ------------------------------------------------------------- shutdown */

static void ring(shard *sh)
{
    uint64_t one = 1;
    ssize_t w = write(sh->evfd, &one, sizeof one);
    (void)w;
}

static void terminate_run(msg *m)
{
    shard *sh = wv__shard;
    (void)m;
    sh->terminating = true;
    for (wv_fiber *f = sh->all; f; f = f->all_next)
        fiber_cancel(f);
}

bool shard_should_exit(shard *sh)
{
    shard_extra *x = &extras[sh->id];
    if (!sh->terminating || sh->nfibers > 0)
        return false;
    if (!x->idle_counted) {
        x->idle_counted = true;
        if (atomic_fetch_sub(&busy_shards, 1) == 1)
            for (int i = 0; i < wv__rt->nshards; i++)
                ring(&wv__rt->shards[i]);
    }
    return atomic_load(&busy_shards) == 0;
}

static void begin_termination(void)
{
    atomic_store(&wv__rt->exiting, true);
    for (int i = 0; i < wv__rt->nshards; i++)
        shard_post_msg(&wv__rt->shards[i], &extras[i].terminate);
}

/* ------------------------------------------------------------ stopping */

static void stop_run(msg *m)
{
    (void)m;
    waitq_wake_all(&wv__shard->stop_waiters, 0);
}

void wv_stop(void)
{
    runtime *rt = wv__rt;
    if (!rt || atomic_exchange(&rt->stop_requested, true))
        return;
    for (int i = 0; i < rt->nshards; i++)
        shard_post_msg(&rt->shards[i], &extras[i].stop);
}

bool wv_stopping(void)
{
    return wv__rt && atomic_load(&wv__rt->stop_requested);
}

int wv_stop_wait(void)
{
    shard *sh = wv__shard;
    if (!sh || !sh->cur)
        return -EPERM;
    if (atomic_load(&wv__rt->stop_requested))
        return 0;
    return waitq_wait(&sh->stop_waiters, WV_NEVER);
}

/* ------------------------------------------------------------ reloading */

static void reload_run(msg *m)
{
    shard *sh = wv__shard;
    (void)m;
    atomic_store(&extras[sh->id].reload_posted, false);
    waitq_wake_all(&sh->reload_waiters, 0);
}

int wv_reload_wait(void)
{
    shard *sh = wv__shard;
    if (!sh || !sh->cur)
        return -EPERM;
    if (!wv__rt->signals_handled)
        return wv_fail(-ENOTSUP, "the runtime was started without signal handling");
    atomic_store(&wv__rt->reload_wanted, true);
    return waitq_wait(&sh->reload_waiters, WV_NEVER);
}

static void post_reload(void)
{
    runtime *rt = wv__rt;
    for (int i = 0; i < rt->nshards; i++)
        if (!atomic_exchange(&extras[i].reload_posted, true))
            shard_post_msg(&rt->shards[i], &extras[i].reload);
}

static const char *signal_name(int signo)
{
    return signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "SIGHUP";
}

void signals_received(shard *sh)
{
    struct signalfd_siginfo si;
    while (read(sh->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGHUP && atomic_load(&wv__rt->reload_wanted)) {
            wv_info("SIGHUP: reloading");
            post_reload();
            continue;
        }
        int seen = atomic_fetch_add(&wv__rt->signals_seen, 1);
        if (seen == 0) {
            wv_info("%s: stopping gracefully (send it again to stop at once)",
                    signal_name((int)si.ssi_signo));
            wv_stop();
        } else {
            static const char m[] = "weave: second signal, exiting now\n";
            ssize_t w = write(STDERR_FILENO, m, sizeof m - 1);
            (void)w;
            _exit(128 + (int)si.ssi_signo);
        }
    }
}

/* ---------------------------------------------------- cross-shard messages */

typedef struct post {
    msg m;
    wv_fn *fn;
    void *arg;
} post;

static void post_run(msg *m)
{
    post *p = (post *)m;
    shard *sh = wv__shard;
    if (!sh->terminating) {
        int err = 0;
        if (!fiber_create(sh, p->fn, p->arg, NULL, &err))
            wv_error("wv_shard_post: cannot start the fiber: %s", wv_strerror(err));
    }
    free(p);
}

int wv_shard_post(int target, wv_fn *fn, void *arg)
{
    runtime *rt = wv__rt;
    if (!rt || !wv__shard)
        return -EPERM;
    if (target < 0 || target >= rt->nshards)
        return -EINVAL;
    if (atomic_load(&rt->exiting))
        return -ESHUTDOWN;
    post *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    p->m.run = post_run;
    p->fn = fn;
    p->arg = arg;
    shard_post_msg(&rt->shards[target], &p->m);
    return 0;
}

typedef struct call {
    msg req, done, cancel;
    wv_fn *fn;
    void *arg;
    int result;
    shard *from;
    wv_fiber *caller; /* on `from` */
    wv_fiber *remote; /* on the target, while running */
    bool finished;    /* on `from` */
} call;

static int call_body(void *p)
{
    call *c = p;
    int rc = c->fn(c->arg);
    c->result = rc;
    c->remote = NULL;
    shard_post_msg(c->from, &c->done);
    return rc;
}

static void call_req_run(msg *m)
{
    call *c = (call *)((char *)m - offsetof(call, req));
    shard *sh = wv__shard;
    int err = -ESHUTDOWN;
    if (!sh->terminating) {
        wv_fiber *f = fiber_create(sh, call_body, c, NULL, &err);
        if (f) {
            c->remote = f;
            return;
        }
    }
    c->result = err;
    shard_post_msg(c->from, &c->done);
}

static void call_done_run(msg *m)
{
    call *c = (call *)((char *)m - offsetof(call, done));
    c->finished = true;
    if (c->caller->state == FIBER_WAITING)
        fiber_wake(c->caller, 0);
}

static void call_cancel_run(msg *m)
{
    call *c = (call *)((char *)m - offsetof(call, cancel));
    if (c->remote)
        fiber_cancel(c->remote);
}

int wv_shard_call(int target, wv_fn *fn, void *arg)
{
    runtime *rt = wv__rt;
    shard *sh = wv__shard;
    if (!rt || !sh || !sh->cur)
        return -EPERM;
    if (target < 0 || target >= rt->nshards)
        return -EINVAL;
    int rc = wv_check();
    if (rc < 0)
        return rc;
    call c = {.fn = fn, .arg = arg, .from = sh, .caller = sh->cur};
    c.req.run = call_req_run;
    c.done.run = call_done_run;
    c.cancel.run = call_cancel_run;
    shard_post_msg(&rt->shards[target], &c.req);
    while (!c.finished) {
        rc = park(WV_NEVER, NULL, NULL);
        if (rc < 0 && !c.finished) {
            /* give up: stop the remote fiber, and wait for it so `arg` and
             * `c` outlive it */
            shard_post_msg(&rt->shards[target], &c.cancel);
            while (!c.finished)
                park_nocancel(NULL, NULL);
            return rc;
        }
    }
    return c.result;
}

typedef struct each_child {
    int shard;
    wv_fn *fn;
    void *arg;
} each_child;

static int each_body(void *p)
{
    each_child *e = p;
    return wv_shard_call(e->shard, e->fn, e->arg);
}

int wv_shard_each(wv_fn *fn, void *arg)
{
    runtime *rt = wv__rt;
    if (!rt || !wv__shard || !wv__shard->cur)
        return -EPERM;
    each_child *kids = calloc((size_t)rt->nshards, sizeof *kids);
    wv_group *g = wv_group_new();
    if (!kids || !g) {
        free(kids);
        wv_group_free(g);
        return -ENOMEM;
    }
    int rc = 0;
    for (int i = 0; i < rt->nshards && rc == 0; i++) {
        kids[i] = (each_child){.shard = i, .fn = fn, .arg = arg};
        rc = wv_group_spawn(g, each_body, &kids[i], NULL);
    }
    if (rc < 0)
        wv_group_cancel(g);
    int jrc = wv_group_join(g);
    wv_group_free(g);
    free(kids);
    return rc < 0 ? rc : jrc;
}

int wv_shard_id(void)
{
    return wv__shard ? wv__shard->id : -1;
}

int wv_shard_count(void)
{
    return wv__rt && wv__shard ? wv__rt->nshards : 0;
}

/* -------------------------------------------------------------- wv_main */

typedef struct main_args {
    wv_fn *fn;
    void *arg;
} main_args;

static int main_body(void *p)
{
    main_args *a = p;
    main_rc = a->fn(a->arg);
    begin_termination();
    return main_rc;
}

static void *shard_thread(void *p)
{
    shard *sh = p;
    wv__shard = sh;
    overflow_altstack_setup();
    shard_sched_stack_bounds(sh);
    shard_loop(sh);
    overflow_altstack_free();
    wv__shard = NULL;
    return NULL;
}

static int shard_count_from(const wv_main_opts *o)
{
    if (o->shards)
        return o->shards;
    const char *env = getenv("WEAVE_SHARDS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end || n < 1 || n > 1024) {
            wv_error("WEAVE_SHARDS=%s: expected a number from 1 to 1024", env);
            return -1;
        }
        return (int)n;
    }
    return wv__cpu_count();
}

static void drain_mailbox(shard *sh)
{
    msg *m;
    wv__shard = sh;
    while ((m = mailbox_pop(&sh->mb)) != NULL)
        m->run(m);
    wv__shard = NULL;
}

int wv_main(const wv_main_opts *opts, wv_fn *fn, void *arg)
{
    wv_main_opts o = opts ? *opts : (wv_main_opts){0};
    if (!fn || o.shards < 0 || o.offload_threads < 0 || o.shards > 1024 ||
        o.virtual_clock_threshold_ms < 0 || o.virtual_clock_threshold_ms > INT64_MAX / 1000000)
        return -EINVAL;
    if (atomic_exchange(&running, true))
        return -EBUSY;
    log_init_from_env();
    int nshards = shard_count_from(&o);
    if (nshards < 0) {
        atomic_store(&running, false);
        return -EINVAL;
    }

    runtime *rt = calloc(1, sizeof *rt);
    shard *shards = calloc((size_t)nshards, sizeof *shards);
    extras = calloc((size_t)nshards, sizeof *extras);
    if (!rt || !shards || !extras) {
        free(rt);
        free(shards);
        free(extras);
        atomic_store(&running, false);
        return -ENOMEM;
    }
    rt->nshards = nshards;
    rt->shards = shards;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    size_t ss = o.stack_size ? o.stack_size : 128 * 1024;
    if (ss < 16 * 1024)
        ss = 16 * 1024;
    rt->stack_size = (ss + ps - 1) & ~(ps - 1);
    rt->offload_threads = o.offload_threads ? o.offload_threads : 4;
    rt->vclock = o.virtual_clock;
    rt->vthreshold_ns = o.virtual_clock_threshold_ms * 1000000;

    int rc = 0, made = 0;
    for (; made < nshards; made++) {
        rc = shard_init(&shards[made], made);
        if (rc < 0)
            break;
        extras[made].terminate.run = terminate_run;
        extras[made].stop.run = stop_run;
        extras[made].reload.run = reload_run;
    }
    if (rc < 0) {
        for (int i = 0; i < made; i++)
            shard_destroy(&shards[i]);
        free(rt);
        free(shards);
        free(extras);
        atomic_store(&running, false);
        return rc;
    }
    wv__rt = rt;
    atomic_store(&busy_shards, nshards);

    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
    sigaction(SIGPIPE, &ign, &old_pipe);
    sigset_t stopsigs, oldmask;
    sigemptyset(&stopsigs);
    if (!o.no_signal_handling) {
        sigaddset(&stopsigs, SIGINT);
        sigaddset(&stopsigs, SIGTERM);
        sigaddset(&stopsigs, SIGHUP);
        rt->signals_handled = true;
    }
    pthread_sigmask(SIG_BLOCK, &stopsigs, &oldmask);
    if (!o.no_signal_handling && shard_watch_signals(&shards[0], &stopsigs) < 0)
        wv_warn("signalfd failed; SIGINT/SIGTERM will not stop gracefully");
    overflow_handler_install();

    int started = 1;
    for (; started < nshards; started++) {
        int e = pthread_create(&shards[started].thread, NULL, shard_thread, &shards[started]);
        if (e) {
            rc = -e;
            break;
        }
    }

    if (started < nshards) {
        /* shards whose thread never started are idle by definition */
        for (int i = started; i < nshards; i++)
            extras[i].idle_counted = true;
        atomic_fetch_sub(&busy_shards, nshards - started);
    }
    wv__shard = &shards[0];
    overflow_altstack_setup();
    shard_sched_stack_bounds(&shards[0]);
    main_args ma = {fn, arg};
    int err = 0;
    if (rc == 0 &&
        !fiber_create(&shards[0], main_body, &ma, &(wv_spawn_opts){.name = "main"}, &err))
        rc = err;
    if (rc < 0)
        begin_termination();
    shard_loop(&shards[0]);
    overflow_altstack_free();
    wv__shard = NULL;

    for (int i = 1; i < started; i++)
        pthread_join(shards[i].thread, NULL);
    offload_shutdown();
    for (int i = 0; i < nshards; i++)
        drain_mailbox(&shards[i]);
    for (int i = 0; i < nshards; i++)
        shard_destroy(&shards[i]);

    pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    sigaction(SIGPIPE, &old_pipe, NULL);
    wv__rt = NULL;
    free(shards);
    free(extras);
    extras = NULL;
    free(rt);
    atomic_store(&running, false);
    return rc < 0 ? rc : main_rc;
}
