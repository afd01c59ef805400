/*
 * The metrics core (include/weave/metrics.h): registries, family
 * registration and validation, label sets resolved to series, the
 * process-wide cell space with one slot of cells per updating thread, and
 * the updates' out-of-line paths (the fast ones are inline in the header).
 * metrics_internal.h explains the cell and lookup structures; exposition is
 * in expose.c, the process collector in process.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_internal.h"

const double wv_metric_default_buckets[14] = {.005, .01, .025, .05, .075, .1,  .25,
                                              .5,   .75, 1,    2.5, 5,    7.5, 10};

/* ------------------------------------------------------------ allocation */

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* ------------------------------------------------------------ registries */

static void chunks_give_back(const uint32_t *ids, size_t n);

static void registry_init(wv_metrics *r)
{
    pthread_mutex_init(&r->mu, NULL);
}

wv_metrics *wv_metrics_new(void)
{
    wv_metrics *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    registry_init(r);
    return r;
}

static wv_metrics default_registry;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void default_init(void)
{
    registry_init(&default_registry);
    default_registry.is_default = true;
    int rc = wv_metrics_add_process_collector(&default_registry);
    if (rc < 0)
        wv_warn("metrics: the process collector could not be registered: %s", wv_errmsg());
}

wv_metrics *wv_metrics_default(void)
{
    pthread_once(&default_once, default_init);
    return &default_registry;
}

wv_metrics *registry_or_default(wv_metrics *r)
{
    return r ? r : wv_metrics_default();
}

static void series_free(wv_series *s)
{
    free(s);
}

static void family_free(wv_metric *m)
{
    wv_series *s = atomic_load_explicit(&m->first, memory_order_relaxed);
    while (s) {
        wv_series *next = atomic_load_explicit(&s->next, memory_order_relaxed);
        series_free(s);
        s = next;
    }
    series_table *t = atomic_load_explicit(&m->table, memory_order_relaxed);
    while (t) {
        series_table *older = t->retired;
        free(t);
        t = older;
    }
    if (m->le_text)
        for (size_t i = 0; i <= m->nbounds; i++)
            free(m->le_text[i]);
    if (m->le_om)
        for (size_t i = 0; i <= m->nbounds; i++)
            free(m->le_om[i]);
    free(m->le_text);
    free(m->le_om);
    free(m->bounds);
    if (m->label_names)
        for (size_t i = 0; i < m->nlabels; i++)
            free(m->label_names[i]);
    free(m->label_names);
    free(m->name);
    free(m->base);
    free(m->help);
    free(m->help_text);
    free(m->help_om);
    free(m->unit);
    free(m);
}

void wv_metrics_free(wv_metrics *r)
{
    if (!r || r->is_default)
        return;
    wv_metric *m = atomic_load_explicit(&r->first, memory_order_relaxed);
    while (m) {
        wv_metric *next = atomic_load_explicit(&m->next, memory_order_relaxed);
        family_free(m);
        m = next;
    }
    collector *c = atomic_load_explicit(&r->collectors, memory_order_relaxed);
    while (c) {
        collector *next = atomic_load_explicit(&c->next, memory_order_relaxed);
        if (c->free_arg)
            c->free_arg(c->arg);
        free(c);
        c = next;
    }
    chunks_give_back(r->chunks, r->nchunks);
    free(r->chunks);
    process_collector_free(r->process);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* ------------------------------------------------------------ cells */

cell_table *cell_slots[NSLOTS];
__thread uint64_t **wv__metrics_chunks __attribute__((tls_model("initial-exec")));

/* The process-wide cell space and the slots' owners. */
static pthread_mutex_t cells_mu = PTHREAD_MUTEX_INITIALIZER;
static bool slot_taken[WV_METRICS_MAX_THREADS]; /* under cells_mu */
static uint32_t chunks_used;                    /* never handed out above; under cells_mu */
static uint32_t *free_chunks;                   /* given back, zeroed; under cells_mu */
static size_t nfree, free_cap;

static pthread_key_t slot_key;
static pthread_once_t slot_key_once = PTHREAD_ONCE_INIT;
static __thread bool no_slot_left; /* this thread uses the shared slot */

/* At thread exit: the slot goes back, values and all, for the next thread. */
static void thread_detach(void *arg)
{
    int slot = (int)(intptr_t)arg - 1;
    wv__metrics_chunks = NULL;
    pthread_mutex_lock(&cells_mu);
    slot_taken[slot] = false;
    pthread_mutex_unlock(&cells_mu);
}

static void make_slot_key(void)
{
    if (pthread_key_create(&slot_key, thread_detach) != 0) {
        fprintf(stderr, "weave metrics: pthread_key_create failed\n");
        abort();
    }
}

/* Give the calling thread a slot of its own; its chunk table, or NULL when
 * every slot is taken (or out of memory): then it uses the shared one. */
static cell **thread_attach(void)
{
    if (no_slot_left)
        return NULL;
    pthread_once(&slot_key_once, make_slot_key);
    pthread_mutex_lock(&cells_mu);
    cell_table *t = NULL;
    int slot = 0;
    for (; slot < WV_METRICS_MAX_THREADS && slot_taken[slot]; slot++) {
    }
    if (slot < WV_METRICS_MAX_THREADS) {
        t = cell_slots[slot];
        if (!t && (t = calloc(1, sizeof *t)) != NULL)
            __atomic_store_n(&cell_slots[slot], t, __ATOMIC_RELEASE);
        if (t)
            slot_taken[slot] = true;
    }
    pthread_mutex_unlock(&cells_mu);
    if (!t || pthread_setspecific(slot_key, (void *)(intptr_t)(slot + 1)) != 0) {
        if (t) {
            pthread_mutex_lock(&cells_mu);
            slot_taken[slot] = false;
            pthread_mutex_unlock(&cells_mu);
        }
        no_slot_left = true;
        return NULL;
    }
    wv__metrics_chunks = t->chunk;
    return t->chunk;
}

/* The chunk holding cell idx in this thread's own table: made on first
 * use, by this thread only, so a release store publishes it. */
static cell *own_chunk(cell **chunks, uint32_t idx)
{
    cell **where = &chunks[idx >> CHUNK_SHIFT];
    cell *c = __atomic_load_n(where, __ATOMIC_RELAXED);
    if (!c && (c = calloc(CHUNK_CELLS, sizeof *c)) != NULL)
        __atomic_store_n(where, c, __ATOMIC_RELEASE);
    return c;
}

/* The chunk holding cell idx in the shared slot, which any thread may be
 * making at the same time. */
static cell *shared_chunk(uint32_t idx)
{
    cell_table *t = __atomic_load_n(&cell_slots[SHARED_SLOT], __ATOMIC_ACQUIRE);
    if (!t) {
        pthread_mutex_lock(&cells_mu);
        t = cell_slots[SHARED_SLOT];
        if (!t && (t = calloc(1, sizeof *t)) != NULL)
            __atomic_store_n(&cell_slots[SHARED_SLOT], t, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&cells_mu);
        if (!t)
            return NULL;
    }
    cell **where = &t->chunk[idx >> CHUNK_SHIFT];
    cell *c = __atomic_load_n(where, __ATOMIC_ACQUIRE);
    if (!c) {
        cell *fresh = calloc(CHUNK_CELLS, sizeof *fresh);
        if (!fresh)
            return NULL;
        if (__atomic_compare_exchange_n(where, &c, fresh, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            c = fresh;
        else
            free(fresh);
    }
    return c;
}

/* The calling thread's cells of series s, and whether they are the shared
 * slot's (then updates must be atomic read-modify-writes). NULL only when
 * out of memory. */
static cell *my_cells(const wv_series *s, bool *shared)
{
    cell **chunks = wv__metrics_chunks;
    if (!chunks)
        chunks = thread_attach();
    uint32_t idx = s->h.cell_;
    *shared = chunks == NULL;
    cell *c = chunks ? own_chunk(chunks, idx) : shared_chunk(idx);
    return c ? c + (idx & CHUNK_MASK) : NULL;
}

static void cell_add_u64(cell *c, bool shared, uint64_t n)
{
    if (shared)
        __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
    else
        __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static void cell_add_f64(cell *c, bool shared, double v)
{
    uint64_t old = __atomic_load_n(c, __ATOMIC_RELAXED);
    if (!shared) {
        __atomic_store_n(c, f64_bits(bits_f64(old) + v), __ATOMIC_RELAXED);
        return;
    }
    while (!__atomic_compare_exchange_n(c, &old, f64_bits(bits_f64(old) + v), true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

/* A chunk of the cell space for a registry; under its mutex. */
static int chunk_take(uint32_t *id)
{
    int rc = 0;
    pthread_mutex_lock(&cells_mu);
    if (nfree)
        *id = free_chunks[--nfree];
    else if (chunks_used < MAX_CHUNKS)
        *id = chunks_used++;
    else
        rc = -ENOSPC;
    pthread_mutex_unlock(&cells_mu);
    return rc;
}

/* Zero a freed registry's chunks in every slot and keep them for reuse. No
 * thread writes them any more (wv_metrics_free's contract); whoever gets
 * them next sees the zeros through cells_mu and the series' publication. */
static void chunks_give_back(const uint32_t *ids, size_t n)
{
    pthread_mutex_lock(&cells_mu);
    for (int slot = 0; slot < NSLOTS; slot++) {
        cell_table *t = cell_slots[slot];
        for (size_t i = 0; t && i < n; i++) {
            cell *c = __atomic_load_n(&t->chunk[ids[i]], __ATOMIC_ACQUIRE);
            for (int k = 0; c && k < CHUNK_CELLS; k++)
                __atomic_store_n(&c[k], 0, __ATOMIC_RELAXED);
        }
    }
    if (nfree + n > free_cap) {
        size_t cap = free_cap ? free_cap : 64;
        while (cap < nfree + n)
            cap *= 2;
        uint32_t *bigger = realloc(free_chunks, cap * sizeof *bigger);
        if (bigger) {
            free_chunks = bigger;
            free_cap = cap;
        }
    }
    for (size_t i = 0; i < n && nfree < free_cap; i++) /* without room: lost, not wrong */
        free_chunks[nfree++] = ids[i];
    pthread_mutex_unlock(&cells_mu);
}

void slot_snapshot_take(slot_snapshot *snap)
{
    snap->n = 0;
    for (int i = 0; i < NSLOTS; i++) {
        cell_table *t = __atomic_load_n(&cell_slots[i], __ATOMIC_ACQUIRE);
        if (t) {
            snap->shared[snap->n] = i == SHARED_SLOT;
            snap->t[snap->n++] = t;
        }
    }
}

void counter_read(const slot_snapshot *snap, const wv_series *s, uint64_t *ints, double *floats)
{
    uint64_t n = 0;
    double f = 0;
    for (int i = 0; i < snap->n; i++) {
        cell *c = table_cells(snap->t[i], s->h.cell_);
        if (c) {
            n += cell_u64(&c[0]);
            f += cell_f64(&c[1]);
        }
    }
    *ints = n;
    *floats = f;
}

double gauge_read(const slot_snapshot *snap, const wv_series *s)
{
    double v = 0;
    for (int i = 0; i < snap->n; i++) {
        cell *c = table_cells(snap->t[i], s->h.cell_);
        if (c)
            v += cell_f64(c);
    }
    return v;
}

void histogram_read(const slot_snapshot *snap, const wv_series *s, uint64_t *counts, double *sum)
{
    size_t nb = s->family->nbounds + 1;
    memset(counts, 0, nb * sizeof *counts);
    double total = 0;
    for (int i = 0; i < snap->n; i++) {
        cell *c = table_cells(snap->t[i], s->h.cell_);
        if (!c)
            continue;
        for (size_t b = 0; b < nb; b++)
            counts[b] += cell_u64(&c[b]);
        total += cell_f64(&c[nb]);
    }
    *sum = total;
}

/* ------------------------------------------------------------ updates */

void wv__counter_inc_slow(wv_series *s)
{
    if (!s || s->h.type_ != WV_METRIC_COUNTER)
        return;
    bool shared;
    cell *c = my_cells(s, &shared);
    if (c)
        cell_add_u64(c, shared, 1);
}

int wv_counter_add(wv_series *s, double v)
{
    if (!s)
        return 0;
    if (s->h.type_ != WV_METRIC_COUNTER)
        return wv_fail(-EINVAL, "metric %s: not a counter", s->family->name);
    if (!(v >= 0))
        return wv_fail(-EINVAL, "metric %s: a counter cannot add %g", s->family->name, v);
    bool shared;
    cell *c = my_cells(s, &shared);
    if (!c)
        return -ENOMEM;
    /* whole amounts go to the integer cell, so counts stay exact past 2^53 */
    if (v < 18446744073709551616.0 && v == (double)(uint64_t)v)
        cell_add_u64(&c[0], shared, (uint64_t)v);
    else
        cell_add_f64(&c[1], shared, v);
    return 0;
}

/* Make the series read v: store v minus everything but the shared slot's
 * float cell into that cell. Concurrent updates land before or after. */
static int set_value(wv_series *s, double v, int float_cell)
{
    cell *mine = shared_chunk(s->h.cell_);
    if (!mine)
        return -ENOMEM;
    mine += s->h.cell_ & CHUNK_MASK;
    slot_snapshot snap;
    slot_snapshot_take(&snap);
    double rest = 0;
    for (int i = 0; i < snap.n; i++) {
        cell *c = table_cells(snap.t[i], s->h.cell_);
        if (!c)
            continue;
        if (float_cell == 1)
            rest += (double)cell_u64(&c[0]);
        if (!snap.shared[i])
            rest += cell_f64(&c[float_cell]);
    }
    __atomic_store_n(&mine[float_cell], f64_bits(v - rest), __ATOMIC_RELAXED);
    return 0;
}

int wv_counter_set(wv_series *s, double v)
{
    if (!s)
        return 0;
    if (s->h.type_ != WV_METRIC_COUNTER)
        return wv_fail(-EINVAL, "metric %s: not a counter", s->family->name);
    if (!(v >= 0))
        return wv_fail(-EINVAL, "metric %s: a counter cannot be set to %g", s->family->name, v);
    return set_value(s, v, 1);
}

void wv_gauge_set(wv_series *s, double v)
{
    if (s && s->h.type_ == WV_METRIC_GAUGE)
        set_value(s, v, 0);
}

void wv__gauge_add_slow(wv_series *s, double v)
{
    if (!s || s->h.type_ != WV_METRIC_GAUGE)
        return;
    bool shared;
    cell *c = my_cells(s, &shared);
    if (c)
        cell_add_f64(c, shared, v);
}

/* The first bucket whose bound is >= v; nbounds (+Inf) for larger values
 * and NaN. */
static size_t bucket_of(const wv_metric *m, double v)
{
    size_t lo = 0, hi = m->nbounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= m->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void wv_histogram_observe(wv_series *s, double v)
{
    if (!s || s->h.type_ != WV_METRIC_HISTOGRAM)
        return;
    const wv_metric *m = s->family;
    size_t b = bucket_of(m, v);
    bool shared;
    cell *c = my_cells(s, &shared);
    if (!c)
        return;
    cell_add_u64(&c[b], shared, 1);
    cell_add_f64(&c[m->nbounds + 1], shared, v);
}

double wv_series_value(const wv_series *s)
{
    if (!s)
        return 0;
    slot_snapshot snap;
    slot_snapshot_take(&snap);
    switch (s->h.type_) {
    case WV_METRIC_COUNTER: {
        uint64_t n;
        double f;
        counter_read(&snap, s, &n, &f);
        return (double)n + f;
    }
    case WV_METRIC_GAUGE:
        return gauge_read(&snap, s);
    default: {
        size_t nb = s->family->nbounds + 1;
        uint64_t counts[WV_METRIC_MAX_BUCKETS + 1];
        double sum;
        histogram_read(&snap, s, counts, &sum);
        uint64_t total = 0;
        for (size_t b = 0; b < nb; b++)
            total += counts[b];
        return (double)total;
    }
    }
}

/* ------------------------------------------------------------ validation */

static bool name_char(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon;
    return !first && c >= '0' && c <= '9';
}

static bool valid_metric_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(s[i], i == 0, true))
            return false;
    return true;
}

static bool valid_label_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char(s[i], i == 0, false))
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && memcmp(s + n - k, suffix, k) == 0;
}

static const char *type_name(wv_metric_type t)
{
    switch (t) {
    case WV_METRIC_COUNTER:
        return "counter";
    case WV_METRIC_GAUGE:
        return "gauge";
    default:
        return "histogram";
    }
}

/* Split "a, b,c" into m->label_names. */
static int parse_labels(wv_metric *m, const char *list)
{
    char *names[WV_METRIC_MAX_LABELS];
    size_t n = 0;
    int rc = 0;
    const char *p = list ? list : "";
    while (*p == ' ')
        p++;
    if (*p) {
        for (;;) {
            const char *start = p;
            while (*p && *p != ',')
                p++;
            const char *end = p;
            while (start < end && *start == ' ')
                start++;
            while (end > start && end[-1] == ' ')
                end--;
            size_t len = (size_t)(end - start);
            if (!valid_label_name(start, len)) {
                rc = wv_fail(-EINVAL,
                             "metric %s: bad label name \"%.*s\" (want [a-zA-Z_][a-zA-Z0-9_]*)",
                             m->name, (int)len, start);
                break;
            }
            if (len >= 2 && start[0] == '_' && start[1] == '_') {
                rc = wv_fail(-EINVAL,
                             "metric %s: label name %.*s: names starting with __ are reserved",
                             m->name, (int)len, start);
                break;
            }
            if (m->type == WV_METRIC_HISTOGRAM && len == 2 && memcmp(start, "le", 2) == 0) {
                rc = wv_fail(-EINVAL, "metric %s: a histogram cannot have a label named le",
                             m->name);
                break;
            }
            if (n == WV_METRIC_MAX_LABELS) {
                rc = wv_fail(-EINVAL, "metric %s: more than %d labels", m->name,
                             WV_METRIC_MAX_LABELS);
                break;
            }
            bool dup = false;
            for (size_t i = 0; i < n && !dup; i++)
                dup = strlen(names[i]) == len && memcmp(names[i], start, len) == 0;
            if (dup) {
                rc = wv_fail(-EINVAL, "metric %s: label %.*s appears twice", m->name, (int)len,
                             start);
                break;
            }
            if (!(names[n] = dup_n(start, len))) {
                rc = -ENOMEM;
                break;
            }
            n++;
            if (!*p)
                break;
            p++;
        }
    }
    if (rc < 0) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        return rc;
    }
    m->nlabels = n;
    if (n) {
        m->label_names = malloc(n * sizeof *m->label_names);
        if (!m->label_names) {
            for (size_t i = 0; i < n; i++)
                free(names[i]);
            return -ENOMEM;
        }
        memcpy(m->label_names, names, n * sizeof *names);
    }
    return 0;
}

static int parse_buckets(wv_metric *m, const wv_metric_opts *o)
{
    const double *b = o->buckets ? o->buckets : wv_metric_default_buckets;
    size_t n = o->buckets ? o->nbuckets : sizeof wv_metric_default_buckets / sizeof(double);
    if (n > 0 && isinf(b[n - 1]) && b[n - 1] > 0)
        n--; /* +Inf is always there */
    if (n == 0)
        return wv_fail(-EINVAL, "metric %s: a histogram needs at least one finite bucket bound",
                       m->name);
    if (n > WV_METRIC_MAX_BUCKETS)
        return wv_fail(-EINVAL, "metric %s: more than %d buckets", m->name, WV_METRIC_MAX_BUCKETS);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i]))
            return wv_fail(-EINVAL, "metric %s: bucket bound %g is not finite", m->name, b[i]);
        if (i > 0 && !(b[i] > b[i - 1]))
            return wv_fail(-EINVAL, "metric %s: bucket bounds must increase (%g after %g)", m->name,
                           b[i], b[i - 1]);
    }
    m->nbounds = n;
    m->bounds = malloc(n * sizeof *m->bounds);
    m->le_text = calloc(n + 1, sizeof *m->le_text);
    m->le_om = calloc(n + 1, sizeof *m->le_om);
    if (!m->bounds || !m->le_text || !m->le_om)
        return -ENOMEM;
    for (size_t i = 0; i <= n; i++) {
        double v = i < n ? (b[i] == 0 ? 0.0 : b[i]) : INFINITY; /* no "-0" */
        if (i < n)
            m->bounds[i] = v;
        char tmp[NUMBER_MAX];
        size_t len = format_number(tmp, v, NUMBER_LE_TEXT);
        m->le_text[i] = dup_n(tmp, len);
        len = format_number(tmp, v, NUMBER_LE_OM);
        m->le_om[i] = dup_n(tmp, len);
        if (!m->le_text[i] || !m->le_om[i])
            return -ENOMEM;
    }
    return 0;
}

/* A family from opts, validated and not yet registered. */
static int family_make(wv_metrics *r, const wv_metric_opts *o, wv_metric **out)
{
    *out = NULL;
    if (o->type != WV_METRIC_COUNTER && o->type != WV_METRIC_GAUGE &&
        o->type != WV_METRIC_HISTOGRAM)
        return wv_fail(-EINVAL, "metric %s: unknown type %d", o->name ? o->name : "(null)",
                       (int)o->type);
    if (!o->name || !valid_metric_name(o->name, strlen(o->name)))
        return wv_fail(-EINVAL, "bad metric name \"%s\" (want [a-zA-Z_:][a-zA-Z0-9_:]*)",
                       o->name ? o->name : "(null)");
    wv_metric *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->reg = r;
    m->type = o->type;
    size_t len = strlen(o->name);
    m->name = dup_n(o->name, len);
    if (o->type == WV_METRIC_COUNTER && ends_with(o->name, "_total"))
        len -= 6;
    m->base = dup_n(o->name, len);
    const char *help = o->help ? o->help : "";
    m->help = dup_n(help, strlen(help));
    m->help_text = escape_help_text(help, strlen(help));
    m->help_om = escape_quoted(help, strlen(help));
    const char *unit = o->unit ? o->unit : "";
    m->unit = dup_n(unit, strlen(unit));
    atomic_init(&m->max_series, o->max_series ? o->max_series : WV_METRIC_DEFAULT_MAX_SERIES);
    int rc = 0;
    if (!m->name || !m->base || !m->help || !m->help_text || !m->help_om || !m->unit)
        rc = -ENOMEM;
    if (rc == 0 && *unit) {
        bool ok = true;
        for (const char *p = unit; *p && ok; p++)
            ok = name_char(*p, false, true);
        char suffix[256];
        snprintf(suffix, sizeof suffix, "_%s", unit);
        if (!ok || strlen(unit) > 200)
            rc = wv_fail(-EINVAL, "metric %s: bad unit \"%s\"", m->name, unit);
        else if (!ends_with(m->base, suffix))
            rc = wv_fail(-EINVAL, "metric %s: the name must end in _%s, its unit", m->name, unit);
    }
    if (rc == 0)
        rc = parse_labels(m, o->labels);
    if (rc == 0 && m->type == WV_METRIC_HISTOGRAM)
        rc = parse_buckets(m, o);
    if (rc < 0) {
        family_free(m);
        return rc;
    }
    m->ncells = m->type == WV_METRIC_COUNTER ? 2
                : m->type == WV_METRIC_GAUGE ? 1
                                             : (uint32_t)m->nbounds + 2;
    *out = m;
    return 0;
}

static bool same_definition(const wv_metric *a, const wv_metric *b)
{
    if (a->type != b->type || strcmp(a->base, b->base) != 0 || strcmp(a->help, b->help) != 0 ||
        strcmp(a->unit, b->unit) != 0 || a->nlabels != b->nlabels || a->nbounds != b->nbounds)
        return false;
    for (size_t i = 0; i < a->nlabels; i++)
        if (strcmp(a->label_names[i], b->label_names[i]) != 0)
            return false;
    for (size_t i = 0; i < a->nbounds; i++)
        if (a->bounds[i] != b->bounds[i])
            return false;
    return true;
}

/* The sample names a family writes or reserves ("x", "x_total", ...);
 * returns how many. */
static int sample_names(const wv_metric *m, char names[5][300])
{
    static const char *const counter[] = {"", "_total", "_created"};
    static const char *const gauge[] = {""};
    static const char *const histogram[] = {"", "_bucket", "_sum", "_count", "_created"};
    const char *const *suffix = m->type == WV_METRIC_COUNTER ? counter
                                : m->type == WV_METRIC_GAUGE ? gauge
                                                             : histogram;
    int n = m->type == WV_METRIC_COUNTER ? 3 : m->type == WV_METRIC_GAUGE ? 1 : 5;
    for (int i = 0; i < n; i++)
        snprintf(names[i], 300, "%.280s%s", m->base, suffix[i]);
    return n;
}

static const wv_metric *clashing_family(wv_metrics *r, const wv_metric *m)
{
    char mine[5][300], theirs[5][300];
    int nm = sample_names(m, mine);
    for (wv_metric *f = atomic_load_explicit(&r->first, memory_order_relaxed); f;
         f = atomic_load_explicit(&f->next, memory_order_relaxed)) {
        int nf = sample_names(f, theirs);
        for (int i = 0; i < nm; i++)
            for (int j = 0; j < nf; j++)
                if (strcmp(mine[i], theirs[j]) == 0)
                    return f;
    }
    return NULL;
}

/* ------------------------------------------------------------ series */

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_values(const wv_str *v, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = (const unsigned char *)v[i].p;
        size_t len = v[i].n;
        h = (h ^ len) * 0x100000001b3ULL;
        while (len >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            h = (h ^ w) * 0x9fb21c651e98df25ULL;
            h ^= h >> 29;
            p += 8;
            len -= 8;
        }
        /* the last 0-7 bytes, without a store-forwarding stall: two
         * overlapping 4-byte loads, or the first, middle and last byte */
        uint64_t w = 0;
        if (len >= 4) {
            uint32_t a, b;
            memcpy(&a, p, 4);
            memcpy(&b, p + len - 4, 4);
            w = (uint64_t)a << 32 | b;
        } else if (len) {
            w = (uint64_t)p[0] << 16 | (uint64_t)p[len / 2] << 8 | p[len - 1];
        }
        h = (h ^ w) * 0x9fb21c651e98df25ULL;
        h ^= h >> 29;
    }
    return mix64(h);
}

static bool values_equal(const wv_series *s, const wv_str *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!wv_str_eq(s->values[i], v[i]))
            return false;
    return true;
}

static wv_series *table_find(series_table *t, uint64_t hash, const wv_str *v, size_t n)
{
    if (!t)
        return NULL;
    for (size_t i = hash & t->mask;; i = (i + 1) & t->mask) {
        wv_series *s = atomic_load_explicit(&t->slot[i], memory_order_acquire);
        if (!s)
            return NULL;
        if (s->hash == hash && values_equal(s, v, n))
            return s;
    }
}

static series_table *table_new(size_t slots)
{
    series_table *t = calloc(1, sizeof *t + slots * sizeof(t->slot[0]));
    if (t)
        t->mask = slots - 1;
    return t;
}

static void table_put(series_table *t, wv_series *s)
{
    size_t i = s->hash & t->mask;
    while (atomic_load_explicit(&t->slot[i], memory_order_relaxed))
        i = (i + 1) & t->mask;
    atomic_store_explicit(&t->slot[i], s, memory_order_release);
}

/* Insert s under the mutex, growing (by a published copy) past half full. */
static int table_insert(wv_metric *m, wv_series *s, size_t count)
{
    series_table *t = atomic_load_explicit(&m->table, memory_order_relaxed);
    if (!t || (count + 1) * 2 > t->mask + 1) {
        size_t slots = t ? (t->mask + 1) * 2 : 16;
        series_table *bigger = table_new(slots);
        if (!bigger)
            return -ENOMEM;
        if (t)
            for (size_t i = 0; i <= t->mask; i++) {
                wv_series *old = atomic_load_explicit(&t->slot[i], memory_order_relaxed);
                if (old)
                    table_put(bigger, old);
            }
        bigger->retired = t;
        atomic_store_explicit(&m->table, bigger, memory_order_release);
        t = bigger;
    }
    table_put(t, s);
    return 0;
}

/* Reserve n cells that do not straddle a chunk; under the registry's mutex. */
static int cells_reserve(wv_metrics *r, uint32_t n, uint32_t *first)
{
    if (r->end_cell - r->next_cell < n) {
        if (r->nchunks == r->chunks_cap) {
            size_t cap = r->chunks_cap ? r->chunks_cap * 2 : 8;
            uint32_t *bigger = realloc(r->chunks, cap * sizeof *bigger);
            if (!bigger)
                return -ENOMEM;
            r->chunks = bigger;
            r->chunks_cap = cap;
        }
        uint32_t id;
        int rc = chunk_take(&id);
        if (rc < 0)
            return rc;
        r->chunks[r->nchunks++] = id;
        r->next_cell = id << CHUNK_SHIFT;
        r->end_cell = r->next_cell + CHUNK_CELLS;
    }
    *first = r->next_cell;
    r->next_cell += n;
    return 0;
}

/* Append `v` escaped as a label value. */
static size_t escaped_len(const wv_str v)
{
    size_t n = v.n;
    for (size_t i = 0; i < v.n; i++)
        if (v.p[i] == '\\' || v.p[i] == '"' || v.p[i] == '\n')
            n++;
    return n;
}

static char *put_escaped(char *o, const wv_str v)
{
    for (size_t i = 0; i < v.n; i++) {
        char c = v.p[i];
        if (c == '\\' || c == '"') {
            *o++ = '\\';
            *o++ = c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else {
            *o++ = c;
        }
    }
    return o;
}

/* A new series of m (values copied, labels rendered), cells reserved, not
 * yet linked anywhere; under the mutex. */
static int series_make(wv_metric *m, const wv_str *v, uint64_t hash, wv_series **out)
{
    size_t n = m->nlabels, bytes = sizeof(wv_series) + n * sizeof(wv_str), labels = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += v[i].n;
        labels += strlen(m->label_names[i]) + 4 + escaped_len(v[i]); /* a="x", */
    }
    bytes += labels + 1;
    wv_series *s = malloc(bytes);
    if (!s)
        return -ENOMEM;
    memset(s, 0, sizeof *s);
    int rc = cells_reserve(m->reg, m->ncells, &s->h.cell_);
    if (rc < 0) {
        free(s);
        if (rc == -ENOSPC)
            return wv_fail(rc, "metric %s: no cells left (%d in the process)", m->name,
                           MAX_CHUNKS * CHUNK_CELLS);
        return rc;
    }
    s->h.type_ = (uint32_t)m->type;
    s->family = m;
    s->hash = hash;
    s->values = (wv_str *)(s + 1);
    char *text = (char *)(s->values + n);
    for (size_t i = 0; i < n; i++) {
        if (v[i].n)
            memcpy(text, v[i].p, v[i].n);
        s->values[i] = (wv_str){text, v[i].n};
        text += v[i].n;
    }
    char *o = text;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *o++ = ',';
        size_t k = strlen(m->label_names[i]);
        memcpy(o, m->label_names[i], k);
        o += k;
        *o++ = '=';
        *o++ = '"';
        o = put_escaped(o, v[i]);
        *o++ = '"';
    }
    *o = '\0';
    s->labels = text;
    s->labels_len = (size_t)(o - text);
    *out = s;
    return 0;
}

/* Link s at the end of m's series; under the mutex. */
static void series_link(wv_metric *m, wv_series *s)
{
    if (m->last)
        atomic_store_explicit(&m->last->next, s, memory_order_release);
    else
        atomic_store_explicit(&m->first, s, memory_order_release);
    m->last = s;
}

static int over_cap(wv_metric *m, size_t max)
{
    if (!atomic_exchange_explicit(&m->warned, true, memory_order_relaxed))
        wv_warn("metric %s: more than %zu label sets; updates with new label values are dropped",
                m->name, max);
    return wv_fail(-E2BIG, "metric %s: more than %zu label sets", m->name, max);
}

int wv_metric_series_str(wv_metric *m, const wv_str *values, wv_series **out)
{
    if (!out)
        return wv_fail(-EINVAL, "wv_metric_series: NULL out");
    *out = NULL;
    if (!m)
        return wv_fail(-EINVAL, "wv_metric_series: NULL family");
    if (m->nlabels == 0) {
        *out = m->only;
        return 0;
    }
    if (!values)
        return wv_fail(-EINVAL, "metric %s: label values missing", m->name);
    for (size_t i = 0; i < m->nlabels; i++)
        if (!values[i].p && values[i].n)
            return wv_fail(-EINVAL, "metric %s: label %s: NULL value", m->name, m->label_names[i]);
    uint64_t hash = hash_values(values, m->nlabels);
    /* count first: every series it counts is in the table loaded after */
    size_t count = atomic_load_explicit(&m->nseries, memory_order_acquire);
    wv_series *s =
        table_find(atomic_load_explicit(&m->table, memory_order_acquire), hash, values, m->nlabels);
    if (s) {
        *out = s;
        return 0;
    }
    size_t max = atomic_load_explicit(&m->max_series, memory_order_relaxed);
    if (count >= max)
        return over_cap(m, max);

    wv_metrics *r = m->reg;
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    count = atomic_load_explicit(&m->nseries, memory_order_relaxed);
    s = table_find(atomic_load_explicit(&m->table, memory_order_relaxed), hash, values, m->nlabels);
    if (!s) {
        max = atomic_load_explicit(&m->max_series, memory_order_relaxed);
        if (count >= max)
            rc = 1;
        else if ((rc = series_make(m, values, hash, &s)) == 0) {
            if ((rc = table_insert(m, s, count)) < 0) {
                series_free(s);
                s = NULL;
            } else {
                series_link(m, s);
                atomic_store_explicit(&m->nseries, count + 1, memory_order_release);
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (rc == 1)
        return over_cap(m, max);
    if (rc < 0)
        return rc;
    *out = s;
    return 0;
}

int wv_metric_series(wv_metric *m, const char *const *values, wv_series **out)
{
    if (!m || m->nlabels == 0 || !values)
        return wv_metric_series_str(m, NULL, out);
    wv_str v[WV_METRIC_MAX_LABELS];
    for (size_t i = 0; i < m->nlabels; i++) {
        if (!values[i]) {
            if (out)
                *out = NULL;
            return wv_fail(-EINVAL, "metric %s: label %s: NULL value", m->name, m->label_names[i]);
        }
        v[i] = (wv_str){values[i], strlen(values[i])};
    }
    return wv_metric_series_str(m, v, out);
}

void wv_metric_set_max_series(wv_metric *m, size_t max_series)
{
    if (m)
        atomic_store_explicit(&m->max_series,
                              max_series ? max_series : WV_METRIC_DEFAULT_MAX_SERIES,
                              memory_order_relaxed);
}

/* ------------------------------------------------------------ registration */

int wv_metric_register(wv_metrics *r, const wv_metric_opts *opts, wv_metric **out)
{
    if (!out)
        return wv_fail(-EINVAL, "wv_metric_register: NULL out");
    *out = NULL;
    if (!opts)
        return wv_fail(-EINVAL, "wv_metric_register: NULL options");
    r = registry_or_default(r);
    wv_metric *m;
    int rc = family_make(r, opts, &m);
    if (rc < 0)
        return rc;

    pthread_mutex_lock(&r->mu);
    const wv_metric *other = clashing_family(r, m);
    if (other) {
        if (same_definition(other, m))
            *out = (wv_metric *)other;
        else if (strcmp(other->base, m->base) == 0 && other->type == m->type)
            rc = wv_fail(-EEXIST,
                         "metric %s: registered before with another definition (help, labels, "
                         "unit or buckets)",
                         m->name);
        else
            rc = wv_fail(-EEXIST, "metric %s: its names clash with the %s %s registered before",
                         m->name, type_name(other->type), other->name);
    } else if (m->nlabels == 0) {
        wv_series *s;
        rc = series_make(m, NULL, hash_values(NULL, 0), &s);
        if (rc == 0) {
            m->only = s;
            series_link(m, s);
            atomic_store_explicit(&m->nseries, 1, memory_order_relaxed);
        }
    }
    if (rc == 0 && !*out) {
        if (r->last)
            atomic_store_explicit(&r->last->next, m, memory_order_release);
        else
            atomic_store_explicit(&r->first, m, memory_order_release);
        r->last = m;
        *out = m;
    }
    pthread_mutex_unlock(&r->mu);
    if (*out != m)
        family_free(m);
    return rc;
}

/* ------------------------------------------------------------ collectors */

int collector_add_locked(wv_metrics *r, wv_metrics_collect_fn *fn, void *arg)
{
    collector *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fn = fn;
    c->arg = arg;
    if (r->last_collector)
        atomic_store_explicit(&r->last_collector->next, c, memory_order_release);
    else
        atomic_store_explicit(&r->collectors, c, memory_order_release);
    r->last_collector = c;
    return 0;
}

void *collector_arg(wv_metrics *r, wv_metrics_collect_fn *fn)
{
    r = registry_or_default(r);
    for (collector *c = atomic_load_explicit(&r->collectors, memory_order_acquire); c;
         c = atomic_load_explicit(&c->next, memory_order_acquire))
        if (c->fn == fn)
            return c->arg;
    return NULL;
}

int collector_add_owned(wv_metrics *r, wv_metrics_collect_fn *fn, void *arg,
                        void (*free_arg)(void *arg))
{
    r = registry_or_default(r);
    pthread_mutex_lock(&r->mu);
    int rc = collector_add_locked(r, fn, arg);
    if (rc == 0)
        r->last_collector->free_arg = free_arg;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int wv_metrics_add_collector(wv_metrics *r, wv_metrics_collect_fn *fn, void *arg)
{
    if (!fn)
        return wv_fail(-EINVAL, "wv_metrics_add_collector: NULL function");
    r = registry_or_default(r);
    pthread_mutex_lock(&r->mu);
    int rc = collector_add_locked(r, fn, arg);
    pthread_mutex_unlock(&r->mu);
    return rc;
}
