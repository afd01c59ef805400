/*
 * weave's RQ producer: jobs for Python RQ workers (python-rq 1.13), enqueued
 * from C, and their status and results read back. RQ stores a job as a
 * pickled Python call, which C cannot run; what C can honestly do is write
 * the call RQ's own q.enqueue("tasks.add", 2, 3) would write, when the
 * function is named by its dotted path and the arguments are plain JSON
 * types, and read a result back when it is one of those types too
 * (docs/tasks.md, "RQ").
 *
 *     wv_rq *rq;
 *     wv_rq_open("redis://127.0.0.1:6379/0", NULL, &rq);
 *     char id[37];
 *     wv_rq_enqueue(rq, "tasks.add", "[2, 3]", NULL, id);  // rq worker runs it
 *     wv_buf out = {0};
 *     int64_t old = wv_deadline_set(wv_after_ms(10000));
 *     rc = wv_rq_result(rq, id, &out);                      // 0: out holds "5"
 *     wv_deadline_set(old);
 *
 * The model.
 *
 *  - A client (wv_rq) belongs to the shard that opened it, as wv_redis;
 *    open one per shard, or make one over the shard's own Redis client
 *    (wv_rq_with), which then carries its commands too.
 *  - A job is what RQ 1.13's Queue.enqueue writes, in one MULTI/EXEC: the
 *    queue's key added to the set rq:queues, the hash rq:job:<id> (status
 *    "queued", created_at, data, origin, description, enqueued_at,
 *    timeout, ... with the fields and their order of Job.to_dict), EXPIRE
 *    on it when opts.ttl_s is set, and the id RPUSHed on the list
 *    rq:queue:<name> (LPUSHed with opts.at_front). `data` is
 *    zlib.compress(pickle.dumps((func, None, args, kwargs), protocol 5))
 *    with args a tuple and kwargs a dict, byte for byte what Python writes
 *    for the same JSON values; `description` is RQ's call string,
 *    "tasks.add(2, 3)", made as Python's repr makes it (below).
 *  - Arguments and results are JSON values, as Python's json module maps
 *    them: null None, true/false bool, integers int, other numbers float,
 *    strings str, arrays list (a tuple, for args itself), objects dict.
 *    Integers (numbers written without '.', 'e' or 'E', as json.loads
 *    tells them) must fit in int64 and floats in a double: -ERANGE
 *    otherwise. What a job returns is read back when it is one of those
 *    types (a tuple reads as an array; a str holding U+0000 comes out as
 *    \u0000, which is JSON but which wv_json_parse refuses); any other
 *    Python object (bytes, a set, a datetime, a class instance, an int
 *    beyond int64, a NaN) is -ENOTSUP with wv_errmsg() naming it.
 *  - Results: RQ 1.12+ on Redis 5 or later keeps them in a stream,
 *    rq:results:<id> (XADD, trimmed to about 10 entries; the latest
 *    counts), written in the transaction that sets the job's status:
 *    type 1 (successful) with return_value, base64 of its pickle (absent
 *    for None), 2 (failed) with exc_string, base64 of the zlib'd
 *    traceback, 3 (stopped). On older servers a worker writes `result`
 *    and `exc_info` into the job's hash instead; both are read.
 *    wv_rq_result waits with XREAD BLOCK on the stream (RQ publishes
 *    nothing else to wait on), a second at a time so that a job that is
 *    cancelled or deleted meanwhile is noticed, within the fiber's
 *    deadline.
 *  - The description, when opts.description is NULL, is RQ's
 *    get_call_string: each argument's Python repr cut at 75 characters
 *    ("..." added), then "key=repr" for kwargs, sorted. Python's repr
 *    escapes the characters str.isprintable() refuses; weave's table of
 *    them is exact for every character Unicode 14 (Python 3.11's)
 *    assigns, and writes unassigned code points as is where Python
 *    escapes them.
 *  - Not done: dependencies (depends_on), retries, callbacks (on_success),
 *    scheduling (enqueue_at, enqueue_in), another serializer than pickle,
 *    methods of instances (the None in the job tuple), and running jobs:
 *    the workers are Python's.
 *
 * Errors are negative errno values with wv_errmsg() saying why:
 *
 *   -EINVAL          bad arguments: args not a JSON array, kwargs or meta
 *                    not an object, a negative ttl, an empty job id
 *   -ERANGE          an integer beyond int64, a float beyond double
 *   -EPERM, -EXDEV   outside a fiber, from another shard
 *   -ENOENT          no such job: never enqueued, expired, or deleted once
 *                    it succeeded (no_result)
 *   -EREMOTEIO       the job failed: wv_errmsg() is the exception's line
 *                    of its traceback, "ValueError: boom"
 *   -ECANCELED       the job was stopped or cancelled
 *   -ENOTSUP         a result that is not plain
 *   -EBADMSG         a job hash or result RQ would not have written
 *   and the Redis client's (-ECONNREFUSED, -ETIMEDOUT, -ECANCELED, ...).
 */
#ifndef WEAVE_RQ_H
#define WEAVE_RQ_H

#include <stdbool.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/redis.h"
#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_rq wv_rq; /* an RQ client of one shard */

typedef struct wv_rq_opts {
    const char *queue; /* NULL = "default" (RQ's) */
} wv_rq_opts;

/* A client on the calling shard for url, any URL wv_redis_open takes
 * (redis://, rediss://, unix://; include/weave/redis.h), and with its
 * errors. It dials at once. opts may be NULL. */
int wv_rq_open(const char *url, const wv_rq_opts *opts, wv_rq **out);

/* A client on the calling shard over r, a Redis client of that shard the
 * caller keeps (wv_app_redis's, say): it must outlive the RQ client, which
 * does not close it. opts may be NULL. */
int wv_rq_with(wv_redis *r, const wv_rq_opts *opts, wv_rq **out);

/* Close the client (and its Redis client, when wv_rq_open made it). NULL
 * is ignored. */
void wv_rq_close(wv_rq *rq);

/* What RQ's Queue.enqueue takes, besides the function and its arguments.
 * Times are whole seconds, as RQ keeps them. */
typedef struct wv_rq_job_opts {
    const char *kwargs;      /* JSON object text; NULL = {} */
    const char *queue;       /* NULL = the client's */
    const char *job_id;      /* NULL = a uuid4 */
    int64_t timeout_s;       /* job_timeout: 0 = RQ's 180; -1 = none */
    int64_t result_ttl_s;    /* 0 = the worker's (500); -1 = kept forever */
    bool no_result;          /* result_ttl=0: the job and its result go once it succeeds */
    int64_t ttl_s;           /* the job's life while queued: 0 = forever; else > 0 */
    int64_t failure_ttl_s;   /* 0 = the worker's (a year); -1 = forever */
    const char *description; /* NULL = RQ's call string (above) */
    const char *meta;        /* JSON object text (Job.meta); NULL = {} */
    bool at_front;           /* LPUSH: taken next */
} wv_rq_job_opts;

/*
 * Enqueue a job calling func (a dotted path: "tasks.add", which the worker
 * imports) with args_json (a JSON array text; NULL = []) and opts (may be
 * NULL). 0 with the job's id in id (may be NULL) when opts.job_id is NULL;
 * with a job_id, id is left untouched.
 */
int wv_rq_enqueue(wv_rq *rq, const char *func, const char *args_json, const wv_rq_job_opts *opts,
                  char id[37]);

/* A job's status, as RQ's JobStatus names it. */
typedef enum wv_rq_state {
    WV_RQ_QUEUED = 1,
    WV_RQ_STARTED,
    WV_RQ_FINISHED,
    WV_RQ_FAILED,
    WV_RQ_DEFERRED,
    WV_RQ_SCHEDULED,
    WV_RQ_STOPPED,
    WV_RQ_CANCELED,
} wv_rq_state;

/* RQ's name of a state ("queued", "finished", ...), or "" for another value. */
const char *wv_rq_state_name(wv_rq_state state);

/* Job id's status now (Job.get_status): 0 with *state set; -ENOENT for no
 * such job, -EBADMSG for a status RQ does not have. */
int wv_rq_status(wv_rq *rq, const char *id, wv_rq_state *state);

/*
 * Wait for job id to end (within the fiber's deadline; see above): 0 with
 * its return value's JSON text appended to *json when it finished ("null"
 * for None); -EREMOTEIO when it failed, -ECANCELED when it was stopped or
 * cancelled, -ENOENT when there is no such job, -ENOTSUP for a return
 * value beyond the plain types, -ETIMEDOUT when the deadline passes first.
 */
int wv_rq_result(wv_rq *rq, const char *id, wv_buf *json);

#ifdef __cplusplus
}
#endif

#endif
