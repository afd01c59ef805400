/*
 * Channels: ids on the connection, opening (channel.open, confirm.select,
 * basic.qos, consumers again), synchronous methods answered in order to
 * the fiber that asked (an RPC queue per channel, like wv_mux's), the
 * frames the reader hands a channel (answers, deliveries and their
 * content, confirms, the broker's channel.close and basic.cancel), and
 * closing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

/* ------------------------------------------------------------ lifetime */

int amqp_chan_new(wv_amqp *c, bool internal, wv_amqp_channel **out)
{
    int id = 1;
    while (id <= c->channel_max && c->chans[id])
        id++;
    if (id > c->channel_max)
        return wv_fail(-EMFILE, "AMQP: all %u channels are in use", c->channel_max);
    wv_amqp_channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->conn = c;
    ch->id = (uint16_t)id;
    ch->internal = internal;
    ch->refs = 1;
    ch->prefetch = c->opts.prefetch;
    wv_event_set(&ch->room_ev);
    c->chans[id] = ch;
    *out = ch;
    return 0;
}

void amqp_chan_unref(wv_amqp_channel *ch)
{
    if (--ch->refs > 0)
        return;
    free(ch->pend);
    free(ch);
}

/* ----------------------------------------------------------------- RPCs */

static void rpc_finish(wv_amqp_channel *ch, amqp_rpc *r, int rc, const char *msg)
{
    r->done = true;
    r->rc = rc;
    if (rc < 0)
        snprintf(r->msg, sizeof r->msg, "%s", msg);
    if (!r->abandoned) {
        wv_event_set(&r->ev);
        return;
    }
    if (r->want[0] == AMQP_CHANNEL_OPEN_OK_METHOD && ch->open_pending) {
        ch->open_pending = false;
        ch->open_orphaned = rc == 0; /* the broker has it open */
        wv_event_set(&ch->open_answered);
    }
    /* nobody waits: a basic.get's message goes back to its queue */
    if (r->reply.msg) {
        ((amqp_msg_priv *)r->reply.msg->priv_)->no_ack = r->get_no_ack;
        wv_amqp_msg_free(r->reply.msg); /* rejected with requeue unless no_ack */
    }
    free(r);
}

static amqp_rpc *rpc_pop(wv_amqp_channel *ch)
{
    amqp_rpc *r = ch->rpc_head;
    if (r) {
        ch->rpc_head = r->next;
        if (!ch->rpc_head)
            ch->rpc_tail = NULL;
    }
    return r;
}

void amqp_chan_fail_calls(wv_amqp_channel *ch, int rc, const char *msg)
{
    amqp_rpc *r;
    while ((r = rpc_pop(ch)))
        rpc_finish(ch, r, rc, msg);
}

int amqp_chan_send(wv_amqp_channel *ch, uint32_t id, void *method)
{
    wv_amqp *c = ch->conn;
    if (!c || !amqp_conn_live(c))
        return wv_fail(-ECONNRESET, "AMQP: the connection is down");
    int rc = amqp_put_method(&c->out, c->frame_max, ch->id, id, method);
    if (rc < 0)
        return wv_fail(rc, "AMQP: %s does not fit in a frame of %u bytes", amqp_method_name(id),
                       c->frame_max);
    amqp_conn_kick(c);
    return 0;
}

int amqp_chan_rpc(wv_amqp_channel *ch, uint32_t id, void *method, uint32_t want0, uint32_t want1,
                  amqp_reply *reply)
{
    if (!ch->conn)
        return wv_fail(-EPIPE, "AMQP: the channel is closed");
    if (ch->state != CH_OPEN && id != AMQP_CHANNEL_OPEN_METHOD)
        return wv_fail(-EPIPE, "AMQP: channel %u is not open", ch->id);
    amqp_rpc *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->want[0] = want0;
    r->want[1] = want1;
    if (id == AMQP_BASIC_GET_METHOD)
        r->get_no_ack = ((amqp_basic_get_t *)method)->no_ack;
    int rc = amqp_chan_send(ch, id, method);
    if (rc < 0) {
        free(r);
        return rc;
    }
    if (ch->rpc_tail)
        ch->rpc_tail->next = r;
    else
        ch->rpc_head = r;
    ch->rpc_tail = r;
    rc = wv_event_wait(&r->ev);
    if (!r->done) {
        r->abandoned = true; /* the channel frees it when the answer comes */
        return wv_fail(rc, "AMQP %s %s: no answer in time (%s)",
                       ch->conn ? ch->conn->redacted : "(closed)", amqp_method_name(id),
                       rc == -ETIMEDOUT ? "the deadline passed" : wv_strerror(rc));
    }
    rc = r->rc;
    if (rc < 0)
        wv_fail(rc, "%s", r->msg);
    else if (reply)
        *reply = r->reply;
    else if (r->reply.msg)
        wv_amqp_msg_free(r->reply.msg);
    free(r);
    return rc;
}

/* ------------------------------------------------------------- opening */

int amqp_chan_open_wire(wv_amqp_channel *ch)
{
    memset(&ch->as, 0, sizeof ch->as);
    int rc;
    while (ch->open_pending) { /* an earlier caller's open: its answer first */
        wv_event_clear(&ch->open_answered);
        if ((rc = wv_event_wait(&ch->open_answered)) < 0)
            return wv_fail(rc, "AMQP: channel %u: waiting for its opening (%s)", ch->id,
                           wv_strerror(rc));
    }
    if (!ch->open_orphaned) {
        amqp_channel_open_t open = {0};
        rc = amqp_chan_rpc(ch, AMQP_CHANNEL_OPEN_METHOD, &open, AMQP_CHANNEL_OPEN_OK_METHOD, 0,
                           NULL);
        if ((rc == -ETIMEDOUT || rc == -ECANCELED) && ch->conn && amqp_conn_live(ch->conn))
            ch->open_pending = true; /* abandoned: the broker answers all the same */
        if (rc < 0)
            return rc;
    }
    ch->open_orphaned = false;
    /* the state changes before anything else is sent, so a publish made
     * from now on is behind confirm.select on the wire */
    ch->state = CH_OPEN;
    ch->gen++;
    ch->next_seq = 1;
    if (ch->internal)
        return 0;
    amqp_confirm_select_t select = {0};
    rc = amqp_chan_rpc(ch, AMQP_CONFIRM_SELECT_METHOD, &select, AMQP_CONFIRM_SELECT_OK_METHOD, 0,
                       NULL);
    amqp_basic_qos_t qos = {.prefetch_count = ch->prefetch};
    if (rc == 0)
        rc = amqp_chan_rpc(ch, AMQP_BASIC_QOS_METHOD, &qos, AMQP_BASIC_QOS_OK_METHOD, 0, NULL);
    amqp_basic_qos_t gqos = {.prefetch_count = ch->prefetch_channel, .global = true};
    if (rc == 0 && ch->has_prefetch_channel)
        rc = amqp_chan_rpc(ch, AMQP_BASIC_QOS_METHOD, &gqos, AMQP_BASIC_QOS_OK_METHOD, 0, NULL);
    for (wv_amqp_consumer *co = ch->consumers; rc == 0 && co; co = co->next) {
        if (co->ended || co->active)
            continue;
        rc = amqp_consumer_resume(co);
        if (rc < 0 && ch->state == CH_CLOSED && amqp_conn_live(ch->conn)) {
            /* the broker refused this one (its queue is gone): it ends,
             * the channel opens again without it */
            wv_warn("AMQP %s: consumer '%s' on '%s' cannot resume: %s", ch->conn->redacted, co->tag,
                    co->queue, wv_errmsg());
            co->broker_cancelled = true;
            amqp_consumer_end(co);
            return amqp_chan_open_wire(ch);
        }
    }
    if (rc == 0)
        rc = amqp_confirm_republish(ch);
    return rc;
}

int amqp_chan_ready(wv_amqp_channel *ch)
{
    for (;;) {
        wv_amqp *c = ch->conn;
        if (!c)
            return wv_fail(-EPIPE, "AMQP: the channel is closed");
        int rc = amqp_conn_wait_ready(c);
        if (rc < 0)
            return rc;
        if (ch->state == CH_OPEN)
            return 0;
        if ((rc = wv_mutex_lock(&ch->open_mu)) < 0)
            return rc;
        if (ch->conn && ch->state != CH_OPEN && c->ready)
            rc = amqp_chan_open_wire(ch);
        wv_mutex_unlock(&ch->open_mu);
        if (rc == 0 && ch->state == CH_OPEN && c->ready)
            return 0;
        if (rc < 0 &&
            (!ch->conn || amqp_conn_live(c) || c->state == CONN_DEAD || c->opts.no_reconnect))
            return rc;
        /* the connection broke while this fiber opened the channel, or
         * waited for the fiber that did: wait for it to come back (what
         * went out on the channel now would be lost with its frames, and
         * a publish would be numbered for an opening that is over) */
    }
}

/* ------------------------------------------------------ losing, closing */

void amqp_chan_lost(wv_amqp_channel *ch, int rc, const char *msg, bool connection_lost)
{
    ch->state = CH_CLOSED;
    ch->gen++;
    if (ch->as.msg)
        wv_amqp_msg_free(ch->as.msg);
    memset(&ch->as, 0, sizeof ch->as);
    amqp_chan_fail_calls(ch, rc, msg);
    ch->open_pending = ch->open_orphaned = false; /* the broker's channel is gone too */
    wv_event_set(&ch->open_answered);
    bool keep = connection_lost && ch->conn && ch->conn->opts.republish;
    amqp_confirm_fail_all(ch, rc, msg, keep);
    for (wv_amqp_consumer *co = ch->consumers; co; co = co->next) {
        co->active = false;
        amqp_consumer_drop_stale(co);
    }
}

void amqp_chan_detach(wv_amqp_channel *ch, int rc, const char *msg)
{
    wv_amqp *c = ch->conn;
    if (!c)
        return;
    amqp_chan_lost(ch, rc, msg, false);
    for (wv_amqp_consumer *co = ch->consumers; co; co = co->next)
        amqp_consumer_end(co);
    c->chans[ch->id] = NULL;
    ch->conn = NULL;
    amqp_chan_unref(ch);
}

/* The broker closed the channel: answer, fail what waited, reopen soon if
 * consumers live on it. */
static int on_close(wv_amqp_channel *ch, amqp_channel_close_t *m)
{
    wv_amqp *c = ch->conn;
    amqp_channel_close_ok_t ok = {0};
    amqp_chan_send(ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    char msg[AMQP_MSG];
    snprintf(msg, sizeof msg, "AMQP channel closed: %u %.*s", m->reply_code, (int)m->reply_text.len,
             (const char *)m->reply_text.bytes);
    wv_debug("AMQP %s: channel %u: %s", c->redacted, ch->id, msg);
    amqp_chan_lost(ch, amqp_reply_errno(m->reply_code), msg, false);
    for (wv_amqp_consumer *co = ch->consumers; co; co = co->next)
        if (!co->ended && !ch->internal) {
            ch->reopen_wanted = true;
            wv_event_set(&c->sup_ev);
        }
    return 0;
}

/* ------------------------------------------------------------- frames */

static int unexpected(wv_amqp_channel *ch, const char *what)
{
    return amqp_conn_break(ch->conn, -EPROTO, "AMQP: %s on channel %u", what, ch->id);
}

static void copy_short(char *dst, amqp_bytes_t b)
{
    memcpy(dst, b.bytes, b.len); /* a short string: at most 255 bytes */
    dst[b.len] = '\0';
}

static int on_answer(wv_amqp_channel *ch, uint32_t id, void *m)
{
    amqp_rpc *r = ch->rpc_head;
    if (!r || (r->want[0] != id && r->want[1] != id))
        return unexpected(ch, amqp_method_name(id));
    r->reply.method = id;
    switch (id) {
    case AMQP_QUEUE_DECLARE_OK_METHOD: {
        amqp_queue_declare_ok_t *d = m;
        copy_short(r->reply.name, d->queue);
        r->reply.count1 = d->message_count;
        r->reply.count2 = d->consumer_count;
        break;
    }
    case AMQP_QUEUE_PURGE_OK_METHOD:
        r->reply.count1 = ((amqp_queue_purge_ok_t *)m)->message_count;
        break;
    case AMQP_QUEUE_DELETE_OK_METHOD:
        r->reply.count1 = ((amqp_queue_delete_ok_t *)m)->message_count;
        break;
    case AMQP_BASIC_CONSUME_OK_METHOD:
        copy_short(r->reply.name, ((amqp_basic_consume_ok_t *)m)->consumer_tag);
        break;
    case AMQP_BASIC_GET_OK_METHOD: {
        /* the answer is complete with its content */
        amqp_basic_get_ok_t *g = m;
        ch->as = (amqp_assembly){.kind = ASM_GET,
                                 .delivery_tag = g->delivery_tag,
                                 .redelivered = g->redelivered,
                                 .message_count = g->message_count};
        copy_short(ch->as.exchange, g->exchange);
        copy_short(ch->as.routing_key, g->routing_key);
        return 0;
    }
    }
    rpc_finish(ch, rpc_pop(ch), 0, NULL);
    return 0;
}

static int on_method(wv_amqp_channel *ch, const amqp_frame *f)
{
    wv_amqp *c = ch->conn;
    uint32_t id;
    void *m;
    int rc = amqp_decode(c, f, &id, &m);
    if (rc < 0)
        return amqp_conn_break(c, rc, "%s", wv_errmsg());
    if (ch->state != CH_OPEN && id != AMQP_CHANNEL_OPEN_OK_METHOD &&
        id != AMQP_CHANNEL_CLOSE_OK_METHOD && id != AMQP_CHANNEL_CLOSE_METHOD)
        return 0; /* what was under way when it closed */
    switch (id) {
    case AMQP_CHANNEL_CLOSE_METHOD:
        return on_close(ch, m);
    case AMQP_CHANNEL_FLOW_METHOD: {
        amqp_channel_flow_ok_t ok = {.active = ((amqp_channel_flow_t *)m)->active};
        amqp_chan_send(ch, AMQP_CHANNEL_FLOW_OK_METHOD, &ok);
        return 0;
    }
    case AMQP_BASIC_DELIVER_METHOD: {
        amqp_basic_deliver_t *d = m;
        ch->as = (amqp_assembly){
            .kind = ASM_DELIVER, .delivery_tag = d->delivery_tag, .redelivered = d->redelivered};
        copy_short(ch->as.tag, d->consumer_tag);
        copy_short(ch->as.exchange, d->exchange);
        copy_short(ch->as.routing_key, d->routing_key);
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD: {
        amqp_basic_return_t *r = m;
        ch->as = (amqp_assembly){.kind = ASM_RETURN, .reply_code = r->reply_code};
        copy_short(ch->as.reply_text, r->reply_text);
        copy_short(ch->as.exchange, r->exchange);
        copy_short(ch->as.routing_key, r->routing_key);
        return 0;
    }
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = m;
        amqp_confirm_settle(ch, a->delivery_tag, a->multiple, true);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *n = m;
        amqp_confirm_settle(ch, n->delivery_tag, n->multiple, false);
        return 0;
    }
    case AMQP_BASIC_CANCEL_METHOD: {
        amqp_basic_cancel_t *cancel = m;
        wv_amqp_consumer *co =
            amqp_consumer_find(ch, cancel->consumer_tag.bytes, cancel->consumer_tag.len);
        if (co) {
            co->broker_cancelled = true;
            co->active = false;
            amqp_consumer_end(co);
        }
        if (!cancel->nowait) {
            amqp_basic_cancel_ok_t ok = {.consumer_tag = cancel->consumer_tag};
            amqp_chan_send(ch, AMQP_BASIC_CANCEL_OK_METHOD, &ok);
        }
        return 0;
    }
    default:
        return on_answer(ch, id, m);
    }
}

int amqp_chan_on_frame(wv_amqp_channel *ch, const amqp_frame *f)
{
    amqp_assembly *as = &ch->as;
    switch (f->type) {
    case AMQP_FRAME_METHOD_TYPE:
        if (as->kind != ASM_NONE)
            return unexpected(ch, "a method in the middle of a message");
        return on_method(ch, f);
    case AMQP_FRAME_HEADER_TYPE: {
        if (as->kind == ASM_NONE || as->have_header)
            return unexpected(ch, "a content header without its method");
        int rc = amqp_msg_alloc(ch, as, f);
        if (rc < 0)
            return amqp_conn_break(ch->conn, rc, "%s", wv_errmsg());
        if (as->body_size == 0)
            amqp_msg_complete(ch, as);
        return 0;
    }
    case AMQP_FRAME_BODY_TYPE:
        if (as->kind == ASM_NONE || !as->have_header)
            return unexpected(ch, "a body frame without its header");
        if (f->size > as->body_size - as->body_got)
            return unexpected(ch, "a body longer than its header said");
        memcpy((char *)as->msg->body.p + as->body_got, f->payload, f->size);
        as->body_got += f->size;
        if (as->body_got == as->body_size)
            amqp_msg_complete(ch, as);
        return 0;
    default:
        return unexpected(ch, "a frame of an unknown type");
    }
}

/* Hand a completed basic.get to the fiber that asked. */
void amqp_chan_get_done(wv_amqp_channel *ch, wv_amqp_msg *m)
{
    amqp_rpc *r = ch->rpc_head;
    if (!r || (r->want[0] != AMQP_BASIC_GET_OK_METHOD && r->want[1] != AMQP_BASIC_GET_OK_METHOD)) {
        wv_amqp_msg_free(m);
        unexpected(ch, "basic.get-ok");
        return;
    }
    r->reply.method = AMQP_BASIC_GET_OK_METHOD;
    r->reply.msg = m;
    ((amqp_msg_priv *)m->priv_)->no_ack = r->get_no_ack;
    rpc_finish(ch, rpc_pop(ch), 0, NULL);
}

/* -------------------------------------------------------------- public */

int wv_amqp_channel_open(wv_amqp *c, wv_amqp_channel **out)
{
    *out = NULL;
    int rc = amqp_enter(c);
    if (rc < 0)
        return rc;
    wv_amqp_channel *ch = NULL;
    rc = amqp_conn_wait_ready(c);
    if (rc == 0)
        rc = amqp_chan_new(c, false, &ch);
    if (rc == 0) {
        rc = amqp_chan_ready(ch);
        if (rc < 0) {
            char msg[AMQP_MSG];
            snprintf(msg, sizeof msg, "%s", wv_errmsg());
            amqp_chan_detach(ch, rc, msg);
            wv_fail(rc, "%s", msg);
        } else {
            *out = ch;
        }
    }
    amqp_leave(c);
    return rc;
}

void wv_amqp_channel_close(wv_amqp_channel *ch)
{
    if (!ch)
        return;
    wv_amqp *c = ch->conn;
    if (!c || amqp_enter(c) < 0)
        return;
    if (ch->state == CH_OPEN && amqp_conn_live(c)) {
        amqp_channel_close_t m = {.reply_code = AMQP_REPLY_SUCCESS};
        int64_t old = amqp_deadline_cap(wv_after_ms(AMQP_CLOSE_WAIT_MS));
        amqp_chan_rpc(ch, AMQP_CHANNEL_CLOSE_METHOD, &m, AMQP_CHANNEL_CLOSE_OK_METHOD, 0, NULL);
        wv_deadline_set(old);
    }
    amqp_chan_detach(ch, -EPIPE, "AMQP: the channel was closed");
    amqp_leave(c);
}

static int qos(wv_amqp_channel *ch, uint16_t prefetch, bool global)
{
    wv_amqp *c = ch->conn;
    if (!c)
        return wv_fail(-EPIPE, "AMQP: the channel is closed");
    int rc = amqp_enter(c);
    if (rc < 0)
        return rc;
    rc = amqp_chan_ready(ch);
    amqp_basic_qos_t m = {.prefetch_count = prefetch, .global = global};
    if (rc == 0)
        rc = amqp_chan_rpc(ch, AMQP_BASIC_QOS_METHOD, &m, AMQP_BASIC_QOS_OK_METHOD, 0, NULL);
    if (rc == 0 && global) {
        ch->prefetch_channel = prefetch;
        ch->has_prefetch_channel = true;
    } else if (rc == 0) {
        ch->prefetch = prefetch;
    }
    amqp_leave(c);
    return rc;
}

int wv_amqp_qos(wv_amqp_channel *ch, uint16_t prefetch)
{
    return qos(ch, prefetch, false);
}

int wv_amqp_qos_channel(wv_amqp_channel *ch, uint16_t prefetch)
{
    return qos(ch, prefetch, true);
}
