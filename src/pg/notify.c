/*
 * LISTEN / NOTIFY. The reader fiber (conn.c) moves every notification
 * libpq parses into the connection's channel, whatever else the connection
 * is doing; wv_pg_notification_recv takes them out in order, or the caller
 * waits on that channel itself (wv_pg_notifications, for a select).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

/* "LISTEN <channel>" with the name quoted as an identifier. */
static int channel_command(wv_pg_conn *c, const char *verb, const char *channel)
{
    if (!channel || !*channel)
        return wv_fail(-EINVAL, "pg: %s needs a channel name", verb);
    char *ident = PQescapeIdentifier(c->pg, channel, strlen(channel));
    if (!ident)
        return wv_fail(-EINVAL, "pg: bad channel name");
    size_t n = strlen(verb) + strlen(ident) + 2;
    char *sql = malloc(n);
    int rc;
    if (!sql) {
        rc = wv_fail(-ENOMEM, "pg: out of memory");
    } else {
        snprintf(sql, n, "%s %s", verb, ident);
        rc = pg_conn_exec_internal(c, sql, 0, NULL);
        free(sql);
    }
    PQfreemem(ident);
    return rc;
}

static int listen_held(wv_pg_conn *c, const char *channel)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: listen needs a connection");
    int rc = pg_conn_usable(c);
    if (rc < 0)
        return rc;
    if (!pg_conn_notes(c))
        return wv_fail(-ENOMEM, "pg: out of memory");
    rc = channel_command(c, "LISTEN", channel);
    if (rc == 0)
        c->listening = true;
    return rc;
}

static int unlisten_held(wv_pg_conn *c, const char *channel)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: unlisten needs a connection");
    if (!channel) {
        int rc = pg_conn_exec_internal(c, "UNLISTEN *", 0, NULL);
        if (rc == 0)
            c->listening = false;
        return rc;
    }
    return channel_command(c, "UNLISTEN", channel);
}

static int recv_held(wv_pg_conn *c, wv_pg_notification **out)
{
    if (!c || !out)
        return wv_fail(-EINVAL, "pg: notification_recv needs a connection and a pointer");
    *out = NULL;
    if (!c->notes) {
        int rc = pg_conn_usable(c);
        if (rc < 0)
            return rc;
    }
    wv_chan *ch = pg_conn_notes(c);
    if (!ch)
        return wv_fail(-ENOMEM, "pg: out of memory");
    int rc = wv_chan_recv(ch, out);
    if (rc == -EPIPE) {
        rc = pg_conn_usable(c);
        return rc < 0 ? rc : wv_fail(-ECONNRESET, "pg: the connection was closed");
    }
    if (rc < 0)
        return wv_fail(rc, "pg: %s waiting for a notification",
                       rc == -ETIMEDOUT ? "timed out" : "cancelled");
    return 0;
}

int wv_pg_listen(wv_pg_conn *c, const char *channel)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: listen needs a connection");
    pg_conn_hold(c);
    int rc = listen_held(c, channel);
    pg_conn_release(c);
    return rc;
}

int wv_pg_unlisten(wv_pg_conn *c, const char *channel)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: unlisten needs a connection");
    pg_conn_hold(c);
    int rc = unlisten_held(c, channel);
    pg_conn_release(c);
    return rc;
}

int wv_pg_notification_recv(wv_pg_conn *c, wv_pg_notification **out)
{
    if (out)
        *out = NULL;
    if (!c || !out)
        return wv_fail(-EINVAL, "pg: notification_recv needs a connection and a pointer");
    pg_conn_hold(c);
    int rc = recv_held(c, out);
    pg_conn_release(c);
    return rc;
}

void wv_pg_notification_free(wv_pg_notification *n)
{
    free(n);
}

int wv_pg_notify(wv_pg_conn *c, const char *channel, const char *payload)
{
    if (!channel || !*channel)
        return wv_fail(-EINVAL, "pg: notify needs a channel name");
    int rc = wv_pg_exec(c, "SELECT pg_notify($1, $2)", WV_PG_TEXT(channel),
                        WV_PG_TEXT(payload ? payload : ""));
    return rc < 0 ? rc : 0;
}

wv_chan *wv_pg_notifications(wv_pg_conn *c)
{
    return c ? pg_conn_notes(c) : NULL;
}
