/*
 * weave's RQ producer as a command, for tests/integration/test_rq.py, which
 * runs it beside Python RQ workers on one Redis ($RQ_URL).
 *
 *   rq_peer enqueue FUNC ARGS_JSON [NAME=VALUE]...
 *       prints the job's id; NAME is a wv_rq_job_opts field: kwargs, queue,
 *       job_id, timeout, result_ttl, no_result, ttl, failure_ttl,
 *       description, meta, at_front (the last two flags take 1)
 *   rq_peer status ID
 *       prints the status's name
 *   rq_peer result ID [WAIT_MS]
 *       waits up to WAIT_MS (20 s): prints the result's JSON
 *
 * With $RQ_SHARED set, the client is made with wv_rq_with over a Redis
 * client the peer opened (and pings after wv_rq_close).
 *
 * Exit 0 on success; else 1 with "ENAME: wv_errmsg()" on stderr (ENOENT,
 * EREMOTEIO, ECANCELED, ENOTSUP, ETIMEDOUT, EINVAL, ERANGE, or the errno's
 * text).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/rq.h>

static int argc_;
static char **argv_;

static const char *url(void)
{
    const char *u = getenv("RQ_URL");
    return u ? u : "redis://127.0.0.1:6379/0";
}

static int set_opt(wv_rq_job_opts *o, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq)
        return -EINVAL;
    size_t n = (size_t)(eq - arg);
    const char *v = eq + 1;
#define IS(name) (n == strlen(name) && memcmp(arg, name, n) == 0)
    if (IS("kwargs"))
        o->kwargs = v;
    else if (IS("queue"))
        o->queue = v;
    else if (IS("job_id"))
        o->job_id = v;
    else if (IS("timeout"))
        o->timeout_s = atoll(v);
    else if (IS("result_ttl"))
        o->result_ttl_s = atoll(v);
    else if (IS("no_result"))
        o->no_result = atoi(v) != 0;
    else if (IS("ttl"))
        o->ttl_s = atoll(v);
    else if (IS("failure_ttl"))
        o->failure_ttl_s = atoll(v);
    else if (IS("description"))
        o->description = v;
    else if (IS("meta"))
        o->meta = v;
    else if (IS("at_front"))
        o->at_front = atoi(v) != 0;
    else
        return -EINVAL;
#undef IS
    return 0;
}

static int enqueue_cmd(wv_rq *rq)
{
    if (argc_ < 4)
        return -EINVAL;
    wv_rq_job_opts o = {0};
    for (int i = 4; i < argc_; i++)
        if (set_opt(&o, argv_[i]) < 0)
            return wv_fail(-EINVAL, "rq_peer: bad option %s", argv_[i]);
    char id[37];
    int rc = wv_rq_enqueue(rq, argv_[2], argv_[3], &o, id);
    if (rc == 0)
        printf("%s\n", o.job_id ? o.job_id : id);
    return rc;
}

static int status_cmd(wv_rq *rq)
{
    if (argc_ < 3)
        return -EINVAL;
    wv_rq_state st;
    int rc = wv_rq_status(rq, argv_[2], &st);
    if (rc == 0)
        printf("%s\n", wv_rq_state_name(st));
    return rc;
}

static int result_cmd(wv_rq *rq)
{
    if (argc_ < 3)
        return -EINVAL;
    wv_buf out = {0};
    int64_t old = wv_deadline_set(wv_after_ms(argc_ > 3 ? atoll(argv_[3]) : 20000));
    int rc = wv_rq_result(rq, argv_[2], &out);
    wv_deadline_set(old);
    if (rc == 0)
        printf("%.*s\n", (int)out.n, out.p);
    wv_buf_free(&out);
    return rc;
}

static const char *errname(int rc)
{
    switch (-rc) {
    case ENOENT:
        return "ENOENT";
    case EREMOTEIO:
        return "EREMOTEIO";
    case ECANCELED:
        return "ECANCELED";
    case ENOTSUP:
        return "ENOTSUP";
    case ETIMEDOUT:
        return "ETIMEDOUT";
    case EINVAL:
        return "EINVAL";
    case ERANGE:
        return "ERANGE";
    default:
        return wv_strerror(rc);
    }
}

static int run(void *arg)
{
    (void)arg;
    wv_rq *rq;
    wv_redis *shared = NULL; /* $RQ_SHARED: over a Redis client the peer keeps */
    int rc = getenv("RQ_SHARED") ? wv_redis_open(url(), NULL, &shared) : 0;
    if (rc == 0)
        rc = shared ? wv_rq_with(shared, NULL, &rq) : wv_rq_open(url(), NULL, &rq);
    if (rc == 0) {
        const char *cmd = argc_ >= 2 ? argv_[1] : "";
        if (strcmp(cmd, "enqueue") == 0)
            rc = enqueue_cmd(rq);
        else if (strcmp(cmd, "status") == 0)
            rc = status_cmd(rq);
        else if (strcmp(cmd, "result") == 0)
            rc = result_cmd(rq);
        else
            rc = wv_fail(-EINVAL, "usage: rq_peer enqueue|status|result ...");
        wv_rq_close(rq);
    }
    if (shared) {
        /* still usable after wv_rq_close: the RQ client did not close it */
        int ping = wv_redis_ping(shared);
        rc = rc < 0 ? rc : ping;
        wv_redis_close(shared);
    }
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", errname(rc), wv_errmsg());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    argc_ = argc;
    argv_ = argv;
    int rc = wv_main(&(wv_main_opts){.shards = 1}, run, NULL);
    return rc < 0 ? 1 : rc;
}
