/*
 * src/tasks/redis.c: kombu 5.2's Redis transport and Celery 5.2's Redis
 * result backend (transport.h's seam), on weave's Redis client. What goes
 * over the wire is described in docs/tasks.md.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/transport.h"
#include "weave/json.h"
#include "weave/redis.h"

#define SEP "\x06\x16"

typedef struct redis_tr {
    tasks_transport base;
    wv_redis *r;
    char *url;
    int db; /* the URL's database: kombu's fanout channels are "/<db>.<exchange>" */
    int64_t vt_ms;
    char *dead_letter;
} redis_tr;

typedef struct redis_be {
    tasks_backend base;
    wv_redis *r;
    bool owned;
    int64_t expires_ms;
} redis_be;

static const tasks_transport_ops redis_tr_ops;

/* ------------------------------------------------------------ sending */

/* kombu's priority steps: a message of priority p (0..9) goes to the list
 * of the step at or below it, "<queue>\x06\x16<step>" (step 0: the queue's
 * own list), and BRPOP reads the lists in step order, so 0 comes first. */
static const int STEPS[] = {0, 3, 6, 9};

static int q_for_pri(const char *queue, int64_t pri, wv_buf *out)
{
    int step = 0;
    for (size_t i = 0; i < sizeof STEPS / sizeof STEPS[0]; i++)
        if (pri >= STEPS[i])
            step = STEPS[i];
    return step ? wv_buf_printf(out, "%s" SEP "%d", queue, step) : wv_buf_puts(out, queue);
}

static int rt_send(tasks_transport *tr, const celery_task_msg *m, const char *queue)
{
    redis_tr *rt = (redis_tr *)tr;
    wv_buf env = {0}, bkey = {0}, member = {0}, list = {0};
    int rc = celery_task_encode_redis(m, &env);
    rc = rc ? rc : q_for_pri(queue, m->priority, &list);
    rc = rc ? rc : wv_buf_printf(&bkey, "_kombu.binding.%s", queue);
    rc = rc ? rc : wv_buf_printf(&member, "%s" SEP SEP "%s", queue, queue);
    wv_redis_pipe *p = NULL;
    if (rc == 0)
        rc = wv_redis_pipe_new(rt->r, false, &p);
    if (rc == 0) {
        wv_redis_pipe_addv(p, 3,
                           (wv_str[]){WV_STR("SADD"), {bkey.p, bkey.n}, {member.p, member.n}});
        wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("LPUSH"), {list.p, list.n}, {env.p, env.n}});
        rc = wv_redis_pipe_exec(p);
        wv_redis_pipe_free(p);
    }
    wv_buf_free(&env);
    wv_buf_free(&list);
    wv_buf_free(&bkey);
    wv_buf_free(&member);
    return rc;
}

/* ------------------------------------------------------------ taking */

static int rt_take(tasks_transport *tr, const char *queue, int64_t timeout_ms, tasks_msg *out)
{
    redis_tr *rt = (redis_tr *)tr;
    char names[3][256];
    wv_str q[4] = {{queue, strlen(queue)}};
    for (int i = 1; i < 4; i++) {
        int n = snprintf(names[i - 1], sizeof names[0], "%s" SEP "%d", queue, STEPS[i]);
        if (n < 0 || (size_t)n >= sizeof names[0])
            return wv_fail(-ENAMETOOLONG, "tasks: queue name %.32s...: too long", queue);
        q[i] = (wv_str){names[i - 1], (size_t)n};
    }
    wv_buf env = {0};
    int got = wv_redis_brpop(rt->r, 4, q, timeout_ms, NULL, &env);
    int rc = got <= 0 ? got : celery_task_decode_redis(env.p, env.n, &out->msg);
    if (got <= 0 || rc == 0) {
        wv_buf_free(&env);
        return got <= 0 ? got : 1;
    }
    wv_error("tasks: a message on %s that does not decode: %s (%s); %s", queue, wv_strerror(rc),
             wv_errmsg(), rt->dead_letter ? "dead-lettered" : "dropped");
    tasks_metrics_undecodable(queue);
    if (rt->dead_letter) {
        wv_str dl = {rt->dead_letter, strlen(rt->dead_letter)}, v = {env.p, env.n};
        rc = wv_redis_cmdv(rt->r, NULL, 3, (wv_str[]){WV_STR("LPUSH"), dl, v});
        if (rc < 0)
            wv_error("tasks: LPUSH %s: %s (%s)", rt->dead_letter, wv_strerror(rc), wv_errmsg());
    }
    wv_buf_free(&env);
    return 0;
}

/* ------------------------------------------------------------ unacked */

int tasks_py_string(const char *s, size_t n, wv_buf *out)
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

/* HSET unacked tag [envelope, exchange, routing_key] + ZADD unacked_index. */
static int rt_hold(tasks_transport *tr, tasks_msg *m)
{
    redis_tr *rt = (redis_tr *)tr;
    const celery_task *c = &m->msg;
    wv_buf v = {0};
    char score[40];
    snprintf(score, sizeof score, "%.6f", (double)tasks_real_ns() / 1e9);
    int rc = wv_buf_puts(&v, "[");
    rc = rc ? rc : wv_buf_append(&v, c->envelope.p, c->envelope.n);
    rc = rc ? rc : wv_buf_puts(&v, ", ");
    rc = rc ? rc : tasks_py_string(c->exchange.p, c->exchange.n, &v);
    rc = rc ? rc : wv_buf_puts(&v, ", ");
    rc = rc ? rc : tasks_py_string(c->routing_key.p, c->routing_key.n, &v);
    rc = rc ? rc : wv_buf_puts(&v, "]");
    wv_redis_pipe *p = NULL;
    if (rc == 0)
        rc = wv_redis_pipe_new(rt->r, false, &p);
    if (rc == 0) {
        wv_str tag = c->delivery_tag;
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
        m->held = true;
    return rc;
}

static int rt_ack(tasks_transport *tr, tasks_msg *m)
{
    redis_tr *rt = (redis_tr *)tr;
    if (!m->held)
        return 0;
    wv_redis_pipe *p;
    int rc = wv_redis_pipe_new(rt->r, false, &p);
    if (rc < 0)
        return rc;
    wv_str tag = m->msg.delivery_tag;
    rc = wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("ZREM"), WV_STR("unacked_index"), tag});
    if (rc == 0)
        rc = wv_redis_pipe_addv(p, 3, (wv_str[]){WV_STR("HDEL"), WV_STR("unacked"), tag});
    if (rc == 0)
        rc = wv_redis_pipe_exec(p);
    wv_redis_pipe_free(p);
    if (rc == 0)
        m->held = false;
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
static int lookup_queue(redis_tr *rt, const char *ex, const char *rk, wv_buf *q)
{
    if (!*ex)
        return wv_buf_puts(q, rk);
    wv_buf key = {0};
    wv_redis_reply *rep = NULL;
    int rc = wv_buf_printf(&key, "_kombu.binding.%s", ex);
    if (rc == 0)
        rc = wv_redis_cmdv(rt->r, &rep, 2, (wv_str[]){WV_STR("SMEMBERS"), {key.p, key.n}});
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
static int restore_tag(redis_tr *rt, wv_str tag)
{
    int rc = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        wv_redis *h;
        if ((rc = wv_redis_acquire(rt->r, &h)) < 0)
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
                rc = lookup_queue(rt, ex, rk, &q);
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

static int rt_requeue(tasks_transport *tr, tasks_msg *m)
{
    redis_tr *rt = (redis_tr *)tr;
    if (!m->held) {
        /* never recorded: push the envelope back as it came */
        const char *q = m->msg.routing_key.n ? m->msg.routing_key.p : "celery";
        wv_str k = {q, strlen(q)}, v = {m->msg.envelope.p, m->msg.envelope.n};
        return wv_redis_cmdv(rt->r, NULL, 3, (wv_str[]){WV_STR("RPUSH"), k, v});
    }
    int rc = restore_tag(rt, m->msg.delivery_tag);
    if (rc == 0)
        m->held = false;
    return rc;
}

/* kombu's Redis transport has no dead letters: a rejected message is acked,
 * and kept as it came on the dead-letter list when the client has one. */
static int rt_reject(tasks_transport *tr, tasks_msg *m)
{
    redis_tr *rt = (redis_tr *)tr;
    int rc = 0;
    if (rt->dead_letter) {
        wv_str dl = {rt->dead_letter, strlen(rt->dead_letter)},
               v = {m->msg.envelope.p, m->msg.envelope.n};
        rc = wv_redis_cmdv(rt->r, NULL, 3, (wv_str[]){WV_STR("LPUSH"), dl, v});
    }
    return rc < 0 ? rc : rt_ack(tr, m);
}

static const char RELEASE_LUA[] =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end "
    "return 0";

/* kombu's restore_visible: under unacked_mutex, every record older than
 * the visibility timeout back to its queue. */
static int restore_visible(redis_tr *rt, wv_redis_script *release)
{
    char token[CELERY_UUID_LEN + 1];
    int rc = celery_uuid4(token);
    if (rc < 0)
        return rc;
    rc = wv_redis_set(rt->r, WV_STR("unacked_mutex"), (wv_str){token, strlen(token)},
                      &(wv_redis_set_opts){.ttl_ms = 300000, .nx = true});
    if (rc <= 0)
        return rc;
    char ceil[40];
    snprintf(ceil, sizeof ceil, "%.6f", (double)tasks_real_ns() / 1e9 - (double)rt->vt_ms / 1000.0);
    wv_redis_reply *rep = NULL;
    rc = wv_redis_cmd(rt->r, &rep, "ZREVRANGEBYSCORE", "unacked_index", ceil, "0");
    for (size_t i = 0; rc == 0 && rep && i < rep->len; i++)
        if (rep->elem[i].type == WV_REDIS_STRING)
            restore_tag(rt, (wv_str){rep->elem[i].str, rep->elem[i].len});
    wv_redis_reply_free(rep);
    wv_redis_eval(rt->r, release, 1, (wv_str[]){WV_STR("unacked_mutex")}, 1,
                  (wv_str[]){{token, strlen(token)}}, NULL);
    return rc;
}

static int rt_upkeep(tasks_transport *tr, wv_chan *stopping)
{
    redis_tr *rt = (redis_tr *)tr;
    wv_redis_script *release;
    if (wv_redis_script_new(RELEASE_LUA, &release) < 0)
        return 0;
    int64_t period = rt->vt_ms / 2 < 10000 ? rt->vt_ms / 2 : 10000;
    if (period < 100)
        period = 100;
    for (;;) {
        restore_visible(rt, release);
        int x;
        if (wv_chan_recv_until(stopping, &x, wv_after_ms(period)) != -ETIMEDOUT)
            break;
    }
    wv_redis_script_free(release);
    return 0;
}

/* ------------------------------------------------------------ depth */

/* The messages waiting in queue: the lengths of its lists (its own and
 * kombu's priority steps'), in one pipeline. What workers took and hold
 * (ETA, acks_late: the unacked hash) is not counted. */
static int rt_depth(tasks_transport *tr, const char *queue, int64_t *out)
{
    redis_tr *rt = (redis_tr *)tr;
    wv_redis_pipe *p;
    int rc = wv_redis_pipe_new(rt->r, false, &p);
    if (rc < 0)
        return rc;
    wv_buf name = {0};
    for (size_t i = 0; rc == 0 && i < sizeof STEPS / sizeof STEPS[0]; i++) {
        wv_buf_reset(&name);
        rc = q_for_pri(queue, STEPS[i], &name);
        if (rc == 0)
            rc = wv_redis_pipe_addv(p, 2, (wv_str[]){WV_STR("LLEN"), {name.p, name.n}});
    }
    wv_buf_free(&name);
    if (rc == 0)
        rc = wv_redis_pipe_exec(p);
    int64_t n = 0;
    for (int i = 0; rc == 0 && i < wv_redis_pipe_count(p); i++) {
        const wv_redis_reply *r = wv_redis_pipe_reply(p, i);
        if (!r || r->type != WV_REDIS_INT)
            rc = wv_fail(-EPROTO, "LLEN answered no integer");
        else
            n += r->integer;
    }
    wv_redis_pipe_free(p);
    if (rc == 0)
        *out = n;
    return rc;
}

/* ------------------------------------------------------------ broadcasts */

/* kombu's fanout on Redis: PUBLISH on "/<db>.<exchange>/<routing key>" (or
 * "/<db>.<exchange>" without a key); Celery makes its topic exchanges
 * (celeryev) fanout ones on Redis. */
static int topic(redis_tr *rt, const char *exchange, const char *key, wv_buf *out)
{
    return key && *key ? wv_buf_printf(out, "/%d.%s/%s", rt->db, exchange, key)
                       : wv_buf_printf(out, "/%d.%s", rt->db, exchange);
}

static int rt_publish(tasks_transport *tr, const char *exchange, const char *type,
                      const char *routing_key, const char *body, size_t body_len,
                      const char *headers)
{
    (void)type;
    redis_tr *rt = (redis_tr *)tr;
    wv_buf env = {0}, ch = {0};
    /* events are transient (delivery_mode 1), commands persistent, as Celery sends them */
    int mode = strcmp(exchange, "celeryev") == 0 ? 1 : 2;
    int rc = celery_envelope_encode(body, body_len, headers, mode, exchange, routing_key, &env);
    rc = rc ? rc : topic(rt, exchange, routing_key, &ch);
    if (rc == 0)
        rc = wv_redis_cmdv(rt->r, NULL, 3,
                           (wv_str[]){WV_STR("PUBLISH"), {ch.p, ch.n}, {env.p, env.n}});
    wv_buf_free(&env);
    wv_buf_free(&ch);
    return rc;
}

static int rt_listen(tasks_transport *tr, const char *exchange, const char *type,
                     const char *binding_key, wv_chan *stopping,
                     int (*got)(const char *body, size_t n, void *arg), void *arg)
{
    (void)type;
    redis_tr *rt = (redis_tr *)tr;
    wv_buf ch = {0}, body = {0};
    int rc = topic(rt, exchange, binding_key, &ch);
    for (size_t i = 0; rc == 0 && i < ch.n; i++)
        if (ch.p[i] == '#')
            ch.p[i] = '*'; /* AMQP's "any words" as a Redis glob */
    wv_redis_sub *sub = NULL;
    if (rc == 0)
        rc = wv_redis_subscribe(rt->r, &sub);
    if (rc == 0)
        rc = binding_key && *binding_key ? wv_redis_sub_psubscribe(sub, 1, &(wv_str){ch.p, ch.n})
                                         : wv_redis_sub_subscribe(sub, 1, &(wv_str){ch.p, ch.n});
    while (rc == 0) {
        int x;
        wv_redis_msg *m = NULL;
        wv_select_case cs[2] = {{stopping, WV_RECV, &x, 0},
                                {wv_redis_sub_chan(sub), WV_RECV, &m, 0}};
        int i = wv_chan_select(cs, 2, WV_NEVER);
        if (i < 0) {
            rc = i;
        } else if (i == 0 || cs[1].result < 0) {
            break;
        } else {
            wv_buf_reset(&body);
            int d = celery_envelope_body(m->payload.p, m->payload.n, &body);
            if (d < 0)
                wv_warn("tasks: a message on %.*s that does not decode: %s (%s)", (int)ch.n, ch.p,
                        wv_strerror(d), wv_errmsg());
            else
                rc = got(body.p, body.n, arg) < 0 ? 1 : 0;
            wv_redis_msg_free(m);
        }
    }
    if (sub)
        wv_redis_sub_close(sub);
    wv_buf_free(&ch);
    wv_buf_free(&body);
    return rc < 0 ? rc : 0;
}

static void rt_close(tasks_transport *tr)
{
    redis_tr *rt = (redis_tr *)tr;
    wv_redis_close(rt->r);
    free(rt->url);
    free(rt->dead_letter);
    free(rt);
}

static const tasks_transport_ops redis_tr_ops = {
    .send = rt_send,
    .take = rt_take,
    .concurrent_take = true,
    .hold = rt_hold,
    .ack = rt_ack,
    .requeue = rt_requeue,
    .reject = rt_reject,
    .upkeep = rt_upkeep,
    .depth = rt_depth,
    .publish = rt_publish,
    .listen = rt_listen,
    .close = rt_close,
};

int tasks_redis_open(const char *url, const tasks_cfg *cfg, tasks_transport **out)
{
    redis_tr *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->base.ops = &redis_tr_ops;
    rt->vt_ms = cfg->vt_ms;
    rt->url = strdup(url);
    /* redis://[user:pass@]host[:port][/db][?...] */
    const char *path = strstr(url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    rt->db = path ? atoi(path + 1) : 0;
    rt->dead_letter = cfg->dead_letter ? strdup(cfg->dead_letter) : NULL;
    int rc = rt->url && (rt->dead_letter || !cfg->dead_letter) ? 0 : -ENOMEM;
    if (rc == 0)
        rc = wv_redis_open(url, NULL, &rt->r);
    if (rc < 0) {
        rt_close(&rt->base);
        return rc;
    }
    *out = &rt->base;
    return 0;
}

/* ------------------------------------------------------------ backend */

/* SET celery-task-meta-<id> PX expires + PUBLISH, as Celery's backend. */
static int rb_store(tasks_backend *b, const celery_result_msg *m, const celery_task *req)
{
    (void)req;
    redis_be *rb = (redis_be *)b;
    wv_buf meta = {0}, key = {0};
    int rc = celery_result_encode(m, &meta);
    if (rc == 0)
        rc = wv_buf_printf(&key, "celery-task-meta-%s", m->task_id);
    char px[24];
    snprintf(px, sizeof px, "%lld", (long long)rb->expires_ms);
    wv_redis_pipe *p = NULL;
    if (rc == 0)
        rc = wv_redis_pipe_new(rb->r, false, &p);
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
    wv_buf_free(&meta);
    wv_buf_free(&key);
    return rc;
}

/* SUBSCRIBE to the result's channel first, then GET: a result stored in
 * between is not missed. */
static int rb_wait(tasks_backend *b, const char *id, int (*seen)(const char *, size_t, void *),
                   void *arg)
{
    redis_be *rb = (redis_be *)b;
    wv_buf key = {0}, v = {0};
    int rc = wv_buf_printf(&key, "celery-task-meta-%s", id);
    wv_str k = {key.p, key.n};
    wv_redis_sub *sub = NULL;
    if (rc == 0)
        rc = wv_redis_subscribe(rb->r, &sub);
    if (rc == 0)
        rc = wv_redis_sub_subscribe(sub, 1, &k);
    if (rc == 0) {
        int got = wv_redis_get(rb->r, k, &v);
        if (got < 0)
            rc = got;
        else if (got == 1)
            rc = seen(v.p, v.n, arg);
    }
    while (rc == 0) {
        wv_redis_msg *m;
        rc = wv_redis_sub_recv(sub, &m, WV_NEVER);
        if (rc < 0)
            break;
        rc = seen(m->payload.p, m->payload.n, arg);
        wv_redis_msg_free(m);
    }
    if (sub)
        wv_redis_sub_close(sub);
    wv_buf_free(&key);
    wv_buf_free(&v);
    return rc;
}

static int rb_peek(tasks_backend *b, const char *id, wv_buf *meta)
{
    redis_be *rb = (redis_be *)b;
    wv_buf key = {0};
    int rc = wv_buf_printf(&key, "celery-task-meta-%s", id);
    if (rc == 0)
        rc = wv_redis_get(rb->r, (wv_str){key.p, key.n}, meta);
    wv_buf_free(&key);
    return rc;
}

static const char *rb_reply_to(tasks_backend *b)
{
    (void)b;
    return NULL;
}

static void rb_close(tasks_backend *b)
{
    redis_be *rb = (redis_be *)b;
    if (rb->owned)
        wv_redis_close(rb->r);
    free(rb);
}

static const tasks_backend_ops redis_be_ops = {
    .store = rb_store,
    .wait = rb_wait,
    .reply_to = rb_reply_to,
    .peek = rb_peek,
    .close = rb_close,
};

int tasks_redis_backend_open(const char *url, const tasks_cfg *cfg, tasks_transport *tr,
                             tasks_backend **out)
{
    redis_be *rb = calloc(1, sizeof *rb);
    if (!rb)
        return -ENOMEM;
    rb->base.ops = &redis_be_ops;
    rb->expires_ms = cfg->result_expires_ms;
    int rc = 0;
    if (tr && tr->ops == &redis_tr_ops && strcmp(((redis_tr *)tr)->url, url) == 0) {
        rb->r = ((redis_tr *)tr)->r;
    } else {
        rb->owned = true;
        rc = wv_redis_open(url, NULL, &rb->r);
    }
    if (rc < 0) {
        rb->owned = false;
        rb_close(&rb->base);
        return rc;
    }
    *out = &rb->base;
    return 0;
}
