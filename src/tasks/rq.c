/*
 * src/tasks/rq.c: the RQ producer (include/weave/rq.h): jobs written in
 * python-rq 1.13's Redis layout for Python workers, their status and
 * results read back, on weave's Redis client and the pickle codec in
 * pickle.h.
 */
#include "weave/rq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "base64/base64.h"
#include "tasks/celery.h"
#include "tasks/pickle.h"
#include "weave/json.h"
#include "weave/redis.h"

#define DEFAULT_QUEUE   "default" /* RQ's Queue() */
#define DEFAULT_TIMEOUT 180       /* rq.defaults.DEFAULT_JOB_TIMEOUT */
#define CALL_ARG_MAX    75        /* get_call_string's max_length */
#define MAX_TRACEBACK   (4u << 20)

struct wv_rq {
    wv_redis *r;
    bool owns_r; /* opened by wv_rq_open, closed by wv_rq_close */
    char *queue;
    int shard;
};

/* A client without its connection yet. */
static int rq_new(const wv_rq_opts *opts, wv_rq **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "rq: open it from a fiber");
    const char *queue = opts && opts->queue ? opts->queue : DEFAULT_QUEUE;
    if (!*queue)
        return wv_fail(-EINVAL, "rq: an empty queue name");
    wv_rq *rq = calloc(1, sizeof *rq);
    if (!rq || !(rq->queue = strdup(queue))) {
        free(rq);
        return -ENOMEM;
    }
    rq->shard = wv_shard_id();
    *out = rq;
    return 0;
}

int wv_rq_open(const char *url, const wv_rq_opts *opts, wv_rq **out)
{
    if (!url)
        return wv_fail(-EINVAL, "rq: no Redis URL");
    int rc = rq_new(opts, out);
    if (rc < 0)
        return rc;
    (*out)->owns_r = true;
    rc = wv_redis_open(url, NULL, &(*out)->r);
    if (rc < 0) {
        wv_rq_close(*out);
        *out = NULL;
    }
    return rc;
}

int wv_rq_with(wv_redis *r, const wv_rq_opts *opts, wv_rq **out)
{
    if (!r)
        return wv_fail(-EINVAL, "rq: no Redis client");
    int rc = rq_new(opts, out);
    if (rc == 0)
        (*out)->r = r;
    return rc;
}

void wv_rq_close(wv_rq *rq)
{
    if (!rq)
        return;
    if (rq->owns_r)
        wv_redis_close(rq->r);
    free(rq->queue);
    free(rq);
}

/* prefix + id appended to b, NUL-terminated (for wv_redis_cmd). */
static int key_of(wv_buf *b, const char *prefix, const char *id)
{
    int rc = wv_buf_printf(b, "%s%s", prefix, id);
    rc = rc ? rc : wv_buf_append(b, "", 1);
    if (rc == 0)
        b->n--;
    return rc;
}

static int check_shard(const wv_rq *rq)
{
    if (wv_shard_id() == rq->shard)
        return 0;
    return wv_fail(wv_shard_id() < 0 ? -EPERM : -EXDEV, "rq: use the client from its shard");
}

/* ------------------------------------------------------------ Python's repr */

/* Whether Python's str.isprintable() holds for code point c, as far as a
 * table this small can say (rq.h: unassigned code points are not known). */
static bool py_printable(uint32_t c)
{
    static const uint32_t unprintable[][2] = {
        {0x0000, 0x001f},   {0x007f, 0x00a0},   {0x00ad, 0x00ad},   {0x0600, 0x0605},
        {0x061c, 0x061c},   {0x06dd, 0x06dd},   {0x070f, 0x070f},   {0x0890, 0x0891},
        {0x08e2, 0x08e2},   {0x1680, 0x1680},   {0x180e, 0x180e},   {0x2000, 0x200f},
        {0x2028, 0x202f},   {0x205f, 0x2064},   {0x2066, 0x206f},   {0x3000, 0x3000},
        {0xd800, 0xf8ff},   {0xfdd0, 0xfdef},   {0xfeff, 0xfeff},   {0xfff9, 0xfffb},
        {0x110bd, 0x110bd}, {0x110cd, 0x110cd}, {0x13430, 0x13438}, {0x1bca0, 0x1bca3},
        {0x1d173, 0x1d17a}, {0xe0001, 0xe0001}, {0xe0020, 0xe007f}, {0xf0000, 0x10ffff},
    };
    if ((c & 0xfffe) == 0xfffe) /* the noncharacters at the end of every plane */
        return false;
    for (size_t i = 0; i < sizeof unprintable / sizeof *unprintable; i++)
        if (c >= unprintable[i][0] && c <= unprintable[i][1])
            return false;
    return true;
}

/* One UTF-8 sequence of checked text at *p: its code point. */
static uint32_t next_cp(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (n > 1) {
        c &= 0x3fu >> (n - 1);
        for (int i = 1; i < n; i++)
            c = c << 6 | (s[i] & 0x3fu);
    }
    *p = s + n;
    return c;
}

/* Python's repr of a str: in ' unless it holds ' and no ". */
static int py_repr_str(wv_buf *b, const char *s, size_t n)
{
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    int rc = wv_buf_append(b, &q, 1);
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (rc == 0 && p < end) {
        const unsigned char *start = p;
        uint32_t c = next_cp(&p);
        if (c == '\\' || c == (uint32_t)q)
            rc = wv_buf_printf(b, "\\%c", (char)c);
        else if (c == '\t')
            rc = wv_buf_puts(b, "\\t");
        else if (c == '\n')
            rc = wv_buf_puts(b, "\\n");
        else if (c == '\r')
            rc = wv_buf_puts(b, "\\r");
        else if (py_printable(c))
            rc = wv_buf_append(b, start, (size_t)(p - start));
        else if (c < 0x100)
            rc = wv_buf_printf(b, "\\x%02x", c);
        else if (c < 0x10000)
            rc = wv_buf_printf(b, "\\u%04x", c);
        else
            rc = wv_buf_printf(b, "\\U%08x", c);
    }
    return rc ? rc : wv_buf_append(b, &q, 1);
}

/* Python's repr of the value json.loads makes of v. */
static int py_repr(wv_buf *b, const wv_json_val *v)
{
    int64_t i;
    double d;
    bool t;
    const char *s;
    size_t n;
    int rc = 0;
    switch (wv_json_type_of(v)) {
    case WV_JSON_BOOL:
        wv_json_as_bool(v, &t);
        return wv_buf_puts(b, t ? "True" : "False");
    case WV_JSON_NUMBER:
        if (wv_json_as_i64(v, &i) == 0)
            return wv_buf_i64(b, i);
        wv_json_as_double(v, &d);
        return celery_py_float(b, d);
    case WV_JSON_STRING:
        wv_json_as_string(v, &s, &n);
        return py_repr_str(b, s, n);
    case WV_JSON_ARRAY:
        rc = wv_buf_puts(b, "[");
        for (size_t k = 0; rc == 0 && k < (size_t)wv_json_array_len(v); k++) {
            if (k)
                rc = wv_buf_puts(b, ", ");
            rc = rc ? rc : py_repr(b, wv_json_array_at(v, k));
        }
        return rc ? rc : wv_buf_puts(b, "]");
    case WV_JSON_OBJECT:
        rc = wv_buf_puts(b, "{");
        for (size_t k = 0; rc == 0 && k < (size_t)wv_json_object_len(v); k++) {
            const wv_json_val *m = wv_json_object_at(v, k, &s, &n);
            if (k)
                rc = wv_buf_puts(b, ", ");
            rc = rc ? rc : py_repr_str(b, s, n);
            rc = rc ? rc : wv_buf_puts(b, ": ");
            rc = rc ? rc : py_repr(b, m);
        }
        return rc ? rc : wv_buf_puts(b, "}");
    default:
        return wv_buf_puts(b, "None");
    }
}

/* truncate_long_string(repr(v), 75) appended to b. */
static int py_repr_cut(wv_buf *b, const wv_json_val *v)
{
    size_t from = b->n;
    int rc = py_repr(b, v);
    if (rc < 0)
        return rc;
    const unsigned char *p = (const unsigned char *)b->p + from,
                        *end = (const unsigned char *)b->p + b->n;
    for (int chars = 0; p < end; chars++) {
        if (chars == CALL_ARG_MAX) {
            b->n = (size_t)((const char *)p - b->p);
            return wv_buf_puts(b, "...");
        }
        next_cp(&p);
    }
    return 0;
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* RQ's get_call_string: "func(arg, ..., key=value, ...)", the keyword
 * arguments sorted as text. */
static int call_string(wv_buf *b, const char *func, const wv_json_val *args,
                       const wv_json_val *kwargs)
{
    int rc = wv_buf_printf(b, "%s(", func);
    long nargs = args ? wv_json_array_len(args) : 0;
    for (long i = 0; rc == 0 && i < nargs; i++) {
        if (i)
            rc = wv_buf_puts(b, ", ");
        rc = rc ? rc : py_repr_cut(b, wv_json_array_at(args, (size_t)i));
    }
    long nkw = kwargs ? wv_json_object_len(kwargs) : 0;
    char **kw = nkw > 0 ? calloc((size_t)nkw, sizeof *kw) : NULL;
    if (nkw > 0 && !kw)
        rc = -ENOMEM;
    for (long i = 0; rc == 0 && i < nkw; i++) {
        wv_buf one = {0};
        const char *k;
        const wv_json_val *v = wv_json_object_at(kwargs, (size_t)i, &k, NULL);
        rc = wv_buf_printf(&one, "%s=", k);
        rc = rc ? rc : py_repr_cut(&one, v);
        rc = rc ? rc : wv_buf_append(&one, "", 1);
        if (rc == 0)
            kw[i] = one.p; /* freed below */
        else
            wv_buf_free(&one);
    }
    if (rc == 0 && nkw > 0)
        qsort(kw, (size_t)nkw, sizeof *kw, cmp_cstr);
    for (long i = 0; rc == 0 && i < nkw; i++)
        rc = wv_buf_printf(b, "%s%s", nargs || i ? ", " : "", kw[i]);
    for (long i = 0; i < nkw && kw; i++)
        free(kw[i]);
    free(kw);
    return rc ? rc : wv_buf_puts(b, ")");
}

/* ------------------------------------------------------------ enqueue */

/* utcformat(utcnow()): "2026-12-08T01:50:32.123456Z". */
static void utc_now(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%06ldZ", ts.tv_nsec / 1000);
}

static int zlib_compress(const wv_buf *in, wv_buf *out)
{
    uLongf len = compressBound((uLong)in->n);
    if (wv_buf_reserve(out, len) < 0)
        return -ENOMEM;
    /* Z_DEFAULT_COMPRESSION, as Python's zlib.compress(data) */
    if (compress2((Bytef *)out->p + out->n, &len, (const Bytef *)in->p, (uLong)in->n,
                  Z_DEFAULT_COMPRESSION) != Z_OK)
        return wv_fail(-ENOMEM, "rq: zlib compress failed");
    out->n += len;
    return 0;
}

static int parse_opt(const char *text, wv_json_type want, const char *what, wv_json_doc **doc)
{
    *doc = NULL;
    if (!text)
        return 0;
    int rc = wv_json_parse(text, strlen(text), doc);
    if (rc < 0)
        return wv_fail(-EINVAL, "rq: %s: %s", what, wv_errmsg());
    if (wv_json_type_of(wv_json_doc_root(*doc)) != want)
        return wv_fail(-EINVAL, "rq: %s: expected a JSON %s", what,
                       want == WV_JSON_ARRAY ? "array" : "object");
    return 0;
}

static int check_ttl(int64_t v, const char *what)
{
    return v >= -1 ? 0 : wv_fail(-EINVAL, "rq: %s: seconds, or -1", what);
}

/* The job hash's fields, as Job.to_dict orders them (argv pairs). */
typedef struct fields {
    wv_str argv[48];
    int argc;
    char num[4][24]; /* the numbers' text, which argv points into */
    int nnum;
    char created[32], enqueued[32];
} fields;

static void field(fields *f, const char *name, const void *p, size_t n)
{
    f->argv[f->argc++] = (wv_str){name, strlen(name)};
    f->argv[f->argc++] = (wv_str){p, n};
}

static void field_s(fields *f, const char *name, const char *s)
{
    field(f, name, s, strlen(s));
}

static void field_i(fields *f, const char *name, int64_t v)
{
    char *num = f->num[f->nnum++];
    snprintf(num, sizeof f->num[0], "%lld", (long long)v);
    field_s(f, name, num);
}

/* What one enqueue writes, made before anything is sent. */
typedef struct job {
    const char *id, *queue;
    wv_buf data, desc, meta, qkey, jkey, dependents, dependencies;
    char uuid[CELERY_UUID_LEN + 1];
} job;

static void job_free(job *j)
{
    wv_buf_free(&j->data);
    wv_buf_free(&j->desc);
    wv_buf_free(&j->meta);
    wv_buf_free(&j->qkey);
    wv_buf_free(&j->jkey);
    wv_buf_free(&j->dependents);
    wv_buf_free(&j->dependencies);
}

/* The job's data (its pickled call, zlib'd), meta, description and keys. */
static int job_make(const char *func, const char *args_json, const wv_rq_job_opts *o, job *j)
{
    wv_json_doc *args = NULL, *kwargs = NULL, *meta = NULL;
    wv_buf pk = {0};
    int rc = parse_opt(args_json, WV_JSON_ARRAY, "args", &args);
    rc = rc ? rc : parse_opt(o->kwargs, WV_JSON_OBJECT, "kwargs", &kwargs);
    rc = rc ? rc : parse_opt(o->meta, WV_JSON_OBJECT, "meta", &meta);
    const wv_json_val *a = wv_json_doc_root(args), *kw = wv_json_doc_root(kwargs);
    rc = rc ? rc : pickle_dumps_call(func, a, kw, &pk);
    rc = rc ? rc : zlib_compress(&pk, &j->data);
    if (rc == 0 && meta && wv_json_object_len(wv_json_doc_root(meta)) > 0) /* `if self.meta` */
        rc = pickle_dumps(wv_json_doc_root(meta), &j->meta);
    if (rc == 0)
        rc = o->description ? wv_buf_puts(&j->desc, o->description)
                            : call_string(&j->desc, func, a, kw);
    if (rc == 0 && !o->job_id)
        rc = celery_uuid4(j->uuid);
    j->id = o->job_id ? o->job_id : j->uuid;
    rc = rc ? rc : wv_buf_printf(&j->qkey, "rq:queue:%s", j->queue);
    rc = rc ? rc : wv_buf_printf(&j->jkey, "rq:job:%s", j->id);
    rc = rc ? rc : wv_buf_printf(&j->dependents, "rq:job:%s:dependents", j->id);
    rc = rc ? rc : wv_buf_printf(&j->dependencies, "rq:job:%s:dependencies", j->id);
    wv_json_doc_free(args);
    wv_json_doc_free(kwargs);
    wv_json_doc_free(meta);
    wv_buf_free(&pk);
    return rc;
}

static wv_str str_of(const wv_buf *b)
{
    return (wv_str){b->p, b->n};
}

/* The hash's fields in Job.to_dict's order, after "HSET key". */
static void hash_fields(const job *j, const wv_rq_job_opts *o, fields *f)
{
    utc_now(f->created);
    utc_now(f->enqueued);
    field_s(f, "created_at", f->created);
    field(f, "data", j->data.p, j->data.n);
    field_s(f, "success_callback_name", "");
    field_s(f, "failure_callback_name", "");
    field_s(f, "started_at", "");
    field_s(f, "ended_at", "");
    field_s(f, "last_heartbeat", "");
    field_s(f, "worker_name", "");
    field_s(f, "origin", j->queue);
    field(f, "description", j->desc.p, j->desc.n);
    field_s(f, "enqueued_at", f->enqueued);
    field_i(f, "timeout", o->timeout_s ? o->timeout_s : DEFAULT_TIMEOUT);
    if (o->no_result)
        field_s(f, "result_ttl", "0");
    else if (o->result_ttl_s)
        field_i(f, "result_ttl", o->result_ttl_s);
    if (o->failure_ttl_s)
        field_i(f, "failure_ttl", o->failure_ttl_s);
    field_s(f, "status", "queued");
    if (j->meta.n)
        field(f, "meta", j->meta.p, j->meta.n);
    if (o->ttl_s)
        field_i(f, "ttl", o->ttl_s);
}

/* Queue.enqueue_job's commands, in one MULTI/EXEC. */
static int job_write(wv_rq *rq, const job *j, const wv_rq_job_opts *o)
{
    wv_redis_pipe *p;
    int rc = wv_redis_pipe_new(rq->r, true, &p);
    if (rc < 0)
        return rc;
    wv_str key = str_of(&j->jkey), queue = str_of(&j->qkey);
    fields f = {.argc = 2, .argv = {WV_STR("HSET"), key}};
    hash_fields(j, o, &f);
    rc = wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("SADD"), WV_STR("rq:queues"), queue});
    rc = rc ? rc
            : wv_redis_pipe_addv(
                  p, 4, (wv_str[]){WV_STR("HSET"), key, WV_STR("status"), WV_STR("queued")});
    rc = rc ? rc : wv_redis_pipe_addv(p, f.argc, f.argv);
    if (o->ttl_s) { /* Job.cleanup(ttl): the job and its dependency keys */
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%lld", (long long)o->ttl_s);
        wv_str t = {ttl, strlen(ttl)};
        rc = rc ? rc : wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("EXPIRE"), key, t});
        rc = rc ? rc
                : wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("EXPIRE"), str_of(&j->dependents), t});
        rc = rc ? rc
                : wv_redis_pipe_addv(p, 3,
                                     (wv_str[]){WV_STR("EXPIRE"), str_of(&j->dependencies), t});
    }
    wv_str push = o->at_front ? WV_STR("LPUSH") : WV_STR("RPUSH");
    rc = rc ? rc : wv_redis_pipe_addv(p, 3, (wv_str[]){push, queue, {j->id, strlen(j->id)}});
    rc = rc ? rc : wv_redis_pipe_exec(p); /* nothing is sent unless every command was added */
    wv_redis_pipe_free(p);
    return rc;
}

int wv_rq_enqueue(wv_rq *rq, const char *func, const char *args_json, const wv_rq_job_opts *opts,
                  char id[37])
{
    if (!rq || !func || !*func)
        return wv_fail(-EINVAL, "rq: enqueue needs a client and a function's dotted path");
    int rc = check_shard(rq);
    if (rc < 0)
        return rc;
    wv_rq_job_opts o = opts ? *opts : (wv_rq_job_opts){0};
    if (o.timeout_s < -1)
        return wv_fail(-EINVAL, "rq: timeout: seconds, or -1");
    if ((rc = check_ttl(o.result_ttl_s, "result_ttl")) < 0 ||
        (rc = check_ttl(o.failure_ttl_s, "failure_ttl")) < 0)
        return rc;
    if (o.ttl_s < 0)
        return wv_fail(-EINVAL, "rq: ttl: seconds (RQ refuses 0 or less)");
    if (o.job_id && !*o.job_id)
        return wv_fail(-EINVAL, "rq: an empty job id");
    job j = {.queue = o.queue ? o.queue : rq->queue};
    rc = job_make(func, args_json, &o, &j);
    rc = rc ? rc : job_write(rq, &j, &o);
    if (rc == 0 && id && !o.job_id)
        memcpy(id, j.uuid, sizeof j.uuid);
    job_free(&j);
    return rc;
}

/* ------------------------------------------------------------ status */

static const char *const state_names[] = {
    [WV_RQ_QUEUED] = "queued",   [WV_RQ_STARTED] = "started",   [WV_RQ_FINISHED] = "finished",
    [WV_RQ_FAILED] = "failed",   [WV_RQ_DEFERRED] = "deferred", [WV_RQ_SCHEDULED] = "scheduled",
    [WV_RQ_STOPPED] = "stopped", [WV_RQ_CANCELED] = "canceled",
};

const char *wv_rq_state_name(wv_rq_state state)
{
    if ((int)state < WV_RQ_QUEUED || state > WV_RQ_CANCELED)
        return "";
    return state_names[state];
}

static int parse_state(const wv_redis_reply *v, const char *id, wv_rq_state *state)
{
    if (!v || v->type == WV_REDIS_NIL)
        return wv_fail(-ENOENT, "rq: no job %s (never enqueued, expired or deleted)", id);
    if (v->type != WV_REDIS_STRING)
        return wv_fail(-EBADMSG, "rq: job %s: a status that is not a string", id);
    for (int s = WV_RQ_QUEUED; s <= WV_RQ_CANCELED; s++) {
        if (v->len == strlen(state_names[s]) && memcmp(v->str, state_names[s], v->len) == 0) {
            *state = (wv_rq_state)s;
            return 0;
        }
    }
    return wv_fail(-EBADMSG, "rq: job %s: status \"%.*s\" is not RQ's", id, (int)v->len, v->str);
}

int wv_rq_status(wv_rq *rq, const char *id, wv_rq_state *state)
{
    if (!rq || !id || !state)
        return -EINVAL;
    int rc = check_shard(rq);
    wv_buf key = {0};
    rc = rc ? rc : key_of(&key, "rq:job:", id);
    wv_redis_reply *rep = NULL;
    rc = rc ? rc : wv_redis_cmd(rq->r, &rep, "HGET", key.p, "status");
    rc = rc ? rc : parse_state(rep, id, state);
    wv_redis_reply_free(rep);
    wv_buf_free(&key);
    return rc;
}

/* ------------------------------------------------------------ results */

static int zlib_inflate(const char *p, size_t n, wv_buf *out)
{
    z_stream z = {.next_in = (Bytef *)p, .avail_in = (uInt)n};
    if (inflateInit(&z) != Z_OK)
        return -ENOMEM;
    int zr = Z_OK, rc = 0;
    while (zr == Z_OK && rc == 0) {
        if (out->n >= MAX_TRACEBACK) {
            rc = wv_fail(-EMSGSIZE, "rq: a traceback over %u bytes", MAX_TRACEBACK);
            break;
        }
        if (wv_buf_reserve(out, 16384) < 0) {
            rc = -ENOMEM;
            break;
        }
        z.next_out = (Bytef *)out->p + out->n;
        z.avail_out = 16384;
        zr = inflate(&z, Z_NO_FLUSH);
        out->n += 16384 - z.avail_out;
    }
    if (rc == 0 && zr != Z_STREAM_END)
        rc = wv_fail(-EBADMSG, "rq: a traceback that is not zlib data");
    inflateEnd(&z);
    return rc;
}

/* -EREMOTEIO with the traceback's last line (the exception) as the message. */
static int failed(const char *id, const char *zipped, size_t n, bool base64)
{
    wv_buf raw = {0}, tb = {0};
    int rc = 0;
    if (base64) {
        if (wv_buf_reserve(&raw, n / 4 * 3 + 1) < 0)
            return -ENOMEM;
        long len = wv__b64_decode(zipped, n, false, raw.p, n / 4 * 3);
        if (len < 0)
            rc = wv_fail(-EBADMSG, "rq: job %s: exc_string is not base64", id);
        raw.n = len < 0 ? 0 : (size_t)len;
        zipped = raw.p;
        n = raw.n;
    }
    rc = rc ? rc : zlib_inflate(zipped, n, &tb);
    if (rc == 0) {
        size_t end = tb.n;
        while (end && (tb.p[end - 1] == '\n' || tb.p[end - 1] == '\r'))
            end--;
        size_t start = end;
        while (start && tb.p[start - 1] != '\n')
            start--;
        rc = wv_fail(-EREMOTEIO, "%.*s", (int)(end - start), tb.p + start);
    }
    wv_buf_free(&raw);
    wv_buf_free(&tb);
    return rc;
}

/* A field of a stream entry's flat field/value list, or NULL. */
static const wv_redis_reply *entry_field(const wv_redis_reply *fv, const char *name)
{
    if (!fv || (fv->type != WV_REDIS_ARRAY && fv->type != WV_REDIS_MAP))
        return NULL;
    for (size_t i = 0; i + 1 < fv->len; i += 2)
        if (fv->elem[i].len == strlen(name) && memcmp(fv->elem[i].str, name, fv->elem[i].len) == 0)
            return &fv->elem[i + 1];
    return NULL;
}

/* The latest entry of rq:results:<id> (Result.fetch_latest): 1 with the
 * outcome in *rc, 0 when the stream is empty. */
static int stream_result(const wv_redis_reply *xrange, const char *id, wv_buf *json, int *rc)
{
    if (!xrange || xrange->type != WV_REDIS_ARRAY || xrange->len == 0)
        return 0;
    const wv_redis_reply *e = &xrange->elem[0];
    if (e->type != WV_REDIS_ARRAY || e->len != 2) {
        *rc = wv_fail(-EBADMSG, "rq: job %s: a result entry of the wrong shape", id);
        return 1;
    }
    const wv_redis_reply *type = entry_field(&e->elem[1], "type");
    const wv_redis_reply *rv = entry_field(&e->elem[1], "return_value");
    const wv_redis_reply *exc = entry_field(&e->elem[1], "exc_string");
    int t = type && type->type == WV_REDIS_STRING && type->len == 1 ? type->str[0] - '0' : 0;
    if (t == 1 && !rv) {
        *rc = wv_buf_puts(json, "null");
    } else if (t == 1) {
        wv_buf pk = {0};
        long len = -1;
        if (wv_buf_reserve(&pk, rv->len / 4 * 3 + 1) == 0)
            len = wv__b64_decode(rv->str, rv->len, false, pk.p, rv->len / 4 * 3);
        if (len < 0)
            *rc = wv_fail(-EBADMSG, "rq: job %s: return_value is not base64", id);
        else
            *rc = pickle_loads_json(pk.p, (size_t)len, json);
        wv_buf_free(&pk);
    } else if (t == 2) {
        *rc = exc ? failed(id, exc->str, exc->len, true)
                  : wv_fail(-EREMOTEIO, "rq: job %s failed", id);
    } else if (t == 3) {
        *rc = wv_fail(-ECANCELED, "rq: job %s was stopped", id);
    } else {
        *rc = wv_fail(-EBADMSG, "rq: job %s: a result of unknown type", id);
    }
    return 1;
}

/* HMGET's status, result, exc_info: 1 with the outcome in *rc when the
 * job has ended, 0 while it has not. */
static int ended(wv_rq *rq, const char *id, const wv_redis_reply *hm, wv_buf *json, int *rc)
{
    wv_rq_state st;
    int s = parse_state(hm->len == 3 ? &hm->elem[0] : NULL, id, &st);
    if (s < 0) {
        *rc = s;
        return 1;
    }
    if (st != WV_RQ_FINISHED && st != WV_RQ_FAILED && st != WV_RQ_STOPPED && st != WV_RQ_CANCELED)
        return 0;
    if (st == WV_RQ_CANCELED) { /* Job.cancel writes no result: the stream's is an older run's */
        *rc = wv_fail(-ECANCELED, "rq: job %s was canceled", id);
        return 1;
    }
    /* the stream entry was written in the same transaction as the status */
    wv_buf key = {0};
    wv_redis_reply *x = NULL;
    int got = key_of(&key, "rq:results:", id);
    got = got ? got : wv_redis_cmd(rq->r, &x, "XREVRANGE", key.p, "+", "-", "COUNT", "1");
    wv_buf_free(&key);
    if (got < 0) {
        *rc = got;
        return 1;
    }
    got = stream_result(x, id, json, rc);
    wv_redis_reply_free(x);
    if (got)
        return 1;
    /* no stream (Redis before 5, or an RQ before 1.12): the job's hash */
    const wv_redis_reply *result = &hm->elem[1], *exc = &hm->elem[2];
    if (st == WV_RQ_FINISHED)
        *rc = result->type == WV_REDIS_STRING ? pickle_loads_json(result->str, result->len, json)
                                              : wv_buf_puts(json, "null");
    else if (st == WV_RQ_FAILED)
        *rc = exc->type == WV_REDIS_STRING ? failed(id, exc->str, exc->len, false)
                                           : wv_fail(-EREMOTEIO, "rq: job %s failed", id);
    else
        *rc = wv_fail(-ECANCELED, "rq: job %s was %s", id, state_names[st]);
    return 1;
}

int wv_rq_result(wv_rq *rq, const char *id, wv_buf *json)
{
    if (!rq || !id || !json)
        return -EINVAL;
    int rc = check_shard(rq);
    wv_buf jkey = {0}, skey = {0};
    rc = rc ? rc : key_of(&jkey, "rq:job:", id);
    rc = rc ? rc : key_of(&skey, "rq:results:", id);
    int out = 0;
    while (rc == 0) {
        /* the stream's last id first: what is added after it wakes XREAD */
        wv_redis_reply *x = NULL, *hm = NULL;
        char last[64] = "0-0";
        rc = wv_redis_cmd(rq->r, &x, "XREVRANGE", skey.p, "+", "-", "COUNT", "1");
        if (rc == 0 && x->type == WV_REDIS_ARRAY && x->len && x->elem[0].len == 2 &&
            x->elem[0].elem[0].type == WV_REDIS_STRING && x->elem[0].elem[0].len < sizeof last)
            memcpy(last, x->elem[0].elem[0].str, x->elem[0].elem[0].len + 1);
        wv_redis_reply_free(x);
        rc = rc ? rc : wv_redis_cmd(rq->r, &hm, "HMGET", jkey.p, "status", "result", "exc_info");
        if (rc == 0 && ended(rq, id, hm, json, &out))
            rc = 1;
        wv_redis_reply_free(hm);
        if (rc)
            break;
        int64_t block = 1000, deadline = wv_deadline();
        if (deadline != WV_NEVER) {
            int64_t left = (deadline - wv_now()) / 1000000;
            if (left <= 0) {
                rc = wv_fail(-ETIMEDOUT, "rq: job %s has not ended", id);
                break;
            }
            block = left < block ? left : block;
        }
        char ms[24];
        snprintf(ms, sizeof ms, "%lld", (long long)block);
        rc = wv_redis_cmd(rq->r, NULL, "XREAD", "BLOCK", ms, "STREAMS", skey.p, last);
    }
    wv_buf_free(&jkey);
    wv_buf_free(&skey);
    return rc == 1 ? out : rc;
}
