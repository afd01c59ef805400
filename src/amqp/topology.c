/*
 * Exchanges, queues and bindings: the declare, delete, bind and unbind
 * calls, and the record of what this client declared, kept in the order it
 * was declared, so that after a reconnect it can all be declared again
 * (what aio-pika's robust connection does). A delete takes what it deletes
 * out of the record (a queue with its bindings, an exchange with the
 * bindings it is part of); passive declares are not recorded. A queue the
 * broker named (declared as "") gets a new name when declared again: its
 * bindings and consumers follow it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

/* ------------------------------------------------------------- record */

static void topo_unlink(wv_amqp *c, amqp_topo *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        c->topo_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        c->topo_tail = t->prev;
    free(t->a);
    free(t->b);
    free(t->c);
    wv_buf_free(&t->args);
    free(t);
}

void amqp_topo_free(wv_amqp *c)
{
    while (c->topo_head)
        topo_unlink(c, c->topo_head);
}

static bool same(const char *x, const char *y)
{
    return x && y && strcmp(x, y) == 0;
}

static amqp_topo *topo_find(wv_amqp *c, int kind, const char *a, const char *b, const char *k)
{
    for (amqp_topo *t = c->topo_head; t; t = t->next)
        if (t->kind == kind && same(t->a, a) && (!b || same(t->b, b)) && (!k || same(t->c, k)))
            return t;
    return NULL;
}

/* Record (or, declared again, replace) an entry; args are taken. */
static void topo_add(wv_amqp *c, int kind, const char *a, const char *b, const char *k,
                     wv_buf *args, const amqp_topo *flags)
{
    amqp_topo *old = kind == TOPO_EXCHANGE || kind == TOPO_QUEUE ? topo_find(c, kind, a, NULL, NULL)
                                                                 : topo_find(c, kind, a, b, k);
    if (old)
        topo_unlink(c, old);
    amqp_topo *t = calloc(1, sizeof *t);
    if (!t) {
        wv_buf_free(args);
        return; /* not recorded: it is not declared again after a reconnect */
    }
    *t = *flags;
    t->kind = kind;
    t->a = strdup(a);
    t->b = b ? strdup(b) : NULL;
    t->c = k ? strdup(k) : NULL;
    t->args = *args;
    *args = (wv_buf){0};
    t->prev = c->topo_tail;
    t->next = NULL;
    if (c->topo_tail)
        c->topo_tail->next = t;
    else
        c->topo_head = t;
    c->topo_tail = t;
}

/* Forget a deleted exchange or queue and every binding it is part of. */
static void topo_forget(wv_amqp *c, int kind, const char *name)
{
    int bind_kind = kind == TOPO_QUEUE ? TOPO_QUEUE_BIND : TOPO_EXCHANGE_BIND;
    for (amqp_topo *t = c->topo_head, *next; t; t = next) {
        next = t->next;
        bool gone =
            (t->kind == kind && same(t->a, name)) || (t->kind == bind_kind && same(t->a, name)) ||
            (kind == TOPO_EXCHANGE &&
             (t->kind == TOPO_QUEUE_BIND || t->kind == TOPO_EXCHANGE_BIND) && same(t->b, name));
        if (gone)
            topo_unlink(c, t);
    }
}

/* A server-named queue came back under another name. */
static void topo_rename(wv_amqp *c, const char *old, const char *name)
{
    for (amqp_topo *t = c->topo_head; t; t = t->next) {
        if ((t->kind == TOPO_QUEUE || t->kind == TOPO_QUEUE_BIND) && same(t->a, old)) {
            char *n = strdup(name);
            if (n) {
                free(t->a);
                t->a = n;
            }
        }
    }
    for (int id = 1; id <= c->opts.channel_max; id++)
        for (wv_amqp_consumer *co = c->chans[id] ? c->chans[id]->consumers : NULL; co;
             co = co->next)
            if (strcmp(co->queue, old) == 0)
                snprintf(co->queue, sizeof co->queue, "%s", name);
}

/* ------------------------------------------------------------- methods */

static int send_exchange_declare(wv_amqp_channel *ch, const amqp_topo *t, bool passive,
                                 amqp_table_t args)
{
    amqp_exchange_declare_t m = {
        .exchange = amqp_str(t->a),
        .type = amqp_str(t->b),
        .passive = passive,
        .durable = t->durable,
        .auto_delete = t->auto_delete,
        .internal = t->internal,
        .arguments = args,
    };
    return amqp_chan_rpc(ch, AMQP_EXCHANGE_DECLARE_METHOD, &m, AMQP_EXCHANGE_DECLARE_OK_METHOD, 0,
                         NULL);
}

static int send_queue_declare(wv_amqp_channel *ch, const amqp_topo *t, bool passive,
                              amqp_table_t args, amqp_reply *reply)
{
    amqp_queue_declare_t m = {
        .queue = amqp_str(t->server_named ? "" : t->a),
        .passive = passive,
        .durable = t->durable,
        .exclusive = t->exclusive,
        .auto_delete = t->auto_delete,
        .arguments = args,
    };
    return amqp_chan_rpc(ch, AMQP_QUEUE_DECLARE_METHOD, &m, AMQP_QUEUE_DECLARE_OK_METHOD, 0, reply);
}

static int send_bind(wv_amqp_channel *ch, int kind, bool bind, const char *dest, const char *source,
                     const char *key, amqp_table_t args)
{
    if (kind == TOPO_QUEUE_BIND && bind) {
        amqp_queue_bind_t m = {.queue = amqp_str(dest),
                               .exchange = amqp_str(source),
                               .routing_key = amqp_str(key),
                               .arguments = args};
        return amqp_chan_rpc(ch, AMQP_QUEUE_BIND_METHOD, &m, AMQP_QUEUE_BIND_OK_METHOD, 0, NULL);
    }
    if (kind == TOPO_QUEUE_BIND) {
        amqp_queue_unbind_t m = {.queue = amqp_str(dest),
                                 .exchange = amqp_str(source),
                                 .routing_key = amqp_str(key),
                                 .arguments = args};
        return amqp_chan_rpc(ch, AMQP_QUEUE_UNBIND_METHOD, &m, AMQP_QUEUE_UNBIND_OK_METHOD, 0,
                             NULL);
    }
    if (bind) {
        amqp_exchange_bind_t m = {.destination = amqp_str(dest),
                                  .source = amqp_str(source),
                                  .routing_key = amqp_str(key),
                                  .arguments = args};
        return amqp_chan_rpc(ch, AMQP_EXCHANGE_BIND_METHOD, &m, AMQP_EXCHANGE_BIND_OK_METHOD, 0,
                             NULL);
    }
    amqp_exchange_unbind_t m = {.destination = amqp_str(dest),
                                .source = amqp_str(source),
                                .routing_key = amqp_str(key),
                                .arguments = args};
    return amqp_chan_rpc(ch, AMQP_EXCHANGE_UNBIND_METHOD, &m, AMQP_EXCHANGE_UNBIND_OK_METHOD, 0,
                         NULL);
}

/* ------------------------------------------------------------- replay */

int amqp_topo_replay(wv_amqp *c, wv_amqp_channel *ch)
{
    for (amqp_topo *t = c->topo_head, *next; t; t = next) {
        next = t->next;
        amqp_table_t args;
        int rc = amqp_table_decode(&c->enc_pool, &t->args, &args);
        amqp_reply reply = {0};
        if (rc == 0) {
            if (t->kind == TOPO_EXCHANGE)
                rc = send_exchange_declare(ch, t, false, args);
            else if (t->kind == TOPO_QUEUE)
                rc = send_queue_declare(ch, t, false, args, &reply);
            else
                rc = send_bind(ch, t->kind, true, t->a, t->b, t->c, args);
        }
        recycle_amqp_pool(&c->enc_pool);
        if (rc == 0 && t->kind == TOPO_QUEUE && t->server_named && strcmp(t->a, reply.name)) {
            char *old = strdup(t->a);
            if (old)
                topo_rename(c, old, reply.name);
            free(old);
        }
        if (rc < 0 && !amqp_conn_live(c))
            return rc;
        if (rc < 0) {
            /* the broker refused it (it closed the channel): say so, go on */
            wv_warn("AMQP %s: declaring again after a reconnect: %s", c->redacted, wv_errmsg());
            if ((rc = amqp_chan_open_wire(ch)) < 0)
                return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------- public */

/* Run body on a ready channel inside a public call. */
#define WITH_CHANNEL(ch, body)                                                                     \
    do {                                                                                           \
        wv_amqp *c_ = (ch)->conn;                                                                  \
        if (!c_)                                                                                   \
            return wv_fail(-EPIPE, "AMQP: the channel is closed");                                 \
        int rc_ = amqp_enter(c_);                                                                  \
        if (rc_ < 0)                                                                               \
            return rc_;                                                                            \
        rc_ = amqp_chan_ready(ch);                                                                 \
        if (rc_ == 0)                                                                              \
            rc_ = (body);                                                                          \
        recycle_amqp_pool(&c_->enc_pool);                                                          \
        amqp_leave(c_);                                                                            \
        return rc_;                                                                                \
    } while (0)

static bool name_ok(const char *s)
{
    return s && strlen(s) <= 255;
}

static int bad_name(void)
{
    return wv_fail(-EINVAL, "AMQP: names and routing keys are 255 bytes at most");
}

/* The arguments both ways: encoded for the record (args), and as the
 * table the method is sent with. */
static int arguments(wv_amqp *c, const wv_amqp_field *fields, int n, wv_buf *args,
                     amqp_table_t *table, const char *what)
{
    int rc = amqp_table_encode(args, &c->enc_pool, fields, n);
    if (rc == 0)
        rc = amqp_table_from_fields(&c->enc_pool, fields, n, table);
    if (rc < 0) {
        wv_buf_free(args);
        return wv_fail(rc, "AMQP: bad %s arguments", what);
    }
    return 0;
}

static int exchange_declare(wv_amqp_channel *ch, const char *name, const char *type,
                            const wv_amqp_exchange_opts *o)
{
    wv_amqp *c = ch->conn;
    wv_buf args = {0};
    amqp_table_t table;
    amqp_topo t = {.a = (char *)name,
                   .b = (char *)type,
                   .durable = o->durable,
                   .auto_delete = o->auto_delete,
                   .internal = o->internal};
    int rc = arguments(c, o->args, o->nargs, &args, &table, "exchange");
    if (rc < 0)
        return rc;
    rc = send_exchange_declare(ch, &t, o->passive, table);
    if (rc == 0 && !o->passive && ch->conn)
        topo_add(ch->conn, TOPO_EXCHANGE, name, type, NULL, &args, &t);
    wv_buf_free(&args);
    return rc;
}

int wv_amqp_exchange_declare(wv_amqp_channel *ch, const char *name, const char *type,
                             const wv_amqp_exchange_opts *opts)
{
    static const wv_amqp_exchange_opts none = {0};
    if (!name_ok(name) || !name_ok(type))
        return bad_name();
    WITH_CHANNEL(ch, exchange_declare(ch, name, type, opts ? opts : &none));
}

static int exchange_delete(wv_amqp_channel *ch, const char *name, bool if_unused)
{
    amqp_exchange_delete_t m = {.exchange = amqp_str(name), .if_unused = if_unused};
    int rc =
        amqp_chan_rpc(ch, AMQP_EXCHANGE_DELETE_METHOD, &m, AMQP_EXCHANGE_DELETE_OK_METHOD, 0, NULL);
    if (rc == 0 && ch->conn)
        topo_forget(ch->conn, TOPO_EXCHANGE, name);
    return rc;
}

int wv_amqp_exchange_delete(wv_amqp_channel *ch, const char *name, bool if_unused)
{
    if (!name_ok(name))
        return bad_name();
    WITH_CHANNEL(ch, exchange_delete(ch, name, if_unused));
}

static int binding(wv_amqp_channel *ch, int kind, bool on, const char *dest, const char *source,
                   const char *key, const wv_amqp_field *fields, int n)
{
    wv_amqp *c = ch->conn;
    wv_buf args = {0};
    amqp_table_t table;
    int rc = arguments(c, fields, n, &args, &table, "binding");
    if (rc < 0)
        return rc;
    rc = send_bind(ch, kind, on, dest, source, key, table);
    if (rc == 0 && ch->conn) {
        if (on) {
            amqp_topo flags = {0};
            topo_add(ch->conn, kind, dest, source, key, &args, &flags);
        } else {
            amqp_topo *t = topo_find(ch->conn, kind, dest, source, key);
            if (t)
                topo_unlink(ch->conn, t);
        }
    }
    wv_buf_free(&args);
    return rc;
}

static int binding_call(wv_amqp_channel *ch, int kind, bool on, const char *dest,
                        const char *source, const char *key, const wv_amqp_field *args, int nargs)
{
    if (!name_ok(dest) || !name_ok(source) || !name_ok(key))
        return bad_name();
    WITH_CHANNEL(ch, binding(ch, kind, on, dest, source, key, args, nargs));
}

int wv_amqp_exchange_bind(wv_amqp_channel *ch, const char *destination, const char *source,
                          const char *routing_key, const wv_amqp_field *args, int nargs)
{
    return binding_call(ch, TOPO_EXCHANGE_BIND, true, destination, source, routing_key, args,
                        nargs);
}

int wv_amqp_exchange_unbind(wv_amqp_channel *ch, const char *destination, const char *source,
                            const char *routing_key, const wv_amqp_field *args, int nargs)
{
    return binding_call(ch, TOPO_EXCHANGE_BIND, false, destination, source, routing_key, args,
                        nargs);
}

int wv_amqp_queue_bind(wv_amqp_channel *ch, const char *queue, const char *exchange,
                       const char *routing_key, const wv_amqp_field *args, int nargs)
{
    return binding_call(ch, TOPO_QUEUE_BIND, true, queue, exchange, routing_key, args, nargs);
}

int wv_amqp_queue_unbind(wv_amqp_channel *ch, const char *queue, const char *exchange,
                         const char *routing_key, const wv_amqp_field *args, int nargs)
{
    return binding_call(ch, TOPO_QUEUE_BIND, false, queue, exchange, routing_key, args, nargs);
}

static int queue_declare(wv_amqp_channel *ch, const char *name, const wv_amqp_queue_opts *o,
                         wv_amqp_queue_info *info)
{
    wv_amqp *c = ch->conn;
    wv_buf args = {0};
    amqp_table_t table;
    amqp_topo t = {.a = (char *)name,
                   .durable = o->durable,
                   .exclusive = o->exclusive,
                   .auto_delete = o->auto_delete};
    int rc = arguments(c, o->args, o->nargs, &args, &table, "queue");
    if (rc < 0)
        return rc;
    amqp_reply reply = {0};
    rc = send_queue_declare(ch, &t, o->passive, table, &reply);
    if (rc == 0) {
        if (info) {
            snprintf(info->name, sizeof info->name, "%s", reply.name);
            info->messages = reply.count1;
            info->consumers = reply.count2;
        }
        if (!o->passive && ch->conn) {
            t.server_named = name[0] == '\0';
            topo_add(ch->conn, TOPO_QUEUE, reply.name, NULL, NULL, &args, &t);
        }
    }
    wv_buf_free(&args);
    return rc;
}

int wv_amqp_queue_declare(wv_amqp_channel *ch, const char *name, const wv_amqp_queue_opts *opts,
                          wv_amqp_queue_info *info)
{
    static const wv_amqp_queue_opts none = {0};
    if (!name_ok(name))
        return bad_name();
    WITH_CHANNEL(ch, queue_declare(ch, name, opts ? opts : &none, info));
}

static int queue_delete(wv_amqp_channel *ch, const char *name, bool if_unused, bool if_empty,
                        uint32_t *messages)
{
    amqp_queue_delete_t m = {.queue = amqp_str(name), .if_unused = if_unused, .if_empty = if_empty};
    amqp_reply reply = {0};
    int rc =
        amqp_chan_rpc(ch, AMQP_QUEUE_DELETE_METHOD, &m, AMQP_QUEUE_DELETE_OK_METHOD, 0, &reply);
    if (rc == 0) {
        if (messages)
            *messages = reply.count1;
        if (ch->conn)
            topo_forget(ch->conn, TOPO_QUEUE, name);
    }
    return rc;
}

int wv_amqp_queue_delete(wv_amqp_channel *ch, const char *name, bool if_unused, bool if_empty,
                         uint32_t *messages)
{
    if (!name_ok(name))
        return bad_name();
    WITH_CHANNEL(ch, queue_delete(ch, name, if_unused, if_empty, messages));
}

static int queue_purge(wv_amqp_channel *ch, const char *name, uint32_t *messages)
{
    amqp_queue_purge_t m = {.queue = amqp_str(name)};
    amqp_reply reply = {0};
    int rc = amqp_chan_rpc(ch, AMQP_QUEUE_PURGE_METHOD, &m, AMQP_QUEUE_PURGE_OK_METHOD, 0, &reply);
    if (rc == 0 && messages)
        *messages = reply.count1;
    return rc;
}

int wv_amqp_queue_purge(wv_amqp_channel *ch, const char *name, uint32_t *messages)
{
    if (!name_ok(name))
        return bad_name();
    WITH_CHANNEL(ch, queue_purge(ch, name, messages));
}
