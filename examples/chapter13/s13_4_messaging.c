/*
 * §13.4 messaging: aio-pika's publish to a durable "test_queue" and its
 * consumer (13.4.1), aiokafka's send_and_wait and a consumer in group
 * "my-group" (13.4.2),
 *
 *     await channel.default_exchange.publish(aio_pika.Message(body=message.encode()),
 *                                            routing_key=queue.name)
 *     ...
 *     async for message in queue_iter:
 *         async with message.process():          # acked once the block is done
 *             print(f"Received message: {message.body.decode()}")
 *             if message.body.decode() == "exit":
 *                 break
 *
 * here on weave's bus (include/weave/bus.h), the app's "bus" client:
 *
 *   --bus-url / BUS_URL          the bus itself: memory://, amqp://...,
 *                                kafka://...; by default the first of:
 *   --amqp-url / AMQP_URL        RabbitMQ (13.4.1): amqp://user:pass@host:port/vhost
 *   --kafka-brokers / KAFKA_BROKERS
 *                                Kafka (13.4.2): host:port,host:port
 *   memory://                    the in-process bus: no broker needed
 *
 * Each shard runs a consumer of topic "test_queue" in group "chapter13"
 * (on RabbitMQ: the durable queue "test_queue.chapter13" bound to the
 * fanout exchange "test_queue"); on Kafka, the book's topic "test_topic"
 * in its group "my-group". A consumer takes a message, does the work
 * (keeps it in the log below), then acks it, so a message whose consumer
 * stops midway is delivered again. The book's "exit" message stops the
 * consumers: what is published meanwhile waits in the group, and
 * POST /messages/consumer starts them again. /readyz checks the broker.
 *
 *   POST /messages            the body (text, 1 byte to 64 KiB) is the
 *                             message, raw (FastAPI's message: bytes =
 *                             Body(min_length=1, max_length=65536)):
 *                             202 {"topic", "groups", "bytes"}
 *                             (MessageSent); an empty body is 422
 *                             "missing", a longer one "bytes_too_long"
 *   GET /messages             {"consumer": "running"|"stopped", "pending",
 *                             "processed", "messages": [the last 50, newest
 *                             first: {"seq", "id", "text", "shard",
 *                             "deliveries", "latency_ms"}]}
 *   GET /messages/stream      the same messages as Server-Sent Events
 *                             ("message" events, the JSON of one entry) as
 *                             they are processed, after the last 50
 *   POST /messages/consumer   start the consumers again after an "exit"
 *
 * /metrics counts them: messages_published_total, messages_processed_total.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/bus.h>
#include <weave/json.h>
#include <weave/metrics.h>

#include "chapter13.h"

/* the book's names: RabbitMQ's queue (and the in-process bus), Kafka's topic and group */
static const char *topic = "test_queue", *group = "chapter13";

enum { LOG_SIZE = 50, TEXT_MAX = 1024, MESSAGE_MAX = 64 * 1024, MAX_SHARDS = 256 };

/* ------------------------------------------------ what was processed */

typedef struct logged {
    uint64_t seq, id;
    char text[TEXT_MAX + 1];
    int shard, deliveries;
    double latency_ms;
} logged;

static struct {
    pthread_mutex_t mu; /* consumers on every shard write, handlers read */
    logged ring[LOG_SIZE];
    uint64_t next_seq; /* seq of the next entry; entries seq - LOG_SIZE.. are kept */
} msglog = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Per shard: its consumer, and an event SSE streams wait on. */
typedef struct shard_side {
    wv_bus_sub *sub;
    bool running;     /* read by every shard for GET /messages: atomic */
    bool stopping;    /* told to stop, not yet stopped */
    wv_event stopped; /* set when the consumer fiber has ended */
    wv_event changed; /* set when the log grew; streams clear it */
} shard_side;

static shard_side sides[MAX_SHARDS];
static wv_app *the_app;

/* messages_published_total and messages_processed_total at /metrics */
static wv_series *published_total, *processed_total;

static void register_metrics(void)
{
    wv_metric *m;
    if (wv_metric_register(NULL,
                           &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                             .name = "messages_published_total",
                                             .help = "Messages POST /messages published."},
                           &m) == 0)
        wv_metric_series(m, NULL, &published_total);
    if (wv_metric_register(NULL,
                           &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                             .name = "messages_processed_total",
                                             .help = "Messages the consumers processed and acked."},
                           &m) == 0)
        wv_metric_series(m, NULL, &processed_total);
}

static int notify_shard(void *arg)
{
    (void)arg;
    wv_event_set(&sides[wv_shard_id()].changed);
    return 0;
}

static void record(const wv_bus_msg *m)
{
    pthread_mutex_lock(&msglog.mu);
    logged *l = &msglog.ring[msglog.next_seq % LOG_SIZE];
    l->seq = msglog.next_seq++;
    l->id = m->id;
    size_t n = m->body.n < TEXT_MAX ? m->body.n : TEXT_MAX;
    memcpy(l->text, m->body.p, n);
    l->text[n] = '\0';
    l->shard = wv_shard_id();
    l->deliveries = m->deliveries;
    l->latency_ms = (double)(wv_now() - m->published) / 1e6;
    pthread_mutex_unlock(&msglog.mu);
    for (int s = 0; s < wv_shard_count(); s++)
        wv_shard_post(s, notify_shard, NULL);
}

/* Copy out the entries from seq `from` on (at most LOG_SIZE), oldest first. */
static size_t read_log(uint64_t from, logged *out, uint64_t *next)
{
    pthread_mutex_lock(&msglog.mu);
    uint64_t end = msglog.next_seq;
    uint64_t start = end > LOG_SIZE ? end - LOG_SIZE : 0;
    if (from > start)
        start = from;
    size_t n = 0;
    for (uint64_t s = start; s < end; s++)
        out[n++] = msglog.ring[s % LOG_SIZE];
    *next = end;
    pthread_mutex_unlock(&msglog.mu);
    return n;
}

/* ------------------------------------------------------- consumers */

static void stop_all(void);

/* One shard's consumer: async for message in queue_iter: async with
 * message.process(): ... On "exit" it closes its own subscription first,
 * then stops the others: on Kafka the close commits the ack of "exit",
 * which a group busy with the others' leaving could refuse (it would then
 * come again, and stop the restarted consumers). */
static int consume(void *arg)
{
    (void)arg;
    shard_side *me = &sides[wv_shard_id()];
    wv_bus_msg m;
    bool exit_seen = false;
    while (wv_bus_recv(me->sub, &m, WV_NEVER) == 0) {
        record(&m); /* the work */
        exit_seen = m.body.n == 4 && !memcmp(m.body.p, "exit", 4);
        if (wv_bus_ack(me->sub, &m) == 0)
            wv_counter_inc(processed_total);
        if (exit_seen)
            break;
    }
    wv_bus_unsubscribe(me->sub);
    me->sub = NULL;
    me->stopping = false;
    __atomic_store_n(&me->running, false, __ATOMIC_RELAXED);
    wv_event_set(&me->stopped);
    if (exit_seen)
        stop_all();
    return 0;
}

static int start_here(void *arg)
{
    (void)arg;
    shard_side *me = &sides[wv_shard_id()];
    if (me->running && me->stopping)
        wv_event_wait_shielded(&me->stopped); /* an "exit" is being taken: let it end */
    if (me->running)
        return 0;
    wv_bus *bus = wv_app_client_get(the_app, "bus");
    if (!bus)
        return wv_fail(-ENODEV, "the bus is not open on shard %d", wv_shard_id());
    int rc = wv_bus_subscribe(bus, topic, group, &me->sub);
    if (rc < 0)
        return rc;
    __atomic_store_n(&me->running, true, __ATOMIC_RELAXED);
    wv_event_clear(&me->stopped);
    rc = wv_spawn(consume, NULL, &(wv_spawn_opts){.name = "consumer"});
    if (rc < 0) {
        wv_bus_unsubscribe(me->sub);
        me->sub = NULL;
        __atomic_store_n(&me->running, false, __ATOMIC_RELAXED);
    }
    return rc;
}

/* Stop this shard's consumer and wait until it has closed its
 * subscription (what it had not acked is back in the group). */
static int stop_here(void *arg)
{
    (void)arg;
    shard_side *me = &sides[wv_shard_id()];
    if (!me->running)
        return 0;
    me->stopping = true;
    wv_bus_sub_stop(me->sub);
    wv_event_wait_shielded(&me->stopped);
    return 0;
}

static int stop_here_async(void *arg)
{
    (void)arg;
    shard_side *me = &sides[wv_shard_id()];
    if (me->running && me->sub) {
        me->stopping = true;
        wv_bus_sub_stop(me->sub);
    }
    return 0;
}

/* "exit": every shard's consumer stops (not waited for: one of them is
 * the caller). */
static void stop_all(void)
{
    for (int s = 0; s < wv_shard_count(); s++)
        wv_shard_post(s, stop_here_async, NULL);
}

static bool any_running(void)
{
    for (int s = 0; s < wv_shard_count(); s++)
        if (__atomic_load_n(&sides[s].running, __ATOMIC_RELAXED))
            return true;
    return false;
}

static int start_consumers(void *arg)
{
    return wv_shard_each(start_here, arg);
}

static int stop_consumers(void *arg)
{
    return wv_shard_each(stop_here, arg);
}

/* ----------------------------------------------------------- routes */

/* The answer of POST /messages */
typedef struct message_sent {
    char topic[64];
    int64_t groups, bytes;
} message_sent;

static const wv_db_field message_sent_fields[] = {
    WV_FIELD_TEXT(message_sent, topic, .description = "The topic (queue) it was published on",
                  .example = "\"test_queue\""),
    WV_FIELD_INT(message_sent, groups, .description = "The consumer groups it went to",
                 .example = "1"),
    WV_FIELD_INT(message_sent, bytes, .description = "Its length in bytes", .example = "5"),
};
static const wv_db_model message_sent_model = {.size = sizeof(message_sent),
                                               .fields = message_sent_fields,
                                               .nfields = 3,
                                               .name = "MessageSent",
                                               .description = "A message published"};

/* POST /messages: channel.default_exchange.publish(Message(body), routing_key="test_queue") */
static int publish(wv_req *req, wv_res *res)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    /* a raw body: pydantic's words for bytes, which no declaration here reads */
    if (body.n == 0)
        return unprocessable(res, "missing", "Field required", "[\"body\"]", "null", NULL);
    if (body.n > MESSAGE_MAX)
        return unprocessable(res, "bytes_too_long", "Data should have at most 65536 bytes",
                             "[\"body\"]", NULL, "{\"max_length\":65536}");
    wv_bus *bus = wv_req_client(req, "bus");
    rc = wv_bus_publish(bus, topic, body);
    if (rc == -ENOBUFS)
        return wv_fail(-EAGAIN, "%s", wv_errmsg()); /* 429: the consumers are behind */
    if (rc < 0)
        return rc;
    wv_counter_inc(published_total);
    message_sent out = {.groups = rc, .bytes = (int64_t)body.n};
    snprintf(out.topic, sizeof out.topic, "%s", topic);
    wv_json *j = wv_res_json_writer(res);
    rc = wv_schema_encode(&message_sent_model, &out, j);
    return rc < 0 ? rc : wv_res_json_send(res, 202);
}

static void write_entry(wv_json *j, const logged *l)
{
    wv_json_object_begin(j);
    wv_json_key(j, "seq");
    wv_json_int(j, (int64_t)l->seq);
    wv_json_key(j, "id");
    wv_json_int(j, (int64_t)l->id);
    wv_json_key(j, "text");
    wv_json_string(j, l->text);
    wv_json_key(j, "shard");
    wv_json_int(j, l->shard);
    wv_json_key(j, "deliveries");
    wv_json_int(j, l->deliveries);
    wv_json_key(j, "latency_ms");
    wv_json_double(j, l->latency_ms);
    wv_json_object_end(j);
}

/* GET /messages */
static int list(wv_req *req, wv_res *res)
{
    logged *got = wv_req_alloc(req, LOG_SIZE * sizeof *got);
    if (!got)
        return -ENOMEM;
    uint64_t next;
    size_t n = read_log(0, got, &next);
    int64_t pending = wv_bus_backlog(wv_req_client(req, "bus"), topic, group);
    if (pending < 0 && pending != -ENOTSUP)
        pending = 0; /* no group before the first consumer subscribed */
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "consumer");
    wv_json_string(j, any_running() ? "running" : "stopped");
    wv_json_key(j, "pending");
    if (pending == -ENOTSUP)
        wv_json_null(j);
    else
        wv_json_int(j, pending);
    wv_json_key(j, "processed");
    wv_json_int(j, (int64_t)next);
    wv_json_key(j, "messages");
    wv_json_array_begin(j);
    for (size_t i = n; i-- > 0;)
        write_entry(j, &got[i]);
    wv_json_array_end(j);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

/* GET /messages/stream: each processed message as an SSE event */
static int stream(wv_req *req, wv_res *res)
{
    logged *got = wv_req_alloc(req, LOG_SIZE * sizeof *got); /* this stream's own */
    if (!got)
        return -ENOMEM;
    shard_side *me = &sides[wv_shard_id()];
    int rc = wv_res_sse_begin(res);
    uint64_t next = 0;
    int64_t quiet_since = wv_now();
    while (rc == 0 && !wv_stopping()) {
        wv_event_clear(&me->changed);
        size_t n = read_log(next, got, &next);
        for (size_t i = 0; i < n && rc == 0; i++) {
            wv_json j;
            wv_buf b = {0};
            wv_json_init(&j, &b);
            write_entry(&j, &got[i]);
            rc = wv_buf_append(&b, "", 1) == 0 ? wv_res_sse_send(res, "message", b.p) : -ENOMEM;
            wv_buf_free(&b);
            quiet_since = wv_now();
        }
        if (rc == 0 && wv_now() - quiet_since > 15 * INT64_C(1000000000)) {
            rc = wv_res_write(res, ": still here\n\n", 14); /* keeps proxies from timing out */
            quiet_since = wv_now();
        }
        /* a second at most: a stopping server is noticed in time */
        int64_t old = wv_deadline_set(wv_after_ms(1000));
        int w = wv_event_wait(&me->changed);
        wv_deadline_set(old);
        if (w == -ECANCELED)
            break;
    }
    return rc < 0 ? rc : wv_res_end(res);
}

/* POST /messages/consumer: start the consumers again after an "exit" */
static int restart(wv_req *req, wv_res *res)
{
    (void)req;
    int rc = wv_shard_each(start_here, NULL);
    if (rc < 0)
        return rc;
    return wv_res_json(res, 200, "{\"consumer\":\"running\"}");
}

/* ------------------------------------------------------------ setup */

static int bus_open(const char *url, void **handle)
{
    return wv_bus_open(url, NULL, (wv_bus **)handle);
}

static void bus_close(void *handle)
{
    wv_bus_close(handle);
}

static int bus_ping(void *handle)
{
    return wv_bus_ping(handle);
}

static const wv_client_type bus_client = {
    .kind = "bus", .open = bus_open, .close = bus_close, .ping = bus_ping};

void s13_4_messaging_options(wv_app *app)
{
    wv_app_option(app, "bus-url", "BUS_URL", WV_OPT_STRING, NULL,
                  "the message bus of POST /messages and the events: memory:// (in-process), "
                  "amqp://... or kafka://host:port[?librdkafka properties]; unset: AMQP_URL, "
                  "else KAFKA_BROKERS, else memory://");
    wv_app_option(app, "amqp-url", "AMQP_URL", WV_OPT_STRING, NULL,
                  "RabbitMQ for the bus (13.4.1): amqp://user:password@host:5672/vhost");
    wv_app_option(app, "kafka-brokers", "KAFKA_BROKERS", WV_OPT_STRING, NULL,
                  "Kafka for the bus (13.4.2, 13.10.1): host:port[,host:port...]");
}

void s13_4_messaging(wv_app *app)
{
    the_app = app;
    register_metrics();
    const char *url = wv_app_str(app, "bus-url"), *amqp = wv_app_str(app, "amqp-url"),
               *kafka = wv_app_str(app, "kafka-brokers");
    char kafka_url[1024];
    if (!url || !*url) {
        if (amqp && *amqp) {
            url = amqp;
        } else if (kafka && *kafka) {
            snprintf(kafka_url, sizeof kafka_url, "kafka://%s", kafka);
            url = kafka_url;
        } else {
            url = "memory://";
        }
    }
    if (!strncmp(url, "kafka://", 8)) {
        topic = "test_topic"; /* aiokafka's send_and_wait("test_topic", ...) */
        group = "my-group";
    }
    wv_app_client(app, "bus", url, &bus_client);
    wv_app_on_start(app, start_consumers, NULL);
    wv_app_on_stop(app, stop_consumers, NULL);
    wv_post(app, "/messages", publish);
    wv_get(app, "/messages", list);
    wv_get(app, "/messages/stream", stream);
    wv_post(app, "/messages/consumer", restart);
}
