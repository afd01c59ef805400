/*
 * Received messages and what an ack does: each partition keeps the
 * offsets it handed out in fetch order (kafka_part's slots), an ack marks
 * its slot, and the run of acked slots at the front is retired, its last
 * offset stored with librdkafka (rd_kafka_offset_store, which commits
 * offset + 1 in the background). So the stored offset never passes a
 * message whose handler has not finished, however handlers interleave.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka/kafka_internal.h"

static kafka_msg *msg_of(const wv_kafka_msg *m)
{
    return (kafka_msg *)((char *)m - offsetof(kafka_msg, pub));
}

/* ---------------------------------------------------------- partitions */

kafka_part *kafka_part_find(wv_kafka_consumer *c, const char *topic, int32_t partition, bool create)
{
    if (c->last_part < c->nparts) {
        kafka_part *p = c->parts[c->last_part];
        if (p->partition == partition && strcmp(p->topic, topic) == 0)
            return p;
    }
    for (int i = 0; i < c->nparts; i++) {
        kafka_part *p = c->parts[i];
        if (p->partition == partition && strcmp(p->topic, topic) == 0) {
            c->last_part = i;
            return p;
        }
    }
    if (!create)
        return NULL;
    if (c->nparts == c->cap_parts) {
        int cap = c->cap_parts ? c->cap_parts * 2 : 16;
        kafka_part **v = realloc(c->parts, sizeof *v * (size_t)cap);
        if (!v) {
            wv_error("kafka: out of memory");
            abort();
        }
        c->parts = v;
        c->cap_parts = cap;
    }
    kafka_part *p = kafka_calloc(1, sizeof *p);
    p->topic = kafka_strdup(topic);
    p->partition = partition;
    p->rkt = rd_kafka_topic_new(c->rk, topic, NULL);
    p->last_fetched = p->stored = p->committed = -1;
    c->last_part = c->nparts;
    c->parts[c->nparts++] = p;
    return p;
}

void kafka_part_reset(kafka_part *p)
{
    p->epoch++;
    p->first_seq += p->end - p->start;
    p->start = p->end = 0;
    p->last_fetched = -1;
}

uint64_t kafka_part_push(kafka_part *p, int64_t offset)
{
    /* read again from an earlier place (an offset reset, a resume):
     * what was handed out before no longer orders the commits */
    if (p->last_fetched >= 0 && offset <= p->last_fetched)
        kafka_part_reset(p);
    p->last_fetched = offset;
    if (p->end == p->cap) {
        if (p->start > 0) {
            memmove(p->slots, p->slots + p->start, (p->end - p->start) * sizeof *p->slots);
            p->end -= p->start;
            p->start = 0;
        } else {
            size_t cap = p->cap ? p->cap * 2 : 64;
            kafka_slot *v = realloc(p->slots, cap * sizeof *v);
            if (!v) {
                wv_error("kafka: out of memory");
                abort();
            }
            p->slots = v;
            p->cap = cap;
        }
    }
    p->slots[p->end++] = (kafka_slot){.offset = offset};
    return p->first_seq + (p->end - 1 - p->start);
}

bool kafka_part_busy(const kafka_part *p)
{
    return p->start < p->end;
}

/* Mark seq acked; store the offset after the acked run at the front. */
static int part_ack(kafka_part *p, uint64_t seq)
{
    if (seq < p->first_seq || seq - p->first_seq >= p->end - p->start)
        return 0; /* retired already: a second ack */
    p->slots[p->start + (seq - p->first_seq)].acked = true;
    int64_t last = -1;
    while (p->start < p->end && p->slots[p->start].acked) {
        last = p->slots[p->start].offset;
        p->start++;
        p->first_seq++;
    }
    if (p->start == p->end)
        p->start = p->end = 0;
    if (last < 0)
        return 0;
    if (!p->rkt) /* librdkafka refused a handle for the topic's name */
        return wv_fail(-EIO, "kafka: ack of %s [%d]: no topic handle", p->topic, (int)p->partition);
    rd_kafka_resp_err_t err = rd_kafka_offset_store(p->rkt, p->partition, last);
    if (err)
        return kafka_fail(err, "ack of %s [%d] at offset %lld", p->topic, (int)p->partition,
                          (long long)last);
    p->stored = last + 1;
    return 0;
}

/* ------------------------------------------------------------ messages */

kafka_msg *kafka_msg_error(wv_kafka_consumer *c, int err, const char *topic, int32_t partition,
                           const char *reason)
{
    kafka_msg *m = kafka_calloc(1, sizeof *m);
    m->c = c;
    m->errmsg = kafka_strdup(reason);
    m->topic = kafka_strdup(topic);
    m->pub.err = err;
    m->pub.topic = m->topic;
    m->pub.partition = partition;
    m->pub.offset = -1;
    m->pub.timestamp_ms = -1;
    c->refs++;
    return m;
}

void kafka_msg_release(kafka_msg *m)
{
    wv_kafka_consumer *c = m->c;
    if (m->ev)
        rd_kafka_event_destroy(m->ev);
    free(m->errmsg);
    free(m->topic);
    free(m);
    kafka_consumer_unref(c);
}

int kafka_msg_check(kafka_msg *m)
{
    if (m->pub.err)
        return wv_fail(m->pub.err, "%s", m->errmsg);
    if (m->c->closing)
        return wv_fail(-ESHUTDOWN, "kafka: the consumer is closed");
    if (m->epoch != m->part->epoch || !m->part->assigned) {
        m->c->stats.stale++;
        return wv_fail(-ESTALE,
                       "kafka: %s [%d] was revoked or sought since offset %lld was "
                       "fetched",
                       m->part->topic, (int)m->part->partition, (long long)m->pub.offset);
    }
    return 0;
}

int wv_kafka_msg_check(wv_kafka_msg *m)
{
    if (!m)
        return -EINVAL;
    kafka_msg *km = msg_of(m);
    int rc = kafka_on_shard(km->c->shard, "message");
    if (rc == 0)
        rc = kafka_msg_check(km);
    if (rc == 0)
        km->c->stats.received++;
    return rc;
}

int wv_kafka_ack(wv_kafka_msg *m)
{
    if (!m)
        return -EINVAL;
    kafka_msg *km = msg_of(m);
    wv_kafka_consumer *c = km->c;
    int rc = kafka_on_shard(c->shard, "ack");
    if (rc < 0)
        return rc;
    if (m->err)
        rc = wv_fail(-EINVAL, "kafka ack: an error of the stream is not a message");
    else if ((rc = kafka_msg_check(km)) == 0 && (rc = part_ack(km->part, km->seq)) == 0) {
        c->stats.acked++;
        wv_event_set(&c->acked);
    }
    kafka_msg_release(km);
    return rc;
}

void wv_kafka_msg_free(wv_kafka_msg *m)
{
    if (m)
        kafka_msg_release(msg_of(m));
}

/* ------------------------------------------------------------- headers */

static rd_kafka_headers_t *headers_of(const wv_kafka_msg *m)
{
    rd_kafka_headers_t *h = NULL;
    const kafka_msg *km = msg_of(m);
    if (!km->rkm || rd_kafka_message_headers(km->rkm, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return h;
}

int wv_kafka_msg_header(const wv_kafka_msg *m, const char *name, wv_str *value)
{
    rd_kafka_headers_t *h = m && name ? headers_of(m) : NULL;
    const void *v;
    size_t n;
    if (!h || rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    if (value)
        *value = (wv_str){v, v ? n : 0};
    return 1;
}

size_t wv_kafka_msg_header_count(const wv_kafka_msg *m)
{
    rd_kafka_headers_t *h = m ? headers_of(m) : NULL;
    return h ? rd_kafka_header_cnt(h) : 0;
}

int wv_kafka_msg_header_at(const wv_kafka_msg *m, size_t i, const char **name, wv_str *value)
{
    rd_kafka_headers_t *h = m ? headers_of(m) : NULL;
    const char *nm;
    const void *v;
    size_t n;
    if (!h || rd_kafka_header_get_all(h, i, &nm, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    if (name)
        *name = nm;
    if (value)
        *value = (wv_str){v, v ? n : 0};
    return 1;
}
