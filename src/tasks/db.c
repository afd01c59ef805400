/*
 * src/tasks/db.c: a task queue and result backend in a database table
 * (transport.h's seam), on weave's database API (include/weave/db.h):
 * PostgreSQL (postgres://, postgresql://) or SQLite (sqlite:...). Because
 * the queue is a table, a producer can enqueue in its own transaction
 * (wv_task_enqueue): the task exists if and only if that transaction
 * commits. docs/tasks.md has the guide; this comment is the reference.
 *
 * The table, created when missing by the first client that opens the
 * database (under an advisory lock on PostgreSQL, so two workers starting
 * at once do not race on the catalog); <time> is TIMESTAMPTZ on
 * PostgreSQL and TEXT on SQLite (ISO 8601 in UTC with 6 fraction digits,
 * which sorts in time order):
 *
 *   CREATE TABLE weave_tasks (
 *       id           TEXT PRIMARY KEY,  -- the Celery task id (a uuid4)
 *       queue        TEXT NOT NULL,     -- '' for a row holding only a result
 *       name         TEXT NOT NULL,     -- the task's name
 *       state        TEXT NOT NULL,     -- Celery's: PENDING, STARTED, RETRY,
 *                                       --   SUCCESS, FAILURE, REVOKED
 *       body         TEXT NOT NULL,     -- the message body: [args, kwargs, embed]
 *       headers      TEXT NOT NULL,     -- the message headers (protocol 2), JSON
 *       result       TEXT,              -- Celery's result meta JSON, as the
 *                                       --   Redis backend stores it
 *       attempts     INTEGER NOT NULL,  -- times a worker took the message
 *       run_at       <time>,            -- due at (ETA, countdown, retry);
 *                                       --   NULL: no delivery pending (acked)
 *       locked_until <time>,            -- taken: the lease (visibility timeout)
 *       lock_token   TEXT,              -- the delivery holding the lease
 *       locked_by    TEXT,              -- who took it last: "host:pid:random"
 *       rejected     TEXT,              -- why a worker refused it (kept)
 *       created_at   <time> NOT NULL,
 *       updated_at   <time> NOT NULL
 *   );
 *   CREATE INDEX weave_tasks_due ON weave_tasks (queue, run_at) WHERE run_at IS NOT NULL;
 *   CREATE INDEX weave_tasks_done ON weave_tasks (updated_at) WHERE run_at IS NULL;
 *   CREATE INDEX weave_tasks_locked ON weave_tasks (locked_by) WHERE lock_token IS NOT NULL;
 *
 * The message is stored as its parts (body and headers, celery.h's AMQP
 * form), so the worker (tasks.c) reads it exactly as from any broker: ETA,
 * expires, time limits and retries apply unchanged. The properties are
 * the row's: correlation_id is the id, the routing key the queue, and the
 * delivery tag the lease's token.
 *
 * A delivery, row by row:
 *
 *  - send / wv_task_enqueue: INSERT, run_at = the ETA or now. A send for an
 *    id that exists (Celery's retry sends the same id again) replaces the
 *    message and makes it due again; its state and result stay until the
 *    worker stores new ones, as in Celery's backends.
 *  - take: one statement, so one short transaction, never held while the
 *    task runs: UPDATE ... SET locked_until = now + visibility timeout,
 *    lock_token = a fresh uuid4, attempts + 1 WHERE id = (the oldest due,
 *    unlocked row of the queue: run_at <= now and no lease or an expired
 *    one) RETURNING the message. On PostgreSQL the inner SELECT has FOR
 *    UPDATE SKIP LOCKED, so concurrent takers each lock a different row
 *    instead of queueing on one; on SQLite, which has one writer at a
 *    time, the UPDATE ... RETURNING (SQLite 3.35+) runs as one write
 *    transaction: no other take can interleave between its SELECT and its
 *    UPDATE.
 *  - ack: the row is done (run_at, lease cleared) and keeps the result,
 *    when the client's result backend is this table; otherwise (no
 *    backend, another backend, or an ignore_result message) it is
 *    deleted. Either only while the lease is the ack's (lock_token): a
 *    worker whose lease expired and whose message went to another worker,
 *    or a message sent again meanwhile, is not acked by the stale delivery.
 *  - requeue: the lease is dropped (due again at its run_at).
 *  - reject, and a row whose message does not decode: done, with the
 *    reason in `rejected`, kept for inspection (never purged); a row that
 *    does not decode is also stored FAILURE (kombu.exceptions.DecodeError)
 *    so that a wait for it ends.
 *  - while a worker runs, its upkeep renews the leases it holds every
 *    third of the visibility timeout (one UPDATE by locked_by), so a task
 *    may run longer than the timeout without being taken twice; a worker
 *    that dies stops renewing, its leases expire, and its rows are taken
 *    again within the visibility timeout (at-least-once).
 *  - done rows (not rejected ones) older than result_expires are
 *    deleted, at most once a minute, by a worker's upkeep and by a
 *    backend as it stores results.
 *
 * Wakeups. PostgreSQL: a send (and a requeue) runs pg_notify('weave_tasks',
 * queue) in the same statement, and storing a result pg_notify(
 * 'weave_tasks_done', id); PostgreSQL delivers a notification only when its
 * transaction commits, so an enqueue that rolls back wakes nobody. Each
 * client LISTENs on both channels on a connection of its own (wv_pg_listen,
 * reconnected with backoff when lost, everyone looking again after), and a
 * fiber hands each notification to the takes and result waits it concerns.
 * Polling stays as the fallback: a take looks again every second (its 1 s
 * timeout), and a wait every second. SQLite has no notifications: a take
 * and a wait poll every 200 ms (a read first, the UPDATE only when a row
 * is due, so an idle worker does not take the write lock), and a send or a
 * result on the same client wakes its own takes and waits at once. Either
 * way a take sleeps no longer than until the next ETA it saw.
 *
 * Broadcasts (Celery's events, remote control: wv_tasks_revoke) travel on
 * PostgreSQL as NOTIFY weave_tasks_bcast, "<exchange>\n<routing key>\n
 * <body>" (under 8000 bytes, NOTIFY's limit), to every client's LISTEN
 * connection, matched to each listen() by exchange and (topic) binding
 * key; at most once, as Redis pub/sub. SQLite has none: its transport
 * leaves publish and listen out.
 *
 * The clock is the clients' wall clock (Celery's ETA is too).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tasks/transport.h"
#include "weave/db.h"
#include "weave/pg.h"
#include "weave/tasks.h"

#define NOTIFY_QUEUE "weave_tasks"
#define NOTIFY_DONE  "weave_tasks_done"
#define NOTIFY_BCAST "weave_tasks_bcast"

/* A broadcast's payload at most (PostgreSQL refuses 8000 bytes or more). */
#define BCAST_MAX 7999
/* Broadcasts queued for one listen() before the newest are dropped. */
#define BCAST_QUEUE 1024

/* How often a take or a wait looks again without a wakeup. */
#define POLL_PG_MS     1000
#define POLL_SQLITE_MS 200
/* Upkeep's period at most. */
#define PURGE_MS 60000

/* ------------------------------------------------------------ the schema */

#define TABLE_SQL(TIME)                                                                            \
    "CREATE TABLE IF NOT EXISTS weave_tasks ("                                                     \
    "id TEXT PRIMARY KEY, queue TEXT NOT NULL, name TEXT NOT NULL, "                               \
    "state TEXT NOT NULL DEFAULT 'PENDING', body TEXT NOT NULL, headers TEXT NOT NULL, "           \
    "result TEXT, attempts INTEGER NOT NULL DEFAULT 0, run_at " TIME ", locked_until " TIME ", "   \
    "lock_token TEXT, locked_by TEXT, rejected TEXT, created_at " TIME " NOT NULL, "               \
    "updated_at " TIME " NOT NULL)"
#define DUE_INDEX_SQL                                                                              \
    "CREATE INDEX IF NOT EXISTS weave_tasks_due ON weave_tasks (queue, run_at) "                   \
    "WHERE run_at IS NOT NULL"
#define DONE_INDEX_SQL                                                                             \
    "CREATE INDEX IF NOT EXISTS weave_tasks_done ON weave_tasks (updated_at) "                     \
    "WHERE run_at IS NULL"
#define LOCKED_INDEX_SQL                                                                           \
    "CREATE INDEX IF NOT EXISTS weave_tasks_locked ON weave_tasks (locked_by) "                    \
    "WHERE lock_token IS NOT NULL"

/* PostgreSQL: a statement that also notifies `channel` with the column
 * `col` of each row it wrote (a data-modifying CTE: one round trip). */
#define PG_NOTIFYING(stmt, col, channel)                                                           \
    "WITH w AS (" stmt " RETURNING " col ") SELECT pg_notify('" channel "', " col ") FROM w"

/* $1 id, $2 queue, $3 name, $4 body, $5 headers, $6 run_at, $7 now */
#define INSERT_SQL                                                                                 \
    "INSERT INTO weave_tasks (id, queue, name, state, body, headers, attempts, run_at, "           \
    "created_at, updated_at) VALUES ($1, $2, $3, 'PENDING', $4, $5, 0, $6, $7, $7) "               \
    "ON CONFLICT (id) DO UPDATE SET queue = excluded.queue, name = excluded.name, "                \
    "body = excluded.body, headers = excluded.headers, run_at = excluded.run_at, "                 \
    "locked_until = NULL, lock_token = NULL, locked_by = NULL, rejected = NULL, "                  \
    "updated_at = excluded.updated_at"

/* $1 queue, $2 now, $3 lease end, $4 token, $5 worker */
#define TAKE_SQL(LOCK)                                                                             \
    "UPDATE weave_tasks SET locked_until = $3, lock_token = $4, locked_by = $5, "                  \
    "attempts = attempts + 1, updated_at = $2 WHERE id = (SELECT id FROM weave_tasks "             \
    "WHERE queue = $1 AND run_at <= $2 AND (locked_until IS NULL OR locked_until <= $2) "          \
    "ORDER BY run_at LIMIT 1" LOCK ") RETURNING id, body, headers"

/* The earliest run_at of the queue's unlocked rows ($1 queue, $2 now). */
#define NEXT_DUE_SQL                                                                               \
    "SELECT min(run_at) FROM weave_tasks WHERE queue = $1 AND run_at IS NOT NULL "                 \
    "AND (locked_until IS NULL OR locked_until <= $2)"

/* The due, unleased rows of a queue: its depth ($1 queue, $2 now). */
#define DEPTH_SQL                                                                                  \
    "SELECT count(*) FROM weave_tasks WHERE queue = $1 AND run_at <= $2 "                          \
    "AND (locked_until IS NULL OR locked_until <= $2)"

/* $1 id, $2 token, $3 now */
#define DONE_SQL                                                                                   \
    "UPDATE weave_tasks SET run_at = NULL, locked_until = NULL, lock_token = NULL, "               \
    "updated_at = $3 WHERE id = $1 AND lock_token = $2"
#define DELETE_SQL "DELETE FROM weave_tasks WHERE id = $1 AND lock_token = $2"
#define UNLOCK_SQL                                                                                 \
    "UPDATE weave_tasks SET locked_until = NULL, lock_token = NULL, locked_by = NULL, "            \
    "updated_at = $3 WHERE id = $1 AND lock_token = $2"
/* $1 id, $2 token, $3 now, $4 why */
#define REJECT_SQL                                                                                 \
    "UPDATE weave_tasks SET run_at = NULL, locked_until = NULL, lock_token = NULL, "               \
    "rejected = $4, updated_at = $3 WHERE id = $1 AND lock_token = $2"

/* A result: $1 id, $2 name, $3 state, $4 meta, $5 now. A task whose row is
 * gone (or that another broker carried) gets a row of its own. */
#define STORE_SQL                                                                                  \
    "INSERT INTO weave_tasks (id, queue, name, state, body, headers, result, created_at, "         \
    "updated_at) VALUES ($1, '', $2, $3, '', '', $4, $5, $5) ON CONFLICT (id) DO UPDATE SET "      \
    "state = excluded.state, result = excluded.result, updated_at = excluded.updated_at"

/* The leases of the deliveries a live client holds: $1 client, $2 new end */
#define RENEW_SQL                                                                                  \
    "UPDATE weave_tasks SET locked_until = $2 WHERE locked_by = $1 AND lock_token IS NOT NULL"

#define PURGE_SQL                                                                                  \
    "DELETE FROM weave_tasks WHERE run_at IS NULL AND rejected IS NULL AND updated_at < $1"

/* ------------------------------------------------------------ the client's core */

enum { WAIT_QUEUE, WAIT_DONE };

/* A fiber waiting for a notification about `key` (a queue or a task id). */
typedef struct waiter {
    struct waiter *next;
    int kind;
    const char *key;
    wv_event ev;
} waiter;

/* A listen() on the broadcast channel: what it is bound to, and its
 * queue of bodies (malloc'd, NUL-terminated). */
typedef struct bcast_sub {
    struct bcast_sub *next;
    const char *exchange, *type, *binding_key;
    wv_chan *q;
} bcast_sub;

/* What a transport and a backend on the same database share. */
typedef struct db_core {
    int refs;
    char *url;
    wv_db *db;
    bool pg;
    wv_pg_conn *listen; /* PostgreSQL: LISTENs; NULL while reconnecting */
    wv_group *listener; /* its fiber */
    waiter *waiters;
    bcast_sub *subs;
    int64_t result_expires_ms;
    int64_t next_purge; /* wv_now() time */
    char worker[96];    /* host:pid:random, this client's name on its leases */
} db_core;

typedef struct db_tr {
    tasks_transport base;
    db_core *core;
    int64_t vt_ms;
    bool keep_rows; /* the result backend is this table */
} db_tr;

typedef struct db_be {
    tasks_backend base;
    db_core *core;
} db_be;

static const tasks_transport_ops db_tr_ops_pg, db_tr_ops_sqlite;

static bool is_db_tr(const tasks_transport *tr)
{
    return tr && (tr->ops == &db_tr_ops_pg || tr->ops == &db_tr_ops_sqlite);
}

bool tasks_db_url(const char *url)
{
    return url && (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0 ||
                   strncmp(url, "sqlite:", 7) == 0);
}

static int64_t now_us(void)
{
    return tasks_real_ns() / 1000;
}

static void add_waiter(db_core *c, waiter *w)
{
    w->next = c->waiters;
    c->waiters = w;
}

static void remove_waiter(db_core *c, waiter *w)
{
    for (waiter **p = &c->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

/* Wake the waiters for (kind, key); key NULL: every waiter. */
static void wake(db_core *c, int kind, const char *key)
{
    for (waiter *w = c->waiters; w; w = w->next)
        if (!key || (w->kind == kind && strcmp(w->key, key) == 0))
            wv_event_set(&w->ev);
}

/* Wait for ev until `at`: 0 when woken or at `at`, -ETIMEDOUT when the
 * fiber's own deadline passed, -ECANCELED. */
static int wait_until(wv_event *ev, int64_t at)
{
    if (wv_deadline() <= at)
        return wv_event_wait(ev);
    int64_t old = wv_deadline_set(at);
    int rc = wv_event_wait(ev);
    wv_deadline_set(old);
    return rc == -ETIMEDOUT ? 0 : rc;
}

/* AMQP's topic match of a routing key against a binding key: words
 * between dots, "*" exactly one word, "#" zero or more. NULL: no words
 * left. */
static bool topic_match(const char *key, const char *rk)
{
    if (!key)
        return !rk;
    const char *kdot = strchr(key, '.'), *knext = kdot ? kdot + 1 : NULL;
    size_t kn = kdot ? (size_t)(kdot - key) : strlen(key);
    if (kn == 1 && key[0] == '#') {
        for (const char *r = rk;;) { /* # as no word, then one more each time */
            if (topic_match(knext, r))
                return true;
            if (!r)
                return false;
            const char *rdot = strchr(r, '.');
            r = rdot ? rdot + 1 : NULL;
        }
    }
    if (!rk)
        return false;
    const char *rdot = strchr(rk, '.');
    size_t rn = rdot ? (size_t)(rdot - rk) : strlen(rk);
    if (!(kn == 1 && key[0] == '*') && (kn != rn || memcmp(key, rk, kn) != 0))
        return false;
    return topic_match(knext, rdot ? rdot + 1 : NULL);
}

/* A broadcast "<exchange>\n<routing key>\n<body>" to the listen()s bound
 * to it. */
static void deliver(db_core *c, const char *payload)
{
    const char *nl1 = strchr(payload, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
    if (!nl2)
        return;
    char rk[256];
    size_t ex_n = (size_t)(nl1 - payload), rk_n = (size_t)(nl2 - nl1 - 1);
    if (rk_n >= sizeof rk)
        return;
    memcpy(rk, nl1 + 1, rk_n);
    rk[rk_n] = 0;
    for (bcast_sub *s = c->subs; s; s = s->next) {
        if (strlen(s->exchange) != ex_n || memcmp(s->exchange, payload, ex_n) != 0)
            continue;
        if (strcmp(s->type, "fanout") != 0 && !topic_match(s->binding_key, rk))
            continue;
        char *body = strdup(nl2 + 1);
        if (body && wv_chan_try_send(s->q, &body) < 0) {
            wv_warn("tasks: a broadcast on %s dropped: its listener is %d behind", s->exchange,
                    BCAST_QUEUE);
            free(body);
        }
    }
}

static int listen_connect(db_core *c, wv_pg_conn **out)
{
    wv_pg_conn *conn;
    int rc = wv_pg_connect(c->url, &(wv_pg_opts){.name = "tasks-listen"}, &conn);
    if (rc < 0)
        return rc;
    rc = wv_pg_listen(conn, NOTIFY_QUEUE);
    if (rc == 0)
        rc = wv_pg_listen(conn, NOTIFY_DONE);
    if (rc == 0)
        rc = wv_pg_listen(conn, NOTIFY_BCAST);
    if (rc < 0) {
        wv_pg_close(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

/* The listening fiber: notifications to their waiters; a lost connection
 * made again with backoff, after which every waiter looks again (what was
 * notified meanwhile is lost). */
static int listener(void *arg)
{
    db_core *c = arg;
    int64_t backoff = 100;
    while (!wv_cancelled()) {
        if (!c->listen) {
            wv_pg_conn *conn;
            int rc = listen_connect(c, &conn);
            if (rc < 0) {
                if (wv_sleep_ms(backoff) < 0)
                    break;
                backoff = backoff * 2 < 5000 ? backoff * 2 : 5000;
                continue;
            }
            c->listen = conn;
            backoff = 100;
            wake(c, 0, NULL);
        }
        wv_pg_notification *n;
        int rc = wv_pg_notification_recv(c->listen, &n);
        if (rc == 0) {
            const char *payload = n->payload ? n->payload : "";
            if (strcmp(n->channel, NOTIFY_BCAST) == 0)
                deliver(c, payload);
            else
                wake(c, strcmp(n->channel, NOTIFY_DONE) == 0 ? WAIT_DONE : WAIT_QUEUE, payload);
            wv_pg_notification_free(n);
        } else if (rc == -ECANCELED || wv_cancelled()) {
            break;
        } else {
            wv_warn("tasks: the LISTEN connection: %s (%s); reconnecting", wv_strerror(rc),
                    wv_errmsg());
            wv_pg_close(c->listen);
            c->listen = NULL;
            wake(c, 0, NULL);
        }
    }
    return 0;
}

static int create_schema(wv_db *tx, void *arg)
{
    bool pg = *(bool *)arg;
    int rc = 0;
    if (pg)
        rc = wv_db_exec(tx, "SELECT pg_advisory_xact_lock(hashtext('weave_tasks'))");
    if (rc >= 0)
        rc = wv_db_exec(tx, pg ? TABLE_SQL("TIMESTAMPTZ") : TABLE_SQL("TEXT"));
    if (rc >= 0)
        rc = wv_db_exec(tx, DUE_INDEX_SQL);
    if (rc >= 0)
        rc = wv_db_exec(tx, DONE_INDEX_SQL);
    return rc < 0 ? rc : wv_db_exec(tx, LOCKED_INDEX_SQL);
}

static void core_release(db_core *c)
{
    if (!c || --c->refs > 0)
        return;
    wv_group_free(c->listener);
    wv_pg_close(c->listen);
    wv_db_close(c->db);
    free(c->url);
    free(c);
}

static int core_open(const char *url, const tasks_cfg *cfg, db_core **out)
{
    db_core *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->refs = 1;
    c->result_expires_ms = cfg->result_expires_ms;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    char uuid[CELERY_UUID_LEN + 1];
    int rc = celery_uuid4(uuid);
    if (rc < 0) {
        free(c);
        return rc;
    }
    /* unique per client, even when a container restarts as the same pid */
    snprintf(c->worker, sizeof c->worker, "%s:%d:%.8s", host, (int)getpid(), uuid);
    rc = (c->url = strdup(url)) ? 0 : -ENOMEM;
    /* PostgreSQL: a queue's statistics swing between empty and full, and
     * a plan made while the table looked empty (a bitmap scan of every due
     * row, then a sort) costs a scan of the whole queue per take once it is
     * full; the ordered index scan takes the head in constant time whatever
     * the statistics say. This client's connections run only the queue's
     * statements. */
    wv_db_opts dbo = {.on_connect =
                          strncmp(url, "postgres", 8) == 0 ? "SET enable_bitmapscan = off" : NULL};
    if (rc == 0)
        rc = wv_db_open(url, &dbo, &c->db);
    if (rc == 0) {
        c->pg = strcmp(wv_db_backend(c->db), "postgres") == 0;
        rc = wv_db_transaction(c->db, create_schema, &c->pg);
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0 && c->pg) {
        /* LISTEN before the first look at the table: nothing committed
         * after that look goes unnoticed */
        rc = listen_connect(c, &c->listen);
        if (rc == 0)
            rc = (c->listener = wv_group_new()) ? 0 : -ENOMEM;
        if (rc == 0)
            rc = wv_group_spawn(c->listener, listener, c, &(wv_spawn_opts){.name = "tasks-listen"});
    }
    if (rc < 0) {
        core_release(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ------------------------------------------------------------ sending */

/* The message's row, in db (a database or the caller's transaction). */
static int insert_msg(wv_db *db, bool pg, const celery_task_msg *m, const char *queue)
{
    celery_amqp_msg a = {0};
    int rc = celery_task_encode_amqp(m, &a);
    if (rc < 0)
        return rc;
    int64_t now = now_us();
    int64_t run_at = m->eta_ns != CELERY_NO_TIME ? m->eta_ns / 1000 : now;
    const wv_db_value args[] = {
        wv_db_text(a.correlation_id),
        wv_db_text(queue),
        wv_db_text(m->task),
        wv_db_textn(a.body.p, a.body.n),
        wv_db_textn(a.headers.p, a.headers.n),
        wv_db_time(run_at),
        wv_db_time(now),
    };
    rc = wv_db_exec_argv(db, pg ? PG_NOTIFYING(INSERT_SQL, "queue", NOTIFY_QUEUE) : INSERT_SQL,
                         args, sizeof args / sizeof *args);
    celery_amqp_msg_free(&a);
    return rc < 0 ? rc : 0;
}

static int dt_send(tasks_transport *tr, const celery_task_msg *m, const char *queue)
{
    db_tr *t = (db_tr *)tr;
    int rc = insert_msg(t->core->db, t->core->pg, m, queue);
    if (rc == 0 && !t->core->pg)
        wake(t->core, WAIT_QUEUE, queue);
    return rc;
}

int wv_task_enqueue(wv_db *tx, const char *name, const char *args_json,
                    const wv_task_send_opts *opts, char id[37])
{
    if (!tx || !name || !*name)
        return -EINVAL;
    const char *queue = opts && opts->queue ? opts->queue : "celery";
    char tid[CELERY_UUID_LEN + 1];
    celery_task_msg m;
    int rc = tasks_msg_from_opts(&m, name, args_json, opts, queue, tid);
    if (rc < 0)
        return rc;
    rc = insert_msg(tx, strcmp(wv_db_backend(tx), "postgres") == 0, &m, queue);
    if (rc == 0 && id)
        memcpy(id, tid, sizeof tid);
    return rc;
}

/* ------------------------------------------------------------ taking */

/* A result meta for a row that cannot run, stored with the rejection. */
static int reject_row(db_tr *t, const char *id, const char *token, const char *why, bool failed)
{
    db_core *c = t->core;
    int64_t now = now_us();
    int rc = wv_db_exec(c->db, REJECT_SQL, wv_db_text(id), wv_db_text(token), wv_db_time(now),
                        wv_db_text(why));
    if (rc < 0 || !failed)
        return rc < 0 ? rc : 0;
    wv_buf meta = {0};
    celery_result_msg r = {.status = CELERY_FAILURE,
                           .task_id = id,
                           .exc_type = "DecodeError",
                           .exc_module = "kombu.exceptions",
                           .exc_message = why,
                           .date_done_ns = now * 1000};
    rc = celery_result_encode(&r, &meta);
    if (rc == 0) {
        const wv_db_value args[] = {wv_db_text(id), wv_db_text(""), wv_db_text("FAILURE"),
                                    wv_db_textn(meta.p, meta.n), wv_db_time(now)};
        rc = wv_db_exec_argv(c->db, c->pg ? PG_NOTIFYING(STORE_SQL, "id", NOTIFY_DONE) : STORE_SQL,
                             args, sizeof args / sizeof *args);
    }
    wv_buf_free(&meta);
    if (rc == 0 && !c->pg)
        wake(c, WAIT_DONE, id);
    return rc < 0 ? rc : 0;
}

/* The row taken into out: 1, or 0 when it does not decode (rejected). */
static int decode_row(db_tr *t, wv_db_rows *row, const char *queue, const char *token,
                      tasks_msg *out)
{
    const char *id = "", *body = "", *headers = "";
    size_t body_n = 0, headers_n = 0;
    wv_db_get_text(row, 0, 0, &id, NULL);
    wv_db_get_text(row, 0, 1, &body, &body_n);
    wv_db_get_text(row, 0, 2, &headers, &headers_n);
    wv_buf props = {0}, why = {0};
    int rc = wv_buf_puts(&props, "{\"correlation_id\": ");
    rc = rc ? rc : tasks_py_string(id, strlen(id), &props);
    rc = rc ? rc
            : wv_buf_puts(&props, ", \"delivery_mode\": 2, \"delivery_info\": "
                                  "{\"exchange\": \"\", \"routing_key\": ");
    rc = rc ? rc : tasks_py_string(queue, strlen(queue), &props);
    rc = rc ? rc : wv_buf_puts(&props, "}, \"priority\": 0, \"delivery_tag\": ");
    rc = rc ? rc : tasks_py_string(token, strlen(token), &props);
    rc = rc ? rc : wv_buf_puts(&props, "}");
    if (rc == 0) {
        wv_errmsg_clear();
        rc =
            celery_task_decode_parts(body, body_n, headers, headers_n, props.p, props.n, &out->msg);
        if (rc == 0 && strcmp(out->msg.id.p, id) != 0) {
            rc = wv_fail(-EBADMSG, "the headers' id %s is not the row's", out->msg.id.p);
            celery_task_free(&out->msg);
        }
        if (rc < 0 && rc != -ENOMEM)
            wv_buf_printf(&why, "does not decode: %s",
                          *wv_errmsg() ? wv_errmsg() : wv_strerror(rc));
    }
    wv_buf_free(&props);
    if (rc == 0)
        return 1;
    if (why.n == 0) {
        wv_buf_free(&why);
        return rc;
    }
    wv_buf_append(&why, "", 1);
    wv_error("tasks: the message of %s on %s %s: rejected", id, queue, why.p);
    tasks_metrics_undecodable(queue);
    int r = reject_row(t, id, token, why.p, true);
    if (r < 0)
        wv_error("tasks: rejecting %s: %s (%s)", id, wv_strerror(r), wv_errmsg());
    wv_buf_free(&why);
    return 0;
}

/* One attempt: 1 with out filled, 0 when nothing was due (or what was
 * taken did not decode), -errno. */
static int take_once(db_tr *t, const char *queue, tasks_msg *out)
{
    db_core *c = t->core;
    char token[CELERY_UUID_LEN + 1];
    int rc = celery_uuid4(token);
    if (rc < 0)
        return rc;
    int64_t now = now_us();
    wv_db_rows *row = NULL;
    rc = wv_db_query_row(c->db, &row, c->pg ? TAKE_SQL(" FOR UPDATE SKIP LOCKED") : TAKE_SQL(""),
                         wv_db_text(queue), wv_db_time(now), wv_db_time(now + t->vt_ms * 1000),
                         wv_db_text(token), wv_db_text(c->worker));
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    rc = decode_row(t, row, queue, token, out);
    wv_db_rows_free(row);
    return rc;
}

/* When the queue's next unlocked row is due (wall-clock us): 1 with *at,
 * 0 when it has none. */
static int next_due(db_core *c, const char *queue, int64_t *at)
{
    wv_db_rows *row = NULL;
    int rc = wv_db_query_row(c->db, &row, NEXT_DUE_SQL, wv_db_text(queue), wv_db_time(now_us()));
    if (rc == 0)
        rc = wv_db_get_time(row, 0, 0, at) == 0 ? 1 : 0;
    wv_db_rows_free(row);
    return rc == -ENOENT ? 0 : rc;
}

static int dt_take(tasks_transport *tr, const char *queue, int64_t timeout_ms, tasks_msg *out)
{
    db_tr *t = (db_tr *)tr;
    db_core *c = t->core;
    int64_t end = wv_after_ms(timeout_ms);
    waiter w = {.kind = WAIT_QUEUE, .key = queue};
    add_waiter(c, &w);
    int rc;
    for (;;) {
        wv_event_clear(&w.ev);
        int64_t due = 0;
        int has_due = 0;
        if (c->pg) {
            rc = take_once(t, queue, out);
            if (rc != 0)
                break;
            has_due = next_due(c, queue, &due);
        } else {
            /* SQLite: a read first; the write lock only for a due row */
            has_due = next_due(c, queue, &due);
            if (has_due == 1 && due <= now_us()) {
                rc = take_once(t, queue, out);
                if (rc != 0)
                    break;
                continue;
            }
        }
        if (has_due < 0) {
            rc = has_due;
            break;
        }
        int64_t now = wv_now(), at = now + (c->pg ? POLL_PG_MS : POLL_SQLITE_MS) * 1000000;
        if (has_due == 1) {
            int64_t in_ns = (due - now_us()) * 1000;
            /* due already but locked by a concurrent take: look again soon */
            int64_t due_at = now + (in_ns > 1000000 ? in_ns : 1000000);
            at = due_at < at ? due_at : at;
        }
        at = at < end ? at : end;
        if (now >= end) {
            rc = 0;
            break;
        }
        if ((rc = wait_until(&w.ev, at)) < 0)
            break;
    }
    remove_waiter(c, &w);
    return rc;
}

/* ------------------------------------------------------------ acks */

static int dt_ack(tasks_transport *tr, tasks_msg *m)
{
    db_tr *t = (db_tr *)tr;
    wv_db_value id = wv_db_text(m->msg.id.p), token = wv_db_text(m->msg.delivery_tag.p);
    int rc = !t->keep_rows || m->msg.ignore_result
                 ? wv_db_exec(t->core->db, DELETE_SQL, id, token)
                 : wv_db_exec(t->core->db, DONE_SQL, id, token, wv_db_time(now_us()));
    return rc < 0 ? rc : 0;
}

static int dt_requeue(tasks_transport *tr, tasks_msg *m)
{
    db_tr *t = (db_tr *)tr;
    db_core *c = t->core;
    const wv_db_value args[] = {wv_db_text(m->msg.id.p), wv_db_text(m->msg.delivery_tag.p),
                                wv_db_time(now_us())};
    int rc =
        wv_db_exec_argv(c->db, c->pg ? PG_NOTIFYING(UNLOCK_SQL, "queue", NOTIFY_QUEUE) : UNLOCK_SQL,
                        args, sizeof args / sizeof *args);
    if (rc >= 0 && !c->pg)
        wake(c, WAIT_QUEUE, m->msg.routing_key.p);
    return rc < 0 ? rc : 0;
}

static int dt_reject(tasks_transport *tr, tasks_msg *m)
{
    return reject_row((db_tr *)tr, m->msg.id.p, m->msg.delivery_tag.p, "rejected by the worker",
                      false);
}

/* Done rows (not rejected ones) past result_expires deleted, at most
 * every min(result_expires / 2, 60 s): by a worker's upkeep, and by a
 * backend as it stores (a backend beside another broker has no upkeep). */
static void purge(db_core *c)
{
    int64_t now = wv_now();
    if (now < c->next_purge)
        return;
    int64_t period = c->result_expires_ms / 2 < PURGE_MS ? c->result_expires_ms / 2 : PURGE_MS;
    c->next_purge = now + (period > 1000 ? period : 1000) * 1000000;
    int rc = wv_db_exec(c->db, PURGE_SQL, wv_db_time(now_us() - c->result_expires_ms * 1000));
    if (rc < 0)
        wv_warn("tasks: purging old rows: %s (%s)", wv_strerror(rc), wv_errmsg());
}

/* While the worker runs: the leases of the deliveries it holds renewed
 * every third of the visibility timeout, so a task may run longer than
 * the timeout and a dead worker's tasks still come back within it; and
 * old rows purged. */
static int dt_upkeep(tasks_transport *tr, wv_chan *stopping)
{
    db_tr *t = (db_tr *)tr;
    db_core *c = t->core;
    int64_t renew_ms = t->vt_ms / 3 > 100 ? t->vt_ms / 3 : 100;
    int64_t next_renew = wv_after_ms(renew_ms);
    for (;;) {
        if (wv_now() >= next_renew) {
            int rc = wv_db_exec(c->db, RENEW_SQL, wv_db_text(c->worker),
                                wv_db_time(now_us() + t->vt_ms * 1000));
            if (rc < 0)
                wv_warn("tasks: renewing leases: %s (%s)", wv_strerror(rc), wv_errmsg());
            next_renew = wv_after_ms(renew_ms);
        }
        purge(c);
        int x;
        int64_t at = next_renew < c->next_purge ? next_renew : c->next_purge;
        if (wv_chan_recv_until(stopping, &x, at) != -ETIMEDOUT)
            break;
    }
    return 0;
}

/* The rows a take would take now: due, and not leased (a row waiting for
 * its ETA is not counted until it is due). */
static int dt_depth(tasks_transport *tr, const char *queue, int64_t *out)
{
    db_tr *t = (db_tr *)tr;
    return wv_db_query_int(t->core->db, out, DEPTH_SQL, wv_db_text(queue), wv_db_time(now_us()));
}

/* PostgreSQL: a broadcast is a NOTIFY on weave_tasks_bcast, read by every
 * client's LISTEN connection (at most once: one missed while a connection
 * is being made again is lost, as on Redis pub/sub). The headers are not
 * carried: listen() hands over bodies only. */
static int dt_publish(tasks_transport *tr, const char *exchange, const char *type,
                      const char *routing_key, const char *body, size_t body_len,
                      const char *headers)
{
    (void)type;
    (void)headers;
    db_tr *t = (db_tr *)tr;
    const char *rk = routing_key ? routing_key : "";
    if (strchr(exchange, '\n') || strchr(rk, '\n') || (body_len && memchr(body, 0, body_len)))
        return wv_fail(-EINVAL, "tasks: a broadcast with a newline in its exchange or key, "
                                "or a NUL in its body");
    wv_buf payload = {0};
    int rc = wv_buf_printf(&payload, "%s\n%s\n", exchange, rk);
    rc = rc ? rc : wv_buf_append(&payload, body, body_len);
    if (rc == 0 && payload.n > BCAST_MAX)
        rc = wv_fail(-EMSGSIZE, "tasks: a broadcast of %zu bytes: NOTIFY carries %d at most",
                     payload.n, BCAST_MAX);
    if (rc == 0)
        rc = wv_db_exec(t->core->db, "SELECT pg_notify('" NOTIFY_BCAST "', $1)",
                        wv_db_textn(payload.p, payload.n));
    wv_buf_free(&payload);
    return rc < 0 ? rc : 0;
}

static int dt_listen(tasks_transport *tr, const char *exchange, const char *type,
                     const char *binding_key, wv_chan *stopping,
                     int (*got)(const char *body, size_t n, void *arg), void *arg)
{
    db_core *c = ((db_tr *)tr)->core;
    bcast_sub sub = {.exchange = exchange,
                     .type = type ? type : "fanout",
                     .binding_key = binding_key ? binding_key : "",
                     .q = wv_chan_new(sizeof(char *), BCAST_QUEUE)};
    if (!sub.q)
        return -ENOMEM;
    sub.next = c->subs;
    c->subs = &sub;
    int rc = 0;
    while (rc == 0) {
        int x;
        char *body = NULL;
        wv_select_case cs[2] = {{stopping, WV_RECV, &x, 0}, {sub.q, WV_RECV, &body, 0}};
        int i = wv_chan_select(cs, 2, WV_NEVER);
        if (i < 0)
            rc = i;
        else if (i == 0)
            break;
        else if (got(body, strlen(body), arg) < 0)
            rc = 1;
        free(body);
    }
    for (bcast_sub **p = &c->subs; *p; p = &(*p)->next)
        if (*p == &sub) {
            *p = sub.next;
            break;
        }
    char *left;
    while (wv_chan_try_recv(sub.q, &left) == 0)
        free(left);
    wv_chan_free(sub.q);
    return rc < 0 ? rc : 0;
}

static void dt_close(tasks_transport *tr)
{
    db_tr *t = (db_tr *)tr;
    core_release(t->core);
    free(t);
}

/* One taker (concurrent_take false): a take is one statement, and an idle
 * taker polls. */
#define DB_TR_OPS                                                                                  \
    .send = dt_send, .take = dt_take, .concurrent_take = false, .ack = dt_ack,                     \
    .requeue = dt_requeue, .reject = dt_reject, .upkeep = dt_upkeep, .depth = dt_depth,            \
    .close = dt_close

static const tasks_transport_ops db_tr_ops_pg = {DB_TR_OPS, .publish = dt_publish,
                                                 .listen = dt_listen};

/* SQLite has nothing to broadcast with: no events, no remote control. */
static const tasks_transport_ops db_tr_ops_sqlite = {DB_TR_OPS};

int tasks_db_open(const char *url, const tasks_cfg *cfg, tasks_transport **out)
{
    db_tr *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->vt_ms = cfg->vt_ms;
    int rc = core_open(url, cfg, &t->core);
    if (rc < 0) {
        free(t);
        return rc;
    }
    t->base.ops = t->core->pg ? &db_tr_ops_pg : &db_tr_ops_sqlite;
    *out = &t->base;
    return 0;
}

/* ------------------------------------------------------------ backend */

static int db_store(tasks_backend *b, const celery_result_msg *m, const celery_task *req)
{
    db_be *be = (db_be *)b;
    db_core *c = be->core;
    wv_buf meta = {0};
    int rc = celery_result_encode(m, &meta);
    if (rc < 0)
        return rc;
    const char *state = celery_state_name(m->status);
    const wv_db_value args[] = {wv_db_text(m->task_id), wv_db_text(req ? req->task.p : ""),
                                wv_db_text(state ? state : "PENDING"), wv_db_textn(meta.p, meta.n),
                                wv_db_time(now_us())};
    rc = wv_db_exec_argv(c->db, c->pg ? PG_NOTIFYING(STORE_SQL, "id", NOTIFY_DONE) : STORE_SQL,
                         args, sizeof args / sizeof *args);
    wv_buf_free(&meta);
    if (rc >= 0 && !c->pg)
        wake(c, WAIT_DONE, m->task_id);
    if (rc >= 0)
        purge(c);
    return rc < 0 ? rc : 0;
}

/* The result column of task id's row: 1 with meta appended, 0 when none. */
static int read_meta(db_core *c, const char *id, wv_buf *meta)
{
    wv_db_rows *row = NULL;
    int rc = wv_db_query_row(c->db, &row, "SELECT result FROM weave_tasks WHERE id = $1",
                             wv_db_text(id));
    const char *text;
    size_t n;
    if (rc == 0)
        rc = wv_db_get_text(row, 0, 0, &text, &n) == 0 ? 1 : 0;
    if (rc == 1 && (rc = wv_buf_append(meta, text, n)) == 0)
        rc = 1;
    wv_db_rows_free(row);
    return rc == -ENOENT ? 0 : rc;
}

static int db_peek(tasks_backend *b, const char *id, wv_buf *meta)
{
    return read_meta(((db_be *)b)->core, id, meta);
}

static int db_wait(tasks_backend *b, const char *id, int (*seen)(const char *, size_t, void *),
                   void *arg)
{
    db_be *be = (db_be *)b;
    db_core *c = be->core;
    waiter w = {.kind = WAIT_DONE, .key = id};
    add_waiter(c, &w);
    wv_buf meta = {0};
    int rc;
    for (;;) {
        wv_event_clear(&w.ev);
        wv_buf_reset(&meta);
        rc = read_meta(c, id, &meta);
        if (rc == 1)
            rc = seen(meta.p, meta.n, arg);
        if (rc != 0)
            break;
        rc = wait_until(&w.ev, wv_after_ms(c->pg ? POLL_PG_MS : POLL_SQLITE_MS));
        if (rc < 0)
            break;
    }
    remove_waiter(c, &w);
    wv_buf_free(&meta);
    return rc;
}

static const char *db_reply_to(tasks_backend *b)
{
    (void)b;
    return NULL;
}

static void db_be_close(tasks_backend *b)
{
    db_be *be = (db_be *)b;
    core_release(be->core);
    free(be);
}

static const tasks_backend_ops db_be_ops = {
    .store = db_store,
    .wait = db_wait,
    .reply_to = db_reply_to,
    .peek = db_peek,
    .close = db_be_close,
};

int tasks_db_backend_open(const char *url, const tasks_cfg *cfg, tasks_transport *tr,
                          tasks_backend **out)
{
    db_be *be = calloc(1, sizeof *be);
    if (!be)
        return -ENOMEM;
    be->base.ops = &db_be_ops;
    if (is_db_tr(tr) && strcmp(((db_tr *)tr)->core->url, url) == 0) {
        /* results in the queue's own rows, which acks then keep */
        db_tr *t = (db_tr *)tr;
        be->core = t->core;
        be->core->refs++;
        t->keep_rows = true;
    } else {
        int rc = core_open(url, cfg, &be->core);
        if (rc < 0) {
            free(be);
            return rc;
        }
    }
    *out = &be->base;
    return 0;
}
