/*
 * Timers: a hierarchical timing wheel per shard.
 *
 * Time is cut into ticks of 2^TICK_SHIFT ns (1.024 us). Level L of the wheel
 * has 64 slots, each covering 64^L ticks; a timer sits at the level of the
 * highest base-64 digit in which its tick differs from the wheel's current
 * tick, in the slot named by its own digit there. As the wheel's time
 * passes the start of an occupied slot on a higher level, that slot's timers
 * are re-placed on lower levels ("cascade"); a level-0 slot holds the timers
 * of one tick and fires them once that tick is over.
 *
 * So arming and disarming are O(1), firing is O(1) plus at most one cascade
 * per level, and a 64-bit occupancy map per level finds the next event with
 * one count-trailing-zeros, however far time jumps. A slot is an array of
 * timer pointers (each timer knows its index, so removal swaps the last one
 * into its place), not a linked list: cascading and firing walk the array
 * and prefetch the timers ahead, so a million scattered timers cost memory
 * bandwidth, not a chain of cache misses. The
 * price is granularity: a timer fires within one tick after its deadline
 * (never before), and timers due within the same tick fire in any order.
 * Server deadlines are mostly disarmed before they fire, which is exactly
 * what a wheel makes cheap and a heap does not.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt/rt_internal.h"

#define TICK_NS(tick) ((int64_t)(tick) << TICK_SHIFT)

enum { WHERE_DUE = LEVELS * SLOTS + 1, WHERE_FIRING = LEVELS * SLOTS + 2, PREFETCH = 8 };

static inline int digit(uint64_t tick, int level)
{
    return (int)((tick >> (LEVEL_BITS * level)) & (SLOTS - 1));
}

static inline timer_vec *vec_of(timer_wheel *w, uint32_t where)
{
    return where == WHERE_DUE ? &w->due : &w->slots[where - 1];
}

static void vec_push(timer_wheel *w, uint32_t where, wv_timer *t)
{
    timer_vec *v = vec_of(w, where);
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 8;
        wv_timer **a = realloc(v->v, cap * sizeof *a);
        if (!a)
            die("out of memory growing a timer slot");
        v->v = a;
        v->cap = cap;
    }
    t->where_ = where;
    t->idx_ = v->n;
    v->v[v->n++] = t;
    if (where != WHERE_DUE) {
        uint32_t s = where - 1;
        w->occupied[s / SLOTS] |= 1ull << (s % SLOTS);
    }
}

/* Where a timer due at `at` goes now: a slot (1-based) or WHERE_DUE. */
static inline uint32_t slot_for(const timer_wheel *w, int64_t at)
{
    uint64_t tick = at < 0 ? 0 : (uint64_t)at >> TICK_SHIFT;
    if (tick < w->now_tick)
        return WHERE_DUE; /* already due: fired on the next pass */
    uint64_t diff = tick ^ w->now_tick;
    int level = diff ? (63 - __builtin_clzll(diff)) / LEVEL_BITS : 0;
    return (uint32_t)(level * SLOTS + digit(tick, level) + 1);
}

static void place(timer_wheel *w, wv_timer *t)
{
    vec_push(w, slot_for(w, t->at), t);
}

void wheel_add(timer_wheel *w, wv_timer *t)
{
    place(w, t);
    w->count++;
}

void wheel_remove(timer_wheel *w, wv_timer *t)
{
    uint32_t where = t->where_;
    t->where_ = 0;
    w->count--;
    if (where == WHERE_FIRING)
        return; /* in a batch being fired: the batch skips it */
    timer_vec *v = vec_of(w, where);
    wv_timer *last = v->v[--v->n];
    if (last != t) {
        v->v[t->idx_] = last;
        last->idx_ = t->idx_;
    }
    if (v->n == 0 && where != WHERE_DUE) {
        uint32_t s = where - 1;
        w->occupied[s / SLOTS] &= ~(1ull << (s % SLOTS));
    }
}

void wheel_rearm(timer_wheel *w, wv_timer *t, int64_t at)
{
    if (t->where_ && t->where_ != WHERE_FIRING && t->where_ == slot_for(w, at)) {
        /* the same slot: a level-0 slot is one tick, and a higher one is
         * re-placed from `at` when its time comes */
        t->at = at;
        return;
    }
    if (t->where_)
        wheel_remove(w, t);
    t->at = at;
    wheel_add(w, t);
}

/* Take a slot's array out, leaving the spare (empty) one in its place, so a
 * callback or a cascade may fill the slot again meanwhile. */
static timer_vec detach(timer_wheel *w, timer_vec *v, int level, int slot)
{
    timer_vec out = *v;
    *v = w->spare;
    w->spare = (timer_vec){0};
    if (level >= 0)
        w->occupied[level] &= ~(1ull << slot);
    return out;
}

static void reattach_spare(timer_wheel *w, timer_vec *batch)
{
    batch->n = 0;
    if (w->spare.v)
        free(w->spare.v);
    w->spare = *batch;
}

/* Fire a detached batch. Every timer is first marked as firing, so a
 * callback that stops a later one of the batch just clears its mark. */
static void fire_batch(timer_wheel *w, timer_vec *b)
{
    for (uint32_t i = 0; i < b->n; i++) {
        if (i + PREFETCH < b->n)
            __builtin_prefetch(b->v[i + PREFETCH], 1);
        b->v[i]->where_ = WHERE_FIRING;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        wv_timer *t = b->v[i];
        if (t->where_ != WHERE_FIRING)
            continue; /* stopped or re-armed by an earlier callback */
        t->where_ = 0;
        w->count--;
        t->cb(t);
    }
    reattach_spare(w, b);
}

static void fire_slot(timer_wheel *w, timer_vec *v, int level, int slot)
{
    timer_vec b = detach(w, v, level, slot);
    fire_batch(w, &b);
}

/* The wheel's time has reached the start of every slot whose digit equals
 * the current tick's digit: move those timers down, highest level first so
 * what falls from one level into the next is moved on again. */
static void cascade(timer_wheel *w)
{
    for (int level = LEVELS - 1; level >= 1; level--) {
        int d = digit(w->now_tick, level);
        if (!(w->occupied[level] & (1ull << d)))
            continue;
        timer_vec b = detach(w, &w->slots[level * SLOTS + d], level, d);
        for (uint32_t i = 0; i < b.n; i++) {
            if (i + PREFETCH < b.n)
                __builtin_prefetch(b.v[i + PREFETCH], 1);
            place(w, b.v[i]);
        }
        reattach_spare(w, &b);
    }
}

/* The smallest tick > now_tick at which a slot needs attention, or
 * UINT64_MAX. A level's occupied digits are all above the current one: a
 * timer is placed above it, and passing a slot's start empties it. */
static uint64_t next_event(const timer_wheel *w)
{
    uint64_t best = UINT64_MAX;
    for (int level = 0; level < LEVELS; level++) {
        uint64_t occ = w->occupied[level];
        if (!occ)
            continue;
        int d = digit(w->now_tick, level);
        uint64_t later = d == SLOTS - 1 ? 0 : occ & (~0ull << (d + 1));
        if (!later)
            continue;
        int s = __builtin_ctzll(later);
        int shift = LEVEL_BITS * level;
        uint64_t block = (w->now_tick >> (shift + LEVEL_BITS)) << (shift + LEVEL_BITS);
        uint64_t at = block | ((uint64_t)s << shift);
        if (at < best)
            best = at;
    }
    return best;
}

void wheel_advance(timer_wheel *w, int64_t now)
{
    while (w->due.n)
        fire_slot(w, &w->due, -1, 0);
    uint64_t limit = now < 0 ? 0 : (uint64_t)now >> TICK_SHIFT;
    while (w->now_tick < limit) {
        if (w->count == 0) {
            w->now_tick = limit;
            break;
        }
        cascade(w);
        int d0 = digit(w->now_tick, 0);
        /* this tick is over: fire it, and whatever its callbacks arm at it
         * or before it */
        while ((w->occupied[0] & (1ull << d0)) || w->due.n) {
            if (w->occupied[0] & (1ull << d0))
                fire_slot(w, &w->slots[d0], 0, d0);
            else
                fire_slot(w, &w->due, -1, 0);
        }
        uint64_t e = next_event(w);
        w->now_tick = e < limit ? e : limit;
    }
    /* higher-level slots starting exactly now may hold timers of this tick */
    cascade(w);
}

int64_t wheel_next(const timer_wheel *w)
{
    if (w->due.n)
        return 0;
    if (w->count == 0)
        return WV_NEVER;
    /* a timer of the current tick fires once the tick is over */
    uint64_t e = (w->occupied[0] & (1ull << digit(w->now_tick, 0))) ? w->now_tick : next_event(w);
    if (e == UINT64_MAX)
        return WV_NEVER;
    return TICK_NS(e + 1);
}

void wheel_free(timer_wheel *w)
{
    for (int i = 0; i < LEVELS * SLOTS; i++) {
        for (uint32_t k = 0; k < w->slots[i].n; k++)
            w->slots[i].v[k]->where_ = 0;
        free(w->slots[i].v);
    }
    for (uint32_t k = 0; k < w->due.n; k++)
        w->due.v[k]->where_ = 0;
    free(w->due.v);
    free(w->spare.v);
    memset(w, 0, sizeof *w);
}

void wheel_init(timer_wheel *w, int64_t now)
{
    memset(w, 0, sizeof *w);
    w->now_tick = now < 0 ? 0 : (uint64_t)now >> TICK_SHIFT;
}

int wv_timer_start(wv_timer *t, int64_t at, void (*cb)(wv_timer *t))
{
    shard *sh = wv__shard;
    if (!sh)
        return -EPERM;
    if (t->where_)
        wheel_remove(&sh->timers, t);
    t->at = at;
    t->cb = cb;
    wheel_add(&sh->timers, t);
    return 0;
}

void wv_timer_stop(wv_timer *t)
{
    shard *sh = wv__shard;
    if (sh && t->where_)
        wheel_remove(&sh->timers, t);
}

/* ------------------------------------------------------ the virtual clock */

/*
 * With wv_main_opts.virtual_clock, time jumps over idle periods, like
 * Trio's MockClock with autojump: once every shard is asleep waiting on
 * nothing but timers (no fiber runnable, no mail, no fiber waiting on an
 * fd or on blocking work), the clock moves forward to the earliest timer
 * of any shard, which then fires at once. Between jumps it runs at real
 * speed, so work that takes real time (computation, a socket's round trip)
 * still takes it, and the order of deadlines and timers is what it would
 * be in real time.
 *
 * One offset for the process (not per shard): a timestamp taken on one
 * shard stays comparable on another, and a jump waits until every shard is
 * quiet. A shard publishes "quiet" and its next timer just before it
 * sleeps; a jump is decided under a lock (two shards deciding at once
 * would jump twice), and wakes every shard to fire what is now due. Mail
 * clears the target's flag before it can sleep on it (shard_post_msg), and
 * a shard clears its own when it wakes, so a jump never passes over work
 * in flight between shards. A published next timer can only be stale
 * early (the shard has not run since), which blocks a jump, never makes
 * one too long.
 */
_Atomic int64_t wv__clock_offset;

static pthread_mutex_t jump_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Every shard quiet: move the clock to the earliest timer among them. */
static bool vclock_jump(shard *self)
{
    runtime *rt = wv__rt;
    int64_t target = WV_NEVER;
    bool all = true;
    pthread_mutex_lock(&jump_lock);
    for (int i = 0; i < rt->nshards && all; i++) {
        shard *o = &rt->shards[i];
        all = atomic_load(&o->vquiet) != 0;
        int64_t t = atomic_load(&o->vnext);
        if (t < target)
            target = t;
    }
    bool jumped = false;
    if (all && target != WV_NEVER) {
        int64_t now = wv_now();
        if (target > now) {
            atomic_fetch_add(&wv__clock_offset, target - now);
            jumped = true;
        }
    }
    pthread_mutex_unlock(&jump_lock);
    if (jumped)
        for (int i = 0; i < rt->nshards; i++)
            if (&rt->shards[i] != self)
                shard_ring(&rt->shards[i]); /* their sleeps were computed before it */
    return jumped;
}

int64_t vclock_idle(shard *sh, int64_t timeout, bool ran)
{
    int64_t threshold = wv__rt->vthreshold_ns;
    if (sh->ext_waits > 0) {
        /* something outside may still answer: real time, unless the whole
         * shard has been idle for the threshold */
        if (threshold <= 0)
            return timeout;
        int64_t real = real_ns();
        if (ran || sh->vactive) {
            sh->vidle_since = real;
            sh->vactive = false;
        }
        int64_t left = sh->vidle_since + threshold - real;
        if (left > 0)
            return timeout < 0 || timeout > left ? left : timeout;
    }
    atomic_store(&sh->vnext, wheel_next(&sh->timers));
    atomic_store(&sh->vquiet, 1);
    return vclock_jump(sh) ? 0 : timeout;
}

void vclock_woke(shard *sh, bool active)
{
    atomic_store(&sh->vquiet, 0);
    if (active)
        sh->vactive = true;
}
