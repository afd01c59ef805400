/*
 * src/tasks/amqp.c: kombu 5.2's py-amqp transport as Celery 5.2 uses
 * RabbitMQ (transport.h's seam), on weave's RabbitMQ client
 * (include/weave/amqp.h). What goes over the wire is described in
 * docs/tasks.md ("Workers and producers over RabbitMQ").
 *
 * One connection per client, with a channel for topology, one for
 * publishing and one per consumed queue (its basic.qos, global as Celery
 * sets it on RabbitMQ, is the worker's concurrency, raised by one for
 * every message held for its ETA, as Celery's QoS does). A message a worker took is a `delivery`:
 * the broker's message and its consumer, on the transport's list until it is settled (ack, requeue,
 * reject), so that whatever tasks.c never settles goes back to the broker when the client closes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/transport.h"
#include "weave/amqp.h"
#include "weave/json.h"

/* Nesting of headers tables and arrays read or written at most. */
#define MAX_DEPTH 32

typedef struct amqp_tr amqp_tr;

/* A consumer of one queue, on its own channel. */
typedef struct queue_consumer {
    struct queue_consumer *next;
    char *queue;
    wv_amqp_channel *ch;
    wv_amqp_consumer *c;
    int held_eta;      /* messages held for their ETA (each raises the prefetch) */
    int qos_applied;   /* the prefetch the broker has */
    bool qos_applying; /* a fiber is sending basic.qos */
} queue_consumer;

typedef struct delivery {
    struct delivery *prev, *next;
    wv_amqp_msg *m;
    queue_consumer *qc;
    bool eta; /* counted in qc->held_eta */
} delivery;

typedef struct name_item {
    struct name_item *next;
    char name[];
} name_item;

struct amqp_tr {
    tasks_transport base;
    wv_amqp *conn;
    wv_amqp_channel *topo, *pub;
    int prefetch;
    queue_consumer *consumers;
    delivery *deliveries;
    name_item *queues, *exchanges; /* declared already */
};

static const tasks_transport_ops amqp_tr_ops;

static bool listed(const name_item *l, const char *name)
{
    for (; l; l = l->next)
        if (strcmp(l->name, name) == 0)
            return true;
    return false;
}

static int list_add(name_item **l, const char *name)
{
    size_t n = strlen(name) + 1;
    name_item *it = malloc(sizeof *it + n);
    if (!it)
        return -ENOMEM;
    memcpy(it->name, name, n);
    it->next = *l;
    *l = it;
    return 0;
}

static void list_remove(name_item **l, const char *name)
{
    for (; *l; l = &(*l)->next)
        if (strcmp((*l)->name, name) == 0) {
            name_item *gone = *l;
            *l = gone->next;
            free(gone);
            return;
        }
}

static void list_free(name_item *l)
{
    while (l) {
        name_item *next = l->next;
        free(l);
        l = next;
    }
}

/* ------------------------------------------------------------ headers */

/* Field arrays made for one message's headers, freed together. */
typedef struct field_mem {
    wv_amqp_field **blocks;
    int n, cap;
} field_mem;

static wv_amqp_field *field_alloc(field_mem *fm, size_t count)
{
    if (fm->n == fm->cap) {
        int cap = fm->cap ? fm->cap * 2 : 8;
        wv_amqp_field **b = realloc(fm->blocks, (size_t)cap * sizeof *b);
        if (!b)
            return NULL;
        fm->blocks = b;
        fm->cap = cap;
    }
    wv_amqp_field *f = calloc(count ? count : 1, sizeof *f);
    if (f)
        fm->blocks[fm->n++] = f;
    return f;
}

static void field_mem_free(field_mem *fm)
{
    for (int i = 0; i < fm->n; i++)
        free(fm->blocks[i]);
    free(fm->blocks);
}

/* A JSON object's members (or an array's elements) as AMQP fields: null
 * void, booleans, integers that fit 64 bits as integers, other numbers as
 * doubles, strings long strings, objects tables, arrays arrays. The
 * strings point into the document. */
static int json_fields(const wv_json_val *v, field_mem *fm, int depth, wv_amqp_field **out,
                       int *count)
{
    bool obj = wv_json_type_of(v) == WV_JSON_OBJECT;
    long n = obj ? wv_json_object_len(v) : wv_json_array_len(v);
    if (n < 0 || depth > MAX_DEPTH)
        return wv_fail(-EINVAL, "tasks: headers nested deeper than %d", MAX_DEPTH);
    wv_amqp_field *fs = field_alloc(fm, (size_t)n);
    if (!fs)
        return -ENOMEM;
    for (long i = 0; i < n; i++) {
        wv_amqp_field *f = &fs[i];
        const char *key = "";
        size_t klen = 0;
        const wv_json_val *e =
            obj ? wv_json_object_at(v, (size_t)i, &key, &klen) : wv_json_array_at(v, (size_t)i);
        f->name = (wv_str){key, klen};
        int rc = 0;
        switch (wv_json_type_of(e)) {
        case WV_JSON_BOOL:
            f->type = WV_AMQP_FIELD_BOOL;
            wv_json_as_bool(e, &f->b);
            break;
        case WV_JSON_NUMBER:
            if (wv_json_as_i64(e, &f->i) == 0) {
                f->type = WV_AMQP_FIELD_INT;
            } else if (wv_json_as_double(e, &f->d) == 0) {
                f->type = WV_AMQP_FIELD_DOUBLE;
            } else {
                return wv_fail(-EINVAL, "tasks: header %.*s: a number beyond a double", (int)klen,
                               key);
            }
            break;
        case WV_JSON_STRING:
            f->type = WV_AMQP_FIELD_STRING;
            wv_json_as_string(e, &f->s.p, &f->s.n);
            break;
        case WV_JSON_OBJECT:
        case WV_JSON_ARRAY:
            f->type =
                wv_json_type_of(e) == WV_JSON_OBJECT ? WV_AMQP_FIELD_TABLE : WV_AMQP_FIELD_ARRAY;
            rc = json_fields(e, fm, depth + 1, (wv_amqp_field **)&f->fields, &f->nfields);
            break;
        default:
            f->type = WV_AMQP_FIELD_VOID;
            break;
        }
        if (rc < 0)
            return rc;
    }
    *out = fs;
    *count = (int)n;
    return 0;
}

int tasks_amqp_json_fields(const wv_json_val *obj, void **mem, wv_amqp_field **out, int *count)
{
    field_mem *fm = calloc(1, sizeof *fm);
    if (!fm)
        return -ENOMEM;
    *out = NULL;
    *count = 0;
    int rc = wv_json_type_of(obj) == WV_JSON_OBJECT
                 ? json_fields(obj, fm, 0, out, count)
                 : wv_fail(-EINVAL, "tasks: headers must be a JSON object");
    if (rc < 0) {
        field_mem_free(fm);
        free(fm);
        *out = NULL;
        *count = 0;
        return rc;
    }
    *mem = fm;
    return 0;
}

void tasks_amqp_fields_free(void *mem)
{
    if (mem) {
        field_mem_free(mem);
        free(mem);
    }
}

static int table_json(wv_str enc, bool array, int depth, wv_json *j)
{
    if (depth > MAX_DEPTH)
        return wv_fail(-EBADMSG, "tasks: headers nested deeper than %d", MAX_DEPTH);
    if (array)
        wv_json_array_begin(j);
    else
        wv_json_object_begin(j);
    size_t pos = 0;
    wv_amqp_field f;
    int rc;
    while ((rc = array ? wv_amqp_array_next(enc, &pos, &f) : wv_amqp_table_next(enc, &pos, &f)) ==
           1) {
        if (!array)
            wv_json_keyn(j, f.name.p, f.name.n);
        switch (f.type) {
        case WV_AMQP_FIELD_BOOL:
            wv_json_bool(j, f.b);
            break;
        case WV_AMQP_FIELD_INT:
        case WV_AMQP_FIELD_TIMESTAMP:
            wv_json_int(j, (long long)f.i);
            break;
        case WV_AMQP_FIELD_DOUBLE:
            if (isfinite(f.d))
                wv_json_double(j, f.d);
            else
                wv_json_null(j); /* JSON has no NaN or infinity */
            break;
        case WV_AMQP_FIELD_STRING:
        case WV_AMQP_FIELD_BYTES:
            wv_json_stringn(j, f.s.p, f.s.n);
            break;
        case WV_AMQP_FIELD_TABLE:
        case WV_AMQP_FIELD_ARRAY:
            rc = table_json(f.s, f.type == WV_AMQP_FIELD_ARRAY, depth + 1, j);
            if (rc < 0)
                return rc;
            break;
        default:
            wv_json_null(j);
            break;
        }
    }
    if (rc < 0)
        return wv_fail(-EBADMSG, "tasks: headers: %s", wv_errmsg());
    if (array)
        wv_json_array_end(j);
    else
        wv_json_object_end(j);
    return 0;
}

int tasks_amqp_table_json(wv_str table, wv_buf *out)
{
    wv_json j;
    wv_json_init(&j, out);
    int rc = table_json(table, false, 0, &j);
    return rc < 0 ? rc : wv_json_finish(&j);
}

/* The message's properties as the codec reads them (the Redis envelope's
 * "properties"), delivery_info included. */
static int props_json(const wv_amqp_msg *m, wv_buf *out)
{
    wv_json j;
    wv_json_init(&j, out);
    wv_json_object_begin(&j);
    if (m->correlation_id.n) {
        wv_json_key(&j, "correlation_id");
        wv_json_stringn(&j, m->correlation_id.p, m->correlation_id.n);
    }
    if (m->reply_to.n) {
        wv_json_key(&j, "reply_to");
        wv_json_stringn(&j, m->reply_to.p, m->reply_to.n);
    }
    if (m->delivery_mode) {
        wv_json_key(&j, "delivery_mode");
        wv_json_int(&j, m->delivery_mode);
    }
    if (m->priority >= 0) {
        wv_json_key(&j, "priority");
        wv_json_int(&j, m->priority);
    }
    if (m->expiration.n) {
        wv_json_key(&j, "expiration");
        wv_json_stringn(&j, m->expiration.p, m->expiration.n);
    }
    char tag[24];
    snprintf(tag, sizeof tag, "%llu", (unsigned long long)m->delivery_tag);
    wv_json_key(&j, "delivery_tag");
    wv_json_string(&j, tag);
    wv_json_key(&j, "delivery_info");
    wv_json_object_begin(&j);
    wv_json_key(&j, "exchange");
    wv_json_stringn(&j, m->exchange.p, m->exchange.n);
    wv_json_key(&j, "routing_key");
    wv_json_stringn(&j, m->routing_key.p, m->routing_key.n);
    wv_json_object_end(&j);
    wv_json_object_end(&j);
    return wv_json_finish(&j);
}

/* Decode a delivery into t: 0, or the codec's error (-EBADMSG, -ENOTSUP). */
static int decode(const wv_amqp_msg *m, celery_task *t)
{
    if (m->content_type.n && !wv_str_eq_cstr(m->content_type, "application/json"))
        return wv_fail(-ENOTSUP, "celery: content-type %s: only application/json is read",
                       m->content_type.p);
    if (m->content_encoding.n && !wv_str_eq_cstr(m->content_encoding, "utf-8"))
        return wv_fail(-ENOTSUP, "celery: content-encoding %s: only utf-8 is read",
                       m->content_encoding.p);
    wv_buf h = {0}, p = {0};
    int rc = m->headers.n ? tasks_amqp_table_json(m->headers, &h) : 0;
    rc = rc ? rc : props_json(m, &p);
    if (rc == 0)
        rc = celery_task_decode_parts(m->body.p, m->body.n, h.n ? h.p : NULL, h.n, p.p, p.n, t);
    wv_buf_free(&h);
    wv_buf_free(&p);
    return rc;
}

/* ------------------------------------------------------------ topology */

/* Celery's exchanges as kombu declares them: its remote-control ones
 * (celery.pidbox, reply.celery.pidbox) not durable, the others (celeryev,
 * a queue's own) durable; none auto-deleted. */
static int declare_exchange(amqp_tr *at, const char *name, const char *type)
{
    if (!*name || listed(at->exchanges, name))
        return 0;
    size_t n = strlen(name);
    bool pidbox = n >= 7 && strcmp(name + n - 7, ".pidbox") == 0;
    int rc = wv_amqp_exchange_declare(at->topo, name, type,
                                      &(wv_amqp_exchange_opts){.durable = !pidbox});
    return rc < 0 ? rc : list_add(&at->exchanges, name);
}

/*
 * Celery's queue Q: the durable direct exchange Q, the durable queue Q (no
 * arguments) and the binding Q -> Q with routing key Q, as Celery declares
 * them before it publishes and when its worker starts. A queue that exists
 * with other arguments (a dead-letter exchange, a queue type set by whoever
 * made it) is used as it is.
 */
static int declare_queue(amqp_tr *at, const char *q)
{
    if (listed(at->queues, q))
        return 0;
    int rc = declare_exchange(at, q, "direct");
    if (rc == 0) {
        rc = wv_amqp_queue_declare(at->topo, q, &(wv_amqp_queue_opts){.durable = true}, NULL);
        if (rc == -EINVAL) {
            char why[256];
            snprintf(why, sizeof why, "%s", wv_errmsg());
            rc = wv_amqp_queue_declare(at->topo, q, &(wv_amqp_queue_opts){.passive = true}, NULL);
            if (rc == 0)
                wv_info("tasks: queue %s exists with other arguments: used as it is (%s)", q, why);
        }
    }
    rc = rc ? rc : wv_amqp_queue_bind(at->topo, q, q, q, NULL, 0);
    return rc ? rc : list_add(&at->queues, q);
}

/* ------------------------------------------------------------ sending */

static int at_send(tasks_transport *tr, const celery_task_msg *m, const char *queue)
{
    amqp_tr *at = (amqp_tr *)tr;
    celery_amqp_msg a = {0};
    wv_json_doc *doc = NULL;
    void *mem = NULL;
    wv_amqp_field *hs = NULL;
    int nh = 0;
    int rc = declare_queue(at, queue);
    rc = rc ? rc : celery_task_encode_amqp(m, &a);
    rc = rc ? rc : wv_json_parse(a.headers.p, a.headers.n, &doc);
    rc = rc ? rc : tasks_amqp_json_fields(wv_json_doc_root(doc), &mem, &hs, &nh);
    int64_t prio = a.priority < 0 ? 0 : a.priority > 255 ? 255 : a.priority;
    wv_amqp_publish_opts po = {
        .mandatory = true,
        .content_type = a.content_type,
        .content_encoding = a.content_encoding,
        .correlation_id = a.correlation_id,
        .reply_to = a.reply_to[0] ? a.reply_to : NULL,
        .expiration = a.expiration[0] ? a.expiration : NULL,
        .priority = (uint8_t)prio,
        .transient = a.delivery_mode != 2,
        .headers = hs,
        .nheaders = nh,
    };
    /* the anonymous exchange, to the queue by name: Celery's way for a
     * direct exchange */
    const char *ex = m->exchange ? m->exchange : "";
    const char *rk = *ex && m->routing_key ? m->routing_key : queue;
    /* mandatory: a queue deleted since it was declared here is declared
     * again, rather than the message dropped (kombu would drop it) */
    for (int attempt = 0; rc == 0 && attempt < 2; attempt++) {
        rc = wv_amqp_publish(at->pub, ex, rk, (wv_str){a.body.p, a.body.n}, &po);
        if (rc != -EHOSTUNREACH || attempt)
            break;
        list_remove(&at->queues, queue);
        rc = declare_queue(at, queue);
    }
    tasks_amqp_fields_free(mem);
    wv_json_doc_free(doc);
    celery_amqp_msg_free(&a);
    return rc;
}

/* ------------------------------------------------------------ qos */

/* Bring the broker's prefetch to what qc wants: the concurrency plus the
 * messages held for their ETA. One fiber sends at a time; the others'
 * changes are picked up by its loop. */
static void qos_update(amqp_tr *at, queue_consumer *qc)
{
    if (qc->qos_applying)
        return;
    qc->qos_applying = true;
    for (;;) {
        int want = at->prefetch + qc->held_eta;
        if (want > 65535)
            want = 65535;
        if (want == qc->qos_applied)
            break;
        int rc = wv_amqp_qos_channel(qc->ch, (uint16_t)want);
        if (rc < 0) {
            wv_warn("tasks: basic.qos %d on %s: %s (%s)", want, qc->queue, wv_strerror(rc),
                    wv_errmsg());
            break;
        }
        qc->qos_applied = want;
    }
    qc->qos_applying = false;
}

/* ------------------------------------------------------------ taking */

static queue_consumer *consumer_for(amqp_tr *at, const char *queue)
{
    for (queue_consumer *qc = at->consumers; qc; qc = qc->next)
        if (strcmp(qc->queue, queue) == 0)
            return qc;
    return NULL;
}

/* The consumer of queue, started when there is none (or the broker
 * cancelled it). */
static int consumer_start(amqp_tr *at, const char *queue, queue_consumer **out)
{
    queue_consumer *qc = consumer_for(at, queue);
    if (qc && qc->c) {
        *out = qc;
        return 0;
    }
    int rc = declare_queue(at, queue);
    if (rc < 0)
        return rc;
    if (!qc) {
        qc = calloc(1, sizeof *qc);
        if (!qc || !(qc->queue = strdup(queue))) {
            free(qc);
            return -ENOMEM;
        }
        qc->qos_applied = -1;
        qc->next = at->consumers;
        at->consumers = qc;
    }
    if (!qc->ch && (rc = wv_amqp_channel_open(at->conn, &qc->ch)) < 0)
        return rc;
    /* the channel's limit (global, as Celery sets it on RabbitMQ: a raise
     * applies at once), not the consumer's default one */
    if ((rc = wv_amqp_qos(qc->ch, 0)) < 0)
        return rc;
    qos_update(at, qc);
    if (qc->qos_applied < 0)
        return wv_fail(-EIO, "tasks: basic.qos on %s failed", queue);
    rc = wv_amqp_consume(qc->ch, queue, NULL, &qc->c);
    if (rc == 0)
        *out = qc;
    return rc;
}

static int at_take(tasks_transport *tr, const char *queue, int64_t timeout_ms, tasks_msg *out)
{
    amqp_tr *at = (amqp_tr *)tr;
    /* every step within timeout_ms: while the broker is away, a warm
     * shutdown must not wait for it */
    int64_t at_ns = wv_after_ms(timeout_ms), old = wv_deadline_set(at_ns);
    if (old < at_ns)
        wv_deadline_set(old);
    queue_consumer *qc = NULL;
    wv_amqp_msg *m = NULL;
    int rc = consumer_start(at, queue, &qc);
    if (rc == 0)
        rc = wv_amqp_consumer_recv(qc->c, &m, at_ns);
    wv_deadline_set(old);
    if (rc == -ETIMEDOUT && !wv_cancelled())
        return 0;
    if (rc < 0 && rc != -ETIMEDOUT && rc != -ECANCELED) {
        /* the broker cancelled the consumer (its queue was deleted) or
         * refused it (404: deleted before it started): declare the queue
         * and consume again on the next take */
        if (qc && rc == -EPIPE) {
            wv_amqp_consumer_free(qc->c);
            qc->c = NULL;
        }
        list_remove(&at->queues, queue);
    }
    if (rc < 0)
        return rc;
    rc = decode(m, &out->msg);
    if (rc < 0) {
        wv_error("tasks: a message on %s that does not decode: %s (%s); rejected", queue,
                 wv_strerror(rc), wv_errmsg());
        tasks_metrics_undecodable(queue);
        int r = wv_amqp_reject(m, false);
        if (r < 0)
            wv_error("tasks: reject: %s (%s)", wv_strerror(r), wv_errmsg());
        wv_amqp_msg_free(m);
        return 0;
    }
    delivery *d = calloc(1, sizeof *d);
    if (!d) {
        celery_task_free(&out->msg);
        wv_amqp_msg_free(m); /* back to the queue */
        return -ENOMEM;
    }
    d->m = m;
    d->qc = qc;
    d->next = at->deliveries;
    if (d->next)
        d->next->prev = d;
    at->deliveries = d;
    out->tag = m->delivery_tag;
    out->held = false;
    out->channel = d;
    return 1;
}

/* ------------------------------------------------------------ settling */

static void delivery_free(amqp_tr *at, delivery *d)
{
    if (d->prev)
        d->prev->next = d->next;
    else
        at->deliveries = d->next;
    if (d->next)
        d->next->prev = d->prev;
    wv_amqp_msg_free(d->m); /* unsettled: back to its queue */
    free(d);
}

/* Celery's QoS: a message held for its ETA stays unacked, and the prefetch
 * goes up by one while it is held, so that held messages never take every
 * slot the broker gives. */
static int at_hold(tasks_transport *tr, tasks_msg *m)
{
    amqp_tr *at = (amqp_tr *)tr;
    delivery *d = m->channel;
    if (!d || d->eta || m->msg.eta_ns == CELERY_NO_TIME || m->msg.eta_ns <= tasks_real_ns())
        return 0;
    d->eta = true;
    m->held = true;
    d->qc->held_eta++;
    qos_update(at, d->qc);
    return 0;
}

/* How: 0 ack, 1 requeue, 2 reject. */
static int settle(amqp_tr *at, tasks_msg *m, int how)
{
    delivery *d = m->channel;
    if (!d)
        return 0;
    m->channel = NULL;
    int rc = how == 0 ? wv_amqp_ack(d->m) : wv_amqp_reject(d->m, how == 1);
    if (rc == -ESTALE) {
        /* its connection broke since: the broker delivers it again */
        wv_warn("tasks: %s of %s: %s", how == 0 ? "ack" : "reject", m->msg.id.p, wv_errmsg());
        rc = 0;
    }
    queue_consumer *qc = d->qc;
    bool eta = d->eta;
    delivery_free(at, d);
    if (eta) {
        m->held = false;
        qc->held_eta--;
        qos_update(at, qc);
    }
    return rc;
}

static int at_ack(tasks_transport *tr, tasks_msg *m)
{
    return settle((amqp_tr *)tr, m, 0);
}

static int at_requeue(tasks_transport *tr, tasks_msg *m)
{
    return settle((amqp_tr *)tr, m, 1);
}

/* basic.reject without requeue: dead-lettered when the queue has
 * x-dead-letter-exchange, else dropped by the broker. */
static int at_reject(tasks_transport *tr, tasks_msg *m)
{
    return settle((amqp_tr *)tr, m, 2);
}

/* ------------------------------------------------------------ broadcasts */

static int at_publish(tasks_transport *tr, const char *exchange, const char *type,
                      const char *routing_key, const char *body, size_t body_len,
                      const char *headers)
{
    amqp_tr *at = (amqp_tr *)tr;
    wv_json_doc *doc = NULL;
    void *mem = NULL;
    wv_amqp_field *hs = NULL;
    int nh = 0;
    int rc = declare_exchange(at, exchange, type);
    if (rc == 0 && headers && *headers) {
        rc = wv_json_parse(headers, strlen(headers), &doc);
        rc = rc ? rc : tasks_amqp_json_fields(wv_json_doc_root(doc), &mem, &hs, &nh);
    }
    if (rc == 0)
        /* events and remote control are transient in Celery */
        rc = wv_amqp_publish(at->pub, exchange, routing_key ? routing_key : "",
                             (wv_str){body, body_len},
                             &(wv_amqp_publish_opts){.transient = true,
                                                     .content_type = "application/json",
                                                     .content_encoding = "utf-8",
                                                     .headers = hs,
                                                     .nheaders = nh});
    tasks_amqp_fields_free(mem);
    wv_json_doc_free(doc);
    return rc;
}

/* A queue of its own (server-named, exclusive: gone with the connection,
 * and deleted when listening ends) bound to the exchange. */
static int at_listen(tasks_transport *tr, const char *exchange, const char *type,
                     const char *binding_key, wv_chan *stopping,
                     int (*got)(const char *body, size_t n, void *arg), void *arg)
{
    amqp_tr *at = (amqp_tr *)tr;
    wv_amqp_channel *ch = NULL;
    wv_amqp_consumer *c = NULL;
    wv_amqp_queue_info qi = {0};
    int rc = declare_exchange(at, exchange, type);
    rc = rc ? rc : wv_amqp_channel_open(at->conn, &ch);
    rc = rc ? rc
            : wv_amqp_queue_declare(
                  ch, "", &(wv_amqp_queue_opts){.exclusive = true, .auto_delete = true}, &qi);
    rc = rc ? rc
            : wv_amqp_queue_bind(ch, qi.name, exchange, binding_key ? binding_key : "", NULL, 0);
    rc = rc ? rc : wv_amqp_consume(ch, qi.name, &(wv_amqp_consume_opts){.no_ack = true}, &c);
    while (rc == 0) {
        int x;
        wv_amqp_msg *m = NULL;
        wv_select_case cs[2] = {{stopping, WV_RECV, &x, 0},
                                {wv_amqp_consumer_chan(c), WV_RECV, &m, 0}};
        int i = wv_chan_select(cs, 2, WV_NEVER);
        if (i < 0) {
            rc = i;
        } else if (i == 0) {
            break; /* stopping: closed (or a value sent) */
        } else if (cs[1].result < 0) {
            rc = wv_fail(-EPIPE, "tasks: listening on %s: the consumer ended", exchange);
        } else {
            rc = got(m->body.p, m->body.n, arg);
            wv_amqp_msg_free(m);
            if (rc > 0)
                rc = 0;
            else if (rc < 0)
                break;
        }
    }
    wv_amqp_consumer_free(c);
    /* out of the connection's record too, or a reconnect declares it
     * again; not for long (exclusive: it goes with the connection) */
    if (ch && qi.name[0]) {
        int64_t at_ns = wv_after_ms(2000), old = wv_deadline_set(at_ns);
        if (old < at_ns)
            wv_deadline_set(old);
        wv_amqp_queue_delete(ch, qi.name, false, false, NULL);
        wv_deadline_set(old);
    }
    wv_amqp_channel_close(ch);
    return rc;
}

/* ------------------------------------------------------------ open, close */

static void at_close(tasks_transport *tr)
{
    amqp_tr *at = (amqp_tr *)tr;
    while (at->deliveries)
        delivery_free(at, at->deliveries);
    while (at->consumers) {
        queue_consumer *qc = at->consumers;
        at->consumers = qc->next;
        wv_amqp_consumer_free(qc->c);
        wv_amqp_channel_close(qc->ch);
        free(qc->queue);
        free(qc);
    }
    wv_amqp_channel_close(at->pub);
    wv_amqp_channel_close(at->topo);
    wv_amqp_close(at->conn);
    list_free(at->queues);
    list_free(at->exchanges);
    free(at);
}

/* The queue's ready messages, from a passive queue.declare on a channel
 * of its own (a queue deleted meanwhile closes that channel, 404, and no
 * other). Messages delivered to consumers and not acked yet (a worker's
 * prefetch, its held ETAs) are not counted. */
static int at_depth(tasks_transport *tr, const char *queue, int64_t *out)
{
    amqp_tr *at = (amqp_tr *)tr;
    wv_amqp_channel *ch;
    int rc = wv_amqp_channel_open(at->conn, &ch);
    if (rc < 0)
        return rc;
    wv_amqp_queue_info info;
    rc = wv_amqp_queue_declare(ch, queue, &(wv_amqp_queue_opts){.passive = true}, &info);
    wv_amqp_channel_close(ch);
    if (rc == 0)
        *out = info.messages;
    return rc;
}

static const tasks_transport_ops amqp_tr_ops = {
    .send = at_send,
    .take = at_take,
    .hold = at_hold,
    .ack = at_ack,
    .requeue = at_requeue,
    .reject = at_reject,
    .publish = at_publish,
    .listen = at_listen,
    .depth = at_depth,
    .close = at_close,
};

/* kombu reads the vhost as the whole path after its first '/', so
 * Celery's "amqp://host//" is the vhost "/"; weave's client wants a '/'
 * inside a vhost written %2F: rewrite the URL that way. */
static char *kombu_url(const char *url)
{
    const char *auth = strstr(url, "://");
    size_t n = strlen(url);
    char *out = malloc(3 * n + 1);
    if (!out)
        return NULL;
    const char *path = auth ? auth + 3 + strcspn(auth + 3, "/?#") : url + n;
    size_t o = (size_t)(path - url);
    memcpy(out, url, o);
    bool first = true;
    for (const char *p = path; *p; p++) {
        if (*p == '?' || *p == '#') {
            strcpy(out + o, p);
            return out;
        }
        if (*p == '/' && !first) {
            memcpy(out + o, "%2F", 3);
            o += 3;
        } else {
            out[o++] = *p;
        }
        first = first && *p != '/';
    }
    out[o] = 0;
    return out;
}

int tasks_amqp_open(const char *url, const tasks_cfg *cfg, tasks_transport **out)
{
    amqp_tr *at = calloc(1, sizeof *at);
    if (!at)
        return -ENOMEM;
    at->base.ops = &amqp_tr_ops;
    at->prefetch = cfg->concurrency > 65535 ? 65535 : cfg->concurrency;
    char *u = kombu_url(url);
    int rc = u ? 0 : -ENOMEM;
    if (rc == 0)
        rc = wv_amqp_open(u, &(wv_amqp_opts){.connection_name = "weave tasks"}, &at->conn);
    free(u);
    rc = rc ? rc : wv_amqp_channel_open(at->conn, &at->topo);
    rc = rc ? rc : wv_amqp_channel_open(at->conn, &at->pub);
    if (rc < 0) {
        at_close(&at->base);
        return rc;
    }
    *out = &at->base;
    return 0;
}

wv_amqp *tasks_amqp_conn(tasks_transport *tr)
{
    return tr && tr->ops == &amqp_tr_ops ? ((amqp_tr *)tr)->conn : NULL;
}
