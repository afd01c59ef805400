/*
 * The group consumer: a librdkafka consumer handle per
 * wv_kafka_consumer, its consumer-group queue read by a pump fiber.
 *
 * The pump takes events off the queue in order. A message becomes a
 * kafka_msg (it keeps librdkafka's event, so the bytes are not copied),
 * gets a slot in its partition's record and goes into the channel the
 * receivers read; a full channel stops the pump, and librdkafka stops
 * fetching once its own prefetch buffer is full. A rebalance is handled
 * in place: on an assignment, the partitions get a new epoch and are
 * assigned; on a revocation, the pump waits a while (revoke_wait_ms) for
 * handlers to ack what they hold of those partitions, commits the acked
 * offsets, gives the partitions a new epoch (so their messages still in
 * flight are stale: dropped on receipt, their acks refused) and
 * unassigns them. Errors worth a receiver's attention go into the stream;
 * the rest are logged.
 *
 * librdkafka leaves a group whose member has not polled for
 * max.poll.interval.ms (it takes the application for stuck). The pump
 * polls whenever the queue signals; when nothing comes for half that
 * interval it polls once anyway. It does not while it waits for room in
 * the channel: receivers that stop receiving for that long do stand for a
 * stuck application, and the group moves on without it.
 *
 * Messages may outlive wv_kafka_consumer_close (a handler still holds
 * one): each holds a reference on the consumer, and the last one frees
 * the librdkafka handle.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/kafka_internal.h"

/* ------------------------------------------------------------ blocking */

enum assign_how { ASSIGN, UNASSIGN, INCREMENTAL_ASSIGN, INCREMENTAL_UNASSIGN, SUBSCRIBE };

typedef struct assign_job {
    rd_kafka_t *rk;
    enum assign_how how;
    const rd_kafka_topic_partition_list_t *list;
    rd_kafka_error_t *error;
    rd_kafka_resp_err_t err;
} assign_job;

static int assign_run(void *arg)
{
    assign_job *j = arg;
    switch (j->how) {
    case ASSIGN:
        j->err = rd_kafka_assign(j->rk, j->list);
        break;
    case UNASSIGN:
        j->err = rd_kafka_assign(j->rk, NULL);
        break;
    case INCREMENTAL_ASSIGN:
        j->error = rd_kafka_incremental_assign(j->rk, j->list);
        break;
    case INCREMENTAL_UNASSIGN:
        j->error = rd_kafka_incremental_unassign(j->rk, j->list);
        break;
    case SUBSCRIBE:
        j->err = rd_kafka_subscribe(j->rk, j->list);
        break;
    }
    return 0;
}

/* One of the calls librdkafka answers from its own thread, off the loop. */
static int assign_call(wv_kafka_consumer *c, enum assign_how how,
                       const rd_kafka_topic_partition_list_t *list, const char *what)
{
    assign_job j = {.rk = c->rk, .how = how, .list = list};
    kafka_blocking(assign_run, &j);
    if (j.error)
        return kafka_fail_error(j.error, what);
    if (j.err)
        return kafka_fail(j.err, "%s", what);
    return 0;
}

/* ------------------------------------------------------------- commits */

/*
 * Commit the stored offsets of the assigned partitions (those in `only`
 * when given) that moved since our last commit, and wait for the
 * coordinator's answer until `at`. 0 when there was nothing to commit.
 */
static int commit_stored(wv_kafka_consumer *c, const rd_kafka_topic_partition_list_t *only,
                         int64_t at)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(c->nparts);
    for (int i = 0; i < c->nparts; i++) {
        kafka_part *p = c->parts[i];
        if (!p->assigned || p->stored < 0 || p->stored == p->committed)
            continue;
        if (only && !rd_kafka_topic_partition_list_find(only, p->topic, p->partition))
            continue;
        rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = p->stored;
    }
    if (list->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(list);
        return 0;
    }
    kafka_queue rq;
    int rc = kafka_queue_watch(&rq, rd_kafka_queue_new(c->rk));
    if (rc < 0) {
        rd_kafka_topic_partition_list_destroy(list);
        return rc;
    }
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(c->rk, list, rq.q, NULL, NULL);
    rd_kafka_event_t *ev = NULL;
    if (err) {
        rc = kafka_fail(err, "commit");
    } else {
        int64_t old = wv_deadline();
        if (at < old)
            wv_deadline_set(at);
        while (rc == 0) {
            ev = rd_kafka_queue_poll(rq.q, 0);
            if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT)
                break;
            if (ev) {
                rd_kafka_event_destroy(ev);
                ev = NULL;
                continue;
            }
            rc = kafka_queue_wait(&rq, WV_NEVER);
        }
        wv_deadline_set(old);
        if (rc < 0)
            rc = wv_fail(rc, "kafka: commit: %s before the coordinator answered",
                         rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
    }
    if (ev) {
        err = rd_kafka_event_error(ev);
        const rd_kafka_topic_partition_list_t *done = rd_kafka_event_topic_partition_list(ev);
        for (int i = 0; done && i < done->cnt; i++) {
            const rd_kafka_topic_partition_t *e = &done->elems[i];
            kafka_part *p = kafka_part_find(c, e->topic, e->partition, false);
            if (e->err == RD_KAFKA_RESP_ERR_NO_ERROR && p)
                p->committed = e->offset;
            else if (!err)
                err = e->err;
        }
        if (err)
            rc = kafka_fail(err, "commit");
        rd_kafka_event_destroy(ev);
    }
    kafka_queue_unwatch(&rq);
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

/* ----------------------------------------------------------- rebalances */

static bool cooperative(wv_kafka_consumer *c)
{
    return strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE") == 0;
}

/* Wait until handlers acked what they hold of these partitions, or the
 * revoke_wait_ms passed. */
static int wait_for_acks(wv_kafka_consumer *c, const rd_kafka_topic_partition_list_t *list)
{
    if (c->revoke_wait_ms < 0)
        return 0;
    int64_t old = wv_deadline_set(wv_after_ms(c->revoke_wait_ms));
    int rc = 0;
    for (;;) {
        bool busy = false;
        for (int i = 0; i < list->cnt && !busy; i++) {
            kafka_part *p =
                kafka_part_find(c, list->elems[i].topic, list->elems[i].partition, false);
            busy = p && p->assigned && kafka_part_busy(p);
        }
        if (!busy)
            break;
        wv_event_clear(&c->acked);
        if ((rc = wv_event_wait(&c->acked)) < 0)
            break;
    }
    wv_deadline_set(old);
    return rc == -ECANCELED ? rc : 0;
}

static void mark(wv_kafka_consumer *c, const rd_kafka_topic_partition_list_t *list, bool assigned)
{
    for (int i = 0; i < list->cnt; i++) {
        kafka_part *p =
            kafka_part_find(c, list->elems[i].topic, list->elems[i].partition, assigned);
        if (!p || p->assigned == assigned)
            continue;
        kafka_part_reset(p);
        p->assigned = assigned;
        p->stored = p->committed = -1;
        c->stats.assigned += assigned ? 1 : -1;
    }
}

/* Revoke every partition still marked assigned (an eager revocation may
 * list fewer than we hold after a lost assignment). */
static void mark_all_revoked(wv_kafka_consumer *c)
{
    for (int i = 0; i < c->nparts; i++)
        if (c->parts[i]->assigned) {
            kafka_part_reset(c->parts[i]);
            c->parts[i]->assigned = false;
            c->stats.assigned--;
        }
}

/* `graceful`: wait for acks and commit before letting go (not while
 * closing, which commits once for all, nor for a lost assignment). */
static int rebalance(wv_kafka_consumer *c, rd_kafka_event_t *ev, bool graceful)
{
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    const rd_kafka_topic_partition_list_t *list = rd_kafka_event_topic_partition_list(ev);
    bool coop = cooperative(c);
    c->stats.rebalances++;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        wv_debug("kafka %s: assigned %d partition(s)", c->name, list->cnt);
        mark(c, list, true);
        return assign_call(c, coop ? INCREMENTAL_ASSIGN : ASSIGN, list, "assign");
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        wv_debug("kafka %s: %d partition(s) revoked", c->name, list->cnt);
        if (graceful && !rd_kafka_assignment_lost(c->rk)) {
            if (wait_for_acks(c, list) == -ECANCELED)
                return -ECANCELED;
            int rc = commit_stored(c, list, wv_after_ms(KAFKA_REVOKE_COMMIT_MS));
            if (rc < 0)
                wv_warn("kafka %s: committing revoked partitions: %s", c->name, wv_errmsg());
        }
        if (coop) {
            mark(c, list, false);
            return assign_call(c, INCREMENTAL_UNASSIGN, list, "unassign");
        }
        mark_all_revoked(c);
        return assign_call(c, UNASSIGN, NULL, "unassign");
    }
    wv_warn("kafka %s: rebalance failed: %s", c->name, rd_kafka_err2str(err));
    mark_all_revoked(c);
    return assign_call(c, UNASSIGN, NULL, "unassign");
}

/* ------------------------------------------------------------------ pump */

static int hand_over(wv_kafka_consumer *c, kafka_msg *m)
{
    int rc = wv_chan_send(c->msgs, &m);
    if (rc < 0)
        kafka_msg_release(m);
    return rc;
}

/* Errors a receiver should hear of; the others are only logged. */
static bool for_the_stream(rd_kafka_resp_err_t err)
{
    switch (kafka_errno(err)) {
    case -ENOENT:
    case -EACCES:
    case -ECONNREFUSED:
    case -ENOTRECOVERABLE:
        return true;
    default:
        return err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
               err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE;
    }
}

static int on_error(wv_kafka_consumer *c, rd_kafka_event_t *ev)
{
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    char why[600];
    if (rd_kafka_event_error_is_fatal(ev)) {
        char fatal[400];
        err = rd_kafka_fatal_error(c->rk, fatal, sizeof fatal);
        snprintf(why, sizeof why, "kafka: the consumer hit a fatal error: %s", fatal);
        wv_error("kafka %s: %s", c->name, why + 7);
        return hand_over(c, kafka_msg_error(c, -ENOTRECOVERABLE, NULL, -1, why));
    }
    snprintf(c->last_error, sizeof c->last_error, "%s", rd_kafka_event_error_string(ev));
    if (!for_the_stream(err)) {
        wv_warn("kafka %s: %s", c->name, c->last_error);
        return 0;
    }
    rd_kafka_topic_partition_t *tp = rd_kafka_event_topic_partition(ev);
    snprintf(why, sizeof why, "kafka: %s", c->last_error);
    int rc = hand_over(c, kafka_msg_error(c, kafka_errno(err), tp ? tp->topic : NULL,
                                          tp ? tp->partition : -1, why));
    if (tp)
        rd_kafka_topic_partition_destroy(tp);
    return rc;
}

/* A fetched message (or a partition's error); takes ev. */
static int on_message(wv_kafka_consumer *c, rd_kafka_event_t *ev)
{
    const rd_kafka_message_t *rkm = rd_kafka_event_message_next(ev);
    if (!rkm || rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        rd_kafka_event_destroy(ev);
        return 0;
    }
    const char *topic = rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : NULL;
    if (rkm->err) {
        char why[512];
        snprintf(why, sizeof why, "kafka: %s [%d]: %s", topic ? topic : "?", (int)rkm->partition,
                 rd_kafka_message_errstr(rkm));
        kafka_msg *m = kafka_msg_error(c, kafka_errno(rkm->err), topic, rkm->partition, why);
        rd_kafka_event_destroy(ev);
        return hand_over(c, m);
    }
    kafka_part *p = topic ? kafka_part_find(c, topic, rkm->partition, false) : NULL;
    if (!p || !p->assigned) {
        c->stats.stale++;
        rd_kafka_event_destroy(ev);
        return 0;
    }
    kafka_msg *m = kafka_calloc(1, sizeof *m);
    m->c = c;
    m->ev = ev;
    m->rkm = rkm;
    m->part = p;
    m->seq = kafka_part_push(p, rkm->offset);
    m->epoch = p->epoch;
    rd_kafka_timestamp_type_t type;
    m->pub = (wv_kafka_msg){
        .topic = p->topic,
        .partition = rkm->partition,
        .offset = rkm->offset,
        .key = {rkm->key, rkm->key ? rkm->key_len : 0},
        .value = {rkm->payload, rkm->payload ? rkm->len : 0},
        .timestamp_ms = rd_kafka_message_timestamp(rkm, &type),
    };
    c->refs++;
    return hand_over(c, m);
}

/* A background (auto.commit.interval.ms) commit's result. */
static void note_commit(wv_kafka_consumer *c, rd_kafka_event_t *ev)
{
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    const rd_kafka_topic_partition_list_t *done = rd_kafka_event_topic_partition_list(ev);
    for (int i = 0; done && i < done->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &done->elems[i];
        kafka_part *p = kafka_part_find(c, e->topic, e->partition, false);
        if (p && p->assigned && !err && !e->err && e->offset >= 0)
            p->committed = e->offset;
    }
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        wv_warn("kafka %s: background commit: %s", c->name, rd_kafka_err2str(err));
}

static int on_event(wv_kafka_consumer *c, rd_kafka_event_t *ev)
{
    int rc = 0;
    switch (rd_kafka_event_type(ev)) {
    case RD_KAFKA_EVENT_FETCH:
        return on_message(c, ev);
    case RD_KAFKA_EVENT_REBALANCE:
        rc = rebalance(c, ev, true);
        if (rc < 0 && rc != -ECANCELED)
            wv_warn("kafka %s: %s", c->name, wv_errmsg());
        break;
    case RD_KAFKA_EVENT_ERROR:
        rc = on_error(c, ev);
        break;
    case RD_KAFKA_EVENT_LOG:
        kafka_log_event(c->name, ev);
        break;
    case RD_KAFKA_EVENT_OFFSET_COMMIT:
        note_commit(c, ev);
        break;
    default:
        break;
    }
    rd_kafka_event_destroy(ev);
    return rc == -ECANCELED ? rc : 0;
}

static int pump_main(void *arg)
{
    wv_kafka_consumer *c = arg;
    for (;;) {
        int n = 0;
        rd_kafka_event_t *ev;
        while (n < KAFKA_PUMP_BATCH && (ev = rd_kafka_queue_poll(c->q.q, 0))) {
            n++;
            if (on_event(c, ev) == -ECANCELED)
                return 0;
        }
        if (n == KAFKA_PUMP_BATCH) {
            if (wv_yield() == -ECANCELED)
                return 0;
            continue;
        }
        /* -ETIMEDOUT: the keepalive poll above */
        if (kafka_queue_wait(&c->q, wv_after_ms(c->keepalive_ms)) == -ECANCELED)
            return 0;
    }
}

/* ---------------------------------------------------------------- open */
/* 0 when c may be used here and now. */
static int usable(wv_kafka_consumer *c, const char *what)
{
    if (!c)
        return -EINVAL;
    int rc = kafka_on_shard(c->shard, what);
    if (rc == 0 && c->closing)
        rc = wv_fail(-ESHUTDOWN, "kafka %s: the consumer is closed", what);
    return rc;
}

static int64_t conf_ms(rd_kafka_conf_t *conf, const char *name, int64_t fallback)
{
    char v[32];
    size_t n = sizeof v;
    if (rd_kafka_conf_get(conf, name, v, &n) != RD_KAFKA_CONF_OK)
        return fallback;
    return strtoll(v, NULL, 10);
}

int wv_kafka_consumer_open(const wv_kafka_consumer_opts *opts, wv_kafka_consumer **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!opts || !opts->group_id || !*opts->group_id)
        return wv_fail(-EINVAL, "kafka consumer: no group_id");
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "kafka consumer: open outside the runtime");
    kafka_settings s = {
        .consumer = true,
        .brokers = opts->brokers,
        .client_id = opts->client_id,
        .group_id = opts->group_id,
        .config = opts->config,
        .events = RD_KAFKA_EVENT_FETCH | RD_KAFKA_EVENT_REBALANCE | RD_KAFKA_EVENT_ERROR |
                  RD_KAFKA_EVENT_LOG | RD_KAFKA_EVENT_OFFSET_COMMIT,
    };
    rd_kafka_conf_t *conf;
    int rc = kafka_conf_new(&s, &conf);
    if (rc < 0)
        return rc;
    wv_kafka_consumer *c = kafka_calloc(1, sizeof *c);
    c->shard = wv_shard_id();
    c->name = kafka_strdup(opts->client_id ? opts->client_id : opts->group_id);
    c->q.efd = -1;
    c->refs = 1;
    c->revoke_wait_ms = opts->revoke_wait_ms ? opts->revoke_wait_ms : KAFKA_DEFAULT_REVOKE_WAIT_MS;
    c->keepalive_ms = conf_ms(conf, "max.poll.interval.ms", 300000) / 2;
    if (c->keepalive_ms < 100)
        c->keepalive_ms = 100;
    size_t depth = opts->queue_depth ? opts->queue_depth : KAFKA_DEFAULT_QUEUE_DEPTH;
    if (!(c->msgs = wv_chan_new(sizeof(kafka_msg *), depth))) {
        rd_kafka_conf_destroy(conf);
        free(c->name);
        free(c);
        return -ENOMEM;
    }
    if ((rc = kafka_handle_new(true, conf, &c->rk)) < 0) {
        wv_chan_free(c->msgs);
        free(c->name);
        free(c);
        return rc;
    }
    rd_kafka_poll_set_consumer(c->rk);
    if ((rc = kafka_pump_start(&c->q, rd_kafka_queue_get_consumer(c->rk), pump_main, c,
                               "kafka-consumer", &c->pump)) < 0)
        goto fail;
    if (opts->topics && (rc = wv_kafka_subscribe(c, opts->topics)) < 0)
        goto fail;
    *out = c;
    return 0;
fail:;
    char why[512];
    snprintf(why, sizeof why, "%s", wv_errmsg());
    wv_kafka_consumer_close(c);
    return wv_fail(rc, "%s", why);
}

int wv_kafka_subscribe(wv_kafka_consumer *c, const char *const *topics)
{
    if (!topics || !topics[0])
        return wv_fail(-EINVAL, "kafka subscribe: no topics");
    int rc = usable(c, "subscribe");
    if (rc < 0)
        return rc;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
    for (int i = 0; topics[i]; i++)
        rd_kafka_topic_partition_list_add(list, topics[i], RD_KAFKA_PARTITION_UA);
    rc = assign_call(c, SUBSCRIBE, list, "subscribe");
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

/* ---------------------------------------------------------------- stream */

static int recv_one(wv_kafka_consumer *c, wv_kafka_msg **msg, int64_t at)
{
    for (;;) {
        kafka_msg *m;
        int rc = wv_chan_recv_until(c->msgs, &m, at);
        if (rc == -EPIPE)
            return wv_fail(-EPIPE, "kafka recv: the consumer is closed");
        if (rc < 0) {
            if (c->last_error[0])
                return wv_fail(rc, "kafka recv: no message %s (the client last saw: %s)",
                               rc == -ETIMEDOUT ? "before the deadline" : "(cancelled)",
                               c->last_error);
            return rc;
        }
        rc = kafka_msg_check(m);
        if (rc == -ESTALE) {
            kafka_msg_release(m);
            continue;
        }
        if (rc < 0) {
            kafka_msg_release(m);
            return rc;
        }
        c->stats.received++;
        *msg = &m->pub;
        return 0;
    }
}

int wv_kafka_recv(wv_kafka_consumer *c, wv_kafka_msg **msg, int64_t at)
{
    if (!msg)
        return -EINVAL;
    *msg = NULL;
    int rc = usable(c, "recv");
    if (rc < 0)
        return rc == -ESHUTDOWN ? -EPIPE : rc;
    /* close waits for the receivers to leave before it frees c */
    c->receivers++;
    rc = recv_one(c, msg, at);
    if (--c->receivers == 0 && c->closing)
        wv_event_set(&c->idle);
    return rc;
}

wv_chan *wv_kafka_consumer_chan(wv_kafka_consumer *c)
{
    return c ? c->msgs : NULL;
}

int wv_kafka_commit(wv_kafka_consumer *c)
{
    int rc = usable(c, "commit");
    return rc < 0 ? rc : commit_stored(c, NULL, wv_after_ms(KAFKA_COMMIT_MS));
}

/* The assigned partitions that `topic` and `partition` select. */
static rd_kafka_topic_partition_list_t *select_assigned(wv_kafka_consumer *c, const char *topic,
                                                        int32_t partition)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(c->nparts);
    for (int i = 0; i < c->nparts; i++) {
        kafka_part *p = c->parts[i];
        if (p->assigned && (!topic || strcmp(topic, p->topic) == 0) &&
            (partition < 0 || partition == p->partition))
            rd_kafka_topic_partition_list_add(list, p->topic, p->partition);
    }
    return list;
}

static int pause_resume(wv_kafka_consumer *c, const char *topic, int32_t partition, bool pause)
{
    const char *what = pause ? "pause" : "resume";
    int rc = usable(c, what);
    if (rc < 0)
        return rc;
    rd_kafka_topic_partition_list_t *list = select_assigned(c, topic, partition);
    if (list->cnt == 0)
        rc = wv_fail(-ENOENT, "kafka %s: no assigned partition matches %s [%d]", what,
                     topic ? topic : "*", (int)partition);
    else {
        /* asynchronous: librdkafka's threads act on it */
        rd_kafka_resp_err_t err = pause ? rd_kafka_pause_partitions(c->rk, list)
                                        : rd_kafka_resume_partitions(c->rk, list);
        if (err)
            rc = kafka_fail(err, "%s", what);
    }
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

int wv_kafka_pause(wv_kafka_consumer *c, const char *topic, int32_t partition)
{
    return pause_resume(c, topic, partition, true);
}

int wv_kafka_resume(wv_kafka_consumer *c, const char *topic, int32_t partition)
{
    return pause_resume(c, topic, partition, false);
}

int wv_kafka_seek(wv_kafka_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
    if (!topic || partition < 0 || offset < WV_KAFKA_OFFSET_BEGINNING)
        return wv_fail(-EINVAL, "kafka seek: bad topic, partition or offset");
    int rc = usable(c, "seek");
    if (rc < 0)
        return rc;
    kafka_part *p = kafka_part_find(c, topic, partition, false);
    if (!p || !p->assigned)
        return wv_fail(-ENOENT, "kafka seek: %s [%d] is not assigned to this consumer", topic,
                       (int)partition);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, partition)->offset = offset;
    /* timeout 0: asynchronous; librdkafka drops what it prefetched */
    rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, list, 0);
    rd_kafka_topic_partition_list_destroy(list);
    if (error)
        return kafka_fail_error(error, "seek");
    kafka_part_reset(p);
    return 0;
}

void wv_kafka_consumer_stats_get(const wv_kafka_consumer *c, wv_kafka_consumer_stats *st)
{
    if (st)
        *st = c ? c->stats : (wv_kafka_consumer_stats){0};
}

/* --------------------------------------------------------------- close */

/* Serve the queue until librdkafka says the consumer left its group. */
static int leave(wv_kafka_consumer *c)
{
    rd_kafka_error_t *error = rd_kafka_consumer_close_queue(c->rk, c->q.q);
    if (error)
        return kafka_fail_error(error, "close");
    int rc = 0;
    while (!rd_kafka_consumer_closed(c->rk)) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(c->q.q, 0);
        if (!ev) {
            if ((rc = kafka_queue_wait(&c->q, WV_NEVER)) < 0)
                return wv_fail(rc, "kafka close: %s before the consumer left its group",
                               rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
            continue;
        }
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_REBALANCE:
            if ((rc = rebalance(c, ev, false)) < 0)
                wv_warn("kafka %s: %s", c->name, wv_errmsg());
            break;
        case RD_KAFKA_EVENT_LOG:
            kafka_log_event(c->name, ev);
            break;
        default:
            break;
        }
        rd_kafka_event_destroy(ev);
    }
    return 0;
}

static void teardown(wv_kafka_consumer *c, bool detached)
{
    for (int i = 0; i < c->nparts; i++) {
        kafka_part *p = c->parts[i];
        if (p->rkt)
            rd_kafka_topic_destroy(p->rkt);
        free(p->slots);
        free(p->topic);
        free(p);
    }
    free(c->parts);
    kafka_queue_unwatch(&c->q);
    if (c->rk && detached)
        kafka_handle_destroy_detached(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    else if (c->rk)
        kafka_handle_destroy(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    wv_chan_free(c->msgs);
    free(c->name);
    free(c);
}

static int teardown_fiber(void *arg)
{
    teardown(arg, false);
    return 0;
}

/* Destroying the handle takes a while (librdkafka joins its threads):
 * in a fiber of its own, for callers that must not wait for it. */
static void teardown_later(wv_kafka_consumer *c)
{
    wv_spawn_opts so = {.name = "kafka-teardown"};
    if (wv_spawn(teardown_fiber, c, &so) < 0)
        teardown(c, false);
}

void kafka_consumer_unref(wv_kafka_consumer *c)
{
    /* the last message was freed after close, maybe by a call that must
     * not suspend */
    if (--c->refs == 0)
        teardown_later(c);
}

int wv_kafka_consumer_close(wv_kafka_consumer *c)
{
    if (!c)
        return 0;
    int rc = kafka_on_shard(c->shard, "close");
    if (rc < 0)
        return rc;
    if (c->closing)
        return wv_fail(-ESHUTDOWN, "kafka close: closed already");
    c->closing = true;
    wv_group_free(c->pump);
    c->pump = NULL;
    kafka_msg *m;
    while (wv_chan_try_recv(c->msgs, &m) == 0)
        kafka_msg_release(m);
    wv_chan_close(c->msgs);
    while (c->receivers > 0) {
        wv_event_clear(&c->idle);
        wv_event_wait_shielded(&c->idle);
    }
    char why[512] = "";
    if (c->rk && c->q.q) {
        int64_t old = wv_deadline();
        int64_t until = wv_after_ms(KAFKA_COMMIT_MS);
        if (until < old)
            wv_deadline_set(until);
        rc = commit_stored(c, NULL, WV_NEVER);
        if (rc < 0)
            snprintf(why, sizeof why, "%s", wv_errmsg());
        int left = leave(c);
        if (left < 0 && rc == 0) {
            rc = left;
            snprintf(why, sizeof why, "%s", wv_errmsg());
        }
        wv_deadline_set(old);
    }
    /* a goodbye cut short leaves librdkafka waiting on the brokers, and
     * destroying its handle then waits too (with every broker down, for
     * ever): not on the caller's time, nor the process's exit */
    if (--c->refs == 0)
        teardown(c, rc == -ETIMEDOUT || rc == -ECANCELED);
    return rc < 0 ? wv_fail(rc, "%s", why) : 0;
}
