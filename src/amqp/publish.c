/*
 * Publishing with publisher confirms. Every channel runs in confirm mode,
 * so the broker numbers the publishes of each opening of a channel 1, 2,
 * ... and answers each with basic.ack or basic.nack (possibly several at
 * once: multiple). A wv_amqp_confirm is one publish waiting for that
 * answer; the channel keeps the unsettled ones in sequence order (an array
 * with a moving head: acks come mostly in order).
 *
 * A mandatory publish no queue takes comes back as basic.return before its
 * ack. The return carries no sequence number, so it is matched to the
 * oldest unsettled mandatory publish with the same exchange, routing key
 * and body (a hash of the three): two publishes alike in all three are
 * alike to the caller too.
 *
 * When the connection is lost the unsettled publishes fail with
 * -ECONNRESET, or with opts.republish are kept, their frames included, and
 * sent again once the channel has reopened (new sequence numbers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

void amqp_confirm_unref(wv_amqp_confirm *cf)
{
    if (--cf->refs > 0)
        return;
    wv_buf_free(&cf->frames);
    free(cf);
}

static void settle(wv_amqp_channel *ch, size_t i, int rc, const char *msg)
{
    wv_amqp_confirm *cf = ch->pend[i];
    ch->pend[i] = NULL;
    ch->inflight--;
    cf->rc = rc;
    if (rc < 0 && msg != cf->msg)
        snprintf(cf->msg, sizeof cf->msg, "%s", msg);
    wv_event_set(&cf->done);
    wv_buf_free(&cf->frames);
    wv_event_set(&ch->room_ev);
    amqp_confirm_unref(cf);
}

/* Step the head past settled entries; compact when half the array is
 * behind it. */
static void advance(wv_amqp_channel *ch)
{
    while (ch->pend_head < ch->pend_n && !ch->pend[ch->pend_head])
        ch->pend_head++;
    if (ch->pend_head == ch->pend_n) {
        ch->pend_head = ch->pend_n = 0;
    } else if (ch->pend_head > ch->pend_cap / 2) {
        memmove(ch->pend, ch->pend + ch->pend_head,
                (ch->pend_n - ch->pend_head) * sizeof *ch->pend);
        ch->pend_n -= ch->pend_head;
        ch->pend_head = 0;
    }
}

static void settle_one(wv_amqp_channel *ch, size_t i, bool ack)
{
    wv_amqp *c = ch->conn;
    wv_amqp_confirm *cf = ch->pend[i];
    if (!ack) {
        c->stats.nacked++;
        settle(ch, i, -EIO, "AMQP: the broker nacked the publish");
    } else if (cf->returned) {
        c->stats.returned++;
        settle(ch, i, -EHOSTUNREACH, cf->msg);
    } else {
        c->stats.acked++;
        settle(ch, i, 0, NULL);
    }
}

void amqp_confirm_settle(wv_amqp_channel *ch, uint64_t tag, bool multiple, bool ack)
{
    if (multiple) {
        for (size_t i = ch->pend_head; i < ch->pend_n; i++) {
            if (!ch->pend[i])
                continue;
            if (ch->pend[i]->seq > tag)
                break;
            settle_one(ch, i, ack);
        }
    } else {
        /* binary search: the array is in sequence order */
        size_t lo = ch->pend_head, hi = ch->pend_n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2, probe = mid;
            while (probe < hi && !ch->pend[probe])
                probe++;
            if (probe == hi) {
                hi = mid;
            } else if (ch->pend[probe]->seq < tag) {
                lo = probe + 1;
            } else if (ch->pend[probe]->seq > tag) {
                hi = mid;
            } else {
                settle_one(ch, probe, ack);
                break;
            }
        }
    }
    advance(ch);
}

void amqp_confirm_returned(wv_amqp_channel *ch, const amqp_assembly *as)
{
    uint64_t h = amqp_publish_hash(as->exchange, strlen(as->exchange), as->routing_key,
                                   strlen(as->routing_key), as->msg->body);
    for (size_t i = ch->pend_head; i < ch->pend_n; i++) {
        wv_amqp_confirm *cf = ch->pend[i];
        if (cf && cf->mandatory && !cf->returned && cf->match == h) {
            cf->returned = true;
            snprintf(cf->msg, sizeof cf->msg, "AMQP: the broker returned the message: %u %s",
                     as->reply_code, as->reply_text);
            return;
        }
    }
}

void amqp_confirm_fail_all(wv_amqp_channel *ch, int rc, const char *msg, bool keep)
{
    wv_amqp *c = ch->conn;
    for (size_t i = ch->pend_head; i < ch->pend_n; i++) {
        wv_amqp_confirm *cf = ch->pend[i];
        if (!cf)
            continue;
        if (keep && cf->frames.n) {
            cf->returned = false;
            continue;
        }
        if (c)
            c->stats.failed++;
        settle(ch, i, rc, msg);
    }
    advance(ch);
}

/* The frames kept hold the channel's id, which a channel keeps across
 * reconnects: they go out as they are, under new sequence numbers. */
int amqp_confirm_republish(wv_amqp_channel *ch)
{
    wv_amqp *c = ch->conn;
    for (size_t i = ch->pend_head; i < ch->pend_n; i++) {
        wv_amqp_confirm *cf = ch->pend[i];
        if (!cf)
            continue;
        if (wv_buf_append(&c->out, cf->frames.p, cf->frames.n) < 0)
            return -ENOMEM;
        cf->seq = ch->next_seq++;
        c->stats.published++;
        c->stats.republished++;
    }
    amqp_conn_kick(c);
    return 0;
}

/* Room for one more: the broker not blocking, the output not too far
 * behind, fewer than max_unconfirmed in flight. */
static int wait_room(wv_amqp_channel *ch)
{
    for (;;) {
        int rc = amqp_chan_ready(ch);
        if (rc < 0)
            return rc;
        wv_amqp *c = ch->conn;
        wv_event *ev = NULL;
        if (c->blocked)
            ev = &c->unblocked_ev;
        else if (c->out.n >= AMQP_OUT_HIGH)
            ev = &c->room_ev;
        else if (ch->inflight >= c->opts.max_unconfirmed)
            ev = &ch->room_ev;
        if (!ev)
            return 0;
        if (ev != &c->unblocked_ev)
            wv_event_clear(ev);
        rc = wv_event_wait(ev);
        if (rc < 0)
            return wv_fail(rc, "AMQP %s: waiting to publish%s: %s", c->redacted,
                           c->blocked ? " (the broker blocks publishers)" : "",
                           rc == -ETIMEDOUT ? "the deadline passed" : wv_strerror(rc));
    }
}

static int track(wv_amqp_channel *ch, wv_amqp_confirm *cf)
{
    if (ch->pend_n == ch->pend_cap) {
        size_t cap = ch->pend_cap ? ch->pend_cap * 2 : 64;
        wv_amqp_confirm **p = realloc(ch->pend, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        ch->pend = p;
        ch->pend_cap = cap;
    }
    ch->pend[ch->pend_n++] = cf;
    ch->inflight++;
    if (ch->inflight >= ch->conn->opts.max_unconfirmed)
        wv_event_clear(&ch->room_ev);
    return 0;
}

int wv_amqp_publish_start(wv_amqp_channel *ch, const char *exchange, const char *routing_key,
                          wv_str body, const wv_amqp_publish_opts *opts, wv_amqp_confirm **out)
{
    *out = NULL;
    wv_amqp *c = ch->conn;
    if (!c)
        return wv_fail(-EPIPE, "AMQP: the channel is closed");
    if (!exchange || !routing_key)
        return wv_fail(-EINVAL, "AMQP: publish needs an exchange and a routing key");
    int rc = amqp_enter(c);
    if (rc < 0)
        return rc;
    wv_amqp_confirm *cf = calloc(1, sizeof *cf);
    if (!cf) {
        amqp_leave(c);
        return -ENOMEM;
    }
    cf->refs = 2;
    cf->rc = -EINPROGRESS;
    rc = wait_room(ch);
    if (rc == 0) {
        size_t start = c->out.n;
        rc = amqp_put_publish(&c->out, &c->enc_pool, c->frame_max, ch->id, exchange, routing_key,
                              body, opts);
        recycle_amqp_pool(&c->enc_pool);
        if (rc < 0)
            rc = wv_fail(rc, "AMQP: cannot publish: %s",
                         rc == -EMSGSIZE ? "the properties do not fit in a frame"
                         : rc == -EINVAL ? "a bad header, or a name over 255 bytes"
                                         : wv_strerror(rc));
        if (rc == 0 && c->opts.republish &&
            wv_buf_append(&cf->frames, c->out.p + start, c->out.n - start) < 0)
            rc = -ENOMEM;
        if (rc == 0)
            rc = track(ch, cf);
        if (rc < 0) {
            c->out.n = start;
        } else {
            cf->seq = ch->next_seq++;
            if (opts && opts->mandatory) {
                cf->mandatory = true;
                cf->match = amqp_publish_hash(exchange, strlen(exchange), routing_key,
                                              strlen(routing_key), body);
            }
            c->stats.published++;
            amqp_conn_kick(c);
        }
    }
    amqp_leave(c);
    if (rc < 0) {
        wv_buf_free(&cf->frames);
        free(cf);
        return rc;
    }
    *out = cf;
    return 0;
}

int wv_amqp_confirm_wait(wv_amqp_confirm *cf, int64_t at)
{
    int64_t old = amqp_deadline_cap(at);
    int rc = wv_event_wait(&cf->done);
    wv_deadline_set(old);
    if (rc < 0 && cf->rc == -EINPROGRESS)
        return wv_fail(rc, "AMQP publish: no confirm from the broker in time (%s)",
                       rc == -ETIMEDOUT ? "the deadline passed" : wv_strerror(rc));
    return wv_amqp_confirm_result(cf);
}

int wv_amqp_confirm_result(const wv_amqp_confirm *cf)
{
    if (cf->rc < 0 && cf->rc != -EINPROGRESS)
        return wv_fail(cf->rc, "%s", cf->msg);
    return cf->rc;
}

uint64_t wv_amqp_confirm_seq(const wv_amqp_confirm *cf)
{
    return cf->seq;
}

void wv_amqp_confirm_free(wv_amqp_confirm *cf)
{
    if (cf)
        amqp_confirm_unref(cf);
}

int wv_amqp_publish(wv_amqp_channel *ch, const char *exchange, const char *routing_key, wv_str body,
                    const wv_amqp_publish_opts *opts)
{
    wv_amqp_confirm *cf;
    int rc = wv_amqp_publish_start(ch, exchange, routing_key, body, opts, &cf);
    if (rc < 0)
        return rc;
    rc = wv_amqp_confirm_wait(cf, WV_NEVER);
    wv_amqp_confirm_free(cf);
    return rc;
}
