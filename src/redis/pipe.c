/*
 * Explicit pipelines and MULTI/EXEC transactions: commands gathered in a
 * buffer, sent in one piece, their replies taken by one op in order.
 *
 * A transaction is sent as MULTI, the commands, EXEC, all in one piece, so
 * it may run on the shared connection: the bytes are contiguous in the
 * connection's output and Redis runs them back to back on that connection.
 * Its replies are +OK, one +QUEUED (or an error) per command, then EXEC's
 * array (or a nil when a WATCHed key changed); the pipe keeps EXEC's
 * elements as the commands' replies. WATCH needs a handle
 * (wv_redis_acquire), since the keys are watched per connection.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_internal.h"

struct wv_redis_pipe {
    wv_redis *r;
    bool transaction;
    int slot;     /* the first command's key's hash slot (a cluster sends the pipe there), or -1 */
    wv_buf cmds;  /* the encoded commands */
    int n;        /* commands in cmds */
    char **names; /* each command's name, for messages */
    int names_cap;
    wv_redis_reply **trees; /* one per reply (n, or n + 2 in a transaction) */
    int ntrees;
    const wv_redis_reply *replies; /* a transaction's: EXEC's elements */
};

int wv_redis_pipe_new(wv_redis *r, bool transaction, wv_redis_pipe **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!r)
        return -EINVAL;
    wv_redis_pipe *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->r = r;
    p->transaction = transaction;
    p->slot = -1;
    *out = p;
    return 0;
}

static void free_replies(wv_redis_pipe *p)
{
    for (int i = 0; i < p->ntrees; i++)
        wv_redis_reply_free(p->trees[i]);
    free(p->trees);
    p->trees = NULL;
    p->ntrees = 0;
    p->replies = NULL;
}

void wv_redis_pipe_reset(wv_redis_pipe *p)
{
    if (!p)
        return;
    free_replies(p);
    for (int i = 0; i < p->n; i++)
        free(p->names[i]);
    p->n = 0;
    wv_buf_reset(&p->cmds);
}

void wv_redis_pipe_free(wv_redis_pipe *p)
{
    if (!p)
        return;
    wv_redis_pipe_reset(p);
    free(p->names);
    wv_buf_free(&p->cmds);
    free(p);
}

int wv_redis_pipe_addv(wv_redis_pipe *p, int argc, const wv_str *argv)
{
    if (!p || argc < 1 || !argv)
        return wv_fail(-EINVAL, "redis pipe: no command");
    cmd_class k = redis_classify(argc, argv);
    if (k == CMD_SUBSCRIBE || (!p->transaction && !p->r->own && k != CMD_PLAIN) ||
        (p->transaction && k == CMD_STATEFUL))
        return wv_fail(-EINVAL, "redis pipe: %.*s cannot go in a %s%s", (int)argv[0].n, argv[0].p,
                       p->transaction ? "transaction" : "pipeline",
                       p->transaction || p->r->own ? "" : " on the shared connection");
    if (p->n == p->names_cap) {
        int cap = p->names_cap ? p->names_cap * 2 : 16;
        char **names = realloc(p->names, sizeof *names * (size_t)cap);
        if (!names)
            return -ENOMEM;
        p->names = names;
        p->names_cap = cap;
    }
    char *name = strndup(argv[0].p, argv[0].n < 32 ? argv[0].n : 32);
    if (!name)
        return -ENOMEM;
    size_t before = p->cmds.n;
    if (p->transaction && p->n == 0) {
        wv_str multi = WV_STR("MULTI");
        if (resp_append_command(&p->cmds, 1, &multi) < 0) {
            free(name);
            return -ENOMEM;
        }
    }
    if (resp_append_command(&p->cmds, argc, argv) < 0) {
        p->cmds.n = before;
        free(name);
        return -ENOMEM;
    }
    if (p->n == 0)
        p->slot = redis_key_slot(argc, argv);
    p->names[p->n++] = name;
    free_replies(p); /* replies of an earlier exec no longer match */
    return 0;
}

int wv_redis_pipe_add_(wv_redis_pipe *p, const char *arg, ...)
{
    enum { MAX = 64 };
    wv_str argv[MAX];
    int argc = 0;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a; a = va_arg(ap, const char *)) {
        if (argc == MAX) {
            va_end(ap);
            return wv_fail(-E2BIG, "redis pipe: more than %d arguments: use wv_redis_pipe_addv",
                           MAX);
        }
        argv[argc++] = (wv_str){a, strlen(a)};
    }
    va_end(ap);
    return wv_redis_pipe_addv(p, argc, argv);
}

int wv_redis_pipe_count(const wv_redis_pipe *p)
{
    return p ? p->n : 0;
}

const wv_redis_reply *wv_redis_pipe_reply(const wv_redis_pipe *p, int i)
{
    if (!p || i < 0 || i >= p->n)
        return NULL;
    if (p->transaction)
        return p->replies ? &p->replies[i] : NULL;
    return i < p->ntrees ? p->trees[i] : NULL;
}

/* -EIO naming the first command that got an error reply, or 0. */
static int first_error(const wv_redis_pipe *p, const wv_redis_reply *r, int n, int offset)
{
    for (int i = 0; i < n; i++) {
        const wv_redis_reply *x = p->transaction ? &r[i] : p->trees[i + offset];
        if (x && x->type == WV_REDIS_ERROR)
            return wv_fail(-EIO, "redis pipe: command %d (%s): %s", i + 1, p->names[i], x->str);
    }
    return 0;
}

int wv_redis_pipe_exec(wv_redis_pipe *p)
{
    if (!p)
        return -EINVAL;
    free_replies(p);
    if (p->n == 0)
        return 0;
    size_t body = p->cmds.n;
    if (p->transaction) {
        wv_str exec = WV_STR("EXEC");
        if (resp_append_command(&p->cmds, 1, &exec) < 0)
            return -ENOMEM;
    }
    int nreplies = p->transaction ? p->n + 2 : p->n;
    p->trees = calloc((size_t)nreplies, sizeof *p->trees);
    if (!p->trees) {
        p->cmds.n = body;
        return -ENOMEM;
    }
    p->ntrees = nreplies;
    redis_op op = {.req.replies = nreplies,
                   .deliver = redis_deliver_tree,
                   .out = p->trees,
                   .keep_errors = true};
    int rc = redis_run_raw(p->r, &op, p->cmds.p, p->cmds.n, p->slot);
    p->cmds.n = body; /* the pipe can be sent again */
    if (rc < 0) {
        free_replies(p);
        return rc;
    }
    if (!p->transaction)
        return first_error(p, NULL, p->n, 0);

    /* MULTI's +OK, the QUEUED replies, then EXEC's */
    const wv_redis_reply *exec = p->trees[p->n + 1];
    if (exec->type == WV_REDIS_ERROR) {
        /* EXECABORT: a command was refused while queued; say which */
        for (int i = 0; i < p->n; i++)
            if (p->trees[i + 1]->type == WV_REDIS_ERROR)
                return wv_fail(-EIO, "redis transaction: command %d (%s): %s", i + 1, p->names[i],
                               p->trees[i + 1]->str);
        return wv_fail(-EIO, "redis transaction: %s", exec->str);
    }
    if (exec->type == WV_REDIS_NIL)
        return wv_fail(-EAGAIN, "redis transaction: a watched key changed; nothing ran");
    if (exec->type != WV_REDIS_ARRAY || exec->len != (size_t)p->n)
        return wv_fail(-EPROTO, "redis transaction: EXEC answered %s of %zu, not %d replies",
                       redis_type_name(exec->type), exec->len, p->n);
    p->replies = exec->elem;
    if (p->r->own)
        p->r->own_watch = false; /* EXEC ended any WATCH */
    return first_error(p, exec->elem, p->n, 0);
}
