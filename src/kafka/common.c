/*
 * What the producer and the consumer share: the librdkafka configuration
 * with weave's defaults, making and destroying handles off the loop, the
 * eventfd-signalled queues the pumps wait on, errno mapping and logging.
 */
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "kafka/kafka_internal.h"

/* -------------------------------------------------------------- memory */

static void out_of_memory(void)
{
    wv_error("kafka: out of memory");
    abort();
}

char *kafka_strdup(const char *s)
{
    if (!s)
        return NULL;
    char *copy = strdup(s);
    if (!copy)
        out_of_memory();
    return copy;
}

void *kafka_calloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        out_of_memory();
    return p;
}

/* -------------------------------------------------------------- errors */

int kafka_errno(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return -ETIMEDOUT;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return -EMSGSIZE;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        return -ENOENT;
    case RD_KAFKA_RESP_ERR__FATAL:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID:
        return -ENOTRECOVERABLE;
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        return -ECONNREFUSED;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
        return -ECONNRESET;
    case RD_KAFKA_RESP_ERR__RESOLVE:
        return -EHOSTUNREACH;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
        return -EACCES;
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
    case RD_KAFKA_RESP_ERR__STATE:
        return -ESTALE;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
        return -ESHUTDOWN;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
        return -EAGAIN;
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_INVALID_REQUEST:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR__INVALID_TYPE:
    case RD_KAFKA_RESP_ERR__CONFLICT:
        return -EINVAL;
    case RD_KAFKA_RESP_ERR_INVALID_MSG:
    case RD_KAFKA_RESP_ERR__BAD_MSG:
        return -EBADMSG;
    case RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED:
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
        return -ENOTSUP;
    default:
        return -EIO;
    }
}

int kafka_fail(rd_kafka_resp_err_t err, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return wv_fail(kafka_errno(err), "kafka: %s: %s", what, rd_kafka_err2str(err));
}

int kafka_fail_error(rd_kafka_error_t *error, const char *what)
{
    rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    int rc = wv_fail(kafka_errno(code), "kafka: %s: %s", what, rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return rc;
}

int kafka_on_shard(int shard, const char *what)
{
    int here = wv_shard_id();
    if (here < 0)
        return wv_fail(-EPERM, "kafka %s: outside the runtime", what);
    if (here != shard)
        return wv_fail(-EXDEV, "kafka %s: used from shard %d, it belongs to shard %d", what, here,
                       shard);
    return 0;
}

/* ----------------------------------------------------------- off the loop */

typedef struct blocking_job {
    wv_fn *fn;
    void *arg;
    int result;
    bool ran;
} blocking_job;

static int blocking_run(void *arg)
{
    blocking_job *j = arg;
    j->ran = true;
    j->result = j->fn(j->arg);
    return 0;
}

int kafka_blocking(wv_fn *fn, void *arg)
{
    blocking_job j = {.fn = fn, .arg = arg};
    wv_offload(blocking_run, &j);
    if (!j.ran) /* refused or dropped before it started: it never will */
        blocking_run(&j);
    return j.result;
}

/* -------------------------------------------------------------- queues */

int kafka_queue_watch(kafka_queue *kq, rd_kafka_queue_t *q)
{
    kq->q = q;
    kq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (kq->efd < 0) {
        int rc = -errno;
        rd_kafka_queue_destroy(q);
        kq->q = NULL;
        return wv_fail(rc, "kafka: cannot make an eventfd: %s", wv_strerror(rc));
    }
    static const uint64_t one = 1; /* an eventfd takes 8-byte writes */
    rd_kafka_queue_io_event_enable(q, kq->efd, &one, sizeof one);
    return 0;
}

int kafka_queue_wait(kafka_queue *kq, int64_t at)
{
    uint64_t n;
    /* a signal that came while the queue was being drained: look again */
    if (read(kq->efd, &n, sizeof n) == (ssize_t)sizeof n)
        return 0;
    /* the counter is zero now, so anything librdkafka enqueues from here
     * on writes it again: only readiness newer than this read counts */
    int rc = wv_fd_wait(kq->efd, WV_IN | WV_FRESH, at);
    return rc > 0 ? 0 : rc;
}

void kafka_queue_unwatch(kafka_queue *kq)
{
    if (kq->q) {
        rd_kafka_queue_io_event_enable(kq->q, -1, NULL, 0);
        rd_kafka_queue_destroy(kq->q);
        kq->q = NULL;
    }
    if (kq->efd >= 0) {
        wv_close(kq->efd);
        kq->efd = -1;
    }
}

int kafka_pump_start(kafka_queue *kq, rd_kafka_queue_t *q, wv_fn *pump, void *arg, const char *name,
                     wv_group **group)
{
    int rc = kafka_queue_watch(kq, q);
    if (rc < 0)
        return rc;
    if (!(*group = wv_group_new()))
        return -ENOMEM;
    wv_spawn_opts so = {.name = name};
    if ((rc = wv_group_spawn(*group, pump, arg, &so)) < 0)
        return wv_fail(rc, "kafka: cannot start the %s fiber", name);
    return 0;
}

/* ------------------------------------------------------- configuration */

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK)
        return wv_fail(-EINVAL, "kafka: %s=%s: %s", name, value, err);
    return 0;
}

static bool conf_is(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char got[64];
    size_t n = sizeof got;
    return rd_kafka_conf_get(conf, name, got, &n) == RD_KAFKA_CONF_OK && strcmp(got, value) == 0;
}

/* name, value, ..., NULL */
static int conf_set_pairs(rd_kafka_conf_t *conf, const char *const *pairs)
{
    for (int i = 0; pairs && pairs[i]; i += 2) {
        if (!pairs[i + 1])
            return wv_fail(-EINVAL, "kafka: property %s has no value", pairs[i]);
        int rc = conf_set(conf, pairs[i], pairs[i + 1]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const char *const producer_defaults[] = {"enable.idempotence", "true", "acks", "all", NULL};
static const char *const consumer_defaults[] = {"enable.auto.offset.store", "false",
                                                "enable.auto.commit", "true", NULL};

int kafka_conf_new(const kafka_settings *s, rd_kafka_conf_t **out)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf)
        return -ENOMEM;
    const char *brokers = s->brokers ? s->brokers : getenv("KAFKA_BROKERS");
    if (!brokers || !*brokers)
        brokers = "localhost:9092";
    const char *const common[] = {"bootstrap.servers", brokers, "client.id",
                                  s->client_id ? s->client_id : "weave", NULL};
    const char *const group[] = {"group.id", s->group_id, NULL};
    int rc = conf_set_pairs(conf, common);
    if (rc == 0)
        rc = conf_set_pairs(conf, s->consumer ? consumer_defaults : producer_defaults);
    if (rc == 0 && s->consumer)
        rc = conf_set_pairs(conf, group);
    if (rc == 0)
        rc = conf_set_pairs(conf, s->config);
    if (rc == 0 && s->consumer && !conf_is(conf, "enable.auto.offset.store", "false"))
        rc = wv_fail(-EINVAL, "kafka: enable.auto.offset.store must stay false: acks store "
                              "offsets (wv_kafka_ack)");
    /* log lines wait in a queue for the pump instead of being printed by
     * librdkafka's threads */
    if (rc == 0)
        rc = conf_set(conf, "log.queue", "true");
    if (rc < 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_events(conf, s->events);
    *out = conf;
    return 0;
}

typedef struct handle_job {
    bool consumer;
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    char err[512];
} handle_job;

static int handle_new_job(void *arg)
{
    handle_job *j = arg;
    j->rk = rd_kafka_new(j->consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, j->conf, j->err,
                         sizeof j->err);
    return 0;
}

int kafka_handle_new(bool consumer, rd_kafka_conf_t *conf, rd_kafka_t **out)
{
    handle_job j = {.consumer = consumer, .conf = conf};
    kafka_blocking(handle_new_job, &j);
    if (!j.rk) {
        rd_kafka_conf_destroy(conf); /* still ours when rd_kafka_new fails */
        return wv_fail(-EINVAL, "kafka: cannot create the %s: %s",
                       consumer ? "consumer" : "producer", j.err);
    }
    rd_kafka_set_log_queue(j.rk, NULL); /* the main queue */
    *out = j.rk;
    return 0;
}

typedef struct destroy_job {
    rd_kafka_t *rk;
    int flags;
} destroy_job;

static int handle_destroy_job(void *arg)
{
    destroy_job *j = arg;
    rd_kafka_destroy_flags(j->rk, j->flags);
    return 0;
}

void kafka_handle_destroy(rd_kafka_t *rk, int flags)
{
    destroy_job j = {.rk = rk, .flags = flags};
    kafka_blocking(handle_destroy_job, &j);
}

static void *detached_destroy(void *arg)
{
    destroy_job *j = arg;
    rd_kafka_destroy_flags(j->rk, j->flags);
    free(j);
    return NULL;
}

void kafka_handle_destroy_detached(rd_kafka_t *rk, int flags)
{
    destroy_job *j = malloc(sizeof *j);
    pthread_attr_t attr;
    pthread_t t;
    if (j && pthread_attr_init(&attr) == 0) {
        *j = (destroy_job){.rk = rk, .flags = flags};
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, detached_destroy, j);
        pthread_attr_destroy(&attr);
        if (rc == 0)
            return;
    }
    free(j);
    kafka_handle_destroy(rk, flags); /* no thread to spare: wait for it here */
}

/* ------------------------------------------------------------- logging */

void kafka_log_event(const char *who, rd_kafka_event_t *ev)
{
    const char *facility = "", *text = "";
    int level = 6;
    if (rd_kafka_event_log(ev, &facility, &text, &level) != 0)
        return;
    /* syslog levels: 0-3 errors, 4 warnings, 5-6 notices and info, 7 debug.
     * librdkafka reports what it recovers from (a broker going away) as an
     * error; the client's callers see what matters as errno values */
    wv_log_level l = level <= 4 ? WV_LOG_WARN : level <= 6 ? WV_LOG_INFO : WV_LOG_DEBUG;
    wv_log(l, "kafka %s: %s: %s", who, facility, text);
}
