/*
 * src/tasks/tasks.c: Celery-compatible workers and producers
 * (include/weave/tasks.h): what every broker shares (the worker's slots,
 * ETA holds, time limits, results, warm shutdown, the producer), on a
 * transport and a result backend (transport.h; redis.c is kombu 5.2's Redis
 * transport and Celery 5.2's Redis backend) and the codec in celery.h.
 */
#include "weave/tasks.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tasks/transport.h"

/* Celery's memory of revoked ids: 50,000 at most, for 10,800 s. */
#define REVOKED_MAX    50000
#define REVOKED_TTL_NS (10800 * (int64_t)1000000000)
/* Celery's worker heartbeat interval (worker-heartbeat events). */
#define HEARTBEAT_MS 2000
/* How often a worker samples its queue's depth, unless told. */
#define DEPTH_MS 5000
/* (task, queue) pairs whose sent counter a client keeps at hand. */
#define SENT_CACHE 32

typedef struct task_reg {
    char *name;
    wv_task_fn *fn;
    void *data;
    tasks_task_metrics m;
} task_reg;

typedef struct sent_series {
    char *task, *queue;
    wv_series *s;
} sent_series;

typedef struct revoked_id {
    char id[CELERY_UUID_LEN + 1];
    int64_t at; /* wall-clock ns */
} revoked_id;

struct wv_tasks {
    tasks_transport *tr;
    tasks_backend *backend; /* NULL: results not stored */
    tasks_cfg cfg;
    char *queue, *dead_letter;
    bool acks_late, track_started, events;
    char hostname[256];
    int pid, utcoffset;
    int64_t clock; /* the events' Lamport clock */
    task_reg *regs;
    int nregs;
    int shard;
    /* metrics: the unregistered tasks' series, and the sent counters seen */
    tasks_task_metrics unreg;
    sent_series sent[SENT_CACHE];
    int nsent;
    int64_t depth_ms; /* < 0: not sampled */
    /* while working */
    wv_chan *slots;    /* a token per running task: a semaphore */
    wv_chan *stopping; /* closed at warm shutdown: held tasks give back */
    wv_group *tasks;   /* the task fibers */
    wv_task *running;  /* the tasks in their body, for revoke(terminate) */
    wv_series *nrunning, *depth;
    int64_t processed;
    revoked_id *revoked; /* oldest first */
    size_t nrevoked, caprevoked;
};

struct wv_task {
    wv_tasks *t;
    tasks_msg m;
    const task_reg *reg;
    wv_json_doc *args, *kwargs;
    wv_buf result;
    wv_json w;
    bool wrote;
    bool has_slot;
    bool retrying;   /* wv_task_retry sent it again */
    bool terminated; /* revoked with terminate while running */
    char exc_type[64];
    wv_buf exc_msg;
    /* while in its body */
    wv_task *prev, *next;
    wv_group *body;
    int64_t body_deadline;
    int rc;
};

int64_t tasks_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static bool has_scheme(const char *u, const char *scheme)
{
    size_t n = strlen(scheme);
    return strncmp(u, scheme, n) == 0 && strncmp(u + n, "://", 3) == 0;
}

static bool redis_url(const char *u)
{
    return has_scheme(u, "redis") || has_scheme(u, "rediss");
}

static bool amqp_url(const char *u)
{
    return has_scheme(u, "amqp") || has_scheme(u, "amqps");
}

int wv_tasks_open(const char *broker, const wv_tasks_opts *opts, wv_tasks **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    wv_tasks_opts o = opts ? *opts : (wv_tasks_opts){0};
    if (!broker)
        return wv_fail(-EINVAL, "tasks: no broker URL");
    if (!redis_url(broker) && !amqp_url(broker) && !tasks_db_url(broker))
        return wv_fail(-EPROTONOSUPPORT,
                       "tasks: broker %.16s...: only redis://, rediss://, amqp://, amqps://, "
                       "postgres:// and sqlite:",
                       broker);
    bool rpc = o.backend && has_scheme(o.backend, "rpc");
    if (o.backend && !redis_url(o.backend) && !tasks_db_url(o.backend) && !rpc)
        return wv_fail(-EPROTONOSUPPORT, "tasks: result backend: only redis://, rediss://, "
                                         "postgres://, sqlite: and rpc://");
    if (rpc && !amqp_url(broker))
        return wv_fail(-EPROTONOSUPPORT,
                       "tasks: the rpc:// result backend needs an amqp:// or amqps:// broker");
    if (o.concurrency < 0 || o.visibility_timeout_ms < 0 || o.result_expires_ms < 0 ||
        o.depth_interval_ms < 0)
        return wv_fail(-EINVAL, "tasks: negative option");
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "tasks: open it from a fiber");
    wv_tasks *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->shard = wv_shard_id();
    t->depth_ms = o.depth_interval_ms ? o.depth_interval_ms : DEPTH_MS;
    tasks_metrics_init();
    t->queue = dupstr(o.queue ? o.queue : "celery");
    t->dead_letter = o.dead_letter ? dupstr(o.dead_letter) : NULL;
    t->acks_late = o.acks_late;
    t->track_started = o.track_started;
    t->events = o.events;
    t->pid = (int)getpid();
    if (o.hostname) {
        snprintf(t->hostname, sizeof t->hostname, "%s", o.hostname);
    } else {
        char h[200] = "localhost";
        gethostname(h, sizeof h - 1);
        snprintf(t->hostname, sizeof t->hostname, "celery@%s", h);
    }
    /* Celery's utcoffset(): hours west of UTC, as time.timezone // 3600 */
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    long west = -tm.tm_gmtoff;
    t->utcoffset = (int)(west >= 0 ? west / 3600 : -((-west + 3599) / 3600));
    t->cfg = (tasks_cfg){
        .queue = t->queue,
        .concurrency = o.concurrency ? o.concurrency : 16,
        .vt_ms = o.visibility_timeout_ms ? o.visibility_timeout_ms : 3600000,
        .result_expires_ms = o.result_expires_ms ? o.result_expires_ms : 86400000,
        .dead_letter = t->dead_letter,
    };
    int rc = t->queue && (t->dead_letter || !o.dead_letter) ? 0 : -ENOMEM;
    if (rc == 0 && amqp_url(broker))
        rc = tasks_amqp_open(broker, &t->cfg, &t->tr);
    else if (rc == 0 && tasks_db_url(broker))
        rc = tasks_db_open(broker, &t->cfg, &t->tr);
    else if (rc == 0)
        rc = tasks_redis_open(broker, &t->cfg, &t->tr);
    if (rc == 0 && rpc)
        rc = tasks_rpc_backend_open(o.backend, &t->cfg, t->tr, &t->backend);
    else if (rc == 0 && o.backend && tasks_db_url(o.backend))
        rc = tasks_db_backend_open(o.backend, &t->cfg, t->tr, &t->backend);
    else if (rc == 0 && o.backend)
        rc = tasks_redis_backend_open(o.backend, &t->cfg, t->tr, &t->backend);
    if (rc < 0) {
        wv_tasks_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

void wv_tasks_close(wv_tasks *t)
{
    if (!t)
        return;
    if (t->backend)
        t->backend->ops->close(t->backend);
    if (t->tr)
        t->tr->ops->close(t->tr);
    for (int i = 0; i < t->nregs; i++)
        free(t->regs[i].name);
    free(t->regs);
    for (int i = 0; i < t->nsent; i++) {
        free(t->sent[i].task);
        free(t->sent[i].queue);
    }
    free(t->queue);
    free(t->dead_letter);
    free(t->revoked);
    free(t);
}

int wv_tasks_register(wv_tasks *t, const char *name, wv_task_fn *fn, void *data)
{
    if (!t || !name || !*name || !fn)
        return -EINVAL;
    for (int i = 0; i < t->nregs; i++)
        if (strcmp(t->regs[i].name, name) == 0)
            return wv_fail(-EEXIST, "tasks: %s is already registered", name);
    task_reg *r = realloc(t->regs, (size_t)(t->nregs + 1) * sizeof *r);
    if (!r)
        return -ENOMEM;
    t->regs = r;
    char *n = dupstr(name);
    if (!n)
        return -ENOMEM;
    r[t->nregs] = (task_reg){n, fn, data, {0}};
    tasks_metrics_task(&r[t->nregs].m, n, t->queue);
    t->nregs++;
    return 0;
}

/* Send m to queue, counted in weave_tasks_sent_total once it went. */
static int send_msg(wv_tasks *t, const celery_task_msg *m, const char *queue)
{
    int rc = t->tr->ops->send(t->tr, m, queue);
    if (rc < 0)
        return rc;
    for (int i = 0; i < t->nsent; i++)
        if (strcmp(t->sent[i].task, m->task) == 0 && strcmp(t->sent[i].queue, queue) == 0) {
            wv_counter_inc(t->sent[i].s);
            return rc;
        }
    wv_series *s = tasks_metrics_sent(m->task, queue);
    if (s && t->nsent < SENT_CACHE) {
        char *a = dupstr(m->task), *b = dupstr(queue);
        if (a && b)
            t->sent[t->nsent++] = (sent_series){a, b, s};
        else {
            free(a);
            free(b);
        }
    }
    wv_counter_inc(s);
    return rc;
}

/* ------------------------------------------------------------ in a task */

const char *wv_task_id(const wv_task *task)
{
    return task->m.msg.id.p;
}

const char *wv_task_name(const wv_task *task)
{
    return task->m.msg.task.p;
}

int wv_task_retries(const wv_task *task)
{
    return (int)task->m.msg.retries;
}

const wv_json_val *wv_task_args(const wv_task *task)
{
    return wv_json_doc_root(task->args);
}

const wv_json_val *wv_task_kwargs(const wv_task *task)
{
    return wv_json_doc_root(task->kwargs);
}

const wv_json_val *wv_task_headers(const wv_task *task)
{
    return task->m.msg.headers;
}

void *wv_task_data(const wv_task *task)
{
    return task->reg ? task->reg->data : NULL;
}

wv_json *wv_task_result(wv_task *task)
{
    if (!task->wrote) {
        wv_buf_reset(&task->result);
        wv_json_init(&task->w, &task->result);
        task->wrote = true;
    }
    return &task->w;
}

int wv_task_fail(wv_task *task, const char *exc_type, const char *fmt, ...)
{
    snprintf(task->exc_type, sizeof task->exc_type, "%s", exc_type ? exc_type : "Exception");
    wv_buf_reset(&task->exc_msg);
    va_list ap;
    va_start(ap, fmt);
    wv_buf_vprintf(&task->exc_msg, fmt, ap);
    va_end(ap);
    return -EREMOTEIO;
}

/* ------------------------------------------------------------ results */

static const char *exc_for_errno(int rc)
{
    switch (-rc) {
    case ENOENT:
        return "FileNotFoundError";
    case EEXIST:
        return "FileExistsError";
    case EACCES:
    case EPERM:
        return "PermissionError";
    case ETIMEDOUT:
        return "TimeoutError";
    case ECONNREFUSED:
        return "ConnectionRefusedError";
    case ECONNRESET:
        return "ConnectionResetError";
    case ECONNABORTED:
        return "ConnectionAbortedError";
    case EPIPE:
        return "BrokenPipeError";
    case EAGAIN:
        return "BlockingIOError";
    case EINTR:
        return "InterruptedError";
    case EISDIR:
        return "IsADirectoryError";
    case ENOTDIR:
        return "NotADirectoryError";
    case EINVAL:
    case EDOM:
    case ERANGE:
        return "ValueError";
    case ENOMEM:
        return "MemoryError";
    case ENOSYS:
    case ENOTSUP:
        return "NotImplementedError";
    default:
        return "OSError";
    }
}

static void store(wv_task *task, const celery_result_msg *in)
{
    wv_tasks *t = task->t;
    if (!t->backend || task->m.msg.ignore_result)
        return;
    celery_result_msg m = *in;
    m.group_id = task->m.msg.group.n ? task->m.msg.group.p : NULL;
    m.parent_id = task->m.msg.parent_id.n ? task->m.msg.parent_id.p : NULL;
    int rc = t->backend->ops->store(t->backend, &m, &task->m.msg);
    if (rc < 0)
        wv_error("tasks: storing the result of %s: %s (%s)", m.task_id, wv_strerror(rc),
                 wv_errmsg());
}

static void store_exc(wv_task *task, celery_state st, const char *type, const char *module,
                      const char *msg)
{
    celery_result_msg m = {.status = st,
                           .task_id = task->m.msg.id.p,
                           .exc_type = type,
                           .exc_module = module,
                           .exc_message = msg,
                           .date_done_ns = tasks_real_ns()};
    store(task, &m);
}

static void ack(wv_task *task)
{
    tasks_transport *tr = task->t->tr;
    int rc = tr->ops->ack(tr, &task->m);
    if (rc < 0)
        wv_error("tasks: ack %s: %s (%s)", task->m.msg.id.p, wv_strerror(rc), wv_errmsg());
}

/* ------------------------------------------------------------ events */

/* A JSON writer's text for an event body: Celery's common fields first,
 * then the event's own. */
typedef struct event {
    wv_buf buf;
    wv_json j;
} event;

static void event_begin(wv_tasks *t, event *e, const char *uuid)
{
    wv_json_init(&e->j, &e->buf);
    wv_json_object_begin(&e->j);
    wv_json_key(&e->j, "hostname");
    wv_json_string(&e->j, t->hostname);
    wv_json_key(&e->j, "utcoffset");
    wv_json_int(&e->j, t->utcoffset);
    wv_json_key(&e->j, "pid");
    wv_json_int(&e->j, t->pid);
    wv_json_key(&e->j, "clock");
    wv_json_int(&e->j, ++t->clock);
    if (uuid) {
        wv_json_key(&e->j, "uuid");
        wv_json_string(&e->j, uuid);
    }
}

/* Finish with timestamp and type and publish on celeryev, routing key the
 * type with dots ("task-started": "task.started"), as Celery's dispatcher. */
static void event_send(wv_tasks *t, event *e, const char *type)
{
    wv_json_key(&e->j, "timestamp");
    wv_json_double(&e->j, (double)tasks_real_ns() / 1e9);
    wv_json_key(&e->j, "type");
    wv_json_string(&e->j, type);
    wv_json_object_end(&e->j);
    char rk[32], headers[300];
    snprintf(rk, sizeof rk, "%s", type);
    for (char *c = rk; *c; c++)
        if (*c == '-')
            *c = '.';
    wv_buf hb = {0};
    wv_json hj;
    wv_json_init(&hj, &hb);
    wv_json_object_begin(&hj);
    wv_json_key(&hj, "hostname");
    wv_json_string(&hj, t->hostname);
    wv_json_object_end(&hj);
    int rc = wv_json_finish(&e->j);
    if (rc == 0)
        rc = wv_json_finish(&hj);
    if (rc == 0 && hb.n < sizeof headers) {
        memcpy(headers, hb.p, hb.n);
        headers[hb.n] = 0;
        wv_buf py = {0};
        rc = celery_pyjson(e->buf.p, e->buf.n, &py);
        if (rc == 0)
            rc = t->tr->ops->publish(t->tr, "celeryev", "topic", rk, py.p, py.n, headers);
        wv_buf_free(&py);
    }
    if (rc < 0)
        wv_warn("tasks: sending %s: %s (%s)", type, wv_strerror(rc), wv_errmsg());
    wv_buf_free(&hb);
    wv_buf_free(&e->buf);
}

static bool events_on(const wv_tasks *t)
{
    return t->events && t->tr->ops->publish;
}

/* Python's repr of the JSON text s[0..n), Celery's saferepr. */
static void repr_field(wv_json *j, const char *key, const char *s, size_t n)
{
    wv_buf r = {0};
    if (celery_saferepr(s, n, true, CELERY_REPR_MAXSIZE, &r) < 0) {
        wv_buf_reset(&r);
        wv_buf_append(&r, s, n);
    }
    wv_json_key(j, key);
    wv_json_stringn(j, r.p ? r.p : "", r.n);
    wv_buf_free(&r);
}

static void event_received(wv_task *task)
{
    wv_tasks *t = task->t;
    const celery_task *m = &task->m.msg;
    if (!events_on(t))
        return;
    event e = {0};
    event_begin(t, &e, m->id.p);
    wv_json_key(&e.j, "name");
    wv_json_string(&e.j, m->task.p);
    wv_json_key(&e.j, "args");
    wv_json_stringn(&e.j, m->argsrepr.p, m->argsrepr.n);
    wv_json_key(&e.j, "kwargs");
    wv_json_stringn(&e.j, m->kwargsrepr.p, m->kwargsrepr.n);
    wv_json_key(&e.j, "root_id");
    m->root_id.n ? wv_json_string(&e.j, m->root_id.p) : wv_json_null(&e.j);
    wv_json_key(&e.j, "parent_id");
    m->parent_id.n ? wv_json_string(&e.j, m->parent_id.p) : wv_json_null(&e.j);
    wv_json_key(&e.j, "retries");
    wv_json_int(&e.j, m->retries);
    wv_buf d = {0};
    wv_json_key(&e.j, "eta");
    if (m->eta_ns != CELERY_NO_TIME && celery_iso8601_format(m->eta_ns, true, &d) == 0)
        wv_json_stringn(&e.j, d.p, d.n);
    else
        wv_json_null(&e.j);
    wv_buf_reset(&d);
    wv_json_key(&e.j, "expires");
    if (m->expires_ns != CELERY_NO_TIME && celery_iso8601_format(m->expires_ns, true, &d) == 0)
        wv_json_stringn(&e.j, d.p, d.n);
    else
        wv_json_null(&e.j);
    wv_buf_free(&d);
    event_send(t, &e, "task-received");
}

static void event_simple(wv_task *task, const char *type)
{
    if (!events_on(task->t))
        return;
    event e = {0};
    event_begin(task->t, &e, task->m.msg.id.p);
    event_send(task->t, &e, type);
}

/* task-failed and task-retried: exception is the repr "Type('message')". */
static void event_exc(wv_task *task, const char *type, const char *exc_type, const char *msg)
{
    if (!events_on(task->t))
        return;
    event e = {0};
    event_begin(task->t, &e, task->m.msg.id.p);
    wv_buf js = {0}, r = {0};
    wv_json j;
    wv_json_init(&j, &js);
    wv_json_string(&j, msg ? msg : "");
    if (wv_json_finish(&j) == 0)
        celery_saferepr(js.p, js.n, true, CELERY_REPR_MAXSIZE, &r);
    wv_json_key(&e.j, "exception");
    wv_buf x = {0};
    wv_buf_printf(&x, "%s(%.*s)", exc_type, (int)r.n, r.p ? r.p : "");
    wv_json_stringn(&e.j, x.p ? x.p : "", x.n);
    wv_json_key(&e.j, "traceback");
    wv_json_string(&e.j, "");
    wv_buf_free(&js);
    wv_buf_free(&r);
    wv_buf_free(&x);
    event_send(task->t, &e, type);
}

static void event_worker(wv_tasks *t, const char *type)
{
    if (!events_on(t))
        return;
    event e = {0};
    event_begin(t, &e, NULL);
    wv_json_key(&e.j, "freq");
    wv_json_double(&e.j, HEARTBEAT_MS / 1000.0);
    wv_json_key(&e.j, "sw_ident");
    wv_json_string(&e.j, "weave");
    wv_json_key(&e.j, "sw_ver");
    wv_json_string(&e.j, "0.1");
    wv_json_key(&e.j, "sw_sys");
    wv_json_string(&e.j, "Linux");
    int active = 0;
    for (wv_task *r = t->running; r; r = r->next)
        active++;
    wv_json_key(&e.j, "active");
    wv_json_int(&e.j, active);
    wv_json_key(&e.j, "processed");
    wv_json_int(&e.j, t->processed);
    double load[3] = {0};
    if (getloadavg(load, 3) < 0)
        load[0] = load[1] = load[2] = 0;
    wv_json_key(&e.j, "loadavg");
    wv_json_array_begin(&e.j);
    for (int i = 0; i < 3; i++)
        wv_json_double(&e.j, (double)(int)(load[i] * 100 + 0.5) / 100);
    wv_json_array_end(&e.j);
    event_send(t, &e, type);
}

/* ------------------------------------------------------------ revoked ids */

static void revoked_prune(wv_tasks *t, int64_t now)
{
    size_t drop = 0;
    while (drop < t->nrevoked &&
           (now - t->revoked[drop].at > REVOKED_TTL_NS || t->nrevoked - drop >= REVOKED_MAX))
        drop++;
    if (drop) {
        memmove(t->revoked, t->revoked + drop, (t->nrevoked - drop) * sizeof *t->revoked);
        t->nrevoked -= drop;
    }
}

static bool is_revoked(wv_tasks *t, const char *id)
{
    if (!t->nrevoked)
        return false;
    revoked_prune(t, tasks_real_ns());
    for (size_t i = t->nrevoked; i-- > 0;)
        if (strcmp(t->revoked[i].id, id) == 0)
            return true;
    return false;
}

static void revoke_id(wv_tasks *t, const char *id, size_t n, bool terminate)
{
    if (n > CELERY_UUID_LEN)
        n = CELERY_UUID_LEN; /* Celery's ids are uuids; a longer one is cut, not refused */
    int64_t now = tasks_real_ns();
    revoked_prune(t, now);
    if (t->nrevoked == t->caprevoked) {
        size_t cap = t->caprevoked ? t->caprevoked * 2 : 16;
        revoked_id *r = realloc(t->revoked, cap * sizeof *r);
        if (!r)
            return;
        t->revoked = r;
        t->caprevoked = cap;
    }
    revoked_id *r = &t->revoked[t->nrevoked++];
    memcpy(r->id, id, n);
    r->id[n] = 0;
    r->at = now;
    wv_info("tasks: revoked %s%s", r->id, terminate ? " (terminate)" : "");
    if (!terminate)
        return;
    for (wv_task *task = t->running; task; task = task->next)
        if (strcmp(task->m.msg.id.p, r->id) == 0 && task->body) {
            task->terminated = true;
            wv_group_cancel(task->body);
        }
}

/* A remote-control command from celery.pidbox: revoke, enable_events and
 * disable_events are acted on; others are ignored. */
static int on_command(const char *body, size_t n, void *arg)
{
    wv_tasks *t = arg;
    wv_json_doc *doc = NULL;
    if (wv_json_parse(body, n, &doc) < 0) {
        wv_warn("tasks: a remote-control command that is not JSON");
        return 0;
    }
    const wv_json_val *root = wv_json_doc_root(doc);
    const char *method = NULL;
    wv_json_as_string(wv_json_get(root, "method"), &method, NULL);
    const wv_json_val *dest = wv_json_get(root, "destination");
    bool mine = !dest || wv_json_is_null(dest);
    for (size_t i = 0; !mine && wv_json_array_at(dest, i); i++) {
        const char *d = NULL;
        mine = wv_json_as_string(wv_json_array_at(dest, i), &d, NULL) == 0 &&
               strcmp(d, t->hostname) == 0;
    }
    const wv_json_val *a = wv_json_get(root, "arguments");
    if (!mine || !method) {
        /* not for this worker */
    } else if (strcmp(method, "revoke") == 0) {
        bool terminate = false;
        wv_json_as_bool(wv_json_get(a, "terminate"), &terminate);
        const wv_json_val *ids = wv_json_get(a, "task_id");
        const char *id;
        size_t len;
        if (wv_json_as_string(ids, &id, &len) == 0)
            revoke_id(t, id, len, terminate);
        for (size_t i = 0; wv_json_array_at(ids, i); i++)
            if (wv_json_as_string(wv_json_array_at(ids, i), &id, &len) == 0)
                revoke_id(t, id, len, terminate);
    } else if (strcmp(method, "enable_events") == 0) {
        t->events = true;
    } else if (strcmp(method, "disable_events") == 0) {
        t->events = false;
    }
    wv_json_doc_free(doc);
    return 0;
}

static int control(void *arg)
{
    wv_tasks *t = arg;
    int rc = 0;
    while (!wv_stopping()) {
        rc = t->tr->ops->listen(t->tr, "celery.pidbox", "fanout", "", t->stopping, on_command, t);
        if (rc == 0 || rc == -ECANCELED || wv_cancelled())
            break;
        wv_warn("tasks: remote control: %s (%s)", wv_strerror(rc), wv_errmsg());
        int x;
        if (wv_chan_recv_until(t->stopping, &x, wv_after_ms(1000)) != -ETIMEDOUT)
            break;
    }
    return 0;
}

static int heartbeat(void *arg)
{
    wv_tasks *t = arg;
    event_worker(t, "worker-online");
    int x;
    while (wv_chan_recv_until(t->stopping, &x, wv_after_ms(HEARTBEAT_MS)) == -ETIMEDOUT)
        event_worker(t, "worker-heartbeat");
    return 0;
}

/* ------------------------------------------------------------ retry */

/* s[0..n) as a C string (malloc'd), or NULL for JSON null. */
static char *raw_cstr(wv_str s, int *rc)
{
    if (s.n == 4 && memcmp(s.p, "null", 4) == 0)
        return NULL;
    char *p = malloc(s.n + 1);
    if (!p) {
        *rc = -ENOMEM;
        return NULL;
    }
    memcpy(p, s.p, s.n);
    p[s.n] = 0;
    return p;
}

int wv_task_retry(wv_task *task, const wv_task_retry_opts *opts)
{
    if (!task)
        return -EINVAL;
    wv_task_retry_opts o = opts ? *opts : (wv_task_retry_opts){0};
    const celery_task *msg = &task->m.msg;
    int max = o.max_retries ? o.max_retries : 3;
    if (max >= 0 && msg->retries + 1 > max) {
        if (o.exc_type)
            return wv_task_fail(task, o.exc_type, "%s", o.exc_message ? o.exc_message : "");
        return wv_task_fail(task, "MaxRetriesExceededError",
                            "Can't retry %s[%s] args:%.*s kwargs:%.*s", msg->task.p, msg->id.p,
                            (int)msg->argsrepr.n, msg->argsrepr.p, (int)msg->kwargsrepr.n,
                            msg->kwargsrepr.p);
    }
    celery_task_msg m;
    celery_task_msg_init(&m);
    m.task = msg->task.p;
    m.id = msg->id.p;
    m.args = msg->args.p;
    m.args_len = msg->args.n;
    m.kwargs = msg->kwargs.p;
    m.kwargs_len = msg->kwargs.n;
    int rc = 0;
    char *cb = raw_cstr(msg->callbacks, &rc), *eb = raw_cstr(msg->errbacks, &rc);
    char *chain = raw_cstr(msg->chain, &rc), *chord = raw_cstr(msg->chord, &rc);
    m.callbacks = cb;
    m.errbacks = eb;
    m.chain = chain;
    m.chord = chord;
    int64_t now = tasks_real_ns();
    m.eta_ns = now + (o.countdown_ms > 0 ? o.countdown_ms : 180000) * 1000000;
    m.expires_ns = msg->expires_ns;
    if (msg->expires_ns != CELERY_NO_TIME)
        m.expiration_ms = msg->expires_ns > now ? (msg->expires_ns - now) / 1000000 : 0;
    m.retries = msg->retries + 1;
    m.time_limit = msg->time_limit;
    m.soft_time_limit = msg->soft_time_limit;
    m.shadow = msg->shadow.n ? msg->shadow.p : NULL;
    m.group = msg->group.n ? msg->group.p : NULL;
    m.group_index = msg->group_index;
    m.root_id = msg->root_id.n ? msg->root_id.p : msg->id.p;
    m.parent_id = msg->id.p; /* as Celery's signature_from_request */
    m.ignore_result = msg->ignore_result;
    m.reply_to = msg->reply_to.n ? msg->reply_to.p : NULL;
    m.priority = msg->priority;
    const char *queue = msg->routing_key.n ? msg->routing_key.p : task->t->queue;
    m.exchange = "";
    m.routing_key = queue;
    /* RETRY is stored before the new message goes: a quick retry's SUCCESS
     * must not be overwritten by this attempt's RETRY */
    snprintf(task->exc_type, sizeof task->exc_type, "%s", o.exc_type ? o.exc_type : "Retry");
    wv_buf_reset(&task->exc_msg);
    if (o.exc_type)
        wv_buf_puts(&task->exc_msg, o.exc_message ? o.exc_message : "");
    else
        wv_buf_printf(&task->exc_msg, "Retry in %llds",
                      (long long)((o.countdown_ms > 0 ? o.countdown_ms : 180000) / 1000));
    wv_buf_append(&task->exc_msg, "", 1);
    if (rc == 0) {
        celery_result_msg r = {.status = CELERY_RETRY,
                               .task_id = msg->id.p,
                               .exc_type = task->exc_type,
                               .exc_module = o.exc_type ? NULL : "celery.exceptions",
                               .exc_message = task->exc_msg.p ? task->exc_msg.p : "",
                               .date_done_ns = CELERY_NO_TIME};
        store(task, &r);
        rc = send_msg(task->t, &m, queue);
    }
    free(cb);
    free(eb);
    free(chain);
    free(chord);
    if (rc < 0) {
        task->exc_type[0] = 0;
        return rc;
    }
    task->retrying = true;
    return -EAGAIN;
}

/* ------------------------------------------------------------ running */

static void task_free(wv_task *task)
{
    celery_task_free(&task->m.msg);
    wv_json_doc_free(task->args);
    wv_json_doc_free(task->kwargs);
    wv_buf_free(&task->result);
    wv_buf_free(&task->exc_msg);
    free(task);
}

static void slot_release(wv_task *task)
{
    if (task->has_slot) {
        char x;
        wv_chan_try_recv(task->t->slots, &x);
        task->has_slot = false;
    }
}

static void revoked(wv_task *task, const char *why)
{
    wv_warn("tasks: %s[%s] %s: revoked", task->m.msg.task.p, task->m.msg.id.p, why);
    store_exc(task, CELERY_REVOKED, "TaskRevokedError", "celery.exceptions", why);
    if (events_on(task->t)) {
        event e = {0};
        event_begin(task->t, &e, task->m.msg.id.p);
        wv_json_key(&e.j, "terminated");
        wv_json_bool(&e.j, strcmp(why, "terminated") == 0);
        wv_json_key(&e.j, "signum");
        wv_json_null(&e.j);
        wv_json_key(&e.j, "expired");
        wv_json_bool(&e.j, strcmp(why, "expired") == 0);
        event_send(task->t, &e, "task-revoked");
    }
}

static int emit_follow_up(const celery_task_msg *m, const char *queue, void *arg)
{
    wv_task *task = arg;
    celery_task_msg c = *m;
    c.exchange = "";
    c.routing_key = queue ? queue : task->t->queue;
    return send_msg(task->t, &c, c.routing_key);
}

/* Chains, callbacks (link) and errbacks (link_error), as Celery's tracer
 * sends them. */
static void follow_ups(wv_task *task, bool success, const char *value, size_t n)
{
    const celery_task *msg = &task->m.msg;
    int rc = celery_follow_ups(msg, success, value, n, emit_follow_up, task);
    if (rc < 0)
        wv_error("tasks: %s[%s]: sending what follows it: %s (%s)", msg->task.p, msg->id.p,
                 wv_strerror(rc), wv_errmsg());
}

/* The task's own fiber: its function, under the soft limit as deadline. */
static int body_fiber(void *arg)
{
    wv_task *task = arg;
    wv_deadline_set(task->body_deadline);
    wv_errmsg_clear();
    task->rc = task->reg->fn(task);
    return 0;
}

/* The task's series: its registration's, or the unregistered ones. */
static const tasks_task_metrics *metrics_of(const wv_task *task)
{
    return task->reg ? &task->reg->m : &task->t->unreg;
}

static void finished(const wv_task *task, int state)
{
    wv_counter_inc(metrics_of(task)->finished[state]);
}

static void run(wv_task *task)
{
    wv_tasks *t = task->t;
    const celery_task *msg = &task->m.msg;
    if (msg->expires_ns != CELERY_NO_TIME && tasks_real_ns() > msg->expires_ns) {
        revoked(task, "expired");
        finished(task, TASKS_REVOKED);
        ack(task);
        return;
    }
    if (is_revoked(t, msg->id.p)) {
        revoked(task, "revoked");
        finished(task, TASKS_REVOKED);
        ack(task);
        return;
    }
    if (!task->reg) {
        finished(task, TASKS_REJECTED);
        wv_error("tasks: received unregistered task of type '%s' (id %s): rejected, FAILURE "
                 "NotRegistered",
                 msg->task.p, msg->id.p);
        store_exc(task, CELERY_FAILURE, "NotRegistered", "celery.exceptions", msg->task.p);
        event_exc(task, "task-failed", "NotRegistered", msg->task.p);
        int rc = t->tr->ops->reject(t->tr, &task->m);
        if (rc < 0)
            wv_error("tasks: reject %s: %s (%s)", msg->id.p, wv_strerror(rc), wv_errmsg());
        return;
    }
    if (!t->acks_late)
        ack(task);
    int64_t t0 = wv_now();
    if (t->track_started) {
        celery_result_msg m = {.status = CELERY_STARTED,
                               .task_id = msg->id.p,
                               .pid = t->pid,
                               .hostname = t->hostname,
                               .date_done_ns = CELERY_NO_TIME};
        store(task, &m);
    }
    event_simple(task, "task-started");
    int rc = wv_json_parse(msg->args.p, msg->args.n, &task->args);
    if (rc == 0)
        rc = wv_json_parse(msg->kwargs.p, msg->kwargs.n, &task->kwargs);
    int64_t hard = msg->time_limit > 0 ? t0 + (int64_t)(msg->time_limit * 1e9) : WV_NEVER;
    int64_t soft = msg->soft_time_limit > 0 ? t0 + (int64_t)(msg->soft_time_limit * 1e9) : WV_NEVER;
    bool hard_hit = false;
    if (rc == 0) {
        /* the body in a fiber of its own, so that the hard limit and a
         * revoke with terminate can cancel it and still report */
        task->body = wv_group_new();
        rc = task->body ? 0 : -ENOMEM;
        task->next = t->running;
        if (t->running)
            t->running->prev = task;
        t->running = task;
        task->body_deadline = soft < hard ? soft : hard;
        int64_t tb = wv_now();
        if (rc == 0)
            rc = wv_group_spawn(task->body, body_fiber, task, &(wv_spawn_opts){.name = "task"});
        if (rc == 0) {
            wv_gauge_inc(t->nrunning);
            /* join cancels the body when the hard limit passes */
            int64_t old = wv_deadline_set(hard);
            int jr = wv_group_join(task->body);
            wv_deadline_set(old);
            hard_hit = jr == -ETIMEDOUT;
            rc = task->rc;
            wv_gauge_dec(t->nrunning);
            wv_histogram_observe(task->reg->m.duration, (double)(wv_now() - tb) / 1e9);
        }
        if (task->prev)
            task->prev->next = task->next;
        else
            t->running = task->next;
        if (task->next)
            task->next->prev = task->prev;
        wv_group_free(task->body);
        task->body = NULL;
    }
    t->processed++;
    if (task->terminated) {
        revoked(task, "terminated");
        finished(task, TASKS_REVOKED);
    } else if (hard_hit) {
        finished(task, TASKS_FAILURE);
        char m[64];
        snprintf(m, sizeof m, "TimeLimitExceeded(%g,)", msg->time_limit);
        wv_error("tasks: hard time limit (%gs) exceeded for %s[%s]", msg->time_limit, msg->task.p,
                 msg->id.p);
        store_exc(task, CELERY_FAILURE, "TimeLimitExceeded", "celery.exceptions", m);
        event_exc(task, "task-failed", "TimeLimitExceeded", m);
    } else if (rc >= 0) {
        if (task->wrote && wv_json_finish(&task->w) < 0) {
            wv_error("tasks: %s[%s] wrote no valid JSON result", msg->task.p, msg->id.p);
            task->wrote = false;
        }
        celery_result_msg m = {.status = CELERY_SUCCESS,
                               .task_id = msg->id.p,
                               .result = task->wrote ? task->result.p : NULL,
                               .result_len = task->wrote ? task->result.n : 0,
                               .date_done_ns = tasks_real_ns()};
        store(task, &m);
        finished(task, TASKS_SUCCESS);
        if (task->wrote)
            follow_ups(task, true, task->result.p, task->result.n);
        else
            follow_ups(task, true, "null", 4);
        if (events_on(t)) {
            event e = {0};
            event_begin(t, &e, msg->id.p);
            if (task->wrote)
                repr_field(&e.j, "result", task->result.p, task->result.n);
            else
                repr_field(&e.j, "result", "null", 4);
            wv_json_key(&e.j, "runtime");
            wv_json_double(&e.j, (double)(wv_now() - t0) / 1e9);
            event_send(t, &e, "task-succeeded");
        }
    } else if (task->retrying && rc == -EAGAIN) {
        /* RETRY was stored by wv_task_retry, before it sent the retry */
        finished(task, TASKS_RETRY);
        wv_info("tasks: %s[%s] retry: %s", msg->task.p, msg->id.p, task->exc_msg.p);
        event_exc(task, "task-retried", task->exc_type, task->exc_msg.p);
    } else {
        const char *type, *module = NULL;
        const char *text;
        char buf[64];
        if (task->exc_type[0]) {
            wv_buf_append(&task->exc_msg, "", 1); /* a C string: wv_buf has no NUL */
            type = task->exc_type;
            text = task->exc_msg.p ? task->exc_msg.p : "";
            if (strcmp(type, "MaxRetriesExceededError") == 0)
                module = "celery.exceptions";
        } else if (rc == -ETIMEDOUT && soft != WV_NEVER && wv_now() >= soft) {
            type = "SoftTimeLimitExceeded";
            module = "celery.exceptions";
            snprintf(buf, sizeof buf, "SoftTimeLimitExceeded(%g,)", msg->soft_time_limit);
            text = buf;
        } else {
            const char *m = wv_errmsg();
            type = exc_for_errno(rc);
            text = *m ? m : wv_strerror(rc);
        }
        store_exc(task, CELERY_FAILURE, type, module, text);
        finished(task, TASKS_FAILURE);
        wv_buf quoted = {0};
        if (tasks_py_string(msg->id.p, msg->id.n, &quoted) == 0)
            follow_ups(task, false, quoted.p, quoted.n);
        wv_buf_free(&quoted);
        event_exc(task, "task-failed", type, text);
        wv_info("tasks: %s[%s] failed: %s: %s", msg->task.p, msg->id.p, type, text);
    }
    if (t->acks_late && !wv_cancelled())
        ack(task);
}

static void requeue(wv_task *task)
{
    tasks_transport *tr = task->t->tr;
    int rc = tr->ops->requeue(tr, &task->m);
    if (rc < 0)
        wv_error("tasks: requeue %s: %s (%s)", task->m.msg.id.p, wv_strerror(rc), wv_errmsg());
}

static int task_fiber(void *arg)
{
    wv_task *task = arg;
    wv_tasks *t = task->t;
    const celery_task *msg = &task->m.msg;
    int rc;
    if ((!task->has_slot || t->acks_late) && t->tr->ops->hold &&
        (rc = t->tr->ops->hold(t->tr, &task->m)) < 0)
        wv_error("tasks: recording %s unacked: %s (%s)", msg->id.p, wv_strerror(rc), wv_errmsg());
    event_received(task);
    if (task->m.msg.eta_ns != CELERY_NO_TIME) {
        /* held until due; at warm shutdown back to its queue */
        int64_t wait_ms = (task->m.msg.eta_ns - tasks_real_ns()) / 1000000;
        int x;
        if (wait_ms > 0 &&
            wv_chan_recv_until(t->stopping, &x, wv_after_ms(wait_ms)) != -ETIMEDOUT) {
            if (!wv_cancelled())
                requeue(task);
            slot_release(task);
            task_free(task);
            return 0;
        }
        /* one taken when it was due already kept the taker's slot: a
         * second would wait for itself with concurrency 1 */
        if (!task->has_slot) {
            char one = 1;
            if (wv_chan_send(t->slots, &one) < 0) {
                task_free(task);
                return 0;
            }
            task->has_slot = true;
        }
    }
    run(task);
    slot_release(task);
    task_free(task);
    return 0;
}

/* A message taken: its task fiber, holding the slot taken for it. */
static int handle(wv_tasks *t, wv_task *task, wv_group *g)
{
    const celery_task *msg = &task->m.msg;
    for (int i = 0; i < t->nregs; i++)
        if (strcmp(t->regs[i].name, msg->task.p) == 0)
            task->reg = &t->regs[i];
    if (!task->reg && !t->unreg.received)
        tasks_metrics_task(&t->unreg, TASKS_UNREGISTERED, t->queue);
    wv_counter_inc(metrics_of(task)->received);
    if (msg->eta_ns != CELERY_NO_TIME && msg->eta_ns > tasks_real_ns())
        slot_release(task); /* held: it takes one when due */
    /* recorded (hold) in its own fiber, so the taker takes the next at once */
    int rc = wv_group_spawn(g, task_fiber, task, &(wv_spawn_opts){.name = "task"});
    if (rc < 0) {
        requeue(task);
        slot_release(task);
        task_free(task);
    }
    return rc;
}

static int upkeep(void *arg)
{
    wv_tasks *t = arg;
    return t->tr->ops->upkeep(t->tr, t->stopping);
}

/* The queue's depth into its gauge every depth_ms, from a fiber of its own:
 * a scrape only reads the last sample, and never waits on the broker. */
static int depth_sampler(void *arg)
{
    wv_tasks *t = arg;
    bool failing = false;
    for (;;) {
        int64_t n = 0, old = wv_deadline_set(wv_after_ms(t->depth_ms < 5000 ? 5000 : t->depth_ms));
        int rc = t->tr->ops->depth(t->tr, t->queue, &n);
        wv_deadline_set(old);
        if (rc == 0)
            wv_gauge_set(t->depth, (double)n);
        else if (!failing && !wv_cancelled())
            wv_warn("tasks: the depth of %s: %s (%s)", t->queue, wv_strerror(rc), wv_errmsg());
        failing = rc < 0;
        int x;
        if (wv_chan_recv_until(t->stopping, &x, wv_after_ms(t->depth_ms)) != -ETIMEDOUT)
            break;
    }
    return 0;
}

/* One of the worker's takers: while fewer than concurrency tasks run, take
 * a message and start its task. Several takers (on a transport that allows
 * it) keep several takes in flight, so a worker is not bound by the
 * broker's round trip. */
static int taker(void *arg)
{
    wv_tasks *t = arg;
    int rc = 0;
    while (rc == 0 && !wv_stopping()) {
        char one = 1;
        if ((rc = wv_chan_send(t->slots, &one)) < 0)
            break;
        wv_task *task = calloc(1, sizeof *task);
        if (!task) {
            rc = -ENOMEM;
            break;
        }
        task->t = t;
        task->has_slot = true;
        /* a 1 s poll: a warm shutdown stops taking within a second without
         * cutting off a take (which could lose the message taken) */
        int got = t->tr->ops->take(t->tr, t->queue, 1000, &task->m);
        if (got == 1) {
            rc = handle(t, task, t->tasks);
            continue;
        }
        slot_release(task);
        task_free(task);
        if (got < 0) {
            if (got == -ECANCELED || wv_cancelled()) {
                rc = got;
                break;
            }
            wv_warn("tasks: taking from %s: %s (%s)", t->queue, wv_strerror(got), wv_errmsg());
            rc = wv_sleep_ms(1000);
        }
    }
    return rc;
}

int wv_tasks_work(wv_tasks *t)
{
    if (!t)
        return -EINVAL;
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "tasks: work from a fiber");
    if (wv_shard_id() != t->shard)
        return wv_fail(-EXDEV, "tasks: a client of shard %d used on shard %d", t->shard,
                       wv_shard_id());
    t->slots = wv_chan_new(1, (size_t)t->cfg.concurrency);
    t->stopping = wv_chan_new(sizeof(int), 0);
    wv_group *g = wv_group_new(), *rg = wv_group_new(), *tg = wv_group_new();
    int rc = t->slots && t->stopping && g && rg && tg ? 0 : -ENOMEM;
    t->nrunning = tasks_metrics_running(t->queue);
    if (rc == 0 && t->tr->ops->upkeep)
        rc = wv_group_spawn(rg, upkeep, t, &(wv_spawn_opts){.name = "tasks-upkeep"});
    if (rc == 0 && t->tr->ops->depth && (t->depth = tasks_metrics_depth(t->queue)))
        rc = wv_group_spawn(rg, depth_sampler, t, &(wv_spawn_opts){.name = "tasks-depth"});
    if (rc == 0 && t->tr->ops->listen)
        rc = wv_group_spawn(rg, control, t, &(wv_spawn_opts){.name = "tasks-control"});
    if (rc == 0 && t->tr->ops->publish)
        rc = wv_group_spawn(rg, heartbeat, t, &(wv_spawn_opts){.name = "tasks-heartbeat"});
    int takers =
        t->tr->ops->concurrent_take ? (t->cfg.concurrency < 8 ? t->cfg.concurrency : 8) : 1;
    t->tasks = g;
    for (int i = 0; rc == 0 && i < takers; i++)
        rc = wv_group_spawn(tg, taker, t, &(wv_spawn_opts){.name = "tasks-take"});
    if (tg) {
        int jr = wv_group_join(tg);
        rc = rc ? rc : jr;
    }
    if (t->stopping)
        wv_chan_close(t->stopping);
    if (g) {
        int jr = wv_group_join(g);
        rc = rc ? rc : (jr == -ECANCELED ? jr : 0);
    }
    if (rg)
        wv_group_join(rg);
    if (!wv_cancelled())
        event_worker(t, "worker-offline");
    wv_group_free(tg);
    wv_group_free(g);
    wv_group_free(rg);
    wv_chan_free(t->slots);
    wv_chan_free(t->stopping);
    t->slots = t->stopping = NULL;
    return rc;
}

/* ------------------------------------------------------------ producer */

int tasks_msg_from_opts(celery_task_msg *m, const char *name, const char *args_json,
                        const wv_task_send_opts *opts, const char *queue,
                        char tid[CELERY_UUID_LEN + 1])
{
    wv_task_send_opts o = opts ? *opts : (wv_task_send_opts){0};
    if (o.priority < 0 || o.priority > 9 || o.countdown_ms < 0 || o.eta_ms < 0 ||
        o.expires_ms < 0 || o.time_limit_ms < 0 || o.soft_time_limit_ms < 0)
        return wv_fail(-EINVAL, "tasks: a send option out of range");
    int rc = celery_uuid4(tid);
    if (rc < 0)
        return rc;
    celery_task_msg_init(m);
    m->task = name;
    m->id = tid;
    if (args_json) {
        m->args = args_json;
        m->args_len = strlen(args_json);
    }
    if (o.kwargs) {
        m->kwargs = o.kwargs;
        m->kwargs_len = strlen(o.kwargs);
    }
    int64_t now = tasks_real_ns();
    if (o.countdown_ms > 0)
        m->eta_ns = now + o.countdown_ms * 1000000;
    else if (o.eta_ms > 0)
        m->eta_ns = o.eta_ms * 1000000;
    if (o.time_limit_ms > 0)
        m->time_limit = (double)o.time_limit_ms / 1000.0;
    if (o.soft_time_limit_ms > 0)
        m->soft_time_limit = (double)o.soft_time_limit_ms / 1000.0;
    m->priority = o.priority;
    m->ignore_result = o.ignore_result;
    m->headers = o.headers;
    if (o.expires_ms > 0) {
        m->expires_ns = now + o.expires_ms * 1000000;
        m->expiration_ms = o.expires_ms;
    }
    m->exchange = "";
    m->routing_key = queue;
    return 0;
}

int wv_tasks_send(wv_tasks *t, const char *name, const char *args_json,
                  const wv_task_send_opts *opts, char id[37])
{
    if (!t || !name || !*name)
        return -EINVAL;
    if (wv_shard_id() != t->shard)
        return wv_fail(wv_shard_id() < 0 ? -EPERM : -EXDEV, "tasks: send from the client's shard");
    const char *queue = opts && opts->queue ? opts->queue : t->queue;
    char tid[CELERY_UUID_LEN + 1];
    celery_task_msg m;
    int rc = tasks_msg_from_opts(&m, name, args_json, opts, queue, tid);
    if (rc < 0)
        return rc;
    if (t->backend)
        m.reply_to = t->backend->ops->reply_to(t->backend);
    rc = send_msg(t, &m, queue);
    if (rc == 0 && id)
        memcpy(id, tid, sizeof tid);
    return rc;
}

typedef struct result_wait {
    wv_buf *result;
    int rc;
} result_wait;

/* 1: a final state (the outcome in w->rc), 0: not yet. */
static int meta_final(const char *text, size_t n, void *arg)
{
    result_wait *w = arg;
    celery_result r;
    int d = celery_result_decode(text, n, &r);
    if (d < 0) {
        w->rc = d;
        return 1;
    }
    int fin = 1;
    if (r.status == CELERY_SUCCESS) {
        w->rc = wv_buf_append(w->result, r.result.p, r.result.n);
    } else if (r.status == CELERY_FAILURE || r.status == CELERY_REVOKED) {
        /* exc_message is a list of the exception's args: the first, if a string */
        wv_json_doc *doc = NULL;
        const char *s = NULL;
        if (wv_json_parse(r.exc_message.p, r.exc_message.n, &doc) == 0)
            wv_json_as_string(wv_json_array_at(wv_json_doc_root(doc), 0), &s, NULL);
        if (s)
            w->rc = wv_fail(-EREMOTEIO, "%.*s: %s", (int)r.exc_type.n, r.exc_type.p, s);
        else
            w->rc = wv_fail(-EREMOTEIO, "%.*s: %.*s", (int)r.exc_type.n, r.exc_type.p,
                            (int)r.exc_message.n, r.exc_message.p);
        wv_json_doc_free(doc);
    } else {
        fin = 0;
    }
    celery_result_free(&r);
    return fin;
}

int wv_tasks_result(wv_tasks *t, const char *id, wv_buf *result)
{
    if (!t || !id || !result)
        return -EINVAL;
    if (!t->backend)
        return wv_fail(-EINVAL, "tasks: no result backend");
    if (wv_shard_id() != t->shard)
        return wv_fail(wv_shard_id() < 0 ? -EPERM : -EXDEV, "tasks: from the client's shard");
    result_wait w = {result, 0};
    int rc = t->backend->ops->wait(t->backend, id, meta_final, &w);
    return rc == 1 ? w.rc : rc;
}

const char *wv_tasks_state_name(wv_task_state s)
{
    static const char *const names[] = {"PENDING", "STARTED", "RETRY",
                                        "FAILURE", "SUCCESS", "REVOKED"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : NULL;
}

int wv_tasks_state(wv_tasks *t, const char *id, wv_task_state *state, wv_buf *result)
{
    if (!t || !id || !state || !result)
        return -EINVAL;
    if (!t->backend)
        return wv_fail(-EINVAL, "tasks: no result backend");
    if (!t->backend->ops->peek)
        return wv_fail(-ENOTSUP, "tasks: this result backend cannot look up a task's state");
    if (wv_shard_id() != t->shard)
        return wv_fail(wv_shard_id() < 0 ? -EPERM : -EXDEV, "tasks: from the client's shard");
    wv_buf meta = {0};
    int rc = t->backend->ops->peek(t->backend, id, &meta);
    *state = WV_TASK_PENDING;
    if (rc == 1) {
        celery_result r;
        rc = celery_result_decode(meta.p, meta.n, &r);
        if (rc == 0) {
            /* celery_state and wv_task_state name the same states in the same order */
            *state = (wv_task_state)r.status;
            if (r.status == CELERY_SUCCESS) {
                rc = wv_buf_append(result, r.result.p, r.result.n);
            } else if (r.status != CELERY_PENDING && r.status != CELERY_STARTED) {
                wv_json_doc *doc = NULL;
                const char *s = NULL;
                if (wv_json_parse(r.exc_message.p, r.exc_message.n, &doc) == 0)
                    wv_json_as_string(wv_json_array_at(wv_json_doc_root(doc), 0), &s, NULL);
                rc = s ? wv_buf_printf(result, "%.*s: %s", (int)r.exc_type.n, r.exc_type.p, s)
                       : wv_buf_printf(result, "%.*s: %.*s", (int)r.exc_type.n, r.exc_type.p,
                                       (int)r.exc_message.n, r.exc_message.p);
                wv_json_doc_free(doc);
            }
            celery_result_free(&r);
        }
    }
    wv_buf_free(&meta);
    return rc < 0 ? rc : 0;
}

int wv_tasks_revoke(wv_tasks *t, const char *id, bool terminate)
{
    if (!t || !id || !*id)
        return -EINVAL;
    if (!t->tr->ops->publish)
        return wv_fail(-ENOTSUP, "tasks: this broker has no remote control");
    if (wv_shard_id() != t->shard)
        return wv_fail(wv_shard_id() < 0 ? -EPERM : -EXDEV, "tasks: from the client's shard");
    wv_buf body = {0}, headers = {0};
    wv_json j;
    wv_json_init(&j, &body);
    wv_json_object_begin(&j);
    wv_json_key(&j, "method");
    wv_json_string(&j, "revoke");
    wv_json_key(&j, "arguments");
    wv_json_object_begin(&j);
    wv_json_key(&j, "task_id");
    wv_json_string(&j, id);
    wv_json_key(&j, "terminate");
    wv_json_bool(&j, terminate);
    wv_json_key(&j, "signal");
    wv_json_string(&j, "SIGTERM");
    wv_json_object_end(&j);
    wv_json_key(&j, "destination");
    wv_json_null(&j);
    wv_json_key(&j, "pattern");
    wv_json_null(&j);
    wv_json_key(&j, "matcher");
    wv_json_null(&j);
    wv_json_object_end(&j);
    int rc = wv_json_finish(&j);
    /* kombu's pidbox headers: a clock and an expiry (Celery's default: none
     * given, so only the clock) */
    rc = rc ? rc : wv_buf_printf(&headers, "{\"clock\": %lld}", (long long)++t->clock);
    wv_buf py = {0};
    rc = rc ? rc : celery_pyjson(body.p, body.n, &py);
    rc = rc ? rc : wv_buf_append(&headers, "", 1);
    if (rc == 0)
        rc = t->tr->ops->publish(t->tr, "celery.pidbox", "fanout", "", py.p, py.n, headers.p);
    wv_buf_free(&body);
    wv_buf_free(&headers);
    wv_buf_free(&py);
    return rc;
}
