/*
 * src/tasks/rpc.c: Celery 5.2's RPC result backend (rpc://, transport.h's
 * seam): results travel as messages to the producer's own reply queue, on
 * the AMQP transport's connection (amqp.c). What goes over the wire is
 * described in docs/tasks.md.
 *
 * A producer names its reply queue (a uuid4, as Celery's app.thread_oid)
 * in the reply_to of every task it sends and declares it as Celery does:
 * not durable, auto-deleted once its consumer goes, x-expires the result
 * expiry. A worker publishes each state to the message's reply_to through
 * the default exchange, correlation_id the task id. The producer consumes
 * its queue (no_ack, as Celery's ResultConsumer) from its first result
 * wait until it closes; a state that arrives for another task is kept for
 * a later wait (the latest state per task, MAX_KEPT tasks at most, the
 * oldest forgotten first), and so is the final one, so a result can be
 * read twice. Only the client that sent a task can read its result.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/transport.h"
#include "weave/amqp.h"

/* Tasks whose latest state is kept (Celery's backlog limit). */
#define MAX_KEPT 1000

typedef struct kept {
    char *id;
    char *meta;
    size_t n;
    uint64_t seq; /* when it came: newer is larger */
} kept;

typedef struct rpc_be {
    tasks_backend base;
    wv_amqp *conn;
    wv_amqp_channel *ch;
    wv_amqp_consumer *c;
    char oid[CELERY_UUID_LEN + 1];
    bool declared;
    int64_t expires_ms;
    kept *kept;
    int nkept;
    uint64_t seq;
    bool receiving; /* a waiter is reading the queue; the others wait on cv */
    bool warned;
    wv_mutex mu;
    wv_cond cv;
} rpc_be;

/* ------------------------------------------------------------ the queue */

static int declare(rpc_be *rb)
{
    if (rb->declared)
        return 0;
    wv_amqp_field args[] = {WV_AMQP_INT("x-expires", rb->expires_ms)};
    int rc = wv_amqp_queue_declare(
        rb->ch, rb->oid, &(wv_amqp_queue_opts){.auto_delete = true, .args = args, .nargs = 1},
        NULL);
    if (rc == 0)
        rb->declared = true;
    return rc;
}

/* Declared before the first message naming it is sent, so that no result
 * can come before its queue. */
static const char *rb_reply_to(tasks_backend *b)
{
    rpc_be *rb = (rpc_be *)b;
    int rc = declare(rb);
    if (rc < 0)
        wv_warn("tasks: declaring the reply queue %s: %s (%s)", rb->oid, wv_strerror(rc),
                wv_errmsg());
    return rb->oid;
}

/* ------------------------------------------------------------ storing */

/*
 * What Celery's RPC backend publishes: {"task_id", "status", "result",
 * "traceback", "children"}, in that order and without date_done. It is the
 * Redis meta (celery_result_encode: status, result, traceback, children,
 * date_done, task_id) with task_id moved first and date_done left out; the
 * last `, "date_done": ` of the meta is the member's own (inside a string
 * a quote would be escaped).
 */
static int rpc_body(const celery_result_msg *m, wv_buf *out)
{
    wv_buf meta = {0};
    int rc = celery_result_encode(m, &meta);
    static const char dd[] = ", \"date_done\": ";
    size_t cut = 0;
    for (size_t i = 0; rc == 0 && i + sizeof dd - 1 <= meta.n; i++)
        if (memcmp(meta.p + i, dd, sizeof dd - 1) == 0)
            cut = i;
    if (rc == 0 && (cut == 0 || meta.n < 2 || meta.p[0] != '{'))
        rc = wv_fail(-EINVAL, "tasks: a result meta of an unexpected shape");
    rc = rc ? rc : wv_buf_puts(out, "{\"task_id\": ");
    rc = rc ? rc : tasks_py_string(m->task_id, strlen(m->task_id), out);
    rc = rc ? rc : wv_buf_puts(out, ", ");
    rc = rc ? rc : wv_buf_append(out, meta.p + 1, cut - 1);
    rc = rc ? rc : wv_buf_puts(out, "}");
    wv_buf_free(&meta);
    return rc;
}

static int rb_store(tasks_backend *b, const celery_result_msg *m, const celery_task *req)
{
    rpc_be *rb = (rpc_be *)b;
    if (!req || !req->reply_to.n)
        return 0; /* nobody to answer: Celery stores nothing either */
    wv_buf body = {0};
    int rc = rpc_body(m, &body);
    if (rc == 0)
        /* result_persistent is off by default: transient */
        rc = wv_amqp_publish(
            rb->ch, "", req->reply_to.p, (wv_str){body.p, body.n},
            &(wv_amqp_publish_opts){
                .transient = true,
                .content_type = "application/json",
                .content_encoding = "utf-8",
                .correlation_id = req->correlation_id.n ? req->correlation_id.p : m->task_id,
            });
    wv_buf_free(&body);
    return rc;
}

/* ------------------------------------------------------------ waiting */

static kept *find(rpc_be *rb, const char *id, size_t n)
{
    for (int i = 0; i < rb->nkept; i++)
        if (strlen(rb->kept[i].id) == n && memcmp(rb->kept[i].id, id, n) == 0)
            return &rb->kept[i];
    return NULL;
}

/* Keep a state that came: the task's latest. */
static int keep(rpc_be *rb, const wv_amqp_msg *m)
{
    wv_str id = m->correlation_id;
    wv_json_doc *doc = NULL;
    if (!id.n) {
        /* an old Celery's reply: the id is in the body */
        const char *s = NULL;
        size_t n = 0;
        if (wv_json_parse(m->body.p, m->body.n, &doc) == 0)
            wv_json_get_string(wv_json_doc_root(doc), "task_id", &s, &n);
        id = (wv_str){s, n};
    }
    int rc = 0;
    if (!id.n) {
        wv_warn("tasks: a message on the reply queue %s without a task id: dropped", rb->oid);
        goto out;
    }
    kept *k = find(rb, id.p, id.n);
    if (!k && rb->nkept == MAX_KEPT) {
        k = &rb->kept[0];
        for (int i = 1; i < rb->nkept; i++)
            if (rb->kept[i].seq < k->seq)
                k = &rb->kept[i];
        if (!rb->warned)
            wv_warn("tasks: more than %d results unread on %s: the oldest are forgotten", MAX_KEPT,
                    rb->oid);
        rb->warned = true;
        free(k->id);
        k->id = NULL;
    }
    if (!k) {
        kept *ks = realloc(rb->kept, (size_t)(rb->nkept + 1) * sizeof *ks);
        if (!ks) {
            rc = -ENOMEM;
            goto out;
        }
        rb->kept = ks;
        k = &ks[rb->nkept++];
        memset(k, 0, sizeof *k);
    }
    char *meta = malloc(m->body.n + 1);
    if (!k->id) {
        k->id = malloc(id.n + 1);
        if (k->id) {
            memcpy(k->id, id.p, id.n);
            k->id[id.n] = 0;
        }
    }
    if (!meta || !k->id) {
        free(meta);
        /* leave the slot whole: an id with its old meta, or taken out */
        if (!k->id) {
            free(k->meta);
            *k = rb->kept[--rb->nkept];
        }
        rc = -ENOMEM;
        goto out;
    }
    memcpy(meta, m->body.p, m->body.n);
    meta[m->body.n] = 0;
    free(k->meta);
    k->meta = meta;
    k->n = m->body.n;
    k->seq = ++rb->seq;
out:
    wv_json_doc_free(doc);
    return rc;
}

static int consume(rpc_be *rb)
{
    if (rb->c)
        return 0;
    int rc = declare(rb);
    return rc ? rc
              : wv_amqp_consume(rb->ch, rb->oid, &(wv_amqp_consume_opts){.no_ack = true}, &rb->c);
}

/* One waiter at a time reads the queue and keeps what it reads; every
 * waiter looks in what is kept for its task. */
static int rb_wait(tasks_backend *b, const char *id, int (*seen)(const char *, size_t, void *),
                   void *arg)
{
    rpc_be *rb = (rpc_be *)b;
    uint64_t last = 0;
    size_t idn = strlen(id);
    for (;;) {
        kept *k = find(rb, id, idn);
        if (k && k->seq > last) {
            last = k->seq;
            int rc = seen(k->meta, k->n, arg);
            if (rc != 0)
                return rc;
            continue;
        }
        if (rb->receiving) {
            int rc = wv_mutex_lock(&rb->mu);
            if (rc == 0) {
                rc = wv_cond_wait(&rb->cv, &rb->mu);
                wv_mutex_unlock(&rb->mu);
            }
            if (rc < 0)
                return rc;
            continue;
        }
        int rc = consume(rb);
        if (rc < 0)
            return rc;
        wv_amqp_msg *m = NULL;
        rb->receiving = true;
        rc = wv_amqp_consumer_recv(rb->c, &m, WV_NEVER);
        rb->receiving = false;
        if (rc == 0) {
            rc = keep(rb, m);
            wv_amqp_msg_free(m);
        } else if (rc == -EPIPE) {
            /* the broker cancelled it (the queue went): declare it again */
            wv_amqp_consumer_free(rb->c);
            rb->c = NULL;
            rb->declared = false;
        }
        wv_cond_broadcast(&rb->cv); /* something kept, or another waiter reads now */
        if (rc < 0)
            return rc;
    }
}

static void rb_close(tasks_backend *b)
{
    rpc_be *rb = (rpc_be *)b;
    wv_amqp_consumer_free(rb->c);
    if (rb->declared && rb->ch) {
        /* not for long: with the broker away the queue goes by itself */
        int64_t at = wv_after_ms(2000), old = wv_deadline_set(at);
        if (old < at)
            wv_deadline_set(old);
        wv_amqp_queue_delete(rb->ch, rb->oid, false, false, NULL);
        wv_deadline_set(old);
    }
    wv_amqp_channel_close(rb->ch);
    for (int i = 0; i < rb->nkept; i++) {
        free(rb->kept[i].id);
        free(rb->kept[i].meta);
    }
    free(rb->kept);
    free(rb);
}

static const tasks_backend_ops rpc_be_ops = {
    .store = rb_store,
    .wait = rb_wait,
    .reply_to = rb_reply_to,
    .close = rb_close,
};

int tasks_rpc_backend_open(const char *url, const tasks_cfg *cfg, tasks_transport *tr,
                           tasks_backend **out)
{
    (void)url;
    wv_amqp *conn = tasks_amqp_conn(tr);
    if (!conn)
        return wv_fail(-EPROTONOSUPPORT,
                       "tasks: the rpc:// result backend needs an amqp:// or amqps:// broker");
    rpc_be *rb = calloc(1, sizeof *rb);
    if (!rb)
        return -ENOMEM;
    rb->base.ops = &rpc_be_ops;
    rb->conn = conn;
    rb->expires_ms = cfg->result_expires_ms;
    int rc = celery_uuid4(rb->oid);
    rc = rc ? rc : wv_amqp_channel_open(conn, &rb->ch);
    if (rc < 0) {
        rb_close(&rb->base);
        return rc;
    }
    *out = &rb->base;
    return 0;
}
