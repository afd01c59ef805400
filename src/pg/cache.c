/*
 * The prepared-statement cache of one connection: SQL text and argument
 * types -> the name of a statement prepared on the server ("wv<N>").
 *
 * An entry is made "pending" when its Parse is sent and becomes "ready"
 * when the server confirms it; only ready entries are used (a statement
 * whose Parse is still on the way is sent unnamed meanwhile, so a failed
 * Parse never leaves later statements pointing at nothing). When the cache
 * is full the least recently used ready entry is dropped (the writer sends
 * its DEALLOCATE). Ops in flight hold references on the entries they use,
 * so one dropped meanwhile stays in memory, marked dead, until they finish.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

static uint64_t stmt_hash(const pg_stmt *s)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)s->sql; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    h = (h ^ (uint64_t)s->nparams) * 1099511628211ull;
    for (int i = 0; i < s->nparams; i++)
        h = (h ^ (uint64_t)(s->types ? s->types[i] : 0)) * 1099511628211ull;
    return h;
}

static bool same_types(const stmt_entry *e, const pg_stmt *s)
{
    if (e->nparams != s->nparams)
        return false;
    for (int i = 0; i < s->nparams; i++)
        if (e->types[i] != (s->types ? s->types[i] : 0))
            return false;
    return true;
}

void pg_cache_init(stmt_cache *sc, int max)
{
    memset(sc, 0, sizeof *sc);
    sc->max = max > 0 ? max : 0;
}

static void entry_free(stmt_entry *e)
{
    free(e->sql);
    free(e->types);
    free(e);
}

void pg_cache_destroy(stmt_cache *sc)
{
    stmt_entry *e = sc->lru_head;
    while (e) {
        stmt_entry *next = e->lru_next;
        entry_free(e);
        e = next;
    }
    free(sc->buckets);
    memset(sc, 0, sizeof *sc);
}

stmt_entry *pg_cache_find(stmt_cache *sc, const pg_stmt *s)
{
    if (!sc->buckets)
        return NULL;
    uint64_t h = stmt_hash(s);
    for (stmt_entry *e = sc->buckets[h & (sc->nbuckets - 1)]; e; e = e->hnext)
        if (e->hash == h && strcmp(e->sql, s->sql) == 0 && same_types(e, s))
            return e;
    return NULL;
}

static void lru_unlink(stmt_cache *sc, stmt_entry *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        sc->lru_head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        sc->lru_tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push_front(stmt_cache *sc, stmt_entry *e)
{
    e->lru_prev = NULL;
    e->lru_next = sc->lru_head;
    if (sc->lru_head)
        sc->lru_head->lru_prev = e;
    else
        sc->lru_tail = e;
    sc->lru_head = e;
}

stmt_entry *pg_cache_add(stmt_cache *sc, const pg_stmt *s)
{
    if (sc->max <= 0)
        return NULL;
    if (!sc->buckets) {
        size_t n = 16;
        while (n < (size_t)sc->max * 2)
            n <<= 1;
        sc->buckets = calloc(n, sizeof *sc->buckets);
        if (!sc->buckets)
            return NULL;
        sc->nbuckets = n;
    }
    stmt_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->sql = strdup(s->sql);
    e->types = calloc((size_t)(s->nparams > 0 ? s->nparams : 1), sizeof *e->types);
    if (!e->sql || !e->types) {
        entry_free(e);
        return NULL;
    }
    e->nparams = s->nparams;
    for (int i = 0; i < s->nparams; i++)
        e->types[i] = s->types ? s->types[i] : 0;
    e->hash = stmt_hash(s);
    snprintf(e->name, sizeof e->name, "wv%llu", (unsigned long long)++sc->next_name);
    stmt_entry **b = &sc->buckets[e->hash & (sc->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push_front(sc, e);
    sc->count++;
    return e;
}

stmt_entry *pg_cache_victim(stmt_cache *sc)
{
    for (stmt_entry *e = sc->lru_tail; e; e = e->lru_prev)
        if (e->ready)
            return e;
    return NULL;
}

void pg_cache_touch(stmt_cache *sc, stmt_entry *e)
{
    if (sc->lru_head == e)
        return;
    lru_unlink(sc, e);
    lru_push_front(sc, e);
}

void pg_cache_remove(stmt_cache *sc, stmt_entry *e)
{
    if (e->dead)
        return;
    stmt_entry **pp = &sc->buckets[e->hash & (sc->nbuckets - 1)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(sc, e);
    sc->count--;
    e->dead = true;
    if (e->refs == 0)
        entry_free(e);
}

void pg_cache_unref(stmt_cache *sc, stmt_entry *e)
{
    (void)sc;
    if (--e->refs == 0 && e->dead)
        entry_free(e);
}
