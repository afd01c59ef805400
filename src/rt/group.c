/*
 * Groups: structured concurrency in the shape of asyncio.TaskGroup.
 *
 * A group keeps its live children in a list. When a child returns a failure
 * the group records the first one and cancels the rest; join waits for the
 * list to empty. A join that is itself interrupted (cancelled, deadline)
 * cancels the children and still waits for them, uninterruptibly, so no
 * child outlives the join. Children finish promptly once cancelled because
 * every suspending call they make returns -ECANCELED.
 */
#include <stdlib.h>

#include "rt/rt_internal.h"

struct wv_group {
    shard *sh;
    wv_fiber *children;
    int count;
    int first_error;
    bool cancelled;
    wv_waitq joiners;
};

wv_group *wv_group_new(void)
{
    shard *sh = wv__shard;
    if (!sh)
        return NULL;
    wv_group *g = calloc(1, sizeof *g);
    if (!g)
        die("out of memory allocating a group");
    g->sh = sh;
    return g;
}

int wv_group_spawn(wv_group *g, wv_fn *fn, void *arg, const wv_spawn_opts *opts)
{
    shard *sh = wv__shard;
    if (!sh || g->sh != sh)
        return sh ? -EXDEV : -EPERM;
    if (g->cancelled)
        return -ECANCELED;
    if (sh->terminating)
        return -ESHUTDOWN;
    int err = 0;
    wv_fiber *f = fiber_create(sh, fn, arg, opts, &err);
    if (!f)
        return err;
    f->group = g;
    f->grp_next = g->children;
    if (g->children)
        g->children->grp_prev = f;
    g->children = f;
    g->count++;
    return 0;
}

void wv_group_cancel(wv_group *g)
{
    g->cancelled = true;
    for (wv_fiber *f = g->children; f; f = f->grp_next)
        fiber_cancel(f);
}

void group_child_exited(wv_fiber *f, int rc)
{
    wv_group *g = f->group;
    if (f->grp_prev)
        f->grp_prev->grp_next = f->grp_next;
    else
        g->children = f->grp_next;
    if (f->grp_next)
        f->grp_next->grp_prev = f->grp_prev;
    f->group = NULL;
    g->count--;
    if (rc < 0 && rc != -ECANCELED && g->first_error == 0) {
        g->first_error = rc;
        wv_group_cancel(g);
    }
    if (g->count == 0)
        waitq_wake_all(&g->joiners, 0);
}

static void wait_children_uninterrupted(wv_group *g)
{
    while (g->count > 0) {
        waiter w = {.f = current()};
        waitq_push(&g->joiners, &w);
        park_nocancel(waiter_unlink, &w);
    }
}

int wv_group_join(wv_group *g)
{
    if (!current())
        return -EPERM;
    if (g->sh != wv__shard)
        return -EXDEV;
    while (g->count > 0) {
        int rc = waitq_wait(&g->joiners, WV_NEVER);
        if (rc < 0) {
            wv_group_cancel(g);
            wait_children_uninterrupted(g);
            return rc;
        }
    }
    return g->first_error;
}

int wv_group_count(const wv_group *g)
{
    return g->count;
}

void wv_group_free(wv_group *g)
{
    if (!g)
        return;
    if (g->count > 0) {
        wv_group_cancel(g);
        if (current())
            wait_children_uninterrupted(g);
        else
            die("wv_group_free with %d live children outside a fiber", g->count);
    }
    free(g);
}
