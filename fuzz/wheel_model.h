/*
 * Drives a shard's timing wheel (src/rt/timer.c) with a byte string of
 * operations and checks it against a plain model after every step:
 *
 *  - a timer never fires before its deadline, nor twice, nor after a stop;
 *  - once time has passed the end of a timer's tick, it has fired;
 *  - wheel_next() never asks the loop to sleep past a timer that is due;
 *  - callbacks may stop other timers and re-arm themselves;
 *  - wheel_rearm moves a timer or updates it in place, to the same effect.
 *
 * Used by fuzz/fuzz_timer_wheel.c (libFuzzer) and, with pseudo-random input,
 * by tests/unit/test_timer_wheel.c. Returns 0, or prints the violation and
 * returns -1.
 */
#ifndef WEAVE_FUZZ_WHEEL_MODEL_H
#define WEAVE_FUZZ_WHEEL_MODEL_H

#include <stdio.h>
#include <string.h>

#include "rt/rt_internal.h"

enum { MODEL_TIMERS = 64 };

typedef struct model_timer {
    wv_timer t;
    bool armed;     /* per the model */
    int fired;      /* times fired since last armed */
    int64_t rearm;  /* > 0: on firing, re-arm this far ahead */
    int stop_other; /* >= 0: on firing, stop that timer */
} model_timer;

typedef struct model {
    timer_wheel w;
    int64_t now;
    model_timer m[MODEL_TIMERS];
    const char *error;
} model;

static model *model_cur;

static void model_fired(wv_timer *t)
{
    model *md = model_cur;
    model_timer *mt = (model_timer *)t;
    if (!mt->armed)
        md->error = "a stopped or already fired timer fired";
    else if (t->at > md->now)
        md->error = "a timer fired before its deadline";
    mt->armed = false;
    mt->fired++;
    if (mt->stop_other >= 0) {
        model_timer *o = &md->m[mt->stop_other];
        if (o->t.where_)
            wheel_remove(&md->w, &o->t);
        o->armed = false;
    }
    if (mt->rearm > 0) {
        t->at = md->now + mt->rearm;
        mt->rearm = 0;
        wheel_add(&md->w, t);
        mt->armed = true;
        mt->fired = 0;
    }
}

/* 1 ns .. ~2^42 ns, spread over every level of the wheel */
static int64_t model_span(const uint8_t *p)
{
    int shift = p[0] % 43;
    int64_t base = (int64_t)1 << shift;
    return base + ((int64_t)(p[1] | (p[2] << 8)) % base);
}

static int model_check(model *md, bool advanced)
{
    if (md->error)
        return -1;
    int64_t due_by = WV_NEVER;
    for (int i = 0; i < MODEL_TIMERS; i++) {
        model_timer *mt = &md->m[i];
        if (!mt->armed)
            continue;
        if (!mt->t.where_) {
            md->error = "an armed timer is not pending";
            return -1;
        }
        int64_t tick_end = ((mt->t.at >> TICK_SHIFT) + 1) << TICK_SHIFT;
        if (advanced && tick_end <= md->now) {
            md->error = "a timer whose tick is over did not fire";
            return -1;
        }
        if (tick_end < due_by)
            due_by = tick_end;
    }
    int64_t next = wheel_next(&md->w);
    if (due_by != WV_NEVER && next > due_by && next > md->now) {
        md->error = "wheel_next is later than a pending timer's tick end";
        return -1;
    }
    return 0;
}

static int wheel_model_run(const uint8_t *data, size_t size)
{
    static model md;
    memset(&md, 0, sizeof md);
    md.now = (int64_t)1 << 40;
    wheel_init(&md.w, md.now);
    model_cur = &md;
    for (int i = 0; i < MODEL_TIMERS; i++)
        md.m[i].stop_other = -1;
    int rc = 0;
    for (size_t at = 0; at + 5 <= size && rc == 0; at += 5) {
        const uint8_t *op = data + at;
        model_timer *mt = &md.m[op[1] % MODEL_TIMERS];
        switch (op[0] % 6) {
        case 0: /* arm (or re-arm: removed, then added) */
        case 1: /* re-arm with wheel_rearm (in place when the slot is the same) */
        {
            int64_t due = md.now + model_span(op + 2) - (op[0] % 6 == 1 ? (int64_t)op[4] : 0);
            mt->t.cb = model_fired;
            if (op[0] % 6 == 1) {
                wheel_rearm(&md.w, &mt->t, due);
            } else {
                if (mt->t.where_)
                    wheel_remove(&md.w, &mt->t);
                mt->t.at = due;
                wheel_add(&md.w, &mt->t);
            }
            mt->armed = true;
            mt->fired = 0;
            break;
        }
        case 2: /* stop */
            if (mt->t.where_)
                wheel_remove(&md.w, &mt->t);
            mt->armed = false;
            break;
        case 3: /* advance time a little or a lot, then run the wheel */
            md.now += model_span(op + 2);
            wheel_advance(&md.w, md.now);
            break;
        case 4: /* advance to just past the next event the wheel asks for */
        {
            int64_t next = wheel_next(&md.w);
            if (next != WV_NEVER && next > md.now)
                md.now = next + (op[2] & 3);
            wheel_advance(&md.w, md.now);
            break;
        }
        case 5: /* give a timer a callback that re-arms it / stops another */
            mt->rearm = op[2] & 1 ? model_span(op + 2) : 0;
            mt->stop_other = op[3] & 1 ? op[4] % MODEL_TIMERS : -1;
            break;
        }
        rc = model_check(&md, op[0] % 6 == 3 || op[0] % 6 == 4);
    }
    if (rc == 0 && md.w.count != (uint64_t)0) {
        int armed = 0;
        for (int i = 0; i < MODEL_TIMERS; i++)
            armed += md.m[i].armed;
        if ((uint64_t)armed != md.w.count) {
            md.error = "the wheel's count differs from the armed timers";
            rc = -1;
        }
    }
    if (rc < 0)
        fprintf(stderr, "timer wheel model: %s (now %lld)\n", md.error, (long long)md.now);
    wheel_free(&md.w);
    return rc;
}

#endif
