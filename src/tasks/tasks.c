/*
 * src/tasks/tasks.c: Celery-compatible workers and producers over Redis
 * (include/weave/tasks.h), kombu 5.2's Redis transport and Celery 5.2's
 * Redis result backend, on weave's Redis client and the codec in celery.h.
 */
#include "weave/tasks.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tasks/celery.h"
#include "weave/redis.h"

#define SEP "\x06\x16"

typedef struct task_reg {
    char *name;
    wv_task_fn *fn;
    void *data;
} task_reg;

struct wv_tasks {
    wv_redis *broker;
    wv_redis *backend; /* == broker when the URLs are the same; NULL: none */
    char *queue;
    int concurrency;
    bool acks_late;
    int64_t vt_ms, expires_ms;
    task_reg *regs;
    int nregs;
    int shard;
    /* while working */
    wv_chan *slots;    /* a token per running task: a semaphore */
    wv_chan *stopping; /* closed at warm shutdown: held tasks give back */
};

struct wv_task {
    wv_tasks *t;
    celery_task msg;
    const task_reg *reg;
    wv_json_doc *args, *kwargs;
    wv_buf result;
    wv_json w;
    bool wrote;
    bool recorded; /* in unacked */
    bool has_slot;
    char exc_type[64];
    wv_buf exc_msg;
};

static int64_t real_ns(void)
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

static bool redis_url(const char *u)
{
    return u && (strncmp(u, "redis://", 8) == 0 || strncmp(u, "rediss://", 9) == 0);
}

int wv_tasks_open(const char *broker, const wv_tasks_opts *opts, wv_tasks **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    wv_tasks_opts o = opts ? *opts : (wv_tasks_opts){0};
    if (!broker)
        return wv_fail(-EINVAL, "tasks: no broker URL");
    if (!redis_url(broker))
        return wv_fail(-EPROTONOSUPPORT, "tasks: broker %.16s...: only redis:// and rediss://",
                       broker);
    if (o.backend && !redis_url(o.backend))
        return wv_fail(-EPROTONOSUPPORT, "tasks: result backend: only redis:// and rediss://");
    if (o.concurrency < 0 || o.visibility_timeout_ms < 0 || o.result_expires_ms < 0)
        return wv_fail(-EINVAL, "tasks: negative option");
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "tasks: open it from a fiber");
    wv_tasks *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->shard = wv_shard_id();
    t->queue = dupstr(o.queue ? o.queue : "celery");
    t->concurrency = o.concurrency ? o.concurrency : 16;
    t->acks_late = o.acks_late;
    t->vt_ms = o.visibility_timeout_ms ? o.visibility_timeout_ms : 3600000;
    t->expires_ms = o.result_expires_ms ? o.result_expires_ms : 86400000;
    int rc = t->queue ? 0 : -ENOMEM;
    if (rc == 0)
        rc = wv_redis_open(broker, NULL, &t->broker);
    if (rc == 0 && o.backend) {
        if (strcmp(o.backend, broker) == 0)
            t->backend = t->broker;
        else
            rc = wv_redis_open(o.backend, NULL, &t->backend);
    }
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
    if (t->backend && t->backend != t->broker)
        wv_redis_close(t->backend);
    wv_redis_close(t->broker);
    for (int i = 0; i < t->nregs; i++)
        free(t->regs[i].name);
    free(t->regs);
    free(t->queue);
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
    return task->msg.id.p;
}

const char *wv_task_name(const wv_task *task)
{
    return task->msg.task.p;
}

int wv_task_retries(const wv_task *task)
{
    return (int)task->msg.retries;
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

/* SET celery-task-meta-<id> PX expires + PUBLISH, as Celery's backend. */
static int store_meta(wv_tasks *t, const celery_result_msg *m)
{
    if (!t->backend)
        return 0;
    wv_buf meta = {0}, key = {0};
    int rc = celery_result_encode(m, &meta);
    if (rc == 0)
        rc = wv_buf_printf(&key, "celery-task-meta-%s", m->task_id);
    char px[24];
    snprintf(px, sizeof px, "%lld", (long long)t->expires_ms);
    wv_redis_pipe *p = NULL;
    if (rc == 0)
        rc = wv_redis_pipe_new(t->backend, false, &p);
    if (rc == 0) {
        wv_str k = {key.p, key.n}, v = {meta.p, meta.n};
        rc = wv_redis_pipe_addv(p, 5,
                                (wv_str[]){WV_STR("SET"), k, v, WV_STR("PX"), {px, strlen(px)}});
        if (rc == 0)
            rc = wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("PUBLISH"), k, v});
        if (rc == 0)
            rc = wv_redis_pipe_exec(p);
        wv_redis_pipe_free(p);
    }
    if (rc < 0)
        wv_error("tasks: storing the result of %s: %s (%s)", m->task_id, wv_strerror(rc),
                 wv_errmsg());
    wv_buf_free(&meta);
    wv_buf_free(&key);
    return rc;
}

static void store_exc(wv_task *task, celery_state st, const char *type, const char *module,
                      const char *msg)
{
    if (task->msg.ignore_result)
        return;
    celery_result_msg m = {.status = st,
                           .task_id = task->msg.id.p,
                           .exc_type = type,
                           .exc_module = module,
                           .exc_message = msg,
                           .date_done_ns = real_ns()};
    store_meta(task->t, &m);
}

/* ------------------------------------------------------------ unacked */

/* s[0..n) as a JSON string, written as Python's json.dumps writes it. */
static int py_string(const char *s, size_t n, wv_buf *out)
{
    wv_buf tmp = {0};
    wv_json j;
    wv_json_init(&j, &tmp);
    wv_json_stringn(&j, s ? s : "", s ? n : 0);
    int rc = wv_json_finish(&j);
    if (rc == 0)
        rc = celery_pyjson(tmp.p, tmp.n, out);
    wv_buf_free(&tmp);
    return rc;
}

static int record(wv_task *task)
{
    wv_tasks *t = task->t;
    wv_buf v = {0};
    char score[40];
    snprintf(score, sizeof score, "%.6f", (double)real_ns() / 1e9);
    int rc = wv_buf_puts(&v, "[");
    rc = rc ? rc : wv_buf_append(&v, task->msg.envelope.p, task->msg.envelope.n);
    rc = rc ? rc : wv_buf_puts(&v, ", ");
    rc = rc ? rc : py_string(task->msg.exchange.p, task->msg.exchange.n, &v);
    rc = rc ? rc : wv_buf_puts(&v, ", ");
    rc = rc ? rc : py_string(task->msg.routing_key.p, task->msg.routing_key.n, &v);
    rc = rc ? rc : wv_buf_puts(&v, "]");
    wv_redis_pipe *p = NULL;
    if (rc == 0)
        rc = wv_redis_pipe_new(t->broker, false, &p);
    if (rc == 0) {
        wv_str tag = task->msg.delivery_tag;
        rc = wv_redis_pipe_addv(
            p, 4, (wv_str[]){WV_STR("ZADD"), WV_STR("unacked_index"), {score, strlen(score)}, tag});
        if (rc == 0)
            rc = wv_redis_pipe_addv(p, 4,
                                    (wv_str[]){WV_STR("HSET"), WV_STR("unacked"), tag, {v.p, v.n}});
        if (rc == 0)
            rc = wv_redis_pipe_exec(p);
        wv_redis_pipe_free(p);
    }
    wv_buf_free(&v);
    if (rc == 0)
        task->recorded = true;
    return rc;
}

static int ack(wv_task *task)
{
    if (!task->recorded)
        return 0;
    wv_redis_pipe *p;
    int rc = wv_redis_pipe_new(task->t->broker, false, &p);
    if (rc < 0)
        return rc;
    wv_str tag = task->msg.delivery_tag;
    rc = wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("ZREM"), WV_STR("unacked_index"), tag});
    if (rc == 0)
        rc = wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("HDEL"), WV_STR("unacked"), tag});
    if (rc == 0)
        rc = wv_redis_pipe_exec(p);
    wv_redis_pipe_free(p);
    if (rc == 0)
        task->recorded = false;
    else
        wv_error("tasks: ack %s: %s (%s)", task->msg.id.p, wv_strerror(rc), wv_errmsg());
    return rc;
}

/* The end of the JSON object starting at s[0] (its '{'), or 0. */
static size_t object_end(const char *s, size_t n)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return 0;
}

/* The queue a restored message goes to: kombu's _lookup (an anonymous
 * exchange: the routing key; else the binding table's matching queues, the
 * first of them). */
static int lookup_queue(wv_tasks *t, const char *ex, const char *rk, wv_buf *q)
{
    if (!*ex)
        return wv_buf_puts(q, rk);
    wv_buf key = {0};
    wv_redis_reply *rep = NULL;
    int rc = wv_buf_printf(&key, "_kombu.binding.%s", ex);
    if (rc == 0)
        rc = wv_redis_cmdv(t->broker, &rep, 2, (wv_str[]){WV_STR("SMEMBERS"), {key.p, key.n}});
    wv_buf_free(&key);
    bool found = false;
    size_t rkn = strlen(rk);
    for (size_t i = 0; rc == 0 && rep && i < rep->len && !found; i++) {
        const wv_redis_reply *e = &rep->elem[i];
        if (e->len > rkn + 4 && memcmp(e->str, rk, rkn) == 0 &&
            memcmp(e->str + rkn, SEP SEP, 4) == 0) {
            found = true;
            rc = wv_buf_append(q, e->str + rkn + 4, e->len - rkn - 4);
        }
    }
    wv_redis_reply_free(rep);
    if (rc == 0 && !found)
        rc = wv_buf_puts(q, rk);
    return rc;
}

/* kombu's restore_by_tag: WATCH unacked, HGET, then MULTI ZREM HDEL RPUSH. */
static int restore_tag(wv_tasks *t, wv_str tag)
{
    int rc = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        wv_redis *h;
        if ((rc = wv_redis_acquire(t->broker, &h)) < 0)
            return rc;
        wv_buf v = {0}, q = {0};
        wv_json_doc *doc = NULL;
        rc = wv_redis_cmd(h, NULL, "WATCH", "unacked");
        int got = rc < 0 ? rc : wv_redis_hget(h, WV_STR("unacked"), tag, &v);
        size_t env_end = 0;
        if (got == 1) {
            rc = wv_json_parse(v.p, v.n, &doc);
            const wv_json_val *root = wv_json_doc_root(doc);
            const char *ex = NULL, *rk = NULL;
            if (rc == 0 &&
                (wv_json_as_string(wv_json_array_at(root, 1), &ex, NULL) < 0 ||
                 wv_json_as_string(wv_json_array_at(root, 2), &rk, NULL) < 0 || v.n < 2 ||
                 v.p[1] != '{' || (env_end = object_end(v.p + 1, v.n - 1)) == 0))
                rc = -EBADMSG;
            if (rc == 0)
                rc = lookup_queue(t, ex, rk, &q);
        } else if (got < 0) {
            rc = got;
        }
        if (rc == 0) {
            wv_redis_pipe *p;
            rc = wv_redis_pipe_new(h, true, &p);
            if (rc == 0) {
                wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("ZREM"), WV_STR("unacked_index"), tag});
                wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("HDEL"), WV_STR("unacked"), tag});
                if (got == 1)
                    wv_redis_pipe_addv(p, 3,
                                       (wv_str[]){WV_STR("RPUSH"), {q.p, q.n}, {v.p + 1, env_end}});
                rc = wv_redis_pipe_exec(p);
                wv_redis_pipe_free(p);
            }
        }
        wv_json_doc_free(doc);
        wv_buf_free(&v);
        wv_buf_free(&q);
        wv_redis_release(h);
        if (rc != -EAGAIN)
            break;
    }
    if (rc < 0)
        wv_error("tasks: restoring unacked %.*s: %s (%s)", (int)tag.n, tag.p, wv_strerror(rc),
                 wv_errmsg());
    return rc;
}

static const char RELEASE_LUA[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
    "return 0";

/* kombu's restore_visible: under unacked_mutex, every record older than
 * the visibility timeout back to its queue. */
static int restore_visible(wv_tasks *t, wv_redis_script *release)
{
    char token[CELERY_UUID_LEN + 1];
    int rc = celery_uuid4(token);
    if (rc < 0)
        return rc;
    rc = wv_redis_set(t->broker, WV_STR("unacked_mutex"), (wv_str){token, strlen(token)},
                      &(wv_redis_set_opts){.ttl_ms = 300000, .nx = true});
    if (rc <= 0)
        return rc;
    char ceil[40];
    snprintf(ceil, sizeof ceil, "%.6f", (double)real_ns() / 1e9 - (double)t->vt_ms / 1000.0);
    wv_redis_reply *rep = NULL;
    rc = wv_redis_cmd(t->broker, &rep, "ZREVRANGEBYSCORE", "unacked_index", ceil, "0");
    for (size_t i = 0; rc == 0 && rep && i < rep->len; i++)
        if (rep->elem[i].type == WV_REDIS_STRING)
            restore_tag(t, (wv_str){rep->elem[i].str, rep->elem[i].len});
    wv_redis_reply_free(rep);
    wv_redis_eval(t->broker, release, 1, (wv_str[]){WV_STR("unacked_mutex")}, 1,
                  (wv_str[]){{token, strlen(token)}}, NULL);
    return rc;
}

static int restorer(void *arg)
{
    wv_tasks *t = arg;
    wv_redis_script *release;
    if (wv_redis_script_new(RELEASE_LUA, &release) < 0)
        return 0;
    int64_t period = t->vt_ms / 2 < 10000 ? t->vt_ms / 2 : 10000;
    if (period < 100)
        period = 100;
    for (;;) {
        restore_visible(t, release);
        int x;
        if (wv_chan_recv_until(t->stopping, &x, wv_after_ms(period)) != -ETIMEDOUT)
            break;
    }
    wv_redis_script_free(release);
    return 0;
}

/* ------------------------------------------------------------ running */

static void task_free(wv_task *task)
{
    celery_task_free(&task->msg);
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
    if (task->msg.expires_ns != CELERY_NO_TIME && real_ns() > task->msg.expires_ns) {
        wv_warn("tasks: %s[%s] expired: revoked", task->msg.task.p, task->msg.id.p);
        store_exc(task, CELERY_REVOKED, "TaskRevokedError", "celery.exceptions", "expired");
        ack(task);
        return;
    }
    if (!task->reg) {
        wv_error("tasks: received unregistered task of type '%s' (id %s): acked, FAILURE "
                 "NotRegistered",
                 task->msg.task.p, task->msg.id.p);
        ack(task);
        store_exc(task, CELERY_FAILURE, "NotRegistered", "celery.exceptions", task->msg.task.p);
        return;
    }
    if (!t->acks_late)
        ack(task);
    int rc = wv_json_parse(task->msg.args.p, task->msg.args.n, &task->args);
    if (rc == 0)
        rc = wv_json_parse(task->msg.kwargs.p, task->msg.kwargs.n, &task->kwargs);
    int64_t hard = WV_NEVER;
    if (rc == 0) {
        if (task->msg.time_limit > 0)
            hard = wv_now() + (int64_t)(task->msg.time_limit * 1e9);
        int64_t old = wv_deadline_set(hard);
        wv_errmsg_clear();
        rc = task->reg->fn(task);
        wv_deadline_set(old);
    }
    if (!task->msg.ignore_result) {
        if (rc >= 0) {
            if (task->wrote && wv_json_finish(&task->w) < 0) {
                wv_error("tasks: %s[%s] wrote no valid JSON result", task->msg.task.p,
                         task->msg.id.p);
                task->wrote = false;
            }
            celery_result_msg m = {.status = CELERY_SUCCESS,
                                   .task_id = task->msg.id.p,
                                   .result = task->wrote ? task->result.p : NULL,
                                   .result_len = task->wrote ? task->result.n : 0,
                                   .date_done_ns = real_ns()};
            store_meta(t, &m);
        } else if (task->exc_type[0]) {
            wv_buf_append(&task->exc_msg, "", 1); /* a C string: wv_buf has no NUL */
            store_exc(task, CELERY_FAILURE, task->exc_type, NULL,
                      task->exc_msg.p ? task->exc_msg.p : "");
        } else if (rc == -ETIMEDOUT && hard != WV_NEVER && wv_now() >= hard) {
            char msg[64];
            snprintf(msg, sizeof msg, "TimeLimitExceeded(%g,)", task->msg.time_limit);
            store_exc(task, CELERY_FAILURE, "TimeLimitExceeded", "celery.exceptions", msg);
        } else {
            const char *m = wv_errmsg();
            store_exc(task, CELERY_FAILURE, exc_for_errno(rc), NULL, *m ? m : wv_strerror(rc));
        }
    }
    if (rc < 0)
        wv_info("tasks: %s[%s] failed: %s", task->msg.task.p, task->msg.id.p, wv_strerror(rc));
    if (t->acks_late && !wv_cancelled())
        ack(task);
}

static int task_fiber(void *arg)
{
    wv_task *task = arg;
    wv_tasks *t = task->t;
    if (task->msg.eta_ns != CELERY_NO_TIME) {
        /* held until due; at warm shutdown back to its queue */
        int64_t wait_ms = (task->msg.eta_ns - real_ns()) / 1000000;
        int x;
        if (wait_ms > 0 &&
            wv_chan_recv_until(t->stopping, &x, wv_after_ms(wait_ms)) != -ETIMEDOUT) {
            if (!wv_cancelled())
                restore_tag(t, task->msg.delivery_tag);
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

static int handle(wv_tasks *t, wv_buf *env, wv_group *g)
{
    wv_task *task = calloc(1, sizeof *task);
    if (!task)
        return -ENOMEM;
    task->t = t;
    task->has_slot = true;
    int rc = celery_task_decode_redis(env->p, env->n, &task->msg);
    if (rc < 0) {
        wv_error("tasks: dropping a message that does not decode: %s (%s)", wv_strerror(rc),
                 wv_errmsg());
        slot_release(task);
        task_free(task);
        return 0;
    }
    for (int i = 0; i < t->nregs; i++)
        if (strcmp(t->regs[i].name, task->msg.task.p) == 0)
            task->reg = &t->regs[i];
    bool held = task->msg.eta_ns != CELERY_NO_TIME && task->msg.eta_ns > real_ns();
    if (held)
        slot_release(task); /* it takes one when due */
    if ((held || t->acks_late) && (rc = record(task)) < 0)
        wv_error("tasks: recording %s unacked: %s (%s)", task->msg.id.p, wv_strerror(rc),
                 wv_errmsg());
    rc = wv_group_spawn(g, task_fiber, task, &(wv_spawn_opts){.name = "task"});
    if (rc < 0) {
        if (task->recorded)
            restore_tag(t, task->msg.delivery_tag);
        slot_release(task);
        task_free(task);
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
    t->slots = wv_chan_new(1, (size_t)t->concurrency);
    t->stopping = wv_chan_new(sizeof(int), 0);
    wv_group *g = wv_group_new(), *rg = wv_group_new();
    int rc = t->slots && t->stopping && g && rg ? 0 : -ENOMEM;
    if (rc == 0)
        rc = wv_group_spawn(rg, restorer, t, &(wv_spawn_opts){.name = "tasks-restore"});
    wv_str q = {t->queue, strlen(t->queue)};
    wv_buf env = {0};
    while (rc == 0 && !wv_stopping()) {
        char one = 1;
        if ((rc = wv_chan_send(t->slots, &one)) < 0)
            break;
        wv_buf_reset(&env);
        int got = wv_redis_brpop(t->broker, 1, &q, 1000, NULL, &env);
        if (got == 1) {
            rc = handle(t, &env, g);
            continue;
        }
        char x;
        wv_chan_try_recv(t->slots, &x);
        if (got < 0) {
            if (got == -ECANCELED || wv_cancelled()) {
                rc = got;
                break;
            }
            wv_warn("tasks: BRPOP %s: %s (%s)", t->queue, wv_strerror(got), wv_errmsg());
            if ((rc = wv_sleep_ms(1000)) < 0)
                break;
        }
    }
    wv_buf_free(&env);
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
    int64_t now = real_ns();
    if (o.countdown_ms > 0)
        m.eta_ns = now + o.countdown_ms * 1000000;
    if (o.expires_ms > 0) {
        m.expires_ns = now + o.expires_ms * 1000000;
        m.expiration_ms = o.expires_ms;
    }
    m.exchange = "";
    m.routing_key = queue;
    wv_buf env = {0}, bkey = {0}, member = {0};
    rc = celery_task_encode_redis(&m, &env);
    rc = rc ? rc : wv_buf_printf(&bkey, "_kombu.binding.%s", queue);
    rc = rc ? rc : wv_buf_printf(&member, "%s" SEP SEP "%s", queue, queue);
    wv_redis_pipe *p = NULL;
    if (rc == 0)
        rc = wv_redis_pipe_new(t->broker, false, &p);
    if (rc == 0) {
        wv_redis_pipe_addv(p, 3,
                           (wv_str[]){WV_STR("SADD"), {bkey.p, bkey.n}, {member.p, member.n}});
        wv_redis_pipe_addv(p, 3,
                           (wv_str[]){WV_STR("LPUSH"), {queue, strlen(queue)}, {env.p, env.n}});
        rc = wv_redis_pipe_exec(p);
        wv_redis_pipe_free(p);
    }
    wv_buf_free(&env);
    wv_buf_free(&bkey);
    wv_buf_free(&member);
    if (rc == 0 && id)
        memcpy(id, tid, sizeof tid);
    return rc;
}

/* 1: a final state (the outcome in rc), 0: not yet. */
static int meta_final(const char *text, size_t n, wv_buf *result, int *rc)
{
    celery_result r;
    int d = celery_result_decode(text, n, &r);
    if (d < 0) {
        *rc = d;
        return 1;
    }
    int fin = 1;
    if (r.status == CELERY_SUCCESS) {
        *rc = wv_buf_append(result, r.result.p, r.result.n);
    } else if (r.status == CELERY_FAILURE || r.status == CELERY_REVOKED) {
        /* exc_message is a list of the exception's args: the first, if a string */
        wv_json_doc *doc = NULL;
        const char *s = NULL;
        if (wv_json_parse(r.exc_message.p, r.exc_message.n, &doc) == 0)
            wv_json_as_string(wv_json_array_at(wv_json_doc_root(doc), 0), &s, NULL);
        if (s)
            *rc = wv_fail(-EREMOTEIO, "%.*s: %s", (int)r.exc_type.n, r.exc_type.p, s);
        else
            *rc = wv_fail(-EREMOTEIO, "%.*s: %.*s", (int)r.exc_type.n, r.exc_type.p,
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
    wv_buf key = {0}, v = {0};
    int rc = wv_buf_printf(&key, "celery-task-meta-%s", id);
    wv_str k = {key.p, key.n};
    wv_redis_sub *sub = NULL;
    if (rc == 0)
        rc = wv_redis_subscribe(t->backend, &sub);
    if (rc == 0)
        rc = wv_redis_sub_subscribe(sub, 1, &k);
    int out = 0;
    if (rc == 0) {
        int got = wv_redis_get(t->backend, k, &v);
        if (got < 0)
            rc = got;
        else if (got == 1 && meta_final(v.p, v.n, result, &out))
            rc = 1;
    }
    while (rc == 0) {
        wv_redis_msg *m;
        rc = wv_redis_sub_recv(sub, &m, WV_NEVER);
        if (rc < 0)
            break;
        if (meta_final(m->payload.p, m->payload.n, result, &out))
            rc = 1;
        wv_redis_msg_free(m);
    }
    if (sub)
        wv_redis_sub_close(sub);
    wv_buf_free(&key);
    wv_buf_free(&v);
    return rc == 1 ? out : rc;
}
