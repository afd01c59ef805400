/*
 * §13.10 event streams: "Data streaming systems like Apache Kafka and AWS
 * Kinesis are used for real-time data processing." A service puts events
 * on a stream and a background reader takes them off it, in order, and
 * counts them:
 *
 *   --events-stream / KINESIS_STREAM   a Kinesis stream (weave's client,
 *                                      include/weave/kinesis.h; endpoint
 *                                      from KINESIS_ENDPOINT, credentials
 *                                      from AWS_*), made with one shard
 *                                      at start if it does not exist;
 *                                      empty (the default): the app's
 *                                      in-process bus, topic "events"
 *
 *   POST /events   a JSON object, or an array of 1 to 500 of them: each is
 *                  an event, put as one record (PutRecords: batched, the
 *                  records the service throttles sent again) with its
 *                  "key" member as partition key, else its "type", else
 *                  "events". 202 {"source", "accepted", "records":
 *                  [{"shard", "sequence"}]} (EventsAccepted; sequences on
 *                  Kinesis only). Declared as FastAPI's
 *                      Event | conlist(Event, min_length=1, max_length=500)
 *                  where an Event may carry anything, and its "key" and
 *                  "type", when given, are strings of at most 256
 *                  characters (Kinesis's partition keys): anything else
 *                  is FastAPI's 422 with every error at once, located
 *                  ["body", "key"] for one event and ["body", 3, "key"]
 *                  in an array (not pydantic's union locations: the
 *                  body is one or the other by its JSON type)
 *   GET /events    {"source", "read", "last": [the last 20 events read,
 *                  newest first: {"event", "key", "sequence", "shard",
 *                  "lag_ms"}]}
 *
 * The reader is one fiber per Kinesis shard (on the first shard of the
 * service), from the moment the service started (AT_TIMESTAMP), with the
 * iterator carried from read to read; on the bus, one subscriber in group
 * "events-reader". Each event read counts in events_read_total at
 * /metrics, each event put in events_put_total.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <weave/bus.h>
#include <weave/json.h>
#include <weave/kinesis.h>
#include <weave/metrics.h>
#include <weave/schema.h>

#include "chapter13.h"

#define TOPIC "events"
#define GROUP "events-reader"

enum { MAX_EVENTS = 500, LAST = 20, EVENT_MAX = 2048, KEY_MAX = 256, MAX_READERS = 64 };

typedef struct seen {
    char event[EVENT_MAX + 1];
    char key[KEY_MAX + 1];
    char sequence[WV_KINESIS_SEQUENCE_SIZE];
    char shard[WV_KINESIS_SHARD_ID_SIZE];
    double lag_ms;
} seen;

static struct {
    const char *stream; /* NULL: the bus */
    wv_kinesis *k;
    int64_t started_ms; /* Unix ms: where the readers begin */
    wv_group *readers;
    wv_bus_sub *sub; /* the bus's reader */
    char source[256];
    wv_series *put_total, *read_total;
    pthread_mutex_t mu; /* the readers write, every shard's handlers read */
    seen last[LAST];
    uint64_t nread;
} ev = {.mu = PTHREAD_MUTEX_INITIALIZER};

static wv_app *the_app;

/* Unix time in milliseconds (Kinesis's timestamps) */
static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void s13_10_events_options(wv_app *app)
{
    wv_app_option(app, "events-stream", "KINESIS_STREAM", WV_OPT_STRING, NULL,
                  "the Kinesis stream of POST /events (KINESIS_ENDPOINT, AWS_*); "
                  "none: the in-process bus");
}

/* --------------------------------------------------------- the log */

static void note_read(const void *data, size_t n, const char *key, size_t key_n,
                      const char *sequence, const char *shard, double lag_ms)
{
    pthread_mutex_lock(&ev.mu);
    seen *s = &ev.last[ev.nread % LAST];
    ev.nread++;
    size_t m = n < EVENT_MAX ? n : EVENT_MAX;
    memcpy(s->event, data, m);
    s->event[m] = '\0';
    m = key_n < KEY_MAX ? key_n : KEY_MAX;
    memcpy(s->key, key, m);
    s->key[m] = '\0';
    snprintf(s->sequence, sizeof s->sequence, "%s", sequence);
    snprintf(s->shard, sizeof s->shard, "%s", shard);
    s->lag_ms = lag_ms;
    pthread_mutex_unlock(&ev.mu);
    wv_counter_inc(ev.read_total);
}

/* -------------------------------------------------------- the readers */

static int read_shard(void *arg)
{
    char *shard = arg;
    wv_kinesis_reader *r;
    wv_kinesis_reader_opts o = {
        .start = {.from = WV_KINESIS_AT_TIMESTAMP, .timestamp_ms = ev.started_ms},
        .poll_ms = 250,
    };
    int rc = wv_kinesis_reader_open(ev.k, ev.stream, shard, &o, &r);
    wv_kinesis_batch b = {0};
    while (rc >= 0 && (rc = wv_kinesis_reader_next(r, &b)) > 0) {
        int64_t now_ms = unix_ms();
        for (size_t i = 0; i < b.n; i++) {
            const wv_kinesis_record *rec = &b.records[i];
            note_read(rec->data, rec->len, rec->partition_key, strlen(rec->partition_key),
                      rec->sequence_number, shard, (double)(now_ms - rec->arrival_ms));
        }
    }
    if (rc < 0 && rc != -ECANCELED)
        wv_warn("events: reading %s of %s stopped: %s", shard, ev.stream, wv_errmsg());
    wv_kinesis_batch_free(&b);
    wv_kinesis_reader_free(r);
    free(shard);
    return 0;
}

/* The key of a bus message: stored before the event, "key\n" */
static int read_bus(void *arg)
{
    (void)arg;
    wv_bus_msg m;
    int rc;
    while ((rc = wv_bus_recv(ev.sub, &m, WV_NEVER)) == 0) {
        const char *nl = memchr(m.body.p, '\n', m.body.n);
        size_t key_n = nl ? (size_t)(nl - m.body.p) : 0;
        const char *data = nl ? nl + 1 : m.body.p;
        char seq[32];
        snprintf(seq, sizeof seq, "%llu", (unsigned long long)m.id);
        note_read(data, m.body.n - (size_t)(data - m.body.p), m.body.p, key_n, seq, "bus",
                  (double)(wv_now() - m.published) / 1e6);
        wv_bus_ack(ev.sub, &m);
    }
    wv_bus_unsubscribe(ev.sub);
    ev.sub = NULL;
    return 0;
}

/* --------------------------------------------------------- writing */

/* A parsed value written back as JSON. */
static void write_val(wv_json *j, const wv_json_val *v)
{
    const char *s;
    size_t n;
    int64_t i;
    double d;
    bool b;
    switch (wv_json_type_of(v)) {
    case WV_JSON_OBJECT:
        wv_json_object_begin(j);
        for (size_t k = 0; k < (size_t)wv_json_object_len(v); k++) {
            const wv_json_val *m = wv_json_object_at(v, k, &s, &n);
            wv_json_keyn(j, s, n);
            write_val(j, m);
        }
        wv_json_object_end(j);
        break;
    case WV_JSON_ARRAY:
        wv_json_array_begin(j);
        for (size_t k = 0; k < (size_t)wv_json_array_len(v); k++)
            write_val(j, wv_json_array_at(v, k));
        wv_json_array_end(j);
        break;
    case WV_JSON_STRING:
        wv_json_as_string(v, &s, &n);
        wv_json_stringn(j, s, n);
        break;
    case WV_JSON_NUMBER:
        if (wv_json_as_i64(v, &i) == 0)
            wv_json_int(j, i);
        else if (wv_json_as_double(v, &d) == 0)
            wv_json_double(j, d);
        break;
    case WV_JSON_BOOL:
        wv_json_as_bool(v, &b);
        wv_json_bool(j, b);
        break;
    default:
        wv_json_null(j);
    }
}

/* One event: anything, with an optional "key" and "type" (pydantic's
 *     class Event(BaseModel, extra="allow"):
 *         key: str | None = Field(None, max_length=256)
 *         type: str | None = Field(None, max_length=256)) */
typedef struct event_in {
    char key[4 * KEY_MAX + 1];
    char type[4 * KEY_MAX + 1];
    bool has_key, has_type;
} event_in;

static const wv_db_field event_in_fields[] = {
    WV_FIELD_TEXT(event_in, key, .max_chars = KEY_MAX, .flags = WV_DB_NULLABLE,
                  .default_json = "null", WV_PRESENT(event_in, has_key),
                  .description = "The partition key: events with one key stay in order",
                  .example = "\"user-1\""),
    WV_FIELD_TEXT(event_in, type, .max_chars = KEY_MAX, .flags = WV_DB_NULLABLE,
                  .default_json = "null", WV_PRESENT(event_in, has_type),
                  .description = "The event's type: its partition key when it has no key",
                  .example = "\"click\""),
};
static const wv_db_model event_model = {
    .size = sizeof(event_in),
    .fields = event_in_fields,
    .nfields = 2,
    .name = "Event",
    .description = "An event: any JSON object; its other members are its data"};

/* A body that is an array: decoded as the member "body" of a wrapper with
 * no root of its own, so that errors read ["body", 3, "key"] */
typedef struct event_list {
    event_in body[MAX_EVENTS];
    size_t n;
} event_list;

static const wv_db_field event_list_fields[] = {
    WV_FIELD_ARRAY(event_list, body, n, &(const wv_db_field)WV_ITEM_OBJECT(event_in, &event_model),
                   .min_items = 1, .max_items = MAX_EVENTS),
};
static const wv_db_model event_list_model =
    WV_SCHEMA_MODEL("EventList", event_list, event_list_fields);

/* The answer: where each record went (Kinesis), or none (the bus) */
typedef struct events_accepted {
    char source[256];
    int64_t accepted;
    wv_kinesis_put_result records[MAX_EVENTS];
    size_t nrecords;
} events_accepted;

static const wv_db_field record_fields[] = {
    {.name = "shard",
     .type = WV_DB_TEXT,
     .offset = offsetof(wv_kinesis_put_result, shard_id),
     .size = WV_KINESIS_SHARD_ID_SIZE,
     .description = "The Kinesis shard that stored it",
     .example = "\"shardId-000000000000\""},
    {.name = "sequence",
     .type = WV_DB_TEXT,
     .offset = offsetof(wv_kinesis_put_result, sequence_number),
     .size = WV_KINESIS_SEQUENCE_SIZE,
     .description = "Its sequence number in the shard",
     .example = "\"49590338271490256608559692538361571095921575989136588898\""},
};
static const wv_db_model record_model = {.size = sizeof(wv_kinesis_put_result),
                                         .fields = record_fields,
                                         .nfields = 2,
                                         .name = "EventRecord",
                                         .description = "Where an event was put"};

static const wv_db_field events_accepted_fields[] = {
    WV_FIELD_TEXT(events_accepted, source, .description = "The stream, or the bus's topic",
                  .example = "\"bus topic events\""),
    WV_FIELD_INT(events_accepted, accepted, .description = "The events put", .example = "1"),
    WV_FIELD_ARRAY(events_accepted, records, nrecords,
                   &(const wv_db_field)WV_ITEM_OBJECT(wv_kinesis_put_result, &record_model),
                   .description = "Where each event went, in order (Kinesis only)"),
};
static const wv_db_model events_accepted_model =
    WV_SCHEMA_MODEL("EventsAccepted", events_accepted, events_accepted_fields);

typedef struct batch {
    event_list in;
    events_accepted out;
    wv_kinesis_entry e[MAX_EVENTS];
    wv_buf text[MAX_EVENTS];
    const wv_json_val *event[MAX_EVENTS];
    size_t n;
} batch;

static void batch_free(batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        wv_buf_free(&b->text[i]);
    free(b);
}

/* The event's partition key: "key", else "type", else "events". */
static const char *key_of(const event_in *e)
{
    if (e->has_key && e->key[0])
        return e->key;
    if (e->has_type && e->type[0])
        return e->type;
    return "events";
}

/* The body into b->in and b->event[] (in *doc, which the caller frees):
 * 0, -EINVAL / -EBADMSG with the errors in errs, or an error. The body is
 * parsed inside {"body": ...}: when that fails, the body alone is what is
 * not JSON, and decoding it says where (json_invalid). */
static int read_events(wv_req *req, batch *b, wv_json_doc **doc, wv_schema_errors *errs)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    *doc = NULL;
    if (rc < 0)
        return rc;
    if (body.n == 0)
        return wv_schema_decode_val(&event_model, NULL, &b->in.body[0], errs); /* missing */
    wv_buf w = {0};
    rc = wv_buf_printf(&w, "{\"body\":%.*s}", (int)body.n, body.p);
    if (rc == 0 && body.n <= WV_SCHEMA_MAX_BYTES)
        rc = wv_json_parse_with(w.p, w.n,
                                &(wv_json_parse_opts){.max_depth = WV_SCHEMA_MAX_DEPTH + 1}, doc);
    else if (rc == 0)
        rc = -EMSGSIZE;
    wv_buf_free(&w);
    const wv_json_val *root = *doc ? wv_json_doc_root(*doc) : NULL;
    if (rc < 0 || wv_json_object_len(root) != 1) {
        rc = wv_schema_decode(&event_model, body.p, body.n, &b->in.body[0], errs);
        return rc == 0 ? -ENOMEM : rc; /* valid alone, not wrapped: only memory ran out */
    }
    const wv_json_val *v = wv_json_get(root, "body");
    if (wv_json_type_of(v) == WV_JSON_ARRAY) {
        errs->root = "";
        rc = wv_schema_decode_val(&event_list_model, root, &b->in, errs);
        errs->root = NULL;
        for (size_t i = 0; rc == 0 && i < b->in.n; i++)
            b->event[i] = wv_json_array_at(v, i);
    } else {
        rc = wv_schema_decode_val(&event_model, v, &b->in.body[0], errs);
        b->in.n = 1;
        b->event[0] = v;
    }
    return rc;
}

/* POST /events */
static int put_events(wv_req *req, wv_res *res)
{
    batch *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    wv_json_doc *doc;
    wv_schema_errors errs = {0};
    int rc = input_end(res, read_events(req, b, &doc, &errs), &errs);
    if (rc != 0) {
        wv_json_doc_free(doc);
        batch_free(b);
        return rc < 0 ? rc : 0;
    }
    for (size_t i = 0; i < b->in.n; i++, b->n++) {
        wv_json j;
        wv_json_init(&j, &b->text[i]);
        write_val(&j, b->event[i]);
        b->e[i] = (wv_kinesis_entry){
            .partition_key = key_of(&b->in.body[i]), .data = b->text[i].p, .len = b->text[i].n};
        if (wv_json_finish(&j) < 0)
            rc = -ENOMEM;
    }
    wv_json_doc_free(doc);
    if (rc == 0 && ev.stream) {
        rc = wv_kinesis_put_records(ev.k, ev.stream, b->e, b->n, b->out.records);
        b->out.nrecords = b->n;
    } else if (rc == 0) {
        wv_bus *bus = wv_req_client(req, "bus");
        wv_buf msg = {0};
        for (size_t i = 0; rc >= 0 && i < b->n; i++) {
            msg.n = 0;
            wv_buf_printf(&msg, "%s\n%.*s", b->e[i].partition_key, (int)b->e[i].len,
                          (const char *)b->e[i].data);
            rc = wv_bus_publish(bus, TOPIC, (wv_str){msg.p, msg.n});
        }
        wv_buf_free(&msg);
        if (rc > 0)
            rc = 0;
    }
    if (rc < 0) {
        batch_free(b);
        /* the store refused an event: a record over its size, say */
        return rc == -EINVAL
                   ? unprocessable(res, "value_error", wv_errmsg(), "[\"body\"]", NULL, NULL)
                   : rc;
    }
    wv_counter_add(ev.put_total, (double)b->n);
    snprintf(b->out.source, sizeof b->out.source, "%s", ev.source);
    b->out.accepted = (int64_t)b->n;
    wv_json *j = wv_res_json_writer(res);
    rc = wv_schema_encode(&events_accepted_model, &b->out, j);
    batch_free(b);
    return rc < 0 ? rc : wv_res_json_send(res, 202);
}

/* GET /events */
static int list_events(wv_req *req, wv_res *res)
{
    seen *last = wv_req_alloc(req, LAST * sizeof *last);
    if (!last)
        return -ENOMEM;
    pthread_mutex_lock(&ev.mu);
    uint64_t total = ev.nread;
    size_t n = total < LAST ? (size_t)total : LAST;
    for (size_t i = 0; i < n; i++) /* newest first */
        last[i] = ev.last[(total - 1 - i) % LAST];
    pthread_mutex_unlock(&ev.mu);
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "source");
    wv_json_string(j, ev.source);
    wv_json_key(j, "read");
    wv_json_int(j, (int64_t)total);
    wv_json_key(j, "last");
    wv_json_array_begin(j);
    for (size_t i = 0; i < n; i++) {
        wv_json_object_begin(j);
        wv_json_key(j, "event");
        wv_json_raw(j, last[i].event, strlen(last[i].event));
        wv_json_key(j, "key");
        wv_json_string(j, last[i].key);
        wv_json_key(j, "sequence");
        wv_json_string(j, last[i].sequence);
        wv_json_key(j, "shard");
        wv_json_string(j, last[i].shard);
        wv_json_key(j, "lag_ms");
        wv_json_double(j, last[i].lag_ms);
        wv_json_object_end(j);
    }
    wv_json_array_end(j);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

/* ----------------------------------------------------------- setup */

static int open_kinesis(void)
{
    int rc = wv_kinesis_new(NULL, &ev.k);
    if (rc < 0)
        return wv_fail(rc, "--events-stream %s: %s", ev.stream, wv_errmsg());
    wv_kinesis_stream_info info;
    rc = wv_kinesis_describe_stream(ev.k, ev.stream, &info);
    if (rc == -ENOENT) {
        rc = wv_kinesis_create_stream(ev.k, ev.stream, 1);
        if (rc == 0 || rc == -EEXIST)
            rc = 0;
    }
    if (rc == 0)
        rc = wv_kinesis_wait_active(ev.k, ev.stream, 30000);
    wv_kinesis_shard_list shards = {0};
    if (rc == 0)
        rc = wv_kinesis_list_shards(ev.k, ev.stream, 0, &shards);
    for (size_t i = 0; rc == 0 && i < shards.n && i < MAX_READERS; i++) {
        if (shards.shards[i].ending_sequence_number)
            continue; /* closed: nothing new comes there */
        char *id = strdup(shards.shards[i].shard_id);
        rc = id ? wv_group_spawn(ev.readers, read_shard, id,
                                 &(wv_spawn_opts){.name = "events-reader"})
                : -ENOMEM;
        if (rc < 0)
            free(id);
    }
    wv_kinesis_shard_list_free(&shards);
    if (rc < 0)
        return wv_fail(rc, "--events-stream %s: %s", ev.stream, wv_errmsg());
    return 0;
}

static int start_events(void *arg)
{
    (void)arg;
    ev.started_ms = unix_ms() - 1000; /* a second early: clocks are approximate */
    ev.readers = wv_group_new();
    if (!ev.readers)
        return -ENOMEM;
    if (ev.stream)
        return open_kinesis();
    wv_bus *bus = wv_app_client_get(the_app, "bus");
    int rc = bus ? wv_bus_subscribe(bus, TOPIC, GROUP, &ev.sub) : -ENODEV;
    if (rc == 0)
        rc = wv_group_spawn(ev.readers, read_bus, NULL, &(wv_spawn_opts){.name = "events-reader"});
    return rc;
}

static int stop_events(void *arg)
{
    (void)arg;
    if (ev.sub) {
        wv_bus_sub_stop(ev.sub);   /* read_bus unsubscribes on its way out: */
        wv_group_join(ev.readers); /* let it (a Kafka group's goodbye commits) */
    }
    wv_group_free(ev.readers); /* cancels the Kinesis readers, waits for all */
    ev.readers = NULL;
    wv_kinesis_free(ev.k);
    ev.k = NULL;
    return 0;
}

static void register_metrics(void)
{
    wv_metric *m;
    if (wv_metric_register(NULL,
                           &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                             .name = "events_put_total",
                                             .help = "Events POST /events put on the stream."},
                           &m) == 0)
        wv_metric_series(m, NULL, &ev.put_total);
    if (wv_metric_register(NULL,
                           &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                             .name = "events_read_total",
                                             .help = "Events the background reader read back."},
                           &m) == 0)
        wv_metric_series(m, NULL, &ev.read_total);
}

void s13_10_events(wv_app *app)
{
    the_app = app;
    ev.stream = wv_app_str(app, "events-stream");
    if (ev.stream && !ev.stream[0])
        ev.stream = NULL;
    if (ev.stream)
        snprintf(ev.source, sizeof ev.source, "kinesis stream %s", ev.stream);
    else
        snprintf(ev.source, sizeof ev.source, "bus topic %s", TOPIC);
    wv_app_backend(app, "events", ev.source);
    register_metrics();
    wv_app_on_start(app, start_events, NULL);
    wv_app_on_stop(app, stop_events, NULL);
    wv_post(app, "/events", put_events);
    wv_get(app, "/events", list_events);
}
