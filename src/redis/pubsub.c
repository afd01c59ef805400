/*
 * Pub/sub: a subscriber owns a connection of its own (not one of the
 * pool's: subscribers live long), a reader fiber and a channel of
 * messages that fibers receive from, with a deadline or in
 * wv_chan_select.
 *
 * The reader turns every reply into a tree: a message (`message`,
 * `pmessage`, `smessage`; arrays in RESP2, pushes in RESP3) goes into the
 * channel, a subscribe or unsubscribe confirmation counts towards the
 * confirmations the callers wait for. When the connection breaks it dials
 * again with a backoff and subscribes to every channel and pattern it had:
 * what was published in between is lost, as pub/sub always is.
 *
 * A full channel (a receiver that does not keep up) stops the reader, so
 * the server buffers; past its client-output-buffer-limit for pub/sub it
 * drops the connection, and the reader reconnects.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_internal.h"

#define NS_PER_MS INT64_C(1000000)

enum { SUB_QUEUE = 1024 };

typedef struct name_list {
    char **v;
    size_t *len;
    int n, cap;
} name_list;

struct wv_redis_sub {
    redis_config *cfg;
    int shard;
    redis_conn *c; /* NULL while reconnecting */
    wv_chan *msgs; /* wv_redis_msg * */
    name_list channels, patterns;
    wv_mutex wlock;           /* one writer at a time */
    uint64_t sent, confirmed; /* confirmations asked for and received on c */
    wv_event settled;         /* set whenever confirmed catches up with sent */
    wv_event wake;            /* ends the reader's backoff early (close) */
    wv_event reader_done;
    bool closing;
    int64_t backoff_ms;
    uint64_t reconnects;
};

/* ------------------------------------------------------------- names */

static int names_find(const name_list *l, wv_str s)
{
    for (int i = 0; i < l->n; i++)
        if (l->len[i] == s.n && memcmp(l->v[i], s.p, s.n) == 0)
            return i;
    return -1;
}

static int names_add(name_list *l, wv_str s)
{
    if (names_find(l, s) >= 0)
        return 0;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, sizeof *v * (size_t)cap);
        if (!v)
            return -ENOMEM;
        l->v = v;
        size_t *len = realloc(l->len, sizeof *len * (size_t)cap);
        if (!len)
            return -ENOMEM;
        l->len = len;
        l->cap = cap;
    }
    char *copy = malloc(s.n + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, s.p, s.n);
    copy[s.n] = '\0';
    l->v[l->n] = copy;
    l->len[l->n++] = s.n;
    return 0;
}

static void names_remove(name_list *l, wv_str s)
{
    int i = names_find(l, s);
    if (i < 0)
        return;
    free(l->v[i]);
    l->v[i] = l->v[l->n - 1];
    l->len[i] = l->len[l->n - 1];
    l->n--;
}

static void names_free(name_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    free(l->len);
    *l = (name_list){0};
}

/* ----------------------------------------------------------- messages */

void wv_redis_msg_free(wv_redis_msg *m)
{
    if (!m)
        return;
    wv_redis_reply_free(m->mem_);
    free(m);
}

static wv_str text_of(const wv_redis_reply *x)
{
    return (wv_str){x->str, x->len};
}

static bool is_text(const wv_redis_reply *x)
{
    return x->type == WV_REDIS_STRING || x->type == WV_REDIS_STATUS;
}

/* What the reader does with one reply of the subscribed connection. The
 * tree is taken (freed or handed to a message). */
static int on_reply(wv_redis_sub *s, wv_redis_reply *t)
{
    if ((t->type != WV_REDIS_ARRAY && t->type != WV_REDIS_PUSH) || t->len < 1 ||
        !is_text(&t->elem[0])) {
        wv_redis_reply_free(t);
        return 0;
    }
    wv_str kind = text_of(&t->elem[0]);
    bool pattern = redis_name_is(kind, "PMESSAGE");
    bool sharded = redis_name_is(kind, "SMESSAGE");
    if (redis_name_is(kind, "MESSAGE") || sharded || pattern) {
        size_t want = pattern ? 4 : 3;
        if (t->len != want || !is_text(&t->elem[want - 2]) || !is_text(&t->elem[want - 1])) {
            wv_redis_reply_free(t);
            return 0;
        }
        wv_redis_msg *m = calloc(1, sizeof *m);
        if (!m) {
            wv_redis_reply_free(t);
            return -ENOMEM;
        }
        m->mem_ = t;
        m->sharded = sharded;
        if (pattern)
            m->pattern = text_of(&t->elem[1]);
        m->channel = text_of(&t->elem[want - 2]);
        m->payload = text_of(&t->elem[want - 1]);
        int rc = wv_chan_send(s->msgs, &m);
        if (rc < 0)
            wv_redis_msg_free(m);
        return rc;
    }
    static const char *const confirmations[] = {"SUBSCRIBE",   "PSUBSCRIBE",   "SSUBSCRIBE",
                                                "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"};
    for (size_t i = 0; i < sizeof confirmations / sizeof *confirmations; i++) {
        if (redis_name_is(kind, confirmations[i])) {
            if (++s->confirmed >= s->sent)
                wv_event_set(&s->settled);
            break;
        }
    }
    wv_redis_reply_free(t);
    return 0;
}

/* ------------------------------------------------------------- sending */

/* Send cmd with names[0..n) on the current connection (wlock held). */
static int send_names(wv_redis_sub *s, const char *cmd, int n, const wv_str *names)
{
    if (!s->c || !redis_conn_ok(s->c) || n == 0)
        return 0;
    for (int at = 0; at < n;) {
        /* in slices, so that argv stays on the stack */
        enum { SLICE = 64 };
        wv_str argv[SLICE + 1] = {{cmd, strlen(cmd)}};
        int k = n - at < SLICE ? n - at : SLICE;
        memcpy(argv + 1, names + at, sizeof *names * (size_t)k);
        int rc = resp_append_command(wv_mux_out(s->c->mux), k + 1, argv);
        if (rc < 0)
            return rc;
        at += k;
    }
    s->sent += (uint64_t)n;
    wv_event_clear(&s->settled);
    wv_mux_flush(s->c->mux); /* a failure: the reader reconnects and subscribes again */
    return 0;
}

static int send_list(wv_redis_sub *s, const char *cmd, const name_list *l)
{
    wv_str *names = malloc(sizeof *names * (size_t)(l->n ? l->n : 1));
    if (!names)
        return -ENOMEM;
    for (int i = 0; i < l->n; i++)
        names[i] = (wv_str){l->v[i], l->len[i]};
    int rc = send_names(s, cmd, l->n, names);
    free(names);
    return rc;
}

/* ------------------------------------------------------------- reader */

static int connect_and_resubscribe(wv_redis_sub *s)
{
    redis_conn *c;
    int rc = redis_conn_open(s->cfg, true, &c);
    if (rc < 0)
        return rc;
    if (s->closing) {
        redis_conn_close(c);
        return -ESHUTDOWN;
    }
    rc = wv_mutex_lock(&s->wlock);
    if (rc < 0) {
        redis_conn_close(c);
        return rc;
    }
    s->c = c;
    s->sent = s->confirmed = 0;
    if ((rc = send_list(s, "SUBSCRIBE", &s->channels)) == 0)
        rc = send_list(s, "PSUBSCRIBE", &s->patterns);
    if (s->sent == 0)
        wv_event_set(&s->settled);
    wv_mutex_unlock(&s->wlock);
    return rc;
}

static int sub_reader(void *arg)
{
    wv_redis_sub *s = arg;
    while (!s->closing) {
        if (!s->c || !redis_conn_ok(s->c)) {
            if (s->c) {
                redis_conn_close(s->c);
                s->c = NULL;
                s->reconnects++;
            }
            int rc = connect_and_resubscribe(s);
            if (rc == 0) {
                s->backoff_ms = REDIS_BACKOFF_MIN_MS;
                continue;
            }
            if (rc == -ECANCELED || s->closing)
                break;
            wv_warn("redis subscriber: %s (next try in %lld ms)", wv_errmsg(),
                    (long long)s->backoff_ms);
            int64_t old = wv_deadline_set(wv_after_ms(s->backoff_ms));
            rc = wv_event_wait(&s->wake);
            wv_deadline_set(old);
            if (rc == -ECANCELED)
                break;
            s->backoff_ms =
                s->backoff_ms * 2 > REDIS_BACKOFF_MAX_MS ? REDIS_BACKOFF_MAX_MS : s->backoff_ms * 2;
            continue;
        }
        char *p;
        size_t len;
        if (redis_conn_read_reply(s->c, &p, &len) < 0)
            continue; /* broken: reconnect above */
        wv_redis_reply *t = NULL;
        size_t nodes = resp_scan_nodes(&s->c->scan);
        char *mem = malloc(nodes * sizeof(wv_redis_reply) + len + 1);
        if (mem) {
            t = (wv_redis_reply *)mem;
            char *bytes = mem + nodes * sizeof(wv_redis_reply);
            memcpy(bytes, p, len);
            bytes[len] = '\0';
            resp_build(bytes, len, t, nodes);
        }
        if (!t || on_reply(s, t) == -ENOMEM)
            wv_warn("redis subscriber: out of memory, a message was dropped");
    }
    wv_chan_close(s->msgs);
    wv_event_set(&s->reader_done);
    return 0;
}

/* ---------------------------------------------------------------- API */

int wv_redis_subscribe(wv_redis *r, wv_redis_sub **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!r)
        return -EINVAL;
    int rc = redis_check_shard(r);
    if (rc < 0)
        return rc;
    wv_redis_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->cfg = r->cfg;
    redis_config_ref(s->cfg);
    s->shard = wv_shard_id();
    s->backoff_ms = REDIS_BACKOFF_MIN_MS;
    wv_event_set(&s->settled);
    if (!(s->msgs = wv_chan_new(sizeof(wv_redis_msg *), SUB_QUEUE))) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = redis_conn_open(s->cfg, true, &s->c)) < 0)
        goto fail;
    wv_spawn_opts so = {.name = "redis-subscriber"};
    if ((rc = wv_spawn(sub_reader, s, &so)) < 0) {
        wv_fail(rc, "redis %s: cannot start the subscriber", s->cfg->redacted);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    redis_conn_close(s->c);
    if (s->msgs)
        wv_chan_free(s->msgs);
    redis_config_unref(s->cfg);
    free(s);
    return rc;
}

/* Wait until the server confirmed everything sent so far. */
static int wait_settled(wv_redis_sub *s)
{
    while (s->confirmed < s->sent || !s->c) {
        if (s->closing)
            return wv_fail(-ESHUTDOWN, "redis subscriber: closed");
        wv_event_clear(&s->settled);
        int rc = wv_event_wait(&s->settled);
        if (rc < 0)
            return wv_fail(rc, "redis %s: %s waiting for the server to confirm", s->cfg->redacted,
                           rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
    }
    return 0;
}

static int change(wv_redis_sub *s, const char *cmd, bool add, bool pattern, int n,
                  const wv_str *names)
{
    if (!s || n < 0 || (n > 0 && !names))
        return -EINVAL;
    if (s->shard != wv_shard_id())
        return wv_fail(-EXDEV, "redis subscriber: used from another shard");
    if (s->closing)
        return wv_fail(-ESHUTDOWN, "redis subscriber: closed");
    name_list *l = pattern ? &s->patterns : &s->channels;
    int rc = wv_mutex_lock(&s->wlock);
    if (rc < 0)
        return rc;
    wv_str *all = NULL;
    if (!add && n == 0) { /* every one we have */
        n = l->n;
        all = malloc(sizeof *all * (size_t)(n ? n : 1));
        if (!all) {
            wv_mutex_unlock(&s->wlock);
            return -ENOMEM;
        }
        for (int i = 0; i < n; i++)
            all[i] = (wv_str){l->v[i], l->len[i]};
        names = all;
    }
    for (int i = 0; i < n && rc == 0; i++)
        rc = add ? names_add(l, names[i]) : 0;
    if (rc == 0)
        rc = send_names(s, cmd, n, names);
    if (!add)
        for (int i = 0; i < n; i++)
            names_remove(l, names[i]);
    free(all);
    wv_mutex_unlock(&s->wlock);
    return rc < 0 ? rc : wait_settled(s);
}

int wv_redis_sub_subscribe(wv_redis_sub *s, int n, const wv_str *channels)
{
    return n < 1 ? -EINVAL : change(s, "SUBSCRIBE", true, false, n, channels);
}

int wv_redis_sub_psubscribe(wv_redis_sub *s, int n, const wv_str *patterns)
{
    return n < 1 ? -EINVAL : change(s, "PSUBSCRIBE", true, true, n, patterns);
}

int wv_redis_sub_unsubscribe(wv_redis_sub *s, int n, const wv_str *channels)
{
    return change(s, "UNSUBSCRIBE", false, false, n, channels);
}

int wv_redis_sub_punsubscribe(wv_redis_sub *s, int n, const wv_str *patterns)
{
    return change(s, "PUNSUBSCRIBE", false, true, n, patterns);
}

int wv_redis_sub_recv(wv_redis_sub *s, wv_redis_msg **msg, int64_t at)
{
    if (!msg)
        return -EINVAL;
    *msg = NULL;
    if (!s)
        return -EINVAL;
    int rc = wv_chan_recv_until(s->msgs, msg, at);
    if (rc == -EPIPE)
        return wv_fail(-EPIPE, "redis subscriber: closed");
    return rc;
}

wv_chan *wv_redis_sub_chan(wv_redis_sub *s)
{
    return s ? s->msgs : NULL;
}

uint64_t wv_redis_sub_reconnects(const wv_redis_sub *s)
{
    return s ? s->reconnects : 0;
}

void wv_redis_sub_close(wv_redis_sub *s)
{
    if (!s)
        return;
    s->closing = true;
    if (s->c)
        redis_conn_fail(s->c, -ESHUTDOWN, "redis subscriber: closed");
    wv_event_set(&s->wake);
    wv_event_set(&s->settled);
    wv_chan_close(s->msgs);
    wv_event_wait_shielded(&s->reader_done);
    wv_redis_msg *m;
    while (wv_chan_try_recv(s->msgs, &m) == 0)
        wv_redis_msg_free(m);
    wv_chan_free(s->msgs);
    redis_conn_close(s->c);
    names_free(&s->channels);
    names_free(&s->patterns);
    redis_config_unref(s->cfg);
    free(s);
}
