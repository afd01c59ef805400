/*
 * Receiving: messages built from a content header and its body frames
 * (one allocation: the public struct, its strings NUL-terminated, the
 * headers table and the body), consumers that queue them in a wv_chan,
 * basic.get, and settling a message (ack, nack, reject) on the channel
 * opening it came from: a message from an opening that is over is stale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

/* ------------------------------------------------------------ messages */

typedef struct msg_block {
    wv_amqp_msg pub;
    amqp_msg_priv priv;
    char data[];
} msg_block;

static size_t str_room(const amqp_basic_properties_t *p, amqp_flags_t flag, amqp_bytes_t b)
{
    return (p->_flags & flag ? b.len : 0) + 1;
}

/* Copy into the block at *at, NUL-terminated: empty when absent. */
static wv_str put_str(char **at, const void *p, size_t n)
{
    char *s = *at;
    if (n)
        memcpy(s, p, n);
    s[n] = '\0';
    *at += n + 1;
    return (wv_str){s, n};
}

static wv_str put_prop(char **at, const amqp_basic_properties_t *p, amqp_flags_t flag,
                       amqp_bytes_t b)
{
    return p->_flags & flag ? put_str(at, b.bytes, b.len) : put_str(at, NULL, 0);
}

int amqp_msg_alloc(wv_amqp_channel *ch, amqp_assembly *as, const amqp_frame *f)
{
    wv_amqp *c = ch->conn;
    const uint8_t *p = f->payload;
    uint16_t class_id = (uint16_t)(p[0] << 8 | p[1]);
    uint64_t size = 0;
    for (int i = 0; i < 8; i++)
        size = size << 8 | p[4 + i];
    if (class_id != AMQP_BASIC_CLASS)
        return wv_fail(-EPROTO, "AMQP: a content header of class %u, not basic", class_id);
    if (size > c->opts.max_message)
        return wv_fail(-EMSGSIZE, "AMQP: a message of %llu bytes, over max_message (%zu)",
                       (unsigned long long)size, c->opts.max_message);
    char why[AMQP_WHY];
    wv_str headers;
    if (amqp_props_headers(p + 12, f->size - 12, &headers, why) < 0)
        return wv_fail(-EPROTO, "AMQP: %s", why);
    amqp_basic_properties_t *props;
    if (amqp_decode_properties(AMQP_BASIC_CLASS, &c->dec_pool,
                               (amqp_bytes_t){f->size - 12, (void *)(p + 12)}, (void **)&props) < 0)
        return wv_fail(-EPROTO, "AMQP: malformed message properties");
    size_t room =
        strlen(as->exchange) + strlen(as->routing_key) + 2 + headers.n + 1 + (size_t)size + 1;
    room += str_room(props, AMQP_BASIC_CONTENT_TYPE_FLAG, props->content_type);
    room += str_room(props, AMQP_BASIC_CONTENT_ENCODING_FLAG, props->content_encoding);
    room += str_room(props, AMQP_BASIC_CORRELATION_ID_FLAG, props->correlation_id);
    room += str_room(props, AMQP_BASIC_REPLY_TO_FLAG, props->reply_to);
    room += str_room(props, AMQP_BASIC_EXPIRATION_FLAG, props->expiration);
    room += str_room(props, AMQP_BASIC_MESSAGE_ID_FLAG, props->message_id);
    room += str_room(props, AMQP_BASIC_TYPE_FLAG, props->type);
    room += str_room(props, AMQP_BASIC_USER_ID_FLAG, props->user_id);
    room += str_room(props, AMQP_BASIC_APP_ID_FLAG, props->app_id);
    msg_block *b = malloc(sizeof *b + room);
    if (!b)
        return wv_fail(-ENOMEM, "AMQP: no memory for a message of %llu bytes",
                       (unsigned long long)size);
    memset(b, 0, sizeof *b);
    wv_amqp_msg *m = &b->pub;
    m->priv_ = &b->priv;
    char *at = b->data;
    m->exchange = put_str(&at, as->exchange, strlen(as->exchange));
    m->routing_key = put_str(&at, as->routing_key, strlen(as->routing_key));
    m->headers = put_str(&at, headers.p, headers.n);
    m->content_type = put_prop(&at, props, AMQP_BASIC_CONTENT_TYPE_FLAG, props->content_type);
    m->content_encoding =
        put_prop(&at, props, AMQP_BASIC_CONTENT_ENCODING_FLAG, props->content_encoding);
    m->correlation_id = put_prop(&at, props, AMQP_BASIC_CORRELATION_ID_FLAG, props->correlation_id);
    m->reply_to = put_prop(&at, props, AMQP_BASIC_REPLY_TO_FLAG, props->reply_to);
    m->expiration = put_prop(&at, props, AMQP_BASIC_EXPIRATION_FLAG, props->expiration);
    m->message_id = put_prop(&at, props, AMQP_BASIC_MESSAGE_ID_FLAG, props->message_id);
    m->type = put_prop(&at, props, AMQP_BASIC_TYPE_FLAG, props->type);
    m->user_id = put_prop(&at, props, AMQP_BASIC_USER_ID_FLAG, props->user_id);
    m->app_id = put_prop(&at, props, AMQP_BASIC_APP_ID_FLAG, props->app_id);
    m->delivery_mode = props->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG ? props->delivery_mode : 0;
    m->priority = props->_flags & AMQP_BASIC_PRIORITY_FLAG ? props->priority : -1;
    m->timestamp = props->_flags & AMQP_BASIC_TIMESTAMP_FLAG ? (int64_t)props->timestamp : 0;
    m->body = (wv_str){at, (size_t)size};
    at[size] = '\0';
    m->delivery_tag = as->delivery_tag;
    m->redelivered = as->redelivered;
    m->message_count = as->message_count;
    b->priv.ch = ch;
    b->priv.gen = ch->gen;
    ch->refs++;
    as->msg = m;
    as->body_size = size;
    as->body_got = 0;
    as->have_header = true;
    return 0;
}

void amqp_msg_complete(wv_amqp_channel *ch, amqp_assembly *as)
{
    wv_amqp_msg *m = as->msg;
    int kind = as->kind;
    if (kind == ASM_RETURN) {
        amqp_confirm_returned(ch, as);
        ((amqp_msg_priv *)m->priv_)->settled = true;
        wv_amqp_msg_free(m);
    } else if (kind == ASM_GET) {
        ch->conn->stats.delivered++;
        amqp_chan_get_done(ch, m);
    } else {
        wv_amqp_consumer *co = amqp_consumer_find(ch, as->tag, strlen(as->tag));
        amqp_msg_priv *priv = m->priv_;
        if (co)
            priv->no_ack = co->no_ack;
        if (co && !co->ended && wv_chan_try_send(co->chan, &m) == 0)
            ch->conn->stats.delivered++;
        else
            wv_amqp_msg_free(m); /* a manual-ack message goes back to its queue */
    }
    memset(as, 0, sizeof *as); /* the message is someone else's now */
}

int amqp_msg_settle(wv_amqp_msg *m, uint32_t id, bool requeue)
{
    amqp_msg_priv *priv = m->priv_;
    wv_amqp_channel *ch = priv->ch;
    if (priv->no_ack)
        return wv_fail(-EINVAL, "AMQP: the message was received with no_ack");
    if (priv->settled)
        return wv_fail(-EINVAL, "AMQP: the message was already settled");
    if (!ch->conn)
        return wv_fail(-EPIPE, "AMQP: the message's channel was closed");
    int rc = amqp_conn_check_shard(ch->conn);
    if (rc < 0)
        return rc;
    if (priv->gen != ch->gen || ch->state != CH_OPEN || !amqp_conn_live(ch->conn))
        return wv_fail(-ESTALE, "AMQP: the message's channel or connection broke since it "
                                "came: the broker delivers it again");
    if (id == AMQP_BASIC_ACK_METHOD) {
        amqp_basic_ack_t a = {.delivery_tag = m->delivery_tag};
        rc = amqp_chan_send(ch, id, &a);
    } else if (id == AMQP_BASIC_NACK_METHOD) {
        amqp_basic_nack_t n = {.delivery_tag = m->delivery_tag, .requeue = requeue};
        rc = amqp_chan_send(ch, id, &n);
    } else {
        amqp_basic_reject_t r = {.delivery_tag = m->delivery_tag, .requeue = requeue};
        rc = amqp_chan_send(ch, id, &r);
    }
    if (rc == 0)
        priv->settled = true;
    return rc;
}

int wv_amqp_ack(wv_amqp_msg *m)
{
    return amqp_msg_settle(m, AMQP_BASIC_ACK_METHOD, false);
}

int wv_amqp_nack(wv_amqp_msg *m, bool requeue)
{
    return amqp_msg_settle(m, AMQP_BASIC_NACK_METHOD, requeue);
}

int wv_amqp_reject(wv_amqp_msg *m, bool requeue)
{
    return amqp_msg_settle(m, AMQP_BASIC_REJECT_METHOD, requeue);
}

void wv_amqp_msg_free(wv_amqp_msg *m)
{
    if (!m)
        return;
    amqp_msg_priv *priv = m->priv_;
    if (!priv->settled && !priv->no_ack && priv->ch->conn && priv->gen == priv->ch->gen &&
        priv->ch->state == CH_OPEN && amqp_conn_live(priv->ch->conn))
        amqp_msg_settle(m, AMQP_BASIC_REJECT_METHOD, true);
    amqp_chan_unref(priv->ch);
    free((msg_block *)m);
}

/* ----------------------------------------------------------- consumers */

wv_amqp_consumer *amqp_consumer_find(wv_amqp_channel *ch, const char *tag, size_t len)
{
    for (wv_amqp_consumer *co = ch->consumers; co; co = co->next)
        if (strlen(co->tag) == len && memcmp(co->tag, tag, len) == 0)
            return co;
    return NULL;
}

int amqp_consumer_resume(wv_amqp_consumer *co)
{
    wv_amqp_channel *ch = co->ch;
    wv_amqp *c = ch->conn;
    amqp_basic_consume_t m = {
        .queue = amqp_cstring_bytes(co->queue),
        .consumer_tag = amqp_cstring_bytes(co->tag),
        .no_ack = co->no_ack,
        .exclusive = co->exclusive,
    };
    int rc = amqp_table_decode(&c->enc_pool, &co->args, &m.arguments);
    if (rc == 0)
        rc =
            amqp_chan_rpc(ch, AMQP_BASIC_CONSUME_METHOD, &m, AMQP_BASIC_CONSUME_OK_METHOD, 0, NULL);
    recycle_amqp_pool(&c->enc_pool);
    if (rc == 0)
        co->active = true;
    return rc;
}

void amqp_consumer_end(wv_amqp_consumer *co)
{
    co->active = false;
    if (co->ended)
        return;
    co->ended = true;
    wv_chan_close(co->chan);
}

static void drain(wv_amqp_consumer *co)
{
    wv_amqp_msg *m;
    while (wv_chan_try_recv(co->chan, &m) == 0)
        wv_amqp_msg_free(m);
}

void amqp_consumer_drop_stale(wv_amqp_consumer *co)
{
    if (!co->no_ack)
        drain(co); /* stale now: their channel opening is over */
}

void amqp_consumer_destroy(wv_amqp_consumer *co)
{
    wv_amqp_channel *ch = co->ch;
    amqp_consumer_end(co);
    drain(co);
    wv_chan_free(co->chan);
    if (co->prev)
        co->prev->next = co->next;
    else if (ch->consumers == co)
        ch->consumers = co->next;
    if (co->next)
        co->next->prev = co->prev;
    wv_buf_free(&co->args);
    free(co);
    amqp_chan_unref(ch);
}

int wv_amqp_consume(wv_amqp_channel *ch, const char *queue, const wv_amqp_consume_opts *opts,
                    wv_amqp_consumer **out)
{
    static const wv_amqp_consume_opts none = {0};
    *out = NULL;
    wv_amqp *c = ch->conn;
    if (!c)
        return wv_fail(-EPIPE, "AMQP: the channel is closed");
    if (!opts)
        opts = &none;
    if (!queue || strlen(queue) >= AMQP_NAME || (opts->tag && strlen(opts->tag) >= AMQP_NAME))
        return wv_fail(-EINVAL, "AMQP: a queue name and a consumer tag are 255 bytes at most");
    int rc = amqp_enter(c);
    if (rc < 0)
        return rc;
    wv_amqp_consumer *co = calloc(1, sizeof *co);
    if (!co) {
        amqp_leave(c);
        return -ENOMEM;
    }
    co->ch = ch;
    ch->refs++;
    snprintf(co->queue, sizeof co->queue, "%s", queue);
    if (opts->tag)
        snprintf(co->tag, sizeof co->tag, "%s", opts->tag);
    else
        snprintf(co->tag, sizeof co->tag, "wv-%llu", (unsigned long long)++c->next_tag);
    co->no_ack = opts->no_ack;
    co->exclusive = opts->exclusive;
    co->chan = wv_chan_new(sizeof(wv_amqp_msg *), WV_CHAN_UNBOUNDED);
    rc = co->chan ? amqp_table_encode(&co->args, &c->enc_pool, opts->args, opts->nargs) : -ENOMEM;
    recycle_amqp_pool(&c->enc_pool);
    if (rc < 0)
        rc = wv_fail(rc, "AMQP: bad consumer arguments");
    co->next = ch->consumers;
    if (ch->consumers)
        ch->consumers->prev = co;
    ch->consumers = co;
    if (rc == 0)
        rc = amqp_chan_ready(ch);
    /* a channel (re)opened just now resumed it already */
    if (rc == 0 && !co->active)
        rc = amqp_consumer_resume(co);
    if (rc < 0) {
        char msg[AMQP_MSG];
        snprintf(msg, sizeof msg, "%s", wv_errmsg());
        amqp_consumer_destroy(co);
        wv_fail(rc, "%s", msg);
    } else {
        *out = co;
    }
    amqp_leave(c);
    return rc;
}

int wv_amqp_consumer_recv(wv_amqp_consumer *co, wv_amqp_msg **m, int64_t at)
{
    wv_amqp *c = co->ch->conn;
    if (c && amqp_enter(c) < 0)
        return -EXDEV;
    int rc = wv_chan_recv_until(co->chan, m, at);
    if (rc == -EPIPE)
        wv_fail(rc,
                co->broker_cancelled ? "AMQP: consumer '%s' was cancelled by the broker "
                                       "(its queue was deleted?)"
                                     : "AMQP: consumer '%s' has ended",
                co->tag);
    if (c)
        amqp_leave(c);
    return rc;
}

wv_chan *wv_amqp_consumer_chan(wv_amqp_consumer *co)
{
    return co->chan;
}

const char *wv_amqp_consumer_tag(const wv_amqp_consumer *co)
{
    return co->tag;
}

bool wv_amqp_consumer_cancelled(const wv_amqp_consumer *co)
{
    return co->broker_cancelled;
}

static int cancel(wv_amqp_consumer *co)
{
    wv_amqp_channel *ch = co->ch;
    int rc = 0;
    if (co->active && ch->state == CH_OPEN && amqp_conn_live(ch->conn)) {
        amqp_basic_cancel_t m = {.consumer_tag = amqp_cstring_bytes(co->tag)};
        int64_t old = amqp_deadline_cap(wv_after_ms(AMQP_CLOSE_WAIT_MS));
        rc = amqp_chan_rpc(ch, AMQP_BASIC_CANCEL_METHOD, &m, AMQP_BASIC_CANCEL_OK_METHOD, 0, NULL);
        wv_deadline_set(old);
    }
    amqp_consumer_end(co);
    return rc;
}

int wv_amqp_consumer_cancel(wv_amqp_consumer *co)
{
    wv_amqp *c = co->ch->conn;
    if (!c) {
        amqp_consumer_end(co);
        return 0;
    }
    int rc = amqp_enter(c);
    if (rc < 0)
        return rc;
    rc = cancel(co);
    amqp_leave(c);
    return rc;
}

void wv_amqp_consumer_free(wv_amqp_consumer *co)
{
    if (!co)
        return;
    wv_amqp *c = co->ch->conn;
    if (c && amqp_enter(c) < 0)
        return;
    if (c)
        cancel(co);
    amqp_consumer_destroy(co); /* unsettled messages go back with a reject */
    if (c)
        amqp_leave(c);
}

/* ------------------------------------------------------------------ get */

int wv_amqp_get(wv_amqp_channel *ch, const char *queue, bool no_ack, wv_amqp_msg **out)
{
    *out = NULL;
    wv_amqp *c = ch->conn;
    if (!c)
        return wv_fail(-EPIPE, "AMQP: the channel is closed");
    if (!queue || strlen(queue) > 255)
        return wv_fail(-EINVAL, "AMQP: a queue name is 255 bytes at most");
    int rc = amqp_enter(c);
    if (rc < 0)
        return rc;
    rc = amqp_chan_ready(ch);
    amqp_basic_get_t m = {.queue = amqp_cstring_bytes(queue), .no_ack = no_ack};
    amqp_reply reply = {0};
    if (rc == 0)
        rc = amqp_chan_rpc(ch, AMQP_BASIC_GET_METHOD, &m, AMQP_BASIC_GET_OK_METHOD,
                           AMQP_BASIC_GET_EMPTY_METHOD, &reply);
    amqp_leave(c);
    if (rc < 0)
        return rc;
    *out = reply.msg;
    return reply.msg ? 1 : 0;
}
