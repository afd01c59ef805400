/*
 * One PostgreSQL connection: connecting without blocking the loop, the
 * writer and reader fibers that pipeline every fiber's statements, what
 * happens to a statement whose fiber stops waiting (abandoned, cancelled
 * on the server, drained), exclusive use for COPY, and teardown.
 * pg_internal.h draws the picture.
 *
 * Two libpq facts shape this file. libpq 15's PQpipelineSync writes at
 * once, so a batch of N statements with a Sync each is N sends; on TCP the
 * writer corks the socket around a batch so they leave as one segment and
 * the server wakes once. And libpq reads at most a buffer's worth per
 * PQconsumeInput while our epoll is edge-triggered, so before waiting for
 * the next edge the reader asks the kernel (and OpenSSL) whether bytes are
 * still there.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pg/pg_internal.h"
#include "weave/buf.h"
#include "weave/net.h"

enum {
    DEFAULT_CONNECT_MS = 10000,
    DEFAULT_CANCEL_MS = 5000,
    DEFAULT_CACHE = 256,
    DEFAULT_BATCH = 512,
    DEFAULT_NOTES = 10000,
    MAX_RETRIES = 2,
};

/* ------------------------------------------------------------- helpers */

void pg_one_line(const char *in, char *out, size_t n)
{
    size_t j = 0;
    bool space = false;
    if (n == 0)
        return;
    for (const char *p = in ? in : ""; *p && j + 1 < n; p++) {
        if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
            space = j > 0;
            continue;
        }
        if (space && j + 2 < n)
            out[j++] = ' ';
        space = false;
        out[j++] = *p;
    }
    out[j] = '\0';
}

static void q_push(pg_op **head, pg_op **tail, pg_op *o)
{
    o->next = NULL;
    if (*tail)
        (*tail)->next = o;
    else
        *head = o;
    *tail = o;
}

static void q_push_front(pg_op **head, pg_op **tail, pg_op *o)
{
    o->next = *head;
    *head = o;
    if (!*tail)
        *tail = o;
}

static pg_op *q_pop(pg_op **head, pg_op **tail)
{
    pg_op *o = *head;
    if (o) {
        *head = o->next;
        if (!*head)
            *tail = NULL;
        o->next = NULL;
    }
    return o;
}

static void q_unlink(pg_op **head, pg_op **tail, pg_op *o)
{
    pg_op *prev = NULL;
    for (pg_op *p = *head; p; prev = p, p = p->next) {
        if (p != o)
            continue;
        if (prev)
            prev->next = p->next;
        else
            *head = p->next;
        if (*tail == p)
            *tail = prev;
        p->next = NULL;
        return;
    }
}

/* ------------------------------------------------------------------ ops */

pg_op *pg_op_new(int nstmt, const pg_stmt *stmts)
{
    pg_op *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->nstmt = nstmt;
    o->stmts = stmts;
    o->res = &o->res_in;
    o->parts = o->parts_in;
    if (nstmt > 1) {
        o->res = calloc((size_t)nstmt, sizeof *o->res);
        o->parts = calloc((size_t)nstmt * 3, sizeof *o->parts);
        if (!o->res || !o->parts) {
            if (o->res != &o->res_in)
                free(o->res);
            if (o->parts != o->parts_in)
                free(o->parts);
            free(o);
            return NULL;
        }
    }
    return o;
}

static void op_clear_results(pg_op *o)
{
    for (int i = 0; i < o->nstmt; i++) {
        PQclear(o->res[i]);
        o->res[i] = NULL;
    }
}

void pg_op_free(pg_op *o)
{
    if (!o)
        return;
    op_clear_results(o);
    if (o->res != &o->res_in)
        free(o->res);
    if (o->parts != o->parts_in)
        free(o->parts);
    free(o);
}

/* The parts hold references on cache entries until the op is done. */
static void op_release_parts(wv_pg_conn *c, pg_op *o)
{
    for (int i = 0; i < o->nparts; i++) {
        if (o->parts[i].entry) {
            pg_cache_unref(&c->cache, o->parts[i].entry);
            o->parts[i].entry = NULL;
        }
    }
    o->nparts = 0;
    o->part = 0;
    o->part_got = false;
}

/* Wake the op's fiber with a failure of the whole op, or free it when
 * nobody waits. */
static void op_fail(wv_pg_conn *c, pg_op *o, int err, const char *msg)
{
    op_release_parts(c, o);
    if (o->abandoned) {
        pg_op_free(o);
        return;
    }
    o->err = err;
    snprintf(o->errmsg, sizeof o->errmsg, "%s", msg);
    o->finished = true;
    wv_event_set(&o->done);
}

int pg_outcome(const PGresult *r, int i)
{
    if (!r)
        return wv_fail(-EPROTO, "pg: no result for statement %d", i);
    ExecStatusType st = PQresultStatus(r);
    switch (st) {
    case PGRES_TUPLES_OK:
    case PGRES_COMMAND_OK:
    case PGRES_EMPTY_QUERY:
        return 0;
    case PGRES_PIPELINE_ABORTED:
        return wv_fail(-ECANCELED,
                       "pg: statement %d skipped: an earlier statement of its batch failed", i);
    case PGRES_FATAL_ERROR:
    case PGRES_NONFATAL_ERROR: {
        char msg[ERRBUF_SIZE];
        pg_error_format(r, msg, sizeof msg);
        return wv_fail(pg_error_errno(r), "%s", msg);
    }
    default:
        return wv_fail(-EPROTO, "pg: unexpected result %s", PQresStatus(st));
    }
}

int pg_op_outcome(const pg_op *o, int i)
{
    if (o->err)
        return wv_fail(o->err, "%s", o->errmsg);
    return pg_outcome(o->res[i], i);
}

/* ------------------------------------------------------------ connection */

int pg_conn_usable(const wv_pg_conn *c)
{
    if (c->closing)
        return wv_fail(-ECONNRESET, "pg: the connection is closed");
    if (c->broken)
        return wv_fail(c->broken_err, "%s", c->broken_msg);
    return 0;
}

static void conn_wake_all(wv_pg_conn *c)
{
    wv_event_set(&c->wkick);
    wv_event_set(&c->progress);
    wv_event_set(&c->reader_resume);
    wv_event_set(&c->excl_done);
    wv_event_set(&c->tx_free);
}

static void fail_all(wv_pg_conn *c, int err, const char *msg)
{
    pg_op *o;
    while ((o = q_pop(&c->inflight, &c->inflight_tail)))
        op_fail(c, o, err, msg);
    while ((o = q_pop(&c->unsent, &c->unsent_tail)))
        op_fail(c, o, err, msg);
}

void pg_conn_drop_notes(wv_pg_conn *c)
{
    wv_pg_notification *n;
    while (c->notes && wv_chan_try_recv(c->notes, &n) == 0)
        free(n);
}

static void conn_free(wv_pg_conn *c)
{
    if (c->fd >= 0)
        wv_fd_forget(c->fd);
    if (c->notes) {
        pg_conn_drop_notes(c);
        wv_chan_free(c->notes);
    }
    pg_cache_destroy(&c->cache);
    if (c->cancel)
        PQfreeCancel(c->cancel);
    PQfinish(c->pg);
    free(c);
}

void pg_conn_release(wv_pg_conn *c)
{
    if (--c->refs == 0)
        conn_free(c);
}

void pg_conn_break(wv_pg_conn *c, int err, const char *fmt, ...)
{
    if (c->broken)
        return;
    c->broken = true;
    c->broken_err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->broken_msg, sizeof c->broken_msg, fmt, ap);
    va_end(ap);
    if (c->fd >= 0) {
        wv_fd_forget(c->fd);
        c->fd = -1;
    }
    /* if libpq still holds the socket, make the server see the end now */
    int s = PQsocket(c->pg);
    if (s >= 0)
        shutdown(s, SHUT_RDWR);
    fail_all(c, err, c->broken_msg);
    if (c->notes)
        wv_chan_close(c->notes);
    conn_wake_all(c);
    pg_pool_conn_settled(c);
}

void pg_conn_lost(wv_pg_conn *c)
{
    char msg[PG_MSG];
    pg_one_line(PQerrorMessage(c->pg), msg, sizeof msg);
    if (c->last_fatal[0] && !strstr(msg, "FATAL"))
        pg_conn_break(c, -ECONNRESET, "pg: connection lost: %s %s", c->last_fatal, msg);
    else
        pg_conn_break(c, -ECONNRESET, "pg: connection lost: %s", msg[0] ? msg : "(no detail)");
}

/* libpq prints notices to stderr by default; ours go to the debug log, and
 * a FATAL one (the server's goodbye while we were idle) is kept for the
 * error message that follows it. */
static void on_notice(void *arg, const char *message)
{
    wv_pg_conn *c = arg;
    char line[PG_MSG];
    pg_one_line(message, line, sizeof line);
    if (c && strncmp(line, "FATAL", 5) == 0)
        snprintf(c->last_fatal, sizeof c->last_fatal, "%s", line);
    wv_debug("pg: server says: %s", line);
}

/* OpenSSL keeps decrypted bytes the kernel no longer shows; ask it before
 * waiting for an edge. Resolved at run time from the libssl libpq loaded
 * (weave itself does not link OpenSSL here). */
typedef int ssl_pending_fn(const void *ssl);
static ssl_pending_fn *ssl_pending;
static pthread_once_t ssl_once = PTHREAD_ONCE_INIT;

static void ssl_resolve(void)
{
    void *sym = dlsym(RTLD_DEFAULT, "SSL_pending");
    memcpy(&ssl_pending, &sym, sizeof sym);
}

bool pg_conn_input_pending(wv_pg_conn *c)
{
    if (c->ssl) {
        pthread_once(&ssl_once, ssl_resolve);
        if (ssl_pending && ssl_pending(c->ssl) > 0)
            return true;
    }
    if (c->fd < 0)
        return false;
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r >= 0)
        return true; /* data, or EOF for PQconsumeInput to find */
    return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

wv_chan *pg_conn_notes(wv_pg_conn *c)
{
    if (!c->notes)
        c->notes = wv_chan_new(sizeof(wv_pg_notification *), (size_t)c->opts.max_notifications);
    return c->notes;
}

static void deliver_notes(wv_pg_conn *c)
{
    PGnotify *n;
    while ((n = PQnotifies(c->pg))) {
        if (c->notes) {
            size_t lc = strlen(n->relname) + 1, lp = strlen(n->extra) + 1;
            wv_pg_notification *w = malloc(sizeof *w + lc + lp);
            if (w) {
                char *p = (char *)(w + 1);
                memcpy(p, n->relname, lc);
                memcpy(p + lc, n->extra, lp);
                w->channel = p;
                w->payload = p + lc;
                w->pid = n->be_pid;
                if (wv_chan_try_send(c->notes, &w) < 0) {
                    /* full: the oldest one goes */
                    wv_pg_notification *old;
                    if (wv_chan_try_recv(c->notes, &old) == 0)
                        free(old);
                    c->st.notifications_dropped++;
                    if (!c->notes_warned)
                        wv_warn("pg: more than %d notifications waiting; dropping the oldest",
                                c->opts.max_notifications);
                    c->notes_warned = true;
                    if (wv_chan_try_send(c->notes, &w) < 0)
                        free(w);
                }
            }
        }
        PQfreemem(n);
    }
}

/* ---------------------------------------------------------- cancellation */

typedef struct cancel_job {
    PGcancel *pc;
    char err[256];
} cancel_job;

static int cancel_job_fn(void *arg)
{
    cancel_job *j = arg;
    return PQcancel(j->pc, j->err, (int)sizeof j->err) ? 0 : -EIO;
}

typedef struct canceller {
    wv_pg_conn *c;
    uint64_t target;
    int64_t grace_ms;
    bool closing; /* sent by wv_pg_close: just the request, no watching */
} canceller;

/* An abandoned statement that only now reached the head of the queue may
 * be a quick one: give it this long to finish before cancelling. */
enum { CANCEL_GRACE_MS = 10 };

static void maybe_cancel(wv_pg_conn *c, int64_t grace_ms);

/*
 * Send the cancel request (PQcancel connects and waits for the server's
 * acknowledgement, so it runs on the offload pool), then watch: the
 * statement must finish within cancel_timeout_ms, else the connection is
 * closed rather than left stuck behind it.
 */
static int canceller_main(void *arg)
{
    canceller *k = arg;
    wv_pg_conn *c = k->c;
    uint64_t target = k->target;
    int64_t grace = k->grace_ms;
    bool k_closing = k->closing;
    free(k);
    if (grace > 0) {
        int src = wv_sleep_ms(grace);
        if (src < 0 || c->done_seq >= target || c->broken || c->closing) {
            c->cancel_running = false; /* it finished by itself (or we stop) */
            if (src == 0)
                maybe_cancel(c, CANCEL_GRACE_MS);
            pg_conn_release(c);
            return 0;
        }
    }
    wv_deadline_set(wv_after_ms(c->opts.cancel_timeout_ms));
    cancel_job j = {.pc = c->cancel};
    int rc = -ECANCELED;
    if (k_closing) {
        wv_offload(cancel_job_fn, &j);
        pg_conn_release(c);
        return 0;
    }
    if (!c->broken && !c->closing) {
        /* armed from now: its effect may show before PQcancel returns */
        c->cancel_armed++;
        c->st.cancels++;
        wv_counter_inc(c->m->cancels);
        rc = wv_offload(cancel_job_fn, &j);
        if (rc < 0 && c->cancel_armed > 0)
            c->cancel_armed--;
    }
    c->cancel_running = false;
    if (rc < 0 && !c->closing && !c->broken)
        wv_warn("pg: cancel request failed: %s", rc == -EIO ? j.err : wv_strerror(rc));
    if (!c->inflight)
        c->cancel_armed = 0; /* it reached an idle server process, which ignores it */
    int wrc = 0;
    while (!c->broken && !c->closing && c->done_seq < target) {
        wv_event_clear(&c->progress);
        wrc = wv_event_wait(&c->progress);
        if (wrc < 0)
            break;
    }
    if (wrc == -ETIMEDOUT && !c->broken && !c->closing && c->done_seq < target)
        pg_conn_break(
            c, -ECONNRESET,
            "pg: a cancelled statement was still running after %lld ms; connection closed",
            (long long)c->opts.cancel_timeout_ms);
    else
        maybe_cancel(c, CANCEL_GRACE_MS);
    pg_conn_release(c);
    return 0;
}

static void spawn_canceller(wv_pg_conn *c, canceller init)
{
    canceller *k = malloc(sizeof *k);
    if (!k)
        return;
    *k = init;
    k->c = c;
    c->refs++;
    if (wv_spawn(canceller_main, k, &(wv_spawn_opts){.name = "pg-cancel"}) < 0) {
        c->refs--;
        free(k);
    }
}

/* The statement now running on the server was abandoned: cancel it. */
static void maybe_cancel(wv_pg_conn *c, int64_t grace_ms)
{
    pg_op *o = c->inflight;
    if (!o || !o->abandoned || o->no_cancel || o->cancel_sent || c->cancel_running || !c->cancel ||
        c->broken || c->closing)
        return;
    o->cancel_sent = true;
    c->cancel_running = true;
    int refs = c->refs;
    spawn_canceller(c, (canceller){.target = o->seq, .grace_ms = grace_ms});
    if (c->refs == refs)
        c->cancel_running = false; /* could not start it */
}

/* ------------------------------------------------------------ the reader */

static void op_requeue(wv_pg_conn *c, pg_op *o)
{
    o->retries++;
    c->st.retries++;
    op_clear_results(o);
    o->sent = false;
    o->cancel_sent = false;
    q_push_front(&c->unsent, &c->unsent_tail, o);
    wv_event_set(&c->wkick);
}

static void count_outcome(wv_pg_conn *c, pg_op *o, bool failed)
{
    wv_counter_inc(failed ? c->m->error : c->m->ok);
    wv_histogram_observe(c->m->duration, (double)(wv_now() - o->t0) / 1e9);
}

static void op_complete(wv_pg_conn *c, pg_op *o)
{
    q_pop(&c->inflight, &c->inflight_tail);
    c->done_seq = o->seq;
    bool stale = false;
    for (int i = 0; i < o->nparts; i++)
        stale |= o->parts[i].role == PART_EXEC && o->parts[i].entry && o->parts[i].entry->dead;
    op_release_parts(c, o);

    const PGresult *er = NULL;
    for (int i = 0; i < o->nstmt && !er; i++)
        if (o->res[i] && PQresultStatus(o->res[i]) == PGRES_FATAL_ERROR)
            er = o->res[i];
    bool retry = false;
    if (er && pg_error_is(er, "57014") && c->cancel_armed > 0) {
        /* our cancel landed here: meant for this op, or (a race with the
         * op before it finishing) for one that was running a moment ago */
        c->cancel_armed--;
        retry = true;
    }
    if (er && stale && (pg_error_is(er, "26000") || pg_error_is(er, "0A000")))
        retry = true; /* the cached statement went stale: prepare it again */
    if (!c->inflight && !c->cancel_running)
        c->cancel_armed = 0;
    if (retry && !o->abandoned && !o->in_tx && o->retries < MAX_RETRIES) {
        op_requeue(c, o);
    } else {
        if (er && o->in_tx && (pg_error_is(er, "40001") || pg_error_is(er, "40P01")))
            c->tx_retryable = true;
        if (o->abandoned) {
            pg_op_free(o);
        } else {
            count_outcome(c, o, er != NULL);
            o->finished = true;
            wv_event_set(&o->done);
        }
    }
    wv_event_set(&c->progress);
    if (c->inflight)
        maybe_cancel(c, CANCEL_GRACE_MS);
    else if (c->unsent)
        wv_event_set(&c->wkick);
    else
        pg_pool_conn_settled(c);
}

/* One PGresult (or the NULL ending a statement's results) for the op at
 * the head of inflight. Returns whether it moved anything. */
static bool on_result(wv_pg_conn *c, PGresult *r)
{
    pg_op *o = c->inflight;
    if (!o) {
        PQclear(r);
        return false;
    }
    if (o->part < o->nparts) {
        if (!r) {
            o->part++;
            o->part_got = false;
            return true;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            PQclear(r);
            pg_conn_break(c, -EPROTO,
                          "pg: COPY cannot run as a plain statement: use wv_pg_copy_in / "
                          "wv_pg_copy_out (the connection was closed)");
            return true;
        }
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            pg_conn_break(c, -EPROTO, "pg: replies out of step with the statements sent");
            return true;
        }
        pg_part *p = &o->parts[o->part];
        bool failed = st == PGRES_FATAL_ERROR;
        if (p->role == PART_PREPARE && p->entry) {
            if (st == PGRES_COMMAND_OK)
                p->entry->ready = true;
            else
                pg_cache_remove(&c->cache, p->entry);
        }
        if (p->role == PART_EXEC && failed && p->entry &&
            (pg_error_is(r, "26000") || pg_error_is(r, "0A000")))
            pg_cache_remove(&c->cache, p->entry); /* marks it dead */
        PGresult **slot = &o->res[p->stmt];
        if (!*slot && !o->part_got && (p->role == PART_EXEC || st != PGRES_COMMAND_OK)) {
            *slot = r;
            r = NULL;
        }
        o->part_got = true;
        PQclear(r);
        return true;
    }
    if (!r)
        return false;
    if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        PQclear(r);
        pg_conn_break(c, -EPROTO, "pg: a reply where the end of a statement was expected");
        return true;
    }
    PQclear(r);
    op_complete(c, o);
    return true;
}

void pg_conn_pump(wv_pg_conn *c)
{
    if (c->broken || c->closing)
        return;
    if (!PQconsumeInput(c->pg)) {
        pg_conn_lost(c);
        return;
    }
    for (;;) {
        deliver_notes(c);
        if (!c->inflight || c->broken)
            break;
        if (PQisBusy(c->pg))
            break;
        if (!on_result(c, PQgetResult(c->pg)))
            break;
    }
    if (!c->broken && PQstatus(c->pg) == CONNECTION_BAD)
        pg_conn_lost(c);
}

static int reader_main(void *arg)
{
    wv_pg_conn *c = arg;
    while (!c->broken && !c->closing) {
        if (c->reader_paused) {
            if (wv_event_wait(&c->reader_resume) < 0) {
                pg_conn_break(c, -ECONNRESET, "pg: connection dropped: the runtime is stopping");
                break;
            }
            if (!c->reader_paused)
                pg_conn_pump(c); /* what arrived during the exclusive use */
            continue;
        }
        int rc = wv_fd_wait(c->fd, WV_IN, WV_NEVER);
        if (rc == -ECANCELED) {
            pg_conn_break(c, -ECONNRESET, "pg: connection dropped: the runtime is stopping");
            break;
        }
        if (rc < 0 && rc != -EBADF) {
            pg_conn_break(c, -ECONNRESET, "pg: waiting for the server: %s", wv_strerror(rc));
            break;
        }
        if (c->broken || c->closing || c->reader_paused)
            continue;
        /* bytes nobody asked for: a notification, or the server's goodbye
         * with its FIN right behind it */
        bool unasked = !c->inflight;
        pg_conn_pump(c);
        /* libpq may have left bytes in the socket, and no edge will come for
         * them: look before waiting. Not needed after the last awaited reply
         * (the next reply makes a new edge; a dead server shows at the next
         * statement or the pool's check) unless something unasked came. */
        while (!c->broken && !c->closing && !c->reader_paused &&
               (c->inflight || c->listening || unasked) && pg_conn_input_pending(c)) {
            if (wv_yield() < 0) {
                pg_conn_break(c, -ECONNRESET, "pg: connection dropped: the runtime is stopping");
                break;
            }
            pg_conn_pump(c);
        }
    }
    pg_conn_release(c);
    return 0;
}

/* ------------------------------------------------------------ the writer */

static void add_part(pg_op *o, int role, int stmt, stmt_entry *e)
{
    o->parts[o->nparts++] = (pg_part){.role = (uint8_t)role, .stmt = stmt, .entry = e};
}

/* Queue an op's messages in libpq's buffer: for each statement, the
 * cached prepared statement, or Parse under a new name (after DEALLOCATE
 * of the least recently used one when the cache is full), or an unnamed
 * Parse; then one Sync. */
static bool send_op(wv_pg_conn *c, pg_op *o)
{
    PGconn *pg = c->pg;
    stmt_cache *sc = &c->cache;
    for (int i = 0; i < o->nstmt; i++) {
        const pg_stmt *s = &o->stmts[i];
        stmt_entry *e = sc->max > 0 ? pg_cache_find(sc, s) : NULL;
        if (e && e->ready) {
            pg_cache_touch(sc, e);
            e->refs++;
            add_part(o, PART_EXEC, i, e);
            if (!PQsendQueryPrepared(pg, e->name, s->nparams, s->values, s->lengths, s->formats, 0))
                return false;
            continue;
        }
        if (!e && sc->max > 0) {
            if (sc->count >= sc->max) {
                stmt_entry *v = pg_cache_victim(sc);
                if (v) {
                    char sql[64];
                    snprintf(sql, sizeof sql, "DEALLOCATE %s", v->name);
                    pg_cache_remove(sc, v);
                    add_part(o, PART_DEALLOC, i, NULL);
                    if (!PQsendQueryParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0))
                        return false;
                }
            }
            e = sc->count < sc->max ? pg_cache_add(sc, s) : NULL;
            if (e) {
                e->refs += 2;
                add_part(o, PART_PREPARE, i, e);
                add_part(o, PART_EXEC, i, e);
                c->st.prepares++;
                if (!PQsendPrepare(pg, e->name, s->sql, s->nparams, s->types) ||
                    !PQsendQueryPrepared(pg, e->name, s->nparams, s->values, s->lengths, s->formats,
                                         0))
                    return false;
                continue;
            }
        }
        /* uncached, or its Parse is still on the way: parse it unnamed */
        add_part(o, PART_EXEC, i, NULL);
        if (!PQsendQueryParams(pg, s->sql, s->nparams, s->types, s->values, s->lengths, s->formats,
                               0))
            return false;
    }
    if (!PQpipelineSync(pg))
        return false;
    c->st.statements += (uint64_t)o->nstmt;
    return true;
}

static void set_cork(wv_pg_conn *c, int on)
{
    if (c->fd >= 0)
        setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
}

static void send_failed(wv_pg_conn *c)
{
    if (PQstatus(c->pg) == CONNECTION_BAD || PQsocket(c->pg) < 0) {
        pg_conn_lost(c);
        return;
    }
    char msg[PG_MSG];
    pg_one_line(PQerrorMessage(c->pg), msg, sizeof msg);
    pg_conn_break(c, -EIO, "pg: cannot send: %s", msg);
}

static void send_batch(wv_pg_conn *c)
{
    int limit = c->opts.no_pipeline ? 1 : c->opts.max_batch;
    bool cork = c->tcp && limit > 1 && c->unsent->next && c->unsent->next->kind == OP_STMTS;
    if (cork)
        set_cork(c, 1);
    int n = 0;
    pg_op *o;
    while (n < limit && (o = c->unsent) && o->kind == OP_STMTS) {
        q_pop(&c->unsent, &c->unsent_tail);
        o->seq = ++c->next_seq;
        o->sent = true;
        q_push(&c->inflight, &c->inflight_tail, o);
        if (!send_op(c, o)) {
            if (cork)
                set_cork(c, 0);
            send_failed(c);
            return;
        }
        n++;
    }
    if (cork)
        set_cork(c, 0);
    c->st.batches++;
    wv_counter_inc(c->m->batches);
}

static void flush_out(wv_pg_conn *c)
{
    while (!c->broken && !c->closing) {
        int r = PQflush(c->pg);
        if (r == 0)
            return;
        if (r < 0) {
            pg_conn_lost(c);
            return;
        }
        int rc = wv_fd_wait(c->fd, WV_OUT, WV_NEVER);
        if (c->broken || c->closing)
            return;
        if (rc == -ECANCELED) {
            pg_conn_break(c, -ECONNRESET, "pg: connection dropped: the runtime is stopping");
            return;
        }
        if (rc < 0 && rc != -EBADF) {
            pg_conn_break(c, -ECONNRESET, "pg: waiting to send: %s", wv_strerror(rc));
            return;
        }
    }
}

/* Hand the connection to the fiber of the OP_EXCL op at the head of the
 * queue (nothing in flight), and take it back when it is done. */
static void grant_excl(wv_pg_conn *c)
{
    pg_op *o = q_pop(&c->unsent, &c->unsent_tail);
    c->reader_paused = true;
    wv_event_clear(&c->reader_resume);
    if (c->fd >= 0)
        wv_fd_forget(c->fd); /* wakes the reader off the socket */
    if (PQexitPipelineMode(c->pg) != 1) {
        char msg[PG_MSG];
        pg_one_line(PQerrorMessage(c->pg), msg, sizeof msg);
        op_fail(c, o, -EPROTO, "pg: cannot leave pipeline mode for COPY");
        pg_conn_break(c, -EPROTO, "pg: cannot leave pipeline mode: %s", msg);
        return;
    }
    c->excl_active = true;
    o->sent = o->finished = true;
    wv_event_set(&o->done);
    while (c->excl_active && !c->broken && !c->closing) {
        wv_event_clear(&c->excl_done);
        if (wv_event_wait(&c->excl_done) < 0) {
            pg_conn_break(c, -ECONNRESET, "pg: connection dropped: the runtime is stopping");
            break;
        }
    }
    if (!c->broken && !c->closing && PQenterPipelineMode(c->pg) != 1)
        pg_conn_break(c, -EPROTO, "pg: cannot go back to pipeline mode after COPY");
    c->reader_paused = false;
    wv_event_set(&c->reader_resume);
}

static int writer_main(void *arg)
{
    wv_pg_conn *c = arg;
    while (!c->broken && !c->closing) {
        /* one batch in flight at a time: what arrives meanwhile is the next */
        pg_op *o = c->unsent;
        bool go = o && !c->inflight;
        if (!go) {
            wv_event_clear(&c->wkick);
            if (wv_event_wait(&c->wkick) < 0) {
                pg_conn_break(c, -ECONNRESET, "pg: connection dropped: the runtime is stopping");
                break;
            }
            continue;
        }
        if (o->kind == OP_EXCL) {
            grant_excl(c);
        } else {
            send_batch(c);
            flush_out(c);
        }
    }
    pg_conn_release(c);
    return 0;
}

/* ------------------------------------------------------- the caller side */

int pg_conn_tx_turn(wv_pg_conn *c)
{
    uint64_t me = wv_fiber_id();
    while (c->tx_fiber && c->tx_fiber != me && !c->broken && !c->closing) {
        int rc = wv_event_wait(&c->tx_free);
        if (rc < 0)
            return wv_fail(rc, "pg: %s while another fiber's transaction held the connection",
                           rc == -ETIMEDOUT ? "timed out" : "cancelled");
    }
    return pg_conn_usable(c);
}

static void abandon(wv_pg_conn *c, pg_op *o, int rc)
{
    if (o->kind == OP_STMTS)
        wv_counter_inc(rc == -ETIMEDOUT ? c->m->timeout : c->m->canceled);
    if (!o->sent && !o->keep) {
        q_unlink(&c->unsent, &c->unsent_tail, o);
        pg_op_free(o);
        return;
    }
    o->abandoned = true;
    if (o == c->inflight)
        maybe_cancel(c, 0);
}

/* The statement's first word ("SELECT", "INSERT"), what a message names it
 * by: never the rest of its text, which may hold values. */
static const char *op_verb(const pg_op *o, char *buf, size_t cap)
{
    const char *sql = o->nstmt > 0 && o->stmts ? o->stmts[0].sql : NULL;
    size_t n = 0;
    while (sql && (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r' || *sql == '('))
        sql++;
    for (; sql && n + 1 < cap && n < 16 && ((sql[n] | 0x20) >= 'a' && (sql[n] | 0x20) <= 'z'); n++)
        buf[n] = (char)(sql[n] & ~0x20);
    if (n == 0)
        snprintf(buf, cap, "statement");
    else
        buf[n] = '\0';
    return buf;
}

static int op_run_held(wv_pg_conn *c, pg_op *o)
{
    int rc = pg_conn_usable(c);
    if (rc == 0 && c->excl_active && c->excl_owner == wv_fiber_id())
        rc = wv_fail(-EDEADLK, "pg: no statements on a connection while its COPY runs");
    if (rc == 0)
        rc = pg_conn_tx_turn(c);
    if (rc < 0) {
        pg_op_free(o);
        return rc;
    }
    o->t0 = wv_now();
    o->in_tx = c->tx_fiber != 0;
    q_push(&c->unsent, &c->unsent_tail, o);
    wv_event_set(&c->wkick);
    rc = wv_event_wait(&o->done);
    if (o->finished)
        return 0;
    bool sent = o->sent;
    char verb[24];
    op_verb(o, verb, sizeof verb);
    long long ms = (long long)((wv_now() - o->t0) / 1000000);
    abandon(c, o, rc);
    if (rc == -ETIMEDOUT)
        return wv_fail(rc, "pg: %s timed out: the deadline passed after %lld ms%s", verb, ms,
                       sent ? " (cancelled on the server)" : " before it was sent");
    return wv_fail(rc, "pg: %s cancelled after %lld ms%s", verb, ms,
                   sent ? " (and on the server)" : "");
}

int pg_op_run(wv_pg_conn *c, pg_op *o)
{
    pg_conn_hold(c);
    int rc = op_run_held(c, o);
    pg_conn_release(c);
    return rc;
}

void pg_op_detach_sql(wv_pg_conn *c, const char *sql)
{
    if (c->broken || c->closing)
        return;
    pg_op *o = pg_op_new(1, NULL);
    if (!o) {
        pg_conn_break(c, -ENOMEM, "pg: out of memory resetting the connection");
        return;
    }
    o->own_stmt.sql = sql;
    o->stmts = &o->own_stmt;
    o->abandoned = o->keep = o->no_cancel = true;
    o->t0 = wv_now();
    q_push(&c->unsent, &c->unsent_tail, o);
    wv_event_set(&c->wkick);
}

int pg_conn_exec_internal(wv_pg_conn *c, const char *sql, int flags, PGresult **res)
{
    if (res)
        *res = NULL;
    pg_op *o = pg_op_new(1, NULL);
    if (!o)
        return wv_fail(-ENOMEM, "pg: out of memory");
    o->own_stmt.sql = sql;
    o->stmts = &o->own_stmt;
    o->no_cancel = (flags & EXEC_NO_CANCEL) != 0;
    o->keep = (flags & EXEC_KEEP) != 0;
    int rc = pg_op_run(c, o);
    if (rc < 0)
        return rc;
    rc = pg_op_outcome(o, 0);
    if (rc == 0 && res) {
        *res = o->res[0];
        o->res[0] = NULL;
    }
    pg_op_free(o);
    return rc;
}

static int excl_acquire_held(wv_pg_conn *c)
{
    int rc = pg_conn_usable(c);
    if (rc == 0 && c->excl_active && c->excl_owner == wv_fiber_id())
        rc = wv_fail(-EDEADLK, "pg: a COPY is already running on this connection");
    if (rc == 0)
        rc = pg_conn_tx_turn(c);
    if (rc < 0)
        return rc;
    pg_op *o = pg_op_new(0, NULL);
    if (!o)
        return wv_fail(-ENOMEM, "pg: out of memory");
    o->kind = OP_EXCL;
    q_push(&c->unsent, &c->unsent_tail, o);
    wv_event_set(&c->wkick);
    rc = wv_event_wait(&o->done);
    if (!o->finished) {
        abandon(c, o, rc);
        return wv_fail(rc, "pg: %s waiting for the connection",
                       rc == -ETIMEDOUT ? "timed out" : "cancelled");
    }
    if (o->err) {
        rc = wv_fail(o->err, "%s", o->errmsg);
        pg_op_free(o);
        return rc;
    }
    pg_op_free(o);
    c->excl_owner = wv_fiber_id();
    if ((rc = wv_check()) < 0) {
        pg_conn_excl_release(c);
        return rc;
    }
    return 0;
}

int pg_conn_excl_acquire(wv_pg_conn *c)
{
    pg_conn_hold(c);
    int rc = excl_acquire_held(c);
    pg_conn_release(c);
    return rc;
}

void pg_conn_excl_release(wv_pg_conn *c)
{
    c->excl_active = false;
    c->excl_owner = 0;
    wv_event_set(&c->excl_done);
}

/* ------------------------------------------------------------ connecting */

enum { MAX_ADDRS = 16 };

typedef struct resolve_job {
    const char *host;
    char addrs[MAX_ADDRS][INET6_ADDRSTRLEN];
    int count;
} resolve_job;

/* The host's addresses as text for libpq's hostaddr, resolved by the net
 * layer (off the loop). */
static int resolve(resolve_job *j)
{
    struct sockaddr_storage ss[MAX_ADDRS];
    int n = wv_resolve(j->host, 0, AF_UNSPEC, ss, MAX_ADDRS);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        const void *a = ss[i].ss_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)&ss[i])->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)&ss[i])->sin6_addr;
        if (inet_ntop(ss[i].ss_family, a, j->addrs[j->count], sizeof j->addrs[0]))
            j->count++;
    }
    return j->count > 0 ? 0 : wv_fail(-EHOSTUNREACH, "no address for %s", j->host);
}

static bool is_numeric_host(const char *h)
{
    unsigned char tmp[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

/* The n-th item of a comma-separated list, copied into out. */
static void list_item(const char *list, int n, char *out, size_t size)
{
    const char *p = list;
    for (int i = 0; i < n && p; i++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    size_t len = 0;
    if (p) {
        const char *comma = strchr(p, ',');
        len = comma ? (size_t)(comma - p) : strlen(p);
    }
    if (len >= size)
        len = size - 1;
    if (len)
        memcpy(out, p, len);
    out[len] = '\0';
}

static int list_count(const char *list)
{
    if (!list || !*list)
        return 0;
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    return n;
}

typedef struct conninfo {
    wv_buf host, hostaddr, port;
    bool override; /* host names were resolved: pass the lists above */
    bool ports;    /* the URL had a port per host: pass the port list too */
    int64_t timeout_ms;
} conninfo;

static void conninfo_free(conninfo *ci)
{
    wv_buf_free(&ci->host);
    wv_buf_free(&ci->hostaddr);
    wv_buf_free(&ci->port);
}

/* libpq resolves host names with a blocking getaddrinfo inside
 * PQconnectPoll; resolve them here with the net layer (off the loop) and
 * give libpq the addresses (hostaddr), one host entry per address, keeping
 * the names for TLS and .pgpass. libpq makes its own socket, so this is as
 * far as pg can dial through wv_dial. */
static int prepare_conninfo(const char *url, conninfo *ci)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (!opts) {
        char msg[PG_MSG];
        pg_one_line(perr ? perr : "out of memory", msg, sizeof msg);
        PQfreemem(perr);
        return wv_fail(-EINVAL, "pg: bad connection URL: %s", msg);
    }
    const char *host = NULL, *hostaddr = NULL, *port = NULL, *timeout = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "connect_timeout") == 0)
            timeout = o->val;
    }
    if (timeout && atoi(timeout) > 0)
        ci->timeout_ms = (int64_t)atoi(timeout) * 1000;
    if (!host || !*host)
        host = getenv("PGHOST");
    int rc = 0;
    if (host && *host && !(hostaddr && *hostaddr)) {
        int nhost = list_count(host), nport = list_count(port), entries = 0;
        bool any = false;
        for (int i = 0; i < nhost && rc == 0; i++) {
            char h[256], p[32] = "";
            list_item(host, i, h, sizeof h);
            if (nport == 1 || (nport > 1 && i < nport))
                list_item(port, nport == 1 ? 0 : i, p, sizeof p);
            resolve_job j = {.host = h, .count = 1};
            if (h[0] && h[0] != '/' && h[0] != '@' && !is_numeric_host(h)) {
                j.count = 0;
                rc = resolve(&j);
                if (rc < 0) {
                    if (rc != -ETIMEDOUT && rc != -ECANCELED)
                        rc = wv_fail(rc, "pg: %s", wv_errmsg());
                    break;
                }
                any = true;
            }
            for (int k = 0; k < j.count && rc == 0; k++, entries++) {
                const char *sep = entries ? "," : "";
                if (wv_buf_printf(&ci->host, "%s%s", sep, h) < 0 ||
                    wv_buf_printf(&ci->hostaddr, "%s%s", sep, j.addrs[k]) < 0 ||
                    wv_buf_printf(&ci->port, "%s%s", sep, p) < 0)
                    rc = wv_fail(-ENOMEM, "pg: out of memory");
            }
        }
        ci->override = any && rc == 0;
        ci->ports = nport > 1;
        if (ci->override &&
            (wv_buf_append(&ci->host, "", 1) < 0 || wv_buf_append(&ci->hostaddr, "", 1) < 0 ||
             wv_buf_append(&ci->port, "", 1) < 0))
            rc = wv_fail(-ENOMEM, "pg: out of memory");
    }
    PQconninfoFree(opts);
    return rc;
}

/* libpq reports connection failures only as text: sort them. */
static int connect_errno(const char *msg)
{
    static const struct {
        const char *needle;
        int err;
    } table[] = {
        {"Connection refused", -ECONNREFUSED},
        {"password authentication failed", -EACCES},
        {"authentication failed", -EACCES},
        {"no pg_hba.conf entry", -EACCES},
        {"password is required", -EACCES},
        {"no password supplied", -EACCES},
        {"permission denied", -EACCES},
        {"could not translate host name", -EHOSTUNREACH},
        {"No route to host", -EHOSTUNREACH},
        {"Network is unreachable", -ENETUNREACH},
        {"timeout expired", -ETIMEDOUT},
        {"too many clients", -EBUSY},
        {"the database system is starting up", -ECONNREFUSED},
        {"the database system is shutting down", -ECONNREFUSED},
        {"the database system is in recovery mode", -ECONNREFUSED},
        {"server closed the connection", -ECONNRESET},
        {"Connection reset", -ECONNRESET},
    };
    if (strstr(msg, "does not exist"))
        return strstr(msg, "database \"") ? -ENOENT : -EACCES; /* database, or role */
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strstr(msg, table[i].needle))
            return table[i].err;
    return -EIO;
}

static int connect_failed(PGconn *pg)
{
    char msg[PG_MSG];
    pg_one_line(PQerrorMessage(pg), msg, sizeof msg);
    return wv_fail(connect_errno(msg), "pg: %s", msg[0] ? msg : "cannot connect");
}

static int connect_pg(const char *url, int64_t timeout_ms, PGconn **out)
{
    conninfo ci = {.timeout_ms = DEFAULT_CONNECT_MS};
    int rc = prepare_conninfo(url, &ci);
    if (rc < 0) {
        conninfo_free(&ci);
        return rc;
    }
    if (timeout_ms <= 0)
        timeout_ms = ci.timeout_ms;
    const char *kw[8], *val[8];
    int k = 0;
    kw[k] = "fallback_application_name";
    val[k++] = "weave";
    kw[k] = "dbname";
    val[k++] = url;
    if (ci.override) {
        kw[k] = "host";
        val[k++] = ci.host.p;
        kw[k] = "hostaddr";
        val[k++] = ci.hostaddr.p;
        if (ci.ports) {
            kw[k] = "port";
            val[k++] = ci.port.p;
        }
    }
    kw[k] = NULL;
    val[k] = NULL;
    PGconn *pg = PQconnectStartParams(kw, val, 1);
    conninfo_free(&ci);
    if (!pg)
        return wv_fail(-ENOMEM, "pg: out of memory");
    PQsetNoticeProcessor(pg, on_notice, NULL);
    if (PQstatus(pg) == CONNECTION_BAD) {
        rc = connect_failed(pg);
        PQfinish(pg);
        return rc;
    }
    int64_t at = wv_after_ms(timeout_ms);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    int fd = -1;
    for (;;) {
        fd = PQsocket(pg);
        if (fd < 0) {
            rc = connect_failed(pg);
            break;
        }
        /* libpq may have moved to a new socket (next address, SSL retry)
         * that reuses the old number: start its registration afresh */
        wv_fd_forget(fd);
        rc = wv_fd_wait(fd, st == PGRES_POLLING_READING ? WV_IN : WV_OUT, at);
        if (rc < 0) {
            rc = wv_fail(rc, "pg: connect %s",
                         rc == -ETIMEDOUT   ? "timed out"
                         : rc == -ECANCELED ? "cancelled"
                                            : "failed");
            break;
        }
        st = PQconnectPoll(pg);
        if (st == PGRES_POLLING_OK) {
            rc = 0;
            break;
        }
        if (st == PGRES_POLLING_FAILED) {
            rc = connect_failed(pg);
            break;
        }
    }
    if (fd >= 0)
        wv_fd_forget(fd);
    if (rc < 0) {
        PQfinish(pg);
        return rc;
    }
    *out = pg;
    return 0;
}

static void opts_defaults(wv_pg_opts *o, const wv_pg_opts *in)
{
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof *o);
    if (o->cancel_timeout_ms <= 0)
        o->cancel_timeout_ms = DEFAULT_CANCEL_MS;
    if (o->statement_cache == 0)
        o->statement_cache = DEFAULT_CACHE;
    else if (o->statement_cache < 0)
        o->statement_cache = 0;
    if (o->max_batch <= 0)
        o->max_batch = DEFAULT_BATCH;
    if (o->max_notifications <= 0)
        o->max_notifications = DEFAULT_NOTES;
}

int wv_pg_connect(const char *url, const wv_pg_opts *opts, wv_pg_conn **out)
{
    if (!out)
        return wv_fail(-EINVAL, "pg: no place for the connection");
    *out = NULL;
    if (!url)
        return wv_fail(-EINVAL, "pg: no URL");
    if (wv_fiber_id() == 0)
        return wv_fail(-EPERM, "pg: connect outside a fiber");
    wv_pg_opts o;
    opts_defaults(&o, opts);
    pg_metrics *m = pg_metrics_for(o.name ? o.name : "default");
    PGconn *pg = NULL;
    int rc = connect_pg(url, o.connect_timeout_ms, &pg);
    if (rc < 0) {
        wv_counter_inc(m->connect_error);
        return rc;
    }
    wv_pg_conn *c = calloc(1, sizeof *c);
    if (!c) {
        PQfinish(pg);
        return wv_fail(-ENOMEM, "pg: out of memory");
    }
    c->pg = pg;
    c->fd = PQsocket(pg);
    c->m = m;
    c->opts = o;
    snprintf(c->name, sizeof c->name, "%s", o.name ? o.name : "default");
    c->opts.name = c->name;
    c->refs = 1;
    wv_event_set(&c->tx_free);
    PQsetNoticeProcessor(pg, on_notice, c);
    if (PQsetnonblocking(pg, 1) != 0 || PQenterPipelineMode(pg) != 1) {
        char msg[PG_MSG];
        pg_one_line(PQerrorMessage(pg), msg, sizeof msg);
        c->fd = -1;
        conn_free(c);
        return wv_fail(-EIO, "pg: cannot enter pipeline mode: %s", msg);
    }
    c->cancel = PQgetCancel(pg);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    c->tcp = getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0 &&
             (ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
    if (PQsslInUse(pg))
        c->ssl = PQgetssl(pg);
    pg_cache_init(&c->cache, o.statement_cache);

    c->refs++;
    if ((rc = wv_spawn(reader_main, c, &(wv_spawn_opts){.name = "pg-reader"})) < 0) {
        c->refs = 0;
        conn_free(c);
        return wv_fail(rc, "pg: cannot start the reader fiber");
    }
    c->refs++;
    if ((rc = wv_spawn(writer_main, c, &(wv_spawn_opts){.name = "pg-writer"})) < 0) {
        c->refs--;
        wv_pg_close(c);
        return wv_fail(rc, "pg: cannot start the writer fiber");
    }
    wv_counter_inc(m->connect_ok);
    *out = c;
    return 0;
}

void wv_pg_close(wv_pg_conn *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    /* the server does not notice a closed socket while a statement runs */
    if (c->inflight && c->cancel && !c->broken)
        spawn_canceller(c, (canceller){.closing = true});
    fail_all(c, -ECONNRESET, "pg: the connection was closed");
    if (c->fd >= 0) {
        wv_fd_forget(c->fd); /* wakes the reader and the writer */
        c->fd = -1;
    }
    if (c->notes)
        wv_chan_close(c->notes);
    conn_wake_all(c);
    pg_conn_release(c);
}

bool wv_pg_conn_ok(const wv_pg_conn *c)
{
    return c && !c->broken && !c->closing;
}

int wv_pg_conn_pid(const wv_pg_conn *c)
{
    return c ? PQbackendPID(c->pg) : 0;
}

void wv_pg_conn_stats_get(const wv_pg_conn *c, wv_pg_conn_stats *out)
{
    if (c)
        *out = c->st;
    else
        memset(out, 0, sizeof *out);
}
