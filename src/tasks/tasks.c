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

#include "tasks/transport.h"

typedef struct task_reg {
    char *name;
    wv_task_fn *fn;
    void *data;
} task_reg;

struct wv_tasks {
    tasks_transport *tr;
    tasks_backend *backend; /* NULL: results not stored */
    tasks_cfg cfg;
    char *queue, *dead_letter;
    bool acks_late;
    task_reg *regs;
    int nregs;
    int shard;
    /* while working */
    wv_chan *slots;    /* a token per running task: a semaphore */
    wv_chan *stopping; /* closed at warm shutdown: held tasks give back */
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
    char exc_type[64];
    wv_buf exc_msg;
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
    if (!redis_url(broker) && !amqp_url(broker))
        return wv_fail(-EPROTONOSUPPORT,
                       "tasks: broker %.16s...: only redis://, rediss://, amqp:// and amqps://",
                       broker);
    bool rpc = o.backend && has_scheme(o.backend, "rpc");
    if (o.backend && !redis_url(o.backend) && !rpc)
        return wv_fail(-EPROTONOSUPPORT, "tasks: result backend: only redis://, rediss:// and "
                                         "rpc://");
    if (rpc && !amqp_url(broker))
        return wv_fail(-EPROTONOSUPPORT,
                       "tasks: the rpc:// result backend needs an amqp:// or amqps:// broker");
    if (o.concurrency < 0 || o.visibility_timeout_ms < 0 || o.result_expires_ms < 0)
        return wv_fail(-EINVAL, "tasks: negative option");
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "tasks: open it from a fiber");
    wv_tasks *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->shard = wv_shard_id();
    t->queue = dupstr(o.queue ? o.queue : "celery");
    t->dead_letter = o.dead_letter ? dupstr(o.dead_letter) : NULL;
    t->acks_late = o.acks_late;
    t->cfg = (tasks_cfg){
        .queue = t->queue,
        .concurrency = o.concurrency ? o.concurrency : 16,
        .vt_ms = o.visibility_timeout_ms ? o.visibility_timeout_ms : 3600000,
        .result_expires_ms = o.result_expires_ms ? o.result_expires_ms : 86400000,
        .dead_letter = t->dead_letter,
    };
    int rc = t->queue && (t->dead_letter || !o.dead_letter) ? 0 : -ENOMEM;
    if (rc == 0)
        rc = amqp_url(broker) ? tasks_amqp_open(broker, &t->cfg, &t->tr)
                              : tasks_redis_open(broker, &t->cfg, &t->tr);
    if (rc == 0 && o.backend)
        rc = rpc ? tasks_rpc_backend_open(o.backend, &t->cfg, t->tr, &t->backend)
                 : tasks_redis_backend_open(o.backend, &t->cfg, t->tr, &t->backend);
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
    free(t->queue);
    free(t->dead_letter);
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
    r[t->nregs++] = (task_reg){n, fn, data};
    return 0;
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

static void store(wv_task *task, const celery_result_msg *m)
{
    wv_tasks *t = task->t;
    if (!t->backend || task->m.msg.ignore_result)
        return;
    int rc = t->backend->ops->store(t->backend, m, &task->m.msg);
    if (rc < 0)
        wv_error("tasks: storing the result of %s: %s (%s)", m->task_id, wv_strerror(rc),
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

static void run(wv_task *task)
{
    wv_tasks *t = task->t;
    const celery_task *msg = &task->m.msg;
    if (msg->expires_ns != CELERY_NO_TIME && tasks_real_ns() > msg->expires_ns) {
        wv_warn("tasks: %s[%s] expired: revoked", msg->task.p, msg->id.p);
        store_exc(task, CELERY_REVOKED, "TaskRevokedError", "celery.exceptions", "expired");
        ack(task);
        return;
    }
    if (!task->reg) {
        wv_error("tasks: received unregistered task of type '%s' (id %s): rejected, FAILURE "
                 "NotRegistered",
                 msg->task.p, msg->id.p);
        store_exc(task, CELERY_FAILURE, "NotRegistered", "celery.exceptions", msg->task.p);
        int rc = t->tr->ops->reject(t->tr, &task->m);
        if (rc < 0)
            wv_error("tasks: reject %s: %s (%s)", msg->id.p, wv_strerror(rc), wv_errmsg());
        return;
    }
    if (!t->acks_late)
        ack(task);
    int rc = wv_json_parse(msg->args.p, msg->args.n, &task->args);
    if (rc == 0)
        rc = wv_json_parse(msg->kwargs.p, msg->kwargs.n, &task->kwargs);
    int64_t hard = WV_NEVER;
    if (rc == 0) {
        if (msg->time_limit > 0)
            hard = wv_now() + (int64_t)(msg->time_limit * 1e9);
        int64_t old = wv_deadline_set(hard);
        wv_errmsg_clear();
        rc = task->reg->fn(task);
        wv_deadline_set(old);
    }
    if (rc >= 0) {
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
    } else if (task->exc_type[0]) {
        wv_buf_append(&task->exc_msg, "", 1); /* a C string: wv_buf has no NUL */
        store_exc(task, CELERY_FAILURE, task->exc_type, NULL,
                  task->exc_msg.p ? task->exc_msg.p : "");
    } else if (rc == -ETIMEDOUT && hard != WV_NEVER && wv_now() >= hard) {
        char m[64];
        snprintf(m, sizeof m, "TimeLimitExceeded(%g,)", msg->time_limit);
        store_exc(task, CELERY_FAILURE, "TimeLimitExceeded", "celery.exceptions", m);
    } else {
        const char *m = wv_errmsg();
        store_exc(task, CELERY_FAILURE, exc_for_errno(rc), NULL, *m ? m : wv_strerror(rc));
    }
    if (rc < 0)
        wv_info("tasks: %s[%s] failed: %s", msg->task.p, msg->id.p, wv_strerror(rc));
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
    if (task->m.msg.eta_ns != CELERY_NO_TIME) {
        /* held until due; at warm shutdown back to its queue */
        int64_t wait_ms = (task->m.msg.eta_ns - tasks_real_ns()) / 1000000;
        int x;
        if (wait_ms > 0 &&
            wv_chan_recv_until(t->stopping, &x, wv_after_ms(wait_ms)) != -ETIMEDOUT) {
            if (!wv_cancelled())
                requeue(task);
            task_free(task);
            return 0;
        }
        char one = 1;
        if (wv_chan_send(t->slots, &one) < 0) {
            task_free(task);
            return 0;
        }
        task->has_slot = true;
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
    bool held = msg->eta_ns != CELERY_NO_TIME && msg->eta_ns > tasks_real_ns();
    if (held)
        slot_release(task); /* it takes one when due */
    int rc;
    if ((held || t->acks_late) && t->tr->ops->hold && (rc = t->tr->ops->hold(t->tr, &task->m)) < 0)
        wv_error("tasks: recording %s unacked: %s (%s)", msg->id.p, wv_strerror(rc), wv_errmsg());
    rc = wv_group_spawn(g, task_fiber, task, &(wv_spawn_opts){.name = "task"});
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
    wv_group *g = wv_group_new(), *rg = wv_group_new();
    int rc = t->slots && t->stopping && g && rg ? 0 : -ENOMEM;
    if (rc == 0 && t->tr->ops->upkeep)
        rc = wv_group_spawn(rg, upkeep, t, &(wv_spawn_opts){.name = "tasks-upkeep"});
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
            rc = handle(t, task, g);
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
            if ((rc = wv_sleep_ms(1000)) < 0)
                break;
        }
    }
    if (t->stopping)
        wv_chan_close(t->stopping);
    if (g) {
        int jr = wv_group_join(g);
        rc = rc ? rc : (jr == -ECANCELED ? jr : 0);
    }
    if (rg)
        wv_group_join(rg);
    wv_group_free(g);
    wv_group_free(rg);
    wv_chan_free(t->slots);
    wv_chan_free(t->stopping);
    t->slots = t->stopping = NULL;
    return rc;
}

/* ------------------------------------------------------------ producer */

int wv_tasks_send(wv_tasks *t, const char *name, const char *args_json,
                  const wv_task_send_opts *opts, char id[37])
{
    if (!t || !name || !*name)
        return -EINVAL;
    if (wv_shard_id() != t->shard)
        return wv_fail(wv_shard_id() < 0 ? -EPERM : -EXDEV, "tasks: send from the client's shard");
    wv_task_send_opts o = opts ? *opts : (wv_task_send_opts){0};
    const char *queue = o.queue ? o.queue : t->queue;
    char tid[CELERY_UUID_LEN + 1];
    int rc = celery_uuid4(tid);
    if (rc < 0)
        return rc;
    celery_task_msg m;
    celery_task_msg_init(&m);
    m.task = name;
    m.id = tid;
    if (args_json) {
        m.args = args_json;
        m.args_len = strlen(args_json);
    }
    if (o.kwargs) {
        m.kwargs = o.kwargs;
        m.kwargs_len = strlen(o.kwargs);
    }
    int64_t now = tasks_real_ns();
    if (o.countdown_ms > 0)
        m.eta_ns = now + o.countdown_ms * 1000000;
    if (o.expires_ms > 0) {
        m.expires_ns = now + o.expires_ms * 1000000;
        m.expiration_ms = o.expires_ms;
    }
    m.exchange = "";
    m.routing_key = queue;
    if (t->backend)
        m.reply_to = t->backend->ops->reply_to(t->backend);
    rc = t->tr->ops->send(t->tr, &m, queue);
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
