/*
 * src/tasks/celery.h: Celery's wire format, sans-I/O and private (the
 * worker and producer on it are tasks.c, include/weave/tasks.h). Bytes in, fields out, and back;
 * nothing here touches a socket. What it reads and writes is what Celery 5.2 with kombu 5.2 put on
 * the wire (tests/unit/celery_fixtures/ holds captured messages; docs/tasks.md describes the
 * format):
 *
 *   - A task message, protocol 2: headers (lang, task, id, shadow, eta,
 *     expires, group, group_index, retries, timelimit, root_id, parent_id,
 *     argsrepr, kwargsrepr, origin, ignore_result), properties
 *     (correlation_id, reply_to, delivery_mode, priority, ...) and a JSON
 *     body [args, kwargs, {callbacks, errbacks, chain, chord}].
 *   - kombu's Redis envelope around it, the JSON text LPUSHed on the queue's
 *     list: {"body": base64(body), "content-encoding", "content-type",
 *     "headers", "properties": {..., "delivery_info": {"exchange",
 *     "routing_key"}, "body_encoding": "base64", "delivery_tag"}}.
 *   - The AMQP form of the same message (body, headers, properties apart).
 *   - Result meta as the Redis result backend stores it at
 *     celery-task-meta-<id>.
 *
 * Text is written as Python's json.dumps writes it (", " and ": " between
 * items, every non-ASCII character as \uXXXX), so an envelope encoded here
 * is byte for byte what kombu would have sent for the same fields.
 *
 * Decoding refuses, with -EBADMSG and wv_errmsg() saying what: text that
 * is not strict JSON, an envelope or body of the wrong shape, a field of
 * the wrong type, bad base64, a bad ISO 8601 date. A serializer other than
 * JSON (pickle, yaml, msgpack) or a body encoding other than base64 or
 * none is -ENOTSUP. Protocol 1 messages (the body a dict with "task", "id",
 * "args", "kwargs", ...: Celery 3 and task_protocol = 1) are DECODED into
 * the same struct, protocol = 1.
 *
 * Times are int64_t nanoseconds since the Unix epoch, UTC (not wv_now()'s
 * monotonic clock); CELERY_NO_TIME is "none" (JSON null). A date without
 * an offset is read as UTC, which is what Celery means by it with
 * enable_utc (its default).
 *
 * Errors are negative errno values, as everywhere in weave.
 */
#ifndef WEAVE_TASKS_CELERY_H
#define WEAVE_TASKS_CELERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/json.h"
#include "weave/str.h"

#pragma GCC visibility push(hidden)

#define CELERY_NO_TIME INT64_MIN

/* A uuid4's text: 36 characters (8-4-4-4-12, lower-case hex). */
#define CELERY_UUID_LEN 36

/* Celery's argsrepr_maxsize and kwargsrepr_maxsize (characters). */
#define CELERY_REPR_MAXSIZE 1024

/* ------------------------------------------------------------ task messages */

/*
 * A decoded task message. Every wv_str points into memory the struct owns
 * and lives until celery_task_free(). String fields are NUL-terminated
 * there (.p is a C string too), and a JSON null or a missing member is an
 * empty wv_str (.n == 0). "Raw" fields hold JSON text exactly as the body
 * has it, NOT NUL-terminated (use .n), "null" when the member is null or
 * missing.
 */
typedef struct celery_task {
    int protocol; /* 2, or 1 for a protocol 1 body */
    wv_str id, task, shadow, lang;
    wv_str args;   /* raw JSON array */
    wv_str kwargs; /* raw JSON object */
    wv_str embed;  /* raw JSON object {callbacks, errbacks, chain, chord}; "null" for protocol 1 */
    wv_str callbacks, errbacks, chain, chord; /* raw JSON of each, "null" when none */
    int64_t eta_ns, expires_ns;               /* CELERY_NO_TIME when none */
    int64_t retries;
    /* headers.timelimit is [hard, soft] (time_limit, soft_time_limit), in
     * seconds; negative when null */
    double time_limit, soft_time_limit;
    wv_str root_id, parent_id, group;
    int64_t group_index; /* -1 when null */
    bool ignore_result;
    wv_str argsrepr, kwargsrepr, origin;
    /* properties */
    wv_str correlation_id, reply_to, delivery_tag, exchange, routing_key;
    int64_t priority, delivery_mode;
    int64_t expiration_ms; /* properties.expiration (a string of ms); -1 when absent */
    wv_str content_type, content_encoding, body_encoding;
    wv_str body;     /* the body's JSON text, decoded from base64 */
    wv_str envelope; /* the whole envelope as received, for requeueing and unacked storage */
    const wv_json_val *headers; /* the headers object (Celery's and any custom ones); NULL
                                   for protocol 1 */
    /* private */
    wv_json_doc *env_doc, *body_doc;
    char *mem; /* the envelope and body copies */
} celery_task;

/*
 * Decode kombu's Redis envelope text[0..n) (one item popped from the
 * queue's list) into *t. 0; -EBADMSG (malformed, wv_errmsg() says what),
 * -ENOTSUP (another serializer or body encoding), -EMSGSIZE (over
 * WV_JSON_MAX_BYTES), -ENOMEM. On failure *t holds nothing to free (and
 * celery_task_free on it is harmless).
 */
int celery_task_decode_redis(const char *text, size_t n, celery_task *t);

/*
 * Decode a message that came apart (AMQP): the body bytes, the headers
 * table as a JSON object (NULL or "" for none: protocol 1) and the
 * properties as a JSON object (NULL for none). Same results as above;
 * t->envelope is empty.
 */
int celery_task_decode_parts(const char *body, size_t body_len, const char *headers,
                             size_t headers_len, const char *properties, size_t properties_len,
                             celery_task *t);

void celery_task_free(celery_task *t);

/*
 * What a producer sends. Start from celery_task_msg_init(): no id (a
 * fresh uuid4), args [] and kwargs {}, no eta, expiry, time limits or
 * group index (their "none" is not 0, so a struct that is only zeroed
 * sends time limits of 0 and group_index 0), then set what matters.
 * JSON inputs (args, kwargs, callbacks, ...) are checked (strict JSON, the
 * right type) and rewritten the way Python's json.dumps writes them.
 */
typedef struct celery_task_msg {
    const char *task; /* required */
    const char *id;   /* NULL: a uuid4 */
    const char *args; /* JSON array text; NULL: [] */
    size_t args_len;
    const char *kwargs; /* JSON object text; NULL: {} */
    size_t kwargs_len;
    /* JSON text (NUL-terminated) of each, or NULL for null */
    const char *callbacks, *errbacks, *chain, *chord;
    /* argsrepr like apply_async((2, 3)) or delay(2, 3): a tuple "(2, 3)";
     * true: like apply_async([2, 3]), a list "[2, 3]" */
    bool args_repr_as_list;
    int64_t eta_ns, expires_ns; /* CELERY_NO_TIME: none */
    int64_t retries;
    double time_limit, soft_time_limit; /* seconds; negative: none */
    const char *shadow, *group, *parent_id;
    const char *root_id; /* NULL: the task's own id, as Celery does */
    int64_t group_index; /* negative: none */
    bool ignore_result;
    const char *origin;     /* NULL: "gen<pid>@<hostname>", as Celery's anon_nodename() */
    const char *argsrepr;   /* NULL: Celery's saferepr of args */
    const char *kwargsrepr; /* NULL: saferepr of kwargs */
    const char *reply_to;   /* NULL: null */
    /* the Redis envelope's delivery_info and tag */
    const char *exchange;     /* NULL: "" */
    const char *routing_key;  /* NULL: "celery" */
    const char *delivery_tag; /* NULL: a uuid4 */
    int64_t priority;         /* 0 by default, as kombu's Redis transport writes */
    /* properties.expiration in ms, negative: none. Celery sets it whenever
     * expires is given, to what is left of it when sending (expires minus
     * now, in whole ms: apply_async(expires=60) sends "60000"); a producer
     * setting expires_ns should set this too. */
    int64_t expiration_ms;
    /* custom headers (apply_async(headers=...)): a JSON object text whose
     * members follow Celery's own; a name Celery uses is -EINVAL */
    const char *headers;
} celery_task_msg;

void celery_task_msg_init(celery_task_msg *m);

/* The Redis envelope, appended to out. 0, -EINVAL (no task name, args or
 * kwargs not a JSON array/object, bad JSON in an embed field; wv_errmsg()
 * says which), -ENOMEM. On failure out is back to its length before. */
int celery_task_encode_redis(const celery_task_msg *m, wv_buf *out);

/* The AMQP form: the body's bytes, the headers (the same members as the
 * Redis envelope's, as a JSON object: the AMQP transport maps it to a
 * field table) and the properties. */
typedef struct celery_amqp_msg {
    wv_buf body;                  /* [args, kwargs, embed] */
    wv_buf headers;               /* JSON object */
    const char *content_type;     /* "application/json" */
    const char *content_encoding; /* "utf-8" */
    char correlation_id[256];     /* the task id */
    char reply_to[256];           /* "" for none */
    int delivery_mode;            /* 2: persistent */
    char expiration[24];          /* ms as text, "" for none */
    int64_t priority;
} celery_amqp_msg;

/* Fill *out (zero it first; free with celery_amqp_msg_free). 0, -EINVAL
 * (as above, and an id or reply_to of 256 bytes or more), -ENOMEM. */
int celery_task_encode_amqp(const celery_task_msg *m, celery_amqp_msg *out);
void celery_amqp_msg_free(celery_amqp_msg *out);

/* ------------------------------------------------------------ results */

typedef enum celery_state {
    CELERY_PENDING,
    CELERY_STARTED,
    CELERY_RETRY,
    CELERY_FAILURE,
    CELERY_SUCCESS,
    CELERY_REVOKED,
} celery_state;

/* "PENDING", ..., or NULL; and back (-EINVAL for an unknown name). */
const char *celery_state_name(celery_state s);
int celery_state_from_name(const char *s, size_t n);

/*
 * Result meta as stored at celery-task-meta-<id>:
 *   {"status": "SUCCESS", "result": <json>, "traceback": null,
 *    "children": [], "date_done": "2026-12-07T12:00:00.123456", "task_id": id}
 * FAILURE and RETRY carry result {"exc_type", "exc_message": [...],
 * "exc_module"} and the traceback's text; STARTED {"pid", "hostname"};
 * date_done is set for SUCCESS, FAILURE and REVOKED only (naive UTC,
 * Python's isoformat, microseconds left out when they are 0); "group_id"
 * and "parent_id" come before "task_id" when the task had them.
 */
typedef struct celery_result {
    celery_state status;
    wv_str task_id;
    wv_str result;    /* raw JSON of "result" */
    wv_str traceback; /* empty when null */
    wv_str children;  /* raw JSON */
    int64_t date_done_ns;
    /* FAILURE, RETRY (and REVOKED): from result */
    wv_str exc_type, exc_module;
    wv_str exc_message; /* raw JSON (a list of the exception's args) */
    /* STARTED: from result */
    int64_t pid; /* -1 when absent */
    wv_str hostname;
    /* private */
    wv_json_doc *doc;
    char *mem;
} celery_result;

/* 0, -EBADMSG, -EMSGSIZE, -ENOMEM, as the task decoders. */
int celery_result_decode(const char *text, size_t n, celery_result *r);
void celery_result_free(celery_result *r);

typedef struct celery_result_msg {
    celery_state status;
    const char *task_id;
    const char *result; /* SUCCESS: JSON text, NULL for null */
    size_t result_len;
    /* FAILURE, RETRY: exc_message is the one argument of the exception */
    const char *exc_type, *exc_module, *exc_message, *traceback;
    /* STARTED */
    int64_t pid;
    const char *hostname;
    int64_t date_done_ns; /* SUCCESS, FAILURE, REVOKED (CELERY_NO_TIME: null) */
    const char *children; /* JSON array text; NULL: [] */
    /* the request's group and parent (written when set, as Celery does) */
    const char *group_id, *parent_id;
} celery_result_msg;

/* The meta JSON appended to out, written as Celery's backend writes it.
 * 0, -EINVAL (no task id, bad result JSON), -ENOMEM. */
int celery_result_encode(const celery_result_msg *m, wv_buf *out);

/* ------------------------------------------------------------ other envelopes */

/* kombu's Redis envelope around a message that is not a task (events,
 * remote-control commands): body (JSON text) as base64, headers (a JSON
 * object text; NULL: {}), properties with delivery_mode, delivery_info
 * {exchange, routing_key}, priority 0 and a fresh delivery tag; appended to
 * out. 0, -EINVAL (headers not JSON), -ENOMEM. */
int celery_envelope_encode(const char *body, size_t body_len, const char *headers,
                           int delivery_mode, const char *exchange, const char *routing_key,
                           wv_buf *out);

/* The body of such an envelope (base64 decoded), appended to body. 0,
 * -EBADMSG, -ENOTSUP (not application/json, another body encoding). */
int celery_envelope_body(const char *text, size_t n, wv_buf *body);

/* ------------------------------------------------------------ follow-ups */

/* Called with each message a finished task sends on; queue is the
 * signature's options.queue, or NULL. */
typedef int celery_emit_fn(const celery_task_msg *m, const char *queue, void *arg);

/*
 * What a Python worker sends once task t has finished, as Celery 5.2's
 * tracer does: on success (value: the result's JSON text) the next step of
 * its chain (embed.chain's last signature, with the rest as its chain) and
 * each callback (link), each with the result put before its own args
 * unless the signature is immutable; on failure (value: the task id as a
 * JSON string) each errback (link_error), the old way: the failed task's
 * id before its args. Options kept: task_id, reply_to, queue; parent_id is
 * t's id, root_id t's root. Group, chain and chord signatures as
 * follow-ups are -ENOTSUP (the others are still sent). Returns the first
 * failure of emit or of a signature (-EBADMSG), 0 when all went.
 */
int celery_follow_ups(const celery_task *t, bool success, const char *value, size_t n,
                      celery_emit_fn *emit, void *arg);

/* ------------------------------------------------------------ pieces */

/* A fresh uuid4 (getrandom) as 36 characters and a NUL. 0 or -errno. */
int celery_uuid4(char out[CELERY_UUID_LEN + 1]);

/* ISO 8601 as Celery writes it ("2026-12-07T12:00:00.123456+00:00"; a
 * space for the T, "Z", no offset (UTC), 1 to 9 fraction digits also
 * read) to ns since the epoch. 0, -EINVAL, or -ERANGE for a date that
 * int64_t ns cannot hold (before 1677-09-22 or after 2262-04-10). */
int celery_iso8601_parse(const char *s, size_t n, int64_t *ns);

/* Python's datetime.isoformat() of the instant: with "+00:00" when utc_offset,
 * naive otherwise; microseconds (truncated), left out when 0. */
int celery_iso8601_format(int64_t ns, bool utc_offset, wv_buf *out);

/* Celery's saferepr(value, maxlen) (celery/utils/saferepr.py) of the JSON
 * value json[0..n), as Python would have it after json.loads: a top-level
 * array is a tuple unless as_list; strings in single quotes with only '
 * escaped, 3 levels deep at most ("[...]"), cut at maxlen characters with
 * "...". -EINVAL for text that is not strict JSON. */
int celery_saferepr(const char *json, size_t n, bool as_list, size_t maxlen, wv_buf *out);

/* json[0..n) (strict JSON) rewritten as Python's json.dumps writes it. */
int celery_pyjson(const char *json, size_t n, wv_buf *out);

/* Python's repr of a float (float_repr_style "short"): the shortest digits
 * that read back, fixed notation for exponents -4..15, else d.ddde+XX;
 * NaN and Infinity as json.dumps writes them. */
int celery_py_float(wv_buf *b, double x);

#pragma GCC visibility pop

#endif
