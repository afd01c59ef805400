/*
 * The producer: a librdkafka producer handle per wv_kafka, its main queue
 * read by a pump fiber.
 *
 * A produce hands the message to librdkafka (rd_kafka_produceva copies
 * it) with a completion (wv_kafka_pending) as the message's opaque, and
 * the calling fiber waits on the completion's event. librdkafka batches,
 * sends, retries and finally puts a delivery report on the main queue;
 * the pump takes it, fills in the completion (partition and offset, or
 * the error) and wakes the fiber. A completion whose fiber gave up
 * (deadline, cancellation, wv_kafka_pending_free) is marked abandoned and
 * freed by the pump when its report comes; every completion without a
 * report is also on the client's list, so closing can fail what is left.
 *
 * The same queue brings errors (a fatal one makes every later produce
 * fail with -ENOTRECOVERABLE; the others are kept as "what the client
 * last saw" for timeout messages) and librdkafka's log lines.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/kafka_internal.h"

struct wv_kafka_pending {
    wv_kafka *k; /* NULL once finished */
    wv_kafka_pending *prev, *next;
    wv_event done;
    bool finished;
    bool abandoned;
    int rc;
    char *errmsg; /* when rc < 0 */
    wv_kafka_report rep;
};

struct wv_kafka {
    rd_kafka_t *rk;
    kafka_queue main;
    int shard;
    char *name;
    wv_group *pump;
    wv_kafka_pending *waiting; /* completions without a report */
    wv_event drained;          /* set when stats.inflight drops to 0 */
    wv_event room;             /* set on every report: librdkafka's queue has room again */
    wv_event idle;             /* set when closing and the last waiting call left */
    int users;                 /* calls waiting inside on room or drained */
    int pings;                 /* wv_kafka_ping calls on the offload pool */
    wv_event pinged;           /* set when the last of them returned */
    bool closing;
    int fatal; /* -ENOTRECOVERABLE once librdkafka raised a fatal error */
    char fatal_msg[512];
    char last_error[512];
    wv_kafka_stats stats;
};

/* -------------------------------------------------------- completions */

static void pending_unlink(wv_kafka *k, wv_kafka_pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        k->waiting = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->prev = p->next = NULL;
}

static void pending_destroy(wv_kafka_pending *p)
{
    free(p->errmsg);
    free(p);
}

/* The report came (or never will): hand the result over. */
static void pending_finish(wv_kafka *k, wv_kafka_pending *p, int rc, char *errmsg)
{
    pending_unlink(k, p);
    p->k = NULL;
    p->finished = true;
    p->rc = rc;
    p->errmsg = errmsg;
    if (--k->stats.inflight == 0)
        wv_event_set(&k->drained);
    if (p->abandoned)
        pending_destroy(p);
    else
        wv_event_set(&p->done);
}

static char *format(const char *fmt, ...) WV_PRINTF(1, 2);

static char *format(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return kafka_strdup(buf);
}

/* " (the client last saw: ...)" or "" */
static const char *last_seen(const wv_kafka *k, char *buf, size_t cap)
{
    if (!k || !k->last_error[0])
        return "";
    snprintf(buf, cap, " (the client last saw: %s)", k->last_error);
    return buf;
}

static void on_report(wv_kafka *k, const rd_kafka_message_t *m)
{
    wv_kafka_pending *p = m->_private;
    if (!p)
        return;
    wv_event_set(&k->room);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        k->stats.delivered++;
        rd_kafka_timestamp_type_t type;
        p->rep = (wv_kafka_report){
            .partition = m->partition,
            .offset = m->offset,
            .timestamp_ms = rd_kafka_message_timestamp(m, &type),
        };
        pending_finish(k, p, 0, NULL);
        return;
    }
    k->stats.failed++;
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "?";
    char why[512], seen[600];
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(k->rk, why, sizeof why);
        pending_finish(
            k, p, -ENOTRECOVERABLE,
            format("kafka: delivery to %s failed: the producer hit a fatal error: %s", topic, why));
        return;
    }
    if (m->partition >= 0)
        snprintf(why, sizeof why, "%s [%d]", topic, (int)m->partition);
    else
        snprintf(why, sizeof why, "%s", topic);
    pending_finish(
        k, p, kafka_errno(m->err),
        format("kafka: delivery to %s failed: %s%s", why, rd_kafka_err2str(m->err),
               m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? last_seen(k, seen, sizeof seen) : ""));
}

/* Record librdkafka's fatal error, if it raised one: true when it did. */
static bool note_fatal(wv_kafka *k)
{
    if (k->fatal)
        return true;
    char why[400];
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(k->rk, why, sizeof why);
    if (!code)
        return false;
    k->fatal = -ENOTRECOVERABLE;
    snprintf(k->fatal_msg, sizeof k->fatal_msg, "%s: %s", rd_kafka_err2name(code), why);
    wv_error("kafka %s: fatal error: %s", k->name, k->fatal_msg);
    return true;
}

static void on_error(wv_kafka *k, rd_kafka_event_t *ev)
{
    if (rd_kafka_event_error_is_fatal(ev)) {
        note_fatal(k);
        return;
    }
    snprintf(k->last_error, sizeof k->last_error, "%s", rd_kafka_event_error_string(ev));
    wv_warn("kafka %s: %s", k->name, k->last_error);
}

/* Handle up to max events; returns how many there were. */
static int drain(wv_kafka *k, int max)
{
    int n = 0;
    rd_kafka_event_t *ev;
    while (n < max && (ev = rd_kafka_queue_poll(k->main.q, 0))) {
        n++;
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_DR: {
            const rd_kafka_message_t *m;
            while ((m = rd_kafka_event_message_next(ev)))
                on_report(k, m);
            break;
        }
        case RD_KAFKA_EVENT_ERROR:
            on_error(k, ev);
            break;
        case RD_KAFKA_EVENT_LOG:
            kafka_log_event(k->name, ev);
            break;
        default:
            break;
        }
        rd_kafka_event_destroy(ev);
    }
    return n;
}

static int pump_main(void *arg)
{
    wv_kafka *k = arg;
    for (;;) {
        if (drain(k, KAFKA_PUMP_BATCH) == KAFKA_PUMP_BATCH) {
            if (wv_yield() == -ECANCELED)
                return 0;
            continue;
        }
        if (kafka_queue_wait(&k->main, WV_NEVER) == -ECANCELED)
            return 0;
    }
}

/* ---------------------------------------------------------------- open */

int wv_kafka_open(const wv_kafka_opts *opts, wv_kafka **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "kafka: open outside the runtime");
    static const wv_kafka_opts none;
    if (!opts)
        opts = &none;
    kafka_settings s = {
        .brokers = opts->brokers,
        .client_id = opts->client_id,
        .config = opts->config,
        .events = RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG,
    };
    rd_kafka_conf_t *conf;
    int rc = kafka_conf_new(&s, &conf);
    if (rc < 0)
        return rc;
    wv_kafka *k = kafka_calloc(1, sizeof *k);
    k->shard = wv_shard_id();
    k->name = kafka_strdup(opts->client_id ? opts->client_id : "weave");
    k->main.efd = -1;
    if ((rc = kafka_handle_new(false, conf, &k->rk)) < 0)
        goto fail;
    if ((rc = kafka_pump_start(&k->main, rd_kafka_queue_get_main(k->rk), pump_main, k,
                               "kafka-producer", &k->pump)) < 0)
        goto fail;
    *out = k;
    return 0;
fail:
    wv_group_free(k->pump);
    kafka_queue_unwatch(&k->main);
    if (k->rk)
        kafka_handle_destroy(k->rk, 0);
    free(k->name);
    free(k);
    return rc;
}

/* ------------------------------------------------------------- produce */

/* Wait for e on behalf of a call that uses k (close waits for these). */
static int wait_on(wv_kafka *k, wv_event *e)
{
    k->users++;
    wv_event_clear(e);
    int rc = wv_event_wait(e);
    if (--k->users == 0 && k->closing)
        wv_event_set(&k->idle);
    return rc;
}

static int usable(wv_kafka *k, const char *what)
{
    int rc = kafka_on_shard(k->shard, what);
    if (rc < 0)
        return rc;
    if (k->closing)
        return wv_fail(-ESHUTDOWN, "kafka %s: the producer is closed", what);
    if (k->fatal)
        return wv_fail(k->fatal, "kafka %s: the producer hit a fatal error: %s", what,
                       k->fatal_msg);
    return 0;
}

static int check_record(const wv_kafka_record *rec)
{
    if (!rec || !rec->topic || !*rec->topic)
        return wv_fail(-EINVAL, "kafka produce: no topic");
    if (rec->nheaders && !rec->headers)
        return wv_fail(-EINVAL, "kafka produce: nheaders without headers");
    if (rec->has_partition && rec->partition < 0)
        return wv_fail(-EINVAL, "kafka produce: partition %d", (int)rec->partition);
    for (size_t i = 0; i < rec->nheaders; i++)
        if (!rec->headers[i].name)
            return wv_fail(-EINVAL, "kafka produce: header %zu has no name", i);
    return 0;
}

/* Hand rec to librdkafka with p as its opaque: 0, or librdkafka's error. */
static rd_kafka_resp_err_t hand_over(wv_kafka *k, const wv_kafka_record *rec, wv_kafka_pending *p)
{
    rd_kafka_headers_t *hdrs = NULL;
    if (rec->nheaders) {
        hdrs = rd_kafka_headers_new(rec->nheaders);
        for (size_t i = 0; i < rec->nheaders; i++) {
            const wv_kafka_header *h = &rec->headers[i];
            rd_kafka_header_add(hdrs, h->name, -1, h->value.p,
                                h->value.p ? (ssize_t)h->value.n : 0);
        }
    }
    rd_kafka_vu_t vu[8];
    size_t n = 0;
    vu[n++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_TOPIC, .u.cstr = rec->topic};
    vu[n++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_PARTITION,
                              .u.i32 = rec->has_partition ? rec->partition : RD_KAFKA_PARTITION_UA};
    vu[n++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_MSGFLAGS, .u.i = RD_KAFKA_MSG_F_COPY};
    vu[n++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_KEY,
                              .u.mem = {(void *)rec->key.p, rec->key.p ? rec->key.n : 0}};
    vu[n++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_VALUE,
                              .u.mem = {(void *)rec->value.p, rec->value.p ? rec->value.n : 0}};
    vu[n++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_OPAQUE, .u.ptr = p};
    if (rec->timestamp_ms)
        vu[n++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_TIMESTAMP, .u.i64 = rec->timestamp_ms};
    if (hdrs)
        vu[n++] = (rd_kafka_vu_t){.vtype = RD_KAFKA_VTYPE_HEADERS, .u.headers = hdrs};
    rd_kafka_error_t *error = rd_kafka_produceva(k->rk, vu, n);
    if (!error)
        return RD_KAFKA_RESP_ERR_NO_ERROR; /* librdkafka owns hdrs now */
    rd_kafka_resp_err_t err = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    return err;
}

int wv_kafka_produce_start(wv_kafka *k, const wv_kafka_record *rec, wv_kafka_pending **out)
{
    if (out)
        *out = NULL;
    if (!k)
        return -EINVAL;
    int rc = check_record(rec);
    if (rc < 0 || (rc = usable(k, "produce")) < 0)
        return rc;
    wv_kafka_pending *p = kafka_calloc(1, sizeof *p);
    for (;;) {
        rd_kafka_resp_err_t err = hand_over(k, rec, p);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            free(p);
            /* after a fatal error librdkafka refuses with that error's code */
            if (note_fatal(k))
                return usable(k, "produce");
            return kafka_fail(err, "produce to %s", rec->topic);
        }
        /* librdkafka holds queue.buffering.max.messages already: wait for
         * reports to make room */
        rc = wait_on(k, &k->room);
        if (rc == 0)
            rc = usable(k, "produce");
        if (rc < 0) {
            free(p);
            if (rc == -ETIMEDOUT || rc == -ECANCELED)
                return wv_fail(rc, "kafka: produce to %s: librdkafka's queue was full (%s)",
                               rec->topic, rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
            return rc;
        }
    }
    p->k = k;
    p->next = k->waiting;
    if (k->waiting)
        k->waiting->prev = p;
    k->waiting = p;
    k->stats.produced++;
    k->stats.inflight++;
    if (out)
        *out = p;
    else
        p->abandoned = true; /* nobody waits: the report only counts */
    return 0;
}

int wv_kafka_pending_wait(wv_kafka_pending *p, int64_t at, wv_kafka_report *rep)
{
    if (!p)
        return -EINVAL;
    while (!p->finished) {
        if (p->k && (wv_shard_id() != p->k->shard))
            return kafka_on_shard(p->k->shard, "wait");
        int64_t old = wv_deadline();
        if (at < old)
            wv_deadline_set(at);
        wv_event_clear(&p->done);
        int rc = wv_event_wait(&p->done);
        wv_deadline_set(old);
        if (rc < 0 && !p->finished) {
            char seen[600];
            return wv_fail(rc,
                           "kafka: %s before the delivery report came; librdkafka may still "
                           "deliver the message%s",
                           rc == -ETIMEDOUT ? "the deadline passed" : "cancelled",
                           last_seen(p->k, seen, sizeof seen));
        }
    }
    if (p->rc < 0)
        return wv_fail(p->rc, "%s", p->errmsg);
    if (rep)
        *rep = p->rep;
    return 0;
}

bool wv_kafka_pending_done(const wv_kafka_pending *p)
{
    return p && p->finished;
}

void wv_kafka_pending_free(wv_kafka_pending *p)
{
    if (!p)
        return;
    if (p->finished)
        pending_destroy(p);
    else
        p->abandoned = true; /* the pump frees it with its report */
}

int wv_kafka_produce(wv_kafka *k, const wv_kafka_record *rec, wv_kafka_report *rep)
{
    wv_kafka_pending *p;
    int rc = wv_kafka_produce_start(k, rec, &p);
    if (rc < 0)
        return rc;
    rc = wv_kafka_pending_wait(p, WV_NEVER, rep);
    wv_kafka_pending_free(p);
    return rc;
}

int wv_kafka_flush(wv_kafka *k)
{
    if (!k)
        return -EINVAL;
    int rc = kafka_on_shard(k->shard, "flush");
    if (rc < 0)
        return rc;
    while (k->stats.inflight > 0 && !k->closing) {
        rc = wait_on(k, &k->drained);
        if (rc < 0)
            return wv_fail(rc, "kafka flush: %lld messages still without a delivery report",
                           (long long)k->stats.inflight);
    }
    return k->closing && k->stats.inflight > 0 ? wv_fail(-ESHUTDOWN, "kafka flush: closed") : 0;
}

typedef struct ping_job {
    rd_kafka_t *rk;
    int timeout_ms;
    rd_kafka_resp_err_t err;
    int brokers;
    bool ran;
} ping_job;

static int ping_run(void *arg)
{
    ping_job *j = arg;
    j->ran = true;
    const struct rd_kafka_metadata *md = NULL;
    j->err = rd_kafka_metadata(j->rk, 0, NULL, &md, j->timeout_ms);
    if (!j->err) {
        j->brokers = md->broker_cnt;
        rd_kafka_metadata_destroy(md);
    }
    return 0;
}

int wv_kafka_ping(wv_kafka *k)
{
    if (!k)
        return -EINVAL;
    int rc = usable(k, "ping");
    if (rc < 0)
        return rc;
    int64_t left_ms = (wv_deadline() - wv_now()) / 1000000;
    ping_job j = {.rk = k->rk, .timeout_ms = left_ms < 5000 ? (int)left_ms : 5000};
    if (j.timeout_ms <= 0)
        return wv_fail(-ETIMEDOUT, "kafka ping: the deadline has passed");
    k->pings++;
    rc = wv_offload(ping_run, &j);
    if (--k->pings == 0)
        wv_event_set(&k->pinged);
    if (!j.ran)
        return wv_fail(rc < 0 ? rc : -ECANCELED, "kafka ping: not asked (cancelled)");
    if (j.err)
        return kafka_fail(j.err, "ping (metadata from the brokers)");
    return j.brokers;
}

rd_kafka_t *kafka_producer_handle(wv_kafka *k)
{
    return k->rk;
}

void wv_kafka_stats_get(const wv_kafka *k, wv_kafka_stats *st)
{
    if (st)
        *st = k ? k->stats : (wv_kafka_stats){0};
}

/* --------------------------------------------------------------- close */

static int purge_job(void *arg)
{
    rd_kafka_purge(arg, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    return 0;
}

int wv_kafka_close(wv_kafka *k)
{
    if (!k)
        return 0;
    int rc = kafka_on_shard(k->shard, "close");
    if (rc < 0)
        return rc;
    k->closing = true;
    /* everything produced so far, within the caller's deadline */
    while (k->stats.inflight > 0 && rc == 0)
        rc = wait_on(k, &k->drained);
    wv_group_free(k->pump);
    k->pump = NULL;
    drain(k, INT_MAX);
    if (k->stats.inflight > 0) {
        kafka_blocking(purge_job, k->rk);
        drain(k, INT_MAX);
    }
    while (k->pings > 0) { /* they use the handle from the pool */
        wv_event_clear(&k->pinged);
        wv_event_wait_shielded(&k->pinged);
    }
    kafka_queue_unwatch(&k->main);
    kafka_handle_destroy(k->rk, 0);
    while (k->waiting)
        pending_finish(k, k->waiting, -ESHUTDOWN,
                       format("kafka: the producer was closed before the delivery report came; "
                              "the message may or may not have been written"));
    /* callers waiting for room or for a flush see closing and leave */
    wv_event_set(&k->room);
    wv_event_set(&k->drained);
    while (k->users > 0) {
        wv_event_clear(&k->idle);
        wv_event_wait_shielded(&k->idle);
    }
    free(k->name);
    free(k);
    if (rc < 0)
        return wv_fail(rc, "kafka close: %s before every message had its delivery report",
                       rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
    return 0;
}
