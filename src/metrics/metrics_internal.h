/*
 * The metrics module's private structures (include/weave/metrics.h is the
 * public side): registries, families, series, and the per-thread cells
 * where the values live.
 *
 * Cells. Every series owns a run of 8-byte cells at an index in one
 * process-wide cell space (a counter two: integer part and float part, like
 * the Go client; a gauge one float; a histogram one count per bucket, then
 * the float sum). The space is cut into chunks of CHUNK_CELLS; a registry
 * takes whole chunks and gives them back, zeroed, when it is freed, and a
 * series never straddles two chunks. Every thread that updates owns a slot:
 * a table with its own copy of every chunk, cell_slots[slot]->chunk[index >>
 * CHUNK_SHIFT][index & CHUNK_MASK], the table reached through the
 * thread-local wv__metrics_chunks. Tables and chunks are allocated by their
 * owner on first write, published with a release store and never move or
 * go away, so the scraper follows them with acquire loads and no lock. A
 * slot is written by its owner thread only, with relaxed loads and stores;
 * when the thread exits, the slot goes back to a free list (mutex: the next
 * owner sees every value) and the next thread to start updating takes it
 * over. The last slot, SHARED_SLOT, is for threads beyond
 * WV_METRICS_MAX_THREADS and for wv_gauge_set / wv_counter_set, and is
 * written with atomic read-modify-writes.
 *
 * Series lookup. A family's label sets are in an open-addressing hash table
 * whose slots are published with release stores; a full table is replaced by
 * a bigger copy (published the same way, the old one kept until the registry
 * is freed), so lookups are lock-free and see every series made before the
 * table pointer they loaded. Inserting takes the registry's mutex.
 *
 * Lists (families in registration order, series in creation order,
 * collectors) are singly linked, appended under the mutex with release
 * stores and walked with acquire loads.
 */
#ifndef WEAVE_METRICS_INTERNAL_H
#define WEAVE_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "weave/metrics.h"

#pragma GCC visibility push(hidden)

enum {
    CHUNK_SHIFT = WV__CHUNK_SHIFT,
    CHUNK_CELLS = 1 << CHUNK_SHIFT, /* 8 KiB of cells */
    CHUNK_MASK = CHUNK_CELLS - 1,
    MAX_CHUNKS = 4096, /* 4M cells in the process */
    SHARED_SLOT = WV_METRICS_MAX_THREADS,
    NSLOTS = WV_METRICS_MAX_THREADS + 1,
};

/* Cells are plain uint64_t accessed with __atomic builtins, as the inline
 * updates in the public header do. */
typedef uint64_t cell;

typedef struct cell_table {
    cell *chunk[MAX_CHUNKS];
} cell_table;

/* Every slot's table (NULL until first used), process-wide. */
extern cell_table *cell_slots[NSLOTS];

struct wv_series {
    struct wv__series_head h; /* cell and type, read by the inline updates */
    wv_metric *family;
    _Atomic(wv_series *) next; /* creation order */
    uint64_t hash;
    wv_str *values;     /* family->nlabels of them, in this allocation */
    const char *labels; /* rendered and escaped: a="x",b="y" ("" when none) */
    size_t labels_len;
};

typedef struct series_table {
    size_t mask;
    struct series_table *retired; /* the smaller table this one replaced */
    _Atomic(wv_series *) slot[];
} series_table;

struct wv_metric {
    wv_metrics *reg;
    wv_metric_type type;
    _Atomic(wv_metric *) next; /* registration order */
    char *name;                /* as registered */
    char *base;                /* family name (a counter's without _total) */
    char *help;                /* "" when none */
    char *help_text;           /* escaped for 0.0.4 */
    char *help_om;             /* escaped for OpenMetrics */
    char *unit;                /* "" when none */
    size_t nlabels;
    char **label_names;
    size_t nbounds; /* finite bounds; the +Inf bucket comes after them */
    double *bounds;
    char **le_text; /* bounds as 0.0.4 "le" values, then "+Inf" */
    char **le_om;   /* the same, canonical OpenMetrics */
    uint32_t ncells;
    _Atomic size_t max_series;
    _Atomic size_t nseries;
    _Atomic(series_table *) table;
    wv_series *only; /* the series of a label-less family */
    _Atomic(wv_series *) first;
    wv_series *last; /* under reg->mu */
    atomic_bool warned;
};

typedef struct collector {
    wv_metrics_collect_fn *fn;
    void *arg;
    void (*free_arg)(void *arg); /* run when the registry is freed, or NULL */
    _Atomic(struct collector *) next;
} collector;

struct process_collector;

struct wv_metrics {
    pthread_mutex_t mu;
    uint32_t next_cell, end_cell; /* free cells in the last chunk; under mu */
    uint32_t *chunks;             /* the chunks it took; under mu */
    size_t nchunks, chunks_cap;
    _Atomic(wv_metric *) first;
    wv_metric *last; /* under mu */
    _Atomic(collector *) collectors;
    collector *last_collector; /* under mu */
    struct process_collector *process;
    bool is_default;
};

/* ------------------------------------------------------------ cells */

static inline double bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* The slots that have cells, loaded once for a scrape (or a set). */
typedef struct slot_snapshot {
    cell_table *t[NSLOTS];
    bool shared[NSLOTS];
    int n;
} slot_snapshot;

void slot_snapshot_take(slot_snapshot *snap);

/* The cells of one series (first index idx) in table t, or NULL (all zero). */
static inline cell *table_cells(cell_table *t, uint32_t idx)
{
    cell *c = __atomic_load_n(&t->chunk[idx >> CHUNK_SHIFT], __ATOMIC_ACQUIRE);
    return c ? c + (idx & CHUNK_MASK) : NULL;
}

static inline uint64_t cell_u64(cell *c)
{
    return __atomic_load_n(c, __ATOMIC_RELAXED);
}

static inline double cell_f64(cell *c)
{
    return bits_f64(__atomic_load_n(c, __ATOMIC_RELAXED));
}

/* A counter's value over the snapshot: integer part and float part. */
void counter_read(const slot_snapshot *snap, const wv_series *s, uint64_t *ints, double *floats);
double gauge_read(const slot_snapshot *snap, const wv_series *s);
/* A histogram's per-bucket counts (nbounds + 1, not cumulative) and sum. */
void histogram_read(const slot_snapshot *snap, const wv_series *s, uint64_t *counts, double *sum);

/* ------------------------------------------------------------ registry */

wv_metrics *registry_or_default(wv_metrics *r);
/* Append a collector; the caller holds r->mu. 0 or -ENOMEM. */
int collector_add_locked(wv_metrics *r, wv_metrics_collect_fn *fn, void *arg);
/* The arg of r's first collector running fn (NULL: none), and adding one
 * whose arg the registry frees with free_arg. For the module's own
 * collectors (http.c's runtime metrics). */
void *collector_arg(wv_metrics *r, wv_metrics_collect_fn *fn);
int collector_add_owned(wv_metrics *r, wv_metrics_collect_fn *fn, void *arg,
                        void (*free_arg)(void *arg));

/* ------------------------------------------------------------ text */

enum { NUMBER_MAX = 40 };

typedef enum number_style {
    NUMBER_VALUE,   /* a sample value: integers below 2^53 in full, else Go's %g */
    NUMBER_LE_TEXT, /* a 0.0.4 "le": Go's %g (the Go client's rendering) */
    NUMBER_LE_OM,   /* an OpenMetrics "le": Go's %g, ".0" added to integers */
} number_style;

/* Write v into out (NUMBER_MAX bytes at least); returns the length. */
size_t format_number(char *out, double v, number_style style);
size_t format_u64(char *out, uint64_t v);

/* Escape for a 0.0.4 HELP line (\\ and \n), an OpenMetrics HELP line or a
 * label value (\\, \" and \n) into a new NUL-terminated string, or NULL. */
char *escape_help_text(const char *s, size_t n);
char *escape_quoted(const char *s, size_t n);

/* process.c */
void process_collector_free(struct process_collector *p);

#pragma GCC visibility pop

#endif
